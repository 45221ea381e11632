"""The writers' side of the GC fence (docs/GC.md 4.3): every put and every
commit with chunks holds flock LOCK_SH on chunks/gc/active.<epoch mod 2>, so a
GC holding LOCK_EX on both files stops them until it lets go; a writer that
read one epoch and finds another under its lock starts over on the other
file; a killed writer's lock goes with it; a store the process cannot write
still reads.  Windows are made with UDR_PAUSE (builds with UDR_FAULT_INJECTION).
"""
import fcntl
import json
import os
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env

needs_pause = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION (UDR_PAUSE)")


def start(udr, *args, pause=None, input=None):
    env = base_env({"UDR_PAUSE": "%s:%s" % pause} if pause else None)
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), *map(str, args)], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        p.stdin.write(input)
    p.stdin.close()
    return p


def finish(proc, timeout=60):
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def wait_for(path, proc, timeout=30):
    t = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, finish(proc)
        assert time.monotonic() < t, "%s never appeared" % path
        time.sleep(0.01)


def gcdir(udr):
    return udr.root / "chunks" / "gc"


class Exclusive:
    """What a stop-the-world GC holds: LOCK_EX on active.0 and active.1."""

    def __init__(self, udr, parities=(0, 1)):
        gcdir(udr).mkdir(exist_ok=True)
        self.fds = []
        for p in parities:
            fd = os.open(gcdir(udr) / ("active.%d" % p), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.fds.append(fd)

    def release(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def lock_free(udr, parity):
    """Can a GC take LOCK_EX on active.<parity> right now?"""
    fd = os.open(gcdir(udr) / ("active.%d" % parity), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def sealed(udr, tmp_path, text):
    """text (a compact JSON object) sealed as udr seals files: BLAKE3 of the
    bytes before ,"check" (computed by `udr hash`)."""
    body = text[:-1]
    f = tmp_path / "to-seal"
    f.write_bytes(body.encode())
    h = udr.ok("hash", f).out.split()[0]
    return body + ',"check":"%s"}\n' % h


def write_state(udr, tmp_path, epoch, phase="idle"):
    text = ('{"format":1,"kind":"udr-gc-state","epoch":%d,"drained":%d,"phase":"%s","doomed":null,'
            '"dead":null,"plan":null,"mark":0,"gc_seq":0,"started_ms":0,"pid":0,"wall_ms":0,'
            '"boot_id":null,"boottime_ms":0,"last":null,"sealed":true}') % (epoch, max(epoch - 1, 0), phase)
    gcdir(udr).mkdir(exist_ok=True)
    tmp = gcdir(udr) / "STATE.new"
    tmp.write_text(sealed(udr, tmp_path, text))
    os.rename(tmp, gcdir(udr) / "STATE")


def still_running(proc, seconds=1.0):
    time.sleep(seconds)
    return proc.poll() is None


def test_put_and_commit_wait_for_an_exclusive_gc(udr, tmp_path):
    h = udr.put(b"first")
    (tmp_path / "second").write_bytes(b"second content")
    h2 = udr.ok("hash", tmp_path / "second").out.split()[0]
    assert (gcdir(udr) / "active.0").exists()
    ex = Exclusive(udr)
    try:
        put = start(udr, "put", "-", input=b"second content")
        commit = start(udr, "commit", "t", "--next", h)
        assert still_running(put), finish(put)
        assert still_running(commit, 0.2), finish(commit)
        # reads never wait
        assert udr.ok("get", h).out == "first"
        # nothing was written by the blocked put
        assert udr("exists", h2).code != 0
        assert "not found" in udr("versions", "t").stderr
    finally:
        ex.release()
    code, out, err = finish(put)
    assert code == 0, err
    code2, out2, err2 = finish(commit)
    assert code2 == 0, err2
    assert out.strip() == h2
    assert udr.ok("get", h2).out == "second content"
    assert udr.ok("versions", "t").out.strip()


def test_neither_waits_without_gc_and_commits_without_chunks_take_no_lock(udr):
    h = udr.put(b"a")
    t = time.monotonic()
    for i in range(3):
        udr.put(b"x%d" % i)
        udr.ok("commit", "t", "--next", h)
    assert time.monotonic() - t < 20
    # a GC holding the fence does not stop a record without chunks
    ex = Exclusive(udr)
    try:
        r = udr("commit", "e", "--next", "--allow-empty")
        assert r.code == 0, r
        # only the other parity held: a put of epoch 0 goes on
    finally:
        ex.release()
    ex = Exclusive(udr, parities=(1,))
    try:
        udr.put(b"parity 0 is free")
    finally:
        ex.release()


@needs_pause
def test_a_writer_that_finds_a_new_epoch_under_its_lock_starts_over(udr, tmp_path):
    udr.put(b"make gc/")
    pdir = tmp_path / "pause"
    pdir.mkdir()
    put = start(udr, "put", "-", input=b"raced", pause=("gc-hold-read", pdir))
    wait_for(pdir / "gc-hold-read.reached", put)
    # the writer read epoch 0 (no STATE); GC now publishes epoch 1 and
    # holds the parity-1 file, as at its drain of the next run
    write_state(udr, tmp_path, 1, "doomed")
    ex = Exclusive(udr, parities=(1,))
    try:
        (pdir / "gc-hold-read.go").touch()
        # it locked active.0, re-read STATE (epoch 1), and now waits on active.1
        assert still_running(put, 1.5), finish(put)
        assert lock_free(udr, 0)
    finally:
        ex.release()
    code, out, err = finish(put)
    assert code == 0, err
    assert udr.ok("get", out.strip()).out == "raced"


@needs_pause
def test_a_killed_writer_frees_the_fence(udr, tmp_path):
    udr.put(b"make gc/")
    pdir = tmp_path / "pause"
    pdir.mkdir()
    put = start(udr, "put", "-", input=b"killed", pause=("gc-put-held", pdir))
    wait_for(pdir / "gc-put-held.reached", put)
    assert not lock_free(udr, 0)
    assert lock_free(udr, 1)
    put.kill()
    put.wait()
    assert lock_free(udr, 0)


@needs_pause
def test_a_commit_holds_the_fence_until_its_link(udr, tmp_path):
    h = udr.put(b"content")
    pdir = tmp_path / "pause"
    pdir.mkdir()
    c = start(udr, "commit", "t", "--next", h, pause=("gc-commit-linked", pdir))
    wait_for(pdir / "gc-commit-linked.reached", c)
    assert not lock_free(udr, 0)
    (pdir / "gc-commit-linked.go").touch()
    code, out, err = finish(c)
    assert code == 0, err
    assert lock_free(udr, 0)
    # after epoch 1 a writer holds active.1
    write_state(udr, tmp_path, 1)
    # the first commit's files go before the second starts: it found the
    # old .go when it reached the pause first, and did not stop (flaky)
    (pdir / "gc-commit-linked.go").unlink()
    (pdir / "gc-commit-linked.reached").unlink()
    c = start(udr, "commit", "t", "--next", h, pause=("gc-commit-linked", pdir))
    wait_for(pdir / "gc-commit-linked.reached", c)
    assert lock_free(udr, 0)
    assert not lock_free(udr, 1)
    (pdir / "gc-commit-linked.go").touch()
    assert finish(c)[0] == 0


def test_a_damaged_state_stops_writers_not_readers(udr, tmp_path):
    h = udr.put(b"kept")
    write_state(udr, tmp_path, 3)
    udr.put(b"fine")
    st = gcdir(udr) / "STATE"
    b = bytearray(st.read_bytes())
    b[30] ^= 1
    st.write_bytes(bytes(b))
    r = udr("put", "-", input=b"refused")
    assert r.code != 0
    assert "corrupt gc state" in r.stderr
    r = udr("commit", "t", "--next", h)
    assert r.code != 0 and "corrupt gc state" in r.stderr
    assert "udr fsck --repair" in r.stderr  # says how to go on
    assert udr.ok("get", h).out == "kept"
    assert udr("gc", "--grace", "0s").code == 4
    # the way out: the status still answers, and says no run holds the lock
    st_json = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st_json["phase"] == "damaged" and st_json["running"] is None
    assert "corrupt gc state" in st_json["damage"]
    assert "udr fsck --repair writes it anew" in udr.ok("gc", "--status").out
    # fsck names the STATE, once, and no pack (it blamed every pack:
    # "corrupt chunk <pack>"), and exits 4; --repair writes it anew
    r = udr("fsck")
    assert r.code == 4 and "corrupt gc STATE" in r.out and "corrupt chunk" not in r.out, r
    assert "1 problem" in r.out, r
    r = udr("fsck", "--repair")
    assert r.code == 0 and "chunks/gc/STATE was damaged" in r.out, r
    udr.put(b"works again")
    udr.ok("commit", "t", "--next", h)
    udr.ok("gc", "--grace", "0s")
    assert udr.ok("get", h).out == "kept"
    assert udr("fsck").code == 0


def test_fresh_records_for_copies_made_before_the_put(udr, tmp_path):
    cfg = udr.root / "chunks" / "config.json"
    text = cfg.read_text()
    body = text[:text.index(',"check"')] + "}"
    assert body.endswith(',"sealed":true}')
    body = body[:-len(',"sealed":true}')] + ',"gc":{"grace_ms":0},"sealed":true}'
    cfg.write_text(sealed(udr, tmp_path, body))
    fresh = gcdir(udr) / "fresh.0"
    h = udr.put(b"again and again")
    assert not fresh.exists()
    time.sleep(1.1)  # a pack's age is known to the second
    assert udr.put(b"again and again") == h
    data = fresh.read_bytes()
    assert len(data) == 40
    assert data[8:].hex() == h
    ms = int.from_bytes(data[:8], "little")
    assert abs(ms - time.time() * 1000) < 60000
    udr.put(b"new content")
    assert len(fresh.read_bytes()) == 40
    # the default grace (24 h): a hit on a young copy made before the put
    # is recorded too (unsynced: the copy may be named only by expired
    # versions, which GC's young-copy root does not keep)
    body = body.replace(',"gc":{"grace_ms":0}', "")
    cfg.write_text(sealed(udr, tmp_path, body))
    time.sleep(0.2)  # the repack of the last put made a new copy: older than the 50 ms margin
    udr.put(b"again and again")
    data = fresh.read_bytes()
    assert len(data) == 80 and data[48:].hex() == h
    # a bad grace is a damaged config, not a silent default
    cfg.write_text(sealed(udr, tmp_path, body.replace(',"sealed"', ',"gc":{"grace_ms":-1},"sealed"')))
    r = udr("put", "-", input=b"x")
    assert r.code != 0 and "grace_ms" in r.stderr


def test_format_1_store_takes_the_gc_grace_of_its_config(udr1, tmp_path):
    """A format-1 store read no gc block: a bad grace_ms was accepted and a
    good one ignored (the default 24 h applied)."""
    udr = udr1
    cfg = udr.root / "chunks" / "config.json"
    text = cfg.read_text()
    body = text[:text.index(',"check"')] + "}"
    h = udr.put(b"an uncommitted put")
    udr.ok("gc")  # the default grace keeps it
    assert udr("exists", h).code == 0
    cfg.write_text(sealed(udr, tmp_path, body.replace(',"sealed"', ',"gc":{"grace_ms":-1},"sealed"')))
    r = udr("put", "-", input=b"x")
    assert r.code == 4 and "grace_ms" in r.stderr, r
    cfg.write_text(sealed(udr, tmp_path, body.replace(',"sealed"', ',"gc":{"grace_ms":0},"sealed"')))
    udr.ok("gc")
    assert udr("exists", h).code == 1


def test_fresh_record_goes_to_the_epochs_parity(udr, tmp_path):
    cfg = udr.root / "chunks" / "config.json"
    text = cfg.read_text()
    body = text[:text.index(',"check"')] + "}"
    body = body[:-len(',"sealed":true}')] + ',"gc":{"grace_ms":0},"sealed":true}'
    cfg.write_text(sealed(udr, tmp_path, body))
    h = udr.put(b"twice")
    write_state(udr, tmp_path, 5)
    time.sleep(1.1)
    udr.put(b"twice")
    assert not (gcdir(udr) / "fresh.0").exists()
    assert (gcdir(udr) / "fresh.1").read_bytes()[8:].hex() == h


def packs_lock_free(udr):
    fd = os.open(udr.root / "chunks" / "packs" / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@needs_pause
def test_the_upgrade_unlinks_loose_files_under_packs_lock_and_the_fence(run, tmp_path):
    """GC.md Prerequisite 6: the packing of `udr upgrade` is a put (it holds
    active) and removes loose files only under packs/lock."""
    from conftest import Udr
    root = tmp_path / "s"
    assert run("--store", root, "init", "--format", "1").code == 0
    u = Udr(root)
    hs = [u.put(os.urandom(1000 + i)) for i in range(5)]
    pdir = tmp_path / "pause"
    pdir.mkdir()
    up = start(u, "upgrade", pause=("upgrade-unlink", pdir))
    wait_for(pdir / "upgrade-unlink.reached", up)
    assert not packs_lock_free(u)
    assert not lock_free(u, 0)
    assert all(u.chunk_path(h).exists() for h in hs)  # not yet removed
    (pdir / "upgrade-unlink.go").touch()
    code, out, err = finish(up)
    assert code == 0, err
    assert packs_lock_free(u) and lock_free(u, 0)
    assert not any(u.chunk_path(h).exists() for h in hs)
    for h in hs:
        assert [c[0] for c in u.locate(h)] == ["pack"]
    assert u("fsck").code == 0


def test_an_exclusive_gc_holds_back_the_upgrade(run, tmp_path):
    from conftest import Udr
    root = tmp_path / "s"
    assert run("--store", root, "init", "--format", "1").code == 0
    u = Udr(root)
    h = u.put(b"loose")
    ex = Exclusive(u)
    try:
        up = start(u, "upgrade")
        assert still_running(up), finish(up)
        assert u.chunk_path(h).exists()
    finally:
        ex.release()
    code, out, err = finish(up)
    assert code == 0, err
    assert [c[0] for c in u.locate(h)] == ["pack"]


def grace_zero(udr, tmp_path):
    cfg = udr.root / "chunks" / "config.json"
    text = cfg.read_text()
    body = text[:text.index(',"check"')] + "}"
    body = body[:-len(',"sealed":true}')] + ',"gc":{"grace_ms":0},"sealed":true}'
    cfg.write_text(sealed(udr, tmp_path, body))


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")
@pytest.mark.parametrize("fault", ["fsync:1:fail", "write:1:fail", "fsync:1:crash", "write:1:crash"])
def test_a_fresh_record_lost_to_a_fault_fails_the_put(udr, tmp_path, fault):
    """The put of content stored long ago does one write and one fsync: the
    fresh record's.  Either failing fails the put (exit != 0, the record may
    be torn); a rerun records it."""
    grace_zero(udr, tmp_path)
    h = udr.put(b"old content")
    # an hour old (the index's mtime): no sync of a recent name either
    for idx in (udr.root / "chunks" / "packs").glob("*.idx"):
        os.utime(idx, (time.time() - 3600, time.time() - 3600))
    r = udr("put", "-", input=b"old content", env={"UDR_FAULT": fault})
    assert r.code != 0, r
    if fault.endswith("fail"):
        assert "cannot record" in r.stderr
    fresh = gcdir(udr) / "fresh.0"
    before = fresh.stat().st_size if fresh.exists() else 0
    assert before in (0, 40)
    assert udr.put(b"old content") == h
    data = fresh.read_bytes()
    assert len(data) == before + 40 and data[-32:].hex() == h
    assert lock_free(udr, 0)


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")
@pytest.mark.parametrize("fault", ["mkdir:3:fail", "open:1:fail", "mkdir:3:crash", "open:1:crash"])
def test_a_fence_that_cannot_be_made_stores_nothing(udr, tmp_path, fault):
    """The first put of a store makes gc/ and gc/active.0 before anything
    else: failing there, the put fails and stores nothing; the next works."""
    (tmp_path / "c").write_bytes(b"fenced content")
    h = udr.ok("hash", tmp_path / "c").out.split()[0]
    r = udr("put", "-", input=b"fenced content", env={"UDR_FAULT": fault})
    assert r.code != 0, r
    if fault.endswith("fail"):  # (mkdir 1 and 2 are tmp/ and packs/ at open)
        assert "chunks/gc" in r.stderr, r
    assert udr("exists", h).code != 0
    assert udr.put(b"fenced content") == h
    assert (gcdir(udr) / "active.0").exists()
    assert udr("fsck").code == 0
