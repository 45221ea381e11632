"""SQL writes through Database.sql: versions, messages, transactions over
several calls, and two sessions writing one table (first committer wins)."""

import pytest

import udr

pytestmark = pytest.mark.skipif(not udr.HAVE_QUERY, reason="built without the query module")


@pytest.fixture
def users(db):
    db.sql("CREATE TABLE users AS SELECT range AS id, range * 10 AS score FROM range(1, 6)",
           message="create")
    return db


def scores(db):
    return db.sql("SELECT id, score FROM users ORDER BY id").fetchall()


def test_writes_commit_versions_with_messages(users):
    users.sql("UPDATE users SET score = ? WHERE id = ?", [0, 2], message="zero")
    users.sql("DELETE FROM users WHERE id = 5")
    assert scores(users) == [(1, 10), (2, 0), (3, 30), (4, 40)]
    log = users.sql("SELECT new_version, message FROM udr_log ORDER BY seq").fetchall()
    assert log == [(1, "create"), (2, "zero"), (3, None)]


def test_a_transaction_reads_its_writes_through_its_branch_head(users):
    """Inside a transaction, NAME@latest and NAME@main (the session's branch,
    as its head stands for the transaction) read the transaction's writes,
    as the bare name does and as a write through NAME@main changes them; a
    version number and another writer's commits do not move (snapshot); a
    table the transaction made is found, one it dropped is not."""
    other = udr.open(users.path)
    try:
        users.sql("BEGIN")
        users.sql("INSERT INTO users VALUES (6, 60)")
        for ref in ("users", "users@latest", "users@main", '"users@branch:main"'):
            assert users.sql("SELECT count(*) FROM " + ref).fetchone() == (6,), ref
        assert users.sql("SELECT count(*) FROM users@1").fetchone() == (5,)
        users.sql("UPDATE users@main SET score = -6 WHERE id = 6")
        assert users.sql("SELECT score FROM users@main WHERE id = 6").fetchone() == (-6,)
        # a row's old and new values side by side: the snapshot's version and the transaction's
        assert users.sql("SELECT a.score, b.score FROM users@1 a JOIN users@latest b USING (id) "
                         "WHERE id = 1").fetchone() == (10, 10)
        other.sql("INSERT INTO users VALUES (7, 70)")  # commits: users@latest keeps the snapshot
        assert users.sql("SELECT count(*) FROM users@latest").fetchone() == (6,)
        users.sql("CREATE TABLE made AS SELECT 7 AS y")
        assert users.sql("SELECT y FROM made@latest").fetchone() == (7,)
        users.sql("DROP TABLE made")
        with pytest.raises(udr.NotFoundError):
            users.sql("SELECT * FROM made@latest")
        users.sql("ROLLBACK")
    finally:
        other.close()
    assert users.sql("SELECT count(*) FROM users@latest").fetchone() == (6,)  # the other writer's row


def test_a_transaction_reads_versions_and_times_at_its_snapshot(users):
    """t@N and t@TIME read versions committed after the transaction's
    snapshot (another session's commit), and a write could store what the
    snapshot never saw (a helper's review); t@commit:N was refused."""
    import datetime as dt
    other = udr.open(users.path)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    users.sql("CREATE TABLE audit AS SELECT 0 AS score WHERE false")
    users.sql("BEGIN")
    scores(users)
    other.sql("UPDATE users SET score = score + 1000")         # users@2, after the snapshot
    with pytest.raises(udr.NotFoundError, match="no version 2 at this snapshot"):
        users.read("users", 2).fetchall()   # db.read resolved at the head (a review of this stop)
    with pytest.raises(udr.NotFoundError, match="no version 2 at this snapshot"):
        users.sql("SELECT * FROM users@2").fetchall()
    users.sql("ROLLBACK")
    users.sql("BEGIN")
    before = scores(users)
    other.sql("UPDATE users SET score = score + 1000")         # users@3, after the snapshot
    assert users.sql(f"SELECT id, score FROM users@{today} ORDER BY id").fetchall() == before
    users.sql(f"INSERT INTO audit SELECT score FROM users@{today} WHERE id = 1")
    users.sql("COMMIT")
    assert users.sql("SELECT score FROM audit").fetchall() == [(1010,)]
    assert users.sql("SELECT score FROM users@3 WHERE id = 1").fetchall() == [(2010,)]
    other.close()


