#!/usr/bin/env bash
# make compat: the compatibility matrix. Installs the clients (tests/lib/
# compat-deps.sh), starts a throwaway cluster, runs every row under the null
# and the capped policy (the quick rows of tests/integration/60-compat.sh and
# the slower ones below), and writes the table into doc/compatibility.md between
# <!-- compat-matrix:begin --> and <!-- compat-matrix:end -->.
# Ends with "N passed, N failed, N skipped"; exits non-zero on a failure.
#   tests/compat.sh [PATTERN]   only rows whose id contains PATTERN; the
#                               matrix is then left alone
set -u
cd "$(dirname "$0")/.." || exit 1
tests/lib/compat-deps.sh || exit 1
. tests/lib/common.sh
. tests/integration/60-compat.sh

# ---- slower rows ---------------------------------------------------------------------

# pgbench with 8 clients in every mode, then -C -M prepared through a cap of
# 4: the server never sees more than 4 of its connections. One client per
# thread (-j 8): a pgbench thread serves its clients in one event loop, and
# a thread that waits at the cap for one client's connection cannot finish
# the transactions of its other clients, whose connections it holds.
row_pgbench_load() {
    local policy=$1 mark peak
    fresh_db cload
    "$PGBENCH" -i -q -s 1 cload >"$T/init.out" 2>&1 || fail "pgbench -i: $(cat "$T/init.out")"
    pgbench_runs "$policy" cload 8 20
    check_shim "$policy" 480 reuse "every mode"
    mv "$T/shim.log" "$T/modes.log"
    mark=$(server_mark)
    PQSHIM_POOL_SIZE=4 PQSHIM_MAX_OVERFLOW=0 run_ok "pgbench -C -M prepared, cap 4" \
        through "$policy" "$PGBENCH" -n -C -S -M prepared -c 8 -j 8 -t 50 cload
    assert_file_contains "$T/out" "number of transactions actually processed: 400/400" "pgbench -C, 8 clients"
    ! grep -qiE 'already exists|error' "$T/err" || fail "pgbench: $(head -5 "$T/err")"
    if [ "$policy" = capped ]; then
        peak=$(n_events connect)
        assert_le 4 "$peak" "server connections through a cap of 4"
        assert_eq "$peak" "$(server_since "$mark")" "server connections (server log)"
        compat_measure "-C -M prepared, 8 clients, cap 4: 400 connects, $peak server connections"
        # Two clients per thread through the same cap: every thread may hold
        # one connection and wait for a second that only it could free. The
        # wait ends after PQSHIM_POOL_TIMEOUT with pqshim's message.
        local rc=0 seen
        PQSHIM_POOL_SIZE=4 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=2 PQSHIM_LOG="$T/shared.log" \
            PQSHIM_POLICY=capped shimmed timeout 120 "$PGBENCH" -n -C -S -M prepared -c 8 -j 4 -t 100 cload \
            >"$T/shared.out" 2>&1 || rc=$?
        [ "$rc" != 124 ] || fail "pgbench -c 8 -j 4 through a cap of 4 did not end"
        if [ "$rc" = 0 ]; then
            seen="it completed this time"
        else
            assert_file_contains "$T/shared.out" "pqshim: pool limit of size 4 overflow 0 reached" \
                "pgbench -c 8 -j 4 through a cap of 4: why it stopped"
            seen="here a connect timed out after PQSHIM_POOL_TIMEOUT and pgbench aborted that client ($(grep -o 'actually processed: [0-9/]*' "$T/shared.out"))"
        fi
        compat_note "when the cap is below -c, give pgbench one thread per client (-j = -c): a pgbench thread serves its clients in one event loop, and a thread waiting at the cap for one client's connection cannot finish its other clients' transactions, so all the threads holding connections can end up waiting for each other. With -c 8 -j 4 and a cap of 4, $seen"
    else
        compat_measure "-C -M prepared, 8 clients: $(n_events connect) server connections"
    fi
    cat "$T/modes.log" >>"$T/shim.log"
}

