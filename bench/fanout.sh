#!/usr/bin/env bash
# bench/fanout.sh: WebSocket fan-out, crudcast against a plain Node + ws broadcaster, in one run.
#
# Fronts, measured by the same client (crudcast-fanout-client, bench/fanout_client.cpp), which
# sleeps in epoll_wait between reads as real clients do:
#   crudcast  crudcast --threads 1 in front of an nginx upstream (1 worker) that answers
#             POST /api/authors with 201 {"id":1,"name":"Ada"} from memory; every 2xx POST
#             becomes one event frame for every subscriber at /ws
#   nodeup    the same crudcast binary and flags in front of a Node upstream instead (a second
#             bench/node-broadcaster process, used only for its POST route: 201 with the body plus
#             an id): crudcast as a Node API would have it, the peer of `node` in the max scenario
#   node      bench/node-broadcaster: one Node process with the `ws` package that answers the POST
#             itself and broadcasts the same event JSON with client.send() ("what a user would
#             write instead")
#   polling   only when listed (or FANOUT_POLLING_ROW=1): `crudcast` measured again with a client
#             that polls (FANOUT_POLL_US µs sleep when nothing was readable), labelled
#             "crudcast, polling client"; never changes the exit status
#   baseline  only with CRUDCAST_BASELINE_BIN: a second crudcast build with crudcast's flags, in
#             front of the same upstream (an A/B of two builds, e.g. before and after a refactor)
#   nohistory only when listed in FANOUT_FRONTS: the same crudcast binary with crudcast's flags plus
#             --history-size 0 (no event kept for ?since= resumes), in front of the same upstream:
#             what the history costs the fan-out (crudcast runs with the default history)
#   nats      only when listed in FANOUT_FRONTS: TWO crudcast instances (crudcast's binary and flags
#             plus --bus nats://...) on one nats-server -js started here, in front of the same
#             upstream; the client splits its subscribers and its POST connections across both, so
#             every frame crossed the broker and half of them were published by the other instance
#   redis     the same on one redis-server started here (--bus redis://...)
#             With nats or redis, a "<bus> / crudcast" block follows: the two-instance front against
#             the single instance on the memory bus, measured in the same rounds (ratio of the
#             medians, then per round): what sharing one stream through the broker costs.
# Scenarios, each run against every front (in an order that rotates every round):
#   sustainedN FANOUT_SUBS subscribers, FANOUT_RATE events/s for FANOUT_DURATION s, POSTs released
#              by a timer on exactly N publisher connections (sustained4, sustained16): a POST due
#              while all N are busy waits for one ("behind": how many were due at once, at most)
#              targets for crudcast: 0 frames lost, p99 latency < FANOUT_P99_TARGET ms, POST p99 <
#              FANOUT_POST_P99_TARGET ms, events/s >= FANOUT_RATE_SHARE_TARGET % of the rate
#   sustained  the same as an open loop: FANOUT_HTTP_CONNS connections, more opened up to
#              FANOUT_HTTP_CONNS_MAX while POSTs are due and all are busy; same targets
#   max        FANOUT_MAX_SUBS subscribers, POSTs back to back on FANOUT_MAX_HTTP_CONNS connections,
#              for FANOUT_MAX_DURATION s; targets: nodeup frames/s >= FANOUT_RATIO_TARGET x node's,
#              crudcast (nginx upstream) frames/s >= FANOUT_MAX_FRAMES_TARGET
# The table shows the median over FANOUT_ROUNDS rounds (lost: the worst round). With a baseline, a
# "crudcast / baseline" block follows: per scenario, the ratio of the medians and the same ratio per
# round for events/s, frames/s, p50/p99 latency, POST p50/p99 and srv CPU, and lost side by side.
# With nohistory, a "crudcast / nohistory" block of the same form follows.
# Two instances on each broker, against one on the memory bus, without Node:
#   FANOUT_FRONTS="crudcast nats redis" bench/fanout.sh
#
# Environment (defaults in brackets):
#   CRUDCAST_BIN [<repo>/build/crudcast]  CLIENT_BIN [<repo>/build/bench/crudcast-fanout-client]
#   NGINX_BIN [/usr/sbin/nginx]  NODE_BIN [node]  NPM_BIN [npm]
#   NATS_SERVER_BIN [nats-server]  REDIS_SERVER_BIN [redis-server]  (only for the nats and redis fronts)
#   FANOUT_ROUNDS [1]  FANOUT_SUBS [1000]  FANOUT_RATE [1000]  FANOUT_DURATION [10]
#   FANOUT_HTTP_CONNS [8]  FANOUT_HTTP_CONNS_MAX [256]
#   FANOUT_MAX_SUBS [100]  FANOUT_MAX_DURATION [10]  FANOUT_MAX_HTTP_CONNS [32]
#   FANOUT_CLIENT_THREADS [1]  (subscriber threads of the client; it adds one HTTP thread)
#   FANOUT_CLIENT_POLL_US [0]  (0: the client's subscriber threads sleep in epoll_wait. N: every
#             row's client polls and sleeps N µs when nothing was readable; the sleep shows in the
#             measured latency. Prefer FANOUT_POLLING_ROW, which keeps the blocking rows)
#   FANOUT_POLLING_ROW [0]  1: add the front `polling`; FANOUT_POLL_US [1000] its sleep
#   FANOUT_CRUDCAST_THREADS [1]  FANOUT_WS_MAX_QUEUE_MESSAGES [100000]  FANOUT_WS_MAX_QUEUE_BYTES [64m]
#   FANOUT_DRAIN_IDLE [3]  FANOUT_DRAIN_MAX [30]  (seconds the client waits for late frames)
#   FANOUT_P99_TARGET [15]  FANOUT_POST_P99_TARGET [5]  FANOUT_RATE_SHARE_TARGET [98]
#   FANOUT_RATIO_TARGET [8]  FANOUT_MAX_FRAMES_TARGET [1000000]
#   FANOUT_SCENARIOS ["sustained4 sustained16 max"]  FANOUT_FRONTS ["crudcast nodeup node"]  (add
#             nohistory: history A/B; nats, redis: two instances on that broker; polling)
#   CRUDCAST_BASELINE_BIN [unset]  another crudcast binary: adds the front `baseline` (to FANOUT_FRONTS
#             too, unless it is listed there). CRUDCAST_BASELINE_BIN=$CRUDCAST_BIN shows the noise (~1.0)
# Exit status: 0 all targets met, 2 a target missed, 1 the benchmark could not run. The targets are
# crudcast's; the baseline, nohistory, nats and redis fronts never change the exit status.
# Builds nothing: build crudcast and crudcast-fanout-client first. Runs `npm ci` in
# bench/node-broadcaster when its node_modules is missing. Everything listens on 127.0.0.1;
# configs and logs live in a mktemp directory removed on exit, with every process started here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

