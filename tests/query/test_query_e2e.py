"""End to end through the public query API (driven by udrq): import, time
travel, joins of versions, the changelog, diff-rows, export round trips,
output modes and the error codes of bad input."""
import csv
import glob
import io
import json
import os

EINVAL, ENOTFOUND, ECORRUPT = 2, 3, 5


def write(path, text):
    path.write_text(text)
    return str(path)


def rows(udrq, sql, *params):
    args = ["sql", sql, "--mode", "json"]
    for p in params:
        args += ["-p", p]
    return json.loads(udrq.run(*args).stdout)


def test_import_query_and_output_modes(udrq, tmp_path):
    f = write(tmp_path / "u.csv", 'id,name\n1,ann\n2,"b, ""q"""\n3,\n')
    assert udrq.run("import", "users", f, "-m", "first").stdout.strip() == "users@1"
    assert rows(udrq, "SELECT * FROM users ORDER BY id") == [
        {"id": 1, "name": "ann"}, {"id": 2, "name": 'b, "q"'}, {"id": 3, "name": None}]
    out = udrq.run("sql", "SELECT * FROM users ORDER BY id", "--mode", "csv").stdout
    assert list(csv.reader(io.StringIO(out))) == [["id", "name"], ["1", "ann"], ["2", 'b, "q"'], ["3", ""]]
    table = udrq.run("sql", "SELECT * FROM users ORDER BY id").stdout
    assert table.splitlines()[0].split("|")[0].strip() == "id" and "(3 rows)" in table
    nd = udrq.run("sql", "SELECT id FROM users ORDER BY id", "--mode", "ndjson").stdout
    assert [json.loads(line) for line in nd.splitlines()] == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_time_travel_join_and_log(udrq, tmp_path):
    udrq.run("import", "t", write(tmp_path / "a.csv", "k,v\n1,a\n2,b\n"))
    udrq.run("import", "t", "--append", write(tmp_path / "b.csv", "k,v\n3,c\n"))
    udrq.run("import", "t", write(tmp_path / "c.csv", "k,v\n1,A\n3,c\n"))
    assert rows(udrq, "SELECT count(*) AS n FROM t@1") == [{"n": 2}]
    assert rows(udrq, "SELECT count(*) AS n FROM t@2") == [{"n": 3}]
    assert rows(udrq, 'SELECT count(*) AS n FROM "t@latest"') == [{"n": 2}]
    got = rows(udrq, "SELECT a.k, a.v AS old, b.v AS new FROM t@2 a JOIN t@3 b USING (k) ORDER BY k")
    assert got == [{"k": 1, "old": "a", "new": "A"}, {"k": 3, "old": "c", "new": "c"}]
    log = rows(udrq, 'SELECT seq, "table", old_version, new_version, '
                     "strftime(time, '%Y-%m-%dT%H:%M:%S.%gZ') AS t FROM udr_log ORDER BY seq")
    assert [(r["old_version"], r["new_version"]) for r in log] == [(0, 1), (1, 2), (2, 3)]
    for r in log:  # a time reference selects the version current at that time
        assert udrq.run("resolve", f"t@{r['t']}").stdout.strip() == str(r["new_version"])
    assert rows(udrq, f'SELECT count(*) AS n FROM "t@{log[0]["t"]}"') == [{"n": 2}]


def test_diff_rows(udrq, tmp_path):
    udrq.run("import", "p", write(tmp_path / "1.csv", "id,name,price\n1,a,10\n2,b,20\n3,c,30\n"))
    udrq.run("import", "p", write(tmp_path / "2.csv", "id,name,price\n1,a,10\n2,b,21\n4,d,40\n"))
    out = udrq.run("diff-rows", "p", "1", "2", "--key", "id", "--mode", "json").stdout
    got = {r["id"]: r for r in json.loads(out)}
    assert got[2]["change"] == "changed" and got[2]["old.price"] == 20 and got[2]["new.price"] == 21
    assert got[3]["change"] == "removed" and got[3]["new.name"] is None
    assert got[4]["change"] == "added" and got[4]["new.name"] == "d"
    assert 1 not in got


