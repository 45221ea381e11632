"""Stop 39: ref records given as commits, and conflict records of a branch
that moved.

- `udr merge commit:N` where N is a tag record merged into a branch that
  already had the tagged commit wrote an empty two-parent merge commit
  ("fast-forward", exit 0) where `merge tag:v1` said "already up to date";
  a merge, branch or tag made at a tag, untag or delete record named that
  record as a parent.  Such a record stands for its parent, as reads
  already showed.
- A merge conflict record outlived `branch delete`: a branch made again
  with the name listed the old conflicts and `resolve` accepted answers
  for them, which only `--continue` refused.
"""
import json

from conftest import csv, tree_snapshot, table_rows as rows


def log(udr, n=1):
    return json.loads(udr.ok("log", "--json", "--limit", str(n)).out)


def two_branches(udr, tmp_path):
    """t@1 on main (commit 1), tag v1 at it, dev with t@2."""
    udr.ok("commit", "t", "--next", udr.put(b"one"))
    udr.ok("tag", "create", "v1")
    udr.ok("branch", "create", "dev")
    udr.ok("commit", "t", "--next", udr.put(b"two"), "--branch", "dev")


def test_merge_of_a_tag_record_already_in_the_branch_writes_nothing(udr, tmp_path):
    two_branches(udr, tmp_path)
    tag_rec = log(udr, 3)[2]
    assert tag_rec["op"] == "tag", tag_rec
    before = tree_snapshot(udr.root)
    r = udr.ok("merge", "commit:%d" % tag_rec["seq"])
    assert "already up to date" in r.out, r
    assert tree_snapshot(udr.root) == before


def test_merge_of_a_delete_record_names_the_deleted_head(udr, tmp_path):
    two_branches(udr, tmp_path)
    dev_head = log(udr)[0]["seq"]
    udr.ok("branch", "delete", "dev")
    rec = log(udr)[0]
    assert rec["op"] == "delete" and rec["parent"] == dev_head, rec
    udr.ok("merge", "commit:%d" % rec["seq"])
    m = log(udr)[0]
    assert m["op"] == "merge" and m["parents"][1] == dev_head, m
    assert udr.ok("get", json.loads(udr.ok("show", "t").out)["chunks"][0]).stdout == b"two"
    udr.ok("fsck")


def test_branch_and_tag_made_at_a_ref_record_name_its_commit(udr, tmp_path):
    two_branches(udr, tmp_path)
    tag_rec = log(udr, 3)[2]
    target = tag_rec["parent"]
    r = udr.ok("branch", "create", "x", "--from", "commit:%d" % tag_rec["seq"])
    assert "at commit %d " % target in r.out, r
    assert log(udr)[0]["parent"] == target
    r = udr.ok("tag", "create", "v2", "commit:%d" % tag_rec["seq"])
    assert "tagged commit %d " % target in r.out, r
    assert log(udr)[0]["parent"] == target
    r = udr.ok("branch", "reset", "dev", "--to", "commit:%d" % tag_rec["seq"])
    assert "at commit %d " % target in r.out, r
    assert log(udr)[0]["parent"] == target
    udr.ok("fsck")


def conflicting_merge_into_dev(udr, tmp_path):
    udr.ok("commit", "t", "--next", udr.put(b"base"))
    udr.ok("branch", "create", "dev")
    udr.ok("commit", "t", "--next", udr.put(b"dev side"), "--branch", "dev")
    udr.ok("commit", "t", "--next", udr.put(b"main side"))
    r = udr("merge", "main", "--into", "dev")
    assert r.code == 3, r
    got = json.loads(udr.ok("conflicts", "--into", "dev", "--json").out)
    assert [c["table"] for c in got] == ["t"], got


def test_conflicts_of_a_deleted_and_remade_branch_are_stale(udr, tmp_path):
    conflicting_merge_into_dev(udr, tmp_path)
    udr.ok("branch", "delete", "dev")
    udr.ok("branch", "create", "dev")
    assert json.loads(udr.ok("conflicts", "--into", "dev", "--json").out) == []
    before = tree_snapshot(udr.root)
    r = udr("resolve", "t", "--ours", "--into", "dev")
    assert r.code == 3 and "moved since the merge" in r.stderr and "nothing resolved" in r.stderr, r
    r = udr("merge", "--continue", "--into", "dev")
    assert r.code == 3 and "moved since the merge" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    udr.ok("merge", "--abort", "--into", "dev")
    udr.ok("fsck")


