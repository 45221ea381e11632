"""Times everywhere: RFC 3339 offsets, a bare date as the end of that day,
the fixed format of udr_log / udr_tables times, and argument errors."""

import datetime

import pytest

import udr

UTC = datetime.timezone.utc
query = pytest.mark.skipif(not udr.HAVE_QUERY, reason="built without the query module")


def _commit(db, table="t", message=None):
    v = udr.TableVersion(table, 0, [db.store.put(b"x")], message=message)
    db.catalog.commit_next(v)
    return v


def _in_offset(ms, hours):
    tz = datetime.timezone(datetime.timedelta(hours=hours))
    return datetime.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


@query
def test_offsets_and_dates_in_references(db):
    db.write("t", [{"a": 1}])
    first = db.changes()[-1].time_ms
    db.write("t", [{"a": 1}, {"a": 2}])
    second = db.changes()[-1].time_ms
    if second - first < 2:
        pytest.skip("two commits in one millisecond")
    mid = first  # version 1 is current from `first` until `second` - 1
    texts = [_in_offset(mid, 14), _in_offset(mid, -12), _in_offset(mid, -3.5)]
    utc_date = datetime.datetime.fromtimestamp(mid / 1000, UTC).date().isoformat()
    assert any(not t.startswith(utc_date) for t in texts)   # crosses midnight
    for t in texts:
        assert db.read("t", version=t).fetchall() == [(1,)], t
        assert db.sql('SELECT count(*) FROM "t@%s"' % t).fetchone() == (1,), t
        assert db.sql("SELECT count(*) FROM t@%s" % t).fetchone() == (1,), t
    # the same text without the offset is another instant (+14h: after version 2)
    assert len(db.read("t", version=texts[0][:-6]).fetchall()) == 2
    # today's date: as of the end of today (UTC), so today's commits count
    today = datetime.datetime.fromtimestamp(second / 1000, UTC).date()
    assert len(db.read("t", version=today.isoformat()).fetchall()) == 2
    assert len(db.read("t", version=today).fetchall()) == 2          # a datetime.date
    assert db.sql("SELECT count(*) FROM t@%s" % today).fetchone() == (2,)
    assert db.sql("SELECT count(*) FROM t", versions={"t": today}).fetchone() == (2,)
    with pytest.raises(udr.NotFoundError):
        db.read("t", version=today - datetime.timedelta(days=1))
    with pytest.raises(udr.InvalidArgumentError, match="2026-11-30T10:00:00"):
        db.read("t", version="2026-11-30T10:00:00+25:00")


@query
def test_log_and_tables_times_have_three_digits(db):
    """udr_log.time and udr_tables.created always print 3 fractional digits,
    also when the milliseconds end in zeros (DuckDB drops those)."""
    for _ in range(500):
        _commit(db, "t")
        if db.changes()[-1].time_ms % 10 == 0:
            break
    else:
        pytest.skip("no commit at a millisecond ending in 0")
    _commit(db, "u")
    events = {e.seq: e for e in db.changes()}

    def when(ms):  # TIMESTAMP_MS comes back as a naive datetime (UTC), exact to the ms
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)

    r = db.sql("SELECT seq, time FROM udr_log ORDER BY seq")
    assert r.types == ["BIGINT", "TIMESTAMP_MS"]
    for seq, t in r.fetchall():
        assert type(t) is datetime.datetime and t.tzinfo is None
        assert t == when(events[seq].time_ms)
    rows = db.sql("SELECT name, created, \"commit\" FROM udr_tables ORDER BY name").fetchall()
    for _name, created, seq in rows:
        assert created == when(events[seq].time_ms)
    assert any(t.microsecond % 10000 == 0
               for _s, t in db.sql("SELECT seq, time FROM udr_log").fetchall())
    # still a timestamp: compares (now() is WITH TIME ZONE: cast it) and computes
    assert db.sql("SELECT count(*) FROM udr_log WHERE time <= now()::TIMESTAMP "
                  "AND time > TIMESTAMP '2000-01-01' AND time + INTERVAL 1 DAY > time"
                  ).fetchone()[0] == len(events)


def test_changes_subscribe_say_which_argument(db):
    _commit(db)
    with pytest.raises(udr.InvalidArgumentError, match=r"invalid limit -1: must be >= 0"):
        db.changes(limit=-1)
    with pytest.raises(udr.InvalidArgumentError, match=r"invalid since -5: must be >= 0"):
        db.changes(since=-5)
    with pytest.raises(udr.InvalidArgumentError, match=r"invalid since -5: must be >= 0"):
        db.subscribe(since=-5)
    with pytest.raises(udr.InvalidArgumentError, match=r"invalid since 2\*\*64|must be at most"):
        db.changes(since=2**64)
    with pytest.raises(TypeError, match="limit must be an int"):
        db.changes(limit="3")
    with pytest.raises(udr.InvalidArgumentError, match="version number"):
        db.catalog.get_version("t", -1)


def test_contains_is_false_for_non_hashes(db):
    h = db.store.put(b"hello")
    assert h in db.store
    assert udr.hash(b"other") not in db.store
    for x in ("abc", "", "z" * 64, h.upper()[:63], 42, None, b"x"):
        assert (x in db.store) is False, x
    with pytest.raises(udr.InvalidArgumentError):
        db.store.exists("abc")    # exists() still says what is wrong
