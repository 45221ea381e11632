"""Damaged chunks: every read verifies, and a put repairs the damage.

Regression tests of "Never wrong data": store.get() returned a damaged raw
object's bytes (or b"" for one truncated to 0 bytes), and putting the same
content again kept the damaged object.
"""

import os

import pytest

import udr
from conftest import damage_object, piece_hashes


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
    where = damage_object(store, h, how)
    assert_reads_fail(store, h, tmp_path)
    # the explicit opt-out still writes a loose raw object's bytes as they
    # are; a packed entry's CRC is checked on every read
    out = tmp_path / "raw.bin"
    if where == "pack":
        with pytest.raises(udr.IntegrityError, match=h):
            store.get_file(h, str(out), verify=False)
    else:
        store.get_file(h, str(out), verify=False)
        assert out.read_bytes() != data


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_get_of_damaged_piece_raises(store, tmp_path, how):
    data = os.urandom(3 << 20)  # chunked into raw pieces
    h = store.put(data)
    ps = piece_hashes(store, h)
    assert len(ps) >= 2
    damage_object(store, ps[len(ps) // 2], how)
    assert_reads_fail(store, h, tmp_path)


@pytest.mark.parametrize("size", [5000, 3 << 20])
def test_reput_repairs_damaged_object(store, tmp_path, size):
    data = os.urandom(size)
    h = store.put(data)
    target = h if size < (1 << 20) else piece_hashes(store, h)[1]
    damage_object(store, target, "flip")
    with pytest.raises(udr.IntegrityError):
        store.get(h)
    assert store.put(data) == h
    assert store.get(h) == data
    damage_object(store, target, "truncate")
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    assert store.put_file(str(f)) == h
    assert store.get(h) == data
    out = tmp_path / "out.bin"
    store.get_file(h, str(out))
    assert out.read_bytes() == data
