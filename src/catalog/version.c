/*
 * version.c - the table version value: construction, metadata, table-name
 * rules, and its JSON form in version files (docs/FORMAT.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

int udr_table_name_check(const char *name)
{
	char q[200];
	size_t n;
	if (!name)
		return udr__error_set(UDR_EINVAL, "invalid table name: NULL");
	n = strnlen(name, UDR_TABLE_NAME_MAX + 1);
	if (n == 0)
		return udr__error_set(UDR_EINVAL, "invalid table name '': must not be empty");
	udr__quote(q, sizeof(q), name);
	if (n > UDR_TABLE_NAME_MAX)
		return udr__error_set(UDR_EINVAL, "invalid table name '%s': longer than %d characters", q,
		                      UDR_TABLE_NAME_MAX);
	if (name[0] == '.' || name[0] == '-')
		return udr__error_set(UDR_EINVAL, "invalid table name '%s': must not start with '%c'", q, name[0]);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return udr__error_set(UDR_EINVAL,
			                      "invalid table name '%s': character %zu is not one of [A-Za-z0-9_.-]", q,
			                      i + 1);
	}
	return 0;
}

int udr_version_new(udr_version **out, const char *table, uint64_t version)
{
	udr_version *v;
	int rc;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument: output is NULL");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	if (!(v = calloc(1, sizeof(*v))))
		return udr__error_oom();
	if (!(v->table = strdup(table))) {
		free(v);
		return udr__error_oom();
	}
	v->version = version;
	*out = v;
	return 0;
}

void udr_version_free(udr_version *v)
{
	if (!v)
		return;
	free(v->table);
	free(v->chunks);
	free(v->message);
	for (size_t i = 0; i < v->nmeta; i++) {
		free(v->meta[i].key);
		free(v->meta[i].value);
	}
	free(v->meta);
	free(v);
}

int udr_version_add_chunk(udr_version *v, const udr_hash *h)
{
	if (!v || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_version_add_chunk");
	if (v->nchunks == v->cap_chunks_) {
		size_t cap = v->cap_chunks_ ? v->cap_chunks_ * 2 : 8, bytes;
		udr_hash *p;
		if (!udr__mul_ok(cap, sizeof(udr_hash), &bytes))
			return udr__error_oom();
		if (!(p = realloc(v->chunks, bytes)))
			return udr__error_oom();
		v->chunks = p;
		v->cap_chunks_ = cap;
	}
	v->chunks[v->nchunks++] = *h;
	return 0;
}

int udr__message_check(const char *message)
{
	json_t *j;
	if (!message)
		return 0;
	if (!(j = json_string(message))) /* jansson takes valid UTF-8 only */
		return udr__error_set(UDR_EINVAL, "commit message is not valid UTF-8");
	json_decref(j);
	return 0;
}

int udr_version_set_message(udr_version *v, const char *message)
{
	char *m = NULL;
	if (!v)
		return udr__error_set(UDR_EINVAL, "invalid argument: version is NULL");
	/* refused here, before a caller stores the version's data (the commit
	 * found it only when it wrote the record) */
	if (udr__message_check(message) < 0)
		return UDR_EINVAL;
	if (message && !(m = strdup(message)))
		return udr__error_oom();
	free(v->message);
	v->message = m;
	return 0;
}

int udr_version_set_meta(udr_version *v, const char *key, const char *value)
{
	size_t lo = 0, hi;
	udr_meta *p;
	char *k, *val;
	if (!v || !key || !*key || !value)
		return udr__error_set(UDR_EINVAL, "invalid metadata: key must be non-empty and value non-NULL");
	hi = v->nmeta;
	while (lo < hi) { /* keep entries sorted by key */
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->meta[mid].key, key);
		if (c == 0) {
			if (!(val = strdup(value)))
				return udr__error_oom();
			free(v->meta[mid].value);
			v->meta[mid].value = val;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!(p = realloc(v->meta, (v->nmeta + 1) * sizeof(*p))))
		return udr__error_oom();
	v->meta = p;
	k = strdup(key);
	val = strdup(value);
	if (!k || !val) {
		free(k);
		free(val);
		return udr__error_oom();
	}
	memmove(&p[lo + 1], &p[lo], (v->nmeta - lo) * sizeof(*p));
	p[lo].key = k;
	p[lo].value = val;
	v->nmeta++;
	return 0;
}

const char *udr_version_get_meta(const udr_version *v, const char *key)
{
	if (!v || !key)
		return NULL;
	for (size_t i = 0; i < v->nmeta; i++)
		if (strcmp(v->meta[i].key, key) == 0)
			return v->meta[i].value;
	return NULL;
}

