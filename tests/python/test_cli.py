"""python -m latpred against the real server, side by side with the C++ CLI
($LATPRED_CLI_BIN, set by ctest): the same commands print the same tables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import latpred

from conftest import Server

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def py(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latpred", "--server", server.target, *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def cpp(server: Server, *args: str) -> subprocess.CompletedProcess:
    binary = os.environ.get("LATPRED_CLI_BIN")
    assert binary and os.access(binary, os.X_OK), "ctest sets LATPRED_CLI_BIN to the C++ CLI"
    return subprocess.run([binary, "--server", server.target, *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "latpred", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for command in ("devices", "predict", "suggest", "submit", "adapt"):
        assert command in done.stdout
    done = subprocess.run([sys.executable, "-m", "latpred", "predict", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--interval SHARE" in done.stdout
    assert "NAS-Bench-201 index" in done.stdout


def test_predict_and_devices_print_what_the_cpp_cli_prints(server: Server) -> None:
    for args in (["predict", "--device", "pixel2", "--space", "nb201", ARCH, latpred.nb201_string([0] * 6)],
                 ["devices"], ["device", "pixel2"], ["info"]):
        ours, theirs = py(server, *args), cpp(server, *args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
        assert ours.stdout == theirs.stdout, args
    # An index is a NAS-Bench-201 index; JSON has the C++ CLI's keys.
    done = py(server, "--json", "predict", "--device", "pixel2", "--space", "nb201", "0", "1")
    ours = json.loads(done.stdout)
    theirs = json.loads(cpp(server, "--json", "predict", "--device", "pixel2", "--space", "nb201",
                            *[latpred.Nb201Table.bundled().arch(i) for i in (0, 1)]).stdout)
    assert ours == theirs


def test_new_device_workflow(server: Server, tmp_path: Path) -> None:
    latpred.Client(server.target).register("py-cli-dev")
    done = py(server, "suggest", "--device", "py-cli-dev", "--space", "nb201", "-k", "6")
    assert done.returncode == 0, done.stderr
    archs: List[str] = done.stdout.split()
    assert len(archs) == 6
    with latpred.Client(server.target) as client:
        measured = client.predict("pixel3", "nb201", archs)
    rows = "arch,latency_ms\n" + "".join(f'"{a}",{ms * 2}\n' for a, ms in zip(archs, measured))
    (tmp_path / "measured.csv").write_text(rows)
    done = py(server, "submit", "--device", "py-cli-dev", "--space", "nb201",
              str(tmp_path / "measured.csv"), "--request-id", "py-cli-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "accepted 6, rejected 0; 6 samples stored for py-cli-dev/nb201\n"
    done = py(server, "submit", "--device", "py-cli-dev", "--space", "nb201", "-",
              "--request-id", "py-cli-1", stdin=rows)
    assert done.stdout.startswith("request id py-cli-1 was stored by an earlier submit")
    done = py(server, "adapt", "--device", "py-cli-dev", "--space", "nb201")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("model:         v1 (adapted)\nsamples:       6\n")
    ours = py(server, "predict", "--device", "py-cli-dev", "--space", "nb201", "--interval", "0.8",
              "--file", "-", stdin="# candidates\n" + "\n".join(archs[:3]) + "\n")
    theirs = cpp(server, "predict", "--device", "py-cli-dev", "--space", "nb201",
                 "--interval", "0.8", *archs[:3])
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
    assert "LOWER_MS" in ours.stdout and "80% interval: percentiles 10 to 90" in ours.stdout


def test_errors_and_usage(server: Server) -> None:
    done = py(server, "predict", "--device", "no-such-device", "--space", "nb201", "0")
    assert done.returncode == 1
    assert done.stderr.startswith("latpred: predict: NOT_FOUND: ") and "no-such-device" in done.stderr
    done = py(server, "predict", "--device", "pixel2", "--space", "nb201", "0", "--file", "x")
    assert done.returncode == 2 and "arguments or --file, not both" in done.stderr
    done = py(server, "predict", "--space", "nb201", "0")
    assert done.returncode == 2 and "--device" in done.stderr
    done = py(server, "no-such-command")
    assert done.returncode == 2
    done = py(server, "predict", "--device", "pixel2", "--space", "nb201", "0", "--interval", "0.8")
    assert done.returncode == 0
    assert "no interval: a source device's model" in done.stderr
