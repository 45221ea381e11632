/*
 * query_internal.h - internals of the query module (libudr_query): the SQL
 * reference scanner (sqlref.c, no DuckDB), the session (query.c), results
 * (result.c) and import/export/diff (import.c).
 */
#ifndef UDR_QUERY_INTERNAL_H
#define UDR_QUERY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <udr/query.h>
#include <udr/gc.h>
#include "util/util.h"

/* ---- table references (sqlref.c) ------------------------------------------ */

enum udr__ref_kind {
	UDR__REF_LATEST,  /* bare name, NAME@latest, NAME@branch:main */
	UDR__REF_VERSION, /* NAME@3 */
	UDR__REF_TIME,    /* NAME@2026-11-01T12:00:00Z */
	UDR__REF_COMMIT,  /* NAME@commit:12 */
	UDR__REF_BRANCH,  /* NAME@branch:dev, and NAME@dev (bare: a branch, else a tag) */
	UDR__REF_TAG      /* NAME@tag:v1 */
};

#define UDR__REF_TEXT_MAX 272 /* "branch:" + a 255-byte name */

typedef struct udr__ref {
	enum udr__ref_kind kind;
	uint64_t num;                       /* VERSION, COMMIT */
	int64_t time_ms;                    /* TIME */
	char text[UDR__REF_TEXT_MAX + 1];   /* the ref as written (for messages), branch/tag name */
	bool bare;                          /* BRANCH written without "branch:" (a branch, else a tag) */
} udr__ref;

/* Parse the text after '@' (exactly len bytes).  0 or UDR_EINVAL quoting it. */
int udr__ref_parse(udr__ref *out, const char *text, size_t len);

/* Built-in views the scanner recognizes. */
#define UDR__SPECIAL_NONE   0
#define UDR__SPECIAL_LOG    1 /* udr_log */
#define UDR__SPECIAL_TABLES 2 /* udr_tables */
#define UDR__SPECIAL_CONFLICTS 3 /* udr_conflicts (conflicts.c) */

/* One table reference found in SQL text. */
typedef struct udr__sqlref {
	size_t start, end;   /* byte span in the SQL text */
	char table[UDR_TABLE_NAME_MAX + 1];
	bool has_ref;        /* NAME@REF (rewritten); else a bare name (left as is) */
	int special;         /* UDR__SPECIAL_* (bare udr_log / udr_tables) */
	udr__ref ref;
} udr__sqlref;

/* Returns 1 when name is a table with a committed version, 0 when not,
 * negative on error. */
typedef int (*udr__table_exists_fn)(const char *name, void *payload);

/*
 * Scan sql (a DuckDB statement or script) for table references, skipping
 * string literals ('...', E'...', $tag$...$tag$), comments (--, nested
 * block comments) and parameters.  Unquoted NAME@REF must name an existing
 * table (else UDR_ENOTFOUND naming it) and a valid ref (else UDR_EINVAL).
 * Quoted "NAME@REF" counts when NAME is an existing table.  Bare names are
 * not reported (the replacement scan resolves the ones DuckDB binds);
 * udr_log and udr_tables are reported as specials.  A call of
 * enable_logging() (which writes files) is UDR_EINVAL.
 * @param[out] out array freed with free()
 */
int udr__sql_scan(udr__sqlref **out, size_t *count, const char *sql, udr__table_exists_fn exists,
                  void *payload);

/* Append name as a double-quoted SQL identifier / single-quoted literal. */
int udr__sql_ident(udr__buf *b, const char *name);
/* "alias.n1, alias.n2", quoted (no alias: NULL) */
int udr__sql_idents(udr__buf *b, const char *alias, const char *const *names, size_t n);
int udr__sql_literal(udr__buf *b, const char *text);

/* ---- sessions (query.c) ---------------------------------------------------- */

#include "query/duck.h"

/* The parts of one table version bound in SQL (verified or materialized). */
typedef struct udr__view {
	char *name;        /* "users@3" */
	char *table;
	uint64_t version;
	udr_hash *parts;
	char **paths;      /* where DuckDB reads each part */
	bool *cached;      /* path is in the cache (may be trimmed: re-check) */
	unsigned char *fmt; /* UDR__PART_*: how each part is read (from its bytes) */
	size_t nparts;     /* data parts (a version's chunks may end with deletion vectors) */
	uint8_t **dv;      /* per part: bitmap of deleted rows, NULL when none (NULL: no DVs) */
	uint64_t *dvrows;  /* per part with a DV: its rows */
} udr__view;

