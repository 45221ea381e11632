"""Corruption sweep of the garbage collector's own files (docs/GC.md 5, 6;
FORMAT.md "GC files", "Leases", "The retention policy record"): every kind
of gc file x every kind of damage x every command that reads it.  The
sweep of the other files of a store is test_sweep.py (its `damage` is
reused here).

One small store is built once: tables t, k and u, a retention policy in
the log (t keeps its last 3, grace 0), a finished gc run (STATE idle,
epoch 1, a gc record), then t@7-8, u@1-2 and an uncommitted put (t@4 and
t@5 expire at the next run), and a dead pinner's lease.  From it: three
stores of a run of epoch 2 killed with SIGKILL (at UDR_PAUSE gc-doomed:
STATE planned; at gc-guard: rewritten; at an unlink after a plan pack's
index went: deleting), and a sibling with another policy (every table
keeps its last 1) whose run files, STATE and policy record are the
"valid file of the same kind from another store".  Each (kind, damage)
damages three copies of the store of its phase: on the first `udr show`
of every version + `udr get` of the kept ones, `udr gc --dry-run`, `udr
fsck`, then a put + commit; on the second `udr gc`; on the third `udr
fsck --repair` followed, when it exits 0, by `udr gc` and `udr fsck`.
lease-live runs a Python transaction that pins t@4 in each copy and
damages its lease.  The tests of one case share one xdist group (run with
--dist loadgroup, as scripts/run-pytest.sh does).

The rules:
  * test_command (per command): no crash, hang or exit other than 0-6;
    after the command every kept version (k@1-3, t@6-8, u@1-2; t@4 too
    while the live transaction's lease still says it pins it) reads back
    byte for byte (`udr get` of the chunk hashes the pristine store named:
    the chunk store alone, so a damaged catalog file cannot hide a lost
    chunk); `udr show` exits 0 with the pristine answer, 6 (t@4, t@5) or
    4, never 0 with another; a commit that exits 0 reads back; the pinning
    transaction reads t@4 whole or gets an error, never other bytes; a
    command that exits non-zero (but 6) names the damaged file; after
    `fsck --repair` exits 0, `gc` exits 0 and `fsck` says 0 problems.
  * test_noticed (per case): some command names the damage (a failure, a
    `note:` or `found:` line), unless UNNOTICED_OK says why it need not.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest

from conftest import FAULT_INJECTION, SANITIZE, UDR_BIN, base_env, python_libdir
from test_sweep import damage

pytestmark = pytest.mark.skipif(not FAULT_INJECTION,
                                reason="interrupted runs need UDR_PAUSE/UDR_FAULT (UDR_FAULT_INJECTION)")

# kind -> (the store of its phase, the damages that apply)
FIVE = ["byte-mid", "trunc-half", "trunc0", "delete", "replace"]
KINDS = {
    "state-idle": ("idle", FIVE),
    "state-planned": ("planned", FIVE),
    "state-rewritten": ("rewritten", FIVE),
    "state-deleting": ("deleting", FIVE),
    "plan-planned": ("planned", FIVE),
    "plan-deleting": ("deleting", FIVE),
    "doomed-planned": ("planned", FIVE),
    "doomed-deleting": ("deleting", FIVE),
    # dead-<e> is reserved (FORMAT.md: never written by this version): one
    # planted as a later version's run would leave it is a leftover
    "dead-planned": ("planned", ["byte-mid", "trunc-half", "trunc0"]),
    # the retention record; bit-policy turns its keep_last 3 into 2 (the
    # seal must catch it: a weaker policy read as valid loses t@6)
    "policy-record": ("idle", ["byte-mid", "bit-policy", "trunc-half", "trunc0", "delete", "replace"]),
    "lease-live": ("idle", FIVE),
    "lease-stale": ("idle", ["byte-mid", "trunc-half", "trunc0", "delete"]),
}
PATHS = ["show", "gc_dry", "fsck", "put_commit", "gc", "repair"]

# Damage no command notices, and why that is right (test_noticed).  Every
# other case must be named by some command: a failure or an fsck note.
UNNOTICED_OK = {
    # a store without chunks/gc/STATE is at epoch 0, phase idle (FORMAT.md
    # "GC files"); with no run files left nothing tells it existed
    ("state-idle", "delete"): "documented: no STATE is epoch 0, idle",
    # another valid STATE: sealed, and one gc could have written; what it
    # does not name is noted as leftover run files (and removed)
    ("state-idle", "replace"): "a valid STATE of another store",
    ("state-planned", "replace"): "a valid STATE of another epoch",
    ("state-rewritten", "replace"): "a valid STATE of another store",
    ("state-deleting", "replace"): "a valid STATE of another run",
    # a plan of a run killed before deleting is never read: the next run or
    # --repair abandons it unread (GC.md 5.2)
    ("plan-planned", "byte-mid"): "never read", ("plan-planned", "trunc-half"): "never read",
    ("plan-planned", "trunc0"): "never read", ("plan-planned", "delete"): "never read",
    ("plan-planned", "replace"): "never read",
    # a run killed while deleting whose plan is gone has nothing left to
    # delete that anyone can name (finish_deleting: ENOENT is done)
    ("plan-deleting", "delete"): "nothing left to delete",
    # the doomed set is read only by writers while its run holds its lock
    # (FORMAT.md); a dead run's is removed unread
    ("doomed-planned", "byte-mid"): "read only while the run lives",
    ("doomed-planned", "trunc-half"): "read only while the run lives",
    ("doomed-planned", "trunc0"): "read only while the run lives",
    ("doomed-planned", "delete"): "read only while the run lives",
    ("doomed-planned", "replace"): "read only while the run lives",
    ("doomed-deleting", "byte-mid"): "read only while the run lives",
    ("doomed-deleting", "trunc-half"): "read only while the run lives",
    ("doomed-deleting", "trunc0"): "read only while the run lives",
    ("doomed-deleting", "delete"): "read only while the run lives",
    ("doomed-deleting", "replace"): "read only while the run lives",
    # a live lease cut inside a line (a write in progress), emptied (no
    # pins), deleted, or another valid lease: gc cannot know of the pin;
    # the transaction's read of t@4 then fails, never returns other bytes
    ("lease-live", "trunc-half"): "a torn line is a write in progress",
    ("lease-live", "trunc0"): "no pins", ("lease-live", "delete"): "no lease",
    ("lease-live", "replace"): "a valid lease of other pins",
    # a dead owner's lease is removed unread (noted as stale whatever its
    # bytes); deleted, there is nothing left to notice
    ("lease-stale", "byte-mid"): "removed unread", ("lease-stale", "trunc-half"): "removed unread",
    ("lease-stale", "trunc0"): "removed unread", ("lease-stale", "delete"): "nothing left to notice",
}


def names(kind, rel, S):
    """What a message may say to name the damaged file."""
    base = os.path.basename(rel)
    if kind == "policy-record":
        return [base, "record %d" % S.policy_seq]
    if kind == "lease-live":
        return [base, "of a live process is damaged"]
    return [base]
CASES = [(k, d) for k, (_, ds) in KINDS.items() for d in ds]
IDS = [(k, d, p) for (k, d) in CASES for p in PATHS]

KEPT = [("k", 1), ("k", 2), ("k", 3), ("t", 6), ("t", 7), ("t", 8), ("u", 1), ("u", 2)]
EXPIRING = [("t", 4), ("t", 5)]
PINNED = ("t", 4)  # what the live transaction of lease-live reads


def run_udr(root, args, env=None, timeout=60):
    e = base_env()
    if env:
        e.update(env)
    try:
        p = subprocess.run([UDR_BIN, "--store", root] + [str(a) for a in args],
                           capture_output=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Res(["udr"] + [str(a) for a in args], "hang", b"", b"timed out after %d s" % timeout)
    return Res(["udr"] + [str(a) for a in args], p.returncode, p.stdout, p.stderr)


class Res:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out = " ".join(cmd[1:3]), rc, out
        self.text = (out.decode(errors="replace") + "\n" + err.decode(errors="replace"))

    def __repr__(self):
        return "`%s`: exit %s\n%s" % (self.cmd, self.rc, self.text[-1500:])


# A live pinner: a transaction that reads t@4 (a version pin, FORMAT.md
# "Leases"), says so, and on a line of stdin reads t@4's chunks again.
HOLDER = r"""
import hashlib, json, sys, udr
db = udr.open(sys.argv[1], create=False)
tx = db.transaction()
tv = tx.get_version("t", 4)
hs = list(tv.chunk_hashes)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        data = b"".join(db.store.get(h) for h in hs)
        print(json.dumps({"ok": hashlib.sha256(data).hexdigest()}), flush=True)
    except udr.Error as e:
        print(json.dumps({"error": type(e).__name__ + ": " + str(e)}), flush=True)
