#!/usr/bin/env bash
# Soak run (not part of `make check`): 64 threads connect, check, dirty and
# finish sessions for SOAK_SECONDS (default 120) through the capped pool
# (size 8 + overflow 8) against a throwaway cluster. Every checkout checks
# that nothing of the previous user's session survived (open transaction,
# SET, temp tables, prepared statements, cursors, LISTEN, advisory locks);
# every second the process's RSS and descriptors and the server's
# connections are sampled (the connections every 100 ms as well).
#
#   make soak                                   (or: tests/soak.sh)
#   SOAK_SECONDS=10 tests/soak.sh
#   make BUILD=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer \
#       -fno-sanitize-recover=all" test-build &&
#       BUILD=build/asan TEST_SANITIZER=asan tests/soak.sh
#
# Knobs: SOAK_SECONDS, SOAK_THREADS (64), SOAK_POOL_SIZE (8),
# SOAK_MAX_OVERFLOW (8). Exit status 0 when there was no error, no leaked
# session state, the server never saw more connections than the cap, and
# the descriptors stayed bounded.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/common.sh

duration=${SOAK_SECONDS:-120}
threads=${SOAK_THREADS:-64}
size=${SOAK_POOL_SIZE:-8}
overflow=${SOAK_MAX_OVERFLOW:-8}
cap=$((size + overflow))

