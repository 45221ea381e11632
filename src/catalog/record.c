/*
 * record.c - commit records (log/<seq>.json): their sealed format-2 form
 * with the previous record's digest, the base checkpoint and the window of
 * tables changed since it, and format-1 records of older stores, which
 * carry none of these and are accepted as they are (docs/FORMAT.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

void udr__record_free(udr__record *r)
{
	if (!r)
		return;
	udr_commit_free(r->cm);
	udr__tstate_free(&r->window);
	udr__tstate_free(&r->gwindow);
	udr__xrec_free(r->xrec);
	free(r->retention);
	memset(r, 0, sizeof(*r));
}

static int hash_field(udr_hash *out, json_t *x)
{
	return json_is_string(x) && json_string_length(x) == UDR_HASH_HEXSIZE &&
	               udr_hash_fromhex(out, json_string_value(x)) == 0
	           ? 0
	           : -1;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_u64(json_t *x)
{
	return json_is_integer(x) && json_integer_value(x) >= 0;
}

/* "window": {"table": [version, seq], ...} in table order */
static int window_from_json(udr__tstate *w, json_t *o, uint64_t base, uint64_t seq)
{
	const char *key, *prev = NULL;
	json_t *val;
	if (!json_is_object(o))
		return -1;
	json_object_foreach(o, key, val) {
		json_t *v = json_array_get(val, 0), *s = json_array_get(val, 1);
		if (udr_table_name_check(key) < 0 || !json_is_array(val) || json_array_size(val) != 2 || !is_u64(v) ||
		    !is_u64(s) || json_integer_value(v) < 1 || (uint64_t)json_integer_value(s) <= base ||
		    (uint64_t)json_integer_value(s) > seq || (prev && strcmp(prev, key) >= 0)) {
			udr_error_clear();
			return -1;
		}
		if (udr__tstate_set(w, key, (uint64_t)json_integer_value(v), (uint64_t)json_integer_value(s)) < 0)
			return UDR_ENOMEM;
		prev = key;
	}
	return 0;
}

/* Keys of the global series: a table name, "@branch:NAME"/"@tag:NAME", or
 * expiry's "@expired:TABLE" and "@expire" (expire.c). */
static bool global_key_ok(const char *key)
{
	if (strncmp(key, "@expired:", 9) == 0)
		return udr_table_name_check(key + 9) == 0;
	if (strcmp(key, "@expire") == 0 || strcmp(key, "@gc") == 0 || strcmp(key, "@retention") == 0)
		return true;
	if (strncmp(key, "@branch:", 8) == 0)
		return udr_ref_name_check(key + 8) == 0;
	if (strncmp(key, "@tag:", 5) == 0)
		return udr_ref_name_check(key + 5) == 0;
	return udr_table_name_check(key) == 0;
}

/* "gwindow": as a window, with ref keys, whose value 0 means deleted. */
int udr__gentries_from_json(udr__tstate *w, json_t *o, uint64_t lo, uint64_t hi)
{
	const char *key, *prev = NULL;
	json_t *val;
	if (!json_is_object(o))
		return -1;
	json_object_foreach(o, key, val) {
		json_t *v = json_array_get(val, 0), *s = json_array_get(val, 1);
		if (!global_key_ok(key) || !json_is_array(val) || json_array_size(val) != 2 || !is_u64(v) || !is_u64(s) ||
		    (json_integer_value(v) < 1 && key[0] != '@') || (uint64_t)json_integer_value(s) <= lo ||
		    (uint64_t)json_integer_value(s) > hi || (uint64_t)json_integer_value(v) > hi ||
		    (prev && strcmp(prev, key) >= 0)) {
			udr_error_clear();
			return -1;
		}
		if (udr__tstate_set(w, key, (uint64_t)json_integer_value(v), (uint64_t)json_integer_value(s)) < 0)
			return UDR_ENOMEM;
		prev = key;
	}
	return 0;
}

