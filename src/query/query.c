/*
 * query.c - the query session: an in-memory DuckDB over a udr_db.  Table
 * references in SQL become temporary views over a version's parts, read in
 * place from the store when a part is one plain file, else materialized once
 * into a content-addressed cache; every part is verified against its hash
 * once per process before DuckDB reads it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "catalog/catalog_internal.h"
#include <udr/gc.h>
#include <udr/refs.h>

#include "query/query_internal.h"

/* ---- verified parts (process-wide) -------------------------------------------- */

/* A part is verified once per process: keyed by its hash and the identity of
 * the file that was hashed, so a replaced or rewritten file is hashed again
 * (the change time too: a write that puts the old size and modification
 * time back still moves it).  Damage below the file system (media bit rot)
 * changes none of them: a new process, or fsck, hashes the part again, and
 * a part DuckDB then cannot read is hashed again at once (udr__q_error). */
typedef struct vent {
	udr_hash h;
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns, ctime_ns;
} vent;

static pthread_mutex_t g_vmu = PTHREAD_MUTEX_INITIALIZER;
static vent *g_vents;
static size_t g_nvents, g_capvents;

static int vent_cmp(const vent *a, const vent *b)
{
	int c = memcmp(a->h.bytes, b->h.bytes, UDR_HASH_SIZE);
	if (c)
		return c;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	if (a->size != b->size)
		return a->size < b->size ? -1 : 1;
	if (a->mtime_ns != b->mtime_ns)
		return a->mtime_ns < b->mtime_ns ? -1 : 1;
	if (a->ctime_ns != b->ctime_ns)
		return a->ctime_ns < b->ctime_ns ? -1 : 1;
	return 0;
}

/* Index where e is or would be; *found set when it is there. */
static size_t vent_find(const vent *e, bool *found)
{
	size_t lo = 0, hi = g_nvents;
	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = vent_cmp(&g_vents[mid], e);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void vent_of(vent *e, const udr_hash *h, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->h = *h;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	e->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static bool vent_known(const udr_hash *h, const struct stat *st)
{
	vent e;
	bool found;
	vent_of(&e, h, st);
	pthread_mutex_lock(&g_vmu);
	vent_find(&e, &found);
	pthread_mutex_unlock(&g_vmu);
	return found;
}

static void vent_add(const udr_hash *h, const struct stat *st)
{
	vent e;
	bool found;
	size_t at;
	vent_of(&e, h, st);
	pthread_mutex_lock(&g_vmu);
	at = vent_find(&e, &found);
	if (!found) {
		if (g_nvents == g_capvents) {
			size_t cap = g_capvents ? g_capvents * 2 : 64;
			vent *p = realloc(g_vents, cap * sizeof(*p));
			if (!p)
				goto out; /* not remembering only costs a rehash later */
			g_vents = p;
			g_capvents = cap;
		}
		memmove(&g_vents[at + 1], &g_vents[at], (g_nvents - at) * sizeof(*g_vents));
		g_vents[at] = e;
		g_nvents++;
	}
out:
	pthread_mutex_unlock(&g_vmu);
}

/* Forget that the file h at st was verified: it changed in place since. */
static void vent_forget(const udr_hash *h, const struct stat *st)
{
	vent e;
	bool found;
	size_t at;
	vent_of(&e, h, st);
	pthread_mutex_lock(&g_vmu);
	at = vent_find(&e, &found);
	if (found) {
		memmove(&g_vents[at], &g_vents[at + 1], (g_nvents - at - 1) * sizeof(*g_vents));
		g_nvents--;
	}
	pthread_mutex_unlock(&g_vmu);
}

/* Does the file at path still hash to h (read now, whatever was verified
 * before)?  1 yes, 0 no (forgotten as verified), < 0 when unreadable. */
static int still_intact(const char *path, const udr_hash *h)
{
	struct stat st;
	udr_hash got;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc;
	if (fd < 0)
		return udr__error_io(errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = udr__error_io(S_ISREG(st.st_mode) ? errno : EINVAL, "cannot read %s", path);
		close(fd);
		return rc;
	}
	rc = udr_hash_fd(&got, fd);
	close(fd);
	if (rc < 0)
		return rc;
	if (udr_hash_equal(&got, h))
		return 1;
	vent_forget(h, &st);
	return 0;
}

/* Hash the file at path once per process; a mismatch is UDR_ECORRUPT. */
static int verify_file(const char *path, const udr_hash *h, const udr_version *v)
{
	struct stat st;
	udr_hash got;
	char hex[UDR_HASH_HEXSIZE + 1];
	int fd, rc;
	udr_hash_tohex(hex, h);
	/* verified before, and the same file since: one stat, no open (every
	 * statement checks the parts it reads) */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && vent_known(h, &st))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": part %s is missing (%s)",
			                      v->table, v->version, hex, path);
		return udr__error_io(errno, "cannot open part %s (%s)", hex, path);
	}
	if (fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat part %s (%s)", hex, path);
		close(fd);
		return rc;
	}
	if (vent_known(h, &st)) {
		close(fd);
		return 0;
	}
	rc = udr_hash_fd(&got, fd);
	close(fd);
	if (rc < 0)
		return rc;
	if (!udr_hash_equal(&got, h))
		return udr__error_set(UDR_ECORRUPT,
		                      "table %s version %" PRIu64 ": part %s is damaged (its content does not "
		                      "match its hash; file %s)",
		                      v->table, v->version, hex, path);
	vent_add(h, &st);
	return 0;
}

/* ---- the cache lock --------------------------------------------------------------------- */

char *udr__q_cache_dir(udr_db *db, const char *cache_dir)
{
	char *c, *p;
	if (cache_dir && *cache_dir) {
		if (!(p = strdup(cache_dir)))
			udr__error_oom();
		return p;
	}
	c = udr__path_join(udr_db_path(db), "cache");
	p = c ? udr__path_join(c, "query") : NULL;
	free(c);
	return p;
}

/*
 * A shared flock on the directory <cache_dir> while a statement may read
 * cached parts: udr_query_cache_clear removes parts only under the
 * exclusive lock.  The directory is made when missing (a part is about to
 * be materialized into it) and the lock is taken again when the directory
 * was replaced meanwhile (removed as a whole and made again).
 */
static void cache_unlock(udr_query *q)
{
	if (q && q->cache_lock >= 0) {
		close(q->cache_lock); /* drops the flock */
		q->cache_lock = -1;
	}
}

int udr__q_cache_hold(udr_query *q)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		struct stat a, b;
		int fd, rc;
		if (q->cache_lock >= 0) {
			if (fstat(q->cache_lock, &a) == 0 && stat(q->cache_dir, &b) == 0 && a.st_ino == b.st_ino &&
			    a.st_dev == b.st_dev)
				return 0;
			cache_unlock(q);
		}
		if (access(q->cache_dir, F_OK) != 0 && (rc = udr__mkdirs(q->cache_dir)) < 0)
			return rc;
		fd = open(q->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return udr__error_io(errno, "cannot open the query cache %s", q->cache_dir);
		while ((rc = flock(fd, LOCK_SH)) < 0 && errno == EINTR)
			;
		if (rc < 0) {
			rc = udr__error_io(errno, "cannot lock the query cache %s", q->cache_dir);
			close(fd);
			return rc;
		}
		q->cache_lock = fd;
	}
	return udr__error_set(UDR_EIO, "cannot lock the query cache %s: it keeps being replaced", q->cache_dir);
}

void udr__q_cache_release(udr_query *q)
{
	if (!q)
		return;
	cache_unlock(q);
	/* the statement is over: its versions are no longer pinned */
	for (size_t i = 0; i < q->npins; i++) {
		udr__catalog_unpin(q->cat, q->pins[i].pin);
		free(q->pins[i].table);
	}
	q->npins = 0;
}

/* Pin table@version for the running statement (once), then check it is
 * not expired (GC.md 1.5, 2.2: the check after the pin and the wait). */
static int q_pin(udr_query *q, const char *table, uint64_t version)
{
	struct udr__qpin *p;
	int rc;
	for (size_t i = 0; i < q->npins; i++)
		if (q->pins[i].version == version && strcmp(q->pins[i].table, table) == 0)
			return udr__version_check(q->cat, table, version, NULL);
	if (q->npins == q->cap_pins) {
		size_t cap = q->cap_pins ? q->cap_pins * 2 : 8;
		struct udr__qpin *np = realloc(q->pins, cap * sizeof(*np));
		if (!np)
			return udr__error_oom();
		q->pins = np;
		q->cap_pins = cap;
	}
	p = &q->pins[q->npins];
	if (!(p->table = strdup(table)))
		return udr__error_oom();
	p->version = version;
	if ((rc = udr__catalog_pin_version(&p->pin, q->cat, table, version, "sql")) < 0) {
		free(p->table);
		return rc;
	}
	q->npins++;
	return udr__version_check(q->cat, table, version, NULL);
}

/* ---- parts ---------------------------------------------------------------------------- */

static char *cache_path(udr_query *q, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1], name[UDR_HASH_HEXSIZE + 16];
	udr_hash_tohex(hex, h);
	snprintf(name, sizeof(name), "%s.parquet", hex);
	return udr__path_join(q->cache_dir, name);
}

/*
 * rc (< 0) is what reading version version of table found: a part or
 * deletion vector missing or damaged (UDR_ECORRUPT).  A reader that could
 * not pin it (a store it cannot write, GC.md 2.4) may have had it expired
 * and swept under it: the head is read again, and a version that expired
 * and that a gc sweep covers gives UDR_EEXPIRED, never a false integrity
 * error (GC.md 1.5).  Else rc with its message: damage of a version that
 * expired but was not swept is damage (its data should still be there).
 */
int udr__q_data_error(udr_query *q, const char *table, uint64_t version, int rc)
{
	udr_expiry x;
	char *msg;
	if (rc != UDR_ECORRUPT || !table || version == 0)
		return rc;
	if (!(msg = strdup(udr_error_last()->message)))
		return rc;
	udr__catalog_statement_forget(q->cat);
	if (udr_version_expiry(&x, q->cat, table, version) == 0 && x.expired && x.swept &&
	    udr__version_check(q->cat, table, version, NULL) == UDR_EEXPIRED) {
		free(msg);
		return UDR_EEXPIRED;
	}
	rc = udr__error_set(rc, "%s", msg);
	free(msg);
	return rc;
}

/* Materialize a part into the cache (verified while written). */
static int materialize(udr_query *q, const udr_hash *h, const char *path, const udr_version *v)
{
	struct stat st;
	char hex[UDR_HASH_HEXSIZE + 1];
	int rc;
	/* the cache may have been trimmed as a whole: made again, locked */
	if ((rc = udr__q_cache_hold(q)) < 0)
		return rc;
	rc = udr_store_get_file(q->store, h, path, UDR_GET_VERIFY);
	if (rc < 0) {
		udr_hash_tohex(hex, h);
		if (rc == UDR_ENOTFOUND)
			rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": part %s is missing from the store",
			                    v->table, v->version, hex);
		else if (rc == UDR_ECORRUPT)
			rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": part %s is damaged: %s",
			                    v->table, v->version, hex, udr_error_last()->message);
		return udr__q_data_error(q, v->table, v->version, rc);
	}
	if (stat(path, &st) == 0)
		vent_add(h, &st);
	return 0;
}

