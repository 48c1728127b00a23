#!/usr/bin/env bash
# System test of contrib/compose/compose.yaml: three archiver replicas on one PostgreSQL and
# one evidence volume, archiving from the vendor simulators. Not part of `make test`; run it
# with
#
#   tests/system/replicas_compose.sh       # or `make system-test` (with the other two)
#
# It needs a Docker engine: DOCKER_HOST, or else the shared tools' container-engine.sh
# (../shared/tools beside the checkout, or $SHARED_TOOLS), which it starts. Where none can
# be had it says so and exits 3. It uses `docker compose` (the v2 plugin) where there is
# one, else `docker-compose` (v1, Debian's docker-compose package, installed here with
# apt-get when missing).
#
# It builds and starts the stack under a project name of its own, then:
#   1. kills one replica (docker kill: SIGKILL) once a fifth of the sessions are archived
#      and starts it again a few seconds later;
#   2. kills another once half of them are archived and leaves it dead until the others
#      have archived every session (they take its sessions over when its leases lapse);
#   3. checks every session the simulators hold has exactly one manifest and one ledger
#      record, and at most one `session_archived` event among the three replicas' logs
#      (none only for what a killed replica had in flight: replicas_check.py says why),
#      and that `archiver verify` exits 0: in sessions taken over from the replica that
#      stays dead, the objects it had written before it was killed are reported as
#      abandoned (not evidence, no problem: docs/architecture.md "Claims"), which
#      replicas_check.py checks are only those.
# It prints how long the archiving took. It exits non-zero on the first failed check; the
# stack, its volumes and the test's folder are removed on exit (the images are kept).
set -euo pipefail

cd "$(dirname "$0")/../.."
COMPOSE_FILE=contrib/compose/compose.yaml
PROJECT=${PROJECT:-archiver-replicas-$$}
DEADLINE_SECONDS=${DEADLINE_SECONDS:-600} # to archive every session, kills included
EVIDENCE=/var/lib/archiver/evidence
KILLS=2
# What a killed replica can have had in flight, past its last log line: per source (two in
# archiver.toml), session_concurrency (8) sessions downloading and 4 per slot finishing
# (archiver/engine.py, FINISHING_PER_SLOT).
UNLOGGED_MAX=$((KILLS * 2 * 8 * (1 + 4)))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/archiver-replicas-test.XXXXXX")
COMPOSE=()
STACK_UP=false

say() { echo "replicas_compose: $*"; }
fail() {
  echo "replicas_compose: FAILED: $*" >&2
  exit 1
}
unavailable() {
  echo "replicas_compose: $*" >&2
  exit 3
}

cleanup() {
  local status=$?
  if [ "$STACK_UP" = true ]; then
    if [ "$status" != 0 ]; then
      echo "--- the stack's last log lines" >&2
      compose logs --no-color --tail 15 >&2 2>&1 || true
    fi
    compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "replicas_compose: FAILED: line $LINENO: $BASH_COMMAND" >&2' ERR

compose() { "${COMPOSE[@]}" --project-name "$PROJECT" --file "$COMPOSE_FILE" "$@"; }

# --- the engine and compose ----------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  engine=""
  for tools in "${SHARED_TOOLS:-}" "$PWD/../shared/tools" /work/shared/tools; do
    if [ -n "$tools" ] && [ -x "$tools/container-engine.sh" ]; then
      engine="$tools/container-engine.sh"
      break
    fi
  done
  [ -n "$engine" ] || unavailable "no Docker engine (DOCKER_HOST) and no container-engine.sh"
  exports=$("$engine" start) || unavailable "container-engine.sh could not start an engine"
  eval "$exports"
fi
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    say "installing docker-compose (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1; } ||
      true
  fi
  command -v docker-compose >/dev/null 2>&1 ||
    unavailable "neither docker compose (v2) nor docker-compose (v1) is available"
  COMPOSE=(docker-compose)
fi
say "$("${COMPOSE[@]}" version | head -n 1), project $PROJECT"

# --- build and start -----------------------------------------------------------------------
started=$(date +%s)
say "building the images (archiver, postgres, simulators)"
compose build >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fail "the build failed"; }
STACK_UP=true
compose up --detach >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up failed"; }
built=$(date +%s)
say "  ok: built and started in $((built - started)) s"

