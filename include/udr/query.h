/*
 * udr/query.h - SQL over table versions through DuckDB: import files or query
 * results as Parquet parts, query any version (time travel, several versions
 * in one query), the changelog as a table, row diffs, export.
 *
 * This module lives in its own library, libudr_query, which loads DuckDB's
 * libduckdb.so when a session runs its first statement (dlopen; the library
 * is $UDR_DUCKDB_LIBRARY when set, else found beside the installed library);
 * the core libudr does not depend on it.  The syntax of table references
 * ("users@3", "users@2026-11-01T12:00:00Z", ...) and the caching of parts
 * are described in docs/QUERY.md.
 *
 * A udr_query handle owns one in-memory DuckDB database over an open udr_db,
 * started by its first statement: a session that runs none (a merge with no
 * row-level merge) never loads DuckDB.  When DuckDB cannot be loaded, that
 * statement fails with UDR_ERROR ("SQL needs DuckDB, which cannot be loaded
 * ..."); a failed load is not retried within the process.
 * Use it from one thread at a time (open one handle per thread); results are
 * independent of the handle once returned.
 */
#ifndef UDR_QUERY_H
#define UDR_QUERY_H

#include <string.h>

#include "common.h"
#include "db.h"
#include "refs.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A query session over one store root (opaque; one thread at a time). */
typedef struct udr_query udr_query;

/** A materialized query result (opaque, immutable, thread-safe to read). */
typedef struct udr_result udr_result;

/** Value kinds, for parameters and result columns. */
#define UDR_TYPE_NULL   0 /**< SQL NULL (parameters only) */
#define UDR_TYPE_BOOL   1 /**< BOOLEAN: i64 is 0 or 1 */
#define UDR_TYPE_INT64  2 /**< TINYINT..BIGINT, UTINYINT..UINTEGER: i64 */
#define UDR_TYPE_DOUBLE 3 /**< FLOAT, DOUBLE: f64 */
#define UDR_TYPE_TEXT   4 /**< VARCHAR: str/len, UTF-8 */
#define UDR_TYPE_BLOB   5 /**< BLOB: str/len, raw bytes */
#define UDR_TYPE_OTHER  6 /**< any other DuckDB type (DECIMAL, DATE, TIMESTAMP,
                               HUGEINT, UBIGINT, LIST, STRUCT, ...): str/len
                               hold DuckDB's text form (CAST(x AS VARCHAR)).
                               As a parameter: the text, cast by DuckDB to
                               the type the statement expects there (a
                               VARCHAR where it expects none), unless i64
                               names its type (UDR_OTHER_*). */

/** What an UDR_TYPE_OTHER parameter's text is (its i64), so that it is bound
 * as a value of that type (`SELECT ? < ?` of two DECIMALs compares numbers,
 * `CREATE TABLE t AS SELECT ?` makes a DECIMAL column). */
#define UDR_OTHER_TEXT        0 /**< text, cast by DuckDB as above */
#define UDR_OTHER_DECIMAL     1 /**< "[-]DIGITS[.DIGITS]", at most 38 digits: DECIMAL(digits, fraction digits) */
#define UDR_OTHER_DATE        2 /**< days since 1970-01-01, a decimal integer: DATE */
#define UDR_OTHER_TIMESTAMP   3 /**< microseconds since 1970-01-01 00:00: TIMESTAMP */
#define UDR_OTHER_TIMESTAMPTZ 4 /**< microseconds since 1970-01-01 00:00 UTC: TIMESTAMP WITH TIME ZONE */
#define UDR_OTHER_TIME        5 /**< microseconds since midnight: TIME */
#define UDR_OTHER_HUGEINT     6 /**< "[-]DIGITS" within -2^127 .. 2^127-1: HUGEINT */

/**
 * One value: a bound parameter, or a cell of a result.  For results, str
 * is borrowed from the result (NUL-terminated, len bytes without the NUL)
 * and lives until udr_result_free.  For parameters, str (TEXT, BLOB, OTHER)
 * is read during the call only.
 */
typedef struct udr_value {
	int type;          /**< UDR_TYPE_* ; UDR_TYPE_NULL for a NULL cell */
	int64_t i64;       /**< BOOL, INT64 */
	double f64;        /**< DOUBLE */
	const char *str;   /**< TEXT, BLOB, OTHER */
	size_t len;        /**< length of str in bytes */
} udr_value;

