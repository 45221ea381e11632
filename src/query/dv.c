/*
 * dv.c - typed parts of table versions and deletion vectors: the udr.parts
 * metadata (rows per part, the deletion vector of each), the encoding of a
 * deletion vector object (sorted runs of row positions), and merge-on-read:
 * the scalar function DuckDB calls to drop deleted rows while it scans.
 * The byte layouts are in docs/FORMAT.md ("Typed parts and deletion vectors").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "query/query_internal.h"

#define DV_MAGIC "UDRV"
#define DV_HEADER 32

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool bit_get(const uint8_t *bits, uint64_t i)
{
	return (bits[i >> 3] >> (i & 7)) & 1;
}

/* ---- parts of a version -------------------------------------------------------------------------- */

void udr__parts_free(udr__parts *ps)
{
	if (!ps)
		return;
	free(ps->p);
	memset(ps, 0, sizeof(*ps));
}

bool udr__version_dropped(const udr_version *v)
{
	return udr_version_is_dropped(v) != 0;
}

int udr__version_set_changes(udr_version *v, uint64_t inserted, uint64_t updated, uint64_t deleted)
{
	char ch[128];
	snprintf(ch, sizeof(ch), "{\"inserted\":%" PRIu64 ",\"updated\":%" PRIu64 ",\"deleted\":%" PRIu64 "}", inserted,
	         updated, deleted);
	return udr_version_set_meta(v, "udr.changes", ch);
}

int udr__version_changes(uint64_t out[3], const udr_version *v)
{
	static const char *const keys[3] = {"inserted", "updated", "deleted"};
	const char *text = udr_version_get_meta(v, "udr.changes");
	json_error_t jerr;
	json_t *o;
	int ok = 1;
	if (!text)
		return 0;
	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	for (int i = 0; i < 3; i++) {
		json_t *x = o ? json_object_get(o, keys[i]) : NULL;
		if (!json_is_integer(x) || json_integer_value(x) < 0)
			ok = 0;
		else
			out[i] = (uint64_t)json_integer_value(x);
	}
	json_decref(o);
	return ok;
}

static int parts_corrupt(const udr_version *v, const char *why)
{
	return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": bad udr.parts (%s)", v->table, v->version,
	                      why);
}

int udr__parts_of(udr__parts *out, const udr_version *v)
{
	const char *text = udr_version_get_meta(v, "udr.parts");
	json_error_t jerr;
	json_t *arr, *e;
	size_t i, ndv = 0;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	if (!text) {
		/* a version from an import: every chunk is a part, rows unknown */
		out->typed = false;
		out->n = v->nchunks;
		if (!(out->p = calloc(v->nchunks ? v->nchunks : 1, sizeof(*out->p))))
			return udr__error_oom();
		for (i = 0; i < v->nchunks; i++) {
			out->p[i].hash = v->chunks[i];
			out->p[i].rows = UINT64_MAX;
		}
		return 0;
	}
	out->typed = true;
	arr = json_loads(text, 0, &jerr);
	if (!arr || !json_is_array(arr)) {
		json_decref(arr);
		return parts_corrupt(v, "not a JSON array");
	}
	out->n = json_array_size(arr);
	if (out->n > v->nchunks) {
		json_decref(arr);
		return parts_corrupt(v, "more parts than chunks");
	}
	if (!(out->p = calloc(out->n ? out->n : 1, sizeof(*out->p)))) {
		json_decref(arr);
		return udr__error_oom();
	}
	json_array_foreach(arr, i, e) {
		json_t *rows = json_object_get(e, "rows"), *del = json_object_get(e, "deleted");
		json_t *dv = json_object_get(e, "dv");
		udr__part *p = &out->p[i];
		p->hash = v->chunks[i];
		if (!json_is_integer(rows) || json_integer_value(rows) < 0) {
			rc = parts_corrupt(v, "a part without rows");
			break;
		}
		p->rows = (uint64_t)json_integer_value(rows);
		if (!del && !dv)
			continue;
		if (!json_is_integer(del) || json_integer_value(del) < 1 || (uint64_t)json_integer_value(del) > p->rows ||
		    !json_is_string(dv) || udr_hash_fromhex(&p->dv, json_string_value(dv)) < 0) {
			udr_error_clear();
			rc = parts_corrupt(v, "a bad deletion vector entry");
			break;
		}
		p->deleted = (uint64_t)json_integer_value(del);
		p->has_dv = true;
		/* the chunks after the parts are the distinct deletion vectors,
		 * in order of first use: so GC and fsck reach them as chunks */
		{
			bool seen = false;
			for (size_t k = 0; k < i && !seen; k++)
				seen = out->p[k].has_dv && udr_hash_equal(&out->p[k].dv, &p->dv);
			if (!seen) {
				if (out->n + ndv >= v->nchunks || !udr_hash_equal(&v->chunks[out->n + ndv], &p->dv)) {
					rc = parts_corrupt(v, "the deletion vectors are not the chunks after the parts");
					break;
				}
				ndv++;
			}
		}
	}
	json_decref(arr);
	if (rc == 0 && out->n + ndv != v->nchunks)
		rc = parts_corrupt(v, "chunks that are neither parts nor deletion vectors");
	if (rc < 0)
		udr__parts_free(out);
	return rc;
}

