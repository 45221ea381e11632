"""Atomicity of multi-table transactions under crashes.

- kill -9 at random moments (seeded, delays of 0-30 ms and a few longer) of
  writers looping over transactions that each write three tables; after
  every kill: every commit the writer reported is fully visible, no commit
  is partly visible (every commit record's tables are all visible at the
  versions it names, made by the same transaction), the three tables have
  equal version counts, fsck (CLI, and the library's through txn_worker)
  exits 0 and changes nothing visible.
- with a fault-injection build: a crash (and an EIO) at each n-th
  fsync/link/rename/open/write/mkdir/unlink of a process that runs one
  3-table transaction: old state or new state, never partial; the store
  stays usable.

The checks read the catalog through the public API (txn_worker dump).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, SANITIZE, UDR_BIN, base_env, tool

KILLS = 200 if not SANITIZE else 60
KILLS_PER_STORE = 20
GROUP_A = ["t0", "t1", "t2"]
GROUP_B = ["u0", "u1", "u2"]


def parse_committed(out):
    """Complete lines only: a line cut by the kill was not reported."""
    text = out.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    done = []
    for line in text.splitlines():
        f = line.split()
        assert f and f[0] == "committed", "unexpected worker output %r" % line
        done.append((int(f[1]), f[2]))
    return done


def dump(root):
    p = subprocess.run([tool("txn_worker"), "dump", root], capture_output=True, env=base_env(),
                       timeout=300)
    assert p.returncode == 0, "dump %s: exit %d\n%s" % (root, p.returncode, p.stderr.decode())
    head, commits, versions = None, {}, {}
    for line in p.stdout.decode().splitlines():
        o = json.loads(line)
        if "head" in o:
            head = o["head"]
        elif "commit" in o and "changes" in o:
            commits[o["commit"]] = o
        else:
            versions[tuple(o["version"])] = o
    assert head is not None
    return head, commits, versions


def fsck(root, cli=True):
    """The library's fsck through the tool, and the CLI's when built."""
    p = subprocess.run([tool("txn_worker"), "fsck", root], capture_output=True, env=base_env(),
                       timeout=300)
    assert p.returncode == 0, "txn_worker fsck %s: exit %d\n%s%s" % (
        root, p.returncode, p.stdout.decode(), p.stderr.decode())
    if cli and os.path.exists(UDR_BIN):
        p = subprocess.run([UDR_BIN, "--store", root, "fsck"], capture_output=True, env=base_env(),
                           timeout=300)
        assert p.returncode == 0, "udr fsck %s: exit %d\n%s%s" % (
            root, p.returncode, p.stdout.decode(), p.stderr.decode())


def check_consistent(root, groups, reported):
    """No partial commit; every reported commit visible.  Returns the dump."""
    head, commits, versions = dump(root)
    assert sorted(commits) == list(range(1, head + 1)), "log is not 1..%d" % head
    latest = {}
    for (t, v) in versions:
        latest[t] = max(latest.get(t, 0), v)
    for seq in range(1, head + 1):
        c = commits[seq]
        tables = sorted(ch[0] for ch in c["changes"])
        assert tables in [sorted(g) for g in groups], "commit %d changes %s" % (seq, tables)
        txn = None
        for t, old, new in c["changes"]:
            assert new == old + 1, "commit %d: %s %d -> %d" % (seq, t, old, new)
            v = versions.get((t, new))
            assert v is not None, "commit %d: %s version %d is not visible" % (seq, t, new)
            assert v["commit"] == seq, "commit %d: %s version %d names commit %d" % (
                seq, t, new, v["commit"])
            assert v["parent"] == old
            txn = txn or v["meta"]["txn"]
            assert v["meta"]["txn"] == txn, "commit %d mixes transactions %s and %s" % (
                seq, txn, v["meta"]["txn"])
            assert v["content"] == "txn=%s table=%s" % (txn, t), "commit %d: %s content %r" % (
                seq, t, v["content"])
    for g in groups:
        counts = [latest.get(t, 0) for t in g]
        assert len(set(counts)) == 1, "tables %s have version counts %s" % (g, counts)
        for t in g:
            assert sorted(v for (tt, v) in versions if tt == t) == list(range(1, latest.get(t, 0) + 1))
    for seq, txn in reported:
        assert seq <= head, "reported commit %d (%s) lost: head is %d" % (seq, txn, head)
        for t, old, new in commits[seq]["changes"]:
            assert versions[(t, new)]["meta"]["txn"] == txn, "reported commit %d is not %s" % (seq, txn)
    return head, commits, versions


def test_txn_kill9_random_moments(tmp_path):
    worker = tool("txn_worker")
    rng = random.Random(4242)
    total_reported = 0
    kills_with_commits = 0
    root = None
    groups = [GROUP_A, GROUP_B]
    reported = []
    t_start = time.time()
    for kill in range(KILLS):
        if kill % KILLS_PER_STORE == 0:
            root = str(tmp_path / ("store%d" % (kill // KILLS_PER_STORE)))
            reported = []
        # Every third round two writers (disjoint table groups) die together,
        # one of them possibly holding the writer lock.
        nproc = 2 if kill % 3 == 2 else 1
        r = rng.random()
        delay = rng.uniform(0, 0.030) if r < 0.8 else rng.uniform(0.03, 0.25)
        if SANITIZE:
            delay *= 2
        procs = []
        for w in range(nproc):
            g = groups[w]
            procs.append(subprocess.Popen(
                [worker, "txn3", root, "k%dw%d" % (kill, w), "0", ",".join(g)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env()))
        time.sleep(delay)
        for p in procs:
            p.send_signal(signal.SIGKILL)
        got = 0
        for p in procs:
            out, err = p.communicate()
            assert p.returncode == -signal.SIGKILL, "worker exited by itself: %d %s" % (
                p.returncode, err.decode())
            rep = parse_committed(out)
            got += len(rep)
            reported += rep
        total_reported += got
        kills_with_commits += got > 0
        if not os.path.exists(os.path.join(root, "config.json")):
            continue  # killed before the store existed
        # Readers see a consistent catalog even with the crash's leftovers...
        head, _, _ = check_consistent(root, groups, reported)
        # ...fsck cleans up without error and without changing what is visible...
        fsck(root)
        head2, _, _ = check_consistent(root, groups, reported)
        assert head2 == head, "fsck changed the head from %d to %d" % (head, head2)
        # ...and no temp file is left.
        tmpdir = os.path.join(root, "catalog", "tmp")
        if os.path.isdir(tmpdir):
            assert os.listdir(tmpdir) == [], "temp files left in %s after fsck" % tmpdir
    # A store that was killed many times still takes transactions.
    p = subprocess.run([worker, "txn3", root, "final", "3", ",".join(GROUP_A)], capture_output=True,
                       env=base_env(), timeout=120)
    assert p.returncode == 0, p.stderr.decode() + p.stdout.decode()
    reported += parse_committed(p.stdout)
    check_consistent(root, groups, reported)
    print("kills=%d reported commits=%d kills after a commit=%d (%.1f s)" % (
        KILLS, total_reported, kills_with_commits, time.time() - t_start))
    assert total_reported > 0
    assert kills_with_commits >= KILLS // 10


# ---- deterministic crashes at the n-th I/O call (fault-injection builds) ----

needs_fi = pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
OPS = ["fsync", "syncfs", "link", "rename", "open", "write", "mkdir", "unlink"]
NMAX = 200


def run_txn3(root, txnid, fault=None):
    env = base_env()
    if fault:
        env["UDR_FAULT"] = fault
    return subprocess.run([tool("txn_worker"), "txn3", root, txnid, "1", ",".join(GROUP_A)],
                          capture_output=True, env=env, timeout=120)


def make_base(tmp_path, tables):
    """A store whose tables already hold two transactions, or none yet."""
    base = str(tmp_path / ("base-" + tables))
    reported = []
    if tables == "existing":
        for i in range(2):
            p = run_txn3(base, "base%d" % i)
            assert p.returncode == 0, p.stderr.decode()
            reported += parse_committed(p.stdout)
    else:
        p = subprocess.run([tool("txn_worker"), "prepare", base, "none", "0"], capture_output=True,
                           env=base_env(), timeout=60)
        assert p.returncode == 0, p.stderr.decode()
    return base, reported


@needs_fi
@pytest.mark.parametrize("action", ["crash", "eio"])
@pytest.mark.parametrize("tables", ["new", "existing"])
@pytest.mark.parametrize("op", OPS)
def test_txn_fault_each_step(tmp_path, op, tables, action):
    if action == "eio" and op in ("open", "mkdir", "unlink"):
        pytest.skip("eio is exercised on fsync/link/rename/write")
    base, base_reported = make_base(tmp_path, tables)
    outcomes = {"old": 0, "new": 0}
    crashes_old = crashes_new = 0
    streak = 0
    for n in range(1, NMAX + 1):
        ctx = "%s:%d:%s (%s tables)" % (op, n, action, tables)
        root = str(tmp_path / ("s%d" % n))
        shutil.copytree(base, root, symlinks=True)
        reported = list(base_reported)
        before = len(reported)
        txnid = "F%d" % n
        p = run_txn3(root, txnid, "%s:%d:%s" % (op, n, action))
        out = p.stdout.decode(errors="replace")
        if p.returncode == -signal.SIGKILL and "committed" in out:
            # killed after the commit was reported: closing the handle
            # removes its lease file (GC.md 2.1), its last I/O
            assert action == "crash", ctx
            assert op == "unlink", ctx
            outcome = "ok-then-crash"
            reported += parse_committed(p.stdout)
            assert len(reported) == before + 1, ctx
        elif p.returncode == -signal.SIGKILL:
            assert action == "crash", ctx
            outcome = "crash"
        elif p.returncode == 0:
            outcome = "ok"
            reported += parse_committed(p.stdout)
            assert len(reported) == before + 1, ctx
        else:
            assert action == "eio" and p.returncode == 1, "%s: exit %d\n%s%s" % (
                ctx, p.returncode, out, p.stderr.decode())
            assert out.startswith("error "), ctx
            outcome = "failed"
        # Old or new, never partial, as readers see it with the leftovers.
        head, commits, versions = check_consistent(root, [GROUP_A], reported)
        assert head in (before, before + 1), "%s: head %d, had %d" % (ctx, head, before)
        state = "new" if head == before + 1 else "old"
        if state == "new":
            assert versions[("t0", head)]["meta"]["txn"] == "%s.0" % txnid, ctx
        if outcome in ("ok", "ok-then-crash"):
            assert state == "new", ctx
        if outcome == "failed" and state == "new":
            # Only the one ambiguous outcome: visible, durability unknown.
            assert "-6 " in out and "visible" in out, "%s: failed but committed: %s" % (ctx, out)
        outcomes[state] += 1
        if outcome == "crash":
            crashes_old += state == "old"
            crashes_new += state == "new"
        # fsck cleans up; the store takes the next transaction normally, and
        # everything before it is still there (checked by check_consistent).
        fsck(root, cli=False)
        p2 = run_txn3(root, "after%d" % n)
        assert p2.returncode == 0, "%s: next transaction failed: %s%s" % (
            ctx, p2.stdout.decode(), p2.stderr.decode())
        if state == "new":
            reported.append((head, "%s.0" % txnid))
        reported += parse_committed(p2.stdout)
        head3, _, _ = check_consistent(root, [GROUP_A], reported)
        assert head3 == head + 1, ctx
        shutil.rmtree(root)
        # Past the last call of op: for crash the process ran to its end; for
        # eio, whose failure may legitimately be absorbed (a cache refresh),
        # several runs in a row succeeded.
        streak = streak + 1 if outcome == "ok" else 0
        if streak >= (1 if action == "crash" else 6):
            break
    else:
        pytest.fail("the transaction never ran past the fault at n=%d" % NMAX)
    print("%s/%s/%s: n=1..%d old=%d new=%d (crash: old=%d new=%d)" % (
        op, tables, action, n, outcomes["old"], outcomes["new"], crashes_old, crashes_new))
    if action == "crash" and op == "fsync":
        # A format-2 commit makes no fsync of its own (the puts before it
        # do): a crash there leaves the old state.
        assert crashes_old > 0, (crashes_old, crashes_new)
    if action == "crash" and op == "syncfs":
        # The commit's syncfs comes after its commit point (the link): a
        # crash there leaves a linked record past HEAD, which the next
        # reader recovers (new state).
        assert crashes_new > 0, (crashes_old, crashes_new)
    if action == "crash" and op == "link":
        # The last link is the commit point: a crash right before it is old.
        assert crashes_old > 0
