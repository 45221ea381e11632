"""PEP 249 (DB-API 2.0): udr.connect, Connection, Cursor, the exception hierarchy."""

import datetime
import decimal
import warnings

import pytest

import udr

pytestmark = pytest.mark.skipif(not udr.HAVE_QUERY, reason="built without the query module")


@pytest.fixture
def root(tmp_path):
    path = str(tmp_path / "root")
    with udr.open(path) as db:
        db.write("users", [{"id": 1, "name": "ann", "score": 1.5},
                           {"id": 2, "name": "bob", "score": None},
                           {"id": 3, "name": "cy", "score": 2.25}])
    return path


def test_module_globals():
    assert udr.apilevel == "2.0"
    assert udr.threadsafety in (0, 1, 2, 3)
    assert udr.paramstyle == "qmark"
    assert udr.STRING == "VARCHAR" and udr.NUMBER == "BIGINT" and udr.NUMBER == "DECIMAL(10,2)"
    assert udr.DATETIME == "TIMESTAMP" and udr.BINARY == "BLOB" and udr.STRING != "BIGINT"
    assert udr.Date(2026, 11, 30) == datetime.date(2026, 11, 30)
    assert udr.TimestampFromTicks(0).year == 1970 and udr.Binary(b"x") == b"x"


def test_exception_hierarchy():
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                 "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):
        assert issubclass(getattr(udr, name), Exception), name
    assert issubclass(udr.InterfaceError, udr.Error)
    assert issubclass(udr.DatabaseError, udr.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                 "ProgrammingError", "NotSupportedError"):
        assert issubclass(getattr(udr, name), udr.DatabaseError), name
    # UDR's own errors keep their classes and bases, mapped into PEP 249
    assert issubclass(udr.NotFoundError, udr.ProgrammingError)
    assert issubclass(udr.NotFoundError, KeyError)
    assert issubclass(udr.InvalidArgumentError, udr.ProgrammingError)
    assert issubclass(udr.InvalidArgumentError, ValueError)
    assert issubclass(udr.IOError, udr.OperationalError) and issubclass(udr.IOError, OSError)
    assert issubclass(udr.ConflictError, udr.OperationalError)
    assert issubclass(udr.LockedError, udr.OperationalError)
    assert udr.IntegrityError is udr._udr.IntegrityError
    con_cls = udr.Connection
    assert con_cls.ProgrammingError is udr.ProgrammingError


def test_query_description_fetch(root):
    with udr.connect(root) as con:
        cur = con.cursor()
        assert cur.description is None and cur.rowcount == -1 and cur.arraysize == 1
        assert cur.execute("SELECT id, name, score, 1.5::DECIMAL(6,2) AS d FROM users "
                           "ORDER BY id") is cur
        assert [d[0] for d in cur.description] == ["id", "name", "score", "d"]
        assert all(len(d) == 7 for d in cur.description)
        assert cur.description[0][1] == udr.NUMBER and cur.description[1][1] == udr.STRING
        assert cur.description[3][4:6] == (6, 2)
        assert cur.rowcount == 3
        d = decimal.Decimal("1.50")
        assert cur.fetchone() == (1, "ann", 1.5, d)
        assert cur.fetchmany() == [(2, "bob", None, d)]
        cur.arraysize = 5
        assert cur.fetchmany() == [(3, "cy", 2.25, d)]
        assert cur.fetchone() is None and cur.fetchall() == []
        cur.execute("SELECT name FROM users WHERE id >= ? AND score > ? ORDER BY id", (1, 1.0))
        assert cur.fetchall() == [("ann",), ("cy",)]
        cur.execute("SELECT $2::VARCHAR || $1::VARCHAR AS s", ["a", "b"])
        assert list(cur) == [("ba",)]
        assert con.execute("SELECT count(*) FROM users@1").fetchone() == (3,)


def test_errors_are_pep249(root):
    with udr.connect(root) as con:
        cur = con.cursor()
        with pytest.raises(udr.ProgrammingError):
            cur.execute("SELEKT 1")
        with pytest.raises(udr.ProgrammingError):
            cur.execute("SELECT * FROM nosuchtable")
        with pytest.raises(udr.DatabaseError):
            cur.execute("SELECT ?", [1, 2])
        with pytest.raises(udr.InterfaceError):
            cur.execute("CREATE TABLE scratch (a INT)").fetchall()
        with pytest.raises(udr.NotSupportedError, match="read-only"):
            cur.execute("INSERT INTO users VALUES (4, 'dee', 1.0)")
        with pytest.raises(udr.NotSupportedError):
            cur.execute("DELETE FROM users")
        with pytest.raises(udr.NotSupportedError):
            cur.execute("SELECT :x", {"x": 1})
        cur.close()
        with pytest.raises(udr.InterfaceError):
            cur.execute("SELECT 1")
    with pytest.raises(udr.InterfaceError):
        con.cursor()
    with pytest.raises(udr.NotFoundError):
        udr.connect(root + "-missing")