/* Where DuckDB reads part h: in place, or from the cache. */
static int part_path(char **out, bool *cached, udr_query *q, const udr_hash *h, const udr_version *v)
{
	char *p = NULL, hex[UDR_HASH_HEXSIZE + 1];
	int rc = udr_store_local_path(&p, q->store, h);
	*cached = false;
	if (rc == 0) {
		if (q->verify && (rc = verify_file(p, h, v)) < 0) {
			free(p);
			return rc;
		}
		*out = p;
		return 0;
	}
	if (rc == UDR_ENOTFOUND) {
		udr_hash_tohex(hex, h);
		return udr__q_data_error(q, v->table, v->version,
		                         udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": part %s is "
		                                        "missing from the store", v->table, v->version, hex));
	}
	if (rc < 0)
		return rc;
	/* 1: not one plain file (compressed, pieces ...): read it from the cache */
	udr_error_clear();
	if (!(p = cache_path(q, h)))
		return UDR_ENOMEM;
	*cached = true;
	if ((rc = udr__q_cache_hold(q)) < 0) {
		free(p);
		return rc;
	}
	/* a FIFO there would hang the read, and the write through it */
	if ((rc = udr__cache_entry_regular(p)) < 0) {
		free(p);
		return rc;
	}
	if (rc == 1) {
		if (!q->verify || (rc = verify_file(p, h, v)) == 0) {
			*out = p;
			return 0;
		}
		if (rc != UDR_ECORRUPT) {
			free(p);
			return rc;
		}
		udr_error_clear(); /* a damaged cache file is just rewritten */
	}
	if ((rc = materialize(q, h, p, v)) < 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- errors ---------------------------------------------------------------------------- */

static bool is_hex64(const char *s)
{
	for (int i = 0; i < UDR_HASH_HEXSIZE; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/*
 * DuckDB 1.4's prepare errors carry their "LINE n: ... ^" context twice;
 * keep the message up to the first copy when the tail repeats exactly.
 */
static const char *dedup_context(char *buf, size_t bufsz, const char *msg)
{
	const char *first = strstr(msg, "\n\nLINE "), *second;
	size_t n;
	if (!first || !(second = strstr(first + 2, "\n\nLINE ")))
		return msg;
	n = strlen(second);
	if ((size_t)(second - first) != n || memcmp(first, second, n) != 0 || (size_t)(second - msg) >= bufsz)
		return msg;
	memcpy(buf, msg, (size_t)(second - msg));
	buf[second - msg] = '\0';
	return buf;
}

int udr__q_error(udr_query *q, const char *msg)
{
	char trimmed[4096];
	if (!msg || !*msg)
		msg = "unknown DuckDB error";
	msg = dedup_context(trimmed, sizeof(trimmed), msg);
	/* A part that DuckDB cannot read (truncated, not Parquet): name it. */
	for (const char *s = msg; q && s[0]; s++) {
		udr_hash h;
		char hex[UDR_HASH_HEXSIZE + 1];
		if (!(s == msg || s[-1] == '/') || strlen(s) < UDR_HASH_HEXSIZE || !is_hex64(s))
			continue;
		memcpy(hex, s, UDR_HASH_HEXSIZE);
		hex[UDR_HASH_HEXSIZE] = '\0';
		if (udr_hash_fromhex(&h, hex) < 0) {
			udr_error_clear();
			continue;
		}
		for (size_t i = 0; i < q->nviews; i++)
			for (size_t k = 0; k < q->views[i].nparts; k++)
				if (udr_hash_equal(&q->views[i].parts[k], &h)) {
					const udr__view *vw = &q->views[i];
					/* gone since it was verified (gc swept an expired
					 * version under an unpinned reader, or damage) */
					if (vw->paths && vw->paths[k] && !(vw->cached && vw->cached[k]) &&
					    access(vw->paths[k], F_OK) != 0 && errno == ENOENT)
						return udr__q_data_error(
						    q, vw->table, vw->version,
						    udr__error_set(UDR_ECORRUPT,
						                   "table %s version %" PRIu64 ": part %s is missing from the store",
						                   vw->table, vw->version, hex));
					/* verified when the session first read it, and read
					 * again now: still what was committed, so this is its
					 * content, not damage (fsck finds nothing); else it
					 * changed in place since (bit rot keeps size and time) */
					if (q->verify && vw->paths && vw->paths[k] &&
					    still_intact(vw->paths[k], &h) == 0)
						return udr__q_data_error(
						    q, vw->table, vw->version,
						    udr__error_set(UDR_ECORRUPT,
						                   "table %s version %" PRIu64 ": part %s is damaged (its content "
						                   "no longer matches its hash; file %s): %s",
						                   vw->table, vw->version, hex, vw->paths[k], msg));
					udr_error_clear();
					if (q->verify && q->views[i].fmt && q->views[i].fmt[k])
						return udr__error_set(
						    UDR_EINVAL,
						    "table %s version %" PRIu64 ": part %s is stored intact but is "
						    "not readable as %s: %s",
						    q->views[i].table, q->views[i].version, hex,
						    q->views[i].fmt[k] == UDR__PART_CSV    ? "CSV"
						    : q->views[i].fmt[k] == UDR__PART_JSON ? "JSON"
						                                           : "Parquet",
						    msg);
					return udr__error_set(UDR_ECORRUPT,
					                      "table %s version %" PRIu64 ": part %s is not readable: %s",
					                      q->views[i].table, q->views[i].version, hex, msg);
				}
	}
	if (strncmp(msg, "Catalog Error", 13) == 0 && strstr(msg, "does not exist") &&
	    strncmp(msg, "Catalog Error: Type with name", 29) != 0) /* a bad type name: invalid */
		return udr__error_set(UDR_ENOTFOUND, "%s", msg);
	if (strncmp(msg, "Out of Memory Error", 19) == 0)
		return udr__error_set(UDR_ENOMEM, "%s", msg);
	/* disk full, permission denied, read-only file system ...: I/O, not
	 * the user's SQL */
	if (strncmp(msg, "IO Error", 8) == 0)
		return udr__error_set(UDR_EIO, "%s", msg);
	return udr__error_set(UDR_EINVAL, "%s", msg);
}

int udr__q_exec(udr_query *q, const char *sql)
{
	duckdb_result res;
	int rc;
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	udr__q_settle(q);
	if (duckdb_query(q->con, sql, &res) == DuckDBError)
		rc = udr__q_error(q, duckdb_result_error(&res));
	duckdb_destroy_result(&res);
	return rc;
}

/* "[-]DIGITS[.DIGITS]" (decimal: at most 38 digits, *scale the fraction's)
 * or "[-]DIGITS" (integer): the digits as an __int128; -1 if not one. */
static int parse_i128(__int128 *out, int *digits, int *scale, const char *s, size_t len, bool decimal)
{
	size_t i = 0, before = 0, after = 0;
	bool neg = false, point = false;
	unsigned __int128 v = 0;
	*digits = *scale = 0;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len; i++) {
		if (s[i] == '.' && decimal && !point) {
			point = true;
			continue;
		}
		if (s[i] >= '0' && s[i] <= '9' && point)
			after++;
		else if (s[i] >= '0' && s[i] <= '9')
			before++;
		if (s[i] < '0' || s[i] > '9' || *digits >= 39)
			return -1;
		if (*digits > 0 || s[i] != '0' || point)
			(*digits)++;
		if (point)
			(*scale)++;
		/* at most 2^127 - 1, or 2^127 for a negative number */
		if (v > ((((unsigned __int128)1 << 127) - (neg ? 0 : 1)) - (unsigned)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	/* DIGITS[.DIGITS]: "." and "-." were 0, "1." and ".5" are refused */
	if (before == 0 || (point && after == 0) || (decimal && *digits > 38))
		return -1;
	*out = neg ? (__int128)(~v + 1) : (__int128)v; /* -v, 2^127 included */
	return 0;
}

static duckdb_hugeint i128_hugeint(__int128 x)
{
	duckdb_hugeint h;
	h.lower = (uint64_t)x;
	h.upper = (int64_t)(x >> 64);
	return h;
}

/* An UDR_TYPE_OTHER parameter whose i64 names its type (UDR_OTHER_*). */
static int bind_other(duckdb_state *s, duckdb_prepared_statement st, idx_t at, const udr_value *v, size_t i)
{
	char num[64], *end;
	long long x = 0;
	__int128 big;
	int digits, scale;
	if (v->i64 == UDR_OTHER_DECIMAL || v->i64 == UDR_OTHER_HUGEINT) {
		bool dec = v->i64 == UDR_OTHER_DECIMAL;
		duckdb_decimal d;
		if (!v->str || parse_i128(&big, &digits, &scale, v->str, v->len, dec) < 0)
			return udr__error_set(UDR_EINVAL, "parameter %zu: not %s: '%.*s'", i + 1,
			                      dec ? "a decimal of at most 38 digits" : "an integer within HUGEINT",
			                      (int)(v->len > 60 ? 60 : v->len), v->str ? v->str : "");
		if (!dec) {
			*s = duckdb_bind_hugeint(st, at, i128_hugeint(big));
			return 0;
		}
		/* DECIMAL(38,38) holds 0.xxx: no digit before the point */
		d.width = (uint8_t)(digits > scale ? digits : scale < 38 ? scale + 1 : 38);
		d.scale = (uint8_t)scale;
		d.value = i128_hugeint(big);
		*s = duckdb_bind_decimal(st, at, d);
		return 0;
	}
	if (!v->str || v->len == 0 || v->len >= sizeof(num))
		return udr__error_set(UDR_EINVAL, "parameter %zu: not an integer", i + 1);
	memcpy(num, v->str, v->len);
	num[v->len] = '\0';
	errno = 0;
	x = strtoll(num, &end, 10);
	if (errno || *end)
		return udr__error_set(UDR_EINVAL, "parameter %zu: not an integer: '%s'", i + 1, num);
	switch (v->i64) {
	case UDR_OTHER_DATE:
		if (x < INT32_MIN || x > INT32_MAX)
			return udr__error_set(UDR_EINVAL, "parameter %zu: date out of range", i + 1);
		*s = duckdb_bind_date(st, at, (duckdb_date){(int32_t)x});
		return 0;
	case UDR_OTHER_TIMESTAMP:
		*s = duckdb_bind_timestamp(st, at, (duckdb_timestamp){x});
		return 0;
	case UDR_OTHER_TIMESTAMPTZ:
		*s = duckdb_bind_timestamp_tz(st, at, (duckdb_timestamp){x});
		return 0;
	case UDR_OTHER_TIME:
		if (x < 0 || x > INT64_C(86400000000))
			return udr__error_set(UDR_EINVAL, "parameter %zu: time out of range", i + 1);
		*s = duckdb_bind_time(st, at, (duckdb_time){x});
		return 0;
	default:
		return udr__error_set(UDR_EINVAL, "parameter %zu: unknown UDR_OTHER kind %lld", i + 1, (long long)v->i64);
	}
}

static int bind_params(udr_query *q, duckdb_prepared_statement st, const udr_value *params, size_t n)
{
	idx_t want = duckdb_nparams(st);
	if (want != n)
		return udr__error_set(UDR_EINVAL, "the statement has %llu parameter%s but %zu value%s given",
		                      (unsigned long long)want, want == 1 ? "" : "s", n, n == 1 ? " was" : "s were");
	for (size_t i = 0; i < n; i++) {
		const udr_value *v = &params[i];
		idx_t at = (idx_t)i + 1;
		duckdb_state s = DuckDBSuccess;
		switch (v->type) {
		case UDR_TYPE_NULL: s = duckdb_bind_null(st, at); break;
		case UDR_TYPE_BOOL: s = duckdb_bind_boolean(st, at, v->i64 != 0); break;
		case UDR_TYPE_INT64: s = duckdb_bind_int64(st, at, v->i64); break;
		case UDR_TYPE_DOUBLE: s = duckdb_bind_double(st, at, v->f64); break;
		case UDR_TYPE_OTHER:
			if (v->i64 != UDR_OTHER_TEXT) {
				int rc = bind_other(&s, st, at, v, i);
				if (rc < 0)
					return rc;
				break;
			}
			/* fall through */
		case UDR_TYPE_TEXT:
			if (!v->str && v->len)
				return udr__error_set(UDR_EINVAL, "parameter %zu: NULL text", i + 1);
			s = duckdb_bind_varchar_length(st, at, v->str ? v->str : "", v->len);
			break;
		case UDR_TYPE_BLOB:
			if (!v->str && v->len)
				return udr__error_set(UDR_EINVAL, "parameter %zu: NULL blob", i + 1);
			s = duckdb_bind_blob(st, at, v->str ? v->str : "", v->len);
			break;
		default:
			return udr__error_set(UDR_EINVAL, "parameter %zu: unknown type %d", i + 1, v->type);
		}
		if (s == DuckDBError && (v->type == UDR_TYPE_TEXT || (v->type == UDR_TYPE_OTHER && v->i64 == UDR_OTHER_TEXT)))
			/* DuckDB's VARCHAR is UTF-8: other bytes are a BLOB */
			return udr__error_set(UDR_EINVAL, "parameter %zu is not valid UTF-8 text (bind bytes as a BLOB)",
			                      i + 1);
		if (s == DuckDBError)
			return udr__error_set(UDR_EINVAL, "parameter %zu cannot be bound: %s", i + 1,
			                      duckdb_prepare_error(st) ? duckdb_prepare_error(st) : "type mismatch");
	}
	return 0;
}

/* Skip blanks and comments from s; the rest of the text. */
const char *udr__q_skip_blank(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v')
			s++;
		if (s[0] == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			int depth = 1;
			s += 2;
			while (*s && depth) {
				if (s[0] == '/' && s[1] == '*')
					depth++, s += 2;
				else if (s[0] == '*' && s[1] == '/')
					depth--, s += 2;
				else
					s++;
			}
		} else {
			return s;
		}
	}
}

#define skip_blank_sql udr__q_skip_blank

/* The leading keyword at s is word (case-insensitive); *end after it. */
static bool keyword_is(const char *s, const char *word, const char **end)
{
	size_t n = strlen(word);
	if (strncasecmp(s, word, n) != 0 || ((unsigned char)s[n] >= 0x80) || isalnum((unsigned char)s[n]) ||
	    s[n] == '_')
		return false;
	if (end)
		*end = s + n;
	return true;
}

/*
 * Which statements may run.  A user's statement (UDR__RUN_USER) may read
 * anything and change only the session's in-memory catalog: COPY, EXPORT,
 * ATTACH, SET, PRAGMA, CALL, LOAD, EXPLAIN ANALYZE and the like are refused,
 * as they can write files (into the store, too).
 */
static int check_kind(duckdb_prepared_statement st, const char *sql, int kind)
{
	duckdb_statement_type t = st ? duckdb_prepared_statement_type(st) : DUCKDB_STATEMENT_TYPE_INVALID;
	const char *after;
	switch (kind) {
	case UDR__RUN_ANY:
		return 0;
	case UDR__RUN_SELECT:
		if (t == DUCKDB_STATEMENT_TYPE_SELECT)
			return 0;
		return udr__error_set(UDR_EINVAL, "the query must be one SELECT statement (a query that "
		                                  "returns rows, e.g. SELECT, WITH, FROM, VALUES, TABLE)");
	case UDR__RUN_COPY:
		if (t == DUCKDB_STATEMENT_TYPE_COPY)
			return 0;
		return udr__error_set(UDR_EINVAL, "the query must be one SELECT statement");
	default:
		break;
	}
	switch (t) {
	case DUCKDB_STATEMENT_TYPE_EXPLAIN:
		if (keyword_is(skip_blank_sql(sql), "explain", &after) &&
		    (keyword_is(skip_blank_sql(after), "analyze", NULL) ||
		     keyword_is(skip_blank_sql(after), "analyse", NULL)))
			break; /* runs the statement explained, which may be a COPY */
		return 0;
	case DUCKDB_STATEMENT_TYPE_SELECT:
	case DUCKDB_STATEMENT_TYPE_INSERT:
	case DUCKDB_STATEMENT_TYPE_UPDATE:
	case DUCKDB_STATEMENT_TYPE_DELETE:
	case DUCKDB_STATEMENT_TYPE_CREATE:
	case DUCKDB_STATEMENT_TYPE_DROP:
	case DUCKDB_STATEMENT_TYPE_ALTER:
		return 0;
	case DUCKDB_STATEMENT_TYPE_INVALID:
		/* DuckDB 1.4's C API has no type for MERGE INTO (it says INVALID):
		 * a prepared statement whose text starts with MERGE is one */
		if (st && keyword_is(skip_blank_sql(sql), "merge", NULL))
			return 0;
		break;
	default:
		break;
	}
	return udr__error_set(UDR_EINVAL,
	                      "this kind of statement is not allowed in udr SQL (it could write files, "
	                      "change settings or attach databases): only queries (SELECT, WITH, VALUES, "
	                      "DESCRIBE, EXPLAIN) and statements on the session's own temporary tables "
	                      "(CREATE, INSERT, UPDATE, DELETE, DROP, ALTER) run; write results with "
	                      "`udr sql -o FILE` or `udr export`");
}

/*
 * Before DuckDB even prepares a user's statement (binding EXPORT DATABASE
 * already creates its directory), its first keyword must start a statement
 * of an allowed kind; check_kind checks the prepared statement's type too.
 */
static int check_first_keyword(const char *sql, int kind)
{
	static const char *const queries[] = {"select", "with", "from", "values", "table", "describe", "desc",
	                                      "show", "summarize", "pivot", "unpivot", NULL};
	static const char *const others[] = {"explain", "create", "insert", "update", "delete", "drop", "alter",
	                                     "merge", "truncate", NULL};
	const char *s = skip_blank_sql(sql), *after;
	if (kind != UDR__RUN_USER && kind != UDR__RUN_SELECT)
		return 0;
	if (*s == '(' || *s == '\0')
		return 0; /* a parenthesized query; or nothing: DuckDB says so */
	for (size_t i = 0; queries[i]; i++)
		if (keyword_is(s, queries[i], NULL))
			return 0;
	for (size_t i = 0; kind == UDR__RUN_USER && others[i]; i++) {
		if (!keyword_is(s, others[i], &after))
			continue;
		if (i == 0 && (keyword_is(skip_blank_sql(after), "analyze", NULL) ||
		               keyword_is(skip_blank_sql(after), "analyse", NULL)))
			break; /* EXPLAIN ANALYZE runs the statement it explains */
		return 0;
	}
	return check_kind(NULL, sql, kind);
}

/* An error from DuckDB, or the one the replacement scan set while binding. */
static int run_error(udr_query *q, const char *msg)
{
	if (q->scan_rc < 0) {
		int rc = q->scan_rc;
		q->scan_rc = 0;
		return udr__error_set(rc, "%s", q->scan_msg);
	}
	return udr__q_error(q, msg);
}

/* Parse sql into exactly one statement (*ext, destroyed by the caller on 0). */
static int extract_one(duckdb_extracted_statements *ext, udr_query *q, const char *sql)
{
	idx_t n;
	const char *e;
	int rc;
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	n = duckdb_extract_statements(q->con, sql, ext);
	e = n == 0 ? duckdb_extract_statements_error(*ext) : NULL;
	if (n == 1)
		return 0;
	if (e && *e)
		rc = udr__q_error(q, e);
	else if (n == 0)
		rc = udr__error_set(UDR_EINVAL, "no SQL statement given");
	else if (strcasestr(sql, "pivot") && !strchr(sql, ';'))
		/* DuckDB runs a PIVOT whose values it must find as two
		 * statements: one to find them, one to pivot */
		rc = udr__error_set(UDR_EINVAL, "a PIVOT that finds its values runs as %llu statements, and one "
		                                "SQL statement may be run at a time: list the values (PIVOT t ON "
		                                "col IN ('a', 'b') USING ...)",
		                    (unsigned long long)n);
	else
		rc = udr__error_set(UDR_EINVAL, "only one SQL statement may be run at a time (%llu given)",
		                    (unsigned long long)n);
	duckdb_destroy_extracted(ext);
	return rc;
}

int udr__q_prepare(duckdb_prepared_statement *out, udr_query *q, const char *sql, const udr_value *params,
                   size_t nparams, int kind)
{
	duckdb_extracted_statements ext = NULL;
	duckdb_prepared_statement st = NULL;
	int rc = 0;
	*out = NULL;
	if (nparams && !params)
		return udr__error_set(UDR_EINVAL, "parameters are NULL");
	/* exactly one statement: a second one is never run */
	if ((rc = extract_one(&ext, q, sql)) < 0)
		return rc;
	q->scan_rc = 0;
	if ((rc = check_first_keyword(sql, kind)) < 0)
		goto out;
	if (duckdb_prepare_extracted_statement(q->con, ext, 0, &st) == DuckDBError) {
		rc = run_error(q, duckdb_prepare_error(st));
		goto out;
	}
	if ((rc = check_kind(st, sql, kind)) < 0 || (rc = bind_params(q, st, params, nparams)) < 0)
		goto out;
	*out = st;
	st = NULL;
out:
	q->scan_rc = 0;
	duckdb_destroy_prepare(&st);
	duckdb_destroy_extracted(&ext);
	return rc;
}

int udr__q_run(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams,
               int kind)
{
	duckdb_prepared_statement st = NULL;
	duckdb_result res;
	int rc;
	udr__q_settle(q);
	if ((rc = udr__q_prepare(&st, q, sql, params, nparams, kind)) < 0)
		goto out;
	if (duckdb_execute_prepared(st, &res) == DuckDBError) {
		rc = run_error(q, duckdb_result_error(&res));
		duckdb_destroy_result(&res);
		goto out;
	}
	if (out)
		rc = udr__result_from_duckdb(out, &res);
	else
		duckdb_destroy_result(&res);
out:
	q->scan_rc = 0;
	duckdb_destroy_prepare(&st);
	/* the result is materialized: the statement reads no cached part now */
	udr__q_cache_release(q);
	return rc;
}

static void replacement_scan(duckdb_replacement_scan_info info, const char *name, void *data);
static void view_free(udr__view *v);

/* ---- sessions ----------------------------------------------------------------------------- */

static int set_config(duckdb_config cfg, const char *name, const char *value)
{
	if (duckdb_set_config(cfg, name, value) == DuckDBError)
		return udr__error_set(UDR_EINVAL, "invalid DuckDB setting %s = '%s'", name, value);
	return 0;
}

int udr_query_open(udr_query **out, udr_db *db, const udr_query_options *opts)
{
	udr_query_options def = UDR_QUERY_OPTIONS_INIT;
	udr_query *q;
	int rc;
	if (!out || !db)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_open");
	if (!opts)
		opts = &def;
	if (opts->version != UDR_QUERY_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown udr_query_options version %u", opts->version);
	if (!(q = calloc(1, sizeof(*q))))
		return udr__error_oom();
	q->db = db;
	q->store = udr_db_store(db);
	q->cat = udr_db_catalog(db);
	q->verify = opts->verify != 0;
	q->cache_lock = -1;
	q->threads = opts->threads;
	q->cache_dir = udr__q_cache_dir(db, opts->cache_dir);
	if (!q->cache_dir || !(q->tmp_dir = udr__path_join(q->cache_dir, "tmp")) ||
	    (opts->memory_limit && !(q->memory_limit = strdup(opts->memory_limit)))) {
		rc = udr__error_oom();
		udr_query_close(q);
		return rc;
	}
	/* DuckDB starts with the session's first statement (udr__q_duck): a
	 * session that needs none (a merge without row merges) never loads it. */
	*out = q;
	return 0;
}

/* Start the session's DuckDB: load the library (duck.c), open an in-memory
 * database with the session's settings, connect, register UDR's scans. */
static int q_start(udr_query *q)
{
	duckdb_config cfg = NULL;
	char *err = NULL, *spill = NULL, threads[32];
	int rc;
	if ((rc = udr__duck_load()) < 0)
		return rc;
	if (!(spill = udr__path_join(q->tmp_dir, "duckdb")))
		return udr__error_oom();
	/* Nothing is created here: a read-only store can be queried.  The
	 * cache and temp directories are made when first written. */
	if (duckdb_create_config(&cfg) == DuckDBError) {
		rc = udr__error_oom();
		goto fail;
	}
	/* No network: Parquet and JSON are built in; nothing is installed. */
	if ((rc = set_config(cfg, "autoinstall_known_extensions", "false")) < 0 ||
	    (rc = set_config(cfg, "autoload_known_extensions", "false")) < 0 ||
	    (rc = set_config(cfg, "temp_directory", spill)) < 0)
		goto fail;
	if (q->threads > 0) {
		snprintf(threads, sizeof(threads), "%d", q->threads);
		if ((rc = set_config(cfg, "threads", threads)) < 0)
			goto fail;
	}
	if (q->memory_limit && (rc = set_config(cfg, "memory_limit", q->memory_limit)) < 0)
		goto fail;
	if (duckdb_open_ext(NULL, &q->ddb, cfg, &err) == DuckDBError) {
		rc = udr__error_set(UDR_ERROR, "cannot start DuckDB: %s", err ? err : "unknown error");
		duckdb_free(err);
		q->ddb = NULL;
		goto fail;
	}
	if (duckdb_connect(q->ddb, &q->con) == DuckDBError) {
		rc = udr__error_set(UDR_ERROR, "cannot connect to DuckDB");
		q->con = NULL;
		goto fail;
	}
	/* Parts are immutable (content-addressed): their Parquet footers can be
	 * cached for the life of the session.  Then the configuration is locked:
	 * SQL cannot change settings (temp_directory, profiling_output ...). */
	/* The session's zone is UTC, never the machine's: text or a naive
	 * timestamp made a TIMESTAMP WITH TIME ZONE (an import, a cast, a
	 * parameter) is the same instant on every machine, TIMESTAMPTZ is cast
	 * to TIMESTAMP, DATE and text in UTC (as udr_log.time is), and now()
	 * ::TIMESTAMP is UTC's wall time.  Under TZ=Asia/Kolkata an import of
	 * "2026-01-01 00:00:00" into such a column stored an instant 5.5 h
	 * earlier (a helper's review). */
	if ((rc = udr__q_exec(q, "SET TimeZone = 'UTC'")) < 0 ||
	    (rc = udr__q_exec(q, "SET parquet_metadata_cache = true")) < 0 ||
	    (rc = udr__q_exec(q, "SET lock_configuration = true")) < 0)
		goto fail;
	/* table names are resolved where DuckDB binds a table, and only there */
	duckdb_add_replacement_scan(q->ddb, replacement_scan, q, NULL);
	if ((rc = udr__dv_register(q)) < 0)
		goto fail;
	duckdb_destroy_config(&cfg);
	free(spill);
	return 0;
fail:
	if (cfg)
		duckdb_destroy_config(&cfg);
	free(spill);
	/* not started: the next statement tries again, from the beginning */
	if (q->con)
		duckdb_disconnect(&q->con);
	if (q->ddb)
		duckdb_close(&q->ddb);
	q->con = NULL;
	q->ddb = NULL;
	return rc;
}

int udr__q_duck(udr_query *q)
{
	if (q->con || q->starting)
		return 0;
	q->starting = true; /* q_start's own statements run on the new connection */
	int rc = q_start(q);
	q->starting = false;
	return rc;
}

static void view_free(udr__view *v)
{
	free(v->name);
	free(v->table);
	free(v->parts);
	for (size_t i = 0; v->paths && i < v->nparts; i++)
		free(v->paths[i]);
	free(v->paths);
	free(v->cached);
	for (size_t i = 0; v->dv && i < v->nparts; i++)
		free(v->dv[i]);
	free(v->dv);
	free(v->dvrows);
	free(v->fmt);
	memset(v, 0, sizeof(*v));
}

void udr_query_close(udr_query *q)
{
	if (!q)
		return;
	udr__q_settle(q); /* an open stream keeps its rows, read now */
	udr__q_cache_release(q);
	udr__w_close(q);
	free(q->message);
	free(q->branch);
	free(q->memory_limit);
	if (q->con)
		duckdb_disconnect(&q->con);
	if (q->ddb)
		duckdb_close(&q->ddb);
	for (size_t i = 0; i < q->nviews; i++)
		view_free(&q->views[i]);
	free(q->views);
	free(q->pins);
	free(q->cache_dir);
	free(q->tmp_dir);
	free(q);
}

char *udr__q_tmp_path(udr_query *q, const char *what)
{
	char name[128];
	unsigned int rnd;
	int fd;
	if (access(q->tmp_dir, F_OK) != 0 && udr__mkdirs(q->tmp_dir) < 0)
		return NULL;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
		rnd = (unsigned int)udr__now_ms();
	if (fd >= 0)
		close(fd);
	snprintf(name, sizeof(name), "%s-%ld-%lu-%08x", what, (long)getpid(), ++q->counter, rnd);
	return udr__path_join(q->tmp_dir, name);
}

/* ---- paths DuckDB reads ------------------------------------------------------------------------ */

/*
 * DuckDB's readers take a path as a glob pattern (*, ? and [...], in every
 * component) and expand a leading '~'.  A path handed to a reader is made
 * absolute and its metacharacters are escaped as one-character classes
 * ([*], [?], [[]), so it names exactly one file.  (COPY ... TO takes its
 * path literally.)
 */
char *udr__q_read_path(const char *path)
{
	udr__buf b = {0};
	char *cwd = NULL;
	int rc = 0;
	if (path[0] != '/') {
		if (!(cwd = getcwd(NULL, 0))) {
			udr__error_io(errno, "cannot get the working directory");
			return NULL;
		}
		rc = udr__buf_puts(&b, cwd);
		if (rc == 0 && !(b.len && b.ptr[b.len - 1] == '/'))
			rc = udr__buf_puts(&b, "/");
		free(cwd);
	}
	for (const char *p = path; rc == 0 && *p; p++) {
		if (*p == '*' || *p == '?' || *p == '[')
			rc = udr__buf_printf(&b, "[%c]", *p);
		else
			rc = udr__buf_put(&b, p, 1);
	}
	if (rc == 0 && !b.ptr)
		rc = udr__buf_puts(&b, "");
	if (rc < 0) {
		udr__buf_free(&b);
		return NULL;
	}
	return b.ptr;
}

int udr__sql_read_path(udr__buf *b, const char *path)
{
	char *p = udr__q_read_path(path);
	int rc;
	if (!p)
		return udr_error_last()->code ? udr_error_last()->code : UDR_ENOMEM;
	rc = udr__sql_literal(b, p);
	free(p);
	return rc;
}

/* ---- table versions bound in SQL ------------------------------------------------------------- */

static udr__view *view_find(udr_query *q, const char *name)
{
	for (size_t i = 0; i < q->nviews; i++)
		if (strcmp(q->views[i].name, name) == 0)
			return &q->views[i];
	return NULL;
}

/*
 * A DuckDB type name from udr.schema, checked against the grammar of type
 * names (it is the only text of a version that becomes SQL): NAME, NAME(N),
 * NAME(N,M) for DECIMAL/NUMERIC/VARCHAR, STRUCT(f T, ...), UNION(f T, ...),
 * MAP(T, T), LIST(T), TIMESTAMP/TIME WITH TIME ZONE, each with [] or [N]
 * suffixes.  No other '(' is allowed, so no function can be called.
 */
static bool type_word(const char **p, char *w, size_t wsz)
{
	size_t n = 0;
	if (!(isalpha((unsigned char)**p) || **p == '_'))
		return false;
	while (isalnum((unsigned char)**p) || **p == '_') {
		if (n + 1 >= wsz)
			return false;
		w[n++] = *(*p)++;
	}
	w[n] = '\0';
	return true;
}

static bool type_digits(const char **p)
{
	if (!isdigit((unsigned char)**p))
		return false;
	while (isdigit((unsigned char)**p))
		(*p)++;
	return true;
}

static bool type_ok(const char **p, int depth)
{
	char w[64];
	if (depth > 16 || !type_word(p, w, sizeof(w)))
		return false;
	if (strcasecmp(w, "STRUCT") == 0 || strcasecmp(w, "UNION") == 0) {
		char f[64];
		if (*(*p)++ != '(')
			return false;
		do {
			while (**p == ' ')
				(*p)++;
			if (!type_word(p, f, sizeof(f)) || *(*p)++ != ' ' || !type_ok(p, depth + 1))
				return false;
		} while (**p == ',' && (*p)++);
		if (*(*p)++ != ')')
			return false;
	} else if (strcasecmp(w, "MAP") == 0 || strcasecmp(w, "LIST") == 0) {
		bool map = strcasecmp(w, "MAP") == 0;
		if (*(*p)++ != '(' || !type_ok(p, depth + 1))
			return false;
		if (map) {
			if (*(*p)++ != ',')
				return false;
			while (**p == ' ')
				(*p)++;
			if (!type_ok(p, depth + 1))
				return false;
		}
		if (*(*p)++ != ')')
			return false;
	} else if (strcasecmp(w, "DECIMAL") == 0 || strcasecmp(w, "NUMERIC") == 0 ||
	           strcasecmp(w, "VARCHAR") == 0) {
		if (**p == '(') {
			(*p)++;
			if (!type_digits(p))
				return false;
			if (**p == ',') {
				(*p)++;
				while (**p == ' ')
					(*p)++;
				if (!type_digits(p))
					return false;
			}
			if (*(*p)++ != ')')
				return false;
		}
	} else if ((strcasecmp(w, "TIMESTAMP") == 0 || strcasecmp(w, "TIME") == 0) &&
	           strncasecmp(*p, " WITH TIME ZONE", 15) == 0) {
		*p += 15;
	}
	while (**p == '[') {
		(*p)++;
		while (isdigit((unsigned char)**p))
			(*p)++;
		if (*(*p)++ != ']')
			return false;
	}
	return true;
}

static bool type_text_ok(const char *t)
{
	const char *p = t;
	return type_ok(&p, 0) && *p == '\0';
}

/* SELECT over a version without parts: typed NULLs, no rows. */
static int empty_select(udr__buf *b, const udr_version *v)
{
	const char *schema = udr_version_get_meta(v, "udr.schema");
	json_error_t jerr;
	json_t *arr = schema ? json_loads(schema, 0, &jerr) : NULL;
	size_t i;
	json_t *col;
	int rc = 0;
	if (!arr || !json_is_array(arr) || json_array_size(arr) == 0) {
		json_decref(arr);
		/* a version committed without data (`udr commit --allow-empty`):
		 * nothing is damaged, there is just nothing to read */
		if (v->version > 1)
			return udr__error_set(UDR_EINVAL,
			                      "table %s version %" PRIu64 " has no data (no chunks, or only empty "
			                      "ones) and %s udr.schema: there are no columns to read (an earlier "
			                      "version: %s@%" PRIu64 ")",
			                      v->table, v->version, schema ? "an unusable" : "no", v->table,
			                      v->version - 1);
		return udr__error_set(UDR_EINVAL,
		                      "table %s version %" PRIu64 " has no data (no chunks, or only empty ones) "
		                      "and %s udr.schema: there are no columns to read",
		                      v->table, v->version, schema ? "an unusable" : "no");
	}
	rc = udr__buf_puts(b, "SELECT ");
	json_array_foreach(arr, i, col) {
		const char *name = json_string_value(json_object_get(col, "name"));
		const char *type = json_string_value(json_object_get(col, "type"));
		if (!name || !type || !type_text_ok(type)) {
			rc = udr__error_set(UDR_EINVAL, "table %s version %" PRIu64 ": bad column %zu in udr.schema",
			                    v->table, v->version, i);
			break;
		}
		if (rc == 0 && i)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0)
			rc = udr__buf_printf(b, "CAST(NULL AS %s) AS ", type);
		if (rc == 0)
			rc = udr__sql_ident(b, name);
		if (rc < 0)
			break;
	}
	json_decref(arr);
	if (rc == 0)
		rc = udr__buf_puts(b, " LIMIT 0");
	return rc;
}

/*
 * How DuckDB reads a part.  UDR's imports write Parquet (udr.format
 * "parquet"); a table committed by hand (`udr put` + `udr commit`) holds
 * raw files, usually with no udr.format: the bytes say.  A Parquet file
 * starts with "PAR1"; other content is text: JSON when its first character
 * (after a byte order mark and blanks) is '{' or '[', else CSV (DuckDB's
 * sniffer finds the delimiter and the header).  udr.format "csv" or "json"
 * decides for text parts.  A part labelled "parquet" that is not Parquet
 * (an append onto a table of raw files) is read by its bytes only when it
 * was verified against its hash: unverified, it may be a damaged part.
 * Compressed and binary content is refused, naming the part.
 */
static int part_format(unsigned char *out, udr_query *q, const char *path, const udr_hash *h,
                       const udr_version *v)
{
	const char *fmt = udr_version_get_meta(v, "udr.format");
	unsigned char head[4096];
	char hex[UDR_HASH_HEXSIZE + 1];
	const char *what = NULL;
	struct stat st;
	ssize_t n = 0;
	size_t i = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int rc = udr__error_io(errno, "cannot open part %s", path);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((n = read(fd, head, sizeof(head))) < 0 && errno == EINTR)
		;
	close(fd);
	if (n < 0)
		return udr__error_io(errno, "cannot read part %s", path);
	if (st.st_size == 0) {
		*out = UDR__PART_EMPTY;
		return 0;
	}
	if ((n >= 4 && memcmp(head, "PAR1", 4) == 0) || (fmt && strcmp(fmt, "parquet") == 0 && !q->verify)) {
		*out = UDR__PART_PARQUET;
		return 0;
	}
	if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b)
		what = "gzip-compressed";
	else if (n >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd)
		what = "zstd-compressed";
	else if (memchr(head, '\0', (size_t)n))
		what = "binary (neither Parquet, CSV nor JSON)";
	if (what) {
		udr_hash_tohex(hex, h);
		return udr__error_set(UDR_EINVAL,
		                      "table %s version %" PRIu64 ": part %s is %s: SQL reads Parquet, CSV "
		                      "and JSON parts (the part is stored intact; `udr get` reads it back)",
		                      v->table, v->version, hex, what);
	}
	if (fmt && strcmp(fmt, "csv") == 0) {
		*out = UDR__PART_CSV;
		return 0;
	}
	if (fmt && strcmp(fmt, "json") == 0) {
		*out = UDR__PART_JSON;
		return 0;
	}
	if (n >= 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf)
		i = 3;
	while (i < (size_t)n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
		i++;
	*out = i < (size_t)n && (head[i] == '{' || head[i] == '[') ? UDR__PART_JSON : UDR__PART_CSV;
	return 0;
}

/* A view bound by an earlier statement: its parts verified again (a file
 * rewritten since is hashed again: verify_file), and cached parts trimmed
 * (or damaged) since brought back. */
static int view_refresh(udr_query *q, udr__view *vw, const udr_version *v)
{
	for (size_t i = 0; i < vw->nparts; i++) {
		int rc;
		if (!vw->cached[i]) {
			if (q->verify && (rc = verify_file(vw->paths[i], &vw->parts[i], v)) < 0)
				return udr__q_data_error(q, v->table, v->version, rc);
			continue;
		}
		if ((rc = udr__q_cache_hold(q)) < 0 || (rc = udr__cache_entry_regular(vw->paths[i])) < 0)
			return rc;
		if (rc == 1) {
			if (!q->verify || (rc = verify_file(vw->paths[i], &vw->parts[i], v)) == 0)
				continue;
			if (rc != UDR_ECORRUPT)
				return rc;
			udr_error_clear(); /* a damaged cache file is just rewritten */
		}
		if ((rc = materialize(q, &vw->parts[i], vw->paths[i], v)) < 0)
			return rc;
	}
	return 0;
}

/* The parts of version v, verified (or materialized) for DuckDB to read. */
static int ensure_view(udr__view **out, udr_query *q, const udr_version *v)
{
	char name[UDR_TABLE_NAME_MAX + 32];
	udr__view *vw, nv;
	int rc = 0;
	snprintf(name, sizeof(name), "%s@%" PRIu64, v->table, v->version);
	/* a version's data is never read once it expired (GC.md 1.5): every
	 * path to its parts makes a view (row merges read bases this way);
	 * pinned first, so GC neither expires nor sweeps it under the
	 * statement (GC.md 2.3) */
	if (!udr__version_dropped(v) && (rc = q_pin(q, v->table, v->version)) < 0)
		return rc;
	udr__test_pause("sql-pinned"); /* tests: gc runs meanwhile */
	vw = view_find(q, name);
	if (vw && vw->version == v->version) {
		if ((rc = view_refresh(q, vw, v)) < 0)
			return rc;
		*out = vw;
		return 0;
	}
	memset(&nv, 0, sizeof(nv));
	nv.nparts = v->nchunks;
	nv.version = v->version;
	if (!(nv.name = strdup(name)) || !(nv.table = strdup(v->table)) ||
	    !(nv.parts = calloc(v->nchunks ? v->nchunks : 1, sizeof(*nv.parts))) ||
	    !(nv.paths = calloc(v->nchunks ? v->nchunks : 1, sizeof(*nv.paths))) ||
	    !(nv.cached = calloc(v->nchunks ? v->nchunks : 1, sizeof(*nv.cached))) ||
	    !(nv.fmt = calloc(v->nchunks ? v->nchunks : 1, sizeof(*nv.fmt)))) {
		rc = udr__error_oom();
		goto fail;
	}
	for (size_t i = 0; i < v->nchunks; i++)
		nv.parts[i] = v->chunks[i];
	if (!vw && q->nviews == q->capviews) {
		size_t cap = q->capviews ? q->capviews * 2 : 16;
		udr__view *p = realloc(q->views, cap * sizeof(*p));
		if (!p) {
			rc = udr__error_oom();
			goto fail;
		}
		q->views = p;
		q->capviews = cap;
	}
	/* register first (version 0 until verified), so that errors can name its parts */
	if (vw)
		view_free(vw);
	else
		vw = &q->views[q->nviews++];
	*vw = nv;
	vw->version = 0;
	/* the chunks of a version with udr.parts end with its deletion vectors */
	if ((rc = udr__dv_view_load(q, vw, v)) < 0)
		return rc;
	for (size_t i = 0; i < vw->nparts; i++) {
		if ((rc = part_path(&vw->paths[i], &vw->cached[i], q, &v->chunks[i], v)) < 0)
			return rc;
		if ((rc = part_format(&vw->fmt[i], q, vw->paths[i], &v->chunks[i], v)) < 0)
			return rc;
		/* typed parts (udr.parts: row positions, deletion vectors) are read
		 * as one Parquet list by position: a part of another format would
		 * shift them, so such a version is refused rather than misread */
		if (vw->fmt[i] != UDR__PART_PARQUET && udr_version_get_meta(v, "udr.parts")) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, &v->chunks[i]);
			return udr__error_set(UDR_EINVAL,
			                      "table %s version %" PRIu64 ": part %s of its typed parts (udr.parts) is "
			                      "not Parquet: typed parts of other formats are not supported",
			                      v->table, v->version, hex);
		}
	}
	vw->version = v->version;
	*out = vw;
	return 0;
fail:
	view_free(&nv);
	return rc;
}

int udr__q_view_get(udr__view **out, udr_query *q, const udr_version *v)
{
	return ensure_view(out, q, v);
}

int udr__q_view(const char **name, udr_query *q, const udr_version *v)
{
	udr__view *vw;
	int rc = ensure_view(&vw, q, v);
	if (rc == 0)
		*name = vw->name;
	return rc;
}

static int resolve_ref(udr_version **out, udr_query *q, const char *table, const udr__ref *ref,
                       uint64_t head);

static const char *part_reader(unsigned char fmt)
{
	return fmt == UDR__PART_CSV ? "read_csv" : fmt == UDR__PART_JSON ? "read_json_auto" : "read_parquet";
}

/* A list value of the paths of parts [from, to) of format fmt. */
static int paths_value(duckdb_value *out, const udr__view *vw, size_t from, size_t to, unsigned char fmt)
{
	duckdb_logical_type vt = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
	duckdb_value *vals = calloc(to - from + 1, sizeof(*vals));
	size_t n = 0;
	int rc = vt && vals ? 0 : udr__error_oom();
	for (size_t i = from; rc == 0 && i < to; i++) {
		char *p;
		if (vw->fmt[i] != fmt)
			continue;
		p = udr__q_read_path(vw->paths[i]);
		if (!p || !(vals[n++] = duckdb_create_varchar(p)))
			rc = udr__error_oom();
		free(p);
	}
	if (rc == 0 && !(*out = duckdb_create_list_value(vt, vals, n)))
		rc = udr__error_oom();
	for (size_t i = 0; i < n; i++)
		if (vals[i])
			duckdb_destroy_value(&vals[i]);
	free(vals);
	if (vt)
		duckdb_destroy_logical_type(&vt);
	return rc;
}

/*
 * Parts of several formats (an append onto a table of raw CSV files):
 * one reader per run of parts of one format, in part order, as
 * `SELECT * FROM read_csv([...]) UNION ALL BY NAME SELECT * FROM
 * read_parquet([...]) ...` (DuckDB keeps the order of UNION ALL's inputs
 * while insertion order is preserved, its default).  The paths are the
 * store's own, glob-escaped and quoted as literals.
 */
static int mixed_select(udr__buf *b, const udr__view *vw)
{
	int rc = 0;
	bool first = true;
	for (size_t i = 0; rc == 0 && i < vw->nparts;) {
		size_t j = i;
		bool firstpath = true;
		if (vw->fmt[i] == UDR__PART_EMPTY) {
			i++;
			continue;
		}
		while (j < vw->nparts && (vw->fmt[j] == vw->fmt[i] || vw->fmt[j] == UDR__PART_EMPTY))
			j++;
		rc = udr__buf_printf(b, "%sSELECT * FROM %s([", first ? "" : " UNION ALL BY NAME ",
		                     part_reader(vw->fmt[i]));
		for (size_t k = i; rc == 0 && k < j; k++) {
			if (vw->fmt[k] != vw->fmt[i])
				continue;
			if (!firstpath)
				rc = udr__buf_puts(b, ", ");
			if (rc == 0)
				rc = udr__sql_read_path(b, vw->paths[k]);
			firstpath = false;
		}
		if (rc == 0)
			rc = udr__buf_puts(b, "])");
		first = false;
		i = j;
	}
	return rc;
}

/* Replace the table by query(b's text); b is freed.  rc: b's making. */
static int scan_query(duckdb_replacement_scan_info info, udr__buf *b, int rc)
{
	duckdb_value text = NULL;
	if (rc == 0 && !(text = duckdb_create_varchar(b->ptr)))
		rc = udr__error_oom();
	udr__buf_free(b);
	if (rc < 0)
		return rc;
	duckdb_replacement_scan_set_function_name(info, "query");
	duckdb_replacement_scan_add_parameter(info, text);
	duckdb_destroy_value(&text);
	return 0;
}

/* The table function and its parameters that read version v. */
static int scan_of(duckdb_replacement_scan_info info, udr_query *q, const udr_version *v)
{
	const char *fmt = udr_version_get_meta(v, "udr.format");
	duckdb_value list = NULL;
	unsigned char one = 0;
	bool mixed = false;
	udr__view *vw;
	udr__buf b = {0};
	int rc;
	if ((rc = ensure_view(&vw, q, v)) < 0)
		return rc;
	if (vw->nparts > 0 && fmt && strcmp(fmt, "parquet-dv") == 0) {
		/* deletion vectors: merge-on-read through a query over the parts */
		return scan_query(info, &b, udr__dv_scan_sql(&b, q, vw, false));
	}
	if (fmt && strcmp(fmt, "parquet") != 0 && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
		char qf[64];
		udr__quote(qf, sizeof(qf), fmt);
		return udr__error_set(UDR_EINVAL, "table %s version %" PRIu64 ": unsupported udr.format '%s'",
		                      v->table, v->version, qf);
	}
	for (size_t i = 0; i < vw->nparts; i++) {
		if (vw->fmt[i] == UDR__PART_EMPTY)
			continue;
		if (one && vw->fmt[i] != one)
			mixed = true;
		one = vw->fmt[i];
	}
	if (!one || mixed)
		return scan_query(info, &b, one ? mixed_select(&b, vw) : empty_select(&b, v));
	if ((rc = paths_value(&list, vw, 0, vw->nparts, one)) < 0)
		return rc;
	duckdb_replacement_scan_set_function_name(info, part_reader(one));
	duckdb_replacement_scan_add_parameter(info, list);
	duckdb_destroy_value(&list);
	return 0;
}

/* The rows of an open transaction's temp table "table". */
static int scan_shadow(duckdb_replacement_scan_info info, const char *table)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, "SELECT * FROM temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&b, table);
	return scan_query(info, &b, rc);
}

/* Resolve a table name DuckDB is binding: NAME or NAME@REF. */
static int bind_table(duckdb_replacement_scan_info info, udr_query *q, const char *name)
{
	char table[UDR_TABLE_NAME_MAX + 1];
	const char *at = strchr(name, '@');
	size_t tlen = at ? (size_t)(at - name) : strlen(name);
	uint64_t latest = 0;
	udr_version *v = NULL;
	udr__ref ref;
	bool not_on_main = false;
	int rc;
	if (tlen == 0 || tlen > UDR_TABLE_NAME_MAX)
		return 0;
	memcpy(table, name, tlen);
	table[tlen] = '\0';
	if (udr_table_name_check(table) < 0 || (!at && strcmp(table, "udr_log") == 0) ||
	    (!at && strcmp(table, "udr_tables") == 0) || (!at && strcmp(table, "udr_conflicts") == 0) ||
	    (!at && udr__w_dropped(q, table))) {
		udr_error_clear();
		return 0; /* not a UDR table: DuckDB says it does not exist */
	}
	rc = udr_catalog_latest(&latest, q->cat, table);
	if (rc == UDR_ENOTFOUND || rc == UDR_EINVAL) {
		udr_error_clear();
		/* not on main: a table made on a branch is found through a ref
		 * or a session on that branch; else DuckDB says it does not exist */
		if (rc == UDR_EINVAL || (!at && !q->branch))
			return 0;
		not_on_main = true;
	} else if (rc < 0) {
		return rc;
	}
	if (!at) {
		memset(&ref, 0, sizeof(ref));
		ref.kind = UDR__REF_LATEST;
	} else if ((rc = udr__ref_parse(&ref, at + 1, strlen(at + 1))) < 0) {
		return rc;
	}
	/* the session's branch as an open transaction left it: its writes
	 * (the bare name reads them too), or nothing when it dropped the table */
	if (at && (ref.kind == UDR__REF_LATEST ||
	           (ref.kind == UDR__REF_BRANCH && strcmp(ref.text, udr__q_branch(q)) == 0))) {
		int w = udr__w_working(q, table);
		if (w == UDR__W_DROPPED)
			return 0;
		if (w == UDR__W_SHADOW)
			return scan_shadow(info, table);
	}
	if ((rc = resolve_ref(&v, q, table, &ref, q->snap_head)) < 0) {
		if (rc == UDR_ENOTFOUND && !at && (q->dropped_hit || not_on_main)) {
			q->dropped_hit = false;
			udr_error_clear();
			return 0; /* dropped, or nowhere: DuckDB says it does not exist */
		}
		/* NAME@REF quoted (as Python's versions= writes it) says what
		 * the unquoted form says: no such table, not DuckDB's guess */
		return rc;
	}
	rc = scan_of(info, q, v);
	udr_version_free(v);
	if (rc == 0)
		udr__test_pause("sql-bound"); /* tests: gc runs before DuckDB reads */
	return rc;
}

static void replacement_scan(duckdb_replacement_scan_info info, const char *name, void *data)
{
	udr_query *q = data;
	int rc;
	if (q->scan_rc < 0) {
		duckdb_replacement_scan_set_error(info, q->scan_msg);
		return;
	}
	if ((rc = bind_table(info, q, name)) < 0) {
		q->scan_rc = rc;
		snprintf(q->scan_msg, sizeof(q->scan_msg), "%s", udr_error_last()->message);
		duckdb_replacement_scan_set_error(info, q->scan_msg);
	}
}

/* ---- resolving references -------------------------------------------------------------------- */

/* t@branch:NAME, t@tag:NAME, t@NAME: the ref as of the statement's head
 * (refs.c), then the table in that commit's snapshot. */
static int resolve_named(udr_version **out, udr_query *q, const char *table, const udr__ref *ref, uint64_t head)
{
	char spec[UDR__REF_TEXT_MAX + 16], cr[40], qr[UDR__REF_TEXT_MAX * 4 + 8], qt[UDR_TABLE_NAME_MAX * 4 + 8];
	uint64_t commit = 0;
	int rc;
	snprintf(spec, sizeof(spec), "%s%s", ref->bare ? "" : ref->kind == UDR__REF_TAG ? "tag:" : "branch:", ref->text);
	if ((rc = udr__resolve_at_seq(&commit, q->cat, spec, head)) < 0)
		return rc;
	snprintf(cr, sizeof(cr), "commit:%" PRIu64, commit);
	rc = commit ? udr_catalog_get_version_on(out, q->cat, table, 0, cr) : UDR_ENOTFOUND;
	if (rc == UDR_ENOTFOUND) {
		udr__quote(qt, sizeof(qt), table);
		udr__quote(qr, sizeof(qr), spec);
		return udr__error_set(UDR_ENOTFOUND, "table '%s' not found on %s", qt, qr);
	}
	return rc;
}

static int resolve_ref_any(udr_version **out, udr_query *q, const char *table, const udr__ref *ref,
                           uint64_t head);

/* A version that records a drop (udr.dropped) is no table: not found. */
static int resolve_ref(udr_version **out, udr_query *q, const char *table, const udr__ref *ref,
                       uint64_t head)
{
	char qt[UDR_TABLE_NAME_MAX * 4 + 8];
	int rc = resolve_ref_any(out, q, table, ref, head);
	q->dropped_hit = false;
	if (rc == 0 && !udr__version_dropped(*out)) {
		/* an expired version's data is not read (GC.md 1.5); time
		 * travel resolves as before, the version it lands on is checked */
		if ((rc = udr__version_check(q->cat, table, (*out)->version,
		                             ref->kind == UDR__REF_TIME ? ref->text : NULL)) < 0) {
			udr_version_free(*out);
			*out = NULL;
		}
		return rc;
	}
	if (rc < 0)
		return rc;
	udr__quote(qt, sizeof(qt), table);
	rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found (version %" PRIu64 " dropped it)", qt,
	                    (*out)->version);
	udr_version_free(*out);
	*out = NULL;
	q->dropped_hit = true;
	return rc;
}

