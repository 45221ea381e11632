"""Database.expire: the retention plan (docs/GC.md 1.2, 1.3) from Python, and
bad rules refused before anything is read or written."""

import datetime
import os

import pytest

import udr


def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[p] = fh.read()
    return out


@pytest.fixture
def db4(tmp_path):
    db = udr.open(str(tmp_path / "db"))
    for i in range(4):
        db.write("t", [{"id": i}])
    db.write("u", [{"id": 0}])
    yield db
    db.close()


def test_expire_dry_run_plan(db4):
    p = db4.expire(keep_last=2, dry_run=True)
    assert p["dry_run"] is True and p["rule"] == "keep_last=2"
    assert p["expired"] == {"versions": 2, "tables": {"t": 2}, "ranges": {"t": [[1, 2]]}}
    assert p["kept"]["versions"] == 3
    assert p["kept"]["by_reason"]["head"] == 2 and p["kept"]["by_reason"]["policy"] == 1
    assert db4.expire(keep_last=1, table="u", dry_run=True)["expired"]["versions"] == 0
    # Everything was committed just now: a day's window keeps it all.
    p = db4.expire(keep_within=datetime.timedelta(days=1), dry_run=True)
    assert p["rule"] == "keep_within=1d" and p["expired"]["versions"] == 0
    assert db4.expire(keep_within="1y2w", keep_daily=3, dry_run=True)["rule"] == \
        "keep_within=1y2w,keep_daily=3"


@pytest.mark.parametrize("kw,exc", [
    (dict(keep_last=0), udr.InvalidArgumentError),
    (dict(keep_daily=-1), udr.InvalidArgumentError),
    (dict(keep_weekly=2 ** 32), udr.InvalidArgumentError),
    (dict(keep_last=True), TypeError),
    (dict(keep_last="3"), TypeError),
    (dict(keep_within="5m"), udr.InvalidArgumentError),
    (dict(keep_within="1mo"), udr.InvalidArgumentError),
    (dict(keep_within=datetime.timedelta(seconds=-1)), udr.InvalidArgumentError),
    (dict(keep_within=3), TypeError),
    (dict(keep_last=1, table="nope"), udr.NotFoundError),
    (dict(keep_last=1, branch="nope"), udr.NotFoundError),
    (dict(keep_last=1, table="a/../b"), udr.InvalidArgumentError),
])
def test_expire_bad_input(db4, kw, exc):
    before = tree(db4.path)
    with pytest.raises(exc):
        db4.expire(dry_run=True, **kw)
    assert tree(db4.path) == before


def test_expire_writes_a_record(db4):
    before = tree(db4.path)
    with pytest.raises(udr.NotSupportedError, match="only built with dry_run=True"):
        db4.expire(keep_last=1, branch="main")
    assert tree(db4.path) == before
    plan = db4.expire(keep_last=1, dry_run=True)
    rep = db4.expire(keep_last=1)
    assert rep["dry_run"] is False
    assert rep["expired"]["ranges"] == plan["expired"]["ranges"]
    assert rep["expired"]["versions"] == plan["expired"]["versions"] > 0
    assert len(rep["expired"]["records"]) == 1
    again = db4.expire(keep_last=1)
    assert again["expired"]["records"] == [] and again["already_expired"] == rep["expired"]["versions"]


def test_expired_reads_raise_expired_error(db4):
    rep = db4.expire(keep_last=2)                       # t@1, t@2
    seq = rep["expired"]["records"][0]
    assert rep["expired"]["ranges"] == {"t": [[1, 2]]}
    for read in (lambda: db4.read("t@1"), lambda: db4.sql('SELECT * FROM "t@2"').fetchall()):
        with pytest.raises(udr.ExpiredError) as ei:
            read()
        e = ei.value
        assert not isinstance(e, udr.NotFoundError) and not isinstance(e, KeyError)
        assert isinstance(e, udr.DatabaseError)
        assert e.table == "t" and e.version in (1, 2) and e.expired_seq == seq
        assert isinstance(e.expired_at, datetime.datetime) and e.expired_at.tzinfo is not None
        assert e.swept is False and e.swept_at is None
        assert "expired by retention on" in str(e) and "(commit %d, keep_last=2)" % seq in str(e)
    # transactions: a version of its snapshot that expired
    with db4.transaction() as txn:
        with pytest.raises(udr.ExpiredError):
            txn.get_version("t", 1)
        assert txn.get_version("t", 3).version == 3
    # kept versions read as before
    assert len(db4.read("t@3").fetchall()) == 1
    assert len(db4.read("t").fetchall()) == 1


