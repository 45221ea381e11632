/*
 * conflicts.c - the conflicts of a merge that wrote nothing, recorded under
 * catalog/merges/<target>.json (docs/FORMAT.md "Merge conflict records"):
 * reading and writing the record, the SQL table udr_conflicts, resolving
 * (a side per table or per row, or a resolved version) and aborting, each
 * under the target's lock catalog/merges/<target>.lock (udr__mrec_lock).
 * rowmerge.c writes records and commits them (udr_query_merge_continue).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <jansson.h>

#include "query/query_internal.h"
#include "catalog/catalog_internal.h"

void udr__mrec_free(udr__mrec *r)
{
	if (!r)
		return;
	free(r->target);
	free(r->source);
	free(r->message);
	udr_strarray_free(r->key_tables, r->nkeys);
	udr_strarray_free(r->keys, r->nkeys);
	udr_strarray_free(r->strict_tables, r->nstrict);
	free(r->strictness);
	udr_strarray_free(r->side_tables, r->nsides);
	free(r->sides);
	for (size_t i = 0; i < r->n; i++) {
		udr__mtable *t = &r->t[i];
		free(t->table);
		free(t->note);
		udr__parts_free(&t->conflicts);
		udr_strarray_free(t->rkeys, t->nr);
		free(t->rsides);
		udr__parts_free(&t->version);
		free(t->vschema);
	}
	free(r->t);
	memset(r, 0, sizeof(*r));
}

udr__mtable *udr__mrec_table(udr__mrec *r, const char *table)
{
	for (size_t i = 0; r && i < r->n; i++)
		if (strcmp(r->t[i].table, table) == 0)
			return &r->t[i];
	return NULL;
}

/* catalog/merges/<name><suffix>, name the branch name with '/' as %2F, or, when that
 * with ".lock" would pass NAME_MAX (255 bytes; a valid branch name may),
 * "%h" and the BLAKE3 of the name in hex ('%' is in no branch name). */
#define MREC_HASHED "%h"
static char *rec_path(udr_query *q, const char *target, const char *suffix)
{
	udr__buf b = {0};
	size_t enc = 0;
	int rc = udr__buf_printf(&b, "%s/merges/", q->cat->path);
	for (const char *s = target; *s; s++)
		enc += *s == '/' ? 3 : 1;
	if (rc == 0 && enc + sizeof(".lock") - 1 > 255) {
		udr_hash h;
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_buf(&h, target, strlen(target));
		udr_hash_tohex(hex, &h);
		rc = udr__buf_puts(&b, MREC_HASHED);
		if (rc == 0)
			rc = udr__buf_puts(&b, hex);
	} else {
		for (const char *s = target; rc == 0 && *s; s++)
			rc = *s == '/' ? udr__buf_puts(&b, "%2F") : udr__buf_put(&b, s, 1);
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, suffix);
	if (rc < 0) {
		udr__buf_free(&b);
		return NULL;
	}
	return b.ptr;
}

static int no_record(const char *target)
{
	char qt[300];
	udr__quote(qt, sizeof(qt), target);
	return udr__error_set(UDR_ENOTFOUND, "no merge into branch '%s' has conflicts to resolve", qt);
}

/*
 * The lock file of a target's record: a resolve and a merge (or two
 * resolves) each reading the record, changing it and writing it back would
 * lose one of the writes, or put back an earlier merge's record; the lock
 * makes them one after the other.  Created by the first merge that writes
 * a record of the target and left in place (removing a lock file races
 * with its next taker); a command refused before (or with no record to
 * act on) creates nothing.  The record itself is still replaced
 * atomically, so readers (udr_conflicts) take no lock.
 */