CRUDCAST_BIN=${CRUDCAST_BIN:-$root/build/crudcast}
CLIENT_BIN=${CLIENT_BIN:-$root/build/bench/crudcast-fanout-client}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
NODE_BIN=${NODE_BIN:-node}
NPM_BIN=${NPM_BIN:-npm}
NATS_SERVER_BIN=${NATS_SERVER_BIN:-nats-server}
REDIS_SERVER_BIN=${REDIS_SERVER_BIN:-redis-server}
ROUNDS=${FANOUT_ROUNDS:-1}
SUBS=${FANOUT_SUBS:-1000}
RATE=${FANOUT_RATE:-1000}
DURATION=${FANOUT_DURATION:-10}
MAX_SUBS=${FANOUT_MAX_SUBS:-100}
MAX_DURATION=${FANOUT_MAX_DURATION:-10}
HTTP_CONNS=${FANOUT_HTTP_CONNS:-8}
HTTP_CONNS_MAX=${FANOUT_HTTP_CONNS_MAX:-256}
MAX_HTTP_CONNS=${FANOUT_MAX_HTTP_CONNS:-32}
CLIENT_THREADS=${FANOUT_CLIENT_THREADS:-1}
CLIENT_POLL_US=${FANOUT_CLIENT_POLL_US:-0}
POLL_US=${FANOUT_POLL_US:-1000}
CRUDCAST_THREADS=${FANOUT_CRUDCAST_THREADS:-1}
WS_MAX_QUEUE_MESSAGES=${FANOUT_WS_MAX_QUEUE_MESSAGES:-100000}
WS_MAX_QUEUE_BYTES=${FANOUT_WS_MAX_QUEUE_BYTES:-64m}
DRAIN_IDLE=${FANOUT_DRAIN_IDLE:-3}
DRAIN_MAX=${FANOUT_DRAIN_MAX:-30}
P99_TARGET=${FANOUT_P99_TARGET:-15}
POST_P99_TARGET=${FANOUT_POST_P99_TARGET:-5}
RATE_SHARE_TARGET=${FANOUT_RATE_SHARE_TARGET:-98}
RATIO_TARGET=${FANOUT_RATIO_TARGET:-8}
MAX_FRAMES_TARGET=${FANOUT_MAX_FRAMES_TARGET:-1000000}
read -r -a SCENARIOS <<<"${FANOUT_SCENARIOS:-sustained4 sustained16 max}"
read -r -a FRONTS <<<"${FANOUT_FRONTS:-crudcast nodeup node}"
[[ ${FANOUT_POLLING_ROW:-0} == 1 && " ${FRONTS[*]} " != *" polling "* ]] && FRONTS+=(polling)
BASELINE_BIN=${CRUDCAST_BASELINE_BIN:-}

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_arguments "$@"