int udr__parts_meta(udr__buf *b, const udr__parts *ps)
{
	int rc = udr__buf_puts(b, "[");
	for (size_t i = 0; rc == 0 && i < ps->n; i++) {
		const udr__part *p = &ps->p[i];
		rc = udr__buf_printf(b, "%s{\"rows\":%" PRIu64, i ? "," : "", p->rows);
		if (rc == 0 && p->has_dv) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, &p->dv);
			rc = udr__buf_printf(b, ",\"deleted\":%" PRIu64 ",\"dv\":\"%s\"", p->deleted, hex);
		}
		if (rc == 0)
			rc = udr__buf_puts(b, "}");
	}
	if (rc == 0)
		rc = udr__buf_puts(b, "]");
	return rc;
}

/* ---- deletion vector objects ---------------------------------------------------------------------- */

/* The first row >= i, below rows, whose bit is `set` (rows when none):
 * whole bytes without one are stepped over (a part's bitmap is ~120 KB
 * holding a few deleted rows; bit by bit, encoding it took 6% of a 1-row
 * UPDATE's CPU). */
static uint64_t next_bit(const uint8_t *bits, uint64_t i, uint64_t rows, bool set)
{
	const uint8_t skip = set ? 0x00 : 0xff;
	while (i < rows) {
		if ((i & 7) == 0 && bits[i >> 3] == skip) {
			i += 8;
			continue;
		}
		if (bit_get(bits, i) == set)
			return i;
		i++;
	}
	return rows;
}

int udr__dv_encode(uint8_t **out, size_t *len, uint64_t rows, const uint8_t *bits, uint64_t *deleted)
{
	uint64_t runs = 0, del = 0;
	uint8_t *buf, *p;
	if (rows > UINT32_MAX)
		return udr__error_set(UDR_EINVAL, "a part of %" PRIu64 " rows is too large for a deletion vector", rows);
	for (uint64_t i = next_bit(bits, 0, rows, true), e; i < rows; i = next_bit(bits, e, rows, true)) {
		e = next_bit(bits, i, rows, false);
		runs++;
		del += e - i;
	}
	if (!(buf = calloc(1, DV_HEADER + 8 * runs)))
		return udr__error_oom();
	memcpy(buf, DV_MAGIC, 4);
	buf[4] = 1;
	put_u64(buf + 8, rows);
	put_u64(buf + 16, del);
	put_u64(buf + 24, runs);
	p = buf + DV_HEADER;
	for (uint64_t i = next_bit(bits, 0, rows, true), e; i < rows; i = next_bit(bits, e, rows, true)) {
		e = next_bit(bits, i, rows, false);
		put_u32(p, (uint32_t)i);
		put_u32(p + 4, (uint32_t)(e - i));
		p += 8;
	}
	*out = buf;
	*len = DV_HEADER + 8 * runs;
	*deleted = del;
	return 0;
}

