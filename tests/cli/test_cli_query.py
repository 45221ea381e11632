"""udr import, export, sql, diff-rows: SQL over table versions (the query module)."""
import csv
import glob
import io
import json
import os
import shutil

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


def test_udr_tables_reads_the_version_files(udr, tmp_path):
    """Issue 14: name, version and commit come from the table state (as
    `udr tables`); each table's version file is read too (issue 13: a table
    whose latest version is a drop is not listed), so a damaged one is an
    integrity error whatever the columns read."""
    imp(udr, "a", write(tmp_path / "a.csv", "x\n1\n"), "-m", "load a")
    imp(udr, "b", write(tmp_path / "b.csv", "y\n2\n3\n"))
    full = sql(udr, "SELECT * FROM udr_tables ORDER BY name")
    assert [(r["name"], r["version"], r["rows"], r["parts"], r["format"], r["commit"], r["message"])
            for r in full] == [("a", 1, 1, 1, "parquet", 1, "load a"), ("b", 1, 2, 1, "parquet", 2, None)]
    vf = tmp_path / "store" / "catalog" / "tables" / "b" / ("%020d.json" % 1)
    assert vf.exists()
    vf.write_text("{ damaged")
    for q in ("SELECT count(*) AS n FROM udr_tables", "SELECT name FROM udr_tables",
              "SELECT message FROM udr_tables"):
        r = udr("sql", q)
        assert r.code == 4 and "udr_tables" in r.stderr, r


def test_cache_stats_and_clear(udr, tmp_path):
    """Issue 14: the query cache shows in stats, and `udr cache clear`
    empties it; a later query materializes again what it needs."""
    data = "id,v\n" + "".join("%d,%d\n" % (i, i * 7) for i in range(5000))
    # a CSV part stored zstd-compressed: read through the cache
    udr.ok("commit", "c", "--next", "--file", write(tmp_path / "c.csv", data),
           "--meta", "udr.format=csv")
    assert json.loads(udr.ok("cache", "--json").out) == {"parts": 0, "part_bytes": 0,
                                                          "temp_bytes": 0}
    assert sql(udr, "SELECT count(*) AS n, sum(v) AS s FROM c") == [{"n": 5000, "s": 7 * 12497500}]
    c = json.loads(udr.ok("cache", "--json").out)
    assert c["parts"] == 1 and c["part_bytes"] == len(data), c
    st = json.loads(udr.ok("stats", "--json").out)
    assert (st["query_cache_parts"], st["query_cache_bytes"]) == (1, len(data))
    assert "query cache:        1 part, " in udr.ok("stats").out
    out = udr.ok("cache", "clear").out
    assert out.startswith("removed 1 cached part, ") and "(%d bytes)" % len(data) in out, out
    assert json.loads(udr.ok("cache", "--json").out)["parts"] == 0
    assert sql(udr, "SELECT count(*) AS n FROM c") == [{"n": 5000}]
    assert json.loads(udr.ok("cache", "--json").out)["parts"] == 1
    r = udr("cache", "bogus")
    assert r.code == 2 and "unknown action" in r.stderr


