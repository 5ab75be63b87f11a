# Compatibility row: SQLAlchemy on psycopg2 with NullPool (60-compat).
import sys
import threading

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool

sys.path.insert(0, ".")
from compat_session import use

engine = sqlalchemy.create_engine("postgresql+psycopg2://", poolclass=NullPool,
                                  isolation_level="AUTOCOMMIT")
out = []
for i in range(5):
    with engine.connect() as c:
        use(lambda q: str(c.execute(text(q)).scalar()), lambda q: c.execute(text(q)), out)

errors = []


def work(n):
    try:
        for i in range(5):
            with engine.connect() as c:
                assert c.execute(text("select :n"), {"n": n}).scalar() == n
    except Exception as e:
        errors.append(repr(e))


threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
print("\n".join(out))
print("done", sqlalchemy.__version__)