/** Parameter constructors. */
static inline udr_value udr_value_null(void)
{
	udr_value v = {UDR_TYPE_NULL, 0, 0.0, NULL, 0};
	return v;
}
static inline udr_value udr_value_bool(int b)
{
	udr_value v = {UDR_TYPE_BOOL, b ? 1 : 0, 0.0, NULL, 0};
	return v;
}
static inline udr_value udr_value_int64(int64_t i)
{
	udr_value v = {UDR_TYPE_INT64, i, 0.0, NULL, 0};
	return v;
}
static inline udr_value udr_value_double(double d)
{
	udr_value v = {UDR_TYPE_DOUBLE, 0, d, NULL, 0};
	return v;
}
static inline udr_value udr_value_text(const char *s)
{
	udr_value v = {UDR_TYPE_TEXT, 0, 0.0, s, s ? strlen(s) : 0};
	return v;
}

/* ---- sessions ------------------------------------------------------------ */

#define UDR_QUERY_OPTIONS_VERSION 1
/** Options of udr_query_open. */
typedef struct udr_query_options {
	unsigned int version;     /**< UDR_QUERY_OPTIONS_VERSION */
	const char *cache_dir;    /**< where parts that cannot be read in place are
	                               materialized, and import temp files;
	                               NULL: <root>/cache/query (see docs/QUERY.md) */
	int threads;              /**< DuckDB worker threads; 0: DuckDB's default (cores) */
	const char *memory_limit; /**< DuckDB memory limit, e.g. "4GB"; NULL: default */
	int verify;               /**< 1 (default through _INIT): rehash each part once
	                               per process before first use; 0: trust the store */
} udr_query_options;
#define UDR_QUERY_OPTIONS_INIT {UDR_QUERY_OPTIONS_VERSION, NULL, 0, NULL, 1}

/**
 * Open a query session over db.
 * @param[out] out the session, closed with udr_query_close
 * @param db the store root; borrowed, it must outlive the session
 * @param opts NULL for defaults
 * @return 0; UDR_EINVAL (NULL db, unknown options version); UDR_ENOMEM.
 *         DuckDB starts with the first statement, so a bad DuckDB setting
 *         in opts (UDR_EINVAL quoting DuckDB's message) or a DuckDB that
 *         cannot be loaded or started (UDR_ERROR) is that call's error.
 */
UDR_EXTERN int udr_query_open(udr_query **out, udr_db *db, const udr_query_options *opts);

/** Close a session (accepts NULL).  Results already returned stay valid. */
UDR_EXTERN void udr_query_close(udr_query *q);

/* ---- SQL ----------------------------------------------------------------- */

/**
 * Run one SQL statement.  Table references are resolved against the catalog
 * first (docs/QUERY.md): a bare name is the table's latest version, as of the
 * catalog head when the call starts (one consistent snapshot for all
 * tables); NAME@REF selects a version ("users@3", "users@latest",
 * "users@2026-11-01T12:00:00Z", "users@commit:12"); the views udr_log and
 * udr_tables show the changelog and the tables.  Names are resolved only
 * where DuckDB binds a table (a replacement scan): columns, aliases and
 * CTEs of the same name are left alone.  Exactly one statement runs;
 * statements that could write files (COPY, EXPORT, ATTACH, SET, PRAGMA,
 * CALL, EXPLAIN ANALYZE ...) are refused with UDR_EINVAL (docs/QUERY.md,
 * "What SQL may touch").
 * @param[out] out the result, freed with udr_result_free; may be NULL to
 *             run a statement for its effect only
 * @param sql one statement, with ? (or $1, $2 ...) placeholders
 * @param params values for the placeholders, in order (NULL when nparams 0);
 *        never splice values into sql
 * @return 0; UDR_EINVAL for a SQL error (the message is DuckDB's), a
 *         malformed reference or a parameter count mismatch; UDR_ENOTFOUND
 *         naming an unknown table, version, branch, tag or time;
 *         UDR_ECORRUPT naming a damaged or missing part; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_sql(udr_result **out, udr_query *q, const char *sql,
                             const udr_value *params, size_t nparams);

/**
 * The commit message of the versions that SQL writes of this session commit
 * from now on (INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE, DROP TABLE;
 * see docs/QUERY.md, "Writing tables with SQL").
 * @param message copied; NULL for none
 * @return 0; UDR_EINVAL (NULL session); UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_set_message(udr_query *q, const char *message);

/**
 * The branch of the session: from now on a bare table name (and NAME@latest)
 * reads the branch's latest version, udr_tables lists the branch's tables,
 * and SQL writes (and udr_query_optimize, and the compaction after writes)
 * commit on it, conflicting only with commits on that branch (docs/QUERY.md,
 * "Writing tables with SQL").  A write whose target is NAME@branch:B (or
 * NAME@B) is allowed when B is the session's branch.
 * @param branch "NAME" or "branch:NAME"; NULL or "main": the main branch
 * @return 0; UDR_EINVAL (NULL session, a malformed name, or a SQL
 *         transaction of the session is open on another branch);
 *         UDR_ENOTFOUND (no such branch); UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_set_branch(udr_query *q, const char *branch);

/**
 * A read-only session (on nonzero) refuses every statement that would
 * commit: INSERT, UPDATE, DELETE, MERGE, CREATE TABLE, DROP TABLE on UDR
 * tables and BEGIN/COMMIT/ROLLBACK, and the calls that commit
 * (udr_query_import, _import_sql, _optimize, _merge, _merge_continue,
 * _merge_resolve, _merge_abort), with UDR_EINVAL ("read-only session:
 * ..."), before anything is written; the session's own temporary objects
 * stay writable.  In an open SQL transaction, reads go on at its snapshot
 * and a refused write fails the transaction, as any failed statement does.
 * @return 0; UDR_EINVAL (NULL session).
 */