def test_expired_and_unexpire(db4):
    assert db4.expired() == []
    seq = db4.expire(keep_last=1)["expired"]["records"][0]   # t@1..3
    ex = db4.expired()
    assert [x[:4] for x in ex] == [("t", 1, 3, seq)]
    assert isinstance(ex[0][4], datetime.datetime) and ex[0][4].tzinfo is not None
    assert db4.expired(table="u") == []
    with pytest.raises(udr.InvalidArgumentError):
        db4.expired(table="a/../b")
    # restore one, then a range with nothing expired in it
    s1 = db4.unexpire(table="t", versions=2)
    assert s1 == seq + 1
    assert [x[:4] for x in db4.expired("t")] == [("t", 1, 1, seq), ("t", 3, 3, seq)]
    assert len(db4.read("t@2").fetchall()) == 1
    with pytest.raises(udr.NotFoundError):
        db4.unexpire(table="t", versions=(2, 2))
    # bad arguments: nothing written
    for kw in (dict(table="t"), dict(versions=1), dict(seq=0), dict(seq=1, table="t", versions=1),
               dict(table="t", versions="1"), dict(seq=True)):
        with pytest.raises(udr.InvalidArgumentError):
            db4.unexpire(**kw)
    with pytest.raises(udr.InvalidArgumentError):
        db4.unexpire(seq=1)                                   # a commit, not an expire record
    # undo the newest expire record: the rest comes back; again: None
    assert db4.unexpire() == seq + 2
    assert db4.expired() == []
    assert db4.unexpire(seq=seq) is None
    assert len(db4.read("t@1").fetchall()) == 1


def test_gc_with_a_rule_expires_then_sweeps(db4):
    """db.gc(keep_last=...): the expire record, then the gc record, then the
    data of the expired versions goes; kept versions read back; the swept
    ones raise ExpiredError with swept set, and cannot be restored."""
    before = [r for r in db4.read("t@3").fetchall()]
    rep = db4.gc(keep_last=2, grace=0)
    assert rep["retention"]["expired"]["ranges"] == {"t": [[1, 2]]}
    assert rep["gc_seq"] > rep["retention"]["expired"]["records"][0]
    assert rep["mark"]["expired_versions"] == 2
    with pytest.raises(udr.ExpiredError) as ei:
        db4.read("t@1")
    assert ei.value.swept is True and isinstance(ei.value.swept_at, datetime.datetime)
    assert db4.read("t@3").fetchall() == before
    assert len(db4.read("u").fetchall()) == 1
    with pytest.raises(udr.Error):
        db4.unexpire(table="t", versions=1)
    # nothing more to expire: the same rule again links no record
    rep = db4.gc(keep_last=2, grace=0)
    assert rep["retention"]["expired"]["records"] == []


@pytest.mark.parametrize("kw, exc", [({"keep_last": 0}, udr.InvalidArgumentError),
                                     ({"keep_within": "3 days"}, udr.InvalidArgumentError),
                                     ({"keep_daily": -1}, udr.InvalidArgumentError),
                                     ({"keep_last": "2"}, TypeError)])
def test_gc_with_a_bad_rule_writes_nothing(db4, tmp_path, kw, exc):
    snap = tree(str(tmp_path / "db"))
    with pytest.raises(exc):
        db4.gc(grace=0, **kw)
    assert tree(str(tmp_path / "db")) == snap
