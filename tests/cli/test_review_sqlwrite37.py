"""SQL writes against a model (a helper's review, stop 37): each case
committed other rows than DuckDB would hold, or wrote what the statement
was refused for, with exit 0."""
import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
HAVE_QUERY = _help.code == 0 and "without the query module" not in _help.out + _help.stderr
needs_query = pytest.mark.skipif(not HAVE_QUERY, reason="udr was built without the query module")


@needs_query
@pytest.mark.parametrize("ddl,what", [
    ("CREATE TABLE c (id INTEGER PRIMARY KEY, v VARCHAR)", "PRIMARY KEY"),
    ("CREATE TABLE c (id INTEGER, v VARCHAR NOT NULL)", "column v: NOT NULL"),
    ("CREATE TABLE c (id INTEGER, v VARCHAR DEFAULT 'dflt')", "column v: a DEFAULT"),
    ("CREATE TABLE c (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2))", "column b: a DEFAULT or generated"),
    ("CREATE TABLE c (n INTEGER CHECK (n > 0))", "CHECK"),
    ("CREATE TABLE c (n INTEGER UNIQUE)", "UNIQUE"),
    ("CREATE TABLE c (e ENUM('a', 'b'))", "declared ENUM"),
    ("CREATE TABLE c (ts TIMESTAMP_S)", "declared TIMESTAMP_S, which udr stores as TIMESTAMP"),
    ("CREATE TABLE c (ar INTEGER[2])", "declare it INTEGER[]"),
    ("CREATE TABLE c (b BIT)", "declared BIT"),
    ("CREATE TABLE c (s STRUCT(a TIMESTAMP_MS))", "STRUCT(a TIMESTAMP)"),
    ("CREATE TABLE c (a VARCHAR COLLATE NOCASE)", "a COLLATE clause"),
])
def test_create_table_refuses_what_a_version_cannot_keep(udr, ddl, what):
    """Constraints, defaults and generated columns were accepted and then
    dropped at commit (the next INSERT stored NULL for the default and
    broke NOT NULL, CHECK and the key, exit 0); declared types were swapped
    for what the Parquet parts read back (an ENUM took 'zzz', max() over a
    VARINT column compared text)."""
    for script in (ddl, "BEGIN; %s; INSERT INTO c SELECT NULL; COMMIT" % ddl):
        r = udr("sql", script)
        assert r.code == 2 and what in r.stderr and "nothing was created" in r.stderr, (script, r)
        assert udr("sql", "SELECT * FROM c").code != 0
    assert udr.ok("log").out.strip() == ""
    # what it can keep is created, HUGEINT as DECIMAL(38,0) (documented)
    udr.ok("sql", "CREATE TABLE c (id BIGINT, h HUGEINT, s STRUCT(a INTEGER, b TIMESTAMP), l VARCHAR[], "
           "m MAP(VARCHAR, INTEGER), d DECIMAL(10,2), t TIME, z TIMESTAMPTZ, u UUID)")
    types = [x.strip().strip('"') for x in
             udr.ok("sql", "--csv", "SELECT column_type FROM (DESCRIBE c)").out.splitlines()[1:]]
    assert types[:2] == ["BIGINT", "DECIMAL(38,0)"], types


@needs_query
def test_create_or_replace_refused_keeps_the_table(udr):
    udr.ok("sql", "CREATE TABLE c AS SELECT 1 AS id")
    r = udr("sql", "CREATE OR REPLACE TABLE c (id INTEGER NOT NULL)")
    assert r.code == 2 and "NOT NULL" in r.stderr, r
    assert udr.ok("sql", "--csv", "SELECT id FROM c").out.split()[-1] == "1"
    udr.ok("sql", "INSERT INTO c VALUES (2)")
    assert udr.ok("sql", "--csv", "SELECT sum(id) FROM c").out.split()[-1] == "3"


@needs_query
@pytest.mark.parametrize("stmt", ["UPDATE temp.main.t SET v = 2 WHERE id = 1",
                                  "ALTER TABLE temp.main.t DROP COLUMN v",
                                  "DROP TABLE temp.main.t",
                                  "UPDATE \"temp\".\"main\".\"t\" SET v = 2"])
def test_a_three_part_name_of_the_shadow_is_refused(udr, stmt):
    """temp.main.t passed the guard that refuses temp.t: its UPDATE and
    ALTER TABLE ... DROP COLUMN were committed with the transaction."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range AS id, 0 AS v FROM range(3)")
    r = udr("sql", "BEGIN; UPDATE t SET v = 1 WHERE id = 0; %s; COMMIT" % stmt)
    assert r.code == 2 and "written by this transaction" in r.stderr, r
    out = udr.ok("sql", "--csv", "SELECT * FROM t ORDER BY id").out.split()
    assert out == ["id,v", "0,0", "1,0", "2,0"], out
    assert len(udr.ok("log").out.strip().splitlines()) == 2  # the CREATE only


@needs_query
@pytest.mark.parametrize("stmt", ["UPDATE \"__udr o 1\" SET __udr_row = 3",
                                  "UPDATE \"__UDR o 1\" SET __udr_row = 3",
                                  "DELETE FROM temp.main.\"__Udr O 1\" WHERE __udr_row = 3"])
def test_the_internal_position_table_is_not_written(udr, stmt):
    """UPDATE "__udr o 1" in a transaction moved a row's position: COMMIT
    lost row 3 and kept row 0 twice, exit 0 (and the first guard matched
    the lower case name only)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT range AS id, 0 AS v FROM range(4)")
    r = udr("sql", "BEGIN; UPDATE t SET v = 1 WHERE id = 0; %s; COMMIT" % stmt)
    assert r.code == 2 and "internal" in r.stderr, r
    out = udr.ok("sql", "--csv", "SELECT * FROM t ORDER BY id").out.split()
    assert out == ["id,v", "0,0", "1,0", "2,0", "3,0"], out




@needs_query
@pytest.mark.parametrize("stmt", ["CREATE UNIQUE INDEX i ON c (a)", "CREATE INDEX ON c (a)",
                                  "CREATE INDEX IF NOT EXISTS i ON c (a)"])
def test_an_index_on_a_udr_table_is_refused(udr, stmt):
    """CREATE UNIQUE INDEX in a transaction held there (a duplicate was
    refused), then vanished at COMMIT: the same duplicate went in after."""
    udr.ok("sql", "CREATE TABLE c (a VARCHAR)")
    for script in (stmt, "BEGIN; INSERT INTO c VALUES ('x'); %s; COMMIT" % stmt):
        r = udr("sql", script)
        assert r.code == 2 and "CREATE INDEX is not supported" in r.stderr, (script, r)
    assert udr.ok("sql", "--csv", "SELECT count(*) FROM c").out.split()[-1] == "0"
    # a session's own temporary table takes an index, as in DuckDB
    udr.ok("sql", "BEGIN; CREATE TEMP TABLE tt (a INT); CREATE UNIQUE INDEX j ON tt (a); "
           "INSERT INTO c VALUES ('y'); COMMIT")
    assert udr.ok("sql", "--csv", "SELECT a FROM c").out.split()[-1] == "y"
