/*
 * catalog_internal.h - what the catalog's files share, and what later
 * modules (transactions, changelog, branches, gc) build on.
 */
#ifndef UDR_CATALOG_INTERNAL_H
#define UDR_CATALOG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <udr/catalog.h>
#include <udr/log.h>
#include <udr/refs.h>
#include <udr/txn.h>

/* Catalog format 2: a commit is linked under the writer lock and made
 * durable outside it (group commit); HEAD is then the durable horizon that
 * readers stop at.  Format 1 catalogs keep the older protocol. */
#define CATALOG_FORMAT 2
/* Format 3: a format-2 catalog that has branched (refs.c); set by the first
 * ref record so that older versions refuse it.  Format 4: a format-3
 * catalog with an expire record (expire.c, docs/GC.md 1.4); set by the
 * first one, so that older versions neither read expired versions as
 * damage nor commit without the GC fence.  Format 5: a format-4 catalog
 * with a retention policy record (policyrec.c, docs/GC.md 1.1); set by the
 * first one, so that older versions, which know no "@retention" entry,
 * refuse the catalog rather than report its global state as damaged or run
 * gc without the policy. */
#define CATALOG_FORMAT_MAX 5
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
	char *refsdir;      /* format 3: global checkpoints (refs.c) */
	void *refs_cache;   /* refs.c: the last global checkpoint parsed (immutable, digest-checked) */
	int format;         /* the catalog's format (1 or 2) */
	_Atomic unsigned long long horizon_seen; /* largest durable horizon this handle read */
	udr_store *store; /* borrowed, may be NULL */
	/* lease.c: this handle's lease, made at its first pin (GC.md 2.1) */
	pthread_mutex_t lease_mu;
	struct udr__lease *lease;
	bool lease_unavailable; /* a store this process cannot write: pins are skipped */
};
/* Pin snapshot seq of branch for `what` in the handle's lease (made at the
 * first pin); *pin receives the pin's number, 0 when the store cannot be
 * written (the caller goes on unpinned, GC.md 2.4).  UDR_EIO otherwise. */
int udr__catalog_pin_snapshot(uint64_t *pin, udr_catalog *c, uint64_t seq, const char *branch, const char *what);
/* Drop a pin (0 is none); a failure only keeps it. */
void udr__catalog_unpin(udr_catalog *c, uint64_t pin);
/* A version pin (a statement's or read's resolved table@version) and an
 * after pin (a subscription's cursor), as udr__catalog_pin_snapshot: the
 * pin line written, then the handshake's wait (udr__expiring_wait); the
 * caller checks expiry after.  *pin is 0 on an unpinnable (read-only)
 * store. */
int udr__catalog_pin_version(uint64_t *pin, udr_catalog *c, const char *table, uint64_t version, const char *what);
int udr__catalog_pin_after(uint64_t *pin, udr_catalog *c, uint64_t after, const char *what);
/*
 * catalog/expiring (GC.md 2.2), in HEAD's format.  The expirer:
 * udr__expiring_begin takes flock LOCK_EX and writes the next odd
 * generation (then reads leases and links its expire record);
 * udr__expiring_end writes it even and unlocks.  A pinner, after writing
 * its pin: udr__expiring_wait returns once the value is even, or the file
 * is missing, or its lock is free (no live expirer); 1 ms polls.
 */
int udr__expiring_begin(int *fd, udr_catalog *c);
void udr__expiring_end(int fd, udr_catalog *c);
int udr__expiring_wait(udr_catalog *c);
/* What catalog/expiring says, for fsck (GC.md 6): missing (no expire ever
 * ran: fine), even, odd with its lock free (an expirer died mid-step:
 * pinners do not wait for it), busy (an expire step runs now), damaged
 * (not exactly 20 digits, a space, the check, a newline; damage[] says
 * how).  Strict where the handshake's readers are lenient. */
