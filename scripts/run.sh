#!/usr/bin/env bash
# Builds latpred, then starts latpred-server on 127.0.0.1:50051 with an SQLite store
# under ~/.local/share/latpred. Extra arguments go to latpred-server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec ./build/server/latpred-server --listen 127.0.0.1:50051 "$@"
