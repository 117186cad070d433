# syntax=docker/dockerfile:1
# latpred container image: latpred-server (the default entrypoint), latpred-agent and the
# latpred CLI on Debian 12, running as the unprivileged user latpred (UID/GID 10001).
#
#   docker build -t latpred:latest .              # where a Docker engine (BuildKit) exists
#   sudo deploy/build-image.sh                    # without one: buildah (see deploy/README.md)
#
#   docker run -p 50051:50051 -p 9464:9464 -v latpred-data:/var/lib/latpred latpred:latest
#
# Arguments after the image name are appended to the server's default flags (a repeated
# flag overrides the earlier one). The store is SQLite in /var/lib/latpred (mount a volume
# there to keep it) unless --store or $LATPRED_STORE names another, e.g.
#   -e LATPRED_STORE=postgresql://latpred@db:5432/latpred -e PGPASSWORD=...
# Other programs: --entrypoint latpred-agent / --entrypoint latpred.

# The Debian 12 base of both stages.
ARG DEBIAN_IMAGE=debian:bookworm

############################################################################ build stage
FROM ${DEBIAN_IMAGE} AS build

# A Debian mirror to use instead of http://deb.debian.org/debian (e.g. a local proxy).
ARG APT_MIRROR=
# Parallel compile jobs (default: all cores).
ARG JOBS=

# Build dependencies (those of scripts/install-deps.sh that the three programs need, plus
# libpqxx for the PostgreSQL store). python3 and protobuf-compiler-grpc are needed to
# configure the project (the Python client's stubs), not by the programs.
RUN set -eux; \
    if [ -n "$APT_MIRROR" ]; then \
      sed -i -E "s#http://deb\.debian\.org/debian([[:space:]]|\$)#${APT_MIRROR}\1#" \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential g++ cmake ninja-build pkg-config ca-certificates ccache python3 \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      libtorch-dev libopenblas0-pthread \
      libsqlite3-dev \
      libpqxx-dev libpq-dev \
      libpapi-dev \
      prometheus-cpp-dev libcpp-httplib-dev; \
    find /var/lib/apt/lists /var/cache/apt/archives -type f -delete

WORKDIR /src
COPY . .

# Only the three programs; tests off (LATPRED_BUILD_TESTS). The ccache cache mount makes
# rebuilds after a source change incremental (BuildKit and buildah both support it).
RUN --mount=type=cache,target=/root/.cache/ccache \
    set -eux; \
    export CCACHE_DIR=/root/.cache/ccache; \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLATPRED_BUILD_TESTS=OFF \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache; \
    cmake --build build -j "${JOBS:-$(nproc)}" --target latpred-server latpred-agent latpred; \
    ccache --show-stats || true

# Stage the programs (debug info stripped) and the Debian packages that provide the shared
# libraries they link directly; the runtime stage installs exactly those packages (apt
# brings their dependencies).
RUN set -eu; \
    mkdir -p /out/bin; \
    cp build/server/latpred-server build/agent/latpred-agent build/client/latpred /out/bin/; \
    strip --strip-debug /out/bin/*; \
    : > /out/needed.txt; \
    for bin in /out/bin/*; do \
      for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}'); do \
        path=$(ldd "$bin" | awk -v l="$lib" '$1 == l && $3 ~ /^\// {print $3; exit}'); \
        if [ -z "$path" ]; then echo "cannot resolve $lib of $bin" >&2; exit 1; fi; \
        pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null \
              || dpkg -S "$(readlink -f "$path" | sed 's#^/usr/lib/#/lib/#')" 2>/dev/null) \
          || { echo "no Debian package owns $path ($lib of $bin)" >&2; exit 1; }; \
        echo "$pkg" | head -n1 | cut -d: -f1 >> /out/needed.txt; \
      done; \
    done; \
    { sort -u /out/needed.txt; echo libopenblas0-pthread; echo ca-certificates; } \
      | sort -u > /out/runtime-packages.txt; \
    echo "runtime packages:"; cat /out/runtime-packages.txt

########################################################################## runtime stage
FROM ${DEBIAN_IMAGE}

ARG APT_MIRROR=

COPY --from=build /out/runtime-packages.txt /usr/share/latpred/runtime-packages.txt
RUN set -eux; \
    if [ -n "$APT_MIRROR" ]; then \
      sed -i -E "s#http://deb\.debian\.org/debian([[:space:]]|\$)#${APT_MIRROR}\1#" \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /usr/share/latpred/runtime-packages.txt); \
    find /var/lib/apt/lists /var/cache/apt/archives -type f -delete; \
    groupadd --gid 10001 latpred; \
    useradd --uid 10001 --gid 10001 --home-dir /var/lib/latpred --no-create-home \
      --shell /usr/sbin/nologin --comment "latpred service" latpred; \
    install -d -o latpred -g latpred -m 0750 /var/lib/latpred

COPY --from=build /out/bin/ /usr/local/bin/
# The bundled public measurements the server imports on first start.
COPY --from=build /src/data/ /usr/share/latpred/data/

# HOME: where latpred-agent keeps its spool by default ($HOME/.local/share/latpred).
ENV HOME=/var/lib/latpred
USER 10001:10001
WORKDIR /var/lib/latpred

# gRPC; Prometheus /metrics over HTTP.
EXPOSE 50051 9464

# SERVING only once the base models are ready: the first start against an empty store trains
# them (20 s to a few minutes), hence the long start period. Set LATPRED_HEALTH_ADDR when
# the server listens elsewhere, LATPRED_HEALTH_CA (CA file) when it serves TLS.
HEALTHCHECK --interval=30s --timeout=15s --start-period=10m --retries=3 \
  CMD latpred --server "${LATPRED_HEALTH_ADDR:-127.0.0.1:50051}" --timeout 10 \
      ${LATPRED_HEALTH_CA:+--ca "$LATPRED_HEALTH_CA"} health >/dev/null || exit 1

ENTRYPOINT ["latpred-server", "--listen=0.0.0.0:50051", "--data-dir=/var/lib/latpred", \
            "--bundled-data=/usr/share/latpred/data", "--metrics-port=9464"]
CMD []
