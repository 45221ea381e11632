"""udr log, watch, show --at, commit --spec: the changelog and multi-table commits."""
import json
import os
import selectors
import signal
import subprocess
import datetime
import time

import pytest

from conftest import UDR_BIN, base_env, tree_snapshot


def log(udr, *args):
    return json.loads(udr.ok("log", "--json", *args).out)


def seqs(udr, *args):
    return [c["seq"] for c in log(udr, *args)]


@pytest.fixture
def history(udr):
    """Commits 1..5: a, b, a, c, b (table names), with messages m1..m5."""
    for i, t in enumerate(["a", "b", "a", "c", "b"], 1):
        udr.ok("commit", t, "--next", "--allow-empty", "-m", "m%d" % i)
    return udr


# ---- log ----

def test_log_empty(udr):
    assert udr.ok("log").out == ""
    assert log(udr) == []


def test_log_fields_and_order(history):
    udr = history
    commits = log(udr)
    assert [c["seq"] for c in commits] == [5, 4, 3, 2, 1]  # newest first
    c = commits[-1]
    assert list(c) == ["seq", "parent", "time", "time_ms", "branch", "author", "message",
                       "changes"]
    assert (c["seq"], c["parent"], c["branch"], c["message"]) == (1, 0, "main", "m1")
    assert c["changes"][0]["table"] == "a"
    assert (c["changes"][0]["old"], c["changes"][0]["new"]) == (0, 1)
    assert len(c["changes"][0]["digest"]) == 64
    assert commits[2]["changes"][0]["old"] == 1 and commits[2]["changes"][0]["new"] == 2
    times = [c["time_ms"] for c in commits]
    assert times == sorted(times, reverse=True)
    assert seqs(udr, "--reverse") == [1, 2, 3, 4, 5]


def test_log_unknown_table(history):
    """Issue 14: `log --table nosuch` printed nothing and exited 0; it is
    not found, as for `udr show nosuch`."""
    udr = history
    r = udr("log", "--table", "nosuch")
    assert r.code == 1, r
    assert r.stderr == "udr: table nosuch not found\n" and r.stdout == b""
    assert udr("show", "nosuch").code == r.code
    r = udr("log", "--table", "a", "--table", "nosuch", "--json")
    assert r.code == 1 and "nosuch" in r.stderr


def test_log_text(udr):
    udr.ok("commit", "sales", "--next", "--allow-empty", "-m", "first\nsecond line")
    udr.ok("commit", "sales", "--next", "--allow-empty")
    out = udr.ok("log", env={"UDR_AUTHOR": "alice"}).out
    lines = out.splitlines()
    assert lines[0].startswith("commit 2 (main) ")
    assert lines[1] == "  sales: 1 -> 2"
    assert lines[2].startswith("commit 1 (main) ")
    assert lines[3:] == ["    first", "    second line", "  sales: new -> 1"]


def test_log_author(udr):
    udr.ok("commit", "t", "--next", "--allow-empty", env={"UDR_AUTHOR": "alice"})
    assert log(udr)[0]["author"] == "alice"
    assert " alice" in udr.ok("log").out


def test_log_author_cannot_forge_lines(udr):
    """UDR_AUTHOR was stored and printed as it was: a newline in it printed
    a commit that does not exist (a helper's review)."""
    forged = "mallory\ncommit 998 (main) 2026-01-01T00:00:00.000Z root\n  t: 1 -> 998"
    udr.ok("commit", "t", "--next", "--allow-empty", env={"UDR_AUTHOR": forged})
    assert log(udr)[0]["author"] == forged.replace("\n", "?")
    out = udr.ok("log").out
    assert "998" in out and len(out.splitlines()) == 2, out
    assert not any(line.startswith("commit 998") for line in out.splitlines())
    # a long author is cut between characters, never inside one
    udr.ok("commit", "t", "--next", "--allow-empty", env={"UDR_AUTHOR": "a" + "\u00e9" * 200})
    author = log(udr)[0]["author"]
    assert author == "a" + "\u00e9" * 127, len(author.encode())


