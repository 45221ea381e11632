"""The stored retention policy of docs/GC.md 1.1 end to end: `udr retention
set/show/unset` (a `retention` record in the log, `@retention` in the global
state, catalog format 5), the rule each chain gets (pair over table over
branch over default), `udr gc` and `udr retention expire` applying it with
--keep-... replacing only its default, bad input refused with nothing
written, `udr log` and fsck.
"""
import json
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, commit_n, rec, tree_snapshot


def b3(data):
    out = subprocess.run(["b3sum", "--no-names", "-"], input=data, check=True, capture_output=True).stdout
    return out.decode().strip()


def reseal(path, edit):
    """Rewrite a sealed JSON file through edit(text) -> text, sealed again."""
    raw = path.read_bytes()
    i = raw.rindex(b',"check":"')
    body = edit(raw[:i].decode()).encode()
    path.write_bytes(body + b',"check":"' + b3(body).encode() + b'"}\n')


def plan(udr, *args):
    return json.loads(udr.ok("retention", "expire", "--dry-run", "--json", *args).out)


def show(udr):
    return json.loads(udr.ok("retention", "show", "--json").out)


def rule_of(udr, table, branch="main"):
    for r in show(udr)["rules"]:
        if r["table"] == table and r["branch"] == branch:
            return r["source"], r["rule"]
    raise AssertionError((table, branch))


def content(udr, table, v):
    """The bytes of table@v (its one chunk)."""
    chunks = json.loads(udr.ok("show", table, str(v)).out)["chunks"]
    return b"".join(udr.ok("get", h).stdout for h in chunks)


def head(udr):
    return json.loads(udr.ok("log", "--json").out)[0]["seq"]


def test_set_show_unset_and_the_record(udr):
    commit_n(udr, "t", 2)
    assert show(udr) == {"seq": 0, "policy": {}, "rules": [
        {"branch": "main", "table": "t", "source": "none", "rule": {}, "text": "keep all"}]}
    assert "no retention policy" in udr.ok("retention", "show").out
    r = udr.ok("retention", "set", "--keep-last", "5", "--keep-within", "90d", "--json")
    seq = json.loads(r.out)["seq"]
    assert seq == 3 and head(udr) == 3
    # the record: branch-less, no table change, the policy with sorted keys;
    # the global state names it; the catalog is format 5
    o = json.loads(rec(udr, 3).read_text())
    assert o["op"] == "retention" and o["branch"] == "" and o["changes"] == [] and o["parent"] == 2
    assert o["retention"] == {"default": {"keep_last": 5, "keep_within": "90d"}}
    assert o["gwindow"]["@retention"] == [3, 3]
    assert "ref" not in o and "ref_prev" not in o
    assert json.loads((udr.catalog / "config.json").read_text())["format"] == 5
    # a new process (reopen) sees it
    s = show(udr)
    assert s["seq"] == 3 and s["policy"] == {"default": {"keep_last": 5, "keep_within": "90d"}}
    assert s["rules"][0]["rule"] == {"keep_last": 5, "keep_within": "12w6d"}
    assert s["rules"][0]["source"] == "default" and s["rules"][0]["text"] == "keep_last=5,keep_within=12w6d"
    # per table, branch prefix, pair: each replaces only its own rule
    udr.ok("retention", "set", "--table", "t", "--keep-last", "2", "-m", "raw data")
    udr.ok("retention", "set", "--branch", "dev/*", "--keep-daily", "7")
    udr.ok("retention", "set", "--branch", "main", "--table", "t", "--keep-yearly", "3")
    assert show(udr)["policy"] == {"default": {"keep_last": 5, "keep_within": "90d"}, "tables": {"t": {"keep_last": 2}},
                                   "branches": {"dev/*": {"keep_daily": 7}},
                                   "pairs": {"main": {"t": {"keep_yearly": 3}}}}
    assert rule_of(udr, "t") == ("pair", {"keep_yearly": 3})
    # udr log shows each change (text and JSON), -m is the message
    log = udr.ok("log").out
    assert 'retention policy {"default":{"keep_last":5,"keep_within":"90d"},"tables":{"t":{"keep_last":2}}}' in log
    assert "raw data" in log
    j = json.loads(udr.ok("log", "--json").out)
    assert j[0]["op"] == "retention" and j[0]["retention"]["pairs"] == {"main": {"t": {"keep_yearly": 3}}}
    # unset: the pair, then a missing one (exit 1, nothing written), then all
    udr.ok("retention", "unset", "--branch", "main", "--table", "t")
    assert rule_of(udr, "t") == ("table", {"keep_last": 2})
    assert "pairs" not in show(udr)["policy"]
    n = head(udr)
    r = udr("retention", "unset", "--branch", "main", "--table", "t")
    assert r.code == 1 and "no pair rule to unset" in r.stderr and head(udr) == n
    udr.ok("retention", "unset", "--table", "t")
    udr.ok("retention", "unset")                         # the default
    assert show(udr)["policy"] == {"branches": {"dev/*": {"keep_daily": 7}}}
    udr.ok("retention", "unset", "--all")
    s = show(udr)
    assert s["policy"] == {} and s["seq"] == head(udr)
    assert "cleared" in udr.ok("retention", "show").out
    assert "retention policy cleared" in udr.ok("log").out
    udr.ok("fsck")


