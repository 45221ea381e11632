"""A hostile review of `udr fsck`, `--repair` and `--json` (docs/GC.md 6,
"Review F"): each test fails without the fix it names.

- a damaged pack index is never read as "object absent" (get, exists,
  commit); one --repair rewrites it before the multi-pack index is built;
- --json prints a JSON document when the store cannot be opened;
- `unrecoverable` names versions whose version files are damaged, and every
  missing or damaged chunk of a version (bounded);
- run files of a gc run (plan, doomed set) left without a STATE are a
  problem, and --repair removes them without losing a committed version;
- a damaged expired-set checkpoint is reported as a problem;
- --repair --dry-run changes nothing, byte for byte;
- fsck in delta order: a content that checks out vouches only for its own
  pieces (a damaged piece another content lists is still found and named)."""
import hashlib
import json
import os
import subprocess

import pytest
import random

from conftest import FAULT_INJECTION, Udr

from test_fsck_repair import build, chunks, clean, commit, killed_gc, read_back, repair, rnd

needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")


def flip_index_hash(udr, h):
    """Flip a byte inside h's record of its pack's index: the structure the
    readers check on open still holds, the lookup of h misses."""
    (where, pack, *_), = udr.locate(h)[:1]
    assert where == "pack"
    idx = pack.with_suffix(".idx")
    good = idx.read_bytes()
    at = good.find(bytes.fromhex(h))
    assert at > 0
    bad = bytearray(good)
    bad[at + 5] ^= 0x5A
    idx.write_bytes(bytes(bad))
    return pack, idx, good


