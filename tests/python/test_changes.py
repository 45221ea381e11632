"""The changelog: Database.changes() and Database.subscribe()."""

import datetime
import os
import subprocess
import sys
import threading
import time

import pytest

import udr

UTC = datetime.timezone.utc
PROMPT = 5.0  # generous bound for "promptly"


def commit(db, table, data=b"x"):
    h = db.store.put(data)
    return db.catalog.commit_next(udr.TableVersion(table, 0, [h]))


@pytest.fixture
def filled(db):
    # seq 1: a, 2: b, 3: a, 4: c (one txn: c and a)
    commit(db, "a")
    commit(db, "b")
    commit(db, "a")
    with db.transaction(message="both") as tx:
        tx.write("c", [db.store.put(b"c")])
        tx.write("a", [db.store.put(b"a3")])
    return db


def test_changes_events(filled):
    evs = filled.changes()
    assert [e.seq for e in evs] == [1, 2, 3, 4]
    e = evs[3]
    assert isinstance(e, udr.Event) and isinstance(e, tuple)
    assert e.message == "both" and e.branch == "main" and e.author
    assert sorted(e.changes) == [("a", 2, 3), ("c", 0, 1)]
    assert evs[0].changes == [("a", 0, 1)]
    assert e.time.tzinfo is not None and e.time.utcoffset() == datetime.timedelta(0)
    assert int(e.time.timestamp() * 1000) == e.time_ms
    assert evs[0].time <= e.time


def test_changes_filters_limit_order(filled):
    db = filled
    assert [e.seq for e in db.changes(since=2)] == [3, 4]
    assert [e.seq for e in db.changes(tables=["b"])] == [2]
    assert [e.seq for e in db.changes(tables="c")] == [4]
    assert [e.seq for e in db.changes(tables=["b", "c"])] == [2, 4]
    assert [e.seq for e in db.changes(limit=2)] == [1, 2]
    assert [e.seq for e in db.changes(newest_first=True)] == [4, 3, 2, 1]
    assert [e.seq for e in db.changes(newest_first=True, limit=1)] == [4]
    assert [e.seq for e in db.changes(tables=["a"], since=1, newest_first=True)] == [4, 3]
    assert db.changes(branch="main")[0].seq == 1
    with pytest.raises(udr.NotFoundError, match="no branch 'other'"):  # a typo was an empty list
        db.changes(branch="other")
    assert db.changes(limit=0) == []
    t3 = db.changes()[2].time
    got = db.changes(since_time=t3)
    assert 3 in [e.seq for e in got] and all(e.time >= t3 for e in got)
    later = datetime.datetime.now(UTC) + datetime.timedelta(seconds=5)
    assert db.changes(since_time=later) == []
    with pytest.raises(ValueError):
        db.changes(since_time=datetime.datetime.now())
    with pytest.raises(udr.InvalidArgumentError):
        db.changes(tables=["bad name!"])
    # Catalog has the same method.
    assert [e.seq for e in db.catalog.changes(since=3)] == [4]


def test_changes_since_time_boundary(db):
    commit(db, "a")
    time.sleep(0.02)
    commit(db, "a")
    t2 = db.changes()[1].time
    assert [e.seq for e in db.changes(since_time=t2)] == [2]


def test_subscribe_other_thread(db):
    commit(db, "a")
    with db.subscribe() as sub:
        assert sub.cursor == 1

        def writer():
            time.sleep(0.2)
            commit(db, "a", b"t1")
            commit(db, "b", b"t2")

        th = threading.Thread(target=writer)
        t0 = time.monotonic()
        th.start()
        got = [next(sub), next(sub)]
        assert time.monotonic() - t0 < PROMPT
        th.join()
        assert [e.seq for e in got] == [2, 3]
        assert sub.cursor == 3
        assert sub.poll(timeout=0.1) is None
    assert sub.closed
    assert list(sub) == []