enum { UDR__EXPIRING_MISSING, UDR__EXPIRING_EVEN, UDR__EXPIRING_ODD, UDR__EXPIRING_BUSY, UDR__EXPIRING_DAMAGED };
typedef struct udr__expiring_info {
	int state;
	uint64_t gen;      /* EVEN, ODD: the generation */
	char damage[96];   /* DAMAGED: why */
	char path[4200];
} udr__expiring_info;
/* Read without waiting (LOCK_SH|LOCK_NB: a running step is BUSY, not read).
 * 0, or UDR_EIO/UDR_ENOMEM. */
int udr__expiring_check(udr__expiring_info *out, udr_catalog *c);
/* fsck --repair: under LOCK_EX|LOCK_NB (never while an expirer runs), an
 * odd value made even (g + 1), a damaged one written anew as 0, in place.
 * *was: what it found; *fixed: 1 when it wrote.  0, or UDR_EIO/UDR_ENOMEM. */
int udr__expiring_repair(udr__expiring_info *was, int *fixed, udr_catalog *c);

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
/* Versions this thread read and checked before taking the writer lock
 * (committed_chunks in commit.c): under the lock, the latest version of
 * such a table is not checked again when the log names the same version
 * and commit.  add keeps a few; clear forgets them. */
void udr__writer_verified_add(const udr_catalog *c, const udr_version *v);
void udr__writer_verified_clear(void);
bool udr__writer_verified(const udr_catalog *c, const char *table, uint64_t version, uint64_t seq);
/* The lock holder's parsed head record (borrowed; set by the commit step
 * after reading it, forgotten when the view is set or cleared): record
 * seq when it is that one, else NULL. */
struct udr__record;
void udr__writer_record_set(const udr_catalog *c, const struct udr__record *r);
const struct udr__record *udr__writer_record(const udr_catalog *c, uint64_t seq);
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

/* One statement of a reader (the query layer binds a statement's tables
 * several times, each asking for the head): between begin and end, the
 * calling thread's first look at c's visible head is kept and answered
 * again, so that the statement reads one state and probes the log once; a
 * commit by this thread ends the reuse (its head is looked up anew).  The
 * writer lock's own view is unaffected.  A statement begun inside another
 * looks afresh; begin returns the outer one's state, which end restores. */
typedef struct udr__statement {
	const udr_catalog *c;
	bool known;
	uint64_t head, commits;
} udr__statement;
udr__statement udr__catalog_statement_begin(udr_catalog *c);
void udr__catalog_statement_end(udr__statement was);
/* The running statement's next look at c's head looks again. */
void udr__catalog_statement_forget(const udr_catalog *c);

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
	/* branches (refs.c, FORMAT.md "Branches"): the global series */
	bool branched;        /* carries gbase/gwindow */
	uint64_t gbase;       /* the global checkpoint refs/<gbase>.json */
	udr_hash gbase_state;
	udr__tstate gwindow;  /* tables' allocation and refs changed since gbase */
	uint64_t ref_prev;    /* the record that moved this record's branch before */
	struct udr__xrec *xrec; /* op "expire" (expire.c): its "expire" object */
	bool has_gc;            /* op "gc" (expire.c): "gc":{"epoch","mark","through"} */
	uint64_t gc_epoch, gc_mark, gc_through;
	char *retention;        /* op "retention" (policyrec.c): the policy object, compact JSON */
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
/* A kind of checkpoint derived from the log (table snapshots in state/,
 * global states in refs/): where it lives, how it parses, how the log
 * rebuilds it and how it encodes. */
typedef struct udr__ckpt_kind {
	const char *what; /* in messages: "checkpoint", "global checkpoint" */
	char *(*path)(const udr_catalog *c, uint64_t seq);
	int (*from_json)(udr__tstate *out, const char *text, size_t len, const char *path, uint64_t seq);
	int (*rebuild)(udr__tstate *out, udr_catalog *c, uint64_t seq, int depth);
	int (*encode)(char **out, size_t *out_len, const udr__tstate *s, uint64_t seq);
} udr__ckpt_kind;
/* The checkpoint of seq that record r names with digest: read when its bytes
 * match the digest, else rebuilt from the log and checked against it
 * (UDR_ECORRUPT when the log does not produce it).  seq 0: an empty state. */
