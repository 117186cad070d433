#!/usr/bin/env bash
# Builds the test suites that need no GPU with sanitizers and runs them (scripts/test.sh
# runs it after the main suite):
#   asan: build-asan/, AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer:
#         core, store (SQLite and PostgreSQL), metrics, predictor, service, client (and
#         the CLI it runs), and the integration test against the real server and CLI.
#   tsan: build-tsan/, ThreadSanitizer: the concurrent service tests (job queue, model
#         registry, message pool; the service on a real gRPC server with
#         SANITIZE_TSAN_GRPC=1), the /metrics HTTP server and the store's concurrent writers.
# Only the targets these tests need are built (-O1 -g1). Exits 1 when a test fails or a
# sanitizer reports anything, in a test or in a process it started (a latpred-server):
# every report goes to a file under build-*/sanitizer-logs/, printed at the end.
#
#   bash scripts/sanitize.sh            # both
#   bash scripts/sanitize.sh tsan -- --gtest_filter='JobQueue*'   # after --: to each binary
#
# SANITIZE_JOBS: build jobs (default nproc). SANITIZE_TIMEOUT: seconds for each test
# binary (default 1200). The prebuilt Debian libraries (gRPC, Protobuf, Abseil, LibTorch)
# are not instrumented: the runtime options below and the suppressions in sanitize/ say
# why each is needed; under TSan every executable also links sanitize/tsan_absl.cc.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
JOBS="${SANITIZE_JOBS:-$(nproc)}"
TEST_TIMEOUT="${SANITIZE_TIMEOUT:-1200}"

KINDS=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do KINDS+=("$1"); shift; done
[ "$#" -gt 0 ] && shift
GTEST_ARGS=("$@")
[ "${#KINDS[@]}" -eq 0 ] && KINDS=(asan tsan)

# Test binaries per sanitizer, each run once (all its tests in one process).
ASAN_TESTS=(core_test store_test metrics_http_test predictor_test posterior_test parts_test
            interval_test descriptor_test service_test service_grpc_test client_test
            integration_test)
# Executables the tests start, and the PostgreSQL fixture's helper.
ASAN_EXTRA=(latpred-server latpred test_postgres)
TSAN_TESTS=(service_test metrics_http_test store_test)
# The service on a real gRPC server under TSan: uninstrumented libgrpc reuses memory and
# hands calls between its threads unseen, which reads as a race in about one run of five
# (sanitize/tsan.supp suppresses those seen so far). So it runs on request
# (SANITIZE_TSAN_GRPC=1), not in every CI run, until a TSan-built gRPC makes it reliable.
if [ "${SANITIZE_TSAN_GRPC:-0}" = 1 ]; then TSAN_TESTS+=(service_grpc_test); fi
TSAN_EXTRA=(test_postgres)

SUPP="$ROOT/sanitize"
# ASan + LSan + UBSan. Reports of every process go to LOGS/asan.PID (log_path).
# - detect_container_overflow=0: no-op with libstdc++ (it annotates no containers unless
#   built with _GLIBCXX_SANITIZE_VECTOR), kept off so that a clang build with libc++
#   annotations in our code but not in LibTorch/gRPC cannot report false overflows.
# - LSan suppressions: leaks inside the uninstrumented libraries (sanitize/lsan.supp,
#   each with its reason).
asan_env() {
  local logs="$1"
  export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:detect_container_overflow=0:abort_on_error=0:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1:suppressions=$SUPP/ubsan.supp"
}
# TSan. Reports go to LOGS/tsan.PID.
# - ignore_noninstrumented_modules=1: memory that gRPC, Protobuf or LibTorch allocate or
#   free and hand to our code through their own (invisible) synchronisation is not
#   reported; accesses in our code stay checked.
# - suppressions: sanitize/tsan.supp, each with its reason.
# - OMP_NUM_THREADS=1: LibTorch runs its operators on the calling thread (its OpenMP
#   pool synchronises through libgomp's futexes, which TSan does not see).
tsan_env() {
  local logs="$1"
  export TSAN_OPTIONS="log_path=$logs/tsan:ignore_noninstrumented_modules=1:suppressions=$SUPP/tsan.supp:second_deadlock_stack=1:halt_on_error=0:exitcode=66"
  export OMP_NUM_THREADS=1
}

