"""The progress display of put, commit --file and get: on a terminal only."""
import os
import pty
import subprocess
import threading
import time

from conftest import UDR_BIN, base_env

MiB = 1 << 20


def run_with_tty_stderr(args, feed=None, stdout=subprocess.PIPE):
    """Run udr with stderr on a pseudo-terminal; feed: a function writing
    standard input.  Returns (exit code, stdout bytes, terminal output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([UDR_BIN, *map(str, args)], stdin=subprocess.PIPE if feed else
                            subprocess.DEVNULL, stdout=stdout, stderr=slave, env=base_env())
    os.close(slave)
    if feed:
        t = threading.Thread(target=lambda: (feed(proc.stdin), proc.stdin.close()))
        t.start()
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        seen += data
    os.close(master)
    if feed:
        t.join()
    out = proc.stdout.read() if stdout == subprocess.PIPE else b""
    if proc.stdout:
        proc.stdout.close()
    return proc.wait(timeout=60), out, seen.decode("utf-8", "replace")


def slow_feed(blocks, size=9 * MiB, pause=0.4):
    block = os.urandom(size)

    def feed(f):
        for _ in range(blocks):
            f.write(block)
            f.flush()
            time.sleep(pause)
    return feed


def test_put_progress_on_terminal(udr):
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "put", "-"],
                                         feed=slow_feed(3))
    assert code == 0, tty
    h = out.decode().strip()
    assert len(h) == 64
    assert udr("exists", h).code == 0
    # redrawn in place, with bytes and a rate; size unknown (a pipe): no ETA
    frames = [f for f in tty.split("\r") if f.strip()]
    assert len(frames) >= 2, repr(tty)
    assert all(f.startswith("put  ") and "/s" in f for f in frames), repr(tty)
    assert "MiB" in tty and "ETA" not in tty
    # cleared at the end: the last thing written is blanks and a \r
    assert tty.endswith("\r") and tty.rstrip("\r").split("\r")[-1].strip() == ""


def test_put_progress_known_size_has_eta(udr, tmp_path):
    f = tmp_path / "big"
    f.write_bytes(os.urandom(48 * MiB))
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "put", f])
    assert code == 0, tty
    assert out.decode().strip() == udr.ok("hash", f).out.strip()
    # may be too fast to draw on a quick machine; if drawn, it has an ETA
    if tty.strip():
        assert "ETA" in tty and "%" in tty and "48.0 MiB" in tty, repr(tty)


def test_commit_file_progress_and_quiet(udr):
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "commit", "t", "--next",
                                          "--file", "-"], feed=slow_feed(3))
    assert code == 0, tty
    assert out == b"1\n"
    assert "put  " in tty
    for args in (["-q", "--store", udr.root, "put", "-"],
                 ["--store", udr.root, "put", "--quiet", "-"]):
        code, out, tty = run_with_tty_stderr(args, feed=slow_feed(3))
        assert code == 0
        assert tty == "", repr(tty)


def test_no_progress_when_stderr_is_not_a_terminal(udr):
    r = udr("put", "-", input=os.urandom(20 * MiB))
    assert r.code == 0
    assert r.stderr == ""


def test_get_progress_to_file(udr, tmp_path):
    data = os.urandom(64 * MiB)
    h = udr.put(data)
    out = tmp_path / "out.bin"
    code, _, tty = run_with_tty_stderr(["--store", udr.root, "get", "--verify", h, "-o", out])
    assert code == 0, tty
    assert out.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name != "out.bin" and p.is_file()]
    # may be too fast to draw on a quick machine; if drawn, it is complete
    if tty.strip():
        assert "get  " in tty and "ETA" in tty and "64.0 MiB" in tty, repr(tty)
        assert tty.endswith("\r")


def test_get_progress_missing_content(udr, tmp_path):
    code, _, tty = run_with_tty_stderr(["--store", udr.root, "get", "ab" * 32, "-o",
                                        tmp_path / "o"])
    assert code == 1
    assert "udr: " in tty and "ab" * 32 in tty
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]


def test_get_progress_corrupt_leaves_no_file(udr, tmp_path):
    data = os.urandom(3 * MiB)
    h = udr.put(data)
    # the first piece the manifest lists, damaged in place
    where, path, off, length, _ = udr.locate(h)[0]
    with open(path, "rb") as f:
        f.seek(off + 64)
        first = f.read(32).hex()
    udr.damage(first, "flip", at=0)
    code, _, tty = run_with_tty_stderr(["--store", udr.root, "get", "--verify", h, "-o",
                                        tmp_path / "o"])
    assert code == 4, tty
    assert h in tty
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]


def test_upgrade_progress_on_terminal(udr2):
    """`udr upgrade` of a format-2 store shows its progress at once (the
    bytes of loose objects to pack are counted first), clears it, and says
    what it packed; on a pipe only the summary."""
    hs = [udr2.put(os.urandom(3 * MiB)) for _ in range(3)]
    code, out, tty = run_with_tty_stderr(["--store", udr2.root, "upgrade"])
    assert code == 0, tty
    frames = [f for f in tty.split("\r") if f.strip()]
    assert frames and all(f.startswith("upgrade  ") and "%" in f for f in frames), repr(tty)
    assert tty.endswith("\r") and tty.rstrip("\r").split("\r")[-1].strip() == ""
    out = out.decode()
    assert "from format 2 to format 3" in out and "packed " in out, out
    for h in hs:
        assert [c[0] for c in udr2.locate(h)] == ["pack"]
    # again: nothing to do, nothing drawn
    code, out, tty = run_with_tty_stderr(["--store", udr2.root, "upgrade"])
    assert code == 0 and tty == "" and "already format 3" in out.decode()
    assert udr2("fsck").code == 0
