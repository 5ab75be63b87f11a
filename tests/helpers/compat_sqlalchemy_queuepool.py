# Compatibility row: SQLAlchemy on psycopg2 with its QueuePool; argv[1]: the
# app pool's size (60-compat).
import sys
import threading

import sqlalchemy
from sqlalchemy import text

size = int(sys.argv[1])
engine = sqlalchemy.create_engine("postgresql+psycopg2://", pool_size=size,
                                  max_overflow=0, pool_timeout=10)
errors = []
barrier = threading.Barrier(4)


def work(n):
    try:
        barrier.wait(10)
        for i in range(5):
            with engine.connect() as c:
                assert c.execute(text("select :n"), {"n": n}).scalar() == n
    except Exception as e:
        errors.append(str(e).splitlines()[0])


threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
engine.dispose()
print("errors", len(errors))
for e in sorted(set(errors)):
    print(e)