UDR_EXTERN int udr_query_set_read_only(udr_query *q, int on);

/** File formats for import, export and udr_query_sql_to_file. */
#define UDR_FORMAT_AUTO    0 /**< from the file name's extension */
#define UDR_FORMAT_PARQUET 1 /**< .parquet, .pq */
#define UDR_FORMAT_CSV     2 /**< .csv, .tsv, .txt (optionally .gz/.zst) */
#define UDR_FORMAT_JSON    3 /**< .json: a JSON array on export; array or
                                  newline-delimited on import */
#define UDR_FORMAT_NDJSON  4 /**< .ndjson, .jsonl: one object per line */

/**
 * Run a query and write its result to a file through DuckDB's COPY (streams;
 * nothing is held in memory).  The file appears atomically (temp name in the
 * same directory, then rename).  sql must be exactly one query; a path whose
 * directory resolves inside the store root is refused (UDR_EINVAL).
 * @param format UDR_FORMAT_*; AUTO takes it from path's extension
 * @param[out] rows rows written (may be NULL)
 * @return as udr_query_sql; UDR_EINVAL for an unknown format; UDR_EIO.
 */
UDR_EXTERN int udr_query_sql_to_file(uint64_t *rows, udr_query *q, const char *sql,
                                     const udr_value *params, size_t nparams, const char *path,
                                     int format);

/* ---- import / export ------------------------------------------------------ */

#define UDR_IMPORT_OVERWRITE 0 /**< the new version holds only the imported rows */
#define UDR_IMPORT_APPEND    1 /**< the new version keeps the previous version's
                                    parts (no data copied) and adds new ones */

#define UDR_IMPORT_OPTIONS_VERSION 2 /* 2 added keys and types (version 1 still accepted) */
/** Options of the imports (version 1, without keys and types, is still accepted). */
typedef struct udr_import_options {
	unsigned int version;  /**< UDR_IMPORT_OPTIONS_VERSION */
	int format;            /**< UDR_FORMAT_*, AUTO from the first file's extension */
	int mode;              /**< UDR_IMPORT_OVERWRITE or UDR_IMPORT_APPEND */
	const char *message;   /**< commit message (may be NULL) */
	const char *ref;       /**< the branch to commit on (NAME or branch:NAME); NULL: main */
	const char *const *keys; /**< (version 2) with UDR_IMPORT_OVERWRITE: the files are a
	                              full new copy of the table whose rows are matched on
	                              these columns (unique in the copy; in the table, the
	                              copy's keys must not repeat, and a repeated key the
	                              copy lacks is deleted): the new version keeps
	                              the rows that did not change and stores only the others
	                              (deletion vectors, new parts); NULL: store every row */
	size_t nkeys;          /**< (version 2) number of keys */
	const char *const *types; /**< CSV and JSON files (version 2): NULL, or ntypes
	                               pairs flattened, types[2*i] a column of the data
	                               and types[2*i+1] the DuckDB type it is read as
	                               ("TIMESTAMP WITH TIME ZONE"; text values are cast
	                               as by CAST); the other columns' types are
	                               detected.  An append reads with the table's types. */
	size_t ntypes;         /**< number of pairs in types */
} udr_import_options;
#define UDR_IMPORT_OPTIONS_INIT \
	{UDR_IMPORT_OPTIONS_VERSION, UDR_FORMAT_AUTO, UDR_IMPORT_OVERWRITE, NULL, NULL, NULL, 0, NULL, 0}

