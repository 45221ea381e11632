/*
 * ingest.c - the put engine.  Content up to the store's chunk_max becomes
 * one object (compressed when that pays, or a delta against a base).
 * Larger content is cut by FastCDC; worker threads hash, deduplicate,
 * encode and write the pieces while the calling thread reads, cuts and
 * hashes the whole content.  Pieces are written into unnamed O_TMPFILE files
 * and published in batches:
 *
 *   syncfs   - every piece of the batch is durable, none has a name yet;
 *   linkat   - each gets its final name (EEXIST: the same bytes exist);
 *   syncfs   - the names are durable;
 *
 * and the manifest is published last with the usual temp/fsync/link/fsync.
 * A crash at any point leaves only complete, durable pieces under their
 * names.  Dedup still never trusts a name blindly: a content or piece found
 * stored is checked to decode to the bytes being put, and a damaged object
 * is replaced by a good copy (temp, fsync, rename over it, directory fsync),
 * so damage never survives a re-put of the same content.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"
#include "store/gcfence.h"

#define BATCH_PIECES_MAX 1024
#define BATCH_BYTES ((uint64_t)256 << 20)

/* Pieces per batch: each holds a descriptor until its batch is published. */
static size_t batch_pieces_limit(void)
{
	struct rlimit rl;
	size_t n = BATCH_PIECES_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t avail = rl.rlim_cur > 128 ? (size_t)(rl.rlim_cur - 128) / 2 : 16;
		if (avail < n)
			n = avail < 16 ? 16 : avail;
	}
	return n;
}

int udr__ingest(udr_hash *out, udr_store *s, int fd, const void *mem, size_t memlen, const udr_put_options *o,
                uint64_t *repaired);

/* ---- input --------------------------------------------------------------- */

struct src {
	int fd;
	const unsigned char *mem;
	size_t memlen, mempos;
	uint64_t total;
};

static int src_fill(struct src *in, unsigned char *buf, size_t want, size_t *got, bool *eof)
{
	*got = 0;
	if (in->mem) {
		size_t n = in->memlen - in->mempos;
		if (n > want)
			n = want;
		memcpy(buf, in->mem + in->mempos, n);
		in->mempos += n;
		*got = n;
		*eof = in->mempos == in->memlen;
		in->total += n;
		return 0;
	}
	while (*got < want) {
		ssize_t n = UDR_IO->read(in->fd, buf + *got, want - *got);
		if (n < 0)
			return udr__error_io(errno, "read of input failed after %llu bytes; nothing stored",
			                     (unsigned long long)(in->total + *got));
		if (n == 0) {
			*eof = true;
			break;
		}
		*got += (size_t)n;
	}
	in->total += *got;
	return 0;
}

/* ---- delta bases ----------------------------------------------------------- */

struct base {
	bool active;
	uint64_t total;
	uint64_t npieces;
	udr__piece *pieces;
	uint64_t *offsets;
	uint64_t *by_hash;   /* piece indexes sorted by hash, for re-anchoring */
	uint64_t cursor;     /* where in the base the next new piece most likely starts */
	uint64_t input_size; /* size of the new content when known, else 0 */
	uint64_t file_size;  /* st_size of a regular input file at the start */
};

static int base_index(struct base *b);

/* udr__obj_exists for a writer about to reuse h: an object a running gc is
 * removing counts only once the run is over (gcfence.h). */
static int exists_for_write(enum udr__kind *kind, udr_store *s, const udr_hash *h)
{
	int rc;
	for (;;) {
		if ((rc = udr__obj_exists_write(kind, s, h)) < 0 || *kind == UDR__K_NONE)
			return rc;
		if ((rc = udr__gc_doom_check(s, h)) <= 0)
			return rc;
	}
}

static int base_load(struct base *b, udr_store *s, const udr_hash *h)
{
	enum udr__kind kind;
	int rc;
	memset(b, 0, sizeof(*b));
	if (!h || s->format < 2)
		return 0;
	if ((rc = exists_for_write(&kind, s, h)) < 0)
		return rc;
	if (kind == UDR__K_NONE)
		return 0; /* an absent base is ignored (documented) */
	if (kind == UDR__K_MANIFEST) {
		udr__manifest m;
		uint64_t off = 0;
		if ((rc = udr__manifest_load(&m, s, h)) < 0)
			return rc;
		if (!(b->offsets = malloc((size_t)m.npieces * sizeof(uint64_t)))) {
			udr__manifest_free(&m);
			return udr__error_oom();
		}
		for (uint64_t i = 0; i < m.npieces; i++) {
			b->offsets[i] = off;
			off += m.pieces[i].size;
		}
		b->pieces = m.pieces;
		b->npieces = m.npieces;
		b->total = m.total;
	} else {
		uint64_t size;
		if ((rc = udr__content_size(&size, s, h)) < 0)
			return rc;
		if (size == 0 || size > UDR__PIECE_HARD_MAX)
			return 0;
		if (!(b->pieces = malloc(sizeof(udr__piece))) || !(b->offsets = calloc(1, sizeof(uint64_t)))) {
			free(b->pieces);
			return udr__error_oom();
		}
		b->pieces[0].hash = *h;
		b->pieces[0].size = (uint32_t)size;
		b->npieces = 1;
		b->total = size;
	}
	b->active = true;
	return base_index(b);
}

static const struct base *sort_base; /* qsort has no payload argument */

static int cmp_by_hash(const void *a, const void *b)
{
	return memcmp(sort_base->pieces[*(const uint64_t *)a].hash.bytes,
	              sort_base->pieces[*(const uint64_t *)b].hash.bytes, UDR_HASH_SIZE);
}

static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int base_index(struct base *b)
{
	if (!(b->by_hash = malloc((size_t)b->npieces * sizeof(uint64_t))))
		return udr__error_oom();
	for (uint64_t i = 0; i < b->npieces; i++)
		b->by_hash[i] = i;
	pthread_mutex_lock(&sort_mu);
	sort_base = b;
	qsort(b->by_hash, (size_t)b->npieces, sizeof(uint64_t), cmp_by_hash);
	pthread_mutex_unlock(&sort_mu);
	return 0;
}