/* What branches add to a format-2 record (FORMAT.md "Branches"). */
static int refs_from_json(udr__record *r, udr_commit *cm, json_t *o, const char *path, uint64_t seq)
{
	json_t *op = json_object_get(o, "op"), *ref = json_object_get(o, "ref"), *ps = json_object_get(o, "parents"),
	       *rp = json_object_get(o, "ref_prev"), *gb = json_object_get(o, "gbase"), *src = json_object_get(o, "source"),
	       *x;
	size_t i;
	int rc;
	if ((op && !json_is_string(op)) || (ref && !json_is_string(ref)) || (ps && !json_is_array(ps)) ||
	    (rp && (!is_u64(rp) || (uint64_t)json_integer_value(rp) >= seq)) ||
	    (gb && (!is_u64(gb) || (uint64_t)json_integer_value(gb) >= seq)) || (op && !gb) ||
	    (src && (!op || !is_u64(src) || json_integer_value(src) == 0 || (uint64_t)json_integer_value(src) >= seq)))
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad ref fields", path);
	if ((op && !(cm->op = strdup(json_string_value(op)))) || (ref && !(cm->ref = strdup(json_string_value(ref)))))
		return udr__error_oom();
	cm->source = src ? (uint64_t)json_integer_value(src) : 0;
	if (ps) {
		if (json_array_size(ps) < 1 || json_array_size(ps) > 16 ||
		    !(cm->parents = calloc(json_array_size(ps), sizeof(uint64_t))))
			return json_array_size(ps) < 1 || json_array_size(ps) > 16
			           ? udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad parents", path)
			           : udr__error_oom();
		json_array_foreach(ps, i, x) {
			if (!is_u64(x) || (uint64_t)json_integer_value(x) >= seq)
				return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad parents", path);
			cm->parents[i] = (uint64_t)json_integer_value(x);
		}
		cm->nparents = json_array_size(ps);
		if (cm->parents[0] != cm->parent)
			return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: parents disagree with parent", path);
	} else if (cm->parent > 0) {
		if (!(cm->parents = malloc(sizeof(uint64_t))))
			return udr__error_oom();
		cm->parents[0] = cm->parent;
		cm->nparents = 1;
	}
	if (cm->parent >= seq)
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: parent %llu is not older", path,
		                      (unsigned long long)cm->parent);
	r->ref_prev = rp ? (uint64_t)json_integer_value(rp) : (seq > 0 ? seq - 1 : 0);
	if (op && udr__op_expiry(json_string_value(op))) {
		const char *k = json_string_value(op);
		if (rp || ref || ps || src || cm->parent != seq - 1 || json_array_size(json_object_get(o, "changes")) != 0 ||
		    strcmp(cm->branch, "") != 0)
			return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: an expire record with ref fields", path);
		if ((rc = udr__xrec_from_json(&r->xrec, json_object_get(o, k), path, seq, strcmp(k, "unexpire") == 0)) < 0)
			return rc;
		if (json_object_get(o, strcmp(k, "unexpire") == 0 ? "expire" : "unexpire"))
			return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: both expire and unexpire", path);
	} else if (op && strcmp(json_string_value(op), "gc") == 0) {
		json_t *g = json_object_get(o, "gc"), *ep = json_object_get(g, "epoch"), *mk = json_object_get(g, "mark"),
		       *th = json_object_get(g, "through");
		if (rp || ref || ps || src || cm->parent != seq - 1 || json_array_size(json_object_get(o, "changes")) != 0 ||
		    strcmp(cm->branch, "") != 0 || !json_is_object(g) || json_object_size(g) != 3 || !is_u64(ep) ||
		    !is_u64(mk) || !is_u64(th) || (uint64_t)json_integer_value(mk) >= seq ||
		    json_integer_value(th) > json_integer_value(mk) || json_object_get(o, "expire") ||
		    json_object_get(o, "unexpire"))
			return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad gc record", path);
		r->has_gc = true;
		r->gc_epoch = (uint64_t)json_integer_value(ep);
		r->gc_mark = (uint64_t)json_integer_value(mk);
		r->gc_through = (uint64_t)json_integer_value(th);
	} else if (op && strcmp(json_string_value(op), "retention") == 0) {
		json_t *p = json_object_get(o, "retention");
		if (rp || ref || ps || src || cm->parent != seq - 1 || json_array_size(json_object_get(o, "changes")) != 0 ||
		    strcmp(cm->branch, "") != 0 || !json_is_object(p) || json_object_get(o, "expire") ||
		    json_object_get(o, "unexpire") || json_object_get(o, "gc"))
			return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad retention record", path);
		if (!(r->retention = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER)))
			return udr__error_oom();
	} else if (json_object_get(o, "expire") || json_object_get(o, "unexpire") || json_object_get(o, "gc") ||
	           json_object_get(o, "retention")) {
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: expiry in a record of another kind", path);
	}
	if (!gb)
		return 0;
	r->branched = true;
	r->gbase = (uint64_t)json_integer_value(gb);
	if (r->gbase > 0 && hash_field(&r->gbase_state, json_object_get(o, "gbase_state")) < 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad gbase_state", path);
	if ((rc = udr__gentries_from_json(&r->gwindow, json_object_get(o, "gwindow"), r->gbase, seq)) != 0)
		return rc == UDR_ENOMEM ? rc : udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad gwindow", path);
	return 0;
}

