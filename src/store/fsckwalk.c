/*
 * fsckwalk.c - fsck's pass over every chunked content, in delta order.
 *
 * A content is checked by decoding every piece and hashing the whole.  Most
 * pieces of a versioned table are deltas whose bases are the pieces of the
 * version before, in chains up to the depth limit (50) long.  Checked one by
 * one, in hash order, each with a fresh cache, every content decoded every
 * chain from its start: on bench_gc.sh's 1,000-version store that was some
 * 470,000 pieces x 25 steps, and fsck took 40-58 minutes.
 *
 * Here the contents are checked in an order where each one's pieces are, as
 * far as can be told, the delta bases of the next one's (a content follows
 * the content that holds the first base of its first delta piece), through
 * one cache large enough for two contents: each piece is then decoded from
 * bases already decoded and verified, once or twice, whatever the depth.  A
 * content that checks out vouches for its pieces (each was rehashed against
 * the hash its manifest lists), which fsck's walk over every object then
 * does not decode again.  A content that fails is left to that walk, which
 * checks and reports it as before.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"

/* ---- a set of hashes, and a map hash -> index ------------------------------ */

struct udr__verified {
	udr_hash *h; /* open addressing, linear probing; all zero: empty */
	uint32_t *val;
	size_t mask, n;
};

static bool is_zero(const udr_hash *h)
{
	for (size_t i = 0; i < UDR_HASH_SIZE; i++)
		if (h->bytes[i])
			return false;
	return true;
}

static size_t slot_of(const struct udr__verified *v, const udr_hash *h)
{
	uint64_t x;
	size_t k;
	memcpy(&x, h->bytes + 8, sizeof(x));
	for (k = (size_t)x & v->mask; !is_zero(&v->h[k]) && !udr_hash_equal(&v->h[k], h); k = (k + 1) & v->mask)
		;
	return k;
}

static int set_grow(struct udr__verified *v)
{
	struct udr__verified w;
	size_t slots = v->mask ? (v->mask + 1) * 2 : 1024;
	w.mask = slots - 1;
	w.n = v->n;
	w.h = calloc(slots, sizeof(*w.h));
	w.val = calloc(slots, sizeof(*w.val));
	if (!w.h || !w.val) {
		free(w.h);
		free(w.val);
		return udr__error_oom();
	}
	for (size_t i = 0; v->mask && i <= v->mask; i++) {
		if (!is_zero(&v->h[i])) {
			size_t k = slot_of(&w, &v->h[i]);
			w.h[k] = v->h[i];
			w.val[k] = v->val[i];
		}
	}
	free(v->h);
	free(v->val);
	*v = w;
	return 0;
}

/* Add h with value val; a hash already there keeps its first value.  The
 * all-zero hash is never added (it marks empty slots; no content has it). */
static int set_add(struct udr__verified *v, const udr_hash *h, uint32_t val)
{
	size_t k;
	int rc;
	if (is_zero(h))
		return 0;
	if ((v->n + 1) * 2 > (v->mask ? v->mask + 1 : 0) && (rc = set_grow(v)) < 0)
		return rc;
	k = slot_of(v, h);
	if (is_zero(&v->h[k])) {
		v->h[k] = *h;
		v->val[k] = val;
		v->n++;
	}
	return 0;
}

/* h's value, or UINT32_MAX when h is not in the set. */
static uint32_t set_get(const struct udr__verified *v, const udr_hash *h)
{
	size_t k;
	if (!v || !v->mask || is_zero(h))
		return UINT32_MAX;
	k = slot_of(v, h);
	return is_zero(&v->h[k]) ? UINT32_MAX : v->val[k];
}

bool udr__verified_has(const udr__verified *v, const udr_hash *h)
{
	return set_get(v, h) != UINT32_MAX;
}

void udr__verified_free(udr__verified *v)
{
	if (!v)
		return;
	free(v->h);
	free(v->val);
	free(v);
}

/* ---- the contents, and their order ----------------------------------------- */

