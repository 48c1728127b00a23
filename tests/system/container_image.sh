#!/usr/bin/env bash
# System test of the container image. Not part of `make test`; run it with
#
#   tests/system/container_image.sh        # or `make system-test` (also runs systemd_unit.sh)
#
# It needs a Docker engine (DOCKER_HOST or the default socket). Where there is none,
# shared/tools/container-engine.sh starts one: eval "$(path/to/container-engine.sh)".
#
# It builds the image from this repository (IMAGE, default archiver:system-test), and a test
# image FROM it that adds the vendor simulators (simulators/, which the product image does not
# hold; TEST_IMAGE, default IMAGE-simulators). It runs them as their non-root user, UID 10001,
# with a host folder owned by that UID bind-mounted on /var/lib/archiver, all on the host
# network:
#   1. `archiver demo` in the product image says in one line that it needs the simulators and
#      exits 78; in the test image (it starts its own simulators) it exits 0 and its evidence,
#      with a manifest per session, lands in the host folder, owned by UID 10001;
#   2. `archiver run --once` (product image), with a config written here and a Perfecto
#      simulator started from the test image, exits 0 with every execution archived;
#      `archiver verify` exits 0;
#   3. the daemon, started as docs/operations.md says (-d, --restart on-failure, --stop-timeout 45),
#      finishes a pass and the image's HEALTHCHECK (`archiver healthcheck`, run here every
#      second) says healthy; stopped with SIGSTOP, it turns unhealthy, and healthy again on
#      SIGCONT; then `docker stop` ends it with exit code 0 and `daemon_stopped`.
# It prints the image size, the build context size and how long the stop took. It exits
# non-zero on the first failed check; the containers and folders it made are removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-archiver:system-test}
TEST_IMAGE=${TEST_IMAGE:-$IMAGE-simulators}
ARCHIVER_UID=10001
EXECUTIONS=6
SIM_TOKEN=perfecto-system-test-token
WORK=$(mktemp -d "${TMPDIR:-/tmp}/archiver-image-test.XXXXXX")
CONTAINERS=()

say() { echo "container_image: $*"; }
fail() {
  echo "container_image: FAILED: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  for id in "${CONTAINERS[@]}"; do
    docker rm -f "$id" >/dev/null 2>&1 || true
  done
  # The evidence belongs to UID 10001: remove it from a container, as root there.
  if [ -d "$WORK/data" ]; then
    docker run --rm --user 0 -v "$WORK:/work" --entrypoint rm "$IMAGE" -rf /work/data \
      >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK" || true
  exit "$status"
}
trap cleanup EXIT

# run_image IMAGE [OPTION...] -- ARG...: runs IMAGE on the host network with the test's
# folders mounted; extra docker options come before `--`, the archiver's arguments after it.
run_image() {
  local image=$1 options=()
  shift
  while [ "$1" != "--" ]; do
    options+=("$1")
    shift
  done
  shift
  docker run --rm --network host -v "$WORK/data:/var/lib/archiver" "${options[@]}" "$image" "$@"
}

# check WHAT LOG COMMAND...: runs COMMAND with its output in LOG; shows LOG and fails unless 0.
check() {
  local what=$1 log=$2 status=0
  shift 2
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    tail -n 40 "$log" >&2
    fail "$what exited $status"
  fi
}

count_manifests() { find "$1" -name manifest.json -path '*/evidence/*' 2>/dev/null | wc -l; }

# --- build ---------------------------------------------------------------------------------
say "building $IMAGE"
check "docker build" "$WORK/build.log" docker build --network host -t "$IMAGE" .
context=$(grep -Eo '(Sending build context to Docker daemon|transferring context:) +[0-9.]+ ?[kMG]?B' \
  "$WORK/build.log" | tail -n 1 | grep -Eo '[0-9.]+ ?[kMG]?B$' || echo "unknown")
say "build context: $context sent (the repository folder holds $(du -sh --apparent-size . | cut -f1))"
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
say "image size: $((size / 1000000)) MB ($size bytes)"

# The test image: the product image plus the vendor simulators, installed into its virtualenv
# by the base image's pip (the virtualenv has none), without dependencies (aiohttp is there).
say "building $TEST_IMAGE (FROM $IMAGE, with the simulators)"
check "docker build (test image)" "$WORK/build-test.log" \
  docker build --network host -t "$TEST_IMAGE" -f - . <<EOF
FROM $IMAGE
USER 0
COPY simulators /tmp/simulators
RUN /usr/local/bin/python -m pip --python /opt/archiver/bin/python install --no-cache-dir \
      --disable-pip-version-check --no-deps /tmp/simulators \
 && rm -rf /tmp/simulators
USER archiver
EOF
uid=$(docker run --rm --entrypoint id "$IMAGE" -u)
[ "$uid" = "$ARCHIVER_UID" ] || fail "the image runs as UID $uid, not $ARCHIVER_UID"

mkdir -p "$WORK/data"
docker run --rm --user 0 -v "$WORK:/work" --entrypoint chown "$IMAGE" \
  "$ARCHIVER_UID:$ARCHIVER_UID" /work/data

# --- 1. archiver demo ----------------------------------------------------------------------
say "archiver demo in the product image: no simulators there, one line and exit code 78"
status=0
run_image "$IMAGE" -- demo --dir /var/lib/archiver/demo >"$WORK/no-demo.log" 2>&1 || status=$?
[ "$status" = 78 ] || { cat "$WORK/no-demo.log" >&2; fail "it exited $status, not 78"; }
[ "$(wc -l <"$WORK/no-demo.log")" = 1 ] && grep -q 'needs the vendor simulators' "$WORK/no-demo.log" \
  || { cat "$WORK/no-demo.log" >&2; fail "not the one line on the missing simulators"; }
