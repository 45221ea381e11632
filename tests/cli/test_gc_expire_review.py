"""Review R4 of `udr gc --keep-*` (expire, gc record, sweep of committed
data; docs/GC.md 1.4, 3, 5): data shared between expired and kept
versions (same table, other tables, branches, tags, delta chains) stays;
every version either reads back byte for byte or says expired (exit 6);
nothing is recorded when the collection cannot run; fsck still reports a
missing chunk of a kept version."""
import fcntl
import json
import os
import random

from conftest import tree_snapshot


def last_seq(udr):
    return json.loads(udr.ok("log", "--json").out)[0]["seq"]


def commit_file(udr, tmp_path, table, data, branch=None):
    f = tmp_path / ("in-%s-%d" % (table, random.getrandbits(40)))
    f.write_bytes(data)
    args = ["commit", table, "--next", "--file", f]
    if branch:
        args += ["--branch", branch]
    return int(udr.ok(*args).out.split()[-1])


def read_version(udr, tmp_path, table, v):
    """(exit code, bytes or None) of table@v through show + get."""
    r = udr("show", table, str(v))
    if r.code != 0:
        return r.code, r
    out = b""
    for h in json.loads(r.out)["chunks"]:
        f = tmp_path / "got"
        g = udr("get", h, "-o", f)
        if g.code != 0:
            return g.code, g
        out += f.read_bytes()
    return 0, out


def check_all(udr, tmp_path, truth):
    """Every version: its exact bytes (exit 0) or expired (exit 6); the
    set of versions that answered 6."""
    expired = set()
    for (table, v), data in truth.items():
        code, got = read_version(udr, tmp_path, table, v)
        if code == 6:
            expired.add((table, v))
            continue
        assert code == 0, (table, v, got)
        assert got == data, "%s@%d: wrong bytes with exit 0" % (table, v)
    return expired


def build_shared(udr, tmp_path):
    """Versions that share data every way the store allows; the truth."""
    rng = random.Random(7)
    truth = {}
    data = bytearray(rng.randbytes(300_000))
    contents = []
    for i in range(6):
        data[rng.randrange(len(data)):][:32] = rng.randbytes(32)  # deltas on the previous one
        data += rng.randbytes(20_000)
        contents.append(bytes(data))
        truth[("t", commit_file(udr, tmp_path, "t", contents[-1]))] = contents[-1]
        if i == 2:
            udr.ok("branch", "create", "b")        # b keeps t@3
        if i == 3:
            udr.ok("tag", "create", "keep4")        # the tag keeps t@4
    # the same bytes as an expired version, in a kept one of another table
    truth[("u", commit_file(udr, tmp_path, "u", contents[0]))] = contents[0]
    # and as t's latest: t@7 == t@2 (a whole-content hit)
    truth[("t", commit_file(udr, tmp_path, "t", contents[1]))] = contents[1]
    # a delta on an expired version's data, on branch b
    d = bytearray(contents[1])
    d[100:116] = b"branch-b-edit!!!"
    truth[("t", commit_file(udr, tmp_path, "t", bytes(d), branch="b"))] = bytes(d)
    # v: many versions, each a delta on the previous, the last one kept
    base = bytearray(rng.randbytes(200_000))
    for i in range(5):
        base[rng.randrange(len(base)):][:8] = rng.randbytes(8)
        truth[("v", commit_file(udr, tmp_path, "v", bytes(base)))] = bytes(base)
    return truth


def test_shared_data_survives_keep_last_1(udr, tmp_path):
    truth = build_shared(udr, tmp_path)
    r = udr("gc", "--keep-last", "1", "--grace", "0s", "--json")
    assert r.code == 0, r
    rep = json.loads(r.out)
    assert rep["removed"]["objects"] > 0, rep
    expired = check_all(udr, tmp_path, truth)
    # kept whatever the rule: heads (main: t@7, u@1, v@5; b: t@8), the tag's t@4, b's fork t@3
    for k in (("t", 7), ("u", 1), ("v", 5), ("t", 8), ("t", 4), ("t", 3)):
        assert k not in expired, k
    assert ("t", 1) in expired and ("v", 1) in expired
    r = udr("fsck")
    assert r.code == 0, r
    # a second run finds nothing more to remove, and everything still reads
    r = udr("gc", "--keep-last", "1", "--grace", "0s", "--json")
    assert r.code == 0, r
    assert check_all(udr, tmp_path, truth) == expired


