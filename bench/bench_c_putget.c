/*
 * bench_c_putget.c - the C peer of bench/bench_python.py: put, then get, N
 * distinct chunks of SIZE bytes through the public libudr API and print the
 * seconds each phase took.  Chunk i is a fixed random block whose first 8
 * bytes are i (little-endian), exactly as the Python side builds them.
 *
 * The get phase runs REPS times (reads come from the page cache) and the best
 * time is printed.
 *
 *   bench_c_putget STORE_DIR N SIZE SEED_FILE REPS -> "put_seconds get_seconds"
 */
#include <udr/udr.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_c_putget: %s: %s (%d)\n", what, udr_error_last()->message, rc);
	exit(1);
}

static void set_counter(unsigned char *buf, uint64_t i)
{
	for (int b = 0; b < 8; b++)
		buf[b] = (unsigned char)(i >> (8 * b));
}

int main(int argc, char **argv)
{
	udr_store *store;
	unsigned char *buf;
	udr_hash *hashes;
	size_t n, size;
	double t0, t_put, t_get = -1;
	long reps;
	FILE *f;
	int rc;

	if (argc != 6) {
		fprintf(stderr, "usage: %s STORE_DIR N SIZE SEED_FILE REPS\n", argv[0]);
		return 2;
	}
	reps = strtol(argv[5], NULL, 10);
	n = strtoul(argv[2], NULL, 10);
	size = strtoul(argv[3], NULL, 10);
	if (n == 0 || size < 8 || reps < 1)
		return 2;
	buf = malloc(size);
	hashes = calloc(n, sizeof *hashes);
	f = fopen(argv[4], "rb");
	if (buf == NULL || hashes == NULL || f == NULL || fread(buf, 1, size, f) != size) {
		fprintf(stderr, "bench_c_putget: cannot read %s\n", argv[4]);
		return 1;
	}
	fclose(f);
	if ((rc = udr_store_open(&store, argv[1], UDR_OPEN_CREATE)) < 0)
		die("open", rc);

	t0 = now();
	for (size_t i = 0; i < n; i++) {
		set_counter(buf, i);
		if ((rc = udr_store_put(&hashes[i], store, buf, size)) < 0)
			die("put", rc);
	}
	t_put = now() - t0;

	for (long r = 0; r < reps; r++) {
		double t;

		t0 = now();
		for (size_t i = 0; i < n; i++) {
			void *data;
			size_t len;

			if ((rc = udr_store_get(&data, &len, store, &hashes[i])) < 0)
				die("get", rc);
			if (len != size)
				die("get: wrong length", -1);
			udr_free(data);
		}
		t = now() - t0;
		if (t_get < 0 || t < t_get)
			t_get = t;
	}

	printf("%.6f %.6f\n", t_put, t_get);
	udr_store_close(store);
	free(hashes);
	free(buf);
	return 0;
}
