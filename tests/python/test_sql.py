"""SQL through the query module: Database.sql / read / write / export / diff_rows."""

import csv
import datetime
import decimal
import json

import pytest

import udr

pytestmark = pytest.mark.skipif(not udr.HAVE_QUERY, reason="built without the query module")

UTC = datetime.timezone.utc


@pytest.fixture
def users(db):
    db.write("users", [{"id": 1, "name": "ann", "score": 1.5, "ok": True},
                       {"id": 2, "name": "bob", "score": None, "ok": False}])
    db.write("users", {"id": [3], "name": ["cy"], "score": [2.0], "ok": [True]}, mode="append")
    return db


def test_result_types(db):
    r = db.sql("SELECT 1::BIGINT AS i, 2.5::DOUBLE AS d, true AS b, 'x' AS t, "
               "'\\x01\\x02'::BLOB AS bl, NULL AS n, 1.25::DECIMAL(4,2) AS dec, "
               "DATE '2026-11-01' AS dt, [1, 2] AS l")
    assert r.columns == ["i", "d", "b", "t", "bl", "n", "dec", "dt", "l"]
    assert r.types[:4] == ["BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR"]
    assert len(r) == 1 and r.rowcount == 1
    row = r.fetchone()
    assert row == (1, 2.5, True, "x", b"\x01\x02", None, decimal.Decimal("1.25"),
                   datetime.date(2026, 11, 1), "[1, 2]")
    assert type(row[0]) is int and type(row[1]) is float and type(row[2]) is bool
    assert r.fetchone() is None


def test_cursor_iteration_and_dicts(db):
    r = db.sql("SELECT * FROM range(5) t(x)")
    assert r.fetchone() == (0,)
    assert r.fetchmany(2) == [(1,), (2,)]
    assert list(r) == [(3,), (4,)]
    assert r.fetchall() == []
    assert r.to_dicts() == [{"x": i} for i in range(5)]
    assert db.sql("SELECT 42 AS a").fetchall() == [(42,)]
    assert "udr.Result" in repr(r)


def test_params(db):
    r = db.sql("SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ?::BIGINT + 1 AS f, $1 AS g",
               [5, "héllo", 1.5, None, True, 41, ])
    assert r.fetchone() == (5, "héllo", 1.5, None, True, 42, 5)
    assert db.sql("SELECT ?::BLOB AS b", [b"\x00\xff"]).fetchall() == [(b"\x00\xff",)]
    assert db.sql("SELECT ?::DATE AS d", [datetime.date(2026, 1, 2)]).fetchall() == \
        [(datetime.date(2026, 1, 2),)]
    assert db.sql("SELECT ?::DECIMAL(5,2) AS d", [decimal.Decimal("1.50")]).fetchall() == \
        [(decimal.Decimal("1.50"),)]
    assert db.sql("SELECT ?::HUGEINT AS h", [2 ** 70]).fetchall() == [(2 ** 70,)]
    # Parameters are values, never SQL.
    assert db.sql("SELECT ? AS s", ["'); DROP TABLE x; --"]).fetchall() == \
        [("'); DROP TABLE x; --",)]
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("SELECT ?, ?", [1])
    with pytest.raises(TypeError):
        db.sql("SELECT ?", [object()])
    with pytest.raises(TypeError):
        db.sql("SELECT ?", "x")


def test_errors(db, users):
    with pytest.raises(udr.InvalidArgumentError) as ei:
        db.sql("SELEC 1")
    assert "syntax error" in str(ei.value).lower()
    with pytest.raises(udr.NotFoundError):
        db.sql("SELECT * FROM no_such_table")
    with pytest.raises(udr.NotFoundError):
        db.sql("SELECT * FROM users@9")
    with pytest.raises(udr.NotFoundError):
        db.read("nope")
    with pytest.raises(udr.NotFoundError):
        db.read("users", version=7)
    with pytest.raises(TypeError):
        db.sql(b"SELECT 1")


def test_write_read_round_trip(db, users):
    r = db.read("users")
    assert r.columns == ["id", "name", "score", "ok"]
    assert r.types == ["BIGINT", "VARCHAR", "DOUBLE", "BOOLEAN"]
    assert sorted(r.fetchall()) == [(1, "ann", 1.5, True), (2, "bob", None, False),
                                    (3, "cy", 2.0, True)]
    assert len(db.read("users", version=1)) == 2
    assert len(db.read("users@1")) == 2
    assert len(db.read("users", branch="main")) == 3
    with pytest.raises(udr.NotFoundError):
        db.read("users", branch="dev")
    with pytest.raises(udr.InvalidArgumentError):
        db.read("users", version=1, branch="main")
    assert db.catalog.latest("users") == 2
    v = db.catalog.get_version("users")
    assert v.metadata["udr.rows"] == "3"
    # Overwrite replaces the rows.
    assert db.write("users", [{"id": 9, "name": "z", "score": 0.5, "ok": False}],
                    message="reset") == 3
    assert db.read("users").fetchall() == [(9, "z", 0.5, False)]
    assert db.catalog.get_version("users").message == "reset"
    # Time travel by an aware datetime.
    assert len(db.read("users", version=datetime.datetime.now(UTC))) == 1