def test_conflicts_of_a_deleted_branch_are_refused(udr, tmp_path):
    conflicting_merge_into_dev(udr, tmp_path)
    udr.ok("branch", "delete", "dev")
    before = tree_snapshot(udr.root)
    r = udr("resolve", "t", "--theirs", "--into", "dev")
    assert r.code == 3 and "was deleted since the merge" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    assert json.loads(udr.ok("conflicts", "--json").out) == []
    udr.ok("merge", "--abort", "--into", "dev")


def test_conflicts_of_a_branch_that_moved_are_stale(udr, tmp_path):
    conflicting_merge_into_dev(udr, tmp_path)
    udr.ok("commit", "t", "--next", udr.put(b"dev again"), "--branch", "dev")
    assert json.loads(udr.ok("conflicts", "--into", "dev", "--json").out) == []
    r = udr("resolve", "t", "--ours", "--into", "dev")
    assert r.code == 3 and "moved since the merge" in r.stderr, r
    # merging again records the new conflicts, which resolve then takes
    r = udr("merge", "main", "--into", "dev")
    assert r.code == 3, r
    udr.ok("resolve", "t", "--ours", "--into", "dev")
    udr.ok("merge", "--continue", "--into", "dev")
    udr.ok("fsck")


def test_resolve_takes_a_key_json_spelled_otherwise(udr, tmp_path):
    """resolve --key took only udr_conflicts' own spelling of a
    several-column key ({"r":"eu","id":1}); the same JSON with spaces was
    "no conflicting row"."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 'eu' AS r, 1 AS id, 'base' AS v")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "UPDATE t SET v = 'main'")
    udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 'dev'")
    r = udr("merge", "dev", "--key", "t=r,id")
    assert r.code == 3, r
    r = udr("resolve", "t", "--theirs", "--key", '{"r": "eu", "id": 2}')
    assert r.code == 1 and "no conflicting row" in r.stderr, r
    udr.ok("resolve", "t", "--theirs", "--key", '{ "r" : "eu",  "id" : 1 }')
    got = json.loads(udr.ok("conflicts", "--json").out)
    assert [c["resolved"] for c in got] == ["theirs"], got
    udr.ok("merge", "--continue")
    assert udr.ok("sql", "--csv", "SELECT v FROM t").out.splitlines() == ["v", "dev"]


def test_a_session_object_may_not_hide_a_udr_table(udr, tmp_path):
    """CREATE TEMP TABLE t (or a view, or a schema-qualified table) named
    like UDR table t hid it from the session's later statements: reads saw
    the scratch rows, and an INSERT "succeeded" into them, committing
    nothing (found through Python's DB-API, which runs CREATE TABLE as
    CREATE TEMP TABLE)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS v")
    udr.ok("sql", "--branch", "main", "CREATE TABLE gone AS SELECT 1 AS v")
    udr.ok("sql", "DROP TABLE gone")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "CREATE TABLE devonly AS SELECT 1 AS v")
    before = tree_snapshot(udr.root)
    for stmt in ("CREATE TEMP TABLE t AS SELECT 42 AS v",
                 "CREATE OR REPLACE TEMPORARY TABLE \"t\" (v INT)",
                 "CREATE TEMP TABLE temp.t AS SELECT 42 AS v",
                 "CREATE TABLE memory.main.t AS SELECT 42 AS v",
                 "CREATE VIEW t AS SELECT 42 AS v",
                 "CREATE OR REPLACE TEMP VIEW main.t AS SELECT 42 AS v",
                 "CREATE VIEW IF NOT EXISTS t AS SELECT 42 AS v",
                 "CREATE TEMP TABLE T AS SELECT 42 AS v",  # identifiers are case-insensitive
                 "CREATE TABLE memory.t AS SELECT 42 AS v",
                 "ALTER TABLE nosuch RENAME TO t",
                 "ALTER VIEW nosuch RENAME TO T"):
        r = udr("sql", stmt)
        assert r.code == 2 and "is a UDR table" in r.stderr, (stmt, r)
    assert tree_snapshot(udr.root) == before
    # names of no live table on the session's branch are the session's own
    udr.ok("sql", "CREATE TEMP TABLE gone AS SELECT 2 AS v")
    udr.ok("sql", "CREATE VIEW devonly AS SELECT 2 AS v")
    r = udr("sql", "--branch", "dev", "CREATE VIEW devonly AS SELECT 2 AS v")
    assert r.code == 2 and "is a UDR table" in r.stderr, r
    udr.ok("sql", "CREATE TEMP TABLE scratch AS SELECT 2 AS v")
    assert udr.ok("sql", "--csv", "SELECT v FROM t").out.splitlines() == ["v", "1"]


