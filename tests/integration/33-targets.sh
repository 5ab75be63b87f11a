# A connection request seen before maps to its pool without being parsed
# again: what it maps to must still follow the environment the program
# changes, never merge two different requests, and stay right for more
# spellings than the shim remembers.

export PQSHIM_POLICY=capped

# targets.py: connects with psycopg2 (PQconnectdb) as told by its
# arguments, each "CONNINFO" or "setenv NAME VALUE" or "unsetenv NAME";
# prints "pid appname" per connect (connection closed right after).
write_targets_client() {
    cat >"$T/targets.py" <<'PY'
import os, sys
import psycopg2
args = sys.argv[1:]
i = 0
while i < len(args):
    a = args[i]
    if a == "setenv":
        os.environ[args[i + 1]] = args[i + 2]
        i += 3
        continue
    if a == "unsetenv":
        del os.environ[args[i + 1]]
        i += 2
        continue
    c = psycopg2.connect(a)
    cur = c.cursor()
    cur.execute("select pg_backend_pid(), current_setting('application_name')")
    pid, app = cur.fetchone()
    print(pid, app or "-", flush=True)
    c.close()
    i += 1
PY
}

test_setenv_between_connects_changes_target() {
    write_targets_client
    PQSHIM_LOG="$T/shim.log" shimmed "$PYTHON" "$T/targets.py" \
        "" "" setenv PGAPPNAME env_second "" "" unsetenv PGAPPNAME "" \
        setenv PGAPPNAME env_third "" >"$T/out" 2>"$T/err" ||
        fail "client: $(head -c 2000 "$T/err")"
    cat "$T/out"
    mapfile -t seen <"$T/out"
    assert_eq 6 "${#seen[@]}" "connects"
    # Without PGAPPNAME: one pool, reused.
    assert_eq "${seen[0]}" "${seen[1]}" "second connect reuses the first one's backend"
    assert_eq "-" "${seen[0]#* }" "application name without PGAPPNAME"
    # setenv PGAPPNAME: another target, its own backend, reused in turn.
    assert_eq "env_second" "${seen[2]#* }" "application name after setenv"
    assert_eq "${seen[2]}" "${seen[3]}" "the new target's backend reused"
    [ "${seen[2]% *}" != "${seen[0]% *}" ] || fail "setenv PGAPPNAME reused the first target's backend"
    # unsetenv: back to the first pool.
    assert_eq "${seen[0]}" "${seen[4]}" "after unsetenv, the first target's backend again"
    # Another value: a third target.
    assert_eq "env_third" "${seen[5]#* }" "application name after the second setenv"
    assert_eq 3 "$(cut -d' ' -f1 "$T/out" | sort -u | wc -l)" "distinct backends"
    assert_eq 3 "$(count_events "$T/shim.log" connect)" "real connects"
}

test_different_conninfos_never_share_a_pool() {
    write_targets_client
    local args=() i round
    for round in 1 2; do
        for i in $(seq 1 8); do args+=("application_name=app_$i"); done
    done
    PQSHIM_LOG="$T/shim.log" shimmed "$PYTHON" "$T/targets.py" "${args[@]}" \
        >"$T/out" 2>"$T/err" || fail "client: $(head -c 2000 "$T/err")"
    cat "$T/out"
    assert_eq 16 "$(wc -l <"$T/out")" "connects"
    for i in $(seq 1 8); do
        # Each request always lands on its own backend, with its own name.
        assert_eq 2 "$(grep -c " app_$i\$" "$T/out")" "checkouts of app_$i"
        assert_eq 1 "$(grep " app_$i\$" "$T/out" | sort -u | wc -l)" "backends of app_$i"
    done
    assert_eq 8 "$(cut -d' ' -f1 "$T/out" | sort -u | wc -l)" "distinct backends"
    assert_eq 8 "$(count_events "$T/shim.log" connect)" "real connects"
}

# More spellings of one target than the shim remembers requests: every
# one still reaches the same pool, so one backend serves them all.
test_more_spellings_than_remembered() {
    write_targets_client
    local args=() i pad=""
    for i in $(seq 1 150); do
        pad+=" "
        args+=("dbname=postgres${pad}")
    done
    args+=("dbname=postgres application_name=other")
    PQSHIM_LOG="$T/shim.log" shimmed "$PYTHON" "$T/targets.py" "${args[@]}" "${args[@]}" \
        >"$T/out" 2>"$T/err" || fail "client: $(head -c 2000 "$T/err")"
    assert_eq 302 "$(wc -l <"$T/out")" "connects"
    assert_eq 300 "$(grep -c ' -$' "$T/out")" "connects of the spelled-out target"
    assert_eq 1 "$(grep ' -$' "$T/out" | sort -u | wc -l)" "backends of the spelled-out target"
    assert_eq 1 "$(grep ' other$' "$T/out" | sort -u | wc -l)" "backends of the other target"
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "real connects"
}
