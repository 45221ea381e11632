/*
 * object.c - the kinds of stored objects and how they decode: raw files,
 * standard zstd frames, manifests listing the pieces of chunked content, and
 * delta pieces (a zstd frame compressed against one or more base pieces,
 * concatenated, as its reference prefix; decoded bases are kept in a cache
 * shared by one content read).  Reads verify by default: every piece (and
 * every delta base) is rehashed before its bytes are handed out, and the
 * whole content at the end.  Without verification sizes, manifest trailers and zstd frame
 * checksums are still checked, but a damaged raw object goes unnoticed.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"

#define MANIFEST_HDR 64
#define MANIFEST_ENTRY 36

static const char *const kind_suffix[] = {"", "", ".zst", ".m", ".d"};

char *udr__obj_path(const udr_store *s, const udr_hash *h, enum udr__kind kind, char *hex)
{
	size_t n = s->pathlen + 1 + 2 + 1 + 2 + 1 + UDR_HASH_HEXSIZE + 5;
	char *p = malloc(n);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	udr_hash_tohex(hex, h);
	snprintf(p, n, "%s/%.2s/%.2s/%s%s", s->path, hex, hex + 2, hex, kind_suffix[kind]);
	return p;
}

/* ---- manifests ----------------------------------------------------------- */

int udr__manifest_encode(unsigned char **out, size_t *out_len, const udr__manifest *m, const udr_hash *h)
{
	size_t n, body;
	unsigned char *b;
	udr_hash tail;
	if (m->npieces > SIZE_MAX / MANIFEST_ENTRY || !udr__mul_ok((size_t)m->npieces, MANIFEST_ENTRY, &body) ||
	    !udr__add_ok(body, MANIFEST_HDR + UDR_HASH_SIZE, &n))
		return udr__error_oom();
	if (!(b = calloc(1, n)))
		return udr__error_oom();
	memcpy(b, "UDRM", 4);
	b[4] = 1;
	udr__put_le64(b + 8, m->total);
	udr__put_le64(b + 16, m->npieces);
	memcpy(b + 24, h->bytes, UDR_HASH_SIZE);
	for (uint64_t i = 0; i < m->npieces; i++) {
		unsigned char *e = b + MANIFEST_HDR + i * MANIFEST_ENTRY;
		memcpy(e, m->pieces[i].hash.bytes, UDR_HASH_SIZE);
		udr__put_le32(e + 32, m->pieces[i].size);
	}
	udr_hash_buf(&tail, b, n - UDR_HASH_SIZE);
	memcpy(b + n - UDR_HASH_SIZE, tail.bytes, UDR_HASH_SIZE);
	*out = b;
	*out_len = n;
	return 0;
}

int udr__manifest_check(const unsigned char *d, size_t len, const udr_hash *h, const char *what, uint64_t *npieces)
{
	uint64_t n, sum = 0;
	udr_hash tail;
	if (len < MANIFEST_HDR + UDR_HASH_SIZE || memcmp(d, "UDRM", 4) != 0 || d[4] != 1)
		return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: bad header", what);
	n = udr__get_le64(d + 16);
	if (n == 0 || n > (len - MANIFEST_HDR - UDR_HASH_SIZE) / MANIFEST_ENTRY ||
	    n * MANIFEST_ENTRY + MANIFEST_HDR + UDR_HASH_SIZE != len)
		return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: size does not match its %llu pieces", what,
		                      (unsigned long long)n);
	udr_hash_buf(&tail, d, len - UDR_HASH_SIZE);
	if (memcmp(tail.bytes, d + len - UDR_HASH_SIZE, UDR_HASH_SIZE) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: checksum mismatch", what);
	if (h && memcmp(d + 24, h->bytes, UDR_HASH_SIZE) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: it describes other content", what);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t size = udr__get_le32(d + MANIFEST_HDR + i * MANIFEST_ENTRY + UDR_HASH_SIZE);
		if (size == 0 || size > UDR__PIECE_HARD_MAX)
			return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: piece %llu has size %u", what,
			                      (unsigned long long)i, (unsigned)size);
		sum += size;
	}
	if (sum != udr__get_le64(d + 8))
		return udr__error_set(UDR_ECORRUPT, "corrupt manifest %s: pieces add up to %llu bytes, not %llu", what,
		                      (unsigned long long)sum, (unsigned long long)udr__get_le64(d + 8));
	*npieces = n;
	return 0;
}

void udr__manifest_entry(const unsigned char *d, uint64_t i, udr_hash *hash, uint32_t *size)
{
	const unsigned char *e = d + MANIFEST_HDR + i * MANIFEST_ENTRY;
	memcpy(hash->bytes, e, UDR_HASH_SIZE);
	if (size)
		*size = udr__get_le32(e + UDR_HASH_SIZE);
}

int udr__manifest_parse(udr__manifest *m, const unsigned char *d, size_t len, const udr_hash *h, const char *what)
{
	uint64_t n;
	int rc;
	memset(m, 0, sizeof(*m));
	if ((rc = udr__manifest_check(d, len, h, what, &n)) < 0)
		return rc;
	if (!(m->pieces = malloc((size_t)n * sizeof(udr__piece))))
		return udr__error_oom();
	for (uint64_t i = 0; i < n; i++)
		udr__manifest_entry(d, i, &m->pieces[i].hash, &m->pieces[i].size);
	m->total = udr__get_le64(d + 8);
	m->npieces = n;
	return 0;
}

void udr__manifest_free(udr__manifest *m)
{
	free(m->pieces);
	m->pieces = NULL;
	m->npieces = 0;
}

/* Keep the first failure's message while other copies are tried. */
struct first_err {
	int rc;
	char msg[1024];
};

static void first_keep(struct first_err *f, int rc)
{
	if (f->rc == 0) {
		f->rc = rc;
		snprintf(f->msg, sizeof(f->msg), "%s", udr_error_last()->message);
	}
	udr_error_clear();
}

static int first_report(const struct first_err *f)
{
	return udr__error_set(f->rc, "%s", f->msg);
}

int udr__manifest_load(udr__manifest *m, udr_store *s, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct first_err f = {0, ""};
	udr_hash_tohex(hex, h);
	/* the copies of h in lookup order; a damaged one gives way to the next */
	for (unsigned copy = 0;; copy++) {
		unsigned char *d = NULL;
		size_t len;
		enum udr__kind kind;
		int rc = udr__obj_read(&d, &len, &kind, s, h, (size_t)1 << 31, copy);
		if (rc == UDR_ENOTFOUND && (copy > 0 || f.rc))
			return f.rc ? first_report(&f) : udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		if (rc == 0 && kind != UDR__K_MANIFEST) {
			free(d);
			continue;
		}
		if (rc == 0) {
			rc = udr__manifest_parse(m, d, len, h, hex);
			free(d);
		}
		if (rc == 0 || (rc != UDR_ECORRUPT && rc != UDR_EIO))
			return rc;
		first_keep(&f, rc);
	}
}

/* ---- zstd with per-thread contexts --------------------------------------- */

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;
struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

static void zfree(void *p)
{
	struct zctx *z = p;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z);
}

static void zkey_init(void)
{
	pthread_key_create(&zkey, zfree);
}

static struct zctx *zget(void)
{
	struct zctx *z;
	pthread_once(&zonce, zkey_init);
	z = pthread_getspecific(zkey);
	if (!z) {
		if (!(z = calloc(1, sizeof(*z))))
			return NULL;
		z->c = ZSTD_createCCtx();
		z->d = ZSTD_createDCtx();
		if (!z->c || !z->d || pthread_setspecific(zkey, z) != 0) {
			zfree(z);
			return NULL;
		}
	}
	return z;
}