def test_set_from_file_and_stdin(udr, tmp_path):
    commit_n(udr, "t", 1)
    p = tmp_path / "policy.json"
    pol = {"default": {"keep_last": 30}, "tables": {"raw": {"keep_last": 3, "keep_within": "7d"}},
           "branches": {"main": {"keep_last": 100}}, "pairs": {"main": {"t": {"keep_last": 1000}}},
           "orphans": None, "undo": "0s"}
    p.write_text(json.dumps(pol))
    udr.ok("retention", "set", str(p))
    assert show(udr)["policy"] == pol
    udr.ok("retention", "set", "-", input=json.dumps({"default": {"keep_monthly": 12}}))
    assert show(udr)["policy"] == {"default": {"keep_monthly": 12}}
    # {} clears
    udr.ok("retention", "set", "-", input="{}")
    assert show(udr)["policy"] == {}


BAD = [
    ("not json", "not JSON"),
    ("[1]", "must be a JSON object"),
    ('{"default":{"keep_last":0}}', "keep_last must be an integer >= 1"),
    ('{"default":{"keep_last":-3}}', "keep_last"),
    ('{"default":{"keep_within":"5m"}}', "keep_within"),
    ('{"default":{"keep_within":"1d1d"}}', "keep_within"),
    ('{"default":{"keep_daily":0}}', "keep_daily"),
    ('{"default":{"keep_last":1,"keep_last":2}}', "not JSON"),
    ('{"default":{"keep_forever":1}}', "unknown key"),
    ('{"defaults":{"keep_last":1}}', "unknown key"),
    ('{"tables":{"a b":{"keep_last":1}}}', "not a table name"),
    ('{"branches":{"..":{"keep_last":1}}}', "branch"),
    ('{"grace":"24"}', "grace"),
    ('{"grace":86400}', "grace"),
    ('{"undo":"1d"}', "undo"),
    ('{"orphans":{"keep_last":1}}', "orphans"),
]


@pytest.mark.parametrize("text,why", BAD)
def test_bad_policy_refused_nothing_written(udr, text, why):
    commit_n(udr, "t", 2)
    udr.ok("retention", "set", "--keep-last", "9")
    before = tree_snapshot(udr.catalog)
    r = udr("retention", "set", "-", input=text)
    assert r.code == 2 and why in r.stderr, r
    assert tree_snapshot(udr.catalog) == before
    assert show(udr)["policy"] == {"default": {"keep_last": 9}}


