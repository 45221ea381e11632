/*
 * bench_commit.c - commit-path benchmarks of libudr (driven by
 * bench/bench_commit.sh, which prints the ratios).
 *
 *   bench_commit durable DIR N
 *       (1) N durable single-table commits (udr_catalog_commit_next, one
 *       small chunk) against N times "create a file, write 200 bytes, fsync
 *       it, fsync its directory" in the same file system, interleaved in
 *       rounds so that both see the same disk weather.
 *       -> "baseline_us <median per op> commit_us <median per op>"
 *   bench_commit writers DIR NPROC SECONDS
 *       (2) NPROC processes, each committing to its own table as fast as it
 *       can for SECONDS -> "commits <total> seconds <wall> per_s <rate>
 *       syncs <syncfs calls made>"; with UDR_BENCH_FLUSH_US=N every syncfs
 *       is followed by a sleep of N us (a disk whose flush is slower)
 *   bench_commit buildlog DIR N TABLES
 *       builds (or extends) a catalog to N commits round-robin over TABLES
 *       tables, through the library with an I/O table whose fsync is a no-op
 *       (durability is irrelevant to the log's shape) -> "head <n> seconds <s>"
 *   bench_commit readers DIR NWRITERS SECONDS
 *       (4) median latency of reading table r's latest version (`udr show r`)
 *       and of udr_catalog_log(newest_first, limit 10), with no writer, then
 *       while NWRITERS processes commit to their own tables for SECONDS
 *       -> "idle_show_us .. busy_show_us .. idle_log10_us .. busy_log10_us .."
 *   bench_commit logquery DIR REPS
 *       (3) median time of udr_catalog_log(newest_first, limit 10) and of the
 *       same filtered to one table, over REPS runs
 *       -> "head <n> log10_us <median> table_log10_us <median>"
 */
#include <udr/udr.h>
#include <udr/sys/io.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_commit: %s: %d %s\n", what, rc, udr_error_last()->message);
	exit(2);
}

static void die_errno(const char *what, const char *path)
{
	fprintf(stderr, "bench_commit: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static udr_db *open_db(const char *root)
{
	udr_db *db = NULL;
	int rc = udr_db_open(&db, root, UDR_OPEN_CREATE);
	if (rc)
		die("open", rc);
	return db;
}

/* mkdir -p */
static void mkdirs(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				die_errno("mkdir", p);
			*s = '/';
		}
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		die_errno("mkdir", p);
}

static void commit_one(udr_catalog *cat, const char *table, const udr_hash *h)
{
	udr_version *v = NULL;
	int rc = udr_version_new(&v, table, 0);
	if (rc == 0)
		rc = udr_version_add_chunk(v, h);
	if (rc == 0)
		rc = udr_catalog_commit_next(cat, v);
	if (rc)
		die("commit", rc);
	udr_version_free(v);
}

/* ---- (1) durable commit vs fsync'd file + directory fsync ------------------ */

static double fsync_file_op(const char *dir, long i)
{
	char path[4200], buf[200];
	memset(buf, 'x', sizeof(buf));
	snprintf(path, sizeof(path), "%s/f%ld", dir, i);
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		die_errno("create", path);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fsync(fd) < 0)
		die_errno("write/fsync", path);
	close(fd);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fsync(dfd) < 0)
		die_errno("fsync dir", dir);
	close(dfd);
	return now() - t0;
}

static int durable(const char *dir, long n)
{
	char root[4096], fdir[4096];
	snprintf(root, sizeof(root), "%s/store", dir);
	snprintf(fdir, sizeof(fdir), "%s/files", dir);
	mkdirs(fdir);
	udr_db *db = open_db(root);
	udr_catalog *cat = udr_db_catalog(db);
	udr_hash h;
	int rc = udr_store_put(&h, udr_db_store(db), "bench payload", 13);
	if (rc)
		die("put", rc);
	commit_one(cat, "warm", &h); /* creates the table directory */
	double *base = calloc((size_t)n, sizeof(double)), *com = calloc((size_t)n, sizeof(double));
	/* Rounds of 10 + 10, so a burst of noise hits both sides alike. */
	long bi = 0, ci = 0;
	while (bi < n || ci < n) {
		for (int k = 0; k < 10 && bi < n; k++, bi++)
			base[bi] = fsync_file_op(fdir, bi);
		for (int k = 0; k < 10 && ci < n; k++, ci++) {
			double t0 = now();
			commit_one(cat, "bench", &h);
			com[ci] = now() - t0;
		}
	}
	double tb = 0, tc = 0;
	for (long i = 0; i < n; i++) {
		tb += base[i];
		tc += com[i];
	}
	printf("baseline_us %.1f commit_us %.1f baseline_mean_us %.1f commit_mean_us %.1f\n",
	       median(base, (size_t)n) * 1e6, median(com, (size_t)n) * 1e6, tb / n * 1e6, tc / n * 1e6);
	free(base);
	free(com);
	udr_db_close(db);
	return 0;
}

/* ---- (2) concurrent writers on disjoint tables --------------------------------- */

