#!/usr/bin/env bash
# Runs every test: the unit tests, then each integration file against one
# throwaway cluster. Each test_* function runs in its own subshell with its
# own temp dir ($T). Ends with "N passed, N failed".
#   tests/run.sh [PATTERN]   run only tests whose name contains PATTERN
#   tests/run.sh --list [PATTERN]   print those tests' names, run nothing
# A PATTERN that matches no test is a failure (exit 1), said before any
# cluster is started.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/common.sh

list_only=false
if [ "${1:-}" = --list ]; then
    list_only=true
    shift
fi
pattern=${1:-}
# Test names may be given as their functions are spelled (test_name).
pattern=${pattern#test_}
pattern=${pattern//: test_/: }
passed=0
failed=0
failed_names=()
started=$(date +%s)

record() {  # NAME STATUS SECONDS OUTPUT_FILE
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        printf 'ok   %-58s %4ss\n' "$1" "$3"
    else
        failed=$((failed + 1))
        failed_names+=("$1")
        printf 'FAIL %-58s %4ss\n' "$1" "$3"
        sed 's/^/    | /' "$4" | tail -n 60
    fi
}

# The selected tests, as "FILE NAME" lines, before anything runs.
run_unit=false
[ -z "$pattern" ] || [[ unit == *"$pattern"* ]] && run_unit=true
selected=()
for file in tests/integration/*.sh; do
    # Test functions are defined at the start of a line, one each; they run
    # in the order of their names.
    names=$(sed -n 's/^\(test_[A-Za-z0-9_]*\) *() *{.*/\1/p' "$file" | LC_ALL=C sort)
    for name in $names; do
        label="$(basename "$file" .sh): ${name#test_}"
        [ -z "$pattern" ] || [[ "$label" == *"$pattern"* ]] || continue
        selected+=("$file $name")
    done
done
if $list_only; then
    ! $run_unit || echo "unit"
    for entry in "${selected[@]}"; do
        file=${entry% *}
        echo "$(basename "$file" .sh): ${entry#* test_}"
    done
fi
if ! $run_unit && [ ${#selected[@]} -eq 0 ]; then
    echo "no test matches '$pattern'"
    echo "0 passed, 1 failed"
    exit 1
fi
! $list_only || exit 0

WORK=$(mktemp -d /tmp/pqshim-run.XXXXXX)
chmod 755 "$WORK"
trap 'cluster_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

if $run_unit; then
    t0=$(date +%s)
    "$TESTBIN/unit" >"$WORK/unit.out" 2>&1
    rc=$?
    cat "$WORK/unit.out" | grep -E '^(ok|FAIL)' | sed 's/^/  unit: /' | grep FAIL
    record "unit tests ($(grep -c '^ok' "$WORK/unit.out") cases)" $rc $(( $(date +%s) - t0 )) "$WORK/unit.out"
fi

cluster_start 40 || { echo "0 passed, 1 failed"; exit 1; }
export CLUSTER_MAXCONN=40

for entry in "${selected[@]}"; do
    file=${entry% *}
    name=${entry#* }
    label="$(basename "$file" .sh): ${name#test_}"
    T="$WORK/$(basename "$file" .sh)/$name"
    mkdir -p "$T"
    chmod 777 "$T"
    t0=$(date +%s)
    ( export T TEST_FILE; TEST_FILE=$(basename "$file" .sh); set -e; . "$file"; cd "$T"; "$name" ) \
        >"$T/output" 2>&1 </dev/null
    rc=$?
    record "$label" $rc $(( $(date +%s) - t0 )) "$T/output"
    # A test that stopped the server leaves it for the next one running.
    if ! "$PG_BIN/pg_isready" -q; then
        cluster_restart fast || { cluster_stop; cluster_start 40; }
    fi
done

if [ $((passed + failed)) -eq 0 ]; then
    echo "no test matches '$pattern'"
    failed=1
fi
echo
echo "elapsed $(( $(date +%s) - started ))s"
[ ${#failed_names[@]} -eq 0 ] || printf 'failed: %s\n' "${failed_names[@]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
