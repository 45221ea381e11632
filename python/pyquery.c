/*
 * pyquery.c - SQL over table versions (include/udr/query.h, DuckDB):
 * Database.sql / read / write / export / diff_rows and udr.Result.
 *
 * A Database has one udr_query session, opened on first use and closed with
 * the database handle.  A session is used by one thread at a time, so calls
 * take the database's session lock (waiting for it without the GIL); results
 * are independent of the session and read without it.  Built without DuckDB
 * (no .deps/duckdb) every method raises udr.Error("built without the query
 * module").
 */
#include "udrpy.h"

#include <datetime.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef UDRPY_HAVE_QUERY
#include <udr/query.h>
#endif

/* ---- session -------------------------------------------------------------- */

int udrpy_query_setup(udrpy_db *d)
{
	if (PyDateTimeAPI == NULL) {
		PyDateTime_IMPORT;
		if (PyDateTimeAPI == NULL)
			return -1;
	}
	d->query = NULL;
	d->qlock = PyThread_allocate_lock();
	if (d->qlock == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

void udrpy_query_teardown(udrpy_db *d)
{
	if (d->qlock != NULL) {
		PyThread_free_lock(d->qlock);
		d->qlock = NULL;
	}
}

/* Called with no call in flight (the database pin is idle). */
void udrpy_query_close(udrpy_db *d)
{
#ifdef UDRPY_HAVE_QUERY
	if (d->query != NULL) {
		udr_query_close(d->query);
		d->query = NULL;
	}
#else
	(void)d;
#endif
}

#ifndef UDRPY_HAVE_QUERY

static PyObject *no_query(PyObject *self, PyObject *args, PyObject *kwds)
{
	(void)self;
	(void)args;
	(void)kwds;
	return udrpy_raise_msg(udrpy_Error, UDR_ERROR, "built without the query module");
}

#define NO_QUERY(name, doc)                                                    \
	{name, (PyCFunction)(void (*)(void))no_query, METH_VARARGS | METH_KEYWORDS, doc}

PyMethodDef udrpy_query_methods[] = {
	NO_QUERY("sql", "sql(query, params=None, versions=None, message=None, branch=None) -> Result (needs the query module)"),
	NO_QUERY("read", "read(table, version=None, branch=None) -> Result (needs the query module)"),
	NO_QUERY("write", "write(table, data, mode='overwrite', ...) -> int (needs the query module)"),
	NO_QUERY("export", "export(table, path, version=None, format=None) -> int (needs the query module)"),
	NO_QUERY("diff_rows", "diff_rows(table, old, new, keys) -> Result (needs the query module)"),
	{NULL, NULL, 0, NULL}};

PyTypeObject udrpy_ResultType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Result",
	.tp_basicsize = sizeof(PyObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Result - a query result (unavailable: built without the query module).",
};

#else /* UDRPY_HAVE_QUERY */

/* Enter the database and take its session (opened on first use): the
 * session, or NULL with an exception set.  Leave with session_leave. */
static udr_query *session_enter(udrpy_db *d)
{
	udr_db *h = udrpy_db_enter(d);
	int rc = 0;

	if (h == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	PyThread_acquire_lock(d->qlock, WAIT_LOCK);
	if (d->query == NULL) {
		udr_query *q = NULL;

		rc = udr_query_open(&q, h, NULL);
		d->query = q;
	}
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
		PyThread_release_lock(d->qlock);
		udrpy_db_leave(d);
		return NULL;
	}
	return d->query;
}

static void session_leave(udrpy_db *d)
{
	PyThread_release_lock(d->qlock);
	udrpy_db_leave(d);
}

/* ---- values ------------------------------------------------------------- */

/* Parameters as udr_values; strings point into objects kept in *keep. */
/* lo <= o <= hi, the bounds as decimal text. */
static int int_between(PyObject *o, const char *lo_text, const char *hi_text)
{
	PyObject *lo = PyLong_FromString(lo_text, NULL, 10), *hi = PyLong_FromString(hi_text, NULL, 10);
	int in = lo && hi && PyObject_RichCompareBool(o, lo, Py_GE) == 1 && PyObject_RichCompareBool(o, hi, Py_LE) == 1;
	Py_XDECREF(lo);
	Py_XDECREF(hi);
	PyErr_Clear();
	return in;
}

/* UDR_OTHER_HUGEINT for an int within HUGEINT, else UDR_OTHER_TEXT. */
static int64_t other_kind_of_int(PyObject *o)
{
	return int_between(o, "-170141183460469231731687303715884105728", "170141183460469231731687303715884105727")
	           ? UDR_OTHER_HUGEINT
	           : UDR_OTHER_TEXT;
}

/* 2^127 .. 2^128 - 1: a UHUGEINT (as a UHUGEINT column gives it), bound as
 * its text, which the statement casts. */
static int fits_uhugeint(PyObject *o)
{
	return int_between(o, "170141183460469231731687303715884105728", "340282366920938463463374607431768211455");
}

/* A date, time, datetime, Decimal or UUID parameter: *conv its text as
 * UDR_OTHER_* *kind says (days, microseconds, digits; a UUID or a value
 * with no such form: its text, UDR_OTHER_TEXT).  0, or -1 with an
 * exception. */
static int other_param(PyObject **conv, int64_t *kind, PyObject *o)
{
	PyObject *mod, *r;
	if ((mod = PyImport_ImportModule("udr._data")) == NULL)
		return -1;
	r = PyObject_CallMethod(mod, "param_form", "O", o);
	Py_DECREF(mod);
	if (r == NULL)
		return -1;
	*kind = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 0));
	*conv = Py_NewRef(PyTuple_GET_ITEM(r, 1));
	Py_DECREF(r);
	return 0;
}

static int params_from_obj(udr_value **out, size_t *n, PyObject **keep, PyObject *params)
{
	PyObject *seq;
	udr_value *vals;
	Py_ssize_t count;

	*out = NULL;
	*n = 0;
	*keep = NULL;
	if (params == Py_None)
		return 0;
	if (PyUnicode_Check(params) || PyBytes_Check(params) || PyDict_Check(params)) {
		PyErr_Format(PyExc_TypeError, "params must be a sequence of values, not %.100s",
		             Py_TYPE(params)->tp_name);
		return -1;
	}
	seq = PySequence_List(params);
	if (seq == NULL)
		return -1;
	count = PyList_GET_SIZE(seq);
	vals = PyMem_Calloc((size_t)count + 1, sizeof *vals);
	if (vals == NULL) {
		Py_DECREF(seq);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t i = 0; i < count; i++) {
		PyObject *o = PyList_GET_ITEM(seq, i), *conv = NULL;
		udr_value *v = &vals[i];
		Py_ssize_t len;

		if (o == Py_None) {
			*v = udr_value_null();
		} else if (PyBool_Check(o)) {
			*v = udr_value_bool(o == Py_True);
		} else if (PyLong_Check(o)) {
			int overflow = 0;
			long long x = PyLong_AsLongLongAndOverflow(o, &overflow);

			if (x == -1 && PyErr_Occurred())
				goto fail;
			if (overflow) {
				/* Beyond int64: a HUGEINT.  Beyond it no number type
				 * holds it: bound as text it compared as a string
				 * (10**40 < 9 * 10**39 was true), so refused */
				conv = PyObject_Str(o);
				v->type = UDR_TYPE_OTHER;
				if (conv && (v->i64 = other_kind_of_int(o)) != UDR_OTHER_HUGEINT && !fits_uhugeint(o)) {
					PyErr_Format(PyExc_ValueError,
					             "parameter %zd: the int %S does not fit HUGEINT (128 bits); pass it as a "
					             "str and cast it in the statement",
					             i + 1, o);
					Py_DECREF(conv);
					goto fail;
				}
			} else {
				*v = udr_value_int64(x);
			}
		} else if (PyFloat_Check(o)) {
			*v = udr_value_double(PyFloat_AS_DOUBLE(o));
		} else if (PyUnicode_Check(o)) {
			conv = Py_NewRef(o);
			v->type = UDR_TYPE_TEXT;
		} else if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
			conv = PyBytes_FromObject(o);
			v->type = UDR_TYPE_BLOB;
		} else if (PyDateTime_Check(o) || PyDate_Check(o) || PyTime_Check(o) ||
		           PyObject_HasAttrString(o, "as_tuple") /* Decimal */ ||
		           strcmp(Py_TYPE(o)->tp_name, "UUID") == 0) {
			/* bound as a value of its type (UDR_OTHER_*): as text, a
			 * Decimal compared with a Decimal compared strings */
			v->type = UDR_TYPE_OTHER;
			if (other_param(&conv, &v->i64, o) < 0)
				goto fail;
		} else {
			PyErr_Format(PyExc_TypeError,
			             "parameter %zd: unsupported type %.100s (use None, bool, int, "
			             "float, str, bytes, datetime, date, time or Decimal)",
			             i + 1, Py_TYPE(o)->tp_name);
			goto fail;
		}
		if (conv == NULL && (v->type == UDR_TYPE_TEXT || v->type == UDR_TYPE_BLOB ||
		                     v->type == UDR_TYPE_OTHER))
			goto fail;
		if (conv != NULL) {
			if (PyBytes_Check(conv)) {
				v->str = PyBytes_AS_STRING(conv);
				v->len = (size_t)PyBytes_GET_SIZE(conv);
			} else {
				v->str = PyUnicode_AsUTF8AndSize(conv, &len);
				v->len = (size_t)len;
				if (v->str == NULL) {
					Py_DECREF(conv);
					goto fail;
				}
			}
			/* Keep it alive: replace the item in our private list. */
			PyList_SetItem(seq, i, conv);
		}
	}
	*out = vals;
	*n = (size_t)count;
	*keep = seq;
	return 0;
fail:
	PyMem_Free(vals);
	Py_DECREF(seq);
	return -1;
}

/* ---- values of results ------------------------------------------------- */

/* How a column's values become Python objects (besides the typed kinds). */
enum { CONV_NONE, CONV_INT, CONV_DECIMAL, CONV_DATE, CONV_TIMESTAMP, CONV_TIMESTAMPTZ, CONV_TIME,
       CONV_UUID };

static int conv_of(const char *type)
{
	if (type == NULL)
		return CONV_NONE;
	if (strcmp(type, "HUGEINT") == 0 || strcmp(type, "UHUGEINT") == 0 || strcmp(type, "UBIGINT") == 0)
		return CONV_INT;
	if (strncmp(type, "DECIMAL(", 8) == 0 && type[strlen(type) - 1] == ')')
		return CONV_DECIMAL; /* not DECIMAL(3,1)[], a list: text */
	if (strcmp(type, "DATE") == 0)
		return CONV_DATE;
	if (strcmp(type, "TIMESTAMP") == 0 || strcmp(type, "TIMESTAMP_S") == 0 ||
	    strcmp(type, "TIMESTAMP_MS") == 0)
		return CONV_TIMESTAMP;
	if (strcmp(type, "TIMESTAMP WITH TIME ZONE") == 0)
		return CONV_TIMESTAMPTZ;
	if (strcmp(type, "TIME") == 0)
		return CONV_TIME;
	if (strcmp(type, "UUID") == 0)
		return CONV_UUID;
	return CONV_NONE;
}

