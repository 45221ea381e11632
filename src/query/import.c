/*
 * import.c - data in and out of table versions through DuckDB: import files
 * or a query result as Parquet parts (overwrite or append), export a version,
 * write any query to a file, and row diffs between two versions.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <udr/refs.h>
#include <udr/txn.h>

#include "catalog/catalog_internal.h"
#include "query/query_internal.h"

/*
 * Part geometry.  DuckDB parallelizes Parquet scans by row group and its own
 * writer's default row group is 122,880 rows (60 vectors of 2,048), so that
 * is the row group size.  A part holds up to 8 row groups (983,040 rows) or
 * about 128 MB, whichever comes first: big enough that per-file costs (open,
 * footer, one chunk in the store) vanish next to the scan, small enough that
 * an append or a re-import of a slice stores little, that GC and dedup work
 * at a useful granularity, and that parts stream through the store's 1 MiB
 * buffers quickly.
 */
#define PART_ROW_GROUP 122880
#define PART_ROW_GROUPS 8
#define PART_BYTES (128u << 20)
#define PART_COPY_OPTIONS "FORMAT parquet, ROW_GROUP_SIZE 122880"

#define APPEND_RETRIES 16

/* ---- formats ---------------------------------------------------------------------- */

static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static int format_of_path(const char *path)
{
	size_t n = strlen(path);
	if (ends_with_ci(path, n, ".gz"))
		n -= 3;
	else if (ends_with_ci(path, n, ".zst"))
		n -= 4;
	else if (ends_with_ci(path, n, ".zstd"))
		n -= 5;
	if (ends_with_ci(path, n, ".parquet") || ends_with_ci(path, n, ".pq"))
		return UDR_FORMAT_PARQUET;
	if (ends_with_ci(path, n, ".csv") || ends_with_ci(path, n, ".tsv") || ends_with_ci(path, n, ".txt"))
		return UDR_FORMAT_CSV;
	if (ends_with_ci(path, n, ".ndjson") || ends_with_ci(path, n, ".jsonl"))
		return UDR_FORMAT_NDJSON;
	if (ends_with_ci(path, n, ".json"))
		return UDR_FORMAT_JSON;
	return UDR_FORMAT_AUTO;
}

static int resolve_format(int format, const char *path)
{
	char qp[200];
	if (format >= UDR_FORMAT_PARQUET && format <= UDR_FORMAT_NDJSON)
		return format;
	if (format != UDR_FORMAT_AUTO)
		return udr__error_set(UDR_EINVAL, "unknown format %d", format);
	if ((format = format_of_path(path)) == UDR_FORMAT_AUTO) {
		udr__quote(qp, sizeof(qp), path);
		return udr__error_set(UDR_EINVAL,
		                      "cannot tell the format of '%s' from its extension (use .parquet, .csv, "
		                      ".json, .ndjson or give the format)",
		                      qp);
	}
	return format;
}

static const char *format_name(int f)
{
	switch (f) {
	case UDR_FORMAT_PARQUET: return "parquet";
	case UDR_FORMAT_CSV: return "csv";
	case UDR_FORMAT_JSON: return "json";
	case UDR_FORMAT_NDJSON: return "ndjson";
	default: return "?";
	}
}

/* COPY options for writing format f. */
static const char *copy_options(int f)
{
	switch (f) {
	case UDR_FORMAT_PARQUET: return "FORMAT parquet";
	case UDR_FORMAT_CSV: return "FORMAT csv, HEADER true";
	case UDR_FORMAT_JSON: return "FORMAT json, ARRAY true";
	default: return "FORMAT json";
	}
}

/* ---- schemas ------------------------------------------------------------------------ */

typedef struct schema {
	char **names;
	char **types;
	size_t n;
} schema;

static void schema_free(schema *s)
{
	udr_strarray_free(s->names, s->n);
	udr_strarray_free(s->types, s->n);
	memset(s, 0, sizeof(*s));
}

int udr__q_schema_json(char **out, char *const *names, char *const *types, size_t n)
{
	json_t *arr = json_array();
	int rc = 0;
	if (!arr)
		return udr__error_oom();
	for (size_t i = 0; i < n && rc == 0; i++) {
		/* HUGEINT and UHUGEINT are written as DECIMAL(38,0) (Parquet has
		 * no 128-bit integer; lossless_select): the schema says what the
		 * parts hold and reads give */
		const char *t = strcmp(types[i], "HUGEINT") == 0 || strcmp(types[i], "UHUGEINT") == 0 ? "DECIMAL(38,0)"
		                                                                                     : types[i];
		json_t *o = json_pack("{s:s, s:s}", "name", names[i], "type", t);
		if (!o || json_array_append_new(arr, o) < 0)
			rc = udr__error_oom();
	}
	if (rc == 0 && !(*out = json_dumps(arr, JSON_COMPACT)))
		rc = udr__error_oom();
	json_decref(arr);
	return rc;
}

static int schema_json(char **out, const schema *s)
{
	return udr__q_schema_json(out, s->names, s->types, s->n);
}

static int schema_parse(schema *s, const udr_version *v)
{
	const char *text = udr_version_get_meta(v, "udr.schema");
	json_error_t jerr;
	json_t *arr, *col;
	size_t i;
	int rc = 0;
	memset(s, 0, sizeof(*s));
	arr = text ? json_loads(text, 0, &jerr) : NULL;
	if (!arr || !json_is_array(arr)) {
		json_decref(arr);
		return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": missing or unreadable udr.schema",
		                      v->table, v->version);
	}
	s->n = json_array_size(arr);
	if (!(s->names = calloc(s->n ? s->n : 1, sizeof(char *))) ||
	    !(s->types = calloc(s->n ? s->n : 1, sizeof(char *)))) {
		json_decref(arr);
		free(s->names);
		memset(s, 0, sizeof(*s));
		return udr__error_oom();
	}
	json_array_foreach(arr, i, col) {
		const char *nm = json_string_value(json_object_get(col, "name"));
		const char *ty = json_string_value(json_object_get(col, "type"));
		if (!nm || !ty) {
			rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": bad column %zu in udr.schema",
			                    v->table, v->version, i);
			break;
		}
		if (!(s->names[i] = strdup(nm)) || !(s->types[i] = strdup(ty))) {
			rc = udr__error_oom();
			break;
		}
	}
	json_decref(arr);
	if (rc < 0)
		schema_free(s);
	return rc;
}

/* The schema of a version: udr.schema, else what DuckDB sees. */
static int version_schema(schema *s, udr_query *q, const udr_version *v)
{
	const char *name;
	udr__buf b = {0};
	int rc;
	if (udr_version_get_meta(v, "udr.schema"))
		return schema_parse(s, v);
	memset(s, 0, sizeof(*s));
	if ((rc = udr__q_view(&name, q, v)) < 0)
		return rc;
	rc = udr__buf_puts(&b, "SELECT * FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, name);
	if (rc == 0)
		rc = udr__q_describe(&s->names, &s->types, &s->n, q, b.ptr);
	udr__buf_free(&b);
	return rc;
}

/* Same column names in the same order (and same types when check_types). */
static int schema_match(const schema *old, const schema *neu, const char *table, bool check_types)
{
	char a[200], b[200];
	if (old->n != neu->n) {
		return udr__error_set(UDR_EINVAL,
		                      "schema mismatch between table %s and the new data: it has %zu columns, the new data %zu",
		                      table, old->n, neu->n);
	}
	for (size_t i = 0; i < old->n; i++) {
		if (strcmp(old->names[i], neu->names[i]) != 0) {
			udr__quote(a, sizeof(a), old->names[i]);
			udr__quote(b, sizeof(b), neu->names[i]);
			return udr__error_set(UDR_EINVAL,
			                      "schema mismatch between table %s and the new data: column %zu is '%s' in the "
			                      "table but '%s' in the new data",
			                      table, i + 1, a, b);
		}
		if (check_types && strcmp(old->types[i], neu->types[i]) != 0) {
			udr__quote(a, sizeof(a), old->names[i]);
			return udr__error_set(UDR_EINVAL,
			                      "schema mismatch between table %s and the new data: column '%s' is %s in the "
			                      "table but %s in the new data",
			                      table, a, old->types[i], neu->types[i]);
		}
	}
	return 0;
}

/* ---- temp directories ------------------------------------------------------------------ */

static void rmtree_flat(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d) {
		while ((e = readdir(d)) != NULL) {
			char *p;
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			if ((p = udr__path_join(dir, e->d_name)) != NULL) {
				unlink(p);
				free(p);
			}
		}
		closedir(d);
	}
	rmdir(dir);
}

/*
 * A fresh directory for an import's parts, under <cache_dir>/tmp, held
 * under flock for the import's whole life: a directory whose lock can be
 * taken belongs to a dead import (udr_query_clean_temp removes it).  It is
 * made as new-import-*, which cleaners leave alone while it is young,
 * locked, and only then renamed import-*: no cleaner ever sees it unlocked
 * (made and locked under its final name, a cleaner in between took it for
 * dead and removed it: stop 30's CI).
 */
static int make_import_dir(char **out, int *lockfd, udr_query *q)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		char *staging = udr__q_tmp_path(q, "new-import"), *dir = NULL;
		const char *base;
		int fd, rc;
		if (!staging)
			return udr_error_last()->code ? udr_error_last()->code : udr__error_oom();
		base = strrchr(staging, '/');
		if (!base || !(dir = udr__path_join(q->tmp_dir, base + 1 + 4))) { /* "new-" dropped */
			free(staging);
			return udr__error_oom();
		}
		if (mkdir(staging, 0777) < 0) {
			rc = errno == EEXIST ? 0 : udr__error_io(errno, "cannot create the import directory %s", staging);
			free(staging);
			free(dir);
			if (rc < 0)
				return rc;
			continue;
		}
		fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || flock(fd, LOCK_EX) < 0 || rename(staging, dir) < 0) {
			rc = udr__error_io(errno, "cannot make the import directory %s", dir);
			if (fd >= 0)
				close(fd);
			rmdir(staging);
			free(staging);
			free(dir);
			return rc;
		}
		free(staging);
		*out = dir;
		*lockfd = fd;
		return 0;
	}
	return udr__error_set(UDR_EIO, "cannot create an import directory in %s", q->tmp_dir);
}

/* An import killed between making its directory and naming it leaves a
 * new-import-* directory: removed once this old (it lives microseconds). */
#define STAGING_STALE_S 3600

static int clean_temp_dir(uint64_t *removed, const char *tmp_dir)
{
	DIR *d = opendir(tmp_dir);
	struct dirent *e;
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return udr__error_io(errno, "cannot list %s", tmp_dir);
	}
	while ((e = readdir(d)) != NULL) {
		bool staging = strncmp(e->d_name, "new-import-", 11) == 0;
		struct stat st;
		char *p;
		int fd;
		if ((!staging && strncmp(e->d_name, "import-", 7) != 0) || !(p = udr__path_join(tmp_dir, e->d_name)))
			continue;
		if (staging && (lstat(p, &st) < 0 || time(NULL) - st.st_mtime < STAGING_STALE_S)) {
			free(p);
			continue;
		}
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
			/* its import is gone (the kernel dropped the lock), and
			 * the directory is still there (not removed by its import
			 * on the way out) */
			rmtree_flat(p);
			if (access(p, F_OK) != 0)
				(*removed)++;
		}
		if (fd >= 0)
			close(fd);
		free(p);
	}
	closedir(d);
	return 0;
}

int udr_query_clean_temp(uint64_t *removed, udr_db *db, const char *cache_dir)
{
	char *cache = NULL, *tmp = NULL;
	uint64_t n = 0;
	int rc;
	if (!db)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_clean_temp");
	cache = udr__q_cache_dir(db, cache_dir);
	if (!cache || !(tmp = udr__path_join(cache, "tmp"))) {
		free(cache);
		return udr__error_oom();
	}
	rc = clean_temp_dir(&n, tmp);
	free(cache);
	free(tmp);
	if (removed)
		*removed = n;
	return rc;
}

/* ---- the cache: stats and clear ------------------------------------------------ */

/* <hash>.parquet: a materialized part. */
static bool is_part_name(const char *name)
{
	size_t n = strlen(name);
	if (n != UDR_HASH_HEXSIZE + 8 || strcmp(name + UDR_HASH_HEXSIZE, ".parquet") != 0)
		return false;
	for (size_t i = 0; i < UDR_HASH_HEXSIZE; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return true;
}

/* Bytes of the regular files under dir (two levels: tmp/import-*, tmp/duckdb). */
static uint64_t tree_bytes(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    !(p = udr__path_join(dir, e->d_name)))
			continue;
		if (lstat(p, &st) == 0) {
			if (S_ISREG(st.st_mode))
				n += (uint64_t)st.st_size;
			else if (S_ISDIR(st.st_mode) && depth > 0)
				n += tree_bytes(p, depth - 1);
		}
		free(p);
	}
	closedir(d);
	return n;
}

/* Count (and with do_remove, remove) the parts in cache; the caller holds
 * the exclusive lock when removing. */
static int cache_parts(udr_query_cache_info *out, const char *cache, bool do_remove)
{
	DIR *d = opendir(cache);
	struct dirent *e;
	int rc = 0;
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return udr__error_io(errno, "cannot list the query cache %s", cache);
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		char *p;
		if (!is_part_name(e->d_name))
			continue;
		if (!(p = udr__path_join(cache, e->d_name))) {
			rc = udr__error_oom();
			break;
		}
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			if (!do_remove || unlink(p) == 0) {
				out->parts++;
				out->part_bytes += (uint64_t)st.st_size;
			} else if (errno != ENOENT) {
				rc = udr__error_io(errno, "cannot remove %s", p);
				free(p);
				break;
			}
		} else if (do_remove && (rc = udr__cache_entry_regular(p)) < 0) {
			free(p); /* not a part: whatever it is, it goes */
			break;
		}
		free(p);
	}
	closedir(d);
	return rc;
}

int udr_query_cache_stats(udr_query_cache_info *out, udr_db *db, const char *cache_dir)
{
	char *cache, *tmp;
	int rc;
	if (!out || !db)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_cache_stats");
	memset(out, 0, sizeof(*out));
	if (!(cache = udr__q_cache_dir(db, cache_dir)))
		return udr__error_oom();
	rc = cache_parts(out, cache, false);
	if (rc == 0 && (tmp = udr__path_join(cache, "tmp")) != NULL) {
		out->temp_bytes = tree_bytes(tmp, 2);
		free(tmp);
	}
	free(cache);
	return rc;
}

int udr_query_cache_clear(udr_query_cache_info *removed, udr_db *db, const char *cache_dir)
{
	udr_query_cache_info got = {0, 0, 0};
	char *cache;
	int fd, rc;
	if (!db)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_cache_clear");
	if (removed)
		memset(removed, 0, sizeof(*removed));
	if (!(cache = udr__q_cache_dir(db, cache_dir)))
		return udr__error_oom();
	fd = open(cache, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot open the query cache %s", cache);
		free(cache);
		return rc;
	}
	/* waits for the statements that may read cached parts (shared holders) */
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		rc = udr__error_io(errno, "cannot lock the query cache %s", cache);
	else
		rc = cache_parts(&got, cache, true);
	close(fd);
	if (rc == 0)
		rc = udr_query_clean_temp(NULL, db, cache_dir);
	free(cache);
	if (removed)
		*removed = got;
	return rc;
}

/* Does the part file at path hash to h?  1 yes, 0 no (damaged), < 0 when
 * it cannot be read (UDR_EIO: left alone). */
static int part_intact(const char *path, const udr_hash *h)
{
	udr_hash got;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	if (fd < 0)
		return errno == ENOENT ? 1 : udr__error_io(errno, "cannot open %s", path);
	rc = udr_hash_fd(&got, fd);
	close(fd);
	if (rc < 0)
		return rc;
	return udr_hash_equal(&got, h) ? 1 : 0;
}

static int cache_sweep(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir, bool verify);

int udr_query_cache_trim(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir)
{
	return cache_sweep(removed, skipped, db, cache_dir, false);
}

int udr_query_cache_verify(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir)
{
	return cache_sweep(removed, skipped, db, cache_dir, true);
}

/* trim (parts whose content is gone), and with verify parts that do not
 * hash to their name as well, under the cache's exclusive lock */
