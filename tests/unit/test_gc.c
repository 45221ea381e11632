/*
 * test_gc.c - GC's mark and plan (docs/GC.md 3, 5.1) on synthetic stores:
 * pieces shared by versions, deltas whose bases only live deltas reach,
 * expired versions, young and old uncommitted puts, a live object that is
 * missing (UDR_ECORRUPT, nothing removed), the plan's choices, and the
 * mark's memory per piece.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "gc/collect.h"
#include "store/gcstate.h"
#include "store/pack.h"
#include "store/store_internal.h"
#include "util/util.h"

typedef struct fx {
	char *dir;
	udr_db *db;
	udr_store *s;
	udr_catalog *c;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	assert_int_equal(udr_db_open(&f->db, f->dir, UDR_OPEN_CREATE), 0);
	f->s = udr_db_store(f->db);
	f->c = udr_db_catalog(f->db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_db_close(f->db);
	th_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static unsigned char *rnd(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	return p;
}

static void put_ext(udr_hash *out, fx *f, const void *data, size_t len, const udr_hash *base)
{
	char *path = th_join(f->dir, "in");
	udr_put_options o = UDR_PUT_OPTIONS_INIT;
	o.base = base;
	th_write_file(path, data, len);
	assert_int_equal(udr_store_put_file_ext(out, f->s, path, &o), 0);
	unlink(path);
	free(path);
}

static void commit(fx *f, const char *table, const udr_hash *h)
{
	udr_version *v;
	assert_int_equal(udr_version_new(&v, table, 0), 0);
	assert_int_equal(udr_version_add_chunk(v, h), 0);
	assert_int_equal(udr_catalog_commit_next(f->c, v), 0);
	udr_version_free(v);
}

static uint32_t flags_of(udr__gc_mark *m, const udr_hash *h)
{
	size_t i = udr__gc_find(m, h);
	assert_true(i != SIZE_MAX);
	return m->v[i].flags;
}

static bool live(udr__gc_mark *m, const udr_hash *h)
{
	return (flags_of(m, h) & (UDR__GC_LIVE | UDR__GC_BASE)) != 0;
}

/* the pieces (or the one object) of content h */
static size_t pieces(udr_hash **out, fx *f, const udr_hash *h)
{
	udr__manifest mf;
	if (udr__manifest_load(&mf, f->s, h) != 0) {
		udr_error_clear();
		*out = malloc(sizeof(udr_hash));
		(*out)[0] = *h;
		return 1;
	}
	*out = malloc(mf.npieces * sizeof(udr_hash));
	for (size_t i = 0; i < mf.npieces; i++)
		(*out)[i] = mf.pieces[i].hash;
	size_t n = mf.npieces;
	udr__manifest_free(&mf);
	return n;
}

static int64_t far_future(void)
{
	return udr__now_ms() + 1000LL * 86400 * 365;
}

static void test_gc__uncommitted_young_then_dead_committed_live(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash a, b;
	unsigned char *da = rnd(2000000, 1), *db = rnd(300000, 2);
	put_ext(&a, f, da, 2000000, NULL);
	put_ext(&b, f, db, 300000, NULL);
	commit(f, "t", &a);
	/* now: b is young (root 4) */
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, udr__now_ms(), 3600000, NULL, NULL), 0);
	assert_true(live(&m, &a) && live(&m, &b));
	assert_true(flags_of(&m, &b) & UDR__GC_ROOTED);
	assert_int_equal(m.young, 1);
	udr__gc_mark_free(&m);
	/* a year later b is dead; a, committed, and all its pieces live */
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 3600000, NULL, NULL), 0);
	assert_false(live(&m, &b));
	assert_int_equal(m.young, 0);
	udr_hash *p;
	size_t n = pieces(&p, f, &a);
	assert_true(n > 1);
	for (size_t i = 0; i < n; i++) {
		assert_true(flags_of(&m, &p[i]) & UDR__GC_LIVE);
		/* exactly one kept copy */
		size_t i0 = udr__gc_find(&m, &p[i]), k = 0;
		for (size_t j = i0; j < m.n && (j == i0 || !(m.v[j].flags & UDR__GC_FIRST)); j++)
			k += (m.v[j].flags & UDR__GC_KEPT) != 0;
		assert_int_equal(k, 1);
	}
	free(p);
	udr__gc_mark_free(&m);
	free(da);
	free(db);
}