/* n decimal digits at *p (exactly n, or up to n when !exact); -1 if none */
static int digits(const char **p, int n, int exact)
{
	int v = 0, k = 0;

	while (k < n && **p >= '0' && **p <= '9') {
		v = v * 10 + (*(*p)++ - '0');
		k++;
	}
	return k == 0 || (exact && k != n) ? -1 : v;
}

/* "HH:MM:SS[.ffffff]" (DuckDB's text); 0 or -1 */
static int parse_clock(const char **p, int *h, int *mi, int *s, int *us)
{
	*us = 0;
	if ((*h = digits(p, 2, 1)) < 0 || *(*p)++ != ':' || (*mi = digits(p, 2, 1)) < 0 ||
	    *(*p)++ != ':' || (*s = digits(p, 2, 1)) < 0)
		return -1;
	if (**p == '.') {
		const char *start = ++*p;
		int f = digits(p, 6, 0);

		if (f < 0 || (**p >= '0' && **p <= '9'))
			return -1; /* more than microseconds: keep the text */
		for (long k = *p - start; k < 6; k++)
			f *= 10;
		*us = f;
	}
	return 0;
}

/* "YYYY-MM-DD" with a year 1..9999 (no BC, no infinity); 0 or -1 */
static int parse_day(const char **p, int *y, int *m, int *d)
{
	if ((*y = digits(p, 4, 1)) < 1 || *(*p)++ != '-' || (*m = digits(p, 2, 1)) < 0 ||
	    *(*p)++ != '-' || (*d = digits(p, 2, 1)) < 0 || (**p >= '0' && **p <= '9'))
		return -1;
	return 0;
}

static PyObject *g_decimal, *g_uuid;

static PyObject *module_attr(PyObject **cache, const char *mod, const char *name)
{
	if (*cache == NULL) {
		PyObject *m = PyImport_ImportModule(mod);

		if (m == NULL)
			return NULL;
		*cache = PyObject_GetAttrString(m, name);
		Py_DECREF(m);
	}
	return *cache;
}

/*
 * A value DuckDB gave as text, as the Python type of its column: int for
 * HUGEINT/UBIGINT, Decimal, date, datetime (aware, UTC, for TIMESTAMP WITH
 * TIME ZONE), time, UUID.  Values Python cannot hold (years beyond 1..9999,
 * infinity, nanoseconds) stay text.  NULL with an exception, or Py_None
 * (borrowed marker) when the text is to be kept.
 */
static PyObject *convert_text(int conv, const char *s, size_t len)
{
	const char *p = s;
	int y, m, d, h = 0, mi = 0, sec = 0, us = 0;

	switch (conv) {
	case CONV_INT:
		return PyLong_FromString(s, NULL, 10);
	case CONV_DECIMAL: {
		PyObject *cls = module_attr(&g_decimal, "decimal", "Decimal");

		return cls ? PyObject_CallFunction(cls, "s#", s, (Py_ssize_t)len) : NULL;
	}
	case CONV_UUID: {
		PyObject *cls = module_attr(&g_uuid, "uuid", "UUID");

		return cls ? PyObject_CallFunction(cls, "s#", s, (Py_ssize_t)len) : NULL;
	}
	case CONV_DATE:
		if (parse_day(&p, &y, &m, &d) < 0 || *p)
			return Py_None;
		return PyDate_FromDate(y, m, d);
	case CONV_TIME:
		if (parse_clock(&p, &h, &mi, &sec, &us) < 0 || *p || h > 23)
			return Py_None;
		return PyTime_FromTime(h, mi, sec, us);
	case CONV_TIMESTAMP:
	case CONV_TIMESTAMPTZ: {
		PyObject *dt, *tz, *r;
		int sign = 0, oh = 0, om = 0, os = 0;

		if (parse_day(&p, &y, &m, &d) < 0 || *p++ != ' ' ||
		    parse_clock(&p, &h, &mi, &sec, &us) < 0 || h > 23)
			return Py_None;
		if (conv == CONV_TIMESTAMP)
			return *p ? Py_None : PyDateTime_FromDateAndTime(y, m, d, h, mi, sec, us);
		/* +HH[:MM[:SS]] */
		if (*p != '+' && *p != '-')
			return Py_None;
		sign = *p++ == '-' ? -1 : 1;
		if ((oh = digits(&p, 2, 1)) < 0)
			return Py_None;
		if (*p == ':' && (p++, (om = digits(&p, 2, 1)) < 0))
			return Py_None;
		if (*p == ':' && (p++, (os = digits(&p, 2, 1)) < 0))
			return Py_None;
		if (*p)
			return Py_None;
		if (oh == 0 && om == 0 && os == 0) {
			return PyDateTimeAPI->DateTime_FromDateAndTime(y, m, d, h, mi, sec, us,
			                                               PyDateTime_TimeZone_UTC,
			                                               PyDateTimeAPI->DateTimeType);
		}
		{
			PyObject *delta = PyDelta_FromDSU(0, sign * (oh * 3600 + om * 60 + os), 0);

			tz = delta ? PyTimeZone_FromOffset(delta) : NULL;
			Py_XDECREF(delta);
		}
		if (tz == NULL)
			return NULL;
		dt = PyDateTimeAPI->DateTime_FromDateAndTime(y, m, d, h, mi, sec, us, tz,
		                                             PyDateTimeAPI->DateTimeType);
		Py_DECREF(tz);
		if (dt == NULL)
			return NULL;
		r = PyObject_CallMethod(dt, "astimezone", "O", PyDateTime_TimeZone_UTC);
		Py_DECREF(dt);
		return r;
	}
	default:
		return Py_None;
	}
}

static PyObject *cell(const udr_result *r, size_t row, size_t col, int conv)
{
	udr_value v;
	int rc = udr_result_get(&v, r, row, col);

	if (rc < 0)
		return udrpy_raise(rc);
	switch (v.type) {
	case UDR_TYPE_NULL: Py_RETURN_NONE;
	case UDR_TYPE_BOOL: return PyBool_FromLong(v.i64 != 0);
	case UDR_TYPE_INT64: return PyLong_FromLongLong(v.i64);
	case UDR_TYPE_DOUBLE: return PyFloat_FromDouble(v.f64);
	case UDR_TYPE_BLOB: return PyBytes_FromStringAndSize(v.str, (Py_ssize_t)v.len);
	default:
		if (conv != CONV_NONE && v.str) {
			PyObject *x = convert_text(conv, v.str, v.len);

			if (x != Py_None)
				return x;
		}
		return PyUnicode_DecodeUTF8(v.str ? v.str : "", (Py_ssize_t)v.len,
		                            "backslashreplace");
	}
}

/* ---- udr.Result ------------------------------------------------------- */

/*
 * A Result reads its rows as they are fetched: a query's rows come batch
 * by batch from a udr_stream (the session's lock is taken for each batch),
 * diff_rows' from one materialized result.  Rows already fetched are kept
 * (as tuples) for to_dicts()/df(), up to KEEP_MAX; beyond that they are
 * dropped, so that iterating over a large result needs memory for a batch,
 * not for the result.  len(), rowcount, to_dicts() and df() read the rest
 * ahead into memory without moving the cursor.
 */
#define KEEP_MAX 65536

typedef struct {
	PyObject_HEAD
	udr_stream *s;          /* NULL when materialized or done */
	udrpy_db *db;           /* the session of s (strong reference) */
	udr_result *owned;      /* a materialized result (diff_rows) */
	const udr_result *cols; /* column names and types */
	const udr_result *batch; /* the rows being fetched (borrowed) */
	size_t bpos;            /* next row of batch */
	int *conv;              /* CONV_* of each column */
	size_t ncols;
	size_t consumed;        /* rows fetched */
	PyObject *kept;         /* list: the rows fetched, while not dropped */
	int dropped;            /* some fetched rows were not kept */
	PyObject *ahead;        /* list: rows read ahead, not fetched yet */
	size_t apos;
	int ended;              /* no rows after batch and ahead */
	PyObject *columns;      /* list of str, cached */
	int busy;               /* a call is reading rows (it may let other threads run) */
} udrpy_result;

static PyObject *result_new(udr_result *owned, udr_stream *s, udrpy_db *db)
{
	udrpy_result *o = PyObject_New(udrpy_result, &udrpy_ResultType);
	const udr_result *cols = s ? udr_stream_columns(s) : owned;

	if (o == NULL) {
		udr_result_free(owned);
		udr_stream_free(s);
		return NULL;
	}
	o->s = s;
	o->db = db;
	Py_XINCREF(db);
	o->owned = owned;
	o->cols = cols;
	o->batch = owned; /* a materialized result is one batch */
	o->bpos = 0;
	o->ncols = udr_result_column_count(cols);
	o->consumed = 0;
	o->dropped = 0;
	o->apos = 0;
	o->ended = s == NULL;
	o->columns = NULL;
	o->ahead = NULL;
	o->busy = 0;
	o->kept = PyList_New(0);
	o->conv = PyMem_Calloc(o->ncols + 1, sizeof *o->conv);
	if (o->kept == NULL || o->conv == NULL) {
		Py_DECREF(o);
		return PyErr_NoMemory();
	}
	for (size_t c = 0; c < o->ncols; c++)
		o->conv[c] = conv_of(udr_result_column_type_name(cols, c));
	return (PyObject *)o;
}

/*
 * Take the session of the stream (the database's pin and session lock, the
 * GIL released while waiting): 1 taken; 0 when the database was closed,
 * which read the stream's rows into memory (no lock needed); -1 with an
 * exception.
 */
static int stream_lock(udrpy_result *o)
{
	udrpy_db *d = o->db;

	if (d->pin.handle == NULL)
		return 0;
	if (udrpy_db_enter(d) == NULL)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	PyThread_acquire_lock(d->qlock, WAIT_LOCK);
	Py_END_ALLOW_THREADS
	return 1;
}

static void stream_unlock(udrpy_result *o, int locked)
{
	if (locked > 0) {
		PyThread_release_lock(o->db->qlock);
		udrpy_db_leave(o->db);
	}
}

