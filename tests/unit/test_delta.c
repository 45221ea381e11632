/*
 * test_delta.c - delta pieces of version 2 (several base pieces as the
 * reference prefix): the size win on grouped data against version-1 deltas
 * (computed in the same test), the depth limit, the decode bound of one
 * content read, and damage (headers, a missing or damaged base, depths).
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"

#define GROUPS 40
#define HISTORY 30
#define VERSIONS 14
#define DEPTH 6

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

/* Version v of a table sorted by group then day: HISTORY + v rows in every
 * group, so each version inserts one row into each group. */
static char *grouped(int v, size_t *len)
{
	size_t cap = (size_t)GROUPS * (HISTORY + VERSIONS + 1) * 64, n = 0;
	char *b = malloc(cap);
	assert_non_null(b);
	for (int g = 0; g < GROUPS; g++) {
		uint32_t x = 0x9e3779b9u * (uint32_t)(g + 1);
		for (int d = 0; d < HISTORY + v; d++)
			n += (size_t)snprintf(b + n, cap - n, "grp-%03d,2020-%04d,%u.%02u,%u\n", g, d, rnd(&x) % 5000,
			                      rnd(&x) % 100, rnd(&x) % 100000);
	}
	*len = n;
	return b;
}

/* A store of format 3 (packs) unless format says otherwise. */
static udr_store *open_store_depth(fx *f, const char *name, int format, int depth)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *st = NULL;
	char *dir = th_join(f->dir, name);
	if (format)
		cfg.format = format;
	cfg.chunk_min = 1024;
	cfg.chunk_avg = 4096;
	cfg.chunk_max = 16384;
	cfg.delta_max_depth = depth;
	assert_int_equal(udr_store_open_ext(&st, dir, UDR_OPEN_CREATE, &cfg), 0);
	free(dir);
	return st;
}

static udr_store *open_store_fmt(fx *f, const char *name, int format)
{
	return open_store_depth(f, name, format, DEPTH);
}

static udr_store *open_store(fx *f, const char *name)
{
	return open_store_fmt(f, name, 0);
}

/* Put VERSIONS versions, each against the previous one; hs receives them. */
static void put_versions(fx *f, udr_store *st, udr_hash *hs)
{
	char *in = th_join(f->dir, "in");
	for (int v = 1; v <= VERSIONS; v++) {
		udr_put_options po = UDR_PUT_OPTIONS_INIT;
		size_t len;
		char *d = grouped(v, &len);
		if (v > 1)
			po.base = &hs[v - 2];
		th_write_file(in, d, len);
		assert_int_equal(udr_store_put_file_ext(&hs[v - 1], st, in, &po), 0);
		free(d);
	}
	free(in);
}

static void assert_versions_read(udr_store *st, const udr_hash *hs)
{
	for (int v = 1; v <= VERSIONS; v++) {
		void *out = NULL;
		size_t len, ol = 0;
		char *d = grouped(v, &len);
		assert_int_equal(udr_store_get(&out, &ol, st, &hs[v - 1]), 0);
		assert_int_equal(ol, len);
		assert_memory_equal(out, d, len);
		udr_free(out);
		free(d);
	}
}

struct walk {
	udr_store *st;
	int deltas, v2, multi, maxdepth, objects;
	udr_hash some_v2, multi_base; /* a version-2 delta; one with 2+ bases */
	udr_hash deep;                /* a delta whose first base is a delta */
};

static int walk_cb(const udr_hash *h, void *payload)
{
	struct walk *w = payload;
	udr__delta_hdr dh;
	w->objects++;
	if (udr__delta_peek(&dh, w->st, h) != 0 || dh.depth == 0)
		return 0;
	w->deltas++;
	if (dh.depth > w->maxdepth)
		w->maxdepth = dh.depth;
	if (dh.version == 2) {
		w->v2++;
		w->some_v2 = *h;
	}
	if (dh.nbases > 1) {
		w->multi++;
		w->multi_base = *h;
	}
	{
		udr__delta_hdr bh;
		if (udr__delta_peek(&bh, w->st, &dh.bases[0]) == 0 && bh.depth > 0)
			w->deep = *h;
	}
	return 0;
}

static uint64_t piece_bytes(udr_store *st)
{
	udr_store_stats s;
	assert_int_equal(udr_store_stats_get(&s, st), 0);
	return s.piece_bytes;
}

