"""examples/nas_search.py against the real server, as a user runs it."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

import latpred

from conftest import DATA_DIR, EXAMPLE, Server


def run_example(server: Server, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--server", server.target, *args],
                          capture_output=True, text=True, timeout=300)
    print(done.stdout)
    print(done.stderr, file=sys.stderr)
    return done


def parse(stdout: str) -> Dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def measured_pixel2() -> Dict[str, float]:
    with open(DATA_DIR / "help" / "nb201_latency.csv", newline="") as f:
        return {r["arch"]: float(r["pixel2"]) for r in csv.DictReader(f)}


def test_example_default_objective(server: Server) -> None:
    done = run_example(server, "--device", "pixel2", "--budget-ms", "12", "--population", "20",
                       "--sample-size", "5", "--children", "10", "--cycles", "10", "--seed", "7")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("search: regularised evolution over nb201 on pixel2 (source), "
                               "budget 12 ms, population 20, 10 cycles of 10 children, seed 7")
    out = parse(done.stdout)
    assert out["objective"].endswith(" parameters")
    arch = out["best architecture"]
    latpred.nb201_ops(arch)  # a valid cell string
    index = int(out["nas-bench-201 index"])
    assert latpred.Nb201Table.bundled().arch(index) == arch
    predicted = re.fullmatch(r"([0-9.]+) ms \(budget 12 ms\)", out["predicted latency"])
    assert predicted and float(predicted.group(1)) <= 12
    measured = re.fullmatch(r"([0-9.]+) ms \(data/help/nb201_latency.csv, column pixel2\)",
                            out["measured latency"])
    assert measured and float(measured.group(1)) == measured_pixel2()[arch]
    rate = re.fullmatch(r"(\d+) architectures in (\d+) calls, [0-9.]+ s, (\d+) per second",
                        out["predictions"])
    assert rate and int(rate.group(1)) >= 20 and int(rate.group(3)) > 0
    # The objective is the analytic parameter count of the best architecture.
    params = int(out["objective"].split()[0])
    assert params > 73306


def test_example_accuracy_csv_and_eagle_device(server: Server, tmp_path: Path) -> None:
    # A made-up accuracy per architecture, index / 15625: the search maximises the index.
    # Rows 0..99 name the architecture by its cell string, the others by index.
    table = latpred.Nb201Table.bundled()
    rows = ["index,arch,accuracy"]
    rows += [f",{table.arch(i)},{i / 15625}" if i < 100 else f"{i},,{i / 15625}"
             for i in range(len(table))]
    accuracy_csv = tmp_path / "accuracy.csv"
    accuracy_csv.write_text("\n".join(rows) + "\n")
    device = "embedded_gpu_jetson_nano_fp16"  # a data/eagle device
    done = run_example(server, "--device", device, "--budget-ms", "10", "--population", "10",
                       "--sample-size", "3", "--children", "5", "--cycles", "3", "--seed", "1",
                       "--accuracy-csv", str(accuracy_csv))
    assert done.returncode == 0, done.stderr
    out = parse(done.stdout)
    assert out["objective"] != "-inf"
    index = int(out["nas-bench-201 index"])
    assert float(out["objective"]) == pytest.approx(index / 15625, rel=1e-5)
    with open(DATA_DIR / "eagle" / "nb201_latency.csv", newline="") as f:
        eagle = {r["arch"]: r[device] for r in csv.DictReader(f)}
    arch = out["best architecture"]
    if eagle.get(arch):
        assert out["measured latency"] == (f"{float(eagle[arch]):g} ms "
                                           f"(data/eagle/nb201_latency.csv, column {device})")
    else:
        assert out["measured latency"].startswith("n/a")


def test_example_p_under_budget(server: Server, client: latpred.Client) -> None:
    """--p-under-budget 0.9: the best architecture's 80% interval ends under the budget."""
    rows = list(measured_pixel2().items())[::700][:20]
    client.register("py-nas-interval")
    client.submit("py-nas-interval", "nb201", rows)
    assert client.adapt("py-nas-interval", "nb201").fit.loo_log_sd > 0
    done = run_example(server, "--device", "py-nas-interval", "--budget-ms", "14",
                       "--p-under-budget", "0.9", "--population", "20", "--sample-size", "5",
                       "--children", "10", "--cycles", "10", "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert ("feasible: P(latency <= 14 ms) >= 0.9, i.e. the upper bound of the 80% interval "
            "<= 14 ms") in done.stdout.splitlines()
    out = parse(done.stdout)
    predicted = re.fullmatch(r"([0-9.]+) ms \(budget 14 ms\)", out["predicted latency"])
    quantile = re.fullmatch(r"([0-9.]+) ms \(upper bound of the 80% interval; budget 14 ms\)",
                            out["latency quantile 0.9"])
    assert predicted and quantile
    assert float(predicted.group(1)) < float(quantile.group(1)) <= 14
    [(_, _, upper)] = client.predict_interval("py-nas-interval", "nb201",
                                              [out["best architecture"]], coverage=0.8)
    assert float(quantile.group(1)) == pytest.approx(upper, abs=5e-4)

    # A source device has no interval: the search stops and says why.
    done = run_example(server, "--device", "pixel2", "--p-under-budget", "0.9", "--cycles", "1")
    assert done.returncode == 1
    assert "--p-under-budget needs a predictive interval" in done.stderr
    assert "no interval for pixel2/nb201" in done.stderr
    done = run_example(server, "--p-under-budget", "0.5")
    assert done.returncode == 2 and "0.5 < --p-under-budget < 1" in done.stderr


def test_example_reports_errors(server: Server) -> None:
    done = run_example(server, "--device", "no-such-device", "--cycles", "1")
    assert done.returncode == 1
    assert "NotFound" in done.stderr and "no-such-device" in done.stderr
