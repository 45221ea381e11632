"""Pins and the expire handshake (docs/GC.md 2.1-2.3): retention never
expires what an open transaction reads.  A transaction is held open in
another process (the Python binding); `udr gc --keep-last 1` runs beside
it: the transaction's versions stay and read back byte for byte, it
commits, and the next gc after it ends expires them.  The handshake: a
transaction begun while an expire step is in progress waits for it and
takes its snapshot after the expire record; a dead expirer does not hold
pinners; a damaged lease keeps everything for that run."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAULT_INJECTION, base_env

BUILD = pathlib.Path(os.environ.get("UDR_BUILD_DIR", pathlib.Path(__file__).resolve().parents[2] / "build"))
PYLIB = BUILD / "python" / "lib"

pytestmark = pytest.mark.skipif(not PYLIB.is_dir(), reason="the Python binding is not built (build/python/lib)")

# A process holding a transaction: begins, says its snapshot and the
# table's latest version, waits for a line on stdin, then reads the named
# versions (their bytes' hex digests) and commits a write of its own.
HOLDER = r"""
import hashlib, json, sys, udr
db = udr.open(sys.argv[1])
tx = db.transaction()
print(json.dumps({"snapshot": tx.snapshot, "latest": tx.latest("t")}), flush=True)
line = sys.stdin.readline()
out = {}
for v in json.loads(line):
    tv = tx.get_version("t", v)
    out[str(v)] = hashlib.sha256(b"".join(db.store.get(h) for h in tv.chunk_hashes)).hexdigest()
tv = tx.get_version("t", tx.latest("t"))
tx.write(udr.TableVersion("w", 0, list(tv.chunk_hashes)))
tx.commit()
out["seq"] = tx.seq
print(json.dumps(out), flush=True)
sys.stdin.readline()
"""


def holder(root, env=None):
    e = base_env(env)
    e["PYTHONPATH"] = str(PYLIB)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)


def commit_versions(udr, tmp_path, n, seed):
    out = {}
    for i in range(n):
        data = os.urandom(120_000 + seed * 1000 + i)
        f = tmp_path / ("t-%d-%d" % (seed, i))
        f.write_bytes(data)
        v = int(udr.ok("commit", "t", "--next", "--file", f).out.split()[-1])
        out[v] = data
    return out


def sha(b):
    import hashlib
    return hashlib.sha256(b).hexdigest()


def gc_keep_last_1(udr, env=None):
    return udr("gc", "--keep-last", "1", "--grace", "0s", "--json", env=env)


def leases(udr):
    d = udr.root / "catalog" / "leases"
    return sorted(p for p in d.iterdir() if p.name.endswith(".lease")) if d.is_dir() else []


def test_open_txn_keeps_its_versions_through_gc(udr, tmp_path):
    vs = commit_versions(udr, tmp_path, 4, 1)
    h = holder(udr.root)
    first = json.loads(h.stdout.readline())
    assert first["latest"] == 4
    assert len(leases(udr)) == 1 and b'"snapshot"' in leases(udr)[0].read_bytes()
    vs.update(commit_versions(udr, tmp_path, 2, 2))  # t@5, t@6: the txn still sees 4
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    rep = json.loads(r.out)
    # 4 is what the transaction reads as t: kept; 6 is the head's
    assert rep["retention"]["expired"]["ranges"] == {"t": [[1, 3], [5, 5]]}
    assert rep["retention"]["pins"] == {"pins": 1, "pids": [h.pid], "kinds": {"txn": 1}}
    assert rep["removed"]["objects"] > 0
    for v in (1, 2, 3, 5):
        assert udr("show", "t", str(v)).code == 6
    # the transaction reads its version byte for byte and commits
    h.stdin.write(json.dumps([4]) + "\n")
    h.stdin.flush()
    got = json.loads(h.stdout.readline())
    assert got["4"] == sha(vs[4])
    assert got["seq"] > first["snapshot"]
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(60) == 0, h.stderr.read()
    # the next gc, with no transaction open, expires 4
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[4, 4]]}
    assert udr("show", "t", "4").code == 6
    assert udr("show", "t", "6").code == 0
    assert udr("fsck").code == 0


def test_dead_txn_pins_nothing(udr, tmp_path):
    commit_versions(udr, tmp_path, 3, 3)
    h = holder(udr.root)
    json.loads(h.stdout.readline())
    commit_versions(udr, tmp_path, 1, 4)
    h.kill()
    h.wait(60)
    assert len(leases(udr)) == 1  # left behind: its lock is free
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 3]]}
    assert leases(udr) == []


def test_damaged_lease_expires_nothing_with_a_warning(udr, tmp_path):
    commit_versions(udr, tmp_path, 4, 5)
    h = holder(udr.root)
    json.loads(h.stdout.readline())
    (lease,) = leases(udr)
    with open(lease, "ab") as f:
        f.write(b'{"pin":99,"what":"by hand"}\n')  # a pin of no known kind
    for args in (("gc", "--keep-last", "1", "--grace", "0s", "--json"), ("retention", "expire", "--keep-last", "1", "--json")):
        r = udr(*args)
        assert r.code == 0, r
        assert "damaged" in r.stderr and lease.name in r.stderr, r
        rep = json.loads(r.out)
        rep = rep.get("retention", rep)
        assert rep["expired"]["ranges"] == {} and rep["expired"]["versions"] == 0
    for v in range(1, 5):
        assert udr("show", "t", str(v)).code == 0
    r = udr("fsck")  # said, not counted: no data is at risk
    assert r.code == 0, r
    assert ("note: lease %s of a live process is damaged" % lease) in r.out
    h.kill()
    h.wait(60)
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 3]]}


@pytest.fixture
def procs():
    """Processes a test starts: killed at its end, pass or fail (a paused gc
    left behind would wake up later in a store made at the same path)."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(60)


