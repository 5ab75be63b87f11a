#!/usr/bin/env bash
# Checks tests/run.sh itself, without a cluster: a test is selected by its
# name with or without the test_ prefix (the same tests either way), and a
# name that matches nothing is a failure said at once.
set -u
cd "$(dirname "$0")/.." || exit 1
failed=0
fail() { echo "runner-check: $*" >&2; failed=1; }

name=null_policy_status
short=$(tests/run.sh --list "$name") || fail "--list $name exited with $?"
long=$(tests/run.sh --list "test_$name") || fail "--list test_$name exited with $?"
[ -n "$short" ] || fail "--list $name selects nothing"
[ "$short" = "$long" ] || fail "$name and test_$name select different tests: '$short' / '$long'"
[ "$(printf '%s\n' "$short" | grep -c ": $name")" -ge 1 ] || fail "--list $name: '$short'"
file_name=$(printf '%s\n' "$short" | head -n 1)
[ "$(tests/run.sh --list "${file_name%%:*}: test_${file_name#*: }")" = "$file_name" ] ||
    fail "'FILE: test_NAME' does not select $file_name"

for pattern in no_such_test_anywhere test_no_such_test_anywhere; do
    rc=0
    out=$(timeout 60 tests/run.sh "$pattern" 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "run.sh $pattern: exit status $rc, expected 1"
    case "$out" in *"no test matches '"*"no_such_test_anywhere'"*) ;; *) fail "run.sh $pattern said: $out" ;; esac
    case "$out" in *"0 passed, 1 failed"*) ;; *) fail "run.sh $pattern: no failure count: $out" ;; esac
done

[ "$(tests/run.sh --list | grep -c .)" -ge 100 ] || fail "--list without a pattern lists fewer than 100 tests"
[ $failed = 0 ] && echo "runner-check: ok"
exit $failed
