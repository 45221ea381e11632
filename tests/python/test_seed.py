"""The seed's API, verbatim, in a temporary working directory."""

import udr


def test_seed_usage_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --- the seed's code, as written -------------------------------------
    store = udr.PyChunkStore("./data/chunks")
    hash_str = store.put(b"Hello, World!")
    data = store.get(hash_str)
    data = store.get_verified(hash_str)
    if store.exists(hash_str):
        pass
    catalog = udr.PyCatalog("./data/catalog")
    version = udr.PyTableVersion("users", 1, [hash_str])
    catalog.commit(version)
    v1 = catalog.get_version("users", 1)
    latest = catalog.get_version("users")
    versions = catalog.list_versions("users")
    tables = catalog.list_tables()
    # ---------------------------------------------------------------------
    assert isinstance(hash_str, str) and len(hash_str) == 64
    assert hash_str == hash_str.lower() and int(hash_str, 16) >= 0
    assert data == b"Hello, World!"
    assert store.exists(hash_str) is True
    assert (tmp_path / "data" / "chunks").is_dir()
    assert (tmp_path / "data" / "catalog").is_dir()
    assert v1 == latest == version
    assert v1.table_name == "users" and v1.version == 1
    assert v1.chunk_hashes == [hash_str]
    assert versions == [1]
    assert tables == ["users"]


def test_seed_names_are_the_pythonic_classes():
    assert udr.PyChunkStore is udr.ChunkStore
    assert udr.PyCatalog is udr.Catalog
    assert udr.PyTableVersion is udr.TableVersion


def test_reopen_sees_committed_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = udr.ChunkStore("./data/chunks")
    h = store.put(b"persist me")
    cat = udr.Catalog("./data/catalog", store=store)
    cat.commit(udr.TableVersion("t", 1, [h], message="first"))
    cat.close()
    store.close()
    store2 = udr.ChunkStore("./data/chunks", create=False)
    cat2 = udr.Catalog("./data/catalog", store2, create=False)
    assert store2.get(h) == b"persist me"
    assert cat2.get_version("t").message == "first"
