#!/usr/bin/env bash
# bench/proxy.sh: crudcast against nginx and HAProxy as keep-alive reverse proxies, side by side in
# one run, at one and at two workers, two connection counts, GET and POST.
#
# Fronts, all in front of the same backend, load from wrk on 127.0.0.1:
#   direct    the backend itself (the ceiling; measured once per connection count and method, shown
#             with the first worker count)
#   nginx     nginx, W workers, upstream keepalive 64 per worker (bench/nginx-proxy.conf.in)
#   haproxy   HAProxy, nbthread W, http-reuse always, 64 x W pooled backend connections
#             (bench/haproxy-proxy.cfg.in)
#   crudcast  crudcast --threads W (events on: every 2xx POST publishes an event)
#   baseline  only with CRUDCAST_BASELINE_BIN: a second crudcast build, same flags (an A/B of two
#             builds, e.g. before and after a refactor)
# for every W in BENCH_WORKERS. The backend is a second nginx (1 worker) that answers every request
# from memory with a small JSON body (bench/nginx-backend.conf.in): far cheaper per request than
# proxying, so the fronts are what is measured. Every (workers, connections, method) cell measures
# each of its fronts in BENCH_ROUNDS interleaved rounds (the order of the fronts rotates every
# round) so machine noise hits all fronts alike; the table shows the median over the rounds, the
# ratios are the median of the per-round ratios (each round's pair measured seconds apart).
# No front logs per request: nginx has access_log off, HAProxy no log line, crudcast runs with
# --log-level warn and its stderr on /dev/null.
# Every run also charges the front its own CPU time (user and system, from /proc/<pid>/stat of every
# process in the front's session) and divides it by the requests wrk completed: the table shows the
# medians per request, and for the target cell what 1.2x nginx would leave crudcast for user space
# (a front that saturates its CPU serves the inverse of its CPU time per request; the system time
# is the kernel's work for the same system calls and TCP segments, which every proxy here pays).
#
# Environment (defaults in brackets):
#   CRUDCAST_BIN [<repo>/build/crudcast]   NGINX_BIN [/usr/sbin/nginx]
#   HAPROXY_BIN [/usr/sbin/haproxy]        WRK_BIN [wrk]
#   BENCH_WORKERS ["1 2"]        nginx workers = HAProxy threads = crudcast threads
#   BENCH_CONNECTIONS ["64 256"] wrk -c
#   BENCH_THREADS [unset]        wrk -t; unset: as many as the fronts have workers (-t1, -t2)
#   BENCH_ROUNDS [4]  BENCH_DURATION [2s]  BENCH_WARMUP [1s, 0 = none]
#     The defaults take about 4 minutes (28 wrk runs a round); BENCH_ROUNDS=8 BENCH_DURATION=5s
#     about 19, steadier; BENCH_WORKERS=1 BENCH_CONNECTIONS=64 spends it all on the target cell.
#   BENCH_GET_PATH [/api/authors/1]  BENCH_POST_PATH [/api/authors]
#   BENCH_CRUDCAST_STANDIN [unset]   "nginx": put another nginx (W workers) where crudcast goes, to
#                                    test this script without a crudcast binary (its ratios to
#                                    nginx should be ~1.0)
#   CRUDCAST_BASELINE_BIN [unset]    another crudcast binary (e.g. the build before a change): run
#                                    as the front `baseline` with crudcast's flags, measured in the
#                                    same rounds, and a "crudcast / baseline" block (ratios per
#                                    round and their median, no targets) follows the peers' block.
#                                    CRUDCAST_BASELINE_BIN=$CRUDCAST_BIN shows the noise (~1.0)
# Targets (issue 14), judged only at 1 worker and -c64, GET and POST: crudcast / nginx req/s >= 1.20
# and p99 <= 1.00. Every other ratio (HAProxy, two workers, -c256) is printed for information.
# Exit status: 0 all targets met (or none measured), 2 a target missed or a request failed, 1 the
# benchmark could not run. The baseline front never changes the exit status (its errors are only
# reported). Everything (configs, logs, raw wrk output) lives in a mktemp directory removed on
# exit, and every process the script starts is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