static int expire_v1(int *out, const char *table, uint64_t version, void *payload)
{
	(void)payload;
	*out = strcmp(table, "t") == 0 && version == 1;
	return 0;
}

/* An expired version's objects in a young pack are committed, not young
 * roots: the COMMITTED walk runs while a copy is young, and is skipped
 * (no flag set, same outcome) when none is, as with --grace 0s */
static void test_gc__committed_walk_only_with_young_copies(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash a, b;
	unsigned char *da = rnd(300000, 11), *db = rnd(300000, 12);
	put_ext(&a, f, da, 300000, NULL);
	commit(f, "t", &a);
	put_ext(&b, f, db, 300000, NULL);
	commit(f, "t", &b);
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, udr__now_ms(), 3600000, expire_v1, NULL), 0);
	assert_true(m.comm_walk);
	assert_true(flags_of(&m, &a) & UDR__GC_COMM);
	assert_false(live(&m, &a)); /* young, but named by t@1: not a young root */
	assert_true(live(&m, &b));
	assert_int_equal(m.young, 0);
	udr__gc_mark_free(&m);
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, udr__now_ms(), 0, expire_v1, NULL), 0);
	assert_false(m.comm_walk);
	assert_false(flags_of(&m, &a) & UDR__GC_COMM);
	assert_false(live(&m, &a));
	assert_true(live(&m, &b));
	udr__gc_mark_free(&m);
	free(da);
	free(db);
}

/* v1 = X, v2 = X changed, stored as deltas against X: X's pieces that v2's
 * deltas name stay (BASE only) when v1 expires; the others of X go. */
static void test_gc__delta_bases_only_through_live_deltas(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash x, y;
	unsigned char *dx = rnd(3000000, 3), *dy = malloc(3000000);
	memcpy(dy, dx, 3000000);
	for (size_t i = 0; i < 3000000; i += 100000)
		dy[i] ^= 0x5a; /* every piece changes a little: deltas against X's */
	put_ext(&x, f, dx, 3000000, NULL);
	commit(f, "t", &x);
	put_ext(&y, f, dy, 3000000, &x);
	commit(f, "t", &y);
	udr_hash *px, *py;
	size_t nx = pieces(&px, f, &x), ny = pieces(&py, f, &y);
	size_t deltas = 0;
	for (size_t i = 0; i < ny; i++) {
		udr__delta_hdr dh;
		assert_int_equal(udr__delta_peek(&dh, f->s, &py[i]), 0);
		deltas += dh.nbases > 0;
	}
	assert_true(deltas > 0);
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, expire_v1, NULL), 0);
	assert_false(live(&m, &x)); /* X's manifest: only v1 named it */
	assert_true(flags_of(&m, &y) & UDR__GC_LIVE);
	size_t base_only = 0;
	for (size_t i = 0; i < nx; i++) {
		uint32_t fl = flags_of(&m, &px[i]);
		bool named_by_y = false;
		for (size_t j = 0; j < ny; j++)
			named_by_y |= udr_hash_equal(&px[i], &py[j]);
		if (!named_by_y && (fl & UDR__GC_BASE) && !(fl & UDR__GC_LIVE))
			base_only++;
		/* every base of every live delta is alive */
	}
	for (size_t j = 0; j < ny; j++) {
		udr__delta_hdr dh;
		assert_int_equal(udr__delta_peek(&dh, f->s, &py[j]), 0);
		for (int k = 0; k < dh.nbases; k++)
			assert_true(live(&m, &dh.bases[k]));
	}
	assert_true(base_only > 0);
	assert_int_equal(m.base_only, base_only);
	udr__gc_mark_free(&m);
	/* nothing expired: everything of both versions lives */
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), 0);
	assert_true(live(&m, &x));
	for (size_t i = 0; i < nx; i++)
		assert_true(flags_of(&m, &px[i]) & UDR__GC_LIVE);
	udr__gc_mark_free(&m);
	free(px);
	free(py);
	free(dx);
	free(dy);
}

/* The locked mark seeded with the unlocked mark's resolved delta headers
 * reaches exactly what a mark reading every header reaches: the same copy
 * table, flags and counts, also with a version committed between the two
 * marks (a pack the seed never listed) and after all data packs were
 * merged into one (no pack in common: nothing seeded, all read). */
