/*
 * pydb.c - udr.Database, returned by udr.open(path): one handle over a store
 * root (<root>/chunks and <root>/catalog).  Its .store and .catalog share
 * the database's handles and keep the Database object alive.  Its
 * transaction/changes/subscribe are the catalog's (pytxn.c, pylog.c); the
 * SQL methods (sql, read, write, export, diff_rows) come from pyquery.c and
 * are added to the type at module initialisation.
 */
#include "udrpy.h"

#include <udr/query.h>

#include <stddef.h>

static void db_pin_close(udrpy_pin *pin)
{
	udr_db *h = pin->handle;

	pin->handle = NULL;
	/* The query session borrows the handle: it goes first. */
	udrpy_query_close((udrpy_db *)((char *)pin - offsetof(udrpy_db, pin)));
	udr_db_close(h);
}

udr_db *udrpy_db_enter(udrpy_db *d)
{
	if (udrpy_pin_acquire(&d->pin) < 0)
		return NULL;
	return d->pin.handle;
}

void udrpy_db_leave(udrpy_db *d)
{
	udrpy_pin_release(&d->pin);
}

static PyObject *db_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"path", "create", NULL};
	PyObject *path = NULL;
	int create = 1, rc;
	udr_db *h = NULL;
	udrpy_db *d;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|p:open", kwlist, PyUnicode_FSConverter,
	                                 &path, &create))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_db_open(&h, PyBytes_AS_STRING(path), create ? UDR_OPEN_CREATE : 0);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		Py_DECREF(path);
		return udrpy_raise(rc);
	}
	d = (udrpy_db *)type->tp_alloc(type, 0);
	if (d == NULL) {
		udr_db_close(h);
		Py_DECREF(path);
		return NULL;
	}
	if (udrpy_query_setup(d) < 0) {
		udr_db_close(h);
		Py_DECREF(path);
		Py_DECREF(d);
		return NULL;
	}
	d->pin.handle = h;
	d->pin.close = db_pin_close;
	d->pin.what = "database";
	d->path = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(path),
	                                           PyBytes_GET_SIZE(path));
	Py_DECREF(path);
	if (d->path == NULL) {
		Py_DECREF(d);
		return NULL;
	}
	return (PyObject *)d;
}

PyObject *udrpy_open(PyObject *module, PyObject *args, PyObject *kwds)
{
	(void)module;
	return db_new(&udrpy_DatabaseType, args, kwds);
}

static int db_traverse(udrpy_db *d, visitproc visit, void *arg)
{
	Py_VISIT(d->store);
	Py_VISIT(d->catalog);
	return 0;
}

static int db_clear(udrpy_db *d)
{
	Py_CLEAR(d->store);
	Py_CLEAR(d->catalog);
	return 0;
}

int udrpy_db_txn_add(udrpy_db *d, unsigned long owner)
{
	unsigned long *n = PyMem_Realloc(d->txn_owners, (d->ntxn + 1) * sizeof(*n));
	if (n == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	d->txn_owners = n;
	d->txn_owners[d->ntxn++] = owner;
	return 0;
}

void udrpy_db_txn_remove(udrpy_db *d, unsigned long owner)
{
	for (size_t i = 0; i < d->ntxn; i++)
		if (d->txn_owners[i] == owner) {
			d->txn_owners[i] = d->txn_owners[--d->ntxn];
			return;
		}
}

int udrpy_db_txn_here(const udrpy_db *d)
{
	unsigned long me = PyThread_get_thread_ident();
	for (size_t i = 0; i < d->ntxn; i++)
		if (d->txn_owners[i] == me)
			return 1;
	return 0;
}

static void db_dealloc(udrpy_db *d)
{
	PyObject_GC_UnTrack(d);
	if (d->weakreflist != NULL)
		PyObject_ClearWeakRefs((PyObject *)d);
	db_clear(d);
	if (d->pin.handle != NULL)
		db_pin_close(&d->pin);
	udrpy_query_teardown(d);
	Py_CLEAR(d->path);
	PyMem_Free(d->txn_owners);
	Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyObject *db_repr(udrpy_db *d)
{
	return PyUnicode_FromFormat("<udr.Database %R%s>", d->path ? d->path : Py_None,
	                            d->pin.closed ? " (closed)" : "");
}

static int db_check_open(udrpy_db *d)
{
	if (d->pin.closed || d->pin.handle == NULL) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR, "the database is closed");
		return -1;
	}
	return 0;
}