int udr__mrec_lock(int *fd, udr_query *q, const char *target, bool need_record)
{
	char *path = rec_path(q, target, ".lock"), *dir = udr__path_join(q->cat->path, "merges");
	char *rec = rec_path(q, target, ".json");
	struct stat st;
	int rc = 0;
	*fd = -1;
	if (!path || !dir || !rec)
		rc = udr__error_oom();
	if (rc == 0 && (*fd = UDR_IO->open(path, O_RDWR, 0)) < 0) {
		if (errno != ENOENT)
			rc = udr__error_io(errno, "cannot open the merge lock %s", path);
		else if (need_record && UDR_IO->stat(rec, &st) < 0 && errno == ENOENT)
			rc = no_record(target); /* (a record of an older udr has no lock file) */
		else if ((rc = udr__mkdir(dir, NULL)) == 0 && (*fd = UDR_IO->open(path, O_RDWR | O_CREAT, 0644)) < 0)
			rc = udr__error_io(errno, "cannot open the merge lock %s", path);
	}
	if (rc == 0 && UDR_IO->flock(*fd, LOCK_EX) < 0) {
		rc = udr__error_io(errno, "cannot lock %s", path);
		UDR_IO->close(*fd);
		*fd = -1;
	}
	free(path);
	free(dir);
	free(rec);
	return rc;
}

void udr__mrec_unlock(int fd)
{
	if (fd >= 0)
		UDR_IO->close(fd); /* closing the descriptor releases the flock */
}

static const char *side_name(int s)
{
	return s == UDR_MERGE_OURS ? "ours" : s == UDR_MERGE_THEIRS ? "theirs" : NULL;
}

static int side_of(const char *s)
{
	return !s ? 0 : strcmp(s, "ours") == 0 ? UDR_MERGE_OURS : strcmp(s, "theirs") == 0 ? UDR_MERGE_THEIRS : -1;
}

static json_t *parts_json(const udr__parts *ps)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < ps->n; i++) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &ps->p[i].hash);
		json_array_append_new(a, json_pack("{s:s,s:I}", "part", hex, "rows", (json_int_t)ps->p[i].rows));
	}
	return a;
}

static int parts_from(udr__parts *ps, json_t *a)
{
	size_t i;
	json_t *x;
	memset(ps, 0, sizeof(*ps));
	if (!json_is_array(a))
		return -1;
	if (!(ps->p = calloc(json_array_size(a) + 1, sizeof(*ps->p))))
		return udr__error_oom();
	ps->typed = true;
	json_array_foreach(a, i, x) {
		const char *h = json_string_value(json_object_get(x, "part"));
		json_t *r = json_object_get(x, "rows");
		if (!h || udr_hash_fromhex(&ps->p[ps->n].hash, h) < 0 || !json_is_integer(r) || json_integer_value(r) < 0)
			return -1;
		ps->p[ps->n++].rows = (uint64_t)json_integer_value(r);
	}
	return 0;
}

static json_t *names_obj(char *const *names, char *const *vals, const int *ints, size_t n, bool strict)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++)
		json_object_set_new(o, names[i],
		                    vals ? json_string(vals[i])
		                         : json_string(strict ? (ints[i] == UDR_STRICT_TABLE ? "table"
		                                                 : ints[i] == UDR_STRICT_CELL ? "cell"
		                                                                              : "row")
		                                              : side_name(ints[i])));
	return o;
}

