"""Corruption sweep: every kind of file a store holds (docs/FORMAT.md) x every
kind of damage x every read path that reads it.

One small store is built once.  For each (file kind, damage) a fresh copy of
it is damaged, every read path that applies runs on that copy, then
`udr fsck`, then the same read paths again; the copy is deleted.  Each
(kind, damage, read path) is its own test id, asserting on the results
recorded for its case (computed once, by the first test of the case).

What a read may do after damage (the rule of every test_read* id):
  * give exactly the pristine store's output (same exit status, same stdout,
    same output file), e.g. a damaged cache that is ignored, or damage in a
    file the read does not depend on; or
  * fail with an integrity error: exit 4 (README: "4 integrity failure"),
    `udr.IntegrityError` in Python; a failed `-o`/export leaves no file;
  * `udr get H` of a content whose own top-level object file was deleted may
    say "not found" (exit 1, `NotFoundError`): the chunk store alone cannot
    know that something references it (tests/stress/test_corruption.py,
    test_deleted_chunk).  So may every command when the store root's
    config.json is deleted: that file is what makes a directory a store
    (FORMAT.md: written last by `udr init`).
Never exit 0 with a different output, never a signal or another exit code.

After fsck: the same rule, and a read that gave the original output before
fsck must still give it (fsck must not destroy what was readable); for the
caches (HEAD, LATEST), which fsck rebuilds from the log, every read must give
the original output after fsck.  Every pristine file other than the damaged
one and the caches must still exist with the same bytes after fsck.
"""
import concurrent.futures
import datetime
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time

import pytest

from conftest import SANITIZE, UDR_BIN, base_env, python_libdir

# ---------------------------------------------------------------------------
# The matrix.

# Objects of the chunk store (FORMAT.md "Object kinds"; in a format-3 store
# all but the Parquet parts are entries of packs, damaged in place in their
# pack: "delete" deletes the pack file), the index of a pack (FORMAT.md
# "Packs"), catalog files, caches and configs.
OBJECT_KINDS = ["raw", "zst", "manifest", "piece", "delta", "delta-base", "part", "pack-index"]
CATALOG_KINDS = ["version-old", "version-latest", "record-old", "record-latest", "expire-record"]
# Caches, and the checkpoint (state/<seq>.json): derived from the log, which
# names its digest, so readers rebuild it when it is missing or damaged and
# fsck rewrites it (reporting a damaged one).
CACHE_KINDS = ["HEAD", "LATEST", "checkpoint", "expired-set"]
CONFIG_KINDS = ["config-root", "config-chunks", "config-catalog"]
# The multi-pack index (FORMAT.md "Multi-pack index"): a cache over the packs'
# indexes that readers check entry by entry; fsck reports damage and
# rebuilds it.  (Written here by a put with UDR_MIDX_THRESHOLD=1: builds with
# UDR_FAULT_INJECTION only; skipped otherwise.)
MIDX_KINDS = ["multi-pack-index"]
KINDS = OBJECT_KINDS + MIDX_KINDS + CATALOG_KINDS + CACHE_KINDS + CONFIG_KINDS

DAMAGES = ["bit-mid", "byte-start", "byte-mid", "byte-end", "trunc0", "trunc-half",
           "append", "delete", "replace"]
# For JSON files that carry a time: flip the lowest bit of the last digit of
# time_ms (records) / created_ms (version files): still valid JSON, the time
# moves by one millisecond, up or down with the parity of that digit (so
# which of `show --at t` / `show --at t-1ms` sees it varies from run to run;
# `log --json` always does).
TIME_KINDS = {"version-old": "created_ms", "version-latest": "created_ms",
              "record-old": "time_ms", "record-latest": "time_ms", "expire-record": "time_ms"}


def damages_of(kind):
    out = list(DAMAGES)
    if kind in TIME_KINDS:
        out.insert(1, "bit-time")
    if kind in ("config-root", "config-catalog", "checkpoint", "expired-set"):
        # Only one valid content exists ({"format": 1, "kind": ...}): there is
        # no other valid file of this kind to put in its place.
        out.remove("replace")
    return out


# Read paths.  Contents read by `get` (and Python's store.get): symbolic names
# resolved when the store is built.
def get_paths(content):
    return ["get:" + content, "get_o:" + content, "get_verify:" + content,
            "py_get:" + content, "py_get_verified:" + content]


SQL_PATHS = ["sql_P", "sql_P1", "sql_P2", "export_P2", "diff_rows_2_4"]
# `log --json` prints every field of every record (plain `log` a subset).
CATALOG_PATHS = ["show_P", "show_P_2", "show_P_3", "versions_P", "at_v2", "at_v2_minus_1ms",
                 "at_v4", "at_v4_minus_1ms", "log_json", "log_table_P", "tables", "sql_P", "export_P2",
                 "diff_rows_2_4"]