static int resolve_ref_any(udr_version **out, udr_query *q, const char *table, const udr__ref *ref,
                           uint64_t head)
{
	char qt[UDR_TABLE_NAME_MAX * 4 + 8], qr[UDR__REF_TEXT_MAX * 4 + 8];
	int rc;
	udr__quote(qt, sizeof(qt), table);
	udr__quote(qr, sizeof(qr), ref->text);
	switch (ref->kind) {
	case UDR__REF_BRANCH:
	case UDR__REF_TAG:
		if (!ref->bare && ref->kind == UDR__REF_BRANCH && strcmp(ref->text, "main") == 0 && !q->branch)
			goto latest;
		return resolve_named(out, q, table, ref, head);
	case UDR__REF_LATEST:
		if (q->branch) { /* a session on a branch: its latest */
			udr__ref br;
			memset(&br, 0, sizeof(br));
			br.kind = UDR__REF_BRANCH;
			snprintf(br.text, sizeof(br.text), "%s", q->branch);
			return resolve_named(out, q, table, &br, head);
		}
	latest:
		rc = head ? udr_catalog_get_version_at_seq(out, q->cat, table, head)
		          : udr_catalog_get_version(out, q->cat, table, 0);
		if (rc == UDR_ENOTFOUND)
			return udr__error_set(UDR_ENOTFOUND, "table '%s' not found", qt);
		return rc;
	case UDR__REF_VERSION:
		rc = udr_catalog_get_version(out, q->cat, table, ref->num);
		if (rc == 0 && head && q->wtx && (*out)->commit_seq > head) {
			/* committed after the open transaction's snapshot: not
			 * there yet, as for t@commit:N (only in a transaction:
			 * between statements the session's head is not kept
			 * current for the API's own reads) */
			rc = udr__error_set(UDR_ENOTFOUND,
			                    "table '%s' has no version %" PRIu64 " at this snapshot (commit %" PRIu64
			                    "; commit %" PRIu64 " made it later)",
			                    qt, ref->num, head, (*out)->commit_seq);
			udr_version_free(*out);
			*out = NULL;
			return rc;
		}
		if (rc == UDR_ENOTFOUND) {
			uint64_t latest = 0;
			if (udr_catalog_latest(&latest, q->cat, table) < 0)
				return udr__error_set(UDR_ENOTFOUND, "table '%s' not found", qt);
			return udr__error_set(UDR_ENOTFOUND, "table '%s' has no version %" PRIu64 " (latest is %" PRIu64 ")",
			                      qt, ref->num, latest);
		}
		return rc;
	case UDR__REF_TIME:
		if (q->branch && strcmp(q->branch, "main") != 0) {
			/* a session on a branch: that branch's history (as udr show
			 * --branch B --at T); a time past the snapshot: its head there */
			char spec[UDR_REF_NAME_MAX + 16], cr[40];
			uint64_t commit = 0;
			snprintf(spec, sizeof(spec), "branch:%s", q->branch);
			rc = udr_catalog_resolve_at(&commit, q->cat, spec, ref->time_ms);
			if (rc == UDR_ENOTFOUND || (rc == 0 && commit == 0)) {
				/* a time before the branch was made: what it was made
				 * from holds that history (main's, as before) */
				udr_error_clear();
				goto main_history;
			}
			if (rc == 0 && head && q->wtx && commit > head)
				rc = udr__resolve_at_seq(&commit, q->cat, spec, head);
			snprintf(cr, sizeof(cr), "commit:%" PRIu64, commit);
			if (rc == 0)
				rc = commit ? udr_catalog_get_version_on(out, q->cat, table, 0, cr) : UDR_ENOTFOUND;
			if (rc == UDR_ENOTFOUND)
				return udr__error_set(UDR_ENOTFOUND, "table '%s' had no version on branch %s at %s", qt,
				                      q->branch, qr);
			return rc;
		}
	main_history:
		rc = udr_catalog_get_version_at_time(out, q->cat, table, ref->time_ms);
		if (rc == 0 && head && q->wtx && (*out)->commit_seq > head) {
			/* the time is past the snapshot: what the snapshot holds */
			udr_version_free(*out);
			*out = NULL;
			rc = udr_catalog_get_version_at_seq(out, q->cat, table, head);
		}
		if (rc == UDR_ENOTFOUND)
			return udr__error_set(UDR_ENOTFOUND, "table '%s' had no version at %s", qt, qr);
		return rc;
	case UDR__REF_COMMIT:
		if (ref->num > head)
			return udr__error_set(UDR_ENOTFOUND, "commit %" PRIu64 " not found (the last is %" PRIu64 ")",
			                      ref->num, head);
		if (udr__catalog_branched(q->cat)) {
			/* a store that branched: the tables of that commit */
			char cr[40];
			snprintf(cr, sizeof(cr), "commit:%" PRIu64, ref->num);
			rc = udr_catalog_get_version_on(out, q->cat, table, 0, cr);
		} else {
			rc = udr_catalog_get_version_at_seq(out, q->cat, table, ref->num);
		}
		if (rc == UDR_ENOTFOUND)
			return udr__error_set(UDR_ENOTFOUND, "table '%s' had no version at commit %" PRIu64, qt, ref->num);
		return rc;
	}
	return udr__error_set(UDR_EINVAL, "bad reference");
}