@pytest.mark.parametrize("args", [
    ["--keep-last", "0"], ["--keep-within", "3m"], ["--keep-within", "1x"], ["--keep-daily", "0"],
    ["--keep-last", "2", "--keep-last", "3"], ["--table", "t"], [], ["--branch", "a..b", "--keep-last", "1"],
    ["--table", "bad name", "--keep-last", "1"], ["--all"], ["--keep-last", "1", "extra"], ["--dry-run", "--keep-last", "1"],
])
def test_bad_set_flags_nothing_written(udr, args):
    commit_n(udr, "t", 2)
    before = tree_snapshot(udr.root)
    r = udr("retention", "set", *args)
    assert r.code == 2, r
    assert tree_snapshot(udr.root) == before


def test_unset_bad_flags(udr):
    commit_n(udr, "t", 1)
    before = tree_snapshot(udr.root)
    for args in (["--all", "--table", "t"], ["--keep-last", "1"], ["x"]):
        assert udr("retention", "unset", *args).code == 2
    assert udr("retention", "show", "--table", "t").code == 2
    assert tree_snapshot(udr.root) == before


@pytest.mark.parametrize("args,code", [
    (["retention", "restore", "t@1"], 1),            # not expired
    (["retention", "restore", "nope@1"], 1),
    (["retention", "expire", "--keep-last", "99"], 0),  # expires nothing
    (["tag", "create", "v1", "commit:99"], 1),       # no such commit
    (["branch", "create", "dev", "--from", "commit:99"], 1),
])
def test_refused_first_ref_or_expiry_leaves_the_catalog_format(udr, args, code):
    """The first ref or expiry record raises the catalog's format (older
    udr versions then refuse it): a command that wrote no record raised it
    all the same (a helper's review: restore of a version not expired made
    a format-2 catalog format 4)."""
    commit_n(udr, "t", 2)
    before = tree_snapshot(udr.catalog)
    r = udr(*args)
    assert r.code == code, r
    assert json.loads((udr.catalog / "config.json").read_text().split(',"check"')[0] + "}")["format"] == 2
    assert tree_snapshot(udr.catalog) == before


def test_empty_store_refused(udr):
    r = udr("retention", "set", "--keep-last", "1")
    assert r.code == 1 and "no commits" in r.stderr
    assert show(udr) == {"seq": 0, "policy": {}, "rules": []}


def two_tables(udr):
    commit_n(udr, "t", 6)                                # commits 1-6
    commit_n(udr, "u", 6)                                # commits 7-12


def test_no_policy_expires_nothing(udr):
    two_tables(udr)
    p = plan(udr)
    assert p["expired"]["versions"] == 0 and p["policy"] == 0 and p["rule"] == "no policy"
    n = head(udr)
    r = udr.ok("retention", "expire")
    assert "nothing expired" in r.out and head(udr) == n
    r = json.loads(udr.ok("gc", "--json").out)
    assert "retention" not in r and head(udr) == n
    assert udr.ok("retention", "expired").out == ""
    # a cleared policy: the same
    udr.ok("retention", "set", "--keep-last", "1")
    udr.ok("retention", "unset", "--all")
    n = head(udr)
    assert plan(udr)["expired"]["versions"] == 0
    udr.ok("gc")
    assert head(udr) == n and udr.ok("retention", "expired").out == ""


def test_table_rule_beats_default(udr):
    two_tables(udr)
    udr.ok("retention", "set", "--keep-last", "2")
    udr.ok("retention", "set", "--table", "u", "--keep-last", "4")
    p = plan(udr)
    assert p["policy"] == head(udr) and p["rule"] == "policy %d" % head(udr)
    assert p["expired"]["ranges"] == {"t": [[1, 4]], "u": [[1, 2]]}
    assert rule_of(udr, "u") == ("table", {"keep_last": 4})
    assert rule_of(udr, "t") == ("default", {"keep_last": 2})


