#!/bin/bash
# healthcheck_test.sh CRUDCAST_BINARY SOURCE_DIR: the container image's HEALTHCHECK script
# (deploy/docker-healthcheck.sh) passes against a running crudcast whose admin listener binds
# 0.0.0.0 as in the image, and fails once crudcast has stopped.
set -euo pipefail
binary=$1
check=$2/deploy/docker-healthcheck.sh
work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: any free port; the "crudcast started" line says which. The upstream need not exist:
# /healthz answers while the process serves.
"$binary" --upstream http://127.0.0.1:1 --listen 127.0.0.1:0 --admin-listen 0.0.0.0:0 2>"$work/log" &
pid=$!
admin=""
for _ in $(seq 100); do  # up to 10 s for the start line
  admin=$(grep -o 'admin=[^ ]*' "$work/log" | head -n1 | cut -d= -f2) || true
  [[ -n $admin ]] && break
  kill -0 "$pid" 2>/dev/null || { echo "FAIL: crudcast exited:"; cat "$work/log"; exit 1; }
  sleep 0.1
done
[[ -n $admin ]] || { echo "FAIL: no start line:"; cat "$work/log"; exit 1; }

CRUDCAST_ADMIN_LISTEN=$admin bash "$check" || { echo "FAIL: healthcheck failed against $admin"; exit 1; }
echo "ok: healthcheck passes against a running crudcast (admin $admin)"
CRUDCAST_ADMIN_LISTEN=0.0.0.0:1 bash "$check" 2>/dev/null && { echo "FAIL: healthcheck passed on a closed port"; exit 1; }

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[[ $status -eq 0 ]] || { echo "FAIL: crudcast exited $status after SIGTERM"; exit 1; }
CRUDCAST_ADMIN_LISTEN=$admin bash "$check" 2>/dev/null && { echo "FAIL: healthcheck passed after crudcast stopped"; exit 1; }
echo "ok: healthcheck fails once crudcast has stopped"
