"""Review R7 of three commits: choose_bases' plain piece past a quarter of
delta.max_depth (ingest), one-pread pack entries and gc's unchaining through
udr__base_load (sweep full_copy), and the mark's cache of a delta copy's
base runs (dref/dpool) used by later expansions and by unchain().  What gc
leaves must read back byte for byte and pass fsck; a chain it cannot decode
must stay chained, never turned into a wrong full copy."""
import json
import random

import pytest

from conftest import FAULT_INJECTION

ALWAYS = {"UDR_GC_UNCHAIN": "always"}
needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_UNCHAIN needs a test build")

K_RAW, K_ZST, K_MANIFEST, K_DELTA = 1, 2, 3, 4


def init(udr, depth):
    """A new store of small pieces at delta.max_depth depth, in udr's place."""
    udr.root = udr.root.parent / ("s%d" % depth)
    udr.ok("init", "--chunk-min", "2K", "--chunk-avg", "4K", "--chunk-max", "16K", "--delta-depth", str(depth))


def table_versions(n, rows=3000, seed=7):
    """n versions of an edited table: 1% of rows rewritten, 1% appended."""
    rng = random.Random(seed)
    val = [rng.randrange(10 ** 8) for _ in range(rows)]
    out = []
    for v in range(n):
        if v:
            for _ in range(rows // 100):
                val[rng.randrange(rows)] = rng.randrange(10 ** 8)
            val.extend(rng.randrange(10 ** 8) for _ in range(rows // 100))
        out.append("".join("%06d,%08d\n" % (i, x) for i, x in enumerate(val)).encode())
    return out


def commit_all(udr, tmp_path, table, versions):
    f = tmp_path / "in"
    for d in versions:
        f.write_bytes(d)
        udr.ok("commit", table, "--next", "--file", f)


def chunks(udr, table, v):
    return json.loads(udr.ok("show", table, str(v)).out)["chunks"]


def read_version(udr, tmp_path, table, v):
    got = b""
    for h in chunks(udr, table, v):
        f = tmp_path / "got"
        udr.ok("get", h, "-o", f)
        got += f.read_bytes()
    return got


def entries(udr):
    """Every pack entry: (hash hex, kind, pack path, payload offset, length)."""
    out = []
    for p in sorted((udr.root / "chunks" / "packs").glob("*.pack")):
        b = p.read_bytes()
        o, end = 16, len(b) - 16
        while o + 52 <= end:
            kind = b[o]
            n = int.from_bytes(b[o + 4:o + 8], "little")
            out.append((b[o + 16:o + 48].hex(), kind, p, o + 48, n))
            o += 48 + n + 4
    return out


def kinds(udr, h):
    return sorted(c[4] for c in udr.locate(h))


def gc(udr, *args, env=None, ok=True):
    r = udr("gc", "--grace", "0s", "--json", *args, env=env)
    if ok:
        assert r.code == 0, r
        return json.loads(r.out)
    return r


@needs_faults
@pytest.mark.parametrize("depth", [2, 3, 8, 50])
def test_deep_chains_expire_gc_unchain_reads_every_kept_version(udr, tmp_path, depth):
    """Long histories at several delta.max_depth (below and at the 8 where
    choose_bases' plain-piece rule starts): expire most versions, gc with
    unchaining forced, then a second gc (the mark's cache built again on the
    unchained store): every kept version reads back byte for byte, fsck is
    clean, and a put over the kept head still chains."""
    u = udr
    init(u, depth)
    vs = table_versions(36)
    commit_all(u, tmp_path, "t", vs)
    rep = gc(u, "--keep-last", "4", env=ALWAYS)
    assert rep["written"]["unchained"] > 0, rep
    for v in range(33, 37):
        assert read_version(u, tmp_path, "t", v) == vs[v - 1], v
    r = u("fsck")
    assert r.code == 0, r
    gc(u, "--keep-last", "2")
    for v in range(35, 37):
        assert read_version(u, tmp_path, "t", v) == vs[v - 1], v
    more = table_versions(40)[36:]
    commit_all(u, tmp_path, "t", more)
    gc(u, "--keep-last", "3", env=ALWAYS)
    for v, d in zip(range(38, 41), more[1:]):
        assert read_version(u, tmp_path, "t", v) == d, v
    r = u("fsck")
    assert r.code == 0, r


@needs_faults
def test_unchain_through_a_damaged_plain_base_leaves_it_chained(udr, tmp_path):
    """The bottom of every chain (version 1's plain pieces, which the mark
    never reads: a single copy is not checked) damaged, their CRC failing:
    unchaining's decode (udr__base_load, no longer rehashing each level)
    fails, so each candidate stays a delta (no full copy written from
    damaged bytes), the damaged bases are kept (the deltas still need them),
    gc exits 0 and fsck still reports damage."""
    init(udr, 50)
    vs = table_versions(6)
    f = tmp_path / "in"
    f.write_bytes(vs[0])
    udr.ok("commit", "t", "--next", "--file", f)
    plain = sorted({e[0] for e in entries(udr) if e[1] in (K_RAW, K_ZST)})
    assert plain
    commit_all(udr, tmp_path, "t", vs[1:])
    deltas = sorted({e[0] for e in entries(udr) if e[1] == K_DELTA})
    assert deltas
    for h in plain:
        udr.damage(h, "flip")
    rep = gc(udr, "--keep-last", "1", env=ALWAYS)
    assert rep["written"]["unchained"] == 0, rep
    for h in plain:
        assert udr.locate(h), "damaged base %s removed" % h
    full_now = {e[0] for e in entries(udr) if e[1] in (K_RAW, K_ZST)}
    assert set(deltas) - full_now, "every delta has a full copy"
    for h in deltas:
        if h in full_now:
            # a full copy was written: it must be h's own bytes
            r = udr("get", h, "-o", tmp_path / "g")
            assert r.code == 0, (h, r)
    r = udr("fsck")
    assert r.code != 0, r


def test_gc_refuses_when_a_mid_chain_delta_is_damaged(udr, tmp_path):
    """A delta in the middle of the chains damaged (CRC): the mark finds a
    needed base with only damaged copies and removes nothing (exit 4, every
    file as it was), with unchaining forced or not."""
    init(udr, 50)
    vs = table_versions(6)
    commit_all(udr, tmp_path, "t", vs[:3])
    mid = sorted({e[0] for e in entries(udr) if e[1] == K_DELTA})
    commit_all(udr, tmp_path, "t", vs[3:])
    assert mid
    for h in mid:
        udr.damage(h, "flip")
    files = sorted((p.name, p.stat().st_size) for p in udr.object_files())
    for env in (ALWAYS if FAULT_INJECTION else None, None):
        r = gc(udr, "--keep-last", "1", env=env, ok=False)
        assert r.code == 4, r
        assert sorted((p.name, p.stat().st_size) for p in udr.object_files()) == files


@needs_faults
def test_second_table_sharing_bases_keeps_them_through_cache(udr, tmp_path):
    """Two tables whose chains share base pieces (u forked from t's content,
    then edited apart): expiring t's history while u keeps an old version
    must keep every base u needs; the mark reaches those bases through the
    cached runs (as a base first, then live through u).  Both heads and u's
    old version read back; fsck is clean."""
    init(udr, 8)
    vs = table_versions(20)
    commit_all(udr, tmp_path, "t", vs[:10])
    commit_all(udr, tmp_path, "u", [vs[4], vs[9]])
    other = table_versions(12, seed=8)
    commit_all(udr, tmp_path, "u", other[:2])
    commit_all(udr, tmp_path, "t", vs[10:])
    gc(udr, "--keep-last", "2", env=ALWAYS)
    gc(udr, "--keep-last", "2")
    assert read_version(udr, tmp_path, "t", 20) == vs[19]
    assert read_version(udr, tmp_path, "t", 19) == vs[18]
    assert read_version(udr, tmp_path, "u", 4) == other[1]
    assert read_version(udr, tmp_path, "u", 3) == other[0]
    r = udr("fsck")
    assert r.code == 0, r


def test_mark_memory_of_a_small_delta_store(udr, tmp_path):
    """The mark's memory stays within test_gc's bound (64 bytes a copy +
    8 KiB) on a small store of deltas: the cache of base runs began at 4096
    entries (16 KiB), whatever the number of delta copies (a store of 68
    copies peaked at 22,136 bytes against a bound of 12,544)."""
    init(udr, 50)
    commit_all(udr, tmp_path, "t", table_versions(6))
    for args in ((), ("--keep-last", "1")):
        rep = gc(udr, *args)
        m = rep["mark"]
        assert m["peak_bytes"] <= 64 * m["copies"] + 8192, m


@needs_faults
def test_unchain_through_a_repaired_mid_chain_base(udr, tmp_path):
    """A delta in the middle of the chains damaged (CRC), then repaired by a
    put of its bytes (a good copy, the damaged pack rewritten without it):
    unchaining decodes the candidates through it, every kept version reads
    back and fsck is clean."""
    init(udr, 50)
    vs = table_versions(6)
    commit_all(udr, tmp_path, "t", vs[:3])
    mid = sorted({e[0] for e in entries(udr) if e[1] == K_DELTA})
    commit_all(udr, tmp_path, "t", vs[3:])
    assert mid
    saved = {}
    for h in mid:
        udr.ok("get", h, "-o", tmp_path / "m")
        saved[h] = (tmp_path / "m").read_bytes()
    for h in mid:
        udr.damage(h, "flip")
        assert udr.put(saved[h]) == h
        assert udr.locate(h)  # the put rewrites the damaged pack: one good copy
    rep = gc(udr, "--keep-last", "1", env=ALWAYS)
    assert read_version(udr, tmp_path, "t", 6) == vs[5]
    assert rep["written"]["unchained"] > 0, rep
    r = udr("fsck")
    assert r.code == 0, (r, rep)
