/*
 * udrmodule.c - the udr._udr extension module: initialisation, the exception
 * hierarchy, handle pins and the conversions shared by the object types.
 * The package udr re-exports everything defined here.
 */
#include "udrpy.h"

#include <datetime.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

PyObject *udrpy_Error;
PyObject *udrpy_NotFoundError;
PyObject *udrpy_ConflictError;
PyObject *udrpy_IntegrityError;
PyObject *udrpy_InvalidArgumentError;
PyObject *udrpy_IOError;
PyObject *udrpy_LockedError;
PyObject *udrpy_ExpiredError;

static PyObject *epoch_utc; /* datetime(1970, 1, 1, tzinfo=timezone.utc) */

/* ---- pins ------------------------------------------------------------- */

int udrpy_pin_acquire(udrpy_pin *pin)
{
	if (pin->closed || pin->handle == NULL) {
		udrpy_raise_msg(udrpy_Error, UDR_ERROR, "the %s is closed", pin->what);
		return -1;
	}
	pin->busy++;
	return 0;
}

void udrpy_pin_release(udrpy_pin *pin)
{
	if (--pin->busy == 0 && pin->closed && pin->handle != NULL)
		pin->close(pin);
}

void udrpy_pin_close(udrpy_pin *pin)
{
	pin->closed = 1;
	if (pin->busy == 0 && pin->handle != NULL)
		pin->close(pin);
}

PyObject *udrpy_enter_self(PyObject *self, PyObject *unused)
{
	(void)unused;
	Py_INCREF(self);
	return self;
}

PyObject *udrpy_exit_close(PyObject *self, PyObject *args)
{
	(void)args;
	PyObject *r = PyObject_CallMethod(self, "close", NULL);
	if (r == NULL)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

/* ---- errors ----------------------------------------------------------- */

static PyObject *exception_for(int code)
{
	switch (code) {
	case UDR_EINVAL: return udrpy_InvalidArgumentError;
	case UDR_ENOTFOUND: return udrpy_NotFoundError;
	case UDR_ECONFLICT: return udrpy_ConflictError;
	case UDR_ECORRUPT: return udrpy_IntegrityError;
	case UDR_EIO: return udrpy_IOError;
	case UDR_ELOCKED: return udrpy_LockedError;
	case UDR_EEXPIRED: return udrpy_ExpiredError;
	default: return udrpy_Error;
	}
}

static const char *const expired_attrs[] = {
	"table", "version", "expired_seq", "expired_at", "swept", "swept_at",
};

/* ExpiredError's attributes from the library's last expired read. */
static int set_expired_attrs(PyObject *e)
{
	char table[UDR_TABLE_NAME_MAX + 1];
	uint64_t version = 0;
	udr_expiry ex;
	PyObject *v[6];
	int rc = 0;

	if (!udr_expiry_last(table, sizeof table, &version, &ex))
		return 0;
	v[0] = PyUnicode_DecodeUTF8(table, (Py_ssize_t)strlen(table), "backslashreplace");
	v[1] = PyLong_FromUnsignedLongLong(version);
	v[2] = PyLong_FromUnsignedLongLong(ex.expired_seq);
	v[3] = udrpy_datetime_from_ms(ex.expired_ms);
	v[4] = PyBool_FromLong(ex.swept);
	v[5] = ex.swept ? udrpy_datetime_from_ms(ex.gc_ms) : (Py_INCREF(Py_None), Py_None);
	for (size_t i = 0; i < 6; i++) {
		if (v[i] == NULL || (rc == 0 && PyObject_SetAttrString(e, expired_attrs[i], v[i]) < 0))
			rc = -1;
		Py_XDECREF(v[i]);
	}
	return rc;
}

static PyObject *raise_with(PyObject *exc, int code, PyObject *msg)
{
	PyObject *e, *c;

	if (msg == NULL)
		return NULL;
	e = PyObject_CallOneArg(exc, msg);
	Py_DECREF(msg);
	if (e == NULL)
		return NULL;
	c = PyLong_FromLong(code);
	if (c == NULL || PyObject_SetAttrString(e, "code", c) < 0) {
		Py_XDECREF(c);
		Py_DECREF(e);
		return NULL;
	}
	Py_DECREF(c);
	if (code == UDR_EEXPIRED && set_expired_attrs(e) < 0) {
		Py_DECREF(e);
		return NULL;
	}
	PyErr_SetObject(exc, e);
	Py_DECREF(e);
	return NULL;
}

PyObject *udrpy_raise(int rc)
{
	const udr_error *err = udr_error_last();
	const char *m = err->message;

	if (rc == UDR_ENOMEM)
		return PyErr_NoMemory();
	if (m == NULL || m[0] == '\0' || err->code != rc)
		m = udr_strerror(rc);
	/* Messages quote user data; never fail on a stray byte. */
	return raise_with(exception_for(rc), rc,
	                  PyUnicode_DecodeUTF8(m, (Py_ssize_t)strlen(m), "backslashreplace"));
}

PyObject *udrpy_raise_msg(PyObject *exc, int code, const char *fmt, ...)
{
	va_list ap;
	PyObject *msg;

	va_start(ap, fmt);
	msg = PyUnicode_FromFormatV(fmt, ap);
	va_end(ap);
	return raise_with(exc, code, msg);
}

/* NotFoundError is a KeyError, whose str() would repr-quote the message. */
static PyObject *notfound_str(PyObject *self, PyObject *unused)
{
	(void)unused;
	PyObject *args = PyObject_GetAttrString(self, "args");
	PyObject *r;

	if (args == NULL)
		return NULL;
	if (PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 1)
		r = PyObject_Str(PyTuple_GET_ITEM(args, 0));
	else
		r = ((PyTypeObject *)PyExc_BaseException)->tp_str(self);
	Py_DECREF(args);
	return r;
}

static PyMethodDef notfound_str_def = {
	"__str__", notfound_str, METH_NOARGS, "The message, unquoted."};

/* ---- conversions ------------------------------------------------------ */

int udrpy_hash_from_obj(udr_hash *out, PyObject *obj)
{
	const char *s;
	Py_ssize_t n;
	int rc;

	if (!PyUnicode_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "a hash must be a str of 64 hex digits, not %.100s",
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	s = PyUnicode_AsUTF8AndSize(obj, &n);
	if (s == NULL)
		return -1;
	if ((size_t)n != strlen(s)) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                "invalid hash %R: contains a NUL character", obj);
		return -1;
	}
	rc = udr_hash_fromhex(out, s);
	if (rc < 0) {
		udrpy_raise(rc);
		return -1;
	}
	return 0;
}

