"""Transactions (Database.transaction) and time travel by time."""

import datetime
import time

import pytest

import udr

UTC = datetime.timezone.utc


@pytest.fixture
def h(db):
    return db.store.put(b"chunk-a")


@pytest.fixture
def h2(db):
    return db.store.put(b"chunk-b")


def test_with_block_commits(db, h, h2):
    with db.transaction(message="load two") as tx:
        assert tx.active and tx.state == "active"
        assert tx.write("a", [h]) == 1
        assert tx.write("b", [h, h2], metadata={"k": "v"}) == 1
        # Not visible outside before commit.
        assert db.catalog.list_tables() == []
        assert tx.get_version("b").chunk_hashes == [h, h2]
        assert tx.get_version("b").commit_seq is None
        assert tx.latest("a") == 1
    assert tx.state == "committed" and not tx.active
    assert tx.seq == db.catalog.head() == 1
    assert db.catalog.list_tables() == ["a", "b"]
    v = db.catalog.get_version("b")
    assert v.metadata == {"k": "v"} and v.commit_seq == 1
    (ev,) = db.changes()
    assert ev.message == "load two"
    assert sorted(ev.changes) == [("a", 0, 1), ("b", 0, 1)]


def test_with_block_aborts_on_exception(db, h):
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.write("a", [h])
            raise RuntimeError("boom")
    assert tx.state == "aborted"
    assert db.catalog.list_tables() == []
    assert db.catalog.head() == 0


def test_explicit_commit_abort_and_finished_state(db, h):
    tx = db.transaction()
    tx.write("a", [h])
    assert tx.commit() == 1
    with pytest.raises(udr.InvalidArgumentError):
        tx.write("a", [h])
    with pytest.raises(udr.InvalidArgumentError):
        tx.commit()
    tx.abort()  # no-op after commit
    assert tx.state == "committed"
    tx2 = db.transaction()
    tx2.write("a", [h])
    tx2.abort()
    tx2.abort()
    assert db.catalog.latest("a") == 1
    with pytest.raises(udr.InvalidArgumentError):
        tx2.get_version("a")
    # Empty commit: a no-op with seq 0.
    assert db.transaction().commit() == 0


def test_write_table_version_object(db, h, h2):
    src = udr.TableVersion("t", 7, [h, h2], message="orig", metadata={"a": "1"})
    with db.transaction() as tx:
        assert tx.write(src, message="override") == 1
    v = db.catalog.get_version("t")
    assert v.version == 1 and v.chunk_hashes == [h, h2]
    assert v.message == "override" and v.metadata == {"a": "1"}
    with pytest.raises(TypeError):
        db.transaction().write(src, [h])
    with pytest.raises(TypeError):
        db.transaction().write(42)


def test_conflict_same_table(db, h, h2):
    t1 = db.transaction()
    t2 = db.transaction()
    t1.write("a", [h])
    t2.write("a", [h2])
    assert t1.commit() == 1
    with pytest.raises(udr.ConflictError) as ei:
        t2.commit()
    assert "a" in str(ei.value) and ei.value.code < 0
    assert t2.state == "aborted"
    assert db.catalog.get_version("a").chunk_hashes == [h]
    assert db.catalog.list_versions("a") == [1]


def test_conflict_raised_from_with(db, h, h2):
    other = db.transaction()
    other.write("a", [h2])
    with pytest.raises(udr.ConflictError):
        with db.transaction() as tx:
            tx.write("a", [h])
            other.commit()
    assert db.catalog.get_version("a").chunk_hashes == [h2]


def test_disjoint_transactions_both_commit(db, h, h2):
    t1 = db.transaction()
    t2 = db.transaction()
    t1.write("a", [h])
    t2.write("b", [h2])
    assert t1.commit() == 1
    assert t2.commit() == 2
    assert db.catalog.list_tables() == ["a", "b"]


def test_serializable_read_conflict(db, h, h2):
    db.catalog.commit_next(udr.TableVersion("a", 0, [h]))
    tx = db.transaction(isolation="serializable")
    assert tx.isolation == "serializable"
    tx.get_version("a")
    tx.write("b", [h2])
    db.catalog.commit_next(udr.TableVersion("a", 0, [h2]))
    with pytest.raises(udr.ConflictError):
        tx.commit()
    # The same with snapshot isolation commits.
    tx = db.transaction()
    tx.get_version("a")
    tx.write("b", [h2])
    db.catalog.commit_next(udr.TableVersion("a", 0, [h]))
    assert tx.commit() > 0
    with pytest.raises(udr.InvalidArgumentError):
        db.transaction(isolation="chaos")


def test_snapshot_reads(db, h, h2):
    db.catalog.commit_next(udr.TableVersion("a", 0, [h]))
    tx = db.transaction()
    assert tx.snapshot == 1
    db.catalog.commit_next(udr.TableVersion("a", 0, [h2]))
    assert db.catalog.latest("a") == 2
    # The transaction still sees version 1 as the latest.
    assert tx.latest("a") == 1
    assert tx.get_version("a").chunk_hashes == [h]
    assert tx.latest("nope") == 0
    with pytest.raises(udr.NotFoundError):
        tx.get_version("a", 2)
    tx.abort()


def test_error_then_abort_only(db, h):
    missing = "0" * 64
    tx = db.transaction()
    with pytest.raises(udr.NotFoundError):
        tx.write("a", [missing])
    with pytest.raises(udr.Error):
        tx.write("a", [h])
    with pytest.raises(udr.Error):
        tx.commit()
    tx.abort()
    assert db.catalog.list_tables() == []
    with pytest.raises(udr.InvalidArgumentError):
        db.transaction().write("bad name!", [h])


def test_transaction_keeps_database_open(tmp_path, h):
    with udr.open(str(tmp_path / "r2")) as d:
        hh = d.store.put(b"x")
        tx = d.transaction()
        tx.write("a", [hh])
    # close() was deferred until the transaction finishes.
    assert tx.commit() == 1
    with udr.open(str(tmp_path / "r2")) as d:
        assert d.catalog.latest("a") == 1


def test_get_version_at_datetime(db, h, h2):
    db.catalog.commit_next(udr.TableVersion("a", 0, [h]))
    t1 = db.catalog.get_version("a").created_at
    time.sleep(0.02)
    mid = datetime.datetime.now(UTC)
    time.sleep(0.02)
    db.catalog.commit_next(udr.TableVersion("a", 0, [h2]))
    assert db.catalog.get_version_at("a", mid).version == 1
    assert db.catalog.get_version_at("a", t1).version == 1
    assert db.catalog.get_version_at("a", datetime.datetime.now(UTC)).version == 2
    # Another time zone, same instant.
    east = mid.astimezone(datetime.timezone(datetime.timedelta(hours=5)))
    assert db.catalog.get_version_at("a", east).version == 1
    with pytest.raises(udr.NotFoundError):
        db.catalog.get_version_at("a", t1 - datetime.timedelta(seconds=1))
    with pytest.raises(ValueError):
        db.catalog.get_version_at("a", datetime.datetime.now())  # naive
    with pytest.raises(TypeError):
        db.catalog.get_version_at("a", 12345)
    assert db.catalog.seq_at(mid) == 1
    assert db.catalog.get_version_at_seq("a", 1).version == 1
    assert db.catalog.get_version_at_seq("a", 2).version == 2
    with pytest.raises(udr.NotFoundError):
        db.catalog.get_version_at_seq("a", 0)
