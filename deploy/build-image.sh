#!/usr/bin/env bash
# Builds the latpred container image from the Dockerfile with buildah, on a machine without
# a Docker engine or registry access. Run as root. See deploy/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/build-image.sh [--tag NAME] [--mirror URL] [--jobs N] [--rebuild-base]
                             [--no-cache] [--smoke] [--smoke-timeout SECONDS]

Builds the latpred image (Dockerfile at the repository top) with buildah:

 1. base image: if docker.io/library/debian:bookworm is not in local storage, creates it
    with debootstrap (--variant=minbase) from the Debian mirror of this host's apt sources
    (or --mirror / $DEBIAN_MIRROR; default http://deb.debian.org/debian);
 2. buildah bud --isolation=chroot --format docker --layers -t NAME .
 3. prints the image size;
 4. with --smoke: in a container of the image, prints `latpred-server --help`, starts the
    server (the first start trains the base models: minutes), waits until it is SERVING and
    runs a prediction with the image's latpred CLI.

options:
  --tag NAME             image name (default latpred:latest)
  --mirror URL           Debian mirror for the base image and for apt in the build
                         (default: $DEBIAN_MIRROR, else this host's, else deb.debian.org)
  --jobs N               parallel compile jobs in the build (default: all cores)
  --rebuild-base         recreate debian:bookworm with debootstrap even if present
  --no-cache             do not reuse cached build layers
  --smoke                run the smoke test after the build
  --smoke-timeout S      how long to wait for the server to become SERVING (default 900)
  -h, --help             this text

environment:
  DEBIAN_MIRROR          as --mirror
  DEBIAN_SECURITY_MIRROR security mirror of the base image
                         (default: this host's, else http://deb.debian.org/debian-security)
  STORAGE_DRIVER         buildah storage driver (e.g. vfs where overlay does not work)
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-image.sh: error: %s\n' "$*" >&2; exit 1; }

TAG="latpred:latest"
MIRROR="${DEBIAN_MIRROR:-}"
MIRROR_GIVEN=0
[ -n "$MIRROR" ] && MIRROR_GIVEN=1
JOBS=""
REBUILD_BASE=0
NO_CACHE=0
SMOKE=0
SMOKE_TIMEOUT=900
BASE_IMAGE="docker.io/library/debian:bookworm"

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift 2 ;;
    --tag=*) TAG="${1#*=}"; shift ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; MIRROR="$2"; MIRROR_GIVEN=1; shift 2 ;;
    --mirror=*) MIRROR="${1#*=}"; MIRROR_GIVEN=1; shift ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; JOBS="$2"; shift 2 ;;
    --jobs=*) JOBS="${1#*=}"; shift ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --no-cache) NO_CACHE=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --smoke-timeout) [ $# -ge 2 ] || die "--smoke-timeout needs seconds"; SMOKE_TIMEOUT="$2"; shift 2 ;;
    --smoke-timeout=*) SMOKE_TIMEOUT="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if [ -n "$JOBS" ] && ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then die "--jobs: not a positive number: $JOBS"; fi
[[ "$SMOKE_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--smoke-timeout: not a positive number: $SMOKE_TIMEOUT"

cd "$(dirname "$0")/.."
[ -f Dockerfile ] || die "no Dockerfile in $(pwd); run the script from a latpred checkout"
[ "$(id -u)" -eq 0 ] || die "run as root (e.g. sudo $0 $*): buildah and debootstrap need it here"
command -v buildah >/dev/null || die "buildah not found: apt-get install buildah"

START=$(date +%s)

# The first deb822 stanza (or one-line entry) of this host's apt sources for SUITE.
host_mirror() {
  local suite="$1" f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk -v suite="$suite" '
      BEGIN { RS = "" }
      {
        types = ""; uris = ""; suites = ""
        n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          line = lines[i]
          if (line ~ /^[ \t]*#/) continue
          if (line ~ /^Types:/) types = line
          if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); split(line, u, /[ \t]+/); uris = u[1] }
          if (line ~ /^Suites:/) suites = " " line " "
        }
        if (types ~ /[ \t]deb([ \t]|$)/ && uris != "" && suites ~ ("[ \t]" suite "[ \t]")) { print uris; exit }
      }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
}

reachable() {  # URL: whether its bookworm Release file can be fetched (unknown: yes)
  if command -v curl >/dev/null; then
    curl -fsSI --max-time 20 "$1/dists/$2/Release" >/dev/null 2>&1
  elif command -v wget >/dev/null; then
    wget -q --spider --timeout=20 "$1/dists/$2/Release"
  else
    return 0
  fi
}

