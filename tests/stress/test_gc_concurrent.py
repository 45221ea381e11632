"""Garbage collection while other processes write and read (issue 15,
GC.md 8.1).  Threads, each driving udr processes against one store:

  * two committers: `udr commit cI --next --file F` of a file that changes a
    little each time (pieces stored as deltas on the previous version);
  * a putter: `udr put F`, a pause, then `udr commit p --next HASH` from
    another process ("put now, commit later"); with --grace 0 a gc in the
    pause may collect the put, and the commit must then fail cleanly
    (exit 1, nothing committed), never succeed with missing data;
  * an importer: `udr import` of a CSV, then SQL UPDATEs (deletion vectors
    and loose Parquet parts), against a model of the rows;
  * a litterer: puts never committed (what gc with --grace 0s removes);
  * two readers: a random acknowledged version, read with `show` + `get`
    (files) or SQL (the imported table);
  * a transactor writing tables xa and xb together, one commit each
    time: `udr commit --spec` of two files, or a Python transaction
    (`db.transaction()`: put, a pause, put, write both) that commits,
    aborts, or waits while a spec commit lands and must then fail with a
    conflict; a Python transaction may also fail cleanly "not found" (gc
    collected a put of its pause);
  * a merger, on a branch rel made from main at the start (only it writes
    rel, so its merges are not refused because the target moved; a merge
    into main, which the others move all the time, hardly ever gets
    through): a branch dev-N from rel, on it a new version of the file
    table mf and an SQL UPDATE of one row of the keyed table mk, on rel an
    UPDATE of another row of mk, then `udr merge dev-N --into rel`: mf
    takes dev's version, mk is merged row by row into a new version
    sharing rel's parts; both read back at once against what was merged;
    each dev branch is deleted in the next round (its versions become
    orphans); every third round main is merged into rel, and the versions
    rel adopts read back;
  * a snapshot holder: a Python transaction on main or rel held open across
    at least one gc run with --keep-last (read-only; its snapshot pins each
    table's version there): every table's version at the snapshot read at
    the start and at the end of the hold, byte for byte the same, and two
    of them read by `udr` from another process in between, never expired;
  * a subscriber: a Python subscription from the first commit (its pin
    keeps what it has not delivered), reading each delivered event's new
    versions; and `udr watch --since 0 --json`;
  * gc in a loop: `udr gc --grace G` with G 0s or 1h, half the time with
    `--keep-last K` (K 1..3: expire by the rule, then sweep the data only
    expired versions needed), now and then --dry-run.

Every read gives the acknowledged bytes, or says the version expired
(exit 6; `get` of a chunk of a version swept between `show` and `get`
exits 1): such a version must be listed as expired at the end, and it is
never among the last K of its table on main or rel (the smallest K any
run used).  At the end fsck is clean, every kept version reads back byte
for byte, the expired set is what `udr retention expired` lists, and the
runs removed something (the litter, and expired data when a --keep-last
run ran).
Transactions: every commit of the log that touches xa or xb touches both
and is one a transactor was told it made (failed and aborted ones left
nothing), and the two versions of each share a fate (both read back or
both expired).  The subscription and `watch` saw every commit of the log
once, in order, as the log has it, and every version the subscription
read was the acknowledged one (never expired, never an error).  At least
one hold outlived a `--keep-last` run that would have expired what it
held, had it not been pinned.

The Python parts (the transactor's Python transactions, the holder, the
subscription) need the extension (built by ctest's `python` target, else
here as tests/stress/test_sweep.py does); they are left out under the
sanitizers, where the extension is not built.

A few seconds by default; UDR_TORTURE_ROUNDS=N (make torture) runs N gc
rounds.
"""
import collections
import concurrent.futures
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from conftest import SANITIZE, UDR_BIN, Udr, base_env, python_libdir

TORTURE = int(os.environ.get("UDR_TORTURE_ROUNDS", "0"))
GC_ROUNDS = TORTURE or (4 if SANITIZE else 12)

SQL_TABLES = ("imp", "mk")
HELD_TABLES = ("c0", "c1", "p", "imp", "xa", "xb", "mf", "mk")


def digest(b):
    return hashlib.sha256(b).hexdigest()


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.acks = {}           # (table, version) -> sha256 of the content, or rows for "imp"/"mk"
        self.branch_of = {}      # (table, version) -> the branch whose chain it is on, when not main
        self.suspect = set()     # (table, version) read as expired/collected: must be expired at the end
        self.errors = []
        self.removed = 0         # objects removed by the gc runs
        self.min_keep = None     # the smallest --keep-last of a run that was not a dry run
        self.gc_runs = []        # (start, end, keep) of each finished run that was not a dry run
        self.txns = {}           # commit seq -> {"xa": version, "xb": version}
        self.txn_outcomes = collections.Counter()
        self.merges = 0
        self.holds = 0
        self.holds_mattered = 0  # holds that outlived a --keep-last run that would have expired them
        self.events = []         # what the subscription delivered
        self.stop = threading.Event()

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)
        self.stop.set()