int udr__zstd_compress(unsigned char **out, size_t *out_len, const void *src, size_t len, int level,
                       const void *prefix, size_t prefix_len)
{
	struct zctx *z = zget();
	size_t cap = ZSTD_compressBound(len), r;
	unsigned char *buf;
	if (!z || !(buf = malloc(cap)))
		return udr__error_oom();
	ZSTD_CCtx_reset(z->c, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(z->c, ZSTD_c_contentSizeFlag, 1);
	if (prefix && prefix_len) {
		int wlog = 10;
		while (wlog < 30 && ((size_t)1 << wlog) < prefix_len + len)
			wlog++;
		ZSTD_CCtx_setParameter(z->c, ZSTD_c_windowLog, wlog);
		ZSTD_CCtx_refPrefix(z->c, prefix, prefix_len);
	}
	r = ZSTD_compress2(z->c, buf, cap, src, len);
	if (ZSTD_isError(r)) {
		free(buf);
		return udr__error_set(UDR_ERROR, "zstd compression failed: %s", ZSTD_getErrorName(r));
	}
	*out = buf;
	*out_len = r;
	return 0;
}

static unsigned char *pool_take(udr__bcache *c, size_t need);

/* Decompress one frame; the output buffer comes from pool when given. */
static int zstd_decompress(unsigned char **out, size_t *out_len, const unsigned char *src, size_t len,
                           const void *prefix, size_t prefix_len, const char *hex, udr__bcache *pool)
{
	struct zctx *z = zget();
	unsigned long long size = ZSTD_getFrameContentSize(src, len);
	unsigned char *buf;
	size_t r;
	if (!z)
		return udr__error_oom();
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > UDR__PIECE_HARD_MAX)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged zstd frame (bad header)", hex);
	if (!(buf = pool ? pool_take(pool, size ? size : 1) : malloc(size ? size : 1)))
		return udr__error_oom();
	ZSTD_DCtx_reset(z->d, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, 31);
	if (prefix && prefix_len)
		ZSTD_DCtx_refPrefix(z->d, prefix, prefix_len);
	r = ZSTD_decompressDCtx(z->d, buf, size ? size : 1, src, len);
	if (ZSTD_isError(r) || r != size) {
		free(buf);
		return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged zstd frame (%s)", hex,
		                      ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
	}
	*out = buf;
	*out_len = r;
	return 0;
}

/* ---- pieces -------------------------------------------------------------- */

/* UDR_ECORRUPT naming h unless data hashes to h. */
static int check_hash(const void *data, size_t len, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1], ahex[UDR_HASH_HEXSIZE + 1];
	udr_hash a;
	udr_hash_buf(&a, data, len);
	if (udr_hash_equal(&a, h))
		return 0;
	udr_hash_tohex(hex, h);
	udr_hash_tohex(ahex, &a);
	return udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: its content hashes to %s", hex, ahex);
}

int udr__raw_load(unsigned char **out, size_t *out_len, udr_store *s, const udr_hash *h, size_t max,
                  bool verify)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct first_err f = {0, ""};
	udr_hash_tohex(hex, h);
	for (unsigned copy = 0;; copy++) {
		unsigned char *d = NULL;
		size_t dl = 0;
		enum udr__kind kind;
		int rc = udr__obj_read(&d, &dl, &kind, s, h, max, copy);
		if (rc == UDR_ENOTFOUND && (copy > 0 || f.rc))
			return f.rc ? first_report(&f) : udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		if (rc == 0 && kind != UDR__K_RAW) {
			free(d);
			continue;
		}
		if (rc == 0 && verify && (rc = check_hash(d, dl, h)) < 0)
			free(d);
		if (rc == 0) {
			*out = d;
			*out_len = dl;
			return 0;
		}
		if (rc != UDR_ECORRUPT && rc != UDR_EIO)
			return rc;
		first_keep(&f, rc);
	}
}

/* ---- decoded-piece cache ----------------------------------------------------- */

uint64_t udr__piece_decodes;
uint64_t udr__packs_restarts;

#define POOL_MAX 16

/* A decoded piece held by the cache and lent to its users (refcounted: an
 * entry evicted while lent is freed by its last user). */
struct udr__bref {
	unsigned refs;
	size_t len;
	unsigned char *data;
};

struct bc_ent {
	udr_hash h;
	udr__bref *b;
	uint64_t used; /* LRU tick */
	int depth;
	bool verified;
	bool cold; /* a base decoded on the way down a chain (caches with finals) */
};

struct udr__bcache {
	pthread_mutex_t mu;
	size_t cap, held;
	uint64_t tick;
	uint64_t budget, decoded;
	struct bc_ent *e;
	size_t n, cap_n;
	/* where each entry is, by hash: open addressing with linear probing,
	 * 2 x cap_n slots of entry index + 1 (0: empty); a large cache (fsck's)
	 * holds thousands of pieces, and a linear search per lookup made that
	 * quadratic */
	uint32_t *ix;
	size_t ix_mask;
	/* buffers of evicted pieces, reused for the next decodes: freeing and
	 * allocating piece-sized buffers over and over makes malloc hand memory
	 * back to the kernel and fault it in again (measured: a third of the
	 * time of a put against a deep base) */
	unsigned char *pool[POOL_MAX];
	int npool;
	struct udr__bcache *handoff; /* gets a copy of every base udr__base_load lends */
	bool finals; /* also keeps a copy of every piece a verified load returns */
	uint64_t era, era_prev; /* ticks at the start of the current and previous content */
};

static void pool_give_locked(udr__bcache *c, unsigned char *d)
{
	if (!d)
		return;
	if (c->npool < POOL_MAX)
		c->pool[c->npool++] = d;
	else
		free(d);
}

static void pool_give(udr__bcache *c, unsigned char *d)
{
	pthread_mutex_lock(&c->mu);
	pool_give_locked(c, d);
	pthread_mutex_unlock(&c->mu);
}

/* A buffer of at least need bytes: the smallest pooled one that fits. */
static unsigned char *pool_take(udr__bcache *c, size_t need)
{
	unsigned char *d = NULL;
	int best = -1;
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->npool; i++) {
		size_t have = malloc_usable_size(c->pool[i]);
		if (have >= need && (best < 0 || have < malloc_usable_size(c->pool[best])))
			best = i;
	}
	if (best >= 0) {
		d = c->pool[best];
		c->pool[best] = c->pool[--c->npool];
	}
	pthread_mutex_unlock(&c->mu);
	return d ? d : malloc(need);
}

static void bref_unref_locked(udr__bcache *c, udr__bref *b)
{
	if (b && --b->refs == 0) {
		pool_give_locked(c, b->data);
		free(b);
	}
}

void udr__bref_release(udr__bcache *c, const udr__bref *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&c->mu);
	bref_unref_locked(c, (udr__bref *)b);
	pthread_mutex_unlock(&c->mu);
}

const unsigned char *udr__bref_data(const udr__bref *b, size_t *len)
{
	*len = b->len;
	return b->data;
}