/* Grouped data: version-2 deltas (windows of base pieces) store it in far
 * fewer bytes than version-1 deltas (one base piece each), both readable;
 * depths stay within delta.max_depth, and the depth limit does not turn the
 * later versions into plain pieces. */
static void delta_v2_beats_v1_on_grouped_data(void **state)
{
	fx *f = *state;
	udr_hash h1[VERSIONS], h2[VERSIONS];
	udr_store *s1, *s2;
	struct walk w1, w2;
	uint64_t b1, b2;
	udr__delta_write_version = 1;
	s1 = open_store(f, "v1");
	put_versions(f, s1, h1);
	udr__delta_write_version = 2;
	s2 = open_store(f, "v2");
	put_versions(f, s2, h2);
	assert_versions_read(s1, h1);
	assert_versions_read(s2, h2);
	memset(&w1, 0, sizeof(w1));
	memset(&w2, 0, sizeof(w2));
	w1.st = s1;
	w2.st = s2;
	assert_int_equal(udr_store_foreach(s1, walk_cb, &w1), 0);
	assert_int_equal(udr_store_foreach(s2, walk_cb, &w2), 0);
	b1 = piece_bytes(s1);
	b2 = piece_bytes(s2);
	print_message("pieces stored: version-1 deltas %llu bytes (%d deltas), version-2 %llu bytes (%d deltas, %d "
	              "with several bases)\n", (unsigned long long)b1, w1.deltas, (unsigned long long)b2, w2.deltas,
	              w2.multi);
	assert_int_equal(w1.v2, 0);
	assert_true(w2.v2 == w2.deltas && w2.multi > 0);
	assert_true(w1.maxdepth <= DEPTH && w2.maxdepth == DEPTH);
	/* measured: 0.59 (version 2 / version 1) */
	assert_true(b2 * 100 < b1 * 75);
	udr_store_close(s1);
	udr_store_close(s2);
}

/* An edited table with a long history: ROWS rows, each version rewrites 1%
 * of them and appends 1% (the benchmarks' table generator in small). */
#define LROWS 4000
#define LVERSIONS 150
#define LFROM 110
#define LDEPTH 12

struct ltable {
	uint32_t *val;
	int n;
	uint32_t x;
};

static char *ltable_next(struct ltable *t, int v, size_t *len)
{
	size_t cap, n = 0;
	char *b;
	if (v > 1) {
		for (int i = 0; i < LROWS / 100; i++)
			t->val[rnd(&t->x) % LROWS] = rnd(&t->x) % 100000000;
		for (int i = 0; i < LROWS / 100; i++)
			t->val[t->n++] = rnd(&t->x) % 100000000;
	}
	cap = (size_t)t->n * 20 + 1;
	b = malloc(cap);
	assert_non_null(b);
	for (int i = 0; i < t->n; i++)
		n += (size_t)snprintf(b + n, cap - n, "%06d,%08u\n", i, t->val[i]);
	*len = n;
	return b;
}

/* The versions of a long history cost no more than the same versions in a
 * store that starts late: at the depth limit a piece steps down to older
 * bases and the versions after it chain on that step; a step that landed on
 * the last step went one level deeper each time (creeping), until every
 * version stepped down to the same ever older base, each delta larger than
 * the last (measured on bench_gc.sh's table: 200 versions took 28 MB, and
 * versions 151-200 cost 3.4x what they cost in a store begun at version 101). */
