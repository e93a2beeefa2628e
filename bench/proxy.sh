#!/usr/bin/env bash
# bench/proxy.sh: crudcast against nginx as a keep-alive reverse proxy, side by side in one run.
#
# Three fronts, all in front of the same backend, load from wrk on 127.0.0.1:
#   direct    the backend itself (the ceiling)
#   nginx     nginx, 1 worker, upstream keepalive 64 (bench/nginx-proxy.conf.in)
#   crudcast  crudcast --threads 1
#   baseline  only with CRUDCAST_BASELINE_BIN: a second crudcast build, same flags (an A/B of two
#             builds, e.g. before and after a refactor)
# The backend is a second nginx (1 worker) that answers every request from memory with a small
# JSON body (bench/nginx-backend.conf.in): far cheaper per request than proxying, so the fronts are
# what is measured. GET and POST (small JSON body, bench/post.lua), each front measured in
# BENCH_ROUNDS interleaved rounds (round-robin over the fronts, rotating the order every round) so
# machine noise hits all fronts alike; the table shows the median over the rounds.
# Neither proxy logs per request: nginx has access_log off, crudcast runs with --log-level warn and
# its stderr on /dev/null.
#
# Environment (defaults in brackets):
#   CRUDCAST_BIN [<repo>/build/crudcast]   NGINX_BIN [/usr/sbin/nginx]   WRK_BIN [wrk]
#   BENCH_ROUNDS [3]  BENCH_DURATION [5s]  BENCH_WARMUP [1s, 0 = none]
#   BENCH_THREADS [1] BENCH_CONNECTIONS [32]   (wrk -t/-c; a 2-core box runs wrk, front and backend)
#   BENCH_GET_PATH [/api/authors/1]  BENCH_POST_PATH [/api/authors]
#   BENCH_CRUDCAST_STANDIN [unset]   "nginx": put a second nginx where crudcast goes, to test this
#                                    script without a crudcast binary (the ratios should be ~1.0)
#   CRUDCAST_BASELINE_BIN [unset]    another crudcast binary (e.g. the build before a change): run
#                                    as the front `baseline` with crudcast's flags, measured in the
#                                    same rounds, and a "crudcast / baseline" block (ratios of the
#                                    medians and per round, no targets) follows the nginx one.
#                                    CRUDCAST_BASELINE_BIN=$CRUDCAST_BIN shows the noise (~1.0)
# Exit status: 0 all targets met, 2 a target missed, 1 the benchmark could not run. The targets are
# against nginx; the baseline front never changes the exit status (its errors are only reported).
# Everything (configs, logs, raw wrk output) lives in a mktemp directory removed on exit, and every
# process the script starts is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

