/*
 * rowmerge.c - three-way merges row by row (udr_query_merge): a table
 * changed on both sides of a merge is matched on its key across the base,
 * ours (the target) and theirs (the source) with one FULL OUTER JOIN in
 * DuckDB; each row's change is classified, and a table without conflicting
 * rows gets a new version written from ours as an SQL write is (write.c's
 * udr__w_stage_edit), committed with the rest of the merge in one record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "query/query_internal.h"
#include "catalog/catalog_internal.h"

/* What a row did, in "__udr rm".__udr_act. */
#define ACT_THEIRS 1   /* changed on their side only: take it */
#define ACT_SAME 2     /* changed the same way on both sides */
#define ACT_CELLS 3    /* different columns changed on each side (cell strictness) */
#define ACT_CONFLICT 4 /* changed differently on both sides */
#define ACT_OURS 5     /* changed on our side only: keep */

typedef struct cols {
	char **names, **types;
	size_t n;
} cols;

static void cols_free(cols *c)
{
	udr_strarray_free(c->names, c->n);
	udr_strarray_free(c->types, c->n);
	memset(c, 0, sizeof(*c));
}

static int vref(udr__buf *b, const char *table, uint64_t version)
{
	char ref[UDR_TABLE_NAME_MAX + 32];
	snprintf(ref, sizeof(ref), "%s@%" PRIu64, table, version);
	return udr__sql_ident(b, ref);
}

static int describe(cols *out, udr_query *q, const char *table, uint64_t version)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, "SELECT * FROM ");
	if (rc == 0)
		rc = vref(&b, table, version);
	if (rc == 0)
		rc = udr__q_describe(&out->names, &out->types, &out->n, q, b.ptr);
	udr__buf_free(&b);
	return rc;
}

static bool same_cols(const cols *a, const cols *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->names[i], b->names[i]) != 0 || strcmp(a->types[i], b->types[i]) != 0)
			return false;
	return true;
}

static bool is_key(const cols *key, const char *name)
{
	for (size_t i = 0; i < key->n; i++)
		if (strcmp(key->names[i], name) == 0)
			return true;
	return false;
}

/* Split "a,b" (options) or a JSON array of names (udr.key) into key->names. */
static int parse_key(cols *key, const char *spec, const char *table)
{
	size_t cap = 1;
	memset(key, 0, sizeof(*key));
	if (spec[0] == '[') {
		json_error_t jerr;
		json_t *a = json_loads(spec, 0, &jerr), *x;
		size_t i;
		int rc = 0;
		if (!a || !json_is_array(a) || json_array_size(a) == 0) {
			json_decref(a);
			return udr__error_set(UDR_ECORRUPT, "table %s: its udr.key is not a JSON array of names", table);
		}
		if (!(key->names = calloc(json_array_size(a), sizeof(char *))))
			rc = udr__error_oom();
		json_array_foreach(a, i, x) {
			if (rc == 0 && !json_is_string(x))
				rc = udr__error_set(UDR_ECORRUPT, "table %s: its udr.key is not a JSON array of names", table);
			if (rc == 0 && !(key->names[key->n++] = strdup(json_string_value(x))))
				rc = udr__error_oom();
		}
		json_decref(a);
		return rc;
	}
	for (const char *s = spec; *s; s++)
		cap += *s == ',';
	if (!(key->names = calloc(cap, sizeof(char *))))
		return udr__error_oom();
	for (const char *s = spec;;) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 0)
			return udr__error_set(UDR_EINVAL, "--key for table %s: an empty column name in '%s'", table, spec);
		if (!(key->names[key->n++] = strndup(s, len)))
			return udr__error_oom();
		if (!e)
			break;
		s = e + 1;
	}
	return 0;
}

static int strictness_for(const udr_rowmerge_options *o, const char *table)
{
	for (size_t i = 0; i < o->nstrict; i++)
		if (strcmp(o->strict_tables[i], table) == 0)
			return o->strictness[i];
	return UDR_STRICT_ROW;
}

static const char *key_given(const udr_rowmerge_options *o, const char *table)
{
	for (size_t i = 0; i < o->nkeys; i++)
		if (strcmp(o->key_tables[i], table) == 0)
			return o->keys[i];
	return NULL;
}

static int check_options(const udr_rowmerge_options *o)
{
	int rc;
	if (o->version != UDR_ROWMERGE_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown udr_rowmerge_options version %u", o->version);
	if ((o->nkeys && (!o->key_tables || !o->keys)) || (o->nstrict && (!o->strict_tables || !o->strictness)))
		return udr__error_set(UDR_EINVAL, "invalid argument: udr_rowmerge_options counts without arrays");
	for (size_t i = 0; i < o->nkeys; i++) {
		if (!o->key_tables[i] || !o->keys[i] || !o->keys[i][0])
			return udr__error_set(UDR_EINVAL, "invalid argument: a merge key without a table or columns");
		if ((rc = udr_table_name_check(o->key_tables[i])) < 0)
			return rc;
	}
	for (size_t i = 0; i < o->nstrict; i++) {
		if (!o->strict_tables[i])
			return udr__error_set(UDR_EINVAL, "invalid argument: a strictness without a table");
		if ((rc = udr_table_name_check(o->strict_tables[i])) < 0)
			return rc;
		if (o->strictness[i] < UDR_STRICT_ROW || o->strictness[i] > UDR_STRICT_CELL)
			return udr__error_set(UDR_EINVAL, "unknown strictness %d for table %s", o->strictness[i],
			                      o->strict_tables[i]);
	}
	return 0;
}

static int set_note(udr_merge_table *t, const char *a, const char *b)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s%s", a, b);
	free(t->note);
	return (t->note = strdup(buf)) ? 0 : udr__error_oom();
}

static int keys_equal(udr__buf *b, const char *x, const char *y, const cols *key, bool coalesce_bo);

/* "k1 IS NULL OR k2 IS NULL ..." (alias x. before each when x) */
static int any_null(udr__buf *b, const char *x, const cols *key)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__buf_puts(b, i ? " OR " : "");
		if (rc == 0 && x)
			rc = udr__buf_printf(b, "%s.", x);
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(b, " IS NULL");
	}
	return rc;
}

/* "k1, k2" (each prefixed with "x." when x) */
static int key_list(udr__buf *b, const char *x, const cols *key)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__buf_puts(b, i ? ", " : "");
		if (rc == 0 && x)
			rc = udr__buf_printf(b, "%s.", x);
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
	}
	return rc;
}

static int key_error(const char *table, uint64_t version, const cols *key, int64_t n)
{
	udr__buf k = {0};
	int rc = key_list(&k, NULL, key);
	if (rc == 0)
		rc = udr__error_set(UDR_EINVAL,
		                    "table %s version %" PRIu64 ": the key (%s) is NULL or not unique in %" PRId64
		                    " place%s, so rows cannot be matched on it; nothing merged",
		                    table, version, k.ptr, n, n == 1 ? "" : "s");
	udr__buf_free(&k);
	return rc;
}

/* One integer per version of versions (0: skipped) from the SELECT list
 * sql; a positive one is that version's error. */
static int per_version(udr_query *q, const char *sql, const char *table, const uint64_t *versions, size_t nv,
                       const cols *key)
{
	udr_result *r = NULL;
	int rc = udr__q_run(&r, q, sql, NULL, 0, UDR__RUN_ANY);
	for (size_t v = 0, col = 0; rc == 0 && v < nv; v++) {
		udr_value x;
		if (!versions[v])
			continue;
		if (udr_result_get(&x, r, 0, col++) == 0 && x.type == UDR_TYPE_INT64 && x.i64 > 0)
			rc = key_error(table, versions[v], key, x.i64);
	}
	udr_result_free(r);
	return rc;
}

/*
 * The key must be non-NULL in each version (0: skipped), or rows would be
 * matched wrongly: a filter the Parquet statistics (null counts) mostly
 * answer without reading the column.
 */
static int check_key_nulls(udr_query *q, const char *table, const uint64_t *versions, size_t nv, const cols *key)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, "SELECT ");
	for (size_t v = 0, n = 0; rc == 0 && v < nv; v++) {
		if (!versions[v])
			continue;
		rc = udr__buf_puts(&b, n++ ? ", (SELECT count(*)::BIGINT FROM " : "(SELECT count(*)::BIGINT FROM ");
		if (rc == 0)
			rc = vref(&b, table, versions[v]);
		if (rc == 0)
			rc = udr__buf_puts(&b, " WHERE ");
		if (rc == 0)
			rc = any_null(&b, NULL, key);
		if (rc == 0)
			rc = udr__buf_puts(&b, ")");
	}
	if (rc == 0)
		rc = per_version(q, b.ptr, table, versions, nv, key);
	udr__buf_free(&b);
	return rc;
}

/*
 * The key must be unique, where it matters: a key no side changed keeps
 * ours' rows as they are, but a changed key is applied, recorded or kept by
 * key, so it must name one row in each version (else a row would be lost
 * or doubled).  The changed keys ("__udr rm", small) once each there, and in
 * each version: a semi join of its key column against them, no aggregate
 * over the whole table.
 */
