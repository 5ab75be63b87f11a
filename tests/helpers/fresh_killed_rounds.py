# fresh_killed_rounds.py ROUNDS CONNINFO: each round pools three
# connections, has the server kill them (pg_terminate_backend), waits until
# they are gone, then runs six connect + query cycles. Prints what failed,
# then "rounds N" and "errors N"; 40 s at most.
import sys, time
import psycopg2
rounds, conninfo = int(sys.argv[1]), sys.argv[2]
# The killer's own connection is another target: held all along, it never
# shares the pool under test.
admin = psycopg2.connect(conninfo + " application_name=killer")
admin.autocommit = True
ac = admin.cursor()
errors = done = 0
deadline = time.monotonic() + 40
for r in range(rounds):
    if time.monotonic() > deadline:
        break
    done += 1
    conns = [psycopg2.connect(conninfo) for _ in range(3)]
    pids = []
    for c in conns:
        cur = c.cursor()
        cur.execute("select pg_backend_pid()")
        pids.append(cur.fetchone()[0])
    for c in conns:
        c.close()
    ac.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity where pid = any(%s)", (pids,))
    while True:
        ac.execute("select count(*) from pg_stat_activity where pid = any(%s)", (pids,))
        if ac.fetchone()[0] == 0:
            break
        time.sleep(0.01)
    for i in range(6):
        try:
            c = psycopg2.connect(conninfo)
            cur = c.cursor()
            cur.execute("select 1")
            c.close()
        except Exception as e:
            errors += 1
            print("round %d cycle %d: %s" % (r, i, str(e).strip().replace("\n", " ")))
print("rounds %d" % done)
print("errors %d" % errors)
