"""Merge-on-read (docs/QUERY.md): the deletion-vector filter (keep_function
in src/query/dv.c, which keeps bitmap bytes with no deletion 8 rows at once)
checked against a Python model of the table: parts smaller than a byte, parts not a
multiple of 8 rows, a part of several row groups, several versions in one
query (UNION ALL, self-join), filters pushed into the Parquet scan (row
numbers not starting at a byte boundary, not consecutive), LIMIT/OFFSET."""
import json

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def q(udr, query):
    return [tuple(r.values()) for r in json.loads(udr.ok("sql", query, "--json").out or "[]")]


def w(udr, query):
    udr.ok("sql", query, "--no-compact")


def test_keep_matches_model(udr):
    model = list(range(5))
    w(udr, "CREATE TABLE t AS SELECT range AS id, range * 2 AS v FROM range(5)")
    for n in (3, 13, 1, 7, 9, 300000, 17):
        lo = max(model) + 1
        w(udr, "INSERT INTO t SELECT range + %d AS id, (range + %d) * 2 AS v FROM range(%d)" % (lo, lo, n))
        model += list(range(lo, lo + n))
    gone1 = lambda i: i % 7 == 3 or i in (0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16) or 1000 <= i < 1064
    w(udr, "DELETE FROM t WHERE id % 7 = 3 OR id IN (0,1,2,5,8,9,10,11,12,13,14,15,16) OR id BETWEEN 1000 AND 1063")
    v1 = [i for i in model if not gone1(i)]
    gone2 = lambda i: i % 11 == 0 or 200000 <= i < 200100
    w(udr, "DELETE FROM t WHERE id % 11 = 0 OR id BETWEEN 200000 AND 200099")
    v2 = [i for i in v1 if not gone2(i)]
    ver2 = json.loads(udr.ok("show", "t").out)["version"]
    ver1 = ver2 - 1
    assert json.loads(udr.ok("show", "t").out)["metadata"]["udr.format"] == "parquet-dv"

    assert [r[0] for r in q(udr, "SELECT id FROM t")] == v2
    assert [r[0] for r in q(udr, "SELECT id FROM t@%d" % ver1)] == v1
    got = [r[0] for r in q(udr, "SELECT id FROM t@%d UNION ALL SELECT id FROM t" % ver1)]
    assert sorted(got) == sorted(v1 + v2)
    assert q(udr, "SELECT count(*) FROM t a JOIN t@%d b USING (id)" % ver1) == [(len(set(v1) & set(v2)),)]
    assert q(udr, "SELECT count(*) FROM t a JOIN t b USING (id)") == [(len(v2),)]
    assert [r[0] for r in q(udr, "SELECT id FROM t WHERE id BETWEEN 123457 AND 234561")] == \
        [i for i in v2 if 123457 <= i <= 234561]
    assert [r[0] for r in q(udr, "SELECT id FROM t WHERE v % 10 = 2")] == [i for i in v2 if (2 * i) % 10 == 2]
    assert [r[0] for r in q(udr, "SELECT id FROM t WHERE id > 299990")] == [i for i in v2 if i > 299990]
    assert [r[0] for r in q(udr, "SELECT id FROM t LIMIT 50 OFFSET 100003")] == v2[100003:100053]
    assert [r[0] for r in q(udr, "SELECT id FROM t@%d WHERE id < 40" % ver1)] == [i for i in v1 if i < 40]
    # an UPDATE: a deletion vector and a new part at the end
    w(udr, "UPDATE t SET v = -1 WHERE id IN (17, 18, 24, 25, 26, 27, 28, 29, 30, 31, 299999)")
    v3 = [i for i in v2 if i not in (17, 18, 24, 25, 26, 27, 28, 29, 30, 31, 299999)] + \
        [i for i in v2 if i in (17, 18, 24, 25, 26, 27, 28, 29, 30, 31, 299999)]
    assert [r[0] for r in q(udr, "SELECT id FROM t")] == v3
    assert q(udr, "SELECT count(*), sum(id) FROM t WHERE v = -1") == [
        (len([i for i in v2 if i in (17, 18, 24, 25, 26, 27, 28, 29, 30, 31, 299999)]),
         sum(i for i in v2 if i in (17, 18, 24, 25, 26, 27, 28, 29, 30, 31, 299999)))]