int udrpy_hash_converter(PyObject *obj, void *out)
{
	return udrpy_hash_from_obj(out, obj) < 0 ? 0 : 1;
}

PyObject *udrpy_hash_to_str(const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];

	udr_hash_tohex(hex, h);
	return PyUnicode_FromStringAndSize(hex, UDR_HASH_HEXSIZE);
}

int udrpy_u64_from_obj(uint64_t *out, PyObject *obj, uint64_t min, const char *what)
{
	PyObject *n;
	unsigned long long v;

	if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	n = PyNumber_Index(obj);
	if (n == NULL)
		return -1;
	v = PyLong_AsUnsignedLongLong(n);
	if (v == (unsigned long long)-1 && PyErr_Occurred()) {
		PyObject *zero = PyLong_FromLong(0);
		int positive = zero != NULL ? PyObject_RichCompareBool(n, zero, Py_GT) : -1;

		Py_XDECREF(zero);
		PyErr_Clear();
		if (positive > 0)
			udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                "invalid %s %S: must be at most 2**64-1", what, n);
		else
			udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                "invalid %s %S: must be >= %llu", what, n, (unsigned long long)min);
		Py_DECREF(n);
		return -1;
	}
	if (v < min) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "invalid %s %S: must be >= %llu",
		                what, n, (unsigned long long)min);
		Py_DECREF(n);
		return -1;
	}
	Py_DECREF(n);
	*out = v;
	return 0;
}

int udrpy_version_from_obj(uint64_t *out, PyObject *obj, uint64_t min)
{
	return udrpy_u64_from_obj(out, obj, min, "version number");
}

PyObject *udrpy_datetime_from_ms(int64_t ms)
{
	/* epoch + timedelta keeps millisecond precision exactly. */
	int64_t days = ms / 86400000, rem = ms % 86400000;
	PyObject *delta, *r;

	if (rem < 0) {
		rem += 86400000;
		days -= 1;
	}
	delta = PyDelta_FromDSU((int)days, (int)(rem / 1000), (int)(rem % 1000) * 1000);
	if (delta == NULL)
		return NULL;
	r = PyNumber_Add(epoch_utc, delta);
	Py_DECREF(delta);
	return r;
}