CRUDCAST_BIN=${CRUDCAST_BIN:-$root/build/crudcast}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
THREADS=${BENCH_THREADS:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
GET_PATH=${BENCH_GET_PATH:-/api/authors/1}
POST_PATH=${BENCH_POST_PATH:-/api/authors}
STANDIN=${BENCH_CRUDCAST_STANDIN:-}
BASELINE_BIN=${CRUDCAST_BASELINE_BIN:-}

EXPECTED_BODY='{"id":1,"name":"Ada Lovelace","born":1815}'
RPS_TARGET=0.90 # crudcast req/s / nginx req/s must be at least this
P99_TARGET=1.20 # crudcast p99 / nginx p99 must be at most this

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_arguments "$@"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
for tool in "$WRK_BIN" "$NGINX_BIN" curl python3 setsid; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
if [[ -z $STANDIN ]]; then
    [[ -x $CRUDCAST_BIN ]] || die "no crudcast binary at $CRUDCAST_BIN (build it, or set CRUDCAST_BIN)"
elif [[ $STANDIN != nginx ]]; then
    die "BENCH_CRUDCAST_STANDIN must be 'nginx' or unset, got '$STANDIN'"
fi
if [[ -n $BASELINE_BIN ]]; then
    [[ -x $BASELINE_BIN ]] || die "no crudcast binary at CRUDCAST_BASELINE_BIN=$BASELINE_BIN"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/crudcast-bench.XXXXXX")
chmod 0711 "$work" # nginx workers drop root privileges and must reach their temp dirs
pids=()

load_pid=

bench_install_cleanup

ports=$(bench_free_ports $((${BASELINE_BIN:+1} + 3))) || true
read -r port_backend port_nginx port_crudcast port_baseline <<<"$ports"
[[ -n ${port_crudcast:-} && ( -z $BASELINE_BIN || -n ${port_baseline:-} ) ]] || die "could not pick free ports"

# Servers run in their own session (setsid): a Ctrl-C on the terminal reaches only this script,
# whose EXIT trap then stops wrk, the fronts and the backend in that order.
#
# start_nginx NAME TEMPLATE PORT [BACKEND_PORT]: render the template into $work and run nginx.
start_nginx() {
    local name=$1 template=$2 port=$3 backend_port=${4:-}
    mkdir -p "$work/$name-tmp"
    sed -e "s|@WORK@|$work|g" -e "s|@NAME@|$name|g" -e "s|@PORT@|$port|g" \
        -e "s|@BACKEND_PORT@|$backend_port|g" "$here/$template" >"$work/$name.conf"
    setsid "$NGINX_BIN" -p "$work/" -c "$work/$name.conf" -e "$work/$name-error.log" </dev/null &
    pids+=("$!")
}

# start_failed NAME WHY [LOG]: show the tail of LOG (it is deleted on exit) and give up.
start_failed() {
    [[ -n ${3:-} && -s ${3:-} ]] && tail -n 20 "$3" >&2
    die "$1 $2"
}

# wait_ready NAME PORT [LOG]: until GET and POST through NAME (the process started last) answer
# 200 with the backend's body.
wait_ready() {
    local name=$1 port=$2 log=${3:-} pid=${pids[-1]} i body
    for ((i = 0; i < 100; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port$GET_PATH" 2>/dev/null; then
            body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port$GET_PATH") ||
                start_failed "$name" "failed GET $GET_PATH" "$log"
            [[ $body == "$EXPECTED_BODY" ]] || start_failed "$name" "answered GET $GET_PATH with '$body'" "$log"
            body=$(curl -fsS --max-time 2 -H 'Content-Type: application/json' \
                --data '{"name":"Ada Lovelace","born":1815}' "http://127.0.0.1:$port$POST_PATH") ||
                start_failed "$name" "failed POST $POST_PATH" "$log"
            [[ $body == "$EXPECTED_BODY" ]] || start_failed "$name" "answered POST $POST_PATH with '$body'" "$log"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || start_failed "$name" "exited during startup" "$log"
        sleep 0.1
    done
    start_failed "$name" "is not answering on 127.0.0.1:$port after 10 s" "$log"
}

start_nginx backend nginx-backend.conf.in "$port_backend"
wait_ready backend "$port_backend" "$work/backend-error.log"
start_nginx nginx nginx-proxy.conf.in "$port_nginx" "$port_backend"
wait_ready nginx "$port_nginx" "$work/nginx-error.log"
crudcast_flags=(--upstream "http://127.0.0.1:$port_backend" --threads 1 --admin-listen off --log-level warn)
crudcast_cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port_crudcast" "${crudcast_flags[@]}")
if [[ -n $STANDIN ]]; then
    note "NOTE: BENCH_CRUDCAST_STANDIN=nginx: the 'crudcast' front is a second nginx, not crudcast"
    start_nginx crudcast-standin nginx-proxy.conf.in "$port_crudcast" "$port_backend"
    wait_ready crudcast "$port_crudcast" "$work/crudcast-standin-error.log"
else
    setsid "${crudcast_cmd[@]}" </dev/null >/dev/null 2>&1 &
    pids+=("$!")
    note "crudcast: ${crudcast_cmd[*]}  (output discarded)"
    wait_ready crudcast "$port_crudcast"
fi

fronts=(direct nginx crudcast)
declare -A url=(
    [direct]="http://127.0.0.1:$port_backend"
    [nginx]="http://127.0.0.1:$port_nginx"
    [crudcast]="http://127.0.0.1:$port_crudcast"
)
if [[ -n $BASELINE_BIN ]]; then
    baseline_cmd=("$BASELINE_BIN" --listen "127.0.0.1:$port_baseline" "${crudcast_flags[@]}")
    setsid "${baseline_cmd[@]}" </dev/null >/dev/null 2>&1 &
    pids+=("$!")
    note "baseline: ${baseline_cmd[*]}  (output discarded)"
    cmp -s "$BASELINE_BIN" "$CRUDCAST_BIN" &&
        note "NOTE: CRUDCAST_BASELINE_BIN is the same file as CRUDCAST_BIN: the crudcast / baseline ratios show the noise"
    wait_ready baseline "$port_baseline"
    fronts+=(baseline)
    url[baseline]="http://127.0.0.1:$port_baseline"
fi

# run_wrk FRONT METHOD DURATION: one wrk run; sets w_rps, w_p50, w_p99 (microseconds) and w_errors.
# wrk runs in the background and is waited for, so a signal to this script stops it at once.
run_wrk() {
    local front=$1 method=$2 duration=$3 out=$work/wrk.out
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency)
    local target=${url[$front]}$GET_PATH
    if [[ $method == POST ]]; then
        args+=(-s "$here/post.lua")
        target=${url[$front]}$POST_PATH
    fi
    "$WRK_BIN" "${args[@]}" "$target" </dev/null >"$out" 2>&1 &
    load_pid=$!
    wait "$load_pid" || die "wrk failed against $front: $(cat "$out")"
    load_pid=
    cat "$out" >>"$work/wrk-$front-$method.txt"
    w_rps=
    read -r w_rps w_p50 w_p99 w_errors < <(awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /s$/) return v * 1000000
            if (v ~ /m$/) return v * 60000000
            return v + 0
        }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) { gsub(",", "", $i); if ($i ~ /^[0-9]+$/) errors += $i } }
        END { if (rps != "" && p50 != "" && p99 != "") printf "%.0f %.0f %.0f %d\n", rps, p50, p99, errors }
        ' "$out") || true
    [[ -n $w_rps ]] || die "cannot parse wrk's output against $front: $(cat "$out")"
}

