"""Stop 38: a version whose row-level metadata SQL refuses as damage.

`udr commit --meta udr.parts=...` (or --spec, Python, the C library)
committed a version that every SQL read then refused with exit 4
("deletion vector ... is damaged") while `udr fsck` said 0 problems: an
integrity error that fsck could not see, for input that was simply bad.
Every commit now checks the metadata as SQL reads it (exit 2, nothing
committed), and fsck checks every version file, for versions committed
through a libudr without the query module (or by older builds)."""
import ctypes
import json
import os
import pathlib

import pytest

from conftest import SANITIZE, run_udr, tree_snapshot

_help = run_udr("sql", "--help")
HAVE_QUERY = _help.code == 0 and "without the query module" not in _help.out + _help.stderr
needs_query = pytest.mark.skipif(not HAVE_QUERY, reason="udr was built without the query module")

BUILD = pathlib.Path(os.environ.get("UDR_BUILD_DIR", pathlib.Path(__file__).resolve().parents[2] / "build"))


def row_table(udr):
    """t@1 typed, t@2 with a deletion vector; returns (part, dv)."""
    udr.ok("import", "t", "--sql", "SELECT range AS id FROM range(3)")
    udr.ok("sql", "DELETE FROM t WHERE id = 1")
    v = json.loads(udr.ok("show", "t").out)
    return v["chunks"][0], v["chunks"][1]


def bad_metas(udr, part, dv):
    junk = udr.put(b"UDRVjunk")
    return {
        "not a deletion vector": ([part, junk], {"udr.format": "parquet-dv",
                                                 "udr.parts": json.dumps([{"rows": 3, "deleted": 1, "dv": junk}])}),
        "rows not the part's": ([part, dv], {"udr.format": "parquet-dv",
                                             "udr.parts": json.dumps([{"rows": 5, "deleted": 1, "dv": dv}])}),
        "deleted count": ([part, dv], {"udr.format": "parquet-dv",
                                       "udr.parts": json.dumps([{"rows": 3, "deleted": 2, "dv": dv}])}),
        "format without a dv": ([part], {"udr.format": "parquet-dv", "udr.parts": json.dumps([{"rows": 3}])}),
        "dv under plain format": ([part, dv], {"udr.format": "parquet",
                                               "udr.parts": json.dumps([{"rows": 3, "deleted": 1, "dv": dv}])}),
        "not json": ([part], {"udr.format": "parquet", "udr.parts": "[{\"rows\":3}"}),
        "dv not after the parts": ([dv, part], {"udr.format": "parquet-dv",
                                                "udr.parts": json.dumps([{"rows": 3, "deleted": 1, "dv": dv}])}),
        # SQL refuses these as bad input (exit 2 on every read), the diff
        # review found them committed
        "unknown format": ([part], {"udr.format": "xml"}),
        "format in capitals": ([part], {"udr.format": "Parquet-DV"}),
    }


def catalog_files(udr):
    return {k: v for k, v in tree_snapshot(udr.root).items() if k.startswith("catalog/")}


@needs_query
def test_commit_refuses_row_metadata_sql_would_call_damaged(udr):
    part, dv = row_table(udr)
    for name, (chunks, meta) in bad_metas(udr, part, dv).items():
        before = catalog_files(udr)
        args = ["commit", "t", "--next", *chunks]
        for k, v in meta.items():
            args += ["--meta", "%s=%s" % (k, v)]
        r = udr(*args)
        assert r.code == 2, (name, r)
        assert "refused" in r.stderr and "nothing committed" in r.stderr, (name, r)
        assert "version 0" not in r.stderr, r
        spec = {"tables": [{"table": "t", "chunks": chunks, "metadata": meta}]}
        r = udr("commit", "--spec", "-", input=json.dumps(spec))
        assert r.code == 2 and "refused" in r.stderr, (name, r)
        assert catalog_files(udr) == before, name
    # what is right passes: a copy of t@2 as t@3, and a version without
    # row-level metadata
    v2 = json.loads(udr.ok("show", "t", "2").out)
    args = ["commit", "t", "--next", *v2["chunks"]]
    for k, v in v2["metadata"].items():
        args += ["--meta", "%s=%s" % (k, v)]
    assert udr.ok(*args).out.strip() == "3"
    assert udr.ok("sql", "--csv", "SELECT count(*), sum(id) FROM t").out.split()[-1] == "2,2"
    udr.ok("commit", "t", "--next", udr.put(b"id\n7\n"))
    assert udr.ok("sql", "--csv", "SELECT sum(id) FROM t").out.split()[-1] == "7"
    assert udr.ok("fsck").code == 0