static int cache_sweep(udr_query_cache_info *removed, int *skipped, udr_db *db, const char *cache_dir, bool verify)
{
	udr_query_cache_info got = {0, 0, 0};
	char *cache;
	DIR *d;
	struct dirent *e;
	int fd, rc = 0;
	if (!db)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_cache_%s", verify ? "verify" : "trim");
	if (removed)
		memset(removed, 0, sizeof(*removed));
	if (skipped)
		*skipped = 0;
	if (!(cache = udr__q_cache_dir(db, cache_dir)))
		return udr__error_oom();
	if ((fd = open(cache, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot open the query cache %s", cache);
		free(cache);
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? 0 : udr__error_io(errno, "cannot lock the query cache %s", cache);
		if (rc == 0 && skipped)
			*skipped = 1;
		close(fd);
		free(cache);
		return rc;
	}
	if (!(d = opendir(cache))) {
		rc = udr__error_io(errno, "cannot list the query cache %s", cache);
	} else {
		while (rc == 0 && (e = readdir(d)) != NULL) {
			char hex[UDR_HASH_HEXSIZE + 1], *p;
			udr_hash h;
			struct stat st;
			int ex;
			if (!is_part_name(e->d_name))
				continue;
			memcpy(hex, e->d_name, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = 0;
			if (udr_hash_fromhex(&h, hex) != 0)
				continue;
			if ((ex = udr_store_exists(udr_db_store(db), &h)) < 0) {
				rc = ex;
				break;
			}
			if (ex && !verify)
				continue;
			if (!(p = udr__path_join(cache, e->d_name))) {
				rc = udr__error_oom();
				break;
			}
			if ((rc = udr__cache_entry_regular(p)) <= 0) {
				free(p); /* not a regular file: removed (never a part) */
				if (rc < 0)
					break;
				continue;
			}
			rc = 0;
			if (ex && lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
				/* verify: the content is there; the part is kept when it
				 * hashes to its name */
				if ((ex = part_intact(p, &h)) < 0) {
					rc = ex;
					free(p);
					break;
				}
			}
			if (ex) {
				free(p);
				continue;
			}
			if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
				if (unlink(p) == 0) {
					got.parts++;
					got.part_bytes += (uint64_t)st.st_size;
				} else if (errno != ENOENT) {
					rc = udr__error_io(errno, "cannot remove %s", p);
				}
			}
			free(p);
		}
		closedir(d);
	}
	close(fd);
	if (rc == 0)
		rc = udr_query_clean_temp(NULL, db, cache_dir);
	free(cache);
	if (removed)
		*removed = got;
	return rc;
}

/*
 * A user's query whose rows are written (import --sql, sql -o): exactly one
 * statement that returns rows, checked on its own before it is put inside
 * COPY ( ... ) on lines of its own (so a trailing comment ends there).
 * Trailing semicolons are dropped (in place).
 */
static int user_query(char *sql, udr_query *q)
{
	size_t n = strlen(sql);
	while (n && (isspace((unsigned char)sql[n - 1]) || sql[n - 1] == ';'))
		sql[--n] = '\0';
	return udr__q_check(q, sql, UDR__RUN_SELECT);
}

typedef struct part_file {
	uint64_t seq;
	char *path;
} part_file;

static int part_cmp(const void *a, const void *b)
{
	const part_file *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The files DuckDB wrote into dir (data_<N>.parquet), in order. */
static int list_parts(part_file **out, size_t *count, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	part_file *parts = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (!d) {
		if (errno == ENOENT) {
			*out = NULL;
			*count = 0;
			return 0;
		}
		return udr__error_io(errno, "cannot list %s", dir);
	}
	while ((e = readdir(d)) != NULL) {
		const char *nm = e->d_name, *us, *dot;
		uint64_t seq = 0;
		if (nm[0] == '.')
			continue;
		us = strrchr(nm, '_');
		dot = strrchr(nm, '.');
		if (!us || !dot || dot < us || udr__parse_u64(&seq, us + 1, (size_t)(dot - us - 1)) < 0)
			seq = UINT64_MAX; /* unexpected name: keep, after the numbered ones */
		if (n == cap) {
			size_t c2 = cap ? cap * 2 : 16;
			part_file *p = realloc(parts, c2 * sizeof(*p));
			if (!p) {
				rc = udr__error_oom();
				break;
			}
			parts = p;
			cap = c2;
		}
		parts[n].seq = seq;
		if (!(parts[n].path = udr__path_join(dir, nm))) {
			rc = UDR_ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(parts[i].path);
		free(parts);
		return rc;
	}
	if (n)
		qsort(parts, n, sizeof(*parts), part_cmp);
	*out = parts;
	*count = n;
	return 0;
}

static void parts_free(part_file *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].path);
	free(p);
}

/* Store the parts with two threads: hashing and writing them into the
 * store is CPU-bound and parts are independent (the store is thread-safe).
 * Each part is stored whole (UDR_PUT_WHOLE: one plain file, no pieces, no
 * compression) so queries read it in place.  The errors of the first
 * failing part win. */
typedef struct put_job {
	udr_hash *hashes;
	udr_store *store;
	part_file *files;
	size_t n;
	size_t next;
	int rc;
	char msg[512];
	pthread_mutex_t mu;
} put_job;

static void *put_worker(void *arg)
{
	put_job *j = arg;
	udr_put_options whole = UDR_PUT_OPTIONS_INIT;
	whole.flags = UDR_PUT_WHOLE;
	for (;;) {
		size_t i;
		int rc;
		pthread_mutex_lock(&j->mu);
		i = j->rc < 0 ? j->n : j->next++;
		pthread_mutex_unlock(&j->mu);
		if (i >= j->n)
			return NULL;
		/* whole: one plain file, so queries read the part in place
		 * (udr_store_local_path) instead of materializing a copy */
		rc = udr_store_put_file_ext(&j->hashes[i], j->store, j->files[i].path, &whole);
		if (rc < 0) {
			pthread_mutex_lock(&j->mu);
			if (j->rc == 0) {
				j->rc = rc;
				snprintf(j->msg, sizeof(j->msg), "%s", udr_error_last()->message);
			}
			pthread_mutex_unlock(&j->mu);
			return NULL;
		}
		unlink(j->files[i].path);
	}
}

static int put_parts(udr_hash *hashes, udr_store *store, part_file *files, size_t n)
{
	put_job j;
	pthread_t t;
	bool threaded;
	memset(&j, 0, sizeof(j));
	j.hashes = hashes;
	j.store = store;
	j.files = files;
	j.n = n;
	pthread_mutex_init(&j.mu, NULL);
	threaded = n > 1 && pthread_create(&t, NULL, put_worker, &j) == 0;
	put_worker(&j);
	if (threaded)
		pthread_join(t, NULL);
	pthread_mutex_destroy(&j.mu);
	if (j.rc < 0)
		return udr__error_set(j.rc, "%s", j.msg);
	return 0;
}

/* ---- the common import path ------------------------------------------------------------- */

/* COPY (select_sql) TO dir as parts (the query on lines of its own). */
static int64_t result_count(const udr_result *r);

int udr__q_run_path(udr_result **out, udr_query *q, const char *before, const char *path, const char *after)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, before);
	if (rc == 0)
		rc = udr__sql_read_path(&b, path);
	if (rc == 0)
		rc = udr__buf_puts(&b, after);
	if (rc == 0)
		rc = udr__q_run(out, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	udr__buf_free(&b);
	return rc;
}

/* The rows of the Parquet file at path (its footer). */
static int file_rows(uint64_t *out, udr_query *q, const char *path)
{
	udr_result *r = NULL;
	int64_t c;
	int rc = udr__q_run_path(&r, q, "SELECT num_rows::BIGINT FROM parquet_file_metadata(", path, ")");
	if (rc < 0)
		return rc;
	c = result_count(r);
	udr_result_free(r);
	if (c < 0)
		return udr__error_set(UDR_ERROR, "DuckDB did not report the rows of a part it wrote");
	*out = (uint64_t)c;
	return 0;
}

/* tmpl with each '@' replaced by the column name col, quoted. */
static int put_col_expr(udr__buf *b, const char *tmpl, const char *col)
{
	int rc = 0;
	for (const char *at; rc == 0 && (at = strchr(tmpl, '@')) != NULL; tmpl = at + 1) {
		rc = udr__buf_put(b, tmpl, (size_t)(at - tmpl));
		if (rc == 0)
			rc = udr__sql_ident(b, col);
	}
	return rc == 0 ? udr__buf_puts(b, tmpl) : rc;
}

#define SIGNED_MARK "udr: a negative zero or NaN in a column the Parquet writer dictionary-encodes"

/* COPY (query) TO path (options); with no_dict, no column chunk is
 * dictionary-encoded. */
static int copy_raw(udr_result **count, udr_query *q, const char *select_sql, const udr_value *params,
                    size_t nparams, int kind, const char *path, const char *options, bool no_dict)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, "COPY (\n");
	if (rc == 0)
		rc = udr__buf_puts(&b, select_sql);
	if (rc == 0)
		rc = udr__buf_puts(&b, "\n) TO ");
	if (rc == 0)
		rc = udr__sql_literal(&b, path);
	if (rc == 0)
		rc = udr__buf_printf(&b, " (%s%s)", options, no_dict ? ", DICTIONARY_SIZE_LIMIT 0" : "");
	if (rc == 0)
		rc = udr__q_run(count, q, b.ptr, params, nparams, kind);
	udr__buf_free(&b);
	return rc;
}

/* *found: a negative zero or a NaN with its sign bit set in one of the
 * FLOAT/DOUBLE columns cols of the query's rows (one pass, the columns
 * alone). */
static int negative_zero_or_nan(bool *found, udr_query *q, const char *select_sql, const udr_value *params,
                                size_t nparams, int kind, char *const *cols, size_t ncols)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	udr_value x;
	int rc = udr__buf_puts(&b, "SELECT coalesce(");
	for (size_t i = 0; rc == 0 && i < ncols; i++)
		rc = put_col_expr(&b, i ? " OR bool_or((@ = 0 OR isnan(@)) AND signbit(@))"
		                        : "bool_or((@ = 0 OR isnan(@)) AND signbit(@))", cols[i]);
	if (rc == 0)
		rc = udr__buf_puts(&b, ", false) FROM (\n");
	if (rc == 0)
		rc = udr__buf_puts(&b, select_sql);
	if (rc == 0)
		rc = udr__buf_puts(&b, "\n)");
	/* a user's query is checked as one (a SELECT, not our COPY) */
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, params, nparams, kind == UDR__RUN_COPY ? UDR__RUN_SELECT : kind);
	if (rc == 0 && (udr_result_get(&x, r, 0, 0) < 0 || x.type != UDR_TYPE_BOOL))
		rc = udr__error_set(UDR_ERROR, "DuckDB did not say whether the rows hold negative zeros");
	if (rc == 0)
		*found = x.i64 != 0;
	udr_result_free(r);
	udr__buf_free(&b);
	return rc;
}

/* What copy_one learned of a query's rows, for the copies of parts of the
 * file it wrote: columns that hold no negative zero or NaN, and whether it
 * wrote without dictionaries. */
typedef struct copy_memo {
	char **clean;
	size_t nclean;
	bool no_dict;
	bool safe; /* no FLOAT, DOUBLE or INTERVAL column: nothing to merge */
} copy_memo;

static void memo_free(copy_memo *m)
{
	udr_strarray_free(m->clean, m->nclean);
	memset(m, 0, sizeof(*m));
}

/* Column name (len bytes) known to hold no negative zero or NaN. */
static bool memo_clean(const copy_memo *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->nclean; i++)
		if (strlen(m->clean[i]) == len && memcmp(m->clean[i], name, len) == 0)
			return true;
	return false;
}

/*
 * What the Parquet file at path may have merged.  DuckDB's Parquet writer
 * (1.4, and 1.5: duckdb#25781) builds a column chunk's dictionary with
 * SQL equality, so values that compare equal but differ are stored as the
 * first of them: 0.0 and -0.0, NaN and -NaN (FLOAT, DOUBLE), INTERVAL
 * '1 month' and '30 days'.  Chunks written plain keep every value.
 * *wrap: the top-level FLOAT/DOUBLE columns with a dictionary-encoded chunk
 * and a zero or NaN in the file, but for those memo knows clean (whether a
 * negative one was merged into it only the query's rows can tell: copy_one
 * asks them); *no_dict:
 * an INTERVAL or a nested FLOAT/DOUBLE column is dictionary-encoded
 * somewhere (the file is written again without dictionaries).
 */
static int merge_risk(char ***wrap, size_t *nwrap, bool *no_dict, udr_query *q, const char *path,
                      const copy_memo *memo)
{
	udr_result *r = NULL;
	udr__buf b = {0};
	char **cols = NULL;
	size_t n = 0, ncols = 0;
	bool flba = false;
	int rc;
	*wrap = NULL;
	*nwrap = 0;
	*no_dict = false;
	/* every column chunk (a plain scan of the footer: cheaper than
	 * asking DuckDB to filter and sort a few rows) */
	rc = udr__q_run_path(&r, q,
	                     "SELECT path_in_schema, type, dictionary_page_offset IS NOT NULL FROM parquet_metadata(",
	                     path, ")");
	if (rc < 0 || (n = udr_result_row_count(r)) == 0)
		goto out;
	if (!(cols = calloc(n, sizeof(*cols)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0 && !*no_dict; i++) {
		udr_value name, type, dict;
		bool seen = false;
		if (udr_result_get(&name, r, i, 0) < 0 || udr_result_get(&type, r, i, 1) < 0 ||
		    udr_result_get(&dict, r, i, 2) < 0 || name.type != UDR_TYPE_TEXT || type.type != UDR_TYPE_TEXT ||
		    dict.type != UDR_TYPE_BOOL) {
			rc = udr__error_set(UDR_ERROR, "DuckDB did not report the column chunks of a file it wrote");
			break;
		}
		if (!dict.i64)
			continue;
		if (strcmp(type.str, "FIXED_LEN_BYTE_ARRAY") == 0) {
			flba = true; /* UUID, DECIMAL: equal is identical; INTERVAL: below */
			continue;
		}
		if (strcmp(type.str, "FLOAT") != 0 && strcmp(type.str, "DOUBLE") != 0)
			continue;
		if (memchr(name.str, ',', name.len)) { /* "s, a", "l, list, element": nested */
			*no_dict = true;
			break;
		}
		/* a column per row group; one known clean is not asked again */
		seen = memo_clean(memo, name.str, name.len);
		for (size_t j = 0; j < ncols && !seen; j++)
			seen = strlen(cols[j]) == name.len && memcmp(cols[j], name.str, name.len) == 0;
		if (!seen && !(cols[ncols++] = strndup(name.str, name.len)))
			rc = udr__error_oom();
	}
	udr_result_free(r);
	r = NULL;
	if (rc == 0 && !*no_dict && flba) {
		rc = udr__q_run_path(&r, q, "SELECT count(*)::BIGINT FROM parquet_schema(", path,
		                     ") WHERE converted_type = 'INTERVAL'");
		if (rc == 0)
			*no_dict = result_count(r) > 0;
		udr_result_free(r);
		r = NULL;
	}
	if (rc < 0 || *no_dict || ncols == 0)
		goto out;
	/* which of them hold a zero or a NaN */
	rc = udr__buf_puts(&b, "SELECT ");
	for (size_t i = 0; rc == 0 && i < ncols; i++)
		rc = put_col_expr(&b, i ? ", coalesce(bool_or(@ = 0 OR isnan(@)), false)"
		                        : "coalesce(bool_or(@ = 0 OR isnan(@)), false)", cols[i]);
	if (rc == 0)
		rc = udr__buf_puts(&b, " FROM read_parquet(");
	if (rc == 0)
		rc = udr__sql_read_path(&b, path);
	if (rc == 0)
		rc = udr__buf_puts(&b, ")");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc == 0) {
		size_t k = 0; /* keep those, in order */
		for (size_t i = 0; i < ncols; i++) {
			udr_value x;
			char *c = cols[i];
			cols[i] = NULL;
			if (rc == 0 && (udr_result_get(&x, r, 0, i) < 0 || x.type != UDR_TYPE_BOOL))
				rc = udr__error_set(UDR_ERROR, "DuckDB did not say which columns of a file hold zeros");
			if (rc == 0 && x.i64)
				cols[k++] = c;
			else
				free(c);
		}
		ncols = k;
	}
out:
	udr__buf_free(&b);
	udr_result_free(r);
	if (rc == 0 && ncols) {
		*wrap = cols;
		*nwrap = ncols;
	} else {
		for (size_t i = 0; i < ncols; i++)
			free(cols[i]);
		free(cols);
	}
	return rc;
}

/* Columns of a query its caller knows (names and DuckDB types). */
typedef struct colinfo {
	char *const *names;
	char *const *types;
	size_t n;
} colinfo;

/* A refusal raised inside a COPY (error() in the query): copy_one makes it
 * UDR_EINVAL with what follows the mark. */
#define REFUSE_MARK "udr-refused: "

/* The query as lossless_select made it (plain: NULL if the same as
 * checked; checked: NULL if the caller's query as it is), and the top-level
 * FLOAT/DOUBLE columns whose signs checked looks at in the pass. */
typedef struct typed_sql {
	char *checked;
	char *plain;
	char **floats;
	size_t nfloats;
	bool no_dict; /* written without dictionaries (columns of one name) */
} typed_sql;

static void typed_sql_free(typed_sql *t)
{
	free(t->checked);
	free(t->plain);
	udr_strarray_free(t->floats, t->nfloats);
	memset(t, 0, sizeof(*t));
}

/* The query without the float sign checks (the rows written without
 * dictionaries when one stopped the pass). */
static const char *plain_sql(const typed_sql *ts, const char *select_sql)
{
	if (!ts)
		return select_sql;
	if (ts->nfloats)
		return ts->plain ? ts->plain : select_sql;
	return ts->checked ? ts->checked : select_sql;
}


/* A refusal raised inside a COPY (error() in the query) as UDR_EINVAL with
 * what follows the mark; any other error as it is. */
static int refusal(int rc)
{
	const char *m = udr_error_last()->message, *at = m ? strstr(m, REFUSE_MARK) : NULL;
	char *why;
	if (rc >= 0 || !at)
		return rc;
	if (!(why = strdup(at + strlen(REFUSE_MARK))))
		return udr__error_oom();
	rc = udr__error_set(UDR_EINVAL, "%s", why);
	free(why);
	return rc;
}

static int memo_add_clean(copy_memo *m, char **cols, size_t n)
{
	char **c;
	if (!n)
		return 0;
	if (!(c = realloc(m->clean, (m->nclean + n) * sizeof(*c))))
		return udr__error_oom();
	m->clean = c;
	for (size_t i = 0; i < n; i++) {
		c[m->nclean++] = cols[i];
		cols[i] = NULL;
	}
	return 0;
}

/*
 * COPY (query) TO path as one Parquet file, in the query's row order, with
 * every value as the query gave it.  Written with dictionaries (smaller,
 * faster to scan).  ts (typed rows, may be NULL): its checked query runs
 * instead, which stops at a negative zero or NaN of a top-level float
 * column: then its plain query is written without dictionaries (the rows of
 * that run, all of them as given).  Then, when merge_risk finds that the
 * file may have merged values in columns not known clean (memo->clean),
 * written again without dictionaries if the rows hold a negative zero or
 * NaN (a pass over those columns alone tells; only for sources read again
 * alike: files, our own queries), or at once for an INTERVAL or nested
 * float column.  What was learned is added to memo.
 */
static int copy_one(udr_result **count, udr_query *q, const char *select_sql, const udr_value *params,
                    size_t nparams, int kind, const char *path, const char *options, const typed_sql *ts,
                    copy_memo *memo)
{
	char **wrap = NULL;
	size_t nwrap = 0;
	bool no_dict = false;
	int rc;
	if (ts && ts->no_dict) { /* nothing checked by name: no dictionaries */
		rc = copy_raw(count, q, ts->checked ? ts->checked : select_sql, params, nparams, kind, path, options, true);
		if (rc == 0)
			memo->no_dict = true;
		else
			unlink(path);
		return refusal(rc);
	}
	rc = copy_raw(count, q, ts && ts->checked ? ts->checked : select_sql, params, nparams, kind, path, options,
	              false);
	if (rc < 0 && ts && ts->nfloats && strstr(udr_error_last()->message, SIGNED_MARK)) {
		/* a negative zero or NaN where a dictionary would merge it */
		udr_error_clear();
		unlink(path);
		rc = copy_raw(count, q, plain_sql(ts, select_sql), params, nparams, kind, path, options, true);
		if (rc == 0)
			memo->no_dict = true;
		else
			unlink(path);
		return refusal(rc);
	}
	if (rc < 0) {
		unlink(path);
		return refusal(rc);
	}
	if (ts && ts->nfloats) { /* checked in the pass: clean */
		char **c = calloc(ts->nfloats, sizeof(*c));
		for (size_t i = 0; c && i < ts->nfloats; i++)
			if (!(c[i] = strdup(ts->floats[i])))
				rc = udr__error_oom();
		if (!c)
			rc = udr__error_oom();
		if (rc == 0)
			rc = memo_add_clean(memo, c, ts->nfloats);
		if (c)
			udr_strarray_free(c, ts->nfloats);
		if (rc < 0)
			return rc;
	}
	/* one row (a SQL write's usual part) has nothing to merge with */
	if (!memo->safe && !(count && result_count(*count) >= 0 && result_count(*count) <= 1))
		rc = merge_risk(&wrap, &nwrap, &no_dict, q, path, memo);
	if (rc == 0 && !no_dict && nwrap)
		rc = negative_zero_or_nan(&no_dict, q, select_sql, params, nparams, kind, wrap, nwrap);
	if (rc == 0 && no_dict) {
		if (count) {
			udr_result_free(*count);
			*count = NULL;
		}
		unlink(path);
		rc = refusal(copy_raw(count, q, plain_sql(ts, select_sql), params, nparams, kind, path, options, true));
	}
	if (rc == 0 && no_dict)
		memo->no_dict = true;
	else if (rc == 0) /* the columns asked are clean */
		rc = memo_add_clean(memo, wrap, nwrap);
	udr_strarray_free(wrap, nwrap);
	return rc;
}

/* A type whose values SQL equality may take for equal when they differ
 * (0.0/-0.0, NaN/-NaN, '1 month'/'30 days'), nested or not. */
static bool text_compared_type(const char *t)
{
	return strstr(t, "DOUBLE") || strstr(t, "FLOAT") || strstr(t, "REAL") || strstr(t, "INTERVAL");
}

/* "CASE WHEN cond THEN error('<REFUSE_MARK>column '<name>' why') ELSE ref END"
 * ('@' in cond: ref, the column as the query names it) */
static int refusing_case(udr__buf *b, const char *cond, const char *ref, const char *name, const char *why)
{
	udr__buf msg = {0};
	char qn[200];
	int rc = udr__buf_puts(b, "CASE WHEN ");
	udr__quote(qn, sizeof(qn), name);
	if (rc == 0)
		rc = put_col_expr(b, cond, ref);
	if (rc == 0)
		rc = udr__buf_printf(&msg, REFUSE_MARK "column '%s' %s", qn, why);
	if (rc == 0)
		rc = udr__buf_puts(b, " THEN error(");
	if (rc == 0)
		rc = udr__sql_literal(b, msg.ptr);
	if (rc == 0)
		rc = put_col_expr(b, ") ELSE @ END", ref);
	udr__buf_free(&msg);
	return rc;
}

/* Two columns of one name (case aside): "a JOIN b" with an "x" in both. */
static bool names_repeat(char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcasecmp(names[i], names[j]) == 0)
				return true;
	return false;
}