static int check_key_dups(udr_query *q, const char *table, const uint64_t *versions, size_t nv, const cols *key)
{
	udr__buf b = {0}, k = {0}, xk = {0};
	int rc = key_list(&k, NULL, key);
	if (rc == 0)
		rc = key_list(&xk, "x", key);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "SELECT (SELECT count(*)::BIGINT FROM (SELECT 1 FROM temp.main.\"__udr rm\" GROUP BY %s "
		                     "HAVING count(*) > 1))",
		                     k.ptr);
	for (size_t v = 0; rc == 0 && v < nv; v++) {
		if (!versions[v])
			continue;
		rc = udr__buf_puts(&b, ", (SELECT count(*)::BIGINT FROM (SELECT 1 FROM ");
		if (rc == 0)
			rc = vref(&b, table, versions[v]);
		if (rc == 0)
			rc = udr__buf_puts(&b, " x SEMI JOIN temp.main.\"__udr rm\" __udr_m ON ");
		if (rc == 0)
			rc = keys_equal(&b, "__udr_m", "x", key, false);
		if (rc == 0)
			rc = udr__buf_printf(&b, " GROUP BY %s HAVING count(*) > 1))", xk.ptr);
	}
	if (rc == 0) {
		/* column 0: the changed keys themselves (a key twice there: some
		 * version repeats it); named after the first version */
		udr_result *r = NULL;
		udr_value x;
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
		if (rc == 0 && udr_result_get(&x, r, 0, 0) == 0 && x.type == UDR_TYPE_INT64 && x.i64 > 0)
			rc = key_error(table, versions[0], key, x.i64);
		for (size_t v = 0, col = 1; rc == 0 && v < nv; v++) {
			if (!versions[v])
				continue;
			if (udr_result_get(&x, r, 0, col++) == 0 && x.type == UDR_TYPE_INT64 && x.i64 > 0)
				rc = key_error(table, versions[v], key, x.i64);
		}
		udr_result_free(r);
	}
	udr__buf_free(&b);
	udr__buf_free(&k);
	udr__buf_free(&xk);
	return rc;
}

/*
 * The slow path joins the versions on the key, so a key no side changed is
 * one whose rows are the same everywhere they meet: a key twice in theirs
 * and once in the base and ours (an identical row added) met as two equal
 * pairs and was no change, and the merge dropped theirs' second row with
 * exit 0.  A key that repeats in some version must repeat as often in each
 * (then its rows are identical and ours' are kept), else it is refused as
 * check_key_dups refuses a changed key that repeats: one aggregate over the
 * key columns of the versions.  (The fast path sees such a row by its place:
 * a row no version had there.)
 */
static int check_key_counts(udr_query *q, const char *table, const uint64_t *versions, size_t nv, const cols *key)
{
	udr__buf b = {0}, k = {0}, n = {0}, same = {0};
	size_t m = 0, prev = 0;
	int rc = key_list(&k, NULL, key);
	for (size_t v = 0; rc == 0 && v < nv; v++) {
		if (!versions[v])
			continue;
		rc = udr__buf_printf(&n, "%scount(*) FILTER (WHERE __udr_s = %zu) AS __udr_n%zu", m ? ", " : "", v, v);
		if (rc == 0 && m)
			rc = udr__buf_printf(&same, "%s__udr_n%zu = __udr_n%zu", m > 1 ? " AND " : "", v, prev);
		prev = v;
		m++;
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, "SELECT ");
	for (size_t v = 0, i = 0; rc == 0 && v < nv; v++)
		if (versions[v])
			rc = udr__buf_printf(&b, "%scount(*) FILTER (WHERE __udr_n%zu > 1)::BIGINT", i++ ? ", " : "", v);
	if (rc == 0)
		rc = udr__buf_printf(&b, " FROM (SELECT %s FROM (", n.ptr);
	for (size_t v = 0, i = 0; rc == 0 && v < nv; v++) {
		if (!versions[v])
			continue;
		rc = udr__buf_printf(&b, "%sSELECT %s, %zu AS __udr_s FROM ", i++ ? " UNION ALL " : "", k.ptr, v);
		if (rc == 0)
			rc = vref(&b, table, versions[v]);
	}
	if (rc == 0)
		rc = udr__buf_printf(&b, ") GROUP BY %s) WHERE NOT (%s)", k.ptr, m > 1 ? same.ptr : "true");
	if (rc == 0)
		rc = per_version(q, b.ptr, table, versions, nv, key);
	udr__buf_free(&b);
	udr__buf_free(&k);
	udr__buf_free(&n);
	udr__buf_free(&same);
	return rc;
}

/* "x.c IS NOT DISTINCT FROM y.c" exactly as SQL writes compare (write.c):
 * a float's sign counts, at zero and for NaN alike (a merge that saw NaN
 * and -NaN as the same dropped a side's change to it). */
static int col_same(udr__buf *b, const char *x, const char *y, const char *name, const char *type)
{
	return udr__w_same_col(b, x, y, name, type);
}

/* "A.c IS NOT DISTINCT FROM B.c AND ..." over the non-key columns ("true" when none). */
static int rows_same(udr__buf *b, const char *x, const char *y, const cols *c, const cols *key)
{
	int rc = udr__buf_puts(b, "(true");
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		if (is_key(key, c->names[i]))
			continue;
		rc = udr__buf_puts(b, " AND ");
		if (rc == 0)
			rc = col_same(b, x, y, c->names[i], c->types[i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, ")");
	return rc;
}

/* "COALESCE(__udr_xb.k, __udr_xo.k[, __udr_xt.k])": the key column k of
 * whichever side has the row */
static int coalesce_of(udr__buf *b, const char *k, bool theirs)
{
	int rc = udr__buf_puts(b, "COALESCE(__udr_xb.");
	if (rc == 0)
		rc = udr__sql_ident(b, k);
	if (rc == 0)
		rc = udr__buf_puts(b, ", __udr_xo.");
	if (rc == 0)
		rc = udr__sql_ident(b, k);
	if (rc == 0 && theirs)
		rc = udr__buf_puts(b, ", __udr_xt.");
	if (rc == 0 && theirs)
		rc = udr__sql_ident(b, k);
	return rc == 0 ? udr__buf_puts(b, ")") : rc;
}

/* "X.k1 = Y.k1 AND ..." (keys are never NULL: checked first, or by classify_fast) */
static int keys_equal(udr__buf *b, const char *x, const char *y, const cols *key, bool coalesce_bo)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__buf_puts(b, i ? " AND " : "");
		if (rc == 0 && coalesce_bo) {
			rc = coalesce_of(b, key->names[i], false);
		} else if (rc == 0) {
			rc = udr__buf_printf(b, "%s.", x);
			if (rc == 0)
				rc = udr__sql_ident(b, key->names[i]);
		}
		if (rc == 0)
			rc = udr__buf_printf(b, " = %s.", y);
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
	}
	return rc;
}

/* "(true AND (o.c = b.c OR t.c = b.c OR o.c = t.c) ...)" over the non-key
 * columns of the structs __udr_o, __udr_t, __udr_b: a row whose sides
 * changed different columns (cell strictness; "(false)" otherwise). */
static int cell_expr(udr__buf *cell, const cols *c, const cols *key, int strict)
{
	int rc = udr__buf_puts(cell, strict == UDR_STRICT_CELL ? "(true" : "(false");
	for (size_t i = 0; rc == 0 && strict == UDR_STRICT_CELL && i < c->n; i++) {
		if (is_key(key, c->names[i]))
			continue;
		rc = udr__buf_puts(cell, " AND (");
		if (rc == 0)
			rc = col_same(cell, "__udr_o", "__udr_b", c->names[i], c->types[i]);
		if (rc == 0)
			rc = udr__buf_puts(cell, " OR ");
		if (rc == 0)
			rc = col_same(cell, "__udr_t", "__udr_b", c->names[i], c->types[i]);
		if (rc == 0)
			rc = udr__buf_puts(cell, " OR ");
		if (rc == 0)
			rc = col_same(cell, "__udr_o", "__udr_t", c->names[i], c->types[i]);
		if (rc == 0)
			rc = udr__buf_puts(cell, ")");
	}
	return rc == 0 ? udr__buf_puts(cell, ")") : rc;
}

/* "COALESCE(__udr_xb.k, __udr_xo.k, __udr_xt.k) AS k, " per key column */
static int coalesced_keys(udr__buf *b, const cols *key)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = coalesce_of(b, key->names[i], true);
		if (rc == 0)
			rc = udr__buf_puts(b, " AS ");
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(b, ", ");
	}
	return rc;
}

/*
 * temp.main."__udr rm": one row per key changed on either side, with the
 * key columns, the three sides' rows as structs (__udr_b, __udr_o, __udr_t;
 * NULL where absent) and what the row did (__udr_act).
 */

/* "(ALIAS.K0 IS NOT NULL)": the side ALIAS has the row. */
static int present(udr__buf *b, const char *alias, const char *k0)
{
	int rc = udr__buf_printf(b, "(%s.", alias);
	if (rc == 0)
		rc = udr__sql_ident(b, k0);
	if (rc == 0)
		rc = udr__buf_puts(b, " IS NOT NULL)");
	return rc;
}

