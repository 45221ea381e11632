"""DROP TABLE: the table is gone from the latest listings (udr tables,
udr_tables, Python list_tables), its versions stay readable by number and
time, the name can be created again, and udr log / versions show the drop
as a drop (docs/FORMAT.md "Dropped tables")."""
import json

import pytest

from conftest import run_udr

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module", allow_module_level=True)


def tables(udr, *args):
    return json.loads(udr.ok("tables", "--json", *args).out)


def sqlrows(udr, q, *args):
    return [tuple(r.values()) for r in json.loads(udr.ok("sql", q, "--json", *args).out or "[]")]


@pytest.fixture
def dropped(udr, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,v\n1,a\n2,b\n")
    udr.ok("import", "t", f)
    udr.ok("import", "keep", f)
    udr.ok("sql", "UPDATE t SET v = 'B' WHERE id = 2", "--no-compact")
    before = json.loads(udr.ok("show", "t").out)["created"]
    udr.ok("sql", "DROP TABLE t")
    return udr, before


def test_dropped_table_is_gone_from_listings(dropped):
    udr, _ = dropped
    assert tables(udr) == ["keep"]
    assert udr.ok("tables").out.split() == ["keep"]
    assert sqlrows(udr, "SELECT name FROM udr_tables") == [("keep",)]
    r = udr("sql", "SELECT * FROM t")
    assert r.code == 1 and "does not exist" in r.stderr, r


def test_versions_of_a_dropped_table_stay_readable(dropped):
    udr, before = dropped
    assert udr.ok("versions", "t").out.splitlines() == ["1", "2", "3 (dropped)"]
    assert json.loads(udr.ok("versions", "t", "--json").out) == [1, 2, 3]
    assert json.loads(udr.ok("show", "t", "2").out)["version"] == 2
    assert sqlrows(udr, "SELECT id, v FROM t@2 ORDER BY id") == [(1, "a"), (2, "B")]
    assert sqlrows(udr, 'SELECT count(*) FROM "t@%s"' % before) == [(2,)]
    r = udr("sql", "SELECT * FROM t@3")
    assert r.code == 1 and "dropped" in r.stderr, r


def test_log_shows_the_drop(dropped):
    udr, _ = dropped
    text = udr.ok("log", "--limit", "1").out
    assert "t: 2 -> dropped (3)" in text, text
    ch = json.loads(udr.ok("log", "--limit", "1", "--json").out)[0]["changes"][0]
    assert ch["new"] == 3 and ch["dropped"] is True
    ch = json.loads(udr.ok("log", "--limit", "2", "--json").out)[1]["changes"][0]
    assert "dropped" not in ch
    assert sqlrows(udr, "SELECT new_version, dropped FROM udr_log WHERE \"table\" = 't' ORDER BY seq") == [
        (1, False), (2, False), (3, True)]


def test_name_can_be_created_again(dropped, tmp_path):
    udr, _ = dropped
    udr.ok("sql", "CREATE TABLE t AS SELECT 42 AS answer")
    assert tables(udr) == ["keep", "t"]
    assert udr.ok("versions", "t").out.splitlines() == ["1", "2", "3 (dropped)", "4"]
    assert sqlrows(udr, "SELECT * FROM t") == [(42,)]
    assert "t: 3 -> 4" in udr.ok("log", "--limit", "1").out
    # a commit of chunks on top of a drop makes the table exist again too
    udr.ok("sql", "DROP TABLE t")
    assert tables(udr) == ["keep"]
    udr.ok("commit", "t", "--next", udr.put(b"id\n1\n"))
    assert tables(udr) == ["keep", "t"]


def test_drop_on_a_branch(dropped):
    udr, _ = dropped
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "DROP TABLE keep", "--branch", "dev")
    assert tables(udr, "--branch", "dev") == []
    assert tables(udr) == ["keep"]
    assert sqlrows(udr, "SELECT name FROM udr_tables", "--branch", "dev") == []
    assert sqlrows(udr, "SELECT name FROM udr_tables") == [("keep",)]