# Retention (docs/GC.md 1.4, 1.5): F's versions 1..N-3 are expired by an
# expire record (the head).  Reading F@1 exits 6 on the pristine store: a
# damaged store may answer the same, or exit 4, never F@1's rows.
# (F holds raw chunks, not rows: its reads are `show`.)
EXPIRY_PATHS = ["show_F_1", "show_F_2", "show_F", "retention_expired", "log_json"]
EXPIRED_EXIT = {"show_F_1", "show_F_2"}

READ_PATHS = {
    "raw": get_paths("raw"),
    "zst": get_paths("zst"),
    "manifest": get_paths("big"),
    "piece": get_paths("big"),
    "delta": get_paths("D2") + get_paths("D3"),
    "delta-base": get_paths("D1") + get_paths("D2") + get_paths("D3"),
    "part": get_paths("partA") + ["sql_P1", "sql_P2", "export_P2", "diff_rows_2_4"],
    "pack-index": get_paths("big"),
    "multi-pack-index": get_paths("big") + get_paths("raw") + get_paths("D3"),
}
for _k in CATALOG_KINDS + CACHE_KINDS:
    READ_PATHS[_k] = list(CATALOG_PATHS)
for _k in ("expire-record", "expired-set"):
    READ_PATHS[_k] = list(CATALOG_PATHS) + [p for p in EXPIRY_PATHS if p not in CATALOG_PATHS]
for _k in CONFIG_KINDS:
    READ_PATHS[_k] = (get_paths("raw") + ["get_verify:big", "py_get:big", "show_P", "show_P_2",
                                          "versions_P", "at_v2", "log_json", "tables", "sql_P",
                                          "export_P2"])

# A content whose own object file is the damaged file (exit 1 allowed for
# `get` of it when that file is deleted).
TOP_LEVEL = {"raw": "raw", "zst": "zst", "manifest": "big", "part": "partA"}

CASES = [(k, d) for k in KINDS for d in damages_of(k)]
READ_IDS = [(k, d, p) for (k, d) in CASES for p in READ_PATHS[k]]


def needs_sql(kind, path):
    return kind == "part" or path in SQL_PATHS or path.endswith(":partA")


# ---------------------------------------------------------------------------
# Running things.

def run_udr(root, args, timeout=120):
    env = base_env()
    p = subprocess.run([UDR_BIN, "--store", root] + [str(a) for a in args],
                       capture_output=True, env=env, timeout=timeout)
    return p


def digest(b):
    return hashlib.sha256(b).hexdigest()


class Outcome:
    """What one read path did: exit status (negative: a signal), a digest of
    stdout and of the output file (None when absent), a bit of stderr."""

    def __init__(self, rc, out, file_digest=None, err="", kind="cli"):
        self.rc = rc
        self.out = digest(out) if isinstance(out, bytes) else out
        self.size = len(out) if isinstance(out, bytes) else None
        self.head = out[:160] if isinstance(out, bytes) else b""
        self.file = file_digest
        self.err = err[-400:] if isinstance(err, str) else err.decode(errors="replace")[-400:]
        self.kind = kind

    def same(self, other):
        return (self.rc, self.out, self.file) == (other.rc, other.out, other.file)

    def __repr__(self):
        return "exit %s, stdout %s bytes sha256 %s %r..., output file %s, stderr %r" % (
            self.rc, self.size, str(self.out)[:12], self.head,
            "absent" if self.file is None else "sha256 " + self.file[:12], self.err)


class PyWorker:
    """One long-lived interpreter with the udr extension imported, serving
    `store.get` / `store.get_verified` requests (one process for the whole
    sweep: start-up costs more than the reads).  A crash of the extension
    only kills this process: it is reported and restarted."""

    SCRIPT = r"""
import hashlib, json, sys
import udr
for line in sys.stdin:
    req = json.loads(line)
    res = {}
    for h in req["hashes"]:
        for how in ("get", "get_verified"):
            key = how + ":" + h
            try:
                with udr.open(req["root"], create=False) as db:
                    data = getattr(db.store, how)(h)
                res[key] = ["ok", hashlib.sha256(data).hexdigest(), ""]
            except udr.IntegrityError as e:
                res[key] = ["IntegrityError", None, str(e)]
            except udr.NotFoundError as e:
                res[key] = ["NotFoundError", None, str(e)]
            except BaseException as e:
                res[key] = [type(e).__name__, None, str(e)]
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
"""

    def __init__(self, libdir):
        self.libdir = libdir
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = self.libdir + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", self.SCRIPT], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def get(self, root, hashes):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            self.proc.stdin.write(json.dumps({"root": root, "hashes": hashes}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            rc = self.proc.wait()
            err = self.proc.stderr.read()[-400:]
            self.proc = None
            return {how + ":" + h: ["crash", rc, err] for h in hashes
                    for how in ("get", "get_verified")}
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None


