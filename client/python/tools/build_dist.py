#!/usr/bin/python3
"""Builds the sdist and the wheel of the latpred Python package (CMake target
latpred_python_wheel; also run by the ctest python_wheel).

    build_dist.py --package BUILD/client/python/latpred --source client/python --out DIR

Stages DIR/src/: pyproject.toml, setup.py and README.md of --source, and the package
the CMake target latpred_python assembled (--package: the client's modules, the
generated gRPC stubs in _proto/, the NAS-Bench-201 table, _version.py). Then builds
the sdist from the stage and the wheel from the sdist (so that the sdist is known to be
complete), offline: `python3 -m build --no-isolation` with the installed setuptools and
wheel (Debian 12: python3-build, python3-setuptools, python3-wheel). Prints the paths of
the sdist and the wheel. The wheel is checked to hold the stubs, py.typed and the table.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REQUIRED = ["latpred/__init__.py", "latpred/aio.py", "latpred/__main__.py", "latpred/py.typed",
            "latpred/_version.py", "latpred/_nb201_table.py", "latpred/_proto/__init__.py",
            "latpred/_proto/latpred_pb2.py", "latpred/_proto/latpred_pb2.pyi",
            "latpred/_proto/latpred_pb2_grpc.py", "latpred/_proto/health_pb2.py",
            "latpred/_proto/health_pb2_grpc.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", required=True, type=Path,
                        help="the assembled package directory (BUILD/client/python/latpred)")
    parser.add_argument("--source", required=True, type=Path, help="client/python")
    parser.add_argument("--out", required=True, type=Path, help="where to write dist/")
    parser.add_argument("-q", "--quiet", action="store_true", help="no build log on stdout")
    args = parser.parse_args()

    if not (args.package / "_proto" / "latpred_pb2.py").is_file():
        sys.exit(f"build_dist.py: {args.package} holds no generated stubs: build the CMake "
                 "target latpred_python first")
    stage = args.out / "src"
    dist = args.out / "dist"
    for d in (stage, dist):
        if d.exists():
            shutil.rmtree(d)
    stage.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copyfile(args.source / name, stage / name)
    shutil.copytree(args.package, stage / "latpred",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp"))
    # The sdist also carries the sources setuptools would not list on its own.
    (stage / "MANIFEST.in").write_text("include latpred/py.typed\n"
                                       "include latpred/_proto/*.pyi\n")

    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
                    "--outdir", str(dist), str(stage)],
                   check=True, stdout=subprocess.DEVNULL if args.quiet else None)
    sdists = sorted(dist.glob("latpred-*.tar.gz"))
    wheels = sorted(dist.glob("latpred-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        sys.exit(f"build_dist.py: expected one sdist and one wheel in {dist}, found "
                 f"{[p.name for p in dist.iterdir()]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    with tarfile.open(sdists[0]) as sdist:
        root = sdists[0].name[:-len(".tar.gz")]
        sdist_names = {n[len(root) + 1:] for n in sdist.getnames()}
    for path in REQUIRED:
        if path not in names:
            sys.exit(f"build_dist.py: the wheel lacks {path}")
        if path not in sdist_names:
            sys.exit(f"build_dist.py: the sdist lacks {path}")
    print(sdists[0])
    print(wheels[0])


if __name__ == "__main__":
    main()