def test_versions_pin_of_the_head_reads_as_name_at_latest(users):
    """versions={'users': 'latest'} (or None, or the call's branch) reads what
    users@latest reads: in a transaction, its writes; a number, that version
    (review s29: the pin read the committed rows while users@latest read the
    transaction's)."""
    users.sql("BEGIN")
    try:
        users.sql("DELETE FROM users WHERE id > 2")
        for pin in ("latest", None, "main", "branch:main"):
            got = users.sql("SELECT count(*) FROM users", versions={"users": pin}).fetchone()
            assert got == (2,), pin
        assert users.sql("SELECT count(*) FROM users", versions={"users": 1}).fetchone() == (5,)
        # a table the transaction made (stop 30: the pin looked for it in
        # the committed catalog and raised NotFoundError)
        users.sql("CREATE TABLE made AS SELECT 7 AS y")
        for pin in ("latest", None, "main"):
            assert users.sql("SELECT y FROM made", versions={"made": pin}).fetchone() == (7,), pin
    finally:
        users.sql("ROLLBACK")
    assert users.sql("SELECT count(*) FROM users", versions={"users": "latest"}).fetchone() == (5,)
    # made is gone with the rollback: the pin says so in udr's words
    for pin in ("latest", None, 1):
        with pytest.raises(udr.NotFoundError, match="table 'made' not found"):
            users.sql("SELECT y FROM made", versions={"made": pin})


@pytest.mark.parametrize("bad", ["INSERT INTO nosuch VALUES (1)",
                                 "INSERT INTO users SELECT * FROM nosuch@latest",
                                 "SELECT * FROM nosuch",
                                 "SELECT * FROM users@99"])
def test_a_failed_statement_fails_the_transaction(users, bad):
    """A statement of a transaction that fails, wherever (its references
    before it runs, DuckDB, a write; review s29: a missing table did not),
    fails the transaction: later statements are refused, COMMIT rolls back
    with an error, nothing is committed."""
    users.sql("BEGIN")
    users.sql("INSERT INTO users VALUES (100, 1000)")
    with pytest.raises(udr.Error):
        users.sql(bad)
    with pytest.raises(udr.InvalidArgumentError, match="failed"):
        users.sql("INSERT INTO users VALUES (101, 1010)")
    with pytest.raises(udr.InvalidArgumentError, match="failed"):
        users.sql("SELECT count(*) FROM users")
    with pytest.raises(udr.Error):
        users.sql("COMMIT")
    assert users.sql("SELECT count(*) FROM users").fetchone() == (5,)
    assert users.sql("SELECT count(*) FROM udr_log").fetchone() == (1,)


def test_a_statement_alone_reads_the_committed_rows_through_latest(users):
    """A statement alone copies only the rows it can change (a partial copy):
    NAME@latest in it still reads every committed row, not that copy."""
    users.sql("UPDATE users SET score = (SELECT max(score) FROM users@latest) WHERE id = 1")
    assert scores(users)[0] == (1, 50)
    users.sql("DELETE FROM users WHERE id = (SELECT min(id) FROM users@main WHERE score < 50)")
    assert [r[0] for r in scores(users)] == [1, 3, 4, 5]


def test_transaction_over_several_calls(users):
    users.sql("BEGIN", message="batch")
    users.sql("INSERT INTO users VALUES (6, 60)")
    users.sql("UPDATE users SET score = -1 WHERE id = 1")
    # the transaction sees its own writes; nothing is committed yet
    assert users.sql("SELECT count(*) FROM users").fetchone() == (6,)
    assert users.sql("SELECT count(*) FROM udr_log").fetchone() == (1,)
    with pytest.raises(udr.InvalidArgumentError):
        users.sql("BEGIN")
    users.sql("COMMIT")
    assert users.sql("SELECT new_version, message FROM udr_log ORDER BY seq DESC LIMIT 1").fetchone() == (2, "batch")
    assert scores(users)[0] == (1, -1) and len(scores(users)) == 6


def test_failed_statement_fails_the_transaction(users):
    users.sql("BEGIN")
    users.sql("DELETE FROM users WHERE id = 1")
    with pytest.raises(udr.InvalidArgumentError):
        users.sql("UPDATE users SET score = 'x'")
    with pytest.raises(udr.InvalidArgumentError):
        users.sql("DELETE FROM users WHERE id = 2")
    with pytest.raises(udr.InvalidArgumentError):
        users.sql("COMMIT")
    assert len(scores(users)) == 5
    users.sql("DELETE FROM users WHERE id = 1")  # the session works again
    assert len(scores(users)) == 4


def test_two_writers_first_committer_wins(users, tmp_path):
    other = udr.open(str(tmp_path / "root"))
    try:
        users.sql("BEGIN")
        users.sql("UPDATE users SET score = 1 WHERE id = 1")
        other.sql("UPDATE users SET score = 2 WHERE id = 2")  # commits first
        with pytest.raises(udr.ConflictError):
            users.sql("COMMIT")
    finally:
        other.close()
    assert scores(users)[:2] == [(1, 10), (2, 2)]
    users.sql("UPDATE users SET score = 1 WHERE id = 1")  # retried: fine
    assert scores(users)[:2] == [(1, 1), (2, 2)]


