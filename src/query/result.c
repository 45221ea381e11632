/*
 * result.c - query results: a DuckDB result copied into plain column arrays
 * (typed values for booleans, integers and doubles, text for everything
 * else), the accessors of udr/query.h, and the text table / CSV / JSON
 * renderers used by the CLI and the Python bindings.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "query/duck.h"

#include "query/query_internal.h"

typedef struct rcol {
	char *name;
	char *type_name;
	int kind;          /* UDR_TYPE_* */
	duckdb_type dtype;
	uint8_t *nulls;    /* 1 = NULL */
	int64_t *i64;      /* BOOL, INT64 */
	double *f64;       /* DOUBLE */
	size_t *off;       /* TEXT, BLOB, OTHER: offset into arena */
	size_t *slen;
	udr__buf arena;
} rcol;

struct udr_result {
	size_t ncols;
	size_t nrows, cap;
	rcol *cols;
};

/* ---- type names -------------------------------------------------------------- */

static int type_name(udr__buf *b, duckdb_logical_type t);

static int type_name_simple(udr__buf *b, duckdb_type id)
{
	static const struct {
		duckdb_type id;
		const char *name;
	} names[] = {
		{DUCKDB_TYPE_BOOLEAN, "BOOLEAN"},   {DUCKDB_TYPE_TINYINT, "TINYINT"},
		{DUCKDB_TYPE_SMALLINT, "SMALLINT"}, {DUCKDB_TYPE_INTEGER, "INTEGER"},
		{DUCKDB_TYPE_BIGINT, "BIGINT"},     {DUCKDB_TYPE_UTINYINT, "UTINYINT"},
		{DUCKDB_TYPE_USMALLINT, "USMALLINT"}, {DUCKDB_TYPE_UINTEGER, "UINTEGER"},
		{DUCKDB_TYPE_UBIGINT, "UBIGINT"},   {DUCKDB_TYPE_FLOAT, "FLOAT"},
		{DUCKDB_TYPE_DOUBLE, "DOUBLE"},     {DUCKDB_TYPE_TIMESTAMP, "TIMESTAMP"},
		{DUCKDB_TYPE_DATE, "DATE"},         {DUCKDB_TYPE_TIME, "TIME"},
		{DUCKDB_TYPE_INTERVAL, "INTERVAL"}, {DUCKDB_TYPE_HUGEINT, "HUGEINT"},
		{DUCKDB_TYPE_UHUGEINT, "UHUGEINT"}, {DUCKDB_TYPE_VARCHAR, "VARCHAR"},
		{DUCKDB_TYPE_BLOB, "BLOB"},         {DUCKDB_TYPE_TIMESTAMP_S, "TIMESTAMP_S"},
		{DUCKDB_TYPE_TIMESTAMP_MS, "TIMESTAMP_MS"}, {DUCKDB_TYPE_TIMESTAMP_NS, "TIMESTAMP_NS"},
		{DUCKDB_TYPE_UUID, "UUID"},         {DUCKDB_TYPE_BIT, "BIT"},
		{DUCKDB_TYPE_TIME_TZ, "TIME WITH TIME ZONE"},
		{DUCKDB_TYPE_TIMESTAMP_TZ, "TIMESTAMP WITH TIME ZONE"},
		{DUCKDB_TYPE_BIGNUM, "BIGNUM"},     {DUCKDB_TYPE_SQLNULL, "\"NULL\""},
		{DUCKDB_TYPE_TIME_NS, "TIME_NS"},   {DUCKDB_TYPE_ENUM, "ENUM"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].id == id)
			return udr__buf_puts(b, names[i].name);
	return udr__buf_printf(b, "TYPE%d", (int)id);
}

static int child_list(udr__buf *b, duckdb_logical_type t, idx_t n, bool is_union)
{
	int rc = 0;
	for (idx_t i = 0; rc == 0 && i < n; i++) {
		char *nm = is_union ? duckdb_union_type_member_name(t, i) : duckdb_struct_type_child_name(t, i);
		duckdb_logical_type ct = is_union ? duckdb_union_type_member_type(t, i)
		                                  : duckdb_struct_type_child_type(t, i);
		if (i)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0)
			rc = udr__sql_ident(b, nm ? nm : "");
		if (rc == 0)
			rc = udr__buf_puts(b, " ");
		if (rc == 0)
			rc = type_name(b, ct);
		duckdb_free(nm);
		duckdb_destroy_logical_type(&ct);
	}
	return rc;
}

static int type_name(udr__buf *b, duckdb_logical_type t)
{
	duckdb_type id = duckdb_get_type_id(t);
	char *alias = duckdb_logical_type_get_alias(t);
	int rc = 0;
	if (alias) {
		rc = udr__buf_puts(b, alias);
		duckdb_free(alias);
		return rc;
	}
	switch (id) {
	case DUCKDB_TYPE_DECIMAL:
		return udr__buf_printf(b, "DECIMAL(%u,%u)", (unsigned)duckdb_decimal_width(t),
		                       (unsigned)duckdb_decimal_scale(t));
	case DUCKDB_TYPE_LIST: {
		duckdb_logical_type c = duckdb_list_type_child_type(t);
		rc = type_name(b, c);
		duckdb_destroy_logical_type(&c);
		return rc ? rc : udr__buf_puts(b, "[]");
	}
	case DUCKDB_TYPE_ARRAY: {
		duckdb_logical_type c = duckdb_array_type_child_type(t);
		rc = type_name(b, c);
		duckdb_destroy_logical_type(&c);
		return rc ? rc : udr__buf_printf(b, "[%" PRIu64 "]", (uint64_t)duckdb_array_type_array_size(t));
	}
	case DUCKDB_TYPE_MAP: {
		duckdb_logical_type k = duckdb_map_type_key_type(t), v = duckdb_map_type_value_type(t);
		rc = udr__buf_puts(b, "MAP(");
		if (rc == 0)
			rc = type_name(b, k);
		if (rc == 0)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0)
			rc = type_name(b, v);
		duckdb_destroy_logical_type(&k);
		duckdb_destroy_logical_type(&v);
		return rc ? rc : udr__buf_puts(b, ")");
	}
	case DUCKDB_TYPE_STRUCT:
		rc = udr__buf_puts(b, "STRUCT(");
		if (rc == 0)
			rc = child_list(b, t, duckdb_struct_type_child_count(t), false);
		return rc ? rc : udr__buf_puts(b, ")");
	case DUCKDB_TYPE_UNION:
		rc = udr__buf_puts(b, "UNION(");
		if (rc == 0)
			rc = child_list(b, t, duckdb_union_type_member_count(t), true);
		return rc ? rc : udr__buf_puts(b, ")");
	default:
		return type_name_simple(b, id);
	}
}

