# The control socket tests' client: strict checks of status and metrics
# replies, raw requests, pqshimctl top in a pty, a fake server.
import json, os, re, select, signal, socket, struct, subprocess, sys, threading, time

def recv_all(s):
    # A peer that closes with our request unread (a refusal, an oversize
    # request) makes the next read after its reply fail with ECONNRESET.
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            if data:
                return data
            raise
        if not chunk:
            return data
        data += chunk

def connect(path, timeout=10):
    # A blocking connect waits while the listen queue is full (a timeout
    # would make it non-blocking: EAGAIN at once); SO_SNDTIMEO bounds it.
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), 0))
    s.connect(path)
    s.settimeout(timeout)
    return s

def ask(path, payload, timeout=10):
    s = connect(path, timeout)
    if payload:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (refused) without reading: the reply is there
    data = recv_all(s)
    s.close()
    return data

def fail(msg):
    sys.exit("check failed: " + msg)

# ---- strict checks ----------------------------------------------------------

COUNTERS = ["connects_total", "connect_errors_total", "closes_total", "checkouts_total",
            "reuses_total", "waits_total", "timeouts_total", "deadlocks_total"]
POOL = ["target", "cap", "open", "checked_out", "idle", "waiting"] + COUNTERS + \
       ["wait_ms_total", "oldest_checkout_s"]
SETTINGS = ["PQSHIM_POLICY", "PQSHIM_POOL_SIZE", "PQSHIM_MAX_OVERFLOW", "PQSHIM_POOL_TIMEOUT",
            "PQSHIM_RESET", "PQSHIM_PRE_PING", "PQSHIM_POOL_RECYCLE", "PQSHIM_IDLE_TIMEOUT",
            "PQSHIM_LOG", "PQSHIM_LOG_LEVEL", "PQSHIM_LOG_FORMAT", "PQSHIM_CONTROL"]

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0

def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0

def check_pool(p, where):
    if not isinstance(p, dict) or not set(POOL) <= set(p):
        fail("%s: keys %r" % (where, sorted(p) if isinstance(p, dict) else p))
    if not isinstance(p["target"], str):
        fail(where + ": target")
    if p["cap"] is not None and not is_int(p["cap"]):
        fail(where + ": cap")
    for k in ["open", "checked_out", "idle", "waiting"] + COUNTERS:
        if not is_int(p[k]):
            fail("%s: %s = %r" % (where, k, p[k]))
    for k in ["wait_ms_total", "oldest_checkout_s"]:
        if not is_num(p[k]):
            fail("%s: %s = %r" % (where, k, p[k]))
    if p["checked_out"] + p["idle"] > p["open"]:
        fail(where + ": checked_out + idle > open")

# The documented keys must be there with their types; the reply may grow.
def check_status(text):
    d = json.loads(text)
    keys = ["pid", "program", "policy", "paused", "uptime_s", "settings", "totals", "pools"]
    if not isinstance(d, dict) or not set(keys) <= set(d):
        fail("status keys %r" % sorted(d))
    if not is_int(d["pid"]) or not isinstance(d["program"], str):
        fail("pid/program")
    if d["policy"] not in ("null", "capped") or not isinstance(d["paused"], bool):
        fail("policy/paused")
    if not is_num(d["uptime_s"]):
        fail("uptime_s")
    s = d["settings"]
    if not isinstance(s, dict) or not set(SETTINGS) <= set(s) or \
       not all(k.startswith("PQSHIM_") and isinstance(v, str) for k, v in s.items()):
        fail("settings %r" % s)
    check_pool(d["totals"], "totals")
    if not isinstance(d["pools"], list):
        fail("pools")
    for i, p in enumerate(d["pools"]):
        check_pool(p, "pools[%d]" % i)
        if (p["cap"] is None) != (d["policy"] == "null"):
            fail("cap %r under policy %s" % (p["cap"], d["policy"]))
    for k in ["open", "checked_out", "idle", "waiting"] + COUNTERS:
        if d["totals"][k] != sum(p[k] for p in d["pools"]):
            fail("totals." + k)
    return d

