"""Parts written by SQL writes, compaction and imports are deterministic: the
same rows give byte-identical parts whatever DuckDB's threads do, so rewrites
dedup (docs/QUERY.md "Row order")."""
import json

import pytest

from conftest import Udr, run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)

THREADS = ("--threads", "4")  # more threads than rows groups finish in order
MAKE = ("CREATE TABLE t AS SELECT range AS id, md5(range::VARCHAR) AS s, range % 7 AS g "
        "FROM range(700000)")


def chunks(u, table="t", ref=None):
    v = json.loads(u.ok("show", table, *([ref] if ref else [])).out)
    return v["chunks"], v["metadata"].get("udr.parts")


def ids_in_order(u, table="t"):
    """Rows are read in increasing id order (the order they were written in)."""
    out = u.ok("sql", "SELECT count(*) AS bad FROM (SELECT id, lag(id) OVER () AS p "
               "FROM %s) WHERE id <= p" % table, "--csv", *THREADS).out
    return out.split() == ["bad", "0"]


@pytest.fixture
def two(tmp_path):
    stores = []
    for name in ("a", "b"):
        u = Udr(tmp_path / name)
        u.ok("init")
        u.ok("sql", MAKE, *THREADS)
        stores.append(u)
    return stores


def test_same_statements_on_two_stores_give_identical_parts(two):
    a, b = two
    assert chunks(a) == chunks(b)
    assert len(chunks(a)[0]) >= 1 and ids_in_order(a)
    # several row groups (700,000 rows): one part of 6 row groups
    for u in two:
        u.ok("sql", "UPDATE t SET s = 'x' WHERE g = 3", *THREADS, "--no-compact")
    assert chunks(a) == chunks(b)
    for u in two:
        assert u.ok("optimize", "t", "--full", *THREADS).out.strip().isdigit()
    assert chunks(a) == chunks(b)
    # the rewrite keeps the order of the rows it rewrote
    assert a.ok("sql", "SELECT count(*) AS n FROM t WHERE s = 'x'", "--csv").out.split() == ["n", "100000"]


def test_optimize_full_twice_stores_nothing_new(two):
    a, _ = two
    a.ok("sql", "DELETE FROM t WHERE g = 1", *THREADS, "--no-compact")
    v = a.ok("optimize", "t", "--full", *THREADS).out.strip()
    first = chunks(a)
    # the same rows again: the same parts, so the version equals its base
    assert a.ok("optimize", "t", "--full", *THREADS).out.strip() == "nothing to compact"
    assert chunks(a) == first and chunks(a, "t", v) == first
    assert ids_in_order(a)
    rows = a.ok("sql", "SELECT count(*) AS n, bool_and(g <> 1) AS ok FROM t", "--csv").out.split()
    assert rows == ["n,ok", "600000,true"]


def test_parts_of_more_than_eight_row_groups_are_cut_in_order(tmp_path):
    u = Udr(tmp_path / "c")
    u.ok("init")
    u.ok("sql", "CREATE TABLE t AS SELECT range AS id FROM range(2000000)", *THREADS)
    ch, parts = chunks(u)
    assert [p["rows"] for p in json.loads(parts)] == [983040, 983040, 33920]
    assert ids_in_order(u)
    # an import of the same rows: the same parts, nothing new stored
    f = tmp_path / "t.parquet"
    u.ok("sql", "SELECT * FROM t", "-o", f)
    u.ok("import", "t2", f, *THREADS)
    assert chunks(u, "t2")[0] == ch


def test_a_column_named_file_row_number_is_not_the_cut(tmp_path):
    # parts are cut by row number; a column of that name must not be taken
    # for it (rows were lost or doubled, or one part got every row)
    u = Udr(tmp_path / "d")
    u.ok("init")
    u.ok("sql", "CREATE TABLE t AS SELECT range AS id, range % 3 AS file_row_number FROM range(1100000)",
         *THREADS)
    _, parts = chunks(u)
    assert [p["rows"] for p in json.loads(parts)] == [983040, 116960]
    out = u.ok("sql", "SELECT count(*) AS c, count(DISTINCT id) AS d, sum(file_row_number) AS s FROM t",
               "--csv").out.split()
    assert out == ["c,d,s", "1100000,1100000,1099999"]
    assert ids_in_order(u)
