/*
 * collect.h - garbage collection of the chunk store (docs/GC.md, issue 15):
 * mark (mark.c: the copy table, roots, the walk, kept copies) and sweep
 * (sweep.c: the plan, rewrites, the guard, deletion, udr__gc_collect).
 * Internal: the front ends reach it through udr_db_gc (db.h).
 *
 * Writers are stopped for the mark and plan only (GC.md 4.7): GC holds
 * chunks/gc/lock for the whole run and LOCK_EX on chunks/gc/active.0 and
 * active.1 from before the locked mark lists the copies until its plan and
 * doomed set are durable and named by STATE; puts and commits hold LOCK_SH
 * on one of them (gcfence.c) and wait only when they reuse a doomed object.
 */
#ifndef UDR_GC_COLLECT_H
#define UDR_GC_COLLECT_H

#include <stdbool.h>
#include <stdint.h>
#include <udr/catalog.h>
#include <udr/store.h>

struct udr__pack;

/* Is version `version` of `table` expired and sweepable?  *out 1 yes, 0 no;
 * a negative return stops the run with that error.  Called with table NULL
 * before the mark made under the run's locks: forget whatever was cached
 * (the answers must be those of a head at or after that mark's). */
typedef int (*udr__gc_expired_fn)(int *out, const char *table, uint64_t version, void *payload);
/* Link the run's `gc` record before anything is deleted (GC.md 4.3 G5);
 * *seq its sequence number.  Helper A's udr__catalog_gc_record fits. */
typedef int (*udr__gc_record_fn)(uint64_t *seq, udr_catalog *c, uint64_t epoch, uint64_t mark, uint64_t through,
                                 void *payload);
/* Progress: phase ("mark", "rewrite", "verify", "delete"), done of total. */
typedef void (*udr__gc_progress_fn)(const char *phase, uint64_t done, uint64_t total, void *payload);

typedef struct udr__gc_collect_opts {
	bool dry_run;               /* plan and report only: nothing written */
	int64_t now_ms;             /* 0: the clock */
	int64_t grace_ms;           /* uncommitted copies younger than this stay (root 4, 5) */
	unsigned threshold_pct;     /* rewrite a pack at least this dead (10) */
	unsigned max_unused_pct;    /* then more until unused <= this (5) */
	uint64_t max_repack_bytes;  /* 0: no limit */
	udr__gc_expired_fn expired; /* NULL: nothing expired */
	void *expired_payload;
	udr__gc_record_fn record;   /* NULL: no gc record */
	void *record_payload;
	uint64_t record_through;
	udr__gc_progress_fn progress;
	void *progress_payload;
	bool no_seed;               /* tests: the locked mark reads every delta header itself */
} udr__gc_collect_opts;
#define UDR__GC_COLLECT_OPTS_INIT {false, 0, 24LL * 3600 * 1000, 10, 5, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL, false}

/*
 * Collect: mark, plan, sweep.  *report_json (malloc'd) the report of GC.md
 * 7.1 (mark, removed, written, store, temp).  UDR_ELOCKED naming the pid
 * when another run holds chunks/gc/lock; UDR_ECORRUPT naming the object and
 * the versions when a live object is missing (nothing written), or when the
 * guard fails (STATE aborted, nothing deleted); a STATE left aborted refuses
 * further runs until fsck resets it.
 */
int udr__gc_collect(char **report_json, udr_store *s, udr_catalog *c, const udr__gc_collect_opts *o);
/* Test hooks: the size of unchaining's decode cache (0: computed), and its
 * candidates decoded in the mark's (hash) order instead of as written. */
extern size_t udr__gc_unchain_cache_test;
extern bool udr__gc_unchain_hash_order;
extern bool udr__gc_mark_per_root; /* tests: the mark drains after each version root */

/*
 * Packs of a run that is deleting (STATE deleting, after its guard passed)
 * are gone for readers and fsck, index or not: a kill part way through the
 * deletion must not leave half of a dead content visible, nor an index
 * republished (the orphan rule of FORMAT.md "Writing", fsck).  The next run
 * removes what is left of them.  udr__gc_deleting_plan: *out the plan's
 * text (malloc'd) in that phase, else NULL; an unreadable or damaged STATE
 * is an error (never "nothing hidden").  udr__gc_plan_names: does it name
 * pack hex; udr__gc_plan_removes: both in one.
 */
