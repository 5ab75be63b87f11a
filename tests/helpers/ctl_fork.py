# ctl_fork.py OUT STOP: a capped program that forks; parent and child each
# hold a connection until STOP exists.
import os, sys, time
import psycopg2

out, stop = sys.argv[1], sys.argv[2]
dsn = "application_name=ctlfork"

def say(msg):
    with open(out, "a") as f:
        f.write(msg + "\n")

def wait_for_stop():
    deadline = time.monotonic() + 60
    while not os.path.exists(stop) and time.monotonic() < deadline:
        time.sleep(0.02)

first = psycopg2.connect(dsn)
first.cursor().execute("select 1")
first.close()                     # pooled: the parent's idle connection
child = os.fork()
if child == 0:
    mine = psycopg2.connect(dsn)  # the child's own, and its own socket
    mine.cursor().execute("select 1")
    say("child %d" % os.getpid())
    wait_for_stop()
    mine.close()
    sys.exit(0)
again = psycopg2.connect(dsn)     # the parent reuses its idle connection
again.cursor().execute("select 1")
say("parent %d" % os.getpid())
wait_for_stop()
again.close()
_, status = os.waitpid(child, 0)
say("child exit %d" % status)
