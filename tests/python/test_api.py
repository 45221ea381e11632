"""TableVersion fields, equality and repr; Database and context managers;
docstrings and type stubs."""

import ast
import datetime
import gc
import inspect
import os
import weakref

import pytest

import udr


def test_version_fields_before_and_after_commit(catalog, store):
    h1, h2 = store.put(b"one"), store.put(b"two")
    v = udr.TableVersion("users", 1, [h1, h2], message="init", metadata={"b": "2", "a": "1"})
    assert v.table_name == "users" and v.version == 1
    assert v.chunk_hashes == [h1, h2] and len(v) == 2
    assert v.message == "init"
    assert v.metadata == {"a": "1", "b": "2"}
    assert v.created_at is None and v.parent_version is None and v.commit_seq is None
    before = datetime.datetime.now(datetime.timezone.utc)
    catalog.commit(v)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert isinstance(v.created_at, datetime.datetime)
    assert v.created_at.tzinfo is not None
    assert v.created_at.utcoffset() == datetime.timedelta(0)
    slack = datetime.timedelta(seconds=2)
    assert before - slack <= v.created_at <= after + slack
    assert v.created_ms == int(v.created_at.timestamp() * 1000 + 0.5) or abs(
        v.created_ms - v.created_at.timestamp() * 1000) < 1
    assert v.parent_version is None and v.commit_seq == 1
    v2 = udr.TableVersion("users", 2, [h2])
    catalog.commit(v2)
    assert v2.parent_version == 1 and v2.commit_seq == 2
    got = catalog.get_version("users", 1)
    assert got == v and not (got != v)
    assert got.metadata == {"a": "1", "b": "2"} and got.message == "init"
    assert catalog.get_version("users") == v2 != v
    assert catalog.latest("users") == 2 and catalog.head() == 2


def test_version_lists_are_copies():
    h = "ab" * 32
    v = udr.TableVersion("t", 1, [h], metadata={"k": "v"})
    v.chunk_hashes.append("x")
    v.metadata["z"] = "q"
    assert v.chunk_hashes == [h] and v.metadata == {"k": "v"}
    with pytest.raises(AttributeError):
        v.version = 5


def test_version_equality():
    h = "ab" * 32
    a = udr.TableVersion("t", 1, [h], message="m", metadata={"k": "v"})
    assert a == udr.TableVersion("t", 1, (x for x in [h]), message="m", metadata={"k": "v"})
    assert a != udr.TableVersion("t", 2, [h], message="m", metadata={"k": "v"})
    assert a != udr.TableVersion("u", 1, [h], message="m", metadata={"k": "v"})
    assert a != udr.TableVersion("t", 1, [h, h], message="m", metadata={"k": "v"})
    assert a != udr.TableVersion("t", 1, [h], message=None, metadata={"k": "v"})
    assert a != udr.TableVersion("t", 1, [h], message="m", metadata={"k": "w"})
    assert a != udr.TableVersion("t", 1, [h], message="m")
    assert a != "t"
    with pytest.raises(TypeError):
        hash(a)


def test_version_repr(catalog, store):
    h = store.put(b"r")
    v = udr.TableVersion("users", 1, [h], message="hi")
    r = repr(v)
    assert r.startswith("TableVersion(") and "'users'" in r and "version=1" in r
    assert "chunks=1" in r and "'hi'" in r and "created_at=None" in r
    catalog.commit(v)
    assert str(v.created_at.year) in repr(v)


def test_commit_next_assigns_and_updates(catalog, store):
    h = store.put(b"n")
    v = udr.TableVersion("t", 0, [h])
    assert catalog.commit_next(v) == 1 and v.version == 1
    w = udr.TableVersion("t", 99, [h])  # the number given is replaced
    assert catalog.commit_next(w) == 2 and w.version == 2 and w.parent_version == 1
    assert catalog.list_versions("t") == [1, 2]


def test_list_versions_ascending_and_tables_sorted(catalog, store):
    h = store.put(b"l")
    for name in ("zeta", "alpha", "Mid"):
        for i in range(1, 13):
            catalog.commit(udr.TableVersion(name, i, [h]))
    assert catalog.list_versions("alpha") == list(range(1, 13))
    assert catalog.list_tables() == ["Mid", "alpha", "zeta"]


