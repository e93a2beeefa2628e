# shellcheck shell=bash disable=SC2154 # work and pids are set by the sourcing script
# bench/lib.sh: what bench/proxy.sh and bench/fanout.sh share. Sourced, not run.
# Callers run bench_arguments "$@" first; later they set `work` (their mktemp dir), `pids`
# (servers, oldest first) and `load_pid` (the load generator, stopped first), then call
# bench_install_cleanup.

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}
note() { echo "$*" >&2; }

# --help prints the calling script's header comment; any other argument is refused (every knob
# is an environment variable).
bench_arguments() {
    case ${1:-} in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *) die "no arguments expected (configure with environment variables, see --help)" ;;
    esac
}

# Stop every process started here, newest first (the load generator, then the fronts, then the
# backend): TERM, then KILL after 5 s. Then remove the work directory.
# shellcheck disable=SC2317 # called from the EXIT trap
bench_cleanup() {
    local pid i order=()
    if [[ -n ${load_pid:-} ]]; then order+=("$load_pid"); fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do order+=("${pids[i]}"); done
    for pid in "${order[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

bench_install_cleanup() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Prints N distinct free loopback ports below the kernel's ephemeral range, so no client socket
# can take one before a server binds it. $(...) waits for python to exit: its sockets are closed
# before the servers bind.
bench_free_ports() {
    python3 -c '
import random, socket, sys
want = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
candidates = random.sample(range(10000, max(low, 10100)), k=min(200, max(low, 10100) - 10000))
held = []
for port in candidates:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)
    if len(held) == want:
        break
ports = [s.getsockname()[1] for s in held]
for s in held:
    s.close()
print(*ports)
' "$1"
}