static int record_from_json(udr__record *r, const char *text, size_t len, const char *path, uint64_t seq)
{
	json_error_t jerr;
	json_t *o, *changes, *x;
	udr_commit *cm = NULL;
	size_t i;
	int rc, sealed;
	json_int_t fmt;

	if ((sealed = udr__unseal(text, len, path, "commit record")) < 0)
		return sealed;
	if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: %s (line %d)", path, jerr.text,
		                      jerr.line);
	rc = 0;
	changes = json_object_get(o, "changes");
	x = json_object_get(o, "format");
	fmt = json_is_integer(x) ? json_integer_value(x) : -1;
	/* A format-2 record is only believed with an intact seal, and a
	 * format-1 record (older stores) has none of format 2's keys: damage
	 * to the seal or to the format number can't pass as an older record. */
	if (!json_is_object(o) || (sealed ? fmt != RECORD_FORMAT : fmt != 1) ||
	    (!sealed && (json_object_get(o, "check") || json_object_get(o, "window") || json_object_get(o, "base")))) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: %s", path,
		                    !sealed && (fmt == 1 || fmt == RECORD_FORMAT) ? "its check is missing or damaged"
		                                                                 : "unknown format");
		goto done;
	}
	if (!is_u64(json_object_get(o, "seq")) || (uint64_t)json_integer_value(json_object_get(o, "seq")) != seq ||
	    !is_u64(json_object_get(o, "parent")) || !json_is_integer(json_object_get(o, "time_ms")) ||
	    !json_is_string(json_object_get(o, "branch")) || !json_is_string(json_object_get(o, "author")) ||
	    !json_is_array(changes) || (json_array_size(changes) == 0 && !json_is_string(json_object_get(o, "op")))) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: missing or mistyped fields", path);
		goto done;
	}
	x = json_object_get(o, "message");
	if (x && !json_is_null(x) && !json_is_string(x)) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: message is not a string", path);
		goto done;
	}
	if (!(cm = calloc(1, sizeof(*cm))) ||
	    !(cm->changes = calloc(json_array_size(changes), sizeof(udr_change))) ||
	    !(cm->branch = strdup(json_string_value(json_object_get(o, "branch")))) ||
	    !(cm->author = strdup(json_string_value(json_object_get(o, "author"))))) {
		rc = udr__error_oom();
		goto done;
	}
	cm->seq = seq;
	cm->parent = (uint64_t)json_integer_value(json_object_get(o, "parent"));
	cm->time_ms = (int64_t)json_integer_value(json_object_get(o, "time_ms"));
	if (json_is_string(x) && !(cm->message = strdup(json_string_value(x)))) {
		rc = udr__error_oom();
		goto done;
	}
	json_array_foreach(changes, i, x) {
		json_t *t = json_object_get(x, "table"), *ov = json_object_get(x, "old"),
		       *nv = json_object_get(x, "new"), *dg = json_object_get(x, "digest");
		udr_change *ch = &cm->changes[i];
		if (!json_is_string(t) || udr_table_name_check(json_string_value(t)) < 0 || !is_u64(ov) ||
		    !is_u64(nv) ||
		    (json_object_get(o, "gbase") ? json_integer_value(nv) <= json_integer_value(ov)
		                                 : json_integer_value(nv) != json_integer_value(ov) + 1) ||
		    hash_field(&ch->digest, dg) < 0) {
			udr_error_clear();
			rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad change %zu", path, i);
			goto done;
		}
		if (!(ch->table = strdup(json_string_value(t)))) {
			rc = udr__error_oom();
			goto done;
		}
		ch->old_version = (uint64_t)json_integer_value(ov);
		ch->new_version = (uint64_t)json_integer_value(nv);
		cm->nchanges++;
	}
	/* each table once (sorted copy of the names: records of 100k tables) */
	if (cm->nchanges > 1) {
		const char **names = malloc(cm->nchanges * sizeof(*names));
		if (!names) {
			rc = udr__error_oom();
			goto done;
		}
		for (i = 0; i < cm->nchanges; i++)
			names[i] = cm->changes[i].table;
		qsort(names, cm->nchanges, sizeof(*names), cmp_name);
		for (i = 1; i < cm->nchanges && rc == 0; i++)
			if (strcmp(names[i - 1], names[i]) == 0)
				rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: table %s changed twice", path,
				                    names[i]);
		free(names);
		if (rc < 0)
			goto done;
	}
	r->legacy = !sealed;
	if (sealed && (rc = refs_from_json(r, cm, o, path, seq)) < 0)
		goto done;
	if (sealed) {
		json_t *base = json_object_get(o, "base");
		x = json_object_get(o, "prev");
		r->has_prev = x && !json_is_null(x);
		if ((r->has_prev ? hash_field(&r->prev, x) < 0 : seq > 1) || !is_u64(base) ||
		    (uint64_t)json_integer_value(base) >= seq) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad prev or base", path);
			goto done;
		}
		r->base = (uint64_t)json_integer_value(base);
		if (r->base > 0 && hash_field(&r->base_state, json_object_get(o, "base_state")) < 0) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad base_state", path);
			goto done;
		}
		if ((rc = window_from_json(&r->window, json_object_get(o, "window"), r->base, seq)) != 0) {
			if (rc != UDR_ENOMEM)
				rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: bad window", path);
			goto done;
		}
		/* the window holds at least this commit's own changes */
		for (i = 0; i < cm->nchanges; i++) {
			const udr__tentry *e = udr__tstate_find(&r->window, cm->changes[i].table);
			if (!e || e->version != cm->changes[i].new_version || e->seq != seq) {
				rc = udr__error_set(UDR_ECORRUPT, "corrupt commit record %s: window disagrees with changes",
				                    path);
				goto done;
			}
		}
	}
	udr_hash_buf(&r->digest, text, len);
