/*
 * expire.c - expiry in the log (docs/GC.md 1.4): the "expire" object of an
 * expire record, each table's expired set (catalog/expired/<table>/<seq>.json,
 * derived from the log like state/ and rebuilt from it when missing or
 * damaged), and the commit step's part, decided under the writer lock.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include <jansson.h>
#include <udr/gc.h>
#include <udr/log.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"
#include "catalog/lease.h"

#define XSET_FORMAT 1
/* Records followed back along a table's prev chain when rebuilding. */
#define XSET_REBUILD_MAX 1000000

void udr__xrec_free(udr__xrec *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nt; i++) {
		free(x->t[i].table);
		free(x->t[i].ranges);
	}
	free(x->t);
	free(x->rule);
	free(x);
}

void udr__xset_free(udr__xset *s)
{
	if (!s)
		return;
	free(s->r);
	memset(s, 0, sizeof(*s));
}

bool udr__op_expiry(const char *op)
{
	return op && (strcmp(op, "expire") == 0 || strcmp(op, "unexpire") == 0);
}

bool udr__op_retention(const char *op)
{
	return udr__op_expiry(op) || (op && (strcmp(op, "gc") == 0 || strcmp(op, "retention") == 0));
}

static bool is_u64(json_t *x)
{
	return json_is_integer(x) && json_integer_value(x) >= 0;
}

/* ---- the record's "expire" object ---------------------------------------- */

/* [[a,b],...]: 1 <= a <= b, sorted, disjoint, not adjacent, at least one. */
static int ranges_from_json(uint64_t (**out)[2], size_t *n, json_t *arr, uint64_t *count)
{
	size_t i, k = json_is_array(arr) ? json_array_size(arr) : 0;
	uint64_t (*r)[2];
	json_t *x;
	*out = NULL;
	*n = 0;
	if (k == 0)
		return -1;
	if (!(r = calloc(k, sizeof(*r))))
		return UDR_ENOMEM;
	json_array_foreach(arr, i, x) {
		json_t *a = json_array_get(x, 0), *b = json_array_get(x, 1);
		if (!json_is_array(x) || json_array_size(x) != 2 || !is_u64(a) || !is_u64(b) || json_integer_value(a) < 1 ||
		    json_integer_value(b) < json_integer_value(a) ||
		    (i > 0 && (uint64_t)json_integer_value(a) <= r[i - 1][1] + 1)) {
			free(r);
			return -1;
		}
		r[i][0] = (uint64_t)json_integer_value(a);
		r[i][1] = (uint64_t)json_integer_value(b);
		*count += r[i][1] - r[i][0] + 1;
	}
	*out = r;
	*n = k;
	return 0;
}

int udr__xrec_from_json(udr__xrec **out, json_t *o, const char *path, uint64_t seq, bool unexpire)
{
	json_t *tables = json_object_get(o, "tables"), *at = json_object_get(o, "at"),
	       *pol = json_object_get(o, "policy"), *rule = json_object_get(o, "rule"),
	       *ver = json_object_get(o, "versions"), *undo = json_object_get(o, "undo"), *val;
	const char *key, *last = NULL, *what = unexpire ? "unexpire" : "expire";
	udr__xrec *x;
	uint64_t count = 0;
	int rc = 0;
	*out = NULL;
	if (!json_is_object(o) || !json_is_object(tables) || json_object_size(tables) == 0 ||
	    (unexpire ? json_object_size(o) != 2 || !is_u64(undo) || (uint64_t)json_integer_value(undo) >= seq
	              : json_object_size(o) != 5 || !is_u64(at) || (uint64_t)json_integer_value(at) >= seq || !is_u64(pol) ||
	                    (uint64_t)json_integer_value(pol) >= seq || !json_is_string(rule) || !is_u64(ver)))
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad %s object", path, what);
	if (!(x = calloc(1, sizeof(*x))) || !(x->t = calloc(json_object_size(tables), sizeof(*x->t))) ||
	    (!unexpire && !(x->rule = strdup(json_string_value(rule))))) {
		udr__xrec_free(x);
		return udr__error_oom();
	}
	x->unexpire = unexpire;
	if (unexpire) {
		x->undo = (uint64_t)json_integer_value(undo);
	} else {
		x->at = (uint64_t)json_integer_value(at);
		x->policy = (uint64_t)json_integer_value(pol);
		x->versions = (uint64_t)json_integer_value(ver);
	}
	json_object_foreach(tables, key, val) {
		udr__xtable *t = &x->t[x->nt];
		json_t *prev = json_object_get(val, "prev"), *st = json_object_get(val, "state");
		if (udr_table_name_check(key) < 0 || (last && strcmp(last, key) >= 0) || !json_is_object(val) ||
		    json_object_size(val) != 3 || !is_u64(prev) || (uint64_t)json_integer_value(prev) >= seq ||
		    (unexpire && json_integer_value(prev) == 0) ||
		    !json_is_string(st) || json_string_length(st) != UDR_HASH_HEXSIZE ||
		    udr_hash_fromhex(&t->state, json_string_value(st)) < 0) {
			udr_error_clear();
			rc = -1;
			break;
		}
		if (!(t->table = strdup(key))) {
			rc = UDR_ENOMEM;
			break;
		}
		x->nt++;
		t->prev = (uint64_t)json_integer_value(prev);
		if ((rc = ranges_from_json(&t->ranges, &t->nranges, json_object_get(val, unexpire ? "remove" : "add"),
		                           &count)) != 0)
			break;
		last = key;
	}
	if (rc == 0 && !unexpire && count != x->versions)
		rc = -1;
	if (unexpire)
		x->versions = count;
	if (rc != 0) {
		udr__xrec_free(x);
		return rc == UDR_ENOMEM ? udr__error_oom()
		                        : udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad %s object", path, what);
	}
	*out = x;
	return 0;
}

int udr__xrec_to_json(json_t *o, const udr__xrec *x)
{
	json_t *e = json_object(), *tables = json_object();
	char hex[UDR_HASH_HEXSIZE + 1];
	int fail = !e || !tables;
	if (!fail && x->unexpire) {
		fail |= json_object_set_new(e, "undo", json_integer((json_int_t)x->undo));
	} else if (!fail) {
		fail |= json_object_set_new(e, "at", json_integer((json_int_t)x->at));
		fail |= json_object_set_new(e, "policy", json_integer((json_int_t)x->policy));
		fail |= json_object_set_new(e, "rule", json_string(x->rule ? x->rule : ""));
		fail |= json_object_set_new(e, "versions", json_integer((json_int_t)x->versions));
	}
	for (size_t i = 0; i < x->nt && !fail; i++) {
		json_t *t = json_object(), *add = json_array();
		fail |= !t || !add;
		for (size_t k = 0; k < x->t[i].nranges && !fail; k++)
			fail |= json_array_append_new(add, json_pack("[II]", (json_int_t)x->t[i].ranges[k][0],
			                                             (json_int_t)x->t[i].ranges[k][1]));
		udr_hash_tohex(hex, &x->t[i].state);
		fail |= json_object_set_new(t, x->unexpire ? "remove" : "add", add);
		add = NULL;
		fail |= json_object_set_new(t, "prev", json_integer((json_int_t)x->t[i].prev));
		fail |= json_object_set_new(t, "state", json_string(hex));
		fail |= json_object_set_new(tables, x->t[i].table, t);
		json_decref(add);
	}
	fail |= json_object_set_new(e, "tables", tables);
	fail |= json_object_set_new(o, x->unexpire ? "unexpire" : "expire", e);
	return fail;
}

/* ---- expired sets -------------------------------------------------------- */

const udr__xrange *udr__xset_find(const udr__xset *s, uint64_t v)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].last < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->r[lo].first <= v ? &s->r[lo] : NULL;
}

static int xset_reserve(udr__xset *s, size_t extra)
{
	size_t cap, bytes;
	udr__xrange *p;
	if (s->n + extra <= s->cap)
		return 0;
	cap = (s->n + extra) * 2;
	if (!udr__mul_ok(cap, sizeof(*p), &bytes) || !(p = realloc(s->r, bytes)))
		return udr__error_oom();
	s->r = p;
	s->cap = cap;
	return 0;
}

