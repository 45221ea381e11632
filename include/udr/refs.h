/*
 * udr/refs.h - branches, tags, the reflog and merges.
 *
 * A branch names a commit and through it one version of every table; the
 * default branch is "main" (a store that never branched is all main).  Every
 * ref move is a record of the commit log, atomic with its commit (see
 * docs/FORMAT.md "Branches, tags and the reflog").
 *
 * A ref string names a commit: "NAME" (the branch NAME, else the tag NAME;
 * an error when both exist), "branch:NAME", "tag:NAME" or "commit:N".
 */
#ifndef UDR_REFS_H
#define UDR_REFS_H

#include "common.h"
#include "catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest branch or tag name, in bytes. */
#define UDR_REF_NAME_MAX 255

/**
 * Check a branch or tag name (git's rules as issue 12 states them): 1 to 255
 * bytes of letters, digits and "._-/", no "..", no "//", not starting with
 * '-' or '/', not ending with '/' or ".lock".
 * @return 0, or UDR_EINVAL quoting the name.
 */
UDR_EXTERN int udr_ref_name_check(const char *name);

/** Kinds of refs. */
#define UDR_REF_BRANCH 1
#define UDR_REF_TAG 2

/** A ref and the commit it names. */
typedef struct udr_ref {
	char *name;     /**< branch or tag name */
	int kind;       /**< UDR_REF_BRANCH or UDR_REF_TAG */
	uint64_t commit; /**< the commit it names (a branch: its head record) */
	uint64_t moved; /**< the record that last set it */
} udr_ref;

/** Free an array of refs (accepts NULL). */
UDR_EXTERN void udr_ref_array_free(udr_ref *refs, size_t count);

/**
 * The existing refs, sorted by kind (branches first) then name.
 * @param kind UDR_REF_BRANCH, UDR_REF_TAG, or 0 for both
 * @param[out] out freed with udr_ref_array_free
 * @return 0; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_refs(udr_ref **out, size_t *count, udr_catalog *catalog, int kind);

/**
 * The commit a ref string names (above), at the visible head.
 * @return 0; UDR_EINVAL (malformed ref, or "NAME" both a branch and a tag);
 *         UDR_ENOTFOUND (no such ref or commit); UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_catalog_resolve(uint64_t *commit, udr_catalog *catalog, const char *ref);

/**
 * The commit a ref string named at time_ms (the last commit made at or
 * before it): a branch's head then, a tag then, or commit:N.
 * @return as udr_catalog_resolve; UDR_ENOTFOUND when the log starts later.
 */
UDR_EXTERN int udr_catalog_resolve_at(uint64_t *commit, udr_catalog *catalog, const char *ref, int64_t time_ms);

/**
 * Create branch name at the commit from names (NULL: main's head).  One
 * record, O(1) in data size.  Each ref function stores *seq_out (may be
 * NULL) = the record's seq.
 * @return 0; UDR_EINVAL (bad name or ref); UDR_ENOTFOUND (from); UDR_ECONFLICT
 *         (the branch exists); UDR_ECORRUPT; UDR_EIO.  Nothing is written on
 *         error.
 */
UDR_EXTERN int udr_branch_create(uint64_t *seq_out, udr_catalog *catalog, const char *name, const char *from);

/** Move branch name to the commit `to` names (its reflog keeps the old
 *  head).  @return as udr_branch_create; UDR_ENOTFOUND (no such branch). */
UDR_EXTERN int udr_branch_reset(uint64_t *seq_out, udr_catalog *catalog, const char *name, const char *to);

/** Delete a branch (never "main"; its commits stay).  @return 0; UDR_EINVAL
 *  (bad name, or main); UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO. */
UDR_EXTERN int udr_branch_delete(uint64_t *seq_out, udr_catalog *catalog, const char *name);

/** Tag the commit target names (NULL: main's head); tags are immutable.
 *  @return as udr_branch_create (UDR_ECONFLICT: the tag exists). */
UDR_EXTERN int udr_tag_create(uint64_t *seq_out, udr_catalog *catalog, const char *name, const char *target);

/** Delete a tag.  @return 0; UDR_EINVAL; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO. */
UDR_EXTERN int udr_tag_delete(uint64_t *seq_out, udr_catalog *catalog, const char *name);

