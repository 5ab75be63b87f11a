# Modules that bind libpq in their own scope: a plugin linked to libpq and
# dlopen'ed with RTLD_DEEPBIND (as PHP loads its extensions) is intercepted,
# dlclose and a new load of it stay intercepted, and a process holding two
# different libpq copies has each served by its own code.

# The sanitizer runtimes refuse dlopen(RTLD_DEEPBIND): those cases cannot
# run under them.
need_deepbind() {
    [ -z "${TEST_SANITIZER:-}" ] ||
        { skip_test "$TEST_SANITIZER cannot run a dlopen with RTLD_DEEPBIND"; return 1; }
}

# drive POLICY ARGS...: the plugin driver through the shim, every event in
# $T/shim.log, its output in $T/out.
drive() {
    local policy=$1
    shift
    PQSHIM_POLICY=$policy PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        shimmed timeout -k 5 60 "$TESTBIN/deepbind" "$@" >"$T/out" 2>"$T/err" ||
        fail "deepbind $* exited with $?: $(cat "$T/out" "$T/err" | head -20)"
}

# lines_matching REGEX FILE
lines_matching() {
    local n
    n=$(grep -cE -- "$1" "$2" 2>/dev/null || true)
    echo "${n:-0}"
}

# no_warnings: nothing went wrong in the shim (a copy passed through would
# say so at warn level).
no_warnings() {
    assert_eq 0 "$(lines_matching ': (warn|error) ' "$T/shim.log")" \
        "warn and error lines: $(grep -E ': (warn|error) ' "$T/shim.log" | head -3)"
}