def tree_digest(root):
    """relative path -> (mode, BLAKE2 of the bytes) of every file and
    directory under root, the lock files included."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, hashlib.blake2b(f.read()).hexdigest())
            else:
                out[os.path.relpath(p, root)] = (st.st_mode, 0, "")
    return out


# ---- 1. a damaged pack index is not "absent" -------------------------------------------------

def test_damaged_index_record_get_reads_the_object(udr, tmp_path):
    """Before: `udr get` answered "not found" (exit 1) for an object whose
    index record was damaged; now the index is checked whole before a miss
    is believed and indexed anew from its (intact) pack."""
    got = build(udr, tmp_path)
    h = chunks(udr, "w", 1)[0]
    flip_index_hash(udr, h)
    r = udr("get", h)
    assert r.code == 0, r
    assert r.stdout == got[("w", 1)]
    assert udr("exists", h).code == 0
    # a commit naming it again finds it (it is not refused as missing)
    udr.ok("commit", "w", "--next", h)
    read_back(udr, tmp_path, got)


def test_damaged_index_and_pack_is_an_integrity_error_not_absent(udr, tmp_path):
    """Index record and pack both damaged: the object may be in the pack,
    so "not found" would be a lie; exit 4 naming the pack."""
    got = build(udr, tmp_path)
    h = chunks(udr, "w", 1)[0]
    pack, idx, good = flip_index_hash(udr, h)
    b = bytearray(pack.read_bytes())
    b[len(b) // 2] ^= 1
    pack.write_bytes(bytes(b))
    for args in (("get", h), ("exists", h)):
        r = udr(*args)
        assert r.code == 4, (args, r)
        assert pack.stem in r.stderr and "damaged" in r.stderr, r
    # a chunk not stored at all is not "absent" either while that pack
    # cannot be read: it may be there
    r = udr("get", "ab" * 32)
    assert r.code == 4, r
    # writers believe the miss: a put stores new content, and the lost
    # content again (a second copy is legal), which then reads back
    new = rnd(3_000_000, 31)  # chunked: its manifest is looked up
    assert udr.ok("get", udr.put(new)).stdout == new
    assert udr.put(got[("w", 1)]) == h
    assert udr.ok("get", h).stdout == got[("w", 1)]


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_MIDX_THRESHOLD (fault-injection build)")
def test_one_repair_rewrites_the_index_before_the_midx(udr, tmp_path):
    """Before: --repair rebuilt the multi-pack index from the damaged .idx,
    its check then rewrote the .idx, and the midx (now wrong) stayed a
    problem until a second --repair (exit 4 the first time)."""
    env = {"UDR_MIDX_THRESHOLD": "1"}
    hs = {}
    for i in range(3):
        data = rnd(3000 + i, i + 1)
        r = udr("put", "-", input=data, env=env)
        assert r.code == 0, r
        hs[r.out.strip()] = data
        udr.ok("commit", "t", "--next", r.out.strip())
    midx = udr.root / "chunks" / "packs" / "multi-pack-index"
    assert midx.exists()
    h = next(iter(hs))
    pack, idx, good = flip_index_hash(udr, h)
    midx.unlink()  # due again: rebuilt by the repair step, from the indexes
    r = repair(udr, env=env)
    assert r.code == 0, r
    assert "repair: rewrote 1 damaged pack index from its pack" in r.out, r.out
    assert "0 problems remaining" in r.out.splitlines()[-1], r.out
    assert idx.read_bytes() == good
    clean(udr, env=env)
    for h, data in hs.items():
        assert udr.ok("get", h).stdout == data


# ---- 2. --json when the store cannot be opened ---------------------------------------------

@pytest.mark.parametrize("args", [("fsck", "--json"), ("fsck", "--repair", "--json")])
def test_json_when_the_store_is_missing(tmp_path, args):
    """Before: nothing on stdout (only the error line on stderr)."""
    udr = Udr(tmp_path / "nostore")
    r = udr(*args)
    assert r.code == 1, r
    j = json.loads(r.out)
    assert j["exit"] == 1 and "not a udr store" in j["error"], j
    assert "not a udr store" in r.stderr
    assert not (tmp_path / "nostore").exists()


@pytest.mark.parametrize("args", [("fsck", "--json"), ("fsck", "--repair", "--json")])
def test_json_when_the_config_is_damaged(udr, tmp_path, args):
    build(udr, tmp_path, n=1)
    cfg = udr.root / "chunks" / "config.json"
    cfg.write_bytes(cfg.read_bytes()[:20])
    before = tree_digest(udr.root)
    r = udr(*args)
    assert r.code != 0, r
    j = json.loads(r.out)
    assert j["exit"] == r.code and j["error"], j
    assert tree_digest(udr.root) == before


# ---- 3. unrecoverable: damaged version files, every chunk -----------------------------------

def test_unrecoverable_names_a_version_whose_file_is_damaged(udr, tmp_path):
    """Before: `unrecoverable` was empty (the version file's damage was a
    problem, but no version was named)."""
    got = build(udr, tmp_path, n=2)
    vf = udr.root / "catalog" / "tables" / "t" / ("%020d.json" % 1)
    vf.write_bytes(b"garbage")
    r = repair(udr, "--json")
    assert r.code == 4, r
    j = json.loads(r.out)
    u = [x for x in j["unrecoverable"] if x["table"] == "t" and x["version"] == 1]
    assert len(u) == 1 and u[0]["reason"] == "version file damaged", j["unrecoverable"]
    r = repair(udr)
    assert r.code == 4 and "unrecoverable t@1: version file damaged" in r.out, r.out
    del got[("t", 1)]
    read_back(udr, tmp_path, got)
    r = udr("fsck", "--json")
    assert any(x["table"] == "t" and x["version"] == 1 for x in json.loads(r.out)["unrecoverable"]), r.out


def test_unrecoverable_lists_every_damaged_chunk_bounded(udr, tmp_path):
    """Before: a version with many damaged chunks named only the first."""
    hs = [udr.put(rnd(2000 + i, 100 + i)) for i in range(20)]
    udr.ok("commit", "m", "--next", *hs)
    other = commit(udr, tmp_path, "w", rnd(5000, 3))
    for h in hs:
        udr.damage(h, "flip")
    r = repair(udr, "--json")
    assert r.code == 4, r
    j = json.loads(r.out)
    u, = [x for x in j["unrecoverable"] if x["table"] == "m"]
    assert u["reason"] == "damaged" and u["chunk_count"] == 20, u
    assert u["chunks"] == hs[:16], u
    r = repair(udr)
    line, = [x for x in r.out.splitlines() if x.startswith("unrecoverable m@1")]
    assert line.endswith(" and 4 more damaged"), line
    assert all(h in line for h in hs[:16]), line
    assert udr.ok("get", chunks(udr, "w", other)[0]).stdout == rnd(5000, 3)


# ---- 4. a gc run's files left without a STATE -----------------------------------------------

def test_run_files_without_state_are_a_problem(udr, tmp_path):
    """Before: STATE removed by hand with the run's plan and doomed set left
    was not noticed (fsck exit 0, 0 problems)."""
    got = build(udr, tmp_path)
    udr.put(rnd(200_000, 76))
    udr.ok("gc", "--grace", "0s")  # epoch 1: STATE written
    udr.put(rnd(200_000, 77))  # garbage for the next run to plan on
    killed_gc(udr, tmp_path)
    gc = udr.root / "chunks" / "gc"
    left = sorted(x.name for x in gc.iterdir() if x.name.startswith(("plan-", "doomed-")))
    assert any(x.startswith("plan-2") for x in left) and any(x.startswith("doomed-2-") for x in left), left
    (gc / "STATE").unlink()
    r = udr("fsck")
    assert r.code == 4, r
    assert "missing gc STATE: chunks/gc/STATE is missing" in r.out, r.out
    assert all(n in r.out for n in left), r.out
    j = json.loads(udr("fsck", "--json").out)
    assert j["exit"] == 4 and any(p["what"] == "gc" and p["object"] == "STATE" for p in j["problems"]), j
    packs = sorted(x.name for x in (udr.root / "chunks" / "packs").iterdir())
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: removed %d run files of abandoned gc runs" % len(left) in r.out, r.out
    assert not any((gc / n).exists() for n in left)
    # no pack went: the run's plan is not carried out without its STATE
    assert sorted(x.name for x in (udr.root / "chunks" / "packs").iterdir()) == packs
    clean(udr)
    read_back(udr, tmp_path, got)
    assert udr("gc", "--grace", "0s").code == 0
    clean(udr)
    read_back(udr, tmp_path, got)


def test_first_run_killed_before_its_state_is_a_note(udr, tmp_path):
    """A first run (epoch 1) writes its plan before its first STATE: killed
    between, that is a crash's leftover, not a STATE removed by hand."""
    got = build(udr, tmp_path)
    gc = udr.root / "chunks" / "gc"
    gc.mkdir(exist_ok=True)
    assert not (gc / "STATE").exists()
    (gc / "plan-1.json").write_text("{}")
    r = udr("fsck")
    assert r.code == 0, r
    assert "note: 1 run file of a first gc run killed before it wrote chunks/gc/STATE" in r.out, r.out
    r = repair(udr)
    assert r.code == 0 and "repair: removed 1 run file" in r.out, r
    assert "run file" not in clean(udr).out
    read_back(udr, tmp_path, got)


