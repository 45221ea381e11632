"""udr sql writes, hostile cases: statements whose answer was wrong while
udr exited 0 (docs/QUERY.md "Writing tables with SQL")."""
import json

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def w(udr, query, *args):
    return udr.ok("sql", query, "--no-compact", *args)


def rows(udr, query):
    return [tuple(r.values()) for r in json.loads(w(udr, query, "--json").out or "[]")]


def nversions(udr, table):
    return len(udr.ok("versions", table).out.split())


@pytest.fixture
def users(udr, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("id,name,score\n1,ann,10\n2,bob,20\n3,cy,30\n")
    b = tmp_path / "b.csv"
    b.write_text("id,name,score\n4,dee,40\n5,eve,50\n6,fay,60\n")
    udr.ok("import", "users", str(a))
    udr.ok("import", "users", str(b), "--append")
    udr.ok("import", "t2", str(b))
    return udr


def test_insert_reading_its_table_through_query_table(users):
    # the table is read through a function, not a name the text shows: the
    # statement must see every row of the table, not an empty shadow
    w(users, "INSERT INTO users SELECT id + 10, name, score FROM query_table('users')")
    assert rows(users, "SELECT count(*) FROM users") == [(12,)]
    w(users, "UPDATE users SET score = (SELECT max(score) FROM query('SELECT * FROM users')) WHERE id = 1")
    assert rows(users, "SELECT score FROM users WHERE id = 1") == [(60,)]


def test_cte_of_update_and_delete_is_the_statements(users):
    # t2 is also a table of the store (ids 4..6): the CTE must win
    w(users, "WITH t2 AS (SELECT 1 AS id) DELETE FROM users WHERE id IN (SELECT id FROM t2)")
    assert rows(users, "SELECT id FROM users ORDER BY id") == [(2,), (3,), (4,), (5,), (6,)]
    w(users, "WITH t2 AS (SELECT 2 AS id) UPDATE users SET score = 0 WHERE id IN (SELECT id FROM t2)")
    assert rows(users, "SELECT id, score FROM users WHERE score = 0") == [(2, 0)]


def test_names_differing_in_case_never_write_the_other_table(users, tmp_path):
    b = tmp_path / "b.csv"
    b.write_text("id,name,score\n4,dee,40\n")
    users.ok("import", "Users", str(b))
    r = users("sql", "BEGIN; INSERT INTO users VALUES (7, 'gus', 70); INSERT INTO Users VALUES (8, 'hal', 80); "
              "COMMIT", "--no-compact")
    assert r.code == 2 and "case" in r.stderr, r
    r = users("sql", "INSERT INTO Users SELECT * FROM users", "--no-compact")
    assert r.code == 2 and "case" in r.stderr, r
    assert rows(users, "SELECT count(*) FROM users") == [(6,)]
    assert rows(users, 'SELECT id FROM "Users@latest"') == [(4,)]
    assert nversions(users, "users") == 2 and nversions(users, "Users") == 1


def test_script_with_statements_after_its_commit_runs_nothing(users):
    r = users("sql", "BEGIN; INSERT INTO users VALUES (7, 'gus', 70); COMMIT; INSERT INTO nosuch VALUES (1)",
              "--no-compact")
    assert r.code != 0
    r = users("sql", "BEGIN; INSERT INTO users VALUES (8, 'x', 1); COMMIT; DELETE FROM users WHERE id = 1",
              "--no-compact")
    assert r.code == 2, r
    assert rows(users, "SELECT count(*) FROM users") == [(6,)]
    assert nversions(users, "users") == 2


def test_replacing_by_equal_but_different_values_is_committed(users, tmp_path):
    # 0.0 = -0.0 and INTERVAL '1 month' = INTERVAL '30 days' in SQL, yet the
    # values read back differently: the new rows must be stored.  (DuckDB's
    # own UPDATE of such a value leaves the old one: its business.)
    w(users, "CREATE TABLE ty AS SELECT 1 AS id, 0.0::DOUBLE AS f, INTERVAL '1 month' AS iv")
    w(users, "CREATE OR REPLACE TABLE ty AS SELECT 1 AS id, '-0.0'::DOUBLE AS f, INTERVAL '30 days' AS iv")
    assert rows(users, "SELECT f::VARCHAR, iv::VARCHAR FROM ty") == [("-0.0", "30 days")]
    assert nversions(users, "ty") == 2
    a = tmp_path / "f.csv"
    a.write_text("id,f\n1,0.0\n2,1.5\n")
    users.ok("import", "fl", str(a))
    a.write_text("id,f\n1,-0.0\n2,1.5\n")
    users.ok("import", "fl", str(a), "--key", "id")
    assert rows(users, "SELECT id, f::VARCHAR FROM fl ORDER BY id") == [(1, "-0.0"), (2, "1.5")]


def test_numbered_parameters_in_update_and_delete(users):
    # ?N placeholders are numbered: the condition cannot be split off by count
    w(users, "UPDATE users SET score = ?2 WHERE id = ?1", "-p", "1", "-p", "100")
    w(users, "DELETE FROM users WHERE id = ?2 OR score = ?1", "-p", "100", "-p", "2")
    assert rows(users, "SELECT id FROM users ORDER BY id") == [(3,), (4,), (5,), (6,)]


def test_a_column_named_rowid(users, tmp_path):
    # rows are matched by DuckDB's row ids: a column "rowid" hid them, and an
    # UPDATE of one row of two made three, an INSERT ... SELECT of 3 rows 5
    a = tmp_path / "r.csv"
    a.write_text("RowId,v\n5,a\n5,b\n")
    users.ok("import", "r", str(a))
    w(users, "BEGIN; UPDATE r SET v = 'q' WHERE v = 'a'; COMMIT")
    assert rows(users, "SELECT * FROM r ORDER BY v") == [(5, "b"), (5, "q")]
    w(users, "INSERT INTO r SELECT * FROM r")
    w(users, "UPDATE r SET v = 'p' WHERE v = 'q'")
    w(users, "DELETE FROM r WHERE v = 'b'")
    assert rows(users, "SELECT * FROM r") == [(5, "p"), (5, "p")]


def test_import_append_after_drop_table(users, tmp_path):
    # the append took the dropped table for a new one and committed version
    # 1: a "conflict" (exit 3) however often it was retried
    w(users, "DROP TABLE t2")
    a = tmp_path / "c.csv"
    a.write_text("id,name,score\n7,gus,70\n")
    r = users.ok("import", "t2", str(a), "--append")
    assert r.out.split() == ["3"]
    assert rows(users, "SELECT * FROM t2") == [(7, "gus", 70)]


def test_create_table_of_a_name_udr_cannot_store(users):
    # it became a table of the session: "Count 1", exit 0, nothing stored
    r = users("sql", 'CREATE TABLE "a b" AS SELECT 1 AS x')
    assert r.code == 2 and "invalid table name" in r.stderr, r
    assert users.ok("tables").out.split() == ["t2", "users"]


def test_temp_table_of_a_written_tables_name(users):
    # CREATE TEMP TABLE is the session's own, yet in a transaction writing
    # users it replaced the rows committed as users' next version
    r = users("sql", "BEGIN; UPDATE users SET score = 1 WHERE id = 1; "
              "CREATE OR REPLACE TEMP TABLE users AS SELECT 42 AS x; COMMIT", "--no-compact")
    assert r.code == 2, r
    r = users("sql", "BEGIN; DELETE FROM users WHERE id = 1; INSERT INTO temp.users VALUES (9, 'x', 9); COMMIT",
              "--no-compact")
    assert r.code == 2, r
    assert rows(users, "SELECT count(*), sum(score) FROM users") == [(6, 210)]
    assert nversions(users, "users") == 2