if [ -z "$MIRROR" ]; then
  MIRROR=$(host_mirror bookworm || true)
  [ -n "$MIRROR" ] || MIRROR="http://deb.debian.org/debian"
fi
MIRROR="${MIRROR%/}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(host_mirror bookworm-security || true)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SECURITY_MIRROR="${SECURITY_MIRROR%/}"

# --------------------------------------------------------------------- 1. base image
if [ "$REBUILD_BASE" -eq 0 ] && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE is in local storage"
else
  command -v debootstrap >/dev/null \
    || die "$BASE_IMAGE is not in local storage and debootstrap is missing: apt-get install debootstrap (or buildah pull $BASE_IMAGE where a registry is reachable)"
  reachable "$MIRROR" bookworm \
    || die "Debian mirror $MIRROR is unreachable ($MIRROR/dists/bookworm/Release): pass a reachable one with --mirror URL or DEBIAN_MIRROR=URL"
  log "creating $BASE_IMAGE with debootstrap --variant=minbase bookworm from $MIRROR"
  ROOTFS=$(mktemp -d /var/tmp/latpred-rootfs.XXXXXX)
  BASE_CTR=""
  cleanup_base() {
    if [ -n "$BASE_CTR" ]; then buildah rm "$BASE_CTR" >/dev/null 2>&1 || true; fi
    rm -rf "$ROOTFS"
  }
  trap cleanup_base EXIT
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -n 30 "$ROOTFS.log" >&2; die "debootstrap failed (log: $ROOTFS.log)"; }
  rm -f "$ROOTFS.log"
  # apt sources as in Debian's own images: the release, its updates and security updates.
  rm -f "$ROOTFS/etc/apt/sources.list"
  cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/bootstrap.log
  BASE_CTR=$(buildah from scratch)
  MNT=$(buildah mount "$BASE_CTR")
  tar -C "$ROOTFS" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | tar -C "$MNT" --numeric-owner -xpf -
  buildah umount "$BASE_CTR" >/dev/null
  buildah config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["bash"]' \
    --label org.opencontainers.image.description="Debian 12 (bookworm) minbase, debootstrap from $MIRROR" \
    "$BASE_CTR"
  buildah commit --quiet --rm "$BASE_CTR" "$BASE_IMAGE" >/dev/null
  BASE_CTR=""
  cleanup_base
  trap - EXIT
  log "created $BASE_IMAGE"
fi

# --------------------------------------------------------------------- 2. the image
BUD_ARGS=(--isolation=chroot --format docker --layers --pull=false -f Dockerfile -t "$TAG")
[ "$NO_CACHE" -eq 1 ] && BUD_ARGS+=(--no-cache)
[ -n "$JOBS" ] && BUD_ARGS+=(--build-arg "JOBS=$JOBS")
# The base image's sources already name the mirror; an explicit one also replaces
# deb.debian.org in a base image that came from a registry.
[ "$MIRROR_GIVEN" -eq 1 ] && BUD_ARGS+=(--build-arg "APT_MIRROR=$MIRROR")
log "building $TAG (compiles latpred: about 10 minutes on two cores, less with a warm cache)"
log "buildah bud ${BUD_ARGS[*]} ."
BUILD_START=$(date +%s)
buildah bud "${BUD_ARGS[@]}" . \
  || die "buildah bud failed (see above). If the error is about the storage driver, retry with STORAGE_DRIVER=vfs; if apt cannot reach its mirror, pass --mirror URL"
log "image built in $(( $(date +%s) - BUILD_START )) s"

# --------------------------------------------------------------------- 3. size
buildah images --format '{{.Name}}:{{.Tag}}  {{.ID}}  {{.Size}}' "$TAG" \
  | sed 's/^/image: /'