def test_write_append_schema_mismatch(db, users):
    with pytest.raises(udr.InvalidArgumentError):
        db.write("users", [{"other": 1}], mode="append")
    assert db.catalog.latest("users") == 2
    with pytest.raises(udr.InvalidArgumentError):
        db.write("users", [{"id": 1}], mode="upsert")


def test_write_bad_data(db):
    with pytest.raises(ValueError):
        db.write("t", [])
    with pytest.raises(ValueError):
        db.write("t", {"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError):
        db.write("t", [1, 2])
    with pytest.raises(TypeError):
        db.write("t", [{"b": b"bytes"}])
    with pytest.raises(udr.NotFoundError):
        db.write("t", "/nonexistent/file.csv")
    # an int past BIGINT came back as a rounded DOUBLE (a helper's review)
    for big in (2**64 + 1, 2**63, -2**63 - 1):
        with pytest.raises(ValueError, match="does not fit BIGINT"):
            db.write("t", [{"a": 1}, {"a": big}])
    assert db.catalog.list_tables() == []
    import decimal
    db.write("t", [{"a": decimal.Decimal(2**64 + 1)}, {"a": decimal.Decimal(-2**63)}])
    assert [r[0] for r in db.sql("SELECT a FROM t").fetchall()] == [2**64 + 1, -2**63]


def test_write_files_and_export(db, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,name\n1,a\n2,b\n")
    assert db.write("f", str(src)) == 1
    assert db.write("f", [src], mode="append") == 2
    assert db.sql("SELECT count(*) FROM f").fetchall() == [(4,)]
    out = tmp_path / "out.csv"
    assert db.export("f", str(out), version=1) == 2
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["id", "name"], ["1", "a"], ["2", "b"]]
    outj = tmp_path / "out.json"
    assert db.export("f", outj, format="json") == 4
    assert len(json.loads(outj.read_text())) == 4
    outp = tmp_path / "out.parquet"
    assert db.export("f", outp) == 4
    assert db.write("g", outp) == 1
    assert db.sql("SELECT sum(id) FROM g").fetchall() == [(6,)]  # HUGEINT: int
    assert db.sql("SELECT sum(id)::BIGINT FROM g").fetchall() == [(6,)]
    with pytest.raises(udr.InvalidArgumentError):
        db.export("f", str(out), format="xml")
    with pytest.raises(udr.NotFoundError):
        db.export("nope", str(out))


def test_versions_pin(db, users):
    assert db.sql("SELECT count(*) FROM users").fetchall() == [(3,)]
    assert db.sql("SELECT count(*) FROM users", versions={"users": 1}).fetchall() == [(2,)]
    # Column qualifiers, aliases, a leading WITH and comments keep working.
    assert db.sql("SELECT users.id FROM users ORDER BY 1",
                  versions={"users": 1}).fetchall() == [(1,), (2,)]
    assert db.sql("SELECT u.id FROM users u ORDER BY 1",
                  versions={"users": "1"}).fetchall() == [(1,), (2,)]
    assert db.sql("-- c\n/* x */ WITH k AS (SELECT 1 AS one) SELECT count(*) FROM users, k",
                  versions={"users": 1}).fetchall() == [(2,)]
    # Explicit references are not affected; both versions in one query.
    assert db.sql("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users@2)",
                  versions={"users": 1}).fetchall() == [(2, 3)]
    assert db.sql("SELECT count(*) FROM users", versions={"users": "commit:1"}).fetchall() \
        == [(2,)]
    when = db.catalog.get_version("users", 1).created_at
    assert db.sql("SELECT count(*) FROM users", versions={"users": when}).fetchall() == [(2,)]
    with pytest.raises(udr.NotFoundError):
        db.sql("SELECT 1", versions={"users": 9})
    with pytest.raises(udr.NotFoundError):
        db.sql("SELECT 1", versions={"ghost": 1})
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("SELECT 1", versions={'users"; DROP': 1})
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("SELECT 1", versions={"users": "bogus ref"})
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("DESCRIBE users", versions={"users": 1})


def test_diff_rows(db, users):
    db.write("users", [{"id": 1, "name": "ann", "score": 9.0, "ok": True},
                       {"id": 3, "name": "cy", "score": 2.0, "ok": True},
                       {"id": 4, "name": "dee", "score": 1.0, "ok": False}])
    d = db.diff_rows("users", 2, 3, "id")
    assert d.columns[:2] == ["change", "id"]
    rows = {r["id"]: r for r in d.to_dicts()}
    assert rows[1]["change"] == "changed" and rows[1]["old.score"] == 1.5
    assert rows[1]["new.score"] == 9.0
    assert rows[2]["change"] == "removed"
    assert rows[4]["change"] == "added" and rows[4]["new.name"] == "dee"
    assert 3 not in rows
    assert len(db.diff_rows("users", "1", "latest", ["id"])) >= 1
    with pytest.raises(udr.InvalidArgumentError):
        db.diff_rows("users", 2, 3, "nosuchcol")
    with pytest.raises(udr.InvalidArgumentError):
        db.diff_rows("users", 2, 3, [])


def test_df_needs_pandas(db):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError):
            db.sql("SELECT 1 AS a").df()
        return
    df = db.sql("SELECT 1 AS a, 'x' AS b").df()
    assert list(df.columns) == ["a", "b"] and len(df) == 1
    assert db.write("p", df) == 1
    assert db.read("p").fetchall() == [(1, "x")]


def test_sql_threads_share_session(db, users):
    import threading
    errs = []

    def run():
        try:
            for _ in range(20):
                assert db.sql("SELECT count(*) FROM users").fetchall() == [(3,)]
        except Exception as e:  # pragma: no cover - reported below
            errs.append(e)

    ths = [threading.Thread(target=run) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert errs == []


def test_sql_after_close(tmp_path):
    d = udr.open(str(tmp_path / "r"))
    assert d.sql("SELECT 1").fetchall() == [(1,)]
    r = d.sql("SELECT 2")
    d.close()
    assert r.fetchall() == [(2,)]  # results outlive the session
    with pytest.raises(udr.Error):
        d.sql("SELECT 1")


def test_table_named_like_a_column_is_resolved_only_where_bound(db, users):
    """A table named `name` is not what the column or alias `name` means;
    versions= pins still work (CTE over the quoted "users@N")."""
    db.write("name", [{"x": 1}])
    assert db.sql("SELECT name FROM users ORDER BY id").fetchall() == [("ann",), ("bob",), ("cy",)]
    assert db.sql("SELECT 'x' AS name").fetchall() == [("x",)]
    assert db.sql("SELECT x FROM name").fetchall() == [(1,)]
    assert db.sql("SELECT count(*) FROM users", versions={"users": 1}).fetchall() == [(2,)]
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("SELECT 1; SELECT 2")
    with pytest.raises(udr.InvalidArgumentError):
        db.sql("COPY (SELECT 1) TO '/dev/null'")


LAZY_PROBE = r"""
import sys, udr
def duck():
    with open("/proc/self/maps") as f:
        return "libduckdb" in f.read()
assert not duck(), "import udr loaded DuckDB"
with udr.open(sys.argv[1]) as db:
    db.store.put(b"x")
    db.tables()
    assert not duck(), "opening a database loaded DuckDB"
    try:
        r = db.sql("SELECT 41 + 1 AS x").fetchall()
    except udr.Error as e:
        print("ERROR", type(e).__name__, e)
    else:
        print("ROWS", r, duck())
"""


def _probe(tmp_path, env_extra):
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop("UDR_DUCKDB_LIBRARY", None)
    env.update(env_extra)
    p = subprocess.run([sys.executable, "-c", LAZY_PROBE, str(tmp_path / "lazy")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode().strip()


def test_duckdb_is_loaded_by_the_first_sql_only(tmp_path):
    assert _probe(tmp_path, {}) == "ROWS [(42,)] True"


def test_sql_without_duckdb_raises_and_the_rest_works(tmp_path):
    out = _probe(tmp_path, {"UDR_DUCKDB_LIBRARY": "/nonexistent/libduckdb.so"})
    assert out.startswith("ERROR Error SQL needs DuckDB, which cannot be loaded"), out
    assert "/nonexistent/libduckdb.so" in out


NO_DUCK_PROBE = r"""
import os, sys, udr
path = sys.argv[1]
with udr.open(path) as db:
    h = db.store.put(b"x")
    calls = {
        "sql": lambda: db.sql("SELECT 1"),
        "script": lambda: db.sql("BEGIN; DROP TABLE users; COMMIT"),
        "read": lambda: db.read("users"),
        "write": lambda: db.write("users", [{"id": 9}], mode="append"),
        "write_new": lambda: db.write("fresh", [{"id": 1}]),
        "export": lambda: db.export("users", os.path.join(path, "..", "out.csv")),
        "diff_rows": lambda: db.diff_rows("users", 1, 1, ["id"]),
        "conflicts": lambda: db.conflicts(),
    }
    for name, call in calls.items():
        try:
            call()
        except udr.Error as e:
            assert "SQL needs DuckDB" in str(e), (name, e)
            print(name, "raised")
        else:
            print(name, "ran")
    print("tables", sorted(db.tables()))
"""


def test_every_sql_method_raises_without_duckdb(tmp_path):
    """Where DuckDB cannot be loaded each SQL method raises udr.Error (the
    session's cleanup runs before DuckDB started: no crash) and writes
    nothing."""
    import os
    import subprocess
    import sys
    root = tmp_path / "nd"
    with udr.open(str(root)) as db:
        db.write("users", [{"id": 1}, {"id": 2}])
    env = dict(os.environ, UDR_DUCKDB_LIBRARY="/nonexistent/libduckdb.so")
    p = subprocess.run([sys.executable, "-c", NO_DUCK_PROBE, str(root)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    lines = p.stdout.decode().split("\n")
    assert [x for x in lines if x.endswith(" raised")] == [
        "sql raised", "script raised", "read raised", "write raised", "write_new raised", "export raised",
        "diff_rows raised", "conflicts raised"], lines
    assert "tables ['users']" in lines
    assert not (tmp_path / "out.csv").exists()
    with udr.open(str(root)) as db:
        assert db.sql("SELECT count(*) FROM users").fetchall() == [(2,)]


def test_parameters_are_bound_as_their_types(db):
    """Decimal, date and big-int parameters were bound as text: ? < ? of
    Decimal('9') and Decimal('10') was False (strings), and CREATE TABLE AS
    SELECT ? stored VARCHAR columns (a helper's review)."""
    import datetime
    import decimal
    D = decimal.Decimal
    tz5 = datetime.timezone(datetime.timedelta(hours=5))
    r = db.sql("SELECT ? < ?, ? < ?, ? < ?, ? < ?, ? = ?",
               [D("9"), D("10"), 2 ** 63 + 9, 2 ** 64, datetime.date(2020, 1, 9), datetime.date(2020, 1, 10),
                datetime.datetime(2020, 1, 1, 9), datetime.datetime(2020, 1, 1, 10),
                datetime.datetime(2020, 1, 1, 5, tzinfo=tz5), datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)])
    assert r.fetchall() == [(True, True, True, True, True)]
    vals = [D("-12.50"), datetime.date(1969, 12, 31), datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
            datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=tz5), datetime.time(23, 59, 59, 999999), -2 ** 100,
            D("0.05"), D("-0")]
    db.sql("CREATE TABLE p AS SELECT ? AS d, ? AS dt, ? AS ts, ? AS tz, ? AS t, ? AS h, ? AS f, ? AS z", vals)
    r = db.read("p")
    assert r.types == ["DECIMAL(4,2)", "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIME", "DECIMAL(38,0)",
                       "DECIMAL(3,2)", "DECIMAL(1,0)"]
    row = r.fetchone()
    assert row[:3] == tuple(vals[:3]) and row[3] == vals[3] and row[4] == vals[4]
    assert row[5] == D(-2 ** 100) and row[6] == D("0.05") and row[7] == 0
    # 38 digits after the point: DECIMAL(38,38)
    assert db.sql("SELECT typeof(?)", [D("0." + "1" * 38)]).fetchone() == ("DECIMAL(38,38)",)
    # beyond DECIMAL(38) and HUGEINT no type holds them: bound as text they
    # compared as strings (10**40 < 9 * 10**39 was true), so refused; as str
    # they are text, cast where the statement says
    for bad in ([D("1E-40")], [2 ** 130], [D("1E+50"), D("9E+49")], [D("Infinity")], [D("NaN")]):
        with pytest.raises(ValueError):
            db.sql("SELECT " + ", ".join("?" for _ in bad), bad)
    assert db.sql("SELECT ?::DOUBLE < ?::DOUBLE", ["1E+50", "9E+49"]).fetchone() == (False,)
    assert db.sql("SELECT ? < 5", [-2 ** 127]).fetchone() == (True,)