def test_cache_clear_waits_for_running_statement(udr, tmp_path):
    """A statement holds a shared lock on cache/query while it may read
    cached parts: clear takes the exclusive lock (flock) first."""
    import fcntl
    import subprocess
    import time
    from conftest import UDR_BIN, base_env
    data = "id\n" + "".join("%d\n" % i for i in range(3000))
    udr.ok("commit", "c", "--next", "--file", write(tmp_path / "c.csv", data),
           "--meta", "udr.format=csv")
    sql(udr, "SELECT count(*) FROM c")
    cache = tmp_path / "store" / "cache" / "query"
    fd = os.open(cache, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as a running statement does
        p = subprocess.Popen([UDR_BIN, "--store", str(tmp_path / "store"), "cache", "clear"],
                             stdout=subprocess.PIPE, env=base_env())
        time.sleep(0.5)
        assert p.poll() is None  # waiting
        assert len(list(cache.glob("*.parquet"))) == 1
    finally:
        os.close(fd)
    assert p.wait(timeout=30) == 0
    assert p.stdout.read().startswith(b"removed 1 cached part")
    assert list(cache.glob("*.parquet")) == []


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
    udr.ok("sql", "CREATE TABLE x AS SELECT 1 AS a")  # a table of the store (SQL writes)
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


# ---- never wrong data (issue "Never wrong data, never a reused version") ----

def test_import_multi_file_csv_union_by_name(udr, tmp_path):
    """3. Files with different columns: the union by name, no column dropped."""
    x2 = write(tmp_path / "x2.csv", "id\n2\n")
    x1 = write(tmp_path / "x1.csv", "id,extra\n1,10\n")
    x3 = write(tmp_path / "x3.csv", "id,extra,more\n3,30,300\n")
    assert imp(udr, "m1", x2, x1, x3) == 1
    assert sql(udr, "SELECT * FROM m1 ORDER BY id") == [
        {"id": 1, "extra": 10, "more": None},
        {"id": 2, "extra": None, "more": None},
        {"id": 3, "extra": 30, "more": 300}]


def test_import_paths_are_literal_not_globs(udr, tmp_path):
    """4. A path with *, ? or [ ] names that one file, never the files it matches."""
    write(tmp_path / "b1.csv", "id\n1\n")
    write(tmp_path / "b[1].csv", "id\n99\n")
    write(tmp_path / "a1.csv", "id\n5\n")
    write(tmp_path / "a?.csv", "id\n7\n")
    write(tmp_path / "x*y.csv", "id\n8\n")
    write(tmp_path / "xzy.csv", "id\n9\n")
    assert imp(udr, "gb", str(tmp_path / "b[1].csv")) == 1
    assert sql(udr, "SELECT id FROM gb") == [{"id": 99}]
    assert imp(udr, "ga", str(tmp_path / "a?.csv")) == 1
    assert sql(udr, "SELECT id FROM ga") == [{"id": 7}]
    # relative, from the working directory
    r = udr("import", "gx", "x*y.csv", cwd=tmp_path)
    assert r.code == 0, r
    assert sql(udr, "SELECT id FROM gx") == [{"id": 8}]
    # no such file: not found, even though a pattern would match others
    r = udr("import", "gn", str(tmp_path / "b?.csv"))
    assert r.code == 1, r


def test_sql_store_root_with_glob_chars_reads_only_its_own_parts(tmp_path):
    """4. A store directory named st* does not read the parts of stA."""
    from conftest import Udr
    star, other = Udr(tmp_path / "st*"), Udr(tmp_path / "stA")
    star.ok("init")
    other.ok("init")
    imp(star, "t", write(tmp_path / "one.csv", "id\n1\n"))
    imp(other, "t", write(tmp_path / "two.csv", "id\n2\n"))
    # the same part name in both stores would hide the bug: different data
    assert sql(star, "SELECT id FROM t") == [{"id": 1}]
    assert sql(other, "SELECT id FROM t") == [{"id": 2}]
    out = tmp_path / "e.csv"
    assert star.ok("export", "t", out).out.strip() == "1 rows"
    assert out.read_text() == "id\n1\n"
    assert imp(star, "t", write(tmp_path / "three.csv", "id\n3\n"), "--append") == 2
    assert sql(star, "SELECT id FROM t ORDER BY id") == [{"id": 1}, {"id": 3}]


def test_table_named_like_a_column_is_resolved_only_where_bound(udr, tmp_path):
    """10. A table named `name` does not capture the column or alias `name`."""
    imp(udr, "name", write(tmp_path / "n.csv", "x\n1\n"))
    imp(udr, "users", write(tmp_path / "u.csv", "id,name\n1,ann\n2,bob\n"))
    assert sql(udr, "SELECT name FROM users ORDER BY id") == [{"name": "ann"}, {"name": "bob"}]
    assert sql(udr, "SELECT 'x' AS name") == [{"name": "x"}]
    assert sql(udr, "SELECT u.name FROM users u WHERE u.name = 'bob'") == [{"name": "bob"}]
    assert sql(udr, "SELECT x FROM name") == [{"x": 1}]
    assert sql(udr, 'SELECT x FROM "name@1"') == [{"x": 1}]
    assert sql(udr, "SELECT x FROM name@latest") == [{"x": 1}]
    # a damaged table that is only named as a column is never read: no hashing
    imp(udr, "big", write(tmp_path / "b.csv", "id\n1\n"))
    p = udr.chunk_path(show(udr, "big")["chunks"][0])
    os.chmod(p, 0o644)
    p.write_bytes(b"garbage")
    assert sql(udr, "SELECT 1 AS big") == [{"big": 1}]
    assert sql(udr, "WITH big AS (SELECT 2 AS v) SELECT v FROM big") == [{"v": 2}]
    r = udr("sql", "SELECT * FROM big")
    assert r.code == 4, r


def test_sql_cannot_write_into_the_store(udr, tmp_path):
    """11. COPY/EXPORT/ATTACH/logging, outputs inside the store, several
    statements and spliced queries are refused; reads of the user's files work."""
    from conftest import tree_snapshot
    data = write(tmp_path / "d.csv", "id\n1\n2\n")
    imp(udr, "t", data)
    root = udr.root
    before = tree_snapshot(root / "chunks"), tree_snapshot(root / "catalog"), \
        (root / "config.json").read_bytes()
    target = root / "chunks" / "x.csv"
    refused = [
        "COPY (SELECT 1) TO '%s'" % (root / "config.json"),
        "COPY t TO '%s'" % target,
        "EXPORT DATABASE '%s'" % (root / "exp"),
        "ATTACH '%s' AS a" % (root / "a.db"),
        "SELECT * FROM enable_logging(storage := 'file', storage_path := '%s')" % (root / "logs"),
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '%s'" % target,
        "SET temp_directory = '%s'" % (root / "chunks"),
        "PRAGMA enable_profiling",
        "SELECT 1; COPY (SELECT 1) TO '%s'" % target,
    ]
    for q in refused:
        r = udr("sql", q)
        assert r.code == 2, (q, r)
    assert "only one SQL statement" in udr("sql", "SELECT 1; SELECT 2").stderr
    # outputs inside the store, by any path that resolves there
    for out in (root / "config.json", root / "chunks" / "n.csv", tmp_path / "." / "store" / "x.csv"):
        r = udr("export", "t", out)
        assert r.code == 2 and "inside the store" in r.stderr, (out, r)
        r = udr("sql", "SELECT * FROM t", "-o", out)
        assert r.code == 2 and "inside the store" in r.stderr, (out, r)
    # a query spliced into COPY ( ... ) TO cannot write a second file
    side = tmp_path / "side.csv"
    r = udr("sql", "SELECT 1 AS a) TO '%s'; COPY (SELECT 1" % side, "-o", tmp_path / "o.csv")
    assert r.code == 2, r
    r = udr("sql", "SELECT 1 AS a) TO '%s' (FORMAT csv); --" % side, "-o", tmp_path / "o.csv")
    assert r.code == 2, r
    r = udr("import", "t2", "--sql", "SELECT 1 AS a) TO '%s' (FORMAT csv); --" % side)
    assert r.code == 2, r
    assert not side.exists() and not (tmp_path / "o.csv").exists()
    assert (tree_snapshot(root / "chunks"), tree_snapshot(root / "catalog"),
            (root / "config.json").read_bytes()) == before
    for name in ("exp", "a.db", "logs"):
        assert not (root / name).exists(), name
    assert udr("fsck").code == 0
    # reads of the user's own files still work, and writes outside the store
    assert sql(udr, "SELECT count(*) AS n FROM read_csv('%s')" % data) == [{"n": 2}]
    assert udr.ok("sql", "SELECT * FROM t ORDER BY id -- a comment", "-o",
                  tmp_path / "o.csv").out.strip() == "2 rows"
    assert (tmp_path / "o.csv").read_text() == "id\n1\n2\n"
    assert udr.ok("sql", "SELECT 1 AS a;", "--csv").out == "a\r\n1\r\n"
    assert imp(udr, "t3", "--sql", "SELECT * FROM read_csv('%s') ;" % data) == 1
    assert sql(udr, "SELECT count(*) AS n FROM t3") == [{"n": 2}]


def test_sql_on_read_only_store(udr, tmp_path):
    """12. Queries work on a store nobody may write (no cache/ is created)."""
    import shutil
    import stat
    import subprocess
    from conftest import UDR_BIN, base_env
    import tempfile
    from conftest import Udr
    imp(udr, "t", write(tmp_path / "d.csv", "id\n1\n2\n"))
    # a copy where another user can reach it (pytest's tmp_path is 0700)
    top = tempfile.mkdtemp(prefix="udr-ro-")
    os.chmod(top, 0o755)
    shutil.copytree(udr.root, os.path.join(top, "store"), symlinks=True,
                    ignore=shutil.ignore_patterns("cache"))
    udr = Udr(os.path.join(top, "store"))
    cmd = [UDR_BIN, "--store", str(udr.root), "sql", "SELECT sum(id) AS s FROM t", "--csv"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    for p in [udr.root, *udr.root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) | stat.S_IROTH |
                (stat.S_IXOTH if p.is_dir() else 0))
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(),
                           timeout=120)
        assert r.returncode == 0, r
        assert r.stdout == b"s\r\n3\r\n"
        assert not (udr.root / "cache").exists()
    finally:
        for p in [udr.root, *udr.root.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(top)


def _unpinned_store(tmp_path):
    """A store of table t, versions 1-3 each of a part of its own, that only
    root may write, in a directory others can reach; a pause directory
    anyone may write.  Returns (top, root, pause, {version: part file})."""
    import stat
    import tempfile
    from conftest import FAULT_INJECTION
    if not FAULT_INJECTION:
        pytest.skip("UDR_PAUSE needs a UDR_FAULT_INJECTION build")
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv: the reader runs as another user")

    def chunk_files():
        return {os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "chunks"))
                for f in fs if len(f) == 64}
    top = tempfile.mkdtemp(prefix="udr-unpinned-")
    os.chmod(top, 0o755)
    root = os.path.join(top, "store")
    assert run_udr("--store", root, "init").code == 0
    part = {}
    for i in range(3):
        before = chunk_files()
        data = "id\n" + "".join("%d\n" % (i * 1000 + k) for k in range(50))
        r = run_udr("--store", root, "import", "t", write(tmp_path / ("d%d.csv" % i), data))
        assert r.code == 0, r.stderr
        new = chunk_files() - before
        assert len(new) == 1
        part[i + 1] = new.pop()
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            os.chmod(p, os.stat(p).st_mode | stat.S_IROTH | (stat.S_IXOTH if n in dirs else 0))
    os.chmod(root, 0o755)
    pause = os.path.join(top, "pause")
    os.mkdir(pause)
    os.chmod(pause, 0o777)
    return top, root, pause, part