/* ---- values of any type, through duckdb_value ------------------------------- */

static duckdb_value vec_value(duckdb_vector v, duckdb_logical_type t, idx_t row);

/* Set by vec_value when a text inside the value holds a NUL: DuckDB's text
 * of a nested value is a C string, cut at it ("[a" for ['a\0b', 'c']). */
static _Thread_local bool g_nul_inside;

static duckdb_hugeint to_hugeint(int64_t x)
{
	duckdb_hugeint h;
	h.lower = (uint64_t)x;
	h.upper = x < 0 ? -1 : 0;
	return h;
}

static duckdb_value list_value(duckdb_vector child, duckdb_logical_type ct, idx_t off, idx_t len,
                               int kind)
{
	duckdb_value *vals = calloc(len ? len : 1, sizeof(*vals));
	duckdb_value res = NULL;
	if (!vals)
		return NULL;
	for (idx_t i = 0; i < len; i++)
		vals[i] = vec_value(child, ct, off + i);
	if (kind == 0)
		res = duckdb_create_list_value(ct, vals, len);
	else
		res = duckdb_create_array_value(ct, vals, len);
	for (idx_t i = 0; i < len; i++)
		duckdb_destroy_value(&vals[i]);
	free(vals);
	return res;
}

static duckdb_value vec_value(duckdb_vector v, duckdb_logical_type t, idx_t row)
{
	uint64_t *validity = duckdb_vector_get_validity(v);
	void *data = duckdb_vector_get_data(v);
	duckdb_type id = duckdb_get_type_id(t);
	if (validity && !duckdb_validity_row_is_valid(validity, row))
		return duckdb_create_null_value();
	switch (id) {
	case DUCKDB_TYPE_BOOLEAN: return duckdb_create_bool(((bool *)data)[row]);
	case DUCKDB_TYPE_TINYINT: return duckdb_create_int8(((int8_t *)data)[row]);
	case DUCKDB_TYPE_SMALLINT: return duckdb_create_int16(((int16_t *)data)[row]);
	case DUCKDB_TYPE_INTEGER: return duckdb_create_int32(((int32_t *)data)[row]);
	case DUCKDB_TYPE_BIGINT: return duckdb_create_int64(((int64_t *)data)[row]);
	case DUCKDB_TYPE_UTINYINT: return duckdb_create_uint8(((uint8_t *)data)[row]);
	case DUCKDB_TYPE_USMALLINT: return duckdb_create_uint16(((uint16_t *)data)[row]);
	case DUCKDB_TYPE_UINTEGER: return duckdb_create_uint32(((uint32_t *)data)[row]);
	case DUCKDB_TYPE_UBIGINT: return duckdb_create_uint64(((uint64_t *)data)[row]);
	case DUCKDB_TYPE_HUGEINT: return duckdb_create_hugeint(((duckdb_hugeint *)data)[row]);
	case DUCKDB_TYPE_UHUGEINT: return duckdb_create_uhugeint(((duckdb_uhugeint *)data)[row]);
	case DUCKDB_TYPE_FLOAT: return duckdb_create_float(((float *)data)[row]);
	case DUCKDB_TYPE_DOUBLE: return duckdb_create_double(((double *)data)[row]);
	case DUCKDB_TYPE_DATE: return duckdb_create_date(((duckdb_date *)data)[row]);
	case DUCKDB_TYPE_TIME: return duckdb_create_time(((duckdb_time *)data)[row]);
	case DUCKDB_TYPE_TIME_NS: return duckdb_create_time_ns(((duckdb_time_ns *)data)[row]);
	case DUCKDB_TYPE_TIME_TZ: return duckdb_create_time_tz_value(((duckdb_time_tz *)data)[row]);
	case DUCKDB_TYPE_TIMESTAMP: return duckdb_create_timestamp(((duckdb_timestamp *)data)[row]);
	case DUCKDB_TYPE_TIMESTAMP_TZ: return duckdb_create_timestamp_tz(((duckdb_timestamp *)data)[row]);
	case DUCKDB_TYPE_TIMESTAMP_S: return duckdb_create_timestamp_s(((duckdb_timestamp_s *)data)[row]);
	case DUCKDB_TYPE_TIMESTAMP_MS: return duckdb_create_timestamp_ms(((duckdb_timestamp_ms *)data)[row]);
	case DUCKDB_TYPE_TIMESTAMP_NS: return duckdb_create_timestamp_ns(((duckdb_timestamp_ns *)data)[row]);
	case DUCKDB_TYPE_INTERVAL: return duckdb_create_interval(((duckdb_interval *)data)[row]);
	case DUCKDB_TYPE_VARCHAR: {
		duckdb_string_t *s = &((duckdb_string_t *)data)[row];
		if (memchr(duckdb_string_t_data(s), '\0', duckdb_string_t_length(*s)))
			g_nul_inside = true;
		return duckdb_create_varchar_length(duckdb_string_t_data(s), duckdb_string_t_length(*s));
	}
	case DUCKDB_TYPE_BLOB: {
		duckdb_string_t *s = &((duckdb_string_t *)data)[row];
		return duckdb_create_blob((const uint8_t *)duckdb_string_t_data(s), duckdb_string_t_length(*s));
	}
	case DUCKDB_TYPE_UUID: {
		/* stored as a hugeint with the top bit flipped (so it sorts) */
		duckdb_hugeint h = ((duckdb_hugeint *)data)[row];
		duckdb_uhugeint u;
		u.lower = h.lower;
		u.upper = (uint64_t)h.upper ^ (UINT64_C(1) << 63);
		return duckdb_create_uuid(u);
	}
	case DUCKDB_TYPE_DECIMAL: {
		duckdb_decimal d;
		d.width = duckdb_decimal_width(t);
		d.scale = duckdb_decimal_scale(t);
		switch (duckdb_decimal_internal_type(t)) {
		case DUCKDB_TYPE_SMALLINT: d.value = to_hugeint(((int16_t *)data)[row]); break;
		case DUCKDB_TYPE_INTEGER: d.value = to_hugeint(((int32_t *)data)[row]); break;
		case DUCKDB_TYPE_BIGINT: d.value = to_hugeint(((int64_t *)data)[row]); break;
		default: d.value = ((duckdb_hugeint *)data)[row]; break;
		}
		return duckdb_create_decimal(d);
	}
	case DUCKDB_TYPE_ENUM: {
		uint64_t idx;
		switch (duckdb_enum_internal_type(t)) {
		case DUCKDB_TYPE_UTINYINT: idx = ((uint8_t *)data)[row]; break;
		case DUCKDB_TYPE_USMALLINT: idx = ((uint16_t *)data)[row]; break;
		default: idx = ((uint32_t *)data)[row]; break;
		}
		return duckdb_create_enum_value(t, idx);
	}
	case DUCKDB_TYPE_LIST: {
		duckdb_list_entry e = ((duckdb_list_entry *)data)[row];
		duckdb_logical_type ct = duckdb_list_type_child_type(t);
		duckdb_value r = list_value(duckdb_list_vector_get_child(v), ct, e.offset, e.length, 0);
		duckdb_destroy_logical_type(&ct);
		return r;
	}
	case DUCKDB_TYPE_ARRAY: {
		idx_t size = duckdb_array_type_array_size(t);
		duckdb_logical_type ct = duckdb_array_type_child_type(t);
		duckdb_value r = list_value(duckdb_array_vector_get_child(v), ct, row * size, size, 1);
		duckdb_destroy_logical_type(&ct);
		return r;
	}
	case DUCKDB_TYPE_STRUCT: {
		idx_t n = duckdb_struct_type_child_count(t);
		duckdb_value *vals = calloc(n ? n : 1, sizeof(*vals)), r;
		if (!vals)
			return NULL;
		for (idx_t i = 0; i < n; i++) {
			duckdb_logical_type ct = duckdb_struct_type_child_type(t, i);
			vals[i] = vec_value(duckdb_struct_vector_get_child(v, i), ct, row);
			duckdb_destroy_logical_type(&ct);
		}
		r = duckdb_create_struct_value(t, vals);
		for (idx_t i = 0; i < n; i++)
			duckdb_destroy_value(&vals[i]);
		free(vals);
		return r;
	}
	case DUCKDB_TYPE_MAP: {
		duckdb_list_entry e = ((duckdb_list_entry *)data)[row];
		duckdb_vector entries = duckdb_list_vector_get_child(v);
		duckdb_logical_type kt = duckdb_map_type_key_type(t), vt = duckdb_map_type_value_type(t);
		duckdb_value *keys = calloc(e.length ? e.length : 1, sizeof(*keys));
		duckdb_value *vals = calloc(e.length ? e.length : 1, sizeof(*vals));
		duckdb_value r = NULL;
		if (keys && vals) {
			for (idx_t i = 0; i < e.length; i++) {
				keys[i] = vec_value(duckdb_struct_vector_get_child(entries, 0), kt, e.offset + i);
				vals[i] = vec_value(duckdb_struct_vector_get_child(entries, 1), vt, e.offset + i);
			}
			r = duckdb_create_map_value(t, keys, vals, e.length);
			for (idx_t i = 0; i < e.length; i++) {
				duckdb_destroy_value(&keys[i]);
				duckdb_destroy_value(&vals[i]);
			}
		}
		free(keys);
		free(vals);
		duckdb_destroy_logical_type(&kt);
		duckdb_destroy_logical_type(&vt);
		return r;
	}
	case DUCKDB_TYPE_UNION: {
		duckdb_vector tags = duckdb_struct_vector_get_child(v, 0);
		uint8_t tag = ((uint8_t *)duckdb_vector_get_data(tags))[row];
		duckdb_logical_type mt = duckdb_union_type_member_type(t, tag);
		duckdb_value m = vec_value(duckdb_struct_vector_get_child(v, (idx_t)tag + 1), mt, row);
		duckdb_value r = duckdb_create_union_value(t, tag, m);
		duckdb_destroy_value(&m);
		duckdb_destroy_logical_type(&mt);
		return r;
	}
	case DUCKDB_TYPE_BIT: {
		/* its bytes are duckdb_bit's: the padding count, then the bits */
		duckdb_string_t *s = &((duckdb_string_t *)data)[row];
		duckdb_bit b = {(uint8_t *)duckdb_string_t_data(s), duckdb_string_t_length(*s)};
		return duckdb_create_bit(b);
	}
	default: /* BIGNUM: refused before (has_unsupported) */
		return NULL;
	}
}

