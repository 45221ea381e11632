"""Bad input on every command (a helper's review, stop 36): each case
wrote into the store, or did something else than asked, with exit 0 or
after failing."""
import json
import os
import shutil

import pytest

from conftest import run_udr, tree_snapshot

_help = run_udr("sql", "--help")
HAVE_QUERY = _help.code == 0 and "without the query module" not in _help.out + _help.stderr
needs_query = pytest.mark.skipif(not HAVE_QUERY, reason="udr was built without the query module")


def catalog_format(udr):
    return json.loads((udr.root / "catalog" / "config.json").read_text())["format"]


def test_a_bad_message_upgrades_nothing(udr, tmp_path):
    """retention set -m <not UTF-8> failed (exit 2) after upgrading the
    catalog's format, which older udr versions then refuse."""
    f = tmp_path / "t.bin"
    f.write_bytes(b"x" * 100)
    udr.ok("commit", "t", "--next", "--file", str(f))
    before, fmt = tree_snapshot(udr.root), catalog_format(udr)
    bad = os.fsdecode(b"\xff")  # passed to the command as the byte 0xFF
    for args in (["retention", "set", "--keep-last", "1", "-m", bad],
                 ["commit", "t", "--next", "--file", str(f), "-m", bad]):
        r = udr(*args)
        assert r.code == 2 and "UTF-8" in r.stderr, (args, r)
        assert catalog_format(udr) == fmt
    assert {k: v for k, v in tree_snapshot(udr.root).items() if k.startswith("catalog/")} == \
        {k: v for k, v in before.items() if k.startswith("catalog/")}


@needs_query
@pytest.mark.parametrize("flag", ["--csv", "--json", "--ndjson", "--table"])
def test_sql_output_flags_with_a_file_are_refused(udr, tmp_path, flag):
    """--json -o x.csv wrote CSV with exit 0."""
    out = tmp_path / "x.csv"
    r = udr("sql", "SELECT 1 AS a", flag, "-o", str(out))
    assert r.code == 2 and "standard output" in r.stderr and not out.exists(), r
    udr.ok("sql", "SELECT 1 AS a", "-o", str(tmp_path / "y.ndjson"))
    assert (tmp_path / "y.ndjson").read_text() == '{"a":1}\n'


@needs_query
def test_a_file_that_says_size_0_is_read_for_what_it_holds(udr, tmp_path):
    """/proc/self/status (st_size 0) was read as empty: exit 0 and a table
    of no rows, where a copy of the same bytes is refused (ragged lines)."""
    r = udr("import", "p", "/proc/self/status", "--format", "csv")
    assert r.code == 2 and "fields" in r.stderr, r
    shutil.copy("/proc/self/status", tmp_path / "st.txt")
    r2 = udr("import", "p", str(tmp_path / "st.txt"), "--format", "csv")
    assert r2.code == 2 and "fields" in r2.stderr, r2
    # one line: a header alone, as the same bytes in a file
    udr.ok("import", "h", "/proc/sys/kernel/ostype", "--format", "csv")
    assert udr.ok("sql", "--csv", "SELECT count(*) FROM h").out.split()[-1] == "0"
    assert json.loads(udr.ok("sql", "--json", "DESCRIBE h").out)[0]["column_name"] == \
        open("/proc/sys/kernel/ostype").read().strip()


@pytest.mark.parametrize("case", ["import-branch", "import-msg", "sql-msg", "optimize-msg", "commit-branch",
                                  "commit-msg"])
def test_arguments_are_checked_before_anything_is_stored(udr, tmp_path, case):
    """A branch that does not exist or a message that is not UTF-8 was
    found at the commit, after the data had been stored (garbage until a
    gc): refused first now, nothing written."""
    if case in ("import-branch", "import-msg", "sql-msg", "optimize-msg") and not HAVE_QUERY:
        pytest.skip("needs the query module")
    bad = os.fsdecode(b"\xff")
    data = tmp_path / "d.csv"
    data.write_text("id,v\n1,2\n3,4\n")
    blob = tmp_path / "b.bin"
    blob.write_bytes(os.urandom(5000))
    if HAVE_QUERY:
        udr.ok("import", "t", str(data))
        udr.ok("sql", "DELETE FROM t WHERE id = 1", "--no-compact")
    else:
        udr.ok("commit", "t", "--next", "--file", str(data))
    before = tree_snapshot(udr.root)
    args = {"import-branch": ["import", "t", str(data), "--branch", "nosuch"],
            "import-msg": ["import", "t", str(data), "-m", bad],
            "sql-msg": ["sql", "INSERT INTO t VALUES (5, 6)", "-m", bad],
            "optimize-msg": ["optimize", "t", "--full", "-m", bad],
            "commit-branch": ["commit", "t", "--next", "--file", str(blob), "--branch", "nosuch"],
            "commit-msg": ["commit", "u", "--next", "--file", str(blob), "-m", bad]}[case]
    r = udr(*args)
    assert r.code in (1, 2) and ("not found" in r.stderr or "UTF-8" in r.stderr), r
    assert tree_snapshot(udr.root) == before


