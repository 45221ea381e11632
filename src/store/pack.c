/*
 * pack.c - format-3 packs (docs/FORMAT.md, "Packs"): entries appended to an
 * immutable file named by the BLAKE3 of its bytes, an index written after
 * it (its presence makes the pack visible), the set of visible packs of a
 * store with lookup by hash, and the geometric repack that keeps a store of
 * many small puts at a few packs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"
#include "gc/collect.h"

static const unsigned char end_magic[8] = {'U', 'D', 'R', 'P', 'E', 'N', 'D', 0};


/* ---- CRC32C ------------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

/*
 * The hardware CRC instruction has a latency of three cycles and a
 * throughput of one: three independent streams over three blocks run at
 * three times the speed of one, and are joined by "shifting" a block's CRC
 * over the zero bytes of the blocks after it (a linear operator, applied
 * through tables; Mark Adler's crc32c.c, zlib's crc32_combine).
 */
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t crc_long[4][256], crc_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	while (vec) {
		if (vec & 1)
			sum ^= *mat;
		vec >>= 1;
		mat++;
	}
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

/* Tables of the operator that appends len zero bytes (a power of two) to a
 * CRC register. */
static void crc_zeros(uint32_t zeros[4][256], size_t len)
{
	uint32_t odd[32], even[32], row = 1, *op = even;
	odd[0] = 0x82F63B78u; /* one zero bit */
	for (int n = 1; n < 32; n++) {
		odd[n] = row;
		row <<= 1;
	}
	gf2_square(even, odd); /* two zero bits */
	gf2_square(odd, even); /* four */
	for (;;) {
		gf2_square(even, odd); /* eight, then 32, ... */
		op = even;
		if ((len >>= 1) == 0)
			break;
		gf2_square(odd, even);
		op = odd;
		if ((len >>= 1) == 0)
			break;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			zeros[k][n] = gf2_times(op, n << (8 * k));
}

static uint32_t crc_shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
	crc_zeros(crc_long, CRC_LONG);
	crc_zeros(crc_short, CRC_SHORT);
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
/* Three streams over blocks of `block` bytes at p, p + block, p + 2 block. */
__attribute__((target("sse4.2"))) static uint64_t crc_hw_3way(uint64_t c0, const unsigned char *p, size_t block,
                                                              uint32_t zeros[4][256])
{
	uint64_t c1 = 0, c2 = 0;
	for (size_t i = 0; i < block; i += 8) {
		uint64_t v0, v1, v2;
		memcpy(&v0, p + i, 8);
		memcpy(&v1, p + block + i, 8);
		memcpy(&v2, p + 2 * block + i, 8);
		c0 = __builtin_ia32_crc32di(c0, v0);
		c1 = __builtin_ia32_crc32di(c1, v1);
		c2 = __builtin_ia32_crc32di(c2, v2);
	}
	c0 = crc_shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
	return crc_shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw_run(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64;
	while (n && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi(c, *p++);
		n--;
	}
	c64 = c;
	while (n >= 3 * CRC_LONG) {
		c64 = crc_hw_3way(c64, p, CRC_LONG, crc_long);
		p += 3 * CRC_LONG;
		n -= 3 * CRC_LONG;
	}
	while (n >= 3 * CRC_SHORT) {
		c64 = crc_hw_3way(c64, p, CRC_SHORT, crc_short);
		p += 3 * CRC_SHORT;
		n -= 3 * CRC_SHORT;
	}
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t udr__crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t c = ~crc;
	pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
	if (crc_hw)
		return ~crc_hw_run(c, p, len);
#endif
	while (len--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ---- parsing ------------------------------------------------------------------ */

int udr__pack_frame_parse(uint64_t *count, int *cls, const unsigned char *p, size_t len, const char *what)
{
	if (len < UDR__PACK_HDR + UDR__PACK_TRAILER || memcmp(p, "UDRP", 4) != 0 || p[4] != 1 || p[5] > 1)
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: bad header", what);
	if (p[6] || p[7])
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: bad header", what);
	if (memcmp(p + len - 8, end_magic, 8) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: no trailer (truncated?)", what);
	*count = udr__get_le64(p + len - UDR__PACK_TRAILER);
	*cls = p[5];
	return 0;
}

int udr__pack_entry_parse(udr__pack_entry *e, uint64_t *next, const unsigned char *p, size_t len, uint64_t off,
                          const char *what)
{
	uint64_t end = len - UDR__PACK_TRAILER, total;
	const unsigned char *h;
	if (off == end)
		return 1;
	if (off > end || end - off < UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC)
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: entry at offset %llu cut short", what,
		                      (unsigned long long)off);
	h = p + off;
	e->kind = h[0];
	e->length = udr__get_le32(h + 4);
	e->raw_size = udr__get_le64(h + 8);
	memcpy(e->hash.bytes, h + 16, UDR_HASH_SIZE);
	e->offset = off;
	total = (uint64_t)UDR__PACK_ENTRY_HDR + e->length + UDR__PACK_ENTRY_CRC;
	if (e->kind < 1 || e->kind > 4 || h[1] || h[2] || h[3] || total > end - off)
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: bad entry header at offset %llu", what,
		                      (unsigned long long)off);
	if (udr__crc32c(0, h, UDR__PACK_ENTRY_HDR + (size_t)e->length) !=
	    udr__get_le32(h + UDR__PACK_ENTRY_HDR + e->length)) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &e->hash);
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: entry of chunk %s at offset %llu fails its CRC",
		                      what, hex, (unsigned long long)off);
	}
	*next = off + total;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const udr__pack_entry *x = a, *y = b;
	int c = memcmp(x->hash.bytes, y->hash.bytes, UDR_HASH_SIZE);
	if (c)
		return c;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Index bytes for entries e[0..n) (sorted here; duplicates keep the first). */
static int idx_build(unsigned char **out, size_t *out_len, udr__pack_entry *e, size_t n, int cls,
                     const udr_hash *name)
{
	size_t m = 0, len;
	unsigned char *b, *hs, *rec;
	uint32_t fan[256] = {0};
	udr_hash tail;
	qsort(e, n, sizeof(*e), cmp_entry);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || !udr_hash_equal(&e[m - 1].hash, &e[i].hash))
			e[m++] = e[i];
	if (m > (SIZE_MAX - 4096) / 64)
		return udr__error_oom();
	len = UDR__IDX_HDR + UDR__IDX_FANOUT + m * (UDR_HASH_SIZE + UDR__IDX_REC) + UDR_HASH_SIZE;
	if (!(b = calloc(1, len)))
		return udr__error_oom();
	memcpy(b, "UDRI", 4);
	b[4] = 1;
	b[5] = (unsigned char)cls;
	udr__put_le64(b + 8, m);
	memcpy(b + 16, name->bytes, UDR_HASH_SIZE);
	for (size_t i = 0; i < m; i++)
		fan[e[i].hash.bytes[0]]++;
	for (int i = 1; i < 256; i++)
		fan[i] += fan[i - 1];
	for (int i = 0; i < 256; i++)
		udr__put_le32(b + UDR__IDX_HDR + 4 * i, fan[i]);
	hs = b + UDR__IDX_HDR + UDR__IDX_FANOUT;
	rec = hs + m * UDR_HASH_SIZE;
	for (size_t i = 0; i < m; i++) {
		memcpy(hs + i * UDR_HASH_SIZE, e[i].hash.bytes, UDR_HASH_SIZE);
		udr__put_le64(rec + i * UDR__IDX_REC, e[i].offset);
		udr__put_le32(rec + i * UDR__IDX_REC + 8, e[i].length);
		rec[i * UDR__IDX_REC + 12] = e[i].kind;
	}
	udr_hash_buf(&tail, b, len - UDR_HASH_SIZE);
	memcpy(b + len - UDR_HASH_SIZE, tail.bytes, UDR_HASH_SIZE);
	*out = b;
	*out_len = len;
	return 0;
}

int udr__pack_reindex(unsigned char **out, size_t *out_len, const unsigned char *p, size_t len,
                      const udr_hash *name, const char *what)
{
	uint64_t count, off = UDR__PACK_HDR, seen = 0;
	udr__pack_entry *v = NULL;
	size_t cap = 0;
	int cls, rc;
	if ((rc = udr__pack_frame_parse(&count, &cls, p, len, what)) < 0)
		return rc;
	for (;;) {
		udr__pack_entry e;
		uint64_t next = 0;
		if ((rc = udr__pack_entry_parse(&e, &next, p, len, off, what)) < 0)
			goto fail;
		if (rc == 1)
			break;
		if (seen == cap) {
			size_t nc = cap ? cap * 2 : 64;
			udr__pack_entry *q = realloc(v, nc * sizeof(*q));
			if (!q) {
				rc = udr__error_oom();
				goto fail;
			}
			v = q;
			cap = nc;
		}
		v[seen++] = e;
		off = next;
	}
	if (seen != count) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt pack %s: %llu entries, its trailer says %llu", what,
		                    (unsigned long long)seen, (unsigned long long)count);
		goto fail;
	}
	rc = idx_build(out, out_len, v, seen, cls, name);