def test_run_files_next_to_an_idle_state_are_a_note(udr, tmp_path):
    got = build(udr, tmp_path)
    udr.put(rnd(200_000, 77))  # garbage: the run writes STATE
    udr.ok("gc", "--grace", "0s")
    gc = udr.root / "chunks" / "gc"
    assert (gc / "STATE").exists()
    (gc / "plan-7.json").write_text("{}")
    r = udr("fsck")
    assert r.code == 0 and "note: 1 run file of earlier gc runs left in chunks/gc (plan-7.json)" in r.out, r
    r = repair(udr)
    assert r.code == 0 and "repair: removed 1 run file" in r.out, r
    assert not (gc / "plan-7.json").exists()
    assert "run file" not in clean(udr).out
    read_back(udr, tmp_path, got)


# ---- 6. --repair --dry-run ------------------------------------------------------------------

def test_repair_dry_run_changes_nothing(udr, tmp_path):
    """Before: --dry-run was an unknown option (usage error).  Now: what
    --repair would do is said, and the store tree is the same, byte for
    byte, lock files and directories included; --repair then does it."""
    got = build(udr, tmp_path)
    udr.put(rnd(200_000, 77))  # garbage
    h = chunks(udr, "w", 1)[0]
    flip_index_hash(udr, h)
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmpd = udr.root / "chunks" / "tmp"
    tmpd.mkdir(exist_ok=True)
    (tmpd / ("%d-00000000deadbeef.tmp" % dead.pid)).write_bytes(b"x")
    leases = udr.root / "catalog" / "leases"
    leases.mkdir(exist_ok=True)
    (leases / ("%d-%016x.lease" % (dead.pid, 0xABCDEF))).write_text(
        '{"pin":1,"snapshot":1,"branch":"main","what":"txn","ms":1}\n')
    gc = udr.root / "chunks" / "gc"
    gc.mkdir(exist_ok=True)
    with open(gc / "fresh.0", "ab") as f:
        f.write(b"\x01\x02\x03")
    (gc / "plan-5.json").write_text("{}")
    before = tree_digest(udr.root)
    r = repair(udr, "--dry-run")
    assert r.code == 4, r
    out = r.out
    assert "would: remove 1 run file" in out, out
    assert "would: cut a torn record (3 bytes) off chunks/gc/fresh" in out, out
    assert "would: remove 1 stale lease of dead processes" in out, out
    assert "checksum mismatch (--repair: rebuilt from the pack)" in out, out
    assert "unrecoverable" not in out, out
    assert out.splitlines()[-1].endswith("nothing changed"), out
    assert tree_digest(udr.root) == before
    j = json.loads(repair(udr, "--dry-run", "--json").out)
    assert j["dry_run"] is True and j["exit"] == 4 and j["unrecoverable"] == [], j
    assert any("stale lease" in w for w in j["repair"]["would"]), j
    assert tree_digest(udr.root) == before
    # what it said, --repair does
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: removed 1 stale lease" in r.out and "repair: removed 1 run file" in r.out, r.out
    clean(udr)
    read_back(udr, tmp_path, got)