/* Add [a, b] expired by seq at ms; it must not meet the set (UDR_ECORRUPT).
 * Adjacent ranges of the same record are joined, so a set has one form. */
static int xset_add(udr__xset *s, uint64_t a, uint64_t b, uint64_t seq, int64_t ms)
{
	size_t i = 0;
	int rc;
	while (i < s->n && s->r[i].last < a)
		i++;
	if (i < s->n && s->r[i].first <= b)
		return udr__error_set(UDR_ECORRUPT, "versions %" PRIu64 "..%" PRIu64 " are expired twice (commits %" PRIu64
		                      " and %" PRIu64 ")", a, b, s->r[i].seq, seq);
	if (i > 0 && s->r[i - 1].last + 1 == a && s->r[i - 1].seq == seq) {
		s->r[i - 1].last = b;
		if (i < s->n && s->r[i].first == b + 1 && s->r[i].seq == seq) {
			s->r[i - 1].last = s->r[i].last;
			memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(*s->r));
			s->n--;
		}
		return 0;
	}
	if (i < s->n && s->r[i].first == b + 1 && s->r[i].seq == seq) {
		s->r[i].first = a;
		return 0;
	}
	if ((rc = xset_reserve(s, 1)) < 0)
		return rc;
	memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(*s->r));
	s->r[i] = (udr__xrange){a, b, seq, ms};
	s->n++;
	return 0;
}

/* Remove [a, b], every version of it expired now (UDR_ECORRUPT if not). */
static int xset_remove(udr__xset *s, uint64_t a, uint64_t b)
{
	uint64_t v = a;
	int rc;
	/* each version of [a, b] in the set: walk its ranges in order */
	for (size_t i = 0; i < s->n && v <= b; i++) {
		udr__xrange *x = &s->r[i];
		uint64_t lo, hi;
		if (x->last < v)
			continue;
		if (x->first > v)
			break;
		lo = v;
		hi = x->last < b ? x->last : b;
		if (x->first < lo && x->last > hi) { /* a hole: split */
			if ((rc = xset_reserve(s, 1)) < 0)
				return rc;
			x = &s->r[i];
			memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(*s->r));
			s->n++;
			s->r[i].last = lo - 1;
			s->r[i + 1].first = hi + 1;
		} else if (x->first < lo) {
			x->last = lo - 1;
		} else if (x->last > hi) {
			x->first = hi + 1;
		} else {
			memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(*s->r));
			s->n--;
			i--;
		}
		if (hi == UINT64_MAX)
			return 0;
		v = hi + 1;
	}
	if (v <= b)
		return udr__error_set(UDR_ECORRUPT, "versions %" PRIu64 "..%" PRIu64 " are unexpired but not expired", v, b);
	return 0;
}

static char *xset_dir(const udr_catalog *c, const char *table)
{
	size_t n = strlen(c->path) + strlen(table) + 16;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/expired/%s", c->path, table);
	else
		udr__error_oom();
	return p;
}

static char *xset_path(const udr_catalog *c, const char *table, uint64_t seq)
{
	char *dir = xset_dir(c, table), *p;
	if (!dir)
		return NULL;
	p = udr__seq_path(dir, seq);
	free(dir);
	return p;
}

/* {"format":1,"table":T,"seq":S,"ranges":[[first,last,seq,ms],...],"check":...} */
static int xset_encode(char **out, size_t *len, const udr__xset *s, const char *table, uint64_t seq)
{
	udr__buf b = {0};
	int rc = udr__buf_printf(&b, "{\"format\":%d,\"table\":\"%s\",\"seq\":%" PRIu64 ",\"ranges\":[", XSET_FORMAT, table,
	                         seq);
	for (size_t i = 0; i < s->n && rc == 0; i++)
		rc = udr__buf_printf(&b, "%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRId64 "]", i ? "," : "", s->r[i].first,
		                     s->r[i].last, s->r[i].seq, s->r[i].ms);
	if (rc == 0)
		rc = udr__buf_puts(&b, "]}");
	if (rc == 0)
		rc = udr__seal(&b.ptr, &b.len);
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*out = b.ptr;
	*len = b.len;
	return 0;
}

static int xset_parse(udr__xset *out, const char *text, size_t len, const char *path, const char *table, uint64_t seq)
{
	json_error_t jerr;
	json_t *o, *arr, *x;
	size_t i;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	if ((rc = udr__unseal(text, len, path, "expired set")) <= 0)
		return rc < 0 ? rc : udr__error_set(UDR_ECORRUPT, "corrupt expired set %s: its check is missing", path);
	if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_ECORRUPT, "corrupt expired set %s: %s", path, jerr.text);
	arr = json_object_get(o, "ranges");
	if (!json_is_integer(json_object_get(o, "format")) || json_integer_value(json_object_get(o, "format")) != XSET_FORMAT ||
	    !json_is_string(json_object_get(o, "table")) || strcmp(json_string_value(json_object_get(o, "table")), table) ||
	    !is_u64(json_object_get(o, "seq")) || (uint64_t)json_integer_value(json_object_get(o, "seq")) != seq ||
	    !json_is_array(arr))
		rc = -1;
	else if (json_array_size(arr) && (rc = xset_reserve(out, json_array_size(arr))) < 0)
		goto done;
	json_array_foreach(arr, i, x) {
		json_t *a = json_array_get(x, 0), *b = json_array_get(x, 1), *s = json_array_get(x, 2),
		       *m = json_array_get(x, 3);
		if (rc != 0)
			break;
		if (!json_is_array(x) || json_array_size(x) != 4 || !is_u64(a) || !is_u64(b) || !is_u64(s) ||
		    !json_is_integer(m) || json_integer_value(a) < 1 || json_integer_value(b) < json_integer_value(a) ||
		    (uint64_t)json_integer_value(s) > seq || json_integer_value(s) < 1 ||
		    (i > 0 && (uint64_t)json_integer_value(a) <= out->r[i - 1].last)) {
			rc = -1;
			break;
		}
		out->r[out->n++] = (udr__xrange){(uint64_t)json_integer_value(a), (uint64_t)json_integer_value(b),
		                                 (uint64_t)json_integer_value(s), (int64_t)json_integer_value(m)};
	}
	if (rc == -1)
		rc = udr__error_set(UDR_ECORRUPT, "corrupt expired set %s", path);
done:
	json_decref(o);
	if (rc < 0)
		udr__xset_free(out);
	return rc;
}

/* Write table's set after record seq (derived data: no fsync, the commit's
 * syncfs covers it); *digest receives the digest of its bytes. */
static int xset_write(udr_hash *digest, udr_catalog *c, const udr__xset *s, const char *table, uint64_t seq, bool sync)
{
	char *text = NULL, *path = NULL, *dir = NULL, *top = NULL;
	size_t len;
	int rc;
	if ((rc = xset_encode(&text, &len, s, table, seq)) < 0)
		return rc;
	udr_hash_buf(digest, text, len);
	if (!(top = udr__path_join(c->path, "expired")) || !(dir = xset_dir(c, table)) || !(path = udr__seq_path(dir, seq)))
		rc = UDR_ENOMEM;
	else if ((rc = udr__mkdir(top, NULL)) == 0 && (rc = udr__mkdir(dir, NULL)) == 0)
		rc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, sync);
	free(text);
	free(path);
	free(dir);
	free(top);
	return rc < 0 ? rc : 0;
}

/* The part of record seq (an expire record) about table, or NULL. */
static const udr__xtable *xrec_table(const udr__record *r, const char *table)
{
	if (!r->xrec)
		return NULL;
	for (size_t i = 0; i < r->xrec->nt; i++)
		if (strcmp(r->xrec->t[i].table, table) == 0)
			return &r->xrec->t[i];
	return NULL;
}

/* Table's set after record seq, which names it with digest: the checkpoint
 * when its bytes match, else replayed from table's prev chain, checked
 * against the digest and rewritten. */
