"""Database.retention / set_retention: the stored retention policy (docs/GC.md
1.1) from Python; expire() applying it; bad policies refused, nothing written."""

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
def db(tmp_path):
    db = udr.open(str(tmp_path / "db"))
    for i in range(5):
        db.write("t", [{"id": i}])
    for i in range(5):
        db.write("u", [{"id": i}])
    yield db
    db.close()


def test_set_get_clear(db, tmp_path):
    assert db.retention() == {}
    pol = {"default": {"keep_last": 2}, "tables": {"u": {"keep_last": 4}},
           "branches": {"dev/*": {"keep_within": "14d"}}, "pairs": {"main": {"t": {"keep_daily": 3}}}}
    seq = db.set_retention(pol, message="policy one")
    assert isinstance(seq, int) and seq == 11
    assert db.retention() == pol
    # another handle (reopen) sees it
    db2 = udr.open(str(tmp_path / "db"))
    try:
        assert db2.retention() == pol
    finally:
        db2.close()
    assert db.set_retention(None) == 12
    assert db.retention() == {}
    db.set_retention({"default": {"keep_last": 1}})
    assert db.set_retention({}) == 14 and db.retention() == {}


def test_expire_applies_it(db):
    # no policy, no keep_: nothing
    assert db.expire(dry_run=True)["expired"]["versions"] == 0
    db.set_retention({"default": {"keep_last": 2}, "tables": {"u": {"keep_last": 4}}})
    p = db.expire(dry_run=True)
    assert p["expired"]["ranges"] == {"t": [[1, 3]], "u": [[1, 1]]}
    # keep_last= replaces only the default
    p = db.expire(keep_last=1, dry_run=True)
    assert p["expired"]["ranges"] == {"t": [[1, 4]], "u": [[1, 1]]}
    r = db.expire()
    assert r["expired"]["versions"] == 4 and r["dry_run"] is False
    assert db.expired() and {x[0] for x in db.expired()} == {"t", "u"}


@pytest.mark.parametrize("pol,exc", [
    ({"default": {"keep_last": 0}}, udr.InvalidArgumentError),
    ({"default": {"keep_within": "5m"}}, udr.InvalidArgumentError),
    ({"default": {"keep_forever": 1}}, udr.InvalidArgumentError),
    ({"grace": "24"}, udr.InvalidArgumentError),
    ({"orphans": {"keep_last": 1}}, udr.InvalidArgumentError),
    ({"tables": {"a b": {"keep_last": 1}}}, udr.InvalidArgumentError),
    ([1], TypeError),
    ("{}", TypeError),
])
def test_bad_policy_nothing_written(db, tmp_path, pol, exc):
    db.set_retention({"default": {"keep_last": 3}})
    before = tree(str(tmp_path / "db"))
    with pytest.raises(exc):
        db.set_retention(pol)
    assert tree(str(tmp_path / "db")) == before
    assert db.retention() == {"default": {"keep_last": 3}}


def test_gc_applies_it(db):
    # no policy: gc expires nothing
    r = db.gc()
    assert "retention" not in r and db.expired() == []
    db.set_retention({"default": {"keep_last": 3}, "tables": {"u": {"keep_last": 4}}})
    r = db.gc()
    assert r["retention"]["expired"]["ranges"] == {"t": [[1, 2]], "u": [[1, 1]]}
    with pytest.raises(udr.ExpiredError):
        db.read("t", version=2)
    assert db.read("t", version=3) is not None
    # keep_last replaces only the default
    r = db.gc(keep_last=1)
    assert r["retention"]["expired"]["ranges"] == {"t": [[3, 4]]}


def test_set_one_rule(db):
    import datetime
    assert db.set_retention(keep_last=3) == 11
    assert db.retention() == {"default": {"keep_last": 3}}
    db.set_retention(table="u", keep_within="90d", keep_daily=2)
    db.set_retention(branch="dev/*", keep_within=datetime.timedelta(days=2))
    db.set_retention(table="t", branch="main", keep_yearly=1, message="pair")
    assert db.retention() == {"default": {"keep_last": 3}, "tables": {"u": {"keep_within": "90d", "keep_daily": 2}},
                              "branches": {"dev/*": {"keep_within": "2d"}},
                              "pairs": {"main": {"t": {"keep_yearly": 1}}}}
    # replaces the rule whole
    db.set_retention(table="u", keep_last=4)
    assert db.retention()["tables"] == {"u": {"keep_last": 4}}
    n = db.retention()
    for kw, exc in [(dict(), udr.InvalidArgumentError), (dict(table="u"), udr.InvalidArgumentError),
                    (dict(keep_last=0), udr.InvalidArgumentError), (dict(table="a b", keep_last=1),
                                                                     udr.InvalidArgumentError),
                    (dict(branch="a..b", keep_last=1), udr.InvalidArgumentError),
                    (dict(keep_within="5m"), udr.InvalidArgumentError)]:
        with pytest.raises(exc):
            db.set_retention(**kw)
    with pytest.raises(udr.InvalidArgumentError):
        db.set_retention({}, table="u")
    assert db.retention() == n
