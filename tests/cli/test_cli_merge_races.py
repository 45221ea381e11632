"""Row-level merges racing other writers: `merge --continue` against a commit
to its target, and the merge record (catalog/merges/<target>.json) against
concurrent `udr resolve`s, a new `udr merge` and `--continue`.

The exact windows are made with UDR_PAUSE="<point>:<dir>" (builds with
UDR_FAULT_INJECTION only): the process stops at the point, says so with
<dir>/<point>.reached and goes on once <dir>/<point>.go exists.
"""
import json
import os
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, csv, table_rows as rows

needs_pause = pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION (UDR_PAUSE)")


def record(udr, target="main"):
    return json.loads((udr.root / "catalog" / "merges" / ("%s.json" % target)).read_text())


def head(udr):
    return max(e["seq"] for e in json.loads(udr.ok("log", "--json").out))


def three_sides(udr, tmp_path, base, ours, theirs, table="t"):
    """base on main, branch dev, theirs imported on dev, ours on main."""
    udr.ok("import", table, csv(tmp_path, "base.csv", base))
    udr.ok("branch", "create", "dev")
    udr.ok("import", table, csv(tmp_path, "theirs.csv", theirs), "--branch", "dev")
    udr.ok("import", table, csv(tmp_path, "ours.csv", ours))


