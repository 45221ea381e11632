"""Crash tests: real processes killed with SIGKILL at random moments (seeded)
and, with a fault-injection build, deterministically at the n-th call of each
I/O operation (UDR_FAULT=<op>:<n>:crash|eio).  After every crash: `udr fsck`
exits 0, everything reported done is there and intact, nothing is partial.
"""
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import (FAULT_INJECTION, SANITIZE, SCALE, Udr, base_env, tool, verify_chunks)

KILLS = 80 if not SANITIZE else 25
ROUNDS_PER_STORE = 10


def parse_report(out):
    """Complete lines only: a line cut by the kill was not reported done."""
    text = out.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    puts, commits = [], []
    for line in text.splitlines():
        f = line.split()
        if f[0] == "put":
            puts.append(f[1])
        elif f[0] == "commit":
            commits.append((f[1], int(f[2]), f[3:]))
    return puts, commits


def check_store(u, puts, commits, reported_latest):
    p = u.fsck()
    assert p.returncode == 0, "fsck after kill: exit %d\n%s%s" % (
        p.returncode, p.stdout.decode(), p.stderr.decode())
    # No temp file survives fsck.
    for sub in ("chunks/tmp", "catalog/tmp"):
        d = os.path.join(u.root, sub)
        if os.path.isdir(d):
            assert os.listdir(d) == [], "temp files left in %s after fsck" % d
    verify_chunks(u, puts)
    for table, version, chunks in commits:
        v = u.show(table, version)
        assert v["table"] == table and v["version"] == version
        assert v["chunks"] == chunks, "table %s version %d: chunks differ" % (table, version)
        assert v["parent"] == version - 1
    # Versions are 1..latest with no gaps, and nothing reported is missing.
    for table, latest in reported_latest.items():
        vs = u.versions(table)
        assert vs == list(range(1, len(vs) + 1)), "gaps in %s: %s" % (table, vs)
        assert len(vs) >= latest, "table %s lost versions: %d < %d" % (table, len(vs), latest)


