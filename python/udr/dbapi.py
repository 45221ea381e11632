"""PEP 249 (DB-API 2.0) over udr SQL: ``udr.connect(path)``.

    import udr
    with udr.connect("./data") as con:
        cur = con.cursor()
        cur.execute("SELECT name FROM users WHERE score > ?", [1.0])
        print(cur.description, cur.fetchall())
        con.commit()              # ends the read transaction: the next one sees new commits

A connection is read-only: UDR SQL reads table versions (docs/QUERY.md).
Every statement between two commit()/rollback() calls reads the same
snapshot of the catalog (the head when the transaction's first statement
ran): bare table names in queries (statements starting with SELECT, WITH,
FROM, VALUES, TABLE or a parenthesis) are pinned to the version they had
then, so commits by other connections or processes become visible only
after commit() or rollback().  A table made after the snapshot is not
there for the transaction: a query reading it by its bare name raises
NotFoundError, as it would have at the snapshot (it was read at its
latest version).  Explicit references (``users@3``, ``users@latest``) and
the views udr_log and udr_tables are not pinned.

Writes: a connection does not change UDR tables (INSERT, UPDATE, DELETE,
MERGE, DROP or ALTER naming one, and BEGIN/COMMIT/ROLLBACK statements,
raise NotSupportedError; Database.sql
commits SQL writes, Database.write stores a new version); CREATE TABLE and
the other statements on tables of the connection's own DuckDB session work
on scratch in-memory tables (CREATE TABLE is run as CREATE TEMP TABLE) that
are neither stored nor undone by rollback(), and vanish on close().  A
scratch table or view cannot take the name of a UDR table (of any branch):
in the Database's SQL session it would hide that table from every
statement, Database.sql's included, so CREATE [TEMP] TABLE/VIEW or ALTER
... RENAME TO that name raises NotSupportedError and creates nothing.
"""

import json

import datetime
import re
import time

from udr._udr import (  # noqa: F401
    Database,
    DataError,
    DatabaseError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from udr._udr import open as _open

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID",
    "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks",
    "Binary",
]

apilevel = "2.0"
# Threads may share the module, not connections (use one connection per thread).
threadsafety = 1
# '?' placeholders; DuckDB's numbered '$1' placeholders work too.
paramstyle = "qmark"


# ---- type objects and constructors --------------------------------------------------------

class _TypeSet(frozenset):
    """A PEP 249 type object: equal to every DuckDB type name of its group."""

    def __eq__(self, other):
        if isinstance(other, str):
            base = other.split("(", 1)[0].strip().upper()
            return base in self
        return frozenset.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = frozenset.__hash__


STRING = _TypeSet({"VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING", "UUID", "ENUM"})
BINARY = _TypeSet({"BLOB", "BYTEA", "BINARY", "VARBINARY", "BIT"})
NUMBER = _TypeSet({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                   "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
                   "DECIMAL", "BOOLEAN", "REAL", "INT", "VARINT"})
DATETIME = _TypeSet({"DATE", "TIME", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS",
                     "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE", "TIME WITH TIME ZONE",
                     "TIMESTAMPTZ", "INTERVAL"})
ROWID = _TypeSet()

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks):
    return Date(*time.gmtime(ticks)[:3])


def TimeFromTicks(ticks):
    return Time(*time.gmtime(ticks)[3:6])


def TimestampFromTicks(ticks):
    return datetime.datetime.fromtimestamp(ticks, datetime.timezone.utc)


# ---- statement inspection -----------------------------------------------------------------

_BLANK = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_QUERY_START = ("select", "with", "from", "values", "table")
_WRITE_TARGET = re.compile(
    r"(?:insert\s+(?:or\s+\w+\s+)?into|update|delete\s+from|drop\s+table(?:\s+if\s+exists)?"
    r"|alter\s+table|truncate(?:\s+table)?|merge\s+into)\s+(\"(?:[^\"]|\"\")+\"|[\w.-]+)", re.I)