def test_streaming_and_bytes_like(store, tmp_path):
    src = tmp_path / "in.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)
    h = store.put_file(src)  # os.PathLike accepted
    assert h == store.put(payload) == udr.hash(payload) == udr.hash_file(str(src))
    assert store.size(h) == len(payload)
    store.get_file(h, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == payload
    store.get_file(h, str(tmp_path / "out2.bin"), verify=False)
    assert (tmp_path / "out2.bin").read_bytes() == payload
    with open(src, "rb") as f:
        assert store.put_fd(f) == h
    with open(tmp_path / "out3.bin", "wb") as f:
        store.get_fd(h, f.fileno())
    assert (tmp_path / "out3.bin").read_bytes() == payload
    assert store.put(bytearray(payload)) == h
    assert store.put(memoryview(payload)) == h
    big = bytearray(b"xx" + payload + b"yy")
    assert store.put(memoryview(big)[2:-2]) == h  # a slice, no copy
    assert h in store.hashes()
    assert store.put(b"") == udr.hash(b"") and store.get(udr.hash(b"")) == b""


def test_database_and_context_manager(tmp_path):
    root = tmp_path / "root"
    with udr.open(str(root)) as db:
        assert isinstance(db, udr.Database) and not db.closed
        assert db.path == str(root)
        assert db.store is db.store and db.catalog is db.catalog
        assert isinstance(db.store, udr.ChunkStore) and isinstance(db.catalog, udr.Catalog)
        assert db.catalog.store is db.store
        h = db.store.put(b"db data")
        db.catalog.commit(udr.TableVersion("t", 1, [h]))
        with pytest.raises(udr.NotFoundError):  # the db's catalog checks chunks
            db.catalog.commit(udr.TableVersion("t", 2, ["2" * 64]))
        store, catalog = db.store, db.catalog
    assert db.closed and store.closed and catalog.closed
    with pytest.raises(udr.Error, match="closed"):
        store.get(h)
    with pytest.raises(udr.Error, match="closed"):
        catalog.list_tables()
    with pytest.raises(udr.Error):
        db.store
    db.close()  # idempotent
    with udr.open(root, create=False) as db2:  # reopen, PathLike
        assert db2.store.get(h) == b"db data"
        assert db2.catalog.list_versions("t") == [1]


def test_context_manager_closes_on_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with udr.ChunkStore(str(tmp_path / "s")) as s:
            raise RuntimeError("boom")
    assert s.closed
    with udr.Catalog(str(tmp_path / "c")) as c:
        pass
    assert c.closed


def test_store_outlives_database_object(tmp_path):
    db = udr.open(str(tmp_path / "r"))
    store = db.store
    ref = weakref.ref(db)
    del db
    gc.collect()
    assert ref() is not None  # kept alive by store
    assert store.get(store.put(b"alive")) == b"alive"
    del store
    gc.collect()
    assert ref() is None  # the store/db cycle is collected


def test_catalog_keeps_store_open(tmp_path):
    s = udr.ChunkStore(str(tmp_path / "s"))
    c = udr.Catalog(str(tmp_path / "c"), store=s)
    h = s.put(b"pinned")
    s.close()  # the catalog still needs the handle
    assert s.closed
    with pytest.raises(udr.Error):
        s.get(h)
    c.commit(udr.TableVersion("t", 1, [h]))
    with pytest.raises(udr.NotFoundError):
        c.commit(udr.TableVersion("t", 2, ["3" * 64]))
    c.close()


def test_reprs(tmp_path):
    s = udr.ChunkStore(str(tmp_path / "s"))
    assert "ChunkStore" in repr(s) and "s'" in repr(s)
    c = udr.Catalog(str(tmp_path / "c"), s)
    assert "Catalog" in repr(c)
    s.close()
    assert "closed" in repr(s)
    db = udr.open(str(tmp_path / "d"))
    assert "Database" in repr(db)


PUBLIC = [udr.ChunkStore, udr.Catalog, udr.TableVersion, udr.Database, udr.Transaction,
          udr.Subscription] + ([udr.Result] if udr.HAVE_QUERY else [])


def test_docstrings_everywhere():
    for fn in (udr.open, udr.hash, udr.hash_file):
        assert fn.__doc__ and len(fn.__doc__) > 20
    for cls in PUBLIC + [udr.Error, udr.NotFoundError, udr.ConflictError, udr.IntegrityError,
                         udr.InvalidArgumentError, udr.IOError, udr.LockedError]:
        assert cls.__doc__ and len(cls.__doc__) > 20, cls
    for cls in PUBLIC:
        for name, member in vars(cls).items():
            if name.startswith("_") and name not in ("__enter__", "__exit__"):
                continue
            assert member.__doc__, "%s.%s has no docstring" % (cls.__name__, name)


def _stub():
    here = os.path.dirname(udr.__file__)
    path = os.path.join(here, "__init__.pyi")
    assert os.path.exists(path), "the stub must be installed next to the package"
    assert os.path.exists(os.path.join(here, "py.typed"))
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read())


def test_stub_matches_module():
    tree = _stub()
    top = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            top[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            top[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                top[t.id] = node
    for name in udr.__all__:
        assert name in top, "%s missing from the stub" % name
    for cls in PUBLIC:
        node = top[cls.__name__]
        stub_names = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        for name in vars(cls):
            if not name.startswith("_") or name in ("__enter__", "__exit__"):
                assert name in stub_names, "%s.%s missing from the stub" % (cls.__name__, name)
        for name in stub_names:
            assert hasattr(cls, name), "stub has %s.%s, the module not" % (cls.__name__, name)


def test_signatures_documented():
    # Each builtin method documents its call signature in its first line.
    assert udr.ChunkStore.get_file.__doc__.startswith("get_file(hash, path, verify=True)")
    assert udr.Catalog.get_version.__doc__.startswith("get_version(table, version=None)")
    assert inspect.getdoc(udr.TableVersion).startswith("TableVersion(table_name, version")
