# shellcheck shell=bash
# Packaging and documentation: the manual pages cover every variable the
# shim reads, every launcher option and every pqshimctl command and column;
# the README and the guides in doc/ link only to what exists; one version
# everywhere; make man passes; the Debian package builds, installs, works,
# and removes cleanly.

# man_headings FILE [SECTION]: the heading line of every .TP entry (of one
# section), as plain text: macro, fonts, quotes and escapes removed.
man_headings() {
    "$PYTHON" "$HELPERS/man_headings.py" "$@"
}

# The settings the shim parses, from its table (shim/settings.def) as the
# launcher lists them: variable, option, default, accepted, description
# (tab-separated).
shim_settings() {
    "$LAUNCHER" --list-settings
}

# ---- documentation drift ------------------------------------------------------------

# Every setting has an entry in pqshim(7)'s ENVIRONMENT (the one reference:
# README.md and doc/ link to it); every entry there is a variable the shim
# reads; each entry names what the setting accepts (its words and bounds)
# and its default.
test_every_variable_documented() {
    local vars var n=0
    shim_settings >"$T/settings"
    vars=$(cut -f1 "$T/settings")
    man_headings "$ROOT/man/pqshim.7" ENVIRONMENT >"$T/env-headings"
    for var in $vars; do
        n=$((n + 1))
        grep -qx "$var" "$T/env-headings" || fail "$var has no entry in man/pqshim.7 ENVIRONMENT"
    done
    assert_ge 13 "$n" "settings in pqshim --list-settings"
    # No entry for a variable the shim does not read.
    while IFS= read -r var; do
        printf '%s\n' "$vars" | grep -qx -- "$var" ||
            fail "man/pqshim.7 documents $var, which the shim does not parse"
    done <"$T/env-headings"
    # What each variable accepts, as the table says it, and its default
    # appear in its entry.
    "$PYTHON" "$HELPERS/check_man_settings.py" "$T/settings" "$ROOT/man/pqshim.7"
}

# Every log event and close reason the shim writes is in pqshim(7)'s LOG
# LINES, and every event listed there is one the shim writes.
test_every_log_event_in_man() {
    "$PYTHON" "$HELPERS/check_man_log_events.py" "$ROOT/shim" "$ROOT/man/pqshim.7"
}

# Every option in the launcher's --help has an entry in pqshim(1)'s OPTIONS,
# and every entry there is in --help.
test_every_launcher_option_in_man() {
    local help opts opt n=0
    help=$("$LAUNCHER" --help)
    opts=$(printf '%s\n' "$help" | sed -n 's/^  \(-[A-Za-z], \)\{0,1\}--\([a-z][a-z-]*\).*/\2/p' | sort -u)
    man_headings "$ROOT/man/pqshim.1" OPTIONS | grep -o -- '--[a-z][a-z-]*' | sed 's/^--//' | sort -u \
        >"$T/man-opts"
    for opt in $opts; do
        n=$((n + 1))
        grep -qx -- "$opt" "$T/man-opts" || fail "--$opt (pqshim --help) has no entry in man/pqshim.1 OPTIONS"
    done
    assert_ge 16 "$n" "options in pqshim --help"
    while IFS= read -r opt; do
        printf '%s\n' "$opts" | grep -qx -- "$opt" ||
            fail "man/pqshim.1 documents --$opt, which pqshim --help does not list"
    done <"$T/man-opts"
    # The exit statuses --help names.
    local code
    for code in 2 125 126 127; do
        man_headings "$ROOT/man/pqshim.1" "EXIT STATUS" | grep -qx "$code" ||
            fail "exit status $code is not in man/pqshim.1"
        assert_contains "$help" "$code" "--help names exit status $code"
    done
}

