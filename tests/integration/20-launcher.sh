# shellcheck shell=bash
# The launcher, build/pqshim: options, validation, LD_PRELOAD, exec,
# locating the library, install and uninstall.

# launch LAUNCHER ARGS...: run a launcher. In sanitizer builds the runtimes
# must lead LD_PRELOAD; the launcher keeps them first and puts the shim
# right after them.
launch() {
    if [ -n "$SAN_PRELOAD" ]; then
        LD_PRELOAD="$SAN_PRELOAD${LD_PRELOAD:-}" "$@"
    else
        "$@"
    fi
}

# The LD_PRELOAD a launcher should produce for library LIB when the caller
# had EXISTING (after $SAN_PRELOAD, as launch() passes it): the library goes
# right after the leading sanitizer runtimes, the rest follows unchanged.
expected_preload() {  # LIB EXISTING
    local lead="" rest="" entry
    for entry in $SAN_PRELOAD; do
        case "$rest:${entry##*/}" in
            :libasan*|:libtsan*|:libubsan*) lead="${lead:+$lead }$entry" ;;
            *) rest="$rest$entry " ;;
        esac
    done
    rest="$rest$2"
    echo "${lead:+$lead:}$1${rest:+:$rest}"
}

test_help_lists_every_option() {
    local help rc=0
    help=$("$LAUNCHER" --help) || rc=$?
    assert_eq 0 "$rc" "--help exit status"
    local pair opt var
    for pair in policy:PQSHIM_POLICY log:PQSHIM_LOG log-level:PQSHIM_LOG_LEVEL \
        log-format:PQSHIM_LOG_FORMAT pool-size:PQSHIM_POOL_SIZE \
        max-overflow:PQSHIM_MAX_OVERFLOW pool-timeout:PQSHIM_POOL_TIMEOUT \
        reset:PQSHIM_RESET pre-ping:PQSHIM_PRE_PING recycle:PQSHIM_POOL_RECYCLE \
        idle-timeout:PQSHIM_IDLE_TIMEOUT retry-full:PQSHIM_RETRY_FULL \
        control:PQSHIM_CONTROL; do
        opt=${pair%%:*} var=${pair#*:}
        assert_contains "$help" "--$opt " "--help documents --$opt"
        assert_contains "$help" "[sets $var]" "--help names $var"
    done
    assert_contains "$help" "--lib PATH" "--help documents --lib"
    assert_contains "$help" "--version" "--help documents --version"
    assert_contains "$help" "Examples:" "--help has examples"
    # -h is the same; --version prints one line and exits 0.
    assert_eq "$help" "$("$LAUNCHER" -h)" "-h output"
    local version
    version=$("$LAUNCHER" --version)
    assert_contains "$version" "pqshim " "--version output"
    assert_eq 1 "$(echo "$version" | wc -l)" "--version lines"
}

# Every setting (pqshim --list-settings: the shim's table) has an option,
# refused with the same wording of what is accepted as the shim's own
# config_invalid line for that value.
test_every_shim_variable_has_an_option() {
    local help map var opt def accepted doc err rc n=0 env=()
    help=$("$LAUNCHER" --help)
    map=$(printf '%s\n' "$help" | awk '$1 ~ /^--/ { opt = $1 }
        /\[sets PQSHIM_/ { v = $0; sub(/.*\[sets /, "", v); sub(/\].*/, "", v); print v, opt }')
    "$LAUNCHER" --list-settings >"$T/settings"
    while IFS=$'\t' read -r var opt def accepted doc; do
        n=$((n + 1))
        [ -n "$doc" ] || fail "$var: no description in --list-settings"
        assert_eq "$opt" "$(printf '%s\n' "$map" | awk -v v="$var" '$1 == v { print $2 }')" \
            "the option --help names for $var"
        rc=0
        err=$("$LAUNCHER" "$opt" not-valid -- touch "$T/ran" 2>&1) || rc=$?
        assert_eq 2 "$rc" "exit status for $opt not-valid"
        assert_contains "$err" "($var): accepted: $accepted" "accepted values of $opt"
        env+=("$var=not-valid")
    done <"$T/settings"
    assert_ge 13 "$n" "settings in pqshim --list-settings"
    [ ! -e "$T/ran" ] || fail "a command ran despite a bad value"
    # The shim says the same, one line per variable.
    env "${env[@]}" LD_PRELOAD="$SHIM_PRELOAD" "$PSQL" -X -A -t \
        -c 'select 1' >"$T/out" 2>"$T/err" || fail "psql failed: $(cat "$T/err")"
    assert_eq 1 "$(cat "$T/out")" "psql output"
    while IFS=$'\t' read -r var opt def accepted doc; do
        assert_eq 1 "$(grep -cF " event=config_invalid variable=$var value=not-valid accepted=\"$accepted\" " "$T/err")" \
            "the shim's line for $var=not-valid"
    done <"$T/settings"
}

test_bad_values_refused() {
    local opt value accepted err rc form
    # option|value|part of the accepted text
    while IFS='|' read -r opt value accepted; do
        for form in separate joined; do
            rc=0
            if [ $form = separate ]; then
                err=$("$LAUNCHER" "--$opt" "$value" -- touch "$T/ran" 2>&1) || rc=$?
            else
                err=$("$LAUNCHER" "--$opt=$value" -- touch "$T/ran" 2>&1) || rc=$?
            fi
            assert_eq 2 "$rc" "exit status for --$opt '$value' ($form)"
            assert_eq 1 "$(printf '%s\n' "$err" | wc -l)" "message lines for --$opt '$value'"
            assert_contains "$err" "--$opt" "message names the option"
            assert_contains "$err" "'$value'" "message names the value"
            assert_contains "$err" "accepted: $accepted" "message says what is accepted"
            [ ! -e "$T/ran" ] || fail "the command ran despite --$opt '$value'"
        done
    done <<'EOF'
policy|pooled|null or capped
log|shim.log|stderr, syslog, none or an absolute file path
log|relative/dir/x.log|stderr, syslog, none or an absolute file path
log-level|verbose|error, warn, info or debug
log-format|xml|text or json
pool-size|-1|an integer from 0 to 10000
pool-size|10001|an integer from 0 to 10000
pool-size|5x|an integer from 0 to 10000
max-overflow|many|an integer from 0 to 10000
pool-timeout|-0.5|seconds from 0 to 86400, decimals allowed
pool-timeout|86401|seconds from 0 to 86400, decimals allowed
pool-timeout|inf|seconds from 0 to 86400, decimals allowed
reset|truncate|discard, rollback or none
pre-ping|sometimes|on, off or always
recycle|1h|seconds, 0 for never
idle-timeout|nan|seconds, 0 for never
retry-full|maybe|on or off
retry-full|always|on or off
control|ctl.sock|an absolute path
EOF
    # An empty value is a bad value too.
    rc=0; err=$("$LAUNCHER" --policy= true 2>&1) || rc=$?
    assert_eq 2 "$rc" "exit status for an empty --policy"
    assert_contains "$err" "--policy" "empty value message"

    # Values the shim accepts are accepted (any case, decimals, edges).
    rc=0
    launch "$LAUNCHER" --policy CAPPED --log none --log-level=DEBUG --log-format json \
        --pool-size 0 --max-overflow=10000 --pool-timeout 0.25 --reset rollback \
        --pre-ping yes --recycle 0 --idle-timeout=1.5 --retry-full=OFF \
        --control "/tmp/ctl.%p" \
        -- true || rc=$?
    assert_eq 0 "$rc" "valid values accepted"

    # Usage errors: unknown option, missing value, no command, no capacity.
    local args
    for args in "--frobnicate 1 true" "-x true" "--policy" "--policy capped" "" \
        "--pool-size 0 --max-overflow 0 true"; do
        rc=0
        # shellcheck disable=SC2086
        err=$("$LAUNCHER" $args 2>&1) || rc=$?
        assert_eq 2 "$rc" "exit status for: pqshim $args"
        assert_eq 1 "$(printf '%s\n' "$err" | wc -l)" "one message line for: pqshim $args"
        assert_contains "$err" "pqshim: " "message for: pqshim $args"
    done
}

test_preload_prepended_and_variables_set() {
    local lib out existing
    lib=$(realpath "$SHIM")
    # Two entries, space-separated: kept exactly as they were, after ours.
    existing="$TESTBIN/libnextprobe.so $TESTBIN/libnextprobe.so"
    out=$(LD_PRELOAD="$existing" launch "$LAUNCHER" --policy capped \
        --pool-size=3 --log "$T/shim.log" -- env)
    assert_contains "$out" "PQSHIM_POLICY=capped" "policy variable"
    assert_contains "$out" "PQSHIM_POOL_SIZE=3" "pool size variable"
    assert_contains "$out" "PQSHIM_LOG=$T/shim.log" "log variable"
    assert_eq "LD_PRELOAD=$(expected_preload "$lib" "$existing")" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "LD_PRELOAD with an existing value"

    # No LD_PRELOAD before: just ours, absolute.
    out=$(unset LD_PRELOAD; launch "$LAUNCHER" env)
    assert_eq "LD_PRELOAD=$(expected_preload "$lib" "")" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "LD_PRELOAD without an existing value"

    # Already present (under another spelling of the same file): unchanged.
    existing="$TESTBIN/libnextprobe.so:$BUILD/../$(basename "$BUILD")/libpqshim.so"
    out=$(LD_PRELOAD="$existing" launch "$LAUNCHER" -- env)
    assert_eq "LD_PRELOAD=${SAN_PRELOAD}$existing" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "LD_PRELOAD already holding the shim"

    # Variables already in the environment are kept unless overridden.
    out=$(PQSHIM_RESET=none PQSHIM_POLICY=null launch "$LAUNCHER" --policy capped env)
    assert_contains "$out" "PQSHIM_RESET=none" "inherited variable kept"
    assert_contains "$out" "PQSHIM_POLICY=capped" "option overrides the environment"

    # Options end at the first word that is not one: the command's own
    # options are left alone.
    # shellcheck disable=SC2016
    out=$(launch "$LAUNCHER" --policy capped sh -c 'echo "$0 $1"' --policy x)
    assert_eq "--policy x" "$out" "command arguments passed through"
    # shellcheck disable=SC2016
    out=$(launch "$LAUNCHER" -- sh -c 'echo "$PQSHIM_POLICY"')
    assert_eq "" "$out" "no variable set without its option"
}

test_psql_through_launcher() {
    local out
    out=$(launch "$LAUNCHER" -- "$PSQL" -X -A -t -c 'select 1' 2>"$T/stderr")
    assert_eq 1 "$out" "psql result"
    assert_file_contains "$T/stderr" " event=connect " "connect line"
    assert_file_contains "$T/stderr" " event=close " "close line"
    assert_file_contains "$T/stderr" "reason=finish" "close reason"

    # The same with the log in a file and the capped policy.
    out=$(launch "$LAUNCHER" --policy capped --log "$T/shim.log" -- \
        "$PSQL" -X -A -t -c 'select 2' 2>"$T/stderr2")
    assert_eq 2 "$out" "psql result (capped)"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connect lines in the file"
    assert_eq 0 "$(grep -c 'event=' "$T/stderr2" || true)" "no shim lines on stderr"
}

test_exit_status_preserved() {
    local rc=0
    launch "$LAUNCHER" -- sh -c 'exit 42' || rc=$?
    assert_eq 42 "$rc" "exit status of sh"
    rc=0
    echo 'select no_such_column;' >"$T/script.sql"
    launch "$LAUNCHER" --log "$T/shim.log" -- "$PSQL" -X -q -v ON_ERROR_STOP=1 \
        -f "$T/script.sql" 2>/dev/null || rc=$?
    assert_eq 3 "$rc" "exit status of a failing psql script"
    rc=0
    launch "$LAUNCHER" -- true || rc=$?
    assert_eq 0 "$rc" "exit status of true"
}

test_command_not_found_or_not_executable() {
    local rc=0 err
    err=$(launch "$LAUNCHER" -- no-such-command-pqshim 2>&1) || rc=$?
    assert_eq 127 "$rc" "command not found"
    assert_contains "$err" "no-such-command-pqshim: command not found" "not found message"
    rc=0
    err=$(launch "$LAUNCHER" -- "$T/missing/prog" 2>&1) || rc=$?
    assert_eq 127 "$rc" "missing path"
    printf 'not a program\n' >"$T/plain"
    chmod 644 "$T/plain"
    rc=0
    err=$(launch "$LAUNCHER" -- "$T/plain" 2>&1) || rc=$?
    assert_eq 126 "$rc" "not executable"
    assert_contains "$err" "$T/plain: cannot execute" "not executable message"
}

test_library_never_taken_from_cwd() {
    mkdir -p "$T/bin" "$T/cwd"
    cp "$LAUNCHER" "$T/bin/pqshim"
    cp "$SHIM" "$T/cwd/libpqshim.so"
    mkdir -p "$T/cwd/lib/pqshim"
    cp "$SHIM" "$T/cwd/lib/pqshim/libpqshim.so"
    local rc=0 err
    err=$(cd "$T/cwd" && launch "$T/bin/pqshim" -- env 2>&1) || rc=$?
    assert_eq 125 "$rc" "launcher without a library"
    assert_contains "$err" "cannot find libpqshim.so" "message"
    assert_contains "$err" "$T/bin/libpqshim.so" "message names where it looked"
    assert_contains "$err" "--lib" "message suggests --lib"
    assert_not_contains "$err" "LD_PRELOAD=" "the command did not run"
    assert_eq 1 "$(printf '%s\n' "$err" | wc -l)" "one message line"

    # Run through a relative path and a symlink: the library is still
    # found from the launcher's real location, by absolute path.
    local lib out
    lib=$(realpath "$SHIM")
    ln -s "$LAUNCHER" "$T/bin/pqshim-link"
    out=$(cd "$T/bin" && launch ./pqshim-link -- env)
    assert_eq "LD_PRELOAD=$(expected_preload "$lib" "")" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "through a symlink"

    # --lib with a relative path: made absolute.
    out=$(cd "$T/cwd" && launch "$T/bin/pqshim" --lib ./libpqshim.so -- env)
    assert_eq "LD_PRELOAD=$(expected_preload "$(realpath "$T/cwd/libpqshim.so")" "")" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "--lib relative"
    rc=0
    err=$(launch "$T/bin/pqshim" --lib "$T/nothing.so" -- env 2>&1) || rc=$?
    assert_eq 125 "$rc" "--lib missing file"
    assert_contains "$err" "$T/nothing.so" "--lib message"
}

test_install_and_uninstall() {
    local prefix="$T/prefix" out
    # Install what is already built: "-o all" keeps make from rebuilding it
    # (a sanitizer build directory needs its own flags).
    make -s -C "$ROOT" BUILD="$BUILD" PREFIX="$prefix" -o all install >"$T/make.out" 2>&1 \
        || { cat "$T/make.out"; fail "make install"; }
    [ -x "$prefix/bin/pqshim" ] || fail "launcher not installed"
    [ -f "$prefix/lib/pqshim/libpqshim.so" ] || fail "library not installed"

    out=$(cd "$T" && launch "$prefix/bin/pqshim" -- env)
    assert_eq "LD_PRELOAD=$(expected_preload "$(realpath "$prefix/lib/pqshim/libpqshim.so")" "")" \
        "$(echo "$out" | grep '^LD_PRELOAD=')" "installed launcher finds the installed library"
    out=$(launch "$prefix/bin/pqshim" --log "$T/shim.log" -- "$PSQL" -X -A -t -c 'select 1')
    assert_eq 1 "$out" "psql through the installed launcher"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connect line"

    make -s -C "$ROOT" BUILD="$BUILD" PREFIX="$prefix" uninstall >"$T/make.out" 2>&1 \
        || { cat "$T/make.out"; fail "make uninstall"; }
    [ ! -e "$prefix/bin/pqshim" ] || fail "launcher left after uninstall"
    [ ! -e "$prefix/lib/pqshim/libpqshim.so" ] || fail "library left after uninstall"
    [ ! -e "$prefix/lib/pqshim" ] || fail "library directory left after uninstall"
}