/**
 * Import files (all of one format) as the next version of table.  The rows
 * are written as Parquet parts of up to 983,040 rows (8 row groups of
 * 122,880) or ~128 MB, each stored as one chunk; the version's metadata gets
 * udr.format = "parquet", udr.schema (JSON array of {"name","type"}),
 * udr.rows, and udr.source.  With UDR_IMPORT_APPEND the columns must match
 * the previous version's by name and order (CSV and JSON are read with its
 * types; Parquet types must be equal), else UDR_EINVAL naming the column;
 * an append to a table that does not exist creates it (version 1).
 * @param[out] version the committed version number (may be NULL)
 * @param files nfiles >= 1 paths
 * @param opts NULL for defaults (overwrite, format from the extension)
 * @return 0; UDR_EINVAL (bad table name, unknown format, unreadable content
 *         with DuckDB's message, schema mismatch, a column of opts->types
 *         not in the data, a type DuckDB does not know or a value that does
 *         not cast to it); UDR_ENOTFOUND (a file); UDR_ECORRUPT;
 *         UDR_EIO; UDR_ENOMEM.  Nothing is committed on error.
 */
UDR_EXTERN int udr_query_import(uint64_t *version, udr_query *q, const char *table,
                                const char *const *files, size_t nfiles,
                                const udr_import_options *opts);

/**
 * Import the result of a query (which may read UDR tables, as in
 * udr_query_sql) as the next version of table.  opts->format is ignored.
 * @return as udr_query_import and udr_query_sql.
 */
UDR_EXTERN int udr_query_import_sql(uint64_t *version, udr_query *q, const char *table,
                                    const char *sql, const udr_value *params, size_t nparams,
                                    const udr_import_options *opts);

#define UDR_OPTIMIZE_OPTIONS_VERSION 1
/** Options of udr_query_optimize and of the compaction after SQL writes. */
typedef struct udr_optimize_options {
	unsigned int version;     /**< UDR_OPTIMIZE_OPTIONS_VERSION */
	int full;                 /**< 1: rewrite every part (one sequence of full parts) */
	unsigned int deleted_pct; /**< rewrite a part whose deletion vector deletes at least
	                               this percentage of its rows (1..100; 0: never) */
	unsigned int small_parts; /**< merge the parts of fewer than 122,880 rows (one row
	                               group) once there are at least this many (0: never):
	                               udr_query_optimize merges them all, the compaction
	                               after a write geometrically (docs/QUERY.md) */
	const char *message;      /**< commit message (may be NULL) */
} udr_optimize_options;
#define UDR_OPTIMIZE_OPTIONS_INIT {UDR_OPTIMIZE_OPTIONS_VERSION, 0, 25, 8, NULL}

/**
 * Compact a table's latest version: the parts the thresholds select (see
 * udr_optimize_options) are replaced by new parts holding their rows that
 * are not deleted, appended after the parts kept (which keep their deletion
 * vectors).  Identical rows give identical parts (stored once).  Nothing is
 * committed when nothing passes a threshold (or the rewrite equals the
 * version).  The rows read are the same before and after.
 * @param[out] version the version committed, 0 when none (may be NULL)
 * @return 0; UDR_EINVAL (bad options, a table that is not Parquet parts);
 *         UDR_ENOTFOUND (table); UDR_ECONFLICT (another writer committed
 *         the table meanwhile); UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_optimize(uint64_t *version, udr_query *q, const char *table,
                                  const udr_optimize_options *opts);

/**
 * The thresholds of the compaction that runs after each SQL write of the
 * session (for every table the write changed, as udr_query_optimize with
 * opts, except that only parts of at least 122,880 rows are rewritten for
 * their deleted rows; a second commit, made only when a threshold is
 * passed).  The
 * default is UDR_OPTIMIZE_OPTIONS_INIT; NULL turns it off.
 * @return 0; UDR_EINVAL.
 */
