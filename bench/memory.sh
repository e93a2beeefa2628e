#!/usr/bin/env bash
# bench/memory.sh: memory per idle WebSocket subscriber, crudcast against a plain Node + ws server,
# in one run.
#
# Fronts, each started fresh, measured alone, then stopped (in this order):
#   crudcast1  crudcast --threads 1
#   crudcast   crudcast with the default thread count (one per core)
#   node       bench/node-broadcaster/server.js: one Node process with the `ws` package
# The client (crudcast-memory-client, bench/memory_client.cpp) opens idle subscribers at /ws in
# steps (MEMORY_STEPS), half with ?topic=author and half for every model, every one a real
# handshake checked for its 101, and after each step checks that every subscriber is still open
# and reads the front's VmRSS (/proc/PID/status) and Pss and private memory (smaps_rollup). It
# splits the subscribers over child processes of MEMORY_PER_PROCESS each: one process may hold at
# most the hard open-file limit of descriptors.
# KiB per subscriber = (RSS at N - RSS before the first subscriber) / N. The slope of a least-squares
# line through every step (0 included) projects 100k and 1M subscribers.
# crudcast runs with --ws-ping-interval longer than the run (the client reads nothing, so a ping
# would go unanswered), --ws-handshake-rate 0 (every subscriber comes from 127.0.0.1, and the
# default, 100 a second per address, would refuse most), --admin-listen off, --log-level warn; the
# script prints the flags. Node's ws pings nobody.
#
# Environment (defaults in brackets):
#   CRUDCAST_BIN [<repo>/build/crudcast]  CLIENT_BIN [<repo>/build/bench/crudcast-memory-client]
#   NODE_BIN [node]  NPM_BIN [npm]
#   MEMORY_STEPS [1000,5000,10000,19000]  (19000: the most below a hard open-file limit of 20,000
#             in the front, which also holds its listener and a few more descriptors)
#   MEMORY_PER_PROCESS [5000]  MEMORY_FRONTS ["crudcast1 crudcast node"]
#   MEMORY_TARGET_KIB [4]  (crudcast's KiB per subscriber at 10000 and at the last step)
# Exit status: 0 every target met, 2 a target missed, 1 the benchmark could not run (also when one
# subscriber of any front failed to connect or was closed). The targets are crudcast's.
# Builds nothing: ninja -C build crudcast crudcast-memory-client first. Runs `npm ci` in
# bench/node-broadcaster when its node_modules is missing. Everything listens on 127.0.0.1; logs
# live in a mktemp directory removed on exit, with every process started here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

CRUDCAST_BIN=${CRUDCAST_BIN:-$root/build/crudcast}
CLIENT_BIN=${CLIENT_BIN:-$root/build/bench/crudcast-memory-client}
NODE_BIN=${NODE_BIN:-node}
NPM_BIN=${NPM_BIN:-npm}
STEPS=${MEMORY_STEPS:-1000,5000,10000,19000}
PER_PROCESS=${MEMORY_PER_PROCESS:-5000}
TARGET=${MEMORY_TARGET_KIB:-4}
read -r -a FRONTS <<<"${MEMORY_FRONTS:-crudcast1 crudcast node}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_arguments "$@"