static void test_gc__seeded_mark_equals_a_full_mark(void **state)
{
	fx *f = *state;
	udr__gc_mark pm, ms, mp;
	udr_hash h[8];
	unsigned char *d = rnd(2000000, 11);
	for (int v = 0; v < 8; v++) {
		for (size_t i = (size_t)v * 977; i < 2000000; i += 60000)
			d[i] ^= (unsigned char)(0x11 * (v + 1)); /* every piece changes: deltas */
		put_ext(&h[v], f, d, 2000000, v ? &h[v - 1] : NULL);
		if (v < 6)
			commit(f, "t", &h[v]);
	}
	for (int round = 0; round < 2; round++) {
		assert_int_equal(udr__gc_premark_run(&pm, f->s, f->c, far_future(), 0, expire_v1, NULL), 0);
		assert_non_null(pm.dref);
		udr__gc_mark_seed_trim(&pm);
		/* a commit between the marks: its pack is new to the seed */
		commit(f, "t", &h[6 + round]);
		if (round == 1) /* every data pack merged: none in common */
			assert_true(udr__pack_repack_all(f->s, 0) >= 0);
		assert_int_equal(udr__gc_mark_run_seeded(&ms, &pm, f->s, f->c, far_future(), 0, expire_v1, NULL), 0);
		udr__gc_mark_free(&pm);
		assert_int_equal(udr__gc_mark_run(&mp, f->s, f->c, far_future(), 0, expire_v1, NULL), 0);
		print_message("round %d: %llu delta copies seeded, %zu copies\n", round, (unsigned long long)ms.seeded,
		              ms.n);
		if (round == 0)
			assert_true(ms.seeded > 0);
		assert_int_equal(mp.seeded, 0);
		assert_int_equal(ms.n, mp.n);
		for (size_t i = 0; i < ms.n; i++) {
			assert_int_equal(ms.v[i].id, mp.v[i].id);
			assert_int_equal(ms.v[i].flags, mp.v[i].flags);
		}
		assert_int_equal(ms.live, mp.live);
		assert_int_equal(ms.base_only, mp.base_only);
		assert_int_equal(ms.objects, mp.objects);
		for (size_t p = 0; p < ms.npacks; p++) {
			assert_int_equal(ms.packs[p].live_bytes, mp.packs[p].live_bytes);
			assert_int_equal(ms.packs[p].dead_bytes, mp.packs[p].dead_bytes);
		}
		udr__gc_mark_free(&ms);
		udr__gc_mark_free(&mp);
	}
	free(d);
}

/* A history of small pieces (1-16 KiB) whose deltas name several bases:
 * ROWS rows, each version rewrites 1% of them and appends 1% (the
 * benchmarks' table generator in small); versions 1..UV committed to t. */
#define UROWS 4000
#define UVERSIONS 60
static udr_db *history_db(const char *dir)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *st = NULL;
	udr_db *db = NULL;
	uint32_t *val = calloc(UROWS + UROWS / 100 * UVERSIONS, sizeof(uint32_t)), x = 4242;
	int n = UROWS;
	udr_hash prev;
	char *chunks = th_join(dir, "chunks"), *in = th_join(dir, "in");
	cfg.chunk_min = 1024;
	cfg.chunk_avg = 4096;
	cfg.chunk_max = 16384;
	cfg.delta_max_depth = 40;
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(udr_store_open_ext(&st, chunks, UDR_OPEN_CREATE, &cfg), 0);
	udr_store_close(st);
	assert_int_equal(udr_db_open(&db, dir, UDR_OPEN_CREATE), 0);
	for (int i = 0; i < UROWS; i++)
		val[i] = (x = x * 1103515245u + 12345u) % 100000000;
	for (int v = 1; v <= UVERSIONS; v++) {
		size_t cap = (size_t)n * 20 + 64, len = 0;
		char *b = malloc(cap);
		udr_put_options po = UDR_PUT_OPTIONS_INIT;
		udr_hash h;
		udr_version *ver;
		if (v > 1) {
			for (int i = 0; i < UROWS / 100; i++) {
				x = x * 1103515245u + 12345u;
				val[(x >> 8) % UROWS] = x % 100000000;
			}
			for (int i = 0; i < UROWS / 100; i++)
				val[n++] = (x = x * 1103515245u + 12345u) % 100000000;
			po.base = &prev;
		}
		for (int i = 0; i < n; i++)
			len += (size_t)snprintf(b + len, cap - len, "%06d,%08u\n", i, val[i]);
		th_write_file(in, b, len);
		assert_int_equal(udr_store_put_file_ext(&h, udr_db_store(db), in, &po), 0);
		assert_int_equal(udr_version_new(&ver, "t", 0), 0);
		assert_int_equal(udr_version_add_chunk(ver, &h), 0);
		assert_int_equal(udr_catalog_commit_next(udr_db_catalog(db), ver), 0);
		udr_version_free(ver);
		prev = h;
		free(b);
	}
	unlink(in);
	free(in);
	free(chunks);
	free(val);
	return db;
}