# CREATE [OR REPLACE] TABLE: a scratch table of the connection (TEMP), not a UDR table
_CREATE_TABLE = re.compile(r"(create(?:\s+or\s+replace)?)\s+table\b", re.I)
# What names a scratch table or view (comments count as blanks): CREATE
# [OR REPLACE] [TEMP] TABLE|VIEW [IF NOT EXISTS] name, ALTER TABLE|VIEW x
# RENAME TO name
_SP = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)+"
_SP0 = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_IDENT = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
_QNAME = _IDENT + r"(?:" + _SP0 + r"\." + _SP0 + _IDENT + r")*"
_SCRATCH_NAME = re.compile(
    r"(?:create(?:" + _SP + r"or" + _SP + r"replace)?(?:" + _SP + r"(?:temp|temporary))?" + _SP
    + r"(?:table|view)\b" + _SP0 + r"(?:if" + _SP + r"not" + _SP + r"exists\b" + _SP0 + r")?"
    + r"|alter" + _SP + r"(?:table|view)\b" + _SP0 + r"(?:if" + _SP + r"exists\b" + _SP0 + r")?"
    + _QNAME + _SP + r"rename" + _SP + r"to\b" + _SP0 + r")(" + _QNAME + r")", re.I | re.S)
_UDR_VIEWS = ("udr_log", "udr_tables", "udr_conflicts")
_NO_ROWS = ("insert", "update", "delete", "create", "drop", "alter", "truncate")
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)", re.I)


def _first_word(sql):
    m = _BLANK.match(sql)
    rest = sql[m.end():]
    if rest.startswith("("):
        return "("
    w = re.match(r"[A-Za-z_]+", rest)
    return w.group(0).lower() if w else ""


def _unquote(name):
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _scratch_name(rest):
    """The name a statement gives a scratch table or view (its last
    dotted part, unquoted), or None."""
    m = _SCRATCH_NAME.match(rest)
    if not m:
        return None
    return _unquote(re.findall(_IDENT, m.group(1))[-1])


# NAME@REF (users@3, users@commit:12, users@2026-11-01T12:00:00Z), which
# DuckDB's parser does not know: quoted, a name that is no bare table's
_AT_REF = re.compile(r'(?<![\w$"])([^\W\d][\w$]*)@(\d[\d:.+\-TtZz]*|[^\W\d][\w/]*(?::[\w.\-/]*)?)')


def _table_refs(tree):
    """The lower-case names a statement serialized by DuckDB's
    json_serialize_sql reads as tables (BASE_TABLE), CTE names left out."""
    refs, ctes, todo = set(), set(), [tree]
    while todo:
        x = todo.pop()
        if isinstance(x, list):
            todo.extend(x)
        elif isinstance(x, dict):
            if x.get("type") == "BASE_TABLE" and isinstance(x.get("table_name"), str):
                refs.add(x["table_name"].lower())
            cte = x.get("cte_map")
            if isinstance(cte, dict):
                for item in cte.get("map") or ():
                    if isinstance(item, dict) and isinstance(item.get("key"), str):
                        ctes.add(item["key"].lower())
            todo.extend(x.values())
    return refs - ctes


# ---- connection and cursor ----------------------------------------------------------------

def connect(database, *, create=False):
    """Open a DB-API 2.0 connection to the store root at database (a path),
    or over an open udr.Database (which the connection then does not close).
    A missing store raises NotFoundError unless create is True."""
    if isinstance(database, Database):
        return Connection(database, owned=False)
    return Connection(_open(database, create=create), owned=True)


