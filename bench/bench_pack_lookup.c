/*
 * bench_pack_lookup.c - lookup cost in a pack index (FORMAT.md "Packs") from
 * 1e3 to 1e7 entries: builds the index bytes of N synthetic entries (random
 * hashes), then times udr__idx_find for hits and misses in random order.
 * Build: cc -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_pack_lookup.c
 *        build-bench/libudr.a -lzstd -ljansson -lpthread -o bench_pack_lookup
 * Usage: bench_pack_lookup [MAX_N]   (default 10000000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pack.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
	const uint64_t probes = 1000000;
	printf("%10s %12s %12s %12s\n", "entries", "index MB", "hit ns", "miss ns");
	for (uint64_t n = 1000; n <= max; n *= 10) {
		size_t len = UDR__IDX_HDR + UDR__IDX_FANOUT + n * 48 + 32;
		unsigned char *b = calloc(1, len), *hs = b + UDR__IDX_HDR + UDR__IDX_FANOUT;
		uint32_t fan[256] = {0};
		udr__idx x;
		if (!b)
			return 1;
		for (uint64_t i = 0; i < n * 4; i++)
			((uint64_t *)hs)[i] = next();
		qsort(hs, n, 32, cmp);
		memcpy(b, "UDRI", 4);
		b[4] = 1;
		memcpy(b + 8, &n, 8);
		for (uint64_t i = 0; i < n; i++)
			fan[hs[i * 32]]++;
		for (int i = 1; i < 256; i++)
			fan[i] += fan[i - 1];
		memcpy(b + UDR__IDX_HDR, fan, sizeof(fan)); /* little-endian host */
		if (udr__idx_parse(&x, b, len, false, "bench") != 0) {
			fprintf(stderr, "bad index\n");
			return 1;
		}
		udr_hash *q = malloc(probes * sizeof(*q));
		for (uint64_t i = 0; i < probes; i++)
			memcpy(q[i].bytes, hs + (next() % n) * 32, 32);
		/* best of 3 passes: the machine is shared */
		uint64_t found = 0;
		double hit = 1e30, miss = 1e30;
		for (int r = 0; r < 3; r++) {
			double t0 = now();
			for (uint64_t i = 0; i < probes; i++)
				found += udr__idx_find(&x, &q[i]) != UINT64_MAX;
			double t = (now() - t0) / probes * 1e9;
			hit = t < hit ? t : hit;
		}
		if (found < 3 * probes)
			return 1;
		for (uint64_t i = 0; i < probes; i++)
			for (int k = 0; k < 4; k++)
				((uint64_t *)q[i].bytes)[k] = next();
		for (int r = 0; r < 3; r++) {
			double t0 = now();
			for (uint64_t i = 0; i < probes; i++)
				found += udr__idx_find(&x, &q[i]) != UINT64_MAX;
			double t = (now() - t0) / probes * 1e9;
			miss = t < miss ? t : miss;
		}
		printf("%10llu %12.1f %12.0f %12.0f\n", (unsigned long long)n, len / 1e6, hit, miss);
		free(q);
		free(b);
	}
	return 0;
}
