# ctl_holder.py APP N CLOSE OUTFILE [DSN...]: open N connections tagged
# application_name=APP, close CLOSE of them, say "ready PID", then obey
# one command per stdin line until "exit" or end of input.
import os, sys, time
import psycopg2

app, n, close, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dsn = " ".join(["application_name=" + app] + sys.argv[5:])

def say(msg):
    with open(out, "a") as f:
        f.write(msg + "\n")

conns = [psycopg2.connect(dsn) for _ in range(n)]
for c in conns[:close]:
    c.close()
held = conns[close:]
say("ready %d" % os.getpid())
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "connect":
        t0 = time.monotonic()
        try:
            c = psycopg2.connect(dsn)
            c.cursor().execute("select 1")
            held.append(c)
            say("connected %.3f" % (time.monotonic() - t0))
        except psycopg2.Error as e:
            say("failed %.3f %s" % (time.monotonic() - t0, " ".join(str(e).split())))
    elif words[0] == "close":
        k = int(words[1])
        for c in held[:k]:
            c.close()
        del held[:k]
        say("closed %d" % k)
    elif words[0] == "query":
        for c in held:
            c.cursor().execute("select 1")
        say("queried %d" % len(held))
    elif words[0] == "churn":
        # connect, query, close until the file words[1] exists (bounded)
        count = errors = 0
        say("churning")
        while not os.path.exists(words[1]) and count < 200000:
            try:
                c = psycopg2.connect(dsn)
                c.cursor().execute("select 1")
                c.close()
            except psycopg2.Error:
                errors += 1
            count += 1
        say("churned %d errors=%d" % (count, errors))
    elif words[0] == "exit":
        break
for c in held:
    c.close()
say("bye")
