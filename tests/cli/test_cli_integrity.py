"""Regression tests for the catalog's integrity defects (issue 9, items 5-9):
sealed commit records, fsck that never deletes committed data, latest
versions taken from the log, gaps in the log, size limits.  Each test is
named after the defect it pins."""
import json
import os

from conftest import tree_snapshot, rec, vfile, commit_n

def test_record_time_digit_change_is_integrity_error(udr):
    commit_n(udr, "t", 3)
    r2 = json.loads(rec(udr, 2).read_text())
    at = r2["time"]
    before = udr.ok("show", "t", "--at", at).out
    p = rec(udr, 2)
    s = p.read_text()
    i = s.index('"time_ms":') + len('"time_ms":') + 3
    s = s[:i] + ("1" if s[i] != "1" else "2") + s[i + 1:]
    p.write_text(s)
    r = udr("show", "t", "--at", at)
    assert r.code == 4 and "check does not match" in r.stderr, r
    assert udr("log").code == 4
    r = udr("fsck")
    assert r.code == 4 and "commit 2" in r.out, r
    assert before  # the pristine answer existed


def test_record_key_bit_flip_is_integrity_error(udr):
    commit_n(udr, "t", 2)
    p = rec(udr, 2)
    b = bytearray(p.read_bytes())
    i = b.index(b'"message"') + 2
    b[i] ^= 0x01  # "message" -> "lessage": the message would silently vanish
    p.write_bytes(bytes(b))
    assert udr("log").code == 4
    assert udr("show", "t", "2").code == 4
    assert udr("fsck").code == 4


def test_record_every_single_bit_flip_is_caught(udr):
    commit_n(udr, "t", 2)
    p = rec(udr, 2)
    good = p.read_bytes()
    show = udr.ok("show", "t", "2").out
    # every bit of a few positions across the record, including the seal
    for pos in sorted({0, 1, 10, len(good) // 3, len(good) // 2, len(good) - 80, len(good) - 40,
                       len(good) - 3, len(good) - 2, len(good) - 1}):
        for bit in range(8):
            b = bytearray(good)
            b[pos] ^= 1 << bit
            p.write_bytes(bytes(b))
            r = udr("show", "t", "2")
            assert r.code == 4 or (r.code == 0 and r.out == show), (pos, bit, r)
            assert r.code == 4, (pos, bit, r)
    p.write_bytes(good)
    udr.ok("fsck")


def test_fsck_keeps_version_file_of_lost_record(udr):
    commit_n(udr, "t", 3)
    os.unlink(rec(udr, 3))
    assert udr("show", "t").code == 4
    r = udr("fsck")
    assert r.code == 4 and "HEAD" in r.out, r
    assert vfile(udr, "t", 3).exists()  # committed data is never deleted
    r = udr("show", "t")
    assert r.code == 4, r  # never version 2 with exit 0
    assert udr("commit", "t", "--next", udr.put(b"y")).code == 4


def test_deleted_latest_file_and_cache_never_reuse_version(udr):
    commit_n(udr, "t", 3)
    os.unlink(vfile(udr, "t", 3))
    latest = udr.root / "catalog/tables/t/LATEST"
    if latest.exists():
        latest.unlink()
    r = udr("versions", "t")
    assert r.code == 4, r
    r = udr("commit", "t", "--next", udr.put(b"again"))
    assert r.code == 4, r
    assert not rec(udr, 4).exists()


def test_deleted_version_8_of_10_never_reused(udr):
    commit_n(udr, "t", 10)
    os.unlink(vfile(udr, "t", 8))
    assert udr.ok("versions", "t").out.split() == [str(i) for i in range(1, 11)]
    assert json.loads(udr.ok("show", "t").out)["version"] == 10
    assert udr("show", "t", "8").code == 4
    assert udr.ok("commit", "t", "--next", udr.put(b"11")).out.strip() == "11"
    os.unlink(vfile(udr, "t", 11))
    assert udr("commit", "t", "--next", udr.put(b"12")).code == 4
    assert udr("show", "t").code == 4