fail:
	free(v);
	return rc < 0 ? rc : 0;
}

bool udr__fanout_ok(const unsigned char *fan, uint64_t n)
{
	uint32_t prev = 0;
	for (int i = 0; i < 256; i++) {
		uint32_t f = udr__get_le32(fan + 4 * i);
		if (f < prev || f > n)
			return false;
		prev = f;
	}
	return prev == n;
}

bool udr__fanout_sorted(const unsigned char *fan, const unsigned char *hs, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *h = hs + i * UDR_HASH_SIZE;
		uint32_t lo = h[0] ? udr__get_le32(fan + 4 * (h[0] - 1)) : 0, hi = udr__get_le32(fan + 4 * h[0]);
		if ((i && memcmp(h - UDR_HASH_SIZE, h, UDR_HASH_SIZE) >= 0) || i < lo || i >= hi)
			return false;
	}
	return true;
}

int udr__idx_parse(udr__idx *x, const unsigned char *p, size_t len, bool full, const char *what)
{
	uint64_t n;
	memset(x, 0, sizeof(*x));
	if (len < UDR__IDX_HDR + UDR__IDX_FANOUT + UDR_HASH_SIZE || memcmp(p, "UDRI", 4) != 0 || p[4] != 1 ||
	    p[5] > 1 || p[6] || p[7])
		return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: bad header", what);
	n = udr__get_le64(p + 8);
	if (n > (len - UDR__IDX_HDR - UDR__IDX_FANOUT - UDR_HASH_SIZE) / (UDR_HASH_SIZE + UDR__IDX_REC) ||
	    UDR__IDX_HDR + UDR__IDX_FANOUT + n * (UDR_HASH_SIZE + UDR__IDX_REC) + UDR_HASH_SIZE != len)
		return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: size does not match its %llu entries", what,
		                      (unsigned long long)n);
	if (!udr__fanout_ok(p + UDR__IDX_HDR, n))
		return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: bad fan-out table", what);
	x->p = p;
	x->len = len;
	x->n = n;
	x->cls = p[5];
	memcpy(x->pack.bytes, p + 16, UDR_HASH_SIZE);
	if (full) {
		udr_hash tail;
		const unsigned char *hs = p + UDR__IDX_HDR + UDR__IDX_FANOUT;
		udr_hash_buf(&tail, p, len - UDR_HASH_SIZE);
		if (memcmp(tail.bytes, p + len - UDR_HASH_SIZE, UDR_HASH_SIZE) != 0)
			return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: checksum mismatch", what);
		if (!udr__fanout_sorted(p + UDR__IDX_HDR, hs, n))
			return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: hashes out of order", what);
	}
	return 0;
}

void udr__idx_record(udr__pack_entry *e, const udr__idx *x, uint64_t i)
{
	const unsigned char *hs = x->p + UDR__IDX_HDR + UDR__IDX_FANOUT;
	const unsigned char *r = hs + x->n * UDR_HASH_SIZE + i * UDR__IDX_REC;
	memcpy(e->hash.bytes, hs + i * UDR_HASH_SIZE, UDR_HASH_SIZE);
	e->offset = udr__get_le64(r);
	e->length = udr__get_le32(r + 8);
	e->kind = r[12];
	e->raw_size = UINT64_MAX; /* only the pack's entry header has it */
}

/* Bytes 1..8 of a hash as a big-endian number (byte 0 is the fan-out's). */
static uint64_t key_of(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 1; i <= 8; i++)
		v = v << 8 | p[i];
	return v;
}

uint64_t udr__idx_find(const udr__idx *x, const udr_hash *h)
{
	return udr__fanout_find(x->p + UDR__IDX_HDR, x->p + UDR__IDX_HDR + UDR__IDX_FANOUT, x->n, h);
}

uint64_t udr__fanout_find(const unsigned char *fan, const unsigned char *hs, uint64_t n, const udr_hash *h)
{
	uint64_t lo = h->bytes[0] ? udr__get_le32(fan + 4 * (h->bytes[0] - 1)) : 0, hi = udr__get_le32(fan + 4 * h->bytes[0]);
	uint64_t key = key_of(h->bytes);
	/* keys just outside [lo, hi): the bucket's bounds, then the probes' */
	uint64_t klo = 0, khi = UINT64_MAX;
	int steps = 0;
	if (lo > hi || hi > n)
		return UINT64_MAX;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		/* BLAKE3 hashes are uniform: interpolation between the keys known
		 * around the range finds the place in about log2(log2(n)) probes,
		 * each one cache line and nothing read besides (bisection takes
		 * log2(n/256)); at most 8 steps, then bisection, so a damaged
		 * index cannot make it slow */
		if (hi - lo > 16 && steps++ < 8 && key >= klo && key <= khi && klo < khi) {
			mid = lo + (uint64_t)((unsigned __int128)(key - klo) * (hi - lo) / ((unsigned __int128)(khi - klo) + 1));
			if (mid >= hi)
				mid = hi - 1;
		}
		int c = memcmp(hs + mid * UDR_HASH_SIZE, h->bytes, UDR_HASH_SIZE);
		if (c == 0)
			return mid;
		if (c < 0) {
			lo = mid + 1;
			klo = key_of(hs + mid * UDR_HASH_SIZE);
		} else {
			hi = mid;
			khi = key_of(hs + mid * UDR_HASH_SIZE);
		}
	}
	return UINT64_MAX;
}

/* ---- writer -------------------------------------------------------------------- */

#define WBUF ((size_t)1 << 20)

struct udr__packw {
	udr_store *s;
	int cls;
	pthread_mutex_t mu;
	udr__tmp t;          /* the pack being written, fd -1 when none */
	udr_hasher *hs;      /* over the bytes written so far */
	uint64_t bytes;      /* written, buffered included */
	uint64_t kicked;     /* the file's bytes whose writeback was started */
	unsigned char *buf;  /* write buffer */
	size_t buflen;
	udr__pack_entry *v;  /* entries of the current pack */
	size_t n, cap;
	uint64_t *slots;     /* open-addressing set of entry numbers + 1, by hash */
	size_t nslots;
	uint64_t published;
	udr_hash *names;     /* of the packs published */
};

int udr__packw_new(udr__packw **out, udr_store *s, int cls)
{
	udr__packw *w = calloc(1, sizeof(*w));
	if (!w || !(w->buf = malloc(WBUF)) || udr_hasher_new(&w->hs) < 0) {
		if (w)
			free(w->buf);
		free(w);
		return udr__error_oom();
	}
	w->s = s;
	w->cls = cls;
	w->t.fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	*out = w;
	return 0;
}

static void w_reset(udr__packw *w)
{
	udr__tmp_discard(&w->t);
	w->t.fd = -1;
	udr_hasher_reset(w->hs);
	w->bytes = 0;
	w->kicked = 0;
	w->buflen = 0;
	w->n = 0;
	if (w->slots)
		memset(w->slots, 0, w->nslots * sizeof(*w->slots));
}

