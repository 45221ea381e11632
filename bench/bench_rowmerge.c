/*
 * bench_rowmerge.c - a row-level merge (issue 12): two branches that each
 * changed 1% of the rows of a keyed table (SQL UPDATEs: deletion vectors
 * over the shared base parts), merged row by row on the key, against the
 * time DuckDB takes for a FULL OUTER JOIN of the three versions' keys read
 * the same way, in the same session and run.  Run by bench/bench_rowmerge.sh.
 *
 *   bench_rowmerge WORKDIR ROWS REPEAT
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <udr/udr.h>
#include <udr/query.h>

#define GEN "SELECT range AS id, range %% 1000 AS g, (range * 7919 %% 100003) / 100003.0 AS x, " \
            "'name-' || (range %% 5000) AS s FROM range(%llu)"

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
	fprintf(stderr, "bench_rowmerge: %s: %s\n", what, udr_error_last()->message);
	exit(1);
}

static void usql(udr_query *q, const char *sql)
{
	if (udr_query_sql(NULL, q, sql, NULL, 0) < 0)
		die(sql);
}

static uint64_t head_of(udr_catalog *c, const char *ref)
{
	uint64_t h = 0;
	if (udr_catalog_resolve(&h, c, ref) < 0)
		die(ref);
	return h;
}

static uint64_t version_on(udr_catalog *c, const char *ref)
{
	uint64_t v = 0;
	if (udr_catalog_latest_on(&v, c, "t", ref) < 0)
		die("latest");
	return v;
}

int main(int argc, char **argv)
{
	char root[4096], sql[2048], ours_ref[64];
	unsigned long long rows;
	int repeat;
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_catalog *c;
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	const char *kt[] = {"t"}, *kc[] = {"id"};
	double *tm, *tj, t0;
	uint64_t vb, vo, vt, ours_head;
	if (argc != 4)
		return 2;
	rows = strtoull(argv[2], NULL, 10);
	repeat = atoi(argv[3]);
	tm = calloc((size_t)repeat, sizeof(double));
	tj = calloc((size_t)repeat * 2, sizeof(double));
	snprintf(root, sizeof(root), "%s/store", argv[1]);
	if (udr_db_open(&db, root, UDR_OPEN_CREATE) < 0 || udr_query_open(&q, db, NULL) < 0)
		die("open");
	c = udr_db_catalog(db);
	/* base; theirs (dev): 1% of x changed; ours (main): 1% of s changed */
	t0 = now();
	snprintf(sql, sizeof(sql), GEN, rows);
	if (udr_query_import_sql(NULL, q, "t", sql, NULL, 0, &io) < 0)
		die("import");
	if (udr_query_set_compaction(q, NULL) < 0 || udr_branch_create(NULL, c, "base", NULL) < 0)
		die("branch base");
	usql(q, "UPDATE t SET x = x + 1 WHERE id % 100 = 7");
	if (udr_branch_create(NULL, c, "dev", NULL) < 0 || udr_branch_reset(NULL, c, "main", "base") < 0)
		die("branch dev");
	usql(q, "UPDATE t SET s = 'changed' WHERE id % 100 = 13");
	ours_head = head_of(c, "main");
	snprintf(ours_ref, sizeof(ours_ref), "commit:%" PRIu64, ours_head);
	vb = version_on(c, "base");
	vo = version_on(c, "main");
	vt = version_on(c, "dev");
	printf("table t: %llu rows; base version %" PRIu64 ", ours %" PRIu64 " (1%% of s), theirs %" PRIu64
	       " (1%% of x); set up in %.1f s\n",
	       rows, vb, vo, vt, now() - t0);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM (SELECT id FROM \"t@%" PRIu64 "\") b FULL JOIN (SELECT id FROM \"t@%" PRIu64
	         "\") o ON b.id = o.id FULL JOIN (SELECT id FROM \"t@%" PRIu64 "\") th ON COALESCE(b.id, o.id) = th.id",
	         vb, vo, vt);
	usql(q, sql); /* warm: parts verified, views bound */
	for (int i = 0; i < repeat; i++) {
		udr_rowmerge_options ro = UDR_ROWMERGE_OPTIONS_INIT;
		udr_merge_result *m = NULL;
		ro.key_tables = kt;
		ro.keys = kc;
		ro.nkeys = 1;
		t0 = now();
		usql(q, sql);
		tj[2 * i] = now() - t0;
		t0 = now();
		if (udr_query_merge(&m, q, "dev", "main", &ro) < 0)
			die("merge");
		tm[i] = now() - t0;
		if (i == 0)
			printf("merge: commit %" PRIu64 ", rows from theirs %" PRIu64 ", ours %" PRIu64 ", conflicts %" PRIu64
			       "\n",
			       m->seq, m->tables[0].rows_theirs, m->tables[0].rows_ours, m->tables[0].rows_conflict);
		udr_merge_result_free(m);
		/* back to ours for the next round */
		if (udr_branch_reset(NULL, c, "main", ours_ref) < 0)
			die("reset");
		t0 = now();
		usql(q, sql);
		tj[2 * i + 1] = now() - t0;
	}
	{
		double mm = median(tm, repeat), mj = median(tj, repeat * 2);
		printf("%-52s %8.3f s (median of %d)\n", "row-level merge (udr_query_merge, key id)", mm, repeat);
		printf("%-52s %8.3f s (median of %d)\n", "DuckDB FULL OUTER JOIN of the 3 versions' keys", mj, repeat * 2);
		printf("ratio %.2fx (goal <= 2x)\n", mm / mj);
	}
	udr_query_close(q);
	udr_db_close(db);
	free(tm);
	free(tj);
	return 0;
}