def wait_for(path, timeout=30):
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, "timed out waiting for %s" % path
        time.sleep(0.01)


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE needs a UDR_FAULT_INJECTION build")
def test_txn_begun_during_an_expire_step_waits_and_starts_after_it(udr, tmp_path, procs):
    commit_versions(udr, tmp_path, 4, 6)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {"UDR_PAUSE": "expire-leases-read:%s" % pause}
    gc = subprocess.Popen([os.environ.get("UDR_BIN", str(BUILD / "udr")), "--store", str(udr.root), "gc",
                           "--keep-last", "1", "--grace", "0s", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(env))
    procs.append(gc)
    wait_for(pause / "expire-leases-read.reached")
    # the expirer has read the leases: a pin written now is not among them
    h = holder(udr.root)
    procs.append(h)
    time.sleep(0.7)
    assert h.poll() is None
    import select
    assert select.select([h.stdout], [], [], 0)[0] == [], "the txn began during the expire step"
    (pause / "expire-leases-read.go").touch()
    out, err = gc.communicate(timeout=120)
    assert gc.returncode == 0, err
    rep = json.loads(out)
    assert rep["retention"]["expired"]["ranges"] == {"t": [[1, 3]]}
    (eseq,) = rep["retention"]["expired"]["records"]
    first = json.loads(h.stdout.readline())
    assert first["snapshot"] >= eseq and first["latest"] == 4
    h.stdin.write("[4]\n")
    h.stdin.flush()
    assert "seq" in json.loads(h.stdout.readline())
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(60) == 0


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE needs a UDR_FAULT_INJECTION build")
def test_dead_expirer_does_not_hold_pinners(udr, tmp_path, procs):
    commit_versions(udr, tmp_path, 3, 7)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {"UDR_PAUSE": "expire-odd:%s" % pause}
    gc = subprocess.Popen([os.environ.get("UDR_BIN", str(BUILD / "udr")), "--store", str(udr.root), "gc",
                           "--keep-last", "1", "--grace", "0s"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(env))
    procs.append(gc)
    wait_for(pause / "expire-odd.reached")
    text = (udr.root / "catalog" / "expiring").read_text()
    assert int(text.split()[0]) % 2 == 1  # an expire step in progress
    gc.send_signal(signal.SIGKILL)
    gc.wait(60)
    h = holder(udr.root)
    first = json.loads(h.stdout.readline())  # does not wait for the dead expirer
    assert first["latest"] == 3
    h.kill()
    h.wait(60)
    # the next expirer takes the next odd value and finishes even
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 2]]}
    g = int((udr.root / "catalog" / "expiring").read_text().split()[0])
    assert g % 2 == 0 and g > int(text.split()[0])


# A process holding an SQL statement open over t@V: runs it, reads a few
# rows, waits for a line, then reads the rest (the rows' digest), and
# waits again with the statement finished.
SQL_HOLDER = r"""
import hashlib, json, sys, udr
db = udr.open(sys.argv[1])
r = db.sql("SELECT id, name FROM t@%d ORDER BY id" % int(sys.argv[2]))
rows = r.fetchmany(10)
print(json.dumps({"first": len(rows)}), flush=True)
sys.stdin.readline()
rows += r.fetchall()
print(json.dumps({"rows": len(rows), "digest": hashlib.sha256(repr(rows).encode()).hexdigest()}), flush=True)
sys.stdin.readline()
"""