[[ $STEPS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "MEMORY_STEPS must be counts separated by commas, got '$STEPS'"
if ! [[ $PER_PROCESS =~ ^[0-9]+$ ]] || ((PER_PROCESS < 1)); then die "MEMORY_PER_PROCESS must be at least 1"; fi
for f in "${FRONTS[@]}"; do
    [[ $f == crudcast1 || $f == crudcast || $f == node ]] || die "unknown front '$f' (crudcast1, crudcast, node)"
done
for tool in python3 awk setsid; do command -v "$tool" >/dev/null || die "'$tool' not found"; done
[[ -x $CRUDCAST_BIN ]] || die "no crudcast binary at $CRUDCAST_BIN (build it, or set CRUDCAST_BIN)"
[[ -x $CLIENT_BIN ]] || die "no client at $CLIENT_BIN (ninja -C build crudcast-memory-client, or set CLIENT_BIN)"
ulimit -n "$(ulimit -Hn)"
most=${STEPS##*,}
((PER_PROCESS + 64 <= $(ulimit -n))) || die "MEMORY_PER_PROCESS=$PER_PROCESS does not fit open-file limit $(ulimit -n)"
((most + 64 <= $(ulimit -n))) || die "the last step ($most) does not fit the front's open-file limit $(ulimit -n)"

node_dir=$here/node-broadcaster
if [[ " ${FRONTS[*]} " == *" node "* ]]; then
    command -v "$NODE_BIN" >/dev/null || die "'$NODE_BIN' not found"
    if [[ ! -d $node_dir/node_modules/ws ]]; then
        note "installing bench/node-broadcaster's dependencies (npm ci)"
        (cd "$node_dir" && "$NPM_BIN" ci --no-audit --no-fund >&2) || die "npm ci failed in $node_dir"
    fi
fi

work=$(mktemp -d)
pids=()
load_pid=""
bench_install_cleanup

read -r port dead_port <<<"$(bench_free_ports 2)"
# Nothing listens on dead_port: idle subscribers never reach the upstream.
crudcast_flags=(--upstream "http://127.0.0.1:$dead_port" --admin-listen off --log-level warn
    --ws-ping-interval 1h --ws-handshake-rate 0 --ws-max-subscribers 100000)

# wait_listening PORT PID LOG: until something accepts on 127.0.0.1:PORT, while PID lives.
wait_listening() {
    local i
    for ((i = 0; i < 150; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "front exited during startup"; }
        sleep 0.1
    done
    cat "$3" >&2
    die "front not listening on 127.0.0.1:$1 after 15 s"
}

# measure FRONT: starts it, runs the client against it, stops it; STEP lines go to $work/FRONT.out.
measure() {
    local front=$1 cmd pid
    case $front in
    crudcast1) cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port" --threads 1 "${crudcast_flags[@]}") ;;
    crudcast) cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port" --threads 0 "${crudcast_flags[@]}") ;;
    node) cmd=("$NODE_BIN" "$node_dir/server.js" --listen "127.0.0.1:$port") ;;
    esac
    note "$front: ${cmd[*]}"
    setsid "${cmd[@]}" </dev/null >"$work/$front.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_listening "$port" "$pid" "$work/$front.log"
    "$CLIENT_BIN" --port "$port" --server-pid "$pid" --steps "$STEPS" --per-process "$PER_PROCESS" \
        >"$work/$front.out" &
    load_pid=$!
    local status=0
    wait "$load_pid" || status=$?
    load_pid=""
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'pids[-1]'
    if ((status != 0)); then
        note "$front: the client failed (a subscriber did not connect or was closed); the front's log:"
        tail -n 20 "$work/$front.log" >&2
        exit 1
    fi
}

note "machine: $(nproc) cores, open-file limit $(ulimit -n); steps $STEPS; client processes of up to $PER_PROCESS subscribers"
for front in "${FRONTS[@]}"; do measure "$front"; done

outputs=()
for front in "${FRONTS[@]}"; do outputs+=("$work/$front.out"); done
# The table: per front and step, RSS, Pss and private KiB, and KiB per subscriber; then the fit.
awk -v target="$TARGET" -v most="$most" -v fronts="${FRONTS[*]}" '
function fit(f,    i, n, sx, sy, sxx, sxy, x, y, slope) {
    n = count[f]; sx = sy = sxx = sxy = 0
    for (i = 1; i <= n; i++) { x = N[f, i]; y = R[f, i]; sx += x; sy += y; sxx += x * x; sxy += x * y }
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    slope_of[f] = slope; base_of[f] = (sy - slope * sx) / n
}
FNR == 1 { f = FILENAME; sub(/.*\//, "", f); sub(/\.out$/, "", f) }
/^STEP / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    c = ++count[f]; N[f, c] = v["n"]; R[f, c] = v["rss_kib"]; P[f, c] = v["pss_kib"]; Q[f, c] = v["private_kib"]
    per[f, v["n"]] = v["per_sub_kib"]
}
END {
    printf "%-10s %7s %10s %10s %11s %9s\n", "front", "subs", "RSS KiB", "Pss KiB", "private KiB", "KiB/sub"
    nf = split(fronts, order, " ")
    for (j = 1; j <= nf; j++) {
        f = order[j]
        for (i = 1; i <= count[f]; i++)
            printf "%-10s %7d %10d %10d %11d %9.2f\n", f, N[f, i], R[f, i], P[f, i], Q[f, i], per[f, N[f, i]]
    }
    print ""
    printf "%-10s %13s %14s %18s %17s\n", "front", "slope KiB/sub", "fit base MiB", "100k subs (MiB)", "1M subs (GiB)"
    for (j = 1; j <= nf; j++) {
        f = order[j]; fit(f)
        printf "%-10s %13.2f %14.1f %18.0f %17.2f\n", f, slope_of[f], base_of[f] / 1024,
            (base_of[f] + 1e5 * slope_of[f]) / 1024, (base_of[f] + 1e6 * slope_of[f]) / 1048576
    }
    print ""
    missed = 0
    for (j = 1; j <= nf; j++) {
        f = order[j]
        if (f == "node") continue
        for (k = 1; k <= 2; k++) {
            n = k == 1 ? 10000 : most
            if (k == 2 && most == 10000) continue
            if (!((f, n) in per)) continue
            ok = per[f, n] <= target
            if (!ok) missed = 1
            printf "%s KiB per idle subscriber at %d: %.2f (target <= %s) %s\n", f, n, per[f, n], target, ok ? "PASS" : "FAIL"
        }
        if (("node", most) in per && per["node", most] > 0)
            printf "%s / node at %d: %.2f (KiB per subscriber)\n", f, most, per[f, most] / per["node", most]
    }
    exit missed ? 2 : 0
}' "${outputs[@]}"
