/*
 * midx.c - the multi-pack index (docs/FORMAT.md, "Multi-pack index"): one
 * mapped file answering "which pack, which offset" for every object of the
 * packs it names, so that a lookup costs one fan-out step and one binary
 * search however many packs there are.  It is a cache: a store without one
 * (or with a stale or damaged one) reads the same, through each pack's index.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"

unsigned udr__midx_threshold = 8;
uint64_t udr__midx_small = 65536;

/* ---- layout --------------------------------------------------------------------- */

static size_t off_fan(uint32_t np)
{
	return UDR__MIDX_HDR + (size_t)np * UDR_HASH_SIZE;
}

static size_t off_hashes(uint32_t np)
{
	return off_fan(np) + UDR__IDX_FANOUT;
}

int udr__midx_parse(udr__midx *x, const unsigned char *p, size_t len, bool full, const char *what)
{
	uint64_t n, room;
	uint32_t np;
	const unsigned char *fan, *hs, *rec;
	memset(x, 0, sizeof(*x));
	if (len < UDR__MIDX_HDR + UDR__IDX_FANOUT + UDR_HASH_SIZE || memcmp(p, "UDRM", 4) != 0 || p[4] != 1 || p[5] ||
	    p[6] || p[7] || udr__get_le32(p + 12) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: bad header", what);
	np = udr__get_le32(p + 8);
	n = udr__get_le64(p + 16);
	if (np > UDR__MIDX_PACKS_MAX || (np == 0) != (n == 0) || n > UINT32_MAX)
		return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: bad header", what);
	room = len - UDR__MIDX_HDR - UDR__IDX_FANOUT - UDR_HASH_SIZE;
	if ((uint64_t)np * UDR_HASH_SIZE > room ||
	    n > (room - (uint64_t)np * UDR_HASH_SIZE) / (UDR_HASH_SIZE + UDR__MIDX_REC) ||
	    off_hashes(np) + n * (UDR_HASH_SIZE + UDR__MIDX_REC) + UDR_HASH_SIZE != len)
		return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: size does not match its %u packs and "
		                      "%llu entries", what, np, (unsigned long long)n);
	/* pack names strictly ascending: a name appears once */
	for (uint32_t j = 1; j < np; j++)
		if (memcmp(p + UDR__MIDX_HDR + (size_t)(j - 1) * UDR_HASH_SIZE, p + UDR__MIDX_HDR + (size_t)j * UDR_HASH_SIZE,
		           UDR_HASH_SIZE) >= 0)
			return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: pack names out of order", what);
	fan = p + off_fan(np);
	if (!udr__fanout_ok(fan, n))
		return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: bad fan-out table", what);
	x->p = p;
	x->len = len;
	x->n = n;
	x->npacks = np;
	if (!full)
		return 0;
	{
		udr_hash tail;
		udr_hash_buf(&tail, p, len - UDR_HASH_SIZE);
		if (memcmp(tail.bytes, p + len - UDR_HASH_SIZE, UDR_HASH_SIZE) != 0)
			return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: checksum mismatch", what);
	}
	hs = p + off_hashes(np);
	rec = hs + n * UDR_HASH_SIZE;
	if (!udr__fanout_sorted(fan, hs, n))
		return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: hashes out of order", what);
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *r = rec + i * UDR__MIDX_REC;
		if (udr__get_le32(r + 12) >= np || r[16] < 1 || r[16] > 4 || r[17] || r[18] || r[19])
			return udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: bad record %llu", what,
			                      (unsigned long long)i);
	}
	return 0;
}

void udr__midx_pack(udr_hash *out, const udr__midx *x, uint32_t j)
{
	memcpy(out->bytes, x->p + UDR__MIDX_HDR + (size_t)j * UDR_HASH_SIZE, UDR_HASH_SIZE);
}

void udr__midx_record(udr__pack_entry *e, uint32_t *pack, const udr__midx *x, uint64_t i)
{
	const unsigned char *hs = x->p + off_hashes(x->npacks);
	const unsigned char *r = hs + x->n * UDR_HASH_SIZE + i * UDR__MIDX_REC;
	memcpy(e->hash.bytes, hs + i * UDR_HASH_SIZE, UDR_HASH_SIZE);
	e->offset = udr__get_le64(r);
	e->length = udr__get_le32(r + 8);
	*pack = udr__get_le32(r + 12);
	e->kind = r[16];
	e->raw_size = UINT64_MAX; /* only the pack's entry header has it */
}

