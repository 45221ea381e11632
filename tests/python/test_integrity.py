"""Damaged chunks: every read verifies, and a put repairs the damage.

Regression tests of "Never wrong data": store.get() returned a damaged raw
object's bytes (or b"" for one truncated to 0 bytes), and putting the same
content again kept the damaged object.
"""

import os

import pytest

import udr
from conftest import chunk_file


def damage(path, how):
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if how == "flip":
            data[len(data) // 2] ^= 0x01
            f.seek(0)
            f.write(data)
        else:
            f.truncate(0)


def pieces(store, h):
    """Files of the pieces of chunked content h stored alone in its store."""
    out = []
    for root, _dirs, files in os.walk(store.path):
        if os.path.basename(root) == "tmp":
            continue
        out += [os.path.join(root, n) for n in files
                if len(n.split(".")[0]) == 64 and not n.startswith(h)]
    return sorted(out)


def assert_reads_fail(store, h, tmp_path):
    for get in (store.get, store.get_verified):
        with pytest.raises(udr.IntegrityError, match=h):
            get(h)
    out = tmp_path / "out.bin"
    with pytest.raises(udr.IntegrityError, match=h):
        store.get_file(h, str(out))
    assert not out.exists()
    with open(out, "wb") as f:
        with pytest.raises(udr.IntegrityError, match=h):
            store.get_fd(h, f)
    out.unlink()


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_get_of_damaged_raw_object_raises(store, tmp_path, how):
    data = os.urandom(5000)  # incompressible: one raw object
    h = store.put(data)
    damage(chunk_file(store.path, h), how)
    assert_reads_fail(store, h, tmp_path)
    # the explicit opt-out still writes the raw bytes as they are
    out = tmp_path / "raw.bin"
    store.get_file(h, str(out), verify=False)
    assert out.read_bytes() != data


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_get_of_damaged_piece_raises(store, tmp_path, how):
    data = os.urandom(3 << 20)  # chunked into raw pieces
    h = store.put(data)
    ps = pieces(store, h)
    assert len(ps) >= 2
    damage(ps[len(ps) // 2], how)
    assert_reads_fail(store, h, tmp_path)


@pytest.mark.parametrize("size", [5000, 3 << 20])
def test_reput_repairs_damaged_object(store, tmp_path, size):
    data = os.urandom(size)
    h = store.put(data)
    target = chunk_file(store.path, h) if size < (1 << 20) else pieces(store, h)[1]
    damage(target, "flip")
    with pytest.raises(udr.IntegrityError):
        store.get(h)
    assert store.put(data) == h
    assert store.get(h) == data
    damage(target, "truncate")
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    assert store.put_file(str(f)) == h
    assert store.get(h) == data
    out = tmp_path / "out.bin"
    store.get_file(h, str(out))
    assert out.read_bytes() == data
