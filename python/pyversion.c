/*
 * pyversion.c - udr.TableVersion (alias PyTableVersion): one version of a
 * table, an ordered list of chunk hashes plus metadata, wrapping a
 * udr_version.  Read-only from Python; Catalog.commit fills in the fields
 * the library assigns.
 */
#include "udrpy.h"

#include <string.h>

PyObject *udrpy_version_wrap(udr_version *v)
{
	udrpy_version *o = PyObject_New(udrpy_version, &udrpy_VersionType);

	if (o == NULL) {
		udr_version_free(v);
		return NULL;
	}
	o->v = v;
	o->busy = 0;
	return (PyObject *)o;
}

int udrpy_version_add_chunks(udr_version *v, PyObject *hashes)
{
	PyObject *it, *item;
	int rc;

	if (PyUnicode_Check(hashes) || PyBytes_Check(hashes) || PyByteArray_Check(hashes)) {
		PyErr_Format(PyExc_TypeError,
		             "chunk_hashes must be an iterable of str hashes, not %.100s",
		             Py_TYPE(hashes)->tp_name);
		return -1;
	}
	it = PyObject_GetIter(hashes);
	if (it == NULL) {
		if (PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError,
			             "chunk_hashes must be an iterable of str hashes, not %.100s",
			             Py_TYPE(hashes)->tp_name);
		}
		return -1;
	}
	while ((item = PyIter_Next(it)) != NULL) {
		udr_hash h;

		if (udrpy_hash_from_obj(&h, item) < 0) {
			Py_DECREF(item);
			Py_DECREF(it);
			return -1;
		}
		Py_DECREF(item);
		rc = udr_version_add_chunk(v, &h);
		if (rc < 0) {
			Py_DECREF(it);
			udrpy_raise(rc);
			return -1;
		}
	}
	Py_DECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

int udrpy_version_set_metadata(udr_version *v, PyObject *meta)
{
	PyObject *items;
	int rc;

	if (!PyMapping_Check(meta) || PyUnicode_Check(meta) || PySequence_Check(meta)) {
		PyErr_Format(PyExc_TypeError, "metadata must be a mapping of str to str, not %.100s",
		             Py_TYPE(meta)->tp_name);
		return -1;
	}
	items = PyMapping_Items(meta);
	if (items == NULL)
		return -1;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
		PyObject *kv = PyList_GET_ITEM(items, i);
		const char *key, *value;

		if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
			PyErr_SetString(PyExc_TypeError, "metadata items must be (key, value) pairs");
			goto fail;
		}
		key = udrpy_cstr(PyTuple_GET_ITEM(kv, 0), "metadata key");
		if (key == NULL)
			goto fail;
		value = udrpy_cstr(PyTuple_GET_ITEM(kv, 1), "metadata value");
		if (value == NULL)
			goto fail;
		rc = udr_version_set_meta(v, key, value);
		if (rc < 0) {
			udrpy_raise(rc);
			goto fail;
		}
	}
	Py_DECREF(items);
	return 0;
fail:
	Py_DECREF(items);
	return -1;
}

static PyObject *version_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"table_name", "version", "chunk_hashes", "message", "metadata",
	                         NULL};
	PyObject *tobj, *vobj, *hashes = NULL, *mobj = Py_None, *meta = Py_None;
	const char *table, *message = NULL;
	uint64_t num;
	udr_version *v = NULL;
	udrpy_version *o;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:TableVersion", kwlist, &tobj, &vobj,
	                                 &hashes, &mobj, &meta))
		return NULL;
	table = udrpy_cstr(tobj, "table name");
	if (table == NULL)
		return NULL;
	if (udrpy_version_from_obj(&num, vobj, 0) < 0)
		return NULL;
	if (mobj != Py_None && (message = udrpy_cstr(mobj, "message")) == NULL)
		return NULL;
	rc = udr_version_new(&v, table, num);
	if (rc < 0)
		return udrpy_raise(rc);
	if ((hashes != NULL && hashes != Py_None && udrpy_version_add_chunks(v, hashes) < 0) ||
	    (meta != Py_None && udrpy_version_set_metadata(v, meta) < 0))
		goto fail;
	if (message != NULL && (rc = udr_version_set_message(v, message)) < 0) {
		udrpy_raise(rc);
		goto fail;
	}
	o = (udrpy_version *)type->tp_alloc(type, 0);
	if (o == NULL)
		goto fail;
	o->v = v;
	return (PyObject *)o;
