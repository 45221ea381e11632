/*
 * udr/db.h - one handle over a whole store root: <root>/chunks (the chunk
 * store) and <root>/catalog (the catalog, checking chunks against the store).
 */
#ifndef UDR_DB_H
#define UDR_DB_H

#include "common.h"
#include "store.h"
#include "catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An open store root (opaque, thread-safe). */
typedef struct udr_db udr_db;

/**
 * Open (with UDR_OPEN_CREATE: create when missing) the store root at path.
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND ("not a udr store"); UDR_ECORRUPT;
 *         UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_db_open(udr_db **out, const char *path, unsigned int flags);

/** Close (accepts NULL); the store and catalog handles die with it. */
UDR_EXTERN void udr_db_close(udr_db *db);

/** The chunk store of db (borrowed, lives as long as db). */
UDR_EXTERN udr_store *udr_db_store(udr_db *db);

/** The catalog of db (borrowed, lives as long as db). */
UDR_EXTERN udr_catalog *udr_db_catalog(udr_db *db);

/** The root directory (borrowed). */
UDR_EXTERN const char *udr_db_path(const udr_db *db);

/** Options of udr_db_gc (docs/GC.md 7.3).  Initialise with UDR_GC_OPTIONS_INIT. */
typedef struct udr_gc_options {
	unsigned int version;      /**< UDR_GC_OPTIONS_VERSION */
	int dry_run;               /**< nonzero: plan and report, change nothing */
	int64_t grace_ms;          /**< uncommitted data younger than this stays; < 0: the stored
	                                retention policy's "grace", else the store's (24 h) */
	unsigned int threshold_pct;   /**< rewrite packs at least this % dead (10) */
	unsigned int max_unused_pct;  /**< then more until unused bytes <= this % (5) */
	uint64_t max_repack_bytes;    /**< live bytes copied at most (0: no limit) */
	/** Called once per phase and as work proceeds (may be NULL). */
	void (*progress)(const char *phase, uint64_t done, uint64_t total, void *payload);
	void *progress_payload;
	/** Expire first by the stored retention policy (udr_retention_set)
	 *  with its default replaced by this rule when not NULL (udr/gc.h,
	 *  UDR_RETENTION_POLICY); no policy and NULL: expire nothing.  Data
	 *  of versions expired by then is removed. */
	const struct udr_retention_rule *rule;
} udr_gc_options;
#define UDR_GC_OPTIONS_VERSION 1
#define UDR_GC_OPTIONS_INIT {UDR_GC_OPTIONS_VERSION, 0, -1, 10, 5, 0, NULL, NULL, NULL}

/**
 * Garbage collection: remove what no version needs (docs/GC.md).  Writers
 * wait while it runs.  *report_json (freed with udr_free) is the report of
 * docs/GC.md 7.1.
 * @return 0; UDR_EINVAL (bad options); UDR_ELOCKED (another gc runs: its
 *         pid named); UDR_ECORRUPT (a live chunk is missing, or the guard
 *         failed: nothing removed); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_db_gc(char **report_json, udr_db *db, const udr_gc_options *opts);

/**
 * The state of garbage collection: chunks/gc/STATE as a JSON object
 * ({"epoch","phase","running":pid or null,"last":the last run's report or
 * null, ..., "stale_leases": lease files of dead owners, "fresh_torn":
 * bytes of torn records at the end of chunks/gc/fresh.*, "state_missing":
 * chunks/gc exists without its STATE, "run_files": the names of the
 * plan-/doomed-/dead-/journal- files in chunks/gc that STATE does not name
 * (none listed when STATE is damaged), "plan_damage": present only while
 * STATE says deleting and the plan it names is damaged or unsealed: the
 * message (no run can finish it; udr fsck --repair abandons it),
 * "expiring": catalog/expiring
 * {"state":"missing"|"even"|"odd"|"busy"|"damaged","generation":N|null,
 * "damage":why|null,"path"} (odd: an expirer died mid-step; busy: an
 * expire step runs)}); freed with udr_free.
 */
UDR_EXTERN int udr_db_gc_status(char **state_json, udr_db *db);

/**
 * Let gc run again after a run its guard aborted (STATE aborted), once the
 * store was checked (`udr fsck` calls it when it found no problem): STATE
 * back to idle.  *was_aborted (may be NULL) tells whether it was.
 * @return 0; UDR_ELOCKED (a gc runs); UDR_ECORRUPT (STATE damaged); UDR_EIO.
 */
UDR_EXTERN int udr_db_gc_reset(int *was_aborted, udr_db *db);

/**
 * The repairs of `udr fsck --repair` that are not part of the check
 * (docs/GC.md 6): under chunks/gc/lock and the locks a gc run takes, finish
 * a gc run killed while deleting, abandon one killed before (STATE idle) and
 * remove earlier runs' plan-/doomed-/dead-/journal- files, write a damaged
 * STATE anew (idle, a run it named abandoned: nothing deleted;
 * "gc_state_rebuilt" and
 * "gc_seq" in the report), cut torn tails of
 * chunks/gc/fresh.*; remove leases of dead owners; index packs without an
 * index from their bytes, rewrite damaged indexes (failing their trailer or
 * order) from their packs when these hash to their names, then rebuild a
 * damaged multi-pack index, or write a
 * missing one that is due.  Never writes a chunk or a commit record, never
 * expires anything.  The check (udr_store_fsck, udr_catalog_fsck) does the
 * rest: temp files, orphan version files, damaged indexes and checkpoints.
 * @param[out] report_json what was done, freed with udr_free:
 *   {"gc_phase":"idle"|"planned"|...,"gc_epoch":N,"gc_finished":bool,
 *    "gc_abandoned":bool,"gc_files":N,"fresh_cut_bytes":N,"leases":N,
 *    "pack_indexes":N,"pack_indexes_rewritten":N,"midx":bool,
 *    "expiring":null or {"was":"odd"|"damaged","generation":N|null,"damage"}:
 *    catalog/expiring made even when no expirer held it}
 * @return 0; UDR_EINVAL; UDR_ELOCKED (a gc runs: its pid named; nothing
 *         done); UDR_ECORRUPT (STATE or a plan damaged); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_db_repair(char **report_json, udr_db *db);


#ifdef __cplusplus
}
#endif
#endif