/* A type udr cannot turn into text (BIGNUM, alone or nested): the caller
 * refuses the column rather than show something else. */
static bool has_unsupported(duckdb_logical_type t)
{
	duckdb_type id = duckdb_get_type_id(t);
	duckdb_logical_type c;
	bool bad = false;
	switch (id) {
	case DUCKDB_TYPE_BIGNUM:
		return true;
	case DUCKDB_TYPE_LIST:
	case DUCKDB_TYPE_ARRAY:
		c = id == DUCKDB_TYPE_LIST ? duckdb_list_type_child_type(t) : duckdb_array_type_child_type(t);
		bad = has_unsupported(c);
		duckdb_destroy_logical_type(&c);
		return bad;
	case DUCKDB_TYPE_MAP:
		c = duckdb_map_type_key_type(t);
		bad = has_unsupported(c);
		duckdb_destroy_logical_type(&c);
		if (!bad) {
			c = duckdb_map_type_value_type(t);
			bad = has_unsupported(c);
			duckdb_destroy_logical_type(&c);
		}
		return bad;
	case DUCKDB_TYPE_STRUCT:
	case DUCKDB_TYPE_UNION:
		for (idx_t i = 0; !bad && i < (id == DUCKDB_TYPE_STRUCT ? duckdb_struct_type_child_count(t)
		                                                          : duckdb_union_type_member_count(t)); i++) {
			c = id == DUCKDB_TYPE_STRUCT ? duckdb_struct_type_child_type(t, i) : duckdb_union_type_member_type(t, i);
			bad = has_unsupported(c);
			duckdb_destroy_logical_type(&c);
		}
		return bad;
	default:
		return false;
	}
}

/* ---- building ---------------------------------------------------------------- */

static int kind_of(duckdb_type id)
{
	switch (id) {
	case DUCKDB_TYPE_BOOLEAN: return UDR_TYPE_BOOL;
	case DUCKDB_TYPE_TINYINT: case DUCKDB_TYPE_SMALLINT: case DUCKDB_TYPE_INTEGER:
	case DUCKDB_TYPE_BIGINT: case DUCKDB_TYPE_UTINYINT: case DUCKDB_TYPE_USMALLINT:
	case DUCKDB_TYPE_UINTEGER:
		return UDR_TYPE_INT64;
	case DUCKDB_TYPE_FLOAT: case DUCKDB_TYPE_DOUBLE: return UDR_TYPE_DOUBLE;
	case DUCKDB_TYPE_VARCHAR: return UDR_TYPE_TEXT;
	case DUCKDB_TYPE_BLOB: return UDR_TYPE_BLOB;
	default: return UDR_TYPE_OTHER;
	}
}