def check_health(text):
    d = json.loads(text)
    if sorted(d) != ["ok", "targets"] or not isinstance(d["ok"], bool):
        fail("health keys %r" % d)
    for t in d["targets"]:
        if sorted(t) != ["error", "ms", "ok", "target", "via"]:
            fail("health target keys %r" % t)
        if t["via"] not in ("idle", "new") or not is_num(t["ms"]) or \
           not isinstance(t["ok"], bool) or not isinstance(t["error"], str):
            fail("health target %r" % t)
        if t["ok"] == bool(t["error"]):
            fail("ok and error disagree: %r" % t)
    if d["ok"] != all(t["ok"] for t in d["targets"]):
        fail("overall ok")
    return d

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*)\})? (%s)(?: -?[0-9]+)?$" % (NAME, LABEL, LABEL, VALUE))
HELP = re.compile(r"^# HELP (%s) ((?:[^\\\n]|\\[\\n])*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')

def check_prom(text):
    """Text exposition format, strictly: every line a HELP, TYPE or sample;
    each family's HELP and TYPE once, before its samples; a family's lines
    contiguous; no duplicate series. Returns [(name, labels, value)]."""
    if text and not text.endswith("\n"):
        fail("exposition does not end with a newline")
    helps, types, done, samples, series = set(), {}, set(), [], set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        m = HELP.match(line) or TYPE.match(line)
        s = None if m else SAMPLE.match(line)
        if not m and not s:
            fail("line %d does not parse: %r" % (n, line))
        name = (m or s).group(1)
        if name != current:
            if name in done:
                fail("line %d: the lines of %s are not contiguous" % (n, name))
            if current:
                done.add(current)
            current = name
        if m:
            seen = helps if line.startswith("# HELP") else types
            if name in seen:
                fail("line %d: second %s for %s" % (n, line[:6], name))
            if any(x[0] == name for x in samples):
                fail("line %d: %s after the samples of %s" % (n, line[:6], name))
            if line.startswith("# HELP"):
                helps.add(name)
            else:
                types[name] = m.group(2)
            continue
        labels, value = s.group(2) or "", s.group(3)
        if name not in helps or name not in types:
            fail("line %d: sample of %s before its HELP and TYPE" % (n, name))
        if types[name] == "counter" and not name.endswith("_total"):
            fail("counter %s does not end in _total" % name)
        pairs = PAIR.findall(labels)
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            fail("line %d: repeated label" % n)
        key = (name, tuple(sorted(pairs)))
        if key in series:
            fail("line %d: duplicate series" % n)
        series.add(key)
        v = float(value)
        if types[name] == "counter" and v < 0:
            fail("line %d: negative counter" % n)
        samples.append((name, dict(pairs), v))
    return samples

# ---- commands -----------------------------------------------------------------

def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "send":               # send SOCK TEXT: one line, raw reply
        sys.stdout.write(ask(args[0], args[1].encode() + b"\n").decode())
    elif cmd == "status":           # status FILE|-: strict check
        d = check_status(sys.stdin.read() if args[0] == "-" else open(args[0]).read())
        print("ok", d["pid"])
    elif cmd == "health":
        d = check_health(sys.stdin.read() if args[0] == "-" else open(args[0]).read())
        print("ok" if d["ok"] else "failing")
    elif cmd == "get":              # get FILE|- EXPR  (d is the JSON)
        d = json.loads(sys.stdin.read() if args[0] == "-" else open(args[0]).read())
        print(eval(args[1], {"d": d}))
    elif cmd == "pool":             # pool FILE|-: open checked_out idle waiting of pools[0]
        d = json.loads(sys.stdin.read() if args[0] == "-" else open(args[0]).read())
        p = d["pools"][0]
        print(p["open"], p["checked_out"], p["idle"], p["waiting"])
    elif cmd == "prom":             # prom FILE|-: strict check
        samples = check_prom(sys.stdin.read() if args[0] == "-" else open(args[0]).read())
        print("ok", len({s[0] for s in samples}), len(samples))
    elif cmd == "prom-value":       # prom-value FILE NAME [LABEL=VALUE...]
        want = dict(a.split("=", 1) for a in args[2:])
        found = [v for n, l, v in check_prom(open(args[0]).read())
                 if n == args[1] and all(l.get(k) == x for k, x in want.items())]
        print("none" if not found else " ".join("%g" % v for v in found))
    elif cmd == "storm":            # storm SOCK N PID: N clients at once
        sock, n, pid = args[0], int(args[1]), int(args[2])
        barrier = threading.Barrier(n)
        results = [None] * n
        def one(i):
            command = ["status", "metrics", "help", "status"][i % 4]
            try:
                barrier.wait(timeout=30)
                results[i] = (command, ask(sock, command.encode() + b"\n", timeout=30))
            except Exception as e:
                results[i] = (command, e)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for command, reply in results:
            if not isinstance(reply, bytes):
                fail("%s: %r" % (command, reply))
            text = reply.decode()
            if command == "status":
                if check_status(text)["pid"] != pid:
                    fail("status of another pid")
            elif command == "metrics":
                if not check_prom(text):
                    fail("empty metrics")
            elif not text.startswith("status "):
                fail("help: %r" % text[:80])
        print("ok", n)
    elif cmd == "raw":              # raw SOCK HEX: send bytes as given, print reply
        sys.stdout.write(ask(args[0], bytes.fromhex(args[1])).decode(errors="replace"))
    elif cmd == "halfopen":         # halfopen SOCK MARKER: connect, send nothing
        s = connect(args[0])
        t0 = time.monotonic()
        open(args[1], "w").close()
        data = recv_all(s)
        print("%.3f %s" % (time.monotonic() - t0, data.decode().strip()))
    elif cmd == "top-pty":          # top-pty CTL DIR: q and SIGINT restore the terminal
        import termios
        for how in ("q", "sigint"):
            master, slave = os.openpty()
            p = subprocess.Popen([args[0], "top", "-i", "0.1", "-d", args[1]], stdin=slave,
                                 stdout=slave, stderr=slave, start_new_session=True)
            out, deadline = b"", time.monotonic() + 10
            while out.count(b"pqshimctl top") < 2 and time.monotonic() < deadline:
                if select.select([master], [], [], 0.1)[0]:
                    out += os.read(master, 65536)
            if out.count(b"pqshimctl top") < 2:
                p.kill()
                fail("top drew nothing: %r" % out[-300:])
            lflag = termios.tcgetattr(slave)[3]
            if lflag & (termios.ICANON | termios.ECHO):
                fail("terminal not raw while top runs")
            if how == "q":
                os.write(master, b"q")
            else:
                p.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 5
            while p.poll() is None and time.monotonic() < deadline:
                if select.select([master], [], [], 0.05)[0]:
                    out += os.read(master, 65536)
            if p.poll() is None:
                p.kill()
                fail("top did not quit on " + how)
            lflag = termios.tcgetattr(slave)[3]
            if not (lflag & termios.ICANON) or not (lflag & termios.ECHO):
                fail("terminal not restored after " + how)
            want = 0 if how == "q" else -signal.SIGINT
            if p.returncode != want:
                fail("exit status %r after %s" % (p.returncode, how))
            if b"\x1b[?25l" not in out:
                fail("cursor never hidden")
            while select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
            if b"\x1b[?25h" not in out[out.rfind(b"\x1b[?25l"):]:
                fail("cursor not shown again after " + how)
            os.close(master)
            os.close(slave)
            print(how, "ok")
    elif cmd == "fake":             # fake CTL SOCK: pqshimctl against bad replies
        ctl, path = args
        me = str(os.getpid()).encode()   # who serves the socket, as the kernel says
        big = json.dumps({"pid": os.getpid(), "program": "x", "policy": "capped", "paused": False,
                          "uptime_s": 1, "pools": [{"target": "t%d" % i, "cap": 5, "open": 1}
                                                   for i in range(60000)]}).encode()
        cases = [
            # (reply, command, extra args, exit status, stderr has, stdout must not have)
            (b'{"pid":1', "status", [], 1, "malformed reply", None),
            (b"[" * 100000, "status", [], 1, "malformed reply", None),
            (b'{"a":1}x', "status", [], 1, "malformed reply", None),
            (b"\x00\xff\xfe garbage", "status", [], 1, "malformed reply", None),
            (b'{"n":01}', "status", [], 1, "malformed reply", None),
            (b'{"s":"\\x"}', "status", [], 1, "malformed reply", None),
            (b'{"s":"\x01"}', "status", [], 1, "malformed reply", None),
            (b'{"error":"boom \\u001b[31m red"}', "status", [], 1, "boom ?[31m red", None),
            (b'{"error":"nope"}', "metrics", [], 1, "nope", None),
            (b'{"error":"nope"}', "status", ["--json"], 1, "", None),
            (b'{"pid":' + me + b',"program":"\\u001b]0;owned\\u0007","policy":"\\u001b[2J","pools":'
             b'[{"target":"\\u001b[2J\\ud800\\udc00\\ud800","cap":1e999,"open":-1.5e3}]}',
             "status", [], 0, "", b"\x1b"),
            # A reply that names another process is not believed.
            (b'{"pid":1,"program":"x","policy":"capped","pools":[]}', "status", [], 1,
             "the reply claims pid 1 but pid " + me.decode() + " serves the socket", None),
            # Raw text replies reach no terminal with their escapes.
            (b"# HELP \x1b]0;owned\x07 \x9b2J \xc2\x9b2J\npqshim_x 1\n", "metrics", [], 0, "",
             b"\x1b"),
            (b"help \x1b[2J\x07\r\n", "help", [], 0, "", b"\x1b"),
            (b'{"pid":' + me + b',"\x1b":"\x1b[2J"}', "status", ["--json"], 1, "malformed", b"\x1b"),
            (b'{"targets":[{"target":"a","ok":false,"via":"new","ms":1,"error":"down"}],"ok":false}',
             "health", [], 1, "", None),
            (b'{"targets":[],"ok":true}', "health", [], 0, "", None),
            (big, "status", [], 0, "", None),
            (None, "status", ["-t", "0.5"], 2, "no reply within 0.5 s", None),
        ]
        for reply, command, extra, want_rc, want_err, banned in cases:
            if os.path.exists(path):
                os.unlink(path)
            srv = socket.socket(socket.AF_UNIX)
            srv.bind(path)
            srv.listen(1)
            def serve():
                c, _ = srv.accept()
                c.settimeout(5)
                try:
                    c.recv(4096)
                    if reply is None:
                        time.sleep(1.5)   # a hung process: never answers in time
                    else:
                        c.sendall(reply)
                except OSError:
                    pass
                c.close()
            t = threading.Thread(target=serve)
            t.start()
            t0 = time.monotonic()
            r = subprocess.run([ctl, "-s", path] + extra + [command], capture_output=True,
                               timeout=20)
            took = time.monotonic() - t0
            t.join(10)
            srv.close()
            what = "%r... %s" % ((reply or b"")[:40], command)
            if r.returncode != want_rc:
                fail("%s: exit %d, want %d; stderr %r" % (what, r.returncode, want_rc, r.stderr[:300]))
            if want_err and want_err.encode() not in r.stderr:
                fail("%s: stderr %r lacks %r" % (what, r.stderr[:300], want_err))
            if banned and (banned in r.stdout or banned in r.stderr):
                fail("%s: output carries %r" % (what, banned))
            if reply is None and took > 1.4:
                fail("timeout took %.2f s" % took)
        os.unlink(path)
        print("ok", len(cases))
    else:
        fail("unknown helper command " + cmd)

main()
