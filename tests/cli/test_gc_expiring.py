"""catalog/expiring, the expire handshake's file (docs/GC.md 2.2, 6):
missing, left odd by an expirer killed with SIGKILL, garbage, truncated.
Every command goes on: no reader or pinner waits on a value nobody alive
will change, no wrong data with exit 0, no committed data lost; `udr
fsck` names a damaged file (a problem) and notes an odd one (a crash's
leftover); `udr fsck --repair` makes it even when no expirer holds it and
says so, and leaves a running expirer's file alone."""
import json
import os
import signal
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


def fsck_json(udr, *args):
    r = udr("fsck", "--json", *args)
    return r.code, json.loads(r.out)


def status(udr):
    return json.loads(udr.ok("gc", "--status", "--json").out)["expiring"]


def check_everything_reads(udr, data, expired=()):
    for v, b in data.items():
        code, got = read_version(udr, v)
        if v in expired:
            assert code == 6, v
        else:
            assert (code, got) == (0, b), v


def test_missing_is_fine_and_made_again(udr, tmp_path):
    data = make_store(udr, tmp_path)
    expiring(udr).unlink()
    assert status(udr)["state"] == "missing"
    pinner(udr, tmp_path)
    check_everything_reads(udr, data)
    r = udr("fsck")
    assert r.code == 0 and "expiring" not in r.out, r
    r = udr("fsck", "--repair")
    assert r.code == 0 and "expiring" not in r.out, r
    assert not expiring(udr).exists()  # nothing to repair: not invented
    r = udr("gc", "--keep-last", "1", "--grace", "0s")
    assert r.code == 0, r
    assert generation(udr) == 2  # made again: 1 (odd), then 2
    check_everything_reads(udr, data, expired=(1, 2, 3))
    assert status(udr) == {"state": "even", "generation": 2, "damage": None, "path": str(expiring(udr))}