void udr__packw_free(udr__packw *w)
{
	if (!w)
		return;
	w_reset(w);
	udr_hasher_free(w->hs);
	free(w->buf);
	free(w->v);
	free(w->slots);
	free(w->names);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

uint64_t udr__packw_published(const udr__packw *w)
{
	return w->published;
}

bool udr__packw_wrote(const udr__packw *w, const char *hex)
{
	udr_hash h;
	udr_hash_fromhex(&h, hex);
	for (uint64_t i = 0; i < w->published; i++)
		if (udr_hash_equal(&w->names[i], &h))
			return true;
	return false;
}

/*
 * Start the writeback of what the pack file holds every KICK bytes
 * (sync_file_range WRITE: no wait, no durability promised; the fsync
 * before the pack is named still makes it durable).  Otherwise nothing of
 * a pack reached the disk before that fsync (the kernel's background
 * writeback starts at a tenth of memory), which then wrote 32 MiB while
 * the put waited; now the disk works while the put compresses.
 */
#define KICK ((uint64_t)8 << 20)

static void w_kick(udr__packw *w)
{
#ifdef SYNC_FILE_RANGE_WRITE
	uint64_t on_file = w->bytes - w->buflen;
	if (on_file - w->kicked >= KICK) {
		(void)sync_file_range(w->t.fd, (off_t)w->kicked, (off_t)(on_file - w->kicked), SYNC_FILE_RANGE_WRITE);
		w->kicked = on_file;
	}
#else
	(void)w;
#endif
}

static int w_drain(udr__packw *w)
{
	int rc = 0;
	if (w->buflen) {
		rc = udr__write_all(w->t.fd, w->buf, w->buflen, w->t.path);
		w->buflen = 0;
		if (rc == 0)
			w_kick(w);
	}
	return rc;
}

static int w_write(udr__packw *w, const void *data, size_t len)
{
	udr_hasher_update(w->hs, data, len);
	w->bytes += len;
	if (w->buflen + len <= WBUF) {
		memcpy(w->buf + w->buflen, data, len);
		w->buflen += len;
		return 0;
	}
	int rc = w_drain(w);
	if (rc < 0)
		return rc;
	if (len >= WBUF / 2) {
		if ((rc = udr__write_all(w->t.fd, data, len, w->t.path)) == 0)
			w_kick(w);
		return rc;
	}
	memcpy(w->buf, data, len);
	w->buflen = len;
	return 0;
}

static size_t slot_of(const udr_hash *h, size_t nslots)
{
	uint64_t v;
	memcpy(&v, h->bytes, 8);
	return (size_t)(v & (nslots - 1));
}

static bool w_has(const udr__packw *w, const udr_hash *h)
{
	if (!w->nslots)
		return false;
	for (size_t i = slot_of(h, w->nslots);; i = (i + 1) & (w->nslots - 1)) {
		if (!w->slots[i])
			return false;
		if (udr_hash_equal(&w->v[w->slots[i] - 1].hash, h))
			return true;
	}
}

static int w_add(udr__packw *w, const udr__pack_entry *e)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 256;
		udr__pack_entry *q = realloc(w->v, nc * sizeof(*q));
		if (!q)
			return udr__error_oom();
		w->v = q;
		w->cap = nc;
	}
	if ((w->n + 1) * 2 > w->nslots) {
		size_t ns = w->nslots ? w->nslots * 2 : 1024;
		uint64_t *q = calloc(ns, sizeof(*q));
		if (!q)
			return udr__error_oom();
		free(w->slots);
		w->slots = q;
		w->nslots = ns;
		for (size_t k = 0; k < w->n; k++) {
			size_t i = slot_of(&w->v[k].hash, ns);
			while (q[i])
				i = (i + 1) & (ns - 1);
			q[i] = k + 1;
		}
	}
	w->v[w->n] = *e;
	{
		size_t i = slot_of(&e->hash, w->nslots);
		while (w->slots[i])
			i = (i + 1) & (w->nslots - 1);
		w->slots[i] = w->n + 1;
	}
	w->n++;
	return 0;
}

static int w_start(udr__packw *w)
{
	unsigned char hdr[UDR__PACK_HDR] = {'U', 'D', 'R', 'P', 1};
	int rc;
	hdr[5] = (unsigned char)w->cls;
	/* a nonce: packs of the same entries written by two writers get two
	 * names, so a repack removing one never removes the other's */
	if (getentropy(hdr + 8, 8) < 0) {
		uint64_t v = (uint64_t)udr__now_ms() ^ (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)w;
		udr__put_le64(hdr + 8, v);
	}
	if ((rc = udr__tmp_create(&w->t, w->s->tmpdir)) < 0) {
		w->t.fd = -1;
		return rc;
	}
	udr_hasher_reset(w->hs);
	w->bytes = 0;
	w->buflen = 0;
	return w_write(w, hdr, sizeof(hdr));
}

/* A pack taken from the writer, complete, to be made durable and named
 * (outside the writer's mutex: the other workers go on appending to the
 * next pack meanwhile). */
struct sealed {
	udr__tmp t;
	udr_hash name;
	udr__pack_entry *v;
	size_t n;
};

static int w_seal(udr__packw *w, struct sealed *out);
static int sealed_publish(udr__packw *w, struct sealed *p);

/* The 48 header bytes of an entry. */
static void entry_hdr(unsigned char hdr[UDR__PACK_ENTRY_HDR], const udr_hash *h, int kind, uint64_t raw_size,
                      uint32_t len)
{
	memset(hdr, 0, UDR__PACK_ENTRY_HDR);
	hdr[0] = (unsigned char)kind;
	udr__put_le32(hdr + 4, len);
	udr__put_le64(hdr + 8, raw_size);
	memcpy(hdr + 16, h->bytes, UDR_HASH_SIZE);
}

int udr__packw_append(udr__packw *w, const udr_hash *h, int kind, uint64_t raw_size, const void *payload,
                      uint32_t len)
{
	unsigned char hdr[UDR__PACK_ENTRY_HDR], crcb[4];
	uint64_t entry = (uint64_t)UDR__PACK_ENTRY_HDR + len + UDR__PACK_ENTRY_CRC;
	udr__pack_entry e;
	struct sealed full;
	int rc = 0;
	memset(&full, 0, sizeof(full));
	full.t.fd = -1;
	/* the CRC needs nothing of the pack: computed before the mutex */
	entry_hdr(hdr, h, kind, raw_size, len);
	udr__put_le32(crcb, udr__crc32c(udr__crc32c(0, hdr, sizeof(hdr)), payload, len));
	pthread_mutex_lock(&w->mu);
	if (w->t.fd >= 0 && w_has(w, h))
		goto done;
	/* a full pack is sealed here and published after the mutex (an entry
	 * of it appended again meanwhile by another worker is a duplicate in
	 * the next pack: legal) */
	if (w->t.fd >= 0 && w->n && w->bytes + entry + UDR__PACK_TRAILER > w->s->pack_target &&
	    (rc = w_seal(w, &full)) < 0)
		goto done;
	if (w->t.fd < 0 && (rc = w_start(w)) < 0)
		goto done;
	e.hash = *h;
	e.offset = w->bytes;
	e.raw_size = raw_size;
	e.length = len;
	e.kind = (uint8_t)kind;
	if ((rc = w_write(w, hdr, sizeof(hdr))) < 0 || (rc = w_write(w, payload, len)) < 0 ||
	    (rc = w_write(w, crcb, 4)) < 0 || (rc = w_add(w, &e)) < 0) {
		w_reset(w); /* the pack is incomplete: nothing of it is published */
		goto done;
	}
done:
	pthread_mutex_unlock(&w->mu);
	if (full.t.fd >= 0) {
		int prc = sealed_publish(w, &full);
		if (rc == 0)
			rc = prc;
	}
	return rc;
}

/* ---- batches: entries encoded by one thread, appended under one lock ---------- */

