#!/usr/bin/python3
"""Throughput of the Python clients against a real latpred-server: the asyncio client
with many calls in flight vs the sync client at the server's max batch.

    PYTHONPATH=build/client/python /usr/bin/python3 bench/python_client_bench.py \\
        [--server HOST:PORT | --server-bin build/server/latpred-server] [--seconds 5]

Without --server it starts latpred-server on a free port with a throwaway store
(--max-batch 1024; first start trains the base models: about 20 s to 2.5 min on 2
cores). Every figure predicts NAS-Bench-201 indices (numpy arrays, as NAS code holds
them) on the source device pixel2, in rounds of --seconds each:

  sync   1 call at a time, each of max_batch architectures (the sync client's best)
  async  --in-flight calls (64) in flight, each of max_batch architectures
  async  --in-flight calls in flight, each of --small-batch (64) architectures

and prints architectures per second. The issue's acceptance: async at max batch with
64 in flight >= sync at max batch.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

import latpred
import latpred.aio

DEVICE, SPACE = "pixel2", "nb201"


def start_server(binary: str, store: Path, max_batch: int) -> Tuple[subprocess.Popen, str]:
    out = store / "server.stdout"
    with open(out, "wb") as stdout, open(store / "server.stderr", "wb") as stderr:
        process = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data-dir",
                                    str(store / "data"), "--epochs", "5", "--threads", "2",
                                    "--max-batch", str(max_batch)],
                                   stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(r"listening on port (\d+)", out.read_text())
        if match:
            return process, f"127.0.0.1:{match.group(1)}"
        time.sleep(0.05)
    process.kill()
    sys.exit(f"latpred-server did not start: {(store / 'server.stderr').read_text()[-2000:]}")


def batches(size: int, rng: np.random.Generator):
    while True:
        yield rng.integers(0, 15625, size=size)


def bench_sync(target: str, size: int, seconds: float) -> float:
    rng = np.random.default_rng(1)
    source = batches(size, rng)
    with latpred.Client(target) as client:
        client.predict(DEVICE, SPACE, next(source))  # warm: channel, table, max_batch
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            done += len(client.predict(DEVICE, SPACE, next(source)))
        return done / (time.perf_counter() - started)


def bench_async(target: str, size: int, in_flight: int, seconds: float) -> float:
    async def main() -> float:
        rng = np.random.default_rng(2)
        source = batches(size, rng)
        async with latpred.aio.Client(target) as client:
            await client.predict(DEVICE, SPACE, next(source))  # warm
            done = 0
            started = time.perf_counter()
            end = started + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    # Not `done += len(await ...)`: that reads done before the await.
                    latency = await client.predict(DEVICE, SPACE, next(source))
                    done += len(latency)

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return done / (time.perf_counter() - started)
    return asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="HOST:PORT of a running server (else one is started)")
    parser.add_argument("--server-bin", default=os.environ.get(
        "LATPRED_SERVER_BIN", str(Path(__file__).resolve().parents[1] / "build/server/latpred-server")))
    parser.add_argument("--max-batch", type=int, default=1024,
                        help="--max-batch of the server started here (default 1024)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--small-batch", type=int, default=64)
    args = parser.parse_args()

    process: Optional[subprocess.Popen] = None
    with tempfile.TemporaryDirectory(prefix="latpred-pybench-") as tmp:
        target = args.server
        if target is None:
            process, target = start_server(args.server_bin, Path(tmp), args.max_batch)
        try:
            with latpred.Client(target) as client:
                client.wait_until_serving(timeout=600)
                max_batch = client.max_batch()
            print(f"latpred {latpred.__version__}, server {target}, max_batch {max_batch}, "
                  f"{args.seconds:g} s per round, {os.cpu_count()} CPUs", flush=True)
            sync = bench_sync(target, max_batch, args.seconds)
            print(f"sync   1 in flight   x {max_batch:5d} archs/call: {sync:12,.0f} archs/s",
                  flush=True)
            big = bench_async(target, max_batch, args.in_flight, args.seconds)
            print(f"async  {args.in_flight:2d} in flight x {max_batch:5d} archs/call: "
                  f"{big:12,.0f} archs/s ({big / sync:.2f}x sync)", flush=True)
            small = bench_async(target, args.small_batch, args.in_flight, args.seconds)
            print(f"async  {args.in_flight:2d} in flight x {args.small_batch:5d} archs/call: "
                  f"{small:12,.0f} archs/s ({small / sync:.2f}x sync)", flush=True)
            ok = big >= sync
            print(f"acceptance (async {args.in_flight} in flight >= sync at max batch): "
                  f"{'yes' if ok else 'NO'}")
            return 0 if ok else 1
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
