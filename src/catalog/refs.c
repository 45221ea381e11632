/*
 * refs.c - branches, tags, the reflog and merges: the one resolver of "table
 * T on ref R".  Every ref move is a record of the log (FORMAT.md "Branches,
 * tags and the reflog"), so it is decided by the one commit point; a record
 * carries its own snapshot (the snapshot series of state.c) and, once the
 * store has branched, the global series: each table's highest allocated
 * version and every ref's head, as a window over refs/<gbase>.json.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <udr/log.h>
#include <udr/refs.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

/* Global checkpoints deeper than this are not rebuilt recursively. */
#define GLOBAL_REBUILD_DEPTH 4096

int udr_ref_name_check(const char *name)
{
	size_t n;
	char q[300];
	const char *why = NULL;
	if (!name)
		return udr__error_set(UDR_EINVAL, "invalid ref name: NULL");
	n = strlen(name);
	if (n == 0)
		why = "it is empty";
	else if (n > UDR_REF_NAME_MAX)
		why = "it is longer than 255 bytes";
	else if (name[0] == '-' || name[0] == '/')
		why = "it starts with '-' or '/'";
	else if (name[n - 1] == '/')
		why = "it ends with '/'";
	else if (n >= 5 && strcmp(name + n - 5, ".lock") == 0)
		why = "it ends with \".lock\"";
	else if (strstr(name, ".."))
		why = "it contains \"..\"";
	else if (strstr(name, "//"))
		why = "it contains \"//\"";
	else
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)name[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
			      ch == '_' || ch == '-' || ch == '/')) {
				why = "only letters, digits and \"._-/\" are allowed";
				break;
			}
		}
	if (!why)
		return 0;
	udr__quote(q, sizeof(q), name);
	return udr__error_set(UDR_EINVAL, "invalid branch or tag name '%s': %s", q, why);
}

static char *ref_key(const char *kind, const char *name)
{
	size_t n = strlen(kind) + strlen(name) + 3;
	char *k = malloc(n);
	if (k)
		snprintf(k, n, "@%s:%s", kind, name);
	return k;
}

/* ---- global checkpoints (refs/<seq>.json) --------------------------------- */

static int gstate_encode(char **out, size_t *out_len, const udr__tstate *s, uint64_t seq)
{
	udr__buf b = {0};
	int rc = udr__buf_printf(&b, "{\"format\":1,\"seq\":%llu,\"entries\":{", (unsigned long long)seq);
	/* keys are table names or "@kind:" + ref names: no JSON escaping needed */
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

static int gstate_from_json(udr__tstate *out, const char *text, size_t len, const char *path, uint64_t seq)
{
	json_error_t jerr;
	json_t *o;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = udr__unseal(text, len, path, "global checkpoint")) <= 0)
		return rc < 0 ? rc : udr__error_set(UDR_ECORRUPT, "corrupt global checkpoint %s: its check is missing", path);
	if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_ECORRUPT, "corrupt global checkpoint %s: %s", path, jerr.text);
	if (!json_is_integer(json_object_get(o, "seq")) || (uint64_t)json_integer_value(json_object_get(o, "seq")) != seq)
		rc = udr__error_set(UDR_ECORRUPT, "corrupt global checkpoint %s: wrong seq", path);
	else if ((rc = udr__gentries_from_json(out, json_object_get(o, "entries"), 0, seq)) != 0)
		rc = rc == UDR_ENOMEM ? rc : udr__error_set(UDR_ECORRUPT, "corrupt global checkpoint %s: bad entries", path);
	json_decref(o);
	if (rc < 0)
		udr__tstate_free(out);
	return rc;
}

static char *gstate_path(const udr_catalog *c, uint64_t seq)
{
	return udr__seq_path(c->refsdir, seq);
}

static int gstate_write(udr_hash *digest, udr_catalog *c, const udr__tstate *s, uint64_t seq)
{
	char *text = NULL, *path = NULL;
	size_t len;
	int rc;
	if ((rc = gstate_encode(&text, &len, s, seq)) < 0)
		return rc;
	udr_hash_buf(digest, text, len);
	if (!(path = gstate_path(c, seq)))
		rc = UDR_ENOMEM;
	else if ((rc = udr__mkdir(c->refsdir, NULL)) == 0)
		/* derived from the log: the same bytes, or damaged ones */
		rc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, false);
	free(text);
	free(path);
	return rc < 0 ? rc : 0;
}

/* The snapshot of record r (its window over its base). */
static int snapshot_of(udr__tstate *out, udr_catalog *c, const udr__record *r)
{
	bool known;
	int rc;
	if (r->legacy) {
		if ((rc = udr__state_at(out, &known, c, r->cm->seq)) == 0 && !known)
			rc = udr__state_scan(out, c, r->cm->seq);
		return rc;
	}
	if ((rc = udr__state_base(out, c, r)) == 0 && (rc = udr__tstate_merge(out, &r->window)) < 0)
		udr__tstate_free(out);
	return rc;
}

static int gstate_of(udr__tstate *out, udr_catalog *c, const udr__record *r, int depth);

/* The global state at seq, from the records alone. */
static int gstate_rebuild(udr__tstate *out, udr_catalog *c, uint64_t seq, int depth)
{
	udr__record r;
	int rc;
	memset(out, 0, sizeof(*out));
	if (seq == 0)
		return 0;
	if (depth > GLOBAL_REBUILD_DEPTH)
		return udr__error_set(UDR_ECORRUPT, "global checkpoints below commit %llu are missing or damaged",
		                      (unsigned long long)seq);
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	rc = gstate_of(out, c, &r, depth + 1);
	udr__record_free(&r);
	return rc;
}

/* The state at r's gbase: the checkpoint if it matches its digest, else
 * rebuilt and checked against it. */
static int gbase_read(udr__tstate *out, udr_catalog *c, const udr__record *r, int depth)
{
	static const udr__ckpt_kind global_ckpt = {"global checkpoint", gstate_path, gstate_from_json,
	                                           gstate_rebuild, gstate_encode};
	return udr__ckpt_load(out, c, &global_ckpt, r, r->gbase, &r->gbase_state, depth);
}

/* The global state at record r. */
static int gstate_of(udr__tstate *out, udr_catalog *c, const udr__record *r, int depth)
{
	int rc;
	memset(out, 0, sizeof(*out));
	if (!r->branched) {
		/* before the store branched: main was the only ref */
		if ((rc = snapshot_of(out, c, r)) == 0 && (rc = udr__tstate_set(out, "@branch:main", r->cm->seq, r->cm->seq)) < 0)
			udr__tstate_free(out);
		return rc;
	}
	if ((rc = gbase_read(out, c, r, depth)) == 0 && (rc = udr__tstate_merge(out, &r->gwindow)) < 0)
		udr__tstate_free(out);
	return rc;
}

/* A handle keeps the last global checkpoint it parsed (immutable, its
 * digest checked): with many refs it is the largest file a read touches. */
struct refs_cache {
	uint64_t seq;
	udr_hash digest;
	udr__tstate st;
};
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

void udr__refs_cache_free(udr_catalog *c)
{
	struct refs_cache *k = c->refs_cache;
	if (!k)
		return;
	udr__tstate_free(&k->st);
	free(k);
	c->refs_cache = NULL;
}

/* The entry for key in the global state at r (a branched record). */
static int global_find(udr__tentry *out, udr_catalog *c, const udr__record *r, const char *key)
{
	const udr__tentry *e;
	struct refs_cache *k;
	udr__tstate st;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((e = udr__tstate_find(&r->gwindow, key))) {
		out->version = e->version;
		out->seq = e->seq;
		return 1;
	}
	if (r->gbase == 0)
		return 0;
	pthread_mutex_lock(&cache_mu);
	k = c->refs_cache;
	if (k && k->seq == r->gbase && udr_hash_equal(&k->digest, &r->gbase_state)) {
		rc = 0;
		if ((e = udr__tstate_find(&k->st, key))) {
			out->version = e->version;
			out->seq = e->seq;
			rc = 1;
		}
		pthread_mutex_unlock(&cache_mu);
		return rc;
	}
	pthread_mutex_unlock(&cache_mu);
	if ((rc = gbase_read(&st, c, r, 0)) < 0)
		return rc;
	rc = 0;
	if ((e = udr__tstate_find(&st, key))) {
		out->version = e->version;
		out->seq = e->seq;
		rc = 1;
	}
	pthread_mutex_lock(&cache_mu);
	if (!c->refs_cache)
		c->refs_cache = calloc(1, sizeof(struct refs_cache));
	if ((k = c->refs_cache)) {
		udr__tstate_free(&k->st);
		k->st = st;
		k->seq = r->gbase;
		k->digest = r->gbase_state;
	} else {
		udr__tstate_free(&st);
	}
	pthread_mutex_unlock(&cache_mu);
	return rc;
}

int udr__global_lookup(udr__tentry *out, udr_catalog *c, const udr__record *r, const char *key)
{
	memset(out, 0, sizeof(*out));
	if (r->branched)
		return global_find(out, c, r, key);
	if (key[0] != '@') {
		int rc = udr__state_lookup(out, c, r->cm->seq, key);
		return rc;
	}
	if (strcmp(key, "@branch:main") == 0) {
		out->version = out->seq = r->cm->seq;
		return 1;
	}
	return 0;
}

static int branch_missing(const char *name)
{
	char q[300];
	udr__quote(q, sizeof(q), name);
	return udr__error_set(UDR_ENOTFOUND, "branch '%s' not found", q);
}

