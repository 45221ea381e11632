"""Type stubs of udr, the Python bindings of libudr (implemented in udr._udr)."""

import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, NamedTuple, Optional, Union, overload

from typing_extensions import Self, final

try:
    from collections.abc import Buffer as _Buffer  # Python >= 3.12
except ImportError:  # pragma: no cover
    _Buffer = Any  # type: ignore[misc,assignment]

StrPath = Union[str, "os.PathLike[str]", bytes, "os.PathLike[bytes]"]
_FileDescriptorLike = Union[int, Any]

__version__: str
HASH_HEXSIZE: int
TABLE_NAME_MAX: int
HAVE_QUERY: bool
"""True when built with the DuckDB query module (Database.sql and friends)."""

# A version reference: a number, a string ('latest', '3', 'commit:12',
# '2026-11-01T12:00:00Z', '2026-11-01T13:00:00+01:00', '2026-11-01': the end
# of that day, UTC), a timezone-aware datetime, or a date (the end of it).
_Ref = Union[int, str, datetime.datetime, datetime.date]
_Value = Any  # None | bool | int | float | str | bytes | Decimal | date | datetime | time | UUID

class Warning(Exception):
    """PEP 249 Warning (not raised today)."""

class Error(Exception):
    """Base class of every error raised by libudr (PEP 249's Error)."""

    code: int

class InterfaceError(Error):
    """PEP 249: misuse of the DB-API (closed cursor/connection, no result set)."""

class DatabaseError(Error):
    """PEP 249: base of the errors of the database."""

class DataError(DatabaseError): ...
class OperationalError(DatabaseError): ...
class InternalError(DatabaseError): ...

class ProgrammingError(DatabaseError):
    """PEP 249: SQL errors, unknown tables or versions, bad arguments."""

class NotSupportedError(DatabaseError):
    """PEP 249: unsupported (writing UDR tables through SQL, named parameters)."""

class NotFoundError(ProgrammingError, KeyError):
    """A chunk, table, version or store does not exist."""

class ConflictError(OperationalError):
    """The version number is not latest + 1; the message states the expected one."""

class MergeConflictError(ConflictError):
    """A merge found tables changed on both sides and wrote nothing."""

    conflicts: list[dict[str, Any]]
    result: dict[str, Any]

class IntegrityError(DatabaseError):
    """Stored data or metadata is damaged (also PEP 249's IntegrityError)."""

class InvalidArgumentError(ProgrammingError, ValueError):
    """Bad hash, table name, version number, SQL ..."""

class IOError(OperationalError, OSError):
    """An operating-system I/O error."""

class LockedError(OperationalError):
    """A lock could not be taken without waiting."""

class ExpiredError(DatabaseError):
    """The version read expired by retention (not a NotFoundError)."""

    table: str | None
    version: int | None
    expired_seq: int | None
    expired_at: datetime.datetime | None
    swept: bool | None
    swept_at: datetime.datetime | None

# ---- PEP 249 (DB-API 2.0), read-only: udr.connect ----

apilevel: str  # "2.0"
threadsafety: int  # 1: share the module, not connections
paramstyle: str  # "qmark" ($1 numbered placeholders work too)

class _TypeSet(frozenset[str]):
    def __eq__(self, other: object) -> bool: ...

STRING: _TypeSet
BINARY: _TypeSet
NUMBER: _TypeSet
DATETIME: _TypeSet
ROWID: _TypeSet
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes

def DateFromTicks(ticks: float) -> datetime.date: ...
def TimeFromTicks(ticks: float) -> datetime.time: ...
def TimestampFromTicks(ticks: float) -> datetime.datetime: ...

_Description = tuple[str, str, None, None, Optional[int], Optional[int], None]

class Cursor:
    """A PEP 249 cursor: type_code in description is DuckDB's type name."""

    arraysize: int
    description: Optional[list[_Description]]
    rowcount: int
    lastrowid: None
    @property
    def connection(self) -> Connection: ...
    @property
    def closed(self) -> bool: ...
    def execute(self, operation: str, parameters: Optional[Sequence[Any]] = None) -> Self: ...
    def executemany(self, operation: str, seq_of_parameters: Iterable[Sequence[Any]]) -> Self: ...
    def fetchone(self) -> Optional[tuple[_Value, ...]]: ...
    def fetchmany(self, size: Optional[int] = None) -> list[tuple[_Value, ...]]: ...
    def fetchall(self) -> list[tuple[_Value, ...]]: ...
    def close(self) -> None: ...
    def setinputsizes(self, sizes: Any) -> None: ...
    def setoutputsize(self, size: Any, column: Optional[int] = None) -> None: ...
    def __iter__(self) -> Iterator[tuple[_Value, ...]]: ...
    def __next__(self) -> tuple[_Value, ...]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> bool: ...