uint64_t udr__midx_find(const udr__midx *x, const udr_hash *h)
{
	return udr__fanout_find(x->p + off_fan(x->npacks), x->p + off_hashes(x->npacks), x->n, h);
}

/* ---- building: a merge of the packs' sorted indexes ------------------------------- */

/* Where the bytes go: a buffer in memory, a temp file (through a buffer), or
 * a comparison with existing bytes (fsck); BLAKE3 over all of them. */
struct sink {
	udr_hasher *hs;
	unsigned char *buf;
	size_t len, cap;
	udr__tmp *t;              /* file: buf is the write buffer */
	const unsigned char *cmp; /* compare: the bytes expected */
	size_t cmplen;
	uint64_t total;
	bool differs;
};

static int sink_flush(struct sink *k)
{
	int rc = 0;
	if (!k->t)
		return 0; /* in memory: the buffer is the result */
	if (k->len)
		rc = udr__write_all(k->t->fd, k->buf, k->len, k->t->path);
	k->len = 0;
	return rc;
}

static int sink_put(struct sink *k, const void *data, size_t len)
{
	udr_hasher_update(k->hs, data, len);
	if (k->cmp) {
		if (k->total + len > k->cmplen || memcmp(k->cmp + k->total, data, len) != 0)
			k->differs = true;
	} else if (k->t) {
		if (k->len + len > k->cap) {
			int rc = sink_flush(k);
			if (rc < 0)
				return rc;
		}
		if (len > k->cap) {
			int rc = udr__write_all(k->t->fd, data, len, k->t->path);
			if (rc < 0)
				return rc;
		} else {
			memcpy(k->buf + k->len, data, len);
			k->len += len;
		}
	} else {
		if (k->len + len > k->cap)
			return udr__error_set(UDR_EINVAL, "multi-pack index larger than computed");
		memcpy(k->buf + k->len, data, len);
		k->len += len;
	}
	k->total += len;
	return 0;
}

/* A k-way merge over the indexes v[0..np) (ascending by pack name): a heap
 * of pack numbers by their current hash (ties: the lower number), each
 * distinct hash passed once, with the first pack holding it. */
struct merge {
	const udr__idx **v;
	uint32_t np;
	uint64_t *pos;
	uint32_t *heap;
	uint32_t nheap;
};

static const unsigned char *cur(const struct merge *m, uint32_t j)
{
	return m->v[j]->p + UDR__IDX_HDR + UDR__IDX_FANOUT + m->pos[j] * UDR_HASH_SIZE;
}

static bool before(const struct merge *m, uint32_t a, uint32_t b)
{
	int c = memcmp(cur(m, a), cur(m, b), UDR_HASH_SIZE);
	return c < 0 || (c == 0 && a < b);
}

static void sift_down(struct merge *m, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, best = i, t;
		if (l < m->nheap && before(m, m->heap[l], m->heap[best]))
			best = l;
		if (r < m->nheap && before(m, m->heap[r], m->heap[best]))
			best = r;
		if (best == i)
			return;
		t = m->heap[i];
		m->heap[i] = m->heap[best];
		m->heap[best] = t;
		i = best;
	}
}

typedef int (*merge_visit)(const unsigned char *hash, uint32_t pack, uint64_t rec, void *arg);

static int merge_run(struct merge *m, merge_visit visit, void *arg)
{
	unsigned char last[UDR_HASH_SIZE];
	bool any = false;
	int rc;
	m->nheap = 0;
	for (uint32_t j = 0; j < m->np; j++) {
		m->pos[j] = 0;
		if (m->v[j]->n)
			m->heap[m->nheap++] = j;
	}
	for (uint32_t i = m->nheap / 2; i-- > 0;)
		sift_down(m, i);
	while (m->nheap) {
		uint32_t j = m->heap[0];
		const unsigned char *h = cur(m, j);
		if (!any || memcmp(last, h, UDR_HASH_SIZE) != 0) {
			if ((rc = visit(h, j, m->pos[j], arg)) < 0)
				return rc;
			memcpy(last, h, UDR_HASH_SIZE);
			any = true;
		}
		if (++m->pos[j] == m->v[j]->n)
			m->heap[0] = m->heap[--m->nheap];
		sift_down(m, 0);
	}
	return 0;
}

struct counted {
	uint64_t n;
	uint32_t fan[256];
};

static int visit_count(const unsigned char *hash, uint32_t pack, uint64_t rec, void *arg)
{
	struct counted *c = arg;
	(void)pack;
	(void)rec;
	c->n++;
	c->fan[hash[0]]++;
	return 0;
}