"""


class Holder:
    def __init__(self, root, libdir):
        env = base_env()
        env["PYTHONPATH"] = libdir
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.root = root
        self.p = subprocess.Popen([sys.executable, "-c", HOLDER, root], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.p.stdout.readline()
        assert line and json.loads(line)["ready"], self.p.stderr.read()
        d = os.path.join(root, "catalog", "leases")
        mine = [n for n in os.listdir(d) if n.startswith("%d-" % self.p.pid) and n.endswith(".lease")]
        assert len(mine) == 1, os.listdir(d)
        self.lease = os.path.join(d, mine[0])

    def read(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------
# The pristine stores.

class Stores:
    pass


def ok(root, *args, env=None):
    r = run_udr(root, list(args), env=env)
    assert r.rc == 0, r
    return r.out.decode()


def killed_at(root, point, work):
    """A `udr gc` on root held at UDR_PAUSE point, then SIGKILL."""
    pause = os.path.join(work, "pause-" + point)
    os.makedirs(pause)
    p = subprocess.Popen([UDR_BIN, "--store", root, "gc"], env=dict(base_env(), UDR_PAUSE="%s:%s" % (point, pause)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() + 60
    while not os.path.exists(os.path.join(pause, point + ".reached")):
        assert p.poll() is None and time.monotonic() < t, p.communicate()
        time.sleep(0.005)
    p.kill()
    p.communicate()
    shutil.rmtree(pause)


def status(root):
    return json.loads(ok(root, "gc", "--status", "--json"))


def gcfile(root, prefix):
    d = os.path.join(root, "chunks", "gc")
    got = [n for n in os.listdir(d) if n.startswith(prefix)]
    assert len(got) == 1, (prefix, os.listdir(d))
    return os.path.join(d, got[0])


def build(base, libdir):
    S = Stores()
    S.base = base
    idle = S.idle = os.path.join(base, "idle")
    inp = os.path.join(base, "inputs")
    os.makedirs(inp)
    rng = random.Random(20261204)
    S.data = {}

    def commit(root, table, data):
        f = os.path.join(inp, "in")
        open(f, "wb").write(data)
        v = int(ok(root, "commit", table, "--next", "--file", f).split()[-1])
        S.data[(table, v)] = data
        return v

    ok(idle, "init")
    for _ in range(5):
        commit(idle, "t", rng.randbytes(40000))
    commit(idle, "k", rng.randbytes(30000))
    commit(idle, "k", rng.randbytes(31000))
    # the policy: t keeps its last 3, the rest everything; gc's grace 0
    pre = os.path.join(base, "pre-policy")
    shutil.copytree(idle, pre, symlinks=True)

    def set_policy(root, pol):
        f = os.path.join(inp, "policy.json")
        open(f, "w").write(json.dumps(pol))
        return json.loads(ok(root, "retention", "set", f, "--json"))["seq"]
    S.policy_seq = set_policy(idle, {"tables": {"t": {"keep_last": 3}}, "grace": "0s"})
    # the same record of another store: the same history before it, another
    # policy (every table keeps its last 1)
    assert set_policy(pre, {"default": {"keep_last": 1}, "grace": "0s"}) == S.policy_seq
    rec = "%020d.json" % S.policy_seq
    S.alt_policy_record = open(os.path.join(pre, "catalog", "log", rec), "rb").read()
    shutil.rmtree(pre)
    S.policy_record = os.path.join("catalog", "log", rec)
    commit(idle, "t", rng.randbytes(40000))  # t@6: the policy record is not the head
    commit(idle, "k", rng.randbytes(32000))
    r = json.loads(ok(idle, "gc", "--json"))
    assert r["gc_seq"] > 0, r  # t@1-3 swept: a gc record
    for _ in range(2):
        commit(idle, "t", rng.randbytes(40000))
    # u@1 and u@2, each in a pack of its own that this store's runs keep as
    # they are; the sibling's (keep the last 1) drops u@1's
    commit(idle, "u", rng.randbytes(20000))
    commit(idle, "u", rng.randbytes(21000))
    f = os.path.join(inp, "garbage")
    open(f, "wb").write(rng.randbytes(50000))
    ok(idle, "put", f)
    S.chunks = {}
    S.show = {}
    S.chunk_sha = {}
    for tv in KEPT + EXPIRING:
        S.show[tv] = ok(idle, "show", tv[0], str(tv[1]))
        S.chunks[tv] = json.loads(S.show[tv])["chunks"]
        parts = [run_udr(idle, ["get", h]).out for h in S.chunks[tv]]
        assert b"".join(parts) == S.data[tv], tv
        S.chunk_sha.update((h, sha(b)) for h, b in zip(S.chunks[tv], parts))
    # a dead pinner's lease (the process killed: its lock went with it)
    S.libdir = libdir
    S.stale_lease = None
    if libdir:
        h = Holder(idle, libdir)
        h.p.kill()
        h.p.wait()
        S.stale_lease = os.path.relpath(h.lease, idle)
        assert os.path.exists(h.lease)
    assert status(idle)["phase"] == "idle"
    if libdir:
        # the live pinner of lease-live keeps t@4 from a gc (undamaged)
        chk = os.path.join(base, "pin-check")
        shutil.copytree(idle, chk, symlinks=True)
        h = Holder(chk, libdir)
        try:
            rep = json.loads(ok(chk, "gc", "--json"))
            assert rep["retention"]["expired"]["ranges"] == {"t": [[5, 5]]}, rep["retention"]
            assert h.read() == {"ok": sha(S.data[PINNED])}
        finally:
            h.close()
        shutil.rmtree(chk)

    # a sibling: another policy (keep the last 1 of every table), its own
    # run of epoch 2 killed at gc-doomed
    sib = os.path.join(base, "sibling")
    shutil.copytree(idle, sib, symlinks=True)
    set_policy(sib, {"default": {"keep_last": 1}, "grace": "0s"})
    killed_at(sib, "gc-doomed", base)

    S.planned = os.path.join(base, "planned")
    shutil.copytree(idle, S.planned, symlinks=True)
    killed_at(S.planned, "gc-doomed", base)
    S.rewritten = os.path.join(base, "rewritten")
    shutil.copytree(idle, S.rewritten, symlinks=True)
    killed_at(S.rewritten, "gc-guard", base)
    # killed while deleting, after the first plan pack's index went (the
    # first kill that leaves a plan pack without its index)
    S.deleting = None
    for n in range(1, 20):
        s = os.path.join(base, "deleting")
        shutil.copytree(idle, s, symlinks=True)
        r = run_udr(s, ["gc"], env={"UDR_FAULT": "unlink:%d:crash" % n})
        assert r.rc != 0, "gc finished before its %d-th unlink: no run died while deleting" % n
        st = status(s)
        if st["phase"] == "deleting":
            plan = json.loads(open(os.path.join(s, "chunks", "gc", st["plan"])).read())
            pk = os.path.join(s, "chunks", "packs")
            if any(not os.path.exists(os.path.join(pk, x + ".idx")) for x in plan["drop"] + plan["rewrite"]):
                S.deleting = s
                break
        shutil.rmtree(s)
    assert S.deleting, "no gc run died while deleting"
    for ph in ("planned", "rewritten", "deleting"):
        st = status(getattr(S, ph))
        assert st["phase"] == ph and st["epoch"] == 2, (ph, st)
    assert status(sib)["phase"] == "planned" and status(sib)["epoch"] == 2
    # a planted dead-<e> (GC.md 5.1's layout, magic UDRG, kind 1)
    dead = os.path.join(S.planned, "chunks", "gc", "dead-2")
    body = b"UDRG" + bytes([1, 1, 0, 0]) + (2).to_bytes(8, "little") + bytes(16)
    open(dead, "wb").write(body + hashlib.sha256(body).digest())

    def st_path(root):
        return os.path.join(root, "chunks", "gc", "STATE")

    S.files = {
        "state-idle": (st_path(idle), st_path(sib)),
        "state-planned": (st_path(S.planned), st_path(idle)),
        "state-rewritten": (st_path(S.rewritten), st_path(sib)),
        "state-deleting": (st_path(S.deleting), st_path(S.rewritten)),
        "plan-planned": (gcfile(S.planned, "plan-"), gcfile(sib, "plan-")),
        "plan-deleting": (gcfile(S.deleting, "plan-"), gcfile(sib, "plan-")),
        "doomed-planned": (gcfile(S.planned, "doomed-"), gcfile(sib, "doomed-")),
        "doomed-deleting": (gcfile(S.deleting, "doomed-"), gcfile(sib, "doomed-")),
        "dead-planned": (dead, None),
        "policy-record": (os.path.join(idle, S.policy_record), S.alt_policy_record),
        # another valid lease: a pin of k@1 only
        "lease-live": (None, b'{"pin":1,"version":["k",1],"what":"sql","ms":1796383698839}\n'),
        "lease-stale": (os.path.join(idle, S.stale_lease) if S.stale_lease else None, None),
    }
    # the replacements are other files of their kind
    for k, (a, b) in S.files.items():
        if a and isinstance(b, str):
            assert open(a, "rb").read() != open(b, "rb").read(), k
    return S


# ---------------------------------------------------------------------------
# One case.

def damage_file(path, how, repl):
    if how == "bit-policy":
        data = bytearray(open(path, "rb").read())
        i = data.index(b'"keep_last":3')
        data[i + len('"keep_last":')] ^= 0x01  # '3' -> '2'
        open(path, "wb").write(bytes(data))
        return
    damage(path, how, repl)


class Case:
    """What the commands did on the copies of one damaged store."""

    def __init__(self):
        self.steps = {p: [] for p in PATHS}  # path -> [(what, Res)]
        self.problems = {p: [] for p in PATHS}  # path -> broken rules
        self.rel = None


# Reads chunks through the library (store.get, which verifies them) in one
# long-lived process: the read-back after every command, without a `udr
# get` process per chunk (the `show` path reads them with `udr get`).
READER = r"""
import hashlib, json, sys, udr
for line in sys.stdin:
    req = json.loads(line)
    out = {}
    try:
        with udr.open(req["root"], create=False) as db:
            for h in req["hashes"]:
                try:
                    out[h] = ["ok", hashlib.sha256(db.store.get(h)).hexdigest()]
                except udr.Error as e:
                    out[h] = [type(e).__name__, str(e)]
    except udr.Error as e:
        out = {h: [type(e).__name__, str(e)] for h in req["hashes"]}
    print(json.dumps(out), flush=True)
