"""Transactions from several processes at once.

- 4 processes run seeded transactions over overlapping and disjoint subsets
  of six tables; each logs per attempt its snapshot, tables and outcome
  (commit seq or conflict).  The final catalog must equal a serial execution
  of the committed ones in commit order (every version was based on the
  version before it, was written by the attempt that reported that commit,
  with the contents it wrote), and every conflict must name a table the
  attempt wrote and a commit by another process, made after the attempt's
  snapshot, that wrote that table (first committer wins, no false
  conflicts).
- lost update: 8 processes increment a counter (a version's metadata) by
  read-modify-write under snapshot isolation, retrying on conflict: the
  final counter equals the number of successful commits and the number of
  versions.
"""
import json
import re
import subprocess

from conftest import SANITIZE, base_env, tool

POOL = ["a", "b", "c", "d", "e", "f"]


def dump(root):
    p = subprocess.run([tool("txn_worker"), "dump", root], capture_output=True, env=base_env(),
                       timeout=300)
    assert p.returncode == 0, "dump %s: exit %d\n%s" % (root, p.returncode, p.stderr.decode())
    head, commits, versions = None, {}, {}
    for line in p.stdout.decode().splitlines():
        o = json.loads(line)
        if "head" in o:
            head = o["head"]
        elif "commit" in o and "changes" in o:
            commits[o["commit"]] = o
        else:
            versions[tuple(o["version"])] = o
    return head, commits, versions


def fsck_ok(root):
    p = subprocess.run([tool("txn_worker"), "fsck", root], capture_output=True, env=base_env(),
                       timeout=300)
    assert p.returncode == 0, "fsck: exit %d\n%s%s" % (p.returncode, p.stdout.decode(), p.stderr.decode())


def run_all(cmds, timeout=600):
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env())
             for c in cmds]
    outs = []
    for c, p in zip(cmds, procs):
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, "%s: exit %d\n%s" % (" ".join(c), p.returncode, err.decode())
        outs.append(out.decode())
    return outs


ATTEMPT = re.compile(r"^attempt (\S+) snap (\d+) tables (\S+) (commit|conflict|error) ?(.*)$")
CONFLICT = re.compile(r"conflict on table (\S+): commit (\d+) changed it")


