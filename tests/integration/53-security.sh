# Security properties as tests: no password anywhere the shim writes or
# answers (logs, control socket replies, error messages), whichever way it
# was given; a private control socket and log file; no file created unless
# configured; a symlink or a FIFO planted at the log path neither followed
# nor able to hang the host. (The launcher never taking the library from the
# current directory is tested in 20-launcher.sh.)

. "$ROOT/tests/lib/reliability.bash"

# ---- passwords -------------------------------------------------------------------

# Seven spellings of a password, each a distinct secret, each in its own
# long-lived process (capped, a cap of 1 so that a second connect from the
# same thread gets the pool's own error: at once for a blocking connect,
# after the pool timeout for an asynchronous one, which may not block to
# wait); while they hold their connection,
# the control socket is asked for status, metrics, health and ls. The
# cluster trusts every connection, so any password works.
test_password_never_shown() {
    export PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG_LEVEL=debug
    printf '*:*:*:*:Secret7file\n' >"$T/pgpass"
    chmod 600 "$T/pgpass"
    local uri="postgresql://postgres:Secret2uri@/postgres?host=$PGHOST&port=$PGPORT"
    local -a names=(conninfo uri params setdb start env passfile)
    local -a modes=(conninfo conninfo params setdb start conninfo conninfo)
    local -a args=("dbname=postgres password=Secret1conninfo" "$uri"
        "dbname=postgres password=Secret3params" "Secret4setdb"
        "dbname=postgres password=Secret5start" "dbname=postgres" "dbname=postgres")
    local -a envs=("" "" "" "" "PQSHIM_POOL_TIMEOUT=0.5" "PGPASSWORD=Secret6env" "PGPASSFILE=$T/pgpass")
    local i fmt
    for i in "${!names[@]}"; do
        fmt=text
        [ $((i % 2)) = 0 ] || fmt=json
        env ${envs[$i]:+"${envs[$i]}"} PQSHIM_LOG_FORMAT=$fmt PQSHIM_LOG="$T/${names[$i]}.log" \
            PQSHIM_CONTROL="$T/${names[$i]}.sock" LD_PRELOAD="$SHIM_PRELOAD" \
            "$TESTBIN/pwclient" "${modes[$i]}" "${args[$i]}" "$T/${names[$i]}.ready" "$T/go" \
            >"$T/${names[$i]}.out" 2>"$T/${names[$i]}.err" &
        track_pid $!
    done
    for i in "${!names[@]}"; do
        wait_until 20 test -e "$T/${names[$i]}.ready" ||
            { show "$T/${names[$i]}.out" "$T/${names[$i]}.err"; fail "${names[$i]}: not ready"; }
    done
    local name cmd
    for name in "${names[@]}"; do
        for cmd in status metrics health; do
            "$BUILD/pqshimctl" -s "$T/$name.sock" "$cmd" >"$T/$name.ctl-$cmd" 2>&1 || true
            "$BUILD/pqshimctl" -s "$T/$name.sock" --json "$cmd" >"$T/$name.ctl-$cmd.json" 2>&1 || true
        done
    done
    "$BUILD/pqshimctl" ls -D "$T" >"$T/ctl-ls" 2>&1 || true
    "$BUILD/pqshimctl" metrics --all -D "$T" >"$T/ctl-metrics-all" 2>&1 || true
    touch "$T/go"
    for name in "${names[@]}"; do
        wait_until 20 grep -q '^done' "$T/$name.out" || fail "$name: did not finish"
    done

    # A refused connect and a self-deadlock carry messages; the health
    # check connected with the password.
    local port
    port=$(free_port)
    PQSHIM_LOG=$T/refused.log storm_bg refused -t 1 -n 1 -v \
        -c "host=127.0.0.1 port=$port password=Secret8refused"
    wait_pid "$STORM_PID" 20 || fail "storm failed"

    for name in "${names[@]}"; do
        cat "$T/$name.out"
        assert_file_contains "$T/$name.out" "first ok" "$name: connect"
        assert_file_contains "$T/$name.out" "held ok" "$name: connect"
        if [ "$name" = start ]; then
            assert_file_contains "$T/$name.out" "more bad pqshim: pool limit of size 1 overflow 0 reached" \
                "$name: the pool's own error"
        else
            assert_file_contains "$T/$name.out" "more bad pqshim: this thread already holds all 1" \
                "$name: the pool's own error"
        fi
        assert_file_contains "$T/$name.ctl-status.json" '"checked_out":1' "$name: status"
        assert_file_contains "$T/$name.ctl-health.json" '"ok":true' "$name: health"
        assert_file_contains "$T/$name.log" "connect" "$name: log"
    done
    assert_file_contains "$T/refused.out" "Connection refused" "refused connect"
    # Everything written: logs, replies, program output (not the runner's
    # record of this test, nor the password file itself).
    local hits
    hits=$(grep -rl 'Secret[0-9]' "$T" --exclude=pgpass --exclude=output || true)
    assert_eq "" "$hits" "files showing a password: $(grep -rho '.\{0,60\}Secret[0-9].\{0,20\}' "$T" \
        --exclude=pgpass --exclude=output | head -n 5)"
}

# ---- files -----------------------------------------------------------------------------