def start(udr, *args, pause=None):
    """udr running in the background; pause: (point, dir) for UDR_PAUSE."""
    env = base_env({"UDR_PAUSE": "%s:%s" % pause} if pause else None)
    return subprocess.Popen([UDR_BIN, "--store", str(udr.root), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path, proc, timeout=60):
    t = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, (proc.returncode, proc.communicate())
        assert time.monotonic() < t, "%s never appeared" % path
        time.sleep(0.01)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


# two conflicting rows (1: a vs b changed on the same column; 2: deleted vs changed), the rest merges
C_BASE = [(1, "x", 10), (2, "y", 20), (3, "z", 30), (4, "w", 40)]
C_OURS = [(1, "O", 10), (3, "z", 30), (4, "w", 44), (5, "o", 5)]
C_THEIRS = [(1, "T", 10), (2, "t", 22), (3, "z", 33), (4, "w", 40), (6, "t", 6)]
# what another writer commits to main while the merge is continued
C_OTHER = [(1, "O", 10), (3, "z", 30), (4, "w", 44), (5, "o", 5), (7, "other", 7)]


# ---- merge --continue against a commit to its target ---------------------------------------------------


@needs_pause
@pytest.mark.parametrize("point", ["merge-continue", "merge-commit"])
@pytest.mark.parametrize("how", ["theirs", "sql"])
def test_a_commit_during_continue_is_a_conflict_not_overwritten(udr, tmp_path, point, how):
    """A commit to the target between --continue's check of the head and its
    commit (before the plan: merge-continue; between plan and commit:
    merge-commit): the continue fails with a conflict (exit 3), writes
    nothing and keeps the record; the other commit's rows stay."""
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    if how == "theirs":
        udr.ok("resolve", "t", "--theirs")
    else:
        udr.ok("resolve", "t", "--sql", "SELECT * FROM t@dev WHERE id > 3")
    rec = record(udr)
    pdir = tmp_path / "pause"
    pdir.mkdir()
    p = start(udr, "merge", "--continue", pause=(point, pdir))
    wait_for(pdir / ("%s.reached" % point), p)
    udr.ok("import", "t", csv(tmp_path, "other.csv", C_OTHER))  # another writer moves main
    other = head(udr)
    (pdir / ("%s.go" % point)).touch()
    code, out, err = finish(p)
    assert code == 3, (code, out, err)
    assert "moved" in err and "--abort" in err, err
    # nothing merged: main is the other commit, its rows intact; the record kept as it was
    assert head(udr) == other
    assert rows(udr) == sorted(C_OTHER)
    assert record(udr) == rec
    # and it stays refused; --abort, then merging again works on the new head
    r = udr("merge", "--continue")
    assert r.code == 3 and "moved since the merge" in r.stderr, r
    udr.ok("merge", "--abort")
    udr.ok("fsck")


# ---- the record against concurrent resolves and merges -------------------------------------------------

N = 32  # rows in conflict


def test_concurrent_resolves_keep_every_resolution(udr, tmp_path):
    """8 processes resolving different rows of one merge at once, 4 rounds:
    every resolution is in the record, and --continue applies them all."""
    base = [(i, "base", i) for i in range(1, N + 1)]
    ours = [(i, "ours", i) for i in range(1, N + 1)]
    theirs = [(i, "theirs", i) for i in range(1, N + 1)]
    three_sides(udr, tmp_path, base, ours, theirs)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    assert record(udr)["tables"][0]["rows"] == N
    side = {i: "--ours" if i % 3 else "--theirs" for i in range(1, N + 1)}
    for rnd in range(N // 8):
        procs = [start(udr, "resolve", "t", "--key", k, side[k]) for k in range(rnd * 8 + 1, rnd * 8 + 9)]
        for p in procs:
            code, out, err = finish(p)
            assert code == 0, (code, out, err)
    got = {int(k): s for k, s in record(udr)["tables"][0]["rows_resolved"]}
    assert got == {k: s[2:] for k, s in side.items()}
    udr.ok("merge", "--continue")
    assert rows(udr) == [(i, "ours" if i % 3 else "theirs", i) for i in range(1, N + 1)]
    assert not (udr.root / "catalog" / "merges" / "main.json").exists()


def blocked_on(path, proc):
    """Is proc waiting for an flock on path (Linux /proc/locks: '->' lines)?"""
    try:
        ino = os.stat(path).st_ino
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    return any("->" in l and (":%d " % ino) in l for l in lines)


@needs_pause
def test_a_resolve_does_not_put_back_the_record_of_an_earlier_merge(udr, tmp_path):
    """A resolve that read the record of a merge, and a new merge into the
    same target recording its own conflicts before the resolve writes: the
    new merge's record is what stays (the resolve went to the earlier one)."""
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    udr.ok("branch", "create", "dev2", "--from", "dev")
    udr.ok("import", "t", csv(tmp_path, "theirs2.csv", C_THEIRS + [(8, "d", 8)]), "--branch", "dev2")
    assert udr("merge", "dev", "--key", "t=id").code == 3
    pdir = tmp_path / "pause"
    pdir.mkdir()
    res = start(udr, "resolve", "t", "--key", "1", "--theirs", pause=("merge-resolve", pdir))
    wait_for(pdir / "merge-resolve.reached", res)
    new = start(udr, "merge", "dev2", "--key", "t=id")
    # the new merge either finishes (no lock) or waits for the resolve's lock
    lock = udr.root / "catalog" / "merges" / "main.lock"
    t = time.monotonic() + 60
    while new.poll() is None and not blocked_on(lock, new) and time.monotonic() < t:
        time.sleep(0.01)
    (pdir / "merge-resolve.go").touch()
    assert finish(res)[0] == 0
    code, out, err = finish(new)
    assert code == 3, (code, out, err)
    rec = record(udr)
    assert rec["source"] == "dev2", rec
    assert rec["tables"][0]["rows_resolved"] == []
    # its conflicts are resolved and committed as usual
    udr.ok("resolve", "t", "--theirs")
    udr.ok("merge", "--continue")
    assert rows(udr) == sorted(C_THEIRS + [(8, "d", 8)])


@needs_pause
def test_a_resolve_during_continue_waits_and_is_not_dropped(udr, tmp_path):
    """A resolve while --continue runs: it waits for the continue, then
    finds the record gone (exit 1) instead of reporting a resolution the
    continue never saw."""
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    udr.ok("resolve", "t", "--key", "1", "--theirs")
    udr.ok("resolve", "t", "--key", "2", "--ours")
    pdir = tmp_path / "pause"
    pdir.mkdir()
    cont = start(udr, "merge", "--continue", pause=("merge-continue", pdir))
    wait_for(pdir / "merge-continue.reached", cont)
    res = start(udr, "resolve", "t", "--key", "1", "--ours")
    lock = udr.root / "catalog" / "merges" / "main.lock"
    t = time.monotonic() + 60
    while res.poll() is None and not blocked_on(lock, res) and time.monotonic() < t:
        time.sleep(0.01)
    (pdir / "merge-continue.go").touch()
    code, out, err = finish(cont)
    assert code == 0, (code, out, err)
    code, out, err = finish(res)
    assert code == 1 and "no merge into branch 'main' has conflicts" in err, (code, out, err)
    assert rows(udr) == [(1, "T", 10), (3, "z", 33), (4, "w", 44), (5, "o", 5), (6, "t", 6)]