/*
 * Rows of any type as a Parquet part holds them exactly.  DuckDB's writer
 * converts with no error: HUGEINT and UHUGEINT to DOUBLE (CREATE TABLE ...
 * AS SELECT sum(bigint_col) is HUGEINT: a sum above 2^53 lost its last
 * digits), a UNION to a STRUCT, an INTERVAL to milliseconds (and a time
 * part of 2^32 ms or more wraps), a TIME WITH TIME ZONE to its local time
 * without the offset.  The columns (the caller's, else bound from the
 * query with its parameters) give out->checked: top-level HUGEINT and
 * UHUGEINT as DECIMAL(38,0) (exact; beyond 38 digits DuckDB's conversion
 * error); an INTERVAL value with microseconds or a time part too large, a
 * TIME WITH TIME ZONE value whose offset is not 0, refused in the pass
 * that writes them (error(): a query is run once, what it gives is what is
 * checked); a FLOAT/DOUBLE negative zero or NaN stops the pass with
 * SIGNED_MARK (copy_one writes out->plain, the same without that check,
 * without dictionaries).  Refused before anything is run: a UNION, and a
 * HUGEINT, TIME WITH TIME ZONE or INTERVAL inside a list, struct or map.
 */
static int lossless_select(typed_sql *out, udr_query *q, const char *select_sql, const udr_value *params,
                           size_t nparams, int kind, const colinfo *known)
{
	char **dnames = NULL, **dtypes = NULL, *const *names, *const *types;
	size_t n = 0, nrep = 0, npl = 0, nfl = 0;
	udr__buf chk = {0}, pl = {0};
	bool dup;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	if (known) { /* the caller's columns: no bind of the query */
		names = known->names;
		types = known->types;
		n = known->n;
	} else {
		rc = udr__q_columns(&dnames, &dtypes, &n, q, select_sql, params, nparams,
		                    kind == UDR__RUN_COPY ? UDR__RUN_SELECT : kind);
		names = dnames;
		types = dtypes;
	}
	/* columns of one name cannot be told apart by name (REPLACE takes the
	 * first): every column is projected by position, and floats are not
	 * checked in the pass (the rows are written without dictionaries) */
	dup = rc == 0 && names_repeat(names, n);
	if (rc == 0 && n && !(out->floats = calloc(n, sizeof(*out->floats))))
		rc = udr__error_oom();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *t = types[i], *nm = names[i];
		char qn[200], pos[32];
		const char *ref = nm;
		bool huge = strcmp(t, "HUGEINT") == 0 || strcmp(t, "UHUGEINT") == 0;
		bool fl = !dup && (strcmp(t, "DOUBLE") == 0 || strcmp(t, "FLOAT") == 0);
		bool iv = strcmp(t, "INTERVAL") == 0, tz = strcmp(t, "TIME WITH TIME ZONE") == 0;
		udr__quote(qn, sizeof(qn), nm);
		if (!huge && !iv && !tz &&
		    (strstr(t, "HUGEINT") || strstr(t, "UNION(") || strstr(t, "TIME WITH TIME ZONE") || strstr(t, "INTERVAL"))) {
			rc = udr__error_set(UDR_EINVAL,
			                    "column '%s' is %s, which a Parquet part cannot hold exactly (it would be "
			                    "converted): cast it (e.g. to DECIMAL(38,0), BIGINT or VARCHAR)", qn, t);
			break;
		}
		if (dup) {
			snprintf(pos, sizeof(pos), "__udr_c%zu", i);
			ref = pos;
			out->no_dict |= text_compared_type(t);
		} else if (!huge && !fl && !iv && !tz) {
			continue;
		}
		rc = udr__buf_puts(&chk, nrep++ ? ", " : dup ? "SELECT " : "SELECT * REPLACE (");
		if (rc == 0 && !fl)
			rc = udr__buf_puts(&pl, npl++ ? ", " : dup ? "SELECT " : "SELECT * REPLACE (");
		if (rc == 0 && huge) {
			rc = put_col_expr(&chk, "CAST(@ AS DECIMAL(38,0))", ref);
			if (rc == 0)
				rc = put_col_expr(&pl, "CAST(@ AS DECIMAL(38,0))", ref);
		} else if (rc == 0 && fl) {
			rc = put_col_expr(&chk, "CASE WHEN (@ = 0 OR isnan(@)) AND signbit(@) THEN error('" SIGNED_MARK
			                        "') ELSE @ END",
			                  ref);
			if (rc == 0 && !(out->floats[nfl++] = strdup(nm)))
				rc = udr__error_oom();
		} else if (rc == 0 && (iv || tz)) {
			/* the time part of an INTERVAL in microseconds: hours,
			 * minutes, and seconds with microseconds */
			const char *cond = iv ? "(datepart('microseconds', @) % 1000 <> 0 OR datepart('hour', @)::BIGINT * "
			                        "3600000000 + datepart('minute', @)::BIGINT * 60000000 + "
			                        "datepart('microseconds', @) NOT BETWEEN 0 AND 4294967295999 OR "
			                        "datepart('year', @)::BIGINT * 12 + datepart('month', @) < 0 OR "
			                        "datepart('day', @) < 0)"
			                      : "datepart('timezone', @) <> 0";
			const char *why = iv ? "holds an INTERVAL with microseconds, with a negative part, or with a time "
			                       "part of 1193 hours or more, which a Parquet part cannot hold (it keeps "
			                       "unsigned months, days and 32-bit milliseconds): round it, or cast the "
			                       "column (e.g. to VARCHAR)"
			                     : "holds a TIME WITH TIME ZONE whose offset is not 0, which a Parquet part "
			                       "cannot hold (it keeps the time, not the offset): cast the column (e.g. "
			                       "to VARCHAR), or give UTC times";
			rc = refusing_case(&chk, cond, ref, nm, why);
			if (rc == 0)
				rc = refusing_case(&pl, cond, ref, nm, why);
		} else if (rc == 0) { /* by position, as it is */
			rc = put_col_expr(&chk, "@", ref);
			if (rc == 0)
				rc = put_col_expr(&pl, "@", ref);
		}
		if (rc == 0)
			rc = udr__buf_puts(&chk, " AS ");
		if (rc == 0)
			rc = udr__sql_ident(&chk, nm);
		if (rc == 0 && !fl)
			rc = udr__buf_puts(&pl, " AS ");
		if (rc == 0 && !fl)
			rc = udr__sql_ident(&pl, nm);
	}
	/* by position: the inner query's columns renamed __udr_c0, ... */
	if (rc == 0 && dup && nrep) {
		udr__buf tail = {0};
		rc = udr__buf_puts(&tail, "\n) AS __udr_l(");
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = udr__buf_printf(&tail, i ? ", __udr_c%zu" : "__udr_c%zu", i);
		if (rc == 0)
			rc = udr__buf_puts(&tail, ")");
		if (rc == 0)
			rc = udr__buf_puts(&chk, " FROM (\n");
		if (rc == 0)
			rc = udr__buf_puts(&chk, select_sql);
		if (rc == 0)
			rc = udr__buf_puts(&chk, tail.ptr);
		udr__buf_free(&tail);
		if (rc == 0) {
			out->checked = chk.ptr;
			chk.ptr = NULL;
		}
		nrep = 0; /* done */
		npl = 0;
	}
	out->nfloats = nfl;
	/* the caller's query, inside */
	if (rc == 0 && nrep) {
		rc = udr__buf_puts(&chk, ") FROM (\n");
		if (rc == 0)
			rc = udr__buf_puts(&chk, select_sql);
		if (rc == 0)
			rc = udr__buf_puts(&chk, "\n)");
		if (rc == 0) {
			out->checked = chk.ptr;
			chk.ptr = NULL;
		}
	}
	if (rc == 0 && nfl && npl) {
		rc = udr__buf_puts(&pl, ") FROM (\n");
		if (rc == 0)
			rc = udr__buf_puts(&pl, select_sql);
		if (rc == 0)
			rc = udr__buf_puts(&pl, "\n)");
		if (rc == 0) {
			out->plain = pl.ptr;
			pl.ptr = NULL;
		}
	}
	udr__buf_free(&chk);
	udr__buf_free(&pl);
	if (dnames)
		udr_strarray_free(dnames, n);
	if (dtypes)
		udr_strarray_free(dtypes, n);
	if (rc < 0)
		typed_sql_free(out);
	return rc;
}

/* The file at all is the one part: dir/data_0.parquet. */
static int whole_part(const char *dir, const char *all)
{
	char *part = udr__path_join(dir, "data_0.parquet");
	int rc = 0;
	if (!part)
		return udr__error_oom();
	if (rename(all, part) < 0)
		rc = udr__error_io(errno, "cannot rename %s", all);
	free(part);
	return rc;
}

/*
 * The rows of select_sql as parts dir/data_<k>.parquet, k = 0, 1, ...:
 * row groups of 122,880 rows, up to 8 of them or ~128 MB a part.  The rows
 * keep the query's order and the bytes depend on the rows alone, so that
 * the same rows give the same parts (a rewrite dedups).  DuckDB's COPY into
 * a directory of files (ROW_GROUPS_PER_FILE, FILE_SIZE_BYTES) writes row
 * groups in the order its threads finish them, so the rows are written to
 * one file in order, and a file of more than a part's row groups is then
 * cut at row group boundaries (each part read back by row number, in
 * order).  *count: COPY's result (the rows written).
 */
static int copy_parts(udr_result **count, udr_query *q, const char *select_sql, const udr_value *params,
                      size_t nparams, int kind, const char *dir, bool typed, const colinfo *known)
{
	typed_sql ts = {NULL, NULL, NULL, 0, false};
	char *all = udr__path_join(dir, "all.parquet"), *part = NULL;
	udr__buf b = {0};
	udr_result *r = NULL;
	size_t ngroups = 0, nparts = 0;
	uint64_t first = 0, in_part = 0, bytes = 0, groups = 0;
	copy_memo memo = {NULL, 0, false, false};
	bool by_offset = false;
	int rc;
	if (!all)
		return udr__error_oom();
	/* rows of any type (ours, a user's query): as Parquet holds them */
	if (typed && (rc = lossless_select(&ts, q, select_sql, params, nparams, kind, known)) < 0)
		goto out;
	if (known) { /* columns of no type whose values a dictionary merges */
		memo.safe = true;
		for (size_t i = 0; i < known->n && memo.safe; i++)
			memo.safe = !text_compared_type(known->types[i]);
	}
	if ((rc = copy_one(count, q, select_sql, params, nparams, kind, all, PART_COPY_OPTIONS, typed ? &ts : NULL,
	                   &memo)) < 0)
		goto out;
	{ /* at most a part's rows and bytes (a SQL write's few rows): one part */
		struct stat st;
		int64_t n = result_count(*count);
		if (n >= 0 && n <= (int64_t)PART_ROW_GROUP * PART_ROW_GROUPS && stat(all, &st) == 0 &&
		    (uint64_t)st.st_size <= PART_BYTES) {
			rc = whole_part(dir, all);
			goto out;
		}
	}
	rc = udr__q_run_path(&r, q,
	                     "SELECT row_group_id::BIGINT, max(row_group_num_rows)::BIGINT, "
	                     "sum(total_compressed_size)::BIGINT FROM parquet_metadata(",
	                     all, ") GROUP BY 1 ORDER BY 1");
	if (rc < 0)
		goto out;
	ngroups = udr_result_row_count(r);
	if (ngroups <= PART_ROW_GROUPS) {
		bool small = true;
		for (size_t i = 0; i < ngroups && small; i++) {
			udr_value x;
			small = udr_result_get(&x, r, i, 2) == 0 && x.type == UDR_TYPE_INT64 &&
			        (bytes += (uint64_t)x.i64) <= PART_BYTES;
		}
		if (small) { /* one part: the file as written */
			rc = whole_part(dir, all);
			goto out;
		}
	}
	/* the rows are read back by file_row_number, unless a column of that
	 * name hides it (then by LIMIT ... OFFSET, in scan order: slower) */
	{
		char **names = NULL, **types = NULL;
		size_t nc = 0;
		rc = udr__buf_puts(&b, "SELECT * FROM read_parquet(");
		if (rc == 0)
			rc = udr__sql_read_path(&b, all);
		if (rc == 0)
			rc = udr__buf_puts(&b, ")");
		if (rc == 0)
			rc = udr__q_describe(&names, &types, &nc, q, b.ptr);
		udr__buf_free(&b);
		for (size_t i = 0; rc == 0 && i < nc; i++)
			by_offset |= strcasecmp(names[i], "file_row_number") == 0;
		udr_strarray_free(names, nc);
		udr_strarray_free(types, nc);
		if (rc < 0)
			goto out;
	}
	/* cut before a row group that would make the part too big */
	bytes = 0;
	for (size_t i = 0; i <= ngroups && rc == 0; i++) {
		udr_value nr, nb;
		bool end = i == ngroups;
		if (!end && (udr_result_get(&nr, r, i, 1) < 0 || udr_result_get(&nb, r, i, 2) < 0 ||
		             nr.type != UDR_TYPE_INT64 || nb.type != UDR_TYPE_INT64 || nr.i64 < 0 || nb.i64 < 0)) {
			rc = udr__error_set(UDR_ERROR, "DuckDB did not report the row groups of a file it wrote");
			break;
		}
		if (groups && (end || groups == PART_ROW_GROUPS || bytes + (uint64_t)nb.i64 > PART_BYTES)) {
			char name[48];
			snprintf(name, sizeof(name), "data_%zu.parquet", nparts++);
			free(part);
			if (!(part = udr__path_join(dir, name))) {
				rc = udr__error_oom();
				break;
			}
			rc = udr__buf_puts(&b, "SELECT * FROM read_parquet(");
			if (rc == 0)
				rc = udr__sql_read_path(&b, all);
			if (rc == 0 && by_offset)
				rc = udr__buf_printf(&b, ") LIMIT %" PRIu64 " OFFSET %" PRIu64, in_part, first);
			else if (rc == 0)
				rc = udr__buf_printf(&b,
				                     ") WHERE file_row_number >= %" PRIu64 " AND file_row_number < %" PRIu64
				                     " ORDER BY file_row_number",
				                     first, first + in_part);
			/* rows of the file all, which keeps every value: written
			 * without dictionaries as it was, else checked as it was */
			if (rc == 0 && memo.no_dict)
				rc = copy_raw(NULL, q, b.ptr, NULL, 0, UDR__RUN_ANY, part, PART_COPY_OPTIONS, true);
			else if (rc == 0)
				rc = copy_one(NULL, q, b.ptr, NULL, 0, UDR__RUN_ANY, part, PART_COPY_OPTIONS, NULL, &memo);
			udr__buf_free(&b);
			first += in_part;
			in_part = bytes = groups = 0;
		}
		if (!end) {
			in_part += (uint64_t)nr.i64;
			bytes += (uint64_t)nb.i64;
			groups++;
		}
	}
	if (rc == 0 && unlink(all) < 0)
		rc = udr__error_io(errno, "cannot remove %s", all);
out:
	typed_sql_free(&ts);
	memo_free(&memo);
	udr_result_free(r);
	free(part);
	free(all);
	return rc;
}

typedef struct import_src {
	const char *select_sql;   /* a query producing the rows */
	const udr_value *params;
	size_t nparams;
	const char *source;       /* udr.source: csv, parquet, json, sql */
	int kind;                 /* UDR__RUN_ANY (ours) or UDR__RUN_COPY (a user's query) */
	const colinfo *cols;      /* the columns' types when given (a table's, --types), else NULL */
} import_src;

static int64_t result_count(const udr_result *r)
{
	udr_value v;
	if (r && udr_result_row_count(r) > 0 && udr_result_get(&v, r, 0, 0) == 0 && v.type == UDR_TYPE_INT64)
		return v.i64;
	return -1;
}

/* Rows of a version: udr.rows, else count them. */
static int version_rows(uint64_t *out, udr_query *q, const udr_version *v)
{
	const char *rows = udr_version_get_meta(v, "udr.rows");
	const char *name;
	udr__buf b = {0};
	udr_result *r = NULL;
	int64_t n;
	int rc;
	if (rows && udr__parse_u64(out, rows, strlen(rows)) == 0)
		return 0;
	if ((rc = udr__q_view(&name, q, v)) < 0)
		return rc;
	rc = udr__buf_puts(&b, "SELECT count(*)::BIGINT FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, name);
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	udr__buf_free(&b);
	if (rc < 0)
		return rc;
	n = result_count(r);
	udr_result_free(r);
	*out = n < 0 ? 0 : (uint64_t)n;
	return 0;
}

/* The branch an import writes on (opts->ref: NAME or branch:NAME); NULL
 * for main, which keeps the older path. */
static const char *import_branch(const udr_import_options *opts)
{
	const char *b = opts->ref;
	if (!b || !*b)
		return NULL;
	if (strncmp(b, "branch:", 7) == 0)
		b += 7;
	return strcmp(b, "main") == 0 ? NULL : b;
}

/* After a transaction's commit: the version it made (the branch's latest). */
static int branch_version_after(udr_version **out, udr_catalog *c, const char *table, const char *branch)
{
	char ref[UDR_REF_NAME_MAX + 8];
	snprintf(ref, sizeof(ref), "branch:%s", branch);
	return udr_catalog_get_version_on(out, c, table, 0, ref);
}

/* The previous version for an append; *out NULL when the table is new.
 * *next: the version number the append commits. */
/* The key columns of a keyed import of a new table: columns of the copy
 * (select_sql), and unique in it (NULL is a value, as keyed imports match). */
static int check_new_key(udr_query *q, const char *table, const char *select_sql, const char *const *keys,
                         size_t nkeys)
{
	char **names = NULL, **types = NULL;
	size_t n = 0;
	udr__buf b = {0};
	udr_result *r = NULL;
	int rc = udr__buf_printf(&b, "SELECT * FROM (%s)", select_sql);
	if (rc == 0)
		rc = udr__q_describe(&names, &types, &n, q, b.ptr);
	for (size_t k = 0; rc == 0 && k < nkeys; k++) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(keys[k], names[i]) == 0;
		if (!found)
			rc = udr__error_set(UDR_EINVAL, "key column '%s' is not a column of table %s", keys[k], table);
	}
	udr__buf_free(&b);
	if (rc == 0)
		rc = udr__buf_puts(&b, "SELECT 1 FROM (");
	if (rc == 0)
		rc = udr__buf_puts(&b, select_sql);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") GROUP BY ");
	for (size_t k = 0; rc == 0 && k < nkeys; k++) {
		rc = udr__buf_puts(&b, k ? ", " : "");
		if (rc == 0)
			rc = udr__sql_ident(&b, keys[k]);
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, " HAVING count(*) > 1 LIMIT 1");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc == 0 && udr_result_row_count(r) > 0)
		rc = udr__error_set(UDR_EINVAL, "the key is not unique in the new copy of table %s", table);
	udr_result_free(r);
	udr__buf_free(&b);
	udr_strarray_free(names, n);
	udr_strarray_free(types, n);
	return rc;
}