int udr__mrec_save(udr_query *q, const udr__mrec *r)
{
	json_t *o = json_object(), *tables = json_array();
	char *text = NULL, *path = NULL, *dir = NULL;
	size_t len;
	int rc = 0;
	if (!o || !tables) {
		json_decref(o);
		json_decref(tables);
		return udr__error_oom();
	}
	json_object_set_new(o, "format", json_integer(1));
	json_object_set_new(o, "kind", json_string("udr-merge"));
	json_object_set_new(o, "target", json_string(r->target));
	json_object_set_new(o, "source", json_string(r->source));
	json_object_set_new(o, "ours", json_integer((json_int_t)r->ours));
	json_object_set_new(o, "theirs", json_integer((json_int_t)r->theirs));
	json_object_set_new(o, "base", json_integer((json_int_t)r->base));
	json_object_set_new(o, "strategy", json_string(r->strategy == UDR_MERGE_FAIL ? "fail" : side_name(r->strategy)));
	json_object_set_new(o, "message", r->message ? json_string(r->message) : json_null());
	json_object_set_new(o, "keys", names_obj(r->key_tables, r->keys, NULL, r->nkeys, false));
	json_object_set_new(o, "strictness", names_obj(r->strict_tables, NULL, r->strictness, r->nstrict, true));
	json_object_set_new(o, "sides", names_obj(r->side_tables, NULL, r->sides, r->nsides, false));
	for (size_t i = 0; i < r->n; i++) {
		const udr__mtable *t = &r->t[i];
		json_t *x = json_object(), *rr = json_array();
		json_object_set_new(x, "table", json_string(t->table));
		json_object_set_new(x, "base", json_integer((json_int_t)t->base));
		json_object_set_new(x, "ours", json_integer((json_int_t)t->ours));
		json_object_set_new(x, "theirs", json_integer((json_int_t)t->theirs));
		json_object_set_new(x, "rows", t->rowlevel ? json_integer((json_int_t)t->rows_conflict) : json_null());
		json_object_set_new(x, "note", t->note ? json_string(t->note) : json_null());
		json_object_set_new(x, "conflicts", parts_json(&t->conflicts));
		json_object_set_new(x, "resolved", t->side ? json_string(side_name(t->side)) : json_null());
		for (size_t k = 0; rr && k < t->nr; k++)
			json_array_append_new(rr, json_pack("[s,s]", t->rkeys[k], side_name(t->rsides[k])));
		json_object_set_new(x, "rows_resolved", rr);
		if (t->version.n || t->vschema)
			json_object_set_new(x, "version", json_pack("{s:o,s:s,s:I}", "parts", parts_json(&t->version), "schema",
			                                            t->vschema ? t->vschema : "[]", "rows",
			                                            (json_int_t)t->vrows));
		else
			json_object_set_new(x, "version", json_null());
		json_array_append_new(tables, x);
	}
	json_object_set_new(o, "tables", tables);
	if (!(text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		rc = udr__error_oom();
	json_decref(o);
	len = text ? strlen(text) : 0;
	if (rc == 0)
		rc = udr__seal(&text, &len);
	if (rc == 0 && (!(path = rec_path(q, r->target, ".json")) || !(dir = udr__path_join(q->cat->path, "merges"))))
		rc = udr__error_oom();
	if (rc == 0)
		rc = udr__mkdir(dir, NULL);
	if (rc == 0)
		rc = udr__write_file_atomic(q->cat->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, true);
	free(text);
	free(path);
	free(dir);
	return rc < 0 ? rc : 0;
}

static int bad_record(const char *path)
{
	return udr__error_set(UDR_ECORRUPT, "merge record %s is damaged", path);
}

static int strs_from(char ***names, char ***vals, int **ints, size_t *n, json_t *o, bool strict)
{
	const char *k;
	json_t *v;
	size_t m = json_is_object(o) ? json_object_size(o) : 0;
	*n = 0;
	if (!json_is_object(o))
		return -1;
	if (!(*names = calloc(m + 1, sizeof(char *))) || (vals && !(*vals = calloc(m + 1, sizeof(char *)))) ||
	    (ints && !(*ints = calloc(m + 1, sizeof(int)))))
		return udr__error_oom();
	json_object_foreach(o, k, v) {
		const char *s = json_string_value(v);
		if (!s || !((*names)[*n] = strdup(k)))
			return -1;
		if (vals && !((*vals)[*n] = strdup(s)))
			return -1;
		if (ints) {
			int x = strict ? (strcmp(s, "table") == 0 ? UDR_STRICT_TABLE : strcmp(s, "cell") == 0 ? UDR_STRICT_CELL
			                                                                                        : UDR_STRICT_ROW)
			               : side_of(s);
			if (x < 0)
				return -1;
			(*ints)[*n] = x;
		}
		(*n)++;
	}
	return 0;
}

static uint64_t u64_of(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : 0;
}

static int mrec_load_path(udr__mrec *out, char *path, const char *target);

int udr__mrec_load(udr__mrec *out, udr_query *q, const char *target)
{
	char *path = rec_path(q, target, ".json");
	memset(out, 0, sizeof(*out));
	if (!path)
		return udr__error_oom();
	return mrec_load_path(out, path, target);
}

/* The record in path (freed here); target NULL: whichever it names. */
static int mrec_load_path(udr__mrec *out, char *path, const char *target)
{
	char *text = NULL;
	size_t len = 0, i;
	json_error_t jerr;
	json_t *o = NULL, *tables, *x;
	int rc;
	memset(out, 0, sizeof(*out));
	rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
	if (rc < 0) {
		if (target && (errno == ENOENT || rc == UDR_ENOTFOUND))
			rc = no_record(target);
		free(path);
		return rc;
	}
	if ((rc = udr__unseal(text, len, path, "merge record")) != 1) {
		rc = rc < 0 ? rc : bad_record(path);
		goto out;
	}
	rc = 0;
	o = json_loadb(text, len, 0, &jerr); /* the seal is the last key of the object */
	if (!o || u64_of(o, "format") != 1 || !json_string_value(json_object_get(o, "target")) ||
	    !json_string_value(json_object_get(o, "source"))) {
		rc = bad_record(path);
		goto out;
	}
	if (target && strcmp(json_string_value(json_object_get(o, "target")), target) != 0) {
		rc = bad_record(path); /* the file of another branch's record */
		goto out;
	}
	if (!(out->target = strdup(json_string_value(json_object_get(o, "target")))) ||
	    !(out->source = strdup(json_string_value(json_object_get(o, "source"))))) {
		rc = udr__error_oom();
		goto out;
	}
	if (json_string_value(json_object_get(o, "message")) &&
	    !(out->message = strdup(json_string_value(json_object_get(o, "message"))))) {
		rc = udr__error_oom();
		goto out;
	}
	out->ours = u64_of(o, "ours");
	out->theirs = u64_of(o, "theirs");
	out->base = u64_of(o, "base");
	{
		const char *s = json_string_value(json_object_get(o, "strategy"));
		out->strategy = s && strcmp(s, "fail") == 0 ? UDR_MERGE_FAIL : side_of(s);
	}
	if (out->strategy < 0 ||
	    strs_from(&out->key_tables, &out->keys, NULL, &out->nkeys, json_object_get(o, "keys"), false) != 0 ||
	    strs_from(&out->strict_tables, NULL, &out->strictness, &out->nstrict, json_object_get(o, "strictness"),
	              true) != 0 ||
	    strs_from(&out->side_tables, NULL, &out->sides, &out->nsides, json_object_get(o, "sides"), false) != 0) {
		rc = bad_record(path);
		goto out;
	}
	tables = json_object_get(o, "tables");
	if (!json_is_array(tables) || !(out->t = calloc(json_array_size(tables) + 1, sizeof(*out->t)))) {
		rc = json_is_array(tables) ? udr__error_oom() : bad_record(path);
		goto out;
	}
	json_array_foreach(tables, i, x) {
		udr__mtable *t = &out->t[out->n];
		json_t *rr = json_object_get(x, "rows_resolved"), *ver = json_object_get(x, "version"), *e;
		const char *name = json_string_value(json_object_get(x, "table"));
		size_t k;
		if (!name || !(t->table = strdup(name))) {
			rc = name ? udr__error_oom() : bad_record(path);
			goto out;
		}
		out->n++;
		t->base = u64_of(x, "base");
		t->ours = u64_of(x, "ours");
		t->theirs = u64_of(x, "theirs");
		t->rowlevel = json_is_integer(json_object_get(x, "rows"));
		t->rows_conflict = u64_of(x, "rows");
		if (json_string_value(json_object_get(x, "note")) &&
		    !(t->note = strdup(json_string_value(json_object_get(x, "note"))))) {
			rc = udr__error_oom();
			goto out;
		}
		t->side = side_of(json_string_value(json_object_get(x, "resolved")));
		if (t->side < 0 || parts_from(&t->conflicts, json_object_get(x, "conflicts")) != 0 || !json_is_array(rr)) {
			rc = bad_record(path);
			goto out;
		}
		if (!(t->rkeys = calloc(json_array_size(rr) + 1, sizeof(char *))) ||
		    !(t->rsides = calloc(json_array_size(rr) + 1, sizeof(int)))) {
			rc = udr__error_oom();
			goto out;
		}
		json_array_foreach(rr, k, e) {
			const char *key = json_string_value(json_array_get(e, 0));
			int s = side_of(json_string_value(json_array_get(e, 1)));
			if (!key || s <= 0 || !(t->rkeys[t->nr] = strdup(key))) {
				rc = bad_record(path);
				goto out;
			}
			t->rsides[t->nr++] = s;
		}
		if (json_is_object(ver)) {
			const char *sch = json_string_value(json_object_get(ver, "schema"));
			if (!sch || parts_from(&t->version, json_object_get(ver, "parts")) != 0 ||
			    !(t->vschema = strdup(sch))) {
				rc = bad_record(path);
				goto out;
			}
			t->vrows = u64_of(ver, "rows");
		}
	}
out:
	json_decref(o);
	free(text);
	free(path);
	if (rc < 0)
		udr__mrec_free(out);
	return rc;
}

int udr__mrec_remove(udr_query *q, const char *target)
{
	char *path = rec_path(q, target, ".json");
	int rc = 0;
	if (!path)
		return udr__error_oom();
	if (unlink(path) < 0 && errno != ENOENT)
		rc = udr__error_io(errno, "cannot remove the merge record %s", path);
	else
		{
		char *slash = strrchr(path, '/');
		*slash = '\0';
		(void)udr__fsync_dir(path);
	}
	free(path);
	return rc;
}

/* "read_parquet([paths of ps])" through a view of the parts (verified). */
static int parts_reader(udr__buf *b, udr_query *q, const udr__parts *ps)
{
	udr_version *v = NULL;
	udr__view *vw;
	udr_hash all;
	char hex[UDR_HASH_HEXSIZE + 1], name[40];
	int rc;
	{
		/* a name for the set of parts: the hash of their hashes */
		udr_hash *hs = calloc(ps->n + 1, sizeof(*hs));
		if (!hs)
			return udr__error_oom();
		for (size_t i = 0; i < ps->n; i++)
			hs[i] = ps->p[i].hash;
		udr_hash_buf(&all, hs, ps->n * sizeof(*hs));
		free(hs);
	}
	udr_hash_tohex(hex, &all);
	snprintf(name, sizeof(name), "__udr_c%.24s", hex);
	if ((rc = udr_version_new(&v, name, 1)) < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < ps->n; i++)
		rc = udr_version_add_chunk(v, &ps->p[i].hash);
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.format", "parquet");
	if (rc == 0)
		rc = udr__q_view_get(&vw, q, v);
	if (rc == 0)
		rc = udr__buf_puts(b, "read_parquet([");
	for (size_t i = 0; rc == 0 && i < vw->nparts; i++) {
		char *p = udr__q_read_path(vw->paths[i]);
		rc = p ? udr__buf_puts(b, i ? ", " : "") : udr__error_oom();
		if (rc == 0)
			rc = udr__sql_read_path(b, p);
		free(p);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, "])");
	udr_version_free(v);
	return rc;
}

/* The resolution of row key_text in t (0: none). */
static int row_side(const udr__mtable *t, const char *key)
{
	for (size_t i = t->nr; i-- > 0;)
		if (strcmp(t->rkeys[i], key) == 0)
			return t->rsides[i];
	return 0;
}

static int append_record_rows(udr_query *q, const udr__mrec *r)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		const udr__mtable *t = &r->t[i];
		udr__buf b = {0};
		const char *res = t->version.n || t->vschema ? "version" : side_name(t->side);
		if (t->rowlevel && t->rows_conflict == 0 && !t->conflicts.n)
			continue; /* merges row by row, nothing in conflict */
		rc = udr__buf_puts(&b, "INSERT INTO temp.main.udr_conflicts SELECT ");
		if (rc == 0)
			rc = udr__sql_literal(&b, r->target);
		if (rc == 0)
			rc = udr__buf_puts(&b, ", ");
		if (rc == 0)
			rc = udr__sql_literal(&b, t->table);
		if (rc == 0 && t->conflicts.n) {
			rc = udr__buf_puts(&b, ", key::JSON, base::JSON, ours::JSON, theirs::JSON, ");
			if (rc == 0 && res)
				rc = udr__sql_literal(&b, res);
			else if (rc == 0 && t->nr == 0)
				rc = udr__buf_puts(&b, "NULL");
			else if (rc == 0) {
				/* rows resolved one by one */
				rc = udr__buf_puts(&b, "CASE");
				for (size_t k = 0; rc == 0 && k < t->nr; k++) {
					rc = udr__buf_puts(&b, " WHEN key_text = ");
					if (rc == 0)
						rc = udr__sql_literal(&b, t->rkeys[k]);
					if (rc == 0)
						rc = udr__buf_printf(&b, " THEN '%s'", side_name(row_side(t, t->rkeys[k])));
				}
				if (rc == 0)
					rc = udr__buf_puts(&b, " END");
			}
			if (rc == 0)
				rc = udr__buf_puts(&b, " FROM ");
			if (rc == 0)
				rc = parts_reader(&b, q, &t->conflicts);
		} else if (rc == 0) {
			/* a table-level conflict: one row naming the versions */
			char bv[64];
			snprintf(bv, sizeof(bv), t->base ? "'{\"version\":%" PRIu64 "}'" : "NULL", t->base);
			rc = udr__buf_printf(&b, ", NULL, %s, '{\"version\":%" PRIu64 "}', '{\"version\":%" PRIu64 "}', ", bv,
			                     t->ours, t->theirs);
			if (rc == 0)
				rc = res ? udr__sql_literal(&b, res) : udr__buf_puts(&b, "NULL");
		}
		if (rc == 0)
			rc = udr__q_exec(q, b.ptr);
		udr__buf_free(&b);
	}
	return rc;
}

