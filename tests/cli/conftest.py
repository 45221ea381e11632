"""Fixtures for the end-to-end tests of the udr command-line tool.

ctest passes the binary as UDR_BIN; run by hand, the tests fall back to the
build directories of the source tree.
"""
import json
import os
import pathlib
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]


def _find_bin():
    env = os.environ.get("UDR_BIN")
    if env:
        return os.path.abspath(env)
    for d in ("build-cli", "build"):
        p = SOURCE_DIR / d / "udr"
        if p.exists():
            return str(p)
    pytest.exit("udr binary not found: set UDR_BIN", returncode=2)


UDR_BIN = _find_bin()
FAULT_INJECTION = os.environ.get("UDR_FAULT_INJECTION") == "1"
SANITIZE = os.environ.get("UDR_SANITIZE") == "1"


def next_fault_step(n):
    """The step after n of a loop that fails the n-th I/O call of one kind
    until a run no longer reaches it.  The normal build tries every step;
    under the sanitizers (several times slower) steps 1, 2, 6, 10, ...: the
    normal half of `make test` covers each step, this half looks for memory
    errors on the failure paths of each stage."""
    return n + 1 if n == 1 or not SANITIZE else n + 4


class Result:
    """What one run of udr did."""

    def __init__(self, proc):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode("utf-8", "replace")

    @property
    def out(self):
        return self.stdout.decode("utf-8")

    def __repr__(self):
        return "Result(code=%r, stdout=%r, stderr=%r)" % (
            self.code, self.stdout[:400], self.stderr[:400])


# Under the sanitizers the leak check at a process's exit costs about 40 ms
# (a third of this suite's time there): every LEAK_EVERY-th process the tests
# start checks for leaks, the others not (UDR_LEAK_EVERY=1 checks every one,
# to reproduce a leak).  A path that leaks is run by many tests, so it is
# still caught; the normal half of `make test` does not check leaks at all.
LEAK_EVERY = max(1, int(os.environ.get("UDR_LEAK_EVERY", "4")))
_started = [0]


def sample_leak_check(env):
    """env with the leak check off for all but every LEAK_EVERY-th process."""
    _started[0] += 1
    opts = env.get("ASAN_OPTIONS")
    if SANITIZE and opts and _started[0] % LEAK_EVERY != 0:
        env["ASAN_OPTIONS"] = opts.replace("detect_leaks=1", "detect_leaks=0")
    return env


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("UDR_") or k == "UDR_FAULT_INJECTION"}
    env.pop("UDR_FAULT", None)
    if extra:
        env.update(extra)
    return sample_leak_check(env)


def run_udr(*args, input=b"", cwd=None, env=None, stdout=subprocess.PIPE):
    """Run udr with exactly args (no --store added)."""
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run([UDR_BIN, *map(str, args)], input=input, stdout=stdout,
                          stderr=subprocess.PIPE, cwd=cwd, env=base_env(env),
                          timeout=120)
    return Result(proc)


class Udr:
    """udr bound to one store directory (--store DIR before the command)."""

    def __init__(self, root):
        self.root = pathlib.Path(root)

    def __call__(self, *args, **kw):
        return run_udr("--store", self.root, *args, **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.code == 0, r
        return r

    def put(self, data):
        r = self.ok("put", "-", input=data)
        h = r.out.strip()
        assert len(h) == 64, r
        return h

    def chunk_path(self, h):
        """Where a content is one plain file (format 1; small raw content in 2)."""
        return self.root / "chunks" / h[:2] / h[2:4] / h

    def locate(self, h):
        """The copies of h (hidden `udr __locate`): a list of
        ("loose", path, offset 0, length, kind) or ("pack", packpath, payload
        offset, payload length, kind); [] when absent."""
        r = self("__locate", h)
        if r.code == 3:
            return []
        assert r.code == 0, r
        out = []
        for line in r.out.splitlines():
            f = line.split()
            if f[0] == "pack":
                # the entry: 48-byte header, payload, 4-byte CRC
                out.append(("pack", pathlib.Path(f[1]), int(f[2]) + 48, int(f[3]) - 52, int(f[4])))
            else:
                p = pathlib.Path(f[1])
                out.append(("loose", p, 0, p.stat().st_size, int(f[2])))
        return out

    def damage(self, h, how, at=None):
        """Damage the first copy of h in place: "flip" one byte of its payload
        (at its middle, or at `at`), "truncate" the file holding it at the
        start of its payload (a truncated pack loses the entries after it)."""
        where, path, off, length, _ = self.locate(h)[0]
        if how == "flip":
            pos = off + (length // 2 if at is None else at)
            with open(path, "r+b") as f:
                f.seek(pos)
                b = f.read(1)
                f.seek(pos)
                f.write(bytes([b[0] ^ 0xFF]))
        else:
            os.truncate(path, off)
        return where, path

    def objects(self, h):
        """The object files named after h, by suffix: "" (raw), ".zst", ".m", ".d"."""
        d = self.root / "chunks" / h[:2] / h[2:4]
        if not d.is_dir():
            return {}
        return {p.name[64:]: p for p in d.iterdir() if p.name.startswith(h)}

    def object_files(self):
        """Every object file of the chunk store (not config.json, not tmp/)."""
        return [p for p in (self.root / "chunks").rglob("*")
                if p.is_file() and p.parent.parent.parent == self.root / "chunks"]

    @property
    def catalog(self):
        return self.root / "catalog"


@pytest.fixture
def run():
    return run_udr


@pytest.fixture
def udr(tmp_path):
    """An initialised, empty store (the default format)."""
    u = Udr(tmp_path / "store")
    u.ok("init")
    return u


@pytest.fixture
def udr2(tmp_path):
    """An initialised, empty format-2 store: one file per object."""
    u = Udr(tmp_path / "store2")
    u.ok("init", "--format", "2")
    return u


@pytest.fixture
def udr1(tmp_path):
    """An initialised, empty format-1 store: every content one plain file."""
    u = Udr(tmp_path / "store1")
    u.ok("init", "--format", "1")
    return u


def tree_snapshot(root):
    """Every file under root with its size and content, for "nothing written" checks."""
    root = pathlib.Path(root)
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file():
            snap[rel] = p.read_bytes()
        else:
            snap[rel] = None
    return snap


# ---- helpers shared by several test files ----------------------------------

LOG = "catalog/log"


def rec(udr, seq):
    """The path of commit record seq."""
    return udr.root / LOG / ("%020d.json" % seq)


def vfile(udr, table, ver):
    """The path of version file ver of table."""
    return udr.root / "catalog" / "tables" / table / ("%020d.json" % ver)


def commit_n(udr, table, n, tag="x"):
    """n commits of table, each of a new one-line content; their hashes."""
    hs = []
    for i in range(n):
        h = udr.put(("%s-%s-%d\n" % (table, tag, i)).encode())
        udr.ok("commit", table, "--next", h, "-m", "%s %d" % (table, i + 1))
        hs.append(h)
    return hs


def csv(tmp_path, name, rows, header="id,a,b"):
    """A CSV file of rows under tmp_path."""
    p = tmp_path / name
    p.write_text(header + "\n" + "".join(",".join(str(x) for x in r) + "\n" for r in rows))
    return p


def table_rows(udr, ref="t"):
    """The rows of ref (a table or a reference to one), sorted, as tuples."""
    return [tuple(r.values()) for r in json.loads(udr.ok("sql", 'SELECT * FROM "%s" ORDER BY ALL' % ref,
                                                         "--json").out)]
