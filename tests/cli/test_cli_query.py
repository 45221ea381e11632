"""udr import, export, sql, diff-rows: SQL over table versions (the query module)."""
import csv
import glob
import io
import json
import os

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module (DuckDB: scripts/fetch-duckdb.sh)",
                allow_module_level=True)


def write(path, text):
    path.write_text(text)
    return str(path)


def sql(udr, query, *params):
    args = ["sql", query, "--json"]
    for p in params:
        args += ["-p", p]
    return json.loads(udr.ok(*args).out)


def imp(udr, table, *args):
    r = udr.ok("import", table, *args)
    return int(r.out.strip())


def show(udr, table, *args):
    return json.loads(udr.ok("show", table, *args).out)


# ---- import and time travel ----

def test_time_travel_ten_versions(udr, tmp_path):
    """Ten versions by overwrite and append; each reads back as imported."""
    expected = {}
    rows = []
    plan = ["overwrite", "append", "append", "overwrite", "append",
            "overwrite", "overwrite", "append", "append", "append"]
    for v, mode in enumerate(plan, 1):
        new = [(v * 100 + i, "v%d-%d" % (v, i)) for i in range(v % 3 + 1)]
        f = write(tmp_path / ("v%d.csv" % v),
                  "id,name\n" + "".join("%d,%s\n" % r for r in new))
        args = [f, "-m", "version %d" % v]
        if mode == "append":
            args.append("--append")
        assert imp(udr, "t", *args) == v
        rows = rows + new if mode == "append" else new
        expected[v] = sorted(rows)
    for v, want in expected.items():
        got = sql(udr, "SELECT id, name FROM t@%d ORDER BY id" % v)
        assert [(r["id"], r["name"]) for r in got] == want, v
        assert show(udr, "t", str(v))["message"] == "version %d" % v
    # the bare name and @latest are the last version
    last = [(r["id"], r["name"]) for r in sql(udr, "SELECT * FROM t ORDER BY id")]
    assert last == expected[10]
    assert sql(udr, 'SELECT count(*) AS n FROM "t@latest"') == [{"n": len(expected[10])}]
    # an append reuses the previous version's parts unchanged
    c8, c9 = show(udr, "t", "8")["chunks"], show(udr, "t", "9")["chunks"]
    assert c9[:len(c8)] == c8 and len(c9) == len(c8) + 1
    # a time reference selects the version current at that time
    log = sql(udr, "SELECT new_version AS v, strftime(time, '%Y-%m-%dT%H:%M:%S.%gZ') AS t "
                   "FROM udr_log WHERE \"table\" = 't' ORDER BY seq")
    assert [r["v"] for r in log] == list(range(1, 11))
    for r in (log[0], log[4], log[9]):
        got = sql(udr, 'SELECT id, name FROM "t@%s" ORDER BY id' % r["t"])
        assert [(x["id"], x["name"]) for x in got] == expected[r["v"]]


def test_join_two_versions(udr, tmp_path):
    imp(udr, "p", write(tmp_path / "1.csv", "id,price\n1,10\n2,20\n3,30\n"))
    imp(udr, "p", write(tmp_path / "2.csv", "id,price\n1,10\n2,25\n4,40\n"))
    got = sql(udr, "SELECT a.id, a.price AS old, b.price AS new FROM p@1 a "
                   "JOIN p@2 b USING (id) WHERE a.price <> b.price ORDER BY id")
    assert got == [{"id": 2, "old": 20, "new": 25}]
    got = sql(udr, 'SELECT count(*) AS n FROM "p@1" JOIN "p@latest" USING (id)')
    assert got == [{"n": 2}]


def test_changelog_table(udr, tmp_path):
    imp(udr, "a", write(tmp_path / "a.csv", "x\n1\n"), "-m", "load a")
    imp(udr, "b", write(tmp_path / "b.csv", "y\n2\n"))
    imp(udr, "a", write(tmp_path / "a2.csv", "x\n3\n"), "--append", "-m", "more a")
    got = sql(udr, 'SELECT seq, "table", old_version, new_version, message, branch '
                   "FROM udr_log ORDER BY seq")
    assert [(r["seq"], r["table"], r["old_version"], r["new_version"]) for r in got] == [
        (1, "a", 0, 1), (2, "b", 0, 1), (3, "a", 1, 2)]
    assert got[0]["message"] == "load a" and got[2]["message"] == "more a"
    assert {r["branch"] for r in got} == {"main"}
    tables = sql(udr, "SELECT name, version, rows FROM udr_tables ORDER BY name")
    assert tables == [{"name": "a", "version": 2, "rows": 2}, {"name": "b", "version": 1, "rows": 1}]


