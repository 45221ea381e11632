"""udr sql writes: INSERT, UPDATE, DELETE, MERGE, CREATE TABLE, DROP TABLE and
BEGIN ... COMMIT commit new versions that store only the change (deletion
vectors and small new parts; docs/QUERY.md "Writing tables with SQL")."""
import json
import os

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def sql(udr, query, *args):
    return json.loads(w(udr, query, "--json", *args).out or "[]")


def w(udr, query, *args):
    """A write without the compaction after it (these tables are tiny:
    every deletion passes its threshold)."""
    return udr.ok("sql", query, "--no-compact", *args)


def rows(udr, query):
    return [tuple(r.values()) for r in sql(udr, query)]


def show(udr, table, *args):
    return json.loads(udr.ok("show", table, *args).out)


def head(udr):
    return sql(udr, "SELECT max(seq) AS s FROM udr_log")[0]["s"]


def parts(v):
    return json.loads(v["metadata"]["udr.parts"]) if "udr.parts" in v["metadata"] else None


@pytest.fixture
def users(udr, tmp_path):
    """users: ids 1..6 in two parts (an import and an append)."""
    a = tmp_path / "a.csv"
    a.write_text("id,name,score\n1,ann,10\n2,bob,20\n3,cy,30\n")
    b = tmp_path / "b.csv"
    b.write_text("id,name,score\n4,dee,40\n5,eve,50\n6,fay,60\n")
    udr.ok("import", "users", str(a))
    udr.ok("import", "users", str(b), "--append")
    return udr


ALL = "SELECT id, name, score FROM users ORDER BY id"


def test_update_stores_a_deletion_vector_and_one_small_part(users):
    v2 = show(users, "users")
    r = w(users, "UPDATE users SET score = 0 WHERE id = 5", "-m", "zero eve")
    assert "1" in r.out  # DuckDB's count of changed rows
    v3 = show(users, "users")
    assert v3["version"] == 3 and v3["message"] == "zero eve"
    assert v3["metadata"]["udr.format"] == "parquet-dv"
    p = parts(v3)
    # both old parts are shared; the second gets a deletion vector; one new part
    assert v3["chunks"][:2] == v2["chunks"][:2]
    assert [x["rows"] for x in p] == [3, 3, 1]
    assert "dv" not in p[0] and p[1]["deleted"] == 1 and "dv" not in p[2]
    assert v3["chunks"][3:] == [p[1]["dv"]]  # the DV is a chunk after the parts
    assert v3["metadata"]["udr.rows"] == "6"
    assert json.loads(v3["metadata"]["udr.changes"]) == {"inserted": 0, "updated": 1, "deleted": 0}
    assert rows(users, ALL) == [(1, "ann", 10), (2, "bob", 20), (3, "cy", 30),
                                (4, "dee", 40), (5, "eve", 0), (6, "fay", 60)]
    # the updated row is read last (docs/QUERY.md: row order)
    assert rows(users, "SELECT id FROM users")[-1] == (5,)
    # time travel to before the update
    assert rows(users, "SELECT score FROM users@2 WHERE id = 5") == [(50,)]
    log = sql(users, "SELECT message, new_version FROM udr_log ORDER BY seq DESC LIMIT 1")
    assert log == [{"message": "zero eve", "new_version": 3}]


def test_delete_insert_merge_and_dv_merging(users):
    w(users, "DELETE FROM users WHERE id IN (1, 6)")
    w(users, "DELETE FROM users WHERE id = 2")
    v = show(users, "users")
    p = parts(v)
    assert [(x["rows"], x.get("deleted")) for x in p] == [(3, 2), (3, 1)]
    assert len(v["chunks"]) == 4
    assert json.loads(show(users, "users")["metadata"]["udr.changes"]) == {
        "inserted": 0, "updated": 0, "deleted": 1}
    w(users, "INSERT INTO users VALUES (7, 'gus', 70), (8, 'hal', 80)")
    assert json.loads(show(users, "users")["metadata"]["udr.changes"]) == {
        "inserted": 2, "updated": 0, "deleted": 0}
    w(users, "MERGE INTO users USING (SELECT 3 AS id, 33 AS s UNION ALL SELECT 9, 90) n "
                    "ON users.id = n.id WHEN MATCHED THEN UPDATE SET score = n.s "
                    "WHEN NOT MATCHED THEN INSERT VALUES (n.id, 'new', n.s)")
    assert rows(users, ALL) == [(3, "cy", 33), (4, "dee", 40), (5, "eve", 50), (7, "gus", 70),
                                (8, "hal", 80), (9, "new", 90)]
    v = show(users, "users")
    assert v["metadata"]["udr.rows"] == "6"
    # deleting every row of a part drops the part
    w(users, "DELETE FROM users WHERE id IN (3, 4, 5)")
    # the MERGE's update of id 3 emptied the first part; this empties the
    # second: left are the INSERT's part and the MERGE's (with a DV)
    v = show(users, "users")
    assert [(x["rows"], x.get("deleted")) for x in parts(v)] == [(2, None), (2, 1)]
    assert len(v["chunks"]) == 3
    assert rows(users, ALL) == [(7, "gus", 70), (8, "hal", 80), (9, "new", 90)]
    # export, diff-rows and count over such versions
    out = users.root.parent / "x.csv"
    assert users.ok("export", "users", str(out)).out.strip() == "3 rows"
    d = json.loads(users.ok("diff-rows", "users", "2", "latest", "--key", "id", "--json").out)
    assert {(x["change"], x["id"]) for x in d} == {
        ("removed", 1), ("removed", 2), ("removed", 3), ("removed", 4), ("removed", 5),
        ("removed", 6), ("added", 7), ("added", 8), ("added", 9)}


