# shellcheck shell=bash
# The deployment recipes of examples/ (installed in
# /usr/share/doc/pqshim/examples): the shell profile snippet in a real
# interactive bash, the node_exporter textfile collector against a shimmed
# process with a control socket, the systemd units through systemd-analyze,
# and the settings of the systemd drop-in and the Dockerfile through the
# shim. Not tested here: starting a unit (no running systemd) and building
# the image (no Docker engine).

EX="$ROOT/examples"


# check_exposition FILE: the Prometheus text format, strictly (every line a
# HELP, TYPE or sample; each family's HELP and TYPE once, before its
# samples; a family's lines together; no duplicate series).
check_exposition() {
    "$PYTHON" "$HELPERS/check_exposition.py" "$1"
}

# prom_value FILE NAME PID: the value of NAME's sample for process PID.
prom_value() {
    sed -n "s/^$2{pid=\"$3\",[^}]*} //p" "$1"
}

# ---- shell profile ---------------------------------------------------------------

# ~/.bashrc sources examples/pqshim-profile.sh; in an interactive bash,
# "psql" is then the alias, and its connection is logged to ~/.pqshim.log,
# not onto the screen.
test_profile_alias_in_interactive_bash() {
    mkdir -p "$T/bin" "$T/home"
    ln -s "$LAUNCHER" "$T/bin/pqshim"
    ln -s "$PSQL" "$T/bin/psql"
    printf 'PATH=%s:$PATH\n. %s\n' "$T/bin" "$EX/pqshim-profile.sh" >"$T/home/.bashrc"
    # (Sanitizer runtimes must lead LD_PRELOAD, as for any launcher run.)
    printf '%s\n' "type psql" "psql -X -A -t -c 'select 40 + 2'" "exit" |
        env -u PQSHIM_LOG HOME="$T/home" LD_PRELOAD="$SAN_PRELOAD" \
            bash --rcfile "$T/home/.bashrc" -i >"$T/out" 2>"$T/err"
    assert_file_contains "$T/out" "psql is aliased to \`pqshim -- psql'" "the alias"
    assert_eq 42 "$(sed -n '/^42$/p' "$T/out")" "psql's answer"
    assert_eq 1 "$(count_events "$T/home/.pqshim.log" connect)" "connect line in ~/.pqshim.log"
    assert_eq 1 "$(count_events "$T/home/.pqshim.log" close)" "close line in ~/.pqshim.log"
    assert_not_contains "$(cat "$T/out" "$T/err")" "event=" "shim lines on the screen"
    [ "$(stat -c %a "$T/home/.pqshim.log")" = 600 ] || fail "~/.pqshim.log is not mode 0600"

    # An existing PQSHIM_LOG is kept.
    printf '%s\n' "psql -X -A -t -c 'select 1'" "exit" |
        env PQSHIM_LOG="$T/mine.log" HOME="$T/home" LD_PRELOAD="$SAN_PRELOAD" \
            bash --rcfile "$T/home/.bashrc" -i >/dev/null 2>&1
    assert_eq 1 "$(count_events "$T/mine.log" connect)" "PQSHIM_LOG kept"
    assert_eq 1 "$(count_events "$T/home/.pqshim.log" connect)" "nothing more in ~/.pqshim.log"

    # Without pqshim installed the snippet does nothing: psql stays psql.
    printf 'PATH=%s\n. %s\n' "$T/nobin" "$EX/pqshim-profile.sh" >"$T/home/.bashrc2"
    printf '%s\n' "alias psql 2>&1 || echo no-alias" "exit" |
        HOME="$T/home" bash --rcfile "$T/home/.bashrc2" -i >"$T/out2" 2>/dev/null
    assert_file_contains "$T/out2" "no-alias" "no alias without pqshim"
}

# ---- node_exporter textfile collector ---------------------------------------------

