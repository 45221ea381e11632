"""udr cherry-pick and udr revert: one commit on the target branch each,
at table level; conflicts and bad input (unknown commit, a ref record, a
merge, a commit already on / not on the branch, a table the commit created)
write nothing; strategies; the record's op and source; fsck.
"""
import json

from conftest import tree_snapshot


def commit(udr, table, data, *extra):
    h = udr.put(data)
    return int(udr.ok("commit", table, "--next", h, *extra).out)


def content(udr, table, ref="main"):
    """The data of table on ref (each test's contents are one chunk each)."""
    chunks = json.loads(udr.ok("show", table, "--branch", ref).out)["chunks"]
    assert len(chunks) == 1
    return udr.ok("get", chunks[0]).stdout


def version_on(udr, table, ref):
    return json.loads(udr.ok("show", table, "--branch", ref).out)["version"]


def head(udr, branch="main"):
    return json.loads(udr.ok("log", "--branch", branch, "--json", "--limit", "1").out.strip().strip("[]"))


def setup_two_branches(udr):
    """main: t=1 (a), u=1 (x); dev from there: t=2 (b) in one commit, then
    t=3 (c) and u=2 (y) in another.  Returns the seqs of dev's commits."""
    commit(udr, "t", b"a")
    commit(udr, "u", b"x")
    udr.ok("branch", "create", "dev")
    commit(udr, "t", b"b", "--branch", "dev")
    c1 = head(udr, "dev")["seq"]
    spec = {"branch": "dev", "tables": [{"table": "t", "chunks": [udr.put(b"c")]},
                                        {"table": "u", "chunks": [udr.put(b"y")]}]}
    udr.ok("commit", "--spec", "-", input=json.dumps(spec))
    c2 = head(udr, "dev")["seq"]
    return c1, c2


def test_cherry_pick_takes_the_commit_as_one_commit(udr):
    c1, c2 = setup_two_branches(udr)
    r = json.loads(udr.ok("cherry-pick", str(c1), "--json").out)
    assert r["conflicts"] == 0 and r["source"] == c1 and r["commit"] > 0
    assert r["tables"] == [{"table": "t", "expected": 1, "ours": 1, "content": 2, "result": 4, "conflict": False}]
    assert content(udr, "t") == b"b" and version_on(udr, "t", "main") == 4
    assert content(udr, "u") == b"x"
    rec = head(udr)
    assert rec["op"] == "cherry-pick" and rec["source"] == c1 and rec["parents"] == [rec["parent"]]
    assert rec["message"] == "cherry-pick of commit %d" % c1
    assert [c["table"] for c in rec["changes"]] == ["t"]
    assert "cherry-pick of commit %d" % c1 in udr.ok("log", "--limit", "1").out
    # the dev branch did not move; its versions are untouched
    assert version_on(udr, "t", "dev") == 3
    # picking it again: main already has its content, nothing written
    before = tree_snapshot(udr.root)
    r = udr.ok("cherry-pick", "commit:%d" % c1)
    assert "nothing to cherry-pick" in r.out
    assert tree_snapshot(udr.root) == before
    # the second commit (two tables) picks cleanly on top: t is at b's content
    r = json.loads(udr.ok("cherry-pick", "dev", "--json", "-m", "both").out)
    assert [x["table"] for x in r["tables"]] == ["t", "u"]
    assert content(udr, "t") == b"c" and content(udr, "u") == b"y"
    assert head(udr)["message"] == "both"
    reflog = json.loads(udr.ok("reflog", "--json").out)
    assert [e["op"] for e in reflog[:2]] == ["cherry-pick", "cherry-pick"]
    assert udr.ok("fsck").code == 0


def test_cherry_pick_conflict_writes_nothing_unless_a_strategy(udr):
    c1, c2 = setup_two_branches(udr)
    commit(udr, "t", b"main's own")  # main: t no longer at version 1
    before = tree_snapshot(udr.root)
    r = udr("cherry-pick", str(c2))
    assert r.code == 3, r
    assert "conflict t" in r.out and "nothing written" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    r = udr("cherry-pick", str(c2), "--dry-run")
    assert r.code == 3 and tree_snapshot(udr.root) == before
    # ours: t stays, u (still at the commit's old version) is taken
    r = json.loads(udr.ok("cherry-pick", str(c2), "--strategy", "ours", "--json").out)
    assert [(x["table"], x["conflict"]) for x in r["tables"]] == [("t", False), ("u", False)]
    assert content(udr, "t") == b"main's own" and content(udr, "u") == b"y"
    # theirs: the commit's content whatever main has
    r = json.loads(udr.ok("cherry-pick", str(c1), "--strategy", "theirs", "--json").out)
    assert r["commit"] > 0 and content(udr, "t") == b"b"
    assert udr.ok("fsck").code == 0


