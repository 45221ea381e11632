"""udr upgrade (format 2 -> 3: loose objects into packs) killed with
kill -9 at random moments, again and again, then run to the end: after
every kill each content reads back byte for byte; at the end the store is
format 3 with nothing left loose, fsck is clean, and every content is
intact."""
import os
import random
import shutil
import signal
import subprocess
import time

from conftest import SCALE, UDR_BIN, Udr, base_env

FILES = 24 // SCALE + 4


def _make_store(root, tmp_path):
    u = Udr(root)
    u.ok("init", "--format", "2", "--chunk-min", "4K", "--chunk-avg", "16K", "--chunk-max", "64K")
    rnd = random.Random(11)
    contents = {}
    prev = None
    for i in range(FILES):
        if i % 3 == 0 or prev is None:
            data = bytes(rnd.getrandbits(8) for _ in range(50_000)) + b"text,%d\n" % i * 20_000
            base = []
        else:
            # a new version of the previous file: deltas against its pieces
            cut = rnd.randrange(len(prev))
            data = prev[:cut] + b"edit %d\n" % i + prev[cut:]
            base = ["--base", last]
        f = tmp_path / ("in%d" % i)
        f.write_bytes(data)
        h = u.ok("put", *base, str(f)).strip()
        contents[h] = data
        prev, last = data, h
    return u, contents


def _check_all(u, contents, tmp_path, what):
    out = tmp_path / "out"
    for h, data in contents.items():
        p = u.run("get", h, "-o", str(out))
        assert p.returncode == 0, "%s: get %s: %s" % (what, h, p.stderr.decode(errors="replace"))
        assert out.read_bytes() == data, "%s: %s reads back other bytes" % (what, h)


def _upgrade(u):
    return subprocess.Popen([UDR_BIN, "--store", u.root, "upgrade"], env=base_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_upgrade_killed_and_resumed(tmp_path):
    root = tmp_path / "s"
    u, contents = _make_store(root, tmp_path)
    # the time of a whole upgrade, on a copy
    shutil.copytree(root, tmp_path / "copy")
    t0 = time.monotonic()
    p = _upgrade(Udr(tmp_path / "copy"))
    assert p.wait(timeout=300) == 0, p.stderr.read().decode(errors="replace")
    whole = time.monotonic() - t0
    shutil.rmtree(tmp_path / "copy")
    rnd = random.Random(5)
    killed = 0
    for rounds in range(8):
        p = _upgrade(u)
        time.sleep(rnd.uniform(0, whole * 0.9))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
        p.wait(timeout=300)
        _check_all(u, contents, tmp_path, "after kill %d" % rounds)
    print("upgrade: %.3f s whole, killed %d times of 8" % (whole, killed))
    assert killed > 0
    p = _upgrade(u)
    err = p.stderr.read().decode(errors="replace")
    assert p.wait(timeout=300) == 0, err
    stats = u.ok("stats")
    assert "format:             3" in stats, stats
    assert " 0 loose objects" in stats, stats
    r = u.run("fsck")
    assert r.returncode == 0, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    _check_all(u, contents, tmp_path, "at the end")
