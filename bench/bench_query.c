/*
 * bench_query.c - the query module against DuckDB itself (run by
 * bench/bench_query.sh; a measurement, not a test):
 *   scan: GROUP BY over a 10-million-row table version through udr_query_sql
 *         vs plain DuckDB over the same Parquet files (read_parquet);
 *   import: udr_query_import of a CSV vs DuckDB's own
 *         COPY (SELECT * FROM read_csv(...)) TO '...parquet'.
 *
 *   bench_query scan ROOT TABLE REPEAT       (table made by `udrq import-sql`)
 *   bench_query import ROOT CSV REPEAT
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <duckdb.h>
#include <udr/udr.h>
#include <udr/query.h>

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

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_query: %s: %s\n", what, udr_error_last()->message);
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

#define QUERY "SELECT g, count(*) AS n, sum(x) AS sx, avg(v) AS av, max(s) AS ms FROM %s GROUP BY g ORDER BY g"

static int scan(const char *root, const char *table, int repeat)
{
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_result *r = NULL;
	udr_version *v = NULL;
	duckdb_database ddb;
	duckdb_connection con;
	char sql[4096], dsql[8192], *list = NULL;
	size_t listlen = 0;
	FILE *ls;
	double *tu = calloc((size_t)repeat, sizeof(double)), *td = calloc((size_t)repeat, sizeof(double));
	double cold, t0;
	udr_query_options o = UDR_QUERY_OPTIONS_INIT;

	if (udr_db_open(&db, root, 0) < 0)
		die("open");
	if (udr_query_open(&q, db, &o) < 0)
		die("query open");
	/* the same files, straight into DuckDB: the parts DuckDB reads for this
	 * version (in place, or their cache copies) */
	if (udr_catalog_get_version(&v, udr_db_catalog(db), table, 0) < 0)
		die("version");
	snprintf(sql, sizeof(sql), QUERY, table);
	t0 = now();
	if (udr_query_sql(&r, q, sql, NULL, 0) < 0)
		die("sql");
	cold = now() - t0;
	udr_result_free(r);
	ls = open_memstream(&list, &listlen);
	fputs("read_parquet([", ls);
	for (size_t i = 0; i < v->nchunks; i++) {
		char *p = NULL, hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &v->chunks[i]);
		if (udr_store_local_path(&p, udr_db_store(db), &v->chunks[i]) == 0) {
			fprintf(ls, "%s'%s'", i ? ", " : "", p);
			udr_free(p);
		} else {
			fprintf(ls, "%s'%s/cache/query/%s.parquet'", i ? ", " : "", root, hex);
		}
	}
	fputs("])", ls);
	fclose(ls);
	if (duckdb_open(NULL, &ddb) == DuckDBError || duckdb_connect(ddb, &con) == DuckDBError)
		return 1;
	snprintf(dsql, sizeof(dsql), QUERY, list);
	duck(con, dsql); /* warm-up, as the UDR side had one */
	/* interleaved, so that load from other processes hits both alike */
	for (int i = 0; i < repeat; i++) {
		t0 = now();
		if (udr_query_sql(&r, q, sql, NULL, 0) < 0)
			die("sql");
		tu[i] = now() - t0;
		udr_result_free(r);
		t0 = now();
		duck(con, dsql);
		td[i] = now() - t0;
	}
	{
		double mu = median(tu, repeat), md = median(td, repeat);
		printf("scan: %zu parts; first UDR query %.3f s (view, verify/materialize parts)\n", v->nchunks, cold);
		printf("scan: median of %d: udr %.4f s, duckdb %.4f s, overhead %+.1f%%\n", repeat, mu, md,
		       (mu / md - 1) * 100);
	}
	udr_version_free(v);
	free(list);
	duckdb_disconnect(&con);
	duckdb_close(&ddb);
	udr_query_close(q);
	udr_db_close(db);
	free(tu);
	free(td);
	return 0;
}

static int import(const char *root, const char *csv, int repeat)
{
	double *tu = calloc((size_t)repeat, sizeof(double)), *td = calloc((size_t)repeat, sizeof(double)), t0;
	char sql[4096], out[4096];
	for (int i = 0; i < repeat; i++) {
		udr_db *db = NULL;
		udr_query *q = NULL;
		duckdb_database ddb;
		duckdb_connection con;
		const char *files[1] = {csv};
		char rootdir[4096];
		snprintf(rootdir, sizeof(rootdir), "%s/import-%d", root, i);
		if (udr_db_open(&db, rootdir, UDR_OPEN_CREATE) < 0 || udr_query_open(&q, db, NULL) < 0)
			die("open");
		t0 = now();
		if (udr_query_import(NULL, q, "big", files, 1, NULL) < 0)
			die("import");
		tu[i] = now() - t0;
		udr_query_close(q);
		udr_db_close(db);

		snprintf(out, sizeof(out), "%s/duckdb-%d.parquet", root, i);
		if (duckdb_open(NULL, &ddb) == DuckDBError || duckdb_connect(ddb, &con) == DuckDBError)
			return 1;
		snprintf(sql, sizeof(sql), "COPY (SELECT * FROM read_csv('%s')) TO '%s' (FORMAT parquet)", csv, out);
		t0 = now();
		duck(con, sql);
		td[i] = now() - t0;
		duckdb_disconnect(&con);
		duckdb_close(&ddb);
		unlink(out);
		printf("import run %d: udr %.3f s, duckdb %.3f s\n", i + 1, tu[i], td[i]);
	}
	{
		double mu = median(tu, repeat), md = median(td, repeat);
		printf("import: median of %d: udr %.3f s, duckdb COPY %.3f s, ratio %.3fx\n", repeat, mu, md, mu / md);
	}
	free(tu);
	free(td);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "scan") == 0)
		return scan(argv[2], argv[3], atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "import") == 0)
		return import(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: bench_query scan ROOT TABLE REPEAT | import ROOT CSV REPEAT\n");
	return 2;
}
