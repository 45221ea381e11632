/*
 * pytxn.c - udr.Transaction: a multi-table transaction with snapshot
 * isolation over a catalog (include/udr/txn.h), from Catalog.transaction()
 * or Database.transaction().  `with db.transaction() as tx:` commits on a
 * normal exit and aborts on an exception.
 *
 * The transaction pins its catalog's handle from begin to commit/abort (the
 * library requires the catalog to outlive it); a close() of the catalog or
 * database meanwhile is deferred until then.  A udr_txn is used by one
 * thread at a time: a second thread entering while a call runs without the
 * GIL gets udr.Error instead of a data race.
 */
#include "udrpy.h"

#include <string.h>

enum { TXN_ACTIVE, TXN_COMMITTED, TXN_ABORTED };

typedef struct {
	PyObject_HEAD
	udr_txn *txn;          /* NULL once finished (freed) */
	udrpy_catalog *cat;    /* strong ref; its handle is pinned while txn != NULL */
	int state;             /* TXN_* */
	int busy;              /* a call runs without the GIL */
	int isolation;         /* UDR_TXN_* */
	uint64_t snapshot;
	uint64_t seq;          /* commit sequence number once committed */
	PyObject *message;     /* str or None */
	PyObject *weakreflist;
	udrpy_db *db;          /* strong ref while its `with` block runs: counted in db's */
	unsigned long owner;   /* the thread that entered that block */
} udrpy_txn;

/* Free the library handle and unpin the catalog (GIL held). */
static void txn_finish(udrpy_txn *t, int state)
{
	if (t->txn != NULL) {
		udr_txn_free(t->txn);
		t->txn = NULL;
		udrpy_catalog_leave(t->cat);
	}
	if (t->db != NULL) {
		udrpy_db_txn_remove(t->db, t->owner);
		Py_CLEAR(t->db);
	}
	t->state = state;
}

PyObject *udrpy_txn_begin(PyObject *catobj, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"isolation", "message", "branch", NULL};
	udrpy_catalog *c = (udrpy_catalog *)catobj;
	const char *iso = "snapshot", *message = NULL, *branch = NULL;
	PyObject *mobj = Py_None, *bobj = Py_None;
	udr_txn_options opts = UDR_TXN_OPTIONS_INIT;
	udr_catalog *cat;
	udr_txn *txn = NULL;
	udrpy_txn *t;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$sOO:transaction", kwlist, &iso, &mobj,
	                                 &bobj))
		return NULL;
	if (strcmp(iso, "snapshot") == 0)
		opts.isolation = UDR_TXN_SNAPSHOT;
	else if (strcmp(iso, "serializable") == 0)
		opts.isolation = UDR_TXN_SERIALIZABLE;
	else
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                       "invalid isolation '%s': must be 'snapshot' or 'serializable'",
		                       iso);
	if (mobj != Py_None && (message = udrpy_cstr(mobj, "message")) == NULL)
		return NULL;
	if (bobj != Py_None && (branch = udrpy_cstr(bobj, "branch")) == NULL)
		return NULL;
	opts.message = message;
	opts.branch = branch;
	t = PyObject_GC_New(udrpy_txn, &udrpy_TxnType);
	if (t == NULL)
		return NULL;
	t->txn = NULL;
	t->cat = (udrpy_catalog *)Py_NewRef(catobj);
	t->state = TXN_ABORTED;
	t->busy = 0;
	t->isolation = opts.isolation;
	t->snapshot = 0;
	t->seq = 0;
	t->message = Py_NewRef(mobj);
	t->weakreflist = NULL;
	t->db = NULL;
	t->owner = 0;
	PyObject_GC_Track(t);
	cat = udrpy_catalog_enter(c);
	if (cat == NULL) {
		Py_DECREF(t);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_txn_begin(&txn, cat, &opts);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
		udrpy_catalog_leave(c);
		Py_DECREF(t);
		return NULL;
	}
	t->txn = txn;
	t->state = TXN_ACTIVE;
	t->snapshot = udr_txn_snapshot(txn);
	return (PyObject *)t;
}

/* Start a call: the handle, or NULL with an exception set. */
static udr_txn *txn_enter(udrpy_txn *t)
{
	if (t->busy) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR,
		                "the transaction is in use by another thread");
		return NULL;
	}
	if (t->txn == NULL) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                "the transaction is not active (%s)",
		                t->state == TXN_COMMITTED ? "committed" : "aborted");
		return NULL;
	}
	t->busy = 1;
	return t->txn;
}