static int previous_version(udr_version **out, uint64_t *next, udr_query *q, const char *table,
                            const char *branch)
{
	char ref[UDR_REF_NAME_MAX + 8];
	int rc;
	if (branch)
		snprintf(ref, sizeof(ref), "branch:%s", branch);
	rc = branch ? udr_catalog_get_version_on(out, q->cat, table, 0, ref) : udr_catalog_get_version(out, q->cat, table, 0);
	*next = 1;
	if (rc == UDR_ENOTFOUND) {
		udr_error_clear();
		*out = NULL;
		return 0;
	}
	if (rc == 0)
		*next = (*out)->version + 1;
	if (rc == 0 && udr__version_dropped(*out)) { /* DROP TABLE: a new table, after the drop */
		udr_version_free(*out);
		*out = NULL;
	}
	return rc;
}

static int do_import(uint64_t *version, udr_query *q, const char *table, const import_src *src,
                     const udr_import_options *opts, const schema *expect)
{
	char *dir = NULL, *schema_text = NULL, rowbuf[32];
	udr__buf b = {0};
	udr_result *r = NULL;
	part_file *files = NULL;
	size_t nfiles = 0;
	udr_hash *hashes = NULL;
	uint64_t *part_rows = NULL;
	schema got = {0};
	udr_version *prev = NULL, *v = NULL;
	udr_txn *txn = NULL;
	const char *branch = import_branch(opts);
	int64_t rows;
	int rc, lockfd = -1;

	{
		uint64_t stale = 0; /* imports killed earlier left their parts here */
		(void)udr_query_clean_temp(&stale, q->db, q->cache_dir);
		udr_error_clear();
	}
	if ((rc = make_import_dir(&dir, &lockfd, q)) < 0)
		return rc;
	/* 1. DuckDB writes the rows as Parquet parts into a fresh directory */
	/* rows whose types were given (a table's, --types) or are a query's
	 * (any type) are written as Parquet holds them (lossless_select);
	 * types detected in CSV, JSON and Parquet files need nothing */
	if ((rc = copy_parts(&r, q, src->select_sql, src->params, src->nparams, src->kind, dir,
	                      src->kind == UDR__RUN_COPY || src->cols, src->cols)) < 0)
		goto out;
	rows = result_count(r);
	udr_result_free(r);
	r = NULL;
	if (rows < 0) {
		rc = udr__error_set(UDR_ERROR, "DuckDB did not report the number of rows written");
		goto out;
	}
	if ((rc = list_parts(&files, &nfiles, dir)) < 0)
		goto out;
	if (nfiles == 0) {
		rc = udr__error_set(UDR_ERROR, "DuckDB wrote no Parquet file for table %s", table);
		goto out;
	}
	/* 2. the schema DuckDB will read back */
	rc = udr__buf_puts(&b, "SELECT * FROM read_parquet(");
	if (rc == 0)
		rc = udr__sql_read_path(&b, files[0].path);
	if (rc == 0)
		rc = udr__buf_puts(&b, ")");
	if (rc == 0)
		rc = udr__q_describe(&got.names, &got.types, &got.n, q, b.ptr);
	udr__buf_free(&b);
	if (rc < 0)
		goto out;
	if (expect && (rc = schema_match(expect, &got, table, true)) < 0)
		goto out;
	if ((rc = schema_json(&schema_text, &got)) < 0)
		goto out;
	/* 3. store the parts (an empty result keeps its one empty part: it
	 *    carries the schema) */
	if (!(hashes = calloc(nfiles, sizeof(*hashes))) || !(part_rows = calloc(nfiles, sizeof(*part_rows)))) {
		rc = udr__error_oom();
		goto out;
	}
	/* rows per part: an append to a version with typed parts (udr.parts,
	 * deletion vectors) must say them */
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		rc = file_rows(&part_rows[i], q, files[i].path);
	if (rc < 0 || (rc = put_parts(hashes, q->store, files, nfiles)) < 0)
		goto out;
	/* 4. commit; an append retries when another writer got in first (on
	 *    a branch: a transaction on it, which conflicts only with commits
	 *    on that branch) */
	for (int attempt = 0;; attempt++) {
		uint64_t base_rows = 0, next = 1;
		const char *prev_fmt;
		udr_version_free(v);
		v = NULL;
		udr_version_free(prev);
		prev = NULL;
		udr_txn_free(txn);
		txn = NULL;
		if (branch || opts->mode == UDR_IMPORT_APPEND) {
			/* an append on main too: its number is the table's next
			 * across branches (main's latest + 1 conflicted, on every
			 * retry, once another branch held the table's newest) */
			udr_txn_options to = UDR_TXN_OPTIONS_INIT;
			to.branch = branch;
			if ((rc = udr_txn_begin(&txn, q->cat, &to)) < 0)
				goto out;
		}
		if (opts->mode == UDR_IMPORT_APPEND) {
			if (txn) {
				if ((rc = udr_txn_get_version(&prev, txn, table, 0)) == UDR_ENOTFOUND) {
					udr_error_clear();
					prev = NULL;
					rc = 0;
				}
				if (rc == 0 && prev && udr__version_dropped(prev)) { /* a new table after the drop */
					udr_version_free(prev);
					prev = NULL;
				}
			} else
				rc = previous_version(&prev, &next, q, table, NULL);
			if (rc < 0)
				goto out;
			if (prev) {
				schema old;
				if ((rc = version_schema(&old, q, prev)) < 0)
					goto out;
				rc = schema_match(&old, &got, table, true);
				schema_free(&old);
				if (rc < 0 || (rc = version_rows(&base_rows, q, prev)) < 0)
					goto out;
			}
		}
		if ((rc = udr_version_new(&v, table, next)) < 0)
			goto out;
		if (prev && udr_version_get_meta(prev, "udr.parts")) {
			/* typed parts: the previous ones (their deletion vectors kept)
			 * and the new ones; the format is set below, so set it after */
			udr__parts ps;
			if ((rc = udr__parts_of(&ps, prev)) < 0)
				goto out;
			udr__part *np = realloc(ps.p, (ps.n + nfiles + 1) * sizeof(*np));
			if (!np) {
				udr__parts_free(&ps);
				rc = udr__error_oom();
				goto out;
			}
			ps.p = np;
			for (size_t i = 0; i < nfiles; i++) {
				memset(&ps.p[ps.n], 0, sizeof(ps.p[ps.n]));
				ps.p[ps.n].hash = hashes[i];
				ps.p[ps.n++].rows = part_rows[i];
			}
			rc = udr__parts_to_version(v, &ps);
			udr__parts_free(&ps);
			if (rc < 0)
				goto out;
		}
		for (size_t i = 0; prev && !udr_version_get_meta(prev, "udr.parts") && i < prev->nchunks && rc == 0; i++)
			rc = udr_version_add_chunk(v, &prev->chunks[i]);
		for (size_t i = 0; !udr_version_get_meta(v, "udr.parts") && i < nfiles && rc == 0; i++)
			rc = udr_version_add_chunk(v, &hashes[i]);
		snprintf(rowbuf, sizeof(rowbuf), "%" PRIu64, base_rows + (uint64_t)rows);
		/* typed parts (udr.parts) have their format (Parquet, set with them);
		 * an append onto raw files (a table committed by hand) keeps them:
		 * the parts are of several formats, each read by its bytes */
		prev_fmt = prev ? udr_version_get_meta(prev, "udr.format") : "parquet";
		if (rc == 0 && !udr_version_get_meta(v, "udr.format") && prev_fmt && strcmp(prev_fmt, "parquet") == 0)
			rc = udr_version_set_meta(v, "udr.format", "parquet");
		if (rc == 0)
			rc = udr_version_set_meta(v, "udr.schema", schema_text);
		if (rc == 0)
			rc = udr_version_set_meta(v, "udr.rows", rowbuf);
		if (rc == 0)
			rc = udr_version_set_meta(v, "udr.source", src->source);
		/* an append inserts its rows (a new table's rows: udr_log says so
		 * from version 1; an overwrite of a table says nothing) */
		if (rc == 0 && prev)
			rc = udr__version_set_changes(v, (uint64_t)rows, 0, 0);
		if (rc == 0 && opts->nkeys && opts->mode != UDR_IMPORT_APPEND) {
			/* the key a full copy was imported on: later merges match rows on it */
			json_t *a = json_array();
			char *k = NULL;
			for (size_t i = 0; a && i < opts->nkeys; i++)
				json_array_append_new(a, json_string(opts->keys[i]));
			if (!a || !(k = json_dumps(a, JSON_COMPACT)))
				rc = udr__error_oom();
			if (rc == 0)
				rc = udr_version_set_meta(v, "udr.key", k);
			free(k);
			json_decref(a);
		}
		if (rc == 0 && opts->message)
			rc = udr_version_set_message(v, opts->message);
		if (rc < 0)
			goto out;
		if (txn) {
			uint64_t seq;
			if ((rc = udr_txn_write(txn, v)) == 0 && (rc = udr_txn_commit(txn, &seq)) == 0) {
				udr_version *got_v = NULL; /* the number the commit gave it */
				if ((rc = branch_version_after(&got_v, q->cat, table, branch ? branch : "main")) == 0) {
					v->version = got_v->version;
					udr_version_free(got_v);
				}
			}
		} else if (opts->mode == UDR_IMPORT_APPEND)
			rc = udr_catalog_commit(q->cat, v);
		else
			rc = udr_catalog_commit_next(q->cat, v);
		if (rc == UDR_ECONFLICT && attempt < APPEND_RETRIES) {
			udr_error_clear();
			continue;
		}
		break;
	}
	if (rc == 0 && version)
		*version = v->version;
out:
	udr_result_free(r);
	parts_free(files, nfiles);
	free(hashes);
	free(part_rows);
	free(schema_text);
	schema_free(&got);
	udr_version_free(prev);
	udr_version_free(v);
	udr_txn_free(txn);
	rmtree_flat(dir);
	free(dir);
	close(lockfd);
	return rc;
}

/*
 * The rows of select_sql (our own SQL, no parameters) written as parts the
 * way imports write them, and stored whole: their hashes and row counts, in
 * order (*n 0 when the query has no rows).  What SQL writes store.
 */
