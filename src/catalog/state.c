/*
 * state.c - table states: which version of every table a commit left
 * behind.  A format-2 commit record carries its window (the tables changed
 * since its base checkpoint); the checkpoint state/<base>.json holds the
 * rest.  So a table's latest version, or its version at any commit, costs
 * two or three file reads whatever the size of the log, and comes from the
 * log itself: no deleted or damaged version file or cache can make it look
 * older than it is (docs/FORMAT.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

void udr__tstate_free(udr__tstate *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].table);
	free(s->e);
	memset(s, 0, sizeof(*s));
}

static size_t tstate_pos(const udr__tstate *s, const char *table, bool *found)
{
	size_t lo = 0, hi = s->n;
	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->e[mid].table, table);
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

const udr__tentry *udr__tstate_find(const udr__tstate *s, const char *table)
{
	bool found;
	size_t i = tstate_pos(s, table, &found);
	return found ? &s->e[i] : NULL;
}

int udr__tstate_set(udr__tstate *s, const char *table, uint64_t version, uint64_t seq)
{
	bool found;
	size_t i = tstate_pos(s, table, &found);
	char *name;
	if (found) {
		s->e[i].version = version;
		s->e[i].seq = seq;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16, bytes;
		udr__tentry *p;
		if (!udr__mul_ok(cap, sizeof(*p), &bytes) || !(p = realloc(s->e, bytes)))
			return udr__error_oom();
		s->e = p;
		s->cap = cap;
	}
	if (!(name = strdup(table)))
		return udr__error_oom();
	memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof(*s->e));
	s->e[i].table = name;
	s->e[i].version = version;
	s->e[i].seq = seq;
	s->n++;
	return 0;
}

int udr__tstate_merge(udr__tstate *dst, const udr__tstate *src)
{
	for (size_t i = 0; i < src->n; i++) {
		int rc = udr__tstate_set(dst, src->e[i].table, src->e[i].version, src->e[i].seq);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int udr__tstate_copy(udr__tstate *dst, const udr__tstate *src)
{
	memset(dst, 0, sizeof(*dst));
	return udr__tstate_merge(dst, src);
}

bool udr__tstate_equal(const udr__tstate *a, const udr__tstate *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->e[i].table, b->e[i].table) != 0 || a->e[i].version != b->e[i].version ||
		    a->e[i].seq != b->e[i].seq)
			return false;
	return true;
}

/* ---- checkpoint files ---------------------------------------------------- */

char *udr__state_path(const udr_catalog *c, uint64_t seq)
{
	return udr__seq_path(c->statedir, seq);
}

int udr__state_encode(char **out, size_t *out_len, const udr__tstate *s, uint64_t seq)
{
	udr__buf b = {0};
	int rc = udr__buf_printf(&b, "{\"format\":1,\"seq\":%llu,\"tables\":{", (unsigned long long)seq);
	/* table names are [A-Za-z0-9_.-]: no JSON escaping needed */
	for (size_t i = 0; i < s->n && rc == 0; i++)
		rc = udr__buf_printf(&b, "%s\"%s\":[%llu,%llu]", i ? "," : "", s->e[i].table,
		                     (unsigned long long)s->e[i].version, (unsigned long long)s->e[i].seq);
	if (rc == 0)
		rc = udr__buf_puts(&b, "}}");
	if (rc == 0)
		rc = udr__seal(&b.ptr, &b.len);
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*out = b.ptr;
	*out_len = b.len;
	return 0;
}

int udr__state_write(udr_hash *digest, udr_catalog *c, const udr__tstate *s, uint64_t seq)
{
	char *text = NULL, *path = NULL;
	size_t len;
	int rc;
	if ((rc = udr__state_encode(&text, &len, s, seq)) < 0)
		return rc;
	udr_hash_buf(digest, text, len);
	if (!(path = udr__state_path(c, seq)))
		rc = UDR_ENOMEM;
	else if ((rc = udr__mkdir(c->statedir, NULL)) == 0)
		/* REPLACE: the content is determined by the log, so a file of
		 * that name holds the same bytes or is damaged */
		rc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, false);
	free(text);
	free(path);
	return rc < 0 ? rc : 0;
}