static void delta_long_history_stays_compact(void **state)
{
	fx *f = *state;
	struct ltable t = {.n = LROWS, .x = 12345};
	udr_store *lng = open_store_depth(f, "long", 0, LDEPTH), *late = open_store_depth(f, "late", 0, LDEPTH);
	udr_hash hl, hf;
	char *in = th_join(f->dir, "in");
	uint64_t l0 = 0, f0 = 0, l1, f1;
	t.val = calloc(LROWS + LROWS / 100 * LVERSIONS, sizeof(uint32_t));
	assert_non_null(t.val);
	for (int i = 0; i < LROWS; i++)
		t.val[i] = rnd(&t.x) % 100000000;
	for (int v = 1; v <= LVERSIONS; v++) {
		udr_put_options pl = UDR_PUT_OPTIONS_INIT, pf = UDR_PUT_OPTIONS_INIT;
		size_t len;
		char *d = ltable_next(&t, v, &len);
		th_write_file(in, d, len);
		free(d);
		if (v > 1)
			pl.base = &hl;
		assert_int_equal(udr_store_put_file_ext(&hl, lng, in, &pl), 0);
		if (v > LFROM)
			pf.base = &hf;
		if (v >= LFROM)
			assert_int_equal(udr_store_put_file_ext(&hf, late, in, &pf), 0);
		if (v == LFROM) {
			l0 = piece_bytes(lng);
			f0 = piece_bytes(late);
		}
	}
	l1 = piece_bytes(lng) - l0;
	f1 = piece_bytes(late) - f0;
	print_message("versions %d-%d: %llu bytes in the long store, %llu in the store begun at %d\n", LFROM + 1,
	              LVERSIONS, (unsigned long long)l1, (unsigned long long)f1, LFROM);
	assert_true(l1 * 100 <= f1 * 150);
	{ /* the last version still reads back */
		void *out = NULL;
		size_t ol = 0, len;
		struct ltable u = {.n = t.n, .val = t.val};
		char *d = ltable_next(&u, 1, &len);
		assert_int_equal(udr_store_get(&out, &ol, lng, &hl), 0);
		assert_int_equal(ol, len);
		assert_memory_equal(out, d, len);
		udr_free(out);
		free(d);
	}
	free(t.val);
	free(in);
	udr_store_close(lng);
	udr_store_close(late);
}

/* The pieces a content's decode needs: its own and, through every delta
 * header, their bases, down to plain pieces (each once). */
static size_t closure(udr_store *st, const udr_hash *h)
{
	udr__manifest m;
	udr_hash *set, *todo;
	size_t n = 0, ntodo = 0, cap = 4096;
	assert_int_equal(udr__manifest_load(&m, st, h), 0);
	set = calloc(cap, sizeof(*set));
	todo = calloc(cap, sizeof(*todo));
	for (uint64_t i = 0; i < m.npieces; i++)
		todo[ntodo++] = m.pieces[i].hash;
	udr__manifest_free(&m);
	while (ntodo) {
		udr_hash x = todo[--ntodo];
		udr__delta_hdr dh;
		bool seen = false;
		for (size_t i = 0; i < n && !seen; i++)
			seen = udr_hash_equal(&set[i], &x);
		if (seen)
			continue;
		assert_true(n < cap);
		set[n++] = x;
		assert_int_equal(udr__delta_peek(&dh, st, &x), 0);
		for (int k = 0; k < dh.nbases; k++) {
			assert_true(ntodo < cap);
			todo[ntodo++] = dh.bases[k];
		}
	}
	free(set);
	free(todo);
	return n;
}

/* Reading a content decodes each piece of its delta chains once (the bases
 * cache), not once per delta naming it (without the cache: once per path
 * through the chains, exponential in the depth).  One thread: read-ahead
 * threads may still decode a base both at once (docs/ARCHITECTURE.md). */
static void delta_read_decodes_each_piece_once(void **state)
{
	fx *f = *state;
	udr_hash hs[VERSIONS];
	udr_store *st = open_store(f, "once");
	void *out = NULL;
	size_t ol = 0, need;
	uint64_t before;
	put_versions(f, st, hs);
	st->threads = 1;
	need = closure(st, &hs[VERSIONS - 1]);
	before = udr__piece_decodes;
	assert_int_equal(udr_store_get(&out, &ol, st, &hs[VERSIONS - 1]), 0);
	udr_free(out);
	print_message("last version: %llu piece decodes, %zu pieces in its chains\n",
	              (unsigned long long)(udr__piece_decodes - before), need);
	assert_true(udr__piece_decodes - before <= need);
	udr_store_close(st);
}

static void assert_fails(udr_store *st, const udr_hash *h, const char *needle)
{
	void *out = NULL;
	size_t ol = 0;
	assert_int_equal(udr_store_get(&out, &ol, st, h), UDR_ECORRUPT);
	if (needle)
		th_assert_error(UDR_ECORRUPT, needle);
	assert_null(out);
}

/* Damaged headers, a missing base, a damaged base and a depth that is not
 * above its base's are integrity errors naming the piece, never bytes.
 * Format 2: the headers are edited in place in loose files (in a pack any
 * such edit fails the entry's CRC first: delta_v2_damage_packed). */
