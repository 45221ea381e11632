"""udr log --graph: the commit graph as git log --graph --date-order draws
it (the expected drawings were made by git from the same history), over
all branches or one ref's history; ref records are not drawn.
"""
import re


def commit(udr, table, data, *extra):
    udr.ok("commit", table, "--next", udr.put(data), *extra)


def graph(udr, *args):
    """The graph columns of each line (the text after them removed)."""
    out = udr.ok("log", "--graph", *args).out.splitlines()
    return [re.sub(r" +\d+ .*$", "", line).rstrip() for line in out]


def test_branch_commits_on_both_sides_and_a_merge(udr):
    commit(udr, "t", b"a")                      # 1
    udr.ok("branch", "create", "dev")           # 2 (not drawn)
    commit(udr, "t", b"b", "--branch", "dev")   # 3
    commit(udr, "u", b"x")                      # 4
    udr.ok("merge", "dev")                      # 5: two parents
    commit(udr, "v", b"y")                      # 6
    out = udr.ok("log", "--graph").out.splitlines()
    assert out == ["* 6 (main) v: new -> 1",
                   "*   5 merge of commit 3 into main",
                   "|\\",
                   "* | 4 u: new -> 1",
                   "| * 3 (dev) t: 1 -> 2",
                   "|/",
                   "* 1 t: new -> 1"]
    assert graph(udr, "--branch", "dev") == ["*", "*"]
    assert udr.ok("log", "--graph", "--branch", "dev").out.split()[:2] == ["*", "3"]
    assert len(udr.ok("log", "--graph", "--limit", "2").out.splitlines()) == 3  # 2 commits, 1 line between


def test_three_branches_two_merges(udr):
    commit(udr, "t", b"a")
    udr.ok("branch", "create", "dev")
    commit(udr, "t", b"b", "--branch", "dev")
    commit(udr, "u", b"x")
    udr.ok("branch", "create", "feat", "--from", "dev")
    commit(udr, "f", b"1", "--branch", "feat")
    commit(udr, "t", b"c", "--branch", "dev")
    commit(udr, "u", b"y")
    udr.ok("merge", "dev")
    commit(udr, "f", b"2", "--branch", "feat")
    commit(udr, "v", b"z")
    udr.ok("merge", "feat")
    udr.ok("tag", "create", "v1")
    commit(udr, "t", b"d", "--branch", "dev")
    # git log --graph --date-order --all of the same history
    assert graph(udr) == ["*",
                          "| *",
                          "| |\\",
                          "| * |",
                          "| | *",
                          "| * |",
                          "| |\\ \\",
                          "| |/ /",
                          "|/| |",
                          "| * |",
                          "* | |",
                          "| | *",
                          "| |/",
                          "|/|",
                          "| *",
                          "* |",
                          "|/",
                          "*"]
    lines = udr.ok("log", "--graph").out.splitlines()
    assert lines[1].endswith("(main, tag: v1) merge of commit 10 into main"), lines
    assert graph(udr, "--branch", "feat") == ["*"] * 4
    seqs = [int(m.group(1)) for m in re.finditer(r"\*[ |]*(\d+)", udr.ok("log", "--graph", "--branch", "v1").out)]
    assert seqs == [12, 11, 10, 9, 8, 7, 6, 4, 3, 1]  # not dev's 13


def test_graph_bad_input(udr):
    commit(udr, "t", b"a")
    r = udr("log", "--graph", "--branch", "nosuch")
    assert r.code == 1 and "nosuch" in r.stderr, r
    for extra in (["--json"], ["--table", "t"], ["--reverse"], ["--since", "1"]):
        r = udr("log", "--graph", *extra)
        assert r.code == 2 and "--graph takes only" in r.stderr, (extra, r)


def test_graph_of_an_empty_store(udr):
    udr.ok("init")
    assert udr.ok("log", "--graph").out == ""
