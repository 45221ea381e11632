/*
 * gcfence.h - the writers' side of the GC fence (docs/GC.md 4.3, steps 1-3,
 * 5 and 6): every put and every commit with chunks holds flock LOCK_SH on
 * chunks/gc/active.<epoch mod 2>; a put whose whole content was already
 * stored in an old copy appends a record to chunks/gc/fresh.<epoch mod 2>.
 */
#ifndef UDR_GCFENCE_H
#define UDR_GCFENCE_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include <udr/store.h>

#include "store/gcstate.h"

/* Default grace of finished, uncommitted, ownerless puts: 24 h. */
#define UDR__GC_GRACE_MS_DEFAULT ((int64_t)24 * 3600 * 1000)
/* Size of a fresh record: <u64 ms LE><32-byte hash>. */
#define UDR__GC_FRESH_RECORD 40

/*
 * A writer's hold on the fence.  fd >= 0 while held.  epoch and phase are
 * the STATE read after the lock was taken (the one the writer must obey).
 */
typedef struct udr__gc_hold {
	int fd;
	uint64_t epoch;
	enum udr__gc_phase phase;
	/* the process's list of holds: a child forked while one is held
	 * closes its copy of the descriptor at once (pthread_atfork), so the
	 * lock never outlives the parent's hold; its copy of the struct then
	 * ends as a no-op (pid says whose it is) */
	struct udr__gc_hold *prev, *next;
	int pid;
	/* the thread that took it: a gc that thread runs would wait for
	 * itself (udr__gc_exclusive_begin refuses) */
	pthread_t owner;
} udr__gc_hold;
#define UDR__GC_HOLD_INIT {-1, 0, UDR__GC_IDLE, NULL, NULL, 0, 0}

/*
 * Steps 1-3: read STATE's epoch e (cached: one stat), open
 * chunks/gc/active.<e mod 2> anew (created with gc/ when missing), take
 * flock(LOCK_SH) (waits while GC holds it exclusively), read STATE again and
 * start over when the parity changed.  Lock order: active before the
 * catalog's inflight and writer locks.  Errors: UDR_EIO (a store the
 * process cannot write: EACCES/EROFS say so; a put must not go on
 * unprotected), UDR_ECORRUPT (STATE damaged), UDR_ENOMEM.
 */
int udr__gc_hold_begin(udr__gc_hold *h, udr_store *s);
/* Step 6: unlock and close (safe on an init'ed or ended hold). */
void udr__gc_hold_end(udr__gc_hold *h);

/*
 * GC's side of this round's stop-the-world fence (GC.md 4.7): flock LOCK_EX
 * on active.0 and then active.1 (created when missing), waiting for every
 * writer holding either, or with wait false failing with UDR_ELOCKED when
 * one is held (nothing then held).  fds[2] receive the descriptors; the
 * lock stays until udr__gc_exclusive_end.  Take it before any catalog lock
 * (lock order: active, inflight, lock, packs/lock; gc's unlocked first
 * mark holds packs/lock and may then wait on inflight, to read the head:
 * no holder of inflight waits on packs/lock).  Errors: UDR_ELOCKED,
 * UDR_EIO, UDR_ENOMEM.
 */
int udr__gc_exclusive_begin(int fds[2], udr_store *s, bool wait);
void udr__gc_exclusive_end(int fds[2]);

/* The store's grace for the fresh test and GC's roots (config "gc":
 * {"grace_ms":N}, default UDR__GC_GRACE_MS_DEFAULT). */
int64_t udr__store_gc_grace_ms(const udr_store *s);

/*
 * Step 5: the put of h (held, begun at start_ms by udr__now_ms) is
 * finished; when some copy of hash was made before start_ms (a loose
 * file's ctime; a pack's index mtime in seconds when that is clear, else
 * the pack's ctime), append <now ms LE64><hash> to
 * chunks/gc/fresh.<epoch mod 2> with O_APPEND under flock LOCK_SH (a torn
 * tail of a dead writer is cut first, under LOCK_EX).  The record is
 * synced only when such a copy is older than the grace; for a younger one
 * it is best effort (a failure is cleared, the put stands).  *noted (may
 * be NULL) tells whether a record was written.  Errors: UDR_EIO (only for
 * an old copy: the put then fails, its content may be swept otherwise).
 */
int udr__gc_fresh_note(udr_store *s, const udr__gc_hold *h, const udr_hash *hash, int64_t start_ms, bool *noted);

/*
 * GC's reader: call cb for every complete record of chunks/gc/fresh.<parity>
 * in file order (a torn trailing record, from a writer killed mid-append or
 * still appending, is skipped).  cb returns nonzero to stop (returned as
 * is).  A missing file: 0 records, returns 0.  storepath is the chunk
 * store's directory.
 */
typedef int (*udr__gc_fresh_cb)(int64_t ms, const udr_hash *hash, void *payload);
int udr__gc_fresh_foreach(const char *storepath, unsigned parity, udr__gc_fresh_cb cb, void *payload);

/*
 * GC, once it has read fresh.<parity> and holds active.<parity> exclusively
 * (no writer can append): remove the file, durably (fsync of gc/).  A
 * missing file is fine.  Errors: UDR_EIO, UDR_ENOMEM.
 */
int udr__gc_fresh_reset(const char *storepath, unsigned parity);

/*
 * The doomed set (GC.md 4.7): a run that stopped the world only for its mark
 * publishes, before it lets writers go, the objects it is going to remove
 * entirely, in chunks/gc/doomed-<epoch>-<random> (FORMAT.md "GC files": "UDRDOOM1",
 * u64 LE epoch, u64 LE count, count sorted 32-byte hashes, the BLAKE3 of all
 * that), and names it in STATE until the run ends.  A writer (holding the
 * fence) about to reuse object h (a dedup hit, a delta base, a chunk a commit
 * names) calls udr__gc_doom_check: 0 when h is not doomed (use it); when it
 * is, the call waits until the run has ended (STATE no longer names the set)
 * or is found dead (gc/lock free), rescans the packs and returns 1: the
 * caller looks h up again, as in a store without it.  Errors: those of
 * reading STATE and scanning packs.
 */
#define UDR__DOOM_MAGIC "UDRDOOM1"
#define UDR__DOOM_HEADER 24
int udr__gc_doom_check(udr_store *s, const udr_hash *h);
/*
 * For a writer holding the fence that touches more than the objects it
 * reuses (udr upgrade packs and unlinks every loose file): wait until a run
 * that is sweeping (STATE names its doomed set) has ended or is found dead;
 * no run can start another sweep while the caller holds the fence.  0, or
 * the errors of reading STATE and scanning packs.  (Review R6.)
 */
int udr__gc_sweep_wait(udr_store *s);
/* The bytes of a doomed file for hashes[n] (sorted, distinct). */
int udr__doomset_encode(char **out, size_t *len, uint64_t epoch, const udr_hash *hashes, uint64_t n);

/*
 * fsck --repair: cut a torn trailing record of chunks/gc/fresh.<parity> (a
 * writer killed mid-append) to whole records, under LOCK_EX as writers do;
 * *cut the bytes removed (0: whole already, or no file).  Errors: UDR_EIO,
 * UDR_ENOMEM.
 */
int udr__gc_fresh_repair(const char *storepath, unsigned parity, uint64_t *cut);

/* Tests: the now (ms) the fresh test uses; 0 restores the clock. */
extern int64_t udr__gc_test_now_ms;

#endif
