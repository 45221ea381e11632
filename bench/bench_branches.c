/*
 * bench_branches.c - branch benchmarks of libudr (driven by
 * bench/bench_branches.sh, which prints the ratios).
 *
 *   bench_branches build DIR TABLES BRANCHES
 *       a store with TABLES tables (two versions each) and BRANCHES branches
 *       besides main (each from main, every 10th with a commit of its own),
 *       built through an I/O table whose fsync is a no-op (durability does
 *       not change the catalog's shape) -> "head <n> seconds <s>"
 *   bench_branches measure ONE MANY REPS
 *       in turns on the store ONE (one branch) and MANY (many branches),
 *       REPS times each, durable: create one more branch from main; read a
 *       table's latest version on a branch (ONE: main, MANY: branch b<mid>)
 *       through a warm handle and through a fresh handle; commit the next
 *       version of a table on that branch
 *       -> "create_one_us .. create_many_us .. read_one_us .. read_many_us ..
 *           coldread_one_us .. coldread_many_us .. commit_one_us .. commit_many_us .."
 *          (medians)
 */
#include <udr/udr.h>
#include <udr/sys/io.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_branches: %s: %d %s\n", what, rc, udr_error_last()->message);
	exit(2);
}

static udr_db *open_db(const char *root)
{
	udr_db *db = NULL;
	int rc = udr_db_open(&db, root, UDR_OPEN_CREATE);
	if (rc)
		die("open", rc);
	return db;
}

static int nop_fsync(int fd)
{
	(void)fd;
	return 0;
}

static void commit_on(udr_db *db, const char *table, const char *branch, const char *payload)
{
	udr_hash h;
	udr_version *v = NULL;
	int rc = udr_store_put(&h, udr_db_store(db), payload, strlen(payload));
	if (rc || (rc = udr_version_new(&v, table, 0)) || (rc = udr_version_add_chunk(v, &h)) ||
	    (rc = udr_catalog_commit_on(udr_db_catalog(db), v, branch, 1)))
		die("commit", rc);
	udr_version_free(v);
}

static int build(const char *dir, int ntables, int nbranches)
{
	static udr_io_methods m;
	char name[64];
	double t0 = now();
	uint64_t head = 0;
	m = *udr_io_default();
	m.fsync = nop_fsync;
	m.syncfs = nop_fsync;
	if (udr_io_set(&m) != 0)
		die("io_set", -1);
	udr_db *db = open_db(dir);
	for (int round = 0; round < 2; round++)
		for (int t = 0; t < ntables; t++) {
			snprintf(name, sizeof(name), "t%03d", t);
			commit_on(db, name, NULL, round ? "second" : "first");
		}
	for (int b = 0; b < nbranches; b++) {
		int rc;
		snprintf(name, sizeof(name), "b%05d", b);
		if ((rc = udr_branch_create(NULL, udr_db_catalog(db), name, NULL)))
			die("branch_create", rc);
		if (b % 10 == 0) {
			char t[16];
			snprintf(t, sizeof(t), "t%03d", b % ntables);
			commit_on(db, t, name, name);
		}
	}
	udr_catalog_head(&head, udr_db_catalog(db));
	udr_db_close(db);
	printf("head %" PRIu64 " seconds %.2f\n", head, now() - t0);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2] * 1e6;
}

static int measure(const char *one, const char *many, int reps, const char *mid)
{
	double *r[8];
	char name[64], ref[80];
	udr_db *d1, *dm;
	if (getenv("UDR_BENCH_NOSYNC")) { /* the cost without the flush (not durable) */
		static udr_io_methods m;
		m = *udr_io_default();
		m.fsync = nop_fsync;
		m.syncfs = nop_fsync;
		if (udr_io_set(&m) != 0)
			die("io_set", -1);
	}
	d1 = open_db(one);
	dm = open_db(many);
	snprintf(ref, sizeof(ref), "branch:%s", mid);
	for (int i = 0; i < 8; i++)
		if (!(r[i] = calloc((size_t)reps, sizeof(double))))
			die("calloc", -1);
	for (int i = 0; i < reps; i++) {
		for (int s = 0; s < 2; s++) { /* one, then many: the same disk weather */
			udr_db *db = s ? dm : d1;
			const char *root = s ? many : one, *br = s ? ref : "branch:main";
			udr_version *v = NULL;
			double t;
			int rc;
			snprintf(name, sizeof(name), "x%d-%d", s, i);
			t = now();
			if ((rc = udr_branch_create(NULL, udr_db_catalog(db), name, NULL)))
				die("create", rc);
			r[0 + s][i] = now() - t;
			t = now();
			if ((rc = udr_catalog_get_version_on(&v, udr_db_catalog(db), "t050", 0, br)))
				die("read", rc);
			r[2 + s][i] = now() - t;
			udr_version_free(v);
			v = NULL;
			t = now();
			{
				udr_db *fresh = open_db(root);
				if ((rc = udr_catalog_get_version_on(&v, udr_db_catalog(fresh), "t050", 0, br)))
					die("cold read", rc);
				udr_db_close(fresh);
			}
			r[4 + s][i] = now() - t;
			udr_version_free(v);
			t = now();
			commit_on(db, "t050", s ? mid : NULL, "bench");
			r[6 + s][i] = now() - t;
		}
	}
	printf("create_one_us %.0f create_many_us %.0f read_one_us %.0f read_many_us %.0f coldread_one_us %.0f "
	       "coldread_many_us %.0f commit_one_us %.0f commit_many_us %.0f\n",
	       median(r[0], reps), median(r[1], reps), median(r[2], reps), median(r[3], reps), median(r[4], reps),
	       median(r[5], reps), median(r[6], reps), median(r[7], reps));
	udr_db_close(d1);
	udr_db_close(dm);
	for (int i = 0; i < 8; i++)
		free(r[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "build") == 0)
		return build(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 6 && strcmp(argv[1], "measure") == 0)
		return measure(argv[2], argv[3], atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: bench_branches build DIR TABLES BRANCHES | measure ONE MANY REPS MIDBRANCH\n");
	return 2;
}