int udr__ckpt_load(udr__tstate *out, udr_catalog *c, const udr__ckpt_kind *k, const udr__record *r,
                   uint64_t seq, const udr_hash *digest, int depth);
/* The full state at commit seq (0: empty).  *known is false when seq's
 * record is format 1 (no window): callers then fall back to the version
 * files. */
int udr__state_at(udr__tstate *out, bool *known, udr_catalog *c, uint64_t seq);
/* One table's entry at commit seq: 1 found (entry copied, table borrowed),
 * 0 table absent at seq, 2 seq's record is format 1 (unknown). */
int udr__state_lookup(udr__tentry *out, udr_catalog *c, uint64_t seq, const char *table);
/* As udr__state_lookup, through a view: NULL the snapshot of record seq;
 * UDR__VIEW_ALLOC each table's highest allocated version at seq (all
 * branches); a branch name: the table on that branch as of seq (no such
 * branch: UDR_ENOTFOUND). */
#define UDR__VIEW_ALLOC "@"
int udr__state_lookup_ex(udr__tentry *out, udr_catalog *c, uint64_t seq, const char *table, const char *view);
/* refs.c: the same for a branched record r. */
int udr__view_lookup(udr__tentry *out, udr_catalog *c, const udr__record *r, const char *table, const char *view);
struct json_t;
int udr__gentries_from_json(udr__tstate *w, struct json_t *o, uint64_t lo, uint64_t hi);
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
 * wins), and so does one whose version on the branch is no longer the
 * version's parent (the version the writer read at snapshot: a branch
 * reset or deleted and created again since moved it to another version,
 * made by an older commit); check_tables/ncheck list extra tables that must
 * be unchanged since snapshot (serializable reads), check_versions their
 * versions on the branch at snapshot (NULL: only the commits are checked).
 * On success the versions are filled in (created_ms, parent, commit_seq)
 * and *seq_out has the commit's number.
 */
typedef struct udr__commit_opts {
	bool assign;
	bool use_snapshot; /* check conflicts against snapshot */
	uint64_t snapshot;
	const char *const *check_tables;
	const uint64_t *check_versions;
	size_t ncheck;
	const char *message;
	const char *branch;
	/* refs.c: a ref record (op "create", "reset", "delete", "tag",
	 * "untag", "merge"); NULL for a commit */
	const char *op;
	const char *ref_name;   /* branch or tag name of op */
	uint64_t target;        /* create/reset/tag: the commit named */
	uint64_t parent2;       /* merge: the source commit */
	const udr__tstate *adopt; /* merge: table versions taken without a new version (version, any seq) */
	uint64_t source;        /* cherry-pick, revert (pick.c): the commit picked or reverted */
	/* op "expire" (expire.c): the versions to expire; the commit step
	 * drops what it must keep (heads, tags, latest) under the lock */
	const struct udr__xrec *expire;
	/* cherry-pick, revert: the versions whose content the record copies
	 * (checked not expired under the lock) */
	const udr__tstate *named;
	/* op "gc" (udr__catalog_gc_record): the run's epoch, the head it
	 * marked at, the last expire record whose versions it may sweep */
	uint64_t gc_epoch, gc_mark, gc_through;
	/* op "retention" (udr_retention_set): the policy object, compact JSON,
	 * checked by the caller */
	const char *retention;
	/* with retention_check: the retention record that must still be in
	 * force at the linked head (0: none), else UDR_ECONFLICT */
	bool retention_check;
	uint64_t retention_expect;
} udr__commit_opts;
/* Ops that commit on a branch whose head must still be o->target (merge,
 * cherry-pick, revert): no "ref" key, the branch must exist. */
bool udr__op_commits(const char *op);
/* mbase.c: is x an ancestor of from (or from itself)?  Reads the records
 * between them only. */
int udr__is_ancestor(bool *out, udr_catalog *c, uint64_t x, uint64_t from);
/* mbase.c: the merge bases of a and b (their common ancestors no other
 * common ancestor descends from), newest first; none for unrelated
 * histories.  Free *out. */
