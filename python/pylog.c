/*
 * pylog.c - the changelog (include/udr/log.h): udr.Event (a struct
 * sequence, one per commit), Catalog/Database.changes(), udr.Subscription
 * (Catalog/Database.subscribe(): a blocking iterator or a callback on a
 * daemon thread), and time travel by time (Catalog.get_version_at,
 * get_version_at_seq, seq_at).
 *
 * A subscription delivers every matching commit with seq > its cursor, in
 * order, and sets the cursor to the seq of each event it delivers: a
 * subscriber that saves sub.cursor and later subscribes with since=cursor
 * receives every later event exactly once.  Waiting happens without the GIL
 * in slices of WAIT_SLICE_MS (udr_catalog_wait), so Ctrl-C and close() take
 * effect promptly.
 */
#include "udrpy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_SLICE_MS 200
#define LOG_BATCH 256

PyTypeObject *udrpy_EventType;

static PyStructSequence_Field event_fields[] = {
	{"seq", "commit sequence number (1, 2, 3 ... without gaps)"},
	{"time", "commit time, a timezone-aware UTC datetime"},
	{"time_ms", "commit time in ms since the Unix epoch (UTC)"},
	{"branch", "branch name ('main')"},
	{"author", "author (UDR_AUTHOR, else the user name)"},
	{"message", "commit message or None"},
	{"changes", "list of (table, old_version, new_version); old_version 0 for a new table"},
	{"parent", "previous commit on the same branch (0: none)"},
	{NULL, NULL}};

static PyStructSequence_Desc event_desc = {
	"udr.Event",
	"Event - one commit of the changelog, as returned by changes() and\n"
	"subscribe(): a named tuple (seq, time, time_ms, branch, author, message,\n"
	"changes, parent).",
	event_fields, 8};

int udrpy_log_init(PyObject *module)
{
	if (udrpy_EventType == NULL) {
		udrpy_EventType = PyStructSequence_NewType(&event_desc);
		if (udrpy_EventType == NULL)
			return -1;
	}
	return PyModule_AddObjectRef(module, "Event", (PyObject *)udrpy_EventType);
}

static PyObject *str_or_none(const char *s)
{
	if (s == NULL)
		Py_RETURN_NONE;
	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "backslashreplace");
}

static PyObject *event_from_commit(const udr_commit *c)
{
	PyObject *ev = PyStructSequence_New(udrpy_EventType), *changes, *item;

	if (ev == NULL)
		return NULL;
	changes = PyList_New((Py_ssize_t)c->nchanges);
	if (changes == NULL)
		goto fail;
	PyStructSequence_SET_ITEM(ev, 6, changes);
	for (size_t i = 0; i < c->nchanges; i++) {
		item = Py_BuildValue("(NKK)", str_or_none(c->changes[i].table),
		                     (unsigned long long)c->changes[i].old_version,
		                     (unsigned long long)c->changes[i].new_version);
		if (item == NULL)
			goto fail;
		PyList_SET_ITEM(changes, (Py_ssize_t)i, item);
	}
	PyStructSequence_SET_ITEM(ev, 0, PyLong_FromUnsignedLongLong(c->seq));
	PyStructSequence_SET_ITEM(ev, 1, udrpy_datetime_from_ms(c->time_ms));
	PyStructSequence_SET_ITEM(ev, 2, PyLong_FromLongLong(c->time_ms));
	PyStructSequence_SET_ITEM(ev, 3, str_or_none(c->branch));
	PyStructSequence_SET_ITEM(ev, 4, str_or_none(c->author));
	PyStructSequence_SET_ITEM(ev, 5, str_or_none(c->message));
	PyStructSequence_SET_ITEM(ev, 7, PyLong_FromUnsignedLongLong(c->parent));
	for (int i = 0; i < 8; i++)
		if (PyStructSequence_GET_ITEM(ev, i) == NULL)
			goto fail;
	return ev;
fail:
	Py_DECREF(ev);
	return NULL;
}

