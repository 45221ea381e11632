"""A part rewritten in place while a session has it open (a helper's
review, stop 37): the next statement of that session returned the new
bytes' rows, exit 0, because a part was verified once per session."""
import os

import pytest

import udr


def test_a_part_changed_in_place_is_refused_by_the_open_session(tmp_path):
    root = str(tmp_path / "s")
    db = udr.open(root, create=True)
    db.sql("CREATE TABLE t AS SELECT range AS id, range * 2 AS x FROM range(300000)")
    db.sql("UPDATE t SET x = -1 WHERE id % 100 = 7")
    q = "SELECT count(*), sum(x), sum(id) FROM t@2"
    want = db.sql(q).fetchall()
    parts = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "chunks"))
             for f in fs if len(f) == 64 and os.path.getsize(os.path.join(d, f)) > 100000]
    assert parts, "the table's part is one plain file, read in place"
    path = max(parts, key=os.path.getsize)
    st = os.stat(path)
    with open(path, "r+b") as f:  # one bit, same size and modification time
        f.seek(20000)
        b = f.read(1)
        f.seek(20000)
        f.write(bytes([b[0] ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(udr.IntegrityError):
        db.sql(q).fetchall()
    with open(path, "r+b") as f:  # put back: the session reads it again
        f.seek(20000)
        f.write(b)
    assert db.sql(q).fetchall() == want
