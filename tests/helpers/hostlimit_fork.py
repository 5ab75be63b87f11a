# hostlimit_fork.py DIR PSQL: a forked child holds nothing of its parent's
# host-limit slots (35-host-limit).
import os, sys, time, subprocess
import psycopg2
T = sys.argv[1]
conn = psycopg2.connect("")
pid = os.fork()
if pid == 0:
    try:
        psycopg2.connect("")
        print("child connected", flush=True)
    except psycopg2.OperationalError as e:
        print("child refused:", str(e).strip().splitlines()[0], flush=True)
    while not os.path.exists(T + "/release"):
        time.sleep(0.02)
    os._exit(0)
time.sleep(1.5)   # the child's attempt has timed out by now
conn.close()
# The child is alive; a new process must still get the slot.
r = subprocess.run([sys.argv[2], "-X", "-At", "-c", "select 7"],
                   capture_output=True, text=True)
print("after close:", r.returncode, r.stdout.strip(), r.stderr.strip())
open(T + "/release", "w").close()
os.waitpid(pid, 0)