int udr__q_resolve(udr_version **out, udr_query *q, const char *table, const char *ref)
{
	char name[UDR_TABLE_NAME_MAX + 1], qt[200];
	const char *at;
	udr__ref r;
	uint64_t head = 0;
	int rc;
	if (!out || !q || !table)
		return udr__error_set(UDR_EINVAL, "invalid argument: table is NULL");
	at = strchr(table, '@');
	if (at) {
		if (ref)
			return udr__error_set(UDR_EINVAL, "a reference is given twice (in the table and as ref)");
		ref = at + 1;
	}
	if ((size_t)(at ? at - table : (ptrdiff_t)strlen(table)) > UDR_TABLE_NAME_MAX) {
		udr__quote(qt, sizeof(qt), table);
		return udr__error_set(UDR_EINVAL, "invalid table name '%s'", qt);
	}
	memcpy(name, table, at ? (size_t)(at - table) : strlen(table));
	name[at ? (size_t)(at - table) : strlen(table)] = '\0';
	if ((rc = udr_table_name_check(name)) < 0)
		return rc;
	if (ref && !*ref) /* as SQL's "t@": not the latest by accident */
		return udr__error_set(UDR_EINVAL, "an empty version reference for table %s (a version, time, commit, "
		                                  "branch or tag; none for the latest)", name);
	if (!ref) {
		memset(&r, 0, sizeof(r));
		r.kind = UDR__REF_LATEST;
	} else if ((rc = udr__ref_parse(&r, ref, strlen(ref))) < 0) {
		return rc;
	}
	/* an open transaction reads at its snapshot (db.read inside one) */
	if (!(head = udr__w_snapshot(q)) && (rc = udr_catalog_head(&head, q->cat)) < 0)
		return rc;
	return resolve_ref(out, q, name, &r, head);
}

