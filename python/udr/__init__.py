"""udr - Python bindings of libudr, the content-addressed versioned data store.

Everything is implemented in the C extension ``udr._udr`` over the public
libudr C API; this package re-exports it (``udr._data`` only turns rows in
memory into a temporary NDJSON file for Database.write).

    import udr
    with udr.open("./data") as db:
        h = db.store.put(b"Hello, World!")
        db.catalog.commit(udr.TableVersion("users", 1, [h]))
        with db.transaction(message="load") as tx:   # commits, or aborts on error
            tx.write("users", [h])
        for event in db.changes(tables=["users"]):
            print(event.seq, event.time, event.changes)
        rows = db.sql("SELECT count(*) FROM users").fetchall()   # query module
"""

from udr._udr import (  # noqa: F401
    HASH_HEXSIZE,
    HAVE_QUERY,
    TABLE_NAME_MAX,
    Catalog,
    ChunkStore,
    ConflictError,
    Database,
    Error,
    Event,
    IntegrityError,
    InvalidArgumentError,
    IOError,
    LockedError,
    NotFoundError,
    PyCatalog,
    PyChunkStore,
    PyTableVersion,
    Result,
    Subscription,
    TableVersion,
    Transaction,
    __version__,
    hash,
    hash_file,
    open,
)

__all__ = [
    "Catalog",
    "ChunkStore",
    "ConflictError",
    "Database",
    "Error",
    "Event",
    "HASH_HEXSIZE",
    "HAVE_QUERY",
    "IOError",
    "IntegrityError",
    "InvalidArgumentError",
    "LockedError",
    "NotFoundError",
    "PyCatalog",
    "PyChunkStore",
    "PyTableVersion",
    "Result",
    "Subscription",
    "TABLE_NAME_MAX",
    "TableVersion",
    "Transaction",
    "hash",
    "hash_file",
    "open",
]