int udr__merge_bases(uint64_t **out, size_t *count, udr_catalog *c, uint64_t a, uint64_t b);
/* refs.c, for merges and pick.c: check udr_merge_options; the strategy for
 * a table; append a table's row to a result (m->nconflicts counted). */
struct udr_merge_options;
struct udr_merge_result;
int udr__merge_opts_check(const struct udr_merge_options *opts);
int udr__merge_strategy_for(const struct udr_merge_options *o, const char *table);
int udr__merge_add_table(struct udr_merge_result *m, size_t *cap, const char *t, uint64_t b, uint64_t o, uint64_t th,
                         uint64_t res, int conflict);
int udr__catalog_commit_versions(uint64_t *seq_out, udr_catalog *c, udr_version *const *versions, size_t n,
                                 const udr__commit_opts *opts);



/* ---- refs (refs.c) ------------------------------------------------------- */
/* What a commit on a branch, or a ref record, needs under the writer lock
 * (prev: the linked head's record, NULL for an empty log): its parent, the
 * record whose snapshot it continues, and the record that moved its ref
 * before.  branchy false: a store that never branched, committing on main
 * as before.  Checks that the ref exists (or not, for create and tag). */
typedef struct udr__refplan {
	bool branchy;
	uint64_t parent;
	uint64_t snap_from;
	uint64_t ref_prev;
	int format; /* the catalog format the record needs (config raised by the commit step once every check passed) */
} udr__refplan;
int udr__refs_plan(udr__refplan *p, udr_catalog *c, const udr__record *prev, uint64_t head,
                   const udr__commit_opts *o);
/* The global state's entry for key at global seq (record r): 1 found, 0
 * absent. */
int udr__global_lookup(udr__tentry *out, udr_catalog *c, const udr__record *r, const char *key);
/* What a branch-aware record adds (the snapshot from the branch's parent
 * record, the global series from the linked head). */
int udr__record_ext_refs(udr__record *ext, udr_catalog *c, const udr__record *prev, const udr_commit *cm,
                         const udr__commit_opts *o, uint64_t snap_from, uint64_t ref_prev);
/* The snapshot of commit seq: its table's version (0 none), and the seq
 * that made it; 2 when unknown (format-1 records). */
int udr__snapshot_table(uint64_t *version, uint64_t *seq, udr_catalog *c, uint64_t commit, const char *table);
/* Readers: the head record of branch (NULL: main) as of global seq at
 * (0: the visible head).  UDR_ENOTFOUND when it does not exist. */
int udr__branch_head(uint64_t *out, udr_catalog *c, const char *branch, uint64_t at);
/* 1 when versions a and b of table hold the same chunks and metadata (0
 * when either is 0); UDR_ECORRUPT when one is not committed. */
int udr__same_content(udr_catalog *c, const char *table, uint64_t a, uint64_t b);

/* 0, or UDR_EINVAL when message (NULL: none) is not valid UTF-8: checked
 * before anything a commit needs is stored. */
int udr__message_check(const char *message);
void udr__refs_cache_free(udr_catalog *c);
/* Has the store branched (a ref record exists, or the config says 3)? */
bool udr__catalog_branched(udr_catalog *c);
/* udr_catalog_resolve as of global seq (0: the readers' head). */
int udr__resolve_at_seq(uint64_t *commit, udr_catalog *c, const char *ref, uint64_t seq);
/* The highest version of table allocated as of commit head, on any branch
 * (dropped tables' too; 0: the table never had one). */
int udr__table_allocated(uint64_t *out, udr_catalog *c, uint64_t head, const char *table);
/* udr_catalog_refs as of commit head (0: before the first commit). */
int udr__catalog_refs_at(udr_ref **out, size_t *count, udr_catalog *c, int kind, uint64_t head);
/* fsck: lay record r over g (the global state fsck computes from the log:
 * allocation and refs) and check r against it and its parents' snapshots:
 * 0 fine, 1 a problem described in why, <0 error. */
int udr__fsck_refs_record(udr__tstate *g, udr_catalog *c, const udr__record *r, char *why, size_t whysz);
/* The whole global state at record r (allocation, refs, expiry entries). */
int udr__global_state(udr__tstate *out, udr_catalog *c, const udr__record *r);
/* Rewrite config.json for catalog format n (3, 4) under the writer lock,
 * before the first record that needs it; 0 when already there. */