static void delta_v2_damage(void **state)
{
	fx *f = *state;
	udr_hash hs[VERSIONS];
	udr_store *st = open_store_fmt(f, "dmg", 2);
	struct walk w;
	char *p, *orig;
	size_t ol;
	put_versions(f, st, hs);
	memset(&w, 0, sizeof(w));
	w.st = st;
	assert_int_equal(udr_store_foreach(st, walk_cb, &w), 0);
	assert_true(w.multi > 0 && w.deep.bytes[0] | w.deep.bytes[1] | w.deep.bytes[2]);
	p = th_object_path(udr_store_path(st), &w.multi_base);
	orig = th_read_file(p, &ol);
	assert_true(ol > 12 + 64);
	{
		/* version, base count (0, too many, more than the file holds), the
		 * reserved byte, depth 0, size 0: each a damaged header */
		static const struct { int off; unsigned char val; } bad[] = {
			{4, 3}, {6, 0}, {6, UDR__DELTA_BASES_MAX + 1}, {7, 2}, {5, 0}, {8, 0}, {9, 0}, {10, 0}, {11, 0}};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *c = malloc(ol);
			memcpy(c, orig, ol);
			c[bad[i].off] = (char)bad[i].val;
			if (bad[i].off >= 8) /* size 0: all four bytes */
				memset(c + 8, 0, 4);
			th_write_file(p, c, ol);
			free(c);
			assert_fails(st, &w.multi_base, th_hex(&w.multi_base));
		}
		th_write_file(p, orig, 13); /* truncated inside the bases */
		assert_fails(st, &w.multi_base, th_hex(&w.multi_base));
		th_write_file(p, orig, ol);
	}
	{
		/* the second base missing, then damaged (raw, one bit flipped) */
		udr__delta_hdr dh;
		void *bb = NULL;
		size_t bl = 0;
		char *bpath, *braw;
		assert_int_equal(udr__delta_parse(&dh, (unsigned char *)orig, ol, "t"), 0);
		assert_true(dh.nbases >= 2);
		assert_int_equal(udr_store_get(&bb, &bl, st, &dh.bases[1]), 0);
		bpath = th_object_path(udr_store_path(st), &dh.bases[1]);
		braw = th_chunk_path(udr_store_path(st), &dh.bases[1]);
		char *bsave = NULL;
		size_t bsl = 0;
		bsave = th_read_file(bpath, &bsl);
		unlink(bpath);
		assert_fails(st, &w.multi_base, th_hex(&dh.bases[1]));
		((unsigned char *)bb)[bl / 2] ^= 1;
		th_write_file(braw, bb, bl);
		assert_fails(st, &w.multi_base, th_hex(&dh.bases[1]));
		unlink(braw);
		th_write_file(bpath, bsave, bsl);
		free(bsave);
		udr_free(bb);
		free(bpath);
		free(braw);
		{
			void *o = NULL;
			size_t l = 0;
			assert_int_equal(udr_store_get(&o, &l, st, &w.multi_base), 0);
			udr_free(o);
		}
	}
	free(orig);
	free(p);
	{
		/* depth 1 over a base that is itself a delta: a chain that could loop */
		p = th_object_path(udr_store_path(st), &w.deep);
		orig = th_read_file(p, &ol);
		orig[5] = 1;
		th_write_file(p, orig, ol);
		assert_fails(st, &w.deep, th_hex(&w.deep));
		free(orig);
		free(p);
	}
	udr_store_close(st);
}

/* Format 3: version-2 deltas are pack entries, payload unchanged; a base
 * missing from every pack, then damaged in its pack, fails the read naming
 * it; a good copy put again (a duplicate in a newer pack) heals the read. */