def test_statements_that_change_nothing_commit_nothing(users):
    h = head(users)
    w(users, "UPDATE users SET score = score WHERE id < 4")
    w(users, "DELETE FROM users WHERE id > 100")
    w(users, "INSERT INTO users SELECT * FROM users WHERE false")
    w(users, "BEGIN; UPDATE users SET score = 1 WHERE id = 1; "
                    "UPDATE users SET score = 10 WHERE id = 1; COMMIT")
    w(users, "CREATE OR REPLACE TABLE users AS SELECT * FROM users")
    assert head(users) == h
    assert show(users, "users")["version"] == 2


def test_failed_statements_commit_nothing(users):
    h = head(users)
    r = users("sql", "UPDATE users SET score = 'abc' WHERE id = 1")
    assert r.code == 2 and "abc" in r.stderr
    r = users("sql", "BEGIN; DELETE FROM users WHERE id = 1; SELECT nosuchcolumn FROM users; COMMIT")
    assert r.code == 2
    r = users("sql", "BEGIN; DELETE FROM users WHERE id = 1")
    assert r.code == 2 and "not ended" in r.stderr
    r = users("sql", "BEGIN; DELETE FROM users WHERE id = 1; ROLLBACK")
    assert r.code == 0
    r = users("sql", "INSERT INTO nosuch VALUES (1)")
    assert r.code == 1
    assert head(users) == h
    assert len(rows(users, ALL)) == 6


def test_writes_to_old_versions_are_refused(users):
    w(users, "DELETE FROM users WHERE id = 1")
    for q in ("UPDATE users@2 SET score = 0", 'DELETE FROM "users@1"',
              "INSERT INTO users@latest VALUES (1, 'x', 1)"):
        r = users("sql", q)
        assert r.code == 2 and "cannot write to" in r.stderr, (q, r)
    # reading an old version in a write works: restore the deleted row
    w(users, "INSERT INTO users SELECT * FROM users@2 WHERE id = 1")
    assert rows(users, "SELECT count(*) FROM users WHERE id = 1") == [(1,)]


def test_transaction_across_tables_is_one_commit(users):
    w(users, "CREATE TABLE audit AS SELECT 'start' AS what")
    h = head(users)
    w(users, "BEGIN; UPDATE users SET score = score + 1 WHERE id = 1; "
                    "INSERT INTO audit VALUES ('bump ann'); "
                    "SELECT * FROM users; COMMIT", "-m", "two tables")
    log = sql(users, "SELECT seq, \"table\", message FROM udr_log WHERE seq > %d ORDER BY 2" % h)
    assert log == [{"seq": h + 1, "table": "audit", "message": "two tables"},
                   {"seq": h + 1, "table": "users", "message": "two tables"}]
    assert rows(users, "SELECT what FROM audit ORDER BY what") == [("bump ann",), ("start",)]
    # a table the transaction did not change does not hide the others' changes
    w(users, "BEGIN; UPDATE users SET score = score WHERE id = 2; "
                    "INSERT INTO audit VALUES ('second'); COMMIT")
    assert rows(users, "SELECT count(*) FROM audit") == [(3,)]
    assert show(users, "users")["version"] == 3 and show(users, "audit")["version"] == 3


def test_create_drop_and_create_again(users):
    r = users("sql", "CREATE TABLE users AS SELECT 1 AS x")
    assert r.code == 2 and "already exists" in r.stderr
    w(users, "CREATE TABLE IF NOT EXISTS users AS SELECT 1 AS x")
    w(users, "CREATE TABLE t AS SELECT range AS i FROM range(3)")
    assert rows(users, "SELECT sum(i) FROM t") == [(3,)]
    w(users, "CREATE TABLE e (a INTEGER, b VARCHAR)")
    assert rows(users, "SELECT count(*) FROM e") == [(0,)]
    assert sql(users, "DESCRIBE e")[1]["column_type"] == "VARCHAR"
    w(users, "DROP TABLE t", "-m", "gone")
    r = users("sql", "SELECT * FROM t")
    assert r.code == 1 and "does not exist" in r.stderr
    assert "t" not in [x["name"] for x in sql(users, "SELECT name FROM udr_tables")]
    assert rows(users, "SELECT count(*) FROM t@1") == [(3,)]   # still readable
    # quoted NAME@REF of a dropped or unknown table: udr's answer, as unquoted
    for q in ('SELECT * FROM "t@latest"', 'SELECT * FROM "nosuch@latest"', 'SELECT * FROM "nosuch@2"'):
        r = users("sql", q)
        assert r.code == 1 and "not found" in r.stderr and "Catalog Error" not in r.stderr, (q, r)
    assert users("sql", "DROP TABLE t").code == 1
    w(users, "DROP TABLE IF EXISTS t")
    w(users, "CREATE TABLE t AS SELECT 'again' AS s")
    assert show(users, "t")["version"] == 3
    assert rows(users, "SELECT * FROM t") == [("again",)]
    # CREATE TEMP TABLE stays the session's own: no commit
    h = head(users)
    w(users, "CREATE TEMP TABLE scratch AS SELECT 1")
    assert head(users) == h


def test_damaged_deletion_vector_is_an_integrity_error(users):
    """A deletion vector flipped in place, then cut off: exit 4 naming it,
    no rows printed (a missing one on format 2: test below)."""
    w(users, "DELETE FROM users WHERE id = 2")
    v = show(users, "users")
    dv = parts(v)[0]["dv"]
    assert users.locate(dv), "the deletion vector is stored"
    users.damage(dv, "flip")
    r = users("sql", "SELECT count(*) FROM users")
    assert r.code == 4 and dv in r.stderr, r
    r = users("sql", ALL)
    assert r.code == 4 and r.out == ""
    # older versions do not use it
    assert len(rows(users, "SELECT * FROM users@2")) == 6
    # fsck finds it too; and a deletion vector missing from the store
    assert users("fsck").code != 0
    # gone: the pack holding it cut before its entry (format 3)
    users.damage(dv, "truncate")
    r = users("sql", "SELECT id FROM users")
    assert r.code == 4 and dv in r.stderr and r.out == "", r
    assert users("fsck").code != 0



