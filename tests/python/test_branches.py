"""Branches, tags, the reflog, merges and diffs from Python (Database.*):
isolation, transactions and writes on a branch, MergeConflictError carrying
the conflicts with nothing written, strategies, bad names and unknown refs.
"""

import pytest

import udr


def put(db, table, data, branch=None):
    h = db.store.put(data)
    with db.transaction(branch=branch) as tx:
        return tx.write(table, [h])


def test_branches_and_isolation(db):
    assert db.branches() == {"main": 0}
    put(db, "users", b"u1")
    seq = db.create_branch("dev")
    assert db.branches() == {"main": 1, "dev": seq}
    assert put(db, "users", b"u2", branch="dev") == 2
    assert put(db, "users", b"u3") == 3
    assert db.catalog.latest("users") == 3
    assert db.diff("main", "dev") == [{"table": "users", "change": "changed", "old": 3, "new": 2}]
    with db.transaction(branch="dev") as tx:
        assert tx.latest("users") == 2
    with pytest.raises(udr.ConflictError):
        db.create_branch("dev")
    with pytest.raises(udr.NotFoundError):
        db.create_branch("x", from_="nosuch")
    with pytest.raises(udr.InvalidArgumentError):
        db.create_branch("a..b")
    with pytest.raises(udr.InvalidArgumentError):
        db.delete_branch("main")
    with pytest.raises(udr.NotFoundError):
        db.transaction(branch="nosuch")
    events = db.changes(branch="dev")
    assert [e.branch for e in events] == ["dev", "dev"]


def test_tags_reset_reflog(db):
    put(db, "t", b"1")
    db.tag("v1")
    with pytest.raises(udr.ConflictError):
        db.tag("v1")
    put(db, "t", b"2")
    assert db.tags() == {"v1": 1}
    assert db.resolve("tag:v1") == 1
    db.reset_branch("main", "v1")
    assert db.catalog.latest("t") == 1
    log = db.reflog("main")
    assert log[0]["op"] == "reset" and log[1]["op"] == "commit"
    db.reset_branch("main", "commit:%d" % log[0]["old"])
    assert db.catalog.latest("t") == 2
    assert len(db.reflog("main", limit=1)) == 1
    db.delete_tag("v1")
    assert db.tags() == {}


def test_merge(db):
    put(db, "a", b"a1")
    put(db, "b", b"b1")
    db.create_branch("dev")
    assert db.merge("dev")["up_to_date"]
    put(db, "a", b"a dev", branch="dev")
    r = db.merge("dev", into="main")
    assert r["fast_forward"] and r["commit"] > 0
    put(db, "a", b"a dev 2", branch="dev")
    put(db, "a", b"a main 2")
    head = db.resolve("main")
    with pytest.raises(udr.MergeConflictError) as e:
        db.merge("dev")
    assert isinstance(e.value, udr.ConflictError)
    assert [c["table"] for c in e.value.conflicts] == ["a"]
    assert e.value.conflicts[0]["base"] == 2
    assert e.value.result["commit"] == 0
    assert db.resolve("main") == head
    r = db.merge("dev", dry_run=True, strategy="theirs")
    assert r["dry_run"] and r["commit"] == 0 and db.resolve("main") == head
    with pytest.raises(udr.InvalidArgumentError):
        db.merge("dev", tables={"a": "mine"})
    r = db.merge("dev", tables={"a": "theirs"}, message="take dev")
    assert r["commit"] > head
    assert db.catalog.latest("a") == 3


@pytest.mark.skipif(not udr.HAVE_QUERY, reason="no query module")
def test_write_and_read_on_branch(db):
    db.write("t", [{"id": 1}, {"id": 2}])
    db.create_branch("exp")
    assert db.write("t", [{"id": 3}], "append", branch="exp") == 2
    assert len(db.read("t")) == 2
    assert len(db.read("t", branch="exp")) == 3
    rows = db.sql("SELECT count(*) FROM t@exp JOIN t@main USING (id)").fetchall()
    assert rows == [(2,)]
    with pytest.raises(udr.NotFoundError):
        db.read("t", branch="nosuch")


