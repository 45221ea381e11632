"""Crashes and I/O errors during a SQL UPDATE of one row:
UDR_FAULT=<op>:<n>:crash|eio at every call of each publishing I/O operation
until the write runs past it.  The new part and the deletion vector are put
by two threads at once (write.c): whichever hits the fault, the write is all
or nothing (the table is the old rows or exactly the new ones, in one
commit), fsck is clean, and a retry on a healthy disk completes it.
"""
import json
import shutil
import signal

import pytest

from conftest import FAULT_INJECTION, SANITIZE, Udr

needs_fi = pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
CASES = ([("link", "crash"), ("syncfs", "crash")] if SANITIZE else
         [(op, "crash") for op in ("fsync", "syncfs", "link", "rename", "write")] +
         [("fsync", "eio"), ("link", "eio"), ("write", "eio")])
NMAX = 200
UPDATE = "UPDATE t SET a = 'new' WHERE id = 1500"


def rows(u):
    return [tuple(r.values()) for r in json.loads(u.ok("sql", "SELECT id, a FROM t WHERE id BETWEEN 1499 AND 1501 "
                                                       "ORDER BY id", "--json"))]


@needs_fi
@pytest.mark.parametrize("op,action", CASES)
def test_fault_sql_update(tmp_path, op, action):
    tpl = Udr(tmp_path / "template")
    tpl.ok("init")
    # two parts (the second from an INSERT), the key in the second
    tpl.ok("sql", "CREATE TABLE t AS SELECT range AS id, 'v' || range AS a FROM range(1000)")
    tpl.ok("sql", "INSERT INTO t SELECT range, 'v' || range FROM range(1000, 2000)")
    old = rows(tpl)
    new = [(1499, "v1499"), (1500, "new"), (1501, "v1501")]
    nlog = len(json.loads(tpl.ok("log", "--json")))
    args = ["sql", "--no-compact", UPDATE]
    for n in range(1, NMAX + 1):
        ctx = "%s:%d:%s" % (op, n, action)
        u = Udr(tmp_path / ("s%d" % n))
        shutil.copytree(tpl.root, u.root, symlinks=True)
        p = u.run(*args, env_extra={"UDR_FAULT": ctx})
        if p.returncode == -signal.SIGKILL:
            assert action == "crash", ctx
        elif p.returncode != 0:
            assert action == "eio" and p.returncode == 5, "%s: exit %d %s" % (ctx, p.returncode, p.stderr)
        f = u.fsck()
        assert f.returncode == 0, "%s: fsck exit %d\n%s%s" % (ctx, f.returncode, f.stdout.decode(),
                                                               f.stderr.decode())
        nnow = len(json.loads(u.ok("log", "--json")))
        done = nnow == nlog + 1
        assert done or nnow == nlog, ctx
        assert rows(u) == (new if done else old), ctx
        assert json.loads(u.ok("sql", "SELECT count(*) AS n FROM t", "--json")) == [{"n": 2000}], ctx
        if p.returncode == 0:
            assert done, ctx
            return
        if not done:
            u.ok(*args)
            assert rows(u) == new, ctx
        shutil.rmtree(u.root)
    pytest.fail("the write never ran past the fault at n=%d" % NMAX)
