"""What a real server does not show on demand: a slow call (deadlines), a server that
never becomes ready or starts late, an adapt landing between the chunks of a split
batch, and bounds a server answers for only some architectures. A small in-process gRPC
server (the generated servicers) plays latpred."""
from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Iterator, List, Optional, Tuple

import grpc
import pytest

import latpred
from latpred._proto import health_pb2, health_pb2_grpc, latpred_pb2, latpred_pb2_grpc


class FakeLatpred(latpred_pb2_grpc.LatencyPredictorServicer):
    def __init__(self) -> None:
        self.predict_calls = 0
        self.intervals: List[float] = []
        self.lock = threading.Lock()
        self.delay_s = 0.0
        self.device_names = ["fake-dev"]
        self.list_requests: List[latpred_pb2.ListDevicesRequest] = []
        self.submit_requests: List[latpred_pb2.SubmitSamplesRequest] = []
        # SubmitSamples: how many calls to answer UNAVAILABLE "outcome unknown" (as the
        # server does when PostgreSQL lost the reply to COMMIT), storing each all the same.
        self.submit_failures = 0
        self.stored_ids: set = set()

    def _delay(self) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)

    def GetServerInfo(self, request, context):
        self._delay()
        return latpred_pb2.ServerInfo(version="fake", spaces=["nb201"], max_batch=2, ready=True)

    def ListDevices(self, request, context):
        self._delay()
        # Pages of two, as a server with more devices than a page holds answers.
        self.list_requests.append(request)
        start = int(request.page_token or 0)
        more = start + 2 < len(self.device_names)
        return latpred_pb2.ListDevicesResponse(
            devices=[latpred_pb2.Device(name=n) for n in self.device_names[start:start + 2]],
            next_page_token=str(start + 2) if more else "")

    def SubmitSamples(self, request, context):
        with self.lock:
            self.submit_requests.append(request)
            replayed = bool(request.request_id) and request.request_id in self.stored_ids
            self.stored_ids.add(request.request_id)
            fail = self.submit_failures > 0
            self.submit_failures -= fail
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "postgresql: storing samples: "
                          "connection lost during commit, outcome unknown")
        n = len(request.samples)
        return latpred_pb2.SubmitSamplesResponse(
            accepted=n, sample_count=n, replayed=replayed,
            results=[latpred_pb2.SampleResult(index=i, accepted=True, canonical_arch=s.arch)
                     for i, s in enumerate(request.samples)])

    def PredictLatency(self, request, context):
        self._delay()
        with self.lock:
            self.predict_calls += 1
            self.intervals.append(request.interval)
            # The first answer comes from model version 1, later ones from version 2.
            version = 1 if self.predict_calls == 1 else 2
        latency = [10.0 * version + len(a) for a in request.archs]
        # With an interval, bounds of half and twice the latency, except for device
        # "fresh" (a zero-shot model has none) and "broken" (one bound short).
        bounds = request.interval > 0 and request.device != "fresh"
        lower = [0.5 * ms for ms in latency] if bounds else []
        upper = [2.0 * ms for ms in latency] if bounds else []
        if request.device == "broken":
            lower = lower[1:]
        return latpred_pb2.PredictLatencyResponse(
            latency_ms=latency, model_version=version, lower_ms=lower, upper_ms=upper,
            state=(latpred_pb2.MODEL_STATE_ZERO_SHOT if request.device == "fresh"
                   else latpred_pb2.MODEL_STATE_ADAPTED),
            zero_shot=request.device == "fresh")


class FakeHealth(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.status = health_pb2.HealthCheckResponse.SERVING

    def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=self.status)


