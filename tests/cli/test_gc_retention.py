"""udr retention expire --dry-run: the retention plan of docs/GC.md 1.2 and 1.3
end to end (chains per branch, heads/tags/latest always kept, keep_within's
boundary at the millisecond with UDR_GC_NOW), and bad input refused with
exit 2 (or 1 for an unknown table or branch) and nothing written.

Writing expire records, reading expired versions (exit 6) and undo/restore
are not built yet (GC.md 1, "Built:").
"""
import json

import pytest

from conftest import FAULT_INJECTION, commit_n, rec, tree_snapshot, vfile


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
    # on no live chain (orphans) and are kept for now.
    udr.ok("branch", "delete", "dev")
    p = plan(udr, "--keep-last", "1")
    assert p["expired"]["ranges"] == {"t": [[1, 3]]}
    assert (p["kept"]["by_reason"]["orphan"], p["kept"]["by_reason"]["latest"]) == (1, 1)


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
    ([], 2, "at least one --keep"),
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


def test_refused_without_dry_run_and_named_versions(udr):
    commit_n(udr, "t", 3)
    before = tree_snapshot(udr.root)
    r = udr("retention", "expire", "--keep-last", "1")
    assert r.code == 2 and "not built yet" in r.stderr
    r = udr("retention", "expire", "t@1", "--dry-run", "--keep-last", "1")
    assert r.code == 2 and "not built yet" in r.stderr
    r = udr("retention", "undo")
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