CRUDCAST_BIN=${CRUDCAST_BIN:-$root/build/crudcast}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
HAPROXY_BIN=${HAPROXY_BIN:-/usr/sbin/haproxy}
WRK_BIN=${WRK_BIN:-wrk}
read -r -a workers_list <<<"${BENCH_WORKERS:-1 2}"
read -r -a conns_list <<<"${BENCH_CONNECTIONS:-64 256}"
THREADS=${BENCH_THREADS:-}
ROUNDS=${BENCH_ROUNDS:-4}
DURATION=${BENCH_DURATION:-2s}
WARMUP=${BENCH_WARMUP:-1s}
GET_PATH=${BENCH_GET_PATH:-/api/authors/1}
POST_PATH=${BENCH_POST_PATH:-/api/authors}
STANDIN=${BENCH_CRUDCAST_STANDIN:-}
BASELINE_BIN=${CRUDCAST_BASELINE_BIN:-}

EXPECTED_BODY='{"id":1,"name":"Ada Lovelace","born":1815}'
RPS_TARGET=1.20   # crudcast req/s / nginx req/s must be at least this
P99_TARGET=1.00   # crudcast p99 / nginx p99 must be at most this
TARGET_WORKERS=1  # the targets hold for this cell; every other cell is informative
TARGET_CONNECTIONS=64

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_arguments "$@"