def run(u, *args, **kw):
    return u.run(*args, timeout=300, **kw)


# One Python process using the binding, driven by JSON lines on stdin (one
# answer line each), or on its own (the subscription).
WORKER = r"""
import hashlib, json, os, sys, time
import udr


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def err(e):
    return "%s: %s" % (type(e).__name__, e)


def chunks_digest(db, tv):
    h = hashlib.sha256()
    for c in tv.chunk_hashes:
        h.update(db.store.get(c))
    return h.hexdigest()


def txn(db):
    # {"a": FILE, "b": FILE, "sleep": S, "then": "commit" | "abort" |
    # "wait"}: xa and xb in one transaction, the puts made inside it (a gc
    # may collect the first); "wait" says "staged" and waits for a line
    # before it commits
    for line in sys.stdin:
        cmd = json.loads(line)
        tx = db.transaction(message="txn")
        try:
            with open(cmd["a"], "rb") as f:
                ha = db.store.put(f.read())
            time.sleep(cmd["sleep"])
            with open(cmd["b"], "rb") as f:
                hb = db.store.put(f.read())
            va = tx.write("xa", [ha])
            vb = tx.write("xb", [hb])
            if cmd["then"] == "abort":
                tx.abort()
                out({"aborted": True})
                continue
            if cmd["then"] == "wait":  # another writer commits xa and xb now
                out({"staged": True})
                sys.stdin.readline()
            seq = tx.commit()
            out({"seq": seq, "xa": va, "xb": vb})
        except udr.Error as e:
            tx.abort()
            out({"error": type(e).__name__, "msg": str(e)})


def hold(db, tables):
    # begin: a transaction, each table's version at its snapshot (digest
    # of its chunks); check: the same versions read again through it;
    # end: abort
    tx, held = None, {}
    for line in sys.stdin:
        cmd, _, branch = line.strip().partition(" ")
        if cmd == "begin":
            tx = db.transaction(branch=branch or None)
            held = {}
            for t in tables:
                v = tx.latest(t)
                if v:
                    held[t] = [v, chunks_digest(db, tx.get_version(t, v))]
            out({"snapshot": tx.snapshot, "held": held})
        elif cmd == "check":
            got = {}
            for t, (v, _) in held.items():
                try:
                    got[t] = [v, chunks_digest(db, tx.get_version(t, v))]
                except udr.Error as e:
                    got[t] = [v, err(e)]
            out({"held": got})
        elif cmd == "end":
            tx.abort()
            out({"ended": True})


def sub(db, since, stopfile, sql_tables):
    # every event from since on, each new version it names read (digest of
    # the chunks, or the rows); stops at the head the stop file names
    s = db.subscribe(since=since)
    out({"cursor": s.cursor})
    while True:
        ev = s.poll(timeout=0.2)
        if ev is None:
            if s.error is not None:
                out({"error": err(s.error)})
                return
            if os.path.exists(stopfile):
                with open(stopfile) as f:
                    target = int(f.read())
                if s.cursor >= target:
                    out({"done": s.cursor})
                    return
            continue
        reads = {}
        for t, old, new in ev.changes:
            if new <= 0:
                continue
            key = "%s@%d" % (t, new)
            try:
                if t in sql_tables:
                    reads[key] = [list(r) for r in db.sql('SELECT id, v FROM "%s" ORDER BY id' % key).fetchall()]
                else:
                    reads[key] = chunks_digest(db, db.catalog.get_version(t, new))
            except udr.Error as e:
                reads[key] = {"error": err(e)}
        out({"seq": ev.seq, "branch": ev.branch, "changes": [list(c) for c in ev.changes], "reads": reads})


db = udr.open(sys.argv[2])
if sys.argv[1] == "txn":
    txn(db)
elif sys.argv[1] == "hold":
    hold(db, sys.argv[3].split(","))
else:
    sub(db, int(sys.argv[3]), sys.argv[4], sys.argv[5].split(","))
"""