done:
	json_decref(o);
	if (rc < 0)
		udr_commit_free(cm);
	else
		r->cm = cm;
	return rc;
}

int udr__record_read(udr__record *r, udr_catalog *c, uint64_t seq)
{
	char *path = udr__commit_path(c, seq), *text = NULL;
	size_t len;
	int rc;
	memset(r, 0, sizeof(*r));
	if (!path)
		return UDR_ENOMEM;
	if (udr__writer_cache_get(c, seq, &text, &len)) {
		rc = record_from_json(r, text, len, path, seq);
		goto out;
	}
	rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
	if (rc == UDR_ENOTFOUND) {
		uint64_t head;
		/* One head probe, taken after the failed read: if it covers seq,
		 * a writer linked the record since (records never go away once
		 * linked), so it must be readable now; if not, the commit had not
		 * happened when we looked. */
		if ((rc = udr__catalog_true_head(&head, c)) == 0) {
			if (seq <= head) {
				rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
				if (rc == UDR_ENOTFOUND)
					rc = udr__error_set(UDR_ECORRUPT, "commit record %s is missing (the log has %llu commits)",
					                    path, (unsigned long long)head);
			} else {
				rc = udr__error_set(UDR_ENOTFOUND, "commit %llu not found", (unsigned long long)seq);
			}
		}
	}
	if (rc == 0)
		rc = record_from_json(r, text, len, path, seq);
	if (rc == 0 && !udr__writer_view(c) && seq > c->horizon_seen) {
		/* format 2: a record past the durable horizon is not committed
		 * yet for readers (its writer is still making it durable) */
		uint64_t head;
		if ((rc = udr__catalog_true_head(&head, c)) == 0 && seq > head)
			rc = udr__error_set(UDR_ENOTFOUND, "commit %llu not found", (unsigned long long)seq);
	}
	if (rc == 0) /* under the writer lock, or a reader's statement within its horizon */
		udr__writer_cache_put(c, seq, text, len);
out:
	if (rc < 0)
		udr__record_free(r);
	free(text);
	free(path);
	return rc;
}