class Connection:
    """A PEP 249 connection: read-only snapshot transactions over udr SQL.

    A query of an open transaction reads each bare table name at the
    snapshot; a table made after it raises NotFoundError.  CREATE [TEMP]
    TABLE/VIEW (or ALTER ... RENAME TO) with a UDR table's name, of any
    branch, raises NotSupportedError: the scratch table would hide the UDR
    table from the Database's session."""

    @property
    def database(self) -> Database: ...
    @property
    def closed(self) -> bool: ...
    @property
    def snapshot(self) -> Optional[int]:
        """The commit seq the open transaction reads (None: none open)."""
    @property
    def in_transaction(self) -> bool: ...
    def cursor(self) -> Cursor: ...
    def execute(self, operation: str, parameters: Optional[Sequence[Any]] = None) -> Cursor: ...
    def commit(self) -> None:
        """End the read transaction (nothing to write)."""
    def rollback(self) -> None:
        """End the read transaction (nothing to undo)."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> bool: ...

def connect(database: Union[StrPath, Database], *, create: bool = False) -> Connection:
    """A DB-API 2.0 connection to a store root (or over an open Database)."""

def hash(data: _Buffer, /) -> str:
    """BLAKE3-256 of a bytes-like object as 64 lowercase hex digits (as b3sum)."""

def hash_file(path: StrPath, /) -> str:
    """BLAKE3-256 of a file's content, streaming."""

def open(path: StrPath, create: bool = True) -> Database:
    """Open (creating when missing unless create is False) a store root."""