class Worker:
    def __init__(self, lib, *args):
        env = base_env()
        env["PYTHONPATH"] = lib
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER] + [str(a) for a in args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(60)
            raise RuntimeError("worker exited %s: %s" % (self.proc.returncode, self.proc.stderr.read()[-2000:]))
        return json.loads(line)

    def ask(self, cmd):
        self.proc.stdin.write((cmd if isinstance(cmd, str) else json.dumps(cmd)) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)


def committer(u, sh, table, seed, workdir):
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(96 * 1024))
    path = os.path.join(workdir, "%s.bin" % table)
    while not sh.stop.is_set():
        for _ in range(rng.randint(1, 6)):
            off = rng.randrange(len(data))
            data[off:off + 8] = rng.randbytes(rng.randint(0, 16))
        with open(path, "wb") as f:
            f.write(data)
        p = run(u, "commit", table, "--next", "--file", path)
        if p.returncode != 0:
            sh.fail("commit %s: exit %d %s" % (table, p.returncode, p.stderr.decode()))
            return
        with sh.lock:
            sh.acks[(table, int(p.stdout.decode().split()[-1]))] = digest(bytes(data))


def putter(u, sh, seed, workdir):
    rng = random.Random(seed)
    path = os.path.join(workdir, "p.bin")
    while not sh.stop.is_set():
        data = rng.randbytes(rng.randint(1, 40000))
        with open(path, "wb") as f:
            f.write(data)
        p = run(u, "put", path)
        if p.returncode != 0:
            sh.fail("put: exit %d %s" % (p.returncode, p.stderr.decode()))
            return
        h = p.stdout.decode().split()[0]
        time.sleep(rng.random() * 0.3)
        p = run(u, "commit", "p", "--next", h)
        if p.returncode == 0:
            with sh.lock:
                sh.acks[("p", int(p.stdout.decode().split()[-1]))] = digest(data)
        elif p.returncode != 1:
            sh.fail("commit p of a put %s: exit %d (expected 0, or 1 if gc collected it) %s" % (
                h, p.returncode, p.stderr.decode()))
            return


def importer(u, sh, seed, workdir):
    rng = random.Random(seed)
    rows = {i: rng.randrange(1000) for i in range(1, 301)}
    path = os.path.join(workdir, "imp.csv")

    def latest():
        p = run(u, "versions", "imp", "--json")
        return max(v["version"] if isinstance(v, dict) else int(v) for v in json.loads(p.stdout))

    while not sh.stop.is_set():
        if rng.random() < 0.3 or not any(t == "imp" for t, _ in list(sh.acks)):
            for i in rng.sample(sorted(rows), 20):
                rows[i] = rng.randrange(1000)
            with open(path, "w") as f:
                f.write("id,v\n" + "".join("%d,%d\n" % kv for kv in sorted(rows.items())))
            p = run(u, "import", "imp", path)
        else:
            k = rng.choice(sorted(rows))
            rows[k] += 1
            p = run(u, "sql", "UPDATE imp SET v = v + 1 WHERE id = %d" % k)
        if p.returncode != 0:
            sh.fail("importer: exit %d %s" % (p.returncode, p.stderr.decode()))
            return
        with sh.lock:
            sh.acks[("imp", latest())] = sorted(rows.items())


def read_version(u, table, ver):
    """("ok", content digest or rows) | ("expired",) | ("gone",) | ("bad", message)."""
    if table in SQL_TABLES:
        p = run(u, "sql", 'SELECT id, v FROM "%s@%d" ORDER BY id' % (table, ver), "--json")
        if p.returncode == 6:
            return ("expired",)
        if p.returncode != 0:
            return ("bad", "sql %s@%d: exit %d %s" % (table, ver, p.returncode, p.stderr.decode()))
        return ("ok", [(r["id"], r["v"]) for r in json.loads(p.stdout)])
    p = run(u, "show", table, str(ver))
    if p.returncode == 6:
        return ("expired",)
    if p.returncode != 0:
        return ("bad", "show %s %d: exit %d %s" % (table, ver, p.returncode, p.stderr.decode()))
    chunks = json.loads(p.stdout)["chunks"]
    out = b""
    for h in chunks:
        g = run(u, "get", h)
        if g.returncode == 1:
            return ("gone",)
        if g.returncode != 0:
            return ("bad", "get %s (%s@%d): exit %d %s" % (h, table, ver, g.returncode, g.stderr.decode()))
        out += g.stdout
    return ("ok", digest(out))


def litterer(u, sh, seed, workdir):
    rng = random.Random(seed)
    path = os.path.join(workdir, "litter.bin")
    while not sh.stop.is_set():
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.randint(1, 300000)))
        p = run(u, "put", path)
        if p.returncode != 0:
            sh.fail("litter put: exit %d %s" % (p.returncode, p.stderr.decode()))
            return
        time.sleep(0.05)


