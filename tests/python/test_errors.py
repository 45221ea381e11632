"""Every libudr error code maps to its exception; wrong types raise TypeError."""

import os

import pytest

import udr
from conftest import damage_object

MISSING = "0" * 64


def test_hierarchy():
    assert issubclass(udr.Error, Exception)
    assert issubclass(udr.NotFoundError, udr.Error) and issubclass(udr.NotFoundError, KeyError)
    assert issubclass(udr.InvalidArgumentError, udr.Error)
    assert issubclass(udr.InvalidArgumentError, ValueError)
    assert issubclass(udr.IOError, udr.Error) and issubclass(udr.IOError, OSError)
    assert issubclass(udr.ConflictError, udr.Error)
    assert issubclass(udr.IntegrityError, udr.Error)
    assert issubclass(udr.LockedError, udr.Error)
    assert udr.IOError is not OSError


def test_expired_error_class():
    # GC.md 1.5: a DatabaseError, deliberately not "no such version".
    assert issubclass(udr.ExpiredError, udr.DatabaseError)
    assert issubclass(udr.ExpiredError, udr.Error)
    assert not issubclass(udr.ExpiredError, udr.NotFoundError)
    assert not issubclass(udr.ExpiredError, KeyError)
    assert not issubclass(udr.ExpiredError, udr.ConflictError)
    for a in ("table", "version", "expired_seq", "expired_at", "swept", "swept_at"):
        assert getattr(udr.ExpiredError, a) is None
    e = udr.ExpiredError("t@3 expired by retention")
    assert e.table is None and str(e) == "t@3 expired by retention"


def test_not_found_chunk(store):
    with pytest.raises(udr.NotFoundError) as ei:
        store.get(MISSING)
    # The library's message, printed plainly (no KeyError repr-quoting).
    assert str(ei.value) == "chunk %s not found" % MISSING
    assert ei.value.code == -3
    with pytest.raises(KeyError):
        store.get_verified(MISSING)
    with pytest.raises(udr.NotFoundError):
        store.size(MISSING)
    assert store.exists(MISSING) is False
    assert MISSING not in store


