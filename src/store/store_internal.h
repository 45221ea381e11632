/*
 * store_internal.h - the chunk store's insides, shared by its files
 * (store.c: open, config, public API; object.c: object kinds, manifests,
 * decoding; ingest.c: the put engine) and what other modules may use.
 */
#ifndef UDR_STORE_INTERNAL_H
#define UDR_STORE_INTERNAL_H

#include <stdbool.h>
#include <sys/stat.h>
#include <udr/store.h>

#include "store/cdc.h"
#include "store/gcstate.h"

#define UDR__STORE_FORMAT_MAX 3
/* Hard limits that protect readers from damaged files. */
#define UDR__PIECE_HARD_MAX ((size_t)64 << 20)
#define UDR__DELTA_DEPTH_HARD_MAX 255

struct udr_store {
	char *path;
	char *tmpdir;
	size_t pathlen;
	int format;        /* 1: raw objects only; 2: pieces, compression, deltas */
	udr__cdc cdc;      /* format 2 */
	size_t threshold;  /* content larger than this is chunked */
	int level;         /* zstd level, 0: no compression */
	int max_depth;     /* longest delta chain */
	int threads;       /* ingest workers */
	unsigned char *fanout_known; /* bit per ab/cd directory known to exist */
	struct udr__packset *packs;  /* format 3: the visible packs (pack.h) */
	uint64_t pack_target;        /* format 3: a pack rolls over past this size */
	uint64_t pack_max;           /* format 3: no pack of several entries is larger */
	struct udr__bcache *kept;    /* decoded pieces a put left for the next read (atomic) */
	udr__gcwatch gcw;            /* gc/STATE as writers last read it (gcfence.c) */
	int64_t gc_grace_ms;         /* config "gc":{"grace_ms":N}; default 24 h */
};

/*
 * A put against a base of at most UDR__BCACHE_MAX bytes keeps a copy of
 * every base piece its deltas use (checked against their hashes) in a second
 * cache, which the handle keeps for the next whole read: most often the
 * commit's verification of what was put, whose new pieces then decode from
 * their bases instead of their whole chains (the put's own cache holds the
 * chains' deeper levels by then).  One read takes it (and frees it when
 * done), so a handle holds at most one, only between a put and the next read
 * or close.
 */
void udr__bcache_keep(udr_store *s, struct udr__bcache *c);
struct udr__bcache *udr__bcache_take(udr_store *s);

/* Little-endian fields of the on-disk formats (docs/FORMAT.md). */
static inline void udr__put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline void udr__put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t udr__get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t udr__get_le64(const unsigned char *p)
{
	return (uint64_t)udr__get_le32(p) | (uint64_t)udr__get_le32(p + 4) << 32;
}

/* The kinds of objects, by file-name suffix (docs/FORMAT.md). */
enum udr__kind {
	UDR__K_NONE = 0,
	UDR__K_RAW,      /* <hash>      the bytes */
	UDR__K_ZST,      /* <hash>.zst  one zstd frame */
	UDR__K_MANIFEST, /* <hash>.m    list of pieces */
	UDR__K_DELTA     /* <hash>.d    zstd frame against base pieces */
};

/* Path of a loose object of a given kind (malloc'd; hex receives the hash). */
char *udr__obj_path(const udr_store *s, const udr_hash *h, enum udr__kind kind, char *hex);

/*
 * The object-location layer (locate.c): where the bytes of an object are.
 * Every read of an object goes through udr__obj_find + udr__loc_read, every
 * enumeration through udr__obj_foreach.  An object may have several copies
 * (in two packs, or in a pack and a loose file): copy 0 is the first in
 * lookup order (packs, then loose files), and a reader that finds one copy
 * damaged tries the next before reporting damage.
 */
struct udr__pack;
typedef struct udr__loc {
	enum udr__kind kind;     /* UDR__K_NONE: no such copy */
	char *path;              /* loose: the file (malloc'd); NULL when packed */
	struct stat st;          /* loose: the file's stat */
	struct udr__pack *pack;  /* packed: the pack (lives as long as the store handle) */
	uint64_t offset;         /* packed: offset of the entry header */
	uint32_t length;         /* packed: payload length */
} udr__loc;
/* Find copy number `copy` of h (kind UDR__K_NONE when there is none).  With
 * rescan, a miss of copy 0 reads packs/ again and retries once (another
 * process may have published a pack or repacked). */
