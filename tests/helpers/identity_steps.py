# identity_steps.py STEP...: one process, one connect per CONNINFO step
# (psycopg2: PQconnectdb), closed at once; other steps change what libpq
# reads at connect time: "setenv NAME VALUE", "unsetenv NAME", "write PATH
# TEXT" (mode 0600; \n for a newline), "copy SRC DST" (mode 0600, by
# rename), "remove PATH", "seteuid USER|root", "async CONNINFO" (an
# asynchronous connect: PQconnectStart and a poll loop).
# Prints per connect "OK session_user database pid=N application_name" or
# "FAIL error".
import os, pwd, select, sys
import psycopg2, psycopg2.extensions


def connect_async(dsn):
    c = psycopg2.connect(dsn, async_=1)
    while True:
        state = c.poll()
        if state == psycopg2.extensions.POLL_OK:
            break
        if state == psycopg2.extensions.POLL_READ:
            select.select([c.fileno()], [], [], 10)
        else:
            select.select([], [c.fileno()], [], 10)
    return c

args = sys.argv[1:]
i = 0
while i < len(args):
    a = args[i]
    if a == "setenv":
        os.environ[args[i + 1]] = args[i + 2]
        i += 3
        continue
    if a == "unsetenv":
        os.environ.pop(args[i + 1], None)
        i += 2
        continue
    if a == "write":
        path, text = args[i + 1], args[i + 2].replace("\\n", "\n")
        with open(path + ".new", "w") as f:
            f.write(text)
        os.chmod(path + ".new", 0o600)
        os.rename(path + ".new", path)
        i += 3
        continue
    if a == "copy":
        with open(args[i + 1], "rb") as f:
            data = f.read()
        with open(args[i + 2] + ".new", "wb") as f:
            f.write(data)
        os.chmod(args[i + 2] + ".new", 0o600)
        os.rename(args[i + 2] + ".new", args[i + 2])
        i += 3
        continue
    if a == "remove":
        os.unlink(args[i + 1])
        i += 2
        continue
    if a == "seteuid":
        os.seteuid(0 if args[i + 1] == "root" else pwd.getpwnam(args[i + 1]).pw_uid)
        i += 2
        continue
    try:
        if a == "async":
            i += 1
            c = connect_async(args[i])
        else:
            c = psycopg2.connect(a)
        cur = c.cursor()
        cur.execute("select session_user, current_database(), pg_backend_pid(), "
                    "current_setting('application_name')")
        if c.async_:
            select.select([c.fileno()], [], [], 10)
            while c.poll() != psycopg2.extensions.POLL_OK:
                select.select([c.fileno()], [], [], 10)
        user, db, pid, app = cur.fetchone()
        print("OK", user, db, "pid=%d" % pid, app or "-", flush=True)
        c.close()
    except psycopg2.OperationalError as e:
        print("FAIL", " ".join(str(e).split()), flush=True)
    i += 1