static int expire_half(int *out, const char *table, uint64_t version, void *payload)
{
	(void)payload;
	*out = table && strcmp(table, "t") == 0 && version <= UVERSIONS / 2;
	return 0;
}

/* The mark pushes every kept version's contents before it drains (one
 * generation for all versions, read in pack order); drained after each
 * version, as before, it reaches exactly the same copies, with more reads
 * (each version's pieces lie in the regions of the older versions it
 * shares them with).  History of 60 versions, the first half expired. */
static void test_gc__mark_drains_all_versions_at_once(void **state)
{
	fx *f = *state;
	char *dir = th_fmt("%s/h", f->dir);
	udr_db *db = history_db(dir);
	udr__gc_mark m[2];
	uint64_t reads[2];
	for (int k = 0; k < 2; k++) {
		udr__gc_mark_per_root = k == 1;
		assert_int_equal(udr__gc_mark_run(&m[k], udr_db_store(db), udr_db_catalog(db), far_future(), 0, expire_half,
		                                  NULL),
		                 0);
		udr__gc_mark_per_root = false;
		assert_non_null(m[k].win);
		reads[k] = m[k].win->fills + m[k].win->alone;
	}
	print_message("mark: %llu reads draining once, %llu draining per version (%zu copies, %llu live)\n",
	              (unsigned long long)reads[0], (unsigned long long)reads[1], m[0].n, (unsigned long long)m[0].live);
	assert_true(m[0].versions == UVERSIONS / 2 && m[0].expired_versions == UVERSIONS / 2);
	assert_true(m[0].base_only > 0); /* the expired half's chains reach below the kept versions */
	assert_int_equal(m[0].n, m[1].n);
	for (size_t i = 0; i < m[0].n; i++) {
		/* BASE on a LIVE object only says which way the walk came first */
		uint32_t a = m[0].v[i].flags, b = m[1].v[i].flags;
		assert_int_equal(m[0].v[i].id, m[1].v[i].id);
		assert_int_equal(a & UDR__GC_LIVE ? a & ~UDR__GC_BASE : a, b & UDR__GC_LIVE ? b & ~UDR__GC_BASE : b);
	}
	assert_int_equal(m[0].live, m[1].live);
	assert_int_equal(m[0].base_only, m[1].base_only);
	for (size_t p = 0; p < m[0].npacks; p++) {
		assert_int_equal(m[0].packs[p].live_bytes, m[1].packs[p].live_bytes);
		assert_int_equal(m[0].packs[p].dead_bytes, m[1].packs[p].dead_bytes);
	}
	assert_true(reads[0] < reads[1]);
	udr__gc_mark_free(&m[0]);
	udr__gc_mark_free(&m[1]);
	udr_db_close(db);
	free(dir);
}

/* Unchaining decodes its candidates in the order they were written (their
 * contents' order), so each one's chains share bases with the next one's
 * through the cache; in the mark's (hash) order fewer are shared (on
 * bench_gc.sh's SCALE=0.3 store with a 64 MiB cache: 12,600 decodes
 * against 17,200 for 118 pieces; what removed most of them there is the
 * larger cache, unchain_cache_cap).  Same store, same small cache, one
 * thread: fewer decodes as written, and the same pieces written. */