def _unpinned_read(root, pause, point, query, meanwhile):
    """Run query as another user (no lease: unpinned), held at the UDR_PAUSE
    point while meanwhile() runs; returns (exit code, stdout, stderr)."""
    import subprocess
    import time
    from conftest import UDR_BIN, base_env
    rd = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", UDR_BIN,
                           "--store", root, "sql", query, "--csv"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=base_env({"UDR_PAUSE": "%s:%s" % (point, pause)}))
    try:
        end = time.time() + 60
        while not os.path.exists(os.path.join(pause, point + ".reached")):
            assert rd.poll() is None, rd.communicate()
            assert time.time() < end, "the reader did not reach the pause"
            time.sleep(0.01)
        meanwhile()
        open(os.path.join(pause, point + ".go"), "w").close()
        out, err = rd.communicate(timeout=120)
    finally:
        if rd.poll() is None:
            rd.kill()
            rd.wait(60)
    return rd.returncode, out, err


def _gc_sweeps_t2(root):
    g = run_udr("--store", root, "gc", "--keep-last", "1", "--grace", "0s", "--json")
    assert g.code == 0, g.stderr
    assert json.loads(g.out)["retention"]["expired"]["ranges"] == {"t": [[1, 2]]}


@pytest.mark.parametrize("point", ["sql-pinned", "sql-bound"])
def test_unpinned_reader_of_a_version_gc_sweeps_gets_expired_not_damage(udr, tmp_path, point):
    """GC.md 1.5: a reader that cannot pin (a store it may not write) and
    finds the part of the version it resolved gone, because gc expired and
    swept it after the reader checked it, reports "expired by retention"
    (exit 6), never an integrity error (exit 4) or a part "stored intact but
    not readable" (exit 2): gc runs after the version was checked
    (sql-pinned) or after its parts were found and verified, before DuckDB
    reads them (sql-bound)."""
    top, root, pause, part = _unpinned_store(tmp_path)
    try:
        code, out, err = _unpinned_read(root, pause, point, "SELECT sum(id) AS s FROM t@2",
                                        lambda: _gc_sweeps_t2(root))
        assert not os.path.exists(part[2])
        assert code == 6, (code, out, err)
        assert b"expired by retention" in err
        assert out == b""
    finally:
        shutil.rmtree(top)