int udr_version_dup(udr_version **out, const udr_version *v)
{
	udr_version *c;
	int rc;
	if (!out || !v)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_version_dup");
	if ((rc = udr_version_new(&c, v->table, v->version)) < 0)
		return rc;
	c->created_ms = v->created_ms;
	c->parent = v->parent;
	c->commit_seq = v->commit_seq;
	if (v->nchunks) {
		size_t bytes;
		if (!udr__mul_ok(v->nchunks, sizeof(udr_hash), &bytes) || !(c->chunks = malloc(bytes))) {
			udr_version_free(c);
			return udr__error_oom();
		}
		memcpy(c->chunks, v->chunks, bytes);
		c->nchunks = c->cap_chunks_ = v->nchunks;
	}
	if ((rc = udr_version_set_message(c, v->message)) < 0)
		goto fail;
	for (size_t i = 0; i < v->nmeta; i++)
		if ((rc = udr_version_set_meta(c, v->meta[i].key, v->meta[i].value)) < 0)
			goto fail;
	*out = c;
	return 0;
fail:
	udr_version_free(c);
	return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

int udr__version_to_json(char **out, size_t *out_len, const udr_version *v)
{
	json_t *o = json_object(), *chunks = json_array(), *meta = json_object();
	char when[40];
	char hex[UDR_HASH_HEXSIZE + 1];
	char *text = NULL;
	int fail = 0;
	if (!o || !chunks || !meta)
		goto oom;
	udr__format_time(when, sizeof(when), v->created_ms);
	fail |= json_object_set_new(o, "format", json_integer(1));
	fail |= json_object_set_new(o, "table", json_string(v->table));
	fail |= json_object_set_new(o, "version", json_integer((json_int_t)v->version));
	fail |= json_object_set_new(o, "parent", json_integer((json_int_t)v->parent));
	fail |= json_object_set_new(o, "created", json_string(when));
	fail |= json_object_set_new(o, "created_ms", json_integer(v->created_ms));
	fail |= json_object_set_new(o, "commit", json_integer((json_int_t)v->commit_seq));
	fail |= json_object_set_new(o, "message", v->message ? json_string(v->message) : json_null());
	for (size_t i = 0; i < v->nmeta && !fail; i++) {
		json_t *s = json_string(v->meta[i].value);
		if (!s) {
			json_decref(o);
			json_decref(chunks);
			json_decref(meta);
			return udr__error_set(UDR_EINVAL, "metadata value of key '%s' is not valid UTF-8",
			                      v->meta[i].key);
		}
		fail |= json_object_set_new(meta, v->meta[i].key, s);
	}
	for (size_t i = 0; i < v->nchunks && !fail; i++) {
		udr_hash_tohex(hex, &v->chunks[i]);
		fail |= json_array_append_new(chunks, json_string(hex));
	}
	fail |= json_object_set(o, "metadata", meta);
	fail |= json_object_set(o, "chunks", chunks);
	if (fail) {
		json_decref(o);
		json_decref(chunks);
		json_decref(meta);
		return udr__error_set(UDR_EINVAL, "version of table %s has text that is not valid UTF-8 "
		                      "(message or metadata)", v->table);
	}
	text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(o);
	json_decref(chunks);
	json_decref(meta);
	if (!text)
		return udr__error_oom();
	*out_len = strlen(text);
	/* a trailing newline keeps the files friendly to cat and grep */
	{
		char *t2 = realloc(text, *out_len + 2);
		if (!t2) {
			free(text);
			return udr__error_oom();
		}
		text = t2;
		text[(*out_len)++] = '\n';
		text[*out_len] = '\0';
	}
	*out = text;
	return 0;
oom:
	json_decref(o);
	json_decref(chunks);
	json_decref(meta);
	return udr__error_oom();
}

static int get_u64(uint64_t *out, json_t *o, const char *key)
{
	json_t *x = json_object_get(o, key);
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(x);
	return 0;
}

int udr__version_from_json(udr_version **out, const char *text, size_t len, const char *path)
{
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *x;
	udr_version *v = NULL;
	uint64_t ver, parent, seq, fmt;
	json_int_t created;
	const char *table, *key;
	json_t *val;
	size_t i;
	int rc;
	if (!o)
		return udr__error_set(UDR_ECORRUPT, "corrupt version file %s: %s (line %d)", path, jerr.text,
		                      jerr.line);
	if (!json_is_object(o) || get_u64(&fmt, o, "format") || fmt != 1 ||
	    !json_is_string(json_object_get(o, "table")) || get_u64(&ver, o, "version") ||
	    get_u64(&parent, o, "parent") || get_u64(&seq, o, "commit") ||
	    !json_is_integer(json_object_get(o, "created_ms")) ||
	    !json_is_array(json_object_get(o, "chunks")) || !json_is_object(json_object_get(o, "metadata"))) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: missing or mistyped fields", path);
		goto fail;
	}
	table = json_string_value(json_object_get(o, "table"));
	created = json_integer_value(json_object_get(o, "created_ms"));
	if ((rc = udr_version_new(&v, table, ver)) < 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: bad table name", path);
		goto fail;
	}
	v->parent = parent;
	v->commit_seq = seq;
	v->created_ms = (int64_t)created;
	x = json_object_get(o, "message");
	if (json_is_string(x)) {
		if ((rc = udr_version_set_message(v, json_string_value(x))) < 0)
			goto fail;
	} else if (x && !json_is_null(x)) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: message is not a string", path);
		goto fail;
	}
	json_object_foreach(json_object_get(o, "metadata"), key, val) {
		if (!json_is_string(val) || !*key) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: bad metadata entry", path);
			goto fail;
		}
		if ((rc = udr_version_set_meta(v, key, json_string_value(val))) < 0)
			goto fail;
	}
	x = json_object_get(o, "chunks");
	if (json_array_size(x)) {
		size_t n = json_array_size(x), bytes;
		if (!udr__mul_ok(n, sizeof(udr_hash), &bytes) || !(v->chunks = malloc(bytes))) {
			rc = udr__error_oom();
			goto fail;
		}
		v->cap_chunks_ = n;
	}
	json_array_foreach(x, i, val) {
		if (!json_is_string(val) || json_string_length(val) != UDR_HASH_HEXSIZE ||
		    udr_hash_fromhex(&v->chunks[i], json_string_value(val)) < 0) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: chunk %zu is not a hash", path, i);
			goto fail;
		}
		v->nchunks++;
	}
	json_decref(o);
	*out = v;
	return 0;
fail:
	json_decref(o);
	udr_version_free(v);
	return rc;
}