"""


class Reader:
    def __init__(self, libdir):
        env = base_env()
        env["PYTHONPATH"] = libdir
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.p = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env, text=True)

    def get(self, root, hashes):
        self.p.stdin.write(json.dumps({"root": root, "hashes": hashes}) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "the reader died (exit %s)" % self.p.wait()
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def read_kept(S, root, extra=(), reader=None):
    """Every kept version's chunks, byte for byte: a list of problems."""
    bad = []
    tvs = list(KEPT) + list(extra)
    if reader:
        got = reader.get(root, sorted({h for tv in tvs for h in S.chunks[tv]}))
        for tv in tvs:
            for h in S.chunks[tv]:
                if got[h][0] != "ok":
                    bad.append("%s@%d: chunk %s: store.get raised %s" % (tv[0], tv[1], h[:12], got[h]))
                    break
                if got[h][1] != S.chunk_sha[h]:
                    bad.append("%s@%d: chunk %s: store.get returned other bytes" % (tv[0], tv[1], h[:12]))
                    break
        return bad
    for tv in tvs:
        data = b""
        for h in S.chunks[tv]:
            r = run_udr(root, ["get", h])
            if r.rc != 0:
                bad.append("%s@%d: chunk %s: %r" % (tv[0], tv[1], h[:12], r))
                break
            data += r.out
        else:
            if data != S.data[tv]:
                bad.append("%s@%d: `udr get` exit 0 with other bytes" % tv)
    return bad


