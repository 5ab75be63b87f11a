# check_bad_input_log.py CASES: CASES holds DIR, VARIABLE, VALUE triples
# (NUL-separated); each case's log in DIR says the bad setting in one line
# (52-bad-input).
import os, re, sys
items = open(sys.argv[1], "rb").read().split(b"\0")[:-1]
problems, n = [], 0

def read(d, name):
    path = os.path.join(d, name)
    return open(path, "rb").read() if os.path.exists(path) else b""

for i in range(0, len(items), 3):
    d, var, value = items[i].decode(), items[i + 1].decode(), items[i + 2]
    n += 1
    what = "%s=%r" % (var, value[:20])
    rc, out, err = read(d, "rc").strip(), read(d, "out"), read(d, "err")
    log = err if var == "PQSHIM_LOG" else read(d, "log")
    if rc != b"0" or out != b"1\n":
        problems.append("%s: psql rc=%s out=%r err=%r" % (what, rc, out, err[:300]))
        continue
    if var != "PQSHIM_LOG" and err:
        problems.append("%s: psql stderr %r" % (what, err[:300]))
    lines = log.decode("utf-8", "replace").splitlines()
    bad = [l for l in lines if re.search(r": (error|warn) ", l)]
    if len(bad) != 1 or " error event=config_invalid " not in bad[0]:
        problems.append("%s: error and warning lines %r" % (what, bad))
        continue
    line = bad[0]
    for need in (" variable=%s " % var, ' accepted="', " using="):
        if need not in line:
            problems.append("%s: %r not in %r" % (what, need, line))
    if len(line) >= 600:
        problems.append("%s: a %d-byte line" % (what, len(line)))
    if len(value) > 64 and ("value=%s..." % value[:64].decode()) not in line:
        problems.append("%s: the value is not shown cut to 64 characters: %r" % (what, line[:300]))
    if sum(1 for l in lines if " event=connect " in l) != 1:
        problems.append("%s: connect lines: %r" % (what, lines))
for p in problems:
    print("    " + p)
print("%d cases, %d problems" % (n, len(problems)))
sys.exit(1 if problems else 0)