static PyObject *events_from_commits(udr_commit **commits, size_t n)
{
	PyObject *list = PyList_New((Py_ssize_t)n);

	for (size_t i = 0; list != NULL && i < n; i++) {
		PyObject *ev = event_from_commit(commits[i]);

		if (ev == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, ev);
	}
	udr_commit_array_free(commits, n);
	return list;
}

/* tables (None, a str, or an iterable of str) as a C array of strdup'd
 * names: 0, or -1 with an exception set.  *out stays NULL for None. */
static int tables_arg(char ***out, size_t *n, PyObject *tables)
{
	PyObject *seq;
	char **names;

	*out = NULL;
	*n = 0;
	if (tables == Py_None)
		return 0;
	if (PyUnicode_Check(tables))
		seq = PyTuple_Pack(1, tables);
	else
		seq = PySequence_Tuple(tables);
	if (seq == NULL)
		return -1;
	names = calloc((size_t)PyTuple_GET_SIZE(seq) + 1, sizeof *names);
	if (names == NULL) {
		Py_DECREF(seq);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
		const char *s = udrpy_cstr(PyTuple_GET_ITEM(seq, i), "table name");

		if (s == NULL || (names[i] = strdup(s)) == NULL) {
			if (s != NULL)
				PyErr_NoMemory();
			udr_strarray_free(names, (size_t)i);
			Py_DECREF(seq);
			return -1;
		}
	}
	*n = (size_t)PyTuple_GET_SIZE(seq);
	*out = names;
	Py_DECREF(seq);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

/* The seq to start after for since_time t: commits at or after t have
 * seq > seq_at_time(t - 1). */
static int since_time_seq(uint64_t *out, udr_catalog *cat, int64_t ms)
{
	int rc;

	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_seq_at_time(out, cat, ms - 1);
	Py_END_ALLOW_THREADS
	return rc;
}

/* ---- changes ---------------------------------------------------------- */

#define SINCE_WHAT "since"

PyObject *udrpy_log_changes(PyObject *catobj, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"since", "since_time", "tables", "branch", "limit",
	                         "newest_first", NULL};
	udrpy_catalog *c = (udrpy_catalog *)catobj;
	PyObject *sobj = Py_None, *tobj = Py_None, *tables = Py_None, *bobj = Py_None,
	         *lobj = Py_None;
	int newest = 0, rc;
	udr_log_query q = UDR_LOG_QUERY_INIT;
	char **names = NULL;
	size_t nnames = 0, count = 0;
	udr_commit **commits = NULL;
	udr_catalog *cat;
	uint64_t lim = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$OOOOp:changes", kwlist, &sobj, &tobj,
	                                 &tables, &bobj, &lobj, &newest))
		return NULL;
	if (sobj != Py_None && udrpy_u64_from_obj(&q.since_seq, sobj, 0, SINCE_WHAT) < 0)
		return NULL;
	if (tobj != Py_None && udrpy_ms_from_datetime(&q.since_ms, tobj, "since_time") < 0)
		return NULL;
	if (bobj != Py_None && (q.branch = udrpy_cstr(bobj, "branch")) == NULL)
		return NULL;
	if (lobj != Py_None) {
		if (udrpy_u64_from_obj(&lim, lobj, 0, "limit") < 0)
			return NULL;
		if (lim == 0)
			return PyList_New(0);
		q.limit = (size_t)lim;
	}
	if (tables_arg(&names, &nnames, tables) < 0)
		return NULL;
	q.tables = (const char *const *)names;
	q.ntables = nnames;
	q.newest_first = newest;
	if (names != NULL && nnames == 0) {
		free_names(names, nnames);
		return PyList_New(0);
	}
	cat = udrpy_catalog_enter(c);
	if (cat == NULL) {
		free_names(names, nnames);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_log(&commits, &count, cat, &q);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	free_names(names, nnames);
	if (rc < 0)
		return NULL;
	return events_from_commits(commits, count);
}

