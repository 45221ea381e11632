"""Conversion of in-memory rows to a temporary NDJSON file for Database.write.

Called by the C extension (udr._udr) when Database.write gets data that is
not a file path: a list of dicts (rows), a dict of columns, or a pandas
DataFrame.  NDJSON keeps the JSON types, so DuckDB reads int as BIGINT,
float as DOUBLE, bool as BOOLEAN, str as VARCHAR, None as NULL, and nested
lists/dicts as LIST/STRUCT.  Values JSON has no type for are written as
text, and a column whose values are all of one such kind is read as its
type (the column types returned with the file):

    aware datetime (pandas Timestamp with tz) -> TIMESTAMP WITH TIME ZONE
    naive datetime (pandas Timestamp)         -> TIMESTAMP (TIMESTAMP_NS
                                                 when nanoseconds are set)
    date -> DATE, time -> TIME, uuid.UUID -> UUID,
    decimal.Decimal -> DECIMAL(p, s) wide enough for every value (p <= 38)

A column of str is VARCHAR whatever the strings look like (DuckDB would
guess dates, times and UUIDs in them, and change them); so are strings
inside lists and dicts (a column of them is declared as its LIST/STRUCT
type), and a DataFrame column with no value has its dtype's type.  A column
(or a list's elements, a dict's field) with no value but None has no type
to take from its values: it is VARCHAR (it was JSON, and a str appended to
it read back quoted), a DataFrame column its dtype's type when the dtype
has one.  A column that mixes kinds is VARCHAR: each value's text (a
number's digits, true or false, an ISO date; nested values as JSON).  bytes
cannot be written (rows go through NDJSON, where a BLOB is text): write a
Parquet file.

Missing values: None, pandas.NaT, pandas.NA and numpy's datetime64('NaT') /
timedelta64('NaT') are NULL wherever they are (rows, columns, DataFrames,
inside lists and dicts); in a DataFrame NaN is NULL too (a float NaN in
rows or columns is refused: NDJSON has no NaN).  A numpy array is a list
(a one-element array is a list of one, never its element); numpy numbers
are Python numbers; an array or scalar of numpy datetimes that would not
come back as a datetime (nanoseconds) is refused.

A dict of columns maps each name to a sequence of values (a list, tuple,
numpy array, pandas Series ...); a str, bytes, dict or set in its place is
refused (a str was split into one row per character).

A DataFrame's index: an index without a name is row labels and dropped
(a RangeIndex, or a filtered or concatenated frame's); a named index, or a
MultiIndex whose levels all have names, is kept as columns before the
others, as pandas' to_parquet does (a level named like a column is
refused); a MultiIndex with an unnamed level is refused: name its levels
(df.rename_axis([...])) or drop it (df.reset_index(drop=True)).

An append reads the rows with the table's types, checked by the import; an
int a DOUBLE does not hold exactly (2**53 + 1) is declared as what it is
(BIGINT, or beside floats a DECIMAL wide enough for them), so that a DOUBLE
column refuses it rather than rounding it.
"""

import datetime
import decimal
import json
import math
import os
import tempfile
import uuid
from collections.abc import Mapping

__all__ = ["write_temp", "param_form"]


def _nanos(v):
    return getattr(v, "nanosecond", 0)


_PLAIN = frozenset((str, int, float, bool))


def _array(v):
    """A numpy array as a list (nested for more dimensions): a cell of
    one-element arrays was unwrapped into a scalar column, longer ones
    failed with numpy's "truth value ... is ambiguous"."""
    kind = v.dtype.kind
    if kind in "biufUS":
        return v.tolist()
    if kind == "O":
        return [_norm(x) for x in v.tolist()] if v.ndim else _norm(v.item())
    raise TypeError("cannot write a numpy array of dtype %s (a list of %s): pass a list of Python "
                    "values (datetime, pandas Timestamp ...)" % (v.dtype, v.dtype))