def import_versions(udr, tmp_path, n, rows=20000):
    import hashlib
    out = {}
    for i in range(n):
        f = tmp_path / ("imp-%d.csv" % i)
        data = [(k, "v%d-%d-%s" % (i, k, os.urandom(4).hex())) for k in range(rows)]
        f.write_text("id,name\n" + "".join("%d,%s\n" % row for row in data))
        v = int(udr.ok("import", "t", f).out.strip())
        out[v] = hashlib.sha256(repr(data).encode()).hexdigest()
    return out


def sql_holder(root, version):
    e = base_env()
    e["PYTHONPATH"] = str(PYLIB)
    return subprocess.Popen([sys.executable, "-c", SQL_HOLDER, str(root), str(version)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)


def test_open_sql_statement_keeps_its_version_through_gc(udr, tmp_path):
    digests = import_versions(udr, tmp_path, 4)
    h = sql_holder(udr.root, 2)
    assert json.loads(h.stdout.readline()) == {"first": 10}, h.stderr.read() if h.poll() is not None else ""
    (lease,) = leases(udr)
    assert b'"version":["t",2]' in lease.read_bytes()
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    rep = json.loads(r.out)
    assert rep["retention"]["expired"]["ranges"] == {"t": [[1, 1], [3, 3]]}
    assert rep["removed"]["objects"] > 0
    for v in (1, 3):
        assert udr("sql", "SELECT count(*) FROM t@%d" % v).code == 6
    h.stdin.write("\n")
    h.stdin.flush()
    got = json.loads(h.stdout.readline())
    assert got == {"rows": 20000, "digest": digests[2]}
    # the statement is over: its pin went with it, the next gc expires 2
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[2, 2]]}
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(60) == 0, h.stderr.read()
    assert udr("sql", "SELECT count(*) FROM t@2").code == 6
    assert udr.ok("sql", "SELECT count(*) AS n FROM t@4", "--json").out.count("20000") == 1


# A transaction that reads on command: each stdin line is a JSON list of
# versions of t to read (digests printed); an empty line ends it (abort).
READER = r"""
import hashlib, json, sys, udr
db = udr.open(sys.argv[1])
tx = db.transaction()
print(json.dumps({"snapshot": tx.snapshot, "latest": tx.latest("t")}), flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    out = {}
    for v in json.loads(line):
        try:
            tv = tx.get_version("t", v)
            out[str(v)] = hashlib.sha256(b"".join(db.store.get(h) for h in tv.chunk_hashes)).hexdigest()
        except udr.Error as e:
            out[str(v)] = type(e).__name__
    print(json.dumps(out), flush=True)
tx.abort()
"""


def test_txn_keeps_an_older_version_it_read(udr, tmp_path):
    vs = commit_versions(udr, tmp_path, 4, 8)
    e = base_env()
    e["PYTHONPATH"] = str(PYLIB)
    h = subprocess.Popen([sys.executable, "-c", READER, str(udr.root)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)
    assert json.loads(h.stdout.readline())["latest"] == 4
    h.stdin.write("[2]\n")
    h.stdin.flush()
    assert json.loads(h.stdout.readline()) == {"2": sha(vs[2])}
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    # 2 was read by the open transaction, 4 is its snapshot's (and the head)
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 1], [3, 3]]}
    h.stdin.write("[2, 4, 3]\n")
    h.stdin.flush()
    assert json.loads(h.stdout.readline()) == {"2": sha(vs[2]), "4": sha(vs[4]), "3": "ExpiredError"}
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(60) == 0, h.stderr.read()
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[2, 2]]}


# A subscriber on t: each stdin line "next" delivers one event (its seq
# printed), "close" closes the subscription, an empty line ends.
SUBSCRIBER = r"""
import json, sys, udr
db = udr.open(sys.argv[1])
sub = db.subscribe(since=0, tables=["t"])
print(json.dumps({"cursor": sub.cursor}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "next":
        ev = sub.poll(timeout=10)
        print(json.dumps({"seq": ev.seq}), flush=True)
    elif cmd == "close":
        sub.close()
        print(json.dumps({"closed": True}), flush=True)
    else:
        break
"""