UDR_EXTERN int udr_query_set_compaction(udr_query *q, const udr_optimize_options *opts);

/**
 * Export a table version to a file (atomically, as udr_query_sql_to_file).
 * @param ref the version: NULL or "latest", a number, a UTC time, or
 *        "commit:N" (docs/QUERY.md); table may also be given as "NAME@REF"
 *        with ref NULL
 * @param format UDR_FORMAT_*; AUTO from path's extension
 * @param[out] rows rows written (may be NULL)
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND (table, version); UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_query_export(uint64_t *rows, udr_query *q, const char *table, const char *ref,
                                const char *path, int format);

/**
 * Row differences between two versions of a table, joined on key columns:
 * one row per added, removed or changed row (unchanged rows are left out),
 * ordered by the key.  Columns: "change" ('added', 'removed' or 'changed'),
 * the key columns, then for every other column C of either version "old.C"
 * and "new.C" (NULL where the row or the column is absent).
 * @param ref1, ref2 the old and new versions (as for udr_query_export)
 * @param keys nkeys >= 1 column names, present in both versions and unique
 *        in each (else UDR_EINVAL naming the column or a duplicated key)
 * @return as udr_query_sql.
 */
UDR_EXTERN int udr_query_diff_rows(udr_result **out, udr_query *q, const char *table,
                                   const char *ref1, const char *ref2,
                                   const char *const *keys, size_t nkeys);

/**
 * Resolve a table reference to a committed version number without running
 * a query ("users", "users@3", "users@2026-11-01", or table + ref).
 * @return 0; UDR_EINVAL (malformed); UDR_ENOTFOUND naming what is missing;
 *         UDR_EEXPIRED (the version was expired by retention).  *version is
 *         set only on success.
 */
UDR_EXTERN int udr_query_resolve(uint64_t *version, udr_query *q, const char *table, const char *ref);

/**
 * Remove what killed imports left behind: the part directories
 * <cache_dir>/tmp/import-* whose import is no longer running (each live
 * import holds an flock on its directory).  Imports call it themselves;
 * `udr fsck` calls it too.  Needs no session.
 * @param[out] removed directories removed (may be NULL)
 * @param cache_dir NULL for <root>/cache/query (as udr_query_options)
 * @return 0; UDR_EINVAL; UDR_EIO (the directory cannot be listed); UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_clean_temp(uint64_t *removed, udr_db *db, const char *cache_dir);

/**
 * Check a version's row-level metadata (docs/FORMAT.md, "Typed parts and
 * deletion vectors") as SQL reads it: udr.parts, every deletion vector it
 * names (decoded against its part's rows, when store is given and holds
 * it intact: a missing or damaged one is the store's and the catalog's
 * checks' to name), and that udr.format is "parquet-dv" exactly when a
 * part has one.  A version without udr.parts and without that format
 * passes.  `udr fsck` runs it on every version file; `udr commit`, Python's
 * Catalog.commit and transactions run it on what they are given, so a
 * hand-written udr.parts that SQL would refuse as damage is refused as bad
 * input instead.  Needs no session; reads only deletion vectors.
 * @param store the store holding the version's chunks (NULL: the metadata
 *        only)
 * @return 0; UDR_ECORRUPT naming the table, version and what is wrong
 *         ("table T: ..." for a version not yet numbered); UDR_EINVAL;
 *         UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_check_version(udr_store *store, const udr_version *v);

/** What the query cache holds (udr_query_cache_stats, udr_query_cache_clear). */
typedef struct udr_query_cache_info {
	uint64_t parts;      /**< materialized parts: <cache_dir>/<hash>.parquet */
	uint64_t part_bytes; /**< their size */
	uint64_t temp_bytes; /**< under <cache_dir>/tmp: parts of imports, DuckDB spill files */
} udr_query_cache_info;

