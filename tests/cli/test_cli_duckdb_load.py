"""DuckDB is loaded when SQL first runs, not when udr starts (src/query/duck.c).

Commands without SQL must work, and never load libduckdb.so, when the
library cannot be found; the SQL commands must then fail with a clear
message, exit 5, and write nothing.
"""
import os
import shutil
import subprocess

import pytest

from conftest import UDR_BIN, base_env, csv, tree_snapshot

MISSING = {"UDR_DUCKDB_LIBRARY": "/nonexistent/libduckdb.so"}


def loaded_libraries(*args, env=None):
    """The shared objects the dynamic loader opened for one run of udr."""
    e = base_env(env)
    e["LD_DEBUG"] = "files"
    proc = subprocess.run([UDR_BIN, *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=e, timeout=120)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def test_binary_does_not_link_duckdb():
    if not shutil.which("readelf"):
        pytest.skip("no readelf")
    dyn = subprocess.run(["readelf", "-d", UDR_BIN], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    assert "libduckdb" not in dyn


def test_commands_without_sql_never_load_duckdb(udr, tmp_path):
    udr.ok("import", "users", csv(tmp_path, "u.csv", [(1, 2, 3)]))
    h = udr.put(b"hello\n")
    for args in (["--version"], ["get", h], ["log"], ["show", "users"], ["tables"],
                 ["commit", "notes", "--next", h], ["fsck"], ["stats"]):
        code, trace = loaded_libraries("--store", udr.root, *args)
        assert code == 0, (args, trace[-2000:])
        assert "libduckdb" not in trace, args
    # and SQL does load it
    code, trace = loaded_libraries("--store", udr.root, "sql", "SELECT count(*) FROM users")
    assert code == 0, trace[-2000:]
    assert "libduckdb" in trace


def test_without_duckdb_the_store_still_works(udr, tmp_path):
    h = udr.put(b"payload\n")
    assert udr.ok("get", h, env=MISSING).stdout == b"payload\n"
    udr.ok("commit", "t", "--next", h, env=MISSING)
    assert "t" in udr.ok("tables", env=MISSING).out
    udr.ok("log", env=MISSING)
    udr.ok("fsck", env=MISSING)


def test_without_duckdb_sql_commands_fail_clearly_and_write_nothing(udr, tmp_path):
    src = csv(tmp_path, "u.csv", [(1, 2, 3), (4, 5, 6)])
    udr.ok("import", "users", src)
    before = tree_snapshot(udr.root)
    out = tmp_path / "out.csv"
    for args in (["sql", "SELECT 1"],
                 ["sql", "INSERT INTO users VALUES (7, 8, 9)"],
                 ["import", "users", src],
                 ["import", "fresh", src],
                 ["export", "users", out],
                 ["diff-rows", "users", "1", "1", "--key", "id"]):
        r = udr(*args, env=MISSING)
        assert r.code == 5, (args, r)
        assert "SQL needs DuckDB, which cannot be loaded" in r.stderr, (args, r)
        assert "/nonexistent/libduckdb.so" in r.stderr, (args, r)
        assert r.stdout == b"", (args, r)
    assert not out.exists()
    assert tree_snapshot(udr.root) == before


def test_a_library_that_is_not_duckdb_is_refused(udr, tmp_path):
    # any shared object without DuckDB's C API: libc's, found through ldd
    libs = subprocess.run(["ldd", UDR_BIN], stdout=subprocess.PIPE, check=True).stdout.decode()
    libc = next(line.split("=>")[1].split()[0] for line in libs.splitlines()
                if "libc.so" in line and "=>" in line)
    assert os.path.exists(libc)
    r = udr("sql", "SELECT 1", env={"UDR_DUCKDB_LIBRARY": libc})
    assert r.code == 5, r
    assert "has no duckdb_" in r.stderr and "DuckDB 1.4" in r.stderr, r


def test_explicit_library_path_is_used(udr, tmp_path):
    code, trace = loaded_libraries("--store", udr.root, "sql", "SELECT 1")
    assert code == 0
    found = [line.split("file=")[1].split()[0] for line in trace.splitlines()
             if "file=" in line and "libduckdb" in line]
    assert found, trace[-2000:]
    # the library the search found, named explicitly (through a symlink
    # elsewhere, so a search by name could not find it instead)
    real = [p for p in found if os.path.isabs(p)]
    assert real, found
    link = tmp_path / "elsewhere" / "libduckdb-copy.so"
    link.parent.mkdir()
    link.symlink_to(os.path.realpath(real[0]))
    code, trace = loaded_libraries("--store", udr.root, "sql", "SELECT 42 AS x",
                                   env={"UDR_DUCKDB_LIBRARY": str(link)})
    assert code == 0, trace[-2000:]
    assert str(link) in trace