def test_fsck_reports_missing_chunk_of_kept_version_after_sweep(udr, tmp_path):
    truth = build_shared(udr, tmp_path)
    udr.ok("gc", "--keep-last", "1", "--grace", "0s")
    assert udr("fsck").code == 0
    h = json.loads(udr.ok("show", "v", "5").out)["chunks"][0]
    for where, path, off, length, kind in udr.locate(h):
        if where == "loose":
            os.unlink(path)
        else:
            os.truncate(path, off)
    r = udr("fsck")
    assert r.code != 0, r
    code, _ = read_version(udr, tmp_path, "v", 5)
    assert code not in (0, 6), code


def hold_gc_lock(udr):
    p = udr.root / "chunks" / "gc" / "lock"
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_busy_gc_links_no_gc_record(udr, tmp_path):
    """Another run holds the gc lock: the collection cannot run, so no gc
    record may say the data is removed (it did, and refused restore), and
    the rule expires nothing either: a clear error, nothing written."""
    for i in range(3):
        commit_file(udr, tmp_path, "t", b"x%d" % i * 1000)
    fd = hold_gc_lock(udr)
    try:
        r = udr("gc", "--keep-last", "1", "--grace", "0s")
        assert r.code != 0, r
    finally:
        os.close(fd)
    assert "another gc is running" in r.stderr, r
    ops = [x.get("op") for x in json.loads(udr.ok("log", "--json").out)]
    assert "gc" not in ops and "expire" not in ops, ops
    for v in (1, 2, 3):
        assert udr("show", "t", str(v)).code == 0


def test_gc_without_garbage_links_no_gc_record(udr, tmp_path):
    """A plain gc after an expire whose data is shared with kept versions:
    nothing to delete, so no gc record is needed and undo keeps working."""
    commit_file(udr, tmp_path, "t", b"same" * 1000)
    commit_file(udr, tmp_path, "t", b"same" * 1000)
    udr.ok("retention", "expire", "--keep-last", "1")
    r = udr("gc", "--grace", "0s", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["removed"]["objects"] == 0
    ops = [x.get("op") for x in json.loads(udr.ok("log", "--json").out)]
    assert "gc" not in ops, ops
    assert udr("retention", "undo").code == 0


def test_dry_run_counts_what_the_rule_would_remove(udr, tmp_path):
    """gc --dry-run --keep-last: the numbers are those of the real run."""
    rng = random.Random(3)
    for i in range(4):
        commit_file(udr, tmp_path, "t", rng.randbytes(100_000))
    snap = tree_snapshot(udr.root)
    r = udr("gc", "--keep-last", "1", "--grace", "0s", "--dry-run", "--json")
    assert r.code == 0, r
    dry = json.loads(r.out)
    assert {k: v for k, v in tree_snapshot(udr.root).items() if "/gc/" not in str(k)} == \
        {k: v for k, v in snap.items() if "/gc/" not in str(k)}
    r = udr("gc", "--keep-last", "1", "--grace", "0s", "--json")
    assert r.code == 0, r
    real = json.loads(r.out)
    assert real["removed"]["objects"] > 0
    assert dry["removed"]["objects"] == real["removed"]["objects"], (dry["removed"], real["removed"])


def test_bad_keep_input_writes_nothing(udr, tmp_path):
    for i in range(2):
        commit_file(udr, tmp_path, "t", b"y%d" % i * 1000)
    snap = tree_snapshot(udr.root)
    for args in (["--keep-last", "-1"], ["--keep-last", ""], ["--keep-last", "1x"],
                 ["--keep-last", "99999999999999999999999"], ["--keep-daily", "0"],
                 ["--keep-daily", "4294967296"], ["--keep-within", "-1d"], ["--keep-within", "d"],
                 ["--keep-within", "1d1d"], ["--keep-within", ""], ["--keep-within", "9999999999999999999y"],
                 ["--keep-last", "1", "extra"]):
        r = udr("gc", *args)
        assert r.code == 2, (args, r)
        assert r.stderr.strip(), args
    assert tree_snapshot(udr.root) == snap


# ---- races: another process acts while gc --keep-* runs ---------------------

import subprocess  # noqa: E402
import time  # noqa: E402

from conftest import UDR_BIN, base_env  # noqa: E402


def paused_gc(udr, point, *args):
    pause = udr.root.parent / ("pause-%s" % point)
    pause.mkdir()
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s", "--json", *args],
                         env=base_env({"UDR_PAUSE": "%s:%s" % (point, pause)}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() + 60
    while not (pause / ("%s.reached" % point)).exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < t
        time.sleep(0.01)
    return p, pause / ("%s.go" % point)


def unique_versions(udr, tmp_path, table, n, seed):
    rng = random.Random(seed)
    return {(table, commit_file(udr, tmp_path, table, rng.randbytes(60_000))): None for _ in range(n)}


def truth_of(udr, tmp_path, keys):
    out = {}
    for (t, v) in keys:
        code, data = read_version(udr, tmp_path, t, v)
        assert code == 0
        out[(t, v)] = data
    return out


def test_restore_between_mark_and_gc_record_keeps_data(udr, tmp_path):
    """A restore linked after the run marked (at its guard): the gc record
    must be refused (nothing deleted) or the restored data kept."""
    truth = truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "t", 4, 11))
    p, go = paused_gc(udr, "gc-guard", "--keep-last", "1")
    try:
        r = udr("retention", "restore", "t@1")
        assert r.code == 0, r
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    # the gc record is refused: the run stops with nothing deleted
    assert p.returncode == 3, err
    assert b"mark again" in err, err
    assert read_version(udr, tmp_path, "t", 1) == (0, truth[("t", 1)])
    assert check_all(udr, tmp_path, truth) == {("t", 2), ("t", 3)}
    r = udr("fsck")
    assert r.code == 0, r
    ops = [x.get("op") for x in json.loads(udr.ok("log", "--json").out)]
    assert "gc" not in ops, ops
    assert "still stored" in udr("show", "t", "2").stderr
    udr.ok("gc", "--grace", "0s")
    assert check_all(udr, tmp_path, truth) == {("t", 2), ("t", 3)}
    assert udr("fsck").code == 0