def test_views_and_macros_of_the_session_read_every_row(users):
    # an UPDATE/DELETE ... WHERE or an INSERT alone copies only the rows it
    # can change; a view or macro reading the table must still see them all
    users.sql("CREATE TEMP VIEW v AS SELECT * FROM users")
    users.sql("CREATE TEMP MACRO top() AS (SELECT max(score) FROM users)")
    users.sql("INSERT INTO users SELECT id + 10, score FROM v")
    assert users.sql("SELECT count(*) FROM users").fetchone() == (10,)
    users.sql("UPDATE users SET score = top() WHERE id = 1")
    users.sql("DELETE FROM users WHERE score < (SELECT avg(score) FROM v) AND id > 10")
    assert scores(users)[0] == (1, 50)
    assert users.sql("SELECT count(*) FROM users").fetchone() == (7,)


def test_dbapi_connection_runs_no_write_transaction(users, tmp_path):
    # a connection only reads UDR tables: a script BEGIN; DELETE ...; COMMIT
    # through cursor.execute committed the DELETE, which rollback() kept
    with udr.connect(str(tmp_path / "root")) as con:
        cur = con.cursor()
        for q in ("BEGIN; DELETE FROM users WHERE id = 2; COMMIT", "START TRANSACTION", "COMMIT",
                  "WITH x AS (SELECT 9, 9) INSERT INTO users SELECT * FROM x",
                  "WITH x AS (SELECT 2 AS id) DELETE FROM users WHERE id IN (SELECT id FROM x)"):
            with pytest.raises(udr.NotSupportedError):
                cur.execute(q)
        con.rollback()
    assert len(scores(users)) == 5


def test_dropped_table_leaves_list_tables(users):
    users.sql("CREATE TABLE other AS SELECT 1 AS x")
    assert users.catalog.list_tables() == ["other", "users"]
    users.sql("DROP TABLE users")
    assert users.catalog.list_tables() == ["other"]
    assert users.catalog.list_versions("users") == [1, 2]  # still readable by number
    assert users.read("users", version=1).fetchall()[0] == (1, 10)
    users.sql("CREATE TABLE users AS SELECT 7 AS id")
    assert users.catalog.list_tables() == ["other", "users"]
    assert users.tables() == ["other", "users"]
    # on a branch: its own tables, its drops
    users.create_branch("dev")
    users.sql("DROP TABLE other", branch="dev")
    assert users.tables(branch="dev") == ["users"] and users.tables() == ["other", "users"]
    with pytest.raises(udr.NotFoundError):
        users.tables(branch="nosuch")


def test_key_condition_reads_only_the_parts_that_may_hold_the_key(db):
    # an UPDATE/DELETE whose condition is "key = N" on an integer column reads
    # only the parts whose statistics admit N (and the first, and parts of
    # less than a row group): every form of it must change exactly the rows
    # a full scan would
    r = 122880  # a row group: parts at least this large are pruned by their statistics
    db.sql(f"CREATE TABLE k AS SELECT range AS id, range * 10 AS v, 'r' || range AS s FROM range(0, {r})")
    for lo in (r, 2 * r, 3 * r):  # one part per INSERT: four parts of disjoint ids
        db.sql(f"INSERT INTO k SELECT range, range * 10, 'r' || range FROM range({lo}, {lo + r})")
    n = 4 * r
    want = {}  # id -> (v, s), or None when deleted

    def check():
        keys = sorted(want)
        got = db.sql(f"SELECT id, v, s FROM k WHERE id IN ({', '.join(map(str, keys))}) ORDER BY id").fetchall()
        assert got == [(i, *want[i]) for i in keys if want[i] is not None]
        total = sum(i * 10 for i in range(n)) + sum(
            (w[0] if w is not None else 0) - i * 10 for i, w in want.items())
        rows = n - sum(1 for w in want.values() if w is None)
        assert db.sql("SELECT count(*), sum(v) FROM k").fetchone() == (rows, total)

    b = 2 * r + 5  # in the third part
    db.sql(f"UPDATE k SET v = -1 WHERE id = {b}")
    want[b] = (-1, f"r{b}")
    db.sql("UPDATE k SET v = -2 WHERE k.id = 3")  # in the first part
    want[3] = (-2, "r3")
    db.sql(f"UPDATE k AS t SET v = -3 WHERE t.ID = {b + 1}")  # alias, another case, a part with a DV
    want[b + 1] = (-3, f"r{b + 1}")
    db.sql("UPDATE k SET v = ? WHERE id = ?", [-4, 4 * r - 1])  # the last row
    want[4 * r - 1] = (-4, f"r{4 * r - 1}")
    db.sql(f"UPDATE k SET v = -5 WHERE {r} = id")  # the first row of the second part
    want[r] = (-5, f"r{r}")
    db.sql(f"UPDATE k SET v = -6 WHERE id = {b}")  # the row moved to a small new part
    want[b] = (-6, f"r{b}")
    db.sql(f"DELETE FROM k WHERE id = {3 * r + 7}")
    want[3 * r + 7] = None
    db.sql("DELETE FROM k WHERE id = -7")  # no part holds it: nothing changes
    db.sql(f"UPDATE k SET v = 0 WHERE id = {n + 100}")
    db.sql("UPDATE k SET s = 'x' WHERE v = 1000")  # not the key form: every part
    want[100] = (1000, "x")
    check()
