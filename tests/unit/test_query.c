/*
 * test_query.c - the query module (libudr_query, DuckDB): the reference
 * scanner, time travel over versions made by overwrite and append imports,
 * joins of two versions, the changelog table, diff-rows, export round trips,
 * parameters, results and their renderers, and bad input (SQL errors,
 * unknown tables and versions, injection attempts, damaged parts).
 * Without DuckDB (UDR_HAVE_DUCKDB undefined) the program only says so.
 */
#include "helpers.h"

#ifndef UDR_HAVE_DUCKDB
#include <stdio.h>
int main(void)
{
	printf("test_query: skipped (built without DuckDB; run scripts/fetch-duckdb.sh)\n");
	return 0;
}
#else

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <udr/query.h>
#include <udr/refs.h>
#include "query/query_internal.h"

typedef struct fx {
	char *dir;
	char *root;
	udr_db *db;
	udr_query *q;
} fx;

/* raw: a format-1 store (every chunk one plain file: parts are read in
 * place); otherwise the default store (compressed pieces: parts are
 * materialized into the cache). */
static int setup_kind(void **state, bool raw)
{
	fx *f = calloc(1, sizeof(*f));
	udr_query_options o = UDR_QUERY_OPTIONS_INIT;
	f->dir = th_mkdtemp();
	f->root = th_join(f->dir, "root");
	o.threads = 2;
	if (raw) {
		udr_store_config cfg = UDR_STORE_CONFIG_INIT;
		udr_store *st = NULL;
		char *sdir = th_join(f->root, "chunks");
		cfg.format = 1;
		mkdir(f->root, 0755);
		if (udr_store_open_ext(&st, sdir, UDR_OPEN_CREATE, &cfg) != 0) {
			print_error("store: %s\n", udr_error_last()->message);
			return -1;
		}
		udr_store_close(st);
		free(sdir);
	}
	if (udr_db_open(&f->db, f->root, UDR_OPEN_CREATE) != 0 || udr_query_open(&f->q, f->db, &o) != 0) {
		print_error("open: %s\n", udr_error_last()->message);
		return -1;
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_kind(state, false);
}

static int setup_raw(void **state)
{
	return setup_kind(state, true);
}

/* Number of materialized parts in the session's cache. */
static int cached_parts(fx *f)
{
	char *dir = th_join3(f->root, "cache", "query");
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".parquet") != NULL;
	if (d)
		closedir(d);
	free(dir);
	return n;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_query_close(f->q);
	udr_db_close(f->db);
	th_rmtree(f->dir);
	free(f->root);
	free(f->dir);
	free(f);
	return 0;
}

/* Run sql and return the single text cell (malloc'd; "NULL" for NULL). */
static char *scalar(fx *f, const char *sql)
{
	udr_result *r = NULL;
	char *t = NULL;
	int rc = udr_query_sql(&r, f->q, sql, NULL, 0);
	if (rc != 0)
		print_error("sql failed: %s\n  %s\n", sql, udr_error_last()->message);
	assert_int_equal(rc, 0);
	assert_int_equal(udr_result_row_count(r), 1);
	assert_int_equal(udr_result_text(&t, NULL, r, 0, 0), 0);
	udr_result_free(r);
	return t ? t : strdup("NULL");
}

static void assert_scalar(fx *f, const char *sql, const char *want)
{
	char *got = scalar(f, sql);
	if (strcmp(got, want) != 0)
		print_error("%s\n  got  %s\n  want %s\n", sql, got, want);
	assert_string_equal(got, want);
	free(got);
}

static char *write_csv(fx *f, const char *name, const char *content)
{
	char *p = th_join(f->dir, name);
	th_write_file(p, content, strlen(content));
	return p;
}

static uint64_t import_csv(fx *f, const char *table, const char *content, int mode)
{
	char *p = write_csv(f, "in.csv", content);
	const char *files[1] = {p};
	udr_import_options o = UDR_IMPORT_OPTIONS_INIT;
	uint64_t v = 0;
	int rc;
	o.mode = mode;
	rc = udr_query_import(&v, f->q, table, files, 1, &o);
	if (rc != 0)
		print_error("import: %s\n", udr_error_last()->message);
	assert_int_equal(rc, 0);
	free(p);
	return v;
}

/* ---- the scanner -------------------------------------------------------------- */

static int fake_exists(const char *name, void *payload)
{
	(void)payload;
	return strcmp(name, "users") == 0 || strcmp(name, "my-table") == 0 || strcmp(name, "t") == 0;
}

static size_t scan(const char *sql, udr__sqlref **refs)
{
	size_t n = 0;
	int rc = udr__sql_scan(refs, &n, sql, fake_exists, NULL);
	if (rc != 0)
		print_error("scan: %s\n", udr_error_last()->message);
	assert_int_equal(rc, 0);
	return n;
}

static void test_query__scan_skips_literals_and_comments(void **state)
{
	udr__sqlref *refs = NULL;
	const char *sql = "SELECT 'users@3', E'it\\'s users@4', $$users@5$$, $q$ users@6 $q$ -- users@7\n"
	                  "/* users@8 /* nested users@9 */ still */ , x.users, \"a@b\", ?, $1, users FROM users@1";
	size_t n = scan(sql, &refs);
	(void)state;
	/* bare names are left to the replacement scan: only users@1 */
	assert_int_equal(n, 1);
	assert_string_equal(refs[0].table, "users");
	assert_true(refs[0].has_ref);
	assert_int_equal(refs[0].start, strlen(sql) - 7);
	free(refs);
}

static void test_query__scan_refs(void **state)
{
	udr__sqlref *refs = NULL;
	const char *sql = "SELECT * FROM users@3 a JOIN \"users@latest\" b USING (id), users@2026-11-01T12:00:00Z,"
	                  " \"my-table@commit:4\", users@branch:main, users@tag:v1.2, udr_log, UDR_TABLES";
	size_t n = scan(sql, &refs);
	(void)state;
	assert_int_equal(n, 8);
	assert_true(refs[0].has_ref);
	assert_int_equal(refs[0].ref.kind, UDR__REF_VERSION);
	assert_int_equal(refs[0].ref.num, 3);
	assert_int_equal(refs[0].end - refs[0].start, strlen("users@3"));
	assert_int_equal(refs[1].ref.kind, UDR__REF_LATEST);
	assert_int_equal(refs[1].end - refs[1].start, strlen("\"users@latest\""));
	assert_int_equal(refs[2].ref.kind, UDR__REF_TIME);
	assert_int_equal(refs[2].end - refs[2].start, strlen("users@2026-11-01T12:00:00Z"));
	assert_string_equal(refs[3].table, "my-table");
	assert_int_equal(refs[3].ref.kind, UDR__REF_COMMIT);
	assert_int_equal(refs[3].ref.num, 4);
	assert_int_equal(refs[4].ref.kind, UDR__REF_BRANCH);
	assert_string_equal(refs[4].ref.text, "main");
	assert_int_equal(refs[5].ref.kind, UDR__REF_TAG);
	assert_string_equal(refs[5].ref.text, "v1.2");
	assert_int_equal(refs[6].special, UDR__SPECIAL_LOG);
	assert_int_equal(refs[7].special, UDR__SPECIAL_TABLES);
	free(refs);
}