struct contents {
	udr_hash *h;
	size_t n, cap;
};

static int collect(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct contents *c = payload;
	if (l->kind != UDR__K_MANIFEST)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		udr_hash *x = realloc(c->h, cap * sizeof(*x));
		if (!x)
			return udr__error_oom();
		c->h = x;
		c->cap = cap;
	}
	c->h[c->n++] = *h;
	return 0;
}

static int no_stray(const char *path, void *payload)
{
	(void)path;
	(void)payload;
	return 0; /* reported by fsck's own walk */
}

/* How many leading pieces of a content are looked at for a delta (a piece
 * stored whole, at a chain's start, names no base). */
#define PARENT_PROBES 32

/*
 * order[0..n): the contents, each after the one holding the first base of
 * its first delta piece (depth first from contents that have none; a cycle,
 * which only damage could make, is broken where it is met).  *largest: the
 * size of the largest content another one follows (0: none does, no
 * content's pieces are another's bases).  A content whose manifest cannot
 * be read has no
 * parent and no children: fsck's walk reports it.
 */
static int order_contents(uint32_t *order, uint64_t *largest, udr_store *s, const struct contents *cs)
{
	struct udr__verified owner = {NULL, NULL, 0, 0};
	uint32_t *parent = NULL, *first = NULL, *next = NULL, *stack = NULL;
	uint64_t *total = NULL;
	bool *seen = NULL;
	size_t n = cs->n, k = 0;
	int rc = 0;
	*largest = 0;
	if (!(parent = malloc((n ? n : 1) * sizeof(*parent))) || !(first = malloc((n ? n : 1) * sizeof(*first))) ||
	    !(next = malloc((n ? n : 1) * sizeof(*next))) || !(stack = malloc((n ? n : 1) * sizeof(*stack))) ||
	    !(seen = calloc(n ? n : 1, sizeof(*seen))) || !(total = calloc(n ? n : 1, sizeof(*total)))) {
		rc = udr__error_oom();
		goto done;
	}
	/* which content holds each piece (the first listed, when several do) */
	for (size_t i = 0; i < n && rc == 0; i++) {
		udr__manifest m;
		if (udr__manifest_load(&m, s, &cs->h[i]) < 0) {
			udr_error_clear();
			continue;
		}
		total[i] = m.total;
		for (uint64_t j = 0; j < m.npieces && rc == 0; j++)
			rc = set_add(&owner, &m.pieces[j].hash, (uint32_t)i);
		udr__manifest_free(&m);
	}
	if (rc < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		parent[i] = UINT32_MAX;
		first[i] = UINT32_MAX;
	}
	/* (each manifest read again: a few leading pieces of every content
	 * kept from the first pass cost 1 KiB a content) */
	for (size_t i = 0; i < n; i++) {
		udr__manifest m;
		if (udr__manifest_load(&m, s, &cs->h[i]) < 0) {
			udr_error_clear();
			continue;
		}
		for (uint64_t j = 0; j < m.npieces && j < PARENT_PROBES; j++) {
			udr__delta_hdr dh;
			uint32_t p;
			if (udr__delta_peek(&dh, s, &m.pieces[j].hash) < 0) {
				udr_error_clear();
				continue;
			}
			if (dh.nbases < 1 || (p = set_get(&owner, &dh.bases[0])) == UINT32_MAX || p == i)
				continue;
			/* a step down at the depth limit names an older content than
			 * the one before: a later probe may do better */
			if (parent[i] == UINT32_MAX || !(dh.flags & UDR__DELTA_STEP))
				parent[i] = p;
			if (!(dh.flags & UDR__DELTA_STEP))
				break;
		}
		udr__manifest_free(&m);
	}
	/* children lists, in the order the contents were listed */
	for (size_t i = n; i-- > 0;) {
		if (parent[i] != UINT32_MAX) {
			next[i] = first[parent[i]];
			first[parent[i]] = (uint32_t)i;
			if (total[parent[i]] > *largest)
				*largest = total[parent[i]];
		}
	}
	/* depth first from each root, then from whatever a cycle left */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t r = 0; r < n; r++) {
			size_t sp = 0;
			if (seen[r] || (pass == 0 && parent[r] != UINT32_MAX))
				continue;
			stack[sp++] = (uint32_t)r;
			seen[r] = true;
			while (sp) {
				uint32_t i = stack[--sp];
				order[k++] = i;
				/* pushed in reverse: the first child comes out first */
				size_t base = sp;
				for (uint32_t ch = first[i]; ch != UINT32_MAX; ch = next[ch]) {
					if (seen[ch])
						continue;
					seen[ch] = true;
					stack[sp++] = ch;
				}
				for (size_t a = base, b = sp; a + 1 < b; a++, b--) {
					uint32_t t = stack[a];
					stack[a] = stack[b - 1];
					stack[b - 1] = t;
				}
			}
		}
	}