udr__bcache *udr__bcache_new(size_t cap, uint64_t budget)
{
	udr__bcache *c = calloc(1, sizeof(*c));
	if (!c) {
		udr__error_oom();
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	c->cap = cap;
	c->budget = budget;
	return c;
}

void udr__bcache_budget(udr__bcache *c, uint64_t budget)
{
	pthread_mutex_lock(&c->mu);
	c->budget = budget;
	c->decoded = 0;
	pthread_mutex_unlock(&c->mu);
}

void udr__bcache_keep(udr_store *s, udr__bcache *c)
{
	udr__bcache_free(__atomic_exchange_n(&s->kept, c, __ATOMIC_ACQ_REL));
}

udr__bcache *udr__bcache_take(udr_store *s)
{
	return __atomic_exchange_n(&s->kept, NULL, __ATOMIC_ACQ_REL);
}

void udr__bcache_free(udr__bcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		bref_unref_locked(c, c->e[i].b);
	for (int i = 0; i < c->npool; i++)
		free(c->pool[i]);
	free(c->e);
	free(c->ix);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

size_t udr__bcache_cap(const udr_store *s)
{
	/* two chains' worth of average pieces: a piece's own chain and its
	 * neighbour's, which a delta naming both bases needs at once (measured
	 * on the grouped benchmark: 16 MiB decodes 4% more pieces than 64 MiB
	 * and is faster, malloc keeping fewer buffers live) */
	size_t want = 2 * (size_t)(s->max_depth + 1) * (s->cdc.avg ? s->cdc.avg : ((size_t)128 << 10));
	return want < UDR__BCACHE_MIN ? UDR__BCACHE_MIN : want > UDR__BCACHE_MAX ? UDR__BCACHE_MAX : want;
}

uint64_t udr__decode_budget(const udr_store *s, uint64_t size)
{
	/* (D + 1) * K * (size + (D + 1) * K * chunk_max): every level of a
	 * chain decodes at most K bases per piece, and the bases of neighbouring
	 * pieces widen a chain's window by at most K pieces per level */
	uint64_t d = (uint64_t)(s->max_depth > 0 ? s->max_depth : 1) + 1, k = UDR__DELTA_BASES_MAX;
	uint64_t edge = d * k * (uint64_t)(s->cdc.max ? s->cdc.max : UDR__PIECE_HARD_MAX);
	return d * k * (size + edge);
}

static size_t ix_home(const udr__bcache *c, const udr_hash *h)
{
	uint64_t v;
	memcpy(&v, h->bytes, sizeof(v));
	return (size_t)v & c->ix_mask;
}

/* The entry holding h, or c->n when none (under c->mu). */
static size_t ix_find(const udr__bcache *c, const udr_hash *h)
{
	if (!c->ix)
		return c->n;
	for (size_t k = ix_home(c, h);; k = (k + 1) & c->ix_mask) {
		uint32_t v = c->ix[k];
		if (v == 0)
			return c->n;
		if (udr_hash_equal(&c->e[v - 1].h, h))
			return v - 1;
	}
}

static void ix_insert(udr__bcache *c, size_t i)
{
	size_t k = ix_home(c, &c->e[i].h);
	while (c->ix[k])
		k = (k + 1) & c->ix_mask;
	c->ix[k] = (uint32_t)(i + 1);
}

/* The slot that names entry i (which is there). */
static size_t ix_slot(const udr__bcache *c, size_t i)
{
	size_t k = ix_home(c, &c->e[i].h);
	while (c->ix[k] != i + 1)
		k = (k + 1) & c->ix_mask;
	return k;
}

/* Empty slot k, moving back the entries of the probe run after it that
 * may no longer be found past the gap. */
static void ix_delete(udr__bcache *c, size_t k)
{
	size_t j = k;
	c->ix[k] = 0;
	for (;;) {
		size_t home;
		j = (j + 1) & c->ix_mask;
		if (!c->ix[j])
			return;
		home = ix_home(c, &c->e[c->ix[j] - 1].h);
		/* stays unless its home lies cyclically outside (k, j] */
		if (k <= j ? (home > k && home <= j) : (home > k || home <= j))
			continue;
		c->ix[k] = c->ix[j];
		c->ix[j] = 0;
		k = j;
	}
}

/* An index of 2 x cap_n slots over the entries (false: no memory; the
 * cache then stays as it was). */
static bool ix_rebuild(udr__bcache *c, size_t cap_n)
{
	size_t slots = 1;
	uint32_t *ix;
	while (slots < 2 * cap_n)
		slots <<= 1;
	if (!(ix = calloc(slots, sizeof(*ix))))
		return false;
	free(c->ix);
	c->ix = ix;
	c->ix_mask = slots - 1;
	for (size_t i = 0; i < c->n; i++)
		ix_insert(c, i);
	return true;
}

/* The cached piece h (verified when `verify`), lent; NULL when not held.
 * *verified: whether the lent bytes were checked against h. */
static udr__bref *bcache_get(udr__bcache *c, const udr_hash *h, bool verify, int *depth, bool *verified)
{
	udr__bref *b = NULL;
	size_t i;
	pthread_mutex_lock(&c->mu);
	if ((i = ix_find(c, h)) < c->n && (c->e[i].verified || !verify)) {
		struct bc_ent *e = &c->e[i];
		b = e->b;
		b->refs++;
		*depth = e->depth;
		if (verified)
			*verified = e->verified;
		e->used = ++c->tick;
	}
	pthread_mutex_unlock(&c->mu);
	return b;
}

static void bcache_drop(udr__bcache *c, size_t i)
{
	size_t last = c->n - 1;
	c->held -= c->e[i].b->len;
	bref_unref_locked(c, c->e[i].b);
	ix_delete(c, ix_slot(c, i));
	if (i != last) {
		c->ix[ix_slot(c, last)] = (uint32_t)(i + 1);
		c->e[i] = c->e[last];
	}
	c->n--;
}

/*
 * Which entries go first (lowest rank, then least recently used).  A plain
 * cache is LRU.  A cache that keeps finals (fsck's walk over the contents in
 * delta order) keeps the pieces the next content's deltas name: first go the
 * finals no content used since the one before began, then the bases decoded
 * on the way down a chain (a step down at the depth limit decodes one from
 * its start; they are used at once and seldom again), and last the finals
 * of this content and the one before.  Plain LRU let such a chain push out
 * the previous content's pieces before they were used, and each content
 * then decoded every chain whole (seen on a 300-version store).
 */
static int evict_rank(const udr__bcache *c, const struct bc_ent *e)
{
	if (!c->finals)
		return 0;
	if (e->cold)
		return 1;
	return e->used < c->era_prev ? 0 : 2;
}

void udr__bcache_next_content(udr__bcache *c)
{
	pthread_mutex_lock(&c->mu);
	c->era_prev = c->era;
	c->era = c->tick;
	pthread_mutex_unlock(&c->mu);
}

/* Keep d (malloc'd, taken over) as h's decoded bytes and lend it back; NULL
 * only when out of memory (d is freed). */
static udr__bref *bcache_put(udr__bcache *c, const udr_hash *h, unsigned char *d, size_t len, int depth,
                             bool verified, bool cold)
{
	udr__bref *b = malloc(sizeof(*b));
	if (!b) {
		free(d);
		udr__error_oom();
		return NULL;
	}
	b->refs = 1; /* the caller's */
	b->len = len;
	b->data = d;
	if (len > c->cap / 4)
		return b; /* lent, not kept */
	pthread_mutex_lock(&c->mu);
	{
		size_t i = ix_find(c, h);
		if (i < c->n) /* another thread decoded it too, or unverified before */
			bcache_drop(c, i);
	}
	while (c->n && c->held + len > c->cap) {
		size_t old = 0;
		int orank = evict_rank(c, &c->e[0]);
		for (size_t i = 1; i < c->n; i++) {
			int r = evict_rank(c, &c->e[i]);
			if (r < orank || (r == orank && c->e[i].used < c->e[old].used)) {
				old = i;
				orank = r;
			}
		}
		bcache_drop(c, old);
	}
	if (c->n == c->cap_n) {
		size_t cap = c->cap_n ? c->cap_n * 2 : 64;
		struct bc_ent *e = cap <= UINT32_MAX / 2 ? realloc(c->e, cap * sizeof(*e)) : NULL;
		if (e)
			c->e = e;
		if (!e || !ix_rebuild(c, cap)) {
			pthread_mutex_unlock(&c->mu);
			return b; /* a cache only: no room is not an error */
		}
		c->cap_n = cap;
	}
	b->refs++; /* the cache's */
	c->e[c->n].h = *h;
	c->e[c->n].b = b;
	c->e[c->n].used = ++c->tick;
	c->e[c->n].cold = cold && c->finals;
	c->e[c->n].depth = depth;
	c->e[c->n].verified = verified;
	ix_insert(c, c->n);
	c->n++;
	c->held += len;
	pthread_mutex_unlock(&c->mu);
	return b;
}

/* Count len decoded bytes against the read's budget. */
static int bcache_charge(udr__bcache *c, size_t len, const char *hex)
{
	uint64_t total;
	__atomic_fetch_add(&udr__piece_decodes, 1, __ATOMIC_RELAXED);
	total = __atomic_add_fetch(&c->decoded, (uint64_t)len, __ATOMIC_RELAXED);
	if (c->budget && total > c->budget)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: its delta chains need more than %llu bytes decoded "
		                      "(damaged store?)", hex, (unsigned long long)c->budget);
	return 0;
}

/* ---- delta headers --------------------------------------------------------------- */

int udr__delta_parse(udr__delta_hdr *out, const unsigned char *d, size_t len, const char *what)
{
	memset(out, 0, sizeof(*out));
	if (len < 12 || memcmp(d, "UDRD", 4) != 0 || d[5] < 1)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header", what);
	out->version = d[4];
	out->depth = d[5];
	out->raw_size = udr__get_le32(d + 8);
	if (d[4] == 1) {
		if (len < UDR__DELTA_HDR)
			return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header", what);
		out->nbases = 1;
	} else if (d[4] == 2) {
		out->nbases = d[6];
		out->flags = d[7];
		if (out->nbases < 1 || out->nbases > UDR__DELTA_BASES_MAX || (d[7] & ~UDR__DELTA_STEP) ||
		    len < 12 + (size_t)out->nbases * UDR_HASH_SIZE)
			return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header", what);
	} else {
		return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header (version %u)", what, (unsigned)d[4]);
	}
	if (out->raw_size == 0 || out->raw_size > UDR__PIECE_HARD_MAX)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header (size %u)", what,
		                      (unsigned)out->raw_size);
	for (int i = 0; i < out->nbases; i++)
		memcpy(out->bases[i].bytes, d + 12 + (size_t)i * UDR_HASH_SIZE, UDR_HASH_SIZE);
	out->frame = 12 + (size_t)out->nbases * UDR_HASH_SIZE;
	return 0;
}