/* The next batch into o->batch; o->ended at the end.  0 or -1. */
static int next_batch(udrpy_result *o)
{
	const udr_result *b = NULL;
	int locked, rc;

	o->batch = NULL;
	o->bpos = 0;
	if (o->s == NULL || o->ended) {
		o->ended = 1;
		return 0;
	}
	if ((locked = stream_lock(o)) < 0)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_stream_next(&b, o->s);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
	} else if (b == NULL) {
		o->ended = 1; /* the stream let go of the session; its columns stay */
	} else {
		o->batch = b;
	}
	stream_unlock(o, locked);
	return rc < 0 ? -1 : 0;
}

static PyObject *row_tuple(udrpy_result *o, const udr_result *r, size_t row)
{
	PyObject *t = PyTuple_New((Py_ssize_t)o->ncols);

	for (size_t c = 0; t != NULL && c < o->ncols; c++) {
		PyObject *x = cell(r, row, c, o->conv[c]);

		if (x == NULL)
			Py_CLEAR(t);
		else
			PyTuple_SET_ITEM(t, (Py_ssize_t)c, x);
	}
	return t;
}

/* The next row not read ahead (new reference); NULL at the end (no
 * exception) or on error. */
static PyObject *pull_row(udrpy_result *o)
{
	while (o->batch == NULL || o->bpos >= udr_result_row_count(o->batch)) {
		if (o->ended || (o->batch == o->owned && o->owned != NULL)) {
			o->batch = NULL;
			o->ended = 1;
			return NULL;
		}
		if (next_batch(o) < 0)
			return NULL;
	}
	return row_tuple(o, o->batch, o->bpos++);
}

/* The next row for the cursor (new reference), kept while not dropped. */
static PyObject *next_row(udrpy_result *o)
{
	PyObject *t;

	if (o->ahead != NULL && o->apos < (size_t)PyList_GET_SIZE(o->ahead)) {
		t = Py_NewRef(PyList_GET_ITEM(o->ahead, (Py_ssize_t)o->apos++));
	} else {
		Py_CLEAR(o->ahead);
		o->apos = 0;
		if ((t = pull_row(o)) == NULL)
			return NULL;
	}
	o->consumed++;
	if (!o->dropped) {
		if ((size_t)PyList_GET_SIZE(o->kept) >= KEEP_MAX) {
			o->dropped = 1;
			Py_SETREF(o->kept, PyList_New(0));
			if (o->kept == NULL) {
				Py_DECREF(t);
				return NULL;
			}
		} else if (PyList_Append(o->kept, t) < 0) {
			Py_DECREF(t);
			return NULL;
		}
	}
	return t;
}

/* Read every remaining row into o->ahead (the cursor does not move). */
static int read_ahead(udrpy_result *o)
{
	PyObject *t;

	if (o->ahead == NULL) {
		if ((o->ahead = PyList_New(0)) == NULL)
			return -1;
		o->apos = 0;
	}
	while ((t = pull_row(o)) != NULL) {
		int rc = PyList_Append(o->ahead, t);

		Py_DECREF(t);
		if (rc < 0)
			return -1;
	}
	return PyErr_Occurred() ? -1 : 0;
}

static size_t result_rows(udrpy_result *o, int *err)
{
	*err = read_ahead(o);
	return o->consumed + (size_t)PyList_GET_SIZE(o->ahead) - o->apos;
}

static void result_dealloc(udrpy_result *o)
{
	if (o->s != NULL && o->ended) {
		udr_stream_free(o->s); /* done: no longer reads from the session */
	} else if (o->s != NULL) {
		PyObject *et, *ev, *tb;
		int locked;

		PyErr_Fetch(&et, &ev, &tb);
		locked = stream_lock(o);
		if (locked >= 0) {
			udr_stream_free(o->s); /* DuckDB stops the query */
			stream_unlock(o, locked);
		}
		/* else: the database is closing with a call in flight; the
		 * stream is left to the session's close */
		PyErr_Clear();
		PyErr_Restore(et, ev, tb);
	}
	udr_result_free(o->owned);
	Py_XDECREF(o->db);
	Py_XDECREF(o->columns);
	Py_XDECREF(o->kept);
	Py_XDECREF(o->ahead);
	PyMem_Free(o->conv);
	PyObject_Free(o);
}

static PyObject *result_get_columns(udrpy_result *o, void *closure)
{
	(void)closure;
	if (o->columns == NULL) {
		PyObject *list = PyList_New((Py_ssize_t)o->ncols);

		for (size_t c = 0; list != NULL && c < o->ncols; c++) {
			const char *n = udr_result_column_name(o->cols, c);
			PyObject *s = PyUnicode_DecodeUTF8(n ? n : "", (Py_ssize_t)(n ? strlen(n) : 0),
			                                   "backslashreplace");

			if (s == NULL)
				Py_CLEAR(list);
			else
				PyList_SET_ITEM(list, (Py_ssize_t)c, s);
		}
		if (list == NULL)
			return NULL;
		o->columns = list;
	}
	return PyList_GetSlice(o->columns, 0, PY_SSIZE_T_MAX);
}

static PyObject *result_get_types(udrpy_result *o, void *closure)
{
	PyObject *list = PyList_New((Py_ssize_t)o->ncols);

	(void)closure;
	for (size_t c = 0; list != NULL && c < o->ncols; c++) {
		const char *n = udr_result_column_type_name(o->cols, c);
		PyObject *s = PyUnicode_FromString(n ? n : "");

		if (s == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)c, s);
	}
	return list;
}

static PyObject *result_get_rowcount(udrpy_result *o, void *closure)
{
	int err;
	size_t n = result_rows(o, &err);

	(void)closure;
	return err < 0 ? NULL : PyLong_FromSize_t(n);
}

PyDoc_STRVAR(fetchone_doc,
"fetchone() -> tuple | None\n\n"
"The next row (from the result's cursor) as a tuple, or None at the end.");

static PyObject *result_fetchone(udrpy_result *o, PyObject *unused)
{
	PyObject *t;

	(void)unused;
	t = next_row(o);
	if (t == NULL && !PyErr_Occurred())
		Py_RETURN_NONE;
	return t;
}

/* Up to max next rows (all when max < 0) as a list. */
static PyObject *fetch_list(udrpy_result *o, Py_ssize_t max)
{
	PyObject *list = PyList_New(0), *t;

	while (list != NULL && (max < 0 || PyList_GET_SIZE(list) < max)) {
		if ((t = next_row(o)) == NULL) {
			if (PyErr_Occurred())
				Py_CLEAR(list);
			break;
		}
		if (PyList_Append(list, t) < 0)
			Py_CLEAR(list);
		Py_DECREF(t);
	}
	return list;
}

PyDoc_STRVAR(fetchall_doc,
"fetchall() -> list[tuple]\n\n"
"The remaining rows (all of them on a fresh result) as tuples; moves the\n"
"cursor to the end.");

static PyObject *result_fetchall(udrpy_result *o, PyObject *unused)
{
	(void)unused;
	return fetch_list(o, -1);
}

PyDoc_STRVAR(fetchmany_doc,
"fetchmany(size=1) -> list[tuple]\n\n"
"Up to size next rows.");

static PyObject *result_fetchmany(udrpy_result *o, PyObject *args)
{
	Py_ssize_t size = 1;

	if (!PyArg_ParseTuple(args, "|n:fetchmany", &size))
		return NULL;
	return fetch_list(o, size < 0 ? 0 : size);
}

/* Every row, regardless of the cursor (a new list of tuples). */
static PyObject *all_rows(udrpy_result *o)
{
	PyObject *list;

	if (o->dropped)
		return udrpy_raise_msg(udrpy_InterfaceError, UDR_EINVAL,
		                       "the first %zu rows were fetched and not kept (a Result keeps up "
		                       "to %d fetched rows): call to_dicts() or df() before fetching, "
		                       "or run the query again", o->consumed, KEEP_MAX);
	if (read_ahead(o) < 0)
		return NULL;
	list = PyList_GetSlice(o->kept, 0, PY_SSIZE_T_MAX);
	if (list != NULL) {
		PyObject *rest = PyList_GetSlice(o->ahead, (Py_ssize_t)o->apos, PY_SSIZE_T_MAX);

		if (rest == NULL || PyList_SetSlice(list, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, rest) < 0)
			Py_CLEAR(list);
		Py_XDECREF(rest);
	}
	return list;
}

PyDoc_STRVAR(to_dicts_doc,
"to_dicts() -> list[dict]\n\n"
"Every row (regardless of the cursor) as a dict from column name to value.");

static PyObject *result_to_dicts(udrpy_result *o, PyObject *unused)
{
	PyObject *cols = result_get_columns(o, NULL), *rows, *list;
	Py_ssize_t n;

	(void)unused;
	if (cols == NULL)
		return NULL;
	/* two columns of one name would leave one value in each dict */
	for (Py_ssize_t a = 0; a < PyList_GET_SIZE(cols); a++)
		for (Py_ssize_t b = a + 1; b < PyList_GET_SIZE(cols); b++) {
			int eq = PyObject_RichCompareBool(PyList_GET_ITEM(cols, a), PyList_GET_ITEM(cols, b), Py_EQ);

			if (eq != 0) {
				PyObject *nm = PyList_GET_ITEM(cols, a);

				Py_DECREF(cols);
				if (eq < 0)
					return NULL;
				return udrpy_raise_msg(udrpy_InterfaceError, UDR_EINVAL,
				                       "to_dicts(): two columns are named '%s' (a dict keeps one): "
				                       "name them apart with AS, or use fetchall()",
				                       PyUnicode_AsUTF8(nm) ? PyUnicode_AsUTF8(nm) : "?");
			}
		}
	if ((rows = all_rows(o)) == NULL) {
		Py_DECREF(cols);
		return NULL;
	}
	n = PyList_GET_SIZE(rows);
	list = PyList_New(n);
	for (Py_ssize_t i = 0; list != NULL && i < n; i++) {
		PyObject *t = PyList_GET_ITEM(rows, i), *d = PyDict_New();

		for (size_t c = 0; d != NULL && c < o->ncols; c++)
			if (PyDict_SetItem(d, PyList_GET_ITEM(cols, (Py_ssize_t)c),
			                   PyTuple_GET_ITEM(t, (Py_ssize_t)c)) < 0)
				Py_CLEAR(d);
		if (d == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, i, d);
	}
	Py_DECREF(rows);
	Py_DECREF(cols);
	return list;
}

PyDoc_STRVAR(df_doc,
"df() -> pandas.DataFrame\n\n"
"Every row (regardless of the cursor) as a pandas DataFrame with the\n"
"result's column names (needs pandas; ImportError otherwise).  An integer\n"
"column with a NULL is nullable Int64/UInt64 (HUGEINT: object), exact.");