done:
	free(owner.h);
	free(owner.val);
	free(parent);
	free(first);
	free(next);
	free(stack);
	free(seen);
	free(total);
	return rc;
}

static int count_bytes(const void *d, size_t n, void *payload)
{
	(void)d;
	*(uint64_t *)payload += n;
	return 0;
}

size_t udr__fsck_cache_min = UDR__BCACHE_MAX;

/* Room for the pieces of two of the largest contents (the one being checked
 * and the one before, whose pieces are its bases) and some, within an
 * eighth of the memory, at least udr__fsck_cache_min. */
static size_t cache_size(uint64_t largest)
{
	uint64_t mem = udr__mem_limit();
	uint64_t want = largest * 5 / 2, cap = mem / 8;
	if (want > cap)
		want = cap;
	if (want < udr__fsck_cache_min)
		want = udr__fsck_cache_min;
	return want > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)want;
}

int udr__verify_contents(udr__verified **out, udr__bcache **cache, udr_store *s)
{
	struct contents cs = {NULL, 0, 0};
	udr__verified *v = NULL;
	uint32_t *order = NULL;
	uint64_t largest = 0;
	int rc;
	*out = NULL;
	*cache = NULL;
	if ((rc = udr__obj_foreach(s, false, collect, no_stray, &cs)) < 0)
		goto done;
	if (cs.n > UINT32_MAX - 1) {
		rc = 0; /* (never: 4 billion contents) checked one by one */
		goto done;
	}
	if (!(v = calloc(1, sizeof(*v))) || !(order = malloc((cs.n ? cs.n : 1) * sizeof(*order)))) {
		rc = udr__error_oom();
		goto done;
	}
	if ((rc = order_contents(order, &largest, s, &cs)) < 0)
		goto done;
	if (!(*cache = udr__bcache_new(cache_size(largest), 0))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	/* keeping what each read returns pays only when a content follows
	 * another (a store of unrelated files would fill the cache for none) */
	if (largest)
		udr__bcache_finals(*cache);
	for (size_t i = 0; i < cs.n && rc == 0; i++) {
		const udr_hash *h = &cs.h[order[i]];
		udr__manifest m;
		uint64_t got = 0;
		if (udr__manifest_load(&m, s, h) < 0) {
			udr_error_clear();
			continue;
		}
		udr__bcache_next_content(*cache);
		rc = udr__content_stream_c(s, h, true, count_bytes, &got, *cache);
		if (rc == 0 && got == m.total) {
			rc = set_add(v, h, 0);
			for (uint64_t j = 0; j < m.npieces && rc == 0; j++)
				rc = set_add(v, &m.pieces[j].hash, 0);
		} else if (rc != UDR_ENOMEM) {
			udr_error_clear(); /* fsck's walk checks it again and says what is wrong */
			rc = 0;
		}
		udr__manifest_free(&m);
	}
done:
	free(cs.h);
	free(order);
	if (rc < 0) {
		udr__verified_free(v);
		udr__bcache_free(*cache);
		*cache = NULL;
		return rc;
	}
	*out = v;
	return 0;
}
