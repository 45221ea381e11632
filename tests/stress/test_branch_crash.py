"""Crashes and I/O errors during branch create, reset, delete, tag, merge,
cherry-pick, revert and a commit on a branch (UDR_FAULT=<op>:<n>:crash|eio at every call of each I/O
operation until the command runs past it): all or nothing, fsck clean, and
main's tables never touched by what failed.  The suite runs the operations
that publish (link, rename, syncfs, write, open); `make torture` with
UDR_TORTURE_ROUNDS set runs every operation of the I/O table.
"""
import json
import os
import shutil
import signal

import pytest

from conftest import FAULT_INJECTION, SANITIZE, Udr

needs_fi = pytest.mark.skipif(not FAULT_INJECTION, reason="library built without UDR_FAULT_INJECTION")
ALL_OPS = ["open", "write", "fsync", "syncfs", "link", "rename", "unlink", "mkdir"]
TORTURE = bool(os.environ.get("UDR_TORTURE_ROUNDS"))
CASES = ([(op, a) for op in ALL_OPS for a in ("crash", "eio")] if TORTURE else
         [("link", "crash"), ("syncfs", "crash")] if SANITIZE else
         [(op, "crash") for op in ("syncfs", "link", "rename")] + [("link", "eio")])
NMAX = 120


def outcome_of(p, action, ctx):
    if p.returncode == -signal.SIGKILL:
        assert action == "crash", ctx
        return "crash"
    if p.returncode == 0:
        return "ok"
    err = p.stderr.decode(errors="replace")
    assert action == "eio" and p.returncode == 5, "%s: exit %d\n%s" % (ctx, p.returncode, err)
    return "failed"


def branches(u):
    return {b["name"]: b["commit"] for b in json.loads(u.ok("branch", "--json"))}


def version_on(u, table, ref):
    p = u.run("show", table, "--branch", ref)
    if p.returncode == 1:
        return 0
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["version"]


def template(tmp_path):
    u = Udr(tmp_path / "template")
    u.ok("init")
    h = u.ok("put", "-", input=b"one").strip()
    u.ok("commit", "t", "--next", h)
    u.ok("branch", "create", "dev")
    h = u.ok("put", "-", input=b"dev").strip()
    u.ok("commit", "t", "--next", h, "--branch", "dev")
    h = u.ok("put", "-", input=b"main side").strip()
    u.ok("commit", "m", "--next", h)
    return u


def fresh(tmp_path, tpl, n):
    shutil.copytree(tpl.root, str(tmp_path / ("s%d" % n)), symlinks=True)
    return Udr(tmp_path / ("s%d" % n))


@needs_fi
@pytest.mark.parametrize("op,action", CASES)
@pytest.mark.parametrize("kind", ["create", "reset", "merge", "commit", "tag", "cherry-pick"] +
                         (["revert"] if TORTURE else []))  # revert: cherry-pick's code path
def test_fault_branch_ops(tmp_path, kind, op, action):
    streak = 0
    tpl = template(tmp_path)
    before = branches(tpl)
    main_t, main_m, dev_t = version_on(tpl, "t", "main"), version_on(tpl, "m", "main"), version_on(tpl, "t", "dev")
    for n in range(1, NMAX + 1):
        ctx = "%s %s:%d:%s" % (kind, op, n, action)
        u = fresh(tmp_path, tpl, n)
        if kind == "create":
            args = ["branch", "create", "new", "--from", "dev"]
        elif kind == "reset":
            args = ["branch", "reset", "dev", "--to", "main"]
        elif kind == "merge":
            args = ["merge", "dev"]
        elif kind == "cherry-pick":
            args = ["cherry-pick", "dev"]
        elif kind == "revert":
            args = ["revert", "dev", "--branch", "dev"]
        elif kind == "commit":
            h = u.ok("put", "-", input=b"more %d" % n).strip()
            args = ["commit", "t", "--next", h, "--branch", "dev"]
        else:
            args = ["tag", "create", "v1", "dev"]
        p = u.run(*args, env_extra={"UDR_FAULT": "%s:%d:%s" % (op, n, action)})
        outcome = outcome_of(p, action, ctx)
        f = u.fsck()
        assert f.returncode == 0, "%s: fsck exit %d\n%s%s" % (ctx, f.returncode, f.stdout.decode(),
                                                               f.stderr.decode())
        after = branches(u) if kind == "create" else None
        # main's tables: only a merge may change them, and only to dev's
        if kind in ("merge", "reset"):
            assert version_on(u, "m", "main") == main_m, ctx
        if kind == "merge":
            assert version_on(u, "t", "main") in (main_t, dev_t), ctx
            done = version_on(u, "t", "main") == dev_t
        elif kind == "cherry-pick":
            # one new version with dev's content, or nothing
            assert version_on(u, "t", "main") in (main_t, dev_t + 1), ctx
            assert version_on(u, "m", "main") == main_m and version_on(u, "t", "dev") == dev_t, ctx
            done = version_on(u, "t", "main") == dev_t + 1
            if done:
                assert json.loads(u.ok("show", "t"))["chunks"] == json.loads(u.ok("show", "t", "--branch", "dev"))[
                    "chunks"], ctx
        elif kind == "revert":
            assert version_on(u, "t", "dev") in (dev_t, dev_t + 1), ctx
            assert version_on(u, "t", "main") == main_t and version_on(u, "m", "main") == main_m, ctx
            done = version_on(u, "t", "dev") == dev_t + 1
            if done:
                assert json.loads(u.ok("show", "t", "--branch", "dev"))["chunks"] == json.loads(u.ok("show", "t"))[
                    "chunks"], ctx
        elif kind != "tag":
            assert version_on(u, "t", "main") == main_t, ctx
        if kind == "create":
            done = "new" in after
            if done:
                assert after["new"] > before["dev"] and version_on(u, "t", "new") == dev_t, ctx
        elif kind == "reset":
            assert version_on(u, "t", "dev") in (dev_t, main_t), ctx
            done = version_on(u, "t", "dev") == main_t
        elif kind == "commit":
            assert version_on(u, "t", "dev") in (dev_t, dev_t + 1), ctx
            done = version_on(u, "t", "dev") == dev_t + 1
        elif kind == "tag":
            tags = {b["name"]: b["commit"] for b in json.loads(u.ok("tag", "--json"))}
            done = "v1" in tags
            if done:
                assert tags["v1"] == before["dev"], ctx
        if outcome == "ok":
            assert done, ctx
        # a retry on a healthy disk completes it (or finds it done)
        if not done:
            u.ok(*args)
        if outcome == "ok":
            streak += 1
            if action == "crash" or streak >= 2:
                return
        else:
            streak = 0
    pytest.fail("%s never ran past the fault at n=%d" % (kind, NMAX))