/**
 * Count what the query cache holds (derived data: every part in it can be
 * materialized again from the store).  A missing cache counts as empty.
 * Needs no session.
 * @param cache_dir NULL for <root>/cache/query (as udr_query_options)
 * @return 0; UDR_EINVAL; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_cache_stats(udr_query_cache_info *out, udr_db *db, const char *cache_dir);

/**
 * Empty the query cache (`udr cache clear`): remove every materialized part
 * and the part directories of killed imports (udr_query_clean_temp).  Safe
 * while other sessions and processes query: a statement holds a shared lock
 * (flock) on <cache_dir> while it may read cached parts, and the parts are
 * removed under the exclusive lock, so this waits for running statements,
 * and a later statement materializes again what it needs.  Running imports
 * and DuckDB spill files are left alone.
 * @param[out] removed what was removed (temp_bytes: 0) (may be NULL)
 * @return 0; UDR_EINVAL; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_cache_clear(udr_query_cache_info *removed, udr_db *db, const char *cache_dir);

/**
 * After garbage collection (docs/GC.md 5.4): remove the cached parts whose
 * content the store no longer has, then udr_query_clean_temp.  Never waits
 * on statements: when the cache's exclusive lock is busy nothing is removed
 * and *skipped is set.
 * @param[out] removed what was removed (temp_bytes: 0) (may be NULL)
 * @param[out] skipped 1 when the cache was busy (may be NULL)
 * @return 0; UDR_EINVAL; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_cache_trim(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir);

/**
 * `udr fsck --repair` (docs/GC.md 6): as udr_query_cache_trim, and also
 * remove every cached part whose bytes do not hash to its name (damaged:
 * a later statement materializes it again).  Never waits on statements
 * (busy: *skipped set, nothing removed).
 * @param[out] removed what was removed (temp_bytes: 0) (may be NULL)
 * @param[out] skipped 1 when the cache was busy (may be NULL)
 * @return 0; UDR_EINVAL; UDR_EIO (a part that cannot be read: nothing more
 *         removed); UDR_ENOMEM.
 */
UDR_EXTERN int udr_query_cache_verify(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir);

/* ---- results --------------------------------------------------------------- */

/** Free a result (accepts NULL). */
UDR_EXTERN void udr_result_free(udr_result *r);

/** Number of columns. */
UDR_EXTERN size_t udr_result_column_count(const udr_result *r);

/** Number of rows; for a statement without rows (DDL) 0. */
UDR_EXTERN size_t udr_result_row_count(const udr_result *r);

/** Column name (borrowed, lives as long as r); NULL when col is out of range. */
UDR_EXTERN const char *udr_result_column_name(const udr_result *r, size_t col);

/** Column kind, UDR_TYPE_*; -1 when col is out of range. */
UDR_EXTERN int udr_result_column_type(const udr_result *r, size_t col);

/** DuckDB's type name ("BIGINT", "DECIMAL(10,2)", "INTEGER[]", ...;
 *  borrowed); NULL when col is out of range. */
UDR_EXTERN const char *udr_result_column_type_name(const udr_result *r, size_t col);

/**
 * One cell, typed as its column (UDR_TYPE_NULL for a NULL cell).
 * @return 0; UDR_EINVAL when row or col is out of range.
 */
UDR_EXTERN int udr_result_get(udr_value *out, const udr_result *r, size_t row, size_t col);

/** 1 when the cell is NULL, 0 when not, UDR_EINVAL when out of range. */
UDR_EXTERN int udr_result_is_null(const udr_result *r, size_t row, size_t col);

/**
 * One cell as text, as DuckDB prints it (CAST(x AS VARCHAR)).
 * @param[out] out malloc'd NUL-terminated text freed with udr_free; NULL for
 *             a NULL cell
 * @param[out] len its length in bytes (may be NULL)
 * @return 0; UDR_EINVAL (out of range); UDR_ENOMEM.
 */
UDR_EXTERN int udr_result_text(char **out, size_t *len, const udr_result *r, size_t row, size_t col);

/** Output formats of udr_result_format. */
#define UDR_OUTPUT_TABLE 0 /**< aligned text table with a header and a row count */
#define UDR_OUTPUT_CSV   1 /**< RFC 4180 CSV with a header line */
#define UDR_OUTPUT_JSON  2 /**< a JSON array of objects (numbers and booleans
                                as JSON values, NaN and infinite doubles as
                                NaN, Infinity, -Infinity, everything else as
                                strings) */
#define UDR_OUTPUT_NDJSON 3 /**< one JSON object per line */

