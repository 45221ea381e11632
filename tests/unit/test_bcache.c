/*
 * test_bcache.c - the decoded-piece cache (udr__bcache) under many inserts,
 * evictions and drops: its hash index (open addressing, backward-shift
 * deletion) must always lend the bytes of the piece asked for, also with
 * several threads on one cache (the read-ahead of a content read), and with
 * the eviction order of a cache that keeps finals (fsck's walk).
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define NPIECES 700
#define OPS 12000
#define NTHREADS 4
#define RECENT 4

typedef struct fx {
	char *dir;
	udr_store *st;
	udr_hash h[NPIECES];
	unsigned char *data[NPIECES];
	size_t len[NPIECES];
} fx;

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	char *dir;
	uint32_t x = 12345;
	f->dir = th_mkdtemp();
	dir = th_join(f->dir, "s");
	cfg.chunk_min = 1024;
	cfg.chunk_avg = 4096;
	cfg.chunk_max = 16384;
	assert_int_equal(udr_store_open_ext(&f->st, dir, UDR_OPEN_CREATE, &cfg), 0);
	/* small pieces of many sizes (each one object: at most chunk_max) */
	for (int i = 0; i < NPIECES; i++) {
		f->len[i] = 16 + rnd(&x) % 3000;
		f->data[i] = malloc(f->len[i]);
		assert_non_null(f->data[i]);
		th_fill(f->data[i], f->len[i], (uint32_t)i * 7919u + 1);
		assert_int_equal(udr_store_put(&f->h[i], f->st, f->data[i], f->len[i]), 0);
	}
	free(dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_store_close(f->st);
	for (int i = 0; i < NPIECES; i++)
		free(f->data[i]);
	th_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

struct hammer {
	fx *f;
	udr__bcache *c;
	uint32_t seed;
	bool finals, alone;
	int bad, errors, lost;
};

/* A skewed pick: a hot set hit often, the rest seldom (evictions, misses,
 * entries that come back after they were dropped). */
static int pick(uint32_t *x)
{
	uint32_t r = rnd(x);
	return (r & 3) ? (int)(rnd(x) % 60) : (int)(rnd(x) % NPIECES);
}

static void *hammer_run(void *arg)
{
	struct hammer *a = arg;
	fx *f = a->f;
	uint32_t x = a->seed;
	const udr__bref *held[8] = {NULL};
	int hi[8], recent[RECENT];
	for (int r = 0; r < RECENT; r++)
		recent[r] = -1;
	for (int op = 0; op < OPS; op++) {
		int i = pick(&x), d = 0;
		if (a->finals && op % 97 == 0)
			udr__bcache_next_content(a->c);
		if (a->finals && (rnd(&x) & 1)) {
			unsigned char *out = NULL;
			size_t ol = 0;
			if (udr__piece_load_c(&out, &ol, NULL, f->st, &f->h[i], f->len[i], true, a->c) < 0) {
				a->errors++;
				udr_error_clear();
				continue;
			}
			if (ol != f->len[i] || memcmp(out, f->data[i], ol) != 0)
				a->bad++;
			free(out);
			continue;
		}
		{
			const udr__bref *b = NULL;
			const unsigned char *p;
			size_t l;
			int slot = (int)(rnd(&x) % 8);
			if (udr__base_load(&b, &d, f->st, &f->h[i], a->c) < 0) {
				a->errors++;
				udr_error_clear();
				continue;
			}
			p = udr__bref_data(b, &l);
			if (l != f->len[i] || memcmp(p, f->data[i], l) != 0)
				a->bad++;
			if (a->alone) {
				/* the last few pieces used (a few KiB, in an LRU of 48
				 * KiB or more) are all still there: found without a
				 * decode, whatever was evicted or dropped meanwhile */
				for (int r = 0; r < RECENT; r++) {
					const udr__bref *again = NULL;
					uint64_t before = udr__piece_decodes;
					if (recent[r] < 0)
						continue;
					if (udr__base_load(&again, &d, f->st, &f->h[recent[r]], a->c) < 0 ||
					    udr__piece_decodes != before)
						a->lost++;
					udr_error_clear();
					udr__bref_release(a->c, again);
				}
				memmove(recent + 1, recent, (RECENT - 1) * sizeof(*recent));
				recent[0] = i;
			}
			/* keep a few lent while others are evicted and dropped */
			if (held[slot]) {
				p = udr__bref_data(held[slot], &l);
				if (l != f->len[hi[slot]] || memcmp(p, f->data[hi[slot]], l) != 0)
					a->bad++;
				udr__bref_release(a->c, held[slot]);
			}
			held[slot] = b;
			hi[slot] = i;
		}
	}
	for (int k = 0; k < 8; k++)
		udr__bref_release(a->c, held[k]);
	return NULL;
}

static void hammer(fx *f, bool finals, int nthreads, size_t cap)
{
	udr__bcache *c = udr__bcache_new(cap, UINT64_MAX / 4);
	struct hammer a[NTHREADS];
	pthread_t t[NTHREADS];
	assert_non_null(c);
	if (finals)
		udr__bcache_finals(c);
	for (int k = 0; k < nthreads; k++) {
		a[k] = (struct hammer){f, c, 0x2545F491u * (uint32_t)(k + 1), finals, nthreads == 1 && !finals, 0, 0, 0};
		assert_int_equal(pthread_create(&t[k], NULL, hammer_run, &a[k]), 0);
	}
	for (int k = 0; k < nthreads; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
		assert_int_equal(a[k].bad, 0);
		assert_int_equal(a[k].errors, 0);
		assert_int_equal(a[k].lost, 0);
	}
	udr__bcache_free(c);
}

/* Plain (LRU) caches: a small one (a few dozen entries, evicting at almost
 * every miss) and one that holds a few hundred (the index grows). */
static void bcache_index_lends_the_right_piece(void **state)
{
	fx *f = *state;
	hammer(f, false, 1, 48 << 10);
	hammer(f, false, 1, 1 << 20);
}

static void bcache_index_with_threads(void **state)
{
	fx *f = *state;
	hammer(f, false, NTHREADS, 48 << 10);
	hammer(f, false, NTHREADS, 700 << 10);
}

static void bcache_finals_eviction_order(void **state)
{
	fx *f = *state;
	hammer(f, true, 1, 48 << 10);
	hammer(f, true, NTHREADS, 48 << 10);
	hammer(f, true, NTHREADS, 1 << 20);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(bcache_index_lends_the_right_piece),
		T(bcache_index_with_threads),
		T(bcache_finals_eviction_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