/*
 * The header of h's deepest copy (depth 0: a plain piece).  Copies of one
 * piece may differ (two writers each stored it, against other bases); a
 * reader takes whichever copy is good, so a new delta on h must be deeper
 * than all of them.  Damaged copies are skipped; the first damage is
 * reported when no copy parses.
 */
int udr__delta_peek(udr__delta_hdr *out, udr_store *s, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct first_err f = {0, ""};
	bool any = false;
	memset(out, 0, sizeof(*out));
	udr_hash_tohex(hex, h);
	for (unsigned copy = 0;; copy++) {
		udr__delta_hdr dh;
		enum udr__kind kind;
		unsigned char *raw = NULL;
		size_t rawlen = 0;
		int rc = udr__obj_read(&raw, &rawlen, &kind, s, h, UDR__PIECE_HARD_MAX + 4096, copy);
		if (rc == UDR_ENOTFOUND) {
			if (any) {
				udr_error_clear();
				return 0;
			}
			return f.rc ? first_report(&f) : udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		}
		memset(&dh, 0, sizeof(dh));
		if (rc == 0 && kind == UDR__K_DELTA)
			rc = udr__delta_parse(&dh, raw, rawlen, hex);
		free(raw);
		if (rc == 0) {
			if (!any || dh.depth > out->depth)
				*out = dh;
			any = true;
			continue;
		}
		if (rc != UDR_ECORRUPT && rc != UDR_EIO)
			return rc;
		first_keep(&f, rc);
	}
}

int udr__delta_write_version = 2;

int udr__delta_encode(unsigned char **out, size_t *out_len, const udr__delta_hdr *h, const unsigned char *frame,
                      size_t flen)
{
	size_t hdr = h->version == 1 ? UDR__DELTA_HDR : 12 + (size_t)h->nbases * UDR_HASH_SIZE;
	unsigned char *b;
	if ((h->version != 1 && h->version != 2) || h->nbases < 1 ||
	    h->nbases > (h->version == 1 ? 1 : UDR__DELTA_BASES_MAX) || h->depth < 1 ||
	    h->depth > UDR__DELTA_DEPTH_HARD_MAX || (h->flags & ~UDR__DELTA_STEP) || (h->version == 1 && h->flags))
		return udr__error_set(UDR_EINVAL, "invalid delta: version %d, %d bases, depth %d", h->version, h->nbases,
		                      h->depth);
	if (!(b = malloc(hdr + flen)))
		return udr__error_oom();
	memcpy(b, "UDRD", 4);
	b[4] = (unsigned char)h->version;
	b[5] = (unsigned char)h->depth;
	b[6] = (unsigned char)(h->version == 1 ? 0 : h->nbases);
	b[7] = (unsigned char)h->flags;
	udr__put_le32(b + 8, h->raw_size);
	for (int i = 0; i < h->nbases; i++)
		memcpy(b + 12 + (size_t)i * UDR_HASH_SIZE, h->bases[i].bytes, UDR_HASH_SIZE);
	memcpy(b + hdr, frame, flen);
	*out = b;
	*out_len = hdr + flen;
	return 0;
}

/* ---- pieces ------------------------------------------------------------------ */

static int piece_load_any(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                          uint64_t expect, bool verify, int max_depth, udr__bcache *cache, bool *stale);

/* Base h of a delta of depth `below` (whose name is hex), from the cache or
 * decoded into it; lent. */
static int base_get(udr__bref **out, int *depth, udr_store *s, const udr_hash *h, int below, bool verify,
                    udr__bcache *cache, const char *hex, bool *stale)
{
	char bhex[UDR_HASH_HEXSIZE + 1];
	unsigned char *b = NULL;
	size_t bl = 0;
	int rc;
	udr_hash_tohex(bhex, h);
	if ((*out = bcache_get(cache, h, verify, depth, NULL))) {
		if (*depth < below)
			return 0;
		udr__bref_release(cache, *out);
		*out = NULL;
		return udr__error_set(UDR_ECORRUPT, "chunk %s: its delta base %s is not shallower (depth %d, not below %d)",
		                      hex, bhex, *depth, below);
	}
	/* the base must be shallower: damaged chains cannot loop */
	rc = piece_load_any(&b, &bl, depth, s, h, UINT64_MAX, verify, below, cache, stale);
	if (rc < 0) {
		/* a missing base is damage of the delta, unless the packs changed
		 * under this read (piece_load_depth looks again, once) */
		if (rc == UDR_ENOTFOUND)
			*stale = true;
		return udr__error_set(rc == UDR_ENOTFOUND ? UDR_ECORRUPT : rc, "chunk %s: its delta base %s: %s", hex, bhex,
		                      udr_error_last()->message);
	}
	if (!(*out = bcache_put(cache, h, b, bl, *depth, verify, true)))
		return UDR_ENOMEM;
	return 0;
}

