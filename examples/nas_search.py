#!/usr/bin/python3
"""Latency-constrained NAS over NAS-Bench-201 with latpred: regularised evolution.

    python examples/nas_search.py --server 127.0.0.1:50051 --device pixel2 \\
        --budget-ms 15 --cycles 40

with the latpred package installed (pip install build/client/python/dist/latpred-*.whl),
or from the build tree: PYTHONPATH=build/client/python /usr/bin/python3 examples/...

Regularised (aging) evolution, Real et al. 2019, one generation per cycle: each cycle
breeds --children children, each the mutation (one edge gets another operation) of the
fittest of --sample-size architectures drawn from the population; latpred predicts the
latencies of the whole generation in one call (split to the server's batch limit by the
client). A child over --budget-ms is discarded; a feasible child joins the population
and the oldest member leaves. The initial population is drawn at random among feasible
architectures.

--p-under-budget P (0.5 < P < 1) makes feasibility a probability: an architecture is
feasible only when its latency stays under --budget-ms with probability at least P.
latpred's predictive interval with coverage 2P - 1 (Client.predict_interval) reaches
from the (1 - P) to the P quantile of the latency, so that holds exactly when the
interval's upper bound is at most the budget (P = 0.9: the upper bound of the 80%
interval). The interval comes from the leave-one-out errors of the device's adapted
model; a device without one (a source device, zero-shot, fewer than 3 samples) stops
the search with a message. Without the flag the prediction itself, the median, must
be under the budget.

Objective (maximised), instead of a trained network's accuracy:
  * default: the parameter count of the network, computed analytically from the
    NAS-Bench-201 spec (docs/search-spaces.md): stem, 3 stages of 5 cells at C = 16, 32,
    64 and two residual reduction blocks, BatchNorm-ReLU-global pool-Linear(64 -> 10);
    a cell counts only its live edges (an edge whose source is reachable from the
    cell input and whose target reaches the cell output through non-none edges):
    nor_conv_kxk has C*C*k*k conv weights + 2*C BatchNorm parameters, skip_connect and
    avg_pool_3x3 none. It equals sum(p.numel()) of such a PyTorch model (1,531,546 for
    the all-3x3 cell, 73,306 for the empty one; NAS-Bench-201 reports the same).
  * --accuracy-csv FILE: a CSV with a column `index` (NAS-Bench-201 index) or `arch`
    (cell string) and a column `accuracy`; architectures it lacks score -inf.
Ties are broken by the lower predicted latency.

Prints the best architecture, its predicted latency, its measured latency on the device
from the bundled data (data/help or data/eagle nb201_latency.csv), and how many
predictions per second latpred served.
"""
from __future__ import annotations

import argparse
import collections
import csv
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable, Deque, Dict, List, NamedTuple, Optional, Sequence, Tuple

try:
    import latpred
except ImportError as e:  # pragma: no cover
    sys.exit(f"nas_search.py: cannot import latpred ({e}); pip install the wheel of the "
             f"CMake target latpred_python_wheel, or run with "
             f"PYTHONPATH=BUILD_DIR/client/python /usr/bin/python3")

OPS = latpred.NB201_OPS
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), in string order
CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"

Ops = Tuple[str, ...]


def live_ops(ops: Sequence[str]) -> List[str]:
    """ops with every edge that cannot carry data from node 0 to node 3 set to none."""
    from_input = [True, False, False, False]
    for (to, src), op in zip(EDGES, ops):
        if op != "none" and from_input[src]:
            from_input[to] = True
    to_output = [False, False, False, True]
    for (to, src), op in reversed(list(zip(EDGES, ops))):
        if op != "none" and to_output[to]:
            to_output[src] = True
    return [op if from_input[src] and to_output[to] else "none"
            for (to, src), op in zip(EDGES, ops)]


def nb201_params(ops: Sequence[str]) -> int:
    """Parameters of the NAS-Bench-201 CIFAR network (10 classes) with this cell."""
    total = 16 * 3 * 9 + 2 * 16  # stem: Conv3x3 3 -> 16, BN
    live = live_ops(ops)
    for c in (16, 32, 64):
        cell = sum(c * c * CONV_KERNEL[op] ** 2 + 2 * c for op in live if op in CONV_KERNEL)
        total += 5 * cell
    for c in (16, 32):  # reduction c -> 2c: conv3x3 s2, BN, conv3x3, BN; shortcut conv1x1
        total += 2 * c * c * 9 + 2 * 2 * c + 2 * c * 2 * c * 9 + 2 * 2 * c + 2 * c * c
    total += 2 * 64 + 64 * 10 + 10  # BN, Linear 64 -> 10
    return total


class Member(NamedTuple):
    ops: Ops
    fitness: float
    latency_ms: float
    #: What must be under the budget: latency_ms, or with --p-under-budget P its P quantile.
    checked_ms: float


