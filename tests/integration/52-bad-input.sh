# Bad input never breaks the host: every PQSHIM_* variable with invalid,
# empty, huge, negative, non-numeric and overflowing values gives exactly
# one config_invalid line and the program works on defaults; oversized and
# malformed connection strings and parameter arrays get libpq's own answer
# (the same as without the shim), under both policies, with well-formed
# log lines only.

. "$ROOT/tests/lib/reliability.bash"

HUGE=$(head -c 10000 /dev/zero | tr '\0' 'x')
ODD=$(printf 'a"b\nc\001d\\e')

# The values tried for each kind of variable, NUL-separated: one invalid
# in its own way, empty, huge, negative, non-numeric, overflowing.
values_word() {
    printf '%s\0' "$ODD" "" "$HUGE" "-1" " capped" "99999999999999999999"
}
values_int() {
    printf '%s\0' "10001" "" "$HUGE" "-1" "abc" "99999999999999999999"
}
values_seconds() {
    printf '%s\0' "nan" "" "$HUGE" "-1" "abc" "1e999"
}
values_path() {
    printf '%s\0' "relative/path" "" "/$HUGE" "-1" "$ODD" "99999999999999999999"
}

# run_case DIR VAR VALUE: psql -c 'select 1' with VAR=VALUE (and the capped
# policy unless VAR is the policy), output in DIR/out, DIR/err, DIR/log.
run_case() {
    local dir=$1 var=$2 value=$3 policy=capped
    mkdir -p "$dir"
    if [ "$var" = PQSHIM_LOG ]; then
        # An invalid destination: everything goes to stderr.
        env -u PQSHIM_LOG "$var=$value" PQSHIM_POLICY=$policy \
            LD_PRELOAD="$SHIM_PRELOAD" "$PSQL" -X -A -t -c 'select 1' >"$dir/out" 2>"$dir/err"
    else
        [ "$var" != PQSHIM_POLICY ] || policy=$value
        env PQSHIM_POLICY="$policy" PQSHIM_LOG="$dir/log" "$var=$value" \
            LD_PRELOAD="$SHIM_PRELOAD" "$PSQL" -X -A -t -c 'select 1' >"$dir/out" 2>"$dir/err"
    fi
    echo $? >"$dir/rc"
}

# check_cases LIST: for every case in LIST (DIR\0VAR\0VALUE\0 ...): psql
# worked; one config_invalid line naming VAR, the value cut to 64
# characters; no other error or warning line. (One pass for all cases:
# a few processes per case would cost more than the cases themselves.)
check_cases() {
    "$PYTHON" "$HELPERS/check_bad_input_log.py" "$1"
}

