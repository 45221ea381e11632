"""Conversion of in-memory rows to a temporary NDJSON file for Database.write.

Called by the C extension (udr._udr) when Database.write gets data that is
not a file path: a list of dicts (rows), a dict of columns, or a pandas
DataFrame.  NDJSON keeps the JSON types, so DuckDB reads int as BIGINT,
float as DOUBLE, bool as BOOLEAN, str as VARCHAR, None as NULL, and nested
lists/dicts as LIST/STRUCT.  datetime, date, time are written in ISO 8601
(DuckDB detects TIMESTAMP/DATE/TIME), Decimal and UUID as text.
"""

import datetime
import decimal
import json
import math
import os
import tempfile
import uuid
from collections.abc import Mapping

__all__ = ["write_temp"]


def _default(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("bytes values cannot be written from Python rows (NDJSON has no "
                        "binary type); write a Parquet file instead")
    raise TypeError("cannot write a value of type %s" % type(value).__name__)


def _check_float(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("cannot write the non-finite float %r (NDJSON has no NaN/inf)"
                         % value)


def _is_dataframe(data):
    mod = type(data).__module__ or ""
    return mod.startswith("pandas.") and hasattr(data, "to_json") and hasattr(data, "columns")


def _rows(data):
    """Yield the rows of data as dicts (column order kept)."""
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


def write_temp(data):
    """Write data to a new temporary .ndjson file and return its path (the
    caller removes it).  Raises TypeError / ValueError for data that cannot
    be written; an empty input raises ValueError (no columns to infer)."""
    fd, path = tempfile.mkstemp(prefix="udr-write-", suffix=".ndjson")
    try:
        if _is_dataframe(data):
            os.close(fd)
            fd = -1
            if len(data) == 0:
                raise ValueError("the DataFrame has no rows (no types to infer)")
            data.to_json(path, orient="records", lines=True, date_format="iso",
                         force_ascii=False)
            return path
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            for row in _rows(data):
                for v in row.values():
                    _check_float(v)
                f.write(json.dumps(row, ensure_ascii=False, allow_nan=False,
                                   default=_default))
                f.write("\n")
                n += 1
        if n == 0:
            raise ValueError("no rows to write (no types to infer)")
        return path
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)
        raise