static void test_gc__unchaining_decodes_in_written_order(void **state)
{
	fx *f = *state;
	uint64_t decodes[2];
	char *report[2];
	for (int k = 0; k < 2; k++) {
		char *dir = th_fmt("%s/h%d", f->dir, k);
		udr_db *db = history_db(dir);
		udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
		uint64_t before;
		o.grace_ms = 0;
		o.expired = expire_half;
		udr_db_store(db)->threads = 1;
		udr__gc_unchain_cache_test = (size_t)64 << 10; /* 16 average pieces */
		udr__gc_unchain_hash_order = k == 1;
		/* whatever it costs (honoured by fault-injection builds): the
		 * writes are compared too */
		setenv("UDR_GC_UNCHAIN", "always", 1);
		before = udr__piece_decodes;
		assert_int_equal(udr__gc_collect(&report[k], udr_db_store(db), udr_db_catalog(db), &o), 0);
		unsetenv("UDR_GC_UNCHAIN");
		decodes[k] = udr__piece_decodes - before;
		udr__gc_unchain_cache_test = 0;
		udr__gc_unchain_hash_order = false;
		assert_int_equal(udr_store_fsck(NULL, udr_db_store(db), NULL, NULL), 0);
		udr_db_close(db);
		free(dir);
	}
	print_message("unchaining: %llu decodes as written, %llu in hash order\n", (unsigned long long)decodes[0],
	              (unsigned long long)decodes[1]);
	/* the same pieces unchained, the same bytes written */
	{
		const char *a = strstr(report[0], "\"written\""), *b = strstr(report[1], "\"written\"");
		assert_non_null(a);
		assert_non_null(b);
		if (getenv("UDR_FAULT_INJECTION") && strcmp(getenv("UDR_FAULT_INJECTION"), "1") == 0) {
			/* something was unchained: "written":{...,"unchained":N} with N > 0 */
			const char *u = strstr(a, "\"unchained\":");
			assert_true(u && u < strchr(a, '}'));
			assert_true(strtoull(u + strlen("\"unchained\":"), NULL, 10) > 0);
		}
		assert_int_equal(strncmp(a, b, (size_t)(strchr(a, '}') - a)), 0);
	}
	/* (measured: 1,644 against 2,070) */
	assert_true(decodes[0] * 10 < decodes[1] * 9);
	free(report[0]);
	free(report[1]);
}

/* the same content put twice lands in two packs: one copy is kept */
static void test_gc__duplicates_across_packs_keep_one(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash a, a2;
	unsigned char *d = rnd(200000, 9);
	char *report = NULL;
	put_ext(&a, f, d, 200000, NULL);
	commit(f, "t", &a);
	/* a second copy: the pack of a copied under another name is not
	 * possible (names are hashes), so write the same entry through a pack
	 * writer of our own */
	{
		udr__packw *w;
		unsigned char *buf = NULL;
		size_t len = 0;
		enum udr__kind kind;
		assert_int_equal(udr__obj_read(&buf, &len, &kind, f->s, &a, (size_t)1 << 30, 0), 0);
		assert_int_equal(udr__packw_new(&w, f->s, UDR__PACK_CLASS_DATA), 0);
		assert_int_equal(udr__packw_append(w, &a, kind, 200000, buf, (uint32_t)len), 0);
		/* and something else, so that the new pack differs from the first */
		udr_hash_buf(&a2, "abc", 3);
		assert_int_equal(udr__packw_append(w, &a2, UDR__K_RAW, 3, "abc", 3), 0);
		assert_int_equal(udr__packw_flush(w), 0);
		udr__packw_free(w);
		free(buf);
	}
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), 0);
	size_t i0 = udr__gc_find(&m, &a), copies = 0, kept = 0;
	for (size_t j = i0; j < m.n && (j == i0 || !(m.v[j].flags & UDR__GC_FIRST)); j++) {
		copies++;
		kept += (m.v[j].flags & UDR__GC_KEPT) != 0;
	}
	assert_true(copies >= 2);
	assert_int_equal(kept, 1);
	udr__gc_mark_free(&m);
	/* the sweep leaves one copy, the content reads back */
	udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
	o.grace_ms = 0;
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	free(report);
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), 0);
	i0 = udr__gc_find(&m, &a);
	assert_true(i0 + 1 == m.n || (m.v[i0 + 1].flags & UDR__GC_FIRST));
	udr__gc_mark_free(&m);
	assert_int_equal(udr_store_verify(f->s, &a), 0);
	free(d);
}