void udr_result_free(udr_result *r)
{
	if (!r)
		return;
	for (size_t c = 0; c < r->ncols; c++) {
		rcol *col = &r->cols[c];
		free(col->name);
		free(col->type_name);
		free(col->nulls);
		free(col->i64);
		free(col->f64);
		free(col->off);
		free(col->slen);
		udr__buf_free(&col->arena);
	}
	free(r->cols);
	free(r);
}

static int grow_rows(udr_result *r, size_t need)
{
	size_t cap = r->cap ? r->cap : 1024;
	while (cap < need)
		if (!udr__mul_ok(cap, 2, &cap))
			return udr__error_oom();
	if (cap == r->cap)
		return 0;
	for (size_t c = 0; c < r->ncols; c++) {
		rcol *col = &r->cols[c];
		void *p;
		size_t bytes;
		if (!(p = realloc(col->nulls, cap)))
			return udr__error_oom();
		col->nulls = p;
		if (col->kind == UDR_TYPE_BOOL || col->kind == UDR_TYPE_INT64) {
			if (!udr__mul_ok(cap, sizeof(int64_t), &bytes) || !(p = realloc(col->i64, bytes)))
				return udr__error_oom();
			col->i64 = p;
		} else if (col->kind == UDR_TYPE_DOUBLE) {
			if (!udr__mul_ok(cap, sizeof(double), &bytes) || !(p = realloc(col->f64, bytes)))
				return udr__error_oom();
			col->f64 = p;
		} else {
			if (!udr__mul_ok(cap, sizeof(size_t), &bytes) || !(p = realloc(col->off, bytes)))
				return udr__error_oom();
			col->off = p;
			if (!(p = realloc(col->slen, bytes)))
				return udr__error_oom();
			col->slen = p;
		}
	}
	r->cap = cap;
	return 0;
}

static int put_str(rcol *col, size_t row, const char *s, size_t len)
{
	int rc;
	col->off[row] = col->arena.len;
	col->slen[row] = len;
	if ((rc = udr__buf_put(&col->arena, s, len)) < 0)
		return rc;
	return udr__buf_put(&col->arena, "", 1); /* keep the NUL in the arena */
}

