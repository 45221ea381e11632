"""Review R5 of unchaining (GC.md 3.3) and the pieces around it: what a gc
leaves behind must stay readable through later puts, repacks and fsck."""
import json
import random
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env

# unchaining runs only when it saves space (GC.md 3.3); these stores are
# made to show what an unchained store must survive, whatever it costs
ALWAYS = {"UDR_GC_UNCHAIN": "always"}
needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_UNCHAIN needs a test build")


def packs(udr):
    return sorted(p.stat().st_size for p in (udr.root / "chunks" / "packs").glob("*.pack"))


def edited_twice(udr, tmp_path, rng, append=0):
    """t@1: 3 MB of random bytes; t@2: one byte in 8 KiB flipped, so its
    pieces are deltas on t@1's (and append new random bytes after them:
    new pieces in the deltas' pack).  Returns t@2's bytes."""
    data = bytearray(rng.randbytes(3_000_000))
    f = tmp_path / "in"
    f.write_bytes(data)
    udr.ok("commit", "t", "--next", "--file", f)
    for i in range(0, len(data), 8192):
        data[i] ^= 0xff
    data += rng.randbytes(append)
    f.write_bytes(data)
    udr.ok("commit", "t", "--next", "--file", f)
    return bytes(data)


def read_version(udr, tmp_path, table, v):
    got = b""
    for h in json.loads(udr.ok("show", table, str(v)).out)["chunks"]:
        f = tmp_path / "got"
        udr.ok("get", h, "-o", f)
        got += f.read_bytes()
    return got


def gc_paused(udr, tmp_path, point, during):
    """`udr gc --keep-last 1 --grace 0s --json` (unchaining forced) paused
    at UDR_PAUSE point while during() runs; its report."""
    pause = tmp_path / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--keep-last", "1", "--grace", "0s", "--json"],
                         env=base_env({"UDR_PAUSE": "%s:%s" % (point, pause), **ALWAYS}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t = time.monotonic() + 60
        while not (pause / (point + ".reached")).exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < t
            time.sleep(0.01)
        during()
    finally:
        (pause / (point + ".go")).touch()
        out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out)


@needs_faults
def test_shunned_deltas_in_a_kept_pack_never_outlive_their_full_copy(udr, tmp_path):
    """v2's pieces are deltas on v1's, in a pack that also holds new pieces;
    gc --keep-last 1 --max-repack 1 unchains them (full copies in a new
    pack) and drops v1's pack, so the bases are gone.  The delta pack is
    kept (it holds live entries and the limit stops its rewrite): its dead
    deltas name bases that no longer exist.  The next put's geometric
    repack merged that pack first and kept one copy per hash, the base-less
    delta, dropping the full copy: the head version t@2 was lost."""
    rng = random.Random(1)
    v2 = edited_twice(udr, tmp_path, rng, append=1_000_000)  # new pieces, live, in the deltas' pack
    f = tmp_path / "in"
    rep = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--max-repack", "1", "--json", env=ALWAYS).out)
    assert rep["written"]["unchained"] > 0, rep
    assert read_version(udr, tmp_path, "t", 2) == v2
    # another table's put: its repack merges the small packs
    f.write_bytes(rng.randbytes(2_000_000))
    udr.ok("commit", "u", "--next", "--file", f)
    assert read_version(udr, tmp_path, "t", 2) == v2
    r = udr("fsck")
    assert "damaged version" not in r.out and "t@2" not in r.out, r
    # a second gc finds nothing of t@2 missing
    udr.ok("gc", "--grace", "0s", "--json")
    assert read_version(udr, tmp_path, "t", 2) == v2


def test_fsck_clean_after_gc_that_kept_a_pack_holding_dead_manifests(udr, tmp_path):
    """gc --max-repack keeps the small meta pack as it is; it holds the
    manifest of the expired t@1, whose pieces (bases unchained away, or
    simply no longer needed) were in packs the run dropped.  fsck then
    reported 'corrupt chunk ... piece 1 of 24 not found' on a healthy store
    (exit 4, no version named)."""
    rng = random.Random(2)
    v2 = edited_twice(udr, tmp_path, rng)
    udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--max-repack", "1", "--json")
    r = udr("fsck")
    assert r.code == 0, r
    assert read_version(udr, tmp_path, "t", 2) == v2
    # the same without unchaining: t@3 shares nothing with t@2
    f = tmp_path / "in"
    f.write_bytes(rng.randbytes(1_000_000))
    udr.ok("commit", "t", "--next", "--file", f)
    udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--max-repack", "1", "--json")
    r = udr("fsck")
    assert r.code == 0, r