def serve(credentials: Optional[grpc.ServerCredentials] = None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    fake, health = FakeLatpred(), FakeHealth()
    latpred_pb2_grpc.add_LatencyPredictorServicer_to_server(fake, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port, fake, health


@pytest.fixture
def fake() -> Iterator[Tuple[str, FakeLatpred, FakeHealth]]:
    server, port, servicer, health = serve()
    yield f"127.0.0.1:{port}", servicer, health
    server.stop(None)


def test_devices_follows_every_page(fake) -> None:
    target, servicer, _ = fake
    servicer.device_names = [f"dev-{i}" for i in range(5)]
    with latpred.Client(target) as client:
        assert [d.name for d in client.devices(registered_only=True)] == servicer.device_names
    assert [r.page_token for r in servicer.list_requests] == ["", "2", "4"]
    assert all(r.registered_only for r in servicer.list_requests)


def test_timeout_is_deadline_exceeded(fake) -> None:
    target, servicer, _ = fake
    servicer.delay_s = 1.0
    with latpred.Client(target, timeout=0.2) as client:
        with pytest.raises(latpred.DeadlineExceeded) as info:
            client.devices()
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert isinstance(info.value, TimeoutError)


def test_wait_until_serving_times_out_on_not_serving(fake) -> None:
    target, _, health = fake
    health.status = health_pb2.HealthCheckResponse.NOT_SERVING
    with latpred.Client(target) as client:
        assert client.health() == "NOT_SERVING"
        start = time.monotonic()
        with pytest.raises(latpred.DeadlineExceeded, match="not SERVING after 1 s "
                                                           r"\(last: NOT_SERVING\)"):
            client.wait_until_serving(timeout=1.0, interval=0.1)
        assert time.monotonic() - start < 5
        health.status = health_pb2.HealthCheckResponse.SERVING
        client.wait_until_serving(timeout=5)


def test_wait_until_serving_waits_for_a_late_server() -> None:
    # Reserve a port, then start the server on it after the client began waiting.
    server, port, _, _ = serve()
    server.stop(None)
    target = f"127.0.0.1:{port}"
    started: List[grpc.Server] = []

    def start_later() -> None:
        time.sleep(1.0)
        late = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(FakeHealth(), late)
        late.add_insecure_port(target)
        late.start()
        started.append(late)

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with latpred.Client(target) as client:
            client.wait_until_serving(timeout=30)
    finally:
        thread.join()
        for s in started:
            s.stop(None)


def test_unreachable_server_is_unavailable() -> None:
    server, port, _, _ = serve()
    server.stop(None)
    with latpred.Client(f"127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(latpred.Unavailable) as info:
            client.devices()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    with latpred.Client(f"127.0.0.1:{port}") as client:
        with pytest.raises(latpred.DeadlineExceeded, match="last: UNAVAILABLE|last: DEADLINE"):
            client.wait_until_serving(timeout=0.5)


def test_split_batch_comes_from_one_model_version(fake) -> None:
    """A chunk answered by model 1 while the others saw model 2 is asked again."""
    target, servicer, _ = fake
    archs = ["a", "bb", "ccc", "dddd", "eeeee"]  # max_batch 2: three chunks
    with latpred.Client(target) as client:
        result = client.predict("dev", "nb201", archs, return_details=True)
    assert result.model_version == 2
    assert result.latency_ms == [20.0 + len(a) for a in archs]
    assert result.state == latpred.ModelState.ADAPTED and not result.zero_shot
    assert servicer.predict_calls == 4  # three chunks, one of them twice


def test_split_batch_interval_comes_from_one_model_version(fake) -> None:
    """Every chunk asks for the interval; the bounds, like the latencies, come from the
    newest model, in input order."""
    target, servicer, _ = fake
    archs = ["a", "bb", "ccc", "dddd", "eeeee"]
    with latpred.Client(target) as client:
        result = client.predict("dev", "nb201", archs, return_details=True, interval=0.8)
    assert servicer.intervals == [0.8] * 4  # three chunks, one of them twice
    assert result.model_version == 2
    assert result.latency_ms == [20.0 + len(a) for a in archs]
    assert result.lower_ms == [0.5 * (20.0 + len(a)) for a in archs]
    assert result.upper_ms == [2.0 * (20.0 + len(a)) for a in archs]


def test_predict_interval_gives_triples_and_predict_stays_floats(fake) -> None:
    target, servicer, _ = fake
    with latpred.Client(target) as client:
        client.predict("dev", "nb201", ["x"])  # model 1 answers the first call only
        assert client.predict_interval("dev", "nb201", ["a", "bb"], coverage=0.9) == [
            (21.0, 10.5, 42.0), (22.0, 11.0, 44.0)]
        assert client.predict("dev", "nb201", ["a"], interval=0.8) == [21.0]
        plain = client.predict("dev", "nb201", ["a"], return_details=True)
        assert plain.lower_ms == [] and plain.upper_ms == []
        assert client.predict_interval("dev", "nb201", []) == []
    assert servicer.intervals == [0.0, 0.9, 0.8, 0.0]


def test_predict_interval_without_bounds_is_no_interval(fake) -> None:
    target, _, _ = fake
    with latpred.Client(target) as client:
        details = client.predict("fresh", "nb201", ["a", "bb", "ccc"], return_details=True,
                                 interval=0.8)
        assert details.zero_shot and details.lower_ms == [] and details.upper_ms == []
        assert len(details.latency_ms) == 3
        with pytest.raises(latpred.NoInterval, match=r"no interval for fresh/nb201: .*"
                                                     r"zero_shot.*at least 3 samples") as info:
            client.predict_interval("fresh", "nb201", ["a", "bb", "ccc"])
    assert isinstance(info.value, latpred.FailedPrecondition)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_bad_coverage_is_invalid_argument_before_any_call(fake) -> None:
    target, servicer, _ = fake
    with latpred.Client(target) as client:
        for bad in (0, 1, 1.5, -0.2, float("nan"), True, "0.8"):
            with pytest.raises(latpred.InvalidArgument, match="coverage"):
                client.predict_interval("dev", "nb201", ["a"], coverage=bad)
            with pytest.raises(ValueError, match="interval"):
                client.predict("dev", "nb201", ["a"], interval=bad)
    assert servicer.predict_calls == 0


def test_bounds_for_some_architectures_only_are_an_error(fake) -> None:
    target, _, _ = fake
    with latpred.Client(target) as client:
        with pytest.raises(latpred.LatpredError, match="1 lower and 2 upper bounds for 2 "
                                                       "architectures"):
            client.predict_interval("broken", "nb201", ["a", "bb"])


def test_submit_retries_a_lost_reply_with_the_same_request_id(fake) -> None:
    target, service, _ = fake
    service.submit_failures = 2  # stored twice over, answered UNAVAILABLE both times
    with latpred.Client(target, token="", timeout=10) as client:
        result = client.submit("fake-dev", "nb201", [("a", 1.0), ("b", 2.0)])
    assert result.replayed and result.accepted == 2
    ids = [r.request_id for r in service.submit_requests]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert len(ids[0]) == 32 and int(ids[0], 16) >= 0


def test_submit_gives_each_batch_an_id_of_its_own(fake) -> None:
    target, service, _ = fake
    with latpred.Client(target, token="", timeout=10) as client:
        first = client.submit("fake-dev", "nb201", [("a", 1.0)])
        second = client.submit("fake-dev", "nb201", [("a", 1.0)])
        # A caller that reruns a whole submit passes the id again: replayed.
        again = client.submit("fake-dev", "nb201", [("a", 1.0)], request_id="mine-1")
        rerun = client.submit("fake-dev", "nb201", [("a", 1.0)], request_id="mine-1")
    ids = [r.request_id for r in service.submit_requests]
    assert ids[0] != ids[1] and ids[2:] == ["mine-1", "mine-1"]
    assert not first.replayed and not second.replayed and not again.replayed
    assert rerun.replayed


def test_split_submit_sends_each_chunk_with_its_own_id_on_every_retry(fake) -> None:
    target, service, _ = fake
    service.submit_failures = 1
    with latpred.Client(target, token="", timeout=10) as client:
        result = client.submit("fake-dev", "nb201", [("a", 1.0), ("b", 2.0), ("c", 3.0)],
                               partial=True, request_id="batch")
    # max_batch is 2: chunks "batch.0" (failed once, retried) and "batch.1".
    assert [r.request_id for r in service.submit_requests] == ["batch.0", "batch.0", "batch.1"]
    assert result.accepted == 3 and not result.replayed


def test_submit_gives_up_after_three_attempts(fake) -> None:
    target, service, _ = fake
    service.submit_failures = 5
    with latpred.Client(target, token="", timeout=10) as client:
        with pytest.raises(latpred.Unavailable, match="outcome unknown"):
            client.submit("fake-dev", "nb201", [("a", 1.0)])
    assert len(service.submit_requests) == 3
    assert len({r.request_id for r in service.submit_requests}) == 1