def test_log_gap_with_missing_head_refuses_commit(udr):
    commit_n(udr, "t", 10)
    os.unlink(rec(udr, 5))
    os.unlink(udr.root / "catalog" / "HEAD")
    r = udr("commit", "t", "--next", udr.put(b"z"))
    assert r.code == 4 and "gap" in r.stderr, r
    assert not rec(udr, 5).exists()
    assert udr("log").code == 4
    r = udr("fsck")
    assert r.code == 4 and "commit 5" in r.out, r


def test_log_gap_with_stale_head_refuses_commit(udr):
    commit_n(udr, "t", 6)
    (udr.root / "catalog" / "HEAD").write_text("3\n")
    os.unlink(rec(udr, 5))
    r = udr("commit", "t", "--next", udr.put(b"z"))
    assert r.code == 4 and "gap" in r.stderr, r


def test_log_gap_past_head_readers_and_writers_refuse(udr):
    """HEAD names a record, the next is missing and a later one exists (a
    gap past HEAD: damage, as HEAD may lag durable records after a power
    cut).  Readers do not answer HEAD's older state with success; a writer
    refuses before it hands out a sequence number: the gap is never
    filled."""
    commit_n(udr, "t", 6)
    (udr.root / "catalog" / "HEAD").write_text("4\n")
    os.unlink(rec(udr, 5))
    for args in (("show", "t"), ("log", "--json")):
        r = udr(*args)
        assert r.code == 4 and "gap" in r.stderr, r
    r = udr("commit", "t", "--next", udr.put(b"z"))
    assert r.code == 4 and "gap" in r.stderr, r
    assert not rec(udr, 5).exists()
    r = udr("fsck")
    assert r.code == 4, r


def test_oversized_message_refused_before_writing(udr, tmp_path):
    h = udr.put(b"m")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"message": "m" * ((1 << 20) + 1),
                                "tables": [{"table": "t", "chunks": [h]}]}))
    snap = tree_snapshot(udr.root / "catalog")
    r = udr("commit", "--spec", spec)
    assert r.code == 2, r
    assert "longer than" in r.stderr, r
    assert tree_snapshot(udr.root / "catalog") == snap
    udr.ok("commit", "t", "--next", h)
    udr.ok("log")


def test_checkpoints_deleted_or_damaged_give_the_same_answers(udr):
    # 150 commits over 3 tables cross two checkpoints (every 64 commits)
    hs = [udr.put(b"%d" % i) for i in range(3)]
    for i in range(150):
        udr.ok("commit", "t%d" % (i % 3), "--next", hs[i % 3])
    states = sorted((udr.root / "catalog" / "state").iterdir())
    assert [p.name for p in states] == ["%020d.json" % 64, "%020d.json" % 128]
    want = {t: json.loads(udr.ok("show", t).out)["version"] for t in ("t0", "t1", "t2")}
    assert want == {"t0": 50, "t1": 50, "t2": 50}
    at = json.loads(udr.ok("show", "t0", "10").out)["created"]
    want_at = udr.ok("show", "t1", "--at", at).out
    states[1].unlink()
    b = bytearray(states[0].read_bytes())
    b[20] ^= 4
    states[0].write_bytes(bytes(b))
    for t in want:
        assert json.loads(udr.ok("show", t).out)["version"] == want[t]
    assert udr.ok("show", "t1", "--at", at).out == want_at
    assert udr.ok("tables").out.split() == ["t0", "t1", "t2"]
    r = udr("fsck")
    assert r.code == 4 and "checkpoint" in r.out, r  # the damaged one
    udr.ok("fsck")  # rewritten from the log
    assert states[1].exists()
    assert udr.ok("commit", "t0", "--next", hs[0]).out.strip() == "51"


