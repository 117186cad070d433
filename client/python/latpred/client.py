"""latpred.Client: a small, typed client of the latpred.v1.LatencyPredictor service."""
from __future__ import annotations

import collections
import numbers
import os
import re
import sys
import threading
import time
import uuid
from typing import (TYPE_CHECKING, Any, Deque, Dict, Iterable, Iterator, List, Literal,
                    Mapping, Optional, Sequence, Tuple, Union, cast, overload)

import grpc

from ._proto import health_pb2, health_pb2_grpc, latpred_pb2, latpred_pb2_grpc
from .archs import Nb201Table, normalize_arch, normalize_archs
from .datatypes import (AdaptResult, ArchLike, Device, Feature, FeatureSource, FitStats,
                        ModelState, Prediction, RegisterResult, Sample, SampleResult,
                        ServerInfo, SpaceState, SubmitResult)
from .errors import (DeadlineExceeded, InvalidArgument, LatpredError, NoInterval,
                     ResourceExhausted, Unavailable, error_from_rpc)

if TYPE_CHECKING:  # numpy is optional: only its type is named here
    import numpy

__all__ = ["Client", "SampleLike", "FeaturesLike", "new_request_id", "token_from_environment"]

#: A sample: a Sample, (arch, latency_ms[, repeats[, spread_ms]]) or a dict with
#: the keys arch, latency_ms and optionally repeats, spread_ms.
SampleLike = Union[Sample, Tuple[Any, ...], Mapping[str, Any]]
#: Descriptor features: Feature objects, or a mapping name -> value (a name of the form
#: "<space>:<arch>" for a known space is a reference latency in ms, others unspecified).
FeaturesLike = Union[Iterable[Feature], Mapping[str, float]]

_MODEL_STATES: Dict[int, ModelState] = {
    latpred_pb2.MODEL_STATE_UNSPECIFIED: ModelState.UNSPECIFIED,
    latpred_pb2.MODEL_STATE_NONE: ModelState.NONE,
    latpred_pb2.MODEL_STATE_ZERO_SHOT: ModelState.ZERO_SHOT,
    latpred_pb2.MODEL_STATE_ADAPTED: ModelState.ADAPTED,
    latpred_pb2.MODEL_STATE_SOURCE: ModelState.SOURCE,
}
_FEATURE_SOURCES: Dict[int, FeatureSource] = {
    latpred_pb2.FEATURE_SOURCE_UNSPECIFIED: FeatureSource.UNSPECIFIED,
    latpred_pb2.FEATURE_SOURCE_COUNTER: FeatureSource.COUNTER,
    latpred_pb2.FEATURE_SOURCE_MICROBENCHMARK: FeatureSource.MICROBENCHMARK,
    latpred_pb2.FEATURE_SOURCE_REFERENCE_LATENCY: FeatureSource.REFERENCE_LATENCY,
}
_FEATURE_SOURCE_IDS = {v: k for k, v in _FEATURE_SOURCES.items()}
_HEALTH: Dict[int, str] = {
    health_pb2.HealthCheckResponse.UNKNOWN: "UNKNOWN",
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN",
}
_KNOWN_SPACES = ("nb201", "fbnet")

#: Bytes of architecture strings per PredictLatency request (the server takes 64 MiB).
_MAX_REQUEST_BYTES = 16 << 20
#: PredictLatency requests in flight at once when a batch is split.
_WINDOW = 4
#: How often a split batch is re-predicted when an adapt landed between its chunks.
_VERSION_RETRIES = 3
#: Attempts of one call while it fails with UNAVAILABLE (a SubmitSamples batch always
#: with its request_id), and the waits between them: doubling from the first, at most
#: the last (seconds). All attempts and waits of one call fit in its timeout.
_ATTEMPTS = 3
_FIRST_DELAY = 0.25
_MAX_DELAY = 2.0
_ITEM_INDEX = re.compile(r"^(archs|samples)\[(\d+)\]")