def test_missing_deletion_vector_is_an_integrity_error(udr2, tmp_path):
    """Format 2 keeps a deletion vector as a file of its own: deleted, the
    read is exit 4 naming it as missing, never the rows it deleted."""
    a = tmp_path / "a.csv"
    a.write_text("id,name\n1,ann\n2,bob\n3,cy\n")
    udr2.ok("import", "users", str(a))
    w(udr2, "DELETE FROM users WHERE id = 2")
    dv = parts(show(udr2, "users"))[0]["dv"]
    files = udr2.objects(dv)
    assert files, "the deletion vector is a file"
    for f in files.values():
        f.unlink()
    r = udr2("sql", "SELECT id FROM users")
    assert r.code == 4 and dv in r.stderr and "missing" in r.stderr and r.out == "", r
    assert udr2("fsck").code != 0

def test_rows_of_many_parts_and_types(udr):
    w(udr, "CREATE TABLE big AS SELECT range AS id, range % 7 AS k, "
                  "[range, 1] AS l, {'a': range} AS s FROM range(300000)")
    v1 = show(udr, "big")
    w(udr, "UPDATE big SET k = -1 WHERE id % 1000 = 0")
    v2 = show(udr, "big")
    assert v2["chunks"][:len(parts(v1))] == v1["chunks"][:len(parts(v1))]
    assert rows(udr, "SELECT count(*), sum(k), count(DISTINCT id), sum(id) FROM big") == [
        (300000, sum(i % 7 for i in range(300000)) - sum(i % 7 + 1 for i in range(0, 300000, 1000)),
         300000, 300000 * 299999 // 2)]
    assert rows(udr, "SELECT l, s FROM big WHERE id = 2000") == [("[2000, 1]", "{'a': 2000}")]


def test_optimize_and_compaction_after_writes(users):
    w(users, "DELETE FROM users WHERE id IN (1, 2)")  # 2 of 3 rows: over 25%
    before = rows(users, ALL)
    r = users.ok("optimize", "users", "-m", "compact")
    assert r.out.strip() == "4"
    v = show(users, "users")
    assert v["message"] == "compact" and v["metadata"]["udr.format"] == "parquet"
    assert [x["rows"] for x in parts(v)] == [3, 1]  # the kept part, then id 3 rewritten
    assert rows(users, ALL) == before
    assert users.ok("optimize", "users").out.strip() == "nothing to compact"
    users.ok("optimize", "users", "--full")
    assert [x["rows"] for x in parts(show(users, "users"))] == [4]
    assert rows(users, ALL) == before
    # identical rows give identical parts: a full rewrite of the same rows dedups
    c = show(users, "users")["chunks"]
    users.ok("sql", "CREATE TABLE copy AS SELECT * FROM users")
    assert show(users, "copy")["chunks"] == c
    # after SQL writes: 8 small parts are merged by a compaction commit
    h = head(users)
    for i in range(8):
        users.ok("sql", "INSERT INTO users VALUES (%d, 'n', 0)" % (100 + i))
    log = sql(users, "SELECT message FROM udr_log WHERE seq > %d ORDER BY seq" % h)
    assert [x["message"] for x in log].count("compaction after a SQL write") == 1
    assert len(parts(show(users, "users"))) < 8
    assert rows(users, "SELECT count(*) FROM users") == [(12,)]
    r = users("optimize", "users", "--deleted", "101")
    assert r.code == 2
    assert users("optimize", "nosuch").code == 1


def test_import_append_and_udr_tables_on_versions_with_deletion_vectors(users, tmp_path):
    w(users, "DELETE FROM users WHERE id = 2")
    c = tmp_path / "c.csv"
    c.write_text("id,name,score\n7,gil,70\n")
    users.ok("import", "users", str(c), "--append")
    v = show(users, "users")
    assert [(x["rows"], x.get("deleted")) for x in parts(v)] == [(3, 1), (3, None), (1, None)]
    assert v["metadata"]["udr.format"] == "parquet-dv" and v["metadata"]["udr.rows"] == "6"
    assert [r[0] for r in rows(users, ALL)] == [1, 3, 4, 5, 6, 7]
    t = sql(users, "SELECT name, rows, parts, format FROM udr_tables")
    assert t == [{"name": "users", "rows": 6, "parts": 3, "format": "parquet-dv"}]


def test_import_key_stores_only_the_rows_that_differ(udr, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("id,name,v\n" + "".join("%d,n%d,%d\n" % (i, i, i) for i in range(1000)))
    udr.ok("import", "t", str(a))
    rows2 = [(i, "n%d" % i, i + (1 if i % 100 == 3 else 0)) for i in range(1000) if i % 250 != 5]
    rows2 += [(5000, "new", 0)]
    b = tmp_path / "b.csv"
    b.write_text("id,name,v\n" + "".join("%d,%s,%d\n" % r for r in rows2))
    assert udr.ok("import", "t", str(b), "--key", "id", "-m", "nightly").out.strip() == "2"
    v = show(udr, "t")
    assert v["message"] == "nightly"
    # 10 changed + 4 removed rows deleted, 10 changed + 1 new rows stored
    assert [(x["rows"], x.get("deleted")) for x in parts(v)] == [(1000, 14), (11, None)]
    assert sorted(rows(udr, "SELECT id, name, v FROM t")) == sorted(rows2)
    t = sql(udr, "SELECT parts, deletion_vectors, bytes_added FROM udr_tables")[0]
    assert t["parts"] == 2 and t["deletion_vectors"] == 1
    first = sum(os.path.getsize(p) for p in udr.objects(show(udr, "t", "1")["chunks"][0]).values())
    assert 0 < t["bytes_added"] < first / 3
    # the same copy again: nothing differs, nothing is committed
    assert udr.ok("import", "t", str(b), "--key", "id").out.strip() == "2"
    assert head(udr) == 2
    # keys must be unique and columns must match
    r = udr("import", "t", str(b), "--key", "v")  # 3 -> 4 repeats 4
    assert r.code == 2 and "not unique" in r.stderr
    c = tmp_path / "c.csv"
    c.write_text("id,other\n1,2\n")
    assert udr("import", "t", str(c), "--key", "id").code == 2
    assert udr("import", "t", str(b), "--key", "nosuch").code == 2
    assert udr("import", "t", str(b), "--key", "id", "--append").code == 2
    assert head(udr) == 2


def test_delete_everything_then_write_again(udr):
    w(udr, "CREATE TABLE t AS SELECT range AS i FROM range(5)")
    w(udr, "DELETE FROM t")
    v = show(udr, "t")
    assert v["chunks"] == [] and v["metadata"]["udr.rows"] == "0"
    assert rows(udr, "SELECT count(*) FROM t") == [(0,)]
    assert sql(udr, "DESCRIBE t")[0]["column_type"] == "BIGINT"
    w(udr, "INSERT INTO t VALUES (42)")
    assert rows(udr, "SELECT * FROM t") == [(42,)]
    w(udr, "TRUNCATE t")
    assert rows(udr, "SELECT count(*) FROM t") == [(0,)]
    assert show(udr, "t")["version"] == 4


def _dv(rows, runs, deleted=None, magic=b"UDRV"):
    import struct
    d = sum(n for _, n in runs) if deleted is None else deleted
    return (magic + bytes([1, 0, 0, 0]) + struct.pack("<QQQ", rows, d, len(runs)) +
            b"".join(struct.pack("<II", s, n) for s, n in runs))


DV_CASES = ["ok", "magic", "rows", "count", "order", "adjacent", "outside", "size", "format", "chunks"]


def test_deletion_vectors_are_checked(users, tmp_path):
    for case in DV_CASES:
        _dv_case(users, tmp_path, case)


def _dv_case(users, tmp_path, case):
    """Hand-made versions: a well-formed deletion vector deletes exactly its
    rows; every inconsistency is refused at commit (exit 2, nothing
    committed: SQL would read it as damage, tests/cli/test_review_stop38.py
    has the reads of such versions committed without the check)."""
    v = show(users, "users", "1")  # one part of 3 rows: ids 1, 2, 3
    part = v["chunks"][0]
    runs = {"ok": [(0, 1), (2, 1)], "order": [(2, 1), (0, 1)], "adjacent": [(0, 1), (1, 1)],
            "outside": [(2, 2)]}.get(case, [(0, 1)])
    data = _dv(4 if case == "rows" else 3, runs, deleted=5 if case == "count" else None,
               magic=b"XDRV" if case == "magic" else b"UDRV")
    if case == "size":
        data += b"\0"
    f = tmp_path / "dv"
    f.write_bytes(data)
    dv = users.put(data)
    ndel = sum(n for _, n in runs)
    meta = ["--meta", "udr.format=" + ("parquet" if case == "format" else "parquet-dv"),
            "--meta", "udr.schema=" + v["metadata"]["udr.schema"],
            "--meta", "udr.rows=%d" % (3 - ndel),
            "--meta", 'udr.parts=[{"rows":3,"deleted":%d,"dv":"%s"}]' % (ndel, dv)]
    chunks = [part] if case == "chunks" else [part, dv]
    if case != "ok":
        before = users("versions", "hand").out
        r = users("commit", "hand", "--next", *chunks, *meta)
        assert r.code == 2 and "nothing committed" in r.stderr, (case, r)
        assert users("versions", "hand").out == before, case
        return
    users.ok("commit", "hand", "--next", *chunks, *meta)
    r = users("sql", "SELECT id FROM hand ORDER BY id", "--csv")
    assert r.code == 0 and r.out.split() == ["id", "2"], (case, r)


def test_statements_that_read_their_table_see_all_of_it(udr):
    """A lone UPDATE/DELETE copies only its WHERE's rows unless the table is
    read elsewhere in the statement (literals, E'..' escapes included)."""
    w(udr, "CREATE TABLE t AS SELECT range AS id, 'n' || range AS name, 0 AS x FROM range(5)")
    w(udr, "UPDATE t SET x = (SELECT max(id) FROM t) WHERE name = E'a\\'b' OR id = 1")
    w(udr, "UPDATE t AS u SET x = u.x + 10 WHERE u.id IN (SELECT id FROM t WHERE id > 3)")
    w(udr, "DELETE FROM t WHERE id = 0 RETURNING *")
    assert rows(udr, "SELECT id, x FROM t ORDER BY id") == [(1, 4), (2, 0), (3, 0), (4, 10)]
    w(udr, "BEGIN; UPDATE t SET name = E'x\\';y' WHERE id = 2; COMMIT")
    assert rows(udr, "SELECT name FROM t WHERE id = 2") == [("x';y",)]
    w(udr, "UPDATE t SET x = ? WHERE id = ? AND name <> ?", "-p", "int:7", "-p", "int:3", "-p", "?")
    assert rows(udr, "SELECT x FROM t WHERE id = 3") == [(7,)]


def test_writes_on_raw_parts_of_several_formats_and_appends(udr, tmp_path):
    """A table of raw parts committed by hand (CSV, then JSON), an import
    --append (a Parquet part), then SQL writes: each raw part is read by its
    own format, the write stores typed parts, and deletion vectors and later
    appends apply to the right parts."""
    c = tmp_path / "a.csv"
    c.write_text("id,name\n1,ann\n2,bob\n3,cy\n")
    j = tmp_path / "b.ndjson"
    j.write_text('{"id": 4, "name": "dee"}\n{"id": 5, "name": "eve"}\n')
    udr.ok("commit", "r", "--next", udr.ok("put", str(c)).out.strip(), udr.ok("put", str(j)).out.strip())
    a = tmp_path / "c.csv"
    a.write_text("id,name\n6,fay\n7,gil\n")
    udr.ok("import", "r", str(a), "--append")
    v = show(udr, "r")
    assert len(v["chunks"]) == 3 and "udr.parts" not in v["metadata"]
    assert "udr.format" not in v["metadata"]
    q = "SELECT id, name FROM r ORDER BY id"
    assert rows(udr, q) == [(1, "ann"), (2, "bob"), (3, "cy"), (4, "dee"), (5, "eve"), (6, "fay"), (7, "gil")]
    w(udr, "UPDATE r SET name = upper(name) WHERE id IN (2, 5, 7)", "-m", "upd")
    v = show(udr, "r")
    assert v["message"] == "upd" and parts(v) is not None
    assert v["metadata"]["udr.format"] in ("parquet", "parquet-dv")
    want = [(1, "ann"), (2, "BOB"), (3, "cy"), (4, "dee"), (5, "EVE"), (6, "fay"), (7, "GIL")]
    assert rows(udr, q) == want
    w(udr, "DELETE FROM r WHERE id IN (1, 6)")
    v = show(udr, "r")
    assert v["metadata"]["udr.format"] == "parquet-dv"
    del want[5], want[0]
    assert rows(udr, q) == want
    d = tmp_path / "d.csv"
    d.write_text("id,name\n8,hal\n")
    udr.ok("import", "r", str(d), "--append")
    want.append((8, "hal"))
    assert rows(udr, q) == want
    w(udr, "UPDATE r SET name = 'x' WHERE id IN (3, 8)")
    want = [(i, "x" if i in (3, 8) else n) for i, n in want]
    assert rows(udr, q) == want
    assert int(show(udr, "r")["metadata"]["udr.rows"]) == len(want)


def test_typed_parts_that_are_not_parquet_are_refused(udr, tmp_path):
    """A hand-made version whose udr.parts name a CSV part: SQL refuses to
    read it (exit 2) rather than shift the parts' row positions, and a write
    commits nothing."""
    c = tmp_path / "a.csv"
    c.write_text("id\n1\n2\n3\n")
    h = udr.ok("put", str(c)).out.strip()
    udr.ok("import", "p", str(c))
    p = show(udr, "p")["chunks"][0]
    schema = show(udr, "p")["metadata"]["udr.schema"]
    dv = udr.put(_dv(3, [(0, 1)]))
    udr.ok("commit", "p", "--next", h, p, dv, "--meta", "udr.format=parquet-dv", "--meta", "udr.schema=" + schema,
           "--meta", "udr.rows=5", "--meta", 'udr.parts=[{"rows":3},{"rows":3,"deleted":1,"dv":"%s"}]' % dv)
    before = head(udr)
    r = udr("sql", "SELECT id FROM p", "--csv")
    assert r.code == 2 and "not Parquet" in r.stderr, r
    r = udr("sql", "DELETE FROM p WHERE id = 2")
    assert r.code == 2 and "not Parquet" in r.stderr, r
    assert head(udr) == before


def test_compaction_after_writes_leaves_a_large_small_part_alone(udr):
    """The compaction after writes merges small parts geometrically: a part
    of 50,000 rows (less than a row group, so "small") is not rewritten for
    one-row writes, as merging every small part once there were 8 did (each
    eighth write stored the 50,000 rows again); the small parts stay fewer
    than 8 and the rows read back right."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range AS id, range * 2 AS v FROM range(50000)")
    big = show(udr, "t")["chunks"][0]
    for i in range(20):
        udr.ok("sql", "UPDATE t SET v = -1 WHERE id = %d" % (i * 997))
        v = show(udr, "t")
        assert v["chunks"][0] == big and len(parts(v)) < 8, (i, v)
    log = sql(udr, "SELECT message FROM udr_log ORDER BY seq")
    assert [x["message"] for x in log].count("compaction after a SQL write") >= 2
    assert rows(udr, "SELECT count(*), sum(v), count(DISTINCT id) FROM t") == [
        (50000, 50000 * 49999 - sum(i * 997 * 2 + 1 for i in range(20)), 50000)]
    assert rows(udr, "SELECT v FROM t WHERE id = 997") == [(-1,)]


def test_import_key_finds_every_kind_of_difference(udr, tmp_path):
    """import --key on Parquet parts joins the table and the copy once on the
    key (a compound key with a NULL part) and stores what differs: a changed
    cell in any column, 0.0 -> -0.0 and NaN -> -NaN (equal as numbers, not
    as values), a NULL set or cleared, rows gone and new; the result and the
    counts equal a model's, new rows keep the copy's order, and a second
    import onto the version with deletion vectors works the same way."""
    head_ = "a,b,x,s\n"

    def csv(name, rs):
        p = tmp_path / name
        p.write_text(head_ + "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in rs))
        return str(p)

    base = [(i, i % 3 if i != 7 else None, "%d.5" % i if i % 10 else "0.0", "s%d" % i) for i in range(40)]
    base[20] = (20, 2, "nan", "s20")
    udr.ok("import", "t", csv("a.csv", base), "--key", "a,b")
    new = list(base)
    new[3] = (3, 0, "3.5", "changed")       # a text cell
    new[5] = (5, 2, "5.75", "s5")           # a float cell
    new[10] = (10, 1, "-0.0", "s10")        # 0.0 -> -0.0
    new[20] = (20, 2, "-nan", "s20")        # NaN -> -NaN
    new[7] = (7, None, "7.5", None)         # a NULL set, on the row whose key has a NULL
    del new[30]                             # gone
    new.insert(0, (100, 1, "1.0", "first new"))
    new.append((99, 0, None, "last new"))  # new, with a NULL cell
    assert udr.ok("import", "t", csv("b.csv", new), "--key", "a,b").out.strip() == "2"
    log = sql(udr, "SELECT inserted, updated, deleted FROM udr_log ORDER BY seq DESC LIMIT 1")[0]
    assert log == {"inserted": 2, "updated": 5, "deleted": 1}
    got = rows(udr, "SELECT a, b, x::VARCHAR, s FROM t")
    want = [(a, b, x if x is None or "nan" in x else str(float(x)), s) for a, b, x, s in new]
    assert sorted(got, key=repr) == sorted(want, key=repr)
    # the changed and new rows are stored at the end in the copy's order
    assert [r[0] for r in got[-7:]] == [100, 3, 5, 7, 10, 20, 99]
    assert rows(udr, "SELECT x::VARCHAR FROM t WHERE a IN (10, 20) ORDER BY a") == [("-0.0",), ("-nan",)]
    # again onto the version with deletion vectors: only the new change
    new2 = [r if r[0] != 100 else (100, 1, "2.0", "first new") for r in new]
    assert udr.ok("import", "t", csv("c.csv", new2), "--key", "a,b").out.strip() == "3"
    assert sql(udr, "SELECT inserted, updated, deleted FROM udr_log ORDER BY seq DESC LIMIT 1")[0] == {
        "inserted": 0, "updated": 1, "deleted": 0}
    assert rows(udr, "SELECT count(*), sum(a) FROM t") == [(len(new2), sum(r[0] for r in new2))]
    assert udr.ok("import", "t", csv("c.csv", new2), "--key", "a,b").out.strip() == "3"
    # a key repeated in the table (an INSERT made it) is refused, nothing written
    w(udr, "INSERT INTO t VALUES (1, 1, 1.5, 'dup')")
    h = head(udr)
    r = udr("import", "t", csv("c.csv", new2), "--key", "a,b")
    assert r.code == 2 and "not unique in table" in r.stderr and head(udr) == h


KEY_CASES = {
    # name: (column types, key, rows, unique?)
    "int": ("k BIGINT, v VARCHAR", "k", [(1, "a"), (2, "b"), (3, "c"), (10, "d")], True),
    "int-dup": ("k BIGINT, v VARCHAR", "k", [(1, "a"), (2, "b"), (2, "c"), (10, "d")], False),
    "int-null-once": ("k BIGINT, v VARCHAR", "k", [(None, "a"), (2, "b"), (3, "c")], True),
    "int-null-twice": ("k BIGINT, v VARCHAR", "k", [(None, "a"), (None, "b"), (3, "c")], False),
    "text": ("k VARCHAR, v VARCHAR", "k", [("A", "1"), ("a", "2"), ("a ", "3"), ("b", "4")], True),
    "text-dup": ("k VARCHAR, v VARCHAR", "k", [("A", "1"), ("a", "2"), ("a", "3"), ("b", "4")], False),
    "decimal-dup": ("k DECIMAL(10,2), v VARCHAR", "k", [("1.1", "a"), ("1.10", "b"), ("2", "c")], False),
    "date": ("k DATE, v VARCHAR", "k", [("2026-01-01", "a"), ("2026-01-02", "b"), ("2027-01-01", "c")], True),
    "date-dup": ("k DATE, v VARCHAR", "k", [("2026-01-01", "a"), ("2026-01-01", "b"), ("2027-01-01", "c")], False),
    "double-zero": ("k DOUBLE, v VARCHAR", "k", [("-0.0", "a"), ("0.0", "b"), ("1", "c")], False),
    "double-nan": ("k DOUBLE, v VARCHAR", "k", [("1", "a"), ("nan", "b"), ("nan", "c")], False),
    "double": ("k DOUBLE, v VARCHAR", "k", [("-1.5", "a"), ("0.25", "b"), ("nan", "c")], True),
    "interval": ("k INTERVAL, v VARCHAR", "k", [("1 month", "a"), ("30 days", "b"), ("1 year", "c")], False),
    "pair": ("k VARCHAR, n BIGINT, v VARCHAR", "k,n", [("a", 1, "x"), ("a", 2, "y"), ("b", 1, "z")], True),
    "pair-dup": ("k VARCHAR, n BIGINT, v VARCHAR", "k,n", [("a", 1, "x"), ("a", 1, "y"), ("b", 1, "z")], False),
    "pair-null-twice": ("k VARCHAR, n BIGINT, v VARCHAR", "k,n",
                        [("a", None, "x"), ("a", None, "y"), ("b", 1, "z")], False),
    "pair-null-apart": ("k VARCHAR, n BIGINT, v VARCHAR", "k,n",
                        [("a", None, "x"), ("b", None, "y"), (None, 1, "z")], True),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_import_key_uniqueness_of_a_sorted_copy_is_that_of_a_shuffled_one(udr, tmp_path, case):
    """A copy whose keys increase row by row is proven unique by one ordered
    pass; any other copy is checked by hashing its keys.  The same rows in
    key order (and the reverse: the ordered pass fails, the hash decides)
    get the same answer: refused with the key named when a key repeats
    (NULL is a value: two NULL keys repeat; 1.1 and 1.10 are one DECIMAL;
    -0.0 and 0.0, NaN and NaN, 1 month and 30 days are equal keys to SQL,
    and so to both), else imported whole."""
    types, key, rs, unique = KEY_CASES[case]
    names = [c.split()[0] for c in types.split(", ")]
    cast = ", ".join("NULL::%s AS %s" % (c.split()[1], c.split()[0]) for c in types.split(", "))
    answers = []
    for order in ("sorted", "reversed"):
        table = "t_" + order
        w(udr, "CREATE TABLE %s AS SELECT %s" % (table, cast))
        w(udr, "DELETE FROM %s" % table)
        got = list(rs) if order == "sorted" else list(reversed(rs))
        p = tmp_path / ("%s.csv" % order)
        p.write_text(",".join(names) + "\n" +
                     "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in got))
        h = head(udr)
        r = udr("import", table, str(p), "--key", key)
        if r.code == 0:
            n = rows(udr, "SELECT count(*) FROM %s" % table)[0][0]
            answers.append(("imported", n))
        else:
            assert r.code == 2 and "the key is not unique in the new copy of table %s" % table in r.stderr, r
            assert head(udr) == h
            answers.append(("refused", None))
    assert answers[0] == answers[1], answers
    assert answers[0] == (("imported", len(rs)) if unique else ("refused", None))


def test_import_key_with_a_key_repeated_in_the_table(udr, tmp_path):
    """The table's keys are checked by counting the rows the import would
    leave: two rows of one key, both equal to the copy's row of that key
    (nothing to store for them, so only the count sees them) or one equal
    and one not, are refused and nothing is written; a repeated key the copy
    does not have loses both rows and the result is exactly the copy."""
    def csv(name, rs):
        p = tmp_path / name
        p.write_text("k,v\n" + "".join("%d,%s\n" % r for r in rs))
        return str(p)

    base = [(i, "v%d" % i) for i in range(1, 21)]
    udr.ok("import", "t", csv("a.csv", base), "--key", "k")
    for dup in ("v5", "other"):
        w(udr, "INSERT INTO t VALUES (5, '%s')" % dup)
        h = head(udr)
        r = udr("import", "t", csv("b.csv", base), "--key", "k")
        assert r.code == 2 and "the key is not unique in table t" in r.stderr, r
        assert head(udr) == h
        w(udr, "DELETE FROM t WHERE k = 5")
        w(udr, "INSERT INTO t VALUES (5, 'v5')")
    # a key repeated in the table only: both rows go
    w(udr, "INSERT INTO t VALUES (21, 'x'), (21, 'y')")
    new = [r for r in base if r[0] != 7] + [(30, "new")]
    udr.ok("import", "t", csv("c.csv", new), "--key", "k")
    assert sorted(rows(udr, "SELECT k, v FROM t")) == sorted(new)
    assert sql(udr, "SELECT inserted, updated, deleted FROM udr_log ORDER BY seq DESC LIMIT 1")[0] == {
        "inserted": 1, "updated": 0, "deleted": 3}


def test_compaction_of_some_small_parts_keeps_their_order(udr):
    """The compaction after a write that merges some of the small parts
    appends their rows in their order (a review of the geometric choice:
    "WHERE __udr_part IN (...)" over all the parts let DuckDB give them in
    another order from run to run; 5 of 10 runs were wrong)."""
    for run in range(4):
        t = "t%d" % run
        udr.ok("sql", "CREATE TABLE %s AS SELECT range::BIGINT AS uid FROM range(5)" % t)
        for r in ("5,36", "36,37", "37,38", "38,776", "776,777", "777,778"):
            w(udr, "INSERT INTO %s SELECT range FROM range(%s)" % (t, r))
        w(udr, "DELETE FROM %s WHERE uid = 100" % t)
        udr.ok("sql", "INSERT INTO %s VALUES (778)" % t)  # the compaction after it merges 7 parts
        log = sql(udr, "SELECT message FROM udr_log ORDER BY seq DESC LIMIT 1")
        assert log[0]["message"] == "compaction after a SQL write"
        got = [r[0] for r in rows(udr, "SELECT uid FROM %s" % t)]
        assert got == list(range(38, 100)) + list(range(101, 776)) + list(range(0, 38)) + [776, 777, 778], run


def test_update_stores_the_changed_rows_in_their_old_order(udr):
    """An UPDATE moves the rows it changed to the end in their old order,
    whatever order DuckDB scanned the parts in (the rows a condition selects
    across several parts came back in another order from run to run)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range AS id, 'a' AS v FROM range(40)")
    for lo in range(40, 800, 130):
        w(udr, "INSERT INTO t SELECT range, 'a' FROM range(%d, %d)" % (lo, lo + 130))
    ids = [776, 1, 20, 36, 37, 500, 41, 300]
    for run in range(4):
        w(udr, "UPDATE t SET v = 'u%d' WHERE id IN (%s)" % (run, ", ".join(map(str, ids))))
        got = [r[0] for r in rows(udr, "SELECT id FROM t")][-len(ids):]
        assert got == sorted(ids) if run == 0 else got == last, (run, got)
        last = got


def test_import_key_into_tables_named_like_the_temporary_ones(udr, tmp_path):
    """Tables named __udr_kd and __udr_new are re-imported by key (the
    temporary tables of the import had those names)."""
    a = tmp_path / "a.csv"
    a.write_text("id,v\n1,a\n2,b\n")
    b = tmp_path / "b.csv"
    b.write_text("id,v\n1,a\n2,c\n3,d\n")
    for t in ("__udr_kd", "__udr_new"):
        udr.ok("import", t, str(a))
        assert udr.ok("import", t, str(b), "--key", "id").out.strip() == "2"
        assert rows(udr, 'SELECT id, v FROM "%s" ORDER BY id' % t) == [(1, "a"), (2, "c"), (3, "d")]


def test_writes_to_tables_named_like_the_temporary_ones(udr, tmp_path):
    """UPDATE, DELETE and a two-table transaction on tables named like the
    shadows' row tables (__udr_o_<n>: the second table written in a session
    failed, 'Table with name "__udr_o_1" already exists', exit 2)."""
    a = tmp_path / "a.csv"
    a.write_text("id,v\n1,a\n2,b\n3,c\n")
    for t in ("__udr_o_0", "__udr_o_1", "__udr_o_2", "t"):
        udr.ok("import", t, str(a))
    for t in ("__udr_o_0", "__udr_o_1", "__udr_o_2", "t"):
        udr.ok("sql", 'UPDATE "%s" SET v = \'x\' WHERE id = 1' % t)
        udr.ok("sql", 'DELETE FROM "%s" WHERE id = 3' % t)
        assert rows(udr, 'SELECT id, v FROM "%s" ORDER BY id' % t) == [(1, "x"), (2, "b")]
    udr.ok("sql", "BEGIN; UPDATE t SET v = 'y' WHERE id = 2; UPDATE __udr_o_1 SET v = 'z' WHERE id = 2; COMMIT")
    assert rows(udr, "SELECT id, v FROM t ORDER BY id") == [(1, "x"), (2, "y")]
    assert rows(udr, "SELECT id, v FROM __udr_o_1 ORDER BY id") == [(1, "x"), (2, "z")]


def test_deletion_vectors_filter_exactly_at_byte_and_chunk_edges(udr):
    """The merge-on-read filter keeps a byte of the bitmap with no deletion
    as 8 rows at once: deletions at the first and last row of a byte, at
    DuckDB's 2048-row chunk edges, runs of deleted rows and rows past the
    last whole byte are each filtered exactly, in two parts."""
    w(udr, "CREATE TABLE t AS SELECT range AS id, range * 3 AS v FROM range(10000)")
    w(udr, "INSERT INTO t SELECT range AS id, range * 3 AS v FROM range(10000, 10021)")
    gone = {0, 7, 8, 15, 16, 23, 2047, 2048, 2049, 4095, 4096, 6143, 8191, 8192, 9999, 10000, 10016, 10020}
    gone |= set(range(100, 141)) | set(range(3000, 3064))
    w(udr, "DELETE FROM t WHERE id IN (%s)" % ", ".join(str(i) for i in sorted(gone)))
    assert show(udr, "t")["metadata"]["udr.format"] == "parquet-dv"
    kept = [r[0] for r in rows(udr, "SELECT id FROM t")]
    assert kept == [i for i in range(10021) if i not in gone]  # and in their order
    assert rows(udr, "SELECT count(*), sum(v) FROM t") == [
        (10021 - len(gone), sum(3 * i for i in range(10021) if i not in gone))]


def test_exported_csv_imports_back_unchanged_empty_strings_and_nulls(udr, tmp_path):
    """`udr export` writes '' as "" and NULL as an empty field; importing
    that file (whole, --append, or --key) keeps them apart.  Found by a
    differential fuzz (stop 30): DuckDB's reader takes "" for NULL, so a
    re-import with --key committed a version turning '' into NULL."""
    w(udr, "CREATE TABLE t AS SELECT * FROM (VALUES (1, ''), (2, NULL), (3, 'a')) v(id, s)")
    out = str(tmp_path / "t.csv")
    udr.ok("export", "t", out)
    want = [(1, "", False), (2, None, True), (3, "a", False)]
    q = "SELECT id, s, s IS NULL FROM %s ORDER BY id"
    h = head(udr)
    udr.ok("import", "t", out, "--key", "id")
    assert head(udr) == h  # nothing differs: nothing committed
    assert rows(udr, q % "t") == want
    udr.ok("import", "u", out)
    assert rows(udr, q % "u") == want
    udr.ok("import", "u", out, "--append")
    assert rows(udr, "SELECT count(*) FILTER (WHERE s = ''), count(*) FILTER (WHERE s IS NULL) FROM u") == [(2, 2)]


def test_a_csv_of_only_its_header_is_a_table_without_rows(udr, tmp_path):
    """A CSV file of one line is its header (what `udr export` writes for a
    table without rows).  DuckDB's sniffer read it as one row of columns
    column0, column1: import --key was refused ("schema mismatch ...
    column0", found by the stop-30 fuzz), and a new table got one row of
    the names, the 'f' as false."""
    w(udr, "CREATE TABLE q (id BIGINT, f DOUBLE)")
    w(udr, "INSERT INTO q VALUES (1, 1.5), (2, 2.5)")
    hdr = tmp_path / "hdr.csv"
    hdr.write_text("id,f\r\n\r\n")
    udr.ok("import", "q", str(hdr), "--key", "id")
    assert rows(udr, "SELECT count(*) FROM q") == [(0,)]
    assert rows(udr, "SELECT inserted, updated, deleted FROM udr_log WHERE \"table\" = 'q' "
                     "ORDER BY new_version DESC LIMIT 1") == [(0, 0, 2)]
    assert rows(udr, "SELECT column_name, column_type FROM (DESCRIBE q)") == [("id", "BIGINT"), ("f", "DOUBLE")]
    # a new table: the columns, no rows
    udr.ok("import", "n", str(hdr))
    assert rows(udr, "SELECT count(*) FROM n") == [(0,)]
    assert [r[0] for r in rows(udr, "SELECT column_name FROM (DESCRIBE n)")] == ["id", "f"]
    # an exported empty table replaces a table's rows and keeps its types
    w(udr, "CREATE TABLE e AS SELECT 1::INTEGER AS a, 'x' AS b")
    w(udr, "CREATE TABLE e0 AS SELECT 1::INTEGER AS a, 'x' AS b WHERE false")
    out = str(tmp_path / "e0.csv")
    udr.ok("export", "e0", out)
    udr.ok("import", "e", out)
    assert rows(udr, "SELECT count(*) FROM e") == [(0,)]
    assert rows(udr, "SELECT column_name, column_type FROM (DESCRIBE e)") == [("a", "INTEGER"), ("b", "VARCHAR")]
    # other names: a new schema, as for any file replacing a table
    other = tmp_path / "cd.csv"
    other.write_text("c,d\n")
    udr.ok("import", "e", str(other))
    assert [r[0] for r in rows(udr, "SELECT column_name FROM (DESCRIBE e)")] == ["c", "d"]
    # one line, then rows: read as before (a header is detected)
    full = tmp_path / "full.csv"
    full.write_text("id,f\n3,1.0\n")
    udr.ok("import", "q", str(full), "--key", "id")
    assert rows(udr, "SELECT id, f FROM q") == [(3, 1.0)]


@pytest.mark.parametrize("stmt", ["CREATE TABLE udr_log AS SELECT 1 AS x", "CREATE TABLE UDR_TABLES AS SELECT 1 AS x",
                                  "INSERT INTO udr_log SELECT * FROM udr_log", "DROP TABLE udr_conflicts"])
def test_writes_to_the_changelog_views_are_refused(udr, stmt):
    """CREATE TABLE udr_log AS ... printed a count and exited 0, and nothing
    was committed: DuckDB wrote the session's view of that name (a helper's
    review)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS x")
    before = udr.ok("log", "--json").out
    r = udr("sql", stmt)
    assert r.code == 2 and "read-only views" in r.stderr, r
    assert udr.ok("log", "--json").out == before