def test_branch_rule_beats_default_and_pair_beats_table(udr):
    two_tables(udr)
    udr.ok("branch", "create", "dev/x", "--from", "commit:12")
    for i in range(3):                                   # dev/x: t@7, t@8, t@9 (then u@7..9)
        for tb in ("t", "u"):
            h = udr.put(("dev %s %d\n" % (tb, i)).encode())
            udr.ok("commit", tb, "--next", h, "--branch", "dev/x")
    udr.ok("retention", "set", "--keep-last", "1")
    udr.ok("retention", "set", "--branch", "dev/*", "--keep-last", "3")
    # main's chains keep 1 (t@6, u@6); dev/x's keep 3: t@9,8,7, u@9,8,7;
    # 1-5 expire on both (6 is dev/x's fork point and a merge base)
    assert rule_of(udr, "t", "dev/x") == ("branch", {"keep_last": 3})
    assert rule_of(udr, "t", "main") == ("default", {"keep_last": 1})
    p = plan(udr)
    assert p["expired"]["ranges"] == {"t": [[1, 5]], "u": [[1, 5]]}
    udr.ok("retention", "set", "--branch", "dev/*", "--keep-last", "1")
    assert plan(udr)["expired"]["ranges"] == {"t": [[1, 5], [7, 8]], "u": [[1, 5], [7, 8]]}
    # a table rule beats the branch rule; a pair rule beats the table rule
    udr.ok("retention", "set", "--table", "t", "--keep-last", "2")
    assert rule_of(udr, "t", "dev/x") == ("table", {"keep_last": 2})
    assert plan(udr)["expired"]["ranges"] == {"t": [[1, 4], [7, 7]], "u": [[1, 5], [7, 8]]}
    udr.ok("retention", "set", "--branch", "dev/x", "--table", "t", "--keep-last", "3")
    assert rule_of(udr, "t", "dev/x") == ("pair", {"keep_last": 3})
    assert rule_of(udr, "t", "main") == ("table", {"keep_last": 2})
    assert plan(udr)["expired"]["ranges"] == {"t": [[1, 4]], "u": [[1, 5], [7, 8]]}
    # the pair is written with the branch key as given
    assert show(udr)["policy"]["pairs"] == {"dev/x": {"t": {"keep_last": 3}}}


def test_keep_flags_replace_only_the_default(udr):
    two_tables(udr)
    udr.ok("retention", "set", "--keep-last", "5")
    udr.ok("retention", "set", "--table", "u", "--keep-last", "4")
    seq = head(udr)
    # --keep-last 1 replaces the default (t) but not u's table rule
    p = plan(udr, "--keep-last", "1")
    assert p["rule"] == "policy %d, default keep_last=1" % seq
    assert p["expired"]["ranges"] == {"t": [[1, 5]], "u": [[1, 2]]}
    # the stored policy is unchanged by it
    assert show(udr)["policy"] == {"default": {"keep_last": 5}, "tables": {"u": {"keep_last": 4}}}
    # gc --keep-last 1: the expire record names the policy and the rule
    r = json.loads(udr.ok("gc", "--keep-last", "1", "--json").out)
    x = r["retention"]
    assert x["expired"]["ranges"] == {"t": [[1, 5]], "u": [[1, 2]]}
    eseq = x["expired"]["records"][0]
    o = json.loads(rec(udr, eseq).read_text())
    assert o["op"] == "expire" and o["expire"]["policy"] == seq
    assert o["expire"]["rule"] == "policy %d, default keep_last=1" % seq
    assert udr("show", "t", "5").code == 6 and udr("show", "u", "2").code == 6
    assert udr("show", "u", "3").code == 0 and udr("show", "t", "6").code == 0
    udr.ok("fsck")