# ---------------------------------------------------------------------------
# The pristine store.

def iso(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class Entry:
    """An object's bytes in a pack (FORMAT.md "Packs"): the pack file, the
    offset and length of the entry's payload, its kind (1 raw, 2 zstd,
    3 manifest, 4 delta)."""

    def __init__(self, path, off, length, kind):
        self.path, self.off, self.length, self.kind = path, off, length, kind

    def payload(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            return f.read(self.length)


def obj_file(root, h):
    """The one copy of h: a loose file's path, or an Entry of a pack
    (hidden `udr __locate`: the library's object-location layer)."""
    p = run_udr(root, ["__locate", h])
    assert p.returncode == 0, (h, p.stderr)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, (h, lines)
    f = lines[0].split()
    if f[0] == "loose":
        return f[1]
    return Entry(f[1], int(f[2]) + 48, int(f[3]) - 52, int(f[4]))


def obj_bytes(o):
    return o.payload() if isinstance(o, Entry) else open(o, "rb").read()


def obj_kind(o):
    if isinstance(o, Entry):
        return o.kind
    return {"": 1, ".zst": 2, ".m": 3, ".d": 4}[os.path.basename(o)[64:]]


def manifest_pieces(o):
    data = obj_bytes(o)
    assert data[:4] == b"UDRM"
    n = struct.unpack_from("<Q", data, 16)[0]
    return [data[64 + 36 * i:64 + 36 * i + 32].hex() for i in range(n)]


def csv_rows(rng, n, changed=()):
    rows = ["id,name,score"]
    for i in range(n):
        rows.append("%d,name-%d-%s,%d" % (i, i, "CHANGED" if i in changed else "x",
                                          rng.randrange(10 ** 6)))
    return "\n".join(rows) + "\n"


class Store:
    pass


def build_store(base):
    """The store every case copies: tables T (raw, zst and chunked chunks),
    D (a > 512 KiB CSV committed three times with --file: deltas), P (four
    versions; imported Parquet parts when DuckDB is there) and F (filler,
    so that the log passes 16 commits and HEAD is written)."""
    s = Store()
    s.root = os.path.join(base, "pristine")
    inp = os.path.join(base, "inputs")
    os.makedirs(inp)
    rng = random.Random(20261130)

    def ok(*args):
        p = run_udr(s.root, list(args))
        assert p.returncode == 0, (args, p.stdout[-500:], p.stderr[-1000:])
        return p.stdout.decode().strip()

    def put_bytes(name, data):
        f = os.path.join(inp, name)
        open(f, "wb").write(data)
        return ok("put", f)

    def tick():
        time.sleep(0.006)  # distinct commit times (ms) for show --at

    ok("init")
    s.sql = run_udr(s.root, ["sql", "SELECT 1"]).returncode == 0
    c = {}
    c["raw"] = put_bytes("raw", rng.randbytes(5000))
    c["raw2"] = put_bytes("raw2", rng.randbytes(6001))
    text = "".join("line %d %s\n" % (i, rng.choice(["alpha", "beta", "gamma"])) for i in range(2000))
    c["zst"] = put_bytes("zst", text.encode())
    c["zst2"] = put_bytes("zst2", (text.upper() + "tail").encode())
    c["big"] = put_bytes("big", rng.randbytes(2 << 20))

    commits = []

    def commit(*args):
        tick()
        v = ok("commit", *args)
        commits.append(args[0])
        return v

    commit("T", "--next", c["raw"])
    commit("T", "--next", c["raw"], c["zst"], c["raw2"])
    # D: a sorted CSV of ~780 KB, edited twice in the middle.
    d_csv = [csv_rows(random.Random(7), 40000),
             csv_rows(random.Random(7), 40000, changed={20000}),
             csv_rows(random.Random(7), 40000, changed={20000, 30000})]
    for i, text in enumerate(d_csv):
        f = os.path.join(inp, "d%d.csv" % i)
        open(f, "w").write(text)
        commit("D", "--next", "--file", f)
        c["D%d" % (i + 1)] = json.loads(ok("show", "D"))["chunks"][0]
    commit("T", "--next", c["zst2"], c["big"])
    for i in range(6):
        commit("F", "--next", c["raw"])

    # P: four versions.
    p_csv = []
    for v in range(4):
        lo = 0 if v in (0, 2) else 200 + 30 * v
        n = 200 if v in (0, 2) else 30
        rows = ["id,name,score"] + ["%d,n%d,%d" % (i, i, (i * 7 + (v >= 2) * (i % 3 == 0)) % 101)
                                    for i in range(lo, lo + n)]
        p_csv.append("\n".join(rows) + "\n")
    s.p_versions = []
    for v in range(4):
        f = os.path.join(inp, "p%d.csv" % v)
        open(f, "w").write(p_csv[v])
        if s.sql:
            tick()
            args = ["import", "P", f] + (["--append"] if v in (1, 3) else [])
            ok(*args)
            commits.append("P")
        else:
            commit("P", "--next", put_bytes("pc%d" % v, p_csv[v].encode()))
        if v < 3:
            for _ in range(2):
                commit("F", "--next", c["raw2"])
        info = json.loads(ok("show", "P"))
        s.p_versions.append(info)
    assert [i["version"] for i in s.p_versions] == [1, 2, 3, 4]
    # Past 64 commits a record's window starts over from a checkpoint
    # (state/64.json) that holds P's latest version: reads of P need it.
    while len(commits) < 70:
        commit("F", "--next", c["raw2"])
    # Retention: one expire record (F's versions but the last 3), the head.
    tick()
    expired = json.loads(ok("retention", "expire", "--keep-last", "3", "--table", "F", "--json"))
    s.expire_rec = expired["expired"]["records"][0]
    assert s.expire_rec == len(commits) + 1 and expired["expired"]["ranges"]["F"][0][0] == 1
    s.head = len(commits) + 1
    assert os.path.exists(os.path.join(s.root, "catalog", "HEAD"))
    c["partA"] = s.p_versions[0]["chunks"][0]
    c["partC"] = s.p_versions[2]["chunks"][0]
    s.contents = c

    # A multi-pack index over every pack (threshold 1: this put's repack
    # writes it), and one of another store for "replace".
    R = s.root
    midx_env = dict(base_env(), UDR_MIDX_THRESHOLD="1")
    s.midx = None
    if os.environ.get("UDR_FAULT_INJECTION") == "1":
        f = os.path.join(inp, "midx-trigger")
        open(f, "wb").write(rng.randbytes(3000))
        p = subprocess.run([UDR_BIN, "--store", R, "put", f], capture_output=True, env=midx_env)
        assert p.returncode == 0, p.stderr
        s.midx = os.path.join(R, "chunks", "packs", "multi-pack-index")
        assert os.path.exists(s.midx)

    # The files of each kind, and a replacement of the same kind.
    cat = os.path.join(R, "catalog")

    def vfile(v):
        return os.path.join(cat, "tables", "P", "%020d.json" % v)

    def rfile(q):
        return os.path.join(cat, "log", "%020d.json" % q)

    big_m = obj_file(R, c["big"])
    assert obj_kind(big_m) == 3
    big_pieces = manifest_pieces(big_m)
    d1_pieces = manifest_pieces(obj_file(R, c["D1"]))
    d2_pieces = manifest_pieces(obj_file(R, c["D2"]))
    d3_pieces = manifest_pieces(obj_file(R, c["D3"]))
    d2_delta = [h for h in d2_pieces if obj_kind(obj_file(R, h)) == 4]
    d3_delta = [h for h in d3_pieces if obj_kind(obj_file(R, h)) == 4 and h not in d2_delta]
    assert d2_delta and d3_delta, "no delta pieces were made (FORMAT.md: commit --file)"
    base_hash = obj_bytes(obj_file(R, d2_delta[0]))[12:44].hex()
    base_file = obj_file(R, base_hash)
    assert obj_kind(base_file) != 3
    other_base = [obj_file(R, h) for h in d1_pieces
                  if h != base_hash and obj_kind(obj_file(R, h)) == obj_kind(base_file)]
    # the index of the pack that holds big's pieces, and another pack's index
    big_pack = obj_file(R, big_pieces[1]).path
    indexes = sorted(os.path.join(R, "chunks", "packs", n)
                     for n in os.listdir(os.path.join(R, "chunks", "packs")) if n.endswith(".idx"))
    big_idx = big_pack[:-5] + ".idx"
    other_idx = [i for i in indexes if i != big_idx][0]
    p2_rec, p4_rec = s.p_versions[1]["commit"], s.p_versions[3]["commit"]
    # P's version 2 was made by commit 16, its latest before the checkpoint.
    assert p4_rec < 64 < s.head and p2_rec == 16, (p2_rec, p4_rec)

    # Another valid chunk store config: the settings of another store.
    other = os.path.join(base, "other")
    assert run_udr(other, ["init", "--chunk-avg", "64K", "--compression-level", "5",
                           "--delta-depth", "10"]).returncode == 0
    if s.midx:
        # a valid multi-pack index of other packs
        f = os.path.join(inp, "midx-other")
        open(f, "wb").write(rng.randbytes(3000))
        p = subprocess.run([UDR_BIN, "--store", other, "put", f], capture_output=True, env=midx_env)
        assert p.returncode == 0, p.stderr
    # LATEST caches are written by older versions of udr only (the log is
    # the authority now): plant the ones such a udr would have left, with
    # the true values, so that damage to them is swept too.
    for t, v in (("P", 4), ("D", 3)):
        open(os.path.join(cat, "tables", t, "LATEST"), "w").write("%d\n" % v)
    latest_d = os.path.join(cat, "tables", "D", "LATEST")
    head_text = open(os.path.join(cat, "HEAD"), "rb").read()
    # HEAD, the durable horizon, follows every commit (format 2: fixed width
    # with a check, FORMAT.md)
    assert int(head_text.split()[0]) == s.head, head_text

    s.files = {
        "raw": (obj_file(R, c["raw"]), obj_file(R, c["raw2"])),
        "zst": (obj_file(R, c["zst"]), obj_file(R, c["zst2"])),
        "manifest": (big_m, obj_file(R, c["D1"])),
        "piece": (obj_file(R, big_pieces[1]), obj_file(R, big_pieces[2])),
        "delta": (obj_file(R, d2_delta[0]), obj_file(R, d3_delta[0])),
        "delta-base": (base_file, other_base[0]),
        "part": (obj_file(R, c["partA"]), obj_file(R, c["partC"])),
        "pack-index": (big_idx, other_idx),
        "multi-pack-index": (s.midx, os.path.join(other, "chunks", "packs", "multi-pack-index")),
        "version-old": (vfile(2), vfile(1)),
        "version-latest": (vfile(4), vfile(3)),
        "record-old": (rfile(p2_rec), rfile(p2_rec - 1)),
        "record-latest": (rfile(p4_rec), rfile(p4_rec - 1)),
        "HEAD": (os.path.join(cat, "HEAD"), b"8\n"),
        "checkpoint": (os.path.join(cat, "state", "%020d.json" % 64), None),
        "LATEST": (os.path.join(cat, "tables", "P", "LATEST"), latest_d),
        "config-root": (os.path.join(R, "config.json"), None),
        "config-chunks": (os.path.join(R, "chunks", "config.json"),
                          os.path.join(other, "chunks", "config.json")),
        "config-catalog": (os.path.join(cat, "config.json"), None),
        "expire-record": (rfile(s.expire_rec), rfile(s.expire_rec - 1)),
        "expired-set": (os.path.join(cat, "expired", "F", "%020d.json" % s.expire_rec), None),
    }
    for k in ("raw", "zst", "piece", "delta", "delta-base", "part"):
        a, b = s.files[k]
        assert obj_bytes(a) != obj_bytes(b), k
    for k in ("raw", "zst", "piece", "delta-base"):
        a, b = s.files[k]
        assert obj_kind(a) == obj_kind(b), k
    # whole parts stay loose (DuckDB reads them in place); the rest is packed
    assert not isinstance(s.files["part"][0], Entry)
    assert all(isinstance(s.files[k][0], Entry) for k in ("raw", "zst", "manifest", "piece", "delta"))
    assert open(s.files["LATEST"][1]).read().strip() != "4"

    # Read paths -> argument lists.
    t = [v["created_ms"] for v in s.p_versions]
    s.commands = {
        "show_P": ["show", "P"],
        "show_P_2": ["show", "P", "2"],
        "show_P_3": ["show", "P", "3"],
        "versions_P": ["versions", "P"],
        "at_v2": ["show", "P", "--at", iso(t[1])],
        "at_v2_minus_1ms": ["show", "P", "--at", iso(t[1] - 1)],
        "at_v4": ["show", "P", "--at", iso(t[3])],
        "at_v4_minus_1ms": ["show", "P", "--at", iso(t[3] - 1)],
        "log": ["log"],
        "log_json": ["log", "--json"],
        "log_table_P": ["log", "--table", "P"],
        "tables": ["tables"],
        "sql_P": ["sql", "SELECT count(*), sum(score), min(name), max(name) FROM P", "--csv"],
        "sql_P1": ["sql", 'SELECT * FROM "P@1" ORDER BY id', "--csv"],
        "sql_P2": ["sql", 'SELECT * FROM "P@2" ORDER BY id', "--csv"],
        "export_P2": ["export", "P@2", "{out}.csv"],
        "diff_rows_2_4": ["diff-rows", "P", "2", "4", "--key", "id", "--csv"],
        "show_F_1": ["show", "F", "1"],
        "show_F_2": ["show", "F", "2"],
        "show_F": ["show", "F"],
        "retention_expired": ["retention", "expired", "--json"],
    }
    for name, h in c.items():
        s.commands["get:" + name] = ["get", h]
        s.commands["get_o:" + name] = ["get", h, "-o", "{out}"]
        s.commands["get_verify:" + name] = ["get", h, "--verify"]
    s.outputs = ("get_o:", "export_")

    # Everything fsck must keep: every file but caches, the lock and temp files.
    s.keep = {}
    for dirpath, _dirs, files in os.walk(R):
        for n in files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, R)
            if n in ("HEAD", "LATEST", "lock") or "/tmp/" in "/" + rel or rel.startswith("cache/"):
                continue
            s.keep[rel] = digest(open(p, "rb").read())
    assert run_udr(R, ["fsck"]).returncode == 0
    return s


# ---------------------------------------------------------------------------
# One case.

def damage_entry(path, e, how, replacement):
    """Damage an object's entry in place in its pack (at path, a copy of
    e.path): its payload's bytes, or the pack around it."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    lo, n = e.off, e.length
    if how == "bit-mid":
        data[lo + n // 2] ^= 0x01
    elif how.startswith("byte-"):
        data[lo + {"byte-start": 0, "byte-mid": n // 2, "byte-end": n - 1}[how]] ^= 0xFF
    elif how == "trunc0":
        del data[lo - 48:]  # the pack cut where the entry starts
    elif how == "trunc-half":
        del data[lo + n // 2:]
    elif how == "append":
        data += b"x"  # after the pack's trailer
    elif how == "delete":
        os.unlink(path)  # the whole pack: its index names a missing pack
        return
    elif how == "replace":
        other = replacement.payload()
        other = (other * (n // max(1, len(other)) + 1))[:n]
        assert bytes(data[lo:lo + n]) != other
        data[lo:lo + n] = other  # another object's bytes: the CRC no longer holds
    else:
        raise AssertionError(how)
    with open(path, "wb") as f:
        f.write(bytes(data))


def damage(path, how, replacement):
    data = open(path, "rb").read()
    n = len(data)
    if how == "bit-mid":
        b = bytearray(data)
        b[n // 2] ^= 0x01
        data = bytes(b)
    elif how == "bit-time":
        text = data.decode()
        key = '"created_ms":' if '"created_ms":' in text else '"time_ms":'
        i = text.index(key) + len(key)
        while text[i].isdigit():
            i += 1
        b = bytearray(data)
        b[i - 1] ^= 0x01  # a digit stays a digit: the time moves by 1 ms
        data = bytes(b)
    elif how.startswith("byte-"):
        i = {"byte-start": 0, "byte-mid": n // 2, "byte-end": n - 1}[how]
        b = bytearray(data)
        b[i] ^= 0xFF
        data = bytes(b)
    elif how == "trunc0":
        data = b""
    elif how == "trunc-half":
        data = data[:n // 2]
    elif how == "append":
        data = data + b"x"
    elif how == "delete":
        os.unlink(path)
        return
    elif how == "replace":
        data = replacement if isinstance(replacement, bytes) else open(replacement, "rb").read()
    else:
        raise AssertionError(how)
    assert data != open(path, "rb").read(), (path, how)
    with open(path, "wb") as f:
        f.write(data)


def config_equivalent(orig, path):
    """A damaged config that is still a valid config of the same kind: same
    JSON structure, same strings (format, kind, layout, algorithms); only
    numbers (settings fixed at creation that only steer new writes) differ.
    fsck cannot tell that from a config made with other settings."""
    if not os.path.exists(path):
        return False
    try:
        new = json.loads(open(path, "rb").read())
    except ValueError:
        return False

    def same(a, b):
        if isinstance(a, dict):
            # "check" is the seal: every valid config has its own
            return isinstance(b, dict) and a.keys() == b.keys() and all(
                k == "check" or same(a[k], b[k]) for k in a)
        if isinstance(a, bool) or isinstance(a, str):
            return a == b
        if isinstance(a, (int, float)):
            return isinstance(b, (int, float)) and not isinstance(b, bool)
        return a == b
    return same(json.loads(orig), new) and new.get("format") == json.loads(orig).get("format")


def tree_state(root):
    """Every file and directory under root, with a digest of each file."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = None
        for n in files:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = digest(f.read())
    return out


class Sweep:
    def __init__(self, store, work, pyworker):
        self.s = store
        self.work = work
        self.py = pyworker
        self.results = {}
        self.ref = None
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    def run_paths(self, root, paths, outdir):
        """Outcome of each read path on the store at root."""
        s = self.s
        os.makedirs(outdir, exist_ok=True)
        res = {}

        def one(path):
            args = list(s.commands[path])
            out = None
            if any(path.startswith(p) for p in s.outputs):
                out = os.path.join(outdir, path.replace(":", "_"))
                args = [a.replace("{out}", out) for a in args]
                out = args[-1] if path.startswith("get_o") else next(a for a in args if out in a)
            p = run_udr(root, args)
            fd = None
            if out is not None and os.path.exists(out):
                fd = digest(open(out, "rb").read())
                os.unlink(out)
            return path, Outcome(p.returncode, p.stdout, fd, p.stderr)

        cli = [p for p in paths if not p.startswith("py_")]
        py = sorted({p.split(":", 1)[1] for p in paths if p.startswith("py_")})
        futs = [self.pool.submit(one, p) for p in cli]
        if py:
            if self.py is None:
                for p in paths:
                    if p.startswith("py_"):
                        res[p] = None
            else:
                got = self.py.get(root, [s.contents[n] for n in py])
                for name in py:
                    for how in ("get", "get_verified"):
                        st, dg, msg = got[how + ":" + s.contents[name]]
                        if st == "crash":
                            o = Outcome(dg if dg < 0 else 128 + dg, b"", None, msg, "py")
                            o.status = "crash"
                        else:
                            o = Outcome(0 if st == "ok" else st, dg or "", None, msg, "py")
                            o.status = st
                        res["py_%s:%s" % (how, name)] = o
        for f in futs:
            k, v = f.result()
            res[k] = v
        return res

    def reference(self):
        if self.ref is None:
            ref_root = os.path.join(self.work, "reference")
            shutil.copytree(self.s.root, ref_root, symlinks=True)
            all_paths = sorted({p for k in KINDS for p in READ_PATHS[k]
                                if self.s.sql or not needs_sql(k, p)})
            self.ref = self.run_paths(ref_root, all_paths, os.path.join(self.work, "ref-out"))
            again = self.run_paths(ref_root, all_paths, os.path.join(self.work, "ref-out"))
            for p, o in self.ref.items():
                if o is None:
                    continue
                assert o.rc == 0 or o.rc == "ok" or (p in EXPIRED_EXIT and o.rc == 6), (p, o)
                assert o.same(again[p]), "read path %s is not deterministic" % p
            shutil.rmtree(ref_root)
        return self.ref

    def case(self, kind, how):
        key = (kind, how)
        if key in self.results:
            return self.results[key]
        ref = self.reference()
        s = self.s
        root = os.path.join(self.work, "case")
        if os.path.exists(root):
            shutil.rmtree(root)
        shutil.copytree(s.root, root, symlinks=True)
        target, repl = s.files[kind]
        if target is None:
            pytest.skip("no multi-pack index: UDR_MIDX_THRESHOLD needs UDR_FAULT_INJECTION")
        entry = target if isinstance(target, Entry) else None
        rel = os.path.relpath(entry.path if entry else target, s.root)
        path = os.path.join(root, rel)
        orig = open(path, "rb").read()
        if entry:
            damage_entry(path, entry, how, repl)
        else:
            damage(path, how, repl)
        paths = [p for p in READ_PATHS[kind] if s.sql or not needs_sql(kind, p)]
        r = {"rel": rel}
        state = tree_state(root)
        r["before"] = self.run_paths(root, paths, os.path.join(self.work, "out"))
        f = run_udr(root, ["fsck"])
        r["fsck"] = Outcome(f.returncode, f.stdout, None, f.stderr)
        r["fsck_out"] = (f.stdout.decode(errors="replace") + f.stderr.decode(errors="replace"))[-1500:]
        r["config_equivalent"] = kind.startswith("config") and config_equivalent(orig, path)
        lost = []
        for krel, dg in s.keep.items():
            if krel == rel:
                continue
            p = os.path.join(root, krel)
            if not os.path.exists(p):
                lost.append("deleted " + krel)
            elif digest(open(p, "rb").read()) != dg:
                lost.append("changed " + krel)
        r["lost"] = lost
        if tree_state(root) == state:
            # Neither the reads nor fsck changed a byte of the store: the
            # reads (deterministic, checked on the pristine store) would
            # give the same again.
            r["after"] = r["before"]
        else:
            r["after"] = self.run_paths(root, paths, os.path.join(self.work, "out"))
        r["ref"] = ref
        shutil.rmtree(root)
        self.results[key] = r  # small: digests and exit codes
        return r


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    if not os.path.exists(UDR_BIN):
        pytest.skip("udr CLI not built (%s)" % UDR_BIN)
    base = str(tmp_path_factory.mktemp("sweep"))
    store = build_store(base)
    py = None
    if not SANITIZE:  # the interpreter is not instrumented (tests/CMakeLists.txt)
        lib = python_libdir()
        if lib:
            py = PyWorker(lib)
    sw = Sweep(store, base, py)
    yield sw
    sw.pool.shutdown()
    if py:
        py.close()
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------
# The rules.

def allowed_not_found(kind, how, path):
    if how == "delete" and kind == "config-root":
        return True
    if how != "delete" or kind not in TOP_LEVEL:
        return False
    return path.split(":", 1)[-1] == TOP_LEVEL[kind] and (
        path.startswith("get") or path.startswith("py_"))


def check_read(kind, how, path, got, ref, phase):
    where = "%s/%s/%s %s" % (kind, how, path, phase)
    if got is None:
        pytest.skip("Python extension not available")
    if got.kind == "py":
        st = got.status
        if st == "ok":
            assert got.out == ref.out, "%s: store.get returned different bytes" % where
        elif st == "IntegrityError":
            pass
        elif st == "NotFoundError" and allowed_not_found(kind, how, path):
            pass
        else:
            raise AssertionError("%s: Python raised %s (%s)" % (where, st, got.err))
        return
    if got.rc == 6 and path in EXPIRED_EXIT and got.same(ref):
        return  # still expired, as on the pristine store
    if got.rc < 0 or got.rc > 5:
        raise AssertionError("%s: crashed (signal/exit %d): %r" % (where, got.rc, got))
    if got.rc == 0:
        if not got.same(ref):
            raise AssertionError("%s: exit 0 with output different from the pristine store\n"
                                 "got:      %r\npristine: %r" % (where, got, ref))
        return
    if got.rc == 4 or (got.rc == 1 and allowed_not_found(kind, how, path)):
        assert got.file is None, "%s: a failed command left its output file" % where
        assert got.err.strip(), "%s: exit %d without a message" % (where, got.rc)
        return
    raise AssertionError("%s: exit %d, expected the original output or exit 4: %r"
                         % (where, got.rc, got))


def skip_unavailable(sweep, kind, path):
    if not sweep.s.sql and needs_sql(kind, path):
        pytest.skip("udr sql unavailable (built without DuckDB)")


def by_case(ids):
    """The parameters, each marked with its damage case: under pytest-xdist
    (--dist loadgroup, scripts/run-pytest.sh) every test of one case runs in
    the worker that computed it (Sweep.case), not in both."""
    return [pytest.param(*x, marks=pytest.mark.xdist_group("%s-%s" % x[:2])) for x in ids]


@pytest.mark.parametrize("kind,how,path", by_case(READ_IDS), ids=["-".join(x) for x in READ_IDS])
def test_read(sweep, kind, how, path):
    skip_unavailable(sweep, kind, path)
    r = sweep.case(kind, how)
    check_read(kind, how, path, r["before"][path], r["ref"][path], "before fsck")


@pytest.mark.parametrize("kind,how,path", by_case(READ_IDS), ids=["-".join(x) for x in READ_IDS])
def test_read_after_fsck(sweep, kind, how, path):
    skip_unavailable(sweep, kind, path)
    r = sweep.case(kind, how)
    before, after, ref = r["before"][path], r["after"][path], r["ref"][path]
    check_read(kind, how, path, after, ref, "after fsck")
    if kind == "HEAD" and after.rc == 4 and r["fsck"].rc == 4 and "HEAD names commit" in r["fsck_out"]:
        # HEAD is written after every commit point: one naming a record
        # that is not there is evidence of a lost record (FORMAT.md), which
        # fsck reports and keeps (udr fsck --reset-head is the deliberate way
        # out); reads may go on refusing until then.
        return
    if kind in CACHE_KINDS or (before is not None and before.same(ref)):
        # fsck rebuilds caches from the log; and it must not make a read
        # that gave the original output fail or change.
        if not after.same(ref):
            raise AssertionError("%s/%s/%s: the original output before fsck (or a cache), not "
                                 "after: %r\nfsck: %s" % (kind, how, path, after, r["fsck_out"]))


@pytest.mark.parametrize("kind,how", by_case(CASES), ids=["-".join(x) for x in CASES])
def test_fsck_reports(sweep, kind, how):
    r = sweep.case(kind, how)
    f = r["fsck"]
    assert f.rc in (0, 1, 4, 5), "fsck crashed or exited %d: %s" % (f.rc, r["fsck_out"])
    if kind in CACHE_KINDS:
        # HEAD and LATEST are caches: readers verify them and fsck rebuilds
        # them from the log (FORMAT.md), so fsck may repair them silently;
        # what it must do is checked by test_read_after_fsck (every read
        # gives the original output afterwards).
        return
    if r["config_equivalent"]:
        # Still a valid config with other settings (e.g. a compression
        # level): indistinguishable from one made that way by `udr init`.
        return
    if kind == "multi-pack-index" and how in ("delete", "replace"):
        # a cache: a missing one is legal, and a valid one of other packs is
        # what a stale one (its packs repacked away) looks like; readers check
        # every record against the packs (test_read*: the original output)
        assert f.rc == 0, r["fsck_out"]
        return
    if kind == "pack-index" and how == "delete":
        # a pack without its index is what a crash between the two names
        # leaves (FORMAT.md "Packs"): fsck indexes it, completing the
        # publication; test_read_after_fsck checks every read is whole again
        assert "index" not in r["fsck_out"] or f.rc == 0, r["fsck_out"]
        return
    assert f.rc != 0, "fsck found nothing wrong after %s of %s (%s):\n%s" % (
        how, kind, r["rel"], r["fsck_out"])


@pytest.mark.parametrize("kind,how", by_case(CASES), ids=["-".join(x) for x in CASES])
def test_fsck_keeps_data(sweep, kind, how):
    r = sweep.case(kind, how)
    assert not r["lost"], "fsck after %s of %s removed or changed committed files: %s\n%s" % (
        how, r["rel"], r["lost"], r["fsck_out"])
