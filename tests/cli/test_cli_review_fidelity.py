"""Data fidelity through round trips (a helper's review, stop 35): what an
export writes must come back as it was, or be refused, never changed with
exit 0."""
import json

import pytest

from conftest import run_udr, tree_snapshot

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


@pytest.mark.parametrize("ext", ["ndjson", "json"])
@pytest.mark.parametrize("how", [["--key", "id"], ["--append"]])
def test_blob_exported_to_json_comes_back_as_its_bytes(udr, tmp_path, ext, how):
    # the JSON reader took a BLOB's text ("\x00\xFF") as its bytes: 8 bytes
    # where 2 were, committed with exit 0
    udr.ok("sql", "CREATE TABLE b AS SELECT 1 AS id, '\\x00\\xFF'::BLOB AS x UNION ALL SELECT 2, 'a\\x5Cb'::BLOB")
    f = tmp_path / ("b." + ext)
    udr.ok("export", "b", str(f))
    udr.ok("import", "b", str(f), *how)
    got = json.loads(udr.ok("sql", "--json", "SELECT id, hex(x) AS h FROM b ORDER BY ALL").out)
    want = [{"id": 1, "h": "00FF"}, {"id": 2, "h": "615C62"}]
    assert got == (want if how[0] == "--key" else sorted(want + want, key=lambda r: (r["id"], r["h"])))


def test_blob_text_that_is_no_blob_is_refused(udr, tmp_path):
    udr.ok("sql", "CREATE TABLE b AS SELECT 1 AS id, 'x'::BLOB AS x")
    f = tmp_path / "b.ndjson"
    f.write_text('{"id": 2, "x": "a\\\\q"}\n')
    before = tree_snapshot(udr.root)
    r = udr("import", "b", str(f), "--append")
    assert r.code == 2 and "column x: " in r.stderr and "not a valid BLOB" in r.stderr, r
    assert tree_snapshot(udr.root) == before


def test_blob_inside_a_list_is_refused_from_json(udr, tmp_path):
    udr.ok("sql", "CREATE TABLE b AS SELECT 1 AS id, ['\\x00'::BLOB] AS x")
    f = tmp_path / "b.ndjson"
    udr.ok("export", "b", str(f))
    before = tree_snapshot(udr.root)
    r = udr("import", "b", str(f), "--key", "id")
    assert r.code == 2 and "BLOB inside a list or struct" in r.stderr, r
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("text", ["[\n\t\n]\n", "[]", "  [ ]  \n"])
@pytest.mark.parametrize("how", [[], ["--key", "id"], ["--append"]])
def test_an_empty_json_array_is_refused(udr, tmp_path, text, how):
    # an empty table exported to .json is "[]": imported, it replaced the
    # table with one column "json" of no rows
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id, 'a' AS s")
    f = tmp_path / "t.json"
    f.write_text(text)
    before = tree_snapshot(udr.root)
    r = udr("import", "t", str(f), *how)
    assert r.code == 2 and "empty JSON array" in r.stderr, r
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--ndjson"], ["--csv"]])
@pytest.mark.parametrize("expr", ["['a' || chr(0) || 'b', 'c']", "{'k': 'x' || chr(0) || 'y'}",
                                  "MAP {'k': 'v' || chr(0)}"])
def test_a_nul_inside_a_nested_value_is_refused_not_cut(udr, fmt, expr):
    # DuckDB's text of a nested value is a C string: ['a\0b', 'c'] showed
    # as "[a" with exit 0, in every output and in diff-rows
    r = udr("sql", *fmt, "SELECT %s AS l" % expr)
    assert r.code == 2 and "NUL character" in r.stderr and "[a" not in r.out, r
    # a top-level text keeps its NUL (escaped in JSON), as before
    if fmt == ["--json"]:
        assert json.loads(udr.ok("sql", "--json", "SELECT 'p' || chr(0) || 'q' AS s").out) == [{"s": "p\x00q"}]


def test_diff_rows_of_a_list_with_a_nul_is_refused(udr):
    udr.ok("sql", "CREATE TABLE q AS SELECT 1 AS id, ['a' || chr(0) || 'b'] AS l")
    udr.ok("sql", "UPDATE q SET l = ['a' || chr(0) || 'c']")
    r = udr("diff-rows", "q", "1", "2", "--key", "id")
    assert r.code == 2 and "NUL character" in r.stderr, r
