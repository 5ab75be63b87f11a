# One user's session, the same in every Python row of the compatibility
# tests: show how the session started, leave state behind, answer a query.
import os

CHECK = os.environ["COMPAT_CHECK"]
DIRTY = os.environ["COMPAT_DIRTY"].split(";")


def use(fetchone, execute, out):
    """fetchone(sql) -> first column of the first row; execute(sql)."""
    out.append("clean " + fetchone(CHECK))
    for statement in DIRTY:
        execute(statement)
    assert int(fetchone("select 40 + 2")) == 42