int udr__gc_deleting_plan(char **out, const char *storepath);
bool udr__gc_plan_names(const char *plan, const char *hex);
int udr__gc_plan_removes(bool *out, const char *storepath, const char *hex);

/*
 * fsck --repair's part of a gc run (GC.md 6): under chunks/gc/lock (taken
 * without waiting: UDR_ELOCKED, "fsck --repair does not run while gc does:
 * ... pid N"), the fence and packs/lock, as a run takes them: finish a run
 * killed while deleting (finish_deleting), abandon one killed before
 * (STATE idle) and remove the run files of earlier runs (abandon_leftovers),
 * write a damaged STATE anew (rebuild_state), cut torn tails of fresh.0 and
 * fresh.1.  Nothing else is touched.
 */
typedef struct udr__gc_repair_out {
	int phase;            /* STATE's phase found (enum udr__gc_phase) */
	uint64_t epoch;       /* STATE's epoch found */
	bool finished;        /* a run killed while deleting was finished */
	bool abandoned;       /* a run killed before deleting was abandoned (STATE idle) */
	bool rebuilt;         /* STATE was damaged: written anew, idle (epoch, gc_seq below) */
	bool plan_damaged;    /* a run killed while deleting had a damaged plan: abandoned (STATE idle) */
	uint64_t gc_seq;      /* with rebuilt: the newest gc record found in the log (0: none) */
	uint64_t run_files;   /* plan-/doomed-/dead-/journal- files removed */
	uint64_t fresh_cut[2]; /* bytes cut off fresh.0, fresh.1 */
} udr__gc_repair_out;
int udr__gc_repair(udr__gc_repair_out *out, udr_store *s, udr_catalog *c);
/* The plan file name (in chunks/gc) of a run killed while deleting, of
 * STATE's epoch and mark: 0 when it is sealed, intact and that run's, or
 * gone; UDR_ECORRUPT (message naming it and the way out) when damaged,
 * without its seal or another run's. */
int udr__gc_plan_check(const udr_store *s, const char *name, uint64_t epoch, uint64_t mark);

/* ---- mark (mark.c) ---------------------------------------------------------- */

/* Flags of a copy in the copy table.  Object flags live on the first copy
 * of the object's run; copy flags on each copy. */
#define UDR__GC_LIVE 1u      /* object: reached from a root as LIVE */
#define UDR__GC_BASE 2u      /* object: reached as a delta base (with LIVE: whichever came first) */
#define UDR__GC_COMM 4u      /* object: named by some version, expired or not */
#define UDR__GC_YOUNG 8u     /* copy: its file is younger than the grace */
#define UDR__GC_KEPT 16u     /* copy: the one copy a live object keeps */
#define UDR__GC_DAMAGED 32u  /* copy: failed its checks when read */
#define UDR__GC_FIRST 64u    /* copy: first of its object's run */
#define UDR__GC_ROOTED 128u  /* object: a young or fresh root */
#define UDR__GC_SHUNNED 256u /* copy: a delta of an object with an intact full copy: never kept, its bases not followed */

typedef struct udr__gc_copy {
	uint64_t prefix; /* first 8 bytes of the hash, big-endian order */
	uint32_t id;     /* pack copies: base[pack] + record; loose: npack_copies + index */
	uint32_t flags;
} udr__gc_copy;

typedef struct udr__gc_loose {
	udr_hash hash;
	uint8_t kind;    /* enum udr__kind */
	int64_t ctime_ms;
	uint64_t size;
} udr__gc_loose;

typedef struct udr__gc_packinfo {
	struct udr__pack *p; /* held */
	int64_t ctime_ms;    /* of its index: when it was published */
	uint64_t size;       /* of the .pack file */
	uint64_t entries, live_entries;
	uint64_t live_bytes, dead_bytes; /* entries' bytes (header, payload, CRC) */
	int action;          /* 0 keep, 1 drop, 2 rewrite */
} udr__gc_packinfo;