void udr__packw_batch_init(udr__packw_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void udr__packw_batch_release(udr__packw_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

int udr__packw_batch_add(udr__packw_batch *b, const udr_hash *h, int kind, uint64_t raw_size, const void *payload,
                         uint32_t len)
{
	size_t entry = (size_t)UDR__PACK_ENTRY_HDR + len + UDR__PACK_ENTRY_CRC;
	unsigned char *p;
	udr__pack_entry *e;
	if (entry > SIZE_MAX / 2 - b->len)
		return udr__error_set(UDR_EINVAL, "pack batch too large");
	if (b->len + entry > b->cap) {
		size_t cap = b->cap ? b->cap : WBUF;
		while (cap < b->len + entry)
			cap *= 2;
		if (!(p = realloc(b->buf, cap)))
			return udr__error_oom();
		b->buf = p;
		b->cap = cap;
	}
	if (b->n == b->ecap) {
		size_t nc = b->ecap ? b->ecap * 2 : 64;
		if (!(e = realloc(b->v, nc * sizeof(*e))))
			return udr__error_oom();
		b->v = e;
		b->ecap = nc;
	}
	p = b->buf + b->len;
	entry_hdr(p, h, kind, raw_size, len);
	memcpy(p + UDR__PACK_ENTRY_HDR, payload, len);
	udr__put_le32(p + UDR__PACK_ENTRY_HDR + len, udr__crc32c(0, p, (size_t)UDR__PACK_ENTRY_HDR + len));
	e = &b->v[b->n++];
	e->hash = *h;
	e->offset = b->len; /* in the batch until committed */
	e->raw_size = raw_size;
	e->length = len;
	e->kind = (uint8_t)kind;
	b->len += entry;
	return 0;
}

/* Is h among the entries b->v[from..to)? */
static bool batch_has(const udr__packw_batch *b, size_t from, size_t to, const udr_hash *h)
{
	for (size_t k = from; k < to; k++)
		if (udr_hash_equal(&b->v[k].hash, h))
			return true;
	return false;
}

/* Under w->mu: write the entries b->v[from..to) (contiguous in b->buf, len
 * bytes) into the current pack with one write, and record them. */
static int batch_emit(udr__packw *w, const udr__packw_batch *b, size_t from, size_t to, size_t len)
{
	uint64_t at = w->bytes;
	int rc;
	if (len == 0)
		return 0;
	if ((rc = w_write(w, b->buf + b->v[from].offset, len)) < 0) {
		w_reset(w); /* the pack is incomplete: nothing of it is published */
		return rc;
	}
	for (size_t k = from; k < to; k++) {
		udr__pack_entry x = b->v[k];
		x.offset = at;
		at += (uint64_t)UDR__PACK_ENTRY_HDR + x.length + UDR__PACK_ENTRY_CRC;
		if ((rc = w_add(w, &x)) < 0) {
			w_reset(w);
			return rc;
		}
	}
	return 0;
}

#define SEALED_MAX 4

/*
 * Append the batch's entries to w under one lock, with one write per run of
 * entries that land in the same pack (a run ends before a hash the pack holds
 * already, and where the pack reaches its target and is sealed).  Sealed
 * packs are published outside the lock.  The batch is emptied.
 */
int udr__packw_batch_commit(udr__packw *w, udr__packw_batch *b)
{
	struct sealed full[SEALED_MAX];
	size_t nfull = 0, run = 0, runlen = 0;
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < b->n; i++) {
		const udr__pack_entry *e = &b->v[i];
		uint64_t entry = (uint64_t)UDR__PACK_ENTRY_HDR + e->length + UDR__PACK_ENTRY_CRC;
		if (w->t.fd >= 0 && (w_has(w, &e->hash) || batch_has(b, run, i, &e->hash))) {
			/* in this pack already: the run ends before it */
			if ((rc = batch_emit(w, b, run, i, runlen)) < 0)
				break;
			run = i + 1;
			runlen = 0;
			continue;
		}
		if (w->t.fd >= 0 && (w->n || i > run) && w->bytes + runlen + entry + UDR__PACK_TRAILER > w->s->pack_target) {
			if ((rc = batch_emit(w, b, run, i, runlen)) < 0)
				break;
			run = i;
			runlen = 0;
			if (nfull == SEALED_MAX) {
				/* a small target: publish what is sealed before sealing more */
				pthread_mutex_unlock(&w->mu);
				for (size_t k = 0; k < nfull; k++) {
					int prc = sealed_publish(w, &full[k]);
					rc = rc < 0 ? rc : prc;
				}
				nfull = 0;
				pthread_mutex_lock(&w->mu);
				if (rc < 0)
					break;
			}
			if ((rc = w_seal(w, &full[nfull])) < 0)
				break;
			if (full[nfull].t.fd >= 0)
				nfull++;
		}
		if (w->t.fd < 0 && (rc = w_start(w)) < 0)
			break;
		runlen += entry;
	}
	if (rc == 0)
		rc = batch_emit(w, b, run, b->n, runlen);
	pthread_mutex_unlock(&w->mu);
	for (size_t k = 0; k < nfull; k++) {
		int prc = sealed_publish(w, &full[k]);
		rc = rc < 0 ? rc : prc;
	}
	b->n = 0;
	b->len = 0;
	return rc;
}

/* Do the files a and b hold the same bytes? */
static bool same_bytes(const char *a, const char *b)
{
	int fa = UDR_IO->open(a, O_RDONLY, 0), fb = UDR_IO->open(b, O_RDONLY, 0);
	bool same = fa >= 0 && fb >= 0;
	static const size_t n = (size_t)1 << 16;
	unsigned char *x = same ? malloc(2 * n) : NULL;
	if (same && !x)
		same = false;
	while (same) {
		size_t ga = 0, gb = 0;
		if (udr__read_full(fa, x, n, &ga, a) < 0 || udr__read_full(fb, x + n, n, &gb, b) < 0 || ga != gb ||
		    memcmp(x, x + n, ga) != 0)
			same = false;
		if (ga < n)
			break;
	}
	udr_error_clear();
	free(x);
	if (fa >= 0)
		UDR_IO->close(fa);
	if (fb >= 0)
		UDR_IO->close(fb);
	return same;
}

/* Link tmp (already durable) to final, then make the name durable.  EEXIST:
 * a pack or index of that name, named by the hash of its bytes, should hold
 * the same bytes; a damaged one is replaced (rename: readers see the damaged
 * or the good file, never a mix). */
static int publish_name(const char *tmp, const char *final)
{
	if (UDR_IO->link(tmp, final) < 0) {
		if (errno != EEXIST)
			return udr__error_io(errno, "cannot publish %s", final);
		if (!same_bytes(tmp, final) && UDR_IO->rename(tmp, final) < 0)
			return udr__error_io(errno, "cannot replace damaged %s", final);
	}
	return udr__fsync_parent(final);
}

/* Under w->mu: finish the current pack (trailer, buffer written out) and take
 * it from w, which starts afresh.  *out.t.fd is -1 when there was nothing. */
static int w_seal(udr__packw *w, struct sealed *out)
{
	unsigned char tr[UDR__PACK_TRAILER];
	int rc;
	memset(out, 0, sizeof(*out));
	out->t.fd = -1;
	if (w->t.fd < 0 || w->n == 0) {
		w_reset(w);
		return 0;
	}
	udr__put_le64(tr, w->n);
	memcpy(tr + 8, end_magic, 8);
	udr__phase_enter(UDR__PHASE_PACK);
	rc = w_write(w, tr, sizeof(tr));
	if (rc == 0)
		rc = w_drain(w);
	udr__phase_leave(UDR__PHASE_PACK);
	if (rc < 0) {
		w_reset(w);
		return rc;
	}
	udr_hasher_final(w->hs, &out->name);
	out->t = w->t;
	out->v = w->v;
	out->n = w->n;
	w->t.fd = -1;
	w->t.path = NULL;
	w->v = NULL;
	w->cap = 0;
	w_reset(w);
	return 0;
}

/* Outside w->mu: index, both durable, then named (pack first); the name
 * recorded in w.  Frees what p holds. */
static int sealed_publish(udr__packw *w, struct sealed *p)
{
	unsigned char *ib = NULL;
	size_t il;
	char hex[UDR_HASH_HEXSIZE + 1];
	char *pp = NULL, *ip = NULL;
	udr__tmp it = {-1, NULL};
	int rc;
	if (p->t.fd < 0)
		return 0;
	udr_hash_tohex(hex, &p->name);
	udr__phase_enter(UDR__PHASE_IDX);
	if ((rc = idx_build(&ib, &il, p->v, p->n, w->cls, &p->name)) < 0)
		goto done;
	if ((rc = udr__tmp_create(&it, w->s->tmpdir)) < 0)
		goto done;
	if ((rc = udr__write_all(it.fd, ib, il, it.path)) < 0)
		goto done;
	udr__phase_leave(UDR__PHASE_IDX);
	udr__phase_enter(UDR__PHASE_PACK);
	/* both durable before either has a name */
	if (UDR_IO->fsync(p->t.fd) < 0) {
		rc = udr__error_io(errno, "fsync of pack %s failed", p->t.path);
		goto done;
	}
	udr__phase_leave(UDR__PHASE_PACK);
	udr__phase_enter(UDR__PHASE_IDX);
	if (UDR_IO->fsync(it.fd) < 0) {
		rc = udr__error_io(errno, "fsync of pack index %s failed", it.path);
		goto done;
	}
	if (!(pp = malloc(w->s->pathlen + 100)) || !(ip = malloc(w->s->pathlen + 100))) {
		rc = udr__error_oom();
		goto done;
	}
	snprintf(pp, w->s->pathlen + 100, "%s/packs/%s.pack", w->s->path, hex);
	snprintf(ip, w->s->pathlen + 100, "%s/packs/%s.idx", w->s->path, hex);
	/* the pack's name durable before its index's: an index never names a
	 * pack that a crash can take away */
	udr__phase_leave(UDR__PHASE_IDX);
	udr__phase_enter(UDR__PHASE_PACK);
	if ((rc = publish_name(p->t.path, pp)) < 0)
		goto done;
	udr__phase_leave(UDR__PHASE_PACK);
	udr__phase_enter(UDR__PHASE_IDX);
	if ((rc = publish_name(it.path, ip)) < 0)
		goto done;
	pthread_mutex_lock(&w->mu);
	{
		udr_hash *q = realloc(w->names, (size_t)(w->published + 1) * sizeof(*q));
		if (!q) {
			rc = udr__error_oom();
		} else {
			w->names = q;
			w->names[w->published++] = p->name;
		}
	}
	pthread_mutex_unlock(&w->mu);
done:
	udr__tmp_discard(&it);
	udr__tmp_discard(&p->t);
	free(p->v);
	p->v = NULL;
	free(ib);
	free(pp);
	free(ip);
	udr__phase_leave(UDR__PHASE_PACK | UDR__PHASE_IDX);
	return rc;
}

int udr__packw_flush(udr__packw *w)
{
	struct sealed p;
	int rc;
	pthread_mutex_lock(&w->mu);
	rc = w_seal(w, &p);
	pthread_mutex_unlock(&w->mu);
	if (rc == 0)
		rc = sealed_publish(w, &p);
	return rc;
}

/* ---- the set of visible packs --------------------------------------------------- */

unsigned udr__io_phase;

/* ---- the set of visible packs --------------------------------------------------- */

void udr__packset_init(udr__packset *ps)
{
	memset(ps, 0, sizeof(*ps));
	pthread_mutex_init(&ps->mu, NULL);
}

/* Unmap (or free) p's index; cls and pack stay. */
static void idx_release(udr__pack *p)
{
	if (p->idx.p && p->owned)
		free((void *)p->idx.p);
	else if (p->idx.p)
		munmap((void *)p->idx.p, p->idx.len);
	p->idx.p = NULL;
	p->idx.len = 0;
	p->idx.n = 0;
}

void udr__packset_free(udr__packset *ps)
{
	udr__packset_midx_free(ps);
	for (size_t i = 0; i < ps->n + ps->ndead; i++) {
		udr__pack *p = i < ps->n ? ps->v[i] : ps->dead[i - ps->n];
		idx_release(p);
		if (p->fd >= 0)
			UDR_IO->close(p->fd);
		free(p);
	}
	free(ps->v);
	free(ps->dead);
	pthread_mutex_destroy(&ps->mu);
}

void udr__pack_release_locked(udr__pack *p)
{
	if (!p->retired || p->readers > 0)
		return;
	if (p->fd >= 0) {
		UDR_IO->close(p->fd);
		p->fd = -1;
	}
	if (p->holds == 0)
		idx_release(p);
}

void udr__pack_hold(udr__packset *ps, udr__pack *p)
{
	pthread_mutex_lock(&ps->mu);
	p->holds++;
	pthread_mutex_unlock(&ps->mu);
}

void udr__pack_unhold(udr__packset *ps, udr__pack *p)
{
	pthread_mutex_lock(&ps->mu);
	p->holds--;
	udr__pack_release_locked(p);
	pthread_mutex_unlock(&ps->mu);
}

/* Under the set's mutex, at the end of a scan: the packs found gone leave
 * the list (lookups and scans stay as fast as the packs that exist) for the
 * dead ones, and give back their descriptor and index once unused.  On
 * failure (no memory) they stay listed, gone, and are retired later. */
static int retire_gone(udr__packset *ps)
{
	size_t k = 0, ngone = 0;
	for (size_t i = 0; i < ps->n; i++)
		ngone += ps->v[i]->gone;
	if (!ngone)
		return 0;
	if (ps->ndead + ngone > ps->capdead) {
		size_t nc = ps->capdead ? ps->capdead : 16;
		udr__pack **q;
		while (nc < ps->ndead + ngone)
			nc *= 2;
		if (!(q = realloc(ps->dead, nc * sizeof(*q))))
			return udr__error_oom();
		ps->dead = q;
		ps->capdead = nc;
	}
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		if (!p->gone) {
			ps->v[k++] = p;
			continue;
		}
		p->retired = true;
		p->covered = false;
		ps->dead[ps->ndead++] = p;
		udr__pack_release_locked(p);
	}
	ps->n = k;
	return 0;
}

