/*
 * udrpy.h - shared declarations of the udr Python extension (udr._udr).
 *
 * The extension is split by public object: udrmodule.c (module, exceptions,
 * conversions), pystore.c (ChunkStore), pycatalog.c (Catalog), pyversion.c
 * (TableVersion), pydb.c (Database).  It uses only the public libudr API.
 */
#ifndef UDRPY_H
#define UDRPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <udr/udr.h>

/*
 * A pin guards a libudr handle against being closed while a call that runs
 * without the GIL still uses it.  All fields are touched with the GIL held.
 * close() only marks the pin; the handle is really closed when the last
 * user leaves.
 */
typedef struct udrpy_pin {
	void *handle;                  /* NULL once really closed */
	Py_ssize_t busy;               /* calls (and dependent handles) in flight */
	int closed;                    /* close requested */
	void (*close)(struct udrpy_pin *pin); /* really close handle */
	const char *what;              /* "chunk store", ... for messages */
} udrpy_pin;

/* 0, or -1 with udr.Error set when the pin was closed. */
int udrpy_pin_acquire(udrpy_pin *pin);
void udrpy_pin_release(udrpy_pin *pin);
/* Request close: immediate when idle, else deferred to the last release. */
void udrpy_pin_close(udrpy_pin *pin);

/* Exceptions (owned by the module, set up in PyInit__udr). */
extern PyObject *udrpy_Error;
extern PyObject *udrpy_NotFoundError;
extern PyObject *udrpy_ConflictError;
extern PyObject *udrpy_MergeConflictError; /* pyrefs.c: a ConflictError with .conflicts */
extern PyObject *udrpy_IntegrityError;
extern PyObject *udrpy_InvalidArgumentError;
extern PyObject *udrpy_IOError;
extern PyObject *udrpy_LockedError;
extern PyObject *udrpy_ExpiredError; /* UDR_EEXPIRED; a DatabaseError, not a NotFoundError */
extern PyObject *udrpy_InterfaceError;
extern PyObject *udrpy_NotSupportedError;

/* Raise the Python exception for libudr return code rc, with the message of
 * udr_error_last() (call on the thread that made the failing call).
 * Returns NULL so callers can `return udrpy_raise(rc);`. */
PyObject *udrpy_raise(int rc);
/* A list of str from names (UTF-8, undecodable bytes backslash-escaped);
 * frees names (udr_strarray_free) either way.  NULL with an exception. */
PyObject *udrpy_strlist_take(char **names, size_t count);
/* Raise exc (a udr exception class) with a message and error code. */
PyObject *udrpy_raise_msg(PyObject *exc, int code, const char *fmt, ...);

/* Conversions. */
/* obj must be a str of 64 hex digits: 0, or -1 with TypeError /
 * InvalidArgumentError set. */
int udrpy_hash_from_obj(udr_hash *out, PyObject *obj);
PyObject *udrpy_hash_to_str(const udr_hash *h);
/* A PyArg "O&" converter for hashes (out is a udr_hash *). */
int udrpy_hash_converter(PyObject *obj, void *out);
/* A version number >= min as uint64: 0, or -1 with TypeError /
 * InvalidArgumentError set. */
int udrpy_version_from_obj(uint64_t *out, PyObject *obj, uint64_t min);
/* An int >= min as a uint64; errors name what ("limit", ...). */
int udrpy_u64_from_obj(uint64_t *out, PyObject *obj, uint64_t min, const char *what);
/* The UTF-8 text of a str (borrowed, lives as long as obj); NULL with
 * TypeError (not a str) or InvalidArgumentError (embedded NUL) set.  what
 * names the argument in messages ("table name"). */
const char *udrpy_cstr(PyObject *obj, const char *what);
/* A timezone-aware UTC datetime for ms since the Unix epoch. */
PyObject *udrpy_datetime_from_ms(int64_t ms);
/* ms since the Unix epoch (floored) of a timezone-aware datetime: 0, or -1
 * with TypeError (not a datetime) or InvalidArgumentError (naive: UDR never
 * guesses a time zone) set.  what names the argument in messages. */
int udrpy_ms_from_datetime(int64_t *out, PyObject *obj, const char *what);

/* Types. */
extern PyTypeObject udrpy_StoreType;
extern PyTypeObject udrpy_CatalogType;
extern PyTypeObject udrpy_VersionType;
extern PyTypeObject udrpy_DatabaseType;
extern PyTypeObject udrpy_TxnType;
extern PyTypeObject udrpy_SubscriptionType;
extern PyTypeObject udrpy_ResultType;
extern PyTypeObject *udrpy_EventType; /* a struct sequence (pylog.c) */

