"""udr --help, help COMMAND, --version, usage errors."""
import pytest

COMMANDS = ["init", "hash", "put", "get", "exists", "commit", "show",
            "versions", "tables", "log", "watch", "stats", "fsck", "help",
            "import", "export", "sql", "diff-rows", "upgrade", "cache", "optimize"]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_main_help(run, args):
    r = run(*args)
    assert r.code == 0, r
    assert r.out.startswith("usage: udr")
    for cmd in COMMANDS:
        assert "\n  %s " % cmd in r.out
    assert "Exit status" in r.out
    assert r.stderr == ""


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_command_help(run, tmp_path, cmd, flag):
    # --help works without a store and never touches one.
    r = run("--store", tmp_path / "none", cmd, flag)
    assert r.code == 0, r
    assert r.out.startswith("usage: udr %s" % cmd), r
    assert r.stderr == ""
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_command(run, cmd):
    r = run("help", cmd)
    assert r.code == 0, r
    assert r.out.startswith("usage: udr %s" % cmd)


def test_help_unknown_command(run):
    r = run("help", "frobnicate")
    assert r.code == 2
    assert "udr: unknown command" in r.stderr and "frobnicate" in r.stderr


def test_exists_help_documents_output(run):
    r = run("exists", "--help")
    assert "0" in r.out and "1" in r.out and "nothing" in r.out


def test_version(run):
    r = run("--version")
    assert r.code == 0
    assert r.out.startswith("udr ")
    assert r.out.split()[1][0].isdigit()


def test_no_command(run):
    r = run()
    assert r.code == 2
    assert r.stdout == b""
    assert r.stderr.startswith("udr: ")
    assert "usage: udr" in r.stderr


def test_unknown_command(run):
    r = run("frobnicate")
    assert r.code == 2
    assert r.stdout == b""
    assert 'udr: unknown command "frobnicate"' in r.stderr
    assert "usage: udr" in r.stderr


@pytest.mark.parametrize("args", [["--bogus", "tables"], ["-x", "tables"]])
def test_unknown_global_option(run, args):
    r = run(*args)
    assert r.code == 2
    assert "unknown option" in r.stderr and args[0] in r.stderr
    assert "usage: udr" in r.stderr


@pytest.mark.parametrize("cmd", ["init", "hash", "put", "get", "exists", "commit",
                                 "show", "versions", "tables", "log", "watch", "stats",
                                 "fsck"])
def test_unknown_command_option(run, tmp_path, cmd):
    r = run("--store", tmp_path, cmd, "--bogus")
    assert r.code == 2, r
    assert "udr: unknown option --bogus" in r.stderr
    assert ("usage: udr %s" % cmd) in r.stderr
    assert r.stdout == b""


def test_missing_option_argument(run, tmp_path):
    r = run("--store")
    assert r.code == 2
    assert "requires an argument" in r.stderr
    r = run("--store", tmp_path, "get", "0" * 64, "-o")
    assert r.code == 2
    assert "option -o requires an argument" in r.stderr
    # a long option's name, not its code as a byte ("option -^E"; a
    # helper's review)
    for args, name in ((["log", "--limit"], "--limit"), (["gc", "--keep-last"], "--keep-last"),
                       (["commit", "t", "--next", "--message"], "--message")):
        r = run("--store", tmp_path, *args)
        assert r.code == 2 and "option %s requires an argument" % name in r.stderr, r


@pytest.mark.parametrize("args", [
    ["init", "extra"], ["hash", "a", "b"], ["put", "a", "b"], ["get"],
    ["get", "a", "b"], ["exists"], ["commit"], ["commit", "t"], ["show"],
    ["show", "t", "1", "2"], ["versions"], ["versions", "a", "b"],
    ["tables", "x"], ["fsck", "x"], ["help", "a", "b"], ["log", "x"], ["watch", "x"],
    ["stats", "x"], ["show", "t", "1", "--at", "2026-01-01"],
    ["commit", "t", "--spec", "-"], ["commit", "t", "--next", "--file", "f", "0" * 64],
])
def test_wrong_operand_count(udr, args):
    r = udr(*args)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ")
    assert "usage: udr" in r.stderr


def test_commit_help_documents_spec(run):
    r = run("commit", "--help")
    assert r.code == 0
    for word in ('"tables"', '"chunks"', '"files"', '"metadata"', '"isolation"',
                 "serializable", "--spec", "--file"):
        assert word in r.out, word


@pytest.mark.parametrize("args", [["-q", "tables"], ["--quiet", "tables"],
                                  ["tables", "-q"], ["tables", "--quiet"]])
def test_quiet_option_accepted(udr, args):
    r = udr(*args)
    assert r.code == 0, r
