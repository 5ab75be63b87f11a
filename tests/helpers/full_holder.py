# full_holder.py ROLE READY RELEASE AFTER: fills the server's connection slots
# as ROLE until RELEASE exists or AFTER s.
import os, sys, time
import psycopg2

role, ready, release, after = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
conns = []

def grab():
    try:
        conns.append(psycopg2.connect("", user=role, application_name="full_holder"))
        return True
    except psycopg2.OperationalError as e:
        if "reserved" in str(e) or "too many" in str(e):
            return False
        raise

while grab():
    if len(conns) > 500:
        sys.exit("the server never refused")
with open(ready + ".tmp", "w") as f:
    f.write("%d\n" % len(conns))
os.rename(ready + ".tmp", ready)
start = time.monotonic()
while time.monotonic() - start < 60:
    if os.path.exists(release) or (after >= 0 and time.monotonic() - start >= after):
        break
    grab()
    time.sleep(0.02)
for c in conns:
    c.close()
print("held %d" % len(conns))