/**
 * Render a whole result as text.
 * @param[out] out malloc'd NUL-terminated text freed with udr_free
 * @param[out] len its length (may be NULL)
 * @return 0; UDR_EINVAL (unknown format); UDR_ENOMEM.
 */
UDR_EXTERN int udr_result_format(char **out, size_t *len, const udr_result *r, int format);

/**
 * Render a result to a file descriptor, streaming row by row.
 * @return 0; UDR_EINVAL; UDR_EIO naming the failed write; UDR_ENOMEM.
 */
UDR_EXTERN int udr_result_write(const udr_result *r, int fd, int format);

/* ---- streaming results ------------------------------------------------------ */

/** A result read batch by batch while the query runs (opaque). */
typedef struct udr_stream udr_stream;

/**
 * Run one SQL statement as udr_query_sql does, and read its rows batch by
 * batch instead of materializing them: memory is bounded by a batch (one
 * DuckDB chunk, 2,048 rows), and the first rows are available as soon as
 * DuckDB produces them.  Errors of binding (SQL, references, parameters,
 * damaged parts checked before the scan) are returned here; errors DuckDB
 * meets while running come from udr_stream_next.  Writes to UDR tables,
 * transaction statements and BEGIN ... COMMIT scripts run whole, as
 * udr_query_sql runs them (committed with udr_query_set_message's
 * message); the stream then returns their result from memory.
 *
 * A session runs one statement at a time: when another call uses q while
 * a stream of q is open, the stream's remaining rows are first read into
 * memory (it stays valid and returns them), as they are when q is closed.
 * The stream holds the query cache's shared lock until it ends.
 * @param[out] out the stream, freed with udr_stream_free (accepts NULL)
 * @return as udr_query_sql.
 */
UDR_EXTERN int udr_query_sql_stream(udr_stream **out, udr_query *q, const char *sql,
                                    const udr_value *params, size_t nparams);

/**
 * The columns of the stream: a result with no rows carrying the names and
 * types (udr_result_column_*), borrowed, valid until udr_stream_free.
 */
UDR_EXTERN const udr_result *udr_stream_columns(const udr_stream *s);

/**
 * The next batch of rows.
 * @param[out] out a result of one or more rows (the columns of the stream),
 *             borrowed: valid until the next udr_stream_next or
 *             udr_stream_free; NULL once every row was returned
 * @return 0; UDR_EINVAL (a SQL error while running, e.g. a failed cast),
 *         UDR_ECORRUPT (a damaged part), UDR_EIO, UDR_ENOMEM: the stream
 *         ends with that error (the next calls return it again).
 */
UDR_EXTERN int udr_stream_next(const udr_result **out, udr_stream *s);

/**
 * Render the rest of the stream to a file descriptor in a UDR_OUTPUT_*
 * format, batch by batch (bounded memory).  The aligned table is measured
 * per batch: column widths come from the header and the rows so far, so a
 * later batch with a wider value widens that column from then on.  When
 * the reader of a pipe went away (EPIPE), the output stops with UDR_EIO
 * and errno is left EPIPE, so that a caller can stop quietly (`| head`).
 * @param[out] rows rows written (may be NULL)
 * @return 0; UDR_EINVAL (format); UDR_EIO; the errors of udr_stream_next.
 */
UDR_EXTERN int udr_stream_write(uint64_t *rows, udr_stream *s, int fd, int format);

/** End a stream (accepts NULL): DuckDB stops the query. */
UDR_EXTERN void udr_stream_free(udr_stream *s);


/* ---- merges row by row (src/query/rowmerge.c) ----------------------------- */

/** Strictness of a row-level merge, per table. */
#define UDR_STRICT_ROW 0   /**< default with a key: a row changed differently on both sides conflicts */
#define UDR_STRICT_TABLE 1 /**< any change on both sides conflicts (table level) */
#define UDR_STRICT_CELL 2  /**< a row whose sides changed different columns takes both */

