/*
 * bench_pack_lookup.c - lookup cost in pack indexes (FORMAT.md "Packs") and
 * through the multi-pack index ("Multi-pack index") from 1e3 to 1e7 entries:
 * builds the bytes of N synthetic entries (random hashes), then times hits
 * and misses in random order for
 *   - one pack index of N entries (udr__idx_find),
 *   - a multi-pack index over N entries in N/4096 packs (udr__midx_find),
 *   - no multi-pack index: the same N entries in N/4096 pack indexes (4096
 *     pieces of 8 KiB fill a 32 MiB pack), searched one after the other as
 *     readers do without one;
 * and the cost of the full check of the multi-pack index (its BLAKE3
 * trailer, order and records), which readers skip at open.
 * Build: cc -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_pack_lookup.c
 *        build/libudr.a -lzstd -ljansson -lpthread -o bench_pack_lookup
 * Usage: bench_pack_lookup [MAX_N]   (default 10000000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pack.h"

#define PER_PACK 4096

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

static void fanout(unsigned char *dst, const unsigned char *hs, uint64_t n)
{
	uint32_t fan[256] = {0};
	for (uint64_t i = 0; i < n; i++)
		fan[hs[i * 32]]++;
	for (int i = 1; i < 256; i++)
		fan[i] += fan[i - 1];
	memcpy(dst, fan, sizeof(fan)); /* little-endian host */
}

/* The index bytes of the n sorted hashes hs (records zero: not read here). */
static unsigned char *make_idx(const unsigned char *hs, uint64_t n, size_t *len)
{
	*len = UDR__IDX_HDR + UDR__IDX_FANOUT + n * 48 + 32;
	unsigned char *b = calloc(1, *len);
	if (!b)
		exit(1);
	memcpy(b, "UDRI", 4);
	b[4] = 1;
	memcpy(b + 8, &n, 8);
	fanout(b + UDR__IDX_HDR, hs, n);
	memcpy(b + UDR__IDX_HDR + UDR__IDX_FANOUT, hs, n * 32);
	return b;
}

/* The multi-pack index bytes of the n sorted hashes hs over np packs (each
 * record in a pseudo-random pack), its trailer sealed. */
static unsigned char *make_midx(const unsigned char *hs, uint64_t n, uint32_t np, size_t *len)
{
	size_t fan = UDR__MIDX_HDR + (size_t)np * 32, h = fan + 1024, rec = h + n * 32;
	*len = rec + n * UDR__MIDX_REC + 32;
	unsigned char *b = calloc(1, *len);
	if (!b)
		exit(1);
	memcpy(b, "UDRM", 4);
	b[4] = 1;
	memcpy(b + 8, &np, 4);
	memcpy(b + 16, &n, 8);
	for (uint32_t j = 0; j < np; j++) {
		memcpy(b + UDR__MIDX_HDR + (size_t)j * 32, &j, 4);
		b[UDR__MIDX_HDR + (size_t)j * 32 + 31] = 1;
	}
	qsort(b + UDR__MIDX_HDR, np, 32, cmp);
	fanout(b + fan, hs, n);
	memcpy(b + h, hs, n * 32);
	for (uint64_t i = 0; i < n; i++) {
		unsigned char *r = b + rec + i * UDR__MIDX_REC;
		uint64_t off = 16 + (next() & 0xffffff);
		uint32_t j = (uint32_t)(next() % np), len32 = 8192;
		memcpy(r, &off, 8);
		memcpy(r + 8, &len32, 4);
		memcpy(r + 12, &j, 4);
		r[16] = 1;
	}
	udr_hash tail;
	udr_hash_buf(&tail, b, *len - 32);
	memcpy(b + *len - 32, tail.bytes, 32);
	return b;
}

/* Best of 3 passes over q[0..nq) (the machine is shared): ns per lookup. */
#define TIME(expr, q, nq, found)                                              \
	({                                                                        \
		double best_ = 1e30;                                                  \
		for (int r_ = 0; r_ < 3; r_++) {                                      \
			double t0_ = now();                                               \
			for (uint64_t i_ = 0; i_ < (nq); i_++) {                          \
				const udr_hash *h_ = &(q)[i_];                                \
				found += (expr);                                              \
			}                                                                 \
			double t_ = (now() - t0_) / (double)(nq) * 1e9;                   \
			best_ = t_ < best_ ? t_ : best_;                                  \
		}                                                                     \
		best_;                                                                \
	})