static PyObject *db_get_store(udrpy_db *d, void *closure)
{
	(void)closure;
	if (db_check_open(d) < 0)
		return NULL;
	if (d->store == NULL) {
		d->store = udrpy_store_from_db(d);
		if (d->store == NULL)
			return NULL;
	}
	return Py_NewRef(d->store);
}

static PyObject *db_get_catalog(udrpy_db *d, void *closure)
{
	(void)closure;
	if (db_check_open(d) < 0)
		return NULL;
	if (d->catalog == NULL) {
		PyObject *store = db_get_store(d, NULL);

		if (store == NULL)
			return NULL;
		d->catalog = udrpy_catalog_from_db(d, store);
		Py_DECREF(store);
		if (d->catalog == NULL)
			return NULL;
	}
	return Py_NewRef(d->catalog);
}

static PyObject *db_get_path(udrpy_db *d, void *closure)
{
	(void)closure;
	return Py_NewRef(d->path ? d->path : Py_None);
}

static PyObject *db_get_closed(udrpy_db *d, void *closure)
{
	(void)closure;
	return PyBool_FromLong(d->pin.closed);
}

PyDoc_STRVAR(close_doc,
"close() -> None\n\n"
"Close the database and with it its store and catalog (idempotent); calls\n"
"running in other threads finish first.  Further use of db.store or\n"
"db.catalog raises udr.Error.");

static PyObject *db_close(udrpy_db *d, PyObject *unused)
{
	(void)unused;
	udrpy_pin_close(&d->pin);
	Py_RETURN_NONE;
}

/* transaction / changes / subscribe: the catalog's, on db.catalog. */
static PyObject *db_forward(udrpy_db *d, PyObject *args, PyObject *kwds,
                            PyObject *(*fn)(PyObject *, PyObject *, PyObject *))
{
	PyObject *cat = db_get_catalog(d, NULL), *r;

	if (cat == NULL)
		return NULL;
	r = fn(cat, args, kwds);
	Py_DECREF(cat);
	return r;
}

static PyObject *db_transaction(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	return db_forward(d, args, kwds, udrpy_txn_begin);
}

static PyObject *db_changes(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	return db_forward(d, args, kwds, udrpy_log_changes);
}

static PyObject *db_subscribe(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	return db_forward(d, args, kwds, udrpy_log_subscribe);
}

PyDoc_STRVAR(expire_doc,
"expire(keep_last=None, keep_within=None, keep_hourly=None, keep_daily=None,\n"
"       keep_weekly=None, keep_monthly=None, keep_yearly=None, table=None,\n"
"       branch=None, dry_run=False) -> dict\n\n"
"The retention plan of a rule (docs/GC.md 1.2, 1.3): which table versions\n"
"it expires now, as the dict of `udr retention expire --dry-run --json`\n"
"({'dry_run', 'now', 'now_ms', 'at', 'rule', 'table', 'branch',\n"
"'expired': {'versions', 'tables', 'ranges'}, 'kept': {'versions',\n"
"'by_reason'}}).  Counts are ints >= 1; keep_within a duration text\n"
"('90d', '1y2w', '12h30min') or a datetime.timedelta.  The stored policy\n"
"(set_retention) applies, the keep_ arguments replacing only its default;\n"
"without both nothing expires.  Heads', tags' and each table's latest versions are\n"
"always kept.  dry_run=False links an expire record (docs/GC.md 1.4) and\n"
"returns what it holds: 'dry_run' False and 'expired': {'records' ([seq],\n"
"or [] when nothing expired), 'versions', 'tables', 'ranges'}; branch= is\n"
"then refused (NotSupportedError).  InvalidArgumentError for a bad rule or\n"
"name, NotFoundError for an unknown table or branch.");

/* A keep_ count: None (unset) or an int in [1, max]. */
static int expire_count(uint64_t *out, PyObject *o, uint64_t max, const char *name)
{
	unsigned long long v;

	if (o == NULL || o == Py_None)
		return 0;
	if (!PyLong_Check(o) || PyBool_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int or None", name);
		return -1;
	}
	v = PyLong_AsUnsignedLongLong(o);
	if (v == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Clear();
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s must be an integer from 1 to %llu", name,
		                (unsigned long long)max);
		return -1;
	}
	if (v == 0 || v > max) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s must be an integer from 1 to %llu", name,
		                (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 1;
}

