/*
 * pystore.c - udr.ChunkStore (alias PyChunkStore): the content-addressed chunk
 * store.  Every call that hashes or does I/O runs without the GIL; the handle
 * is pinned meanwhile so close() from another thread cannot pull it away.
 */
#include "udrpy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void store_pin_close(udrpy_pin *pin)
{
	udr_store *h = pin->handle;

	pin->handle = NULL;
	udr_store_close(h);
}

udr_store *udrpy_store_enter(udrpy_store *s)
{
	udr_db *db;

	if (s->db == NULL) {
		if (udrpy_pin_acquire(&s->pin) < 0)
			return NULL;
		return s->pin.handle;
	}
	if (s->detached) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR, "the chunk store is closed");
		return NULL;
	}
	db = udrpy_db_enter(s->db);
	return db == NULL ? NULL : udr_db_store(db);
}

void udrpy_store_leave(udrpy_store *s)
{
	if (s->db == NULL)
		udrpy_pin_release(&s->pin);
	else
		udrpy_db_leave(s->db);
}

static udrpy_store *store_alloc(PyTypeObject *type)
{
	udrpy_store *s = (udrpy_store *)type->tp_alloc(type, 0);

	if (s == NULL)
		return NULL;
	s->pin.close = store_pin_close;
	s->pin.what = "chunk store";
	return s;
}

PyObject *udrpy_store_from_db(udrpy_db *db)
{
	udrpy_store *s = store_alloc(&udrpy_StoreType);
	udr_db *h;

	if (s == NULL)
		return NULL;
	Py_INCREF(db);
	s->db = db;
	h = udrpy_db_enter(db);
	if (h == NULL) {
		Py_DECREF(s);
		return NULL;
	}
	s->path = PyUnicode_DecodeFSDefault(udr_store_path(udr_db_store(h)));
	udrpy_db_leave(db);
	if (s->path == NULL) {
		Py_DECREF(s);
		return NULL;
	}
	return (PyObject *)s;
}

static PyObject *store_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"path", "create", NULL};
	PyObject *path = NULL;
	int create = 1, rc;
	udr_store *h = NULL;
	udrpy_store *s;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|p:ChunkStore", kwlist,
	                                 PyUnicode_FSConverter, &path, &create))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_open(&h, PyBytes_AS_STRING(path), create ? UDR_OPEN_CREATE : 0);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		Py_DECREF(path);
		return udrpy_raise(rc);
	}
	s = store_alloc(type);
	if (s == NULL) {
		udr_store_close(h);
		Py_DECREF(path);
		return NULL;
	}
	s->pin.handle = h;
	s->path = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(path),
	                                           PyBytes_GET_SIZE(path));
	Py_DECREF(path);
	if (s->path == NULL) {
		Py_DECREF(s);
		return NULL;
	}
	return (PyObject *)s;
}

static int store_traverse(udrpy_store *s, visitproc visit, void *arg)
{
	Py_VISIT(s->db);
	return 0;
}

static int store_clear(udrpy_store *s)
{
	Py_CLEAR(s->db);
	return 0;
}

