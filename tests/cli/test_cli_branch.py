"""udr branch, tag, reflog, merge, diff and --branch on reads and writes:
bad names and unknown refs (documented exit codes, nothing written),
isolation, zero-copy branching, merges (fast-forward, three-way, conflict
with nothing written, strategies, dry run), SQL across branches, and fsck.
"""
import json
import os

import pytest

from conftest import tree_snapshot


def commit(udr, table, data, *extra):
    h = udr.put(data)
    return int(udr.ok("commit", table, "--next", h, *extra).out)


def version_on(udr, table, ref):
    r = udr("show", table, "--branch", ref)
    if r.code == 1:
        return 0
    assert r.code == 0, r
    return json.loads(r.out)["version"]


def store_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("name", ["", "-x", "/x", "x/", "a..b", "a//b", "x.lock", "a b", "a:b", "é",
                                  "x" * 256])
def test_bad_names_exit_2_and_write_nothing(udr, name):
    commit(udr, "t", b"one")
    before = tree_snapshot(udr.root)
    for args in (["branch", "create", name], ["tag", "create", name], ["branch", "reset", name, "--to", "main"],
                 ["branch", "delete", name], ["tag", "delete", name]):
        r = udr(*args)
        assert r.code == 2, (args, r)
        assert ("invalid branch or tag name" if name[:1] != "-" else "udr: ") in r.stderr, r
    assert tree_snapshot(udr.root) == before


def test_unknown_refs_exit_1_and_write_nothing(udr, tmp_path):
    commit(udr, "t", b"one")
    before = tree_snapshot(udr.root)
    h = udr.put(b"two")
    after_put = tree_snapshot(udr.root)
    for args, needle in ((["branch", "create", "x", "--from", "nosuch"], "nosuch"),
                         (["branch", "create", "x", "--from", "commit:99"], "commit 99"),
                         (["branch", "reset", "nosuch", "--to", "main"], "nosuch"),
                         (["branch", "delete", "nosuch"], "nosuch"),
                         (["tag", "delete", "nosuch"], "nosuch"),
                         (["reflog", "nosuch"], "nosuch"),
                         (["merge", "nosuch"], "nosuch"),
                         (["merge", "main", "--into", "nosuch"], "nosuch"),
                         (["diff", "main", "nosuch"], "nosuch"),
                         (["show", "t", "--branch", "nosuch"], "nosuch"),
                         (["versions", "t", "--branch", "nosuch"], "nosuch"),
                         (["tables", "--branch", "tag:nosuch"], "nosuch"),
                         (["commit", "t", "--next", h, "--branch", "nosuch"], "nosuch"),
                         (["sql", "SELECT 1 FROM t@nosuch"], "nosuch")):
        r = udr(*args)
        assert r.code == 1, (args, r)
        assert needle in r.stderr, (args, r)
    assert tree_snapshot(udr.root) == after_put
    # main cannot be deleted (exit 2); an existing branch cannot be created (exit 3)
    r = udr("branch", "delete", "main")
    assert r.code == 2 and "main" in r.stderr, r
    assert udr("branch", "create", "main").code == 3
    assert tree_snapshot(udr.root) == after_put
    assert before is not None


def test_isolation_and_versions(udr):
    assert commit(udr, "users", b"u1") == 1
    udr.ok("branch", "create", "dev")
    assert commit(udr, "users", b"u2 dev", "--branch", "dev") == 2
    assert commit(udr, "users", b"u3 main") == 3
    assert commit(udr, "orders", b"o1 dev", "--branch", "dev") == 1
    # explicit numbers follow the highest allocated, on any branch
    h = udr.put(b"u4")
    r = udr("commit", "users", "3", h, "--branch", "dev")
    assert r.code == 3 and "expected version 4" in r.stderr, r
    assert udr.ok("versions", "users").out.split() == ["1", "3"]
    assert udr.ok("versions", "users", "--branch", "dev").out.split() == ["1", "2"]
    assert udr.ok("tables").out.split() == ["users"]
    assert udr.ok("tables", "--branch", "dev").out.split() == ["orders", "users"]
    assert json.loads(udr.ok("show", "users").out)["version"] == 3
    assert version_on(udr, "users", "dev") == 2
    assert version_on(udr, "orders", "main") == 0
    b = json.loads(udr.ok("branch", "--json").out)
    assert [x["name"] for x in b] == ["dev", "main"]
    diff = json.loads(udr.ok("diff", "main", "dev", "--json").out)
    assert diff == [{"table": "orders", "change": "added", "old": 0, "new": 1},
                    {"table": "users", "change": "changed", "old": 3, "new": 2}]
    assert udr.ok("fsck").code == 0