def test_kill9_random_moments(tmp_path):
    worker = tool("udr_worker")
    rng = random.Random(20240601)
    u = None
    reported_latest = {}
    all_commits = []
    total_puts = total_commits = 0
    for kill in range(KILLS):
        if kill % ROUNDS_PER_STORE == 0:
            u = Udr(tmp_path / ("store%d" % (kill // ROUNDS_PER_STORE)))
            reported_latest = {}
            all_commits = []
        seed = rng.randrange(1 << 30)
        delay = rng.choice([0.0, 0.001, 0.005]) if kill % 7 == 0 else rng.uniform(0.01, 0.25)
        env = base_env()
        if FAULT_INJECTION and (kill // ROUNDS_PER_STORE) % 2:
            # every other store: a multi-pack index rewritten at almost every
            # put, so kills land in its writing too
            env["UDR_MIDX_THRESHOLD"] = "2"
        p = subprocess.Popen([worker, "crashloop", u.root, str(seed)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        time.sleep(delay * (2 if SANITIZE else 1))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, "worker exited by itself: %d %s" % (
            p.returncode, err.decode())
        puts, commits = parse_report(out)
        total_puts += len(puts)
        total_commits += len(commits)
        for t, v, _ in commits:
            reported_latest[t] = max(reported_latest.get(t, 0), v)
        all_commits += commits
        if not os.path.exists(os.path.join(u.root, "config.json")):
            continue  # killed before the store existed
        check_store(u, puts, commits, reported_latest)
        # Commits of earlier rounds are still there (sample).
        for c in rng.sample(all_commits, min(5, len(all_commits))):
            assert u.show(c[0], c[1])["chunks"] == c[2]
    print("kills=%d puts=%d commits=%d" % (KILLS, total_puts, total_commits))
    assert total_commits > 0 and total_puts > 0


# ---- deterministic crashes at the n-th I/O call (fault-injection builds) ----

needs_fi = pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
OPS = ["open", "write", "fsync", "syncfs", "link", "rename", "unlink", "mkdir"]
NMAX = 150


def run_faulted(u, fault, *args):
    return u.run(*args, env_extra={"UDR_FAULT": fault})


def fault_outcome(p, action, ctx):
    """'crash', 'failed' or 'ok'; asserts the exit is one a caller expects."""
    if p.returncode == -signal.SIGKILL:
        assert action == "crash", ctx
        return "crash"
    if p.returncode == 0:
        return "ok"
    err = p.stderr.decode(errors="replace")
    assert action == "eio", "%s: exit %d\n%s" % (ctx, p.returncode, err)
    assert p.returncode == 5, "%s: an injected EIO must exit 5, got %d\n%s" % (
        ctx, p.returncode, err)
    assert err.startswith("udr: "), "%s: stderr %r" % (ctx, err)
    return "failed"


def done(outcome, action, streak):
    """The fault is past the operation's last call: for crash the process ran
    to its end; for eio (whose failure may legitimately be absorbed, e.g. a
    failed unlink of a temp file) two runs in a row succeeded."""
    if outcome != "ok":
        return False, 0
    streak += 1
    return (action == "crash" or streak >= 2), streak


@needs_fi
@pytest.mark.parametrize("action", ["crash", "eio"])
@pytest.mark.parametrize("op", OPS)
def test_fault_put(tmp_path, udr, op, action):
    reported = []
    streak = 0
    for n in range(1, NMAX + 1):
        ctx = "put %s:%d:%s" % (op, n, action)
        data = os.urandom(1000 + 37 * n) + b"%d" % n
        f = tmp_path / "in"
        f.write_bytes(data)
        h = udr.ok("hash", str(f)).strip()
        p = run_faulted(udr, "%s:%d:%s" % (op, n, action), "put", str(f))
        outcome = fault_outcome(p, action, ctx)
        assert udr.fsck().returncode == 0, ctx
        e = udr.run("exists", h)
        assert e.returncode in (0, 1), ctx
        if e.returncode == 0:  # there: then complete and intact
            udr.run("get", h, "--verify", "-o", os.devnull, check=0)
        if outcome == "ok":
            assert p.stdout.decode().strip() == h, ctx
            assert e.returncode == 0, ctx
            reported.append(h)
        # A retry on a healthy disk works.
        assert udr.ok("put", str(f)).strip() == h, ctx
        verify_chunks(udr, reported + [h])
        stop, streak = done(outcome, action, streak)
        if stop:
            print("put %s:%s: ran past the fault at n=%d" % (op, action, n))
            break
    else:
        pytest.fail("the put never ran past the fault at n=%d" % NMAX)


MIDX_OPS = ["open", "write", "fsync", "rename", "link", "unlink"]


@needs_fi
@pytest.mark.parametrize("action", ["crash", "eio"])
@pytest.mark.parametrize("op", MIDX_OPS)
def test_fault_put_midx(tmp_path, op, action):
    """A put whose repack rewrites the multi-pack index (UDR_MIDX_THRESHOLD=1),
    crashed or failed at each step, on a fresh store holding one earlier put
    (so step n is the same call every time): fsck clean afterwards (the old
    midx, the new one or none, never a damaged one), the earlier put intact,
    the put intact when it was acknowledged."""
    streak = 0
    env = {"UDR_MIDX_THRESHOLD": "1"}
    a = os.urandom(3000)
    b = os.urandom(3000)
    for n in range(1, NMAX + 1):
        ctx = "put with midx %s:%d:%s" % (op, n, action)
        udr = Udr(tmp_path / ("s%d" % n))
        udr.run("init", check=0)
        fa, fb = tmp_path / "a", tmp_path / "b"
        fa.write_bytes(a)
        fb.write_bytes(b)
        ha = udr.run("put", str(fa), env_extra=env, check=0).stdout.decode().strip()
        assert os.path.exists(os.path.join(udr.root, "chunks", "packs", "multi-pack-index")), ctx
        hb = udr.ok("hash", str(fb)).strip()
        p = udr.run("put", str(fb), env_extra=dict(env, UDR_FAULT="%s:%d:%s" % (op, n, action)))
        outcome = fault_outcome(p, action, ctx)
        f = udr.fsck()
        assert f.returncode == 0, "%s: %s%s" % (ctx, f.stdout.decode(), f.stderr.decode())
        g = udr.run("get", ha, "--verify")
        assert g.returncode == 0 and g.stdout == a, ctx
        if outcome == "ok":
            assert p.stdout.decode().strip() == hb, ctx
            g = udr.run("get", hb, "--verify")
            assert g.returncode == 0 and g.stdout == b, ctx
        stop, streak = done(outcome, action, streak)
        if stop:
            print("put with midx %s:%s: ran past the fault at n=%d" % (op, action, n))
            break
    else:
        pytest.fail("the put never ran past the fault at n=%d" % NMAX)


CHUNKED_OPS = ["open", "write", "link", "syncfs", "fsync", "mkdir", "unlink"]


@needs_fi
@pytest.mark.parametrize("action", ["crash", "eio"])
@pytest.mark.parametrize("op", CHUNKED_OPS)
def test_fault_put_chunked(tmp_path, op, action):
    """Chunked content (pieces published in batches with syncfs/linkat, then
    the manifest): a crash or an error at any step leaves either no content
    under the hash or the complete content, and fsck clean.  Each step gets
    a fresh store, so every piece is new and every step of a full put is hit."""
    streak = 0
    rng = random.Random(7)
    base = bytes(rng.getrandbits(8) for _ in range(1 << 20))
    text = b"".join(b"%d,row,%d\n" % (i, i * 7) for i in range(60000))
    for n in range(1, NMAX + 1):
        ctx = "chunked put %s:%d:%s" % (op, n, action)
        udr = Udr(tmp_path / ("s%d" % n))
        udr.run("init", check=0)
        reported = []
        data = base + text + b"%d" % n  # > chunk_max: split into pieces
        f = tmp_path / "in"
        f.write_bytes(data)
        h = udr.ok("hash", str(f)).strip()
        p = run_faulted(udr, "%s:%d:%s" % (op, n, action), "put", str(f))
        outcome = fault_outcome(p, action, ctx)
        assert udr.fsck().returncode == 0, ctx
        e = udr.run("exists", h)
        assert e.returncode in (0, 1), ctx
        if e.returncode == 0:  # there: then complete and intact
            g = udr.run("get", h, "--verify")
            assert g.returncode == 0 and g.stdout == data, ctx
        if outcome == "ok":
            assert p.stdout.decode().strip() == h, ctx
            assert e.returncode == 0, ctx
            reported.append(h)
        assert udr.ok("put", str(f)).strip() == h, ctx
        verify_chunks(udr, reported + [h])
        stop, streak = done(outcome, action, streak)
        if stop:
            print("chunked put %s:%s: ran past the fault at n=%d" % (op, action, n))
            break
    else:
        pytest.fail("the chunked put never ran past the fault at n=%d" % NMAX)


def commit_state(u, table):
    vs = u.versions(table)
    return len(vs)


@needs_fi
@pytest.mark.parametrize("action", ["crash", "eio"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("mode", ["next", "explicit"])
def test_fault_commit(tmp_path, udr, op, action, mode):
    table = "t"
    model = {}  # version -> chunks
    h0 = udr.ok("put", "-", input=b"base").strip()
    udr.ok("commit", table, "1", h0)
    model[1] = [h0]
    streak = 0
    for n in range(1, NMAX + 1):
        ctx = "commit --%s %s:%d:%s" % (mode, op, n, action)
        h = udr.ok("put", "-", input=b"content %d" % n).strip()
        latest = len(model)
        if mode == "next":
            args = ["commit", table, "--next", h, h0, "-m", ctx, "--meta", "n=%d" % n]
        else:
            args = ["commit", table, str(latest + 1), h, h0, "-m", ctx]
        p = run_faulted(udr, "%s:%d:%s" % (op, n, action), *args)
        outcome = fault_outcome(p, action, ctx)
        f = udr.fsck()
        assert f.returncode == 0, "%s: fsck exit %d\n%s%s" % (
            ctx, f.returncode, f.stdout.decode(), f.stderr.decode())
        now = commit_state(udr, table)
        assert now in (latest, latest + 1), "%s: %d versions, had %d" % (ctx, now, latest)
        if outcome == "ok":
            assert now == latest + 1, ctx
            if mode == "next":
                assert p.stdout.decode().strip() == str(latest + 1), ctx
        if now == latest + 1:
            model[latest + 1] = [h, h0]
        else:
            # Old state: the leftovers must not block a retry of that number.
            udr.ok("commit", table, str(latest + 1), h, h0)
            model[latest + 1] = [h, h0]
        for v in sorted(set([1] + list(model)[-3:])):
            got = udr.show(table, v)
            assert got["chunks"] == model[v], "%s: version %d changed" % (ctx, v)
        stop, streak = done(outcome, action, streak)
        if stop:
            print("commit --%s %s:%s: ran past the fault at n=%d" % (mode, op, action, n))
            break
    else:
        pytest.fail("the commit never ran past the fault at n=%d" % NMAX)
    assert udr.versions(table) == sorted(model)
    for v, chunks in model.items():
        assert udr.show(table, v)["chunks"] == chunks, "version %d changed" % v


@needs_fi
@pytest.mark.parametrize("op", ["open", "write", "fsync", "link", "rename", "mkdir"])
def test_fault_init_crash(tmp_path, op):
    from conftest import UDR_BIN
    if not os.path.exists(UDR_BIN):
        pytest.skip("no CLI")
    for n in range(1, NMAX + 1):
        u = Udr(tmp_path / ("s%d" % n))
        p = run_faulted(u, "%s:%d:crash" % (op, n), "init")
        outcome = fault_outcome(p, "crash", "init %s:%d" % (op, n))
        # A half-made store is completed by init again, then it is usable and clean.
        u.ok("init")
        h = u.ok("put", "-", input=b"x").strip()
        u.ok("commit", "t", "1", h)
        assert u.fsck().returncode == 0
        if outcome == "ok":
            break
    else:
        pytest.fail("init never ran past the fault")