def test_revert(udr):
    commit(udr, "t", b"a")
    commit(udr, "u", b"x")
    spec = {"tables": [{"table": "t", "chunks": [udr.put(b"b")]}, {"table": "u", "chunks": [udr.put(b"y")]}]}
    udr.ok("commit", "--spec", "-", input=json.dumps(spec))
    bad = head(udr)["seq"]
    commit(udr, "v", b"later")
    dry = udr.ok("revert", str(bad), "--dry-run")
    assert "would take t" in dry.out and content(udr, "t") == b"b"
    r = json.loads(udr.ok("revert", str(bad), "--json").out)
    assert r["conflicts"] == 0 and [x["result"] for x in r["tables"]] == [3, 3]
    assert content(udr, "t") == b"a" and content(udr, "u") == b"x" and content(udr, "v") == b"later"
    rec = head(udr)
    assert rec["op"] == "revert" and rec["source"] == bad and rec["branch"] == "main"
    # reverting it again: already back, nothing written
    before = tree_snapshot(udr.root)
    assert "nothing to revert" in udr.ok("revert", str(bad)).out
    assert tree_snapshot(udr.root) == before
    # revert the revert: the content comes back
    udr.ok("revert", str(rec["seq"]))
    assert content(udr, "t") == b"b" and content(udr, "u") == b"y"
    # a table changed since: conflict, nothing written; theirs forces it
    commit(udr, "t", b"newer")
    before = tree_snapshot(udr.root)
    r = udr("revert", str(rec["seq"] + 1))
    assert r.code == 3 and "conflict t" in r.out, r
    assert tree_snapshot(udr.root) == before
    udr.ok("revert", str(rec["seq"] + 1), "--strategy", "theirs")
    assert content(udr, "t") == b"a" and content(udr, "u") == b"x"
    assert udr.ok("fsck").code == 0


def test_revert_on_a_branch(udr):
    commit(udr, "t", b"a")
    udr.ok("branch", "create", "dev")
    commit(udr, "t", b"b", "--branch", "dev")
    c = head(udr, "dev")["seq"]
    # not in main's history
    r = udr("revert", str(c))
    assert r.code == 2 and "not on branch main" in r.stderr, r
    udr.ok("revert", str(c), "--branch", "dev")
    assert content(udr, "t", "dev") == b"a" and version_on(udr, "t", "main") == 1
    assert head(udr, "dev")["op"] == "revert"
    assert udr.ok("fsck").code == 0


def test_bad_input_writes_nothing(udr):
    c1, c2 = setup_two_branches(udr)
    udr.ok("merge", "dev", "--into", "main")  # a fast-forward: no merge record
    commit(udr, "w", b"w", "--branch", "dev")
    commit(udr, "t", b"main2")
    udr.ok("merge", "dev", "--into", "main")
    merge = head(udr)["seq"]
    assert head(udr)["op"] == "merge"
    udr.ok("tag", "create", "v1")
    log = json.loads(udr.ok("log", "--json").out)
    create = [x["seq"] for x in log if x.get("op") == "create"][0]
    tag_rec = [x["seq"] for x in log if x.get("op") == "tag"][0]
    before = tree_snapshot(udr.root)
    for args, code, needle in (
            (["cherry-pick", "999"], 1, "commit 999 not found"),
            (["revert", "999"], 1, "commit 999 not found"),
            (["cherry-pick", "nosuch"], 1, "nosuch"),
            (["cherry-pick", str(c1), "--branch", "nosuch"], 1, "nosuch"),
            (["cherry-pick", "0"], 2, "commit:N"),
            (["cherry-pick", str(create)], 2, "ref record"),
            (["revert", "commit:%d" % tag_rec], 2, "ref record"),
            (["cherry-pick", str(merge), "--branch", "dev"], 2, "is a merge"),
            (["revert", str(merge)], 2, "is a merge"),
            (["cherry-pick", str(c1)], 2, "already on branch main"),
            (["revert", "1"], 2, "created table t"),
            (["cherry-pick", str(c1), "--branch", "a..b"], 2, "invalid branch"),
            (["cherry-pick", str(c1), "--strategy", "mine"], 2, "ours or theirs"),
            (["cherry-pick"], 2, "missing COMMIT"),
            (["revert", "1", "2"], 2, "too many")):
        r = udr(*args)
        assert r.code == code, (args, r)
        assert needle in r.stderr, (args, r)
    assert tree_snapshot(udr.root) == before


def test_a_revert_of_a_table_created_again_after_a_drop_drops_nothing(udr):
    """revert of the commit that created t again after DROP TABLE dropped
    t (exit 0); a commit that created a table cannot be reverted."""
    import pytest
    r = udr("sql", "SELECT 1")
    if r.code != 0:
        pytest.skip("needs the query module")
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id")
    udr.ok("sql", "DROP TABLE t")
    udr.ok("sql", "CREATE TABLE t AS SELECT 9 AS id")
    before = tree_snapshot(udr.root)
    r = udr("revert", str(head(udr)["seq"]))
    assert r.code == 2 and "created table t" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    assert udr.ok("sql", "--csv", "SELECT id FROM t").out.split()[-1] == "9"