/* ---- time travel ------------------------------------------------------- */

const char udrpy_get_version_at_doc[] =
"get_version_at(table, when) -> TableVersion\n\n"
"The version of a table as it was at time `when`, a timezone-aware\n"
"datetime (converted to UTC milliseconds; a naive datetime raises\n"
"InvalidArgumentError, a ValueError, since UDR never guesses a time zone):\n"
"the latest version made by a commit at or before it.  Raises NotFoundError\n"
"when the table had no version then.";

PyObject *udrpy_catalog_get_version_at(PyObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "when", NULL};
	udrpy_catalog *c = (udrpy_catalog *)self;
	PyObject *tobj, *when;
	const char *table;
	udr_version *v = NULL;
	udr_catalog *cat;
	int64_t ms;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:get_version_at", kwlist, &tobj, &when))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL ||
	    udrpy_ms_from_datetime(&ms, when, "when") < 0)
		return NULL;
	if ((cat = udrpy_catalog_enter(c)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_get_version_at_time(&v, cat, table, ms);
	if (rc == 0)
		rc = udrpy_version_check_readable(cat, &v);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : udrpy_version_wrap(v);
}

const char udrpy_get_version_at_seq_doc[] =
"get_version_at_seq(table, seq) -> TableVersion\n\n"
"The version of a table as it was right after commit `seq`: the latest\n"
"version made by a commit <= seq.  Raises NotFoundError when the table had\n"
"no version then.";

PyObject *udrpy_catalog_get_version_at_seq(PyObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "seq", NULL};
	udrpy_catalog *c = (udrpy_catalog *)self;
	PyObject *tobj, *sobj;
	const char *table;
	udr_version *v = NULL;
	udr_catalog *cat;
	uint64_t seq;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:get_version_at_seq", kwlist, &tobj,
	                                 &sobj))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL ||
	    udrpy_version_from_obj(&seq, sobj, 0) < 0)
		return NULL;
	if ((cat = udrpy_catalog_enter(c)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_get_version_at_seq(&v, cat, table, seq);
	if (rc == 0)
		rc = udrpy_version_check_readable(cat, &v);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : udrpy_version_wrap(v);
}

const char udrpy_seq_at_doc[] =
"seq_at(when) -> int\n\n"
"The sequence number of the last commit made at or before `when` (a\n"
"timezone-aware datetime); 0 when the log starts later.";

PyObject *udrpy_catalog_seq_at(PyObject *self, PyObject *when)
{
	udrpy_catalog *c = (udrpy_catalog *)self;
	udr_catalog *cat;
	uint64_t seq = 0;
	int64_t ms;
	int rc;

	if (udrpy_ms_from_datetime(&ms, when, "when") < 0)
		return NULL;
	if ((cat = udrpy_catalog_enter(c)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_seq_at_time(&seq, cat, ms);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(seq);
}

/* ---- subscriptions ----------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	udrpy_catalog *cat;    /* strong ref; pinned only during calls */
	char **tables;         /* NULL: all */
	size_t ntables;
	char *branch;          /* NULL: all */
	uint64_t cursor;       /* seq of the last delivered event */
	PyObject *pending;     /* list of events fetched, not yet delivered */
	Py_ssize_t pos;        /* next pending index */
	int closed;
	int busy;              /* a thread is inside next */
	PyObject *callback;    /* callable or NULL */
	PyObject *thread;      /* threading.Thread of callback mode or NULL */
	PyObject *error;       /* exception that stopped callback mode, or NULL */
	PyObject *weakreflist;
	udr_pin *gcpin;        /* an after pin at the cursor (GC.md 2.3), NULL once closed */
} udrpy_sub;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next event (new ref); NULL without an exception on timeout or when
 * closed, NULL with an exception on error.  timeout_ms < 0: forever. */
static PyObject *sub_next_event(udrpy_sub *s, int64_t timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	udr_catalog *cat;
	int rc;

	for (;;) {
		udr_log_query q = UDR_LOG_QUERY_INIT;
		udr_commit **commits = NULL;
		size_t n = 0;
		uint64_t head = 0, seen;

		if (s->closed)
			return NULL;
		if (s->pending != NULL && s->pos < PyList_GET_SIZE(s->pending)) {
			PyObject *ev = Py_NewRef(PyList_GET_ITEM(s->pending, s->pos));

			s->pos++;
			s->cursor = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(ev, 0));
			/* the event's versions stay pinned while the caller reads
			 * them: the pin moves to just before it */
			if (s->gcpin != NULL && s->cursor > 0 && udr_pin_advance(s->gcpin, s->cursor - 1) < 0)
				udr_error_clear(); /* the older pin stays: it keeps more */
			if (s->pos == PyList_GET_SIZE(s->pending)) {
				Py_CLEAR(s->pending);
				s->pos = 0;
			}
			return ev;
		}
		/* Everything matching after the cursor, in batches. */
		q.since_seq = s->cursor;
		q.tables = (const char *const *)s->tables;
		q.ntables = s->ntables;
		q.branch = s->branch;
		q.limit = LOG_BATCH;
		if ((cat = udrpy_catalog_enter(s->cat)) == NULL)
			return NULL;
		Py_BEGIN_ALLOW_THREADS
		rc = udr_catalog_head(&head, cat);
		if (rc == 0)
			rc = udr_catalog_log(&commits, &n, cat, &q);
		if (rc == UDR_ENOTFOUND && q.branch) {
			/* a branch to come (it never existed): no events yet */
			udr_reflog_entry *e = NULL;
			size_t ne = 0;
			if (udr_branch_reflog(&e, &ne, cat, q.branch, 1) == UDR_ENOTFOUND) {
				udr_error_clear();
				rc = 0;
				n = 0;
			}
			udr_reflog_free(e, ne);
		}
		Py_END_ALLOW_THREADS
		if (rc < 0)
			udrpy_raise(rc);
		udrpy_catalog_leave(s->cat);
		if (rc < 0)
			return NULL;
		if (n > 0) {
			Py_XDECREF(s->pending);
			s->pending = events_from_commits(commits, n);
			s->pos = 0;
			if (s->pending == NULL)
				return NULL;
			continue;
		}
		udr_commit_array_free(commits, n);
		/* Nothing matched up to head: wait for a commit after it, in
		 * slices so that close() and signals are seen. */
		seen = head > s->cursor ? head : s->cursor;
		for (;;) {
			int slice = WAIT_SLICE_MS;

			if (s->closed)
				return NULL;
			if (deadline >= 0) {
				int64_t left = deadline - mono_ms();

				if (left < slice)
					slice = left < 0 ? 0 : (int)left;
			}
			if ((cat = udrpy_catalog_enter(s->cat)) == NULL)
				return NULL;
			Py_BEGIN_ALLOW_THREADS
			rc = udr_catalog_wait(NULL, cat, seen, slice);
			Py_END_ALLOW_THREADS
			if (rc < 0)
				udrpy_raise(rc);
			udrpy_catalog_leave(s->cat);
			if (rc < 0)
				return NULL;
			if (rc > 0)
				break;
			if (PyErr_CheckSignals() < 0)
				return NULL;
			if (deadline >= 0 && mono_ms() >= deadline)
				return NULL;
		}
	}
}

static int sub_enter(udrpy_sub *s)
{
	if (s->busy) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR,
		                "the subscription is in use by another thread");
		return -1;
	}
	s->busy = 1;
	return 0;
}