def test_restore_before_mark_keeps_data(udr, tmp_path):
    truth = truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "t", 4, 12))
    p, go = paused_gc(udr, "gc-locked", "--keep-last", "1")
    try:
        udr.ok("retention", "restore", "t@2")
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert check_all(udr, tmp_path, truth) == {("t", 1), ("t", 3)}
    assert udr("fsck").code == 0


def test_expire_during_run_is_not_swept_and_stays_restorable(udr, tmp_path):
    truth = truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "t", 3, 13))
    truth.update(truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "u", 2, 14)))
    p, go = paused_gc(udr, "gc-locked", "--keep-last", "2")  # expires t@1
    try:
        udr.ok("retention", "expire", "--keep-last", "1", "--table", "u")  # u@1 by a later record
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["retention"]["expired"]["ranges"] == {"t": [[1, 1]]}
    assert check_all(udr, tmp_path, truth) == {("t", 1), ("u", 1)}
    r = udr("show", "u", "1")
    assert "still stored" in r.stderr, r
    udr.ok("retention", "restore", "u@1")
    assert check_all(udr, tmp_path, truth) == {("t", 1)}
    assert udr("fsck").code == 0


def test_commit_naming_expired_chunk_during_run_fails_cleanly(udr, tmp_path):
    """A commit of an expired version's chunk started while gc holds its
    locks waits, then fails (the chunk is gone) with nothing committed, or
    commits a version whose data is intact."""
    truth = truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "t", 3, 15))
    h = json.loads(udr.ok("show", "t", "1").out)["chunks"][0]
    p, go = paused_gc(udr, "gc-locked", "--keep-last", "1")
    c = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "commit", "w", "--next", h], env=base_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    go.touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    cout, cerr = c.communicate(timeout=60)
    if c.returncode == 0:
        assert read_version(udr, tmp_path, "w", 1) == (0, truth[("t", 1)])
    else:
        assert udr("show", "w", "1").code != 0
    assert udr("fsck").code == 0


def test_branch_and_tag_at_old_commit_during_run_refused(udr, tmp_path):
    truth = truth_of(udr, tmp_path, unique_versions(udr, tmp_path, "t", 3, 16))
    p, go = paused_gc(udr, "gc-guard", "--keep-last", "1")
    try:
        r1 = udr("branch", "create", "old", "--from", "commit:1")
        r2 = udr("tag", "create", "old1", "commit:1")
    finally:
        go.touch()
        out, err = p.communicate(timeout=60)
    assert r1.code == 6 and r2.code == 6, (r1, r2)
    assert p.returncode == 0, err
    assert check_all(udr, tmp_path, truth) == {("t", 1), ("t", 2)}
    assert udr("fsck").code == 0


# ---- crash or I/O error at every step of gc --keep-last ---------------------

import shutil  # noqa: E402

import pytest  # noqa: E402

from conftest import FAULT_INJECTION, next_fault_step  # noqa: E402