/*
 * pandas makes an integer column with a None float64 (9007199254740993
 * became 9007199254740992.0, 2^64-1 2^64): such a column is made a
 * nullable Int64/UInt64 column instead, HUGEINT and UHUGEINT an object
 * column of Python ints.  -1 with an exception set.
 */
static int df_exact_ints(PyObject *df, PyObject *pandas, PyObject *rows, udrpy_result *o)
{
	static const char *const sig[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"};
	static const char *const uns[] = {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"};
	Py_ssize_t n = PyList_GET_SIZE(rows);

	for (size_t c = 0; c < o->ncols; c++) {
		const char *t = udr_result_column_type_name(o->cols, c), *dtype = NULL;
		PyObject *vals, *arr, *res;
		int has_none = 0;

		for (size_t k = 0; t && !dtype && k < 4; k++)
			dtype = strcmp(t, sig[k]) == 0 ? "Int64" : strcmp(t, uns[k]) == 0 ? "UInt64" : NULL;
		if (t && !dtype && (strcmp(t, "HUGEINT") == 0 || strcmp(t, "UHUGEINT") == 0))
			dtype = "object";
		if (!dtype)
			continue;
		if ((vals = PyList_New(n)) == NULL)
			return -1;
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *x = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, i), (Py_ssize_t)c);
			has_none |= x == Py_None;
			Py_INCREF(x);
			PyList_SET_ITEM(vals, i, x);
		}
		if (!has_none) {
			Py_DECREF(vals);
			continue;
		}
		arr = PyObject_CallMethod(pandas, "array", "Os", vals, dtype);
		Py_DECREF(vals);
		if (arr == NULL)
			return -1;
		/* by position: result columns may share a name */
		res = PyObject_CallMethod(df, "isetitem", "nO", (Py_ssize_t)c, arr);
		Py_DECREF(arr);
		if (res == NULL)
			return -1;
		Py_DECREF(res);
	}
	return 0;
}

static PyObject *result_df(udrpy_result *o, PyObject *unused)
{
	PyObject *pandas, *rows, *cols, *r;

	(void)unused;
	pandas = PyImport_ImportModule("pandas");
	if (pandas == NULL)
		return NULL;
	rows = all_rows(o);
	cols = result_get_columns(o, NULL);
	if (rows == NULL || cols == NULL) {
		Py_XDECREF(rows);
		Py_XDECREF(cols);
		Py_DECREF(pandas);
		return NULL;
	}
	{
		/* from_records(data, index, ...): columns must be a keyword. */
		PyObject *cls = PyObject_GetAttrString(pandas, "DataFrame");
		PyObject *meth = cls ? PyObject_GetAttrString(cls, "from_records") : NULL;
		PyObject *args = meth ? PyTuple_Pack(1, rows) : NULL;
		PyObject *kw = args ? Py_BuildValue("{s:O}", "columns", cols) : NULL;

		r = kw ? PyObject_Call(meth, args, kw) : NULL;
		Py_XDECREF(kw);
		Py_XDECREF(args);
		Py_XDECREF(meth);
		Py_XDECREF(cls);
	}
	if (r != NULL && df_exact_ints(r, pandas, rows, o) < 0)
		Py_CLEAR(r);
	Py_DECREF(rows);
	Py_DECREF(cols);
	Py_DECREF(pandas);
	return r;
}

static PyObject *result_iternext(udrpy_result *o)
{
	return next_row(o);
}

static Py_ssize_t result_len(udrpy_result *o)
{
	int err;
	size_t n = result_rows(o, &err);

	return err < 0 ? -1 : (Py_ssize_t)n;
}

static PyObject *result_repr(udrpy_result *o)
{
	PyObject *cols = result_get_columns(o, NULL), *r;

	if (cols == NULL)
		return NULL;
	if ((o->s == NULL || o->ended) && o->ahead == NULL)
		r = PyUnicode_FromFormat("<udr.Result %zu rows, columns=%R>",
		                         o->consumed + (o->batch ? udr_result_row_count(o->batch) - o->bpos : 0),
		                         cols);
	else
		r = PyUnicode_FromFormat("<udr.Result columns=%R>", cols);
	Py_DECREF(cols);
	return r;
}

/*
 * A Result is one cursor.  A call that reads rows lets other threads run
 * (it waits for the session and reads a batch without the GIL, and makes
 * values with Python code), and a batch is only valid until the next is
 * read: a second thread reading rows meanwhile is refused, never left to
 * read a batch the first is converting (rows lost or mixed).
 */
static int result_enter(udrpy_result *o)
{
	if (o->busy) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR, "the result is in use by another thread");
		return -1;
	}
	o->busy = 1;
	return 0;
}

#define RESULT_GUARDED(name, call)                                                                                     \
	static PyObject *name##_guarded(udrpy_result *o, PyObject *arg)                                                   \
	{                                                                                                                  \
		PyObject *r;                                                                                               \
		if (result_enter(o) < 0)                                                                                   \
			return NULL;                                                                                       \
		r = call;                                                                                                  \
		o->busy = 0;                                                                                               \
		return r;                                                                                                  \
	}
RESULT_GUARDED(result_fetchone, result_fetchone(o, arg))
RESULT_GUARDED(result_fetchall, result_fetchall(o, arg))
RESULT_GUARDED(result_fetchmany, result_fetchmany(o, arg))
RESULT_GUARDED(result_to_dicts, result_to_dicts(o, arg))
RESULT_GUARDED(result_df, result_df(o, arg))
RESULT_GUARDED(result_rowcount, result_get_rowcount(o, NULL))
RESULT_GUARDED(result_iternext, result_iternext(o))

static PyObject *result_get_rowcount_guarded(udrpy_result *o, void *closure)
{
	(void)closure;
	return result_rowcount_guarded(o, NULL);
}

static PyObject *result_iternext_one(udrpy_result *o)
{
	return result_iternext_guarded(o, NULL);
}

static Py_ssize_t result_len_guarded(udrpy_result *o)
{
	Py_ssize_t n;
	if (result_enter(o) < 0)
		return -1;
	n = result_len(o);
	o->busy = 0;
	return n;
}

static PySequenceMethods result_as_sequence = {
	.sq_length = (lenfunc)result_len_guarded,
};

static PyMethodDef result_methods[] = {
	{"fetchone", (PyCFunction)result_fetchone_guarded, METH_NOARGS, fetchone_doc},
	{"fetchall", (PyCFunction)result_fetchall_guarded, METH_NOARGS, fetchall_doc},
	{"fetchmany", (PyCFunction)result_fetchmany_guarded, METH_VARARGS, fetchmany_doc},
	{"to_dicts", (PyCFunction)result_to_dicts_guarded, METH_NOARGS, to_dicts_doc},
	{"df", (PyCFunction)result_df_guarded, METH_NOARGS, df_doc},
	{NULL, NULL, 0, NULL}};

static PyGetSetDef result_getset[] = {
	{"columns", (getter)result_get_columns, NULL, "The column names (list of str).", NULL},
	{"types", (getter)result_get_types, NULL,
	 "DuckDB's type name of each column ('BIGINT', 'DECIMAL(10,2)', ...).", NULL},
	{"rowcount", (getter)result_get_rowcount_guarded, NULL, "The number of rows.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(result_doc,
"Result - the rows of Database.sql, read or diff_rows.\n\n"
"Values: BIGINT and smaller integers, HUGEINT, UBIGINT -> int,\n"
"DOUBLE/FLOAT -> float, DECIMAL -> decimal.Decimal, BOOLEAN -> bool,\n"
"VARCHAR -> str, BLOB -> bytes, DATE -> datetime.date, TIMESTAMP (and _S,\n"
"_MS) -> naive datetime.datetime, TIMESTAMP WITH TIME ZONE -> aware\n"
"datetime (UTC), TIME -> datetime.time, UUID -> uuid.UUID, NULL -> None;\n"
"other types (LIST, STRUCT, INTERVAL, TIMESTAMP_NS, ...) and values Python\n"
"cannot hold (years beyond 1..9999, infinity) -> str, as DuckDB prints it.\n"
"A query's rows are read from DuckDB batch by batch as they are fetched\n"
"(fetchone()/fetchmany()/iteration need memory for a batch, not for the\n"
"result); fetchall() reads the rest.  len(), rowcount, to_dicts() and df()\n"
"cover every row: they read the rest ahead without moving the cursor.\n"
"Fetched rows are kept for to_dicts()/df() up to 65,536; beyond that they\n"
"raise InterfaceError.  A Result stays readable after the database is\n"
"closed (the rest is read into memory then), and after other queries on\n"
"the same database (likewise).");

PyTypeObject udrpy_ResultType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Result",
	.tp_basicsize = sizeof(udrpy_result),
	.tp_dealloc = (destructor)result_dealloc,
	.tp_repr = (reprfunc)result_repr,
	.tp_as_sequence = &result_as_sequence,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = result_doc,
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)result_iternext_one,
	.tp_methods = result_methods,
	.tp_getset = result_getset,
};

/* ---- references ----------------------------------------------------------- */

#define REF_TEXT_MAX 160

/* A version reference as text: None -> NULL (latest), int -> "N", aware
 * datetime -> ISO UTC, date -> "YYYY-MM-DD" (the end of that day), str ->
 * as given (borrowed from obj).  buf holds
 * formatted text.  0, or -1 with an exception set. */
static int ref_text(const char **out, char *buf, PyObject *obj, const char *what)
{
	*out = NULL;
	if (obj == Py_None)
		return 0;
	if (PyUnicode_Check(obj)) {
		*out = udrpy_cstr(obj, what);
		return *out == NULL ? -1 : 0;
	}
	if (PyDateTime_Check(obj)) {
		int64_t ms;

		if (udrpy_ms_from_datetime(&ms, obj, what) < 0)
			return -1;
		udr_time_format(buf, REF_TEXT_MAX, ms);
		*out = buf;
		return 0;
	}
	if (PyDate_Check(obj)) {
		/* A date is as of the end of that day (UTC), as "2026-11-30". */
		snprintf(buf, REF_TEXT_MAX, "%04d-%02d-%02d", PyDateTime_GET_YEAR(obj),
		         PyDateTime_GET_MONTH(obj), PyDateTime_GET_DAY(obj));
		*out = buf;
		return 0;
	}
	if (PyLong_Check(obj) && !PyBool_Check(obj)) {
		uint64_t n;

		if (udrpy_version_from_obj(&n, obj, 1) < 0)
			return -1;
		snprintf(buf, REF_TEXT_MAX, "%llu", (unsigned long long)n);
		*out = buf;
		return 0;
	}
	PyErr_Format(PyExc_TypeError,
	             "%s must be an int, a str reference, a datetime, a date or None, not %.100s", what,
	             Py_TYPE(obj)->tp_name);
	return -1;
}