def test_import_sql_with_params(udr, tmp_path):
    imp(udr, "src", write(tmp_path / "s.csv", "id,v\n1,a\n2,b\n3,c\n"))
    assert imp(udr, "dst", "--sql", "SELECT * FROM src WHERE id >= ?", "-p", "int:2",
               "-m", "from sql") == 1
    assert sql(udr, "SELECT id FROM dst ORDER BY id") == [{"id": 2}, {"id": 3}]
    assert show(udr, "dst")["metadata"]["udr.source"] == "sql"
    assert imp(udr, "dst", "--append", "--sql", "SELECT * FROM src@1 WHERE id = 1") == 2
    assert sql(udr, "SELECT count(*) AS n FROM dst") == [{"n": 3}]


def test_import_formats_and_metadata(udr, tmp_path):
    nd = write(tmp_path / "d.ndjson", '{"k": 1, "s": "x"}\n{"k": 2, "s": null}\n')
    assert imp(udr, "j", nd) == 1
    meta = show(udr, "j")["metadata"]
    assert meta["udr.format"] == "parquet" and meta["udr.rows"] == "2"
    assert meta["udr.source"] == "json"
    assert [c["name"] for c in json.loads(meta["udr.schema"])] == ["k", "s"]
    # --format overrides the extension
    f = write(tmp_path / "data.txt", "a;b\n1;2\n")
    imp(udr, "c", f, "--format", "csv")
    assert sql(udr, "SELECT * FROM c") == [{"a": 1, "b": 2}]
    r = udr("import", "c", f, "--format", "xml")
    assert r.code == 2 and "--format" in r.stderr


# ---- diff-rows ----

def test_diff_rows(udr, tmp_path):
    imp(udr, "p", write(tmp_path / "1.csv", "id,name,price\n1,a,10\n2,b,20\n3,c,30\n"))
    imp(udr, "p", write(tmp_path / "2.csv", "id,name,price\n1,a,10\n2,b,21\n4,d,40\n"))
    got = {r["id"]: r for r in json.loads(udr.ok("diff-rows", "p", "1", "2", "--key", "id",
                                                 "--json").out)}
    assert set(got) == {2, 3, 4}
    assert got[2]["change"] == "changed"
    assert (got[2]["old.price"], got[2]["new.price"]) == (20, 21)
    assert got[3]["change"] == "removed" and got[3]["old.name"] == "c" and got[3]["new.name"] is None
    assert got[4]["change"] == "added" and got[4]["new.price"] == 40
    out = udr.ok("diff-rows", "p", "1", "latest", "--key", "id", "--csv").out
    lines = list(csv.reader(io.StringIO(out)))
    assert lines[0][:2] == ["change", "id"] and [r[0] for r in lines[1:]] == ["changed", "removed", "added"]
    # composite key, given as a list and as repeated options
    imp(udr, "m", write(tmp_path / "m1.csv", "a,b,v\n1,1,x\n1,2,y\n"))
    imp(udr, "m", write(tmp_path / "m2.csv", "a,b,v\n1,1,x\n1,2,z\n"))
    for keys in (["--key", "a,b"], ["--key", "a", "--key", "b"]):
        got = json.loads(udr.ok("diff-rows", "m", "1", "2", *keys, "--json").out)
        assert [(r["change"], r["a"], r["b"], r["old.v"], r["new.v"]) for r in got] == [
            ("changed", 1, 2, "y", "z")]
    r = udr("diff-rows", "m", "1", "2", "--key", "a")  # not unique
    assert r.code == 2 and "udr: " in r.stderr
    r = udr("diff-rows", "m", "1", "2")
    assert r.code == 2 and "--key" in r.stderr
    r = udr("diff-rows", "m", "1", "9", "--key", "a,b")
    assert r.code == 1 and "9" in r.stderr


# ---- export ----