static int xset_load(udr__xset *out, udr_catalog *c, uint64_t seq, const char *table)
{
	udr__record r;
	const udr__xtable *xt;
	uint64_t *chain = NULL;
	size_t nchain = 0, cap = 0;
	char *path = NULL, *text = NULL;
	size_t len;
	udr_hash want, d;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	if (!(xt = xrec_table(&r, table))) {
		udr__record_free(&r);
		return udr__error_set(UDR_ECORRUPT, "commit %" PRIu64 " is named as the last expiry of table %s, but does not "
		                      "expire it", seq, table);
	}
	want = xt->state;
	udr__record_free(&r);
	if (!(path = xset_path(c, table, seq)))
		return UDR_ENOMEM;
	rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
	if (rc == 0) {
		udr_hash_buf(&d, text, len);
		if (udr_hash_equal(&d, &want) && xset_parse(out, text, len, path, table, seq) == 0)
			goto done;
	}
	if (rc == UDR_ENOMEM)
		goto done;
	udr_error_clear();
	/* rebuild: the chain of records that changed table's set, oldest first */
	for (uint64_t s = seq; s != 0;) {
		if (nchain == cap) {
			uint64_t *p;
			cap = cap ? cap * 2 : 16;
			if (cap > XSET_REBUILD_MAX || !(p = realloc(chain, cap * sizeof(*p)))) {
				rc = cap > XSET_REBUILD_MAX ? udr__error_set(UDR_ECORRUPT, "expired set of table %s: chain too long",
				                                             table)
				                            : udr__error_oom();
				goto done;
			}
			chain = p;
		}
		chain[nchain++] = s;
		if ((rc = udr__record_read(&r, c, s)) < 0)
			goto done;
		xt = xrec_table(&r, table);
		if (!xt || xt->prev >= s) {
			udr__record_free(&r);
			rc = udr__error_set(UDR_ECORRUPT, "expired set of table %s: commit %" PRIu64 " breaks its chain", table, s);
			goto done;
		}
		s = xt->prev;
		udr__record_free(&r);
	}
	for (size_t i = nchain; i-- > 0 && rc == 0;) {
		if ((rc = udr__record_read(&r, c, chain[i])) < 0)
			break;
		xt = xrec_table(&r, table);
		for (size_t k = 0; k < xt->nranges && rc == 0; k++)
			rc = r.xrec->unexpire ? xset_remove(out, xt->ranges[k][0], xt->ranges[k][1])
			                      : xset_add(out, xt->ranges[k][0], xt->ranges[k][1], chain[i], r.cm->time_ms);
		udr__record_free(&r);
	}
	if (rc == 0) {
		free(text);
		text = NULL;
		if ((rc = xset_encode(&text, &len, out, table, seq)) == 0) {
			udr_hash_buf(&d, text, len);
			if (!udr_hash_equal(&d, &want))
				rc = udr__error_set(UDR_ECORRUPT, "commit %" PRIu64 " names an expired set of table %s that the log "
				                    "does not produce", seq, table);
			else if (xset_write(&d, c, out, table, seq, false) < 0)
				udr_error_clear(); /* derived: a read-only store still reads */
		}
	}
done:
	if (rc < 0)
		udr__xset_free(out);
	free(chain);
	free(text);
	free(path);
	return rc;
}

int udr__xset_at(udr__xset *out, uint64_t *from, udr_catalog *c, const udr__record *r, const char *table)
{
	udr__tentry e;
	size_t n = strlen(table) + 10;
	char *key = malloc(n);
	int rc;
	memset(out, 0, sizeof(*out));
	*from = 0;
	if (!key)
		return udr__error_oom();
	snprintf(key, n, "@expired:%s", table);
	rc = r->branched ? udr__global_lookup(&e, c, r, key) : 0;
	free(key);
	if (rc <= 0)
		return rc;
	*from = e.version;
	return xset_load(out, c, e.version, table);
}

/* ---- the commit step's part ---------------------------------------------- */

typedef struct vlist {
	uint64_t *v;
	size_t n, cap;
} vlist;

static int vlist_add(vlist *l, uint64_t v)
{
	if (v == 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *p = realloc(l->v, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = v;
	return 0;
}

/* Table's version in the snapshot of commit seq (0: absent). */
static int snapshot_version(uint64_t *out, udr_catalog *c, uint64_t seq, const char *table, uint64_t latest)
{
	uint64_t s;
	int rc = udr__snapshot_table(out, &s, c, seq, table);
	if (rc == 2) /* a format-1 record: main's versions by commit */
		return udr__version_at_seq(out, c, table, latest, seq);
	return rc < 0 ? rc : 0;
}

static bool is_ref_op(const char *op)
{
	static const char *const ops[] = {"create", "reset", "tag", "merge", "cherry-pick", "revert"};
	for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i]) == 0)
			return true;
	return false;
}

/* Every commit whose snapshot must keep its versions at the linked head:
 * branch heads, tags, and what ref records after `at` named. */
static int protected_commits(vlist *out, udr_catalog *c, const udr__record *prev, uint64_t head, uint64_t at,
                             udr__tstate *g)
{
	int rc;
	if ((rc = udr__global_state(g, c, prev)) < 0)
		return rc;
	for (size_t i = 0; i < g->n && rc == 0; i++)
		if (strncmp(g->e[i].table, "@branch:", 8) == 0 || strncmp(g->e[i].table, "@tag:", 5) == 0)
			rc = vlist_add(out, g->e[i].version);
	bool moved = false;
	for (uint64_t s = at + 1; s <= head && rc == 0; s++) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		if (is_ref_op(cm->op)) {
			rc = vlist_add(out, strcmp(cm->op, "tag") == 0 ? cm->parent : s);
			moved |= strcmp(cm->op, "tag") != 0;
		}
		udr_commit_free(cm);
	}
	/* a branch created, reset or merged after the plan can make an older
	 * commit the merge base of two live branches: the plan's merge bases
	 * (GC.md 1.3 (3), pairwise) are taken again at the linked head */
	for (size_t i = 0; moved && i < g->n && rc == 0; i++) {
		if (strncmp(g->e[i].table, "@branch:", 8) != 0 || g->e[i].version == 0)
			continue;
		for (size_t j = i + 1; j < g->n && rc == 0; j++) {
			uint64_t *bases = NULL;
			size_t nb = 0;
			if (strncmp(g->e[j].table, "@branch:", 8) != 0 || g->e[j].version == 0)
				continue;
			if ((rc = udr__merge_bases(&bases, &nb, c, g->e[i].version, g->e[j].version)) < 0)
				break;
			for (size_t k = 0; k < nb && rc == 0; k++)
				rc = vlist_add(out, bases[k]);
			free(bases);
		}
	}
	return rc;
}

/* The base, ours and theirs versions of table that recorded row merges
 * (catalog/merges/<branch>.json, conflicts to resolve) read again at
 * --continue (GC.md 1.3 (5)).  A file that does not parse pins nothing:
 * it is no data, and --continue refuses it. */
static int merge_pins(vlist *out, udr_catalog *c, const char *table)
{
	char *dir = udr__path_join(c->path, "merges");
	DIR *d;
	struct dirent *e;
	int rc = 0;
	if (!dir)
		return udr__error_oom();
	if (!(d = opendir(dir))) {
		free(dir);
		return 0;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name), len;
		char *path, *text = NULL;
		json_t *o, *ts, *t;
		size_t i;
		if (n < 6 || e->d_name[0] == '.' || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		if (!(path = udr__path_join(dir, e->d_name))) {
			rc = udr__error_oom();
			break;
		}
		if (udr__read_file(&text, &len, path, UDR__MAX_META_FILE) < 0) {
			udr_error_clear();
			free(path);
			continue;
		}
		free(path);
		o = json_loadb(text, len, 0, NULL);
		free(text);
		ts = o ? json_object_get(o, "tables") : NULL;
		json_array_foreach(ts, i, t) {
			const char *name = json_string_value(json_object_get(t, "table"));
			static const char *const keys[] = {"base", "ours", "theirs", "version"};
			if (!name || strcmp(name, table) != 0)
				continue;
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && rc == 0; k++) {
				json_t *v = json_object_get(t, keys[k]);
				if (json_is_integer(v) && json_integer_value(v) > 0)
					rc = vlist_add(out, (uint64_t)json_integer_value(v));
			}
		}
		json_decref(o);
	}
	closedir(d);
	free(dir);
	return rc;
}