def test_branching_is_zero_copy(udr, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(32 << 20))
    for i in range(4):
        h = udr.put(os.urandom(1 << 20))
        udr.ok("commit", "t%d" % i, "--next", h)
    udr.ok("commit", "big", "--next", "--file", big)
    before = store_bytes(udr.root)
    udr.ok("branch", "create", "dev")
    grown = store_bytes(udr.root) - before
    assert grown < 1024, grown
    before = store_bytes(udr.root)
    udr.ok("branch", "create", "dev2", "--from", "dev")
    grown = store_bytes(udr.root) - before
    assert grown < 1024, grown


def test_tags_reset_reflog(udr):
    commit(udr, "t", b"1")
    udr.ok("tag", "create", "v1")
    r = udr("tag", "create", "v1")
    assert r.code == 3 and "exists" in r.stderr, r
    commit(udr, "t", b"2")
    assert version_on(udr, "t", "v1") == 1
    assert version_on(udr, "t", "tag:v1") == 1
    udr.ok("branch", "reset", "main", "--to", "v1")
    assert version_on(udr, "t", "main") == 1
    log = json.loads(udr.ok("reflog", "main", "--json").out)
    assert log[0]["op"] == "reset" and log[1]["op"] == "commit"
    udr.ok("branch", "reset", "main", "--to", "commit:%d" % log[0]["old"])
    assert version_on(udr, "t", "main") == 2
    assert commit(udr, "t", b"3") == 3  # never a reused number
    assert len(udr.ok("reflog", "main", "--limit", "2").out.splitlines()) == 2
    # the last move a limit lists has its old head too (it said 0: a
    # reset to it would have gone nowhere; a helper's review)
    full = json.loads(udr.ok("reflog", "main", "--json").out)
    for k in range(1, len(full) + 1):
        assert json.loads(udr.ok("reflog", "main", "--limit", str(k), "--json").out) == full[:k], k
    udr.ok("tag", "delete", "v1")
    assert json.loads(udr.ok("tag", "--json").out) == []
    assert udr.ok("fsck").code == 0


def test_merges(udr):
    commit(udr, "a", b"a1")
    commit(udr, "b", b"b1")
    udr.ok("branch", "create", "dev")
    assert "already up to date" in udr.ok("merge", "dev").out
    commit(udr, "a", b"a2 dev", "--branch", "dev")
    r = json.loads(udr.ok("merge", "dev", "--json").out)
    assert r["fast_forward"] and r["commit"] > 0
    assert version_on(udr, "a", "main") == 2
    # three-way at table level
    commit(udr, "a", b"a3 dev", "--branch", "dev")
    commit(udr, "b", b"b2 main")
    udr.ok("merge", "dev", "-m", "merge dev")
    assert (version_on(udr, "a", "main"), version_on(udr, "b", "main")) == (3, 2)
    assert version_on(udr, "b", "dev") == 1
    # a conflict writes nothing; --dry-run reports; strategies resolve
    commit(udr, "a", b"a dev", "--branch", "dev")
    commit(udr, "a", b"a main")
    before = tree_snapshot(udr.root / "catalog" / "log")
    r = udr("merge", "dev")
    assert r.code == 3 and "conflict a: base 3" in r.out, r
    r = udr("merge", "dev", "--dry-run", "--strategy", "theirs")
    assert r.code == 0 and "would take a" in r.out, r
    assert tree_snapshot(udr.root / "catalog" / "log") == before
    assert udr("merge", "dev", "--table", "a=bogus").code == 2
    udr.ok("merge", "dev", "--table", "a=ours")
    assert version_on(udr, "a", "main") == 5
    log = json.loads(udr.ok("log", "--limit", "1", "--json").out)
    assert log[0]["branch"] == "main"
    assert udr.ok("fsck").code == 0