static bool pack_name(const char *name, const char *suffix, char hex[UDR_HASH_HEXSIZE + 1])
{
	size_t n = strlen(name), sl = strlen(suffix);
	if (n != UDR_HASH_HEXSIZE + sl || strcmp(name + UDR_HASH_HEXSIZE, suffix) != 0)
		return false;
	for (size_t i = 0; i < UDR_HASH_HEXSIZE; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	memcpy(hex, name, UDR_HASH_HEXSIZE);
	hex[UDR_HASH_HEXSIZE] = '\0';
	return true;
}

/* Map the index file at path; UDR_ENOTFOUND when it is gone. */
static int idx_map(udr__idx *x, const char *path, const char *hex, bool full, int64_t *mtime)
{
	struct stat st;
	void *m;
	int fd = UDR_IO->open(path, O_RDONLY, 0), rc;
	if (fd < 0)
		return errno == ENOENT ? UDR_ENOTFOUND : udr__error_io(errno, "cannot open pack index %s", path);
	if (UDR_IO->fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat pack index %s", path);
		UDR_IO->close(fd);
		return rc;
	}
	if (st.st_size < 1 || (uint64_t)st.st_size > ((uint64_t)1 << 40)) {
		UDR_IO->close(fd);
		return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: bad size", path);
	}
	if (mtime)
		*mtime = (int64_t)st.st_mtime;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	UDR_IO->close(fd);
	if (m == MAP_FAILED)
		return udr__error_io(errno, "cannot map pack index %s", path);
	if ((rc = udr__idx_parse(x, m, (size_t)st.st_size, full, path)) < 0) {
		munmap(m, (size_t)st.st_size);
		return rc;
	}
	if (hex) {
		udr_hash h;
		udr_hash_fromhex(&h, hex);
		if (!udr_hash_equal(&h, &x->pack)) {
			munmap(m, (size_t)st.st_size);
			return udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: it indexes another pack", path);
		}
	}
	return 0;
}

/* Map the pack file at path whole; UDR_ENOTFOUND when it is gone. */
static int map_pack(unsigned char **out, size_t *len, const char *path)
{
	struct stat st;
	void *m;
	int fd = UDR_IO->open(path, O_RDONLY, 0);
	if (fd < 0)
		return errno == ENOENT ? UDR_ENOTFOUND : udr__error_io(errno, "cannot open pack %s", path);
	if (UDR_IO->fstat(fd, &st) < 0 || st.st_size < UDR__PACK_HDR + UDR__PACK_TRAILER) {
		UDR_IO->close(fd);
		return udr__error_set(UDR_ECORRUPT, "corrupt pack %s: too short", path);
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	UDR_IO->close(fd);
	if (m == MAP_FAILED)
		return udr__error_io(errno, "cannot map pack %s", path);
	*out = m;
	*len = (size_t)st.st_size;
	return 0;
}

/* The index of pack p built from the pack's bytes (checked against its name). */
static int reindex_in_memory(udr_store *s, udr__pack *p)
{
	char path[4200];
	unsigned char *m, *ix = NULL;
	size_t ml, il = 0;
	udr_hash name, got;
	int rc;
	snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, p->hex);
	if ((rc = map_pack(&m, &ml, path)) < 0)
		return rc;
	udr_hash_fromhex(&name, p->hex);
	udr_hash_buf(&got, m, ml);
	if (!udr_hash_equal(&got, &name))
		rc = udr__error_set(UDR_ECORRUPT, "corrupt pack %s: its bytes hash to something else", path);
	else
		rc = udr__pack_reindex(&ix, &il, m, ml, &name, path);
	munmap(m, ml);
	if (rc == 0 && (rc = udr__idx_parse(&p->idx, ix, il, false, path)) == 0)
		p->owned = true;
	if (rc < 0)
		free(ix);
	return rc;
}

/* Seconds after its name was linked (its ctime) past which a pack without
 * an index is taken for one whose index was lost, not one being published
 * (its index is linked right after it): it is then indexed anew in memory,
 * as a damaged index is.  Tests lower it. */
unsigned udr__orphan_age = 30;

/* Append p to the set (under its mutex); on failure p's index is released. */
static int packset_add(udr__packset *ps, udr__pack *p)
{
	if (ps->n == ps->cap) {
		size_t nc = ps->cap ? ps->cap * 2 : 16;
		udr__pack **q = realloc(ps->v, nc * sizeof(*q));
		if (!q) {
			if (p->idx.p && p->owned)
				free((void *)p->idx.p);
			else if (p->idx.p)
				munmap((void *)p->idx.p, p->idx.len);
			return udr__error_oom();
		}
		ps->v = q;
		ps->cap = nc;
	}
	ps->v[ps->n++] = p;
	return 0;
}

/* The plan of a gc run that is deleting (NULL: none), as readers see it:
 * a damaged STATE stops writers and gc, not reads, so its packs stay
 * visible (they hold only dead or duplicate copies; docs/GC.md 5). */
static int plan_for_reads(char **plan, udr_store *s)
{
	int rc = udr__gc_deleting_plan(plan, s->path);
	if (rc == UDR_ECORRUPT) {
		udr_error_clear();
		*plan = NULL;
		rc = 0;
	}
	return rc;
}

/*
 * The second pass of a scan: packs whose index is missing.  A pack is linked
 * first and its index right after, so one without an index is being
 * published, or was left by a writer killed between the two links, or lost
 * its index.  One whose name is older than udr__orphan_age is taken for the
 * latter two: its bytes are durable (synced before the link) and checked
 * (their BLAKE3 is the pack's name), so it is indexed in memory and read, as
 * a pack with a damaged index is; fsck writes the index.  A younger one stays
 * invisible until its index appears.  seen[] marks known packs found again.
 */
static int scan_orphans(udr_store *s, DIR *d, const char *dir, bool *seen, size_t known)
{
	udr__packset *ps = s->packs;
	struct dirent *e;
	int rc = 0;
	rewinddir(d);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char hex[UDR_HASH_HEXSIZE + 1], path[4200];
		struct stat st;
		size_t i;
		udr__pack *p;
		if (!pack_name(e->d_name, ".pack", hex))
			continue;
		for (i = 0; i < ps->n; i++)
			if (strcmp(ps->v[i]->hex, hex) == 0)
				break;
		if (i < ps->n && (i >= known || seen[i]))
			continue; /* indexed (or added already) */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (UDR_IO->stat(path, &st) < 0) {
			if (errno == ENOENT)
				continue;
			rc = udr__error_io(errno, "cannot stat pack %s", path);
			break;
		}
		if ((int64_t)udr__now_ms() / 1000 - (int64_t)st.st_ctime < (int64_t)udr__orphan_age)
			continue;
		{
			char *plan;
			bool gone;
			if ((rc = plan_for_reads(&plan, s)) < 0)
				break;
			gone = udr__gc_plan_names(plan, hex);
			free(plan);
			if (gone)
				continue; /* gc removed its index on purpose (docs/GC.md 5.2) */
		}
		if (i < ps->n) {
			/* known, without an index since an earlier scan */
			seen[i] = true;
			if (ps->v[i]->gone && !ps->v[i]->broken && ps->v[i]->owned)
				ps->v[i]->gone = false;
			continue;
		}
		if (!(p = calloc(1, sizeof(*p)))) {
			rc = udr__error_oom();
			break;
		}
		memcpy(p->hex, hex, sizeof(p->hex));
		p->fd = -1;
		p->mtime = (int64_t)st.st_mtime;
		rc = reindex_in_memory(s, p);
		if (rc == UDR_ECORRUPT || rc == UDR_ENOTFOUND) {
			/* damaged too, or gone (a repack removed it): skipped */
			udr_error_clear();
			free(p);
			rc = 0;
			continue;
		}
		if (rc < 0 || (rc = packset_add(ps, p)) < 0) {
			free(p);
			break;
		}
	}
	return rc;
}