def test_fsck_names_damaged_versions_off_main(udr, tmp_path):
    """fsck names every version damage reaches (GC.md 6), not only those on
    main: a version of main's table made on another branch, a table only
    that branch has, and a version of a deleted branch (still stored, not
    expired)."""
    rng = random.Random(4)

    def commit(table, data, *args):
        f = tmp_path / "in.bin"
        f.write_bytes(data)
        return int(udr.ok("commit", table, "--next", "--file", f, *args).out.split()[-1])

    shared = rng.randbytes(200_000)
    commit("t", rng.randbytes(200_000))
    udr.ok("branch", "create", "dev")
    udr.ok("branch", "create", "gone")
    assert commit("t", shared, "--branch", "dev") == 2
    assert commit("u", shared, "--branch", "dev") == 1
    assert commit("w", shared, "--branch", "gone") == 1
    udr.ok("branch", "delete", "gone")
    h = json.loads(udr.ok("show", "u", "1", "--branch", "dev").out)["chunks"][0]
    udr.damage(h, "flip")
    r = udr("fsck")
    assert r.code == 4, r
    lines = r.out.splitlines()
    for name in ("t@2", "u@1", "w@1"):
        assert any(x.startswith("damaged version %s:" % name) for x in lines), (name, r.out)
    assert not any("t@1" in x for x in lines), r.out


def test_a_kept_pack_whose_dead_entries_need_only_what_stays_is_not_rewritten(udr, tmp_path):
    """The check above costs no rewrite when the dead entries of a kept
    pack name only what stays: t@2's dead deltas and their dead bases (t@1's
    pieces) share one pack, which --max-repack keeps whole."""
    rng = random.Random(5)
    edited_twice(udr, tmp_path, rng)
    new = rng.randbytes(4_000_000)
    f = tmp_path / "in"
    f.write_bytes(new)
    udr.ok("commit", "t", "--next", "--file", f)   # its repack merges the data packs
    big = [s for s in packs(udr) if s > 1_000_000]
    assert len(big) == 1, packs(udr)
    rep = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--max-repack", "1", "--json", env=ALWAYS).out)
    assert rep["removed"]["packs_rewritten"] == 0 and rep["removed"]["packs_dropped"] == 0, rep
    assert [s for s in packs(udr) if s > 1_000_000] == big
    udr.ok("fsck")
    assert read_version(udr, tmp_path, "t", 3) == new


@needs_faults
def test_a_repack_never_keeps_a_base_less_delta_over_a_full_copy(udr, tmp_path):
    """A store that an earlier gc left with a kept pack holding shunned
    deltas (base gone, a full copy in another pack): the next put's
    geometric repack kept the first copy of each hash it met, the delta
    (its pack is smaller, so copied first), and dropped the full copy."""
    import shutil
    rng = random.Random(6)
    data = bytearray(rng.randbytes(3_000_000))
    f = tmp_path / "in"
    f.write_bytes(data)
    udr.ok("commit", "t", "--next", "--file", f)
    for i in range(0, len(data), 8192):
        data[i] ^= 0xff
    data += rng.randbytes(1_000_000)
    f.write_bytes(data)
    udr.ok("commit", "t", "--next", "--file", f)
    v2 = bytes(data)
    pdir = udr.root / "chunks" / "packs"
    before = {p.name for p in pdir.iterdir()}
    keep = tmp_path / "kept"
    keep.mkdir()
    for p in pdir.iterdir():
        if p.suffix in (".pack", ".idx"):
            shutil.copy(p, keep / p.name)
    rep = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--json", env=ALWAYS).out)
    assert rep["written"]["unchained"] > 0, rep
    # put back the deltas' pack as an older gc kept it (its bases are gone)
    gone = {n[:-5] for n in before if n.endswith(".pack")} - {p.stem for p in pdir.glob("*.pack")}
    deltas = [h for h in gone if 100_000 < (keep / (h + ".pack")).stat().st_size < 2_000_000]
    assert len(deltas) == 1, (gone, packs(udr))
    for sfx in (".pack", ".idx"):
        shutil.copy(keep / (deltas[0] + sfx), pdir / (deltas[0] + sfx))
    assert read_version(udr, tmp_path, "t", 2) == v2
    f.write_bytes(rng.randbytes(2_000_000))
    udr.ok("commit", "u", "--next", "--file", f)   # its repack merges the packs
    assert read_version(udr, tmp_path, "t", 2) == v2


