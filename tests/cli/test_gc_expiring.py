"""catalog/expiring, the expire handshake's file (docs/GC.md 2.2), damaged:
no pinner waits on a value nobody alive will change, the next expirer
starts over, no wrong data with exit 0, no committed data lost."""
import json
import os
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env

needs_pause = pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE needs a UDR_FAULT_INJECTION build")


def make_store(udr, tmp_path, n=4):
    """One expire step (x@1), so catalog/expiring exists and is even, then n
    versions of t (their bytes returned by version)."""
    data = {}
    for v in (1, 2):
        udr.ok("commit", "x", "--next", udr.put(os.urandom(100)))
    udr.ok("retention", "expire", "--keep-last", "1")  # x@1: generation 1, then 2
    assert generation(udr) == 2
    for v in range(1, n + 1):
        f = tmp_path / ("v%d" % v)
        data[v] = os.urandom(2000 + v)
        f.write_bytes(data[v])
        assert udr.ok("commit", "t", "--next", "--file", f).out.strip() == str(v)
    return data


def expiring(udr):
    return udr.catalog / "expiring"


def generation(udr):
    text = expiring(udr).read_text()
    assert len(text) == 38 and text[20] == " " and text.endswith("\n"), repr(text)
    return int(text[:20])


def read_version(udr, v):
    """(exit code, bytes of t@v or None)."""
    r = udr("show", "t", str(v))
    if r.code != 0:
        return r.code, None
    out = b""
    for h in json.loads(r.out)["chunks"]:
        g = udr("get", h)
        assert g.code == 0, g
        out += g.stdout
    return 0, out


def pinner(udr, tmp_path, name="u"):
    """A transaction (udr commit --spec): its begin pins a snapshot and
    waits while an expire step is in progress.  Never forever."""
    f = tmp_path / ("pin-" + name)
    f.write_bytes(os.urandom(500))
    spec = json.dumps({"tables": [{"table": name, "files": [str(f)]}]})
    t0 = time.time()
    try:
        p = subprocess.run([UDR_BIN, "--store", str(udr.root), "commit", "--spec", "-"], input=spec.encode(),
                           capture_output=True, env=base_env(), timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("a pinner waited on catalog/expiring: %r" % expiring(udr).read_bytes())
    assert p.returncode == 0, p.stderr
    assert time.time() - t0 < 5
    return p.stdout.decode()


def check_everything_reads(udr, data, expired=()):
    for v, b in data.items():
        code, got = read_version(udr, v)
        if v in expired:
            assert code == 6, v
        else:
            assert (code, got) == (0, b), v


DAMAGE = {
    # a check that does not match (one digit of the generation flipped):
    # a pinner took it for a write in progress and spun on it for ever
    "bad-check": lambda good: good[:19] + b"3" + good[20:],
    "garbage": lambda good: b"\x00\xff not a number at all \x07\n",
    "truncated": lambda good: good[:10],
    "empty": lambda good: b"",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_pinner_never_waits_on_a_damaged_file(udr, tmp_path, kind):
    data = make_store(udr, tmp_path)
    expiring(udr).write_bytes(DAMAGE[kind](expiring(udr).read_bytes()))
    pinner(udr, tmp_path)
    check_everything_reads(udr, data)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_an_expirer_starts_over_from_a_damaged_value(udr, tmp_path, kind):
    """Without a repair: the next expire step takes it as unreadable,
    starts at 1 and ends even; nothing is lost, fsck is clean after."""
    data = make_store(udr, tmp_path)
    expiring(udr).write_bytes(DAMAGE[kind](expiring(udr).read_bytes()))
    r = udr("retention", "expire", "--keep-last", "2")
    assert r.code == 0, r
    assert generation(udr) == 2
    check_everything_reads(udr, data, expired=(1, 2))
    assert udr("fsck").code == 0