for var in ROUNDS SUBS RATE DURATION MAX_SUBS MAX_DURATION HTTP_CONNS HTTP_CONNS_MAX MAX_HTTP_CONNS \
    CLIENT_THREADS CLIENT_POLL_US POLL_US CRUDCAST_THREADS RATE_SHARE_TARGET MAX_FRAMES_TARGET \
    WS_MAX_QUEUE_MESSAGES DRAIN_IDLE DRAIN_MAX; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "FANOUT_$var must be a whole number, got '${!var}'"
done
((ROUNDS >= 1 && SUBS >= 1 && MAX_SUBS >= 1 && DURATION >= 1 && MAX_DURATION >= 1 && RATE >= 1)) ||
    die "rounds, subscriber counts, durations and the rate must be at least 1"
((HTTP_CONNS >= 1 && MAX_HTTP_CONNS >= 1)) || die "HTTP connection counts must be at least 1"
for s in "${SCENARIOS[@]}"; do
    [[ $s =~ ^sustained([0-9]+)?$ || $s == max ]] || die "unknown scenario '$s' (sustained, sustainedN, max)"
    [[ $s =~ ^sustained0*$ && $s != sustained ]] && die "scenario '$s': at least one publisher connection"
done
for f in "${FRONTS[@]}"; do
    [[ $f == crudcast || $f == node || $f == nodeup || $f == polling || $f == nohistory || $f == nats ||
        $f == redis || ($f == baseline && -n $BASELINE_BIN) ]] ||
        die "unknown front '$f' (crudcast, nodeup, node, polling, nohistory, nats, redis, and baseline when CRUDCAST_BASELINE_BIN is set)"
done
# The rows: `polling` is crudcast's process measured by another client.
label() {
    case $1 in
    polling) echo "crudcast, polling client" ;;
    nodeup) echo "crudcast, node upstream" ;;
    *) echo "$1" ;;
    esac
}
listed() { [[ " ${FRONTS[*]} " == *" $1 "* ]]; }
listed nats && { command -v "$NATS_SERVER_BIN" >/dev/null || die "'$NATS_SERVER_BIN' not found (the nats front needs it)"; }
listed redis && { command -v "$REDIS_SERVER_BIN" >/dev/null || die "'$REDIS_SERVER_BIN' not found (the redis front needs it)"; }
if [[ -n $BASELINE_BIN ]]; then
    [[ " ${FRONTS[*]} " == *" baseline "* ]] || FRONTS+=(baseline)
    [[ -x $BASELINE_BIN ]] || die "no crudcast binary at CRUDCAST_BASELINE_BIN=$BASELINE_BIN"
fi
for tool in "$NGINX_BIN" curl python3 setsid awk; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
[[ -x $CRUDCAST_BIN ]] || die "no crudcast binary at $CRUDCAST_BIN (build it, or set CRUDCAST_BIN)"
[[ -x $CLIENT_BIN ]] ||
    die "no client at $CLIENT_BIN (ninja -C build crudcast-fanout-client, or set CLIENT_BIN)"

# Each subscriber is one descriptor in the client and one in the front.
need_fds=$(((SUBS > MAX_SUBS ? SUBS : MAX_SUBS) + HTTP_CONNS_MAX + MAX_HTTP_CONNS + 256))
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard >= 1048576)); then
    ulimit -n 1048576 2>/dev/null || ulimit -n "$need_fds"
else
    ulimit -n "$hard"
fi
(($(ulimit -n) >= need_fds)) || die "open-file limit $(ulimit -n) (hard $hard) is below the $need_fds needed"

node_dir=$here/node-broadcaster
with_node=0
if listed node || listed nodeup; then with_node=1; fi
((with_node)) && { command -v "$NODE_BIN" >/dev/null || die "'$NODE_BIN' not found"; }
if ((with_node)) && [[ ! -d $node_dir/node_modules/ws ]]; then
    command -v "$NPM_BIN" >/dev/null || die "'$NPM_BIN' not found (needed once, to install bench/node-broadcaster)"
    note "installing bench/node-broadcaster's dependencies (npm ci)"
    (cd "$node_dir" && "$NPM_BIN" ci --no-audit --no-fund >&2) || die "npm ci failed in $node_dir"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/crudcast-fanout.XXXXXX")
chmod 0711 "$work" # nginx workers drop root privileges and must reach their temp dirs
pids=()
load_pid=

bench_install_cleanup

# Always fourteen ports, used or not: the optional fronts then need no arithmetic here.
ports=$(bench_free_ports 14) || true
read -r port_backend port_crudcast port_node port_baseline port_nohistory port_nats port_nats_monitor \
    port_redis port_nats_a port_nats_b port_redis_a port_redis_b port_node_upstream port_nodeup <<<"$ports"
[[ -n ${port_nodeup:-} ]] || die "could not pick free ports"

