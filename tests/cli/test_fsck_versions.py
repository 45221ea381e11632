"""udr fsck names the table versions that damage reaches (issue 15: "names
each problem with the tables and versions it damages"): a version whose
chunk is missing is "broken"; one whose chunks are stored but cannot be
read back (a delta whose base is gone, a damaged pack entry of one of its
pieces) is "damaged version T@V", for every version it reaches, and no
intact version is named."""
import json
import random


def commit(udr, tmp_path, table, data):
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    return int(udr.ok("commit", table, "--next", "--file", f).out.split()[-1])


def chunks(udr, table, v):
    return json.loads(udr.ok("show", table, str(v)).out)["chunks"]


def test_a_missing_delta_base_names_every_version_it_reaches(tmp_path):
    from conftest import Udr
    u = Udr(tmp_path / "s")
    u.ok("init", "--format", "2")
    base = random.Random(1).randbytes(300_000)
    commit(u, tmp_path, "t", base)                       # t@1: the base
    commit(u, tmp_path, "t", base + b"x")                # t@2: a delta on it
    commit(u, tmp_path, "t", base + b"xyz")              # t@3: a delta on t@2's
    commit(u, tmp_path, "w", random.Random(2).randbytes(5000))  # w@1: unrelated
    h = chunks(u, "t", 1)[0]
    for f in (u.root / "chunks").rglob(h + "*"):
        f.unlink()
    r = u("fsck")
    assert r.code == 4, r
    lines = r.out.splitlines()
    assert any(x.startswith("broken catalog t@1:") for x in lines), r.out
    assert any(x.startswith("damaged version t@2:") for x in lines), r.out
    assert any(x.startswith("damaged version t@3:") for x in lines), r.out
    assert not any("w@1" in x for x in lines), r.out
    n = sum(1 for x in lines if not x.startswith("fsck:"))
    assert ("%d problems" % n) in lines[-1], r.out


def test_a_damaged_pack_entry_names_its_versions(udr, tmp_path):
    rng = random.Random(3)
    a = rng.randbytes(200_000)
    commit(udr, tmp_path, "t", a)
    commit(udr, tmp_path, "v", a)                        # the same content: one chunk
    commit(udr, tmp_path, "w", rng.randbytes(200_000))
    h = chunks(udr, "t", 1)[0]
    udr.damage(h, "flip")
    r = udr("fsck")
    assert r.code == 4, r
    lines = r.out.splitlines()
    assert any(x.startswith("damaged version t@1:") and h in x for x in lines), r.out
    assert any(x.startswith("damaged version v@1:") for x in lines), r.out
    assert not any("w@1" in x for x in lines), r.out


def test_a_clean_store_reads_nothing_twice(udr, tmp_path):
    commit(udr, tmp_path, "t", b"abc" * 1000)
    r = udr("fsck")
    assert r.code == 0 and "damaged version" not in r.out, r