/* The keep_ arguments (counts[0] keep_last, counts[1..5] hourly..yearly,
 * within keep_within) into *rule; *nkeys how many were given.  -1 with an
 * exception set on bad values. */
static int parse_rule(udr_retention_rule *rule, int *nkeys, PyObject *const counts[6], PyObject *within)
{
	static const char *const names[] = {"keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"};
	uint32_t *buckets[5];
	uint64_t v;
	int rc;

	*nkeys = 0;
	buckets[0] = &rule->keep_hourly;
	buckets[1] = &rule->keep_daily;
	buckets[2] = &rule->keep_weekly;
	buckets[3] = &rule->keep_monthly;
	buckets[4] = &rule->keep_yearly;
	if ((rc = expire_count(&v, counts[0], UINT64_MAX, "keep_last")) < 0)
		return -1;
	if (rc == 1) {
		rule->keep_last = v;
		(*nkeys)++;
	}
	for (int i = 0; i < 5; i++) {
		if ((rc = expire_count(&v, counts[i + 1], UINT32_MAX, names[i])) < 0)
			return -1;
		if (rc == 1) {
			*buckets[i] = (uint32_t)v;
			(*nkeys)++;
		}
	}
	if (within != NULL && within != Py_None) {
		(*nkeys)++;
		if (PyUnicode_Check(within)) {
			const char *text = PyUnicode_AsUTF8(within);
			int64_t ms;
			if (text == NULL)
				return -1;
			if ((rc = udr_retention_parse_duration(&ms, text)) < 0) {
				udrpy_raise(rc);
				return -1;
			}
			rule->keep_within_ms = ms;
		} else if (PyObject_HasAttrString(within, "total_seconds")) {
			/* a datetime.timedelta */
			PyObject *secs = PyObject_CallMethod(within, "total_seconds", NULL);
			double sec;
			if (secs == NULL)
				return -1;
			sec = PyFloat_AsDouble(secs);
			Py_DECREF(secs);
			if (sec == -1.0 && PyErr_Occurred())
				return -1;
			if (!(sec >= 0.0 && sec <= 9.0e15)) {
				udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
				                "keep_within must be a timedelta of 0 or more (and below 285000 years)");
				return -1;
			}
			rule->keep_within_ms = (int64_t)(sec * 1000.0);
		} else {
			PyErr_SetString(PyExc_TypeError, "keep_within must be a str, a datetime.timedelta or None");
			return -1;
		}
	}
	return 0;
}

static PyObject *db_expire(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"keep_last", "keep_within", "keep_hourly", "keep_daily", "keep_weekly",
	                         "keep_monthly", "keep_yearly", "table", "branch", "dry_run", NULL};
	PyObject *counts[6] = {NULL}, *within = NULL, *res = NULL, *json = NULL;
	const char *table = NULL, *branch = NULL;
	int dry_run = 0, nkeys = 0, rc;
	udr_retention_rule rule = UDR_RETENTION_RULE_INIT;
	char *report = NULL;
	udr_db *h;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOOOOzzp:expire", kwlist, &counts[0], &within, &counts[1],
	                                 &counts[2], &counts[3], &counts[4], &counts[5], &table, &branch, &dry_run))
		return NULL;
	if (parse_rule(&rule, &nkeys, counts, within) < 0)
		return NULL;
	if (!dry_run && branch)
		return udrpy_raise_msg(udrpy_NotSupportedError, UDR_ERROR,
		                       "branch= is only built with dry_run=True: expire on every branch, or see the plan");
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	/* the stored policy, its default replaced by the keep_ arguments */
	if (dry_run)
		rc = udr_retention_plan_ex(&report, udr_db_catalog(h), nkeys ? &rule : NULL, table, branch,
		                           UDR_RETENTION_NOW, UDR_RETENTION_POLICY);
	else
		rc = udr_retention_apply(&report, udr_db_catalog(h), nkeys ? &rule : NULL, table, UDR_RETENTION_POLICY);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) != NULL)
		res = PyObject_CallMethod(json, "loads", "s", report);
	Py_XDECREF(json);
	udr_free(report);
	return res;
}