static int fill_column(rcol *col, duckdb_vector v, duckdb_logical_type t, size_t base, idx_t n)
{
	uint64_t *validity = duckdb_vector_get_validity(v);
	void *data = duckdb_vector_get_data(v);
	int unsupported = -1; /* has_unsupported(t), looked at once */
	for (idx_t i = 0; i < n; i++) {
		size_t row = base + i;
		int rc = 0;
		if (validity && !duckdb_validity_row_is_valid(validity, i)) {
			col->nulls[row] = 1;
			if (col->off) {
				col->off[row] = 0;
				col->slen[row] = 0;
			}
			continue;
		}
		col->nulls[row] = 0;
		switch (col->dtype) {
		case DUCKDB_TYPE_BOOLEAN: col->i64[row] = ((bool *)data)[i] ? 1 : 0; break;
		case DUCKDB_TYPE_TINYINT: col->i64[row] = ((int8_t *)data)[i]; break;
		case DUCKDB_TYPE_SMALLINT: col->i64[row] = ((int16_t *)data)[i]; break;
		case DUCKDB_TYPE_INTEGER: col->i64[row] = ((int32_t *)data)[i]; break;
		case DUCKDB_TYPE_BIGINT: col->i64[row] = ((int64_t *)data)[i]; break;
		case DUCKDB_TYPE_UTINYINT: col->i64[row] = ((uint8_t *)data)[i]; break;
		case DUCKDB_TYPE_USMALLINT: col->i64[row] = ((uint16_t *)data)[i]; break;
		case DUCKDB_TYPE_UINTEGER: col->i64[row] = ((uint32_t *)data)[i]; break;
		case DUCKDB_TYPE_FLOAT: col->f64[row] = ((float *)data)[i]; break;
		case DUCKDB_TYPE_DOUBLE: col->f64[row] = ((double *)data)[i]; break;
		case DUCKDB_TYPE_VARCHAR:
		case DUCKDB_TYPE_BLOB: {
			duckdb_string_t *s = &((duckdb_string_t *)data)[i];
			rc = put_str(col, row, duckdb_string_t_data(s), duckdb_string_t_length(*s));
			break;
		}
		case DUCKDB_TYPE_TIMESTAMP_MS:
			/* Always 3 fractional digits ("2026-11-30 10:00:00.100") so that
			 * udr_log.time and udr_tables.created line up; DuckDB's own text
			 * drops trailing zeros.  Years 0-9999 only: infinity and the
			 * like take DuckDB's text. */
			if (((int64_t *)data)[i] >= INT64_C(-62167219200000) &&
			    ((int64_t *)data)[i] <= INT64_C(253402300799999)) {
				char text[40];
				udr__format_time(text, sizeof(text), ((int64_t *)data)[i]);
				text[10] = ' ';
				text[23] = '\0';
				rc = put_str(col, row, text, 23);
				break;
			}
			/* fall through */
		default: {
			duckdb_value val;
			char *text;
			if (unsupported < 0)
				unsupported = has_unsupported(t);
			if (unsupported) {
				rc = udr__error_set(UDR_EINVAL, "column '%s' is of a type udr cannot show (BIGNUM): "
				                    "CAST it to VARCHAR in the query", col->name);
				break;
			}
			g_nul_inside = false;
			val = vec_value(v, t, i);
			text = val ? duckdb_get_varchar(val) : NULL;
			if (!val || !text)
				rc = udr__error_set(UDR_ENOMEM, "cannot convert a value of column '%s' to text",
				                    col->name);
			else if (g_nul_inside)
				rc = udr__error_set(UDR_EINVAL,
				                    "column '%s': a text inside a value of it holds a NUL character, "
				                    "which its text would cut off: replace it in the query "
				                    "(a list: list_transform(col, x -> replace(x, chr(0), ' ')))",
				                    col->name);
			else
				rc = put_str(col, row, text, strlen(text));
			duckdb_free(text);
			duckdb_destroy_value(&val);
			break;
		}
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A result with the columns of res and no rows; types[c] are the columns'
 * logical types (destroyed by udr__result_types_free). */
int udr__result_columns(udr_result **out, duckdb_logical_type **types_out, void *ptr)
{
	duckdb_result *res = ptr;
	udr_result *r = calloc(1, sizeof(*r));
	duckdb_logical_type *types = NULL;
	int rc = 0;
	if (!r)
		return udr__error_oom();
	r->ncols = duckdb_column_count(res);
	if (!(r->cols = calloc(r->ncols ? r->ncols : 1, sizeof(*r->cols))) ||
	    !(types = calloc(r->ncols ? r->ncols : 1, sizeof(*types)))) {
		free(r->cols);
		free(r);
		return udr__error_oom();
	}
	for (size_t c = 0; c < r->ncols && rc == 0; c++) {
		rcol *col = &r->cols[c];
		const char *nm = duckdb_column_name(res, c);
		udr__buf tn = {0};
		types[c] = duckdb_column_logical_type(res, c);
		col->dtype = duckdb_get_type_id(types[c]);
		col->kind = kind_of(col->dtype);
		if ((rc = type_name(&tn, types[c])) < 0)
			break;
		col->type_name = tn.ptr ? tn.ptr : strdup("");
		if (!(col->name = strdup(nm ? nm : "")) || !col->type_name)
			rc = udr__error_oom();
	}
	if (rc < 0) {
		udr__result_types_free(types, r->ncols);
		udr_result_free(r);
		return rc;
	}
	*out = r;
	*types_out = types;
	return 0;
}

/* A result with the columns of r (NULL: none) and no rows. */
int udr__result_columns_of(udr_result **out, const udr_result *r)
{
	udr_result *c = calloc(1, sizeof(*c));
	size_t n = r ? r->ncols : 0;
	if (!c || !(c->cols = calloc(n ? n : 1, sizeof(*c->cols)))) {
		free(c);
		return udr__error_oom();
	}
	c->ncols = n;
	for (size_t i = 0; i < n; i++) {
		rcol *col = &c->cols[i];
		col->kind = r->cols[i].kind;
		col->dtype = r->cols[i].dtype;
		if (!(col->name = strdup(r->cols[i].name)) || !(col->type_name = strdup(r->cols[i].type_name))) {
			udr_result_free(c);
			return udr__error_oom();
		}
	}
	*out = c;
	return 0;
}

void udr__result_types_free(duckdb_logical_type *types, size_t n)
{
	for (size_t c = 0; types && c < n; c++)
		if (types[c])
			duckdb_destroy_logical_type(&types[c]);
	free(types);
}

/* Append the rows of a chunk to r. */
int udr__result_append(udr_result *r, duckdb_data_chunk chunk, duckdb_logical_type *types)
{
	idx_t n = duckdb_data_chunk_get_size(chunk);
	size_t need;
	int rc = 0;
	if (!udr__add_ok(r->nrows, n, &need))
		return udr__error_oom();
	if ((rc = grow_rows(r, need)) < 0)
		return rc;
	for (size_t c = 0; rc == 0 && c < r->ncols; c++)
		rc = fill_column(&r->cols[c], duckdb_data_chunk_get_vector(chunk, c), types[c], r->nrows, n);
	if (rc == 0)
		r->nrows = need;
	return rc;
}

/* Drop the rows of r, keeping its columns and its memory for the next batch. */
void udr__result_clear(udr_result *r)
{
	r->nrows = 0;
	for (size_t c = 0; c < r->ncols; c++)
		r->cols[c].arena.len = 0;
}

int udr__q_columns(char ***names, char ***types, size_t *n, udr_query *q, const char *sql, const udr_value *params,
                   size_t nparams, int kind)
{
	duckdb_prepared_statement st = NULL;
	char **nm = NULL, **ty = NULL;
	idx_t cols = 0;
	int rc;
	*names = *types = NULL;
	*n = 0;
	udr__q_settle(q);
	if ((rc = udr__q_prepare(&st, q, sql, params, nparams, kind)) < 0) {
		q->scan_rc = 0;
		udr__q_cache_release(q);
		return rc;
	}
	cols = duckdb_prepared_statement_column_count(st);
	if (!(nm = calloc(cols ? cols : 1, sizeof(*nm))) || !(ty = calloc(cols ? cols : 1, sizeof(*ty))))
		rc = udr__error_oom();
	for (idx_t i = 0; rc == 0 && i < cols; i++) {
		const char *name = duckdb_prepared_statement_column_name(st, i);
		duckdb_logical_type t = duckdb_prepared_statement_column_logical_type(st, i);
		udr__buf b = {0};
		if (!t)
			rc = udr__error_set(UDR_ERROR, "DuckDB did not give the type of column %llu", (unsigned long long)i);
		if (rc == 0)
			rc = type_name(&b, t);
		if (rc == 0 && (!(nm[i] = strdup(name ? name : "")) || !b.ptr)) {
			rc = udr__error_oom();
		} else if (rc == 0) {
			ty[i] = b.ptr;
			b.ptr = NULL;
		}
		udr__buf_free(&b);
		duckdb_free((void *)name);
		if (t)
			duckdb_destroy_logical_type(&t);
	}
	duckdb_destroy_prepare(&st);
	q->scan_rc = 0;
	udr__q_cache_release(q); /* bound, not run: no part is read now */
	if (rc == 0) {
		*names = nm;
		*types = ty;
		*n = (size_t)cols;
	} else {
		if (nm)
			udr_strarray_free(nm, cols);
		if (ty)
			udr_strarray_free(ty, cols);
	}
	return rc;
}

int udr__result_from_duckdb(udr_result **out, void *ptr)
{
	duckdb_result *res = ptr;
	udr_result *r = NULL;
	duckdb_logical_type *types = NULL;
	duckdb_data_chunk chunk;
	int rc = udr__result_columns(&r, &types, res);
	while (rc == 0 && (chunk = duckdb_fetch_chunk(*res)) != NULL) {
		rc = udr__result_append(r, chunk, types);
		duckdb_destroy_data_chunk(&chunk);
	}
	if (r)
		udr__result_types_free(types, r->ncols);
	duckdb_destroy_result(res);
	if (rc < 0) {
		udr_result_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* ---- accessors ----------------------------------------------------------------- */

size_t udr_result_column_count(const udr_result *r)
{
	return r ? r->ncols : 0;
}

size_t udr_result_row_count(const udr_result *r)
{
	return r ? r->nrows : 0;
}

const char *udr_result_column_name(const udr_result *r, size_t col)
{
	return r && col < r->ncols ? r->cols[col].name : NULL;
}

int udr_result_column_type(const udr_result *r, size_t col)
{
	return r && col < r->ncols ? r->cols[col].kind : -1;
}

const char *udr_result_column_type_name(const udr_result *r, size_t col)
{
	return r && col < r->ncols ? r->cols[col].type_name : NULL;
}

static int range_error(const udr_result *r, size_t row, size_t col)
{
	if (!r)
		return udr__error_set(UDR_EINVAL, "result is NULL");
	return udr__error_set(UDR_EINVAL, "cell (%zu, %zu) out of range (%zu rows, %zu columns)", row,
	                      col, r->nrows, r->ncols);
}

int udr_result_is_null(const udr_result *r, size_t row, size_t col)
{
	if (!r || row >= r->nrows || col >= r->ncols)
		return range_error(r, row, col);
	return r->cols[col].nulls[row] ? 1 : 0;
}

int udr_result_get(udr_value *out, const udr_result *r, size_t row, size_t col)
{
	const rcol *c;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_result_get");
	memset(out, 0, sizeof(*out));
	if (!r || row >= r->nrows || col >= r->ncols)
		return range_error(r, row, col);
	c = &r->cols[col];
	if (c->nulls[row]) {
		out->type = UDR_TYPE_NULL;
		return 0;
	}
	out->type = c->kind;
	switch (c->kind) {
	case UDR_TYPE_BOOL:
	case UDR_TYPE_INT64: out->i64 = c->i64[row]; break;
	case UDR_TYPE_DOUBLE: out->f64 = c->f64[row]; break;
	default:
		out->str = c->arena.ptr + c->off[row];
		out->len = c->slen[row];
		break;
	}
	return 0;
}

/* Text of a cell into b (appended); *is_null set for NULL. */
static int cell_text(udr__buf *b, const udr_result *r, size_t row, size_t col, bool *is_null)
{
	const rcol *c = &r->cols[col];
	*is_null = c->nulls[row] != 0;
	if (*is_null)
		return 0;
	switch (c->kind) {
	case UDR_TYPE_BOOL: return udr__buf_puts(b, c->i64[row] ? "true" : "false");
	case UDR_TYPE_INT64: return udr__buf_printf(b, "%" PRId64, c->i64[row]);
	case UDR_TYPE_DOUBLE: {
		duckdb_value v = c->dtype == DUCKDB_TYPE_FLOAT ? duckdb_create_float((float)c->f64[row])
		                                               : duckdb_create_double(c->f64[row]);
		char *s = duckdb_get_varchar(v);
		int rc = s ? udr__buf_puts(b, s) : udr__buf_printf(b, "%.17g", c->f64[row]);
		duckdb_free(s);
		duckdb_destroy_value(&v);
		return rc;
	}
	case UDR_TYPE_BLOB: {
		duckdb_value v = duckdb_create_blob((const uint8_t *)c->arena.ptr + c->off[row], c->slen[row]);
		char *s = duckdb_get_varchar(v);
		int rc = s ? udr__buf_puts(b, s) : udr__error_oom();
		duckdb_free(s);
		duckdb_destroy_value(&v);
		return rc;
	}
	default: return udr__buf_put(b, c->arena.ptr + c->off[row], c->slen[row]);
	}
}

int udr_result_text(char **out, size_t *len, const udr_result *r, size_t row, size_t col)
{
	udr__buf b = {0};
	bool is_null;
	int rc;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_result_text");
	*out = NULL;
	if (len)
		*len = 0;
	if (!r || row >= r->nrows || col >= r->ncols)
		return range_error(r, row, col);
	if ((rc = cell_text(&b, r, row, col, &is_null)) < 0) {
		udr__buf_free(&b);
		return rc;
	}
	if (is_null)
		return 0;
	if (!b.ptr && !(b.ptr = calloc(1, 1)))
		return udr__error_oom();
	*out = b.ptr;
	if (len)
		*len = b.len;
	return 0;
}

/* ---- renderers ------------------------------------------------------------------ */

typedef struct sink {
	udr__buf buf;
	int fd;           /* -1: keep everything in buf */
	bool epipe;       /* the reader of the pipe went away */
} sink;

/*
 * write() with SIGPIPE blocked in this thread: a pipe whose reader went
 * away is EPIPE (the caller stops quietly), not a signal that kills the
 * program (a library must not: query.h promises UDR_EIO with EPIPE).  A
 * SIGPIPE this write raised is taken from the pending set; one pending
 * before it is left for the program.
 */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t w;
	int err;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	w = write(fd, p, n);
	err = errno;
	if (w < 0 && err == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return w;
}

static int sink_flush(sink *s, bool force)
{
	size_t done = 0;
	if (s->fd < 0 || (!force && s->buf.len < (64u << 10)))
		return 0;
	while (done < s->buf.len) {
		ssize_t w = write_nosigpipe(s->fd, s->buf.ptr + done, s->buf.len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			s->epipe = errno == EPIPE;
			return udr__error_io(errno, "cannot write the query result");
		}
		done += (size_t)w;
	}
	s->buf.len = 0;
	return 0;
}

/* Display width of UTF-8 text (code points; good enough for aligned output). */
static size_t utf8_width(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

#define CELL_MAX_WIDTH 80

/* The text shown in a table cell: control characters escaped, truncated. */
static int display_text(udr__buf *out, const udr_result *r, size_t row, size_t col)
{
	udr__buf t = {0};
	bool is_null;
	size_t w = 0;
	int rc = cell_text(&t, r, row, col, &is_null);
	out->len = 0;
	if (rc == 0 && is_null)
		rc = udr__buf_puts(out, "NULL");
	for (size_t i = 0; rc == 0 && !is_null && i < t.len; i++) {
		unsigned char ch = (unsigned char)t.ptr[i];
		if ((ch & 0xC0) != 0x80 && ++w > CELL_MAX_WIDTH) {
			rc = udr__buf_puts(out, "…");
			break;
		}
		if (ch == '\n')
			rc = udr__buf_puts(out, "\\n");
		else if (ch == '\t')
			rc = udr__buf_puts(out, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			rc = udr__buf_printf(out, "\\x%02x", ch);
		else
			rc = udr__buf_put(out, &t.ptr[i], 1);
	}
	if (rc == 0 && !out->ptr)
		rc = udr__buf_puts(out, "");
	udr__buf_free(&t);
	return rc;
}

/* Numbers that are not int64/double (UBIGINT, HUGEINT, DECIMAL): their
 * text is a valid JSON number and they align right. */
static bool numeric_other(const rcol *c)
{
	return c->kind == UDR_TYPE_OTHER &&
	       (c->dtype == DUCKDB_TYPE_UBIGINT || c->dtype == DUCKDB_TYPE_HUGEINT ||
	        c->dtype == DUCKDB_TYPE_UHUGEINT || c->dtype == DUCKDB_TYPE_DECIMAL);
}

static bool right_aligned(const rcol *c)
{
	return c->kind == UDR_TYPE_INT64 || c->kind == UDR_TYPE_DOUBLE || numeric_other(c);
}

static int pad(udr__buf *b, size_t n)
{
	int rc = 0;
	while (rc == 0 && n--)
		rc = udr__buf_put(b, " ", 1);
	return rc;
}

/*
 * Output in batches.  A renderer writes the header before the first batch
 * (or at the end when there is none), each batch's rows, then the footer.
 * The aligned table's column widths come from the header and the rows seen
 * so far: a whole result is measured before anything is written (all rows
 * align); a stream is measured batch by batch, so a batch with a wider
 * value widens that column from that batch on (docs/QUERY.md).
 */
typedef struct renderer {
	int format;
	const udr_result *cols; /* names and kinds (any batch of the result) */
	size_t *width;          /* table: column widths so far */
	uint64_t rows;          /* rows written */
	bool started;           /* header written */
	udr__buf cell;
} renderer;

static int renderer_init(renderer *g, const udr_result *cols, int format)
{
	memset(g, 0, sizeof(*g));
	if (format < UDR_OUTPUT_TABLE || format > UDR_OUTPUT_NDJSON)
		return udr__error_set(UDR_EINVAL, "unknown output format %d", format);
	g->format = format;
	g->cols = cols;
	/* a JSON object's keys are the column names: one named twice would be
	 * a key twice, and a reader keeps one of the two values */
	for (size_t c = 0; (format == UDR_OUTPUT_JSON || format == UDR_OUTPUT_NDJSON) && c < cols->ncols; c++)
		for (size_t k = 0; k < c; k++)
			if (strcmp(cols->cols[k].name, cols->cols[c].name) == 0) {
				char qn[256];
				udr__quote(qn, sizeof(qn), cols->cols[c].name);
				return udr__error_set(UDR_EINVAL,
				                      "the result has two columns named '%s': JSON needs distinct names "
				                      "(name them apart with AS)",
				                      qn);
			}
	if (format == UDR_OUTPUT_TABLE) {
		if (!(g->width = calloc(cols->ncols ? cols->ncols : 1, sizeof(*g->width))))
			return udr__error_oom();
		for (size_t c = 0; c < cols->ncols; c++) {
			g->width[c] = utf8_width(cols->cols[c].name, strlen(cols->cols[c].name));
			if (g->width[c] > CELL_MAX_WIDTH)
				g->width[c] = CELL_MAX_WIDTH + 1;
		}
	}
	return 0;
}

static void renderer_release(renderer *g)
{
	free(g->width);
	udr__buf_free(&g->cell);
}

/* Widen the table's columns for the rows of r. */
static int table_measure(renderer *g, const udr_result *r)
{
	int rc = 0;
	for (size_t row = 0; rc == 0 && row < r->nrows; row++)
		for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
			size_t w;
			if ((rc = display_text(&g->cell, r, row, c)) < 0)
				break;
			w = utf8_width(g->cell.ptr, g->cell.len);
			if (w > g->width[c])
				g->width[c] = w;
		}
	return rc;
}

static int table_header(sink *s, renderer *g)
{
	const udr_result *r = g->cols;
	int rc = 0;
	for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
		const char *nm = r->cols[c].name;
		size_t w = utf8_width(nm, strlen(nm));
		rc = udr__buf_puts(&s->buf, c ? " | " : "");
		if (rc == 0)
			rc = udr__buf_puts(&s->buf, nm);
		if (rc == 0 && c + 1 < r->ncols)
			rc = pad(&s->buf, g->width[c] > w ? g->width[c] - w : 0);
	}
	if (rc == 0)
		rc = udr__buf_puts(&s->buf, "\n");
	for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
		rc = udr__buf_puts(&s->buf, c ? "-+-" : "");
		for (size_t k = 0; rc == 0 && k < g->width[c]; k++)
			rc = udr__buf_put(&s->buf, "-", 1);
	}
	if (rc == 0 && r->ncols)
		rc = udr__buf_puts(&s->buf, "\n");
	return rc;
}

static int table_rows(sink *s, renderer *g, const udr_result *r)
{
	udr__buf *cell = &g->cell;
	int rc = 0;
	for (size_t row = 0; rc == 0 && row < r->nrows; row++) {
		for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
			size_t w;
			if ((rc = display_text(cell, r, row, c)) < 0)
				break;
			w = utf8_width(cell->ptr, cell->len);
			rc = udr__buf_puts(&s->buf, c ? " | " : "");
			if (rc == 0 && right_aligned(&r->cols[c]))
				rc = pad(&s->buf, g->width[c] > w ? g->width[c] - w : 0);
			if (rc == 0)
				rc = udr__buf_put(&s->buf, cell->ptr, cell->len);
			if (rc == 0 && !right_aligned(&r->cols[c]) && c + 1 < r->ncols)
				rc = pad(&s->buf, g->width[c] > w ? g->width[c] - w : 0);
		}
		if (rc == 0)
			rc = udr__buf_puts(&s->buf, "\n");
		if (rc == 0)
			rc = sink_flush(s, false);
	}
	return rc;
}

static int csv_field(udr__buf *b, const char *s, size_t n)
{
	bool quote = false;
	int rc = 0;
	for (size_t i = 0; i < n && !quote; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			quote = true;
	if (!quote)
		return udr__buf_put(b, s, n);
	rc = udr__buf_put(b, "\"", 1);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = s[i] == '"' ? udr__buf_put(b, "\"\"", 2) : udr__buf_put(b, &s[i], 1);
	return rc ? rc : udr__buf_put(b, "\"", 1);
}

static int csv_header(sink *s, const udr_result *r)
{
	int rc = 0;
	for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
		if (c)
			rc = udr__buf_put(&s->buf, ",", 1);
		if (rc == 0)
			rc = csv_field(&s->buf, r->cols[c].name, strlen(r->cols[c].name));
	}
	return rc ? rc : udr__buf_puts(&s->buf, "\r\n");
}

static int csv_rows(sink *s, renderer *g, const udr_result *r)
{
	udr__buf *cell = &g->cell;
	int rc = 0;
	for (size_t row = 0; rc == 0 && row < r->nrows; row++) {
		for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
			bool is_null;
			cell->len = 0;
			if (c)
				rc = udr__buf_put(&s->buf, ",", 1);
			if (rc == 0)
				rc = cell_text(cell, r, row, c, &is_null);
			if (rc == 0 && !is_null) {
				/* an empty string must differ from NULL (an empty field) */
				rc = cell->len == 0 ? udr__buf_puts(&s->buf, "\"\"")
				                    : csv_field(&s->buf, cell->ptr, cell->len);
			}
		}
		if (rc == 0)
			rc = udr__buf_puts(&s->buf, "\r\n");
		if (rc == 0)
			rc = sink_flush(s, false);
	}
	return rc;
}

static int json_string(udr__buf *b, const char *s, size_t n)
{
	int rc = udr__buf_put(b, "\"", 1);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		switch (ch) {
		case '"': rc = udr__buf_puts(b, "\\\""); break;
		case '\\': rc = udr__buf_puts(b, "\\\\"); break;
		case '\n': rc = udr__buf_puts(b, "\\n"); break;
		case '\r': rc = udr__buf_puts(b, "\\r"); break;
		case '\t': rc = udr__buf_puts(b, "\\t"); break;
		default:
			rc = ch < 0x20 || ch == 0x7f ? udr__buf_printf(b, "\\u%04x", ch) : udr__buf_put(b, &s[i], 1);
		}
	}
	return rc ? rc : udr__buf_put(b, "\"", 1);
}

static int json_rows(sink *s, renderer *g, const udr_result *r)
{
	bool lines = g->format == UDR_OUTPUT_NDJSON;
	udr__buf *cell = &g->cell;
	int rc = 0;
	for (size_t row = 0; rc == 0 && row < r->nrows; row++) {
		if (!lines)
			rc = udr__buf_puts(&s->buf, g->rows + row ? ",\n" : "\n");
		if (rc == 0)
			rc = udr__buf_puts(&s->buf, "{");
		for (size_t c = 0; rc == 0 && c < r->ncols; c++) {
			const rcol *col = &r->cols[c];
			bool is_null;
			if (c)
				rc = udr__buf_puts(&s->buf, ", ");
			if (rc == 0)
				rc = json_string(&s->buf, col->name, strlen(col->name));
			if (rc == 0)
				rc = udr__buf_puts(&s->buf, ": ");
			if (rc != 0)
				break;
			cell->len = 0;
			if ((rc = cell_text(cell, r, row, c, &is_null)) < 0)
				break;
			if (is_null)
				rc = udr__buf_puts(&s->buf, "null");
			else if (col->kind == UDR_TYPE_BOOL || col->kind == UDR_TYPE_INT64 || numeric_other(col))
				rc = udr__buf_put(&s->buf, cell->ptr, cell->len);
			else if (col->kind == UDR_TYPE_DOUBLE)
				/* NaN and infinities as Python's json module and
				 * DuckDB's JSON writer (udr export) spell them: null
				 * would read back as SQL NULL, another value */
				rc = isfinite(col->f64[row]) ? udr__buf_put(&s->buf, cell->ptr, cell->len)
				     : udr__buf_puts(&s->buf, isnan(col->f64[row]) ? "NaN"
				                              : col->f64[row] > 0 ? "Infinity" : "-Infinity");
			else
				rc = json_string(&s->buf, cell->ptr, cell->len);
		}
		if (rc == 0)
			rc = udr__buf_puts(&s->buf, lines ? "}\n" : "}");
		if (rc == 0)
			rc = sink_flush(s, false);
	}
	return rc;
}

static int render_header(sink *s, renderer *g)
{
	g->started = true;
	switch (g->format) {
	case UDR_OUTPUT_TABLE: return table_header(s, g);
	case UDR_OUTPUT_CSV: return csv_header(s, g->cols);
	case UDR_OUTPUT_JSON: return udr__buf_puts(&s->buf, "[");
	default: return 0;
	}
}

/* The rows of one batch (the header first, before the first batch). */
static int render_batch(sink *s, renderer *g, const udr_result *r, bool measure)
{
	int rc = 0;
	if (g->format == UDR_OUTPUT_TABLE && measure)
		rc = table_measure(g, r);
	if (rc == 0 && !g->started)
		rc = render_header(s, g);
	if (rc < 0)
		return rc;
	switch (g->format) {
	case UDR_OUTPUT_TABLE: rc = table_rows(s, g, r); break;
	case UDR_OUTPUT_CSV: rc = csv_rows(s, g, r); break;
	default: rc = json_rows(s, g, r); break;
	}
	if (rc == 0)
		g->rows += r->nrows;
	return rc;
}

static int render_end(sink *s, renderer *g)
{
	int rc = g->started ? 0 : render_header(s, g);
	if (rc < 0)
		return rc;
	switch (g->format) {
	case UDR_OUTPUT_TABLE:
		return udr__buf_printf(&s->buf, "(%" PRIu64 " row%s)\n", g->rows, g->rows == 1 ? "" : "s");
	case UDR_OUTPUT_JSON: return udr__buf_puts(&s->buf, g->rows ? "\n]\n" : "]\n");
	default: return 0;
	}
}

/* A whole result: measured first, so every row aligns. */
static int render(sink *s, const udr_result *r, int format)
{
	renderer g;
	int rc = renderer_init(&g, r, format);
	if (rc == 0 && format == UDR_OUTPUT_TABLE)
		rc = table_measure(&g, r);
	if (rc == 0)
		rc = render_batch(s, &g, r, false);
	if (rc == 0)
		rc = render_end(s, &g);
	renderer_release(&g);
	return rc;
}

int udr_result_format(char **out, size_t *len, const udr_result *r, int format)
{
	sink s = {{0}, -1, false};
	int rc;
	if (!out || !r)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_result_format");
	*out = NULL;
	if ((rc = render(&s, r, format)) == 0 && !s.buf.ptr)
		rc = udr__buf_puts(&s.buf, "");
	if (rc < 0) {
		udr__buf_free(&s.buf);
		return rc;
	}
	*out = s.buf.ptr;
	if (len)
		*len = s.buf.len;
	return 0;
}

int udr_result_write(const udr_result *r, int fd, int format)
{
	sink s = {{0}, fd, false};
	int rc;
	if (!r || fd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_result_write");
	rc = render(&s, r, format);
	if (rc == 0)
		rc = sink_flush(&s, true);
	udr__buf_free(&s.buf);
	if (s.epipe)
		errno = EPIPE; /* the caller may stop quietly */
	return rc;
}

int udr_stream_write(uint64_t *rows, udr_stream *st, int fd, int format)
{
	sink s = {{0}, fd, false};
	const udr_result *batch = NULL;
	renderer g;
	int rc;
	if (rows)
		*rows = 0;
	if (!st || fd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_stream_write");
	if ((rc = renderer_init(&g, udr_stream_columns(st), format)) < 0)
		return rc;
	while ((rc = udr_stream_next(&batch, st)) == 0 && batch) {
		if ((rc = render_batch(&s, &g, batch, true)) < 0)
			break;
	}
	if (rc == 0)
		rc = render_end(&s, &g);
	if (rc == 0)
		rc = sink_flush(&s, true);
	if (rows)
		*rows = g.rows;
	renderer_release(&g);
	udr__buf_free(&s.buf);
	if (s.epipe)
		errno = EPIPE; /* the caller may stop quietly */
	return rc;
}
