#!/bin/sh
# callgraph.sh — the call graph between the shim's modules, read from the
# compiled objects, and a check that it has no cycle.
#
#   tools/callgraph.sh [-v] [OBJDIR]     (default: build/obj)
#
# A module is one object (shim/X.c -> OBJDIR/X.o). Module A calls B when
# A references a symbol that B defines (nm: A's undefined symbols, B's
# defined global ones: functions and data alike). Layers are meant to be
# called downwards only: a cycle means a lower module calls up. Exit 0
# when there is none; with -v the layers are printed, lowest first.
# Exit 1, naming the modules of one cycle and the symbols on its edges,
# when there is one; 2 when the objects cannot be read.
set -eu

verbose=0
if [ "${1:-}" = "-v" ]; then
    verbose=1
    shift
fi
dir=${1:-build/obj}
NM=${NM:-nm}

set -- "$dir"/*.o
if [ ! -e "$1" ]; then
    echo "callgraph: no objects in $dir (build first)" >&2
    exit 2
fi
command -v "$NM" >/dev/null 2>&1 || {
    echo "callgraph: $NM not found (binutils)" >&2
    exit 2
}

# One line per symbol: "D module symbol" (defined) or "U module symbol".
syms=$(for o in "$@"; do
    m=${o##*/}
    m=${m%.o}
    "$NM" --defined-only -g "$o" | awk -v m="$m" 'NF == 3 { print "D", m, $3 }'
    "$NM" -u "$o" | awk -v m="$m" 'NF == 2 { print "U", m, $2 }'
done) || {
    echo "callgraph: $NM failed on $dir" >&2
    exit 2
}

printf '%s\n' "$syms" | awk -v verbose="$verbose" '
$1 == "D" { owner[$3] = $2; mods[$2] = 1; next }
$1 == "U" { use[++n] = $2 SUBSEP $3; mods[$2] = 1 }
END {
    for (i = 1; i <= n; i++) {
        split(use[i], p, SUBSEP)
        from = p[1]; sym = p[2]
        if (!(sym in owner) || owner[sym] == from)
            continue
        to = owner[sym]
        if (!((from, to) in edge)) {
            edge[from, to] = sym
            out[from] = out[from] " " to
        } else if (length(edge[from, to]) < 60) {
            edge[from, to] = edge[from, to] " " sym
        }
    }
    # Peel off layer after layer: modules that only call modules already
    # placed. What is left cannot be placed: it lies on or above a cycle.
    left = 0
    for (m in mods) left++
    total = left
    layer = 0
    while (left > 0) {
        k = 0
        for (m in mods) {
            if (m in placed) continue
            ok = 1
            c = split(out[m], callees, " ")
            for (j = 1; j <= c; j++)
                if (!(callees[j] in placed)) { ok = 0; break }
            if (ok) now[++k] = m
        }
        if (k == 0) break
        layer++
        line = ""
        for (j = 1; j <= k; j++) {
            placed[now[j]] = layer
            line = line " " now[j]
            left--
        }
        lines[layer] = line
    }
    if (left == 0) {
        if (verbose)
            for (l = 1; l <= layer; l++)
                printf "layer %d:%s\n", l, lines[l]
        printf "callgraph: %d modules, no cycle\n", total
        exit 0
    }
    # Walk from any unplaced module along unplaced callees (one always
    # exists) until a module repeats: that stretch is a cycle.
    for (m in mods) if (!(m in placed)) { start = m; break }
    steps = 0
    cur = start
    while (!(cur in seen)) {
        seen[cur] = ++steps
        path[steps] = cur
        c = split(out[cur], callees, " ")
        for (j = 1; j <= c; j++)
            if (!(callees[j] in placed)) { nxt = callees[j]; break }
        cur = nxt
    }
    printf "callgraph: cycle between modules:\n"
    for (s = seen[cur]; s <= steps; s++) {
        a = path[s]
        b = (s < steps) ? path[s + 1] : cur
        printf "  %s -> %s (%s)\n", a, b, substr(edge[a, b], 1, 60)
    }
    exit 1
}'