static void test_gc__missing_live_object_is_corrupt_nothing_removed(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash a, junk;
	unsigned char *d = rnd(2000000, 4), *j = rnd(100000, 5);
	char *report = (char *)"untouched";
	put_ext(&a, f, d, 2000000, NULL);
	commit(f, "t", &a);
	put_ext(&junk, f, j, 100000, NULL);
	udr_hash *p;
	size_t n = pieces(&p, f, &a);
	assert_true(n > 2);
	/* a piece of the committed content vanishes: rewrite its pack without it */
	{
		udr__loc l;
		assert_int_equal(udr__obj_find(&l, f->s, &p[1], 0, true), 0);
		assert_non_null(l.pack);
		/* flip the entry's hash in the index: the piece is no longer listed */
		char *ip = th_fmt("%s/chunks/packs/%s.idx", f->dir, l.pack->hex);
		char *pp = th_fmt("%s/chunks/packs/%s.pack", f->dir, l.pack->hex);
		udr__loc_free(&l);
		/* simplest: remove pack and index (every piece in it goes) */
		unlink(ip);
		unlink(pp);
		free(ip);
		free(pp);
	}
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), UDR_ECORRUPT);
	assert_non_null(strstr(udr_error_last()->message, "t@1"));
	/* the unlocked mark before unchaining passes over what it does not
	 * find (a commit made while it ran); it decides nothing that removes */
	assert_int_equal(udr__gc_premark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), 0);
	assert_true(m.passed_over >= 1);
	assert_true(m.live >= 1);
	udr__gc_mark_free(&m);
	int before = th_count_files_rec(f->dir);
	udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
	o.grace_ms = 0;
	o.now_ms = far_future();
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), UDR_ECORRUPT);
	assert_null(report);
	assert_int_equal(udr_store_exists(f->s, &junk), 1);
	/* the run may leave its lock files only */
	assert_true(th_count_files_rec(f->dir) <= before + 4);
	free(p);
	free(d);
	free(j);
}

/* the plan: packs half dead (the geometric repack merged a's and b's
 * packs) are rewritten at threshold 10 and kept at threshold 100 when
 * max-unused allows it; a dry run removes nothing */
static void test_gc__plan_threshold(void **state)
{
	fx *f = *state;
	udr_hash a, b;
	unsigned char *d = rnd(1000000, 6), *e = rnd(1000000, 7);
	char *report = NULL;
	put_ext(&a, f, d, 1000000, NULL);
	commit(f, "t", &a);
	put_ext(&b, f, e, 1000000, NULL); /* never committed */
	udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
	o.grace_ms = 0;
	o.now_ms = far_future();
	o.dry_run = true;
	o.max_unused_pct = 100;
	o.threshold_pct = 100;
	f->s->pack_target = 64; /* no pack counts as small (merged whatever its dead fraction) */
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_non_null(strstr(report, "\"dry_run\":true"));
	assert_non_null(strstr(report, "\"packs_rewritten\":0"));
	free(report);
	o.max_unused_pct = 5; /* then unused space forces the rewrite */
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_null(strstr(report, "\"packs_rewritten\":0"));
	free(report);
	o.threshold_pct = 10;
	o.max_unused_pct = 100;
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_null(strstr(report, "\"packs_rewritten\":0"));
	free(report);
	assert_int_equal(udr_store_exists(f->s, &b), 1); /* dry runs remove nothing */
	o.dry_run = false;
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_null(strstr(report, "\"packs_rewritten\":0"));
	free(report);
	assert_int_equal(udr_store_exists(f->s, &b), 0);
	assert_int_equal(udr_store_verify(f->s, &a), 0);
	/* a second run: nothing left to do */
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_non_null(strstr(report, "\"copies\":0"));
	free(report);
	free(d);
	free(e);
}

/* memory of the mark: at most 64 bytes a piece (GC.md 3.2) */
static void test_gc__mark_memory_per_piece(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	unsigned char *buf;
	udr_hash h;
	/* one content of many pieces */
	buf = rnd((size_t)64 << 20, 11);
	put_ext(&h, f, buf, (size_t)64 << 20, NULL);
	commit(f, "t", &h);
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 0, NULL, NULL), 0);
	print_message("mark: %llu objects, peak %llu bytes, %.1f bytes per object\n", (unsigned long long)m.objects,
	              (unsigned long long)m.peak_bytes, (double)m.peak_bytes / (double)m.objects);
	assert_true(m.objects > 100);
	assert_true(m.peak_bytes <= 64 * m.objects + 8192);
	udr__gc_mark_free(&m);
	free(buf);
}

/* two loose objects whose hashes share the 8-byte prefix (names crafted:
 * mark lists names, it does not read raw pieces): separate objects, each
 * found by its full hash; a fresh record keeps exactly the one it names */
