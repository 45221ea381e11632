/*
 * pycatalog.c - udr.Catalog (alias PyCatalog): tables, versions and commits.
 * Commits work on a private copy of the TableVersion's struct without the
 * GIL and publish it into the object only on success.
 */
#include "udrpy.h"

#include <stddef.h>

static void catalog_pin_close(udrpy_pin *pin)
{
	udrpy_catalog *c = (udrpy_catalog *)((char *)pin - offsetof(udrpy_catalog, pin));
	udr_catalog *h = pin->handle;

	pin->handle = NULL;
	udr_catalog_close(h);
	/* The store had to outlive the catalog handle. */
	if (c->store_pinned) {
		c->store_pinned = 0;
		udrpy_store_leave(c->store);
	}
}

udr_catalog *udrpy_catalog_enter(udrpy_catalog *c)
{
	udr_db *db;

	if (c->db == NULL) {
		if (udrpy_pin_acquire(&c->pin) < 0)
			return NULL;
		return c->pin.handle;
	}
	if (c->detached) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR, "the catalog is closed");
		return NULL;
	}
	db = udrpy_db_enter(c->db);
	return db == NULL ? NULL : udr_db_catalog(db);
}

void udrpy_catalog_leave(udrpy_catalog *c)
{
	if (c->db == NULL)
		udrpy_pin_release(&c->pin);
	else
		udrpy_db_leave(c->db);
}

static udrpy_catalog *catalog_alloc(PyTypeObject *type)
{
	udrpy_catalog *c = (udrpy_catalog *)type->tp_alloc(type, 0);

	if (c == NULL)
		return NULL;
	c->pin.close = catalog_pin_close;
	c->pin.what = "catalog";
	return c;
}

PyObject *udrpy_catalog_from_db(udrpy_db *db, PyObject *store)
{
	udrpy_catalog *c = catalog_alloc(&udrpy_CatalogType);

	if (c == NULL)
		return NULL;
	Py_INCREF(db);
	c->db = db;
	Py_XINCREF(store);
	c->store = (udrpy_store *)store;
	c->path = PyUnicode_FromFormat("%U/catalog", db->path);
	if (c->path == NULL) {
		Py_DECREF(c);
		return NULL;
	}
	return (PyObject *)c;
}

static PyObject *catalog_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"path", "store", "create", NULL};
	PyObject *path = NULL, *store = Py_None;
	int create = 1, rc;
	udr_catalog *h = NULL;
	udr_store *st = NULL;
	udrpy_catalog *c;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|Op:Catalog", kwlist,
	                                 PyUnicode_FSConverter, &path, &store, &create))
		return NULL;
	if (store != Py_None && !PyObject_TypeCheck(store, &udrpy_StoreType)) {
		PyErr_Format(PyExc_TypeError, "store must be a udr.ChunkStore or None, not %.100s",
		             Py_TYPE(store)->tp_name);
		Py_DECREF(path);
		return NULL;
	}
	c = catalog_alloc(type);
	if (c == NULL) {
		Py_DECREF(path);
		return NULL;
	}
	c->path = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(path),
	                                           PyBytes_GET_SIZE(path));
	if (c->path == NULL)
		goto fail;
	if (store != Py_None) {
		/* Pinned for the catalog handle's whole life (released by
		 * catalog_pin_close): libudr borrows the store handle. */
		st = udrpy_store_enter((udrpy_store *)store);
		if (st == NULL)
			goto fail;
		Py_INCREF(store);
		c->store = (udrpy_store *)store;
		c->store_pinned = 1;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_open(&h, PyBytes_AS_STRING(path), st, create ? UDR_OPEN_CREATE : 0);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
		goto fail;
	}
	c->pin.handle = h;
	Py_DECREF(path);
	return (PyObject *)c;
fail:
	Py_DECREF(path);
	Py_DECREF(c);
	return NULL;
}

static int catalog_traverse(udrpy_catalog *c, visitproc visit, void *arg)
{
	Py_VISIT(c->db);
	Py_VISIT(c->store);
	return 0;
}

