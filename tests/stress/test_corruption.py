"""Corruption: damaged or missing chunks and catalog files are reported by
`udr get --verify`, `udr show` and `udr fsck` with exit 4 (integrity) and a
`udr: ` message naming the object; stale caches and leftover temp files are
not corruption.
"""
import os
import shutil
import subprocess

import pytest


def flip(path, offset=None):
    data = bytearray(open(path, "rb").read())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)


def vfile(udr, table, version):
    return os.path.join(udr.root, "catalog", "tables", table, "%020d.json" % version)


def logfile(udr, seq):
    return os.path.join(udr.root, "catalog", "log", "%020d.json" % seq)


@pytest.fixture
def populated(udr, tmp_path):
    return populate(udr, tmp_path)


@pytest.fixture
def populated2(udr2, tmp_path):
    """Format 2: each chunk a file of its own, damaged or deleted alone (a
    packed object's damage: test_sweep.py, every damage and read path)."""
    return populate(udr2, tmp_path)


def populate(udr, tmp_path):
    chunks = []
    for i in range(3):
        f = tmp_path / ("c%d" % i)
        f.write_bytes(os.urandom(5000 + i))
        chunks.append(udr.ok("put", str(f)).strip())
    udr.ok("commit", "t", "1", chunks[0], chunks[1])
    udr.ok("commit", "t", "2", chunks[1], chunks[2])
    udr.ok("commit", "u", "--next", chunks[2])
    assert udr.fsck().returncode == 0
    return udr, chunks


def expect(p, code, needle=None):
    """Exit code as expected; an error message, when there is one, starts
    with `udr: `; needle (an object name) appears in the output."""
    err = p.stderr.decode(errors="replace")
    out = p.stdout.decode(errors="replace")
    assert p.returncode == code, "exit %d, expected %d\nstdout: %s\nstderr: %s" % (
        p.returncode, code, out[-1500:], err[-1500:])
    if err.strip():
        assert err.startswith("udr: "), "stderr %r" % err[:300]
    if needle:
        assert needle in err or needle in out, "%r not in output\n%s%s" % (needle, out, err)


def expect_err(p, code, needle=None):
    """As expect, and a command that failed must say why on stderr."""
    expect(p, code, needle)
    assert p.stderr.decode(errors="replace").startswith("udr: "), p.stderr


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "append"])
def test_damaged_chunk(populated2, damage, tmp_path):
    udr, chunks = populated2
    h = chunks[1]
    path = udr.chunk_path(h)
    if damage == "flip":
        flip(path)
    elif damage == "truncate":
        os.truncate(path, 100)
    elif damage == "empty":
        os.truncate(path, 0)
    else:
        with open(path, "ab") as f:
            f.write(b"x")
    out = tmp_path / "out"
    expect_err(udr.run("get", h, "--verify", "-o", str(out)), 4, h)
    assert not out.exists(), "a failed verified get left its output file"
    expect_err(udr.run("get", h, "--verify"), 4, h)
    expect(udr.run("fsck"), 4, h)
    # Other chunks are fine.
    expect(udr.run("get", chunks[0], "--verify", "-o", os.devnull), 0)