def reader(u, sh, seed):
    rng = random.Random(seed)
    while not sh.stop.is_set():
        with sh.lock:
            keys = list(sh.acks)
        if not keys:
            time.sleep(0.05)
            continue
        key = rng.choice(keys)
        got = read_version(u, *key)
        if got[0] == "ok":
            if got[1] != sh.acks[key]:
                sh.fail("%s@%d read back wrong" % key)
                return
        elif got[0] in ("expired", "gone"):
            with sh.lock:
                sh.suspect.add(key)
        else:
            sh.fail(got[1])
            return


def txn_pair(rng, workdir, name):
    """Two files for xa and xb, written; their digests."""
    a = rng.randbytes(rng.randint(1, 30000))
    b = b"xb of " + digest(a).encode() + rng.randbytes(rng.randint(0, 20000))
    pa, pb = os.path.join(workdir, name + "-a.bin"), os.path.join(workdir, name + "-b.bin")
    for path, data in ((pa, a), (pb, b)):
        with open(path, "wb") as f:
            f.write(data)
    return pa, pb, digest(a), digest(b)


def txn_made(sh, how, seq, va, vb, da, db):
    with sh.lock:
        sh.txns[seq] = {"xa": va, "xb": vb}
        sh.acks[("xa", va)] = da
        sh.acks[("xb", vb)] = db
        sh.txn_outcomes[how + " committed"] += 1


def spec_commit(u, sh, rng, workdir):
    """`udr commit --spec`: xa and xb stored and committed by one process.
    "made", "not made" (exit 1: gc collected a file's pieces before the
    commit), or None after a failure it may not have (sh.fail)."""
    pa, pb, da, db = txn_pair(rng, workdir, "spec")
    spec = {"message": "spec", "tables": [{"table": "xa", "files": [pa]}, {"table": "xb", "files": [pb]}]}
    p = run(u, "commit", "--spec", "-", input=json.dumps(spec).encode())
    if p.returncode == 0:
        lines = p.stdout.decode().split()
        got = dict(x.split("@") for x in lines[2:])
        if lines[0] != "commit" or set(got) != {"xa", "xb"}:
            sh.fail("commit --spec printed %r" % p.stdout)
            return None
        txn_made(sh, "spec", int(lines[1]), int(got["xa"]), int(got["xb"]), da, db)
        return "made"
    if p.returncode == 1:
        with sh.lock:
            sh.txn_outcomes["spec exit 1"] += 1
        return "not made"
    sh.fail("commit --spec: exit %d %s" % (p.returncode, p.stderr.decode()))
    return None


def transactor(u, sh, w, seed, workdir):
    """xa and xb written together: `udr commit --spec`, or (with the Python
    binding) a transaction that commits, aborts, or waits while a spec
    commit lands and must then fail with a conflict.  A Python transaction
    may also fail "not found" when gc collected a put of its pause."""
    rng = random.Random(seed)
    while not sh.stop.is_set():
        how = rng.choice(["spec", "spec", "commit", "commit", "abort", "wait"]) if w else "spec"
        if how == "spec":
            if spec_commit(u, sh, rng, workdir) is None:
                return
        else:
            pa, pb, da, db = txn_pair(rng, workdir, "py")
            other = None
            try:
                r = w.ask({"a": pa, "b": pb, "sleep": rng.random() * 0.2, "then": how})
                if "staged" in r:
                    other = spec_commit(u, sh, rng, workdir)
                    if other is None:
                        return
                    r = w.ask("go")
            except RuntimeError as e:
                sh.fail("the transaction worker: %s" % e)
                return
            # a transaction that waited commits only if the other did not
            if "seq" in r and (how == "commit" or other == "not made"):
                txn_made(sh, "py", r["seq"], r["xa"], r["xb"], da, db)
            elif "aborted" in r and how == "abort":
                with sh.lock:
                    sh.txn_outcomes["py aborted"] += 1
            elif r.get("error") == "NotFoundError" or (r.get("error") == "ConflictError" and how == "wait"):
                with sh.lock:
                    sh.txn_outcomes["py %s %s" % (how, r["error"])] += 1
            else:
                sh.fail("python transaction (%s): %s" % (how, r))
                return
        sh.stop.wait(0.4 + rng.random() * 0.8)


