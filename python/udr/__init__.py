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
    with udr.connect("./data") as con:                # PEP 249 (DB-API 2.0), read-only
        cur = con.cursor()
        cur.execute("SELECT * FROM users WHERE id = ?", [1])
        print(cur.description, cur.fetchall())
"""

from udr._udr import (  # noqa: F401
    HASH_HEXSIZE,
    HAVE_QUERY,
    TABLE_NAME_MAX,
    Catalog,
    ChunkStore,
    ConflictError,
    Database,
    DatabaseError,
    DataError,
    Error,
    Event,
    ExpiredError,
    IntegrityError,
    InterfaceError,
    InternalError,
    InvalidArgumentError,
    IOError,
    LockedError,
    MergeConflictError,
    NotFoundError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    PyCatalog,
    PyChunkStore,
    PyTableVersion,
    Result,
    Subscription,
    TableVersion,
    Transaction,
    Warning,
    __version__,
    hash,
    hash_file,
    open,
)
from udr.dbapi import (  # noqa: F401
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Connection,
    Cursor,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)

__all__ = [
    "BINARY",
    "Binary",
    "Catalog",
    "ChunkStore",
    "ConflictError",
    "Connection",
    "Cursor",
    "DATETIME",
    "DataError",
    "Database",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "Event",
    "HASH_HEXSIZE",
    "HAVE_QUERY",
    "IOError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "InvalidArgumentError",
    "LockedError",
    "ExpiredError",
    "MergeConflictError",
    "NUMBER",
    "NotFoundError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "PyCatalog",
    "PyChunkStore",
    "PyTableVersion",
    "ROWID",
    "Result",
    "STRING",
    "Subscription",
    "TABLE_NAME_MAX",
    "TableVersion",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Transaction",
    "Warning",
    "apilevel",
    "connect",
    "hash",
    "hash_file",
    "open",
    "paramstyle",
    "threadsafety",
]
