"""udr retention expire --dry-run: the retention plan of docs/GC.md 1.2 and 1.3
end to end (chains per branch, heads/tags/latest always kept, keep_within's
boundary at the millisecond with UDR_GC_NOW), and bad input refused with
exit 2 (or 1 for an unknown table or branch) and nothing written.

udr retention expire (no --dry-run): the expire record of GC.md 1.4, its
expired-set checkpoints and global-state entries, format 4, and the checks
under the writer lock (a ref record linked after the plan's head keeps what
it names).  Reading expired versions (exit 6) and undo/restore are not built
yet (GC.md 1, "Built:").
"""
import json
import os
import random
import subprocess
import time


def b3(data):
    """BLAKE3 of bytes, by b3sum (a cross-implementation check)."""
    out = subprocess.run(["b3sum", "--no-names", "-"], input=data, check=True, capture_output=True).stdout
    return out.decode().strip()

import pytest

from conftest import FAULT_INJECTION, commit_n, rec, table_rows, tree_snapshot, vfile


def plan(udr, *args, now=None):
    env = {"UDR_GC_NOW": str(now)} if now is not None else None
    r = udr.ok("retention", "expire", "--dry-run", "--json", *args, env=env)
    return json.loads(r.out)


def record_ms(udr, seq):
    return json.loads(rec(udr, seq).read_text())["time_ms"]


def test_keep_last_on_main(udr):
    commit_n(udr, "t", 5)
    commit_n(udr, "u", 1)
    p = plan(udr, "--keep-last", "2")
    assert p["dry_run"] is True and p["rule"] == "keep_last=2" and p["at"] == 6
    assert p["expired"] == {"versions": 3, "tables": {"t": 3}, "ranges": {"t": [[1, 3]]}}
    by = p["kept"]["by_reason"]
    assert p["kept"]["versions"] == 3
    assert (by["head"], by["policy"], by["tag"]) == (2, 1, 0)
    # K = 1 keeps only the heads; K beyond the history keeps everything.
    assert plan(udr, "--keep-last", "1")["expired"]["ranges"] == {"t": [[1, 4]]}
    assert plan(udr, "--keep-last", "1000")["expired"]["versions"] == 0
    # One table only.
    p = plan(udr, "--keep-last", "1", "--table", "u")
    assert p["table"] == "u" and p["expired"]["versions"] == 0 and p["kept"]["versions"] == 1


def test_heads_tags_and_branches_keep(udr):
    commit_n(udr, "t", 5)                               # commits 1-5: t@1..5
    udr.ok("tag", "create", "v2", "commit:2")           # t@2
    udr.ok("branch", "create", "dev", "--from", "commit:3")  # dev's head: t@3
    p = plan(udr, "--keep-last", "1")
    # main keeps 5, dev 3 (its head), the tag 2: 1 and 4 expire, not adjacent.
    assert p["expired"]["ranges"] == {"t": [[1, 1], [4, 4]]}
    by = p["kept"]["by_reason"]
    assert (by["head"], by["tag"], by["policy"]) == (2, 1, 0)
    # dev's chain (3, 2, 1) with keep_last 2 keeps 2 as well; main's keeps 5, 4.
    assert plan(udr, "--keep-last", "2")["expired"]["ranges"] == {"t": [[1, 1]]}
    # The rule on dev only: main's chain is all kept.
    p = plan(udr, "--keep-last", "1", "--branch", "dev")
    assert p["branch"] == "dev" and p["expired"]["versions"] == 0
    assert p["kept"]["by_reason"]["other_branch"] == 2
    # The rule on main only: 1 is on dev's chain, so kept.
    assert plan(udr, "--keep-last", "1", "--branch", "main")["expired"]["ranges"] == {"t": [[4, 4]]}
    # A commit on dev: its new head is the table's latest; the old dev head 3
    # stays as the snapshot of main's and dev's merge base (commit 3).
    h = udr.put(b"dev change\n")
    udr.ok("commit", "t", "--next", h, "--branch", "dev")
    p = plan(udr, "--keep-last", "1")
    assert p["expired"]["ranges"] == {"t": [[1, 1], [4, 4]]}
    by = p["kept"]["by_reason"]
    assert (by["head"], by["tag"], by["merge_base"]) == (2, 1, 1)


