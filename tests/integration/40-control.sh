# Control socket and pqshimctl: long-lived shimmed psycopg2 programs hold
# connections while the tests ask them, over PQSHIM_CONTROL, for status,
# metrics, dispose, pause/resume and health, and check every number against
# pg_stat_activity. Also: who may talk, what bad clients cannot do, fork,
# the socket's life, and every pqshimctl mode with its exit codes.

CTL="$BUILD/pqshimctl"

# ---- helpers -----------------------------------------------------------------------

# The programs: tests/helpers/ctl_holder.py (the host) and
# tests/helpers/ctl_client.py (the checking client).

# start_holder NAME APP N CLOSE [DSN...]: holder.py under the shim (PQSHIM_*
# from the caller's environment; PQSHIM_CONTROL defaults to $T/ctl-%p.sock,
# the log to $T/NAME.log), fed through a FIFO. Sets HPID[NAME] (the python
# process), HSOCK[NAME] (its socket), HFD[NAME] (the FIFO's write end).
declare -A HPID HSOCK HFD HJOB
start_holder() {
    local name=$1 app=$2 n=$3 close=$4
    shift 4
    local pattern=${PQSHIM_CONTROL-$T/ctl-%p.sock}
    mkfifo "$T/$name.in"
    # The holder must not keep other holders' FIFOs open (they would never
    # see the end of their input).
    local other fds=()
    for other in "${!HFD[@]}"; do
        [ -z "${HFD[$other]}" ] || fds+=("${HFD[$other]}")
    done
    (
        for other in "${fds[@]}"; do
            eval "exec $other>&-"
        done
        PQSHIM_CONTROL=$pattern PQSHIM_LOG=${PQSHIM_LOG:-$T/$name.log} \
            shimmed "$PYTHON" "$HELPERS/ctl_holder.py" "$app" "$n" "$close" "$T/$name.out" "$@"
    ) <"$T/$name.in" >"$T/$name.stdout" 2>&1 &
    HJOB[$name]=$!
    local fd
    exec {fd}>"$T/$name.in"
    HFD[$name]=$fd
    if ! wait_until 20 grep -qs '^ready ' "$T/$name.out"; then
        cat "$T/$name.stdout" "$T/$name.out" 2>/dev/null
        fail "holder $name did not start"
    fi
    HPID[$name]=$(awk '/^ready /{print $2}' "$T/$name.out")
    HSOCK[$name]=$(expand_pattern "$pattern" "${HPID[$name]}")
}

# expand_pattern PATTERN PID: %p, %u and %% as the shim expands them.
expand_pattern() {
    local p=$1 out=""
    while [ -n "$p" ]; do
        case "$p" in
            %p*) out+=$2; p=${p:2} ;;
            %u*) out+=$(id -u); p=${p:2} ;;
            %%*) out+=%; p=${p:2} ;;
            *) out+=${p:0:1}; p=${p:1} ;;
        esac
    done
    echo "$out"
}

# hsend NAME WORDS...: one command line to a holder.
hsend() {
    echo "${*:2}" >&"${HFD[$1]}"
}