typedef struct udr__gc_mark {
	udr_store *s;
	udr_catalog *c;
	int64_t now_ms, grace_ms;
	udr__gc_packinfo *packs;
	size_t npacks;
	uint64_t *base;      /* [npacks + 1]: first copy id of each pack */
	udr__gc_loose *loose;
	size_t nloose, caploose;
	udr__gc_copy *v;     /* sorted by (prefix, hash, id) */
	size_t n;
	/* fan[b]: the first index in v whose prefix's top fanbits bits are >=
	 * b ([1 << fanbits] + 1 entries, about two copies a bucket): a find
	 * searches one bucket, not all of v (a binary search of v was a tenth
	 * of a gc run at 1,000 versions) */
	uint32_t *fan;
	unsigned fanbits;
	/* the read window of the walk's delta and manifest reads (most are a
	 * few hundred bytes to a few KiB, read in about pack order): one
	 * pread per window, not per entry */
	struct udr__readwin *win;
	/* drain's expansions in pack order: (pack, offset) keys */
	struct udr__gc_xkey *xkeys;
	size_t capxkeys;
	uint32_t *stack;     /* object runs (index in v) to expand */
	size_t nstack, capstack;
	/* a delta copy's bases, resolved once per mark (an object is expanded
	 * up to three times: as a base, live, committed): dref[copy id] is 1 +
	 * the offset in dpool of its base count followed by the bases' runs (0:
	 * not read yet) */
	uint32_t *dref, *dpool;
	size_t ndpool, capdpool;
	/* counts of the report */
	uint64_t objects, live, base_only, young, fresh, versions, expired_versions;
	uint64_t cur_bytes, peak_bytes;
	const char *root_what; /* the root being walked, for messages */
	char root_buf[300];
	bool missing_once;   /* a live object was missing: rescan and retry once */
	/* the unlocked mark before unchaining: objects no copy of which it
	 * listed are passed over (counted), not an error (mark.c, not_found) */
	bool lenient;
	uint64_t passed_over;
	/* some copy is younger than the grace: versions are walked COMMITTED
	 * too (that colour only tells young_roots which young objects a
	 * version names; with no young copy, as with --grace 0s, the walk of
	 * every version, expired ones included, is skipped) */
	bool comm_walk;
	/* version_roots pushes every kept version's contents and drains once
	 * at the end (mark_once) */
	bool defer;
	/* the unlocked mark of the same run, kept for the locked one
	 * (udr__gc_mark_run_seeded): a delta copy in a pack both listed has
	 * the same bytes (packs are named by them), so its bases come from
	 * the seed's resolved headers instead of another read (the locked
	 * mark read every delta header again: about 177,000 preads at 1,000
	 * versions) */
	const struct udr__gc_mark *seed;
	uint32_t *seedpack; /* [npacks]: the same pack's number in seed, or UINT32_MAX */
	uint64_t seeded;    /* delta copies whose bases came from the seed */
} udr__gc_mark;

/* The full hash of copy id (pack record or loose entry). */
void udr__gc_copy_hash(udr_hash *out, const udr__gc_mark *m, uint32_t id);
/* Index in m->v of the first copy of h, or SIZE_MAX. */
size_t udr__gc_find(const udr__gc_mark *m, const udr_hash *h);
/* Pack number of a pack copy id, or SIZE_MAX for a loose copy. */
size_t udr__gc_copy_pack(const udr__gc_mark *m, uint32_t id, uint64_t *record);

/*
 * List the copies (visible packs, loose objects), take the roots, walk,
 * choose kept copies, fill the per-pack live and dead bytes.  expired may
 * be NULL.  UDR_ECORRUPT naming the object and the version when a live
 * object is missing after one rescan (or only damaged copies exist).
 */
int udr__gc_mark_run(udr__gc_mark *m, udr_store *s, udr_catalog *c, int64_t now_ms, int64_t grace_ms,
                     udr__gc_expired_fn expired, void *payload);
void udr__gc_mark_free(udr__gc_mark *m);
/* The same, lenient: for the unlocked mark that only chooses what to
 * unchain (adding copies, removing nothing) while writers commit. */
int udr__gc_premark_run(udr__gc_mark *m, udr_store *s, udr_catalog *c, int64_t now_ms, int64_t grace_ms,
                        udr__gc_expired_fn expired, void *payload);
/* udr__gc_mark_run with the resolved delta headers of an earlier mark of
 * the same store (seed, NULL: none; kept by the caller until this returns,
 * then freed with udr__gc_mark_free).  The walk, the roots and every choice
 * are made anew: only the reads of delta copies in packs seed listed too
 * are skipped. */
int udr__gc_mark_run_seeded(udr__gc_mark *m, const udr__gc_mark *seed, udr_store *s, udr_catalog *c,
                            int64_t now_ms, int64_t grace_ms, udr__gc_expired_fn expired, void *payload);
/* Free what a mark no longer needs once it only serves as a seed (its
 * walk's stack, keys, read window and fan table). */
void udr__gc_mark_seed_trim(udr__gc_mark *m);

#endif
