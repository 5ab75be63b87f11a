# Hostile local users: an attacker (nobody) and a victim (a throwaway
# account) on one host, and root running the fleet commands. Each test
# plays one attack and checks that it fails: planted sockets and symlinks,
# lying and hung servers, shared files, escape sequences and bad bytes,
# sloppy numbers. /proc scans run in a PID namespace of the test's own, so
# no test depends on the other processes of the machine.

ATTACKER=nobody
VICTIM=pqshim-victim
FAKE="$ROOT/tests/lib/fake_control.py"

# as USER CMD...: run CMD as USER, groups cleared. The command line
# "$(as_cmd USER) CMD..." does the same in the background with $! being
# CMD's pid (setpriv execs it).
as_cmd() {
    echo "setpriv --reuid=$(id -u "$1") --regid=$(id -g "$1") --clear-groups --"
}
as() {
    local user=$1
    shift
    $(as_cmd "$user") "$@"
}

# need_root_tools: these tests play several users and a PID namespace.
need_root_tools() {
    [ "$(id -u)" = 0 ] || { skip_test "not root: cannot play other users"; return 1; }
    command -v setpriv >/dev/null || { skip_test "setpriv is not installed"; return 1; }
    unshare --pid --fork --mount-proc true 2>/dev/null ||
        { skip_test "cannot make a PID namespace here"; return 1; }
    id "$ATTACKER" >/dev/null 2>&1 || { skip_test "no user $ATTACKER"; return 1; }
    # Binaries the other users run must be reachable by them.
    install -m 0755 "$BUILD/pqshimctl" "$T/pqshimctl"
    install -m 0644 "$FAKE" "$T/fake_control.py"
    CTL="$T/pqshimctl"
}

# need_victim: a throwaway unprivileged account, removed after the test if
# this test created it.
need_victim() {
    if ! id "$VICTIM" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$VICTIM" ||
            { fail "cannot create user $VICTIM"; return 1; }
        on_exit "userdel $VICTIM"
    fi
}

# in_pid_ns SCRIPT: run the bash SCRIPT in a new PID namespace with its own
# /proc (exported variables and functions pass through), so that a /proc
# scan sees the script's processes only. Bounded in time.
in_pid_ns() {
    timeout 60 unshare --pid --fork --mount-proc bash -c "$1"
}

# ---- root's fleet commands and other users' paths ---------------------------------

# The attacker names, in its own environment, a socket path through a
# symlink into a directory only root may enter, where a stale socket of
# root's lies, and keeps a stale socket of its own: root's ls and metrics
# --all neither remove anything there nor even connect to root's socket
# (they used to remove a file of root's choosing by the attacker).
test_root_fleet_never_removes_attacker_named_paths() {
    need_root_tools || return 0
    mkdir -p "$T/att" "$T/rootonly"
    chmod 700 "$T/rootonly"
    chown "$ATTACKER" "$T/att"
    "$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/rootonly/x.sock"
    as "$ATTACKER" ln -s "$T/rootonly" "$T/att/link"
    as "$ATTACKER" "$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/att/own.sock"
    export T CTL AS_ATTACKER
    AS_ATTACKER=$(as_cmd $ATTACKER)
    in_pid_ns '
        PQSHIM_CONTROL=$T/att/link/x.sock $AS_ATTACKER sleep 30 &
        PQSHIM_CONTROL=$T/att/own.sock $AS_ATTACKER sleep 30 &
        until [ "$(grep -l PQSHIM_CONTROL /proc/[0-9]*/environ 2>/dev/null | wc -l)" -ge 2 ]; do sleep 0.05; done
        "$CTL" ls >"$T/ls.out" 2>&1
        "$CTL" metrics --all >"$T/metrics.out" 2>"$T/metrics.err"
        "$CTL" ls -d "$T/att" >"$T/ls-d.out" 2>&1
    ' || fail "the namespace script failed"
    cat "$T/ls.out" "$T/metrics.err"
    [ -S "$T/rootonly/x.sock" ] || fail "root's socket behind the attacker's symlink was removed"
    [ -S "$T/att/own.sock" ] || fail "the attacker's own stale socket was removed by root"
    local f
    for f in ls.out metrics.err; do
        assert_file_contains "$T/$f" "stale socket $T/att/own.sock (no process listening), served for uid $(id -u $ATTACKER): not removed" "$f"
        assert_file_contains "$T/$f" "$T/att/link/x.sock (named by process" "$f"
        assert_file_contains "$T/$f" "of uid $(id -u $ATTACKER)) is a socket of uid 0: not asked" "$f"
    done
    # Found in a directory, the attacker's socket is its file's owner's.
    assert_file_contains "$T/ls-d.out" "stale socket $T/att/own.sock (no process listening), served for uid $(id -u $ATTACKER): not removed" "ls -d"
    [ -S "$T/att/own.sock" ] || fail "ls -d removed the attacker's socket"
}