int udrpy_ms_from_datetime(int64_t *out, PyObject *obj, const char *what)
{
	PyObject *off, *delta;
	int64_t ms;

	if (!PyDateTime_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "%s must be a datetime.datetime, not %.100s", what,
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	off = PyObject_CallMethod(obj, "utcoffset", NULL);
	if (off == NULL)
		return -1;
	Py_DECREF(off);
	if (off == Py_None) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                "%s %R is a naive datetime: give it a time zone "
		                "(e.g. tzinfo=datetime.timezone.utc)", what, obj);
		return -1;
	}
	delta = PyNumber_Subtract(obj, epoch_utc);
	if (delta == NULL)
		return -1;
	/* timedelta is normalized: 0 <= seconds < 86400, 0 <= us < 10**6. */
	ms = (int64_t)PyDateTime_DELTA_GET_DAYS(delta) * 86400000 +
	     (int64_t)PyDateTime_DELTA_GET_SECONDS(delta) * 1000 +
	     PyDateTime_DELTA_GET_MICROSECONDS(delta) / 1000;
	Py_DECREF(delta);
	*out = ms;
	return 0;
}

const char *udrpy_cstr(PyObject *obj, const char *what)
{
	const char *s;
	Py_ssize_t n;

	if (!PyUnicode_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
		             Py_TYPE(obj)->tp_name);
		return NULL;
	}
	s = PyUnicode_AsUTF8AndSize(obj, &n);
	if (s == NULL)
		return NULL;
	if ((size_t)n != strlen(s)) {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
		                "invalid %s %R: contains a NUL character", what, obj);
		return NULL;
	}
	return s;
}

/* ---- module functions ------------------------------------------------- */

PyDoc_STRVAR(hash_doc,
"hash(data) -> str\n\n"
"The BLAKE3-256 hash of a bytes-like object as 64 lowercase hex digits,\n"
"identical to b3sum and to the hash ChunkStore.put returns.  The GIL is\n"
"released while hashing.");

static PyObject *mod_hash(PyObject *module, PyObject *arg)
{
	Py_buffer buf;
	udr_hash h;

	(void)module;
	if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	udr_hash_buf(&h, buf.buf, (size_t)buf.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&buf);
	return udrpy_hash_to_str(&h);
}

PyDoc_STRVAR(hash_file_doc,
"hash_file(path) -> str\n\n"
"The BLAKE3-256 hash of a file's content, streaming (bounded memory).\n"
"Raises NotFoundError when the file does not exist, IOError when it cannot\n"
"be read.");

static PyObject *mod_hash_file(PyObject *module, PyObject *arg)
{
	PyObject *path = NULL;
	udr_hash h;
	int fd, rc, err = 0;

	(void)module;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	fd = open(PyBytes_AS_STRING(path), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		rc = 0;
	} else {
		rc = udr_hash_fd(&h, fd);
		close(fd);
	}
	Py_END_ALLOW_THREADS
	if (fd < 0) {
		errno = err;
		PyErr_SetFromErrnoWithFilenameObject(
			err == ENOENT ? udrpy_NotFoundError : udrpy_IOError, arg);
		Py_DECREF(path);
		return NULL;
	}
	Py_DECREF(path);
	if (rc < 0)
		return udrpy_raise(rc);
	return udrpy_hash_to_str(&h);
}

static PyMethodDef module_methods[] = {
	{"open", (PyCFunction)(void (*)(void))udrpy_open, METH_VARARGS | METH_KEYWORDS,
	 "open(path, create=True) -> Database\n\n"
	 "Open the store root at path (<path>/chunks and <path>/catalog), creating\n"
	 "it when missing unless create is False (then NotFoundError).  The result\n"
	 "is a context manager: `with udr.open(p) as db: ...` closes it."},
	{"hash", mod_hash, METH_O, hash_doc},
	{"hash_file", mod_hash_file, METH_O, hash_file_doc},
	{NULL, NULL, 0, NULL}};

PyDoc_STRVAR(module_doc,
"udr._udr - CPython bindings of libudr, the content-addressed versioned data\n"
"store.  Import the package `udr`, which re-exports this module.");

static struct PyModuleDef udr_module = {
	PyModuleDef_HEAD_INIT, "udr._udr", module_doc, -1, module_methods,
	NULL, NULL, NULL, NULL};

static int add_exception(PyObject *m, PyObject **slot, const char *name, const char *doc,
                         PyObject *bases)
{
	char full[64];

	PyOS_snprintf(full, sizeof full, "udr.%s", name);
	*slot = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
	Py_XDECREF(bases);
	if (*slot == NULL)
		return -1;
	Py_INCREF(*slot);
	if (PyModule_AddObject(m, name, *slot) < 0) {
		Py_DECREF(*slot);
		return -1;
	}
	return 0;
}

