"""Output operands of get -o, export and sql -o that are not plain files.

A device node or a symlink given as the output is written through, as the
shell's > would, never replaced by a renamed temp file (the bug: as root,
`udr export t /dev/stdout` replaced the system's /dev/stdout symlink with a
regular file).  "-" is standard output.  The tests never touch the real
/dev/null or /dev/stdout: they make their own null device, symlinks and
FIFOs in tmp_path.
"""
import os
import stat
import subprocess
import threading

import pytest

from conftest import tree_snapshot, run_udr

_help = run_udr("sql", "--help")
HAVE_QUERY = _help.code == 0 and "without the query module" not in _help.out + _help.stderr
needs_query = pytest.mark.skipif(not HAVE_QUERY, reason="udr was built without the query module")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")

CSV = "id\n1\n2\n"


@pytest.fixture
def env(tmp_path):
    """A private TMPDIR (where the temp files of written-through outputs go),
    checked to be empty again by the tests."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    return {"TMPDIR": str(d)}


def no_temp_left(env):
    return os.listdir(env["TMPDIR"]) == []


def make_null(path):
    """A private copy of /dev/null (character device 1,3)."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def is_null(path):
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def table(udr, tmp_path):
    src = tmp_path / "src.csv"
    src.write_text(CSV)
    udr.ok("import", "t", src)


def writers(h):
    """Each command that writes an output operand, as a function of it."""
    out = {"get": lambda o: ["get", h, "-o", o],
           "get --verify": lambda o: ["get", h, "-o", o, "--verify"]}
    if HAVE_QUERY:
        out["export"] = lambda o: ["export", "t", o, "--format", "csv"]
        out["sql -o"] = lambda o: ["sql", "SELECT * FROM t ORDER BY id", "-o", o,
                                   "--format", "csv"]
    return out


@pytest.fixture
def store(udr, tmp_path):
    """udr with table t (if the query module is there) and a chunk holding
    the same bytes as t exported to CSV; returns (udr, writers)."""
    if HAVE_QUERY:
        table(udr, tmp_path)
    return udr, writers(udr.put(CSV.encode()))


@needs_root
def test_a_device_stays_a_device(store, tmp_path, env):
    udr, cmds = store
    for name, args in cmds.items():
        dev = make_null(tmp_path / ("null-" + name.replace(" ", "")))
        r = udr(*args(dev), env=env)
        assert r.code == 0, (name, r)
        assert is_null(dev), name
        assert no_temp_left(env), name
    # a failing command leaves the device too
    if HAVE_QUERY:
        dev = make_null(tmp_path / "null-fail")
        r = udr("sql", "SELECT nope", "-o", dev, "--format", "csv", env=env)
        assert r.code == 2 and is_null(dev) and no_temp_left(env), r
    # nothing next to the devices either
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("null")) == \
        sorted(["store", "tmpdir"] + (["src.csv"] if HAVE_QUERY else []))


def test_a_symlink_is_written_through(store, tmp_path, env):
    udr, cmds = store
    for name, args in cmds.items():
        real = tmp_path / ("real-" + name.replace(" ", "") + ".csv")
        real.write_text("old contents, longer than the new ones\n")
        link = tmp_path / ("link-" + name.replace(" ", "") + ".csv")
        link.symlink_to(real.name)
        r = udr(*args(link), env=env)
        assert r.code == 0, (name, r)
        assert os.path.islink(link) and os.readlink(link) == real.name, name
        assert real.read_text() == CSV, name  # truncated, then written
        assert no_temp_left(env), name
    if HAVE_QUERY:
        real = tmp_path / "real-export.csv"
        link = tmp_path / "link-export.csv"
        # a failing export leaves the file behind the link as it was
        before = real.read_text()
        r = udr("export", "nosuchtable", link, env=env)
        assert r.code == 1 and real.read_text() == before and os.path.islink(link), r
        # errors name the operand, not the temp file
        noext = tmp_path / "noext"
        noext.symlink_to(real.name)
        r = udr("export", "t", noext, env=env)
        assert r.code == 2 and "'%s'" % noext in r.stderr and "udr-output" not in r.stderr, r
        assert os.path.islink(noext) and no_temp_left(env)
        # a regular file is still replaced atomically (a new inode by rename)
        ino = real.stat().st_ino
        assert udr.ok("export", "t", real, env=env).out == "2 rows\n"
        assert real.read_text() == CSV and real.stat().st_ino != ino