def _model_state(value: int) -> ModelState:
    return _MODEL_STATES.get(value, ModelState.UNSPECIFIED)


def _fit(message: Any) -> FitStats:
    return FitStats(samples=message.samples, fit_spearman=message.fit_spearman,
                    fit_mape=message.fit_mape, loo_mape=message.loo_mape,
                    seconds=message.seconds, set_aside=tuple(message.set_aside),
                    loo_log_sd=message.loo_log_sd,
                    descriptor_weight=message.descriptor_weight)


def _device(message: Any) -> Device:
    spaces = {
        s.space: SpaceState(space=s.space, sample_count=s.sample_count,
                            state=_model_state(s.state), model_version=s.model_version,
                            fit=_fit(s.fit) if s.HasField("fit") else None)
        for s in message.spaces
    }
    features = [
        Feature(name=f.name, value=f.value,
                source=_FEATURE_SOURCES.get(f.source, FeatureSource.UNSPECIFIED), unit=f.unit)
        for f in message.features
    ]
    return Device(name=message.name, labels=dict(message.labels), features=features,
                  source=message.source, spaces=spaces,
                  created_unix_ms=message.created_unix_ms,
                  updated_unix_ms=message.updated_unix_ms)


def _offset_message(message: str, offset: int) -> str:
    """A chunk's item error ("archs[3]: ...") renumbered to the position in the whole list."""
    if offset == 0:
        return message
    return _ITEM_INDEX.sub(lambda m: f"{m.group(1)}[{int(m.group(2)) + offset}]", message, 1)


_TOKEN = re.compile(r"[\x21-\x7e]*")


def _check_token(token: str, source: str) -> None:
    """Raises ValueError, naming source (where the token came from) but never showing the
    token, unless token is printable ASCII without spaces: what an HTTP/2 header can
    carry (a superset of RFC 6750's b64token)."""
    if _TOKEN.fullmatch(token):
        return
    at = next(i for i, c in enumerate(token) if not "\x21" <= c <= "\x7e")
    what = "a space" if token[at] == " " else (
        "not ASCII" if token[at] > "\x7f" else "a control character")
    raise ValueError(f"the token from {source} holds a character a bearer token cannot have "
                     f"(character {at} of {len(token)} is {what}); a token must be printable "
                     "ASCII without spaces (the token is not shown)")


def token_from_environment() -> Optional[str]:
    """The token as latpred's clients read it: the first line of the file named by
    $LATPRED_TOKEN_FILE (stripped), else $LATPRED_TOKEN, else None. ValueError (naming
    the variable or file, never the token) when it is not printable ASCII without
    spaces."""
    path = os.environ.get("LATPRED_TOKEN_FILE")
    if path:
        try:
            with open(path, "rb") as f:
                line = f.readline()
        except OSError as e:
            raise OSError(f"cannot read LATPRED_TOKEN_FILE {path}: {e.strerror}") from None
        # Latin-1 maps every byte to one character: _check_token reports any non-ASCII.
        token = line.strip().decode("latin-1")
        _check_token(token, f"LATPRED_TOKEN_FILE {path}")
        return token or None
    token = os.environ.get("LATPRED_TOKEN")
    if token:
        _check_token(token, "LATPRED_TOKEN")
    return token or None


def new_request_id() -> str:
    """A fresh SubmitSamples request id: 32 hex digits of 128 random bits."""
    return uuid.uuid4().hex


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _coverage(value: Any, what: str) -> float:
    """A share of latencies an interval should hold: a number strictly between 0 and 1."""
    try:
        share = _number(value, what)
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
    if not 0 < share < 1:
        raise InvalidArgument(f"{what} must lie strictly between 0 and 1 (0.8: the 10th to "
                              f"90th percentile), got {value!r}")
    return share