def merger(u, sh, seed, workdir):
    """Branch rel (made from main at the start) holds the keyed table mk and
    the file table mf; only this thread writes rel and its dev-N branches,
    so a merge into rel is never refused for a moved target (exit 3 fails
    the test).  Every third round main is merged into rel (its tables'
    versions adopted)."""
    rng = random.Random(seed)
    rows = {i: rng.randrange(1000) for i in range(1, 201)}
    path = os.path.join(workdir, "mk.csv")

    def ok(*args):
        p = run(u, *args)
        if p.returncode != 0:
            raise RuntimeError("%s: exit %d %s" % (" ".join(args), p.returncode, p.stderr.decode()))
        return p.stdout.decode()

    def merge(src, into):
        p = run(u, "merge", src, "--into", into, "--json")
        if p.returncode != 0:
            raise RuntimeError("merge %s into %s: exit %d %s %s" % (
                src, into, p.returncode, p.stdout.decode(), p.stderr.decode()))
        rep = json.loads(p.stdout)
        return rep, {t["table"]: t for t in rep["tables"]}

    fpath = os.path.join(workdir, "mf.bin")
    n = 0
    try:
        while run(u, "branch", "create", "rel").returncode == 1:  # main has no commit yet
            time.sleep(0.05)
        with open(path, "w") as f:
            f.write("id,v\n" + "".join("%d,%d\n" % kv for kv in sorted(rows.items())))
        v = int(ok("import", "mk", path, "--key", "id", "--branch", "rel").split()[-1])
        with sh.lock:
            sh.acks[("mk", v)] = sorted(rows.items())
            sh.branch_of[("mk", v)] = "rel"
        while not sh.stop.is_set():
            n += 1
            br = "dev-%d" % n
            ok("branch", "create", br, "--from", "rel")
            data = rng.randbytes(rng.randint(1, 50000))
            with open(fpath, "wb") as f:
                f.write(data)
            vf = int(ok("commit", "mf", "--next", "--file", fpath, "--branch", br).split()[-1])
            k1, k2 = rng.sample(sorted(rows), 2)
            dev = dict(rows)
            dev[k1] += 7
            ok("sql", "UPDATE mk SET v = v + 7 WHERE id = %d" % k1, "--branch", br)
            vdev = json.loads(ok("show", "mk", "--branch", br))["version"]
            rows[k2] += 1000
            ok("sql", "UPDATE mk SET v = v + 1000 WHERE id = %d" % k2, "--branch", "rel")
            vrel = json.loads(ok("show", "mk", "--branch", "rel"))["version"]
            with sh.lock:
                sh.acks[("mf", vf)] = digest(data)
                sh.acks[("mk", vdev)] = sorted(dev.items())
                sh.acks[("mk", vrel)] = sorted(rows.items())
                sh.branch_of.update({("mf", vf): br, ("mk", vdev): br, ("mk", vrel): "rel"})
            time.sleep(rng.random() * 0.2)
            rep, tabs = merge(br, "rel")
            if tabs.get("mf", {}).get("result") != vf or tabs.get("mk", {}).get("theirs") != vdev \
                    or tabs["mk"].get("ours") != vrel:
                raise RuntimeError("merge %s (mf@%d, mk@%d into mk@%d): %s" % (br, vf, vdev, vrel, rep))
            vm = tabs["mk"]["result"]
            rows[k1] += 7
            with sh.lock:
                sh.acks[("mk", vm)] = sorted(rows.items())
                sh.branch_of.update({("mf", vf): "rel", ("mk", vm): "rel"})
                sh.merges += 1
            # what was merged reads back at once, and is rel's now
            if json.loads(ok("show", "mf", "--branch", "rel"))["version"] != vf or \
                    json.loads(ok("show", "mk", "--branch", "rel"))["version"] != vm:
                raise RuntimeError("after the merge of %s rel has not mf@%d and mk@%d" % (br, vf, vm))
            got = read_version(u, "mf", vf)
            if got != ("ok", digest(data)):
                raise RuntimeError("mf@%d merged from %s: %s" % (vf, br, got))
            got = read_version(u, "mk", vm)
            if got != ("ok", sorted(rows.items())):
                raise RuntimeError("mk@%d, the merge of mk@%d (%s) into mk@%d, reads %s" % (vm, vdev, br, vrel, got))
            # the previous dev branch is deleted now (its versions become
            # orphans), this one stays until the next round: one dev
            # branch alive at a time (each live branch's heads are kept,
            # and retention works through every live branch)
            if n > 1:
                ok("branch", "delete", "dev-%d" % (n - 1))
            sh.stop.wait(1.5 + rng.random() * 1.5)
            if n % 3 == 0:
                # main's tables come onto rel: the versions adopted read back
                rep, tabs = merge("main", "rel")
                with sh.lock:
                    acks = dict(sh.acks)
                for t, m in sorted(tabs.items()):
                    if m["result"] and m["result"] == m["theirs"] and (t, m["result"]) in acks:
                        got = read_version(u, t, m["result"])
                        if got != ("ok", acks[(t, m["result"])]):
                            raise RuntimeError("%s@%d, merged from main into rel, reads %s" % (t, m["result"], got))
                with sh.lock:
                    sh.merges += 1
    except RuntimeError as e:
        sh.fail("merger: %s" % e)