static int classify(udr_query *q, const udr_merge_table *mt, const cols *c, const cols *key, int strict)
{
	udr__buf b = {0}, ho = {0}, hb = {0}, ht = {0}, ob = {0}, tb = {0}, ot = {0}, cell = {0};
	const char *k0 = key->names[0];
	int rc = 0;
	/* presence of a side's row: its first key column (never NULL in a row) */
	rc = present(&hb, "__udr_xb", k0);
	if (rc == 0)
		rc = present(&ho, "__udr_xo", k0);
	if (rc == 0)
		rc = present(&ht, "__udr_xt", k0);
	/* over every row: ours and theirs against the base (column references) */
	if (rc == 0)
		rc = rows_same(&ob, "__udr_xo", "__udr_xb", c, key);
	if (rc == 0)
		rc = rows_same(&tb, "__udr_xt", "__udr_xb", c, key);
	/* over the changed rows only: ours against theirs (struct fields) */
	if (rc == 0)
		rc = rows_same(&ot, "__udr_o", "__udr_t", c, key);
	/* cells: each column unchanged on one side, or changed the same way */
	if (rc == 0)
		rc = cell_expr(&cell, c, key, strict);
	if (rc < 0)
		goto out;
	/* the changed rows, classified: what each side did to each key */
	rc = udr__buf_puts(&b, "CREATE TEMP TABLE \"__udr rm\" AS SELECT ");
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__sql_ident(&b, key->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&b, ", ");
	}
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "CASE WHEN __udr_hb THEN __udr_b END AS __udr_b, CASE WHEN __udr_ho THEN __udr_o END AS "
		                     "__udr_o, CASE WHEN __udr_ht THEN __udr_t END AS __udr_t, __udr_hb, __udr_ho, __udr_ht, "
		                     "CASE WHEN NOT __udr_tc THEN %d WHEN NOT __udr_oc THEN %d "
		                     "WHEN __udr_ho = __udr_ht AND (NOT __udr_ho OR %s) THEN %d "
		                     "WHEN __udr_hb AND __udr_ho AND __udr_ht AND %s THEN %d ELSE %d END AS __udr_act "
		                     "FROM (SELECT ",
		                     ACT_OURS, ACT_THEIRS, ot.ptr, ACT_SAME, cell.ptr, ACT_CELLS, ACT_CONFLICT);
	if (rc == 0)
		rc = coalesced_keys(&b, key);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "%s AS __udr_hb, %s AS __udr_ho, %s AS __udr_ht, "
		                     "(%s <> %s OR (%s AND %s AND NOT %s)) AS __udr_oc, "
		                     "(%s <> %s OR (%s AND %s AND NOT %s)) AS __udr_tc, "
		                     "__udr_xb AS __udr_b, __udr_xo AS __udr_o, __udr_xt AS __udr_t FROM ",
		                     hb.ptr, ho.ptr, ht.ptr, ho.ptr, hb.ptr, ho.ptr, hb.ptr, ob.ptr, ht.ptr, hb.ptr, ht.ptr,
		                     hb.ptr, tb.ptr);
	/* no base (the table was added on both sides): an empty base of ours' columns */
	if (rc == 0)
		rc = udr__buf_puts(&b, "(SELECT * FROM ");
	if (rc == 0)
		rc = vref(&b, mt->table, mt->base ? mt->base : mt->ours);
	if (rc == 0)
		rc = udr__buf_puts(&b, mt->base ? ") __udr_xb FULL JOIN (SELECT * FROM " : " LIMIT 0) __udr_xb FULL JOIN "
		                                                                          "(SELECT * FROM ");
	if (rc == 0)
		rc = vref(&b, mt->table, mt->ours);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") __udr_xo ON ");
	if (rc == 0)
		rc = keys_equal(&b, "__udr_xb", "__udr_xo", key, false);
	if (rc == 0)
		rc = udr__buf_puts(&b, " FULL JOIN (SELECT * FROM ");
	if (rc == 0)
		rc = vref(&b, mt->table, mt->theirs);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") __udr_xt ON ");
	if (rc == 0)
		rc = keys_equal(&b, NULL, "__udr_xt", key, true);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") WHERE __udr_oc OR __udr_tc");
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
out:
	udr__buf_free(&b);
	udr__buf_free(&ho);
	udr__buf_free(&hb);
	udr__buf_free(&ht);
	udr__buf_free(&ob);
	udr__buf_free(&tb);
	udr__buf_free(&ot);
	udr__buf_free(&cell);
	return rc;
}

/* ---- the fast path: rows matched by where they are stored ---------------------------------------- */

/* The parts of the three versions, each once: global ids for positions. */
typedef struct pdict {
	udr_hash *h;
	char **paths;
	size_t n, cap;
} pdict;

static void pdict_free(pdict *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->paths[i]);
	free(d->paths);
	free(d->h);
	memset(d, 0, sizeof(*d));
}

/* The global id of each part of version ver ("[g0, g1, ...]"), adding
 * them to d; 1 when a part is not Parquet (no positions: the slow path). */
static int part_ids(udr__buf *ids, pdict *d, udr_query *q, const char *table, uint64_t ver)
{
	udr_version *v = NULL;
	udr__view *vw;
	int rc = udr_catalog_get_version(&v, q->cat, table, ver);
	if (rc == 0)
		rc = udr__q_view_get(&vw, q, v);
	udr_version_free(v);
	if (rc < 0)
		return rc;
	if (vw->nparts == 0 || (size_t)vw->nparts > ((size_t)1 << 30))
		return 1;
	rc = udr__buf_puts(ids, "[");
	for (size_t i = 0; rc == 0 && i < vw->nparts; i++) {
		size_t g = 0;
		if (vw->fmt[i] != UDR__PART_PARQUET)
			return 1;
		for (size_t k = 0; k < i; k++)
			if (udr_hash_equal(&vw->parts[k], &vw->parts[i]))
				return 1; /* one part twice: a place would not name one row */
		while (g < d->n && !udr_hash_equal(&d->h[g], &vw->parts[i]))
			g++;
		if (g == d->n) {
			if (d->n == d->cap) {
				size_t cap = d->cap ? d->cap * 2 : 64;
				udr_hash *h = realloc(d->h, cap * sizeof(*h));
				char **p = h ? realloc(d->paths, cap * sizeof(*p)) : NULL;
				if (h)
					d->h = h;
				if (p)
					d->paths = p;
				if (!h || !p)
					return udr__error_oom();
				d->cap = cap;
			}
			d->h[g] = vw->parts[i];
			if (!(d->paths[g] = udr__q_read_path(vw->paths[i])))
				return udr__error_oom();
			d->n++;
		}
		rc = udr__buf_printf(ids, "%s%zu", i ? ", " : "", g);
	}
	return rc == 0 ? udr__buf_puts(ids, "]") : rc;
}

/* "(SELECT keys, position AS __udr_p FROM the version's rows)" */
static int positions_of(udr__buf *b, udr__buf *ids_out, pdict *d, udr_query *q, const char *table, uint64_t ver,
                        const cols *key)
{
	udr__buf ids = {0};
	udr_version *v = NULL;
	udr__view *vw;
	int rc = part_ids(&ids, d, q, table, ver);
	if (rc != 0) {
		udr__buf_free(&ids);
		return rc;
	}
	if (ids_out && (rc = udr__buf_puts(ids_out, ids.ptr)) < 0) {
		udr__buf_free(&ids);
		return rc;
	}
	rc = udr__buf_puts(b, "(SELECT ");
	if (rc == 0)
		rc = key_list(b, NULL, key);
	if (rc == 0)
		rc = udr__buf_printf(b, ", (list_extract(%s, (__udr_part + 1)::BIGINT)::BIGINT << 32) + __udr_row::BIGINT AS __udr_p "
		                        "FROM (",
		                     ids.ptr);
	/* the view again: q->views may have moved since part_ids */
	if (rc == 0 && (rc = udr_catalog_get_version(&v, q->cat, table, ver)) == 0)
		rc = udr__q_view_get(&vw, q, v);
	udr_version_free(v);
	if (rc == 0)
		rc = udr__dv_scan_sql(b, q, vw, true);
	if (rc == 0)
		rc = udr__buf_puts(b, "))");
	udr__buf_free(&ids);
	return rc;
}

/* "struct_pack(c1 := x.c1, ...)" */
static int row_struct(udr__buf *b, const char *x, const cols *c)
{
	int rc = udr__buf_puts(b, "struct_pack(");
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		rc = udr__buf_puts(b, i ? ", " : "");
		if (rc == 0)
			rc = udr__sql_ident(b, c->names[i]);
		if (rc == 0)
			rc = udr__buf_printf(b, " := %s.", x);
		if (rc == 0)
			rc = udr__sql_ident(b, c->names[i]);
	}
	return rc == 0 ? udr__buf_puts(b, ")") : rc;
}

/* temp.main."__udr rows": the stored rows at the positions "__udr need" lists,
 * read from the parts that hold them only. */
static int fetch_rows(udr_query *q, const pdict *d, const udr_merge_table *mt, const cols *c)
{
	udr_result *r = NULL;
	udr__buf b = {0}, ids = {0}, paths = {0};
	size_t n = 0;
	int rc = udr__q_run(&r, q, "SELECT DISTINCT (p >> 32)::BIGINT FROM temp.main.\"__udr need\" ORDER BY 1", NULL, 0,
	                    UDR__RUN_ANY);
	for (size_t i = 0; rc == 0 && i < udr_result_row_count(r); i++) {
		udr_value x;
		if ((rc = udr_result_get(&x, r, i, 0)) < 0)
			break;
		if (x.type != UDR_TYPE_INT64 || x.i64 < 0 || (uint64_t)x.i64 >= d->n) {
			rc = udr__error_set(UDR_ERROR, "table %s: a row position outside the merge's parts", mt->table);
			break;
		}
		rc = udr__buf_printf(&ids, "%s%" PRId64, n ? ", " : "", x.i64);
		if (rc == 0)
			rc = udr__buf_puts(&paths, n ? ", " : "");
		if (rc == 0)
			rc = udr__sql_read_path(&paths, d->paths[x.i64]);
		n++;
	}
	udr_result_free(r);
	if (rc == 0)
		rc = udr__buf_puts(&b, "CREATE TEMP TABLE \"__udr rows\" AS SELECT ");
	if (rc == 0 && n == 0) {
		rc = udr__buf_puts(&b, "0::BIGINT AS __udr_p, ");
		if (rc == 0)
			rc = row_struct(&b, "__udr_y", c);
		if (rc == 0)
			rc = udr__buf_puts(&b, " AS __udr_r FROM ");
		if (rc == 0)
			rc = vref(&b, mt->table, mt->ours);
		if (rc == 0)
			rc = udr__buf_puts(&b, " __udr_y LIMIT 0");
	} else if (rc == 0) {
		rc = udr__buf_printf(&b, "__udr_p, ");
		if (rc == 0)
			rc = row_struct(&b, "__udr_y", c);
		if (rc == 0)
			rc = udr__buf_printf(&b,
			                     " AS __udr_r FROM (SELECT (list_extract([%s], (file_index + 1)::BIGINT)::BIGINT << 32) + "
			                     "file_row_number::BIGINT AS __udr_p, * FROM read_parquet([%s])) __udr_y WHERE __udr_p "
			                     "IN (SELECT p FROM temp.main.\"__udr need\")",
			                     ids.ptr, paths.ptr);
	}
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	udr__buf_free(&ids);
	udr__buf_free(&paths);
	return rc;
}

