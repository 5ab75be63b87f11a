# Compatibility row: pyodbc through psqlODBC (60-compat).
import sys

import pyodbc

sys.path.insert(0, ".")
from compat_session import use

out = []
for i in range(5):
    conn = pyodbc.connect("DSN=compat", autocommit=True)
    cur = conn.cursor()
    use(lambda q: str(cur.execute(q).fetchone()[0]), cur.execute, out)
    assert cur.execute("select ?::int + 2", 40).fetchone()[0] == 42
    conn.close()
print("\n".join(out))
print("done pyodbc", pyodbc.version)
