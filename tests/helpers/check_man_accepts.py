# check_man_accepts.py CONFIG_C PAGE: what config.c says each variable accepts
# is in its man page entry.
import re, sys
config, man = open(sys.argv[1]).read(), open(sys.argv[2]).read()
env = man.split("\n.SH ENVIRONMENT\n", 1)[1].split("\n.SH ", 1)[0]
# Entries: ".TP\n.B NAME\n" up to the next .TP, markup removed.
entries = {}
for block in re.split(r"^\.TP\n", env, flags=re.M):
    m = re.match(r"\.B (PQSHIM_[A-Z_]+)\n", block)
    if m:
        text = re.sub(r"^\.[A-Z]+ ?", "", block, flags=re.M)
        text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\e", "\\")
        entries[m.group(1)] = text
ignore = {"an", "a", "or", "from", "to", "for", "integer", "seconds", "decimals", "allowed",
          "absolute", "file", "path", "percent", "sign", "pid", "uid", "never"}
bad = []
for name, accepted in re.findall(r'\{"(PQSHIM_[A-Z_]+)", *parse_\w+, *"((?:[^"\\]|\\.)*)"\}', config):
    for w in re.findall(r"[%A-Za-z0-9]+", accepted):
        if w.lower() not in ignore and not re.search(r"(?<![A-Za-z0-9])" + re.escape(w) + r"(?![A-Za-z0-9])",
                                                     entries.get(name, "")):
            bad.append("%s: man/pqshim.7 does not say %r (config.c accepts: %s)" % (name, w, accepted))
if bad:
    sys.exit("\n".join(bad))
