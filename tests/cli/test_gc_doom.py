"""GC stops writers only for its mark (docs/GC.md 4.7): once its plan is
made it publishes the objects it removes (the doomed set) and lets writers
go.  A writer that reuses a doomed object (a dedup hit, a delta base, a
chunk a commit names) waits for the run to end and then looks again; any
other writer runs while GC rewrites and deletes.  Each test holds a run
just after it let writers go (UDR_PAUSE gc-doomed) and checks what a
writer then gets: never a version or a put whose data the run removed."""
import json
import random
import signal
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env
from test_gc_expire_review import commit_file, paused_gc, read_version

needs_pause = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION (UDR_PAUSE)")


def start(udr, *args, input=None, pause=None):
    """A udr process; with pause (point, dir) it stops at that point."""
    extra = {}
    if pause:
        extra["UDR_PAUSE"] = "%s:%s" % pause
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), *map(str, args)], env=base_env(extra),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        p.stdin.write(input)
    p.stdin.close()
    p.stdin = None
    return p


def blocked(p, seconds=1.0):
    """Is p still running after seconds?"""
    t = time.monotonic() + seconds
    while time.monotonic() < t:
        if p.poll() is not None:
            return False
        time.sleep(0.02)
    return True


def versions(udr, tmp_path, table, n, seed):
    rng = random.Random(seed)
    out = {}
    for _ in range(n):
        data = rng.randbytes(70_000)
        out[commit_file(udr, tmp_path, table, data)] = data
    return out


def doomed_state(udr):
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    return st


@needs_pause
def test_writers_of_new_data_run_while_gc_sweeps(udr, tmp_path):
    old = versions(udr, tmp_path, "t", 4, 1)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        assert doomed_state(udr)["phase"] == "planned"
        assert list((udr.root / "chunks" / "gc").glob("doomed-*"))
        # a put and a commit of new content finish while the run is held
        fresh = random.Random(2).randbytes(90_000)
        f = tmp_path / "fresh"
        f.write_bytes(fresh)
        w = start(udr, "commit", "w", "--next", "--file", f)
        assert not blocked(w, 20), "a commit of new data waited for gc"
        assert w.wait() == 0, w.stderr.read()
        h = udr.put(random.Random(3).randbytes(5000))
        udr.ok("commit", "x", "--next", h)
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert read_version(udr, tmp_path, "w", 1) == (0, fresh)
    assert read_version(udr, tmp_path, "t", 4) == (0, old[4])
    assert read_version(udr, tmp_path, "t", 1)[0] == 6
    assert not list((udr.root / "chunks" / "gc").glob("doomed-*"))
    assert udr("fsck").code == 0


@needs_pause
@pytest.mark.parametrize("how", ["put", "commit-file"])
def test_reusing_doomed_data_waits_for_the_run_and_keeps_it(udr, tmp_path, how):
    """The content of an expired version put again while the run that
    removes it is held: without the doomed set the put would dedup against
    the copy the run then deletes and answer 0 for data that is gone."""
    old = versions(udr, tmp_path, "t", 3, 4)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        f = tmp_path / "again"
        f.write_bytes(old[1])
        if how == "put":
            w = start(udr, "put", "-", input=old[1])
        else:
            w = start(udr, "commit", "u", "--next", "--file", f)
        assert blocked(w), "a put of doomed content did not wait: %r" % (w.communicate(),)
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    if how == "put":
        h = wout.decode().strip()
        got = tmp_path / "got"
        udr.ok("get", h, "-o", got)
        assert got.read_bytes() == old[1]
        udr.ok("commit", "u", "--next", h)
    assert read_version(udr, tmp_path, "u", 1) == (0, old[1])
    assert read_version(udr, tmp_path, "t", 1)[0] == 6
    assert udr("fsck").code == 0
    # and a later run keeps it
    udr.ok("gc", "--grace", "0s")
    assert read_version(udr, tmp_path, "u", 1) == (0, old[1])
    assert udr("fsck").code == 0


@needs_pause
def test_committing_a_doomed_chunk_waits_then_fails_cleanly(udr, tmp_path):
    """An uncommitted put older than the grace is doomed; its commit during
    the run waits and then finds it gone: nothing committed."""
    versions(udr, tmp_path, "t", 2, 5)
    h = udr.put(random.Random(6).randbytes(80_000))
    p, go = paused_gc(udr, "gc-doomed")
    try:
        w = start(udr, "commit", "u", "--next", h)
        assert blocked(w), w.communicate()
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode != 0 and b"not found" in werr, (w.returncode, werr)
    assert udr("show", "u").code != 0
    assert udr("fsck").code == 0


@needs_pause
def test_a_killed_run_binds_no_writer_and_the_next_run_cleans_up(udr, tmp_path):
    old = versions(udr, tmp_path, "t", 3, 7)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    # the set is still named, its run is dead: the put does not wait for it
    assert list((udr.root / "chunks" / "gc").glob("doomed-*"))
    w = start(udr, "put", "-", input=old[1])
    assert not blocked(w, 20)
    wout, werr = w.communicate()
    assert w.returncode == 0, werr
    h = wout.decode().strip()
    udr.ok("commit", "u", "--next", h)
    udr.ok("gc", "--grace", "0s", "--keep-last", "1")
    assert not list((udr.root / "chunks" / "gc").glob("doomed-*"))
    assert read_version(udr, tmp_path, "u", 1) == (0, old[1])
    assert read_version(udr, tmp_path, "t", 3) == (0, old[3])
    assert udr("fsck").code == 0


@needs_pause
def test_a_damaged_doomed_set_makes_writers_wait(udr, tmp_path):
    """A set a writer cannot read dooms everything: it waits for the run
    (the safe answer), then goes on."""
    old = versions(udr, tmp_path, "t", 3, 8)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        (d,) = (udr.root / "chunks" / "gc").glob("doomed-*")
        b = bytearray(d.read_bytes())
        b[-1] ^= 1
        d.write_bytes(bytes(b))
        w = start(udr, "put", "-", input=old[3])  # live data, but the set is unreadable
        assert blocked(w), w.communicate()
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    assert read_version(udr, tmp_path, "t", 3) == (0, old[3])
    assert udr("fsck").code == 0


@pytest.mark.parametrize("fmt", ["2"])
@needs_pause
def test_loose_objects_of_format_2(run, tmp_path, fmt):
    """Format 2 keeps every object in a file of its own: a put of doomed
    content must not take the file the run is about to unlink."""
    from conftest import Udr
    udr = Udr(tmp_path / "s2")
    udr.ok("init", "--format", fmt)
    old = versions(udr, tmp_path, "t", 3, 9)
    p, go = paused_gc(udr, "gc-doomed", "--keep-last", "1")
    try:
        w = start(udr, "put", "-", input=old[1])
        assert blocked(w), w.communicate()
        fresh = random.Random(10).randbytes(30_000)
        h2 = udr.put(fresh)  # new content does not wait
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    wout, werr = w.communicate(timeout=60)
    assert w.returncode == 0, werr
    h = wout.decode().strip()
    got = tmp_path / "got"
    udr.ok("get", h, "-o", got)
    assert got.read_bytes() == old[1]
    udr.ok("get", h2, "-o", got)
    assert got.read_bytes() == fresh
    assert udr("fsck").code == 0