class Predictor:
    """latpred predictions with a cache; counts what the server was asked.

    Each architecture gets (predicted ms, ms the budget is checked against): the
    prediction itself, or with p_under_budget the upper bound of the interval of
    coverage 2 * p_under_budget - 1, the latency's p_under_budget quantile.
    """

    def __init__(self, client: "latpred.Client", device: str,
                 p_under_budget: Optional[float] = None) -> None:
        self.client, self.device, self.p_under_budget = client, device, p_under_budget
        self.cache: Dict[str, Tuple[float, float]] = {}
        self.predicted = 0
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, archs: Sequence[str]) -> List[Tuple[float, float]]:
        unseen = list(dict.fromkeys(a for a in archs if a not in self.cache))
        if unseen:
            start = time.perf_counter()
            if self.p_under_budget is None:
                answers = [(ms, ms) for ms in self.client.predict(self.device, "nb201", unseen)]
            else:
                coverage = 2 * self.p_under_budget - 1
                answers = [(ms, upper) for ms, _, upper in self.client.predict_interval(
                    self.device, "nb201", unseen, coverage=coverage)]
            self.seconds += time.perf_counter() - start
            self.predicted += len(unseen)
            self.calls += 1
            self.cache.update(zip(unseen, answers))
        return [self.cache[a] for a in archs]


def read_latency_table(path: Path, device: str) -> Tuple[Dict[str, int], Dict[str, float]]:
    """(arch -> index, arch -> measured ms on device) from a bundled nb201_latency.csv."""
    index: Dict[str, int] = {}
    measured: Dict[str, float] = {}
    if not path.is_file():
        return index, measured
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        has_device = device in (reader.fieldnames or [])
        for row in reader:
            index[row["arch"]] = int(row["index"])
            if has_device and row[device]:
                measured[row["arch"]] = float(row[device])
    return index, measured


def read_accuracy(path: Path, index_to_arch: Dict[int, str]) -> Dict[str, float]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        if "accuracy" not in fields or not fields & {"index", "arch"}:
            sys.exit(f"nas_search.py: {path} needs a column accuracy and a column index or arch")
        out: Dict[str, float] = {}
        for row in reader:
            if row.get("arch"):
                arch = row["arch"]
            else:
                arch = index_to_arch.get(int(row["index"]), "")
                if not arch:
                    sys.exit(f"nas_search.py: {path}: unknown NAS-Bench-201 index {row['index']}")
            out[latpred.nb201_string(latpred.nb201_ops(arch))] = float(row["accuracy"])
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:50051", help="latpred HOST:PORT")
    parser.add_argument("--device", default="pixel2", help="device to search for")
    parser.add_argument("--budget-ms", type=float, default=15.0,
                        help="latency budget in ms (predicted)")
    parser.add_argument("--p-under-budget", type=float, metavar="P",
                        help="feasible only when the latency stays under --budget-ms with "
                             "probability >= P (0.5 < P < 1): the upper bound of latpred's "
                             "interval of coverage 2P-1 (P = 0.9: the 80%% interval) must be "
                             "<= the budget; needs a device whose adapted model has an "
                             "interval (3 or more samples). Default: the prediction (the "
                             "median) must be <= the budget")
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--sample-size", type=int, default=10, help="tournament size")
    parser.add_argument("--children", type=int, default=25, help="children per cycle")
    parser.add_argument("--cycles", type=int, default=40, help="generations")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="bundled measurements (help/, eagle/), default: the repo's data/")
    parser.add_argument("--accuracy-csv", type=Path,
                        help="objective: CSV of index or arch, accuracy (default: parameters)")
    parser.add_argument("--ca", type=Path,
                        help="CA certificate (PEM) of a TLS server; a token, if the server "
                             "wants one, comes from $LATPRED_TOKEN_FILE or $LATPRED_TOKEN")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    args = parser.parse_args(argv)
    if args.population < 2 or not 1 <= args.sample_size <= args.population:
        parser.error("need --population >= 2 and 1 <= --sample-size <= --population")
    if args.cycles < 0 or args.children < 1 or not args.budget_ms > 0:
        parser.error("need --cycles >= 0, --children >= 1 and --budget-ms > 0")
    if args.p_under_budget is not None and not 0.5 < args.p_under_budget < 1:
        parser.error("need 0.5 < --p-under-budget < 1 (0.9: the upper bound of the 80% "
                     "interval must be under the budget)")

    rng = random.Random(args.seed)
    help_csv = args.data_dir / "help" / "nb201_latency.csv"
    eagle_csv = args.data_dir / "eagle" / "nb201_latency.csv"
    arch_index, measured = read_latency_table(help_csv, args.device)
    measured_source = help_csv
    if not measured:
        eagle_index, measured = read_latency_table(eagle_csv, args.device)
        arch_index = arch_index or eagle_index
        measured_source = eagle_csv
    if args.accuracy_csv is not None:
        accuracy = read_accuracy(args.accuracy_csv, {i: a for a, i in arch_index.items()})
        objective_name = f"accuracy from {args.accuracy_csv}"
        unit = ""

        def objective(ops: Ops) -> float:
            return accuracy.get(latpred.nb201_string(ops), -math.inf)
    else:
        objective_name = "parameter count (analytic, live edges only; docs/search-spaces.md)"
        unit = " parameters"

        def objective(ops: Ops) -> float:
            return float(nb201_params(ops))

    with latpred.Client(args.server, ca=args.ca, timeout=args.timeout) as client:
        try:
            return search(args, rng, client, objective, objective_name, unit, arch_index,
                          measured, measured_source)
        except latpred.NoInterval as e:
            print(f"nas_search.py: --p-under-budget needs a predictive interval and latpred "
                  f"has none for {args.device}: {e.message}", file=sys.stderr)
            return 1
        except latpred.LatpredError as e:
            print(f"nas_search.py: {type(e).__name__}: {e.message}", file=sys.stderr)
            return 1


