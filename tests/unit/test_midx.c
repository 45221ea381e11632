/*
 * test_midx.c - the multi-pack index (docs/FORMAT.md, "Multi-pack index"):
 * its layout (build, parse, find, damage to each region), lookups through it
 * and through the packs newer than it, a stale one after a repack, a damaged,
 * truncated or missing one (never wrong data; fsck reports and rebuilds), and
 * readers on an old one while a writer publishes packs and repacks.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/pack.h"
#include "store/store_internal.h"

#define PACKS 10
#define PER 30
#define ESIZE(i) (200 + (size_t)(i) % 97)

typedef struct fx {
	char *dir;
	char *sdir;
	char *midx;
	udr_store *st;
	udr_hash hs[PACKS + 3][PER];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->sdir = th_join(f->dir, "chunks");
	f->midx = th_join3(f->sdir, "packs", UDR__MIDX_FILE);
	udr__midx_threshold = 8;
	if (udr_store_open(&f->st, f->sdir, UDR_OPEN_CREATE) != 0) {
		print_error("udr_store_open: %s\n", udr_error_last()->message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_store_close(f->st);
	th_rmtree(f->dir);
	udr__midx_threshold = 8;
	udr__midx_small = 65536;
	free(f->midx);
	free(f->sdir);
	free(f->dir);
	free(f);
	return 0;
}

static uint32_t seed_of(int p, int i)
{
	return (uint32_t)(1000 * p + i);
}

/* Pack number p of the fixture: PER raw entries written through a pack
 * writer (no repack), entry 0 also in pack p - 1 when dup (a second copy). */
static void write_pack(fx *f, int p, bool dup)
{
	udr__packw *w = NULL;
	unsigned char d[400];
	assert_int_equal(udr__packw_new(&w, f->st, UDR__PACK_CLASS_DATA), 0);
	for (int i = 0; i < PER; i++) {
		th_fill(d, ESIZE(i), seed_of(p, i));
		udr_hash_buf(&f->hs[p][i], d, ESIZE(i));
		assert_int_equal(udr__packw_append(w, &f->hs[p][i], 1, ESIZE(i), d, (uint32_t)ESIZE(i)), 0);
	}
	if (dup) {
		th_fill(d, ESIZE(0), seed_of(p - 1, 0));
		assert_int_equal(udr__packw_append(w, &f->hs[p - 1][0], 1, ESIZE(0), d, (uint32_t)ESIZE(0)), 0);
	}
	assert_int_equal(udr__packw_flush(w), 0);
	udr__packw_free(w);
}

static void assert_get(udr_store *st, const udr_hash *h, uint32_t seed, size_t n)
{
	void *buf = NULL;
	size_t len = 0;
	unsigned char d[400];
	th_fill(d, n, seed);
	if (udr_store_get(&buf, &len, st, h) != 0) {
		print_error("get %s: %s\n", th_hex(h), udr_error_last()->message);
		fail();
	}
	assert_int_equal(len, n);
	assert_memory_equal(buf, d, n);
	udr_free(buf);
}

/* Every entry of packs [0, np) reads back exactly through a fresh handle
 * (and through f->st). */
static void assert_all(fx *f, int np)
{
	udr_store *s2 = NULL;
	assert_int_equal(udr_store_open(&s2, f->sdir, 0), 0);
	for (int p = 0; p < np; p++)
		for (int i = 0; i < PER; i++) {
			assert_get(s2, &f->hs[p][i], seed_of(p, i), ESIZE(i));
			assert_get(f->st, &f->hs[p][i], seed_of(p, i), ESIZE(i));
		}
	udr_store_close(s2);
}

/* PACKS packs (pack 3 holds a second copy of an entry of pack 2) and a
 * multi-pack index over them. */
static void fixture(fx *f)
{
	for (int p = 0; p < PACKS; p++)
		write_pack(f, p, p == 3);
	assert_int_equal(udr__midx_update(f->st, true, true), 0);
	assert_true(th_exists(f->midx));
}

static void midx_stats(udr_store_pack_stats *ps, const char *sdir)
{
	udr_store *s2 = NULL;
	assert_int_equal(udr_store_open(&s2, sdir, 0), 0);
	assert_int_equal(udr_store_pack_stats_get(ps, s2), 0);
	udr_store_close(s2);
}

