/*
 * test_review_r7.c - hostile review R7 of three commits: choose_bases' rule
 * that a step lands on the last step only while a quarter of
 * delta.max_depth is left (every depth, delta version 1), and pack reads of
 * an entry with its header in one pread (entries around 64 KiB, at the end
 * of a pack, cut short, failing their CRC, or named by the index wrongly).
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/pack.h"
#include "store/store_internal.h"

typedef struct fx {
	char *dir;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr__delta_write_version = 2;
	th_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static udr_store *open_depth(fx *f, const char *name, int depth)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *st = NULL;
	char *dir = th_join(f->dir, name);
	cfg.chunk_min = 1024;
	cfg.chunk_avg = 4096;
	cfg.chunk_max = 16384;
	cfg.delta_max_depth = depth;
	assert_int_equal(udr_store_open_ext(&st, dir, UDR_OPEN_CREATE, &cfg), 0);
	free(dir);
	return st;
}

/* ---- choose_bases at every depth ------------------------------------------ */

#define ROWS 1000
#define NV 56

/* version v of an edited table: 1% of the rows rewritten, 1% appended */
static char *table(uint32_t *val, int *n, uint32_t *x, int v, size_t *len)
{
	size_t cap, k = 0;
	char *b;
	if (v > 1) {
		for (int i = 0; i < ROWS / 100; i++)
			val[rnd(x) % ROWS] = rnd(x) % 100000000;
		for (int i = 0; i < ROWS / 100; i++)
			val[(*n)++] = rnd(x) % 100000000;
	}
	cap = (size_t)*n * 20 + 1;
	b = malloc(cap);
	assert_non_null(b);
	for (int i = 0; i < *n; i++)
		k += (size_t)snprintf(b + k, cap - k, "%06d,%08u\n", i, val[i]);
	*len = k;
	return b;
}

struct depths {
	udr_store *st;
	int max, deltas, steps;
	bool bad_base;
};

static int depth_cb(const udr_hash *h, void *payload)
{
	struct depths *w = payload;
	udr__delta_hdr dh;
	if (udr__delta_peek(&dh, w->st, h) != 0 || dh.depth == 0)
		return 0;
	w->deltas++;
	if (dh.depth > w->max)
		w->max = dh.depth;
	if (dh.flags & UDR__DELTA_STEP)
		w->steps++;
	for (int k = 0; k < dh.nbases; k++) {
		udr__delta_hdr bh;
		/* every base stored, strictly shallower (no loop) */
		if (udr__delta_peek(&bh, w->st, &dh.bases[k]) != 0 || bh.depth >= dh.depth)
			w->bad_base = true;
	}
	return 0;
}

/* A long history at delta.max_depth depth (delta version ver): every
 * version reads back byte for byte, no delta is deeper than the limit or
 * names a base that is missing or not shallower; the bytes of the pieces
 * of the last 20 versions are returned. */
static uint64_t history(fx *f, int depth, int ver, struct depths *w)
{
	char name[32], *in = th_join(f->dir, "in");
	uint32_t *val = calloc(ROWS + ROWS / 100 * NV, sizeof(uint32_t)), x = 777;
	char *data[NV];
	size_t lens[NV];
	udr_hash hs[NV];
	udr_store *st;
	udr_store_stats s0, s1;
	int n = ROWS;
	snprintf(name, sizeof(name), "d%d-v%d", depth, ver);
	udr__delta_write_version = ver;
	st = open_depth(f, name, depth);
	for (int i = 0; i < ROWS; i++)
		val[i] = rnd(&x) % 100000000;
	memset(&s0, 0, sizeof(s0));
	for (int v = 1; v <= NV; v++) {
		udr_put_options po = UDR_PUT_OPTIONS_INIT;
		data[v - 1] = table(val, &n, &x, v, &lens[v - 1]);
		th_write_file(in, data[v - 1], lens[v - 1]);
		if (v > 1)
			po.base = &hs[v - 2];
		assert_int_equal(udr_store_put_file_ext(&hs[v - 1], st, in, &po), 0);
		if (v == NV - 20)
			assert_int_equal(udr_store_stats_get(&s0, st), 0);
	}
	assert_int_equal(udr_store_stats_get(&s1, st), 0);
	udr__delta_write_version = 2;
	for (int v = 1; v <= NV; v++) {
		void *out = NULL;
		size_t ol = 0;
		if (udr_store_get(&out, &ol, st, &hs[v - 1]) != 0)
			fail_msg("depth %d: version %d: %s", depth, v, udr_error_last()->message);
		assert_int_equal(ol, lens[v - 1]);
		assert_memory_equal(out, data[v - 1], ol);
		udr_free(out);
		free(data[v - 1]);
	}
	memset(w, 0, sizeof(*w));
	w->st = st;
	assert_int_equal(udr_store_foreach(st, depth_cb, w), 0);
	assert_int_equal(udr_store_fsck(NULL, st, NULL, NULL), 0);
	udr_store_close(st);
	free(val);
	free(in);
	return s1.piece_bytes - s0.piece_bytes;
}