static int visit_hash(const unsigned char *hash, uint32_t pack, uint64_t rec, void *arg)
{
	(void)pack;
	(void)rec;
	return sink_put(arg, hash, UDR_HASH_SIZE);
}

struct recs {
	struct sink *k;
	const struct merge *m;
};

static int visit_rec(const unsigned char *hash, uint32_t pack, uint64_t rec, void *arg)
{
	struct recs *r = arg;
	udr__pack_entry e;
	unsigned char b[UDR__MIDX_REC] = {0};
	(void)hash;
	udr__idx_record(&e, r->m->v[pack], rec);
	udr__put_le64(b, e.offset);
	udr__put_le32(b + 8, e.length);
	udr__put_le32(b + 12, pack);
	b[16] = e.kind;
	return sink_put(r->k, b, sizeof(b));
}

static int cmp_idx_name(const void *a, const void *b)
{
	const udr__idx *x = *(const udr__idx *const *)a, *y = *(const udr__idx *const *)b;
	return memcmp(x->pack.bytes, y->pack.bytes, UDR_HASH_SIZE);
}

/*
 * Emit the multi-pack index over v[0..n) (sorted here by name, a name
 * repeated kept once: v is left a permutation of itself) into k; with size_only, only count: *size receives the
 * file's size.  Three passes of the merge (count, hashes, records) so that
 * nothing proportional to the entries is held in memory.
 */
static int midx_emit(struct sink *k, const udr__idx **v, size_t n, size_t *size, bool size_only)
{
	struct merge m;
	struct counted c;
	unsigned char hdr[UDR__MIDX_HDR] = {'U', 'D', 'R', 'M', 1};
	unsigned char fan[UDR__IDX_FANOUT];
	udr_hash tail;
	uint32_t np = 0;
	int rc;
	memset(&m, 0, sizeof(m));
	memset(&c, 0, sizeof(c));
	qsort(v, n, sizeof(*v), cmp_idx_name);
	/* the repeats are moved after the np kept, not overwritten: v stays a
	 * permutation (its callers unhold one pack per entry) */
	for (size_t i = 0; i < n; i++)
		if (np == 0 || memcmp(v[np - 1]->pack.bytes, v[i]->pack.bytes, UDR_HASH_SIZE) != 0) {
			const udr__idx *t = v[np];
			v[np++] = v[i];
			v[i] = t;
		}
	if (n > UDR__MIDX_PACKS_MAX)
		return udr__error_set(UDR_EINVAL, "too many packs for a multi-pack index (%zu)", n);
	m.v = v;
	m.np = np;
	if (np && (!(m.pos = calloc(np, sizeof(*m.pos))) || !(m.heap = calloc(np, sizeof(*m.heap))))) {
		free(m.pos);
		return udr__error_oom();
	}
	if ((rc = merge_run(&m, visit_count, &c)) < 0)
		goto done;
	if (c.n > UINT32_MAX) {
		rc = udr__error_set(UDR_EINVAL, "too many objects for a multi-pack index (%llu)", (unsigned long long)c.n);
		goto done;
	}
	if (c.n == 0)
		np = 0; /* no object: no pack needs naming */
	*size = off_hashes(np) + (size_t)c.n * (UDR_HASH_SIZE + UDR__MIDX_REC) + UDR_HASH_SIZE;
	if (size_only)
		goto done;
	if (!k->t && !k->cmp) {
		if (!(k->buf = malloc(*size))) {
			rc = udr__error_oom();
			goto done;
		}
		k->cap = *size;
	}
	udr__put_le32(hdr + 8, np);
	udr__put_le64(hdr + 16, c.n);
	for (int i = 1; i < 256; i++)
		c.fan[i] += c.fan[i - 1];
	for (int i = 0; i < 256; i++)
		udr__put_le32(fan + 4 * i, c.fan[i]);
	if ((rc = sink_put(k, hdr, sizeof(hdr))) < 0)
		goto done;
	for (uint32_t j = 0; j < np && rc == 0; j++)
		rc = sink_put(k, v[j]->pack.bytes, UDR_HASH_SIZE);
	if (rc == 0)
		rc = sink_put(k, fan, sizeof(fan));
	if (rc == 0 && c.n)
		rc = merge_run(&m, visit_hash, k);
	if (rc == 0 && c.n) {
		struct recs r = {k, &m};
		rc = merge_run(&m, visit_rec, &r);
	}
	if (rc == 0) {
		udr_hasher_final(k->hs, &tail);
		rc = sink_put(k, tail.bytes, UDR_HASH_SIZE);
	}
	if (rc == 0)
		rc = sink_flush(k);
done:
	free(m.pos);
	free(m.heap);
	return rc;
}

