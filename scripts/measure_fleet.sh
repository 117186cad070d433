#!/usr/bin/env bash
# Measures a fleet of CPU configurations of this machine with latpred-agent: the same 200
# NAS-Bench-201 architectures (the 10 reference architectures first, then 190 drawn with a
# fixed seed from data/help/nb201_latency.csv) under each (threads, batch size), each
# configuration a device. Writes the bundled CSV shape (index, arch, one column per
# configuration) and a notes file saying how, where and with which agent it was measured.
#   scripts/measure_fleet.sh OUT_DIR [AGENT]      (AGENT: build/agent/latpred-agent)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/measure_fleet.sh OUT_DIR [AGENT]}
agent=${2:-build/agent/latpred-agent}
threads=${FLEET_THREADS:-"1 2"}
batches=${FLEET_BATCHES:-"1 8 32"}
mkdir -p "$out"
python3 - "$out/archs.csv" <<'PY'
import csv, random, sys
rows = list(csv.reader(open("data/help/nb201_latency.csv")))[1:]
refs = [int(x) for x in open("data/help/nb201_reference_archs.txt").read().split()]
random.seed(2026)
pick = [i for i in random.sample(range(len(rows)), 400) if i not in refs][:190]
with open(sys.argv[1], "w") as f:
    for i in refs + pick:
        f.write(f"{rows[i][0]},{rows[i][1]}\n")
PY
cut -d, -f2 "$out/archs.csv" > "$out/archs.txt"
names=()
for t in $threads; do
  for b in $batches; do
    name="cpu_t${t}_b${b}"
    echo "measuring $name ($(wc -l < "$out/archs.txt") architectures)" >&2
    "$agent" measure --space nb201 --threads "$t" --batch-size "$b" --max-runs 15 \
      --max-seconds 2 --file "$out/archs.txt" > "$out/$name.csv"
    names+=("$name")
  done
done
python3 - "$out" "${names[@]}" <<'PY'
import csv, sys
out, names = sys.argv[1], sys.argv[2:]
archs = [line.rstrip("\n").split(",", 1) for line in open(f"{out}/archs.csv")]
cols = {}
for n in names:
    rows = list(csv.DictReader(open(f"{out}/{n}.csv")))
    cols[n] = [r["latency_ms"] for r in rows]
    assert len(cols[n]) == len(archs), n
with open(f"{out}/nb201_cpu_fleet.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["index", "arch"] + names)
    for i, (index, arch) in enumerate(archs):
        w.writerow([index, arch] + [cols[n][i] for n in names])
PY
{
  echo "measured: $(date -u +%Y-%m-%dT%H:%MZ) by scripts/measure_fleet.sh"
  echo "agent: $agent ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "per configuration: latpred-agent measure --max-runs 15 --max-seconds 2 (median; spread in <config>.csv)"
} > "$out/NOTES"
echo "wrote $out/nb201_cpu_fleet.csv" >&2