def test_subscription_keeps_what_it_has_not_delivered(udr, tmp_path):
    commit_versions(udr, tmp_path, 4, 9)
    e = base_env()
    e["PYTHONPATH"] = str(PYLIB)
    h = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(udr.root)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)

    def say(cmd):
        h.stdin.write(cmd + "\n")
        h.stdin.flush()
        line = h.stdout.readline()
        assert line, h.stderr.read()
        return json.loads(line)

    assert json.loads(h.stdout.readline()) == {"cursor": 0}
    (lease,) = leases(udr)
    assert b'"after":0' in lease.read_bytes()
    # every record is still to be delivered: nothing expires
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {}
    seqs = [say("next")["seq"] for _ in range(3)]
    assert seqs == sorted(seqs)
    # the third event (t@3, whose old version is 2) is being read: 1 goes
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 1]]}
    assert say("close") == {"closed": True}
    assert leases(udr) == []
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[2, 3]]}
    h.stdin.write("\n")
    h.stdin.flush()
    assert h.wait(60) == 0, h.stderr.read()


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE needs a UDR_FAULT_INJECTION build")
def test_sql_read_during_an_expire_step_waits_then_sees_the_expiry(udr, tmp_path, procs):
    import_versions(udr, tmp_path, 3, rows=100)
    pause = tmp_path / "pause"
    pause.mkdir()
    gc = subprocess.Popen([os.environ.get("UDR_BIN", str(BUILD / "udr")), "--store", str(udr.root), "gc",
                           "--keep-last", "1", "--grace", "0s", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=base_env({"UDR_PAUSE": "expire-leases-read:%s" % pause}))
    procs.append(gc)
    wait_for(pause / "expire-leases-read.reached")
    # the expirer read the leases and will expire t@2: a reader pinning it
    # now must not read it as kept (the pin was not seen)
    rd = subprocess.Popen([os.environ.get("UDR_BIN", str(BUILD / "udr")), "--store", str(udr.root), "sql",
                           "SELECT count(*) AS n FROM t@2", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env())
    procs.append(rd)
    time.sleep(0.7)
    assert rd.poll() is None, "the reader did not wait for the expire step"
    (pause / "expire-leases-read.go").touch()
    out, err = gc.communicate(timeout=120)
    assert gc.returncode == 0, err
    assert json.loads(out)["retention"]["expired"]["ranges"] == {"t": [[1, 2]]}
    out, err = rd.communicate(timeout=120)
    assert rd.returncode == 6, (out, err)
    assert b"expired by retention" in err


def hand_lease(udr, lines):
    """A live lease written by hand: the file held under flock by this
    process (closed by the caller)."""
    import fcntl
    d = udr.root / "catalog" / "leases"
    d.mkdir(exist_ok=True)
    p = d / ("%d-%016x.lease" % (os.getpid(), int.from_bytes(os.urandom(8), "big")))
    f = open(p, "wb+")
    fcntl.flock(f, fcntl.LOCK_EX)
    f.write("".join(json.dumps(x) + "\n" for x in lines).encode())
    f.flush()
    return f


def test_hand_written_pins_are_kept_and_an_unresolvable_snapshot_keeps_its_tables(udr, tmp_path):
    commit_versions(udr, tmp_path, 5, 10)
    u = udr  # a second table, untouched by the pins
    for i in range(3):
        f = tmp_path / ("u-%d" % i)
        f.write_bytes(os.urandom(5000))
        u.ok("commit", "u", "--next", "--file", f)
    # a version pin of t@2, a snapshot pin at commit 3 on main (t@3), and an
    # after pin past the head (keeps nothing)
    head = int(udr.ok("log", "--json").out.count('"seq"'))
    f1 = hand_lease(udr, [{"pin": 1, "version": ["t", 2], "what": "sql", "ms": 1},
                          {"pin": 2, "snapshot": 3, "branch": "main", "what": "txn", "ms": 1},
                          {"pin": 3, "after": head + 100, "what": "subscription", "ms": 1},
                          {"pin": 4, "version": ["t", 1], "ms": 1}, {"unpin": 4}])
    # a dry run says what the pins keep: the same ranges as the run, t@2
    # and t@3 counted as pinned (it said 0 and listed them as expiring)
    d = udr("gc", "--keep-last", "1", "--grace", "0s", "--dry-run", "--json")
    assert d.code == 0, d
    dr = json.loads(d.out)["retention"]
    assert dr["expired"]["ranges"] == {"t": [[1, 1], [4, 4]], "u": [[1, 2]]}, dr
    assert dr["expired"]["versions"] == 4 and dr["kept"]["by_reason"]["pinned"] == 2, dr
    assert dr["kept"]["versions"] == 4 and dr["pins"]["pins"] == 3, dr
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[1, 1], [4, 4]], "u": [[1, 2]]}
    assert json.loads(r.out)["retention"]["kept"]["by_reason"]["pinned"] == 2
    assert json.loads(r.out)["retention"]["pins"] == {"pins": 3, "pids": [os.getpid()],
                                                      "kinds": {"sql": 1, "txn": 1, "subscription": 1}}
    f1.close()  # the owner "exits": its lock is free, gc removes the file
    # a snapshot pin on a branch that does not exist cannot be resolved:
    # its tables stay whole this run
    f2 = hand_lease(udr, [{"pin": 1, "snapshot": 3, "branch": "nosuch", "what": "txn", "ms": 1}])
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {}
    assert json.loads(r.out)["retention"]["kept"]["by_reason"]["pinned"] == 2  # t@2, t@3
    f2.close()
    r = gc_keep_last_1(udr)
    assert r.code == 0, r
    assert json.loads(r.out)["retention"]["expired"]["ranges"] == {"t": [[2, 3]]}
    assert leases(udr) == []


