#!/usr/bin/env bash
# System test of systemd/archiver.service under a real systemd. Not part of `make test`;
# run it with
#
#   tests/system/systemd_unit.sh           # or `make system-test` (also runs container_image.sh)
#
# It needs a Docker engine (DOCKER_HOST or the default socket) that can run systemd as a
# container's PID 1 with the host's cgroups mounted; shared/tools/container-engine.sh starts
# one where there is none: eval "$(path/to/container-engine.sh)".
#
# It builds tests/system/systemd.Dockerfile (the archiver installed in /opt/archiver as
# docs/operations.md says), boots it, installs the unit, a config and an environment file, and a
# Perfecto simulator that answers slowly, so that passes take a while. Then:
#   1. `systemctl start archiver` returns once the daemon says READY=1 (Type=notify): the
#      unit is active, the daemon logs daemon_started, the unit has a watchdog;
#   2. `systemctl stop archiver` in the middle of a pass: the daemon itself exits 0
#      (not killed), logs daemon_stopped, within TimeoutStopSec; the stop time is printed;
#   3. with a configuration error `systemctl start` fails, the daemon exits 78, and the
#      unit ends up failed, with no
#      restart (RestartPreventExitStatus=78), not activating again every RestartSec;
#   4. prints the exposure score of `systemd-analyze security archiver.service`.
# It exits non-zero on the first failed check; the container it started is removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE=${IMAGE_SYSTEMD:-archiver-systemd:system-test}
EXECUTIONS=4
LATENCY=1.0 # seconds the simulator adds to every request
SIM_TOKEN=perfecto-system-test-token
RESTART_SEC=10 # as in systemd/archiver.service
WORK=$(mktemp -d "${TMPDIR:-/tmp}/archiver-systemd-test.XXXXXX")
MACHINE=""

say() { echo "systemd_unit: $*"; }
fail() {
  echo "systemd_unit: FAILED: $*" >&2
  if [ -n "$MACHINE" ]; then
    echo "--- journalctl -u archiver (last 30 lines)" >&2
    docker exec "$MACHINE" journalctl -u archiver --no-pager -n 30 >&2 || true
  fi
  exit 1
}

cleanup() {
  local status=$?
  [ -z "$MACHINE" ] || docker rm -f "$MACHINE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

on_machine() { docker exec "$MACHINE" "$@"; }
on_machine_stdin() { docker exec -i "$MACHINE" "$@"; }
unit_property() { on_machine systemctl show archiver --value -p "$1"; }
journal() { on_machine journalctl -u archiver --no-pager -o cat; }
logged() { journal | grep -q "$1"; }

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds, or fail.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq "$((seconds * 4))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  fail "$what (waited $seconds s)"
}

# The daemon's own exit, recorded by an ExecStopPost= of this test (systemd forgets it once
# the unit is inactive): "SERVICE_RESULT EXIT_CODE EXIT_STATUS", e.g. "success exited 0".
exit_record() { on_machine cat /run/archiver-test-exit 2>/dev/null; }

install_config() {
  on_machine_stdin sh -c 'cat >/etc/archiver/archiver.toml && chgrp archiver /etc/archiver/archiver.toml \
    && chmod 0640 /etc/archiver/archiver.toml'
}

# --- build and boot ----------------------------------------------------------------------------
say "building $IMAGE"
if ! docker build --network host -f tests/system/systemd.Dockerfile -t "$IMAGE" . \
  >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log" >&2
  fail "docker build"
fi
MACHINE=$(docker run -d --network host --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /run --tmpfs /run/lock "$IMAGE")
state=""
for _ in $(seq 120); do
  state=$(on_machine systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 0.5
done
case "$state" in
  running) say "systemd is up" ;;
  degraded) say "systemd is up, degraded: $(on_machine systemctl --failed --no-legend --plain | xargs)" ;;
  *) fail "systemd did not boot (state: ${state:-none})" ;;
esac

# --- the unit, a config and the simulator --------------------------------------------------
docker cp systemd/archiver.service "$MACHINE:/etc/systemd/system/archiver.service" >/dev/null
on_machine mkdir -p /etc/systemd/system/archiver.service.d
on_machine_stdin sh -c 'cat >/etc/systemd/system/archiver.service.d/system-test.conf' <<'EOF'
[Service]
ExecStopPost=+/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" >/run/archiver-test-exit'
EOF
on_machine sh -c "umask 077 && echo PERFECTO_TOKEN=$SIM_TOKEN >/etc/archiver/archiver.env"
on_machine systemctl daemon-reload

docker cp tests/system/perfecto_simulator.py "$MACHINE:/root/perfecto_simulator.py" >/dev/null
on_machine sh -c "/opt/archiver/bin/python /root/perfecto_simulator.py --executions $EXECUTIONS \
  --token $SIM_TOKEN --latency $LATENCY >/root/simulator.out 2>&1 &"
