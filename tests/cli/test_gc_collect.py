"""`udr gc`: collection (docs/GC.md 3, 5, 7.1).  What no version needs goes
(puts never committed once older than the grace, duplicates, dead pack
entries), everything committed reads back byte for byte, fsck stays clean,
a kill or an I/O error at any step leaves a consistent store that the next
run finishes, a second run is refused while one runs, bad options write
nothing."""
import json
import os
import random
import re
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, csv, next_fault_step, table_rows, tree_snapshot

needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")


def gc(udr, *args, env=None):
    r = udr("gc", "--json", *args, env=env)
    return r, (json.loads(r.out) if r.code == 0 else None)


def stats(udr):
    return json.loads(udr.ok("stats", "--json").out)


def exists(udr, h):
    return udr("exists", h).code == 0


def rnd(n, seed):
    return random.Random(seed).randbytes(n)


def build_store(udr, tmp_path):
    """Committed data of every kind plus uncommitted puts; returns
    (committed: hash -> bytes, uncommitted hashes, table rows)."""
    committed = {}
    # a commit --file series: packed pieces, then deltas against them
    base = bytearray(rnd(1_500_000, 1))
    for i in range(3):
        base[200_000 * i + 7: 200_000 * i + 17] = b"v%09d" % i
        f = tmp_path / ("series%d" % i)
        f.write_bytes(bytes(base))
        udr.ok("commit", "series", "--next", "--file", f)
        h = json.loads(udr.ok("show", "series").out)["chunks"][0]
        committed[h] = bytes(base)
    # small contents committed by hash
    for i in range(4):
        data = b"small %d " % i * 50
        h = udr.put(data)
        udr.ok("commit", "small", "--next", h)
        committed[h] = data
    # never committed: big and small, sharing nothing with the above
    uncommitted = [udr.put(rnd(700_000, 100 + i)) for i in range(3)]
    uncommitted += [udr.put(b"junk %d " % i * 40) for i in range(3)]
    # one uncommitted content sharing most pieces with a committed one
    near = bytearray(base)
    near[1_000_000:1_000_010] = b"NEARCOPY!!"
    uncommitted.append(udr.put(bytes(near)))
    rows = None
    if query_built(udr):
        udr.ok("import", "tab", csv(tmp_path, "t.csv", [(i, "a%d" % i, i * 2) for i in range(50)]))
        udr.ok("sql", "UPDATE tab SET a = 'changed' WHERE id < 5", "--no-compact")
        rows = table_rows(udr, "tab")
    return committed, uncommitted, rows


_query = {}


def query_built(udr):
    if "q" not in _query:
        _query["q"] = udr("sql", "SELECT 1").code == 0
    return _query["q"]


def check_all(udr, committed, rows):
    for h, data in committed.items():
        r = udr("get", h)
        assert r.code == 0, r
        assert r.stdout == data, h
    if rows is not None:
        assert table_rows(udr, "tab") == rows
    r = udr("fsck")
    assert r.code == 0, r


def test_uncommitted_removed_at_grace_0_kept_by_default(udr, tmp_path):
    committed, uncommitted, rows = build_store(udr, tmp_path)
    before = stats(udr)
    r, rep = gc(udr)
    assert r.code == 0, r
    assert rep["removed"]["objects"] == 0 and rep["mark"]["young"] > 0
    for h in uncommitted:
        assert exists(udr, h)
    assert stats(udr)["stored_bytes"] == before["stored_bytes"]
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["objects"] > 0 and rep["mark"]["young"] == 0
    for h in uncommitted:
        assert not exists(udr, h), h
    check_all(udr, committed, rows)
    after = stats(udr)
    assert after["stored_bytes"] < before["stored_bytes"] - 2_000_000, (before, after)
    assert after["objects"] < before["objects"]
    # stats counts what fsck counts, after the sweep too
    m = re.search(r"fsck: (\d+) objects? \((\d+) bytes on disk\)", udr.ok("fsck").out)
    assert (int(m.group(1)), int(m.group(2))) == (after["objects"], after["stored_bytes"]), (m.group(0), after)
    # a second run finds nothing more
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["objects"] == 0 and rep["removed"]["copies"] == 0, rep
    assert stats(udr)["stored_bytes"] == after["stored_bytes"]
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["phase"] == "idle" and st["running"] is None and st["last"]["removed"]["objects"] > 0


def test_text_report_and_quiet(udr):
    udr.put(b"uncommitted " * 100)
    r = udr.ok("gc", "--grace", "0s")
    assert "removed 1 dead objects" in r.out, r.out
    assert udr.ok("gc", "-q").out == ""
    st = udr.ok("gc", "--status").out
    assert "phase idle, no gc running" in st and "last run:" in st and "removed 1 dead objects" in st, st


def test_dropped_tables_versions_stay(udr, tmp_path):
    if not query_built(udr):
        pytest.skip("needs the query module")
    f = tmp_path / "t.csv"
    f.write_text("id,v\n1,a\n2,b\n")
    udr.ok("import", "t", f)
    udr.ok("sql", "UPDATE t SET v = 'B' WHERE id = 2", "--no-compact")
    vers = json.loads(udr.ok("versions", "t", "--json").out)
    chunks = set()
    for v in vers:
        chunks.update(json.loads(udr.ok("show", "t", str(v if isinstance(v, int) else v["version"])).out)["chunks"])
    udr.ok("sql", "DROP TABLE t")
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert chunks and all(exists(udr, h) for h in chunks)
    assert udr("fsck").code == 0