def _is_ndarray(value: Any) -> bool:
    """True for a numpy array (numpy is only looked at when the caller imported it)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _as_array(values: Sequence[float]) -> "numpy.ndarray":
    import numpy
    return numpy.asarray(values, dtype=numpy.float64)


def _backoff() -> Iterator[float]:
    """The waits between attempts: _FIRST_DELAY, doubling, at most _MAX_DELAY."""
    delay = _FIRST_DELAY
    while True:
        yield delay
        delay = min(2 * delay, _MAX_DELAY)


def _may_retry(error: LatpredError, attempt: int, attempts: int, wait: float,
               deadline: float) -> bool:
    """Whether a failed attempt is tried again: UNAVAILABLE, attempts left, and the wait
    plus a moment for the call itself still before the call's deadline."""
    return (isinstance(error, Unavailable) and attempt < attempts
            and time.monotonic() + wait + 0.05 < deadline)


def _check_answer(chunk: Tuple[int, int], answer: Any) -> None:
    size = chunk[1] - chunk[0]
    if len(answer.latency_ms) != size:
        raise LatpredError(f"server answered {len(answer.latency_ms)} latencies for "
                           f"{size} architectures")
    if (answer.lower_ms or answer.upper_ms) and (len(answer.lower_ms) != size
                                                 or len(answer.upper_ms) != size):
        raise LatpredError(f"server answered {len(answer.lower_ms)} lower and "
                           f"{len(answer.upper_ms)} upper bounds for {size} "
                           "architectures")


def _stale_chunks(answers: Dict[Tuple[int, int], Any]) -> List[Tuple[int, int]]:
    """The chunks answered by an older model than the newest one seen."""
    newest = max(a.model_version for a in answers.values())
    return [c for c, a in answers.items() if a.model_version != newest]


def _chunks(strings: List[str], limit: int) -> List[Tuple[int, int]]:
    """[start, end) ranges of at most limit items and _MAX_REQUEST_BYTES bytes."""
    chunks, start, size = [], 0, 0
    for i, s in enumerate(strings):
        n = len(s) + 8
        if i > start and (i - start >= limit or size + n > _MAX_REQUEST_BYTES):
            chunks.append((start, i))
            start, size = i, 0
        size += n
    chunks.append((start, len(strings)))
    return chunks


def _merge(chunks: List[Tuple[int, int]], answers: Dict[Tuple[int, int], Any]) -> Prediction:
    """One Prediction from the answers of every chunk, in input order."""
    latency: List[float] = []
    lower: List[float] = []
    upper: List[float] = []
    for chunk in chunks:
        latency.extend(answers[chunk].latency_ms)
        lower.extend(answers[chunk].lower_ms)
        upper.extend(answers[chunk].upper_ms)
    # One model answered every chunk (unless it changed more often than the retries),
    # and a model has bounds for every architecture or for none.
    if lower and (len(lower) != len(latency) or len(upper) != len(latency)):
        raise LatpredError("the server gave bounds for some chunks of a prediction and "
                           "not for others")
    newest = max(a.model_version for a in answers.values())
    final = next(a for a in answers.values() if a.model_version == newest)
    return Prediction(latency_ms=latency, model_version=final.model_version,
                      zero_shot=final.zero_shot, state=_model_state(final.state),
                      lower_ms=lower, upper_ms=upper)


def _empty_prediction() -> Prediction:
    return Prediction(latency_ms=[], model_version=0, zero_shot=False,
                      state=ModelState.UNSPECIFIED)


def _shape_prediction(result: Prediction, return_details: bool, array: bool) -> Any:
    """predict()'s answer: the Prediction, or its latencies as a list (numpy in: array)."""
    if return_details:
        return result
    return _as_array(result.latency_ms) if array else result.latency_ms


def _interval_triples(device: str, space: str, result: Prediction, array: bool) -> Any:
    """predict_interval()'s answer from a Prediction asked with an interval."""
    if not result.latency_ms:
        return _as_array([]).reshape(0, 3) if array else []
    if not result.lower_ms:
        raise NoInterval(
            f"no interval for {device}/{space}: its model ({result.state}, version "
            f"{result.model_version}) has no leave-one-out errors to size one; it needs "
            "at least 3 samples and AdaptDevice (zero-shot and source devices have none)")
    if array:
        import numpy
        return numpy.column_stack([_as_array(result.latency_ms), _as_array(result.lower_ms),
                                   _as_array(result.upper_ms)])
    return list(zip(result.latency_ms, result.lower_ms, result.upper_ms))


