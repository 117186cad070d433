"""latpred.Client against a real latpred-server (see conftest.py): every call, every error."""
from __future__ import annotations

import csv
import math
from typing import Dict, List, Optional

import grpc
import pytest

import latpred
from latpred._proto import latpred_pb2, latpred_pb2_grpc

from conftest import DATA_DIR, MAX_BATCH, Server

NB201_CSV = DATA_DIR / "help" / "nb201_latency.csv"
FBNET_CSV = DATA_DIR / "help" / "fbnet_latency.csv"
GOOD = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def read_rows(path, limit: Optional[int] = None) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append(row)
            if len(rows) == limit:
                return rows
    return rows


@pytest.fixture(scope="module")
def nb201_rows() -> List[Dict[str, str]]:
    return read_rows(NB201_CSV, 300)


@pytest.fixture(scope="module")
def nb201_archs() -> Dict[int, str]:
    """Every NAS-Bench-201 index of the bundled CSV and its cell string."""
    return {int(r["index"]): r["arch"] for r in read_rows(NB201_CSV)}


@pytest.fixture(scope="module")
def raw(server: Server):
    """The generated stub on its own channel: what the server says, unfiltered."""
    with grpc.insecure_channel(server.target) as channel:
        yield latpred_pb2_grpc.LatencyPredictorStub(channel)


def raw_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=60)
    return info.value


# -- server info, health -------------------------------------------------------------

def test_server_info(client: latpred.Client) -> None:
    info = client.server_info()
    assert isinstance(info, latpred.ServerInfo)
    assert info.max_batch == MAX_BATCH
    assert {"nb201", "fbnet"} <= set(info.spaces)
    assert info.ready and info.version
    assert client.max_batch() == MAX_BATCH


def test_health(client: latpred.Client) -> None:
    assert client.health() == "SERVING"
    assert client.health("latpred.v1.LatencyPredictor") == "SERVING"
    client.wait_until_serving(timeout=5)  # returns at once


def test_health_unknown_service(client: latpred.Client) -> None:
    with pytest.raises(latpred.NotFound) as info:
        client.health("no.such.Service")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


# -- devices -------------------------------------------------------------------------

def test_devices(client: latpred.Client) -> None:
    devices = {d.name: d for d in client.devices()}
    pixel2 = devices["pixel2"]
    assert pixel2.source
    assert pixel2.state("nb201") == latpred.ModelState.SOURCE
    assert pixel2.sample_count("nb201") == 15625
    assert pixel2.spaces["nb201"].model_version >= 1
    assert "desktop_cpu_core_i7_7820x_fp32" in devices  # data/eagle
    assert all(not d.source for d in client.devices(registered_only=True))


def test_device(client: latpred.Client) -> None:
    d = client.device("pixel2")
    assert isinstance(d, latpred.Device) and d.name == "pixel2" and d.source
    assert d.state("fbnet") == latpred.ModelState.SOURCE
    assert d.created_unix_ms > 0


def test_unknown_device_is_not_found(client: latpred.Client, raw) -> None:
    expected = raw_error(raw.GetDevice, latpred_pb2.GetDeviceRequest(name="no-such-device"))
    calls = [
        lambda: client.device("no-such-device"),
        lambda: client.predict("no-such-device", "nb201", [GOOD]),
        lambda: client.submit("no-such-device", "nb201", [(GOOD, 3.0)]),
        lambda: client.suggest("no-such-device", "nb201", 3),
        lambda: client.adapt("no-such-device", "nb201"),
    ]
    for call in calls:
        with pytest.raises(latpred.NotFound) as info:
            call()
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert info.value.message == expected.details()
        assert isinstance(info.value, LookupError) and isinstance(info.value, latpred.LatpredError)


def test_bad_device_name_is_invalid_argument(client: latpred.Client) -> None:
    with pytest.raises(latpred.InvalidArgument, match="may only hold"):
        client.device("bad name!")
    with pytest.raises(latpred.InvalidArgument):
        client.register("")