def test_sql_and_import_on_branches(udr, tmp_path):
    f1 = tmp_path / "a.csv"
    f1.write_text("id,v\n1,a\n2,b\n")
    f2 = tmp_path / "b.csv"
    f2.write_text("id,v\n3,c\n")
    udr.ok("import", "t", f1)
    udr.ok("branch", "create", "feature/x")
    assert udr.ok("import", "t", f2, "--append", "--branch", "feature/x").out.strip() == "2"
    q = ('SELECT count(*) AS n FROM t@branch:feature/x UNION ALL SELECT count(*) FROM t '
         'UNION ALL SELECT count(*) FROM t@main')
    out = udr.ok("sql", q, "--json").out
    assert [r["n"] for r in json.loads(out)] == [3, 2, 2]
    out = udr.ok("sql", "SELECT a.id FROM t@branch:feature/x a ANTI JOIN t b USING (id)", "--json").out
    assert json.loads(out) == [{"id": 3}]
    udr.ok("export", "t", tmp_path / "o.csv", "--branch", "branch:feature/x")
    assert (tmp_path / "o.csv").read_text().count("\n") == 4
    udr.ok("tag", "create", "rel", "feature/x")
    assert json.loads(udr.ok("sql", "SELECT count(*) AS n FROM t@rel", "--json").out) == [{"n": 3}]
    # SQL writes commit on the session's branch (main here): a write to another
    # branch or to a tag says so, writes nothing (tests/cli/test_cli_sqlwrite_branch.py)
    before = udr.ok("log", "--json").out
    for q, msg in (("UPDATE t@branch:feature/x SET v = 'z'", "writes on branch 'main'"),
                   ('DELETE FROM "t@rel"', "a tag")):
        r = udr("sql", q)
        assert r.code == 2 and msg in r.stderr, (q, r)
    r = udr("sql", "DELETE FROM \"t@2026-01-01\"")
    assert r.code == 2 and "versions never change" in r.stderr, r
    assert udr.ok("log", "--json").out == before
    assert udr.ok("fsck").code == 0


def test_spec_on_a_branch(udr, tmp_path):
    commit(udr, "a", b"a1")
    udr.ok("branch", "create", "dev")
    h = udr.put(b"a2")
    spec = {"branch": "dev", "message": "on dev", "tables": [{"table": "a", "chunks": [h]},
                                                            {"table": "b", "chunks": [h]}]}
    udr.ok("commit", "--spec", "-", input=json.dumps(spec))
    assert (version_on(udr, "a", "dev"), version_on(udr, "b", "dev")) == (2, 1)
    assert (version_on(udr, "a", "main"), version_on(udr, "b", "main")) == (1, 0)
    spec["branch"] = "nosuch"
    assert udr("commit", "--spec", "-", input=json.dumps(spec)).code == 1
    spec["branch"] = 3
    assert udr("commit", "--spec", "-", input=json.dumps(spec)).code == 2


def test_log_of_a_table_lists_every_branch(udr):
    commit(udr, "t", b"1")
    udr.ok("branch", "create", "dev")
    commit(udr, "t", b"2 dev", "--branch", "dev")
    commit(udr, "t", b"3 dev", "--branch", "dev")
    commit(udr, "u", b"main")
    log = json.loads(udr.ok("log", "--table", "t", "--json").out)
    assert [(c["seq"], c["branch"]) for c in log] == [(4, "dev"), (3, "dev"), (1, "main")]
    log = json.loads(udr.ok("log", "--table", "t", "--reverse", "--json").out)
    assert [c["seq"] for c in log] == [1, 3, 4]
    assert [c["seq"] for c in json.loads(udr.ok("log", "--branch", "dev", "--json").out)] == [4, 3, 2]


