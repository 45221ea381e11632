"""Corruption sweep and deletion over what branches add (docs/FORMAT.md
"Branches, tags and the reflog"): the global checkpoint refs/<seq>.json, a
branch's records (its create record, a commit on it, a merge record) and
the snapshot checkpoint a branch's head reads, each under every damage of
the main sweep (test_sweep.py), read through every path that reads refs.

The rule is the sweep's: a read gives exactly the pristine output, or fails
with an integrity error (exit 4); never exit 0 with other output.  After
`udr fsck` the same, and a derived file (a checkpoint) is rebuilt: every
read gives the pristine output again.  fsck reports every damage (exit 4)
except damage that leaves the file's bytes as they were.
"""
import os
import shutil

import pytest

from conftest import SANITIZE, Udr
from test_sweep import DAMAGES, damage

READS = {
    "show_dev": ["show", "t", "--branch", "dev"],
    "show_main": ["show", "t"],
    "versions_dev": ["versions", "t", "--branch", "dev"],
    "tables_dev": ["tables", "--branch", "dev"],
    "branches": ["branch", "--json"],
    "tags": ["tag", "--json"],
    "reflog_dev": ["reflog", "dev", "--json"],
    "diff": ["diff", "main", "dev", "--json"],
    "merge_dry": ["merge", "dev", "--dry-run", "--json"],
    "show_tag": ["show", "t", "--branch", "tag:rel"],
}
DERIVED = {"global-checkpoint", "snapshot-checkpoint"}
KINDS = ["global-checkpoint", "snapshot-checkpoint", "record-create", "record-branch", "record-merge"]


def damages_of(kind):
    # the suite sweeps a sample of the damages; `make torture` all of them
    out = (list(DAMAGES) if os.environ.get("UDR_TORTURE_ROUNDS") else ["bit-mid", "delete", "replace"] if SANITIZE
           else ["bit-mid", "trunc-half", "delete", "replace"])
    if kind in DERIVED:
        out.remove("replace")  # one valid content per name: nothing to swap in
    return out


CASES = [(k, d) for k in KINDS for d in damages_of(k)]


class Store:
    def __init__(self, base):
        self.root = os.path.join(base, "pristine")
        u = Udr(self.root)
        u.ok("init")
        put = lambda b: u.ok("put", "-", input=b).strip()  # noqa: E731
        u.ok("commit", "t", "--next", put(b"t1"))
        u.ok("commit", "s", "--next", put(b"s1"))
        u.ok("branch", "create", "dev")
        self.create_rec = 3
        u.ok("commit", "t", "--next", put(b"t dev"), "--branch", "dev")
        self.branch_rec = 4
        u.ok("commit", "s", "--next", put(b"s main"))
        u.ok("merge", "dev", "-m", "merge")
        self.merge_rec = 6
        u.ok("commit", "u", "--next", put(b"u dev"), "--branch", "dev")
        u.ok("tag", "create", "rel", "dev")
        # past 64 records: a global checkpoint holds dev and the tag, which
        # later windows do not; dev's head reads a snapshot checkpoint
        for i in range(66):
            u.ok("commit", "m", "--next", put(b"m%d" % i))
        cat = os.path.join(self.root, "catalog")
        refs = sorted(os.listdir(os.path.join(cat, "refs")))
        assert len(refs) >= 2, refs
        states = sorted(os.listdir(os.path.join(cat, "state")))
        self.files = {
            "global-checkpoint": (os.path.join(cat, "refs", refs[-1]), None),
            "snapshot-checkpoint": (os.path.join(cat, "state", states[-1]), None),
            "record-create": (self.rec(self.create_rec), self.rec(self.create_rec - 1)),
            "record-branch": (self.rec(self.branch_rec), self.rec(self.branch_rec + 1)),
            "record-merge": (self.rec(self.merge_rec), self.rec(self.merge_rec - 1)),
        }
        self.ref = {k: u.run(*a) for k, a in READS.items()}
        for k, p in self.ref.items():
            assert p.returncode == 0, (k, p.stderr)
        assert u.fsck().returncode == 0
        self.results = {}

    def rec(self, seq):
        return os.path.join(self.root, "catalog", "log", "%020d.json" % seq)

    def case(self, base, kind, how):
        if (kind, how) in self.results:
            return self.results[(kind, how)]
        root = os.path.join(base, "case")
        if os.path.exists(root):
            shutil.rmtree(root)
        shutil.copytree(self.root, root, symlinks=True)
        path, repl = self.files[kind]
        rel = os.path.relpath(path, self.root)
        damage(os.path.join(root, rel), how, repl and os.path.join(root, os.path.relpath(repl, self.root)))
        u = Udr(root)
        r = {"before": {k: u.run(*a) for k, a in READS.items()}}
        r["fsck"] = u.fsck()
        r["after"] = {k: u.run(*a) for k, a in READS.items()}
        shutil.rmtree(root)
        self.results[(kind, how)] = r
        return r


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("branch_sweep"))
    s = Store(base)
    s.base = base
    return s


def same(p, ref):
    return p.returncode == ref.returncode and p.stdout == ref.stdout


@pytest.mark.parametrize("kind,how", CASES)
def test_branch_damage(store, kind, how):
    r = store.case(store.base, kind, how)
    for phase in ("before", "after"):
        for k, p in r[phase].items():
            ok = same(p, store.ref[k]) or p.returncode == 4
            assert ok, "%s %s %s %s: exit %d\n%s\n%s" % (kind, how, phase, k, p.returncode, p.stdout[-500:],
                                                        p.stderr[-500:])
            if phase == "after" and kind in DERIVED:
                assert same(p, store.ref[k]), "%s %s: %s not rebuilt by fsck: %s" % (kind, how, k, p.stderr)
    f = r["fsck"]
    assert f.returncode == 4, "%s %s: fsck exit %d\n%s%s" % (kind, how, f.returncode, f.stdout, f.stderr)