static int txn_traverse(udrpy_txn *t, visitproc visit, void *arg)
{
	Py_VISIT(t->cat);
	Py_VISIT(t->db);
	return 0;
}

/* `with db.transaction() as tx:` - while the block runs, the database's
 * own calls that commit on their own refuse to run in this thread (they
 * would escape the transaction: pyquery.c). */
static PyObject *txn_enter_ctx(udrpy_txn *t, PyObject *unused)
{
	(void)unused;
	if (t->txn != NULL && t->db == NULL && t->cat->db != NULL) {
		unsigned long me = PyThread_get_thread_ident();
		if (udrpy_db_txn_add(t->cat->db, me) < 0)
			return NULL;
		t->db = (udrpy_db *)Py_NewRef((PyObject *)t->cat->db);
		t->owner = me;
	}
	return Py_NewRef((PyObject *)t);
}

static void txn_dealloc(udrpy_txn *t)
{
	PyObject_GC_UnTrack(t);
	if (t->weakreflist != NULL)
		PyObject_ClearWeakRefs((PyObject *)t);
	/* An abandoned transaction is aborted. */
	if (t->cat != NULL)
		txn_finish(t, TXN_ABORTED);
	Py_CLEAR(t->cat);
	Py_CLEAR(t->message);
	PyObject_GC_Del(t);
}

static PyObject *txn_repr(udrpy_txn *t)
{
	static const char *names[] = {"active", "committed", "aborted"};

	return PyUnicode_FromFormat("<udr.Transaction snapshot=%llu %s>",
	                            (unsigned long long)t->snapshot, names[t->state]);
}

/* ---- methods ---------------------------------------------------------- */

PyDoc_STRVAR(write_doc,
"write(table_or_version, chunks=None, message=None, metadata=None) -> int\n\n"
"Stage a new version of a table: either a TableVersion (its number is\n"
"ignored; message and metadata, when given, replace its own) or a table\n"
"name with an iterable of chunk hashes.  The number is chosen as the\n"
"snapshot's latest + 1 and returned; staging a table again replaces the\n"
"staged version.  Nothing is visible to others before commit().  Raises\n"
"NotFoundError for a chunk missing from the store, InvalidArgumentError for\n"
"a bad table name; after any error the transaction can only be aborted.");

static PyObject *txn_write(udrpy_txn *t, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table_or_version", "chunks", "message", "metadata", NULL};
	PyObject *what, *chunks = Py_None, *mobj = Py_None, *meta = Py_None;
	udr_version *v = NULL;
	udr_txn *txn;
	uint64_t num = 0;
	const char *table;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOO:write", kwlist, &what, &chunks, &mobj,
	                                 &meta))
		return NULL;
	if (PyObject_TypeCheck(what, &udrpy_VersionType)) {
		const udr_version *src = ((udrpy_version *)what)->v;

		if (chunks != Py_None) {
			PyErr_SetString(PyExc_TypeError,
			                "chunks must be None when writing a TableVersion");
			return NULL;
		}
		/* A fresh copy: message and metadata are the source's unless given. */
		if ((rc = udr_version_new(&v, src->table, 0)) < 0)
			return udrpy_raise(rc);
		for (size_t i = 0; rc == 0 && i < src->nchunks; i++)
			rc = udr_version_add_chunk(v, &src->chunks[i]);
		if (rc == 0 && mobj == Py_None && src->message != NULL)
			rc = udr_version_set_message(v, src->message);
		for (size_t i = 0; rc == 0 && meta == Py_None && i < src->nmeta; i++)
			rc = udr_version_set_meta(v, src->meta[i].key, src->meta[i].value);
		if (rc < 0) {
			udrpy_raise(rc);
			goto fail;
		}
	} else if (PyUnicode_Check(what)) {
		if ((table = udrpy_cstr(what, "table name")) == NULL)
			return NULL;
		rc = udr_version_new(&v, table, 0);
		if (rc < 0)
			return udrpy_raise(rc);
		if (chunks != Py_None && udrpy_version_add_chunks(v, chunks) < 0)
			goto fail;
	} else {
		PyErr_Format(PyExc_TypeError,
		             "write() needs a udr.TableVersion or a table name, not %.100s",
		             Py_TYPE(what)->tp_name);
		return NULL;
	}
	if (mobj != Py_None) {
		const char *m = udrpy_cstr(mobj, "message");

		if (m == NULL)
			goto fail;
		if ((rc = udr_version_set_message(v, m)) < 0) {
			udrpy_raise(rc);
			goto fail;
		}
	}
	if (meta != Py_None && udrpy_version_set_metadata(v, meta) < 0)
		goto fail;
	if ((txn = txn_enter(t)) == NULL)
		goto fail;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_txn_write(txn, v);
	if (rc == 0)
		rc = udr_txn_latest(&num, txn, v->table);
	Py_END_ALLOW_THREADS
	t->busy = 0;
	udr_version_free(v);
	if (rc < 0)
		return udrpy_raise(rc);
	return PyLong_FromUnsignedLongLong(num);