int udr__q_write_parts(udr_hash **hashes, uint64_t **rows, size_t *n, udr_query *q, const char *select_sql,
                       char *const *names, char *const *types, size_t ncols)
{
	colinfo known = {names, types, ncols};
	char *dir = NULL;
	udr_result *r = NULL;
	part_file *files = NULL;
	size_t nfiles = 0;
	udr_hash *h = NULL;
	uint64_t *cnt = NULL;
	int64_t total;
	int rc, lockfd = -1;
	*hashes = NULL;
	*rows = NULL;
	*n = 0;
	if ((rc = make_import_dir(&dir, &lockfd, q)) < 0)
		return rc;
	if ((rc = copy_parts(&r, q, select_sql, NULL, 0, UDR__RUN_ANY, dir, true, names ? &known : NULL)) < 0)
		goto out;
	total = result_count(r);
	udr_result_free(r);
	r = NULL;
	if (total <= 0)
		goto out; /* no rows: no part (a version without parts keeps udr.schema) */
	if ((rc = list_parts(&files, &nfiles, dir)) < 0)
		goto out;
	if (!(h = calloc(nfiles ? nfiles : 1, sizeof(*h))) || !(cnt = calloc(nfiles ? nfiles : 1, sizeof(*cnt)))) {
		rc = udr__error_oom();
		goto out;
	}
	/* one part holds every row written; else each part's footer says */
	if (nfiles == 1)
		cnt[0] = (uint64_t)total;
	for (size_t i = 0; nfiles > 1 && i < nfiles && rc == 0; i++)
		rc = file_rows(&cnt[i], q, files[i].path);
	if (rc == 0)
		rc = put_parts(h, q->store, files, nfiles);
	if (rc == 0) {
		*hashes = h;
		*rows = cnt;
		*n = nfiles;
		h = NULL;
		cnt = NULL;
	}
out:
	udr_result_free(r);
	parts_free(files, nfiles);
	free(h);
	free(cnt);
	rmtree_flat(dir);
	free(dir);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

/* The caller's options as the current version (a version-1 struct has no
 * keys and no types: only its fields are read). */
static int import_opts(udr_import_options *out, const udr_import_options *opts)
{
	udr_import_options def = UDR_IMPORT_OPTIONS_INIT;
	*out = def;
	if (!opts)
		return 0;
	if (opts->version == 1) {
		memcpy(out, opts, offsetof(udr_import_options, keys));
		out->version = UDR_IMPORT_OPTIONS_VERSION;
		return 0;
	}
	if (opts->version != UDR_IMPORT_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown udr_import_options version %u", opts->version);
	*out = *opts;
	if (out->nkeys && !out->keys)
		return udr__error_set(UDR_EINVAL, "udr_import_options: nkeys without keys");
	if (out->ntypes && !out->types)
		return udr__error_set(UDR_EINVAL, "udr_import_options: ntypes without types");
	for (size_t i = 0; i < 2 * out->ntypes; i++)
		if (!out->types[i] || !*out->types[i])
			return udr__error_set(UDR_EINVAL, "udr_import_options: types[%zu] is empty", i);
	return 0;
}

static int check_import_args(udr_query *q, const char *table, const udr_import_options *opts)
{
	if (!q || !table)
		return udr__error_set(UDR_EINVAL, "invalid argument: NULL session or table");
	if (opts->nkeys && opts->mode != UDR_IMPORT_OVERWRITE)
		return udr__error_set(UDR_EINVAL, "import keys need a full copy of the table (not an append)");
	if (opts->mode != UDR_IMPORT_OVERWRITE && opts->mode != UDR_IMPORT_APPEND)
		return udr__error_set(UDR_EINVAL, "unknown import mode %d", opts->mode);
	if (import_branch(opts)) {
		/* the branch must exist before the parts are stored (they were,
		 * then the commit said not found) */
		int rc = udr__q_check_branch(q, import_branch(opts));
		if (rc < 0)
			return rc;
	}
	{
		int rc = udr__message_check(opts->message);
		if (rc < 0)
			return rc;
	}
	return udr_table_name_check(table);
}

/* read_csv([...]) etc. over files; types forces column types (append). */
static int reader_sql(udr__buf *b, int format, const char *const *files, size_t nfiles, const schema *types,
                      bool header)
{
	const char *fn = format == UDR_FORMAT_PARQUET ? "read_parquet"
	                 : format == UDR_FORMAT_CSV   ? "read_csv"
	                                              : "read_json_auto";
	int rc = udr__buf_printf(b, "SELECT * FROM %s([", fn);
	for (size_t i = 0; rc == 0 && i < nfiles; i++) {
		if (i)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0)
			rc = udr__sql_read_path(b, files[i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, "]");
	/* files with different columns: the union of their columns by name
	 * (NULL where a file lacks one), never only the first file's */
	if (rc == 0 && nfiles > 1)
		rc = udr__buf_puts(b, ", union_by_name = true");
	if (rc == 0 && format == UDR_FORMAT_NDJSON)
		rc = udr__buf_puts(b, ", format = 'newline_delimited'");
	/* never skip lines the sniffer takes for a preamble: a ragged file
	 * is then read as one column and refused (check_ragged) */
	if (rc == 0 && format == UDR_FORMAT_CSV)
		rc = udr__buf_puts(b, ", skip = 0");
	/* a quoted empty field ("") is an empty string, an empty field NULL:
	 * what `udr export` writes for '' and NULL, so an exported table
	 * imports back unchanged (DuckDB's default reads both as NULL) */
	if (rc == 0 && format == UDR_FORMAT_CSV)
		rc = udr__buf_puts(b, ", allow_quoted_nulls = false");
	/* files of one line: a header (the sniffer takes it for data) */
	if (rc == 0 && format == UDR_FORMAT_CSV && header)
		rc = udr__buf_puts(b, ", header = true");
	if (rc == 0 && types && types->n && format != UDR_FORMAT_PARQUET) {
		rc = udr__buf_puts(b, format == UDR_FORMAT_CSV ? ", types = {" : ", columns = {");
		for (size_t i = 0; rc == 0 && i < types->n; i++) {
			if (i)
				rc = udr__buf_puts(b, ", ");
			if (rc == 0)
				rc = udr__sql_literal(b, types->names[i]);
			if (rc == 0)
				rc = udr__buf_puts(b, ": ");
			if (rc == 0)
				rc = udr__sql_literal(b, types->types[i]);
		}
		if (rc == 0)
			rc = udr__buf_puts(b, "}");
	}
	return rc ? rc : udr__buf_puts(b, ")");
}

int udr_query_file_select(char **out, const char *path, int format)
{
	udr__buf b = {0};
	struct stat st;
	char qp[300];
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_file_select");
	*out = NULL;
	if ((rc = resolve_format(format, path)) < 0)
		return rc;
	format = rc;
	udr__quote(qp, sizeof(qp), path);
	if (stat(path, &st) != 0)
		return udr__error_set(errno == ENOENT ? UDR_ENOTFOUND : UDR_EIO, "cannot read '%s': %s", qp,
		                      strerror(errno));
	if (S_ISDIR(st.st_mode))
		return udr__error_set(UDR_EINVAL, "'%s' is a directory, not a file", qp);
	if ((rc = reader_sql(&b, format, &path, 1, NULL, false)) < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*out = b.ptr;
	return 0;
}

/*
 * The fields of each line of a CSV file split by delim (RFC 4180 quotes:
 * a quoted field may hold delim and line breaks).  0 when every line has
 * as many fields as the first; UDR_EINVAL naming the file (shown: the
 * user's name for it) and the first line that differs.
 */
static int csv_ragged_line(const char *path, const char *shown, char delim)
{
	FILE *f = fopen(path, "rb");
	uint64_t line = 1, start_line = 1, fields = 1, header = 0;
	bool quoted = false, empty = true, bad = false;
	char qp[300];
	int c;
	if (!f)
		return 0; /* DuckDB reports it */
	while (!bad) {
		c = getc(f);
		if (c == '"') {
			quoted = !quoted;
		} else if (!quoted && c == delim) {
			fields++;
		} else if (c == EOF || (c == '\n' && !quoted)) {
			/* the end of a record (lines 1 .. n: start_line) */
			if (!empty && header && fields != header)
				bad = true;
			else if (!empty && !header)
				header = fields;
			if (c == EOF || bad)
				break;
			fields = 1;
			empty = true;
			start_line = ++line;
			continue;
		} else if (c == '\n') {
			line++;
		}
		if (c != '\r' && c != '\n')
			empty = false;
	}
	fclose(f);
	if (!bad)
		return 0;
	udr__quote(qp, sizeof(qp), shown);
	return udr__error_set(UDR_EINVAL,
	                      "cannot import '%s': line %" PRIu64 " has %" PRIu64 " field%s, the header "
	                      "(line 1) has %" PRIu64 " (every line of a CSV file must have as many fields)",
	                      qp, start_line, fields, fields == 1 ? "" : "s", header);
}

/* A field DuckDB reads as a number (data, not a name): digits with signs,
 * '.', 'e', spaces; nan, inf, infinity; 0x and hex digits. */
static bool numeric_field(const char *f, size_t n)
{
	static const char *const words[] = {"nan", "inf", "infinity"};
	size_t digits = 0, i = 0;
	while (i < n && (f[i] == ' ' || f[i] == '+' || f[i] == '-'))
		i++;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t l = strlen(words[w]);
		if (n - i >= l && strncasecmp(f + i, words[w], l) == 0) {
			size_t j = i + l;
			while (j < n && f[j] == ' ')
				j++;
			if (j == n)
				return true;
		}
	}
	if (n - i > 2 && f[i] == '0' && (f[i + 1] == 'x' || f[i + 1] == 'X')) {
		for (i += 2; i < n; i++)
			if (!isxdigit((unsigned char)f[i]))
				return false;
		return true;
	}
	for (; i < n; i++) {
		if (f[i] >= '0' && f[i] <= '9')
			digits++;
		else if (!strchr("+-.eE ", f[i]))
			return false;
	}
	return digits > 0;
}

/*
 * A plain CSV file of exactly one record (blank lines aside) that is a
 * header: what `udr export` writes for a table without rows.  DuckDB's
 * sniffer cannot tell a header without rows under it and reads it as a row
 * of columns column0, column1, ...  A record whose fields are all numbers
 * is data (a header names its columns).  Quotes as RFC 4180 has them: one
 * opens a quoted field only at the start of a field ("" inside is a quote);
 * elsewhere it is a character (12" pipe).  The delimiter is one of , ; tab |.
 * Compressed files are not looked into.
 */
static bool csv_header_only(const char *path)
{
	size_t n = strlen(path), flen = 0;
	FILE *f;
	uint64_t records = 0;
	bool quoted = false, empty = true, at_start = true, all_numeric = true;
	char field[64];
	int c;
	if (ends_with_ci(path, n, ".gz") || ends_with_ci(path, n, ".zst") || ends_with_ci(path, n, ".zstd") ||
	    !(f = fopen(path, "rb")))
		return false;
	/* a UTF-8 byte order mark is not part of the first field */
	if (!(getc(f) == 0xEF && getc(f) == 0xBB && getc(f) == 0xBF))
		rewind(f);
	while (records < 2) {
		c = getc(f);
		if (quoted) {
			if (c == EOF)
				break;
			if (c == '"') {
				int d = getc(f);
				if (d != '"') { /* the closing quote */
					quoted = false;
					if (d != EOF)
						ungetc(d, f);
					continue;
				}
			}
			if (flen < sizeof(field)) /* "1" is a number, quoted or not */
				field[flen++] = (char)c;
			else
				all_numeric = false;
			continue;
		}
		if (c == '"' && at_start) {
			quoted = true;
			at_start = false;
			empty = false;
			continue;
		}
		if (c == EOF || c == '\n' || c == '\r' || strchr(",;\t|", c)) {
			/* the end of a field */
			if (!at_start || flen)
				all_numeric = all_numeric && numeric_field(field, flen);
			flen = 0;
			at_start = true;
			if (c != EOF && c != '\n' && c != '\r')
				continue;
			records += !empty;
			empty = true;
			if (c == EOF)
				break;
			continue;
		}
		if (flen < sizeof(field))
			field[flen++] = (char)c;
		else
			all_numeric = false;
		at_start = false;
		empty = false;
	}
	fclose(f);
	return records == 1 && !quoted && !all_numeric;
}

/* The delimiter in the name of the one column s has (0: none, or not one
 * column): a ragged file as DuckDB's sniffer reads it. */
static char one_column_delim(const schema *s)
{
	if (s->n != 1)
		return 0;
	for (const char *d = ",;\t|"; *d; d++)
		if (strchr(s->names[0], *d))
			return *d;
	return 0;
}

/*
 * A CSV file whose lines have different numbers of fields is read by
 * DuckDB's sniffer as one column named after the whole header ("a,b"):
 * when the files read as one such column, find the first ragged line.
 * Several files are read by name (union_by_name), where a ragged file's
 * one column sits among the others' columns and took its lines as values:
 * each file is checked as if imported alone.  shown: the user's names of
 * files.  *out: the columns DuckDB detects in the files (reader).
 */
static int check_ragged(schema *out, udr_query *q, const char *reader, const char *const *files,
                        const char *const *shown, size_t nfiles)
{
	char delim;
	int rc = udr__q_describe(&out->names, &out->types, &out->n, q, reader);
	if (rc < 0)
		return rc;
	if ((delim = one_column_delim(out)) != 0)
		for (size_t i = 0; rc == 0 && i < nfiles; i++)
			rc = csv_ragged_line(files[i], shown[i], delim);
	for (size_t i = 0; rc == 0 && nfiles > 1 && i < nfiles; i++) {
		schema one = {0};
		udr__buf b = {0};
		rc = reader_sql(&b, UDR_FORMAT_CSV, &files[i], 1, NULL, csv_header_only(files[i]));
		if (rc == 0)
			rc = udr__q_describe(&one.names, &one.types, &one.n, q, b.ptr);
		udr__buf_free(&b);
		if (rc == 0 && (delim = one_column_delim(&one)) != 0)
			rc = csv_ragged_line(files[i], shown[i], delim);
		schema_free(&one);
	}
	return rc;
}

/*
 * A CSV or JSON file of nothing but white space (and a UTF-8 byte order
 * mark) has no header and no value: DuckDB reads it as one made-up column
 * (column0, json) without rows, which replaced the table.  Refused,
 * naming shown (the user's name).  Compressed files are not looked into;
 * an empty Parquet file DuckDB refuses itself.
 */
/* The next character of f that is not a space, tab or line break. */
static int next_nonspace(FILE *f)
{
	int c;
	while ((c = getc(f)) == ' ' || c == '\t' || c == '\r' || c == '\n')
		;
	return c;
}

/* A compressed file's first bytes as text, whitespace left out, in *out
 * (DuckDB decompresses: its CSV reader, one column per line): 1 when
 * there is more than whitespace and "[]" could be, or it cannot be read
 * so (DuckDB reads or reports it later). */
static int compressed_start(char **out, udr_query *q, const char *path)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	udr_value n;
	int rc = udr__buf_puts(&b, "SELECT count(*)::BIGINT, coalesce(string_agg(regexp_replace(coalesce(l, ''), "
	                           "'\\s', '', 'g'), ''), '') FROM (SELECT l FROM read_csv(");
	*out = NULL;
	if (rc == 0)
		rc = udr__sql_read_path(&b, path);
	if (rc == 0)
		rc = udr__buf_puts(&b, ", columns = {'l': 'VARCHAR'}, header = false, auto_detect = false, delim = "
		                       "'\\x01', quote = '', escape = '', compression = 'auto') LIMIT 65)");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	udr__buf_free(&b);
	if (rc < 0) {
		if (rc == UDR_ENOMEM)
			return rc;
		udr_error_clear();
		return 1;
	}
	rc = 1;
	if (udr_result_get(&n, r, 0, 0) == 0 && n.type == UDR_TYPE_INT64 && n.i64 < 65 &&
	    udr_result_text(out, NULL, r, 0, 1) == 0 && *out && strlen(*out) <= 5)
		rc = 0; /* whitespace, "[]", a BOM: at most 5 bytes */
	udr_result_free(r);
	if (rc) {
		udr_free(*out);
		*out = NULL;
	}
	return rc;
}

static int check_not_empty(udr_query *q, const char *path, const char *shown, int format)
{
	size_t n = strlen(path);
	FILE *f = NULL;
	int c;
	char qp[300], *start = NULL;
	if (format == UDR_FORMAT_PARQUET)
		return 0; /* DuckDB reads or reports it */
	if (ends_with_ci(path, n, ".gz") || ends_with_ci(path, n, ".zst") || ends_with_ci(path, n, ".zstd")) {
		int rc = compressed_start(&start, q, path);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		c = strncmp(start, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a BOM */
		c = strcmp(start + c, "[]") == 0 ? '[' : start[c] ? 0 : EOF;
		udr_free(start);
	} else if (!(f = fopen(path, "rb"))) {
		return 0;
	} else {
		if (!(getc(f) == 0xEF && getc(f) == 0xBB && getc(f) == 0xBF))
			rewind(f);
		c = next_nonspace(f);
		if (c == '[')
			c = next_nonspace(f) == ']' && next_nonspace(f) == EOF ? '[' : 0;
		fclose(f);
	}
	if (c == '[' && format != UDR_FORMAT_CSV) {
		/* "[]": an array of no rows (how an empty table is exported to
		 * .json) has no columns either: DuckDB read it as one column
		 * "json" of no rows, which replaced the table */
		udr__quote(qp, sizeof(qp), shown);
		return udr__error_set(UDR_EINVAL,
		                      "cannot import '%s': the file is an empty JSON array: no rows and no "
		                      "columns (a table without rows is exported and imported as CSV or "
		                      "Parquet, which keep its columns)",
		                      qp);
	}
	if (c != EOF)
		return 0;
	udr__quote(qp, sizeof(qp), shown);
	if (format == UDR_FORMAT_CSV)
		return udr__error_set(UDR_EINVAL,
		                      "cannot import '%s': the file is empty: no header (a CSV file needs its "
		                      "header line; a table without rows is its header alone)",
		                      qp);
	return udr__error_set(UDR_EINVAL, "cannot import '%s': the file is empty: no JSON value", qp);
}

/*
 * Inputs read once: the import reads each file several times (the checks
 * above, DuckDB's sniffer, the copy), so a pipe (/dev/stdin, <(...)), a
 * FIFO or a character device gave its bytes to the first read and DuckDB
 * found nothing (a FIFO whose writer was gone blocked it forever).  Each
 * input that is not a regular file is copied first into a directory of
 * its own under <cache_dir>/tmp, made and held like an import's parts
 * (make_import_dir: a cleaner removes it once its import is dead), and
 * read from there.  paths[i]: files[i], or its copy.
 */
typedef struct staged_inputs {
	const char **paths;
	char **copies; /* copies[i]: files[i]'s copy (absolute), or NULL */
	size_t n;
	char *dir;
	int lockfd;
} staged_inputs;

static void staged_free(staged_inputs *s)
{
	if (s->dir) {
		rmtree_flat(s->dir);
		free(s->dir);
		close(s->lockfd);
	}
	for (size_t i = 0; s->copies && i < s->n; i++)
		free(s->copies[i]);
	free(s->copies);
	free(s->paths);
	memset(s, 0, sizeof(*s));
	s->lockfd = -1;
}

/* The name of files[i]'s copy: input-N and the extension of the
 * original's name (.csv, .csv.gz: DuckDB detects compression by it). */
static char *copy_name(const char *dir, const char *file, size_t i)
{
	const char *base = strrchr(file, '/'), *ext, *prev;
	char name[96];
	base = base ? base + 1 : file;
	ext = strrchr(base, '.');
	if (ext && ext > base) {
		size_t n = strlen(ext);
		if (ends_with_ci(ext, n, ".gz") || ends_with_ci(ext, n, ".zst") || ends_with_ci(ext, n, ".zstd")) {
			for (prev = ext - 1; prev > base && *prev != '.'; prev--)
				;
			if (prev > base)
				ext = prev;
		}
	} else {
		ext = "";
	}
	for (const char *p = ext; *p; p++)
		if (*p != '.' && !isalnum((unsigned char)*p))
			ext = "";
	if (strlen(ext) > 40)
		ext = "";
	snprintf(name, sizeof(name), "input-%zu%s", i + 1, ext);
	return udr__path_join(dir, name);
}

/* Copy the bytes of file (shown: the user's name) to the new file to. */
static int copy_input(const char *file, const char *shown, const char *to)
{
	enum { COPY_BUF = 1 << 20 };
	char qp[300], *buf = malloc(COPY_BUF);
	int in = -1, out = -1, rc = 0;
	size_t got = 0;
	udr__quote(qp, sizeof(qp), shown);
	if (!buf)
		return udr__error_oom();
	if ((in = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = udr__error_os(errno, "cannot import '%s'", qp);
		goto out;
	}
	if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		rc = udr__error_io(errno, "cannot create %s (the copy of '%s')", to, qp);
		goto out;
	}
	do {
		if ((rc = udr__read_full(in, buf, COPY_BUF, &got, shown)) == 0)
			rc = udr__write_all(out, buf, got, to);
	} while (rc == 0 && got == COPY_BUF);
	if (rc == 0 && close(out) < 0)
		rc = udr__error_io(errno, "cannot write %s (the copy of '%s')", to, qp);
	out = -1;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(buf);
	return rc;
}

static int stage_inputs(staged_inputs *s, udr_query *q, const char *const *files, size_t nfiles)
{
	int rc = 0;
	memset(s, 0, sizeof(*s));
	s->lockfd = -1;
	if (!(s->paths = calloc(nfiles, sizeof(*s->paths))) || !(s->copies = calloc(nfiles, sizeof(*s->copies))))
		return udr__error_oom();
	s->n = nfiles;
	for (size_t i = 0; rc == 0 && i < nfiles; i++) {
		struct stat st;
		s->paths[i] = files[i];
		/* a regular file of size 0 may have content all the same
		 * (/proc/self/status): DuckDB read it as empty, and the import
		 * committed a table of no rows (exit 0); copied like a pipe */
		if (stat(files[i], &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
			continue;
		if (!s->dir) {
			char *dir = NULL, *abs;
			if ((rc = make_import_dir(&dir, &s->lockfd, q)) < 0)
				break;
			/* absolute, as DuckDB names it in its messages (name_output) */
			if (!(abs = realpath(dir, NULL))) {
				rc = udr__error_io(errno, "cannot resolve %s", dir);
				rmtree_flat(dir);
				free(dir);
				close(s->lockfd);
				s->lockfd = -1;
				break;
			}
			free(dir);
			s->dir = abs;
		}
		if (!(s->copies[i] = copy_name(s->dir, files[i], i))) {
			rc = udr__error_oom();
			break;
		}
		if ((rc = copy_input(files[i], files[i], s->copies[i])) == 0)
			s->paths[i] = s->copies[i];
	}
	return rc;
}

static int name_output(int rc, const char *tmp, const char *path);

/*
 * The columns of CSV/JSON files with the types opts->types names, the
 * others as detected: read_json takes its columns all or none, so the
 * detected ones are listed too (read_csv's types would take some).
 */
static int forced_types(schema *out, udr_query *q, int format, const char *const *files, size_t nfiles,
                        bool header_only, const udr_import_options *opts)
{
	udr__buf b = {0};
	int rc = reader_sql(&b, format, files, nfiles, NULL, header_only);
	if (rc == 0)
		rc = udr__q_describe(&out->names, &out->types, &out->n, q, b.ptr);
	udr__buf_free(&b);
	for (size_t i = 0; rc == 0 && i < opts->ntypes; i++) {
		const char *name = opts->types[2 * i], *type = opts->types[2 * i + 1];
		size_t k = 0;
		char qn[200];
		while (k < out->n && strcmp(out->names[k], name) != 0)
			k++;
		if (k == out->n) {
			udr__quote(qn, sizeof(qn), name);
			rc = udr__error_set(UDR_EINVAL, "column '%s' of the import's types is not in the data", qn);
			break;
		}
		free(out->types[k]);
		out->types[k] = NULL;
		if (strchr(type, '(')) {
			/* as DuckDB writes the type (STRUCT("k" VARCHAR) is
			 * STRUCT(k VARCHAR)): udr.schema is compared as text with
			 * what later reads describe */
			udr__buf t = {0};
			udr_result *r = NULL;
			rc = udr__buf_printf(&t, "SELECT typeof(CAST(NULL AS %s))", type);
			if (rc == 0)
				rc = udr__q_run(&r, q, t.ptr, NULL, 0, UDR__RUN_ANY);
			if (rc == 0)
				rc = udr_result_text(&out->types[k], NULL, r, 0, 0);
			udr_result_free(r);
			udr__buf_free(&t);
			if (rc == 0 && !out->types[k])
				rc = udr__error_set(UDR_ERROR, "no name for the type %s", type);
			if (rc < 0)
				break;
			continue;
		}
		if (!(out->types[k] = strdup(type)))
			rc = udr__error_oom();
	}
	return rc;
}

/* cond gets "the cast of col from d (a type the caller declared) to t
 * would change it" */
static int lossy_cast_cond(udr__buf *cond, const char *col, const char *d, const char *t)
{
	int rc = put_col_expr(cond, "TRY_CAST(@ AS ", col);
	if (rc == 0)
		rc = udr__buf_printf(cond, "%s) IS NULL OR CAST(TRY_CAST(", t);
	if (rc == 0)
		rc = put_col_expr(cond, "@ AS ", col);
	if (rc == 0)
		rc = udr__buf_printf(cond, "%s) AS %s) IS DISTINCT FROM ", t, d);
	if (rc == 0)
		rc = put_col_expr(cond, "@", col);
	return rc;
}

static bool int_or_decimal(const char *t)
{
	static const char *const ints[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
	                                   "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (strcmp(t, ints[i]) == 0)
			return true;
	return strncmp(t, "DECIMAL(", 8) == 0 && t[strlen(t) - 1] == ')';
}

static bool wall_time(const char *t)
{
	static const char *const w[] = {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strcmp(t, w[i]) == 0)
			return true;
	return false;
}

/* The element type of a list of a scalar ("DECIMAL(10,2)[]": its base in
 * out), else false. */
static bool list_of(char *out, size_t outsz, const char *t)
{
	size_t n = strlen(t);
	if (n < 3 || n - 2 >= outsz || strcmp(t + n - 2, "[]") != 0)
		return false;
	memcpy(out, t, n - 2);
	out[n - 2] = '\0';
	return !strchr(out, '[') && (!strchr(out, '(') || int_or_decimal(out));
}

/* The next type name in the type text *p (a token followed by what ends
 * a type: a struct's field names are followed by a space; quoted field
 * names and ENUM strings skipped): true with it in tok, [*start, *p) its
 * place; false at the end. */
static bool next_type_name(const char **p, const char **start, char *tok, size_t toksz, const char *t)
{
	while (**p) {
		const char *e = *p;
		if (*e == '"' || *e == '\'') {
			char qc = *e++;
			while (*e && !(*e == qc && e[1] != qc))
				e += *e == qc ? 2 : 1; /* "" and '' are the quote itself */
			*p = *e ? e + 1 : e;
			continue;
		}
		while ((*e >= 'A' && *e <= 'Z') || (*e >= '0' && *e <= '9') || *e == '_')
			e++;
		if (e > *p && (size_t)(e - *p) < toksz && (*p == t || !isalnum((unsigned char)(*p)[-1])) &&
		    (*e == '\0' || *e == ',' || *e == ')' || *e == '[' || *e == '(')) {
			memcpy(tok, *p, (size_t)(e - *p));
			tok[e - *p] = '\0';
			*start = *p;
			*p = e;
			return true;
		}
		*p = e > *p ? e : *p + 1;
	}
	return false;
}

/* A DECIMAL or a time inside a nested type the checks do not reach (a
 * list of lists, a struct, a map, an array; from JSON, a list of DECIMALs,
 * whose numbers are parsed as doubles): a reader's cast may change it, so
 * refused. */
static bool nested_checkable(const char *t)
{
	const char *p = t, *at;
	char tok[24];
	if (!strchr(t, '[') && !strchr(t, '('))
		return false;
	if (int_or_decimal(t))
		return false; /* DECIMAL(p,s) itself */
	while (next_type_name(&p, &at, tok, sizeof(tok), t))
		if (wall_time(tok) || strcmp(tok, "DECIMAL") == 0)
			return true;
	return false;
}

/* An integer inside a nested type that the list check does not reach (a
 * struct's field, a map's key or value, a list of lists, an array): when
 * shadow is given, the type with every integer VARCHAR (its values' text as
 * read), which the checks compare with the integers read. */
static int nested_ints(udr__buf *shadow, const char *t)
{
	const char *p = t, *at, *from = t;
	char tok[24], base[64];
	bool any = false;
	int rc = 0;
	if ((!strchr(t, '[') && !strchr(t, '(')) || int_or_decimal(t) ||
	    (list_of(base, sizeof(base), t) && int_or_decimal(base)))
		return 0;
	while (rc == 0 && next_type_name(&p, &at, tok, sizeof(tok), t)) {
		if (!int_or_decimal(tok))
			continue;
		any = true;
		if (shadow && (rc = udr__buf_printf(shadow, "%.*sVARCHAR", (int)(at - from), from)) == 0)
			from = p;
	}
	if (rc == 0 && shadow && any)
		rc = udr__buf_puts(shadow, from);
	return rc < 0 ? rc : any;
}

/* The end of the type that starts at p: the first ',' or ')' outside
 * parentheses, brackets and quotes (or the end). */
static const char *type_end(const char *p)
{
	int depth = 0;
	for (; *p; p++) {
		if (*p == '"' || *p == '\'') {
			char qc = *p++;
			while (*p && !(*p == qc && p[1] != qc))
				p += *p == qc ? 2 : 1;
			if (!*p)
				break;
		} else if (*p == '(' || *p == '[') {
			depth++;
		} else if ((*p == ')' || *p == ']') && depth > 0) {
			depth--;
		} else if ((*p == ',' || *p == ')') && depth == 0) {
			break;
		}
	}
	return p;
}

/*
 * cond gets "a key of the JSON value e (an expression) that the type t
 * (the n bytes at t) has no field for": the JSON reader drops a key its
 * STRUCT does not have ({"x": 2, "y": 3} appended to STRUCT(x BIGINT) was
 * {x: 2}, exit 0).  Walks t: a STRUCT's keys against its fields, then each
 * field's value; a list's or array's elements; a map's values.  "false"
 * where no STRUCT is left.
 */
static int struct_keys_cond(udr__buf *cond, const char *e, const char *t, size_t n, int depth)
{
	udr__buf sub = {0}, var = {0};
	int rc;
	while (n && t[n - 1] == ' ')
		n--;
	while (n && *t == ' ')
		t++, n--;
	{
		/* no STRUCT in it: nothing dropped */
		bool any = false;
		for (size_t i = 0; i + 7 <= n && !any; i++)
			any = memcmp(t + i, "STRUCT(", 7) == 0;
		if (!any || depth > 32)
			return udr__buf_puts(cond, depth > 32 ? "true" : "false");
	}
	rc = udr__buf_printf(&var, "\"__udr_k%d\"", depth);
	if (rc == 0 && n >= 2 && t[n - 1] == ']') {
		/* T[] or T[N]: the elements */
		size_t open = n - 1;
		while (open > 0 && t[open] != '[')
			open--;
		rc = udr__buf_printf(cond, "coalesce(list_bool_or(list_transform(CASE WHEN json_type(%s) = 'ARRAY' THEN "
		                           "json_extract(%s, '$[*]') END, %s -> (",
		                     e, e, var.ptr);
		if (rc == 0)
			rc = struct_keys_cond(cond, var.ptr, t, open, depth + 1);
		if (rc == 0)
			rc = udr__buf_puts(cond, "))), false)");
	} else if (rc == 0 && n > 7 && memcmp(t, "STRUCT(", 7) == 0 && t[n - 1] == ')') {
		const char *p = t + 7, *end = t + n - 1;
		udr__buf names = {0};
		rc = udr__buf_printf(cond, "(json_type(%s) = 'OBJECT' AND (", e);
		while (rc == 0 && p < end) {
			const char *f, *fe, *ty, *te;
			udr__buf nm = {0};
			while (p < end && (*p == ' ' || *p == ','))
				p++;
			if (p >= end)
				break;
			/* the field's name: "quoted" ("" a quote) or up to a space */
			if (*p == '"') {
				for (f = ++p; p < end && !(*p == '"' && p[1] != '"'); p += *p == '"' ? 2 : 1)
					;
				fe = p;
				for (const char *c = f; rc == 0 && c < fe; c += *c == '"' ? 2 : 1)
					rc = udr__buf_put(&nm, c, 1);
				p = p < end ? p + 1 : p;
			} else {
				for (f = p; p < end && *p != ' '; p++)
					;
				fe = p;
				rc = udr__buf_put(&nm, f, (size_t)(fe - f));
			}
			ty = p;
			te = type_end(ty);
			if (te > end)
				te = end;
			if (rc == 0)
				rc = udr__buf_puts(&names, names.len ? ", " : "");
			if (rc == 0)
				rc = udr__sql_literal(&names, nm.ptr ? nm.ptr : "");
			/* the field's value, walked: json_extract takes a plain key,
			 * except one that starts as a path does ($, /), which is
			 * quoted in a path; with a quote in it too, not walked */
			if (rc == 0 && nm.ptr && (nm.ptr[0] == '$' || nm.ptr[0] == '/') && strchr(nm.ptr, '"')) {
				/* its own keys are checked above */
			} else if (rc == 0) {
				udr__buf fx = {0}, path = {0};
				const char *k = nm.ptr ? nm.ptr : "";
				if (*k == '$' || *k == '/')
					rc = udr__buf_printf(&path, "$.\"%s\"", k);
				if (rc == 0)
					rc = udr__buf_printf(&fx, "json_extract(%s, ", e);
				if (rc == 0)
					rc = udr__sql_literal(&fx, path.len ? path.ptr : k);
				udr__buf_free(&path);
				if (rc == 0)
					rc = udr__buf_puts(&fx, ")");
				if (rc == 0)
					rc = udr__buf_puts(&sub, " OR ");
				if (rc == 0)
					rc = struct_keys_cond(&sub, fx.ptr, ty, (size_t)(te - ty), depth + 1);
				udr__buf_free(&fx);
			}
			udr__buf_free(&nm);
			p = te;
		}
		if (rc == 0)
			rc = udr__buf_printf(cond, "NOT list_has_all([%s]::VARCHAR[], json_keys(%s))%s))",
			                     names.len ? names.ptr : "", e, sub.len ? sub.ptr : "");
		udr__buf_free(&names);
	} else if (rc == 0 && n > 4 && memcmp(t, "MAP(", 4) == 0 && t[n - 1] == ')') {
		/* the values (a key is no STRUCT a JSON object can give) */
		const char *k = t + 4, *ke = type_end(k), *v = *ke == ',' ? ke + 1 : ke;
		rc = udr__buf_printf(cond, "coalesce(list_bool_or(list_transform(CASE WHEN json_type(%s) = 'OBJECT' THEN "
		                           "map_values(TRY_CAST(%s AS MAP(VARCHAR, JSON))) END, %s -> (",
		                     e, e, var.ptr);
		if (rc == 0)
			rc = struct_keys_cond(cond, var.ptr, v, (size_t)(t + n - 1 - v), depth + 1);
		if (rc == 0)
			rc = udr__buf_puts(cond, "))), false)");
	} else if (rc == 0) {
		rc = udr__buf_puts(cond, "false"); /* a UNION: its members are not walked */
	}
	udr__buf_free(&sub);
	udr__buf_free(&var);
	return rc;
}

#define LOSS_TAIL "the import would change the value (nothing was imported; give values the column''s type " \
                  "holds exactly, a JSON DECIMAL as a string, or replace the table)"

/* Text the parse into type t would change, as a condition on column col
 * (read as VARCHAR): a fraction in an integer column (the CSV reader reads
 * "5.7" into BIGINT as 6), more fractional digits than a DECIMAL's scale
 * ("2.25" into DECIMAL(2,1) is 2.3), a nonzero UTC offset in a TIMESTAMP
 * (dropped: "01:00+05:00" was 01:00), a time of day in a DATE.  0 and no
 * condition for other types. */
static int text_loss_cond(udr__buf *cond, const char *col, const char *t, const char *jt)
{
	char base[64];
	udr__buf sh = {0};
	int rc;
	if (jt && strstr(t, "STRUCT(")) {
		/* a key the STRUCT has no field for, then what follows */
		udr__buf e = {0};
		rc = put_col_expr(&e, "TRY_CAST(@ AS JSON)", col);
		if (rc == 0)
			rc = udr__buf_puts(cond, "(");
		if (rc == 0)
			rc = struct_keys_cond(cond, e.ptr, t, strlen(t), 0);
		udr__buf_free(&e);
		if (rc == 0)
			rc = udr__buf_puts(cond, ") OR ");
		if (rc < 0)
			return rc;
		if ((rc = nested_ints(NULL, t)) == 0)
			return udr__buf_puts(cond, "false");
	}
	rc = nested_ints(&sh, t);
	if (rc > 0) {
		/* integers deeper inside: the value read as t, its integers as
		 * text, against the same value read with every integer as text
		 * ({a: 2.5} read as STRUCT(a INTEGER) was {a: 3}, from JSON
		 * {a: 2}).  From JSON, a number with a fraction or an exponent
		 * is a double's text ("2.0"), never an integer's: refused. */
		const char *x = jt ? "TRY_CAST(@ AS JSON)" : "@";
		rc = udr__buf_puts(cond, "TRY_CAST(TRY_CAST(");
		if (rc == 0)
			rc = put_col_expr(cond, x, col);
		if (rc == 0)
			rc = udr__buf_printf(cond, " AS %s) AS %s) IS DISTINCT FROM TRY_CAST(", t, sh.ptr);
		if (rc == 0)
			rc = put_col_expr(cond, x, col);
		if (rc == 0)
			rc = udr__buf_printf(cond, " AS %s)", sh.ptr);
		udr__buf_free(&sh);
		return rc;
	}
	udr__buf_free(&sh);
	if (rc < 0)
		return rc;
	if (list_of(base, sizeof(base), t) && (int_or_decimal(base) || wall_time(base))) {
		/* a list's text (CSV, or a JSON array's as written): each element
		 * checked as a value of base */
		rc = put_col_expr(cond, "coalesce(list_bool_or(list_transform(TRY_CAST(@ AS VARCHAR[]), \"__udr_x\" -> (",
		                  col);
		if (rc == 0)
			rc = text_loss_cond(cond, "__udr_x", base, NULL);
		/* from JSON, a number with a fraction or an exponent went through
		 * a double: 16 significant digits or more may not be its own */
		if (rc == 0 && jt && int_or_decimal(base))
			rc = udr__buf_puts(cond, ") OR (regexp_matches(\"__udr_x\", '[.eE]') AND length(ltrim(regexp_replace("
			                         "regexp_replace(\"__udr_x\", '[eE].*$', ''), '[^0-9]', '', 'g'), '0')) >= 16");
		return rc ? rc : udr__buf_puts(cond, "))), false)");
	}
	if (jt && strcmp(t, "BOOLEAN") == 0) {
		/* a JSON number other than 0 or 1 (5 was true) */
		rc = udr__sql_ident(cond, jt);
		return rc ? rc : put_col_expr(cond, " IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND @ NOT IN ('0', '1')", col);
	}
	if (int_or_decimal(t)) {
		/* with an exponent ("15e-1", "2.25e0"): the double's value against
		 * the cast's; without: more fractional digits than the scale (an
		 * integer's is 0), zeros at the end aside.  Plain integers take
		 * the first branch only: the check costs 0.05 s per 2M values */
		const char *comma = strchr(t, ',');
		rc = put_col_expr(cond, "(CASE WHEN NOT (contains(@, '.') OR contains(@, 'e') OR contains(@, 'E')) THEN "
		                        "false WHEN contains(@, 'e') OR contains(@, 'E') THEN TRY_CAST(@ AS DOUBLE) IS "
		                        "DISTINCT FROM TRY_CAST(TRY_CAST(@ AS ", col);
		if (rc == 0)
			rc = udr__buf_printf(cond, "%s) AS DOUBLE) ELSE ", t);
		if (rc == 0)
			rc = put_col_expr(cond, "length(rtrim(trim(@), '0')) - strpos(trim(@), '.') > ", col);
		if (rc == 0)
			rc = udr__buf_printf(cond, "%d END)", strncmp(t, "DECIMAL(", 8) == 0 && comma ? atoi(comma + 1) : 0);
		/* a JSON number with a fraction or an exponent was a double (its
		 * text here, the double's shortest): 16 significant digits or
		 * more, and the number's own digits may be gone (a JSON string's
		 * are not, nor a big integer's, kept as written) */
		if (rc == 0 && jt) {
			rc = udr__buf_puts(cond, " OR (");
			if (rc == 0)
				rc = udr__sql_ident(cond, jt);
			if (rc == 0)
				rc = put_col_expr(cond, " = 'DOUBLE' AND regexp_matches(@, '[.eE]') AND length(ltrim(regexp_replace("
				                        "regexp_replace(@, '[eE].*$', ''), '[^0-9]', '', 'g'), '0')) >= 16)", col);
		}
		return rc;
	}
	if (strncmp(t, "TIMESTAMP", 9) == 0 && strcmp(t, "TIMESTAMP WITH TIME ZONE") != 0) {
		/* a nonzero UTC offset (dropped), and digits of a second's
		 * fraction the type does not keep */
		int digits = strcmp(t, "TIMESTAMP_S") == 0 ? 0 : strcmp(t, "TIMESTAMP_MS") == 0 ? 3
		             : strcmp(t, "TIMESTAMP_NS") == 0 ? 9 : 6;
		rc = put_col_expr(cond, "(((contains(substr(@, 11), '+') OR contains(substr(@, 11), '-')) AND "
		                        "regexp_matches(trim(@), '[0-9]:[0-9]{2}(:[0-9]{2}(\\.[0-9]*)?)?\\s*"
		                        "[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2})?)?$') AND "
		                        "NOT regexp_matches(trim(@), '[+-]00(:?00(:?00)?)?$')) "
		                        "OR (contains(@, '.') AND regexp_matches(@, ':[0-9]{2}\\.[0-9]{", col);
		return rc ? rc : udr__buf_printf(cond, "%d}[0-9]*[1-9]')))", digits);
	}
	if (strcmp(t, "DATE") == 0)
		return put_col_expr(cond, "length(@) > 10 AND regexp_matches(trim(@), '^[^T ]+[T ][0-9]') AND "
		                          "NOT regexp_matches(trim(@), "
		                          "'[T ]0?0:00(:00(\\.0*)?)?(Z|[+-]00(:?00(:?00)?)?)?$')",
		                    col);
	return 0;
}

/* What a column's data is checked and read as (checked_select). */
enum {
	RD_PLAIN,   /* read as the table's type, unchecked */
	RD_TYPED,   /* a declared type: read as it, cast in SQL; a changed value refused */
	RD_TZ,      /* a declared instant into a wall time or back: refused */
	RD_TEXTNUM, /* CSV text into a number: read as text, checked, cast in SQL */
	RD_CHECKED, /* read as the table's type, checked first by a scan of its text: CSV text into
	               a TIMESTAMP or DATE, any JSON value into a number, TIMESTAMP or DATE */
	RD_BLOB,    /* a JSON string into a BLOB: read as text, cast in SQL (which decodes the \xNN
	               escapes a BLOB is written with; the JSON reader took the escapes as bytes) */
};

/* A BLOB inside a nested type ("BLOB[]", "STRUCT(b BLOB)"): the JSON
 * reader would take its text as the bytes, and no cast in SQL reaches it. */
static bool nested_blob(const char *t)
{
	if (strcmp(t, "BLOB") == 0)
		return false;
	for (const char *p = strstr(t, "BLOB"); p; p = strstr(p + 4, "BLOB"))
		if ((p == t || p[-1] == ' ' || p[-1] == '(') &&
		    (p[4] == '\0' || p[4] == '[' || p[4] == ',' || p[4] == ')' || p[4] == ' '))
			return true;
	return false;
}

/* "CASE WHEN col IS NOT NULL AND (" cond-of-kind ") THEN <message> END":
 * the message naming the column and the value, NULL when it fits */
#define DETECTED_TYPE "the type detected from the file"

static int loss_case(udr__buf *b, const char *col, int kind, const char *d, const char *t, const char *jt,
                     bool detected)
{
	int rc = put_col_expr(b, "CASE WHEN @ IS NOT NULL AND (", col);
	if (rc == 0 && kind == RD_TZ)
		/* an instant and a wall time: UDR does not guess a zone */
		rc = udr__buf_puts(b, "true");
	else if (rc == 0 && kind == RD_TYPED)
		rc = lossy_cast_cond(b, col, d, t);
	else if (rc == 0)
		rc = text_loss_cond(b, col, t, jt);
	if (rc == 0)
		rc = udr__buf_puts(b, ") THEN 'column ' || ");
	if (rc == 0)
		rc = udr__sql_literal(b, col);
	if (rc == 0)
		rc = put_col_expr(b, " || ': ' || CAST(@ AS VARCHAR)", col);
	/* the types as SQL literals: a field name may hold a quote
	 * (STRUCT("it's" VARCHAR) broke the statement) */
	if (rc == 0)
		rc = udr__buf_puts(b, " || ' (' || ");
	if (rc == 0)
		rc = udr__sql_literal(b, kind == RD_TYPED || kind == RD_TZ ? d : jt ? "JSON" : "text");
	if (rc == 0)
		rc = udr__buf_puts(b, " || ' in the data) does not fit ' || ");
	if (rc == 0)
		rc = udr__sql_literal(b, t);
	if (rc == 0)
		rc = udr__buf_printf(b, " || ', %s: %s' END",
		                     detected ? DETECTED_TYPE : "the table''s type",
		                     detected ? "it would change the value (nothing was imported; give the column''s "
		                                "type with --sql: SELECT ... FROM read_csv(''FILE'', all_varchar = "
		                                "true) with a cast)"
		                              : LOSS_TAIL);
	return rc;
}

/* "ELSE coalesce(TRY_CAST(text AS t), <error unless NULL>" (the caller
 * closes with ")"): a CSV value that is not a t at all is named, as the
 * reader did (a failed CAST in SQL would print the statement); one cast a
 * value (coalesce evaluates the error only where the cast gave NULL) */
static int not_a_number(udr__buf *b, const char *col, const char *t)
{
	int rc = put_col_expr(b, "ELSE coalesce(TRY_CAST(@ AS ", col);
	if (rc == 0)
		rc = udr__buf_printf(b, "%s), CASE WHEN ", t);
	if (rc == 0)
		rc = put_col_expr(b, "@ IS NOT NULL THEN error('column ' || ", col);
	if (rc == 0)
		rc = udr__sql_literal(b, col);
	if (rc == 0)
		rc = put_col_expr(b, " || ': ''' || @ || ''' is not a valid ", col);
	if (rc == 0)
		rc = udr__buf_printf(b, "%s (nothing was imported)') END::%s", t, t);
	return rc;
}

/*
 * New data into a table that exists (append, --key, a replacement with its
 * columns) is read with the table's types, and a reader's cast changes a
 * value with no error: the CSV reader (and CAST) reads "5.7" into BIGINT as
 * 6 and "2.25" into DECIMAL(2,1) as 2.3, drops a UTC offset from a
 * TIMESTAMP, a time of day from a DATE, and a second's digits beyond the
 * type's; a JSON number with a fraction is parsed as a double first (an
 * 18-digit DECIMAL has lost digits in it); a declared TIMESTAMP WITH TIME
 * ZONE would lose its offset in TIMESTAMP.  So each column is checked as
 * what its data is (RD_*): CSV numbers and declared types in the import's
 * own scan (error() stops it before anything is committed); CSV text into
 * a TIMESTAMP or DATE, and JSON into a number, TIMESTAMP or DATE, by one
 * scan of the values as text first, the import then reading them as before
 * (a JSON column's type must not come from DuckDB's detection, which looks
 * at the first rows only: 30,000 integers then 2.25 were read as BIGINT).
 * 1: read with the table's types, nothing to check in the scan (*out
 * untouched); 0: *out is the SELECT to import.
 */
static int checked_select(udr__buf *out, udr_query *q, int format, const char *const *files, size_t nfiles,
                          bool header, const schema *old, const udr_import_options *opts, bool detected)
{
	schema src = {0}, chk_types = {0};
	udr__buf rd = {0}, crd = {0}, chk = {0};
	udr_result *r = NULL;
	bool json = format == UDR_FORMAT_JSON || format == UDR_FORMAT_NDJSON, in_scan = false, text_scan = false;
	int *kind = NULL, rc = 0;
	if (format == UDR_FORMAT_PARQUET)
		return 1;
	if (!(src.names = calloc(old->n, sizeof(char *))) || !(src.types = calloc(old->n, sizeof(char *))) ||
	    !(chk_types.types = calloc(old->n, sizeof(char *))) || !(kind = calloc(old->n, sizeof(int)))) {
		rc = udr__error_oom();
		goto out;
	}
	src.n = chk_types.n = old->n;
	chk_types.names = src.names;
	for (size_t i = 0; i < old->n; i++) {
		const char *t = old->types[i], *d = NULL;
		char base[64];
		for (size_t k = 0; json && k < opts->ntypes; k++)
			if (strcmp(opts->types[2 * k], old->names[i]) == 0)
				d = opts->types[2 * k + 1]; /* the caller's (Python's) types */
		/* a nested type declared (Python's dicts are STRUCTs): a new
		 * table's; the rows go into this one's type as JSON does (a
		 * dict into a MAP column: no cast from STRUCT to MAP) */
		if (d && (strstr(d, "STRUCT(") || strstr(d, "MAP(") || strchr(d, '[')))
			d = NULL;
		if (strcmp(t, "VARCHAR") == 0 || (d && strcmp(d, t) == 0))
			kind[i] = RD_PLAIN;
		else if (d && strcmp(d, "VARCHAR") != 0)
			kind[i] = (strcmp(d, "TIMESTAMP WITH TIME ZONE") == 0) != (strcmp(t, "TIMESTAMP WITH TIME ZONE") == 0)
			              ? RD_TZ
			              : RD_TYPED;
		else if (!json && (int_or_decimal(t) || (list_of(base, sizeof(base), t) && int_or_decimal(base))))
			kind[i] = RD_TEXTNUM;
		else if (int_or_decimal(t) || wall_time(t) || (json && strcmp(t, "BOOLEAN") == 0) ||
		         (list_of(base, sizeof(base), t) && (wall_time(base) || (json && int_or_decimal(base) &&
		                                                                 strncmp(base, "DECIMAL(", 8) != 0))))
			kind[i] = RD_CHECKED;
		else if (json && strcmp(t, "BLOB") == 0)
			kind[i] = RD_BLOB;
		else if (!nested_checkable(t) && (rc = nested_ints(NULL, t)) != 0)
			kind[i] = RD_CHECKED; /* rc < 0: out of memory, below */
		else if (json && !d && strstr(t, "STRUCT(") && !nested_checkable(t) && !nested_blob(t))
			kind[i] = RD_CHECKED; /* keys the STRUCT does not have */
		else
			kind[i] = RD_PLAIN;
		if (rc < 0)
			goto out;
		rc = 0;
		if (kind[i] == RD_TYPED) {
			/* a declared type with no cast to the column's and back
			 * (datetime into TIME): DuckDB's binder error on the
			 * check's own SQL was the message */
			udr__buf p = {0};
			int prc = udr__buf_printf(&p,
			                          "SELECT CAST(TRY_CAST(x AS %s) AS %s) FROM (SELECT coalesce(TRY_CAST("
			                          "'2000-01-01 00:00:00' AS %s), TRY_CAST('1' AS %s), TRY_CAST('true' AS "
			                          "%s), TRY_CAST('a' AS %s)) AS x)",
			                          t, d, d, d, d, d);
			if (prc == 0 && (prc = udr__q_exec(q, p.ptr)) < 0 && prc != UDR_ENOMEM) {
				char qc[UDR_TABLE_NAME_MAX * 4 + 8];
				udr_error_clear();
				udr__quote(qc, sizeof(qc), old->names[i]);
				prc = udr__error_set(UDR_EINVAL,
				                     "column '%s' is %s: the data's %s values cannot be stored in it "
				                     "(nothing was imported)",
				                     qc, t, d);
			}
			udr__buf_free(&p);
			if ((rc = prc) < 0)
				goto out;
		}
		if (kind[i] == RD_PLAIN && !d && nested_checkable(t)) {
			char qc[UDR_TABLE_NAME_MAX * 4 + 8];
			udr__quote(qc, sizeof(qc), old->names[i]);
			rc = udr__error_set(UDR_EINVAL,
			                    "column '%s' is %s: numbers and times inside it cannot be checked when read "
			                    "from %s (a reader's cast may change them; nothing was imported; import "
			                    "Parquet%s)",
			                    qc, t, json ? "JSON" : "CSV", json ? ", or CSV for a list" : "");
			goto out;
		}
		if (json && kind[i] == RD_PLAIN && nested_blob(t)) {
			char qc[UDR_TABLE_NAME_MAX * 4 + 8];
			udr__quote(qc, sizeof(qc), old->names[i]);
			rc = udr__error_set(UDR_EINVAL,
			                    "column '%s' is %s: a BLOB inside a list or struct cannot be read back "
			                    "exactly from JSON (nothing was imported; import Parquet)",
			                    qc, t);
			goto out;
		}
		src.names[i] = old->names[i];
		src.types[i] = (char *)(kind[i] == RD_TYPED || kind[i] == RD_TZ ? d
		                        : kind[i] == RD_TEXTNUM || kind[i] == RD_BLOB ? "VARCHAR"
		                                                                       : t);
		chk_types.types[i] = kind[i] != RD_CHECKED ? old->types[i] : json ? "JSON" : "VARCHAR";
		in_scan |= kind[i] == RD_TYPED || kind[i] == RD_TZ || kind[i] == RD_TEXTNUM || kind[i] == RD_BLOB;
		text_scan |= kind[i] == RD_CHECKED;
	}
	if (text_scan) {
		/* the first value whose reading would change it, in one scan of
		 * the values as text */
		udr__buf proj = {0};
		char jt[32];
		rc = udr__buf_puts(&chk, "SELECT * FROM (SELECT coalesce(");
		for (size_t i = 0, n = 0; rc == 0 && i < old->n; i++) {
			if (kind[i] != RD_CHECKED)
				continue;
			snprintf(jt, sizeof(jt), "__udr_jt%zu", i);
			if (n++)
				rc = udr__buf_puts(&chk, ", ");
			if (rc == 0)
				rc = loss_case(&chk, old->names[i], kind[i], NULL, old->types[i], json ? jt : NULL, detected);
			/* JSON read as JSON: a string's text unquoted, a number's
			 * as DuckDB parsed it, and which it was */
			if (rc == 0)
				rc = udr__buf_puts(&proj, proj.len ? ", " : "SELECT ");
			if (rc == 0 && json) {
				rc = put_col_expr(&proj, "CASE json_type(@) WHEN 'NULL' THEN NULL WHEN 'VARCHAR' THEN @->>'$' "
				                         "ELSE @::VARCHAR END AS @, json_type(@) AS ", old->names[i]);
				if (rc == 0)
					rc = udr__sql_ident(&proj, jt);
			} else if (rc == 0) {
				rc = udr__sql_ident(&proj, old->names[i]);
			}
		}
		if (rc == 0)
			rc = reader_sql(&crd, format, files, nfiles, &chk_types, header);
		if (rc == 0)
			rc = udr__buf_printf(&chk, ") AS why FROM (%s FROM (%s))) WHERE why IS NOT NULL LIMIT 1", proj.ptr,
			                     crd.ptr);
		udr__buf_free(&proj);
		if (rc == 0)
			rc = udr__q_run(&r, q, chk.ptr, NULL, 0, UDR__RUN_ANY);
		if (rc == 0 && udr_result_row_count(r) > 0) {
			char *why = NULL;
			udr_result_text(&why, NULL, r, 0, 0);
			rc = udr__error_set(UDR_EINVAL, "%s", why ? why : "a value does not fit its column");
			udr_free(why);
		}
	}
	if (rc == 0 && !in_scan) {
		rc = 1;
		goto out;
	}
	/* the import: a column whose data is of another type (or text into a
	 * number) cast in SQL, error() at the first value the cast changes */
	if (rc == 0)
		rc = reader_sql(&rd, format, files, nfiles, &src, header);
	for (size_t i = 0; rc == 0 && i < old->n; i++) {
		rc = udr__buf_puts(out, i ? ", " : "SELECT ");
		if (rc == 0 && kind[i] == RD_BLOB) {
			/* a BLOB's text (\xNN escapes, what an export writes) as its
			 * bytes; other text (non-ASCII, a lone backslash), which no
			 * export writes, as its UTF-8 bytes, as before */
			rc = put_col_expr(out, "coalesce(TRY_CAST(@ AS BLOB), encode(@)) AS ", old->names[i]);
		}
		if (rc == 0 && (kind[i] == RD_TYPED || kind[i] == RD_TZ || kind[i] == RD_TEXTNUM)) {
			rc = udr__buf_puts(out, "CASE WHEN (");
			if (rc == 0)
				rc = loss_case(out, old->names[i], kind[i], src.types[i], old->types[i], NULL, detected);
			if (rc == 0)
				rc = udr__buf_puts(out, ") IS NOT NULL THEN error(");
			if (rc == 0)
				rc = loss_case(out, old->names[i], kind[i], src.types[i], old->types[i], NULL, detected);
			if (rc == 0)
				rc = udr__buf_puts(out, ") ");
			if (rc == 0 && kind[i] == RD_TEXTNUM) {
				rc = not_a_number(out, old->names[i], old->types[i]);
				if (rc == 0)
					rc = udr__buf_puts(out, ") END AS ");
			} else if (rc == 0) {
				rc = put_col_expr(out, "ELSE CAST(@ AS ", old->names[i]);
				if (rc == 0)
					rc = udr__buf_printf(out, "%s) END AS ", old->types[i]);
			}
		}
		if (rc == 0)
			rc = udr__sql_ident(out, old->names[i]);
	}
	if (rc == 0)
		rc = udr__buf_printf(out, " FROM (%s)", rd.ptr);
out:
	udr_result_free(r);
	free(kind);
	free(src.names);
	free(src.types);
	free(chk_types.types);
	udr__buf_free(&rd);
	udr__buf_free(&crd);
	udr__buf_free(&chk);
	return rc;
}

/* *out: the first line of every file, read as data, holds exactly the
 * names of old's columns (a header DuckDB's sniffer did not see; a file
 * without it would lose its first row to header = true). */
static int first_row_is(bool *out, udr_query *q, const char *const *files, size_t nfiles, const schema *old)
{
	*out = nfiles > 0;
	for (size_t f = 0; f < nfiles && *out; f++) {
		udr__buf b = {0};
		udr_result *r = NULL;
		bool same = false;
		int rc = udr__buf_puts(&b, "SELECT * FROM read_csv(");
		if (rc == 0)
			rc = udr__sql_read_path(&b, files[f]);
		if (rc == 0)
			rc = udr__buf_puts(&b, ", header = false, all_varchar = true, skip = 0) LIMIT 1");
		if (rc == 0)
			rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
		udr__buf_free(&b);
		if (rc < 0) {
			udr_error_clear(); /* not readable so: not a header */
			*out = false;
			break;
		}
		if (udr_result_row_count(r) == 1 && udr_result_column_count(r) == old->n) {
			same = true;
			for (size_t i = 0; i < old->n && same; i++) {
				udr_value v;
				same = udr_result_get(&v, r, 0, i) == 0 && v.type == UDR_TYPE_TEXT &&
				       v.len == strlen(old->names[i]) && memcmp(v.str, old->names[i], v.len) == 0;
			}
		}
		udr_result_free(r);
		*out = same;
	}
	return 0;
}

static int import_files_unheld(uint64_t *version, udr_query *q, const char *table, const char *const *files,
                     size_t nfiles, const udr_import_options *opts)
{
	udr_import_options o;
	udr__buf b = {0};
	schema old = {0}, forced = {0}, detected = {0};
	colinfo given;
	udr_version *prev = NULL;
	import_src src;
	staged_inputs staged = {.lockfd = -1};
	const char *const *shown = files; /* the user's names of the files */
	bool keyed, header_only = false, checked_new = false, full_sample = false;
	int rc, format;
	if ((rc = import_opts(&o, opts)) < 0)
		return rc;
	opts = &o;
	if ((rc = check_import_args(q, table, opts)) < 0)
		return rc;
	keyed = opts->nkeys > 0;
	if (!files || nfiles == 0)
		return udr__error_set(UDR_EINVAL, "no file to import into table %s", table);
	for (size_t i = 0; i < nfiles; i++) {
		struct stat st;
		char qp[300];
		if (!files[i])
			return udr__error_set(UDR_EINVAL, "file %zu is NULL", i + 1);
		udr__quote(qp, sizeof(qp), files[i]);
		if (stat(files[i], &st) < 0)
			return udr__error_os(errno, "cannot import '%s'", qp);
		if (S_ISDIR(st.st_mode))
			return udr__error_set(UDR_EINVAL, "cannot import '%s': it is a directory", qp);
	}
	if ((format = resolve_format(opts->format, files[0])) < 0)
		return format;
	/* one reader for all the files: their formats must agree */
	for (size_t i = 1; opts->format == UDR_FORMAT_AUTO && i < nfiles; i++) {
		int f = resolve_format(UDR_FORMAT_AUTO, files[i]);
		char q0[200], qi[200];
		if (f < 0)
			return f;
		if (f == format)
			continue;
		udr__quote(q0, sizeof(q0), files[0]);
		udr__quote(qi, sizeof(qi), files[i]);
		return udr__error_set(UDR_EINVAL,
		                      "all input files must have one format: '%s' is %s, '%s' is %s (import "
		                      "them one at a time, the next ones with --append)",
		                      q0, format_name(format), qi, format_name(f));
	}
	/* from here on, files are read from where they can be read again */
	if ((rc = stage_inputs(&staged, q, files, nfiles)) < 0) {
		staged_free(&staged); /* a failed copy is named as it is */
		goto out;
	}
	files = staged.paths;
	for (size_t i = 0; i < nfiles; i++)
		if ((rc = check_not_empty(q, files[i], shown[i], format)) < 0)
			goto out;
again:
	if (format == UDR_FORMAT_CSV) {
		header_only = true;
		for (size_t i = 0; i < nfiles && header_only; i++)
			header_only = csv_header_only(files[i]);
		if ((rc = reader_sql(&b, format, files, nfiles, NULL, header_only)) < 0)
			goto out;
		/* every row read to detect the types (a later value did not fit) */
		if (full_sample && b.len && b.ptr[b.len - 1] == ')') {
			b.len--;
			if ((rc = udr__buf_puts(&b, ", sample_size = -1)")) < 0)
				goto out;
		}
		rc = check_ragged(&detected, q, b.ptr, files, shown, nfiles);
		udr__buf_free(&b);
		if (rc < 0)
			goto out;
	}
	if (opts->mode == UDR_IMPORT_APPEND || keyed || header_only) {
		/* CSV and JSON types are guessed from the data: read new data with
		 * the table's types instead, after checking the column names.  A
		 * header without rows replacing a table (its types cannot be
		 * guessed: VARCHAR) keeps the types when the names are the same. */
		bool replace = opts->mode != UDR_IMPORT_APPEND && !keyed;
		uint64_t next;
		if ((rc = previous_version(&prev, &next, q, table, import_branch(opts))) < 0)
			goto out;
		if (prev && format != UDR_FORMAT_PARQUET) {
			if ((rc = version_schema(&old, q, prev)) < 0)
				goto out;
			/* the columns detected (CSV: already, by check_ragged) */
			if (!detected.n && (rc = reader_sql(&b, format, files, nfiles, NULL, header_only)) == 0) {
				rc = udr__q_describe(&detected.names, &detected.types, &detected.n, q, b.ptr);
				udr__buf_free(&b);
			}
			if (rc == 0)
				rc = schema_match(&old, &detected, table, false);
			/* a header the sniffer took for data: the table's column names
			 * read as values ("2024", "false") made columns column0, ... */
			if (rc == UDR_EINVAL && format == UDR_FORMAT_CSV && !header_only) {
				bool names = false;
				char *msg = strdup(udr_error_last()->message);
				if (first_row_is(&names, q, files, nfiles, &old) == 0 && names) {
					schema_free(&detected);
					header_only = true; /* read with header = true from here on */
					rc = reader_sql(&b, format, files, nfiles, NULL, true);
					if (rc == 0)
						rc = check_ragged(&detected, q, b.ptr, files, shown, nfiles);
					udr__buf_free(&b);
					if (rc == 0)
						rc = schema_match(&old, &detected, table, false);
				} else {
					rc = udr__error_set(UDR_EINVAL, "%s", msg ? msg : "schema mismatch");
				}
				free(msg);
			}
			if (rc < 0 && replace && udr_error_last()->code == UDR_EINVAL) {
				udr_error_clear(); /* other columns: a new schema */
				schema_free(&old);
				rc = 0;
			}
			if (rc < 0)
				goto out;
		}
	}
	if (!old.n && opts->ntypes && format != UDR_FORMAT_PARQUET &&
	    (rc = forced_types(&forced, q, format, files, nfiles, header_only, opts)) < 0)
		goto out;
	if (old.n && (rc = checked_select(&b, q, format, files, nfiles, header_only, &old, opts, false)) < 0)
		goto out;
	/* a new table from CSV: the types were detected from the first rows,
	 * and the reader casts the later ones (2.25 in a column detected as
	 * BIGINT was 2, nanoseconds in a TIMESTAMP were dropped): checked
	 * the same way, and on such a value detected again from every row */
	checked_new = false;
	if (!old.n && !forced.n && format == UDR_FORMAT_CSV && detected.n) {
		if ((rc = checked_select(&b, q, format, files, nfiles, header_only, &detected, opts, true)) < 0)
			goto retry;
		checked_new = rc == 0;
		rc = checked_new ? 0 : 1;
	}
	if ((old.n || checked_new ? rc == 1 : true) &&
	    (rc = reader_sql(&b, format, files, nfiles,
	                     old.n      ? &old
	                     : forced.n ? &forced
	                     /* detected again from every row: read as such
	                      * (not sampled again, which gave BIGINT back) */
	                     : full_sample && detected.n ? &detected
	                                                 : NULL,
	                     header_only)) < 0)
		goto out;
	src.select_sql = b.ptr;
	src.params = NULL;
	src.nparams = 0;
	src.source = format == UDR_FORMAT_NDJSON ? "json" : format_name(format);
	src.kind = UDR__RUN_ANY;
	/* the columns' types, where known without another bind: the table's,
	 * --types, or a CSV's as detected (check_ragged): their floats are
	 * checked in the pass that writes them (no second read of the file) */
	{
		const schema *k = old.n ? &old : forced.n ? &forced : &detected;
		given.names = k->names;
		given.types = k->types;
		given.n = k->n;
	}
	src.cols = given.n ? &given : NULL;
	/* a full copy matched on keys: only the rows that differ are stored
	 * (write.c); a table that does not exist yet is imported whole */
	if (keyed && prev && (rc = udr__w_import_keyed(version, q, table, b.ptr, opts->keys, opts->nkeys,
	                                               opts->message, import_branch(opts))) != 1)
		goto out;
	/* a new table records the key (udr.key) for later keyed imports and
	 * merges: it must name columns of the copy, unique in it */
	if (keyed && (rc = check_new_key(q, table, b.ptr, opts->keys, opts->nkeys)) < 0)
		goto out;
	rc = do_import(version, q, table, &src, opts, NULL);
retry:
	if (rc == UDR_EINVAL && !full_sample && format == UDR_FORMAT_CSV && !old.n && !forced.n &&
	    strstr(udr_error_last()->message, DETECTED_TYPE)) {
		udr_error_clear();
		full_sample = true;
		udr__buf_free(&b);
		schema_free(&detected);
		udr_version_free(prev);
		prev = NULL;
		goto again;
	}
out:
	/* DuckDB's messages name the copies: the user's names instead (the
	 * last first: input-1 is the start of input-10) */
	for (size_t i = nfiles; rc < 0 && staged.copies && i-- > 0;)
		if (staged.copies[i])
			rc = name_output(rc, staged.copies[i], shown[i]);
	staged_free(&staged);
	udr__buf_free(&b);
	schema_free(&old);
	schema_free(&forced);
	schema_free(&detected);
	udr_version_free(prev);
	return rc;
}

/* the puts and the commit naming them, with no gc in between (udr/gc.h) */
int udr_query_import(uint64_t *version, udr_query *q, const char *table, const char *const *files,
                     size_t nfiles, const udr_import_options *opts)
{
	udr_gc_hold *hold = NULL;
	int rc;
	if (udr__q_refuse_read_only(q, "udr_query_import") < 0)
		return UDR_EINVAL;
	if ((rc = udr_gc_hold_begin(&hold, q ? q->store : NULL)) < 0)
		return rc;
	rc = import_files_unheld(version, q, table, files, nfiles, opts);
	udr_gc_hold_end(hold);
	return rc;
}

static int import_sql_unheld(uint64_t *version, udr_query *q, const char *table, const char *sql,
                         const udr_value *params, size_t nparams, const udr_import_options *opts)
{
	udr_import_options o;
	char *rewritten = NULL;
	import_src src;
	int rc;
	if ((rc = import_opts(&o, opts)) < 0)
		return rc;
	opts = &o;
	if ((rc = check_import_args(q, table, opts)) < 0)
		return rc;
	if (!sql)
		return udr__error_set(UDR_EINVAL, "no query to import into table %s", table);
	if (opts->version >= 2 && opts->nkeys)
		return udr__error_set(UDR_EINVAL, "import keys apply to files (a full copy of the table), not to a query");
	if ((rc = udr__q_rewrite(&rewritten, q, sql)) < 0)
		return rc;
	if ((rc = user_query(rewritten, q)) < 0) {
		free(rewritten);
		return rc;
	}
	src.select_sql = rewritten;
	src.params = params;
	src.nparams = nparams;
	src.source = "sql";
	src.kind = UDR__RUN_COPY;
	src.cols = NULL;
	rc = do_import(version, q, table, &src, opts, NULL);
	free(rewritten);
	return rc;
}

/* the puts and the commit naming them, with no gc in between (udr/gc.h) */
int udr_query_import_sql(uint64_t *version, udr_query *q, const char *table, const char *sql,
                         const udr_value *params, size_t nparams, const udr_import_options *opts)
{
	udr_gc_hold *hold = NULL;
	int rc;
	if (udr__q_refuse_read_only(q, "udr_query_import_sql") < 0)
		return UDR_EINVAL;
	if ((rc = udr_gc_hold_begin(&hold, q ? q->store : NULL)) < 0)
		return rc;
	rc = import_sql_unheld(version, q, table, sql, params, nparams, opts);
	udr_gc_hold_end(hold);
	return rc;
}

/* ---- writing files ------------------------------------------------------------------------ */

/* COPY (select_sql) TO path atomically: temp name in the same directory. */
/* An error about the temp file tmp is reported with the user's path. */
static int name_output(int rc, const char *tmp, const char *path)
{
	const char *msg = udr_error_last()->message, *at;
	udr__buf b = {0};
	size_t tl = strlen(tmp);
	if (!msg || !(at = strstr(msg, tmp)))
		return rc;
	for (; at; msg = at + tl, at = strstr(msg, tmp))
		if (udr__buf_put(&b, msg, (size_t)(at - msg)) < 0 || udr__buf_puts(&b, path) < 0)
			break;
	if (udr__buf_puts(&b, msg) == 0 && b.ptr)
		rc = udr__error_set(rc, "%s", b.ptr);
	udr__buf_free(&b);
	return rc;
}

static int copy_to_file(uint64_t *rows, udr_query *q, const char *select_sql, const udr_value *params,
                        size_t nparams, const char *path, int format, int kind)
{
	char *tmp = NULL, suffix[96], opts[128];
	udr_result *r = NULL;
	size_t pl;
	int64_t n;
	int rc;
	if (!path || !*path)
		return udr__error_set(UDR_EINVAL, "no output path");
	if ((format = resolve_format(format, path)) < 0)
		return format;
	/* DuckDB takes the compression from the name it writes, the temp
	 * name here: out.csv.gz was written as plain text */
	pl = strlen(path);
	snprintf(opts, sizeof(opts), "%s%s", copy_options(format),
	         format == UDR_FORMAT_PARQUET ? ""
	         : ends_with_ci(path, pl, ".gz") ? ", COMPRESSION gzip"
	         : ends_with_ci(path, pl, ".zst") || ends_with_ci(path, pl, ".zstd") ? ", COMPRESSION zstd"
	                                                                             : "");
	if ((rc = udr__q_check_output(q, path)) < 0)
		return rc;
	snprintf(suffix, sizeof(suffix), ".udr-tmp-%ld-%lu", (long)getpid(), ++q->counter);
	if (!(tmp = malloc(strlen(path) + strlen(suffix) + 1)))
		return udr__error_oom();
	strcpy(tmp, path);
	strcat(tmp, suffix);
	/* COPY TO takes its path literally; Parquet as parts are written
	 * (no value merged by the writer's dictionaries) */
	if (format == UDR_FORMAT_PARQUET) {
		typed_sql ts = {NULL, NULL, NULL, 0, false};
		copy_memo memo = {NULL, 0, false, false};
		rc = lossless_select(&ts, q, select_sql, params, nparams, kind, NULL);
		if (rc == 0)
			rc = copy_one(&r, q, select_sql, params, nparams, kind, tmp, copy_options(format), &ts, &memo);
		typed_sql_free(&ts);
		memo_free(&memo);
	} else
		rc = copy_raw(&r, q, select_sql, params, nparams, kind, tmp, opts, false);
	if (rc == 0) {
		n = result_count(r);
		if (rename(tmp, path) < 0)
			rc = udr__error_io(errno, "cannot rename %s to %s", tmp, path);
		else if (rows)
			*rows = n < 0 ? 0 : (uint64_t)n;
	}
	if (rc < 0) {
		unlink(tmp);
		rc = name_output(rc, tmp, path);
	}
	udr_result_free(r);
	free(tmp);
	return rc;
}

int udr_query_sql_to_file(uint64_t *rows, udr_query *q, const char *sql, const udr_value *params,
                          size_t nparams, const char *path, int format)
{
	char *rewritten = NULL;
	int rc;
	if (!q || !sql)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_sql_to_file");
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	if ((rc = udr__q_rewrite(&rewritten, q, sql)) < 0)
		return rc;
	if ((rc = user_query(rewritten, q)) == 0)
		rc = copy_to_file(rows, q, rewritten, params, nparams, path, format, UDR__RUN_COPY);
	free(rewritten);
	return rc;
}

int udr_query_export(uint64_t *rows, udr_query *q, const char *table, const char *ref, const char *path,
                     int format)
{
	udr_version *v = NULL;
	const char *name;
	udr__buf b = {0};
	int rc;
	if (!q || !table)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_export");
	if ((rc = udr__q_resolve(&v, q, table, ref)) < 0)
		return rc;
	if ((rc = udr__q_view(&name, q, v)) == 0) {
		rc = udr__buf_puts(&b, "SELECT * FROM ");
		if (rc == 0)
			rc = udr__sql_ident(&b, name);
		if (rc == 0)
			rc = copy_to_file(rows, q, b.ptr, NULL, 0, path, format, UDR__RUN_ANY);
	}
	udr__buf_free(&b);
	udr_version_free(v);
	return rc;
}

/* ---- row diffs ------------------------------------------------------------------------------- */

static ssize_t schema_index(const schema *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

/* "old.C" / "new.C" */
static int prefixed_ident(udr__buf *b, const char *prefix, const char *name)
{
	udr__buf t = {0};
	int rc = udr__buf_printf(&t, "%s.%s", prefix, name);
	if (rc == 0)
		rc = udr__sql_ident(b, t.ptr);
	udr__buf_free(&t);
	return rc;
}

/* A name for a flag column that no column of s1 or s2 has (DuckDB's
 * identifiers are case-insensitive): base, then base_, base__, ... */
static int flag_name(char *out, size_t cap, const char *base, const schema *s1, const schema *s2)
{
	size_t n = strlen(base);
	if (n + 1 > cap)
		return udr__error_set(UDR_ERROR, "diff-rows: no name for a flag column");
	memcpy(out, base, n + 1);
	for (;;) {
		bool used = false;
		for (size_t i = 0; i < s1->n && !used; i++)
			used = strcasecmp(s1->names[i], out) == 0;
		for (size_t i = 0; i < s2->n && !used; i++)
			used = strcasecmp(s2->names[i], out) == 0;
		if (!used)
			return 0;
		if (n + 2 > cap)
			return udr__error_set(UDR_ERROR, "diff-rows: no name for a flag column");
		out[n++] = '_';
		out[n] = '\0';
	}
}

/* Fails with UDR_EINVAL when a key value occurs twice in view. */
static int check_unique(udr_query *q, const char *view, uint64_t version, const char *const *keys,
                        size_t nkeys, const char *table)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	int rc = udr__buf_puts(&b, "SELECT ");
	if (rc == 0)
		rc = udr__sql_idents(&b, NULL, keys, nkeys);
	if (rc == 0)
		rc = udr__buf_puts(&b, " FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, view);
	if (rc == 0)
		rc = udr__buf_puts(&b, " GROUP BY ALL HAVING count(*) > 1 LIMIT 1");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	udr__buf_free(&b);
	if (rc == 0 && udr_result_row_count(r) > 0) {
		char *txt = NULL;
		udr_result_text(&txt, NULL, r, 0, 0);
		rc = udr__error_set(UDR_EINVAL,
		                    "the key is not unique in table %s version %" PRIu64 " (e.g. %s occurs more "
		                    "than once): diff-rows needs a unique key",
		                    table, version, txt ? txt : "NULL");
		udr_free(txt);
	}
	udr_result_free(r);
	return rc;
}

int udr_query_diff_rows(udr_result **out, udr_query *q, const char *table, const char *ref1,
                        const char *ref2, const char *const *keys, size_t nkeys)
{
	udr_version *v1 = NULL, *v2 = NULL;
	const char *n1, *n2;
	schema s1 = {0}, s2 = {0};
	udr__buf b = {0};
	char **cols = NULL;
	char fo[80], fn[80];
	size_t ncols = 0;
	int rc;
	if (!out || !q || !table || !keys || nkeys == 0)
		return udr__error_set(UDR_EINVAL, "diff-rows needs a table, two versions and at least one key column");
	*out = NULL;
	for (size_t k = 0; k < nkeys; k++)
		if (!keys[k] || !*keys[k])
			return udr__error_set(UDR_EINVAL, "empty key column name");
	if ((rc = udr__q_resolve(&v1, q, table, ref1)) < 0 || (rc = udr__q_resolve(&v2, q, table, ref2)) < 0)
		goto out;
	if ((rc = version_schema(&s1, q, v1)) < 0 || (rc = version_schema(&s2, q, v2)) < 0)
		goto out;
	if ((rc = udr__q_view(&n1, q, v1)) < 0 || (rc = udr__q_view(&n2, q, v2)) < 0)
		goto out;
	/* view names are owned by q and may move when q->views grows: re-find */
	{
		char a[UDR_TABLE_NAME_MAX + 32], c[UDR_TABLE_NAME_MAX + 32];
		snprintf(a, sizeof(a), "%s@%" PRIu64, v1->table, v1->version);
		snprintf(c, sizeof(c), "%s@%" PRIu64, v2->table, v2->version);
		for (size_t k = 0; k < nkeys; k++) {
			char qk[200];
			udr__quote(qk, sizeof(qk), keys[k]);
			if (schema_index(&s1, keys[k]) < 0 || schema_index(&s2, keys[k]) < 0) {
				rc = udr__error_set(UDR_EINVAL, "key column '%s' is not in table %s version %" PRIu64,
				                    qk, table, schema_index(&s1, keys[k]) < 0 ? v1->version : v2->version);
				goto out;
			}
			for (size_t j = 0; j < k; j++)
				if (strcmp(keys[j], keys[k]) == 0) {
					rc = udr__error_set(UDR_EINVAL, "key column '%s' is given twice", qk);
					goto out;
				}
		}
		if ((rc = check_unique(q, a, v1->version, keys, nkeys, table)) < 0 ||
		    (rc = check_unique(q, c, v2->version, keys, nkeys, table)) < 0)
			goto out;
		/* the other columns: old's order, then the ones only new has */
		if (!(cols = calloc(s1.n + s2.n + 1, sizeof(*cols)))) {
			rc = udr__error_oom();
			goto out;
		}
		for (size_t i = 0; i < s1.n + s2.n; i++) {
			const char *nm = i < s1.n ? s1.names[i] : s2.names[i - s1.n];
			bool is_key = false, seen = false;
			for (size_t k = 0; k < nkeys; k++)
				is_key = is_key || strcmp(keys[k], nm) == 0;
			for (size_t j = 0; j < ncols; j++)
				seen = seen || strcmp(cols[j], nm) == 0;
			if (!is_key && !seen)
				cols[ncols++] = (char *)nm;
		}
		/* flags of the row on each side, named as no column is (a column
		 * "__udr_old" holding NULLs made its rows "added") */
		rc = flag_name(fo, sizeof(fo), "__udr_old", &s1, &s2);
		if (rc == 0)
			rc = flag_name(fn, sizeof(fn), "__udr_new", &s1, &s2);
		/* the kind of change: "change", "_change", ... whichever no key
		 * column is named (a key named change gave two columns "change") */
		{
			size_t under = 0;
			for (size_t k = 0; k < nkeys; k++)
				for (size_t u = 0; u <= nkeys; u++) {
					size_t len = strlen(keys[k]);
					if (len == u + 6 && strspn(keys[k], "_") >= u && strcasecmp(keys[k] + u, "change") == 0 &&
					    u >= under)
						under = u + 1;
				}
			if (rc == 0)
				rc = udr__buf_printf(&b, "SELECT CASE WHEN o.\"%s\" IS NULL THEN 'added' "
				                         "WHEN n.\"%s\" IS NULL THEN 'removed' ELSE 'changed' END AS \"%.*schange\"",
				                     fo, fn, (int)under, "________________________________");
		}
		for (size_t k = 0; rc == 0 && k < nkeys; k++) {
			rc = udr__buf_puts(&b, ", COALESCE(o.");
			if (rc == 0)
				rc = udr__sql_ident(&b, keys[k]);
			if (rc == 0)
				rc = udr__buf_puts(&b, ", n.");
			if (rc == 0)
				rc = udr__sql_ident(&b, keys[k]);
			if (rc == 0)
				rc = udr__buf_puts(&b, ") AS ");
			if (rc == 0)
				rc = udr__sql_ident(&b, keys[k]);
		}
		for (size_t i = 0; rc == 0 && i < ncols; i++) {
			bool in1 = schema_index(&s1, cols[i]) >= 0, in2 = schema_index(&s2, cols[i]) >= 0;
			rc = udr__buf_puts(&b, in1 ? ", o." : ", NULL");
			if (rc == 0 && in1)
				rc = udr__sql_ident(&b, cols[i]);
			if (rc == 0)
				rc = udr__buf_puts(&b, " AS ");
			if (rc == 0)
				rc = prefixed_ident(&b, "old", cols[i]);
			if (rc == 0)
				rc = udr__buf_puts(&b, in2 ? ", n." : ", NULL");
			if (rc == 0 && in2)
				rc = udr__sql_ident(&b, cols[i]);
			if (rc == 0)
				rc = udr__buf_puts(&b, " AS ");
			if (rc == 0)
				rc = prefixed_ident(&b, "new", cols[i]);
		}
		if (rc == 0)
			rc = udr__buf_printf(&b, " FROM (SELECT *, true AS \"%s\" FROM ", fo);
		if (rc == 0)
			rc = udr__sql_ident(&b, a);
		if (rc == 0)
			rc = udr__buf_printf(&b, ") o FULL OUTER JOIN (SELECT *, true AS \"%s\" FROM ", fn);
		if (rc == 0)
			rc = udr__sql_ident(&b, c);
		if (rc == 0)
			rc = udr__buf_puts(&b, ") n ON ");
		for (size_t k = 0; rc == 0 && k < nkeys; k++) {
			rc = udr__buf_puts(&b, k ? " AND o." : "o.");
			if (rc == 0)
				rc = udr__sql_ident(&b, keys[k]);
			if (rc == 0)
				rc = udr__buf_puts(&b, " IS NOT DISTINCT FROM n.");
			if (rc == 0)
				rc = udr__sql_ident(&b, keys[k]);
		}
		if (rc == 0)
			rc = udr__buf_printf(&b, " WHERE o.\"%s\" IS NULL OR n.\"%s\" IS NULL", fo, fn);
		for (size_t i = 0; rc == 0 && i < ncols; i++) {
			int i1 = schema_index(&s1, cols[i]), i2 = schema_index(&s2, cols[i]);
			bool in1 = i1 >= 0, in2 = i2 >= 0;
			rc = udr__buf_puts(&b, " OR ");
			if (rc == 0 && in1 && in2 && strcmp(s1.types[i1], s2.types[i2]) == 0) {
				/* as SQL writes compare: 0.0 -> -0.0 and NaN -> -NaN are
				 * changes (IS DISTINCT FROM said equal) */
				rc = udr__buf_puts(&b, "NOT (");
				if (rc == 0)
					rc = udr__w_same_col(&b, "o", "n", cols[i], s1.types[i1]);
				if (rc == 0)
					rc = udr__buf_puts(&b, ")");
			} else if (rc == 0 && in1 && in2) {
				rc = udr__buf_puts(&b, "o.");
				if (rc == 0)
					rc = udr__sql_ident(&b, cols[i]);
				if (rc == 0)
					rc = udr__buf_puts(&b, " IS DISTINCT FROM n.");
				if (rc == 0)
					rc = udr__sql_ident(&b, cols[i]);
			} else if (rc == 0) {
				/* a column only one side has: changed when it holds a value */
				rc = udr__buf_puts(&b, in1 ? "o." : "n.");
				if (rc == 0)
					rc = udr__sql_ident(&b, cols[i]);
				if (rc == 0)
					rc = udr__buf_puts(&b, " IS NOT NULL");
			}
		}
		if (rc == 0)
			rc = udr__buf_puts(&b, " ORDER BY ");
		for (size_t k = 0; rc == 0 && k < nkeys; k++)
			rc = udr__buf_printf(&b, "%s%zu", k ? ", " : "", k + 2);
		if (rc == 0)
			rc = udr__q_run(out, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	}
	(void)n1;
	(void)n2;
out:
	free(cols);
	udr__buf_free(&b);
	schema_free(&s1);
	schema_free(&s2);
	udr_version_free(v1);
	udr_version_free(v2);
	return rc;
}
