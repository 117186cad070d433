#!/usr/bin/python3
"""ctest python_wheel: the Python client as a user installs it.

    run_installed.py --package BUILD/client/python/latpred --work DIR [pytest args...]

Builds the sdist and the wheel (client/python/tools/build_dist.py: the wheel from the
sdist), creates a fresh venv in DIR (`python3 -m venv --system-site-packages`, for
Debian's grpcio, protobuf, numpy and pytest; no network), pip installs the wheel with
its dependency ranges checked against what is installed (--no-index), and runs the
Python client tests (this directory, examples/nas_search.py among them) with the venv's
interpreter: PYTHONPATH is cleared, and conftest.py checks that `latpred` comes from the
venv ($LATPRED_EXPECT_INSTALLED), not from the build tree.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args, pytest_args = parser.parse_known_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)

    built = subprocess.run(
        [sys.executable, "-B", str(REPO / "client/python/tools/build_dist.py"), "-q",
         "--package", str(args.package), "--source", str(REPO / "client/python"),
         "--out", str(args.work)], stdout=subprocess.PIPE, text=True)
    if built.returncode != 0:
        print(built.stdout)
        print("run_installed.py: building the sdist and the wheel failed", file=sys.stderr)
        return 1
    sdist, wheel = built.stdout.split()
    print(f"built {Path(sdist).name} and {Path(wheel).name}", flush=True)

    venv = args.work / "venv"
    # --without-pip: Debian's pip (python3-pip) comes in with the system site packages.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    python = venv / "bin" / "python"
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-cache-dir",
                    "--quiet", wheel], check=True, env=environment)
    shown = subprocess.run([str(python), "-m", "pip", "show", "-f", "latpred"], check=True,
                           capture_output=True, text=True, env=environment).stdout
    print("\n".join(line for line in shown.splitlines()
                    if line.startswith(("Name", "Version", "Location", "Requires"))), flush=True)

    environment["LATPRED_EXPECT_INSTALLED"] = str(venv)
    return subprocess.run([str(python), "-B", "-m", "pytest", *pytest_args, str(HERE)],
                          env=environment, cwd=args.work).returncode


if __name__ == "__main__":
    sys.exit(main())