/* The delta's bases, decoded (from the cache when there), concatenated into
 * *prefix (malloc'd) or, for one base, lent as *one. */
static int delta_prefix(unsigned char **prefix, size_t *plen, udr__bref **one, udr_store *s, const udr__delta_hdr *dh,
                        bool verify, udr__bcache *cache, const char *hex, bool *stale)
{
	udr__bref *b[UDR__DELTA_BASES_MAX] = {NULL};
	size_t total = 0;
	int rc = 0;
	*prefix = NULL;
	*plen = 0;
	*one = NULL;
	for (int i = 0; i < dh->nbases && rc == 0; i++) {
		int bdepth = 0;
		if ((rc = base_get(&b[i], &bdepth, s, &dh->bases[i], dh->depth, verify, cache, hex, stale)) == 0 &&
		    b[i]->len > UDR__DELTA_PREFIX_MAX - total)
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s: its delta bases exceed %zu bytes", hex,
			                    UDR__DELTA_PREFIX_MAX);
		if (rc == 0)
			total += b[i]->len;
	}
	if (rc == 0 && dh->nbases == 1) {
		*one = b[0];
		*plen = total;
		return 0;
	}
	if (rc == 0 && !(*prefix = pool_take(cache, total ? total : 1)))
		rc = udr__error_oom();
	for (int i = 0; i < dh->nbases; i++) {
		if (rc == 0) {
			memcpy(*prefix + *plen, b[i]->data, b[i]->len);
			*plen += b[i]->len;
		}
		udr__bref_release(cache, b[i]);
	}
	if (rc < 0) {
		pool_give(cache, *prefix);
		*prefix = NULL;
	}
	return rc;
}

/* Load copy number `copy` of piece h (see piece_load_depth); *stale set when
 * the copy or a delta base below it was not found where it was looked for. */
static int piece_load_copy(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                           uint64_t expect, bool verify, int max_depth, udr__bcache *cache, unsigned copy,
                           bool *stale)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	enum udr__kind kind;
	udr__loc loc;
	unsigned char *raw = NULL, *dec = NULL, *base = NULL;
	size_t rawlen = 0, declen = 0, baselen = 0;
	bool big;
	int rc, d = 0;
	udr_hash_tohex(hex, h);
	if ((rc = udr__obj_find(&loc, s, h, copy, true)) < 0)
		return rc;
	kind = loc.kind;
	big = kind == UDR__K_RAW && !loc.pack && (uint64_t)loc.st.st_size > UDR__PIECE_HARD_MAX;
	udr__loc_free(&loc);
	if (kind == UDR__K_NONE)
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	if (kind == UDR__K_MANIFEST)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: a manifest where a piece was expected", hex);
	if (big)
		return udr__error_set(UDR_EINVAL, "chunk %s: too large to decode in memory", hex);
	if ((rc = udr__obj_read(&raw, &rawlen, &kind, s, h, UDR__PIECE_HARD_MAX + 4096, copy)) < 0) {
		if (rc == UDR_ENOTFOUND)
			*stale = true; /* found, then gone: repacked away meanwhile */
		return rc;
	}
	switch (kind) {
	case UDR__K_NONE:
	case UDR__K_MANIFEST:
		free(raw);
		return udr__error_set(UDR_ECORRUPT, "chunk %s: a manifest where a piece was expected", hex);
	case UDR__K_RAW:
		if (rawlen > UDR__PIECE_HARD_MAX) {
			free(raw);
			return udr__error_set(UDR_ECORRUPT, "chunk %s: object larger than any valid one", hex);
		}
		dec = raw;
		declen = rawlen;
		break;
	case UDR__K_ZST:
		rc = zstd_decompress(&dec, &declen, raw, rawlen, NULL, 0, hex, cache);
		free(raw);
		if (rc < 0)
			return rc;
		break;
	case UDR__K_DELTA: {
		udr__delta_hdr dh;
		udr__bref *one = NULL;
		if ((rc = udr__delta_parse(&dh, raw, rawlen, hex)) < 0) {
			free(raw);
			return rc;
		}
		d = dh.depth;
		if (d >= max_depth) {
			free(raw);
			return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header (depth %d, not below %d)", hex, d,
			                      max_depth);
		}
		if ((rc = delta_prefix(&base, &baselen, &one, s, &dh, verify, cache, hex, stale)) < 0) {
			free(raw);
			return rc;
		}
		rc = zstd_decompress(&dec, &declen, raw + dh.frame, rawlen - dh.frame, one ? one->data : base, baselen,
		                     hex, cache);
		if (rc == 0 && declen != dh.raw_size)
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s: delta decodes to the wrong size", hex);
		free(raw);
		pool_give(cache, base);
		udr__bref_release(cache, one);
		if (rc < 0) {
			free(dec);
			return rc;
		}
		break;
	}
	}
	if ((rc = bcache_charge(cache, declen, hex)) < 0 ||
	    (expect != UINT64_MAX && declen != expect &&
	     (rc = udr__error_set(UDR_ECORRUPT, "chunk %s: has %zu bytes, expected %llu", hex, declen,
	                          (unsigned long long)expect)) < 0) ||
	    (verify && (rc = check_hash(dec, declen, h)) < 0)) {
		free(dec);
		return rc;
	}
	*out = dec;
	*out_len = declen;
	if (depth)
		*depth = d;
	return 0;
}

/* A piece from the first copy that decodes; a damaged copy gives way to the
 * next one (duplicates in packs or loose files are legal), and the first
 * damage is reported when none is good.  *stale as piece_load_copy's, for
 * any copy. */
static int piece_load_any(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                          uint64_t expect, bool verify, int max_depth, udr__bcache *cache, bool *stale)
{
	struct first_err f = {0, ""};
	for (unsigned copy = 0;; copy++) {
		int rc = piece_load_copy(out, out_len, depth, s, h, expect, verify, max_depth, cache, copy, stale);
		if (rc == 0)
			return 0;
		if (rc == UDR_ENOTFOUND && f.rc)
			return first_report(&f);
		if (rc != UDR_ECORRUPT && rc != UDR_EIO)
			return rc;
		first_keep(&f, rc);
	}
}

/*
 * piece_load_any, and once more from copy 0 after packs/ is read again when
 * it failed on something not found: a copy or delta base looked for in a
 * pack list that a repack in another process made stale (the pieces moved
 * to a new pack, the old packs and indexes removed; a listing overlapping
 * that can miss both).  Once: a base missing for good stays damage of the
 * delta (UDR_ECORRUPT naming it), and damaged bytes fail again as they did.
 */
static int piece_load_depth(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                            uint64_t expect, bool verify, int max_depth, udr__bcache *cache)
{
	bool stale = false;
	int rc = piece_load_any(out, out_len, depth, s, h, expect, verify, max_depth, cache, &stale);
	if (rc == 0 || !(stale || rc == UDR_ENOTFOUND) || !s->packs)
		return rc;
	__atomic_fetch_add(&udr__packs_restarts, 1, __ATOMIC_RELAXED);
	udr_error_clear();
	if ((rc = udr__packset_scan(s)) < 0)
		return rc;
	stale = false;
	return piece_load_any(out, out_len, depth, s, h, expect, verify, max_depth, cache, &stale);
}