# hwait NAME REGEX [COUNT]: until the holder has said COUNT lines matching.
hwait() {
    local want=${3:-1}
    wait_until 30 eval "[ \"\$(grep -scE -- '$2' '$T/$1.out' || true)\" -ge $want ]" ||
        fail "holder $1 never said /$2/ ($want): $(cat "$T/$1.out")"
}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
    [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# stop_holder NAME: end it politely (end of input) and reap it.
stop_holder() {
    local fd=${HFD[$1]:-} pid=${HPID[$1]:-}
    [ -n "$fd" ] || return 0
    exec {fd}>&-
    HFD[$1]=""
    if [ -n "$pid" ]; then
        wait_until 15 gone "$pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    wait "${HJOB[$1]}" 2>/dev/null || true
}

# Always run at exit: no holder outlives its test.
cleanup_holders() {
    local name
    for name in "${!HJOB[@]}"; do
        stop_holder "$name" || true
        kill -9 "${HPID[$name]:-}" "${HJOB[$name]}" 2>/dev/null || true
    done
}

begin() {
    trap cleanup_holders EXIT
}

# backends APP: server sessions tagged with that application_name.
backends() {
    sql "select count(*) from pg_stat_activity where application_name = '$1'"
}

# jstatus SOCK: the status reply, strictly checked, in $T/status.json.
jstatus() {
    "$CTL" -s "$1" --json status >"$T/status.json"
    "$PYTHON" "$HELPERS/ctl_client.py" status "$T/status.json" >/dev/null
}

# pool_of SOCK: "open checked_out idle waiting" of its first pool.
pool_of() {
    jstatus "$1" && "$PYTHON" "$HELPERS/ctl_client.py" pool "$T/status.json"
}

# field SOCK EXPR: a value from the status reply (d is the JSON).
field() {
    jstatus "$1" && "$PYTHON" "$HELPERS/ctl_client.py" get "$T/status.json" "$2"
}

pool_is() {  # SOCK "open co idle waiting"
    [ "$(pool_of "$1")" = "$2" ]
}

TARGET_NAME() {
    echo "postgres@$PGHOST:$PGPORT/postgres"
}

# ---- status ---------------------------------------------------------------------------

test_status_numbers_match_server() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=3 PQSHIM_MAX_OVERFLOW=2 start_holder h ctlstatus 4 2
    local pid=${HPID[h]} sock=${HSOCK[h]}
    # %p expands to the pid; the socket is private to its user.
    assert_eq "$T/ctl-$pid.sock" "$sock" "socket path"
    [ -S "$sock" ] || fail "no socket at $sock"
    assert_eq 600 "$(stat -c %a "$sock")" "socket mode"
    assert_eq "$(id -u)" "$(stat -c %u "$sock")" "socket owner"

    jstatus "$sock"
    local get="$PYTHON $HELPERS/ctl_client.py get $T/status.json"
    assert_eq "$pid" "$($get 'd["pid"]')" "pid"
    assert_eq python3 "$($get 'd["program"]')" "program"
    assert_eq capped "$($get 'd["policy"]')" "policy"
    assert_eq False "$($get 'd["paused"]')" "paused"
    assert_eq "3 2 $T/ctl-%p.sock" "$($get '" ".join([d["settings"]["PQSHIM_POOL_SIZE"], d["settings"]["PQSHIM_MAX_OVERFLOW"], d["settings"]["PQSHIM_CONTROL"]])')" "settings"
    assert_eq 1 "$($get 'len(d["pools"])')" "one target"
    assert_eq "$(TARGET_NAME)" "$($get 'd["pools"][0]["target"]')" "target name"
    assert_eq "5 4 2 2 0" "$($get '" ".join(str(d["pools"][0][k]) for k in ["cap", "open", "checked_out", "idle", "waiting"])')" "cap open checked_out idle waiting"
    assert_eq "4 4 0 0 0" "$($get '" ".join(str(d["pools"][0][k]) for k in ["connects_total", "checkouts_total", "reuses_total", "closes_total", "timeouts_total"])')" "counters"
    # What the shim says is open is what the server has.
    assert_eq 4 "$(backends ctlstatus)" "server sessions"
    assert_eq "$($get 'd["pools"][0]["open"]')" "$(backends ctlstatus)" "open = server sessions"

    # A connect reuses an idle connection: nothing new on the server.
    hsend h connect
    hwait h '^connected '
    assert_eq "4 3 1 0" "$(pool_of "$sock")" "after one more connect"
    assert_eq 1 "$(field "$sock" 'd["pools"][0]["reuses_total"]')" "reuses"
    assert_eq 4 "$(backends ctlstatus)" "server sessions after a reuse"

    # The readable form: a header line, then one row per target.
    "$CTL" -p "$pid" status >"$T/status.txt"
    head -n 1 "$T/status.txt" | grep -qE "^pid $pid  program python3  policy capped  paused no  uptime [0-9.]+s$" ||
        fail "status header: $(head -n 1 "$T/status.txt")"
    assert_file_contains "$T/status.txt" " target " "table header"
    local row
    row=$(grep -F " $(TARGET_NAME) " "$T/status.txt" | tr -s ' ')
    assert_contains "$row" "$(TARGET_NAME) | 5 | 4 | 3 | 1 | 0 | 4 | 1 | 0 | 0.0 |" "status row"
}

test_null_policy_status() {
    begin
    start_holder h ctlnull 3 1
    local sock=${HSOCK[h]}
    jstatus "$sock"
    local get="$PYTHON $HELPERS/ctl_client.py get $T/status.json"
    assert_eq null "$($get 'd["policy"]')" "policy"
    assert_eq None "$($get 'd["pools"][0]["cap"]')" "no cap"
    assert_eq "2 2 0 0" "$(pool_of "$sock")" "open checked_out idle waiting"
    assert_eq 2 "$(backends ctlnull)" "server sessions"
    # settings: every variable of the shim's table (pqshim --list-settings),
    # in its order, at its default but for the two the holder sets.
    "$LAUNCHER" --list-settings >"$T/settings"
    "$PYTHON" - "$T/status.json" "$T/settings" "$T/ctl-%p.sock" "${PQSHIM_LOG:-$T/h.log}" <<'EOF' ||
import json, sys
settings = json.load(open(sys.argv[1]))["settings"]
table = [line.split("\t") for line in open(sys.argv[2])]
want = {name: default for name, option, default, accepted, doc in table}
want.update(PQSHIM_CONTROL=sys.argv[3], PQSHIM_LOG=sys.argv[4])
if list(settings) != [row[0] for row in table] or settings != want:
    sys.exit("status settings %r, the table says %r" % (settings, want))
EOF
        fail "status settings are not the table's"
    "$CTL" -s "$sock" status | tr -s ' ' >"$T/status.txt"
    assert_file_contains "$T/status.txt" "$(TARGET_NAME) | - | 2 | 2 | 0 | 0 | 3 |" "status row, no cap"
    "$CTL" -s "$sock" metrics >"$T/metrics.txt"
    assert_eq none "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/metrics.txt" pqshim_cap)" "no cap sample"
    assert_eq 2 "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/metrics.txt" pqshim_connections_open)" "open sample"
}

# ---- metrics ----------------------------------------------------------------------------

