#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs each for a
# bounded time over a copy of its seed corpus in fuzz/corpus/<target>/ (the seeds in the
# repository stay as they are). Exits 1 when a target crashes, leaks, times out or breaks
# a property, keeping the input under <build dir>/artifacts/; 77 when clang++ or the
# libFuzzer runtime is missing (ctest then reports the test as skipped).
#
#   bash fuzz/run.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh nb201_arch_fuzzer
#
# FUZZ_BUILD_DIR: where to build (default build/fuzz under the repository root).
set -euo pipefail

SCRIPT_DIR="${BASH_SOURCE[0]%/*}"
[ "$SCRIPT_DIR" = "${BASH_SOURCE[0]}" ] && SCRIPT_DIR=.
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
TARGETS=(nb201_arch_fuzzer fbnet_arch_fuzzer latency_table_fuzzer labels_json_fuzzer)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi

if ! command -v clang++ >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: skipped, clang/clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)"
  exit 77
fi
PROBE="$(mktemp -d)"
trap 'rm -rf "$PROBE"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
  > "$PROBE/probe.cc"
if ! clang++ -fsanitize=fuzzer,address,undefined "$PROBE/probe.cc" -o "$PROBE/probe" \
     >"$PROBE/probe.log" 2>&1; then
  echo "fuzz: skipped, clang++ cannot link -fsanitize=fuzzer,address,undefined" \
       "(libFuzzer runtime missing? Debian: apt-get install libclang-rt-14-dev):"
  sed 's/^/  /' "$PROBE/probe.log" | tail -5
  exit 77
fi

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$ROOT/fuzz" -B "$BUILD" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j "${FUZZ_JOBS:-2}" --target "${TARGETS[@]}"

ARTIFACTS="$BUILD/artifacts"
LOGS="$BUILD/logs"
mkdir -p "$ARTIFACTS" "$LOGS"
WORK="$PROBE/corpus"
failed=()
for target in "${TARGETS[@]}"; do
  corpus="$WORK/$target"
  mkdir -p "$corpus"
  if [ -d "$ROOT/fuzz/corpus/$target" ]; then cp -R "$ROOT/fuzz/corpus/$target/." "$corpus/"; fi
  log="$LOGS/$target.log"
  # New inputs go to the temporary corpus; crashes to artifacts/<target>-crash-<sha1>.
  if (cd "$BUILD" && "./$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$ARTIFACTS/$target-" "$corpus") >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
    echo "fuzz: $target ok (${runs:-?} runs in ${SECONDS_PER_TARGET} s, $cov," \
         "$(find "$corpus" -type f | wc -l) corpus inputs)"
  else
    failed+=("$target")
    echo "fuzz: $target FAILED, log $log, input under $ARTIFACTS:"
    grep -E 'ERROR|SUMMARY|property failed|Test unit written' "$log" | head -20 | sed 's/^/  /'
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} target(s) ok"