/* The new and old versions of every change in the records past the oldest
 * after pin up to head, read once for all tables (GC.md 2.3: what a
 * subscription has still to deliver), sorted by table. */
typedef struct tv {
	char *table;
	uint64_t v;
} tv;
typedef struct tvlist {
	tv *v;
	size_t n, cap;
} tvlist;

static void tvlist_free(tvlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].table);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int tvlist_add(tvlist *l, const char *table, uint64_t v)
{
	if (v == 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		tv *p = realloc(l->v, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		l->v = p;
		l->cap = cap;
	}
	if (!(l->v[l->n].table = strdup(table)))
		return udr__error_oom();
	l->v[l->n++].v = v;
	return 0;
}

static int cmp_tv(const void *a, const void *b)
{
	return strcmp(((const tv *)a)->table, ((const tv *)b)->table);
}

static int after_pins(tvlist *out, udr_catalog *c, const udr__lease_set *pins, uint64_t head)
{
	uint64_t after = UINT64_MAX;
	int rc = 0;
	for (size_t i = 0; pins && i < pins->n; i++)
		if (pins->v[i].kind == UDR__PIN_AFTER && pins->v[i].after < after)
			after = pins->v[i].after;
	for (uint64_t s = after + 1; after != UINT64_MAX && s <= head && rc == 0; s++) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		for (size_t k = 0; k < cm->nchanges && rc == 0; k++)
			if ((rc = tvlist_add(out, cm->changes[k].table, cm->changes[k].new_version)) == 0)
				rc = tvlist_add(out, cm->changes[k].table, cm->changes[k].old_version);
		udr_commit_free(cm);
	}
	if (rc == 0 && out->n > 1)
		qsort(out->v, out->n, sizeof(tv), cmp_tv);
	return rc;
}

/* The versions of table the live pins reach (GC.md 2.3): a snapshot pin S
 * on branch B, the table's version visible at S on B (what a transaction
 * at S reads as the table); a version pin, its version; an after pin, the
 * table's part of `after` (after_pins).  1 when a pin cannot be resolved:
 * the caller then keeps the whole table. */
