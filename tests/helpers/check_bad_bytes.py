# check_bad_bytes.py DIR: no byte of the hostile inputs reached a log, status
# or table unescaped (54-hostile).
import json, re, sys
t = sys.argv[1]
def text(name):
    data = open(t + "/" + name, "rb").read()
    s = data.decode("utf-8")          # strict: invalid UTF-8 fails here
    bad = [c for c in s if ord(c) < 0x20 and c != "\n"]
    assert not bad, (name, bad)
    return s
lines = text("json.log").splitlines()
assert lines
for line in lines:
    json.loads(line)
conn = [json.loads(l) for l in lines if '"event":"connect"' in l][0]
assert "\ufffd" in conn["target"] and "\r" in conn["target"] and "\x1b" in conn["target"], conn
status = json.loads(text("status.json"))
assert "\x1b" in status["pools"][0]["target"], status
text("status.txt")
log = text("text.log")
assert "\\xff" in log and "\\x1b" in log, log
prom = text("metrics.prom")
samples = [l for l in prom.splitlines() if l.startswith("pqshim_connections_open{")]
assert len(samples) == 1, samples
m = re.fullmatch(r'pqshim_connections_open\{pid="\d+",program="[^"\\]*",target="((?:[^"\\]|\\.)*)"\} 1', samples[0])
assert m and "\ufffd" in m.group(1), samples
print("ok")