def test_merge_base_kept(udr):
    commit_n(udr, "t", 2, "a")                               # t@1, t@2 (commits 1-2)
    udr.ok("branch", "create", "dev", "--from", "commit:2")  # commit 3
    commit_n(udr, "t", 2, "b")                               # main: t@3, t@4
    for i in range(2):                                       # dev: t@5, t@6
        h = udr.put(b"dev %d\n" % i)
        udr.ok("commit", "t", "--next", h, "--branch", "dev")
    p = plan(udr, "--keep-last", "1")
    # t@2, in the snapshot of main's and dev's merge base (commit 2), stays.
    assert p["expired"]["ranges"] == {"t": [[1, 1], [3, 3], [5, 5]]}
    by = p["kept"]["by_reason"]
    assert (by["head"], by["merge_base"], by["policy"]) == (2, 1, 0)
    # Once dev is deleted, no merge base: 2 goes too; dev's versions are
    # orphans (on no live chain, their commits in no live ref's history):
    # keep_last cannot keep them, t@6 stays as the table's latest.
    udr.ok("branch", "delete", "dev")
    p = plan(udr, "--keep-last", "1")
    assert p["expired"]["ranges"] == {"t": [[1, 3], [5, 5]]}
    assert (p["kept"]["by_reason"]["orphan"], p["kept"]["by_reason"]["latest"]) == (0, 1)


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_NOW needs a test build")
def test_orphan_rule(udr):
    """GC.md 1.2: versions no live branch's chain reaches and whose commits
    no live ref's history holds (a deleted branch, commits a reset moved
    away from) expire unless keep_within keeps them, counted from the
    delete or reset; a version a merge took from the other side (off the
    chain, in the history) stays; a tag keeps its snapshot's."""
    commit_n(udr, "t", 2, "a")                               # t@1, t@2 (commits 1-2)
    udr.ok("branch", "create", "dev", "--from", "commit:2")  # commit 3
    for i in range(2):                                       # dev: t@3, t@4 (commits 4-5)
        h = udr.put(b"dev %d\n" % i)
        udr.ok("commit", "t", "--next", h, "--branch", "dev")
    udr.ok("branch", "create", "x", "--from", "commit:5")    # commit 6
    udr.ok("tag", "create", "keep3", "commit:4")             # commit 7
    commit_n(udr, "t", 1, "b")                               # main: t@5 (commit 8)
    udr.ok("branch", "delete", "dev")                        # x still holds dev's history
    udr.ok("branch", "delete", "x")
    deleted = record_ms(udr, json.loads(udr.ok("log", "--json", "--limit", "1").out)[0]["seq"])
    p = plan(udr, "--keep-last", "1")
    # t@3: the tag's; t@4: an orphan; t@1, t@2 on main's chain beyond K
    assert p["expired"]["ranges"] == {"t": [[1, 2], [4, 4]]}, p
    by = p["kept"]["by_reason"]
    assert (by["tag"], by["orphan"], by["head"]) == (1, 0, 1), by
    # keep_within counts from the delete: kept just inside, expired after
    p = plan(udr, "--keep-within", "1h", now=deleted + 3600 * 1000)
    assert 4 not in [v for a, b in p["expired"]["ranges"].get("t", []) for v in range(a, b + 1)], p
    assert p["kept"]["by_reason"]["orphan"] == 1
    p = plan(udr, "--keep-within", "1h", now=deleted + 3600 * 1000 + 1)
    assert 4 in [v for a, b in p["expired"]["ranges"].get("t", []) for v in range(a, b + 1)], p
    # a plan restricted to a branch keeps orphans
    p = plan(udr, "--keep-last", "1", "--branch", "main")
    assert 4 not in [v for a, b in p["expired"]["ranges"].get("t", []) for v in range(a, b + 1)], p
    # a reset moves main away from t@5 (commit 8): it is an orphan now
    udr.ok("branch", "reset", "main", "--to", "commit:2")
    commit_n(udr, "t", 1, "c")                               # main: t@6
    p = plan(udr, "--keep-last", "1")
    assert 5 in [v for a, b in p["expired"]["ranges"]["t"] for v in range(a, b + 1)], p
    # the expire step takes it: read as expired, fsck clean
    expire(udr, "--keep-last", "1")
    r = udr("show", "t", "5")
    assert r.code == 6, r
    udr.ok("show", "t", "6")
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
def test_merge_taking_theirs_keeps_the_replaced_version(udr):
    """main's own version of t that a merge replaced with dev's is on no
    chain but in main's history (time travel reads it): kept."""
    commit_n(udr, "t", 2, "a")                               # t@1, t@2
    udr.ok("branch", "create", "dev", "--from", "commit:2")
    h = udr.put(b"dev\n")
    udr.ok("commit", "t", "--next", h, "--branch", "dev")    # dev: t@3
    commit_n(udr, "t", 1, "m")                               # main: t@4
    r = udr("merge", "dev", "--strategy", "theirs")
    if r.code != 0:
        pytest.skip("merge --strategy theirs: %s" % r.stderr)
    udr.ok("branch", "delete", "dev")
    p = plan(udr, "--keep-last", "1")
    expired = [v for a, b in p["expired"]["ranges"].get("t", []) for v in range(a, b + 1)]
    assert 4 not in expired, p


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_NOW needs a test build")
def test_keep_within_boundary_ms(udr):
    commit_n(udr, "t", 3)
    t2, t3 = record_ms(udr, 2), record_ms(udr, 3)
    # t@2 was current over [t2, t3): kept while t3 >= now - D (D = 1s).
    p = plan(udr, "--keep-within", "1s", now=t3 + 1000)
    assert 2 not in [v for a, b in p["expired"]["ranges"].get("t", []) for v in range(a, b + 1)]
    p = plan(udr, "--keep-within", "1s", now=t3 + 1001)
    assert [2] == [v for a, b in p["expired"]["ranges"]["t"] for v in range(a, b + 1) if v == 2]
    # t@1 at the same instants: its successor came at t2 <= t3.
    p = plan(udr, "--keep-within", "1s", now=t2 + 1000)
    assert p["expired"]["versions"] == 0
    p = plan(udr, "--keep-within", "1s", now=t2 + 1001)
    assert p["expired"]["ranges"] == {"t": [[1, 1]]}
    # ISO time accepted; a now before the head's time counts as the head's.
    p = plan(udr, "--keep-within", "0s", now=1000)
    assert p["now_ms"] == t3
    p = plan(udr, "--keep-within", "1y", now="2100-01-01T00:00:00Z")
    assert p["now"].startswith("2100-01-01T00:00:00") and p["expired"]["ranges"] == {"t": [[1, 2]]}


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_NOW needs a test build")
def test_buckets_empty_periods_do_not_count(udr):
    commit_n(udr, "t", 3)  # all in the same hour or two: one or two periods
    # keep_yearly 1: the newest of this year; the head anyway.
    p = plan(udr, "--keep-yearly", "1", now="2100-01-01T00:00:00Z")
    assert p["expired"]["ranges"] == {"t": [[1, 2]]}
    # 100 years later, still the last version of the only year that has one.
    p = plan(udr, "--keep-yearly", "2", now="2100-01-01T00:00:00Z")
    assert p["expired"]["ranges"] == {"t": [[1, 2]]}


@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_damaged_version_file_is_not_a_plan(udr, damage):
    # A chain that cannot be read is an integrity failure (exit 4), never a
    # plan that silently skips versions.
    commit_n(udr, "t", 5)
    f = vfile(udr, "t", 3)
    if damage == "flip":
        b = bytearray(f.read_bytes())
        b[20] ^= 1
        f.write_bytes(bytes(b))
    else:
        f.unlink()
    before = tree_snapshot(udr.root)
    r = udr("retention", "expire", "--dry-run", "--keep-last", "1")
    assert r.code == 4, r
    assert "00000000000000000003.json" in r.stderr and r.stdout == b""
    assert tree_snapshot(udr.root) == before


def test_dropped_table_keeps_its_marker(udr):
    commit_n(udr, "t", 3)
    r = udr("sql", "DROP TABLE t")
    if r.code != 0 and "query module" in r.stderr:
        pytest.skip("no query module")
    assert r.code == 0, r
    p = plan(udr, "--keep-last", "1")
    # t@4 is the drop marker: main's head and the latest; the data versions
    # are kept only by rules.
    assert p["expired"]["ranges"] == {"t": [[1, 3]]}
    assert p["kept"]["versions"] == 1


def test_text_output(udr):
    commit_n(udr, "t", 4)
    r = udr.ok("retention", "expire", "--dry-run", "--keep-last", "2")
    assert r.out.splitlines()[0].startswith("would expire 2 version(s) of 1 table(s) (keep_last=2; now ")
    assert "  t: 1-2" in r.out
    assert "keeps 2 version(s): policy 1 head 1" in r.out


