/*
 * bench_putget.c - C-side helpers of the UDR benchmarks (bench_core.sh, bench_storage.sh).
 * Built by the scripts against the build's static library:
 *
 *   cc -O2 -I include bench/bench_putget.c build-bench/libudr.a -ljansson -lzstd -lpthread
 *
 * Subcommands (times are wall-clock seconds, CLOCK_MONOTONIC):
 *
 *   putget STORE_DIR N SIZE SEED
 *       N durable puts of distinct SIZE-byte chunks through udr_store_put
 *       into a fresh chunk store, then N udr_store_get of them (best of 3
 *       passes, page cache warm).  Prints "put_s get_s".
 *
 *   fsync DIR N SIZE
 *       The durability peer: N times write a SIZE-byte file (open O_CREAT,
 *       write, fsync, close) then fsync the directory - what one durable
 *       put costs at the least, without hashing or linking.  Prints "s".
 *
 *   ingest ROOT TABLE AVG FILE...
 *       Open (create when missing) a store root as udr_db does (ROOT/chunks
 *       created with chunk_avg AVG, 0 = default; ROOT/catalog) and commit
 *       each FILE in order as the next version of TABLE, each put with
 *       base = the table's latest content (udr_store_put_file_ext +
 *       udr_catalog_commit_next).  Prints the seconds of each file, then a
 *       line "total S".  With BENCH_NO_BASE=1 in the environment the puts
 *       get no base (as `udr put` does).
 *
 *   create ROOT AVG
 *       Create a store root that the udr CLI can use, its chunk store
 *       made with chunk_avg AVG.
 *
 *   stats ROOT
 *       udr_store_stats of ROOT/chunks as "key value" lines.
 */
#include <udr/udr.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	fprintf(stderr, "bench_putget: %s: %s (%d)\n", what, udr_error_last()->message, rc);
	exit(1);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "bench_putget: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* xorshift64*: a deterministic filler, cheap next to the I/O measured. */
static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		v = x * 0x2545F4914F6CDD1Dull;
		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

static int cmd_putget(int argc, char **argv)
{
	udr_store *store;
	udr_hash *hashes;
	unsigned char *buf;
	size_t n, size;
	uint64_t seed;
	double t0, t_put, t_get = -1;
	int rc;

	if (argc != 6)
		return 2;
	n = strtoull(argv[3], NULL, 10);
	size = strtoull(argv[4], NULL, 10);
	seed = strtoull(argv[5], NULL, 10);
	if (size < 8 || n == 0)
		return 2;
	if ((rc = udr_store_open(&store, argv[2], UDR_OPEN_CREATE)))
		die("open", rc);
	buf = malloc(size);
	hashes = malloc(n * sizeof(*hashes));
	if (!buf || !hashes)
		die_errno("malloc");
	fill(buf, size, seed);
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		memcpy(buf, &i, sizeof(i)); /* chunk i differs from all others */
		if ((rc = udr_store_put(&hashes[i], store, buf, size)))
			die("put", rc);
	}
	t_put = now() - t0;
	for (int rep = 0; rep < 3; rep++) {
		double t;

		t0 = now();
		for (size_t i = 0; i < n; i++) {
			void *out;
			size_t len;

			if ((rc = udr_store_get(&out, &len, store, &hashes[i])))
				die("get", rc);
			if (len != size)
				die("get: wrong size", UDR_ECORRUPT);
			udr_free(out);
		}
		t = now() - t0;
		if (t_get < 0 || t < t_get)
			t_get = t;
	}
	printf("%.6f %.6f\n", t_put, t_get);
	free(hashes);
	free(buf);
	udr_store_close(store);
	return 0;
}