/* Decode into *bits (malloc'd, (rows + 7) / 8 bytes); any inconsistency is
 * UDR_ECORRUPT naming the table, version and deletion vector. */
static int dv_decode(uint8_t **bits, const uint8_t *d, size_t len, const udr__part *p, const udr_version *v)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	const char *why = NULL;
	uint64_t runs, del = 0, end = 0;
	uint8_t *b;
	udr_hash_tohex(hex, &p->dv);
	if (len < DV_HEADER || memcmp(d, DV_MAGIC, 4) != 0 || d[4] != 1 || d[5] || d[6] || d[7])
		why = "not a deletion vector";
	else if (get_u64(d + 8) != p->rows)
		why = "its row count is not the part's";
	else if ((runs = get_u64(d + 24)) > (len - DV_HEADER) / 8 || len != DV_HEADER + 8 * runs)
		why = "its size does not match its runs";
	if (why)
		return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": deletion vector %s is damaged (%s)",
		                      v->table, v->version, hex, why);
	if (!(b = calloc(1, p->rows / 8 + 1)))
		return udr__error_oom();
	for (uint64_t k = 0; k < runs && !why; k++) {
		uint64_t s = get_u32(d + DV_HEADER + 8 * k), n = get_u32(d + DV_HEADER + 8 * k + 4);
		if (n == 0 || (k && s <= end) || s + n > p->rows) {
			why = "its runs are not sorted, separate and inside the part";
			break;
		}
		for (uint64_t i = s; i < s + n; i++)
			b[i >> 3] |= (uint8_t)(1u << (i & 7));
		del += n;
		end = s + n;
	}
	if (!why && (del != get_u64(d + 16) || del != p->deleted))
		why = "its count of deleted rows does not match";
	if (why) {
		free(b);
		return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": deletion vector %s is damaged (%s)",
		                      v->table, v->version, hex, why);
	}
	*bits = b;
	return 0;
}

int udr__dv_load(uint8_t **bits, udr_store *store, const udr__part *p, const udr_version *v)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	void *data = NULL;
	size_t len = 0;
	int rc = udr_store_get(&data, &len, store, &p->dv);
	if (rc < 0) {
		udr_hash_tohex(hex, &p->dv);
		if (rc == UDR_ENOTFOUND)
			return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": deletion vector %s is missing from "
			                      "the store", v->table, v->version, hex);
		if (rc == UDR_ECORRUPT)
			return udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": deletion vector %s is damaged: %s",
			                      v->table, v->version, hex, udr_error_last()->message);
		return rc;
	}
	rc = dv_decode(bits, data, len, p, v);
	udr_free(data);
	return rc;
}

/* ---- merge-on-read ------------------------------------------------------------------------------- */

/*
 * __udr_keep(view, file_index, file_row_number): false for a row a
 * deletion vector of the view's version deletes.  It only filters, so DuckDB
 * keeps the scan's order (preserve_insertion_order) and its parallelism.
 * The views are only added while statements bind, never while they run.
 */
static bool consecutive(const int64_t *row, idx_t n)
{
	bool ok = true;
	for (idx_t k = 1; k < n; k++)
		ok &= row[k] == row[k - 1] + 1;
	return ok;
}