static PyObject *sub_iternext(udrpy_sub *s)
{
	PyObject *ev;

	if (s->callback != NULL)
		return udrpy_raise_msg(udrpy_Error, UDR_ERROR,
		                       "a subscription with a callback cannot be iterated");
	if (sub_enter(s) < 0)
		return NULL;
	ev = sub_next_event(s, -1);
	s->busy = 0;
	return ev; /* NULL without an exception: StopIteration (closed) */
}

PyDoc_STRVAR(poll_doc,
"poll(timeout=None) -> Event | None\n\n"
"The next event, waiting at most timeout seconds (None: until one arrives\n"
"or the subscription is closed).  None on timeout or when closed.");

static PyObject *sub_poll(udrpy_sub *s, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *tobj = Py_None, *ev;
	int64_t ms = -1;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:poll", kwlist, &tobj))
		return NULL;
	if (tobj != Py_None) {
		double t = PyFloat_AsDouble(tobj);

		if (t == -1.0 && PyErr_Occurred())
			return NULL;
		ms = t <= 0 ? 0 : (int64_t)(t * 1000.0);
	}
	if (s->callback != NULL)
		return udrpy_raise_msg(udrpy_Error, UDR_ERROR,
		                       "a subscription with a callback cannot be polled");
	if (sub_enter(s) < 0)
		return NULL;
	ev = sub_next_event(s, ms);
	s->busy = 0;
	if (ev == NULL && !PyErr_Occurred())
		Py_RETURN_NONE;
	return ev;
}

