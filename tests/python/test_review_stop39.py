"""Stop 39: defects a hostile review of the Python bindings reproduced.

- One Result fetched from several threads lost rows and mixed values of
  different rows (a batch read by one thread while another converted it).
- Committing a committed TableVersion again (a restore) kept its old
  created_at: version 3 claimed version 1's time.
- Catalog.get_version, get_version_at and get_version_at_seq returned a
  version retention had expired (and gc swept) with success.
- resolve_conflict(key=...) refused the key conflicts() gives (a dict).
"""
import json
import threading
import time

import pytest

import udr


def test_a_result_read_by_several_threads_loses_and_mixes_no_row(db):
    n = 60000
    for _ in range(3):
        r = db.sql("SELECT i, i::VARCHAR AS s, (i * 7)::VARCHAR AS t FROM range(%d) x(i)" % n)
        out, refused, lock = [], [], threading.Lock()

        def reader():
            try:
                while True:
                    rows = r.fetchmany(97)
                    if not rows:
                        return
                    with lock:
                        out.extend(rows)
            except udr.Error as e:
                refused.append(str(e))

        ts = [threading.Thread(target=reader) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert all(m == "the result is in use by another thread" for m in refused), refused
        assert all(s == str(i) and t == str(i * 7) for i, s, t in out), [x for x in out if x[1] != str(x[0])][:3]
        assert sorted(i for i, _, _ in out) == list(range(n))


def test_a_restored_version_is_made_now(db):
    cat = db.catalog
    cat.commit_next(udr.TableVersion("t", 0, [db.store.put(b"a")]))
    time.sleep(0.05)
    cat.commit_next(udr.TableVersion("t", 0, [db.store.put(b"b")]))
    time.sleep(0.05)
    old = cat.get_version("t", 1)
    n = cat.commit_next(old)
    v1, v2, v3 = (cat.get_version("t", v) for v in (1, 2, n))
    assert v3.created_at > v2.created_at > v1.created_at
    assert old.created_at == v3.created_at
    assert v3.chunk_hashes == v1.chunk_hashes


def test_an_expired_version_is_not_handed_out(db):
    cat = db.catalog
    for i in range(3):
        cat.commit_next(udr.TableVersion("t", 0, [db.store.put(b"payload %d" % i)]))
        time.sleep(0.01)
    t1 = cat.get_version("t", 1).created_at
    seq1 = cat.get_version("t", 1).commit_seq
    db.expire(keep_last=1)
    db.gc(grace=0)
    with pytest.raises(udr.ExpiredError):
        cat.get_version("t", 1)
    with pytest.raises(udr.ExpiredError):
        cat.get_version_at("t", t1)
    with pytest.raises(udr.ExpiredError):
        cat.get_version_at_seq("t", seq1)
    assert cat.get_version("t", 3).version == 3
    assert db.store.get(cat.get_version("t").chunk_hashes[0]) == b"payload 2"


def test_resolve_takes_the_key_conflicts_gives(db):
    db.write("t", [{"r": "eu", "id": 1, "v": "base"}, {"r": "ü", "id": 2, "v": "base"}])
    db.create_branch("dev")
    db.sql("UPDATE t SET v = 'main'")
    db.sql("UPDATE t SET v = 'dev'", branch="dev")
    with pytest.raises(udr.MergeConflictError):
        db.merge("dev", keys={"t": ["r", "id"]})
    keys = [c["key"] for c in db.conflicts()]
    assert sorted(k["id"] for k in keys) == [1, 2], keys
    db.resolve_conflict("t", "theirs", key=keys[0])
    db.resolve_conflict("t", "theirs", key=json.dumps(keys[1]))  # spaces, \\u escapes
    with pytest.raises(udr.NotFoundError):
        db.resolve_conflict("t", "theirs", key={"r": "eu", "id": 3})
    db.merge_continue()
    assert sorted(db.sql("SELECT id, v FROM t").fetchall()) == [(1, "dev"), (2, "dev")]


def test_writes_that_would_escape_a_transaction_are_refused(db):
    """db.write and db.sql writes inside `with db.transaction()` committed at
    once and survived the exception that aborted the transaction."""
    db.write("base", [{"x": 1}])
    with pytest.raises(RuntimeError):
        with db.transaction(message="load") as tx:
            with pytest.raises(udr.InvalidArgumentError, match="would commit on its own"):
                db.write("users", [{"id": 1}])
            with pytest.raises(udr.InvalidArgumentError, match="would commit on its own"):
                db.sql("CREATE TABLE audit AS SELECT 1 AS x")
            with pytest.raises(udr.InvalidArgumentError, match="would commit on its own"):
                db.sql("INSERT INTO base VALUES (2)")
            assert db.sql("SELECT x FROM base").fetchall() == [(1,)]  # reads go on
            # another thread's writes are its own
            errors = []
            t = threading.Thread(target=lambda: errors.append(db.write("other", [{"y": 1}])))
            t.start()
            t.join()
            tx.write("raw", [db.store.put(b"blob")])
            raise RuntimeError("load failed")
    assert sorted(db.tables()) == ["base", "other"]
    assert db.sql("SELECT x FROM base").fetchall() == [(1,)]
    db.write("users", [{"id": 1}])  # the transaction is over
    tx = db.transaction()  # managed by hand, outside a with block: the caller's business
    db.write("users", [{"id": 2}], mode="append")
    tx.abort()
    assert sorted(db.sql("SELECT id FROM users").fetchall()) == [(1,), (2,)]


def test_a_session_object_may_not_hide_a_udr_table(db):
    """db.sql("CREATE VIEW t ...") (or a TEMP TABLE) named like UDR table t
    hid it for the session's later statements: reads saw the view's rows and
    an INSERT "succeeded" into a scratch table, committing nothing."""
    db.write("t", [{"v": 1}])
    for stmt in ("CREATE VIEW t AS SELECT 42 AS v", "CREATE TEMP TABLE t AS SELECT 42 AS v",
                 "CREATE TEMP TABLE temp.main.t AS SELECT 42 AS v"):
        with pytest.raises(udr.InvalidArgumentError, match="is a UDR table"):
            db.sql(stmt)
    db.sql("INSERT INTO t VALUES (5)")
    assert sorted(db.sql("SELECT v FROM t").fetchall()) == [(1,), (5,)]
    assert len(db.catalog.list_versions("t")) == 2
    # in a SQL transaction the refusal fails it: nothing is committed
    db.sql("BEGIN")
    db.sql("INSERT INTO t VALUES (6)")
    with pytest.raises(udr.InvalidArgumentError, match="is a UDR table"):
        db.sql("CREATE TEMP TABLE t AS SELECT 42 AS v")
    with pytest.raises(udr.Error):
        db.sql("COMMIT")  # refused, and the transaction is over
    assert len(db.catalog.list_versions("t")) == 2
    db.sql("CREATE VIEW scratch AS SELECT 7 AS v")
    assert db.sql("SELECT v FROM scratch").fetchall() == [(7,)]
    # T is t to SQL; renaming a scratch table onto t hides it as well
    for stmt in ("CREATE TEMP TABLE T AS SELECT 42 AS v", "ALTER TABLE scratch2 RENAME TO t",
                 "ALTER VIEW scratch RENAME TO T"):
        if "scratch2" in stmt:
            db.sql("CREATE TEMP TABLE scratch2 AS SELECT 42 AS v")
        with pytest.raises(udr.InvalidArgumentError, match="is a UDR table"):
            db.sql(stmt)
    # an object in a schema of the session's own hides nothing
    db.sql("CREATE SCHEMA s1")
    db.sql("CREATE TABLE s1.t AS SELECT 42 AS v")
    db.sql("CREATE VIEW s1.v2 AS SELECT 1")
    assert db.sql("SELECT v FROM s1.t").fetchall() == [(42,)]
    assert sorted(db.sql("SELECT v FROM t").fetchall()) == [(1,), (5,)]


def test_a_transaction_collected_with_its_database_is_safe(tmp_path):
    """A transaction and its Database in one reference cycle: the collector
    could free the Database first, and the transaction's end then read its
    freed list of open transactions (a crash under PYTHONMALLOC=debug, which
    the child process runs with)."""
    import os
    import subprocess
    import sys

    script = """
import gc, sys, udr
path = sys.argv[1]
udr.open(path, create=True).close()
for entered in (False, True, False, True):
    db = udr.open(path)
    tx = db.transaction()
    if entered:
        tx.__enter__()
    holder = {"db": db, "tx": tx}
    holder["self"] = holder
    del db, tx, holder
    gc.collect()
with udr.open(path) as db:
    db.write("t", [{"x": 1}])
    assert db.sql("SELECT x FROM t").fetchall() == [(1,)]
print("ok")
"""
    env = dict(os.environ, PYTHONMALLOC="debug", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "c")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])