PyDoc_STRVAR(retention_doc,
"retention() -> dict\n\n"
"The stored retention policy (docs/GC.md 1.1) as a dict: {} when none was\n"
"stored or it was cleared (then nothing expires unless keep_ arguments say\n"
"so).");

static PyObject *db_retention(udrpy_db *d, PyObject *Py_UNUSED(ignored))
{
	PyObject *res = NULL, *json;
	char *text = NULL;
	udr_db *h;
	int rc;

	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_retention_get(&text, udr_db_catalog(h));
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) != NULL)
		res = PyObject_CallMethod(json, "loads", "s", text);
	Py_XDECREF(json);
	udr_free(text);
	return res;
}

PyDoc_STRVAR(set_retention_doc,
"set_retention(policy, message=None) -> int\n"
"set_retention(*, table=None, branch=None, keep_last=None, keep_within=None,\n"
"              keep_hourly=None, ..., keep_yearly=None, message=None) -> int\n\n"
"Store a retention policy (docs/GC.md 1.1): a dict as `udr retention set`\n"
"reads ({'default': {'keep_last': 30, 'keep_within': '90d'}, 'tables':\n"
"{...}, 'branches': {...}, 'pairs': {branch: {table: rule}}}), or None (or\n"
"{}) to clear it.  One retention record in the log; returns its seq.\n"
"InvalidArgumentError, nothing written, for a bad policy (unknown keys,\n"
"counts below 1, bad durations, 'undo' other than '0s', an\n"
"'orphans' rule: not applied yet); NotFoundError on a store with no commit.\n"
"'grace' is db.gc()'s grace when it is given none.\n"
"The second form replaces one rule of the stored policy whole: the default,\n"
"or with table, branch (a name or 'NAME/*') or both the table's, branch's or\n"
"pair's (as `udr retention set --keep-...`); it is linked only over the\n"
"policy it read (ConflictError when another change was linked meanwhile).\n"
"db.gc() and db.expire() apply it.");

/* A rule as the policy's dict: keep_within as given when a str. */
static PyObject *rule_dict(const udr_retention_rule *r, PyObject *within)
{
	PyObject *o = PyDict_New(), *v;
	const char *names[] = {"keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"};
	const uint32_t vals[] = {r->keep_hourly, r->keep_daily, r->keep_weekly, r->keep_monthly, r->keep_yearly};
	char dur[64];
	int fail = o == NULL;

	if (!fail && r->keep_last) {
		fail |= (v = PyLong_FromUnsignedLongLong(r->keep_last)) == NULL || PyDict_SetItemString(o, "keep_last", v) < 0;
		Py_XDECREF(v);
	}
	if (!fail && r->keep_within_ms >= 0) {
		udr_retention_format_duration(dur, sizeof dur, r->keep_within_ms);
		if (within && PyUnicode_Check(within)) {
			Py_INCREF(within);
			v = within;
		} else {
			v = PyUnicode_FromString(dur);
		}
		fail |= v == NULL || PyDict_SetItemString(o, "keep_within", v) < 0;
		Py_XDECREF(v);
	}
	for (int i = 0; i < 5 && !fail; i++) {
		if (!vals[i])
			continue;
		fail |= (v = PyLong_FromUnsignedLong(vals[i])) == NULL || PyDict_SetItemString(o, names[i], v) < 0;
		Py_XDECREF(v);
	}
	if (fail) {
		Py_XDECREF(o);
		return NULL;
	}
	return o;
}

/* d[key], created as {} when missing (borrowed); NULL with an exception. */
static PyObject *dict_child(PyObject *d, const char *key)
{
	PyObject *c = PyDict_GetItemString(d, key);
	if (c)
		return PyDict_Check(c) ? c : (PyErr_Format(PyExc_ValueError, "stored policy: %s is not an object", key), NULL);
	if ((c = PyDict_New()) == NULL || PyDict_SetItemString(d, key, c) < 0) {
		Py_XDECREF(c);
		return NULL;
	}
	Py_DECREF(c);
	return c;
}

/* set_retention(table=, branch=, keep_...=): one rule replaced, linked over
 * the policy read (udr_retention_update). */