typedef struct udrpy_db udrpy_db;

typedef struct udrpy_store {
	PyObject_HEAD
	udrpy_pin pin;      /* own handle (udr_store *) when db is NULL */
	udrpy_db *db;       /* strong ref when the handle is the database's */
	int detached;       /* close() was called on a database-owned object */
	PyObject *path;     /* str */
	PyObject *weakreflist;
} udrpy_store;

typedef struct udrpy_catalog {
	PyObject_HEAD
	udrpy_pin pin;      /* own handle (udr_catalog *) when db is NULL */
	udrpy_db *db;       /* strong ref when the handle is the database's */
	int detached;
	udrpy_store *store; /* the checking store or NULL (strong ref) */
	int store_pinned;   /* a standalone catalog pins its store's handle */
	PyObject *path;     /* str */
	PyObject *weakreflist;
} udrpy_catalog;

typedef struct udrpy_version {
	PyObject_HEAD
	udr_version *v;     /* owned */
	int busy;           /* being committed: readers see the old struct */
} udrpy_version;

struct udrpy_db {
	PyObject_HEAD
	udrpy_pin pin;            /* udr_db * */
	void *query;              /* udr_query * (pyquery.c), opened on first use */
	void *qlock;              /* PyThread_type_lock serializing the session */
	PyObject *store;          /* cached udrpy_store sharing the handle */
	PyObject *catalog;        /* cached udrpy_catalog sharing the handle */
	PyObject *path;           /* str */
	PyObject *weakreflist;
	unsigned long *txn_owners; /* threads of its unfinished transactions (PyMem) */
	size_t ntxn;
};

/* Transactions begun through a database's catalog: counted per thread, so
 * that its own calls that commit on their own (write, SQL writes) refuse
 * to run inside one, which they would escape.  add: 0 or -1 (MemoryError). */
int udrpy_db_txn_add(udrpy_db *d, unsigned long owner);
void udrpy_db_txn_remove(udrpy_db *d, unsigned long owner);
/* 1 when the calling thread has an unfinished transaction of d. */
int udrpy_db_txn_here(const udrpy_db *d);

/* Enter/leave a call on a store/catalog/database: the returned handle stays
 * valid until the matching leave.  Enter returns NULL with an exception set
 * when the object is closed. */
udr_store *udrpy_store_enter(udrpy_store *s);
void udrpy_store_leave(udrpy_store *s);
udr_catalog *udrpy_catalog_enter(udrpy_catalog *c);
void udrpy_catalog_leave(udrpy_catalog *c);
udr_db *udrpy_db_enter(udrpy_db *d);
void udrpy_db_leave(udrpy_db *d);

/* New objects sharing a database's handles (strong ref to db). */
PyObject *udrpy_store_from_db(udrpy_db *db);
PyObject *udrpy_catalog_from_db(udrpy_db *db, PyObject *store);

/* A new TableVersion taking ownership of v (freed on failure). */
PyObject *udrpy_version_wrap(udr_version *v);
/* For a version read to be handed out: UDR_EEXPIRED when retention has
 * expired it (its chunks may be gone; udr_version_readable), *v freed and
 * NULLed then.  Call without the GIL. */
int udrpy_version_check_readable(udr_catalog *cat, udr_version **v);
/* Add the chunk hashes of an iterable of str / set metadata from a mapping
 * of str to str (pyversion.c): 0, or -1 with an exception set. */
int udrpy_version_add_chunks(udr_version *v, PyObject *hashes);
int udrpy_version_set_metadata(udr_version *v, PyObject *meta);

/* pytxn.c / pylog.c: implementations shared by Catalog and Database
 * (cat is a udrpy_catalog). */