/* Branch name's head record in the global state at r. */
static int head_in(uint64_t *out, udr_catalog *c, const udr__record *r, const char *name)
{
	udr__tentry e;
	char *key = ref_key("branch", name);
	int rc;
	if (!key)
		return UDR_ENOMEM;
	rc = udr__global_lookup(&e, c, r, key);
	free(key);
	if (rc < 0)
		return rc;
	if (rc == 0 || e.version == 0)
		return branch_missing(name);
	*out = e.version;
	return 0;
}

int udr__view_lookup(udr__tentry *out, udr_catalog *c, const udr__record *r, const char *table, const char *view)
{
	uint64_t h = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if (strcmp(view, UDR__VIEW_ALLOC) == 0)
		return udr__global_lookup(out, c, r, table);
	if ((rc = head_in(&h, c, r, view)) < 0)
		return rc;
	return udr__state_lookup(out, c, h, table);
}

int udr__snapshot_table(uint64_t *version, uint64_t *seq, udr_catalog *c, uint64_t commit, const char *table)
{
	udr__tentry e;
	int rc = udr__state_lookup(&e, c, commit, table);
	*version = e.version;
	*seq = e.seq;
	return rc < 0 ? rc : rc == 2 ? 2 : 0;
}

/* The record at the readers' head (0: the log is empty; r untouched). */
static int head_record(udr__record *r, uint64_t *head, udr_catalog *c)
{
	int rc;
	memset(r, 0, sizeof(*r));
	if ((rc = udr_catalog_head(head, c)) < 0 || *head == 0)
		return rc;
	return udr__record_read(r, c, *head);
}

int udr__branch_head(uint64_t *out, udr_catalog *c, const char *branch, uint64_t at)
{
	udr__record r;
	int rc;
	if (!branch)
		branch = "main";
	*out = 0;
	if (at == 0) {
		if ((rc = head_record(&r, &at, c)) < 0)
			return rc;
		if (at == 0)
			return strcmp(branch, "main") == 0 ? 0 : branch_missing(branch);
	} else if ((rc = udr__record_read(&r, c, at)) < 0) {
		return rc;
	}
	rc = head_in(out, c, &r, branch);
	udr__record_free(&r);
	return rc;
}

/* ---- the commit step's part (commit.c calls these under the writer lock) */

bool udr__op_commits(const char *op)
{
	return op && (strcmp(op, "merge") == 0 || strcmp(op, "cherry-pick") == 0 || strcmp(op, "revert") == 0);
}

int udr__catalog_config_format(udr_catalog *c, int n)
{
	char *cfg, json[80];
	int rc;
	if (c->format >= n)
		return 0;
	if (!(cfg = udr__path_join(c->path, "config.json")))
		return UDR_ENOMEM;
	/* before the first record that needs it: older udr versions, which
	 * would take any branch's record for main's (3) or read an expired
	 * version's missing data as damage (4), refuse the catalog */
	snprintf(json, sizeof(json), "{\"format\":%d,\"kind\":\"udr-catalog\",\"sealed\":true}", n);
	rc = udr__config_write(c->tmpdir, cfg, json, UDR__PUBLISH_REPLACE);
	if (rc >= 0)
		rc = udr__fsync_parent(cfg);
	free(cfg);
	if (rc >= 0) {
		c->format = n;
		rc = 0;
	}
	return rc;
}

int udr__global_state(udr__tstate *out, udr_catalog *c, const udr__record *r)
{
	return gstate_of(out, c, r, 0);
}

int udr__refs_plan(udr__refplan *p, udr_catalog *c, const udr__record *prev, uint64_t head, const udr__commit_opts *o)
{
	const char *branch = o->branch ? o->branch : "main";
	const char *op = o->op, *name = o->ref_name ? o->ref_name : branch;
	bool tag = op && (strcmp(op, "tag") == 0 || strcmp(op, "untag") == 0);
	udr__tentry e;
	char *key;
	bool found;
	int rc;
	memset(p, 0, sizeof(*p));
	p->parent = p->snap_from = p->ref_prev = head;
	if (!op && strcmp(branch, "main") == 0 && (!prev || !prev->branched))
		return 0; /* a store that never branched: as before */
	if (c->format < 2)
		return udr__error_set(UDR_EINVAL, "%s need catalog format 2 or later: run 'udr upgrade'",
		                      udr__op_retention(op) ? "retention records" : "branches and tags");
	p->branchy = true;
	if (udr__op_retention(op)) {
		/* branch-less, as a tag record: parent and snapshot from the
		 * linked head; the catalog becomes format 4 (then also 3) */
		if (!prev)
			return udr__error_set(UDR_ENOTFOUND, "the store has no commits yet");
		p->format = strcmp(op, "retention") == 0 ? 5 : 4;
		return 0;
	}
	if (!prev)
		return op && (strcmp(op, "create") == 0 || tag)
		           ? udr__error_set(UDR_ENOTFOUND, "the store has no commits yet")
		           : branch_missing(branch);
	if (!(key = ref_key(tag ? "tag" : "branch", name)))
		return UDR_ENOMEM;
	rc = udr__global_lookup(&e, c, prev, key);
	free(key);
	if (rc < 0)
		return rc;
	found = rc == 1 && e.version > 0;
	p->ref_prev = rc == 1 ? e.seq : 0;
	if (o->target > head)
		return udr__error_set(UDR_ENOTFOUND, "commit %llu not found", (unsigned long long)o->target);
	if (!op || udr__op_commits(op) || strcmp(op, "reset") == 0 || strcmp(op, "delete") == 0 ||
	    strcmp(op, "untag") == 0) {
		if (!found) {
			char q[300];
			udr__quote(q, sizeof(q), name);
			return udr__error_set(UDR_ENOTFOUND, "%s '%s' not found", tag ? "tag" : "branch", q);
		}
		p->parent = p->snap_from = e.version;
		if (op && strcmp(op, "reset") == 0)
			p->parent = p->snap_from = o->target;
		if (op && strcmp(op, "merge") == 0 && o->target != e.version)
			return udr__error_set(UDR_ECONFLICT,
			                      "branch %s moved while merging (its head is commit %llu, the merge was planned "
			                      "on %llu): nothing merged, run the merge again",
			                      name, (unsigned long long)e.version, (unsigned long long)o->target);
		if (op && udr__op_commits(op) && o->target != e.version)
			return udr__error_set(UDR_ECONFLICT,
			                      "branch %s moved during the %s (its head is commit %llu, it was planned on "
			                      "%llu): nothing written, run it again",
			                      name, op, (unsigned long long)e.version, (unsigned long long)o->target);
	} else {
		if (found) {
			char q[300];
			udr__quote(q, sizeof(q), name);
			return udr__error_set(UDR_ECONFLICT, "%s '%s' already exists", tag ? "tag" : "branch", q);
		}
		p->parent = p->snap_from = o->target;
	}
	if (!prev->branched)
		p->format = 3;
	return 0;
}

/* The window of a new record whose snapshot continues record P's.  A
 * record with no table changes of its own (create, reset, tag, ...) has
 * exactly P's snapshot: it keeps P's base and window (bounded as P's are),
 * so creating a branch writes no checkpoint however old P's base is. */
static int snapshot_window(udr__record *ext, udr_catalog *c, const udr__record *P, uint64_t seq, bool same)
{
	udr__tstate st;
	int rc;
	if (P->legacy || (!same && (seq - P->base >= CHECKPOINT_EVERY || P->window.n >= CHECKPOINT_WINDOW))) {
		char *text = NULL, *path = NULL, *file = NULL;
		size_t len, flen;
		if ((rc = snapshot_of(&st, c, P)) < 0)
			return rc;
		ext->base = P->cm->seq;
		/* records that do not move P's branch (branches created from it)
		 * all start from P's checkpoint: written once, then found with
		 * the bytes the log determines */
		if ((rc = udr__state_encode(&text, &len, &st, P->cm->seq)) == 0 && (path = udr__state_path(c, P->cm->seq)) &&
		    udr__read_file(&file, &flen, path, UDR__MAX_META_FILE) == 0 && flen == len && memcmp(file, text, len) == 0) {
			udr_hash_buf(&ext->base_state, text, len);
		} else if (rc == 0) {
			udr_error_clear();
			rc = udr__state_write(&ext->base_state, c, &st, P->cm->seq);
		}
		free(text);
		free(path);
		free(file);
		udr__tstate_free(&st);
		return rc;
	}
	ext->base = P->base;
	ext->base_state = P->base_state;
	return udr__tstate_copy(&ext->window, &P->window);
}