# A second libpq copy under its own soname and a copy of the plugin linked
# to it, in $T/copy. Skips without patchelf.
make_second_copy() {
    command -v patchelf >/dev/null 2>&1 ||
        { skip_test "patchelf not installed (make deps installs it)"; return 1; }
    local lib
    lib=$(ls /usr/lib/*/libpq.so.5 2>/dev/null | head -n 1)
    [ -n "$lib" ] || fail "no libpq.so.5 to copy"
    mkdir -p "$T/copy"
    cp "$lib" "$T/copy/libpq-copy.so.5"
    patchelf --set-soname libpq-copy.so.5 "$T/copy/libpq-copy.so.5"
    cp "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so"
    patchelf --replace-needed libpq.so.5 libpq-copy.so.5 "$T/copy/libpqmod2.so"
    patchelf --set-rpath "$T/copy" "$T/copy/libpqmod2.so"
}

test_deepbind_plugin_null_policy() {
    need_deepbind || return 0
    # Without the shim the plugin's calls go straight to libpq.
    "$TESTBIN/deepbind" -c 4 "$TESTBIN/libpqmod.so" >"$T/plain" 2>&1 ||
        fail "deepbind without the shim: $(cat "$T/plain")"
    assert_eq 4 "$(lines_matching 'connect_via=libpq\.so\.5 made_by=libpq\.so\.5$' "$T/plain")" \
        "without the shim, connects reach libpq directly"
    drive null -c 4 "$TESTBIN/libpqmod.so"
    assert_eq 4 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "connects through the shim, made by the plugin's libpq: $(head -3 "$T/out")"
    assert_eq 4 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 4 "$(count_events "$T/shim.log" close)" "close lines"
    assert_eq 4 "$(grep -oE 'backend=[0-9]+' "$T/out" | sort -u | wc -l)" "distinct backends"
    no_warnings
}

test_deepbind_plugin_capped_reuses() {
    need_deepbind || return 0
    drive capped -c 6 "$TESTBIN/libpqmod.so"
    assert_eq 6 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "connects through the shim: $(head -3 "$T/out")"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "server connections"
    assert_eq 6 "$(count_events "$T/shim.log" checkout)" "checkouts"
    assert_eq 1 "$(grep -oE 'backend=[0-9]+' "$T/out" | sort -u | wc -l)" "distinct backends"
    no_warnings
}

# A name without '/' reaches libc's dlopen from the caller (its RUNPATH
# and $ORIGIN are the caller's): the load is seen at the next dlsym.
test_deepbind_plugin_by_search_path() {
    need_deepbind || return 0
    LD_LIBRARY_PATH="$TESTBIN" drive null -c 2 libpqmod.so
    assert_eq 2 "$(lines_matching 'connect_via=libpqshim\.so' "$T/out")" \
        "connects through the shim: $(head -3 "$T/out")"
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "connect lines"
    no_warnings
}

test_deepbind_dlclose_and_reload() {
    need_deepbind || return 0
    # Three rounds: load, connect twice, dlclose; the next load maps the
    # plugin afresh and must be rewritten again.
    drive capped -r 3 -c 2 "$TESTBIN/libpqmod.so"
    assert_eq 3 "$(lines_matching '^round=' "$T/out")" "rounds"
    assert_eq 6 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "connects through the shim in every round: $(cat "$T/out")"
    assert_eq 6 "$(count_events "$T/shim.log" checkout)" "checkouts"
    # libpq stays loaded (the shim pins the copy it serves): the pool's
    # connection outlives the plugin and serves every round.
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "server connections"
    assert_eq 1 "$(count_events "$T/shim.log" close)" "close lines (at exit)"
    no_warnings
}

# Two copies, plain RTLD_LOCAL: the global scope would send the second
# copy's module to our hooks for the first copy.
test_two_libpq_copies_local() {
    make_second_copy || return 0
    drive capped -l -r 2 -c 3 "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so"
    # Without the shim each module uses its own copy.
    "$TESTBIN/deepbind" -l -c 1 "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so" >"$T/plain" 2>&1 ||
        fail "deepbind without the shim: $(cat "$T/plain")"
    assert_eq 1 "$(lines_matching 'made_by=libpq-copy\.so\.5$' "$T/plain")" "the copy works alone"
    assert_eq 6 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "the first module's connections, made by libpq.so.5: $(cat "$T/out")"
    assert_eq 6 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq-copy\.so\.5$' "$T/out")" \
        "the second module's connections, made by its own copy: $(cat "$T/out")"
    # One pool per copy: a connection is never handed to the other copy.
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "server connections (one per copy)"
    assert_eq 12 "$(count_events "$T/shim.log" checkout)" "checkouts"
    assert_eq 2 "$(count_events "$T/shim.log" close)" "close lines (at exit)"
    no_warnings
}

test_two_libpq_copies_deepbind() {
    need_deepbind || return 0
    make_second_copy || return 0
    drive null -c 2 "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so"
    assert_eq 2 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "the first module's connections: $(cat "$T/out")"
    assert_eq 2 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq-copy\.so\.5$' "$T/out")" \
        "the second module's connections: $(cat "$T/out")"
    assert_eq 4 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 4 "$(count_events "$T/shim.log" close)" "close lines"
    no_warnings
}

# A program that loads plugins but never libpq: nothing rewritten, no log.
test_plugins_without_libpq_untouched() {
    PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug shimmed \
        "$TESTBIN/deepbind" -l "$TESTBIN/libswiftstub.so" >"$T/out" 2>"$T/err" || true
    assert_contains "$(cat "$T/err")" "dlsym pqmod_run" "the driver found no plugin entry point"
    [ ! -s "$T/shim.log" ] || fail "the shim logged: $(head -3 "$T/shim.log")"
}

# A module linked at program start to the second copy, in a program linked
# to libpq.so.5 as well, binds through the global scope, where libpq.so.5
# comes first: without the shim every call of the module goes there. With
# the shim its connects must go there too (not to its own DT_NEEDED copy),
# or the module would use one copy's functions on the other's connections.
# The program calls the plugin directly: no dlopen, no dlsym.
test_second_copy_linked_at_start() {
    make_second_copy || return 0
    printf 'int pqmod_run(const char *, int);\nint main(void) { return pqmod_run("", 3); }\n' >"$T/direct.c"
    cc -o "$T/direct" "$T/direct.c" -L"$T/copy" -l:libpqmod2.so -Wl,-rpath,"$T/copy" \
        -Wl,--no-as-needed -lpq 2>"$T/cc.err" || fail "cc: $(cat "$T/cc.err")"
    # (A sanitizer build of the plugin needs its runtime preloaded.)
    LD_PRELOAD="$SAN_PRELOAD" "$T/direct" >"$T/plain" 2>&1 || fail "without the shim: $(cat "$T/plain")"
    assert_eq 3 "$(lines_matching 'connect_via=libpq\.so\.5 made_by=libpq\.so\.5$' "$T/plain")" \
        "without the shim the module's calls reach the global scope's libpq.so.5"
    PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug shimmed "$T/direct" >"$T/out" 2>"$T/err" ||
        fail "direct exited with $?: $(cat "$T/out" "$T/err")"
    assert_eq 3 "$(lines_matching 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out")" \
        "every connect through the shim, made by the copy the module's other calls reach: $(cat "$T/out")"
    assert_eq 3 "$(count_events "$T/shim.log" connect)" "connect lines"
    no_warnings
}
