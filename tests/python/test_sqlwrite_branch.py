"""SQL writes on a branch through Database.sql(branch=...): isolation from
main, first committer wins between two sessions on one branch, writers on
other branches never conflict, a transaction stays on its branch."""

import pytest

import udr

pytestmark = pytest.mark.skipif(not udr.HAVE_QUERY, reason="built without the query module")


@pytest.fixture
def dev(db):
    db.sql("CREATE TABLE users AS SELECT range AS id, range * 10 AS score FROM range(1, 6)")
    db.create_branch("dev")
    return db


def scores(db, branch=None):
    return db.sql("SELECT id, score FROM users ORDER BY id", branch=branch).fetchall()


def test_writes_with_branch_commit_on_the_branch(dev):
    dev.sql("UPDATE users SET score = 0 WHERE id = 2", branch="dev", message="dev zero")
    assert scores(dev, "dev")[1] == (2, 0)
    assert scores(dev)[1] == (2, 20)  # branch=None: main again
    assert sorted(dev.read("users").fetchall())[1] == (2, 20)
    assert sorted(dev.read("users", branch="dev").fetchall())[1] == (2, 0)
    last = dev.sql("SELECT branch, message FROM udr_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert last == ("dev", "dev zero")
    with pytest.raises(udr.NotFoundError):
        dev.sql("DELETE FROM users", branch="nosuch")
    with pytest.raises(udr.InvalidArgumentError):
        dev.sql("DELETE FROM users", branch="bad..name")
    assert len(scores(dev)) == 5 and len(scores(dev, "dev")) == 5


def test_two_writers_on_one_branch_first_committer_wins(dev, tmp_path):
    other = udr.open(str(tmp_path / "root"))
    try:
        dev.sql("BEGIN", branch="dev")
        dev.sql("UPDATE users SET score = 1 WHERE id = 1", branch="dev")
        # a commit on main does not conflict with a transaction on dev
        other.sql("UPDATE users SET score = 3 WHERE id = 3")
        other.sql("UPDATE users SET score = 2 WHERE id = 2", branch="dev")  # commits first
        with pytest.raises(udr.ConflictError):
            dev.sql("COMMIT", branch="dev")
    finally:
        other.close()
    assert scores(dev, "dev")[:3] == [(1, 10), (2, 2), (3, 30)]
    assert scores(dev)[:3] == [(1, 10), (2, 20), (3, 3)]
    # a transaction's calls name its branch: another (or none) is refused
    dev.sql("BEGIN", branch="dev")
    dev.sql("UPDATE users SET score = 1 WHERE id = 1", branch="dev")
    with pytest.raises(udr.InvalidArgumentError):
        dev.sql("UPDATE users SET score = 4 WHERE id = 4")
    dev.sql("COMMIT", branch="dev")
    assert scores(dev, "dev")[:4] == [(1, 1), (2, 2), (3, 30), (4, 40)]
    assert scores(dev)[3] == (4, 40)


def test_a_transaction_keeps_its_branch(dev):
    dev.sql("BEGIN", branch="dev")
    dev.sql("DELETE FROM users WHERE id = 5", branch="dev")
    with pytest.raises(udr.InvalidArgumentError):
        dev.sql("DELETE FROM users WHERE id = 4", branch="main_other")
    dev.sql("COMMIT", branch="dev")
    assert len(scores(dev, "dev")) == 4 and len(scores(dev)) == 5


def test_a_transaction_on_a_branch_reads_its_writes_through_that_branch_only(dev):
    """In a transaction on dev, users@dev, users@branch:dev and users@latest
    read its writes; users@main reads main's committed rows."""
    dev.sql("BEGIN", branch="dev")
    dev.sql("DELETE FROM users WHERE id > 2", branch="dev")
    for ref in ("users", "users@dev", '"users@branch:dev"', "users@latest"):
        assert dev.sql("SELECT count(*) FROM " + ref, branch="dev").fetchone() == (2,), ref
    assert dev.sql("SELECT count(*) FROM users@main", branch="dev").fetchone() == (5,)
    dev.sql("COMMIT", branch="dev")
    assert len(scores(dev, "dev")) == 2 and len(scores(dev)) == 5