@final
class ChunkStore:
    """The content-addressed chunk store in a directory."""

    def __init__(self, path: StrPath, create: bool = True) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def put(self, data: _Buffer, /) -> str:
        """Store bytes (any C-contiguous buffer, not copied); return the hash.
        Damaged stored objects of this content are replaced."""
    def get(self, hash: str, /) -> bytes:
        """The bytes of a chunk, verified; IntegrityError on damage."""
    def get_verified(self, hash: str, /) -> bytes:
        """The same as get() (which verifies too)."""
    def exists(self, hash: str, /) -> bool:
        """Whether a chunk is stored."""
    def __contains__(self, hash: object, /) -> bool:
        """False for anything that is not a stored chunk's hash (bad hex too)."""
    def size(self, hash: str, /) -> int:
        """The size of a chunk in bytes."""
    def put_file(self, path: StrPath, /) -> str:
        """Store a file's content, streaming; return the hash."""
    def get_file(self, hash: str, path: StrPath, verify: bool = True) -> None:
        """Write a chunk to a file atomically, streaming, verified unless verify=False."""
    def put_fd(self, fd: _FileDescriptorLike, /) -> str:
        """Store everything readable from a file descriptor, streaming."""
    def get_fd(self, hash: str, fd: _FileDescriptorLike, verify: bool = True) -> None:
        """Write a chunk into a file descriptor, streaming, verified unless verify=False."""
    def hashes(self) -> list[str]:
        """The hashes of all stored chunks, sorted."""
    def close(self) -> None:
        """Close the store (idempotent)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

PyChunkStore = ChunkStore

@final
class TableVersion:
    """One version of a table: ordered chunk hashes plus metadata."""

    def __init__(
        self,
        table_name: str,
        version: int,
        chunk_hashes: Iterable[str] = ...,
        message: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> None: ...
    @property
    def table_name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def chunk_hashes(self) -> list[str]: ...
    @property
    def created_at(self) -> Optional[datetime.datetime]:
        """UTC creation time; None until committed."""
    @property
    def created_ms(self) -> Optional[int]: ...
    @property
    def parent_version(self) -> Optional[int]: ...
    @property
    def commit_seq(self) -> Optional[int]: ...
    @property
    def message(self) -> Optional[str]: ...
    @property
    def metadata(self) -> dict[str, str]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    __hash__: None  # type: ignore[assignment]

PyTableVersion = TableVersion

class Event(NamedTuple):
    """One commit of the changelog (a struct sequence, tuple-like)."""

    seq: int
    time: datetime.datetime
    time_ms: int
    branch: str
    author: str
    message: Optional[str]
    changes: list[tuple[str, int, int]]
    parent: int

@final
class Transaction:
    """A multi-table snapshot-isolated transaction; a context manager."""

    @property
    def snapshot(self) -> int: ...
    @property
    def state(self) -> Literal["active", "committed", "aborted"]: ...
    @property
    def active(self) -> bool: ...
    @property
    def isolation(self) -> Literal["snapshot", "serializable"]: ...
    @property
    def message(self) -> Optional[str]: ...
    @property
    def seq(self) -> Optional[int]: ...
    def write(
        self,
        table_or_version: Union[str, TableVersion],
        chunks: Optional[Iterable[str]] = None,
        message: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> int:
        """Stage the next version of a table; return its number."""
    def get_version(self, table: str, version: Optional[int] = None) -> TableVersion:
        """A version as the transaction sees it (snapshot + staged writes)."""
    def latest(self, table: str, /) -> int:
        """Latest version number as the transaction sees it (0: none)."""
    def commit(self) -> int:
        """Commit atomically; return the commit seq (0: nothing staged)."""
    def abort(self) -> None:
        """Abandon the transaction (idempotent)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Subscription:
    """Follows the changelog: an iterator of Event, or a callback thread."""

    @property
    def cursor(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def error(self) -> Optional[BaseException]: ...
    def __iter__(self) -> Iterator[Event]: ...
    def __next__(self) -> Event: ...
    def poll(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or None after timeout seconds or when closed."""
    def close(self) -> None:
        """Stop (and join the callback thread); idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Result:
    """A query result, read batch by batch as rows are fetched."""

    @property
    def columns(self) -> list[str]: ...
    @property
    def types(self) -> list[str]: ...
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Optional[tuple[_Value, ...]]:
        """The next row, or None at the end."""
    def fetchmany(self, size: int = 1, /) -> list[tuple[_Value, ...]]:
        """Up to size next rows."""
    def fetchall(self) -> list[tuple[_Value, ...]]:
        """The remaining rows."""
    def to_dicts(self) -> list[dict[str, _Value]]:
        """Every row as a dict."""
    def df(self) -> Any:
        """Every row as a pandas.DataFrame (needs pandas)."""
    def __iter__(self) -> Iterator[tuple[_Value, ...]]: ...
    def __next__(self) -> tuple[_Value, ...]: ...
    def __len__(self) -> int: ...

@final
class Catalog:
    """The versioned table catalog in a directory."""

    def __init__(
        self, path: StrPath, store: Optional[ChunkStore] = None, create: bool = True
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def store(self) -> Optional[ChunkStore]: ...
    @property
    def closed(self) -> bool: ...
    def commit(self, version: TableVersion, /) -> None:
        """Commit version.version (must be latest + 1)."""
    def commit_next(self, version: TableVersion, /) -> int:
        """Commit as latest + 1; return the assigned number."""
    def get_version(self, table: str, version: Optional[int] = None) -> TableVersion:
        """A version of a table (the latest when version is None)."""
    def latest(self, table: str, /) -> int:
        """The latest version number of a table."""
    def list_versions(self, table: str, /) -> list[int]:
        """The version numbers of a table, ascending."""
    def list_tables(self) -> list[str]:
        """The names of all tables, sorted."""
    def head(self) -> int:
        """The last commit sequence number (0 when empty)."""
    def get_version_at(self, table: str, when: datetime.datetime) -> TableVersion:
        """The version current at an aware datetime (naive: InvalidArgumentError)."""
    def get_version_at_seq(self, table: str, seq: int) -> TableVersion:
        """The version current right after commit seq."""
    def seq_at(self, when: datetime.datetime, /) -> int:
        """The last commit seq at or before an aware datetime."""
    def transaction(
        self,
        *,
        isolation: Literal["snapshot", "serializable"] = "snapshot",
        message: Optional[str] = None,
        branch: Optional[str] = None,
    ) -> Transaction:
        """Begin a transaction."""
    def changes(
        self,
        since: Optional[int] = None,
        *,
        since_time: Optional[datetime.datetime] = None,
        tables: Union[str, Iterable[str], None] = None,
        branch: Optional[str] = None,
        limit: Optional[int] = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """The commits of the changelog."""
    def subscribe(
        self,
        since: Optional[int] = None,
        *,
        since_time: Optional[datetime.datetime] = None,
        tables: Union[str, Iterable[str], None] = None,
        branch: Optional[str] = None,
        callback: Optional[Callable[[Event], Any]] = None,
    ) -> Subscription:
        """Follow the changelog (from now unless since/since_time)."""
    def close(self) -> None:
        """Close the catalog (idempotent)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

PyCatalog = Catalog

@final
class Database:
    """An open store root: db.store and db.catalog."""

    def __init__(self, path: StrPath, create: bool = True) -> None: ...
    @property
    def store(self) -> ChunkStore: ...
    @property
    def catalog(self) -> Catalog: ...
    def tables(self, branch: Optional[str] = None) -> list[str]:
        """The tables that exist on branch (main by default), dropped ones left out."""
    def gc(
        self,
        dry_run: bool = False,
        grace: Optional[float] = None,
        threshold: int = 10,
        max_unused: int = 5,
        max_repack: Optional[int] = None,
        keep_last: Optional[int] = None,
        keep_within: Union[str, datetime.timedelta, None] = None,
        keep_hourly: Optional[int] = None,
        keep_daily: Optional[int] = None,
        keep_weekly: Optional[int] = None,
        keep_monthly: Optional[int] = None,
        keep_yearly: Optional[int] = None,
    ) -> dict[str, Any]:
        """Garbage collection (docs/GC.md), after expiring by the keep_ rule if given: the report as a dict."""
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def transaction(
        self,
        *,
        isolation: Literal["snapshot", "serializable"] = "snapshot",
        message: Optional[str] = None,
        branch: Optional[str] = None,
    ) -> Transaction:
        """Begin a transaction (db.catalog.transaction)."""
    def changes(
        self,
        since: Optional[int] = None,
        *,
        since_time: Optional[datetime.datetime] = None,
        tables: Union[str, Iterable[str], None] = None,
        branch: Optional[str] = None,
        limit: Optional[int] = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """The commits of the changelog."""
    def subscribe(
        self,
        since: Optional[int] = None,
        *,
        since_time: Optional[datetime.datetime] = None,
        tables: Union[str, Iterable[str], None] = None,
        branch: Optional[str] = None,
        callback: Optional[Callable[[Event], Any]] = None,
    ) -> Subscription:
        """Follow the changelog (from now unless since/since_time)."""
    def expire(
        self,
        keep_last: Optional[int] = None,
        keep_within: Union[str, datetime.timedelta, None] = None,
        keep_hourly: Optional[int] = None,
        keep_daily: Optional[int] = None,
        keep_weekly: Optional[int] = None,
        keep_monthly: Optional[int] = None,
        keep_yearly: Optional[int] = None,
        table: Optional[str] = None,
        branch: Optional[str] = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Expire what the stored policy, its default replaced by keep_ arguments, does not
        keep (an expire record); dry_run=True: the plan only."""
    def retention(self) -> dict[str, Any]:
        """The stored retention policy ({} when none)."""
    @overload
    def set_retention(self, policy: Optional[dict[str, Any]], message: Optional[str] = None) -> int:
        """Store a retention policy (None or {}: clear it); the retention record's seq."""
    @overload
    def set_retention(
        self,
        *,
        table: Optional[str] = None,
        branch: Optional[str] = None,
        keep_last: Optional[int] = None,
        keep_within: Union[str, datetime.timedelta, None] = None,
        keep_hourly: Optional[int] = None,
        keep_daily: Optional[int] = None,
        keep_weekly: Optional[int] = None,
        keep_monthly: Optional[int] = None,
        keep_yearly: Optional[int] = None,
        message: Optional[str] = None,
    ) -> int:
        """Replace one rule (default, table's, branch's or pair's) of the stored policy."""
    def expired(self, table: Optional[str] = None) -> list[tuple[str, int, int, int, datetime.datetime]]:
        """The expired versions: (table, first, last, expire record seq, its time)."""
    def unexpire(
        self,
        seq: Optional[int] = None,
        table: Optional[str] = None,
        versions: Union[int, tuple[int, int], None] = None,
    ) -> Optional[int]:
        """Undo expire record seq (None: the newest), or restore table's versions; the record's seq."""
    def sql(
        self,
        query: str,
        params: Optional[Sequence[Any]] = None,
        versions: Optional[Mapping[str, _Ref]] = None,
        message: Optional[str] = None,
        branch: Optional[str] = None,
        *,
        read_only: bool = False,
    ) -> Result:
        """Run one SQL statement (query module); read_only refuses what would commit."""
    def read(
        self, table: str, version: Optional[_Ref] = None, branch: Optional[str] = None
    ) -> Result:
        """Every row of a table version."""
    def write(
        self,
        table: str,
        data: Any,
        mode: Literal["overwrite", "append"] = "overwrite",
        *,
        format: Optional[str] = None,
        message: Optional[str] = None,
        branch: Optional[str] = None,
    ) -> int:
        """Import a file, rows, columns or a DataFrame as the next version.

        In-memory data (udr._data): None, pandas.NaT/NA and numpy NaT are
        NULL; a column with no other value is VARCHAR (a DataFrame's: its
        dtype's type); a numpy array in a cell is a list.  A dict of
        columns maps names to sequences (a str, bytes, dict or set: TypeError).
        A DataFrame's unnamed index is dropped (row labels), a named index
        (all MultiIndex levels named) kept as the first columns, a
        MultiIndex with an unnamed level refused (ValueError).  An append declares a column's ints past 2**53
        as BIGINT (beside floats a DECIMAL), so a DOUBLE column refuses them."""
    def export(
        self,
        table: str,
        path: StrPath,
        version: Optional[_Ref] = None,
        format: Optional[str] = None,
    ) -> int:
        """Write a table version to a file; return the row count."""
    def diff_rows(
        self, table: str, old: _Ref, new: _Ref, keys: Union[str, Sequence[str]]
    ) -> Result:
        """Row differences between two versions, joined on keys."""
    def branches(self) -> dict[str, int]:
        """Every branch and its head commit."""
    def tags(self) -> dict[str, int]:
        """Every tag and the commit it names."""
    def create_branch(self, name: str, from_: Optional[str] = None) -> int:
        """Create a branch at a ref (default main's head); the record's commit."""
    def delete_branch(self, name: str) -> int:
        """Delete a branch (never main)."""
    def reset_branch(self, name: str, to: str) -> int:
        """Move a branch to the commit a ref names."""
    def tag(self, name: str, ref: Optional[str] = None) -> int:
        """Tag a commit (immutable)."""
    def delete_tag(self, name: str) -> int:
        """Delete a tag."""
    def resolve(self, ref: str) -> int:
        """The commit a ref names."""
    def reflog(self, name: str = "main", limit: int = 0) -> list[dict[str, Any]]:
        """The moves of a branch, newest first."""
    def merge(
        self,
        source: str,
        into: Optional[str] = None,
        strategy: Optional[Literal["ours", "theirs"]] = None,
        tables: Optional[Mapping[str, Literal["ours", "theirs"]]] = None,
        dry_run: bool = False,
        message: Optional[str] = None,
        keys: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
        strictness: Optional[Mapping[str, Literal["row", "cell", "table"]]] = None,
    ) -> dict[str, Any]:
        """Merge a ref into a branch, keyed tables row by row (MergeConflictError
        with conflicts, which are recorded)."""
    def conflicts(self, into: Optional[str] = None) -> list[dict[str, Any]]:
        """The recorded conflicts of the merge into a branch (udr_conflicts)."""
    def resolve_conflict(
        self,
        table: str,
        side: Optional[Literal["ours", "theirs"]] = None,
        key: Any = None,
        sql: Optional[str] = None,
        into: Optional[str] = None,
    ) -> None:
        """Resolve a table (or one row by its key: the value for a one-column
        key, else the dict conflicts() gives or its JSON) of the recorded merge."""
    def merge_continue(self, into: Optional[str] = None) -> dict[str, Any]:
        """Commit the recorded merge (MergeConflictError while conflicts are left)."""
    def merge_abort(self, into: Optional[str] = None) -> None:
        """Discard the recorded merge."""
    def diff(self, a: str, b: str) -> list[dict[str, Any]]:
        """Tables added, removed or changed between two refs."""
    def cherry_pick(
        self,
        commit: Union[int, str],
        branch: Optional[str] = None,
        strategy: Optional[Literal["ours", "theirs"]] = None,
        dry_run: bool = False,
        message: Optional[str] = None,
    ) -> dict[str, Any]:
        """Apply one commit's table changes to a branch (MergeConflictError with conflicts)."""
    def revert(
        self,
        commit: Union[int, str],
        branch: Optional[str] = None,
        strategy: Optional[Literal["ours", "theirs"]] = None,
        dry_run: bool = False,
        message: Optional[str] = None,
    ) -> dict[str, Any]:
        """Undo one commit's table changes on a branch (MergeConflictError with conflicts)."""
    def close(self) -> None:
        """Close the database, its store and catalog (idempotent)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