def test_not_found_get_file_and_missing_input(store, tmp_path):
    with pytest.raises(udr.NotFoundError):
        store.get_file(MISSING, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(udr.NotFoundError, match="nonexistent"):
        store.put_file(str(tmp_path / "nonexistent"))


def test_not_found_open_without_create(tmp_path):
    with pytest.raises(udr.NotFoundError):
        udr.ChunkStore(str(tmp_path / "nope"), create=False)
    with pytest.raises(udr.NotFoundError):
        udr.Catalog(str(tmp_path / "nope"), create=False)
    with pytest.raises(udr.NotFoundError):
        udr.open(str(tmp_path / "nope"), create=False)


def test_not_found_tables_and_versions(catalog, store):
    h = store.put(b"v")
    with pytest.raises(udr.NotFoundError, match="users"):
        catalog.get_version("users")
    with pytest.raises(udr.NotFoundError):
        catalog.list_versions("users")
    with pytest.raises(udr.NotFoundError):
        catalog.latest("users")
    catalog.commit(udr.TableVersion("users", 1, [h]))
    with pytest.raises(udr.NotFoundError) as ei:
        catalog.get_version("users", 7)
    assert "7" in str(ei.value)
    assert not str(ei.value).startswith("'")


def test_commit_missing_chunk_with_store(catalog):
    with pytest.raises(udr.NotFoundError, match="1" * 64):
        catalog.commit(udr.TableVersion("t", 1, ["1" * 64]))
    with pytest.raises(udr.NotFoundError):
        catalog.list_versions("t")  # nothing committed


def test_commit_missing_chunk_without_store_cannot_check(tmp_path):
    cat = udr.Catalog(str(tmp_path / "cat"))
    assert cat.store is None
    cat.commit(udr.TableVersion("t", 1, ["1" * 64]))
    assert cat.list_versions("t") == [1]


def test_conflict_states_expected_number(catalog, store):
    h = store.put(b"c")
    with pytest.raises(udr.ConflictError, match="expected version 1"):
        catalog.commit(udr.TableVersion("t", 2, [h]))
    catalog.commit(udr.TableVersion("t", 1, [h]))
    for wrong in (1, 3, 10):
        with pytest.raises(udr.ConflictError) as ei:
            catalog.commit(udr.TableVersion("t", wrong, [h]))
        assert "expected version 2" in str(ei.value)
        assert ei.value.code == -4
    assert catalog.list_versions("t") == [1]


@pytest.mark.parametrize("bad", ["", "zz", "0" * 63, "0" * 65, "g" * 64, "0" * 63 + "\0",
                                 " " + "0" * 63, "é" * 64])
def test_bad_hashes(store, bad):
    for call in (store.get, store.get_verified, store.exists, store.size):
        with pytest.raises(udr.InvalidArgumentError):
            call(bad)
    with pytest.raises(ValueError):
        udr.TableVersion("t", 1, [bad])


def test_uppercase_hash_accepted_lowercase_returned(store):
    h = store.put(b"case")
    assert store.get(h.upper()) == b"case"
    assert udr.TableVersion("t", 1, [h.upper()]).chunk_hashes == [h]


@pytest.mark.parametrize("bad", ["", "bad name", ".hidden", "-dash", "a/b", "x" * 129, "tab\tle",
                                 "nul\0", "ünicode"])
def test_bad_table_names(catalog, bad):
    with pytest.raises(udr.InvalidArgumentError):
        udr.TableVersion(bad, 1, [])
    with pytest.raises(udr.InvalidArgumentError):
        catalog.get_version(bad)
    with pytest.raises(ValueError):
        catalog.list_versions(bad)
    with pytest.raises(ValueError):
        catalog.latest(bad)


def test_good_table_name_limits():
    assert udr.TableVersion("x" * 128, 1, []).table_name == "x" * 128
    assert udr.TableVersion("a.b-c_D9", 1, []).table_name == "a.b-c_D9"


def test_bad_version_numbers(catalog, store):
    h = store.put(b"n")
    with pytest.raises(udr.InvalidArgumentError):
        udr.TableVersion("t", -1, [h])
    with pytest.raises(udr.InvalidArgumentError):
        udr.TableVersion("t", 2**64, [h])
    with pytest.raises(udr.InvalidArgumentError, match="version"):
        catalog.commit(udr.TableVersion("t", 0, [h]))  # 0 only for commit_next
    catalog.commit(udr.TableVersion("t", 1, [h]))
    for bad in (0, -5):
        with pytest.raises(udr.InvalidArgumentError):
            catalog.get_version("t", bad)


def test_bad_metadata():
    with pytest.raises(udr.InvalidArgumentError):
        udr.TableVersion("t", 1, [], metadata={"": "empty key"})
    with pytest.raises(udr.InvalidArgumentError):
        udr.TableVersion("t", 1, [], message="nul\0inside")


def test_integrity_error_on_corrupt_chunk(store, tmp_path):
    h = store.put(os.urandom(5000))  # incompressible: stored as is
    where = damage_object(store, h, "flip")
    with pytest.raises(udr.IntegrityError, match=h) as ei:
        store.get_verified(h)
    assert ei.value.code == -5
    out = tmp_path / "out.bin"
    with pytest.raises(udr.IntegrityError):
        store.get_file(h, str(out))
    assert not out.exists()
    with pytest.raises(udr.IntegrityError, match=h):
        store.get(h)  # verifies too
    if where == "pack":
        # a packed entry's CRC is checked on every read, verified or not
        with pytest.raises(udr.IntegrityError, match="CRC"):
            store.get_file(h, str(out), verify=False)
        assert not out.exists()
    else:
        store.get_file(h, str(out), verify=False)  # the explicit opt-out writes the bytes
        assert out.exists()


def test_io_errors(tmp_path, store):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(udr.IOError) as ei:
        udr.ChunkStore(str(tmp_path / "afile"))
    assert isinstance(ei.value, OSError) and ei.value.code == -6
    assert "afile" in str(ei.value)
    h = store.put(b"io")
    with pytest.raises(OSError):
        store.get_file(h, str(tmp_path / "no" / "such" / "dir" / "out"))


def test_closed_objects_raise(tmp_path):
    s = udr.ChunkStore(str(tmp_path / "s"))
    h = s.put(b"x")
    s.close()
    s.close()  # idempotent
    assert s.closed
    with pytest.raises(udr.Error, match="closed"):
        s.get(h)
    c = udr.Catalog(str(tmp_path / "c"))
    c.close()
    with pytest.raises(udr.Error, match="closed"):
        c.list_tables()


@pytest.mark.parametrize("bad", [None, 1, 1.5, ["x"], object()])
def test_type_errors_hash_args(store, bad):
    for call in (store.get, store.get_verified, store.exists, store.size):
        with pytest.raises(TypeError):
            call(bad)
    with pytest.raises(TypeError):
        store.get_file(bad, "/tmp/x")
    with pytest.raises(TypeError):
        udr.TableVersion("t", 1, [bad])


def test_type_errors_misc(store, catalog, tmp_path):
    with pytest.raises(TypeError):
        store.put("a str is not bytes")
    with pytest.raises(TypeError):
        store.put(12)
    with pytest.raises(TypeError):
        store.put(None)
    with pytest.raises(TypeError):
        store.put_file(12.5)
    with pytest.raises(TypeError):
        store.put()
    with pytest.raises(TypeError):
        udr.ChunkStore(None)
    with pytest.raises(TypeError):
        udr.Catalog(str(tmp_path / "c2"), store="not a store")
    with pytest.raises(TypeError):
        udr.TableVersion(b"users", 1, [])
    with pytest.raises(TypeError):
        udr.TableVersion("users", "1", [])
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1.0, [])
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1, "0" * 64)  # a str is not a list of hashes
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1, 5)
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1, [], message=5)
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1, [], metadata={"k": 1})
    with pytest.raises(TypeError):
        udr.TableVersion("users", 1, [], metadata=[("k", "v")])
    with pytest.raises(TypeError):
        catalog.commit("users")
    with pytest.raises(TypeError):
        catalog.commit_next(None)
    with pytest.raises(TypeError):
        catalog.get_version(1)
    with pytest.raises(TypeError):
        catalog.get_version("t", "1")
    with pytest.raises(TypeError):
        catalog.list_versions(None)
    with pytest.raises(TypeError):
        udr.hash("str")


def test_non_contiguous_buffer_rejected(store):
    mv = memoryview(bytearray(b"abcdef"))[::2]
    with pytest.raises((TypeError, BufferError)):
        store.put(mv)