run_kind() {
  local kind="$1" build sanitize tests extra
  case "$kind" in
    asan) build=build-asan; sanitize=address,undefined
          tests=("${ASAN_TESTS[@]}"); extra=("${ASAN_EXTRA[@]}") ;;
    tsan) build=build-tsan; sanitize=thread
          tests=("${TSAN_TESTS[@]}"); extra=("${TSAN_EXTRA[@]}") ;;
    *) echo "sanitize: unknown kind '$kind' (asan, tsan)" >&2; return 2 ;;
  esac
  local start=$SECONDS
  echo "sanitize: $kind: building ${tests[*]} in $build/"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DLATPRED_SANITIZE="$sanitize" >/dev/null
  fi
  nice -n 10 cmake --build "$build" -j "$JOBS" --target "${tests[@]}" "${extra[@]}" \
    > "$build/sanitize-build.log" 2>&1 || { tail -50 "$build/sanitize-build.log"; return 1; }
  local built=$SECONDS
  local logs="$ROOT/$build/sanitizer-logs" out="$ROOT/$build/sanitize-test-logs"
  rm -rf "$logs" "$out"; mkdir -p "$logs" "$out"
  local rc=0
  (
    "${kind}_env" "$logs"
    # One PostgreSQL for the store tests, as ctest's `postgres` fixture gives them.
    export LATPRED_TEST_POSTGRES_DIR="/tmp/latpred-sanitize-pg-$kind-$$"
    local pg_bin; pg_bin="$(find "$ROOT/$build/tests" -type f -name test_postgres | head -1)"
    trap '"$pg_bin" stop "$LATPRED_TEST_POSTGRES_DIR" >/dev/null 2>&1 || true' EXIT
    "$pg_bin" start "$LATPRED_TEST_POSTGRES_DIR" > "$out/postgres.log" 2>&1 \
      || { echo "sanitize: $kind: PostgreSQL did not start:"; cat "$out/postgres.log"; exit 1; }
    # Each test binary runs once, all its tests in one process (ctest would start one
    # process per test and redo each suite's setup, such as training a base model).
    failed=0
    for test in "${tests[@]}"; do
      local exe t0=$SECONDS status=0
      exe="$(find "$ROOT/$build/tests" -type f -name "$test" | head -1)"
      (cd "$(dirname "$exe")" && timeout --kill-after=30 "$TEST_TIMEOUT" "$exe" \
         --gtest_color=no "${GTEST_ARGS[@]}") > "$out/$test.log" 2>&1 || status=$?
      if [ "$status" -eq 0 ]; then
        echo "sanitize: $kind: $test ok ($((SECONDS - t0)) s," \
             "$(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran' "$out/$test.log" | head -1))"
      else
        failed=1
        echo "sanitize: $kind: $test FAILED (exit $status, $((SECONDS - t0)) s), log $out/$test.log:"
        grep -E '^\[  FAILED|Failure|ERROR|WARNING: ThreadSanitizer|runtime error' \
          "$out/$test.log" | head -20 | sed 's/^/  /'
        tail -5 "$out/$test.log" | sed 's/^/  /'
      fi
    done
    exit "$failed"
  ) || rc=$?
  local reports=("$logs"/*)
  if [ -e "${reports[0]}" ]; then
    echo "sanitize: $kind: ${#reports[@]} sanitizer report file(s):"
    for f in "${reports[@]}"; do
      echo "===== $f"
      head -c 20000 "$f"
    done
    rc=1
  fi
  echo "sanitize: $kind: build $((built - start)) s, tests $((SECONDS - built)) s," \
       "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED")"
  return "$rc"
}

failed=()
for kind in "${KINDS[@]}"; do
  run_kind "$kind" || failed+=("$kind")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "sanitize: failed: ${failed[*]}"
  exit 1
fi
echo "sanitize: all ok (${KINDS[*]})"