static void r7_choose_bases_every_depth(void **state)
{
	fx *f = *state;
	const int depths[] = {1, 2, 3, 7, 8};
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		uint64_t v1 = 0;
		for (int ver = 1; ver <= 2; ver++) {
			struct depths w;
			uint64_t late = history(f, depths[i], ver, &w);
			print_message("max_depth %2d v%d: deltas %d (steps %d), deepest %d, the last 20 versions: %llu bytes\n",
			              depths[i], ver, w.deltas, w.steps, w.max, (unsigned long long)late);
			assert_true(w.max <= depths[i]);
			assert_false(w.bad_base);
			assert_true(w.deltas > 0);
			if (ver == 1) {
				assert_int_equal(w.steps, 0);
				v1 = late;
			} else if (depths[i] >= 8) {
				/* the rule's range: version 2 costs no more than version 1.
				 * Below max_depth 8 it does not apply and a long history
				 * costs more than with version 1 (here at 7: 55,937 bytes
				 * against 31,595; with 1500 rows and 70 versions 91,684
				 * against 49,660, and 34,955 with a margin of at least 2,
				 * which fails test_delta's 14-version grouped test
				 * instead): printed above, not asserted */
				assert_true(late <= v1);
			}
		}
	}
}

/* ---- pack entries around 64 KiB -------------------------------------------- */

/* One raw entry of len bytes, the last of its pack (after a small one). */
static udr_hash pack_one(udr_store *st, size_t len, uint32_t seed, unsigned char **data)
{
	udr__packw *w = NULL;
	unsigned char small[100];
	udr_hash h, hs;
	*data = malloc(len ? len : 1);
	th_fill(*data, len, seed);
	th_fill(small, sizeof(small), seed + 1000);
	udr_hash_buf(&h, *data, len);
	udr_hash_buf(&hs, small, sizeof(small));
	assert_int_equal(udr__packw_new(&w, st, UDR__PACK_CLASS_DATA), 0);
	assert_int_equal(udr__packw_append(w, &hs, 1, sizeof(small), small, sizeof(small)), 0);
	assert_int_equal(udr__packw_append(w, &h, 1, len, *data, (uint32_t)len), 0);
	assert_int_equal(udr__packw_flush(w), 0);
	udr__packw_free(w);
	return h;
}

static void assert_reads(udr_store *st, const udr_hash *h, const unsigned char *d, size_t len)
{
	void *buf = NULL;
	size_t bl = 0;
	if (udr_store_get(&buf, &bl, st, h) != 0)
		fail_msg("get of %zu bytes: %s", len, udr_error_last()->message);
	assert_int_equal(bl, len);
	assert_memory_equal(buf, d, len);
	udr_free(buf);
}

static void assert_corrupt(udr_store *st, const udr_hash *h)
{
	void *buf = NULL;
	size_t bl = 0;
	assert_int_equal(udr_store_get(&buf, &bl, st, h), UDR_ECORRUPT);
	assert_null(buf);
}

static const size_t edge_lens[] = {1, 65531, 65532, 65533, 65535, 65536, 65537, 200000};
#define NEDGE (sizeof(edge_lens) / sizeof(edge_lens[0]))

/* Entries of every size around the one-pread limit read back, at the end
 * of their pack; cut short by one byte or with a bit flipped in the
 * payload, the header or the CRC they are damage, never other bytes. */
