#!/usr/bin/python3
"""Assembles the importable `latpred` package in the build tree (CMake target latpred_python).

    assemble_package.py --out DIR --protoc-out DIR --nb201-csv CSV --version V SRC...

DIR/latpred/ receives:
  * the client's modules (SRC..., copied from client/python/latpred);
  * _proto/: the stubs protoc and grpc_python_plugin wrote under --protoc-out
    (latpred/v1/latpred_pb2{.py,.pyi,_grpc.py}, grpc/health/v1/health_pb2{.py,.pyi,_grpc.py}), moved
    into the private package latpred._proto with their imports rewritten;
  * _nb201_table.py: NAS-Bench-201 index -> cell string, from the CSV's index and arch
    columns, packed as 6 op-id digits per index;
  * _version.py: the CMake project version.

Why rewrite the stubs: protoc names Python modules after the proto's path, so the stubs
would be the top-level packages `latpred.v1` (clashing with this `latpred` package) and
`grpc.health.v1` (clashing with grpcio's `grpc`). Moved under latpred._proto, nothing
is put on sys.path and nothing else can shadow or be shadowed. Each rewrite is checked:
if a protoc or plugin version writes different code, the build fails here, not at import.
The stubs register their descriptors in a private descriptor pool (latpred._proto.POOL),
so another copy of health.proto or latpred.proto in the same process (say from
grpcio-health-checking) cannot collide with ours in the default pool.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
from pathlib import Path
from typing import List

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PROTO_PACKAGE = "latpred._proto"
# protoc's module -> our module; each file's imports of these are rewritten.
STUBS = {
    "latpred.v1.latpred_pb2": "latpred_pb2",
    "latpred.v1.latpred_pb2_grpc": "latpred_pb2_grpc",
    "grpc.health.v1.health_pb2": "health_pb2",
    "grpc.health.v1.health_pb2_grpc": "health_pb2_grpc",
}
PROTO_INIT = '''"""gRPC stubs generated from proto/ at build time (see tools/assemble_package.py). Private."""
from google.protobuf import descriptor_pool as _descriptor_pool

#: The descriptor pool of latpred's generated messages, apart from the default pool.
POOL = _descriptor_pool.DescriptorPool()
'''


def fail(message: str) -> None:
    sys.exit(f"assemble_package.py: {message}")


def write_if_changed(path: Path, text: str) -> None:
    """Writes text unless the file already holds it (keeps mtimes stable for ninja)."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rewrite_stub(source: str, module: str) -> str:
    """One generated stub with imports, module name and descriptor pool made private."""
    out = source
    # `from latpred.v1 import latpred_pb2 as alias` -> `from latpred._proto import ...`
    for original, ours in STUBS.items():
        package, _, name = original.rpartition(".")
        pattern = re.compile(rf"^from {re.escape(package)} import {re.escape(name)} as (\w+)$",
                             re.MULTILINE)
        out = pattern.sub(rf"from {PROTO_PACKAGE} import {ours} as \1", out)
    if module.endswith("_pb2"):
        # The module name given to the message classes (their __module__, for pickle).
        original = next(k for k, v in STUBS.items() if v == module)
        quoted = f"'{original}'"
        if out.count(quoted) != 1:
            fail(f"{module}: expected the module name {quoted} once in protoc's output")
        out = out.replace(quoted, f"'{PROTO_PACKAGE}.{module}'")
        default_pool = "_descriptor_pool.Default()"
        if out.count(default_pool) != 1:
            fail(f"{module}: expected {default_pool} once in protoc's output")
        out = out.replace(default_pool, "_latpred_proto.POOL")
        out = out.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            f"from google.protobuf import descriptor_pool as _descriptor_pool\n"
            f"import {PROTO_PACKAGE} as _latpred_proto\n", 1)
        if "import latpred._proto as _latpred_proto" not in out:
            fail(f"{module}: protoc's output no longer imports descriptor_pool as expected")
    # Nothing may still import a top-level latpred.v1 / grpc.health module.
    for line in out.splitlines():
        if re.match(r"\s*(from|import)\s+(latpred\.v1|grpc\.health)\b", line):
            fail(f"{module}: import left unrewritten: {line.strip()}")
    if module.endswith("_grpc") and f"from {PROTO_PACKAGE} import" not in out:
        fail(f"{module}: found no import of its messages to rewrite")
    return out