def test_dry_run_changes_nothing(udr, tmp_path):
    committed, uncommitted, rows = build_store(udr, tmp_path)

    def snap():
        s = tree_snapshot(udr.root)
        # the run's locks (empty, or the pid) are the only files a dry run may touch
        return {k: v for k, v in s.items() if not k.startswith("chunks/gc")}
    before = snap()
    r, rep = gc(udr, "--grace", "0s", "--dry-run")
    assert r.code == 0, r
    assert rep["dry_run"] is True and rep["removed"]["objects"] > 0 and rep["removed"]["bytes"] > 0
    assert snap() == before
    r2, rep2 = gc(udr, "--grace", "0s")
    assert rep2["removed"]["objects"] == rep["removed"]["objects"]
    assert rep2["removed"]["packs_dropped"] == rep["removed"]["packs_dropped"]


@pytest.mark.parametrize("args", [
    ["--grace", "5"], ["--grace", "-1s"], ["--grace", "1m"], ["--grace", ""], ["--threshold", "101"],
    ["--max-unused", "x"], ["--max-repack", "0"], ["--bogus"], ["extra"], ["--status", "--dry-run"],
])
def test_bad_options_exit_2_nothing_written(udr, args):
    udr.put(b"uncommitted " * 100)
    before = tree_snapshot(udr.root)
    r = udr("gc", "--grace", "0s", *args) if args[0] != "--grace" else udr("gc", *args)
    assert r.code == 2, r
    assert tree_snapshot(udr.root) == before


@needs_faults
def test_second_gc_while_one_runs_is_refused(udr):
    h = udr.put(b"uncommitted " * 100)
    pause = udr.root.parent / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s"],
                         env=base_env({"UDR_PAUSE": "gc-locked:%s" % pause}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t = time.monotonic() + 60
        while not (pause / "gc-locked.reached").exists():
            assert p.poll() is None and time.monotonic() < t
            time.sleep(0.01)
        r = udr("gc", "--grace", "0s")
        assert r.code == 5, r
        assert ("pid %d" % p.pid) in r.stderr, r.stderr
        st = json.loads(udr.ok("gc", "--status", "--json").out)
        assert st["running"] == p.pid
        assert exists(udr, h)
    finally:
        (pause / "gc-locked.go").touch()
        p.communicate(timeout=60)
    assert p.returncode == 0
    assert not exists(udr, h)


def test_missing_live_object_is_corrupt_and_nothing_removed(udr, tmp_path):
    data = rnd(100_000, 7)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    junk = udr.put(b"junk " * 100)
    # the committed content's only copy goes: its pack entry's index as well
    where, path, *_ = udr.locate(h)[0]
    files = [path] + ([path.with_suffix(".idx")] if where == "pack" else [])
    for f in files:
        f.unlink()
    before = tree_snapshot(udr.root)
    r = udr("gc", "--grace", "0s")
    assert r.code == 4, r
    assert h in r.stderr and "t@1" in r.stderr, r.stderr
    assert exists(udr, junk)
    after = tree_snapshot(udr.root)
    assert {k: v for k, v in after.items() if not k.startswith("chunks/gc")} == \
        {k: v for k, v in before.items() if not k.startswith("chunks/gc")}


def mixed_packs(udr, n=72):
    """Puts of many sizes, a third never committed, merged by the
    writers' repacks into a few packs of live entries among dead ones (dead
    runs shorter and longer than the rewrite's read skips; entries over 64
    KiB; compressible ones, stored shorter than their size; two contents
    of several pieces and a manifest).  The live ones committed as t@1.
    Returns (live: hash -> bytes, dead hashes)."""
    live, dead = {}, []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            data = rnd(150 + 37 * i, 300 + i)                 # a few hundred bytes
        elif kind == 1:
            data = (b"row %d, " % i) * (400 + 90 * i)         # compressible (zst)
        elif kind == 2:
            data = rnd(3_000 + 111 * i, 300 + i)                # a dead one: skipped over
        elif kind == 3:
            data = rnd(24_000 + 500 * i, 300 + i)             # a dead one: past the skip
        elif kind == 4:
            data = rnd(70_000 + 1_000 * i, 300 + i)           # over 64 KiB
        else:
            data = rnd(800 + 13 * i, 300 + i)
        h = udr.put(data)
        if kind in (2, 3):
            dead.append(h)
        else:
            live[h] = data
    for k in range(2):  # several pieces and a manifest: one live, one dead
        data = rnd(1_300_000, 900 + k)
        h = udr.put(data)
        (live.__setitem__(h, data) if k == 0 else dead.append(h))
    udr.ok("commit", "t", "--next", *live)
    return live, dead


def entry_header(path, payload_off):
    """kind, payload length, decoded size and hash of the pack entry whose
    payload starts at payload_off."""
    with open(path, "rb") as f:
        f.seek(payload_off - 48)
        hdr = f.read(48)
    return hdr[0], int.from_bytes(hdr[4:8], "little"), int.from_bytes(hdr[8:16], "little"), hdr[16:].hex()


def test_rewrite_copies_every_live_entry_of_mixed_packs_once(udr, tmp_path):
    """5.2 S1: the rewrite copies the live entries of several mixed packs
    (read in pack order, many to a read): none dropped, none copied twice,
    each with its header (kind, length, decoded size, hash) as before;
    every live content reads back byte for byte, the dead are gone, fsck
    is clean."""
    live, dead = mixed_packs(udr)
    packs = {c[1] for h in live for c in udr.locate(h)}
    mixed = packs & {c[1] for h in dead for c in udr.locate(h)}
    assert len(mixed) >= 2, packs
    pieces = {}  # the pieces and manifests of the live contents, and their headers
    for h in live:
        for c in udr.locate(h):
            pieces[h] = entry_header(c[1], c[2])
    for h, data in live.items():
        if len(data) < 1_000_000:  # one object: its decoded size is the content's
            assert pieces[h][2] == len(data) and pieces[h][3] == h, (h, pieces[h])
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["packs_rewritten"] >= 2, rep
    assert not any(p.exists() for p in mixed)
    for h, data in live.items():
        copies = udr.locate(h)
        assert len(copies) == 1, (h, copies)  # copied once
        (where, path, off, length, kind), = copies
        assert where == "pack" and path not in packs
        assert entry_header(path, off) == pieces[h], h
        assert udr.ok("get", h).stdout == data
    for h in dead:
        assert not exists(udr, h)
    r = udr("fsck")
    assert r.code == 0, r
    r, rep = gc(udr, "--grace", "0s")  # nothing left to do
    assert r.code == 0 and rep["removed"]["objects"] == 0, r


@pytest.mark.parametrize("where", ["payload", "decoded_size", "crc"])
def test_damaged_live_entry_of_a_mixed_pack_fails_the_rewrite(udr, tmp_path, where):
    """A live entry of a pack the rewrite copies, damaged (its payload, the
    decoded size in its header, its CRC) among good neighbours read with
    it: gc exits 4 naming that chunk and its CRC, deletes nothing, every
    other content reads back; repaired, the next run completes."""
    live, dead = mixed_packs(udr, 36)
    victim = [h for h, d in live.items() if 150 <= len(d) < 10_000][3]
    (_, path, off, length, _), = udr.locate(victim)
    assert any(c[1] == path for h in dead for c in udr.locate(h))  # a mixed pack
    pos = {"payload": off + length // 2, "decoded_size": off - 48 + 8, "crc": off + length}[where]
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x01]))
    def files():
        return {q: q.stat().st_size for q in (udr.root / "chunks").rglob("*")
                if q.is_file() and "gc" not in q.parts and "tmp" not in q.parts}
    before = files()
    r = udr("gc", "--grace", "0s")
    assert r.code == 4, r
    assert victim in r.stderr and "CRC" in r.stderr, r.stderr
    assert not any(h in r.stderr for h in live if h != victim), r.stderr
    after = files()
    assert {q: n for q, n in after.items() if q in before} == before  # nothing removed or cut
    for h, data in live.items():
        if h != victim:
            assert udr.ok("get", h).stdout == data
    assert udr("get", victim).code == 4
    for h in dead:
        assert exists(udr, h)
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(b)
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    for h, data in live.items():
        assert udr.ok("get", h).stdout == data
    for h in dead:
        assert not exists(udr, h)
    assert udr("fsck").code == 0