@pytest.mark.parametrize("args,code,msg", [
    (["--keep-last", "0"], 2, "at least 1"),
    (["--keep-daily", "0"], 2, "at least 1"),
    (["--keep-hourly", "-1"], 2, "invalid --keep-hourly"),
    (["--keep-weekly", "4294967296"], 2, "at most"),
    (["--keep-last", "18446744073709551616"], 2, "at most"),
    (["--keep-within", "5m"], 2, "ambiguous"),
    (["--keep-within", "1mo"], 2, "unknown unit"),
    (["--keep-within", ""], 2, "empty"),
    (["--keep-within", "1d1d"], 2, "out of order"),
    (["--keep-within", "3"], 2, "needs a unit"),
    (["--keep-last", "1", "--table", "nope"], 1, "table 'nope' not found"),
    (["--keep-last", "1", "--table", "bad/../name"], 2, ""),
    (["--keep-last", "1", "--branch", "nope"], 1, "branch 'nope' not found"),
    (["--keep-last", "1", "--branch", "-x"], 2, ""),
])
def test_bad_input_writes_nothing(udr, args, code, msg):
    commit_n(udr, "t", 3)
    before = tree_snapshot(udr.root)
    r = udr("retention", "expire", "--dry-run", *args)
    assert r.code == code, r
    assert msg in r.stderr
    assert r.stdout == b""
    assert tree_snapshot(udr.root) == before


def test_refused_named_versions_and_branch_without_dry_run(udr):
    commit_n(udr, "t", 3)
    before = tree_snapshot(udr.root)
    r = udr("retention", "expire", "--keep-last", "1", "--branch", "main")
    assert r.code == 2 and "only built with --dry-run" in r.stderr
    r = udr("retention", "expire", "t@1", "--dry-run", "--keep-last", "1")
    assert r.code == 2 and "not built yet" in r.stderr
    r = udr("retention", "undo")
    assert r.code == 1 and "no expire record to undo" in r.stderr
    r = udr("retention", "forget")
    assert r.code == 2 and "unknown subcommand" in r.stderr
    r = udr("retention")
    assert r.code == 2
    assert tree_snapshot(udr.root) == before


def test_dry_run_writes_nothing_and_empty_store(udr):
    before = tree_snapshot(udr.root)
    p = plan(udr, "--keep-last", "1")
    assert p["expired"]["versions"] == 0 and p["kept"]["versions"] == 0 and p["at"] == 0
    commit_n(udr, "t", 3)
    before = tree_snapshot(udr.root)
    plan(udr, "--keep-last", "1", "--keep-within", "1y2w3d4h5min6s", "--keep-daily", "1")
    assert tree_snapshot(udr.root) == before


def test_exit_status_6_documented(run):
    r = run("--help")
    assert "6 the version expired by retention" in r.out


# ---- the expire record (GC.md 1.4) ------------------------------------------


def expire(udr, *args, env=None):
    r = udr.ok("retention", "expire", "--json", *args, env=env)
    return json.loads(r.out)


def record(udr, seq):
    return json.loads(rec(udr, seq).read_text())


def xset_path(udr, table, seq):
    return udr.root / "catalog" / "expired" / table / ("%020d.json" % seq)


def test_expire_writes_one_sealed_record(udr):
    commit_n(udr, "t", 5)                               # commits 1-5: t@1..5
    commit_n(udr, "u", 1)                               # commit 6
    udr.ok("tag", "create", "v2", "commit:2")           # commit 7: t@2
    tables_before = tree_snapshot(udr.root / "catalog" / "tables")
    rep = expire(udr, "--keep-last", "1")
    assert rep["dry_run"] is False
    assert rep["expired"] == {"records": [8], "versions": 3, "tables": {"t": 3},
                              "ranges": {"t": [[1, 1], [3, 4]]}}
    r = record(udr, 8)
    assert r["op"] == "expire" and r["parent"] == 7 and r["branch"] == "" and r["changes"] == []
    assert "ref" not in r and "ref_prev" not in r
    assert r["message"] == "retention: keep_last=1"
    x = r["expire"]
    assert x == {"at": 7, "policy": 0, "rule": "keep_last=1", "versions": 3,
                 "tables": {"t": {"add": [[1, 1], [3, 4]], "prev": 0, "state": x["tables"]["t"]["state"]}}}
    # the checkpoint: sealed, its digest in the record, each range with the
    # record and time that expired it
    raw = xset_path(udr, "t", 8).read_bytes()
    assert b3(raw) == x["tables"]["t"]["state"]
    cp = json.loads(raw)
    assert cp["format"] == 1 and cp["table"] == "t" and cp["seq"] == 8
    assert cp["ranges"] == [[1, 1, 8, r["time_ms"]], [3, 4, 8, r["time_ms"]]]
    assert r["gwindow"]["@expired:t"] == [8, 8] and r["gwindow"]["@expire"] == [8, 8]
    # format 4; version files and the data are untouched
    cfg = json.loads((udr.root / "catalog" / "config.json").read_text())
    assert cfg["format"] == 4
    assert tree_snapshot(udr.root / "catalog" / "tables") == tables_before
    udr.ok("fsck")
    # the plan now counts them as expired already; nothing left to expire
    p = plan(udr, "--keep-last", "1")
    assert p["expired"]["versions"] == 0 and p["already_expired"] == 3
    before = tree_snapshot(udr.root)
    rep = expire(udr, "--keep-last", "1")
    assert rep["expired"]["records"] == [] and rep["expired"]["versions"] == 0
    assert tree_snapshot(udr.root) == before


def test_second_expire_chains_prev_and_merges_set(udr):
    commit_n(udr, "t", 6)
    expire(udr, "--keep-last", "4")                     # t@1, t@2 (commit 7)
    commit_n(udr, "t", 1, "y")                          # commit 8: t@7
    rep = expire(udr, "--keep-last", "2")               # t@3, t@4, t@5 (commit 9)
    assert rep["expired"]["ranges"] == {"t": [[3, 5]]}
    x = record(udr, 9)["expire"]["tables"]["t"]
    assert x["prev"] == 7 and x["add"] == [[3, 5]]
    cp = json.loads(xset_path(udr, "t", 9).read_bytes())
    t7, t9 = record(udr, 7)["time_ms"], record(udr, 9)["time_ms"]
    assert cp["ranges"] == [[1, 2, 7, t7], [3, 5, 9, t9]]
    udr.ok("fsck")