PyObject *udrpy_txn_begin(PyObject *cat, PyObject *args, PyObject *kwds);
PyObject *udrpy_log_changes(PyObject *cat, PyObject *args, PyObject *kwds);
PyObject *udrpy_log_subscribe(PyObject *cat, PyObject *args, PyObject *kwds);
int udrpy_log_init(PyObject *module);
PyObject *udrpy_catalog_get_version_at(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *udrpy_catalog_get_version_at_seq(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *udrpy_catalog_seq_at(PyObject *self, PyObject *when);
extern const char udrpy_get_version_at_doc[];
extern const char udrpy_get_version_at_seq_doc[];
extern const char udrpy_seq_at_doc[];
#define UDRPY_LOG_CATALOG_METHODS                                              \
	{"get_version_at", (PyCFunction)(void (*)(void))udrpy_catalog_get_version_at, \
	 METH_VARARGS | METH_KEYWORDS, udrpy_get_version_at_doc},                 \
	{"get_version_at_seq",                                                 \
	 (PyCFunction)(void (*)(void))udrpy_catalog_get_version_at_seq,        \
	 METH_VARARGS | METH_KEYWORDS, udrpy_get_version_at_seq_doc},             \
	{"seq_at", (PyCFunction)udrpy_catalog_seq_at, METH_O, udrpy_seq_at_doc}

/* Docstrings of the methods Catalog and Database share. */
#define UDRPY_TRANSACTION_DOC                                                  \
	"transaction(*, isolation='snapshot', message=None, branch=None) -> Transaction\n\n" \
	"Begin a multi-table transaction, taking a snapshot of the catalog.\n"  \
	"isolation is 'snapshot' (write-write conflicts fail the commit) or\n"   \
	"'serializable' (also a table read since the snapshot changed); message\n" \
	"is the commit message.  `with db.transaction() as tx:` commits on a\n" \
	"normal exit and aborts on an exception."
#define UDRPY_CHANGES_DOC                                                      \
	"changes(since=None, *, since_time=None, tables=None, branch=None,\n"   \
	"        limit=None, newest_first=False) -> list[Event]\n\n"            \
	"The commits of the changelog as Event objects: those with seq > since,\n" \
	"made at or after since_time (a timezone-aware datetime), touching one of\n" \
	"tables (a name or an iterable of names), on branch; at most limit of\n" \
	"them, ascending by seq unless newest_first.  The cost is proportional\n" \
	"to the commits returned."
#define UDRPY_SUBSCRIBE_DOC                                                    \
	"subscribe(since=None, *, since_time=None, tables=None, branch=None,\n" \
	"          callback=None) -> Subscription\n\n"                          \
	"Follow the changelog: the commits with seq > since (None: from now; or\n" \
	"made at or after since_time) touching tables, on branch, and every\n"  \
	"later one as it is committed by any thread or process.  Iterate the\n" \
	"Subscription (blocking, the GIL released) or pass callback=f to have a\n" \
	"daemon thread call f(event) in order.  Resume exactly once with\n"      \
	"since=sub.cursor."

/* pyquery.c: Database methods (sql, read, write, export, diff_rows) and
 * the session's end, called when the database handle is really closed. */
extern PyMethodDef udrpy_query_methods[];
/* Branches, tags, merges (pyrefs.c): methods of Database. */
extern PyMethodDef udrpy_refs_methods[];
/* pyrefs.c, shared with pyquery.c's row-level merges: the dict of a merge,
 * cherry-pick or revert, or with conflicts udr.MergeConflictError carrying
 * them (rows: table -> its recorded conflicting rows, or NULL; msg: the
 * error message, NULL: the last error's); the
 * tables={'t': 'ours'} option (PyMem_Free *names and *strat); a strategy
 * name; an optional string argument. */
struct udr_merge_result;
struct udr_merge_options;
PyObject *udrpy_merge_finish(const struct udr_merge_result *m, int rc, int dry_run, PyObject *rows,
                             const char *msg);
int udrpy_merge_tables(struct udr_merge_options *mo, const char ***names, int **strat, PyObject *tobj);
int udrpy_strategy_of(int *out, PyObject *o, const char *what);
int udrpy_opt_str(const char **out, PyObject *o, const char *what);
void udrpy_query_close(udrpy_db *d);
int udrpy_query_setup(udrpy_db *d);
void udrpy_query_teardown(udrpy_db *d);

/* Module-level functions implemented in pydb.c. */
PyObject *udrpy_open(PyObject *module, PyObject *args, PyObject *kwds);

/* Shared docstring pieces. */
#define UDRPY_CTX_DOCS                                                         \
	{"__enter__", (PyCFunction)udrpy_enter_self, METH_NOARGS,              \
	 "Return self (context-manager support)."},                            \
	{"__exit__", (PyCFunction)udrpy_exit_close, METH_VARARGS,             \
	 "Close the object; exceptions propagate."}

PyObject *udrpy_enter_self(PyObject *self, PyObject *unused);
/* __exit__: calls self.close(). */
PyObject *udrpy_exit_close(PyObject *self, PyObject *args);

#endif
