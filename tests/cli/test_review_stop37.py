"""Damage to stores holding row-level versions (a helper's review, stop
37): each case lost committed data, hung, or hid an intact copy."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, run_udr, tree_snapshot

_help = run_udr("sql", "--help")
HAVE_QUERY = _help.code == 0 and "without the query module" not in _help.out + _help.stderr
needs_query = pytest.mark.skipif(not HAVE_QUERY, reason="udr was built without the query module")


def three_versions(udr):
    udr.ok("import", "t", "--sql", "SELECT range AS id, range * 2 AS x FROM range(1000)")
    udr.ok("sql", "UPDATE t SET x = -1 WHERE id % 100 = 7")
    udr.ok("sql", "DELETE FROM t WHERE id < 10")  # t@3: a new deletion vector


def head_sum(udr):
    return udr.ok("sql", "--csv", "SELECT count(*), sum(x) FROM t").out.split()[-1]


@needs_query
@pytest.mark.parametrize("damage", ["delete", "other-version", "other-table", "other-chunks"])
def test_gc_refuses_when_a_committed_version_file_is_gone(udr, tmp_path, damage):
    """A deleted head version file (or another version's file in its place)
    made gc treat the version as never committed: it removed the version's
    deletion vector, exit 0, and restoring the file from a backup could no
    longer bring the version back."""
    three_versions(udr)
    if damage == "other-table":
        udr.ok("import", "u", "--sql", "SELECT 1 AS id")
    want = head_sum(udr)
    vdir = udr.root / "catalog" / "tables" / "t"
    v3 = vdir / ("%020d.json" % 3)
    saved = tmp_path / "v3.json"
    shutil.copy(v3, saved)
    if damage == "delete":
        v3.unlink()
    elif damage == "other-version":
        shutil.copy(vdir / ("%020d.json" % 2), v3)
    elif damage == "other-chunks":
        # well formed, version 3 of t, but version 2's chunks: not the
        # bytes commit 3 recorded (the review's second way to the loss)
        d = json.loads(v3.read_text())
        d["chunks"] = json.loads((vdir / ("%020d.json" % 2)).read_text())["chunks"]
        v3.write_text(json.dumps(d, separators=(",", ":")) + "\n")
    else:
        shutil.copy(udr.root / "catalog" / "tables" / "u" / ("%020d.json" % 1), v3)
    before = {k: v for k, v in tree_snapshot(udr.root).items() if k.startswith("chunks/") and not k.startswith("chunks/gc/")}
    for args in (["gc", "--grace", "0s"], ["gc", "--grace", "0s", "--dry-run"],
                 ["gc", "--grace", "0s", "--keep-last", "1"]):
        r = udr(*args)
        assert r.code == 4 and ("version 3" in r.stderr or "record 3" in r.stderr), (args, r)
        assert "nothing was removed" in r.stderr or "does not match" in r.stderr, (args, r)
    assert {k: v for k, v in tree_snapshot(udr.root).items() if k.startswith("chunks/") and not k.startswith("chunks/gc/")} == before
    shutil.copy(saved, v3)
    assert head_sum(udr) == want
    udr.ok("fsck")
    udr.ok("gc", "--grace", "0s")  # and once repaired, gc runs
    assert head_sum(udr) == want


@needs_query
def test_gc_refuses_when_a_table_directory_is_gone(udr):
    three_versions(udr)
    udr.ok("import", "u", "--sql", "SELECT 1 AS id")
    shutil.rmtree(udr.root / "catalog" / "tables" / "t")
    r = udr("gc", "--grace", "0s")
    assert r.code == 4 and "version 1 of table t" in r.stderr and "nothing was removed" in r.stderr, r


@needs_query
def test_gc_on_branches_finds_every_version_file(udr):
    """The check counts versions made on every branch (the log's
    allocation), so a branched store collects as before."""
    three_versions(udr)
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "UPDATE t SET x = 5 WHERE id = 500")
    udr.ok("sql", "UPDATE t SET x = 6 WHERE id = 600")
    dev = udr.ok("sql", "--branch", "dev", "--csv", "SELECT sum(x) FROM t").out.split()[-1]
    main = udr.ok("sql", "--csv", "SELECT sum(x) FROM t").out.split()[-1]
    r = udr.ok("gc", "--grace", "0s", "--keep-last", "1", "--json")
    assert json.loads(r.out)["retention"]["expired"]["versions"] >= 1
    assert udr.ok("sql", "--branch", "dev", "--csv", "SELECT sum(x) FROM t").out.split()[-1] == dev
    assert udr.ok("sql", "--csv", "SELECT sum(x) FROM t").out.split()[-1] == main
    udr.ok("fsck")


def flip_midx_records(path, at, bit):
    """Flip one bit at byte `at` of every record of packs/multi-pack-index
    (FORMAT.md: a 1048-byte head and fan-out, 32 bytes a pack, 32 bytes a
    hash, then 20-byte records: u64 offset, u32 length, u32 pack, u8 kind)."""
    import struct
    b = bytearray(path.read_bytes())
    npacks = struct.unpack_from("<I", b, 8)[0]
    n = struct.unpack_from("<Q", b, 16)[0]
    rec = 1048 + 32 * npacks + 32 * n
    for i in range(n):
        b[rec + 20 * i + at] ^= 1 << bit
    path.write_bytes(bytes(b))


@needs_query
@pytest.mark.parametrize("at,bit", [(8, 2), (0, 2), (0, 6), (16, 0)],
                         ids=["length", "offset-low", "offset", "kind"])
def test_a_damaged_midx_record_does_not_hide_a_deletion_vector(udr2, at, bit):
    """A flipped bit in a multi-pack-index record made every version whose
    deletion vector it located fail (exit 4, "has another entry"), though
    the pack and its own index were intact: the size lookup took the
    record's copy only."""
    udr = udr2
    udr.ok("import", "t", "--sql", "SELECT range AS id, range * 2 AS x FROM range(100000)")
    for i in (1, 2, 3):
        udr.ok("sql", "UPDATE t SET x = x + %d WHERE id %% 97 = %d" % (i, i))
    udr.ok("upgrade")  # packs the deletion vectors, writes the multi-pack index
    q = "SELECT count(*), sum(x) FROM t@%d"
    want = {v: udr.ok("sql", "--csv", q % v).out.split()[-1] for v in (2, 3, 4)}
    midx = udr.root / "chunks" / "packs" / "multi-pack-index"
    assert midx.exists()
    flip_midx_records(midx, at, bit)
    for v in (2, 3, 4):
        assert udr.ok("sql", "--csv", q % v).out.split()[-1] == want[v]
    r = udr("fsck")
    assert r.code == 4 and "multi-pack" in r.out + r.stderr, r


@needs_query
@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink"])
def test_a_cache_entry_that_is_not_a_file_is_made_again(udr, tmp_path, kind):
    """A FIFO in place of cache/query/<hash>.parquet hung every read of the
    version (and the write that re-made it went through the FIFO); a
    directory made reads fail (exit 5); cache clear and fsck --repair left
    both in place."""
    pq = tmp_path / "c.parquet"
    udr.ok("sql", "SELECT range AS id, (range * 7) % 1000 AS x FROM range(200000)", "-o", str(pq))
    udr.ok("commit", "c", "--next", "--file", str(pq), "--meta", "udr.format=parquet")
    q = "SELECT count(*), sum(x) FROM c"
    want = udr.ok("sql", "--csv", q).out.split()[-1]
    cached = list((udr.root / "cache" / "query").glob("*.parquet"))
    assert len(cached) == 1, "the part is read from the cache (stored in pieces)"
    c = cached[0]

    def damage():
        if c.is_dir() and not c.is_symlink():
            shutil.rmtree(c)
        elif c.exists() or c.is_symlink():
            c.unlink()
        if kind == "fifo":
            os.mkfifo(c)
        elif kind == "dir":
            c.mkdir()
            (c / "x").write_text("x")
        else:
            c.symlink_to(tmp_path / "elsewhere")
            (tmp_path / "elsewhere").write_text("not parquet")

    damage()
    r = udr("sql", "--csv", q)  # conftest times out a hang (120 s)
    assert r.code == 0 and r.out.split()[-1] == want, r
    assert c.is_file() and not c.is_symlink()
    for fix in (["cache", "clear"], ["fsck", "--repair"]):
        damage()
        udr.ok(*fix)
        assert not (c.exists() or c.is_symlink()) or c.is_file(), fix
        assert udr.ok("sql", "--csv", q).out.split()[-1] == want
    if kind == "symlink":  # the link went, not what it pointed at
        assert (tmp_path / "elsewhere").read_text() == "not parquet"


@needs_query
@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_PAUSE (a build with UDR_FAULT_INJECTION)")
def test_a_merge_whose_source_moved_and_expired_meanwhile_is_a_conflict(udr, tmp_path):
    """dev moved on and retention expired the version the merge had taken
    from dev's old head while the merge ran: it failed as 'expired by
    retention' (exit 6, restore it), not as the race it is (exit 3, merge
    again)."""
    csv = tmp_path / "r.csv"
    csv.write_text("id,v\n1,1\n2,2\n3,3\n")
    udr.ok("import", "t", str(csv), "--key", "id")
    udr.ok("import", "w", str(csv), "--key", "id")
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 10 WHERE id = 1")
    udr.ok("sql", "INSERT INTO t VALUES (4, 4)")
    udr.ok("sql", "--branch", "dev", "UPDATE w SET v = 10 WHERE id = 1")
    pause = tmp_path / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "merge", "dev", "--key", "t=id"],
                         env=base_env({"UDR_PAUSE": "merge-commit:%s" % pause}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() + 60
    while not (pause / "merge-commit.reached").exists():
        assert p.poll() is None and time.monotonic() < t, p.communicate()
        time.sleep(0.01)
    udr.ok("sql", "--branch", "dev", "UPDATE w SET v = 20 WHERE id = 2")
    udr.ok("retention", "expire", "--keep-last", "1")
    (pause / "merge-commit.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3 and b"moved while it was merged" in err, (p.returncode, err)
    udr.ok("merge", "dev", "--key", "t=id")  # again: merged
    assert udr.ok("sql", "--csv", "SELECT sum(v) FROM w").out.split()[-1] == "33"