def test_criss_cross_bases_of_one_content_and_a_blanket_strategy(udr, tmp_path):
    """Both branches imported the same rows (one content, two version
    numbers) and merged each other's old heads; then only dev changed t.
    The bases were compared by number, found to disagree, and
    `--strategy ours` silently dropped dev's change (exit 0). Bases and
    sides are now compared by content in a criss-cross, and a blanket
    strategy never decides a table whose bases disagree."""
    def imp(rows, *args):
        udr.ok("import", "t", csv(tmp_path, "t.csv", rows, "id,a"), *args)
    imp([(1, "a")])
    udr.ok("branch", "create", "dev")
    imp([(1, "a"), (2, "b")])
    a = json.loads(udr.ok("log", "--json", "--limit", "1").out)[0]["seq"]
    imp([(1, "a"), (2, "b")], "--branch", "dev")
    b = json.loads(udr.ok("log", "--json", "--limit", "1").out)[0]["seq"]
    udr.ok("merge", "commit:%d" % b, "--key", "t=id")
    udr.ok("merge", "commit:%d" % a, "--into", "dev", "--key", "t=id")
    imp([(1, "a"), (2, "b"), (3, "dev only")], "--branch", "dev")
    udr.ok("merge", "dev", "--strategy", "ours")
    assert rows(udr) == [(1, "a"), (2, "b"), (3, "dev only")]
    udr.ok("fsck")


def test_criss_cross_table_the_bases_disagree_on_needs_its_own_side(udr, tmp_path):
    """Each side resolved the crossing differently: --strategy (for every
    table) does not decide t, --table t=SIDE does."""
    udr.ok("commit", "t", "--next", udr.put(b"base"))
    udr.ok("branch", "create", "dev")
    heads = {}
    for b, text in (("main", b"m1"), ("dev", b"d1")):
        udr.ok("commit", "t", "--next", udr.put(text), "--branch", b)
        heads[b] = json.loads(udr.ok("log", "--json", "--limit", "1").out)[0]["seq"]
    udr.ok("merge", "commit:%d" % heads["dev"], "--table", "t=ours")
    udr.ok("merge", "commit:%d" % heads["main"], "--into", "dev", "--table", "t=ours")
    udr.ok("commit", "u", "--next", udr.put(b"u"), "--branch", "dev")
    before = udr.ok("log", "--json").out
    r = udr("merge", "dev", "--strategy", "theirs")
    assert r.code == 3 and "criss-cross" in r.stderr, r
    assert udr.ok("log", "--json").out == before
    udr.ok("merge", "--abort")
    udr.ok("merge", "dev", "--table", "t=theirs")
    t = json.loads(udr.ok("show", "t").out)["chunks"][0]
    assert udr.ok("get", t).stdout == b"d1"
    assert json.loads(udr.ok("show", "u").out)["version"] == 1


def test_resolve_key_exact_text_wins(udr, tmp_path):
    """A one-column VARCHAR key holding JSON-object text: resolve --key
    '{"a":1e2}' resolved the row keyed '{"a":100.0}' (the JSON spelling
    fallback matched both, and the smaller text won), exit 0."""
    p = tmp_path / "t.ndjson"
    def imp(v, *args):
        p.write_text("".join(json.dumps({"k": k, "v": v}) + "\n" for k in ('{"a":1e2}', '{"a":100.0}')))
        udr.ok("import", "t", str(p), *args)
    imp("base")
    udr.ok("branch", "create", "dev")
    imp("main")
    imp("dev", "--branch", "dev")
    assert udr("merge", "dev", "--key", "t=k").code == 3
    udr.ok("resolve", "t", "--theirs", "--key", '{"a":1e2}')
    got = {json.loads(c["key"])["k"] if isinstance(c["key"], str) else c["key"]["k"]: c["resolved"]
           for c in json.loads(udr.ok("conflicts", "--json").out)}
    assert got == {'{"a":1e2}': "theirs", '{"a":100.0}': None}, got
    r = udr("resolve", "t", "--ours", "--key", '{"a": 1e2}')  # another spelling: no such key text
    assert r.code == 1, r
