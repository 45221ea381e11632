"""udr merge row by row (issue 12): a table changed on both sides of a merge
is merged on its key (--key T=COLS, or the udr.key a merged version
records).  Every case checks the exact rows the target ends with, so a lost
row, a doubled key, the wrong side applied or a conflict dropped fails; every
refused merge checks that nothing was written.
"""
import json

import pytest

from conftest import tree_snapshot, csv, table_rows as rows


def three_sides(udr, tmp_path, base, ours, theirs, header="id,a,b", table="t"):
    """base on main, branch dev, theirs imported on dev, ours on main."""
    udr.ok("import", table, csv(tmp_path, "base.csv", base, header))
    udr.ok("branch", "create", "dev")
    udr.ok("import", table, csv(tmp_path, "theirs.csv", theirs, header), "--branch", "dev")
    udr.ok("import", table, csv(tmp_path, "ours.csv", ours, header))


def only_the_record(udr, before):
    """A conflicting merge writes nothing but its record (catalog/merges/)
    and the Parquet parts of its conflicting rows that the record names."""
    after = tree_snapshot(udr.root)
    rec = udr.root / "catalog" / "merges" / "main.json"
    named = set()
    if rec.exists():
        for t in json.loads(rec.read_text())["tables"]:
            named |= {c["part"] for c in t["conflicts"]}
    for path in set(before) | set(after):
        if before.get(path) == after.get(path) or path.startswith("catalog/merges"):
            continue
        assert path not in before, path  # nothing changed, only added
        assert path.startswith("chunks/"), path
        if after[path] is not None:
            assert path.rsplit("/", 1)[-1] in named, path


def merge_json(udr, *args, code=0):
    r = udr("merge", "dev", "--json", *args)
    assert r.code == code, r
    return json.loads(r.out)


BASE = [(1, "x", 10), (2, "y", 20), (3, "z", 30), (4, "w", 40), (7, "q", 70)]
# ours: update 1.a, delete 4, add 5;  theirs: update 2, delete 7, add 6
OURS = [(1, "X", 10), (2, "y", 20), (3, "z", 30), (5, "n", 50), (7, "q", 70)]
THEIRS = [(1, "x", 10), (2, "y", 22), (3, "z", 30), (4, "w", 40), (6, "m", 60)]
MERGED = [(1, "X", 10), (2, "y", 22), (3, "z", 30), (5, "n", 50), (6, "m", 60)]


