#!/usr/bin/env python3
"""Sanity of latpred-agent's CPU timings against the published world.

Measures N random NAS-Bench-201 architectures on this CPU with `latpred-agent measure`
(twice), then prints:
  - Spearman of this machine's medians against every CPU column of the bundled HELP
    table (Xeon Gold/Silver, Raspberry Pi) and the LatBench desktop CPU column, and
  - how far the second measurement's medians are from the first (median and max |dev|).
Exit status 1 when the best Xeon column's Spearman is below --min-spearman.

  python3 bench/cpu_ranking_check.py --agent build/agent/latpred-agent
"""
import argparse
import csv
import os
import random
import subprocess
import sys
import time

XEON_COLUMNS = ["gold_6226", "gold_6240", "silver_4114", "silver_4210r"]
OTHER_CPU_COLUMNS = ["raspi4"]


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return header, body


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2.0
        i = j + 1
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5


def measure(agent, archs, threads):
    cmd = [agent, "measure", "--space", "nb201", "--device", "cpu", "--threads", str(threads)]
    out = subprocess.run(cmd + archs, check=True, capture_output=True, text=True).stdout
    medians = {}
    for row in csv.DictReader(out.splitlines()):
        medians[row["arch"]] = float(row["latency_ms"])
    return medians


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default="build/agent/latpred-agent")
    p.add_argument("--help-table", default="data/help/nb201_latency.csv")
    p.add_argument("--eagle-table", default="data/eagle/nb201_latency.csv")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    # All cores by default, as PyTorch times a network unless told otherwise: the
    # published CPU columns were measured that way, and with fewer threads the compute
    # share of each operation grows and the ranking drifts from theirs.
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--min-spearman", type=float, default=0.8)
    args = p.parse_args()

    header, body = read_table(args.help_table)
    col = {name: i for i, name in enumerate(header)}
    rng = random.Random(args.seed)
    chosen = rng.sample(body, args.count)
    archs = [row[col["arch"]] for row in chosen]

    start = time.time()
    first = measure(args.agent, archs, args.threads)
    second = measure(args.agent, archs, args.threads)
    elapsed = time.time() - start
    # The agent prints canonical strings; the table's are canonical too.
    mine = [first[a] for a in archs]
    devs = sorted(abs(second[a] / first[a] - 1) for a in archs)

    print(f"measured {len(archs)} random NAS-Bench-201 architectures twice on this CPU "
          f"({args.threads} thread(s), {elapsed:.0f} s)")
    print(f"re-measurement: median |dev| {100 * devs[len(devs) // 2]:.1f}%, "
          f"90th pct {100 * devs[int(0.9 * (len(devs) - 1))]:.1f}%, max {100 * devs[-1]:.1f}%, "
          f"within 5%: {sum(d <= 0.05 for d in devs)}/{len(devs)}")
    # A machine whose speed changed between the runs (a VM's host, frequency scaling)
    # moves every median alike: the deviation left after the common factor, and the
    # ranking of the two runs, say how consistent the timings are among themselves.
    ratios = sorted(second[a] / first[a] for a in archs)
    common = ratios[len(ratios) // 2]
    rel = sorted(abs(second[a] / first[a] / common - 1) for a in archs)
    print(f"  after the common factor {common:.3f}: median |dev| {100 * rel[len(rel) // 2]:.1f}%, "
          f"max {100 * rel[-1]:.1f}%, within 5%: {sum(d <= 0.05 for d in rel)}/{len(rel)}; "
          f"Spearman run 1 vs run 2 {spearman(mine, [second[a] for a in archs]):.3f}")
    best = -1.0
    for name in XEON_COLUMNS + OTHER_CPU_COLUMNS:
        published = [float(row[col[name]]) for row in chosen]
        rho = spearman(mine, published)
        if name in XEON_COLUMNS:
            best = max(best, rho)
        print(f"  Spearman vs HELP {name:<14} {rho:.3f}")
    eh, eb = read_table(args.eagle_table)
    ecol = {name: i for i, name in enumerate(eh)}
    by_arch = {row[ecol["arch"]]: row for row in eb}
    cpu = "desktop_cpu_core_i7_7820x_fp32"
    pairs = [(first[a], float(by_arch[a][ecol[cpu]])) for a in archs if a in by_arch]
    if len(pairs) >= 3:
        rho = spearman([x for x, _ in pairs], [y for _, y in pairs])
        print(f"  Spearman vs LatBench {cpu} {rho:.3f} ({len(pairs)} archs)")
    # For scale: how the published CPUs rank the same architectures against each other.
    agree = []
    for i, x in enumerate(XEON_COLUMNS):
        for y in XEON_COLUMNS[i + 1:]:
            agree.append(spearman([float(r[col[x]]) for r in chosen], [float(r[col[y]]) for r in chosen]))
    print(f"  (published Xeon columns against each other: Spearman {min(agree):.3f} to {max(agree):.3f})")
    verdict = "PASS" if best >= args.min_spearman else "FAIL"
    print(f"best Xeon Spearman {best:.3f} (floor {args.min_spearman}): {verdict}")
    return 0 if best >= args.min_spearman else 1


if __name__ == "__main__":
    sys.exit(main())
