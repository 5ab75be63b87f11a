# pqshimctl's parts on their own: its JSON parser linked alone, what it
# does with replies it cannot trust (the reply fuzz target, replayed), and
# the control protocol's words (shim/control_protocol.h) against what a
# real shimmed process answers.

# The parser's unit tests (tests/unit/ctl/json_test.c, linked with
# tools/ctl/json.c only).
test_ctl_json_parser() {
    "$BUILD/tests/ctl_json_test" >"$T/out" 2>&1 || { cat "$T/out"; fail "JSON parser unit tests"; }
    assert_file_contains "$T/out" ", 0 failed" "JSON parser unit tests"
    local n
    n=$(sed -n 's/^\([0-9]*\) checks.*/\1/p' "$T/out")
    assert_ge 90 "${n:-0}" "checks run"
}

# A short deterministic run of the reply fuzz target: the libFuzzer build
# when `make fuzz` made one, otherwise the same target as a plain program
# under ASan + UBSan fed a fixed set of mutated replies.
test_fuzz_reply_deterministic() {
    local bin="$BUILD/fuzz/fuzz_reply"
    if [ -x "$bin" ]; then
        "$bin" -runs=30000 -seed=1 >"$T/fuzz.out" 2>&1 ||
            { tail -n 40 "$T/fuzz.out"; fail "fuzz_reply found a failure"; }
        assert_file_contains "$T/fuzz.out" "Done 30000 runs" "fuzz run"
        return 0
    fi
    # The sources `make fuzz` links (see FUZZ_REPLY_SRC in the Makefile).
    ${CC:-cc} -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
        -DFUZZ_REPLAY_MAIN -o "$T/replay" "$ROOT/tests/fuzz/fuzz_reply.c" \
        "$ROOT"/tools/ctl/{json,util,table,pool_text,status,health,prom_merge}.c "$ROOT/shim/escape.c"
    "$PYTHON" - "$T/inputs" <<'EOF'
import json, random, sys
random.seed(1)
pool = {"target": "u@/tmp:5432/db", "cap": 5, "open": 3, "checked_out": 1, "idle": 2, "waiting": 0,
        "connects_total": 4, "reuses_total": 5, "timeouts_total": 0, "wait_ms_total": 1.5,
        "oldest_checkout_s": 90000, "host": {"limit": 4, "held": 3, "waiting": 2}}
seeds = [
    json.dumps({"pid": 1, "program": "p", "policy": "capped", "paused": True, "uptime_s": 5,
                "host_limit": {"limit": 4, "file": "/f"}, "totals": dict(pool, cap=None),
                "pools": [pool, dict(pool, cap=None, host=None, target="\u00e9\u001b")]}).encode(),
    json.dumps({"targets": [{"target": "a", "ok": True, "via": "idle", "ms": 1, "error": ""},
                            {"target": "b", "ok": False, "via": "new", "ms": 2, "error": "x"}],
                "ok": False}).encode(),
    b'# HELP pqshim_a_total A.\n# TYPE pqshim_a_total counter\npqshim_a_total{pid="1",target="t"} 3\n'
    b'# TYPE pqshim_b gauge\npqshim_b{pid="1",x="a\\"b"} 1.5e3\npqshim_b{pid="2"} 1\nother 1\n',
]
alphabet = b'{}[]:,"\\ \n\t-.0123456789eEtruefalsn#u{}=' + bytes([0x1b, 0x7f, 0xc3, 0xa9, 0xff])
with open(sys.argv[1], "wb") as f:
    for i in range(3000):
        w = bytearray(random.choice(seeds))
        for _ in range(random.randint(0, 6)):
            op, pos = random.randint(0, 3), random.randint(0, len(w))
            if op == 0:
                w[pos:pos] = bytes(random.choice(alphabet) for _ in range(random.randint(1, 8)))
            elif op == 1 and w:
                del w[pos:pos + random.randint(1, 16)]
            elif op == 2:
                w[pos:pos] = random.choice(seeds)[:random.randint(0, 64)]
            elif w:
                w[random.randrange(len(w))] = random.randrange(1, 256)
        f.write(bytes(w).replace(b"\0", b"") + b"\0")
    for s in seeds:
        f.write(s + b"\0")
EOF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$T/replay" <"$T/inputs" >"$T/replay.out" 2>&1 ||
        { tail -n 40 "$T/replay.out"; fail "replay found a failure"; }
    assert_eq "3003 inputs ok" "$(cat "$T/replay.out")" "replayed inputs"
}

# Every command word and every reply key of shim/control_protocol.h is
# what a real shimmed process (capped, with a host limit) answers: help
# lists each word, and each key is in one of its JSON replies.
test_protocol_words_answered() {
    local h="$ROOT/shim/control_protocol.h" word key missing=""
    mkfifo "$T/in"
    PQSHIM_POLICY=capped PQSHIM_HOST_LIMIT=4 PQSHIM_HOST_LIMIT_FILE="$T/host.limit" \
        PQSHIM_LOG="$T/shim.log" PQSHIM_CONTROL="$T/ctl.sock" \
        shimmed "$PSQL" -X -q <"$T/in" >"$T/psql.out" 2>&1 &
    track_pid $!
    exec 3>"$T/in"
    on_exit "exec 3>&-"
    wait_until 15 grep -qs " event=connect " "$T/shim.log" || fail "no connect: $(cat "$T/psql.out")"
    local ctl=("$BUILD/pqshimctl" -s "$T/ctl.sock" --json)
    "${ctl[@]}" status >"$T/replies" || fail "status"
    "${ctl[@]}" health >>"$T/replies" || fail "health: $(tail -n 1 "$T/replies")"
    "${ctl[@]}" dispose >>"$T/replies" || fail "dispose"
    "${ctl[@]}" pause >>"$T/replies" || fail "pause"
    "${ctl[@]}" resume >>"$T/replies" || fail "resume"
    # An unknown word (pqshimctl refuses to send one): the error reply.
    "$PYTHON" - "$T/ctl.sock" >>"$T/replies" <<'EOF' || fail "unknown command"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"bogus\n")
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    got = s.recv(4096)
    if not got:
        break
    reply += got
sys.stdout.write(reply.decode())
EOF
    assert_file_contains "$T/replies" "unknown command 'bogus'" "the error reply"
    "${ctl[@]}" help >"$T/help" || fail "help"
    local n=0
    while read -r word; do
        n=$((n + 1))
        grep -q "^$word " "$T/help" || missing+=" command:$word"
    done < <(sed -n 's/^#define CONTROL_CMD_[A-Z]* *"\([a-z]*\)".*/\1/p' "$h")
    assert_eq 7 "$n" "command words in the header"
    assert_eq "$n" "$(wc -l <"$T/help")" "commands help lists"
    n=0
    while read -r key; do
        n=$((n + 1))
        grep -qF "\"$key\":" "$T/replies" || missing+=" key:$key"
    done < <(sed -n 's/^#define CONTROL_KEY_[A-Z_]* *"\([a-z_]*\)".*/\1/p' "$h")
    assert_ge 30 "$n" "reply keys in the header"
    [ -z "$missing" ] || fail "not in the replies:$missing"
    # And pqshimctl reads them: the table shows the host limit and the pool.
    "$BUILD/pqshimctl" -s "$T/ctl.sock" status >"$T/status.txt" || fail "status table"
    assert_file_contains "$T/status.txt" "host limit 4 per target, shared through $T/host.limit" \
        "status table"
    assert_file_contains "$T/status.txt" "1/4" "status table's host held/limit"
}
