"""Group commit under kill -9: 8 writer processes commit to disjoint and
overlapping tables (single-table commits and two-table transactions) while a
reader process reads every table's latest version; random writers are killed
with SIGKILL at random moments, then all of them.  After every round:

  * every acknowledged commit is present, readable and holds what was
    acknowledged (its table version, its chunk, its commit number);
  * every table's versions are 1..L with no gaps, and the log is one serial
    order: records 1..head, each acknowledged commit under its own number,
    with the versions it reported;
  * nothing a reader saw disappeared: every head it reported is at most the
    head now, and every version it saw is still there with the same content;
    its head never went backwards;
  * `udr fsck` is clean.

test_group_commit_powercut runs the same load on a simulated disk shared by
all the processes (udr_worker's UDR_WORKER_POWERCUT: only what a syncfs or
an fsync saw is on it) and cuts the power, killing every process at once:
the same checks hold.  With the acknowledgement moved before the syncfs for
every third commit it fails ("acknowledged commit N is not in the log").

The default is a few seconds; UDR_TORTURE_ROUNDS=200 (the `make torture`
target) runs the long version of both.
"""
import json
import os
import random
import signal
import subprocess
import time

from conftest import SANITIZE, Udr, base_env, tool

ROUNDS = int(os.environ.get("UDR_TORTURE_ROUNDS", "4" if not SANITIZE else "2"))
WRITERS = 8
# writers 0-3 each own a table; writers 4-7 share three tables with each
# other and with the owners of t0 and t1 (overlap)
TABLES = {0: ["t0"], 1: ["t1"], 2: ["t2"], 3: ["t3"],
          4: ["s0", "s1"], 5: ["s1", "s2"], 6: ["s0", "s2", "t0"], 7: ["s2", "t1"]}
ALL = sorted({t for ts in TABLES.values() for t in ts})


def parse_acks(out):
    text = out.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a line cut by the kill was not acknowledged
    acks = []
    for line in text.splitlines():
        f = line.split()
        assert f[0] == "ack", line
        seq = int(f[1])
        changes = [(f[i], int(f[i + 1]), f[i + 2]) for i in range(2, len(f), 3)]
        acks.append((seq, changes))
    return acks


def parse_seen(out):
    text = out.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    seen = []
    for line in text.splitlines():
        f = line.split()
        assert f[0] != "BACKWARDS", "a reader saw the head go backwards: %s" % line
        assert f[0] == "seen", line
        seen.append((int(f[1]), f[2], int(f[3]), int(f[4]), f[5]))
    return seen


class Checker:
    """What check() knows from earlier rounds: the records seen so far (a
    durable record never changes), so that a round reads only the log's new
    part and a long run stays linear.  fsck (every file of the catalog) runs
    every round in short runs, every FSCK_EVERY rounds and in the last one
    in long runs; a record lost or changed in between is still found by
    the next round (the log must go on from the last record seen, whose
    changes must be the same) and by fsck (the digest chain)."""

    FSCK_EVERY = 10

    def __init__(self, rounds):
        self.rounds = rounds
        self.made = {}
        self.head = 0
        self.rnd = 0
        self.nacks = 0
        self.nseen = 0


def check(u, acks, seen, ck):
    ck.rnd += 1
    if ck.rounds <= 10 or ck.rnd % Checker.FSCK_EVERY == 0 or ck.rnd == ck.rounds:
        f = u.fsck()
        assert f.returncode == 0, "fsck: %d\n%s%s" % (f.returncode, f.stdout.decode(), f.stderr.decode())
    since = max(ck.head - 1, 0)
    log = json.loads(u.ok("log", "--reverse", "--json", "--since", str(since)))
    seqs = [c["seq"] for c in log]
    assert seqs == list(range(since + 1, since + 1 + len(seqs))), "the log is not 1..head"
    assert since + len(seqs) >= ck.head, "the log lost records: %d, was %d" % (since + len(seqs), ck.head)
    for c in log:
        m = sorted((x["table"], x["new"]) for x in c["changes"])
        assert ck.made.setdefault(c["seq"], m) == m, "record %d changed" % c["seq"]
    ck.head = since + len(seqs)
    head, made = ck.head, ck.made
    versions = {t: len(u.versions(t)) for t in ALL}
    for t in ALL:
        assert u.versions(t) == list(range(1, versions[t] + 1)), "gaps in %s" % t
    acked = set(seq for seq, _ in acks[:ck.nacks])
    for seq, changes in acks[ck.nacks:]:
        assert seq not in acked, "commit %d acknowledged twice" % seq
        acked.add(seq)
        assert seq in made, "acknowledged commit %d is not in the log (head %d)" % (seq, head)
        assert made[seq] == sorted((t, v) for t, v, _ in changes), "commit %d differs" % seq
    new_acks, ck.nacks = acks[ck.nacks:], len(acks)
    # content of acknowledged versions (a sample: each show is a process; fsck
    # checks every version file against its record's digest)
    for seq, changes in random.Random(len(acks)).sample(new_acks, min(40, len(new_acks))):
        for t, v, h in changes:
            shown = u.show(t, v)
            assert shown["chunks"] == [h], "%s@%d changed" % (t, v)
            assert shown["commit"] == seq, "%s@%d: commit %s, acknowledged as %d" % (
                t, v, shown["commit"], seq)
    new_seen, ck.nseen = seen[ck.nseen:], len(seen)
    for head_seen, t, v, seq, h in new_seen:
        assert head_seen <= head, "a reader saw head %d, now %d" % (head_seen, head)
        assert v <= versions[t], "a reader saw %s@%d, now gone (latest %d)" % (t, v, versions[t])
        assert (t, v) in made.get(seq, []), "a reader saw %s@%d from commit %d, not in the log" % (t, v, seq)
    # content of what readers saw (a sample: each show is a process)
    for head_seen, t, v, seq, h in random.Random(1).sample(new_seen, min(40, len(new_seen))):
        shown = u.show(t, v)
        assert shown["chunks"] == [h] and shown["commit"] == seq, "%s@%d seen differently" % (t, v)
    return versions