# The upstream: one nginx worker answering every request from memory with 201 and a small JSON
# body (the style of bench/nginx-backend.conf.in), so crudcast, not its upstream, is measured.
mkdir -p "$work/backend-tmp"
cat >"$work/backend.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/backend.pid;
lock_file $work/backend.lock;
error_log $work/backend-error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $work/backend-tmp/body;
    proxy_temp_path $work/backend-tmp/proxy;
    fastcgi_temp_path $work/backend-tmp/fastcgi;
    uwsgi_temp_path $work/backend-tmp/uwsgi;
    scgi_temp_path $work/backend-tmp/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$port_backend backlog=4096;
        location / {
            default_type application/json;
            return 201 '{"id":1,"name":"Ada"}';
        }
    }
}
EOF

# start_failed NAME WHY [LOG]: show the tail of LOG (it is deleted on exit) and give up.
start_failed() {
    [[ -n ${3:-} && -s ${3:-} ]] && tail -n 20 "$3" >&2
    die "$1 $2"
}

# wait_ready NAME PORT LOG: until a POST through NAME (the process started last) answers 2xx.
wait_ready() {
    local name=$1 port=$2 log=$3 pid=${pids[-1]} i
    for ((i = 0; i < 150; i++)); do
        if curl -fsS -o /dev/null --max-time 1 -H 'Content-Type: application/json' --data '{"name":"Ada"}' \
            "http://127.0.0.1:$port/api/authors" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || start_failed "$name" "exited during startup" "$log"
        sleep 0.1
    done
    start_failed "$name" "is not answering POST /api/authors on 127.0.0.1:$port after 15 s" "$log"
}

# Servers run in their own session (setsid): a Ctrl-C on the terminal reaches only this script,
# whose EXIT trap then stops them.
setsid "$NGINX_BIN" -p "$work/" -c "$work/backend.conf" -e "$work/backend-error.log" </dev/null &
pids+=("$!")
wait_ready upstream "$port_backend" "$work/backend-error.log"

crudcast_common=(--admin-listen off --log-level warn
    --threads "$CRUDCAST_THREADS" --ws-max-queue-messages "$WS_MAX_QUEUE_MESSAGES"
    --ws-max-queue-bytes "$WS_MAX_QUEUE_BYTES")
crudcast_flags=(--upstream "http://127.0.0.1:$port_backend" "${crudcast_common[@]}")
crudcast_cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port_crudcast" "${crudcast_flags[@]}")
setsid "${crudcast_cmd[@]}" </dev/null >"$work/crudcast.log" 2>&1 &
pids+=("$!")
crudcast_pid=$!
wait_ready crudcast "$port_crudcast" "$work/crudcast.log"

declare -A port=([crudcast]=$port_crudcast [polling]=$port_crudcast)
declare -A server_pid=([crudcast]=$crudcast_pid [polling]=$crudcast_pid)

# Node only when it is measured (a history A/B without it needs neither npm nor node).
if ((with_node)); then
    setsid "$NODE_BIN" "$node_dir/server.js" --listen "127.0.0.1:$port_node" </dev/null >"$work/node.log" 2>&1 &
    pids+=("$!")
    port[node]=$port_node
    server_pid[node]=$!
    wait_ready node "$port_node" "$work/node.log"
fi

# nodeup: crudcast with crudcast's flags in front of a Node upstream (another node-broadcaster,
# used for its POST route only: nobody subscribes to it, so it broadcasts to no one).
if listed nodeup; then
    setsid "$NODE_BIN" "$node_dir/server.js" --listen "127.0.0.1:$port_node_upstream" </dev/null \
        >"$work/node-upstream.log" 2>&1 &
    pids+=("$!")
    wait_ready node-upstream "$port_node_upstream" "$work/node-upstream.log"
    nodeup_cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port_nodeup" --upstream "http://127.0.0.1:$port_node_upstream"
        "${crudcast_common[@]}")
    setsid "${nodeup_cmd[@]}" </dev/null >"$work/nodeup.log" 2>&1 &
    pids+=("$!")
    port[nodeup]=$port_nodeup
    server_pid[nodeup]=$!
    wait_ready nodeup "$port_nodeup" "$work/nodeup.log"
fi

if [[ -n $BASELINE_BIN ]]; then
    baseline_cmd=("$BASELINE_BIN" --listen "127.0.0.1:$port_baseline" "${crudcast_flags[@]}")
    setsid "${baseline_cmd[@]}" </dev/null >"$work/baseline.log" 2>&1 &
    pids+=("$!")
    port[baseline]=$port_baseline
    server_pid[baseline]=$!
    wait_ready baseline "$port_baseline" "$work/baseline.log"
fi

# The history A/B: the very same binary and flags, only without the history, so the pair of rows
# isolates what keeping (and trimming) the last events costs each publish.
if [[ " ${FRONTS[*]} " == *" nohistory "* ]]; then
    nohistory_cmd=("$CRUDCAST_BIN" --listen "127.0.0.1:$port_nohistory" "${crudcast_flags[@]}" --history-size 0)
    setsid "${nohistory_cmd[@]}" </dev/null >"$work/nohistory.log" 2>&1 &
    pids+=("$!")
    port[nohistory]=$port_nohistory
    server_pid[nohistory]=$!
    wait_ready nohistory "$port_nohistory" "$work/nohistory.log"