static PyObject *sub_run(udrpy_sub *s, PyObject *unused)
{
	(void)unused;
	for (;;) {
		PyObject *ev, *r;

		ev = sub_next_event(s, -1);
		if (ev == NULL) {
			if (!PyErr_Occurred() || s->closed) {
				PyErr_Clear();
				Py_RETURN_NONE;
			}
			break;
		}
		r = PyObject_CallOneArg(s->callback, ev);
		Py_DECREF(ev);
		if (r == NULL)
			break;
		Py_DECREF(r);
	}
	/* Remember what stopped the thread; threading's excepthook reports it. */
	{
		PyObject *type, *value, *tb;

		PyErr_Fetch(&type, &value, &tb);
		PyErr_NormalizeException(&type, &value, &tb);
		Py_XSETREF(s->error, Py_XNewRef(value));
		s->closed = 1;
		PyErr_Restore(type, value, tb);
	}
	return NULL;
}

PyDoc_STRVAR(close_doc,
"close() -> None\n\n"
"Stop the subscription (idempotent): iteration ends (StopIteration), a\n"
"blocked next() or poll() in another thread returns within a fraction of a\n"
"second, and in callback mode the thread is stopped and joined (unless\n"
"close() is called from the callback itself).");

static PyObject *sub_close(udrpy_sub *s, PyObject *unused)
{
	(void)unused;
	s->closed = 1;
	if (s->thread != NULL) {
		PyObject *cur, *r, *th = Py_NewRef(s->thread);
		PyObject *threading = PyImport_ImportModule("threading");

		if (threading == NULL) {
			Py_DECREF(th);
			return NULL;
		}
		cur = PyObject_CallMethod(threading, "current_thread", NULL);
		Py_DECREF(threading);
		if (cur == NULL) {
			Py_DECREF(th);
			return NULL;
		}
		if (cur != th) {
			r = PyObject_CallMethod(th, "join", NULL);
			if (r == NULL) {
				Py_DECREF(cur);
				Py_DECREF(th);
				return NULL;
			}
			Py_DECREF(r);
		}
		Py_DECREF(cur);
		Py_DECREF(th);
	}
	udr_pin_release(s->gcpin); /* closed: no event is delivered after */
	s->gcpin = NULL;
	Py_RETURN_NONE;
}

static int sub_traverse(udrpy_sub *s, visitproc visit, void *arg)
{
	Py_VISIT(s->cat);
	Py_VISIT(s->pending);
	Py_VISIT(s->callback);
	Py_VISIT(s->thread);
	Py_VISIT(s->error);
	return 0;
}