/** One move of a branch head. */
typedef struct udr_reflog_entry {
	uint64_t seq;     /**< the record that moved it */
	uint64_t head;    /**< the head after the move (0: deleted) */
	uint64_t old;     /**< the head before (0: none) */
	int64_t time_ms;
	char *op;         /**< "commit", "merge", "create", "reset", "delete" */
	char *author;
	char *message;    /**< NULL when none */
} udr_reflog_entry;

/** Free reflog entries (accepts NULL). */
UDR_EXTERN void udr_reflog_free(udr_reflog_entry *e, size_t count);

/**
 * The moves of branch name, newest first, at most limit (0: all).
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND (never existed); UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_branch_reflog(udr_reflog_entry **out, size_t *count, udr_catalog *catalog, const char *name,
                                 size_t limit);

/** A table in a snapshot. */
typedef struct udr_table_ref {
	char *table;
	uint64_t version;
	uint64_t commit;  /**< the record that put this version there */
} udr_table_ref;

/** Free a snapshot (accepts NULL). */
UDR_EXTERN void udr_table_ref_array_free(udr_table_ref *a, size_t count);

/**
 * Every table and its version at the commit ref names (NULL: main), sorted.
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_snapshot(udr_table_ref **out, size_t *count, udr_catalog *catalog, const char *ref);

/** A table whose version differs between two commits. */
typedef struct udr_table_diff {
	char *table;
	uint64_t old_version; /**< in the first (0: absent, the table was added) */
	uint64_t new_version; /**< in the second (0: absent, the table was removed) */
} udr_table_diff;

/** Free a diff (accepts NULL). */
UDR_EXTERN void udr_table_diff_free(udr_table_diff *d, size_t count);

/**
 * The tables whose version differs between the commits refs a and b name,
 * sorted by name.
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_diff(udr_table_diff **out, size_t *count, udr_catalog *catalog, const char *a,
                                const char *b);

/**
 * Reads on a ref (NULL: main): as udr_catalog_latest, udr_catalog_get_version
 * (version 0: the latest on ref; a number: that version, which is one
 * immutable thing whatever branch made it), udr_catalog_list_versions (the
 * versions on ref: its version and its parents) and udr_catalog_list_tables.
 */
UDR_EXTERN int udr_catalog_latest_on(uint64_t *out, udr_catalog *catalog, const char *table, const char *ref);
UDR_EXTERN int udr_catalog_get_version_on(udr_version **out, udr_catalog *catalog, const char *table,
                                          uint64_t version, const char *ref);
UDR_EXTERN int udr_catalog_list_versions_on(uint64_t **out, size_t *count, udr_catalog *catalog, const char *table,
                                            const char *ref);
UDR_EXTERN int udr_catalog_list_tables_on(char ***out, size_t *count, udr_catalog *catalog, const char *ref);

/**
 * Commit v on branch (NULL: main), as udr_catalog_commit (assign 0: v->version
 * must be the table's highest allocated version + 1, on any branch) or
 * udr_catalog_commit_next (assign 1).  Conflicts only with commits on branch.
 * @return as udr_catalog_commit; UDR_ENOTFOUND (no such branch).
 */
UDR_EXTERN int udr_catalog_commit_on(udr_catalog *catalog, udr_version *v, const char *branch, int assign);

/** Merge strategies. */
#define UDR_MERGE_FAIL 0   /**< a table changed on both sides is a conflict */
#define UDR_MERGE_OURS 1   /**< ... keeps the target's version */
#define UDR_MERGE_THEIRS 2 /**< ... takes the source's version */

/** Options of udr_merge; initialize with UDR_MERGE_OPTIONS_INIT. */
#define UDR_MERGE_OPTIONS_VERSION 1
typedef struct udr_merge_options {
	unsigned int version;
	int strategy;                 /**< for every table (UDR_MERGE_FAIL default) */
	const char *const *tables;    /**< per-table strategies: names ... */
	const int *table_strategies;  /**< ... and their strategies */
	size_t ntables;
	int dry_run;                  /**< decide and report, write nothing */
	const char *message;
} udr_merge_options;
#define UDR_MERGE_OPTIONS_INIT {UDR_MERGE_OPTIONS_VERSION, UDR_MERGE_FAIL, NULL, NULL, 0, 0, NULL}