static int scan_once(udr_store *s);

/* packs/' modification and change times, 0 when it cannot be read. */
static int64_t dir_stamp(const char *dir)
{
	struct stat st;
	if (UDR_IO->stat(dir, &st) < 0)
		return 0;
	return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec + (int64_t)st.st_ctim.tv_nsec;
}

/*
 * List packs/ until a listing saw it unchanged: readdir does not promise to
 * return a name linked or unlinked while it runs, and a repack in another
 * process links the merged pack's index and then unlinks the old ones, so a
 * listing that overlaps it can miss both and take an object that is in the
 * store for a missing one (seen: a transaction's chunk "not found" under
 * four committing processes).  The directory's times change with every link
 * and unlink in it; a listing between two equal stamps saw one state.
 * Bounded: under a storm of repacks the last listing is used (a miss then is
 * retried by the callers that rescan).
 */
int udr__packset_scan(udr_store *s)
{
	char *dir = udr__path_join(s->path, "packs");
	int rc = 0;
	if (!dir)
		return UDR_ENOMEM;
	for (int attempt = 0; attempt < 8; attempt++) {
		int64_t before = dir_stamp(dir), after;
		if ((rc = scan_once(s)) < 0)
			break;
		after = dir_stamp(dir);
		/* what a recheck compares with: the times before the listing,
		 * so that a change during it is seen as a change */
		__atomic_store_n(&s->packs->stamp, before, __ATOMIC_RELEASE);
		__atomic_store_n(&s->packs->checked_ms, udr__now_ms(), __ATOMIC_RELEASE);
		if (after == before)
			break;
	}
	free(dir);
	return rc;
}

unsigned udr__packs_recheck_ms = 1000;

