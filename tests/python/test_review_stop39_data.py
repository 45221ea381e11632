"""Database.write of in-memory data and the DB-API connection: a helper's
review (stop 39).  Each case committed other data than was given (or read
other data than the snapshot's), with success; now it is exact or refused,
and a refusal commits nothing."""
import datetime

import pytest

import udr

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

UTC = datetime.timezone.utc


def types_of(db, table):
    return [r[1] for r in db.sql("DESCRIBE " + table).fetchall()]


def tables(db):
    return sorted(db.catalog.list_tables())


# ---- 1. NaT in rows and columns is NULL -------------------------------------------------

def test_nat_in_rows_and_columns_is_null(db):
    # a column of aware timestamps with one NaT was VARCHAR holding ISO text
    # and the string 'NaT' (the DataFrame path made it NULL)
    df = pd.DataFrame({"id": [1, 2],
                       "paid_at": pd.to_datetime(["2024-05-01 10:00", None]).tz_localize("UTC")})
    want = [(1, datetime.datetime(2024, 5, 1, 10, tzinfo=UTC)), (2, None)]
    db.write("rows", df.to_dict("records"))
    db.write("cols", {"id": [1, 2], "paid_at": list(df["paid_at"])})
    db.write("frame", df)
    for t in ("rows", "cols", "frame"):
        assert types_of(db, t) == ["BIGINT", "TIMESTAMP WITH TIME ZONE"], t
        assert db.read(t).fetchall() == want, t
    # numpy's NaT and pandas' NA too, and inside lists and dicts
    db.write("np", [{"d": np.datetime64("NaT"), "n": pd.NA, "l": [pd.NaT, datetime.date(2024, 1, 2)],
                     "s": {"k": pd.NaT}},
                    {"d": datetime.date(2024, 1, 1), "n": 5, "l": [], "s": {"k": "x"}}])
    assert types_of(db, "np")[:2] == ["DATE", "BIGINT"]
    assert db.sql("SELECT d, n, l[1] IS NULL, s.k FROM np").fetchall() == \
        [(None, None, True, None), (datetime.date(2024, 1, 1), 5, True, "x")]
    with pytest.raises(ValueError, match="pass None"):
        db.sql("SELECT ?", [pd.NaT])


# ---- 2. a column with no value is VARCHAR; appended strings stay strings ----------------

def test_a_column_with_no_value_is_varchar_and_appends_keep_strings(db):
    # it was JSON, and 'hello' appended later read back as '"hello"'
    db.write("notes", [{"id": 1, "comment": None}])
    db.write("notes", [{"id": 2, "comment": "hello"}, {"id": 3, "comment": "[1, 2]"}], mode="append")
    assert types_of(db, "notes") == ["BIGINT", "VARCHAR"]
    assert db.read("notes").fetchall() == [(1, None), (2, "hello"), (3, "[1, 2]")]
    db.write("df", pd.DataFrame({"id": [1], "comment": [None]}))
    db.write("df", pd.DataFrame({"id": [2], "comment": ["hello"]}), mode="append")
    assert db.read("df").fetchall() == [(1, None), (2, "hello")]
    # a DataFrame column with a dtype keeps its dtype's type
    db.write("typed", pd.DataFrame({"x": [float("nan")], "c": [None]}))
    assert types_of(db, "typed") == ["DOUBLE", "VARCHAR"]
    # inside lists and dicts as well
    db.write("nested", [{"l": [None], "s": {"k": None, "n": 1}}, {"l": [], "s": {"k": None, "n": 2}}])
    assert types_of(db, "nested") == ["VARCHAR[]", "STRUCT(k VARCHAR, n BIGINT)"]
    # all NULL appended to a typed column: NULL
    db.write("notes", [{"id": None, "comment": None}], mode="append")
    assert db.sql("SELECT count(*) FROM notes WHERE id IS NULL").fetchone() == (1,)


# ---- 3. numpy arrays in cells are lists -------------------------------------------------

def test_numpy_arrays_in_cells_are_lists(db):
    # one-element arrays were unwrapped into a DOUBLE column; longer ones
    # failed with numpy's "truth value ... is ambiguous"
    db.write("v1", pd.DataFrame({"id": [1, 2], "vec": [np.array([0.25]), np.array([0.5])]}))
    db.write("v1l", pd.DataFrame({"id": [1, 2], "vec": [[0.25], [0.5]]}))
    assert types_of(db, "v1") == types_of(db, "v1l") == ["BIGINT", "DOUBLE[]"]
    assert db.read("v1").fetchall() == db.read("v1l").fetchall()
    db.write("v2", pd.DataFrame({"id": [1, 2], "vec": [np.array([0.25, 0.5]), None]}))
    assert db.sql("SELECT vec[2] FROM v2 ORDER BY id").fetchall() == [(0.5,), (None,)]
    db.write("v3", [{"m": np.array([[1, 2], [3, 4]], dtype=np.int32), "n": np.int64(7)}])
    assert types_of(db, "v3") == ["BIGINT[][]", "BIGINT"]
    assert db.sql("SELECT m[2][1], n FROM v3").fetchall() == [(3, 7)]
    # an array of numpy datetimes (nanoseconds: ints in tolist()) is refused
    with pytest.raises(TypeError, match="datetime64"):
        db.write("v4", pd.DataFrame({"vec": [np.array(["2024-01-01"], dtype="datetime64[ns]")]}))
    assert "v4" not in tables(db)