def holder(u, sh, w, seed):
    """Holds a transaction's snapshot across at least one gc run with
    --keep-last; reads its versions at the start and at the end (and two
    of them from another process in between): the same bytes, never
    expired."""
    rng = random.Random(seed)
    while not sh.stop.is_set():
        began = time.time()
        with sh.lock:
            branch = rng.choice(["main", "rel"]) if sh.branch_of else "main"
        try:
            first = w.ask("begin " + branch)
        except RuntimeError as e:
            sh.fail("the holder: %s" % e)
            return
        held = {t: tuple(x) for t, x in first["held"].items()}
        with sh.lock:
            runs = len(sh.gc_runs)
        # until a gc run with --keep-last (not a dry run) began and ended
        # during the hold
        while not sh.stop.is_set():
            with sh.lock:
                if any(s > began and k for s, _, k in sh.gc_runs[runs:]):
                    break
            time.sleep(0.02)
        time.sleep(rng.random() * 0.2)
        with sh.lock:
            acks = dict(sh.acks)
            branch_of = dict(sh.branch_of)
            during = [k for s, _, k in sh.gc_runs[runs:] if s > began and k]
        mattered = False
        for t, (v, d) in sorted(held.items()):
            chain = branch_of.get((t, v), "main")
            newer = sum(1 for (t2, v2) in acks if t2 == t and v2 > v and branch_of.get((t2, v2), "main") == chain)
            if during and min(during) <= newer:
                mattered = True
            if t not in SQL_TABLES and (t, v) in acks and d != acks[(t, v)]:
                sh.fail("%s@%d, read through the snapshot, is not the acknowledged content" % (t, v))
                return
        # two of them read by udr from another process: never expired
        for t in rng.sample(sorted(held), min(2, len(held))):
            v = held[t][0]
            got = read_version(u, t, v)
            if got[0] != "ok":
                sh.fail("%s@%d, held by a snapshot, read by udr: %s" % (t, v, got))
                return
            if (t, v) in acks and got[1] != acks[(t, v)]:
                sh.fail("%s@%d, held by a snapshot, read by udr: wrong content" % (t, v))
                return
        try:
            again = w.ask("check")
            w.ask("end")
        except RuntimeError as e:
            sh.fail("the holder: %s" % e)
            return
        again = {t: tuple(x) for t, x in again["held"].items()}
        if again != held:
            sh.fail("a held snapshot (commit %d on %s): %s" % (first["snapshot"], branch, "; ".join(
                "%s@%d read %s at the start, %s at the end" % (t, held[t][0], held[t][1], again.get(t, (0, None))[1])
                for t in sorted(held) if again.get(t) != held[t])))
            return
        with sh.lock:
            sh.holds += 1
            sh.holds_mattered += mattered


def subscriber(sh, w):
    try:
        while True:
            r = w.read()
            if "done" in r:
                return
            if "error" in r:
                sh.fail("the subscription: %s" % r["error"])
                return
            with sh.lock:
                sh.events.append(r)
    except RuntimeError as e:
        sh.fail("the subscription worker: %s" % e)


def collector(u, sh, seed):
    rng = random.Random(seed)
    for i in range(GC_ROUNDS):
        if sh.stop.is_set():
            return
        args = ["gc", "--grace", rng.choice(["0s", "0s", "1h"]), "--json"]
        keep = rng.choice([None, 1, 2, 3])
        if keep:
            args += ["--keep-last", str(keep)]
        if rng.random() < 0.2:
            args.append("--dry-run")
        start = time.time()
        p = run(u, *args)
        if p.returncode != 0:
            sh.fail("%s: exit %d %s" % (" ".join(args), p.returncode, p.stderr.decode()))
            return
        rep = json.loads(p.stdout)
        print("gc %d: %s took %.1f s" % (i, " ".join(args[1:]), time.time() - start))
        if "--dry-run" not in args:
            with sh.lock:
                sh.removed += rep["removed"]["objects"]
                sh.gc_runs.append((start, time.time(), keep))
                if keep:
                    sh.min_keep = keep if sh.min_keep is None else min(sh.min_keep, keep)
        time.sleep(rng.random() * 0.5)