test_metrics_prometheus_strict() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=3 PQSHIM_MAX_OVERFLOW=2 start_holder h ctlprom 3 1
    local pid=${HPID[h]} sock=${HSOCK[h]}
    "$PYTHON" "$HELPERS/ctl_client.py" send "$sock" metrics >"$T/raw.txt"
    "$CTL" -s "$sock" metrics >"$T/metrics.txt"
    "$CTL" -s "$sock" --json metrics >"$T/metrics-json.txt"
    local check
    check=$("$PYTHON" "$HELPERS/ctl_client.py" prom "$T/metrics.txt")
    assert_contains "$check" "ok " "strict Prometheus check"
    "$PYTHON" "$HELPERS/ctl_client.py" prom "$T/raw.txt" >/dev/null
    # pqshimctl passes the exposition through untouched (also with --json).
    cmp -s <(sed -E 's/^(pqshim_oldest_checkout_seconds.*) .*/\1/' "$T/raw.txt") \
           <(sed -E 's/^(pqshim_oldest_checkout_seconds.*) .*/\1/' "$T/metrics.txt") ||
        fail "pqshimctl changed the exposition"
    "$PYTHON" "$HELPERS/ctl_client.py" prom "$T/metrics-json.txt" >/dev/null
    local lbl=(pid="$pid" program=python3 target="$(TARGET_NAME)")
    local v="$PYTHON $HELPERS/ctl_client.py prom-value $T/metrics.txt"
    assert_eq "$(backends ctlprom)" "$($v pqshim_connections_open "${lbl[@]}")" "open = server sessions"
    assert_eq 3 "$($v pqshim_connections_open "${lbl[@]}")" "open"
    assert_eq 2 "$($v pqshim_connections_checked_out "${lbl[@]}")" "checked out"
    assert_eq 1 "$($v pqshim_connections_idle "${lbl[@]}")" "idle"
    assert_eq 0 "$($v pqshim_waiting "${lbl[@]}")" "waiting"
    assert_eq 5 "$($v pqshim_cap "${lbl[@]}")" "cap"
    assert_eq 3 "$($v pqshim_connects_total "${lbl[@]}")" "connects"
    assert_eq 3 "$($v pqshim_checkouts_total "${lbl[@]}")" "checkouts"
    # Each family once, in HELP, TYPE, samples order.
    assert_eq 1 "$(grep -c '^# HELP pqshim_connections_open ' "$T/metrics.txt")" "one HELP"
    assert_eq 1 "$(grep -c '^# TYPE pqshim_connections_open gauge$' "$T/metrics.txt")" "one TYPE"
    assert_eq 0 "$(grep -vcE '^(# (HELP|TYPE) pqshim_|pqshim_)' "$T/metrics.txt" || true)" "only pqshim_ lines"
}

# ---- dispose ------------------------------------------------------------------------------

test_dispose_idle_now_checked_out_at_checkin() {
    begin
    PQSHIM_POLICY=capped start_holder h ctldispose 4 2
    local sock=${HSOCK[h]}
    assert_eq "4 2 2 0" "$(pool_of "$sock")" "before"
    assert_eq 4 "$(backends ctldispose)" "server sessions before"
    local reply
    reply=$("$CTL" -s "$sock" --json dispose)
    assert_eq '{"closed_idle":2,"close_at_checkin":2}' "$reply" "dispose reply"
    wait_until 10 eval '[ "$(backends ctldispose)" = 2 ]' || fail "idle sessions still on the server: $(backends ctldispose)"
    assert_eq "2 2 0 0" "$(pool_of "$sock")" "after dispose"
    assert_eq 2 "$(grep -c ' event=close .*reason=disposed ' "$T/h.log")" "close lines"
    # A connection checked out before the dispose closes when it comes back.
    hsend h close 1
    hwait h '^closed 1'
    wait_until 10 eval '[ "$(backends ctldispose)" = 1 ]' || fail "checked-in session kept: $(backends ctldispose)"
    assert_eq "1 1 0 0" "$(pool_of "$sock")" "after the checkin"
    assert_eq 3 "$(grep -c ' event=close .*reason=disposed ' "$T/h.log")" "close lines"
    # A connection opened after the dispose is pooled again; the last one
    # from before it still closes.
    hsend h connect
    hwait h '^connected '
    hsend h close 2
    hwait h '^closed 2'
    assert_eq "1 0 1 0" "$(pool_of "$sock")" "the new connection is kept idle"
    assert_eq 4 "$(grep -c ' event=close .*reason=disposed ' "$T/h.log")" "close lines"
    assert_eq 1 "$(backends ctldispose)" "server sessions at the end"
    "$CTL" -s "$sock" dispose >"$T/dispose.txt"
    assert_eq "Closed 1 idle connection; 0 checked-out connections will close at checkin." \
        "$(cat "$T/dispose.txt")" "readable dispose"
    wait_until 10 eval '[ "$(backends ctldispose)" = 0 ]' || fail "idle session kept"
}

# ---- pause / resume --------------------------------------------------------------------------

test_pause_makes_connect_wait_until_resume() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_TIMEOUT=20 start_holder h ctlpause 2 1
    local sock=${HSOCK[h]}
    assert_eq '{"paused":true}' "$("$CTL" -s "$sock" --json pause)" "pause reply"
    assert_eq True "$(field "$sock" 'd["paused"]')" "status says paused"
    hsend h connect
    # The connect waits (an idle connection is there, yet it is not handed out).
    wait_until 10 pool_is "$sock" "2 1 1 1" || fail "no waiter: $(pool_of "$sock")"
    assert_eq 0 "$(grep -c '^connected' "$T/h.out" || true)" "connect returned while paused"
    assert_eq 1 "$(field "$sock" 'd["pools"][0]["waits_total"]')" "waits"
    assert_eq "Resumed: checkouts proceed." "$("$CTL" -s "$sock" resume)" "resume reply"
    hwait h '^connected '
    assert_eq False "$(field "$sock" 'd["paused"]')" "status says resumed"
    assert_eq "2 2 0 0" "$(pool_of "$sock")" "after resume"
    # It waited at least until the resume and not until the pool timeout.
    local took
    took=$(awk '/^connected /{print $2}' "$T/h.out")
    awk -v t="$took" 'BEGIN { exit !(t >= 0.05 && t < 15) }' || fail "connect took ${took}s"
    assert_eq 0 "$(field "$sock" 'd["pools"][0]["timeouts_total"]')" "timeouts"
    assert_eq 2 "$(backends ctlpause)" "server sessions"
    assert_eq 1 "$(count_events "$T/h.log" pause)" "pause line"
    assert_eq 1 "$(count_events "$T/h.log" resume)" "resume line"
}