int udr_query_resolve(uint64_t *version, udr_query *q, const char *table, const char *ref)
{
	udr_version *v = NULL;
	int rc;
	if (!version || !q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_resolve");
	if ((rc = udr__q_resolve(&v, q, table, ref)) < 0)
		return rc;
	*version = v->version;
	udr_version_free(v);
	return 0;
}

/* ---- udr_log and udr_tables ------------------------------------------------------------------ */

static int appender_error(duckdb_appender *app, const char *what)
{
	const char *e = duckdb_appender_error(*app);
	int rc = udr__error_set(UDR_ERROR, "cannot fill %s: %s", what, e ? e : "appender error");
	duckdb_appender_destroy(app);
	return rc;
}

static duckdb_state append_text(duckdb_appender app, const char *s)
{
	return s ? duckdb_append_varchar(app, s) : duckdb_append_null(app);
}

static duckdb_timestamp ts_of_ms(int64_t ms)
{
	duckdb_timestamp t;
	t.micros = ms * 1000;
	return t;
}

/*
 * The rows a change inserted, updated and deleted (not known: NULL),
 * and whether it dropped the table.  Counts come from the new version's
 * udr.changes, trusted only for a plain commit whose version follows the
 * change's old one (a merge, cherry-pick or revert names or copies versions
 * made against other parents); a new table's rows (udr.rows) are all
 * inserted.  Without either (a commit of chunks), nothing is known.
 */
typedef struct change_info {
	uint64_t n[3]; /* inserted, updated, deleted */
	bool known;    /* else NULL */
	bool dropped;
} change_info;

static int change_rows(change_info *out, udr_query *q, const udr_commit *c, const udr_change *ch)
{
	udr_version *v = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = udr_catalog_get_version(&v, q->cat, ch->table, ch->new_version)) < 0)
		return rc;
	out->dropped = udr__version_dropped(v);
	if (!c->op && v->parent == ch->old_version) {
		const char *rows = udr_version_get_meta(v, "udr.rows");
		if (udr__version_changes(out->n, v)) {
			out->known = true;
		} else if (ch->old_version == 0 && rows && udr__parse_u64(&out->n[0], rows, strlen(rows)) == 0) {
			out->n[1] = out->n[2] = 0;
			out->known = true;
		}
	}
	udr_version_free(v);
	return 0;
}

