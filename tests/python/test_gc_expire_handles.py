"""Review R4: handles opened before `udr gc --keep-last` (another process)
removed the data of expired versions must not return that data as if
intact: reads raise udr.ExpiredError (swept), kept versions read as
before, also through views and DB-API connections made before the gc."""
import os
import subprocess

import pytest

import udr

UDR_BIN = os.environ.get("UDR_BIN") or os.path.join(os.environ.get("UDR_BUILD_DIR", "build"), "udr")


@pytest.fixture
def db5(tmp_path):
    db = udr.open(str(tmp_path / "db"))
    for i in range(5):
        db.write("t", [{"id": i, "s": "row-%d-" % i + "x" * 2000}])
    yield db
    db.close()


def gc_keep_last(db, k):
    r = subprocess.run([UDR_BIN, "--store", db.path, "gc", "--keep-last", str(k), "--grace", "0s", "--json"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r
    return r


@pytest.mark.skipif(not os.path.exists(UDR_BIN), reason="needs the udr binary")
def test_old_handle_and_views_after_sweep(db5):
    db = db5
    # warm every cache the handle has: reads, a view, a DB-API cursor
    old = {v: db.read("t@%d" % v).fetchall() for v in range(1, 6)}
    assert [r[0] for r in old[2]] == [1]
    db.sql('CREATE VIEW old2 AS SELECT * FROM "t@2"')
    assert db.sql("SELECT count(*) FROM old2").fetchall() == [(1,)]
    con = udr.connect(db.path)
    cur = con.cursor()
    cur.execute('SELECT id FROM "t@3"')
    assert cur.fetchall() == [(2,)]
    import json
    rep = json.loads(gc_keep_last(db, 1).stdout)
    assert rep["retention"]["expired"]["ranges"] == {"t": [[1, 4]]}
    assert rep["removed"]["objects"] > 0, rep
    for v in range(1, 5):
        with pytest.raises(udr.ExpiredError) as ei:
            db.read("t@%d" % v).fetchall()
        assert ei.value.swept is True
        with pytest.raises(udr.ExpiredError):
            db.sql('SELECT * FROM "t@%d"' % v).fetchall()
    with pytest.raises(udr.ExpiredError):
        db.sql("SELECT * FROM old2").fetchall()
    with pytest.raises(udr.ExpiredError):
        cur.execute('SELECT id FROM "t@3"')
        cur.fetchall()
    cur.execute('SELECT id FROM "t@5"')
    assert cur.fetchall() == [(4,)]
    con.close()
    assert db.read("t@5").fetchall() == old[5]
    assert db.read("t").fetchall() == old[5]