def test_register(client: latpred.Client) -> None:
    first = client.register("py-reg", labels={"hardware": "Xeon", "batch_size": 1},
                            features=[latpred.Feature("l2_bandwidth", 42.5,
                                                      latpred.FeatureSource.MICROBENCHMARK,
                                                      "GB/s")])
    assert isinstance(first, latpred.RegisterResult)
    assert first.created
    assert first.device.labels == {"hardware": "Xeon", "batch_size": "1"}
    assert first.device.features == [latpred.Feature(
        "l2_bandwidth", 42.5, latpred.FeatureSource.MICROBENCHMARK, "GB/s")]
    assert not first.device.source
    again = client.register("py-reg", labels={"hardware": "Xeon Gold"})
    assert not again.created
    assert again.device.labels == {"hardware": "Xeon Gold"}
    assert again.device.features == []
    assert "py-reg" in {d.name for d in client.devices(registered_only=True)}


def test_register_source_device_is_failed_precondition(client: latpred.Client) -> None:
    with pytest.raises(latpred.FailedPrecondition, match="bundled source device") as info:
        client.register("pixel2")
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_register_bad_feature_is_invalid_argument(client: latpred.Client) -> None:
    with pytest.raises(latpred.InvalidArgument, match=r"features\[0\].*finite"):
        client.register("py-badfeature", features=[latpred.Feature("x", math.inf)])
    with pytest.raises(latpred.InvalidArgument, match="must be a number"):
        client.register("py-badfeature", features={"x": "fast"})  # type: ignore[dict-item]


# -- predict -------------------------------------------------------------------------