test_pause_bounded_by_pool_timeout() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_TIMEOUT=0.5 start_holder h ctlpauseto 1 1
    local sock=${HSOCK[h]}
    assert_eq "Paused: new checkouts wait (up to PQSHIM_POOL_TIMEOUT) until resume." \
        "$("$CTL" -s "$sock" pause)" "readable pause"
    hsend h connect
    hwait h '^failed '
    local line took
    line=$(grep '^failed ' "$T/h.out")
    took=$(awk '{print $2}' <<<"$line")
    awk -v t="$took" 'BEGIN { exit !(t >= 0.45 && t < 5) }' || fail "the wait took ${took}s"
    assert_contains "$line" "pqshim: " "the shim's error"
    assert_eq 1 "$(field "$sock" 'd["pools"][0]["timeouts_total"]')" "timeouts"
    "$CTL" -s "$sock" resume >/dev/null
    hsend h connect
    hwait h '^connected '
    assert_eq "1 1 0 0" "$(pool_of "$sock")" "after resume"
}

# ---- health ------------------------------------------------------------------------------------

test_health_idle_new_and_failing() {
    begin
    sql "drop database if exists ctlhealth" >/dev/null
    sql "create database ctlhealth" >/dev/null
    PQSHIM_POLICY=capped start_holder h ctlhealth 2 1 dbname=ctlhealth
    local sock=${HSOCK[h]} target="postgres@$PGHOST:$PGPORT/ctlhealth"
    "$CTL" -s "$sock" --json health >"$T/h1.json"
    assert_eq ok "$("$PYTHON" "$HELPERS/ctl_client.py" health "$T/h1.json")" "healthy"
    assert_eq "$target idle True" "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/h1.json" '" ".join(str(d["targets"][0][k]) for k in ["target", "via", "ok"])')" "via idle"
    # The borrowed connection went back: nothing changed.
    assert_eq "2 1 1 0" "$(pool_of "$sock")" "pool after health"
    "$CTL" -s "$sock" health >"$T/h1.txt"
    grep -F " $target " "$T/h1.txt" | tr -s ' ' | grep -qF "$target | ok | idle |" ||
        fail "health table: $(cat "$T/h1.txt")"
    assert_file_contains "$T/h1.txt" "all 1 target ok" "health summary"

    # No idle connection: a new one is opened for the check, then closed.
    "$CTL" -s "$sock" dispose >/dev/null
    "$CTL" -s "$sock" --json health >"$T/h2.json"
    assert_eq ok "$("$PYTHON" "$HELPERS/ctl_client.py" health "$T/h2.json")" "healthy"
    assert_eq new "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/h2.json" 'd["targets"][0]["via"]')" "via new"
    assert_eq "1 1 0 0" "$(pool_of "$sock")" "the check's connection is not pooled"

    # The database goes away: the target fails, and so does the exit status.
    hsend h close 1
    hwait h '^closed 1'
    wait_until 10 eval '[ "$(backends ctlhealth)" = 0 ]' || fail "sessions left on ctlhealth"
    sql "drop database ctlhealth" >/dev/null
    local rc=0
    "$CTL" -s "$sock" --json health >"$T/h3.json" || rc=$?
    assert_eq 1 "$rc" "exit status of a failing health (--json)"
    assert_eq failing "$("$PYTHON" "$HELPERS/ctl_client.py" health "$T/h3.json")" "failing"
    assert_contains "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/h3.json" 'd["targets"][0]["error"]')" \
        "does not exist" "error text"
    rc=0
    "$CTL" -s "$sock" health >"$T/h3.txt" || rc=$?
    assert_eq 1 "$rc" "exit status of a failing health"
    assert_file_contains "$T/h3.txt" "| FAILED |" "FAILED in the table"
    assert_file_contains "$T/h3.txt" "1 of 1 target FAILED" "summary"
}

# ---- who may talk ---------------------------------------------------------------------------------

test_other_uid_refused() {
    if [ "$(id -u)" != 0 ]; then
        echo "not root: cannot run a client as another user; skipped"
        return 0
    fi
    begin
    PQSHIM_POLICY=capped start_holder h ctluid 1 0
    local pid=${HPID[h]} sock=${HSOCK[h]} rc=0
    install -m 0755 "$CTL" "$T/pqshimctl"
    # Mode 0600: another user cannot even connect.
    runuser -u nobody -- "$T/pqshimctl" -s "$sock" status >"$T/out1" 2>"$T/err1" || rc=$?
    assert_eq 2 "$rc" "exit status, socket 0600"
    assert_file_contains "$T/err1" "permission denied" "connect refused"
    # With the socket opened up, pqshimctl run by another user believes
    # only its own user's processes: it sends nothing to this one.
    chmod 0666 "$sock"
    rc=0
    runuser -u nobody -- "$T/pqshimctl" -s "$sock" status >"$T/out2" 2>"$T/err2" || rc=$?
    assert_eq 2 "$rc" "exit status, a server of another user"
    assert_file_contains "$T/err2" "served by uid 0 (pid $pid), not by this user (uid $(id -u nobody)): not believed, nothing sent" "message"
    rc=0
    runuser -u nobody -- "$T/pqshimctl" -s "$sock" --json pause >"$T/out3" 2>"$T/err3" || rc=$?
    assert_eq 2 "$rc" "exit status, --json"
    # And the shim checks the peer's uid, whatever the client (a copy
    # nobody can read, wherever the tree is).
    install -m 0644 "$HELPERS/ctl_client.py" "$T/ctl_client.py"
    runuser -u nobody -- "$PYTHON" "$T/ctl_client.py" send "$sock" status >"$T/out2"
    assert_contains "$(cat "$T/out2")" "permission denied: uid $(id -u nobody) is not the owner (uid 0) of process $pid" "error reply"
    runuser -u nobody -- "$PYTHON" "$T/ctl_client.py" send "$sock" dispose >"$T/out4"
    assert_contains "$(cat "$T/out4")" '"error":"permission denied' "raw client refused"
    # Refused requests did nothing; the owner is still served.
    assert_eq False "$(field "$sock" 'd["paused"]')" "not paused"
    assert_eq "1 1 0 0" "$(pool_of "$sock")" "nothing disposed"
    assert_eq 1 "$(backends ctluid)" "server sessions"
}

