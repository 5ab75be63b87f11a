# check_man_settings.py SETTINGS PAGE: what each setting accepts and its
# default (SETTINGS: the output of pqshim --list-settings) are in its man
# page entry.
import re, sys
settings = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
man = open(sys.argv[2]).read()
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
if not settings or any(len(s) != 5 for s in settings):
    sys.exit("pqshim --list-settings: not 5 fields on every line")
for name, option, default, accepted, doc in settings:
    for w in re.findall(r"[%A-Za-z0-9]+", accepted):
        if w.lower() not in ignore and not re.search(r"(?<![A-Za-z0-9])" + re.escape(w) + r"(?![A-Za-z0-9])",
                                                     entries.get(name, "")):
            bad.append("%s: man/pqshim.7 does not say %r (the shim accepts: %s)" % (name, w, accepted))
    # The default, where it is a value (0, unset and the default path are
    # said in words there).
    if default not in ("0", "default", "unset") and not re.search(
            r"(?<![A-Za-z0-9.])" + re.escape(default) + r"(?![A-Za-z0-9])", entries.get(name, "")):
        bad.append("%s: man/pqshim.7 does not give the default %s" % (name, default))
if bad:
    sys.exit("\n".join(bad))