class Connection:
    """A PEP 249 connection: read-only snapshot transactions over udr SQL."""

    Error = Error
    Warning = Warning
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, db, owned=True):
        self._db = db
        self._owned = owned
        self._closed = False
        self._snapshot = None     # commit seq of the open transaction, None: none open
        self._pins = {}           # table -> version number at the snapshot (None: absent)
        self._table_list = None   # the tables' names, listed in the transaction
        self._listed_at = None    # the head they were last listed at

    @property
    def database(self):
        """The udr.Database the connection runs on."""
        self._check()
        return self._db

    @property
    def closed(self):
        return self._closed

    @property
    def snapshot(self):
        """The commit sequence number the open transaction reads, or None."""
        return self._snapshot

    @property
    def in_transaction(self):
        return self._snapshot is not None

    def _check(self):
        if self._closed:
            raise InterfaceError("the connection is closed")

    def cursor(self):
        self._check()
        return Cursor(self)

    def execute(self, operation, parameters=None):
        """A shortcut (as sqlite3): a new cursor, executed."""
        return self.cursor().execute(operation, parameters)

    def commit(self):
        """End the transaction.  Nothing is written (the connection is
        read-only); the next statement reads a new snapshot."""
        self._check()
        self._end()

    def rollback(self):
        """End the transaction (nothing to undo: the connection is read-only);
        the next statement reads a new snapshot."""
        self._check()
        self._end()

    def _end(self):
        self._snapshot = None
        self._pins = {}
        self._table_list = None
        self._listed_at = None

    def close(self):
        """Close the connection (and its database when connect() opened it);
        idempotent.  An open transaction is rolled back."""
        if self._closed:
            return
        self._end()
        self._closed = True
        if self._owned:
            self._db.close()

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, exc_type, exc, tb):
        # As sqlite3: commit on success, roll back on error; then close.
        try:
            if not self._closed:
                if exc_type is None:
                    self.commit()
                else:
                    self.rollback()
        finally:
            self.close()
        return False

    # -- the snapshot --

    def _versions_for(self, sql):
        """versions= pins for the tables a query names, at the snapshot."""
        cat = self._db.catalog
        if self._snapshot is None:
            self._end()
            self._snapshot = cat.head()
        if _first_word(sql) not in _QUERY_START + ("(",):
            return None
        low = sql.lower()
        pins = {}
        later = []
        for name in self._tables(current=True):
            if name.lower() not in low or name in ("udr_log", "udr_tables"):
                continue
            if not re.search(r"(?<![\w.$-])" + re.escape(name.lower()) + r"(?![\w.$-])", low):
                continue
            if name not in self._pins:
                try:
                    self._pins[name] = cat.get_version_at_seq(name, self._snapshot).version
                except NotFoundError:
                    self._pins[name] = None   # made after the snapshot
            if self._pins[name] is not None:
                pins[name] = self._pins[name]
            else:
                later.append(name)
        if later:
            self._refuse_later(sql, later)
        return pins or None

    def _refuse_later(self, sql, later):
        """NotFoundError when the query reads a table of later (made after
        the snapshot) by its bare name: read at its latest version, it was
        joined with the snapshot's data.  A pin cannot say it (versions= is
        resolved for every table it names, read or not), so the statement
        is parsed (DuckDB's json_serialize_sql) for the tables it reads; a
        statement DuckDB cannot parse alone (NAME@REF) is taken to read
        each such table its text names."""
        refs = None
        try:
            quoted = _AT_REF.sub(r'"\1@\2"', sql)
            text = self._db.sql("SELECT json_serialize_sql('%s')" % quoted.replace("'", "''"),
                                read_only=True).fetchone()[0]
            tree = json.loads(text)
            if isinstance(tree, dict) and not tree.get("error"):
                refs = _table_refs(tree)
        except (Error, ValueError, TypeError):
            refs = None
        for name in later:
            if refs is None or name.lower() in refs:
                raise NotFoundError(
                    "table '%s' not found at this transaction's snapshot (commit %d): it was made "
                    "after it; commit() or rollback() ends the transaction, and the next one reads "
                    "it" % (name, self._snapshot))

    def _tables(self, current=False):
        """The tables' names, listed in this transaction; current: the
        list brought up to the catalog's head (names only added: a table
        dropped since is still read at the snapshot)."""
        cat = self._db.catalog
        head = cat.head() if current or self._table_list is None else self._listed_at
        if self._table_list is None or head != self._listed_at:
            listed = cat.list_tables()
            known = set(self._table_list or ())
            self._table_list = list(self._table_list or ()) + [t for t in listed if t not in known]
            self._listed_at = head
        return self._table_list

    def _udr_names(self):
        """The lower-case names of every branch's tables, and of UDR's
        views."""
        db = self._db
        names = set(db.catalog.list_tables())
        for branch in db.branches():
            names.update(db.tables(branch))
        return {n.lower() for n in names} | set(_UDR_VIEWS)


