/*
 * test_rowmerge.c - the C API of row-level merges (include/udr/query.h):
 * udr_query_merge on a keyed table changed on both sides, conflicts
 * recorded and read through udr_conflicts, resolved per row, committed
 * with udr_query_merge_continue, and bad options refused.
 * Without DuckDB (UDR_HAVE_DUCKDB undefined) the program only says so.
 */
#include "helpers.h"

#ifndef UDR_HAVE_DUCKDB
#include <stdio.h>
int main(void)
{
	printf("test_rowmerge: skipped (built without DuckDB)\n");
	return 0;
}
#else

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/query.h>

typedef struct fx {
	char *dir;
	udr_db *db;
	udr_query *q;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char *root;
	f->dir = th_mkdtemp();
	root = th_join(f->dir, "root");
	if (udr_db_open(&f->db, root, UDR_OPEN_CREATE) != 0 || udr_query_open(&f->q, f->db, NULL) != 0) {
		print_error("open: %s\n", udr_error_last()->message);
		return -1;
	}
	free(root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_query_close(f->q);
	udr_db_close(f->db);
	th_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void run(fx *f, const char *sql)
{
	int rc = udr_query_sql(NULL, f->q, sql, NULL, 0);
	if (rc != 0)
		print_error("%s: %s\n", sql, udr_error_last()->message);
	assert_int_equal(rc, 0);
}

static void assert_scalar(fx *f, const char *sql, const char *want)
{
	udr_result *r = NULL;
	char *got = NULL;
	assert_int_equal(udr_query_sql(&r, f->q, sql, NULL, 0), 0);
	assert_int_equal(udr_result_text(&got, NULL, r, 0, 0), 0);
	if (strcmp(got, want) != 0)
		print_error("%s\n  got  %s\n  want %s\n", sql, got, want);
	assert_string_equal(got, want);
	udr_free(got);
	udr_result_free(r);
}

/* t (id, v) of 100 rows on main and base; theirs_sql on dev, ours_sql on main. */
static void sides(fx *f, const char *theirs_sql, const char *ours_sql)
{
	udr_catalog *c = udr_db_catalog(f->db);
	run(f, "CREATE TABLE t AS SELECT range AS id, 'v' || range AS v FROM range(100)");
	assert_int_equal(udr_branch_create(NULL, c, "base", NULL), 0);
	run(f, theirs_sql);
	assert_int_equal(udr_branch_create(NULL, c, "dev", NULL), 0);
	assert_int_equal(udr_branch_reset(NULL, c, "main", "base"), 0);
	run(f, ours_sql);
}

static const char *const KT[] = {"t"}, *const KC[] = {"id"};

static void test_rowmerge__clean(void **state)
{
	fx *f = *state;
	udr_rowmerge_options o = UDR_ROWMERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	sides(f, "UPDATE t SET v = 'theirs' WHERE id % 10 = 1", "UPDATE t SET v = 'ours' WHERE id % 10 = 2");
	o.key_tables = KT;
	o.keys = KC;
	o.nkeys = 1;
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), 0);
	assert_true(m->seq > 0);
	assert_int_equal(m->ntables, 1);
	assert_true(m->tables[0].rowlevel);
	assert_int_equal(m->tables[0].rows_theirs, 10);
	assert_int_equal(m->tables[0].rows_ours, 10);
	assert_int_equal(m->tables[0].rows_conflict, 0);
	assert_int_equal(m->nconflicts, 0);
	udr_merge_result_free(m);
	assert_scalar(f, "SELECT count(*) FILTER (v = 'theirs') || ' ' || count(*) FILTER (v = 'ours') || ' ' || count(*) "
	                 "FROM t",
	              "10 10 100");
	/* again: up to date */
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), 0);
	assert_true(m->up_to_date);
	udr_merge_result_free(m);
}

static void test_rowmerge__conflict_resolve_continue(void **state)
{
	fx *f = *state;
	udr_rowmerge_options o = UDR_ROWMERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	sides(f, "UPDATE t SET v = 'theirs' WHERE id IN (1, 2)", "UPDATE t SET v = 'ours' WHERE id IN (2, 3)");
	o.key_tables = KT;
	o.keys = KC;
	o.nkeys = 1;
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), UDR_ECONFLICT);
	assert_non_null(m);
	assert_int_equal(m->seq, 0);
	assert_int_equal(m->nconflicts, 1);
	assert_int_equal(m->tables[0].rows_conflict, 1);
	udr_merge_result_free(m);
	assert_scalar(f, "SELECT count(*) || ' ' || min(key->>'id') FROM udr_conflicts WHERE target = 'main'", "1 2");
	assert_int_equal(udr_query_merge_resolve(f->q, NULL, "t", UDR_MERGE_THEIRS, "99", NULL), UDR_ENOTFOUND);
	assert_int_equal(udr_query_merge_resolve(f->q, NULL, "t", 7, NULL, NULL), UDR_EINVAL);
	assert_int_equal(udr_query_merge_resolve(f->q, NULL, "t", UDR_MERGE_THEIRS, "2", NULL), 0);
	m = NULL;
	assert_int_equal(udr_query_merge_continue(&m, f->q, NULL), 0);
	assert_true(m->seq > 0);
	udr_merge_result_free(m);
	assert_scalar(f, "SELECT string_agg(v, ',' ORDER BY id) FROM t WHERE id BETWEEN 1 AND 3", "theirs,theirs,ours");
	assert_scalar(f, "SELECT count(*) FROM udr_conflicts", "0");
	assert_int_equal(udr_query_merge_abort(f->q, NULL), UDR_ENOTFOUND);
	assert_int_equal(udr_query_merge_continue(&m, f->q, NULL), UDR_ENOTFOUND);
	assert_null(m);
}

static void test_rowmerge__bad_options(void **state)
{
	fx *f = *state;
	udr_rowmerge_options o = UDR_ROWMERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	const char *const bad[] = {"nosuch"};
	int strict[] = {9};
	sides(f, "UPDATE t SET v = 'x' WHERE id = 1", "UPDATE t SET v = 'y' WHERE id = 5");
	assert_int_equal(udr_query_merge(NULL, f->q, "dev", NULL, &o), UDR_EINVAL);
	assert_int_equal(udr_query_merge(&m, NULL, "dev", NULL, &o), UDR_EINVAL);
	o.version = 99;
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), UDR_EINVAL);
	o.version = UDR_ROWMERGE_OPTIONS_VERSION;
	o.strict_tables = KT;
	o.strictness = strict;
	o.nstrict = 1;
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), UDR_EINVAL);
	o.nstrict = 0;
	o.key_tables = KT;
	o.keys = bad;
	o.nkeys = 1;
	assert_int_equal(udr_query_merge(&m, f->q, "dev", NULL, &o), UDR_EINVAL);
	assert_null(m);
	assert_scalar(f, "SELECT count(*) FROM udr_conflicts", "0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rowmerge__clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rowmerge__conflict_resolve_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rowmerge__bad_options, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
