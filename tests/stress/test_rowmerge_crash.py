"""Crashes and I/O errors during a row-level merge (udr merge --key):
UDR_FAULT=<op>:<n>:crash|eio at every call of each publishing I/O operation
until the merge runs past it.  All or nothing: main's table is either ours
untouched or exactly the merged rows, in one merge commit; fsck clean; a
retry on a healthy disk completes it.
"""
import json
import os
import shutil
import signal

import pytest

from conftest import FAULT_INJECTION, SANITIZE, Udr

needs_fi = pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
CASES = ([("link", "crash"), ("syncfs", "crash")] if SANITIZE else
         [(op, "crash") for op in ("syncfs", "link", "rename", "write")] + [("link", "eio"), ("write", "eio")])
NMAX = 200

BASE = "id,a\n1,x\n2,y\n3,z\n4,w\n"
OURS = "id,a\n1,X\n2,y\n3,z\n5,n\n"
THEIRS = "id,a\n1,x\n2,Y\n3,z\n4,w\n6,m\n"
MERGED = [[1, "X"], [2, "Y"], [3, "z"], [5, "n"], [6, "m"]]
OURS_ROWS = [[1, "X"], [2, "y"], [3, "z"], [5, "n"]]


def rows(u):
    return [list(r.values()) for r in json.loads(u.ok("sql", "SELECT * FROM t ORDER BY id", "--json"))]


def sql_template(tmp_path, conflict):
    """A 1000-row table written by SQL (deletion vectors over shared parts:
    the merge matches rows by their place in the store)."""
    u = Udr(tmp_path / "template")
    u.ok("init")
    u.ok("sql", "CREATE TABLE t AS SELECT range AS id, 'v' || range AS a FROM range(1000)")
    u.ok("branch", "create", "base")
    u.ok("sql", "UPDATE t SET a = 'theirs' WHERE id % 100 = 1")
    u.ok("branch", "create", "dev")
    u.ok("branch", "reset", "main", "--to", "base")
    u.ok("sql", "UPDATE t SET a = 'ours' WHERE id %% 100 = %d" % (1 if conflict else 2))
    return u


def template(tmp_path):
    u = Udr(tmp_path / "template")
    u.ok("init")
    for name, text in (("b.csv", BASE), ("o.csv", OURS), ("t.csv", THEIRS)):
        (tmp_path / name).write_text(text)
    u.ok("import", "t", str(tmp_path / "b.csv"))
    u.ok("branch", "create", "dev")
    u.ok("import", "t", str(tmp_path / "t.csv"), "--branch", "dev")
    u.ok("import", "t", str(tmp_path / "o.csv"))
    return u


@needs_fi
@pytest.mark.parametrize("op,action", CASES)
def test_fault_row_merge(tmp_path, op, action):
    tpl = template(tmp_path)
    ours_v = json.loads(tpl.ok("show", "t"))["version"]
    nlog = len(json.loads(tpl.ok("log", "--json")))
    args = ["merge", "dev", "--key", "t=id"]
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
        log = json.loads(u.ok("log", "--json"))
        done = json.loads(u.ok("show", "t"))["version"] != ours_v
        if done:
            assert rows(u) == MERGED, ctx
            assert len(log) == nlog + 1 and log[-1 if log[-1]["seq"] > log[0]["seq"] else 0]["op"] == "merge", ctx
        else:
            assert rows(u) == OURS_ROWS and len(log) == nlog, ctx
        if p.returncode == 0:
            assert done, ctx
            return
        if not done:
            u.ok(*args)
            assert rows(u) == MERGED, ctx
        shutil.rmtree(u.root)
    pytest.fail("the merge never ran past the fault at n=%d" % NMAX)


@needs_fi
@pytest.mark.parametrize("op,action", CASES)
@pytest.mark.parametrize("conflict", [False, True])
def test_fault_row_merge_by_place(tmp_path, op, action, conflict):
    """The fast path (clean: one merge commit or nothing) and a conflicting
    merge (its record in catalog/merges whole, or none; main never moves)."""
    tpl = sql_template(tmp_path, conflict)
    ours_rows = rows(tpl)
    nlog = len(json.loads(tpl.ok("log", "--json")))
    args = ["merge", "dev", "--key", "t=id"]
    want = None
    for n in range(1, NMAX + 1):
        ctx = "%s:%d:%s" % (op, n, action)
        u = Udr(tmp_path / ("s%d" % n))
        shutil.copytree(tpl.root, u.root, symlinks=True)
        p = u.run(*args, env_extra={"UDR_FAULT": ctx})
        if p.returncode == -signal.SIGKILL:
            assert action == "crash", ctx
        elif p.returncode not in (0, 3):
            assert action == "eio" and p.returncode == 5, "%s: exit %d %s" % (ctx, p.returncode, p.stderr)
        f = u.fsck()
        assert f.returncode == 0, "%s: fsck exit %d\n%s%s" % (ctx, f.returncode, f.stdout.decode(),
                                                               f.stderr.decode())
        log = json.loads(u.ok("log", "--json"))
        rec = os.path.join(u.root, "catalog", "merges", "main.json")
        if conflict:
            assert len(log) == nlog and rows(u) == ours_rows, ctx
            done = os.path.exists(rec)
            if done:  # a record is whole: it reads back
                c = json.loads(u.ok("conflicts", "--json"))
                assert len(c) == 10, ctx
        else:
            done = len(log) == nlog + 1
            if want is None and done:
                want = rows(u)
            if done:
                assert rows(u) == want and sum(r[1] == "theirs" for r in want) == 10, ctx
                assert sum(r[1] == "ours" for r in want) == 10, ctx
            else:
                assert rows(u) == ours_rows and len(log) == nlog, ctx
        if p.returncode in (0, 3):
            assert done, ctx
            return
        if not done:
            r = u.run(*args)
            assert r.returncode == (3 if conflict else 0), ctx
        shutil.rmtree(u.root)
    pytest.fail("the merge never ran past the fault at n=%d" % NMAX)