static int lease_pins(vlist *out, udr_catalog *c, const udr__lease_set *pins, const tvlist *after,
                      const char *table, uint64_t latest)
{
	size_t lo = 0, hi = after->n;
	int rc = 0;
	for (size_t i = 0; pins && i < pins->n && rc == 0; i++) {
		const udr__lease_pin *p = &pins->v[i];
		uint64_t v = 0;
		if (p->kind == UDR__PIN_SNAPSHOT) {
			rc = udr__version_at_seq_on(&v, c, table, latest, p->snapshot, p->branch ? p->branch : "main");
			if (rc < 0) {
				udr_error_clear();
				return 1;
			}
			rc = vlist_add(out, v);
		} else if (p->kind == UDR__PIN_VERSION && strcmp(p->table, table) == 0) {
			rc = vlist_add(out, p->version);
		}
	}
	while (lo < hi) { /* the first entry of table */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(after->v[mid].table, table) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < after->n && rc == 0 && strcmp(after->v[lo].table, table) == 0; lo++)
		rc = vlist_add(out, after->v[lo].v);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int udr__expire_pinned(uint64_t **out, size_t *n, udr_catalog *c, const udr__lease_set *pins, uint64_t head,
                       const char *table, uint64_t latest)
{
	tvlist after = {0};
	vlist keep = {0};
	int rc;
	*out = NULL;
	*n = 0;
	if (!pins || pins->n == 0)
		return 0;
	if ((rc = after_pins(&after, c, pins, head)) == 0)
		rc = lease_pins(&keep, c, pins, &after, table, latest);
	tvlist_free(&after);
	if (rc != 0) {
		free(keep.v);
		return rc;
	}
	*out = keep.v;
	*n = keep.n;
	return 0;
}

/* Remove [a, b] from the sorted disjoint ranges r[0..*n) (room for one more). */
static void ranges_cut(uint64_t (*r)[2], size_t *n, uint64_t a, uint64_t b)
{
	for (size_t i = 0; i < *n; i++) {
		if (r[i][1] < a || r[i][0] > b)
			continue;
		if (r[i][0] >= a && r[i][1] <= b) { /* all of it */
			memmove(&r[i], &r[i + 1], (*n - i - 1) * sizeof(*r));
			(*n)--;
			i--;
		} else if (r[i][0] < a && r[i][1] > b) { /* a hole: split */
			memmove(&r[i + 2], &r[i + 1], (*n - i - 1) * sizeof(*r));
			r[i + 1][0] = b + 1;
			r[i + 1][1] = r[i][1];
			r[i][1] = a - 1;
			(*n)++;
			i++;
		} else if (r[i][0] < a) {
			r[i][1] = a - 1;
		} else {
			r[i][0] = b + 1;
		}
	}
}

/* An unexpire record: what the request names that is expired now (by
 * record req->undo only, when set) is taken back. */
static int prepare_unexpire(udr__xrec **out, udr_catalog *c, const udr__record *prev, const udr__xrec *req,
                            uint64_t seq)
{
	udr__xrec *x;
	uint64_t through = 0, gseq = 0;
	int rc = 0;
	if (!(x = calloc(1, sizeof(*x))) || !(x->t = calloc(req->nt, sizeof(*x->t)))) {
		free(x);
		return udr__error_oom();
	}
	x->unexpire = true;
	x->undo = req->undo;
	if ((rc = udr__gc_at(&through, &gseq, c, prev)) < 0) {
		udr__xrec_free(x);
		return rc;
	}
	for (size_t ti = 0; ti < req->nt && rc == 0; ti++) {
		const udr__xtable *rt = &req->t[ti];
		uint64_t (*r)[2] = NULL, from = 0;
		size_t nr = 0, cap;
		udr__xset set;
		udr__xtable *xt;
		if (ti > 0 && strcmp(req->t[ti - 1].table, rt->table) >= 0) {
			rc = udr__error_set(UDR_EINVAL, "unexpire: tables not sorted or named twice (%s)", rt->table);
			break;
		}
		if ((rc = udr__xset_at(&set, &from, c, prev, rt->table)) < 0)
			break;
		cap = set.n + rt->nranges + 1;
		if (!(r = calloc(cap, sizeof(*r)))) {
			udr__xset_free(&set);
			rc = udr__error_oom();
			break;
		}
		/* the intersection of the set (its ranges of record undo) with
		 * the request's ranges, in order; adjacent pieces joined */
		for (size_t i = 0; i < set.n && rc == 0; i++) {
			if (req->undo && set.r[i].seq != req->undo)
				continue;
			for (size_t k = 0; k < rt->nranges && rc == 0; k++) {
				uint64_t lo = set.r[i].first > rt->ranges[k][0] ? set.r[i].first : rt->ranges[k][0];
				uint64_t hi = set.r[i].last < rt->ranges[k][1] ? set.r[i].last : rt->ranges[k][1];
				if (lo > hi)
					continue;
				if (set.r[i].seq <= through) {
					/* a gc record lets its sweep delete this data */
					char when[40] = "?";
					udr__record g;
					if (udr__record_read(&g, c, gseq) == 0) {
						udr_time_format(when, sizeof(when), g.cm->time_ms);
						when[10] = '\0';
						udr__record_free(&g);
					} else {
						udr_error_clear();
					}
					rc = udr__error_set(UDR_ECONFLICT,
					                    "%s@%" PRIu64 " cannot be unexpired: its data is removed by gc since %s "
					                    "(commit %" PRIu64 ", through expire record %" PRIu64 "); nothing written",
					                    rt->table, lo, when, gseq, through);
					break;
				}
				if (nr > 0 && r[nr - 1][1] + 1 == lo) {
					r[nr - 1][1] = hi;
				} else if (nr < cap) {
					r[nr][0] = lo;
					r[nr][1] = hi;
					nr++;
				}
			}
		}
		if (rc < 0 || nr == 0) {
			free(r);
			udr__xset_free(&set);
			continue;
		}
		xt = &x->t[x->nt];
		if (!(xt->table = strdup(rt->table))) {
			free(r);
			udr__xset_free(&set);
			rc = udr__error_oom();
			break;
		}
		x->nt++;
		xt->ranges = r;
		xt->nranges = nr;
		xt->prev = from;
		for (size_t i = 0; i < nr && rc == 0; i++) {
			x->versions += r[i][1] - r[i][0] + 1;
			rc = xset_remove(&set, r[i][0], r[i][1]);
		}
		if (rc == 0)
			rc = xset_write(&xt->state, c, &set, rt->table, seq, false);
		udr__xset_free(&set);
	}
	if (rc == 0 && x->nt == 0)
		rc = 1;
	if (rc == 0)
		*out = x;
	else
		udr__xrec_free(x);
	return rc;
}

int udr__expire_prepare(udr__xrec **out, udr_catalog *c, const udr__record *prev, uint64_t head,
                        const udr__xrec *req, uint64_t seq, int64_t ms)
{
	udr__xrec *x = NULL;
	vlist commits = {0};
	tvlist after = {0};
	udr__tstate g;
	int rc = 0;
	*out = NULL;
	memset(&g, 0, sizeof(g));
	if (!prev || head == 0 || req->nt == 0)
		return 1;
	if (req->unexpire)
		return prepare_unexpire(out, c, prev, req, seq);
	if (req->at > head)
		return udr__error_set(UDR_EINVAL, "expire: planned at commit %" PRIu64 ", after the head %" PRIu64, req->at,
		                      head);
	if ((rc = protected_commits(&commits, c, prev, head, req->at, &g)) < 0 ||
	    (rc = after_pins(&after, c, req->pins, head)) < 0)
		goto done;
	if (!(x = calloc(1, sizeof(*x))) || !(x->t = calloc(req->nt, sizeof(*x->t))) ||
	    !(x->rule = strdup(req->rule ? req->rule : ""))) {
		rc = udr__error_oom();
		goto done;
	}
	x->at = req->at;
	x->policy = req->policy;
	for (size_t ti = 0; ti < req->nt && rc == 0; ti++) {
		const udr__xtable *rt = &req->t[ti];
		const udr__tentry *alloc = udr__tstate_find(&g, rt->table);
		uint64_t latest = alloc ? alloc->version : 0, (*r)[2] = NULL, from = 0;
		size_t nr = 0, cap;
		vlist keep = {0};
		udr__xset set;
		udr__xtable *xt;
		if (ti > 0 && strcmp(req->t[ti - 1].table, rt->table) >= 0) {
			rc = udr__error_set(UDR_EINVAL, "expire: tables not sorted or named twice (%s)", rt->table);
			break;
		}
		if (latest == 0)
			continue; /* no such table at the head: nothing to expire */
		for (size_t i = 0; i < commits.n && rc == 0; i++) {
			uint64_t v;
			if ((rc = snapshot_version(&v, c, commits.v[i], rt->table, latest)) == 0)
				rc = vlist_add(&keep, v);
		}
		if (rc == 0)
			rc = vlist_add(&keep, latest);
		if (rc == 0)
			rc = merge_pins(&keep, c, rt->table);
		if (rc == 0 && (rc = lease_pins(&keep, c, req->pins, &after, rt->table, latest)) == 1) {
			rc = 0; /* a pin we cannot resolve: keep the table whole */
			free(keep.v);
			continue;
		}
		if (rc == 0)
			rc = udr__xset_at(&set, &from, c, prev, rt->table);
		if (rc < 0) {
			free(keep.v);
			break;
		}
		/* room for the request's ranges, each cut adding at most one */
		cap = rt->nranges + keep.n + set.n + 1;
		if (!(r = calloc(cap, sizeof(*r)))) {
			free(keep.v);
			udr__xset_free(&set);
			rc = udr__error_oom();
			break;
		}
		for (size_t i = 0; i < rt->nranges; i++) {
			if (rt->ranges[i][0] < 1 || rt->ranges[i][1] < rt->ranges[i][0] ||
			    (i > 0 && rt->ranges[i][0] <= rt->ranges[i - 1][1] + 1)) {
				rc = udr__error_set(UDR_EINVAL, "expire: bad ranges for table %s", rt->table);
				break;
			}
			if (rt->ranges[i][0] > latest)
				break;
			r[nr][0] = rt->ranges[i][0];
			r[nr][1] = rt->ranges[i][1] < latest ? rt->ranges[i][1] : latest;
			nr++;
		}
		qsort(keep.v, keep.n, sizeof(uint64_t), cmp_u64);
		for (size_t i = 0; i < keep.n && rc == 0; i++)
			ranges_cut(r, &nr, keep.v[i], keep.v[i]);
		for (size_t i = 0; i < set.n && rc == 0; i++)
			ranges_cut(r, &nr, set.r[i].first, set.r[i].last);
		free(keep.v);
		if (rc < 0 || nr == 0) {
			free(r);
			udr__xset_free(&set);
			continue;
		}
		xt = &x->t[x->nt];
		if (!(xt->table = strdup(rt->table))) {
			free(r);
			udr__xset_free(&set);
			rc = udr__error_oom();
			break;
		}
		x->nt++;
		xt->ranges = r;
		xt->nranges = nr;
		xt->prev = from;
		for (size_t i = 0; i < nr && rc == 0; i++) {
			x->versions += r[i][1] - r[i][0] + 1;
			rc = xset_add(&set, r[i][0], r[i][1], seq, ms);
		}
		if (rc == 0)
			rc = xset_write(&xt->state, c, &set, rt->table, seq, false);
		udr__xset_free(&set);
	}
	if (rc == 0 && x->nt == 0)
		rc = 1;
done:
	udr__tstate_free(&g);
	tvlist_free(&after);
	free(commits.v);
	if (rc == 0)
		*out = x;
	else
		udr__xrec_free(x);
	return rc;
}

/* ---- reading: is a version expired? (GC.md 1.5, 7.3) -------------------- */

/* Could this catalog hold an expire record?  Format 4 (as this handle
 * opened it), or the checkpoints' directory exists (another process made
 * the first expire record since). */
static bool may_expire(udr_catalog *c)
{
	struct stat st;
	char *dir;
	bool yes;
	if (c->format >= 4)
		return true;
	if (!(dir = udr__path_join(c->path, "expired")))
		return true; /* out of memory: look properly */
	yes = UDR_IO->stat(dir, &st) == 0;
	free(dir);
	return yes;
}

/* Table@version's expiry as of record r: 1 expired (out filled, swept
 * when a gc record at r covers the record that expired it), 0 not. */
static int expiry_at(udr_expiry *out, udr_catalog *c, const udr__record *r, const char *table, uint64_t version)
{
	udr__xset set;
	uint64_t from, through, gseq;
	const udr__xrange *x;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = udr__xset_at(&set, &from, c, r, table)) < 0)
		return rc;
	if ((x = udr__xset_find(&set, version))) {
		out->expired = 1;
		out->expired_seq = x->seq;
		out->expired_ms = x->ms;
	}
	udr__xset_free(&set);
	if (!out->expired)
		return 0;
	if ((rc = udr__gc_at(&through, &gseq, c, r)) < 0)
		return rc;
	if (gseq && out->expired_seq <= through) {
		udr_commit *g = NULL;
		out->swept = 1;
		out->gc_seq = gseq;
		if ((rc = udr__commit_read(&g, c, gseq)) < 0)
			return rc;
		out->gc_ms = g->time_ms;
		udr_commit_free(g);
	}
	return 1;
}

