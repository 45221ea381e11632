/*
 * pack.h - format-3 pack files and their indexes (docs/FORMAT.md, "Packs"):
 * the byte layouts, a pack writer, the set of visible packs of a store with
 * lookup by hash, and the geometric repack.  Only the store's own files use
 * this; everything else goes through the object-location layer
 * (store_internal.h: udr__obj_find / udr__loc_read / udr__obj_foreach).
 */
#ifndef UDR_STORE_PACK_H
#define UDR_STORE_PACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <udr/store.h>

/* ---- byte layouts ---------------------------------------------------------- */

#define UDR__PACK_HDR 16        /* "UDRP", version 1, class, 2 zero, 8-byte nonce */
#define UDR__PACK_ENTRY_HDR 48  /* kind, 3 zero, u32 payload length, u64 raw size, hash */
#define UDR__PACK_ENTRY_CRC 4   /* CRC32C of entry header + payload */
#define UDR__PACK_TRAILER 16    /* u64 entry count, "UDRPEND\0" */
#define UDR__PACK_CLASS_DATA 0
#define UDR__PACK_CLASS_META 1
#define UDR__IDX_HDR 48         /* "UDRI", version 1, class, 2 zero, u64 count, pack name */
#define UDR__IDX_FANOUT (256 * 4)
#define UDR__IDX_REC 16         /* u64 offset, u32 payload length, kind, 3 zero */

/* CRC32C (Castagnoli), hardware where the CPU has it. */
uint32_t udr__crc32c(uint32_t crc, const void *data, size_t len);

/* One entry of a pack as its bytes say. */
typedef struct udr__pack_entry {
	udr_hash hash;
	uint64_t offset;   /* of the entry header in the pack */
	uint64_t raw_size; /* the content's (or piece's) decoded size */
	uint32_t length;   /* payload length */
	uint8_t kind;      /* enum udr__kind: 1 raw, 2 zst, 3 manifest, 4 delta */
} udr__pack_entry;

/*
 * Parse the entry at off of the pack bytes p[0..len): header, bounds and CRC.
 * 0 with *e filled and *next the offset after it; 1 at the trailer (off is
 * where it starts and the count matches *count_seen... checked by the caller);
 * UDR_ECORRUPT naming what when damaged.
 */
int udr__pack_entry_parse(udr__pack_entry *e, uint64_t *next, const unsigned char *p, size_t len, uint64_t off,
                          const char *what);
/* Check the pack header and trailer of p[0..len); *count the trailer's count,
 * *cls the class.  UDR_ECORRUPT naming what. */
int udr__pack_frame_parse(uint64_t *count, int *cls, const unsigned char *p, size_t len, const char *what);
/*
 * Rebuild the index bytes of the pack p[0..len) named name from its bytes
 * alone (every entry's CRC checked; the name is not rehashed here).  Entries
 * repeating a hash keep the first.  *out is malloc'd.
 */
int udr__pack_reindex(unsigned char **out, size_t *out_len, const unsigned char *p, size_t len,
                      const udr_hash *name, const char *what);

/* A parsed (usually mmap'd) index.  Lookups trust only its structure; the
 * entry a record points at is checked against the hash when read. */
typedef struct udr__idx {
	const unsigned char *p;
	size_t len;
	uint64_t n;
	int cls;
	udr_hash pack;
} udr__idx;
/* Structural checks (size, magic, fan-out); full checks (trailer, order) with
 * full.  UDR_ECORRUPT naming what. */
int udr__idx_parse(udr__idx *x, const unsigned char *p, size_t len, bool full, const char *what);
/* Record i of the index (i < n). */
void udr__idx_record(udr__pack_entry *e, const udr__idx *x, uint64_t i);
/* Parts of record i, each from its own area of the index (a caller that
 * needs one part touches one cache line, not two). */
