"""Database.write and parameters: a helper's review (stop 36).  Each case
returned other data than was given, with success; now it is exact or
refused."""
import datetime
from decimal import Decimal as D

import pytest

import udr

pd = pytest.importorskip("pandas")


def types_of(db, table):
    """As DESCRIBE gives them (and udr.schema records them)."""
    return [r[1] for r in db.sql("DESCRIBE " + table).fetchall()]


@pytest.mark.parametrize("cols", [{"id": [1], "ID": [2], "name": ["x"]}, {"": [1], "b": [2]},
                                  {"a\0b": ["x"], "c": [1]}])
def test_column_names_sql_cannot_keep_apart_are_refused(db, cols):
    # "ID" came back renamed ID_1 and all NULL; "" as C0, NULL
    with pytest.raises(ValueError):
        db.write("t", pd.DataFrame(cols))
    rows = [{k: v[0] for k, v in cols.items()}]
    with pytest.raises(ValueError):
        db.write("t", rows)
    assert "t" not in [t.name if hasattr(t, "name") else t for t in db.tables()]


def test_strings_inside_lists_and_dicts_stay_strings(db):
    # 'Infinity' in a list was the DATE 1900-01-01, a 7-digit fraction lost
    # a digit as a TIME, Decimal('Infinity') was a DATE
    db.write("t", [{"a": ["Infinity", " 2024-01-01"], "b": {"k": "10:00:00.1234567", "n": 1},
                    "c": D("Infinity"), "l": [{"x": "2024-1-1", "y": 2.5}]},
                   {"a": [], "b": {"k": None, "n": 2}, "c": D("-Infinity"), "l": [{"x": "u", "y": 1}]}])
    # nested values come back as DuckDB's text of them
    r = db.sql("SELECT a[1], a[2], b.k, b.n, c::VARCHAR, l[1].x, l[1].y FROM t").fetchall()
    assert r == [("Infinity", " 2024-01-01", "10:00:00.1234567", 1, "Infinity", "2024-1-1", 2.5),
                 (None, None, None, 2, "-Infinity", "u", 1.0)]
    assert types_of(db, "t") == ["VARCHAR[]", 'STRUCT(k VARCHAR, n BIGINT)', "VARCHAR",
                                 "STRUCT(x VARCHAR, y DOUBLE)[]"]


@pytest.mark.parametrize("rows", [[{"a": [2 ** 64 + 1]}], [{"a": {"k": 2 ** 64 + 1}}],
                                  [{"a": [2 ** 53 + 1, 0.5]}], [{"a": {"k": 2 ** 53 + 1}}, {"a": {"k": 0.5}}],
                                  [{"a": 9007199254740993}, {"a": 0.5}]])
def test_integers_a_double_would_round_are_refused(db, rows):
    # [2**64 + 1] came back as [1.8446744073709552e+19]; 2**53 + 1 beside a
    # float as 2**53
    with pytest.raises(ValueError):
        db.write("t", rows)
    # exact ones are written
    db.write("u", [{"a": [2 ** 53, 0.5]}, {"a": [2 ** 60]}])
    assert db.sql("SELECT a[1]::HUGEINT FROM u").fetchall() == [(2 ** 53,), (2 ** 60,)]


def test_a_dataframe_column_without_values_takes_its_dtype(db):
    # an all-NaN float column was JSON, and a later append's floats read as text
    df = pd.DataFrame({"x": [float("nan")], "y": pd.array([None], dtype="Int64"), "z": [pd.NaT],
                       "b": pd.array([None], dtype="boolean")})
    db.write("t", df)
    assert types_of(db, "t") == ["DOUBLE", "BIGINT", "TIMESTAMP_NS", "BOOLEAN"]
    db.write("t", pd.DataFrame({"x": [0.5], "y": pd.array([3], dtype="Int64"),
                                "z": [pd.Timestamp("2024-01-01")], "b": [True]}), mode="append")
    assert db.sql("SELECT x, y FROM t WHERE x IS NOT NULL").fetchall() == [(0.5, 3)]