static PyObject *set_one_rule(udrpy_db *d, const char *table, const char *branch, PyObject *const counts[6],
                              PyObject *within, const char *message)
{
	udr_retention_rule rule = UDR_RETENTION_RULE_INIT;
	PyObject *json = NULL, *pol = NULL, *r = NULL, *text = NULL, *parent;
	char *cur = NULL;
	const char *ctext;
	uint64_t expect = 0, seq = 0;
	int nkeys = 0, rc;
	udr_db *h;

	if (parse_rule(&rule, &nkeys, counts, within) < 0)
		return NULL;
	if (nkeys == 0)
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "set_retention: give a policy, or at least one keep_ argument");
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_retention_policy_at(&cur, &expect, udr_db_catalog(h), 0);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) == NULL || (pol = PyObject_CallMethod(json, "loads", "s", cur)) == NULL ||
	    (r = rule_dict(&rule, within)) == NULL)
		goto out;
	parent = pol;
	if (table && branch)
		parent = dict_child(pol, "pairs") ? dict_child(dict_child(pol, "pairs"), branch) : NULL;
	else if (table || branch)
		parent = dict_child(pol, table ? "tables" : "branches");
	if (parent == NULL || PyDict_SetItemString(parent, table ? table : branch ? branch : "default", r) < 0 ||
	    (text = PyObject_CallMethod(json, "dumps", "O", pol)) == NULL || (ctext = PyUnicode_AsUTF8(text)) == NULL)
		goto out;
	if ((h = udrpy_db_enter(d)) == NULL)
		goto out;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_retention_update(&seq, udr_db_catalog(h), ctext, message, expect);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	Py_DECREF(text);
	text = NULL;
	if (rc < 0)
		udrpy_raise(rc);
out:
	Py_XDECREF(json);
	Py_XDECREF(pol);
	Py_XDECREF(r);
	Py_XDECREF(text);
	udr_free(cur);
	if (PyErr_Occurred())
		return NULL;
	return PyLong_FromUnsignedLongLong(seq);
}

static PyObject *db_set_retention(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"policy", "message", "table", "branch", "keep_last", "keep_within", "keep_hourly",
	                         "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", NULL};
	PyObject *policy = NULL, *json, *text = NULL, *counts[6] = {NULL}, *within = NULL;
	const char *message = NULL, *ctext = NULL, *table = NULL, *branch = NULL;
	uint64_t seq = 0;
	udr_db *h;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OzzzOOOOOOO:set_retention", kwlist, &policy, &message, &table,
	                                 &branch, &counts[0], &within, &counts[1], &counts[2], &counts[3], &counts[4],
	                                 &counts[5]))
		return NULL;
	if (policy == NULL)
		return set_one_rule(d, table, branch, counts, within, message);
	if (table || branch || within || counts[0] || counts[1] || counts[2] || counts[3] || counts[4] || counts[5])
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "set_retention: give either a policy or table=/branch=/keep_ arguments");
	if (policy != Py_None) {
		if (!PyDict_Check(policy)) {
			PyErr_SetString(PyExc_TypeError, "set_retention: policy must be a dict or None");
			return NULL;
		}
		if ((json = PyImport_ImportModule("json")) == NULL)
			return NULL;
		text = PyObject_CallMethod(json, "dumps", "O", policy);
		Py_DECREF(json);
		if (text == NULL || (ctext = PyUnicode_AsUTF8(text)) == NULL) {
			Py_XDECREF(text);
			return NULL;
		}
	}
	if ((h = udrpy_db_enter(d)) == NULL) {
		Py_XDECREF(text);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_retention_set(&seq, udr_db_catalog(h), ctext, message);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	Py_XDECREF(text);
	if (rc < 0)
		return udrpy_raise(rc);
	return PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(expired_doc,
"expired(table=None) -> list[tuple[str, int, int, int, datetime]]\n\n"
"The expired versions now (docs/GC.md 1.4): (table, first, last, seq, time)\n"
"for each range, by table then version; seq is the expire record and time\n"
"its time (UTC).  InvalidArgumentError for a bad table name.");

static PyObject *db_expired(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", NULL};
	const char *table = NULL;
	PyObject *json = NULL, *list = NULL, *out = NULL;
	char *text = NULL;
	udr_db *h;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|z:expired", kwlist, &table))
		return NULL;
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_retention_expired(&text, udr_db_catalog(h), table);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) != NULL)
		list = PyObject_CallMethod(json, "loads", "s", text);
	Py_XDECREF(json);
	udr_free(text);
	if (list == NULL || (out = PyList_New(0)) == NULL)
		goto fail;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
		PyObject *x = PyList_GET_ITEM(list, i), *when, *tup, *t, *a, *b, *sq, *dt;
		t = PyDict_GetItemString(x, "table");
		a = PyDict_GetItemString(x, "first");
		b = PyDict_GetItemString(x, "last");
		sq = PyDict_GetItemString(x, "seq");
		when = PyDict_GetItemString(x, "time");
		if (!t || !a || !b || !sq || !when)
			goto fail;
		/* the ISO time back to a datetime through the library's parser */
		{
			int64_t ms;
			const char *iso = PyUnicode_AsUTF8(when);
			if (iso == NULL || udr_time_parse(&ms, iso) != 0)
				goto fail;
			dt = udrpy_datetime_from_ms(ms);
		}
		if (dt == NULL)
			goto fail;
		tup = PyTuple_Pack(5, t, a, b, sq, dt);
		Py_DECREF(dt);
		if (tup == NULL || PyList_Append(out, tup) < 0) {
			Py_XDECREF(tup);
			goto fail;
		}
		Py_DECREF(tup);
	}
	Py_DECREF(list);
	return out;
