# check_log_lines.py FILE FORMAT: every log line well formed, bounded, and of
# a connect's events (52-bad-input).
import json, re, sys
path, fmt = sys.argv[1:3]
allowed = {"connect", "connect_failed", "close", "checkout", "checkin", "ping", "wait"}
text = re.compile(r'^pqshim\[[0-9]+\]: (warn|info|debug) event=([a-z_]+)'
                  r'( [a-z_]+=([^ "]*|"([^"\\]|\\.)*"))*$')
n = 0
with open(path, "rb") as f:
    for raw in f:
        n += 1
        assert len(raw) <= 2048, "a %d-byte line" % len(raw)
        line = raw.decode("utf-8").rstrip("\n")
        if fmt == "json":
            obj = json.loads(line)
            event, level = obj["event"], obj["level"]
            assert level != "error", line
        else:
            m = text.match(line)
            assert m, "malformed line: %r" % line[:300]
            event = m.group(2)
        assert event in allowed, "unexpected event %s: %s" % (event, line[:300])
assert n > 0, "empty log"
print("%s: %d well-formed lines" % (path, n))