def small_store(udr, tmp_path):
    rng = random.Random(21)
    truth = {}
    data = bytearray(rng.randbytes(40_000))
    for i in range(4):
        data[rng.randrange(len(data)):][:16] = rng.randbytes(16)
        data += rng.randbytes(5_000)
        truth[("t", commit_file(udr, tmp_path, "t", bytes(data)))] = bytes(data)
    truth[("u", commit_file(udr, tmp_path, "u", rng.randbytes(30_000)))] = None
    truth[("u", commit_file(udr, tmp_path, "u", rng.randbytes(30_000)))] = None
    return truth_of(udr, tmp_path, truth)


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION")
@pytest.mark.parametrize("op", ["fsync", "rename", "link", "write", "unlink", "open", "syncfs"])
@pytest.mark.parametrize("action", ["crash", "eio"])
def test_fault_at_every_step_of_gc_keep_last(udr, tmp_path, op, action):
    truth = small_store(udr, tmp_path)
    want = {("t", 1), ("t", 2), ("t", 3), ("u", 1)}
    n, reached = 1, True
    while reached and n <= 300:
        work = type(udr)(tmp_path / ("w%d" % n))
        shutil.copytree(udr.root, work.root, symlinks=True)
        r = work("gc", "--keep-last", "1", "--grace", "0s", env={"UDR_FAULT": "%s:%d:%s" % (op, n, action)})
        reached = r.code != 0
        if reached and action == "crash":
            assert r.code == -9, r
        elif reached:
            assert r.code in (3, 4, 5), r
        # every version: its bytes or expired, never damage nor wrong bytes
        got = check_all(work, tmp_path, truth)
        assert got <= want, (n, got)
        f = work("fsck")
        assert f.code == 0, (op, n, f)
        r2 = work("gc", "--keep-last", "1", "--grace", "0s")
        assert r2.code == 0, (op, n, r2)
        assert check_all(work, tmp_path, truth) == want, (op, n)
        assert work("fsck").code == 0, (op, n)
        for (t, v) in want:
            assert work("retention", "restore", "%s@%d" % (t, v)).code == 3
        shutil.rmtree(work.root)
        n = next_fault_step(n)
    assert not reached, "more than 300 %s calls" % op


def test_shared_data_survives_keep_last_1_loose_stores(udr1, udr2, tmp_path):
    for u in (udr1, udr2):
        truth = build_shared(u, tmp_path)
        r = u("gc", "--keep-last", "1", "--grace", "0s", "--json")
        assert r.code == 0, r
        assert json.loads(r.out)["removed"]["objects"] > 0
        expired = check_all(u, tmp_path, truth)
        assert ("t", 1) in expired and ("t", 7) not in expired and ("t", 3) not in expired
        assert u("fsck").code == 0


def test_text_report_says_what_the_rule_expires(udr, tmp_path):
    rng = random.Random(5)
    for i in range(4):
        commit_file(udr, tmp_path, "t", rng.randbytes(50_000))
    r = udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--dry-run")
    assert "would expire 3 versions by keep_last=1" in r.out, r.out
    assert "1 versions kept, 3 expired ones not" in r.out, r.out
    r = udr.ok("gc", "--keep-last", "1", "--grace", "0s")
    assert "expired 3 versions by keep_last=1" in r.out, r.out
    assert "removed 3 dead objects" in r.out, r.out


def test_keep_option_given_twice_is_refused(udr, tmp_path):
    """--keep-last 500 --keep-last 5 took the last silently: a typo in a
    script would expire far more than meant.  Refused, nothing written."""
    for i in range(3):
        commit_file(udr, tmp_path, "t", b"z%d" % i * 1000)
    snap = tree_snapshot(udr.root)
    for cmd in (["gc"], ["retention", "expire"]):
        for args in (["--keep-last", "3", "--keep-last", "1"], ["--keep-within", "1d", "--keep-within", "0s"],
                     ["--keep-daily", "2", "--keep-daily", "1"]):
            r = udr(*cmd, *args)
            assert r.code == 2, (cmd, args, r)
            assert "twice" in r.stderr, r.stderr
    assert tree_snapshot(udr.root) == snap


def test_reset_head_below_a_lost_gc_record_is_refused(udr, tmp_path):
    """The last record, a gc record, is lost after its sweep removed data:
    fsck --reset-head must not move HEAD below it (the versions it swept
    would look restorable; a restore then reads missing chunks, exit 4)."""
    rng = random.Random(9)
    for i in range(3):
        commit_file(udr, tmp_path, "t", rng.randbytes(50_000))
    rep = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--json").out)
    g = rep["gc_seq"]
    assert g == last_seq(udr) and rep["removed"]["objects"] == 2
    head = (udr.catalog / "HEAD").read_bytes()
    (udr.catalog / "log" / ("%020d.json" % g)).unlink()
    r = udr("fsck", "--reset-head")
    assert r.code != 0, r
    assert "gc record %d" % g in r.stderr, r.stderr
    assert (udr.catalog / "HEAD").read_bytes() == head
