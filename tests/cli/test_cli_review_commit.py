"""Review of the commit path of f9bb077 (version file and record made before
the writer lock as unnamed O_TMPFILE files, named with link_fd) and dcd2d3c
(readers' head fast path).  The power-cut defect of format 1 is pinned by
tests/unit/test_powercut.c (test_powercut_every_step_format1): only the
simulated disk drops what no sync covered.  Here: a format-1 catalog
killed at each step of a commit (orphans of the unnamed files replaced by
the next writer), and the readers' answer on a log with a gap past HEAD."""
import json
import os

import pytest

from conftest import FAULT_INJECTION, rec, commit_n

def to_format1(udr):
    cat = udr.root / "catalog"
    (cat / "config.json").write_text('{"format":1,"kind":"udr-catalog"}\n')
    for name in ("inflight", "sync"):
        (cat / name).unlink()


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs -DUDR_FAULT_INJECTION=ON")
@pytest.mark.parametrize("fmt", [1, 2])
@pytest.mark.parametrize("op", ["link", "write", "syncfs", "open", "unlink"])
def test_commit_killed_at_each_step_then_next_commit(udr, fmt, op):
    """kill -9 at the k-th call of op in a commit (the unnamed files made
    before the lock, their bytes, their links, the orphan's unlink): the
    commits acknowledged before stay, the next commit replaces what the dead
    one left (an orphan version file of the same number) and fsck is clean."""
    hs = commit_n(udr, "t", 2)
    if fmt == 1:
        to_format1(udr)
    acked = 2
    for k in range(1, 8):
        h = udr.put(("killed %s %d\n" % (op, k)).encode())
        r = udr("commit", "t", "--next", h, env={"UDR_FAULT": "%s:%d:crash" % (op, k)})
        if r.code == 0:
            acked += 1
        else:
            assert r.code < 0 or r.code == 137, r  # killed, nothing else
        # whatever the dead writer left: the next commit goes through
        h2 = udr.put(("after %s %d\n" % (op, k)).encode())
        n = int(udr.ok("commit", "t", "--next", h2).out.strip())
        vers = udr.ok("versions", "t").out.split()
        assert vers == [str(i) for i in range(1, len(vers) + 1)], vers
        assert len(vers) >= acked + 1
        acked = len(vers)
        got = json.loads(udr.ok("show", "t").out)
        assert got["version"] == acked and got["commit"] == n, got
        udr.ok("get", hs[0])
    r = udr("fsck")
    assert r.code == 0, r


def test_gap_past_head_readers_are_told(udr):
    """HEAD 4, record 5 missing, record 6 (acknowledged) present: no crash
    leaves this (FORMAT.md), only damage.  A reader asking for the latest of
    t must not get version 4 with success, an older state than the user was
    told was committed (the readers' fast path of dcd2d3c did): it is told
    of the gap, as writers and fsck are."""
    commit_n(udr, "t", 6)
    (udr.root / "catalog" / "HEAD").write_text("4\n")
    os.unlink(rec(udr, 5))
    r = udr("show", "t")
    assert r.code == 4 and "gap" in r.stderr, r