static int cmd_fsync(int argc, char **argv)
{
	unsigned char *buf;
	size_t n, size;
	double t0;
	int dfd;

	if (argc != 5)
		return 2;
	n = strtoull(argv[3], NULL, 10);
	size = strtoull(argv[4], NULL, 10);
	if (mkdir(argv[2], 0755) < 0 && errno != EEXIST)
		die_errno("mkdir");
	if ((dfd = open(argv[2], O_RDONLY | O_DIRECTORY)) < 0)
		die_errno("open dir");
	if (!(buf = malloc(size)))
		die_errno("malloc");
	fill(buf, size, 7);
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		char name[64];
		int fd;

		snprintf(name, sizeof(name), "f%zu", i);
		memcpy(buf, &i, sizeof(i) < size ? sizeof(i) : size);
		if ((fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
			die_errno("open");
		if (write(fd, buf, size) != (ssize_t)size)
			die_errno("write");
		if (fsync(fd) < 0)
			die_errno("fsync");
		close(fd);
		if (fsync(dfd) < 0)
			die_errno("fsync dir");
	}
	printf("%.6f\n", now() - t0);
	close(dfd);
	free(buf);
	return 0;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (!p)
		die_errno("malloc");
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static int cmd_ingest(int argc, char **argv)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *store;
	udr_catalog *cat;
	char *chunks, *catdir;
	const char *table;
	double total = 0;
	int rc, no_base = getenv("BENCH_NO_BASE") && strcmp(getenv("BENCH_NO_BASE"), "1") == 0;

	if (argc < 6)
		return 2;
	table = argv[3];
	cfg.chunk_avg = (uint32_t)strtoul(argv[4], NULL, 10);
	if (mkdir(argv[2], 0755) < 0 && errno != EEXIST)
		die_errno("mkdir");
	chunks = join(argv[2], "chunks");
	catdir = join(argv[2], "catalog");
	for (int i = 5; i < argc; i++) {
		udr_put_options po = UDR_PUT_OPTIONS_INIT;
		udr_version *latest = NULL, *v = NULL;
		udr_hash base, h;
		double t0 = now(), t;

		/* a fresh process per file would be what the CLI does; the open is
		 * inside the timed region for the same reason */
		if ((rc = udr_store_open_ext(&store, chunks, UDR_OPEN_CREATE, &cfg)))
			die("store open", rc);
		if ((rc = udr_catalog_open(&cat, catdir, store, UDR_OPEN_CREATE)))
			die("catalog open", rc);
		rc = udr_catalog_get_version(&latest, cat, table, 0);
		if (rc == 0 && latest->nchunks == 1 && !no_base) {
			base = latest->chunks[0];
			po.base = &base;
		} else if (rc != 0 && rc != UDR_ENOTFOUND) {
			die("latest version", rc);
		}
		udr_error_clear();
		if ((rc = udr_store_put_file_ext(&h, store, argv[i], &po)))
			die("put", rc);
		if ((rc = udr_version_new(&v, table, 0)) || (rc = udr_version_add_chunk(v, &h)))
			die("version", rc);
		if ((rc = udr_catalog_commit_next(cat, v)))
			die("commit", rc);
		udr_version_free(v);
		udr_version_free(latest);
		udr_catalog_close(cat);
		udr_store_close(store);
		t = now() - t0;
		total += t;
		printf("%s %.6f\n", argv[i], t);
	}
	printf("total %.6f\n", total);
	free(chunks);
	free(catdir);
	return 0;
}

static int cmd_create(int argc, char **argv)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *store;
	udr_db *db;
	char *chunks;
	int rc;

	if (argc != 4)
		return 2;
	cfg.chunk_avg = (uint32_t)strtoul(argv[3], NULL, 10);
	if (mkdir(argv[2], 0755) < 0 && errno != EEXIST)
		die_errno("mkdir");
	chunks = join(argv[2], "chunks");
	/* the chunk store first, with the setting; udr_db then adds the rest */
	if ((rc = udr_store_open_ext(&store, chunks, UDR_OPEN_CREATE, &cfg)))
		die("store create", rc);
	udr_store_close(store);
	if ((rc = udr_db_open(&db, argv[2], UDR_OPEN_CREATE)))
		die("db create", rc);
	udr_db_close(db);
	free(chunks);
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	udr_store_stats st;
	udr_store *store;
	char *chunks;
	int rc;

	if (argc != 3)
		return 2;
	chunks = join(argv[2], "chunks");
	if ((rc = udr_store_open(&store, chunks, 0)))
		die("open", rc);
	if ((rc = udr_store_stats_get(&st, store)))
		die("stats", rc);
	printf("contents %llu\npieces %llu\nmanifests %llu\ncompressed %llu\ndeltas %llu\n"
	       "logical_bytes %llu\nunique_bytes %llu\nstored_bytes %llu\n",
	       (unsigned long long)st.contents, (unsigned long long)st.pieces, (unsigned long long)st.manifests,
	       (unsigned long long)st.compressed, (unsigned long long)st.deltas,
	       (unsigned long long)st.logical_bytes, (unsigned long long)st.unique_bytes,
	       (unsigned long long)st.stored_bytes);
	udr_store_close(store);
	free(chunks);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	if (argc >= 2 && strcmp(argv[1], "putget") == 0)
		rc = cmd_putget(argc, argv);
	else if (argc >= 2 && strcmp(argv[1], "fsync") == 0)
		rc = cmd_fsync(argc, argv);
	else if (argc >= 2 && strcmp(argv[1], "ingest") == 0)
		rc = cmd_ingest(argc, argv);
	else if (argc >= 2 && strcmp(argv[1], "create") == 0)
		rc = cmd_create(argc, argv);
	else if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		rc = cmd_stats(argc, argv);
	if (rc == 2)
		fprintf(stderr, "usage: bench_putget putget STORE N SIZE SEED | fsync DIR N SIZE |\n"
		                "       ingest ROOT TABLE AVG FILE... | create ROOT AVG | stats ROOT\n");
	return rc;
}
