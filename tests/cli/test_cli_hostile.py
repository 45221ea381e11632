"""Hostile review of the catalog integrity change (sealed records, windows
and checkpoints, fsck that keeps committed data).  Each test pins a way to
make udr answer wrongly with exit 0, lose data that was readable, or hand a
version number out a second time.  They fail on the code they were written
against."""
import json
import os
import shutil

from conftest import rec, vfile

def state(udr, seq):
    return udr.root / "catalog" / "state" / ("%020d.json" % seq)


def format1_catalog(udr):
    """Only a format-1 catalog can be written by an older udr (format 2 -
    group commit - is refused by them): make this store's catalog one."""
    cat = udr.root / "catalog"
    (cat / "config.json").write_text('{"format":1,"kind":"udr-catalog"}\n')
    for name in ("inflight", "sync"):
        if (cat / name).exists():
            (cat / name).unlink()


def older_udr_commit(udr, table, old, chunk):
    """Commit table@old+1 the way an older udr does (FORMAT.md, format-1
    records): the version file, then an unsealed format-1 record with no
    prev/base/window, then LATEST.  HEAD is left alone (older udr refreshed
    it only every 16th commit); readers probe past it."""
    head = int((udr.root / "catalog" / "HEAD").read_text())
    seq = head + 1
    prev = json.loads(rec(udr, head).read_text())
    v = {"format": 1, "table": table, "version": old + 1, "parent": old,
         "created": prev["time"], "created_ms": prev["time_ms"], "commit": seq,
         "message": None, "metadata": {}, "chunks": [chunk]}
    p = vfile(udr, table, old + 1)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(v, separators=(",", ":")) + "\n")
    digest = udr.ok("hash", p).out.strip()
    r = {"format": 1, "seq": seq, "parent": head, "time": prev["time"],
         "time_ms": prev["time_ms"], "branch": "main", "author": "older-udr",
         "message": None,
         "changes": [{"table": table, "old": old, "new": old + 1, "digest": digest}]}
    rec(udr, seq).write_text(json.dumps(r, separators=(",", ":")) + "\n")
    (p.parent / "LATEST").write_text("%d\n" % (old + 1))
    return seq


def test_fsck_overwrites_good_checkpoint_after_one_damaged_record(udr):
    """One damaged record (64) made fsck "repair" checkpoint 64 - which still
    matched the base_state digest of records 65..70 - with a state computed
    from a walk that skipped record 64.  Before fsck every table read fine
    (the checkpoint is the surviving copy of the state at 64); after it,
    tables not in the head's window are unreadable (exit 4)."""
    h = udr.put(b"x\n")
    udr.ok("commit", "a", "--next", h)
    for _ in range(69):
        udr.ok("commit", "t", "--next", h)
    ck = state(udr, 64)
    good = ck.read_bytes()
    p = rec(udr, 64)
    p.write_text(p.read_text().replace('"author":"', '"author":"X', 1))
    # the damage is reported, and readers get the right answer meanwhile
    assert json.loads(udr.ok("show", "a").out)["version"] == 1
    assert udr.ok("tables").out.split() == ["a", "t"]
    r = udr("fsck")
    assert r.code == 4 and "commit 64" in r.out, r
    # fsck must not destroy the intact, digest-verified checkpoint
    assert ck.read_bytes() == good
    assert json.loads(udr.ok("show", "a").out)["version"] == 1
    assert udr.ok("tables").out.split() == ["a", "t"]


def test_fsck_writes_wrong_missing_checkpoint_after_one_damaged_record(udr):
    """Same walk, checkpoint missing: fsck writes a checkpoint that does not
    match the digest the records name (it should rebuild from the records'
    windows, or leave it absent)."""
    h = udr.put(b"x\n")
    udr.ok("commit", "a", "--next", h)
    for _ in range(66):
        udr.ok("commit", "t", "--next", h)
    good = state(udr, 64).read_bytes()
    os.unlink(state(udr, 64))
    p = rec(udr, 64)
    p.write_text(p.read_text().replace('"author":"', '"author":"X', 1))
    assert udr("fsck").code == 4
    assert not state(udr, 64).exists() or state(udr, 64).read_bytes() == good


def test_older_udr_head_reuses_version_number_after_lost_version_file(udr):
    """A format-2 log with one format-1 record at the head (an older udr
    committed last).  The log alone says u is at version 2 (commit 5), and
    the next new commit even checkpoints that (state/6.json), but latest is
    searched in the version files: with u's file 2 lost, `show u` answers
    version 1 with exit 0, `show u --at <commit 5>` too, and `commit u --next`
    hands out version 2 again
    (overwriting the committed version 2) with exit 0."""
    format1_catalog(udr)
    h = udr.put(b"x\n")
    h2 = udr.put(b"y\n")
    for _ in range(3):
        udr.ok("commit", "t", "--next", h)
    udr.ok("commit", "u", "--next", h)
    udr.ok("commit", "u", "--next", h2)
    older_udr_commit(udr, "t", 3, h)
    assert json.loads(udr.ok("show", "u").out)["version"] == 2
    at5 = json.loads(rec(udr, 5).read_text())["time"]
    os.unlink(vfile(udr, "u", 2))
    r = udr("show", "u")
    assert r.code != 0 or json.loads(r.out)["version"] == 2, r
    # time travel to commit 5, whose sealed record made u@2, answers u@1:
    # the state at 5 says 2, but it is clamped to the (wrong) latest
    r = udr("show", "u", "--at", at5)
    assert r.code != 0 or json.loads(r.out)["version"] == 2, r
    r = udr("commit", "u", "--next", h)
    assert r.code != 0, ("version 2 of u handed out a second time", r)


def test_older_udr_head_reuses_table_after_lost_table_dir(udr):
    """Same mixed log; the directory of table u (made by commit 2) is lost.
    `udr tables` silently drops u (exit 0) and `commit u --next` makes
    version 1 of u a second time (exit 0) although record 2 made it."""
    format1_catalog(udr)
    h = udr.put(b"x\n")
    udr.ok("commit", "t", "--next", h)
    udr.ok("commit", "u", "--next", h)
    older_udr_commit(udr, "t", 1, h)
    shutil.rmtree(udr.root / "catalog" / "tables" / "u")
    r = udr("tables")
    assert r.code != 0 or "u" in r.out.split(), r
    r = udr("commit", "u", "--next", h)
    assert r.code != 0, ("version 1 of u handed out a second time", r)