# ---- load and bad clients -------------------------------------------------------------------------

test_concurrent_control_clients() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 start_holder h ctlstorm 2 1
    local pid=${HPID[h]} sock=${HSOCK[h]}
    hsend h churn "$T/stop-churn"
    hwait h '^churning'
    # 200 clients at once (status, metrics, help), all while the host churns.
    local out
    out=$("$PYTHON" "$HELPERS/ctl_client.py" storm "$sock" 200 "$pid")
    assert_eq "ok 200" "$out" "every reply valid"
    # And 40 pqshimctl processes, 10 at a time.
    seq 40 | xargs -P 10 -I{} sh -c '"$1" -p "$2" --json status >"$3/storm-{}.json"' _ "$CTL" "$pid" "$T"
    local f
    for f in "$T"/storm-*.json; do
        "$PYTHON" "$HELPERS/ctl_client.py" status "$f" >/dev/null || fail "bad reply in $f"
    done
    assert_eq 40 "$(ls "$T"/storm-*.json | wc -l)" "pqshimctl replies"
    touch "$T/stop-churn"
    hwait h '^churned '
    local churned
    churned=$(grep '^churned ' "$T/h.out")
    assert_contains "$churned" " errors=0" "the host never failed"
    [ "$(awk '{print $2}' <<<"$churned")" -ge 1 ] || fail "no churn: $churned"
    # The host's numbers still add up.
    assert_eq "2 1 1 0" "$(pool_of "$sock")" "pool after the storm"
    assert_eq 2 "$(backends ctlstorm)" "server sessions"
    assert_eq 0 "$(field "$sock" 'd["pools"][0]["connect_errors_total"]')" "connect errors"
}

test_bad_requests_do_not_disturb_host() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 start_holder h ctlbad 2 1
    local sock=${HSOCK[h]} reply
    local -a garbage=(
        "00ff fe7b7d225c0a"                 # NUL first, bytes, quote, backslash
        "73746174757320657874726a0a"        # "status extra"
        "5354415455530a"                    # "STATUS"
        "ffff0a"
        "0a"                                # empty line
        "1b5b324a6865616c74680a"            # ESC[2Jhealth
    )
    local hex
    for hex in "${garbage[@]}"; do
        reply=$("$PYTHON" "$HELPERS/ctl_client.py" raw "$sock" "$hex")
        "$PYTHON" "$HELPERS/ctl_client.py" get - 'd["error"]' <<<"$reply" | grep -q "^unknown command '" ||
            fail "reply to $hex: $reply"
        assert_not_contains "$reply" $'\e' "no raw escape in the reply"
    done
    # CRLF and trailing spaces are fine.
    reply=$("$PYTHON" "$HELPERS/ctl_client.py" raw "$sock" "$(printf 'status \r\n' | od -An -tx1 | tr -d ' \n')")
    "$PYTHON" "$HELPERS/ctl_client.py" status - <<<"$reply" >/dev/null
    # 4095 bytes and a newline is one line; 5000 without one is too long.
    reply=$("$PYTHON" "$HELPERS/ctl_client.py" raw "$sock" "$(printf '61%.0s' $(seq 4095))0a")
    assert_contains "$reply" "unknown command 'aaaa" "longest line"
    reply=$("$PYTHON" "$HELPERS/ctl_client.py" raw "$sock" "$(printf '61%.0s' $(seq 5000))")
    assert_eq '{"error":"request longer than 4096 bytes"}' "$reply" "oversize"
    # A client that connects and says nothing gets an answer after 1 s; the
    # host keeps connecting meanwhile.
    "$PYTHON" "$HELPERS/ctl_client.py" halfopen "$sock" "$T/half-connected" >"$T/half.out" &
    local half=$!
    wait_until 10 test -e "$T/half-connected" || fail "half-open client never connected"
    hsend h connect
    hwait h '^connected '
    local took
    took=$(awk '/^connected /{print $2}' "$T/h.out")
    awk -v t="$took" 'BEGIN { exit !(t < 0.5) }' || fail "host connect took ${took}s during a half-open request"
    wait "$half"
    read -r took reply <"$T/half.out"
    awk -v t="$took" 'BEGIN { exit !(t >= 0.8 && t < 3) }' || fail "half-open reply after ${took}s"
    assert_eq '{"error":"no complete request line within 1000 ms"}' "$reply" "half-open reply"
    # Still served normally.
    jstatus "$sock"
    assert_eq "2 2 0 0" "$(pool_of "$sock")" "pool"
    assert_eq 2 "$(backends ctlbad)" "server sessions"
}