def test_an_option_that_would_be_ignored_is_refused(udr, tmp_path):
    """commit --file A --file B committed B alone; --meta k=v --meta k=w
    kept w; merge --table nosuch=ours was ignored (all exit 0, or the
    merge's own outcome)."""
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 100)
    before = tree_snapshot(udr.root)
    r = udr("commit", "t", "--next", "--file", str(a), "--file", str(b))
    assert r.code == 2 and "--file can be given once" in r.stderr, r
    r = udr("commit", "t", "--next", "--file", str(a), "--meta", "k=v", "--meta", "k=w")
    assert r.code == 2 and "--meta k given twice" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    udr.ok("commit", "t", "--next", "--file", str(a), "--meta", "k=v", "--meta", "j=w")
    udr.ok("branch", "create", "dev")
    udr.ok("commit", "t", "--next", "--file", str(b), "--branch", "dev")
    udr.ok("commit", "t", "--next", "--file", str(b))
    udr.ok("commit", "t", "--next", "--file", str(a))
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--table", "nosuch=ours")
    assert r.code == 2 and "--table names table nosuch, which neither side has" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    udr.ok("merge", "dev", "--table", "t=ours")


def test_messages_say_what_is_wrong(udr, tmp_path):
    """Each said something else: reflog --limit 0 'invalid version number';
    commit:<20 digits> 'needs a number >= 1'; a directory as a spec or
    policy 'line 1 column 0' / 'read error'; fsck --repair-from a missing
    file checked the whole store first, then failed."""
    f = tmp_path / "a.bin"
    f.write_bytes(b"a" * 100)
    udr.ok("commit", "t", "--next", "--file", str(f))
    for cmd in (["reflog"], ["log"]):
        for bad in ("0", "-1", "abc"):
            r = udr(*cmd, "--limit", bad)
            assert r.code == 2 and 'invalid --limit "%s" (expected an integer >= 1)' % bad in r.stderr, (cmd, r)
    r = udr("branch", "create", "x", "--from", "commit:99999999999999999999")
    assert r.code == 1 and "not found" in r.stderr, r
    d = tmp_path / "dir"
    d.mkdir()
    r = udr("commit", "--spec", str(d))
    assert r.code == 2 and "is a directory" in r.stderr, r
    r = udr("retention", "set", str(d))
    assert r.code == 2 and "is a directory" in r.stderr, r
    r = udr("fsck", "--repair-from", str(tmp_path / "nofile"))
    assert r.code == 1 and "nofile" in r.stderr and r.out == "", r
    r = run_udr("--store", str(tmp_path / "new"), "init", "--chunk-avg", "3")
    assert r.code == 2 and "not given" in r.stderr, r


@needs_query
def test_a_query_that_looks_like_an_option_gets_a_hint(udr):
    r = udr("sql", "-- a comment\nSELECT 1")
    assert r.code == 2 and "goes after --" in r.stderr, r
    assert udr.ok("sql", "--csv", "--", "-- a comment\nSELECT 1 AS x").out.splitlines() == ["x", "1"]


@needs_query
def test_an_append_on_main_after_a_branch_made_the_newest_version(udr, tmp_path):
    """import --append on main conflicted on every retry (exit 3) once
    another branch held the table's newest version: it asked for main's
    latest + 1, a number the branch had taken."""
    files = {}
    for n, row in (("a", "1,a"), ("b", "2,b"), ("c", "3,c")):
        files[n] = tmp_path / (n + ".csv")
        files[n].write_text("id,x\n%s\n" % row)
    udr.ok("import", "t", str(files["a"]))
    udr.ok("branch", "create", "dev")
    udr.ok("import", "t", str(files["b"]), "--append", "--branch", "dev")
    v = udr.ok("import", "t", str(files["c"]), "--append").out.strip()
    assert v == "3"
    udr.ok("import", "t", str(files["c"]), "--append", "--branch", "main")
    assert udr.ok("sql", "--csv", "SELECT * FROM t ORDER BY ALL").out.splitlines() == ["id,x", "1,a", "3,c", "3,c"]
    assert udr.ok("sql", "--csv", "--branch", "dev", "SELECT * FROM t ORDER BY ALL").out.splitlines() == \
        ["id,x", "1,a", "2,b"]
    udr.ok("fsck")


