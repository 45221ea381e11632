/*
 * bench_sqlwrite.c - SQL writes (issue 13): what an UPDATE of one row and of
 * 1% of the rows costs in bytes and time, against DuckDB's own UPDATE in a
 * DuckDB database file over the same data, and what the next full scan
 * costs with deletion vectors against the same rows compacted; the
 * re-import of a nightly dump (CSV) with 1% of its rows changed, matched on
 * its key (import --key), against DuckDB reading the dump; and the first
 * rows of SELECT * ... LIMIT 10 against DuckDB over the same Parquet files.
 * Run by bench/bench_sqlwrite.sh; prints ratios measured in one run.
 *
 *   bench_sqlwrite WORKDIR ROWS REPEAT
 */

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <duckdb.h>
#include <udr/udr.h>
#include <udr/query.h>

#define GEN "SELECT range AS id, range %% 1000 AS g, (range * 7919 %% 100003) / 100003.0 AS x, " \
            "'name-' || (range %% 5000) AS s FROM range(%llu)"
#define SCAN "SELECT count(*), sum(x), max(s), sum(id) FROM %s"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double best(const double *v, int n)
{
	double b = v[0];
	for (int i = 1; i < n; i++)
		b = v[i] < b ? v[i] : b;
	return b;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_sqlwrite: %s: %s\n", what, udr_error_last()->message);
	exit(1);
}

static void duck(duckdb_connection c, const char *sql)
{
	duckdb_result r;
	if (duckdb_query(c, sql, &r) == DuckDBError) {
		fprintf(stderr, "duckdb: %s\n", duckdb_result_error(&r));
		exit(1);
	}
	duckdb_destroy_result(&r);
}

static uint64_t g_bytes;
static int add_size(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)f;
	if (flag == FTW_F && !strstr(p, "/chunks/tmp/"))
		g_bytes += (uint64_t)st->st_size;
	return 0;
}

/* Bytes of the objects in the chunk store. */
static uint64_t store_bytes(const char *root)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/chunks", root);
	g_bytes = 0;
	nftw(p, add_size, 32, FTW_PHYS);
	return g_bytes;
}

static void usql(udr_query *q, const char *sql)
{
	if (udr_query_sql(NULL, q, sql, NULL, 0) < 0)
		die(sql);
}

/* The chunks of table's latest version (parts, no deletion vectors: a
 * table just created) as a DuckDB list of paths. */
static void parts_list(char *out, size_t cap, udr_db *db, const char *table)
{
	udr_version *v = NULL;
	size_t n = 0;
	if (udr_catalog_get_version(&v, udr_db_catalog(db), table, 0) < 0)
		die("version");
	n += (size_t)snprintf(out + n, cap - n, "[");
	for (size_t i = 0; i < v->nchunks && n < cap; i++) {
		char *path = NULL;
		if (udr_store_local_path(&path, udr_db_store(db), &v->chunks[i]) != 0)
			die("local path");
		n += (size_t)snprintf(out + n, cap - n, "%s'%s'", i ? ", " : "", path);
		free(path);
	}
	snprintf(out + n, cap - n, "]");
	udr_version_free(v);
}

static void row(const char *what, double u, double d, const char *goal)
{
	printf("%-44s %10.4f s %10.4f s   ratio %7.2fx   goal %s\n", what, u, d, u / d, goal);
}

