"""udr import of inputs that are not plain files with rows: pipes, FIFOs,
ragged files among several, empty files (docs/QUERY.md, "The command line")."""
import csv
import io
import os
import subprocess
import threading

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, next_fault_step, run_udr, tree_snapshot

_help = run_udr("sql", "--help")
if _help.code != 0 or "without the query module" in _help.out + _help.stderr:
    pytest.skip("udr was built without the query module (DuckDB: scripts/fetch-duckdb.sh)",
                allow_module_level=True)

ROWS = "a,b\n1,x\n2,y\n3,z\n"


def table_csv(udr, table):
    """The header and rows of table, rows sorted (udr sql --csv)."""
    out = udr.ok("sql", 'SELECT * FROM "%s" ORDER BY ALL' % table, "--csv").out
    rows = list(csv.reader(io.StringIO(out)))
    return rows[0], rows[1:]


def tmp_entries(udr):
    """What is left under the query cache's temp area (cache/query/tmp), the
    DuckDB spill directory aside."""
    d = udr.root / "cache" / "query" / "tmp"
    return sorted(p.name for p in d.iterdir() if p.name != "duckdb") if d.is_dir() else []


def log_text(udr):
    return udr.ok("log", "--json").out


def udr_direct(udr, args, timeout=60, **kw):
    """udr run with subprocess directly (pass_fds, stdin, a short timeout)."""
    return subprocess.run([UDR_BIN, "--store", str(udr.root), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=base_env(), timeout=timeout, **kw)


# ---- pipes and FIFOs: copied once, imported from the copy ------------------------------------


def test_import_from_stdin_pipe(udr):
    r = udr("import", "t", "/dev/stdin", "--format", "csv", input=ROWS)
    assert r.code == 0, r
    assert r.out.strip() == "1"
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
    assert tmp_entries(udr) == []
    # JSON through a pipe: its keys, not one column "json"
    r = udr("import", "j", "/dev/stdin", "--format", "ndjson", input='{"k":1,"v":"p"}\n{"k":2,"v":"q"}\n')
    assert r.code == 0, r
    assert table_csv(udr, "j") == (["k", "v"], [["1", "p"], ["2", "q"]])
    # a header alone through a pipe: its columns, no rows (as from a file)
    r = udr("import", "h", "/dev/stdin", "--format", "csv", input="a,b\n")
    assert r.code == 0, r
    assert table_csv(udr, "h") == (["a", "b"], [])
    assert tmp_entries(udr) == []


def test_import_dash_is_stdin(udr):
    """`udr import t -` looked for a file named "-" (exit 1)."""
    r = udr("import", "t", "-", "--format", "csv", input=ROWS)
    assert r.code == 0 and r.out.strip() == "1", r
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
    r = udr("import", "t", "-", "--format", "ndjson", "--append", input='{"a":4,"b":"w"}\n')
    assert r.code == 0 and r.out.strip() == "2", r
    before = tree_snapshot(udr.root)
    r = udr("import", "u", "-", input=ROWS)
    assert r.code == 2 and "needs --format" in r.stderr, r
    r = udr("import", "u", "-", "-", "--format", "csv", input=ROWS)
    assert r.code == 2 and "once" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    assert tmp_entries(udr) == []


def test_import_from_process_substitution(udr):
    """<(cat f.csv): a pipe read as /dev/fd/N, here written by a thread."""
    rfd, wfd = os.pipe()

    def feed():
        with os.fdopen(wfd, "wb") as w:
            w.write(ROWS.encode())

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        p = udr_direct(udr, ["import", "t", "/dev/fd/%d" % rfd, "--format", "csv"], pass_fds=(rfd,),
                       stdin=subprocess.DEVNULL)
    finally:
        os.close(rfd)
    t.join(10)
    assert p.returncode == 0, p.stderr
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
    assert tmp_entries(udr) == []


def test_import_from_fifo_with_one_writer(udr, tmp_path):
    """A named FIFO written once: the import read it to the end, then opened it
    again and blocked forever (no writer left)."""
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as w:
            w.write(ROWS.encode())

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        p = udr_direct(udr, ["import", "t", fifo], timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("import from a FIFO blocked")
    finally:
        if t.is_alive():  # the writer still waits for a reader: release it
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            t.join(5)
            os.close(fd)
    assert p.returncode == 0, p.stderr
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
    assert tmp_entries(udr) == []


def test_refused_pipe_leaves_nothing(udr):
    """A pipe's copy is removed on failure too, and nothing is committed."""
    udr.ok("import", "t", "/dev/stdin", "--format", "csv", input=ROWS)
    before = log_text(udr)
    r = udr("import", "t", "/dev/stdin", "--format", "csv", input="a,b\n1,x\n2,y,extra\n")
    assert r.code == 2, r
    assert "'/dev/stdin'" in r.stderr and "line 3 has 3 fields" in r.stderr, r
    r = udr("import", "t", "/dev/stdin", "--format", "csv", input="")
    assert r.code == 2, r
    assert "'/dev/stdin'" in r.stderr and "is empty: no header" in r.stderr, r
    assert log_text(udr) == before
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
    assert tmp_entries(udr) == []


# ---- every file checked as if imported alone ---------------------------------------------------


@pytest.mark.parametrize("order", ["ragged-second", "ragged-first"])
def test_ragged_file_among_several_refused(udr, tmp_path, order):
    ok = tmp_path / "ok.csv"
    ok.write_text("id,name\n1,a\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,name\n1,a\n2,b,c\n3\n")
    udr.ok("import", "x", ok)
    before_log = log_text(udr)
    before = tree_snapshot(udr.root)
    files = [ok, ragged] if order == "ragged-second" else [ragged, ok]
    r = udr("import", "x", *files)
    assert r.code == 2, r
    assert "ragged.csv" in r.stderr and "line 3 has 3 fields" in r.stderr, r
    r = udr("import", "y", *files)
    assert r.code == 2, r
    assert log_text(udr) == before_log
    assert tree_snapshot(udr.root) == before
    assert table_csv(udr, "x") == (["id", "name"], [["1", "a"]])
    assert udr("show", "y").code == 1


# ---- empty inputs: no header, no columns -------------------------------------------------------


@pytest.mark.parametrize("name,text", [
    ("zero.csv", ""),
    ("blank.csv", "\n\n\r\n"),
    ("bom.csv", "\ufeff\n"),
    ("empty.json", ""),
    ("blank.ndjson", "\n \n"),
])
def test_empty_file_refused(udr, tmp_path, name, text):
    ok = tmp_path / "ok.csv"
    ok.write_text("id,name\n1,a\n")
    empty = tmp_path / name
    empty.write_text(text)
    udr.ok("import", "t", ok)
    before_log = log_text(udr)
    before = tree_snapshot(udr.root)
    r = udr("import", "t", empty)
    assert r.code == 2, r
    assert name in r.stderr and "is empty" in r.stderr, r
    if name.endswith(".csv"):
        assert "no header" in r.stderr, r
        # with another file, in either place
        for files in ([ok, empty], [empty, ok]):
            r = udr("import", "t", *files)
            assert r.code == 2, r
            assert name in r.stderr and "is empty: no header" in r.stderr, r
    r = udr("import", "new", empty)
    assert r.code == 2, r
    assert log_text(udr) == before_log
    assert tree_snapshot(udr.root) == before
    assert table_csv(udr, "t") == (["id", "name"], [["1", "a"]])
    assert udr("show", "new").code == 1
    # a header alone is still a table without rows, with its columns
    header = tmp_path / "header.csv"
    header.write_text("id,name\n")
    udr.ok("import", "t", header)
    assert table_csv(udr, "t") == (["id", "name"], [])


# ---- the copy of a pipe under failures -----------------------------------------------------------


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")
def test_pipe_copy_under_write_failures(udr):
    """The n-th write fails (the copy's first): the import fails, its copy
    is removed, and nothing is committed; once no write fails, the rows."""
    n = 1
    while True:
        r = udr("import", "t", "/dev/stdin", "--format", "csv", input=ROWS, env={"UDR_FAULT": "write:%d:eio" % n})
        assert tmp_entries(udr) == [], (n, r)
        if r.code == 0:
            break
        assert r.code == 5, (n, r)
        assert udr("show", "t").code == 1, n
        n = next_fault_step(n)
        assert n < 200
    assert n > 1  # the copy itself wrote
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")
def test_pipe_copy_of_killed_import_removed(udr):
    """An import killed while copying its pipe leaves the copy in a dead
    import-* directory: the next import removes it."""
    r = udr("import", "t", "/dev/stdin", "--format", "csv", input=ROWS, env={"UDR_FAULT": "write:1:crash"})
    assert r.code != 0, r
    assert udr("show", "t").code == 1
    assert [e for e in tmp_entries(udr) if e.startswith("import-")], "no copy left by the killed import"
    udr.ok("import", "t", "/dev/stdin", "--format", "csv", input=ROWS)
    assert tmp_entries(udr) == []
    assert table_csv(udr, "t") == (["a", "b"], [["1", "x"], ["2", "y"], ["3", "z"]])