static void r7_pack_entries_around_64k(void **state)
{
	fx *f = *state;
	for (size_t i = 0; i < NEDGE; i++) {
		for (int dmg = 0; dmg < 5; dmg++) {
			char name[40];
			char *dir;
			unsigned char *d = NULL;
			udr_store *st = NULL, *s2 = NULL;
			off_t off;
			size_t len;
			char *pk;
			udr_hash h;
			snprintf(name, sizeof(name), "e%zu-%d", i, dmg);
			st = open_depth(f, name, 8);
			dir = th_join(f->dir, name);
			h = pack_one(st, edge_lens[i], (uint32_t)(i + 1), &d);
			udr_store_close(st);
			pk = th_object_at(dir, &h, &off, &len); /* off: the payload's */
			assert_int_equal(len, edge_lens[i]);
			switch (dmg) {
			case 1: /* cut short by one byte (the CRC's last) */
				th_truncate(pk, off + (off_t)len + UDR__PACK_ENTRY_CRC - 1);
				break;
			case 2: /* the payload's last byte */
				th_flip_bit(pk, off + (off_t)len - 1);
				break;
			case 3: /* the CRC's last byte */
				th_flip_bit(pk, off + (off_t)len + UDR__PACK_ENTRY_CRC - 1);
				break;
			case 4: /* the header's hash */
				th_flip_bit(pk, off - UDR__PACK_ENTRY_HDR + 20);
				break;
			default:
				break;
			}
			assert_int_equal(udr_store_open(&s2, dir, 0), 0);
			if (dmg == 0)
				assert_reads(s2, &h, d, edge_lens[i]);
			else
				assert_corrupt(s2, &h);
			udr_store_close(s2);
			free(pk);
			free(dir);
			free(d);
		}
	}
}

/* The index names entries of the same length the other way round (small
 * and large path): the header check refuses the other entry's bytes. */
static void r7_pack_index_swapped_around_64k(void **state)
{
	fx *f = *state;
	const size_t lens[] = {65532, 65533};
	for (size_t i = 0; i < 2; i++) {
		char name[40], *dir, *pk, *ix;
		udr__packw *w = NULL;
		unsigned char *a = malloc(lens[i]), *b = malloc(lens[i]), *bytes, tmp[8], *rec;
		udr_hash ha, hb, tail;
		udr_store *st, *s2 = NULL;
		off_t off;
		size_t len, il;
		snprintf(name, sizeof(name), "swap%zu", i);
		st = open_depth(f, name, 8);
		dir = th_join(f->dir, name);
		th_fill(a, lens[i], 71);
		th_fill(b, lens[i], 72);
		udr_hash_buf(&ha, a, lens[i]);
		udr_hash_buf(&hb, b, lens[i]);
		assert_int_equal(udr__packw_new(&w, st, UDR__PACK_CLASS_DATA), 0);
		assert_int_equal(udr__packw_append(w, &ha, 1, lens[i], a, (uint32_t)lens[i]), 0);
		assert_int_equal(udr__packw_append(w, &hb, 1, lens[i], b, (uint32_t)lens[i]), 0);
		assert_int_equal(udr__packw_flush(w), 0);
		udr__packw_free(w);
		udr_store_close(st);
		pk = th_object_at(dir, &ha, &off, &len);
		ix = th_replace(pk, ".pack", ".idx");
		bytes = (unsigned char *)th_read_file(ix, &il);
		rec = bytes + UDR__IDX_HDR + UDR__IDX_FANOUT + 2 * UDR_HASH_SIZE;
		memcpy(tmp, rec, 8);
		memcpy(rec, rec + UDR__IDX_REC, 8);
		memcpy(rec + UDR__IDX_REC, tmp, 8);
		udr_hash_buf(&tail, bytes, il - UDR_HASH_SIZE);
		memcpy(bytes + il - UDR_HASH_SIZE, tail.bytes, UDR_HASH_SIZE);
		th_write_file(ix, bytes, il);
		assert_int_equal(udr_store_open(&s2, dir, 0), 0);
		assert_corrupt(s2, &ha);
		assert_corrupt(s2, &hb);
		udr_store_close(s2);
		free(bytes);
		free(ix);
		free(pk);
		free(dir);
		free(a);
		free(b);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(r7_choose_bases_every_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(r7_pack_entries_around_64k, setup, teardown),
		cmocka_unit_test_setup_teardown(r7_pack_index_swapped_around_64k, setup, teardown),
	};
	th_filter(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