# ---- fork ---------------------------------------------------------------------------------------------

test_fork_gives_each_process_its_socket() {
    begin
    PQSHIM_POLICY=capped PQSHIM_CONTROL="$T/ctl-%p.sock" PQSHIM_LOG=$T/fork.log \
        shimmed "$PYTHON" "$HELPERS/ctl_fork.py" "$T/fork.out" "$T/stop" >"$T/fork.stdout" 2>&1 &
    local job=$!
    # Whatever happens, both processes end (the pids they wrote, and the job).
    trap "touch '$T/stop'; wait_until 10 gone $job || kill -9 $job \$(awk '/^(parent|child) /{print \$2}' '$T/fork.out' 2>/dev/null) 2>/dev/null; cleanup_holders" EXIT
    wait_until 20 eval '[ "$(grep -cE "^(parent|child) " "$T/fork.out" 2>/dev/null)" = 2 ]' ||
        fail "fork client: $(cat "$T/fork.out" "$T/fork.stdout" 2>/dev/null)"
    local parent child
    parent=$(awk '/^parent /{print $2}' "$T/fork.out")
    child=$(awk '/^child /{print $2}' "$T/fork.out")
    [ "$parent" != "$child" ] || fail "one pid"
    [ -S "$T/ctl-$parent.sock" ] || fail "no parent socket"
    [ -S "$T/ctl-$child.sock" ] || fail "no child socket"
    assert_eq 2 "$(ls "$T"/ctl-*.sock | wc -l)" "socket files"
    assert_eq "$parent" "$(field "$T/ctl-$parent.sock" 'd["pid"]')" "parent answers for itself"
    assert_eq "1 1 0 0" "$(pool_of "$T/ctl-$parent.sock")" "parent pool"
    assert_eq 1 "$(field "$T/ctl-$parent.sock" 'd["pools"][0]["reuses_total"]')" "parent reused"
    assert_eq "$child" "$(field "$T/ctl-$child.sock" 'd["pid"]')" "child answers for itself"
    assert_eq "1 1 0 0" "$(pool_of "$T/ctl-$child.sock")" "child pool"
    assert_eq 1 "$(field "$T/ctl-$child.sock" 'd["pools"][0]["connects_total"]')" "child connects"
    assert_eq 2 "$(backends ctlfork)" "server sessions"
    "$CTL" ls -D "$T" | sed -E 's/^ +//; s/  +/ /g' >"$T/ls.txt"
    assert_file_contains "$T/ls.txt" "$parent python3 capped no $T/ctl-$parent.sock " "ls lists the parent"
    assert_file_contains "$T/ls.txt" "$child python3 capped no $T/ctl-$child.sock " "ls lists the child"
    touch "$T/stop"
    wait "$job"
    assert_file_contains "$T/fork.out" "child exit 0" "child exited cleanly"
    [ ! -e "$T/ctl-$parent.sock" ] || fail "parent socket left behind"
    [ ! -e "$T/ctl-$child.sock" ] || fail "child socket left behind"
}

# ---- the socket's life ---------------------------------------------------------------------------------

test_socket_lifecycle() {
    begin
    # %u and %% expand too; the socket goes away at exit.
    PQSHIM_CONTROL="$T/u%u-%p-%%.sock" start_holder a ctllife 1 0
    assert_eq "$T/u$(id -u)-${HPID[a]}-%.sock" "${HSOCK[a]}" "expanded path"
    [ -S "${HSOCK[a]}" ] || fail "no socket"
    hsend a exit
    hwait a '^bye'
    wait_until 10 gone "${HPID[a]}" || fail "holder did not exit"
    [ ! -e "${HSOCK[a]}" ] || fail "socket left after exit"

    # Killed, a process leaves its socket behind: stale, refused, reported.
    PQSHIM_CONTROL="$T/fixed.sock" start_holder b ctllife 1 0
    kill -9 "${HPID[b]}"
    wait_until 10 gone "${HPID[b]}" || fail "not killed"
    [ -S "$T/fixed.sock" ] || fail "the killed process's socket vanished"
    local rc=0
    "$CTL" -s "$T/fixed.sock" status 2>"$T/err" || rc=$?
    assert_eq 2 "$rc" "exit status for a stale socket"
    assert_file_contains "$T/err" "$T/fixed.sock: nothing is listening" "message"
    # The next process at that path replaces the stale socket.
    PQSHIM_CONTROL="$T/fixed.sock" start_holder c ctllife 1 0
    assert_eq "${HPID[c]}" "$(field "$T/fixed.sock" 'd["pid"]')" "new owner of the path"
    kill -9 "${HPID[c]}"
    wait_until 10 gone "${HPID[c]}" || fail "not killed"
    # ls reports the stale socket and removes it.
    "$CTL" ls -D "$T" >"$T/ls.txt"
    assert_file_contains "$T/ls.txt" "stale socket $T/fixed.sock (no process listening): removed" "ls report"
    [ ! -e "$T/fixed.sock" ] || fail "stale socket not removed"
    rc=0
    "$CTL" -s "$T/fixed.sock" status 2>"$T/err" || rc=$?
    assert_eq 2 "$rc" "exit status for a missing socket"
    assert_file_contains "$T/err" "$T/fixed.sock: no such socket" "message"

    # A process removes only its own socket at exit, not whatever now has
    # its path (here: removed from under it, then taken by another).
    PQSHIM_CONTROL="$T/fixed.sock" start_holder d ctllife 1 0
    rm "$T/fixed.sock"
    PQSHIM_CONTROL="$T/fixed.sock" start_holder e ctllife 1 0
    stop_holder d
    gone "${HPID[d]}" || fail "holder d still running"
    [ -S "$T/fixed.sock" ] || fail "the exiting process removed the other one's socket"
    assert_eq "${HPID[e]}" "$(field "$T/fixed.sock" 'd["pid"]')" "the socket is still served"
    stop_holder e
    [ ! -e "$T/fixed.sock" ] || fail "socket left after exit"
}