@needs_query
@pytest.mark.skipif(not (BUILD / "python" / "lib").is_dir(), reason="the Python binding is not built")
def test_python_commit_and_transaction_refuse_it(udr):
    import subprocess
    import sys
    part, dv = row_table(udr)
    chunks, meta = bad_metas(udr, part, dv)["deleted count"]
    prog = r"""
import json, sys, udr
db = udr.open(sys.argv[1])
chunks, meta = json.loads(sys.argv[2])
for how in ("commit", "txn"):
    try:
        if how == "commit":
            db.catalog.commit_next(udr.TableVersion("t", 0, chunks, metadata=meta))
        else:
            with db.transaction() as tx:
                tx.write("t", chunks, metadata=meta)
        print(how, "committed")
    except udr.InvalidArgumentError as e:
        print(how, "refused", "nothing committed" in str(e))
"""
    env = dict(os.environ, PYTHONPATH=str(BUILD / "python" / "lib"))
    before = catalog_files(udr)
    r = subprocess.run([sys.executable, "-c", prog, str(udr.root), json.dumps([chunks, meta])],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["commit refused True", "txn refused True"], r.stdout
    assert catalog_files(udr) == before


@needs_query
@pytest.mark.skipif(SANITIZE, reason="ctypes loads libudr.so into a Python without the sanitizer runtime")
@pytest.mark.skipif(not (BUILD / "libudr.so").exists(), reason="libudr.so is not built")
def test_fsck_names_a_version_sql_cannot_read(udr):
    """libudr without the query module commits what it cannot check; fsck
    must then say what SQL will say (exit 4 both, not 0 and 4)."""
    part, dv = row_table(udr)
    lib = ctypes.CDLL(str(BUILD / "libudr.so"))
    lib.udr_db_catalog.restype = ctypes.c_void_p
    lib.udr_db_catalog.argtypes = [ctypes.c_void_p]
    lib.udr_version_add_chunk.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.udr_version_set_meta.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.udr_catalog_commit_next.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.udr_version_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64]
    lib.udr_version_free.argtypes = [ctypes.c_void_p]
    lib.udr_db_close.argtypes = [ctypes.c_void_p]
    db = ctypes.c_void_p()
    assert lib.udr_db_open(ctypes.byref(db), str(udr.root).encode(), 0) == 0
    cat = lib.udr_db_catalog(db)
    cases = bad_metas(udr, part, dv)
    for name in ("not a deletion vector", "rows not the part's", "format without a dv"):
        chunks, meta = cases[name]
        v = ctypes.c_void_p()
        assert lib.udr_version_new(ctypes.byref(v), b"t", 0) == 0
        for h in chunks:
            assert lib.udr_version_add_chunk(v, bytes.fromhex(h)) == 0
        for k, val in meta.items():
            assert lib.udr_version_set_meta(v, k.encode(), val.encode()) == 0
        assert lib.udr_catalog_commit_next(cat, v) == 0, name
        lib.udr_version_free(v)
    lib.udr_db_close(db)
    for ver in (3, 4, 5):
        r = udr("sql", "SELECT count(*) FROM t@%d" % ver)
        assert r.code == 4, (ver, r)
    r = udr("fsck")
    assert r.code == 4, r
    for ver in (3, 4, 5):
        assert "t@%d: SQL cannot read it" % ver in r.out, r.out
    assert "t@2" not in r.out and "t@1" not in r.out
    j = json.loads(udr("fsck", "--json").out)
    assert sorted(p["object"] for p in j["problems"]) == ["t@3", "t@4", "t@5"], j
    r = udr("fsck", "--repair")
    assert r.code == 4 and "unrecoverable t@3" in r.out, r.out
    # the versions before stay readable
    assert udr.ok("sql", "--csv", "SELECT sum(id) FROM t@2").out.split()[-1] == "2"


@needs_query
def test_rowid_in_a_write_is_the_rows_position_as_in_duckdb(udr):
    """A lone UPDATE/DELETE with a WHERE copied only the rows it selects,
    numbered from 0: rowid there was not the row's position."""
    udr.ok("import", "t", "--sql", "SELECT range AS id FROM range(5)")
    udr.ok("sql", "UPDATE t SET id = 100 + rowid WHERE id >= 3")
    assert udr.ok("sql", "--csv", "SELECT id FROM t").out.split()[1:] == ["0", "1", "2", "103", "104"]
    udr.ok("sql", "DELETE FROM t WHERE rowid = 1")
    assert udr.ok("sql", "--csv", "SELECT id FROM t").out.split()[1:] == ["0", "2", "103", "104"]
    udr.ok("sql", "UPDATE t SET id = rowid WHERE id = 103")
    assert udr.ok("sql", "--csv", "SELECT id FROM t ORDER BY id").out.split()[1:] == ["0", "2", "2", "104"]
    # the same in a transaction (every row copied there already)
    pos = udr.ok("sql", "--csv", "SELECT id FROM t").out.split()[1:].index("104")
    udr.ok("sql", "BEGIN; UPDATE t SET id = -rowid WHERE id = 104; COMMIT")
    assert sorted(udr.ok("sql", "--csv", "SELECT id FROM t").out.split()[1:]) == sorted(["0", "2", "2", str(-pos)])
    assert udr.ok("fsck").code == 0