int udr__obj_find(udr__loc *out, udr_store *s, const udr_hash *h, unsigned copy, bool rescan);
void udr__loc_free(udr__loc *l);
/* Does hdr, the UDR__PACK_ENTRY_HDR bytes at l->offset of l->pack, head
 * h's copy l (hash, kind, payload length: what every read checks)? */
bool udr__loc_header_matches(const unsigned char *hdr, const udr__loc *l, const udr_hash *h);
/* len bytes at off of pack p (opened on first use): UDR_ENOTFOUND when the
 * pack is gone, UDR_ECORRUPT when it ends before off + len. */
int udr__pack_read_at(udr_store *s, struct udr__pack *p, unsigned char *buf, size_t len, uint64_t off);
/* Where a copy is, for messages: the loose path or "pack <name> at offset N". */
const char *udr__loc_where(char *buf, size_t n, const udr__loc *l);
/*
 * The payload bytes of a copy (what the loose object of its kind holds), at
 * most max.  A packed entry is checked before anything is returned: its
 * header must name h and its kind, and its CRC must match (UDR_ECORRUPT
 * naming the chunk and the pack).  A pack removed by a repack since it was
 * found: UDR_ENOTFOUND with *vanished set (may be NULL).
 */
int udr__loc_read(unsigned char **out, size_t *out_len, udr_store *s, const udr__loc *l, const udr_hash *h,
                  size_t max, bool *vanished);
/*
 * A read window over one pack for a caller that reads many small entries
 * in offset order (a gc mark's walk): an entry inside the window is copied
 * from it; one outside it starts a new window when the caller's hint says
 * it reads on past this entry in the same pack (one pread reaching the
 * hint, at most cap bytes), else it is read alone.  The checks are
 * udr__loc_read's.  Start zeroed; one thread at a time; udr__readwin_free
 * releases the buffer.
 */
typedef struct udr__readwin {
	const struct udr__pack *pack;
	uint64_t reopens; /* the pack's reopens when filled: another is stale */
	uint64_t off;
	size_t len;
	size_t cap;                /* the window's size: 0 is UDR__READWIN_SIZE */
	unsigned char *buf;        /* cap bytes once used */
	const struct udr__pack *hint_pack; /* the caller's hint: it reads entries */
	uint64_t hint_end;                 /* of hint_pack up to this offset next */
	uint64_t hits, fills, alone; /* entries served from a window, windows read, entries read alone */
} udr__readwin;
#define UDR__READWIN_SIZE ((size_t)256 << 10)
int udr__loc_read_win(unsigned char **out, size_t *out_len, udr_store *s, const udr__loc *l, const udr_hash *h,
                      size_t max, bool *vanished, udr__readwin *w);
/* The same for a packed copy (a loose one: UDR_EINVAL), with *raw the
 * decoded size from the entry header that read checked (the CRC covers
 * it): a caller copying entries (gc's rewrite) reads each header once. */
int udr__loc_read_entry(unsigned char **out, size_t *out_len, uint64_t *raw, udr_store *s, const udr__loc *l,
                        const udr_hash *h, size_t max, bool *vanished, udr__readwin *w);
void udr__readwin_free(udr__readwin *w);
/* Find copy `copy` of h and read it (a vanished pack: rescan and retry).
 * UDR_ENOTFOUND naming h when there is no such copy; *kind its kind. */
int udr__obj_read(unsigned char **out, size_t *out_len, enum udr__kind *kind, udr_store *s, const udr_hash *h,
                  size_t max, unsigned copy);
/* The decoded size of a packed copy, from its entry header (checked to name h). */
int udr__loc_raw_size(uint64_t *out, udr_store *s, const udr__loc *l, const udr_hash *h);
/* Is some copy of h stored?  kind receives its kind.  With rescan a miss is
 * believed only once every pack index passed its whole check (a damaged one
 * indexed anew from its pack); UDR_ECORRUPT naming the pack when one cannot
 * be (it may hold h). */