# ---- who serves a socket ------------------------------------------------------------------

# In a directory anyone may write (no sticky bit), the attacker plants a
# listening socket at the path of the victim's process, answering a fake
# status that pretends to be the victim and a "paused" for pause: the
# victim's pqshimctl believes none of it and sends it nothing. The
# attacker's own processes lie about their pid and slip foreign metrics
# into metrics --all: root's ls and metrics --all show none of that.
test_planted_and_lying_sockets_not_believed() {
    need_root_tools || return 0
    need_victim || return 1
    write_fake_metrics
    mkdir -p "$T/shared" "$T/att"
    chmod 777 "$T/shared"
    chown "$ATTACKER" "$T/att"
    export T CTL AS_ATTACKER AS_VICTIM FAKE="$T/fake_control.py" PYTHON
    AS_ATTACKER=$(as_cmd $ATTACKER)
    AS_VICTIM=$(as_cmd $VICTIM)
    in_pid_ns '
        PQSHIM_CONTROL="$T/shared/ctl-%p.sock" $AS_VICTIM sleep 30 &
        vpid=$!
        printf "{\"pid\":%d,\"program\":\"app\",\"policy\":\"capped\",\"paused\":true,\"pools\":[{\"target\":\"fake\",\"open\":99}]}\n" $vpid >"$T/fake-status"
        $AS_ATTACKER "$PYTHON" "$FAKE" "$T/fake-status" "$T/planted.log" "$T/shared/ctl-$vpid.sock" >"$T/planted.out" &
        # The attacker'"'"'s own processes, named by their own environment.
        PQSHIM_CONTROL="$T/att/liar.sock" $AS_ATTACKER "$PYTHON" "$FAKE" "$T/fake-status" "$T/liar.log" "$T/att/liar.sock" >"$T/liar.out" &
        sed "s/VPID/$vpid/" "$T/fake-metrics.in" >"$T/fake-metrics"
        PQSHIM_CONTROL="$T/att/metrics.sock" $AS_ATTACKER "$PYTHON" "$FAKE" "$T/fake-metrics" "$T/metrics.log" "$T/att/metrics.sock" >"$T/metrics.out" &
        mpid=$!
        until grep -qs ready "$T/planted.out" && grep -qs ready "$T/liar.out" && grep -qs ready "$T/metrics.out"; do sleep 0.05; done
        echo "$vpid $mpid" >"$T/pids"
        rc=0; $AS_VICTIM "$CTL" -p $vpid status >"$T/v-status.out" 2>"$T/v-status.err" || rc=$?
        echo $rc >"$T/v-status.rc"
        rc=0; $AS_VICTIM "$CTL" -p $vpid pause >"$T/v-pause.out" 2>"$T/v-pause.err" || rc=$?
        echo $rc >"$T/v-pause.rc"
        "$CTL" ls >"$T/ls.out" 2>&1
        "$CTL" ls --json >"$T/ls.json" 2>"$T/ls-json.err"
        "$CTL" metrics --all >"$T/all.prom" 2>"$T/all.err"
    ' || fail "the namespace script failed"
    local vpid mpid
    read -r vpid mpid <"$T/pids"
    cat "$T/v-status.err" "$T/ls.out" "$T/all.err"
    assert_eq 2 "$(cat "$T/v-status.rc")" "victim's status: exit status"
    assert_file_contains "$T/v-status.err" "served by uid $(id -u $ATTACKER)" "victim's status: who serves it"
    assert_file_contains "$T/v-status.err" "not by uid $(id -u $VICTIM) who owns process $vpid: not believed, nothing sent" "victim's status"
    assert_eq "" "$(cat "$T/v-status.out")" "victim's status: no fake table"
    assert_eq 2 "$(cat "$T/v-pause.rc")" "victim's pause: exit status"
    assert_not_contains "$(cat "$T/v-pause.out")" "Paused" "victim's pause"
    [ ! -s "$T/planted.log" ] || fail "the planted socket was sent: $(cat "$T/planted.log")"
    # Root: the planted socket is not the victim's; the liar claims the victim's pid.
    assert_file_contains "$T/ls.out" "$T/shared/ctl-$vpid.sock (named by process $vpid of uid $(id -u $VICTIM)) is a socket of uid $(id -u $ATTACKER): not asked" "ls: planted socket"
    assert_file_contains "$T/ls.out" "$T/att/liar.sock: the reply claims pid $vpid but pid" "ls: the liar"
    assert_not_contains "$(cat "$T/ls.out")" "fake" "ls shows no fake target"
    assert_eq "[]" "$(cat "$T/ls.json")" "ls --json: nothing believed"
    # metrics --all: the attacker's own pqshim samples only, each once.
    cat "$T/all.prom"
    assert_not_contains "$(cat "$T/all.prom")" "node_load1" "foreign families"
    assert_not_contains "$(cat "$T/all.prom")" "pid=\"$vpid\"" "samples labelled with the victim's pid"
    assert_not_contains "$(cat "$T/all.prom")" "owned" "HELP text with escapes"
    assert_not_contains "$(cat "$T/all.prom")" "counter" "a TYPE that contradicts the name"
    assert_eq "pqshim_connections_idle{pid=\"$mpid\",program=\"x\",target=\"t\"} 1" \
        "$(grep '^pqshim_' "$T/all.prom")" "the attacker's own samples"
    "$PYTHON" - "$T/all.prom" <<'EOF' || fail "metrics --all output is not clean"
import sys
data = open(sys.argv[1], "rb").read()
data.decode("utf-8")
assert not any(b < 0x20 and b != 0x0a for b in data), data
EOF
}