def test_gc_applies_the_stored_policy(udr):
    two_tables(udr)
    udr.ok("retention", "set", "--keep-last", "3")
    udr.ok("retention", "set", "--table", "u", "--keep-last", "5")
    # dry run: what would expire, nothing written
    before = tree_snapshot(udr.catalog)
    r = udr.ok("gc", "--dry-run")
    assert "would expire 4 versions by policy" in r.out
    assert tree_snapshot(udr.catalog) == before
    r = json.loads(udr.ok("gc", "--json").out)
    assert r["retention"]["expired"]["ranges"] == {"t": [[1, 3]], "u": [[1, 1]]}
    assert r["removed"]["objects"] > 0
    for v in (1, 2, 3):
        assert udr("show", "t", str(v)).code == 6
    assert udr("show", "u", "1").code == 6
    for v in (4, 5, 6):
        assert content(udr, "t", v) == b"t-x-%d\n" % (v - 1)
    for v in range(2, 7):
        assert content(udr, "u", v) == b"u-x-%d\n" % (v - 1)
    # a second run expires nothing more
    n = head(udr)
    udr.ok("gc")
    assert head(udr) == n
    udr.ok("fsck")


def test_retention_expire_applies_the_policy(udr):
    two_tables(udr)
    udr.ok("retention", "set", "--keep-last", "4")
    r = udr.ok("retention", "expire")
    assert "expired 4 version(s) of 2 table(s)" in r.out and "policy" in r.out
    assert udr("show", "t", "2").code == 6 and udr("show", "t", "3").code == 0
    # --table: only that table
    udr.ok("retention", "set", "--keep-last", "1")
    udr.ok("retention", "expire", "--table", "u")
    assert udr("show", "u", "5").code == 6 and udr("show", "t", "5").code == 0
    udr.ok("fsck")


def test_fsck_flags_damaged_retention_records(udr):
    commit_n(udr, "t", 3)
    udr.ok("retention", "set", "--keep-last", "2")      # commit 4, the last
    udr.ok("fsck")
    good = rec(udr, 4).read_bytes()
    # a resealed record with a rule this version refuses: the seal passes, fsck not
    reseal(rec(udr, 4), lambda t: t.replace('"keep_last":2', '"keep_last":0'))
    r = udr("fsck")
    assert r.code == 4 and "its retention policy is not valid" in r.out + r.stderr, r
    # gc refuses to run on a policy it cannot read (never "no policy")
    n = udr.ok("log", "--json").out
    r = udr("gc")
    assert r.code == 4 and "retention record 4" in r.stderr, r
    assert udr("retention", "expire").code == 4
    assert udr.ok("log", "--json").out == n
    reseal(rec(udr, 4), lambda t: t.replace('"keep_last":0', '"keep_last":2,"keep_forever":1'))
    assert udr("fsck").code == 4
    rec(udr, 4).write_bytes(good)
    udr.ok("fsck")
    # "@retention" missing from its global window: the log disagrees
    reseal(rec(udr, 4), lambda t: t.replace('"@retention":[4,4]', ''))
    r = udr("fsck")
    assert r.code == 4, r
    rec(udr, 4).write_bytes(good)
    # a plain flipped byte: the seal
    raw = bytearray(good)
    raw[raw.index(b'"keep_last":2') + 12] ^= 0x01
    rec(udr, 4).write_bytes(bytes(raw))
    assert udr("fsck").code == 4
    rec(udr, 4).write_bytes(good)
    udr.ok("fsck")


def test_replaced_retention_record_is_not_applied(udr, tmp_path):
    """A retention record replaced by another store's valid one of the same
    number and history (its own seal and prev pass) and another policy: the
    next record's prev tells it is not the one the log chains.  gc applied it
    and swept versions the store's own policy keeps (exit 0); now gc and
    `retention expire` refuse (exit 4 naming the record) and nothing is
    written.  Found by tests/stress/test_sweep_gc.py (policy-record replace)."""
    import shutil
    commit_n(udr, "t", 4)
    other = type(udr)(tmp_path / "other")
    shutil.copytree(udr.root, other.root, symlinks=True)
    udr.ok("retention", "set", "--keep-last", "3")      # commit 5
    other.ok("retention", "set", "--keep-last", "1")    # commit 5 of the copy
    commit_n(udr, "t", 1, tag="y")                       # commit 6: not the head
    good = rec(udr, 5).read_bytes()
    rec(udr, 5).write_bytes(rec(other, 5).read_bytes())
    n = udr.ok("log", "--json").out
    for args in (["gc"], ["gc", "--dry-run"], ["retention", "expire"]):
        r = udr(*args)
        assert r.code == 4 and "retention record 5" in r.stderr and "00000000000000000005.json" in r.stderr, r
    assert udr.ok("log", "--json").out == n
    for v in (2, 3, 4, 5):
        assert udr("show", "t", str(v)).code == 0
    assert udr("fsck").code == 4
    rec(udr, 5).write_bytes(good)
    r = json.loads(udr.ok("gc", "--json").out)
    assert r["retention"]["expired"]["ranges"] == {"t": [[1, 2]]}, r
    udr.ok("fsck")