static void test_query__scan_rejects_bad_refs(void **state)
{
	static const char *bad[] = {
		"SELECT * FROM users@0",          "SELECT * FROM users@3x",
		"SELECT * FROM \"users@a..b\"",   "SELECT * FROM \"users@3; DROP TABLE t\"",
		"SELECT * FROM \"users@'x'\"",    "SELECT * FROM users@2026-13-45",
		"SELECT * FROM users@commit:",    "SELECT * FROM \"users@\"",
		"SELECT * FROM users@foo:x",      "SELECT * FROM \"users@branch:-x\"",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		udr__sqlref *refs = NULL;
		size_t n = 0;
		int rc = udr__sql_scan(&refs, &n, bad[i], fake_exists, NULL);
		if (rc != UDR_EINVAL)
			print_error("accepted: %s\n", bad[i]);
		assert_int_equal(rc, UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "malformed version reference");
	}
	{
		/* its file storage writes files anywhere: refused, wherever it is called */
		udr__sqlref *refs = NULL;
		size_t n = 0;
		assert_int_equal(udr__sql_scan(&refs, &n, "SELECT * FROM Enable_Logging (storage := 'file')",
		                               fake_exists, NULL),
		                 UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "enable_logging");
		assert_int_equal(udr__sql_scan(&refs, &n, "SELECT 1 AS enable_logging", fake_exists, NULL), 0);
		free(refs);
	}
	{
		udr__sqlref *refs = NULL;
		size_t n = 0;
		assert_int_equal(udr__sql_scan(&refs, &n, "SELECT * FROM nosuch@1", fake_exists, NULL), UDR_ENOTFOUND);
		th_assert_error(UDR_ENOTFOUND, "nosuch");
	}
}

/* ---- time travel ------------------------------------------------------------------ */

static void test_query__time_travel_ten_versions(void **state)
{
	fx *f = *state;
	/* expected: for each version, the comma-joined ids */
	char expect[11][512];
	char cur[512] = "";
	int next_id = 1;
	for (int ver = 1; ver <= 10; ver++) {
		int append = ver > 1 && ver % 3 != 0; /* versions 3, 6, 9 overwrite */
		char csv[1024] = "id,name\n";
		char ids[512] = "";
		uint64_t v;
		for (int k = 0; k < ver; k++, next_id++) {
			char line[64];
			snprintf(line, sizeof(line), "%d,n%d\n", next_id, next_id);
			strcat(csv, line);
			snprintf(line, sizeof(line), "%s%d", ids[0] ? "," : "", next_id);
			strcat(ids, line);
		}
		v = import_csv(f, "users", csv, append ? UDR_IMPORT_APPEND : UDR_IMPORT_OVERWRITE);
		assert_int_equal(v, (uint64_t)ver);
		if (append && cur[0]) {
			char tmp[512];
			snprintf(tmp, sizeof(tmp), "%s,%s", cur, ids);
			strcpy(cur, tmp);
		} else {
			strcpy(cur, ids);
		}
		strcpy(expect[ver], cur);
	}
	for (int ver = 1; ver <= 10; ver++) {
		char sql[200];
		snprintf(sql, sizeof(sql), "SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM users@%d", ver);
		assert_scalar(f, sql, expect[ver]);
	}
	assert_scalar(f, "SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM users", expect[10]);
	assert_scalar(f, "SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM \"users@latest\"", expect[10]);
	assert_scalar(f, "SELECT count(*) FROM users@commit:4", "7"); /* v3 (3 rows) + v4 (4) */
	/* insertion order is kept across appended parts (a plain scan) */
	{
		udr_result *r = NULL;
		char got[512] = "";
		assert_int_equal(udr_query_sql(&r, f->q, "SELECT id FROM users@5", NULL, 0), 0);
		for (size_t i = 0; i < udr_result_row_count(r); i++) {
			udr_value v;
			char one[32];
			assert_int_equal(udr_result_get(&v, r, i, 0), 0);
			snprintf(one, sizeof(one), "%s%lld", i ? "," : "", (long long)v.i64);
			strcat(got, one);
		}
		assert_string_equal(got, expect[5]);
		udr_result_free(r);
	}
	/* append reuses the previous version's parts unchanged */
	{
		udr_version *v4 = NULL, *v5 = NULL;
		assert_int_equal(udr_catalog_get_version(&v4, udr_db_catalog(f->db), "users", 4), 0);
		assert_int_equal(udr_catalog_get_version(&v5, udr_db_catalog(f->db), "users", 5), 0);
		assert_int_equal(v5->nchunks, v4->nchunks + 1);
		for (size_t i = 0; i < v4->nchunks; i++)
			assert_true(udr_hash_equal(&v4->chunks[i], &v5->chunks[i]));
		assert_string_equal(udr_version_get_meta(v5, "udr.rows"), "12");
		assert_string_equal(udr_version_get_meta(v5, "udr.format"), "parquet");
		assert_non_null(strstr(udr_version_get_meta(v5, "udr.schema"), "\"name\":\"id\""));
		udr_version_free(v4);
		udr_version_free(v5);
	}
	/* by time: the version current at each commit's time */
	{
		udr_result *r = NULL;
		assert_int_equal(udr_query_sql(&r, f->q, "SELECT strftime(time, '%Y-%m-%dT%H:%M:%S.%gZ'), new_version "
		                                         "FROM udr_log ORDER BY seq", NULL, 0), 0);
		assert_int_equal(udr_result_row_count(r), 10);
		for (size_t i = 0; i < 10; i++) {
			udr_value t, nv;
			char sql[300], ver[32];
			assert_int_equal(udr_result_get(&t, r, i, 0), 0);
			assert_int_equal(udr_result_get(&nv, r, i, 1), 0);
			snprintf(sql, sizeof(sql), "SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM \"users@%s\"", t.str);
			assert_scalar(f, sql, expect[nv.i64]);
			snprintf(sql, sizeof(sql), "users@%s", t.str);
			{
				uint64_t got = 0;
				assert_int_equal(udr_query_resolve(&got, f->q, sql, NULL), 0);
				snprintf(ver, sizeof(ver), "%llu", (unsigned long long)got);
				assert_int_equal(got, (uint64_t)nv.i64);
			}
		}
		udr_result_free(r);
	}
}

static void test_query__join_two_versions(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	udr_value v;
	import_csv(f, "users", "id,name\n1,ann\n2,bob\n3,cy\n", UDR_IMPORT_OVERWRITE);
	import_csv(f, "users", "id,name\n1,ann\n2,bobby\n4,dee\n", UDR_IMPORT_OVERWRITE);
	assert_int_equal(udr_query_sql(&r, f->q,
	                               "SELECT a.id, a.name AS old, b.name AS new FROM users@1 a "
	                               "JOIN users@2 b ON a.id = b.id WHERE a.name <> b.name",
	                               NULL, 0), 0);
	assert_int_equal(udr_result_row_count(r), 1);
	assert_int_equal(udr_result_get(&v, r, 0, 0), 0);
	assert_int_equal(v.type, UDR_TYPE_INT64);
	assert_int_equal(v.i64, 2);
	assert_int_equal(udr_result_get(&v, r, 0, 2), 0);
	assert_string_equal(v.str, "bobby");
	udr_result_free(r);
	/* a CTE named like a table shadows it; other unknown names go to DuckDB */
	assert_scalar(f, "WITH users AS (SELECT 42 AS id) SELECT id FROM users", "42");
	assert_scalar(f, "SELECT count(*) FROM range(5) users", "5");
}

static void test_query__changelog_table(void **state)
{
	fx *f = *state;
	import_csv(f, "a", "x\n1\n", UDR_IMPORT_OVERWRITE);
	import_csv(f, "b", "y\n1\n", UDR_IMPORT_OVERWRITE);
	import_csv(f, "a", "x\n2\n", UDR_IMPORT_APPEND);
	assert_scalar(f, "SELECT count(*) FROM udr_log", "3");
	assert_scalar(f, "SELECT string_agg(\"table\" || ':' || old_version || '>' || new_version, ' ' ORDER BY seq) "
	                 "FROM udr_log", "a:0>1 b:0>1 a:1>2");
	/* the log grows incrementally within one session */
	import_csv(f, "b", "y\n3\n", UDR_IMPORT_OVERWRITE);
	assert_scalar(f, "SELECT max(seq) FROM udr_log", "4");
	assert_scalar(f, "SELECT string_agg(name || '@' || version || ':' || rows, ' ' ORDER BY name) FROM udr_tables",
	              "a@2:2 b@2:1");
}