def test_dry_run_needs_repair(udr, tmp_path):
    build(udr, tmp_path, n=1)
    before = tree_digest(udr.root)
    for args in (("fsck", "--dry-run"), ("fsck", "--dry-run", "--reset-head"),
                 ("fsck", "--repair", "--dry-run", "--repair-from", "x")):
        r = udr(*args)
        assert r.code == 2 and "--dry-run goes with --repair" in r.stderr, r
    assert tree_digest(udr.root) == before


# ---- 5. a damaged expired-set checkpoint ----------------------------------------------------

@pytest.mark.parametrize("how", ["garbage", "tampered", "missing"])
def test_damaged_expired_checkpoint_is_reported_and_rewritten_sealed(udr, tmp_path, how):
    """The review said fsck rewrote it silently and wrote it without a
    checksum.  Not so in this tree (this test passes before the review's
    fixes too; it pins the behaviour): fsck names the damage as a problem
    (exit 4), says it rewrote it, and the file it writes is sealed ("check",
    FORMAT.md "Sealed files") and the same bytes as the one the expire
    wrote."""
    for i in range(3):
        commit(udr, tmp_path, "t", rnd(3000, 200 + i))
    udr.ok("retention", "expire", "--keep-last", "1")
    ck, = (udr.root / "catalog" / "expired" / "t").iterdir()
    good = ck.read_bytes()
    assert json.loads(good)["check"], good
    if how == "garbage":
        ck.write_bytes(b"junk")
    elif how == "tampered":  # valid JSON, one range widened, the old seal
        ck.write_bytes(good.replace(b"[[1,2,", b"[[1,3,"))
        assert ck.read_bytes() != good
    else:
        ck.unlink()
    r = udr("fsck")
    assert r.code == 4, r
    line, = [x for x in r.out.splitlines() if str(ck) in x]
    assert ("is missing" if how == "missing" else "is damaged") in line and "rewritten from the log" in line, line
    assert ck.read_bytes() == good
    clean(udr)
    # --repair --json: in "found", none remaining
    ck.write_bytes(b"junk")
    j = json.loads(repair(udr, "--json").out)
    assert j["exit"] == 0 and j["problem_count"] == 0, j
    assert any(str(ck) in p["message"] for p in j["repair"]["found"]), j
    assert ck.read_bytes() == good


# ---- fsck in delta order: what the pass over the contents vouches for ------------------------

def test_a_content_vouches_only_for_its_own_pieces(udr, tmp_path):
    """t@1 and t@2 share most pieces; t@2 has pieces of its own (deltas on
    t@1's).  The pass in delta order checks t@1 whole and the object walk
    then skips t@1's pieces: a damaged piece that only t@2 lists is still
    found, t@2 is named, and so is a damaged piece shared by both."""
    rng = random.Random(11)
    a = bytearray(rng.randbytes(600_000))
    commit(udr, tmp_path, "t", bytes(a))
    a[300_000:300_016] = rng.randbytes(16)
    commit(udr, tmp_path, "t", bytes(a))
    c1, c2 = chunks(udr, "t", 1)[0], chunks(udr, "t", 2)[0]

    def pieces(h):
        """The piece hashes its manifest lists (FORMAT.md, "Manifest")."""
        (where, path, off, length, kind), = udr.locate(h)[:1]
        with open(path, "rb") as f:
            f.seek(off)
            m = f.read(length)
        assert m[:4] == b"UDRM", (where, kind)
        n = int.from_bytes(m[16:24], "little")
        return [m[64 + 36 * i: 96 + 36 * i].hex() for i in range(n)]

    p1, p2 = pieces(c1), pieces(c2)
    only2 = [p for p in p2 if p not in p1]
    shared = [p for p in p2 if p in p1]
    assert only2 and shared
    clean(udr)
    for bad, named in ((only2[0], {c2}), (shared[len(shared) // 2], {c1, c2})):
        saved = tmp_path / "saved"
        if saved.exists():
            subprocess.run(["rm", "-rf", str(udr.root)], check=True)
            subprocess.run(["cp", "-a", str(saved), str(udr.root)], check=True)
        else:
            subprocess.run(["cp", "-a", str(udr.root), str(saved)], check=True)
        udr.damage(bad, "flip")
        r = udr("fsck")
        assert r.code == 4, r
        assert any(bad in x for x in r.out.splitlines() if x.startswith("corrupt chunk " + bad)), r.out
        for c in named:
            assert any(x.startswith("corrupt chunk " + c) for x in r.out.splitlines()), (c, r.out)
        for c in {c1, c2} - named:
            assert not any(x.startswith("corrupt chunk " + c) for x in r.out.splitlines()), (c, r.out)