fail:
	Py_XDECREF(list);
	Py_XDECREF(out);
	if (!PyErr_Occurred())
		PyErr_SetString(PyExc_RuntimeError, "expired: bad report from the library");
	return NULL;
}

PyDoc_STRVAR(unexpire_doc,
"unexpire(seq=None, table=None, versions=None) -> int | None\n\n"
"Take expiry back with an unexpire record (docs/GC.md 1.4): with table, the\n"
"expired versions among versions (an int, or (first, last) inclusive) of\n"
"that table; else what expire record seq (None: the newest) expired and is\n"
"still expired by it.  Returns the record's seq, or None when nothing of it\n"
"was left expired (undo; nothing written).  NotFoundError when no version\n"
"named is expired or there is no expire record, InvalidArgumentError for a\n"
"record that is not an expire record or bad arguments, ConflictError when a\n"
"gc record lets its sweep remove the data.");

static PyObject *db_unexpire(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"seq", "table", "versions", NULL};
	PyObject *seqo = Py_None, *versions = Py_None;
	const char *table = NULL;
	unsigned long long seq = 0, first = 0, last = 0;
	uint64_t out = 0;
	udr_db *h;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OzO:unexpire", kwlist, &seqo, &table, &versions))
		return NULL;
	if (seqo != Py_None) {
		if (!PyLong_Check(seqo) || PyBool_Check(seqo) || table)
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                       "unexpire: seq is an int, and not given with table");
		seq = PyLong_AsUnsignedLongLong(seqo);
		if (PyErr_Occurred() || seq == 0) {
			PyErr_Clear();
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "unexpire: seq must be >= 1");
		}
	}
	if ((table == NULL) != (versions == Py_None))
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "unexpire: table and versions go together");
	if (table) {
		if (PyLong_Check(versions) && !PyBool_Check(versions)) {
			first = last = PyLong_AsUnsignedLongLong(versions);
		} else if (PyTuple_Check(versions) && PyTuple_GET_SIZE(versions) == 2 &&
		           PyLong_Check(PyTuple_GET_ITEM(versions, 0)) && PyLong_Check(PyTuple_GET_ITEM(versions, 1))) {
			first = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(versions, 0));
			last = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(versions, 1));
		} else {
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                       "unexpire: versions is an int or a (first, last) tuple");
		}
		if (PyErr_Occurred()) {
			PyErr_Clear();
			return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "unexpire: versions must be >= 1");
		}
	}
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = table ? udr_retention_restore(&out, udr_db_catalog(h), table, first, last)
	           : udr_retention_undo(&out, udr_db_catalog(h), seq);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if (out == 0)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(out);
}

PyDoc_STRVAR(tables_doc,
"tables(branch=None) -> list[str]\n\n"
"The tables that exist on branch (None: main; also a tag or 'commit:N'),\n"
"sorted: every table with a version there whose latest version is not a\n"
"drop (SQL DROP TABLE; a dropped table's versions stay readable by\n"
"number).  NotFoundError for an unknown branch.");