def log_records(u):
    """The log, oldest first: seq -> (branch, [(table, old, new)])."""
    out = {}
    for r in json.loads(u.ok("log", "--json")):
        out[r["seq"]] = (r["branch"], [(c["table"], c["old"], c["new"]) for c in r["changes"]])
    return out


def check_transactions(sh, log):
    made = {}
    for seq, (_, changes) in log.items():
        ch = {t: new for t, _, new in changes}
        if "xa" in ch or "xb" in ch:
            assert set(ch) == {"xa", "xb"}, "commit %d changes %s: half a transaction" % (seq, changes)
            made[seq] = {"xa": ch["xa"], "xb": ch["xb"]}
    for seq in sorted(set(made) | set(sh.txns)):
        assert made.get(seq) == sh.txns.get(seq), \
            "commit %d: in the log %s, acknowledged to a transactor %s (outcomes %s)" % (
                seq, made.get(seq), sh.txns.get(seq), dict(sh.txn_outcomes))


def check_feed(name, seqs_records, log):
    """What a subscription or watch delivered: every commit of the log once,
    in order, with the log's branch and changes."""
    seqs = [s for s, _ in seqs_records]
    want = sorted(log)
    assert want == list(range(1, len(want) + 1))
    if seqs != want:
        dup = sorted(s for s, c in collections.Counter(seqs).items() if c > 1)
        gap = sorted(set(want) - set(seqs))
        bad = next((i for i, (a, b) in enumerate(zip(seqs, want)) if a != b), None)
        raise AssertionError("%s delivered %d commits, the log has %d: missing %s, twice %s, first out of "
                             "order at position %s" % (name, len(seqs), len(want), gap[:10], dup[:10], bad))
    for s, rec in seqs_records:
        assert rec == log[s], "%s delivered commit %d as %s, the log has %s" % (name, s, rec, log[s])


