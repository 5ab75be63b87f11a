# check_man_log_events.py SHIM_DIR PAGE: the shim's log events and close
# reasons match the page's LOG LINES.
import glob, os, re, sys
shim, page = sys.argv[1], open(sys.argv[2]).read()
events, reasons = set(), set()
for path in glob.glob(os.path.join(shim, "*.c")):
    name = os.path.basename(path)
    for line in open(path):
        events.update(re.findall(r'(?:LOG_EVENT\(|log_emit\([^,]*, *)LOG_LVL_[A-Z]+, *"([a-z_]+)"', line))
        events.update(re.findall(r'\brefuse\("([a-z_]+)"', line))
        reasons.update(re.findall(r'LF_S\("reason", *"([a-z_]+)"', line))
        if re.search(r'why = |conn_close\(|take_for_close\(|pool_close_idle\(', line) or \
                (name == "lifecycle.c" and re.match(r'\s*return "[a-z_]+";', line)):
            reasons.update(re.findall(r'"([a-z_]+)"', line))
log = page.split("\n.SH LOG LINES\n", 1)[1].split("\n.SH ", 1)[0]
lines = log.split("\n")
headings = set()
for prev, line in zip([""] + lines, lines):
    if prev.startswith(".TP") and line.startswith(".B"):
        headings.update(w.strip('",') for w in line.split()[1:] if w.strip('",'))
close = log.split("\n.B close\n", 1)[1].split("\n.TP\n", 1)[0]
listed = set(re.findall(r"^\.BR? ([a-z_]+)", close, flags=re.M))
bad = ["event %s (shim/*.c) is not in man/pqshim.7 LOG LINES" % e for e in sorted(events - headings)]
bad += ["man/pqshim.7 lists event %s, which the shim never writes" % e for e in sorted(headings - events)]
bad += ["close reason %s (shim/*.c) is not in man/pqshim.7" % r for r in sorted(reasons - listed)]
if len(events) < 20 or len(reasons) < 10:
    bad.append("found only %d events and %d close reasons in shim/*.c" % (len(events), len(reasons)))
if bad:
    sys.exit("\n".join(bad))
print("%d events, %d close reasons" % (len(events), len(reasons)))