@pytest.mark.parametrize("cmd", ["log", "watch"])
def test_log_branch_name_that_no_branch_can_have(udr, cmd):
    """log --branch '' (or 'a b', 'x..y') listed nothing with exit 0, as if
    the branch had no commits (a helper's review)."""
    udr.ok("commit", "t", "--next", "--allow-empty")
    for bad in ("", "a b", "x..y", "-x"):
        r = udr(cmd, "--branch", bad)
        assert r.code == 2 and "invalid branch or tag name" in r.stderr, (bad, r)


def test_log_filters(history):
    udr = history
    assert seqs(udr, "--table", "a") == [3, 1]
    assert seqs(udr, "--table", "a", "--table", "c") == [4, 3, 1]
    assert udr("log", "--table", "zzz").code == 1  # not found, as for show
    assert seqs(udr, "--since", "3") == [5, 4]
    assert seqs(udr, "--since", "0") == [5, 4, 3, 2, 1]
    assert seqs(udr, "--since", "5") == []
    assert seqs(udr, "--limit", "2") == [5, 4]
    assert seqs(udr, "--limit", "2", "--reverse") == [1, 2]
    assert seqs(udr, "--since", "1", "--table", "b", "--reverse", "--limit", "1") == [2]
    assert seqs(udr, "--branch", "main") == [5, 4, 3, 2, 1]
    assert udr("log", "--branch", "other").code == 1  # never existed: not found, as for --table


def test_log_since_time(history):
    udr = history
    commits = log(udr, "--reverse")
    t3 = commits[2]["time"]
    got = seqs(udr, "--since-time", t3, "--reverse")
    # commits at or after commit 3's time (ms resolution: ties may add earlier ones)
    assert got[-3:] == [3, 4, 5]
    assert all(c["time_ms"] >= commits[2]["time_ms"] for c in log(udr, "--since-time", t3))
    assert seqs(udr, "--since-time", "2000-01-01") == [5, 4, 3, 2, 1]
    assert seqs(udr, "--since-time", "2999-01-01T00:00:00Z") == []
    # the same instant with a -07:00 offset
    t3 = _at_offset(commits[2]["time_ms"], -7)
    assert seqs(udr, "--since-time", t3, "--reverse")[-3:] == [3, 4, 5]


@pytest.mark.parametrize("args", [
    ["--since", "x"], ["--since", "-1"], ["--limit", "0"], ["--limit", "two"],
    ["--since-time", "yesterday"], ["--since-time", "2026-13-01"], ["--table", "a/b"],
])
def test_log_bad_options(history, args):
    r = history("log", *args)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ")
    assert args[1] in r.stderr


# ---- show --at ----

def two_versions(udr):
    """Versions 1 ("one") and 2 ("two") of t; a time in ms between them."""
    udr.ok("commit", "t", "--next", "--allow-empty", "-m", "one")
    time.sleep(0.05)
    mid = log(udr)[0]["time_ms"] + 20
    time.sleep(0.05)
    udr.ok("commit", "t", "--next", "--allow-empty", "-m", "two")
    return mid


def test_show_at(udr):
    mid = two_versions(udr)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mid // 1000)) + ".%03dZ" % (mid % 1000)
    v = json.loads(udr.ok("show", "t", "--at", iso).out)
    assert (v["version"], v["message"]) == (1, "one")
    v = json.loads(udr.ok("show", "--at", "2999-01-01T00:00:00Z", "t").out)
    assert (v["version"], v["message"]) == (2, "two")
    first = log(udr, "--reverse")[0]["time"]
    assert json.loads(udr.ok("show", "t", "--at", first).out)["version"] == 1