def test_damaged_packed_chunk(populated, tmp_path):
    # Format 3: a byte of a packed entry flipped in place: its CRC fails on
    # every read, naming the chunk and the pack; the pack's other entries
    # read as before.
    udr, chunks = populated
    h = chunks[1]
    where, path, off, length, _ = udr.locate(h)[0]
    assert where == "pack"
    flip(path, off + length // 2)
    out = tmp_path / "out"
    expect_err(udr.run("get", h, "-o", str(out)), 4, h)
    assert not out.exists()
    p = udr.run("get", h, "--no-verify")
    expect_err(p, 4, os.path.basename(path)[:64])
    assert p.stdout == b""
    expect(udr.run("fsck"), 4, h)
    expect(udr.run("get", chunks[0], "--verify", "-o", os.devnull), 0)
    expect(udr.run("get", chunks[2], "--verify", "-o", os.devnull), 0)
    # re-putting the content repairs it: the damaged pack is rewritten
    udr.ok("put", str(tmp_path / "c1"))
    expect(udr.run("get", h, "--verify", "-o", os.devnull), 0)
    expect(udr.run("fsck"), 0)


def test_deleted_chunk(populated2):
    udr, chunks = populated2
    h = chunks[0]
    os.unlink(udr.chunk_path(h))
    expect(udr.run("get", h), 1)
    expect(udr.run("get", h, "--verify"), 1)
    expect(udr.run("exists", h), 1)
    # Version 1 of t references it: that is an integrity failure of the store.
    expect(udr.run("fsck"), 4, h)
    # Re-putting the content repairs it.


def test_stray_file_in_chunks(populated2):
    udr, chunks = populated2
    h = chunks[0]
    d = os.path.dirname(udr.chunk_path(h))
    with open(os.path.join(d, "stray.txt"), "w") as f:
        f.write("junk")
    expect(udr.run("fsck"), 4, "stray.txt")


@pytest.mark.parametrize("damage", ["flip", "garbage", "truncate", "empty"])
def test_damaged_version_file(populated, damage):
    udr, chunks = populated
    path = vfile(udr, "t", 1)
    if damage == "flip":
        text = open(path, "rb").read()
        # Flip a bit inside a chunk hash so the JSON stays valid.
        i = text.index(chunks[0].encode()) + 10
        flip(path, i)
    elif damage == "garbage":
        open(path, "wb").write(b"\x00\xffnot json at all")
    elif damage == "truncate":
        os.truncate(path, os.path.getsize(path) // 2)
    else:
        os.truncate(path, 0)
    expect_err(udr.run("show", "t", "1"), 4)
    expect(udr.run("fsck"), 4)
    # The other versions still read.
    expect(udr.run("show", "t", "2"), 0)
    expect(udr.run("show", "u"), 0)


def no_number_reuse(udr, table, committed, h):
    """After damage, a new commit must never take a number a commit record
    already gave out (it may refuse with exit 4 instead)."""
    p = udr.run("commit", table, "--next", h)
    assert p.returncode in (0, 4), p.stderr
    if p.returncode == 0:
        got = int(p.stdout.decode().strip())
        assert got > committed, "version %d of %s was committed twice" % (got, table)


def test_deleted_version_file(populated):
    """The commit record references it: deleting it is corruption, not 'not found'."""
    udr, chunks = populated
    os.unlink(vfile(udr, "t", 1))
    expect_err(udr.run("show", "t", "1"), 4)
    expect(udr.run("fsck"), 4)
    expect(udr.run("show", "t", "2"), 0)
    no_number_reuse(udr, "t", 2, chunks[0])


def test_deleted_latest_version_file(populated):
    udr, chunks = populated
    os.unlink(vfile(udr, "t", 2))
    expect_err(udr.run("show", "t", "2"), 4)
    expect(udr.run("fsck"), 4)
    expect_err(udr.run("show", "t", "2"), 4)
    no_number_reuse(udr, "t", 2, chunks[0])


def test_all_version_files_deleted(populated):
    udr, chunks = populated
    os.unlink(vfile(udr, "t", 1))
    os.unlink(vfile(udr, "t", 2))
    expect(udr.run("fsck"), 4)
    assert udr.run("show", "t").returncode == 4
    no_number_reuse(udr, "t", 2, chunks[0])


@pytest.mark.parametrize("damage", ["garbage", "delete-middle"])
def test_damaged_commit_record(populated, damage):
    udr, chunks = populated
    if damage == "garbage":
        open(logfile(udr, 2), "w").write("{\"seq\": 2, ")
    else:
        os.unlink(logfile(udr, 2))
    # Version 2 of t was made by record 2 (the log goes on to 3): it cannot
    # be shown as intact, nor as never having existed.
    expect_err(udr.run("show", "t", "2"), 4)
    expect(udr.run("fsck"), 4)
    # fsck must not destroy the evidence: the version file is not an orphan.
    assert os.path.exists(vfile(udr, "t", 2)), "fsck deleted a committed version file"
    expect_err(udr.run("show", "t", "2"), 4)
    expect(udr.run("show", "t", "1"), 0)
    no_number_reuse(udr, "t", 2, chunks[0])


@pytest.mark.parametrize("which", ["root", "chunks", "catalog"])
def test_damaged_config(populated, which):
    udr, chunks = populated
    path = {"root": os.path.join(udr.root, "config.json"),
            "chunks": os.path.join(udr.root, "chunks", "config.json"),
            "catalog": os.path.join(udr.root, "catalog", "config.json")}[which]
    open(path, "w").write("{{{{")
    expect_err(udr.run("show", "t"), 4)
    expect(udr.run("fsck"), 4)


@pytest.mark.parametrize("cache", ["LATEST-low", "LATEST-garbage", "LATEST-gone",
                                   "HEAD-low", "HEAD-garbage", "HEAD-gone"])
def test_stale_caches_are_not_corruption(populated, cache):
    udr, chunks = populated
    kind, _, how = cache.partition("-")
    path = (os.path.join(udr.root, "catalog", "tables", "t", "LATEST") if kind == "LATEST"
            else os.path.join(udr.root, "catalog", "HEAD"))
    if how == "gone":
        if os.path.exists(path):
            os.unlink(path)
    else:
        open(path, "w").write({"low": "1\n", "high": "77\n", "garbage": "xyz"}[how])
    assert udr.show("t")["version"] == 2
    assert udr.versions("t") == [1, 2]
    expect(udr.run("fsck"), 0)
    assert udr.ok("commit", "t", "--next", chunks[0]).strip() == "3"
    expect(udr.run("commit", "t", "3", chunks[0]), 3, "4")
    assert udr.show("t")["commit"] == 4
    expect(udr.run("fsck"), 0)


def test_latest_cache_above_the_log_is_not_believed(populated):
    # The latest version comes from the log (the head record's window over
    # its checkpoint); the LATEST cache of older stores is not read, so a
    # damaged one can neither hide versions nor hand a number out twice.
    udr, chunks = populated
    path = os.path.join(udr.root, "catalog", "tables", "t", "LATEST")
    open(path, "w").write("77\n")
    assert udr.show("t")["version"] == 2
    assert udr.ok("commit", "t", "--next", chunks[0]).strip() == "3"
    expect(udr.run("fsck"), 0)


def test_temp_files_are_removed_by_fsck(populated):
    udr, chunks = populated
    made = []
    for sub in ("chunks/tmp", "catalog/tmp"):
        d = os.path.join(udr.root, sub)
        os.makedirs(d, exist_ok=True)
        for name in ("999999-0123456789abcdef.tmp", "999998-fedcba9876543210.tmp"):
            p = os.path.join(d, name)
            open(p, "w").write("partial")
            made.append(p)
    p = udr.run("fsck")
    expect(p, 0)
    for m in made:
        assert not os.path.exists(m), m


def test_orphan_version_file_is_not_corruption(populated):
    """What a crash before the commit point leaves: a version file naming a
    commit that does not exist.  Invisible, fsck-clean, and no obstacle."""
    udr, chunks = populated
    text = open(vfile(udr, "t", 2)).read()
    orphan = text.replace('"version":2', '"version":3').replace('"parent":1', '"parent":2')
    orphan = orphan.replace('"commit":2', '"commit":4')
    assert orphan != text
    open(vfile(udr, "t", 3), "w").write(orphan)
    assert udr.versions("t") == [1, 2]
    expect(udr.run("show", "t", "3"), 1)
    expect(udr.run("fsck"), 0)
    udr.ok("commit", "t", "3", chunks[0])
    assert udr.show("t", 3)["chunks"] == [chunks[0]]
    expect(udr.run("fsck"), 0)


def test_hash_matches_b3sum(udr, tmp_path):
    if shutil.which("b3sum") is None:
        pytest.skip("b3sum not installed")
    for size in (0, 1, 1024, 1025, 65536, 1 << 20):
        f = tmp_path / ("f%d" % size)
        f.write_bytes(os.urandom(size))
        ref = subprocess.run(["b3sum", "--no-names", str(f)], capture_output=True,
                             text=True).stdout.strip()
        assert udr.ok("hash", str(f)).strip() == ref
        assert udr.ok("put", str(f)).strip() == ref
        if 0 < size <= 65536:  # random bytes in one object: stored raw
            assert udr.locate(ref)[0][3] == size
        out = tmp_path / "out"
        udr.ok("get", ref, "--verify", "-o", str(out))
        assert out.read_bytes() == f.read_bytes()