def test_predict_strings(client: latpred.Client, nb201_rows) -> None:
    archs = [row["arch"] for row in nb201_rows[:20]]
    latencies = client.predict("pixel2", "nb201", archs)
    assert isinstance(latencies, list) and len(latencies) == 20
    assert all(isinstance(x, float) and 0 < x < 1000 for x in latencies)
    # A source device predicts its own measurements closely (median error under 50 %).
    errors = sorted(abs(p / float(r["pixel2"]) - 1) for p, r in zip(latencies, nb201_rows))
    assert errors[len(errors) // 2] < 0.5


def test_predict_details(client: latpred.Client) -> None:
    result = client.predict("pixel2", "nb201", [GOOD, GOOD], return_details=True)
    assert isinstance(result, latpred.Prediction)
    assert result.state == latpred.ModelState.SOURCE
    assert result.zero_shot is False
    assert result.model_version >= 1
    assert len(result) == 2 and list(result) == result.latency_ms and result[0] == result[1]


def test_predict_empty_list_makes_no_call(client: latpred.Client) -> None:
    assert client.predict("no-such-device", "nb201", []) == []


def test_bad_arch_is_invalid_argument_with_server_message(client: latpred.Client, raw) -> None:
    archs = [GOOD, "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|", GOOD]
    expected = raw_error(raw.PredictLatency, latpred_pb2.PredictLatencyRequest(
        device="pixel2", space="nb201", archs=archs))
    assert expected.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(latpred.InvalidArgument) as info:
        client.predict("pixel2", "nb201", archs)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == expected.details()
    assert info.value.message.startswith("archs[1]: ")
    assert str(info.value) == expected.details()
    assert isinstance(info.value, ValueError)


def test_bad_arch_in_later_chunk_names_its_position_in_the_whole_list(
        client: latpred.Client, raw, nb201_rows) -> None:
    archs = [row["arch"] for row in nb201_rows[:250]]
    archs[170] = "|nor_conv_3x3~0|"
    expected = raw_error(raw.PredictLatency, latpred_pb2.PredictLatencyRequest(
        device="pixel2", space="nb201", archs=archs[100:200]))
    assert expected.details().startswith("archs[70]: ")
    with pytest.raises(latpred.InvalidArgument) as info:
        client.predict("pixel2", "nb201", archs)
    assert info.value.message == "archs[170]: " + expected.details()[len("archs[70]: "):]


def test_unknown_space_is_invalid_argument(client: latpred.Client) -> None:
    with pytest.raises(latpred.InvalidArgument, match="nb201"):
        client.predict("pixel2", "imagenet", ["x"])


def test_device_without_model_is_failed_precondition(client: latpred.Client) -> None:
    client.register("py-nomodel")
    with pytest.raises(latpred.FailedPrecondition) as info:
        client.predict("py-nomodel", "nb201", [GOOD])
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "has no nb201 model yet" in info.value.message
    assert client.device("py-nomodel").state("nb201") == latpred.ModelState.NONE


def test_batch_over_the_limit_is_split(client: latpred.Client, raw, nb201_rows) -> None:
    archs = [row["arch"] for row in nb201_rows[:250]]
    # The server itself refuses 250 at once...
    refused = raw_error(raw.PredictLatency, latpred_pb2.PredictLatencyRequest(
        device="pixel2", space="nb201", archs=archs))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the server's limit of 100" in refused.details()
    # ...the client splits them and keeps the order.
    result = client.predict("pixel2", "nb201", archs, return_details=True)
    assert len(result) == 250
    expected: List[float] = []
    for start in (0, 100, 200):
        expected += raw.PredictLatency(latpred_pb2.PredictLatencyRequest(
            device="pixel2", space="nb201", archs=archs[start:start + 100]), timeout=60).latency_ms
    assert result.latency_ms == pytest.approx(expected, rel=1e-12)
    assert result.state == latpred.ModelState.SOURCE


def test_nb201_index_spelling(client: latpred.Client, nb201_archs) -> None:
    indices = [0, 1, 2, 17, 15624]
    by_index = nb201_archs
    as_strings = client.predict("pixel2", "nb201", [by_index[i] for i in indices])
    assert client.predict("pixel2", "nb201", indices) == pytest.approx(as_strings, rel=1e-12)
    # Mixed spellings in one batch, and 250 indices split over three calls.
    mixed = client.predict("pixel2", "nb201", [0, by_index[1], latpred.nb201_ops(by_index[2])])
    assert mixed == pytest.approx(as_strings[:3], rel=1e-12)
    assert len(client.predict("pixel2", "nb201", range(250))) == 250


def test_nb201_unknown_index_is_invalid_argument(client: latpred.Client) -> None:
    with pytest.raises(latpred.InvalidArgument, match=r"^archs\[1\]: NAS-Bench-201 index 15625 "
                                                     r"is not in the bundled table") as info:
        client.predict("pixel2", "nb201", [0, 15625])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(latpred.InvalidArgument, match=r"archs\[0\]: a bool"):
        client.predict("pixel2", "nb201", [True])


def test_nb201_index_from_csv(server: Server) -> None:
    with latpred.Client(server.target, nb201_csv=NB201_CSV) as c:
        assert c.predict("pixel2", "nb201", [5]) == c.predict(
            "pixel2", "nb201", [latpred.Nb201Table.bundled().arch(5)])


def test_fbnet_list_spellings(client: latpred.Client) -> None:
    rows = read_rows(FBNET_CSV, 3)
    strings = [r["arch"] for r in rows]
    names = [s.split("-") for s in strings]
    ids = [[latpred.FBNET_OPS.index(op) for op in n] for n in names]
    expected = client.predict("pixel2", "fbnet", strings)
    assert client.predict("pixel2", "fbnet", names) == pytest.approx(expected, rel=1e-12)
    assert client.predict("pixel2", "fbnet", ids) == pytest.approx(expected, rel=1e-12)
    assert client.predict("pixel2", "fbnet", [tuple(i) for i in ids]) == pytest.approx(
        expected, rel=1e-12)
    # The server's own comma spelling of ids passes through as a string.
    assert client.predict("pixel2", "fbnet", [",".join(map(str, ids[0]))]) == pytest.approx(
        expected[:1], rel=1e-12)


def test_fbnet_bad_lists_are_invalid_argument(client: latpred.Client) -> None:
    with pytest.raises(latpred.InvalidArgument, match=r"archs\[0\]: .*op 3: id 9 is out of range"):
        client.predict("pixel2", "fbnet", [[0, 0, 0, 9] + [0] * 18])
    with pytest.raises(latpred.InvalidArgument, match=r"archs\[0\]: .*expected 22 ops, got 21"):
        client.predict("pixel2", "fbnet", [["skip"] * 21])
    with pytest.raises(latpred.InvalidArgument, match=r"'k7_e1' is not one of"):
        client.predict("pixel2", "fbnet", [["k7_e1"] + ["skip"] * 21])
    with pytest.raises(latpred.InvalidArgument, match="only in nb201"):
        client.predict("pixel2", "fbnet", [3])
    # A bad string goes to the server, whose message names the item.
    with pytest.raises(latpred.InvalidArgument, match=r"^archs\[1\]: "):
        client.predict("pixel2", "fbnet", ["-".join(["skip"] * 22), "skip-skip"])


# -- submit, suggest, adapt, zero-shot -----------------------------------------------

def test_new_device_workflow(client: latpred.Client, nb201_rows) -> None:
    """register -> suggest -> submit (all spellings) -> adapt -> predict."""
    created = client.register("py-phone", labels={"hardware": "Pixel 2 twin"})
    assert created.created and created.device.state("nb201") == latpred.ModelState.NONE
    measured = {r["arch"]: 1.3 * float(r["pixel2"]) for r in nb201_rows}
    index_of = {r["arch"]: int(r["index"]) for r in nb201_rows}

    suggested = client.suggest("py-phone", "nb201", 6, candidates=list(range(MAX_BATCH)))
    assert len(suggested) == 6 and len(set(suggested)) == 6
    assert all(s in measured for s in suggested)  # canonical strings of the candidates
    default_pool = client.suggest("py-phone", "nb201", 3)
    assert len(default_pool) == 3

    samples = [
        (suggested[0], measured[suggested[0]]),                           # tuple
        (index_of[suggested[1]], measured[suggested[1]], 10, 0.1),        # index, repeats
        {"arch": suggested[2], "latency_ms": measured[suggested[2]]},     # dict
        {"arch": latpred.nb201_ops(suggested[3]), "latency_ms": measured[suggested[3]],
         "repeats": 5, "spread_ms": 0.2},                                 # op list
        latpred.Sample(suggested[4], measured[suggested[4]]),             # Sample
        latpred.Sample(index_of[suggested[5]], measured[suggested[5]], repeats=3),
    ]
    result = client.submit("py-phone", "nb201", samples)
    assert isinstance(result, latpred.SubmitResult)
    assert (result.accepted, result.rejected, result.sample_count) == (6, 0, 6)
    assert [r.canonical_arch for r in result.results] == suggested
    assert all(r.accepted and not r.error for r in result.results)

    # All or nothing: one bad sample stores nothing and names the item.
    with pytest.raises(latpred.InvalidArgument, match=r"samples\[1\].*latency_ms must be a "
                                                      r"positive finite number") as info:
        client.submit("py-phone", "nb201", [(GOOD, 5.0), (GOOD, -1.0)])
    assert "nothing was stored" in info.value.message
    assert client.device("py-phone").sample_count("nb201") == 6
    with pytest.raises(latpred.InvalidArgument, match=r"samples\[0\]: latency_ms must be a number"):
        client.submit("py-phone", "nb201", [(GOOD, "fast")])
    with pytest.raises(latpred.InvalidArgument, match=r"samples\[0\]: a sample dict needs"):
        client.submit("py-phone", "nb201", [{"arch": GOOD, "latency": 3.0}])

    adapted = client.adapt("py-phone", "nb201")
    assert isinstance(adapted, latpred.AdaptResult)
    assert adapted.state == latpred.ModelState.ADAPTED and not adapted.pending
    assert adapted.model_version >= 1
    assert adapted.fit is not None and adapted.fit.samples == 6
    assert adapted.fit.set_aside == ()  # too few samples to tell a glitch from the device

    prediction = client.predict("py-phone", "nb201", list(measured), return_details=True)
    assert prediction.state == latpred.ModelState.ADAPTED and not prediction.zero_shot
    assert prediction.model_version == adapted.model_version
    device = client.device("py-phone")
    assert device.state("nb201") == latpred.ModelState.ADAPTED
    assert device.spaces["nb201"].fit is not None
    assert device.spaces["nb201"].model_version == adapted.model_version

    # adapt(wait=False) returns at once; the fit lands in the background.
    pending = client.adapt("py-phone", "nb201", wait=False)
    assert pending.pending and pending.fit is None


def test_predict_interval(client: latpred.Client, raw, nb201_rows) -> None:
    """A device adapted from 10 samples: bounds around every prediction, over chunks."""
    client.register("py-interval")
    samples = [(r["arch"], 1.1 * float(r["pixel2"])) for r in nb201_rows[::30][:10]]
    assert client.submit("py-interval", "nb201", samples).sample_count == 10
    adapted = client.adapt("py-interval", "nb201")
    assert adapted.fit is not None and adapted.fit.loo_log_sd > 0
    fit = client.device("py-interval").spaces["nb201"].fit
    assert fit is not None and fit.loo_log_sd == adapted.fit.loo_log_sd

    archs = [r["arch"] for r in nb201_rows[:250]]  # three chunks of at most MAX_BATCH
    bounds = client.predict_interval("py-interval", "nb201", archs)
    assert len(bounds) == 250
    assert all(lower < ms < upper for ms, lower, upper in bounds)
    assert [ms for ms, _, _ in bounds] == client.predict("py-interval", "nb201", archs)
    details = client.predict("py-interval", "nb201", archs, return_details=True,
                             interval=0.8)
    assert details.model_version == adapted.model_version
    assert details.lower_ms == [b[1] for b in bounds]
    assert details.upper_ms == [b[2] for b in bounds]
    wider = client.predict_interval("py-interval", "nb201", archs[:5], coverage=0.95)
    assert all(w[1] < b[1] and w[2] > b[2] for w, b in zip(wider, bounds))
    assert client.predict("py-interval", "nb201", archs[:5], return_details=True).lower_ms == []

    # A source device's model has no leave-one-out errors, hence no interval.
    assert client.predict("pixel2", "nb201", [GOOD], return_details=True,
                          interval=0.8).upper_ms == []
    with pytest.raises(latpred.NoInterval, match="no interval for pixel2/nb201"):
        client.predict_interval("pixel2", "nb201", [GOOD])
    # A share outside (0, 1): the client refuses it, and so does the server.
    with pytest.raises(latpred.InvalidArgument, match="coverage must lie strictly between"):
        client.predict_interval("py-interval", "nb201", [GOOD], coverage=1.5)
    error = raw_error(raw.PredictLatency, latpred_pb2.PredictLatencyRequest(
        device="py-interval", space="nb201", archs=[GOOD], interval=1.5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "interval" in error.details()


def test_submit_partial_splits_and_reports(client: latpred.Client, nb201_rows) -> None:
    client.register("py-bulk")
    samples = [(r["arch"], float(r["pixel2"])) for r in nb201_rows[:150]]
    samples[120] = (samples[120][0], 0.0)
    samples[130] = ("|nope|", 3.0)
    # 150 > --max-batch: all-or-nothing is not split (ResourceExhausted)...
    with pytest.raises(latpred.ResourceExhausted) as info:
        client.submit("py-bulk", "nb201", samples)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the server's limit of 100" in info.value.message
    assert client.device("py-bulk").sample_count("nb201") == 0
    # ...partial is, and results are numbered over the whole list.
    result = client.submit("py-bulk", "nb201", samples, partial=True)
    assert (result.accepted, result.rejected) == (148, 2)
    assert [r.index for r in result.results] == list(range(150))
    assert [r.index for r in result.results if not r.accepted] == [120, 130]
    assert "positive finite" in result.results[120].error
    assert result.sample_count == 148


def test_submit_to_source_device_is_failed_precondition(client: latpred.Client) -> None:
    with pytest.raises(latpred.FailedPrecondition, match="read-only"):
        client.submit("pixel2", "nb201", [(GOOD, 3.0)])


def test_suggest_bad_k_is_invalid_argument(client: latpred.Client) -> None:
    client.register("py-suggest")
    with pytest.raises(latpred.InvalidArgument, match="k must be between 1 and"):
        client.suggest("py-suggest", "nb201", 0)


def test_zero_shot_from_reference_latencies(client: latpred.Client, nb201_rows) -> None:
    refs = {f"nb201:{r['arch']}": float(r["pixel2"]) for r in nb201_rows[:10]}
    registered = client.register("py-zeroshot", features=refs)
    assert all(f.source == latpred.FeatureSource.REFERENCE_LATENCY and f.unit == "ms"
               for f in registered.device.features)
    prediction = client.predict("py-zeroshot", "nb201", [GOOD], return_details=True)
    assert prediction.zero_shot and prediction.state == latpred.ModelState.ZERO_SHOT
    assert client.device("py-zeroshot").state("nb201") == latpred.ModelState.ZERO_SHOT
    # Feature.reference takes any spelling.
    feature = latpred.Feature.reference("nb201", 3, 5.0)
    assert feature.name == "nb201:" + latpred.Nb201Table.bundled().arch(3)
    assert client.register("py-zeroshot-2", features=[feature]).device.features == [feature]