def final_state(udr):
    s = stats(udr)
    return s["objects"], s["stored_bytes"]



@needs_faults
@pytest.mark.parametrize("op", ["unlink", "fsync", "rename", "link", "write", "open", "syncfs"])
@pytest.mark.parametrize("action", ["crash", "eio"])
def test_fault_at_every_step_then_final_gc_matches(udr, tmp_path, op, action):
    committed, uncommitted, rows = build_store(udr, tmp_path)
    # the reference: an uninterrupted run over a copy of the store
    import shutil
    ref = type(udr)(tmp_path / "ref")
    shutil.copytree(udr.root, ref.root, symlinks=True)
    r, rep = gc(ref, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["packs_dropped"] > 0 and rep["removed"]["loose"] + rep["removed"]["copies"] > 0
    want = final_state(ref)
    n, reached = 1, True
    while reached and n <= 400:
        work = type(udr)(tmp_path / ("w%d" % n))
        shutil.copytree(udr.root, work.root, symlinks=True)
        r = work("gc", "--grace", "0s", env={"UDR_FAULT": "%s:%d:%s" % (op, n, action)})
        reached = r.code != 0
        if action == "crash" and reached:
            assert r.code == -9, r
        elif reached:
            assert r.code in (4, 5), r
        check_all(work, committed, rows)
        st = json.loads(work.ok("gc", "--status", "--json").out)
        assert st["phase"] != "aborted", st
        left = st["phase"] in ("planned", "rewritten", "deleting")
        r2, rep2 = gc(work, "--grace", "0s")
        assert r2.code == 0, (n, r2)
        assert rep2["resumed"] == left, (n, st, rep2)
        st = json.loads(work.ok("gc", "--status", "--json").out)
        assert st["phase"] == "idle" and st["plan"] is None, st
        assert not list((work.root / "chunks" / "gc").glob("plan-*")), n
        check_all(work, committed, rows)
        got = final_state(work)
        assert got[0] == want[0], (op, n, got, want)
        assert abs(got[1] - want[1]) <= want[1] // 100 + 4096, (op, n, got, want)
        for h in uncommitted:
            assert not exists(work, h)
        shutil.rmtree(work.root)
        n = next_fault_step(n)
    assert not reached, "more than 400 %s calls" % op


def check_expiring(udr, committed, latest, rows, done):
    """After a gc --keep-last 1 (done) or one cut short: every table's
    latest version reads back; an older one reads back or says expired
    (exit 6), and once done it says expired; fsck is clean."""
    for t, hs in latest.items():
        for h in hs:
            r = udr("get", h)
            assert r.code == 0 and r.stdout == committed[h], (t, h, r)
        n = json.loads(udr.ok("show", t).out)["version"]
        for v in range(1, n):
            r = udr("show", t, str(v))
            assert r.code in ((6,) if done else (0, 6)), (t, v, r)
            for h in json.loads(r.out)["chunks"] if r.code == 0 else []:
                g = udr("get", h)
                assert g.code == 0 and g.stdout == committed[h], (t, v, h, g)
    if rows is not None:
        assert table_rows(udr, "tab") == rows
    r = udr("fsck")
    assert r.code == 0, r


@needs_faults
@pytest.mark.parametrize("op", ["fsync", "rename", "link", "unlink", "write"])
def test_crash_at_every_step_of_an_expiring_gc(udr, tmp_path, op):
    """`gc --keep-last 1` (expire record, gc record, sweep of what only the
    expired versions needed) killed at each step of one kind: the latest
    versions read back, older ones read back or say expired, fsck is clean;
    then a second run reaches the uninterrupted run's result."""
    import shutil
    committed, uncommitted, rows = build_store(udr, tmp_path)
    latest = {t: json.loads(udr.ok("show", t).out)["chunks"] for t in ("series", "small")}
    ref = type(udr)(tmp_path / "ref")
    shutil.copytree(udr.root, ref.root, symlinks=True)
    r, rep = gc(ref, "--grace", "0s", "--keep-last", "1")
    assert r.code == 0, r
    assert rep["retention"]["expired"]["versions"] >= 5 and rep["removed"]["objects"] > 0, rep
    check_expiring(ref, committed, latest, rows, True)
    want = final_state(ref)
    n, reached = 1, True
    while reached and n <= 400:
        work = type(udr)(tmp_path / ("w%d" % n))
        shutil.copytree(udr.root, work.root, symlinks=True)
        r = work("gc", "--grace", "0s", "--keep-last", "1", env={"UDR_FAULT": "%s:%d:crash" % (op, n)})
        reached = r.code != 0
        if reached:
            assert r.code == -9, r
        check_expiring(work, committed, latest, rows, not reached)
        r2, rep2 = gc(work, "--grace", "0s", "--keep-last", "1")
        assert r2.code == 0, (n, r2)
        check_expiring(work, committed, latest, rows, True)
        got = final_state(work)
        assert got[0] == want[0], (op, n, got, want)
        assert abs(got[1] - want[1]) <= want[1] // 100 + 4096, (op, n, got, want)
        shutil.rmtree(work.root)
        n = next_fault_step(n)
    assert not reached, "more than 400 %s calls" % op


def kill_phase(udr):
    """Where a run killed by SIGKILL was, from what it left in a store no
    run had collected before: "start" (nothing written yet: starting, or
    planning its expiry), "expiring" (expired-set checkpoints written: its
    expire record is being linked or is), "marking" (gc/lock taken:
    marking, unchaining, planning; STATE names nothing yet), the phase STATE
    names ("planned": doomed set and plan published, the rewrite under
    way; "rewritten"; "deleting"), "finishing" (STATE idle at a new epoch,
    its plan file not removed yet) or "ending" (its work done: temp files,
    the query cache and the exit were left)."""
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["phase"] != "aborted" and st["running"] is None, st
    gcdir = udr.root / "chunks" / "gc"
    if st["phase"] != "idle":
        return st["phase"]
    if st["epoch"] > 0:
        return "finishing" if list(gcdir.glob("plan-*")) else "ending"
    if (gcdir / "lock").exists():
        return "marking"
    return "expiring" if (udr.root / "catalog" / "expired").exists() else "start"


def read_table(udr, table):
    """The bytes of a table's latest version (show, then get each chunk)."""
    return b"".join(udr.ok("get", h).stdout for h in json.loads(udr.ok("show", table).out)["chunks"])


@needs_faults
def test_kill_at_random_moments(udr, tmp_path):
    """kill -9 of `udr gc` at random moments of its run, then the store is
    consistent and a final run reaches an uninterrupted run's result.  The
    rounds go through three kinds: a plain run; `--keep-last 1` (the expire
    record, the gc record, the sweep of expired data); and that with a
    writer committing an expiring version's content meanwhile.  A run is
    killed at a random delay from its start or, every other round, from
    the moment it holds every lock (UDR_PAUSE gc-locked: surely under
    way), within the time an uninterrupted run took to get through its
    collection.  A round counts only if the run was still going when
    SIGKILL was sent (exit -9); one that had finished first is repeated
    with a shorter delay.  What each kill interrupted is read from the
    store (kill_phase) and counted: at least half the rounds must have
    caught the run with work left on disk, and a long run (`make torture`)
    every phase."""
    import collections
    import datetime
    import shutil
    committed, uncommitted, rows = build_store(udr, tmp_path)
    latest = {t: json.loads(udr.ok("show", t).out)["chunks"] for t in ("series", "small")}
    reused = tmp_path / "series0"  # series@1's content, which --keep-last 1 expires
    assert reused.read_bytes() in committed.values()
    kinds = {"plain": (), "keep": ("--keep-last", "1"), "writer": ("--keep-last", "1")}
    want, until, collecting = {}, {}, {}
    for kind in ("plain", "keep"):
        ref = type(udr)(tmp_path / ("ref-" + kind))
        shutil.copytree(udr.root, ref.root, symlinks=True)
        t0 = time.time()
        r, rep = gc(ref, "--grace", "0s", *kinds[kind])
        assert r.code == 0, r
        # when its collection (after the expiry) started, and how long it took
        started = datetime.datetime.strptime(rep["started"], "%Y-%m-%dT%H:%M:%S.%fZ")
        started = started.replace(tzinfo=datetime.timezone.utc).timestamp()
        collecting[kind] = rep["seconds"]
        until[kind] = max(0.0, started - t0) + rep["seconds"]
        want[kind] = final_state(ref)
    # the writer's commit then a run: the state it ends in whichever came first
    ref.ok("commit", "w", "--next", "--file", reused)
    assert gc(ref, "--grace", "0s", *kinds["writer"])[0].code == 0
    want["writer"], until["writer"], collecting["writer"] = final_state(ref), until["keep"], collecting["keep"]

    def check(work, kind, done):
        if kind == "plain":
            check_all(work, committed, rows)
        else:
            check_expiring(work, committed, latest, rows, done)
        if kind == "writer":
            assert read_table(work, "w") == reused.read_bytes()

    rng = random.Random(int(os.environ.get("UDR_TORTURE_SEED", "5")))
    rounds = int(os.environ.get("UDR_TORTURE_ROUNDS", "0")) or 6  # `make torture` runs 200
    # delays are drawn up to the reference's time times scale, which drops
    # when a run finished before its kill and grows back as kills land
    scale = 1.0
    phases, by_kind, late = collections.Counter(), collections.defaultdict(collections.Counter), 0
    for i in range(rounds):
        kind = ("plain", "keep", "writer")[i // 2 % 3]
        paused = i % 2 == 1
        window = collecting[kind] if paused else until[kind]
        for attempt in range(8):
            work = type(udr)(tmp_path / ("k%d" % i))
            shutil.copytree(udr.root, work.root, symlinks=True)
            pause = tmp_path / ("pause%d" % i)
            pause.mkdir()
            p = subprocess.Popen([UDR_BIN, "--store", str(work.root), "gc", "--grace", "0s", *kinds[kind]],
                                 env=base_env({"UDR_PAUSE": "gc-locked:%s" % pause} if paused else None),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if kind == "writer":
                w = subprocess.Popen([UDR_BIN, "--store", str(work.root), "commit", "w", "--next", "--file",
                                      str(reused)], env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if paused:
                t = time.monotonic() + 60
                while not (pause / "gc-locked.reached").exists():
                    assert p.poll() is None and time.monotonic() < t, p.communicate()
                    time.sleep(0.002)
                (pause / "gc-locked.go").touch()
            delay = rng.uniform(0.0, window * scale)
            time.sleep(delay)
            running = p.poll() is None
            p.kill()
            out, err = p.communicate(timeout=60)
            if kind == "writer":
                wout, werr = w.communicate(timeout=120)
                assert w.returncode == 0, werr
            shutil.rmtree(pause)
            if running and p.returncode == -9:
                scale = min(1.0, scale * 1.05)
                break
            # the run ended before the kill: it interrupted nothing
            assert p.returncode == 0, (p.returncode, err)
            late += 1
            scale = min(scale, delay / window) * 0.8
            shutil.rmtree(work.root)
        else:
            assert False, "round %d: %d runs all finished before their kill (scale %.3f)" % (i, attempt + 1, scale)
        phase = kill_phase(work)
        phases[phase] += 1
        by_kind[kind + (" from gc-locked" if paused else "")][phase] += 1
        check(work, kind, False)
        r, rep = gc(work, "--grace", "0s", *kinds[kind])
        assert r.code == 0, (i, phase, r)
        assert rep["resumed"] == (phase in ("planned", "rewritten", "deleting")), (i, phase, rep)
        check(work, kind, True)
        got = final_state(work)
        assert got[0] == want[kind][0] and abs(got[1] - want[kind][1]) <= want[kind][1] // 100 + 4096, \
            (i, kind, phase, got, want[kind])
        shutil.rmtree(work.root)
    print("kills by phase: %s (%s); %d runs finished before their kill" %
          (dict(phases), "; ".join("%s %s" % (k, dict(c)) for k, c in by_kind.items()), late))
    assert phases["start"] + phases["ending"] <= rounds // 2, (phases, late)
    if rounds >= 100:
        assert all(phases[k] > 0 for k in ("expiring", "marking", "planned", "rewritten", "deleting")), phases


@pytest.mark.parametrize("fmt", ["1", "2"])
def test_loose_stores(tmp_path, fmt):
    """Format 1 and 2 stores (one file per object): dead loose objects go by
    path, fan-out directories stay, committed contents read back."""
    from conftest import Udr
    udr = Udr(tmp_path / ("s" + fmt))
    udr.ok("init", "--format", fmt)
    committed = {}
    base = rnd(1_200_000, 21)
    f = tmp_path / "a"
    f.write_bytes(base)
    udr.ok("commit", "t", "--next", "--file", f)
    committed[json.loads(udr.ok("show", "t").out)["chunks"][0]] = base
    changed = bytearray(base)
    changed[600_000:600_010] = b"0123456789"
    f.write_bytes(bytes(changed))
    udr.ok("commit", "t", "--next", "--file", f)
    committed[json.loads(udr.ok("show", "t").out)["chunks"][0]] = bytes(changed)
    junk = [udr.put(rnd(500_000, 30 + i)) for i in range(2)] + [udr.put(b"j" * 100)]
    dirs = sorted(p for p in (udr.root / "chunks").rglob("*") if p.is_dir())
    before = stats(udr)
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["loose"] > 0 and rep["removed"]["packs_dropped"] == 0
    for h in junk:
        assert not exists(udr, h)
    check_all(udr, committed, None)
    assert stats(udr)["stored_bytes"] < before["stored_bytes"]
    assert sorted(p for p in (udr.root / "chunks").rglob("*") if p.is_dir()) == dirs
    r, rep = gc(udr, "--grace", "0s")
    assert rep["removed"]["objects"] == 0


def test_temp_files_of_dead_writers_go(udr):
    """S7: a run removes temp files whose writer is dead (pid gone, no lock),
    in chunks/tmp and catalog/tmp, and counts them; a live writer's stay."""
    udr.put(b"junk " * 100)
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    made = []
    for d in (udr.root / "chunks" / "tmp", udr.root / "catalog" / "tmp"):
        d.mkdir(exist_ok=True)
        p = d / ("%d-gc-test" % dead)
        p.write_bytes(b"x")
        made.append(p)
    mine = udr.root / "chunks" / "tmp" / ("%d-live" % os.getpid())
    mine.write_bytes(b"y")
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["temp"]["files"] == 2, rep
    assert not any(p.exists() for p in made)
    assert mine.exists()
    mine.unlink()


def test_query_cache_parts_of_gone_content_go(udr):
    """5.4: after a sweep, cached parts whose content the store no longer
    has are removed; parts of stored content stay; a dry run removes none."""
    if not query_built(udr):
        pytest.skip("needs the query module")
    live = udr.put(b"live " * 100)
    udr.ok("commit", "t", "--next", live)
    dead = udr.put(b"dead " * 100)
    cache = udr.root / "cache" / "query"
    cache.mkdir(parents=True, exist_ok=True)
    for h in (live, dead, "ab" * 32):
        (cache / (h + ".parquet")).write_bytes(b"PAR1 not really")
    r, rep = gc(udr, "--grace", "0s", "--dry-run")
    assert rep["cache"]["files"] == 0 and (cache / (dead + ".parquet")).exists()
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["cache"] == {"files": 2, "bytes": 30, "skipped": False}, rep["cache"]
    assert (cache / (live + ".parquet")).exists()
    assert not (cache / (dead + ".parquet")).exists() and not (cache / ("ab" * 32 + ".parquet")).exists()


def gc_at_guard(udr, tmp_path):
    """`udr gc --grace 0s` held at its guard (UDR_PAUSE gc-guard): the
    process and the pause directory (touch gc-guard.go to let it on)."""
    pause = tmp_path / "pause"
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s"],
                         env=base_env({"UDR_PAUSE": "gc-guard:%s" % pause}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() + 60
    while not (pause / "gc-guard.reached").exists():
        assert p.poll() is None and time.monotonic() < t, p.communicate()
        time.sleep(0.01)
    return p, pause


@needs_faults
def test_guard_failure_aborts_nothing_deleted(udr, tmp_path):
    """5.3: a live copy lost between mark and the guard (its pack removed
    while the run is held before the guard): exit 4 naming the chunk, STATE
    aborted, nothing deleted; later runs refuse (exit 4) until STATE is
    reset."""
    data = rnd(300_000, 41)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    junk = udr.put(rnd(200_000, 42))
    p, pause = gc_at_guard(udr, tmp_path)
    copies = udr.locate(h)  # the old pack, and the rewrite's output if any
    assert copies and all(c[0] == "pack" for c in copies)
    for c in copies:
        c[1].unlink()
        c[1].with_suffix(".idx").unlink()
    def files():
        return {p for p in (udr.root / "chunks").rglob("*") if p.is_file() and "gc" not in p.parts}
    before = files()
    (pause / "gc-guard.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 4, (out, err)
    assert b"guard" in err and h.encode() in err, err
    assert before <= files()  # the rewrite's outputs may stay; nothing went
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["phase"] == "aborted"
    r = udr("gc", "--grace", "0s")
    assert r.code == 4 and "aborted" in r.stderr, r
    assert before <= files()
    # fsck finds the lost chunk: gc stays refused
    assert udr("fsck").code == 4
    assert udr("gc", "--grace", "0s").code == 4
    # the content comes back (put again): fsck is clean and resets the state
    assert udr.put(data) == h
    r = udr("fsck")
    assert r.code == 0 and "gc: the aborted run was reset" in r.out, r
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert udr.ok("get", h).stdout == data
    assert udr("fsck").code == 0


@needs_faults
def test_guard_checks_every_live_header_in_pack_order(udr, tmp_path):
    """The guard reads the headers of live entries in packs that stay in
    pack order, many to a read: one damaged after the mark (its hash) fails
    the run naming that chunk, exit 4, nothing deleted; the same store
    without the damage passes."""
    live = []
    for i in range(4):
        data = rnd(200_000, 80 + i)
        h = udr.put(data)
        udr.ok("commit", "t", "--next", h)
        live.append((h, data))
    junk = udr.put(rnd(60_000, 90))  # dead: its own small pack, dropped
    kept = {c[1] for h, _ in live for c in udr.locate(h)}
    assert all(c[0] == "pack" for h, _ in live for c in udr.locate(h))
    assert {c[1] for c in udr.locate(junk)}.isdisjoint(kept)  # the live packs stay as they are
    victim = live[2][0]
    p, pause = gc_at_guard(udr, tmp_path)
    (where, path, off, length, kind), = udr.locate(victim)
    assert where == "pack" and path in kept
    hash_byte = off - 48 + 16  # the entry header's hash, 16 bytes in
    with open(path, "r+b") as f:
        f.seek(hash_byte)
        b = f.read(1)
        f.seek(hash_byte)
        f.write(bytes([b[0] ^ 0xFF]))
    before = {q for q in (udr.root / "chunks").rglob("*") if q.is_file() and "gc" not in q.parts}
    (pause / "gc-guard.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 4, (out, err)
    assert b"guard" in err and victim.encode() in err, err
    assert not any(h.encode() in err for h, _ in live if h != victim), err
    assert before <= {q for q in (udr.root / "chunks").rglob("*") if q.is_file() and "gc" not in q.parts}
    # undamaged, the run passes its guard and reads every version back
    with open(path, "r+b") as f:
        f.seek(hash_byte)
        f.write(b)
    r = udr("fsck")
    assert r.code == 0, r
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert rep["removed"]["packs_dropped"] == 1 and rep["removed"]["packs_rewritten"] == 0, rep
    for h, data in live:
        assert udr.ok("get", h).stdout == data


def test_gc_racing_writers_never_loses_committed_data(udr, tmp_path):
    """Runs of `gc --grace 0s` while other processes commit files (put and
    commit): a commit may fail (its put was collected before it committed:
    "put now, commit later" needs the grace), but every commit that
    succeeded reads back byte for byte, and fsck is clean."""
    def writer(k):
        files = []
        for i in range(8):
            f = tmp_path / ("w%d-%d" % (k, i))
            f.write_bytes(rnd(150_000 + 1000 * i, 1000 * k + i))
            files.append(f)
        return subprocess.Popen(
            ["sh", "-c", "for f in \"$@\"; do if \"%s\" --store \"%s\" commit w%d --next --file \"$f\" >/dev/null 2>&1;"
             " then echo \"ok $f\"; else echo \"fail $f\"; fi; done" % (UDR_BIN, udr.root, k), "sh"]
            + [str(f) for f in files], env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [writer(k) for k in range(2)]
    runs = 0
    while any(p.poll() is None for p in procs) or runs < 3:
        r = udr("gc", "--grace", "0s", "-q")
        assert r.code == 0, r
        runs += 1
    ok = []
    for p in procs:
        out, _ = p.communicate()
        ok += [line.split()[1] for line in out.decode().splitlines() if line.startswith("ok ")]
    assert ok
    print("committed %d of 16, %d gc runs" % (len(ok), runs))
    for k in range(2):
        vers = json.loads(udr.ok("versions", "w%d" % k, "--json").out) if udr("versions", "w%d" % k).code == 0 else []
        got = set()
        for v in vers:
            n = v if isinstance(v, int) else v["version"]
            h = json.loads(udr.ok("show", "w%d" % k, str(n)).out)["chunks"][0]
            got.add(udr.ok("get", h).stdout)
        want = {open(f, "rb").read() for f in ok if os.path.basename(f).startswith("w%d-" % k)}
        assert want == got
    assert udr("fsck").code == 0
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0 and udr("fsck").code == 0


def test_damaged_loose_duplicate_never_outlives_the_intact_copy(udr, tmp_path):
    """A committed content with an intact packed copy and a damaged loose
    raw copy (which readers skip): the kept copy must be the intact one,
    or gc deletes the only good bytes (R2 review: the loose raw copy always
    won, unchecked, and its pack was dropped)."""
    data = rnd(5000, 41)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    (where, _path, *_), = udr.locate(h)
    assert where == "pack"
    loose = udr.root / "chunks" / h[:2] / h[2:4] / h
    loose.parent.mkdir(parents=True, exist_ok=True)
    bad = bytearray(data)
    bad[100] ^= 1
    loose.write_bytes(bytes(bad))
    assert udr("get", h).stdout == data  # the damaged copy is skipped
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    r = udr("get", h)
    assert r.code == 0 and r.stdout == data, r
    assert [c[0] for c in udr.locate(h)] == ["pack"]
    assert udr("fsck").code == 0


def test_damaged_loose_zst_never_outlives_an_intact_loose_delta(tmp_path):
    """A format-2 piece stored as a loose delta (.d) with a damaged loose
    .zst duplicate: the .zst ranked before the delta and was kept unchecked
    (copy_intact checked loose raw files only), so gc deleted the only
    intact copy.  The .zst is decoded and hashed now, the delta kept."""
    from conftest import Udr
    u = Udr(tmp_path / "s2")
    u.ok("init", "--format", "2", "--chunk-min", "4K", "--chunk-avg", "16K", "--chunk-max", "64K")
    data = bytearray(rnd(200_000, 43))
    f = tmp_path / "in.bin"
    f.write_bytes(bytes(data))
    u.ok("commit", "t", "--next", "--file", f)
    data[50_000:50_010] = b"0123456789"
    f.write_bytes(bytes(data))
    u.ok("commit", "t", "--next", "--file", f)
    deltas = list((u.root / "chunks").rglob("*.d"))
    assert deltas, "no delta piece was stored"
    d = deltas[0]
    h = d.name[:-2]
    want = u.ok("get", h).stdout
    z = d.with_name(h + ".zst")
    z.write_bytes(b"\x28\xb5\x2f\xfd damaged, not a frame")
    assert sorted(c[4] for c in u.locate(h)) != [] and len(u.locate(h)) == 2, u.locate(h)
    assert u.ok("get", h).stdout == want        # readers skip the damaged copy
    r = u("gc", "--grace", "0s", "--json")
    assert r.code == 0, r
    r = u("get", h)
    assert r.code == 0 and r.stdout == want, r
    assert d.exists() and not z.exists()
    full = u("show", "t", "2")
    assert full.code == 0
    out = b"".join(u.ok("get", x).stdout for x in json.loads(full.out)["chunks"])
    assert out == bytes(data)
    assert u("fsck").code == 0


def test_damaged_manifest_duplicate_after_intact_one(udr, tmp_path):
    """A manifest with an intact packed copy and a damaged loose one (which
    fsck does not flag, readers skip): gc keeps the intact copy and removes
    the damaged one.  It used to stop with 'corrupt manifest' (exit 4)
    whenever the damaged copy came after the intact one, while fsck said
    the store was clean: gc could never run again."""
    data = rnd(1_500_000, 43)
    f = tmp_path / "big"
    f.write_bytes(data)
    udr.ok("commit", "t", "--next", "--file", f)
    h = json.loads(udr.ok("show", "t").out)["chunks"][0]
    (where, path, off, length, kind), = udr.locate(h)
    assert where == "pack" and kind == 3
    payload = bytearray(path.read_bytes()[off:off + length])
    assert payload[:4] == b"UDRM"
    payload[len(payload) // 2] ^= 1
    loose = udr.root / "chunks" / h[:2] / h[2:4] / (h + ".m")
    loose.parent.mkdir(parents=True, exist_ok=True)
    loose.write_bytes(bytes(payload))
    assert udr("get", h).stdout == data
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    assert not loose.exists()
    r = udr("get", h)
    assert r.code == 0 and r.stdout == data
    assert udr("fsck").code == 0


@pytest.mark.parametrize("fmt", ["2", "3"])
def test_stray_copy_in_the_wrong_directory_is_not_a_copy(tmp_path, fmt):
    """A file named like a loose object but in another fan-out directory
    (copied there by hand) is no copy readers find: gc must not keep it in
    place of the real one.  It used to count it as a second loose raw copy,
    keep it, plan the real file's removal, and abort in its guard (STATE
    aborted: gc refused until fsck)."""
    from conftest import Udr
    udr = Udr(tmp_path / ("s" + fmt))
    udr.ok("init", "--format", fmt)
    data = rnd(5000, 45)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    stray = udr.root / "chunks" / "00" / "00" / h
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(data)
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    r = udr("get", h)
    assert r.code == 0 and r.stdout == data
    assert json.loads(udr.ok("gc", "--status", "--json").out)["phase"] == "idle"


def test_damaged_pack_copy_never_kept_over_an_intact_one(udr, tmp_path):
    """Two packed copies of a committed content, the one in the newer pack
    (which wins the tie) damaged: gc keeps the intact copy."""
    from conftest import Udr
    data = rnd(5000, 47)
    f = tmp_path / "x"
    f.write_bytes(data)
    h = udr.put(data)
    udr.ok("commit", "t", "--next", h)
    other = Udr(tmp_path / "other")
    other.ok("init")
    assert other.put(data) == h
    time.sleep(0.05)
    for p in (other.root / "chunks" / "packs").iterdir():
        if p.suffix in (".pack", ".idx"):
            (udr.root / "chunks" / "packs" / p.name).write_bytes(p.read_bytes())
    copies = udr.locate(h)
    assert len(copies) == 2
    _, path, off, length, _ = max(copies, key=lambda c: c[1].stat().st_ctime_ns)
    b = bytearray(path.read_bytes())
    b[off + length // 2] ^= 1
    path.write_bytes(bytes(b))
    assert udr("get", h).stdout == data
    r, rep = gc(udr, "--grace", "0s")
    assert r.code == 0, r
    r = udr("get", h)
    assert r.code == 0 and r.stdout == data, r
    assert len(udr.locate(h)) == 1
    assert udr("fsck").code == 0