static void delta_v2_damage_packed(void **state)
{
	fx *f = *state;
	udr_hash hs[VERSIONS];
	udr_store *st = open_store(f, "dmgp");
	char *dir = th_join(f->dir, "dmgp");
	struct walk w;
	udr__delta_hdr dh;
	void *bb = NULL, *o = NULL;
	size_t bl = 0, l = 0;
	udr_hash again;
	off_t off;
	size_t len;
	char *at;
	put_versions(f, st, hs);
	memset(&w, 0, sizeof(w));
	w.st = st;
	assert_int_equal(udr_store_foreach(st, walk_cb, &w), 0);
	assert_true(w.multi > 0);
	at = th_object_at(dir, &w.multi_base, &off, &len);
	assert_non_null(at);
	assert_non_null(strstr(at, ".pack")); /* packed, not loose */
	free(at);
	assert_int_equal(udr__delta_peek(&dh, st, &w.multi_base), 0);
	assert_int_equal(dh.version, 2);
	assert_true(dh.nbases >= 2);
	assert_int_equal(udr_store_get(&bb, &bl, st, &dh.bases[1]), 0);
	/* missing */
	udr_store_close(st);
	th_remove_object(dir, &dh.bases[1]);
	st = open_store(f, "dmgp");
	assert_fails(st, &w.multi_base, th_hex(&dh.bases[1]));
	/* put again (a new pack), then damaged in that pack */
	assert_int_equal(udr_store_put(&again, st, bb, bl), 0);
	assert_memory_equal(again.bytes, dh.bases[1].bytes, UDR_HASH_SIZE);
	assert_int_equal(udr_store_get(&o, &l, st, &w.multi_base), 0);
	udr_free(o);
	th_flip_object(dir, &dh.bases[1], 0);
	udr_store_close(st);
	st = open_store(f, "dmgp");
	assert_fails(st, &w.multi_base, th_hex(&dh.bases[1]));
	/* a good copy in a newer pack: the damaged one gives way to it */
	assert_int_equal(udr_store_put(&again, st, bb, bl), 0);
	assert_int_equal(udr_store_get(&o, &l, st, &w.multi_base), 0);
	udr_free(o);
	assert_versions_read(st, hs);
	udr_free(bb);
	free(dir);
	udr_store_close(st);
}

/*
 * A put against a base hands the bases its deltas used to the next read of
 * the handle (the commit's verification): that read decodes fewer pieces
 * than the same read without them; and a piece of the new content damaged
 * on disk after the put is still found by that read.
 */
static void delta_put_hands_bases_to_verify(void **state)
{
	fx *f = *state;
	udr_hash hs[VERSIONS], last;
	udr_store *st = open_store(f, "hand");
	char *dir = th_join(f->dir, "hand");
	char *in = th_join(f->dir, "in2");
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	udr__manifest mo, mn;
	uint64_t before, warm, cold;
	size_t len;
	char *d;
	put_versions(f, st, hs);
	/* the last put's bases are held: its verification starts from them */
	before = udr__piece_decodes;
	assert_int_equal(udr_store_verify(st, &hs[VERSIONS - 1]), 0);
	warm = udr__piece_decodes - before;
	before = udr__piece_decodes;
	assert_int_equal(udr_store_verify(st, &hs[VERSIONS - 1]), 0);
	cold = udr__piece_decodes - before;
	print_message("verify after the put: %llu decodes; again: %llu\n", (unsigned long long)warm,
	              (unsigned long long)cold);
	assert_true(warm * 2 < cold);
	/* one more version; a piece only it has is damaged before its verification */
	d = grouped(VERSIONS + 1, &len);
	th_write_file(in, d, len);
	po.base = &hs[VERSIONS - 1];
	assert_int_equal(udr_store_put_file_ext(&last, st, in, &po), 0);
	assert_int_equal(udr__manifest_load(&mo, st, &hs[VERSIONS - 1]), 0);
	assert_int_equal(udr__manifest_load(&mn, st, &last), 0);
	{
		const udr_hash *victim = NULL;
		for (uint64_t i = mn.npieces; i-- > 0 && !victim;) {
			bool shared = false;
			for (uint64_t j = 0; j < mo.npieces && !shared; j++)
				shared = udr_hash_equal(&mn.pieces[i].hash, &mo.pieces[j].hash);
			if (!shared)
				victim = &mn.pieces[i].hash;
		}
		assert_non_null(victim);
		th_flip_object(dir, victim, 0);
		assert_int_equal(udr_store_verify(st, &last), UDR_ECORRUPT);
	}
	udr__manifest_free(&mo);
	udr__manifest_free(&mn);
	free(d);
	free(in);
	free(dir);
	udr_store_close(st);
}

/* A put against a base whose chain is damaged below its window (a piece of
 * the version before the base) stores nothing that decodes to wrong bytes:
 * the writer checks each base it deltas against.  Formats 3 and 2. */