/* The statement's first keyword, skipping blanks and comments: its offset
 * (or the offset of '(' ), -1 when the text ends. */
static size_t skip_blank(const char *s, size_t i)
{
	for (;;) {
		while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f')
			i++;
		if (s[i] == '-' && s[i + 1] == '-') {
			while (s[i] != '\0' && s[i] != '\n')
				i++;
		} else if (s[i] == '/' && s[i + 1] == '*') {
			int depth = 1;

			i += 2;
			while (s[i] != '\0' && depth > 0) {
				if (s[i] == '/' && s[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (s[i] == '*' && s[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			}
		} else {
			return i;
		}
	}
}

static int is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Does s[i..] start with keyword kw (case-insensitive, whole word)? */
static int keyword_at(const char *s, size_t i, const char *kw)
{
	size_t n = strlen(kw);

	return strncasecmp(s + i, kw, n) == 0 && !is_ident_char(s[i + n]);
}

/* Past a quoted text starting at s[i] (' or ") or a parenthesized text
 * starting at s[i] == '(' (quotes, comments and nesting skipped): the
 * index after it, or the end of s. */
static size_t skip_group(const char *s, size_t i)
{
	int depth = 0;
	do {
		i = skip_blank(s, i);
		if (s[i] == '\0')
			return i;
		if (s[i] == '\'' || s[i] == '"') {
			char q = s[i++];
			while (s[i] != '\0' && !(s[i] == q && s[i + 1] != q))
				i += s[i] == q ? 2 : 1;
			if (s[i] != '\0')
				i++;
			continue;
		}
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')')
			depth--;
		i++;
	} while (depth > 0);
	return i;
}

/* The statement after WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED]
 * (...), ...: its index (what the CTEs are for), or the end of s when the
 * list does not parse. */
static size_t after_ctes(const char *s, size_t i)
{
	for (;;) {
		i = skip_blank(s, i);
		if (s[i] == '"') {
			i = skip_group(s, i);
		} else {
			while (is_ident_char(s[i]))
				i++;
		}
		i = skip_blank(s, i);
		if (s[i] == '(')
			i = skip_group(s, i);
		i = skip_blank(s, i);
		if (!keyword_at(s, i, "as"))
			return strlen(s);
		i = skip_blank(s, i + 2);
		if (keyword_at(s, i, "not"))
			i = skip_blank(s, i + 3);
		if (keyword_at(s, i, "materialized"))
			i = skip_blank(s, i + 12);
		if (s[i] != '(')
			return strlen(s);
		i = skip_blank(s, skip_group(s, i));
		if (s[i] != ',')
			return i;
		i++;
	}
}

static int query_at(const char *s, size_t i)
{
	return keyword_at(s, i, "select") || keyword_at(s, i, "from") || keyword_at(s, i, "values") ||
	       keyword_at(s, i, "table") || s[i] == '(';
}

/* Pin table versions in a query: prepend CTEs `"name" AS (SELECT * FROM
 * "name@N")` (merged into a leading WITH), so that every unqualified
 * reference to name, column qualifiers included, reads version N.  Names
 * are checked table names and N a number, so nothing can be injected.
 * Returns a PyMem_Malloc'd string, or NULL with an exception set. */
/* ref (NULL: latest) is the head of the call's branch (NULL: main). */
static int names_head(const char *ref, const char *branch)
{
	const char *b = branch ? branch : "main";
	if (strncmp(b, "branch:", 7) == 0)
		b += 7;
	if (ref == NULL || strcasecmp(ref, "latest") == 0)
		return 1;
	if (strncasecmp(ref, "branch:", 7) == 0)
		return strcmp(ref + 7, b) == 0;
	return strcmp(ref, b) == 0;
}

static char *pin_versions(const char *sql, char *const *names, const uint64_t *nums,
                          size_t n)
{
	size_t i = skip_blank(sql, 0), cap, len = 0, at;
	int with = 0;
	char *out;

	at = i;
	if (keyword_at(sql, i, "with")) {
		with = 1;
		at = skip_blank(sql, i + 4);
		if (keyword_at(sql, at, "recursive"))
			at += 9;
		else
			at = i + 4;
	}
	/* WITH ...: a query too (WITH x AS (...) INSERT INTO t ... wrote, from
	 * the pinned version, what the same INSERT alone is refused) */
	if (with ? !query_at(sql, after_ctes(sql, at)) : !query_at(sql, i)) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                "versions= needs a query (SELECT, WITH, FROM, VALUES or TABLE "
		                "statement); pin versions in other statements with NAME@VERSION");
		return NULL;
	}
	cap = strlen(sql) + 16;
	for (size_t k = 0; k < n; k++)
		cap += 2 * strlen(names[k]) + 64;
	out = PyMem_Malloc(cap);
	if (out == NULL) {
		PyErr_NoMemory();
		return NULL;
	}
	memcpy(out, sql, at);
	len = at;
	len += (size_t)snprintf(out + len, cap - len, with ? " " : "WITH ");
	for (size_t k = 0; k < n; k++) {
		len += (size_t)snprintf(out + len, cap - len, "%s\"%s\" AS (SELECT * FROM \"%s@", k ? ", " : "",
		                        names[k], names[k]);
		len += (size_t)(nums[k] ? snprintf(out + len, cap - len, "%llu\")", (unsigned long long)nums[k])
		                        : snprintf(out + len, cap - len, "latest\")"));
	}
	len += (size_t)snprintf(out + len, cap - len, with ? ", " : " ");
	memcpy(out + len, sql + at, strlen(sql + at) + 1);
	return out;
}

/* ---- Database methods ------------------------------------------------------ */

typedef struct {
	char **names;
	char **refs;    /* NULL entries: latest */
	uint64_t *nums;
	size_t n;
} pins;

static void pins_free(pins *p)
{
	for (size_t i = 0; i < p->n; i++) {
		PyMem_Free(p->names[i]);
		PyMem_Free(p->refs[i]);
	}
	PyMem_Free(p->names);
	PyMem_Free(p->refs);
	PyMem_Free(p->nums);
}

static char *mem_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = PyMem_Malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static int pins_from_obj(pins *p, PyObject *versions)
{
	PyObject *items;
	Py_ssize_t n;

	memset(p, 0, sizeof *p);
	if (versions == Py_None)
		return 0;
	if (!PyDict_Check(versions) && !PyMapping_Check(versions)) {
		PyErr_Format(PyExc_TypeError, "versions must be a dict of table to version, not %.100s",
		             Py_TYPE(versions)->tp_name);
		return -1;
	}
	items = PyMapping_Items(versions);
	if (items == NULL)
		return -1;
	n = PyList_GET_SIZE(items);
	p->names = PyMem_Calloc((size_t)n + 1, sizeof *p->names);
	p->refs = PyMem_Calloc((size_t)n + 1, sizeof *p->refs);
	p->nums = PyMem_Calloc((size_t)n + 1, sizeof *p->nums);
	if (p->names == NULL || p->refs == NULL || p->nums == NULL) {
		PyErr_NoMemory();
		goto fail;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *kv = PyList_GET_ITEM(items, i);
		const char *name = udrpy_cstr(PyTuple_GET_ITEM(kv, 0), "table name"), *ref;
		char buf[REF_TEXT_MAX];
		int rc;

		if (name == NULL)
			goto fail;
		if ((rc = udr_table_name_check(name)) < 0) {
			udrpy_raise(rc);
			goto fail;
		}
		if (ref_text(&ref, buf, PyTuple_GET_ITEM(kv, 1), "version") < 0)
			goto fail;
		p->n = (size_t)i + 1;
		p->names[i] = mem_strdup(name);
		p->refs[i] = ref ? mem_strdup(ref) : NULL;
		if (p->names[i] == NULL || (ref && p->refs[i] == NULL)) {
			PyErr_NoMemory();
			goto fail;
		}
	}
	Py_DECREF(items);
	return 0;
fail:
	Py_DECREF(items);
	pins_free(p);
	memset(p, 0, sizeof *p);
	return -1;
}

PyDoc_STRVAR(sql_doc,
"sql(query, params=None, versions=None, message=None, branch=None, *,\n"
"    read_only=False) -> Result\n\n"
"Run one SQL statement over the tables (docs/QUERY.md): a bare table name\n"
"is its latest version (one snapshot for the whole statement); NAME@REF\n"
"picks one ('users@3', 'users@2026-11-01T12:00:00Z', 'users@commit:12').\n"
"params fill ? (or $1, ...) placeholders: None, bool, int, float, str,\n"
"bytes, or datetime/date/time/Decimal (bound as TIMESTAMP [WITH TIME ZONE],\n"
"DATE, TIME, DECIMAL; an int past BIGINT as HUGEINT; a UUID as text;\n"
"a value none of these holds exactly raises ValueError: pass a str).\n"
"versions={'users': 3} pins the unqualified references to a table in a\n"
"query (values: a version number, a reference string, or an aware\n"
"datetime; 'latest' or the branch, in an open transaction, its writes).\n"
"Raises InvalidArgumentError for a SQL error (DuckDB's message),\n"
"NotFoundError for an unknown table or version, IntegrityError for a\n"
"damaged part.  INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE and DROP\n"
"TABLE on tables commit new versions (with message); BEGIN ... COMMIT over\n"
"several calls commits them together (ConflictError when another writer\n"
"changed a written table first).  branch='dev' reads bare names on branch\n"
"dev and commits writes there (None: main); every call of a transaction\n"
"names the same branch.  read_only=True refuses (InvalidArgumentError,\n"
"'read-only session: ...') any statement that would commit, before it\n"
"writes.  The GIL is released while the query runs.");

/* A call that commits on its own, made inside a transaction of the same
 * database (this thread's): it would escape the transaction. */
#define IN_TXN(what)                                                                                                   \
	what " would commit on its own, outside the `with db.transaction()` block this thread runs "                 \
	     "(a transaction stages tx.write only): nothing written; write before or after the block"

static PyObject *db_sql(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"query", "params", "versions", "message", "branch", "read_only", NULL};
	PyObject *qobj, *pobj = Py_None, *vobj = Py_None, *keep = NULL;
	const char *sql, *message = NULL, *branch = NULL;
	int read_only = 0, in_txn;
	char *pinned = NULL;
	udr_value *vals = NULL;
	size_t nvals = 0;
	udr_stream *r = NULL;
	udr_query *q;
	pins p;
	int rc = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOzz$p:sql", kwlist, &qobj, &pobj, &vobj, &message,
	                                 &branch, &read_only))
		return NULL;
	if ((sql = udrpy_cstr(qobj, "query")) == NULL)
		return NULL;
	/* in this thread's transaction a write would commit on its own */
	in_txn = !read_only && udrpy_db_txn_here(d);
	read_only |= in_txn;
	if (pins_from_obj(&p, vobj) < 0)
		return NULL;
	if (params_from_obj(&vals, &nvals, &keep, pobj) < 0) {
		pins_free(&p);
		return NULL;
	}
	if ((q = session_enter(d)) == NULL)
		goto done;
	Py_BEGIN_ALLOW_THREADS
	/* the branch of this call: its reads, and what it commits */
	rc = udr_query_set_branch(q, branch);
	Py_END_ALLOW_THREADS
	if (rc == 0 && p.n > 0) {
		Py_BEGIN_ALLOW_THREADS
		for (size_t i = 0; rc == 0 && i < p.n; i++) {
			/* the branch's head: NAME@latest, which in an open
			 * transaction reads its writes, a table it made
			 * included (docs/QUERY.md); the statement finds it or
			 * fails.  The name was checked (pins_from_obj). */
			if (names_head(p.refs[i], branch))
				p.nums[i] = 0;
			else
				rc = udr_query_resolve(&p.nums[i], q, p.names[i], p.refs[i]);
		}
		Py_END_ALLOW_THREADS
		if (rc == 0 && (pinned = pin_versions(sql, p.names, p.nums, p.n)) == NULL)
			rc = 1; /* exception set */
	}
	if (rc == 0) {
		const char *text = pinned ? pinned : sql;

		Py_BEGIN_ALLOW_THREADS
		/* the message of what this call commits (a write, or BEGIN) */
		rc = udr_query_set_message(q, message);
		if (rc == 0 && read_only)
			rc = udr_query_set_read_only(q, 1);
		if (rc == 0)
			rc = udr_query_sql_stream(&r, q, text, vals, nvals);
		if (read_only)
			(void)udr_query_set_read_only(q, 0);
		Py_END_ALLOW_THREADS
	}
	if (branch) {
		/* the stream's statement is bound: the other calls read main again
		 * (while a transaction is open the session stays on its branch) */
		(void)udr_query_set_branch(q, NULL);
		if (rc == 0)
			udr_error_clear();
	}
	if (rc < 0 && in_txn && rc == UDR_EINVAL && strncmp(udr_error_last()->message, "read-only session", 17) == 0)
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s", IN_TXN("a write statement of db.sql"));
	else if (rc < 0)
		udrpy_raise(rc);
	session_leave(d);