int udr__midx_build(unsigned char **out, size_t *out_len, const udr__idx **v, size_t n)
{
	struct sink k;
	size_t size = 0;
	int rc;
	memset(&k, 0, sizeof(k));
	if (udr_hasher_new(&k.hs) < 0)
		return udr__error_oom();
	rc = midx_emit(&k, v, n, &size, false);
	udr_hasher_free(k.hs);
	if (rc < 0) {
		free(k.buf);
		return rc;
	}
	*out = k.buf;
	*out_len = k.len;
	return 0;
}

/* ---- writing ------------------------------------------------------------------------- */

/* The pack whose index x is. */
static udr__pack *idx_pack(const udr__idx *x)
{
	return (udr__pack *)(void *)((char *)x - offsetof(udr__pack, idx));
}

/* Let go of the packs of the indexes v[0..n) (held by visible_indexes). */
static void unhold_indexes(udr_store *s, const udr__idx **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		udr__pack_unhold(s->packs, idx_pack(v[i]));
}

/* The indexes of the visible packs (pointers into the pack set, each pack
 * held: unhold_indexes when done), how many the current multi-pack index
 * does not cover, the entries of those, and the entries it has (0 when
 * there is none). */
static int visible_indexes(const udr__idx ***out, size_t *n, size_t *uncovered, uint64_t *unc_entries,
                           uint64_t *midx_entries, udr_store *s)
{
	udr__packset *ps = s->packs;
	const udr__idx **v;
	size_t k = 0, u = 0;
	uint64_t ue = 0;
	pthread_mutex_lock(&ps->mu);
	if (!(v = calloc(ps->n + 1, sizeof(*v)))) {
		pthread_mutex_unlock(&ps->mu);
		return udr__error_oom();
	}
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		if (p->gone || p->broken || !p->idx.p)
			continue;
		p->holds++;
		v[k++] = &p->idx;
		if (!p->covered || !ps->midx.p) {
			u++;
			ue += p->idx.n;
		}
	}
	/* a multi-pack index naming packs that went (repacked) costs a
	 * fall-back per lookup of their objects: counted as uncovered */
	for (uint32_t j = 0; ps->midx.p && j < ps->midx.npacks; j++)
		u += !ps->mpacks[j] || ps->mpacks[j]->gone;
	*midx_entries = ps->midx.p ? ps->midx.n : 0;
	pthread_mutex_unlock(&ps->mu);
	*out = v;
	*n = k;
	*uncovered = u;
	*unc_entries = ue;
	return 0;
}

static int midx_write(udr_store *s, const udr__idx **v, size_t n)
{
	struct sink k;
	udr__tmp t = {-1, NULL};
	size_t size = 0;
	char *final = udr__path_join(s->path, "packs/" UDR__MIDX_FILE), *dir = udr__path_join(s->path, "packs");
	int rc;
	memset(&k, 0, sizeof(k));
	if (!final || !dir || udr_hasher_new(&k.hs) < 0 || !(k.buf = malloc((size_t)1 << 20))) {
		rc = udr__error_oom();
		goto done;
	}
	k.cap = (size_t)1 << 20;
	k.t = &t;
	udr__phase_enter(UDR__PHASE_MIDX);
	if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0) {
		t.fd = -1;
		goto done;
	}
	if ((rc = midx_emit(&k, v, n, &size, false)) < 0)
		goto done;
	/* every name it lists durable first (the packs' and indexes' links
	 * are, by their writers; this makes it so whatever they did), then the
	 * file (fsync), its name (rename over the old one), the directory */
	if ((rc = udr__fsync_dir(dir)) < 0)
		goto done;
	rc = udr__tmp_publish(&t, final, UDR__PUBLISH_REPLACE, true);
done:
	udr__tmp_discard(&t);
	udr__phase_leave(UDR__PHASE_MIDX);
	udr_hasher_free(k.hs);
	free(k.buf);
	free(final);
	free(dir);
	return rc;
}