int udr__obj_exists(enum udr__kind *kind, udr_store *s, const udr_hash *h, bool rescan);
/* The same with rescan, for a writer about to reuse h: a miss beside a pack
 * that cannot be indexed is believed (the writer stores a copy: legal). */
int udr__obj_exists_write(enum udr__kind *kind, udr_store *s, const udr_hash *h);
/*
 * Every object once (the first copy in lookup order), packed ones first; stray
 * files in the loose directories are passed to stray (may be NULL).  With
 * all_copies every copy is visited.
 */
typedef int (*udr__obj_visit)(const udr_hash *h, const udr__loc *l, void *payload);
typedef int (*udr__stray_visit)(const char *path, void *payload);
int udr__obj_foreach(udr_store *s, bool all_copies, udr__obj_visit visit, udr__stray_visit stray, void *payload);
/* A loose top-level fan-out directory ab/ now exists (locate.c caches which do). */
void udr__loose_dir_known(const udr_store *s, unsigned top);

/* A parsed manifest. */
typedef struct udr__piece {
	udr_hash hash;
	uint32_t size;
} udr__piece;
typedef struct udr__manifest {
	uint64_t total;
	uint64_t npieces;
	udr__piece *pieces;
} udr__manifest;
/* Parse and validate manifest bytes for content `h` (NULL: skip the name
 * check). UDR_ECORRUPT naming `what` on any inconsistency. */
int udr__manifest_parse(udr__manifest *m, const unsigned char *data, size_t len, const udr_hash *h,
                        const char *what);
/* The same checks without a copy of the pieces: on success *npieces is set
 * and udr__manifest_entry reads entry i (0 <= i < *npieces) from `data`
 * (size may be NULL).  For walks that only visit the pieces (gc's mark: a
 * manifest of a million pieces is 36 MB, its parsed copy as much again). */
int udr__manifest_check(const unsigned char *data, size_t len, const udr_hash *h, const char *what,
                        uint64_t *npieces);
void udr__manifest_entry(const unsigned char *data, uint64_t i, udr_hash *hash, uint32_t *size);
int udr__manifest_encode(unsigned char **out, size_t *out_len, const udr__manifest *m, const udr_hash *h);
void udr__manifest_free(udr__manifest *m);
int udr__manifest_load(udr__manifest *m, udr_store *s, const udr_hash *h);

/*
 * A cache of decoded pieces shared by the decodes of one content read (or
 * one put, or one fsck walk): delta bases, most of all, which the deltas of
 * neighbouring pieces name again and again.  At most `cap` bytes are held
 * (least recently used go first); thread-safe.  It also carries the read's
 * decode budget: once more than `budget` bytes have been decoded through it
 * (0: no limit), further decodes fail with UDR_ECORRUPT (a damaged or hostile
 * store whose chains would cost more than any store udr writes).
 */
typedef struct udr__bcache udr__bcache;
#define UDR__BCACHE_MIN ((size_t)16 << 20)
#define UDR__BCACHE_MAX ((size_t)64 << 20)
udr__bcache *udr__bcache_new(size_t cap, uint64_t budget);
/* The cache size for a store: 2 x (delta.max_depth + 1) x chunk_avg, within
 * UDR__BCACHE_MIN .. UDR__BCACHE_MAX. */
size_t udr__bcache_cap(const udr_store *s);
void udr__bcache_free(udr__bcache *c);
/* Copy every base udr__base_load lends through c into to (NULL: stop). */
void udr__bcache_handoff(udr__bcache *c, udr__bcache *to);
/* Start a new budget (a cache shared by several reads, such as fsck's). */
void udr__bcache_budget(udr__bcache *c, uint64_t budget);
/* The cache also keeps (a copy of) every piece a verified load through it
 * returns, not only delta bases: fsck's walk in delta order, where each
 * content's pieces are the next one's bases. */
void udr__bcache_finals(udr__bcache *c);
/* Such a cache's reader begins the next content (what the one before the
 * last did not use may go first). */
void udr__bcache_next_content(udr__bcache *c);
/* The decode budget of a read of `size` bytes (docs/FORMAT.md, "Reading"). */
uint64_t udr__decode_budget(const udr_store *s, uint64_t size);
/* Debug counter: piece objects decoded (raw, zst or delta), process-wide. */
extern uint64_t udr__piece_decodes;
/* Debug counter: piece reads restarted from copy 0 after packs/ was read
 * again (a copy or delta base not found where it was looked for). */