static PyObject *db_tables(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"branch", NULL};
	const char *branch = NULL;
	char **names = NULL;
	size_t count = 0;
	udr_db *h;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|z:tables", kwlist, &branch))
		return NULL;
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_list_live_tables(&names, &count, udr_db_catalog(h), branch);
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	return udrpy_strlist_take(names, count);
}

PyDoc_STRVAR(gc_doc,
"gc(dry_run=False, grace=None, threshold=10, max_unused=5, max_repack=None,\n"
"   keep_last=None, keep_within=None, keep_hourly=None, keep_daily=None,\n"
"   keep_weekly=None, keep_monthly=None, keep_yearly=None) -> dict\n\n"
"Garbage collection (docs/GC.md; the CLI's `udr gc`): remove the chunks no\n"
"kept version needs, puts never committed once older than grace (seconds;\n"
"None: the stored policy's grace, else the store's, 24 h) and duplicate\n"
"copies; rewrite packs at least\n"
"threshold percent dead, then more until unused space is at most\n"
"max_unused percent, copying at most max_repack bytes (None: no limit).\n"
"First expire the versions the stored retention policy (set_retention)\n"
"does not keep, keep_ arguments (as expire()) replacing its default, then\n"
"remove the data only expired versions needed: they raise ExpiredError and\n"
"can no longer be restored; no policy and no keep_: nothing expires.\n"
"Writers wait while it runs.  Returns the report (retention when a policy\n"
"or rule applied, mark,\n"
"removed, written, store, temp, gc_seq).  Raises LockedError-like\n"
"udr.Error when another gc runs, CorruptError when a live chunk is missing\n"
"(nothing removed), ValueError or InvalidArgumentError for bad options.");

