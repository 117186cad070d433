"""latpred.aio.Client: the asyncio client (grpc.aio), for NAS workers that keep many
predictions in flight.

    import asyncio, latpred.aio

    async def main():
        async with latpred.aio.Client("127.0.0.1:50051") as client:
            await client.wait_until_serving(timeout=300)
            batches = [range(i, i + 64) for i in range(0, 4096, 64)]
            answers = await asyncio.gather(
                *(client.predict("pixel2", "nb201", b) for b in batches))

    asyncio.run(main())

The methods, arguments, results and errors are those of :class:`latpred.Client`, as
coroutines: batches over the server's limit are split (a few chunks in flight, every
result from one model version), every call is sent again while the server answers
UNAVAILABLE (backing off, within the call's timeout; SubmitSamples always with the
batch's request id), and failures raise the typed errors of :mod:`latpred.errors`.
Create the client inside a running event loop and use it from that loop only.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import (TYPE_CHECKING, Any, Dict, Iterable, List, Literal, Mapping, Optional,
                    Sequence, Tuple, Union, cast, overload)

import grpc
import grpc.aio

from ._proto import health_pb2, health_pb2_grpc, latpred_pb2, latpred_pb2_grpc
from .archs import Nb201Table, normalize_archs
from .client import (_ATTEMPTS, _HEALTH, _VERSION_RETRIES, _WINDOW, FeaturesLike, SampleLike,
                     _adapt_result, _backoff, _channel_options, _check_answer, _check_token,
                     _chunks, _coverage, _device, _empty_prediction, _interval_triples,
                     _is_ndarray, _may_retry, _merge, _offset_message, _register_request,
                     _sample_message, _shape_prediction, _stale_chunks, _submit_result,
                     new_request_id, token_from_environment)
from .datatypes import (AdaptResult, ArchLike, Device, Prediction, RegisterResult,
                        SampleResult, ServerInfo, SubmitResult)
from .errors import DeadlineExceeded, LatpredError, ResourceExhausted, Unavailable, error_from_rpc

if TYPE_CHECKING:  # numpy is optional: only its type is named here
    import numpy

__all__ = ["Client"]


class Client:
    """An asyncio connection to a latpred server; the arguments are those of
    :class:`latpred.Client` (target, token, ca, timeout, nb201_csv, options, attempts).

    ``async with latpred.aio.Client(target) as client:`` or ``await client.close()``.
    Any number of calls may be in flight at once on one client.
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
        channel_options = _channel_options(options)
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.aio.secure_channel(target, credentials,
                                                    options=channel_options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=channel_options)
        self._stub: Any = cast(Any, latpred_pb2_grpc).LatencyPredictorStub(self._channel)
        self._health: Any = cast(Any, health_pb2_grpc).HealthStub(self._channel)

    # -- plumbing ------------------------------------------------------------------

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"latpred.aio.Client({self.target!r})"

    async def _call(self, method: Any, request: Any, timeout: Optional[float] = None,
                    attempts: Optional[int] = None, **kwargs: Any) -> Any:
        """One unary call, sent again while UNAVAILABLE: at most ``attempts`` times,
        backing off, all within ``timeout`` seconds."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        attempts = self.attempts if attempts is None else attempts
        waits = _backoff()
        attempt = 1
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return await method(request, timeout=remaining, metadata=self._metadata,
                                    **kwargs)
            except grpc.RpcError as e:
                error = error_from_rpc(e)
            wait = next(waits)
            if not _may_retry(error, attempt, attempts, wait, deadline):
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    def _archs(self, space: str, archs: Iterable[ArchLike], field: str = "archs") -> List[str]:
        return normalize_archs(space, archs, self._nb201, field)

    async def max_batch(self, refresh: bool = False) -> int:
        """The server's batch limit (GetServerInfo().max_batch), cached after the first call."""
        if self._max_batch is None or refresh:
            return (await self.server_info()).max_batch
        return self._max_batch

    # -- calls ---------------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        """Version, search spaces and batch limit of the server."""
        r = await self._call(self._stub.GetServerInfo, latpred_pb2.GetServerInfoRequest())
        self._max_batch = max(1, r.max_batch)
        return ServerInfo(version=r.version, spaces=list(r.spaces), max_batch=r.max_batch,
                          ready=r.ready)

    async def health(self, service: str = "") -> str:
        """grpc.health.v1 status: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN"."""
        r = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return _HEALTH.get(r.status, "UNKNOWN")

    async def wait_until_serving(self, timeout: float = 300.0, interval: float = 0.5) -> None:
        """Waits until the server is reachable and SERVING; DeadlineExceeded after timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"{self.target} is not SERVING after {timeout:g} s (last: {last})")
            try:
                status = await self._call(self._health.Check, health_pb2.HealthCheckRequest(),
                                          timeout=min(remaining, self.timeout), attempts=1,
                                          wait_for_ready=True)
                last = _HEALTH.get(status.status, "UNKNOWN")
                if last == "SERVING":
                    return
            except (Unavailable, DeadlineExceeded) as e:
                last = f"{e.code.name}: {e.message}"
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    async def devices(self, registered_only: bool = False) -> List[Device]:
        """Every known device (bundled source devices too unless registered_only), by name."""
        devices: List[Device] = []
        token = ""
        while True:
            r = await self._call(self._stub.ListDevices,
                                 latpred_pb2.ListDevicesRequest(registered_only=registered_only,
                                                                page_token=token))
            devices.extend(_device(d) for d in r.devices)
            if not r.next_page_token:
                return devices
            if r.next_page_token == token:
                raise LatpredError("ListDevices returned the page token it was given")
            token = r.next_page_token

    async def device(self, name: str) -> Device:
        """One device; NotFound when the server does not know it."""
        return _device(await self._call(self._stub.GetDevice,
                                        latpred_pb2.GetDeviceRequest(name=name)))

    async def register(self, name: str, labels: Optional[Mapping[str, str]] = None,
                       features: Optional[FeaturesLike] = None) -> RegisterResult:
        """Creates a device, or replaces its labels and descriptor (its samples are kept)."""
        r = await self._call(self._stub.RegisterDevice,
                             _register_request(name, labels, features))
        return RegisterResult(device=_device(r.device), created=r.created)

    @overload
    async def predict(self, device: str, space: str, archs: "numpy.ndarray",
                      return_details: Literal[False] = False,
                      interval: Optional[float] = None) -> "numpy.ndarray": ...

    @overload
    async def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                      return_details: Literal[False] = False,
                      interval: Optional[float] = None) -> List[float]: ...

    @overload
    async def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                      return_details: Literal[True],
                      interval: Optional[float] = None) -> Prediction: ...

    @overload
    async def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                      return_details: bool,
                      interval: Optional[float] = None) -> Union[List[float], Prediction]: ...

    async def predict(self, device: str, space: str, archs: Iterable[ArchLike],
                      return_details: bool = False, interval: Optional[float] = None) -> Any:
        """Predicted latency_ms of each architecture, in order: see latpred.Client.predict
        (a numpy array in gives a float64 array out)."""
        share = 0.0 if interval is None else _coverage(interval, "interval")
        array = _is_ndarray(archs)
        strings = self._archs(space, archs)
        if not strings:
            return _shape_prediction(_empty_prediction(), return_details, array)
        limit = await self.max_batch()
        try:
            result = await self._predict(device, space, strings, limit, share)
        except ResourceExhausted:
            # The server may have restarted with a smaller --max-batch: split again.
            smaller = await self.max_batch(refresh=True)
            if smaller >= limit:
                raise
            result = await self._predict(device, space, strings, smaller, share)
        return _shape_prediction(result, return_details, array)

    @overload
    async def predict_interval(self, device: str, space: str, archs: "numpy.ndarray",
                               coverage: float = 0.8) -> "numpy.ndarray": ...

    @overload
    async def predict_interval(self, device: str, space: str, archs: Iterable[ArchLike],
                               coverage: float = 0.8) -> List[Tuple[float, float, float]]: ...

    async def predict_interval(self, device: str, space: str, archs: Iterable[ArchLike],
                               coverage: float = 0.8) -> Any:
        """(latency_ms, lower_ms, upper_ms) of each architecture: see
        latpred.Client.predict_interval (a numpy array in gives an (n, 3) array out)."""
        result = await self.predict(device, space, archs, return_details=True,
                                    interval=_coverage(coverage, "coverage"))
        return _interval_triples(device, space, result, _is_ndarray(archs))

    async def _predict(self, device: str, space: str, strings: List[str], limit: int,
                       interval: float) -> Prediction:
        chunks = _chunks(strings, limit)
        answers = await self._predict_chunks(device, space, strings, chunks, interval)
        for _ in range(_VERSION_RETRIES):
            stale = _stale_chunks(answers)
            if not stale:
                break
            answers.update(await self._predict_chunks(device, space, strings, stale, interval))
        return _merge(chunks, answers)

    async def _predict_chunks(self, device: str, space: str, strings: List[str],
                              chunks: List[Tuple[int, int]],
                              interval: float) -> Dict[Tuple[int, int], Any]:
        """PredictLatency per chunk, at most _WINDOW in flight; errors name whole-list items."""
        async def one(chunk: Tuple[int, int]) -> Any:
            request = latpred_pb2.PredictLatencyRequest(device=device, space=space,
                                                        archs=strings[chunk[0]:chunk[1]],
                                                        interval=interval)
            try:
                answer = await self._call(self._stub.PredictLatency, request)
            except LatpredError as e:
                raise type(e)(_offset_message(e.message, chunk[0]), e.code) from None
            _check_answer(chunk, answer)
            return answer

        if len(chunks) == 1:  # the common case: no tasks, no semaphore
            return {chunks[0]: await one(chunks[0])}
        window = asyncio.Semaphore(_WINDOW)

        async def limited(chunk: Tuple[int, int]) -> Any:
            async with window:
                return await one(chunk)

        tasks = [asyncio.ensure_future(limited(c)) for c in chunks]
        try:
            answers = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return dict(zip(chunks, answers))

    async def submit(self, device: str, space: str, samples: Iterable[SampleLike],
                     partial: bool = False, request_id: Optional[str] = None) -> SubmitResult:
        """Stores measured latencies of the device: see latpred.Client.submit (request ids,
        all or nothing unless partial, retried while UNAVAILABLE with the same id)."""
        items = [_sample_message(space, i, s, self._nb201) for i, s in enumerate(samples)]
        batch_id = new_request_id() if request_id is None else request_id
        if not partial or not items:
            request = latpred_pb2.SubmitSamplesRequest(device=device, space=space,
                                                       samples=items, partial=partial,
                                                       request_id=batch_id)
            return _submit_result(await self._call(self._stub.SubmitSamples, request), 0)
        limit = await self.max_batch()
        accepted = rejected = count = 0
        replayed = True
        results: List[SampleResult] = []
        for n, start in enumerate(range(0, len(items), limit)):
            request = latpred_pb2.SubmitSamplesRequest(
                device=device, space=space, samples=items[start:start + limit], partial=True,
                request_id=f"{batch_id}.{n}" if batch_id else "")
            try:
                part = _submit_result(await self._call(self._stub.SubmitSamples, request),
                                      start)
            except LatpredError as e:
                raise type(e)(_offset_message(e.message, start), e.code) from None
            accepted += part.accepted
            rejected += part.rejected
            count = part.sample_count
            replayed = replayed and part.replayed
            results.extend(part.results)
        return SubmitResult(accepted=accepted, rejected=rejected, sample_count=count,
                            results=results, replayed=replayed)

    async def suggest(self, device: str, space: str, k: int,
                      candidates: Optional[Iterable[ArchLike]] = None) -> List[str]:
        """The k architectures most worth measuring next on the device (canonical strings)."""
        request = latpred_pb2.SuggestSamplesRequest(device=device, space=space, k=k)
        if candidates is not None:
            request.candidates.extend(self._archs(space, candidates, "candidates"))
        return list((await self._call(self._stub.SuggestSamples, request)).archs)

    async def adapt(self, device: str, space: str, wait: bool = True) -> AdaptResult:
        """Fits the device's model for the space; wait=False returns at once (pending)."""
        return _adapt_result(await self._call(
            self._stub.AdaptDevice,
            latpred_pb2.AdaptDeviceRequest(device=device, space=space, no_wait=not wait)))
