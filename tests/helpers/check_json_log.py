# check_json_log.py FILE: every line of a JSON-format log is an object with
# the common keys.
import json, sys
lines = open(sys.argv[1]).read().splitlines()
events = []
for line in lines:
    obj = json.loads(line)
    for key in ("ts", "pid", "level", "event", "target"):
        assert key in obj, "%s missing in %s" % (key, line)
    assert isinstance(obj["pid"], int), line
    events.append(obj["event"])
assert events == ["connect", "close"], events