static void put_over_damaged_chain(fx *f, int format)
{
	udr_hash hs[VERSIONS];
	udr_store *st = open_store_fmt(f, format == 2 ? "chain2" : "chain3", format);
	udr__manifest m;
	char *in = th_join(f->dir, "in");
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	void *out = NULL;
	size_t len, ol = 0;
	char *d;
	int damaged = 0;
	put_versions(f, st, hs);
	/* damage every delta piece of version VERSIONS - 2 */
	assert_int_equal(udr__manifest_load(&m, st, &hs[VERSIONS - 3]), 0);
	for (uint64_t i = 0; i < m.npieces; i++) {
		udr__delta_hdr dh;
		char *p;
		off_t off;
		size_t pl;
		if (udr__delta_peek(&dh, st, &m.pieces[i].hash) != 0 || dh.depth == 0)
			continue;
		p = th_object_at(udr_store_path(st), &m.pieces[i].hash, &off, &pl);
		assert_non_null(p);
		free(p);
		th_flip_object(udr_store_path(st), &m.pieces[i].hash, pl - 6);
		damaged++;
	}
	udr__manifest_free(&m);
	assert_true(damaged > 0);
	/* version VERSIONS + 1 against version VERSIONS (whose chains pass
	 * through the damaged pieces): stored, and reads back */
	d = grouped(VERSIONS + 1, &len);
	th_write_file(in, d, len);
	po.base = &hs[VERSIONS - 1];
	{
		udr_hash h;
		assert_int_equal(udr_store_put_file_ext(&h, st, in, &po), 0);
		assert_int_equal(udr_store_get(&out, &ol, st, &h), 0);
	}
	assert_int_equal(ol, len);
	assert_memory_equal(out, d, len);
	udr_free(out);
	free(d);
	free(in);
	udr_store_close(st);
}

static void delta_put_over_damaged_chain(void **state)
{
	put_over_damaged_chain(*state, 3);
	put_over_damaged_chain(*state, 2);
}

/* A delta object of version 1 made by hand still reads. */
static void delta_v1_still_reads(void **state)
{
	fx *f = *state;
	udr_store *st = open_store(f, "v1r");
	char base[5000], data[5000];
	udr_hash hb, hd;
	unsigned char *frame = NULL, *obj = NULL;
	size_t fl, objlen;
	char *p;
	void *out = NULL;
	size_t ol = 0;
	for (size_t i = 0; i < sizeof(base); i++)
		base[i] = (char)('a' + (i * 7 + i / 13) % 26);
	memcpy(data, base, sizeof(data));
	data[100] = '!';
	assert_int_equal(udr_store_put(&hb, st, base, sizeof(base)), 0);
	udr_hash_buf(&hd, data, sizeof(data));
	assert_int_equal(udr__zstd_compress(&frame, &fl, data, sizeof(data), 3, base, sizeof(base)), 0);
	{
		udr__delta_hdr h;
		memset(&h, 0, sizeof(h));
		h.version = 1;
		h.depth = 1;
		h.nbases = 1;
		h.raw_size = sizeof(data);
		h.bases[0] = hb;
		assert_int_equal(udr__delta_encode(&obj, &objlen, &h, frame, fl), 0);
	}
	assert_int_equal(objlen, UDR__DELTA_HDR + fl);
	assert_int_equal(obj[4], 1);
	{
		char hex[UDR_HASH_HEXSIZE + 1];
		p = udr__obj_path(st, &hd, UDR__K_DELTA, hex);
		assert_int_equal(udr__store_fanout(st, p, true), 0);
	}
	th_write_file(p, obj, objlen);
	assert_int_equal(udr_store_get(&out, &ol, st, &hd), 0);
	assert_int_equal(ol, sizeof(data));
	assert_memory_equal(out, data, sizeof(data));
	udr_free(out);
	free(p);
	free(frame);
	free(obj);
	udr_store_close(st);
}

/*
 * fsck checks every content through one cache, in delta order: each piece
 * is decoded a few times in all, whatever the depth of its chain, also past
 * the depth limit's steps down (which decode a chain from its start) and
 * with a cache that holds little more than two versions.  Before, each
 * content was decoded with a cache of its own, every chain from its start
 * (40-58 minutes for bench_gc.sh's 1,000 versions).  Damage is still found
 * and named: a damaged delta piece in the middle of the history.
 */
#define FVERSIONS 60
#define FDEPTH 10

struct named {
	const char *hex;
	int problems, naming;
};

static int name_cb(const udr_problem *p, void *payload)
{
	struct named *n = payload;
	n->problems++;
	if (strstr(p->object, n->hex) || strstr(p->message, n->hex))
		n->naming++;
	return 0;
}