/* ---- layout ------------------------------------------------------------------------ */

static void midx_build_parse_find(void **state)
{
	fx *f = *state;
	fixture(f);
	udr__packset *ps = f->st->packs;
	assert_int_equal(udr__packset_scan(f->st), 0);
	const udr__idx *v[PACKS];
	size_t n = 0;
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i]->gone)
			v[n++] = &ps->v[i]->idx;
	assert_int_equal(n, PACKS);
	unsigned char *b = NULL;
	size_t bl = 0;
	assert_int_equal(udr__midx_build(&b, &bl, v, n), 0);
	/* a pure function of the packs' indexes: the file is the same bytes */
	size_t fl = 0;
	char *file = th_read_file(f->midx, &fl);
	assert_int_equal(fl, bl);
	assert_memory_equal(file, b, bl);
	free(file);
	assert_int_equal(bl, UDR__MIDX_HDR + PACKS * 32 + 1024 + (size_t)PACKS * PER * (32 + UDR__MIDX_REC) + 32);
	udr__midx x;
	assert_int_equal(udr__midx_parse(&x, b, bl, true, "t"), 0);
	assert_int_equal(x.npacks, PACKS);
	assert_int_equal(x.n, PACKS * PER);
	for (int p = 0; p < PACKS; p++)
		for (int i = 0; i < PER; i++) {
			uint64_t k = udr__midx_find(&x, &f->hs[p][i]);
			udr__pack_entry e, pe;
			uint32_t j;
			udr_hash name;
			assert_true(k != UINT64_MAX);
			udr__midx_record(&e, &j, &x, k);
			assert_true(j < PACKS);
			assert_true(udr_hash_equal(&e.hash, &f->hs[p][i]));
			/* the record is the pack's own index record */
			udr__midx_pack(&name, &x, j);
			const udr__idx *ix = NULL;
			for (size_t q = 0; q < n; q++)
				if (udr_hash_equal(&v[q]->pack, &name))
					ix = v[q];
			assert_non_null(ix);
			uint64_t r = udr__idx_find(ix, &f->hs[p][i]);
			assert_true(r != UINT64_MAX);
			udr__idx_record(&pe, ix, r);
			assert_int_equal(e.offset, pe.offset);
			assert_int_equal(e.length, pe.length);
			assert_int_equal(e.kind, 1);
		}
	/* two copies: the record names the first pack by name */
	{
		uint64_t k = udr__midx_find(&x, &f->hs[2][0]);
		udr__pack_entry e;
		uint32_t j;
		udr_hash name;
		udr__midx_record(&e, &j, &x, k);
		udr__midx_pack(&name, &x, j);
		for (size_t q = 0; q < n; q++)
			if (udr__idx_find(v[q], &f->hs[2][0]) != UINT64_MAX)
				assert_true(memcmp(name.bytes, v[q]->pack.bytes, 32) <= 0);
	}
	udr_hash absent;
	udr_hash_buf(&absent, "absent", 6);
	assert_true(udr__midx_find(&x, &absent) == UINT64_MAX);

	/* damage to each region: the full check finds all of it, the open's
	 * structural check what it covers */
	size_t fan = UDR__MIDX_HDR + PACKS * 32, hs = fan + 1024, rec = hs + (size_t)PACKS * PER * 32;
	struct {
		size_t at;
		unsigned char x;
		bool structural;
	} dmg[] = {
		{0, 1, true},               /* magic */
		{4, 1, true},               /* version */
		{6, 1, true},               /* zero */
		{8, 1, true},               /* pack count */
		{12, 1, true},              /* zero */
		{16, 1, true},              /* entry count */
		{fan + 4 * 100, 0xff, true}, /* fan-out */
		{fan + 1020, 1, true},      /* fan-out's last entry: n */
		{hs, 0xff, false},          /* a hash */
		{hs + 32 * 150 + 5, 1, false},
		{rec, 1, false},            /* an offset */
		{rec + 8, 1, false},        /* a length */
		{rec + 12, 0x40, false},    /* a pack number out of range */
		{rec + 16, 7, false},       /* a kind */
		{rec + 17, 1, false},       /* zero */
		{bl - 32, 1, false},        /* trailer */
		{bl - 1, 1, false},
	};
	for (size_t d = 0; d < sizeof(dmg) / sizeof(dmg[0]); d++) {
		b[dmg[d].at] ^= dmg[d].x;
		if (udr__midx_parse(&x, b, bl, true, "t") != UDR_ECORRUPT) {
			print_error("damage at %zu not found by the full check\n", dmg[d].at);
			fail();
		}
		assert_int_equal(udr__midx_parse(&x, b, bl, false, "t"), dmg[d].structural ? UDR_ECORRUPT : 0);
		b[dmg[d].at] ^= dmg[d].x;
	}
	assert_int_equal(udr__midx_parse(&x, b, bl, true, "t"), 0);
	/* pack names out of order: the first made a copy of the second (a byte
	 * flipped in it could leave the order intact, depending on the random
	 * names: the test failed now and then) */
	{
		unsigned char save[32];
		memcpy(save, b + UDR__MIDX_HDR, 32);
		memcpy(b + UDR__MIDX_HDR, b + UDR__MIDX_HDR + 32, 32);
		assert_int_equal(udr__midx_parse(&x, b, bl, true, "t"), UDR_ECORRUPT);
		assert_int_equal(udr__midx_parse(&x, b, bl, false, "t"), UDR_ECORRUPT);
		memcpy(b + UDR__MIDX_HDR, save, 32);
	}
	/* cut short, or longer: the sizes do not match */
	assert_int_equal(udr__midx_parse(&x, b, bl - 1, false, "t"), UDR_ECORRUPT);
	assert_int_equal(udr__midx_parse(&x, b, bl - 52, false, "t"), UDR_ECORRUPT);
	assert_int_equal(udr__midx_parse(&x, b, bl / 2, false, "t"), UDR_ECORRUPT);
	assert_int_equal(udr__midx_parse(&x, b, 10, false, "t"), UDR_ECORRUPT);
	/* no pack: a valid empty index */
	free(b);
	assert_int_equal(udr__midx_build(&b, &bl, v, 0), 0);
	assert_int_equal(udr__midx_parse(&x, b, bl, true, "t"), 0);
	assert_int_equal(x.n, 0);
	free(b);
}