/* How a part is read: from udr.format, else from its first bytes (query.c). */
#define UDR__PART_PARQUET 1
#define UDR__PART_CSV     2
#define UDR__PART_JSON    3
#define UDR__PART_EMPTY   4 /* no bytes: no rows, skipped */

/* The range of an integer column's values in one part (its Parquet
 * statistics), cached by part hash for SQL writes that select a key (write.c). */
typedef struct udr__kstat {
	udr_hash part;
	char *col;
	int64_t min, max;
	bool known;        /* else the part may hold any value */
} udr__kstat;

struct udr_query {
	udr_db *db;
	udr_store *store;
	udr_catalog *cat;
	duckdb_database ddb;  /* NULL until the first statement (udr__q_duck) */
	duckdb_connection con;
	bool starting;        /* udr__q_duck is starting them */
	int threads;          /* DuckDB settings from udr_query_options */
	char *memory_limit;
	char *cache_dir;   /* materialized parts: <cache_dir>/<hash>.parquet */
	char *tmp_dir;     /* <cache_dir>/tmp: import parts, DuckDB spill files */
	bool verify;
	udr__view *views;
	size_t nviews, capviews;
	bool log_built;
	uint64_t log_seq;  /* udr_log holds commits 1..log_seq */
	bool tables_built;
	unsigned long counter;
	int cache_lock;    /* fd of <cache_dir> under a shared flock while a statement
	                      may read cached parts (-1: not held); see udr_query_cache_clear */
	uint64_t snap_head; /* the catalog head the current statement reads */
	struct udr__wtx *wtx; /* SQL writes: the open transaction (write.c), NULL when none */
	char *message;      /* commit message of SQL writes (udr_query_set_message) */
	char *branch;       /* the session's branch (udr_query_set_branch); NULL: main */
	bool dropped_hit;   /* the last resolve found a drop (not found) */
	bool user_objects;  /* a user's CREATE ran (views, macros, temp tables may exist) */
	bool read_only;     /* udr_query_set_read_only: writes to UDR tables refused */
	udr_optimize_options compact; /* compaction after SQL writes (udr_query_set_compaction) */
	bool compact_custom;          /* compact is set (else the defaults) */
	bool compact_off;             /* no compaction after SQL writes */
	int scan_rc;        /* an error of the replacement scan, for the statement */
	struct udr_stream *stream; /* the open stream still reading from DuckDB, if any */
	/* the statement's version pins (GC.md 2.3): each version it resolved,
	 * pinned in the catalog's lease until udr__q_cache_release */
	struct udr__qpin {
		char *table;
		uint64_t version;
		uint64_t pin;
	} *pins;
	size_t npins, cap_pins;
	char scan_msg[1024];
	udr__kstat *kstats; /* write.c: key ranges of parts, by part hash and column */
	size_t nkstats, capkstats;
};

/* Kinds of statements udr__q_run accepts. */
#define UDR__RUN_ANY    0 /* our own SQL */
#define UDR__RUN_USER   1 /* a user's statement: reads, and the session's temp tables */
#define UDR__RUN_SELECT 2 /* a user's query whose rows are written (import, -o) */
#define UDR__RUN_COPY   3 /* our COPY around a user's query */

/* Take / drop the session's shared lock on <cache_dir> (query.c): held from
 * the first cached part a statement needs to the statement's end. */
int udr__q_cache_hold(udr_query *q);
/* A missing or damaged part or deletion vector of table@version (rc
 * UDR_ECORRUPT) that a gc sweep covers after it expired under an unpinned
 * reader: UDR_EEXPIRED; else rc. */
int udr__q_data_error(udr_query *q, const char *table, uint64_t version, int rc);
void udr__q_cache_release(udr_query *q);
/* <cache_dir> of a session (NULL: <root>/cache/query), malloc'd. */
char *udr__q_cache_dir(udr_db *db, const char *cache_dir);

/* Run SQL (one or more statements, no parameters), errors mapped. */
int udr__q_exec(udr_query *q, const char *sql);
/* Start the session's DuckDB unless started: the library loaded, the
 * database opened with the session's settings, UDR's scans registered.
 * Every use of q->ddb / q->con comes after it.  Not started (no library,
 * a bad setting): the error, and the next call tries again. */
