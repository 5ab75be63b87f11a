# check_exposition.py FILE: FILE is the Prometheus text format, strictly;
# prints "ok SERIES".
import re, sys
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
HELP = re.compile(r"^# HELP (%s) .*$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
SAMPLE = re.compile(r'^(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? '
                    r'([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|Inf))$' % NAME)
text = open(sys.argv[1]).read()
if text and not text.endswith("\n"):
    sys.exit("does not end with a newline")
seen_meta, done, series, current = set(), set(), set(), None
for n, line in enumerate(text.split("\n")[:-1], 1):
    m = HELP.match(line) or TYPE.match(line)
    s = None if m else SAMPLE.match(line)
    if not m and not s:
        sys.exit("line %d does not parse: %r" % (n, line))
    name = (m or s).group(1)
    if name != current:
        if name in done:
            sys.exit("line %d: the lines of %s are not together" % (n, name))
        if current:
            done.add(current)
        current = name
    if m:
        key = (line[:6], name)
        if key in seen_meta:
            sys.exit("line %d: second %s for %s" % (n, line[:6], name))
        seen_meta.add(key)
    else:
        if ("# HELP", name) not in seen_meta or ("# TYPE", name) not in seen_meta:
            sys.exit("line %d: a sample before HELP and TYPE" % n)
        if (name, s.group(2)) in series:
            sys.exit("line %d: duplicate series" % n)
        series.add((name, s.group(2)))
print("ok", len(series))