/* udr__midx_build sorts its array and keeps a repeated pack name once; the
 * array stays a permutation of what it was given (the writer and the check
 * release one hold per entry of it afterwards: an entry overwritten would
 * release one pack twice and another never). */
static void midx_build_leaves_a_permutation(void **state)
{
	fx *f = *state;
	fixture(f);
	udr__packset *ps = f->st->packs;
	assert_int_equal(udr__packset_scan(f->st), 0);
	assert_true(ps->n >= 3);
	/* the first by name twice: a repeat that others follow once sorted */
	size_t m = 0;
	for (size_t i = 1; i < 3; i++)
		if (memcmp(ps->v[i]->idx.pack.bytes, ps->v[m]->idx.pack.bytes, UDR_HASH_SIZE) < 0)
			m = i;
	udr__idx again = ps->v[m]->idx;
	const udr__idx *v[4] = {&ps->v[0]->idx, &again, &ps->v[1]->idx, &ps->v[2]->idx}, *before[4];
	memcpy(before, v, sizeof(v));
	unsigned char *b = NULL;
	size_t bl = 0;
	assert_int_equal(udr__midx_build(&b, &bl, v, 4), 0);
	free(b);
	for (int i = 0; i < 4; i++) {
		int seen = 0;
		for (int j = 0; j < 4; j++)
			seen += v[j] == before[i];
		assert_int_equal(seen, 1);
	}
}

/* ---- the store ----------------------------------------------------------------------- */