def test_log_shows_ref_records(udr):
    commit(udr, "t", b"1")
    udr.ok("branch", "create", "dev")
    udr.ok("tag", "create", "v1", "dev")
    log = json.loads(udr.ok("log", "--json").out)
    assert (log[0]["op"], log[0]["ref"], log[0]["parents"], log[0]["branch"]) == ("tag", "tag:v1", [2], "")
    assert (log[1]["op"], log[1]["ref"], log[1]["parents"], log[1]["branch"]) == ("create", "branch:dev", [1], "dev")
    assert "op" not in log[2]
    text = udr.ok("log", "--limit", "2").out
    assert "  tag tag:v1 (commit 2)" in text and "  create branch:dev (commit 1)" in text


def test_merge_takes_a_schema_changed_on_one_side(udr, tmp_path):
    f1 = tmp_path / "a.csv"
    f1.write_text("id,v\n1,a\n")
    f2 = tmp_path / "b.csv"
    f2.write_text("id,v,extra\n1,a,x\n2,b,y\n")
    udr.ok("import", "t", f1)
    udr.ok("import", "other", f1)
    udr.ok("branch", "create", "wide")
    udr.ok("import", "t", f2, "--branch", "wide")
    udr.ok("import", "other", f1)  # main changes another table: a three-way merge
    r = json.loads(udr.ok("merge", "wide", "--json").out)
    assert not r["fast_forward"] and r["conflicts"] == 0
    out = json.loads(udr.ok("sql", "SELECT * FROM t ORDER BY id", "--json").out)
    assert out == [{"id": 1, "v": "a", "extra": "x"}, {"id": 2, "v": "b", "extra": "y"}]
    assert version_on(udr, "other", "main") == 2


def test_sql_reads_a_table_made_on_a_branch(udr):
    """A table that exists only on a branch is read through a session on
    that branch or a ref naming it (the binder looked for it on main only,
    and DuckDB said it did not exist); main still does not see it."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS a")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "CREATE TABLE u AS SELECT range AS a FROM range(7)")
    assert udr.ok("sql", "--branch", "dev", "--json", "SELECT count(*) AS n FROM u").out.count("7") == 1
    r = udr.ok("sql", "--json", 'SELECT count(*) AS n FROM "u@branch:dev"')
    assert json.loads(r.out) == [{"n": 7}]
    head = json.loads(udr.ok("branch", "--json").out)
    dev = [b["commit"] for b in head if b["name"] == "dev"][0]
    r = udr.ok("sql", "--json", 'SELECT count(*) AS n FROM "u@commit:%d"' % dev)
    assert json.loads(r.out) == [{"n": 7}]
    # a version number names one version whichever branch made it
    assert json.loads(udr.ok("sql", "--json", 'SELECT count(*) AS n FROM "u@1"').out) == [{"n": 7}]
    for q in ("SELECT * FROM u", 'SELECT * FROM "u@commit:1"', 'SELECT * FROM "u@2"'):
        r = udr("sql", q)
        assert r.code != 0 and r.out == "", (q, r)
    assert "does not exist" in udr("sql", "SELECT * FROM u").stderr


def test_diff_rows_counts_rows_per_table(udr):
    """`udr diff A B --rows`: rows before and after and the rows only one
    side holds (a changed row counts once each way), in text and JSON;
    a table whose schema changed gives counts only."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range AS id, 'x' || range AS v FROM range(100)")
    udr.ok("sql", "CREATE TABLE s AS SELECT range AS id FROM range(5)")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 'changed' WHERE id < 3")
    udr.ok("sql", "--branch", "dev", "DELETE FROM t WHERE id >= 95")
    udr.ok("sql", "--branch", "dev", "INSERT INTO t VALUES (1000, 'new')")
    udr.ok("sql", "--branch", "dev", "CREATE TABLE u AS SELECT 1 AS a")
    udr.ok("sql", "--branch", "dev", "CREATE OR REPLACE TABLE s AS SELECT id, id * 2 AS w FROM s")
    plain = udr.ok("diff", "main", "dev").out
    r = udr.ok("diff", "main", "dev", "--rows")
    lines = r.out.splitlines()
    assert [x.split("  rows")[0] for x in lines] == plain.splitlines()
    assert "changed t: 1 -> 4  rows 100 -> 96 (+4 -8)" in lines
    assert "added u: 0 -> 1  rows 0 -> 1 (+1 -0)" in lines
    assert "changed s: 1 -> 2  rows 5 -> 5 (schema changed)" in lines
    got = {d["table"]: d for d in json.loads(udr.ok("diff", "main", "dev", "--rows", "--json").out)}
    assert got["t"]["rows_old"] == 100 and got["t"]["rows_new"] == 96
    assert got["t"]["rows_added"] == 4 and got["t"]["rows_removed"] == 8
    assert got["s"]["rows_added"] is None and got["s"]["rows_removed"] is None
    # the other way round
    back = udr.ok("diff", "dev", "main", "--rows").out
    assert "changed t: 4 -> 1  rows 96 -> 100 (+8 -4)" in back
    assert "removed u: 1 -> 0  rows 1 -> 0 (+0 -1)" in back
    # only diff takes it
    r = udr("branch", "create", "x", "--rows")
    assert r.code == 2 and "takes no --rows" in r.stderr


