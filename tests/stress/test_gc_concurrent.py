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
  * gc in a loop: `udr gc --grace G` with G 0s or 1h, half the time with
    `--keep-last K` (K 1..3: expire by the rule, then sweep the data only
    expired versions needed), now and then --dry-run.

Every read gives the acknowledged bytes, or says the version expired
(exit 6; `get` of a chunk of a version swept between `show` and `get`
exits 1): such a version must be listed as expired at the end, and it is
never among its table's last K (the smallest K any run used).  At the
end fsck is clean, every kept version reads back byte for byte, the
expired set is what `udr retention expired` lists, and the runs removed
something (the litter, and expired data when a --keep-last run ran).

A few seconds by default; UDR_TORTURE_ROUNDS=N (make torture) runs N gc
rounds.
"""
import hashlib
import json
import os
import random
import threading
import time

import pytest

from conftest import SANITIZE, Udr

TORTURE = int(os.environ.get("UDR_TORTURE_ROUNDS", "0"))
GC_ROUNDS = TORTURE or (4 if SANITIZE else 12)


def digest(b):
    return hashlib.sha256(b).hexdigest()


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.acks = {}           # (table, version) -> sha256 of the content, or rows for "imp"
        self.suspect = set()     # (table, version) read as expired/collected: must be expired at the end
        self.errors = []
        self.removed = 0         # objects removed by the gc runs
        self.min_keep = None     # the smallest --keep-last of a run that was not a dry run
        self.stop = threading.Event()

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)
        self.stop.set()


def run(u, *args, **kw):
    return u.run(*args, timeout=300, **kw)


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
    if table == "imp":
        p = run(u, "sql", 'SELECT id, v FROM "imp@%d" ORDER BY id' % ver, "--json")
        if p.returncode == 6:
            return ("expired",)
        if p.returncode != 0:
            return ("bad", "sql imp@%d: exit %d %s" % (ver, p.returncode, p.stderr.decode()))
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
        p = run(u, *args)
        if p.returncode != 0:
            sh.fail("%s: exit %d %s" % (" ".join(args), p.returncode, p.stderr.decode()))
            return
        rep = json.loads(p.stdout)
        if "--dry-run" not in args:
            with sh.lock:
                sh.removed += rep["removed"]["objects"]
                if keep:
                    sh.min_keep = keep if sh.min_keep is None else min(sh.min_keep, keep)
        time.sleep(rng.random() * 0.5)


def test_gc_with_concurrent_writers_and_readers(tmp_path):
    u = Udr(tmp_path / "store")
    u.ok("init")
    work = tmp_path / "w"
    work.mkdir()
    seed = int(os.environ.get("UDR_TORTURE_SEED", "1515"))
    sh = Shared()
    side = [threading.Thread(target=committer, args=(u, sh, "c%d" % i, seed + i, str(work))) for i in range(2)]
    side.append(threading.Thread(target=putter, args=(u, sh, seed + 10, str(work))))
    side.append(threading.Thread(target=litterer, args=(u, sh, seed + 15, str(work))))
    side.append(threading.Thread(target=importer, args=(u, sh, seed + 20, str(work))))
    side += [threading.Thread(target=reader, args=(u, sh, seed + 30 + i)) for i in range(2)]
    for t in side:
        t.start()
    gc = threading.Thread(target=collector, args=(u, sh, seed + 40))
    time.sleep(1.0)
    gc.start()
    gc.join()
    sh.stop.set()
    for t in side:
        t.join()
    assert not sh.errors, "\n".join(sh.errors)
    assert sh.acks, "nothing was committed"

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
    for key, want in sorted(sh.acks.items()):
        got = read_version(u, *key)
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
    if sh.min_keep is None:
        assert not expired, "versions expired, yet no run expired: %s" % sorted(expired)
    else:
        for t, vs in by_table.items():
            for v in sorted(vs)[-sh.min_keep:]:
                assert (t, v) not in expired, "%s@%d is among its table's last %d and expired" % (t, v, sh.min_keep)
        assert expired, "runs with --keep-last %d expired nothing" % sh.min_keep
    p = u.run("fsck")
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    # something was collected: the run is not vacuous
    assert sh.removed > 0, "no gc round removed anything"