static duckdb_state append_count(duckdb_appender app, uint64_t n, bool known)
{
	return known ? duckdb_append_int64(app, (int64_t)n) : duckdb_append_null(app);
}

static int ensure_log(udr_query *q, uint64_t head)
{
	udr_log_query lq = UDR_LOG_QUERY_INIT;
	udr_commit **commits = NULL;
	change_info *rows = NULL;
	size_t n = 0, nch = 0;
	duckdb_appender app;
	int rc;
	if (!q->log_built) {
		rc = udr__q_exec(q, "CREATE OR REPLACE TEMP TABLE udr_log (seq BIGINT, time TIMESTAMP_MS, "
		                    "branch VARCHAR, author VARCHAR, message VARCHAR, \"table\" VARCHAR, "
		                    "old_version BIGINT, new_version BIGINT, inserted BIGINT, updated BIGINT, "
		                    "deleted BIGINT, dropped BOOLEAN)");
		if (rc < 0)
			return rc;
		q->log_built = true;
		q->log_seq = 0;
	}
	if (q->log_seq >= head)
		return 0;
	lq.since_seq = q->log_seq; /* incremental: the log only grows */
	if ((rc = udr_catalog_log(&commits, &n, q->cat, &lq)) < 0)
		return rc;
	/* the rows of each change first (version files): an error leaves
	 * udr_log as it was */
	for (size_t i = 0; i < n && commits[i]->seq <= head; i++)
		nch += commits[i]->nchanges;
	if (!(rows = calloc(nch ? nch : 1, sizeof(*rows)))) {
		udr_commit_array_free(commits, n);
		return udr__error_oom();
	}
	for (size_t i = 0, j = 0; rc == 0 && i < n && commits[i]->seq <= head; i++)
		for (size_t k = 0; rc == 0 && k < commits[i]->nchanges; k++, j++)
			rc = change_rows(&rows[j], q, commits[i], &commits[i]->changes[k]);
	if (rc < 0) {
		free(rows);
		udr_commit_array_free(commits, n);
		return rc;
	}
	if ((rc = udr__q_duck(q)) < 0) {
		free(rows);
		udr_commit_array_free(commits, n);
		return rc;
	}
	if (duckdb_appender_create_ext(q->con, "temp", "main", "udr_log", &app) == DuckDBError) {
		free(rows);
		udr_commit_array_free(commits, n);
		return appender_error(&app, "udr_log");
	}
	for (size_t i = 0, j = 0; i < n; i++) {
		const udr_commit *c = commits[i];
		if (c->seq > head)
			break;
		for (size_t k = 0; k < c->nchanges; k++, j++) {
			const change_info *x = &rows[j];
			if (duckdb_append_int64(app, (int64_t)c->seq) || duckdb_append_timestamp(app, ts_of_ms(c->time_ms)) ||
			    append_text(app, c->branch) || append_text(app, c->author) ||
			    append_text(app, c->message) || append_text(app, c->changes[k].table) ||
			    duckdb_append_int64(app, (int64_t)c->changes[k].old_version) ||
			    duckdb_append_int64(app, (int64_t)c->changes[k].new_version) ||
			    append_count(app, x->n[0], x->known) || append_count(app, x->n[1], x->known) ||
			    append_count(app, x->n[2], x->known) || duckdb_append_bool(app, x->dropped) ||
			    duckdb_appender_end_row(app)) {
				free(rows);
				udr_commit_array_free(commits, n);
				return appender_error(&app, "udr_log");
			}
		}
		q->log_seq = c->seq;
	}
	free(rows);
	udr_commit_array_free(commits, n);
	if (duckdb_appender_close(app) == DuckDBError)
		return appender_error(&app, "udr_log");
	duckdb_appender_destroy(&app);
	return 0;
}