int udr__commit_read(udr_commit **out, udr_catalog *c, uint64_t seq)
{
	udr__record r;
	int rc = udr__record_read(&r, c, seq);
	if (rc < 0)
		return rc;
	*out = r.cm;
	r.cm = NULL;
	udr__record_free(&r);
	return 0;
}

/* {"name": [version, seq], ...} of a window, in its order; nonzero on failure. */
static int window_fill(json_t *obj, const udr__tstate *w)
{
	int fail = 0;
	for (size_t i = 0; i < w->n && !fail; i++) {
		json_t *pair = json_array();
		fail |= !pair;
		fail |= json_array_append_new(pair, json_integer((json_int_t)w->e[i].version));
		fail |= json_array_append_new(pair, json_integer((json_int_t)w->e[i].seq));
		fail |= json_object_set_new(obj, w->e[i].table, pair);
	}
	return fail;
}

static int refs_to_json(json_t *o, const udr_commit *cm, const udr__record *r)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	json_t *g = json_object();
	int fail = !g;
	if (cm->op)
		fail |= json_object_set_new(o, "op", json_string(cm->op));
	if (r->xrec)
		fail |= udr__xrec_to_json(o, r->xrec);
	if (r->has_gc)
		fail |= json_object_set_new(o, "gc", json_pack("{sIsIsI}", "epoch", (json_int_t)r->gc_epoch, "mark",
		                                               (json_int_t)r->gc_mark, "through", (json_int_t)r->gc_through));
	if (r->retention) {
		json_t *p = json_loads(r->retention, JSON_REJECT_DUPLICATES, NULL);
		fail |= !p || json_object_set_new(o, "retention", p);
	}
	if (cm->ref)
		fail |= json_object_set_new(o, "ref", json_string(cm->ref));
	if (cm->source)
		fail |= json_object_set_new(o, "source", json_integer((json_int_t)cm->source));
	if (cm->nparents > 1) {
		json_t *ps = json_array();
		fail |= !ps;
		for (size_t i = 0; i < cm->nparents && !fail; i++)
			fail |= json_array_append_new(ps, json_integer((json_int_t)cm->parents[i]));
		fail |= json_object_set_new(o, "parents", ps);
	}
	if (!r->xrec && !r->has_gc && !r->retention) /* records of retention move no ref */
		fail |= json_object_set_new(o, "ref_prev", json_integer((json_int_t)r->ref_prev));
	fail |= json_object_set_new(o, "gbase", json_integer((json_int_t)r->gbase));
	if (r->gbase > 0) {
		udr_hash_tohex(hex, &r->gbase_state);
		fail |= json_object_set_new(o, "gbase_state", json_string(hex));
	}
	fail |= window_fill(g, &r->gwindow);
	fail |= json_object_set_new(o, "gwindow", g);
	return fail;
}

