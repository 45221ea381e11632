"""Review R6 of GC stopping writers for its mark only (docs/GC.md 4.7,
"Review R6"): each test is a way the sweep running beside writers could
lose acknowledged data, return wrong data with exit 0, fail a put or hang."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, Udr, base_env
from test_gc_expire_review import commit_file, paused_gc, read_version
from test_gc_doom import blocked, start

needs_pause = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION (UDR_PAUSE)")


def wait_reached(p, d, point, seconds=60):
    t = time.monotonic() + seconds
    while not (d / ("%s.reached" % point)).exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < t, "%s not reached" % point
        time.sleep(0.01)


@needs_pause
def test_a_put_that_listed_packs_before_the_rewrite_dedups_after_the_deletion(udr, tmp_path):
    """A put that opened the store while the run was held (its pack
    listing has the packs the run removes, not the run's outputs) and looks
    its content up after the deletions: a dedup hit on live content must
    read the kept copy, not report a repair or fail."""
    rng = random.Random(11)
    live = rng.randbytes(50_000)
    # several versions in packs that are merged together; the old ones die
    for _ in range(6):
        commit_file(udr, tmp_path, "t", rng.randbytes(50_000))
    commit_file(udr, tmp_path, "t", live)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    wd = tmp_path / "pause-w"
    wd.mkdir()
    try:
        w = start(udr, "put", "-", input=live, pause=("gc-put-held", wd))
        wait_reached(w, wd, "gc-put-held")
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rep = json.loads(out)
    assert rep["removed"]["packs_rewritten"] + rep["removed"]["packs_dropped"] > 0, rep
    (wd / "gc-put-held.go").touch()
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    assert b"repair" not in werr, (werr, rep)
    h = wout.decode().strip()
    got = tmp_path / "got"
    udr.ok("get", h, "-o", got)
    assert got.read_bytes() == live
    assert udr("fsck").code == 0


@needs_pause
def test_upgrade_during_the_sweep_of_a_format_2_store(run, tmp_path):
    """`udr upgrade` takes the writers' fence; since the fence no longer
    covers the sweep it could pack and unlink the loose files a format-2
    run is judging and deleting (a format-2 run takes no packs/lock)."""
    udr = Udr(tmp_path / "s2")
    udr.ok("init", "--format", "2")
    rng = random.Random(12)
    data = {}
    for _ in range(4):
        d = rng.randbytes(40_000)
        data[commit_file(udr, tmp_path, "t", d)] = d
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "2")
    try:
        up = start(udr, "upgrade")
        assert blocked(up, 2), "upgrade did not wait for the sweeping run"
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    uout, uerr = up.communicate(timeout=120)
    assert p.returncode == 0, err
    assert up.returncode == 0, uerr
    for v in (3, 4):
        assert read_version(udr, tmp_path, "t", v) == (0, data[v])
    assert udr("fsck").code == 0


PYLIB = os.path.join(os.environ.get("UDR_BUILD_DIR", ""), "python", "lib")
needs_python = pytest.mark.skipif(not os.path.exists(os.path.join(PYLIB, "udr")),
                                  reason="needs the Python extension in $UDR_BUILD_DIR/python/lib")

WRITER = r"""
import sys, udr
db = udr.open(sys.argv[1], create=False)
for line in sys.stdin:
    cmd, arg, table = line.split()
    data = open(arg, "rb").read()
    h = db.store.put(data)
    if table != "-":
        db.catalog.commit(udr.TableVersion(table, 1, [h]))
    print("ok", h, flush=True)
"""


@needs_pause
@needs_python
def test_a_long_lived_writer_does_not_judge_a_new_run_by_an_old_set(udr, tmp_path):
    """A writer process that outlives a killed run (it found the run dead
    and stopped heeding its set doomed-<e>) and then meets a new run whose
    set has the same name: epochs start again at 0 once STATE is removed
    (the documented way out of a damaged STATE).  The writer kept the old
    set and the old "dead" mark by name, so it deduplicated against what
    the new run deletes and committed a version whose data was then gone."""
    rng = random.Random(13)
    old = {}
    for _ in range(3):
        d = rng.randbytes(60_000)
        old[commit_file(udr, tmp_path, "t", d)] = d
    env = base_env({"PYTHONPATH": PYLIB})
    w = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, str(udr.root)], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ask(path, table):
        w.stdin.write(("put %s %s\n" % (path, table)).encode())
        w.stdin.flush()

    try:
        # run 1 (epoch 1) killed once its set is published
        p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        f1 = tmp_path / "w1"
        f1.write_bytes(old[1])
        ask(f1, "-")  # meets doomed-1, finds its run dead
        assert w.stdout.readline().startswith(b"ok")
        # STATE removed (no run): the next run is epoch 1 again
        os.unlink(udr.root / "chunks" / "gc" / "STATE")
        for _ in range(2):
            d = rng.randbytes(60_000)
            old[commit_file(udr, tmp_path, "t", d)] = d
        (udr.root.parent / "pause-gc-doomed").rename(udr.root.parent / "pause-old")
        p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
        try:
            assert list((udr.root / "chunks" / "gc").glob("doomed-1-*"))  # epoch 1 again
            f3 = tmp_path / "w3"
            f3.write_bytes(old[3])  # expired by run 2: doomed
            ask(f3, "u")
            time.sleep(2.0)
            reused = _ready(w)  # answered while the run that removes it was held
        finally:
            go.touch()
            out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        line = w.stdout.readline()
        assert line.startswith(b"ok"), (line, w.stderr.read() if w.poll() is not None else b"")
    finally:
        w.stdin.close()
        w.wait(timeout=60)
    assert read_version(udr, tmp_path, "u", 1) == (0, old[3])
    assert not reused, "the writer reused a doomed copy while its run was alive"
    assert udr("fsck").code == 0


def _ready(p):
    import select
    return bool(select.select([p.stdout], [], [], 0)[0])


@pytest.mark.parametrize("seed", range(3))
def test_kill_the_run_while_writers_reuse_what_it_removes(udr, tmp_path, seed):
    """kill -9 of a run at a random moment while other processes put and
    commit the content of the versions it expires (doomed objects): every
    acknowledged commit reads back, before and after a final run, and
    fsck is clean."""
    rng = random.Random(100 + seed)
    contents = {}
    acked = {}
    n = 0
    for rnd in range(4):
        for _ in range(3):
            d = rng.randbytes(rng.choice([3_000, 40_000, 90_000]))
            contents[commit_file(udr, tmp_path, "t", d)] = d
        g = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s", "--keep-last", "1"],
                             env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ws = []
        for _ in range(3):
            v = rng.choice(sorted(contents))
            n += 1
            f = tmp_path / ("w%d" % n)
            f.write_bytes(contents[v])
            ws.append((n, v, start(udr, "commit", "u%d" % n, "--next", "--file", f)))
        time.sleep(rng.random() * 0.3)
        g.send_signal(signal.SIGKILL)
        g.communicate(timeout=60)
        for (k, v, w) in ws:
            out, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
            acked[k] = contents[v]
        for k, d in acked.items():
            assert read_version(udr, tmp_path, "u%d" % k, 1) == (0, d), k
    udr.ok("gc", "--grace", "0s", "--keep-last", "1")
    for k, d in acked.items():
        assert read_version(udr, tmp_path, "u%d" % k, 1) == (0, d), k
    assert udr("fsck").code == 0


@needs_pause
def test_a_writer_waiting_on_a_dead_run_does_not_deadlock_the_next_run(udr, tmp_path):
    """Run 1 is killed with its set published.  A writer holding the fence
    meets one of its doomed objects while run 2 already holds gc/lock and
    waits for the writers' fence: the writer took "gc/lock is held" for
    "run 1 is alive" and waited for run 2, which waited for the writer."""
    rng = random.Random(14)
    old = {}
    for _ in range(3):
        d = rng.randbytes(60_000)
        old[commit_file(udr, tmp_path, "t", d)] = d
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    wd = tmp_path / "pause-w"
    wd.mkdir()
    f = tmp_path / "again"
    f.write_bytes(old[1])
    w = start(udr, "commit", "u", "--next", "--file", f, pause=("gc-put-held", wd))
    wait_reached(w, wd, "gc-put-held")  # holds the fence
    g = start(udr, "gc", "--grace", "0s")
    assert blocked(g, 1.0)  # run 2: gc/lock taken, waiting for the writer
    (wd / "gc-put-held.go").touch()
    t = time.monotonic() + 30
    while (w.poll() is None or g.poll() is None) and time.monotonic() < t:
        time.sleep(0.05)
    hung = w.poll() is None and g.poll() is None
    if hung:
        w.kill()
        g.kill()
    wout, werr = w.communicate(timeout=60)
    gout, gerr = g.communicate(timeout=60)
    assert not hung, "the writer and the next run waited on each other"
    assert w.returncode == 0, werr
    assert g.returncode == 0, gerr
    assert read_version(udr, tmp_path, "u", 1) == (0, old[1])
    assert udr("fsck").code == 0


@needs_pause
def test_an_import_of_the_rows_of_an_expired_version_keeps_its_part(udr, tmp_path):
    """import writes each Parquet part as a whole loose file read in place
    (put_raw_stream's format-3 path): the same rows as an expired version
    make the same part, whose loose file the held run removes.  The import
    must wait and write it again, and SQL must read the rows afterwards."""
    from conftest import csv, table_rows
    rows = [(i, i * 7, "x%d" % i) for i in range(3000)]
    f = csv(tmp_path, "a.csv", rows)
    udr.ok("import", "t", f)
    udr.ok("import", "t", csv(tmp_path, "b.csv", [(1, 2, "y")]))
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        w = start(udr, "import", "u", f)
        waited = blocked(w, 1.0)
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    assert json.loads(out)["removed"]["objects"] > 0
    assert [tuple(r) for r in table_rows(udr, "u")] == [tuple(r) for r in rows]
    assert udr("fsck").code == 0
    assert waited, "the import did not wait for the run removing its part"


TXN_WRITER = r"""
import sys, udr
db = udr.open(sys.argv[1], create=False)
try:
    with db.transaction() as tx:
        tx.write("u", [sys.argv[2]])
    print("committed", flush=True)
except udr.NotFoundError as e:
    print("notfound", e, flush=True)
"""


@needs_pause
@needs_python
def test_a_transaction_naming_an_expired_versions_chunk_waits_then_fails_cleanly(udr, tmp_path):
    """A transaction (Python tx.write, udr_txn_write) that names the chunk
    of a version the held run expired: the write checks only that the
    chunk exists; its commit must wait for the run and then refuse
    ("not found"), never link a version whose chunk the run deletes."""
    rng = random.Random(15)
    for _ in range(3):
        commit_file(udr, tmp_path, "t", rng.randbytes(60_000))
    h1 = json.loads(udr.ok("show", "t", "1").out)["chunks"][0]
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        w = subprocess.Popen(["/usr/bin/python3", "-c", TXN_WRITER, str(udr.root), h1],
                             env=base_env({"PYTHONPATH": PYLIB}), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        waited = blocked(w, 1.0)
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    assert wout.startswith(b"notfound"), (wout, werr)
    assert udr("show", "u").code != 0
    assert waited
    assert udr("fsck").code == 0
