"""Helpers' reviews, stop 37: a part rewritten in place under an open
session (its next statement returned the new bytes' rows, exit 0: a part
was verified once per session), and versions= on WITH ... writes."""
import os

import pytest

import udr


def test_a_part_changed_in_place_is_refused_by_the_open_session(tmp_path):
    root = str(tmp_path / "s")
    db = udr.open(root, create=True)
    db.sql("CREATE TABLE t AS SELECT range AS id, range * 2 AS x FROM range(300000)")
    db.sql("UPDATE t SET x = -1 WHERE id % 100 = 7")
    q = "SELECT count(*), sum(x), sum(id) FROM t@2"
    want = db.sql(q).fetchall()
    parts = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "chunks"))
             for f in fs if len(f) == 64 and os.path.getsize(os.path.join(d, f)) > 100000]
    assert parts, "the table's part is one plain file, read in place"
    path = max(parts, key=os.path.getsize)
    st = os.stat(path)
    with open(path, "r+b") as f:  # one bit, same size and modification time
        f.seek(20000)
        b = f.read(1)
        f.seek(20000)
        f.write(bytes([b[0] ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(udr.IntegrityError):
        db.sql(q).fetchall()
    with open(path, "r+b") as f:  # put back: the session reads it again
        f.seek(20000)
        f.write(b)
    assert db.sql(q).fetchall() == want


@pytest.mark.parametrize("sql", [
    "WITH x AS (SELECT 1) INSERT INTO t SELECT id + 100 FROM t",
    "WITH x AS (SELECT ')' AS c), \"y z\" AS (SELECT 2) DELETE FROM t WHERE id = 1",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) UPDATE t SET id = 5",
])
def test_versions_pins_queries_only_with_a_with_too(tmp_path, sql):
    """versions= refused INSERT ... but not WITH ... INSERT, which
    committed rows read from the pinned version."""
    db = udr.open(str(tmp_path / "s"), create=True)
    db.sql("CREATE TABLE t AS SELECT 1 AS id")
    db.sql("INSERT INTO t VALUES (2)")
    with pytest.raises(udr.InvalidArgumentError, match="versions= needs a query"):
        db.sql(sql, versions={"t": 1})
    assert db.sql("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,)]
    for q, want in [
        ("WITH x AS (SELECT 10 AS k) SELECT id + k FROM t, x", [(11,)]),
        ("WITH x AS MATERIALIZED (SELECT ')' AS c) SELECT id, c FROM t, x", [(1, ")")]),
        ("WITH \"a b\"(v) AS (SELECT 3) SELECT id * v FROM t, \"a b\"", [(3,)]),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) "
         "SELECT count(*) FROM r, t", [(2,)]),
        ("(SELECT id FROM t)", [(1,)]),
    ]:
        assert db.sql(q, versions={"t": 1}).fetchall() == want, q
