# man_headings.py FILE [SECTION]: the heading line of every .TP entry, as
# plain text.
import re, sys
lines = open(sys.argv[1]).read().split("\n")
want = sys.argv[2] if len(sys.argv) > 2 else None
section = None
for prev, line in zip([""] + lines, lines):
    if line.startswith(".SH "):
        section = line[4:].strip('"')
    if prev.startswith(".TP") and (want is None or section == want):
        m = re.match(r"\.([A-Z]+) ?(.*)", line)
        macro, rest = (m.group(1), m.group(2)) if m else ("", line)
        words = [a if a else b for a, b in re.findall(r'"([^"]*)"|(\S+)', rest)]
        # .BR, .IR, ...: the arguments alternate fonts, with no space between.
        text = ("" if len(macro) == 2 else " ").join(words)
        print(re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\e", "\\"))