int udr__piece_load_c(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                      uint64_t expect, bool verify, udr__bcache *cache)
{
	udr__bcache *own = NULL;
	int rc;
	if (!cache && !(cache = own = udr__bcache_new(udr__bcache_cap(s),
	                                               udr__decode_budget(s, expect != UINT64_MAX ? expect : 0))))
		return UDR_ENOMEM;
	int d = 0;
	if (!depth)
		depth = &d;
	rc = piece_load_depth(out, out_len, depth, s, h, expect, verify, UDR__DELTA_DEPTH_HARD_MAX + 1, cache);
	if (rc == 0 && verify && cache->finals && *out_len <= cache->cap / 4) {
		/* the next content's delta bases, most often (fsck's walk) */
		unsigned char *copy = pool_take(cache, *out_len ? *out_len : 1);
		udr__bref *x;
		if (copy) {
			memcpy(copy, *out, *out_len);
			if ((x = bcache_put(cache, h, copy, *out_len, *depth, true, false)) != NULL)
				udr__bref_release(cache, x);
		}
		udr_error_clear(); /* a cache only */
	}
	udr__bcache_free(own);
	return rc;
}

void udr__bcache_finals(udr__bcache *c)
{
	c->finals = true;
}

void udr__bcache_handoff(udr__bcache *c, udr__bcache *to)
{
	c->handoff = to;
}

/* A copy of base b (h, checked) for the cache a put hands to the next read. */
static void handoff_note(udr__bcache *c, const udr_hash *h, const udr__bref *b, int depth)
{
	udr__bcache *t = c->handoff;
	udr__bref *x;
	unsigned char *copy;
	int d;
	if (!t || b->len > t->cap / 4)
		return;
	if ((x = bcache_get(t, h, true, &d, NULL)) != NULL) {
		udr__bref_release(t, x);
		return;
	}
	if (!(copy = malloc(b->len ? b->len : 1)))
		return; /* a cache only */
	memcpy(copy, b->data, b->len);
	if ((x = bcache_put(t, h, copy, b->len, depth, true, false)) != NULL)
		udr__bref_release(t, x);
	else
		udr_error_clear();
}

int udr__base_load(const udr__bref **out, int *depth, udr_store *s, const udr_hash *h, udr__bcache *cache)
{
	unsigned char *d = NULL;
	size_t len = 0;
	bool verified = false;
	int rc;
	if ((*out = bcache_get(cache, h, false, depth, &verified))) {
		if (verified || (rc = check_hash((*out)->data, (*out)->len, h)) == 0) {
			handoff_note(cache, h, *out, *depth);
			return 0; /* (a piece checked twice is harmless) */
		}
		udr__bref_release(cache, *out);
		*out = NULL;
		return rc;
	}
	/* The chain below it is decoded without rehashing each level: damage
	 * anywhere in it changes these bytes, which are checked against h (a
	 * reader rehashes every level, to name the damaged piece). */
	rc = piece_load_depth(&d, &len, depth, s, h, UINT64_MAX, false, UDR__DELTA_DEPTH_HARD_MAX + 1, cache);
	if (rc == 0 && (rc = check_hash(d, len, h)) < 0)
		free(d);
	if (rc == 0 && !(*out = bcache_put(cache, h, d, len, *depth, true, false)))
		rc = UDR_ENOMEM;
	if (rc == 0)
		handoff_note(cache, h, *out, *depth);
	return rc;
}

int udr__piece_load(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                    uint64_t expect, bool verify)
{
	return udr__piece_load_c(out, out_len, depth, s, h, expect, verify, NULL);
}

/* ---- whole contents ------------------------------------------------------ */

static int stream_raw(udr_store *s, const udr_hash *h, const struct stat *st, const char *path, bool verify,
                      udr__sink sink, void *payload)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	const size_t bufsz = (size_t)1 << 20;
	udr_hasher *hs = NULL;
	unsigned char *buf = NULL;
	size_t total_len = 0;
	uint64_t total = 0;
	int fd, rc = 0;
	udr_hash_tohex(hex, h);
	if (verify && (uint64_t)st->st_size <= UDR__RAW_VERIFY_WHOLE_MAX) {
		/* read and verify it whole: damaged bytes never reach the sink */
		if ((rc = udr__raw_load(&buf, &total_len, s, h, UDR__RAW_VERIFY_WHOLE_MAX, true)) < 0)
			return rc;
		rc = sink(buf, total_len, payload);
		free(buf);
		return rc;
	}
	if ((fd = UDR_IO->open(path, O_RDONLY, 0)) < 0)
		return udr__error_os(errno, "cannot open chunk %s", hex);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (!(buf = malloc(bufsz)) || (verify && udr_hasher_new(&hs) < 0)) {
		rc = udr__error_oom();
		goto done;
	}
	for (;;) {
		ssize_t n = UDR_IO->read(fd, buf, bufsz);
		if (n < 0) {
			rc = udr__error_io(errno, "read of chunk %s failed", hex);
			goto done;
		}
		if (n == 0)
			break;
		if (hs)
			udr_hasher_update(hs, buf, (size_t)n);
		if ((rc = sink(buf, (size_t)n, payload)) < 0)
			goto done;
		total += (uint64_t)n;
	}
	if (total != (uint64_t)st->st_size) {
		rc = udr__error_set(UDR_ECORRUPT, "chunk %s: file changed size while read", hex);
	} else if (hs) {
		udr_hash a;
		udr_hasher_final(hs, &a);
		if (!udr_hash_equal(&a, h)) {
			char ahex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(ahex, &a);
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: its content hashes to %s", hex, ahex);
		}
	}
done:
	UDR_IO->close(fd);
	free(buf);
	udr_hasher_free(hs);
	return rc;
}

/*
 * Read-ahead: up to `window` pieces after the oldest one not yet consumed are
 * decoded by worker threads; the caller's thread emits them in order.  When
 * the read is verified, a hasher thread hashes the whole content in order
 * beside the emitting thread (the sink's writes and the content hash overlap
 * instead of taking turns on one thread).  A slot is freed by the last of the
 * two to consume it.  Memory stays bounded by window x piece size.
 */
struct ra_slot {
	uint64_t index;  /* piece held, UINT64_MAX when free */
	unsigned char *data;
	size_t len;
	int rc;
	char msg[512];
	bool ready;
	bool emitted; /* the emitting thread is done with it */
	bool hashed;  /* the hasher is done with it (or there is no hasher) */
};

struct readahead {
	udr_store *s;
	const udr__manifest *m;
	bool verify;
	udr__bcache *cache; /* decoded delta bases, shared by the whole read */
	pthread_mutex_t mu;
	pthread_cond_t cv_ready;  /* the piece the emitting thread waits for is decoded */
	pthread_cond_t cv_hready; /* the piece the hasher waits for is decoded */
	pthread_cond_t cv_window; /* the window moved: a worker may take the next piece */
	uint64_t waiting;  /* the piece the emitting thread waits for, UINT64_MAX: none */
	uint64_t hwaiting; /* the piece the hasher waits for, UINT64_MAX: none */
	size_t idle;       /* workers waiting for the window */
	uint64_t next;     /* next piece to hand to a worker */
	uint64_t emitted;  /* pieces emitted so far */
	uint64_t hashed;   /* pieces hashed so far (= emitted without a hasher) */
	size_t window;
	struct ra_slot *slots;
	udr_hasher *hs; /* the hasher thread's; NULL: no hasher thread */
	bool stop;
};