container() { compose ps --quiet "$1"; }
in_replica() { docker exec -i "$(container archiver-3)" "$@"; }

expected_count=""
for _ in $(seq 120); do
  if compose exec -T simulators cat /tmp/expected.json >"$WORK/expected.json" 2>/dev/null; then
    expected_count=$(python3 -c 'import json, sys; print(sum(map(len, json.load(sys.stdin).values())))' \
      <"$WORK/expected.json")
    break
  fi
  sleep 0.5
done
[ -n "$expected_count" ] || fail "the simulators wrote no list of their sessions"
say "the simulators hold $expected_count complete sessions"

# How many manifests the evidence volume holds (none before the first replica writes).
archived() {
  in_replica sh -c "find $EVIDENCE -mindepth 3 -maxdepth 3 -name manifest.json 2>/dev/null | wc -l"
}

# wait_archived COUNT: until COUNT manifests are in the evidence volume.
wait_archived() {
  local target=$1 count
  while true; do
    count=$(archived)
    [ "$count" -ge "$target" ] && return 0
    [ $(($(date +%s) - built)) -lt "$DEADLINE_SECONDS" ] ||
      fail "$count of $expected_count sessions archived after $DEADLINE_SECONDS s"
    sleep 0.5
  done
}

# --- kill replicas along the way -----------------------------------------------------------
wait_archived $((expected_count / 5))
docker kill "$(container archiver-1)" >/dev/null
say "  killed archiver-1 with $(archived) of $expected_count archived"
sleep 3
compose start archiver-1 >/dev/null 2>&1
say "  started archiver-1 again"

wait_archived $((expected_count / 2))
docker kill "$(container archiver-2)" >/dev/null
say "  killed archiver-2 with $(archived) of $expected_count archived; it stays down"

wait_archived "$expected_count"
finished=$(date +%s)
say "  ok: $expected_count sessions archived $((finished - built)) s after the start"

# --- exactly once --------------------------------------------------------------------------
# A manifest is stored before its ledger record and its session_archived event: the last
# sessions' may follow a moment later.
check_once() {
  for name in archiver-1 archiver-2 archiver-3; do
    docker logs "$(container "$name")" >"$WORK/$name.log" 2>&1
  done
  in_replica python - inventory "$EVIDENCE" <tests/system/replicas_check.py >"$WORK/inventory.json"
  python3 tests/system/replicas_check.py check "$WORK/expected.json" "$WORK/inventory.json" "$UNLOGGED_MAX" \
    "$WORK"/archiver-[123].log >"$WORK/check.txt" 2>"$WORK/check-problems.txt"
}
for attempt in $(seq 30); do
  check_once && break
  [ "$attempt" -lt 30 ] || { cat "$WORK/check-problems.txt" >&2; fail "not every session was archived exactly once"; }
  sleep 1
done
say "  ok: $(cat "$WORK/check.txt")"

# archiver verify exits 0; what killed replicas left behind in sessions another replica
# took over is reported as abandoned, and replicas_check.py checks it is only that.
status=0
in_replica archiver verify --json >"$WORK/verify.json" 2>"$WORK/verify.log" || status=$?
if [ "$status" != 0 ]; then
  python3 tests/system/replicas_check.py verify "$WORK/inventory.json" "$WORK/verify.json" >&2 || true
  tail -n 20 "$WORK/verify.log" >&2
  fail "archiver verify exited $status"
fi
python3 tests/system/replicas_check.py verify "$WORK/inventory.json" "$WORK/verify.json" \
  >"$WORK/verify-check.txt" || fail "archiver verify's abandoned objects are not only those of killed replicas"
say "  ok: archiver verify exits 0"
say "      $(cat "$WORK/verify-check.txt")"

say "all checks passed in $(($(date +%s) - started)) s (archiving $((finished - built)) s)"