static void drop_fast(udr_query *q)
{
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr ck\"");
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr need\"");
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr rows\"");
}

/*
 * classify's result from positions: the three versions joined on the key
 * with each row's place in the store (global part id, row) only, no other
 * column read.  A row at the same place is the same bytes: unchanged.  Only
 * the rows a side moved are then read, from the parts that hold them: their
 * side's rows for rows theirs changed, all three where both sides changed
 * (so that a row rewritten the same, by a compaction, is told from a
 * change).  1: not applicable (no base, parts that are not Parquet): the
 * caller takes the slow path.
 */
static int classify_fast(udr_query *q, const udr_merge_table *mt, const cols *c, const cols *key, int strict)
{
	udr__buf b = {0}, pb = {0}, po = {0}, pt = {0}, ot = {0}, oob = {0}, ttb = {0}, cell = {0}, oids = {0};
	pdict d = {0};
	int rc;
	if (!mt->base)
		return 1;
	/* a column named as the names this path gives places (or as DuckDB's
	 * virtual columns of read_parquet) would be read for them: a key
	 * column __udr_p took the rows' places, and the merge kept one row of
	 * NULLs.  Identifiers are case-insensitive. */
	for (size_t i = 0; i < c->n; i++)
		if (strncasecmp(c->names[i], "__udr_", 6) == 0 || strcasecmp(c->names[i], "file_index") == 0 ||
		    strcasecmp(c->names[i], "file_row_number") == 0)
			return 1;
	if ((rc = positions_of(&pb, NULL, &d, q, mt->table, mt->base, key)) != 0 ||
	    (rc = positions_of(&po, &oids, &d, q, mt->table, mt->ours, key)) != 0 ||
	    (rc = positions_of(&pt, NULL, &d, q, mt->table, mt->theirs, key)) != 0)
		goto out;
	drop_fast(q);
	/* 1. the keys a side moved */
	rc = udr__buf_puts(&b, "CREATE TEMP TABLE \"__udr ck\" AS SELECT ");
	if (rc == 0)
		rc = coalesced_keys(&b, key);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "__udr_xb.__udr_p AS __udr_pb, __udr_xo.__udr_p AS __udr_po, __udr_xt.__udr_p AS __udr_pt "
		                     "FROM %s __udr_xb FULL JOIN %s __udr_xo ON ",
		                     pb.ptr, po.ptr);
	if (rc == 0)
		rc = keys_equal(&b, "__udr_xb", "__udr_xo", key, false);
	if (rc == 0)
		rc = udr__buf_printf(&b, " FULL JOIN %s __udr_xt ON ", pt.ptr);
	if (rc == 0)
		rc = keys_equal(&b, NULL, "__udr_xt", key, true);
	if (rc == 0)
		rc = udr__buf_puts(&b, " WHERE __udr_xb.__udr_p IS DISTINCT FROM __udr_xo.__udr_p OR __udr_xb.__udr_p IS "
		                       "DISTINCT FROM __udr_xt.__udr_p");
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	/* a NULL key matches nothing, so its row is always one a side "moved":
	 * checked here, per version, instead of a scan of each */
	if (rc == 0) {
		uint64_t vers[3] = {mt->ours, mt->theirs, mt->base};
		udr__buf nb = {0}, nsql = {0};
		rc = any_null(&nb, NULL, key);
		if (rc == 0)
			rc = udr__buf_printf(&nsql,
			                     "SELECT count(*) FILTER (WHERE (%s) AND __udr_po IS NOT NULL)::BIGINT, count(*) FILTER "
			                     "(WHERE (%s) AND __udr_pt IS NOT NULL)::BIGINT, count(*) FILTER (WHERE (%s) AND "
			                     "__udr_pb IS NOT NULL)::BIGINT FROM temp.main.\"__udr ck\"",
			                     nb.ptr, nb.ptr, nb.ptr);
		if (rc == 0)
			rc = per_version(q, nsql.ptr, mt->table, vers, 3, key);
		udr__buf_free(&nb);
		udr__buf_free(&nsql);
		if (rc < 0) {
			drop_fast(q);
			goto out;
		}
	}
	/* many rows moved (a table imported anew): reading them by place saves
	 * nothing and would count rewritten rows as changed: the slow path */
	if (rc == 0) {
		udr_result *r = NULL;
		udr_value x;
		uint64_t rows = 0, moved = 0;
		udr_version *v = NULL;
		if ((rc = udr__q_run(&r, q, "SELECT count(*)::BIGINT FROM temp.main.\"__udr ck\"", NULL, 0, UDR__RUN_ANY)) == 0 &&
		    udr_result_get(&x, r, 0, 0) == 0 && x.type == UDR_TYPE_INT64)
			moved = (uint64_t)x.i64;
		udr_result_free(r);
		if (rc == 0 && (rc = udr_catalog_get_version(&v, q->cat, mt->table, mt->ours)) == 0) {
			const char *rs = udr_version_get_meta(v, "udr.rows");
			rows = rs ? strtoull(rs, NULL, 10) : 0;
		}
		udr_version_free(v);
		if (rc == 0 && moved > rows / 8) {
			drop_fast(q);
			rc = 1;
			goto out;
		}
	}
	/* 2. the rows to read: theirs' where theirs moved; all where both did */
	if (rc == 0)
		rc = udr__q_exec(q, "CREATE TEMP TABLE \"__udr need\" AS "
		                    "SELECT __udr_pt AS p FROM temp.main.\"__udr ck\" WHERE __udr_pt IS NOT NULL AND __udr_pt IS "
		                    "DISTINCT FROM __udr_pb UNION "
		                    "SELECT __udr_po FROM temp.main.\"__udr ck\" WHERE __udr_po IS NOT NULL AND __udr_po IS "
		                    "DISTINCT FROM __udr_pb AND __udr_pt IS DISTINCT FROM __udr_pb UNION "
		                    "SELECT __udr_pb FROM temp.main.\"__udr ck\" WHERE __udr_pb IS NOT NULL AND __udr_po IS "
		                    "DISTINCT FROM __udr_pb AND __udr_pt IS DISTINCT FROM __udr_pb");
	if (rc == 0)
		rc = fetch_rows(q, &d, mt, c);
	/* 3. classified as classify does, by place first, then by content */
	if (rc == 0)
		rc = rows_same(&ot, "__udr_o", "__udr_t", c, key);
	if (rc == 0)
		rc = rows_same(&oob, "__udr_o", "__udr_b", c, key);
	if (rc == 0)
		rc = rows_same(&ttb, "__udr_t", "__udr_b", c, key);
	if (rc == 0)
		rc = cell_expr(&cell, c, key, strict);
	udr__buf_free(&b);
	if (rc == 0)
		rc = udr__buf_puts(&b, "CREATE TEMP TABLE \"__udr rm\" AS SELECT ");
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__sql_ident(&b, key->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&b, ", ");
	}
	/* a side that moved a row changed it (SQL writes store only changed
	 * rows anew); where both moved it, the contents decide: oc, tc below */
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "__udr_b, __udr_o, __udr_t, __udr_hb, __udr_ho, __udr_ht, __udr_act, "
		                     "(list_position(%s, (__udr_po >> 32)::INTEGER) - 1)::UBIGINT AS __udr_opart, "
		                     "(__udr_po & 4294967295)::UBIGINT AS __udr_orow FROM (SELECT *, CASE "
		                     "WHEN __udr_pt IS NOT DISTINCT FROM __udr_pb THEN %d "
		                     "WHEN __udr_po IS NOT DISTINCT FROM __udr_pb THEN %d "
		                     "WHEN NOT __udr_oc AND NOT __udr_tc THEN NULL "
		                     "WHEN NOT __udr_tc THEN %d WHEN NOT __udr_oc THEN %d "
		                     "WHEN __udr_ho = __udr_ht AND (NOT __udr_ho OR %s) THEN %d "
		                     "WHEN __udr_hb AND __udr_ho AND __udr_ht AND %s THEN %d ELSE %d END AS __udr_act FROM "
		                     "(SELECT *, NOT (__udr_ho = __udr_hb AND (NOT __udr_ho OR %s)) AS __udr_oc, "
		                     "NOT (__udr_ht = __udr_hb AND (NOT __udr_ht OR %s)) AS __udr_tc FROM "
		                     "(SELECT ck.*, ck.__udr_pb IS NOT NULL AS __udr_hb, ck.__udr_po IS NOT NULL AS __udr_ho, "
		                     "ck.__udr_pt IS NOT NULL AS __udr_ht, rb.__udr_r AS __udr_b, ro.__udr_r AS __udr_o, "
		                     "rt.__udr_r AS __udr_t FROM temp.main.\"__udr ck\" ck "
		                     "LEFT JOIN temp.main.\"__udr rows\" rb ON rb.__udr_p = ck.__udr_pb "
		                     "LEFT JOIN temp.main.\"__udr rows\" ro ON ro.__udr_p = ck.__udr_po "
		                     "LEFT JOIN temp.main.\"__udr rows\" rt ON rt.__udr_p = ck.__udr_pt))) WHERE __udr_act IS NOT NULL",
		                     oids.ptr, ACT_OURS, ACT_THEIRS, ACT_OURS, ACT_THEIRS, ot.ptr, ACT_SAME, cell.ptr, ACT_CELLS,
		                     ACT_CONFLICT, oob.ptr, ttb.ptr);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	drop_fast(q);
