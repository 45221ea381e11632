"""Review of the SQL write path's key pruning and deletion-vector thread
(docs/QUERY.md, "Writing tables with SQL"): an UPDATE/DELETE whose condition
is "[alias.]col = N" reads only the parts whose Parquet statistics admit N;
the deletion vectors are put by a second thread.  Each pruned statement is
compared with the same statement whose condition is parenthesized, which
the pruning does not recognise (every part read): the tables must end equal.
"""
import json
import shutil

import pytest

from conftest import FAULT_INJECTION, Udr, run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)

ROWS = 123000  # more than a row group (122,880): such parts are pruned

COLS = ("(r % 1000)::INTEGER AS i, (r % 70000)::UINTEGER AS u, (r % 100)::SMALLINT AS s, 0 AS x")


def state(u):
    return u.ok("sql", "SELECT count(*) AS n, sum(hash(id, i, u, s, x)) AS h FROM t", "--json").out


@pytest.fixture
def big(tmp_path):
    """t: three parts of ROWS rows; the second holds INT64's and UINTEGER's
    extremes, the third NULL keys."""
    u = Udr(tmp_path / "a")
    u.ok("init")
    u.ok("sql", f"CREATE TABLE t AS SELECT r::BIGINT AS id, {COLS} FROM range({ROWS}) g(r)")
    u.ok("sql", "INSERT INTO t SELECT CASE r WHEN 0 THEN -9223372036854775808 WHEN 1 THEN 9223372036854775807 "
         "ELSE r + 1000000 END, (CASE r WHEN 2 THEN 2147483647 ELSE -r END)::INTEGER, "
         "(CASE r WHEN 3 THEN 4294967295 ELSE r + 100000 END)::UINTEGER, (r % 100)::SMALLINT, 0 "
         f"FROM range({ROWS}) g(r)", "--no-compact")
    u.ok("sql", f"INSERT INTO t SELECT CASE WHEN r % 10 = 0 THEN NULL ELSE r + 2000000 END, {COLS} "
         f"FROM range({ROWS}) g(r)", "--no-compact")
    parts = json.loads(json.loads(u.ok("show", "t").out)["metadata"]["udr.parts"])
    assert [p["rows"] for p in parts] == [ROWS] * 3
    b = Udr(tmp_path / "b")
    shutil.copytree(u.root, b.root, symlinks=True)
    return u, b


# (pruned statement, the same with its condition parenthesized, params)
CASES = [
    ("UPDATE t SET x = 1 WHERE id = -9223372036854775808", None, ()),
    ("UPDATE t SET x = 2 WHERE id = 9223372036854775807", None, ()),
    ("UPDATE t SET x = 3 WHERE u = 4294967295", None, ()),
    ("UPDATE t SET x = 4 WHERE i = 2147483647", None, ()),
    ("UPDATE t SET x = 5 WHERE i = -5", None, ()),
    ('UPDATE t SET x = 6 WHERE "ID" = 1000005', None, ()),
    ("UPDATE t AS q SET x = 7 WHERE q.id = 2000005 -- c", "UPDATE t AS q SET x = 7 WHERE (q.id = 2000005)", ()),
    ("DELETE FROM t WHERE 1000007 = id", None, ()),
    ("UPDATE t SET x = 8 WHERE id = ?", None, ("-p", "int:1000011")),
    ("UPDATE t SET x = 9 WHERE id = ?", None, ("-p", "1000013")),
    ("UPDATE t SET x = ? WHERE s = ?", "UPDATE t SET x = ? WHERE (s = ?)", ("-p", "int:10", "-p", "int:65635")),
    ("UPDATE t SET x = 11 WHERE u = ?", None, ("-p", "int:-1")),
    ("UPDATE t AS id SET x = 12 WHERE id = 2000007", None, ()),
    # the key itself changed, then the new key written (a small new part)
    ("UPDATE t SET id = id + 10000000 WHERE id = 1000017", None, ()),
    ("UPDATE t SET x = 13 WHERE id = 11000017", None, ()),
    # deleted in a large part, inserted again in a small one
    ("DELETE FROM t WHERE id = 2000021", None, ()),
    ("INSERT INTO t VALUES (2000021, 0, 0, 0, 0)", None, ()),
    ("UPDATE t SET x = 14 WHERE id = 2000021", None, ()),
    ("UPDATE t SET x = 15 WHERE id = 02000023 RETURNING id, x", "UPDATE t SET x = 15 WHERE (id = 02000023) RETURNING id, x",
     ()),
]


def paren(stmt):
    if " WHERE " not in stmt:
        return stmt
    head, cond = stmt.split(" WHERE ", 1)
    return f"{head} WHERE ({cond})"


def test_pruned_writes_equal_unpruned_ones(big):
    a, b = big
    for stmt, ref, params in CASES:
        ref = ref or paren(stmt)
        ra = a("sql", stmt, "--no-compact", *params)
        rb = b("sql", ref, "--no-compact", *params)
        assert ra.code == rb.code == 0, (stmt, ra, rb)
        assert ra.out == rb.out, stmt
        assert state(a) == state(b), stmt
    assert a.ok("sql", "SELECT count(*) FROM t WHERE x <> 0", "--csv").out.split()[1] == "12"  # x = 5 (id 1000005) overwritten by x = 6


@pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
def test_faults_while_the_deletion_vectors_are_put(udr, tmp_path):
    """A failed put (deletion vector or new part, on either thread) commits
    nothing; a write that reports success is complete."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range::BIGINT AS id, 0 AS x FROM range(1000)")
    for k in range(1, 4):
        udr.ok("sql", f"INSERT INTO t SELECT range::BIGINT + {k} * 5000, 0 FROM range(1000)", "--no-compact")
    before = json.loads(udr.ok("show", "t").out)["version"]
    for op, top in (("fsync", 8), ("write", 8), ("open", 10)):
        for n in range(1, top + 1):
            c = Udr(tmp_path / f"f-{op}-{n}")
            shutil.copytree(udr.root, c.root, symlinks=True)
            r = c("sql", "UPDATE t SET x = 7 WHERE id IN (3, 5005, 10007, 15009)", "--no-compact",
                  env={"UDR_FAULT": f"{op}:{n}:eio"})
            v = json.loads(c.ok("show", "t").out)["version"]
            got = c.ok("sql", "SELECT count(*) FROM t WHERE x = 7", "--csv").out.split()[1]
            if r.code == 0:
                assert (v, got) == (before + 1, "4"), (op, n, r)
            elif v == before:
                assert got == "0", (op, n, r)
            else:  # failed after the commit was linked (durability unknown)
                assert (v, got) == (before + 1, "4"), (op, n, r)
            c.ok("fsck")
            shutil.rmtree(c.root)