test_existing_path_not_replaced() {
    begin
    # A regular file: left alone, logged, and the program works.
    echo keep >"$T/file.sock"
    PQSHIM_CONTROL=$T/file.sock PQSHIM_LOG=$T/file.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err"
    assert_eq 1 "$(cat "$T/out")" "psql result"
    assert_eq keep "$(cat "$T/file.sock")" "file untouched"
    assert_file_contains "$T/file.log" "error event=control_failed path=$T/file.sock detail=\"the path exists and is not a socket; not replacing it\"" "log line"
    # A symlink: the same.
    ln -s "$T/elsewhere" "$T/link.sock"
    PQSHIM_CONTROL=$T/link.sock PQSHIM_LOG=$T/link.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1
    assert_eq 1 "$(cat "$T/out")" "psql result"
    [ -L "$T/link.sock" ] && [ ! -e "$T/elsewhere" ] || fail "symlink replaced or followed"
    assert_file_contains "$T/link.log" "not a socket; not replacing it" "log line"
    # A live socket of another process: kept, and still that process's.
    PQSHIM_POLICY=capped PQSHIM_CONTROL=$T/live.sock start_holder h ctlexist 1 0
    PQSHIM_CONTROL=$T/live.sock PQSHIM_LOG=$T/live.log shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>&1
    assert_eq 1 "$(cat "$T/out")" "psql result"
    assert_file_contains "$T/live.log" "another live process serves this path" "log line"
    assert_eq "${HPID[h]}" "$(field "$T/live.sock" 'd["pid"]')" "the socket still belongs to the holder"
}

# ---- pqshimctl ----------------------------------------------------------------------------------------

test_pqshimctl_modes_and_exit_codes() {
    begin
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=3 PQSHIM_MAX_OVERFLOW=2 start_holder a ctlcli 3 1
    start_holder b ctlcli2 1 0
    local pa=${HPID[a]} pb=${HPID[b]} rc

    # ls: one line per process, here of this test's directory only (no
    # other process of the machine in the table).
    # (Columns are as wide as the widest process: compare with runs of
    # spaces squeezed.)
    "$CTL" ls -D "$T" | sed -E 's/^ +//; s/  +/ /g' >"$T/ls.txt"
    assert_eq "PID PROGRAM POLICY PAUSED SOCKET TARGETS" "$(head -n 1 "$T/ls.txt")" "ls header"
    assert_file_contains "$T/ls.txt" "$pa python3 capped no $T/ctl-$pa.sock $(TARGET_NAME) open=3 used=2 idle=1 waiting=0 cap=5" "ls line of a"
    assert_file_contains "$T/ls.txt" "$pb python3 null no $T/ctl-$pb.sock $(TARGET_NAME) open=1 used=1 idle=0 waiting=0 cap=-" "ls line of b"
    # Found through /proc (their sockets named by their environment), as
    # the test's processes are picked out by pid: whatever else runs on
    # the machine only adds entries.
    "$CTL" ls --json >"$T/ls.json"
    assert_eq "3 1" "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/ls.json" '" ".join(str(s["pools"][0][k]) for s in d if s["pid"] == '"$pa"' for k in ["open", "idle"])')" "ls --json"
    assert_eq 1 "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/ls.json" 'len([s for s in d if s["pid"] == '"$pb"'])')" "ls --json lists b once"

    # -p PID, readable and --json.
    "$CTL" -p "$pa" status >"$T/st.txt"
    assert_file_contains "$T/st.txt" "pid $pa  program python3  policy capped" "-p status"
    "$CTL" -p "$pa" --json status | "$PYTHON" "$HELPERS/ctl_client.py" status - >/dev/null
    "$CTL" --pid="$pb" --json status >"$T/stb.json"
    assert_eq "$pb" "$("$PYTHON" "$HELPERS/ctl_client.py" get "$T/stb.json" 'd["pid"]')" "--pid=PID"
    "$CTL" -p "$pa" help >"$T/help.txt"
    assert_file_contains "$T/help.txt" "dispose  close idle connections now" "help from the process"

    # metrics --all: one exposition, both processes, each family once.
    "$CTL" metrics --all -D "$T" >"$T/all.txt"
    "$PYTHON" "$HELPERS/ctl_client.py" prom "$T/all.txt" >/dev/null
    assert_eq 3 "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/all.txt" pqshim_connections_open pid="$pa")" "a's samples"
    assert_eq 1 "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/all.txt" pqshim_connections_open pid="$pb")" "b's samples"
    assert_eq 5 "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/all.txt" pqshim_cap pid="$pa")" "a's cap"
    assert_eq none "$("$PYTHON" "$HELPERS/ctl_client.py" prom-value "$T/all.txt" pqshim_cap pid="$pb")" "b has no cap"
    assert_eq 1 "$(grep -c '^# HELP pqshim_connections_open ' "$T/all.txt")" "one HELP"

    # top: two screens, then out.
    "$CTL" top -n 2 -i 0.1 -D "$T" >"$T/top.txt"
    assert_eq 2 "$(grep -o $'\e\\[2J' "$T/top.txt" | wc -l)" "screens drawn"
    assert_file_contains "$T/top.txt" "$pa  python3  capped" "a in top"
    assert_file_contains "$T/top.txt" "[############======............]   3/5 " "a's bar"
    assert_file_contains "$T/top.txt" "$pb  python3  null" "b in top"
    assert_file_contains "$T/top.txt" "open 1 (no cap)" "b without a bar"

    # The default socket: PQSHIM_CONTROL of this environment, without %p.
    ln -s "$T/ctl-$pa.sock" "$T/only.sock"
    PQSHIM_CONTROL=$T/only.sock "$CTL" --json status | "$PYTHON" "$HELPERS/ctl_client.py" status - >/dev/null

    # Exit codes: 2 for no such process, socket, or bad usage.
    local case
    for case in "-p 999999999 status|no such process: 999999999" \
                "-p 0 status|-p: invalid value" \
                "-s $T/none.sock status|$T/none.sock: no such socket" \
                "frobnicate|unknown command 'frobnicate'" \
                "--bogus status|unknown option '--bogus'" \
                "status health|one command at a time" \
                "-s $T/ctl-$pa.sock -p $pa status|choose one" \
                "ls -s $T/x.sock|-s and -p do not apply" \
                "status --all|--all goes with metrics only" \
                "ls -d $T/missing|cannot read directory $T/missing" \
                "|no command given"; do
        rc=0
        # shellcheck disable=SC2086
        env -u PQSHIM_CONTROL "$CTL" ${case%%|*} >"$T/out" 2>"$T/err" || rc=$?
        assert_eq 2 "$rc" "exit status of: ${case%%|*}"
        assert_file_contains "$T/err" "${case#*|}" "message of: ${case%%|*}"
    done
    rc=0
    PQSHIM_CONTROL="$T/ctl-%p.sock" "$CTL" status 2>"$T/err" || rc=$?
    assert_eq 2 "$rc" "%p in this environment without -p"
    assert_file_contains "$T/err" "choose one with -p PID" "message"
    # A live process without PQSHIM_CONTROL: named in the message.
    rc=0
    env -u PQSHIM_CONTROL "$CTL" -p $$ status 2>"$T/err" || rc=$?
    assert_eq 2 "$rc" "process without PQSHIM_CONTROL"
    assert_file_contains "$T/err" "process $$: no PQSHIM_CONTROL" "message"
    # ... unless this environment names one: then that pattern is used.
    rc=0
    PQSHIM_CONTROL="$T/other-%p.sock" "$CTL" -p $$ status 2>"$T/err" || rc=$?
    assert_eq 2 "$rc" "fallback pattern, no socket"
    assert_file_contains "$T/err" "process $$ ($T/other-$$.sock): no such socket" "message"

    # --help documents every command and mode.
    "$CTL" --help >"$T/usage.txt"
    local word
    for word in status metrics dispose pause resume health help " ls " " top " "metrics --all" \
                "--json" "-p, --pid" "-s, --socket" "-d, --dir" "-i, --interval" "-n, --iterations" \
                "Exit status"; do
        assert_file_contains "$T/usage.txt" "$word" "--help mentions $word"
    done
}