static int catalog_clear(udrpy_catalog *c)
{
	if (c->pin.handle != NULL)
		catalog_pin_close(&c->pin);
	else if (c->store_pinned) {
		c->store_pinned = 0;
		udrpy_store_leave(c->store);
	}
	Py_CLEAR(c->db);
	Py_CLEAR(c->store);
	return 0;
}

static void catalog_dealloc(udrpy_catalog *c)
{
	PyObject_GC_UnTrack(c);
	if (c->weakreflist != NULL)
		PyObject_ClearWeakRefs((PyObject *)c);
	catalog_clear(c);
	Py_CLEAR(c->path);
	Py_TYPE(c)->tp_free((PyObject *)c);
}

static int catalog_is_closed(udrpy_catalog *c)
{
	if (c->db != NULL)
		return c->detached || c->db->pin.closed;
	return c->pin.closed;
}

static PyObject *catalog_repr(udrpy_catalog *c)
{
	return PyUnicode_FromFormat("<udr.Catalog %R%s%s>", c->path ? c->path : Py_None,
	                            c->store ? " with store" : "",
	                            catalog_is_closed(c) ? " (closed)" : "");
}

/* ---- methods ---------------------------------------------------------- */

static udrpy_version *version_arg(PyObject *obj)
{
	if (!PyObject_TypeCheck(obj, &udrpy_VersionType)) {
		PyErr_Format(PyExc_TypeError, "expected a udr.TableVersion, not %.100s",
		             Py_TYPE(obj)->tp_name);
		return NULL;
	}
	return (udrpy_version *)obj;
}

/* Commit a copy of the version's struct; on success it replaces the old one
 * so the object shows created_at, parent_version and commit_seq. */
static int commit_common(udrpy_catalog *c, PyObject *arg, int next)
{
	udrpy_version *pv = version_arg(arg);
	udr_version *copy = NULL;
	udr_catalog *cat;
	int rc;

	if (pv == NULL)
		return -1;
	rc = udr_version_dup(&copy, pv->v);
	if (rc < 0) {
		udrpy_raise(rc);
		return -1;
	}
	/* a committed version committed again (a restore:
	 * commit_next(get_version(t, 1))) is made now, not when it was */
	if (copy->commit_seq != 0)
		copy->created_ms = 0;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL) {
		udr_version_free(copy);
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = next ? udr_catalog_commit_next(cat, copy) : udr_catalog_commit(cat, copy);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
		udrpy_catalog_leave(c);
		udr_version_free(copy);
		return -1;
	}
	udrpy_catalog_leave(c);
	udr_version_free(pv->v);
	pv->v = copy;
	return 0;
}

PyDoc_STRVAR(commit_doc,
"commit(version) -> None\n\n"
"Commit a TableVersion as version.version of version.table_name.  Accepted\n"
"only when that number is the table's latest + 1 (1 for a new table); else\n"
"ConflictError stating the expected number.  On success the object gets its\n"
"created_at (when unset, or when the object was committed before: a\n"
"restore is made now), parent_version and commit_seq.  With a store, a\n"
"chunk missing from it raises NotFoundError and nothing is committed.");

static PyObject *catalog_commit(udrpy_catalog *c, PyObject *arg)
{
	if (commit_common(c, arg, 0) < 0)
		return NULL;
	Py_RETURN_NONE;
}

PyDoc_STRVAR(commit_next_doc,
"commit_next(version) -> int\n\n"
"Commit a TableVersion as the next version of its table: the number\n"
"(latest + 1) is assigned under the writer lock, so concurrent callers never\n"
"conflict.  Updates the object (version, created_at, parent_version,\n"
"commit_seq) and returns the assigned number.");

