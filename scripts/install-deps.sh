#!/usr/bin/env bash
# Installs the Debian 12 packages latpred builds and tests against.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential g++ cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libtorch-dev libopenblas0-pthread
  libsqlite3-dev sqlite3 libpqxx-dev postgresql
  libpapi-dev
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev
  prometheus-cpp-dev libcpp-httplib-dev prometheus openssl curl
  python3-grpcio python3-protobuf python3-pytest
  python3-venv python3-pip python3-build python3-wheel python3-setuptools python3-numpy
)
if dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -qv 'install ok installed' \
   || [ "$(dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | wc -l)" -ne "${#PKGS[@]}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}"
fi