# Every pqshimctl command (in its --help, and the control protocol's list
# of commands), option, output column and exit status is in pqshimctl(1).
test_every_pqshimctl_command_in_man() {
    local help cmds cmd page="$ROOT/man/pqshimctl.1" n=0
    help=$("$BUILD/pqshimctl" --help)
    cmds=$( {
        printf '%s\n' "$help" | sed -n '/^Commands for one process:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p'
        printf '%s\n' "$help" | sed -n '/^Every shimmed process/,/^Processes/s/^  \([a-z][a-z -]*[a-z]\)  .*/\1/p'
        sed -n 's/^#define CONTROL_CMD_[A-Z]* *"\([a-z]*\)".*/\1/p' "$ROOT/shim/control_protocol.h"
    } | sort -u)
    man_headings "$page" >"$T/headings"
    while IFS= read -r cmd; do
        [ -n "$cmd" ] || continue
        n=$((n + 1))
        grep -qE -- "^$cmd(, | \(|$)" "$T/headings" ||
            fail "pqshimctl command '$cmd' has no entry in man/pqshimctl.1"
    done <<<"$cmds"
    assert_ge 10 "$n" "pqshimctl commands"
    # Options: every long option of --help has an entry.
    local opt
    for opt in $(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z]*' | sort -u); do
        grep -qE -- "(^|, )$opt( |$)" "$T/headings" || fail "pqshimctl $opt has no entry in man/pqshimctl.1"
    done
    # Output columns: the headers of every table pqshimctl prints, each an
    # entry of its own or named in bold in the command's entry.
    local col
    while IFS= read -r col; do
        grep -qxF -- "$col" "$T/headings" ||
            grep -qE -- "^\.B ([A-Za-z_ ]+ )?$col( [A-Za-z_ ]+)?( ;)?$" "$page" ||
            fail "pqshimctl column '$col' is not in man/pqshimctl.1"
    done < <(cat "$ROOT"/tools/ctl/*.c | tr '\n' ' ' | grep -o '\.head = {[^}]*}' | grep -o '"[^"]*"' | tr -d '"')
    # Exit statuses.
    local code
    for code in 0 1 2; do
        man_headings "$page" "EXIT STATUS" | grep -qx "$code" || fail "exit status $code is not in man/pqshimctl.1"
    done
}

# Every relative link in README.md, HACKING.md and doc/*.md leads to a file
# that exists and, with a #fragment, to a heading of that file (GitHub's
# anchors); the guides pqshim(7) names under FILES are the files in doc/;
# the generated tables keep the markers their tools rewrite.
test_doc_links_resolve() {
    "$PYTHON" - "$ROOT" <<'EOF'
import glob, os, re, sys
root = sys.argv[1]
def anchors(path):
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"#+ +(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out
docs = [os.path.join(root, f) for f in ("README.md", "HACKING.md")] + \
    sorted(glob.glob(os.path.join(root, "doc", "*.md")))
bad, n = [], 0
for doc in docs:
    name = os.path.relpath(doc, root)
    text = re.sub(r"```.*?```", "", open(doc, encoding="utf-8").read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        n += 1
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.isfile(dest):
            bad.append("%s: link to %s: no such file" % (name, target))
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append("%s: link to %s: no such heading" % (name, target))
if n < 20:
    bad.append("only %d relative links found" % n)
page = open(os.path.join(root, "man", "pqshim.7")).read()
files = page.split("\n.SH FILES\n", 1)[1].split("\n.SH ", 1)[0]
named = set(re.findall(r"^\.I ([a-z]+\.md)", files, flags=re.M))
present = {os.path.basename(p) for p in glob.glob(os.path.join(root, "doc", "*.md"))}
bad += ["man/pqshim.7 FILES names %s, which is not in doc/" % f for f in sorted(named - present)]
bad += ["doc/%s is not named in man/pqshim.7 FILES" % f for f in sorted(present - named)]
for f, marker in (("doc/compatibility.md", "compat-matrix"), ("doc/benchmarks.md", "bench")):
    text = open(os.path.join(root, f), encoding="utf-8").read()
    for end in ("begin", "end"):
        if "\n<!-- %s:%s -->\n" % (marker, end) not in text:
            bad.append("%s lacks the <!-- %s:%s --> marker its tool rewrites" % (f, marker, end))
if bad:
    sys.exit("\n".join(bad))
print("%d links in %d files" % (n, len(docs)))
EOF
}

# ---- version ---------------------------------------------------------------------------

test_version_agrees() {
    local version
    version=$(cat "$ROOT/VERSION")
    [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "VERSION is not X.Y.Z: '$version'"
    assert_eq "pqshim ($version)" "$(head -n 1 "$ROOT/debian/changelog" | grep -o '^pqshim ([^)]*)')" \
        "debian/changelog's newest entry"
    if command -v dpkg-parsechangelog >/dev/null 2>&1; then
        assert_eq "$version" "$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)" \
            "dpkg-parsechangelog"
    fi
    assert_eq "pqshim $version" "$("$LAUNCHER" --version)" "pqshim --version"
    assert_eq "pqshim $version" "$("$LAUNCHER" -V)" "pqshim -V"
    assert_eq "pqshimctl $version" "$("$BUILD/pqshimctl" --version)" "pqshimctl --version"
    # The sources hold no version of their own.
    local stray
    stray=$(grep -nE '"[0-9]+\.[0-9]+\.[0-9]+"' "$ROOT"/tools/pqshim.c "$ROOT"/tools/ctl/*.[ch] \
        "$ROOT"/shim/*.c "$ROOT"/shim/*.h || true)
    [ -z "$stray" ] || fail "a version string outside VERSION: $stray"
    grep -q '@VERSION@' "$ROOT/man/pqshim.1" || fail "man/pqshim.1 does not take its version from VERSION"
}

# make man: every page builds and renders with no groff (or mandoc, or
# man --warnings) complaint, and says the version.
test_make_man() {
    local out rc=0 page
    out=$(make -s -C "$ROOT" BUILD="$T/build" man 2>&1) || rc=$?
    [ "$rc" = 0 ] || { echo "$out"; fail "make man failed"; }
    for page in pqshim.1 pqshimctl.1 pqshim.7; do
        [ -s "$T/build/man/$page.txt" ] || fail "no rendering of $page"
        assert_file_contains "$T/build/man/$page.txt" "pqshim $(cat "$ROOT/VERSION")" "$page footer"
        assert_not_contains "$(cat "$T/build/man/$page")" "@VERSION@" "$page version substituted"
    done
    assert_file_contains "$T/build/man/pqshim.7.txt" "PQSHIM_POOL_TIMEOUT" "pqshim(7) rendered"
    # A page with a mistake fails.
    mkdir -p "$T/bad/man"
    cp "$ROOT/Makefile" "$ROOT/VERSION" "$T/bad/"
    printf '.TH BAD 1 2026-01-01 "pqshim @VERSION@"\n.SH NAME\nbad \\- bad\n.XX oops\n' >"$T/bad/man/bad.1"
    rc=0
    out=$(make -s -C "$T/bad" BUILD="$T/bad/build" man 2>&1) || rc=$?
    [ "$rc" != 0 ] || fail "make man passed a page with an unknown macro"
    assert_contains "$out" "XX" "make man names the problem"
}

# make install puts the manual pages under PREFIX/share/man (MANDIR), where
# man finds them; make uninstall removes them with the rest.
test_install_installs_man_pages() {
    local prefix="$T/prefix" page
    # "-o all": install what is built (a sanitizer build needs its own flags).
    make -s -C "$ROOT" BUILD="$BUILD" PREFIX="$prefix" -o all install >"$T/make.out" 2>&1 \
        || { cat "$T/make.out"; fail "make install"; }
    for page in man1/pqshim.1 man1/pqshimctl.1 man7/pqshim.7; do
        [ -f "$prefix/share/man/$page" ] || fail "$page not installed"
        assert_not_contains "$(cat "$prefix/share/man/$page")" "@VERSION@" "installed $page has its version"
    done
    if command -v man >/dev/null 2>&1; then
        assert_eq "$prefix/share/man/man7/pqshim.7" "$(MANPATH="$prefix/share/man" man -w 7 pqshim)" \
            "man finds the installed page"
    fi
    make -s -C "$ROOT" BUILD="$BUILD" PREFIX="$prefix" uninstall >"$T/make.out" 2>&1 \
        || { cat "$T/make.out"; fail "make uninstall"; }
    [ -z "$(find "$prefix" -type f)" ] || fail "left after make uninstall: $(find "$prefix" -type f)"
}

# The modules call each other downwards only: the graph read from the
# objects of this build has no cycle, and the check names one when there
# is (two objects calling each other).
test_module_graph_has_no_cycle() {
    local out
    out=$("$ROOT/tools/callgraph.sh" -v "$BUILD/obj") || { echo "$out"; fail "callgraph of $BUILD/obj"; }
    assert_contains "$out" "no cycle" "callgraph verdict"
    assert_contains "$out" "layer 1:" "callgraph layers"
    mkdir -p "$T/cycle"
    printf 'int low(void);\nint high(void) { return low(); }\n' >"$T/cycle/high.c"
    printf 'int high(void);\nint low(void) { return high() + 1; }\n' >"$T/cycle/low.c"
    printf 'int high(void);\nint top(void) { return high(); }\n' >"$T/cycle/top.c"
    local f
    for f in high low top; do
        ${CC:-cc} -c -o "$T/cycle/$f.o" "$T/cycle/$f.c" || fail "compile $f.c"
    done
    local rc=0
    out=$("$ROOT/tools/callgraph.sh" "$T/cycle") || rc=$?
    assert_eq 1 "$rc" "callgraph exit status on a cycle"
    assert_contains "$out" "high -> low (low)" "the cycle's first edge"
    assert_contains "$out" "low -> high (high)" "the cycle's second edge"
    assert_not_contains "$out" "top ->" "a module above the cycle"
}

# ---- the Debian package -----------------------------------------------------------

# dpkg ARGS...: dpkg, waiting while another package manager of the machine
# (apt-get of another user, say) holds dpkg's lock, at most 10 minutes;
# dpkg itself fails at once on a held lock.
dpkg_when_free() {
    local deadline=$(( $(date +%s) + 600 )) out rc
    while :; do
        rc=0
        out=$(dpkg "$@" 2>&1) || rc=$?
        if [ "$rc" != 0 ] && [[ "$out" == *"locked by another process"* ]] &&
            [ "$(date +%s)" -lt "$deadline" ]; then
            sleep 1
            continue
        fi
        printf '%s\n' "$out"
        return "$rc"
    done
}

# Build the package from a copy of the tree (make deb), install it, run psql
# through the installed launcher, read the installed manual pages, then
# remove it and check nothing is left. Root only, plain build only (the
# package is built with the distribution's flags, not a sanitizer's).
test_debian_package() {
    [ -z "${TEST_SANITIZER:-}" ] || { skip_test "runs in the plain pass only, not under $TEST_SANITIZER"; return 0; }
    [ "$(id -u)" = 0 ] || { skip_test "needs root to install a package"; return 0; }
    command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1 ||
        { skip_test "dpkg-buildpackage or debhelper missing (apt-get install dpkg-dev debhelper)"; return 0; }
    # One package test on the host at a time (a lock on dpkg's directory:
    # dpkg itself locks files in it, never the directory); never replace a
    # pqshim that someone installed.
    exec 9</var/lib/dpkg
    flock -w 900 9 || fail "another package test held the lock for 15 minutes"
    if dpkg-query -W -f '${Status}' pqshim 2>/dev/null | grep -q 'install ok'; then
        skip_test "a pqshim package is already installed here: not replacing it"
        return 0
    fi

    local version multiarch t0 deb
    version=$(cat "$ROOT/VERSION")
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    # make deb copies the tree into $T/build/deb: the working tree is only read.
    t0=$(date +%s%N)
    make -s -C "$ROOT" BUILD="$T/build" deb >"$T/make-deb.out" 2>&1 ||
        { cat "$T/make-deb.out"; fail "make deb"; }
    echo "make deb: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    deb=$(ls "$T"/build/pqshim_"$version"_*.deb)
    assert_file_contains "$T/make-deb.out" "$deb" "make deb reports the .deb"
    [ ! -e "$T/build/deb" ] || fail "make deb left its work directory"
    [ ! -e "$ROOT/debian/pqshim" ] && [ ! -e "$ROOT/debian/files" ] ||
        fail "make deb wrote into the working tree"
    [ -z "$(ls "$ROOT"/../pqshim_* 2>/dev/null)" ] || fail "a build product outside the tree"
    assert_eq "$version" "$(dpkg-deb -f "$deb" Version)" "package version"
    assert_contains "$(dpkg-deb -f "$deb" Depends)" "libpq5" "Depends"
    dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$T/contents"
    local f
    for f in /usr/bin/pqshim /usr/bin/pqshimctl "/usr/lib/$multiarch/pqshim/libpqshim.so" \
        /usr/share/man/man1/pqshim.1.gz /usr/share/man/man1/pqshimctl.1.gz \
        /usr/share/man/man7/pqshim.7.gz /usr/share/doc/pqshim/copyright \
        /usr/share/doc/pqshim/examples/pqshim-metrics.service; do
        grep -qx "$f" "$T/contents" || fail "$f is not in the package"
    done
    grep -q '^/usr/share/doc/pqshim/README' "$T/contents" || fail "README is not in the package"
    for f in "$ROOT"/doc/*.md; do
        grep -q "^/usr/share/doc/pqshim/$(basename "$f")" "$T/contents" || fail "doc/$(basename "$f") is not in the package"
    done

    # Install; removed again however the test ends.
    on_exit "dpkg_when_free --purge pqshim"
    t0=$(date +%s%N)
    dpkg_when_free -i "$deb" >"$T/dpkg-i.out" 2>&1 || { cat "$T/dpkg-i.out"; fail "dpkg -i"; }
    echo "dpkg -i: $(( ($(date +%s%N) - t0) / 1000000 )) ms"

    # The launcher in PATH finds the library in the multiarch directory.
    assert_eq /usr/bin/pqshim "$(PATH=/usr/bin:/bin command -v pqshim)" "pqshim in PATH"
    assert_eq "pqshim $version" "$(/usr/bin/pqshim --version)" "installed pqshim --version"
    assert_eq "pqshimctl $version" "$(/usr/bin/pqshimctl --version)" "installed pqshimctl --version"
    local out
    out=$(cd "$T" && PATH=/usr/bin:/bin env -u LD_PRELOAD pqshim -- env | grep '^LD_PRELOAD=')
    assert_eq "LD_PRELOAD=/usr/lib/$multiarch/pqshim/libpqshim.so" "$out" "installed launcher's LD_PRELOAD"
    out=$(cd "$T" && PATH=/usr/bin:/bin env -u LD_PRELOAD \
        pqshim --policy capped --log "$T/shim.log" -- "$PSQL" -X -A -t -c 'select 1')
    assert_eq 1 "$out" "psql through the installed launcher"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connect line"
    assert_file_contains "$T/shim.log" "target=postgres@" "connect line names the target"
    # Without the launcher, as a service would load it.
    out=$(LD_PRELOAD="/usr/lib/$multiarch/pqshim/libpqshim.so" PQSHIM_LOG="$T/shim2.log" \
        "$PSQL" -X -A -t -c 'select 2')
    assert_eq 2 "$out" "psql with the installed library in LD_PRELOAD"
    assert_eq 1 "$(count_events "$T/shim2.log" connect)" "connect line (LD_PRELOAD)"
    # The examples' paths are the installed ones.
    assert_file_contains /usr/share/doc/pqshim/examples/systemd-dropin-pqshim.conf \
        "LD_PRELOAD=/usr/lib/$multiarch/pqshim/libpqshim.so" "the drop-in's library path"

    # The manual pages.
    if command -v man >/dev/null 2>&1; then
        assert_eq /usr/share/man/man1/pqshim.1.gz "$(man -w pqshim)" "man -w pqshim"
        assert_eq /usr/share/man/man7/pqshim.7.gz "$(man -w 7 pqshim)" "man -w 7 pqshim"
        assert_eq /usr/share/man/man1/pqshimctl.1.gz "$(man -w pqshimctl)" "man -w pqshimctl"
        MANWIDTH=80 man 7 pqshim 2>/dev/null | grep -q PQSHIM_HOST_LIMIT || fail "man 7 pqshim does not render"
    else
        echo "man-db is not installed: checking the files instead of man -w"
        for f in /usr/share/man/man1/pqshim.1.gz /usr/share/man/man1/pqshimctl.1.gz \
            /usr/share/man/man7/pqshim.7.gz; do
            [ -s "$f" ] || fail "$f not installed"
        done
    fi

    # Remove: every file goes.
    dpkg_when_free --purge pqshim >"$T/dpkg-r.out" 2>&1 || { cat "$T/dpkg-r.out"; fail "dpkg --purge"; }
    ! dpkg-query -W -f '${Status}' pqshim 2>/dev/null | grep -q 'install ok' || fail "still installed"
    while IFS= read -r f; do
        case "$f" in /|/usr/|/usr/bin/|/usr/lib/|/usr/lib/"$multiarch"/|/usr/share/|/usr/share/doc/|/usr/share/man/|/usr/share/man/man?/) continue ;; esac
        [ ! -e "$f" ] || fail "$f left after dpkg --purge"
    done <"$T/contents"
    [ ! -e "/usr/lib/$multiarch/pqshim" ] || fail "library directory left"
    [ ! -e /usr/share/doc/pqshim ] || fail "doc directory left"
}