static void test_gc__prefix_collision(void **state)
{
	fx *f = *state;
	udr__gc_mark m;
	udr_hash h[3];
	char hex[UDR_HASH_HEXSIZE + 1];
	for (int k = 0; k < 3; k++) {
		memset(h[k].bytes, 0xaa, 8);
		memset(h[k].bytes + 8, 0x10 * (k + 1), UDR_HASH_SIZE - 8);
		udr_hash_tohex(hex, &h[k]);
		char *dir = th_fmt("%s/chunks/aa/aa", f->dir);
		char *p = th_fmt("%s/%s%s", dir, hex, k == 2 ? ".zst" : "");
		udr__mkdirs(dir);
		th_write_file(p, "x", 1);
		free(p);
		free(dir);
	}
	/* h[0] named by a fresh record younger than the grace; the others old */
	{
		unsigned char rec[40];
		int64_t now = far_future();
		udr__put_le64(rec, (uint64_t)now);
		memcpy(rec + 8, h[0].bytes, UDR_HASH_SIZE);
		char *p = th_fmt("%s/chunks/gc/fresh.0", f->dir);
		char *dir = th_fmt("%s/chunks/gc", f->dir);
		udr__mkdirs(dir);
		th_write_file(p, rec, sizeof(rec));
		free(p);
		free(dir);
	}
	assert_int_equal(udr__gc_mark_run(&m, f->s, f->c, far_future(), 1000, NULL, NULL), 0);
	assert_int_equal(m.objects, 3);
	size_t i0 = udr__gc_find(&m, &h[0]), i1 = udr__gc_find(&m, &h[1]), i2 = udr__gc_find(&m, &h[2]);
	assert_true(i0 != SIZE_MAX && i1 != SIZE_MAX && i2 != SIZE_MAX);
	assert_true(i0 != i1 && i1 != i2 && i0 != i2);
	assert_int_equal(m.v[i0].prefix, m.v[i1].prefix);
	assert_true(m.v[i0].flags & UDR__GC_FIRST);
	assert_true(m.v[i1].flags & UDR__GC_FIRST);
	for (int k = 0; k < 3; k++) {
		udr_hash x;
		udr__gc_copy_hash(&x, &m, m.v[udr__gc_find(&m, &h[k])].id);
		assert_true(udr_hash_equal(&x, &h[k]));
	}
	assert_true(m.v[i0].flags & UDR__GC_LIVE);
	assert_false(m.v[i1].flags & (UDR__GC_LIVE | UDR__GC_BASE));
	assert_false(m.v[i2].flags & (UDR__GC_LIVE | UDR__GC_BASE));
	assert_int_equal(m.fresh, 1);
	/* a hash with the same prefix that is not stored is not found */
	udr_hash y = h[0];
	y.bytes[31] ^= 1;
	assert_true(udr__gc_find(&m, &y) == SIZE_MAX);
	udr__gc_mark_free(&m);
}