def test_diff_of_a_dropped_table(udr):
    """A drop is a version that records the drop: diff took its number for a
    table's ("changed d: 1 -> 2"; dropped on both sides: "changed d: 3 ->
    2"; a helper's review)."""
    udr.ok("sql", "CREATE TABLE d AS SELECT 1 AS x")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "DROP TABLE d")
    assert udr.ok("diff", "main", "dev", "--rows").out == "removed d: 1 -> 0  rows 1 -> 0 (+0 -1)\n"
    assert json.loads(udr.ok("diff", "dev", "main", "--json").out) == [
        {"table": "d", "change": "added", "old": 0, "new": 1}]
    udr.ok("sql", "DROP TABLE d")
    assert udr.ok("diff", "main", "dev").out == ""


@pytest.mark.parametrize("name", ["b" * 251, "/".join(["a"] * 100)])
def test_conflicts_of_a_branch_with_a_long_name(udr, name):
    """A valid branch name of up to 255 bytes ('/' written %2F) made a merge
    record's lock file name longer than a file name may be: a merge into it
    committed and then exited 5, and its conflicts could not be recorded (a
    helper's review)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS x")
    udr.ok("branch", "create", name)
    udr.ok("branch", "create", "src")
    udr.ok("sql", "--branch", name, "UPDATE t SET x = 2")
    udr.ok("sql", "--branch", "src", "UPDATE t SET x = 3")
    r = udr("merge", "src", "--into", name)
    assert r.code == 3 and "conflict t" in r.out + r.stderr, r
    rows = json.loads(udr.ok("conflicts", "--into", name, "--json").out)
    assert [x["table"] for x in rows] == ["t"], rows
    assert udr.ok("sql", "SELECT DISTINCT target FROM udr_conflicts", "--csv").out.split() == ["target", name]
    udr.ok("resolve", "t", "--into", name, "--theirs")
    udr.ok("merge", "--continue", "--into", name)
    assert udr.ok("sql", "--branch", name, "SELECT x FROM t", "--csv").out.split() == ["x", "3"]
    assert udr.ok("fsck").code == 0


def utc_ms(t):
    """t as UTC text with milliseconds, from one reading of the clock (the
    seconds and the milliseconds read apart were a second off at a second's
    turn, and the test failed)."""
    import time
    ms = int(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def test_time_travel_in_a_branch_session_reads_the_branch(udr):
    """In a --branch dev session t@TIME read main's history (another answer
    than udr show t --branch dev --at TIME, exit 0; a helper's review)."""
    import time
    udr.ok("sql", "CREATE TABLE t AS SELECT 'main-v1' AS v")
    time.sleep(0.05)
    before = utc_ms(time.time())
    time.sleep(0.05)
    udr.ok("branch", "create", "dev")
    # before the branch was made: what it was made from (it said "no version")
    q0 = 'SELECT v FROM "t@%s"' % before
    assert udr.ok("sql", "--branch", "dev", q0, "--csv").out.split() == ["v", "main-v1"]
    udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 'dev-v2'")
    udr.ok("sql", "--branch", "dev", "CREATE TABLE d AS SELECT 1 AS x")
    time.sleep(0.05)
    at = utc_ms(time.time())
    time.sleep(0.05)
    udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 'dev-v3'")
    q = 'SELECT v FROM "t@%s"' % at
    assert udr.ok("sql", "--branch", "dev", q, "--csv").out.split() == ["v", "dev-v2"]
    assert udr.ok("sql", q, "--csv").out.split() == ["v", "main-v1"]
    shown = json.loads(udr.ok("show", "t", "--branch", "dev", "--at", at).out)["version"]
    assert udr.ok("sql", "--branch", "dev", "SELECT v FROM t@%d" % shown, "--csv").out.split() == ["v", "dev-v2"]
    assert udr.ok("sql", "--branch", "dev", 'SELECT x FROM "d@%s"' % at, "--csv").out.split() == ["x", "1"]
    r = udr("sql", 'SELECT x FROM "d@%s"' % at)
    assert r.code == 1, r



