"""udr init, hash, put, get, exists: the chunk store from the command line."""
import json
import os
import subprocess

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, Udr, run_udr

SIZES = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 65535, 65536, 65537, 3 << 20]
EMPTY_HASH = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def b3sum(path):
    out = subprocess.run(["b3sum", str(path)], check=True, capture_output=True).stdout
    h, name = out.decode().split(None, 1)
    assert name.strip() == str(path)
    return h


def data_of(size, seed=0):
    return os.urandom(size) if seed == 0 else bytes((i * seed) % 251 for i in range(size))


# ---- init, store location ----

def test_init_creates_store(run, tmp_path):
    root = tmp_path / "s"
    r = run("--store", root, "init")
    assert r.code == 0, r
    assert "initialized" in r.out and str(root) in r.out
    assert (root / "chunks").is_dir() and (root / "catalog").is_dir()


def test_init_existing_store_says_so(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init").code == 0
    h = Udr(root).put(b"keep me")
    r = run("--store", root, "init")
    assert r.code == 0, r
    assert "already exists" in r.out
    assert Udr(root)("exists", h).code == 0


@pytest.mark.parametrize("args", [
    ["put", "-"], ["get", EMPTY_HASH], ["exists", EMPTY_HASH], ["commit", "t", "1", EMPTY_HASH],
    ["commit", "t", "--next", "--allow-empty"], ["show", "t"], ["versions", "t"], ["tables"], ["fsck"],
])
def test_missing_store(run, tmp_path, args):
    root = tmp_path / "nostore"
    r = run("--store", root, *args)
    assert r.code == 1, r
    assert r.stderr == "udr: not a udr store: %s (run udr init)\n" % root
    assert r.stdout == b""
    assert not root.exists()


def test_store_env(run, tmp_path):
    root = tmp_path / "envstore"
    assert run("init", env={"UDR_STORE": str(root)}).code == 0
    r = run("put", "-", input=b"x", env={"UDR_STORE": str(root)})
    assert r.code == 0, r
    assert Udr(root).locate(r.out.strip())


def test_store_option_beats_env(run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("--store", a, "init").code == 0
    r = run("--store", a, "put", input=b"y", env={"UDR_STORE": str(b)})
    assert r.code == 0, r
    assert not b.exists()
    assert Udr(a).locate(r.out.strip())


def test_store_option_after_command(run, tmp_path):
    root = tmp_path / "late"
    assert run("init", "--store", root).code == 0
    assert (root / "chunks").is_dir()
    assert run("tables", "--store", root).code == 0


def test_default_store_is_data_in_cwd(run, tmp_path):
    assert run("init", cwd=tmp_path).code == 0
    assert (tmp_path / "data" / "chunks").is_dir()
    r = run("put", input=b"default", cwd=tmp_path)
    assert r.code == 0, r
    assert Udr(tmp_path / "data").locate(r.out.strip())
    r = run("tables", cwd=tmp_path / "data")  # no ./data there
    assert r.code == 1
    assert "not a udr store: ./data" in r.stderr


# ---- hash ----

@pytest.mark.parametrize("size", SIZES)
def test_hash_matches_b3sum(run, tmp_path, size):
    f = tmp_path / "in.bin"
    data = data_of(size)
    f.write_bytes(data)
    expect = b3sum(f)
    r = run("hash", f)
    assert r.code == 0, r
    assert r.out == expect + "\n"
    r = run("hash", "-", input=data)
    assert r.out == expect + "\n"


def test_hash_stdin_default(run):
    r = run("hash", input=b"")
    assert r.code == 0
    assert r.out == EMPTY_HASH + "\n"


def test_hash_needs_no_store(run, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    r = run("--store", tmp_path / "nostore", "hash", f)
    assert r.code == 0, r
    assert r.out.strip() == b3sum(f)
    assert not (tmp_path / "nostore").exists()


def test_hash_stdin_redirected_file(run, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(data_of(100000, 7))
    with open(f, "rb") as fh:
        proc = subprocess.run([UDR_BIN, "hash"], stdin=fh,
                              capture_output=True)
    assert proc.stdout.decode().strip() == b3sum(f)


def test_hash_missing_file(run, tmp_path):
    r = run("hash", tmp_path / "nope")
    assert r.code == 1
    assert r.stderr.startswith("udr: ") and "nope" in r.stderr


def test_hash_directory_is_io_error(run, tmp_path):
    r = run("hash", tmp_path)
    assert r.code == 5, r
    assert r.stderr.startswith("udr: ")


# ---- put, layout, dedup ----

CHUNK_MAX = 512 << 10  # the default chunk_max: larger content is split


@pytest.mark.parametrize("size", SIZES)
def test_put_matches_b3sum_and_layout_format1(udr1, tmp_path, size):
    # Format 1: every content is one plain file holding exactly its bytes.
    f = tmp_path / "in.bin"
    data = data_of(size)
    f.write_bytes(data)
    expect = b3sum(f)
    r = udr1("put", f)
    assert r.code == 0, r
    assert r.out == expect + "\n"
    p = udr1.chunk_path(expect)
    assert p.is_file()
    assert p.read_bytes() == data
    assert udr1.objects(expect) == {"": p}
    assert udr1.object_files() == [p]
    assert udr1.put(data) == expect
    assert udr1.ok("get", expect).stdout == data


@pytest.mark.parametrize("size", [s for s in SIZES if s <= CHUNK_MAX])
def test_layout_format2_small_incompressible_is_raw(udr2, tmp_path, size):
    f = tmp_path / "in.bin"
    data = data_of(size)
    f.write_bytes(data)
    h = udr2.ok("put", f).out.strip()
    assert h == b3sum(f)
    assert udr2.objects(h) == {"": udr2.chunk_path(h)}
    assert udr2.chunk_path(h).read_bytes() == data
    assert udr2.object_files() == [udr2.chunk_path(h)]


@pytest.mark.parametrize("size", [4096, 65536, CHUNK_MAX])
def test_layout_format2_compressible_is_zstd(udr2, tmp_path, size):
    data = (b"udr2 compresses repetitive content %d\n" % size) * (size // 36 + 1)
    data = data[:size]
    h = udr2.put(data)
    objs = udr2.objects(h)
    assert list(objs) == [".zst"], objs
    z = objs[".zst"]
    assert z.stat().st_size < size // 4
    # A standard zstd frame: the zstd tool turns it back into the content.
    out = subprocess.run(["zstd", "-d", "-c", str(z)], check=True, capture_output=True).stdout
    assert out == data
    assert udr2.ok("get", "--verify", h).stdout == data


def pieces_of(udr, h):
    """The piece files of a content stored alone in its store (all objects but its own)."""
    return [p for p in udr.object_files() if not p.name.startswith(h)]


@pytest.mark.parametrize("size", [CHUNK_MAX + 1, 3 << 20])
def test_layout_format2_large_is_manifest_and_pieces(udr2, tmp_path, size):
    f = tmp_path / "in.bin"
    data = data_of(size)
    f.write_bytes(data)
    h = udr2.ok("put", f).out.strip()
    assert h == b3sum(f)
    assert list(udr2.objects(h)) == [".m"]
    pieces = pieces_of(udr2, h)
    assert len(pieces) >= 2
    # Random bytes do not compress: the pieces are raw, together the content.
    assert all(len(p.name) == 64 for p in pieces), pieces
    assert all(p.stat().st_size <= CHUNK_MAX for p in pieces)
    assert sum(p.stat().st_size for p in pieces) == size
    got = b"".join(p.read_bytes() for p in pieces)  # in no particular order
    assert bytes(sorted(got)) == bytes(sorted(data))
    assert udr2.ok("get", "--verify", h).stdout == data
    assert udr2.put(data) == h  # dedup: nothing new
    assert len(udr2.object_files()) == len(pieces) + 1


def test_layout_format2_large_compressible(udr2):
    data = b"".join(b"row %08d,some,text,%d\n" % (i, i % 7) for i in range(200000))
    h = udr2.put(data)
    assert list(udr2.objects(h)) == [".m"]
    pieces = pieces_of(udr2, h)
    assert pieces and all(p.name.endswith(".zst") for p in pieces), pieces
    assert sum(p.stat().st_size for p in pieces) < len(data) // 3
    assert udr2.ok("get", "--verify", h).stdout == data


def test_put_dedup(udr2, tmp_path):
    data = data_of(5000)
    h1 = udr2.put(data)
    f = tmp_path / "f"
    f.write_bytes(data)
    h2 = udr2.ok("put", f).out.strip()
    assert h1 == h2
    copies = [p for p in (udr2.root / "chunks").rglob(h1)]
    assert copies == [udr2.chunk_path(h1)]
    assert [p.name for p in (udr2.root / "chunks").rglob("*") if p.is_file()
            and len(p.name) == 64] == [h1]


def test_put_missing_file(udr, tmp_path):
    r = udr("put", tmp_path / "nope")
    assert r.code == 1, r
    assert r.stderr.startswith("udr: ")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs -DUDR_FAULT_INJECTION=ON")
def test_put_io_error_exit_5(udr):
    r = udr("put", input=b"fault", env={"UDR_FAULT": "fsync:1:eio"})
    assert r.code == 5, r
    assert r.stderr.startswith("udr: ")
    assert r.stdout == b""


# ---- get, exists ----

def test_get_roundtrip_stdout(udr):
    data = data_of(200000)
    h = udr.put(data)
    r = udr("get", h)
    assert r.code == 0, r
    assert r.stdout == data
    r = udr("get", h, "--verify")
    assert r.code == 0, r
    assert r.stdout == data


def test_get_empty_chunk(udr):
    h = udr.put(b"")
    assert h == EMPTY_HASH
    assert udr.ok("get", h).stdout == b""
    assert udr.ok("get", "--verify", h).stdout == b""


def test_get_to_file(udr, tmp_path):
    data = data_of(70000)
    h = udr.put(data)
    out = tmp_path / "out.bin"
    r = udr("get", h, "-o", out)
    assert r.code == 0, r
    assert r.stdout == b""
    assert out.read_bytes() == data
    out2 = tmp_path / "out2.bin"
    udr.ok("get", "--verify", "--output", out2, h)
    assert out2.read_bytes() == data


def test_get_uppercase_hash(udr):
    h = udr.put(b"case")
    assert udr.ok("get", h.upper()).stdout == b"case"


def test_get_missing_chunk(udr, tmp_path):
    r = udr("get", "ab" * 32)
    assert r.code == 1, r
    assert r.stderr.startswith("udr: ")
    r = udr("get", "ab" * 32, "-o", tmp_path / "o")
    assert r.code == 1
    assert not (tmp_path / "o").exists()


def test_exists(udr):
    h = udr.put(b"present")
    r = udr("exists", h)
    assert (r.code, r.stdout, r.stderr) == (0, b"", "")
    r = udr("exists", "cd" * 32)
    assert (r.code, r.stdout, r.stderr) == (1, b"", "")


@pytest.mark.parametrize("bad", ["a" * 63, "a" * 65, "g" * 64, "xyz", ""])
@pytest.mark.parametrize("cmd", ["get", "exists"])
def test_bad_hash(udr, cmd, bad):
    r = udr(cmd, bad)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ")
    if bad:
        assert bad in r.stderr
    assert r.stdout == b""


def test_get_to_dev_full_is_io_error(udr):
    h = udr.put(b"z" * 10000)
    with open("/dev/full", "wb") as full:
        r = run_udr("--store", udr.root, "get", h, stdout=full)
    assert r.code == 5, r
    assert r.stderr.startswith("udr: ")
    with open("/dev/full", "wb") as full:
        r = run_udr("--store", udr.root, "get", "--verify", h, stdout=full)
    assert r.code == 5, r


def test_put_output_to_dev_full(udr):
    with open("/dev/full", "wb") as full:
        r = run_udr("--store", udr.root, "put", input=b"q", stdout=full)
    assert r.code == 5, r
    assert "udr: " in r.stderr


# ---- corruption ----

def flip_byte(path, offset=0):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def truncate(path):
    data = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(data[: len(data) // 2])


def damage_object(u, h, damage):
    """Damage the first copy of h: a loose file as `damage` does to it, a
    packed entry in place (a flipped byte, or the pack truncated there)."""
    where, path, off, length, _ = u.locate(h)[0]
    if where == "loose":
        damage(path)
    else:
        u.damage(h, "flip" if damage is flip_byte else "truncate")


def manifest_pieces(u, h):
    """The piece hashes a stored manifest lists (FORMAT.md: 64-byte header,
    36-byte entries, 32-byte trailer), read through `udr __locate`."""
    where, path, off, length, kind = u.locate(h)[0]
    assert kind == 3, u.locate(h)
    with open(path, "rb") as f:
        f.seek(off)
        m = f.read(length)
    n = int.from_bytes(m[16:24], "little")
    return [m[64 + 36 * i:64 + 36 * i + 32].hex() for i in range(n)]


@pytest.mark.parametrize("damage", [flip_byte, truncate])
@pytest.mark.parametrize("fmt, size", [(1, 100), (1, 3 << 20), (2, 100), (3, 100)])
def test_corrupt_chunk_get_verify(udr, udr1, udr2, tmp_path, damage, fmt, size):
    udr = {1: udr1, 2: udr2, 3: udr}[fmt]
    data = data_of(size)
    h = udr.put(data)
    damage_object(udr, h, damage)
    r = udr("get", "--verify", h)
    assert r.code == 4, r
    assert r.stdout == b""  # corrupt bytes never reach stdout
    assert r.stderr.startswith("udr: ") and h in r.stderr
    out = tmp_path / "out"
    r = udr("get", "--verify", h, "-o", out)
    assert r.code == 4, r
    assert not out.exists()
    r = udr("fsck")
    assert r.code == 4, r
    assert h in r.out


def test_fsck_clean(udr):
    udr.put(b"one")
    h = udr.put(b"two")
    udr.ok("commit", "t", "1", h)
    r = udr("fsck")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fsck: ")
    assert "0 problems" in lines[0]


def test_fsck_reports_each_problem(udr2):
    udr = udr2
    hashes = [udr.put(b"chunk %d" % i) for i in range(3)]
    for h in hashes[:2]:
        flip_byte(udr.chunk_path(h))
    r = udr("fsck")
    assert r.code == 4, r
    bad = [line for line in r.out.splitlines() if not line.startswith("fsck: ")]
    assert len(bad) == 2
    for h in hashes[:2]:
        assert any(line.startswith("corrupt chunk %s: " % h) for line in bad), r.out
    assert hashes[2] not in r.out
    assert "2 problems" in r.out.splitlines()[-1]


def delete(path):
    os.unlink(path)


@pytest.mark.parametrize("damage", [flip_byte, truncate, delete])
def test_corrupt_piece(udr2, tmp_path, damage):
    # Format 2, large content: damage to one piece fails the content.
    udr = udr2
    data = data_of(3 << 20)
    h = udr.put(data)
    pieces = pieces_of(udr, h)
    piece = sorted(pieces)[len(pieces) // 2]
    damage(piece)
    r = udr("get", "--verify", h)
    assert r.code == 4, r
    assert r.stdout == b""
    assert r.stderr.startswith("udr: ") and h in r.stderr and "piece" in r.stderr, r
    assert piece.name[:64] in r.stderr, r.stderr  # which piece
    out = tmp_path / "out"
    r = udr("get", "--verify", h, "-o", out)
    assert r.code == 4, r
    assert not out.exists()
    r = udr("fsck")
    assert r.code == 4, r
    lines = [line for line in r.out.splitlines() if not line.startswith("fsck: ")]
    assert any(h in line and piece.name[:64] in line for line in lines), r.out
    if damage is not delete:
        assert any(line.startswith("corrupt chunk %s: " % piece.name) for line in lines), r.out


@pytest.mark.parametrize("fmt", [1, 2])
def test_big_chunk_get_verify_two_pass(udr2, udr1, tmp_path, fmt):
    # Above 64 MiB `get --verify` to stdout verifies in a first pass instead
    # of in memory; corrupt bytes must still never reach stdout.
    udr = udr1 if fmt == 1 else udr2
    f = tmp_path / "big"
    data = os.urandom(1 << 20) * 65 + b"tail"
    f.write_bytes(data)
    h = udr.ok("put", f).out.strip()
    assert h == b3sum(f)
    r = udr("get", "--verify", h)
    assert r.code == 0 and r.stdout == data
    if fmt == 1:
        p = udr.chunk_path(h)
        flip_byte(p, len(data) - 1)
    else:
        # the last piece (raw: random bytes), so that all others stream first
        (p,) = [q for q in pieces_of(udr, h) if q.read_bytes().endswith(b"tail")]
        flip_byte(p, p.stat().st_size - 1)
    r = udr("get", "--verify", h)
    assert r.code == 4, r
    assert r.stdout == b""
    # Without --verify the damage is known only at the end: exit 4 after
    # the bytes were written (a raw object above 64 MiB streams).
    r = udr("get", h)
    assert r.code == 4, r
    assert len(r.stdout) == (len(data) if fmt == 1 else len(data) - p.stat().st_size)


# ---- every get verifies; a put repairs (regressions: "never wrong data") ----

def truncate_to_zero(path):
    os.chmod(path, 0o644)
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [flip_byte, truncate_to_zero])
@pytest.mark.parametrize("fmt, size", [(1, 5000), (2, 5000), (2, 100_000), (3, 5000), (3, 100_000)])
def test_get_damaged_object_exits_4(udr, udr1, udr2, tmp_path, damage, fmt, size):
    # The bug: `udr get H` and `udr get H -o out` (no --verify) exited 0
    # with the damaged bytes, or with 0 bytes for an emptied object.
    udr = {1: udr1, 2: udr2, 3: udr}[fmt]
    data = os.urandom(size)  # incompressible: one raw object
    h = udr.put(data)
    damage_object(udr, h, damage)
    r = udr("get", h)
    assert r.code == 4, r
    assert r.stdout == b""  # read and verified before anything is written
    assert r.stderr.startswith("udr: ") and h in r.stderr
    out = tmp_path / "out"
    r = udr("get", h, "-o", out)
    assert r.code == 4, r
    assert not out.exists()
    # the explicit opt-out writes what is there; a packed entry's CRC is
    # checked on every read
    r = udr("get", "--no-verify", h)
    if fmt == 3:
        assert r.code == 4 and r.stdout == b"" and h in r.stderr, r
    else:
        assert r.code == 0 and r.stdout != data


@pytest.mark.parametrize("damage", [flip_byte, truncate_to_zero])
def test_get_damaged_piece_exits_4(udr2, tmp_path, damage):
    udr = udr2
    data = os.urandom(5 << 20)
    h = udr.put(data)
    piece = sorted(pieces_of(udr, h))[3]
    damage(piece)
    r = udr("get", h)
    assert r.code == 4, r
    assert piece.name[:64] in r.stderr, r
    # only verified pieces went out, and not all of them
    assert len(r.stdout) < len(data) and data.startswith(r.stdout)
    out = tmp_path / "out"
    r = udr("get", h, "-o", out)
    assert r.code == 4, r
    assert not out.exists()


def test_get_verify_and_no_verify_exclude_each_other(udr):
    h = udr.put(b"x")
    r = udr("get", "--verify", "--no-verify", h)
    assert r.code == 2, r
    assert udr.ok("get", "--no-verify", h).stdout == b"x"


@pytest.mark.parametrize("fmt", [1, 2, 3])
@pytest.mark.parametrize("damage", [flip_byte, truncate_to_zero])
def test_put_repairs_damaged_content(udr, udr1, udr2, tmp_path, fmt, damage):
    # The bug: re-putting content whose stored object was damaged was a
    # dedup hit that kept the damage (put exit 0, get --verify still 4).
    # Format 3: the damaged pack is rewritten without what has good copies.
    udr = {1: udr1, 2: udr2, 3: udr}[fmt]
    f = tmp_path / "big"
    data = os.urandom(5 << 20)
    f.write_bytes(data)
    h = udr.ok("put", f).out.strip()
    if fmt == 3:
        damage_object(udr, manifest_pieces(udr, h)[2], damage)
    else:
        damage(udr.chunk_path(h) if fmt == 1 else sorted(pieces_of(udr, h))[2])
    assert udr("get", "--verify", h).code == 4
    assert udr.ok("put", f).out.strip() == h
    r = udr("get", "--verify", h)
    assert r.code == 0 and r.stdout == data, r
    assert udr.ok("fsck").out.splitlines()[-1].count(" 0 problems") == 1


@pytest.mark.parametrize("fmt", [2, 3])
def test_put_repairs_damaged_manifest(udr, udr2, tmp_path, fmt):
    udr = {2: udr2, 3: udr}[fmt]
    data = os.urandom(3 << 20)
    h = udr.put(data)
    if fmt == 3:
        udr.damage(h, "flip", at=70)
    else:
        flip_byte(udr.objects(h)[".m"], 70)
    assert udr("get", h).code == 4
    assert udr.put(data) == h
    assert udr.ok("get", h).stdout == data
    assert " 0 problems" in udr.ok("fsck").out.splitlines()[-1]


@pytest.mark.parametrize("fmt", [2, 3])
def test_fsck_repair_from(udr, udr2, tmp_path, fmt):
    udr = {2: udr2, 3: udr}[fmt]
    f = tmp_path / "big"
    data = os.urandom(5 << 20)
    f.write_bytes(data)
    h = udr.ok("put", f).out.strip()
    if fmt == 3:
        # two entries of the one pack damaged in place
        ps = manifest_pieces(udr, h)
        udr.damage(ps[1], "flip")
        udr.damage(ps[4], "flip")
    else:
        ps = sorted(pieces_of(udr, h))
        flip_byte(ps[1])
        truncate_to_zero(ps[4])
    assert udr("fsck").code == 4
    r = udr("fsck", "--repair-from", f)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "repair %s from %s: 2 damaged objects replaced" % (h, f), r.out
    assert " 0 problems" in lines[-1]
    assert udr.ok("get", h).stdout == data
    # nothing to repair: still a clean run
    r = udr("fsck", "--repair-from", f)
    assert r.code == 0 and r.out.splitlines()[0].endswith(": 0 damaged objects replaced"), r
    # a missing file exits 1, after the check
    r = udr("fsck", "--repair-from", tmp_path / "nope")
    assert r.code == 1 and "nope" in r.stderr, r


@pytest.mark.parametrize("verify", [False, True])
def test_get_into_a_fifo_keeps_the_fifo(udr, tmp_path, verify):
    # `get -o` renames a temp file over a regular output file; a special file
    # (a FIFO here, /dev/null in the bug that led to this test) must be
    # written in place, never replaced by a regular file.
    import stat
    import threading
    data = os.urandom(300_000)
    h = udr.put(data)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    args = ["get", h, "-o", str(fifo)] + (["--verify"] if verify else [])
    r = udr(*args)
    reader.join(timeout=30)
    assert r.code == 0, r
    assert got and got[0] == data
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pipe")) == ["pipe"]


def test_fsck_never_indexes_a_pack_a_repack_is_removing(udr):
    """A repack removes a merged pack's index, then its bytes, under
    packs/lock.  fsck finding a pack without its index in that window
    rebuilds the index only under the same lock, once it has checked that
    the pack is still there: never an index outliving its pack (objects
    listed but missing).  The repack's window is played by this test."""
    import fcntl
    import time
    h = udr.put(b"packed content " * 100)
    (where, pack, *_), = udr.locate(h)
    assert where == "pack"
    idx = pack.with_suffix(".idx")
    lock = open(udr.root / "chunks" / "packs" / "lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # the "repack" has merged the pack elsewhere and removed its index
        keep = pack.read_bytes()
        idx.unlink()
        fsck = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "fsck"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert fsck.poll() is None, "fsck waits for packs/lock before writing an index"
        assert not idx.exists()
        pack.unlink()  # ... and then its bytes
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    out, err = fsck.communicate(timeout=60)
    assert not idx.exists(), "an index without its pack was written"
    # (the content is gone with its only pack: this test removed it; a real
    # repack copied it first, so put it back and check fsck is clean)
    pack.write_bytes(keep)
    assert udr("fsck").code == 0
    assert idx.exists()
    assert udr.ok("get", h).stdout == b"packed content " * 100


# ---- the multi-pack index (FORMAT.md "Multi-pack index") ----

@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_MIDX_THRESHOLD needs -DUDR_FAULT_INJECTION=ON")
def test_stats_and_fsck_multi_pack_index(udr):
    def st():
        return json.loads(udr.ok("stats", "--json").out)
    assert st()["midx"] == "none"
    assert "multi-pack index:   none" in udr.ok("stats").out
    env = {"UDR_MIDX_THRESHOLD": "1"}
    hs = []
    for i in range(3):
        r = udr("put", "-", input=data_of(3000 + i, seed=i + 1), env=env)
        assert r.code == 0, r
        hs.append(r.out.strip())
    s = st()
    assert s["midx"] == "present", s
    assert s["midx_packs"] == s["packs"] and s["midx_objects"] == 3, s
    assert s["midx_bytes"] == 1080 + 32 * s["packs"] + 52 * 3
    assert "multi-pack index:   %d of %d pack" % (s["packs"], s["packs"]) in udr.ok("stats").out
    midx = udr.root / "chunks" / "packs" / "multi-pack-index"
    good = midx.read_bytes()
    bad = bytearray(good)
    bad[16] ^= 1  # its entry count: the structure no longer holds
    midx.write_bytes(bytes(bad))
    assert st()["midx"] == "damaged"
    assert "damaged, ignored" in udr.ok("stats").out
    for i, h in enumerate(hs):
        assert udr.ok("get", h).stdout == data_of(3000 + i, seed=i + 1)
    r = udr("fsck")
    assert r.code == 4 and "multi-pack index" in r.out + r.stderr, r
    assert udr("fsck").code == 0
    assert midx.read_bytes() == good  # rebuilt: the same bytes
    assert st()["midx"] == "present"


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_ORPHAN_PACK_AGE needs -DUDR_FAULT_INJECTION=ON")
def test_pack_without_index_is_read_once_old_enough(udr, tmp_path):
    """A pack whose index is missing (a writer killed between the two links,
    or the index lost): invisible while it may still be being published,
    then indexed in memory from its own checked bytes and read; fsck writes
    its index.  Damaged as well, it is never read: never wrong bytes."""
    data = data_of(5000, seed=7)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    (where, pack, *_), = udr.locate(h)
    assert where == "pack"
    idx = pack.with_suffix(".idx")
    idx.unlink()
    old = {"UDR_ORPHAN_PACK_AGE": "0"}
    # young: taken for a pack being published, so not there yet
    r = udr("get", h)
    assert r.code != 0 and r.stdout == b"", r
    # old enough: read, verified, from the pack's own bytes
    assert udr.ok("get", h, env=old).stdout == data
    assert udr.ok("exists", h, env=old).code == 0
    assert json.loads(udr.ok("show", "t", env=old).out)["chunks"] == [h]
    # fsck writes the index back; then every reader sees it as before
    assert udr("fsck").code == 0
    assert idx.exists()
    assert udr.ok("get", h).stdout == data
    # the pack damaged and its index missing: never read, never wrong bytes
    idx.unlink()
    b = bytearray(pack.read_bytes())
    b[len(b) // 2] ^= 0xFF
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(b))
    r = udr("get", h, env=old)
    assert r.code in (1, 4) and r.stdout == b"", r
    assert udr("fsck", env=old).code == 4
    assert not idx.exists()  # a damaged pack is never indexed anew


def test_store_option_at_a_part_of_a_store_is_a_usage_error(udr):
    """--store DIR/chunks (or DIR/catalog) said "corrupt config", exit 4,
    on a healthy store (a helper's review)."""
    for part in ("chunks", "catalog"):
        r = run_udr("--store", udr.root / part, "log")
        assert r.code == 2 and "give the store's root" in r.stderr, r
    assert udr("fsck").code == 0
