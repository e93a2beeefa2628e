#!/usr/bin/env bash
# bench/all.sh: every speed and memory target of crudcast in one run: bench/proxy.sh (against nginx
# and HAProxy), bench/fanout.sh (against Node ws) and bench/memory.sh (against Node ws), one after
# the other, each with its own defaults and knobs (see their --help), then one line per script with
# its verdict. Each script measures crudcast and its peers in the same run and prints ratios; this
# one only runs them in turn, so that one command answers "are the targets met on this machine?".
#
# Environment: BENCH_SCRIPTS ["proxy fanout memory"] (which ones, in this order); everything else is
# passed through to the scripts (CRUDCAST_BIN, BENCH_*, FANOUT_*, MEMORY_*, ...).
# Builds nothing: ninja -C build crudcast crudcast-fanout-client crudcast-memory-client first.
# Exit status: 0 every script met its targets, 2 a target was missed, 1 a script could not run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bench_arguments "$@"

read -r -a scripts <<<"${BENCH_SCRIPTS:-proxy fanout memory}"
verdicts=()
worst=0
for name in "${scripts[@]}"; do
    [[ -x $here/$name.sh ]] || die "no bench/$name.sh (BENCH_SCRIPTS lists proxy, fanout, memory)"
    note "== bench/$name.sh (started $(date -u +%H:%M:%S))"
    status=0
    "$here/$name.sh" || status=$?
    case $status in
    0) verdicts+=("$name.sh: every target met") ;;
    2) verdicts+=("$name.sh: a target missed (exit 2)") ;;
    *) verdicts+=("$name.sh: could not run (exit $status)") ;;
    esac
    if ((status == 1 || status > 2)); then
        worst=1
    elif ((status == 2 && worst == 0)); then
        worst=2
    fi
done
echo
printf '%s\n' "${verdicts[@]}"
exit "$worst"
