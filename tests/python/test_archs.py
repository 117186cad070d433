"""Architecture spellings and the generated package, without a server."""
from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

import latpred

from conftest import DATA_DIR, EXAMPLE

NB201_CSV = DATA_DIR / "help" / "nb201_latency.csv"
ALL_CONV3 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
             "nor_conv_3x3~2|")


def test_bundled_table_matches_the_csv() -> None:
    table = latpred.Nb201Table.bundled()
    with open(NB201_CSV, newline="") as f:
        rows = [(int(r["index"]), r["arch"]) for r in csv.DictReader(f)]
    assert len(table) == len(rows) == 15625
    for index, arch in rows:
        assert table.arch(index) == arch
    assert table.index(rows[1234][1]) == 1234
    assert 15624 in table and 15625 not in table and -1 not in table
    with pytest.raises(KeyError):
        table.arch(15625)


def test_table_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text(f"index,arch,acc\n7,{ALL_CONV3},0.9\n")
    table = latpred.Nb201Table.from_csv(path)
    assert len(table) == 1 and table.arch(7) == ALL_CONV3 and table.index(ALL_CONV3) == 7
    assert latpred.normalize_arch("nb201", 7, table) == ALL_CONV3
    with pytest.raises(ValueError, match=r"index 0 is not in the .*small.csv"):
        latpred.normalize_arch("nb201", 0, table)
    bad = tmp_path / "bad.csv"
    bad.write_text("arch\nx\n")
    with pytest.raises(ValueError, match="needs the columns index and arch"):
        latpred.Nb201Table.from_csv(bad)


def test_nb201_string_and_ops() -> None:
    ops = ["nor_conv_3x3", "none", "skip_connect", "skip_connect", "none", "nor_conv_3x3"]
    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert latpred.nb201_string(ops) == text
    assert latpred.nb201_string([3, 0, 1, 1, 0, 3]) == text
    assert latpred.nb201_ops(text) == ops
    with pytest.raises(ValueError):
        latpred.nb201_ops("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="expected 6 ops"):
        latpred.nb201_string([0] * 5)
    with pytest.raises(ValueError, match="id 5 is out of range 0..4"):
        latpred.nb201_string([5] * 6)


def test_fbnet_string() -> None:
    assert latpred.fbnet_string([8] * 22) == "-".join(["skip"] * 22)
    assert latpred.fbnet_string(["k3_e1"] + [7] * 21) == "-".join(["k3_e1"] + ["k5_e6"] * 21)
    assert latpred.FBNET_OPS == ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2",
                                 "k5_e3", "k5_e6", "skip")


def test_normalize_archs_errors_name_the_item() -> None:
    assert latpred.normalize_archs("nb201", [ALL_CONV3, 0]) == [
        ALL_CONV3, latpred.Nb201Table.bundled().arch(0)]
    with pytest.raises(latpred.InvalidArgument, match=r"^archs\[1\]: cannot read") as info:
        latpred.normalize_archs("nb201", [0, 1.5])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(latpred.InvalidArgument, match="single string"):
        latpred.normalize_archs("nb201", ALL_CONV3)  # type: ignore[arg-type]
    with pytest.raises(latpred.InvalidArgument, match=r"candidates\[0\]: .*bytes"):
        latpred.normalize_archs("nb201", [b"x"], field="candidates")  # type: ignore[list-item]
    # Strings are the server's to judge, in any space.
    assert latpred.normalize_archs("other", ["anything"]) == ["anything"]


def test_numpy_style_integers_are_indices() -> None:
    class NumpyInt:  # what numpy.int64 offers: __index__
        def __index__(self) -> int:
            return 3

    assert latpred.normalize_arch("nb201", NumpyInt()) == latpred.Nb201Table.bundled().arch(3)
    assert latpred.normalize_arch("fbnet", [NumpyInt()] * 22) == "-".join(["k3_e6"] * 22)


def test_error_hierarchy() -> None:
    for cls, code in [(latpred.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
                      (latpred.NotFound, grpc.StatusCode.NOT_FOUND),
                      (latpred.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
                      (latpred.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
                      (latpred.Unavailable, grpc.StatusCode.UNAVAILABLE),
                      (latpred.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
                      (latpred.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED)]:
        error = cls("why")
        assert isinstance(error, latpred.LatpredError)
        assert error.code == code and error.message == "why" and str(error) == "why"

    class FakeRpcError(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode, details: str) -> None:
            self._code, self._details = code, details

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return self._details

    mapped = latpred.error_from_rpc(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "no token"))
    assert type(mapped) is latpred.Unauthenticated and mapped.message == "no token"
    other = latpred.error_from_rpc(FakeRpcError(grpc.StatusCode.INTERNAL, "boom"))
    assert type(other) is latpred.LatpredError and other.code == grpc.StatusCode.INTERNAL
    assert isinstance(latpred.DeadlineExceeded("slow"), TimeoutError)


def test_generated_stubs_are_private_to_the_package() -> None:
    """No top-level latpred.v1 / grpc.health modules, no entries in the default pool."""
    code = (
        "import sys, latpred, latpred.client\n"
        "from google.protobuf import descriptor_pool\n"
        "assert 'latpred.v1' not in sys.modules and 'grpc.health' not in sys.modules\n"
        "for name in ('latpred/v1/latpred.proto', 'grpc/health/v1/health.proto'):\n"
        "    try:\n"
        "        descriptor_pool.Default().FindFileByName(name)\n"
        "    except KeyError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(name + ' is in the default pool')\n"
        "from latpred._proto import latpred_pb2\n"
        "assert latpred_pb2.PredictLatencyRequest.__module__ == 'latpred._proto.latpred_pb2'\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_version_is_the_cmake_project_version() -> None:
    assert latpred.__version__.count(".") == 2


def _load_example():
    spec = importlib.util.spec_from_file_location("nas_search", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("arch, params", [
    # Values of tests/core/nb201_test.cc (the server's analytic costs) and NAS-Bench-201.
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 73306),
    (ALL_CONV3, 1531546),
    ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
     587386),
    ("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|", 101306),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|", 73306),
])
def test_example_parameter_count(arch: str, params: int) -> None:
    assert _load_example().nb201_params(latpred.nb201_ops(arch)) == params