int udr__q_duck(udr_query *q);
/* Run exactly one statement (UDR__RUN_* kind) with parameters; out may be NULL. */
int udr__q_run(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams,
               int kind);
/* path made absolute, glob metacharacters escaped, for DuckDB's readers (malloc'd) */
char *udr__q_read_path(const char *path);
/* ... appended as a SQL string literal */
int udr__sql_read_path(udr__buf *b, const char *path);
/* Run before || 'path' (a read path literal) || after, our own SQL. */
int udr__q_run_path(udr_result **out, udr_query *q, const char *before, const char *path, const char *after);
/* Prepare sql (exactly one statement of the kind) without running it. */
int udr__q_check(udr_query *q, const char *sql, int kind);
/* UDR_EINVAL when path (a file to be written) would land inside the store root */
int udr__q_check_output(udr_query *q, const char *path);
/* Map a DuckDB error message to a UDR error code (and set it). */
int udr__q_error(udr_query *q, const char *msg);
/* Rewrite table references of sql, creating the views they need. */
int udr__q_rewrite(char **out, udr_query *q, const char *sql);
/* Resolve "NAME", "NAME@REF" or (NAME, REF) to a committed version. */
int udr__q_resolve(udr_version **out, udr_query *q, const char *table, const char *ref);
/* Make sure the parts of v are ready to read; *name ("table@N", which
 * SQL can name as "table@N") borrowed from q. */
int udr__q_view(const char **name, udr_query *q, const udr_version *v);
/* 0 when branch (a name) exists now, else its error (UDR_ENOTFOUND). */
int udr__q_check_branch(udr_query *q, const char *branch);

/* A fresh path under tmp_dir (not created), malloc'd. */
char *udr__q_tmp_path(udr_query *q, const char *what);
/* DESCRIBE a relation: column names and DuckDB type names (strarrays). */
int udr__q_describe(char ***names, char ***types, size_t *n, udr_query *q, const char *relation_sql);
/* The columns of sql's result (names, DuckDB type names as DESCRIBE
 * gives them), from binding it with its parameters (result.c). */
int udr__q_columns(char ***names, char ***types, size_t *n, udr_query *q, const char *sql, const udr_value *params,
                   size_t nparams, int kind);

/* Skip blanks and comments (--, nested block comments) from s (query.c). */
const char *udr__q_skip_blank(const char *s);
/* udr.schema's JSON text of columns (import.c). */
int udr__q_schema_json(char **out, char *const *names, char *const *types, size_t n);

/* ---- typed parts and deletion vectors (dv.c) ----------------------------- */

/* One data part of a version: its rows (UINT64_MAX: unknown, a version
 * without udr.parts) and its deletion vector. */
typedef struct udr__part {
	udr_hash hash;
	uint64_t rows;
	uint64_t deleted;
	bool has_dv;
	udr_hash dv;
} udr__part;

typedef struct udr__parts {
	udr__part *p;
	size_t n;
	bool typed;  /* from udr.parts (else every chunk is a part, rows unknown) */
} udr__parts;

/* The parts of v, from udr.parts (checked against the chunks) or the chunks. */
int udr__parts_of(udr__parts *out, const udr_version *v);
void udr__parts_free(udr__parts *ps);
/* Give v (no chunks yet) the parts of ps: chunks (parts, then the distinct
 * deletion vectors), udr.parts and udr.format (write.c). */
int udr__parts_to_version(udr_version *v, const udr__parts *ps);
/* Append the udr.parts text of ps (docs/FORMAT.md, byte-exact). */
int udr__parts_meta(udr__buf *b, const udr__parts *ps);
/* Set v's udr.changes: the rows inserted, updated and deleted against its
 * parent version (docs/FORMAT.md). */
int udr__version_set_changes(udr_version *v, uint64_t inserted, uint64_t updated, uint64_t deleted);
/* v's udr.changes as inserted, updated, deleted: 1; 0 when absent or not
 * well-formed (nothing known). */