static void test_query__diff_rows(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	const char *keys[] = {"id"};
	char *text = NULL;
	import_csv(f, "t", "id,name,score\n1,ann,10\n2,bob,20\n3,cy,30\n", UDR_IMPORT_OVERWRITE);
	import_csv(f, "t", "id,name,score\n1,ann,10\n2,bob,25\n4,dee,40\n", UDR_IMPORT_OVERWRITE);
	assert_int_equal(udr_query_diff_rows(&r, f->q, "t", "1", "2", keys, 1), 0);
	assert_int_equal(udr_result_column_count(r), 6);
	assert_string_equal(udr_result_column_name(r, 0), "change");
	assert_string_equal(udr_result_column_name(r, 1), "id");
	assert_string_equal(udr_result_column_name(r, 2), "old.name");
	assert_string_equal(udr_result_column_name(r, 5), "new.score");
	assert_int_equal(udr_result_format(&text, NULL, r, UDR_OUTPUT_CSV), 0);
	assert_string_equal(text, "change,id,old.name,new.name,old.score,new.score\r\n"
	                          "changed,2,bob,bob,20,25\r\n"
	                          "removed,3,cy,,30,\r\n"
	                          "added,4,,dee,,40\r\n");
	udr_free(text);
	udr_result_free(r);
	/* no differences */
	assert_int_equal(udr_query_diff_rows(&r, f->q, "t", "2", "latest", keys, 1), 0);
	assert_int_equal(udr_result_row_count(r), 0);
	udr_result_free(r);
	/* bad keys */
	{
		const char *nokey[] = {"nope"}, *dup[] = {"name"};
		assert_int_equal(udr_query_diff_rows(&r, f->q, "t", "1", "2", nokey, 1), UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "nope");
		import_csv(f, "t", "id,name,score\n1,ann,10\n2,ann,20\n", UDR_IMPORT_OVERWRITE);
		assert_int_equal(udr_query_diff_rows(&r, f->q, "t", "2", "3", dup, 1), UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "not unique");
		assert_int_equal(udr_query_diff_rows(&r, f->q, "t", "1", "9", keys, 1), UDR_ENOTFOUND);
		th_assert_error(UDR_ENOTFOUND, "version 9");
	}
}