test_every_variable_rejects_bad_values() {
    local var kind value n=0 running=0
    local -a vars=() vals=()
    for var in PQSHIM_POLICY:word PQSHIM_LOG:path PQSHIM_LOG_LEVEL:word PQSHIM_LOG_FORMAT:word \
        PQSHIM_POOL_SIZE:int PQSHIM_MAX_OVERFLOW:int PQSHIM_POOL_TIMEOUT:seconds \
        PQSHIM_RESET:word PQSHIM_PRE_PING:word PQSHIM_POOL_RECYCLE:seconds \
        PQSHIM_IDLE_TIMEOUT:seconds PQSHIM_RETRY_FULL:word PQSHIM_CONTROL:path \
        PQSHIM_HOST_LIMIT:int PQSHIM_HOST_LIMIT_FILE:path PQSHIM_HOST_LIMIT_SHARED:word; do
        kind=${var#*:}
        while IFS= read -r -d '' value; do
            vars+=("${var%:*}")
            vals+=("$value")
        done < <("values_$kind")
    done
    # Six at a time: each case is one short psql.
    for n in "${!vars[@]}"; do
        run_case "$T/case$n" "${vars[$n]}" "${vals[$n]}" &
        running=$((running + 1))
        if [ "$running" -ge 6 ]; then
            wait -n || true
            running=$((running - 1))
        fi
    done
    wait
    : >"$T/cases"
    for n in "${!vars[@]}"; do
        printf '%s\0%s\0%s\0' "$T/case$n" "${vars[$n]}" "${vals[$n]}" >>"$T/cases"
    done
    check_cases "$T/cases" || fail "bad configuration values were not all handled"
    assert_eq 96 "${#vars[@]}" "cases tried"
}

# All of them wrong at once: one line each, the program still works.
test_all_variables_bad_at_once() {
    env PQSHIM_POLICY=bogus PQSHIM_LOG_LEVEL=loud PQSHIM_LOG_FORMAT=xml PQSHIM_POOL_SIZE=-1 \
        PQSHIM_MAX_OVERFLOW=abc PQSHIM_POOL_TIMEOUT=1e999 PQSHIM_RESET= PQSHIM_PRE_PING=maybe \
        PQSHIM_POOL_RECYCLE=-5 PQSHIM_IDLE_TIMEOUT="$HUGE" PQSHIM_RETRY_FULL=2 \
        PQSHIM_CONTROL=relative PQSHIM_LOG="/$HUGE" PQSHIM_HOST_LIMIT=1001 \
        PQSHIM_HOST_LIMIT_FILE=relative PQSHIM_HOST_LIMIT_SHARED=world \
        LD_PRELOAD="$SHIM_PRELOAD" "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" ||
        fail "psql failed: $(cat "$T/err")"
    cat "$T/err"
    assert_eq 1 "$(cat "$T/out")" "psql output"
    assert_eq 16 "$(grep -c ' error event=config_invalid ' "$T/err")" "config_invalid lines"
    local var
    for var in POLICY LOG LOG_LEVEL LOG_FORMAT POOL_SIZE MAX_OVERFLOW POOL_TIMEOUT RESET \
        PRE_PING POOL_RECYCLE IDLE_TIMEOUT RETRY_FULL CONTROL HOST_LIMIT HOST_LIMIT_FILE \
        HOST_LIMIT_SHARED; do
        assert_eq 1 "$(grep -c " event=config_invalid variable=PQSHIM_$var " "$T/err")" "lines for PQSHIM_$var"
    done
    assert_eq 16 "$(grep -c ': \(error\|warn\) ' "$T/err")" "error and warning lines"
    assert_eq 1 "$(count_events "$T/err" connect)" "connect lines"
}

# check_log_lines FILE FORMAT: every line well formed (text: prefix, level,
# event, key=value pairs with balanced quotes; json: an object), at most
# 2048 bytes, no error-level line, only the events a connect can cause.
check_log_lines() {
    "$PYTHON" "$HELPERS/check_log_lines.py" "$1" "$2"
}

# badconn runs every malformed request through every entry point: with the
# shim, under either policy, each one ends exactly as it does without it.
test_malformed_connection_requests() {
    "$TESTBIN/badconn" >"$T/plain.out" 2>"$T/plain.err"
    assert_eq "done" "$(tail -n 1 "$T/plain.out")" "badconn without the shim"
    assert_ge 100 "$(grep -c '^case ' "$T/plain.out")" "cases"
    local run pids=()
    for run in null:text capped:json; do
        local policy=${run%:*} format=${run#*:}
        PQSHIM_POLICY=$policy PQSHIM_LOG_FORMAT=$format PQSHIM_LOG_LEVEL=debug \
            PQSHIM_LOG=$T/$policy-$format.log shimmed exec "$TESTBIN/badconn" \
            >"$T/$policy-$format.out" 2>"$T/$policy-$format.err" &
        pids+=($!)
        track_pid $!
    done
    for run in null:text capped:json; do
        local policy=${run%:*} format=${run#*:}
        wait_pid "${pids[0]}" 60 || fail "$run: badconn failed: $(tail -c 2000 "$T/$policy-$format.err")"
        pids=("${pids[@]:1}")
        assert_eq "" "$(cat "$T/$policy-$format.err")" "$run: stderr"
        diff "$T/plain.out" "$T/$policy-$format.out" >"$T/$policy-$format.diff" ||
            fail "$run: results differ from libpq's own: $(head -c 3000 "$T/$policy-$format.diff")"
        check_log_lines "$T/$policy-$format.log" "$format"
    done
    # Long values were cut, not the lines.
    assert_ge 1 "$(grep -c 'xxxxxxxxxx\.\.\."' "$T/null-text.log")" "cut values in the text log"
}

# The same through psql (which passes its conninfo with expand_dbname).
test_malformed_conninfo_through_psql() {
    local big
    big="dbname=postgres application_name=$(head -c 102400 /dev/zero | tr '\0' 'a')"
    local -a cases=("$big" "dbname='postgres" "nosuchkeyword=1" "postgresql://[::1/x"
        "port=99999999999999999999" "dbname=postgres sslmode=sometimes" "host=/$HUGE")
    local i policy
    for i in "${!cases[@]}"; do
        "$PSQL" -X -A -t -c 'select 1' "${cases[$i]}" >"$T/plain.out" 2>"$T/plain.err" || true
        for policy in null capped; do
            PQSHIM_POLICY=$policy PQSHIM_LOG=$T/psql-$policy.log shimmed "$PSQL" -X -A -t \
                -c 'select 1' "${cases[$i]}" >"$T/shim.out" 2>"$T/shim.err" || true
            assert_eq "$(cat "$T/plain.out")" "$(cat "$T/shim.out")" "case $i, $policy: psql output"
            assert_eq "$(cat "$T/plain.err")" "$(cat "$T/shim.err")" "case $i, $policy: psql errors"
        done
    done
    check_log_lines "$T/psql-null.log" text
    check_log_lines "$T/psql-capped.log" text
}