static inline const unsigned char *udr__idx_hash_at(const udr__idx *x, uint64_t i)
{
	return x->p + UDR__IDX_HDR + UDR__IDX_FANOUT + i * UDR_HASH_SIZE;
}
static inline const unsigned char *udr__idx_rec_at(const udr__idx *x, uint64_t i)
{
	return x->p + UDR__IDX_HDR + UDR__IDX_FANOUT + x->n * UDR_HASH_SIZE + i * UDR__IDX_REC;
}
/* Index of h in x, or UINT64_MAX. */
uint64_t udr__idx_find(const udr__idx *x, const udr_hash *h);
/* Is the 256-entry fan-out table fan monotone, ending at n?  With the n
 * hashes hs: are they ascending, each inside its fan-out range? */
bool udr__fanout_ok(const unsigned char *fan, uint64_t n);
bool udr__fanout_sorted(const unsigned char *fan, const unsigned char *hs, uint64_t n);
/* Position of h among the n sorted hashes hs under the 256-entry fan-out
 * fan (both as on disk), or UINT64_MAX; bounded on damaged tables. */
uint64_t udr__fanout_find(const unsigned char *fan, const unsigned char *hs, uint64_t n, const udr_hash *h);

/* ---- the multi-pack index (docs/FORMAT.md, "Multi-pack index") ------------- */

#define UDR__MIDX_FILE "multi-pack-index"
#define UDR__MIDX_HDR 24          /* "UDRM", version 1, 3 zero, u32 packs, u32 zero, u64 count */
#define UDR__MIDX_REC 20          /* u64 offset, u32 payload length, u32 pack number, kind, 3 zero */
#define UDR__MIDX_PACKS_MAX (1u << 20)

/* A parsed (usually mmap'd) multi-pack index.  Like udr__idx, lookups trust
 * only its structure: the entry a record points at is checked when read. */
typedef struct udr__midx {
	const unsigned char *p;
	size_t len;
	uint64_t n;
	uint32_t npacks;
} udr__midx;
/* Structural checks (size, magic, pack names ascending, fan-out); full
 * checks (trailer, hash order, pack numbers, kinds, zero bytes) with full.
 * UDR_ECORRUPT naming what. */
int udr__midx_parse(udr__midx *x, const unsigned char *p, size_t len, bool full, const char *what);
/* The name of pack number j (j < npacks). */
void udr__midx_pack(udr_hash *out, const udr__midx *x, uint32_t j);
/* Record i (i < n); *pack its pack number, as stored (unchecked). */
void udr__midx_record(udr__pack_entry *e, uint32_t *pack, const udr__midx *x, uint64_t i);
/* Index of h in x, or UINT64_MAX. */
uint64_t udr__midx_find(const udr__midx *x, const udr_hash *h);
/* The multi-pack index bytes over the indexes v[0..n) (sorted by pack name
 * here, a pack named twice kept once, v left a permutation of itself; a
 * hash in several packs points at the first by name).  *out is
 * malloc'd.  UDR_EINVAL when they are too many for the format. */
int udr__midx_build(unsigned char **out, size_t *out_len, const udr__idx **v, size_t n);
/* Rewrite packs/multi-pack-index over every visible pack when it is due
 * (udr__midx_threshold of them not covered by the current one; see below) (always
 * with force; nothing when there is no pack).  Takes packs/lock: waits for
 * it with wait, else skips when another process holds it. */
int udr__midx_update(udr_store *s, bool force, bool wait);
/* The same, packs/lock already held by the caller. */
int udr__midx_update_locked(udr_store *s, bool force);
/* Packs not covered by the multi-pack index that trigger a rewrite (8;
 * tests lower it); past udr__midx_small entries (65536) it is rewritten only
 * once the uncovered packs hold an eighth of its entries or number four
 * times the threshold (midx.c, midx_due). */
extern unsigned udr__midx_threshold;
extern uint64_t udr__midx_small;
/* Check packs/multi-pack-index whole (trailer, order, records) and against
 * the indexes of the packs it names: 0 intact (*stale when a pack it names
 * is gone: not checked further), 1 when there is none, UDR_ECORRUPT naming
 * the file when damaged. */
int udr__midx_check(udr_store *s, bool *stale);
/* Age in seconds past which a pack without an index is indexed in memory
 * and read (30; tests lower it). */