done:
	PyMem_Free(pinned);
	PyMem_Free(vals);
	Py_XDECREF(keep);
	pins_free(&p);
	if (rc != 0 || PyErr_Occurred()) {
		udr_stream_free(r);
		return NULL;
	}
	return result_new(NULL, r, d);
}

/* The version number of table at ref (NULL: latest), then a Result of
 * SELECT * over it.  name may be "NAME@REF" when ref is NULL. */
static PyObject *select_version(udrpy_db *d, const char *table, const char *ref)
{
	char name[UDR_TABLE_NAME_MAX + 1], sql[UDR_TABLE_NAME_MAX + 64];
	const char *at = strchr(table, '@');
	size_t nlen = at ? (size_t)(at - table) : strlen(table);
	udr_stream *r = NULL;
	udr_query *q;
	uint64_t num = 0;
	int rc;

	if (nlen > UDR_TABLE_NAME_MAX)
		nlen = UDR_TABLE_NAME_MAX;
	memcpy(name, table, nlen);
	name[nlen] = '\0';
	if ((q = session_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_resolve(&num, q, table, ref);
	if (rc == 0) {
		/* resolve checked the name ([A-Za-z0-9_.-]): safe to quote. */
		snprintf(sql, sizeof sql, "SELECT * FROM \"%s@%llu\"", name, (unsigned long long)num);
		rc = udr_query_sql_stream(&r, q, sql, NULL, 0);
	}
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	session_leave(d);
	return rc < 0 ? NULL : result_new(NULL, r, d);
}

PyDoc_STRVAR(read_doc,
"read(table, version=None, branch=None) -> Result\n\n"
"Every row of a table version: the latest (of branch, when given), or\n"
"version (a number, a reference such as 'commit:12' or '2026-11-01', or an\n"
"aware datetime).  table may also be 'NAME@REF'.  Raises NotFoundError for\n"
"an unknown table, version or branch.");

static PyObject *db_read(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "version", "branch", NULL};
	PyObject *tobj, *vobj = Py_None, *bobj = Py_None;
	char buf[REF_TEXT_MAX];
	const char *table, *ref;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:read", kwlist, &tobj, &vobj, &bobj))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL)
		return NULL;
	if (ref_text(&ref, buf, vobj, "version") < 0)
		return NULL;
	if (bobj != Py_None) {
		const char *b = udrpy_cstr(bobj, "branch");

		if (b == NULL)
			return NULL;
		if (ref != NULL)
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                       "give version or branch, not both");
		if (strlen(b) > REF_TEXT_MAX - 16)
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                       "invalid branch name %R", bobj);
		snprintf(buf, sizeof buf, "branch:%s", b);
		ref = buf;
	}
	return select_version(d, table, ref);
}

static int format_arg(int *out, PyObject *obj)
{
	static const struct { const char *name; int fmt; } formats[] = {
		{"auto", UDR_FORMAT_AUTO}, {"parquet", UDR_FORMAT_PARQUET},
		{"csv", UDR_FORMAT_CSV}, {"json", UDR_FORMAT_JSON},
		{"ndjson", UDR_FORMAT_NDJSON}, {"jsonl", UDR_FORMAT_NDJSON}};
	const char *s;

	*out = UDR_FORMAT_AUTO;
	if (obj == Py_None)
		return 0;
	if ((s = udrpy_cstr(obj, "format")) == NULL)
		return -1;
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (strcasecmp(s, formats[i].name) == 0) {
			*out = formats[i].fmt;
			return 0;
		}
	udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
	                "unknown format %R: use 'parquet', 'csv', 'json' or 'ndjson'", obj);
	return -1;
}

PyDoc_STRVAR(export_doc,
"export(table, path, version=None, format=None) -> int\n\n"
"Write a table version (latest unless version: a number, reference string\n"
"or aware datetime; table may be 'NAME@REF') to a file, atomically, and\n"
"return the number of rows.  format: 'parquet', 'csv', 'json' (an array)\n"
"or 'ndjson'; None takes it from path's extension.");

static PyObject *db_export(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "path", "version", "format", NULL};
	PyObject *tobj, *path = NULL, *vobj = Py_None, *fobj = Py_None;
	char buf[REF_TEXT_MAX];
	const char *table, *ref;
	uint64_t rows = 0;
	udr_query *q;
	int fmt, rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO&|OO:export", kwlist, &tobj,
	                                 PyUnicode_FSConverter, &path, &vobj, &fobj))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL ||
	    ref_text(&ref, buf, vobj, "version") < 0 || format_arg(&fmt, fobj) < 0 ||
	    (q = session_enter(d)) == NULL) {
		Py_DECREF(path);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_export(&rows, q, table, ref, PyBytes_AS_STRING(path), fmt);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	session_leave(d);
	Py_DECREF(path);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(rows);
}

PyDoc_STRVAR(diff_rows_doc,
"diff_rows(table, old, new, keys) -> Result\n\n"
"Row differences between two versions of a table (old, new: numbers,\n"
"reference strings or aware datetimes) joined on keys (a column name or a\n"
"list of them, unique in each version): one row per added, removed or\n"
"changed row, ordered by key, with columns change ('added', 'removed',\n"
"'changed'), the keys, then old.C and new.C for every other column C.");

static PyObject *db_diff_rows(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "old", "new", "keys", NULL};
	PyObject *tobj, *o1, *o2, *kobj, *kseq;
	char b1[REF_TEXT_MAX], b2[REF_TEXT_MAX];
	const char *table, *r1, *r2, **keys = NULL;
	udr_result *r = NULL;
	Py_ssize_t nk;
	udr_query *q;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:diff_rows", kwlist, &tobj, &o1, &o2,
	                                 &kobj))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL ||
	    ref_text(&r1, b1, o1, "old") < 0 || ref_text(&r2, b2, o2, "new") < 0)
		return NULL;
	kseq = PyUnicode_Check(kobj) ? PyTuple_Pack(1, kobj) : PySequence_Tuple(kobj);
	if (kseq == NULL)
		return NULL;
	nk = PyTuple_GET_SIZE(kseq);
	if (nk == 0) {
		Py_DECREF(kseq);
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "diff_rows needs at least one key column");
	}
	keys = PyMem_Calloc((size_t)nk, sizeof *keys);
	if (keys == NULL) {
		Py_DECREF(kseq);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < nk; i++)
		if ((keys[i] = udrpy_cstr(PyTuple_GET_ITEM(kseq, i), "key column")) == NULL)
			goto fail;
	if ((q = session_enter(d)) == NULL)
		goto fail;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_diff_rows(&r, q, table, r1, r2, keys, (size_t)nk);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	session_leave(d);
	PyMem_Free(keys);
	Py_DECREF(kseq);
	return rc < 0 ? NULL : result_new(r, NULL, NULL);
fail:
	PyMem_Free(keys);
	Py_DECREF(kseq);
	return NULL;
}

/* Is obj a path (str, bytes or os.PathLike)? */
static int is_path(PyObject *obj)
{
	return PyUnicode_Check(obj) || PyBytes_Check(obj) ||
	       PyObject_HasAttrString(obj, "__fspath__");
}

PyDoc_STRVAR(write_doc,
"write(table, data, mode='overwrite', *, format=None, message=None) -> int\n\n"
"Import data as the next version of table and return its number.  data is\n"
"a file path (or a list of paths, all of one format: Parquet, CSV, JSON,\n"
"NDJSON, by extension or format=), a list of dicts (rows), a dict of\n"
"columns (name -> list of values), or a pandas DataFrame; in-memory data\n"
"goes through a temporary NDJSON file, which keeps the JSON types (int ->\n"
"BIGINT, float -> DOUBLE, bool -> BOOLEAN, str -> VARCHAR, None -> NULL);\n"
"a column of aware datetimes (pandas Timestamps with tz) becomes TIMESTAMP\n"
"WITH TIME ZONE, of naive ones TIMESTAMP, of dates DATE, of times TIME, of\n"
"Decimals DECIMAL(p,s), of UUIDs UUID (bytes: write a Parquet file).\n"
"mode 'overwrite' makes a version of only this data; 'append' keeps the\n"
"previous version's parts (columns must match by name and order; a missing\n"
"table is created).  Raises InvalidArgumentError for unreadable data or a\n"
"schema mismatch, NotFoundError for a missing file; nothing is committed\n"
"on error.");

/* The udr.schema text of table's latest version on ref (NULL: main), or
 * None when it has none (no such table, or not one SQL wrote). */
