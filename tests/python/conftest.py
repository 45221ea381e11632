"""Shared fixtures of the udr Python binding tests (run by scripts/test-python.sh)."""

import os

import pytest

import udr


def rss_kib(field="VmRSS"):
    """A field of /proc/self/status in KiB (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not found")


@pytest.fixture
def store(tmp_path):
    s = udr.ChunkStore(str(tmp_path / "chunks"))
    yield s
    s.close()


@pytest.fixture
def catalog(tmp_path, store):
    c = udr.Catalog(str(tmp_path / "catalog"), store=store)
    yield c
    c.close()


@pytest.fixture
def db(tmp_path):
    with udr.open(str(tmp_path / "root")) as d:
        yield d


def chunk_file(store_path, hash_hex):
    """The file holding a chunk (the layout is the library's business: search)."""
    for root, _dirs, files in os.walk(store_path):
        for name in files:
            if name.startswith(hash_hex):
                return os.path.join(root, name)
    raise AssertionError("chunk file of %s not found" % hash_hex)


def locate(store, h):
    """The copies of chunk h (ChunkStore._locate, the library's object
    location): (where, file, payload offset, payload length, kind) each,
    where is "loose" or "pack"."""
    out = []
    for line in store._locate(h).splitlines():
        f = line.split()
        if f[0] == "pack":
            # an entry: 48-byte header, payload, 4-byte CRC (FORMAT.md)
            out.append(("pack", f[1], int(f[2]) + 48, int(f[3]) - 52, int(f[4])))
        else:
            out.append(("loose", f[1], 0, os.path.getsize(f[1]), int(f[2])))
    return out


def damage_object(store, h, how):
    """Damage the first copy of h in place: "flip" a byte in the middle of its
    payload, or "truncate" the file holding it where its payload starts."""
    where, path, off, length, _ = locate(store, h)[0]
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        if how == "flip":
            f.seek(off + length // 2)
            b = f.read(1)
            f.seek(off + length // 2)
            f.write(bytes([b[0] ^ 0x01]))
        else:
            f.truncate(off)
    return where


def piece_hashes(store, h):
    """The pieces the manifest of chunked content h lists."""
    where, path, off, length, kind = locate(store, h)[0]
    assert kind == 3
    with open(path, "rb") as f:
        f.seek(off)
        m = f.read(length)
    n = int.from_bytes(m[16:24], "little")
    return [m[64 + 36 * i:96 + 36 * i].hex() for i in range(n)]