static void store_dealloc(udrpy_store *s)
{
	PyObject_GC_UnTrack(s);
	if (s->weakreflist != NULL)
		PyObject_ClearWeakRefs((PyObject *)s);
	if (s->pin.handle != NULL)
		store_pin_close(&s->pin);
	Py_CLEAR(s->db);
	Py_CLEAR(s->path);
	Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *store_repr(udrpy_store *s)
{
	return PyUnicode_FromFormat("<udr.ChunkStore %R%s>", s->path ? s->path : Py_None,
	                            (s->db ? (s->detached || s->db->pin.closed) : s->pin.closed)
	                                    ? " (closed)" : "");
}

/* ---- methods ---------------------------------------------------------- */

PyDoc_STRVAR(put_doc,
"put(data) -> str\n\n"
"Store the bytes of a bytes-like object (bytes, bytearray, memoryview, any\n"
"C-contiguous buffer; read in place, not copied) and return their BLAKE3-256\n"
"hash as 64 lowercase hex digits.  Durable when the call returns; storing\n"
"bytes that already exist is not an error (dedup).  Raises TypeError for a\n"
"non-buffer (e.g. str), IOError on I/O failure.");

static PyObject *store_put(udrpy_store *s, PyObject *arg)
{
	Py_buffer buf;
	udr_store *st;
	udr_hash h;
	int rc;

	if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL) {
		PyBuffer_Release(&buf);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_put(&h, st, buf.buf, (size_t)buf.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&buf);
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	return rc < 0 ? NULL : udrpy_hash_to_str(&h);
}

/*
 * Read a chunk that the store keeps as one plain file (udr_store_local_path)
 * straight into a new bytes object, saving the copy out of the library's
 * buffer, and rehash it (local_path leaves verification to its caller).
 * 1: *out is set; 0: the caller must take the library's copying path, which
 * also reports any error with the library's message (not a plain file,
 * missing, unreadable, short, or a hash mismatch); -1: a Python exception
 * (MemoryError).
 */
static int get_in_place(PyObject **out, udr_store *st, const udr_hash *h)
{
	char *path = NULL;
	struct stat sb;
	int rc, fd = -1, ok = 1;
	PyObject *b;
	char *p;

	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_local_path(&path, st, h);
	if (rc == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
		                (uintmax_t)sb.st_size > (uintmax_t)PY_SSIZE_T_MAX)) {
			close(fd);
			fd = -1;
		}
	}
	udr_free(path);
	Py_END_ALLOW_THREADS
	if (fd < 0)
		return 0;
	b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sb.st_size);
	if (b == NULL) {
		close(fd);
		return -1;
	}
	p = PyBytes_AS_STRING(b);
	Py_BEGIN_ALLOW_THREADS
	for (size_t got = 0, want = (size_t)sb.st_size; got < want;) {
		ssize_t n = read(fd, p + got, want - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ok = 0;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (ok) {
		udr_hash check;

		udr_hash_buf(&check, p, (size_t)sb.st_size);
		ok = udr_hash_equal(&check, h);
	}
	Py_END_ALLOW_THREADS
	if (!ok) {
		Py_DECREF(b);
		return 0;
	}
	*out = b;
	return 1;
}

static PyObject *store_get(udrpy_store *s, PyObject *arg)
{
	udr_store *st;
	udr_hash h;
	void *data = NULL;
	size_t len = 0;
	int rc;
	PyObject *r = NULL;

	if (udrpy_hash_from_obj(&h, arg) < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	rc = get_in_place(&r, st, &h);
	if (rc != 0) {
		udrpy_store_leave(s);
		return rc < 0 ? NULL : r;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_get(&data, &len, st, &h); /* verifies */
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		udrpy_raise(rc);
		udrpy_store_leave(s);
		return NULL;
	}
	udrpy_store_leave(s);
	if (len > (size_t)PY_SSIZE_T_MAX) {
		udr_free(data);
		return PyErr_NoMemory();
	}
	r = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
	udr_free(data);
	return r;
}

PyDoc_STRVAR(get_doc,
"get(hash) -> bytes\n\n"
"The bytes of the chunk named by hash (64 hex digits), verified: each\n"
"piece and the whole content are rehashed, and damage raises\n"
"IntegrityError naming the chunk (nothing is returned).  Raises\n"
"NotFoundError when the chunk does not exist, InvalidArgumentError for a\n"
"malformed hash, TypeError for a non-str.");

PyDoc_STRVAR(get_verified_doc,
"get_verified(hash) -> bytes\n\n"
"The same as get(), which verifies too (kept for compatibility).");

PyDoc_STRVAR(exists_doc,
"exists(hash) -> bool\n\n"
"Whether the chunk named by hash is stored.  `hash in store` is the same.");

static int exists_common(udrpy_store *s, PyObject *arg)
{
	udr_store *st;
	udr_hash h;
	int rc;

	if (udrpy_hash_from_obj(&h, arg) < 0)
		return -1;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_exists(st, &h);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	return rc < 0 ? -1 : rc != 0;
}

static PyObject *store_exists(udrpy_store *s, PyObject *arg)
{
	int r = exists_common(s, arg);

	if (r < 0)
		return NULL;
	return PyBool_FromLong(r);
}

/* For tests: where the copies of a chunk are (udr_store_debug_locate), as
 * its text: one line per copy. */
static PyObject *store_locate(udrpy_store *s, PyObject *arg)
{
	udr_store *st;
	udr_hash h;
	char *text = NULL;
	PyObject *r;
	int rc;

	if (udrpy_hash_from_obj(&h, arg) < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_debug_locate(&text, st, &h);
	Py_END_ALLOW_THREADS
	udrpy_store_leave(s);
	if (rc < 0)
		return udrpy_raise(rc);
	r = PyUnicode_FromString(text);
	free(text);
	return r;
}

/* `x in store`: False for anything that is not a stored chunk's hash (a
 * non-str, bad hex), as a container answers; exists() still raises. */
static int store_contains(PyObject *self, PyObject *arg)
{
	udr_hash h;

	if (!PyUnicode_Check(arg))
		return 0;
	if (udrpy_hash_from_obj(&h, arg) < 0) {
		if (!PyErr_ExceptionMatches(udrpy_InvalidArgumentError))
			return -1;
		PyErr_Clear();
		return 0;
	}
	return exists_common((udrpy_store *)self, arg);
}

PyDoc_STRVAR(size_doc,
"size(hash) -> int\n\n"
"The size in bytes of the chunk named by hash, as its bytes decode (a chunk\n"
"stored as one piece is read and checked to answer).  Raises NotFoundError,\n"
"IntegrityError when no intact copy is left.");

static PyObject *store_size(udrpy_store *s, PyObject *arg)
{
	udr_store *st;
	udr_hash h;
	uint64_t size = 0;
	int rc;

	if (udrpy_hash_from_obj(&h, arg) < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_size(&size, st, &h);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(size);
}

PyDoc_STRVAR(put_file_doc,
"put_file(path) -> str\n\n"
"Store the content of the file at path (str or os.PathLike), streaming with\n"
"bounded memory, and return its hash.  Raises NotFoundError when the file\n"
"does not exist, IOError when it cannot be read.");

static PyObject *store_put_file(udrpy_store *s, PyObject *arg)
{
	PyObject *path = NULL;
	udr_store *st;
	udr_hash h;
	int rc;

	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL) {
		Py_DECREF(path);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_put_file(&h, st, PyBytes_AS_STRING(path));
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	return rc < 0 ? NULL : udrpy_hash_to_str(&h);
}

PyDoc_STRVAR(get_file_doc,
"get_file(hash, path, verify=True) -> None\n\n"
"Write the chunk named by hash to the file at path, streaming with bounded\n"
"memory.  The file appears (replacing any file of that name) only when all\n"
"bytes were written and rehashed and found equal; on failure nothing is\n"
"left at path.  verify=False skips the rehash (zstd and manifest checksums\n"
"are still checked, damage to plain objects is not noticed).  Raises\n"
"NotFoundError, IntegrityError, IOError.");

static PyObject *store_get_file(udrpy_store *s, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"hash", "path", "verify", NULL};
	PyObject *path = NULL;
	udr_hash h;
	int verify = 1, rc;
	udr_store *st;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|p:get_file", kwlist,
	                                 udrpy_hash_converter, &h, PyUnicode_FSConverter, &path,
	                                 &verify))
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL) {
		Py_DECREF(path);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_get_file(st, &h, PyBytes_AS_STRING(path), verify ? 0 : UDR_GET_NOVERIFY);
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

PyDoc_STRVAR(put_fd_doc,
"put_fd(fd) -> str\n\n"
"Store everything readable from a file descriptor (an int, or an object\n"
"with fileno()) from its current offset to end of file, streaming, and\n"
"return the hash.  Python-level buffering is bypassed: for a buffered file\n"
"object read nothing from it before.");

static PyObject *store_put_fd(udrpy_store *s, PyObject *arg)
{
	udr_store *st;
	udr_hash h;
	int fd, rc;

	fd = PyObject_AsFileDescriptor(arg);
	if (fd < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_put_fd(&h, st, fd);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	return rc < 0 ? NULL : udrpy_hash_to_str(&h);
}

PyDoc_STRVAR(get_fd_doc,
"get_fd(hash, fd, verify=True) -> None\n\n"
"Write the chunk named by hash into a file descriptor (an int, or an object\n"
"with fileno(); flush a buffered file object first), streaming.  Each\n"
"piece is rehashed before it is written (a plain object of up to 64 MiB\n"
"before anything is written); damage raises IntegrityError, possibly after\n"
"verified pieces (or, for a plain object above 64 MiB, its bytes) were\n"
"written: the caller must then discard them.  verify=False skips the\n"
"rehash, as for get_file().");

static PyObject *store_get_fd(udrpy_store *s, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"hash", "fd", "verify", NULL};
	PyObject *fdobj;
	udr_hash h;
	int verify = 1, rc, fd;
	udr_store *st;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O|p:get_fd", kwlist,
	                                 udrpy_hash_converter, &h, &fdobj, &verify))
		return NULL;
	fd = PyObject_AsFileDescriptor(fdobj);
	if (fd < 0)
		return NULL;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_get_fd(st, &h, fd, verify ? 0 : UDR_GET_NOVERIFY);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

struct hash_list {
	udr_hash *items;
	size_t n, cap;
};

static int collect_hash(const udr_hash *hash, void *payload)
{
	struct hash_list *l = payload;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		udr_hash *p;

		if (cap > SIZE_MAX / sizeof *p)
			return UDR_ENOMEM;
		p = realloc(l->items, cap * sizeof *p);
		if (p == NULL)
			return UDR_ENOMEM;
		l->items = p;
		l->cap = cap;
	}
	l->items[l->n++] = *hash;
	return 0;
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, UDR_HASH_SIZE);
}