/*
 * udr_tables is a view over the table function udr_tables_scan(), which
 * DuckDB tells which columns a statement reads (projection pushdown): name,
 * version and commit come from the table state at the statement's snapshot
 * (one checkpoint and one record, as udr_catalog_list_tables reads), and
 * the version files are read only for rows, parts, format, created and
 * message.  So `SELECT count(*) FROM udr_tables` costs what the listing
 * costs, whatever the number of tables.
 */
enum { TCOL_NAME, TCOL_VERSION, TCOL_ROWS, TCOL_PARTS, TCOL_FORMAT, TCOL_CREATED, TCOL_COMMIT,
       TCOL_MESSAGE, TCOL_DVS, TCOL_ADDED, TCOL_N };

typedef struct tables_scan {
	udr__tstate st;    /* table -> latest version and commit at the snapshot */
	size_t pos;
	idx_t ncols;       /* projected columns */
	idx_t cols[TCOL_N];
	bool need_version; /* a projected column is in the version file */
} tables_scan;

static void tables_scan_free(void *p)
{
	tables_scan *t = p;
	if (!t)
		return;
	udr__tstate_free(&t->st);
	free(t);
}

static void tables_bind(duckdb_bind_info info)
{
	static const char *const names[TCOL_N] = {"name", "version", "rows", "parts", "format", "created",
	                                          "commit", "message", "deletion_vectors", "bytes_added"};
	static const duckdb_type types[TCOL_N] = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT,
	                                          DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_TIMESTAMP_MS,
	                                          DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT,
	                                          DUCKDB_TYPE_BIGINT};
	for (int i = 0; i < TCOL_N; i++) {
		duckdb_logical_type t = duckdb_create_logical_type(types[i]);
		duckdb_bind_add_result_column(info, names[i], t);
		duckdb_destroy_logical_type(&t);
	}
}

/* The state at seq; format-1 heads (no window) from the version files. */
static int tables_state(udr__tstate *out, udr_query *q, uint64_t seq)
{
	char **names = NULL;
	size_t n = 0;
	bool known = false;
	int rc = 0;
	if (seq > 0 && udr__catalog_branched(q->cat))
		rc = udr__branch_head(&seq, q->cat, udr__q_branch(q), seq); /* the session branch's tables */
	if (rc == 0)
		rc = udr__state_at(out, &known, q->cat, seq);
	if (rc < 0 || known)
		return rc;
	udr__tstate_free(out);
	memset(out, 0, sizeof(*out));
	if ((rc = udr_catalog_list_tables(&names, &n, q->cat)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		udr_version *v = NULL;
		rc = udr_catalog_get_version_at_seq(&v, q->cat, names[i], seq);
		if (rc == UDR_ENOTFOUND) { /* created after the snapshot */
			udr_error_clear();
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = udr__tstate_set(out, v->table, v->version, v->commit_seq);
		udr_version_free(v);
	}
	udr_strarray_free(names, n);
	return rc;
}

/* Errors of the scan reach the statement as the replacement scan's do. */
static void tables_fail(udr_query *q, int rc)
{
	q->scan_rc = rc;
	snprintf(q->scan_msg, sizeof(q->scan_msg), "udr_tables: %s", udr_error_last()->message);
}

static void tables_init(duckdb_init_info info)
{
	udr_query *q = duckdb_init_get_extra_info(info);
	tables_scan *t = calloc(1, sizeof(*t));
	int rc;
	if (!t) {
		duckdb_init_set_error(info, "out of memory");
		return;
	}
	t->ncols = duckdb_init_get_column_count(info);
	for (idx_t i = 0; i < t->ncols && i < TCOL_N; i++)
		t->cols[i] = duckdb_init_get_column_index(info, i);
	/* every version file is read: a table whose latest version is a drop
	 * (udr.dropped) is gone and not listed, whatever the columns read */
	t->need_version = true;
	duckdb_init_set_max_threads(info, 1);
	if ((rc = tables_state(&t->st, q, q->snap_head)) < 0) {
		tables_fail(q, rc);
		duckdb_init_set_error(info, q->scan_msg);
		tables_scan_free(t);
		return;
	}
	duckdb_init_set_init_data(info, t, tables_scan_free);
}

static void put_text(duckdb_vector vec, idx_t row, const char *s)
{
	if (s) {
		duckdb_vector_assign_string_element(vec, row, s);
		return;
	}
	duckdb_vector_ensure_validity_writable(vec);
	duckdb_validity_set_row_invalid(duckdb_vector_get_validity(vec), row);
}

static void put_i64(duckdb_vector vec, idx_t row, const uint64_t *v)
{
	if (v) {
		((int64_t *)duckdb_vector_get_data(vec))[row] = (int64_t)*v;
		return;
	}
	duckdb_vector_ensure_validity_writable(vec);
	duckdb_validity_set_row_invalid(duckdb_vector_get_validity(vec), row);
}

static void tables_function(duckdb_function_info info, duckdb_data_chunk out)
{
	udr_query *q = duckdb_function_get_extra_info(info);
	tables_scan *t = duckdb_function_get_init_data(info);
	idx_t max = duckdb_vector_size(), row = 0;
	for (; row < max && t->pos < t->st.n; t->pos++) {
		const udr__tentry *e = &t->st.e[t->pos];
		udr_version *v = NULL;
		if (t->need_version) {
			int rc = udr_catalog_get_version(&v, q->cat, e->table, e->version);
			if (rc < 0) {
				tables_fail(q, rc);
				duckdb_function_set_error(info, q->scan_msg);
				return;
			}
			if (udr__version_dropped(v)) {
				udr_version_free(v);
				continue;
			}
		}
		for (idx_t i = 0; i < t->ncols && i < TCOL_N; i++) {
			duckdb_vector vec = duckdb_data_chunk_get_vector(out, i);
			const char *rows = v ? udr_version_get_meta(v, "udr.rows") : NULL;
			uint64_t n = 0;
			switch (t->cols[i]) {
			case TCOL_NAME: put_text(vec, row, e->table); break;
			case TCOL_VERSION: put_i64(vec, row, &e->version); break;
			case TCOL_COMMIT: put_i64(vec, row, &e->seq); break;
			case TCOL_ROWS:
				put_i64(vec, row, rows && udr__parse_u64(&n, rows, strlen(rows)) == 0 ? &n : NULL);
				break;
			case TCOL_PARTS: {
				/* data parts (the chunks may end with deletion vectors) */
				udr__parts ps;
				if (udr__parts_of(&ps, v) == 0) {
					n = ps.n;
					udr__parts_free(&ps);
					put_i64(vec, row, &n);
				} else {
					udr_error_clear();
					put_i64(vec, row, NULL);
				}
				break;
			}
			case TCOL_FORMAT: put_text(vec, row, udr_version_get_meta(v, "udr.format")); break;
			case TCOL_CREATED:
				/* TIMESTAMP_MS: milliseconds since the epoch */
				((int64_t *)duckdb_vector_get_data(vec))[row] = v->created_ms;
				break;
			case TCOL_MESSAGE: put_text(vec, row, v->message); break;
			case TCOL_DVS:
			case TCOL_ADDED: {
				/* deletion vectors; bytes of chunks the parent version lacks */
				int rc = t->cols[i] == TCOL_DVS ? udr__version_dv_count(&n, v)
				                                : udr__version_added_bytes(&n, q->cat, q->store, v);
				if (rc < 0) {
					udr_version_free(v);
					tables_fail(q, rc);
					duckdb_function_set_error(info, q->scan_msg);
					return;
				}
				put_i64(vec, row, &n);
				break;
			}
			default: break;
			}
		}
		udr_version_free(v);
		row++;
	}
	duckdb_data_chunk_set_size(out, row);
}

static int ensure_tables(udr_query *q, uint64_t head)
{
	duckdb_table_function f;
	int rc;
	(void)head; /* the scan reads the statement's snapshot (q->snap_head) */
	if (q->tables_built)
		return 0;
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	f = duckdb_create_table_function();
	duckdb_table_function_set_name(f, "udr_tables_scan");
	duckdb_table_function_set_extra_info(f, q, NULL);
	duckdb_table_function_set_bind(f, tables_bind);
	duckdb_table_function_set_init(f, tables_init);
	duckdb_table_function_set_function(f, tables_function);
	duckdb_table_function_supports_projection_pushdown(f, true);
	if (duckdb_register_table_function(q->con, f) == DuckDBError) {
		duckdb_destroy_table_function(&f);
		return udr__error_set(UDR_ERROR, "cannot register the udr_tables scan with DuckDB");
	}
	duckdb_destroy_table_function(&f);
	q->tables_built = true;
	return udr__q_exec(q, "CREATE OR REPLACE TEMP VIEW udr_tables AS SELECT * FROM udr_tables_scan()");
}

/* ---- rewriting SQL ------------------------------------------------------------------------------ */

typedef struct exists_memo {
	udr_query *q;
	char **names;
	int *results;
	size_t n, cap;
} exists_memo;

static int exists_cb(const char *name, void *payload)
{
	exists_memo *m = payload;
	uint64_t latest = 0;
	int rc;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->names[i], name) == 0)
			return m->results[i];
	rc = udr_catalog_latest(&latest, m->q->cat, name);
	if (rc == UDR_ENOTFOUND || rc == UDR_EINVAL) {
		udr_error_clear();
		/* made by the session's open transaction: NAME@latest reads it */
		rc = udr__w_working(m->q, name) == UDR__W_SHADOW;
	} else if (rc == 0) {
		rc = 1;
	} else {
		return rc;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		char **pn = realloc(m->names, cap * sizeof(*pn));
		int *pr;
		if (!pn)
			return rc;
		m->names = pn;
		if (!(pr = realloc(m->results, cap * sizeof(*pr))))
			return rc;
		m->results = pr;
		m->cap = cap;
	}
	if ((m->names[m->n] = strdup(name)) != NULL)
		m->results[m->n++] = rc;
	return rc;
}