static void test_query__export_round_trip(void **state)
{
	fx *f = *state;
	char *e1 = th_join(f->dir, "e1.csv"), *e2 = th_join(f->dir, "e2.csv"), *pq = th_join(f->dir, "e.parquet");
	char *js = th_join(f->dir, "e.json"), *c1, *c2;
	const char *files[1];
	uint64_t rows = 0, v = 0;
	size_t l1, l2;
	import_csv(f, "src", "id,name,when,amount\n1,\"a, b\",2024-01-02,1.5\n2,\"q\"\"uote\",2024-02-03,\n"
	                     "3,,2024-03-04,-2.25\n", UDR_IMPORT_OVERWRITE);
	assert_int_equal(udr_query_export(&rows, f->q, "src", NULL, e1, UDR_FORMAT_AUTO), 0);
	assert_int_equal(rows, 3);
	files[0] = e1;
	assert_int_equal(udr_query_import(&v, f->q, "copy", files, 1, NULL), 0);
	assert_int_equal(udr_query_export(&rows, f->q, "copy@1", NULL, e2, UDR_FORMAT_AUTO), 0);
	c1 = th_read_file(e1, &l1);
	c2 = th_read_file(e2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(c1, c2, l1);
	free(c1);
	free(c2);
	assert_scalar(f, "SELECT count(*) FROM (SELECT * FROM src EXCEPT SELECT * FROM copy)", "0");
	/* Parquet and JSON round trips */
	assert_int_equal(udr_query_export(&rows, f->q, "src", "1", pq, UDR_FORMAT_AUTO), 0);
	assert_int_equal(udr_query_export(&rows, f->q, "src", "latest", js, UDR_FORMAT_AUTO), 0);
	files[0] = pq;
	assert_int_equal(udr_query_import(&v, f->q, "copy", files, 1, NULL), 0);
	assert_scalar(f, "SELECT count(*) FROM (SELECT * FROM src EXCEPT SELECT * FROM copy)", "0");
	files[0] = js;
	assert_int_equal(udr_query_import(&v, f->q, "copyj", files, 1, NULL), 0);
	assert_scalar(f, "SELECT count(*) FROM (SELECT id, name, amount FROM src EXCEPT SELECT id, name, amount FROM copyj)",
	              "0");
	/* query results to files */
	assert_int_equal(udr_query_sql_to_file(&rows, f->q, "SELECT * FROM src WHERE id > ?",
	                                       (udr_value[]){udr_value_int64(1)}, 1, pq, UDR_FORMAT_AUTO), 0);
	assert_int_equal(rows, 2);
	/* unknown extension */
	assert_int_equal(udr_query_export(&rows, f->q, "src", NULL, "/tmp/x.xyz", UDR_FORMAT_AUTO), UDR_EINVAL);
	free(e1);
	free(e2);
	free(pq);
	free(js);
}

static void test_query__import_sql_and_params(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	udr_value v, params[3];
	uint64_t ver = 0;
	assert_int_equal(udr_query_import_sql(&ver, f->q, "nums", "SELECT range AS n FROM range(?)",
	                                      (udr_value[]){udr_value_int64(1000)}, 1, NULL), 0);
	assert_int_equal(ver, 1);
	assert_scalar(f, "SELECT sum(n) FROM nums", "499500");
	/* values are bound, never spliced: a quote is just data */
	params[0] = udr_value_text("it's'; DROP TABLE nums; --");
	params[1] = udr_value_null();
	params[2] = udr_value_double(2.5);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT ? AS s, ? AS n, ? * 2 AS d", params, 3), 0);
	assert_int_equal(udr_result_get(&v, r, 0, 0), 0);
	assert_string_equal(v.str, "it's'; DROP TABLE nums; --");
	assert_int_equal(udr_result_is_null(r, 0, 1), 1);
	assert_int_equal(udr_result_get(&v, r, 0, 2), 0);
	assert_int_equal(v.type, UDR_TYPE_DOUBLE);
	assert_true(v.f64 == 5.0);
	udr_result_free(r);
	assert_scalar(f, "SELECT count(*) FROM nums", "1000");
	/* parameter count mismatch */
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT ?, ?", params, 1), UDR_EINVAL);
	/* append from a query, then a mismatching one */
	{
		udr_import_options o = UDR_IMPORT_OPTIONS_INIT;
		o.mode = UDR_IMPORT_APPEND;
		o.message = "more";
		assert_int_equal(udr_query_import_sql(&ver, f->q, "nums", "SELECT n + 1000 AS n FROM nums@1", NULL, 0, &o), 0);
		assert_int_equal(ver, 2);
		assert_scalar(f, "SELECT count(*) || ':' || max(n) FROM nums", "2000:1999");
		assert_int_equal(udr_query_import_sql(&ver, f->q, "nums", "SELECT 'x' AS n", NULL, 0, &o), UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "schema mismatch");
		assert_int_equal(udr_query_import_sql(&ver, f->q, "nums", "SELECT 1::BIGINT AS m", NULL, 0, &o), UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "'n' in the table but 'm'");
		assert_scalar(f, "SELECT max(version) FROM udr_tables WHERE name = 'nums'", "2");
	}
	/* an empty result is a version with a schema and no rows */
	assert_int_equal(udr_query_import_sql(&ver, f->q, "empty", "SELECT 1::INTEGER AS a, 'x' AS b WHERE false",
	                                      NULL, 0, NULL), 0);
	assert_scalar(f, "SELECT count(*) FROM empty", "0");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM empty", NULL, 0), 0);
	assert_int_equal(udr_result_column_count(r), 2);
	assert_string_equal(udr_result_column_type_name(r, 0), "INTEGER");
	udr_result_free(r);
}

static void test_query__results_and_renderers(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	udr_value v;
	char *text = NULL;
	assert_int_equal(udr_query_sql(&r, f->q,
	                               "SELECT 1::TINYINT AS i, 2.5::DOUBLE AS d, true AS b, 'x\"y' AS s, "
	                               "NULL::VARCHAR AS n, 12.30::DECIMAL(6,2) AS dec, DATE '2024-01-02' AS dt, "
	                               "[1, 2] AS l, {'k': 'v'} AS st, '\\x01'::BLOB AS bl, 18446744073709551615::UBIGINT AS u",
	                               NULL, 0), 0);
	assert_int_equal(udr_result_column_count(r), 11);
	assert_int_equal(udr_result_column_type(r, 0), UDR_TYPE_INT64);
	assert_int_equal(udr_result_column_type(r, 1), UDR_TYPE_DOUBLE);
	assert_int_equal(udr_result_column_type(r, 2), UDR_TYPE_BOOL);
	assert_int_equal(udr_result_column_type(r, 3), UDR_TYPE_TEXT);
	assert_int_equal(udr_result_column_type(r, 5), UDR_TYPE_OTHER);
	assert_int_equal(udr_result_column_type(r, 9), UDR_TYPE_BLOB);
	assert_string_equal(udr_result_column_type_name(r, 5), "DECIMAL(6,2)");
	assert_string_equal(udr_result_column_type_name(r, 7), "INTEGER[]");
	assert_string_equal(udr_result_column_type_name(r, 8), "STRUCT(\"k\" VARCHAR)");
	assert_int_equal(udr_result_get(&v, r, 0, 5), 0);
	assert_string_equal(v.str, "12.30");
	assert_int_equal(udr_result_get(&v, r, 0, 6), 0);
	assert_string_equal(v.str, "2024-01-02");
	assert_int_equal(udr_result_get(&v, r, 0, 7), 0);
	assert_string_equal(v.str, "[1, 2]");
	assert_int_equal(udr_result_get(&v, r, 0, 9), 0);
	assert_int_equal(v.len, 1);
	assert_int_equal(udr_result_get(&v, r, 0, 4), 0);
	assert_int_equal(v.type, UDR_TYPE_NULL);
	assert_int_equal(udr_result_text(&text, NULL, r, 0, 1), 0);
	assert_string_equal(text, "2.5");
	udr_free(text);
	assert_int_equal(udr_result_text(&text, NULL, r, 0, 4), 0);
	assert_null(text);
	assert_int_equal(udr_result_get(&v, r, 1, 0), UDR_EINVAL);
	assert_int_equal(udr_result_get(&v, r, 0, 11), UDR_EINVAL);
	assert_int_equal(udr_result_format(&text, NULL, r, UDR_OUTPUT_JSON), 0);
	assert_string_equal(text, "[\n{\"i\": 1, \"d\": 2.5, \"b\": true, \"s\": \"x\\\"y\", \"n\": null, \"dec\": 12.30, "
	                          "\"dt\": \"2024-01-02\", \"l\": \"[1, 2]\", \"st\": \"{'k': v}\", \"bl\": \"\\\\x01\", "
	                          "\"u\": 18446744073709551615}\n]\n");
	udr_free(text);
	assert_int_equal(udr_result_format(&text, NULL, r, UDR_OUTPUT_TABLE), 0);
	assert_non_null(strstr(text, "(1 row)"));
	assert_non_null(strstr(text, "i | d   | b    |"));
	udr_free(text);
	assert_int_equal(udr_result_format(&text, NULL, r, 99), UDR_EINVAL);
	udr_result_free(r);
	/* DDL has no rows; many rows cross DuckDB's chunk size */
	assert_int_equal(udr_query_sql(&r, f->q, "CREATE TEMP TABLE scratch (a INT)", NULL, 0), 0);
	udr_result_free(r);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT range AS i FROM range(5000)", NULL, 0), 0);
	assert_int_equal(udr_result_row_count(r), 5000);
	assert_int_equal(udr_result_get(&v, r, 4999, 0), 0);
	assert_int_equal(v.i64, 4999);
	udr_result_free(r);
}

static void test_query__bad_input(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	import_csv(f, "users", "id\n1\n", UDR_IMPORT_OVERWRITE);
	assert_int_equal(udr_query_sql(&r, f->q, "SELEC 1", NULL, 0), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, "syntax error");
	assert_null(r);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM nosuch", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "nosuch");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM nosuch@2", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "'nosuch'");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@2", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "no version 2");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@1999-01-01", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "1999-01-01");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@branch:dev", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "branch 'dev'");
	/* a bare name is a branch, else a tag */
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@foo", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "branch or tag 'foo'");
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@commit:99", NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "commit 99");
	/* injection attempts in references */
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM \"users@1\"\"; DROP VIEW users; --\"", NULL, 0),
	                 UDR_EINVAL);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM \"users@1') ; SELECT ('\"", NULL, 0), UDR_EINVAL);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM users@1x", NULL, 0), UDR_EINVAL);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM \"users\"\"@1\"", NULL, 0), UDR_ENOTFOUND);
	assert_int_equal(udr_query_resolve(&(uint64_t){0}, f->q, "../users", NULL), UDR_EINVAL);
	assert_int_equal(udr_query_resolve(&(uint64_t){0}, f->q, "users", "1;DROP"), UDR_EINVAL);
	assert_scalar(f, "SELECT count(*) FROM users", "1");
	/* imports */
	{
		const char *missing[] = {"/nonexistent/x.csv"};
		const char *weird[] = {f->dir};
		assert_int_equal(udr_query_import(NULL, f->q, "t", missing, 1, NULL), UDR_ENOTFOUND);
		th_assert_error(UDR_ENOTFOUND, "/nonexistent/x.csv");
		assert_int_equal(udr_query_import(NULL, f->q, "t", weird, 1, NULL), UDR_EINVAL);
		assert_int_equal(udr_query_import(NULL, f->q, "bad/name", missing, 1, NULL), UDR_EINVAL);
		{
			char *p = write_csv(f, "x.dat", "a\n1\n");
			const char *files[] = {p};
			assert_int_equal(udr_query_import(NULL, f->q, "t", files, 1, NULL), UDR_EINVAL);
			th_assert_error(UDR_EINVAL, "extension");
			free(p);
		}
		{
			char *p = write_csv(f, "y.csv", "other\nx\n");
			const char *files[] = {p};
			udr_import_options o = UDR_IMPORT_OPTIONS_INIT;
			o.mode = UDR_IMPORT_APPEND;
			assert_int_equal(udr_query_import(NULL, f->q, "users", files, 1, &o), UDR_EINVAL);
			th_assert_error(UDR_EINVAL, "schema mismatch");
			/* a value that does not fit the table's type */
			th_write_file(p, "id\nabc\n", 7);
			assert_int_equal(udr_query_import(NULL, f->q, "users", files, 1, &o), UDR_EINVAL);
			free(p);
		}
	}
	assert_scalar(f, "SELECT max(version) FROM udr_tables WHERE name = 'users'", "1");
}

/* Damage the first part of table's latest version with fn. */
static char *first_part_path(fx *f, const char *table)
{
	udr_version *v = NULL;
	char *sdir = th_join(f->root, "chunks"), *p;
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), table, 0), 0);
	assert_true(v->nchunks > 0);
	p = th_object_path(sdir, &v->chunks[0]);
	udr_version_free(v);
	free(sdir);
	return p;
}

static void test_query__in_place_or_cached(void **state)
{
	fx *f = *state;
	udr_store_config cfg;
	udr_store_get_config(&cfg, udr_db_store(f->db));
	assert_int_equal(udr_query_import_sql(NULL, f->q, "big", "SELECT range AS i, range % 7 AS g, 'row ' || range AS s "
	                                      "FROM range(300000)", NULL, 0, NULL), 0);
	assert_scalar(f, "SELECT sum(i) FROM big", "44999850000");
	/* parts are stored whole (UDR_PUT_WHOLE) in every store format, so
	 * DuckDB reads them in place: nothing is copied into the cache (parts
	 * stored split by older versions go through the cache: tests/cli) */
	(void)cfg;
	assert_int_equal(cached_parts(f), 0);
	assert_scalar(f, "SELECT count(*) FROM big WHERE g = 3", "42857");
	assert_int_equal(cached_parts(f), 0);
}