extern uint64_t udr__packs_restarts;

/*
 * Decode a piece-sized object (raw, zst or delta) into memory.  expect is
 * the size it must have (UINT64_MAX: any).  With verify the bytes are
 * rehashed (and so is every delta base).  depth (may be NULL) receives the
 * delta depth (0: not a delta).  cache (may be NULL: one for this call) holds
 * decoded bases.  Damage is UDR_ECORRUPT naming the piece.
 */
int udr__piece_load(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                    uint64_t expect, bool verify);
int udr__piece_load_c(unsigned char **out, size_t *out_len, int *depth, udr_store *s, const udr_hash *h,
                      uint64_t expect, bool verify, udr__bcache *cache);

/* A delta base for the writer: its bytes checked against h (the levels of
 * its chain are not rehashed one by one: any damage in them shows in its
 * bytes), taken from and kept in cache, and lent: give it back with
 * udr__bref_release. */
typedef struct udr__bref udr__bref;
int udr__base_load(const udr__bref **out, int *depth, udr_store *s, const udr_hash *h, udr__bcache *cache);
const unsigned char *udr__bref_data(const udr__bref *b, size_t *len);
void udr__bref_release(udr__bcache *c, const udr__bref *b);

/* Read the raw object of h whole (at most max bytes), rehashed with verify. */
int udr__raw_load(unsigned char **out, size_t *out_len, udr_store *s, const udr_hash *h, size_t max,
                  bool verify);
/* Raw objects up to this size are read and verified whole before any byte
 * reaches a sink; larger ones stream, and damage shows only at the end. */
#define UDR__RAW_VERIFY_WHOLE_MAX ((uint64_t)64 << 20)

/* Decode any object's full content into the sink, piece by piece.  With
 * verify every piece (and every delta base) is rehashed before its bytes go
 * to the sink, and the whole content at the end. */
typedef int (*udr__sink)(const void *data, size_t len, void *payload);
int udr__content_stream(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload);
/* The same through the caller's cache of decoded pieces (kept after; its
 * budget is the caller's to set): fsck's walk over every content, in an
 * order where one content's pieces are the next one's delta bases. */
int udr__content_stream_c(udr_store *s, const udr_hash *h, bool verify, udr__sink sink, void *payload,
                          udr__bcache *cache);
/* fsck's pass over every chunked content (fsckwalk.c): each one checked
 * through *cache (made here, sized for two of the largest contents, the
 * caller's to free), in an order where one content's pieces are the next
 * one's delta bases.  *out: the contents that checked out and each of their
 * pieces (rehashed on the way); what failed is not in it and is left to the
 * caller's own check, which reports it. */
typedef struct udr__verified udr__verified;
int udr__verify_contents(udr__verified **out, udr__bcache **cache, udr_store *s);
bool udr__verified_has(const udr__verified *v, const udr_hash *h);
void udr__verified_free(udr__verified *v);
/* Test hook: the least size of that cache (UDR__BCACHE_MAX). */
extern size_t udr__fsck_cache_min;
/* Does the stored content h decode to exactly data?  0 when it does,
 * UDR_ECORRUPT naming h when it does not (or cannot be decoded), UDR_ENOTFOUND,
 * UDR_EIO.  Cheaper than rehashing: the bytes are compared. */
int udr__content_check(udr_store *s, const udr_hash *h, const void *data, size_t len);
/* The content's size without reading it all. */
int udr__content_size(uint64_t *out, udr_store *s, const udr_hash *h);

/* zstd helpers with per-thread contexts. */
int udr__zstd_compress(unsigned char **out, size_t *out_len, const void *src, size_t len, int level,
                       const void *prefix, size_t prefix_len);

/*
 * Delta headers (docs/FORMAT.md): version 1 names one base (44 bytes);
 * version 2 names 1 .. UDR__DELTA_BASES_MAX bases whose raw bytes, in order,
 * are the reference prefix (12 + 32 k bytes).  The frame follows.
 */