def _sample_message(space: str, index: int, sample: SampleLike,
                    table: Optional[Nb201Table]) -> Any:
    """A latpred_pb2.Sample from any SampleLike; InvalidArgument names samples[index]."""
    try:
        if isinstance(sample, Sample):
            arch, latency, repeats, spread = (sample.arch, sample.latency_ms,
                                              sample.repeats, sample.spread_ms)
        elif isinstance(sample, Mapping):
            unknown = set(sample) - {"arch", "latency_ms", "repeats", "spread_ms"}
            if unknown or "arch" not in sample or "latency_ms" not in sample:
                raise ValueError("a sample dict needs the keys arch and latency_ms "
                                 "(optional: repeats, spread_ms)"
                                 + (f"; unknown: {', '.join(sorted(map(str, unknown)))}"
                                    if unknown else ""))
            arch, latency = sample["arch"], sample["latency_ms"]
            repeats, spread = sample.get("repeats", 0), sample.get("spread_ms", 0.0)
        elif isinstance(sample, tuple) and 2 <= len(sample) <= 4:
            arch, latency, repeats, spread = (tuple(sample) + (0, 0.0))[:4]
        else:
            raise ValueError("expected (arch, latency_ms[, repeats[, spread_ms]]), a dict "
                             f"or a latpred.Sample, got {type(sample).__name__}")
        return latpred_pb2.Sample(arch=normalize_arch(space, arch, table),
                                  latency_ms=_number(latency, "latency_ms"),
                                  repeats=_integer(repeats, "repeats"),
                                  spread_ms=_number(spread, "spread_ms"))
    except ValueError as e:
        raise InvalidArgument(f"samples[{index}]: {e}") from None


def _submit_result(r: Any, offset: int) -> SubmitResult:
    return SubmitResult(
        accepted=r.accepted, rejected=r.rejected, sample_count=r.sample_count,
        results=[SampleResult(index=x.index + offset, accepted=x.accepted,
                              canonical_arch=x.canonical_arch, error=x.error)
                 for x in r.results],
        replayed=r.replayed)


def _features(features: Optional[FeaturesLike]) -> List[Feature]:
    if features is None:
        return []
    out: List[Feature] = []
    if isinstance(features, Mapping):
        for name, value in features.items():
            space = str(name).partition(":")[0]
            source = (FeatureSource.REFERENCE_LATENCY if ":" in str(name)
                      and space in _KNOWN_SPACES else FeatureSource.UNSPECIFIED)
            try:
                out.append(Feature(str(name), _number(value, f"feature {name!r}"), source,
                                   "ms" if source is FeatureSource.REFERENCE_LATENCY else ""))
            except ValueError as e:
                raise InvalidArgument(str(e)) from None
        return out
    for i, feature in enumerate(features):
        if not isinstance(feature, Feature):
            raise InvalidArgument(f"features[{i}]: expected a latpred.Feature, "
                                  f"got {type(feature).__name__}")
        out.append(feature)
    return out


def _register_request(name: str, labels: Optional[Mapping[str, str]],
                      features: Optional[FeaturesLike]) -> Any:
    request = latpred_pb2.RegisterDeviceRequest(name=name)
    for key, value in (labels or {}).items():
        request.labels[str(key)] = str(value)
    for feature in _features(features):
        request.features.add(name=feature.name, value=feature.value,
                             source=_FEATURE_SOURCE_IDS[FeatureSource(feature.source)],
                             unit=feature.unit)
    return request


def _adapt_result(r: Any) -> AdaptResult:
    return AdaptResult(model_version=r.model_version, state=_model_state(r.state),
                       fit=_fit(r.fit) if r.HasField("fit") else None, pending=r.pending)