# The command of examples/pqshim-metrics.service, pointed at a test
# directory, writes a valid exposition with the samples of a running
# shimmed psql (found through /proc, as the timer finds services), by a
# rename (no partial file, no temporary left); and the next run replaces
# it.
test_textfile_collector() {
    local cmd sock pid
    cmd=$(sed -n 's/^ExecStart=//p' "$EX/pqshim-metrics.service")
    assert_contains "$cmd" "metrics --all" "the unit runs pqshimctl metrics --all"
    cmd=${cmd//\/var\/lib\/node_exporter\/textfile/$T/textfile}
    cmd=${cmd//\/usr\/bin\/pqshimctl/$BUILD/pqshimctl}
    # Hermetic: only this test's sockets, not every process of the machine.
    cmd=${cmd//metrics --all/metrics --all -D $T}
    assert_contains "$cmd" "metrics --all -D $T" "the command looks in the test's directory only"
    mkdir -p "$T/textfile"

    # A shimmed psql that holds its connection until its input ends.
    mkfifo "$T/in"
    PQSHIM_POLICY=capped PQSHIM_CONTROL="$T/ctl-%p.sock" PQSHIM_LOG="$T/shim.log" \
        shimmed "$PSQL" -X -q <"$T/in" >"$T/psql.out" 2>&1 &
    track_pid $!
    exec 3>"$T/in"
    on_exit "exec 3>&-"
    wait_until 15 eval 'ls "$T"/ctl-*.sock >/dev/null 2>&1' || fail "no control socket"
    sock=$(ls "$T"/ctl-*.sock)
    pid=${sock##*/ctl-}
    pid=${pid%.sock}

    eval "$cmd" 2>"$T/collector.err" || { cat "$T/collector.err"; fail "the collector command failed"; }
    [ -f "$T/textfile/pqshim.prom" ] || fail "no pqshim.prom"
    [ -z "$(ls "$T/textfile" | grep -v '^pqshim\.prom$')" ] || fail "left behind: $(ls "$T/textfile")"
    check_exposition "$T/textfile/pqshim.prom"
    assert_eq 1 "$(prom_value "$T/textfile/pqshim.prom" pqshim_connections_open "$pid")" "open connections"
    assert_eq 1 "$(prom_value "$T/textfile/pqshim.prom" pqshim_connections_checked_out "$pid")" "checked out"
    assert_eq 15 "$(prom_value "$T/textfile/pqshim.prom" pqshim_cap "$pid")" "cap (5 + 10)"
    assert_eq 1 "$(prom_value "$T/textfile/pqshim.prom" pqshim_connects_total "$pid")" "connects"

    # psql ends: the next run no longer has its samples.
    exec 3>&-
    wait_until 15 eval '[ ! -e "$sock" ]' || fail "psql did not exit"
    eval "$cmd" 2>"$T/collector.err" || { cat "$T/collector.err"; fail "the second run failed"; }
    check_exposition "$T/textfile/pqshim.prom"
    assert_eq "" "$(prom_value "$T/textfile/pqshim.prom" pqshim_connections_open "$pid")" "samples of an exited process"
    [ -z "$(ls "$T/textfile" | grep -v '^pqshim\.prom$')" ] || fail "left behind: $(ls "$T/textfile")"
}

# ---- systemd -------------------------------------------------------------------------

# systemd-analyze verify (offline: no running systemd needed) finds nothing
# to say about the drop-in (on a stand-in app.service), the metrics service
# and its timer; a broken copy of the drop-in is reported, so it was read.
test_systemd_examples_verify() {
    command -v systemd-analyze >/dev/null 2>&1 || { skip_test "systemd-analyze not installed"; return 0; }
    local u="$T/units" out rc=0
    mkdir -p "$u/app.service.d"
    printf '[Unit]\nDescription=an application using libpq\n\n[Service]\nExecStart=%s -X -c "select 1"\n' \
        "$PSQL" >"$u/app.service"
    cp "$EX/systemd-dropin-pqshim.conf" "$u/app.service.d/pqshim.conf"
    sed "s|/usr/bin/pqshimctl|$BUILD/pqshimctl|g" "$EX/pqshim-metrics.service" >"$u/pqshim-metrics.service"
    cp "$EX/pqshim-metrics.timer" "$u/"
    out=$(cd "$u" && SYSTEMD_UNIT_PATH="$u:" systemd-analyze verify \
        app.service pqshim-metrics.service pqshim-metrics.timer 2>&1) || rc=$?
    assert_eq 0 "$rc" "systemd-analyze verify exit status ($out)"
    assert_not_contains "$out" "$u" "systemd-analyze verify complaints"

    # The same with a misspelt key in the drop-in: reported.
    sed 's/^Environment=PQSHIM_POOL_RECYCLE/Enviroment=PQSHIM_POOL_RECYCLE/' \
        "$EX/systemd-dropin-pqshim.conf" >"$u/app.service.d/pqshim.conf"
    out=$(cd "$u" && SYSTEMD_UNIT_PATH="$u:" systemd-analyze verify app.service 2>&1) || true
    assert_contains "$out" "pqshim.conf" "the drop-in is read"
}

# Every PQSHIM_* setting of the drop-in (systemd's Environment= syntax:
# space-separated assignments, %% for %) and of the Dockerfile (ENV) is
# one the shim accepts, and a psql run with them goes through the shim.
test_example_settings_accepted() {
    "$PYTHON" "$HELPERS/recipe_settings.py" "$EX/systemd-dropin-pqshim.conf" "$EX/Dockerfile" >"$T/settings"
    local where setting n=0
    declare -A env_dropin=() env_docker=()
    while read -r where setting; do
        case "$where" in
            dropin) env_dropin[${setting%%=*}]=${setting#*=} ;;
            docker) env_docker[${setting%%=*}]=${setting#*=} ;;
        esac
        n=$((n + 1))
    done <"$T/settings"
    assert_ge 8 "$n" "settings found"
    [[ "${env_dropin[LD_PRELOAD]}" =~ ^/usr/lib/[a-z0-9_]+-linux-gnu[a-z]*/pqshim/libpqshim\.so$ ]] ||
        fail "the drop-in's LD_PRELOAD: ${env_dropin[LD_PRELOAD]}"
    assert_eq "/run/app/pqshim-%p.sock" "${env_dropin[PQSHIM_CONTROL]}" "the drop-in's control socket"

    local kind var
    for kind in dropin docker; do
        local -n vars="env_$kind"
        local args=()
        for var in "${!vars[@]}"; do
            case "$var" in
                PQSHIM_CONTROL) args+=("$var=$T/ctl-%p.sock") ;;  # /run/app is the service's
                PQSHIM_*) args+=("$var=${vars[$var]}") ;;
            esac
        done
        assert_ge 3 "${#args[@]}" "$kind: PQSHIM_* settings"
        out=$(export "${args[@]}" PQSHIM_LOG="$T/$kind.log"; shimmed "$PSQL" -X -A -t -c 'select 1')
        assert_eq 1 "$out" "$kind: psql with the recipe's settings"
        assert_eq 0 "$(count_events "$T/$kind.log" config_invalid)" "$kind: invalid settings"
        assert_eq 0 "$(count_events "$T/$kind.log" config_unknown)" "$kind: unknown settings"
        assert_eq 1 "$(count_events "$T/$kind.log" connect)" "$kind: connect line"
        unset -n vars
    done
}