def test_export_round_trips(udr, tmp_path):
    text = 'id,when,amount,note\n1,2024-01-02,1.5,x\n2,2024-02-03,,"a\nb"\n3,2024-03-04,-2.25,""\n'
    src = write(tmp_path / "src.csv", text)
    imp(udr, "s", src)
    # CSV -> import -> export -> the same rows
    assert udr.ok("export", "s", tmp_path / "out.csv").out.strip() == "3 rows"
    want = list(csv.reader(io.StringIO(text)))
    assert list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text()))) == want
    imp(udr, "s2", tmp_path / "out.csv")
    udr.ok("export", "s2@1", tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()
    # through Parquet, JSON and NDJSON
    base = sql(udr, "SELECT * FROM s ORDER BY id")
    for ext in ("parquet", "json", "ndjson"):
        out = tmp_path / ("out." + ext)
        assert udr.ok("export", "s@1", out).out.strip() == "3 rows"
        imp(udr, "s_" + ext, out)
        assert sql(udr, "SELECT * FROM s_%s ORDER BY id" % ext) == base, ext
    # an explicit format, and an older version
    imp(udr, "s", write(tmp_path / "more.csv", "id,when,amount,note\n9,2024-09-09,9,z\n"), "--append")
    udr.ok("export", "s@1", tmp_path / "v1.data", "--format", "csv")
    assert len(list(csv.reader(io.StringIO((tmp_path / "v1.data").read_text())))) == 4
    assert udr.ok("export", "s", tmp_path / "v2.csv").out.strip() == "4 rows"
    assert not glob.glob(str(tmp_path / "*tmp*"))
    r = udr("export", "s@7", tmp_path / "none.csv")
    assert r.code == 1 and not (tmp_path / "none.csv").exists()


# ---- sql: parameters and output ----

def test_parameters(udr, tmp_path):
    imp(udr, "u", write(tmp_path / "u.csv", "id,name,score\n1,ann,1.5\n2,bob,\n3,o'neil,3\n"))
    assert sql(udr, "SELECT name FROM u WHERE id = ?", "int:3") == [{"name": "o'neil"}]
    assert sql(udr, "SELECT name FROM u WHERE name = ?", "o'neil") == [{"name": "o'neil"}]
    assert sql(udr, "SELECT id FROM u WHERE id > ? AND score < ?", "1", "float:5") == [{"id": 3}]
    assert sql(udr, "SELECT ? IS NULL AS n, ? AS b, ? AS t", "null", "bool:true", "text:null") == [
        {"n": True, "b": True, "t": "null"}]
    evil = "x'; DROP VIEW u; --"
    assert sql(udr, "SELECT ? AS s", evil) == [{"s": evil}]
    assert sql(udr, "SELECT count(*) AS n FROM u WHERE name = ?", evil) == [{"n": 0}]
    assert sql(udr, "SELECT count(*) AS n FROM u") == [{"n": 3}]
    r = udr("sql", "SELECT ?, ?", "-p", "1")
    assert r.code == 2 and "parameter" in r.stderr
    r = udr("sql", "SELECT ?", "-p", "int:abc")
    assert r.code == 2 and "int:abc" in r.stderr


def test_output_modes(udr, tmp_path):
    imp(udr, "u", write(tmp_path / "u.csv", 'id,name\n1,ann\n2,"b, ""q"""\n3,\n'))
    q = "SELECT * FROM u ORDER BY id"
    table = udr.ok("sql", q).out
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["id", "name"]
    assert "(3 rows)" in table
    assert udr.ok("sql", q, "--table").out == table
    out = udr.ok("sql", q, "--csv").out
    assert list(csv.reader(io.StringIO(out))) == [["id", "name"], ["1", "ann"], ["2", 'b, "q"'], ["3", ""]]
    assert json.loads(udr.ok("sql", q, "--json").out) == [
        {"id": 1, "name": "ann"}, {"id": 2, "name": 'b, "q"'}, {"id": 3, "name": None}]
    nd = udr.ok("sql", q, "--ndjson").out
    assert [json.loads(x)["id"] for x in nd.splitlines()] == [1, 2, 3]
    # -o FILE: streamed to a file, read back through a new table
    assert udr.ok("sql", "SELECT * FROM u WHERE id <> ?", "-p", "int:2",
                  "-o", tmp_path / "r.parquet").out.strip() == "2 rows"
    imp(udr, "r", tmp_path / "r.parquet")
    assert sql(udr, "SELECT id FROM r ORDER BY id") == [{"id": 1}, {"id": 3}]
    udr.ok("sql", q, "--output", tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "id,name"
    assert sql(udr, "SELECT 1 AS one WHERE false") == []


# ---- errors ----

def test_sql_error_is_invalid_with_duckdb_message(udr, tmp_path):
    imp(udr, "u", write(tmp_path / "u.csv", "id\n1\n"))
    r = udr("sql", "SELEC 1")
    assert r.code == 2 and r.stdout == b""
    assert r.stderr.startswith("udr: ") and "syntax error" in r.stderr
    # DuckDB repeats its "LINE 1: ... ^" context; the message shows it once
    assert r.stderr.count("LINE 1:") == 1, r.stderr
    r = udr("sql", "SELECT nope FROM u")
    assert r.code == 2 and "nope" in r.stderr and "Binder Error" in r.stderr
    r = udr("sql", "SELECT 'x'::INTEGER")
    assert r.code == 2 and "Conversion Error" in r.stderr
    r = udr("import", "u", write(tmp_path / "w.csv", "other\n1\n"), "--append")
    assert r.code == 2 and "other" in r.stderr


def test_unknown_table_version_time_branch(udr, tmp_path):
    imp(udr, "u", write(tmp_path / "u.csv", "id\n1\n"))
    cases = [("SELECT * FROM nope", "nope"),
             ("SELECT * FROM nope@1", "'nope'"),
             ("SELECT * FROM u@7", "version 7"),
             ('SELECT * FROM "u@2000-01-01"', "2000-01-01"),
             ("SELECT * FROM u@branch:dev", "dev"),
             ("SELECT * FROM u@commit:99", "99")]
    for q, name in cases:
        r = udr("sql", q)
        assert r.code == 1, (q, r)
        assert name in r.stderr, (q, r)
    r = udr("export", "nope", tmp_path / "x.csv")
    assert r.code == 1 and "nope" in r.stderr
    r = udr("import", "u", tmp_path / "missing.csv")
    assert r.code == 1
    r = udr("import", "z", "--append", "--sql", "SELECT * FROM nope")
    assert r.code == 1 and "nope" in r.stderr
    r = run_udr("--store", tmp_path / "nostore", "sql", "SELECT 1")
    assert r.code == 1 and "not a udr store" in r.stderr


def test_injection_in_references_is_refused(udr, tmp_path):
    imp(udr, "t", write(tmp_path / "t.csv", "id\n1\n2\n"))
    udr.ok("sql", "CREATE TABLE x AS SELECT 1 AS a")  # lives in this session only
    for q in ['SELECT * FROM "t@1; DROP TABLE x"',
              "SELECT * FROM t@1x",
              'SELECT * FROM "t@1\'; DROP TABLE t; --"',
              'SELECT * FROM "t@1\\" ; DROP TABLE t"']:
        r = udr("sql", q)
        assert r.code == 2, (q, r)
        assert r.stdout == b""
    r = udr("export", "t@1; DROP TABLE x", tmp_path / "e.csv")
    assert r.code == 2 and not (tmp_path / "e.csv").exists()
    r = udr("diff-rows", "t", "1", "1; DROP TABLE t", "--key", "id")
    assert r.code == 2
    r = udr("import", "t; DROP TABLE t", write(tmp_path / "i.csv", "id\n3\n"))
    assert r.code == 2
    assert sql(udr, "SELECT count(*) AS n FROM t") == [{"n": 2}]
    assert json.loads(udr.ok("versions", "t", "--json").out) == [1]


def test_meta_is_refused_not_dropped(udr, tmp_path):
    r = udr("import", "t", write(tmp_path / "t.csv", "id\n1\n"), "--meta", "k=v")
    assert r.code == 2 and "--meta" in r.stderr
    assert udr.ok("tables").out == ""


def test_usage_errors(udr, tmp_path):
    for args in (["import"], ["import", "t"], ["export", "t"], ["sql"],
                 ["sql", "SELECT 1", "extra"], ["diff-rows", "t", "1"],
                 ["import", "t", "f.csv", "--sql", "SELECT 1"],
                 ["import", "t", "f.csv", "-p", "1"], ["sql", "SELECT 1", "--bogus"]):
        r = udr(*args)
        assert r.code == 2, (args, r)
        assert r.stderr.startswith("udr: ") and "usage: udr" in r.stderr, args


# ---- parts: whole, in place; verified ----

def big_csv(path, n):
    with open(path, "w") as f:
        f.write("id,payload\n")
        for i in range(n):
            f.write("%d,%s\n" % (i, os.urandom(12).hex()))
    return str(path)


def cache_parts(udr):
    return glob.glob(str(udr.root / "cache" / "query" / "*.parquet"))


def test_parts_stored_whole_and_read_in_place(udr, tmp_path):
    # large enough that a default put would split and compress it
    imp(udr, "big", big_csv(tmp_path / "big.csv", 40000))
    v = show(udr, "big")
    assert len(v["chunks"]) == 1
    h = v["chunks"][0]
    objs = udr.objects(h)
    assert set(objs) == {""}, objs  # one raw file: no .m manifest, no .zst
    assert objs[""] == udr.chunk_path(h)
    assert udr.chunk_path(h).stat().st_size > 512 * 1024
    assert udr.chunk_path(h).read_bytes()[:4] == b"PAR1"
    assert sql(udr, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM big") == [
        {"n": 40000, "d": 40000}]
    assert cache_parts(udr) == []
    imp(udr, "big", write(tmp_path / "more.csv", "id,payload\n-1,x\n"), "--append")
    assert sql(udr, "SELECT count(*) AS n FROM big@2") == [{"n": 40001}]
    for h in show(udr, "big")["chunks"]:
        assert set(udr.objects(h)) == {""}
    assert cache_parts(udr) == []


def test_parts_not_plain_are_read_through_the_cache(udr, tmp_path):
    """A store written before parts were stored whole: the part is split and
    compressed; it is materialized once into the cache."""
    imp(udr, "big", big_csv(tmp_path / "big.csv", 40000))
    # other bytes than the stored part (which a put would just find)
    udr.ok("sql", "SELECT * FROM big ORDER BY id DESC", "-o", tmp_path / "big.parquet")
    h = udr.put((tmp_path / "big.parquet").read_bytes())  # a default put
    assert "" not in udr.objects(h)
    meta = show(udr, "big")["metadata"]
    args = ["commit", "old", "--next", h]
    for k in ("udr.format", "udr.schema", "udr.rows", "udr.source"):
        args += ["--meta", "%s=%s" % (k, meta[k])]
    udr.ok(*args)
    assert sql(udr, "SELECT count(*) AS n FROM old") == [{"n": 40000}]
    assert [os.path.basename(p) for p in cache_parts(udr)] == [h + ".parquet"]
    assert sql(udr, "SELECT count(*) AS n FROM (SELECT * FROM old EXCEPT SELECT * FROM big)") == [
        {"n": 0}]
    assert sql(udr, "SELECT count(*) AS n FROM old") == [{"n": 40000}]  # from the cache again


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_part_is_integrity_error(udr, tmp_path, damage):
    imp(udr, "d", write(tmp_path / "d.csv", "id,name\n1,a\n2,b\n"))
    h = show(udr, "d")["chunks"][0]
    p = udr.chunk_path(h)
    os.chmod(p, 0o644)
    data = p.read_bytes()
    if damage == "flip":
        data = data[:10] + bytes([data[10] ^ 1]) + data[11:]
    else:
        data = data[:len(data) // 2]
    p.write_bytes(data)
    for args in (["sql", "SELECT * FROM d"], ["export", "d", tmp_path / "o.csv"],
                 ["diff-rows", "d", "1", "1", "--key", "id"]):
        r = udr(*args)
        assert r.code == 4, (args, r)
        assert h in r.stderr and "table d version 1" in r.stderr, r
    assert not (tmp_path / "o.csv").exists()
    p.unlink()
    r = udr("sql", "SELECT * FROM d")
    assert r.code == 4 and h in r.stderr and "missing" in r.stderr


# ---- help ----

@pytest.mark.parametrize("cmd", ["import", "export", "sql", "diff-rows"])
def test_help(run, tmp_path, cmd):
    r = run("--store", tmp_path / "none", cmd, "--help")
    assert r.code == 0 and r.stderr == ""
    assert r.out.startswith("usage: udr %s" % cmd)
    assert not (tmp_path / "none").exists()
    if cmd != "import":
        assert "2026-11-01" in r.out  # the reference syntax
    assert "\n  %s " % cmd in run("--help").out