extern unsigned udr__orphan_age;
/* packs/lock, which every change to the set of packs holds (repacks, the
 * multi-pack index, rewrites of damaged packs, fsck's rebuilding of a
 * missing index): 0 held (*fd to close), 1 busy (only without wait). */
int udr__packs_lock(int *fd, udr_store *s, bool wait);

/* ---- writer ---------------------------------------------------------------- */

typedef struct udr__packw udr__packw;
/* A writer of packs of class cls into the store's tmp/; packs roll over at
 * the store's target size.  Thread-safe appends. */
int udr__packw_new(udr__packw **out, udr_store *s, int cls);
/*
 * Append one entry (payload = the bytes a loose object of that kind holds).
 * A hash already in the writer's current pack is not appended twice.  When
 * the entry would take the pack past the target, the pack so far is published
 * first.
 */
int udr__packw_append(udr__packw *w, const udr_hash *h, int kind, uint64_t raw_size, const void *payload,
                      uint32_t len);
/*
 * A batch of entries encoded by one thread (header, payload and CRC built
 * without the writer's lock), appended to a writer under one lock and with
 * one write per run of entries that land in one pack.  Caller-allocated:
 * _init, then _release.
 */
typedef struct udr__packw_batch {
	unsigned char *buf;  /* the entries' bytes, back to back */
	size_t len, cap;
	udr__pack_entry *v;  /* offset: of the entry in buf */
	size_t n, ecap;
} udr__packw_batch;
void udr__packw_batch_init(udr__packw_batch *b);
void udr__packw_batch_release(udr__packw_batch *b);
/* Add one entry to the batch (copied; nothing is written yet). */
int udr__packw_batch_add(udr__packw_batch *b, const udr_hash *h, int kind, uint64_t raw_size, const void *payload,
                         uint32_t len);
/* Append the batch's entries to w as udr__packw_append does, one lock for all;
 * the batch is empty afterwards, also on failure. */
int udr__packw_batch_commit(udr__packw *w, udr__packw_batch *b);
/* Publish the current pack (nothing when it is empty): pack and index
 * durable, then named, each name durable before the next.  */
int udr__packw_flush(udr__packw *w);
/* Packs published by this writer so far. */
uint64_t udr__packw_published(const udr__packw *w);
/* Did this writer publish the pack named hex? */
bool udr__packw_wrote(const udr__packw *w, const char *hex);
/* Discard what is unpublished and free (NULL accepted). */
void udr__packw_free(udr__packw *w);

/* ---- the visible packs of a store --------------------------------------------- */

/*
 * One pack of the set.  Its struct lives until the store closes (a location
 * found by a lookup may name it after it went); its descriptor and index are
 * released once it is retired (gone at a scan) and nothing uses them: reads
 * in flight on fd (readers) and users of idx outside the set's mutex
 * (holds, udr__pack_hold).  A retired pack's idx keeps cls and pack; p is
 * NULL and n 0.
 */
typedef struct udr__pack {
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__idx idx;   /* mmap'd */
	int fd;         /* the pack, opened on first read; -1 before (and once released) */
	int readers;    /* reads in flight on fd (under the set's mutex) */
	uint64_t reopens; /* times fd was replaced by a reopen (under the mutex, only with no readers) */
	int holds;      /* users of idx outside the set's mutex (under it) */
	uint64_t size;  /* of the pack file, when opened */
	int64_t mtime;  /* of its index, seconds */
	bool gone;      /* its index vanished at a rescan (repacked away) */
	bool retired;   /* gone at a scan: out of the set's list, released once unused */
	bool broken;    /* its index is damaged and the pack too: skipped by lookups */
	bool owned;     /* idx.p is malloc'd (indexed anew from the pack), not mapped */
	bool covered;   /* named by the loaded multi-pack index */
	bool verified;  /* its index's trailer and order checked (udr__packset_verify) */
} udr__pack;