int udr__record_encode(char **out, size_t *out_len, const udr_commit *cm, const udr__record *r)
{
	json_t *o = json_object(), *changes = json_array(), *window = json_object();
	char when[40];
	char hex[UDR_HASH_HEXSIZE + 1];
	json_t *author;
	char *text;
	size_t len;
	int fail = 0, rc;
	if (!o || !changes || !window) {
		json_decref(o);
		json_decref(changes);
		json_decref(window);
		return udr__error_oom();
	}
	udr__format_time(when, sizeof(when), cm->time_ms);
	author = json_string(cm->author);
	if (!author)
		author = json_string("unknown");
	fail |= json_object_set_new(o, "format", json_integer(RECORD_FORMAT));
	fail |= json_object_set_new(o, "seq", json_integer((json_int_t)cm->seq));
	fail |= json_object_set_new(o, "parent", json_integer((json_int_t)cm->parent));
	fail |= json_object_set_new(o, "time", json_string(when));
	fail |= json_object_set_new(o, "time_ms", json_integer(cm->time_ms));
	fail |= json_object_set_new(o, "branch", json_string(cm->branch));
	fail |= json_object_set_new(o, "author", author);
	fail |= json_object_set_new(o, "message", cm->message ? json_string(cm->message) : json_null());
	for (size_t i = 0; i < cm->nchanges && !fail; i++) {
		json_t *ch = json_object();
		udr_hash_tohex(hex, &cm->changes[i].digest);
		fail |= !ch;
		fail |= json_object_set_new(ch, "table", json_string(cm->changes[i].table));
		fail |= json_object_set_new(ch, "old", json_integer((json_int_t)cm->changes[i].old_version));
		fail |= json_object_set_new(ch, "new", json_integer((json_int_t)cm->changes[i].new_version));
		fail |= json_object_set_new(ch, "digest", json_string(hex));
		fail |= json_array_append_new(changes, ch);
	}
	fail |= json_object_set(o, "changes", changes);
	if (r->has_prev) {
		udr_hash_tohex(hex, &r->prev);
		fail |= json_object_set_new(o, "prev", json_string(hex));
	} else {
		fail |= json_object_set_new(o, "prev", json_null());
	}
	fail |= json_object_set_new(o, "base", json_integer((json_int_t)r->base));
	if (r->base > 0) {
		udr_hash_tohex(hex, &r->base_state);
		fail |= json_object_set_new(o, "base_state", json_string(hex));
	}
	fail |= !fail && window_fill(window, &r->window);
	fail |= json_object_set(o, "window", window);
	if (!fail && r->branched)
		fail |= refs_to_json(o, cm, r);
	text = fail ? NULL : json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(o);
	json_decref(changes);
	json_decref(window);
	if (fail)
		return udr__error_set(UDR_EINVAL, "commit message is not valid UTF-8");
	if (!text)
		return udr__error_oom();
	len = strlen(text);
	if ((rc = udr__seal(&text, &len)) < 0) {
		free(text);
		return rc;
	}
	if (len > UDR__MAX_META_FILE) {
		free(text);
		return udr__error_set(UDR_EINVAL, "commit %llu: its record would be %zu bytes, over the limit of %u",
		                      (unsigned long long)cm->seq, len, UDR__MAX_META_FILE);
	}
	*out = text;
	*out_len = len;
	return 0;
}