@needs_pause
@pytest.mark.parametrize("point", ["expire-odd", "expire-leases-read", "expire-linked"])
def test_left_odd_by_a_killed_expirer(udr, tmp_path, point):
    data = make_store(udr, tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    gc = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--keep-last", "1", "--grace", "0s"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=base_env({"UDR_PAUSE": "%s:%s" % (point, pause)}))
    try:
        end = time.time() + 30
        while not (pause / (point + ".reached")).exists():
            assert time.time() < end and gc.poll() is None
            time.sleep(0.01)
    finally:
        gc.send_signal(signal.SIGKILL)
        gc.wait(60)
    assert generation(udr) == 3  # odd, its lock free
    assert status(udr)["state"] == "odd"
    assert "catalog/expiring: odd, left by an expire step that died" in udr.ok("gc", "--status").out
    # the expire record is in the log only once it was linked
    expired = (1, 2, 3) if point == "expire-linked" else ()
    check_everything_reads(udr, data, expired)
    pinner(udr, tmp_path)  # never waits for the dead expirer
    # fsck: a note, not a problem (nothing waits on it, no data at risk)
    r = udr("fsck")
    assert r.code == 0, r
    assert "note: catalog/expiring is odd (3): an expire step was interrupted" in r.out, r.out
    code, j = fsck_json(udr)
    assert code == 0 and j["problem_count"] == 0
    assert [n for n in j["notes"] if n.startswith("catalog/expiring is odd (3)")], j["notes"]
    # --dry-run says, changes nothing
    r = udr("fsck", "--repair", "--dry-run")
    assert r.code == 0 and "would: make catalog/expiring even (4)" in r.out, r
    assert generation(udr) == 3
    r = udr("fsck", "--repair")
    assert r.code == 0, r
    assert ("repair: catalog/expiring was left odd (3) by an expire step whose process died: made even (4)"
            in r.out), r.out
    assert generation(udr) == 4
    r = udr("fsck")
    assert r.code == 0 and "expiring" not in r.out, r
    # the next expirer goes on from there (none when the killed one's
    # record expired all the rule asks for: nothing to expire, no step)
    r = udr("gc", "--keep-last", "1", "--grace", "0s")
    assert r.code == 0, r
    assert generation(udr) == (4 if expired else 6)
    check_everything_reads(udr, data, expired=(1, 2, 3))
    assert udr("fsck").code == 0


DAMAGE = {
    # a check that does not match (one digit of the generation flipped):
    # a pinner took it for a write in progress and spun on it for ever
    "bad-check": lambda good: good[:19] + b"3" + good[20:],
    "garbage": lambda good: b"\x00\xff not a number at all \x07\n",
    "truncated": lambda good: good[:10],
    "empty": lambda good: b"",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_never_holds_anyone_fsck_names_it_repair_rewrites_it(udr, tmp_path, kind):
    data = make_store(udr, tmp_path)
    bad = DAMAGE[kind](expiring(udr).read_bytes())
    expiring(udr).write_bytes(bad)
    path = str(expiring(udr))
    assert status(udr)["state"] == "damaged"
    assert "catalog/expiring: damaged (" in udr.ok("gc", "--status").out
    pinner(udr, tmp_path)
    check_everything_reads(udr, data)
    # fsck names the file: a problem, exit 4
    r = udr("fsck")
    assert r.code == 4, r
    assert ("corrupt catalog/expiring: %s is damaged: " % path) in r.out, r.out
    assert "1 problem" in r.out
    code, j = fsck_json(udr)
    assert code == 4 and j["problem_count"] == 1
    (p,) = j["problems"]
    assert (p["kind"], p["what"], p["object"], p["path"]) == ("corrupt", "catalog", "expiring", path), p
    want = {"bad-check": "its check does not match", "garbage": "not a generation in HEAD's format",
            "truncated": "truncated (10 bytes of 38)", "empty": "empty"}[kind]
    assert want in p["message"], p
    r = udr("fsck", "--repair", "--dry-run")
    assert r.code == 4 and "would: write catalog/expiring anew, even (0)" in r.out, r
    assert expiring(udr).read_bytes() == bad
    # --repair writes it anew, even, and says so; fsck is clean after
    r = udr("fsck", "--repair")
    assert r.code == 0, r
    assert "repair: catalog/expiring was damaged (%s" % want in r.out and "written anew, even (0)" in r.out, r.out
    assert "0 problems remaining" in r.out
    assert generation(udr) == 0
    assert udr("fsck").code == 0
    pinner(udr, tmp_path, "w")
    r = udr("gc", "--keep-last", "1", "--grace", "0s")
    assert r.code == 0, r
    assert generation(udr) == 2
    check_everything_reads(udr, data, expired=(1, 2, 3))


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


@needs_pause
def test_repair_leaves_a_running_expirer_alone(udr, tmp_path):
    data = make_store(udr, tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    ex = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "retention", "expire", "--keep-last", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=base_env({"UDR_PAUSE": "expire-leases-read:%s" % pause}))
    try:
        end = time.time() + 30
        while not (pause / "expire-leases-read.reached").exists():
            assert time.time() < end and ex.poll() is None
            time.sleep(0.01)
        before = expiring(udr).read_bytes()
        assert generation(udr) == 3 and status(udr)["state"] == "busy"
        assert "catalog/expiring: an expire step is running" in udr.ok("gc", "--status").out
        # a step in progress: neither a problem nor a leftover
        r = udr("fsck")
        assert r.code == 0 and "expiring" not in r.out, r
        r = udr("fsck", "--repair")
        assert r.code == 0 and "expiring" not in r.out, r
        assert expiring(udr).read_bytes() == before
    finally:
        (pause / "expire-leases-read.go").touch()
        out, err = ex.communicate(timeout=60)
    assert ex.returncode == 0, err
    assert generation(udr) == 4
    check_everything_reads(udr, data, expired=(1, 2, 3))


def test_a_directory_in_its_place_is_named_and_left_to_a_person(udr, tmp_path):
    data = make_store(udr, tmp_path)
    expiring(udr).unlink()
    expiring(udr).mkdir()
    pinner(udr, tmp_path)
    r = udr("gc", "--keep-last", "1", "--grace", "0s")  # the expirer cannot open it: nothing expired
    assert r.code == 5 and "expiring" in r.stderr, r
    check_everything_reads(udr, data)
    r = udr("fsck", "--repair")
    assert r.code == 4, r
    assert "corrupt catalog/expiring: %s is damaged: not a regular file" % expiring(udr) in r.out, r.out
    assert "moved away by hand" in r.out and "repair: catalog/expiring" not in r.out, r.out
    assert expiring(udr).is_dir()
    expiring(udr).rmdir()
    assert udr("fsck").code == 0
