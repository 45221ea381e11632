/*
 * udr_worker.c - a load generator for the stress tests, linked to libudr.
 * Each line it prints is written (and flushed) only after the library call
 * it reports has returned, so a test that kills it knows what was done.
 *
 *   udr_worker crashloop ROOT SEED     puts and commits forever:
 *                                      "put <hash>", "commit <table> <version> <hash>..."
 *   udr_worker commits ROOT TABLE N    N x commit_next of one chunk: "commit <table> <version>"
 *   udr_worker puts ROOT SEED N        N puts, half shared content, half own: "put <hash>"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <udr/udr.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "udr_worker: %s: %d %s\n", what, rc, udr_error_last()->message);
	exit(2);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static int crashloop(udr_db *db, uint64_t seed)
{
	static const char *const tables[] = {"alpha", "beta", "gamma.v2"};
	udr_store *st = udr_db_store(db);
	udr_catalog *cat = udr_db_catalog(db);
	rng_state = seed * 0x2545F4914F6CDD1DULL + 88172645463325252ULL;
	unsigned char *buf = malloc(1 << 20);
	udr_hash recent[8];
	int nrecent = 0;
	char hex[UDR_HASH_HEXSIZE + 1];
	for (uint64_t iter = 0;; iter++) {
		/* Sizes from empty to ~1 MiB; some contents repeat (dedup). */
		size_t len;
		uint64_t r = rnd() % 100;
		if (r < 5)
			len = 0;
		else if (r < 70)
			len = rnd() % 4096;
		else if (r < 95)
			len = rnd() % 65536;
		else
			len = rnd() % (1 << 20);
		uint64_t cseed = (rnd() % 4 == 0) ? rnd() % 16 : rnd();
		fill(buf, len, cseed);
		udr_hash h;
		int rc = udr_store_put(&h, st, buf, len);
		if (rc != 0)
			die("put", rc);
		udr_hash_tohex(hex, &h);
		printf("put %s\n", hex);
		fflush(stdout);
		recent[nrecent++ % 8] = h;

		if (rnd() % 3 == 0) {
			const char *t = tables[rnd() % 3];
			udr_version *v = NULL;
			if ((rc = udr_version_new(&v, t, 0)) != 0)
				die("version_new", rc);
			int n = 1 + (int)(rnd() % 4);
			int avail = nrecent < 8 ? nrecent : 8;
			for (int i = 0; i < n; i++)
				udr_version_add_chunk(v, &recent[rnd() % avail]);
			char msg[64];
			snprintf(msg, sizeof(msg), "iteration %llu", (unsigned long long)iter);
			udr_version_set_message(v, msg);
			udr_version_set_meta(v, "seed", "crash");
			/* Alternate between explicit numbers and commit_next. */
			uint64_t latest = 0;
			int lrc = udr_catalog_latest(&latest, cat, t);
			if (lrc != 0 && lrc != UDR_ENOTFOUND)
				die("latest", lrc);
			if (rnd() % 2) {
				v->version = latest + 1;
				rc = udr_catalog_commit(cat, v);
			} else {
				rc = udr_catalog_commit_next(cat, v);
			}
			if (rc != 0)
				die("commit", rc);
			printf("commit %s %llu", t, (unsigned long long)v->version);
			for (size_t i = 0; i < v->nchunks; i++) {
				udr_hash_tohex(hex, &v->chunks[i]);
				printf(" %s", hex);
			}
			printf("\n");
			fflush(stdout);
			udr_version_free(v);
		}
	}
	return 0;
}

static int commits(udr_db *db, const char *table, long n)
{
	udr_hash h;
	char pid[32];
	snprintf(pid, sizeof(pid), "worker %ld", (long)getpid());
	int rc = udr_store_put(&h, udr_db_store(db), pid, strlen(pid));
	if (rc != 0)
		die("put", rc);
	for (long i = 0; i < n; i++) {
		udr_version *v = NULL;
		if ((rc = udr_version_new(&v, table, 0)) != 0)
			die("version_new", rc);
		udr_version_add_chunk(v, &h);
		if ((rc = udr_catalog_commit_next(udr_db_catalog(db), v)) != 0)
			die("commit_next", rc);
		printf("commit %s %llu\n", table, (unsigned long long)v->version);
		fflush(stdout);
		udr_version_free(v);
	}
	return 0;
}

static int puts_(udr_db *db, uint64_t seed, long n)
{
	unsigned char *buf = malloc(300000);
	char hex[UDR_HASH_HEXSIZE + 1];
	for (long i = 0; i < n; i++) {
		/* Even: content every worker writes too; odd: this worker's own. */
		size_t len = (size_t)(i * 7919 % 300000);
		fill(buf, len, (i % 2 == 0) ? (uint64_t)i : seed * 1000003 + (uint64_t)i);
		udr_hash h;
		int rc = udr_store_put(&h, udr_db_store(db), buf, len);
		if (rc != 0)
			die("put", rc);
		udr_hash_tohex(hex, &h);
		printf("put %s\n", hex);
		fflush(stdout);
	}
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: udr_worker crashloop ROOT SEED | commits ROOT TABLE N | "
		                "puts ROOT SEED N\n");
		return 2;
	}
	udr_db *db = NULL;
	int rc = udr_db_open(&db, argv[2], UDR_OPEN_CREATE);
	if (rc != 0)
		die("open", rc);
	if (strcmp(argv[1], "crashloop") == 0)
		rc = crashloop(db, strtoull(argv[3], NULL, 10));
	else if (strcmp(argv[1], "commits") == 0 && argc >= 5)
		rc = commits(db, argv[3], strtol(argv[4], NULL, 10));
	else if (strcmp(argv[1], "puts") == 0 && argc >= 5)
		rc = puts_(db, strtoull(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	else
		rc = 2;
	udr_db_close(db);
	return rc;
}