PyDoc_STRVAR(hashes_doc,
"hashes() -> list[str]\n\n"
"The hashes of every stored chunk, sorted.");

static PyObject *store_hashes(udrpy_store *s, PyObject *unused)
{
	struct hash_list l = {NULL, 0, 0};
	udr_store *st;
	PyObject *list = NULL;
	int rc;

	(void)unused;
	st = udrpy_store_enter(s);
	if (st == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = udr_store_foreach(st, collect_hash, &l);
	if (rc == 0 && l.n > 1)
		qsort(l.items, l.n, sizeof *l.items, cmp_hash);
	Py_END_ALLOW_THREADS
	if (rc == UDR_ENOMEM)
		PyErr_NoMemory();
	else if (rc < 0)
		udrpy_raise(rc);
	udrpy_store_leave(s);
	if (rc == 0 && (list = PyList_New((Py_ssize_t)l.n)) != NULL) {
		for (size_t i = 0; i < l.n; i++) {
			PyObject *str = udrpy_hash_to_str(&l.items[i]);

			if (str == NULL) {
				Py_CLEAR(list);
				break;
			}
			PyList_SET_ITEM(list, (Py_ssize_t)i, str);
		}
	}
	free(l.items);
	return list;
}

PyDoc_STRVAR(close_doc,
"close() -> None\n\n"
"Close the store.  Idempotent.  A call running in another thread finishes\n"
"first; a catalog opened with this store keeps the handle open until the\n"
"catalog is closed.  A store obtained from Database.store closes with the\n"
"database; close() on it only detaches this object.");

static PyObject *store_close(udrpy_store *s, PyObject *unused)
{
	(void)unused;
	if (s->db != NULL)
		s->detached = 1;
	else
		udrpy_pin_close(&s->pin);
	Py_RETURN_NONE;
}

static PyObject *store_get_closed(udrpy_store *s, void *closure)
{
	(void)closure;
	if (s->db != NULL)
		return PyBool_FromLong(s->detached || s->db->pin.closed);
	return PyBool_FromLong(s->pin.closed);
}

static PyObject *store_get_path(udrpy_store *s, void *closure)
{
	(void)closure;
	return Py_NewRef(s->path ? s->path : Py_None);
}

static PyMethodDef store_methods[] = {
	{"put", (PyCFunction)store_put, METH_O, put_doc},
	{"get", (PyCFunction)store_get, METH_O, get_doc},
	{"get_verified", (PyCFunction)store_get, METH_O, get_verified_doc},
	{"exists", (PyCFunction)store_exists, METH_O, exists_doc},
	{"size", (PyCFunction)store_size, METH_O, size_doc},
	{"put_file", (PyCFunction)store_put_file, METH_O, put_file_doc},
	{"get_file", (PyCFunction)(void (*)(void))store_get_file, METH_VARARGS | METH_KEYWORDS,
	 get_file_doc},
	{"put_fd", (PyCFunction)store_put_fd, METH_O, put_fd_doc},
	{"get_fd", (PyCFunction)(void (*)(void))store_get_fd, METH_VARARGS | METH_KEYWORDS,
	 get_fd_doc},
	{"hashes", (PyCFunction)store_hashes, METH_NOARGS, hashes_doc},
	{"_locate", (PyCFunction)store_locate, METH_O,
	 "For tests: where the copies of a chunk are, one line each (udr_store_debug_locate)."},
	{"close", (PyCFunction)store_close, METH_NOARGS, close_doc},
	UDRPY_CTX_DOCS,
	{NULL, NULL, 0, NULL}};

static PyGetSetDef store_getset[] = {
	{"path", (getter)store_get_path, NULL, "The store directory (str).", NULL},
	{"closed", (getter)store_get_closed, NULL, "True once closed.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods store_as_sequence = {
	.sq_contains = store_contains,
};

PyDoc_STRVAR(store_doc,
"ChunkStore(path, create=True)\n\n"
"The content-addressed chunk store in directory path (str or os.PathLike):\n"
"bytes in, BLAKE3-256 hash (64 lowercase hex digits) out, the same bytes\n"
"stored once.  Created when missing unless create is False (then\n"
"NotFoundError).  Thread-safe; the GIL is released during hashing and I/O.\n"
"Also available as PyChunkStore.  A context manager: `with` closes it.");

PyTypeObject udrpy_StoreType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "udr.ChunkStore",
	.tp_basicsize = sizeof(udrpy_store),
	.tp_dealloc = (destructor)store_dealloc,
	.tp_repr = (reprfunc)store_repr,
	.tp_as_sequence = &store_as_sequence,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = store_doc,
	.tp_traverse = (traverseproc)store_traverse,
	.tp_clear = (inquiry)store_clear,
	.tp_weaklistoffset = offsetof(udrpy_store, weakreflist),
	.tp_methods = store_methods,
	.tp_getset = store_getset,
	.tp_new = store_new,
};