def test_diff_rows_counts_see_signed_zero_and_nan_sign(udr):
    """udr diff --rows counted 0 changed rows for 0.0 -> -0.0 and NaN ->
    -NaN (EXCEPT ALL takes them for equal) while merges store them as
    changes (a helper's review)."""
    udr.ok("sql", "CREATE TABLE f AS SELECT * FROM (VALUES (1, 0.0::DOUBLE, 1.5::FLOAT), "
                  "(2, 'NaN'::DOUBLE, 0.0::FLOAT), (3, 1.0::DOUBLE, 2.0::FLOAT)) x(id, v, \"w\"\"q\")")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "BEGIN; DELETE FROM f WHERE id < 3; INSERT INTO f VALUES "
                  "(1, '-0.0'::DOUBLE, 1.5::FLOAT), (2, 'NaN'::DOUBLE, '-0.0'::FLOAT); COMMIT")
    assert udr.ok("diff", "main", "dev", "--rows").out == "changed f: 1 -> 2  rows 3 -> 3 (+2 -2)\n"


def test_diff_rows_counts_see_signed_zero_inside_lists_and_structs(udr):
    """udr diff --rows compared floats inside lists, structs and maps with
    EXCEPT ALL's equality: [0.0] -> [-0.0] was no change (a review of this
    stop)."""
    udr.ok("sql", "CREATE TABLE f AS SELECT * FROM (VALUES (1, [0.0::DOUBLE], {'a': 0.0::FLOAT}), "
                  "(2, [1.0::DOUBLE], {'a': 1.0::FLOAT})) x(id, l, s)")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "BEGIN; DELETE FROM f; INSERT INTO f VALUES "
                  "(1, [-0.0::DOUBLE], {'a': 0.0::FLOAT}), (2, [1.0::DOUBLE], {'a': -0.0::FLOAT}); COMMIT")
    assert udr.ok("diff", "main", "dev", "--rows").out == "changed f: 1 -> 2  rows 2 -> 2 (+2 -2)\n"



def test_conflicts_into_an_unknown_branch_is_an_error(udr):
    """`udr conflicts --into nosuch` printed an empty table with exit 0, as
    if a branch that does not exist had merged cleanly."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS x")
    udr.ok("branch", "create", "dev")
    assert json.loads(udr.ok("conflicts", "--into", "dev", "--json").out) == []
    r = udr("conflicts", "--into", "nosuch")
    assert r.code == 1 and "nosuch" in r.stderr and r.out == "", r
    r = udr("conflicts", "--into", "a b")
    assert r.code == 2 and "invalid branch or tag name" in r.stderr, r
    udr.ok("tag", "create", "v1")
    assert udr("conflicts", "--into", "v1").code == 1    # a tag is no merge target