def test_missing_or_damaged_checkpoint_is_rebuilt(udr):
    commit_n(udr, "t", 6)
    expire(udr, "--keep-last", "4")
    commit_n(udr, "t", 1, "y")
    expire(udr, "--keep-last", "2")
    good = xset_path(udr, "t", 9).read_bytes()
    xset_path(udr, "t", 9).unlink()
    xset_path(udr, "t", 7).write_bytes(b"garbage")
    # the plan reads the set: rebuilt from the log, checked, rewritten
    assert plan(udr, "--keep-last", "2")["already_expired"] == 5
    assert xset_path(udr, "t", 9).read_bytes() == good
    # a record whose digest the log does not produce is damage (exit 4)
    r = record(udr, 9)
    xset_path(udr, "t", 9).write_bytes(good.replace(b"[3,5,9", b"[3,4,9"))
    res = udr("retention", "expire", "--dry-run", "--keep-last", "2")
    assert res.code == 0  # rebuilt from the log: the digest matches again
    assert xset_path(udr, "t", 9).read_bytes() == good
    assert r["expire"]["tables"]["t"]["state"] == b3(good)


def test_heads_tags_latest_never_expired(udr):
    commit_n(udr, "t", 4)                                    # t@1..4
    udr.ok("branch", "create", "dev", "--from", "commit:2")  # commit 5: dev at t@2
    udr.ok("tag", "create", "v1", "commit:1")                # commit 6: t@1
    rep = expire(udr, "--keep-last", "1")
    assert rep["expired"]["ranges"] == {"t": [[3, 3]]}
    # keep_last=1 on every chain, again: nothing left (head 4, dev 2, tag 1)
    assert expire(udr, "--keep-last", "1")["expired"]["records"] == []
    udr.ok("fsck")