class Cursor:
    """A PEP 249 cursor over a Connection."""

    def __init__(self, connection):
        self._con = connection
        self._result = None
        self._closed = False
        self.arraysize = 1
        self.description = None
        self._rowcount = -1
        self.lastrowid = None

    @property
    def rowcount(self):
        """Rows of the last query (counting them reads the result ahead, as
        len() does), changed rows of the last INSERT/UPDATE/DELETE, else -1."""
        if self._rowcount is None:
            self._rowcount = len(self._result) if self._result is not None else -1
        return self._rowcount

    @rowcount.setter
    def rowcount(self, value):
        self._rowcount = value

    @property
    def connection(self):
        return self._con

    @property
    def closed(self):
        return self._closed

    def _check(self):
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self._con._check()

    def close(self):
        self._closed = True
        self._result = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def execute(self, operation, parameters=None):
        """Run one statement; parameters fill ? (or $1) placeholders.
        Returns the cursor."""
        self._check()
        if not isinstance(operation, str):
            raise TypeError("operation must be a str, not %s" % type(operation).__name__)
        con = self._con
        self._result = None
        self.description = None
        self.rowcount = -1
        if parameters is not None and not isinstance(parameters, (list, tuple)):
            if isinstance(parameters, dict):
                raise NotSupportedError("named parameters are not supported: paramstyle is "
                                        "'qmark' (? placeholders with a sequence)")
            parameters = list(parameters)
        versions = con._versions_for(operation)
        kind = _first_word(operation)
        if kind in ("begin", "start", "commit", "end", "rollback", "abort"):
            # Database.sql would run them as SQL-write transactions (a script
            # BEGIN; ...; COMMIT commits its writes): a connection only reads
            raise NotSupportedError(
                "transaction statements (%s) are not run through a DB-API connection: "
                "con.commit() and con.rollback() end its snapshot; con.database.sql() "
                "runs SQL-write transactions" % kind.upper())
        rest = operation[_BLANK.match(operation).end():]
        m = _WRITE_TARGET.match(rest)
        if not m and kind == "with":
            # WITH ... INSERT/UPDATE/DELETE/MERGE: the write after the CTEs
            # (a match inside a string literal only refuses a read)
            m = next((x for x in re.finditer(r"\b" + _WRITE_TARGET.pattern, rest, re.I)
                      if _unquote(x.group(1)).split("@")[0] in con._tables()), None)
        if m and _unquote(m.group(1)).split("@")[0] in con._tables():
            # Database.sql would commit it: a connection only reads UDR tables
            raise NotSupportedError(
                "UDR tables are read-only in SQL through a DB-API connection (%s): "
                "con.database.sql() commits SQL writes, con.database.write() stores a new "
                "version" % _unquote(m.group(1)))
        name = _scratch_name(rest)
        if name is not None and name.lower() in con._udr_names():
            # a TEMP table (or a view) of that name hid the UDR table from
            # every statement of the Database's session: db.sql read the
            # scratch rows, an INSERT "succeeded" into them
            raise NotSupportedError(
                "%s: '%s' is the name of a UDR table; a scratch table or view of the connection "
                "would hide it from every SQL statement of the Database (Database.sql's too) until "
                "closed; nothing was created (pick another name)" % (kind.upper(), name))
        m = _CREATE_TABLE.match(rest)
        if m:
            operation = rest[:m.end(1)] + " TEMP" + rest[m.end(1):]
        try:
            # read_only: the query layer refuses what would commit (the
            # checks above only word the common cases; comments between
            # keywords or a table made since would pass them)
            try:
                res = con._db.sql(operation, parameters, versions=versions, read_only=True)
            except InvalidArgumentError as e:
                # WITH ... DELETE: not a query, so not pinned; the read-only
                # session says what it is
                if not (versions and str(e).startswith("versions= needs a query")):
                    raise
                res = con._db.sql(operation, parameters, read_only=True)
        except InvalidArgumentError as e:
            if str(e).startswith("read-only session"):
                raise NotSupportedError(
                    "UDR tables are read-only in SQL through a DB-API connection (%s): "
                    "con.database.sql() commits SQL writes, con.database.write() stores a new "
                    "version" % e) from None
            raise
        if kind in _NO_ROWS:
            # DuckDB answers a changed-row count ("Count") for DML, nothing for DDL.
            rows = res.fetchall()
            if kind in ("insert", "update", "delete") and rows and len(rows[0]) == 1:
                self.rowcount = int(rows[0][0])
            return self
        self._result = res
        self.rowcount = None  # counted when asked: rows stream as fetched
        self.description = [self._column(n, t) for n, t in zip(res.columns, res.types)]
        return self

    @staticmethod
    def _column(name, type_name):
        precision = scale = None
        m = _DECIMAL.match(type_name)
        if m:
            precision, scale = int(m.group(1)), int(m.group(2))
        return (name, type_name, None, None, precision, scale, None)

    def executemany(self, operation, seq_of_parameters):
        """execute() once per parameter sequence; rowcount sums the changed
        rows of INSERT/UPDATE/DELETE (else -1)."""
        total = 0
        counted = True
        ran = False
        for params in seq_of_parameters:
            self.execute(operation, params)
            ran = True
            if self.rowcount < 0:
                counted = False
            else:
                total += self.rowcount
        if ran and _first_word(operation) in _NO_ROWS:
            self.rowcount = total if counted else -1
        return self

    def _rows(self):
        self._check()
        if self._result is None:
            raise InterfaceError("no result set: execute() a query first (the last "
                                 "statement returned no rows)")
        return self._result

    def fetchone(self):
        return self._rows().fetchone()

    def fetchmany(self, size=None):
        return self._rows().fetchmany(self.arraysize if size is None else size)

    def fetchall(self):
        return self._rows().fetchall()

    def __iter__(self):
        return self

    def __next__(self):
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row