fail:
	udr_version_free(v);
	return NULL;
}

static void version_dealloc(udrpy_version *o)
{
	udr_version_free(o->v);
	Py_TYPE(o)->tp_free((PyObject *)o);
}

/* ---- attributes ------------------------------------------------------- */

static PyObject *get_table_name(udrpy_version *o, void *closure)
{
	(void)closure;
	return PyUnicode_DecodeUTF8(o->v->table, (Py_ssize_t)strlen(o->v->table),
	                            "backslashreplace");
}

static PyObject *get_version(udrpy_version *o, void *closure)
{
	(void)closure;
	return PyLong_FromUnsignedLongLong(o->v->version);
}

static PyObject *get_chunk_hashes(udrpy_version *o, void *closure)
{
	PyObject *list = PyList_New((Py_ssize_t)o->v->nchunks);

	(void)closure;
	for (size_t i = 0; list != NULL && i < o->v->nchunks; i++) {
		PyObject *s = udrpy_hash_to_str(&o->v->chunks[i]);

		if (s == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, s);
	}
	return list;
}

static PyObject *get_created_at(udrpy_version *o, void *closure)
{
	(void)closure;
	if (o->v->created_ms == 0)
		Py_RETURN_NONE;
	return udrpy_datetime_from_ms(o->v->created_ms);
}

static PyObject *get_created_ms(udrpy_version *o, void *closure)
{
	(void)closure;
	if (o->v->created_ms == 0)
		Py_RETURN_NONE;
	return PyLong_FromLongLong(o->v->created_ms);
}

static PyObject *get_parent_version(udrpy_version *o, void *closure)
{
	(void)closure;
	if (o->v->parent == 0)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(o->v->parent);
}

static PyObject *get_commit_seq(udrpy_version *o, void *closure)
{
	(void)closure;
	if (o->v->commit_seq == 0)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(o->v->commit_seq);
}

static PyObject *get_message(udrpy_version *o, void *closure)
{
	(void)closure;
	if (o->v->message == NULL)
		Py_RETURN_NONE;
	return PyUnicode_DecodeUTF8(o->v->message, (Py_ssize_t)strlen(o->v->message),
	                            "surrogateescape");
}

static PyObject *get_metadata(udrpy_version *o, void *closure)
{
	PyObject *d = PyDict_New();

	(void)closure;
	for (size_t i = 0; d != NULL && i < o->v->nmeta; i++) {
		const udr_meta *m = &o->v->meta[i];
		PyObject *k = PyUnicode_DecodeUTF8(m->key, (Py_ssize_t)strlen(m->key),
		                                   "surrogateescape");
		PyObject *val = PyUnicode_DecodeUTF8(m->value, (Py_ssize_t)strlen(m->value),
		                                     "surrogateescape");

		if (k == NULL || val == NULL || PyDict_SetItem(d, k, val) < 0)
			Py_CLEAR(d);
		Py_XDECREF(k);
		Py_XDECREF(val);
	}
	return d;
}