fail:
	udr_version_free(v);
	return NULL;
}

PyDoc_STRVAR(get_version_doc,
"get_version(table, version=None) -> TableVersion\n\n"
"A version as the transaction sees it: the snapshot plus its own staged\n"
"writes (a staged version has commit_seq None).  version None is the\n"
"latest.  Raises NotFoundError as Catalog.get_version.");

static PyObject *txn_get_version(udrpy_txn *t, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "version", NULL};
	PyObject *tobj, *vobj = Py_None;
	const char *table;
	uint64_t num = 0;
	udr_version *v = NULL;
	udr_txn *txn;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_version", kwlist, &tobj, &vobj))
		return NULL;
	if ((table = udrpy_cstr(tobj, "table name")) == NULL)
		return NULL;
	if (vobj != Py_None && udrpy_version_from_obj(&num, vobj, 1) < 0)
		return NULL;
	if ((txn = txn_enter(t)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_txn_get_version(&v, txn, table, num);
	Py_END_ALLOW_THREADS
	t->busy = 0;
	if (rc < 0)
		return udrpy_raise(rc);
	return udrpy_version_wrap(v);
}

PyDoc_STRVAR(latest_doc,
"latest(table) -> int\n\n"
"The latest version number of a table as the transaction sees it (its\n"
"staged version included); 0 when the table has none.");

static PyObject *txn_latest(udrpy_txn *t, PyObject *arg)
{
	const char *table = udrpy_cstr(arg, "table name");
	uint64_t num = 0;
	udr_txn *txn;
	int rc;

	if (table == NULL || (txn = txn_enter(t)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_txn_latest(&num, txn, table);
	Py_END_ALLOW_THREADS
	t->busy = 0;
	if (rc < 0)
		return udrpy_raise(rc);
	return PyLong_FromUnsignedLongLong(num);
}

PyDoc_STRVAR(commit_doc,
"commit() -> int\n\n"
"Commit every staged version atomically (one commit record) and return its\n"
"sequence number (0 when nothing was staged: a no-op).  Raises\n"
"ConflictError naming the table and the commit that won when another\n"
"transaction committed a staged table (or, serializable, a table read)\n"
"since the snapshot.  The transaction is finished either way.");

static PyObject *txn_commit(udrpy_txn *t, PyObject *unused)
{
	udr_txn *txn;
	uint64_t seq = 0;
	int rc;

	(void)unused;
	if ((txn = txn_enter(t)) == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_txn_commit(txn, &seq);
	Py_END_ALLOW_THREADS
	t->busy = 0;
	if (rc < 0) {
		udrpy_raise(rc);
		txn_finish(t, TXN_ABORTED);
		return NULL;
	}
	t->seq = seq;
	txn_finish(t, TXN_COMMITTED);
	return PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(abort_doc,
"abort() -> None\n\n"
"Abandon the transaction: nothing staged becomes visible.  Idempotent, and\n"
"a no-op after commit().");

static PyObject *txn_abort(udrpy_txn *t, PyObject *unused)
{
	(void)unused;
	if (t->busy)
		return udrpy_raise_msg(udrpy_Error, UDR_ERROR,
		                       "the transaction is in use by another thread");
	if (t->txn != NULL)
		txn_finish(t, TXN_ABORTED);
	Py_RETURN_NONE;
}

static PyObject *txn_exit(udrpy_txn *t, PyObject *args)
{
	PyObject *exc_type = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;

	if (exc_type != Py_None || t->txn == NULL) {
		PyObject *r = txn_abort(t, NULL);

		if (r == NULL)
			return NULL;
		Py_DECREF(r);
		Py_RETURN_FALSE;
	}
	{
		PyObject *r = txn_commit(t, NULL);

		if (r == NULL)
			return NULL;
		Py_DECREF(r);
	}
	Py_RETURN_FALSE;
}

static PyObject *txn_get_snapshot(udrpy_txn *t, void *closure)
{
	(void)closure;
	return PyLong_FromUnsignedLongLong(t->snapshot);
}

static PyObject *txn_get_state(udrpy_txn *t, void *closure)
{
	static const char *names[] = {"active", "committed", "aborted"};

	(void)closure;
	return PyUnicode_FromString(names[t->state]);
}

static PyObject *txn_get_active(udrpy_txn *t, void *closure)
{
	(void)closure;
	return PyBool_FromLong(t->txn != NULL);
}

static PyObject *txn_get_isolation(udrpy_txn *t, void *closure)
{
	(void)closure;
	return PyUnicode_FromString(t->isolation == UDR_TXN_SERIALIZABLE ? "serializable"
	                                                                : "snapshot");
}

static PyObject *txn_get_message(udrpy_txn *t, void *closure)
{
	(void)closure;
	return Py_NewRef(t->message);
}

static PyObject *txn_get_seq(udrpy_txn *t, void *closure)
{
	(void)closure;
	if (t->state != TXN_COMMITTED)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(t->seq);
}

static PyMethodDef txn_methods[] = {
	{"write", (PyCFunction)(void (*)(void))txn_write, METH_VARARGS | METH_KEYWORDS,
	 write_doc},
	{"get_version", (PyCFunction)(void (*)(void))txn_get_version,
	 METH_VARARGS | METH_KEYWORDS, get_version_doc},
	{"latest", (PyCFunction)txn_latest, METH_O, latest_doc},
	{"commit", (PyCFunction)txn_commit, METH_NOARGS, commit_doc},
	{"abort", (PyCFunction)txn_abort, METH_NOARGS, abort_doc},
	{"__enter__", (PyCFunction)txn_enter_ctx, METH_NOARGS,
	 "Return self (context-manager support); until __exit__, the database's\n"
	 "write and SQL writes refuse to run in this thread (they would commit\n"
	 "on their own, outside the transaction)."},
	{"__exit__", (PyCFunction)txn_exit, METH_VARARGS,
	 "Commit when the block ended normally (a conflict raises ConflictError\n"
	 "from the with statement), abort when it raised; exceptions propagate."},
	{NULL, NULL, 0, NULL}};

static PyGetSetDef txn_getset[] = {
	{"snapshot", (getter)txn_get_snapshot, NULL,
	 "The commit sequence number the transaction reads at.", NULL},
	{"state", (getter)txn_get_state, NULL, "'active', 'committed' or 'aborted'.", NULL},
	{"active", (getter)txn_get_active, NULL, "True until commit() or abort().", NULL},
	{"isolation", (getter)txn_get_isolation, NULL, "'snapshot' or 'serializable'.", NULL},
	{"message", (getter)txn_get_message, NULL, "The commit message or None.", NULL},
	{"seq", (getter)txn_get_seq, NULL,
	 "The commit's sequence number once committed (0 for an empty commit),\n"
	 "else None.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(txn_doc,
"Transaction - from Database.transaction() or Catalog.transaction().\n\n"
"Reads see the catalog as of the snapshot taken at begin plus the\n"
"transaction's own staged writes; commit() makes every staged version\n"
"visible at once (first committer wins: ConflictError).  Isolation\n"
"'snapshot' (default) fails on write-write conflicts, 'serializable' also\n"
"when a table it read changed.  A context manager: commits on a normal\n"
"exit, aborts on an exception.  Use from one thread at a time.");

PyTypeObject udrpy_TxnType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Transaction",
	.tp_basicsize = sizeof(udrpy_txn),
	.tp_dealloc = (destructor)txn_dealloc,
	.tp_repr = (reprfunc)txn_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = txn_doc,
	.tp_traverse = (traverseproc)txn_traverse,
	.tp_weaklistoffset = offsetof(udrpy_txn, weakreflist),
	.tp_methods = txn_methods,
	.tp_getset = txn_getset,
};