# --------------------------------------------------------------------- 4. smoke test
if [ "$SMOKE" -eq 1 ]; then
  log "smoke test of $TAG"
  CTR=$(buildah from --pull=false "$TAG")
  SERVER_PID=""
  SMOKE_LOG=$(mktemp /tmp/latpred-smoke.XXXXXX)
  cleanup_smoke() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM "$SERVER_PID" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    buildah rm "$CTR" >/dev/null 2>&1 || true
    rm -f "$SMOKE_LOG"
  }
  trap cleanup_smoke EXIT
  in_ctr() { buildah run --isolation chroot "$CTR" -- "$@"; }

  # absl's --help exits with status 1: its output tells whether the program runs.
  log "latpred-server --help"
  HELP=$(in_ctr latpred-server --help 2>&1 || true)
  printf '%s\n' "$HELP" | grep -v -e '^subprocess exited with status' -e '^Error: exit status'
  case "$HELP" in
    *"few-shot latency prediction"*) ;;
    *) die "latpred-server does not start in the image (see its output above)" ;;
  esac
  log "latpred-agent --help"
  in_ctr latpred-agent --help || die "latpred-agent does not start in the image"
  ARCH='|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
  log "latpred-agent measure (LibTorch on the CPU)"
  in_ctr latpred-agent measure --space nb201 --max-runs 5 --max-seconds 20 "$ARCH" \
    || die "latpred-agent cannot measure in the image"

  log "starting latpred-server in the container (first start trains the base models)"
  # The container shares this host's network: a free port from the server itself (port 0).
  buildah run --isolation chroot "$CTR" -- latpred-server --listen 127.0.0.1:0 \
    --data-dir /tmp/latpred-smoke --bundled-data /usr/share/latpred/data --metrics-port 0 \
    >"$SMOKE_LOG" 2>&1 &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 120); do
    PORT=$(sed -n 's/^latpred-server listening on port \([0-9][0-9]*\)$/\1/p' "$SMOKE_LOG" | head -n1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SMOKE_LOG" >&2; die "the server exited at start"; }
    sleep 1
  done
  [ -n "$PORT" ] || { cat "$SMOKE_LOG" >&2; die "the server did not report its port within 120 s"; }
  log "server on 127.0.0.1:$PORT; waiting until SERVING (up to $SMOKE_TIMEOUT s)"
  WAIT_START=$(date +%s)
  until in_ctr latpred --server "127.0.0.1:$PORT" --timeout 10 health >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SMOKE_LOG" >&2; die "the server exited before serving"; }
    if [ $(( $(date +%s) - WAIT_START )) -ge "$SMOKE_TIMEOUT" ]; then
      tail -n 40 "$SMOKE_LOG" >&2
      die "not SERVING after $SMOKE_TIMEOUT s (raise --smoke-timeout on a slow machine)"
    fi
    sleep 10
  done
  log "SERVING after $(( $(date +%s) - WAIT_START )) s"
  in_ctr latpred --server "127.0.0.1:$PORT" health
  # The image's own HEALTHCHECK command, pointed at this server's port.
  HEALTHCHECK_CMD=$(buildah inspect --type image --format '{{index .Docker.Config.Healthcheck.Test 1}}' "$TAG" 2>/dev/null || true)
  if [ -n "$HEALTHCHECK_CMD" ]; then
    log "HEALTHCHECK: $HEALTHCHECK_CMD"
    buildah run --isolation chroot --env "LATPRED_HEALTH_ADDR=127.0.0.1:$PORT" "$CTR" -- \
      /bin/sh -c "$HEALTHCHECK_CMD" || die "the image's HEALTHCHECK fails against a serving server"
    log "HEALTHCHECK passes"
  else
    die "the image has no HEALTHCHECK (was it built with --format docker?)"
  fi

  METRICS_PORT=$(sed -n 's/^latpred-server metrics on port \([0-9][0-9]*\)$/\1/p' "$SMOKE_LOG" | head -n1)
  if [ -n "$METRICS_PORT" ] && command -v curl >/dev/null; then
    log "metrics: $(curl -fsS --max-time 10 "http://127.0.0.1:$METRICS_PORT/metrics" | grep -c '^latpred_') latpred_* series on :$METRICS_PORT/metrics"
  fi

  log "latpred devices"
  DEVICES=$(in_ctr latpred --server "127.0.0.1:$PORT" devices)
  printf '%s\n' "$DEVICES"
  # pixel2 when bundled, else the first device of the table.
  DEVICE=$(printf '%s\n' "$DEVICES" | awk 'NR > 1 && $1 == "pixel2" {print $1; exit}')
  [ -n "$DEVICE" ] || DEVICE=$(printf '%s\n' "$DEVICES" | awk 'NR == 2 {print $1}')
  [ -n "$DEVICE" ] || die "the server lists no devices"
  log "latpred predict --device $DEVICE --space nb201 '$ARCH'"
  in_ctr latpred --server "127.0.0.1:$PORT" predict --device "$DEVICE" --space nb201 "$ARCH" \
    || die "the prediction failed"
  log "server log:"
  sed 's/^/  /' "$SMOKE_LOG" >&2
  cleanup_smoke
  trap - EXIT
  log "smoke test passed"
fi

log "done in $(( $(date +%s) - START )) s: $TAG"
log "cached build layers are kept for the next build; 'buildah rmi --prune' removes unused ones"
log "run it: podman/docker run -p 50051:50051 -p 9464:9464 $TAG (see deploy/README.md)"