def test_clean_three_way_adds_deletes_updates_on_both_sides(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    ours_v = json.loads(udr.ok("show", "t").out)
    m = merge_json(udr, "--key", "t=id")
    t = m["tables"][0]
    assert m["conflicts"] == 0 and m["commit"] > 0 and not m["fast_forward"]
    assert t["rows"] == {"ours": 3, "theirs": 3, "same": 0, "cells": 0, "conflict": 0}
    assert rows(udr) == MERGED
    # written as an SQL write: ours' part shared, its replaced rows a deletion vector
    v = json.loads(udr.ok("show", "t").out)
    assert v["version"] == t["result"] and v["parent"] == ours_v["version"]
    assert v["chunks"][0] == ours_v["chunks"][0]
    assert v["metadata"]["udr.format"] == "parquet-dv" and v["metadata"]["udr.key"] == '["id"]'
    assert v["metadata"]["udr.rows"] == "5"
    # one merge commit with two parents; dev untouched; fsck clean
    log = max(json.loads(udr.ok("log", "--json").out), key=lambda e: e["seq"])
    assert log["op"] == "merge" and len(log["parents"]) == 2
    assert rows(udr, "t@dev") == sorted(THEIRS)
    udr.ok("fsck")


@pytest.mark.parametrize("table", ["__udr_rm"])
def test_tables_named_like_the_temporary_ones_merge(udr, tmp_path, table):
    """A merge of a table named like one of the merge's temporary tables
    (it failed: 'Table with name "__udr_rm" already exists', exit 2)."""
    three_sides(udr, tmp_path, BASE, OURS, THEIRS, table=table)
    m = merge_json(udr, "--key", "%s=id" % table)
    assert m["conflicts"] == 0 and m["tables"][0]["rows"]["ours"] == 3
    assert rows(udr, table) == MERGED
    udr.ok("fsck")


def test_a_sign_change_of_nan_on_their_side_is_merged(udr, tmp_path):
    """NaN -> -NaN on their side is a change, as an SQL write's commit sees
    it (the merge compared doubles so that NaN and -NaN were the same, and
    dropped their change with exit 0)."""
    udr.ok("import", "t", csv(tmp_path, "base.csv", [(1, "nan"), (2, "1.5"), (3, "0.0")], "id,x"))
    udr.ok("sql", "UPDATE t SET x = 'nan'::DOUBLE WHERE id = 1")  # a DOUBLE column whatever the import chose
    udr.ok("branch", "create", "dev")
    udr.ok("sql", "UPDATE t SET x = -x WHERE id = 1", "--branch", "dev")
    udr.ok("sql", "UPDATE t SET x = 2.5 WHERE id = 2")
    m = merge_json(udr, "--key", "t=id")
    assert m["conflicts"] == 0
    got = json.loads(udr.ok("sql", "SELECT id, signbit(x) AS neg, isnan(x) AS nan, x::VARCHAR AS x FROM t ORDER BY id",
                            "--json").out)
    assert [(r["id"], r["neg"], r["nan"]) for r in got] == [(1, True, True), (2, False, False), (3, False, False)]
    assert got[1]["x"] == "2.5"


def test_merged_rows_equal_sql_reference(udr, tmp_path):
    """The merge against the same three-way rule written in plain SQL over many rows."""
    import random
    rnd = random.Random(7)
    base = [(i, "v%d" % i, i) for i in range(1, 400)]
    ours = {r[0]: r for r in base}
    theirs = {r[0]: r for r in base}
    for i in rnd.sample(range(1, 400), 60):
        ours.pop(i) if i % 3 == 0 else ours.__setitem__(i, (i, "o%d" % i, i))
    for i in rnd.sample(range(1, 400), 60):
        if i in ours and ours[i] != base[i - 1] or i not in ours:
            continue  # keep theirs' changes on rows ours did not touch: no conflicts
        theirs.pop(i) if i % 4 == 0 else theirs.__setitem__(i, (i, "a", -i))
    for i in range(400, 420):
        ours[i] = (i, "new-o", i)
    for i in range(420, 430):
        theirs[i] = (i, "new-t", i)
    three_sides(udr, tmp_path, base, sorted(ours.values()), sorted(theirs.values()))
    udr.ok("merge", "dev", "--key", "t=id")
    expect = {}
    b = {r[0]: r for r in base}
    for k in set(b) | set(ours) | set(theirs):
        o, t, bb = ours.get(k), theirs.get(k), b.get(k)
        res = t if o == bb else o
        if res is not None:
            expect[k] = res
    assert rows(udr) == sorted(expect.values())
    # no key twice
    assert udr.ok("sql", "SELECT count(*) - count(DISTINCT id) FROM t", "--csv").out.split()[-1] == "0"


def test_same_change_on_both_sides_is_no_conflict(udr, tmp_path):
    both = [(1, "x", 10), (2, "y", 99), (3, "z", 30), (8, "same", 8)]  # 2 changed, 4 gone, 8 added, identically
    three_sides(udr, tmp_path, BASE[:4], both, both + [(9, "t", 9)])
    m = merge_json(udr, "--key", "t=id")
    assert m["conflicts"] == 0
    assert m["tables"][0]["rows"]["same"] == 3 and m["tables"][0]["rows"]["theirs"] == 1
    assert rows(udr) == sorted(both + [(9, "t", 9)])


@pytest.mark.parametrize("ours,theirs", [
    ([(1, "o", 10)], [(1, "t", 10)]),        # same row, same column, different values
    ([(1, "o", 10)], [(1, "x", 11)]),        # different columns: a conflict at row strictness
    ([], [(1, "t", 10)]),                    # deleted on ours, changed on theirs
    ([(1, "o", 10)], []),                    # changed on ours, deleted on theirs
    ([(1, "x", 10), (2, "o", 0)], [(1, "x", 10), (2, "t", 0)]),  # added on both with different rows
])
def test_row_conflict_writes_nothing(udr, tmp_path, ours, theirs):
    three_sides(udr, tmp_path, [(1, "x", 10), (3, "k", 3)], ours + [(3, "k", 3)], theirs + [(3, "k", 3)])
    before = tree_snapshot(udr.root)
    head = json.loads(udr.ok("show", "t").out)["version"]
    r = udr("merge", "dev", "--key", "t=id")
    assert r.code == 3, r
    assert "changed differently on both sides" in r.stderr and "nothing merged" in r.stderr
    assert "conflict t: 1 row" in r.out
    only_the_record(udr, before)
    assert json.loads(udr.ok("show", "t").out)["version"] == head
    m = merge_json(udr, "--key", "t=id", code=3)
    assert m["conflicts"] == 1 and m["commit"] == 0 and m["tables"][0]["rows"]["conflict"] == 1


def test_cell_strictness_merges_different_columns_not_the_same_one(udr, tmp_path):
    three_sides(udr, tmp_path, [(1, "x", 10), (2, "y", 20)], [(1, "O", 10), (2, "O", 20)],
          [(1, "x", 11), (2, "T", 20)])
    # row 2: both changed column a: a conflict even cell by cell
    before = tree_snapshot(udr.root)
    m = merge_json(udr, "--key", "t=id", "--strictness", "t=cell", code=3)
    assert m["tables"][0]["rows"]["conflict"] == 1 and m["tables"][0]["rows"]["cells"] == 1
    only_the_record(udr, before)
    # theirs changes row 2 back: only row 1, different columns, merges
    udr.ok("import", "t", csv(tmp_path, "t2.csv", [(1, "x", 11), (2, "y", 20)]), "--branch", "dev")
    m = merge_json(udr, "--key", "t=id", "--strictness", "t=cell")
    assert m["conflicts"] == 0 and m["tables"][0]["rows"]["cells"] == 1
    assert rows(udr) == [(1, "O", 11), (2, "O", 20)]
    udr.ok("fsck")


def test_table_strictness_and_no_key_stay_table_level(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    before = tree_snapshot(udr.root)
    m = merge_json(udr, "--key", "t=id", "--strictness", "t=table", code=3)
    assert m["tables"][0]["conflict"] and "strictness table" in m["tables"][0]["note"]
    m = merge_json(udr, code=3)  # no key given, none recorded
    assert "no key" in m["tables"][0]["note"]
    only_the_record(udr, before)


@pytest.mark.parametrize("side,expect", [("ours", OURS), ("theirs", THEIRS)])
def test_strategy_takes_precedence_over_rows(udr, tmp_path, side, expect):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    m = merge_json(udr, "--key", "t=id", "--table", "t=" + side)
    assert m["conflicts"] == 0 and "rows" not in m["tables"][0]
    assert rows(udr) == sorted(expect)


def test_dry_run_reports_counts_and_writes_nothing(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    before = tree_snapshot(udr.root)
    m = merge_json(udr, "--key", "t=id", "--dry-run")
    assert m["dry_run"] and m["commit"] == 0 and m["tables"][0]["rows"]["theirs"] == 3
    r = udr.ok("merge", "dev", "--key", "t=id", "--dry-run")
    assert "would merge t row by row: 3 rows from theirs" in r.out and "dry run: nothing written" in r.out
    r = udr("merge", "dev", "--key", "t=id", "--dry-run", "--strictness", "t=table")
    assert r.code == 3
    assert tree_snapshot(udr.root) == before


def test_merging_again_is_up_to_date_and_the_key_is_remembered(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    udr.ok("merge", "dev", "--key", "t=id")
    before = tree_snapshot(udr.root)
    assert merge_json(udr)["up_to_date"]
    assert tree_snapshot(udr.root) == before
    # both sides change again: the merged version's udr.key is used without --key
    main_rows = [(1, "X", 10), (2, "y", 22), (3, "zz", 30), (5, "n", 50), (6, "m", 60)]
    dev_rows = [(1, "X", 10), (2, "y", 22), (3, "z", 30), (5, "n", 50), (6, "m", 66)]
    udr.ok("merge", "main", "--into", "dev")  # fast-forward dev to the merge
    udr.ok("import", "t", csv(tmp_path, "d.csv", dev_rows), "--branch", "dev")
    udr.ok("import", "t", csv(tmp_path, "m.csv", main_rows))
    m = merge_json(udr)
    assert m["conflicts"] == 0, m
    assert rows(udr) == [(1, "X", 10), (2, "y", 22), (3, "zz", 30), (5, "n", 50), (6, "m", 66)]


def test_criss_cross_merges_over_the_bases_merge(udr, tmp_path):
    """main and dev merged each other's old heads (two merge bases): was
    refused as a criss-cross (exit 3) with advice that failed the same way.
    Both sides merged the crossing alike (t's rows the same on both, in
    versions of their own): t is no conflict; u and v take each side's own
    change since."""
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    udr.ok("import", "u", csv(tmp_path, "u.csv", [(1, "a", 1)]))
    udr.ok("import", "v", csv(tmp_path, "v.csv", [(1, "a", 1)]), "--branch", "dev")
    udr.ok("branch", "create", "m0")  # main before the crossing merges
    udr.ok("merge", "dev", "--key", "t=id")            # main gets dev
    udr.ok("merge", "m0", "--into", "dev", "--key", "t=id")  # dev gets main's old head
    udr.ok("import", "u", csv(tmp_path, "u2.csv", [(1, "b", 2)]))
    udr.ok("import", "v", csv(tmp_path, "v2.csv", [(1, "c", 3)]), "--branch", "dev")
    m = merge_json(udr, "--key", "t=id")
    assert m["conflicts"] == 0, m
    merged = [(1, "X", 10), (2, "y", 22), (3, "z", 30), (5, "n", 50), (6, "m", 60)]
    assert rows(udr) == merged == rows(udr, "t@dev")
    assert rows(udr, "u") == [(1, "b", 2)]
    assert rows(udr, "v") == [(1, "c", 3)]
    udr.ok("fsck")


def test_criss_cross_bases_that_disagree_conflict(udr, tmp_path):
    """The crossing merged differently on each side (ours kept its row,
    theirs took the other): no base stands for t, so it conflicts with a
    note, writes nothing, and a side resolves it."""
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    udr.ok("branch", "create", "m0")
    udr.ok("merge", "dev", "--table", "t=ours")
    udr.ok("merge", "m0", "--into", "dev", "--table", "t=ours")
    assert rows(udr) == sorted(OURS) and rows(udr, "t@dev") == sorted(THEIRS)
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", "t=id")
    assert r.code == 3 and "criss-cross" in r.stderr, r
    only_the_record(udr, before)
    assert rows(udr) == sorted(OURS)
    udr.ok("resolve", "t", "--theirs")
    udr.ok("merge", "--continue")
    assert rows(udr) == sorted(THEIRS)
    udr.ok("fsck")


@pytest.mark.parametrize("which", ["theirs", "ours"])
def test_schema_changed_on_one_side_is_a_table_conflict(udr, tmp_path, which):
    base = [(1, "x", 10), (2, "y", 20)]
    udr.ok("import", "t", csv(tmp_path, "b.csv", base))
    udr.ok("branch", "create", "dev")
    wide = csv(tmp_path, "w.csv", [(1, "x", 10, "e"), (2, "y", 20, "e")], "id,a,b,c")
    narrow = csv(tmp_path, "n.csv", [(1, "x", 10), (2, "y", 21)])
    udr.ok("import", "t", wide if which == "theirs" else narrow, "--branch", "dev")
    udr.ok("import", "t", narrow if which == "theirs" else wide)
    before = tree_snapshot(udr.root)
    m = merge_json(udr, "--key", "t=id", code=3)
    side = "their side" if which == "theirs" else "our side"
    assert ("schema changed on " + side) in m["tables"][0]["note"], m
    only_the_record(udr, before)
    # a side picked for the table resolves it
    udr.ok("merge", "dev", "--table", "t=theirs")
    assert len(rows(udr)[0]) == (4 if which == "theirs" else 3)


@pytest.mark.parametrize("key,needle", [("t=nosuch", "key column 'nosuch' is not a column of table t"),
                                        ("t=id,", "empty column name"),
                                        ("t=id,ID", "key column 'ID'"),
                                        ("other=id", "neither side has")])
def test_bad_keys_are_clear_errors_and_write_nothing(udr, tmp_path, key, needle):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", key)
    assert r.code == 2 and needle in r.stderr, r
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("args", [["--key", "t"], ["--key", "=id"], ["--strictness", "t=fuzzy"],
                                  ["--strictness", "t"], ["--key", "bad/name=id"]])
def test_bad_options_are_usage_errors(udr, tmp_path, args):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", *args)
    assert r.code == 2, r
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("bad", ["dup", "null"])
def test_a_key_not_unique_or_null_is_refused(udr, tmp_path, bad):
    extra = (1, "again", 1) if bad == "dup" else ("", "nokey", 1)
    three_sides(udr, tmp_path, BASE, OURS + [extra], THEIRS)
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", "t=id")
    assert r.code == 2 and "NULL or not unique" in r.stderr, r
    assert tree_snapshot(udr.root) == before


def test_compound_key(udr, tmp_path):
    h = "r,id,v"
    base = [("eu", 1, "a"), ("us", 1, "b"), ("eu", 2, "c")]
    ours = [("eu", 1, "A"), ("us", 1, "b"), ("eu", 2, "c")]
    theirs = [("eu", 1, "a"), ("us", 1, "B"), ("eu", 2, "c"), ("us", 2, "d")]
    three_sides(udr, tmp_path, base, ours, theirs, header=h)
    m = merge_json(udr, "--key", "t=r,id")
    assert m["conflicts"] == 0
    assert rows(udr) == sorted([("eu", 1, "A"), ("us", 1, "B"), ("eu", 2, "c"), ("us", 2, "d")])
    # on id alone the key repeats: refused
    udr2_before = tree_snapshot(udr.root)
    assert udr.ok("show", "t")
    assert tree_snapshot(udr.root) == udr2_before


def test_other_tables_merge_with_the_row_merge_in_one_commit(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    udr.ok("import", "only_dev", csv(tmp_path, "od.csv", [(1, "a", 1)]), "--branch", "dev")
    n = len(json.loads(udr.ok("log", "--json").out))
    m = merge_json(udr, "--key", "t=id")
    assert {t["table"] for t in m["tables"]} == {"t", "only_dev"}
    assert len(json.loads(udr.ok("log", "--json").out)) == n + 1
    assert rows(udr, "only_dev") == [(1, "a", 1)]
    assert rows(udr) == MERGED
    udr.ok("fsck")


# ---- conflicts recorded, queried, resolved, continued, aborted -----------------------------------------

# two conflicting rows (1: a vs b changed on the same column; 2: deleted vs changed), the rest merges
C_BASE = [(1, "x", 10), (2, "y", 20), (3, "z", 30), (4, "w", 40)]
C_OURS = [(1, "O", 10), (3, "z", 30), (4, "w", 44), (5, "o", 5)]
C_THEIRS = [(1, "T", 10), (2, "t", 22), (3, "z", 33), (4, "w", 40), (6, "t", 6)]


def conflicts(udr, *args):
    return json.loads(udr.ok("conflicts", "--json", *args).out)


def log_len(udr):
    return len(json.loads(udr.ok("log", "--json").out))


def test_conflicts_are_recorded_and_queryable(udr, tmp_path):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    n = log_len(udr)
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", "t=id")
    assert r.code == 3 and "udr merge --continue" in r.stderr, r
    only_the_record(udr, before)
    assert log_len(udr) == n
    rec = json.loads((udr.root / "catalog" / "merges" / "main.json").read_text())
    assert rec["kind"] == "udr-merge" and rec["source"] == "dev" and rec["keys"] == {"t": "id"}
    assert rec["tables"][0]["rows"] == 2 and len(rec["check"]) == 64
    c = conflicts(udr)
    assert [json.loads(x["key"]) for x in c] == [{"id": 1}, {"id": 2}]
    assert json.loads(c[0]["ours"]) == {"id": 1, "a": "O", "b": 10}
    assert json.loads(c[0]["theirs"]) == {"id": 1, "a": "T", "b": 10}
    assert json.loads(c[0]["base"]) == {"id": 1, "a": "x", "b": 20 - 10}
    assert c[1]["ours"] is None and json.loads(c[1]["theirs"])["a"] == "t"
    q = json.loads(udr.ok("sql", "SELECT target, \"table\", key->>'id' AS id, ours IS NULL AS gone "
                          "FROM udr_conflicts ORDER BY id", "--json").out)
    assert q == [{"target": "main", "table": "t", "id": "1", "gone": False},
                 {"target": "main", "table": "t", "id": "2", "gone": True}]
    # a dry run records nothing
    udr.ok("merge", "--abort")
    before = tree_snapshot(udr.root)
    assert udr("merge", "dev", "--key", "t=id", "--dry-run").code == 3
    assert tree_snapshot(udr.root) == before
    assert conflicts(udr) == []


def test_resolve_rows_then_continue(udr, tmp_path):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    udr.ok("resolve", "t", "--key", "1", "--theirs")
    # one conflict left: continue refuses, writes nothing to main, keeps the resolution
    n = log_len(udr)
    r = udr("merge", "--continue")
    assert r.code == 3 and "1 row changed differently" in r.stderr, r
    assert log_len(udr) == n
    # the record now holds the rows still in conflict; the resolution given stays
    assert [(json.loads(x["key"]), x["resolved"]) for x in conflicts(udr)] == [({"id": 2}, None)]
    assert json.loads((udr.root / "catalog" / "merges" / "main.json").read_text())["tables"][0][
        "rows_resolved"] == [["1", "theirs"]]
    udr.ok("resolve", "t", "--key", "2", "--ours")
    m = json.loads(udr.ok("merge", "--continue", "--json").out)
    assert m["commit"] > 0 and m["conflicts"] == 0
    assert rows(udr) == [(1, "T", 10), (3, "z", 33), (4, "w", 44), (5, "o", 5), (6, "t", 6)]
    log = max(json.loads(udr.ok("log", "--json").out), key=lambda e: e["seq"])
    assert log["op"] == "merge" and len(log["parents"]) == 2
    assert conflicts(udr) == [] and not (udr.root / "catalog" / "merges" / "main.json").exists()
    udr.ok("fsck")


@pytest.mark.parametrize("side,expect", [("--ours", sorted(C_OURS)), ("--theirs", sorted(C_THEIRS))])
def test_resolve_a_table_then_continue(udr, tmp_path, side, expect):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    udr.ok("resolve", "t", side)
    udr.ok("merge", "--continue")
    assert rows(udr) == expect


@pytest.mark.parametrize("how", ["with", "sql"])
def test_resolve_with_a_version_then_continue(udr, tmp_path, how):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    if how == "with":
        udr.ok("resolve", "t", "--with", csv(tmp_path, "fixed.csv", [(1, "fixed", 1), (9, "nine", 9)]))
        expect = [(1, "fixed", 1), (9, "nine", 9)]
    else:
        udr.ok("resolve", "t", "--sql", "SELECT * FROM t@dev WHERE id > 3")
        expect = [(4, "w", 40), (6, "t", 6)]
    assert {x["resolved"] for x in conflicts(udr)} == {"version"}
    udr.ok("merge", "--continue")
    assert rows(udr) == expect
    udr.ok("fsck")


def test_resolve_with_a_file_reads_that_file_as_import_does(udr, tmp_path):
    """--with 'g/b[1].csv' read the glob's b1.csv, 'g/*.csv' every file,
    and an .ndjson file was read as CSV (one column per key, no rows), each
    resolved and committed with exit 0."""
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    g = tmp_path / "g"
    g.mkdir()
    csv(g, "b1.csv", [(1, "b1", 1)])
    br = csv(g, "b[1].csv", [(2, "bracket", 2)])
    csv(g, "c*.csv", [(3, "star", 3)])
    nd = tmp_path / "r.ndjson"
    nd.write_text('{"id": 7, "a": "ndjson", "b": 7}\n')
    before = tree_snapshot(udr.root)
    for bad, why in ((str(tmp_path / "nofile.csv"), "cannot read"), (str(g), "cannot tell the format"),
                     (str(tmp_path / "x.unknown"), "cannot tell the format")):
        r = udr("resolve", "t", "--with", bad)
        assert r.code != 0 and why in r.stderr, (bad, r)
    assert tree_snapshot(udr.root) == before
    udr.ok("resolve", "t", "--with", str(nd))
    udr.ok("resolve", "t", "--with", br)
    udr.ok("merge", "--continue")
    assert rows(udr) == [(2, "bracket", 2)]


@pytest.mark.parametrize("first,last", [("--theirs", "--ours"), ("--ours", "--theirs")])
def test_a_row_resolved_again_takes_the_last_choice(udr, tmp_path, first, last):
    """resolve --theirs then --ours of one row: udr conflicts showed ours,
    the merge committed theirs (the first choice), exit 0."""
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    keys = [str(json.loads(x["key"])["id"]) for x in conflicts(udr)]
    for k in keys:
        udr.ok("resolve", "t", "--key", k, first)
        udr.ok("resolve", "t", "--key", k, last)
    assert {x["resolved"] for x in conflicts(udr)} == {last[2:]}
    rec = json.loads((udr.root / "catalog" / "merges" / "main.json").read_text())
    assert len(rec["tables"][0]["rows_resolved"]) == len(keys)  # one entry a row
    udr.ok("merge", "--continue")
    want = dict((r[0], r) for r in (C_OURS if last == "--ours" else C_THEIRS))
    got = dict((r[0], r) for r in rows(udr))
    for k in keys:
        assert got.get(int(k)) == want.get(int(k)), (k, got, want)


def test_continue_after_the_target_moved_is_refused(udr, tmp_path):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    udr.ok("resolve", "t", "--theirs")
    udr.ok("import", "other", csv(tmp_path, "o.csv", [(1, "a", 1)]))  # main moves
    before = tree_snapshot(udr.root)
    r = udr("merge", "--continue")
    assert r.code == 3 and "moved since the merge" in r.stderr and "--abort" in r.stderr, r
    assert tree_snapshot(udr.root) == before
    udr.ok("merge", "--abort")
    assert udr("merge", "--continue").code == 1


def test_abort_discards_and_errors_are_clear(udr, tmp_path):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    for args in (["merge", "--continue"], ["merge", "--abort"], ["resolve", "t", "--ours"]):
        r = udr(*args)
        assert r.code == 1 and "no merge into branch 'main'" in r.stderr, (args, r)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    before = tree_snapshot(udr.root)
    for args, code, needle in ((["resolve", "t", "--key", "99", "--ours"], 1, "no conflicting row with key 99"),
                               (["resolve", "nosuch", "--ours"], 1, "has no conflict"),
                               (["resolve", "t", "--ours", "--theirs"], 2, "give one of"),
                               (["resolve", "t"], 2, "give one of"),
                               (["resolve", "t", "--key", "1"], 2, "give one of"),
                               (["resolve", "t", "--sql", "SELEC nonsense"], 2, "rror"),
                               (["merge", "--continue", "dev"], 2, "take no SOURCE"),
                               (["merge", "--continue", "--abort"], 2, "exclude")):
        r = udr(*args)
        assert r.code == code and needle in r.stderr, (args, r)
    only_the_record(udr, before)
    udr.ok("merge", "--abort")
    assert not (udr.root / "catalog" / "merges" / "main.json").exists()
    assert conflicts(udr) == []
    assert rows(udr) == sorted(C_OURS)


def test_a_damaged_record_is_refused(udr, tmp_path):
    three_sides(udr, tmp_path, C_BASE, C_OURS, C_THEIRS)
    assert udr("merge", "dev", "--key", "t=id").code == 3
    p = udr.root / "catalog" / "merges" / "main.json"
    p.write_bytes(p.read_bytes().replace(b'"theirs":2', b'"theirs":1', 1))
    n = log_len(udr)
    r = udr("merge", "--continue")
    assert r.code != 0 and "merge record" in r.stderr, r
    assert log_len(udr) == n


def test_a_table_conflict_is_listed_and_resolved_by_side(udr, tmp_path):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    assert udr("merge", "dev").code == 3  # no key: table level
    c = conflicts(udr)
    assert len(c) == 1 and c[0]["key"] is None and json.loads(c[0]["theirs"])["version"] > 0
    r = udr("resolve", "t", "--key", "1", "--ours")
    assert r.code == 2 and "conflicts as a whole" in r.stderr, r
    udr.ok("resolve", "t", "--theirs")
    udr.ok("merge", "--continue")
    assert rows(udr) == sorted(THEIRS)


def test_a_float_zero_changing_sign_is_a_change(udr, tmp_path):
    """0.0 = -0.0 in SQL: compared without that equality, or theirs' change is lost."""
    three_sides(udr, tmp_path, [(1, "a", "0.0"), (2, "b", "1.5")], [(1, "a", "0.0"), (2, "B", "1.5")],
                [(1, "a", "-0.0"), (2, "b", "1.5")], header="id,a,x")
    m = merge_json(udr, "--key", "t=id")
    assert m["tables"][0]["rows"] == {"ours": 1, "theirs": 1, "same": 0, "cells": 0, "conflict": 0}
    assert udr.ok("sql", "SELECT signbit(x) FROM t WHERE id = 1", "--csv").out.split()[-1] == "true"


def test_a_duplicate_added_to_an_unchanged_key_is_refused(udr, tmp_path):
    """theirs keeps row 3 and adds another row with key 3: replacing ours' row 3
    by key would lose one of theirs' two rows."""
    three_sides(udr, tmp_path, BASE, OURS, THEIRS + [(3, "dup", 33)])
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", "t=id")
    assert r.code == 2 and "not unique" in r.stderr, r
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("dup", [(3, "z", 30), (3, "other", 30)])
def test_duplicates_on_a_key_nobody_changed(udr, tmp_path, dup):
    """the same duplicate in the three versions: kept as it is when the rows
    are identical (nothing to match), refused when they differ."""
    three_sides(udr, tmp_path, BASE + [dup], OURS + [dup], THEIRS + [dup])
    r = udr("merge", "dev", "--key", "t=id")
    if dup[1] == "z":
        assert r.code == 0, r
        assert rows(udr) == sorted(MERGED + [dup])
    else:
        assert r.code == 2 and "not unique" in r.stderr, r


# ---- the fast path (rows matched by their place in the store) against the slow one -----------------

SCENARIOS = {
    # name: (theirs' statements, ours' statements), on a 1000-row table written by SQL
    "disjoint updates": (["UPDATE t SET x = x + 1 WHERE id % 100 = 7"],
                         ["UPDATE t SET s = 'o' WHERE id % 100 = 13"]),
    "same update on both": (["UPDATE t SET s = 'same' WHERE id % 50 = 3"],
                            ["UPDATE t SET s = 'same' WHERE id % 50 = 3"]),
    "same row, other columns": (["UPDATE t SET x = -1 WHERE id % 100 = 5"],
                                ["UPDATE t SET s = 'o' WHERE id % 100 = 5"]),
    "same row, same column": (["UPDATE t SET s = 't' WHERE id % 100 = 5"],
                              ["UPDATE t SET s = 'o' WHERE id % 100 = 5"]),
    "delete vs update": (["DELETE FROM t WHERE id % 100 = 9"],
                         ["UPDATE t SET x = 0 WHERE id % 100 = 9"]),
    "deletes and inserts": (["DELETE FROM t WHERE id % 100 = 1", "INSERT INTO t VALUES (5001, 1, 0.5, 'n')"],
                            ["DELETE FROM t WHERE id % 100 = 2", "INSERT INTO t VALUES (5002, 2, 0.25, 'm')"]),
    "both insert one key": (["INSERT INTO t VALUES (6000, 1, 0.5, 'a')"], ["INSERT INTO t VALUES (6000, 1, 0.5, 'b')"]),
    "both delete the same": (["DELETE FROM t WHERE id = 10"], ["DELETE FROM t WHERE id = 10"]),
    "zero sign": (["DELETE FROM t WHERE id = 0", "INSERT INTO t VALUES (0, 0, '-0.0'::DOUBLE, 'n0')"],
                  ["UPDATE t SET s = 'o' WHERE id = 500"]),
    "an update that changes nothing": (["UPDATE t SET s = s WHERE id % 100 = 4", "UPDATE t SET g = -1 WHERE id = 3"],
                                      ["UPDATE t SET x = x + 2 WHERE id % 100 = 4"]),
}


def sql_sides(udr, theirs, ours, create=None):
    udr.ok("sql", create or "CREATE TABLE t AS SELECT range AS id, range % 7 AS g, CASE WHEN range = 0 THEN 0.0 "
           "ELSE range / 3.0 END AS x, 'n' || (range % 10) AS s FROM range(1000)")
    udr.ok("branch", "create", "base")
    for q in theirs:
        udr.ok("sql", q)
    udr.ok("branch", "create", "dev")
    udr.ok("branch", "reset", "main", "--to", "base")
    for q in ours:
        udr.ok("sql", q)


@pytest.mark.parametrize("strict", ["row", "cell"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fast_and_slow_paths_agree(udr, tmp_path, name, strict):
    import shutil
    from conftest import Udr
    sql_sides(udr, *SCENARIOS[name])
    slow = Udr(tmp_path / "slow")
    shutil.copytree(udr.root, slow.root, symlinks=True)
    args = ("merge", "dev", "--key", "t=id", "--strictness", "t=" + strict, "--json")
    fast_r, slow_r = udr(*args), slow(*args, env={"UDR_ROWMERGE_SLOW": "1"})
    assert fast_r.code == slow_r.code, (fast_r, slow_r)
    f, s = json.loads(fast_r.out), json.loads(slow_r.out)
    assert f["conflicts"] == s["conflicts"]
    assert f["tables"][0]["rows"]["conflict"] == s["tables"][0]["rows"]["conflict"], (f, s)
    assert f["tables"][0]["rows"]["cells"] == s["tables"][0]["rows"]["cells"], (f, s)
    assert rows(udr) == rows(slow)
    if fast_r.code == 3:
        strip = lambda c: [(x["key"], x["base"], x["ours"], x["theirs"]) for x in c]  # noqa: E731
        assert strip(conflicts(udr)) == strip(conflicts(slow))
    else:
        udr.ok("fsck")


@pytest.mark.parametrize("side", ["ours", "theirs", "base"])
def test_a_null_key_on_the_fast_path_is_refused(udr, tmp_path, side):
    stmt = "INSERT INTO t VALUES (NULL, 0, 0.0, 'null key')"
    ours = ["UPDATE t SET s = 'o' WHERE id = 5"] + ([stmt] if side == "ours" else [])
    theirs = ["UPDATE t SET s = 't' WHERE id = 6"] + ([stmt] if side == "theirs" else [])
    sql_sides(udr, theirs, ours, create=None if side != "base" else
              "CREATE TABLE t AS SELECT range AS id, 0 AS g, 0.0 AS x, 'n' AS s FROM range(1000) UNION ALL "
              "SELECT NULL, 0, 0.0, 'null key'")
    before = tree_snapshot(udr.root)
    for env in ({}, {"UDR_ROWMERGE_SLOW": "1"}):
        r = udr("merge", "dev", "--key", "t=id", env=env)
        assert r.code == 2 and "NULL or not unique" in r.stderr, (env, r)
    assert tree_snapshot(udr.root) == before


DUP = "INSERT INTO t SELECT * FROM t WHERE id = 3"
DUP_SCENARIOS = {
    # name: (the table has row 3 twice from the start, theirs', ours')
    "theirs adds an identical row": (False, [DUP], ["UPDATE t SET s = 'o' WHERE id = 5"]),
    "ours adds an identical row": (False, ["UPDATE t SET s = 't' WHERE id = 6"], [DUP]),
    "both add an identical row": (False, [DUP], ["BEGIN; %s; UPDATE t SET s = 'o' WHERE id = 5; COMMIT" % DUP]),
    "theirs makes two identical rows one": (
        True, ["BEGIN; DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (3, 3, 1.0, 'n3'); COMMIT"],
        ["UPDATE t SET s = 'o' WHERE id = 5"]),
}


@pytest.mark.parametrize("env", [{}, {"UDR_ROWMERGE_SLOW": "1"}], ids=["fast", "slow"])
@pytest.mark.parametrize("name", sorted(DUP_SCENARIOS))
def test_a_key_repeated_unequally_is_refused(udr, tmp_path, name, env):
    """A key with identical rows, repeated more often in one version than in
    another: the slow path joined the rows on the key, saw only equal pairs
    and merged with exit 0, dropping theirs' added row (or keeping two rows
    where theirs had made them one)."""
    twice, theirs, ours = DUP_SCENARIOS[name]
    sql_sides(udr, theirs, ours, create=None if not twice else
              "CREATE TABLE t AS SELECT range AS id, range % 7 AS g, CASE WHEN range = 0 THEN 0.0 ELSE range / 3.0 "
              "END AS x, 'n' || (range % 10) AS s FROM range(1000) UNION ALL SELECT 3, 3, 1.0, 'n3'")
    assert udr.ok("sql", "SELECT count(*) FROM t@base WHERE id = 3", "--csv").out.split()[-1] == ("2" if twice else "1")
    before = tree_snapshot(udr.root)
    r = udr("merge", "dev", "--key", "t=id", env=env)
    assert r.code == 2 and "not unique" in r.stderr, r
    assert tree_snapshot(udr.root) == before


def test_a_table_added_on_both_sides(udr, tmp_path):
    udr.ok("import", "other", csv(tmp_path, "o.csv", [(1, "a", 1)]))
    udr.ok("branch", "create", "dev")
    udr.ok("import", "u", csv(tmp_path, "d.csv", [(1, "same", 1), (2, "dev", 2)]), "--branch", "dev")
    udr.ok("import", "u", csv(tmp_path, "m.csv", [(1, "same", 1), (3, "main", 3)]))
    m = merge_json(udr, "--key", "u=id")
    assert m["conflicts"] == 0 and m["tables"][0]["rows"]["same"] == 1
    assert rows(udr, "u") == [(1, "same", 1), (2, "dev", 2), (3, "main", 3)]
    udr.ok("import", "u", csv(tmp_path, "d2.csv", [(1, "same", 1), (2, "dev", 2), (4, "x", 4)]), "--branch", "dev")
    udr.ok("import", "w", csv(tmp_path, "w1.csv", [(1, "m", 1)]))
    udr.ok("import", "w", csv(tmp_path, "w2.csv", [(1, "d", 1)]), "--branch", "dev")
    m = merge_json(udr, "--key", "w=id", code=3)
    assert [t["table"] for t in m["tables"] if t["conflict"]] == ["w"]


def test_conflicts_of_a_branch_with_a_slash(udr, tmp_path):
    udr.ok("import", "t", csv(tmp_path, "b.csv", BASE))
    udr.ok("branch", "create", "feature/x")
    udr.ok("branch", "create", "dev")
    udr.ok("import", "t", csv(tmp_path, "t.csv", [(1, "T", 10)] + BASE[1:]), "--branch", "dev")
    udr.ok("import", "t", csv(tmp_path, "o.csv", [(1, "O", 10)] + BASE[1:]), "--branch", "feature/x")
    assert udr("merge", "dev", "--into", "feature/x", "--key", "t=id").code == 3
    assert (udr.root / "catalog" / "merges" / "feature%2Fx.json").exists()
    assert conflicts(udr) == []
    c = conflicts(udr, "--into", "feature/x")
    assert len(c) == 1 and json.loads(c[0]["key"]) == {"id": 1}
    udr.ok("resolve", "t", "--key", "1", "--ours", "--into", "feature/x")
    udr.ok("merge", "--continue", "--into", "feature/x")
    assert rows(udr, "t@branch:feature/x")[0] == (1, "O", 10)


def test_the_key_of_an_import_is_recorded_and_used(udr, tmp_path):
    """import --key records udr.key on the table's first version; a merge of
    copies imported again on both sides finds it (on the base) without --key."""
    udr.ok("import", "t", csv(tmp_path, "b.csv", BASE), "--key", "id")
    assert json.loads(udr.ok("show", "t").out)["metadata"]["udr.key"] == '["id"]'
    udr.ok("branch", "create", "dev")
    udr.ok("import", "t", csv(tmp_path, "t.csv", THEIRS), "--branch", "dev")
    udr.ok("import", "t", csv(tmp_path, "o.csv", OURS), "--key", "id")
    m = merge_json(udr)
    assert m["conflicts"] == 0 and m["tables"][0]["rows"]["theirs"] == 3
    assert rows(udr) == MERGED


@pytest.mark.parametrize("args", [["branch", "create", "x", "--key", "t=id"], ["tag", "create", "v1", "--dry-run"],
                                  ["branch", "create", "y", "--continue"], ["merge", "dev", "--ours"],
                                  ["conflicts", "--theirs"], ["reflog", "main", "--strategy", "ours"]])
def test_options_of_other_commands_are_refused_not_ignored(udr, tmp_path, args):
    three_sides(udr, tmp_path, BASE, OURS, THEIRS)
    before = tree_snapshot(udr.root)
    r = udr(*args)
    assert r.code == 2 and "takes no --" in r.stderr, r
    assert tree_snapshot(udr.root) == before