@pytest.mark.parametrize("params", [[D("1E+50"), D("9E+49")], [10 ** 40, 9 * 10 ** 39], [D("1E-40")],
                                    [D("NaN")], [pd.Timestamp("2024-01-01 00:00:00.000000999")]])
def test_parameters_no_type_holds_are_refused(db, params):
    # bound as text they compared as strings; a Timestamp lost its nanoseconds
    with pytest.raises(ValueError):
        db.sql("SELECT " + ", ".join("?" for _ in params), params)


def test_an_aware_datetime_near_year_one_binds(db):
    # raised OverflowError from the conversion
    v = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
    assert db.sql("SELECT ? = ?::TIMESTAMPTZ", [v, "0001-01-01 00:00:00+05"]).fetchone() == (True,)
    assert db.sql("SELECT ?", [pd.Timestamp("2024-01-01 00:00:00.000001")]).fetchone()[0] == \
        datetime.datetime(2024, 1, 1, 0, 0, 0, 1)


def test_an_append_with_a_key_the_struct_lacks_is_refused(db):
    # {'x': 2, 'y': 3} was stored as {'x': 2}; {'z': 'lost'} as {'x': NULL}
    db.write("t", [{"id": 1, "a": {"x": 1}}])
    for extra in ({"x": 2, "y": 3}, {"z": "lost"}):
        with pytest.raises(udr.InvalidArgumentError):
            db.write("t", [{"id": 2, "a": extra}], mode="append")
    db.write("t", [{"id": 2, "a": {"x": 2}}], mode="append")
    assert db.sql("SELECT id, a.x FROM t ORDER BY id").fetchall() == [(1, 1), (2, 2)]


def test_values_of_a_type_with_no_way_into_the_column_are_named(db):
    # the message was DuckDB's binder error on the import's own check SQL
    db.sql("CREATE TABLE t (a TIME, c DATE)")
    with pytest.raises(udr.InvalidArgumentError, match="column 'a' is TIME: the data's TIMESTAMP values"):
        db.write("t", [{"a": datetime.datetime(2024, 1, 1, 3), "c": datetime.date(2020, 1, 1)}], mode="append")
    db.write("t", [{"a": datetime.time(3), "c": datetime.datetime(2020, 1, 1)}], mode="append")
    assert db.sql("SELECT * FROM t").fetchall() == [(datetime.time(3), datetime.date(2020, 1, 1))]


def test_a_review_of_this_change(db):
    """What the first version of these checks refused that had worked:
    dicts appended to MAP columns (declared STRUCT, no cast to MAP), ints
    beside floats appended to a DECIMAL column (read as DECIMAL: exact),
    a UHUGEINT parameter, Decimals longer than 38 digits only by zeros."""
    db.sql("CREATE TABLE t AS SELECT 1 AS id, MAP {'a': 1} AS m, [MAP {'x': 'y'}] AS lm, {'m': MAP {'q': 1}} AS sm")
    db.write("t", [{"id": 2, "m": {"k": 2}, "lm": [{"z": "w"}], "sm": {"m": {"r": 3}}}], mode="append")
    assert db.sql("SELECT m::VARCHAR, lm::VARCHAR, sm.m::VARCHAR FROM t WHERE id = 2").fetchall() == \
        [("{k=2}", "[{z=w}]", "{r=3}")]
    db.sql("CREATE TABLE dd AS SELECT 1.5::DECIMAL(20,1) AS a")
    db.write("dd", [{"a": 9007199254740993}, {"a": 0.5}], mode="append")
    assert db.sql("SELECT a::VARCHAR FROM dd ORDER BY a").fetchall() == [("0.5",), ("1.5",), ("9007199254740993.0",)]
    assert db.sql("SELECT ?::UHUGEINT = 170141183460469231731687303715884105728::UHUGEINT", [2 ** 127]).fetchall() \
        == [(True,)]
    assert db.sql("SELECT ?, ?", [D("-0E-50"), D("1." + "0" * 40)]).fetchall() == [(D(0), D(1))]