/* Index of the base piece with hash h, or UINT64_MAX. */
static uint64_t base_find(const struct base *b, const udr_hash *h)
{
	uint64_t lo = 0, hi = b->npieces;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = memcmp(b->pieces[b->by_hash[mid]].hash.bytes, h->bytes, UDR_HASH_SIZE);
		if (c == 0)
			return b->by_hash[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT64_MAX;
}

static void base_free(struct base *b)
{
	free(b->pieces);
	free(b->offsets);
	free(b->by_hash);
	memset(b, 0, sizeof(*b));
}

/* Base pieces a delta names at most (the format allows UDR__DELTA_BASES_MAX). */
#define WINDOW_MAX 3

/*
 * The base pieces most likely to hold the bytes of the next new piece, whose
 * hash is h and length len, called for the pieces in order: *lo receives the
 * first one's index, the return value their number (0: no delta).  The new
 * content is walked in step with the base: a piece found in the base
 * re-anchors the cursor after it (CDC boundaries fall on the same content in
 * both, so after an edit the pieces line up again); otherwise the cursor
 * advances by the piece's length and the window is the base pieces that span
 * the same bytes [cursor, cursor + len), at most WINDOW_MAX of them.  An
 * insert that moves a cut point makes a new piece straddle two base pieces;
 * the window then names both.  (Scaling offsets by the size ratio instead
 * drifts by a whole piece every few pieces when a table grows at its end.)
 */
static int base_next(struct base *b, const udr_hash *h, size_t len, uint64_t *lo)
{
	uint64_t i, start, end, l = 0, hi;
	if (!b->active)
		return 0;
	if ((i = base_find(b, h)) != UINT64_MAX) {
		b->cursor = b->offsets[i] + b->pieces[i].size;
		return 0; /* the same bytes: a dedup hit, no delta needed */
	}
	start = b->cursor;
	end = b->cursor + len;
	b->cursor += len;
	if (udr__delta_write_version == 1)
		start = end = start + len / 2; /* older udr: the piece holding the middle */
	if (start >= b->total)
		start = b->total - 1;
	hi = b->npieces;
	while (hi - l > 1) {
		uint64_t mid = l + (hi - l) / 2;
		if (b->offsets[mid] <= start)
			l = mid;
		else
			hi = mid;
	}
	hi = l + 1;
	while (hi < b->npieces && b->offsets[hi] < end && hi - l < WINDOW_MAX)
		hi++;
	*lo = l;
	return (int)(hi - l);
}

/* ---- encoding ------------------------------------------------------------- */

struct enc {
	enum udr__kind kind;
	unsigned char *bytes; /* NULL for raw: the input itself */
	size_t len;
};

/*
 * The bases a new piece is stored against: the window when a delta on it
 * stays within delta.max_depth.  Else (a long history) the window's own
 * bases, level by level, until they are at most half as deep or are
 * themselves such a step down (flagged UDR__DELTA_STEP): the versions that
 * follow then chain on them again instead of starting over from plain
 * pieces, and the next step lands on the last one (about max_depth / 2
 * versions back) rather than on the older bases it stepped to.  A step lands
 * on the last one only while that leaves a quarter of max_depth to chain
 * on (a max_depth below 8 leaves no such room): each landing is one level deeper than the step it lands on, so
 * landings crept down to the limit, and then every version stepped to the
 * same ever older base, each delta larger than the last.  Past that the piece
 * is stored plain (depth 0), and the chains start over from it.  Each level
 * keeps the WINDOW_MAX middle ones.  *n = 0: no usable bases; *stepped: the
 * bases are a step down.
 */
static int choose_bases(udr_hash *out, int *n, bool *stepped, udr_store *s, const udr__piece *win, int nwin)
{
	udr_hash cur[UDR__DELTA_BASES_MAX * WINDOW_MAX];
	int ncur = 0, rc, margin = s->max_depth / 4;
	*n = 0;
	*stepped = false;
	for (int i = 0; i < nwin && i < WINDOW_MAX; i++)
		cur[ncur++] = win[i].hash;
	for (int step = 0; step <= s->max_depth; step++) {
		udr__delta_hdr hd[WINDOW_MAX];
		udr_hash next[UDR__DELTA_BASES_MAX * WINDOW_MAX];
		int maxd = 0, nnext = 0, first;
		bool landing = false;
		for (int i = 0; i < ncur; i++) {
			if ((rc = udr__delta_peek(&hd[i], s, &cur[i])) < 0)
				return rc;
			if (hd[i].depth > maxd)
				maxd = hd[i].depth;
			landing |= (hd[i].flags & UDR__DELTA_STEP) != 0;
		}
		if (step > 0 && landing && margin > 1 && maxd > s->max_depth - margin)
			return 0; /* the last step is too deep to land on: a plain piece */
		if (maxd + 1 <= s->max_depth && (step == 0 || maxd <= s->max_depth / 2 || landing)) {
			memcpy(out, cur, (size_t)ncur * sizeof(udr_hash));
			*n = ncur;
			*stepped = step > 0;
			return 0;
		}
		if (udr__delta_write_version == 1)
			return 0; /* older udr: no delta at the limit */
		for (int i = 0; i < ncur; i++)
			for (int k = 0; k < (hd[i].depth ? hd[i].nbases : 1); k++) {
				const udr_hash *c = hd[i].depth ? &hd[i].bases[k] : &cur[i];
				bool dup = false;
				for (int m = 0; m < nnext && !dup; m++)
					dup = udr_hash_equal(&next[m], c);
				if (!dup)
					next[nnext++] = *c;
			}
		first = nnext > WINDOW_MAX ? (nnext - WINDOW_MAX) / 2 : 0;
		ncur = nnext - first > WINDOW_MAX ? WINDOW_MAX : nnext - first;
		memmove(cur, next + first, (size_t)ncur * sizeof(udr_hash));
	}
	return 0;
}

/* Bytes compared at a piece's ends to find the base pieces it spans. */
#define EDGE 32

/*
 * A delta of data against the window, in e when it is at least 1/8 smaller
 * than data.
 * The window is trimmed to the base pieces the new piece spans: it starts at
 * the one whose first EDGE bytes the piece starts with and ends at the one
 * whose last EDGE bytes it ends with.  Most pieces of an edited content line
 * up with one base piece (CDC cut points fall on the same bytes) and get
 * that one alone; only a piece whose cut points moved names its
 * neighbours.  Fewer bases keep the chains narrow: every base of a delta
 * must be decoded to read it.
 */
static int delta_try(struct enc *e, udr_store *s, const unsigned char *data, size_t len, const udr__piece *win,
                     int nwin, udr__bcache *cache)
{
	udr_hash bases[UDR__DELTA_BASES_MAX];
	const udr__bref *ref[UDR__DELTA_BASES_MAX] = {NULL};
	const unsigned char *bd[UDR__DELTA_BASES_MAX] = {NULL}, *pre;
	unsigned char *prefix = NULL, *frame = NULL;
	size_t bl[UDR__DELTA_BASES_MAX] = {0}, plen = 0, fl;
	int bdepth[UDR__DELTA_BASES_MAX] = {0}, nb = 0, first = -1, last = -1, depth = 0, rc;
	bool stepped = false;
	if ((rc = choose_bases(bases, &nb, &stepped, s, win, nwin)) < 0 || nb == 0)
		goto done;
	for (int i = 0; i < nb; i++) {
		/* verified: a delta against damaged base bytes would keep the damage */
		if ((rc = udr__base_load(&ref[i], &bdepth[i], s, &bases[i], cache)) < 0)
			goto done;
		bd[i] = udr__bref_data(ref[i], &bl[i]);
		if (len >= EDGE && bl[i] >= EDGE) {
			if (first < 0 && memcmp(data, bd[i], EDGE) == 0)
				first = i;
			if (first >= 0 && i >= first && memcmp(data + len - EDGE, bd[i] + bl[i] - EDGE, EDGE) == 0)
				last = i;
		}
	}
	if (first < 0)
		first = 0;
	if (last < first)
		last = nb - 1;
	for (int i = first; i <= last; i++) {
		if (bl[i] > UDR__DELTA_PREFIX_MAX - plen) {
			last = i - 1; /* the bases that fit */
			break;
		}
		plen += bl[i];
		if (bdepth[i] + 1 > depth)
			depth = bdepth[i] + 1;
	}
	nb = last - first + 1;
	if (nb <= 0 || depth > s->max_depth)
		goto done;
	if (nb == 1) {
		pre = bd[first]; /* lent by the cache: no copy */
	} else {
		if (!(prefix = malloc(plen))) {
			rc = udr__error_oom();
			goto done;
		}
		plen = 0;
		for (int i = first; i <= last; i++) {
			memcpy(prefix + plen, bd[i], bl[i]);
			plen += bl[i];
		}
		pre = prefix;
	}
	if ((rc = udr__zstd_compress(&frame, &fl, data, len, s->level > 0 ? s->level : 1, pre, plen)) < 0)
		goto done;
	if (fl + 12 + (size_t)nb * UDR_HASH_SIZE < len - len / 8) { /* the margin, against the raw piece */
		udr__delta_hdr h;
		memset(&h, 0, sizeof(h));
		h.version = udr__delta_write_version;
		h.depth = depth;
		h.nbases = nb;
		h.flags = stepped && h.version == 2 ? UDR__DELTA_STEP : 0;
		h.raw_size = (uint32_t)len;
		memcpy(h.bases, bases + first, (size_t)nb * sizeof(udr_hash));
		if ((rc = udr__delta_encode(&e->bytes, &e->len, &h, frame, fl)) == 0)
			e->kind = UDR__K_DELTA;
	}
done:
	for (int i = 0; i < UDR__DELTA_BASES_MAX; i++)
		udr__bref_release(cache, ref[i]);
	free(prefix);
	free(frame);
	if (rc < 0 && rc != UDR_ENOMEM) {
		udr_error_clear(); /* an unusable base only means: no delta */
		rc = 0;
	}
	return rc;
}

/*
 * How to store a piece: a delta against the window (win, nwin; may be
 * empty) when it is smaller than the piece compressed on its own by at least
 * 1/8 (a delta costs its bases' decoding to read), compressed when that
 * saves at least 1/32, else raw.  A delta at most a quarter of the size the
 * 4 KiB probe predicts for plain compression is taken without compressing
 * the piece whole.
 */
static int encode(struct enc *e, udr_store *s, const unsigned char *data, size_t len, const udr__piece *win, int nwin,
                  udr__bcache *cache)
{
	unsigned char *z = NULL;
	size_t zlen = 0, zest = 0;
	bool incompressible = false;
	int rc;
	e->kind = UDR__K_RAW;
	e->bytes = NULL;
	e->len = len;
	if (s->format < 2 || len < 64)
		return 0;
	if (s->level > 0 && len >= 32768) {
		/* probe: random or already-compressed bytes are not worth a full
		 * pass (zstd level 1 on 4 KiB costs ~1% of the full one) */
		if ((rc = udr__zstd_compress(&z, &zlen, data + len / 2 - 2048, 4096, 1, NULL, 0)) < 0)
			return rc;
		free(z);
		z = NULL;
		incompressible = zlen >= 4096 - 4096 / 32;
		zest = len / 4096 * zlen;
	}
	if (nwin > 0 && cache && (rc = delta_try(e, s, data, len, win, nwin, cache)) < 0)
		return rc;
	if (incompressible || (e->kind == UDR__K_DELTA && e->len <= zest / 4))
		return 0;
	if (s->level > 0) {
		if ((rc = udr__zstd_compress(&z, &zlen, data, len, s->level, NULL, 0)) < 0)
			return rc;
		if (zlen < len - len / 32 && (e->kind != UDR__K_DELTA || e->len >= zlen - zlen / 8)) {
			free(e->bytes);
			e->kind = UDR__K_ZST;
			e->bytes = z;
			e->len = zlen;
			return 0;
		}
		free(z);
	}
	return 0;
}

/* Is some form of h stored?  A name younger than a few seconds may wait for
 * another writer's sync; *recent tells the caller to sync before relying on
 * it (a loose object's directory, or packs/ for a pack's index). */
static int stored(udr_store *s, const udr_hash *h, bool *recent, enum udr__kind *kindp)
{
	udr__loc l;
	struct stat st;
	int rc;
	*kindp = UDR__K_NONE;
	if (!s->packs) {
		/* a fan-out directory not known to exist is looked at first: in a
		 * young store most pieces land in a directory that does not exist,
		 * and one stat then answers for all four object names */
		char hex[UDR_HASH_HEXSIZE + 1];
		unsigned idx = (unsigned)(h->bytes[0] << 8 | h->bytes[1]);
		if (!s->fanout_known || !(__atomic_load_n(&s->fanout_known[idx >> 3], __ATOMIC_ACQUIRE) & (1u << (idx & 7)))) {
			char *p = udr__obj_path(s, h, UDR__K_RAW, hex);
			if (!p)
				return UDR_ENOMEM;
			p[s->pathlen + 6] = '\0'; /* <path>/ab/cd */
			rc = UDR_IO->stat(p, &st);
			free(p);
			if (rc < 0 && errno == ENOENT)
				return 0;
		}
	}
	/* no rescan on a miss: a pack published meanwhile only means a second
	 * copy, which is legal */
	for (;;) {
		if ((rc = udr__obj_find(&l, s, h, 0, false)) < 0)
			return rc;
		if (l.kind == UDR__K_NONE)
			return 0;
		/* a copy a running gc is removing is reused only once it is over */
		if ((rc = udr__gc_doom_check(s, h)) == 0)
			break;
		udr__loc_free(&l);
		if (rc < 0)
			return rc;
	}
	*kindp = l.kind;
	if (recent && time(NULL) - (l.pack ? l.pack->mtime : (int64_t)l.st.st_ctime) < 5)
		*recent = true;
	udr__loc_free(&l);
	return 1;
}

/* Make the names a recent dedup hit relies on durable: the loose object's
 * directory, or packs/ for a pack's index. */
static int sync_recent(udr_store *s, const udr_hash *h)
{
	udr__loc l;
	int rc;
	if ((rc = udr__obj_find(&l, s, h, 0, false)) < 0)
		return rc;
	if (l.path) {
		rc = udr__fsync_parent(l.path);
	} else if (l.pack) {
		char *d = udr__path_join(s->path, "packs");
		rc = d ? udr__fsync_dir(d) : UDR_ENOMEM;
		free(d);
	}
	udr__loc_free(&l);
	return rc;
}

/* ---- packs (format 3) ------------------------------------------------------- */

/* Store one object alone in a new pack of class cls, durable when this
 * returns, then let the packs of that class merge geometrically. */
static int pack_one(udr_store *s, int cls, const udr_hash *h, enum udr__kind kind, uint64_t raw_size,
                    const void *payload, size_t len)
{
	udr__packw *w = NULL;
	int rc;
	if (len > UINT32_MAX)
		return udr__error_set(UDR_EINVAL, "object too large for a pack entry");
	if ((rc = udr__packw_new(&w, s, cls)) < 0)
		return rc;
	if ((rc = udr__packw_append(w, h, (int)kind, raw_size, payload, (uint32_t)len)) == 0)
		rc = udr__packw_flush(w);
	udr__packw_free(w);
	if (rc == 0)
		rc = udr__ingest_repack(s, cls);
	return rc;
}

int udr__ingest_repack(udr_store *s, int cls)
{
	/* A failed repack leaves more packs, never less data; it is still
	 * reported (the put's own objects are durable: a retry finds them). */
	return udr__pack_repack(s, cls);
}

/* ---- repairs ------------------------------------------------------------------ */

static void count_repair(uint64_t *repaired)
{
	if (repaired)
		__atomic_fetch_add(repaired, 1, __ATOMIC_RELAXED);
}

/*
 * Publish the good copy of h in the temp file t as its object of kind
 * `kind`, replacing any file of that name (rename: readers see the damaged
 * or the good object, never a mix), then remove the damaged object of kind
 * `damaged` when it has another name.  A good copy is durable under its name
 * before anything is removed.
 */
static int publish_repair(udr_store *s, const udr_hash *h, udr__tmp *t, enum udr__kind kind, enum udr__kind damaged)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	char *final = udr__obj_path(s, h, kind, hex), *old = NULL;
	int rc;
	if (!final) {
		udr__tmp_discard(t);
		return UDR_ENOMEM;
	}
	if ((rc = udr__store_fanout(s, final, true)) < 0) {
		udr__tmp_discard(t);
		goto done;
	}
	if ((rc = udr__tmp_publish(t, final, UDR__PUBLISH_REPLACE, true)) < 0)
		goto done;
	if (damaged != kind && damaged != UDR__K_NONE) {
		if (!(old = udr__obj_path(s, h, damaged, hex))) {
			rc = UDR_ENOMEM;
			goto done;
		}
		if (UDR_IO->unlink(old) < 0 && errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove damaged chunk %s", old);
		else
			rc = udr__fsync_parent(old);
	}
done:
	free(final);
	free(old);
	return rc < 0 ? rc : 0;
}

static int encode(struct enc *e, udr_store *s, const unsigned char *data, size_t len, const udr__piece *win, int nwin,
                  udr__bcache *cache);

/*
 * Format 3: a good copy of h was just made durable in a new pack; the first
 * copy found before (damaged) goes: a loose file is removed, a pack rewritten
 * without it (udr__pack_drop_damaged).
 */
static int drop_damaged(udr_store *s, udr__loc *damaged)
{
	int rc = 0;
	if (damaged->path) {
		if (UDR_IO->unlink(damaged->path) < 0 && errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove damaged chunk %s", damaged->path);
		else
			rc = udr__fsync_parent(damaged->path);
	} else if (damaged->pack) {
		/* packs are immutable: the damaged one is rewritten without what
		 * has good copies now (left alone while it holds other damage) */
		rc = udr__pack_drop_damaged(s, damaged->pack);
	}
	udr__loc_free(damaged);
	return rc < 0 ? rc : 0;
}

/* Store a good copy of data as h's object (never a delta: the damage may be
 * in a base), replacing the damaged object of kind `damaged`. */
static int repair_object(udr_store *s, const udr_hash *h, enum udr__kind damaged, const unsigned char *data,
                         size_t len)
{
	struct enc e;
	udr__tmp t = {-1, NULL};
	int rc;
	if ((rc = encode(&e, s, data, len, NULL, 0, NULL)) < 0)
		return rc;
	if (s->packs) {
		udr__loc l;
		if ((rc = udr__obj_find(&l, s, h, 0, false)) == 0) {
			if ((rc = pack_one(s, UDR__PACK_CLASS_DATA, h, e.kind, len, e.bytes ? e.bytes : data, e.len)) == 0)
				rc = drop_damaged(s, &l);
			udr__loc_free(&l);
		}
		free(e.bytes);
		return rc;
	}
	if ((rc = udr__tmp_create(&t, s->tmpdir)) == 0) {
		if ((rc = udr__write_all(t.fd, e.bytes ? e.bytes : data, e.len, t.path)) < 0)
			udr__tmp_discard(&t);
		else
			rc = publish_repair(s, h, &t, e.kind, damaged);
	}
	free(e.bytes);
	return rc;
}

/*
 * A dedup hit on h, stored as `kind`: the object must decode to data (the
 * bytes are compared, no rehash).  Damaged, missing or unreadable: replace it
 * by a good copy.  0 when nothing had to be done, 1 when repaired.
 */
static int dedup_check(udr_store *s, const udr_hash *h, enum udr__kind kind, const unsigned char *data, size_t len,
                       uint64_t *repaired, udr__bcache *cache)
{
	int rc;
	if (kind == UDR__K_DELTA && cache) {
		/* through the put's cache: neighbouring deltas share their bases */
		unsigned char *d = NULL;
		size_t dl = 0;
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		if ((rc = udr__piece_load_c(&d, &dl, NULL, s, h, len, false, cache)) == 0 && memcmp(d, data, len) != 0)
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: it does not decode to its content", hex);
		free(d);
	} else {
		rc = udr__content_check(s, h, data, len);
	}
	if (rc == 0 || (rc != UDR_ECORRUPT && rc != UDR_ENOTFOUND && rc != UDR_EIO))
		return rc;
	udr_error_clear();
	if ((rc = repair_object(s, h, kind, data, len)) < 0)
		return rc;
	count_repair(repaired);
	return 1;
}

/* ---- single objects --------------------------------------------------------- */

static int put_single(udr_hash *out, udr_store *s, const unsigned char *data, size_t len, struct base *b,
                      uint64_t *repaired, udr__bcache *cache)
{
	uint64_t lo = 0;
	int nwin;
	char hex[UDR_HASH_HEXSIZE + 1];
	struct enc e;
	udr__tmp t = {-1, NULL};
	enum udr__kind kind;
	bool recent = false;
	char *final = NULL;
	int rc;
	udr_hash_buf(out, data, len);
	if ((rc = stored(s, out, &recent, &kind)) < 0)
		return rc;
	if (rc == 1) {
		if ((rc = dedup_check(s, out, kind, data, len, repaired, cache)) != 0)
			return rc < 0 ? rc : 0; /* a repair is durable already */
		if (recent)
			rc = sync_recent(s, out);
		return rc < 0 ? rc : 0;
	}
	nwin = base_next(b, out, len, &lo);
	if ((rc = encode(&e, s, data, len, nwin ? b->pieces + lo : NULL, nwin, cache)) < 0)
		return rc;
	if (s->packs) {
		rc = pack_one(s, UDR__PACK_CLASS_DATA, out, e.kind, len, e.bytes ? e.bytes : data, e.len);
		goto done;
	}
	if (!(final = udr__obj_path(s, out, e.kind, hex))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
		goto done;
	if ((rc = udr__write_all(t.fd, e.bytes ? e.bytes : data, e.len, t.path)) < 0) {
		udr__tmp_discard(&t);
		goto done;
	}
	if ((rc = udr__store_fanout(s, final, true)) < 0) {
		udr__tmp_discard(&t);
		goto done;
	}
	rc = udr__tmp_publish(&t, final, UDR__PUBLISH_NEW, true);
	if (rc == 1) /* a concurrent writer published the same bytes first */
		rc = udr__fsync_parent(final);
done:
	free(e.bytes);
	free(final);
	return rc < 0 ? rc : 0;
}

/* ---- chunked content ------------------------------------------------------- */

struct pending {
	int fd;
	char *tmp;   /* named temp file when O_TMPFILE is not available */
	char *final;
};

/* A block of input as read: the pieces cut from it are not copied, their
 * jobs point into it and hold a reference each (the reading thread one more
 * while it reads into it and cuts). */
struct block {
	size_t refs;
	unsigned char data[];
};

static void block_unref(struct block *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

struct job {
	uint64_t index;
	uint64_t offset;
	udr_hash hash;           /* of data (by the reading thread when hashed) */
	bool hashed;             /* else the worker hashes it */
	uint64_t base_lo;        /* delta window: base pieces [base_lo, base_lo + nbases) */
	int nbases;
	const unsigned char *data; /* in blk */
	struct block *blk;
	size_t len;
	struct job *next;
};

struct engine {
	udr_store *s;
	struct base *base;
	udr__bcache *cache; /* decoded base pieces, shared by the workers */
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_done, cv_space;
	struct job *head, *tail;
	size_t queued, queue_max;
	size_t busy;
	size_t space_waiters;    /* the reading thread waits for room in the queue */
	bool stop;
	int err;
	char errmsg[1024];
	udr__piece *results; /* by piece index */
	size_t cap_results;
	struct pending *pend;
	size_t npend, cap_pend;
	bool recent;
	bool no_tmpfile;
	udr__packw *pw; /* format 3: the pieces go into packs */
	struct wctx *w; /* per worker (one when there are no workers) */
	size_t nw;
	uint64_t own_repairs; /* repairs counted when the caller does not count */
	uint64_t *repaired; /* damaged objects replaced (may be NULL) */
};

/* What one worker keeps: format 3 appends its encoded pieces in batches,
 * one lock and one write per COMMIT_BYTES instead of one per piece. */
struct wctx {
	struct engine *g;
	udr__packw_batch batch;
};

/* 1 MiB: the batch is still in the worker's cache when write(2) copies it
 * into the page cache; 4 MiB batches made that copy 3-7 times as costly
 * (perf, 1 GiB put on ext4: 1,200-2,600 samples of
 * copy_folio_from_iter_atomic against 360). */
#define COMMIT_BYTES ((size_t)1 << 20)
#define GROUP 8 /* pieces queued per lock by the reading thread */

static void engine_fail(struct engine *g, int rc)
{
	/* called with g->mu held */
	if (!g->err) {
		g->err = rc;
		snprintf(g->errmsg, sizeof(g->errmsg), "%s", udr_error_last()->message);
	}
}

static int add_pending(struct engine *g, int fd, char *tmp, char *final)
{
	if (g->npend == g->cap_pend) {
		size_t cap = g->cap_pend ? g->cap_pend * 2 : 64;
		struct pending *p = realloc(g->pend, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		g->pend = p;
		g->cap_pend = cap;
	}
	g->pend[g->npend].fd = fd;
	g->pend[g->npend].tmp = tmp;
	g->pend[g->npend].final = final;
	g->npend++;
	return 0;
}

/* Hash, dedup, encode and write one piece (into the worker's batch, or an
 * unnamed file). */
static int process(struct engine *g, struct wctx *wc, struct job *j, udr_hash *h)
{
	udr_store *s = g->s;
	char hex[UDR_HASH_HEXSIZE + 1];
	struct enc e;
	bool recent = false;
	enum udr__kind kind;
	char *final = NULL, *tmp = NULL;
	int fd = -1, rc;
	if (!j->hashed)
		udr_hash_buf(&j->hash, j->data, j->len);
	*h = j->hash;
	if ((rc = stored(s, h, &recent, &kind)) < 0)
		return rc;
	if (rc == 1) {
		if ((rc = dedup_check(s, h, kind, j->data, j->len, g->repaired, g->cache)) != 0)
			return rc < 0 ? rc : 0;
		if (recent) {
			pthread_mutex_lock(&g->mu);
			g->recent = true;
			pthread_mutex_unlock(&g->mu);
		}
		return 0;
	}
	if ((rc = encode(&e, s, j->data, j->len, j->nbases ? g->base->pieces + j->base_lo : NULL, j->nbases,
	                 g->cache)) < 0)
		return rc;
	if (g->pw) {
		/* appends are serialised, a batch at a time; encoding above ran
		 * in parallel */
		rc = udr__packw_batch_add(&wc->batch, h, (int)e.kind, j->len, e.bytes ? e.bytes : j->data,
		                          (uint32_t)e.len);
		free(e.bytes);
		if (rc == 0 && wc->batch.len >= COMMIT_BYTES)
			rc = udr__packw_batch_commit(g->pw, &wc->batch);
		return rc;
	}
	if (!(final = udr__obj_path(s, h, e.kind, hex))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	if (!g->no_tmpfile) {
		fd = UDR_IO->open(s->tmpdir, O_TMPFILE | O_RDWR, 0644);
		if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT))
			g->no_tmpfile = true;
		else if (fd < 0) {
			rc = udr__error_io(errno, "cannot create temp file in %s", s->tmpdir);
			goto done;
		}
	}
	if (fd < 0) {
		udr__tmp t = {-1, NULL};
		if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
			goto done;
		fd = t.fd;
		tmp = t.path;
	}
	if ((rc = udr__write_all(fd, e.bytes ? e.bytes : j->data, e.len, tmp ? tmp : "temp file")) < 0)
		goto done;
	pthread_mutex_lock(&g->mu);
	rc = add_pending(g, fd, tmp, final);
	pthread_mutex_unlock(&g->mu);
	if (rc == 0) {
		fd = -1;
		tmp = final = NULL;
	}
done:
	if (fd >= 0)
		UDR_IO->close(fd);
	if (tmp)
		UDR_IO->unlink(tmp);
	free(tmp);
	free(final);
	free(e.bytes);
	return rc;
}

/* Record the outcome of job j; called with g->mu held. */
static void job_done(struct engine *g, const struct job *j, int rc, const udr_hash *h)
{
	if (rc < 0) {
		engine_fail(g, rc);
	} else {
		g->results[j->index].hash = *h;
		g->results[j->index].size = (uint32_t)j->len;
	}
}

static void job_free(struct job *j)
{
	if (j) {
		block_unref(j->blk);
		free(j);
	}
}

static void *worker(void *arg)
{
	struct wctx *wc = arg;
	struct engine *g = wc->g;
	struct job *j = NULL;
	udr_hash h;
	int rc = 0;
	/* one lock per piece: the outcome of the last one and the next job */
	pthread_mutex_lock(&g->mu);
	for (;;) {
		struct job *done = j;
		if (done) {
			job_done(g, done, rc, &h);
			g->busy--;
			if (!g->busy && !g->head)
				pthread_cond_broadcast(&g->cv_done);
		}
		while (!g->head && !g->stop)
			pthread_cond_wait(&g->cv_job, &g->mu);
		if (!g->head && g->stop) {
			pthread_mutex_unlock(&g->mu);
			job_free(done);
			return NULL;
		}
		j = g->head;
		g->head = j->next;
		if (!g->head)
			g->tail = NULL;
		g->queued--;
		g->busy++;
		/* the reader refills once half the queue is free: one wakeup per
		 * few pieces rather than one per piece */
		if (g->space_waiters && g->queued <= g->queue_max / 2)
			pthread_cond_signal(&g->cv_space);
		pthread_mutex_unlock(&g->mu);
		job_free(done);
		rc = process(g, wc, j, &h);
		pthread_mutex_lock(&g->mu);
	}
}

/* Queue the jobs js[0..*np) (one lock for them all), or run them here when
 * there are no workers; *np is 0 afterwards (the jobs are the engine's). */
static int submit(struct engine *g, struct job **js, size_t *np, int nthreads)
{
	size_t n = *np;
	int rc = 0;
	*np = 0;
	if (nthreads == 0) {
		for (size_t i = 0; i < n; i++) {
			udr_hash h;
			int r = rc < 0 ? rc : process(g, &g->w[0], js[i], &h);
			pthread_mutex_lock(&g->mu);
			job_done(g, js[i], r, &h);
			rc = g->err;
			pthread_mutex_unlock(&g->mu);
			job_free(js[i]);
		}
		return rc;
	}
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		struct job *j = js[i];
		while (g->queued >= g->queue_max && !g->err) {
			pthread_cond_broadcast(&g->cv_job); /* what is queued so far */
			g->space_waiters++;
			pthread_cond_wait(&g->cv_space, &g->mu);
			g->space_waiters--;
		}
		if (g->err) {
			for (size_t k = i; k < n; k++)
				job_free(js[k]);
			break;
		}
		j->next = NULL;
		if (g->tail)
			g->tail->next = j;
		else
			g->head = j;
		g->tail = j;
		g->queued++;
	}
	pthread_cond_broadcast(&g->cv_job);
	rc = g->err;
	pthread_mutex_unlock(&g->mu);
	return rc;
}

static void wait_idle(struct engine *g, int nthreads)
{
	if (nthreads == 0)
		return;
	pthread_mutex_lock(&g->mu);
	while (g->head || g->busy)
		pthread_cond_wait(&g->cv_done, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void discard_pending(struct engine *g)
{
	for (size_t i = 0; i < g->npend; i++) {
		UDR_IO->close(g->pend[i].fd);
		if (g->pend[i].tmp)
			UDR_IO->unlink(g->pend[i].tmp);
		free(g->pend[i].tmp);
		free(g->pend[i].final);
	}
	g->npend = 0;
}

static int sync_store(udr_store *s)
{
	int fd = UDR_IO->open(s->path, O_RDONLY | O_DIRECTORY, 0), rc = 0;
	if (fd < 0)
		return udr__error_io(errno, "cannot open %s", s->path);
	if (UDR_IO->syncfs(fd) < 0)
		rc = udr__error_io(errno, "syncfs of the file system holding %s failed", s->path);
	UDR_IO->close(fd);
	return rc;
}

/* Publish the finished pieces: data durable, then names, then names
 * durable.  Workers keep encoding meanwhile; what they finish later goes to
 * the next batch. */
static int flush(struct engine *g)
{
	struct pending *list;
	size_t n;
	bool recent;
	int rc = 0;
	pthread_mutex_lock(&g->mu);
	list = g->pend;
	n = g->npend;
	recent = g->recent;
	g->pend = NULL;
	g->npend = g->cap_pend = 0;
	g->recent = false;
	pthread_mutex_unlock(&g->mu);
	if (g->pw) {
		/* the workers' batches (they are idle), then one pack (or a few,
		 * past the target size): data and index durable, then their
		 * names; found pieces whose pack may be young wait for its name to
		 * be durable */
		for (size_t i = 0; i < g->nw && rc == 0; i++)
			rc = udr__packw_batch_commit(g->pw, &g->w[i].batch);
		if (rc == 0 && (rc = udr__packw_flush(g->pw)) == 0 && recent)
			rc = sync_store(g->s);
		goto done;
	}
	if (n == 0 && !recent)
		goto done;
	if ((rc = sync_store(g->s)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		struct pending *p = &list[i];
		int r;
		/* no fsync of new directories: the syncfs below covers them */
		if ((rc = udr__store_fanout(g->s, p->final, false)) < 0)
			goto done;
		r = p->tmp ? UDR_IO->link(p->tmp, p->final) : UDR_IO->link_fd(p->fd, p->final);
		if (r < 0 && errno != EEXIST) {
			rc = udr__error_io(errno, "cannot publish %s", p->final);
			goto done;
		}
	}
	rc = sync_store(g->s);
done:
	for (size_t i = 0; i < n; i++) {
		UDR_IO->close(list[i].fd);
		if (list[i].tmp)
			UDR_IO->unlink(list[i].tmp);
		free(list[i].tmp);
		free(list[i].final);
	}
	free(list);
	return rc;
}

/* Publish the manifest of h; with `damaged` (not UDR__K_NONE) it replaces
 * the damaged object of that kind (publish_repair). */
static int publish_manifest(udr_store *s, const udr_hash *h, const udr__manifest *m, enum udr__kind damaged)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char *bytes = NULL;
	size_t len;
	char *final;
	int rc;
	if (!(final = udr__obj_path(s, h, UDR__K_MANIFEST, hex)))
		return UDR_ENOMEM;
	if ((rc = udr__manifest_encode(&bytes, &len, m, h)) < 0)
		goto done;
	if (s->packs) {
		udr__loc l;
		if ((rc = udr__obj_find(&l, s, h, 0, false)) == 0) {
			rc = pack_one(s, UDR__PACK_CLASS_META, h, UDR__K_MANIFEST, m->total, bytes, len);
			if (rc == 0 && damaged != UDR__K_NONE)
				rc = drop_damaged(s, &l);
			udr__loc_free(&l);
		}
	} else if (damaged != UDR__K_NONE) {
		udr__tmp t = {-1, NULL};
		if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
			goto done;
		if ((rc = udr__write_all(t.fd, bytes, len, t.path)) < 0)
			udr__tmp_discard(&t);
		else
			rc = publish_repair(s, h, &t, UDR__K_MANIFEST, damaged);
	} else if ((rc = udr__store_fanout(s, final, true)) == 0) {
		rc = udr__write_file_atomic(s->tmpdir, final, bytes, len, UDR__PUBLISH_NEW, true);
		if (rc == 1)
			rc = udr__fsync_parent(final);
	}
done:
	free(bytes);
	free(final);
	return rc < 0 ? rc : 0;
}

/* The same manifest (pieces and sizes) as m? */
static bool manifest_same(const udr__manifest *a, const udr__manifest *m)
{
	if (a->total != m->total || a->npieces != m->npieces)
		return false;
	for (uint64_t i = 0; i < m->npieces; i++)
		if (a->pieces[i].size != m->pieces[i].size || !udr_hash_equal(&a->pieces[i].hash, &m->pieces[i].hash))
			return false;
	return true;
}

static int null_sink(const void *d, size_t n, void *payload)
{
	(void)d;
	(void)n;
	(void)payload;
	return 0;
}

/*
 * Chunked content h was found stored as `kind` while m lists its pieces, each
 * checked (or written) by this put.  A manifest listing the same pieces is
 * good when it parses; anything else is decoded and rehashed.  Damaged: m
 * replaces it.
 */
static int check_stored_content(udr_store *s, const udr_hash *h, enum udr__kind kind, const udr__manifest *m,
                                uint64_t *repaired)
{
	int rc = 0;
	if (kind == UDR__K_MANIFEST) {
		udr__manifest have;
		if ((rc = udr__manifest_load(&have, s, h)) == 0) {
			bool same = manifest_same(&have, m);
			udr__manifest_free(&have);
			if (same)
				return 0;
		} else if (rc != UDR_ECORRUPT && rc != UDR_ENOTFOUND) {
			return rc;
		}
	}
	if (rc == 0) { /* not a manifest, or one of other pieces */
		rc = udr__content_stream(s, h, true, null_sink, NULL);
		if (rc == 0 || (rc != UDR_ECORRUPT && rc != UDR_ENOTFOUND && rc != UDR_EIO))
			return rc;
	}
	udr_error_clear();
	if ((rc = publish_manifest(s, h, m, kind)) < 0)
		return rc;
	count_repair(repaired);
	return 0;
}

/*
 * Format 3, after a put repaired pieces: repairs by parallel workers each
 * tried to rewrite the damaged pack while others were still writing their
 * good copies; now that all exist, packs still holding a damaged copy of
 * one of m's pieces are rewritten without what has good copies.
 */
static int drop_damaged_pieces(udr_store *s, const udr__manifest *m)
{
	for (uint64_t i = 0; i < m->npieces; i++) {
		for (unsigned copy = 0;; copy++) {
			udr__loc l;
			unsigned char *d = NULL;
			size_t dl;
			int rc;
			if ((rc = udr__obj_find(&l, s, &m->pieces[i].hash, copy, false)) < 0)
				return rc;
			if (l.kind == UDR__K_NONE)
				break;
			if (l.pack && udr__loc_read(&d, &dl, s, &l, &m->pieces[i].hash, UDR__PIECE_HARD_MAX + 4096, NULL) ==
			                  UDR_ECORRUPT) {
				udr_error_clear();
				rc = udr__pack_drop_damaged(s, l.pack);
				udr__loc_free(&l);
				if (rc < 0)
					return rc;
				break;
			}
			udr_error_clear();
			free(d);
			udr__loc_free(&l);
		}
	}
	return 0;
}

static int put_chunked(udr_hash *out, udr_store *s, struct src *in, const unsigned char *first, size_t bufcap,
                       size_t have, bool eof, struct base *b, const udr_put_options *o, uint64_t *repaired,
                       udr__bcache *cache)
{
	struct engine g;
	struct block *cur = NULL; /* the block read into and cut */
	unsigned char *buf;
	udr_hasher *whole = NULL;
	pthread_t tids[16];
	int nthreads = s->threads > 1 ? s->threads : 0, started = 0, rc = 0;
	struct job *grp[GROUP]; /* cut, not queued yet: queued a group per lock */
	size_t ngrp = 0, start = 0, batch_pieces = 0, batch_limit = batch_pieces_limit();
	uint64_t offset = 0, index = 0, batch_bytes = 0;
	udr__manifest m;

	memset(&g, 0, sizeof(g));
	g.s = s;
	g.base = b;
	g.cache = cache;
	g.repaired = repaired ? repaired : &g.own_repairs;
	g.queue_max = (size_t)nthreads * 8 + 8;
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv_job, NULL);
	pthread_cond_init(&g.cv_done, NULL);
	pthread_cond_init(&g.cv_space, NULL);
	if (bufcap > SIZE_MAX - sizeof(*cur) || !(cur = malloc(sizeof(*cur) + bufcap))) {
		rc = udr__error_oom();
		goto out;
	}
	cur->refs = 1;
	buf = cur->data;
	memcpy(buf, first, have);
	if ((rc = udr_hasher_new(&whole)) < 0)
		goto out;
	if (s->packs && (rc = udr__packw_new(&g.pw, s, UDR__PACK_CLASS_DATA)) < 0)
		goto out;
	if (!(g.w = calloc((size_t)(nthreads ? nthreads : 1), sizeof(*g.w)))) {
		rc = udr__error_oom();
		goto out;
	}
	g.nw = (size_t)(nthreads ? nthreads : 1);
	for (size_t i = 0; i < g.nw; i++) {
		g.w[i].g = &g;
		udr__packw_batch_init(&g.w[i].batch);
	}
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, worker, &g.w[i]) != 0)
			break;
		started++;
	}
	if (nthreads && !started)
		nthreads = 0;
	for (;;) {
		while (have - start >= s->cdc.max || (eof && have > start)) {
			size_t cut = udr__cdc_cut(&s->cdc, buf + start, have - start, eof);
			struct job *j;
			if (index == g.cap_results) {
				size_t cap = g.cap_results ? g.cap_results * 2 : 1024;
				udr__piece *p;
				pthread_mutex_lock(&g.mu);
				p = realloc(g.results, cap * sizeof(*p));
				if (p) {
					g.results = p;
					g.cap_results = cap;
				}
				pthread_mutex_unlock(&g.mu);
				if (!p) {
					rc = udr__error_oom();
					goto out;
				}
			}
			if (!(j = malloc(sizeof(*j)))) {
				rc = udr__error_oom();
				goto out;
			}
			j->data = buf + start;
			j->blk = cur;
			__atomic_add_fetch(&cur->refs, 1, __ATOMIC_RELAXED);
			j->len = cut;
			/* the delta window follows the pieces in order, by their
			 * hashes; without a base the workers hash in parallel */
			j->hashed = b->active;
			j->nbases = 0;
			if (j->hashed) {
				udr_hash_buf(&j->hash, j->data, cut);
				j->nbases = base_next(b, &j->hash, cut, &j->base_lo);
			}
			j->index = index++;
			j->offset = offset;
			udr_hasher_update(whole, buf + start, cut);
			start += cut;
			offset += cut;
			grp[ngrp++] = j;
			if (ngrp == GROUP && (rc = submit(&g, grp, &ngrp, nthreads)) < 0)
				goto out;
			batch_bytes += cut;
			if (!g.pw && (++batch_pieces >= batch_limit || batch_bytes >= BATCH_BYTES)) {
				/* publish what the workers finished; they keep going */
				if ((rc = submit(&g, grp, &ngrp, nthreads)) < 0 || (rc = flush(&g)) < 0)
					goto out;
				batch_pieces = 0;
				batch_bytes = 0;
			}
		}
		/* the workers get what is cut before the reader blocks in read */
		if ((rc = submit(&g, grp, &ngrp, nthreads)) < 0)
			goto out;
		if (eof)
			break;
		if (__atomic_load_n(&cur->refs, __ATOMIC_ACQUIRE) == 1) {
			/* no job holds a piece of it any more */
			memmove(buf, buf + start, have - start);
		} else {
			/* the uncut rest (less than the largest piece) starts the
			 * next block; the jobs keep this one until they are done */
			struct block *nb = malloc(sizeof(*nb) + bufcap);
			if (!nb) {
				rc = udr__error_oom();
				goto out;
			}
			nb->refs = 1;
			memcpy(nb->data, buf + start, have - start);
			block_unref(cur);
			cur = nb;
			buf = cur->data;
		}
		have -= start;
		start = 0;
		{
			size_t got;
			if ((rc = src_fill(in, buf + have, bufcap - have, &got, &eof)) < 0)
				goto out;
			have += got;
		}
		if (o && o->progress)
			o->progress(offset, o->progress_payload);
	}
	wait_idle(&g, nthreads);
	if ((rc = g.err) < 0)
		goto out;
	if (in->fd >= 0) {
		struct stat st;
		if (UDR_IO->fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode) && b->file_size &&
		    ((uint64_t)st.st_size != b->file_size || offset != b->input_size)) {
			rc = udr__error_set(UDR_EIO, "input changed size while it was read (%llu bytes expected, %llu "
			                    "read, file now %llu); nothing stored", (unsigned long long)b->input_size,
			                    (unsigned long long)offset, (unsigned long long)st.st_size);
			goto out;
		}
	}
	if (!g.pw)
		g.recent = true; /* the final sync also covers pieces found, not written */
	if ((rc = flush(&g)) < 0)
		goto out;
	udr_hasher_final(whole, out);
	m.total = offset;
	m.npieces = index;
	m.pieces = g.results;
	if (g.pw && udr__packw_published(g.pw) && (rc = udr__ingest_repack(s, UDR__PACK_CLASS_DATA)) < 0)
		goto out;
	if (g.pw && __atomic_load_n(g.repaired, __ATOMIC_RELAXED) && (rc = udr__packset_scan(s)) == 0)
		rc = drop_damaged_pieces(s, &m);
	if (rc < 0)
		goto out;
	{
		enum udr__kind kind;
		if ((rc = exists_for_write(&kind, s, out)) < 0)
			goto out;
		if (kind == UDR__K_NONE)
			rc = publish_manifest(s, out, &m, UDR__K_NONE);
		else
			rc = check_stored_content(s, out, kind, &m, repaired);
	}
out:
	if (rc < 0 && g.err == 0) {
		pthread_mutex_lock(&g.mu);
		g.err = rc;
		snprintf(g.errmsg, sizeof(g.errmsg), "%s", udr_error_last()->message);
		pthread_mutex_unlock(&g.mu);
	}
	pthread_mutex_lock(&g.mu);
	g.stop = true;
	pthread_cond_broadcast(&g.cv_job);
	pthread_mutex_unlock(&g.mu);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (size_t i = 0; i < ngrp; i++)
		job_free(grp[i]);
	block_unref(cur);
	while (g.head) {
		struct job *j = g.head;
		g.head = j->next;
		job_free(j);
	}
	discard_pending(&g);
	if (o && o->progress && rc >= 0)
		o->progress(offset, o->progress_payload);
	if (g.err < 0)
		rc = udr__error_set(g.err, "%s", g.errmsg);
	free(g.pend);
	free(g.results);
	for (size_t i = 0; i < g.nw; i++)
		udr__packw_batch_release(&g.w[i].batch);
	free(g.w);
	udr__packw_free(g.pw);
	udr_hasher_free(whole);
	pthread_mutex_destroy(&g.mu);
	pthread_cond_destroy(&g.cv_job);
	pthread_cond_destroy(&g.cv_done);
	pthread_cond_destroy(&g.cv_space);
	return rc < 0 ? rc : 0;
}