fi

# wait_for NAME LOG COMMAND...: until COMMAND succeeds, while the process started last lives.
wait_for() {
    local name=$1 log=$2 pid=${pids[-1]} i
    shift 2
    for ((i = 0; i < 150; i++)); do
        "$@" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || start_failed "$name" "exited during startup" "$log"
        sleep 0.1
    done
    start_failed "$name" "is not ready after 15 s" "$log"
}
# redis_pong PORT: a PING answered, with bash alone (no redis-cli needed). A subshell, so that a
# refused connection ends it and not this script.
# shellcheck disable=SC2317 # called through wait_for
redis_pong() (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'PING\r\n' >&3
    read -r -t 1 reply <&3
    [[ $reply == +PONG* ]]
)

# The two-instance fronts: a broker started here, fresh for this run, and two crudcast instances on
# it with crudcast's flags; the client spreads subscribers and POST connections over both. The
# broker's pid joins the front's server pids, so srv CPU is the two instances plus the broker.
# start_bus_front BUS URL BROKER_PID PORT_A PORT_B
start_bus_front() {
    local bus=$1 url=$2 broker_pid=$3 side listen pid_list=$3 port_list=""
    for side in a b; do
        if [[ $side == a ]]; then listen=$4; else listen=$5; fi
        setsid "$CRUDCAST_BIN" --listen "127.0.0.1:$listen" "${crudcast_flags[@]}" --bus "$url" --bus-prefix fanout \
            </dev/null >"$work/$bus-$side.log" 2>&1 &
        pids+=("$!")
        pid_list+=",$!"
        port_list+="${port_list:+,}$listen"
        wait_ready "$bus-$side" "$listen" "$work/$bus-$side.log"
    done
    port[$bus]=$port_list
    server_pid[$bus]=$pid_list
    bus_cmd[$bus]="2 x $CRUDCAST_BIN --listen 127.0.0.1:{$port_list} ${crudcast_flags[*]} --bus $url --bus-prefix fanout"
    kill -0 "$broker_pid" 2>/dev/null || start_failed "$bus" "broker died during startup" "$work/$bus-server.log"
}
declare -A bus_cmd=()
if listed nats; then
    mkdir -p "$work/nats-store"
    setsid "$NATS_SERVER_BIN" -a 127.0.0.1 -p "$port_nats" -m "$port_nats_monitor" -js -sd "$work/nats-store" \
        </dev/null >"$work/nats-server.log" 2>&1 &
    pids+=("$!")
    wait_for nats-server "$work/nats-server.log" curl -fsS -o /dev/null --max-time 1 \
        "http://127.0.0.1:$port_nats_monitor/healthz?js-enabled-only=true"
    start_bus_front nats "nats://127.0.0.1:$port_nats" "${pids[-1]}" "$port_nats_a" "$port_nats_b"
fi
if listed redis; then
    mkdir -p "$work/redis"
    # No persistence: the stream lives for this run only.
    setsid "$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$port_redis" --dir "$work/redis" --save "" --appendonly no \
        </dev/null >"$work/redis-server.log" 2>&1 &
    pids+=("$!")
    wait_for redis-server "$work/redis-server.log" redis_pong "$port_redis"
    start_bus_front redis "redis://127.0.0.1:$port_redis" "${pids[-1]}" "$port_redis_a" "$port_redis_b"
fi

note "fanout benchmark: $(nproc) CPUs shared by the client, the fronts and the upstream; $ROUNDS round(s)"
note "crudcast: ${crudcast_cmd[*]}   (history: the default --history-size/--history-bytes)"
[[ -n ${nohistory_cmd+set} ]] && note "nohistory: ${nohistory_cmd[*]}"
[[ -n ${nodeup_cmd+set} ]] && note "nodeup:   ${nodeup_cmd[*]}   (upstream: node bench/node-broadcaster/server.js)"
listed polling && note "polling:  crudcast's process again, the client polling with ${POLL_US} µs sleeps when idle"
for bus in nats redis; do
    [[ -n ${bus_cmd[$bus]:-} ]] && note "$bus: ${bus_cmd[$bus]}"
done
listed nats && note "      broker: $("$NATS_SERVER_BIN" --version) -js, store in the work directory"
listed redis && note "      broker: $("$REDIS_SERVER_BIN" --version | awk '{ print $1, $2, $3 }'), no persistence"
if [[ -n $BASELINE_BIN ]]; then
    note "baseline: ${baseline_cmd[*]}"
    cmp -s "$BASELINE_BIN" "$CRUDCAST_BIN" &&
        note "NOTE: CRUDCAST_BASELINE_BIN is the same file as CRUDCAST_BIN: the crudcast / baseline ratios show the noise"