static int sub_clear(udrpy_sub *s)
{
	Py_CLEAR(s->pending);
	Py_CLEAR(s->callback);
	Py_CLEAR(s->thread);
	Py_CLEAR(s->error);
	Py_CLEAR(s->cat);
	return 0;
}

static void sub_dealloc(udrpy_sub *s)
{
	PyObject_GC_UnTrack(s);
	udr_pin_release(s->gcpin);
	s->gcpin = NULL;
	if (s->weakreflist != NULL)
		PyObject_ClearWeakRefs((PyObject *)s);
	sub_clear(s);
	free_names(s->tables, s->ntables);
	free(s->branch);
	PyObject_GC_Del(s);
}

static PyObject *sub_repr(udrpy_sub *s)
{
	return PyUnicode_FromFormat("<udr.Subscription cursor=%llu%s%s>",
	                            (unsigned long long)s->cursor,
	                            s->callback ? " callback" : "",
	                            s->closed ? " (closed)" : "");
}

PyObject *udrpy_log_subscribe(PyObject *catobj, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"since", "since_time", "tables", "branch", "callback", NULL};
	udrpy_catalog *c = (udrpy_catalog *)catobj;
	PyObject *sobj = Py_None, *tobj = Py_None, *tables = Py_None, *bobj = Py_None,
	         *cb = Py_None;
	udrpy_sub *s;
	udr_catalog *cat;
	int64_t ms = 0;
	int rc = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$OOOO:subscribe", kwlist, &sobj, &tobj,
	                                 &tables, &bobj, &cb))
		return NULL;
	if (cb != Py_None && !PyCallable_Check(cb)) {
		PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
		             Py_TYPE(cb)->tp_name);
		return NULL;
	}
	if (sobj != Py_None && tobj != Py_None) {
		PyErr_SetString(PyExc_TypeError, "give since or since_time, not both");
		return NULL;
	}
	if (tobj != Py_None && udrpy_ms_from_datetime(&ms, tobj, "since_time") < 0)
		return NULL;
	s = PyObject_GC_New(udrpy_sub, &udrpy_SubscriptionType);
	if (s == NULL)
		return NULL;
	s->cat = (udrpy_catalog *)Py_NewRef(catobj);
	s->tables = NULL;
	s->ntables = 0;
	s->branch = NULL;
	s->cursor = 0;
	s->pending = NULL;
	s->pos = 0;
	s->closed = 0;
	s->busy = 0;
	s->callback = NULL;
	s->thread = NULL;
	s->error = NULL;
	s->weakreflist = NULL;
	s->gcpin = NULL;
	PyObject_GC_Track(s);
	if (sobj != Py_None && udrpy_u64_from_obj(&s->cursor, sobj, 0, SINCE_WHAT) < 0)
		goto fail;
	if (tables_arg(&s->tables, &s->ntables, tables) < 0)
		goto fail;
	if (bobj != Py_None) {
		const char *b = udrpy_cstr(bobj, "branch");

		if (b == NULL)
			goto fail;
		if ((s->branch = strdup(b)) == NULL) {
			PyErr_NoMemory();
			goto fail;
		}
	}
	if (sobj == Py_None) {
		/* Default: from now (the head), or from since_time. */
		if ((cat = udrpy_catalog_enter(c)) == NULL)
			goto fail;
		if (tobj != Py_None) {
			rc = since_time_seq(&s->cursor, cat, ms);
		} else {
			Py_BEGIN_ALLOW_THREADS
			rc = udr_catalog_head(&s->cursor, cat);
			Py_END_ALLOW_THREADS
		}
		if (rc < 0)
			udrpy_raise(rc);
		udrpy_catalog_leave(c);
		if (rc < 0)
			goto fail;
	}
	/* what the subscription has still to deliver stays (GC.md 2.3) */
	if ((cat = udrpy_catalog_enter(c)) == NULL)
		goto fail;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_pin_after(&s->gcpin, cat, s->cursor);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	if (rc < 0)
		goto fail;
	if (cb != Py_None) {
		PyObject *threading, *run, *cls, *kw, *empty, *th, *r;

		s->callback = Py_NewRef(cb);
		threading = PyImport_ImportModule("threading");
		if (threading == NULL)
			goto fail;
		run = PyObject_GetAttrString((PyObject *)s, "_run");
		cls = PyObject_GetAttrString(threading, "Thread");
		Py_DECREF(threading);
		kw = run ? Py_BuildValue("{s:O,s:s,s:O}", "target", run, "name", "udr-subscribe",
		                         "daemon", Py_True)
		         : NULL;
		empty = PyTuple_New(0);
		th = (cls && kw && empty) ? PyObject_Call(cls, empty, kw) : NULL;
		Py_XDECREF(run);
		Py_XDECREF(cls);
		Py_XDECREF(kw);
		Py_XDECREF(empty);
		if (th == NULL)
			goto fail;
		s->thread = th;
		r = PyObject_CallMethod(th, "start", NULL);
		if (r == NULL)
			goto fail;
		Py_DECREF(r);
	}
	return (PyObject *)s;
