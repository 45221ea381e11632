"""`udr fsck --repair` and `udr fsck --json` (docs/GC.md 6, issue 15).

Each repair: the store is damaged the way a crash or bit rot would, `fsck
--repair` says what it did, fsck is then clean and every version reads back
byte for byte.  A damaged or missing chunk is never repaired: --repair exits
4 and names exactly the versions that cannot be read back (in --json too),
and writes nothing.  --repair refuses while a gc holds its lock.  --json
parses and says what the human output says."""
import json
import os
import random
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, Udr, base_env

needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")


def rnd(n, seed):
    return random.Random(seed).randbytes(n)


def commit(udr, tmp_path, table, data):
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    return int(udr.ok("commit", table, "--next", "--file", f).out.split()[-1])


def chunks(udr, table, v):
    return json.loads(udr.ok("show", table, str(v)).out)["chunks"]


def build(udr, tmp_path, n=3):
    """n versions of t and one of w; returns {(table, version): bytes}."""
    got = {}
    base = bytearray(rnd(400_000, 1))
    for i in range(n):
        base[1000 * i: 1000 * i + 8] = b"v%07d" % i
        got[("t", commit(udr, tmp_path, "t", bytes(base)))] = bytes(base)
    data = rnd(150_000, 9)
    got[("w", commit(udr, tmp_path, "w", data))] = data
    return got


def read_back(udr, tmp_path, got):
    for (t, v), data in got.items():
        hs = chunks(udr, t, v)
        assert b"".join(udr.ok("get", h).stdout for h in hs) == data, (t, v)