out:
	udr__q_cache_release(q);
	pdict_free(&d);
	udr__buf_free(&b);
	udr__buf_free(&pb);
	udr__buf_free(&po);
	udr__buf_free(&pt);
	udr__buf_free(&ot);
	udr__buf_free(&oob);
	udr__buf_free(&ttb);
	udr__buf_free(&cell);
	udr__buf_free(&oids);
	return rc;
}

static int count_acts(udr_merge_table *mt, udr_query *q)
{
	udr_result *r = NULL;
	int rc = udr__q_run(&r, q, "SELECT __udr_act::BIGINT, count(*)::BIGINT FROM temp.main.\"__udr rm\" GROUP BY ALL",
	                    NULL, 0, UDR__RUN_ANY);
	for (size_t i = 0; rc == 0 && i < udr_result_row_count(r); i++) {
		udr_value a, n;
		if ((rc = udr_result_get(&a, r, i, 0)) < 0 || (rc = udr_result_get(&n, r, i, 1)) < 0)
			break;
		switch (a.i64) {
		case ACT_OURS: mt->rows_ours = (uint64_t)n.i64; break;
		case ACT_THEIRS: mt->rows_theirs = (uint64_t)n.i64; break;
		case ACT_SAME: mt->rows_same = (uint64_t)n.i64; break;
		case ACT_CELLS: mt->rows_cells = (uint64_t)n.i64; break;
		default: mt->rows_conflict = (uint64_t)n.i64; break;
		}
	}
	udr_result_free(r);
	return rc;
}

/* "EXISTS (rows of "__udr rm" to replace whose key is x's)" */
static int replaced_cond(udr__buf *b, const cols *key)
{
	int rc = udr__buf_printf(b,
	                         "EXISTS (SELECT 1 FROM temp.main.\"__udr rm\" __udr_m WHERE __udr_m.__udr_act IN (%d, %d) "
	                         "AND __udr_m.__udr_ho AND ",
	                         ACT_THEIRS, ACT_CELLS);
	if (rc == 0)
		rc = keys_equal(b, "__udr_m", "x", key, false);
	if (rc == 0)
		rc = udr__buf_puts(b, ")");
	return rc;
}

/* The merged version: ours with their rows replacing, adding and deleting
 * ours', and rows merged cell by cell.  *out NULL when ours is the result. */
static int stage_merged(udr_version **out, udr_query *q, const udr_merge_table *mt, const cols *c, const cols *key,
                        bool positional)
{
	udr_version *ours = NULL;
	udr__buf cond = {0}, del = {0}, ins = {0}, cells = {0}, nm = {0}, rows = {0};
	const char *stmts[3];
	int rc = udr_catalog_get_version(&ours, q->cat, mt->table, mt->ours);
	if (rc == 0)
		rc = replaced_cond(&cond, key);
	if (rc == 0)
		rc = udr__buf_puts(&nm, "temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&nm, mt->table);
	/* by place, the shadow holds exactly the rows to replace (columns unread) */
	if (rc == 0)
		rc = positional ? udr__buf_printf(&del, "DELETE FROM %s", nm.ptr)
		                : udr__buf_printf(&del, "DELETE FROM %s x WHERE %s", nm.ptr, cond.ptr);
	if (rc == 0)
		rc = udr__buf_printf(&ins,
		                     "INSERT INTO %s SELECT UNNEST(__udr_t) FROM temp.main.\"__udr rm\" WHERE __udr_act = %d AND "
		                     "__udr_ht",
		                     nm.ptr, ACT_THEIRS);
	if (rc == 0)
		rc = udr__buf_printf(&cells, "INSERT INTO %s SELECT ", nm.ptr);
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		rc = udr__buf_puts(&cells, i ? ", CASE WHEN " : "CASE WHEN ");
		if (rc == 0)
			rc = col_same(&cells, "__udr_o", "__udr_b", c->names[i], c->types[i]);
		if (rc == 0)
			rc = udr__buf_puts(&cells, " THEN __udr_t.");
		if (rc == 0)
			rc = udr__sql_ident(&cells, c->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&cells, " ELSE __udr_o.");
		if (rc == 0)
			rc = udr__sql_ident(&cells, c->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&cells, " END");
	}
	if (rc == 0)
		rc = udr__buf_printf(&cells, " FROM temp.main.\"__udr rm\" WHERE __udr_act = %d", ACT_CELLS);
	/* by place (the fast path): ours' rows to replace, their columns unread
	 * (NULL: they are deleted, never compared) */
	if (rc == 0 && positional) {
		rc = udr__buf_puts(&rows, "SELECT __udr_opart, __udr_orow");
		for (size_t i = 0; rc == 0 && i < c->n; i++)
			rc = udr__buf_puts(&rows, ", NULL");
		if (rc == 0)
			rc = udr__buf_printf(&rows, " FROM temp.main.\"__udr rm\" WHERE __udr_act IN (%d, %d) AND __udr_ho",
			                     ACT_THEIRS, ACT_CELLS);
	}
	if (rc == 0) {
		stmts[0] = del.ptr;
		stmts[1] = ins.ptr;
		stmts[2] = cells.ptr;
		rc = udr__w_stage_edit(out, q, ours, cond.ptr, positional ? rows.ptr : NULL, stmts, 3);
	}
	udr_version_free(ours);
	udr__buf_free(&cond);
	udr__buf_free(&del);
	udr__buf_free(&ins);
	udr__buf_free(&cells);
	udr__buf_free(&nm);
	udr__buf_free(&rows);
	return rc;
}

/* The key of mt: given, else recorded (udr.key) by ours', theirs' or the
 * base's version (a version merged row by row records its key). */
static int key_of(cols *key, bool *have, udr_query *q, const udr_merge_table *mt, const char *given)
{
	int rc = 0;
	*have = false;
	memset(key, 0, sizeof(*key));
	if (given) {
		*have = true;
		return parse_key(key, given, mt->table);
	}
	for (int side = 0; side < 3 && !*have; side++) {
		udr_version *v = NULL;
		uint64_t ver = side == 0 ? mt->ours : side == 1 ? mt->theirs : mt->base;
		const char *k;
		if (!ver)
			continue;
		if ((rc = udr_catalog_get_version(&v, q->cat, mt->table, ver)) < 0)
			return rc;
		if ((k = udr_version_get_meta(v, "udr.key")) != NULL) {
			*have = true;
			rc = parse_key(key, k, mt->table);
		}
		udr_version_free(v);
	}
	return rc;
}

/* The key's columns must be columns of the table. */
static int key_in(const cols *key, const cols *c, const char *table)
{
	for (size_t k = 0; k < key->n; k++) {
		bool found = false;
		for (size_t i = 0; i < c->n && !found; i++)
			found = strcmp(key->names[k], c->names[i]) == 0;
		if (!found)
			return udr__error_set(UDR_EINVAL, "key column '%s' is not a column of table %s; nothing merged",
			                      key->names[k], table);
	}
	return 0;
}

static bool version_dropped_at(udr_query *q, const char *table, uint64_t ver)
{
	udr_version *v = NULL;
	bool d;
	if (udr_catalog_get_version(&v, q->cat, table, ver) < 0) {
		udr_error_clear();
		return false; /* the describe that follows reports it */
	}
	d = udr__version_dropped(v);
	udr_version_free(v);
	return d;
}

/* "to_json(struct_pack(k1 := k1, ...))::VARCHAR": the key as a JSON object. */
static int key_json(udr__buf *b, const cols *key)
{
	int rc = udr__buf_puts(b, "to_json(struct_pack(");
	for (size_t i = 0; rc == 0 && i < key->n; i++) {
		rc = udr__buf_puts(b, i ? ", " : "");
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(b, " := ");
		if (rc == 0)
			rc = udr__sql_ident(b, key->names[i]);
	}
	return rc == 0 ? udr__buf_puts(b, "))::VARCHAR") : rc;
}

/* The text a row's key is resolved by: the value as text for a one-column
 * key, else the key as a JSON object. */
static int key_text(udr__buf *b, const cols *key)
{
	int rc;
	if (key->n > 1)
		return key_json(b, key);
	rc = udr__buf_puts(b, "CAST(");
	if (rc == 0)
		rc = udr__sql_ident(b, key->names[0]);
	return rc == 0 ? udr__buf_puts(b, " AS VARCHAR)") : rc;
}

/* Conflicting rows resolved one by one (a record's) take their side. */
static int apply_row_sides(udr_query *q, const udr__mtable *rt, const cols *key)
{
	udr__buf b = {0}, kt = {0};
	int rc;
	if (!rt || rt->nr == 0)
		return 0;
	rc = key_text(&kt, key);
	if (rc == 0)
		rc = udr__buf_printf(&b, "UPDATE temp.main.\"__udr rm\" SET __udr_act = CASE %s", kt.ptr);
	/* the last resolution of a key first: CASE takes the first match (a
	 * record written before resolutions replaced each other may hold a
	 * key twice; udr_conflicts shows the last) */
	for (size_t i = rt->nr; rc == 0 && i-- > 0;) {
		rc = udr__buf_puts(&b, " WHEN ");
		if (rc == 0)
			rc = udr__sql_literal(&b, rt->rkeys[i]);
		if (rc == 0)
			rc = udr__buf_printf(&b, " THEN %d", rt->rsides[i] == UDR_MERGE_OURS ? ACT_OURS : ACT_THEIRS);
	}
	if (rc == 0)
		rc = udr__buf_printf(&b, " ELSE __udr_act END WHERE __udr_act = %d", ACT_CONFLICT);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	udr__buf_free(&kt);
	return rc;
}

/* The conflicting rows as Parquet parts in the store: key, key_text, and
 * the base, ours and theirs rows, JSON text (NULL: no such row). */
