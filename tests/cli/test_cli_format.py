"""udr init settings, put --base, commit --file, stats: chunk-store format 2."""
import json
import re
import os

import pytest

from conftest import Udr, tree_snapshot


def stats(udr):
    r = udr.ok("stats", "--json")
    return json.loads(r.out)


def edited(data, offset, patch=b"EDITED!!"):
    return data[:offset] + patch + data[offset + len(patch):]


# ---- init settings ----

def test_init_default_is_format3(run, tmp_path):
    root = tmp_path / "s"
    r = run("--store", root, "init")
    assert r.code == 0, r
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert cfg["format"] == 3
    assert cfg["packs"] == {"target": 32 << 20, "max": 64 << 20}
    assert (root / "chunks" / "packs").is_dir()
    assert stats(Udr(root))["format"] == 3


def test_init_format2(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init", "--format", "2").code == 0
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert cfg["format"] == 2 and "packs" not in cfg
    u = Udr(root)
    h = u.put(b"x" * 100)
    assert u.locate(h)[0][0] == "loose"


def test_init_format1(run, tmp_path):
    root = tmp_path / "s"
    r = run("--store", root, "init", "--format", "1")
    assert r.code == 0, r
    assert json.loads((root / "chunks" / "config.json").read_text())["format"] == 1
    u = Udr(root)
    data = os.urandom(1 << 20)
    h = u.put(data)
    assert u.objects(h) == {"": u.chunk_path(h)}
    assert u.chunk_path(h).read_bytes() == data
    assert stats(u)["format"] == 1


def test_init_settings_are_used(run, tmp_path):
    root = tmp_path / "s"
    r = run("--store", root, "init", "--chunk-min", "4K", "--chunk-avg", "16k",
            "--chunk-max", "64KiB", "--compression-level", "0", "--delta-depth", "7")
    assert r.code == 0, r
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert (cfg["chunking"]["min"], cfg["chunking"]["avg"], cfg["chunking"]["max"]) == \
        (4096, 16384, 65536)
    assert cfg["compression"]["level"] == 0
    assert cfg["delta"]["max_depth"] == 7
    u = Udr(root)
    # 100 KB > chunk-max 64 KiB: split; level 0: compressible pieces stay raw.
    data = b"all the same " * 8000
    h = u.put(data)
    assert u.locate(h)[0][4] == 3  # a manifest
    assert stats(u)["compressed"] == 0
    assert u.ok("get", "--verify", h).stdout == data


def test_init_size_suffix_m(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init", "--chunk-avg", "1M", "--chunk-max", "4M").code == 0
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert (cfg["chunking"]["avg"], cfg["chunking"]["max"]) == (1 << 20, 4 << 20)


@pytest.mark.parametrize("args", [
    ["--format", "4"], ["--format", "0"], ["--format", "x"],
    ["--chunk-avg", "100K"],               # not a power of two
    ["--chunk-min", "64K", "--chunk-avg", "16K"],  # min > avg
    ["--chunk-max", "1G"],                 # above the 64 MiB hard limit
    ["--chunk-max", "10X"], ["--chunk-max", "-1"], ["--chunk-max", ""], ["--chunk-min", "0"],
    ["--compression-level", "20"], ["--compression-level", "-1"],
    ["--compression-level", "fast"],
    ["--delta-depth", "0"], ["--delta-depth", "256"],
    ["--format", "1", "--chunk-max", "1M"],   # format 1 has no pieces
    ["--format", "1", "--compression-level", "3"],
])
def test_init_invalid_settings(run, tmp_path, args):
    root = tmp_path / "s"
    r = run("--store", root, "init", *args)
    assert r.code == 2, r
    assert r.stderr.startswith("udr: ")
    assert r.stdout == b""
    assert not root.exists()


@pytest.mark.parametrize("depth", ["0", "256", "1000"])
def test_init_delta_depth_range_in_one_message(run, tmp_path, depth):
    """Issue 14: 256 said "from 0 to 255", and then 0 was refused."""
    r = run("--store", tmp_path / "s", "init", "--delta-depth", depth)
    assert r.code == 2, r
    assert r.stderr == 'udr: invalid delta depth "%s" (1 to 255)\n' % depth


def test_init_on_dangling_symlink(run, tmp_path):
    """Issue 14: the message said "a file of that name exists"."""
    link = tmp_path / "st"
    os.symlink(tmp_path / "gone" / "x", link)
    r = run("--store", link, "init")
    assert r.code == 5, r
    assert "dangling symbolic link" in r.stderr and str(tmp_path / "gone" / "x") in r.stderr, r


def test_init_options_on_existing_store(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init").code == 0
    snap = tree_snapshot(root)
    for args in (["--format", "1"], ["--format", "2"], ["--chunk-max", "1M"],
                 ["--compression-level", "9"]):
        r = run("--store", root, "init", *args)
        assert r.code == 2, r
        assert "fixed at creation" in r.stderr
    assert tree_snapshot(root) == snap
    r = run("--store", root, "init")
    assert r.code == 0 and "already exists" in r.out


# ---- put --base, commit --file, stats ----

@pytest.fixture
def three_mib(tmp_path):
    data = os.urandom(3 << 20)
    f = tmp_path / "v1.bin"
    f.write_bytes(data)
    return f, data


def test_stats_empty(udr):
    st = stats(udr)
    for k in ("contents", "pieces", "manifests", "compressed", "deltas", "logical_bytes",
              "unique_bytes", "stored_bytes"):
        assert st[k] == 0, k
    text = udr.ok("stats").out
    assert "contents:" in text and "dedup ratio:" in text


def test_stats_dedup_and_deltas(udr, tmp_path, three_mib):
    f, data = three_mib
    h1 = udr.ok("put", f).out.strip()
    assert udr.ok("put", f).out.strip() == h1
    st1 = stats(udr)
    assert st1["contents"] == 1 and st1["manifests"] == 1
    assert st1["logical_bytes"] == len(data)
    assert st1["unique_bytes"] == len(data)
    assert st1["deltas"] == 0
    assert st1["pieces"] >= 3
    g = tmp_path / "v2.bin"
    data2 = edited(data, 1 << 20)
    g.write_bytes(data2)
    h2 = udr.ok("put", "--base", h1, g).out.strip()
    assert h2 != h1
    assert udr.ok("get", "--verify", h2).stdout == data2
    st = stats(udr)
    assert st["contents"] == 2
    assert st["manifests"] == 2
    assert st["logical_bytes"] == 2 * len(data)
    assert st["deltas"] > 0, st
    assert st["dedup_ratio"] > 1.5, st
    assert st["unique_bytes"] < st["logical_bytes"]
    # the edited piece costs little: a delta, not a new copy
    assert st["stored_bytes"] < st1["stored_bytes"] + (64 << 10), (st1, st)
    assert abs(st["dedup_ratio"] - st["logical_bytes"] / st["unique_bytes"]) < 0.001
    assert abs(st["delta_ratio"] - st["unique_bytes"] / st["after_delta_bytes"]) < 0.001
    assert abs(st["compression_ratio"] - st["after_delta_bytes"] / st["piece_bytes"]) < 0.001
    text = udr.ok("stats").out
    assert "delta pieces:       %d" % st["deltas"] in text
    assert "MiB" in text
    # the text rounds the ratio to 2 places; the JSON's own rounding (3
    # places) can sit on the boundary (1.905: "1.90" or "1.91")
    shown = re.search(r"dedup ratio:\s+([0-9.]+)", text)
    assert shown and abs(float(shown.group(1)) - st["dedup_ratio"]) <= 0.0051, (shown, st["dedup_ratio"])
    assert udr("fsck").code == 0


def test_stats_steps_and_fsck_agree(udr, tmp_path):
    """Issue 14: two nearly identical versions of one small content (one
    piece each): the saving is a delta, shown as such, not as compression;
    fsck counts the objects and bytes stats counts."""
    data = os.urandom(100 << 10)  # < chunk_max: one piece; incompressible
    v1 = tmp_path / "v1.bin"
    v1.write_bytes(data)
    v2 = tmp_path / "v2.bin"
    v2.write_bytes(edited(data, len(data) - 1000))
    udr.ok("commit", "t", "--next", "--file", v1)
    udr.ok("commit", "t", "--next", "--file", v2)
    st = stats(udr)
    assert st["deltas"] == 1, st
    assert st["dedup_ratio"] == 1.0  # no piece is shared
    assert st["logical_bytes"] == st["unique_bytes"] == 2 * len(data)
    # the second version costs a small delta: the saving shows at "after delta"
    assert st["after_delta_bytes"] < len(data) + (8 << 10), st
    assert st["delta_ratio"] > 1.9, st
    assert st["piece_bytes"] <= st["after_delta_bytes"] <= st["unique_bytes"] <= st["logical_bytes"]
    assert st["stored_bytes"] >= st["piece_bytes"]
    assert st["objects"] == st["pieces"] + st["manifests"]
    text = udr.ok("stats").out
    for label in ("logical:", "after dedup:", "after delta:", "after compression:", "on disk:",
                  "delta ratio:", "query cache:"):
        assert label in text, text
    assert "on disk:            " in text and "(%d bytes)" % st["stored_bytes"] in text
    summary = udr.ok("fsck").out.splitlines()[-1]
    assert summary.startswith("fsck: %d objects (%d bytes on disk) and " % (
        st["objects"], st["stored_bytes"])), summary


def test_put_without_base_makes_no_delta(udr, tmp_path, three_mib):
    f, data = three_mib
    udr.ok("put", f)
    g = tmp_path / "v2.bin"
    g.write_bytes(edited(data, 1 << 20))
    udr.ok("put", g)
    assert stats(udr)["deltas"] == 0


def test_put_base_absent_still_works(udr, tmp_path):
    data = os.urandom(1 << 20)
    absent = "ab" * 32
    h = udr.ok("put", "--base", absent, "-", input=data).out.strip()
    assert udr.ok("get", "--verify", h).stdout == data
    assert udr("exists", absent).code == 1
    h2 = udr.ok("put", "--base", h, input=b"small").out.strip()  # base larger: fine
    assert udr.ok("get", h2).stdout == b"small"


@pytest.mark.parametrize("bad", ["xyz", "a" * 63, ""])
def test_put_bad_base(udr, bad):
    snap = tree_snapshot(udr.root)
    r = udr("put", "--base", bad, input=b"data")
    assert r.code == 2, r
    assert "--base" in r.stderr
    assert tree_snapshot(udr.root) == snap


def test_commit_file_next_uses_latest_as_base(udr, tmp_path, three_mib):
    f, data = three_mib
    r = udr("commit", "docs", "--next", "--file", f, "-m", "v1", "--meta", "k=v")
    assert r.code == 0, r
    assert r.out == "1\n"
    v1 = json.loads(udr.ok("show", "docs").out)
    assert v1["chunks"] == [udr.ok("hash", f).out.strip()]
    assert (v1["message"], v1["metadata"]) == ("v1", {"k": "v"})
    g = tmp_path / "v2.bin"
    data2 = edited(data, 2 << 20)
    g.write_bytes(data2)
    assert udr.ok("commit", "docs", "--next", "--file", g).out == "2\n"
    v2 = json.loads(udr.ok("show", "docs").out)
    assert v2["version"] == 2 and len(v2["chunks"]) == 1
    assert udr.ok("get", "--verify", v2["chunks"][0]).stdout == data2
    assert stats(udr)["deltas"] > 0
    # standard input works too
    assert udr.ok("commit", "docs", "--next", "--file", "-", input=b"three").out == "3\n"
    assert json.loads(udr.ok("show", "docs").out)["chunks"] == [udr.put(b"three")]


def test_commit_file_no_base_when_latest_has_several_chunks(udr, tmp_path, three_mib):
    f, data = three_mib
    h = udr.ok("put", f).out.strip()
    udr.ok("commit", "t", "1", h, udr.put(b"second chunk"))
    g = tmp_path / "v2.bin"
    g.write_bytes(edited(data, 1 << 20))
    assert udr.ok("commit", "t", "--next", "--file", g).out == "2\n"
    assert stats(udr)["deltas"] == 0


def test_commit_file_with_version(udr, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    assert udr.ok("commit", "t", "1", "--file", f).out == "1\n"
    r = udr("commit", "t", "1", "--file", f)
    assert r.code == 3, r


def test_commit_file_missing(udr, tmp_path):
    r = udr("commit", "t", "--next", "--file", tmp_path / "nope")
    assert r.code == 1, r
    assert "nope" in r.stderr
    assert udr.ok("tables").out == ""


# ---- upgrade ----

def test_upgrade_format1_in_place(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init", "--format", "1").code == 0
    u = Udr(root)
    old = os.urandom(3 << 20)
    h_old = u.put(old)
    assert u.ok("commit", "t", "--next", h_old).out.strip() == "1"
    assert (root / "chunks" / h_old[:2] / h_old[2:4] / h_old).stat().st_size == len(old)
    r = u("upgrade")
    assert r.code == 0, r
    assert "from format 1 to format 3" in r.out
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert cfg["format"] == 3 and cfg["chunking"]["avg"] == 131072
    # the old raw object is packed now (not a Parquet file)
    assert [c[0] for c in u.locate(h_old)] == ["pack"]
    # old content reads as before; new large content is chunked
    assert u.ok("get", "--verify", h_old).stdout == old
    assert json.loads(u.ok("show", "t").out)["chunks"] == [h_old]
    new = os.urandom(3 << 20)
    h_new = u.put(new)
    assert u.locate(h_new)[0][4] == 3  # a manifest
    assert u.ok("get", "--verify", h_new).stdout == new
    assert u("fsck").code == 0
    # again: nothing to do; settings for a format-3 store are refused
    r = u("upgrade")
    assert r.code == 0 and "already format 3" in r.out
    r = u("upgrade", "--chunk-avg", "64K")
    assert r.code == 2 and "fixed at creation" in r.stderr


def test_upgrade_with_settings_and_bad_input(run, tmp_path):
    root = tmp_path / "s"
    assert run("--store", root, "init", "--format", "1").code == 0
    u = Udr(root)
    r = u("upgrade", "--chunk-avg", "1000")  # not a power of two
    assert r.code == 2, r
    assert json.loads((root / "chunks" / "config.json").read_text())["format"] == 1
    r = u("upgrade", "--chunk-avg", "64K", "--compression-level", "0")
    assert r.code == 0, r
    cfg = json.loads((root / "chunks" / "config.json").read_text())
    assert cfg["chunking"]["avg"] == 65536 and cfg["compression"]["level"] == 0
    r = run("--store", tmp_path / "none", "upgrade")
    assert r.code == 1 and "not a udr store" in r.stderr
