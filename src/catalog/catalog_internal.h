/*
 * catalog_internal.h - what the catalog's files share, and what later
 * modules (transactions, changelog, branches, gc) build on.
 */
#ifndef UDR_CATALOG_INTERNAL_H
#define UDR_CATALOG_INTERNAL_H

#include <stdbool.h>
#include <udr/catalog.h>
#include <udr/log.h>
#include <udr/txn.h>

/* Catalog format 2: a commit is linked under the writer lock and made
 * durable outside it (group commit); HEAD is then the durable horizon that
 * readers stop at.  Format 1 catalogs keep the older protocol. */
#define CATALOG_FORMAT 2
#define RECORD_FORMAT 2
/* A new checkpoint every CHECKPOINT_EVERY commits, or sooner when the
 * window would hold more than CHECKPOINT_WINDOW tables. */
#define CHECKPOINT_EVERY 64
#define CHECKPOINT_WINDOW 512
#define SEQ_DIGITS 20
#define UDR__MAX_META_FILE (1u << 30) /* a version of ~14M chunks */

struct udr_catalog {
	char *path;
	char *tmpdir;
	char *logdir;
	char *tablesdir;
	char *lockpath;
	char *headpath;
	char *statedir;
	char *inflightpath; /* format 2: writers hold LOCK_SH from before link until durable */
	char *syncpath;     /* format 2: the group-commit leader holds LOCK_EX over its syncfs */
	int format;         /* the catalog's format (1 or 2) */
	_Atomic unsigned long long horizon_seen; /* largest durable horizon this handle read */
	udr_store *store; /* borrowed, may be NULL */
};

/* The calling thread holds the writer lock (or recovery's locks) of c and
 * sees linked records past the durable horizon.  Readers see the log up to
 * HEAD (format 2), which only covers durable records. */
void udr__writer_view_set(udr_catalog *c);
void udr__writer_view_clear(void);
bool udr__writer_view(const udr_catalog *c);
/* The lock holder's copies of records it read (a linked record never
 * changes; dropped when the view is set or cleared): get hands out a
 * malloc'd copy of record seq's bytes, NUL-terminated. */
bool udr__writer_cache_get(const udr_catalog *c, uint64_t seq, char **text, size_t *len);
void udr__writer_cache_put(const udr_catalog *c, uint64_t seq, const char *text, size_t len);
/* The linked head the lock holder found (valid until the view is cleared). */
void udr__writer_head_set(uint64_t head);
/* Format 2, before a writer takes its locks: recover records a dead writer
 * left past HEAD, if any (cheap when there are none). */
int udr__catalog_precheck(udr_catalog *c);
/* Format 2: wait for the commit seq (linked by this thread) to be durable,
 * sharing one syncfs among the committers waiting at the same time, and
 * advance HEAD over it.  0, or UDR_EIO (durability unknown). */
int udr__catalog_make_durable(udr_catalog *c, uint64_t seq);
/* Format 2: take the in-flight lock (LOCK_SH for writers; -1 on error). */
int udr__inflight_lock(int *fd, udr_catalog *c, int op);
/* Format 2 recovery, with the in-flight lock held exclusively: syncfs, then
 * keep each record past HEAD that is intact and chain-valid (its version
 * files match), remove the rest from the first broken one on (never
 * acknowledged nor visible), and advance HEAD.  *out: the durable head. */
int udr__catalog_recover(uint64_t *out, udr_catalog *c, uint64_t *removed);
/* Move a format-1 catalog to format 2 (0 done, 1 already format 2). */
int udr__catalog_upgrade(udr_catalog *c);

int udr__version_to_json(char **out, size_t *out_len, const udr_version *v);
int udr__version_from_json(udr_version **out, const char *text, size_t len, const char *path);

/* Paths of the catalog's files (malloc'd, NULL on OOM). */
char *udr__version_path(const udr_catalog *c, const char *table, uint64_t version);
char *udr__commit_path(const udr_catalog *c, uint64_t seq);
/* <dir>/<n as 20 digits>.json */
char *udr__seq_path(const char *dir, uint64_t seq);

/* The writer lock (flock on catalog/lock), held by one commit step at a time. */
int udr__catalog_lock(int *fd, udr_catalog *c);
void udr__catalog_unlock(int fd);

/* Write a cache file holding one number (no fsync, errors ignored). */
void udr__write_number_file(udr_catalog *c, const char *path, uint64_t n);

/* The true last commit sequence number: HEAD cache, then probing forward;
 * UDR_ECORRUPT when HEAD names a missing record or the log has a gap. */
int udr__catalog_true_head(uint64_t *out, udr_catalog *c);
/* The same, reporting what it found instead of failing (for fsck). */
typedef struct udr__head_info {
	uint64_t cache;     /* what HEAD says */
	bool cache_ok;      /* HEAD was readable */
	bool cache_missing; /* HEAD names a record that does not exist */
	uint64_t beyond;    /* a record found past the end of the gap-free log (0: none) */
} udr__head_info;
int udr__head_find(uint64_t *out, udr__head_info *info, udr_catalog *c);