static PyObject *catalog_commit_next(udrpy_catalog *c, PyObject *arg)
{
	if (commit_common(c, arg, 1) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(((udrpy_version *)arg)->v->version);
}

PyDoc_STRVAR(get_version_doc,
"get_version(table, version=None) -> TableVersion\n\n"
"Read version number `version` (>= 1) of a table, or its latest version when\n"
"version is None.  Raises NotFoundError naming the table or version,\n"
"ExpiredError when retention has expired it, InvalidArgumentError for a bad\n"
"table name or version number.");

int udrpy_version_check_readable(udr_catalog *cat, udr_version **v)
{
	int rc = udr_version_is_dropped(*v) ? 0 : udr_version_readable(cat, (*v)->table, (*v)->version);
	if (rc < 0) {
		udr_version_free(*v);
		*v = NULL;
	}
	return rc;
}

static PyObject *catalog_get_version(udrpy_catalog *c, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table", "version", NULL};
	PyObject *tobj, *vobj = Py_None;
	const char *table;
	uint64_t num = 0;
	udr_version *v = NULL;
	udr_catalog *cat;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_version", kwlist, &tobj, &vobj))
		return NULL;
	table = udrpy_cstr(tobj, "table name");
	if (table == NULL)
		return NULL;
	if (vobj != Py_None && udrpy_version_from_obj(&num, vobj, 1) < 0)
		return NULL;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_get_version(&v, cat, table, num);
	if (rc == 0)
		rc = udrpy_version_check_readable(cat, &v);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : udrpy_version_wrap(v);
}

PyDoc_STRVAR(latest_doc,
"latest(table) -> int\n\n"
"The latest version number of a table.  Raises NotFoundError when the table\n"
"has no version.");

static PyObject *catalog_latest(udrpy_catalog *c, PyObject *arg)
{
	const char *table = udrpy_cstr(arg, "table name");
	uint64_t num = 0;
	udr_catalog *cat;
	int rc;

	if (table == NULL)
		return NULL;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_latest(&num, cat, table);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(num);
}

PyDoc_STRVAR(list_versions_doc,
"list_versions(table) -> list[int]\n\n"
"The version numbers of a table, ascending.  Raises NotFoundError when the\n"
"table does not exist.");

static PyObject *catalog_list_versions(udrpy_catalog *c, PyObject *arg)
{
	const char *table = udrpy_cstr(arg, "table name");
	uint64_t *nums = NULL;
	size_t count = 0;
	udr_catalog *cat;
	PyObject *list;
	int rc;

	if (table == NULL)
		return NULL;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_list_versions(&nums, &count, cat, table);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	if (rc < 0)
		return NULL;
	list = PyList_New((Py_ssize_t)count);
	for (size_t i = 0; list != NULL && i < count; i++) {
		PyObject *n = PyLong_FromUnsignedLongLong(nums[i]);

		if (n == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, n);
	}
	udr_free(nums);
	return list;
}

PyDoc_STRVAR(list_tables_doc,
"list_tables() -> list[str]\n\n"
"The names of the tables on main, sorted: every table with a committed\n"
"version whose latest version is not a drop (SQL DROP TABLE; its versions\n"
"stay readable by number).");

static PyObject *catalog_list_tables(udrpy_catalog *c, PyObject *unused)
{
	char **names = NULL;
	size_t count = 0;
	udr_catalog *cat;
	int rc;

	(void)unused;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_list_live_tables(&names, &count, cat, NULL);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	if (rc < 0)
		return NULL;
	return udrpy_strlist_take(names, count);
}

PyObject *udrpy_strlist_take(char **names, size_t count)
{
	PyObject *list = PyList_New((Py_ssize_t)count);

	for (size_t i = 0; list != NULL && i < count; i++) {
		PyObject *s = PyUnicode_DecodeUTF8(names[i], (Py_ssize_t)strlen(names[i]),
		                                   "backslashreplace");

		if (s == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, s);
	}
	udr_strarray_free(names, count);
	return list;
}

PyDoc_STRVAR(head_doc,
"head() -> int\n\n"
"The sequence number of the last commit (0 for an empty catalog).");

static PyObject *catalog_head(udrpy_catalog *c, PyObject *unused)
{
	uint64_t seq = 0;
	udr_catalog *cat;
	int rc;

	(void)unused;
	cat = udrpy_catalog_enter(c);
	if (cat == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_catalog_head(&seq, cat);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_catalog_leave(c);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(close_doc,
"close() -> None\n\n"
"Close the catalog (idempotent); a call running in another thread finishes\n"
"first.  A catalog obtained from Database.catalog closes with the database;\n"
"close() on it only detaches this object.");

static PyObject *catalog_close(udrpy_catalog *c, PyObject *unused)
{
	(void)unused;
	if (c->db != NULL)
		c->detached = 1;
	else
		udrpy_pin_close(&c->pin);
	Py_RETURN_NONE;
}

static PyObject *catalog_get_closed(udrpy_catalog *c, void *closure)
{
	(void)closure;
	return PyBool_FromLong(catalog_is_closed(c));
}

static PyObject *catalog_get_path(udrpy_catalog *c, void *closure)
{
	(void)closure;
	return Py_NewRef(c->path ? c->path : Py_None);
}

static PyObject *catalog_get_store(udrpy_catalog *c, void *closure)
{
	(void)closure;
	return Py_NewRef(c->store ? (PyObject *)c->store : Py_None);
}

static PyObject *catalog_transaction(PyObject *c, PyObject *args, PyObject *kwds)
{
	return udrpy_txn_begin(c, args, kwds);
}

static PyObject *catalog_changes(PyObject *c, PyObject *args, PyObject *kwds)
{
	return udrpy_log_changes(c, args, kwds);
}

static PyObject *catalog_subscribe(PyObject *c, PyObject *args, PyObject *kwds)
{
	return udrpy_log_subscribe(c, args, kwds);
}

static PyMethodDef catalog_methods[] = {
	{"transaction", (PyCFunction)(void (*)(void))catalog_transaction,
	 METH_VARARGS | METH_KEYWORDS, UDRPY_TRANSACTION_DOC},
	{"changes", (PyCFunction)(void (*)(void))catalog_changes, METH_VARARGS | METH_KEYWORDS,
	 UDRPY_CHANGES_DOC},
	{"subscribe", (PyCFunction)(void (*)(void))catalog_subscribe,
	 METH_VARARGS | METH_KEYWORDS, UDRPY_SUBSCRIBE_DOC},
	{"commit", (PyCFunction)catalog_commit, METH_O, commit_doc},
	{"commit_next", (PyCFunction)catalog_commit_next, METH_O, commit_next_doc},
	{"get_version", (PyCFunction)(void (*)(void))catalog_get_version,
	 METH_VARARGS | METH_KEYWORDS, get_version_doc},
	{"latest", (PyCFunction)catalog_latest, METH_O, latest_doc},
	{"list_versions", (PyCFunction)catalog_list_versions, METH_O, list_versions_doc},
	{"list_tables", (PyCFunction)catalog_list_tables, METH_NOARGS, list_tables_doc},
	{"head", (PyCFunction)catalog_head, METH_NOARGS, head_doc},
	UDRPY_LOG_CATALOG_METHODS,
	{"close", (PyCFunction)catalog_close, METH_NOARGS, close_doc},
	UDRPY_CTX_DOCS,
	{NULL, NULL, 0, NULL}};

static PyGetSetDef catalog_getset[] = {
	{"path", (getter)catalog_get_path, NULL, "The catalog directory (str).", NULL},
	{"store", (getter)catalog_get_store, NULL,
	 "The ChunkStore commits are checked against, or None.", NULL},
	{"closed", (getter)catalog_get_closed, NULL, "True once closed.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(catalog_doc,
"Catalog(path, store=None, create=True)\n\n"
"The versioned table catalog in directory path, created when missing unless\n"
"create is False (then NotFoundError).  With store (a ChunkStore, kept\n"
"alive and open by the catalog) every commit checks that its chunks exist;\n"
"without, it cannot.  Thread-safe; the GIL is released during I/O.  Also\n"
"available as PyCatalog.  A context manager: `with` closes it.");

PyTypeObject udrpy_CatalogType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.Catalog",
	.tp_basicsize = sizeof(udrpy_catalog),
	.tp_dealloc = (destructor)catalog_dealloc,
	.tp_repr = (reprfunc)catalog_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = catalog_doc,
	.tp_traverse = (traverseproc)catalog_traverse,
	.tp_clear = (inquiry)catalog_clear,
	.tp_weaklistoffset = offsetof(udrpy_catalog, weakreflist),
	.tp_methods = catalog_methods,
	.tp_getset = catalog_getset,
	.tp_new = catalog_new,
};