wait_for 30 "the simulator did not start" on_machine grep -q '^http://' /root/simulator.out
sim_url=$(on_machine head -n 1 /root/simulator.out)

install_config <<EOF
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[engine]
interval_seconds = 3600
not_ready_delay_seconds = 0.5
[sources.perfecto]
base_url = "$sim_url"
token_env = "PERFECTO_TOKEN"
backfill_days = 1
EOF

# --- 1. start ----------------------------------------------------------------------------
say "systemctl start archiver (simulator at $sim_url, $LATENCY s per request)"
on_machine systemctl start archiver
wait_for 30 "no daemon_started in the journal" logged daemon_started
active=$(on_machine systemctl is-active archiver || true)
[ "$active" = active ] || fail "the unit is $active, not active"
user=$(on_machine ps -o user= -p "$(unit_property MainPID)" | xargs)
[ "$user" = archiver ] || fail "the daemon runs as $user, not archiver"
[ "$(unit_property Type)" = notify ] || fail "the unit is Type=$(unit_property Type), not notify"
[ "$(unit_property WatchdogUSec)" != 0 ] || fail "the unit has no watchdog"
say "  ok: active (READY=1 received), running as $user, watchdog $(unit_property WatchdogUSec)"
say "  status: $(unit_property StatusText)"

# --- 2. stop in the middle of a pass -------------------------------------------------------
sleep 3
logged pass_finished && say "  (the first pass ended before the stop: no session in flight)"
on_machine rm -f /run/archiver-test-exit
# shellcheck disable=SC2016 # expanded on the machine
stop_ms=$(on_machine bash -c 'start=$(date +%s%N); systemctl stop archiver
  echo $((($(date +%s%N) - start) / 1000000))')
record=$(exit_record || true)
seconds=$(awk -v ms="$stop_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
timeout=$(unit_property TimeoutStopUSec)
say "  systemctl stop took $seconds s (TimeoutStopSec $timeout); the daemon's exit: ${record:-unknown}"
manifests=$(on_machine sh -c 'find /var/lib/archiver/evidence -name manifest.json | wc -l')
say "  sessions archived by then: $manifests of $EXECUTIONS"
[ "$(unit_property ActiveState)" = inactive ] || fail "the unit is $(unit_property ActiveState) after stop"
[ "$record" = "success exited 0" ] \
  || fail "the daemon did not exit 0 on SIGTERM (SERVICE_RESULT EXIT_CODE EXIT_STATUS: ${record:-none})"
logged daemon_stopped || fail "no daemon_stopped in the journal"
if logged grace_period_over; then
  fail "the grace period ran out: sessions were cancelled"
fi
say "  ok: a clean stop (exit 0, daemon_stopped logged)"

# --- 3. a configuration error is not restarted -------------------------------------------------
say "a configuration error: the unit must end up failed, not restart every ${RESTART_SEC} s"
install_config <<EOF
[store]
url = "file:///var/lib/archiver/evidence"
[state]
url = "sqlite:////var/lib/archiver/state.db"
[engine]
no_such_setting = 1
EOF
on_machine rm -f /run/archiver-test-exit
on_machine systemctl reset-failed archiver 2>/dev/null || true
# Type=notify: no READY=1 ever comes, so `systemctl start` itself reports the failure.
if on_machine systemctl start archiver; then
  fail "systemctl start succeeded with a configuration error"
fi
say "  ok: systemctl start failed"
wait_for 30 "the daemon did not exit on a bad configuration" exit_record
record=$(exit_record)
say "  the daemon's exit: $record"
sleep "$((RESTART_SEC + 3))"
state="$(unit_property ActiveState)/$(unit_property SubState)"
restarts=$(unit_property NRestarts)
say "  $((RESTART_SEC + 3)) s later: $state, $restarts restarts"
[ "$record" = "exit-code exited 78" ] \
  || fail "a configuration error should exit 78 (EX_CONFIG), got: $record"
if [ "$state" != failed/failed ] || [ "$restarts" != 0 ]; then
  fail "the unit is $state after $restarts restarts: it should stay failed"
fi
say "  ok: exit 78, failed, not restarted"

# --- 4. sandbox -----------------------------------------------------------------------------
on_machine systemd-analyze security archiver.service --no-pager >"$WORK/security.txt" 2>&1 || true
exposure=$(grep -o 'Overall exposure level.*' "$WORK/security.txt" || echo "unknown")
say "systemd-analyze security: what still counts against the unit:"
grep '✗' "$WORK/security.txt" | sed 's/^/    /' || true
say "  $exposure"

say "all checks passed; stop took $seconds s; $exposure"