typedef struct udr__packset {
	pthread_mutex_t mu;
	udr__pack **v;
	size_t n, cap;
	udr__pack **dead;      /* retired packs (freed at close) */
	size_t ndead, capdead;
	bool scanned;
	int64_t stamp;         /* packs/' times at the last scan (see udr__packset_scan) */
	int64_t checked_ms;    /* when a lookup last compared them (udr__packset_recheck) */
	unsigned char top[32]; /* bit per loose top-level directory ab/ seen at the last scan */
	/* the multi-pack index (mapped; midx.p NULL when absent or damaged),
	 * its file's identity at the last scan, and its packs in this set */
	udr__midx midx;
	udr__pack **mpacks;    /* [midx.npacks]: NULL where a pack is not (or no longer) visible */
	bool midx_damaged;     /* the file exists and failed its checks */
	uint64_t midx_ino, midx_dev, midx_size;
	int64_t midx_mtime_ns;
} udr__packset;

void udr__packset_init(udr__packset *ps);
void udr__packset_free(udr__packset *ps);
/* Under ps->mu (udr__packset_scan): load the multi-pack index again when its
 * file changed and match its pack names with the set's packs. */
int udr__packset_midx_refresh(udr_store *s);
void udr__packset_midx_free(udr__packset *ps);
/* Read packs/ again: new indexes are loaded, vanished ones marked gone and
 * retired (their descriptor closed and index unmapped now, or by the last
 * read or hold that uses them), the multi-pack index loaded again when its
 * file changed. */
int udr__packset_scan(udr_store *s);
/* At most every udr__packs_recheck_ms: read packs/ again if its times
 * changed since the last scan, so that a handle that only reads what it
 * found long ago lets go of packs other processes removed.  A lookup's
 * first step; its failures are left to the lookups' own rescans. */
void udr__packset_recheck(udr_store *s);
/* Milliseconds between two such checks (1000; tests set 0: every lookup). */
extern unsigned udr__packs_recheck_ms;
/*
 * Before a lookup that needs an object reports it missing: check whole
 * (trailer, order) every visible pack's index not checked yet by this
 * handle (the open checks only its structure, so a damaged record can hide
 * an entry).  A damaged one is indexed anew in memory from its pack, when
 * the pack's bytes hash to its name (*rebuilt counts them: look again);
 * else the pack is broken.  0, or UDR_ECORRUPT naming the index when one
 * cannot be rebuilt now (in use outside the mutex).  broken (may be NULL)
 * gets the name of a broken pack ("" when there is none): one whose index
 * is damaged and whose bytes cannot index it, which may hold any object.
 */
int udr__packset_verify(udr_store *s, unsigned *rebuilt, char broken[UDR_HASH_HEXSIZE + 1]);
/* Map packs/<hex>.idx again for the set's pack hex (after fsck rewrote it):
 * checked whole, it replaces the index the set held (unless that one is in
 * use outside the mutex: kept, to be replaced by the next handle).  0 also
 * when the set has no such pack or the file does not pass (left as it
 * was); UDR_ENOMEM, UDR_EIO. */
int udr__packset_reload(udr_store *s, const char *hex);
/* Keep p's index mapped (and descriptor open) while it is used outside the
 * set's mutex, even if a scan retires p meanwhile; _unhold releases what a
 * retired pack no longer needs. */
void udr__pack_hold(udr__packset *ps, udr__pack *p);
void udr__pack_unhold(udr__packset *ps, udr__pack *p);
/* Under the set's mutex: release what retired p no longer uses (its
 * descriptor when no read is in flight, its index when no hold either). */
void udr__pack_release_locked(udr__pack *p);

/* Geometric repack of class cls when its small packs break the rule (each
 * pack at least twice the total of all smaller ones); skipped when another
 * process holds packs/lock.  0 also when nothing was to be done. */
int udr__pack_repack(udr_store *s, int cls);
/* Rewrite pack p without its damaged entries when each has an intact copy
 * elsewhere, and remove it; 1 when it was left alone.  */
int udr__pack_drop_damaged(udr_store *s, udr__pack *p);
/* Merge every pack of class cls into as few as the cap allows (upgrade, tests). */
int udr__pack_repack_all(udr_store *s, int cls);


#endif