static PyObject *db_gc(udrpy_db *d, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"dry_run", "grace", "threshold", "max_unused", "max_repack", "keep_last",
	                         "keep_within", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
	                         "keep_yearly", NULL};
	int dry = 0, nkeys = 0;
	PyObject *grace = Py_None, *max_repack = Py_None, *json = NULL, *r = NULL;
	PyObject *counts[6] = {NULL}, *within = NULL;
	int threshold = 10, max_unused = 5, skipped = 0;
	udr_query_cache_info ci = {0, 0, 0};
	udr_gc_options o = UDR_GC_OPTIONS_INIT;
	udr_retention_rule rule = UDR_RETENTION_RULE_INIT;
	char *report = NULL;
	udr_db *h;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pOiiOOOOOOOO:gc", kwlist, &dry, &grace, &threshold,
	                                 &max_unused, &max_repack, &counts[0], &within, &counts[1], &counts[2],
	                                 &counts[3], &counts[4], &counts[5]))
		return NULL;
	if (parse_rule(&rule, &nkeys, counts, within) < 0)
		return NULL;
	if (nkeys > 0)
		o.rule = &rule;
	if (threshold < 0 || threshold > 100 || max_unused < 0 || max_unused > 100) {
		PyErr_SetString(PyExc_ValueError, "threshold and max_unused must be 0..100");
		return NULL;
	}
	if (grace != Py_None) {
		double g = PyFloat_AsDouble(grace);
		if (g == -1.0 && PyErr_Occurred())
			return NULL;
		if (!(g >= 0) || g > 9.2e15) {
			PyErr_SetString(PyExc_ValueError, "grace must be a number of seconds >= 0");
			return NULL;
		}
		o.grace_ms = (int64_t)(g * 1000.0);
	}
	if (max_repack != Py_None) {
		unsigned long long v = PyLong_AsUnsignedLongLong(max_repack);
		if (PyErr_Occurred())
			return NULL;
		if (v == 0) {
			PyErr_SetString(PyExc_ValueError, "max_repack must be more than 0 (None: no limit)");
			return NULL;
		}
		o.max_repack_bytes = v;
	}
	o.dry_run = dry;
	o.threshold_pct = (unsigned)threshold;
	o.max_unused_pct = (unsigned)max_unused;
	if ((h = udrpy_db_enter(d)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_db_gc(&report, h, &o);
#ifdef UDRPY_HAVE_QUERY
	if (rc == 0 && !dry) {
		/* the query cache after a sweep, as `udr gc` does (docs/GC.md
		 * 5.4): parts whose content is gone; skipped while a statement
		 * of any process reads the cache.  Without the query module
		 * there is no cache (and no udr_query_cache_trim to link): the
		 * report says 0 files, as the CLI's does */
		rc = udr_query_cache_trim(&ci, &skipped, h, NULL);
		if (rc < 0) {
			udr_free(report);
			report = NULL;
		}
	}
#endif
	Py_END_ALLOW_THREADS
	udrpy_db_leave(d);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((json = PyImport_ImportModule("json")) != NULL)
		r = PyObject_CallMethod(json, "loads", "s", report);
	Py_XDECREF(json);
	udr_free(report);
	if (r && PyDict_Check(r)) {
		PyObject *c = Py_BuildValue("{s:K,s:K,s:O}", "files", (unsigned long long)ci.parts, "bytes",
		                            (unsigned long long)ci.part_bytes, "skipped", skipped ? Py_True : Py_False);
		if (!c || PyDict_SetItemString(r, "cache", c) < 0) {
			Py_XDECREF(c);
			Py_DECREF(r);
			return NULL;
		}
		Py_DECREF(c);
	}
	return r;
}

static PyMethodDef db_methods[] = {
	{"gc", (PyCFunction)(void (*)(void))db_gc, METH_VARARGS | METH_KEYWORDS, gc_doc},
	{"close", (PyCFunction)db_close, METH_NOARGS, close_doc},
	{"tables", (PyCFunction)(void (*)(void))db_tables, METH_VARARGS | METH_KEYWORDS, tables_doc},
	{"transaction", (PyCFunction)(void (*)(void))db_transaction,
	 METH_VARARGS | METH_KEYWORDS, UDRPY_TRANSACTION_DOC},
	{"changes", (PyCFunction)(void (*)(void))db_changes, METH_VARARGS | METH_KEYWORDS,
	 UDRPY_CHANGES_DOC},
	{"subscribe", (PyCFunction)(void (*)(void))db_subscribe, METH_VARARGS | METH_KEYWORDS,
	 UDRPY_SUBSCRIBE_DOC},
	{"expire", (PyCFunction)(void (*)(void))db_expire, METH_VARARGS | METH_KEYWORDS, expire_doc},
	{"expired", (PyCFunction)(void (*)(void))db_expired, METH_VARARGS | METH_KEYWORDS, expired_doc},
	{"retention", (PyCFunction)db_retention, METH_NOARGS, retention_doc},
	{"set_retention", (PyCFunction)(void (*)(void))db_set_retention, METH_VARARGS | METH_KEYWORDS,
	 set_retention_doc},
	{"unexpire", (PyCFunction)(void (*)(void))db_unexpire, METH_VARARGS | METH_KEYWORDS, unexpire_doc},
	UDRPY_CTX_DOCS,
	{NULL, NULL, 0, NULL}};

static PyGetSetDef db_getset[] = {
	{"store", (getter)db_get_store, NULL,
	 "The ChunkStore of the database (<root>/chunks), sharing its handle.", NULL},
	{"catalog", (getter)db_get_catalog, NULL,
	 "The Catalog of the database (<root>/catalog), checking commits against\n"
	 "the store, sharing its handle.", NULL},
	{"path", (getter)db_get_path, NULL, "The root directory (str).", NULL},
	{"closed", (getter)db_get_closed, NULL, "True once closed.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(db_doc,
"Database(path, create=True)\n\n"
"An open store root: <path>/chunks (db.store) and <path>/catalog\n"
"(db.catalog).  Usually obtained from udr.open(path).  Created when missing\n"
"unless create is False (then NotFoundError).  Thread-safe.  A context\n"
"manager: `with udr.open(p) as db: ...` closes it at the end.");

PyTypeObject udrpy_DatabaseType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Database",
	.tp_basicsize = sizeof(udrpy_db),
	.tp_dealloc = (destructor)db_dealloc,
	.tp_repr = (reprfunc)db_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = db_doc,
	.tp_traverse = (traverseproc)db_traverse,
	.tp_clear = (inquiry)db_clear,
	.tp_weaklistoffset = offsetof(udrpy_db, weakreflist),
	.tp_methods = db_methods,
	.tp_getset = db_getset,
	.tp_new = db_new,
};