/*
 * Table names are resolved by the replacement scan, where DuckDB binds a
 * table and only there.  What is left to do on the text: an unquoted
 * NAME@REF (not an identifier) becomes the quoted name "NAME@REF"; the
 * built-in tables udr_log and udr_tables are brought up to date when named;
 * the statement's snapshot (catalog head) is taken.
 */
int udr__q_rewrite(char **out, udr_query *q, const char *sql)
{
	exists_memo memo = {q, NULL, NULL, 0, 0};
	udr__sqlref *refs = NULL;
	size_t nrefs = 0, pos = 0;
	uint64_t head = 0;
	udr__buf b = {0};
	int rc;
	udr__q_settle(q); /* the built-in tables may be filled below */
	rc = udr__sql_scan(&refs, &nrefs, sql, exists_cb, &memo);
	for (size_t i = 0; i < memo.n; i++)
		free(memo.names[i]);
	free(memo.names);
	free(memo.results);
	if (rc < 0)
		return rc;
	/* one snapshot for every bare name and @latest of this statement (an
	 * open write transaction reads at its own snapshot) */
	if (!(head = udr__w_snapshot(q)) && (rc = udr_catalog_head(&head, q->cat)) < 0)
		goto out;
	q->snap_head = head;
	for (size_t i = 0; rc == 0 && i < nrefs; i++) {
		const udr__sqlref *r = &refs[i];
		char *name;
		if (r->special == UDR__SPECIAL_LOG) {
			rc = ensure_log(q, head);
			continue;
		}
		if (r->special == UDR__SPECIAL_TABLES) {
			rc = ensure_tables(q, head);
			continue;
		}
		if (r->special == UDR__SPECIAL_CONFLICTS) {
			rc = udr__conflicts_ensure(q);
			continue;
		}
		if (!r->has_ref || sql[r->start] == '"')
			continue;
		if (!(name = strndup(sql + r->start, r->end - r->start))) {
			rc = udr__error_oom();
			break;
		}
		rc = udr__buf_put(&b, sql + pos, r->start - pos);
		if (rc == 0)
			rc = udr__sql_ident(&b, name);
		free(name);
		pos = r->end;
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, sql + pos);
out:
	free(refs);
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*out = b.ptr;
	return 0;
}

int udr_query_sql(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams)
{
	char *rewritten = NULL;
	udr__statement was;
	int rc;
	if (out)
		*out = NULL;
	if (!q || !sql)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_sql");
	/* DuckDB first: a script's statements may write before any runs SQL */
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	/* BEGIN; ...; COMMIT in one call: statement by statement (write.c) */
	if ((rc = udr__w_script(out, q, sql, params, nparams)) != 1)
		return rc;
	was = udr__catalog_statement_begin(q->cat); /* one look at the head */
	if ((rc = udr__q_rewrite(&rewritten, q, sql)) == 0) {
		/* writes to UDR tables and transaction statements: write.c */
		if ((rc = udr__w_sql(out, q, rewritten, params, nparams)) == 1)
			rc = udr__q_run(out, q, rewritten, params, nparams, UDR__RUN_USER);
		free(rewritten);
	}
	if (rc < 0)
		udr__w_statement_failed(q, sql);
	udr__catalog_statement_end(was);
	return rc;
}

int udr__q_refuse_read_only(const udr_query *q, const char *call)
{
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to %s: NULL session", call);
	if (!q->read_only)
		return 0;
	return udr__error_set(UDR_EINVAL, "read-only session: %s commits, and was not run", call);
}

int udr_query_set_read_only(udr_query *q, int on)
{
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_set_read_only");
	q->read_only = on != 0;
	return 0;
}

int udr__q_check_branch(udr_query *q, const char *branch)
{
	uint64_t head = 0, bh = 0;
	int rc = udr_ref_name_check(branch);
	if (rc == 0 && (rc = udr_catalog_head(&head, q->cat)) == 0)
		rc = udr__branch_head(&bh, q->cat, branch, head);
	return rc;
}

int udr_query_set_message(udr_query *q, const char *message)
{
	char *m = NULL;
	int rc;
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_set_message");
	/* before anything is stored (a write found it only at its commit,
	 * its parts already put) */
	if ((rc = udr__message_check(message)) < 0)
		return rc;
	if (message && !(m = strdup(message)))
		return udr__error_oom();
	free(q->message);
	q->message = m;
	return 0;
}

const char *udr__q_branch(const udr_query *q)
{
	return q->branch ? q->branch : "main";
}

int udr_query_set_branch(udr_query *q, const char *branch)
{
	char *b = NULL, qb[UDR_REF_NAME_MAX * 4 + 8];
	int rc;
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_set_branch");
	if (branch && strncmp(branch, "branch:", 7) == 0)
		branch += 7;
	if (branch && strcmp(branch, "main") == 0)
		branch = NULL;
	if ((!branch && !q->branch) || (branch && q->branch && strcmp(branch, q->branch) == 0))
		return 0; /* unchanged */
	if (q->wtx) {
		udr__quote(qb, sizeof(qb), udr__q_branch(q));
		return udr__error_set(UDR_EINVAL,
		                      "a SQL transaction is open on branch '%s' in this session: COMMIT or ROLLBACK "
		                      "it before changing branch",
		                      qb);
	}
	if (branch) {
		/* the branch must exist now (a later statement finds it deleted:
		 * not found then) */
		if ((rc = udr__q_check_branch(q, branch)) < 0)
			return rc;
		if (!(b = strdup(branch)))
			return udr__error_oom();
	}
	free(q->branch);
	q->branch = b;
	return 0;
}

int udr__q_describe(char ***names, char ***types, size_t *n, udr_query *q, const char *relation_sql)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	char **nm = NULL, **ty = NULL;
	size_t rows;
	int rc = udr__buf_printf(&b, "DESCRIBE %s", relation_sql);
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	udr__buf_free(&b);
	if (rc < 0)
		return rc;
	rows = udr_result_row_count(r);
	if (!(nm = calloc(rows ? rows : 1, sizeof(*nm))) || !(ty = calloc(rows ? rows : 1, sizeof(*ty)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t i = 0; i < rows; i++) {
		udr_value a, t;
		if ((rc = udr_result_get(&a, r, i, 0)) < 0 || (rc = udr_result_get(&t, r, i, 1)) < 0)
			goto out;
		if (!(nm[i] = strdup(a.str ? a.str : "")) || !(ty[i] = strdup(t.str ? t.str : ""))) {
			rc = udr__error_oom();
			goto out;
		}
	}
	*names = nm;
	*types = ty;
	*n = rows;
	nm = ty = NULL;
out:
	if (nm)
		udr_strarray_free(nm, rows);
	if (ty)
		udr_strarray_free(ty, rows);
	udr_result_free(r);
	return rc;
}

/* ---- what SQL may write -------------------------------------------------------------------- */

int udr__q_check_output(udr_query *q, const char *path)
{
	char *dir = NULL, *rdir = NULL, *root = NULL, qp[300];
	const char *slash = strrchr(path, '/');
	int rc = 0;
	size_t n;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return udr__error_oom();
	rdir = realpath(dir, NULL);
	root = realpath(udr_db_path(q->db), NULL);
	/* a directory that does not resolve cannot be written into: COPY says so */
	if (rdir && root) {
		n = strlen(root);
		if (strncmp(rdir, root, n) == 0 && (rdir[n] == '\0' || rdir[n] == '/' || n == 1)) {
			udr__quote(qp, sizeof(qp), path);
			rc = udr__error_set(UDR_EINVAL,
			                    "refusing to write '%s': it is inside the store (%s), which only udr "
			                    "itself writes",
			                    qp, root);
		}
	}
	free(dir);
	free(rdir);
	free(root);
	return rc;
}

int udr__q_check(udr_query *q, const char *sql, int kind)
{
	duckdb_extracted_statements ext = NULL;
	duckdb_prepared_statement st = NULL;
	int rc;
	udr__q_settle(q);
	if ((rc = extract_one(&ext, q, sql)) < 0)
		return rc;
	q->scan_rc = 0;
	if ((rc = check_first_keyword(sql, kind)) < 0)
		;
	else if (duckdb_prepare_extracted_statement(q->con, ext, 0, &st) == DuckDBError)
		rc = run_error(q, duckdb_prepare_error(st));
	else
		rc = check_kind(st, sql, kind);
	q->scan_rc = 0;
	duckdb_destroy_prepare(&st);
	duckdb_destroy_extracted(&ext);
	return rc;
}
