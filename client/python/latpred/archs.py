"""Architecture spellings: what NAS code writes, turned into what the server parses.

Accepted per search space (anything else is sent as is only when it is a string):

``nb201`` (NAS-Bench-201)
    * the cell string, ``"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~2|"``;
    * an ``int``: NAS-Bench-201's own index (0..15624), looked up in the table
      generated at build time from ``data/help/nb201_latency.csv`` (or a table read
      from that CSV with :meth:`Nb201Table.from_csv`);
    * a sequence of 6 ops (names, or ids 0..4 into :data:`NB201_OPS`) in string order:
      edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.

``fbnet``
    * 22 op names joined by ``-`` (or 22 ids joined by ``,``: the server parses both);
    * a sequence of 22 ops, each a name from :data:`FBNET_OPS` or an id 0..8; sent as
      the names joined by ``-``.

Strings are not checked here: the server validates them and its INVALID_ARGUMENT
message names the item and the reason. Integers and op sequences are checked here,
since only the client knows what they meant; errors are :class:`InvalidArgument`.
"""
from __future__ import annotations

import csv
import operator
import os
import sys
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from .datatypes import ArchLike
from .errors import InvalidArgument

__all__ = [
    "NB201_OPS",
    "FBNET_OPS",
    "FBNET_LAYERS",
    "NB201_EDGES",
    "Nb201Table",
    "nb201_string",
    "nb201_ops",
    "fbnet_string",
    "normalize_arch",
    "normalize_archs",
]

#: NAS-Bench-201 operations, by id (the order of NAS-Bench-201 and of the server).
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The 6 edges of a NAS-Bench-201 cell in string order, as (to_node, from_node).
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: FBNet blocks, by id (docs/search-spaces.md).
FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_LAYERS = 22