/*
 * Is a rewrite due?  Once udr__midx_threshold packs are uncovered, while the
 * index is small (udr__midx_small entries, 64 Ki: 3.4 MB); a large one only
 * once the uncovered packs hold an eighth of its entries, or when four times
 * the threshold of them are searched one by one.  Small commits to a store
 * of millions of pieces each leave a pack, and rewriting the whole index
 * every few of them (52 bytes a piece: 520 MB at 10 million) would cost
 * them more than their data; this way each rewrite of N entries follows at
 * least N/8 new ones, and a lookup searches at most 4 x threshold indexes
 * besides it.
 */
static bool midx_due(size_t uncovered, uint64_t unc_entries, uint64_t midx_entries)
{
	if (uncovered < udr__midx_threshold)
		return false;
	return midx_entries < udr__midx_small || unc_entries >= midx_entries / 8 ||
	       uncovered >= 4 * (size_t)udr__midx_threshold;
}

int udr__midx_update_locked(udr_store *s, bool force)
{
	const udr__idx **v = NULL;
	size_t n = 0, uncovered = 0;
	uint64_t ue = 0, me = 0;
	bool due;
	int rc;
	if (!s->packs)
		return 0;
	if ((rc = udr__packset_scan(s)) < 0)
		return rc;
	if ((rc = visible_indexes(&v, &n, &uncovered, &ue, &me, s)) < 0)
		return rc;
	due = n && (force || midx_due(uncovered, ue, me));
	if (due) {
		rc = midx_write(s, v, n);
		if (rc == UDR_EINVAL) {
			/* more than the format holds: the packs' own indexes serve */
			udr_error_clear();
			rc = 0;
		}
	}
	unhold_indexes(s, v, n);
	free(v);
	if (rc == 0 && due)
		rc = udr__packset_scan(s);
	return rc;
}

int udr__midx_update(udr_store *s, bool force, bool wait)
{
	int fd = -1, rc;
	if (!s->packs)
		return 0;
	if ((rc = udr__packs_lock(&fd, s, wait)) != 0)
		return rc < 0 ? rc : 0;
	rc = udr__midx_update_locked(s, force);
	UDR_IO->close(fd);
	return rc;
}

/* ---- reading: the pack set's copy ---------------------------------------------------- */

static void midx_drop(udr__packset *ps)
{
	if (ps->midx.p)
		munmap((void *)ps->midx.p, ps->midx.len);
	memset(&ps->midx, 0, sizeof(ps->midx));
	free(ps->mpacks);
	ps->mpacks = NULL;
	for (size_t i = 0; i < ps->n; i++)
		ps->v[i]->covered = false;
}

void udr__packset_midx_free(udr__packset *ps)
{
	midx_drop(ps);
}

static int cmp_name(const void *key, const void *elem)
{
	return memcmp(key, elem, UDR_HASH_SIZE);
}

/* Under ps->mu, after a scan: map the multi-pack index again when its file
 * changed (checked for structure only: see ARCHITECTURE.md), then match its
 * pack names with the visible packs. */
int udr__packset_midx_refresh(udr_store *s)
{
	udr__packset *ps = s->packs;
	char *path = udr__path_join(s->path, "packs/" UDR__MIDX_FILE);
	struct stat st;
	int fd;
	if (!path)
		return udr__error_oom();
	if (UDR_IO->stat(path, &st) < 0) {
		/* none: lookups go through the packs' indexes; an I/O error is
		 * reported, as for the packs' indexes */
		int rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot stat %s", path);
		if (rc == 0) {
			midx_drop(ps);
			ps->midx_damaged = false;
			ps->midx_ino = ps->midx_dev = ps->midx_size = 0;
		}
		free(path);
		return rc;
	}
	if ((uint64_t)st.st_ino != ps->midx_ino || (uint64_t)st.st_dev != ps->midx_dev ||
	    (uint64_t)st.st_size != ps->midx_size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != ps->midx_mtime_ns) {
		midx_drop(ps);
		ps->midx_damaged = false;
		ps->midx_ino = (uint64_t)st.st_ino;
		ps->midx_dev = (uint64_t)st.st_dev;
		ps->midx_size = (uint64_t)st.st_size;
		ps->midx_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		if ((fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0) {
			/* removed since the stat: the next scan sees what is there */
			int rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot open %s", path);
			ps->midx_ino = 0;
			free(path);
			return rc;
		}
		if (UDR_IO->fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < ((uint64_t)1 << 40)) {
			void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
			if (m != MAP_FAILED && udr__midx_parse(&ps->midx, m, (size_t)st.st_size, false, path) < 0) {
				/* damaged: ignored (fsck reports and rebuilds it) */
				udr_error_clear();
				munmap(m, (size_t)st.st_size);
				ps->midx_damaged = true;
			} else if (m == MAP_FAILED) {
				ps->midx_ino = 0; /* tried again at the next scan */
			}
		} else {
			ps->midx_damaged = true;
		}
		UDR_IO->close(fd);
		if (ps->midx.p && ps->midx.npacks && !(ps->mpacks = calloc(ps->midx.npacks, sizeof(*ps->mpacks)))) {
			midx_drop(ps);
			ps->midx_ino = 0;
			free(path);
			return udr__error_oom();
		}
	}
	free(path);
	if (!ps->midx.p)
		return 0;
	/* packs found since, or gone since: matched by name again (a retired
	 * pack is no longer listed, and named by no slot) */
	for (uint32_t j = 0; j < ps->midx.npacks; j++)
		ps->mpacks[j] = NULL;
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		udr_hash h;
		const unsigned char *f;
		p->covered = false;
		if (!ps->midx.npacks)
			continue;
		udr_hash_fromhex(&h, p->hex);
		f = bsearch(h.bytes, ps->midx.p + UDR__MIDX_HDR, ps->midx.npacks, UDR_HASH_SIZE, cmp_name);
		if (f) {
			uint32_t j = (uint32_t)((size_t)(f - (ps->midx.p + UDR__MIDX_HDR)) / UDR_HASH_SIZE);
			ps->mpacks[j] = p;
			p->covered = !p->gone && !p->broken;
		}
	}
	return 0;
}