# The control socket and the log file are private to the user, whatever
# the umask.
test_control_socket_and_log_private() {
    umask 000
    printf 'connect 1\necho up\nwait %s/go\nfinish 1\n' "$T" >"$T/hold.script"
    PQSHIM_POLICY=capped PQSHIM_CONTROL=$T/ctl.sock PQSHIM_LOG=$T/shim.log \
        shimmed exec "$TESTBIN/pool_script" <"$T/hold.script" >"$T/hold.out" 2>&1 &
    local pid=$!
    track_pid "$pid"
    wait_until 20 grep -q '^up' "$T/hold.out" || fail "client: $(cat "$T/hold.out")"
    wait_until 5 test -S "$T/ctl.sock" || fail "no control socket"
    assert_eq "600 $(id -u)" "$(stat -c '%a %u' "$T/ctl.sock")" "control socket mode and owner"
    assert_eq "600 $(id -u)" "$(stat -c '%a %u' "$T/shim.log")" "log file mode and owner"
    touch "$T/go"
    wait_pid "$pid" 20 || fail "client failed: $(cat "$T/hold.out")"
    [ ! -e "$T/ctl.sock" ] || fail "the control socket is left behind"
}

# creates OUT CMD...: the file-creating system calls of CMD (openat with
# O_CREAT, creat, mkdir, mknod, bind, link, symlink, rename), one a line,
# with pids, descriptors and addresses blanked out.
creates() {
    local out=$1
    shift
    strace -f -qq -o "$out.raw" -e signal=none \
        -e trace=open,openat,creat,mkdir,mkdirat,mknod,mknodat,bind,link,linkat,symlink,symlinkat,rename,renameat,renameat2 \
        "$@" >/dev/null 2>>"$T/cmd.err" || true
    grep -E 'O_CREAT|^[0-9]+ +(creat|mkdir|mknod|bind|link|symlink|rename)' "$out.raw" |
        sed -E 's/^[0-9]+ +//; s/0x[0-9a-f]+/0xX/g; s/ = -?[0-9]+.*$//; s/^(bind)\([0-9]+/\1(N/' |
        sort -u >"$out" || true
}

# A shimmed psql with default settings, under either policy, creates no
# file and binds no socket that the same psql without the shim does not.
test_no_file_created_by_default() {
    command -v strace >/dev/null || fail "strace is not installed"
    mkdir -p "$T/home" "$T/cwd"
    cd "$T/cwd" || fail "cd $T/cwd"
    export HOME=$T/home
    unset PQSHIM_LOG PQSHIM_CONTROL
    local base=${SAN_PRELOAD% }
    : >"$T/cmd.err"
    if [ -n "$base" ]; then
        creates "$T/base" env LD_PRELOAD="$base" "$PSQL" -X -A -t -c 'select 1'
    else
        creates "$T/base" env -u LD_PRELOAD "$PSQL" -X -A -t -c 'select 1'
    fi
    local policy
    for policy in null capped; do
        creates "$T/$policy" env PQSHIM_POLICY=$policy LD_PRELOAD="$SHIM_PRELOAD" \
            "$PSQL" -X -A -t -c 'select 1'
        grep -q 'libpqshim' "$T/$policy.raw" || fail "$policy: the shim was not loaded"
        local extra
        extra=$(comm -13 "$T/base" "$T/$policy")
        # An instrumented shim makes the TSan runtime initialise, and it
        # keeps a file of its own in /tmp: the sanitizer's doing.
        [ "${TEST_SANITIZER:-}" != tsan ] || extra=$(echo "$extra" | grep -v '"/tmp/tsan\.' || true)
        assert_eq "" "$extra" "$policy: files created with the shim only"
        grep -E 'event=connect' "$T/cmd.err" >/dev/null || fail "$policy: no log line on stderr"
    done
    assert_eq "" "$(find "$T/cwd" "$T/home" -mindepth 1)" "files in the working and home directories"
}

# A symlink planted at PQSHIM_LOG is not followed: its target is neither
# written nor created, the lines go to stderr, the program works. A FIFO
# with no reader at that path does not block the program either.
test_log_path_symlink_and_fifo_refused() {
    echo original >"$T/victim"
    ln -s "$T/victim" "$T/shim.log"
    PQSHIM_LOG=$T/shim.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err"
    assert_eq 1 "$(cat "$T/out")" "symlink: psql output"
    assert_eq original "$(cat "$T/victim")" "symlink: the target"
    [ -L "$T/shim.log" ] || fail "symlink: replaced"
    assert_eq 1 "$(count_events "$T/err" connect)" "symlink: connect lines on stderr instead"

    ln -s "$T/nowhere" "$T/dangling.log"
    PQSHIM_LOG=$T/dangling.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err"
    assert_eq 1 "$(cat "$T/out")" "dangling symlink: psql output"
    [ ! -e "$T/nowhere" ] || fail "dangling symlink: the target was created"
    assert_eq 1 "$(count_events "$T/err" connect)" "dangling symlink: connect lines on stderr instead"

    mkfifo "$T/fifo.log"
    PQSHIM_LOG=$T/fifo.log shimmed exec "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" &
    local pid=$!
    track_pid "$pid"
    wait_pid "$pid" 10 || fail "FIFO: psql failed or hung: $(cat "$T/err")"
    assert_eq 1 "$(cat "$T/out")" "FIFO: psql output"
    assert_eq 1 "$(count_events "$T/err" connect)" "FIFO: connect lines on stderr instead"
}