# ---- 4. a str or mapping in place of a column -------------------------------------------

@pytest.mark.parametrize("col", ["bob", b"bob", {"x": 1, "y": 2}, {1, 2}, 5])
def test_a_str_or_mapping_in_place_of_a_column_is_refused(db, col):
    # {"name": "bob"} committed the rows 'b', 'o', 'b'; a dict its keys
    with pytest.raises(TypeError, match="sequence of values"):
        db.write("people", {"name": col})
    assert "people" not in tables(db)
    # sequences of all kinds still are columns
    db.write("ok", {"a": (1, 2), "b": range(2), "c": np.array([0.5, 1.5]), "d": pd.Series(["x", "y"])})
    assert db.read("ok").fetchall() == [(1, 0, 0.5, "x"), (2, 1, 1.5, "y")]


# ---- 5. a DataFrame's index ---------------------------------------------------------------

def test_a_dataframe_index_is_kept_when_named(db):
    # the index was dropped, a named one and a MultiIndex's levels too
    df = pd.DataFrame({"user_id": [10, 20], "score": [1.5, 2.5]}).set_index("user_id")
    db.write("scores", df)
    r = db.read("scores")
    assert r.columns == ["user_id", "score"] and r.fetchall() == [(10, 1.5), (20, 2.5)]
    mi = pd.DataFrame({"region": ["eu", "us"], "day": [1, 1], "n": [5, 6]}).set_index(["region", "day"])
    db.write("counts", mi)
    r = db.read("counts")
    assert r.columns == ["region", "day", "n"] and r.fetchall() == [("eu", 1, 5), ("us", 1, 6)]
    # the default RangeIndex (any start) is dropped, as before
    db.write("plain", pd.DataFrame({"a": [1, 2]}))
    db.write("plain", pd.DataFrame({"a": [3, 4]}, index=pd.RangeIndex(2, 4)), mode="append")
    assert db.read("plain").columns == ["a"] and len(db.read("plain")) == 4
    # an unnamed index is row labels: dropped (a filtered or concatenated frame's)
    f = pd.DataFrame({"a": [1, 2, 3]})
    db.write("filtered", f[f.a != 2])
    db.write("filtered", pd.concat([pd.DataFrame({"a": [4]}), pd.DataFrame({"a": [5]})]), mode="append")
    assert db.read("filtered").columns == ["a"] and db.read("filtered").fetchall() == [(1,), (3,), (4,), (5,)]
    # a partly named MultiIndex, a level named like a column: refused,
    # nothing committed
    for bad in (pd.DataFrame({"a": [1]}, index=pd.MultiIndex.from_tuples([(1, "x")], names=["k", None])),
                pd.DataFrame({"a": [1]}, index=pd.Index([5], name="a"))):
        with pytest.raises(ValueError, match="index"):
            db.write("bad", bad)
    assert "bad" not in tables(db)
    db.write("named", pd.DataFrame({"a": [1, 2]}, index=[7, 9]).rename_axis("id"))
    assert db.read("named").fetchall() == [(7, 1), (9, 2)]


# ---- 6. appended ints a DOUBLE column would round ---------------------------------------

def test_appended_ints_a_double_column_would_round_are_refused(db):
    # 2**53 + 1 and 2**63 - 1 appended to a DOUBLE column came back rounded,
    # although a new table of the same values is refused
    db.write("t", [{"x": 0.5}])
    for rows in ([{"x": 2 ** 53 + 1}, {"x": 2 ** 63 - 1}], [{"x": 2 ** 63 - 1}],
                 [{"x": 2 ** 53 + 1}, {"x": 0.25}], pd.DataFrame({"x": np.array([2 ** 53 + 1])})):
        with pytest.raises(udr.InvalidArgumentError, match="does not fit DOUBLE"):
            db.write("t", rows, mode="append")
    with pytest.raises(ValueError):   # inside a list: refused as in a new table
        db.write("t", [{"x": [2 ** 53 + 1, 0.5]}], mode="append")
    assert db.catalog.list_versions("t") == [1]
    # ints a DOUBLE holds exactly are appended as before
    db.write("t", [{"x": 2 ** 60}, {"x": 3}], mode="append")
    assert [r[0] for r in db.read("t").fetchall()] == [0.5, 2.0 ** 60, 3.0]
    # columns that hold them take them exactly
    db.write("b", [{"x": 1}])
    db.write("b", [{"x": 2 ** 53 + 1}, {"x": 2 ** 63 - 1}], mode="append")
    assert [r[0] for r in db.read("b").fetchall()] == [1, 2 ** 53 + 1, 2 ** 63 - 1]
    db.sql("CREATE TABLE v AS SELECT 'a' AS x")
    db.write("v", [{"x": 2 ** 53 + 1}, {"x": 0.5}], mode="append")
    assert db.read("v").fetchall() == [("a",), (str(2 ** 53 + 1),), ("0.5",)]