def test_spec_refuses_a_table_without_data_unless_allow_empty(udr):
    """`commit --spec` committed a version without chunks that `commit`
    refuses (issue 13: an empty version breaks SQL on the table)."""
    h = udr.put(b"id\n1\n")
    before = catalog_files(udr)
    for spec in ({"tables": [{"table": "e"}]},
                 {"tables": [{"table": "a", "chunks": [h]}, {"table": "e", "chunks": []}]},
                 {"tables": [{"table": "e", "files": []}]},
                 {"tables": [{"table": "e", "allow_empty": False}]},
                 {"tables": [{"table": "e", "allow_empty": "yes"}]}):
        r = udr("commit", "--spec", "-", input=json.dumps(spec))
        assert r.code == 2, (spec, r)
        assert "allow_empty" in r.stderr, (spec, r)
        assert catalog_files(udr) == before, spec
    r = udr.ok("commit", "--spec", "-", input=json.dumps(
        {"tables": [{"table": "a", "chunks": [h]}, {"table": "e", "allow_empty": True}]}))
    assert r.out.split()[2:] == ["a@1", "e@1"], r
    assert json.loads(udr.ok("show", "e").out)["chunks"] == []


@needs_query
def test_conflicts_lists_no_table_that_merges_row_by_row(udr, tmp_path):
    """When one table conflicted, a table the same merge merges row by row
    without a conflict was listed as a whole-table conflict; resolving it
    with a side (as the listing invited) dropped the other side's rows."""
    (tmp_path / "base.csv").write_text("id,v\n1,a\n2,b\n3,c\n")
    udr.ok("import", "r", str(tmp_path / "base.csv"), "--key", "id")
    udr.ok("commit", "blob", "--next", udr.put(b"base"))
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "UPDATE r SET v = 'main' WHERE id = 1")
    udr.ok("sql", "UPDATE r SET v = 'dev' WHERE id = 3", "--branch", "dev")
    udr.ok("commit", "blob", "--next", udr.put(b"m"))
    udr.ok("commit", "blob", "--next", udr.put(b"d"), "--branch", "dev")
    r = udr("merge", "dev")
    assert r.code == 3, r
    listed = [row["table"] for row in json.loads(udr.ok("conflicts", "--json").out)]
    assert listed == ["blob"], listed
    r = udr("resolve", "r", "--ours")
    assert r.code == 2 and "merges row by row" in r.stderr, r
    udr.ok("resolve", "blob", "--ours")
    udr.ok("merge", "--continue")
    assert udr.ok("sql", "--csv", "SELECT * FROM r ORDER BY id").out.split() == ["id,v", "1,main", "2,b", "3,dev"]


def test_log_says_a_revert_once(udr):
    udr.ok("commit", "t", "--next", udr.put(b"a"))
    udr.ok("commit", "t", "--next", udr.put(b"b"))
    udr.ok("revert", "commit:2")
    out = udr.ok("log", "--limit", "1").out
    assert out.count("revert of commit 2") == 1, out
    udr.ok("commit", "t", "--next", udr.put(b"c"))
    udr.ok("revert", "commit:4", "-m", "undo c")
    out = udr.ok("log", "--limit", "1").out
    assert "revert of commit 4" in out and "undo c" in out, out


def test_pick_and_revert_of_a_commit_that_changed_no_content_write_nothing(udr):
    """A commit of the same chunks again (v2 = v1's content): its revert on
    main, and its cherry-pick onto a branch holding v1, wrote a commit and a
    version with the content already there."""
    h = udr.put(b"A")
    udr.ok("commit", "t", "--next", h)
    udr.ok("commit", "t", "--next", h)
    before = catalog_files(udr)
    r = json.loads(udr.ok("revert", "commit:2", "--json").out)
    assert r["commit"] == 0 and r["up_to_date"], r
    assert catalog_files(udr) == before
    udr.ok("branch", "create", "dev", "--from", "commit:1")
    r = json.loads(udr.ok("cherry-pick", "commit:2", "--branch", "dev", "--json").out)
    assert r["commit"] == 0 and r["up_to_date"], r
    assert udr.ok("versions", "t", "--branch", "dev").out.split() == ["1"]