/* The rows of a record whose target still has the head the merge was
 * planned on; a stale record (the branch moved or was deleted and made
 * again since) lists nothing: resolve and --continue refuse it. */
static int append_current_rows(udr_query *q, const udr__mrec *r)
{
	int rc = udr__mrec_current(q, r, "stale");
	if (rc == UDR_ECONFLICT) {
		udr_error_clear();
		return 0;
	}
	return rc < 0 ? rc : append_record_rows(q, r);
}

int udr__conflicts_ensure(udr_query *q)
{
	char *dir = udr__path_join(q->cat->path, "merges");
	DIR *d;
	struct dirent *e;
	int rc;
	if (!dir)
		return udr__error_oom();
	rc = udr__q_exec(q, "CREATE OR REPLACE TEMP TABLE udr_conflicts (target VARCHAR, \"table\" VARCHAR, key JSON, "
	                    "base JSON, ours JSON, theirs JSON, resolved VARCHAR)");
	d = rc == 0 ? opendir(dir) : NULL;
	while (rc == 0 && d && (e = readdir(d)) != NULL) {
		udr__buf name = {0};
		udr__mrec r;
		size_t n = strlen(e->d_name);
		if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.')
			continue;
		if (strncmp(e->d_name, MREC_HASHED, strlen(MREC_HASHED)) == 0) {
			/* a long name's record: the name is in it */
			char *path = udr__path_join(dir, e->d_name);
			if (!path) {
				rc = udr__error_oom();
				break;
			}
			if ((rc = mrec_load_path(&r, path, NULL)) == 0) {
				rc = append_current_rows(q, &r);
				udr__mrec_free(&r);
			}
			continue;
		}
		/* the file name back to the branch name */
		for (size_t i = 0; rc == 0 && i < n - 5; i++) {
			if (strncmp(e->d_name + i, "%2F", 3) == 0) {
				rc = udr__buf_puts(&name, "/");
				i += 2;
			} else {
				rc = udr__buf_put(&name, e->d_name + i, 1);
			}
		}
		if (rc == 0 && (rc = udr__mrec_load(&r, q, name.ptr)) == 0) {
			rc = append_current_rows(q, &r);
			udr__mrec_free(&r);
		}
		udr__buf_free(&name);
	}
	if (d)
		closedir(d);
	free(dir);
	udr__q_cache_release(q);
	return rc;
}