def test_txn_four_processes_serializable_outcome(tmp_path):
    root = str(tmp_path / "store")
    n = 150 if not SANITIZE else 40
    w = tool("txn_worker")
    # Create the store first so the workers do not race on creating it.
    subprocess.run([w, "prepare", root, "x", "0"], check=True, env=base_env())
    outs = run_all([[w, "conc", root, "w%d" % i, str(1000 + i), str(n), ",".join(POOL)]
                    for i in range(4)])
    attempts = {}
    for out in outs:
        for line in out.splitlines():
            m = ATTEMPT.match(line)
            assert m, "bad line %r" % line
            aid, snap, tables, kind, rest = m.groups()
            attempts[aid] = {"snap": int(snap), "tables": tables.split(","), "kind": kind, "rest": rest,
                             "worker": aid.split(".")[0]}
    assert len(attempts) == 4 * n
    problems = []
    committed = {a: x for a, x in attempts.items() if x["kind"] == "commit"}
    conflicts = {a: x for a, x in attempts.items() if x["kind"] == "conflict"}
    errors = {a: x for a, x in attempts.items() if x["kind"] == "error"}
    by_seq = {}
    for aid, x in committed.items():
        seq = int(x["rest"])
        assert seq not in by_seq, "commit %d reported by %s and %s" % (seq, aid, by_seq[seq])
        by_seq[seq] = aid
        x["seq"] = seq

    head, commits, versions = dump(root)
    # Every commit in the log is a reported one, and nothing else committed.
    assert sorted(by_seq) == list(range(1, head + 1)), "log 1..%d vs reported %s" % (head, sorted(by_seq))

    # Serial replay in commit order.
    counter = {}
    for seq in range(1, head + 1):
        aid = by_seq[seq]
        x = attempts[aid]
        c = commits[seq]
        assert sorted(ch[0] for ch in c["changes"]) == sorted(x["tables"]), \
            "commit %d (%s): changes %s, attempt wrote %s" % (seq, aid, c["changes"], x["tables"])
        for t, old, new in c["changes"]:
            assert old == counter.get(t, 0), "commit %d: %s old %d, serial order says %d" % (
                seq, t, old, counter.get(t, 0))
            assert new == old + 1
            counter[t] = new
            v = versions[(t, new)]
            assert v["commit"] == seq
            assert v["meta"]["txn"] == aid, "%s v%d: written by %s, log says %s" % (
                t, new, v["meta"]["txn"], aid)
            assert v["meta"]["snap"] == str(x["snap"])
            # No lost update: it read exactly the version it replaced.
            assert v["meta"]["based_on"] == str(old), "%s v%d (%s) based on %s, replaced %d" % (
                t, new, aid, v["meta"]["based_on"], old)
            assert v["content"] == "txn=%s table=%s" % (aid, t)
        # First committer wins: nothing overlapping committed in (snap, seq).
        for s2 in range(x["snap"] + 1, seq):
            other = set(ch[0] for ch in commits[s2]["changes"])
            assert not (other & set(x["tables"])), \
                "commit %d (%s, snapshot %d) overlaps commit %d on %s" % (
                    seq, aid, x["snap"], s2, other & set(x["tables"]))
    for t in POOL:
        latest = max([v for (tt, v) in versions if tt == t] or [0])
        assert latest == counter.get(t, 0), "table %s: %d versions, replay says %d" % (
            t, latest, counter.get(t, 0))

    # Conflicts: against a concurrent (after the snapshot), overlapping
    # commit by another process, named in the message.
    for aid, x in conflicts.items():
        m = CONFLICT.search(x["rest"])
        if not m:
            problems.append("%s: conflict message does not name table and commit: %s" % (aid, x["rest"]))
            continue
        table, wseq = m.group(1), int(m.group(2))
        if table not in x["tables"]:
            problems.append("%s: conflict on %s, which it did not write (%s)" % (aid, table, x["tables"]))
        if not (x["snap"] < wseq <= head):
            problems.append("%s: winner %d not after its snapshot %d" % (aid, wseq, x["snap"]))
            continue
        if table not in [ch[0] for ch in commits[wseq]["changes"]]:
            problems.append("%s: named winner %d did not write %s" % (aid, wseq, table))
        if attempts[by_seq[wseq]]["worker"] == x["worker"]:
            problems.append("%s: conflict with its own process's commit %d" % (aid, wseq))
        # The winner is the table's latest commit after the snapshot that the
        # loser could see at its commit time: at least, some commit in
        # (snap, wseq] wrote the table (trivially wseq itself).
    for aid, x in errors.items():
        problems.append("%s: error: %s" % (aid, x["rest"]))
    print("attempts=%d committed=%d conflicts=%d errors=%d" % (
        len(attempts), len(committed), len(conflicts), len(errors)))
    assert not problems, "\n".join(problems[:20])
    assert len(committed) > 0
    fsck_ok(root)


def test_txn_lost_update_counter(tmp_path):
    root = str(tmp_path / "store")
    n = 25 if not SANITIZE else 8
    nproc = 8
    w = tool("txn_worker")
    subprocess.run([w, "prepare", root, "x", "0"], check=True, env=base_env())
    outs = run_all([[w, "rmw", root, "w%d" % i, str(n)] for i in range(nproc)])
    oks, conflicts = [], 0
    for out in outs:
        for line in out.splitlines():
            f = line.split()
            if f[0] == "ok":
                oks.append((int(f[1]), int(f[2])))
            elif f[0] == "conflict":
                conflicts += 1
            else:
                raise AssertionError("unexpected line %r" % line)
    assert len(oks) == nproc * n
    head, commits, versions = dump(root)
    counter_versions = sorted(v for (t, v) in versions if t == "counter")
    assert counter_versions == list(range(1, nproc * n + 1)), "counter has %d versions, %d commits" % (
        len(counter_versions), len(oks))
    assert head == nproc * n
    # Version k holds value k: every increment saw the one before it.
    for k in counter_versions:
        assert versions[("counter", k)]["meta"]["value"] == str(k), "version %d has value %s" % (
            k, versions[("counter", k)]["meta"]["value"])
    # Each reported commit is the version with the value it wrote.
    seqs = sorted(s for s, _ in oks)
    assert seqs == list(range(1, head + 1))
    for seq, value in oks:
        (t, old, new), = commits[seq]["changes"]
        assert t == "counter" and new == value, "commit %d made %s v%d, worker wrote %d" % (
            seq, t, new, value)
    print("increments=%d conflicts(retried)=%d" % (len(oks), conflicts))
    fsck_ok(root)