int udr__version_changes(uint64_t out[3], const udr_version *v);
/* v is a drop (udr.dropped = "true"): the table is gone from then on. */
bool udr__version_dropped(const udr_version *v);
/* How many parts of v have a deletion vector. */
int udr__version_dv_count(uint64_t *out, const udr_version *v);
/* The stored bytes of v's chunks that its parent version does not have. */
int udr__version_added_bytes(uint64_t *out, udr_catalog *cat, udr_store *store, const udr_version *v);
/* Encode the deletion vector of a part of rows rows (bits: 1 = deleted). */
int udr__dv_encode(uint8_t **out, size_t *len, uint64_t rows, const uint8_t *bits, uint64_t *deleted);
/* Load and check part p's deletion vector as a bitmap (malloc'd). */
int udr__dv_load(uint8_t **bits, udr_store *store, const udr__part *p, const udr_version *v);
/* Register __udr_keep (merge-on-read filter) on the session. */
int udr__dv_register(udr_query *q);
/* Load the deletion vectors of v into vw (and set vw->nparts to v's data parts). */
int udr__dv_view_load(udr_query *q, udr__view *vw, const udr_version *v);
/* SELECT over vw's parts with its deletion vectors applied; with positions,
 * the part index and row in the part come first as __udr_part, __udr_row. */
int udr__dv_scan_sql(udr__buf *b, udr_query *q, const udr__view *vw, bool positions);
/* The same over the parts idx[0..nidx) of vw only (idx NULL: every part);
 * __udr_part (and the deletion vectors) still number the version's parts. */
int udr__dv_scan_sql_parts(udr__buf *b, udr_query *q, const udr__view *vw, bool positions, const size_t *idx,
                           size_t nidx);

/* ---- SQL writes (write.c) ---------------------------------------------------- */

/* Run sql (rewritten) when it is a write to a UDR table or a transaction
 * statement: 0 or an error; 1 when it is neither (run it as a query). */
int udr__w_sql(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams);
/* A script "BEGIN; ...; COMMIT" run statement by statement: 0 or an
 * error (nothing committed then); 1 when sql is not such a script. */
int udr__w_script(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams);
/* Import select_sql as a full new copy of table matched on keys: store
 * only the rows that differ, committed on branch (NULL: main).  0 or an error; 1 when table does not exist. */
int udr__w_import_keyed(uint64_t *version, udr_query *q, const char *table, const char *select_sql,
                        const char *const *keys, size_t nkeys, const char *message, const char *branch);
/* The branch the session reads bare names on and writes to ("main"). */
const char *udr__q_branch(const udr_query *q);
/* A new version of base's table made from base (any version, any branch)
 * by stmts run on its shadow temp.main."TABLE" (holding, when cond is not
 * NULL, only base's rows where cond holds, the table aliased x; or, when
 * rows_sql is not NULL and base is Parquet parts, the rows rows_sql lists
 * as (__udr_part, __udr_row, the columns): base is not scanned), stored as
 * an SQL write is: deletion vectors and new parts.  *out NULL when nothing
 * changed.  No SQL transaction may be open (rowmerge.c). */
int udr__w_stage_edit(udr_version **out, udr_query *q, const udr_version *base, const char *cond,
                      const char *rows_sql, const char *const *stmts, size_t nstmts);
/* "a.name IS NOT DISTINCT FROM bb.name", compared as text for types whose
 * equality hides changes (0.0 = -0.0): how SQL writes compare values. */
int udr__w_same_col(udr__buf *b, const char *a, const char *bb, const char *name, const char *type);
/* ---- merge conflict records (conflicts.c, rowmerge.c) ---------------------- */
/* One table of a merge record: its conflict, and how it was resolved. */
typedef struct udr__mtable {
	char *table;
	uint64_t base, ours, theirs;
	int rowlevel;
	uint64_t rows_conflict;
	char *note;
	udr__parts conflicts;  /* Parquet parts of its conflicting rows (none: table level) */
	int side;              /* resolved to a side for the table: UDR_MERGE_OURS/THEIRS; 0 */
	char **rkeys;          /* rows resolved: key_text ... */
	int *rsides;           /* ... and side */
	size_t nr;
	udr__parts version;    /* a resolved version's parts */
	char *vschema;         /* its udr.schema; NULL: none given */
	uint64_t vrows;
} udr__mtable;
/* catalog/merges/<target>.json (docs/FORMAT.md). */
typedef struct udr__mrec {
	char *target, *source, *message;
	uint64_t ours, theirs, base;
	int strategy;
	char **key_tables, **keys;
	size_t nkeys;
	char **strict_tables;
	int *strictness;
	size_t nstrict;
	char **side_tables;    /* --table T=ours|theirs given to the merge */
	int *sides;
	size_t nsides;
	udr__mtable *t;
	size_t n;
} udr__mrec;
/* UDR_ENOTFOUND when no merge into target has a record. */
int udr__mrec_load(udr__mrec *out, udr_query *q, const char *target);
int udr__mrec_save(udr_query *q, const udr__mrec *r);
int udr__mrec_remove(udr_query *q, const char *target);
/* 0 when r's target branch still has the head the merge was planned on;
 * else UDR_ECONFLICT saying it moved (or was deleted) and `what` (say,
 * "nothing resolved"). */