static void midx_lookups_with_newer_packs(void **state)
{
	fx *f = *state;
	fixture(f);
	/* three packs newer than it, searched through their own indexes */
	for (int p = PACKS; p < PACKS + 3; p++)
		write_pack(f, p, false);
	udr_store *s2 = NULL;
	assert_int_equal(udr_store_open(&s2, f->sdir, 0), 0);
	assert_int_equal(udr__packset_scan(s2), 0);
	udr__packset *ps = s2->packs;
	assert_non_null(ps->midx.p);
	int covered = 0;
	for (size_t i = 0; i < ps->n; i++)
		covered += ps->v[i]->covered;
	assert_int_equal(covered, PACKS);
	/* a covered object's copy 0 comes from the midx's record */
	for (int p = 0; p < PACKS + 3; p++) {
		udr__loc l;
		assert_int_equal(udr__obj_find(&l, s2, &f->hs[p][5], 0, false), 0);
		assert_non_null(l.pack);
		assert_int_equal(l.pack->covered, p < PACKS);
		udr__loc_free(&l);
	}
	udr_store_close(s2);
	assert_all(f, PACKS + 3);
	udr_store_pack_stats st;
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx, 1);
	assert_int_equal(st.packs, PACKS + 3);
	assert_int_equal(st.midx_packs, PACKS);
	assert_int_equal(st.midx_objects, PACKS * PER);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
	/* past the threshold of uncovered packs a put's repack rewrites it */
	udr__midx_threshold = 3;
	unsigned char d[300];
	udr_hash h;
	th_fill(d, sizeof(d), 77);
	assert_int_equal(udr_store_put(&h, f->st, d, sizeof(d)), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx, 1);
	assert_int_equal(st.midx_packs, st.packs);
	assert_int_equal(st.midx_objects, (PACKS + 3) * PER + 1);
	assert_all(f, PACKS + 3);
}

/* A record pointing at another entry (checksum sealed again): never that
 * entry's bytes; the pack's own index serves; fsck reports and rebuilds. */
static void midx_wrong_record_never_wrong_bytes(void **state)
{
	fx *f = *state;
	fixture(f);
	size_t bl = 0;
	unsigned char *b = (unsigned char *)th_read_file(f->midx, &bl);
	unsigned char *orig = malloc(bl);
	memcpy(orig, b, bl);
	udr__midx x;
	assert_int_equal(udr__midx_parse(&x, b, bl, true, "t"), 0);
	/* two records of one pack: swap their offsets and lengths */
	uint64_t k1 = udr__midx_find(&x, &f->hs[4][1]), k2 = udr__midx_find(&x, &f->hs[4][2]);
	unsigned char *r1 = (unsigned char *)x.p + (bl - 32 - x.n * UDR__MIDX_REC) + k1 * UDR__MIDX_REC;
	unsigned char *r2 = (unsigned char *)x.p + (bl - 32 - x.n * UDR__MIDX_REC) + k2 * UDR__MIDX_REC, t[12];
	uint64_t o2 = udr__get_le64(r2);
	memcpy(t, r1, 12);
	memcpy(r1, r2, 12);
	memcpy(r2, t, 12);
	udr_hash tail;
	udr_hash_buf(&tail, b, bl - 32);
	memcpy(b + bl - 32, tail.bytes, 32);
	th_write_file(f->midx, b, bl);
	udr_store *s2 = NULL;
	assert_int_equal(udr_store_open(&s2, f->sdir, 0), 0);
	/* the midx is what answers copy 0: the wrong place */
	udr__loc l;
	assert_int_equal(udr__obj_find(&l, s2, &f->hs[4][1], 0, true), 0);
	assert_int_equal(l.offset, o2);
	udr__loc_free(&l);
	assert_get(s2, &f->hs[4][1], seed_of(4, 1), ESIZE(1));
	assert_get(s2, &f->hs[4][2], seed_of(4, 2), ESIZE(2));
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(NULL, s2, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_int_equal(pr.count, 1);
	assert_true(th_problems_mention(&pr, "multi-pack index"));
	th_problems_free(&pr);
	assert_int_equal(udr_store_fsck(NULL, s2, NULL, NULL), 0);
	udr_store_close(s2);
	free(b);
	b = (unsigned char *)th_read_file(f->midx, &bl);
	assert_memory_equal(b, orig, bl);
	free(b);
	free(orig);
}

/* Packs it names repacked away: reads fall back to the packs' own indexes,
 * through an old handle and a new one; fsck leaves it (legal, only slower). */
static void midx_stale_after_repack(void **state)
{
	fx *f = *state;
	fixture(f);
	udr_store *old = NULL;
	assert_int_equal(udr_store_open(&old, f->sdir, 0), 0);
	assert_get(old, &f->hs[0][0], seed_of(0, 0), ESIZE(0)); /* loads the set and the midx */
	size_t bl = 0, bl2 = 0;
	char *before = th_read_file(f->midx, &bl);
	udr__midx_threshold = 1000; /* no rewrite now */
	assert_int_equal(udr__pack_repack(f->st, UDR__PACK_CLASS_DATA), 0);
	char *after = th_read_file(f->midx, &bl2);
	assert_int_equal(bl, bl2);
	assert_memory_equal(before, after, bl);
	udr_store_pack_stats st;
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx, 1);
	assert_true(st.packs < PACKS);
	assert_true(st.midx_packs < st.packs || st.midx_packs == 0);
	for (int p = 0; p < PACKS; p++)
		for (int i = 0; i < PER; i++)
			assert_get(old, &f->hs[p][i], seed_of(p, i), ESIZE(i));
	udr_store_close(old);
	assert_all(f, PACKS);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
	free(after);
	after = th_read_file(f->midx, &bl2);
	assert_memory_equal(before, after, bl);
	/* the next rewrite covers the packs there are */
	assert_int_equal(udr__midx_update(f->st, true, true), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx_packs, st.packs);
	assert_int_equal(st.midx_objects, PACKS * PER);
	free(before);
	free(after);
}