static PyObject *table_schema(udrpy_db *d, const char *table, const char *ref)
{
	char r[UDR_REF_NAME_MAX + 8];
	udr_version *v = NULL;
	udr_db *h;
	PyObject *out = NULL;
	const char *sch;
	int rc;
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	snprintf(r, sizeof(r), "%s%s", ref && strchr(ref, ':') ? "" : "branch:", ref ? ref : "main");
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_get_version_on(&v, udr_db_catalog(h), table, 0, r);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0 || udr_version_is_dropped(v) || !(sch = udr_version_get_meta(v, "udr.schema"))) {
		udr_error_clear();
		udr_version_free(v);
		Py_RETURN_NONE;
	}
	out = PyUnicode_FromString(sch);
	udr_version_free(v);
	return out;
}

static PyObject *db_write(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "data", "mode", "format", "message", "branch", NULL};
	PyObject *tobj, *data, *fobj = Py_None, *mobj = Py_None, *bobj = Py_None, *paths = NULL, *tmp = NULL;
	PyObject *ret = NULL, *tlist = NULL;
	const char *table, *mode = "overwrite", **files = NULL, **types = NULL;
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	uint64_t version = 0;
	Py_ssize_t nfiles = 0;
	udr_query *q;
	int rc = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|s$OOO:write", kwlist, &tobj, &data, &mode,
	                                 &fobj, &mobj, &bobj))
		return NULL;
	if (udrpy_db_txn_here(d))
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s", IN_TXN("db.write"));
	if (bobj != Py_None && (io.ref = udrpy_cstr(bobj, "branch")) == NULL)
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL)
		return NULL;
	if (strcmp(mode, "overwrite") == 0)
		io.mode = UDR_IMPORT_OVERWRITE;
	else if (strcmp(mode, "append") == 0)
		io.mode = UDR_IMPORT_APPEND;
	else
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "invalid mode '%s': must be 'overwrite' or 'append'", mode);
	if (format_arg(&io.format, fobj) < 0)
		return NULL;
	if (mobj != Py_None && (io.message = udrpy_cstr(mobj, "message")) == NULL)
		return NULL;
	/* Paths: one, or a non-empty list/tuple of them. */
	if (is_path(data)) {
		paths = PyList_New(1);
		if (paths == NULL)
			return NULL;
		PyList_SET_ITEM(paths, 0, Py_NewRef(data));
	} else if ((PyList_Check(data) || PyTuple_Check(data)) && PySequence_Size(data) > 0 &&
	           is_path(PySequence_Fast_GET_ITEM(data, 0))) {
		paths = PySequence_List(data);
		if (paths == NULL)
			return NULL;
	} else {
		PyObject *mod = PyImport_ImportModule("udr._data");

		if (mod == NULL)
			return NULL;
		/* an append reads the rows with the table's types: the checks
		 * of a new table's types are not for it; a DataFrame's index is
		 * kept there only when the table has its columns */
		PyObject *schema = NULL;
		if (io.mode == UDR_IMPORT_APPEND && (schema = table_schema(d, table, io.ref)) == NULL) {
			Py_DECREF(mod);
			return NULL;
		}
		ret = PyObject_CallMethod(mod, "write_temp", "OiO", data, io.mode == UDR_IMPORT_APPEND,
		                          schema ? schema : Py_None);
		Py_XDECREF(schema);
		Py_DECREF(mod);
		if (ret == NULL)
			return NULL;
		/* (path, [(column, type), ...]): the columns JSON has no type for */
		if (!PyArg_ParseTuple(ret, "OO!", &tmp, &PyList_Type, &tlist)) {
			Py_DECREF(ret);
			return NULL;
		}
		Py_INCREF(tmp);
		paths = PyList_New(1);
		if (paths == NULL)
			goto done;
		PyList_SET_ITEM(paths, 0, Py_NewRef(tmp));
		io.format = UDR_FORMAT_NDJSON;
		io.ntypes = (size_t)PyList_GET_SIZE(tlist);
		types = PyMem_Calloc(2 * io.ntypes + 1, sizeof *types);
		if (types == NULL) {
			PyErr_NoMemory();
			goto done;
		}
		for (size_t i = 0; i < io.ntypes; i++) {
			PyObject *pair = PyList_GET_ITEM(tlist, (Py_ssize_t)i);

			if (!PyArg_ParseTuple(pair, "ss", &types[2 * i], &types[2 * i + 1]))
				goto done;
		}
		io.types = types;
	}
	nfiles = PyList_GET_SIZE(paths);
	files = PyMem_Calloc((size_t)nfiles, sizeof *files);
	if (files == NULL) {
		PyErr_NoMemory();
		goto done;
	}
	/* Each item becomes its filesystem bytes, kept in paths. */
	for (Py_ssize_t i = 0; i < nfiles; i++) {
		PyObject *b = NULL;

		if (!PyUnicode_FSConverter(PyList_GET_ITEM(paths, i), &b))
			goto done;
		PyList_SetItem(paths, i, b);
		files[i] = PyBytes_AS_STRING(b);
	}
	if ((q = session_enter(d)) == NULL)
		goto done;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_import(&version, q, table, files, (size_t)nfiles, &io);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	session_leave(d);
done:
	if (tmp != NULL) {
		PyObject *b = NULL;

		if (PyUnicode_FSConverter(tmp, &b)) {
			unlink(PyBytes_AS_STRING(b));
			Py_DECREF(b);
		}
		Py_DECREF(tmp);
	}
	PyMem_Free(files);
	PyMem_Free(types);
	Py_XDECREF(ret); /* after the import: types point into it */
	Py_XDECREF(paths);
	if (rc < 0 || PyErr_Occurred())
		return NULL;
	return PyLong_FromUnsignedLongLong(version);
}

/* ---- merges row by row, conflicts (include/udr/query.h) ----------------------------------- */

/* The recorded conflicts of the merge into `into` as a list of dicts
 * {target, table, key, base, ours, theirs, resolved}, JSON values parsed;
 * the session held, the GIL too (released around the SQL). */
static PyObject *conflict_list(udr_query *q, const char *into)
{
	udr_value p = udr_value_text(into ? into : "main");
	udr_result *r = NULL;
	char *text = NULL;
	PyObject *json = NULL, *loads = NULL, *list = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_sql(&r, q,
	                   "SELECT target, \"table\", key::VARCHAR AS key, base::VARCHAR AS base, ours::VARCHAR AS ours, "
	                   "theirs::VARCHAR AS theirs, resolved FROM udr_conflicts WHERE target = ? "
	                   "ORDER BY \"table\", key::VARCHAR",
	                   &p, 1);
	if (rc == 0)
		rc = udr_result_format(&text, NULL, r, UDR_OUTPUT_JSON);
	Py_END_ALLOW_THREADS
	udr_result_free(r);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) == NULL || (loads = PyObject_GetAttrString(json, "loads")) == NULL ||
	    (list = PyObject_CallFunction(loads, "s", text)) == NULL)
		goto out;
	/* key, base, ours, theirs are JSON text: parsed */
	for (Py_ssize_t i = 0; i < PyList_Size(list); i++) {
		PyObject *row = PyList_GetItem(list, i);
		static const char *const cols[] = {"key", "base", "ours", "theirs"};
		for (size_t c = 0; c < 4; c++) {
			PyObject *v = PyDict_GetItemString(row, cols[c]), *x;
			if (v == NULL || v == Py_None)
				continue;
			if ((x = PyObject_CallFunctionObjArgs(loads, v, NULL)) == NULL ||
			    PyDict_SetItemString(row, cols[c], x) < 0) {
				Py_XDECREF(x);
				Py_CLEAR(list);
				goto out;
			}
			Py_DECREF(x);
		}
	}
out:
	udr_free(text);
	Py_XDECREF(loads);
	Py_XDECREF(json);
	return list;
}

/* {table: [rows]} of conflict_list. */
static PyObject *rows_by_table(PyObject *list)
{
	PyObject *d = PyDict_New();
	for (Py_ssize_t i = 0; d && i < PyList_Size(list); i++) {
		PyObject *row = PyList_GetItem(list, i), *t = PyDict_GetItemString(row, "table"), *l;
		if (t == NULL)
			continue;
		if ((l = PyDict_GetItem(d, t)) == NULL) {
			if ((l = PyList_New(0)) == NULL || PyDict_SetItem(d, t, l) < 0) {
				Py_XDECREF(l);
				Py_CLEAR(d);
				break;
			}
			Py_DECREF(l);
		}
		if (PyList_Append(l, row) < 0)
			Py_CLEAR(d);
	}
	return d;
}

/* A merge's outcome: the dict, or MergeConflictError with the recorded rows. */
static PyObject *merge_outcome(udr_query *q, const udr_merge_result *m, int rc, int dry_run, const char *into)
{
	PyObject *rows = NULL, *res;
	char msg[2048];
	snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
	if (rc == UDR_ECONFLICT && m && m->nconflicts > 0 && !dry_run) {
		PyObject *list = conflict_list(q, into);
		if (list == NULL)
			return NULL;
		rows = rows_by_table(list);
		Py_DECREF(list);
		if (rows == NULL)
			return NULL;
	}
	res = udrpy_merge_finish(m, rc, dry_run, rows, msg);
	Py_XDECREF(rows);
	return res;
}

/* {table: value} of strings (a value of a list of strings joined by ","): arrays for the options. */
static int str_map(const char ***names, const char ***vals, size_t *n, PyObject *o, const char *what,
                   PyObject **keep)
{
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	*names = NULL;
	*vals = NULL;
	*n = 0;
	if (o == Py_None)
		return 0;
	if (!PyDict_Check(o)) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s must be a dict of table name -> value", what);
		return -1;
	}
	*names = PyMem_Calloc((size_t)PyDict_Size(o) + 1, sizeof(char *));
	*vals = PyMem_Calloc((size_t)PyDict_Size(o) + 1, sizeof(char *));
	if (*names == NULL || *vals == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	while (PyDict_Next(o, &pos, &k, &v)) {
		PyObject *sv = v;
		if (PyList_Check(v) || PyTuple_Check(v)) {
			PyObject *sep = PyUnicode_FromString(",");
			sv = sep ? PyUnicode_Join(sep, v) : NULL;
			Py_XDECREF(sep);
			if (sv == NULL || PyList_Append(*keep, sv) < 0) {
				Py_XDECREF(sv);
				return -1;
			}
			Py_DECREF(sv);
		}
		if (((*names)[*n] = udrpy_cstr(k, what)) == NULL || ((*vals)[*n] = udrpy_cstr(sv, what)) == NULL)
			return -1;
		(*n)++;
	}
	return 0;
}