say "  ok: $(cat "$WORK/no-demo.log")"
say "archiver demo in the test image"
check "archiver demo" "$WORK/demo.log" \
  run_image "$TEST_IMAGE" -- demo --dir /var/lib/archiver/demo
for vendor in perfecto devrev testobject testmo ekran saucelabs browserstack devicefarm; do
  found=$(count_manifests "$WORK/data/demo/evidence/$vendor")
  [ "$found" -gt 0 ] || fail "archiver demo left no $vendor manifest in the host folder"
done
owner=$(stat -c %u "$(find "$WORK/data/demo/evidence" -name manifest.json | head -n 1)")
[ "$owner" = "$ARCHIVER_UID" ] || fail "the demo's manifests belong to UID $owner"
say "  ok: $(count_manifests "$WORK/data/demo") manifests on the host, owned by UID $owner"

# --- 2. archiver run --once against a simulator ----------------------------------------------
say "starting a Perfecto simulator ($EXECUTIONS executions) on the host network"
simulator=$(docker run -d --network host --entrypoint python \
  -v "$PWD/tests/system/perfecto_simulator.py:/perfecto_simulator.py:ro" \
  "$TEST_IMAGE" /perfecto_simulator.py --executions "$EXECUTIONS" --token "$SIM_TOKEN")
CONTAINERS+=("$simulator")
sim_url=""
for _ in $(seq 60); do
  sim_url=$(docker logs "$simulator" 2>/dev/null | grep -Eo '^http://[0-9.]+:[0-9]+$' | head -n 1 || true)
  [ -n "$sim_url" ] && break
  sleep 0.5
done
[ -n "$sim_url" ] || { docker logs "$simulator" >&2; fail "the simulator did not start"; }

metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/archiver.toml" <<EOF
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[engine]
interval_seconds = 3600
not_ready_delay_seconds = 0.2
[metrics]
listen = "0.0.0.0:$metrics_port"
[sources.perfecto]
base_url = "$sim_url"
token_env = "PERFECTO_TOKEN"
backfill_days = 1
EOF
chmod 0644 "$WORK/archiver.toml"
config=(-v "$WORK/archiver.toml:/etc/archiver/archiver.toml:ro" -e "PERFECTO_TOKEN=$SIM_TOKEN")

say "archiver run --once (simulator at $sim_url)"
check "archiver run --once" "$WORK/once.log" run_image "$IMAGE" "${config[@]}" -- run --once
found=$(count_manifests "$WORK/data/evidence/perfecto")
[ "$found" -eq "$EXECUTIONS" ] || fail "run --once archived $found executions, not $EXECUTIONS"
say "  ok: $found manifests on the host"
check "archiver verify" "$WORK/verify.log" run_image "$IMAGE" "${config[@]}" -- verify
say "  ok: archiver verify finds every object listed and the ledger intact"

# --- 3. the daemon, started and stopped as docs/operations.md says -----------------------------------
say "archiver run as a daemon: docker run -d --restart on-failure --stop-timeout 45"
# The image's HEALTHCHECK, run every second here instead of every 30 s.
daemon=$(docker run -d --network host --restart on-failure --stop-timeout 45 "${config[@]}" \
  --health-interval 1s --health-start-period 0s --health-retries 2 --health-timeout 5s \
  -v "$WORK/data:/var/lib/archiver" "$IMAGE")
CONTAINERS+=("$daemon")
for _ in $(seq 120); do
  docker logs "$daemon" 2>&1 | grep -q pass_finished && break
  [ "$(docker inspect --format '{{.State.Running}}' "$daemon")" = true ] \
    || { docker logs "$daemon" >&2; fail "the daemon exited"; }
  sleep 0.5
done
docker logs "$daemon" 2>&1 | grep -q pass_finished || fail "the daemon finished no pass in 60 s"

health() { docker inspect --format '{{.State.Health.Status}}' "$daemon"; }
wait_health() {
  for _ in $(seq 60); do
    [ "$(health)" = "$1" ] && return 0
    sleep 0.5
  done
  docker inspect --format '{{json .State.Health}}' "$daemon" >&2
  fail "the container's health never became $1 (it is $(health))"
}
wait_health healthy
say "  ok: HEALTHCHECK says healthy ($(docker inspect --format '{{(index .State.Health.Log 0).Output}}' "$daemon" | tr -d '\n'))"
docker kill --signal STOP "$daemon" >/dev/null
wait_health unhealthy
say "  ok: a stopped event loop turns the container unhealthy"
docker kill --signal CONT "$daemon" >/dev/null
wait_health healthy
say "  ok: healthy again once it runs"
started=$(date +%s.%N)
docker stop "$daemon" >/dev/null
stopped=$(date +%s.%N)
code=$(docker inspect --format '{{.State.ExitCode}}' "$daemon")
seconds=$(awk -v a="$started" -v b="$stopped" 'BEGIN { printf "%.1f", b - a }')
say "  docker stop took $seconds s, exit code $code"
[ "$code" = 0 ] || { docker logs "$daemon" 2>&1 | tail -n 20 >&2; fail "the daemon exited $code on docker stop"; }
docker logs "$daemon" 2>&1 | grep -q daemon_stopped || fail "no daemon_stopped in the daemon's log"
say "  ok: a clean stop (exit code 0, daemon_stopped logged)"

say "all checks passed; image $IMAGE: $((size / 1000000)) MB, build context $context"