def test_subscribe_table_filter_skips_others(db):
    sub = db.subscribe(tables=["b"])
    commit(db, "a")
    commit(db, "a", b"y")
    assert sub.poll(timeout=0.3) is None
    commit(db, "b")
    e = sub.poll(timeout=PROMPT)
    assert e is not None and e.seq == 3 and e.changes == [("b", 0, 1)]
    sub.close()


def test_subscribe_other_process(db):
    sub = db.subscribe()
    code = (
        "import udr, sys\n"
        "with udr.open(sys.argv[1]) as d:\n"
        "    h = d.store.put(b'from-child')\n"
        "    d.catalog.commit_next(udr.TableVersion('child', 0, [h]))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, db.path], env=env)
    e = sub.poll(timeout=PROMPT + 5)
    assert proc.wait(timeout=30) == 0
    assert e is not None, "no event from the other process"
    assert e.changes == [("child", 0, 1)]
    assert time.monotonic() - t0 < PROMPT + 5
    sub.close()


def test_subscribe_callback_mode(db):
    seen = []
    done = threading.Event()

    def cb(ev):
        seen.append(ev.seq)
        if len(seen) == 3:
            done.set()

    sub = db.subscribe(since=0, callback=cb)
    commit(db, "a")
    commit(db, "b")
    commit(db, "c")
    assert done.wait(PROMPT)
    sub.close()
    assert seen == [1, 2, 3]
    assert sub.closed and sub.error is None
    with pytest.raises(udr.Error):
        next(sub)


def test_subscribe_callback_error_stops(db):
    def cb(ev):
        raise KeyError("stop")

    old = threading.excepthook
    threading.excepthook = lambda args: None
    try:
        sub = db.subscribe(callback=cb)
        commit(db, "a")
        t0 = time.monotonic()
        while not sub.closed and time.monotonic() - t0 < PROMPT:
            time.sleep(0.02)
        sub.close()
    finally:
        threading.excepthook = old
    assert isinstance(sub.error, KeyError)


def test_close_wakes_blocked_iterator(db):
    sub = db.subscribe()
    out = []
    th = threading.Thread(target=lambda: out.append(list(sub)))
    th.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    sub.close()
    th.join(PROMPT)
    assert not th.is_alive()
    assert time.monotonic() - t0 < 2
    assert out == [[]]


def test_restart_with_cursor_exactly_once(db):
    for i in range(3):
        commit(db, "a", b"%d" % i)
    delivered = []
    sub = db.subscribe(since=0)
    for _ in range(2):
        delivered.append(next(sub).seq)
    saved = sub.cursor
    sub.close()
    assert saved == 2
    for i in range(3):
        commit(db, "b", b"%d" % i)
    sub = db.subscribe(since=saved)
    while True:
        e = sub.poll(timeout=0.3)
        if e is None:
            break
        delivered.append(e.seq)
    sub.close()
    assert delivered == [1, 2, 3, 4, 5, 6]


def test_subscribe_many_events_in_batches(db):
    for i in range(300):
        commit(db, "a", b"%d" % i)
    sub = db.subscribe(since=0)
    seqs = [next(sub).seq for _ in range(300)]
    assert seqs == list(range(1, 301))
    assert sub.poll(0.05) is None
    sub.close()


def test_subscribe_since_time(db):
    commit(db, "a")
    time.sleep(0.02)
    commit(db, "a", b"y")
    t2 = db.changes()[1].time
    with db.subscribe(since_time=t2) as sub:
        assert sub.poll(PROMPT).seq == 2
    with pytest.raises(TypeError):
        db.subscribe(since=0, since_time=t2)
    with pytest.raises(TypeError):
        db.subscribe(callback=3)


def test_subscription_after_database_close(tmp_path):
    d = udr.open(str(tmp_path / "r"))
    sub = d.subscribe()
    d.close()
    with pytest.raises(udr.Error):
        sub.poll(0.1)