#define UDR_ROWMERGE_OPTIONS_VERSION 1
/** Options of udr_query_merge; initialize with UDR_ROWMERGE_OPTIONS_INIT. */
typedef struct udr_rowmerge_options {
	unsigned int version;            /**< UDR_ROWMERGE_OPTIONS_VERSION */
	udr_merge_options merge;         /**< strategies, dry_run, message (refs.h) */
	const char *const *key_tables;   /**< keys given at merge time: table names ... */
	const char *const *keys;         /**< ... and their key columns, comma-separated ("id" or "a,b") */
	size_t nkeys;
	const char *const *strict_tables; /**< strictness per table: names ... */
	const int *strictness;            /**< ... and UDR_STRICT_* */
	size_t nstrict;
} udr_rowmerge_options;
#define UDR_ROWMERGE_OPTIONS_INIT \
	{UDR_ROWMERGE_OPTIONS_VERSION, UDR_MERGE_OPTIONS_INIT, NULL, NULL, 0, NULL, NULL, 0}

/**
 * Merge as udr_merge (refs.h), and merge a table changed on both sides
 * row by row when it has a key (given in opts, else the `udr.key` its
 * version records, see docs/FORMAT.md) and its strictness is not table:
 * rows are matched on the key across the merge base, the target (ours) and
 * the source (theirs) with one FULL OUTER JOIN; a row changed on one side
 * takes that side (added, deleted or changed); a row changed the same way
 * on both sides is kept; a row changed differently on both sides is a
 * conflict, except under UDR_STRICT_CELL when the sides changed different
 * columns (each column then takes the side that changed it).  A table
 * whose schema differs between the sides, or that has no key, stays a
 * table-level conflict (with a note).  A table with no row conflict gets a
 * new version written as an SQL write is (the target's parts shared, its
 * rows gone as deletion vectors, new rows in small parts), committed with
 * the other tables in the one merge record with two parents.  A strategy
 * for a table (ours/theirs) takes precedence over a row-level merge.
 * @param[out] out the result, also on UDR_ECONFLICT (tables[i] with
 *        rowlevel, row counts and note), freed with udr_merge_result_free
 * @return 0; UDR_ECONFLICT (conflicts: nothing written; the target moved;
 *         a criss-cross history); UDR_EINVAL (bad options, a key column the
 *         table does not have, a key not unique or NULL in a version: nothing
 *         written); the errors of udr_merge.
 */
UDR_EXTERN int udr_query_merge(udr_merge_result **out, udr_query *q, const char *source, const char *into,
                               const udr_rowmerge_options *opts);


/**
 * A merge with conflicts (udr_query_merge, not a dry run) records them in
 * catalog/merges/<target>.json (docs/FORMAT.md): the heads it was planned
 * on, its options, and per table the conflicting rows (a Parquet part in
 * the store).  SQL reads them in the table udr_conflicts (target, table,
 * key, base, ours, theirs, resolved; docs/QUERY.md).
 *
 * udr_query_merge_resolve resolves a table of the merge into `into` (NULL:
 * main): side UDR_MERGE_OURS or UDR_MERGE_THEIRS for the whole table (key
 * NULL) or for the conflicting row whose key_text is key; or side 0 and
 * sql, a query whose rows are the table's resolved version (stored now as
 * parts, committed by the merge).
 * @return 0; UDR_ENOTFOUND (no record for into, the table or row has no
 *         conflict); UDR_EINVAL; the query's errors.
 */
UDR_EXTERN int udr_query_merge_resolve(udr_query *q, const char *into, const char *table, int side, const char *key,
                                 const char *sql);

/**
 * *out gets a query that reads the file at path as udr_query_import reads
 * it: its format from its name (.parquet, .csv, .json, .ndjson, each
 * optionally .gz or .zst) unless format is one of UDR_FORMAT_*, and the
 * path as it is (no glob: "b[1].csv" is that file).  Free it with udr_free.
 * @return 0; UDR_ENOTFOUND (no such file); UDR_EINVAL (a directory, no
 *         format to tell); UDR_EIO.
 */
UDR_EXTERN int udr_query_file_select(char **out, const char *path, int format);

/**
 * Commit the recorded merge into `into` with its resolutions, if the
 * target's head is still the one it was planned on (else UDR_ECONFLICT,
 * nothing written: abort and merge again).  Conflicts left unresolved:
 * UDR_ECONFLICT, the record updated, nothing merged.  On success the record
 * is removed.  @param[out] out as for udr_query_merge.
 */
UDR_EXTERN int udr_query_merge_continue(udr_merge_result **out, udr_query *q, const char *into);

/** Discard the recorded merge into `into`.  @return 0; UDR_ENOTFOUND. */
UDR_EXTERN int udr_query_merge_abort(udr_query *q, const char *into);

#ifdef __cplusplus
}
#endif
#endif