static void *ra_worker(void *arg)
{
	struct readahead *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		uint64_t i;
		struct ra_slot *sl;
		unsigned char *d = NULL;
		size_t dl = 0;
		int rc;
		while (!r->stop && r->next < r->m->npieces &&
		       r->next >= (r->emitted < r->hashed ? r->emitted : r->hashed) + r->window) {
			r->idle++;
			pthread_cond_wait(&r->cv_window, &r->mu);
			r->idle--;
		}
		if (r->stop || r->next >= r->m->npieces)
			break;
		i = r->next++;
		pthread_mutex_unlock(&r->mu);
		rc = udr__piece_load_c(&d, &dl, NULL, r->s, &r->m->pieces[i].hash, r->m->pieces[i].size, r->verify,
		                       r->cache);
		pthread_mutex_lock(&r->mu);
		sl = &r->slots[i % r->window];
		sl->index = i;
		sl->data = d;
		sl->len = dl;
		sl->rc = rc;
		if (rc < 0)
			snprintf(sl->msg, sizeof(sl->msg), "%s", udr_error_last()->message);
		sl->ready = true;
		sl->emitted = false;
		sl->hashed = r->hs == NULL;
		/* wake a consumer only for the piece it waits for */
		if (r->waiting == i)
			pthread_cond_signal(&r->cv_ready);
		if (r->hwaiting == i)
			pthread_cond_signal(&r->cv_hready);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* One consumer is done with piece i (under r->mu): the last one frees its
 * slot and moves the window. */
static void ra_consumed(struct readahead *r, struct ra_slot *sl, bool hasher)
{
	uint64_t before = r->emitted < r->hashed ? r->emitted : r->hashed;
	if (hasher) {
		sl->hashed = true;
		r->hashed = sl->index + 1;
	} else {
		sl->emitted = true;
		r->emitted = sl->index + 1;
		if (!r->hs)
			r->hashed = r->emitted;
	}
	if (sl->emitted && sl->hashed) {
		free(sl->data);
		sl->data = NULL;
		sl->ready = false;
		sl->index = UINT64_MAX;
	}
	if ((r->emitted < r->hashed ? r->emitted : r->hashed) != before && r->idle)
		pthread_cond_signal(&r->cv_window); /* the window moved by one piece: one worker */
}

/* Hashes the whole content in order; stops at the first piece that failed
 * to load (the emitting thread reports it) or when told to stop. */
static void *ra_hasher(void *arg)
{
	struct readahead *r = arg;
	pthread_mutex_lock(&r->mu);
	for (uint64_t i = 0; i < r->m->npieces; i++) {
		struct ra_slot *sl = &r->slots[i % r->window];
		while (!r->stop && !(sl->ready && sl->index == i)) {
			r->hwaiting = i;
			pthread_cond_wait(&r->cv_hready, &r->mu);
		}
		r->hwaiting = UINT64_MAX;
		if (r->stop || sl->rc < 0)
			break;
		pthread_mutex_unlock(&r->mu);
		udr_hasher_update(r->hs, sl->data, sl->len);
		pthread_mutex_lock(&r->mu);
		ra_consumed(r, sl, true);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static int stream_manifest(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload,
                           udr__bcache *shared)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__manifest m;
	udr_hasher *hs = NULL;
	struct readahead r;
	pthread_t tids[16], htid;
	int nthreads = 0, rc;
	bool hasher = false;
	udr_hash_tohex(hex, h);
	if ((rc = udr__manifest_load(&m, s, h)) < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	if (verify && (rc = udr_hasher_new(&hs)) < 0)
		goto done;
	r.s = s;
	r.m = &m;
	r.verify = verify;
	r.window = (size_t)(s->threads > 1 ? s->threads * 4 : 1);
	/* the caller's cache (kept), or a put's decoded pieces, when it left
	 * them: often this content's bases */
	if (shared)
		udr__bcache_budget(r.cache = shared, udr__decode_budget(s, m.total));
	else if ((r.cache = udr__bcache_take(s)) != NULL)
		udr__bcache_budget(r.cache, udr__decode_budget(s, m.total));
	if ((!r.cache && !(r.cache = udr__bcache_new(udr__bcache_cap(s), udr__decode_budget(s, m.total)))) ||
	    !(r.slots = calloc(r.window, sizeof(*r.slots)))) {
		rc = udr__error_oom();
		goto done;
	}
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv_ready, NULL);
	pthread_cond_init(&r.cv_hready, NULL);
	pthread_cond_init(&r.cv_window, NULL);
	r.waiting = UINT64_MAX;
	r.hwaiting = UINT64_MAX;
	if (s->threads > 1 && m.npieces > 1) {
		/* the hasher first: the workers read r.hs */
		r.hs = hs;
		if (hs && pthread_create(&htid, NULL, ra_hasher, &r) == 0)
			hasher = true;
		else
			r.hs = NULL;
		for (int i = 0; i < s->threads && i < 16; i++)
			if (pthread_create(&tids[nthreads], NULL, ra_worker, &r) == 0)
				nthreads++;
		if (!nthreads && hasher) { /* nothing will decode: no pieces to hash either */
			pthread_mutex_lock(&r.mu);
			r.stop = true;
			pthread_cond_broadcast(&r.cv_hready);
			pthread_mutex_unlock(&r.mu);
			pthread_join(htid, NULL);
			r.hs = NULL;
			hasher = false;
		}
	}
	for (uint64_t i = 0; i < m.npieces; i++) {
		struct ra_slot *sl = NULL;
		unsigned char *d = NULL;
		size_t dl = 0;
		if (nthreads) {
			sl = &r.slots[i % r.window];
			pthread_mutex_lock(&r.mu);
			while (!(sl->ready && sl->index == i)) {
				r.waiting = i;
				pthread_cond_wait(&r.cv_ready, &r.mu);
			}
			r.waiting = UINT64_MAX;
			d = sl->data;
			dl = sl->len;
			rc = sl->rc;
			if (rc < 0)
				udr__error_set(rc, "%s", sl->msg);
			pthread_mutex_unlock(&r.mu);
		} else {
			rc = udr__piece_load_c(&d, &dl, NULL, s, &m.pieces[i].hash, m.pieces[i].size, verify, r.cache);
		}
		if (rc < 0) {
			rc = udr__error_set(rc == UDR_ENOTFOUND ? UDR_ECORRUPT : rc, "content %s, piece %llu of %llu: %s", hex,
			                    (unsigned long long)i + 1, (unsigned long long)m.npieces, udr_error_last()->message);
			if (!sl)
				free(d);
			break;
		}
		if (hs && !hasher)
			udr_hasher_update(hs, d, dl);
		rc = sink(d, dl, payload);
		if (sl) {
			pthread_mutex_lock(&r.mu);
			ra_consumed(&r, sl, false);
			pthread_mutex_unlock(&r.mu);
		} else {
			free(d);
		}
		if (rc < 0)
			break;
	}
	if (nthreads) {
		pthread_mutex_lock(&r.mu);
		if (rc < 0) /* the hasher stops too; otherwise it hashes every piece */
			r.stop = true;
		pthread_cond_broadcast(&r.cv_hready);
		pthread_mutex_unlock(&r.mu);
		if (hasher)
			pthread_join(htid, NULL);
		pthread_mutex_lock(&r.mu);
		r.stop = true;
		pthread_cond_broadcast(&r.cv_window);
		pthread_mutex_unlock(&r.mu);
		for (int i = 0; i < nthreads; i++)
			pthread_join(tids[i], NULL);
		for (size_t i = 0; i < r.window; i++)
			free(r.slots[i].data);
	}
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv_ready);
	pthread_cond_destroy(&r.cv_hready);
	pthread_cond_destroy(&r.cv_window);
	if (rc == 0 && hs) {
		udr_hash a;
		udr_hasher_final(hs, &a);
		if (!udr_hash_equal(&a, h))
			rc = udr__error_set(UDR_ECORRUPT, "content %s is corrupt: its pieces hash to something else", hex);
	}
done:
	free(r.slots);
	if (r.cache != shared)
		udr__bcache_free(r.cache);
	udr_hasher_free(hs);
	udr__manifest_free(&m);
	return rc;
}

static int content_stream_copy(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload,
                               unsigned copy, udr__bcache *cache)
{
	udr__loc loc;
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char *d = NULL;
	size_t dl;
	int rc;
	if ((rc = udr__obj_find(&loc, s, h, copy, true)) < 0)
		return rc;
	udr_hash_tohex(hex, h);
	if (loc.kind == UDR__K_NONE) {
		rc = udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	} else if (loc.kind == UDR__K_RAW && !loc.pack) {
		/* a loose raw object may be larger than any piece: streamed */
		rc = stream_raw(s, h, &loc.st, loc.path, verify, sink, payload);
	} else if (loc.kind == UDR__K_MANIFEST) {
		rc = stream_manifest(s, h, verify, sink, payload, cache);
	} else {
		if ((rc = udr__piece_load_c(&d, &dl, NULL, s, h, UINT64_MAX, verify, cache)) == 0)
			rc = sink(d, dl, payload);
		free(d);
	}
	udr__loc_free(&loc);
	return rc;
}

struct counted {
	udr__sink sink;
	void *payload;
	uint64_t n;
};

static int counted_sink(const void *d, size_t n, void *payload)
{
	struct counted *c = payload;
	c->n += n;
	return c->sink(d, n, c->payload);
}

/* fn on copy 0, and while a copy is damaged (UDR_ECORRUPT) and nothing went
 * out yet (*emitted, NULL: nothing goes out), on the next ones: a damaged
 * index record that names another kind or place must not hide a good copy
 * (FORMAT.md, multi-pack index).  The first copy's error when none serves. */
static int first_intact(int (*fn)(void *arg, unsigned copy), void *arg, const uint64_t *emitted)
{
	char first[512];
	int rc = fn(arg, 0);
	if (rc != UDR_ECORRUPT || (emitted && *emitted > 0))
		return rc;
	snprintf(first, sizeof(first), "%s", udr_error_last()->message);
	for (unsigned copy = 1; copy < 64 && !(emitted && *emitted > 0); copy++) {
		udr_error_clear();
		if ((rc = fn(arg, copy)) == 0)
			return 0;
		if (rc != UDR_ECORRUPT)
			break; /* no such copy (not found), or an I/O error */
	}
	return udr__error_set(UDR_ECORRUPT, "%s", first);
}

struct stream_args {
	udr_store *s;
	const udr_hash *h;
	bool verify;
	udr__bcache *cache;
	struct counted c;
};

static int stream_one(void *arg, unsigned copy)
{
	struct stream_args *a = arg;
	return content_stream_copy(a->s, a->h, a->verify, counted_sink, &a->c, copy, a->cache);
}

int udr__content_stream_c(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload,
                          udr__bcache *cache)
{
	struct stream_args a = {s, h, verify, cache, {sink, payload, 0}};
	return first_intact(stream_one, &a, &a.c.n);
}

int udr__content_stream(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload)
{
	return udr__content_stream_c(s, h, verify, sink, payload, NULL);
}

struct cmp_state {
	const unsigned char *data;
	size_t len, off;
	const char *hex;
};

static int cmp_sink(const void *d, size_t n, void *payload)
{
	struct cmp_state *c = payload;
	if (n > c->len - c->off || memcmp(c->data + c->off, d, n) != 0)
		return udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: it does not decode to its content", c->hex);
	c->off += n;
	return 0;
}

int udr__content_check(udr_store *s, const udr_hash *h, const void *data, size_t len)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct cmp_state c = {data, len, 0, hex};
	int rc;
	udr_hash_tohex(hex, h);
	/* compared with the true bytes, no need to rehash */
	if ((rc = udr__content_stream(s, h, false, cmp_sink, &c)) < 0)
		return rc;
	if (c.off != len)
		return udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: it decodes to %zu bytes, not %zu", hex, c.off,
		                      len);
	return 0;
}