/* each writer counts the syncfs calls it makes (group commit: one leader
 * syncs for the group), through an I/O table */
static long nsyncs;
static int (*real_syncfs)(int);

static long flush_us; /* UDR_BENCH_FLUSH_US: a slower disk's flush, simulated */

static int counting_syncfs(int fd)
{
	int rc;
	nsyncs++;
	rc = real_syncfs(fd);
	if (flush_us > 0) {
		struct timespec d = {flush_us / 1000000, (flush_us % 1000000) * 1000};
		while (nanosleep(&d, &d) < 0 && errno == EINTR)
			;
	}
	return rc;
}

static void count_syncs(void)
{
	static udr_io_methods m;
	const char *env = getenv("UDR_BENCH_FLUSH_US");
	flush_us = env ? atol(env) : 0;
	m = *udr_io_default();
	real_syncfs = m.syncfs;
	m.syncfs = counting_syncfs;
	if (udr_io_set(&m) != 0)
		die("io_set", -1);
}

static int writers(const char *dir, int nproc, double seconds)
{
	char root[4096];
	snprintf(root, sizeof(root), "%s/store", dir);
	mkdirs(dir);
	udr_db *db = open_db(root);
	udr_hash h;
	int rc = udr_store_put(&h, udr_db_store(db), "bench payload", 13);
	if (rc)
		die("put", rc);
	/* Create every table first, so no process pays for a directory. */
	for (int p = 0; p < nproc; p++) {
		char t[32];
		snprintf(t, sizeof(t), "w%d", p);
		commit_one(udr_db_catalog(db), t, &h);
	}
	udr_db_close(db);
	int pipes[64][2];
	pid_t pids[64];
	double start = now() + 0.2; /* common start line */
	for (int p = 0; p < nproc; p++) {
		if (pipe(pipes[p]) < 0)
			die_errno("pipe", "");
		pids[p] = fork();
		if (pids[p] == 0) {
			char t[32];
			long count = 0;
			udr_db *cdb;
			count_syncs();
			cdb = open_db(root);
			snprintf(t, sizeof(t), "w%d", p);
			while (now() < start)
				;
			while (now() < start + seconds) {
				commit_one(udr_db_catalog(cdb), t, &h);
				count++;
			}
			double end = now();
			char msg[96];
			int len = snprintf(msg, sizeof(msg), "%ld %.6f %ld\n", count, end - start, nsyncs);
			if (write(pipes[p][1], msg, (size_t)len) != len)
				_exit(3);
			udr_db_close(cdb);
			_exit(0);
		}
		close(pipes[p][1]);
	}
	long total = 0, syncs = 0;
	double wall = 0;
	for (int p = 0; p < nproc; p++) {
		char msg[96] = "";
		long count = 0, ns = 0;
		double el = 0;
		ssize_t got = read(pipes[p][0], msg, sizeof(msg) - 1);
		int st = 0;
		waitpid(pids[p], &st, 0);
		if (got <= 0 || sscanf(msg, "%ld %lf %ld", &count, &el, &ns) != 3 || !WIFEXITED(st) ||
		    WEXITSTATUS(st)) {
			fprintf(stderr, "bench_commit: writer %d failed\n", p);
			return 2;
		}
		total += count;
		syncs += ns;
		if (el > wall)
			wall = el;
	}
	printf("commits %ld seconds %.3f per_s %.1f syncs %ld\n", total, wall, total / wall, syncs);
	return 0;
}

/* ---- (3) a long log ---------------------------------------------------------------- */

static int nop_fsync(int fd)
{
	(void)fd;
	return 0;
}

static int buildlog(const char *dir, uint64_t n, int ntables)
{
	static udr_io_methods m;
	m = *udr_io_default();
	m.fsync = nop_fsync;
	m.syncfs = nop_fsync;
	if (udr_io_set(&m) != 0)
		die("io_set", -1);
	mkdirs(dir);
	udr_db *db = open_db(dir);
	udr_catalog *cat = udr_db_catalog(db);
	udr_hash h;
	int rc = udr_store_put(&h, udr_db_store(db), "log payload", 11);
	if (rc)
		die("put", rc);
	uint64_t head = 0;
	if ((rc = udr_catalog_head(&head, cat)) != 0)
		die("head", rc);
	double t0 = now(), last = t0;
	for (uint64_t s = head + 1; s <= n; s++) {
		char t[32];
		snprintf(t, sizeof(t), "t%03d", (int)(s % (uint64_t)ntables));
		commit_one(cat, t, &h);
		if (s % 50000 == 0 && now() - last > 5) {
			last = now();
			fprintf(stderr, "  ... %" PRIu64 " commits (%.0f s)\n", s, last - t0);
		}
	}
	if ((rc = udr_catalog_head(&head, cat)) != 0)
		die("head", rc);
	printf("head %" PRIu64 " seconds %.1f\n", head, now() - t0);
	udr_db_close(db);
	udr_io_set(NULL);
	return 0;
}