def test_gc_status_lists_live_pins_and_a_damaged_lease_and_removes_nothing(udr, tmp_path):
    commit_versions(udr, tmp_path, 2, 11)
    h = holder(udr.root)
    first = json.loads(h.stdout.readline())
    # a dead owner's lease: listed nowhere, left in place by --status
    dead = udr.root / "catalog" / "leases" / "999999-00000000000000dd.lease"
    dead.write_bytes(b'{"pin":1,"version":["t",1],"ms":1}\n')
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    (pin,) = st["leases"]["pins"]
    assert pin["pid"] == h.pid and pin["snapshot"] == first["snapshot"] and pin["what"] == "txn"
    assert st["leases"]["damaged"] is None
    assert dead.exists()
    text = udr.ok("gc", "--status").out
    assert ("pin: pid %d, txn since" % h.pid) in text
    (lease,) = [p for p in leases(udr) if p != dead]
    with open(lease, "ab") as f:
        f.write(b"garbage\n")
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["leases"]["damaged"] == str(lease)
    assert "damaged lease" in udr.ok("gc", "--status").out
    h.kill()
    h.wait(60)
    st = json.loads(udr.ok("gc", "--status", "--json").out)
    assert st["leases"] == {"pins": [], "damaged": None}


def test_readers_racing_expire_and_sweep_get_right_rows_or_expired(udr, tmp_path, procs):
    """Readers of random older versions while gc --keep-last 1 expires and
    sweeps in a loop: every read is the version's rows (exit 0) or
    expired (exit 6); never other data, never damage."""
    import random
    rng = random.Random(12)
    sums = {}
    for i in range(6):
        f = tmp_path / ("r-%d.csv" % i)
        n = 500 + i * 37
        f.write_text("id,name\n" + "".join("%d,x%d\n" % (k * (i + 1), k) for k in range(n)))
        v = int(udr.ok("import", "t", f).out.strip())
        sums[v] = (n, sum(k * (i + 1) for k in range(n)))
    binp = os.environ.get("UDR_BIN", str(BUILD / "udr"))
    end = time.time() + 8
    results = []
    gcs = 0
    while time.time() < end:
        readers = []
        for _ in range(3):
            v = rng.choice(sorted(sums))
            p = subprocess.Popen([binp, "--store", str(udr.root), "sql",
                                  "SELECT count(*) AS n, sum(id) AS s FROM t@%d" % v, "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env())
            procs.append(p)
            readers.append((v, p))
        g = subprocess.run([binp, "--store", str(udr.root), "gc", "--keep-last", "1", "--grace", "0s"],
                           capture_output=True, env=base_env(), timeout=120)
        assert g.returncode == 0, g.stderr
        gcs += 1
        for v, p in readers:
            out, err = p.communicate(timeout=120)
            results.append((v, p.returncode))
            if p.returncode == 0:
                (row,) = json.loads(out)
                assert (row["n"], int(row["s"])) == sums[v], (v, row)
            else:
                assert p.returncode == 6 and b"expired by retention" in err, (v, p.returncode, err)
        # a new version each round, so there is always something to expire
        f = tmp_path / "next.csv"
        n = 300 + gcs
        f.write_text("id,name\n" + "".join("%d,y%d\n" % (k, k) for k in range(n)))
        v = int(udr.ok("import", "t", f).out.strip())
        sums[v] = (n, sum(range(n)))
    assert gcs >= 2
    assert any(code == 6 for _, code in results) and any(code == 0 for _, code in results)
    assert udr("fsck").code == 0