#define UDR__DELTA_HDR 44
#define UDR__DELTA_BASES_MAX 8
#define UDR__DELTA_PREFIX_MAX ((size_t)64 << 20)
typedef struct udr__delta_hdr {
	int version;
	int depth;
	int nbases;
	int flags;         /* version 2: UDR__DELTA_STEP */
	uint32_t raw_size;
	udr_hash bases[UDR__DELTA_BASES_MAX];
	size_t frame; /* offset of the zstd frame */
} udr__delta_hdr;
/* Flag: the bases were found by stepping down from the previous version's
 * pieces at the depth limit (they are older than the previous version). */
#define UDR__DELTA_STEP 1
/* Parse a delta object's header; UDR_ECORRUPT naming `what` when damaged. */
int udr__delta_parse(udr__delta_hdr *out, const unsigned char *d, size_t len, const char *what);
/* The header of h when it is stored as a delta; depth 0 and no bases when it
 * is stored another way.  UDR_ENOTFOUND when absent. */
int udr__delta_peek(udr__delta_hdr *out, udr_store *s, const udr_hash *h);
/* Delta object bytes for header h (version 1: one base, no flags; or 2;
 * h->frame is ignored) followed by the frame. */
int udr__delta_encode(unsigned char **out, size_t *out_len, const udr__delta_hdr *h, const unsigned char *frame,
                      size_t flen);
/* Test hook: the delta version new deltas are written in (2; 1 writes the
 * single-base deltas of older udr versions). */
extern int udr__delta_write_version;

/*
 * What the store's I/O is for at the moment (bits; for fault-injection tests,
 * which enumerate every I/O step of these phases and sample the others):
 * writing/publishing a pack file, its index, a repack (which publishes packs
 * of its own), its removal of the packs it merged, the multi-pack index.  Process-wide, set with atomics; never read by the store.
 */
#define UDR__PHASE_PACK 1u
#define UDR__PHASE_IDX 2u
#define UDR__PHASE_REPACK 4u
#define UDR__PHASE_RETIRE 8u /* a repack removing the packs it merged */
#define UDR__PHASE_MIDX 16u  /* writing and publishing the multi-pack index */
#define UDR__PHASE_GC_REWRITE 32u /* gc copying live entries into new packs */
#define UDR__PHASE_GC_RETIRE 64u  /* gc removing packs and loose objects */
#define UDR__PHASE_GC_STATE 128u  /* gc replacing chunks/gc/STATE */
extern unsigned udr__io_phase;
#define udr__phase_enter(bit) __atomic_fetch_or(&udr__io_phase, (bit), __ATOMIC_RELAXED)
#define udr__phase_leave(bit) __atomic_fetch_and(&udr__io_phase, ~(unsigned)(bit), __ATOMIC_RELAXED)

const char *udr__store_tmpdir(const udr_store *s);
/* Check <dir>/config.json: kind must match and format be 1..max_format.
 * UDR_ENOTFOUND when it is missing, UDR_ECORRUPT when unusable. */
int udr__check_config(const char *dir, const char *kind, int max_format);

/* Make sure chunks/ab/cd exists for the object path `final`; with sync,
 * a directory created is made durable in its parent right away (callers
 * that syncfs afterwards pass false). */
int udr__store_fanout(const udr_store *s, const char *final, bool sync);

/* fsck --repair (GC.md 6): index every pack without an index from its
 * bytes when they hash to its name (under packs/lock, never a pack of a gc
 * run that is deleting), then rebuild the multi-pack index when damaged,
 * or write it when missing and due.  An index failing its whole check
 * (trailer, order) is rewritten from its pack first, so that the multi-pack
 * index is never rebuilt from a damaged one.  *indexes: indexes written for
 * packs without one; *rewritten: damaged indexes rewritten; *midx: whether
 * the multi-pack index was written.  A damaged pack is left to the check.
 * Errors: UDR_EIO, UDR_ENOMEM. */
int udr__store_repair_packs(udr_store *s, uint64_t *indexes, uint64_t *rewritten, bool *midx);

/* After a pack of class cls was published: merge small packs (ingest.c;
 * skipped while another process repacks). */
int udr__ingest_repack(udr_store *s, int cls);

#endif