int udr__catalog_config_format(udr_catalog *c, int n);
/* "branch:NAME" / "tag:NAME" for a ref record's opts (malloc'd). */
char *udr__ref_string(const udr__commit_opts *o);

/* ---- expiry (expire.c, docs/GC.md 1.4) ---------------------------------- */
/* One table's part of an expire record: the ranges [first, last] it newly
 * expires (sorted, disjoint, not adjacent), the previous record that changed
 * the table's expired set (0: none), and the digest of the table's expired-set
 * checkpoint catalog/expired/<table>/<seq>.json after this record. */
typedef struct udr__xtable {
	char *table;
	uint64_t (*ranges)[2];
	size_t nranges;
	uint64_t prev;
	udr_hash state;
} udr__xtable;
/* The "expire" object of an expire record (a request, before the commit
 * step: tables and ranges only, prev and state unset), tables sorted; or
 * the "unexpire" object of an unexpire record: ranges taken back. */
typedef struct udr__xrec {
	bool unexpire;   /* "unexpire": ranges are removed ("remove") */
	uint64_t undo;   /* unexpire: the expire record taken back (0: a restore) */
	uint64_t at;     /* the head the plan was computed at */
	uint64_t policy; /* the retention record used (0: a one-off rule) */
	char *rule;      /* the rule as text */
	uint64_t versions;
	udr__xtable *t;
	size_t nt;
	/* a request only (borrowed, not in the record): the live pins the
	 * expirer read after starting its step (GC.md 2.2); the commit step
	 * keeps every version they reach */
	const struct udr__lease_set *pins;
} udr__xrec;
void udr__xrec_free(udr__xrec *x);
/* Ops "expire" and "unexpire" (records with an xrec), and with "gc" the
 * ops of branch-less records of retention (format 4). */
bool udr__op_expiry(const char *op);
bool udr__op_retention(const char *op);
/* policyrec.c: check a stored policy object's text (what
 * udr_retention_set stores: udr_retention_policy_parse, and no key this
 * version does not apply); UDR_EINVAL naming the key. */
int udr__retention_check(const char *json);
/* policyrec.c: the retention record in force at record r (0: none) and
 * its policy text (NULL: none; free with free()). */
int udr__retention_at(uint64_t *seq, char **json, udr_catalog *c, const udr__record *r);
/* policyrec.c: the policy in force at commit at (0: the head), parsed
 * (*out NULL and *seq 0: none); UDR_ECORRUPT when the stored one does not
 * parse. */
struct udr_retention_policy;
int udr__retention_load(struct udr_retention_policy **out, uint64_t *seq, udr_catalog *c, uint64_t at);
/* Link the gc record of GC.md 1.4 / 4.3: {"epoch","mark","through"}; global
 * "@gc" -> [through, seq].  From it on, versions expired by records <=
 * through may lose their data and cannot be unexpired (UDR_ECONFLICT).
 * Checked under the writer lock: through <= mark <= head, through not below
 * the previous gc record's.  *seq receives the record.  0; UDR_EINVAL;
 * UDR_EIO; UDR_ENOMEM. */
int udr__catalog_gc_record(uint64_t *seq, udr_catalog *c, uint64_t epoch, uint64_t mark, uint64_t through);
/* *seq the last expire or unexpire record at the true head (0: none),
 * *head_out that head (may be NULL). */
int udr__expire_latest(uint64_t *seq, uint64_t *head_out, udr_catalog *c);
/* The commit step's check of a gc record (under the writer lock). */
int udr__gc_record_check(udr_catalog *c, const udr__record *prev, uint64_t head, const udr__commit_opts *o);
/* The "@gc" entry at record r: *through and the gc record *gseq (0, 0: none). */
int udr__gc_at(uint64_t *through, uint64_t *gseq, udr_catalog *c, const udr__record *r);
/* Parse and check a record's "expire" (or "unexpire") object (UDR_ECORRUPT
 * naming path). */