def reap(procs, rd, acks, seen):
    """Collect what the killed writers acknowledged and the reader saw."""
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, "writer exited by itself: %d %s" % (
            p.returncode, err.decode()[-2000:])
        acks += parse_acks(out)
    out, err = rd.communicate()
    assert rd.returncode == -signal.SIGKILL, "reader failed: %d %s" % (rd.returncode, err.decode()[-2000:])
    seen += parse_seen(out)


def test_group_commit_kill9(tmp_path):
    worker = tool("udr_worker")
    rng = random.Random(int(os.environ.get("UDR_TORTURE_SEED", "424242")))
    u = Udr(tmp_path / "store")
    u.ok("init")
    acks, seen = [], []
    ck = Checker(ROUNDS)
    killed = 0
    for rnd in range(ROUNDS):
        procs = []
        for w in range(WRITERS):
            procs.append(subprocess.Popen(
                [worker, "group", u.root, str(rng.randrange(1 << 30))] + TABLES[w],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env()))
        rd = subprocess.Popen([worker, "reader", u.root] + ALL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=base_env())
        # kill random writers at random moments, then the rest
        end = time.time() + rng.uniform(0.3, 0.8) * (2 if SANITIZE else 1)
        alive = list(range(WRITERS))
        while time.time() < end and alive:
            time.sleep(rng.uniform(0.0, 0.15))
            w = alive.pop(rng.randrange(len(alive)))
            procs[w].send_signal(signal.SIGKILL)
            killed += 1
        for p in procs + [rd]:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        reap(procs, rd, acks, seen)
        versions = check(u, acks, seen, ck)
        if (rnd + 1) % 10 == 0:
            print("round %d: kills=%d acks=%d seen=%d" % (rnd + 1, killed, len(acks), len(seen)), flush=True)
    # the acknowledged commits form one serial order: distinct numbers, and
    # each table's acknowledged versions increase with the commit number
    order = sorted(acks)
    last = {}
    for seq, changes in order:
        for t, v, _ in changes:
            assert last.get(t, 0) < v, "table %s: version %d at commit %d after %d" % (t, v, seq, last.get(t))
            last[t] = v
    print("rounds=%d kills=%d acks=%d seen=%d versions=%s" % (ROUNDS, killed, len(acks), len(seen), versions))
    assert len(acks) > 0


PC_ROUNDS = int(os.environ.get("UDR_TORTURE_ROUNDS", "2" if not SANITIZE else "1"))


def test_group_commit_powercut(tmp_path):
    """The same writers and reader on one simulated disk shared by all the
    processes (udr_worker's UDR_WORKER_POWERCUT): only what a syncfs saw is
    on it.  Each round cuts the power (kills every process, then the store
    becomes the disk's content) and checks what check() checks: every
    acknowledged commit and everything a reader saw survived."""
    import shutil
    worker = tool("udr_worker")
    rng = random.Random(int(os.environ.get("UDR_TORTURE_SEED", "515151")))
    u = Udr(tmp_path / "store")
    u.ok("init")
    pc = tmp_path / "disk"
    pc.mkdir()
    env = base_env()
    env["UDR_WORKER_POWERCUT"] = str(pc)
    acks, seen = [], []
    ck = Checker(PC_ROUNDS)
    for rnd in range(PC_ROUNDS):
        snap = pc / "snap"
        if snap.exists():
            shutil.rmtree(snap)
        shutil.copytree(u.root, snap, symlinks=True)
        (pc / "dirty").write_bytes(b"")
        procs = [subprocess.Popen([worker, "group", u.root, str(rng.randrange(1 << 30))] + TABLES[w],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for w in range(WRITERS)]
        rd = subprocess.Popen([worker, "reader", u.root] + ALL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
        time.sleep(rng.uniform(0.3, 0.9) * (2 if SANITIZE else 1))
        for p in procs + [rd]:  # the power cut
            p.send_signal(signal.SIGKILL)
        reap(procs, rd, acks, seen)
        shutil.rmtree(u.root)
        shutil.copytree(snap, u.root, symlinks=True)
        versions = check(u, acks, seen, ck)
        if (rnd + 1) % 10 == 0:
            print("powercut round %d: acks=%d seen=%d" % (rnd + 1, len(acks), len(seen)), flush=True)
    print("powercut rounds=%d acks=%d seen=%d versions=%s" % (PC_ROUNDS, len(acks), len(seen), versions))
    assert len(acks) > 0