int main(int argc, char **argv)
{
	char root[4096], dfile[4096], sql[16384];
	unsigned long long rows;
	int repeat;
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_query_options o = UDR_QUERY_OPTIONS_INIT;
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	duckdb_database ddb;
	duckdb_connection con;
	double *tu, *td, t0;
	uint64_t table, before, added1, added100;
	if (argc != 4)
		return 2;
	rows = strtoull(argv[2], NULL, 10);
	repeat = atoi(argv[3]);
	tu = calloc((size_t)repeat, sizeof(double));
	td = calloc((size_t)repeat, sizeof(double));
	snprintf(root, sizeof(root), "%s/store", argv[1]);
	snprintf(dfile, sizeof(dfile), "%s/peer.duckdb", argv[1]);
	if (udr_db_open(&db, root, UDR_OPEN_CREATE) < 0)
		die("open");
	if (udr_query_open(&q, db, &o) < 0)
		die("query open");
	snprintf(sql, sizeof(sql), GEN, rows);
	if (udr_query_import_sql(NULL, q, "t", sql, NULL, 0, &io) < 0)
		die("import");
	table = store_bytes(root);
	if (duckdb_open(dfile, &ddb) == DuckDBError || duckdb_connect(ddb, &con) == DuckDBError)
		die("duckdb");
	{
		char c[1100];
		snprintf(c, sizeof(c), "CREATE TABLE t AS %s", sql);
		duck(con, c);
		duck(con, "CHECKPOINT");
	}
	printf("table: %llu rows, %.1f MB in the store\n", rows, (double)table / 1e6);

	/* 1. UPDATE of one row (a different row each time) */
	before = store_bytes(root);
	for (int i = 0; i < repeat; i++) {
		unsigned long long id = rows / 2 + (unsigned long long)i * 7;
		snprintf(sql, sizeof(sql), "UPDATE t SET x = -1 WHERE id = %llu", id);
		t0 = now();
		usql(q, sql);
		tu[i] = now() - t0;
		t0 = now();
		duck(con, sql);
		td[i] = now() - t0;
	}
	added1 = (store_bytes(root) - before) / (uint64_t)repeat;
	printf("\n%-44s %12s %12s\n", "", "udr", "duckdb file");
	row("UPDATE 1 row (best)", best(tu, repeat), best(td, repeat), "<= 2x");
	row("UPDATE 1 row (median)", median(tu, repeat), median(td, repeat), "<= 2x");
	printf("%-44s %10" PRIu64 " B = %.5f%% of the table   goal <= 0.01%%\n", "  bytes added per 1-row UPDATE", added1,
	       100.0 * (double)added1 / (double)table);

	/* 2. UPDATE of 1% of the rows */
	before = store_bytes(root);
	t0 = now();
	usql(q, "UPDATE t SET x = x + 1 WHERE id % 100 = 7");
	tu[0] = now() - t0;
	t0 = now();
	duck(con, "UPDATE t SET x = x + 1 WHERE id % 100 = 7");
	td[0] = now() - t0;
	added100 = store_bytes(root) - before;
	row("UPDATE 1% of the rows", tu[0], td[0], "info");
	printf("%-44s %10" PRIu64 " B = %.3f%% of the table   goal <= 3%%\n", "  bytes added", added100,
	       100.0 * (double)added100 / (double)table);

	/* 3. the next full scan: deletion vectors against the same rows compacted */
	usql(q, "CREATE TABLE t2 AS SELECT * FROM t");
	for (int k = 0; k < 2; k++) { /* warm both */
		snprintf(sql, sizeof(sql), SCAN, k ? "t2" : "t");
		usql(q, sql);
	}
	for (int i = 0; i < repeat; i++) {
		snprintf(sql, sizeof(sql), SCAN, "t");
		t0 = now();
		usql(q, sql);
		tu[i] = now() - t0;
		snprintf(sql, sizeof(sql), SCAN, "t2");
		t0 = now();
		usql(q, sql);
		td[i] = now() - t0;
	}
	printf("\n%-44s %12s %12s\n", "", "with DVs", "compacted");
	row("full scan after the 1% UPDATE (best)", best(tu, repeat), best(td, repeat), "<= 1.2x");
	row("full scan after the 1% UPDATE (median)", median(tu, repeat), median(td, repeat), "<= 1.2x");

	/* 4. the first rows of SELECT * ... LIMIT 10, against DuckDB over the same Parquet files */
	{
		char files[8192];
		udr_stream *st;
		const udr_result *r;
		parts_list(files, sizeof(files), db, "t2");
		for (int i = 0; i < repeat; i++) {
			t0 = now();
			if (udr_query_sql_stream(&st, q, "SELECT * FROM t2 LIMIT 10", NULL, 0) < 0 ||
			    udr_stream_next(&r, st) < 0 || !r)
				die("stream");
			tu[i] = now() - t0;
			udr_stream_free(st);
			snprintf(sql, sizeof(sql), "SELECT * FROM read_parquet(%s) LIMIT 10", files);
			t0 = now();
			duck(con, sql);
			td[i] = now() - t0;
		}
		printf("\n%-44s %12s %12s\n", "", "udr", "duckdb");
		row("SELECT * LIMIT 10, first rows (best)", best(tu, repeat), best(td, repeat), "<= 1.5x");
		row("SELECT * LIMIT 10, first rows (median)", median(tu, repeat), median(td, repeat), "<= 1.5x");
	}
	/* 5. re-import of a nightly dump with 1% of the rows changed, matched on id */
	{
		char dump[4096], files[8192];
		const char *keys[] = {"id"}, *paths[1];
		udr_import_options ko = UDR_IMPORT_OPTIONS_INIT;
		uint64_t v = 0;
		snprintf(dump, sizeof(dump), "%s/dump.csv", argv[1]);
		parts_list(files, sizeof(files), db, "t2");
		snprintf(sql, sizeof(sql),
		         "COPY (SELECT id, g, CASE WHEN id %% 100 = 3 THEN x + 1 ELSE x END AS x, s FROM read_parquet(%s) "
		         "ORDER BY id) TO '%s' (HEADER)",
		         files, dump);
		duck(con, sql);
		paths[0] = dump;
		ko.keys = keys;
		ko.nkeys = 1;
		udr_query_set_compaction(q, NULL);
		before = store_bytes(root);
		t0 = now();
		if (udr_query_import(&v, q, "t2", paths, 1, &ko) < 0)
			die("import --key");
		tu[0] = now() - t0;
		added100 = store_bytes(root) - before;
		/* DuckDB reading the dump: every column (an aggregate of each),
		 * and loaded into a table (what any import of it does first) */
		snprintf(sql, sizeof(sql), "SELECT count(*), sum(id), sum(g), sum(x), max(s) FROM read_csv('%s')", dump);
		duck(con, sql); /* warm the page cache */
		t0 = now();
		duck(con, sql);
		td[0] = now() - t0;
		snprintf(sql, sizeof(sql), "CREATE OR REPLACE TEMP TABLE dump AS SELECT * FROM read_csv('%s')", dump);
		t0 = now();
		duck(con, sql);
		td[1] = now() - t0;
		duck(con, "DROP TABLE dump");
		printf("\n%-44s %12s %12s\n", "", "udr", "duckdb read");
		row("re-import, 1% changed, --key id", tu[0], td[0], "<= 1.5x");
		row("  against DuckDB loading the dump", tu[0], td[1], "info");
		printf("%-44s %10" PRIu64 " B = %.3f%% of the table   goal <= 3%%\n", "  bytes added", added100,
		       100.0 * (double)added100 / (double)table);
		unlink(dump);
	}

	udr_query_close(q);
	udr_db_close(db);
	duckdb_disconnect(&con);
	duckdb_close(&ddb);
	free(tu);
	free(td);
	return 0;
}