static int state_from_json(udr__tstate *out, const char *text, size_t len, const char *path, uint64_t seq)
{
	json_error_t jerr;
	json_t *o, *tables, *val;
	const char *key, *prev = NULL;
	int rc = 0;
	if ((rc = udr__unseal(text, len, path, "checkpoint")) <= 0)
		return rc < 0 ? rc : udr__error_set(UDR_ECORRUPT, "corrupt checkpoint %s: its check is missing", path);
	if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_ECORRUPT, "corrupt checkpoint %s: %s", path, jerr.text);
	tables = json_object_get(o, "tables");
	if (!json_is_integer(json_object_get(o, "seq")) ||
	    (uint64_t)json_integer_value(json_object_get(o, "seq")) != seq || !json_is_object(tables)) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt checkpoint %s: wrong seq or fields", path);
		goto done;
	}
	json_object_foreach(tables, key, val) {
		json_t *v = json_array_get(val, 0), *s = json_array_get(val, 1);
		if (udr_table_name_check(key) < 0 || json_array_size(val) != 2 || !json_is_integer(v) ||
		    !json_is_integer(s) || json_integer_value(v) < 1 || json_integer_value(s) < 1 ||
		    (uint64_t)json_integer_value(s) > seq || (prev && strcmp(prev, key) >= 0)) {
			udr_error_clear();
			rc = udr__error_set(UDR_ECORRUPT, "corrupt checkpoint %s: bad entry %s", path, key);
			goto done;
		}
		if ((rc = udr__tstate_set(out, key, (uint64_t)json_integer_value(v), (uint64_t)json_integer_value(s))) < 0)
			goto done;
		prev = key;
	}
done:
	json_decref(o);
	if (rc < 0)
		udr__tstate_free(out);
	return rc;
}

/* ---- states at commits ----------------------------------------------------- */

/* Lay the changes of records from..to over out. */
static int apply_records(udr__tstate *out, udr_catalog *c, uint64_t from, uint64_t to)
{
	int rc = 0;
	for (uint64_t s = from; s <= to && rc == 0; s++) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
			rc = udr__tstate_set(out, cm->changes[i].table, cm->changes[i].new_version, s);
		udr_commit_free(cm);
	}
	return rc;
}

int udr__state_scan(udr__tstate *out, udr_catalog *c, uint64_t seq)
{
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = apply_records(out, c, 1, seq)) < 0)
		udr__tstate_free(out);
	return rc;
}

/* The state at commit seq, rebuilt from the records alone (no checkpoint
 * file is read): record seq's window over the state at its base. */
static int state_rebuild(udr__tstate *out, udr_catalog *c, uint64_t seq, int depth)
{
	udr__record r;
	int rc;
	memset(out, 0, sizeof(*out));
	if (seq == 0)
		return 0;
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	if (r.legacy)
		rc = udr__state_scan(out, c, seq);
	else if (depth > 64)
		rc = udr__state_scan(out, c, seq); /* bounded recursion over damaged checkpoints */
	else if ((rc = state_rebuild(out, c, r.base, depth + 1)) == 0)
		rc = udr__tstate_merge(out, &r.window);
	udr__record_free(&r);
	if (rc < 0)
		udr__tstate_free(out);
	return rc;
}

int udr__ckpt_load(udr__tstate *out, udr_catalog *c, const udr__ckpt_kind *k, const udr__record *r,
                   uint64_t seq, const udr_hash *digest, int depth)
{
	char *path, *text = NULL;
	size_t len;
	int rc;
	memset(out, 0, sizeof(*out));
	if (seq == 0)
		return 0;
	if (!(path = k->path(c, seq)))
		return UDR_ENOMEM;
	rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
	if (rc == 0) {
		udr_hash d;
		udr_hash_buf(&d, text, len);
		if (udr_hash_equal(&d, digest) && k->from_json(out, text, len, path, seq) == 0)
			goto done;
	}
	if (rc == UDR_ENOMEM)
		goto done;
	/* A checkpoint is derived from the log: when it is missing or does
	 * not match the digest the record names, rebuild it from the records
	 * and check the rebuilt bytes against that digest. */
	udr_error_clear();
	if ((rc = k->rebuild(out, c, seq, depth)) == 0) {
		char *t2 = NULL;
		size_t l2;
		udr_hash d;
		if ((rc = k->encode(&t2, &l2, out, seq)) == 0) {
			udr_hash_buf(&d, t2, l2);
			if (!udr_hash_equal(&d, digest))
				rc = udr__error_set(UDR_ECORRUPT, "commit %llu names a %s of commit %llu that the log does not produce",
				                    (unsigned long long)r->cm->seq, k->what, (unsigned long long)seq);
		}
		free(t2);
		if (rc < 0)
			udr__tstate_free(out);
	}
done:
	free(text);
	free(path);
	return rc;
}