def test_lost_part_of_an_expired_unswept_version_is_damage(udr, tmp_path):
    """An expired version that no gc swept should still have its data: a
    part of it lost meanwhile is damage (exit 4, naming the part), not
    "expired ... its data is still stored", which would send the user to a
    restore that then fails."""
    top, root, pause, part = _unpinned_store(tmp_path)

    def expire_and_lose():
        g = run_udr("--store", root, "retention", "expire", "--keep-last", "1", "--json")
        assert g.code == 0, g.stderr
        assert os.path.exists(part[2]), "expiry alone swept data"
        os.unlink(part[2])
    try:
        code, out, err = _unpinned_read(root, pause, "sql-pinned", "SELECT sum(id) AS s FROM t@2", expire_and_lose)
        assert code == 4, (code, out, err)
        assert b"is missing from the store" in err
        assert os.path.basename(part[2]).encode() in err
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_dv_of_a_live_version_beside_swept_ones_is_damage(udr, how):
    """With t@1..2 expired and swept, damage to the deletion vector of the
    live latest version stays an integrity error (exit 4) naming it: the
    expiry re-check does not mask damage of a version that is kept."""
    for s in ("CREATE TABLE t AS SELECT range AS id FROM range(100)", "DELETE FROM t WHERE id < 3",
              "DELETE FROM t WHERE id = 50", "DELETE FROM t WHERE id = 60"):
        udr.ok("sql", s, "--no-compact")
    udr.ok("gc", "--keep-last", "2", "--grace", "0s")
    dv = json.loads(show(udr, "t")["metadata"]["udr.parts"])[0]["dv"]
    udr.damage(dv, how)
    r = udr("sql", "SELECT count(*) FROM t")
    assert r.code == 4, r
    assert "deletion vector %s" % dv in r.stderr