static void delta_fsck_decodes_in_delta_order(void **state)
{
	fx *f = *state;
	struct ltable t = {.n = LROWS, .x = 777};
	udr_store *st = open_store_depth(f, "fsck", 0, FDEPTH);
	char *dir = th_join(f->dir, "fsck");
	char *in = th_join(f->dir, "in");
	udr_hash hs[FVERSIONS];
	udr_check_stats stats;
	uint64_t pieces = 0, before, used, depths = 0;
	size_t saved = udr__fsck_cache_min;
	struct walk w;
	t.val = calloc(LROWS + LROWS / 100 * FVERSIONS, sizeof(uint32_t));
	assert_non_null(t.val);
	for (int i = 0; i < LROWS; i++)
		t.val[i] = rnd(&t.x) % 100000000;
	for (int v = 1; v <= FVERSIONS; v++) {
		udr_put_options po = UDR_PUT_OPTIONS_INIT;
		udr__manifest m;
		size_t len;
		char *d = ltable_next(&t, v, &len);
		th_write_file(in, d, len);
		if (v > 1)
			po.base = &hs[v - 2];
		assert_int_equal(udr_store_put_file_ext(&hs[v - 1], st, in, &po), 0);
		assert_int_equal(udr__manifest_load(&m, st, &hs[v - 1]), 0);
		pieces += m.npieces;
		for (uint64_t i = 0; i < m.npieces; i++) {
			udr__delta_hdr dh;
			assert_int_equal(udr__delta_peek(&dh, st, &m.pieces[i].hash), 0);
			depths += (uint64_t)dh.depth;
		}
		udr__manifest_free(&m);
		free(d);
	}
	/* the history steps down at the depth limit: deep chains, not resets */
	memset(&w, 0, sizeof(w));
	w.st = st;
	assert_int_equal(udr_store_foreach(st, walk_cb, &w), 0);
	assert_int_equal(w.maxdepth, FDEPTH);
	assert_true(depths > pieces * 4);
	udr_store_close(st);
	st = open_store_depth(f, "fsck", 0, FDEPTH);
	st->threads = 1;
	udr__fsck_cache_min = 0; /* about 2.5 versions */
	before = udr__piece_decodes;
	assert_int_equal(udr_store_fsck(&stats, st, NULL, NULL), 0);
	used = udr__piece_decodes - before;
	print_message("fsck: %llu decodes for %llu pieces of %d versions (chains %.1f deep on average)\n",
	              (unsigned long long)used, (unsigned long long)pieces, FVERSIONS, (double)depths / (double)pieces);
	assert_int_equal(stats.problems, 0);
	assert_true(used <= 3 * pieces);
	/* a delta piece of version 30, damaged: found, named, the rest read */
	{
		udr__manifest m;
		udr_hash bad;
		bool found = false;
		assert_int_equal(udr__manifest_load(&m, st, &hs[29]), 0);
		for (uint64_t i = 0; i < m.npieces && !found; i++) {
			udr__delta_hdr dh;
			assert_int_equal(udr__delta_peek(&dh, st, &m.pieces[i].hash), 0);
			if (dh.nbases > 0) {
				bad = m.pieces[i].hash;
				found = true;
			}
		}
		udr__manifest_free(&m);
		assert_true(found);
		udr_store_close(st);
		th_flip_object(dir, &bad, 40);
		st = open_store_depth(f, "fsck", 0, FDEPTH);
		{
			struct named n = {th_hex(&bad), 0, 0};
			assert_int_equal(udr_store_fsck(&stats, st, name_cb, &n), UDR_ECORRUPT);
			/* the pack, the piece, and what needs it (contents, deltas) */
			assert_true(n.problems >= 2);
			assert_true(n.naming >= 1);
			assert_int_equal(stats.problems, (uint64_t)n.problems);
		}
	}
	udr__fsck_cache_min = saved;
	free(t.val);
	free(in);
	free(dir);
	udr_store_close(st);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(delta_v2_beats_v1_on_grouped_data),
		T(delta_read_decodes_each_piece_once),
		T(delta_long_history_stays_compact),
		T(delta_v2_damage),
		T(delta_v2_damage_packed),
		T(delta_put_over_damaged_chain),
		T(delta_put_hands_bases_to_verify),
		T(delta_v1_still_reads),
		T(delta_fsck_decodes_in_delta_order),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