static int write_conflicts(udr__parts *out, udr_query *q, const cols *key)
{
	udr__buf b = {0};
	udr_hash *h = NULL;
	uint64_t *rows = NULL;
	size_t n = 0;
	int rc = udr__buf_puts(&b, "SELECT ");
	if (rc == 0)
		rc = key_json(&b, key);
	if (rc == 0)
		rc = udr__buf_puts(&b, " AS key, ");
	if (rc == 0)
		rc = key_text(&b, key);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     " AS key_text, to_json(__udr_b)::VARCHAR AS base, to_json(__udr_o)::VARCHAR AS ours, "
		                     "to_json(__udr_t)::VARCHAR AS theirs FROM temp.main.\"__udr rm\" WHERE __udr_act = %d "
		                     "ORDER BY key_text",
		                     ACT_CONFLICT);
	if (rc == 0)
		rc = udr__q_write_parts(&h, &rows, &n, q, b.ptr, NULL, NULL, 0);
	udr__buf_free(&b);
	memset(out, 0, sizeof(*out));
	if (rc == 0 && !(out->p = calloc(n + 1, sizeof(*out->p))))
		rc = udr__error_oom();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		out->p[i].hash = h[i];
		out->p[i].rows = rows[i];
		out->n++;
	}
	out->typed = true;
	free(h);
	free(rows);
	return rc;
}

/* Column types whose SQL equality is sameness (no -0.0 = 0.0, NaN, or
 * INTERVAL '1 month' = INTERVAL '30 days'). */
static bool exact_type(const char *t)
{
	static const char *const ok[] = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
	                                 "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "VARCHAR", "DATE", "TIME",
	                                 "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "BLOB", "UUID"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(t, ok[i]) == 0)
			return true;
	return strncmp(t, "DECIMAL(", 8) == 0;
}

/*
 * A table udr_merge left at table level because the merge bases of a
 * criss-cross history disagree on it (mt->note set): when both sides hold
 * the same rows (each merged the crossing alike, into versions of their
 * own), the merge keeps ours and it is no conflict.  Else (or when the
 * rows cannot be compared exactly) the conflict and its note stay.
 */
static int criss_same_rows(udr_query *q, udr_merge_table *mt)
{
	cols co = {0}, ct = {0};
	udr__buf b = {0};
	udr_result *r = NULL;
	udr_value x;
	bool exact;
	int rc;
	if (!mt->ours || !mt->theirs)
		return 0;
	if ((rc = describe(&co, q, mt->table, mt->ours)) < 0 || (rc = describe(&ct, q, mt->table, mt->theirs)) < 0) {
		/* not rows SQL reads (a chunk-level table): the conflict stays */
		cols_free(&co);
		cols_free(&ct);
		udr_error_clear();
		return 0;
	}
	exact = same_cols(&co, &ct);
	for (size_t i = 0; exact && i < co.n; i++)
		exact = exact_type(co.types[i]);
	if (exact) {
		/* rows of each side the other lacks, both ways */
		const uint64_t side[2][2] = {{mt->ours, mt->theirs}, {mt->theirs, mt->ours}};
		rc = udr__buf_puts(&b, "SELECT count(*)::BIGINT FROM (");
		for (int k = 0; k < 2 && rc == 0; k++) {
			rc = udr__buf_puts(&b, k ? ") UNION ALL (SELECT * FROM " : "(SELECT * FROM ");
			if (rc == 0)
				rc = vref(&b, mt->table, side[k][0]);
			if (rc == 0)
				rc = udr__buf_puts(&b, " EXCEPT ALL SELECT * FROM ");
			if (rc == 0)
				rc = vref(&b, mt->table, side[k][1]);
		}
		if (rc == 0)
			rc = udr__buf_puts(&b, "))");
		if (rc == 0)
			rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
		if (rc == 0 && udr_result_get(&x, r, 0, 0) == 0 && x.type == UDR_TYPE_INT64 && x.i64 == 0) {
			mt->conflict = 0;
			mt->result = mt->ours;
			free(mt->note);
			mt->note = NULL;
		}
	}
	udr_result_free(r);
	udr__buf_free(&b);
	cols_free(&co);
	cols_free(&ct);
	udr__q_cache_release(q);
	return rc;
}

/* Merge one table changed on both sides row by row; mt->conflict cleared
 * when its rows merge; *out the new version (NULL: ours is the result). */
static int merge_table(udr_version **out, udr_query *q, udr_merge_table *mt, const udr_rowmerge_options *o,
                       const udr__mtable *rt, udr__parts *conf)
{
	cols key = {0}, co = {0}, ct = {0}, cb = {0};
	bool have = false;
	int strict = strictness_for(o, mt->table), rc;
	uint64_t vers[3] = {mt->ours, mt->theirs, mt->base};
	bool positional = false;
	*out = NULL;
	if (mt->note)
		return criss_same_rows(q, mt);
	if ((rc = key_of(&key, &have, q, mt, key_given(o, mt->table))) < 0)
		goto out;
	if (!have) {
		rc = set_note(mt, "", "no key: give one with --key TABLE=COLUMNS (or pick a side)");
		goto out;
	}
	if (strict == UDR_STRICT_TABLE) {
		rc = set_note(mt, "", "strictness table: a change on both sides conflicts");
		goto out;
	}
	/* the classification's own columns (__udr_act, __udr_b, ...) sit beside
	 * the key columns: a key column of such a name was read for them (false
	 * conflicts, Binder Errors).  Identifiers are case-insensitive. */
	for (size_t i = 0; i < key.n; i++)
		if (strncasecmp(key.names[i], "__udr_", 6) == 0) {
			rc = set_note(mt, "", "a key column is named __udr_*, which row merges use: pick a side");
			goto out;
		}
	if (version_dropped_at(q, mt->table, mt->ours) || version_dropped_at(q, mt->table, mt->theirs) ||
	    (mt->base && version_dropped_at(q, mt->table, mt->base))) {
		rc = set_note(mt, "", "dropped on one side: pick a side");
		goto out;
	}
	if ((rc = describe(&co, q, mt->table, mt->ours)) < 0 || (rc = describe(&ct, q, mt->table, mt->theirs)) < 0 ||
	    (mt->base && (rc = describe(&cb, q, mt->table, mt->base)) < 0))
		goto out;
	if ((rc = key_in(&key, &co, mt->table)) < 0 || (rc = key_in(&key, &ct, mt->table)) < 0)
		goto out;
	mt->rowlevel = 1;
	/* rows of one schema cannot take the changes of another without
	 * inventing or dropping values: a schema change stays at table level */
	if (!same_cols(&co, &ct) || (mt->base && !same_cols(&co, &cb))) {
		bool ours_changed = mt->base && !same_cols(&co, &cb), theirs_changed = mt->base && !same_cols(&ct, &cb);
		rc = set_note(mt, "the schema changed on ",
		              !mt->base || (ours_changed && theirs_changed) ? "both sides: pick a side"
		              : ours_changed                                 ? "our side: pick a side"
		                                                             : "their side: pick a side");
		mt->rowlevel = 0;
		goto out;
	}
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr rm\"");
	/* by place in the store; else (and with UDR_ROWMERGE_SLOW set, for the
	 * tests of both paths) by content over every row */
	rc = getenv("UDR_ROWMERGE_SLOW") ? 1 : classify_fast(q, mt, &co, &key, strict);
	positional = rc == 0;
	if (rc == 1 && (rc = check_key_nulls(q, mt->table, vers, 3, &key)) == 0 &&
	    (rc = check_key_counts(q, mt->table, vers, 3, &key)) == 0)
		rc = classify(q, mt, &co, &key, strict);
	if (rc < 0 || (rc = check_key_dups(q, mt->table, vers, 3, &key)) < 0 ||
	    (rc = apply_row_sides(q, rt, &key)) < 0 || (rc = count_acts(mt, q)) < 0)
		goto out;
	if (mt->rows_conflict > 0 && conf && (rc = write_conflicts(conf, q, &key)) < 0)
		goto out;
	if (mt->rows_conflict == 0) {
		mt->conflict = 0;
		/* a dry run writes no parts: result 0, the version is not made */
		mt->result = 0;
		if (mt->rows_theirs + mt->rows_cells > 0 && !o->merge.dry_run)
			rc = stage_merged(out, q, mt, &co, &key, positional);
		if (rc == 0 && !*out && (mt->rows_theirs + mt->rows_cells == 0 || !o->merge.dry_run))
			mt->result = mt->ours;
	}
	if (rc == 0 && *out) {
		/* the merged version keeps the key it was merged on */
		json_t *a = json_array();
		char *text = NULL;
		for (size_t i = 0; a && i < key.n; i++)
			json_array_append_new(a, json_string(key.names[i]));
		if (!a || !(text = json_dumps(a, JSON_COMPACT)))
			rc = udr__error_oom();
		if (rc == 0)
			rc = udr_version_set_meta(*out, "udr.key", text);
		free(text);
		json_decref(a);
	}
out:
	if (rc < 0 && *out) {
		udr_version_free(*out);
		*out = NULL;
	}
	cols_free(&key);
	cols_free(&co);
	cols_free(&ct);
	cols_free(&cb);
	return rc;
}

/* Every --key names a table of the merge with those columns (a typo must
 * not silently leave a table at table level). */