/* ---- checking (fsck) --------------------------------------------------------------------- */

int udr__midx_check(udr_store *s, bool *stale)
{
	udr__packset *ps = s->packs;
	char *path = udr__path_join(s->path, "packs/" UDR__MIDX_FILE);
	unsigned char *m = NULL;
	const udr__idx **v = NULL;
	size_t ml = 0, k = 0;
	udr__midx x;
	struct stat st;
	int fd = -1, rc;
	*stale = false;
	if (!path)
		return udr__error_oom();
	if ((fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0) {
		rc = errno == ENOENT ? 1 : udr__error_io(errno, "cannot open %s", path);
		free(path);
		return rc;
	}
	if (UDR_IO->fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat %s", path);
		goto done;
	}
	ml = (size_t)st.st_size;
	if (ml == 0 || (m = mmap(NULL, ml, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		m = NULL;
		rc = ml == 0 ? udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: empty", path)
		             : udr__error_io(errno, "cannot map %s", path);
		goto done;
	}
	if ((rc = udr__midx_parse(&x, m, ml, true, path)) < 0)
		goto done;
	/* it must say what the indexes of the packs it names say; when one of
	 * them went (repacked away) it is stale, not damaged: its records of the
	 * packs that remain are still checked by the readers, entry by entry */
	if ((rc = udr__packset_scan(s)) < 0)
		goto done;
	pthread_mutex_lock(&ps->mu);
	if (!(v = calloc(x.npacks + 1, sizeof(*v)))) {
		pthread_mutex_unlock(&ps->mu);
		rc = udr__error_oom();
		goto done;
	}
	for (uint32_t j = 0; j < x.npacks && !*stale; j++) {
		udr_hash h;
		size_t i;
		udr__midx_pack(&h, &x, j);
		for (i = 0; i < ps->n; i++)
			if (!ps->v[i]->gone && !ps->v[i]->broken && udr_hash_equal(&h, &ps->v[i]->idx.pack))
				break;
		if (i == ps->n) {
			*stale = true;
		} else {
			ps->v[i]->holds++; /* its index is read below, unlocked */
			v[k++] = &ps->v[i]->idx;
		}
	}
	pthread_mutex_unlock(&ps->mu);
	if (!*stale) {
		struct sink sk;
		size_t size = 0;
		memset(&sk, 0, sizeof(sk));
		sk.cmp = m;
		sk.cmplen = ml;
		if (udr_hasher_new(&sk.hs) < 0) {
			rc = udr__error_oom();
			goto done;
		}
		rc = midx_emit(&sk, v, k, &size, false);
		udr_hasher_free(sk.hs);
		if (rc == 0 && (sk.differs || sk.total != ml))
			rc = udr__error_set(UDR_ECORRUPT, "corrupt multi-pack index %s: it does not match the indexes of "
			                    "its packs", path);
	}
done:
	if (v)
		unhold_indexes(s, v, k);
	if (m)
		munmap(m, ml);
	if (fd >= 0)
		UDR_IO->close(fd);
	free(v);
	free(path);
	return rc;
}