def test_fsck_names_exactly_the_versions_that_cannot_be_read(tmp_path):
    """A damaged piece shared by several contents (a loose store: one piece
    file, flipped): fsck names every version whose read fails, and no other
    (the oracle: `udr get` of each version's chunks).  fsck reads again only
    the chunks its store check named."""
    from conftest import Udr
    u = Udr(tmp_path / "s")
    u.ok("init", "--format", "2")
    rng = random.Random(7)
    a = rng.randbytes(3_000_000)
    f = tmp_path / "in"
    vs = []
    for table, data in (("t", a), ("u", a + rng.randbytes(500_000)), ("t", rng.randbytes(100_000) + a),
                        ("w", rng.randbytes(1_000_000))):
        f.write_bytes(data)
        v = int(u.ok("commit", table, "--next", "--file", f).out.split()[-1])
        vs.append((table, v))
        if len(vs) == 1:  # t@1's pieces (not its manifest)
            h = json.loads(u.ok("show", "t", "1").out)["chunks"][0]
            pieces = sorted(p for p in u.object_files() if not p.name.startswith(h) and p.stat().st_size > 10_000)
    victim = pieces[len(pieces) // 2]
    b = bytearray(victim.read_bytes())
    b[len(b) // 2] ^= 0xFF
    victim.write_bytes(bytes(b))
    bad = set()
    for table, v in vs:
        for c in json.loads(u.ok("show", table, str(v)).out)["chunks"]:
            if u("get", c, "-o", tmp_path / "got").code != 0:
                bad.add("%s@%d" % (table, v))
    assert len(bad) >= 2, bad  # a piece shared by contents
    r = u("fsck")
    assert r.code == 4, r
    named = {x.split()[2].rstrip(":") for x in r.out.splitlines() if x.startswith("damaged version ")}
    assert named == bad, (named, bad, r.out)


@needs_faults
def test_unchaining_is_done_before_writers_stop_while_a_writer_repacks(udr, tmp_path):
    """gc decides and writes its unchaining on a mark made while writers run
    (GC.md 4.7).  A writer's put in that window merged small packs
    (geometric repack), so the mark's packs were gone when unchaining read
    them ("pack ... is gone"): the whole unchaining then ran while writers
    were stopped, and on bench_gc.sh's store every commit that met it
    waited ~300 ms (a writer's latency while gc runs 2.3-3x alone).  Now
    the unlocked mark holds packs/lock: writers' puts go on, their
    repacks wait for the next put."""
    rng = random.Random(7)
    v2 = edited_twice(udr, tmp_path, rng)
    before = packs(udr)

    def puts():
        # puts of every size around the store's packs: each publishes a
        # pack, and some leave a run of packs a geometric repack merges
        for size in (20_000, 40_000, 80_000, 160_000, 30_000, 60_000):
            g = tmp_path / "w"
            g.write_bytes(rng.randbytes(size))
            udr.ok("put", g)
        assert len(packs(udr)) == len(before) + 6, (before, packs(udr))  # no repack under the mark

    rep = gc_paused(udr, tmp_path, "gc-premark", puts)
    assert rep["written"]["unchained"] > 0, rep
    assert rep["writers_stopped"]["unchained"] == 0, rep
    assert read_version(udr, tmp_path, "t", 2) == v2
    assert udr("fsck").code == 0
    # the next put merges the small packs again
    g = tmp_path / "w"
    g.write_bytes(rng.randbytes(50_000))
    udr.ok("put", g)
    assert udr("fsck").code == 0


@needs_faults
def test_unchaining_stays_before_writers_stop_when_a_commit_lands_during_its_mark(udr, tmp_path):
    """The unlocked mark that chooses what to unchain listed the packs, then
    read the versions: a commit landing in between named pieces of a pack
    it had not listed, the mark failed ("chunk ... is missing"), and the
    unchaining moved under the writers' lock.  With writers committing all
    along (bench_gc.sh's latency run at 1,000 versions) that happened every
    time: commits waited 1-1.5 s, a writer's latency while gc ran 1.7-2.4x
    alone.  That mark now passes over what it did not list; the locked
    mark, which decides what goes, stays strict."""
    rng = random.Random(11)
    v2 = edited_twice(udr, tmp_path, rng)
    w = rng.randbytes(300_000)

    def commit():
        g = tmp_path / "w"
        g.write_bytes(w)
        udr.ok("commit", "w", "--next", "--file", g)  # a new pack, not in the mark's listing

    rep = gc_paused(udr, tmp_path, "gc-premark-listed", commit)
    assert rep["written"]["unchained"] > 0, rep
    assert rep["writers_stopped"]["unchained"] == 0, rep
    assert rep["writers_stopped"]["premark_passed_over"] >= 1, rep
    assert read_version(udr, tmp_path, "t", 2) == v2
    assert read_version(udr, tmp_path, "w", 1) == w
    assert udr("fsck").code == 0