/* Format 1 stores and UDR_PUT_WHOLE: one raw file, streamed through a temp
 * file.  A content found stored is rehashed; damaged, it is replaced by the
 * temp file. */
static int put_raw_stream(udr_hash *out, udr_store *s, struct src *in, const unsigned char *head, size_t headlen,
                          bool eof, uint64_t *repaired)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__tmp t = {-1, NULL};
	udr_hasher *h = NULL;
	unsigned char *buf = NULL;
	char *final = NULL;
	enum udr__kind kind;
	bool recent = false, in_head = eof; /* the whole content is head */
	int rc;
	if ((rc = udr_hasher_new(&h)) < 0)
		return rc;
	if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
		goto done;
	udr_hasher_update(h, head, headlen);
	if ((rc = udr__write_all(t.fd, head, headlen, t.path)) < 0)
		goto done;
	if (!eof && !(buf = malloc((size_t)1 << 20))) {
		rc = udr__error_oom();
		goto done;
	}
	while (!eof) {
		size_t got;
		if ((rc = src_fill(in, buf, (size_t)1 << 20, &got, &eof)) < 0)
			goto done;
		udr_hasher_update(h, buf, got);
		if ((rc = udr__write_all(t.fd, buf, got, t.path)) < 0)
			goto done;
	}
	udr_hasher_final(h, out);
	if (!(final = udr__obj_path(s, out, UDR__K_RAW, hex))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	if (s->packs) {
		/* format 3: a whole part is read in place by its path, so it wants
		 * a loose raw file even when a packed copy exists */
		struct stat st;
		while ((rc = UDR_IO->stat(final, &st) == 0 && S_ISREG(st.st_mode)) == 1 &&
		       (rc = udr__gc_doom_check(s, out)) != 0)
			if (rc < 0)
				goto done;
		rc = UDR_IO->stat(final, &st) == 0 && S_ISREG(st.st_mode);
		kind = rc ? UDR__K_RAW : UDR__K_NONE;
		recent = rc && time(NULL) - st.st_ctime < 5;
	} else if ((rc = stored(s, out, &recent, &kind)) < 0) {
		goto done;
	}
	if (rc == 1) {
		/* bytes in memory are compared, a streamed input is rehashed */
		rc = in_head ? udr__content_check(s, out, head, headlen) : udr__content_stream(s, out, true, null_sink, NULL);
		if (rc == 0) {
			if (recent)
				rc = udr__fsync_parent(final);
			goto done;
		}
		if (rc != UDR_ECORRUPT && rc != UDR_ENOTFOUND && rc != UDR_EIO)
			goto done;
		udr_error_clear();
		if ((rc = publish_repair(s, out, &t, UDR__K_RAW, kind)) == 0)
			count_repair(repaired);
		goto done;
	}
	if ((rc = udr__store_fanout(s, final, true)) < 0)
		goto done;
	rc = udr__tmp_publish(&t, final, UDR__PUBLISH_NEW, true);
	if (rc == 1)
		rc = udr__fsync_parent(final);
done:
	udr__tmp_discard(&t);
	udr_hasher_free(h);
	free(buf);
	free(final);
	return rc < 0 ? rc : 0;
}

