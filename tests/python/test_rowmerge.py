"""Row-level merges from Python: db.merge(keys=, strictness=), the
MergeConflictError carrying the recorded rows, db.conflicts(),
db.resolve_conflict(), db.merge_continue() and db.merge_abort()."""
import pytest

import udr

pytestmark = pytest.mark.skipif(not udr.HAVE_QUERY, reason="no query module")

BASE = [{"id": 1, "a": "x", "b": 10}, {"id": 2, "a": "y", "b": 20}, {"id": 3, "a": "z", "b": 30}]


def rows(db, ref="t"):
    return [tuple(r) for r in db.sql('SELECT * FROM "%s" ORDER BY id' % ref).fetchall()]


def three(db, ours, theirs):
    db.write("t", BASE)
    db.create_branch("dev")
    db.write("t", theirs, branch="dev")
    db.write("t", ours)


def test_clean_row_merge(db):
    three(db, [{"id": 1, "a": "X", "b": 10}, {"id": 2, "a": "y", "b": 20}],
          BASE + [{"id": 4, "a": "n", "b": 40}])
    r = db.merge("dev", keys={"t": "id"})
    assert r["commit"] > 0 and r["tables"][0]["counts"] == {"ours": 2, "theirs": 1, "same": 0, "cells": 0,
                                                            "conflict": 0}
    assert rows(db) == [(1, "X", 10), (2, "y", 20), (4, "n", 40)]


def test_cell_strictness_and_compound_key_list(db):
    three(db, [{"id": 1, "a": "X", "b": 10}] + BASE[1:], [{"id": 1, "a": "x", "b": 11}] + BASE[1:])
    with pytest.raises(udr.MergeConflictError):
        db.merge("dev", keys={"t": ["id"]})
    db.merge_abort()
    r = db.merge("dev", keys={"t": ["id"]}, strictness={"t": "cell"})
    assert r["tables"][0]["counts"]["cells"] == 1
    assert rows(db)[0] == (1, "X", 11)


def test_conflict_rows_resolve_continue(db):
    three(db, [{"id": 1, "a": "O", "b": 10}] + BASE[1:], [{"id": 1, "a": "T", "b": 10}] + BASE[1:2])
    head = db.resolve("main")
    with pytest.raises(udr.MergeConflictError) as e:
        db.merge("dev", keys={"t": "id"})
    assert isinstance(e.value, udr.ConflictError)
    c = e.value.conflicts[0]
    assert c["table"] == "t" and c["counts"]["conflict"] == 1
    assert c["rows"] == [{"target": "main", "table": "t", "key": {"id": 1}, "base": {"id": 1, "a": "x", "b": 10},
                          "ours": {"id": 1, "a": "O", "b": 10}, "theirs": {"id": 1, "a": "T", "b": 10},
                          "resolved": None}]
    assert db.resolve("main") == head
    assert db.conflicts() == c["rows"]
    with pytest.raises(udr.NotFoundError):
        db.resolve_conflict("t", "ours", key=99)
    with pytest.raises(udr.InvalidArgumentError):
        db.resolve_conflict("t", "mine")
    db.resolve_conflict("t", "theirs", key=1)
    assert db.conflicts()[0]["resolved"] == "theirs"
    r = db.merge_continue()
    assert r["commit"] > head and db.conflicts() == []
    assert rows(db) == [(1, "T", 10), (2, "y", 20)]


def test_resolve_with_sql_and_abort(db):
    three(db, [{"id": 1, "a": "O", "b": 10}], [{"id": 1, "a": "T", "b": 10}])
    with pytest.raises(udr.MergeConflictError):
        db.merge("dev", keys={"t": "id"})
    db.resolve_conflict("t", sql="SELECT id, 'both' AS a, b FROM t@dev")
    db.merge_continue()
    assert rows(db) == [(1, "both", 10)]
    with pytest.raises(udr.NotFoundError):
        db.merge_abort()


def test_continue_after_the_target_moved(db):
    three(db, [{"id": 1, "a": "O", "b": 10}], [{"id": 1, "a": "T", "b": 10}])
    with pytest.raises(udr.MergeConflictError):
        db.merge("dev", keys={"t": "id"})
    db.resolve_conflict("t", "ours")
    db.write("other", [{"x": 1}])
    with pytest.raises(udr.ConflictError) as e:
        db.merge_continue()
    assert "moved" in str(e.value)
    db.merge_abort()
    assert db.conflicts() == []


def test_bad_keys(db):
    three(db, [{"id": 1, "a": "O", "b": 10}], [{"id": 1, "a": "T", "b": 10}])
    with pytest.raises(udr.InvalidArgumentError):
        db.merge("dev", keys={"t": "nosuch"})
    with pytest.raises(udr.InvalidArgumentError):
        db.merge("dev", keys={"t": "id"}, strictness={"t": "fuzzy"})
    with pytest.raises(udr.InvalidArgumentError):
        db.merge("dev", keys=["t"])
    assert db.conflicts() == []
