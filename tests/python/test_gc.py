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