def test_stale_import_temp_dirs_are_removed(udr, tmp_path):
    """12. Part directories of killed imports are removed by the next import
    and by fsck; a live import's directory (locked) is kept."""
    import fcntl
    tmp = udr.root / "cache" / "query" / "tmp"
    imp(udr, "t", write(tmp_path / "d.csv", "id\n1\n"))

    def stale(n):
        d = tmp / ("import-999999-%d-deadbeef" % n)
        d.mkdir(parents=True)
        (d / "data_0.parquet").write_bytes(b"x" * 100)
        return d

    live = tmp / "import-1-1-00000000"
    live.mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        s1 = stale(1)
        r = udr("fsck")
        assert r.code == 0, r
        assert "1 temp file removed" in r.out, r
        assert not s1.exists() and live.exists()
        s2 = stale(2)
        assert imp(udr, "t", write(tmp_path / "e.csv", "id\n2\n"), "--append") == 2
        assert not s2.exists() and live.exists()
        assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("import-")) == [live.name]
    finally:
        os.close(fd)
    r = udr("fsck")
    assert r.code == 0 and "1 temp file removed" in r.out, r
    assert not live.exists()


# ---- issue 14: I/O errors, mixed formats, ragged CSV ----

def test_export_to_missing_directory_is_io_and_names_the_path(udr, tmp_path):
    imp(udr, "t", write(tmp_path / "t.csv", "x\n1\n"))
    out = tmp_path / "nonexistent" / "dir" / "x.csv"
    r = udr("export", "t", out)
    assert r.code == 5, r
    assert str(out) + '"' in r.stderr and ".udr-tmp-" not in r.stderr, r
    r = udr("sql", "SELECT 1 AS a", "-o", out)
    assert r.code == 5 and ".udr-tmp-" not in r.stderr, r


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_export_permission_denied_is_io(udr, tmp_path):
    imp(udr, "t", write(tmp_path / "t.csv", "x\n1\n"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = udr("export", "t", ro / "x.csv")
    finally:
        ro.chmod(0o700)
    assert r.code == 5, r


def test_import_mixed_formats_refused(udr, tmp_path):
    imp(udr, "t", write(tmp_path / "t.csv", "x\n1\n"))
    udr.ok("export", "t", tmp_path / "old.parquet")
    r = udr("import", "t2", write(tmp_path / "users.csv", "x\n2\n"), tmp_path / "old.parquet")
    assert r.code == 2, r
    assert r.stderr.startswith("udr: all input files must have one format: ")
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert udr("show", "t2").code == 1


@pytest.mark.parametrize("text,line,fields", [
    ("a,b\n1,2\n3\n4,5,6\n", 3, 1),
    ("a,b\n1,2\n4,5,6\n", 3, 3),
    ('a,b\n"x,\ny",2\n3\n', 4, 1),   # a quoted field spans lines 2-3
])
def test_import_ragged_csv_refused_with_line(udr, tmp_path, text, line, fields):
    r = udr("import", "t", write(tmp_path / "r.csv", text))
    assert r.code == 2, r
    assert "line %d has %d field" % (line, fields) in r.stderr, r
    assert udr("show", "t").code == 1


def test_import_csv_keeps_every_line(udr, tmp_path):
    imp(udr, "t", write(tmp_path / "t.csv", "a,b\n1,2\n3,4\n"))
    assert sql(udr, "SELECT a, b FROM t ORDER BY a") == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


# ---- tables of raw files (issue 13, "Also found") ----

def test_readme_first_section_raw_csv_then_sql(udr, tmp_path):
    """The README's first section commits a CSV file as is (put + commit):
    its next commands (sql, import --append, diff-rows, export) read it,
    the format taken from the bytes; nothing is an integrity error."""
    data = write(tmp_path / "data.csv", "id,name,score\n1,ann,10\n2,bob,20\n")
    h = udr.ok("put", data).out.strip()
    assert udr.ok("commit", "users", "--next", h, "-m", "load").out == "1\n"
    assert sql(udr, "SELECT count(*) AS n FROM users") == [{"n": 2}]
    assert sql(udr, "SELECT name FROM users WHERE id = ?", "int:2") == [{"name": "bob"}]
    # the same file again through commit --file (stored as a delta): version 2
    assert udr.ok("commit", "users", "--next", "--file", data).out == "2\n"
    # append keeps the raw part and adds a Parquet one: two formats, one table
    assert imp(udr, "users", write(tmp_path / "more.csv", "id,name,score\n3,cat,30\n"),
               "--append") == 3
    meta = show(udr, "users", "3")["metadata"]
    assert "udr.format" not in meta and meta["udr.rows"] == "3", meta
    assert sql(udr, "SELECT id, name, score FROM users") == [
        {"id": 1, "name": "ann", "score": 10}, {"id": 2, "name": "bob", "score": 20},
        {"id": 3, "name": "cat", "score": 30}]
    got = sql(udr, "SELECT * FROM udr_tables")
    assert (got[0]["rows"], got[0]["parts"], got[0]["format"]) == (3, 2, None), got
    diff = json.loads(udr.ok("diff-rows", "users", "1", "latest", "--key", "id", "--json").out)
    assert [(d["change"], d["id"]) for d in diff] == [("added", 3)]
    out = tmp_path / "old.parquet"
    assert udr.ok("export", "users@1", out).out == "2 rows\n"
    assert udr.ok("fsck").code == 0


def test_raw_json_and_mixed_parts_keep_row_order(udr, tmp_path):
    """JSON (array or lines) is told from CSV by its first character; a
    version of CSV and Parquet parts reads them in part order."""
    nd = write(tmp_path / "j.ndjson", '\ufeff {"id": 1, "x": "a"}\n{"id": 2, "x": "b"}\n')
    arr = write(tmp_path / "a.json", '[{"id": 3, "x": "c"}]')
    udr.ok("commit", "j", "--next", udr.ok("put", nd).out.strip(), udr.ok("put", arr).out.strip())
    assert sql(udr, "SELECT id, x FROM j ORDER BY id") == [
        {"id": 1, "x": "a"}, {"id": 2, "x": "b"}, {"id": 3, "x": "c"}]
    big = write(tmp_path / "b1.csv", "id\n" + "".join("%d\n" % i for i in range(5000)))
    udr.ok("commit", "m", "--next", udr.ok("put", big).out.strip())
    imp(udr, "m", write(tmp_path / "b2.csv", "id\n" + "".join("%d\n" % i for i in range(5000, 9000))),
        "--append")
    h = show(udr, "m")["chunks"][0]
    # CSV, Parquet, CSV again, and an empty chunk (no rows, skipped)
    empty = udr.ok("put", write(tmp_path / "e", "")).out.strip()
    parts = show(udr, "m")["chunks"] + [empty, h]
    udr.ok("commit", "m", "--next", *parts)
    ids = [r["id"] for r in sql(udr, "SELECT id FROM m")]
    assert ids == list(range(9000)) + list(range(5000))


def test_raw_parts_that_sql_cannot_read_are_not_integrity_errors(udr, tmp_path):
    """Binary or compressed content, or text that is not CSV/JSON as
    labelled: a clear error (exit 2) naming the part; fsck is clean."""
    import gzip
    b = tmp_path / "b.bin"
    b.write_bytes(b"\x00\x01\x02binary\x00")
    hb = udr.ok("put", b).out.strip()
    udr.ok("commit", "bin", "--next", hb)
    r = udr("sql", "SELECT * FROM bin")
    assert r.code == 2 and hb in r.stderr and "binary" in r.stderr, r
    g = tmp_path / "g.csv.gz"
    g.write_bytes(gzip.compress(b"id\n1\n"))
    udr.ok("commit", "gz", "--next", udr.ok("put", g).out.strip())
    r = udr("sql", "SELECT * FROM gz")
    assert r.code == 2 and "gzip-compressed" in r.stderr, r
    # labelled JSON, but not JSON: DuckDB's error, the part is intact
    t = write(tmp_path / "t.txt", "id,name\n1,a\n")
    ht = udr.ok("put", t).out.strip()
    udr.ok("commit", "lab", "--next", ht, "--meta", "udr.format=json")
    r = udr("sql", "SELECT * FROM lab")
    assert r.code == 2 and ht in r.stderr and "stored intact" in r.stderr, r
    assert udr.ok("fsck").code == 0
    # damage is still damage: exit 4
    where, _ = udr.damage(ht, "flip")
    if where == "pack":
        # a packed part is read through the query cache, whose verified copy
        # is still good: fsck finds the damage; once the cache is gone, SQL too
        assert udr("fsck").code == 4
        shutil.rmtree(udr.root / "cache")
    r = udr("sql", "SELECT * FROM lab")
    assert r.code == 4 and ht in r.stderr, r


def test_empty_version_is_refused_then_reads_as_no_data(udr, tmp_path):
    """`commit --next` without a hash is refused (nothing written) unless
    --allow-empty; SQL on such a version says there is no data (exit 2),
    and a version with a udr.schema reads as an empty typed table."""
    r = udr("commit", "users", "--next")
    assert r.code == 2 and "--allow-empty" in r.stderr and r.stdout == b"", r
    r = udr("commit", "users", "1", "-m", "x")
    assert r.code == 2 and "nothing to commit" in r.stderr, r
    assert udr("versions", "users").code == 1
    assert udr.ok("log", "--json").out.strip() == "[]"
    h = udr.ok("put", write(tmp_path / "u.csv", "id\n1\n")).out.strip()
    udr.ok("commit", "users", "--next", h)
    assert udr.ok("commit", "users", "--next", "--allow-empty").out == "2\n"
    r = udr("sql", "SELECT count(*) FROM users")
    assert r.code == 2 and "has no data" in r.stderr and "users@1" in r.stderr, r
    assert sql(udr, "SELECT count(*) AS n FROM users@1") == [{"n": 1}]
    udr.ok("commit", "typed", "--next", "--allow-empty",
           "--meta", 'udr.schema=[{"name":"id","type":"BIGINT"}]')
    assert sql(udr, "SELECT count(*) AS n FROM typed") == [{"n": 0}]
    r = udr("commit", "--spec", "-", "--allow-empty", input=b"{}")
    assert r.code == 2, r


# ---- streamed output (issue 13, "Also found") ----

@pytest.mark.parametrize("fmt", ["--table", "--csv", "--json", "--ndjson"])
def test_sql_streams_and_a_closed_pipe_is_not_an_error(udr, tmp_path, fmt):
    """Rows are written as DuckDB produces them, in every format: the first
    lines of a result far too large to hold arrive at once, and a reader
    that stops (`| head`) ends udr quietly with exit 0."""
    import subprocess
    import time
    from conftest import UDR_BIN, base_env
    start = time.monotonic()
    p = subprocess.Popen([UDR_BIN, "--store", str(tmp_path / "store"), "sql",
                          "SELECT i, 'row ' || i AS s FROM range(10000000000) t(i)", fmt],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env())
    first = [p.stdout.readline() for _ in range(3)]
    p.stdout.close()  # as head does
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0, err
    assert err == b"" and time.monotonic() - start < 30
    assert b"row 0" in b"".join(first) or b"row 0" in first[-1], first


def test_sql_error_while_streaming_exits_2(udr):
    r = udr("sql", "SELECT CASE WHEN i = 1200000 THEN error('boom') ELSE i END AS x "
            "FROM range(1500000) t(i)", "--csv")
    assert r.code == 2 and "boom" in r.stderr, r.stderr


def test_sql_table_output_aligns_per_batch(udr):
    """A stream's table is measured batch by batch (2,048 rows): a wider
    value in a later batch widens its column from there on."""
    out = udr.ok("sql", "SELECT CASE WHEN i < 3000 THEN 'x' ELSE 'wider' END AS v, i "
                 "FROM range(3001) t(i)").out.splitlines()
    assert out[:3] == ["v | i", "--+-----", "x |    0"]
    assert out[2 + 2047:2 + 2049] == ["x | 2047", "x     | 2048"]  # the second batch
    assert out[-2:] == ["wider | 3000", "(3001 rows)"]
    # small results align as a whole
    out = udr.ok("sql", "SELECT * FROM (VALUES (1, 'a'), (100, 'bbbb')) t(n, s)").out
    assert out == "n   | s\n----+-----\n  1 | a\n100 | bbbb\n(2 rows)\n"


def test_an_empty_version_reference_is_refused(udr, tmp_path):
    """export 't@', diff-rows t '' 1 (and Python version='') read the latest
    version with exit 0, while SQL's "t@" is malformed (a helper's review)."""
    write(tmp_path / "a.csv", "id,v\n1,a\n")
    write(tmp_path / "b.csv", "id,v\n1,b\n")
    imp(udr, "t", tmp_path / "a.csv")
    imp(udr, "t", tmp_path / "b.csv")
    r = udr("export", "t@", tmp_path / "out.csv")
    assert r.code == 2 and "empty version reference" in r.stderr, r
    assert not (tmp_path / "out.csv").exists()
    r = udr("diff-rows", "t", "", "1", "--key", "id")
    assert r.code == 2 and "empty version reference" in r.stderr, r
    assert udr("diff-rows", "t", "1", "2", "--key", "id").code == 0


def test_diff_rows_sees_signed_zero_and_nan_sign(udr):
    """0.0 -> -0.0 and NaN -> -NaN are changes to SQL writes, keyed imports
    and merges; diff-rows compared with IS DISTINCT FROM and listed nothing
    (both reviews of this stop)."""
    udr.ok("sql", "CREATE TABLE f AS SELECT * FROM (VALUES (1, 0.0::DOUBLE), (2, 'NaN'::DOUBLE), "
                  "(3, 1.0::DOUBLE), (4, 2.5::REAL)) x(id, v)")
    udr.ok("sql", "BEGIN; DELETE FROM f WHERE id < 3; "
                  "INSERT INTO f VALUES (1, '-0.0'::DOUBLE), (2, '-NaN'::DOUBLE); COMMIT")
    got = json.loads(udr.ok("diff-rows", "f", "1", "2", "--key", "id", "--json").out)
    assert sorted((r["change"], r["id"]) for r in got) == [("changed", 1), ("changed", 2)], got
    assert udr.ok("diff-rows", "f", "1", "1", "--key", "id", "--csv").out.splitlines()[1:] == []


@pytest.mark.parametrize("name,magic", [("out.csv.gz", b"\x1f\x8b"), ("out.ndjson.zst", b"\x28\xb5\x2f\xfd"),
                                        ("out.json.gz", b"\x1f\x8b")])
def test_export_compresses_by_the_name(udr, tmp_path, name, magic):
    """export to out.csv.gz wrote plain text (DuckDB took the compression
    from the temp file's name), which import then refused (a helper's
    review)."""
    write(tmp_path / "a.csv", "id,v\n1,a\n2,b\n")
    imp(udr, "t", tmp_path / "a.csv")
    out = tmp_path / name
    udr.ok("export", "t", out)
    assert out.read_bytes()[:len(magic)] == magic
    imp(udr, "u", out)
    assert udr.ok("sql", "SELECT * FROM u EXCEPT SELECT * FROM t", "--csv").out.split() == ["id,v"]
    assert udr.ok("sql", "SELECT count(*) AS n FROM u", "--csv").out.split() == ["n", "2"]
    out2 = tmp_path / ("q-" + name)
    udr.ok("sql", "SELECT * FROM t", "-o", out2)
    assert out2.read_bytes()[:len(magic)] == magic