PyDoc_STRVAR(qmerge_doc,
             "merge(source, into='main', strategy=None, tables=None, dry_run=False, message=None,\n"
             "      keys=None, strictness=None) -> dict\n\n"
             "Merge the commit source names into branch into: nothing when it is\n"
             "already there, a fast-forward when into has nothing of its own, else\n"
             "three-way: a table changed on one side takes that side; a table changed\n"
             "on both sides is merged row by row on its key (keys={'t': 'id'} or\n"
             "{'t': ['region', 'id']}, or the key a version merged row by row\n"
             "records) with strictness={'t': 'row'|'cell'|'table'} (row by\n"
             "default), else it conflicts unless strategy, or tables={'t': 'ours'},\n"
             "picks a side.  Returns {commit, base, ours, theirs, up_to_date,\n"
             "fast_forward, dry_run, tables, conflicts}; a table merged row by row\n"
             "has counts {ours, theirs, same, cells, conflict}.  With conflicts\n"
             "nothing is written to into, they are recorded (db.conflicts(),\n"
             "db.resolve_conflict(), db.merge_continue(), db.merge_abort()) and\n"
             "udr.MergeConflictError is raised; its .conflicts lists the tables\n"
             "({table, base, ours, theirs, counts?, note?, rows: the recorded\n"
             "conflicting rows}) and .result is the dict.");
static PyObject *db_qmerge(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"source", "into", "strategy", "tables", "dry_run", "message", "keys", "strictness", NULL};
	udrpy_db *d = (udrpy_db *)self;
	const char *source, *into = NULL, *message = NULL;
	PyObject *iobj = Py_None, *sobj = Py_None, *tobj = Py_None, *mobj = Py_None, *kobj = Py_None,
	         *xobj = Py_None, *res = NULL, *keep = NULL;
	int dry_run = 0, rc;
	udr_rowmerge_options ro = UDR_ROWMERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	const char **names = NULL, **knames = NULL, **kcols = NULL, **snames = NULL, **svals = NULL;
	int *strat = NULL, *strict = NULL;
	size_t nk = 0, ns = 0;
	udr_query *q;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OOOpOOO:merge", kwlist, &source, &iobj, &sobj, &tobj, &dry_run,
	                                 &mobj, &kobj, &xobj) ||
	    udrpy_opt_str(&into, iobj, "into") < 0 || udrpy_opt_str(&message, mobj, "message") < 0 ||
	    udrpy_strategy_of(&ro.merge.strategy, sobj, "strategy") < 0 || (keep = PyList_New(0)) == NULL)
		return NULL;
	if (udrpy_merge_tables(&ro.merge, &names, &strat, tobj) < 0 ||
	    str_map(&knames, &kcols, &nk, kobj, "keys", &keep) < 0 ||
	    str_map(&snames, &svals, &ns, xobj, "strictness", &keep) < 0)
		goto out;
	if ((strict = PyMem_Calloc(ns + 1, sizeof(int))) == NULL) {
		PyErr_NoMemory();
		goto out;
	}
	for (size_t i = 0; i < ns; i++) {
		if (strcmp(svals[i], "row") == 0)
			strict[i] = UDR_STRICT_ROW;
		else if (strcmp(svals[i], "cell") == 0)
			strict[i] = UDR_STRICT_CELL;
		else if (strcmp(svals[i], "table") == 0)
			strict[i] = UDR_STRICT_TABLE;
		else {
			udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                "strictness must be 'row', 'cell' or 'table', not '%s'", svals[i]);
			goto out;
		}
	}
	ro.merge.dry_run = dry_run;
	ro.merge.message = message;
	ro.key_tables = knames;
	ro.keys = kcols;
	ro.nkeys = nk;
	ro.strict_tables = snames;
	ro.strictness = strict;
	ro.nstrict = ns;
	if ((q = session_enter(d)) == NULL)
		goto out;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_merge(&m, q, source, into, &ro);
	Py_END_ALLOW_THREADS
	res = merge_outcome(q, m, rc, dry_run, into);
	session_leave(d);
out:
	udr_merge_result_free(m);
	PyMem_Free(names);
	PyMem_Free(strat);
	PyMem_Free(knames);
	PyMem_Free(kcols);
	PyMem_Free(snames);
	PyMem_Free(svals);
	PyMem_Free(strict);
	Py_XDECREF(keep);
	return res;
}

PyDoc_STRVAR(conflicts_doc,
             "conflicts(into='main') -> list\n\n"
             "The recorded conflicts of the last merge into into that had some\n"
             "(udr_conflicts): [{target, table, key, base, ours, theirs, resolved}],\n"
             "rows as dicts (None: absent); a table-level conflict has key None and\n"
             "{'version': N} per side.  [] when there is none.");
static PyObject *db_conflicts(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"into", NULL};
	udrpy_db *d = (udrpy_db *)self;
	PyObject *iobj = Py_None, *res;
	const char *into = NULL;
	udr_query *q;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:conflicts", kwlist, &iobj) ||
	    udrpy_opt_str(&into, iobj, "into") < 0 || (q = session_enter(d)) == NULL)
		return NULL;
	res = conflict_list(q, into);
	session_leave(d);
	return res;
}

PyDoc_STRVAR(resolve_conflict_doc,
             "resolve_conflict(table, side=None, key=None, sql=None, into='main') -> None\n\n"
             "Resolve table in the recorded merge into into: side 'ours' or 'theirs'\n"
             "for the whole table, or for the one conflicting row whose key is key\n"
             "(the value for a one-column key, else its JSON object text); or sql, a\n"
             "query whose rows are the table's resolved version.  Committed by\n"
             "merge_continue().");
static PyObject *db_resolve_conflict(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"table", "side", "key", "sql", "into", NULL};
	udrpy_db *d = (udrpy_db *)self;
	PyObject *sobj = Py_None, *kobj = Py_None, *qobj = Py_None, *iobj = Py_None, *kstr = NULL;
	const char *table, *into = NULL, *key = NULL, *sql = NULL;
	int side = 0, rc;
	udr_query *q;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OOOO:resolve_conflict", kwlist, &table, &sobj, &kobj, &qobj,
	                                 &iobj) ||
	    udrpy_strategy_of(&side, sobj, "side") < 0 || udrpy_opt_str(&sql, qobj, "sql") < 0 ||
	    udrpy_opt_str(&into, iobj, "into") < 0)
		return NULL;
	if (kobj != Py_None) {
		/* a key value: as text (what key_text holds); a several-column
		 * key as conflicts() gives it (a dict) as its JSON */
		if (PyDict_Check(kobj)) {
			PyObject *json = PyImport_ImportModule("json"), *dumps = NULL, *a = NULL, *kwd = NULL;
			if (json && (dumps = PyObject_GetAttrString(json, "dumps")) && (a = PyTuple_Pack(1, kobj)) &&
			    (kwd = Py_BuildValue("{s:O}", "ensure_ascii", Py_False)))
				kstr = PyObject_Call(dumps, a, kwd);
			Py_XDECREF(json);
			Py_XDECREF(dumps);
			Py_XDECREF(a);
			Py_XDECREF(kwd);
		} else {
			kstr = PyObject_Str(kobj);
		}
		if (kstr == NULL || (key = udrpy_cstr(kstr, "key")) == NULL) {
			Py_XDECREF(kstr);
			return NULL;
		}
	}
	if ((q = session_enter(d)) == NULL) {
		Py_XDECREF(kstr);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_merge_resolve(q, into, table, side, key, sql);
	Py_END_ALLOW_THREADS
	session_leave(d);
	Py_XDECREF(kstr);
	if (rc < 0)
		return udrpy_raise(rc);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(merge_continue_doc,
             "merge_continue(into='main') -> dict\n\n"
             "Commit the recorded merge into into with its resolutions, if into has\n"
             "not moved since (else udr.ConflictError: merge_abort() and merge\n"
             "again).  Conflicts left: udr.MergeConflictError, as merge().");
static PyObject *db_merge_continue(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"into", NULL};
	udrpy_db *d = (udrpy_db *)self;
	PyObject *iobj = Py_None, *res;
	const char *into = NULL;
	udr_merge_result *m = NULL;
	udr_query *q;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:merge_continue", kwlist, &iobj) ||
	    udrpy_opt_str(&into, iobj, "into") < 0 || (q = session_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_merge_continue(&m, q, into);
	Py_END_ALLOW_THREADS
	if (rc < 0 && !m)
		res = udrpy_raise(rc);
	else
		res = merge_outcome(q, m, rc, 0, into);
	session_leave(d);
	udr_merge_result_free(m);
	return res;
}

PyDoc_STRVAR(merge_abort_doc, "merge_abort(into='main') -> None\n\nDiscard the recorded merge into into.");
static PyObject *db_merge_abort(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"into", NULL};
	udrpy_db *d = (udrpy_db *)self;
	PyObject *iobj = Py_None;
	const char *into = NULL;
	udr_query *q;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:merge_abort", kwlist, &iobj) ||
	    udrpy_opt_str(&into, iobj, "into") < 0 || (q = session_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_query_merge_abort(q, into);
	Py_END_ALLOW_THREADS
	session_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	Py_RETURN_NONE;
}

PyMethodDef udrpy_query_methods[] = {
	{"sql", (PyCFunction)(void (*)(void))db_sql, METH_VARARGS | METH_KEYWORDS, sql_doc},
	{"read", (PyCFunction)(void (*)(void))db_read, METH_VARARGS | METH_KEYWORDS, read_doc},
	{"write", (PyCFunction)(void (*)(void))db_write, METH_VARARGS | METH_KEYWORDS, write_doc},
	{"export", (PyCFunction)(void (*)(void))db_export, METH_VARARGS | METH_KEYWORDS,
	 export_doc},
	{"diff_rows", (PyCFunction)(void (*)(void))db_diff_rows, METH_VARARGS | METH_KEYWORDS,
	 diff_rows_doc},
	/* added after the refs methods: replaces their table-level merge */
	{"merge", (PyCFunction)(void (*)(void))db_qmerge, METH_VARARGS | METH_KEYWORDS, qmerge_doc},
	{"conflicts", (PyCFunction)(void (*)(void))db_conflicts, METH_VARARGS | METH_KEYWORDS, conflicts_doc},
	{"resolve_conflict", (PyCFunction)(void (*)(void))db_resolve_conflict, METH_VARARGS | METH_KEYWORDS,
	 resolve_conflict_doc},
	{"merge_continue", (PyCFunction)(void (*)(void))db_merge_continue, METH_VARARGS | METH_KEYWORDS,
	 merge_continue_doc},
	{"merge_abort", (PyCFunction)(void (*)(void))db_merge_abort, METH_VARARGS | METH_KEYWORDS, merge_abort_doc},
	{NULL, NULL, 0, NULL}};

#endif /* UDRPY_HAVE_QUERY */