int udr__xrec_from_json(udr__xrec **out, struct json_t *o, const char *path, uint64_t seq, bool unexpire);
/* Add "expire": {...} (or "unexpire") to record object o (nonzero on failure). */
int udr__xrec_to_json(struct json_t *o, const udr__xrec *x);
/* Under the writer lock (commit.c), for the expire record seq at time ms
 * after the linked head (record prev, NULL for an empty log): the request
 * less every version a branch head's or tag's snapshot names, each table's
 * latest, the snapshots named by ref records after req->at and versions
 * already expired; writes each changed table's checkpoint.  0 with *out
 * set; 1 when nothing is left to expire (nothing written). */
int udr__expire_prepare(udr__xrec **out, udr_catalog *c, const udr__record *prev, uint64_t head,
                        const udr__xrec *req, uint64_t seq, int64_t ms);
/* fsck: check expire (or unexpire) record r against g, the global state
 * before it (fsck's): its ranges against the previous set, never a latest,
 * head's or tag's version, the state digest, and the checkpoint file
 * (rewritten when missing or damaged).  0 fine, 1 a problem in why. */
int udr__fsck_expire_record(udr_catalog *c, const udr__record *r, const udr__tstate *g, char *why, size_t whysz);
/* fsck: does the snapshot of commit (named by ref record seq) hold a
 * version expired in g?  0 no, 1 yes (why says which). */
int udr__fsck_ref_expired(udr_catalog *c, const udr__tstate *g, uint64_t commit, uint64_t seq, char *why,
                          size_t whysz);
/* An expired range: versions first..last, expired by record seq at ms. */
typedef struct udr__xrange {
	uint64_t first, last, seq;
	int64_t ms;
} udr__xrange;
typedef struct udr__xset {
	udr__xrange *r;
	size_t n, cap;
} udr__xset;
void udr__xset_free(udr__xset *s);
/* Table's expired set as of record r (empty when never expired); *from
 * receives the record holding its current state (0: none). */
int udr__xset_at(udr__xset *out, uint64_t *from, udr_catalog *c, const udr__record *r, const char *table);
/* The range holding version v, or NULL. */
const udr__xrange *udr__xset_find(const udr__xset *s, uint64_t v);
/* The versions of table that the live pins reach at head, as the expire
 * step keeps them (GC.md 2.3; table's highest allocated version is
 * latest): *out (*n of them, unsorted, repeats possible; free()).  1 when
 * a pin cannot be resolved: the step then keeps the whole table.  For the
 * plan's report; the step itself decides under the writer lock. */
struct udr__lease_set;
int udr__expire_pinned(uint64_t **out, size_t *n, udr_catalog *c, const struct udr__lease_set *pins, uint64_t head,
                       const char *table, uint64_t latest);

/* Reads (GC.md 1.5): 0 when table@version (0: none) is not expired at the
 * head (the linked head under the writer lock), else UDR_EEXPIRED with the
 * message of 1.5; at names a time-travel read ("2026-01-01T00:00:00Z"), or
 * NULL.  _at: as of record r (under the writer lock: the linked head's). */
int udr__version_check(udr_catalog *c, const char *table, uint64_t version, const char *at);
int udr__version_check_at(udr_catalog *c, const udr__record *r, const char *table, uint64_t version);
/* Under the writer lock: a branch create/reset or tag naming a snapshot
 * with an expired version, or a record adopting or copying one (o->adopt,
 * o->named), is refused
 * with UDR_EEXPIRED (GC.md 1.4); prev is the linked head's record. */
int udr__expire_refuse(udr_catalog *c, const udr__record *prev, const udr__commit_opts *o);

/* Largest version of table (<= latest) made by a commit <= seq; 0 if none. */
int udr__version_at_seq(uint64_t *out, udr_catalog *c, const char *table, uint64_t latest, uint64_t seq);
/* The same on a branch (main: udr__version_at_seq). */
int udr__version_at_seq_on(uint64_t *out, udr_catalog *c, const char *table, uint64_t latest, uint64_t seq,
                           const char *branch);
#endif