static void test_query__corrupt_part(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	char *p;
	udr_query *q2 = NULL;
	udr_query_options o = UDR_QUERY_OPTIONS_INIT;
	/* flipped bit: caught by the hash check before DuckDB reads it */
	import_csv(f, "flip", "id,name\n1,a\n2,b\n", UDR_IMPORT_OVERWRITE);
	p = first_part_path(f, "flip");
	chmod(p, 0644);
	th_flip_bit(p, th_exists(p) ? 20 : 0);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM flip", NULL, 0), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, "flip");
	free(p);
	/* truncated, with verification off: DuckDB's error names the part */
	import_csv(f, "trunc", "id,name\n1,a\n2,b\n", UDR_IMPORT_OVERWRITE);
	p = first_part_path(f, "trunc");
	chmod(p, 0644);
	th_truncate(p, 30);
	o.verify = 0;
	assert_int_equal(udr_query_open(&q2, f->db, &o), 0);
	assert_int_equal(udr_query_sql(&r, q2, "SELECT * FROM trunc", NULL, 0), UDR_ECORRUPT);
	{
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_version *v = NULL;
		assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "trunc", 0), 0);
		udr_hash_tohex(hex, &v->chunks[0]);
		th_assert_error(UDR_ECORRUPT, hex);
		udr_version_free(v);
	}
	udr_query_close(q2);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM trunc", NULL, 0), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, "trunc");
	/* a missing part */
	unlink(p);
	assert_int_equal(udr_query_sql(&r, f->q, "SELECT * FROM trunc", NULL, 0), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, "missing");
	free(p);
	/* other tables are unaffected */
	import_csv(f, "fine", "id\n7\n", UDR_IMPORT_OVERWRITE);
	assert_scalar(f, "SELECT id FROM fine", "7");
}

/* SQL writes through the C API: messages, transactions over calls, the
 * compaction thresholds, optimize and import options. */
static void test_query__sql_writes(void **state)
{
	fx *f = *state;
	udr_optimize_options oo = UDR_OPTIMIZE_OPTIONS_INIT;
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	udr_version *v = NULL;
	uint64_t ver = 0;
	const char *keys[1] = {"id"};
	char *p;
	const char *files[1];
	assert_int_equal(udr_query_set_message(f->q, "made"), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "CREATE TABLE w AS SELECT range AS id FROM range(10)", NULL, 0), 0);
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "w", 0), 0);
	assert_string_equal(v->message, "made");
	udr_version_free(v);
	assert_int_equal(udr_query_set_message(f->q, NULL), 0);
	/* a transaction over several calls; ROLLBACK and COMMIT need one */
	assert_int_equal(udr_query_sql(NULL, f->q, "COMMIT", NULL, 0), UDR_EINVAL);
	assert_int_equal(udr_query_sql(NULL, f->q, "BEGIN", NULL, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "DELETE FROM w WHERE id < 5", NULL, 0), 0);
	assert_scalar(f, "SELECT count(*) FROM w", "5");
	assert_int_equal(udr_query_sql(NULL, f->q, "ROLLBACK", NULL, 0), 0);
	assert_scalar(f, "SELECT count(*) FROM w", "10");
	assert_int_equal(udr_query_sql(NULL, f->q, "BEGIN", NULL, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "DELETE FROM w WHERE id = ?", (udr_value[]){udr_value_int64(3)}, 1), 0);
	assert_int_equal(udr_query_optimize(NULL, f->q, "w", NULL), UDR_EINVAL); /* not inside a transaction */
	assert_int_equal(udr_query_sql(NULL, f->q, "COMMIT", NULL, 0), 0);
	assert_scalar(f, "SELECT count(*) FROM w", "9");
	/* compaction thresholds: two small parts are merged */
	oo.deleted_pct = 0;
	oo.small_parts = 2;
	assert_int_equal(udr_query_set_compaction(f->q, &oo), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "INSERT INTO w VALUES (100)", NULL, 0), 0);
	assert_scalar(f, "SELECT parts FROM udr_tables WHERE name = 'w'", "1");
	assert_scalar(f, "SELECT message FROM udr_log WHERE \"table\" = 'w' ORDER BY seq DESC LIMIT 1", "compaction after a SQL write");
	assert_scalar(f, "SELECT count(*) || ' ' || sum(id) FROM w", "10 142");
	assert_int_equal(udr_query_set_compaction(f->q, NULL), 0);
	oo.version = 99;
	assert_int_equal(udr_query_set_compaction(f->q, &oo), UDR_EINVAL);
	assert_int_equal(udr_query_optimize(&ver, f->q, "w", &oo), UDR_EINVAL);
	assert_int_equal(udr_query_optimize(&ver, f->q, "nosuch", NULL), UDR_ENOTFOUND);
	assert_int_equal(udr_query_optimize(&ver, f->q, "w", NULL), 0);
	assert_int_equal(ver, 0); /* nothing to compact */
	/* import keys: files only; a version-1 options struct has none */
	io.keys = keys;
	io.nkeys = 1;
	assert_int_equal(udr_query_import_sql(NULL, f->q, "w", "SELECT 1 AS id", NULL, 0, &io), UDR_EINVAL);
	p = write_csv(f, "w.csv", "id\n1\n2\n");
	files[0] = p;
	assert_int_equal(udr_query_import(&ver, f->q, "w", files, 1, &io), 0);
	assert_scalar(f, "SELECT count(*) || ' ' || sum(id) FROM w", "2 3");
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "w", 0), 0);
	assert_non_null(udr_version_get_meta(v, "udr.changes"));
	udr_version_free(v);
	io.version = 1;
	assert_int_equal(udr_query_import(&ver, f->q, "w", files, 1, &io), 0);
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "w", 0), 0);
	assert_null(udr_version_get_meta(v, "udr.parts")); /* an import of every row */
	udr_version_free(v);
	free(p);
}

/* UDR_TYPE_OTHER parameters whose i64 names their type (UDR_OTHER_*) are
 * bound as values of it: two DECIMALs compare as numbers, not strings. */
static void test_query__typed_other_params(void **state)
{
	fx *f = *state;
	udr_result *r = NULL;
	char *t = NULL;
	udr_value p[10] = {
		{UDR_TYPE_OTHER, UDR_OTHER_DECIMAL, 0, "9", 1},      {UDR_TYPE_OTHER, UDR_OTHER_DECIMAL, 0, "10.50", 5},
		{UDR_TYPE_OTHER, UDR_OTHER_DATE, 0, "-1", 2},        {UDR_TYPE_OTHER, UDR_OTHER_TIMESTAMP, 0, "86400000001", 11},
		{UDR_TYPE_OTHER, UDR_OTHER_TIMESTAMPTZ, 0, "0", 1},  {UDR_TYPE_OTHER, UDR_OTHER_TIME, 0, "3600000000", 10},
		{UDR_TYPE_OTHER, UDR_OTHER_HUGEINT, 0, "-170141183460469231731687303715884105728", 40},
		{UDR_TYPE_OTHER, UDR_OTHER_TEXT, 0, "10", 2},        {UDR_TYPE_OTHER, UDR_OTHER_TEXT, 0, "9", 1},
		{UDR_TYPE_OTHER, UDR_OTHER_DECIMAL, 0, "-0.05", 5},
	};
	assert_int_equal(udr_query_sql(&r, f->q,
	                               "SELECT (? < ?)::VARCHAR || ' ' || ?::VARCHAR || ' ' || ?::VARCHAR || ' ' || "
	                               "(?::TIMESTAMPTZ = TIMESTAMPTZ '1970-01-01 00:00:00+00')::VARCHAR || ' ' || ?::VARCHAR "
	                               "|| ' ' || ?::VARCHAR || ' ' || (? < ?)::VARCHAR || ' ' || typeof(?)",
	                               p, 10),
	                 0);
	assert_int_equal(udr_result_text(&t, NULL, r, 0, 0), 0);
	assert_string_equal(t, "true 1969-12-31 1970-01-02 00:00:00.000001 true 01:00:00 "
	                       "-170141183460469231731687303715884105728 true DECIMAL(3,2)");
	udr_free(t);
	udr_result_free(r);
	/* text that is not of its kind: refused, nothing run */
	p[0].str = "9x";
	p[0].len = 2;
	assert_int_equal(udr_query_sql(NULL, f->q, "SELECT ?", p, 1), UDR_EINVAL);
	{ /* DIGITS[.DIGITS]: "." was bound as 0 */
		const char *bad[] = {".", "-.", "1.", ".5", "-", "", "1.2.3"};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			p[0].str = bad[i];
			p[0].len = strlen(bad[i]);
			assert_int_equal(udr_query_sql(NULL, f->q, "SELECT ?", p, 1), UDR_EINVAL);
		}
	}
	p[6].str = "170141183460469231731687303715884105728"; /* 2^127: past HUGEINT */
	p[6].len = strlen(p[6].str);
	assert_int_equal(udr_query_sql(NULL, f->q, "SELECT ?", p + 6, 1), UDR_EINVAL);
	p[2].i64 = 99;
	assert_int_equal(udr_query_sql(NULL, f->q, "SELECT ?", p + 2, 1), UDR_EINVAL);
}