for f in "$TESTBIN/soak" "$SHIM"; do
    [ -e "$f" ] || { echo "soak: $f is missing; run make test-build (with the same BUILD)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/pqshim-soak.XXXXXX)
chmod 755 "$WORK"
SOAK_PID=""
SAMPLER_PID=""
cleanup() {
    [ -z "$SOAK_PID" ] || kill -9 "$SOAK_PID" 2>/dev/null
    [ -z "$SAMPLER_PID" ] || kill "$SAMPLER_PID" 2>/dev/null
    wait 2>/dev/null
    cluster_stop
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cluster_start 40 || exit 1
export CLUSTER_MAXCONN=40
echo "soak: $threads threads x ${duration}s, capped pool size $size overflow $overflow (cap $cap)${TEST_SANITIZER:+, $TEST_SANITIZER build}"

# The server's connections of the soak client, every 100 ms (the latest
# count also in a file, for the progress lines).
cat >"$WORK/sampler.py" <<'EOF'
import os, sys, time
import psycopg2
out, stop, latest = sys.argv[1:4]
conn = psycopg2.connect("", application_name="soak_sampler")
conn.autocommit = True
cur = conn.cursor()
peak = samples = 0
while not os.path.exists(stop):
    cur.execute("select count(*) from pg_stat_activity where application_name = 'soak'")
    n = cur.fetchone()[0]
    peak = max(peak, n)
    samples += 1
    with open(latest + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.rename(latest + ".tmp", latest)
    time.sleep(0.1)
with open(out, "w") as f:
    f.write("%d %d\n" % (peak, samples))
EOF
"$PYTHON" "$WORK/sampler.py" "$WORK/sampler.out" "$WORK/sampler.stop" "$WORK/sampler.latest" &
SAMPLER_PID=$!

PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=$size PQSHIM_MAX_OVERFLOW=$overflow \
    PQSHIM_LOG=$WORK/shim.log PQSHIM_LOG_LEVEL=warn \
    shimmed exec "$TESTBIN/soak" -t "$threads" -d "$duration" -c application_name=soak \
    -r "$WORK/ready" >"$WORK/soak.out" 2>"$WORK/soak.err" &
SOAK_PID=$!
wait_until 60 test -e "$WORK/ready" || { echo "soak: the client did not start" >&2; cat "$WORK/soak.err" >&2; exit 1; }

# One sample a second: RSS (kB), descriptors, server connections.
rss_first="" rss_warm="" rss_last="" rss_peak=0
fds_first="" fds_last="" fds_min=999999 fds_max=0
conn_peak_1s=0 n=0 next_report=10
t0=$(date +%s)
tick=$(date +%s%N)
while kill -0 "$SOAK_PID" 2>/dev/null; do
    # A process on its way out (threads joined, descriptors closing) is
    # not sampled.
    state=$(awk '{print $3}' "/proc/$SOAK_PID/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] || break
    [ -e "$WORK/soak.out" ] && [ -s "$WORK/soak.out" ] && break
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SOAK_PID/status" 2>/dev/null)
    fds=$(ls "/proc/$SOAK_PID/fd" 2>/dev/null | wc -l)
    [ -n "$rss" ] && [ "$fds" -gt 0 ] || break
    conns=$(cat "$WORK/sampler.latest" 2>/dev/null || echo 0)
    elapsed=$(( $(date +%s) - t0 ))
    n=$((n + 1))
    [ -n "$rss_first" ] || rss_first=$rss
    [ -n "$fds_first" ] || fds_first=$fds
    [ -n "$rss_warm" ] || [ "$elapsed" -lt $((duration / 4)) ] || rss_warm=$rss
    rss_last=$rss
    fds_last=$fds
    [ "$rss" -le "$rss_peak" ] || rss_peak=$rss
    [ "$fds" -ge "$fds_min" ] || fds_min=$fds
    [ "$fds" -le "$fds_max" ] || fds_max=$fds
    [ "$conns" -le "$conn_peak_1s" ] || conn_peak_1s=$conns
    if [ "$elapsed" -ge "$next_report" ]; then
        echo "soak: ${elapsed}s rss=${rss}kB fds=$fds server_connections=$conns"
        next_report=$((next_report + 10))
    fi
    # The next sample one second after this one's start.
    tick=$((tick + 1000000000))
    left=$(( (tick - $(date +%s%N)) / 1000000 ))
    [ "$left" -le 0 ] || sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
done
rc=0
wait "$SOAK_PID" || rc=$?
SOAK_PID=""
touch "$WORK/sampler.stop"
wait "$SAMPLER_PID" 2>/dev/null
SAMPLER_PID=""
read -r conn_peak samples <"$WORK/sampler.out" || { conn_peak=0; samples=0; }
[ "$conn_peak_1s" -le "$conn_peak" ] || conn_peak=$conn_peak_1s
[ -n "$rss_warm" ] || rss_warm=$rss_first

summary=$(head -n 1 "$WORK/soak.out")
value() { echo "$summary" | sed -nE "s/.*(^| )$1=([^ ]*).*/\\2/p"; }
iterations=$(value iterations)
echo
echo "soak summary"
echo "  client:             ${summary:-no summary (exit status $rc)}"
echo "  iterations:         ${iterations:-?} ($(awk -v i="${iterations:-0}" -v s="$duration" 'BEGIN {printf "%.0f", i / s}')/s)"
echo "  errors:             $(value errors)   leaked session state: $(value leaks)"
echo "  server connections: peak $conn_peak (cap $cap; $samples samples, every 100 ms)"
echo "  RSS:                start ${rss_first}kB, after warm-up ${rss_warm}kB, end ${rss_last}kB, peak ${rss_peak}kB ($n samples)"
echo "  descriptors:        start $fds_first, end $fds_last, min $fds_min, max $fds_max"
echo "  shim warnings:      $(grep -c . "$WORK/shim.log" 2>/dev/null || echo 0) lines"
if [ -s "$WORK/soak.err" ]; then
    echo "  client stderr (first lines):"
    head -n 10 "$WORK/soak.err" | sed 's/^/    /'
fi

status=0
[ "$rc" = 0 ] || { echo "FAIL: the client exited with status $rc"; status=1; }
[ "$conn_peak" -le "$cap" ] || { echo "FAIL: $conn_peak server connections, over the cap of $cap"; status=1; }
[ $((fds_max - fds_min)) -le $((cap + 2)) ] ||
    { echo "FAIL: descriptors ranged from $fds_min to $fds_max"; status=1; }
[ "$status" = 0 ] && echo "soak: ok"
exit $status
