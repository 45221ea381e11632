"""DuckDB is loaded when SQL first runs, not when udr starts (src/query/duck.c).

Commands without SQL must work, and never load libduckdb.so, when the
library cannot be found; the SQL commands must then fail with a clear
message, exit 5, and write nothing.
"""
import os
import shutil
import subprocess

import pytest

from conftest import UDR_BIN, base_env, csv, table_rows, tree_snapshot

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


def branch_to_merge(udr):
    """Branch dev and main each change another table: a merge with no
    row-level merge to do."""
    udr.ok("commit", "a", "--next", udr.put(b"a1\n"))
    udr.ok("branch", "create", "dev")
    udr.ok("commit", "b", "--next", udr.put(b"b1\n"), "--branch", "dev")
    udr.ok("commit", "a", "--next", udr.put(b"a2\n"))


def test_commands_without_sql_never_load_duckdb(udr, tmp_path):
    udr.ok("import", "users", csv(tmp_path, "u.csv", [(1, 2, 3)]))
    h = udr.put(b"hello\n")
    branch_to_merge(udr)
    for args in (["--version"], ["get", h], ["log"], ["show", "users"], ["tables"],
                 ["commit", "notes", "--next", h], ["fsck"], ["stats"], ["merge", "dev"]):
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
    branch_to_merge(udr)
    assert "merge" in udr.ok("merge", "dev", env=MISSING).out
    assert udr.ok("show", "b", env=MISSING).out
    udr.ok("fsck", env=MISSING)


def test_a_library_in_the_working_directory_is_not_picked_up(udr, tmp_path):
    """An empty entry in LD_LIBRARY_PATH means the working directory to the
    loader; the search for libduckdb.so skips it (a planted library would
    run its constructors in udr)."""
    libs = subprocess.run(["ldd", UDR_BIN], stdout=subprocess.PIPE, check=True).stdout.decode()
    libz = next(line.split("=>")[1].split()[0] for line in libs.splitlines()
                if "libzstd.so" in line and "=>" in line)
    plant = tmp_path / "cwd"
    plant.mkdir()
    shutil.copy(libz, plant / "libduckdb.so")
    e = base_env({"LD_LIBRARY_PATH": "/nonexistent:"})
    p = subprocess.run([UDR_BIN, "--store", str(udr.root), "sql", "SELECT 6 * 7 AS x", "--csv"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, cwd=plant, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().split() == ["x", "42"]


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


def test_every_command_that_needs_duckdb_fails_cleanly_without_it(udr, tmp_path):
    """Each command that may run SQL, run where DuckDB cannot be loaded: no
    crash (the session's cleanup runs before DuckDB ever started), and a
    command that fails writes nothing; those that need SQL say so."""
    src = csv(tmp_path, "u.csv", [(1, 2, 3), (4, 5, 6)])
    udr.ok("import", "users", src)
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "UPDATE users SET a = 20 WHERE id = 1", "--branch", "dev")
    udr.ok("sql", "UPDATE users SET b = 60 WHERE id = 4")
    out = tmp_path / "out.parquet"
    sql_only = [["sql", "SELECT * FROM users", "--json"],
                ["sql", "SELECT * FROM users", "-o", out],
                ["sql", "DELETE FROM users WHERE id = 1"],
                # a script whose statements need no SQL until COMMIT
                ["sql", "BEGIN; DROP TABLE users; COMMIT"],
                ["sql", "BEGIN; DROP TABLE users; COMMIT", "--json"],
                ["sql", "BEGIN"],
                ["sql", "SELECT * FROM udr_log"],
                ["sql", "SELECT * FROM udr_tables"],
                ["import", "users", "--sql", "SELECT 1 AS id, 2 AS a, 3 AS b"],
                ["import", "users", src, "--key", "id"],
                ["import", "users", src, "--append"],
                ["optimize", "users", "--full"],
                ["export", "users", out],
                ["diff", "main", "dev", "--rows"],
                ["merge", "dev", "--key", "users=id"]]  # both sides changed users: rows merged
    others = [["merge", "dev"],  # no key: a table conflict, recorded without SQL
              ["conflicts"], ["resolve", "users", "--key", "1", "--theirs"],
              ["resolve", "users", "--ours"], ["merge", "--continue"], ["merge", "--abort"]]
    for args in sql_only + others:
        before = tree_snapshot(udr.root)
        r = udr(*args, env=MISSING)
        assert r.code >= 0, (args, r)  # an exit code, not a signal
        if args in sql_only:
            assert r.code == 5, (args, r)
        if r.code == 5:
            assert "SQL needs DuckDB, which cannot be loaded" in r.stderr, (args, r)
        if r.code not in (0, 3):  # 3: a conflicting merge records itself, by design
            assert tree_snapshot(udr.root) == before, args
        assert not out.exists(), args
    # the table conflict was resolved with our side, without SQL; with
    # DuckDB the result reads back
    assert table_rows(udr, "users") == [(1, 2, 3), (4, 5, 60)]


def real_library(udr):
    """The libduckdb.so udr loads when left to itself (from LD_DEBUG)."""
    code, trace = loaded_libraries("--store", udr.root, "sql", "SELECT 1")
    assert code == 0, trace[-2000:]
    found = [line.split("file=")[1].split()[0] for line in trace.splitlines()
             if "file=" in line and "libduckdb" in line and "file=/" in line]
    assert found, trace[-2000:]
    return found[0]


@pytest.mark.parametrize("keep", ["4096", "half"])
def test_a_truncated_library_is_refused_not_a_crash(udr, tmp_path, keep):
    """The loader maps a truncated library without checking its size and the
    process dies of SIGBUS: udr checks the segments' extent first."""
    real = real_library(udr)
    data = open(real, "rb").read()
    cut = tmp_path / "lib" / "libduckdb.so"
    cut.parent.mkdir()
    cut.write_bytes(data[:4096] if keep == "4096" else data[:len(data) // 2])
    r = udr("sql", "SELECT 1", env={"UDR_DUCKDB_LIBRARY": str(cut)})
    assert r.code == 5, r
    assert "truncated" in r.stderr and str(cut) in r.stderr, r
    # found first on the search path, it is passed over for the next copy
    e = base_env({"LD_LIBRARY_PATH": str(cut.parent)})
    p = subprocess.run([UDR_BIN, "--store", str(udr.root), "sql", "SELECT 6 * 7 AS x", "--csv"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().split() == ["x", "42"]