static void keep_function(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output)
{
	udr_query *q = duckdb_scalar_function_get_extra_info(info);
	idx_t n = duckdb_data_chunk_get_size(input);
	duckdb_vector a = duckdb_data_chunk_get_vector(input, 0), b = duckdb_data_chunk_get_vector(input, 1),
	              c = duckdb_data_chunk_get_vector(input, 2);
	const uint64_t *view = duckdb_vector_get_data(a), *part = duckdb_vector_get_data(b);
	const int64_t *row = duckdb_vector_get_data(c);
	bool *res = duckdb_vector_get_data(output);
	idx_t i = 0;
	while (i < n) {
		/* a run of rows of one view and part (a chunk is usually one):
		 * its deletion vector is looked up once */
		uint64_t vi = view[i], pi = part[i], nrows = 0;
		const uint8_t *bits = NULL;
		idx_t end = i + 1;
		while (end < n && view[end] == vi && part[end] == pi)
			end++;
		if (vi < q->nviews) {
			const udr__view *vw = &q->views[vi];
			if (vw->dv && pi < vw->nparts && vw->dv[pi]) {
				bits = vw->dv[pi];
				nrows = vw->dvrows[pi];
			}
		}
		if (!bits) {
			memset(res + i, true, (end - i) * sizeof(*res));
			i = end;
			continue;
		}
		if (row[i] >= 0 && (uint64_t)row[end - 1] < nrows && consecutive(row + i, end - i)) {
			/* rows r, r+1, ...: a byte of the bitmap with no deletion
			 * keeps 8 rows at once (most of them, at a few % deleted) */
			uint64_t r = (uint64_t)row[i];
			while (i < end) {
				if ((r & 7) == 0 && end - i >= 8 && bits[r >> 3] == 0) {
					memset(res + i, true, 8 * sizeof(*res));
					i += 8;
					r += 8;
				} else {
					res[i++] = !bit_get(bits, r++);
				}
			}
			continue;
		}
		for (; i < end; i++)
			res[i] = row[i] < 0 || (uint64_t)row[i] >= nrows || !bit_get(bits, (uint64_t)row[i]);
	}
}

int udr__dv_register(udr_query *q)
{
	duckdb_scalar_function f = duckdb_create_scalar_function();
	duckdb_logical_type ub = duckdb_create_logical_type(DUCKDB_TYPE_UBIGINT);
	duckdb_logical_type bi = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
	duckdb_logical_type bo = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
	duckdb_state s;
	duckdb_scalar_function_set_name(f, "__udr_keep");
	duckdb_scalar_function_add_parameter(f, ub);
	duckdb_scalar_function_add_parameter(f, ub);
	duckdb_scalar_function_add_parameter(f, bi);
	duckdb_scalar_function_set_return_type(f, bo);
	duckdb_scalar_function_set_extra_info(f, q, NULL);
	duckdb_scalar_function_set_function(f, keep_function);
	s = duckdb_register_scalar_function(q->con, f);
	duckdb_destroy_scalar_function(&f);
	duckdb_destroy_logical_type(&ub);
	duckdb_destroy_logical_type(&bi);
	duckdb_destroy_logical_type(&bo);
	if (s == DuckDBError)
		return udr__error_set(UDR_ERROR, "cannot register the deletion vector filter with DuckDB");
	return 0;
}

int udr__dv_view_load(udr_query *q, udr__view *vw, const udr_version *v)
{
	udr__parts ps;
	int rc = udr__parts_of(&ps, v);
	if (rc < 0)
		return rc;
	vw->nparts = ps.n; /* the chunks after the parts are deletion vectors */
	for (size_t i = 0; i < ps.n && rc == 0; i++) {
		if (!ps.p[i].has_dv)
			continue;
		if (!vw->dv && (!(vw->dv = calloc(ps.n, sizeof(*vw->dv))) ||
		                !(vw->dvrows = calloc(ps.n, sizeof(*vw->dvrows))))) {
			rc = udr__error_oom();
			break;
		}
		vw->dvrows[i] = ps.p[i].rows;
		if ((rc = udr__dv_load(&vw->dv[i], q->store, &ps.p[i], v)) < 0)
			rc = udr__q_data_error(q, v->table, v->version, rc);
	}
	if (rc == 0) {
		/* a format that hides deletion vectors would return deleted rows */
		const char *f = udr_version_get_meta(v, "udr.format");
		bool dvfmt = f && strcmp(f, "parquet-dv") == 0;
		if (dvfmt != (vw->dv != NULL))
			rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": udr.format is %s but %s",
			                    v->table, v->version, f ? f : "missing",
			                    vw->dv ? "its parts have deletion vectors" : "no part has a deletion vector");
	}
	udr__parts_free(&ps);
	return rc;
}