# ---- 7. DB-API: no scratch table over a UDR table ---------------------------------------

def test_dbapi_create_table_on_a_udr_table_name_is_refused(db):
    # CREATE TABLE t (run as CREATE TEMP TABLE) hid UDR table t from the
    # Database's session: db.sql read the scratch rows, an INSERT
    # "succeeded" into them
    db.write("t", [{"v": 1}])
    db.create_branch("dev")
    db.write("devonly", [{"v": 2}], branch="dev")
    con = udr.connect(db)
    cur = con.cursor()
    for q in ("CREATE TABLE t AS SELECT 42 AS v", "CREATE TABLE IF NOT EXISTS \"T\" (v INT)",
              "CREATE /* c */ TEMP TABLE main.t (v INT)", "CREATE OR REPLACE VIEW t AS SELECT 42 AS v",
              "CREATE TEMPORARY TABLE devonly (v INT)", "CREATE TABLE udr_log (v INT)"):
        with pytest.raises(udr.NotSupportedError, match="UDR table"):
            cur.execute(q)
    cur.execute("CREATE TABLE scratch AS SELECT 42 AS v")
    with pytest.raises(udr.NotSupportedError, match="UDR table"):
        cur.execute("ALTER TABLE scratch RENAME TO t")
    assert cur.execute("SELECT v FROM scratch").fetchall() == [(42,)]
    assert db.sql("SELECT * FROM t").fetchall() == [(1,)]
    assert db.sql("SELECT * FROM devonly", branch="dev").fetchall() == [(2,)]
    db.sql("INSERT INTO t VALUES (5)")
    assert db.catalog.list_versions("t") == [1, 2]
    assert db.read("t").fetchall() == [(1,), (5,)]
    con.close()


# ---- 8. DB-API: a table made after the snapshot -----------------------------------------

def test_dbapi_a_table_made_after_the_snapshot_is_not_found(tmp_path):
    root = str(tmp_path / "r")
    with udr.open(root) as writer:
        writer.write("orders", [{"id": 1}])
        con = udr.connect(root)
        cur = con.cursor()
        assert cur.execute("SELECT count(*) FROM orders").fetchall() == [(1,)]
        snap = con.snapshot
        writer.write("orders", [{"id": 1}, {"id": 2}])
        writer.write("refunds", [{"id": 2}])
        assert cur.execute("SELECT count(*) FROM orders").fetchall() == [(1,)]
        for q in ("SELECT * FROM refunds", "SELECT * FROM orders WHERE id IN (SELECT id FROM refunds)",
                  "SELECT * FROM orders@1, refunds"):
            with pytest.raises(udr.NotFoundError, match="refunds"):
                cur.execute(q)
        # the name elsewhere than as a table read is no read of it
        assert cur.execute("SELECT 'refunds' AS refunds FROM orders").fetchall() == [("refunds",)]
        assert cur.execute("WITH refunds AS (SELECT 7 AS id) SELECT * FROM refunds").fetchall() == [(7,)]
        assert cur.execute("SELECT * FROM refunds@latest").fetchall() == [(2,)]   # explicit: not pinned
        assert con.snapshot == snap
        con.commit()
        assert cur.execute("SELECT count(*) FROM orders JOIN refunds USING (id)").fetchall() == [(1,)]
        con.close()


def test_dataframes_that_wrote_before_the_index_rule_still_write(db):
    """From the review of the index rule: set_index(..., drop=False), an
    index named by an int, and a groupby result appended to the table it
    was always appended to (whose index was never stored) were refused."""
    df = pd.DataFrame({"id": [1, 2], "a": [1.5, 2.5]})
    db.write("t1", df.set_index("id", drop=False))
    assert db.read("t1").columns == ["id", "a"] and db.read("t1").fetchall() == [(1, 1.5), (2, 2.5)]
    db.write("t2", df.rename_axis(0))
    assert db.read("t2").columns == ["id", "a"]
    db.write("t3", [{"a": 0.5}])
    db.write("t3", df.groupby("id")[["a"]].sum(), mode="append")
    assert sorted(db.read("t3").fetchall()) == [(0.5,), (1.5,), (2.5,)]
    # a table that has the index's column gets it on append
    db.write("t4", df.set_index("id"))
    db.write("t4", pd.DataFrame({"id": [3], "a": [3.5]}).set_index("id"), mode="append")
    assert sorted(db.read("t4").fetchall()) == [(1, 1.5), (2, 2.5), (3, 3.5)]
    # a level named like a column of other values: refused
    bad = df.set_index("id", drop=False)
    bad["id"] = [7, 8]
    with pytest.raises(ValueError, match="other values"):
        db.write("t5", bad)