def test_export_round_trips(udrq, tmp_path):
    src = write(tmp_path / "src.csv", "id,when,amount,note\n1,2024-01-02,1.5,x\n2,2024-02-03,,\"a\nb\"\n")
    udrq.run("import", "s", src)
    for ext in ("csv", "parquet", "json", "ndjson"):
        out = tmp_path / f"out.{ext}"
        assert udrq.run("export", "s@1", out).stdout.strip() == "2 rows"
        udrq.run("import", f"s_{ext}", out)
        diff = rows(udrq, f"SELECT count(*) AS n FROM (SELECT id, amount, note FROM s "
                          f"EXCEPT SELECT id, amount, note FROM s_{ext})")
        assert diff == [{"n": 0}], ext
    first = (tmp_path / "out.csv").read_bytes()
    udrq.run("export", "s_csv", tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == first
    # a query result straight to Parquet, with a bound parameter
    assert udrq.run("sql", "SELECT * FROM s WHERE id = ?", "-p", "int:2",
                    "--out", tmp_path / "q.parquet").stdout.strip() == "1 rows"
    udrq.run("import", "q", tmp_path / "q.parquet")
    assert rows(udrq, "SELECT id FROM q") == [{"id": 2}]
    assert not glob.glob(str(tmp_path / "*.udr-tmp-*"))


def test_params_are_never_spliced(udrq, tmp_path):
    udrq.run("import", "u", write(tmp_path / "u.csv", "name\nx\n"))
    evil = "x'; DROP TABLE u; --"
    assert rows(udrq, "SELECT ? AS s", evil) == [{"s": evil}]
    assert rows(udrq, "SELECT count(*) AS n FROM u WHERE name = ?", "x") == [{"n": 1}]


def test_bad_input_exit_codes(udrq, tmp_path):
    udrq.run("import", "u", write(tmp_path / "u.csv", "id\n1\n"))
    p = udrq.run("sql", "SELEC 1", check=False)
    assert p.returncode == EINVAL and "syntax error" in p.stderr
    p = udrq.run("sql", "SELECT * FROM nope", check=False)
    assert p.returncode == ENOTFOUND and "nope" in p.stderr
    p = udrq.run("sql", "SELECT * FROM nope@1", check=False)
    assert p.returncode == ENOTFOUND and "'nope'" in p.stderr
    p = udrq.run("sql", "SELECT * FROM u@7", check=False)
    assert p.returncode == ENOTFOUND and "version 7" in p.stderr
    for sql in ['SELECT * FROM "u@1; DROP VIEW u"', "SELECT * FROM u@1x", 'SELECT * FROM "u@1\'"']:
        p = udrq.run("sql", sql, check=False)
        assert p.returncode == EINVAL, sql
    assert rows(udrq, "SELECT count(*) AS n FROM u") == [{"n": 1}]
    p = udrq.run("import", "u", "--append", write(tmp_path / "w.csv", "other\n1\n"), check=False)
    assert p.returncode == EINVAL and "schema mismatch" in p.stderr
    p = udrq.run("import", "u", tmp_path / "missing.csv", check=False)
    assert p.returncode == ENOTFOUND


def test_damaged_part_is_corrupt(udrq, tmp_path):
    udrq.run("import", "d", write(tmp_path / "d.csv", "id,name\n1,a\n2,b\n"))
    objs = [p for p in glob.glob(os.path.join(udrq.root, "chunks", "??", "??", "*")) if os.path.isfile(p)]
    assert objs
    for p in objs:
        os.chmod(p, 0o644)
        with open(p, "r+b") as f:
            f.seek(0)
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))
    p = udrq.run("sql", "SELECT * FROM d", check=False)
    assert p.returncode == ECORRUPT and "table d version 1" in p.stderr
