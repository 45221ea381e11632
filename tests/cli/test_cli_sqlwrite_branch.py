"""SQL writes on a branch (udr sql --branch NAME): they commit on that branch
through its transactions, are invisible on main, conflict only with commits
on that branch; writes to another branch, a tag or a version are refused and
write nothing (docs/QUERY.md "Writing tables with SQL")."""
import json

import pytest

from conftest import run_udr, tree_snapshot

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def sql(udr, query, *args):
    return json.loads(udr.ok("sql", query, "--json", *args).out or "[]")


def rows(udr, query, *args):
    return [tuple(r.values()) for r in sql(udr, query, *args)]


def on(branch):
    return ("--branch", branch)


def version_on(udr, table, branch):
    out = udr.ok("sql", "SELECT version FROM udr_tables WHERE name = '%s'" % table, "--json",
                 "--branch", branch).out
    got = json.loads(out or "[]")
    return got[0]["version"] if got else 0


def log(udr):
    return json.loads(udr.ok("log", "--json").out)


@pytest.fixture
def dev(udr, tmp_path):
    """t (ids 1..4) on main; branch dev made from it."""
    f = tmp_path / "t.csv"
    f.write_text("id,v\n1,a\n2,b\n3,c\n4,d\n")
    udr.ok("import", "t", f)
    udr.ok("branch", "create", "dev")
    return udr


ALL = "SELECT id, v FROM t ORDER BY id"


def test_writes_on_a_branch_are_invisible_on_main(dev):
    dev.ok("sql", "UPDATE t SET v = 'B' WHERE id = 2", *on("dev"), "-m", "on dev", "--no-compact")
    dev.ok("sql", "DELETE FROM t WHERE id = 4", *on("dev"), "--no-compact")
    dev.ok("sql", "INSERT INTO t VALUES (5, 'e')", *on("dev"), "--no-compact")
    dev.ok("sql", "CREATE TABLE u AS SELECT 1 AS x", *on("dev"))
    assert rows(dev, ALL) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert rows(dev, ALL, *on("dev")) == [(1, "a"), (2, "B"), (3, "c"), (5, "e")]
    assert rows(dev, "SELECT id, v FROM t@branch:dev ORDER BY id") == rows(dev, ALL, *on("dev"))
    # t@branch:main from a session on dev reads main
    assert rows(dev, "SELECT id, v FROM t@branch:main ORDER BY id", *on("dev")) == rows(dev, ALL)
    # every write is a commit on dev; main's head is still the import
    commits = log(dev)
    assert [c["branch"] for c in commits[:4]] == ["dev"] * 4
    assert version_on(dev, "t", "main") == 1 and version_on(dev, "t", "dev") == 4
    assert version_on(dev, "u", "dev") == 1 and version_on(dev, "u", "main") == 0
    r = dev("sql", "SELECT * FROM u")
    assert r.code == 1, r
    # a delta on dev, as on main
    v = json.loads(dev.ok("show", "t", "2").out)
    assert v["metadata"]["udr.format"] == "parquet-dv"
    # the branch merges into main like any other commit
    dev.ok("merge", "dev")
    assert rows(dev, ALL) == rows(dev, ALL, *on("dev"))
    assert dev.ok("fsck").code == 0


def test_transaction_on_a_branch_is_one_commit_there(dev):
    dev.ok("sql", "BEGIN; UPDATE t SET v = 'x' WHERE id = 1; CREATE TABLE w AS SELECT 7 AS k; "
           "DELETE FROM t WHERE id = 3; COMMIT", *on("dev"), "-m", "batch", "--no-compact")
    c = log(dev)[0]
    assert c["branch"] == "dev" and c["message"] == "batch"
    assert sorted(ch["table"] for ch in c["changes"]) == ["t", "w"]
    assert rows(dev, ALL, *on("dev")) == [(1, "x"), (2, "b"), (4, "d")]
    assert rows(dev, ALL) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


def test_target_naming_the_sessions_branch(dev):
    # NAME@branch:B where B is the session's branch: the table on B
    dev.ok("sql", "INSERT INTO t@branch:dev VALUES (9, 'z')", *on("dev"), "--no-compact")
    dev.ok("sql", 'UPDATE "t@dev" SET v = \'Z\' WHERE id = 9', *on("dev"), "--no-compact")
    assert rows(dev, "SELECT v FROM t WHERE id = 9", *on("dev")) == [("Z",)]
    # main's session may name main
    dev.ok("sql", "DELETE FROM t@branch:main WHERE id = 1", "--no-compact")
    assert [r[0] for r in rows(dev, ALL)] == [2, 3, 4]
    assert [r[0] for r in rows(dev, ALL, *on("dev"))] == [1, 2, 3, 4, 9]


