#!/usr/bin/env bash
# Builds latpred and runs the whole test suite with ctest, then the sanitizer runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 1500 "$@")
# Then the suites that need no GPU under ASan+UBSan and TSan (scripts/sanitize.sh): 22
# minutes on the 2-core machine while other work loaded it, 15 CPU-minutes, two thirds of
# them building build-asan/ and build-tsan/. They run when ctest got no arguments, as in
# CI; LATPRED_SANITIZE_TESTS=0 or 1 decides otherwise.
if [ "${LATPRED_SANITIZE_TESTS:-$([ "$#" -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  bash scripts/sanitize.sh
fi