/* PEP 249 (DB-API 2.0) classes that UDR's own errors derive from. */
PyObject *udrpy_InterfaceError; /* pyquery.c: rows fetched and no longer kept */
PyObject *udrpy_NotSupportedError; /* pydb.c: what is not built yet */
static PyObject *udrpy_Warning, *udrpy_DatabaseError, *udrpy_DataError,
	*udrpy_OperationalError, *udrpy_InternalError, *udrpy_ProgrammingError;



static int add_exceptions(PyObject *m)
{
	static const struct {
		PyObject **slot, **base;
		const char *name, *doc;
	} pep249[] = {
		{&udrpy_InterfaceError, &udrpy_Error, "InterfaceError",
		 "PEP 249: misuse of the DB-API interface (a closed cursor or\n"
		 "connection, fetch before execute)."},
		{&udrpy_DatabaseError, &udrpy_Error, "DatabaseError",
		 "PEP 249: an error of the database; every udr error below derives\n"
		 "from it."},
		{&udrpy_DataError, &udrpy_DatabaseError, "DataError",
		 "PEP 249: a problem with the processed data."},
		{&udrpy_OperationalError, &udrpy_DatabaseError, "OperationalError",
		 "PEP 249: an error of the database's operation: I/O (IOError),\n"
		 "locks (LockedError), commit conflicts (ConflictError)."},
		{&udrpy_InternalError, &udrpy_DatabaseError, "InternalError",
		 "PEP 249: the database hit an internal error."},
		{&udrpy_ProgrammingError, &udrpy_DatabaseError, "ProgrammingError",
		 "PEP 249: a SQL error, an unknown table or version, a bad argument\n"
		 "(InvalidArgumentError, NotFoundError)."},
		{&udrpy_NotSupportedError, &udrpy_DatabaseError, "NotSupportedError",
		 "PEP 249: an operation udr does not support (e.g. writing to UDR\n"
		 "tables through DB-API SQL)."},
	};
	PyObject *descr;

	if (add_exception(m, &udrpy_Warning, "Warning",
	                  "PEP 249 Warning (not raised by udr today).",
	                  Py_NewRef(PyExc_Exception)) < 0)
		return -1;
	if (add_exception(m, &udrpy_Error, "Error",
	                  "Base class of every error raised by libudr (and PEP 249's Error).\n"
	                  "The `code` attribute holds the library's negative UDR_E* code.",
	                  Py_NewRef(PyExc_Exception)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof pep249 / sizeof pep249[0]; i++)
		if (add_exception(m, pep249[i].slot, pep249[i].name, pep249[i].doc,
		                  Py_NewRef(*pep249[i].base)) < 0)
			return -1;
	if (add_exception(m, &udrpy_NotFoundError, "NotFoundError",
	                  "A chunk, table, version or store does not exist (UDR_ENOTFOUND).\n"
	                  "Also a KeyError (str() gives the plain message) and a PEP 249\n"
	                  "ProgrammingError.",
	                  PyTuple_Pack(2, udrpy_ProgrammingError, PyExc_KeyError)) < 0)
		return -1;
	descr = PyDescr_NewMethod((PyTypeObject *)udrpy_NotFoundError, &notfound_str_def);
	if (descr == NULL || PyObject_SetAttrString(udrpy_NotFoundError, "__str__", descr) < 0) {
		Py_XDECREF(descr);
		return -1;
	}
	Py_DECREF(descr);
	if (add_exception(m, &udrpy_ConflictError, "ConflictError",
	                  "A version conflict: the version number is not latest + 1; the message\n"
	                  "states the expected number (UDR_ECONFLICT).  A PEP 249\n"
	                  "OperationalError.",
	                  Py_NewRef(udrpy_OperationalError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_MergeConflictError, "MergeConflictError",
	                  "A merge found tables changed on both sides and wrote nothing; its\n"
	                  ".conflicts lists them ({table, base, ours, theirs}) and .result is\n"
	                  "what Database.merge would have returned.  A ConflictError.",
	                  Py_NewRef(udrpy_ConflictError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_IntegrityError, "IntegrityError",
	                  "Stored data or metadata is damaged, e.g. a chunk does not match its\n"
	                  "hash (UDR_ECORRUPT).  Also PEP 249's IntegrityError (a DatabaseError).",
	                  Py_NewRef(udrpy_DatabaseError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_InvalidArgumentError, "InvalidArgumentError",
	                  "An invalid argument value: bad hash, table name, version number\n"
	                  "(UDR_EINVAL), a SQL error.  Also a ValueError and a PEP 249\n"
	                  "ProgrammingError.",
	                  PyTuple_Pack(2, udrpy_ProgrammingError, PyExc_ValueError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_IOError, "IOError",
	                  "An operating-system I/O error (UDR_EIO); the message names the file\n"
	                  "and the cause.  Also an OSError and a PEP 249 OperationalError.",
	                  PyTuple_Pack(2, udrpy_OperationalError, PyExc_OSError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_LockedError, "LockedError",
	                  "A lock could not be taken without waiting (UDR_ELOCKED).  A PEP 249\n"
	                  "OperationalError.",
	                  Py_NewRef(udrpy_OperationalError)) < 0)
		return -1;
	if (add_exception(m, &udrpy_ExpiredError, "ExpiredError",
	                  "The version read expired by retention (UDR_EEXPIRED, docs/GC.md 1.5).\n"
	                  "A PEP 249 DatabaseError, deliberately not a NotFoundError or KeyError.\n"
	                  "Attributes (None when the message does not state them): table,\n"
	                  "version, expired_seq, expired_at, swept, swept_at.",
	                  Py_NewRef(udrpy_DatabaseError)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof expired_attrs / sizeof expired_attrs[0]; i++)
		if (PyObject_SetAttrString(udrpy_ExpiredError, expired_attrs[i], Py_None) < 0)
			return -1;
	return 0;
}

static int add_type(PyObject *m, PyTypeObject *t, const char *name, const char *alias)
{
	if (PyType_Ready(t) < 0)
		return -1;
	Py_INCREF(t);
	if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
		Py_DECREF(t);
		return -1;
	}
	if (alias != NULL) {
		Py_INCREF(t);
		if (PyModule_AddObject(m, alias, (PyObject *)t) < 0) {
			Py_DECREF(t);
			return -1;
		}
	}
	return 0;
}

/* Add methods defined elsewhere (pyquery.c) to a static type. */
static int add_methods(PyTypeObject *t, PyMethodDef *defs)
{
	if (PyType_Ready(t) < 0)
		return -1;
	for (PyMethodDef *def = defs; def->ml_name != NULL; def++) {
		PyObject *descr = PyDescr_NewMethod(t, def);

		if (descr == NULL || PyDict_SetItemString(t->tp_dict, def->ml_name, descr) < 0) {
			Py_XDECREF(descr);
			return -1;
		}
		Py_DECREF(descr);
	}
	PyType_Modified(t);
	return 0;
}

PyMODINIT_FUNC PyInit__udr(void);

PyMODINIT_FUNC PyInit__udr(void)
{
	PyObject *m;

	PyDateTime_IMPORT;
	if (PyDateTimeAPI == NULL)
		return NULL;
	if (epoch_utc == NULL) {
		epoch_utc = PyDateTimeAPI->DateTime_FromDateAndTime(
			1970, 1, 1, 0, 0, 0, 0, PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
		if (epoch_utc == NULL)
			return NULL;
	}
	m = PyModule_Create(&udr_module);
	if (m == NULL)
		return NULL;
	if (add_exceptions(m) < 0 ||
	    add_type(m, &udrpy_StoreType, "ChunkStore", "PyChunkStore") < 0 ||
	    add_type(m, &udrpy_CatalogType, "Catalog", "PyCatalog") < 0 ||
	    add_type(m, &udrpy_VersionType, "TableVersion", "PyTableVersion") < 0 ||
	    add_methods(&udrpy_DatabaseType, udrpy_refs_methods) < 0 ||
	    add_methods(&udrpy_DatabaseType, udrpy_query_methods) < 0 || /* after: its merge replaces */
	    add_type(m, &udrpy_DatabaseType, "Database", NULL) < 0 ||
	    add_type(m, &udrpy_TxnType, "Transaction", NULL) < 0 ||
	    add_type(m, &udrpy_SubscriptionType, "Subscription", NULL) < 0 ||
	    add_type(m, &udrpy_ResultType, "Result", NULL) < 0 ||
	    udrpy_log_init(m) < 0 ||
	    PyModule_AddStringConstant(m, "__version__", udr_libversion()) < 0 ||
	    PyModule_AddIntConstant(m, "HASH_HEXSIZE", UDR_HASH_HEXSIZE) < 0 ||
	    PyModule_AddIntConstant(m, "TABLE_NAME_MAX", UDR_TABLE_NAME_MAX) < 0 ||
#ifdef UDRPY_HAVE_QUERY
	    PyModule_AddObjectRef(m, "HAVE_QUERY", Py_True) < 0) {
#else
	    PyModule_AddObjectRef(m, "HAVE_QUERY", Py_False) < 0) {
#endif
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