static int check_keys_given(udr_query *q, const udr_merge_result *m, const udr_rowmerge_options *o)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < o->nkeys; i++) {
		const udr_merge_table *mt = NULL;
		cols key = {0}, c = {0};
		uint64_t ver;
		for (size_t x = 0; x < m->ntables && !mt; x++)
			if (strcmp(m->tables[x].table, o->key_tables[i]) == 0)
				mt = &m->tables[x];
		if (mt) {
			/* a side that dropped the table has no columns to check:
			 * the other's (both dropped: nothing to merge by key) */
			ver = mt->ours && !version_dropped_at(q, mt->table, mt->ours) ? mt->ours
			      : mt->theirs && !version_dropped_at(q, mt->table, mt->theirs) ? mt->theirs
			                                                                     : 0;
			if (!ver)
				continue;
		} else {
			/* unchanged between the sides: checked on the target */
			char ref[UDR_REF_NAME_MAX + 16];
			snprintf(ref, sizeof(ref), "commit:%" PRIu64, m->ours);
			if ((rc = udr_catalog_latest_on(&ver, q->cat, o->key_tables[i], ref)) < 0 ||
			    version_dropped_at(q, o->key_tables[i], ver)) {
				if (rc == UDR_ENOTFOUND || rc == 0)
					rc = udr__error_set(UDR_EINVAL, "--key names table %s, which neither side has; nothing merged",
					                    o->key_tables[i]);
				break;
			}
		}
		if ((rc = parse_key(&key, o->keys[i], o->key_tables[i])) == 0 &&
		    (rc = describe(&c, q, o->key_tables[i], ver)) == 0)
			rc = key_in(&key, &c, o->key_tables[i]);
		cols_free(&key);
		cols_free(&c);
	}
	return rc;
}

/* A resolved version given to a record (udr_query_merge_resolve with a query). */
static int resolved_version(udr_version **out, const udr__mtable *rt)
{
	char rowbuf[32];
	int rc = udr_version_new(out, rt->table, 0);
	snprintf(rowbuf, sizeof(rowbuf), "%" PRIu64, rt->vrows);
	if (rc == 0)
		rc = udr__parts_to_version(*out, &rt->version);
	if (rc == 0)
		rc = udr_version_set_meta(*out, "udr.schema", rt->vschema);
	if (rc == 0)
		rc = udr_version_set_meta(*out, "udr.rows", rowbuf);
	if (rc == 0)
		rc = udr_version_set_meta(*out, "udr.source", "sql");
	if (rc < 0) {
		udr_version_free(*out);
		*out = NULL;
	}
	return rc;
}

static int strdup_to(char **out, const char *s)
{
	*out = NULL;
	return !s || (*out = strdup(s)) ? 0 : udr__error_oom();
}

static int strs_copy(char ***out, const char *const *in, size_t n)
{
	*out = calloc(n + 1, sizeof(char *));
	if (!*out)
		return udr__error_oom();
	for (size_t i = 0; i < n; i++)
		if (!((*out)[i] = strdup(in[i])))
			return udr__error_oom();
	return 0;
}

/* The record of this run's conflicts: its options, and per table changed
 * on both sides its state (the resolutions of prev carried over). */
static int record_of(udr__mrec *r, const udr_merge_result *m, const char *source, const char *into,
                     const udr_rowmerge_options *o, udr__mrec *prev, udr__parts *conf, const bool *planned)
{
	int rc;
	memset(r, 0, sizeof(*r));
	r->ours = m->ours;
	r->theirs = m->theirs;
	r->base = m->base;
	r->strategy = o->merge.strategy;
	if ((rc = strdup_to(&r->target, into)) < 0 || (rc = strdup_to(&r->source, source)) < 0 ||
	    (rc = strdup_to(&r->message, o->merge.message)) < 0 ||
	    (rc = strs_copy(&r->key_tables, o->key_tables, o->nkeys)) < 0 ||
	    (rc = strs_copy(&r->keys, o->keys, o->nkeys)) < 0 ||
	    (rc = strs_copy(&r->strict_tables, o->strict_tables, o->nstrict)) < 0 ||
	    (rc = strs_copy(&r->side_tables, o->merge.tables, o->merge.ntables)) < 0)
		return rc;
	r->nkeys = o->nkeys;
	r->nstrict = o->nstrict;
	r->nsides = o->merge.ntables;
	if (!(r->strictness = calloc(o->nstrict + 1, sizeof(int))) || !(r->sides = calloc(o->merge.ntables + 1, sizeof(int))) ||
	    !(r->t = calloc(m->ntables + 1, sizeof(*r->t))))
		return udr__error_oom();
	for (size_t i = 0; i < o->nstrict; i++)
		r->strictness[i] = o->strictness[i];
	for (size_t i = 0; i < o->merge.ntables; i++)
		r->sides[i] = o->merge.table_strategies ? o->merge.table_strategies[i] : o->merge.strategy;
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		udr__mtable *x = &r->t[r->n], *p = udr__mrec_table(prev, t->table);
		if (!planned[i])
			continue;
		if ((rc = strdup_to(&x->table, t->table)) < 0)
			return rc;
		r->n++;
		x->base = t->base;
		x->ours = t->ours;
		x->theirs = t->theirs;
		/* a table that merges row by row without a conflict is "rows": 0
		 * (redone by --continue, listed by no udr_conflicts row): as a
		 * table-level conflict ("rows": null) it was listed, and resolving
		 * it with a side dropped the other side's row changes */
		x->rowlevel = t->rowlevel;
		x->rows_conflict = t->conflict ? t->rows_conflict : 0;
		if ((rc = strdup_to(&x->note, t->note)) < 0)
			return rc;
		x->conflicts = conf[i]; /* moved */
		memset(&conf[i], 0, sizeof(conf[i]));
		if (p) { /* resolutions carried over (moved) */
			x->side = p->side;
			x->rkeys = p->rkeys;
			x->rsides = p->rsides;
			x->nr = p->nr;
			x->version = p->version;
			x->vschema = p->vschema;
			x->vrows = p->vrows;
			p->rkeys = NULL;
			p->rsides = NULL;
			p->nr = 0;
			memset(&p->version, 0, sizeof(p->version));
			p->vschema = NULL;
		}
	}
	return 0;
}

/* A new merge writes or removes its target's record under the record's
 * lock (a resolve reading an earlier record to rewrite it cannot then put
 * it back over this one); a continued merge (held) has the lock already. */
static int rec_save(udr_query *q, const udr__mrec *r, bool held)
{
	int lock = -1, rc;
	if (!held && (rc = udr__mrec_lock(&lock, q, r->target, false)) < 0)
		return rc;
	rc = udr__mrec_save(q, r);
	udr__mrec_unlock(lock);
	return rc;
}

static int rec_remove(udr_query *q, const char *into, bool held)
{
	int lock = -1, rc;
	if (!held && (rc = udr__mrec_lock(&lock, q, into, true)) < 0) {
		if (rc != UDR_ENOTFOUND)
			return rc;
		udr_error_clear(); /* no record: nothing to remove */
		return 0;
	}
	rc = udr__mrec_remove(q, into);
	udr__mrec_unlock(lock);
	return rc;
}

/* --continue on a target that left the head its record was planned on */
static int moved_error(const char *into, const char *source, uint64_t head, uint64_t ours)
{
	return udr__error_set(UDR_ECONFLICT,
	                      "branch %s moved since the merge of %s was recorded (its head is commit %" PRIu64
	                      ", the merge was planned on %" PRIu64 "): nothing merged; udr merge --abort, then "
	                      "merge again",
	                      into, source, head, ours);
}

/*
 * The merge of source into into with opts; prev: a record's resolutions
 * (udr_query_merge_continue), NULL for a new merge; name: the source as
 * the record names it.  A continued merge is planned and committed on the
 * record's head only: its resolutions were made against that head, so a
 * commit to the target since (even while this runs: the commit is
 * conditional on the planned head) is a conflict, the record kept.
 */