/** What happens to one table in a merge. */
typedef struct udr_merge_table {
	char *table;
	uint64_t base, ours, theirs; /**< versions (0: absent) */
	uint64_t result;             /**< the version the target gets */
	int conflict;                /**< changed on both sides, no strategy */
	/* row-level merges (udr_query_merge, include/udr/query.h); 0 otherwise */
	int rowlevel;                /**< merged (or tried) row by row on a key */
	uint64_t rows_ours;          /**< rows (keys) changed on our side only: kept */
	uint64_t rows_theirs;        /**< rows changed on their side only: taken */
	uint64_t rows_same;          /**< rows changed the same way on both sides */
	uint64_t rows_cells;         /**< rows whose columns were merged cell by cell */
	uint64_t rows_conflict;      /**< rows changed differently on both sides */
	char *note;                  /**< why a both-sided change stayed at table
	                                  level (no key, schema changed, ...); NULL */
} udr_merge_table;

/** The outcome of udr_merge. */
typedef struct udr_merge_result {
	uint64_t seq;          /**< the merge record (0: nothing written) */
	uint64_t base;         /**< the merge base (0: none; the newest of a criss-cross history's) */
	uint64_t ours, theirs; /**< the target's head and the source commit */
	int up_to_date;        /**< the source is already in the target */
	int fast_forward;      /**< the target had nothing of its own */
	udr_merge_table *tables; /**< tables whose version differs between the sides */
	size_t ntables;
	size_t nconflicts;
} udr_merge_result;

/** Free a merge result (accepts NULL). */
UDR_EXTERN void udr_merge_result_free(udr_merge_result *r);

/**
 * Merge the commit source names into branch into (NULL: main): nothing when
 * the source is already in the target; fast-forward when the target has
 * nothing of its own; else three-way against the merge base at table level.
 * A criss-cross history (several merge bases): a table's base version is
 * the one every base has, else (two bases) what a three-way merge of the
 * two over their own merge base gives; else none, and a table both sides
 * changed conflicts (note says so) unless a strategy picks a side.
 * One record with two parents; with conflicts (or dry_run) nothing is
 * written and *out lists them.
 * @param[out] out the result (also on UDR_ECONFLICT), freed with
 *        udr_merge_result_free
 * @return 0; UDR_ECONFLICT (conflicts, the target moved meanwhile, or
 *         more than 16 merge bases); UDR_EINVAL; UDR_ENOTFOUND;
 *         UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_merge(udr_merge_result **out, udr_catalog *catalog, const char *source, const char *into,
                         const udr_merge_options *opts);

/**
 * Cherry-pick the commit `commit` names onto branch (NULL: main), at table
 * level: each table the commit changed (old -> new) gets a new version with
 * the content (chunks, metadata) of `new`, provided branch still has `old`;
 * a table branch already has at `new` is left alone.  A table at another
 * version is a conflict, unless opts gives it UDR_MERGE_THEIRS (take the
 * content anyway) or UDR_MERGE_OURS (leave it).  One commit on branch (op
 * "cherry-pick", "source" the commit); with conflicts, dry_run, or nothing
 * to take nothing is written.  A branch or tag naming a create/reset record
 * stands for the commit it names; "commit:N" must be a commit with table
 * changes (not a ref record, not a merge), and not already in branch's
 * history.
 * @param[out] out as for udr_merge: tables lists each table of the commit
 *        (base: the version the target must have, ours: its version, theirs:
 *        the version whose content it takes, result: the new version, 0 when
 *        not written: dry run),
 *        up_to_date when there was nothing to take; freed with
 *        udr_merge_result_free
 * @return 0; UDR_ECONFLICT (conflicts, or the branch moved meanwhile);
 *         UDR_EINVAL (bad input, above); UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_cherry_pick(udr_merge_result **out, udr_catalog *catalog, const char *commit, const char *branch,
                               const udr_merge_options *opts);

/**
 * Revert the commit `commit` names on branch (NULL: main): as
 * udr_cherry_pick the other way round.  Each table the commit changed
 * (old -> new) gets a new version with the content of `old`, provided
 * branch still has `new` (a table already at `old` is left alone).  The
 * commit must be in branch's history; a commit that created a table cannot
 * be reverted (tables cannot be dropped): UDR_EINVAL.  One commit on branch
 * (op "revert").
 */
UDR_EXTERN int udr_revert(udr_merge_result **out, udr_catalog *catalog, const char *commit, const char *branch,
                          const udr_merge_options *opts);

#ifdef __cplusplus
}
#endif
#endif
