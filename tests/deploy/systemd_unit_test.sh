#!/bin/bash
# systemd_unit_test.sh CRUDCAST_BINARY SOURCE_DIR: deploy/systemd/crudcast.service passes
# `systemd-analyze verify` with no warning at all (verify exits 0 on unknown keys and bad values,
# so any output fails the test), and its sandbox keeps `systemd-analyze security` exposure <= 2.0.
# verify needs the ExecStart binary to exist: a copy of the unit points at the built one. Neither
# command needs systemd running as PID 1.
set -euo pipefail
binary=$1
unit=$2/deploy/systemd/crudcast.service
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (apt-get install systemd)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -q '^ExecStart=/usr/bin/crudcast' "$unit" || { echo "FAIL: ExecStart is not /usr/bin/crudcast"; exit 1; }
sed "s#/usr/bin/crudcast#$binary#g" "$unit" >"$work/crudcast.service"

if ! output=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work/crudcast.service" 2>&1); then
  echo "FAIL: systemd-analyze verify failed:"; echo "$output"; exit 1
fi
if [[ -n $output ]]; then
  echo "FAIL: systemd-analyze verify warned:"; echo "$output"; exit 1
fi
echo "ok: systemd-analyze verify"

if ! report=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$work/crudcast.service" 2>&1); then
  echo "FAIL: exposure above 2.0:"; echo "$report"; exit 1
fi
echo "ok: systemd-analyze security: ${report##*$'\n'}"

# The stop timeout must outlast crudcast's drain (default 10s, or the unit's CRUDCAST_DRAIN_TIMEOUT).
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$unit")
[[ -n $stop && $stop -gt 10 ]] || { echo "FAIL: TimeoutStopSec (${stop:-unset}) must exceed the 10s drain-timeout"; exit 1; }
grep -q '^KillSignal=SIGTERM$' "$unit" || { echo "FAIL: KillSignal is not SIGTERM"; exit 1; }
echo "ok: TimeoutStopSec=${stop}s > drain-timeout 10s"
