"""db.gc(): the report of `udr gc` as a dict; uncommitted data goes at
grace 0 and stays at the default grace; committed data reads back."""
import os

import pytest

import udr


def test_gc_removes_uncommitted_keeps_committed(db):
    keep = os.urandom(300_000)
    junk = os.urandom(200_000)
    hk = db.store.put(keep)
    hj = db.store.put(junk)
    db.catalog.commit_next(udr.TableVersion("t", 0, [hk]))
    rep = db.gc()
    assert rep["dry_run"] is False and rep["removed"]["objects"] == 0 and rep["mark"]["young"] >= 1
    assert db.store.exists(hj)
    rep = db.gc(grace=0, dry_run=True)
    assert rep["dry_run"] is True and rep["removed"]["objects"] >= 1
    assert db.store.exists(hj)
    rep = db.gc(grace=0)
    assert rep["removed"]["objects"] >= 1 and rep["store"]["bytes_after"] < rep["store"]["bytes_before"]
    assert not db.store.exists(hj)
    assert db.store.get(hk) == keep


@pytest.mark.parametrize("kw", [{"grace": -1}, {"threshold": 101}, {"max_unused": -1}, {"max_repack": 0},
                                {"grace": "1h"}])
def test_gc_bad_options(db, kw):
    h = db.store.put(b"junk " * 100)
    with pytest.raises((ValueError, TypeError)):
        db.gc(grace=0, **{k: v for k, v in kw.items() if k != "grace"}) if "grace" not in kw else db.gc(**kw)
    assert db.store.exists(h)


def test_gc_trims_the_query_cache(db):
    """db.gc() trims the query cache as `udr gc` does (docs/GC.md 5.4):
    the cached parts of versions it swept go; it did not before (the CLI
    alone called udr_query_cache_trim).  CSV chunks committed by hand are
    stored compressed, so SQL reads them through cached copies."""
    for i in range(3):
        csv = "id,s\n" + "".join("%d,v%d-%d-%s\n" % (j, i, j, "x" * 200) for j in range(2000))
        h = db.store.put(csv.encode())
        db.catalog.commit_next(udr.TableVersion("t", 0, [h]))
    for v in (1, 2, 3):
        assert db.sql('SELECT count(*) FROM "t@%d"' % v).fetchall() == [(2000,)]
    cache = os.path.join(db.path, "cache", "query")
    before = [f for f in os.listdir(cache) if f.endswith(".parquet")]
    assert len(before) >= 3, before
    rep = db.gc(grace=0, keep_last=1)
    assert rep["cache"]["skipped"] is False and rep["cache"]["files"] >= 2, rep["cache"]
    after = [f for f in os.listdir(cache) if f.endswith(".parquet")]
    assert len(after) == len(before) - rep["cache"]["files"], (before, after)
    assert db.sql('SELECT count(*) FROM "t@3"').fetchall() == [(2000,)]
    assert db.gc(grace=0, dry_run=True)["cache"] == {"files": 0, "bytes": 0, "skipped": False}


def test_gc_while_this_session_has_a_transaction_open(tmp_path):
    # an open SQL BEGIN (even one that only read) took the gc hold for the
    # transaction's life: db.gc() in the same process waited for itself
    # forever, and every gc elsewhere waited behind an idle BEGIN (a review)
    if not udr.HAVE_QUERY:
        pytest.skip("built without the query module")
    import subprocess
    import sys
    code = (
        "import sys, udr\n"
        "db = udr.Database(sys.argv[1])\n"
        "db.sql('CREATE TABLE t AS SELECT 1 AS id')\n"
        "db.sql('BEGIN'); db.sql('SELECT count(*) FROM t').fetchall()\n"
        "rep = db.gc(grace=0)\n"
        "db.sql('INSERT INTO t VALUES (2)'); db.sql('COMMIT')\n"
        "print(rep['dry_run'], db.sql('SELECT count(*) FROM t').fetchall())\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["False", "[(2,)]"], r