static int logquery(const char *dir, int reps)
{
	udr_db *db = NULL;
	int rc = udr_db_open(&db, dir, 0);
	if (rc)
		die("open", rc);
	udr_catalog *cat = udr_db_catalog(db);
	uint64_t head = 0;
	if ((rc = udr_catalog_head(&head, cat)) != 0)
		die("head", rc);
	double *a = calloc((size_t)reps, sizeof(double)), *b = calloc((size_t)reps, sizeof(double));
	const char *tabs[] = {"t007"};
	for (int r = 0; r < reps; r++) {
		udr_log_query q = UDR_LOG_QUERY_INIT;
		udr_commit **cs = NULL;
		size_t n = 0;
		q.newest_first = 1;
		q.limit = 10;
		double t0 = now();
		if ((rc = udr_catalog_log(&cs, &n, cat, &q)) != 0)
			die("log", rc);
		a[r] = now() - t0;
		if (n != 10 || cs[0]->seq != head) {
			fprintf(stderr, "bench_commit: log returned %zu commits, first %" PRIu64 "\n", n, n ? cs[0]->seq : 0);
			return 2;
		}
		udr_commit_array_free(cs, n);
		q.tables = tabs;
		q.ntables = 1;
		t0 = now();
		if ((rc = udr_catalog_log(&cs, &n, cat, &q)) != 0)
			die("log tables", rc);
		b[r] = now() - t0;
		if (n != 10) {
			fprintf(stderr, "bench_commit: table log returned %zu commits\n", n);
			return 2;
		}
		udr_commit_array_free(cs, n);
	}
	printf("head %" PRIu64 " log10_us %.1f table_log10_us %.1f\n", head, median(a, (size_t)reps) * 1e6,
	       median(b, (size_t)reps) * 1e6);
	free(a);
	free(b);
	udr_db_close(db);
	return 0;
}

/* ---- (4) readers while writers commit ---------------------------------------------- */

static void read_pair(udr_catalog *cat, double *show, double *log10)
{
	udr_version *v = NULL;
	udr_log_query q = UDR_LOG_QUERY_INIT;
	udr_commit **cs = NULL;
	size_t n = 0;
	int rc;
	double t0 = now();
	if ((rc = udr_catalog_get_version(&v, cat, "r", 0)) != 0)
		die("show", rc);
	*show = now() - t0;
	udr_version_free(v);
	q.newest_first = 1;
	q.limit = 10;
	t0 = now();
	if ((rc = udr_catalog_log(&cs, &n, cat, &q)) != 0)
		die("log", rc);
	*log10 = now() - t0;
	udr_commit_array_free(cs, n);
}

static int readers(const char *dir, int nwriters, double seconds)
{
	char root[4096];
	enum { REPS = 400 };
	double is[REPS], il[REPS], bs[REPS], bl[REPS];
	snprintf(root, sizeof(root), "%s/store", dir);
	mkdirs(dir);
	udr_db *db = open_db(root);
	udr_catalog *cat = udr_db_catalog(db);
	udr_hash h;
	int rc = udr_store_put(&h, udr_db_store(db), "bench payload", 13);
	if (rc)
		die("put", rc);
	for (int i = 0; i < 20; i++)
		commit_one(cat, "r", &h);
	for (int p = 0; p < nwriters; p++) {
		char t[32];
		snprintf(t, sizeof(t), "w%d", p);
		commit_one(cat, t, &h);
	}
	for (int r = 0; r < REPS; r++) {
		read_pair(cat, &is[r], &il[r]);
		usleep(2000);
	}
	pid_t pids[64];
	double stop = now() + seconds;
	for (int p = 0; p < nwriters; p++) {
		if ((pids[p] = fork()) == 0) {
			char t[32];
			udr_db *cdb = open_db(root);
			snprintf(t, sizeof(t), "w%d", p);
			while (now() < stop)
				commit_one(udr_db_catalog(cdb), t, &h);
			udr_db_close(cdb);
			_exit(0);
		}
	}
	usleep(200000);
	double gap = (seconds - 0.4) / REPS;
	for (int r = 0; r < REPS; r++) {
		read_pair(cat, &bs[r], &bl[r]);
		if (gap > 0.0021)
			usleep((useconds_t)((gap - 0.0001) * 1e6));
	}
	for (int p = 0; p < nwriters; p++)
		waitpid(pids[p], NULL, 0);
	printf("idle_show_us %.1f busy_show_us %.1f idle_log10_us %.1f busy_log10_us %.1f\n", median(is, REPS) * 1e6,
	       median(bs, REPS) * 1e6, median(il, REPS) * 1e6, median(bl, REPS) * 1e6);
	udr_db_close(db);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "durable") == 0)
		return durable(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "writers") == 0)
		return writers(argv[2], atoi(argv[3]), atof(argv[4]));
	if (argc == 5 && strcmp(argv[1], "buildlog") == 0)
		return buildlog(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "readers") == 0)
		return readers(argv[2], atoi(argv[3]), atof(argv[4]));
	if (argc == 4 && strcmp(argv[1], "logquery") == 0)
		return logquery(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: bench_commit durable DIR N | writers DIR NPROC SECONDS |\n"
	                "       buildlog DIR N TABLES | logquery DIR REPS\n");
	return 2;
}