# table_digest DB: row count and checksum of every table of the database.
table_digest() {
    "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" <<'EOF'
select 'accounts ' || count(*) || ' ' || md5(string_agg(t::text, ',' order by aid)) from pgbench_accounts t;
select 'branches ' || count(*) || ' ' || md5(string_agg(t::text, ',' order by bid)) from pgbench_branches t;
select 'tellers ' || count(*) || ' ' || md5(string_agg(t::text, ',' order by tid)) from pgbench_tellers t;
select 'notes ' || count(*) || ' ' || md5(string_agg(t::text, ',' order by id)) from notes t;
select 'seq ' || last_value from notes_id_seq;
select 'view ' || count(*) from notes_view;
select 'indexes ' || count(*) from pg_indexes where schemaname = 'public';
EOF
}

# pg_dump -j 2 and pg_restore -j 2 in directory format. Their workers are
# forked processes: each has its own connection and, under capped, its own
# pool, so a cap of 1 per process is enough; the server sees 1 + 2.
row_pg_dump_restore() {
    local policy=$1 mark pids
    fresh_db csrc
    fresh_db cdst
    "$PGBENCH" -i -q -s 2 csrc >"$T/init.out" 2>&1 || fail "pgbench -i: $(cat "$T/init.out")"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d csrc >/dev/null <<'EOF'
create table notes (id serial primary key, body text, at timestamptz default now());
insert into notes (body) select repeat(md5(g::text), 20) from generate_series(1, 3000) g;
create index on notes (at);
create view notes_view as select id, left(body, 10) from notes where id % 2 = 0;
EOF
    mark=$(server_mark)
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=10 run_ok "pg_dump -j 2" \
        through "$policy" "$PG_BIN/pg_dump" -Fd -j 2 -f "$T/dump" csrc
    assert_eq 3 "$(server_since "$mark")" "server connections of pg_dump -j 2 (leader + 2 workers)"
    pids=$(sed -E 's/^pqshim\[([0-9]+)\].*/\1/' "$T/shim.log" | sort -u | wc -l)
    assert_eq 3 "$pids" "processes in the shim log (leader + 2 workers)"
    check_shim "$policy" 3 noreuse "pg_dump"
    mv "$T/shim.log" "$T/dump.log"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=10 run_ok "pg_restore -j 2" \
        through "$policy" "$PG_BIN/pg_restore" -j 2 -d cdst "$T/dump"
    table_digest csrc >"$T/src.digest"
    table_digest cdst >"$T/dst.digest"
    assert_eq 7 "$(wc -l <"$T/src.digest")" "digest lines"
    assert_eq "$(cat "$T/src.digest")" "$(cat "$T/dst.digest")" "restored database = source"
    # The restore's leader connects again after its workers: reused.
    check_shim "$policy" 4 reuse "pg_restore"
    cat "$T/dump.log" >>"$T/shim.log"
    [ "$policy" = null ] ||
        compat_note "-j N: the workers are forked processes, each with its own connection and its own pool, so the server sees N + 1 connections at once (leader + N workers) whatever the cap; a cap of 1 per process is enough (tested). Size the server for N + 1"
}

row_vacuumdb_all() {
    local policy=$1
    make_tables_db cvacall
    run_ok "vacuumdb -a -j 2" through "$policy" "$PG_BIN/vacuumdb" -a -j 2
    assert_contains "$(cat "$T/out")" 'vacuuming database "cvacall"' "vacuumdb -a output"
    assert_contains "$(cat "$T/out")" 'vacuuming database "template1"' "vacuumdb -a output"
    # The listing connection to "postgres" comes round again for "postgres".
    check_shim "$policy" 5
}

row_reindexdb_all() {
    local policy=$1
    make_tables_db creidxall
    run_ok "reindexdb -a" through "$policy" "$PG_BIN/reindexdb" -a
    assert_contains "$(cat "$T/err")$(cat "$T/out")" 'reindexing database "creidxall"' "reindexdb -a output"
    check_shim "$policy" 3
}

# ---- runner ----------------------------------------------------------------------------

pattern=${1:-}
passed=0
failed=0
skipped=0
WORK=$(mktemp -d /tmp/pqshim-compat.XXXXXX)
chmod 755 "$WORK"
trap 'cluster_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
cluster_start 40 || { echo "0 passed, 1 failed"; exit 1; }
export CLUSTER_MAXCONN=40
started=$(date +%s)

# md_cell TEXT: one markdown table cell (pipes escaped, lines joined).
md_cell() {
    sed -e 's/|/\\|/g' | awk 'NF { printf "%s%s", (n++ ? "; " : ""), $0 }'
}