static int ingest_body(udr_hash *out, udr_store *s, int fd, const void *mem, size_t memlen,
                       const udr_put_options *o, uint64_t *repaired)
{
	struct src in = {fd, mem, memlen, 0, 0};
	struct base b;
	udr__bcache *cache = NULL, *handoff = NULL;
	unsigned char *buf;
	size_t bufcap, have = 0;
	bool eof = false;
	int rc;
	memset(&b, 0, sizeof(b));
	if (s->format < 2 || (o && (o->flags & UDR_PUT_WHOLE))) {
		/* one raw object; memory input hashes in place */
		if (mem)
			return put_raw_stream(out, s, &in, mem, memlen, true, repaired);
		return put_raw_stream(out, s, &in, (const unsigned char *)"", 0, false, repaired);
	}
	if ((rc = base_load(&b, s, o ? o->base : NULL)) < 0)
		return rc;
	if (fd >= 0) {
		struct stat st;
		if (UDR_IO->fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			off_t pos = lseek(fd, 0, SEEK_CUR);
			uint64_t start = pos > 0 ? (uint64_t)pos : 0;
			b.file_size = (uint64_t)st.st_size;
			b.input_size = start < b.file_size ? b.file_size - start : 0;
		}
	} else {
		b.input_size = memlen;
	}
	/* decoded base pieces and the put's dedup checks share one cache */
	if (!(cache = udr__bcache_new(udr__bcache_cap(s), udr__decode_budget(s, b.total + b.input_size)))) {
		base_free(&b);
		return UDR_ENOMEM;
	}
	/* the bases, for the next read (the commit's verification): when they fit */
	if (b.active && b.total <= UDR__BCACHE_MAX && (handoff = udr__bcache_new(UDR__BCACHE_MAX, 0)) != NULL)
		udr__bcache_handoff(cache, handoff);
	if (mem && memlen <= s->threshold) {
		rc = put_single(out, s, mem, memlen, &b, repaired, cache);
		udr__bcache_free(cache);
		udr__bcache_free(handoff);
		base_free(&b);
		return rc;
	}
	/* 2 MiB (4 x the largest piece by default): read, cut and hashed
	 * while in the cache (put_chunked reads into blocks of this size); an
	 * 8 MiB buffer is not
	 * (one ABBA set of 1 GiB puts: -9% wall, -4% CPU; within the noise
	 * of a shared machine) */
	bufcap = s->cdc.max * 2 > ((size_t)2 << 20) ? s->cdc.max * 2 : ((size_t)2 << 20);
	if (!(buf = malloc(bufcap))) {
		udr__bcache_free(cache);
		udr__bcache_free(handoff);
		base_free(&b);
		return udr__error_oom();
	}
	rc = src_fill(&in, buf, s->threshold + 1, &have, &eof);
	if (rc == 0 && eof && have <= s->threshold) {
		if (fd >= 0 && b.file_size && have != b.input_size)
			rc = udr__error_set(UDR_EIO, "input changed size while it was read (%llu bytes expected, %zu read); "
			                    "nothing stored", (unsigned long long)b.input_size, have);
		else
			rc = put_single(out, s, buf, have, &b, repaired, cache);
	} else if (rc == 0) {
		size_t got = 0;
		if (!eof)
			rc = src_fill(&in, buf + have, bufcap - have, &got, &eof);
		if (rc == 0)
			rc = put_chunked(out, s, &in, buf, bufcap, have + got, eof, &b, o, repaired, cache);
	}
	free(buf);
	udr__bcache_free(cache);
	/* the bases its deltas used: the commit's verification of this content reads them */
	if (rc == 0 && handoff)
		udr__bcache_keep(s, handoff);
	else
		udr__bcache_free(handoff);
	base_free(&b);
	return rc;
}

/*
 * Every put holds the GC fence (docs/GC.md 4.3) from before its first dedup
 * lookup until its objects are durable and, when its whole content was
 * already stored in a copy older than the grace, its fresh record too.
 */
int udr__ingest(udr_hash *out, udr_store *s, int fd, const void *mem, size_t memlen, const udr_put_options *o,
                uint64_t *repaired)
{
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	/* less a margin: file times come from a coarse clock (a tick behind),
	 * and a copy this put writes must not look older than the put */
	int64_t start = udr__now_ms() - 50;
	int rc;
	if ((rc = udr__gc_hold_begin(&h, s)) < 0)
		return rc;
	udr__test_pause("gc-put-held");
	if ((rc = ingest_body(out, s, fd, mem, memlen, o, repaired)) == 0)
		rc = udr__gc_fresh_note(s, &h, out, start, NULL);
	udr__gc_hold_end(&h);
	return rc;
}
