"""udr_log's rows inserted, updated and deleted per table version: exact for
SQL writes, imports (new table, --append, --key) and compactions, NULL where
a commit carries no knowledge of rows (chunks committed by hand, an
overwriting import, a revert); dropped marks a DROP TABLE."""
import json

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def last(udr, table="t"):
    """(inserted, updated, deleted, dropped) of the table's newest udr_log row."""
    out = udr.ok("sql", "SELECT inserted, updated, deleted, dropped FROM udr_log WHERE \"table\" = '%s' "
                 "ORDER BY seq DESC LIMIT 1" % table, "--json").out
    r = json.loads(out)[0]
    return (r["inserted"], r["updated"], r["deleted"], r["dropped"])


def nlog(udr):
    return json.loads(udr.ok("sql", "SELECT count(*) AS n FROM udr_log", "--json").out)[0]["n"]


def w(udr, q, *args):
    udr.ok("sql", q, "--no-compact", *args)


@pytest.fixture
def t(udr, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("id,v\n1,a\n2,b\n3,c\n")
    udr.ok("import", "t", a)
    return udr


def test_imports(t, tmp_path):
    assert last(t) == (3, 0, 0, False)  # a new table: every row inserted
    b = tmp_path / "b.csv"
    b.write_text("id,v\n4,d\n5,e\n")
    t.ok("import", "t", b, "--append")
    assert last(t) == (2, 0, 0, False)
    k = tmp_path / "k.csv"  # 1 same, 2 changed, 3 gone, 4 same, 5 changed, 9 new
    k.write_text("id,v\n1,a\n2,X\n4,d\n5,Y\n9,z\n")
    t.ok("import", "t", k, "--key", "id")
    assert last(t) == (1, 2, 1, False)
    # a key whose row comes back unchanged but another row's key changes
    k.write_text("id,v\n1,a\n2,X\n4,d\n5,Y\n10,z\n")
    t.ok("import", "t", k, "--key", "id")
    assert last(t) == (1, 0, 1, False)
    # an overwrite replaces the table: no row is matched, nothing said
    t.ok("import", "t", b)
    assert last(t) == (None, None, None, False)


def test_sql_writes(t):
    w(t, "UPDATE t SET v = 'Q' WHERE id IN (1, 3)")
    assert last(t) == (0, 2, 0, False)
    # only rows whose values change count (1 is already Q)
    w(t, "UPDATE t SET v = 'Q' WHERE id IN (1, 2)")
    assert last(t) == (0, 1, 0, False)
    n = nlog(t)
    w(t, "UPDATE t SET v = v")  # changes nothing, commits nothing
    assert nlog(t) == n
    w(t, "DELETE FROM t WHERE id = 2")
    assert last(t) == (0, 0, 1, False)
    w(t, "INSERT INTO t VALUES (7, 'g'), (8, 'h'), (9, 'i')")
    assert last(t) == (3, 0, 0, False)
    w(t, "MERGE INTO t USING (SELECT 7 AS id, 'G' AS v UNION ALL SELECT 20, 'n') s ON t.id = s.id "
         "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)")
    assert last(t) == (1, 1, 0, False)
    # a transaction over two tables: one row each
    w(t, "BEGIN; DELETE FROM t WHERE id > 7; CREATE TABLE u AS SELECT 1 AS x UNION ALL SELECT 2; COMMIT")
    assert last(t) == (0, 0, 3, False) and last(t, "u") == (2, 0, 0, False)
    # stored whole: rows compared as multisets
    w(t, "CREATE OR REPLACE TABLE u AS SELECT 1 AS x UNION ALL SELECT 3 UNION ALL SELECT 3")
    assert last(t, "u") == (2, 0, 1, False)
    w(t, "CREATE OR REPLACE TABLE u AS SELECT 'a' AS y")  # another schema: every row
    assert last(t, "u") == (1, 0, 3, False)
    w(t, "DROP TABLE u")
    assert last(t, "u") == (0, 0, 1, True)
    w(t, "CREATE TABLE u AS SELECT 5 AS z")  # after the drop: a new table
    assert last(t, "u") == (1, 0, 0, False)


def test_compaction_changes_no_row(t):
    for i in range(9):
        t.ok("sql", "INSERT INTO t VALUES (%d, 'n')" % (100 + i))  # compacts after the 8th part
    rows = json.loads(t.ok("sql", "SELECT message, inserted, updated, deleted FROM udr_log "
                           "ORDER BY seq", "--json").out)
    comp = [r for r in rows if r["message"] == "compaction after a SQL write"]
    assert comp and all((r["inserted"], r["updated"], r["deleted"]) == (0, 0, 0) for r in comp)


def test_commits_without_row_knowledge_are_null(t, tmp_path):
    h = t.put(b"id,v\n1,a\n")
    t.ok("commit", "t", "--next", h)  # chunks committed by hand
    assert last(t) == (None, None, None, False)
    t.ok("commit", "raw", "--next", h)  # a new table of raw chunks: no udr.rows
    assert last(t, "raw") == (None, None, None, False)
    # a revert copies the content of the version before (udr.changes too,
    # which describe that version's own change): NULL, not those counts
    w(t, "INSERT INTO t VALUES (7, 'g'), (8, 'h')")
    assert last(t) == (2, 0, 0, False)
    seq = json.loads(t.ok("log", "--limit", "1", "--json").out)[0]["seq"]
    t.ok("revert", str(seq))
    assert last(t) == (None, None, None, False)
    assert t.ok("sql", "SELECT count(*) AS n FROM t", "--csv").out.split() == ["n", "1"]