/* Without a multi-pack index: each pack's index in turn, as find_once. */
static bool find_in_packs(const udr__idx *v, size_t np, const udr_hash *h)
{
	for (size_t j = 0; j < np; j++)
		if (udr__idx_find(&v[j], h) != UINT64_MAX)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	uint64_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
	const uint64_t probes = 1000000;
	double midx_hit[8] = {0};
	int row = 0;
	printf("%9s %6s | %8s %7s %7s | %8s %7s %7s %9s | %8s %8s\n", "entries", "packs", "idx MB", "hit ns", "miss ns",
	       "midx MB", "hit ns", "miss ns", "check ms", "no-midx", "miss ns");
	printf("%9s %6s | %24s | %35s | %8s %8s\n", "", "", "one pack index", "multi-pack index over the packs",
	       "hit ns", "");
	for (uint64_t n = 1000; n <= max; n *= 10, row++) {
		uint32_t np = (uint32_t)((n + PER_PACK - 1) / PER_PACK);
		unsigned char *hs = malloc(n * 32);
		udr_hash *q = malloc(probes * sizeof(*q)), *miss = malloc(probes * sizeof(*miss));
		uint64_t found = 0;
		size_t len;
		if (!hs || !q || !miss)
			return 1;
		for (uint64_t i = 0; i < n * 4; i++)
			((uint64_t *)hs)[i] = next();
		qsort(hs, n, 32, cmp);
		for (uint64_t i = 0; i < probes; i++) {
			memcpy(q[i].bytes, hs + (next() % n) * 32, 32);
			for (int k = 0; k < 4; k++)
				((uint64_t *)miss[i].bytes)[k] = next();
		}

		/* one pack index of n entries */
		unsigned char *b = make_idx(hs, n, &len);
		udr__idx x;
		if (udr__idx_parse(&x, b, len, false, "bench") != 0)
			return 1;
		double ih = TIME(udr__idx_find(&x, h_) != UINT64_MAX, q, probes, found);
		double im = TIME(udr__idx_find(&x, h_) != UINT64_MAX, miss, probes, found);
		double imb = len / 1e6;
		free(b);

		/* the multi-pack index over np packs */
		b = make_midx(hs, n, np, &len);
		udr__midx m;
		double t0 = now();
		if (udr__midx_parse(&m, b, len, true, "bench") != 0) {
			fprintf(stderr, "bad multi-pack index\n");
			return 1;
		}
		double check = (now() - t0) * 1e3;
		double mh = TIME(udr__midx_find(&m, h_) != UINT64_MAX, q, probes, found);
		double mm = TIME(udr__midx_find(&m, h_) != UINT64_MAX, miss, probes, found);
		double mmb = len / 1e6;
		free(b);
		midx_hit[row] = mh;

		/* no multi-pack index: np indexes of PER_PACK entries, in a random
		 * order of packs (each holds random hashes: split round robin) */
		udr__idx *v = calloc(np, sizeof(*v));
		unsigned char **vb = calloc(np, sizeof(*vb));
		unsigned char *part = malloc((size_t)PER_PACK * 32 + 32);
		for (uint32_t j = 0; j < np; j++) {
			uint64_t k = 0;
			for (uint64_t i = j; i < n; i += np)
				memcpy(part + (k++) * 32, hs + i * 32, 32);
			vb[j] = make_idx(part, k, &len);
			if (udr__idx_parse(&v[j], vb[j], len, false, "bench") != 0)
				return 1;
		}
		uint64_t few = np > 1 ? (probes / np > 2000 ? probes / np : 2000) : probes;
		if (few > probes)
			few = probes;
		double nh = TIME(find_in_packs(v, np, h_), q, few, found);
		double nm = TIME(find_in_packs(v, np, h_), miss, few, found);
		for (uint32_t j = 0; j < np; j++)
			free(vb[j]);
		free(vb);
		free(v);
		free(part);

		printf("%9llu %6u | %8.1f %7.0f %7.0f | %8.1f %7.0f %7.0f %9.1f | %8.0f %8.0f\n", (unsigned long long)n,
		       np, imb, ih, im, mmb, mh, mm, check, nh, nm);
		fflush(stdout);
		free(q);
		free(miss);
		free(hs);
		if (found == 0)
			return 1;
	}
	if (row > 1 && midx_hit[0] > 0)
		printf("multi-pack index hit, largest / 1e3: %.2f\n", midx_hit[row - 1] / midx_hit[0]);
	return 0;
}