positive() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
positive "$ROUNDS" || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
((${#workers_list[@]} > 0 && ${#conns_list[@]} > 0)) || die "BENCH_WORKERS and BENCH_CONNECTIONS must not be empty"
for w in "${workers_list[@]}"; do positive "$w" || die "BENCH_WORKERS: '$w' is not a positive integer"; done
for c in "${conns_list[@]}"; do positive "$c" || die "BENCH_CONNECTIONS: '$c' is not a positive integer"; done
[[ -z $THREADS ]] || positive "$THREADS" || die "BENCH_THREADS must be a positive integer or unset, got '$THREADS'"
for tool in "$WRK_BIN" "$NGINX_BIN" "$HAPROXY_BIN" curl python3 setsid; do
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

# One port for the backend, then per worker count one for each proxy front.
peers=(nginx haproxy crudcast)
[[ -n $BASELINE_BIN ]] && peers+=(baseline)
want=$((1 + ${#workers_list[@]} * ${#peers[@]}))
read -r -a ports <<<"$(bench_free_ports "$want")" || true
((${#ports[@]} == want)) || die "could not pick $want free ports"
port_backend=${ports[0]}

# Servers run in their own session (setsid): a Ctrl-C on the terminal reaches only this script,
# whose EXIT trap then stops wrk, the fronts and the backend in that order.
#
# render TEMPLATE NAME PORT BACKEND_PORT WORKERS: fill in a template from bench/ into $work/NAME.conf.
render() {
    local template=$1 name=$2 port=$3 backend_port=$4 workers=$5
    sed -e "s|@WORK@|$work|g" -e "s|@NAME@|$name|g" -e "s|@PORT@|$port|g" \
        -e "s|@BACKEND_PORT@|$backend_port|g" -e "s|@WORKERS@|$workers|g" \
        -e "s|@POOL@|$((64 * workers))|g" "$here/$template" >"$work/$name.conf"
}

# start_nginx NAME TEMPLATE PORT [BACKEND_PORT WORKERS]: render the template and run nginx.
start_nginx() {
    local name=$1 template=$2 port=$3 backend_port=${4:-} workers=${5:-1}
    mkdir -p "$work/$name-tmp"
    render "$template" "$name" "$port" "$backend_port" "$workers"
    setsid "$NGINX_BIN" -p "$work/" -c "$work/$name.conf" -e "$work/$name-error.log" </dev/null &
    pids+=("$!")
}

# start_haproxy NAME PORT BACKEND_PORT WORKERS: check the rendered config, then run HAProxy in the
# foreground (-db: no daemon, no master process, so the pid we keep is the one to stop).
start_haproxy() {
    local name=$1 port=$2 backend_port=$3 workers=$4
    render haproxy-proxy.cfg.in "$name" "$port" "$backend_port" "$workers"
    "$HAPROXY_BIN" -c -q -f "$work/$name.conf" >"$work/$name-error.log" 2>&1 ||
        start_failed "$name" "has an invalid configuration" "$work/$name-error.log"
    setsid "$HAPROXY_BIN" -db -f "$work/$name.conf" </dev/null >"$work/$name-error.log" 2>&1 &
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

# start_crudcast NAME BIN PORT WORKERS
start_crudcast() {
    local name=$1 bin=$2 port=$3 workers=$4
    local cmd=("$bin" --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$port_backend"
        --threads "$workers" --admin-listen off --log-level warn)
    setsid "${cmd[@]}" </dev/null >/dev/null 2>&1 &
    pids+=("$!")
    note "$name: ${cmd[*]}  (output discarded)"
    wait_ready "$name" "$port"
}

# url[FRONT@W]: where wrk sends the load; sid[FRONT@W]: the session (setsid) of the front's
# processes, whose CPU time is what each run charges to the front.
declare -A url=() sid=()
start_nginx backend nginx-backend.conf.in "$port_backend"
wait_ready backend "$port_backend" "$work/backend-error.log"
url[direct@${workers_list[0]}]="http://127.0.0.1:$port_backend"
sid[direct@${workers_list[0]}]=${pids[-1]}
[[ -n $STANDIN ]] && note "NOTE: BENCH_CRUDCAST_STANDIN=nginx: the 'crudcast' front is another nginx, not crudcast"
[[ -n $BASELINE_BIN ]] && cmp -s "$BASELINE_BIN" "$CRUDCAST_BIN" &&
    note "NOTE: CRUDCAST_BASELINE_BIN is the same file as CRUDCAST_BIN: the crudcast / baseline ratios show the noise"
next=1
for w in "${workers_list[@]}"; do
    for front in "${peers[@]}"; do
        port=${ports[next]}
        next=$((next + 1))
        url[$front@$w]="http://127.0.0.1:$port"
        case $front in
        nginx)
            start_nginx "nginx-w$w" nginx-proxy.conf.in "$port" "$port_backend" "$w"
            wait_ready "nginx (w$w)" "$port" "$work/nginx-w$w-error.log"
            ;;
        haproxy)
            start_haproxy "haproxy-w$w" "$port" "$port_backend" "$w"
            wait_ready "haproxy (w$w)" "$port" "$work/haproxy-w$w-error.log"
            ;;
        crudcast)
            if [[ -n $STANDIN ]]; then
                start_nginx "standin-w$w" nginx-proxy.conf.in "$port" "$port_backend" "$w"
                wait_ready "crudcast stand-in (w$w)" "$port" "$work/standin-w$w-error.log"
            else
                start_crudcast "crudcast (w$w)" "$CRUDCAST_BIN" "$port" "$w"
            fi
            ;;
        baseline) start_crudcast "baseline (w$w)" "$BASELINE_BIN" "$port" "$w" ;;
        esac
        sid[$front@$w]=${pids[-1]}
    done
done

# fronts_of W: the fronts measured in a cell with W workers (direct only with the first W: the
# backend is the same whatever the fronts' worker count).
fronts_of() {
    local w=$1
    fronts=("${peers[@]}")
    [[ $w == "${workers_list[0]}" ]] && fronts=(direct "${fronts[@]}")
    return 0
}

# cpu_ticks SID: "user system" CPU time, in clock ticks, of every process in session SID (nginx:
# master and workers; crudcast and HAProxy: one process, all its threads).
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
    local session=$1 p line f user=0 sys=0
    for p in $(pgrep -s "$session"); do
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        read -r -a f <<<"${line##*) }" # fields from the 3rd (state) on: utime is the 14th
        user=$((user + f[11])) sys=$((sys + f[12]))
    done
    echo "$user $sys"
}

# run_wrk FRONT W C METHOD DURATION: one wrk run; sets w_rps, w_p50, w_p99 (microseconds),
# w_errors, and the front's CPU time per request in microseconds (w_user, w_sys) with its share
# of one CPU over the run (w_cpu, percent). wrk runs in the background and is waited for, so a
# signal to this script stops it at once.
run_wrk() {
    local front=$1 w=$2 c=$3 method=$4 duration=$5 out=$work/wrk.out before after
    local t=${THREADS:-$w}
    ((t <= c)) || t=$c
    local args=(-t"$t" -c"$c" -d"$duration" --latency)
    local target=${url[$front@$w]}$GET_PATH
    if [[ $method == POST ]]; then
        args+=(-s "$here/post.lua")
        target=${url[$front@$w]}$POST_PATH
    fi
    before=$(cpu_ticks "${sid[$front@$w]}")
    "$WRK_BIN" "${args[@]}" "$target" </dev/null >"$out" 2>&1 &
    load_pid=$!
    wait "$load_pid" || die "wrk failed against $front (w$w): $(cat "$out")"
    load_pid=
    after=$(cpu_ticks "${sid[$front@$w]}")
    cat "$out" >>"$work/wrk-$front-w$w-c$c-$method.txt"
    w_rps=
    read -r w_rps w_p50 w_p99 w_errors w_user w_sys w_cpu < <(awk -v before="$before" -v after="$after" -v hz="$clk_tck" '
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
        $2 == "requests" && $3 == "in" { n = $1; secs = $4 + 0 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) { gsub(",", "", $i); if ($i ~ /^[0-9]+$/) errors += $i } }
        END {
            split(before, b, " "); split(after, a, " ")
            if (rps == "" || p50 == "" || p99 == "" || n <= 0 || secs <= 0) exit
            printf "%.0f %.0f %.0f %d %.2f %.2f %.0f\n", rps, p50, p99, errors,
                (a[1] - b[1]) * 1e6 / hz / n, (a[2] - b[2]) * 1e6 / hz / n, (a[1] + a[2] - b[1] - b[2]) * 100 / hz / secs
        }
        ' "$out") || true
    [[ -n $w_rps ]] || die "cannot parse wrk's output against $front (w$w): $(cat "$out")"
}

started=$SECONDS
note "crudcast proxy benchmark: $(nproc) CPUs; workers ${workers_list[*]}; wrk -c ${conns_list[*]}" \
    "-t ${THREADS:-<workers>} -d$DURATION --latency; $ROUNDS rounds; GET $GET_PATH, POST $POST_PATH"
if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
    # Each front once per method at the largest connection count: pools filled, pages touched.
    max_c=$(printf '%s\n' "${conns_list[@]}" | sort -n | tail -n 1)
    for w in "${workers_list[@]}"; do
        fronts_of "$w"
        for front in "${fronts[@]}"; do
            for method in GET POST; do run_wrk "$front" "$w" "$max_c" "$method" "$WARMUP"; done
        done
    done
    rm -f "$work"/wrk-*.txt
fi

declare -A rps=() p50=() p99=() user=() sys=() cpu=()
failures=0 baseline_failures=0
for ((round = 0; round < ROUNDS; round++)); do
    for w in "${workers_list[@]}"; do
        fronts_of "$w"
        for c in "${conns_list[@]}"; do
            for method in GET POST; do
                for ((i = 0; i < ${#fronts[@]}; i++)); do
                    front=${fronts[(i + round) % ${#fronts[@]}]}
                    run_wrk "$front" "$w" "$c" "$method" "$DURATION"
                    key=$front,$w,$c,$method
                    rps[$key]+="$w_rps "
                    p50[$key]+="$w_p50 "
                    p99[$key]+="$w_p99 "
                    user[$key]+="$w_user "
                    sys[$key]+="$w_sys "
                    cpu[$key]+="$w_cpu "
                    note "$(printf 'round %d/%d w%s c%-4s %-4s %-8s %8s req/s  p50 %6s us  p99 %6s us  cpu %3s%% user %5s sys %5s us/req' \
                        "$((round + 1))" "$ROUNDS" "$w" "$c" "$method" "$front" "$w_rps" "$w_p50" "$w_p99" \
                        "$w_cpu" "$w_user" "$w_sys")"
                    ((w_errors > 0)) || continue
                    note "WARNING: $front w$w c$c $method: $w_errors socket errors or non-2xx responses in this round"
                    if [[ $front == baseline ]]; then
                        baseline_failures=$((baseline_failures + w_errors))
                    else
                        failures=$((failures + w_errors))
                    fi
                done
            done
        done
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3fms", us / 1000 }'; }

declare -A med=()
for key in "${!rps[@]}"; do
    med[$key,rps]=$(median <<<"${rps[$key]}")
    med[$key,p50]=$(median <<<"${p50[$key]}")
    med[$key,p99]=$(median <<<"${p99[$key]}")
    med[$key,user]=$(median <<<"${user[$key]}")
    med[$key,sys]=$(median <<<"${sys[$key]}")
    med[$key,cpu]=$(median <<<"${cpu[$key]}")
done

echo
echo "median of $ROUNDS rounds, wrk -t${THREADS:-<workers>} -d$DURATION --latency, $(nproc) CPUs shared by wrk, front and backend"
echo "(cpu: the front's processes, % of one CPU; user, sys: their CPU time per request, microseconds)"
printf '%7s %5s  %-6s %-9s %9s %10s %10s %5s %6s %6s\n' workers conns method front "req/s" p50 p99 cpu user sys
for w in "${workers_list[@]}"; do
    fronts_of "$w"
    for c in "${conns_list[@]}"; do
        for method in GET POST; do
            for front in "${fronts[@]}"; do
                key=$front,$w,$c,$method label=$front
                [[ $front == crudcast && -n $STANDIN ]] && label="crudcast*"
                printf '%7s %5s  %-6s %-9s %9.0f %10s %10s %4.0f%% %6.2f %6.2f\n' "$w" "$c" "$method" "$label" \
                    "${med[$key,rps]}" "$(ms "${med[$key,p50]}")" "$(ms "${med[$key,p99]}")" \
                    "${med[$key,cpu]}" "${med[$key,user]}" "${med[$key,sys]}"
            done
        done
    done
done
[[ -n $STANDIN ]] && echo "(* another nginx standing in for crudcast: BENCH_CRUDCAST_STANDIN=nginx)"

# ratios A B CELL METRIC: sets `per_round` (A's value / B's value in each round of CELL =
# "w,c,method") and `ratio`, the median of those. A and B are measured a few seconds apart in every
# round, so each round's ratio sees the same machine; the ratio of the two medians could pair a
# quiet round of one with a busy round of the other (an nginx-for-nginx run gave 0.76 that way and
# 1.02 as the median of its rounds). The spread of per_round shows how much noise is left.
ratios() {
    local a=$1,$3 b=$2,$3 metric=$4
    declare -n values=$metric
    per_round=$(awk -v x="${values[$a]}" -v y="${values[$b]}" 'BEGIN {
        k = split(x, xv, " "); split(y, yv, " ")
        for (i = 1; i <= k; i++) printf "%s%.2f", (i > 1 ? " " : ""), (yv[i] > 0 ? xv[i] / yv[i] : 0) }')
    unset -n values
    ratio=$(median <<<"$per_round" | awk '{ printf "%.2f", $1 }')
}

# ratio_row A B W C METHOD JUDGE: one line of a ratio block, req/s then p99. With JUDGE=1 each
# ratio also gets PASS or FAIL against the targets, and a FAIL sets `missed`.
ratio_row() {
    local a=$1 b=$2 w=$3 c=$4 method=$5 judge=$6 metric verdict cells=()
    for metric in rps p99; do
        ratios "$a" "$b" "$w,$c,$method" "$metric"
        verdict=
        if ((judge)); then
            verdict=$(awk -v r="$ratio" -v lo="$RPS_TARGET" -v hi="$P99_TARGET" -v m="$metric" \
                'BEGIN { ok = (m == "rps" ? r >= lo : r <= hi); print (ok ? "PASS" : "FAIL") }')
            [[ $verdict == PASS ]] || missed=1
        fi
        cells+=("$(printf '%5s %-4s (%s)' "$ratio" "$verdict" "$per_round")")
    done
    printf '%7s %5s  %-6s %-9s %-28s %s\n' "$w" "$c" "$method" "$b" "${cells[0]}" "${cells[1]}"
}

echo
echo "crudcast / peer: the median of the per-round ratios, then every round's ratio in parentheses"
echo "(req/s: above 1 crudcast is faster; p99: below 1 crudcast's tail is shorter)"
printf '%7s %5s  %-6s %-9s %-28s %s\n' workers conns method peer "req/s" p99
missed=0 judged=0
for w in "${workers_list[@]}"; do
    for c in "${conns_list[@]}"; do
        for method in GET POST; do
            for peer in nginx haproxy; do
                judge=0
                if [[ $peer == nginx && $w == "$TARGET_WORKERS" && $c == "$TARGET_CONNECTIONS" ]]; then
                    judge=1 judged=$((judged + 1))
                fi
                ratio_row crudcast "$peer" "$w" "$c" "$method" "$judge"
            done
        done
    done
done
echo "targets (issue 14), crudcast / nginx at $TARGET_WORKERS worker, -c$TARGET_CONNECTIONS, GET and POST:" \
    "req/s >= $RPS_TARGET, p99 <= $P99_TARGET; the other rows are informative"
((judged > 0)) || echo "NOTE: this run has no $TARGET_WORKERS-worker -c$TARGET_CONNECTIONS cell: no target was judged"
# What the req/s target asks of CPU time: with the front saturating its one CPU, req/s is the
# inverse of CPU time per request, so 1.20x nginx means at most nginx's time / 1.20. The kernel's
# share (system time: the same system calls and TCP segments for every proxy) is printed beside it.
if ((judged > 0)); then
    echo
    echo "CPU time per request at $TARGET_WORKERS worker, -c$TARGET_CONNECTIONS (medians, microseconds):"
    for method in GET POST; do
        cell=$TARGET_WORKERS,$TARGET_CONNECTIONS,$method n=nginx,$cell k=crudcast,$cell h=haproxy,$cell
        awk -v m="$method" -v nu="${med[$n,user]}" -v ns="${med[$n,sys]}" -v nc="${med[$n,cpu]}" \
            -v cu="${med[$k,user]}" -v cs="${med[$k,sys]}" -v cc="${med[$k,cpu]}" \
            -v hu="${med[$h,user]}" -v hs="${med[$h,sys]}" -v hc="${med[$h,cpu]}" -v t="$RPS_TARGET" 'BEGIN {
            budget = (nu + ns) / t
            printf "  %-4s nginx %.2f (user %.2f + sys %.2f, %.0f%% CPU); haproxy %.2f (%.2f + %.2f, %.0f%%); crudcast %.2f (%.2f + %.2f, %.0f%%)\n",
                m, nu + ns, nu, ns, nc, hu + hs, hu, hs, hc, cu + cs, cu, cs, cc
            printf "       %.2fx nginx needs <= %.2f a request: crudcast'"'"'s system time alone is %.2f, leaving %.2f for user space (nginx uses %.2f)\n",
                t, budget, cs, budget - cs, nu }'
    done
fi
if [[ -n $BASELINE_BIN ]]; then
    echo
    echo "crudcast / baseline (A/B, no targets: ~1.00 within the per-round spread = no change):"
    printf '%7s %5s  %-6s %-9s %-28s %s\n' workers conns method peer "req/s" p99
    for w in "${workers_list[@]}"; do
        for c in "${conns_list[@]}"; do
            for method in GET POST; do ratio_row crudcast baseline "$w" "$c" "$method" 0; done
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
echo "run took $((SECONDS - started)) s of measuring"
exit $((missed ? 2 : 0))