note "crudcast proxy benchmark: $(nproc) CPUs; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency;" \
    "$ROUNDS rounds; GET $GET_PATH, POST $POST_PATH"
if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
    for front in "${fronts[@]}"; do
        for method in GET POST; do run_wrk "$front" "$method" "$WARMUP"; done
    done
    rm -f "$work"/wrk-*.txt
fi

declare -A rps=() p50=() p99=()
failures=0 baseline_failures=0
for ((round = 0; round < ROUNDS; round++)); do
    for method in GET POST; do
        for ((i = 0; i < ${#fronts[@]}; i++)); do
            front=${fronts[(i + round) % ${#fronts[@]}]}
            run_wrk "$front" "$method" "$DURATION"
            rps[$front,$method]+="$w_rps "
            p50[$front,$method]+="$w_p50 "
            p99[$front,$method]+="$w_p99 "
            note "$(printf 'round %d/%d %-4s %-8s %8s req/s  p50 %6s us  p99 %6s us' \
                "$((round + 1))" "$ROUNDS" "$method" "$front" "$w_rps" "$w_p50" "$w_p99")"
            if ((w_errors > 0)); then
                note "WARNING: $front $method: $w_errors socket errors or non-2xx responses in this round"
                if [[ $front == baseline ]]; then
                    baseline_failures=$((baseline_failures + w_errors))
                else
                    failures=$((failures + w_errors))
                fi
            fi
        done
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3fms", us / 1000 }'; }

declare -A med=()
for front in "${fronts[@]}"; do
    for method in GET POST; do
        med[$front,$method,rps]=$(median <<<"${rps[$front,$method]}")
        med[$front,$method,p50]=$(median <<<"${p50[$front,$method]}")
        med[$front,$method,p99]=$(median <<<"${p99[$front,$method]}")
    done
done

echo
echo "median of $ROUNDS rounds, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) CPUs shared by wrk, front and backend"
printf '%-9s %11s %10s %10s %11s %10s %10s\n' front "GET req/s" "GET p50" "GET p99" "POST req/s" "POST p50" "POST p99"
for front in "${fronts[@]}"; do
    label=$front
    [[ $front == crudcast && -n $STANDIN ]] && label="crudcast*"
    printf '%-9s %11.0f %10s %10s %11.0f %10s %10s\n' "$label" \
        "${med[$front,GET,rps]}" "$(ms "${med[$front,GET,p50]}")" "$(ms "${med[$front,GET,p99]}")" \
        "${med[$front,POST,rps]}" "$(ms "${med[$front,POST,p50]}")" "$(ms "${med[$front,POST,p99]}")"
done
[[ -n $STANDIN ]] && echo "(* a second nginx standing in for crudcast: BENCH_CRUDCAST_STANDIN=nginx)"

# ratios A B METHOD METRIC: sets `ratio` (A's median / B's median) and `per_round` (the same ratio
# round by round: A and B are measured close together in every round, so its spread shows how much
# the machine's noise moved the result).
ratios() {
    local a=$1 b=$2 method=$3 metric=$4
    ratio=$(awk -v c="${med[$a,$method,$metric]}" -v n="${med[$b,$method,$metric]}" \
        'BEGIN { printf "%.2f", (n > 0 ? c / n : 0) }')
    declare -n values=$metric
    per_round=$(awk -v c="${values[$a,$method]}" -v n="${values[$b,$method]}" 'BEGIN {
        k = split(c, cv, " "); split(n, nv, " ")
        for (i = 1; i <= k; i++) printf "%s%.2f", (i > 1 ? " " : ""), (nv[i] > 0 ? cv[i] / nv[i] : 0) }')
    unset -n values
}

echo
echo "crudcast / nginx:"
missed=0
for method in GET POST; do
    for metric in rps p99; do
        ratios crudcast nginx "$method" "$metric"
        if [[ $metric == rps ]]; then
            verdict=$(awk -v r="$ratio" -v t="$RPS_TARGET" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }')
            name="req/s"
        else
            verdict=$(awk -v r="$ratio" -v t="$P99_TARGET" 'BEGIN { print (r <= t ? "PASS" : "FAIL") }')
            name="p99"
        fi
        [[ $verdict == PASS ]] || missed=1
        printf '  %-4s %-6s ratio %5s  %s   (per round: %s)\n' "$method" "$name" "$ratio" "$verdict" "$per_round"
    done
done
echo "target: req/s ratio >= $RPS_TARGET, p99 ratio <= $P99_TARGET"
if [[ -n $BASELINE_BIN ]]; then
    echo
    echo "crudcast / baseline (A/B, no targets: ~1.00 within the per-round spread = no change):"
    for method in GET POST; do
        for metric in rps p99; do
            ratios crudcast baseline "$method" "$metric"
            [[ $metric == rps ]] && name="req/s" || name="p99"
            printf '  %-4s %-6s ratio %5s         (per round: %s)\n' "$method" "$name" "$ratio" "$per_round"
        done
    done
    echo "  crudcast = $CRUDCAST_BIN"
    echo "  baseline = $BASELINE_BIN"
fi
if ((failures > 0)); then
    echo "WARNING: $failures errors or non-2xx responses during the measured rounds (see above)"
    missed=1
fi
if ((baseline_failures > 0)); then
    echo "WARNING: $baseline_failures errors or non-2xx responses from baseline (see above; the exit status ignores them)"
fi
exit $((missed ? 2 : 0))