def test_a_symlink_to_standard_output(store, tmp_path, env):
    """The repro: a symlink to /proc/self/fd/1 (what /dev/stdout is) with
    stdout a regular file.  The data goes there; a row count does not."""
    udr, cmds = store
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    for name, args in cmds.items():
        captured = tmp_path / "captured"
        with open(captured, "wb") as f:
            r = udr(*args(link), env=env, stdout=f)
        assert r.code == 0, (name, r)
        assert os.readlink(link) == "/proc/self/fd/1", name
        assert captured.read_text() == CSV, name
        if name in ("export", "sql -o"):
            assert r.stderr == "2 rows\n", (name, r)
        assert no_temp_left(env), name


def test_a_symlink_into_the_store_is_refused(store, tmp_path, env):
    udr, cmds = store
    config = udr.root / "config.json"
    before = config.read_bytes()
    link = tmp_path / "cfg.csv"
    link.symlink_to(config)
    for name, args in cmds.items():
        r = udr(*args(link), env=env)
        assert r.code == 2 and "inside the store" in r.stderr, (name, r)
        assert os.path.islink(link) and config.read_bytes() == before, name
    assert udr.ok("fsck").code == 0


def test_a_file_inside_the_store_is_refused(store, tmp_path, env):
    """get -o S/catalog/HEAD replaced the store's HEAD with the content's
    bytes (exit 0), and -o S/chunks/config.json corrupted the store."""
    udr, cmds = store
    targets = [udr.root / "config.json", udr.root / "chunks" / "config.json", udr.root / "catalog" / "HEAD",
               udr.root / "catalog" / "new-file", udr.root / "out.csv"]
    before = tree_snapshot(udr.root)
    for name, args in cmds.items():
        for t in targets:
            r = udr(*args(t), env=env)
            assert r.code == 2 and "inside the store" in r.stderr, (name, t, r)
        # a relative name, from inside the store
        r = udr(*args("rel.csv"), env=env, cwd=str(udr.root / "catalog"))
        assert r.code == 2 and "inside the store" in r.stderr, (name, r)
    assert tree_snapshot(udr.root) == before
    udr.ok("fsck")


def test_a_fifo_is_written_through(store, tmp_path, env):
    udr, cmds = store
    for name, args in cmds.items():
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        # a second name of the FIFO: should the command replace "pipe", the
        # reader still waiting in open() is released through it
        keep = tmp_path / "keep"
        keep.mkdir()
        os.link(fifo, keep / "pipe")
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()),
                                  daemon=True)
        reader.start()
        r = udr(*args(fifo), env=env)
        reader.join(timeout=30)
        if reader.is_alive():
            os.close(os.open(keep / "pipe", os.O_WRONLY | os.O_NONBLOCK))
            reader.join(timeout=30)
        assert r.code == 0, (name, r)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode), name
        assert got == [CSV.encode()], (name, got)
        assert no_temp_left(env), name
        os.unlink(fifo)
        os.unlink(keep / "pipe")
        keep.rmdir()


def test_dash_is_standard_output(store, tmp_path, env):
    udr, cmds = store
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name, args in cmds.items():
        r = udr(*args("-"), env=env, cwd=cwd)
        assert r.code == 0, (name, r)
        assert r.stdout == CSV.encode(), (name, r)
        if name in ("export", "sql -o"):
            assert r.stderr == "2 rows\n", (name, r)
        assert os.listdir(cwd) == [], name  # no file named "-"
        assert no_temp_left(env), name
    if HAVE_QUERY:
        # the format cannot come from an extension: --format is needed
        for args in (["export", "t", "-"], ["sql", "SELECT 1", "-o", "-"]):
            r = udr(*args, env=env, cwd=cwd)
            assert r.code == 2 and "--format" in r.stderr and r.stdout == b"", r
            assert os.listdir(cwd) == [] and no_temp_left(env)
        # parquet too (the bytes of a complete file)
        r = udr("export", "t", "-", "--format", "parquet", env=env, cwd=cwd)
        assert r.code == 0 and r.stdout[:4] == b"PAR1" and r.stdout[-4:] == b"PAR1", r
        # -q: no count
        r = udr("export", "t", "-", "--format", "csv", "-q", env=env, cwd=cwd)
        assert r.code == 0 and r.stdout == CSV.encode() and r.stderr == "", r


@needs_query
def test_dash_to_a_closed_pipe_is_quiet(store, tmp_path, env):
    udr, _ = store
    udr.ok("sql", "CREATE TABLE big AS SELECT range AS id FROM range(300000)")
    from conftest import UDR_BIN, base_env
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "export", "big", "-",
                          "--format", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=base_env(env), cwd=tmp_path)
    assert p.stdout.read(3) == b"id\n"
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0, err
    assert no_temp_left(env)


def test_help_says_dash_is_standard_output(run):
    cmds = ["get"] + (["export", "sql"] if HAVE_QUERY else [])
    for cmd in cmds:
        out = " ".join(run(cmd, "--help").out.split())
        assert "- is standard output" in out or "OUT - is standard output" in out, cmd
        assert "written through" in out, cmd