static int merge_run(udr_merge_result **out, udr_query *q, const char *source, const char *into,
                     const udr_rowmerge_options *opts, udr__mrec *prev, const char *name)
{
	udr_merge_options mo;
	udr_merge_result *m = NULL;
	udr_version **vs = NULL;
	udr__parts *conf = NULL;
	bool *planned = NULL;
	size_t *vt = NULL, nv = 0;
	udr__tstate adopt;
	bool moved = false;
	int rc;
	memset(&adopt, 0, sizeof(adopt));
	/* the table-level plan: which tables changed on both sides */
	mo = opts->merge;
	mo.dry_run = 1;
	rc = udr_merge(&m, q->cat, source, into, &mo);
	if (rc < 0 && !(rc == UDR_ECONFLICT && m && m->nconflicts > 0)) {
		*out = m;
		return rc;
	}
	if (prev && m->ours != prev->ours) {
		/* a commit landed since udr_query_merge_continue read the head */
		rc = moved_error(into, name, m->ours, prev->ours);
		udr_merge_result_free(m);
		return rc;
	}
	/* up to date: no table merges, and a table the source has but the
	 * target dropped since was "neither side has" (exit 2) */
	if (!m->up_to_date && (rc = check_keys_given(q, m, opts)) < 0)
		goto fail;
	if (m->up_to_date || (m->nconflicts == 0 && !prev)) {
		/* nothing to merge row by row: as udr_merge (a continued merge
		 * commits below, on the record's head, not on a new plan's) */
		if (opts->merge.dry_run || m->up_to_date) {
			*out = m;
			return 0;
		}
		udr_merge_result_free(m);
		if ((rc = udr_merge(out, q->cat, source, into, &opts->merge)) == 0)
			rc = rec_remove(q, into, prev != NULL); /* an earlier merge's record is done with */
		return rc;
	}
	if (!(vs = calloc(m->ntables + 1, sizeof(*vs))) || !(vt = calloc(m->ntables + 1, sizeof(*vt))) ||
	    !(conf = calloc(m->ntables + 1, sizeof(*conf))) || !(planned = calloc(m->ntables + 1, sizeof(*planned)))) {
		rc = udr__error_oom();
		goto fail;
	}
	for (size_t i = 0; i < m->ntables; i++) {
		udr_merge_table *mt = &m->tables[i];
		const udr__mtable *rt = udr__mrec_table(prev, mt->table);
		udr_version *v = NULL;
		if (!mt->conflict)
			continue;
		planned[i] = true;
		if (rt && rt->side) {
			/* resolved to a side for the whole table */
			mt->conflict = 0;
			mt->result = rt->side == UDR_MERGE_OURS ? mt->ours : mt->theirs;
			continue;
		}
		if (rt && rt->vschema) {
			if ((rc = resolved_version(&v, rt)) < 0)
				goto fail;
			mt->conflict = 0;
		} else if ((rc = merge_table(&v, q, mt, opts, rt, opts->merge.dry_run ? NULL : &conf[i])) < 0) {
			goto fail;
		}
		if (v) {
			vs[nv] = v;
			vt[nv++] = i;
		}
	}
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr rm\"");
	udr__q_cache_release(q);
	m->nconflicts = 0;
	for (size_t i = 0; i < m->ntables; i++)
		m->nconflicts += m->tables[i].conflict != 0;
	if (m->nconflicts > 0) {
		for (size_t i = 0; i < m->ntables; i++) {
			const udr_merge_table *t = &m->tables[i];
			if (!t->conflict)
				continue;
			if (t->rowlevel)
				rc = udr__error_set(UDR_ECONFLICT,
				                    "merge of %s into %s: %zu table%s conflict (first: %s, %" PRIu64
				                    " row%s changed differently on both sides); nothing merged%s",
				                    name, into, m->nconflicts, m->nconflicts == 1 ? "" : "s", t->table,
				                    t->rows_conflict, t->rows_conflict == 1 ? "" : "s",
				                    opts->merge.dry_run ? "" : " (see udr conflicts; udr resolve, then udr merge --continue)");
			else
				rc = udr__error_set(UDR_ECONFLICT,
				                    "merge of %s into %s: %zu table%s conflict (first: %s, changed on both sides: "
				                    "%s); nothing merged%s",
				                    name, into, m->nconflicts, m->nconflicts == 1 ? "" : "s", t->table,
				                    t->note ? t->note : "pick a side",
				                    opts->merge.dry_run ? "" : " (see udr conflicts; udr resolve, then udr merge --continue)");
			break;
		}
		if (!opts->merge.dry_run) {
			/* recorded for udr_conflicts and udr resolve: nothing on the branch */
			udr__mrec r;
			char msg[2048];
			int wrc;
			snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
			wrc = record_of(&r, m, name, into, opts, prev, conf, planned);
			if (wrc == 0)
				wrc = rec_save(q, &r, prev != NULL);
			udr__mrec_free(&r);
			if (wrc < 0) {
				rc = wrc;
				goto fail;
			}
			udr__error_set(UDR_ECONFLICT, "%s", msg);
		}
		goto fail;
	}
	if (opts->merge.dry_run)
		goto done;
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		bool staged = false;
		for (size_t k = 0; k < nv && !staged; k++)
			staged = vt[k] == i;
		if (!staged && t->result != t->ours && (rc = udr__tstate_set(&adopt, t->table, t->result, 1)) < 0)
			goto fail;
	}
	{
		udr__commit_opts o;
		memset(&o, 0, sizeof(o));
		o.assign = true;
		o.op = "merge";
		o.branch = into;
		o.ref_name = into;
		o.target = m->ours;
		o.parent2 = m->theirs;
		o.adopt = &adopt;
		o.message = opts->merge.message;
		udr__test_pause("merge-commit");
		if ((rc = udr__catalog_commit_versions(&m->seq, q->cat, vs, nv, &o)) < 0) {
			uint64_t head = 0;
			if (rc == UDR_ECONFLICT && prev && udr__branch_head(&head, q->cat, into, 0) == 0 &&
			    head != prev->ours) {
				rc = moved_error(into, name, head, prev->ours);
				moved = true;
			} else if (rc == UDR_EEXPIRED) {
				/* the source moved on while this merge ran, and retention
				 * expired the version it took from the old head: a race,
				 * not an expired version the user asked for */
				char keep[1024];
				snprintf(keep, sizeof(keep), "%s", udr_error_last()->message);
				if (udr__branch_head(&head, q->cat, name, 0) == 0 && head != m->theirs) {
					rc = udr__error_set(UDR_ECONFLICT,
					                    "branch %s moved while it was merged (its head is commit %" PRIu64
					                    ", the merge read %" PRIu64 ", whose versions retention has "
					                    "expired since): nothing merged; merge again",
					                    name, head, m->theirs);
					moved = true;
				} else {
					rc = udr__error_set(UDR_EEXPIRED, "%s", keep);
				}
			}
			goto fail;
		}
	}
	for (size_t k = 0; k < nv; k++)
		m->tables[vt[k]].result = vs[k]->version;
	/* merged: a record of an earlier try is done with (a crash before this
	 * leaves it, naming a head the branch has left: --continue refuses it) */
	if ((rc = rec_remove(q, into, prev != NULL)) < 0)
		udr_error_clear();
	rc = 0;
done:
	for (size_t k = 0; k < nv; k++)
		udr_version_free(vs[k]);
	for (size_t i = 0; conf && i < m->ntables; i++)
		udr__parts_free(&conf[i]);
	free(conf);
	free(planned);
	free(vs);
	free(vt);
	udr__tstate_free(&adopt);
	*out = m;
	return 0;
fail:
	{
		char msg[2048];
		snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
		(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr rm\"");
		udr__error_set(rc, "%s", msg);
	}
	udr__q_cache_release(q);
	for (size_t k = 0; k < nv; k++)
		udr_version_free(vs[k]);
	for (size_t i = 0; conf && i < m->ntables; i++)
		udr__parts_free(&conf[i]);
	free(conf);
	free(planned);
	free(vs);
	free(vt);
	udr__tstate_free(&adopt);
	if (rc == UDR_ECONFLICT && !moved) {
		*out = m;
		return rc;
	}
	udr_merge_result_free(m);
	return rc;
}

static int merge_unheld(udr_merge_result **out, udr_query *q, const char *source, const char *into,
                    const udr_rowmerge_options *opts)
{
	udr_rowmerge_options def = UDR_ROWMERGE_OPTIONS_INIT;
	int rc;
	if (!out || !q || !source)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_merge");
	*out = NULL;
	if (!opts)
		opts = &def;
	if ((rc = check_options(opts)) < 0)
		return rc;
	if (q->wtx)
		return udr__error_set(UDR_EINVAL, "a SQL transaction is open in this session (COMMIT or ROLLBACK it first)");
	if (!into)
		into = "main";
	if ((rc = udr_ref_name_check(into)) < 0)
		return rc;
	return merge_run(out, q, source, into, opts, NULL, source);
}

/* the puts and the commit naming them, with no gc in between (udr/gc.h) */
int udr_query_merge(udr_merge_result **out, udr_query *q, const char *source, const char *into,
                    const udr_rowmerge_options *opts)
{
	udr_gc_hold *hold = NULL;
	int rc;
	if (udr__q_refuse_read_only(q, "udr_query_merge") < 0)
		return UDR_EINVAL;
	if ((rc = udr_gc_hold_begin(&hold, q ? q->store : NULL)) < 0)
		return rc;
	rc = merge_unheld(out, q, source, into, opts);
	udr_gc_hold_end(hold);
	return rc;
}

static int merge_continue_unheld(udr_merge_result **out, udr_query *q, const char *into)
{
	udr_rowmerge_options o = UDR_ROWMERGE_OPTIONS_INIT;
	udr__mrec r;
	uint64_t head = 0;
	char src[64];
	int lock = -1, rc;
	if (!out || !q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_merge_continue");
	*out = NULL;
	if (q->wtx)
		return udr__error_set(UDR_EINVAL, "a SQL transaction is open in this session (COMMIT or ROLLBACK it first)");
	if (!into)
		into = "main";
	/* the record read, committed and removed (or rewritten) under its lock */
	if ((rc = udr_ref_name_check(into)) < 0 || (rc = udr__mrec_lock(&lock, q, into, true)) < 0)
		return rc;
	if ((rc = udr__mrec_load(&r, q, into)) < 0) {
		udr__mrec_unlock(lock);
		return rc;
	}
	if ((rc = udr__branch_head(&head, q->cat, into, 0)) < 0)
		goto out;
	if (head != r.ours) {
		rc = moved_error(into, r.source, head, r.ours);
		goto out;
	}
	udr__test_pause("merge-continue");
	o.merge.strategy = r.strategy;
	o.merge.tables = (const char *const *)r.side_tables;
	o.merge.table_strategies = r.sides;
	o.merge.ntables = r.nsides;
	o.merge.message = r.message;
	o.key_tables = (const char *const *)r.key_tables;
	o.keys = (const char *const *)r.keys;
	o.nkeys = r.nkeys;
	o.strict_tables = (const char *const *)r.strict_tables;
	o.strictness = r.strictness;
	o.nstrict = r.nstrict;
	snprintf(src, sizeof(src), "commit:%" PRIu64, r.theirs);
	{
		char *name = strdup(r.source);
		if (!name) {
			rc = udr__error_oom();
			goto out;
		}
		rc = merge_run(out, q, src, into, &o, &r, name);
		free(name);
	}
out:
	udr__mrec_free(&r);
	udr__mrec_unlock(lock);
	return rc;
}

/* the puts and the commit naming them, with no gc in between (udr/gc.h) */
int udr_query_merge_continue(udr_merge_result **out, udr_query *q, const char *into)
{
	udr_gc_hold *hold = NULL;
	int rc;
	if (udr__q_refuse_read_only(q, "udr_query_merge_continue") < 0)
		return UDR_EINVAL;
	if ((rc = udr_gc_hold_begin(&hold, q ? q->store : NULL)) < 0)
		return rc;
	rc = merge_continue_unheld(out, q, into);
	udr_gc_hold_end(hold);
	return rc;
}