static const udr__ckpt_kind snapshot_ckpt = {"checkpoint", udr__state_path, state_from_json, state_rebuild,
                                             udr__state_encode};

int udr__state_base(udr__tstate *out, udr_catalog *c, const udr__record *r)
{
	return udr__ckpt_load(out, c, &snapshot_ckpt, r, r->base, &r->base_state, 0);
}

/*
 * The state at seq when record seq is format 1 (an older udr committed
 * after this one): the nearest format-2 record below it, and the changes of
 * the format-1 records after it.  0 with *known false when the whole log
 * below seq is format 1 (a catalog of older versions: callers search the
 * version files as those did).
 */
static int state_legacy_tail(udr__tstate *out, bool *known, udr_catalog *c, uint64_t seq)
{
	uint64_t s = seq;
	udr__record r;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	*known = false;
	for (;;) {
		if ((rc = udr__record_read(&r, c, s)) < 0)
			return rc;
		if (!r.legacy)
			break;
		udr__record_free(&r);
		if (--s == 0)
			return 0;
	}
	*known = true;
	if ((rc = udr__state_base(out, c, &r)) == 0)
		rc = udr__tstate_merge(out, &r.window);
	udr__record_free(&r);
	if (rc == 0)
		rc = apply_records(out, c, s + 1, seq);
	if (rc < 0)
		udr__tstate_free(out);
	return rc;
}

int udr__state_at(udr__tstate *out, bool *known, udr_catalog *c, uint64_t seq)
{
	udr__record r;
	int rc;
	memset(out, 0, sizeof(*out));
	*known = true;
	if (seq == 0)
		return 0;
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	if (r.legacy) {
		udr__record_free(&r);
		return state_legacy_tail(out, known, c, seq);
	}
	if ((rc = udr__state_base(out, c, &r)) == 0 && (rc = udr__tstate_merge(out, &r.window)) < 0)
		udr__tstate_free(out);
	udr__record_free(&r);
	return rc;
}

/* 1 and *out filled when table is in s, else 0. */
static int take_entry(udr__tentry *out, const udr__tstate *s, const char *table)
{
	const udr__tentry *e = udr__tstate_find(s, table);
	if (!e)
		return 0;
	out->version = e->version;
	out->seq = e->seq;
	return 1;
}

int udr__state_lookup(udr__tentry *out, udr_catalog *c, uint64_t seq, const char *table)
{
	return udr__state_lookup_ex(out, c, seq, table, NULL);
}

int udr__state_lookup_ex(udr__tentry *out, udr_catalog *c, uint64_t seq, const char *table, const char *view)
{
	udr__record own;
	const udr__record *r;
	udr__tstate base;
	bool known = true;
	int rc;
	memset(out, 0, sizeof(*out));
	if (seq == 0)
		return 0;
	/* the lock holder parsed the head record already */
	if (!(r = udr__writer_record(c, seq))) {
		if ((rc = udr__record_read(&own, c, seq)) < 0)
			return rc;
		r = &own;
	}
	/* a store that branched: allocation and branches come from the
	 * global series (refs.c); before, every record was main's */
	if (view && (r->branched || (view[0] != '@' && strcmp(view, "main") != 0))) {
		rc = udr__view_lookup(out, c, r, table, view);
		if (r == &own)
			udr__record_free(&own);
		return rc;
	}
	/* the common case: the table is in the record's own window */
	if (!r->legacy && take_entry(out, &r->window, table)) {
		if (r == &own)
			udr__record_free(&own);
		return 1;
	}
	if (r->legacy)
		rc = state_legacy_tail(&base, &known, c, seq);
	else
		rc = udr__state_base(&base, c, r);
	if (r == &own)
		udr__record_free(&own);
	if (rc < 0)
		return rc;
	rc = known ? take_entry(out, &base, table) : 2;
	udr__tstate_free(&base);
	return rc;
}