def search(args: argparse.Namespace, rng: random.Random, client: "latpred.Client",
           objective: Callable[[Ops], float], objective_name: str, unit: str,
           arch_index: Dict[str, int],
           measured: Dict[str, float], measured_source: Path) -> int:
    client.wait_until_serving(timeout=args.timeout)
    state = client.device(args.device).state("nb201")
    print(f"search: regularised evolution over nb201 on {args.device} ({state}), "
          f"budget {args.budget_ms:g} ms, population {args.population}, "
          f"{args.cycles} cycles of {args.children} children, seed {args.seed}")
    print(f"objective: {objective_name}")
    p = args.p_under_budget
    if p is not None:
        print(f"feasible: P(latency <= {args.budget_ms:g} ms) >= {p:g}, i.e. the upper bound "
              f"of the {100 * (2 * p - 1):g}% interval <= {args.budget_ms:g} ms")
    predict = Predictor(client, args.device, p)

    def member(ops: Ops, predicted: Tuple[float, float]) -> Member:
        return Member(ops, objective(ops), *predicted)

    def better(a: Member, b: Optional[Member]) -> bool:
        return b is None or (a.fitness, -a.latency_ms) > (b.fitness, -b.latency_ms)

    # Initial population: random feasible architectures, asked for in batches.
    population: Deque[Member] = collections.deque()
    best: Optional[Member] = None
    for _ in range(100):
        if len(population) >= args.population:
            break
        batch = [tuple(rng.choice(OPS) for _ in EDGES) for _ in range(2 * args.population)]
        for ops, predicted in zip(batch, predict([latpred.nb201_string(o) for o in batch])):
            if predicted[1] <= args.budget_ms and len(population) < args.population:
                population.append(member(ops, predicted))
                best = population[-1] if better(population[-1], best) else best
    if len(population) < args.population or best is None:
        print(f"nas_search.py: found only {len(population)} architectures under "
              f"{args.budget_ms:g} ms" + (f" with probability {p:g}" if p is not None else "")
              + "; raise --budget-ms", file=sys.stderr)
        return 1

    for cycle in range(1, args.cycles + 1):
        children: List[Ops] = []
        for _ in range(args.children):
            parent = max(rng.sample(list(population), args.sample_size),
                         key=lambda m: (m.fitness, -m.latency_ms))
            mutant = list(parent.ops)
            edge = rng.randrange(len(EDGES))
            mutant[edge] = rng.choice([op for op in OPS if op != mutant[edge]])
            children.append(tuple(mutant))
        for ops, predicted in zip(children,
                                  predict([latpred.nb201_string(c) for c in children])):
            if predicted[1] <= args.budget_ms:
                population.append(member(ops, predicted))
                population.popleft()
                best = population[-1] if better(population[-1], best) else best
        if cycle % 10 == 0 or cycle == args.cycles:
            print(f"cycle {cycle}/{args.cycles}: best {best.fitness:g}{unit}, "
                  f"{best.latency_ms:.3f} ms predicted")

    arch = latpred.nb201_string(best.ops)
    index = arch_index.get(arch)
    print(f"best architecture: {arch}")
    print(f"nas-bench-201 index: {index if index is not None else 'unknown'}")
    print(f"objective: {best.fitness:g}{unit}")
    print(f"predicted latency: {best.latency_ms:.3f} ms (budget {args.budget_ms:g} ms)")
    if p is not None:
        print(f"latency quantile {p:g}: {best.checked_ms:.3f} ms (upper bound of the "
              f"{100 * (2 * p - 1):g}% interval; budget {args.budget_ms:g} ms)")
    if arch in measured:
        try:
            where = measured_source.relative_to(args.data_dir.parent)
        except ValueError:
            where = measured_source
        print(f"measured latency: {measured[arch]:g} ms ({where}, column {args.device})")
    else:
        print(f"measured latency: n/a ({args.device} has no bundled measurement of it)")
    rate = predict.predicted / predict.seconds if predict.seconds > 0 else float("inf")
    print(f"predictions: {predict.predicted} architectures in {predict.calls} calls, "
          f"{predict.seconds:.3f} s, {rate:.0f} per second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