# The metrics the attacker's process serves (VPID: the victim's pid).
write_fake_metrics() {
    printf '%s\n' '# HELP node_load1 fake' '# TYPE node_load1 gauge' 'node_load1 999' \
        $'# HELP pqshim_connections_open \x1b]0;owned\x07' '# TYPE pqshim_connections_open counter' \
        'pqshim_connections_open{pid="VPID",program="x",target="t"} 50' \
        'pqshim_connections_open{pid="{pid}",program="x",target="t"} 7' \
        '# HELP pqshim_connections_idle Idle.' '# TYPE pqshim_connections_idle gauge' \
        'pqshim_connections_idle{pid="VPID",program="x",target="t"} 9' \
        'pqshim_connections_idle{pid="{pid}",program="x",target="t"} 1' \
        'pqshim_connections_idle{pid="{pid}",program="x",target="t"} 2' \
        'pqshim_connections_idle{pid="{pid}",pid="VPID",program="x",target="t"} 3' \
        'pqshim_connections_idle{program="x",target="t"} 4' >"$T/fake-metrics.in"
}

# ---- monitoring stalls ---------------------------------------------------------------------

# Twenty sockets that accept and never answer, beside a real shimmed psql:
# metrics --all and ls answer within a few seconds (they took 40 s), with
# the real process's numbers, and name every socket that timed out.
test_hung_sockets_bounded() {
    mkdir -p "$T/run"
    local socks=() i
    for i in $(seq 1 20); do socks+=("$T/run/hung-$i.sock"); done
    "$PYTHON" "$FAKE" - "$T/hung.log" "${socks[@]}" >"$T/hung.out" &
    track_pid $!
    wait_until 10 grep -qs ready "$T/hung.out" || fail "hung server did not start"
    mkfifo "$T/in"
    PQSHIM_POLICY=capped PQSHIM_CONTROL="$T/run/real-%p.sock" PQSHIM_LOG="$T/shim.log" \
        shimmed "$PSQL" -X -q <"$T/in" >"$T/psql.out" 2>&1 &
    track_pid $!
    exec 3>"$T/in"
    on_exit "exec 3>&-"
    wait_until 15 eval 'ls "$T"/run/real-*.sock >/dev/null 2>&1' || fail "no control socket"
    local sock pid t0 took
    sock=$(ls "$T"/run/real-*.sock)
    pid=${sock##*/real-}
    pid=${pid%.sock}
    t0=$(date +%s%N)
    "$BUILD/pqshimctl" metrics --all -D "$T/run" >"$T/all.prom" 2>"$T/all.err" || fail "metrics --all failed"
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "metrics --all with 20 hung sockets: $took ms"
    assert_le 8000 "$took" "metrics --all duration (ms)"
    assert_file_contains "$T/all.prom" "pqshim_connections_open{pid=\"$pid\"" "the real process's samples"
    assert_eq 20 "$(grep -c 'hung-[0-9]*\.sock (pid [0-9]*): no reply within 2 s' "$T/all.err")" \
        "sockets named as timed out: $(head -c 600 "$T/all.err")"
    t0=$(date +%s%N)
    "$BUILD/pqshimctl" ls -D "$T/run" -t 1 >"$T/ls.out" 2>&1 || fail "ls failed"
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "ls -t 1 with 20 hung sockets: $took ms"
    assert_le 5000 "$took" "ls duration (ms)"
    assert_eq 20 "$(grep -c 'no reply within 1 s' "$T/ls.out")" "ls names the timed-out sockets"
    assert_file_contains "$T/ls.out" "$pid " "ls lists the real process"
}

# ---- the host-limit file -------------------------------------------------------------------

# A limit file others may open is refused (any user: always; its group or
# another owner: unless PQSHIM_HOST_LIMIT_SHARED=group). With the group
# trusted, a member that takes a read lock on the whole file blocks every
# slot: the timeout says so and names the process, instead of "limit
# reached".
test_host_limit_file_shared_and_foreign_lock() {
    need_root_tools || return 0
    export PQSHIM_HOST_LIMIT=2 PQSHIM_POOL_TIMEOUT=1 PQSHIM_LOG_LEVEL=info
    local f="$T/limit"
    : >"$f"
    chmod 0644 "$f"
    PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_HOST_LIMIT_SHARED=group PQSHIM_LOG=$T/world.log \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    assert_file_contains "$T/world.log" "event=host_limit_unavailable file=$f error=\"every user may open it" "0644"
    chmod 0640 "$f"
    chgrp "$(id -gn $ATTACKER)" "$f"
    PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_LOG=$T/group.log \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    assert_file_contains "$T/group.log" "error=\"its group may open it, and any member could block every slot; set PQSHIM_HOST_LIMIT_SHARED=group" "0640 without opting in"
    PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_HOST_LIMIT_SHARED=group PQSHIM_LOG=$T/trusted.log \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    assert_eq 0 "$(count_events "$T/trusted.log" host_limit_unavailable)" "0640 with the group trusted"

    # The group member reads the file and locks all of it.
    $(as_cmd "$ATTACKER") "$PYTHON" -c '
import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.lockf(f, fcntl.LOCK_SH)
print("locked", flush=True)
time.sleep(30)' "$f" >"$T/locker.out" 2>&1 &
    local locker=$!
    track_pid "$locker"
    wait_until 10 grep -qs locked "$T/locker.out" || fail "the reader could not lock: $(cat "$T/locker.out")"
    local rc=0
    PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_HOST_LIMIT_SHARED=group PQSHIM_LOG=$T/blocked.log \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || rc=$?
    cat "$T/out" "$T/blocked.log"
    [ "$rc" != 0 ] || fail "connected through a blocked limit"
    assert_file_contains "$T/out" "host limit slots for postgres@" "the error message"
    assert_file_contains "$T/out" "are blocked by a lock that no pqshim connection holds (process $locker" "the error names the locker"
    assert_not_contains "$(cat "$T/out")" "connections reached" "not reported as a full limit"
    assert_file_contains "$T/blocked.log" "event=host_limit_blocked" "log line"
    assert_file_contains "$T/blocked.log" "pid=$locker" "log names the locker"
}

# shared_limit_file FILE: a host limit file its group (the attacker's)
# shares, as PQSHIM_HOST_LIMIT_SHARED=group asks: mode 0660.
shared_limit_file() {
    : >"$1"
    chmod 0660 "$1"
    chgrp "$(id -gn $ATTACKER)" "$1"
}

# A member truncates the shared file while a process has it mapped: the
# process connects again instead of dying of SIGBUS (a page of a mapping
# past the end of its file faults), says so in one line, gives the file
# its size back, and the limit still holds.
test_host_limit_file_truncated_while_in_use() {
    need_root_tools || return 0
    local f="$T/limit"
    shared_limit_file "$f"
    printf '%s\n' "connect 0" "finish 0" "echo mapped" "wait $T/truncated" \
        "connect 1" "exec 1 select 1" "connect 2" "connect 3" "finish 1" "finish 2" >"$T/script"
    PQSHIM_HOST_LIMIT=2 PQSHIM_POOL_TIMEOUT=1 PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_HOST_LIMIT_SHARED=group \
        PQSHIM_LOG=$T/shim.log shimmed "$TESTBIN/pool_script" <"$T/script" >"$T/out" 2>&1 &
    local victim=$!
    track_pid "$victim"
    wait_until 20 grep -qs '^mapped' "$T/out" || fail "the process did not map the file: $(cat "$T/out")"
    local size
    size=$(stat -c %s "$f")
    as "$ATTACKER" truncate -s 0 "$f" || fail "the member could not truncate the file"
    touch "$T/truncated"
    wait_pid "$victim" 30 || fail "the process did not end well after the truncation: $(cat "$T/out")"
    cat "$T/out" "$T/shim.log"
    assert_file_contains "$T/out" "connect 1 ok" "connect after the truncation"
    assert_file_contains "$T/out" "exec 1 ok 1" "query after the truncation"
    assert_file_contains "$T/out" "connect 3 bad" "the limit of 2 still holds"
    assert_file_contains "$T/out" "host limit of 2 connections reached" "the refusal names the limit"
    assert_eq 1 "$(count_events "$T/shim.log" host_limit_repaired)" "host_limit_repaired lines"
    assert_file_contains "$T/shim.log" "damage=\"it shrank while in use; given its full size again\"" "the line says what happened"
    assert_eq 0 "$(count_events "$T/shim.log" host_limit_unavailable)" "host_limit_unavailable lines"
    assert_eq "$size" "$(stat -c %s "$f")" "the file's size"
}

# A member writes 8 bytes over the start of the shared file: the next
# process rewrites the header (one line) and applies the limit, instead of
# taking the file for somebody else's and running without it.
test_host_limit_file_header_overwritten() {
    need_root_tools || return 0
    local f="$T/limit"
    shared_limit_file "$f"
    export PQSHIM_HOST_LIMIT=2 PQSHIM_POOL_TIMEOUT=1 PQSHIM_HOST_LIMIT_FILE=$f PQSHIM_HOST_LIMIT_SHARED=group
    PQSHIM_LOG=$T/first.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    local size
    size=$(stat -c %s "$f")
    printf 'GARBAGE!' | as "$ATTACKER" dd of="$f" bs=8 count=1 conv=notrunc status=none ||
        fail "the member could not write the file"
    printf '%s\n' "connect 1" "connect 2" "connect 3" "finish 1" "finish 2" |
        PQSHIM_LOG=$T/shim.log shimmed timeout 30 "$TESTBIN/pool_script" >"$T/out" 2>&1 ||
        fail "pool_script: $(cat "$T/out")"
    cat "$T/out" "$T/shim.log"
    assert_file_contains "$T/out" "connect 2 ok" "connections within the limit"
    assert_file_contains "$T/out" "connect 3 bad" "the limit of 2 holds"
    assert_file_contains "$T/out" "host limit of 2 connections reached" "the refusal names the limit"
    assert_eq 1 "$(count_events "$T/shim.log" host_limit_repaired)" "host_limit_repaired lines"
    assert_file_contains "$T/shim.log" "damage=\"its header was overwritten; rewritten\"" "the line says what happened"
    assert_eq 0 "$(count_events "$T/shim.log" host_limit_unavailable)" "host_limit_unavailable lines"
    assert_eq "$size" "$(stat -c %s "$f")" "the file's size"
}

# victim_pair: two processes of the victim with the default host limit
# file and a limit of 1, one started without XDG_RUNTIME_DIR (as cron
# does) and one with it (a login shell): the first holds the slot, the
# second must time out on it. Their output in $T/a.out, $T/b.out, their
# logs in $T/a.log, $T/b.log.
victim_pair() {
    local f
    for f in a.log b.log; do install -o "$VICTIM" -m 0600 /dev/null "$T/$f"; done
    mkdir -p "$T/run"
    chown "$VICTIM" "$T/run"
    rm -f "$T/done"
    printf '%s\n' "connect 0" "echo holding" "wait $T/done" "finish 0" |
        env -u PQSHIM_HOST_LIMIT_FILE -u XDG_RUNTIME_DIR PQSHIM_HOST_LIMIT=1 PQSHIM_LOG="$T/a.log" \
            $(as_cmd "$VICTIM") env LD_PRELOAD="$SHIM_PRELOAD" "$TESTBIN/pool_script" >"$T/a.out" 2>&1 &
    local holder=$!
    track_pid "$holder"
    wait_until 20 grep -qs '^holding' "$T/a.out" || fail "the first process did not connect: $(cat "$T/a.out")"
    printf '%s\n' "connect 1" "finish 1" |
        env -u PQSHIM_HOST_LIMIT_FILE XDG_RUNTIME_DIR="$T/run" PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=1 \
            PQSHIM_LOG="$T/b.log" $(as_cmd "$VICTIM") env LD_PRELOAD="$SHIM_PRELOAD" \
            timeout 30 "$TESTBIN/pool_script" >"$T/b.out" 2>&1 || fail "second process: $(cat "$T/b.out")"
    touch "$T/done"
    wait_pid "$holder" 30 || fail "the first process did not end well: $(cat "$T/a.out")"
    cat "$T/a.out" "$T/b.out" "$T/a.log" "$T/b.log"
    assert_file_contains "$T/b.out" "connect 1 bad" "the second process waits for the first one's slot"
    assert_file_contains "$T/b.out" "host limit of 1 connections reached" "the refusal names the limit"
    assert_eq 0 "$(cat "$T/a.log" "$T/b.log" | count_events /dev/stdin host_limit_unavailable)" \
        "host_limit_unavailable lines"
}

# The default host limit file is in a directory of the user's own,
# /tmp/pqshim-UID (mode 0700), that every process of the user finds
# whatever its environment.
test_default_host_limit_file_in_private_dir() {
    need_root_tools || return 0
    need_victim || return 0
    local dir="/tmp/pqshim-$(id -u $VICTIM)"
    rm -rf "$dir"
    on_exit "rm -rf $dir"
    victim_pair || return 1
    assert_eq "700 $VICTIM" "$(stat -c '%a %U' "$dir")" "the directory's mode and owner"
    assert_eq "600 $VICTIM" "$(stat -c '%a %U' "$dir/hostlimit")" "the file's mode and owner"
    assert_file_contains "$T/b.out" "shared through $dir/hostlimit" "the refusal names the file"
}

# The attacker takes the victim's default places in /tmp first: the old
# file name (/tmp/pqshim-hostlimit-UID) and the private directory
# (/tmp/pqshim-UID). The victim's processes use neither and do not run
# unlimited: they share a file in the victim's home directory, said once
# by the process that made it.
test_planted_default_host_limit_place_not_taken() {
    need_root_tools || return 0
    need_victim || return 0
    local vuid home old_home
    vuid=$(id -u $VICTIM)
    home="$T/victim-home"
    mkdir "$home"
    chown "$VICTIM" "$home"
    chmod 0700 "$home"
    old_home=$(getent passwd "$VICTIM" | cut -d: -f6)
    usermod -d "$home" "$VICTIM" || { fail "cannot set the victim's home"; return 1; }
    on_exit "usermod -d '$old_home' $VICTIM"
    rm -rf "/tmp/pqshim-hostlimit-$vuid" "/tmp/pqshim-$vuid"
    on_exit "rm -rf /tmp/pqshim-hostlimit-$vuid /tmp/pqshim-$vuid"
    as "$ATTACKER" sh -c "umask 077; : >/tmp/pqshim-hostlimit-$vuid; mkdir /tmp/pqshim-$vuid" ||
        fail "the attacker could not plant"
    victim_pair || return 1
    assert_file_contains "$T/b.out" "shared through $home/.pqshim-hostlimit" "the refusal names the file"
    assert_eq "600 $VICTIM" "$(stat -c '%a %U' "$home/.pqshim-hostlimit")" "the file's mode and owner"
    assert_eq 1 "$(count_events "$T/a.log" host_limit_fallback)" "host_limit_fallback lines of the first process"
    assert_file_contains "$T/a.log" "dir=/tmp/pqshim-$vuid error=\"owned by another user, who made it first\" file=$home/.pqshim-hostlimit" "the line"
    assert_eq 0 "$(count_events "$T/b.log" host_limit_fallback)" "host_limit_fallback lines of the second process"
    assert_eq "0 $ATTACKER" "$(stat -c '%s %U' "/tmp/pqshim-hostlimit-$vuid")" "the planted file, untouched"
    assert_eq "" "$(ls -A "/tmp/pqshim-$vuid")" "the planted directory, untouched"
}

# ---- the control socket ----------------------------------------------------------------

# The socket gets its mode without a path: no chmod by name (a rename race
# once redirected it to another file), mode 0600 whatever the umask.
# A directory others may write without a sticky bit is warned about.
test_control_socket_mode_set_without_path() {
    command -v strace >/dev/null || fail "strace is not installed"
    mkdir -p "$T/shared" "$T/sticky"
    chmod 777 "$T/shared"
    chmod 1777 "$T/sticky"
    umask 000
    strace -f -qq -o "$T/trace" -e trace=chmod,fchmodat,fchmod,bind \
        env PQSHIM_CONTROL="$T/shared/ctl.sock" PQSHIM_LOG="$T/shared.log" LD_PRELOAD="$SHIM_PRELOAD" \
        "$PYTHON" -c '
import ctypes, os, sys
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQfinish.argtypes = [ctypes.c_void_p]
pq.PQfinish(pq.PQconnectdb(b""))
print(oct(os.stat(sys.argv[1]).st_mode & 0o777))' "$T/shared/ctl.sock" >"$T/mode" 2>"$T/err" ||
        fail "client: $(cat "$T/err")"
    assert_eq 0o600 "$(cat "$T/mode")" "socket mode under umask 000"
    grep -q "bind(.*$T/shared/ctl.sock" "$T/trace" || fail "no bind traced: $(cat "$T/trace")"
    assert_eq "" "$(grep -E '(^|[0-9] )(chmod|fchmodat)\(' "$T/trace" | grep ctl.sock || true)" "chmod by name"
    grep -qE 'fchmod\([0-9]+, 0600\)' "$T/trace" || fail "no fchmod before bind: $(cat "$T/trace")"
    assert_eq 1 "$(count_events "$T/shared.log" control_unsafe_dir)" "warning for a writable directory"
    assert_file_contains "$T/shared.log" "path=$T/shared/ctl.sock" "the warning names the socket"
    PQSHIM_CONTROL="$T/sticky/ctl.sock" PQSHIM_LOG="$T/sticky.log" \
        shimmed "$PSQL" -X -A -t -c 'select 1' >/dev/null 2>&1 || fail "psql"
    assert_eq 0 "$(count_events "$T/sticky.log" control_unsafe_dir)" "no warning for a sticky directory"
}

# A stale socket of another user at the control path: one line says so.
# Our own stale socket (a process that ended with _exit) is removed, by the
# next process at the path and by pqshimctl ls, and said so.
test_stale_sockets_said_and_cleaned() {
    need_root_tools || return 0
    mkdir -p "$T/sticky" "$T/own"
    chmod 1777 "$T/sticky"
    as "$ATTACKER" "$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/sticky/ctl.sock"
    PQSHIM_CONTROL="$T/sticky/ctl.sock" PQSHIM_LOG="$T/other.log" \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    assert_eq 1 "$(count_events "$T/other.log" control_failed)" "one line"
    assert_file_contains "$T/other.log" "detail=\"a stale socket of uid $(id -u $ATTACKER) (no process listening) is at the path; it is not ours to remove\"" "the line"
    [ -S "$T/sticky/ctl.sock" ] || fail "another user's socket was removed"

    # A shimmed program that ends with _exit leaves its socket.
    local script='
import ctypes, os
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb(b"")
os._exit(0)'
    PQSHIM_CONTROL="$T/own/ctl.sock" PQSHIM_LOG="$T/exit1.log" shimmed "$PYTHON" -c "$script"
    [ -S "$T/own/ctl.sock" ] || fail "no socket left by _exit (the test needs one)"
    PQSHIM_CONTROL="$T/own/ctl.sock" PQSHIM_LOG="$T/exit2.log" shimmed "$PYTHON" -c "$script"
    assert_eq 1 "$(count_events "$T/exit2.log" control_stale_removed)" "the next process says it removed it"
    assert_eq 0 "$(count_events "$T/exit2.log" control_failed)" "and serves the path"
    [ -S "$T/own/ctl.sock" ] || fail "no socket left by the second _exit"
    "$BUILD/pqshimctl" ls -D "$T/own" >"$T/ls.out" 2>&1
    assert_file_contains "$T/ls.out" "stale socket $T/own/ctl.sock (no process listening): removed (its process was killed or ended with _exit)" "ls"
    [ ! -e "$T/own/ctl.sock" ] || fail "ls did not remove our stale socket"
}

# ---- the log file ---------------------------------------------------------------------------

# A log file another user created (mode 0666) is refused: one error line on
# stderr, the lines go there too, and the attacker's file gets nothing.
# So is a file of ours that every user may write.
test_log_file_of_other_user_refused() {
    need_root_tools || return 0
    mkdir -p "$T/shared"
    chmod 1777 "$T/shared"
    as "$ATTACKER" sh -c 'umask 0; : >"$1"' _ "$T/shared/app.log"
    PQSHIM_LOG="$T/shared/app.log" shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" ||
        fail "psql: $(cat "$T/err")"
    assert_eq 1 "$(cat "$T/out")" "psql output"
    assert_eq 1 "$(count_events "$T/err" log_file_unavailable)" "one error line"
    assert_file_contains "$T/err" "error event=log_file_unavailable file=$T/shared/app.log error=\"owned by another user\" effect=\"lines go to stderr instead\"" "the line"
    assert_eq 1 "$(count_events "$T/err" connect)" "connect line on stderr instead"
    [ ! -s "$T/shared/app.log" ] || fail "the attacker's file got lines: $(cat "$T/shared/app.log")"
    : >"$T/open.log"
    chmod 0666 "$T/open.log"
    PQSHIM_LOG="$T/open.log" shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" || fail "psql"
    assert_file_contains "$T/err" "error=\"writable by every user\"" "a world-writable file"
    [ ! -s "$T/open.log" ] || fail "the world-writable file got lines"
}

# ---- bad bytes in names ---------------------------------------------------------------------

# A target whose host (a socket directory) holds byte 0xff, CR and ESC:
# JSON log lines and the status reply stay valid UTF-8 JSON, the text log
# and metrics carry no raw control character and no invalid UTF-8, and
# Prometheus labels stay parseable.
test_invalid_utf8_and_controls_escaped() {
    local dir="$T/"$'h\xffx\ry\x1bz'
    mkdir -p "$dir"
    ln -s "$PGHOST/.s.PGSQL.$PGPORT" "$dir/.s.PGSQL.$PGPORT"
    mkfifo "$T/in"
    PQSHIM_POLICY=capped PQSHIM_LOG_FORMAT=json PQSHIM_LOG="$T/json.log" PQSHIM_CONTROL="$T/ctl.sock" \
        PGHOST="$dir" shimmed "$PSQL" -X -q <"$T/in" >"$T/psql.out" 2>&1 &
    track_pid $!
    exec 3>"$T/in"
    on_exit "exec 3>&-"
    wait_until 15 grep -qs '"event":"connect"' "$T/json.log" || fail "no connect: $(cat "$T/psql.out")"
    "$BUILD/pqshimctl" -s "$T/ctl.sock" --json status >"$T/status.json" || fail "status"
    "$BUILD/pqshimctl" -s "$T/ctl.sock" metrics >"$T/metrics.prom" || fail "metrics"
    "$BUILD/pqshimctl" -s "$T/ctl.sock" status >"$T/status.txt" || fail "status table"
    exec 3>&-
    PQSHIM_LOG="$T/text.log" PGHOST="$dir" shimmed "$PSQL" -X -A -t -c 'select 1' >/dev/null 2>&1 || fail "psql"
    "$PYTHON" "$HELPERS/check_bad_bytes.py" "$T" || fail "bad bytes passed through"
}

# ---- numbers and the log path --------------------------------------------------------------

# Numbers are plain digits: " 5", " +7", "0x10", "1e3" are refused with the
# usual config_invalid line, and the launcher refuses them too. A log path
# that cannot be a file ("/", a missing directory) is said in one line
# before the lines go to stderr.
test_strict_numbers_and_log_fallback() {
    PQSHIM_POOL_SIZE=" 5" PQSHIM_MAX_OVERFLOW=" +7" PQSHIM_POOL_TIMEOUT=0x10 PQSHIM_HOST_LIMIT=1e3 \
        PQSHIM_IDLE_TIMEOUT="+1" PQSHIM_LOG="$T/num.log" \
        shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1 || fail "psql: $(cat "$T/out")"
    assert_eq 5 "$(count_events "$T/num.log" config_invalid)" "config_invalid lines: $(cat "$T/num.log")"
    assert_file_contains "$T/num.log" 'variable=PQSHIM_POOL_SIZE value=" 5" accepted="an integer from 0 to 10000" using=5' "pool size"
    assert_file_contains "$T/num.log" 'variable=PQSHIM_MAX_OVERFLOW value=" +7"' "overflow"
    assert_file_contains "$T/num.log" 'variable=PQSHIM_POOL_TIMEOUT value=0x10' "timeout"
    assert_file_contains "$T/num.log" 'variable=PQSHIM_HOST_LIMIT value=1e3' "host limit"
    local rc=0
    "$LAUNCHER" --pool-size " 5" -- true 2>"$T/launcher.err" || rc=$?
    assert_eq 2 "$rc" "launcher exit status for ' 5'"
    rc=0
    "$LAUNCHER" --pool-timeout 0x10 -- true 2>>"$T/launcher.err" || rc=$?
    assert_eq 2 "$rc" "launcher exit status for 0x10: $(cat "$T/launcher.err")"
    # Plain values still work.
    PQSHIM_POOL_SIZE=5 PQSHIM_POOL_TIMEOUT=0.5 PQSHIM_IDLE_TIMEOUT=.5 PQSHIM_LOG="$T/ok.log" \
        shimmed "$PSQL" -X -A -t -c 'select 1' >/dev/null 2>&1 || fail "psql"
    assert_eq 0 "$(count_events "$T/ok.log" config_invalid)" "plain values"

    local path
    for path in / "$T/missing/dir/x.log"; do
        PQSHIM_LOG=$path shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" || fail "psql"
        assert_eq 1 "$(cat "$T/out")" "$path: psql output"
        assert_eq 1 "$(count_events "$T/err" log_file_unavailable)" "$path: one line"
        assert_file_contains "$T/err" "file=$path error=\"cannot open it:" "$path: what happened"
        assert_eq 1 "$(count_events "$T/err" connect)" "$path: lines on stderr"
    done
}