/* udr_query_set_read_only: what would commit is refused before it writes,
 * comments between keywords included; reads and temporary tables work. */
static void test_query__read_only(void **state)
{
	fx *f = *state;
	udr_catalog *cat = udr_db_catalog(f->db);
	uint64_t head = 0, after = 0;
	udr_stream *st = NULL;
	const char *refused[] = {"DELETE/**/FROM r", "INSERT /* c */ INTO r VALUES (9)", "UPDATE r SET id = 0",
	                         "DROP TABLE r", "CREATE TABLE r2 AS SELECT 1", "BEGIN", "INSERT INTO r@main VALUES (1)",
	                         "MERGE INTO r USING (SELECT 1 AS id) s ON r.id = s.id WHEN MATCHED THEN DELETE"};
	assert_int_equal(udr_query_sql(NULL, f->q, "CREATE TABLE r AS SELECT range AS id FROM range(3)", NULL, 0), 0);
	assert_int_equal(udr_catalog_head(&head, cat), 0);
	assert_int_equal(udr_query_set_read_only(NULL, 1), UDR_EINVAL);
	assert_int_equal(udr_query_set_read_only(f->q, 1), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(udr_query_sql(NULL, f->q, refused[i], NULL, 0), UDR_EINVAL);
		assert_non_null(strstr(udr_error_last()->message, "read-only session"));
	}
	assert_int_equal(udr_query_sql_stream(&st, f->q, "DELETE FROM r", NULL, 0), UDR_EINVAL);
	assert_null(st);
	/* the calls that commit are refused too (an import committed) */
	{
		uint64_t v = 0;
		udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
		const char *files[] = {"/nonexistent.csv"};
		io.mode = UDR_IMPORT_APPEND;
		assert_int_equal(udr_query_import_sql(&v, f->q, "r", "SELECT 99 AS id", NULL, 0, &io), UDR_EINVAL);
		assert_non_null(strstr(udr_error_last()->message, "read-only session: udr_query_import_sql"));
		assert_int_equal(udr_query_import(&v, f->q, "r", files, 1, NULL), UDR_EINVAL);
		assert_int_equal(udr_query_optimize(&v, f->q, "r", NULL), UDR_EINVAL);
		assert_int_equal(udr_query_merge_abort(f->q, NULL), UDR_EINVAL);
		assert_non_null(strstr(udr_error_last()->message, "read-only session"));
	}
	assert_scalar(f, "SELECT count(*) FROM r", "3");
	assert_int_equal(udr_query_sql(NULL, f->q, "CREATE TEMP TABLE s AS SELECT 1 AS x", NULL, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "INSERT INTO s VALUES (2)", NULL, 0), 0);
	assert_scalar(f, "SELECT sum(x) FROM s", "3");
	assert_int_equal(udr_catalog_head(&after, cat), 0);
	assert_int_equal(after, head); /* nothing committed */
	assert_int_equal(udr_query_set_read_only(f->q, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "BEGIN", NULL, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "DELETE FROM r WHERE id = 0", NULL, 0), 0);
	/* read-only inside a transaction: reads at its snapshot (the DB-API
	 * over a Database with an open BEGIN was refused every SELECT) */
	assert_int_equal(udr_query_set_read_only(f->q, 1), 0);
	assert_scalar(f, "SELECT count(*) FROM r", "2");
	assert_int_equal(udr_query_set_read_only(f->q, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "COMMIT", NULL, 0), 0);
	assert_scalar(f, "SELECT count(*) FROM r", "2");
}

/* SQL writes through the stream API (what `udr sql` and Python call):
 * written and committed as by udr_query_sql, with the message; the
 * statement's result is a stream too.  Reads still stream. */
/* udr_query_set_branch: bare names read the branch, writes commit there,
 * the session cannot change branch inside a transaction. */
static void test_query__branch(void **state)
{
	fx *f = *state;
	udr_catalog *cat = udr_db_catalog(f->db);
	udr_version *v = NULL;
	uint64_t seq = 0;
	assert_int_equal(udr_query_sql(NULL, f->q, "CREATE TABLE bt AS SELECT range AS id FROM range(4)", NULL, 0), 0);
	assert_int_equal(udr_branch_create(&seq, cat, "dev", NULL), 0);
	assert_int_equal(udr_query_set_branch(NULL, "dev"), UDR_EINVAL);
	assert_int_equal(udr_query_set_branch(f->q, "nosuch"), UDR_ENOTFOUND);
	assert_int_equal(udr_query_set_branch(f->q, "bad..name"), UDR_EINVAL);
	assert_int_equal(udr_query_set_branch(f->q, "branch:dev"), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "DELETE FROM bt WHERE id = 0", NULL, 0), 0);
	assert_scalar(f, "SELECT count(*) FROM bt", "3");
	assert_scalar(f, "SELECT count(*) FROM bt@branch:main", "4");
	assert_scalar(f, "SELECT branch FROM udr_log ORDER BY seq DESC LIMIT 1", "dev");
	/* main's latest is untouched */
	assert_int_equal(udr_catalog_get_version(&v, cat, "bt", 0), 0);
	assert_int_equal(v->version, 1);
	udr_version_free(v);
	/* a transaction stays on its branch */
	assert_int_equal(udr_query_sql(NULL, f->q, "BEGIN", NULL, 0), 0);
	assert_int_equal(udr_query_set_branch(f->q, NULL), UDR_EINVAL);
	assert_int_equal(udr_query_set_branch(f->q, "dev"), 0); /* unchanged */
	assert_int_equal(udr_query_sql(NULL, f->q, "INSERT INTO bt VALUES (9)", NULL, 0), 0);
	assert_int_equal(udr_query_sql(NULL, f->q, "COMMIT", NULL, 0), 0);
	assert_int_equal(udr_query_set_branch(f->q, "main"), 0);
	assert_scalar(f, "SELECT count(*) FROM bt", "4");
	assert_scalar(f, "SELECT count(*) FROM bt@branch:dev", "4");
	assert_scalar(f, "SELECT max(id) FROM bt@branch:dev", "9");
}