int udr__record_ext_refs(udr__record *ext, udr_catalog *c, const udr__record *prev, const udr_commit *cm,
                         const udr__commit_opts *o, uint64_t snap_from, uint64_t ref_prev)
{
	uint64_t head = cm->seq - 1;
	const char *op = o->op;
	bool tag = op && (strcmp(op, "tag") == 0 || strcmp(op, "untag") == 0);
	char *key = NULL;
	int rc = 0;
	ext->has_prev = true;
	ext->prev = prev->digest;
	ext->branched = true;
	ext->ref_prev = ref_prev;
	/* the snapshot series: the record's own branch */
	bool same = cm->nchanges == 0 && (!o->adopt || o->adopt->n == 0);
	if (snap_from == head) {
		rc = snapshot_window(ext, c, prev, cm->seq, same);
	} else if (snap_from > 0) {
		udr__record P;
		if ((rc = udr__record_read(&P, c, snap_from)) == 0) {
			rc = snapshot_window(ext, c, &P, cm->seq, same);
			udr__record_free(&P);
		}
	}
	for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
		rc = udr__tstate_set(&ext->window, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
	for (size_t i = 0; o->adopt && i < o->adopt->n && rc == 0; i++)
		rc = udr__tstate_set(&ext->window, o->adopt->e[i].table, o->adopt->e[i].version, cm->seq);
	if (rc < 0)
		return rc;
	/* the global series: allocation and refs, from the linked head */
	if (!prev->branched || cm->seq - prev->gbase >= CHECKPOINT_EVERY || prev->gwindow.n >= CHECKPOINT_WINDOW) {
		udr__tstate st;
		if ((rc = gstate_of(&st, c, prev, 0)) < 0)
			return rc;
		rc = gstate_write(&ext->gbase_state, c, &st, head);
		udr__tstate_free(&st);
		ext->gbase = head;
	} else {
		ext->gbase = prev->gbase;
		ext->gbase_state = prev->gbase_state;
		rc = udr__tstate_copy(&ext->gwindow, &prev->gwindow);
	}
	for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
		rc = udr__tstate_set(&ext->gwindow, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
	if (rc < 0)
		return rc;
	if (ext->has_gc)
		return udr__tstate_set(&ext->gwindow, "@gc", ext->gc_through, cm->seq);
	if (ext->retention) /* the policy in force from here on */
		return udr__tstate_set(&ext->gwindow, "@retention", cm->seq, cm->seq);
	if (ext->xrec) {
		/* an expire record moves no ref: it names itself as the holder
		 * of each table's expired set, and as the last expire record */
		for (size_t i = 0; i < ext->xrec->nt && rc == 0; i++) {
			size_t n = strlen(ext->xrec->t[i].table) + 10;
			if (!(key = malloc(n)))
				return udr__error_oom();
			snprintf(key, n, "@expired:%s", ext->xrec->t[i].table);
			rc = udr__tstate_set(&ext->gwindow, key, cm->seq, cm->seq);
			free(key);
		}
		return rc < 0 ? rc : udr__tstate_set(&ext->gwindow, "@expire", cm->seq, cm->seq);
	}
	if (!(key = ref_key(tag ? "tag" : "branch", o->ref_name ? o->ref_name : (o->branch ? o->branch : "main"))))
		return UDR_ENOMEM;
	if (op && (strcmp(op, "delete") == 0 || strcmp(op, "untag") == 0))
		rc = udr__tstate_set(&ext->gwindow, key, 0, cm->seq);
	else if (op && strcmp(op, "tag") == 0)
		rc = udr__tstate_set(&ext->gwindow, key, o->target, cm->seq);
	else
		rc = udr__tstate_set(&ext->gwindow, key, cm->seq, cm->seq);
	free(key);
	return rc;
}

/* ---- public: resolving ---------------------------------------------------- */

static int parse_u64(uint64_t *out, const char *s)
{
	uint64_t n = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*out = n;
	return 0;
}

/* ref at the global record r (NULL: empty log). */
static int resolve_in(uint64_t *commit, udr_catalog *c, const udr__record *r, uint64_t head, const char *ref)
{
	udr__tentry eb, et;
	char *kb, *kt, q[300];
	int rb = 0, rt = 0;
	const char *name = ref;
	int kind = 0;
	if (!ref || !*ref)
		return udr__error_set(UDR_EINVAL, "invalid ref: empty");
	if (strncmp(ref, "commit:", 7) == 0) {
		uint64_t n;
		if (parse_u64(&n, ref + 7) < 0 || n == 0) {
			/* digits past 2^64: a number, of a commit the log has not */
			size_t d = strspn(ref + 7, "0123456789");
			udr__quote(q, sizeof(q), ref);
			if (d > 0 && !ref[7 + d] && strspn(ref + 7, "0") != d)
				return udr__error_set(UDR_ENOTFOUND, "commit %s not found (the log has %llu commits)",
				                      q + 7, (unsigned long long)head);
			return udr__error_set(UDR_EINVAL, "invalid ref '%s': commit:N needs a number >= 1", q);
		}
		if (n > head)
			return udr__error_set(UDR_ENOTFOUND, "commit %llu not found (the log has %llu commits)",
			                      (unsigned long long)n, (unsigned long long)head);
		*commit = n;
		return 0;
	}
	if (strncmp(ref, "branch:", 7) == 0)
		name = ref + 7, kind = UDR_REF_BRANCH;
	else if (strncmp(ref, "tag:", 4) == 0)
		name = ref + 4, kind = UDR_REF_TAG;
	{
		int rc = udr_ref_name_check(name);
		if (rc < 0)
			return rc;
	}
	if (!r) {
		udr__quote(q, sizeof(q), name);
		return udr__error_set(UDR_ENOTFOUND, "%s '%s' not found (the store has no commits)",
		                      kind == UDR_REF_TAG ? "tag" : "branch", q);
	}
	if (!(kb = ref_key("branch", name)) || !(kt = ref_key("tag", name))) {
		free(kb);
		return UDR_ENOMEM;
	}
	if (kind != UDR_REF_TAG)
		rb = udr__global_lookup(&eb, c, r, kb);
	if (rb >= 0 && kind != UDR_REF_BRANCH)
		rt = udr__global_lookup(&et, c, r, kt);
	free(kb);
	free(kt);
	if (rb < 0 || rt < 0)
		return rb < 0 ? rb : rt;
	rb = rb == 1 && eb.version > 0;
	rt = rt == 1 && et.version > 0;
	udr__quote(q, sizeof(q), name);
	if (rb && rt)
		return udr__error_set(UDR_EINVAL, "ref '%s' is both a branch and a tag: say branch:%s or tag:%s", q, name, name);
	if (rb)
		*commit = eb.version;
	else if (rt)
		*commit = et.version;
	else
		return udr__error_set(UDR_ENOTFOUND, "%s '%s' not found",
		                      kind == UDR_REF_BRANCH ? "branch" : kind == UDR_REF_TAG ? "tag" : "branch or tag", q);
	return 0;
}

int udr_catalog_resolve(uint64_t *commit, udr_catalog *c, const char *ref)
{
	udr__record r;
	uint64_t head;
	int rc;
	if (!commit || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_resolve");
	if ((rc = head_record(&r, &head, c)) < 0)
		return rc;
	rc = resolve_in(commit, c, head ? &r : NULL, head, ref);
	udr__record_free(&r);
	return rc;
}

int udr_catalog_resolve_at(uint64_t *commit, udr_catalog *c, const char *ref, int64_t time_ms)
{
	udr__record r;
	uint64_t seq;
	int rc;
	if (!commit || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_resolve_at");
	if ((rc = udr_catalog_seq_at_time(&seq, c, time_ms)) < 0)
		return rc;
	if (seq == 0)
		return udr__error_set(UDR_ENOTFOUND, "no commit was made by then (the log starts later)");
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	rc = resolve_in(commit, c, &r, seq, ref);
	udr__record_free(&r);
	return rc;
}

int udr__resolve_at_seq(uint64_t *commit, udr_catalog *c, const char *ref, uint64_t seq)
{
	udr__record r;
	int rc;
	if (seq == 0)
		return udr_catalog_resolve(commit, c, ref);
	if ((rc = udr__record_read(&r, c, seq)) < 0)
		return rc;
	rc = resolve_in(commit, c, &r, seq, ref);
	udr__record_free(&r);
	return rc;
}

void udr_ref_array_free(udr_ref *refs, size_t count)
{
	for (size_t i = 0; refs && i < count; i++)
		free(refs[i].name);
	free(refs);
}

int udr_catalog_refs(udr_ref **out, size_t *count, udr_catalog *c, int kind)
{
	uint64_t head;
	int rc;
	if (!out || !count || !c || kind < 0 || kind > UDR_REF_TAG)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_refs");
	if ((rc = udr_catalog_head(&head, c)) < 0)
		return rc;
	return udr__catalog_refs_at(out, count, c, kind, head);
}

int udr__catalog_refs_at(udr_ref **out, size_t *count, udr_catalog *c, int kind, uint64_t head)
{
	udr__record r;
	udr__tstate st;
	udr_ref *a = NULL;
	size_t n = 0;
	int rc;
	*out = NULL;
	*count = 0;
	memset(&r, 0, sizeof(r));
	if (head > 0 && (rc = udr__record_read(&r, c, head)) < 0)
		return rc;
	if (head == 0) {
		if (kind == UDR_REF_TAG)
			return 0;
		/* main exists before its first commit, with no head */
		if (!(a = calloc(1, sizeof(*a))) || !(a[0].name = strdup("main"))) {
			free(a);
			return udr__error_oom();
		}
		a[0].kind = UDR_REF_BRANCH;
		*out = a;
		*count = 1;
		return 0;
	}
	if (!r.branched) {
		memset(&st, 0, sizeof(st));
		rc = udr__tstate_set(&st, "@branch:main", head, head);
	} else {
		rc = gstate_of(&st, c, &r, 0);
	}
	udr__record_free(&r);
	if (rc < 0)
		return rc;
	if (st.n && !(a = calloc(st.n, sizeof(*a))))
		rc = udr__error_oom();
	for (int pass = UDR_REF_BRANCH; pass <= UDR_REF_TAG && rc == 0; pass++) {
		const char *pre = pass == UDR_REF_BRANCH ? "@branch:" : "@tag:";
		if (kind && kind != pass)
			continue;
		for (size_t i = 0; i < st.n && rc == 0; i++) {
			if (strncmp(st.e[i].table, pre, strlen(pre)) != 0 || st.e[i].version == 0)
				continue;
			if (!(a[n].name = strdup(st.e[i].table + strlen(pre)))) {
				rc = udr__error_oom();
				break;
			}
			a[n].kind = pass;
			a[n].commit = st.e[i].version;
			a[n].moved = st.e[i].seq;
			n++;
		}
	}
	udr__tstate_free(&st);
	if (rc < 0) {
		udr_ref_array_free(a, n);
		return rc;
	}
	*out = a;
	*count = n;
	return 0;
}

/* ---- public: ref records ----------------------------------------------------- */

static int ref_record(uint64_t *seq_out, udr_catalog *c, const char *op, const char *name, const char *branch,
                      uint64_t target)
{
	udr__commit_opts o;
	memset(&o, 0, sizeof(o));
	o.op = op;
	o.ref_name = name;
	o.branch = branch;
	o.target = target;
	return udr__catalog_commit_versions(seq_out, c, NULL, 0, &o);
}

/*
 * A tag, untag or delete record (commit:N can name one) stands for its
 * parent: the tagged commit, the tag's commit, the deleted branch's head
 * (FORMAT.md "Ref records"); reads already see its parent's snapshot.  A
 * branch, tag or merge made from it names that commit instead, so no
 * record of the history has such a record as a parent.
 */
static int stands_for(uint64_t *s, udr_catalog *c)
{
	for (int i = 0; i < 64 && *s > 0; i++) {
		udr_commit *cm = NULL;
		int rc = udr__commit_read(&cm, c, *s);
		bool through;
		if (rc < 0)
			return rc;
		through = cm->op && (strcmp(cm->op, "tag") == 0 || strcmp(cm->op, "untag") == 0 ||
		                     strcmp(cm->op, "delete") == 0);
		if (through)
			*s = cm->parent;
		udr_commit_free(cm);
		if (!through)
			break;
	}
	return 0;
}

static int resolve_or_main(uint64_t *commit, udr_catalog *c, const char *ref)
{
	int rc = udr_catalog_resolve(commit, c, ref ? ref : "branch:main");
	return rc < 0 ? rc : stands_for(commit, c);
}

int udr_branch_create(uint64_t *seq_out, udr_catalog *c, const char *name, const char *from)
{
	uint64_t target;
	int rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_branch_create");
	if ((rc = udr_ref_name_check(name)) < 0 || (rc = resolve_or_main(&target, c, from)) < 0)
		return rc;
	if (target == 0)
		return udr__error_set(UDR_ENOTFOUND, "branch main has no commits yet: commit something first");
	return ref_record(seq_out, c, "create", name, name, target);
}

int udr_branch_reset(uint64_t *seq_out, udr_catalog *c, const char *name, const char *to)
{
	uint64_t target;
	int rc;
	if (!c || !to)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_branch_reset");
	if ((rc = udr_ref_name_check(name)) < 0 || (rc = resolve_or_main(&target, c, to)) < 0)
		return rc;
	return ref_record(seq_out, c, "reset", name, name, target);
}

int udr_branch_delete(uint64_t *seq_out, udr_catalog *c, const char *name)
{
	int rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_branch_delete");
	if ((rc = udr_ref_name_check(name)) < 0)
		return rc;
	if (strcmp(name, "main") == 0)
		return udr__error_set(UDR_EINVAL, "branch main is the default branch and cannot be deleted");
	return ref_record(seq_out, c, "delete", name, name, 0);
}

int udr_tag_create(uint64_t *seq_out, udr_catalog *c, const char *name, const char *target)
{
	uint64_t t;
	int rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_tag_create");
	if ((rc = udr_ref_name_check(name)) < 0 || (rc = resolve_or_main(&t, c, target)) < 0)
		return rc;
	if (t == 0)
		return udr__error_set(UDR_ENOTFOUND, "branch main has no commits yet: commit something first");
	return ref_record(seq_out, c, "tag", name, "", t);
}

int udr_tag_delete(uint64_t *seq_out, udr_catalog *c, const char *name)
{
	int rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_tag_delete");
	if ((rc = udr_ref_name_check(name)) < 0)
		return rc;
	return ref_record(seq_out, c, "untag", name, "", 0);
}

/* ---- public: the reflog ------------------------------------------------------ */

void udr_reflog_free(udr_reflog_entry *e, size_t count)
{
	for (size_t i = 0; e && i < count; i++) {
		free(e[i].op);
		free(e[i].author);
		free(e[i].message);
	}
	free(e);
}

int udr_branch_reflog(udr_reflog_entry **out, size_t *count, udr_catalog *c, const char *name, size_t limit)
{
	udr__record r;
	udr__tentry e;
	udr_reflog_entry *a = NULL;
	size_t n = 0, cap = 0;
	uint64_t head, s;
	char *key;
	int rc;
	if (!out || !count || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_branch_reflog");
	*out = NULL;
	*count = 0;
	if ((rc = udr_ref_name_check(name)) < 0 || (rc = head_record(&r, &head, c)) < 0)
		return rc;
	if (head == 0)
		return strcmp(name, "main") == 0 ? 0 : branch_missing(name);
	if (!(key = ref_key("branch", name))) {
		udr__record_free(&r);
		return UDR_ENOMEM;
	}
	rc = udr__global_lookup(&e, c, &r, key);
	free(key);
	udr__record_free(&r);
	if (rc <= 0)
		return rc < 0 ? rc : branch_missing(name);
	for (s = e.seq; s > 0 && rc >= 0 && (limit == 0 || n < limit);) {
		udr__record x;
		const char *op;
		if ((rc = udr__record_read(&x, c, s)) < 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			udr_reflog_entry *p = realloc(a, nc * sizeof(*p));
			if (!p) {
				udr__record_free(&x);
				rc = udr__error_oom();
				break;
			}
			a = p;
			cap = nc;
		}
		op = x.cm->op ? x.cm->op : "commit";
		memset(&a[n], 0, sizeof(a[n]));
		a[n].seq = s;
		a[n].head = strcmp(op, "delete") == 0 ? 0 : s;
		a[n].time_ms = x.cm->time_ms;
		if (!(a[n].op = strdup(op)) || !(a[n].author = strdup(x.cm->author)) ||
		    (x.cm->message && !(a[n].message = strdup(x.cm->message))))
			rc = udr__error_oom();
		n++;
		s = x.ref_prev;
		udr__record_free(&x);
	}
	/* each move's old head is the head the move before left; the last
	 * one listed (a limit) reads the move before it */
	for (size_t i = 0; i + 1 < n; i++)
		a[i].old = a[i + 1].head;
	if (rc >= 0 && n > 0 && s > 0) {
		udr__record x;
		if ((rc = udr__record_read(&x, c, s)) >= 0) {
			a[n - 1].old = x.cm->op && strcmp(x.cm->op, "delete") == 0 ? 0 : s;
			udr__record_free(&x);
		}
	}
	if (rc < 0) {
		udr_reflog_free(a, n);
		return rc;
	}
	*out = a;
	*count = n;
	return 0;
}

/* ---- public: reads on a ref ------------------------------------------------ */

void udr_table_ref_array_free(udr_table_ref *a, size_t count)
{
	for (size_t i = 0; a && i < count; i++)
		free(a[i].table);
	free(a);
}

static int resolve_default(uint64_t *commit, udr_catalog *c, const char *ref)
{
	return udr_catalog_resolve(commit, c, ref ? ref : "branch:main");
}

int udr_catalog_snapshot(udr_table_ref **out, size_t *count, udr_catalog *c, const char *ref)
{
	udr__tstate st;
	udr_table_ref *a = NULL;
	uint64_t commit;
	bool known = true;
	int rc;
	if (!out || !count || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_snapshot");
	*out = NULL;
	*count = 0;
	if ((rc = resolve_default(&commit, c, ref)) < 0)
		return rc;
	if (commit == 0)
		return 0;
	if ((rc = udr__state_at(&st, &known, c, commit)) < 0)
		return rc;
	if (!known && (rc = udr__state_scan(&st, c, commit)) < 0) /* a log of format-1 records */
		return rc;
	if (st.n && !(a = calloc(st.n, sizeof(*a))))
		rc = udr__error_oom();
	for (size_t i = 0; i < st.n && rc == 0; i++) {
		if (!(a[i].table = strdup(st.e[i].table)))
			rc = udr__error_oom();
		a[i].version = st.e[i].version;
		a[i].commit = st.e[i].seq;
	}
	if (rc < 0) {
		udr_table_ref_array_free(a, st.n);
		udr__tstate_free(&st);
		return rc;
	}
	*out = a;
	*count = st.n;
	udr__tstate_free(&st);
	return 0;
}

void udr_table_diff_free(udr_table_diff *d, size_t count)
{
	for (size_t i = 0; d && i < count; i++)
		free(d[i].table);
	free(d);
}

/* *v set to 0 when version *v of table records a drop (udr.dropped). */
static int absent_if_dropped(uint64_t *v, udr_catalog *c, const char *table)
{
	udr_version *ver = NULL;
	int rc;
	if (*v == 0)
		return 0;
	if ((rc = udr_catalog_get_version(&ver, c, table, *v)) < 0)
		return rc;
	if (udr_version_is_dropped(ver))
		*v = 0;
	udr_version_free(ver);
	return 0;
}

int udr_catalog_diff(udr_table_diff **out, size_t *count, udr_catalog *c, const char *ra, const char *rb)
{
	udr_table_ref *a = NULL, *b = NULL;
	udr_table_diff *d = NULL;
	size_t na = 0, nb = 0, i = 0, j = 0, n = 0;
	int rc;
	if (!out || !count)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_diff");
	*out = NULL;
	*count = 0;
	if ((rc = udr_catalog_snapshot(&a, &na, c, ra)) < 0 || (rc = udr_catalog_snapshot(&b, &nb, c, rb)) < 0)
		goto done;
	if (na + nb && !(d = calloc(na + nb, sizeof(*d)))) {
		rc = udr__error_oom();
		goto done;
	}
	/* both sorted by name: one merge pass */
	while (i < na || j < nb) {
		int cmp = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i].table, b[j].table);
		const char *t = cmp <= 0 ? a[i].table : b[j].table;
		uint64_t va = cmp <= 0 ? a[i].version : 0, vb = cmp >= 0 ? b[j].version : 0;
		i += cmp <= 0;
		j += cmp >= 0;
		if (va == vb)
			continue;
		/* a version that records a drop is no table: absent (0) */
		if ((rc = absent_if_dropped(&va, c, t)) < 0 || (rc = absent_if_dropped(&vb, c, t)) < 0)
			goto done;
		if (va == vb)
			continue;
		if (!(d[n].table = strdup(t))) {
			rc = udr__error_oom();
			goto done;
		}
		d[n].old_version = va;
		d[n].new_version = vb;
		n++;
	}
	*out = d;
	*count = n;
	d = NULL;
done:
	udr_table_diff_free(d, n);
	udr_table_ref_array_free(a, na);
	udr_table_ref_array_free(b, nb);
	return rc;
}

int udr_catalog_latest_on(uint64_t *out, udr_catalog *c, const char *table, const char *ref)
{
	uint64_t commit, seq;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_latest_on");
	if (!ref || strcmp(ref, "main") == 0 || strcmp(ref, "branch:main") == 0)
		return udr_catalog_latest(out, c, table);
	if ((rc = udr_table_name_check(table)) < 0 || (rc = resolve_default(&commit, c, ref)) < 0)
		return rc;
	if ((rc = udr__snapshot_table(out, &seq, c, commit, table)) < 0)
		return rc;
	if (rc == 2) { /* a log of format-1 records: only main, as of commit */
		uint64_t latest;
		if ((rc = udr__table_latest(&latest, c, table)) < 0 ||
		    (rc = udr__version_at_seq(out, c, table, latest, commit)) < 0)
			return rc;
	}
	if (*out == 0) {
		char q[300];
		udr__quote(q, sizeof(q), ref);
		return udr__error_set(UDR_ENOTFOUND, "table '%s' not found on %s", table, q);
	}
	return 0;
}

int udr_catalog_get_version_on(udr_version **out, udr_catalog *c, const char *table, uint64_t version,
                               const char *ref)
{
	int rc;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_get_version_on");
	*out = NULL;
	/* main's latest: one lookup that keeps the version it verified, not
	 * the latest number and then the version read and verified again */
	if (version == 0 && (!ref || strcmp(ref, "main") == 0 || strcmp(ref, "branch:main") == 0) && c)
		return udr_catalog_get_version(out, c, table, 0);
	if (version == 0 && (rc = udr_catalog_latest_on(&version, c, table, ref)) < 0)
		return rc;
	return udr_catalog_get_version(out, c, table, version);
}

int udr_catalog_list_versions_on(uint64_t **out, size_t *count, udr_catalog *c, const char *table, const char *ref)
{
	uint64_t v, *arr = NULL;
	size_t n = 0, cap = 0;
	udr__record r;
	uint64_t head;
	int rc;
	if (!out || !count)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_list_versions_on");
	if ((rc = udr_catalog_latest_on(&v, c, table, ref)) < 0)
		return rc;
	if ((rc = head_record(&r, &head, c)) < 0)
		return rc;
	if (!r.branched) { /* never branched: versions are 1..v */
		udr__record_free(&r);
		if (!udr__mul_ok((size_t)v, sizeof(uint64_t), &cap) || !(arr = malloc(cap ? cap : 1)))
			return udr__error_oom();
		for (uint64_t i = 0; i < v; i++)
			arr[i] = i + 1;
		*out = arr;
		*count = (size_t)v;
		return 0;
	}
	udr__record_free(&r);
	/* the version on ref and its parents (each a version of this branch's
	 * history), oldest first */
	while (v > 0) {
		udr_version *x = NULL;
		if ((rc = udr_catalog_get_version(&x, c, table, v)) < 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			uint64_t *p = realloc(arr, nc * sizeof(*p));
			if (!p) {
				udr_version_free(x);
				rc = udr__error_oom();
				break;
			}
			arr = p;
			cap = nc;
		}
		arr[n++] = v;
		if (x->parent >= v) {
			udr_version_free(x);
			rc = udr__error_set(UDR_ECORRUPT, "table %s: version %llu names a newer parent", table,
			                    (unsigned long long)v);
			break;
		}
		v = x->parent;
		udr_version_free(x);
	}
	if (rc < 0) {
		free(arr);
		return rc;
	}
	for (size_t i = 0; i < n / 2; i++) {
		uint64_t t = arr[i];
		arr[i] = arr[n - 1 - i];
		arr[n - 1 - i] = t;
	}
	*out = arr;
	*count = n;
	return 0;
}

int udr_catalog_list_tables_on(char ***out, size_t *count, udr_catalog *c, const char *ref)
{
	udr_table_ref *a = NULL;
	size_t n = 0;
	char **names = NULL;
	int rc;
	if (!out || !count)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_list_tables_on");
	if (!ref)
		return udr_catalog_list_tables(out, count, c);
	if ((rc = udr_catalog_snapshot(&a, &n, c, ref)) < 0)
		return rc;
	if (n && !(names = calloc(n, sizeof(*names))))
		rc = udr__error_oom();
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!(names[i] = strdup(a[i].table)))
			rc = udr__error_oom();
	udr_table_ref_array_free(a, n);
	if (rc < 0) {
		udr_strarray_free(names, n);
		return rc;
	}
	*out = names;
	*count = n;
	return 0;
}

int udr_catalog_commit_on(udr_catalog *c, udr_version *v, const char *branch, int assign)
{
	udr_version *vs[1] = {v};
	udr__commit_opts o;
	int rc;
	if (branch && (rc = udr_ref_name_check(branch)) < 0)
		return rc;
	memset(&o, 0, sizeof(o));
	o.assign = assign != 0;
	o.branch = branch;
	return udr__catalog_commit_versions(NULL, c, vs, 1, &o);
}

/* ---- merge --------------------------------------------------------------------- */

/* A create or reset record stands for the commit it names (same snapshot). */
static int effective(uint64_t *out, udr_catalog *c, uint64_t s)
{
	for (int i = 0; i < 64 && s > 0; i++) {
		udr_commit *cm = NULL;
		int rc = udr__commit_read(&cm, c, s);
		bool through;
		if (rc < 0)
			return rc;
		through = cm->op && (strcmp(cm->op, "create") == 0 || strcmp(cm->op, "reset") == 0);
		if (through)
			s = cm->parent;
		udr_commit_free(cm);
		if (!through)
			break;
	}
	*out = s;
	return 0;
}

/* The merge bases of a and b: their newest common ancestors (*n of them in
 * *out, newest first; more than one: a criss-cross history).  mbase.c reads
 * the records between the commits and their bases, not the history. */
static int merge_base(uint64_t **out, size_t *n, bool *ff, bool *utd, udr_catalog *c, uint64_t ours,
                      uint64_t theirs)
{
	int rc;
	*ff = *utd = false;
	if ((rc = udr__merge_bases(out, n, c, ours, theirs)) < 0)
		return rc;
	if (*n > 0) {
		if ((*out)[0] == theirs)
			*utd = true;
		else if ((*out)[0] == ours)
			*ff = true;
	}
	return 0;
}

void udr_merge_result_free(udr_merge_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->ntables; i++) {
		free(r->tables[i].table);
		free(r->tables[i].note);
	}
	free(r->tables);
	free(r);
}

static int snapshot_state(udr__tstate *out, udr_catalog *c, uint64_t commit)
{
	bool known = true;
	int rc;
	memset(out, 0, sizeof(*out));
	if (commit == 0)
		return 0;
	if ((rc = udr__state_at(out, &known, c, commit)) < 0)
		return rc;
	if (!known)
		rc = udr__state_scan(out, c, commit);
	return rc;
}

static uint64_t version_in(const udr__tstate *s, const char *t)
{
	const udr__tentry *e = udr__tstate_find(s, t);
	return e ? e->version : 0;
}

/*
 * The bases of a merge: the snapshots of its merge bases (more than one in
 * a criss-cross history) and, for two, of their own merge base when they
 * have exactly one.
 */
typedef struct mbases {
	udr__tstate *s;
	size_t n;
	udr__tstate s0; /* the bases' own merge base (have0) */
	bool have0;
} mbases;

static void mbases_free(mbases *b)
{
	for (size_t i = 0; i < b->n; i++)
		udr__tstate_free(&b->s[i]);
	free(b->s);
	udr__tstate_free(&b->s0);
	memset(b, 0, sizeof(*b));
}

/* Most merge bases a criss-cross merge reads (each is one snapshot). */
#define MBASES_MAX 16

static int mbases_load(mbases *b, udr_catalog *c, const uint64_t *bases, size_t n)
{
	uint64_t *under = NULL;
	size_t nu = 0;
	int rc = 0;
	memset(b, 0, sizeof(*b));
	if (n == 0)
		n = 1, bases = NULL; /* no common ancestor: the empty snapshot */
	if (n > MBASES_MAX)
		return udr__error_set(UDR_ECONFLICT,
		                      "the commits have %zu merge bases (a criss-cross history), more than %d: "
		                      "nothing merged",
		                      n, MBASES_MAX);
	if (!(b->s = calloc(n, sizeof(*b->s))))
		return udr__error_oom();
	for (; b->n < n && rc == 0; b->n++)
		rc = snapshot_state(&b->s[b->n], c, bases ? bases[b->n] : 0);
	if (rc == 0 && n == 2 && (rc = udr__merge_bases(&under, &nu, c, bases[0], bases[1])) == 0 && nu == 1) {
		rc = snapshot_state(&b->s0, c, under[0]);
		b->have0 = rc == 0;
	}
	free(under);
	return rc;
}

/*
 * Table t's version in the merge base: the one every base has; else, for
 * two bases, what a three-way merge of theirs over their own merge base
 * gives (git's recursive merge, one level, table by table).  Else *known
 * false: the bases disagree and no base version stands for them.
 */
/* Versions a and b of t are one content (the same number, or the same
 * chunks and metadata under two numbers: both sides imported the same
 * rows).  < 0 on a read error. */
static int same_version(udr_catalog *c, const char *t, uint64_t a, uint64_t b)
{
	return a == b ? 1 : udr__same_content(c, t, a, b);
}

static int mbases_version(uint64_t *out, bool *known, udr_catalog *c, const mbases *b, const char *t)
{
	uint64_t v = version_in(&b->s[0], t), v0, v2;
	int agree = 1;
	*known = true;
	*out = v;
	for (size_t i = 1; i < b->n && agree == 1; i++)
		agree = same_version(c, t, version_in(&b->s[i], t), v);
	if (agree != 0)
		return agree < 0 ? agree : 0;
	if (b->n == 2 && b->have0) {
		int r;
		v2 = version_in(&b->s[1], t);
		v0 = version_in(&b->s0, t);
		if ((r = same_version(c, t, v, v0)) != 0) {
			*out = v2; /* changed in the second base only */
			return r < 0 ? r : 0;
		}
		if ((r = same_version(c, t, v2, v0)) != 0)
			return r < 0 ? r : 0;
	}
	*known = false;
	*out = 0;
	return 0;
}

int udr__merge_opts_check(const udr_merge_options *opts)
{
	int rc = 0;
	if (opts->version != UDR_MERGE_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown merge options version %u", opts->version);
	if (opts->strategy < UDR_MERGE_FAIL || opts->strategy > UDR_MERGE_THEIRS)
		return udr__error_set(UDR_EINVAL, "unknown merge strategy %d", opts->strategy);
	for (size_t x = 0; x < opts->ntables; x++)
		if (!opts->tables || (rc = udr_table_name_check(opts->tables[x])) < 0 ||
		    (opts->table_strategies &&
		     (opts->table_strategies[x] < UDR_MERGE_FAIL || opts->table_strategies[x] > UDR_MERGE_THEIRS)))
			return opts->tables ? (rc < 0 ? rc : udr__error_set(UDR_EINVAL, "unknown merge strategy for table %s",
			                                                    opts->tables[x]))
			                    : udr__error_set(UDR_EINVAL, "invalid argument: merge table names missing");
	return 0;
}

/* The side named for table itself (--table t=ours|theirs), else FAIL. */
static int table_side(const udr_merge_options *o, const char *table)
{
	for (size_t i = 0; i < o->ntables; i++)
		if (o->tables && o->tables[i] && strcmp(o->tables[i], table) == 0 && o->table_strategies)
			return o->table_strategies[i];
	return UDR_MERGE_FAIL;
}

int udr__merge_strategy_for(const udr_merge_options *o, const char *table)
{
	for (size_t i = 0; i < o->ntables; i++)
		if (o->tables && o->tables[i] && strcmp(o->tables[i], table) == 0)
			return o->table_strategies ? o->table_strategies[i] : o->strategy;
	return o->strategy;
}

int udr__merge_add_table(udr_merge_result *m, size_t *cap, const char *t, uint64_t b, uint64_t o, uint64_t th,
                     uint64_t res, int conflict)
{
	if (m->ntables == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		udr_merge_table *p = realloc(m->tables, nc * sizeof(*p));
		if (!p)
			return udr__error_oom();
		m->tables = p;
		*cap = nc;
	}
	udr_merge_table *x = &m->tables[m->ntables];
	memset(x, 0, sizeof(*x));
	if (!(x->table = strdup(t)))
		return udr__error_oom();
	x->base = b;
	x->ours = o;
	x->theirs = th;
	x->result = res;
	x->conflict = conflict;
	m->ntables++;
	m->nconflicts += conflict != 0;
	return 0;
}

/* 1: versions o and th of table t are both drops (DROP TABLE on each side:
 * the same change, the table gone); 0: not; < 0: an error. */
static int both_dropped(udr_catalog *c, const char *t, uint64_t o, uint64_t th)
{
	udr_version *v = NULL;
	int rc, d;
	if (!o || !th)
		return 0;
	if ((rc = udr_catalog_get_version(&v, c, t, o)) < 0)
		return rc;
	d = udr_version_is_dropped(v);
	udr_version_free(v);
	if (!d)
		return 0;
	if ((rc = udr_catalog_get_version(&v, c, t, th)) < 0)
		return rc;
	d = udr_version_is_dropped(v);
	udr_version_free(v);
	return d;
}

int udr_merge(udr_merge_result **out, udr_catalog *c, const char *source, const char *into,
              const udr_merge_options *opts)
{
	udr_merge_options def = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m;
	udr__tstate so, st, adopt;
	mbases sb;
	uint64_t *bases = NULL;
	size_t nbases = 0;
	bool ff, utd;
	size_t cap = 0, i = 0, j = 0, k = 0;
	int rc;
	if (!out || !c || !source)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_merge");
	*out = NULL;
	if (!opts)
		opts = &def;
	if ((rc = udr__merge_opts_check(opts)) < 0)
		return rc;
	if (!into)
		into = "main";
	if ((rc = udr_ref_name_check(into)) < 0)
		return rc;
	if (!(m = calloc(1, sizeof(*m))))
		return udr__error_oom();
	memset(&sb, 0, sizeof(sb));
	memset(&so, 0, sizeof(so));
	memset(&st, 0, sizeof(st));
	memset(&adopt, 0, sizeof(adopt));
	if ((rc = resolve_or_main(&m->theirs, c, source)) < 0 || (rc = udr__branch_head(&m->ours, c, into, 0)) < 0)
		goto done;
	if (m->ours == 0) {
		rc = udr__error_set(UDR_ENOTFOUND, "branch %s has no commits yet", into);
		goto done;
	}
	{
		uint64_t eo, et;
		if ((rc = effective(&eo, c, m->ours)) < 0 || (rc = effective(&et, c, m->theirs)) < 0 ||
		    (rc = merge_base(&bases, &nbases, &ff, &utd, c, eo, et)) < 0)
			goto done;
		m->base = nbases ? bases[0] : 0;
	}
	m->up_to_date = utd;
	m->fast_forward = ff;
	if (utd)
		goto done;
	if ((rc = mbases_load(&sb, c, bases, nbases)) < 0 || (rc = snapshot_state(&so, c, m->ours)) < 0 ||
	    (rc = snapshot_state(&st, c, m->theirs)) < 0)
		goto done;
	/* a strategy for a table no side has (a typo) was ignored, and the
	 * table it meant merged (or conflicted) without it */
	for (size_t x = 0; x < opts->ntables; x++)
		if (!version_in(&sb.s[0], opts->tables[x]) && !version_in(&so, opts->tables[x]) &&
		    !version_in(&st, opts->tables[x])) {
			rc = udr__error_set(UDR_EINVAL, "--table names table %s, which neither side has; nothing merged",
			                    opts->tables[x]);
			goto done;
		}
	/* every table of the three snapshots, in name order (a table only
	 * another base of a criss-cross has changed on both sides: the side
	 * that kept it has it) */
	for (;;) {
		const char *names[3] = {i < sb.s[0].n ? sb.s[0].e[i].table : NULL, j < so.n ? so.e[j].table : NULL,
		                        k < st.n ? st.e[k].table : NULL};
		const char *t = NULL;
		uint64_t b, o, th, res;
		int conflict = 0;
		bool known, o2b = false, th2b = false;
		for (int x = 0; x < 3; x++)
			if (names[x] && (!t || strcmp(names[x], t) < 0))
				t = names[x];
		if (!t)
			break;
		if ((rc = mbases_version(&b, &known, c, &sb, t)) < 0)
			goto done;
		o = version_in(&so, t);
		th = version_in(&st, t);
		if (names[0] && strcmp(names[0], t) == 0)
			i++;
		if (names[1] && strcmp(names[1], t) == 0)
			j++;
		if (names[2] && strcmp(names[2], t) == 0)
			k++;
		if (o == th)
			continue;
		/* in a criss-cross history a side and a base (or the two sides)
		 * often hold one content under two numbers: each merged the
		 * crossing into a version of its own */
		if (sb.n > 1 && (rc = same_version(c, t, o, th)) != 0) {
			if (rc < 0)
				goto done;
			rc = 0;
			continue; /* the same content: ours kept */
		}
		if (known && sb.n > 1 && th != b && (rc = same_version(c, t, th, b)) != 0) {
			if (rc < 0)
				goto done;
			rc = 0;
			th2b = true; /* theirs holds the base's content */
		}
		if (known && sb.n > 1 && o != b && th != b && !th2b && (rc = same_version(c, t, o, b)) != 0) {
			if (rc < 0)
				goto done;
			rc = 0;
			o2b = true; /* ours holds the base's content */
		}
		if (known && (th == b || th2b)) {
			res = o; /* changed on our side only */
		} else if (known && (o == b || o2b)) {
			res = th; /* changed on theirs only */
		} else if ((rc = both_dropped(c, t, o, th)) != 0) {
			if (rc < 0)
				goto done;
			rc = 0;
			continue; /* dropped on both sides: the same change, ours kept */
		} else {
			/* no base stands for t (the bases of a criss-cross disagree):
			 * maybe one side alone changed it, so only a side named for t
			 * (--table t=...) decides, not the strategy for every table */
			int s = known ? udr__merge_strategy_for(opts, t) : table_side(opts, t);
			res = s == UDR_MERGE_OURS ? o : s == UDR_MERGE_THEIRS ? th : o;
			conflict = s == UDR_MERGE_FAIL;
		}
		if ((rc = udr__merge_add_table(m, &cap, t, b, o, th, res, conflict)) < 0)
			goto done;
		if (!known && conflict) {
			udr_merge_table *x = &m->tables[m->ntables - 1];
			if (!(x->note = strdup("the merge bases disagree on it (a criss-cross history): pick its side (--table T=ours|theirs)"))) {
				rc = udr__error_oom();
				goto done;
			}
		}
		if (res != o && !conflict) {
			if (res == 0) {
				/* deleting a table is not a thing yet: tables only appear */
				rc = udr__error_set(UDR_EINVAL, "table %s: a merge cannot remove a table", t);
				goto done;
			}
			if ((rc = udr__tstate_set(&adopt, t, res, 1)) < 0)
				goto done;
		}
	}
	if (m->nconflicts > 0) {
		for (size_t x = 0; x < m->ntables; x++)
			if (m->tables[x].conflict) {
				rc = udr__error_set(UDR_ECONFLICT,
				                    "merge of %s into %s: %zu table%s changed on both sides (first: %s); "
				                    "nothing merged",
				                    source, into, m->nconflicts, m->nconflicts == 1 ? "" : "s", m->tables[x].table);
				break;
			}
		goto done;
	}
	if (opts->dry_run)
		goto done;
	{
		udr__commit_opts o;
		memset(&o, 0, sizeof(o));
		o.op = "merge";
		o.branch = into;
		o.ref_name = into;
		o.target = m->ours;
		o.parent2 = m->theirs;
		o.adopt = &adopt;
		o.message = opts->message;
		rc = udr__catalog_commit_versions(&m->seq, c, NULL, 0, &o);
	}
done:
	free(bases);
	mbases_free(&sb);
	udr__tstate_free(&so);
	udr__tstate_free(&st);
	udr__tstate_free(&adopt);
	if (rc < 0 && rc != UDR_ECONFLICT) {
		udr_merge_result_free(m);
		return rc;
	}
	*out = m;
	return rc;
}

char *udr__ref_string(const udr__commit_opts *o)
{
	bool tag = strcmp(o->op, "tag") == 0 || strcmp(o->op, "untag") == 0;
	char *k = ref_key(tag ? "tag" : "branch", o->ref_name ? o->ref_name : (o->branch ? o->branch : "main"));
	if (k)
		memmove(k, k + 1, strlen(k)); /* without the '@' */
	return k;
}

bool udr__catalog_branched(udr_catalog *c)
{
	udr__record r;
	uint64_t head;
	bool b;
	if (c->format >= 3)
		return true; /* set before the first ref record */
	if (c->format < 2 || head_record(&r, &head, c) < 0) {
		udr_error_clear();
		return false; /* the caller's own read reports the error */
	}
	b = head > 0 && r.branched;
	udr__record_free(&r);
	return b;
}

/* ---- fsck ------------------------------------------------------------------------ */

static bool same_versions(const udr__tstate *a, const udr__tstate *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->e[i].table, b->e[i].table) != 0 || a->e[i].version != b->e[i].version)
			return false;
	return true;
}

static int fail_why(char *why, size_t whysz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_why(char *why, size_t whysz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whysz, fmt, ap);
	va_end(ap);
	return 1;
}

/* The snapshot series of a branched record: what its op says of its
 * parents' snapshots. */
static int check_snapshot(udr_catalog *c, const udr__record *r, char *why, size_t whysz)
{
	const udr_commit *cm = r->cm;
	udr__tstate mine, p1, p2;
	int rc, bad = 0;
	memset(&p2, 0, sizeof(p2));
	if ((rc = snapshot_state(&mine, c, cm->seq)) < 0)
		return rc;
	if ((rc = snapshot_state(&p1, c, cm->parent)) < 0) {
		udr__tstate_free(&mine);
		return rc;
	}
	if (cm->op && strcmp(cm->op, "merge") == 0) {
		if (cm->nparents != 2 || (rc = snapshot_state(&p2, c, cm->parents[1])) < 0) {
			if (cm->nparents != 2)
				bad = fail_why(why, whysz, "merge commit %llu does not name two parents", (unsigned long long)cm->seq);
			goto done;
		}
		for (size_t i = 0; i < mine.n && !bad; i++) {
			uint64_t v = mine.e[i].version;
			bool own = false; /* a version the merge made (a row-level merge) */
			for (size_t x = 0; x < cm->nchanges && !own; x++)
				own = strcmp(cm->changes[x].table, mine.e[i].table) == 0 && cm->changes[x].new_version == v &&
				      cm->changes[x].old_version == version_in(&p1, mine.e[i].table);
			if (!own && v != version_in(&p1, mine.e[i].table) && v != version_in(&p2, mine.e[i].table))
				bad = fail_why(why, whysz, "merge commit %llu gives table %s version %llu, which neither parent has",
				               (unsigned long long)cm->seq, mine.e[i].table, (unsigned long long)v);
		}
		for (size_t i = 0; i < p1.n && !bad; i++)
			if (!udr__tstate_find(&mine, p1.e[i].table))
				bad = fail_why(why, whysz, "merge commit %llu drops table %s", (unsigned long long)cm->seq,
				               p1.e[i].table);
		goto done;
	}
	for (size_t i = 0; i < cm->nchanges && rc == 0; i++) {
		uint64_t old = version_in(&p1, cm->changes[i].table);
		if (old != cm->changes[i].old_version)
			bad = fail_why(why, whysz, "commit %llu says table %s was at version %llu, but its parent %llu has %llu",
			               (unsigned long long)cm->seq, cm->changes[i].table,
			               (unsigned long long)cm->changes[i].old_version, (unsigned long long)cm->parent,
			               (unsigned long long)old);
		rc = udr__tstate_set(&p1, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
	}
	if (rc == 0 && !bad && !same_versions(&mine, &p1))
		bad = fail_why(why, whysz, "commit %llu: its tables are not its parent's with its own changes",
		               (unsigned long long)cm->seq);
done:
	udr__tstate_free(&mine);
	udr__tstate_free(&p1);
	udr__tstate_free(&p2);
	return rc < 0 ? rc : bad;
}

static int refs_record_rest(udr__tstate *g, udr_catalog *c, const udr__record *r, char *why, size_t whysz);

/* The snapshot checkpoint a branched record names: derived data, rewritten
 * from the log (and reported) when missing or damaged. */
static int check_snapshot_file(udr_catalog *c, const udr__record *r, char *why, size_t whysz)
{
	char *path, *text = NULL;
	size_t len;
	udr_hash d;
	udr__tstate st;
	int rc, frc;
	if (r->base == 0)
		return 0;
	if (!(path = udr__state_path(c, r->base)))
		return UDR_ENOMEM;
	frc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
	if (frc == 0) {
		udr_hash_buf(&d, text, len);
		free(text);
		text = NULL;
		if (udr_hash_equal(&d, &r->base_state)) {
			free(path);
			return 0;
		}
	}
	udr_error_clear();
	/* rebuilt from the records and checked against the digest */
	if ((rc = udr__state_base(&st, c, r)) < 0) {
		free(path);
		return rc;
	}
	rc = udr__state_encode(&text, &len, &st, r->base);
	udr__tstate_free(&st);
	if (rc == 0) {
		int wrc = udr__mkdir(c->statedir, NULL);
		if (wrc == 0)
			wrc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, true);
		rc = fail_why(why, whysz, "checkpoint %s is %s%s", path, frc < 0 ? "missing" : "damaged",
		              wrc < 0 ? " (cannot rewrite it)" : " (rewritten from the log)");
		udr_error_clear();
	}
	free(text);
	free(path);
	return rc;
}

int udr__fsck_refs_record(udr__tstate *g, udr_catalog *c, const udr__record *r, char *why, size_t whysz)
{
	const udr_commit *cm = r->cm;
	int rc = 0;
	why[0] = '\0';
	if (!r->branched) {
		/* before the store branched every record moved main */
		if ((rc = udr__tstate_set(g, "@branch:main", cm->seq, cm->seq)) < 0)
			return rc;
		for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
			rc = udr__tstate_set(g, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
		return rc;
	}
	/* a new global checkpoint holds the state before this record */
	if (r->gbase == cm->seq - 1 && cm->seq > 1) {
		char *text = NULL;
		size_t len;
		udr_hash d;
		if ((rc = gstate_encode(&text, &len, g, r->gbase)) < 0)
			return rc;
		udr_hash_buf(&d, text, len);
		if (!udr_hash_equal(&d, &r->gbase_state)) {
			free(text);
			return fail_why(why, whysz, "commit %llu names a global checkpoint of commit %llu that the log does "
			                "not produce", (unsigned long long)cm->seq, (unsigned long long)r->gbase);
		}
		/* the file is derived data: rewritten from the log when damaged */
		{
			char *path = gstate_path(c, r->gbase), *file = NULL;
			size_t flen;
			udr_hash fd;
			int frc;
			if (!path) {
				free(text);
				return UDR_ENOMEM;
			}
			frc = udr__read_file(&file, &flen, path, UDR__MAX_META_FILE);
			if (frc == 0)
				udr_hash_buf(&fd, file, flen);
			udr_error_clear();
			if (frc < 0 || !udr_hash_equal(&fd, &d)) {
				int wrc = udr__mkdir(c->refsdir, NULL);
				if (wrc == 0)
					wrc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, true);
				rc = fail_why(why, whysz, "global checkpoint %s is %s%s", path, frc < 0 ? "missing" : "damaged",
				              wrc < 0 ? " (cannot rewrite it)" : " (rewritten from the log)");
				udr_error_clear();
			}
			free(file);
			free(path);
		}
		free(text);
	}
	if (rc == 0)
		rc = check_snapshot_file(c, r, why, whysz);
	if (rc < 0)
		return rc;
	if (rc == 1) { /* reported; the rest of the record is checked too */
		char first[512];
		int r2;
		snprintf(first, sizeof(first), "%s", why);
		r2 = refs_record_rest(g, c, r, why, whysz);
		if (r2 < 0)
			return r2;
		snprintf(why, whysz, "%s", first);
		return 1;
	}
	return refs_record_rest(g, c, r, why, whysz);
}

static int refs_record_rest(udr__tstate *g, udr_catalog *c, const udr__record *r, char *why, size_t whysz)
{
	const udr_commit *cm = r->cm;
	const char *op = cm->op;
	const udr__tentry *e;
	char *key = NULL, xwhy[512];
	int rc = 0, xrc = 0;
	if (op && strcmp(op, "gc") == 0) {
		/* moves no ref; "@gc" -> [through, seq], through never going back */
		e = udr__tstate_find(g, "@gc");
		if (cm->parent != cm->seq - 1 || cm->nchanges > 0 || cm->ref || cm->branch[0] || !r->has_gc)
			return fail_why(why, whysz, "commit %llu: a gc record that changes tables, moves a ref or does not "
			                "continue commit %llu", (unsigned long long)cm->seq, (unsigned long long)cm->seq - 1);
		if (e && e->version > r->gc_through)
			return fail_why(why, whysz, "commit %llu: a gc record through %llu, below the previous one's %llu",
			                (unsigned long long)cm->seq, (unsigned long long)r->gc_through,
			                (unsigned long long)e->version);
		if ((rc = udr__tstate_set(g, "@gc", r->gc_through, cm->seq)) < 0)
			return rc;
		for (size_t i = 0; i < r->gwindow.n; i++) {
			const udr__tentry *w = &r->gwindow.e[i], *x = udr__tstate_find(g, w->table);
			if (!x || x->version != w->version || x->seq != w->seq)
				return fail_why(why, whysz, "commit %llu: its global window disagrees with the log on %s",
				                (unsigned long long)cm->seq, w->table);
		}
		return check_snapshot(c, r, why, whysz);
	}
	if (op && strcmp(op, "retention") == 0) {
		/* moves no ref; "@retention" -> [seq, seq]; the policy parses
		 * and holds only what this version applies (policyrec.c) */
		if (cm->parent != cm->seq - 1 || cm->nchanges > 0 || cm->ref || cm->branch[0] || !r->retention)
			return fail_why(why, whysz, "commit %llu: a retention record that changes tables, moves a ref or does "
			                "not continue commit %llu", (unsigned long long)cm->seq, (unsigned long long)cm->seq - 1);
		if ((rc = udr__retention_check(r->retention)) < 0) {
			if (rc == UDR_ENOMEM)
				return rc;
			rc = fail_why(why, whysz, "commit %llu: its retention policy is not valid: %s",
			              (unsigned long long)cm->seq, udr_error_last()->message);
			udr_error_clear();
			return rc;
		}
		if ((rc = udr__tstate_set(g, "@retention", cm->seq, cm->seq)) < 0)
			return rc;
		e = udr__tstate_find(&r->gwindow, "@retention");
		if (!e || e->version != cm->seq || e->seq != cm->seq)
			return fail_why(why, whysz, "commit %llu: a retention record its global window does not name as "
			                "\"@retention\"", (unsigned long long)cm->seq);
		for (size_t i = 0; i < r->gwindow.n; i++) {
			const udr__tentry *w = &r->gwindow.e[i], *x = udr__tstate_find(g, w->table);
			if (!x || x->version != w->version || x->seq != w->seq)
				return fail_why(why, whysz, "commit %llu: its global window disagrees with the log on %s",
				                (unsigned long long)cm->seq, w->table);
		}
		return check_snapshot(c, r, why, whysz);
	}
	if (udr__op_expiry(op)) {
		/* moves no ref: continues the linked head, names itself in the
		 * global state for each table it expires (expire.c) */
		if (cm->parent != cm->seq - 1 || cm->nchanges > 0 || cm->ref || cm->branch[0] || !r->xrec)
			return fail_why(why, whysz, "commit %llu: an expiry record that changes tables, moves a ref or does not "
			                "continue commit %llu", (unsigned long long)cm->seq, (unsigned long long)cm->seq - 1);
		/* its ranges, sets and checkpoints (expire.c), against the state
		 * before it; a problem is reported after the rest is checked */
		char first[512] = "";
		int xr = udr__fsck_expire_record(c, r, g, why, whysz);
		if (xr < 0)
			return xr;
		if (xr == 1)
			snprintf(first, sizeof(first), "%s", why);
		if (!first[0] && !r->xrec->unexpire && r->xrec->policy > 0) {
			/* the policy it names: a retention record at or before its plan */
			udr__record pr;
			bool isret = false;
			if (r->xrec->policy <= r->xrec->at && (rc = udr__record_read(&pr, c, r->xrec->policy)) == 0) {
				isret = pr.retention != NULL;
				udr__record_free(&pr);
			}
			if (rc == UDR_ENOMEM)
				return rc;
			udr_error_clear();
			rc = 0;
			if (!isret)
				snprintf(first, sizeof(first), "commit %llu: an expire record naming policy %llu, not a retention "
				         "record before its plan (%llu)", (unsigned long long)cm->seq,
				         (unsigned long long)r->xrec->policy, (unsigned long long)r->xrec->at);
		}
		for (size_t i = 0; i < r->xrec->nt && rc == 0; i++) {
			size_t n = strlen(r->xrec->t[i].table) + 10;
			if (!(key = malloc(n)))
				return udr__error_oom();
			snprintf(key, n, "@expired:%s", r->xrec->t[i].table);
			e = udr__tstate_find(g, key);
			if ((e ? e->version : 0) != r->xrec->t[i].prev)
				rc = fail_why(why, whysz, "commit %llu: table %s's previous expire record is %llu, not %llu",
				              (unsigned long long)cm->seq, r->xrec->t[i].table,
				              (unsigned long long)(e ? e->version : 0), (unsigned long long)r->xrec->t[i].prev);
			else
				rc = udr__tstate_set(g, key, cm->seq, cm->seq);
			free(key);
			key = NULL;
		}
		if (rc == 0)
			rc = udr__tstate_set(g, "@expire", cm->seq, cm->seq);
		if (rc < 0 || (rc != 0 && !first[0]))
			return rc;
		if (first[0])
			return fail_why(why, whysz, "%s", first);
		for (size_t i = 0; i < r->gwindow.n; i++) {
			const udr__tentry *w = &r->gwindow.e[i], *x = udr__tstate_find(g, w->table);
			if (!x || x->version != w->version || x->seq != w->seq)
				return first[0] ? fail_why(why, whysz, "%s", first)
				                : fail_why(why, whysz, "commit %llu: its global window disagrees with the log on %s",
				                           (unsigned long long)cm->seq, w->table);
		}
		return check_snapshot(c, r, why, whysz);
	}
	if (op && (strcmp(op, "tag") == 0 || strcmp(op, "untag") == 0)) {
		if (!cm->ref || strncmp(cm->ref, "tag:", 4) != 0 || udr_ref_name_check(cm->ref + 4) < 0) {
			udr_error_clear();
			return fail_why(why, whysz, "commit %llu: bad ref of a tag record", (unsigned long long)cm->seq);
		}
		key = ref_key("tag", cm->ref + 4);
	} else {
		if (udr_ref_name_check(cm->branch) < 0) {
			udr_error_clear();
			return fail_why(why, whysz, "commit %llu: bad branch name", (unsigned long long)cm->seq);
		}
		key = ref_key("branch", cm->branch);
	}
	if (!key)
		return UDR_ENOMEM;
	e = udr__tstate_find(g, key);
	{
		bool exists = e && e->version > 0;
		bool creates = op && (strcmp(op, "create") == 0 || strcmp(op, "tag") == 0);
		if (exists == creates)
			rc = fail_why(why, whysz, "commit %llu %s %s, which %s", (unsigned long long)cm->seq,
			              op ? op : "commits on", key + 1, exists ? "exists already" : "does not exist");
		else if ((!op || udr__op_commits(op) || strcmp(op, "delete") == 0 || strcmp(op, "untag") == 0) &&
		         cm->parent != e->version)
			rc = fail_why(why, whysz, "commit %llu names parent %llu, but the head of %s was %llu",
			              (unsigned long long)cm->seq, (unsigned long long)cm->parent, key + 1,
			              (unsigned long long)e->version);
	}
	/* a ref never names an expired version (GC.md 1.4; the commit step
	 * refuses it under the writer lock): reported once the rest is laid
	 * over g */
	if (rc == 0 && op && (strcmp(op, "create") == 0 || strcmp(op, "reset") == 0 || strcmp(op, "tag") == 0)) {
		if ((xrc = udr__fsck_ref_expired(c, g, cm->parent, cm->seq, xwhy, sizeof(xwhy))) < 0)
			rc = xrc;
	}
	if (rc == 0) {
		uint64_t v = op && (strcmp(op, "delete") == 0 || strcmp(op, "untag") == 0) ? 0
		             : op && strcmp(op, "tag") == 0                                ? cm->parent
		                                                                             : cm->seq;
		rc = udr__tstate_set(g, key, v, cm->seq);
	}
	free(key);
	for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
		rc = udr__tstate_set(g, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
	if (rc != 0)
		return rc;
	if (xrc == 1)
		return fail_why(why, whysz, "%s", xwhy);
	/* the record's global window says what the log says */
	for (size_t i = 0; i < r->gwindow.n; i++) {
		const udr__tentry *w = &r->gwindow.e[i], *x = udr__tstate_find(g, w->table);
		if (!x || x->version != w->version || x->seq != w->seq)
			return fail_why(why, whysz, "commit %llu: its global window disagrees with the log on %s",
			                (unsigned long long)cm->seq, w->table);
	}
	return check_snapshot(c, r, why, whysz);
}
