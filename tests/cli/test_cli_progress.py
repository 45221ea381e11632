"""The progress display of put, commit --file and get: on a terminal only."""
import json
import os
import pty
import subprocess
import threading
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env, tree_snapshot

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


# ---- udr gc (docs/GC.md 7.1: one progress line per phase on a terminal) ----

def gc_store(udr, tmp_path, n=4):
    """n versions of t (one pack of n 300 KB pieces) and an uncommitted put."""
    for i in range(n):
        f = tmp_path / ("v%d" % i)
        f.write_bytes(os.urandom(300_000))
        udr.ok("commit", "t", "--next", "--file", f)
    udr.put(os.urandom(200_000))


def gc_frames(tty):
    """The gc lines drawn: [(phase, done, total)], total None when not given."""
    out = []
    for f in tty.split("\r"):
        f = f.replace("\x1b[K", "")
        if not f:
            continue
        assert f.startswith("gc: "), repr(tty)
        words = f[4:].split()
        if len(words) == 1:
            out.append((words[0], None, None))
        else:
            assert len(words) == 2, repr(tty)
            done, total = map(int, words[1].split("/"))
            out.append((words[0], done, total))
    return out


def phases(frames):
    seen = []
    for p, _, _ in frames:
        if not seen or seen[-1] != p:
            seen.append(p)
    return seen


def test_gc_progress_on_terminal_json_on_stdout(udr, tmp_path):
    gc_store(udr, tmp_path)
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "gc", "--keep-last", "1", "--grace", "0s",
                                          "--json"])
    assert code == 0, tty
    rep = json.loads(out)  # stdout is the report alone
    assert b"\r" not in out and b"\x1b" not in out and b"gc:" not in out
    assert rep["removed"]["objects"] == 4 and rep["removed"]["packs_rewritten"] == 1, rep
    fr = gc_frames(tty)
    # each phase shown, in order; the expire step first (it may wait for writers)
    assert phases(fr) == ["expire", "mark", "rewrite", "verify", "delete"], fr
    for p, done, total in fr:
        assert total is None or done <= total, fr
    # a counted phase ends at its total: never short, never past it
    for p in ("mark", "rewrite", "verify", "delete"):
        last = [f for f in fr if f[0] == p][-1]
        assert last[1] == last[2], (p, fr)
    assert [f for f in fr if f[0] == "mark"][-1][2] == rep["mark"]["objects"]
    assert [f for f in fr if f[0] == "verify"][-1][2] == rep["mark"]["live"]
    # cleared at the end: nothing but progress on the terminal, no newline
    assert tty.endswith("\r\x1b[K") and "\n" not in tty, repr(tty)
    assert udr.ok("fsck").code == 0


def test_gc_dry_run_progress_on_terminal(udr, tmp_path):
    gc_store(udr, tmp_path)
    before = tree_snapshot(udr.root / "chunks" / "packs")
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "gc", "--dry-run", "--keep-last", "1",
                                          "--grace", "0s"])
    assert code == 0, tty
    assert out.decode().startswith("would expire 3 versions") and "dry run:" in out.decode(), out
    fr = gc_frames(tty)
    # marks, removes nothing: no rewrite, verify or delete line
    assert phases(fr) == ["expire", "mark"], fr
    assert fr[-1][1] == fr[-1][2] > 0
    assert tty.endswith("\r\x1b[K") and "\n" not in tty, repr(tty)
    assert tree_snapshot(udr.root / "chunks" / "packs") == before
    for v in (1, 2, 3, 4):
        assert udr("show", "t", str(v)).code == 0


def test_gc_nothing_to_remove_shows_mark_only(udr, tmp_path):
    gc_store(udr, tmp_path, n=1)
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "gc", "--json"])  # the put is young
    assert code == 0, tty
    assert json.loads(out)["removed"]["objects"] == 0
    assert phases(gc_frames(tty)) == ["mark"], repr(tty)


def test_gc_no_progress_off_a_terminal_or_quiet(udr, tmp_path):
    gc_store(udr, tmp_path)
    r = udr("gc", "--keep-last", "3", "--grace", "0s", "--json")
    assert r.code == 0, r
    assert r.stderr == "" and json.loads(r.out)["removed"]["objects"] == 2
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "gc", "-q", "--keep-last", "1", "--grace", "0s"])
    assert code == 0 and tty == "" and out == b"", repr(tty)
    assert [udr("show", "t", str(v)).code for v in (1, 2, 3, 4)] == [6, 6, 6, 0]


def test_gc_progress_redrawn_at_a_bounded_rate(tmp_path):
    """A rewrite reports each entry it copies: thousands a second.  The line
    is redrawn at most every 100 ms (a new phase and a phase's end always),
    not once per entry (2,700 lines, 90 KB for this store before)."""
    from conftest import Udr
    udr = Udr(tmp_path / "small")
    udr.ok("init", "--chunk-min", "64", "--chunk-avg", "256", "--chunk-max", "1024")
    files = []
    for i in range(3):
        files.append(tmp_path / ("f%d" % i))
        files[-1].write_bytes(os.urandom(400_000))  # about 1,400 pieces each
    # t@1 and u@1 in one pack; t@2 in another: expiring t@1 leaves the
    # first pack half dead, so u@1's pieces are rewritten one by one
    spec = {"tables": [{"table": "t", "files": [str(files[0])]}, {"table": "u", "files": [str(files[1])]}]}
    udr.ok("commit", "--spec", "-", input=json.dumps(spec))
    udr.ok("commit", "t", "--next", "--file", files[2])
    code, out, tty = run_with_tty_stderr(["--store", udr.root, "gc", "--keep-last", "1", "--grace", "0s",
                                          "--json"])
    assert code == 0, tty[-500:]
    rep = json.loads(out)
    assert rep["removed"]["packs_rewritten"] >= 1 and rep["mark"]["live"] > 1000, rep
    fr = gc_frames(tty)
    assert phases(fr) == ["expire", "mark", "rewrite", "verify", "delete"], fr[:20]
    assert [f for f in fr if f[0] == "rewrite"][-1][1] == [f for f in fr if f[0] == "rewrite"][-1][2]
    assert len(fr) <= 12 + 20 * rep["seconds"], (len(fr), rep["seconds"])
    assert udr.ok("fsck").code == 0


@pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE needs a UDR_FAULT_INJECTION build")
def test_gc_mark_line_shown_while_the_unlocked_mark_runs(udr, tmp_path):
    """A run marks twice: first without stopping writers (most of the
    work on a big store), then under the locks.  The mark line is on the
    terminal from the start, not only once the first mark is over."""
    gc_store(udr, tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    master, slave = pty.openpty()
    proc = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", "--grace", "0s", "--json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=base_env({"UDR_PAUSE": "gc-premark:%s" % pause}))
    os.close(slave)
    seen = []
    t = threading.Thread(target=lambda: seen.extend(iter(lambda: _read(master), b"")))
    t.start()
    try:
        end = time.time() + 30
        while not (pause / "gc-premark.reached").exists():
            assert time.time() < end and proc.poll() is None
            time.sleep(0.01)
        time.sleep(0.2)
        assert phases(gc_frames(b"".join(seen).decode())) == ["mark"], seen
    finally:
        (pause / "gc-premark.go").touch()
        out = proc.stdout.read()
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0
        t.join()
        os.close(master)
    assert json.loads(out)["removed"]["objects"] == 1


def _read(fd):
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed
        return b""