static void midx_damaged_truncated_missing(void **state)
{
	fx *f = *state;
	fixture(f);
	size_t bl = 0;
	unsigned char *orig = (unsigned char *)th_read_file(f->midx, &bl);
	size_t fan = UDR__MIDX_HDR + PACKS * 32, hs = fan + 1024, rec = hs + (size_t)PACKS * PER * 32;
	const size_t at[] = {0, 4, 8, 16, UDR__MIDX_HDR + 40, fan + 4 * 7, fan + 1020, hs + 3, hs + 32 * 77,
	                     rec, rec + UDR__MIDX_REC * 33 + 8, rec + 12, rec + 16, bl - 32, bl - 1};
	/* cases: one flipped byte each, then cut to 0, to half, by one byte, one byte more */
	const size_t ncase = sizeof(at) / sizeof(at[0]) + 4;
	for (size_t c = 0; c < ncase; c++) {
		unsigned char *b = malloc(bl + 1);
		size_t len = bl;
		memcpy(b, orig, bl);
		if (c < sizeof(at) / sizeof(at[0]))
			b[at[c]] ^= 0x5a;
		else
			len = (size_t[]){0, bl / 2, bl - 1, bl + 1}[c - sizeof(at) / sizeof(at[0])];
		b[bl] = 0;
		th_write_file(f->midx, b, len);
		free(b);
		assert_all(f, PACKS);
		th_problems pr = {0};
		udr_store *s2 = NULL;
		assert_int_equal(udr_store_open(&s2, f->sdir, 0), 0);
		int rc = udr_store_fsck(NULL, s2, th_problem_cb, &pr);
		if (rc != UDR_ECORRUPT || pr.count != 1 || !th_problems_mention(&pr, "multi-pack index")) {
			print_error("case %zu: fsck %d, %d problems\n", c, rc, pr.count);
			for (int i = 0; i < pr.count; i++)
				print_error("  %s\n", pr.messages[i]);
			fail();
		}
		th_problems_free(&pr);
		/* rebuilt: the same bytes as before the damage, and clean */
		assert_int_equal(udr_store_fsck(NULL, s2, NULL, NULL), 0);
		udr_store_close(s2);
		size_t nl = 0;
		char *now = th_read_file(f->midx, &nl);
		assert_int_equal(nl, bl);
		assert_memory_equal(now, orig, bl);
		free(now);
	}
	/* missing: a cache, not data; nothing to report */
	assert_int_equal(unlink(f->midx), 0);
	assert_all(f, PACKS);
	udr_store_pack_stats st;
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx, 0);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
	free(orig);
}

/* A pack it names damaged or cut short: never wrong bytes, the error names
 * the piece and the pack. */