fail:
	s->closed = 1;
	Py_DECREF(s);
	return NULL;
}

static PyObject *sub_get_cursor(udrpy_sub *s, void *closure)
{
	(void)closure;
	return PyLong_FromUnsignedLongLong(s->cursor);
}

static PyObject *sub_get_closed(udrpy_sub *s, void *closure)
{
	(void)closure;
	return PyBool_FromLong(s->closed);
}

static PyObject *sub_get_error(udrpy_sub *s, void *closure)
{
	(void)closure;
	return Py_NewRef(s->error ? s->error : Py_None);
}

static PyMethodDef sub_methods[] = {
	{"poll", (PyCFunction)(void (*)(void))sub_poll, METH_VARARGS | METH_KEYWORDS, poll_doc},
	{"close", (PyCFunction)sub_close, METH_NOARGS, close_doc},
	{"_run", (PyCFunction)sub_run, METH_NOARGS,
	 "The body of the callback thread (internal)."},
	UDRPY_CTX_DOCS,
	{NULL, NULL, 0, NULL}};

static PyGetSetDef sub_getset[] = {
	{"cursor", (getter)sub_get_cursor, NULL,
	 "The seq of the last delivered event (the start point before any):\n"
	 "save it and subscribe(since=cursor) to resume exactly once.", NULL},
	{"closed", (getter)sub_get_closed, NULL, "True once closed or stopped.", NULL},
	{"error", (getter)sub_get_error, NULL,
	 "The exception that stopped callback mode (callback or library error),\n"
	 "or None.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(sub_doc,
"Subscription - from Database.subscribe() or Catalog.subscribe().\n\n"
"Follows the changelog: an iterator of Event objects that blocks (without\n"
"the GIL; Ctrl-C works) until the next matching commit, by this or any\n"
"other process.  Events come in seq order, each once; `cursor` is the seq\n"
"of the last one delivered.  With callback=f, a daemon thread calls f(event)\n"
"for each instead; an exception in f stops it (see `error`).  close() (or\n"
"the end of a with block) stops either mode.");

PyTypeObject udrpy_SubscriptionType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Subscription",
	.tp_basicsize = sizeof(udrpy_sub),
	.tp_dealloc = (destructor)sub_dealloc,
	.tp_repr = (reprfunc)sub_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = sub_doc,
	.tp_traverse = (traverseproc)sub_traverse,
	.tp_clear = (inquiry)sub_clear,
	.tp_weaklistoffset = offsetof(udrpy_sub, weakreflist),
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)sub_iternext,
	.tp_methods = sub_methods,
	.tp_getset = sub_getset,
};