def _channel_options(options: Sequence[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    return [
        # A server that restarts is found again within seconds, not minutes.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5000),
        ("grpc.max_receive_message_length", 64 << 20),
    ] + list(options)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


class Client:
    """A connection to a latpred server.

    >>> with Client("127.0.0.1:50051") as client:          # doctest: +SKIP
    ...     client.wait_until_serving(timeout=300)
    ...     client.predict("pixel2", "nb201", [0, 1, 2])
    [10.298494474091939, 21.206645678232587, 19.863208761394592]

    target: "host:port". token: sent as ``authorization: Bearer <token>`` on every call
    (a server started with a token needs it for RegisterDevice, SubmitSamples and
    AdaptDevice, and with --token-for-reads for every call); None reads it like the CLI
    does, from $LATPRED_TOKEN_FILE or $LATPRED_TOKEN (see token_from_environment), ""
    sends none; a token that is not printable ASCII without spaces is a ValueError
    (gRPC cannot send it in a header). ca: path of a PEM file of the CA that signed the
    server's certificate; the channel then uses TLS (without it the channel is
    plaintext). timeout: seconds per call, its retries included. nb201_csv: a CSV with
    the columns index and arch to resolve NAS-Bench-201 indices instead of the table
    bundled with the package. options: extra gRPC channel options. attempts: how often
    a call is sent while the server answers UNAVAILABLE (waits of 0.25 s, 0.5 s, ...
    doubling up to 2 s between them, all within ``timeout``); 1 never retries.
    Thread-safe; close() (or ``with``) releases the channel.
    """

    def __init__(self, target: str = "127.0.0.1:50051", token: Optional[str] = None,
                 ca: Union[str, "os.PathLike[str]", None] = None, timeout: float = 60.0, *,
                 nb201_csv: Union[str, "os.PathLike[str]", None] = None,
                 options: Sequence[Tuple[str, Any]] = (), attempts: int = _ATTEMPTS) -> None:
        if timeout is None or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be a positive integer, got {attempts!r}")
        self.target = target
        self.timeout = float(timeout)
        self.attempts = attempts
        # Everything that may fail comes before the channel exists.
        if token is None:
            token = token_from_environment()
        elif token:
            _check_token(token, "the token argument")
        self._metadata: Optional[Tuple[Tuple[str, str], ...]] = (
            (("authorization", f"Bearer {token}"),) if token else None)
        self._nb201 = Nb201Table.from_csv(nb201_csv) if nb201_csv is not None else None
        root_certificates: Optional[bytes] = None
        if ca is not None:
            with open(ca, "rb") as f:
                root_certificates = f.read()
        self._max_batch: Optional[int] = None
        self._lock = threading.Lock()
        channel_options = _channel_options(options)
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        # The generated gRPC stubs are untyped.
        self._stub: Any = cast(Any, latpred_pb2_grpc).LatencyPredictorStub(self._channel)
        self._health: Any = cast(Any, health_pb2_grpc).HealthStub(self._channel)

    # -- plumbing ------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _call(self, method: Any, request: Any, timeout: Optional[float] = None,
              attempts: Optional[int] = None, **kwargs: Any) -> Any:
        """One unary call, sent again (the same request) while UNAVAILABLE: at most
        ``attempts`` times, backing off, all within ``timeout`` seconds."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        attempts = self.attempts if attempts is None else attempts
        waits = _backoff()
        attempt = 1
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return method(request, timeout=remaining, metadata=self._metadata, **kwargs)
            except grpc.RpcError as e:
                error = error_from_rpc(e)
            wait = next(waits)
            if not _may_retry(error, attempt, attempts, wait, deadline):
                raise error
            time.sleep(wait)
            attempt += 1

    def _archs(self, space: str, archs: Iterable[ArchLike], field: str = "archs") -> List[str]:
        return normalize_archs(space, archs, self._nb201, field)

    def max_batch(self, refresh: bool = False) -> int:
        """The server's batch limit (GetServerInfo().max_batch), cached after the first call."""
        with self._lock:
            cached = self._max_batch
        if cached is None or refresh:
            cached = self.server_info().max_batch
        return cached

    # -- calls ---------------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        """Version, search spaces and batch limit of the server."""
        r = self._call(self._stub.GetServerInfo, latpred_pb2.GetServerInfoRequest())
        with self._lock:
            self._max_batch = max(1, r.max_batch)
        return ServerInfo(version=r.version, spaces=list(r.spaces), max_batch=r.max_batch,
                          ready=r.ready)

    def health(self, service: str = "") -> str:
        """grpc.health.v1 status: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN".

        service: "" for the server as a whole, or "latpred.v1.LatencyPredictor".
        """
        r = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return _HEALTH.get(r.status, "UNKNOWN")

    def wait_until_serving(self, timeout: float = 300.0, interval: float = 0.5) -> None:
        """Waits until the server is reachable and its health status is SERVING.

        A server that is not up yet, or still preparing its models, is waited for; after
        ``timeout`` seconds DeadlineExceeded says what was seen last.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"{self.target} is not SERVING after {timeout:g} s (last: {last})")
            try:
                # wait_for_ready: a server not listening yet is waited for, not an error.
                status = self._call(self._health.Check, health_pb2.HealthCheckRequest(),
                                    timeout=min(remaining, self.timeout), attempts=1,
                                    wait_for_ready=True)
                last = _HEALTH.get(status.status, "UNKNOWN")
                if last == "SERVING":
                    return
            except (Unavailable, DeadlineExceeded) as e:
                last = f"{e.code.name}: {e.message}"
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    def devices(self, registered_only: bool = False) -> List[Device]:
        """Every known device (bundled source devices too unless registered_only), by name.

        The server answers a page at a time; this follows every page.
        """
        devices: List[Device] = []
        token = ""
        while True:
            r = self._call(self._stub.ListDevices,
                           latpred_pb2.ListDevicesRequest(registered_only=registered_only,
                                                          page_token=token))
            devices.extend(_device(d) for d in r.devices)
            if not r.next_page_token:
                return devices
            if r.next_page_token == token:
                raise LatpredError("ListDevices returned the page token it was given")
            token = r.next_page_token

    def device(self, name: str) -> Device:
        """One device; NotFound when the server does not know it."""
        return _device(self._call(self._stub.GetDevice, latpred_pb2.GetDeviceRequest(name=name)))

    def register(self, name: str, labels: Optional[Mapping[str, str]] = None,
                 features: Optional[FeaturesLike] = None) -> RegisterResult:
        """Creates a device, or replaces its labels and descriptor (its samples are kept).

        features: Feature objects (``Feature.reference(space, arch, ms)`` for reference
        latencies), or a mapping name -> value where "<space>:<arch>" names are reference
        latencies (ms) and other names have an unspecified source.
        """
        r = self._call(self._stub.RegisterDevice, _register_request(name, labels, features))
        return RegisterResult(device=_device(r.device), created=r.created)

    @overload
    def predict(self, device: str, space: str, archs: "numpy.ndarray",
                return_details: Literal[False] = False,
                interval: Optional[float] = None) -> "numpy.ndarray": ...

    @overload
    def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                return_details: Literal[False] = False,
                interval: Optional[float] = None) -> List[float]: ...

    @overload
    def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                return_details: Literal[True], interval: Optional[float] = None) -> Prediction: ...

    @overload
    def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                return_details: bool,
                interval: Optional[float] = None) -> Union[List[float], Prediction]: ...

    def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                return_details: bool = False,
                interval: Optional[float] = None) -> Any:
        """Predicted latency_ms of each architecture, in order.

        archs: a list (or any iterable) of architectures in any accepted spelling, or a
        numpy array: 1-D of NAS-Bench-201 indices (integers), or any array whose rows are
        architectures; the latencies then come back as a float64 numpy array.

        Any number of architectures: batches over the server's limit are split and sent
        a few at a time, and all results come from one model version (a chunk answered
        by an older model, because an adapt landed in between, is asked again). One bad
        architecture fails the call with InvalidArgument naming its position in archs.
        An empty list gives an empty result without a call (details: version 0, state
        UNSPECIFIED). With return_details, a Prediction that also has model_version,
        zero_shot and state.

        interval: a share of latencies in (0, 1) (0.8: the 10th to 90th percentile) to
        ask for bounds too; the Prediction of return_details then has lower_ms and
        upper_ms, empty when the device's model has no interval (zero-shot, a source
        device, fewer than 3 samples). predict_interval() is the short way.
        """
        share = 0.0 if interval is None else _coverage(interval, "interval")
        array = _is_ndarray(archs)
        strings = self._archs(space, archs)
        if not strings:
            return _shape_prediction(_empty_prediction(), return_details, array)
        limit = self.max_batch()
        try:
            result = self._predict(device, space, strings, limit, share)
        except ResourceExhausted:
            # The server may have restarted with a smaller --max-batch: split again.
            smaller = self.max_batch(refresh=True)
            if smaller >= limit:
                raise
            result = self._predict(device, space, strings, smaller, share)
        return _shape_prediction(result, return_details, array)

    @overload
    def predict_interval(self, device: str, space: str, archs: "numpy.ndarray",
                         coverage: float = 0.8) -> "numpy.ndarray": ...

    @overload
    def predict_interval(self, device: str, space: str, archs: Iterable[ArchLike],
                         coverage: float = 0.8) -> List[Tuple[float, float, float]]: ...

    def predict_interval(self, device: str, space: str, archs: Iterable[ArchLike],
                         coverage: float = 0.8) -> Any:
        """(latency_ms, lower_ms, upper_ms) of each architecture, in order.

        The bounds hold ``coverage`` of the device's latencies (0.8: its 10th and 90th
        percentiles; see the proto's PredictLatencyResponse): the log latency is the
        prediction plus s * T, s the spread of the model's leave-one-out log errors
        (FitStats.loo_log_sd) and T Student's t with samples - 1 degrees of freedom.
        Rough below 10 samples. Raises NoInterval (a FailedPrecondition) when the
        device's model has none: zero-shot, a source device, or fewer than 3 samples.
        Batching as predict(); an empty list gives [] without a call. A numpy array in
        gives a float64 array of shape (n, 3) out: columns latency, lower, upper.
        """
        result = self.predict(device, space, archs, return_details=True,
                              interval=_coverage(coverage, "coverage"))
        return _interval_triples(device, space, result, _is_ndarray(archs))

    def _predict(self, device: str, space: str, strings: List[str], limit: int,
                 interval: float) -> Prediction:
        chunks = _chunks(strings, limit)
        answers = self._predict_chunks(device, space, strings, chunks, interval)
        for _ in range(_VERSION_RETRIES):
            stale = _stale_chunks(answers)
            if not stale:
                break
            answers.update(self._predict_chunks(device, space, strings, stale, interval))
        return _merge(chunks, answers)

    def _predict_chunks(self, device: str, space: str, strings: List[str],
                        chunks: List[Tuple[int, int]],
                        interval: float) -> Dict[Tuple[int, int], Any]:
        """PredictLatency per chunk, at most _WINDOW in flight; errors name whole-list items."""
        answers: Dict[Tuple[int, int], Any] = {}
        pending: Deque[Tuple[Tuple[int, int], Any, Any]] = collections.deque()

        def collect() -> None:
            chunk, request, future = pending.popleft()
            try:
                try:
                    answer = future.result()
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE or self.attempts == 1:
                        raise
                    # Asked again, on its own, with the attempts left.
                    time.sleep(_FIRST_DELAY)
                    try:
                        answer = self._call(self._stub.PredictLatency, request,
                                            attempts=self.attempts - 1)
                    except LatpredError as error:
                        raise type(error)(_offset_message(error.message, chunk[0]),
                                          error.code) from None
            except grpc.RpcError as e:
                for _, _, other in pending:
                    other.cancel()
                details = e.details() if hasattr(e, "details") else None
                raise error_from_rpc(
                    e, _offset_message(details, chunk[0]) if details else None) from None
            except LatpredError:
                for _, _, other in pending:
                    other.cancel()
                raise
            _check_answer(chunk, answer)
            answers[chunk] = answer

        for chunk in chunks:
            request = latpred_pb2.PredictLatencyRequest(device=device, space=space,
                                                        archs=strings[chunk[0]:chunk[1]],
                                                        interval=interval)
            pending.append((chunk, request, self._stub.PredictLatency.future(
                request, timeout=self.timeout, metadata=self._metadata)))
            if len(pending) >= _WINDOW:
                collect()
        while pending:
            collect()
        return answers

    def submit(self, device: str, space: str, samples: Iterable[SampleLike],
               partial: bool = False, request_id: Optional[str] = None) -> SubmitResult:
        """Stores measured latencies of the device (durably, before the reply).

        samples: Sample objects, (arch, latency_ms[, repeats[, spread_ms]]) tuples or
        dicts with arch and latency_ms (and optionally repeats, spread_ms); arch in any
        accepted spelling. By default all or nothing: one invalid sample raises
        InvalidArgument and nothing is stored, and a batch over the server's limit
        raises ResourceExhausted (it is not split, which would break all-or-nothing).
        With partial=True the valid samples are stored, the invalid ones reported per
        item in results, and a large batch is sent in chunks.

        request_id: the batch's id (default: new_request_id()). The batch is sent up to 3
        times while the server answers Unavailable, always with this id, so the server
        stores it once: a retry of a batch that was stored answers with replayed=True
        and stores nothing. Pass the same id again to retry a whole submit() safely;
        "" sends none (no retry is then told from a new batch).
        Chunks of a split batch go as "<request_id>.<n>" (n = 0, 1, ...).
        """
        items = [_sample_message(space, i, s, self._nb201) for i, s in enumerate(samples)]
        batch_id = new_request_id() if request_id is None else request_id
        if not partial or not items:
            request = latpred_pb2.SubmitSamplesRequest(device=device, space=space,
                                                       samples=items, partial=partial,
                                                       request_id=batch_id)
            return _submit_result(self._call(self._stub.SubmitSamples, request), 0)
        limit = self.max_batch()
        accepted = rejected = count = 0
        replayed = True
        results: List[SampleResult] = []
        for n, start in enumerate(range(0, len(items), limit)):
            request = latpred_pb2.SubmitSamplesRequest(
                device=device, space=space, samples=items[start:start + limit], partial=True,
                request_id=f"{batch_id}.{n}" if batch_id else "")
            try:
                part = _submit_result(self._call(self._stub.SubmitSamples, request), start)
            except LatpredError as e:
                raise type(e)(_offset_message(e.message, start), e.code) from None
            accepted += part.accepted
            rejected += part.rejected
            count = part.sample_count
            replayed = replayed and part.replayed
            results.extend(part.results)
        return SubmitResult(accepted=accepted, rejected=rejected, sample_count=count,
                            results=results, replayed=replayed)

    def suggest(self, device: str, space: str, k: int,
                candidates: Optional[Iterable[ArchLike]] = None) -> List[str]:
        """The k architectures most worth measuring next on the device (canonical strings).

        candidates: the pool to choose from (any accepted spelling); default: the bundled
        architectures of the space.
        """
        request = latpred_pb2.SuggestSamplesRequest(device=device, space=space, k=k)
        if candidates is not None:
            request.candidates.extend(self._archs(space, candidates, "candidates"))
        return list(self._call(self._stub.SuggestSamples, request).archs)

    def adapt(self, device: str, space: str, wait: bool = True) -> AdaptResult:
        """Fits the device's model for the space from its samples.

        wait=False returns at once with pending=True while the fit runs on the server.
        """
        return _adapt_result(self._call(
            self._stub.AdaptDevice,
            latpred_pb2.AdaptDeviceRequest(device=device, space=space, no_wait=not wait)))