def test_show_at_before_first_commit(udr):
    udr.ok("commit", "t", "--next", "--allow-empty")
    r = udr("show", "t", "--at", "2000-01-01T00:00:00Z")
    assert r.code == 1, r
    assert r.stdout == b""
    assert r.stderr.startswith("udr: ") and "t" in r.stderr
    r = udr("show", "ghost", "--at", "2999-01-01")
    assert r.code == 1, r


def _at_offset(ms, hours):
    """ms as an RFC 3339 time in a fixed UTC offset of hours (e.g. +14:00)."""
    tz = datetime.timezone(datetime.timedelta(hours=hours))
    return datetime.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def test_show_at_offsets_cross_midnight(udr):
    """+hh:mm and -hh:mm offsets are applied; the local date may be another day."""
    mid = two_versions(udr)
    utc_date = time.strftime("%Y-%m-%d", time.gmtime(mid // 1000))
    texts = [_at_offset(mid, 14), _at_offset(mid, -12), _at_offset(mid, 5.5)]
    # +14:00 or -12:00 always names another calendar day than UTC
    assert any(not t.startswith(utc_date) for t in texts), texts
    for t in texts:
        assert t[-6] in "+-", t
        v = json.loads(udr.ok("show", "t", "--at", t).out)
        assert (v["version"], v["message"]) == (1, "one"), t
    # the same wall-clock text without its offset is another instant
    assert json.loads(udr.ok("show", "t", "--at", texts[0][:-6]).out)["version"] == 2
    # compact offset and a space instead of T (as udr_log prints times)
    compact = texts[1][:-3] + texts[1][-2:]
    assert json.loads(udr.ok("show", "t", "--at", compact).out)["version"] == 1
    spaced = texts[1].replace("T", " ")
    assert json.loads(udr.ok("show", "t", "--at", spaced).out)["version"] == 1


def test_date_means_end_of_day(udr):
    """A bare date is "as of the end of that day" (UTC): today works."""
    udr.ok("commit", "t", "--next", "--allow-empty", "-m", "one")
    udr.ok("commit", "t", "--next", "--allow-empty", "-m", "two")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    if log(udr)[0]["time"][:10] != today:  # midnight passed during the test
        today = log(udr)[0]["time"][:10]
    v = json.loads(udr.ok("show", "t", "--at", today).out)
    assert (v["version"], v["message"]) == (2, "two")
    yesterday = (datetime.date.fromisoformat(today) - datetime.timedelta(days=1)).isoformat()
    assert udr("show", "t", "--at", yesterday).code == 1
    # --since-time DATE: commits from the start of that day
    assert seqs(udr, "--since-time", today) == [2, 1]
    tomorrow = (datetime.date.fromisoformat(today) + datetime.timedelta(days=1)).isoformat()
    assert seqs(udr, "--since-time", tomorrow) == []


@pytest.mark.parametrize("bad", [
    "yesterday", "2026-11-01T25:00:00Z", "", "2026-13-01",
    "2026-02-30T00:00:00Z", "2025-02-29", "2026-04-31T00:00:00Z",
    "2026-11-01T12:00:00+25:00", "2026-11-01+01:00", "2026-11-01T12:00:00+1",
])
def test_show_at_bad_time(udr, bad):
    udr.ok("commit", "t", "--next", "--allow-empty")
    r = udr("show", "t", "--at", bad)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ")
    assert "'%s'" % bad in r.stderr or '"%s"' % bad in r.stderr, r.stderr


# ---- watch ----

class Watch:
    """A `udr watch` process whose stdout lines can be awaited."""

    def __init__(self, udr, *args):
        self.proc = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "watch", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=base_env())
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def line(self, timeout):
        """The next line, or None after timeout seconds."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def event(self, timeout=5):
        line = self.line(timeout)
        return None if line is None else json.loads(line)

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=5)
        finally:
            self.proc.kill()
            self.sel.close()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code


@pytest.fixture
def watches():
    started = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.stop(signal.SIGKILL)


def test_watch_sees_commit_of_other_process(udr, watches):
    udr.ok("commit", "t", "--next", "--allow-empty")
    w = Watch(udr, "--json", "--since", "1")
    watches.append(w)
    time.sleep(0.3)  # let it reach its wait
    assert w.line(0.2) is None  # nothing new yet
    udr.ok("commit", "t", "--next", "--allow-empty", "-m", "live")
    done = time.monotonic()
    ev = w.event(timeout=2.0)
    latency = time.monotonic() - done
    print("watch latency after the commit process exited: %.1f ms" % (latency * 1000))
    assert ev is not None, "watch printed nothing within 2 s"
    assert (ev["seq"], ev["message"]) == (2, "live")
    assert ev["changes"][0]["table"] == "t" and ev["changes"][0]["new"] == 2
    assert w.stop() == 0


def test_watch_waits_for_a_branch_yet_to_be_made(history, watches):
    # log --branch of a branch that never existed is an error (a typo
    # printed nothing, exit 0); watch --branch waits for it to be made
    w = Watch(history, "--json", "--since", "0", "--branch", "feat")
    watches.append(w)
    time.sleep(0.3)
    assert w.line(0.2) is None and w.proc.poll() is None
    history.ok("branch", "create", "feat")
    ev = w.event(timeout=5.0)
    assert ev is not None and ev["branch"] == "feat"
    assert w.stop() == 0


def test_watch_replays_since(history, watches):
    w = Watch(history, "--json", "--since", "2")
    watches.append(w)
    assert [w.event()["seq"] for _ in range(3)] == [3, 4, 5]  # oldest first
    history.ok("commit", "z", "--next", "--allow-empty")
    assert w.event()["seq"] == 6
    assert w.stop(signal.SIGTERM) == 0


def test_watch_default_starts_at_head(history, watches):
    w = Watch(history, "--json")
    watches.append(w)
    time.sleep(0.5)
    history.ok("commit", "z", "--next", "--allow-empty")
    ev = w.event()
    assert ev is not None and ev["seq"] == 6
    assert w.stop() == 0


def test_watch_table_filter_and_text(history, watches):
    w = Watch(history, "--since", "0", "--table", "c")
    watches.append(w)
    assert w.line(5).startswith("commit 4 (main) ")
    assert w.line(5) == "    m4"
    assert w.line(5) == "  c: new -> 1"
    history.ok("commit", "a", "--next", "--allow-empty")
    history.ok("commit", "c", "--next", "--allow-empty", "-m", "c2")
    assert w.line(5).startswith("commit 7 (main) ")
    assert w.stop() == 0


def test_watch_spec_commit_is_one_event(udr, watches, tmp_path):
    w = Watch(udr, "--json", "--since", "0")
    watches.append(w)
    spec = {"message": "both", "tables": [{"table": "x", "allow_empty": True}, {"table": "y", "allow_empty": True}]}
    udr.ok("commit", "--spec", "-", input=json.dumps(spec))
    ev = w.event()
    assert ev["message"] == "both"
    assert [c["table"] for c in ev["changes"]] == ["x", "y"]
    assert w.line(0.5) is None
    assert w.stop() == 0


def test_watch_missing_store(run, tmp_path):
    r = run("--store", tmp_path / "none", "watch")
    assert r.code == 1, r
    assert "not a udr store" in r.stderr


# ---- commit --spec ----

def spec_commit(udr, spec, **kw):
    return udr("commit", "--spec", "-", input=json.dumps(spec), **kw)


def test_spec_commits_all_tables_at_once(udr, tmp_path):
    a, b = udr.put(b"chunk a"), udr.put(b"chunk b")
    udr.ok("commit", "orders", "--next", a)
    f = tmp_path / "data.csv"
    f.write_bytes(b"id,v\n1,2\n")
    spec = {"message": "nightly", "isolation": "serializable", "tables": [
        {"table": "orders", "chunks": [b, a], "metadata": {"src": "erp"}},
        {"table": "customers", "chunks": [a], "files": [str(f)], "message": "own"},
        {"table": "empty", "allow_empty": True},
    ]}
    r = spec_commit(udr, spec)
    assert r.code == 0, r
    assert r.out == "commit 2\norders@2\ncustomers@1\nempty@1\n"
    commits = log(udr)
    assert len(commits) == 2
    c = commits[0]
    assert (c["seq"], c["message"]) == (2, "nightly")
    assert [(x["table"], x["old"], x["new"]) for x in c["changes"]] == \
        [("orders", 1, 2), ("customers", 0, 1), ("empty", 0, 1)]
    o = json.loads(udr.ok("show", "orders").out)
    assert (o["chunks"], o["metadata"], o["message"], o["commit"]) == \
        ([b, a], {"src": "erp"}, "nightly", 2)
    cu = json.loads(udr.ok("show", "customers").out)
    assert cu["chunks"] == [a, udr.ok("hash", f).out.strip()]
    assert cu["message"] == "own"
    assert udr.ok("get", cu["chunks"][1]).stdout == b"id,v\n1,2\n"
    assert json.loads(udr.ok("show", "empty").out)["chunks"] == []


def test_spec_from_file(udr, tmp_path):
    p = tmp_path / "spec.json"
    p.write_text(json.dumps({"tables": [{"table": "t", "chunks": [udr.put(b"x")]}]}))
    assert udr.ok("commit", "--spec", p).out == "commit 1\nt@1\n"


def test_spec_missing_chunk_commits_nothing(udr, tmp_path):
    a = udr.put(b"present")
    missing = "ef" * 32
    f = tmp_path / "f"
    f.write_bytes(os.urandom(1000))
    snap = tree_snapshot(udr.root)
    spec = {"tables": [{"table": "ok", "chunks": [a]},
                       {"table": "bad", "chunks": [a, missing], "files": [str(f)]}]}
    r = spec_commit(udr, spec)
    assert r.code == 1, r
    assert missing in r.stderr
    assert r.stdout == b""
    assert log(udr) == []
    assert udr.ok("tables").out == ""
    assert tree_snapshot(udr.root) == snap  # not even the file was stored


@pytest.mark.parametrize("spec, needle", [
    ({}, "tables"),
    ({"tables": []}, "tables"),
    ({"tables": {}}, "tables"),
    ([], "object"),
    ({"tables": [{"chunks": []}]}, "table"),
    ({"tables": [{"table": "a/b"}]}, "a/b"),
    ({"tables": [{"table": "t", "chunks": ["xyz"]}]}, "chunks[0]"),
    ({"tables": [{"table": "t", "chunks": "abc"}]}, "chunks"),
    ({"tables": [{"table": "t", "metadata": {"k": 1}}]}, "metadata"),
    ({"tables": [{"table": "t", "metadata": {"": "v"}}]}, "metadata"),
    ({"tables": [{"table": "t", "message": 5}]}, "message"),
    ({"tables": [{"table": "t", "version": 0}]}, "version"),
    ({"tables": [{"table": "t"}, {"table": "t"}]}, "twice"),
    ({"tables": [{"table": "t", "tabel": "x"}]}, "tabel"),
    ({"tables": [{"table": "t"}], "isolation": "chaos"}, "isolation"),
    ({"tables": [{"table": "t"}], "mesage": "typo"}, "mesage"),
])
def test_spec_invalid(udr, spec, needle):
    snap = tree_snapshot(udr.root)
    r = spec_commit(udr, spec)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ") and needle in r.stderr, r.stderr
    assert r.stdout == b""
    assert tree_snapshot(udr.root) == snap


@pytest.mark.parametrize("text", ["", "{", '{"tables": [}', '{"tables": [], "tables": []}'])
def test_spec_not_json(udr, text):
    r = udr("commit", "--spec", "-", input=text)
    assert r.code == 2, r
    assert "invalid spec" in r.stderr
    assert log(udr) == []


def test_spec_missing_file(udr, tmp_path):
    r = udr("commit", "--spec", tmp_path / "nope.json")
    assert r.code == 1, r
    assert "nope.json" in r.stderr
    r = spec_commit(udr, {"tables": [{"table": "t", "files": [str(tmp_path / "gone")]}]})
    assert r.code == 1, r
    assert "gone" in r.stderr
    assert log(udr) == []


def test_spec_version_conflict(udr):
    udr.ok("commit", "t", "--next", "--allow-empty")
    snap = tree_snapshot(udr.catalog)
    r = spec_commit(udr, {"tables": [{"table": "u", "allow_empty": True}, {"table": "t", "version": 1, "allow_empty": True}]})
    assert r.code == 3, r
    assert "t" in r.stderr and "2" in r.stderr
    assert tree_snapshot(udr.catalog) == snap
    r = spec_commit(udr, {"tables": [{"table": "u", "allow_empty": True}, {"table": "t", "version": 2, "allow_empty": True}]})
    assert r.code == 0, r
    assert r.out == "commit 2\nu@1\nt@2\n"


def test_spec_excludes_other_commit_options(udr):
    for args in (["t", "--spec", "-"], ["--next", "--spec", "-"], ["-m", "x", "--spec", "-"]):
        r = udr("commit", *args, input=b'{"tables": [{"table": "t"}]}')
        assert r.code == 2, (args, r)
    assert log(udr) == []


# ---- merges that take a table's version ----

def test_table_filter_lists_merges_that_take_the_table(udr, watches):
    """A merge that takes a table's version from its source makes no version
    of its own; `log --table` and `watch --table` (on that branch) listed
    nothing, so a pipeline watching main's table never saw the change that
    reached main through a merge."""
    udr.ok("commit", "t", "--next", udr.put(b"one"))                       # 1
    udr.ok("branch", "create", "dev")                                      # 2
    w = Watch(udr, "--json", "--since", "2", "--table", "t", "--branch", "main")
    watches.append(w)
    udr.ok("commit", "t", "--next", udr.put(b"two"), "--branch", "dev")    # 3
    udr.ok("commit", "u", "--next", udr.put(b"u1"), "--branch", "dev")    # 4
    udr.ok("merge", "dev")                                                 # 5: fast-forward
    udr.ok("commit", "t", "--next", udr.put(b"three"), "--branch", "dev")  # 6
    udr.ok("commit", "v", "--next", udr.put(b"v1"))                       # 7: v on main only
    udr.ok("merge", "dev")                                                 # 8: three-way, takes t
    udr.ok("commit", "w", "--next", udr.put(b"w1"))                       # 9

    def seqs(*args):
        return [c["seq"] for c in json.loads(udr.ok("log", "--json", *args).out)]

    assert seqs("--table", "t", "--branch", "main") == [8, 5, 1]
    assert seqs("--table", "t") == [8, 6, 5, 3, 1]
    assert seqs("--table", "t", "--reverse") == [1, 3, 5, 6, 8]
    assert seqs("--table", "u", "--branch", "main") == [5]
    assert seqs("--table", "u", "--table", "t", "--branch", "main", "--limit", "2") == [8, 5]
    assert seqs("--table", "v") == [7]      # the second merge took nothing of v
    assert seqs("--table", "w") == [9]
    assert seqs("--table", "t", "--since", "5", "--reverse") == [6, 8]
    assert seqs("--table", "t", "--branch", "dev") == [6, 3]
    # watch, on main, saw both merges, oldest first, and nothing else
    assert [w.event()["seq"] for _ in range(2)] == [5, 8]
    assert w.line(0.3) is None
    assert w.stop() == 0