def _as_index(value: object) -> Optional[int]:
    """value as an int when it is an integer (int, numpy integer), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _ops(value: Sequence[Union[str, int]], names: Sequence[str], count: int, what: str) -> List[str]:
    """Op names from a sequence of names or ids; ValueError names the position."""
    items = list(value)
    if len(items) != count:
        raise ValueError(f"{what}: expected {count} ops, got {len(items)}")
    out = []
    for position, item in enumerate(items):
        index = _as_index(item)
        if index is not None:
            if not 0 <= index < len(names):
                raise ValueError(
                    f"{what}: op {position}: id {index} is out of range 0..{len(names) - 1}")
            out.append(names[index])
        elif isinstance(item, str) and item in names:
            out.append(item)
        else:
            raise ValueError(
                f"{what}: op {position}: {item!r} is not one of {', '.join(names)} "
                f"or an id 0..{len(names) - 1}")
    return out


def nb201_string(ops: Sequence[Union[str, int]]) -> str:
    """The NAS-Bench-201 cell string of 6 ops (names or ids) in string order.

    >>> nb201_string([3, 0, 1, 1, 0, 3])
    '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
    """
    names = _ops(ops, NB201_OPS, len(NB201_EDGES), "nb201 architecture")
    groups, i = [], 0
    for node in (1, 2, 3):
        groups.append("|" + "|".join(f"{names[i + j]}~{j}" for j in range(node)) + "|")
        i += node
    return "+".join(groups)


def nb201_ops(arch: str) -> List[str]:
    """The 6 op names of a NAS-Bench-201 cell string, in string order (ValueError if bad)."""
    groups = arch.strip().split("+")
    if len(groups) != 3:
        raise ValueError(f"nb201 architecture {arch!r}: expected 3 groups joined by '+'")
    ops: List[str] = []
    for node, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"nb201 architecture {arch!r}: group {node} is not |...|")
        edges = group[1:-1].split("|")
        if len(edges) != node:
            raise ValueError(f"nb201 architecture {arch!r}: node {node} needs {node} edges")
        for source, edge in enumerate(edges):
            name, _, origin = edge.partition("~")
            if name not in NB201_OPS or origin != str(source):
                raise ValueError(f"nb201 architecture {arch!r}: bad edge {edge!r}")
            ops.append(name)
    return ops


def fbnet_string(ops: Sequence[Union[str, int]]) -> str:
    """The FBNet spelling (names joined by '-') of 22 ops given as names or ids 0..8."""
    return "-".join(_ops(ops, FBNET_OPS, FBNET_LAYERS, "fbnet architecture"))


class Nb201Table:
    """NAS-Bench-201 index <-> cell string, for the indices a table knows."""

    _bundled: Optional["Nb201Table"] = None
    _lock = threading.Lock()

    def __init__(self, archs: Union[Dict[int, str], str], source: str) -> None:
        """archs: index -> cell string, or 6 op ids per index packed in one digit string."""
        self._archs: Union[Dict[int, str], str] = archs if isinstance(archs, str) else dict(archs)
        self._index: Optional[Dict[str, int]] = None
        self._strings: Optional[List[str]] = None
        #: Where the table came from (for messages).
        self.source = source

    @classmethod
    def bundled(cls) -> "Nb201Table":
        """The table generated at build time from data/help/nb201_latency.csv."""
        with cls._lock:
            if cls._bundled is None:
                try:
                    from . import _nb201_table  # generated by the CMake target latpred_python
                except ImportError:
                    raise InvalidArgument(
                        "no bundled NAS-Bench-201 index table: latpred/_nb201_table.py is "
                        "generated by the CMake target latpred_python; build it, or pass "
                        "nb201_csv=PATH to Client") from None
                if tuple(_nb201_table.OPS) != NB201_OPS or len(_nb201_table.CODES) % 6:
                    raise InvalidArgument("the bundled NAS-Bench-201 table is malformed")
                cls._bundled = cls(_nb201_table.CODES, f"bundled table ({_nb201_table.SOURCE})")
            return cls._bundled

    @classmethod
    def from_csv(cls, path: Union[str, "os.PathLike[str]"]) -> "Nb201Table":
        """Reads the columns ``index`` and ``arch`` of a CSV such as nb201_latency.csv."""
        archs: Dict[int, str] = {}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"index", "arch"} <= set(reader.fieldnames):
                raise ValueError(f"{os.fspath(path)}: needs the columns index and arch")
            for row in reader:
                archs[int(row["index"])] = row["arch"]
        return cls(archs, os.fspath(path))

    def __len__(self) -> int:
        return len(self._archs) // 6 if isinstance(self._archs, str) else len(self._archs)

    def __contains__(self, index: object) -> bool:
        i = _as_index(index)
        if i is None:
            return False
        if isinstance(self._archs, str):
            return 0 <= i < len(self)
        return i in self._archs

    def arch(self, index: int) -> str:
        """The cell string of a NAS-Bench-201 index (KeyError when the table lacks it)."""
        if isinstance(self._archs, str):
            if not 0 <= index < len(self):
                raise KeyError(index)
            if self._strings is not None:
                return self._strings[index]
            return nb201_string([int(c) for c in self._archs[6 * index:6 * index + 6]])
        return self._archs[index]

    def strings(self) -> List[str]:
        """Every cell string of a packed table by index (built once, then shared)."""
        if self._strings is None:
            if not isinstance(self._archs, str):
                raise TypeError("strings() is for the packed (bundled) table")
            self._strings = [nb201_string([int(c) for c in self._archs[6 * i:6 * i + 6]])
                             for i in range(len(self))]
        return self._strings

    def archs(self, indices: Any, field: str = "archs") -> List[str]:
        """The cell strings of a 1-D integer numpy array (or any sequence of integers)
        of NAS-Bench-201 indices, in order; InvalidArgument names the first index the
        table lacks (``archs[3]: ...``). Vectorised for numpy arrays of a packed table."""
        numpy = sys.modules.get("numpy")
        if (numpy is not None and isinstance(indices, numpy.ndarray)
                and isinstance(self._archs, str)):
            bad = numpy.flatnonzero((indices < 0) | (indices >= len(self)))
            if bad.size:
                at = int(bad[0])
                raise InvalidArgument(f"{field}[{at}]: NAS-Bench-201 index {int(indices[at])} "
                                      f"is not in the {self.source}")
            table = self.strings()
            return [table[i] for i in indices.tolist()]
        out = []
        for position, index in enumerate(indices):
            try:
                out.append(self.arch(operator.index(index)))
            except (KeyError, TypeError):
                raise InvalidArgument(f"{field}[{position}]: NAS-Bench-201 index {index!r} "
                                      f"is not in the {self.source}") from None
        return out

    def index(self, arch: str) -> Optional[int]:
        """The NAS-Bench-201 index of a cell string (canonical spelling), or None."""
        if self._index is None:
            if isinstance(self._archs, str):
                self._index = {self.arch(i): i for i in range(len(self))}
            else:
                self._index = {a: i for i, a in self._archs.items()}
        return self._index.get(arch)


def normalize_arch(space: str, arch: ArchLike, table: Optional[Nb201Table] = None) -> str:
    """The server's spelling of one architecture (see the module doc); ValueError if bad."""
    if isinstance(arch, str):
        return arch
    if isinstance(arch, bytes):
        raise ValueError("architectures are str, not bytes")
    if isinstance(arch, bool):
        raise ValueError("a bool is not an architecture")
    index = _as_index(arch)
    if index is not None:
        if space != "nb201":
            raise ValueError(
                f"an integer names an architecture only in nb201 (its NAS-Bench-201 index); "
                f"write {space} architectures as strings or op lists")
        table = table if table is not None else Nb201Table.bundled()
        try:
            return table.arch(index)
        except KeyError:
            raise ValueError(
                f"NAS-Bench-201 index {index} is not in the {table.source}") from None
    if isinstance(arch, Iterable):
        ops = list(arch)
        if space == "nb201":
            return nb201_string(ops)
        if space == "fbnet":
            return fbnet_string(ops)
        raise ValueError(f"op lists are understood for nb201 and fbnet only, not {space!r}")
    raise ValueError(f"cannot read an architecture from {type(arch).__name__}")


def normalize_archs(space: str, archs: Iterable[ArchLike], table: Optional[Nb201Table] = None,
                    field: str = "archs") -> List[str]:
    """normalize_arch over a batch; InvalidArgument names the item (``archs[3]: ...``)."""
    if isinstance(archs, (str, bytes)):
        raise InvalidArgument(f"{field}: expected a list of architectures, got a single string")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(archs, numpy.ndarray):
        if archs.ndim == 1 and archs.dtype.kind in "iu":
            if space != "nb201":
                raise InvalidArgument(
                    f"{field}: an integer array holds NAS-Bench-201 indices, which name "
                    f"architectures only in nb201, not {space!r}")
            return (table if table is not None else Nb201Table.bundled()).archs(archs, field)
        if archs.ndim == 0:
            raise InvalidArgument(f"{field}: expected a 1-D array of architectures, got a "
                                  "0-D array")
    out: List[str] = []
    for position, arch in enumerate(archs):
        try:
            out.append(normalize_arch(space, arch, table))
        except ValueError as e:
            raise InvalidArgument(f"{field}[{position}]: {e}") from None
    return out