def test_refused_targets_and_bad_branches_write_nothing(dev):
    dev.ok("tag", "create", "rel")
    dev.ok("branch", "create", "other")
    before = tree_snapshot(dev.root)
    cases = [
        (("UPDATE t@branch:dev SET v = 'q'",), 2, "writes on branch 'main'"),
        (("INSERT INTO t@branch:other VALUES (1, 'q')", *on("dev")), 2, "writes on branch 'dev'"),
        (("INSERT INTO t@branch:main VALUES (1, 'q')", *on("dev")), 2, "writes on branch 'dev'"),
        (('DELETE FROM "t@rel"', *on("dev")), 2, "a tag"),
        (("DELETE FROM t@tag:rel",), 2, "a tag"),
        (("DELETE FROM t@1", *on("dev")), 2, "versions never change"),
        (('DELETE FROM "t@2026-01-01"', *on("dev")), 2, "versions never change"),
        (("DELETE FROM t@commit:1", *on("dev")), 2, "versions never change"),
        (("DELETE FROM t", *on("nosuch")), 1, "nosuch"),
        (("DELETE FROM t", *on("bad..name")), 2, ""),
        (("UPDATE t SET v = error('boom') WHERE id = 1", *on("dev")), 2, "boom"),
        (("BEGIN; DELETE FROM t WHERE id = 1; UPDATE t SET id = 'x'; COMMIT", *on("dev")), 2, ""),
        (("BEGIN; DELETE FROM t WHERE id = 1", *on("dev")), 2, "not ended"),
    ]
    for args, code, msg in cases:
        r = dev("sql", *args)
        assert r.code == code and msg in r.stderr, (args, r)
    assert tree_snapshot(dev.root) == before


def test_bare_names_on_a_branch_read_that_branch(dev):
    dev.ok("sql", "CREATE TABLE m AS SELECT 1 AS x")  # main only
    r = dev("sql", "SELECT * FROM m", *on("dev"))
    assert r.code == 1 and "not found" in r.stderr, r
    # and a write to it on dev creates dev's own table
    dev.ok("sql", "CREATE TABLE m AS SELECT 2 AS x", *on("dev"))
    assert rows(dev, "SELECT x FROM m", *on("dev")) == [(2,)]
    assert rows(dev, "SELECT x FROM m") == [(1,)]
    names = [r["name"] for r in sql(dev, "SELECT name FROM udr_tables ORDER BY name", *on("dev"))]
    assert names == ["m", "t"]


def test_compaction_after_a_write_on_a_branch_commits_there(dev):
    main_before = version_on(dev, "t", "main")
    # small parts pass the default threshold (8): the compaction commits too
    for i in range(10):
        dev.ok("sql", "INSERT INTO t VALUES (%d, 'n')" % (100 + i), *on("dev"))
    commits = log(dev)
    assert any(c["message"] == "compaction after a SQL write" for c in commits)
    assert all(c["branch"] == "dev" for c in commits if c["message"] == "compaction after a SQL write")
    assert version_on(dev, "t", "main") == main_before
    assert rows(dev, "SELECT count(*) FROM t", *on("dev")) == [(14,)]
    assert rows(dev, "SELECT count(*) FROM t") == [(4,)]
    # udr optimize --branch compacts the branch's version, not main's
    assert dev.ok("optimize", "t", "--full", *on("dev")).out.strip().isdigit()
    assert log(dev)[0]["branch"] == "dev"
    assert version_on(dev, "t", "main") == main_before
    assert dev("optimize", "t", *on("nosuch")).code == 1


def test_import_key_on_a_branch(dev, tmp_path):
    f = tmp_path / "n.csv"
    f.write_text("id,v\n1,a\n2,CHANGED\n3,c\n5,new\n")
    out = dev.ok("import", "t", f, "--key", "id", *on("dev")).out.strip()
    v = json.loads(dev.ok("show", "t", out).out)
    assert log(dev)[0]["branch"] == "dev"
    assert v["metadata"]["udr.format"] == "parquet-dv"  # only the change stored
    assert rows(dev, ALL, *on("dev")) == [(1, "a"), (2, "CHANGED"), (3, "c"), (5, "new")]
    assert rows(dev, ALL) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    # the same copy again changes nothing: the branch's version is printed
    before = tree_snapshot(dev.root / "catalog")
    assert dev.ok("import", "t", f, "--key", "id", *on("dev")).out.strip() == out
    assert tree_snapshot(dev.root / "catalog") == before
    # on main the same copy is main's change
    assert dev.ok("import", "t", f, "--key", "id").out.strip() != out
    assert rows(dev, ALL) == rows(dev, ALL, *on("dev"))
    assert dev("import", "t", f, "--key", "id", *on("nosuch")).code == 1
