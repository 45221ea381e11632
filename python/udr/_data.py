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
type), and a DataFrame column with no value has its dtype's type.  A column that
mixes kinds is VARCHAR: each value's text (a number's digits, true or
false, an ISO date; nested values as JSON).  bytes cannot be
written (rows go through NDJSON, where a BLOB is text): write a Parquet
file.  In a DataFrame, NaN/NaT/None are NULL.
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
        """The DuckDB type, or None (no shape, or nothing but NULLs)."""
        if not self.ok or self.kind is None:
            return None
        if self.kind == "list":
            t = self.elem.type() if self.elem is not None else None
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

    def types(self):
        out = []
        for name, kinds in self.kinds.items():
            if kinds == {"naive", "naive_ns"}:
                kinds = {"naive_ns"}
            if kinds == {"int", "float"}:
                continue  # JSON numbers: DOUBLE, as detected
            if len(kinds) > 1:
                # mixed kinds: their text (DuckDB would make it JSON and
                # quote the strings); nested values among them as JSON
                out.append((name, "VARCHAR"))
                continue
            if len(kinds) != 1:
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
    out = []
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
            out.append((name, t))
    return out


def _is_dataframe(data):
    mod = type(data).__module__ or ""
    return mod.startswith("pandas.") and hasattr(data, "to_json") and hasattr(data, "columns")


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
            if not isinstance(v, (list, tuple, dict)) and pd.isna(v):
                v = None
            elif hasattr(v, "item") and type(v).__module__ == "numpy":
                v = v.item()
            out[k] = v
        yield out


def _rows(data):
    """Yield the rows of data as dicts (column order kept)."""
    if _is_dataframe(data):
        yield from _frame_rows(data)
        return
    if isinstance(data, Mapping):
        names = list(data)
        cols = [list(data[n]) for n in names]
        for n in names:
            if not isinstance(n, str):
                raise TypeError("column names must be str, not %s" % type(n).__name__)
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


def write_temp(data, append=False):
    """Write data to a new temporary .ndjson file; return its path (the
    caller removes it) and the column types to read it with, a list of
    (column, DuckDB type).  Raises TypeError / ValueError for data that
    cannot be written; an empty input raises ValueError (no columns to
    infer)."""
    fd, path = tempfile.mkstemp(prefix="udr-write-", suffix=".ndjson")
    cols = _Columns()
    names = {}   # lower-case name -> name
    numbers = {}
    try:
        if _is_dataframe(data) and len(data) == 0:
            raise ValueError("the DataFrame has no rows (no types to infer)")
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            for row in _rows(data):
                out = {}
                for k, v in row.items():
                    if k not in cols.kinds:
                        _check_name(k, names)
                    _check_float(v)
                    _numbers(v, (k,), numbers)
                    kind = cols.see(k, v)
                    out[k] = _text(v, kind) if kind else v
                f.write(json.dumps(out, ensure_ascii=False, allow_nan=False, default=_default))
                f.write("\n")
                n += 1
        if n == 0:
            raise ValueError("no rows to write (no types to infer)")
        for place, (floats, big) in numbers.items():
            # a new table's column (or list) of both is DOUBLE; an append
            # reads them with the table's type (DECIMAL, VARCHAR: exact)
            if floats and big is not None and not append:
                raise ValueError("cannot write the int %d in column %r: floats there make it DOUBLE, which "
                                 "does not hold it exactly; pass the numbers as decimal.Decimal or str"
                                 % (big, place[0]))
        types = cols.types()
        if _is_dataframe(data):
            types += _missing_types(data, cols)
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