void udr__packset_recheck(udr_store *s)
{
	udr__packset *ps = s->packs;
	int64_t now = udr__now_ms(), last = __atomic_load_n(&ps->checked_ms, __ATOMIC_ACQUIRE);
	char path[4200];
	if (now >= last && now - last < (int64_t)udr__packs_recheck_ms)
		return;
	/* one thread checks; the others go on with the list they have */
	if (!__atomic_compare_exchange_n(&ps->checked_ms, &last, now, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	snprintf(path, sizeof(path), "%s/packs", s->path);
	if (dir_stamp(path) != __atomic_load_n(&ps->stamp, __ATOMIC_ACQUIRE) && udr__packset_scan(s) < 0)
		udr_error_clear(); /* the lookups rescan on a miss and report */
}

static int scan_once(udr_store *s)
{
	udr__packset *ps = s->packs;
	char *dir = udr__path_join(s->path, "packs");
	bool *seen = NULL;
	DIR *d;
	struct dirent *e;
	int rc = 0;
	if (!dir)
		return UDR_ENOMEM;
	if ((d = opendir(s->path)) != NULL) {
		/* which loose top-level directories exist: a lookup skips the
		 * stat of loose names under one that does not */
		unsigned char top[32] = {0};
		while ((e = readdir(d)) != NULL) {
			const char *nm = e->d_name;
			int hi = nm[0] >= 'a' ? nm[0] - 'a' + 10 : nm[0] - '0', lo = nm[1] >= 'a' ? nm[1] - 'a' + 10 : nm[1] - '0';
			if (strlen(nm) == 2 && hi >= 0 && hi < 16 && lo >= 0 && lo < 16 && (nm[0] <= '9' || nm[0] >= 'a') &&
			    (nm[1] <= '9' || nm[1] >= 'a'))
				top[(hi << 4 | lo) >> 3] |= (unsigned char)(1u << ((hi << 4 | lo) & 7));
		}
		closedir(d);
		for (int i = 0; i < 32; i++)
			__atomic_fetch_or(&ps->top[i], top[i], __ATOMIC_RELEASE);
	}
	if (!(d = opendir(dir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
		free(dir);
		pthread_mutex_lock(&ps->mu);
		__atomic_store_n(&ps->scanned, true, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&ps->mu);
		return rc;
	}
	pthread_mutex_lock(&ps->mu);
	if (ps->n && !(seen = calloc(ps->n, sizeof(bool)))) {
		pthread_mutex_unlock(&ps->mu);
		closedir(d);
		free(dir);
		return udr__error_oom();
	}
	{
		size_t known = ps->n;
		/* packs a gc run is deleting are gone already (docs/GC.md 5.2) */
		char *gcplan = NULL;
		rc = plan_for_reads(&gcplan, s);
		while (rc == 0 && (e = readdir(d)) != NULL) {
			char hex[UDR_HASH_HEXSIZE + 1], *ipath;
			size_t i;
			udr__pack *p;
			if (!pack_name(e->d_name, ".idx", hex) || udr__gc_plan_names(gcplan, hex))
				continue;
			for (i = 0; i < known; i++)
				if (strcmp(ps->v[i]->hex, hex) == 0)
					break;
			if (i < known) {
				seen[i] = true;
				if (ps->v[i]->gone && !ps->v[i]->broken)
					ps->v[i]->gone = false; /* back (a repack wrote it again) */
				continue;
			}
			for (i = known; i < ps->n; i++)
				if (strcmp(ps->v[i]->hex, hex) == 0)
					break;
			if (i < ps->n)
				continue;
			if (!(p = calloc(1, sizeof(*p))) || !(ipath = udr__path_join(dir, e->d_name))) {
				free(p);
				rc = udr__error_oom();
				break;
			}
			memcpy(p->hex, hex, sizeof(p->hex));
			p->fd = -1;
			rc = idx_map(&p->idx, ipath, hex, false, &p->mtime);
			free(ipath);
			if (rc == UDR_ENOTFOUND) {
				free(p);
				rc = 0;
				continue;
			}
			if (rc == UDR_ECORRUPT) {
				/* a damaged index: the pack is indexed anew in memory from
				 * its own bytes (fsck reports the index and rewrites it);
				 * a pack that cannot be is skipped by lookups */
				udr_error_clear();
				rc = reindex_in_memory(s, p);
				if (rc == UDR_ECORRUPT || rc == UDR_ENOTFOUND) {
					udr_error_clear();
					rc = 0;
					p->broken = true;
				}
			}
			if (rc < 0 || (rc = packset_add(ps, p)) < 0) {
				free(p);
				break;
			}
		}
		free(gcplan);
		if (rc == 0)
			rc = scan_orphans(s, d, dir, seen, known);
		for (size_t i = 0; rc == 0 && i < known; i++)
			if (!seen[i])
				ps->v[i]->gone = true;
		/* a repacked-away pack's descriptor and index go once no read uses
		 * them: a long-lived handle would otherwise keep the space of
		 * every pack removed since it opened */
		if (rc == 0)
			rc = retire_gone(ps);
	}
	if (rc == 0)
		rc = udr__packset_midx_refresh(s);
	__atomic_store_n(&ps->scanned, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ps->mu);
	closedir(d);
	free(seen);
	free(dir);
	return rc;
}

int udr__packset_verify(udr_store *s, unsigned *rebuilt, char broken[UDR_HASH_HEXSIZE + 1])
{
	udr__packset *ps = s->packs;
	int rc = 0;
	*rebuilt = 0;
	if (broken)
		broken[0] = '\0';
	pthread_mutex_lock(&ps->mu);
	for (size_t i = 0; rc == 0 && i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		udr__idx x, old;
		char path[4200];
		if (p->gone)
			continue;
		if (p->broken) {
			if (broken && !broken[0])
				memcpy(broken, p->hex, sizeof(p->hex));
			continue;
		}
		if (p->verified || p->owned || !p->idx.p)
			continue; /* indexed anew from its own bytes: nothing to check */
		snprintf(path, sizeof(path), "%s/packs/%s.idx", s->path, p->hex);
		if (udr__idx_parse(&x, p->idx.p, p->idx.len, true, path) == 0) {
			p->verified = true;
			continue;
		}
		udr_error_clear();
		if (p->holds > 0) {
			/* its mapping is in use outside the mutex: not swapped */
			rc = udr__error_set(UDR_ECORRUPT, "corrupt pack index %s: checksum mismatch (udr fsck --repair "
			                    "rewrites it)", path);
			break;
		}
		old = p->idx;
		if ((rc = reindex_in_memory(s, p)) == 0) {
			munmap((void *)old.p, old.len);
			p->verified = true;
			(*rebuilt)++;
		} else if (rc == UDR_ECORRUPT || rc == UDR_ENOTFOUND) {
			/* the pack cannot index itself: the mapping stays (other
			 * lookups may be past it), the pack is skipped from now */
			udr_error_clear();
			rc = 0;
			p->idx = old;
			p->broken = true;
			if (broken && !broken[0])
				memcpy(broken, p->hex, sizeof(p->hex));
		} else {
			p->idx = old;
		}
	}
	pthread_mutex_unlock(&ps->mu);
	return rc;
}

int udr__packset_reload(udr_store *s, const char *hex)
{
	udr__packset *ps = s->packs;
	char path[4200];
	int rc = 0;
	if (!ps)
		return 0;
	snprintf(path, sizeof(path), "%s/packs/%s.idx", s->path, hex);
	pthread_mutex_lock(&ps->mu);
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		udr__idx x;
		int64_t mtime = 0;
		if (strcmp(p->hex, hex) != 0 || p->holds > 0)
			continue;
		if ((rc = idx_map(&x, path, hex, true, &mtime)) < 0) {
			if (rc == UDR_ECORRUPT || rc == UDR_ENOTFOUND) {
				udr_error_clear();
				rc = 0;
			}
			break;
		}
		idx_release(p);
		p->idx = x;
		p->mtime = mtime;
		p->owned = false;
		p->broken = false;
		p->verified = true;
		break;
	}
	pthread_mutex_unlock(&ps->mu);
	return rc;
}

/* ---- repack ---------------------------------------------------------------------- */

struct cand {
	udr__pack *p;
	uint64_t size;
	bool keep;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return strcmp(x->p->hex, y->p->hex);
}

/* Copy every entry of pack p (class-checked, CRC-checked) into w. */
static int copy_pack(udr__packw *w, udr__pack *p, const char *path, bool deltas)
{
	unsigned char *m;
	size_t ml;
	uint64_t count, off = UDR__PACK_HDR;
	int cls, rc;
	if ((rc = map_pack(&m, &ml, path)) < 0)
		return rc == UDR_ENOTFOUND ? udr__error_io(ENOENT, "cannot open pack %s", path) : rc;
	if ((rc = udr__pack_frame_parse(&count, &cls, m, ml, path)) == 0 && cls != p->idx.cls)
		rc = udr__error_set(UDR_ECORRUPT, "corrupt pack %s: class differs from its index's", path);
	while (rc == 0) {
		udr__pack_entry e;
		uint64_t next = 0;
		if ((rc = udr__pack_entry_parse(&e, &next, m, ml, off, path)) != 0)
			break;
		if ((e.kind == UDR__K_DELTA) == deltas)
			rc = udr__packw_append(w, &e.hash, e.kind, e.raw_size, m + off + UDR__PACK_ENTRY_HDR, e.length);
		off = next;
	}
	munmap(m, ml);
	return rc < 0 ? rc : 0;
}

/* Merge packs c[0..n) into new packs, publish them, then remove the old ones
 * (indexes first: a pack without index is invisible, never a dangling name). */
static int merge(udr_store *s, int cls, struct cand *c, size_t n)
{
	udr__packw *w = NULL;
	char *path = NULL;
	size_t plen = s->pathlen + 100;
	int rc;
	if ((rc = udr__packw_new(&w, s, cls)) < 0)
		return rc;
	if (!(path = malloc(plen))) {
		udr__packw_free(w);
		return udr__error_oom();
	}
	/* Every other entry first, deltas last: the writer keeps the first
	 * copy of a hash it meets, and a delta copy may name bases that are
	 * gone (a gc shunned it: its object has a full copy), so a full copy
	 * of the same object must win (review R5: a delta's smaller pack was
	 * copied first, the full copy dropped, the content lost). */
	for (size_t k = 0; k < 2 * n && rc == 0; k++) {
		size_t i = k % n;
		if (c[i].keep)
			continue;
		snprintf(path, plen, "%s/packs/%s.pack", s->path, c[i].p->hex);
		rc = copy_pack(w, c[i].p, path, k >= n);
		if (rc == UDR_ECORRUPT) {
			/* a damaged pack stays as it is (fsck reports it, a put of its
			 * content repairs it); what was copied of it is a duplicate */
			udr_error_clear();
			rc = 0;
			c[i].keep = true;
		}
	}
	if (rc == 0)
		rc = udr__packw_flush(w);
	if (rc == 0) {
		/* The new packs are durable and visible: the old ones are
		 * duplicates, removed index first (a pack without index is
		 * invisible).  Best effort, as for temp files: an old pack that
		 * stays is a duplicate, merged again by a later repack. */
		const char *sfx[2] = {"idx", "pack"};
		udr__phase_enter(UDR__PHASE_RETIRE);
		for (int k = 0; k < 2 && rc == 0; k++) {
			for (size_t i = 0; i < n; i++) {
				snprintf(path, plen, "%s/packs/%s.%s", s->path, c[i].p->hex, sfx[k]);
				/* a merged pack of the same bytes has the same name: keep it */
				if (c[i].keep || udr__packw_wrote(w, c[i].p->hex))
					continue;
				if (UDR_IO->unlink(path) < 0 && errno != ENOENT)
					c[i].keep = true; /* its index stays: so does its pack */
			}
			snprintf(path, plen, "%s/packs", s->path);
			rc = udr__fsync_dir(path);
		}
		udr__phase_leave(UDR__PHASE_RETIRE);
	}
	udr__packw_free(w);
	free(path);
	return rc;
}

int udr__packs_lock(int *fd, udr_store *s, bool wait)
{
	char *p = udr__path_join(s->path, "packs/lock");
	if (!p)
		return UDR_ENOMEM;
	*fd = UDR_IO->open(p, O_RDWR | O_CREAT, 0644);
	if (*fd < 0) {
		int rc = udr__error_io(errno, "cannot open %s", p);
		free(p);
		return rc;
	}
	free(p);
	if (UDR_IO->flock(*fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		int err = errno;
		UDR_IO->close(*fd);
		*fd = -1;
		if (err == EWOULDBLOCK)
			return 1;
		return udr__error_io(err, "cannot lock packs/lock");
	}
	return 0;
}

/* The packs of class cls (visible, sizes known), ascending by size. */
static int candidates(struct cand **out, size_t *n, udr_store *s, int cls, uint64_t below)
{
	udr__packset *ps = s->packs;
	struct cand *c;
	size_t k = 0;
	int rc;
	char *path = malloc(s->pathlen + 100);
	if (!path)
		return udr__error_oom();
	if ((rc = udr__packset_scan(s)) < 0) {
		free(path);
		return rc;
	}
	pthread_mutex_lock(&ps->mu);
	if (!(c = calloc(ps->n + 1, sizeof(*c)))) {
		pthread_mutex_unlock(&ps->mu);
		free(path);
		return udr__error_oom();
	}
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		struct stat st;
		if (p->gone || p->broken || p->idx.cls != cls)
			continue;
		snprintf(path, s->pathlen + 100, "%s/packs/%s.pack", s->path, p->hex);
		if (UDR_IO->stat(path, &st) < 0 || (uint64_t)st.st_size >= below)
			continue;
		c[k].p = p;
		c[k].size = (uint64_t)st.st_size;
		k++;
	}
	pthread_mutex_unlock(&ps->mu);
	free(path);
	qsort(c, k, sizeof(*c), cmp_cand);
	*out = c;
	*n = k;
	return 0;
}

#define MERGE_MAX 16

/*
 * Packs at least this large are full: a writer rolls a pack over when the
 * next entry would take it past the target, so a pack it rolled over is
 * within one entry of the target, and the geometric repack leaves it be.
 * (Counting full packs as small made every put merge every pack it had
 * just written, up to MERGE_MAX of them: a 256 MiB put re-read, re-checked
 * and rewrote its 170 MB of packs, fsyncs included, after writing them.)
 * One entry is at most a piece of the largest size, encoded no larger than
 * the piece plus an eighth (a delta or frame only replaces a piece when
 * smaller; the eighth is a margin), with its header, CRC and the trailer;
 * at most half the target, so that small targets still merge.
 */
static uint64_t full_below(const udr_store *s)
{
	uint64_t entry = (uint64_t)s->cdc.max + s->cdc.max / 8 + UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC +
	                 UDR__PACK_TRAILER;
	if (entry > s->pack_target / 2)
		entry = s->pack_target / 2;
	return s->pack_target - entry;
}

static int repack_geometric(udr_store *s, int cls)
{
	struct cand *c = NULL;
	size_t n = 0, m;
	int fd = -1, rc;
	if ((rc = udr__packs_lock(&fd, s, false)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = candidates(&c, &n, s, cls, full_below(s))) < 0)
		goto done;
	/* the smallest m for which merging the m smallest packs leaves a
	 * geometric sequence: every pack at least twice all smaller ones */
	for (m = 0; m <= n; m++) {
		uint64_t sum = 0;
		bool ok = true;
		for (size_t i = 0; i < m; i++)
			sum += c[i].size;
		for (size_t i = m; i < n && ok; i++) {
			if (c[i].size < 2 * sum)
				ok = false;
			sum += c[i].size;
		}
		if (ok)
			break;
	}
	/* at most MERGE_MAX at a time: one put's repack stays bounded even when
	 * crashes left many packs behind; later puts merge the rest */
	if (m > MERGE_MAX)
		m = MERGE_MAX;
	if (m >= 2)
		rc = merge(s, cls, c, m);
	/* the new packs (this put's, this merge's) may leave the multi-pack
	 * index too far behind: rewritten under the same lock */
	if (rc == 0)
		rc = udr__midx_update_locked(s, false);
done:
	free(c);
	UDR_IO->close(fd);
	return rc;
}

int udr__pack_repack(udr_store *s, int cls)
{
	int rc;
	udr__phase_enter(UDR__PHASE_REPACK);
	rc = repack_geometric(s, cls);
	udr__phase_leave(UDR__PHASE_REPACK);
	return rc;
}

int udr__pack_repack_all(udr_store *s, int cls)
{
	struct cand *c = NULL;
	size_t n = 0;
	int fd = -1, rc;
	char *dir = udr__path_join(s->path, "packs");
	if (!dir)
		return UDR_ENOMEM;
	rc = udr__mkdir(dir, NULL);
	free(dir);
	if (rc < 0)
		return rc;
	if ((rc = udr__packs_lock(&fd, s, false)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = candidates(&c, &n, s, cls, s->pack_target)) == 0 && n >= 2)
		rc = merge(s, cls, c, n);
	if (rc == 0)
		rc = udr__midx_update_locked(s, true);
	free(c);
	UDR_IO->close(fd);
	return rc;
}

/*
 * Rewrite pack p without its damaged entries, each of which must have a good
 * copy elsewhere (checked here: never the only copy of anything goes), then
 * remove it.  Used after a put wrote good copies of damaged objects.  1 when
 * the pack was left alone (a damaged entry has no good copy elsewhere).
 */
int udr__pack_drop_damaged(udr_store *s, udr__pack *p)
{
	udr__packw *w = NULL;
	char path[4200];
	bool held = false, gone;
	int fd = -1, rc;
	/* waits: concurrent repairs of one pack's entries (a put's workers)
	 * take turns, so the last one sees every good copy */
	if ((rc = udr__packs_lock(&fd, s, true)) != 0)
		return rc < 0 ? rc : 1;
	udr__pack_hold(s->packs, p); /* its index is read below */
	held = true;
	if ((rc = udr__packset_scan(s)) < 0 || (rc = udr__packw_new(&w, s, p->idx.cls)) < 0)
		goto done;
	pthread_mutex_lock(&s->packs->mu);
	gone = p->gone;
	pthread_mutex_unlock(&s->packs->mu);
	if (gone)
		goto done; /* rewritten meanwhile by another repair */
	for (uint64_t k = 0; k < p->idx.n && rc == 0; k++) {
		udr__pack_entry e;
		udr__loc l;
		unsigned char *d = NULL;
		size_t dl = 0;
		bool good = false;
		udr__idx_record(&e, &p->idx, k);
		memset(&l, 0, sizeof(l));
		l.kind = (enum udr__kind)e.kind;
		l.pack = p;
		l.offset = e.offset;
		l.length = e.length;
		rc = udr__loc_read(&d, &dl, s, &l, &e.hash, UDR__PIECE_HARD_MAX + 4096, NULL);
		if (rc == 0) {
			uint64_t raw;
			if ((rc = udr__loc_raw_size(&raw, s, &l, &e.hash)) == 0)
				rc = udr__packw_append(w, &e.hash, e.kind, raw, d, (uint32_t)dl);
			free(d);
			continue;
		}
		if (rc == UDR_ENOTFOUND) {
			/* the pack went meanwhile (another repair rewrote it) */
			udr_error_clear();
			rc = 1;
			break;
		}
		if (rc != UDR_ECORRUPT)
			break;
		udr_error_clear();
		/* another copy, intact, in another pack or a loose file */
		for (unsigned copy = 0; !good; copy++) {
			udr__loc o;
			bool other;
			if ((rc = udr__obj_find(&o, s, &e.hash, copy, false)) < 0 || o.kind == UDR__K_NONE) {
				udr__loc_free(&o);
				break;
			}
			other = o.pack != p;
			if (other && udr__loc_read(&d, &dl, s, &o, &e.hash, UDR__PIECE_HARD_MAX + 4096, NULL) == 0) {
				good = true;
				free(d);
			}
			udr_error_clear();
			udr__loc_free(&o);
		}
		if (rc < 0)
			break;
		if (!good)
			rc = 1;
	}
	if (rc == 0)
		rc = udr__packw_flush(w);
	if (rc == 0 && !udr__packw_wrote(w, p->hex)) {
		snprintf(path, sizeof(path), "%s/packs/%s.idx", s->path, p->hex);
		if (UDR_IO->unlink(path) < 0 && errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove %s", path);
		snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, p->hex);
		if (rc == 0 && UDR_IO->unlink(path) < 0 && errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove %s", path);
		snprintf(path, sizeof(path), "%s/packs", s->path);
		if (rc == 0)
			rc = udr__fsync_dir(path);
		if (rc == 0 && (rc = udr__packset_scan(s)) == 0) {
			pthread_mutex_lock(&s->packs->mu);
			p->gone = true;
			pthread_mutex_unlock(&s->packs->mu);
		}
	}
done:
	if (held)
		udr__pack_unhold(s->packs, p);
	udr__packw_free(w);
	UDR_IO->close(fd);
	return rc;
}