@needs_query
def test_a_branch_made_from_a_fresh_branch_is_no_second_merge_base(udr):
    """rel made at main, x made from rel (no commit of its own yet): rel's
    create record and a later main commit were both merge bases of main and
    x, and the merge was refused as a criss-cross (exit 3)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id")
    udr.ok("sql", "CREATE TABLE u AS SELECT 1 AS id")
    udr.ok("branch", "create", "rel")
    udr.ok("branch", "create", "x", "--from", "rel")
    udr.ok("sql", "INSERT INTO t VALUES (2)")
    udr.ok("merge", "main", "--into", "x")
    udr.ok("sql", "--branch", "rel", "INSERT INTO u VALUES (5)")
    udr.ok("merge", "rel", "--into", "main")
    udr.ok("sql", "--branch", "x", "INSERT INTO t VALUES (3)")
    udr.ok("merge", "x", "--into", "main")
    got = udr.ok("sql", "--csv", "SELECT (SELECT list(id ORDER BY id) FROM t)::VARCHAR AS t, "
                 "(SELECT list(id ORDER BY id) FROM u)::VARCHAR AS u").out.splitlines()
    assert got == ["t,u", '"[1, 2, 3]","[1, 5]"'], got
    udr.ok("fsck")


@needs_query
def test_key_of_an_up_to_date_merge(udr):
    """merge tag:v1 --key t=id said "--key names table t, which neither
    side has" (exit 2) when main had dropped t since v1: nothing merges."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id")
    udr.ok("tag", "create", "v1")
    udr.ok("sql", "DROP TABLE t")
    assert "already up to date" in udr.ok("merge", "tag:v1", "--key", "t=id").out


@needs_query
@pytest.mark.parametrize("ext", ["ndjson", "json", "csv"])
def test_a_field_name_with_a_quote_imports_back(udr, tmp_path, ext):
    """The checks' message spliced the column's type into a SQL string: a
    STRUCT field named it's broke the statement (Parser Error, exit 2)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id, {'it''s': 'a'} AS v, {'it''s': 1} AS w")
    f = tmp_path / ("t." + ext)
    udr.ok("export", "t", str(f))
    udr.ok("import", "t", str(f), "--key", "id")
    udr.ok("import", "t", str(f), "--append")
    assert udr.ok("sql", "--csv", "SELECT count(*) FROM t").out.split()[-1] == "2"


def test_commit_file_on_main_of_a_fresh_store(udr, tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("id\n1\n")
    assert udr.ok("commit", "t", "--next", "--file", str(f), "--branch", "main").out.strip() == "1"


@needs_query
def test_struct_fields_named_like_json_paths(udr, tmp_path):
    """A field named $x or /y was given to json_extract as a path (a
    binder error on every append of the table's own export)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 1 AS id, {'$x': {'a': 1}, '/y': {'b': 'q'}, 'a.b': {'c': 1}} AS v")
    f = tmp_path / "t.ndjson"
    udr.ok("export", "t", str(f))
    udr.ok("import", "t", str(f), "--append")
    ok = '{"id":2,"v":{"$x":{"a":1},"/y":{"b":"q"},"a.b":{"c":1}}}'
    for bad in (ok.replace('{"a":1}', '{"a":1,"zz":2}'), ok.replace('{"b":"q"}', '{"b":"q","zz":1}'),
                ok.replace('{"c":1}', '{"c":1,"zz":1}')):
        f.write_text(bad + "\n")
        r = udr("import", "t", str(f), "--append")
        assert r.code == 2 and "column v: " in r.stderr, (bad, r)
    assert udr.ok("sql", "--csv", "SELECT count(*) FROM t").out.split()[-1] == "2"


def test_log_shows_control_characters_in_a_message(udr, tmp_path):
    """log printed messages raw: an ESC sequence colored the terminal and a
    CR let a message overwrite its own line with a fake one."""
    f = tmp_path / "a"
    f.write_bytes(b"x")
    udr.ok("commit", "t", "--next", "--file", str(f), "-m", "hi\x1b[31mRED\rcommit 99\ttab\nsecond")
    out = udr.ok("log").out
    assert "\x1b" not in out and "\r" not in out, out
    assert "    hi\\x1b[31mRED\\x0dcommit 99\ttab\n    second\n" in out, out
    graph = udr.ok("log", "--graph").out
    assert "\x1b" not in graph and "hi\\x1b[31mRED" in graph, graph
    assert json.loads(udr.ok("log", "--json").out)[0]["message"] == "hi\x1b[31mRED\rcommit 99\ttab\nsecond"