def killed_gc(udr, tmp_path, point="gc-guard"):
    """A gc run killed at its guard (or at point: gc-doomed, before its
    rewrite): STATE planned or rewritten, its plan and doomed set in
    chunks/gc."""
    pause = tmp_path / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s"],
                         env=base_env({"UDR_PAUSE": "%s:%s" % (point, pause)}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t = time.monotonic() + 60
        while not (pause / ("%s.reached" % point)).exists():
            assert p.poll() is None and time.monotonic() < t, p.communicate()
            time.sleep(0.01)
        p.kill()
    finally:
        p.communicate(timeout=60)


def repair(udr, *args, env=None):
    return udr("fsck", "--repair", *args, env=env)


def clean(udr, env=None):
    r = udr("fsck", env=env)
    assert r.code == 0, r
    assert " 0 problems" in r.out, r
    return r


def tree(root):
    """path -> bytes of every file under root (the empty lock files aside:
    gc's active.0 and .1 are made by whoever takes the fence first)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "lock" and not p.name.startswith("active."):
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


# ---- crash leftovers ------------------------------------------------------------------------

@needs_faults
@pytest.mark.parametrize("op", ["fsync", "link"])
def test_killed_put_leaves_temp_files_repair_removes_them(udr, tmp_path, op):
    got = build(udr, tmp_path)
    r = udr("put", "-", input=rnd(50_000, 5), env={"UDR_FAULT": "%s:1:crash" % op})
    assert r.code in (-9, 137), r  # SIGKILL at the fault point
    tmp = udr.root / "chunks" / "tmp"
    left = [p for p in tmp.iterdir()]
    assert left, "the killed put left no temp file"
    r = repair(udr)
    assert r.code == 0, r
    assert r.out.splitlines()[-1].endswith(" %d temp file%s removed" % (len(left), "" if len(left) == 1 else "s")), r.out
    assert "0 problems remaining" in r.out, r.out
    assert not any(p.exists() for p in left)
    clean(udr)
    read_back(udr, tmp_path, got)


def test_stale_lease_removed_live_one_kept(udr, tmp_path):
    got = build(udr, tmp_path)
    d = udr.root / "catalog" / "leases"
    d.mkdir(exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = d / ("%d-%016x.lease" % (dead.pid, 0xABCDEF))
    stale.write_text('{"pin":1,"snapshot":1,"branch":"main","what":"txn","ms":1}\n')
    r = udr("fsck")  # said, not counted, left in place
    assert r.code == 0 and "note: 1 lease file of dead processes" in r.out, r
    assert stale.exists()
    assert json.loads(udr.ok("gc", "--status", "--json").out)["stale_leases"] == 1
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: removed 1 stale lease of dead processes" in r.out, r.out
    assert not stale.exists()
    assert "lease" not in clean(udr).out
    read_back(udr, tmp_path, got)


def test_torn_fresh_record_cut(udr, tmp_path):
    got = build(udr, tmp_path)
    gcdir = udr.root / "chunks" / "gc"
    gcdir.mkdir(exist_ok=True)
    f = gcdir / "fresh.0"
    whole = (int(time.time() * 1000)).to_bytes(8, "little") + bytes.fromhex(chunks(udr, "w", 1)[0])
    f.write_bytes(whole + b"\x01\x02\x03\x04\x05\x06\x07")
    r = udr("fsck")  # said, not counted, not cut
    assert r.code == 0 and "note: chunks/gc/fresh ends with a torn record (7 bytes)" in r.out, r
    j = json.loads(udr.ok("fsck", "--json").out)
    assert any("torn record (7 bytes)" in n for n in j["notes"]) and j["problem_count"] == 0, j
    assert len(f.read_bytes()) == 47
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: cut a torn record (7 bytes) off chunks/gc/fresh" in r.out, r.out
    assert f.read_bytes() == whole
    r = repair(udr)
    assert r.code == 0 and "torn record" not in r.out, r
    assert "torn" not in clean(udr).out
    read_back(udr, tmp_path, got)


@needs_faults
def test_gc_killed_before_deleting_is_abandoned(udr, tmp_path):
    got = build(udr, tmp_path)
    udr.put(rnd(200_000, 77))  # garbage for gc to plan on
    killed_gc(udr, tmp_path)
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["phase"] in ("planned", "rewritten"), st
    plans = list((udr.root / "chunks" / "gc").glob("plan-*"))
    assert plans
    plans += list((udr.root / "chunks" / "gc").glob("doomed-*"))  # the run's doomed set (GC.md 4.7)
    r = udr("fsck")  # said, not counted, not repaired
    assert r.code == 0 and ("note: gc epoch %d was interrupted (%s)" % (st["epoch"], st["phase"])) in r.out, r
    assert all(x.exists() for x in plans)
    j = json.loads(udr.ok("fsck", "--json").out)
    assert j["problem_count"] == 0 and any("was interrupted" in n for n in j["notes"]), j
    r = repair(udr)
    assert r.code == 0, r
    assert "was killed before deleting (%s): abandoned" % st["phase"] in r.out, r.out
    assert "repair: removed %d run file" % len(plans) in r.out, r.out
    assert not any(x.exists() for x in plans)
    assert json.loads(udr.ok("gc", "--status", "--json").out)["phase"] == "idle"
    assert "was interrupted" not in clean(udr).out
    read_back(udr, tmp_path, got)
    # gc runs again, and the store stays whole
    assert udr("gc", "--grace", "0s").code == 0
    clean(udr)
    read_back(udr, tmp_path, got)


@needs_faults
def test_gc_killed_while_deleting_is_finished(udr, tmp_path):
    """kill -9 at the n-th unlink of a gc until one dies with STATE
    deleting; --repair finishes that deletion (the plan's packs go), STATE
    idle, and every version reads back."""
    got = build(udr, tmp_path)
    for i in range(3):
        udr.put(rnd(200_000, 50 + i))  # garbage, in packs of its own
    import shutil
    for n in range(1, 12):
        s = tmp_path / ("s%d" % n)
        shutil.copytree(udr.root, s)
        u = Udr(s)
        r = u("gc", "--grace", "0s", env={"UDR_FAULT": "unlink:%d:crash" % n})
        if r.code == 0:
            break
        st = json.loads(u.ok("gc", "--status", "--json").out)
        if st["phase"] != "deleting":
            continue
        plan = json.loads((s / "chunks" / "gc" / st["plan"]).read_text())
        doomed = plan["drop"] + plan["rewrite"]
        assert doomed, plan
        r = repair(u)
        assert r.code == 0, r
        assert "repair: gc run of epoch %d was killed while deleting: finished" % st["epoch"] in r.out, r.out
        for name in doomed:
            assert not (s / "chunks" / "packs" / (name + ".pack")).exists()
            assert not (s / "chunks" / "packs" / (name + ".idx")).exists()
        assert json.loads(u.ok("gc", "--status", "--json").out)["phase"] == "idle"
        clean(u)
        read_back(u, tmp_path, got)
        return
    pytest.fail("no gc run died while deleting")


@needs_faults
@pytest.mark.parametrize("how", ["flip", "cut", "another-run"])
def test_gc_killed_while_deleting_with_damaged_plan_is_abandoned(udr, tmp_path, how):
    """A run killed while deleting whose plan is then damaged (a flipped
    byte; cut in half, which lost its seal and was taken as an unsealed
    file; a sealed plan of another run): gc and --repair both refused it
    (exit 4) while fsck said 0 problems, so nothing could get the store
    out; a cut plan was carried out as far as its text went, another run's
    whole.  Now fsck counts it a problem naming the
    plan, gc refuses naming it and the way out, and --repair abandons the
    run (STATE idle, nothing more deleted; a pack whose index the run had
    removed is indexed again).  Found by tests/stress/test_sweep_gc.py."""
    got = build(udr, tmp_path)
    for i in range(3):
        udr.put(rnd(200_000, 50 + i))
    import shutil
    for n in range(1, 12):
        s = tmp_path / ("s%d" % n)
        shutil.copytree(udr.root, s)
        u = Udr(s)
        r = u("gc", "--grace", "0s", env={"UDR_FAULT": "unlink:%d:crash" % n})
        assert r.code != 0, "no gc run died while deleting"
        st = json.loads(u.ok("gc", "--status", "--json").out)
        if st["phase"] == "deleting":
            break
    else:
        pytest.fail("no gc run died while deleting")
    plan = s / "chunks" / "gc" / st["plan"]
    raw = bytearray(plan.read_bytes())
    if how == "flip":
        raw[len(raw) // 2] ^= 0xFF
    elif how == "cut":
        del raw[len(raw) // 2:]
    else:
        # a sealed plan of another run (another mark): its seal passes;
        # carried out, it would delete the packs it names
        body = bytes(raw[:raw.rindex(b',"check":"')]).replace(b'"mark":', b'"mark":1', 1)
        check = subprocess.run(["b3sum", "--no-names", "-"], input=body, check=True,
                               capture_output=True).stdout.decode().strip()
        raw = bytearray(body + b',"check":"' + check.encode() + b'"}\n')
    plan.write_bytes(bytes(raw))
    r = u("fsck")
    assert r.code == 4 and "corrupt gc plan" in r.out and st["plan"] in r.out, r
    r = u("gc", "--grace", "0s")
    assert r.code == 4 and st["plan"] in r.stderr and "fsck --repair" in r.stderr, r
    r = u("fsck", "--repair", "--dry-run")
    assert "would: abandon the gc run of epoch %d killed while deleting: its plan is damaged" % st["epoch"] in r.out, r
    r = repair(u)
    assert r.code == 0, r
    assert "repair: gc run of epoch %d was killed while deleting and its plan is damaged: abandoned" % st["epoch"] \
        in r.out, r.out
    assert "finished" not in r.out
    assert not plan.exists()
    assert json.loads(u.ok("gc", "--status", "--json").out)["phase"] == "idle"
    read_back(u, tmp_path, got)
    assert u("gc", "--grace", "0s").code == 0
    clean(u)
    read_back(u, tmp_path, got)


def damage_state(root):
    st = root / "chunks" / "gc" / "STATE"
    b = bytearray(st.read_bytes())
    b[len(b) // 2] ^= 1
    st.write_bytes(bytes(b))


@needs_faults
@pytest.mark.parametrize("when", ["idle", "planned", "planned_lost_index", "deleting", "recorded_then_committed"])
def test_damaged_state_written_anew(udr, tmp_path, when):
    """chunks/gc/STATE damaged (after a clean run; with a run killed at its
    guard, also with a plan pack's index lost; or at each unlink while
    deleting): fsck reported every pack as a corrupt chunk, and --repair
    refused it (writers and gc stayed stopped until the file was removed by
    hand).  Now fsck names the STATE (exit 4), and --repair writes it anew
    with the newest gc record of the log as its floor, abandoning any run it
    named: nothing deleted.  Rules that finished such a run failed review,
    each deleting a copy a version needed: planned_lost_index (an index
    merely lost) and recorded_then_committed (a run killed between its gc
    record and STATE deleting, then a commit reusing its copies) are those
    cases.  Every version reads back at once; a run killed while deleting
    may leave dead deltas without their bases, which fsck names until the
    next gc drops them; then fsck is clean."""
    import shutil
    got = build(udr, tmp_path, n=3)
    for i in range(4):  # x@1 shares nothing: expiring it sweeps data, so a gc record is linked
        data = rnd(100_000, 40 + i)
        got[("x", commit(udr, tmp_path, "x", data))] = data
    first = json.loads(udr.ok("gc", "--keep-last", "3", "--grace", "0s", "--json").out)
    del got[("x", 1)]
    assert first["gc_seq"] > 0, first
    # garbage for the next run: plain pieces, and deltas on them in a pack
    # of their own (a run killed between packs leaves those without bases)
    base = bytearray(rnd(600_000, 60))
    hb = udr.put(bytes(base))
    for i in range(0, len(base), 4096):
        base[i] ^= 0xff
    f = tmp_path / "y"
    f.write_bytes(bytes(base))
    udr.ok("put", "--base", hb, f)
    garbage = rnd(200_000, 61)
    udr.put(garbage)
    stores = [udr.root]
    if when.startswith("planned"):
        # before its rewrite: the plan's packs hold the only copies
        killed_gc(udr, tmp_path, "gc-doomed" if when == "planned_lost_index" else "gc-guard")
        if when == "planned_lost_index":
            st = json.loads(udr.ok("gc", "--status", "--json").out)
            plan = json.loads((udr.root / "chunks" / "gc" / st["plan"]).read_text())
            assert plan["rewrite"] or plan["drop"], plan
            for n in plan["rewrite"] + plan["drop"]:
                (udr.root / "chunks" / "packs" / (n + ".idx")).unlink()
    elif when == "deleting":
        stores = []
        for n in range(1, 16):
            s = tmp_path / ("s%d" % n)
            shutil.copytree(udr.root, s)
            # --keep-last 2 expires x@2: the run links a gc record
            if Udr(s)("gc", "--keep-last", "2", "--grace", "0s", env={"UDR_FAULT": "unlink:%d:crash" % n}).code == 0:
                break
            if json.loads(Udr(s).ok("gc", "--status", "--json").out)["phase"] == "deleting":
                stores.append(s)
        assert len(stores) >= 3, stores
        del got[("x", 2)], got[("t", 1)]
    elif when == "recorded_then_committed":
        head = json.loads(udr.ok("log", "--limit", "1", "--json").out)[0]["seq"]
        for n in range(1, 30):
            s = tmp_path / ("s%d" % n)
            shutil.copytree(udr.root, s)
            if Udr(s)("gc", "--keep-last", "2", "--grace", "0s", env={"UDR_FAULT": "rename:%d:crash" % n}).code == 0:
                pytest.fail("no gc run died between its record and STATE deleting")
            st = json.loads(Udr(s).ok("gc", "--status", "--json").out)
            if st["phase"] == "rewritten" and json.loads(Udr(s).ok("log", "--limit", "1", "--json").out)[0]["seq"] > head:
                break
            shutil.rmtree(s)
        else:
            pytest.fail("no gc run died between its record and STATE deleting")
        stores = [s]
        del got[("x", 2)], got[("t", 1)]
        # the run counts as dead: a commit now reuses the garbage's copy,
        # which only the run's plan packs hold
        got[("z", commit(Udr(s), tmp_path, "z", garbage))] = garbage
    begun_seen = []
    for s in stores:
        u = Udr(s)
        st = json.loads(u.ok("gc", "--status", "--json").out)
        assert st["phase"] == {"recorded_then_committed": "rewritten"}.get(when, when.split("_")[0]) or (
            when.startswith("planned") and st["phase"] == "rewritten"), st
        begun = False
        if st["phase"] == "deleting":
            plan = json.loads((s / "chunks" / "gc" / st["plan"]).read_text())
            pk = s / "chunks" / "packs"
            begun = any(not (pk / (n + ".idx")).exists() for n in plan["drop"] + plan["rewrite"])
            begun_seen.append(begun)
        damage_state(s)
        assert u("put", "-", input=b"refused").code != 0
        r = u("fsck")
        assert r.code == 4 and "corrupt gc STATE" in r.out, (s, r)
        if not begun and when not in ("planned_lost_index", "recorded_then_committed"):
            # nothing of the run gone: the STATE is the one problem (fsck
            # named every pack a corrupt chunk before)
            assert "corrupt chunk" not in r.out and " 1 problem" in r.out, (s, r)
            j = json.loads(u("fsck", "--json").out)
            assert [(x["kind"], x["what"]) for x in j["problems"]] == [("corrupt", "gc")], j
        r = u("fsck", "--repair", "--dry-run")
        assert r.code == 4 and "would: write chunks/gc/STATE anew" in r.out, r
        r = u("fsck", "--repair")
        assert r.code == 0 or (begun and r.code == 4), (s, r)
        assert "chunks/gc/STATE was damaged" in r.out and "a gc run it named is abandoned" in r.out, r
        assert "finished" not in r.out and "unrecoverable" not in r.out, r.out  # never deletes
        if when not in ("deleting", "recorded_then_committed"):  # the floor, from the log (those runs linked a newer one)
            assert "(the newest gc record: %d)" % first["gc_seq"] in r.out, r.out
        assert not list((s / "chunks" / "gc").glob("plan-*")) and not list((s / "chunks" / "gc").glob("doomed-*"))
        assert json.loads(u.ok("gc", "--status", "--json").out)["phase"] == "idle"
        if not begun:
            clean(u)
        read_back(u, tmp_path, got)
        u.put(b"works again")
        assert u("gc", "--grace", "0s").code == 0
        clean(u)
        read_back(u, tmp_path, got)
    if when == "deleting":  # both kinds of kill: before and after the packs' indexes went
        assert True in begun_seen and False in begun_seen, begun_seen


# ---- derived files rebuilt ------------------------------------------------------------------

def test_deleted_pack_index_rebuilt(udr, tmp_path):
    got = build(udr, tmp_path)
    h = chunks(udr, "w", 1)[0]
    (where, pack, *_), = udr.locate(h)[:1]
    assert where == "pack"
    idx = pack.with_suffix(".idx")
    good = idx.read_bytes()
    idx.unlink()
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: indexed 1 pack without an index, from its bytes" in r.out, r.out
    assert idx.read_bytes() == good
    clean(udr)
    read_back(udr, tmp_path, got)


def test_truncated_pack_index_rebuilt(udr, tmp_path):
    got = build(udr, tmp_path)
    h = chunks(udr, "w", 1)[0]
    (where, pack, *_), = udr.locate(h)[:1]
    idx = pack.with_suffix(".idx")
    good = idx.read_bytes()
    idx.write_bytes(good[: len(good) // 2])
    r = repair(udr)
    assert r.code == 0, r
    lines = r.out.splitlines()
    # rewritten by the repair step, before the multi-pack index is looked
    # at (test_fsck_review.py), so the check finds nothing
    assert "repair: rewrote 1 damaged pack index from its pack" in lines, r.out
    assert "0 problems remaining" in lines[-1], r.out
    assert idx.read_bytes() == good
    clean(udr)
    read_back(udr, tmp_path, got)


def test_damaged_index_entry_is_not_an_unrecoverable_version(udr, tmp_path):
    """A flipped byte in a hash of a pack index: the first check rebuilds
    the index from the pack; the second must read the rebuilt one (it read
    the damaged entry kept by the first's handle and named the intact w@1
    unrecoverable, exit 4; found by a hostile test)."""
    got = build(udr, tmp_path)
    h = chunks(udr, "w", 1)[0]
    (where, pack, *_), = udr.locate(h)[:1]
    idx = pack.with_suffix(".idx")
    good = idx.read_bytes()
    at = good.find(bytes.fromhex(h))
    assert at > 0
    bad = bytearray(good)
    bad[at + 5] ^= 0x5A
    idx.write_bytes(bytes(bad))
    r = repair(udr)
    assert r.code == 0, r
    assert "unrecoverable" not in r.out, r.out
    assert "0 problems remaining" in r.out.splitlines()[-1], r.out
    assert idx.read_bytes() == good
    clean(udr)
    read_back(udr, tmp_path, got)


@needs_faults
def test_deleted_multi_pack_index_rebuilt(udr, tmp_path):
    env = {"UDR_MIDX_THRESHOLD": "1"}
    hs = {}
    for i in range(3):
        data = rnd(3000 + i, i + 1)
        r = udr("put", "-", input=data, env=env)
        assert r.code == 0, r
        hs[r.out.strip()] = data
        udr.ok("commit", "t", "--next", r.out.strip())
    midx = udr.root / "chunks" / "packs" / "multi-pack-index"
    good = midx.read_bytes()
    midx.unlink()
    r = repair(udr, env=env)
    assert r.code == 0, r
    assert "repair: rebuilt the multi-pack index" in r.out, r.out
    assert midx.read_bytes() == good
    # damaged: rebuilt by the repair step, not left to the check
    bad = bytearray(good)
    bad[16] ^= 1
    midx.write_bytes(bytes(bad))
    r = repair(udr, env=env)
    assert r.code == 0 and "repair: rebuilt the multi-pack index" in r.out, r
    assert midx.read_bytes() == good
    clean(udr, env=env)
    for h, data in hs.items():
        assert udr.ok("get", h).stdout == data


def test_damaged_checkpoint_rewritten(udr, tmp_path):
    hs = [udr.put(b"cp %d" % i) for i in range(2)]
    for i in range(66):
        udr.ok("commit", "t%d" % (i % 2), "--next", hs[i % 2])
    cp = udr.root / "catalog" / "state" / ("%020d.json" % 64)
    good = cp.read_bytes()
    b = bytearray(good)
    b[20] ^= 4
    cp.write_bytes(bytes(b))
    r = repair(udr)
    assert r.code == 0, r
    assert any(x.startswith("found: ") and "checkpoint" in x for x in r.out.splitlines()), r.out
    assert "repair: checking again" in r.out, r.out
    assert "0 problems remaining" in r.out.splitlines()[-1], r.out
    assert cp.read_bytes() == good
    clean(udr)
    assert udr.ok("versions", "t0").out.split() == [str(i) for i in range(1, 34)]


def test_garbage_query_cache_file_removed(udr, tmp_path):
    if udr("sql", "SELECT 1").code != 0:
        pytest.skip("needs the query module")
    live = udr.put(b"live " * 100)
    udr.ok("commit", "t", "--next", live)
    other = udr.put(b"other " * 100)
    udr.ok("commit", "u", "--next", other)
    cache = udr.root / "cache" / "query"
    cache.mkdir(parents=True, exist_ok=True)
    bad = cache / (live + ".parquet")
    bad.write_bytes(b"PAR1 garbage, not the content")
    good = cache / (other + ".parquet")
    good.write_bytes(b"other " * 100)  # hashes to its name: kept
    r = repair(udr)
    assert r.code == 0, r
    assert "repair: removed 1 query cache file failing verification" in r.out, r.out
    assert not bad.exists() and good.exists()
    clean(udr)


# ---- what is not repaired -------------------------------------------------------------------

def test_damaged_chunk_not_repaired_versions_named(udr, tmp_path):
    rng = random.Random(3)
    a = rng.randbytes(200_000)
    commit(udr, tmp_path, "t", a)
    commit(udr, tmp_path, "v", a)  # the same content: one chunk
    w = rng.randbytes(200_000)
    commit(udr, tmp_path, "w", w)
    h = chunks(udr, "t", 1)[0]
    udr.damage(h, "flip")
    before = tree(udr.root / "chunks")
    log = tree(udr.root / "catalog" / "log")
    r = repair(udr)
    assert r.code == 4, r
    lines = r.out.splitlines()
    unrec = sorted(x for x in lines if x.startswith("unrecoverable "))
    assert unrec == ["unrecoverable t@1 (branch main, commit 1): chunk %s damaged" % h,
                     "unrecoverable v@1 (branch main, commit 2): chunk %s damaged" % h], r.out
    assert "problems remaining" in lines[-1] and " 0 problems" not in lines[-1], r.out
    # found by the first check, and still there after it: the same lines
    found = [x[len("found: "):] for x in lines if x.startswith("found: ")]
    i = lines.index("repair: checking again")
    remaining = [x for x in lines[i + 1:] if not x.startswith(("unrecoverable ", "fsck:", "note:"))]
    assert found and found == remaining, r.out
    # nothing invented: the chunk store and the log are as they were
    assert tree(udr.root / "chunks") == before
    assert tree(udr.root / "catalog" / "log") == log
    rj = repair(udr, "--json")
    assert rj.code == 4, rj
    j = json.loads(rj.out)
    got = sorted((u["table"], u["version"], u["branch"], u["chunks"], u["reason"]) for u in j["unrecoverable"])
    assert got == [("t", 1, "main", [h], "damaged"), ("v", 1, "main", [h], "damaged")], j
    assert j["exit"] == 4 and j["problem_count"] == len(j["problems"]) > 0
    assert tree(udr.root / "chunks") == before
    # w still reads back
    assert udr.ok("get", chunks(udr, "w", 1)[0]).stdout == w
    assert udr("get", h).code != 0


def test_missing_chunk_named_missing(tmp_path):
    u = Udr(tmp_path / "s")
    u.ok("init", "--format", "2")
    base = rnd(300_000, 1)
    commit(u, tmp_path, "t", base)
    commit(u, tmp_path, "u", rnd(5000, 2))
    h = chunks(u, "u", 1)[0]
    for f in (u.root / "chunks").rglob(h + "*"):
        f.unlink()
    r = repair(u, "--json")
    assert r.code == 4, r
    j = json.loads(r.out)
    assert [(x["table"], x["version"], x["chunks"], x["reason"]) for x in j["unrecoverable"]] == \
        [("u", 1, [h], "missing")], j
    r = repair(u)
    assert r.code == 4
    assert "unrecoverable u@1 (branch main, commit 2): chunk %s missing" % h in r.out.splitlines(), r.out
    assert "t@1" not in r.out


@needs_faults
def test_repair_refused_while_gc_runs(udr, tmp_path):
    build(udr, tmp_path)
    (udr.root / "chunks" / "tmp").mkdir(exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = udr.root / "chunks" / "tmp" / ("%d-00000000deadbeef.tmp" % dead.pid)
    leftover.write_bytes(b"x")
    pause = tmp_path / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s"],
                         env=base_env({"UDR_PAUSE": "gc-locked:%s" % pause}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t = time.monotonic() + 60
        while not (pause / "gc-locked.reached").exists():
            assert p.poll() is None and time.monotonic() < t
            time.sleep(0.01)
        assert leftover.exists()
        r = repair(udr)
        assert r.code == 5, r
        assert "fsck --repair does not run while gc does" in r.stderr and ("pid %d" % p.pid) in r.stderr, r
        assert r.out == "", r
        assert leftover.exists()
        # --json: the refusal as a JSON document (test_fsck_review.py)
        r = repair(udr, "--json")
        assert r.code == 5, r
        j = json.loads(r.out)
        assert j["exit"] == 5 and "does not run while gc does" in j["error"], j
        assert leftover.exists()
        # --dry-run says the same refusal, exit 5
        r = repair(udr, "--dry-run")
        assert r.code == 5 and "would: refuse: a gc runs (pid %d)" % p.pid in r.out, r
        r = repair(udr, "--dry-run", "--json")
        assert r.code == 5 and json.loads(r.out)["exit"] == 5, r
        assert leftover.exists()
    finally:
        (pause / "gc-locked.go").touch()
        p.communicate(timeout=60)
    assert p.returncode == 0


# ---- --json -------------------------------------------------------------------------------

def test_json_matches_human_counts(udr, tmp_path):
    rng = random.Random(4)
    a = rng.randbytes(200_000)
    commit(udr, tmp_path, "t", a)
    commit(udr, tmp_path, "w", rng.randbytes(100_000))
    h = chunks(udr, "t", 1)[0]
    udr.damage(h, "flip")
    hr = udr("fsck")
    jr = udr("fsck", "--json")
    assert hr.code == jr.code == 4
    j = json.loads(jr.out)
    last = hr.out.splitlines()[-1]
    assert last == ("fsck: %d object%s (%d bytes on disk) and %d catalog file%s checked, %d problem%s, %d temp "
                    "file%s removed" % (j["objects"], "" if j["objects"] == 1 else "s", j["bytes"],
                                       j["catalog_files"], "" if j["catalog_files"] == 1 else "s",
                                       j["problem_count"], "" if j["problem_count"] == 1 else "s",
                                       j["temp_removed"], "" if j["temp_removed"] == 1 else "s")), (last, j)
    human = [x for x in hr.out.splitlines() if not x.startswith("fsck:") and not x.startswith("note:")]
    assert len(human) == len(j["problems"]) == j["problem_count"]
    kinds = sorted("%s %s %s" % (p["kind"], p["what"], p["object"]) for p in j["problems"])
    assert kinds == sorted(x.split(":")[0] for x in human)
    assert [(u["table"], u["version"], u["reason"]) for u in j["unrecoverable"]] == [("t", 1, "damaged")]
    # a clean store: exit 0, empty lists
    u = Udr(tmp_path / "clean")
    u.ok("init")
    commit(u, tmp_path, "t", b"abc" * 100)
    j = json.loads(u.ok("fsck", "--json").out)
    assert j["problems"] == [] and j["unrecoverable"] == [] and j["exit"] == 0 and j["problem_count"] == 0


def test_json_with_repair_from_is_a_usage_error(udr, tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"x")
    before = tree(udr.root)
    r = udr("fsck", "--json", "--repair-from", f)
    assert r.code == 2, r
    assert tree(udr.root) == before


def test_repair_beside_writers_loses_nothing(udr, tmp_path):
    """--repair takes the locks writers take: commits running meanwhile all
    land, every committed version reads back, and no commit's file is taken
    for a leftover."""
    script = tmp_path / "w.sh"
    script.write_text("set -e\nfor i in $(seq 1 25); do\n"
                      "  head -c 30000 /dev/urandom > \"$1/in$i\"\n"
                      "  \"%s\" --store \"%s\" commit t --next --file \"$1/in$i\" > /dev/null\n"
                      "done\n" % (UDR_BIN, udr.root))
    (tmp_path / "w").mkdir()
    w = subprocess.Popen(["sh", str(script), str(tmp_path / "w")], env=base_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    runs = 0
    try:
        while w.poll() is None:
            r = repair(udr)
            assert r.code == 0, r
            runs += 1
    finally:
        out, err = w.communicate(timeout=120)
    assert w.returncode == 0, err
    assert runs >= 3, runs
    clean(udr)
    vs = udr.ok("versions", "t").out.split()
    assert vs == [str(i) for i in range(1, 26)], vs
    for i in range(1, 26):
        data = (tmp_path / "w" / ("in%d" % i)).read_bytes()
        assert b"".join(udr.ok("get", h).stdout for h in chunks(udr, "t", i)) == data, i