: >"$WORK/table.md"
for entry in "${COMPAT_ROWS[@]}"; do
    IFS='|' read -r id program packages <<<"$entry"
    [ -z "$pattern" ] || [[ "$id" == *"$pattern"* ]] || continue
    cells=()
    notes=""
    for policy in null capped; do
        T="$WORK/$id.$policy"
        mkdir -p "$T"
        chmod 777 "$T"
        t0=$(date +%s)
        if declare -F "row_$id" >/dev/null; then
            ( export T; set -e; cd "$T"; "row_$id" "$policy" ) >"$T/output" 2>&1 </dev/null
            rc=$?
        else
            echo "no function row_$id" >"$T/output"
            rc=1
        fi
        secs=$(( $(date +%s) - t0 ))
        if [ "$rc" = 0 ] && [ -s "$T/compat.skip" ]; then
            skipped=$((skipped + 1))
            printf 'skip %-50s %4ss  %s\n' "$id ($policy)" "$secs" "$(head -n 1 "$T/compat.skip")"
            cell="skipped: $(head -n 1 "$T/compat.skip" | md_cell)"
        elif [ "$rc" = 0 ]; then
            passed=$((passed + 1))
            printf 'ok   %-50s %4ss\n' "$id ($policy)" "$secs"
            cell=$(cat "$T/compat.verdict" 2>/dev/null || echo pass)
            [ ! -s "$T/compat.measure" ] || cell="$cell: $(md_cell <"$T/compat.measure")"
        else
            failed=$((failed + 1))
            printf 'FAIL %-50s %4ss\n' "$id ($policy)" "$secs"
            sed 's/^/    | /' "$T/output" | tail -n 40
            cell="**FAIL**: $(grep -m 1 'assertion failed' "$T/output" | sed 's/^ *assertion failed: //' | cut -c 1-200 | md_cell)"
        fi
        cells+=("$cell")
        [ ! -s "$T/compat.note" ] || notes="$notes$(cat "$T/compat.note")"$'\n'
        if ! "$PG_BIN/pg_isready" -q; then
            cluster_restart fast || { cluster_stop; cluster_start 40; }
        fi
    done
    read -ra pkgs <<<"$packages"
    version=$(pkg_version "${pkgs[@]}")
    notes=$(printf '%s' "$notes" | awk 'NF && !seen[$0]++' | md_cell)
    printf '| %s | %s | %s | %s | %s |\n' "$(md_cell <<<"$program")" "$(md_cell <<<"$version")" \
        "${cells[0]}" "${cells[1]}" "$notes" >>"$WORK/table.md"
done

echo
echo "elapsed $(( $(date +%s) - started ))s"

if [ -z "$pattern" ]; then
    server=$("$PSQL" -X -A -t -c 'show server_version')
    {
        echo "<!-- compat-matrix:begin -->"
        echo "<!-- Generated by make compat (tests/compat.sh) from its test run; do not edit by hand. -->"
        echo
        echo "Debian $(cat /etc/debian_version), libpq5 $(dpkg-query -W -f '${Version}' libpq5 2>/dev/null), server $server."
        echo "Passed $passed, failed $failed, skipped $skipped (program × policy)."
        echo
        echo "| program | version (Debian package) | null policy | capped policy | notes |"
        echo "|---|---|---|---|---|"
        cat "$WORK/table.md"
        echo "<!-- compat-matrix:end -->"
    } >"$WORK/matrix.md"
    doc=doc/compatibility.md
    if grep -q '^<!-- compat-matrix:begin -->$' "$doc" && grep -q '^<!-- compat-matrix:end -->$' "$doc"; then
        awk -v gen="$WORK/matrix.md" '
            /^<!-- compat-matrix:begin -->$/ { while ((getline line < gen) > 0) print line; skip = 1; next }
            /^<!-- compat-matrix:end -->$/ { skip = 0; next }
            !skip { print }' "$doc" >"$WORK/compatibility.md" && cat "$WORK/compatibility.md" >"$doc"
        echo "$doc: compatibility matrix written"
    else
        echo "$doc has no compat-matrix markers; the matrix is not written" >&2
        failed=$((failed + 1))
    fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