int udr__mrec_current(udr_query *q, const udr__mrec *r, const char *what)
{
	uint64_t head = 0;
	int rc = udr__branch_head(&head, q->cat, r->target, 0);
	if (rc == UDR_ENOTFOUND)
		return udr__error_set(UDR_ECONFLICT,
		                      "branch %s was deleted since the merge of %s into it was recorded: %s; "
		                      "udr merge --abort --into %s drops the record",
		                      r->target, r->source, what, r->target);
	if (rc < 0)
		return rc;
	if (head != r->ours)
		return udr__error_set(UDR_ECONFLICT,
		                      "branch %s moved since the merge of %s was recorded (its head is commit %" PRIu64
		                      ", the merge was planned on %" PRIu64 "): %s; udr merge --abort, then merge again",
		                      r->target, r->source, head, r->ours, what);
	return 0;
}

/* Resolve a table of the merge into `into`: a side (key NULL: the table;
 * else the conflict row whose key is key), or the rows of sql. */
int udr_query_merge_resolve(udr_query *q, const char *into, const char *table, int side, const char *key, const char *sql)
{
	udr__mrec r;
	udr__mtable *t;
	char *canon = NULL; /* the row's key_text, for key */
	int lock = -1, rc;
	if (udr__q_refuse_read_only(q, "udr_query_merge_resolve") < 0)
		return UDR_EINVAL;
	if (!q || !table || (side != 0 && side != UDR_MERGE_OURS && side != UDR_MERGE_THEIRS) || (!side == !sql) ||
	    (key && !side))
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_merge_resolve: a side (per table or per row) "
		                                  "or a query");
	if (!into)
		into = "main";
	if ((rc = udr_ref_name_check(into)) < 0 || (rc = udr_table_name_check(table)) < 0)
		return rc;
	/* the record read, changed and written back under its lock */
	if ((rc = udr__mrec_lock(&lock, q, into, true)) < 0)
		return rc;
	if ((rc = udr__mrec_load(&r, q, into)) < 0) {
		udr__mrec_unlock(lock);
		return rc;
	}
	if ((rc = udr__mrec_current(q, &r, "nothing resolved")) < 0)
		goto out;
	if (!(t = udr__mrec_table(&r, table))) {
		rc = udr__error_set(UDR_ENOTFOUND, "table %s has no conflict in the merge into %s", table, into);
		goto out;
	}
	if (t->rowlevel && t->rows_conflict == 0 && !t->conflicts.n) {
		rc = udr__error_set(UDR_EINVAL, "table %s has no conflict in the merge into %s: it merges row by row "
		                                "(udr merge --continue merges it; to take one side for the whole table, "
		                                "merge again with --table %s=ours|theirs)",
		                    table, into, table);
		goto out;
	}
	if (key) {
		udr__buf b = {0};
		uint64_t found = 0;
		udr_result *res = NULL;
		udr_value x;
		if (!t->conflicts.n) {
			rc = udr__error_set(UDR_EINVAL, "table %s conflicts as a whole (%s): resolve it with a side for the "
			                                "table or a resolved version, not per row",
			                    table, t->note ? t->note : "no row-level merge");
			goto out;
		}
		/* the key as udr_conflicts shows it, or the same JSON spelled
		 * otherwise ({"r": "eu", "id": 1} for {"r":"eu","id":1}): the
		 * resolution is kept under the row's own key_text */
		/* the exact text first; else, for a key of several columns (its
		 * key_text the key's JSON object), the one row whose key is that
		 * JSON spelled otherwise */
		for (int pass = 0; pass < 2 && rc == 0 && !found; pass++) {
			rc = udr__buf_puts(&b, "SELECT min(key_text), count(*)::BIGINT FROM ");
			if (rc == 0)
				rc = parts_reader(&b, q, &t->conflicts);
			if (rc == 0)
				rc = udr__buf_puts(&b, pass == 0 ? " WHERE key_text = ?1"
				                                 : " WHERE key_text = CAST(key AS VARCHAR) AND key_text = (CASE WHEN "
				                                   "json_valid(?1) AND json_type(?1::JSON) = 'OBJECT' THEN "
				                                   "json(?1)::VARCHAR END)");
			if (rc == 0) {
				udr_value p = udr_value_text(key);
				rc = udr__q_run(&res, q, b.ptr, &p, 1, UDR__RUN_ANY);
			}
			if (rc == 0 && udr_result_get(&x, res, 0, 1) == 0 && x.type == UDR_TYPE_INT64)
				found = (uint64_t)x.i64;
			if (rc == 0 && found == 1 && udr_result_get(&x, res, 0, 0) == 0 && x.type == UDR_TYPE_TEXT &&
			    !(canon = strdup(x.str)))
				rc = udr__error_oom();
			if (found > 1) {
				found = 0; /* never a guess between rows */
				free(canon);
				canon = NULL;
			}
			udr_result_free(res);
			res = NULL;
			udr__buf_free(&b);
			udr__q_cache_release(q);
		}
		if (rc == 0 && (!found || !canon))
			rc = udr__error_set(UDR_ENOTFOUND, "table %s has no conflicting row with key %s (see the key column "
			                                   "of udr_conflicts)",
			                    table, key);
		if (rc < 0)
			goto out;
		key = canon;
		/* a row resolved again: its choice replaced (a second entry was
		 * added, and the merge took the first while udr_conflicts showed
		 * the last) */
		for (size_t i = 0; i < t->nr; i++)
			if (strcmp(t->rkeys[i], key) == 0) {
				t->rsides[i] = side;
				found = 0;
				break;
			}
		if (found) {
			char **nk = realloc(t->rkeys, (t->nr + 1) * sizeof(*nk));
			int *ns;
			if (nk)
				t->rkeys = nk;
			ns = nk ? realloc(t->rsides, (t->nr + 1) * sizeof(*ns)) : NULL;
			if (ns)
				t->rsides = ns;
			if (!nk || !ns || !(t->rkeys[t->nr] = strdup(key))) {
				rc = udr__error_oom();
				goto out;
			}
			t->rsides[t->nr++] = side;
		}
	} else if (side) {
		t->side = side;
		udr__parts_free(&t->version);
		free(t->vschema);
		t->vschema = NULL;
	} else {
		char *rw = NULL, **names = NULL, **types = NULL;
		udr_hash *h = NULL;
		uint64_t *rows = NULL;
		size_t n = 0, ncol = 0;
		udr__buf b = {0};
		if ((rc = udr__q_rewrite(&rw, q, sql)) == 0) {
			size_t l = strlen(rw);
			while (l && (rw[l - 1] == ';' || rw[l - 1] == ' ' || rw[l - 1] == '\n' || rw[l - 1] == '\t'))
				rw[--l] = '\0';
			rc = udr__q_check(q, rw, UDR__RUN_SELECT);
		}
		if (rc == 0)
			rc = udr__buf_printf(&b, "(%s)", rw);
		if (rc == 0)
			rc = udr__q_describe(&names, &types, &ncol, q, b.ptr);
		if (rc == 0 && ncol == 0)
			rc = udr__error_set(UDR_EINVAL, "the resolved rows of table %s have no columns", table);
		if (rc == 0)
			rc = udr__q_write_parts(&h, &rows, &n, q, rw, names, types, ncol);
		if (rc == 0) {
			udr__parts_free(&t->version);
			free(t->vschema);
			t->vschema = NULL;
			t->vrows = 0;
			t->side = 0;
			if (!(t->version.p = calloc(n + 1, sizeof(*t->version.p))))
				rc = udr__error_oom();
			t->version.typed = true;
			for (size_t i = 0; rc == 0 && i < n; i++) {
				t->version.p[t->version.n].hash = h[i];
				t->version.p[t->version.n++].rows = rows[i];
				t->vrows += rows[i];
			}
			if (rc == 0)
				rc = udr__q_schema_json(&t->vschema, names, types, ncol);
		}
		udr_strarray_free(names, ncol);
		udr_strarray_free(types, ncol);
		udr__buf_free(&b);
		free(rw);
		free(h);
		free(rows);
		udr__q_cache_release(q);
		if (rc < 0)
			goto out;
	}
	udr__test_pause("merge-resolve");
	rc = udr__mrec_save(q, &r);
out:
	free(canon);
	udr__mrec_free(&r);
	udr__mrec_unlock(lock);
	return rc;
}

int udr_query_merge_abort(udr_query *q, const char *into)
{
	udr__mrec r;
	int lock = -1, rc;
	if (udr__q_refuse_read_only(q, "udr_query_merge_abort") < 0)
		return UDR_EINVAL;
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_merge_abort");
	if (!into)
		into = "main";
	if ((rc = udr_ref_name_check(into)) < 0 || (rc = udr__mrec_lock(&lock, q, into, true)) < 0)
		return rc;
	if ((rc = udr__mrec_load(&r, q, into)) == 0) {
		udr__mrec_free(&r);
		rc = udr__mrec_remove(q, into);
	}
	udr__mrec_unlock(lock);
	return rc;
}