def _norm(v):
    """v as written: pandas/numpy missing values (NaT, NA, datetime64('NaT'))
    None, numpy arrays lists, numpy numbers Python ones; inside lists and
    dicts too."""
    t = type(v)
    if v is None or t in _PLAIN:
        return v
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    mod = t.__module__ or ""
    if mod.startswith("pandas"):
        # NaT is a datetime whose text is 'NaT' (a column of aware
        # timestamps with one NaT was VARCHAR)
        return None if t.__name__ in ("NaTType", "NAType") else v
    if mod == "numpy":
        import numpy
        if isinstance(v, numpy.ndarray):
            return _array(v)
        if isinstance(v, (numpy.datetime64, numpy.timedelta64)):
            if numpy.isnat(v):
                return None
            x = v.item()
            if isinstance(x, int):
                # nanoseconds: item() is a count of them
                raise TypeError("cannot write %r: a numpy %s in nanoseconds has no Python value (pass a "
                                "pandas Timestamp)" % (v, t.__name__))
            return x
        if isinstance(v, (numpy.bool_, numpy.integer, numpy.floating)):
            return v.item()
    return v


def _kind(v):
    """The kind of a value JSON has no type for (None for JSON's own)."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None and v.utcoffset() is not None:
            return "tz"
        return "naive_ns" if _nanos(v) else "naive"
    if isinstance(v, datetime.date):
        return "date"
    if isinstance(v, datetime.time):
        return "time" if v.tzinfo is None else "other"
    if isinstance(v, uuid.UUID):
        return "uuid"
    if isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("bytes values cannot be written from Python rows (NDJSON has no "
                        "binary type); write a Parquet file instead")
    if isinstance(v, decimal.Decimal):
        return "decimal" if v.is_finite() else "other"
    return None


def _text(v, kind):
    if kind == "tz" and _nanos(v):
        raise ValueError("cannot write %r: TIMESTAMP WITH TIME ZONE holds microseconds, the "
                         "nanoseconds would be lost" % (v,))
    if kind == "decimal":
        return format(v, "f")
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    return str(v)


def _decimal_digits(d):
    """(digits before the point, digits after) of a finite Decimal."""
    _sign, digits, exp = d.as_tuple()
    scale = max(0, -exp)
    whole = max(0, len(digits) + exp)
    return whole, scale


_LEAF_TYPES = {"str": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN"}


class _Shape:
    """The type of a nested column's values, merged over its rows: DuckDB
    guessed types in strings inside lists and dicts ('Infinity' in a list
    became DATE 1900-01-01, '10:00:00.1234567' a TIME), as it did in str
    columns.  Only lists, dicts and JSON's own scalars have a shape; any
    other value inside (a date, a Decimal ...) leaves the column to DuckDB's
    detection, as before."""

    def __init__(self):
        self.ok = True
        self.kind = None     # "list", "dict", or a leaf kind
        self.leaves = set()
        self.elem = None     # list: _Shape of the elements
        self.fields = None   # dict: name -> _Shape

    def see(self, v):
        if not self.ok or v is None:
            return
        if isinstance(v, (list, tuple)):
            k = "list"
        elif isinstance(v, dict):
            k = "dict"
        elif _kind(v) is None and _json_kind(v) in _LEAF_TYPES:
            k = "leaf"
        else:
            self.ok = False
            return
        if self.kind is None:
            self.kind = k
        elif self.kind != k:
            self.ok = False
            return
        if k == "list":
            if self.elem is None:
                self.elem = _Shape()
            for x in v:
                self.elem.see(x)
        elif k == "dict":
            if self.fields is None:
                self.fields = {}
            for key, x in v.items():
                if not isinstance(key, str) or key == "" or "\0" in key:
                    self.ok = False
                    return
                self.fields.setdefault(key, _Shape()).see(x)
        else:
            self.leaves.add(_json_kind(v))

    def type(self):
        """The DuckDB type, or None (no shape).  Nothing but NULLs (a list's
        elements, a dict's field) is VARCHAR: detected, it was JSON, and
        strings appended later read back quoted."""
        if not self.ok:
            return None
        if self.kind is None:
            return "VARCHAR"
        if self.kind == "list":
            t = self.elem.type() if self.elem is not None else "VARCHAR"
            return t + "[]" if t else None
        if self.kind == "dict":
            if not self.fields or len({k.lower() for k in self.fields}) != len(self.fields):
                return None
            parts = []
            for key, sh in self.fields.items():
                t = sh.type()
                if t is None:
                    return None
                parts.append('"%s" %s' % (key.replace('"', '""'), t))
            return "STRUCT(%s)" % ", ".join(parts)
        leaves = self.leaves
        if leaves == {"int", "float"}:
            leaves = {"float"}
        return _LEAF_TYPES[next(iter(leaves))] if len(leaves) == 1 else None


class _Columns:
    """What kinds of values each column holds."""

    def __init__(self):
        self.kinds = {}   # name -> set of kinds (None: JSON's own types)
        self.dec = {}     # name -> [whole digits, scale]
        self.shapes = {}  # name -> _Shape of its nested values

    def see(self, name, v):
        if v is None:
            self.kinds.setdefault(name, set())
            return None
        k = _kind(v)
        self.kinds.setdefault(name, set()).add(k or _json_kind(v))
        if k is None and isinstance(v, (list, tuple, dict)):
            self.shapes.setdefault(name, _Shape()).see(v)
        if k == "decimal":
            w, s = _decimal_digits(v)
            d = self.dec.setdefault(name, [0, 0])
            d[0], d[1] = max(d[0], w), max(d[1], s)
        return k

    def types(self, empty=None):
        """(column, type) of the columns that need one; a column with no
        value but None takes empty[column] (a DataFrame's dtype), else
        VARCHAR (detected, it was JSON: a str appended later read back
        quoted, '"hello"')."""
        out = []
        for name, kinds in self.kinds.items():
            if not kinds:
                out.append((name, (empty or {}).get(name, "VARCHAR")))
                continue
            if kinds == {"naive", "naive_ns"}:
                kinds = {"naive_ns"}
            if kinds == {"int", "float"}:
                continue  # JSON numbers: DOUBLE, as detected
            if len(kinds) > 1:
                # mixed kinds: their text (DuckDB would make it JSON and
                # quote the strings); nested values among them as JSON
                out.append((name, "VARCHAR"))
                continue
            k = next(iter(kinds))
            if k in ("str", "other"):
                # never a guessed DATE, TIME, UUID ... (Decimal('Infinity')
                # was the DATE 1900-01-01)
                out.append((name, "VARCHAR"))
                continue
            if k == "nested":
                t = self.shapes[name].type() if name in self.shapes else None
                if t:
                    out.append((name, t))
                continue
            t = {"tz": "TIMESTAMP WITH TIME ZONE", "naive": "TIMESTAMP",
                 "naive_ns": "TIMESTAMP_NS", "date": "DATE", "time": "TIME",
                 "uuid": "UUID"}.get(k)
            if k == "decimal":
                whole, scale = self.dec[name]
                if whole + scale <= 38:
                    t = "DECIMAL(%d,%d)" % (max(whole + scale, 1), scale)
            if t:
                out.append((name, t))
        return out


def _json_kind(v):
    """The kind of a value of JSON's own types."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "nested"


def _check_float(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("cannot write the non-finite float %r (NDJSON has no NaN/inf)"
                         % value)
    # DuckDB reads a JSON integer past BIGINT as an inexact DOUBLE (2**64 + 1
    # came back as 1.8446744073709552e+19) or fails on it; inside a list or
    # a dict as well
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise ValueError("cannot write the int %d: it does not fit BIGINT (-2**63 .. 2**63 - 1); "
                         "pass a decimal.Decimal (DECIMAL, up to 38 digits) or a str" % value)
    if isinstance(value, (list, tuple)):
        for x in value:
            _check_float(x)
    elif isinstance(value, dict):
        for x in value.values():
            _check_float(x)


def _inexact_int(v):
    """An int that a DOUBLE does not hold exactly (2**53 + 1)."""
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 and int(float(v)) != v


def _numbers(v, path, seen):
    """Record, per place in a nested value (path: keys and [] for list
    elements), whether floats and inexact ints meet there: DuckDB makes such
    a place DOUBLE and rounds the ints."""
    if isinstance(v, float) or _inexact_int(v):
        k = seen.setdefault(path, [False, None])
        if isinstance(v, float):
            k[0] = True
        elif k[1] is None:
            k[1] = v
    elif isinstance(v, (list, tuple)):
        for x in v:
            _numbers(x, path + ("[]",), seen)
    elif isinstance(v, dict):
        for key, x in v.items():
            _numbers(x, path + (key,), seen)


def _check_name(name, names):
    """Column names: SQL compares them without case ("id" and "ID" are one
    column: the second was renamed ID_1 and read as NULLs), and a name must
    be some text without NUL."""
    if name == "" or "\0" in name:
        raise ValueError("column name %r: a column name must be non-empty text without NUL" % name)
    other = names.setdefault(name.lower(), name)
    if other != name:
        raise ValueError("column names %r and %r differ only in case: SQL names are case-insensitive, "
                         "so a table cannot have both" % (other, name))


# The type of a DataFrame column with no value (all NaN, NA or NaT) from its
# dtype: inferred from no value it was JSON, and later floats read as text.
_DTYPE_TYPES = {"f": "DOUBLE", "i": "BIGINT", "b": "BOOLEAN"}


def _missing_types(df, cols):
    """{column: type} of the DataFrame's columns with no value whose dtype
    names a type."""
    out = {}
    for name in df.columns:
        if cols.kinds.get(name):
            continue
        dt = df[name].dtype
        t = _DTYPE_TYPES.get(getattr(dt, "kind", ""))
        if getattr(dt, "kind", "") == "u":
            t = "UBIGINT"
        elif getattr(dt, "kind", "") == "M":
            t = "TIMESTAMP WITH TIME ZONE" if getattr(dt, "tz", None) is not None else "TIMESTAMP_NS"
        elif str(dt) == "string":
            t = "VARCHAR"
        if t:
            out[name] = t
    return out


def _is_dataframe(data):
    mod = type(data).__module__ or ""
    return mod.startswith("pandas.") and hasattr(data, "to_json") and hasattr(data, "columns")


def _with_index(df, table_columns=None):
    """The DataFrame with its named index levels as the first columns (as
    pandas' to_parquet keeps them; they were dropped with no word).  Left
    out, as before: an unnamed index (row labels: a filtered or
    concatenated frame's), an index named by something other than a str, a
    level that repeats a column of the same values (set_index(...,
    drop=False)), and, in an append (table_columns: the table's column
    names), levels the table has no column for.  A MultiIndex with an
    unnamed level is refused, as is a level named like a column of other
    values."""
    names = list(df.index.names)
    if len(names) == 1 and (names[0] is None or not isinstance(names[0], str)):
        return df
    if any(n is None for n in names):
        raise ValueError("the DataFrame's index (%s) has a level without a name: name its levels to "
                         "keep them as columns (df.rename_axis(['a', 'b', ...])) or drop it "
                         "(df.reset_index(drop=True))" % type(df.index).__name__)
    for n in names:
        if not isinstance(n, str):
            raise TypeError("index names (kept as columns) must be str, not %s" % type(n).__name__)
    if table_columns is not None and not all(n in table_columns for n in names):
        return df  # appended to a table that never stored them
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError("the DataFrame's index level %s is also the name of another level: an index is "
                         "kept as columns, and a table cannot have two columns of one name (rename one)"
                         % ", ".join(map(repr, dup)))
    same = []
    for n in names:
        if n in df.columns:
            if not df.index.get_level_values(n).equals(df[n]) and not (
                    list(df.index.get_level_values(n)) == list(df[n])):
                raise ValueError("the DataFrame's index level %r is also the name of a column holding "
                                 "other values: an index is kept as a column, and a table cannot have "
                                 "two columns of one name (rename one)" % n)
            same.append(n)
    if same:
        if len(same) == len(names):
            return df.reset_index(drop=True)
        df = df.reset_index(level=same, drop=True)
    return df.reset_index()


def _frame_rows(df):
    """The rows of a DataFrame as dicts of Python values (NaN/NaT -> None)."""
    import pandas as pd
    for name in df.columns:
        if not isinstance(name, str):
            raise TypeError("column names must be str, not %s" % type(name).__name__)
    dup = sorted({n for n in df.columns if list(df.columns).count(n) > 1})
    if dup:
        # to_dict would keep one of them and drop the others
        raise ValueError("the DataFrame has duplicate column names: %s" % ", ".join(map(repr, dup)))
    for row in df.to_dict("records"):
        out = {}
        for k, v in row.items():
            if not isinstance(v, (str, list, tuple, dict)):
                # an array's pd.isna is an array (numpy's "truth value ...
                # ambiguous"): arrays (and numpy numbers) are _norm's
                na = pd.isna(v)
                if na is True or (getattr(na, "shape", None) == () and bool(na)):
                    v = None
            out[k] = v
        yield out


def _column(name, col):
    """A dict of columns' column as a list: a str was split into one row
    per character, a dict into its keys."""
    if isinstance(col, (str, bytes, bytearray, memoryview, Mapping, set, frozenset)):
        raise TypeError("column %r is a %s: a column must be a sequence of values (a list, a tuple, "
                        "an array ...), one per row (for one row: {%r: [value]})"
                        % (name, type(col).__name__, name))
    if _is_dataframe(col):
        raise TypeError("column %r is a DataFrame: a column must be a sequence of values" % (name,))
    try:
        return list(col)
    except TypeError:
        raise TypeError("column %r is a %s: a column must be a sequence of values (a list, a tuple, "
                        "an array ...), one per row" % (name, type(col).__name__)) from None


def _rows(data):
    """Yield the rows of data as dicts (column order kept)."""
    if _is_dataframe(data):
        yield from _frame_rows(data)
        return
    if isinstance(data, Mapping):
        names = list(data)
        for n in names:
            if not isinstance(n, str):
                raise TypeError("column names must be str, not %s" % type(n).__name__)
        cols = [_column(n, data[n]) for n in names]
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            raise ValueError("the columns have different lengths: %s"
                             % ", ".join("%s=%d" % (n, len(c)) for n, c in zip(names, cols)))
        for i in range(lengths.pop() if lengths else 0):
            yield {n: c[i] for n, c in zip(names, cols)}
        return
    for row in data:
        if not isinstance(row, Mapping):
            raise TypeError("rows must be dicts (mappings), not %s" % type(row).__name__)
        for k in row:
            if not isinstance(k, str):
                raise TypeError("column names must be str, not %s" % type(k).__name__)
        yield row


def _default(value):
    """Values inside lists and dicts (nested): as text."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("bytes values inside lists or dicts cannot be written (NDJSON has no "
                        "binary type); write a Parquet file instead")
    raise TypeError("cannot write a value of type %s" % type(value).__name__)


def _int_type(path, name):
    """BIGINT, the type of column name's ints in the NDJSON file at path;
    HUGEINT when one of them is a double past BIGINT (2**63 - 1 is the
    double 2**63): a DOUBLE column's check casts it back to the declared
    type, which failed with DuckDB's conversion error in place of naming
    the value."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            v = json.loads(line).get(name)
            if isinstance(v, int) and not isinstance(v, bool) and float(v) >= 2.0 ** 63:
                return "HUGEINT"
    return "BIGINT"


def _exact_decimal(path, name, big):
    """The DECIMAL(p, s) that holds every number of column name in the
    NDJSON file at path exactly (its ints and its floats' shortest text);
    ValueError when none does (more than 38 digits)."""
    whole = scale = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            v = json.loads(line, parse_float=decimal.Decimal).get(name)
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, int):
                whole = max(whole, len(str(abs(v))))
            else:
                w, sc = _decimal_digits(v)
                whole, scale = max(whole, w), max(scale, sc)
    if whole + scale > 38:
        raise ValueError("cannot append the int %d in column %r beside its floats: a DOUBLE column would "
                         "round it, and no DECIMAL holds all of them (more than 38 digits) to check it; "
                         "pass the numbers as decimal.Decimal or str" % (big, name))
    return "DECIMAL(%d,%d)" % (max(whole + scale, 1), scale)


def write_temp(data, append=False, table_columns=None):
    """Write data to a new temporary .ndjson file; return its path (the
    caller removes it) and the column types to read it with, a list of
    (column, DuckDB type).  table_columns: in an append, the table's
    udr.schema (JSON text), or None.  Raises TypeError / ValueError for data that
    cannot be written; an empty input raises ValueError (no columns to
    infer)."""
    fd, path = tempfile.mkstemp(prefix="udr-write-", suffix=".ndjson")
    cols = _Columns()
    names = {}   # lower-case name -> name
    numbers = {}
    try:
        if _is_dataframe(data):
            if len(data) == 0:
                raise ValueError("the DataFrame has no rows (no types to infer)")
            tcols = None
            if append and table_columns:
                tcols = [c.get("name") for c in json.loads(table_columns)]
            data = _with_index(data, tcols)
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            for row in _rows(data):
                out = {}
                for k, v in row.items():
                    if k not in cols.kinds:
                        _check_name(k, names)
                    v = _norm(v)
                    _check_float(v)
                    _numbers(v, (k,), numbers)
                    kind = cols.see(k, v)
                    out[k] = _text(v, kind) if kind else v
                f.write(json.dumps(out, ensure_ascii=False, allow_nan=False, default=_default))
                f.write("\n")
                n += 1
        if n == 0:
            raise ValueError("no rows to write (no types to infer)")
        declared = {}
        for place, (floats, big) in numbers.items():
            if big is None:
                continue
            # a new table's column (or list) of both is DOUBLE, which
            # rounds the int.  An append reads them with the table's type,
            # which may hold them (DECIMAL, VARCHAR): a column's ints are
            # declared as what they are, and the import refuses what its
            # type would change (a DOUBLE column rounded 2**53 + 1 with no
            # word); inside lists no declared type reaches the import's
            # checks, so ints beside floats there are refused as for a new
            # table
            if floats and (not append or len(place) > 1):
                raise ValueError("cannot write the int %d in column %r: floats there make it DOUBLE, which "
                                 "does not hold it exactly; pass the numbers as decimal.Decimal or str"
                                 % (big, place[0]))
            if not append:
                continue   # a new table's column of ints: BIGINT, as detected
            if len(place) == 1 and cols.kinds.get(place[0]) == {"int"}:
                declared[place[0]] = _int_type(path, place[0])
            elif len(place) == 1 and cols.kinds.get(place[0]) == {"int", "float"}:
                declared[place[0]] = _exact_decimal(path, place[0], big)
        types = cols.types(_missing_types(data, cols) if _is_dataframe(data) else None)
        types += sorted(declared.items())
        return path, types
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)
        raise


_EPOCH = datetime.datetime(1970, 1, 1)
_US = datetime.timedelta(microseconds=1)


def param_form(v):
    """How Database.sql binds a date, time, datetime, Decimal or UUID
    parameter: (UDR_OTHER_* kind, text).  Days or microseconds since the
    epoch, or a Decimal's digits, bound as a value of that type (as text a
    Decimal compared with a Decimal as strings: '10' < '9'); a UUID or an
    aware time as text (kind 0), cast by DuckDB where the statement
    expects a type.  A Decimal of more than 38 digits or not finite, and a
    datetime with nanoseconds, have no such type: ValueError."""
    if type(v).__name__ == "NaTType" and (type(v).__module__ or "").startswith("pandas"):
        # NaT is a datetime: it was refused as one with nanoseconds
        raise ValueError("cannot bind pandas.NaT: pass None for a NULL parameter")
    if isinstance(v, datetime.datetime):
        if _nanos(v):
            # bound as microseconds, the nanoseconds were dropped
            raise ValueError("cannot bind %r: a TIMESTAMP parameter holds microseconds, the nanoseconds "
                             "would be lost (pass it as a str and cast it to TIMESTAMP_NS)" % (v,))
        us = (v.replace(tzinfo=None) - _EPOCH) // _US
        if v.tzinfo is not None and v.utcoffset() is not None:
            # in whole microseconds: datetime(1, 1, 1, tzinfo=+05:00) - 5 h
            # is before year 1, which datetime cannot hold
            return 4, str(us - v.utcoffset() // _US)
        return 3, str(us)
    if isinstance(v, datetime.date):
        return 2, str((v - _EPOCH.date()).days)
    if isinstance(v, datetime.time):
        if v.tzinfo is not None:
            return 0, str(v)
        return 5, str(((v.hour * 60 + v.minute) * 60 + v.second) * 1000000 + v.microsecond)
    if isinstance(v, decimal.Decimal):
        # bound as text, two such Decimals compared as strings
        # (Decimal('1E+50') < Decimal('9E+49') was true)
        if not v.is_finite():
            raise ValueError("cannot bind %r: DECIMAL has no NaN or infinity (pass a float)" % (v,))
        whole, scale = _decimal_digits(v)
        if whole + scale > 38:
            # trailing zeros (1.000...0, -0E-50) are no digits of the value
            n = v.normalize()
            if n.is_zero():
                n = decimal.Decimal(0)
            if sum(_decimal_digits(n)) <= 38:
                return 1, format(n, "f")
            raise ValueError("cannot bind %r: it has more than the 38 digits a DECIMAL holds (pass it as a "
                             "str and cast it in the statement)" % (v,))
        return 1, format(v, "f")
    return 0, str(v)