def test_gc_with_concurrent_writers_and_readers(tmp_path):
    u = Udr(tmp_path / "store")
    u.ok("init")
    work = tmp_path / "w"
    work.mkdir()
    seed = int(os.environ.get("UDR_TORTURE_SEED", "1515"))
    lib = None if SANITIZE else python_libdir()
    sh = Shared()
    workers = []
    watch = None
    watch_out = open(tmp_path / "watch.out", "wb")
    stopfile = str(tmp_path / "sub-stop")
    try:
        watch = subprocess.Popen([UDR_BIN, "--store", str(u.root), "watch", "--since", "0", "--json"],
                                 stdout=watch_out, stderr=subprocess.PIPE, env=base_env())
        side = [threading.Thread(target=committer, args=(u, sh, "c%d" % i, seed + i, str(work))) for i in range(2)]
        side.append(threading.Thread(target=putter, args=(u, sh, seed + 10, str(work))))
        side.append(threading.Thread(target=litterer, args=(u, sh, seed + 15, str(work))))
        side.append(threading.Thread(target=importer, args=(u, sh, seed + 20, str(work))))
        side += [threading.Thread(target=reader, args=(u, sh, seed + 30 + i)) for i in range(2)]
        side.append(threading.Thread(target=merger, args=(u, sh, seed + 60, str(work))))
        subt = None
        wtxn = None
        if lib:
            wsub = Worker(lib, "sub", u.root, 0, stopfile, ",".join(SQL_TABLES))
            wtxn = Worker(lib, "txn", u.root)
            whold = Worker(lib, "hold", u.root, ",".join(HELD_TABLES))
            workers += [wsub, wtxn, whold]
            assert wsub.read() == {"cursor": 0}
            subt = threading.Thread(target=subscriber, args=(sh, wsub))
            subt.start()
            side.append(threading.Thread(target=holder, args=(u, sh, whold, seed + 70)))
        side.append(threading.Thread(target=transactor, args=(u, sh, wtxn, seed + 50, str(work))))
        for t in side:
            t.start()
        gc = threading.Thread(target=collector, args=(u, sh, seed + 40))
        time.sleep(1.0)
        gc.start()
        gc.join()
        # a slow build (the sanitizers: few rounds) may not have merged or
        # held anything yet: the writers go on a little for that
        end = time.time() + 120
        while not sh.stop.is_set() and time.time() < end:
            with sh.lock:
                if sh.merges and sh.txns and (sh.holds or not lib):
                    break
            time.sleep(0.1)
        sh.stop.set()
        for t in side:
            t.join()
        assert not sh.errors, "\n".join(sh.errors)
        assert sh.acks, "nothing was committed"

        # the feeds: the subscription and watch saw the whole log, in order
        log = log_records(u)
        head = max(log)
        if subt is not None:
            with open(stopfile + ".tmp", "w") as f:
                f.write(str(head))
            os.rename(stopfile + ".tmp", stopfile)
            subt.join(300)
            assert not subt.is_alive(), "the subscription did not reach the head %d" % head
            assert not sh.errors, "\n".join(sh.errors)
            check_feed("the subscription", [(e["seq"], (e["branch"], [tuple(c) for c in e["changes"]]))
                                            for e in sh.events], log)
        end = time.time() + 120
        while True:
            with open(tmp_path / "watch.out", "rb") as f:
                lines = f.read().decode().splitlines()
            if (lines and json.loads(lines[-1])["seq"] >= head) or time.time() > end:
                break
            time.sleep(0.1)
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(60) == 0, watch.stderr.read().decode()
        recs = [json.loads(x) for x in lines]
        check_feed("udr watch", [(r["seq"], (r["branch"], [(c["table"], c["old"], c["new"]) for c in r["changes"]]))
                                 for r in recs], log)
        check_transactions(sh, log)
        assert sh.txns, "no transaction committed: %s" % dict(sh.txn_outcomes)
        assert sh.merges, "no merge was made"
    finally:
        for w in workers:
            w.close()
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait(60)
        watch_out.close()

    by_table = {}
    for t, v in sh.acks:
        by_table.setdefault(t, []).append(v)
    # what the log says expired, table by table
    listed = set()
    for t in by_table:
        for r in json.loads(u.ok("retention", "expired", t, "--json")):
            assert r["table"] == t, r
            listed.update((t, v) for v in range(r["first"], r["last"] + 1))
    expired = set()
    keys = sorted(sh.acks)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # udr processes, a few at a time
        final = dict(zip(keys, pool.map(lambda k: read_version(u, *k), keys)))
    for key, want in sorted(sh.acks.items()):
        got = final[key]
        if got[0] == "expired":
            expired.add(key)
            continue
        assert got[0] == "ok", "%s@%d at the end: %s" % (key + (got,))
        assert got[1] == want, "%s@%d reads back wrong at the end" % key
    acked_listed = {k for k in listed if k in sh.acks}
    assert expired == acked_listed, "read as expired %s, listed as expired %s" % (
        sorted(expired - acked_listed), sorted(acked_listed - expired))
    assert sh.suspect <= expired, "read as expired or collected, yet not expired at the end: %s" % sorted(
        sh.suspect - expired)
    for seq, tx in sorted(sh.txns.items()):
        assert (("xa", tx["xa"]) in expired) == (("xb", tx["xb"]) in expired), \
            "commit %d: xa@%d and xb@%d, one expired and the other not" % (seq, tx["xa"], tx["xb"])
    if sh.min_keep is None:
        assert not expired, "versions expired, yet no run expired: %s" % sorted(expired)
    else:
        for t, vs in by_table.items():
            for br in ("main", "rel"):
                chain = sorted(v for v in vs if sh.branch_of.get((t, v), "main") == br)
                for v in chain[-sh.min_keep:]:
                    assert (t, v) not in expired, "%s@%d is among the last %d of its table on %s and expired" % (
                        t, v, sh.min_keep, br)
        assert expired, "runs with --keep-last %d expired nothing" % sh.min_keep
    # the subscription read each version it was given, and read it right
    compared = 0
    for e in sh.events:
        for key, got in e["reads"].items():
            t, v = key.rsplit("@", 1)
            assert not isinstance(got, dict), "the subscription, commit %d, %s: %s" % (e["seq"], key, got["error"])
            want = sh.acks.get((t, int(v)))
            if want is not None:
                if t in SQL_TABLES:
                    got = [tuple(r) for r in got]
                assert got == want, "the subscription read %s (commit %d) wrong" % (key, e["seq"])
                compared += 1
    if lib:
        assert compared > 0, "the subscription read nothing acknowledged"
        assert sh.holds > 0, "no snapshot was held"
        assert sh.holds_mattered > 0, "no hold outlived a --keep-last run that would have expired it (%d holds)" % (
            sh.holds)
    p = u.run("fsck")
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    # something was collected: the run is not vacuous
    assert sh.removed > 0, "no gc round removed anything"
    print("gc runs %d, commits %d, transactions %s, merges %d, holds %d (%d mattered), events %d, expired %d" % (
        len(sh.gc_runs), head, dict(sh.txn_outcomes), sh.merges, sh.holds, sh.holds_mattered, len(sh.events),
        len(expired)))