static void write_fresh(fx *f, unsigned par, const udr_hash *h, int64_t ms, bool append)
{
	unsigned char rec[40];
	char *dir = th_fmt("%s/chunks/gc", f->dir), *p = th_fmt("%s/fresh.%u", dir, par);
	FILE *fp;
	udr__mkdirs(dir);
	udr__put_le64(rec, (uint64_t)ms);
	memcpy(rec + 8, h->bytes, UDR_HASH_SIZE);
	fp = fopen(p, append ? "ab" : "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(rec, 1, sizeof(rec), fp), sizeof(rec));
	fclose(fp);
	free(p);
	free(dir);
}

/* fresh records (root 5): a record younger than the grace keeps an old,
 * uncommitted content; an older one does not, and the run drops it from
 * the file */
static void test_gc__fresh_records_keep_and_expire(void **state)
{
	fx *f = *state;
	udr_hash a, b;
	unsigned char *da = rnd(200000, 51), *db = rnd(200000, 52);
	char *report = NULL, *p;
	size_t len;
	int64_t now = far_future();
	put_ext(&a, f, da, 200000, NULL);
	put_ext(&b, f, db, 200000, NULL);
	write_fresh(f, 0, &a, now - 10000, false);   /* 10 s old: kept (grace 60 s) */
	write_fresh(f, 1, &b, now - 1000000, false); /* 1000 s old: not a root */
	udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
	o.grace_ms = 60000;
	o.now_ms = now;
	assert_int_equal(udr__gc_collect(&report, f->s, f->c, &o), 0);
	assert_non_null(strstr(report, "\"fresh\":1"));
	free(report);
	assert_int_equal(udr_store_exists(f->s, &a), 1);
	assert_int_equal(udr_store_exists(f->s, &b), 0);
	assert_int_equal(udr_store_verify(f->s, &a), 0);
	/* fresh.1 lost its old record, fresh.0 kept its young one */
	p = th_fmt("%s/chunks/gc/fresh.1", f->dir);
	free(th_read_file(p, &len));
	assert_int_equal(len, 0);
	free(p);
	p = th_fmt("%s/chunks/gc/fresh.0", f->dir);
	free(th_read_file(p, &len));
	assert_int_equal(len, 40);
	free(p);
	free(da);
	free(db);
}

/* fsck --repair's own step (udr_db_repair, GC.md 6): refused while a gc
 * holds chunks/gc/lock (UDR_ELOCKED naming the pid, nothing done); then a
 * pack whose index is gone is indexed from its bytes (the same index), and
 * a pack whose bytes are damaged is never indexed. */
static void test_gc__repair_refused_under_gc_lock_then_indexes(void **state)
{
	fx *f = *state;
	unsigned char *a = rnd(50000, 21);
	udr_hash ha;
	udr__loc la;
	char *json = NULL, *lock = th_fmt("%s/chunks/gc/lock", f->dir);
	put_ext(&ha, f, a, 50000, NULL);
	commit(f, "t", &ha);
	assert_int_equal(udr__obj_find(&la, f->s, &ha, 0, true), 0);
	assert_non_null(la.pack);
	char *ia = th_fmt("%s/chunks/packs/%s.idx", f->dir, la.pack->hex);
	char *pa = th_fmt("%s/chunks/packs/%s.pack", f->dir, la.pack->hex);
	udr__loc_free(&la);
	size_t ilen = 0;
	char *igood = th_read_file(ia, &ilen);
	assert_non_null(igood);
	assert_int_equal(unlink(ia), 0);
	/* a gc holds its lock (another open file description: flock conflicts) */
	assert_int_equal(udr__gc_dir_ensure(udr_store_path(f->s)), 0);
	int fd = open(lock, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(write(fd, "4242\n", 5), 5);
	assert_int_equal(udr_db_repair(&json, f->db), UDR_ELOCKED);
	assert_null(json);
	assert_non_null(strstr(udr_error_last()->message, "fsck --repair does not run while gc does"));
	assert_non_null(strstr(udr_error_last()->message, "pid 4242"));
	assert_false(th_exists(ia));
	close(fd);
	assert_int_equal(udr_db_repair(&json, f->db), 0);
	assert_non_null(strstr(json, "\"gc_phase\":\"idle\""));
	assert_non_null(strstr(json, "\"pack_indexes\":1"));
	udr_free(json);
	size_t nlen = 0;
	char *inew = th_read_file(ia, &nlen);
	assert_non_null(inew);
	assert_int_equal(nlen, ilen);
	assert_memory_equal(inew, igood, ilen);
	/* a second repair has nothing to do */
	assert_int_equal(udr_db_repair(&json, f->db), 0);
	assert_non_null(strstr(json, "\"pack_indexes\":0"));
	udr_free(json);
	/* the index gone again and the pack's bytes damaged: never indexed */
	assert_int_equal(unlink(ia), 0);
	{
		size_t plen = 0;
		char *pk = th_read_file(pa, &plen);
		pk[plen / 2] ^= 0x40;
		th_write_file(pa, pk, plen);
		free(pk);
	}
	assert_int_equal(udr_db_repair(&json, f->db), 0);
	assert_non_null(strstr(json, "\"pack_indexes\":0"));
	udr_free(json);
	assert_false(th_exists(ia));
	free(inew);
	free(igood);
	free(ia);
	free(pa);
	free(lock);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gc__uncommitted_young_then_dead_committed_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__committed_walk_only_with_young_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__delta_bases_only_through_live_deltas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__seeded_mark_equals_a_full_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__mark_drains_all_versions_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__unchaining_decodes_in_written_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__duplicates_across_packs_keep_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__missing_live_object_is_corrupt_nothing_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__plan_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__mark_memory_per_piece, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__prefix_collision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__fresh_records_keep_and_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc__repair_refused_under_gc_lock_then_indexes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