static void test_query__sql_writes_stream(void **state)
{
	fx *f = *state;
	udr_stream *s = NULL, *s2 = NULL;
	const udr_result *b = NULL;
	udr_version *v = NULL;
	udr_value x;
	assert_int_equal(udr_query_set_message(f->q, "streamed"), 0);
	assert_int_equal(udr_query_sql_stream(&s, f->q, "CREATE TABLE sw AS SELECT range AS id FROM range(10)", NULL, 0), 0);
	assert_non_null(udr_stream_columns(s));
	while (udr_stream_next(&b, s) == 0 && b)
		;
	udr_stream_free(s);
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "sw", 0), 0);
	assert_string_equal(v->message, "streamed");
	assert_int_equal(v->version, 1);
	udr_version_free(v);
	/* a write with parameters: its count is the stream's one row */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "DELETE FROM sw WHERE id < ?",
	                                      (udr_value[]){udr_value_int64(3)}, 1), 0);
	assert_int_equal(udr_stream_next(&b, s), 0);
	assert_non_null(b);
	assert_int_equal(udr_result_row_count(b), 1);
	assert_int_equal(udr_result_get(&x, b, 0, 0), 0);
	assert_int_equal(x.i64, 3);
	assert_int_equal(udr_stream_next(&b, s), 0);
	assert_null(b);
	udr_stream_free(s);
	assert_scalar(f, "SELECT count(*) FROM sw", "7");
	assert_scalar(f, "SELECT message FROM udr_log WHERE \"table\" = 'sw' ORDER BY seq DESC LIMIT 1", "streamed");
	/* a transaction over stream calls, and a read inside it streams */
	assert_int_equal(udr_query_set_message(f->q, "txn"), 0);
	assert_int_equal(udr_query_sql_stream(&s, f->q, "BEGIN", NULL, 0), 0);
	udr_stream_free(s);
	assert_int_equal(udr_query_sql_stream(&s, f->q, "INSERT INTO sw VALUES (100)", NULL, 0), 0);
	udr_stream_free(s);
	assert_int_equal(udr_query_sql_stream(&s2, f->q, "SELECT id FROM sw ORDER BY id", NULL, 0), 0);
	/* left open, unread: COMMIT reads its rows into memory first */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "COMMIT", NULL, 0), 0);
	udr_stream_free(s);
	{
		size_t n = 0;
		while (udr_stream_next(&b, s2) == 0 && b)
			n += udr_result_row_count(b);
		assert_int_equal(n, 8);
	}
	udr_stream_free(s2);
	assert_int_equal(udr_catalog_get_version(&v, udr_db_catalog(f->db), "sw", 0), 0);
	assert_string_equal(v->message, "txn");
	assert_int_equal(v->version, 3);
	udr_version_free(v);
	/* a BEGIN ... COMMIT script in one call; a failing one commits nothing */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "BEGIN; DELETE FROM sw WHERE id = 100; INSERT INTO sw VALUES (200); COMMIT",
	                                      NULL, 0), 0);
	udr_stream_free(s);
	assert_scalar(f, "SELECT count(*) || ' ' || max(id) FROM sw", "8 200");
	assert_int_equal(udr_query_sql_stream(&s, f->q, "BEGIN; DELETE FROM sw; SELECT * FROM nosuch; COMMIT", NULL, 0),
	                 UDR_ENOTFOUND);
	assert_null(s);
	assert_scalar(f, "SELECT count(*) FROM sw", "8");
	assert_int_equal(udr_query_set_message(f->q, NULL), 0);
}

/* Read a file written by the renderers (malloc'd, NUL-terminated). */
static char *slurp_fd(int fd)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	ssize_t got;
	lseek(fd, 0, SEEK_SET);
	while ((got = read(fd, buf + n, cap - n)) > 0) {
		n += (size_t)got;
		if (n == cap)
			buf = realloc(buf, (cap *= 2) + 1);
	}
	buf[n] = '\0';
	return buf;
}

/* Rows of a stream, counted batch by batch; the sum of column 0 (BIGINT). */
static uint64_t drain(udr_stream *s, int64_t *sum, size_t *batches)
{
	const udr_result *b = NULL;
	uint64_t rows = 0;
	*sum = 0;
	*batches = 0;
	while (udr_stream_next(&b, s) == 0 && b) {
		assert_true(udr_result_row_count(b) > 0);
		for (size_t i = 0; i < udr_result_row_count(b); i++) {
			udr_value v;
			assert_int_equal(udr_result_get(&v, b, i, 0), 0);
			*sum += v.i64;
		}
		rows += udr_result_row_count(b);
		(*batches)++;
	}
	return rows;
}

static void test_query__stream(void **state)
{
	fx *f = *state;
	udr_stream *s = NULL, *s2 = NULL;
	const udr_result *b = NULL;
	udr_result *r = NULL;
	char *a = NULL, *c = NULL;
	int64_t sum;
	size_t batches;
	FILE *t1, *t2;
	import_csv(f, "t", "id,name\n1,a\n2,b\n3,c\n", UDR_IMPORT_OVERWRITE);
	/* batches: bounded (a DuckDB chunk), in order, all rows */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "SELECT i FROM range(10000) r(i)", NULL, 0), 0);
	assert_int_equal(udr_result_column_count(udr_stream_columns(s)), 1);
	assert_string_equal(udr_result_column_name(udr_stream_columns(s), 0), "i");
	assert_int_equal(udr_result_row_count(udr_stream_columns(s)), 0);
	assert_int_equal(udr_stream_next(&b, s), 0);
	assert_non_null(b);
	assert_true(udr_result_row_count(b) <= 2048);
	/* another statement on the session: the stream's rest is read into
	 * memory first, the stream goes on and the batch in hand stays valid */
	assert_scalar(f, "SELECT count(*) FROM t", "3");
	{
		udr_value v;
		size_t n0 = udr_result_row_count(b);
		assert_int_equal(udr_result_get(&v, b, n0 - 1, 0), 0);
		assert_int_equal(v.i64, (int64_t)n0 - 1);
		assert_int_equal(drain(s, &sum, &batches) + n0, 10000);
		assert_int_equal(sum + (int64_t)(n0 * (n0 - 1) / 2), 49995000);
	}
	udr_stream_free(s);
	/* a UDR table, parameters; the session closed while a stream is open */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "SELECT id FROM t WHERE id >= ?", (udr_value[]){udr_value_int64(2)}, 1), 0);
	assert_int_equal(udr_query_sql_stream(&s2, f->q, "SELECT i FROM range(5000) r(i)", NULL, 0), 0);
	assert_int_equal(drain(s, &sum, &batches), 2); /* settled when s2 started */
	assert_int_equal(sum, 5);
	udr_query_close(f->q);
	f->q = NULL;
	assert_int_equal(drain(s2, &sum, &batches), 5000);
	assert_int_equal(sum, 12497500);
	udr_stream_free(s);
	udr_stream_free(s2);
	assert_int_equal(udr_query_open(&f->q, f->db, NULL), 0);
	/* a stream stopped early, then a statement that registers udr_tables */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "SELECT i FROM range(100000) r(i)", NULL, 0), 0);
	udr_stream_free(s);
	assert_scalar(f, "SELECT count(*) FROM udr_tables", "1");
	/* binding errors come from the call, nothing is returned */
	assert_int_equal(udr_query_sql_stream(&s, f->q, "SELECT * FROM nope", NULL, 0), UDR_ENOTFOUND);
	assert_null(s);
	assert_int_equal(udr_query_sql_stream(&s, f->q, "COPY t TO '/tmp/x.csv'", NULL, 0), UDR_EINVAL);
	/* an error while running (from the call, or from a later batch when
	 * DuckDB meets it later) ends the stream, and stays */
	{
		int rc = udr_query_sql_stream(&s, f->q,
		                              "SELECT CASE WHEN i = 1200000 THEN error('boom') ELSE i END AS x "
		                              "FROM range(1500000) r(i)", NULL, 0);
		if (rc == 0) {
			while ((rc = udr_stream_next(&b, s)) == 0 && b)
				;
			assert_int_equal(rc, UDR_EINVAL);
			assert_int_equal(udr_stream_next(&b, s), UDR_EINVAL);
			assert_null(b);
		}
		assert_int_equal(rc, UDR_EINVAL);
		th_assert_error(UDR_EINVAL, "boom");
		udr_stream_free(s);
		s = NULL;
	}
	/* udr_stream_write renders as udr_result_write for one batch; an empty
	 * result gets its header */
	for (int fmt = UDR_OUTPUT_TABLE; fmt <= UDR_OUTPUT_NDJSON; fmt++) {
		const char *q = fmt == UDR_OUTPUT_TABLE ? "SELECT id, name FROM t WHERE id > 5"
		                                        : "SELECT id, name, 1.5::DECIMAL(3,1) AS d FROM t ORDER BY id";
		uint64_t rows = 99;
		t1 = tmpfile();
		t2 = tmpfile();
		assert_int_equal(udr_query_sql(&r, f->q, q, NULL, 0), 0);
		assert_int_equal(udr_result_write(r, fileno(t1), fmt), 0);
		assert_int_equal(udr_query_sql_stream(&s, f->q, q, NULL, 0), 0);
		assert_int_equal(udr_stream_write(&rows, s, fileno(t2), fmt), 0);
		assert_int_equal(rows, udr_result_row_count(r));
		a = slurp_fd(fileno(t1));
		c = slurp_fd(fileno(t2));
		assert_string_equal(a, c);
		free(a);
		free(c);
		udr_result_free(r);
		udr_stream_free(s);
		fclose(t1);
		fclose(t2);
	}
	/* the aligned table widens per batch: a wider value in a later batch */
	t2 = tmpfile();
	assert_int_equal(udr_query_sql_stream(&s, f->q,
	                                      "SELECT CASE WHEN i < 3000 THEN 'x' ELSE 'wider' END AS v, i FROM range(3001) r(i)",
	                                      NULL, 0), 0);
	assert_int_equal(udr_stream_write(NULL, s, fileno(t2), UDR_OUTPUT_TABLE), 0);
	c = slurp_fd(fileno(t2));
	assert_true(strncmp(c, "v | i\n--+-----\nx |    0\n", 22) == 0);
	assert_non_null(strstr(c, "\nx | 2047\n"));
	assert_non_null(strstr(c, "\nwider | 3000\n(3001 rows)\n"));
	free(c);
	udr_stream_free(s);
	fclose(t2);
	/* a closed pipe: UDR_EIO with errno EPIPE, for the caller to stop
	 * quietly, under SIGPIPE's default action too (it killed the caller:
	 * a library blocks it around its writes; a review) */
	{
		int p[2];
		sigset_t pending;
		void (*old)(int) = signal(SIGPIPE, SIG_DFL);
		assert_int_equal(pipe(p), 0);
		close(p[0]);
		assert_int_equal(udr_query_sql_stream(&s, f->q, "SELECT i FROM range(100000) r(i)", NULL, 0), 0);
		assert_int_equal(udr_stream_write(NULL, s, p[1], UDR_OUTPUT_CSV), UDR_EIO);
		assert_int_equal(errno, EPIPE);
		udr_stream_free(s);
		assert_int_equal(udr_query_sql(&r, f->q, "SELECT 1 AS x", NULL, 0), 0);
		assert_int_equal(udr_result_write(r, p[1], UDR_OUTPUT_CSV), UDR_EIO);
		assert_int_equal(errno, EPIPE);
		udr_result_free(r);
		r = NULL;
		sigpending(&pending);
		assert_false(sigismember(&pending, SIGPIPE)); /* taken, not left pending */
		close(p[1]);
		signal(SIGPIPE, old);
	}
}