int udr__dv_scan_sql(udr__buf *b, udr_query *q, const udr__view *vw, bool positions)
{
	return udr__dv_scan_sql_parts(b, q, vw, positions, NULL, 0);
}

int udr__dv_scan_sql_parts(udr__buf *b, udr_query *q, const udr__view *vw, bool positions, const size_t *idx,
                           size_t nidx)
{
	size_t view = (size_t)(vw - q->views), n = idx ? nidx : vw->nparts;
	udr__buf part = {0};
	int rc = 0;
	/* some parts only: file_index counts the files read, mapped back to
	 * the part's index in the version */
	if (idx) {
		rc = udr__buf_puts(&part, "([");
		for (size_t i = 0; rc == 0 && i < nidx; i++)
			rc = udr__buf_printf(&part, i ? ", %zu" : "%zu", idx[i]);
		if (rc == 0)
			rc = udr__buf_puts(&part, "]::UBIGINT[])[file_index::BIGINT + 1]");
	} else {
		rc = udr__buf_puts(&part, "file_index");
	}
	if (rc == 0 && positions)
		rc = udr__buf_printf(b, "SELECT %s AS __udr_part, file_row_number AS __udr_row, * FROM read_parquet([",
		                     part.ptr);
	else if (rc == 0)
		rc = udr__buf_puts(b, "SELECT * FROM read_parquet([");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0)
			rc = udr__sql_read_path(b, vw->paths[idx ? idx[i] : i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, "])");
	if (rc == 0 && vw->dv)
		rc = udr__buf_printf(b, " WHERE __udr_keep(%zu, %s, file_row_number)", view, part.ptr);
	udr__buf_free(&part);
	return rc;
}

/* ---- what a version holds -------------------------------------------------------------------------- */

int udr__version_dv_count(uint64_t *out, const udr_version *v)
{
	udr__parts ps;
	int rc = udr__parts_of(&ps, v);
	*out = 0;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < ps.n; i++)
		*out += ps.p[i].has_dv;
	udr__parts_free(&ps);
	return 0;
}

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, UDR_HASH_SIZE);
}

int udr__version_added_bytes(uint64_t *out, udr_catalog *cat, udr_store *store, const udr_version *v)
{
	udr_version *parent = NULL;
	udr_hash *old = NULL;
	size_t nold = 0;
	int rc = 0;
	*out = 0;
	if (v->parent) {
		if ((rc = udr_catalog_get_version(&parent, cat, v->table, v->parent)) < 0)
			return rc;
		nold = parent->nchunks;
		if (nold && !(old = malloc(nold * sizeof(*old)))) {
			udr_version_free(parent);
			return udr__error_oom();
		}
		if (nold)
			memcpy(old, parent->chunks, nold * sizeof(*old));
		udr_version_free(parent);
		if (nold)
			qsort(old, nold, sizeof(*old), hash_cmp);
	}
	for (size_t i = 0; i < v->nchunks && rc == 0; i++) {
		uint64_t sz = 0;
		bool again = false;
		if (nold && bsearch(&v->chunks[i], old, nold, sizeof(*old), hash_cmp))
			continue;
		for (size_t k = 0; k < i && !again; k++) /* a chunk named twice counts once */
			again = udr_hash_equal(&v->chunks[k], &v->chunks[i]);
		if (again)
			continue;
		if ((rc = udr_store_size_recorded(&sz, store, &v->chunks[i])) == 0)
			*out += sz;
	}
	free(old);
	return rc;
}