fi
note "  (queue limits raised from the defaults 4096 messages / 16m per subscriber so that a burst is"
note "   delivered late rather than the subscriber closed with 1013: this run measures throughput)"
((with_node)) && note "node:     $NODE_BIN bench/node-broadcaster/server.js (ws $(cd "$node_dir" && "$NODE_BIN" -p 'require("ws/package.json").version'), node $("$NODE_BIN" --version))"
note "upstream: nginx, 1 worker, POST /api/authors -> 201 {\"id\":1,\"name\":\"Ada\"} (crudcast only)"

# run_client FRONT SCENARIO: one client run; its RESULT fields land in the array `r`.
declare -A r=()
run_client() {
    local front=$1 scenario=$2 out=$work/client.out subs rate duration conns conns_max poll=$CLIENT_POLL_US
    [[ $front == polling ]] && poll=$POLL_US
    if [[ $scenario == sustained ]]; then
        subs=$SUBS rate=$RATE duration=$DURATION conns=$HTTP_CONNS conns_max=$HTTP_CONNS_MAX
    elif [[ $scenario == sustained* ]]; then
        # Exactly N connections: a due POST waits for one (the client counts how far behind it got).
        subs=$SUBS rate=$RATE duration=$DURATION conns=$((10#${scenario#sustained})) conns_max=$((10#${scenario#sustained}))
    else
        subs=$MAX_SUBS rate=0 duration=$MAX_DURATION conns=$MAX_HTTP_CONNS conns_max=$MAX_HTTP_CONNS
    fi
    "$CLIENT_BIN" --port "${port[$front]}" --label "$front" --subs "$subs" --rate "$rate" --duration "$duration" \
        --http-conns "$conns" --http-conns-max "$conns_max" --threads "$CLIENT_THREADS" --poll-us "$poll" --drain-idle "$DRAIN_IDLE" --drain-max "$DRAIN_MAX" \
        --server-pid "${server_pid[$front]}" </dev/null >"$out" 2>&1 &
    load_pid=$!
    local status=0
    wait "$load_pid" || status=$?
    load_pid=
    sed 's/^/  /' "$out" >&2
    ((status == 0)) || die "the client failed against $front ($scenario), status $status"
    local pid logs
    for pid in ${server_pid[$front]//,/ }; do
        logs=("$work/$front"*.log)
        kill -0 "$pid" 2>/dev/null || start_failed "$front" "(pid $pid) died during the $scenario run" "${logs[0]}"
    done
    r=()
    local line field
    line=$(grep '^RESULT ' "$out" | tail -n 1) || die "no RESULT line from the client against $front"
    for field in ${line#RESULT }; do r[${field%%=*}]=${field#*=}; done
}

declare -A vals=()
for ((round = 0; round < ROUNDS; round++)); do
    for scenario in "${SCENARIOS[@]}"; do
        for ((i = 0; i < ${#FRONTS[@]}; i++)); do
            front=${FRONTS[(i + round) % ${#FRONTS[@]}]}
            note ""
            note "== round $((round + 1))/$ROUNDS: $front, $scenario"
            run_client "$front" "$scenario"
            for key in events_per_s frames_per_s lost gaps out_of_order p50_ms p99_ms client_cpu server_cpu \
                machine_cpu closed max_in_flight post_p50_ms post_p99_ms max_behind behind; do
                value=${r[$key]:-}
                vals[$front,$scenario,$key]+="${value%\%} "
            done
            sleep 2 # let the front finish whatever it still had to send to the departed subscribers
        done
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
maximum() { tr ' ' '\n' | sed '/^$/d' | sort -g | tail -n 1; }
med() { median <<<"${vals[$1,$2,$3]:-}"; }

echo
echo "crudcast fan-out benchmark: median of $ROUNDS round(s) (lost: worst round); $(nproc) CPUs shared by client, fronts and upstream"
echo "client: crudcast-fanout-client, $CLIENT_THREADS subscriber thread(s) ($( ((CLIENT_POLL_US == 0)) && echo "blocking in epoll_wait" || echo "polling, ${CLIENT_POLL_US} µs sleep when idle")) + 1 HTTP thread; keep-alive POST connections:" \
    "sustainedN exactly N, sustained $HTTP_CONNS..$HTTP_CONNS_MAX (open loop), max $MAX_HTTP_CONNS"
echo "crudcast: --threads $CRUDCAST_THREADS --ws-max-queue-messages $WS_MAX_QUEUE_MESSAGES --ws-max-queue-bytes $WS_MAX_QUEUE_BYTES"
[[ -n $BASELINE_BIN ]] && echo "baseline: $BASELINE_BIN with crudcast's flags (crudcast: $CRUDCAST_BIN)"
[[ -n ${nohistory_cmd+set} ]] && echo "nohistory: crudcast's binary and flags + --history-size 0 (crudcast: the default history)"
listed nodeup && echo "crudcast, node upstream: crudcast's binary and flags in front of a Node http server (POST 201, body + id)"
listed polling && echo "crudcast, polling client: crudcast's process, the client polling (${POLL_US} µs sleep when idle)"
printf '%-24s %-11s %5s %5s %9s %10s %6s %7s %7s %7s %8s %8s %6s %7s %7s %7s\n' front scenario subs rate "events/s" \
    "frames/s" lost reorder "p50 ms" "p99 ms" "POST p50" "POST p99" behind "cli CPU" "srv CPU" machine
for scenario in "${SCENARIOS[@]}"; do
    for front in "${FRONTS[@]}"; do
        if [[ $scenario == sustained* ]]; then subs=$SUBS target=$RATE; else subs=$MAX_SUBS target=max; fi
        printf '%-24s %-11s %5s %5s %9.0f %10.0f %6s %7s %7.1f %7.1f %8.2f %8.2f %6s %6.0f%% %6.0f%% %6.0f%%\n' \
            "$(label "$front")" "$scenario" "$subs" "$target" "$(med "$front" "$scenario" events_per_s)" \
            "$(med "$front" "$scenario" frames_per_s)" \
            "$(maximum <<<"${vals[$front,$scenario,lost]}")" "$(maximum <<<"${vals[$front,$scenario,out_of_order]}")" \
            "$(med "$front" "$scenario" p50_ms)" "$(med "$front" "$scenario" p99_ms)" \
            "$(med "$front" "$scenario" post_p50_ms)" "$(med "$front" "$scenario" post_p99_ms)" \
            "$(maximum <<<"${vals[$front,$scenario,max_behind]}")" \
            "$(med "$front" "$scenario" client_cpu)" "$(med "$front" "$scenario" server_cpu)" \
            "$(med "$front" "$scenario" machine_cpu)"
    done
done
echo "(lost, reorder, behind: worst round. reorder = frames that arrived after a later seq. p50/p99: publish to"
echo " receipt; POST p50/p99: request written to response read, during the fan-out. behind = most POSTs due at"
echo " once with no free connection. CPU: 100% = one core; srv = the front's process alone (not crudcast's"
echo " upstream; nats, redis: both instances and the broker); machine = all processes, of $(($(nproc) * 100))%.)"

# ratio NUM DEN SCENARIO: frames/s of NUM's median over DEN's.
ratio() {
    awk -v c="$(med "$1" "$3" frames_per_s)" -v n="$(med "$2" "$3" frames_per_s)" \
        'BEGIN { printf "%.2f", (n > 0 ? c / n : 0) }'
}
have() { [[ " ${SCENARIOS[*]} " == *" $2 "* && " ${FRONTS[*]} " == *" $1 "* ]]; }
missed=0
verdict() { # verdict PASS|FAIL TEXT
    printf '  %-4s  %s\n' "$1" "$2"
    [[ $1 == PASS ]] || missed=1
}
below() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? "PASS" : "FAIL") }'; }
echo
for scenario in "${SCENARIOS[@]}"; do
    for front in crudcast nodeup; do
        have "$front" "$scenario" && have node "$scenario" &&
            echo "frames/s ratio $(label "$front") / node, $scenario: $(ratio "$front" node "$scenario")"
    done
done
echo "targets (exit status 2 when one is missed):"
for scenario in "${SCENARIOS[@]}"; do
    if [[ $scenario != sustained* ]] || ! have crudcast "$scenario"; then continue; fi
    lost=$(maximum <<<"${vals[crudcast,$scenario,lost]}")
    ((lost == 0)) && v=PASS || v=FAIL
    verdict "$v" "crudcast $scenario ($SUBS subs x $RATE events/s): frames lost = $lost (target 0, every round)"
    p99=$(med crudcast "$scenario" p99_ms)
    verdict "$(below "$p99" "$P99_TARGET")" "crudcast $scenario: p99 publish->receipt $p99 ms (target < $P99_TARGET ms)"
    p99=$(med crudcast "$scenario" post_p99_ms)
    verdict "$(below "$p99" "$POST_P99_TARGET")" "crudcast $scenario: POST p99 $p99 ms (target < $POST_P99_TARGET ms)"
    achieved=$(med crudcast "$scenario" events_per_s)
    v=$(awk -v a="$achieved" -v t="$RATE" -v s="$RATE_SHARE_TARGET" 'BEGIN { print (a >= s / 100 * t ? "PASS" : "FAIL") }')
    verdict "$v" "crudcast $scenario: $achieved events/s (target >= $RATE_SHARE_TARGET% of $RATE)"
done
if have nodeup max && have node max; then
    rt=$(ratio nodeup node max)
    v=$(awk -v r="$rt" -v t="$RATIO_TARGET" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }')
    verdict "$v" "max ($MAX_SUBS subs): crudcast (node upstream) / node delivered frames/s = $rt (target >= $RATIO_TARGET)"
fi
if have crudcast max; then
    fps=$(med crudcast max frames_per_s)
    v=$(awk -v f="$fps" -v t="$MAX_FRAMES_TARGET" 'BEGIN { print (f >= t ? "PASS" : "FAIL") }')
    verdict "$v" "max ($MAX_SUBS subs): crudcast (nginx upstream) delivered $(printf '%.0f' "$fps") frames/s (target >= $MAX_FRAMES_TARGET)"
fi
echo "checks (not targets, do not change the exit status):"
for scenario in "${SCENARIOS[@]}"; do
    for front in "${FRONTS[@]}"; do
        reordered=$(maximum <<<"${vals[$front,$scenario,out_of_order]}")
        gaps=$(maximum <<<"${vals[$front,$scenario,gaps]}")
        if ((reordered == 0 && gaps == 0)); then
            printf '  ok    %s %s: seq gap-free and in order on every subscriber\n' "$front" "$scenario"
        else
            printf '  WARN  %s %s: seq not gap-free: up to %s gaps and %s frames arriving after a later seq per round\n' \
                "$front" "$scenario" "$gaps" "$reordered"
        fi
    done
done

# ab_ratio NUM DEN SCENARIO KEY: NUM's median / DEN's median, then the same ratio round by round
# (the two are measured close together in every round, so the spread shows the machine's noise).
ab_ratio() {
    awk -v c="$(med "$1" "$3" "$4")" -v b="$(med "$2" "$3" "$4")" \
        -v cr="${vals[$1,$3,$4]:-}" -v br="${vals[$2,$3,$4]:-}" '
        function r(x, y) { return (y + 0 > 0 && x != "nan" && y != "nan") ? sprintf("%.2f", x / y) : "n/a" }
        BEGIN {
            k = split(cr, cv, " "); split(br, bv, " ")
            for (i = 1; i <= k; i++) rounds = rounds (i > 1 ? " " : "") r(cv[i], bv[i])
            printf "ratio %5s   (per round: %s)\n", r(c, b), rounds
        }'
}
# ab_block NUM DEN TITLE [SUFFIX]: the "NUM / DEN" block, when both fronts ran.
ab_block() {
    local num=$1 den=$2 scenario key name achieved
    listed "$num" && listed "$den" || return 0
    echo
    echo "$num / $den ($3):"
    for scenario in "${SCENARIOS[@]}"; do
        for key in events_per_s frames_per_s lost p50_ms p99_ms post_p50_ms post_p99_ms server_cpu; do
            case $key in
            events_per_s) name="events/s" ;;
            frames_per_s) name="frames/s" ;;
            p50_ms) name="p50 ms" ;;
            p99_ms) name="p99 ms" ;;
            post_p50_ms) name="POST p50 ms" ;;
            post_p99_ms) name="POST p99 ms" ;;
            server_cpu) name="srv CPU" ;;
            lost) name="lost" ;;
            esac
            if [[ $key == lost ]]; then
                # Usually 0 on both sides, so no ratio: the worst rounds side by side, then every round.
                printf '  %-9s %-11s %s %s, %s %s   (worst round; per round, %s/%s: %s)\n' \
                    "$scenario" "$name" "$num" "$(maximum <<<"${vals[$num,$scenario,lost]}")" "$den" \
                    "$(maximum <<<"${vals[$den,$scenario,lost]}")" "$num" "$den" \
                    "$(awk -v c="${vals[$num,$scenario,lost]}" -v b="${vals[$den,$scenario,lost]}" 'BEGIN {
                        k = split(c, cv, " "); split(b, bv, " ")
                        for (i = 1; i <= k; i++) printf "%s%s/%s", (i > 1 ? " " : ""), cv[i], bv[i] }')"
            else
                printf '  %-9s %-11s %s\n' "$scenario" "$name" "$(ab_ratio "$num" "$den" "$scenario" "$key")"
            fi
        done
    done
    for front in "$num" "$den"; do
        [[ $front == crudcast ]] && continue
        for scenario in "${SCENARIOS[@]}"; do
            [[ $scenario == sustained* ]] || continue
            achieved=$(med "$front" "$scenario" events_per_s)
            if awk -v a="$achieved" -v t="$RATE" 'BEGIN { exit !(a < 0.98 * t) }'; then
                echo "  NOTE  $front $scenario reached only $achieved of $RATE events/s"
            fi
        done
    done
    echo "  ${4:-(srv CPU: lower is better when events/s match, as in sustained: the same load for less CPU)}"
}
ab_block crudcast baseline "A/B of two builds, no targets: ~1.00 within the per-round spread = no change"
ab_block crudcast nohistory "the default history / --history-size 0, no targets: ~1.00 within the per-round spread = no change"
for bus in nats redis; do
    ab_block "$bus" crudcast "two instances sharing a $bus stream / one instance on the memory bus, no targets" \
        "(srv CPU: $bus counts both instances and the broker; crudcast one process. frames/s above 1 can come from two processes sharing the fan-out)"
done
exit $((missed ? 2 : 0))
