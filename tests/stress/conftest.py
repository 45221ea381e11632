"""Shared fixtures of the stress suites (crash, fault injection, concurrency,
corruption).  ctest passes UDR_BIN, UDR_BUILD_DIR, UDR_FAULT_INJECTION and
UDR_SANITIZE; run by hand with e.g.
  UDR_BIN=build/udr UDR_BUILD_DIR=build python3 -m pytest -q tests/stress
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

BUILD_DIR = os.environ.get("UDR_BUILD_DIR") or os.path.join(SRC, "build")
UDR_BIN = os.environ.get("UDR_BIN") or os.path.join(BUILD_DIR, "udr")
FAULT_INJECTION = os.environ.get("UDR_FAULT_INJECTION", "0") == "1"
SANITIZE = os.environ.get("UDR_SANITIZE", "0") == "1"
# Under the sanitizers everything is ~3x slower: scale the loads down there.
SCALE = 4 if SANITIZE else 1
LEAK_EVERY = max(1, int(os.environ.get("UDR_LEAK_EVERY", "4")))
_started = [0]


def tool(name):
    path = os.path.join(BUILD_DIR, "tests", name)
    if not os.path.exists(path):
        pytest.skip("tool %s not built (%s)" % (name, path))
    return path


def base_env():
    env = dict(os.environ)
    env.pop("UDR_FAULT", None)
    env.pop("UDR_STORE", None)
    # Leaks in the CLI fail the run (exit 99) under the sanitizers; checked
    # in every LEAK_EVERY-th process only (tests/cli/conftest.py says why)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=99")
    _started[0] += 1
    if SANITIZE and _started[0] % LEAK_EVERY != 0:
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
    return env


def python_libdir():
    """The udr extension: $UDR_PYTHON_LIB, the one ctest's `python` target
    builds (BUILD_DIR/python/lib, as scripts/test-python.sh does), else built
    here into a directory of our own (no race with that target)."""
    cands = [os.environ.get("UDR_PYTHON_LIB"), os.path.join(BUILD_DIR, "python", "lib"),
             os.path.join(BUILD_DIR, "python-sweep", "lib")]
    for c in cands:
        if c and os.path.isdir(os.path.join(c, "udr")) and any(
                n.startswith("_udr") for n in os.listdir(os.path.join(c, "udr"))):
            return c
    out = os.path.join(BUILD_DIR, "python-sweep")
    p = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", out + "/lib",
                        "build_ext", "--build-lib", out + "/lib", "--build-temp", out + "/tmp"],
                       cwd=SRC, capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return out + "/lib"


class Udr:
    """Runs the udr CLI against one store root."""

    def __init__(self, root):
        self.root = str(root)

    def run(self, *args, env_extra=None, input=None, check=None, timeout=120):
        env = base_env()
        if env_extra:
            env.update(env_extra)
        p = subprocess.run([UDR_BIN, "--store", self.root] + [str(a) for a in args],
                           input=input, capture_output=True, env=env, timeout=timeout)
        if check is not None and p.returncode != check:
            raise AssertionError("udr %s: exit %d, expected %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), p.returncode, check,
                p.stdout.decode(errors="replace")[-2000:],
                p.stderr.decode(errors="replace")[-2000:]))
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check=0, **kw).stdout.decode()

    def fsck(self):
        return self.run("fsck")

    def show(self, table, version=None):
        args = ["show", table] + ([version] if version is not None else [])
        return json.loads(self.ok(*args))

    def versions(self, table):
        p = self.run("versions", table, "--json")
        if p.returncode == 1:
            return []
        assert p.returncode == 0, p.stderr
        data = json.loads(p.stdout)
        out = []
        for item in data:
            out.append(item["version"] if isinstance(item, dict) else int(item))
        return out

    def chunk_path(self, h):
        return os.path.join(self.root, "chunks", h[0:2], h[2:4], h)

    def locate(self, h):
        """The copies of h (hidden `udr __locate`): ("loose", path, 0, size,
        kind) or ("pack", packpath, payload offset, payload length, kind)."""
        out = []
        for line in self.ok("__locate", h).splitlines():
            f = line.split()
            if f[0] == "pack":
                out.append(("pack", f[1], int(f[2]) + 48, int(f[3]) - 52, int(f[4])))
            else:
                out.append(("loose", f[1], 0, os.path.getsize(f[1]), int(f[2])))
        return out


@pytest.fixture
def udr(tmp_path):
    if not os.path.exists(UDR_BIN):
        pytest.skip("udr CLI not built (%s)" % UDR_BIN)
    u = Udr(tmp_path / "store")
    u.ok("init")
    return u


@pytest.fixture
def udr2(tmp_path):
    """A format-2 store: one file per object (damage to a packed object:
    test_sweep.py)."""
    if not os.path.exists(UDR_BIN):
        pytest.skip("udr CLI not built (%s)" % UDR_BIN)
    u = Udr(tmp_path / "store2")
    u.ok("init", "--format", "2")
    return u


def b3sum_files(paths):
    """BLAKE3 of each file by the reference b3sum tool, or None if absent."""
    if shutil.which("b3sum") is None:
        return None
    out = {}
    paths = list(paths)
    for i in range(0, len(paths), 500):
        batch = paths[i:i + 500]
        p = subprocess.run(["b3sum", "--"] + batch, capture_output=True, text=True)
        for line in p.stdout.splitlines():
            h, _, name = line.partition("  ")
            out[name] = h
    return out


def verify_chunks(u, hashes, sample_cli=10):
    """Every hash exists intact.  Objects stored raw (FORMAT.md: <hash>) are
    checked with the reference b3sum; compressed, chunked or delta objects
    (<hash>.zst/.m/.d) and a sample of the raw ones through `udr get --verify`."""
    hashes = sorted(set(hashes))
    if not hashes:
        return
    raw = [h for h in hashes if os.path.exists(u.chunk_path(h))]
    other = [h for h in hashes if h not in set(raw)]
    sums = b3sum_files([u.chunk_path(h) for h in raw])
    if sums is not None:
        for h in raw:
            got = sums.get(u.chunk_path(h))
            assert got == h, "chunk %s damaged (b3sum: %s)" % (h, got)
    else:
        other = hashes
    step = max(1, len(raw) // max(1, sample_cli))
    for h in other + raw[::step]:
        u.run("get", h, "--verify", "-o", os.devnull, check=0)