static void midx_damaged_or_cut_pack_names_piece_and_pack(void **state)
{
	fx *f = *state;
	fixture(f);
	udr_hash *h = &f->hs[6][3];
	off_t off;
	size_t len;
	char *pk = th_object_at(f->sdir, h, &off, &len);
	th_flip_bit(pk, off + 5);
	char *name = strrchr(pk, '/') + 1;
	name[64] = '\0';
	udr_store *s2 = NULL;
	void *buf = NULL;
	size_t bl = 0;
	assert_int_equal(udr_store_open(&s2, f->sdir, 0), 0);
	assert_int_equal(udr_store_get(&buf, &bl, s2, h), UDR_ECORRUPT);
	assert_null(buf);
	th_assert_error(UDR_ECORRUPT, th_hex(h));
	th_assert_error(UDR_ECORRUPT, name);
	/* a pack it covers cut short inside an entry: that entry and the ones
	 * after it are errors naming the piece and the pack, the ones before
	 * read */
	udr_hash *cut = &f->hs[7][10];
	char *pk7 = th_object_at(f->sdir, cut, &off, &len);
	th_truncate_object(f->sdir, cut, 10);
	char *name7 = strrchr(pk7, '/') + 1;
	name7[64] = '\0';
	udr_store *s3 = NULL;
	assert_int_equal(udr_store_open(&s3, f->sdir, 0), 0);
	assert_int_equal(udr_store_get(&buf, &bl, s3, cut), UDR_ECORRUPT);
	assert_null(buf);
	th_assert_error(UDR_ECORRUPT, th_hex(cut));
	th_assert_error(UDR_ECORRUPT, name7);
	int before = 0, after = 0;
	for (int i = 0; i < PER; i++) {
		off_t o;
		size_t l;
		char *q = th_object_at(f->sdir, &f->hs[7][i], &o, &l);
		int rc = udr_store_get(&buf, &bl, s3, &f->hs[7][i]);
		if (o < off) {
			assert_int_equal(rc, 0);
			udr_free(buf);
			before++;
		} else {
			assert_int_equal(rc, UDR_ECORRUPT);
			assert_null(buf);
			after++;
		}
		buf = NULL;
		free(q);
	}
	assert_true(before > 0 && after > 0);
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(NULL, s3, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(th_problems_mention(&pr, th_hex(cut)));
	th_problems_free(&pr);
	udr_store_close(s3);
	udr_store_close(s2);
	free(pk7);
	free(pk);
}

/* ---- readers on an old midx while a writer publishes and repacks ------------------------- */

struct rd {
	fx *f;
	udr_store *st;
	int failures;
	volatile int *stop;
};

static void *reader_main(void *p)
{
	struct rd *r = p;
	unsigned char d[400];
	for (int round = 0; !*r->stop || round < 2; round++) {
		for (int q = 0; q < PACKS; q++)
			for (int i = 0; i < PER; i += 3) {
				void *buf = NULL;
				size_t len = 0;
				th_fill(d, ESIZE(i), seed_of(q, i));
				if (udr_store_get(&buf, &len, r->st, &r->f->hs[q][i]) != 0 || len != ESIZE(i) ||
				    memcmp(buf, d, len) != 0)
					r->failures++;
				udr_free(buf);
			}
	}
	return NULL;
}

static void midx_reader_while_writer_repacks(void **state)
{
	fx *f = *state;
	fixture(f);
	udr_store *reader = NULL, *writer = NULL;
	assert_int_equal(udr_store_open(&reader, f->sdir, 0), 0);
	assert_int_equal(udr_store_open(&writer, f->sdir, 0), 0);
	assert_get(reader, &f->hs[0][0], seed_of(0, 0), ESIZE(0));
	volatile int stop = 0;
	struct rd r = {f, reader, 0, &stop};
	pthread_t th;
	udr__midx_threshold = 2;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	/* new packs, geometric repacks (merging the covered packs away), new
	 * multi-pack indexes renamed over the one the reader has mapped */
	udr_hash nh[40];
	unsigned char d[3000];
	for (int i = 0; i < 40; i++) {
		th_fill(d, sizeof(d), 5000 + (uint32_t)i);
		assert_int_equal(udr_store_put(&nh[i], writer, d, sizeof(d)), 0);
		/* what the writer acknowledged, the reader reads */
		void *buf = NULL;
		size_t len = 0;
		assert_int_equal(udr_store_get(&buf, &len, reader, &nh[i]), 0);
		assert_int_equal(len, sizeof(d));
		assert_memory_equal(buf, d, len);
		udr_free(buf);
	}
	assert_int_equal(udr__pack_repack_all(writer, UDR__PACK_CLASS_DATA), 0);
	stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(r.failures, 0);
	assert_all(f, PACKS);
	udr_store_close(reader);
	udr_store_close(writer);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

static void midx_upgrade_writes_one(void **state)
{
	fx *f = *state;
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *s2 = NULL;
	char *d2 = th_join(f->dir, "f2");
	cfg.format = 2;
	assert_int_equal(udr_store_open_ext(&s2, d2, UDR_OPEN_CREATE, &cfg), 0);
	unsigned char d[5000];
	udr_hash h[4];
	for (int i = 0; i < 4; i++) {
		th_fill(d, sizeof(d), 900 + (uint32_t)i);
		assert_int_equal(udr_store_put(&h[i], s2, d, sizeof(d)), 0);
	}
	udr_store_close(s2);
	assert_int_equal(udr_store_upgrade(d2, NULL), 0);
	udr_store_pack_stats st;
	midx_stats(&st, d2);
	assert_int_equal(st.midx, 1);
	assert_int_equal(st.midx_packs, st.packs);
	assert_int_equal(st.midx_objects, 4);
	assert_int_equal(udr_store_open(&s2, d2, 0), 0);
	for (int i = 0; i < 4; i++) {
		void *buf = NULL;
		size_t len = 0;
		th_fill(d, sizeof(d), 900 + (uint32_t)i);
		assert_int_equal(udr_store_get(&buf, &len, s2, &h[i]), 0);
		assert_int_equal(len, sizeof(d));
		assert_memory_equal(buf, d, len);
		udr_free(buf);
	}
	assert_int_equal(udr_store_fsck(NULL, s2, NULL, NULL), 0);
	udr_store_close(s2);
	free(d2);
}

/* A pack of one raw entry (seed), written without a repack. */
static void write_tiny(fx *f, uint32_t seed)
{
	udr__packw *w = NULL;
	unsigned char d[100];
	udr_hash h;
	th_fill(d, sizeof(d), seed);
	udr_hash_buf(&h, d, sizeof(d));
	assert_int_equal(udr__packw_new(&w, f->st, UDR__PACK_CLASS_DATA), 0);
	assert_int_equal(udr__packw_append(w, &h, 1, sizeof(d), d, (uint32_t)sizeof(d)), 0);
	assert_int_equal(udr__packw_flush(w), 0);
	udr__packw_free(w);
}

/* A large multi-pack index is not rewritten for every few small packs: only
 * once the uncovered ones hold an eighth of its entries, or number four
 * times the threshold; a small one as soon as the threshold is reached. */
static void midx_large_rewritten_amortized(void **state)
{
	fx *f = *state;
	udr_store_pack_stats st;
	fixture(f); /* 301 entries in PACKS packs */
	udr__midx_threshold = 2;
	udr__midx_small = 100; /* "large" from 100 entries: this one is */
	for (int i = 0; i < 7; i++) {
		write_tiny(f, 5000 + (uint32_t)i);
		assert_int_equal(udr__midx_update(f->st, false, true), 0);
		midx_stats(&st, f->sdir);
		assert_int_equal(st.midx_packs, PACKS); /* 1..7 uncovered, 7 entries < 301/8 */
	}
	write_tiny(f, 5007); /* 8 = 4 x threshold uncovered */
	assert_int_equal(udr__midx_update(f->st, false, true), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx_packs, PACKS + 8);
	assert_int_equal(st.midx_objects, PACKS * PER + 8);
	/* two packs with 60 entries: more than an eighth of 309 */
	write_pack(f, PACKS, false);
	assert_int_equal(udr__midx_update(f->st, false, true), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx_packs, PACKS + 8);
	write_pack(f, PACKS + 1, false);
	assert_int_equal(udr__midx_update(f->st, false, true), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx_packs, PACKS + 10);
	/* a small index: rewritten at the threshold */
	udr__midx_small = 65536;
	write_tiny(f, 6000);
	write_tiny(f, 6001);
	assert_int_equal(udr__midx_update(f->st, false, true), 0);
	midx_stats(&st, f->sdir);
	assert_int_equal(st.midx_packs, PACKS + 12);
	assert_all(f, PACKS + 2);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(midx_build_parse_find),
		T(midx_build_leaves_a_permutation),
		T(midx_lookups_with_newer_packs),
		T(midx_wrong_record_never_wrong_bytes),
		T(midx_stale_after_repack),
		T(midx_damaged_truncated_missing),
		T(midx_damaged_or_cut_pack_names_piece_and_pack),
		T(midx_reader_while_writer_repacks),
		T(midx_upgrade_writes_one),
		T(midx_large_rewritten_amortized),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