static void test_query__import_types(void **state)
{
	fx *f = *state;
	char *p = write_csv(f, "ty.csv", "id,at,day\n1,2026-01-02 03:04:05+02,2026-01-02\n");
	const char *files[1] = {p};
	const char *types[] = {"at", "TIMESTAMP WITH TIME ZONE", "day", "VARCHAR"};
	const char *bad[] = {"nope", "DATE"};
	udr_import_options o = UDR_IMPORT_OPTIONS_INIT;
	struct { unsigned int version; int format, mode; const char *message, *ref; } v1 = {1, 0, 0, "v1", NULL};
	uint64_t v = 0;
	o.types = types;
	o.ntypes = 2;
	assert_int_equal(udr_query_import(&v, f->q, "ty", files, 1, &o), 0);
	assert_scalar(f, "SELECT typeof(\"at\") || ' ' || typeof(\"day\") || ' ' || typeof(id) FROM ty",
	              "TIMESTAMP WITH TIME ZONE VARCHAR BIGINT");
	assert_scalar(f, "SELECT epoch(\"at\")::BIGINT FROM ty", "1767315845");
	o.types = bad;
	o.ntypes = 1;
	assert_int_equal(udr_query_import(&v, f->q, "ty", files, 1, &o), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, "nope");
	bad[0] = "id";
	bad[1] = "NOSUCHTYPE";
	assert_int_equal(udr_query_import(&v, f->q, "ty", files, 1, &o), UDR_EINVAL);
	o.types = NULL;
	assert_int_equal(udr_query_import(&v, f->q, "ty", files, 1, &o), UDR_EINVAL);
	/* callers built with version 1 of the options (no types) still work */
	assert_int_equal(udr_query_import(&v, f->q, "ty", files, 1, (const udr_import_options *)&v1), 0);
	assert_int_equal(v, 2);
	assert_scalar(f, "SELECT typeof(\"at\") FROM ty", "TIMESTAMP WITH TIME ZONE");
	free(p);
}

/* A cleaner of dead imports' directories (fsck, gc's cache trim) running
 * while imports start: a directory made but not yet locked looked dead, was
 * removed, and the import failed with "cannot lock the import directory ...:
 * No such file or directory" (CI, stop 30, test_gc_concurrent). */
typedef struct cleaner_arg {
	udr_db *db;
	volatile int stop;
	uint64_t removed;
	int failed;
} cleaner_arg;

static void *cleaner_main(void *p)
{
	cleaner_arg *a = p;
	while (!a->stop) {
		uint64_t n = 0;
		if (udr_query_clean_temp(&n, a->db, NULL) != 0)
			a->failed = 1;
		a->removed += n;
	}
	return NULL;
}

static void test_query__imports_survive_a_concurrent_temp_cleaner(void **state)
{
	fx *f = *state;
	cleaner_arg a = {f->db, 0, 0, 0};
	pthread_t t;
	int fails = 0;
	assert_int_equal(pthread_create(&t, NULL, cleaner_main, &a), 0);
	for (int i = 0; i < 600; i++) {
		uint64_t v = 0;
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT %d AS n", i);
		if (udr_query_import_sql(&v, f->q, "race", sql, NULL, 0, NULL) != 0) {
			print_error("import %d: %s\n", i, udr_error_last()->message);
			fails++;
		}
	}
	a.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(fails, 0);
	assert_int_equal(a.failed, 0);
	/* every import finished, and no live import's directory was taken
	 * for dead (it is locked before it is named import-*) */
	assert_int_equal(a.removed, 0);
	{ /* an import killed before naming its directory: removed once old */
		char *tmp = th_join(f->root, "cache/query/tmp"), *young = th_join(tmp, "new-import-1-1-aa"),
		     *old = th_join(tmp, "new-import-2-2-bb");
		struct timespec t[2] = {{0, UTIME_OMIT}, {time(NULL) - 7200, 0}};
		uint64_t n = 0;
		assert_int_equal(mkdir(young, 0777), 0);
		assert_int_equal(mkdir(old, 0777), 0);
		assert_int_equal(utimensat(AT_FDCWD, old, t, 0), 0);
		assert_int_equal(udr_query_clean_temp(&n, f->db, NULL), 0);
		assert_int_equal(n, 1);
		assert_int_equal(access(young, F_OK), 0);
		assert_int_not_equal(access(old, F_OK), 0);
		free(tmp);
		free(young);
		free(old);
	}
	assert_scalar(f, "SELECT n FROM race", "599");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query__scan_skips_literals_and_comments),
		cmocka_unit_test(test_query__scan_refs),
		cmocka_unit_test(test_query__scan_rejects_bad_refs),
		cmocka_unit_test_setup_teardown(test_query__time_travel_ten_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__join_two_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__changelog_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__diff_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__export_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__import_sql_and_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__results_and_renderers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__import_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__in_place_or_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__corrupt_part, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__sql_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__sql_writes_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__branch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__typed_other_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__imports_survive_a_concurrent_temp_cleaner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query__sql_writes, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_query__time_travel_ten_versions, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_query__export_round_trip, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_query__in_place_or_cached, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_query__corrupt_part, setup_raw, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
#endif