def test_scratch_tables_rowcount(root):
    """Writes go to the connection's own in-memory DuckDB tables only."""
    with udr.connect(root) as con:
        cur = con.cursor()
        cur.execute("CREATE TABLE scratch (a INT)")
        assert cur.description is None
        cur.execute("INSERT INTO scratch VALUES (1), (2), (3)")
        assert cur.rowcount == 3
        cur.executemany("INSERT INTO scratch VALUES (?)", [(4,), (5,)])
        assert cur.rowcount == 2
        cur.execute("UPDATE scratch SET a = a + 1 WHERE a > 3")
        assert cur.rowcount == 2
        con.rollback()   # not undone: UDR SQL has no write transactions yet
        assert cur.execute("SELECT count(*) FROM scratch").fetchone() == (5,)
    with udr.open(root) as db:
        assert db.catalog.list_tables() == ["users"]


def test_snapshot_until_commit(root):
    """Statements of one transaction read one snapshot; commit() or rollback()
    ends it, and the next statement sees later commits."""
    with udr.connect(root) as con, udr.open(root) as writer:
        cur = con.cursor()
        assert not con.in_transaction
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (3,)
        snap = con.snapshot
        assert snap is not None and con.in_transaction
        writer.write("users", [{"id": 9, "name": "zed", "score": 0.5}], mode="append")
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (3,)
        assert cur.execute("SELECT count(*) FROM users u JOIN users v USING (id)").fetchone() \
            == (3,)
        # explicit references are not pinned
        assert cur.execute("SELECT count(*) FROM users@latest").fetchone() == (4,)
        con.commit()
        assert not con.in_transaction
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (4,)
        assert con.snapshot > snap
        writer.write("users", [{"id": 10, "name": "x", "score": 0.0}], mode="append")
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (4,)
        con.rollback()
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (5,)


def test_connect_over_database_and_context(root):
    db = udr.open(root)
    with udr.connect(db) as con:
        assert con.database is db
        with con.cursor() as cur:
            assert cur.execute("SELECT 1").fetchall() == [(1,)]
        assert cur.closed
    assert con.closed and not db.closed  # not owned: left open
    db.close()
    con = udr.connect(root)
    with pytest.raises(ZeroDivisionError):
        with con:
            con.execute("SELECT 1")
            raise ZeroDivisionError
    assert con.closed
    con.close()  # idempotent


def test_pandas_read_sql(root):
    pd = pytest.importorskip("pandas")
    with udr.connect(root) as con:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas: not SQLAlchemy
            df = pd.read_sql("SELECT id, name, score FROM users WHERE id <> ? ORDER BY id",
                             con, params=[2])
    assert list(df.columns) == ["id", "name", "score"]
    assert df["id"].tolist() == [1, 3]
    assert df["name"].tolist() == ["ann", "cy"]
    assert df["score"].tolist() == [1.5, 2.25]


def test_writes_hidden_by_comments_or_new_tables_are_refused(root):
    """The connection's own word checks let `DELETE/**/FROM users` and a
    DELETE on a table made after its first statement through, and they were
    committed.  The query layer now refuses, in a read-only session, any
    statement that would commit."""
    with udr.open(root) as db:
        con = udr.connect(db)
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM users")
        db.write("later", [{"a": 1}])
        for q in ("DELETE/**/FROM users WHERE id = 1", "INSERT /* c */ INTO users VALUES (9, 'x', 0.5)",
                  "UPDATE/**/users SET score = 0", "DROP/**/TABLE users", "DELETE FROM later",
                  "MERGE/**/INTO users USING (SELECT 1 AS id) s ON users.id = s.id WHEN MATCHED THEN DELETE",
                  "WITH x AS (SELECT 1) DELETE/**/FROM users", "CREATE/**/TABLE made AS SELECT 1"):
            with pytest.raises(udr.NotSupportedError, match="read-only"):
                cur.execute(q)
        assert db.catalog.latest("users") == 1 and db.catalog.latest("later") == 1
        assert sorted(db.catalog.list_tables()) == ["later", "users"]
        # the session's scratch tables stay writable
        cur.execute("CREATE TABLE scratch AS SELECT 1 AS x")
        cur.execute("INSERT INTO scratch VALUES (2)")
        assert cur.execute("SELECT sum(x) FROM scratch").fetchone() == (3,)
        con.close()
        # Database.sql(read_only=True) refuses the same, and reads
        with pytest.raises(udr.InvalidArgumentError, match="read-only session"):
            db.sql("DELETE FROM users", read_only=True)
        with pytest.raises(udr.InvalidArgumentError, match="read-only session"):
            db.sql("BEGIN", read_only=True)
        assert db.sql("SELECT count(*) FROM users", read_only=True).fetchone() == (3,)
        db.sql("DELETE FROM users WHERE id = 1")     # not read-only: commits
        assert db.catalog.latest("users") == 2
        # a connection over a Database with an open SQL transaction reads
        # (every SELECT was refused: "cannot become read-only")
        db.sql("BEGIN")
        cur = udr.connect(db).cursor()
        assert cur.execute("SELECT count(*) FROM users").fetchone() == (2,)
        db.sql("ROLLBACK")