def chunks_on(db, table, branch=None):
    with db.transaction(branch=branch) as tx:
        return list(tx.get_version(table).chunk_hashes)


def test_cherry_pick_and_revert(db):
    put(db, "a", b"a1")
    db.create_branch("dev")
    put(db, "a", b"a dev", branch="dev")
    picked = db.resolve("dev")
    r = db.cherry_pick(picked)
    assert r["commit"] > picked and r["theirs"] == picked and r["conflicts"] == []
    assert [(t["table"], t["base"], t["ours"], t["theirs"], t["result"]) for t in r["tables"]] == [("a", 1, 1, 2, 3)]
    assert chunks_on(db, "a") == chunks_on(db, "a", "dev") == [db.store.put(b"a dev")]
    assert db.cherry_pick("dev")["up_to_date"]  # its content is there already
    put(db, "a", b"a main 2")
    head = db.resolve("main")
    r = db.revert(head, dry_run=True)
    assert r["commit"] == 0 and db.resolve("main") == head
    r = db.revert(head, message="undo")
    assert r["commit"] > head and chunks_on(db, "a") == [db.store.put(b"a dev")]
    # conflicts carried by MergeConflictError, nothing written (main's "a"
    # holds neither the commit's old content nor its new)
    put(db, "a", b"a main 3")
    put(db, "a", b"a dev 2", branch="dev")
    head = db.resolve("main")
    with pytest.raises(udr.MergeConflictError) as e:
        db.cherry_pick("commit:%d" % db.resolve("dev"))
    assert [c["table"] for c in e.value.conflicts] == ["a"] and db.resolve("main") == head
    assert db.cherry_pick(db.resolve("dev"), strategy="theirs")["commit"] > head
    assert chunks_on(db, "a") == [db.store.put(b"a dev 2")]
    # bad input
    with pytest.raises(udr.NotFoundError):
        db.revert(999)
    with pytest.raises(udr.InvalidArgumentError):
        db.cherry_pick(1)  # already on main
    with pytest.raises(udr.InvalidArgumentError):
        db.revert(db.resolve("dev"), branch="main", strategy="mine")
    with pytest.raises(udr.NotFoundError):
        db.revert(1, branch="nosuch")


def test_subscription_sees_merges_that_take_its_table(db):
    """A fast-forward merge makes no version of the tables it takes: a
    subscription to main's table missed it (and db.changes(tables=...))."""
    put(db, "a", b"a1")
    db.create_branch("dev")
    sub = db.subscribe(tables=["a"], branch="main")
    put(db, "a", b"a dev", branch="dev")
    assert sub.poll(timeout=0.3) is None          # dev's commit is not main's
    seq = db.merge("dev")["commit"]
    e = sub.poll(timeout=5.0)
    assert e is not None and e.seq == seq and e.branch == "main"
    sub.close()
    assert [c.seq for c in db.changes(tables=["a"], branch="main")] == [1, seq]


def test_subscription_to_a_branch_yet_to_be_made(db):
    # db.changes(branch=...) of a branch that never existed is NotFoundError
    # (a typo was an empty list); a subscription to it waits for it
    put(db, "a", b"a1")
    with pytest.raises(udr.NotFoundError, match="no branch 'feat'"):
        db.changes(branch="feat")
    sub = db.subscribe(branch="feat")
    assert sub.poll(timeout=0.2) is None
    db.create_branch("feat")
    put(db, "a", b"a feat", branch="feat")
    seen = []
    while True:
        e = sub.poll(timeout=5.0)
        if e is None:
            break
        seen.append(e.branch)
        if len(seen) == 2:
            break
    sub.close()
    assert seen == ["feat", "feat"]