def start(udr, *args, pause=None):
    from conftest import base_env, UDR_BIN
    env = base_env({"UDR_PAUSE": "%s:%s" % pause} if pause else None)
    return subprocess.Popen([UDR_BIN, "--store", str(udr.root), *map(str, args)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path, proc, timeout=30):
    t = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < t, "%s never appeared" % path
        time.sleep(0.01)


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
def test_ref_records_after_the_plan_keep_what_they_name(udr, tmp_path):
    """The plan reads without the lock: a branch created, a tag made and a
    branch reset after it (before the record is linked) keep their versions."""
    commit_n(udr, "t", 6)                                    # t@1..6, commits 1-6
    commit_n(udr, "u", 3)                                    # u@1..3, commits 7-9
    pdir = tmp_path / "pause"
    pdir.mkdir()
    p = start(udr, "retention", "expire", "--json", "--keep-last", "1", pause=("expire-planned", pdir))
    wait_for(pdir / "expire-planned.reached", p)
    udr.ok("branch", "create", "dev", "--from", "commit:2")  # t@2, u none
    udr.ok("tag", "create", "v4", "commit:4")                # t@4
    udr.ok("branch", "create", "tmp", "--from", "commit:8")  # t@6, u@2
    udr.ok("branch", "reset", "tmp", "--to", "commit:5")             # t@5: tmp's head now
    udr.ok("branch", "reset", "tmp", "--to", "commit:6")             # then away again
    (pdir / "expire-planned.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rep = json.loads(out)
    # t@2 (dev), t@4 (tag), t@5 (a reset named it), u@2 (tmp's create)
    assert rep["expired"]["ranges"] == {"t": [[1, 1], [3, 3]], "u": [[1, 1]]}
    seq = rep["expired"]["records"][0]
    assert record(udr, seq)["expire"]["at"] == 9
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
@pytest.mark.parametrize("dry", [True, False])
def test_commits_after_the_plan_read_head_are_not_damage(udr, tmp_path, dry):
    """The plan reads head, then the refs: commits (and a branch) linked in
    between must not read as a version beyond the table's allocated ones
    (it answered exit 4, "t@7 is beyond the table's highest allocated
    version 6", under concurrent commits: test_gc_concurrent)."""
    commit_n(udr, "t", 6)
    pdir = tmp_path / "pause"
    pdir.mkdir()
    args = ["retention", "expire", "--json", "--keep-last", "2"] + (["--dry-run"] if dry else [])
    p = start(udr, *args, pause=("plan-head", pdir))
    wait_for(pdir / "plan-head.reached", p)
    commit_n(udr, "t", 2, "late")                            # t@7, t@8 on main
    udr.ok("branch", "create", "dev")                        # names t@8
    (pdir / "plan-head.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rep = json.loads(out)
    # planned at commit 6: t@5, t@6 kept by the rule; t@7, t@8 were not there
    assert rep["at"] == 6, rep
    assert rep["expired"]["ranges"] == {"t": [[1, 4]]}, rep
    for v in (5, 6, 7, 8):
        udr.ok("show", "t", str(v))
    udr.ok("fsck")


def test_expire_on_a_never_branched_store_and_log(udr):
    commit_n(udr, "t", 3)
    cfg = json.loads((udr.root / "catalog" / "config.json").read_text())
    assert cfg["format"] == 2
    expire(udr, "--keep-last", "1")
    assert json.loads((udr.root / "catalog" / "config.json").read_text())["format"] == 4
    # commits go on after it, on main, and the log reads
    commit_n(udr, "t", 1, "z")
    assert record(udr, 5)["branch"] == "main" and record(udr, 5)["parent"] == 3  # main's, not the expire record
    udr.ok("log")
    udr.ok("fsck")


# ---- reading an expired version (GC.md 1.5) ----------------------------------


def imported(udr, tmp_path, n):
    """Table t with n versions (commits 1..n), version i holding row (i, 'r<i>')."""
    for i in range(1, n + 1):
        p = tmp_path / ("t%d.csv" % i)
        p.write_text("id,a\n%d,r%d\n" % (i, i))
        udr.ok("import", "t", str(p))


def test_every_read_path_exits_6(udr, tmp_path):
    imported(udr, tmp_path, 4)                          # t@1..4, commits 1-4
    expire(udr, "--keep-last", "2")                     # t@1, t@2 (commit 5)
    out = tmp_path / "out.csv"
    for args in (["show", "t", "2"], ["sql", "SELECT * FROM \"t@1\""], ["export", "t@2", str(out)],
                 ["export", "t@commit:2", str(out)],
                 ["diff-rows", "t", "1", "4", "--key", "id"], ["diff-rows", "t", "4", "2", "--key", "id"]):
        r = udr(*args)
        assert r.code == 6, (args, r)
        assert "expired by retention on " in r.stderr and "(commit 5, keep_last=2)" in r.stderr, r.stderr
        assert r.stdout == b"" or args[0] == "sql"
    assert not out.exists()
    # time travel resolves as before; the version it lands on is checked
    r = udr("sql", 'SELECT * FROM "t@2026-01-01"')
    assert r.code == 1  # no version then: not found, as before
    iso = json.loads(rec(udr, 2).read_text())["time"]
    r = udr("sql", 'SELECT * FROM "t@%s"' % iso)
    assert r.code == 6 and "t at %s was version 2, which expired by retention" % iso in r.stderr, r.stderr
    # show --at says the same (and --branch with it)
    for args in (["--at", iso], ["--at", iso, "--branch", "main"]):
        s = udr("show", "t", *args)
        assert (s.code, s.stdout, s.stderr) == (6, b"", r.stderr), (args, s, r)
    # kept versions read as before
    assert table_rows(udr, "t@3") == [(3, "r3")]
    assert table_rows(udr, "t") == [(4, "r4")]
    udr.ok("show", "t", "3")
    udr.ok("export", "t@4", str(out))
    # metadata stays: log, versions
    udr.ok("versions", "t")
    assert "expire 2 versions of 1 table (keep_last=2)" in udr.ok("log").out
    assert "t: 1-2 expired" in udr.ok("log").out


def test_show_at_a_time_whose_version_expired_names_both(udr):
    """udr show --at TIME (with --branch too) landing on an expired version:
    exit 6 saying which version the time was (GC.md 1.5), before the sweep
    and after it; a time landing on a kept version, or a version number,
    reads as before."""
    commit_n(udr, "t", 4)                               # t@1..4, commits 1-4
    expire(udr, "--keep-last", "2")                     # t@1, t@2 (commit 5)
    iso = record(udr, 2)["time"]
    for args in (["--at", iso], ["--at", iso, "--branch", "main"]):
        r = udr("show", "t", *args)
        assert r.code == 6 and r.stdout == b"", (args, r)
        assert r.stderr.startswith("udr: t at %s was version 2, which expired by retention on " % iso), r.stderr
        assert "(commit 5, keep_last=2); its data is still stored: 'udr retention restore t@2'" in r.stderr, r.stderr
    assert json.loads(udr.ok("show", "t", "--at", record(udr, 3)["time"]).out)["version"] == 3
    r = udr("show", "t", "2")
    assert r.code == 6 and r.stderr.startswith("udr: t@2 expired by retention on "), r.stderr
    udr.ok("gc", "--grace", "0s")                       # the gc record (commit 6) sweeps t@1, t@2's data
    r = udr("show", "t", "--at", iso)
    assert r.code == 6 and r.stderr.startswith("udr: t at %s was version 2, which expired" % iso), r.stderr
    assert "its data was removed by gc on " in r.stderr and "(commit 6)" in r.stderr, r.stderr


def test_ref_ops_naming_expired_versions_refused(udr, tmp_path):
    imported(udr, tmp_path, 4)
    p = tmp_path / "u.csv"
    p.write_text("id,a\n1,u\n")
    udr.ok("import", "u", str(p))                       # commit 5: u@1
    expire(udr, "--keep-last", "2")                     # t@1, t@2 (commit 6)
    before = tree_snapshot(udr.root)
    for args in (["branch", "create", "dev", "--from", "commit:2"],
                 ["branch", "create", "dev", "--from", "commit:1"],
                 ["tag", "create", "v1", "commit:2"]):
        r = udr(*args)
        assert r.code == 6 and "expired by retention" in r.stderr, (args, r)
    assert tree_snapshot(udr.root) == before
    # a commit whose snapshot holds no expired version is fine
    udr.ok("branch", "create", "dev", "--from", "commit:3")
    r = udr("branch", "reset", "dev", "--to", "commit:2")
    assert r.code == 6
    udr.ok("branch", "reset", "dev", "--to", "commit:4")
    udr.ok("tag", "create", "v3", "commit:3")
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
def test_branch_create_racing_an_expire(udr, tmp_path):
    """An expire planned before a branch is created at a version it expires:
    whichever links first wins, and the other never leaves a head on an
    expired version."""
    imported(udr, tmp_path, 4)
    pdir = tmp_path / "pause"
    pdir.mkdir()
    # the expire plans first, the branch is created, then the expire links:
    # t@2, named by the new branch, is dropped from the record
    p = start(udr, "retention", "expire", "--json", "--keep-last", "1", pause=("expire-planned", pdir))
    wait_for(pdir / "expire-planned.reached", p)
    udr.ok("branch", "create", "dev", "--from", "commit:2")
    (pdir / "expire-planned.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["expired"]["ranges"] == {"t": [[1, 1], [3, 3]]}
    assert table_rows(udr, "t@dev") == [(2, "r2")]
    # the other order: the expire links first, the create is refused
    r = udr("branch", "create", "dev2", "--from", "commit:3")
    assert r.code == 6
    udr.ok("fsck")



def test_cherry_pick_and_revert_of_expired_content_refused(udr, tmp_path):
    imported(udr, tmp_path, 1)                              # commit 1: t@1
    udr.ok("branch", "create", "dev", "--from", "commit:1")  # commit 2
    for i in range(2, 5):                                   # commits 3-5: t@2..4
        p = tmp_path / ("m%d.csv" % i)
        p.write_text("id,a\n%d,m%d\n" % (i, i))
        udr.ok("import", "t", str(p))
    rep = expire(udr, "--keep-last", "1")
    assert rep["expired"]["ranges"] == {"t": [[2, 3]]}
    before = tree_snapshot(udr.root)
    r = udr("revert", "5")                                  # back to t@3: expired
    assert r.code == 6 and "t@3 expired by retention" in r.stderr, r
    r = udr("cherry-pick", "4", "--branch", "dev", "--strategy", "theirs")  # t@3's content
    assert r.code == 6 and "t@3 expired by retention" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    # the content of a kept version can be picked
    udr.ok("cherry-pick", "5", "--branch", "dev", "--strategy", "theirs")
    assert table_rows(udr, "t@dev") == [(4, "m4")]
    udr.ok("fsck")


# ---- expired, undo, restore (GC.md 1.4) ---------------------------------------


def expired_list(udr, *args):
    return [(x["table"], x["first"], x["last"], x["seq"])
            for x in json.loads(udr.ok("retention", "expired", "--json", *args).out)]


def test_expired_undo_restore(udr, tmp_path):
    imported(udr, tmp_path, 6)                          # t@1..6, commits 1-6
    p = tmp_path / "u.csv"
    for i in range(3):                                  # u@1..3, commits 7-9
        p.write_text("id,a\n%d,u%d\n" % (i, i))
        udr.ok("import", "u", str(p))
    expire(udr, "--keep-last", "4")                     # t@1..2 (commit 10)
    expire(udr, "--keep-last", "1")                     # t@3..5, u@1..2 (commit 11)
    assert expired_list(udr) == [("t", 1, 2, 10), ("t", 3, 5, 11), ("u", 1, 2, 11)]
    assert expired_list(udr, "u") == [("u", 1, 2, 11)]
    assert "t@3..5 expired by commit 11 on " in udr.ok("retention", "expired").out
    # restore one version out of the middle of a range: split
    r = json.loads(udr.ok("retention", "restore", "t@4", "--json").out)
    assert r == {"seq": 12}
    x = record(udr, 12)
    assert x["op"] == "unexpire" and x["branch"] == "" and x["parent"] == 11 and "ref" not in x
    assert x["unexpire"] == {"undo": 0, "tables": {"t": {"remove": [[4, 4]], "prev": 11,
                                                          "state": x["unexpire"]["tables"]["t"]["state"]}}}
    assert b3(xset_path(udr, "t", 12).read_bytes()) == x["unexpire"]["tables"]["t"]["state"]
    assert x["gwindow"]["@expired:t"] == [12, 12] and x["gwindow"]["@expire"] == [12, 12]
    assert expired_list(udr, "t") == [("t", 1, 2, 10), ("t", 3, 3, 11), ("t", 5, 5, 11)]
    assert table_rows(udr, "t@4") == [(4, "r4")]
    assert udr("sql", 'SELECT * FROM "t@3"').code == 6
    # undo of the newest expire record: what it still holds expired
    r = json.loads(udr.ok("retention", "undo", "--json").out)
    assert r == {"seq": 13}
    x = record(udr, 13)["unexpire"]
    assert x["undo"] == 11
    assert {t: v["remove"] for t, v in x["tables"].items()} == {"t": [[3, 3], [5, 5]], "u": [[1, 2]]}
    assert expired_list(udr) == [("t", 1, 2, 10)]
    assert table_rows(udr, "u@1") == [(0, "u0")]
    # again: nothing left of it, nothing written
    before = tree_snapshot(udr.root)
    assert json.loads(udr.ok("retention", "undo", "11", "--json").out) == {"seq": 0}
    r = udr("retention", "restore", "t@3..6")
    assert r.code == 1 and "no version of it is expired" in r.stderr
    r = udr("retention", "undo", "9")                   # not an expire record
    assert r.code == 2 and "not an expire record" in r.stderr
    r = udr("retention", "undo", "99")
    assert r.code == 1
    assert tree_snapshot(udr.root) == before
    # an older record by number; then everything reads again
    assert json.loads(udr.ok("retention", "undo", "10", "--json").out) == {"seq": 14}
    assert expired_list(udr) == []
    assert table_rows(udr, "t@1") == [(1, "r1")]
    # a version restored can be expired again, by a new record
    rep = expire(udr, "--keep-last", "5")
    assert rep["expired"]["ranges"] == {"t": [[1, 1]]}
    out = udr.ok("log").out
    assert "unexpire: undo of commit 11" in out and "unexpire: restore" in out and "t: 4 unexpired" in out
    udr.ok("fsck")
    # the checkpoints are derived: all removed, every set is rebuilt the same
    import shutil
    shutil.rmtree(udr.root / "catalog" / "expired")
    assert expired_list(udr) == [("t", 1, 1, 15)]
    # fsck reports the older ones missing (derived data) and rewrites them
    r = udr("fsck")
    assert r.code == 4 and "is missing (rewritten from the log)" in r.out, r
    udr.ok("fsck")


@pytest.mark.parametrize("args", [["restore"], ["restore", "t"], ["restore", "t@0"], ["restore", "t@3..2"],
                                  ["restore", "@3"], ["restore", "t@x"], ["undo", "x"], ["undo", "1", "2"],
                                  ["expired", "a/../b"], ["expired", "--keep-last", "1"], ["undo", "--dry-run"],
                                  ["restore", "t@1", "--table", "t"]])
def test_undo_restore_bad_input(udr, tmp_path, args):
    imported(udr, tmp_path, 3)
    expire(udr, "--keep-last", "1")
    before = tree_snapshot(udr.root)
    r = udr("retention", *args)
    assert r.code == 2, (args, r)
    assert tree_snapshot(udr.root) == before


def test_expired_of_an_unknown_table_is_not_found(udr, tmp_path):
    """`retention expired NOSUCH` answered nothing with exit 0, as for a
    table with nothing expired; a dropped table's versions still count."""
    r = udr("retention", "expired", "nosuch")
    assert r.code == 1 and "table 'nosuch' not found" in r.stderr, r
    imported(udr, tmp_path, 3)
    expire(udr, "--keep-last", "1")
    r = udr("retention", "expired", "nosuch")
    assert r.code == 1 and "table 'nosuch' not found" in r.stderr, r
    assert udr.ok("retention", "expired", "t").out.strip()
    udr.ok("sql", "DROP TABLE t")
    assert udr.ok("retention", "expired", "t").out.strip()


# ---- fsck (GC.md 6) ---------------------------------------------------------------


def reseal(path, edit):
    """Rewrite a sealed JSON file through edit(text) -> text, sealed again."""
    raw = path.read_bytes()
    i = raw.rindex(b',"check":"')
    body = edit(raw[:i].decode()).encode()
    path.write_bytes(body + b',"check":"' + b3(body).encode() + b'"}\n')


def test_fsck_rewrites_checkpoints(udr, tmp_path):
    imported(udr, tmp_path, 4)
    expire(udr, "--keep-last", "1")                     # commit 5
    udr.ok("retention", "restore", "t@2")               # commit 6
    good5 = xset_path(udr, "t", 5).read_bytes()
    good6 = xset_path(udr, "t", 6).read_bytes()
    xset_path(udr, "t", 5).write_bytes(good5[:-10])
    xset_path(udr, "t", 6).unlink()
    r = udr("fsck")
    assert r.code == 4 and "is damaged (rewritten from the log)" in r.out + r.stderr, r
    assert "is missing (rewritten from the log)" in r.out + r.stderr
    assert xset_path(udr, "t", 5).read_bytes() == good5
    assert xset_path(udr, "t", 6).read_bytes() == good6
    udr.ok("fsck")


def test_fsck_finds_forged_expire_records(udr, tmp_path):
    imported(udr, tmp_path, 3)
    expire(udr, "--keep-last", "2")                     # commit 4: t@1
    udr.ok("fsck")
    # a resealed record expiring the latest version: the seal passes, fsck not
    reseal(rec(udr, 4), lambda t: t.replace('"add":[[1,1]]', '"add":[[1,3]]').replace('"versions":1', '"versions":3'))
    r = udr("fsck")
    assert r.code == 4 and "the table's latest version" in r.out + r.stderr, r
    # back to its true ranges: fine again
    reseal(rec(udr, 4), lambda t: t.replace('"add":[[1,3]]', '"add":[[1,1]]').replace('"versions":3', '"versions":1'))
    udr.ok("fsck")
    # a state digest the log does not produce
    reseal(rec(udr, 4), lambda t: t[:t.index('"state":"') + 9] + "0" * 64 + t[t.index('"state":"') + 73:])
    r = udr("fsck")
    assert r.code == 4 and "names an expired set of table t that the log does not produce" in r.out + r.stderr, r
    # and readers do not take a forged set for the truth: exit 4, not data
    r = udr("show", "t", "1")
    assert r.code == 4, r


def test_concurrent_expire_and_branch_creates(udr, tmp_path):
    """Expires and branch creates at old commits, all at once: whichever
    links first, no branch ever names an expired version (its create is
    refused with exit 6, or the expire keeps the version)."""
    imported(udr, tmp_path, 8)                              # t@1..8, commits 1-8
    for rnd in range(3):
        procs = [start(udr, "branch", "create", "b%d_%d" % (rnd, k), "--from", "commit:%d" % (k + 1))
                 for k in range(3)]
        procs.append(start(udr, "retention", "expire", "--keep-last", "1"))
        procs += [start(udr, "branch", "create", "c%d_%d" % (rnd, k), "--from", "commit:%d" % (k + 4))
                  for k in range(3)]
        codes = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            codes.append(p.returncode)
            assert p.returncode in (0, 6), (p.args, err)
            assert p.returncode == 0 or b"expired by retention" in err
        assert codes[3] == 0
        commit_n(udr, "t", 1, "r%d" % rnd)                  # a new latest each round
    # every branch reads; every expired version is on no branch
    branches = [b["name"] for b in json.loads(udr.ok("branch", "list", "--json").out)]
    for b in branches:
        r = udr("sql", 'SELECT count(*) FROM "t@%s"' % b)
        assert r.code == 0, (b, r)
    udr.ok("fsck")


def test_fsck_finds_a_ref_naming_an_expired_version(udr, tmp_path):
    imported(udr, tmp_path, 4)                              # t@1..4, commits 1-4
    expire(udr, "--keep-last", "1")                         # t@1..3 (commit 5)
    udr.ok("branch", "create", "dev", "--from", "commit:4")  # commit 6
    udr.ok("fsck")
    r6 = record(udr, 6)
    assert r6["op"] == "create" and r6["parent"] == 4 and r6["window"] == {"t": [4, 4]}
    # forged: created from commit 2 (t@2, expired by commit 5), sealed again
    reseal(rec(udr, 6), lambda t: t.replace('"parent":4', '"parent":2').replace('"window":{"t":[4,4]}',
                                                                                '"window":{"t":[2,2]}'))
    r = udr("fsck")
    assert r.code == 4 and "names t@2 (in commit 2), which commit 5 expired" in r.out + r.stderr, r


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
def test_restore_after_the_plan_is_not_undone(udr, tmp_path):
    """A restore linked between an expire's plan and its record: the expire
    (planned before the restore) does not expire the restored version again
    (review R3: it silently took the restore back)."""
    imported(udr, tmp_path, 4)                           # t@1..4, commits 1-4
    expire(udr, "--keep-last", "1")                      # t@1..3 (commit 5)
    pdir = tmp_path / "pause"
    pdir.mkdir()
    p = start(udr, "retention", "expire", "--json", "--keep-last", "1", pause=("expire-planned", pdir))
    wait_for(pdir / "expire-planned.reached", p)
    udr.ok("retention", "restore", "t@2")                # commit 6
    (pdir / "expire-planned.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["expired"]["versions"] == 0, out
    assert table_rows(udr, "t@2") == [(2, "r2")]
    assert expired_list(udr) == [("t", 1, 1, 5), ("t", 3, 3, 5)]
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs UDR_FAULT_INJECTION")
def test_reset_after_the_plan_keeps_the_new_merge_base(udr, tmp_path):
    """A branch reset between an expire's plan and its record can make an
    older commit the merge base of two live branches: the record keeps its
    versions, as a plan made after the reset would (review R3: it expired
    them, and the merge of those branches was then refused with exit 6)."""
    for i in range(1, 5):                                # t@1..4, commits 1-4
        p = tmp_path / ("t%d.csv" % i)
        p.write_text("id,a\n%d,r%d\n" % (i, i))
        udr.ok("import", "t", str(p), "--key", "id")
    udr.ok("branch", "create", "c", "--from", "commit:2")    # commit 5
    p = tmp_path / "c.csv"
    p.write_text("id,a\n2,C\n")
    udr.ok("import", "t", str(p), "--key", "id", "--branch", "c")  # t@5, commit 6
    udr.ok("branch", "create", "b", "--from", "commit:4")    # commit 7
    udr.ok("branch", "delete", "c")                          # commit 8
    pdir = tmp_path / "pause"
    pdir.mkdir()
    p = start(udr, "retention", "expire", "--json", "--keep-last", "1", pause=("expire-planned", pdir))
    wait_for(pdir / "expire-planned.reached", p)
    # b's merge base with main becomes commit 2 (t@2), planned to expire
    udr.ok("branch", "reset", "b", "--to", "commit:6")       # commit 9
    (pdir / "expire-planned.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out)["expired"]["ranges"] == {"t": [[1, 1], [3, 3]]}, out
    # both sides change row 2: the row merge reads the base, t@2
    p = tmp_path / "m.csv"
    p.write_text("id,a\n2,M\n")
    udr.ok("import", "t", str(p), "--key", "id")
    p = tmp_path / "b.csv"
    p.write_text("id,a\n2,C\n9,B\n")
    udr.ok("import", "t", str(p), "--key", "id", "--branch", "b")
    r = udr("merge", "b")
    assert r.code in (0, 3), r                           # merged, or a row conflict: not exit 6
    udr.ok("fsck")


def test_recorded_merge_keeps_its_versions(udr, tmp_path):
    """A recorded row merge (conflicts to resolve) reads its base, ours and
    theirs versions again at --continue: an expire keeps them (GC.md 1.3
    (5); review R3: theirs expired and --continue was refused with exit 6)."""
    def imp(rows, *extra):
        p = tmp_path / "x.csv"
        p.write_text("id,a\n" + "".join("%d,%s\n" % r for r in rows))
        udr.ok("import", "t", str(p), "--key", "id", *extra)
    imp([(1, "x"), (2, "y")])                            # t@1, commit 1
    udr.ok("branch", "create", "dev")                    # commit 2
    imp([(1, "DEV"), (2, "y")], "--branch", "dev")       # t@2, commit 3
    imp([(1, "MAIN"), (2, "y")])                         # t@3, commit 4
    imp([(1, "MAIN"), (2, "y"), (3, "z")])               # t@4, commit 5
    r = udr("merge", "dev")
    assert r.code == 3, r                                # row 1 conflicts: recorded
    imp([(1, "DEV2"), (2, "y")], "--branch", "dev")      # t@5: dev moves on, t@2 is no head
    rep = expire(udr, "--keep-last", "1")
    assert rep["expired"]["ranges"] == {"t": [[3, 3]]}, rep  # t@2 (theirs) kept; t@1 base; t@4 ours
    udr.ok("resolve", "t", "--theirs")
    udr.ok("merge", "--continue")
    assert (1, "DEV") in table_rows(udr, "t")
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_NOW needs a test build")
@pytest.mark.parametrize("dev_commits", [1, 2])
def test_keep_within_keeps_the_version_a_merge_replaced(udr, dev_commits):
    """A merge (fast-forward) put dev's version on main later than dev made
    it; --keep-within took main's version before it as current only until
    dev's commit, expired it, and time travel into the window then read an
    expired version (exit 6; gc would remove its data; a helper's review)."""
    udr.ok("sql", "CREATE TABLE t AS SELECT 'v1' AS v")
    udr.ok("branch", "create", "dev")
    for i in range(dev_commits):
        udr.ok("sql", "--branch", "dev", "UPDATE t SET v = 'dev%d'" % i)
    time.sleep(0.7)
    udr.ok("merge", "dev")
    merge = json.loads(udr.ok("log", "--limit", "1", "--json").out)[0]
    inside = merge["time_ms"] - 200   # main's t was still v1 here
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(inside / 1000)) + ".%03dZ" % (inside % 1000)
    assert udr.ok("sql", 'SELECT v FROM "t@%s"' % at, "--csv").out.split() == ["v", "v1"]
    udr.ok("retention", "expire", "--keep-within", "1s", env={"UDR_GC_NOW": str(merge["time_ms"] + 500)})
    assert udr.ok("sql", 'SELECT v FROM "t@%s"' % at, "--csv").out.split() == ["v", "v1"]
    # past the window the old version goes as before
    udr.ok("retention", "expire", "--keep-within", "1s", env={"UDR_GC_NOW": str(merge["time_ms"] + 5000)})
    assert udr("sql", 'SELECT v FROM "t@%s"' % at).code == 6


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_GC_NOW needs a test build")
def test_gc_keep_within_keeps_a_branch_head_older_than_the_window(udr, tmp_path):
    """GC.md 1.3, 8.3 "heads older than the window": dev's last commit is
    older than --keep-within's window; `udr gc --keep-within` keeps dev's
    head and each table's version there, which read back byte for byte
    (by number and on dev), while dev's older versions, outside the window
    and no head, expire and their data goes (exit 6), as main's do."""
    rng = random.Random(37)
    data = {}

    def commit(table, branch=None):
        d = rng.randbytes(40_000)
        f = tmp_path / ("in%d" % len(data))
        f.write_bytes(d)
        args = ["--branch", branch] if branch else []
        v = int(udr.ok("commit", table, "--next", "--file", f, *args).out.split()[-1])
        data[table, v] = d
        return v

    def read(table, *args):
        r = udr("show", table, *args)
        if r.code != 0:
            return r.code, r.stderr
        return 0, b"".join(udr.ok("get", h).stdout for h in json.loads(r.out)["chunks"])

    base = {"t": commit("t"), "u": commit("u")}         # commits 1-2
    udr.ok("branch", "create", "dev")                   # commit 3: their merge base
    old = commit("t", "dev")                            # dev: t, u, then t: its head has
    head = {"u": commit("u", "dev"), "t": commit("t", "dev")}  # u's older version, t's newest
    dev_ms = json.loads(udr.ok("log", "--limit", "1", "--json").out)[0]["time_ms"]
    main_old = {"t": commit("t"), "u": commit("u")}
    main_head = {"t": commit("t"), "u": commit("u")}    # main moves on: dev's are no table's latest
    now = json.loads(udr.ok("log", "--limit", "1", "--json").out)[0]["time_ms"] + 3600 * 1000
    assert dev_ms < now - 600 * 1000                    # dev's head is older than the window
    r = udr("gc", "--keep-within", "10min", "--grace", "0s", "--json", env={"UDR_GC_NOW": str(now)})
    assert r.code == 0, r
    rep = json.loads(r.out)
    assert rep["retention"]["expired"]["ranges"] == {"t": [[old, old], [main_old["t"]] * 2],
                                                     "u": [[main_old["u"]] * 2]}, rep["retention"]
    assert rep["removed"]["objects"] > 0, rep
    by = rep["retention"]["kept"]["by_reason"]
    assert (by["head"], by["merge_base"], by["policy"]) == (4, 2, 0), by  # dev's t and u among the heads
    for table in ("t", "u"):
        assert read(table, "--branch", "dev") == (0, data[table, head[table]]), table
        for v in (base[table], head[table], main_head[table]):
            assert read(table, str(v)) == (0, data[table, v]), (table, v)
        for v in {old, main_old["t"]} if table == "t" else {main_old["u"]}:
            code, err = read(table, str(v))
            assert code == 6 and "%s@%d expired by retention on " % (table, v) in err, (table, v, err)
            assert "its data was removed by gc" in err, err
    assert udr("fsck").code == 0