int udr__mrec_current(udr_query *q, const udr__mrec *r, const char *what);
/* catalog/merges/<target>.lock, taken (flock, exclusive, waiting) around
 * every read-modify-write of the target's record (--continue, resolve,
 * --abort: need_record, UDR_ENOTFOUND as udr__mrec_load when there is
 * neither record nor lock) and around a new merge's write or removal of
 * it (created when missing).  *fd: release with udr__mrec_unlock (-1:
 * none). */
int udr__mrec_lock(int *fd, udr_query *q, const char *target, bool need_record);
void udr__mrec_unlock(int fd);
void udr__mrec_free(udr__mrec *r);
udr__mtable *udr__mrec_table(udr__mrec *r, const char *table);
/* (Re)fill temp table udr_conflicts from every record. */
int udr__conflicts_ensure(udr_query *q);
/* The snapshot of the session's open write transaction (0: none). */
uint64_t udr__w_snapshot(udr_query *q);
/* table was dropped by the open transaction (a bare name must not bind). */
bool udr__w_dropped(udr_query *q, const char *table);
/* What an explicit transaction of the session made of table, as its
 * branch's head reads it (NAME@latest, NAME@BRANCH): UDR__W_SHADOW (its
 * rows are temp table "table"), UDR__W_DROPPED, or 0 (not written: the
 * snapshot's version). */
enum { UDR__W_SHADOW = 1, UDR__W_DROPPED = 2 };
/* A statement (sql, not BEGIN/COMMIT/ROLLBACK) of the session's open
 * transaction failed, wherever (its references, DuckDB, a write): the
 * transaction is failed (later statements refused, COMMIT rolls back). */
void udr__w_statement_failed(udr_query *q, const char *sql);
int udr__w_working(udr_query *q, const char *table);
/* Free the session's write state (rolling back an open transaction). */
void udr__w_close(udr_query *q);
/* The view bound for v (parts ready to read), borrowed from q. */
int udr__q_view_get(udr__view **out, udr_query *q, const udr_version *v);
/* Import helpers (import.c) shared with SQL writes: a locked temp
 * directory for parts, COPY of a query into parts, storing them whole.
 * names/types (ncols): the query's columns when the caller knows them
 * (else NULL: they are described), to write them as Parquet holds them. */
int udr__q_write_parts(udr_hash **hashes, uint64_t **rows, size_t *n, udr_query *q, const char *select_sql,
                       char *const *names, char *const *types, size_t ncols);

/* ---- results (result.c) ---------------------------------------------------- */

/* Materialize a DuckDB result (consumed and destroyed by the call). */
int udr__result_from_duckdb(udr_result **out, void *duckdb_result_ptr);
/* A result with res's columns and no rows, and the columns' logical types
 * (freed with udr__result_types_free(types, ncols)). */
int udr__result_columns(udr_result **out, duckdb_logical_type **types, void *duckdb_result_ptr);
void udr__result_types_free(duckdb_logical_type *types, size_t n);
/* A result with the columns of r (NULL: none) and no rows. */
int udr__result_columns_of(udr_result **out, const udr_result *r);
/* Append a chunk's rows; drop every row (keeping columns and memory). */
int udr__result_append(udr_result *r, duckdb_data_chunk chunk, duckdb_logical_type *types);
void udr__result_clear(udr_result *r);

/* ---- streams (stream.c) ---------------------------------------------------- */

/* Prepare one statement of the kind with its parameters bound (query.c);
 * on 0, *st is destroyed by the caller. */
int udr__q_prepare(duckdb_prepared_statement *st, udr_query *q, const char *sql, const udr_value *params,
                   size_t nparams, int kind);
/* Before another statement runs on q: read the rest of q's open stream
 * into memory (the stream keeps any error for its reader). */
void udr__q_settle(udr_query *q);

/* UDR_EINVAL when q is NULL or a read-only session (call: the API call
 * that would commit, named in the message); 0 otherwise. */
int udr__q_refuse_read_only(const udr_query *q, const char *call);

#endif