def test_format1_log_is_read_and_moved_on(udr):
    """A catalog written by an older udr (format-1 records: no seal, no
    window) stays readable, and the first new commit checkpoints it."""
    commit_n(udr, "a", 3)
    commit_n(udr, "b", 2)
    for seq in range(1, 6):
        p = rec(udr, seq)
        o = json.loads(p.read_text())
        for k in ("check", "prev", "base", "base_state", "window"):
            o.pop(k, None)
        o["format"] = 1
        p.write_text(json.dumps(o, separators=(",", ":")) + "\n")
    assert json.loads(udr.ok("show", "a").out)["version"] == 3
    assert udr.ok("versions", "b").out.split() == ["1", "2"]
    udr.ok("fsck")
    assert udr.ok("commit", "b", "--next", udr.put(b"b3")).out.strip() == "3"
    assert (udr.root / "catalog" / "state" / ("%020d.json" % 5)).exists()
    assert json.loads(udr.ok("show", "a").out)["version"] == 3
    assert json.loads(udr.ok("show", "b").out)["version"] == 3
    udr.ok("fsck")
    # a format-1 record can't be passed off by damaging a format-2 seal
    p = rec(udr, 6)
    s = p.read_text().replace('"check"', '"chuck"')
    p.write_text(s)
    assert udr("show", "b").code == 4


def test_commit_refuses_damaged_content(udr, tmp_path):
    data = os.urandom(300000)
    f = tmp_path / "d.bin"
    f.write_bytes(data)
    h = udr.ok("put", f).out.strip()
    udr.damage(h, "flip")
    r = udr("commit", "t", "--next", h)
    assert r.code == 4 and "damaged" in r.stderr, r
    assert udr("show", "t").code != 0  # nothing committed
    udr.ok("put", f)  # the re-put repairs it
    udr.ok("commit", "t", "--next", h)
    assert udr.ok("get", h).stdout == data


def test_reset_head_is_the_deliberate_way_out(udr):
    commit_n(udr, "t", 3)
    head = udr.root / "catalog" / "HEAD"
    head.write_text("7\n")  # damaged: names a record that was never made
    assert udr("show", "t").code == 4
    assert udr("fsck").code == 4
    assert head.read_text() == "7\n"  # evidence kept
    r = udr("fsck", "--reset-head")
    assert r.code == 0 and "reset HEAD from 7 to 3" in r.out, r
    assert json.loads(udr.ok("show", "t").out)["version"] == 3
    # a lost last record leaves its version file, naming the commit: refused
    os.unlink(rec(udr, 3))
    r = udr("fsck", "--reset-head")
    assert r.code == 4 and "names commit 3" in r.stderr, r
    assert vfile(udr, "t", 3).exists()


def test_upgrade_format1_catalog_to_group_commit(udr):
    """A format-1 catalog (lock held across the flushes, HEAD after every
    commit) is read and written as before, and `udr upgrade` moves it to
    format 2 (group commit, HEAD the durable horizon) in place."""
    hs = commit_n(udr, "a", 3)
    cat = udr.root / "catalog"
    (cat / "config.json").write_text('{"format":1,"kind":"udr-catalog"}\n')
    for name in ("inflight", "sync"):
        (cat / name).unlink()
    assert udr.ok("commit", "a", "--next", hs[0]).out.strip() == "4"
    assert not (cat / "inflight").exists()  # the format-1 protocol
    assert (cat / "HEAD").read_text().strip() == "4"
    r = udr.ok("upgrade")
    assert "catalog" in r.out, r
    cfg = (cat / "config.json").read_text()
    assert json.loads(cfg[: cfg.index(',"check"')] + "}")["format"] == 2
    assert (cat / "inflight").exists() and (cat / "sync").exists()
    assert udr.ok("versions", "a").out.split() == ["1", "2", "3", "4"]
    assert udr.ok("commit", "a", "--next", hs[1]).out.strip() == "5"
    assert int((cat / "HEAD").read_text().split()[0]) == 5  # fixed width, with a check
    udr.ok("fsck")
    assert "catalog" not in udr.ok("upgrade").out  # already current


def test_torn_head_is_recovered(udr):
    """Format 2 writes HEAD in place with a check of its number: a HEAD
    whose check fails (a write torn by a crash) is unusable, not damage;
    readers recover past it and fsck rewrites it."""
    commit_n(udr, "a", 3)
    head = udr.root / "catalog" / "HEAD"
    head.write_text("%020d %016x\n" % (2, 12345))
    assert json.loads(udr.ok("show", "a").out)["version"] == 3
    assert udr.ok("versions", "a").out.split() == ["1", "2", "3"]
    udr.ok("fsck")
    assert int(head.read_text().split()[0]) == 3
