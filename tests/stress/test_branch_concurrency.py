"""Concurrency on branches: writers on different branches and a merger at
once (writers never conflict across branches; every reported commit is on
its branch; numbers are never handed out twice), and two mergers into one
target (each merge either lands or is refused with exit 3 and nothing
written; retried, both land).
"""
import json
import subprocess
import threading

from conftest import UDR_BIN, Udr, base_env


def run(u, *args):
    return subprocess.run([UDR_BIN, "--store", u.root] + [str(a) for a in args], capture_output=True,
                          env=base_env(), timeout=120)


def test_writers_on_branches_and_a_merger(tmp_path):
    u = Udr(tmp_path / "s")
    u.ok("init")
    h = u.ok("put", "-", input=b"seed").strip()
    u.ok("commit", "shared", "--next", h)
    for b in ("b1", "b2"):
        u.ok("branch", "create", b)
    reported = {"main": [], "b1": [], "b2": []}
    errors = []

    def writer(branch, n):
        for i in range(n):
            h = u.ok("put", "-", input=("%s %d" % (branch, i)).encode()).strip()
            p = run(u, "commit", "shared", "--next", h, "--branch", branch)
            if p.returncode != 0:
                errors.append((branch, p.returncode, p.stderr))
                return
            reported[branch].append(int(p.stdout))

    merges = {"ok": 0, "moved": 0}

    def merger(n):
        for _ in range(n):
            p = run(u, "merge", "b1", "--into", "b2", "--strategy", "theirs")
            if p.returncode == 0:
                merges["ok"] += 1
            elif p.returncode == 3 and b"moved while merging" in p.stderr:
                merges["moved"] += 1
            else:
                errors.append(("merge", p.returncode, p.stderr))
                return

    threads = [threading.Thread(target=writer, args=(b, 12)) for b in ("main", "b1", "b2")]
    threads.append(threading.Thread(target=merger, args=(8,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert merges["ok"] > 0
    f = u.fsck()
    assert f.returncode == 0, f.stdout + f.stderr
    allv = reported["main"] + reported["b1"] + reported["b2"]
    assert len(set(allv)) == len(allv)  # one number, one version
    for b in ("main", "b1"):
        # a branch nobody merges into: exactly its own commits after the seed
        vs = json.loads(u.ok("versions", "shared", "--branch", b, "--json"))
        assert vs == [1] + reported[b], (b, vs, reported[b])
    # b2 got b1's versions by merges: its history holds only versions of the two
    vs = json.loads(u.ok("versions", "shared", "--branch", "b2", "--json"))
    assert vs == sorted(vs) and set(vs) <= {1} | set(reported["b1"]) | set(reported["b2"]), vs


def test_two_mergers_into_one_target(tmp_path):
    u = Udr(tmp_path / "s")
    u.ok("init")
    h = u.ok("put", "-", input=b"seed").strip()
    u.ok("commit", "base", "--next", h)
    for r in range(6):
        for b in ("x", "y"):
            u.ok("branch", "create", "%s%d" % (b, r))
            h = u.ok("put", "-", input=("%s%d" % (b, r)).encode()).strip()
            u.ok("commit", "%s%d" % (b, r), "--next", h, "--branch", "%s%d" % (b, r))
    outcomes = []

    def merge(src):
        p = run(u, "merge", src)
        outcomes.append((src, p.returncode, p.stderr))

    refused = 0
    for r in range(6):
        ts = [threading.Thread(target=merge, args=("%s%d" % (b, r),)) for b in ("x", "y")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for src, code, err in outcomes:
        assert code in (0, 3), (src, code, err)
        if code == 3:
            assert b"moved while merging" in err, err
            refused += 1
            u.ok("merge", src)  # a retry lands
    tables = u.ok("tables").split()
    assert tables == sorted(["base"] + ["%s%d" % (b, r) for r in range(6) for b in ("x", "y")])
    f = u.fsck()
    assert f.returncode == 0, f.stdout + f.stderr
    print("refused and retried: %d of %d" % (refused, len(outcomes)))