/* Read a commit record; seq beyond the head is UDR_ENOTFOUND. */
int udr__commit_read(udr_commit **out, udr_catalog *c, uint64_t seq);

/* ---- table states (state.c) ----------------------------------------------
 * A table state maps each table to its latest version and the commit that
 * made it, sorted by table name.  The state at commit S is the checkpoint
 * state/<B>.json (the state at commit B, the record's base) plus the
 * record's window (every table changed by commits B+1..S). */
typedef struct udr__tentry {
	char *table;
	uint64_t version; /* 0: none */
	uint64_t seq;     /* the commit that made it */
} udr__tentry;
typedef struct udr__tstate {
	udr__tentry *e;
	size_t n, cap;
} udr__tstate;
void udr__tstate_free(udr__tstate *s);
const udr__tentry *udr__tstate_find(const udr__tstate *s, const char *table);
int udr__tstate_set(udr__tstate *s, const char *table, uint64_t version, uint64_t seq);
/* dst gets every entry of src (src's win). */
int udr__tstate_merge(udr__tstate *dst, const udr__tstate *src);
int udr__tstate_copy(udr__tstate *dst, const udr__tstate *src);
bool udr__tstate_equal(const udr__tstate *a, const udr__tstate *b);

/* A commit record with what format 2 adds to udr_commit (FORMAT.md). */
typedef struct udr__record {
	udr_commit *cm;
	udr_hash digest;      /* BLAKE3 of the record file's bytes */
	bool legacy;          /* format 1: no check, prev, base or window */
	bool has_prev;
	udr_hash prev;        /* digest of record seq - 1 */
	uint64_t base;        /* the checkpoint the window is relative to */
	udr_hash base_state;  /* digest of state/<base>.json (base > 0) */
	udr__tstate window;   /* tables changed by commits base+1 .. seq */
} udr__record;
void udr__record_free(udr__record *r);
/* Read and verify record seq (UDR_ENOTFOUND beyond the head, UDR_ECORRUPT
 * when missing below it or damaged).  r is zeroed first. */
int udr__record_read(udr__record *r, udr_catalog *c, uint64_t seq);
/* The sealed bytes of record cm (format 2) with r's extra fields. */
int udr__record_encode(char **out, size_t *out_len, const udr_commit *cm, const udr__record *r);

/* Checkpoints: state/<seq>.json, sealed. */
char *udr__state_path(const udr_catalog *c, uint64_t seq);
int udr__state_encode(char **out, size_t *out_len, const udr__tstate *s, uint64_t seq);
/* Write the checkpoint of state s at commit seq (no fsync: the commit's
 * syncfs covers it); *digest receives its digest. */
int udr__state_write(udr_hash *digest, udr_catalog *c, const udr__tstate *s, uint64_t seq);
/* The state at record r's base (verified against r's base_state; a missing
 * or damaged checkpoint is rebuilt from the log). */
int udr__state_base(udr__tstate *out, udr_catalog *c, const udr__record *r);
/* The full state at commit seq (0: empty).  *known is false when seq's
 * record is format 1 (no window): callers then fall back to the version
 * files. */
int udr__state_at(udr__tstate *out, bool *known, udr_catalog *c, uint64_t seq);
/* One table's entry at commit seq: 1 found (entry copied, table borrowed),
 * 0 table absent at seq, 2 seq's record is format 1 (unknown). */
int udr__state_lookup(udr__tentry *out, udr_catalog *c, uint64_t seq, const char *table);
/* The state at commit seq by reading records 1..seq (legacy logs). */
int udr__state_scan(udr__tstate *out, udr_catalog *c, uint64_t seq);

/* Is version `version` of `table` committed?  1, 0, or <0 error.  When out is
 * not NULL the committed version is returned in it. */
int udr__version_load(udr_version **out, udr_catalog *c, const char *table, uint64_t version);

/* Latest committed version of table (0 when none). */
int udr__table_latest(uint64_t *out, udr_catalog *c, const char *table);

/*
 * The commit step: under the writer lock, publish the version files of
 * versions[0..n) and then one commit record naming them all.  When assign is
 * true each version number is assigned as latest + 1; otherwise each must be
 * latest + 1 (else UDR_ECONFLICT).  With use_snapshot, a table whose
 * latest commit is newer than snapshot also conflicts (first committer
 * wins); check_tables/ncheck list extra tables that must be unchanged since
 * snapshot (serializable reads).  On success the versions are filled in
 * (created_ms, parent, commit_seq) and *seq_out has the commit's number.
 */
typedef struct udr__commit_opts {
	bool assign;
	bool use_snapshot; /* check conflicts against snapshot */
	uint64_t snapshot;
	const char *const *check_tables;
	size_t ncheck;
	const char *message;
	const char *branch;
} udr__commit_opts;
int udr__catalog_commit_versions(uint64_t *seq_out, udr_catalog *c, udr_version *const *versions, size_t n,
                                 const udr__commit_opts *opts);



/* Largest version of table (<= latest) made by a commit <= seq; 0 if none. */
int udr__version_at_seq(uint64_t *out, udr_catalog *c, const char *table, uint64_t latest, uint64_t seq);
#endif