/* As expiry_at, at the head (the linked one under the writer lock). */
static int expiry_now(udr_expiry *out, udr_catalog *c, const char *table, uint64_t version)
{
	udr__record r;
	uint64_t head;
	int rc;
	memset(out, 0, sizeof(*out));
	if (!may_expire(c))
		return 0;
	if ((rc = udr__catalog_true_head(&head, c)) < 0 || head == 0)
		return rc;
	if ((rc = udr__record_read(&r, c, head)) < 0)
		return rc;
	rc = expiry_at(out, c, &r, table, version);
	udr__record_free(&r);
	return rc;
}

int udr_version_expiry(udr_expiry *out, udr_catalog *c, const char *table, uint64_t version)
{
	int rc;
	if (!out || !c || !table || version == 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_version_expiry");
	memset(out, 0, sizeof(*out));
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	rc = expiry_now(out, c, table, version);
	return rc < 0 ? rc : 0;
}

/* The last expired read of this thread (udr_expiry_last). */
static _Thread_local struct {
	char table[UDR_TABLE_NAME_MAX + 1];
	uint64_t version;
	udr_expiry ex;
} last_expired;

int udr_expiry_last(char *table, size_t tablesz, uint64_t *version, udr_expiry *out)
{
	if (!last_expired.table[0])
		return 0;
	if (table && tablesz)
		snprintf(table, tablesz, "%s", last_expired.table);
	if (version)
		*version = last_expired.version;
	if (out)
		*out = last_expired.ex;
	return 1;
}

/* The error for table@version, expired as x says; at: "T at TIME" context
 * (NULL: none). */
static int expired_error(udr_catalog *c, const char *table, uint64_t version, const udr_expiry *x, const char *at)
{
	char when[40], gwhen[40], qt[UDR_TABLE_NAME_MAX * 4 + 8], rule[200] = "", tail[UDR_TABLE_NAME_MAX * 4 + 160];
	udr__record r;
	memset(&last_expired, 0, sizeof(last_expired));
	snprintf(last_expired.table, sizeof(last_expired.table), "%s", table);
	last_expired.version = version;
	last_expired.ex = *x;
	udr__quote(qt, sizeof(qt), table);
	udr_time_format(when, sizeof(when), x->expired_ms);
	when[10] = '\0'; /* the date */
	if (udr__record_read(&r, c, x->expired_seq) == 0) {
		if (r.xrec && r.xrec->rule && r.xrec->rule[0])
			snprintf(rule, sizeof(rule), ", %s", r.xrec->rule);
		udr__record_free(&r);
	} else {
		udr_error_clear();
	}
	if (x->swept) {
		udr_time_format(gwhen, sizeof(gwhen), x->gc_ms);
		gwhen[10] = '\0';
		snprintf(tail, sizeof(tail), "its data was removed by gc on %s (commit %" PRIu64 ")", gwhen, x->gc_seq);
	} else {
		snprintf(tail, sizeof(tail), "its data is still stored: 'udr retention restore %s@%" PRIu64 "' brings it back",
		         qt, version);
	}
	if (at) {
		char qa[200];
		udr__quote(qa, sizeof(qa), at); /* a caller's text (udr_version_readable_at) */
		return udr__error_set(UDR_EEXPIRED,
		                      "%s at %s was version %" PRIu64 ", which expired by retention on %s (commit %" PRIu64
		                      "%s); %s",
		                      qt, qa, version, when, x->expired_seq, rule, tail);
	}
	return udr__error_set(UDR_EEXPIRED, "%s@%" PRIu64 " expired by retention on %s (commit %" PRIu64 "%s); %s", qt,
	                      version, when, x->expired_seq, rule, tail);
}

int udr__version_check(udr_catalog *c, const char *table, uint64_t version, const char *at)
{
	udr_expiry x;
	int rc;
	if (version == 0)
		return 0;
	if ((rc = expiry_now(&x, c, table, version)) <= 0)
		return rc;
	return expired_error(c, table, version, &x, at);
}

int udr__version_check_at(udr_catalog *c, const udr__record *r, const char *table, uint64_t version)
{
	udr_expiry x;
	int rc;
	if (version == 0 || !r)
		return 0;
	if ((rc = expiry_at(&x, c, r, table, version)) <= 0)
		return rc;
	return expired_error(c, table, version, &x, NULL);
}

int udr_version_readable_at(udr_catalog *c, const char *table, uint64_t version, const char *at)
{
	int rc;
	if (!c || !table || version == 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_version_readable");
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	return udr__version_check(c, table, version, at);
}

int udr_version_readable(udr_catalog *c, const char *table, uint64_t version)
{
	return udr_version_readable_at(c, table, version, NULL);
}

/* Ops that make a ref name a commit's snapshot as it is. */
static bool names_snapshot(const char *op)
{
	return op && (strcmp(op, "create") == 0 || strcmp(op, "reset") == 0 || strcmp(op, "tag") == 0);
}

int udr__expire_refuse(udr_catalog *c, const udr__record *prev, const udr__commit_opts *o)
{
	udr__tstate g;
	int rc = 0;
	if (!prev || !prev->branched ||
	    (!names_snapshot(o->op) && (!o->adopt || o->adopt->n == 0) && (!o->named || o->named->n == 0)))
		return 0;
	/* every table with an expired set at the linked head */
	if ((rc = udr__global_state(&g, c, prev)) < 0)
		return rc;
	for (size_t i = 0; i < g.n && rc == 0; i++) {
		const char *t = g.e[i].table;
		const udr__tentry *a;
		uint64_t v = 0, s;
		if (strncmp(t, "@expired:", 9) != 0)
			continue;
		t += 9;
		if (names_snapshot(o->op)) {
			if ((rc = udr__snapshot_table(&v, &s, c, o->target, t)) < 0)
				break;
			if (rc == 2) { /* a format-1 record: main's versions by commit */
				const udr__tentry *al = udr__tstate_find(&g, t);
				rc = udr__version_at_seq(&v, c, t, al ? al->version : 0, o->target);
			}
			if (rc == 0 && (rc = udr__version_check_at(c, prev, t, v)) < 0)
				break;
		}
		if (o->adopt && (a = udr__tstate_find(o->adopt, t)) && (rc = udr__version_check_at(c, prev, t, a->version)) < 0)
			break;
		if (o->named && (a = udr__tstate_find(o->named, t)))
			rc = udr__version_check_at(c, prev, t, a->version);
	}
	udr__tstate_free(&g);
	return rc < 0 ? rc : 0;
}

int udr_expire_record_json(char **out, udr_catalog *c, uint64_t seq)
{
	udr__record r;
	json_t *o;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_expire_record_json");
	*out = NULL;
	if (seq == 0) /* no record 0: read, it was "missing", an integrity error */
		return udr__error_set(UDR_EINVAL, "invalid commit 0: commits start at 1");
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	if (!r.xrec) {
		udr__record_free(&r);
		return udr__error_set(UDR_EINVAL, "commit %" PRIu64 " is not an expire or unexpire record", seq);
	}
	if (!(o = json_object()) || udr__xrec_to_json(o, r.xrec) != 0 ||
	    !(*out = json_dumps(json_object_get(o, r.xrec->unexpire ? "unexpire" : "expire"),
	                        JSON_COMPACT | JSON_PRESERVE_ORDER)))
		rc = udr__error_oom();
	json_decref(o);
	udr__record_free(&r);
	return rc;
}

/* ---- undo, restore, listing (GC.md 1.4, 7.3) ----------------------------- */

/* Link an unexpire record for req: 0 with *seq_out (0: nothing was
 * expired of it, nothing written). */
static int unexpire_commit(uint64_t *seq_out, udr_catalog *c, const udr__xrec *req, const char *message)
{
	udr__commit_opts o;
	uint64_t seq = 0;
	int rc;
	memset(&o, 0, sizeof(o));
	o.op = "unexpire";
	o.expire = req;
	o.message = message;
	rc = udr__catalog_commit_versions(&seq, c, NULL, 0, &o);
	if (seq_out)
		*seq_out = rc == 0 || rc == UDR_EIO ? seq : 0;
	return rc;
}

/* The newest expire record at or below the head (0: none). */
static int last_expire_record(uint64_t *out, udr_catalog *c)
{
	uint64_t head;
	int rc;
	*out = 0;
	if ((rc = udr_catalog_head(&head, c)) < 0)
		return rc;
	for (uint64_t s = head; s >= 1; s--) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			return rc;
		if (cm->op && strcmp(cm->op, "expire") == 0)
			*out = s;
		udr_commit_free(cm);
		if (*out)
			break;
	}
	return 0;
}

int udr_retention_undo(uint64_t *seq_out, udr_catalog *c, uint64_t expire_seq)
{
	udr__record r;
	udr__xrec req;
	char msg[96];
	int rc;
	if (seq_out)
		*seq_out = 0;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_retention_undo");
	if (expire_seq == 0) {
		if ((rc = last_expire_record(&expire_seq, c)) < 0)
			return rc;
		if (expire_seq == 0)
			return udr__error_set(UDR_ENOTFOUND, "no expire record to undo");
	}
	if ((rc = udr__record_read(&r, c, expire_seq)) < 0)
		return rc;
	if (!r.xrec || r.xrec->unexpire) {
		udr__record_free(&r);
		return udr__error_set(UDR_EINVAL, "commit %" PRIu64 " is not an expire record; nothing written", expire_seq);
	}
	/* the record's own ranges: what of them it still holds expired is
	 * decided under the writer lock */
	memset(&req, 0, sizeof(req));
	req.unexpire = true;
	req.undo = expire_seq;
	req.t = r.xrec->t;
	req.nt = r.xrec->nt;
	snprintf(msg, sizeof(msg), "retention: undo of commit %" PRIu64, expire_seq);
	rc = unexpire_commit(seq_out, c, &req, msg);
	udr__record_free(&r);
	return rc;
}

int udr_retention_restore(uint64_t *seq_out, udr_catalog *c, const char *table, uint64_t first, uint64_t last)
{
	udr__xtable t;
	udr__xrec req;
	uint64_t range[1][2];
	uint64_t seq = 0;
	char msg[UDR_TABLE_NAME_MAX + 96], qt[UDR_TABLE_NAME_MAX * 4 + 8];
	int rc;
	if (seq_out)
		*seq_out = 0;
	if (!c || !table)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_retention_restore");
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	if (first == 0 || last < first)
		return udr__error_set(UDR_EINVAL, "restore: bad version range %" PRIu64 "..%" PRIu64, first, last);
	range[0][0] = first;
	range[0][1] = last;
	memset(&t, 0, sizeof(t));
	t.table = (char *)table;
	t.ranges = range;
	t.nranges = 1;
	memset(&req, 0, sizeof(req));
	req.unexpire = true;
	req.t = &t;
	req.nt = 1;
	if (first == last)
		snprintf(msg, sizeof(msg), "retention: restore %s@%" PRIu64, table, first);
	else
		snprintf(msg, sizeof(msg), "retention: restore %s@%" PRIu64 "..%" PRIu64, table, first, last);
	if ((rc = unexpire_commit(&seq, c, &req, msg)) < 0)
		return rc;
	if (seq == 0) {
		udr__quote(qt, sizeof(qt), table);
		if (first == last)
			return udr__error_set(UDR_ENOTFOUND, "%s@%" PRIu64 " is not expired; nothing written", qt, first);
		return udr__error_set(UDR_ENOTFOUND, "%s@%" PRIu64 "..%" PRIu64 ": no version of it is expired; nothing written",
		                      qt, first, last);
	}
	if (seq_out)
		*seq_out = seq;
	return 0;
}

/* The highest allocated version of table (any branch). */
int udr__table_allocated(uint64_t *out, udr_catalog *c, uint64_t head, const char *table)
{
	udr__tentry e;
	int rc = udr__state_lookup_ex(&e, c, head, table, UDR__VIEW_ALLOC);

	*out = 0;
	if (rc < 0)
		return rc;
	if (rc == 1) {
		*out = e.version;
		return 0;
	}
	if (rc == 2) { /* a format-1 record: the version files know */
		rc = udr_catalog_latest(out, c, table);
		if (rc == UDR_ENOTFOUND) {
			udr_error_clear();
			*out = 0;
			rc = 0;
		}
	}
	return rc;
}

int udr_retention_expired(char **out, udr_catalog *c, const char *table)
{
	udr__record r;
	udr__tstate g;
	uint64_t head;
	json_t *arr = NULL;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_retention_expired");
	*out = NULL;
	if (table && (rc = udr_table_name_check(table)) < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	memset(&g, 0, sizeof(g));
	if (!(arr = json_array()))
		return udr__error_oom();
	if ((rc = udr_catalog_head(&head, c)) < 0)
		goto done;
	if (table) {
		/* a table that never had a version: not found, not "none expired" */
		uint64_t n;
		if ((rc = udr__table_allocated(&n, c, head, table)) < 0)
			goto done;
		if (n == 0) {
			char q[300];
			udr__quote(q, sizeof q, table);
			rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found", q);
			goto done;
		}
	}
	if (head > 0 && (rc = udr__record_read(&r, c, head)) < 0)
		goto done;
	if (head > 0 && r.branched && (rc = udr__global_state(&g, c, &r)) < 0)
		goto done;
	for (size_t i = 0; i < g.n && rc == 0; i++) {
		const char *t = g.e[i].table;
		udr__xset set;
		uint64_t from;
		if (strncmp(t, "@expired:", 9) != 0 || (table && strcmp(t + 9, table) != 0))
			continue;
		if ((rc = udr__xset_at(&set, &from, c, &r, t + 9)) < 0)
			break;
		for (size_t k = 0; k < set.n && rc == 0; k++) {
			char when[40];
			udr_time_format(when, sizeof(when), set.r[k].ms);
			if (json_array_append_new(arr, json_pack("{sssIsIsIss}", "table", t + 9, "first",
			                                         (json_int_t)set.r[k].first, "last", (json_int_t)set.r[k].last,
			                                         "seq", (json_int_t)set.r[k].seq, "time", when)) < 0)
				rc = udr__error_oom();
		}
		udr__xset_free(&set);
	}
	if (rc == 0 && !(*out = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		rc = udr__error_oom();
done:
	json_decref(arr);
	udr__tstate_free(&g);
	udr__record_free(&r);
	return rc;
}

/* ---- fsck (GC.md 6) ------------------------------------------------------ */

int udr__fsck_expire_record(udr_catalog *c, const udr__record *r, const udr__tstate *g, char *why, size_t whysz)
{
	const udr__xrec *x = r->xrec;
	uint64_t seq = r->cm->seq;
	int rc = 0, bad = 0;
	char first[512] = "";
	why[0] = '\0';
	/* every table is checked (each checkpoint rewritten); the first
	 * problem is the one reported */
	for (size_t i = 0; i < x->nt && rc == 0; i++, bad = 0) {
		const udr__xtable *t = &x->t[i];
		udr__xset set;
		char *text = NULL, *path = NULL, *file = NULL;
		size_t len, flen;
		udr_hash d;
		int frc;
		memset(&set, 0, sizeof(set));
		/* the set after it: the previous one with its ranges */
		if (t->prev && (rc = xset_load(&set, c, t->prev, t->table)) < 0) {
			if (rc != UDR_ECORRUPT)
				break;
			if (!first[0])
				snprintf(first, sizeof(first), "commit %" PRIu64 ": %s", seq, udr_error_last()->message);
			udr_error_clear();
			rc = 0;
			continue;
		}
		if (!x->unexpire) {
			/* never a table's latest, nor a head's or tag's version */
			const udr__tentry *al = udr__tstate_find(g, t->table);
			uint64_t latest = al ? al->version : 0;
			for (size_t k = 0; k < t->nranges && !bad; k++)
				if (t->ranges[k][1] >= latest)
					bad = snprintf(why, whysz, "commit %" PRIu64 " expires %s@%" PRIu64 ", the table's latest version "
					               "or beyond it", seq, t->table, t->ranges[k][1]) > 0;
			for (size_t e = 0; e < g->n && !bad && rc == 0; e++) {
				uint64_t v = 0;
				if (strncmp(g->e[e].table, "@branch:", 8) != 0 && strncmp(g->e[e].table, "@tag:", 5) != 0)
					continue;
				if (g->e[e].version == 0 || (rc = snapshot_version(&v, c, g->e[e].version, t->table, latest)) < 0)
					continue;
				for (size_t k = 0; k < t->nranges && !bad; k++)
					if (v >= t->ranges[k][0] && v <= t->ranges[k][1])
						bad = snprintf(why, whysz, "commit %" PRIu64 " expires %s@%" PRIu64 ", which %s names", seq,
						               t->table, v, g->e[e].table + 1) > 0;
			}
		}
		for (size_t k = 0; k < t->nranges && rc == 0 && !bad; k++) {
			rc = x->unexpire ? xset_remove(&set, t->ranges[k][0], t->ranges[k][1])
			                 : xset_add(&set, t->ranges[k][0], t->ranges[k][1], seq, r->cm->time_ms);
			if (rc == UDR_ECORRUPT) {
				snprintf(why, whysz, "commit %" PRIu64 ", table %s: %s", seq, t->table, udr_error_last()->message);
				udr_error_clear();
				rc = 0;
				bad = 1;
			}
		}
		if (rc == 0 && !bad && (rc = xset_encode(&text, &len, &set, t->table, seq)) == 0) {
			udr_hash_buf(&d, text, len);
			if (!udr_hash_equal(&d, &t->state)) {
				bad = snprintf(why, whysz, "commit %" PRIu64 " names an expired set of table %s that the log does not "
				               "produce", seq, t->table) > 0;
			} else if (!(path = xset_path(c, t->table, seq))) {
				rc = UDR_ENOMEM;
			} else {
				/* the checkpoint is derived: rewritten when missing or damaged */
				frc = udr__read_file(&file, &flen, path, UDR__MAX_META_FILE);
				udr_error_clear();
				if (frc < 0 || flen != len || memcmp(file, text, len) != 0) {
					udr_hash dd;
					int wrc = xset_write(&dd, c, &set, t->table, seq, true);
					udr_error_clear();
					bad = snprintf(why, whysz, "expired set %s is %s%s", path, frc < 0 ? "missing" : "damaged",
					               wrc < 0 ? " (cannot rewrite it)" : " (rewritten from the log)") > 0;
				}
			}
		}
		free(text);
		free(path);
		free(file);
		udr__xset_free(&set);
		if (bad && !first[0])
			snprintf(first, sizeof(first), "%s", why);
	}
	if (rc < 0)
		return rc;
	if (first[0])
		snprintf(why, whysz, "%s", first);
	return first[0] ? 1 : 0;
}

/* ---- the gc record (GC.md 1.4, 4.3) --------------------------------------- */

int udr__gc_at(uint64_t *through, uint64_t *gseq, udr_catalog *c, const udr__record *r)
{
	udr__tentry e;
	int rc;
	*through = *gseq = 0;
	if (!r || !r->branched)
		return 0;
	if ((rc = udr__global_lookup(&e, c, r, "@gc")) <= 0)
		return rc;
	*through = e.version;
	*gseq = e.seq;
	return 0;
}

int udr__gc_record_check(udr_catalog *c, const udr__record *prev, uint64_t head, const udr__commit_opts *o)
{
	uint64_t through, gseq;
	int rc;
	if (o->gc_mark > head || o->gc_through > o->gc_mark)
		return udr__error_set(UDR_EINVAL, "gc record: through %" PRIu64 " <= mark %" PRIu64 " <= head %" PRIu64
		                      " does not hold", o->gc_through, o->gc_mark, head);
	if ((rc = udr__gc_at(&through, &gseq, c, prev)) < 0)
		return rc;
	if (o->gc_through < through)
		return udr__error_set(UDR_EINVAL, "gc record: through %" PRIu64 " is below commit %" PRIu64 "'s %" PRIu64,
		                      o->gc_through, gseq, through);
	/* an unexpire record linked after the mark took back a version the
	 * run saw expired by a record <= through: the run marked its data
	 * dead, so this record (the fence) is refused and the run must mark
	 * again (review R3) */
	for (uint64_t s = o->gc_mark + 1; s <= head && rc == 0; s++) {
		udr__record r;
		if ((rc = udr__record_read(&r, c, s)) < 0)
			break;
		for (size_t ti = 0; r.xrec && r.xrec->unexpire && ti < r.xrec->nt && rc == 0; ti++) {
			const udr__xtable *xt = &r.xrec->t[ti];
			udr__xset set;
			if (xt->prev == 0 || (rc = xset_load(&set, c, xt->prev, xt->table)) < 0)
				continue;
			for (size_t k = 0; k < xt->nranges && rc == 0; k++)
				for (size_t i = 0; i < set.n && rc == 0; i++)
					if (set.r[i].seq <= o->gc_through && set.r[i].first <= xt->ranges[k][1] &&
					    set.r[i].last >= xt->ranges[k][0])
						rc = udr__error_set(UDR_ECONFLICT,
						                    "gc record: commit %" PRIu64 " (after the mark %" PRIu64
						                    ") unexpired %s@%" PRIu64 ", which expire record %" PRIu64
						                    " (through %" PRIu64 ") expired; mark again",
						                    s, o->gc_mark, xt->table,
						                    set.r[i].first > xt->ranges[k][0] ? set.r[i].first : xt->ranges[k][0],
						                    set.r[i].seq, o->gc_through);
			udr__xset_free(&set);
		}
		udr__record_free(&r);
	}
	return rc;
}

int udr__catalog_gc_record(uint64_t *seq, udr_catalog *c, uint64_t epoch, uint64_t mark, uint64_t through)
{
	udr__commit_opts o;
	char msg[96];
	if (seq)
		*seq = 0;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr__catalog_gc_record");
	memset(&o, 0, sizeof(o));
	o.op = "gc";
	o.gc_epoch = epoch;
	o.gc_mark = mark;
	o.gc_through = through;
	snprintf(msg, sizeof(msg), "gc epoch %" PRIu64 ": sweep through expire record %" PRIu64, epoch, through);
	o.message = msg;
	return udr__catalog_commit_versions(seq, c, NULL, 0, &o);
}

int udr__fsck_ref_expired(udr_catalog *c, const udr__tstate *g, uint64_t commit, uint64_t seq, char *why, size_t whysz)
{
	int rc = 0;
	for (size_t i = 0; i < g->n && rc == 0; i++) {
		const char *t = g->e[i].table;
		const udr__tentry *al;
		udr__xset set;
		uint64_t v = 0;
		if (strncmp(t, "@expired:", 9) != 0)
			continue;
		t += 9;
		al = udr__tstate_find(g, t);
		if ((rc = snapshot_version(&v, c, commit, t, al ? al->version : 0)) < 0 || v == 0)
			continue;
		if ((rc = xset_load(&set, c, g->e[i].version, t)) < 0)
			break;
		if (udr__xset_find(&set, v))
			rc = snprintf(why, whysz, "commit %" PRIu64 " names %s@%" PRIu64 " (in commit %" PRIu64 "), which commit %"
			              PRIu64 " expired", seq, t, v, commit, udr__xset_find(&set, v)->seq) > 0;
		udr__xset_free(&set);
	}
	return rc;
}

int udr__expire_latest(uint64_t *seq, uint64_t *head_out, udr_catalog *c)
{
	udr__record r;
	udr__tentry e;
	uint64_t head;
	int rc;
	*seq = 0;
	if (head_out)
		*head_out = 0;
	if ((rc = udr__catalog_true_head(&head, c)) < 0 || head == 0)
		return rc;
	if (head_out)
		*head_out = head;
	if (!may_expire(c))
		return 0;
	if ((rc = udr__record_read(&r, c, head)) < 0)
		return rc;
	if (r.branched && (rc = udr__global_lookup(&e, c, &r, "@expire")) > 0)
		*seq = e.version;
	udr__record_free(&r);
	return rc < 0 ? rc : 0;
}