test_pqshimctl_top_terminal() {
    begin
    PQSHIM_POLICY=capped start_holder h ctltop 1 0
    local out
    out=$("$PYTHON" "$HELPERS/ctl_client.py" top-pty "$CTL" "$T")
    assert_eq $'q ok\nsigint ok' "$out" "q and SIGINT restore the terminal"
}

test_pqshimctl_bad_replies() {
    begin
    local out
    out=$("$PYTHON" "$HELPERS/ctl_client.py" fake "$CTL" "$T/fake.sock")
    assert_contains "$out" "ok " "pqshimctl against malformed, hostile and slow replies"
}

# ---- fuzzing the request handler ------------------------------------------------------------------------

# A short deterministic run: the libFuzzer build when `make fuzz` made one,
# otherwise the same target as a plain program fed a fixed set of inputs.
test_fuzz_request_deterministic() {
    local bin="$BUILD/fuzz/fuzz_request"
    if [ -x "$bin" ]; then
        "$bin" -runs=30000 -seed=1 -dict="$ROOT/tests/fuzz/request.dict" >"$T/fuzz.out" 2>&1 ||
            { tail -n 40 "$T/fuzz.out"; fail "fuzz_request found a failure"; }
        assert_file_contains "$T/fuzz.out" "Done 30000 runs" "fuzz run"
        return 0
    fi
    # The sources `make fuzz` links (see FUZZ_SRC in the Makefile).
    local f srcs=("$ROOT/tests/fuzz/fuzz_request.c")
    for f in "$ROOT"/shim/*.c; do
        case ${f##*/} in
            conn.c | hooks.c | real.c | dlsym.c | loader.c | gotpatch.c | lifecycle.c | lifecycle_open.c | lifecycle_async.c | init.c | retry.c | gate.c | gate_socket.c | settle.c | cancel.c | \
            target_resolve.c | view.c) ;;
            *) srcs+=("$f") ;;
        esac
    done
    ${CC:-cc} -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
        -DFUZZ_REPLAY_MAIN -I"$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)" \
        -I"$ROOT/shim" -o "$T/replay" "${srcs[@]}" -lpthread -lm
    "$PYTHON" "$HELPERS/ctl_bad_requests.py" "$T/inputs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$T/replay" <"$T/inputs" >"$T/replay.out" 2>&1 ||
        { tail -n 40 "$T/replay.out"; fail "replay found a failure"; }
    assert_eq "3007 inputs ok" "$(cat "$T/replay.out")" "replayed inputs"
}