static int content_size_copy(uint64_t *out, udr_store *s, const udr_hash *h, unsigned copy)
{
	enum udr__kind kind;
	udr__loc loc;
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char hdr[MANIFEST_HDR];
	size_t got = 0;
	int fd, rc;
	if ((rc = udr__obj_find(&loc, s, h, copy, true)) < 0)
		return rc;
	udr_hash_tohex(hex, h);
	if (loc.kind == UDR__K_NONE)
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	if (loc.kind == UDR__K_MANIFEST) {
		udr__manifest m;
		udr__loc_free(&loc);
		if ((rc = udr__manifest_load(&m, s, h)) < 0)
			return rc;
		*out = m.total;
		udr__manifest_free(&m);
		return 0;
	}
	if (loc.pack) {
		/* a pack repacked away since it was found: look again (bounded) */
		for (int attempt = 0; (rc = udr__loc_raw_size(out, s, &loc, h)) == UDR_ENOTFOUND && attempt < 64;
		     attempt++) {
			udr__loc_free(&loc);
			udr_error_clear();
			if ((rc = udr__obj_find(&loc, s, h, copy, true)) < 0)
				return rc;
			if (loc.kind == UDR__K_NONE)
				return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
			if (!loc.pack || loc.kind == UDR__K_MANIFEST) {
				udr__loc_free(&loc);
				return content_size_copy(out, s, h, copy);
			}
		}
		udr__loc_free(&loc);
		return rc;
	}
	if (loc.kind == UDR__K_RAW) {
		*out = (uint64_t)loc.st.st_size;
		udr__loc_free(&loc);
		return 0;
	}
	kind = loc.kind;
	fd = UDR_IO->open(loc.path, O_RDONLY, 0);
	udr__loc_free(&loc);
	if (fd < 0)
		return udr__error_os(errno, "cannot open chunk %s", hex);
	rc = udr__read_full(fd, hdr, sizeof(hdr), &got, hex);
	UDR_IO->close(fd);
	if (rc < 0)
		return rc;
	if (kind == UDR__K_DELTA) {
		/* the fixed part; the bases are checked when the delta is decoded */
		if (got < 12 || memcmp(hdr, "UDRD", 4) != 0 || (hdr[4] != 1 && hdr[4] != 2))
			return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged delta header", hex);
		*out = udr__get_le32(hdr + 8);
	} else {
		unsigned long long n = ZSTD_getFrameContentSize(hdr, got);
		if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN)
			return udr__error_set(UDR_ECORRUPT, "chunk %s: damaged zstd frame (bad header)", hex);
		*out = n;
	}
	return 0;
}

struct size_args {
	uint64_t *out;
	udr_store *s;
	const udr_hash *h;
};

static int size_one(void *arg, unsigned copy)
{
	struct size_args *a = arg;
	return content_size_copy(a->out, a->s, a->h, copy);
}

/* The size from the first copy whose header is intact. */
int udr__content_size(uint64_t *out, udr_store *s, const udr_hash *h)
{
	struct size_args a = {out, s, h};
	return first_intact(size_one, &a, NULL);
}