def test_gc_takes_the_policy_grace(udr):
    commit_n(udr, "t", 1)
    h = udr.put(b"never committed\n")
    udr.ok("retention", "set", "-", input='{"grace":"0s","default":{"keep_last":5}}')
    assert show(udr)["policy"]["grace"] == "0s"
    udr.ok("gc", "--grace", "1h")                        # the option wins
    assert udr("get", h).code == 0
    udr.ok("retention", "unset", "--all")
    udr.ok("gc")                                         # the store's 24 h
    assert udr("get", h).code == 0
    udr.ok("retention", "set", "-", input='{"grace":"0s"}')
    r = json.loads(udr.ok("gc", "--json").out)          # the policy's 0s
    assert r["removed"]["objects"] >= 1
    assert udr("get", h).code != 0
    assert udr.ok("get", json.loads(udr.ok("show", "t").out)["chunks"][0]).stdout == b"t-x-0\n"
    udr.ok("fsck")


@pytest.mark.skipif(not FAULT_INJECTION, reason="needs a build with UDR_FAULT_INJECTION (UDR_PAUSE)")
def test_concurrent_edit_is_refused_not_lost(udr, tmp_path):
    commit_n(udr, "t", 2)
    udr.ok("retention", "set", "--keep-last", "5")
    pdir = tmp_path / "pause"
    pdir.mkdir()
    env = base_env({"UDR_PAUSE": "retention-set:%s" % pdir})
    # an edit that read the policy (commit 3) pauses before linking
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "retention", "set", "--table", "t", "--keep-last",
                          "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() + 30
    while not (pdir / "retention-set.reached").exists():
        assert p.poll() is None and time.monotonic() < t, p.communicate()
        time.sleep(0.01)
    udr.ok("retention", "set", "--keep-last", "9")       # commit 4
    (pdir / "retention-set.go").touch()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3 and b"retention policy changed (commit 4)" in err, (out, err)
    assert show(udr)["policy"] == {"default": {"keep_last": 9}} and head(udr) == 4
    # run again: it reads commit 4 and keeps its default
    udr.ok("retention", "set", "--table", "t", "--keep-last", "2")
    assert show(udr)["policy"] == {"default": {"keep_last": 9}, "tables": {"t": {"keep_last": 2}}}
    udr.ok("fsck")


def test_fsck_checks_the_policy_an_expire_record_names(udr):
    commit_n(udr, "t", 4)
    udr.ok("retention", "set", "--keep-last", "2")      # commit 5
    udr.ok("retention", "expire")                        # commit 6, the last
    o = json.loads(rec(udr, 6).read_text())
    assert o["op"] == "expire" and o["expire"]["policy"] == 5 and o["expire"]["rule"] == "policy 5"
    udr.ok("fsck")
    good = rec(udr, 6).read_bytes()
    reseal(rec(udr, 6), lambda t: t.replace('"policy":5', '"policy":4'))
    r = udr("fsck")
    assert r.code == 4 and "not a retention record" in r.out + r.stderr, r
    rec(udr, 6).write_bytes(good)
    udr.ok("fsck")


def test_help_and_completion(udr, run):
    r = run("retention", "--help")
    assert r.code == 0 and "udr retention set FILE|-" in r.out and "unset" in r.out
    r = udr("retention", "frob")
    assert r.code == 2 and "show, set, unset" in r.stderr