def rewrite_type_stub(source: str, module: str) -> str:
    """protoc's .pyi of a message module: only the imports of other stubs change."""
    out = source
    for original, ours in STUBS.items():
        package, _, name = original.rpartition(".")
        out = re.sub(rf"^from {re.escape(package)} import {re.escape(name)} as (\w+)$",
                     rf"from {PROTO_PACKAGE} import {ours} as \1", out, flags=re.MULTILINE)
    for line in out.splitlines():
        if re.match(r"\s*(from|import)\s+(latpred\.v1|grpc\.health)\b", line):
            fail(f"{module}.pyi: import left unrewritten: {line.strip()}")
    return out


def nb201_table(csv_path: Path) -> str:
    """_nb201_table.py: 6 op ids per NAS-Bench-201 index, checked against the CSV."""
    codes: List[str] = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"index", "arch"} <= set(reader.fieldnames):
            fail(f"{csv_path}: needs the columns index and arch")
        for row_number, row in enumerate(reader):
            index, arch = int(row["index"]), row["arch"]
            if index != row_number:
                fail(f"{csv_path}: row {row_number + 2} has index {index}; the table "
                     f"expects the indices 0, 1, 2, ... in order")
            ops = []
            for node, group in enumerate(arch.split("+"), start=1):
                for source, edge in enumerate(group.strip("|").split("|")):
                    name, _, origin = edge.partition("~")
                    if name not in NB201_OPS or origin != str(source):
                        fail(f"{csv_path}: index {index}: cannot read {arch!r}")
                    ops.append(NB201_OPS.index(name))
            if len(ops) != 6 or _nb201_string(ops) != arch:
                fail(f"{csv_path}: index {index}: {arch!r} is not a canonical cell string")
            codes.append("".join(map(str, ops)))
    if not codes:
        fail(f"{csv_path}: no architectures")
    packed = "".join(codes)
    lines = [packed[i:i + 96] for i in range(0, len(packed), 96)]
    body = "\n".join(f'    "{line}"' for line in lines)
    return (
        f'"""NAS-Bench-201 index -> cell: generated at build time from {csv_path.name}.\n\n'
        f"CODES[6*i:6*i+6] are the op ids (into OPS) of index i on the edges 1<-0, 2<-0,\n"
        f'2<-1, 3<-0, 3<-1, 3<-2. {len(codes)} architectures. Do not edit."""\n'
        f"SOURCE = {('data/help/' + csv_path.name)!r}\n"
        f"OPS = {NB201_OPS!r}\n"
        f"COUNT = {len(codes)}\n"
        f"CODES = (\n{body}\n)\n"
    )


def _nb201_string(ops: List[int]) -> str:
    groups, i = [], 0
    for node in (1, 2, 3):
        groups.append("|" + "|".join(f"{NB201_OPS[ops[i + j]]}~{j}" for j in range(node)) + "|")
        i += node
    return "+".join(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--protoc-out", required=True, type=Path)
    parser.add_argument("--nb201-csv", required=True, type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("sources", nargs="+", type=Path)
    args = parser.parse_args()

    package = args.out / "latpred"
    proto = package / "_proto"
    proto.mkdir(parents=True, exist_ok=True)
    produced = {package / "_version.py", package / "_nb201_table.py", proto / "__init__.py"}

    for source in args.sources:
        target = package / source.name
        produced.add(target)
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)

    write_if_changed(proto / "__init__.py", PROTO_INIT)
    for original, ours in STUBS.items():
        for suffix in (".py", ".pyi") if ours.endswith("_pb2") else (".py",):
            generated = args.protoc_out / (original.replace(".", "/") + suffix)
            if not generated.is_file():
                fail(f"protoc did not write {generated}")
            target = proto / f"{ours}{suffix}"
            produced.add(target)
            text = generated.read_text()
            write_if_changed(target, rewrite_stub(text, ours) if suffix == ".py"
                             else rewrite_type_stub(text, ours))

    write_if_changed(package / "_nb201_table.py", nb201_table(args.nb201_csv))
    write_if_changed(package / "_version.py",
                     f'"""The CMake project version. Generated."""\n__version__ = {args.version!r}\n')

    # Modules of an earlier build whose source is gone must not linger.
    for stale in [p for d in (package, proto) for p in d.iterdir() if p.suffix in (".py", ".pyi")]:
        if stale not in produced:
            stale.unlink()


if __name__ == "__main__":
    main()