static PyGetSetDef version_getset[] = {
	{"table_name", (getter)get_table_name, NULL, "The table name (str).", NULL},
	{"version", (getter)get_version, NULL,
	 "The version number (int; 0 = not chosen yet, for Catalog.commit_next).", NULL},
	{"chunk_hashes", (getter)get_chunk_hashes, NULL,
	 "The ordered chunk hashes (a new list of str at each access).", NULL},
	{"created_at", (getter)get_created_at, NULL,
	 "Creation time as a timezone-aware UTC datetime (millisecond precision);\n"
	 "None until the version is committed (the commit sets it).", NULL},
	{"created_ms", (getter)get_created_ms, NULL,
	 "Creation time in ms since the Unix epoch (int), or None before commit.", NULL},
	{"parent_version", (getter)get_parent_version, NULL,
	 "The previous version number of the table (int), or None for the first\n"
	 "version and before commit.", NULL},
	{"commit_seq", (getter)get_commit_seq, NULL,
	 "Sequence number of the commit that created it (int), None before commit.", NULL},
	{"message", (getter)get_message, NULL, "The commit message (str) or None.", NULL},
	{"metadata", (getter)get_metadata, NULL,
	 "The metadata (a new dict of str to str at each access).", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

/* ---- comparison and repr ---------------------------------------------- */

static int str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int versions_equal(const udr_version *a, const udr_version *b)
{
	if (!str_eq(a->table, b->table) || a->version != b->version ||
	    a->nchunks != b->nchunks || a->created_ms != b->created_ms ||
	    a->parent != b->parent || a->commit_seq != b->commit_seq ||
	    !str_eq(a->message, b->message) || a->nmeta != b->nmeta)
		return 0;
	for (size_t i = 0; i < a->nchunks; i++)
		if (!udr_hash_equal(&a->chunks[i], &b->chunks[i]))
			return 0;
	for (size_t i = 0; i < a->nmeta; i++)
		if (!str_eq(a->meta[i].key, b->meta[i].key) ||
		    !str_eq(a->meta[i].value, b->meta[i].value))
			return 0;
	return 1;
}

static PyObject *version_richcompare(PyObject *a, PyObject *b, int op)
{
	int eq;

	if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &udrpy_VersionType))
		Py_RETURN_NOTIMPLEMENTED;
	eq = versions_equal(((udrpy_version *)a)->v, ((udrpy_version *)b)->v);
	return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyObject *version_repr(udrpy_version *o)
{
	PyObject *table = get_table_name(o, NULL), *created = NULL, *msg = NULL, *r = NULL;
	PyObject *parent = NULL;

	if (table == NULL)
		return NULL;
	if (o->v->created_ms != 0) {
		PyObject *dt = udrpy_datetime_from_ms(o->v->created_ms);

		if (dt == NULL)
			goto out;
		created = PyObject_CallMethod(dt, "isoformat", "ss", "T", "milliseconds");
		Py_DECREF(dt);
	} else
		created = Py_NewRef(Py_None);
	if (created == NULL)
		goto out;
	msg = get_message(o, NULL);
	parent = get_parent_version(o, NULL);
	if (msg == NULL || parent == NULL)
		goto out;
	r = PyUnicode_FromFormat("TableVersion(table_name=%R, version=%llu, chunks=%zu, "
	                         "parent_version=%S, created_at=%R, message=%R)",
	                         table, (unsigned long long)o->v->version, o->v->nchunks,
	                         parent, created, msg);
out:
	Py_DECREF(table);
	Py_XDECREF(created);
	Py_XDECREF(msg);
	Py_XDECREF(parent);
	return r;
}

static Py_ssize_t version_len(PyObject *self)
{
	return (Py_ssize_t)((udrpy_version *)self)->v->nchunks;
}

static PySequenceMethods version_as_sequence = {
	.sq_length = version_len,
};

PyDoc_STRVAR(version_doc,
"TableVersion(table_name, version, chunk_hashes, message=None, metadata=None)\n\n"
"One version of a table: an ordered list of chunk hashes (str, 64 hex\n"
"digits) plus an optional message and str-to-str metadata.  version is the\n"
"number to commit as (0 lets Catalog.commit_next choose).  A bad table name,\n"
"hash or version number raises InvalidArgumentError here; wrong types raise\n"
"TypeError.  created_at, parent_version and commit_seq are None until the\n"
"version is committed.  Read-only; equal to an identical version (all fields\n"
"compared); len() is the number of chunks.  Also available as PyTableVersion.");

PyTypeObject udrpy_VersionType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.TableVersion",
	.tp_basicsize = sizeof(udrpy_version),
	.tp_dealloc = (destructor)version_dealloc,
	.tp_repr = (reprfunc)version_repr,
	.tp_as_sequence = &version_as_sequence,
	.tp_hash = PyObject_HashNotImplemented,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = version_doc,
	.tp_richcompare = version_richcompare,
	.tp_getset = version_getset,
	.tp_new = version_new,
};