class Sweep:
    def __init__(self, S, work):
        self.S = S
        self.work = work
        self.results = {}
        self.n = 0
        self.reader = Reader(S.libdir) if S.libdir else None

    def copy(self, kind, how):
        S = self.S
        phase = KINDS[kind][0]
        self.n += 1
        root = os.path.join(self.work, "c%d" % self.n)
        shutil.copytree(getattr(S, phase), root, symlinks=True)
        holder = None
        target, repl = S.files[kind]
        if kind == "lease-live":
            holder = Holder(root, S.libdir)
            path = holder.lease
        else:
            path = os.path.join(root, os.path.relpath(target, getattr(S, phase)))
        if how == "replace" and repl is None:
            raise AssertionError("no replacement for " + kind)
        damage_file(path, how, repl)
        return root, holder, os.path.basename(path)

    def case(self, kind, how):
        key = (kind, how)
        if key in self.results:
            return self.results[key]
        S = self.S
        if kind.startswith("lease") and not S.libdir:
            pytest.skip("the Python binding is not available (lease files need a pinner)")
        c = Case()
        c.kind, c.how = kind, how
        for group in (["show", "gc_dry", "fsck", "put_commit"], ["gc"], ["repair"]):
            root, holder, c.rel = self.copy(kind, how)
            try:
                for path in group:
                    self.run_path(c, path, root, holder)
            finally:
                if holder:
                    holder.close()
                shutil.rmtree(root)
        self.results[key] = c
        if os.environ.get("UDR_SWEEP_GC_DUMP"):
            with open(os.environ["UDR_SWEEP_GC_DUMP"], "a") as f:
                f.write("=== %s %s (%s)\n" % (kind, how, c.rel))
                for p in PATHS:
                    for r in c.steps[p]:
                        if r.cmd.startswith("show"):
                            continue
                        f.write("--- %s: %r\n" % (p, r))
        return c

    def run_path(self, c, path, root, holder):
        S = self.S
        steps, bad = c.steps[path], c.problems[path]
        extra = []
        if holder and c.how == "byte-mid":
            # a complete line that is not a pin makes gc keep everything the
            # owner could pin (FORMAT.md "Leases"); with the pin's line cut
            # (a torn line is a write in progress), emptied, gone or another
            # pin in its place, gc cannot know of t@4: the transaction's
            # read must then fail, never return other bytes (below)
            extra = [PINNED]

        def cmd(*args):
            r = run_udr(root, list(args))
            steps.append(r)
            if r.rc == "hang" or r.rc < 0 or r.rc > 6:
                bad.append("crashed or hung: %r" % r)
            elif r.rc not in (0, 6) and not any(n in r.text for n in names(c.kind, c.rel, S)):
                bad.append("exit %d without a message naming %s: %r" % (r.rc, c.rel, r))
            return r

        if path == "show":
            for tv in KEPT + EXPIRING:
                r = cmd("show", tv[0], str(tv[1]))
                if r.rc == 0 and r.out.decode() != S.show[tv]:
                    bad.append("show %s@%d: exit 0 with another answer: %r" % (tv + (r,)))
                elif r.rc not in (0, 4) and not (r.rc == 6 and tv in EXPIRING):
                    bad.append("show %s@%d: %r" % (tv + (r,)))
        elif path == "gc_dry":
            cmd("gc", "--dry-run", "--json")
        elif path == "fsck":
            cmd("fsck")
        elif path == "put_commit":
            data = b"new content %d " % len(c.rel) * 997
            f = os.path.join(root, "..", os.path.basename(root) + ".in")
            open(f, "wb").write(data)
            r = cmd("commit", "n", "--next", "--file", f)
            os.unlink(f)
            if r.rc == 0:
                v = int(r.out.split()[-1])
                got = run_udr(root, ["show", "n", str(v)])
                hs = json.loads(got.out)["chunks"] if got.rc == 0 else []
                back = b"".join(run_udr(root, ["get", h]).out for h in hs)
                if back != data:
                    bad.append("commit exit 0, n@%d does not read back: %r" % (v, got))
        elif path == "gc":
            cmd("gc", "--json")
        elif path == "repair":
            r = cmd("fsck", "--repair")
            if r.rc == 0:
                g = cmd("gc", "--json")
                if g.rc != 0:
                    bad.append("fsck --repair exit 0, then gc failed: %r\nrepair: %r" % (g, r))
                f = cmd("fsck")
                if f.rc != 0 or " 0 problems" not in f.text:
                    bad.append("fsck --repair exit 0, gc, then fsck not clean: %r\nrepair: %r" % (f, r))
        # after `show` too: the `udr get` of every kept version's chunks is
        # the read path of the chunk store
        bad.extend(read_kept(S, root, extra, None if path == "show" else self.reader))
        if holder and path in ("gc", "repair", "gc_dry"):
            got = holder.read()
            if "ok" in got and got["ok"] != sha(S.data[PINNED]):
                bad.append("the live transaction read other bytes for t@4 with no error")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    if not os.path.exists(UDR_BIN):
        pytest.skip("udr CLI not built (%s)" % UDR_BIN)
    base = str(tmp_path_factory.mktemp("sweepgc"))
    libdir = None if SANITIZE else python_libdir()
    S = build(base, libdir)
    sw = Sweep(S, os.path.join(base, "work"))
    yield sw
    if sw.reader:
        sw.reader.close()
    shutil.rmtree(base, ignore_errors=True)


def by_case(ids):
    return [pytest.param(*x, marks=pytest.mark.xdist_group("gc-%s-%s" % x[:2])) for x in ids]


@pytest.mark.parametrize("kind,how", by_case(CASES), ids=["-".join(x) for x in CASES])
def test_noticed(sweep, kind, how):
    c = sweep.case(kind, how)
    said = "\n".join(r.text for p in PATHS for r in c.steps[p]
                     if r.rc != 0 or "note:" in r.text or "found:" in r.text)
    noticed = any(n in said for n in names(kind, c.rel, sweep.S))
    if (kind, how) in UNNOTICED_OK:
        return
    assert noticed, "%s/%s (%s): no command named the damage:\n%s" % (
        kind, how, c.rel, "\n".join(map(repr, [r for p in PATHS for r in c.steps[p]])))


@pytest.mark.parametrize("kind,how,path", by_case(IDS), ids=["-".join(x) for x in IDS])
def test_command(sweep, kind, how, path):
    c = sweep.case(kind, how)
    assert not c.problems[path], "%s/%s (%s), %s:\n%s\n\nsteps:\n%s" % (
        kind, how, c.rel, path, "\n".join(c.problems[path]), "\n".join(map(repr, c.steps[path])))