/* ---- the check of a version's row-level metadata (fsck, raw commits) ------------------------------ */

/* A message naming "table T version 0" (a draft of `commit --next`) names
 * the table only. */
static int check_failed(int rc, const udr_version *v)
{
	char prefix[UDR_TABLE_NAME_MAX + 32], *msg;
	const char *m = udr_error_last()->message;
	size_t n;
	if (v->version != 0 || !m)
		return rc;
	n = (size_t)snprintf(prefix, sizeof(prefix), "table %s version 0: ", v->table);
	if (strncmp(m, prefix, n) != 0 || !(msg = strdup(m + n)))
		return rc;
	rc = udr__error_set(rc, "table %s: %s", v->table, msg);
	free(msg);
	return rc;
}

int udr_query_check_version(udr_store *store, const udr_version *v)
{
	udr__parts ps;
	const char *f;
	bool any_dv = false;
	int rc;
	if (!v)
		return udr__error_set(UDR_EINVAL, "udr_query_check_version: no version");
	f = udr_version_get_meta(v, "udr.format");
	if (f && strcmp(f, "parquet") != 0 && strcmp(f, "parquet-dv") != 0 && strcmp(f, "csv") != 0 &&
	    strcmp(f, "json") != 0) {
		char qf[64];
		udr__quote(qf, sizeof(qf), f);
		return check_failed(udr__error_set(UDR_EINVAL, "table %s version %" PRIu64 ": unsupported udr.format "
		                                               "'%s' (parquet, parquet-dv, csv or json)",
		                                   v->table, v->version, qf),
		                    v);
	}
	if (!udr_version_get_meta(v, "udr.parts") && !(f && strcmp(f, "parquet-dv") == 0))
		return 0; /* no row-level metadata: every chunk is a part */
	if ((rc = udr__parts_of(&ps, v)) < 0)
		return check_failed(rc, v);
	for (size_t i = 0; i < ps.n && rc == 0; i++) {
		uint8_t *bits = NULL;
		void *data = NULL;
		size_t len = 0;
		bool seen = false;
		any_dv |= ps.p[i].has_dv;
		if (!ps.p[i].has_dv || !store)
			continue;
		/* one that an earlier part of as many rows and deletions named
		 * decodes the same (a shared vector of 98k runs was decoded per
		 * part: 35 ms a commit) */
		for (size_t k = 0; k < i && !seen; k++)
			seen = ps.p[k].has_dv && udr_hash_equal(&ps.p[k].dv, &ps.p[i].dv) && ps.p[k].rows == ps.p[i].rows &&
			       ps.p[k].deleted == ps.p[i].deleted;
		if (seen)
			continue;
		/* missing or damaged in the store: the store's and the catalog's
		 * checks name it, and a commit refuses a missing chunk.  A
		 * deletion vector named by several parts is decoded against each
		 * one's rows. */
		if (udr_store_get(&data, &len, store, &ps.p[i].dv) < 0) {
			udr_error_clear();
			continue;
		}
		if ((rc = dv_decode(&bits, data, len, &ps.p[i], v)) == 0)
			free(bits);
		udr_free(data);
	}
	if (rc == 0 && any_dv != (f && strcmp(f, "parquet-dv") == 0))
		rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": udr.format is %s but %s", v->table,
		                    v->version, f ? f : "missing",
		                    any_dv ? "its parts have deletion vectors" : "no part has a deletion vector");
	udr__parts_free(&ps);
	return rc < 0 ? check_failed(rc, v) : 0;
}

/* installed for every commit (util.h); the module's objects come with it */
__attribute__((constructor)) static void dv_install_check(void)
{
	udr__row_meta_check = udr_query_check_version;
}
