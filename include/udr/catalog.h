/*
 * udr/catalog.h - the versioned table catalog.
 *
 * A table version is an immutable, ordered list of chunk hashes plus metadata.
 * Versions of a table are numbered 1, 2, 3 ... with no gaps; any version can
 * be read again at O(1) cost (time travel).  Every change to the catalog
 * becomes visible through exactly one atomic step, the creation of its commit
 * record (see docs/FORMAT.md).  Writers serialize that step with an advisory
 * lock that dies with the process; readers never lock.
 */
#ifndef UDR_CATALOG_H
#define UDR_CATALOG_H

#include "common.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest table name, in bytes. */
#define UDR_TABLE_NAME_MAX 128
/** Limits a commit checks before it writes anything (UDR_EINVAL beyond):
 *  a message, one metadata key or value, all metadata of a version, and
 *  the chunks of one version (each costs 67 bytes of its version file). */
#define UDR_MESSAGE_MAX ((size_t)1 << 20)
#define UDR_META_KEY_MAX ((size_t)1024)
#define UDR_META_TOTAL_MAX ((size_t)16 << 20)
#define UDR_CHUNKS_MAX ((size_t)8 << 20)

/** One string-to-string metadata entry. */
typedef struct udr_meta {
	char *key;
	char *value;
} udr_meta;

/**
 * A table version.  Allocate with udr_version_new, free with
 * udr_version_free; every pointer inside is owned by the struct.  Fields may
 * be read directly; change them only through the udr_version_* setters.
 */
typedef struct udr_version {
	char *table;          /**< table name */
	uint64_t version;     /**< version number, >= 1 */
	udr_hash *chunks;     /**< ordered chunk hashes */
	size_t nchunks;
	int64_t created_ms;   /**< creation time, ms since the Unix epoch, UTC (0: set at commit) */
	uint64_t parent;      /**< previous version of the table, 0 for the first */
	char *message;        /**< optional message, NULL when none */
	udr_meta *meta;       /**< metadata entries, sorted by key, keys unique */
	size_t nmeta;
	uint64_t commit_seq;  /**< sequence number of the commit that made it (0 before commit) */
	size_t cap_chunks_;   /**< private */
} udr_version;

/**
 * Allocate an empty version of table with the given number (0 is allowed and
 * means "not chosen yet", as for udr_catalog_commit_next).
 * @return 0; UDR_EINVAL for a bad table name (quoting it); UDR_ENOMEM.
 */
UDR_EXTERN int udr_version_new(udr_version **out, const char *table, uint64_t version);

/** Free a version (accepts NULL). */
UDR_EXTERN void udr_version_free(udr_version *v);

/** Append a chunk hash. @return 0 or UDR_ENOMEM. */
UDR_EXTERN int udr_version_add_chunk(udr_version *v, const udr_hash *hash);

/** Set (NULL: clear) the message. @return 0 or UDR_ENOMEM. */
UDR_EXTERN int udr_version_set_message(udr_version *v, const char *message);

/**
 * Set metadata key to value (replacing an existing value of key).
 * @return 0; UDR_EINVAL for an empty or NULL key or NULL value; UDR_ENOMEM.
 */
UDR_EXTERN int udr_version_set_meta(udr_version *v, const char *key, const char *value);

/** The value of metadata key, or NULL (borrowed, lives as long as v). */
UDR_EXTERN const char *udr_version_get_meta(const udr_version *v, const char *key);

/** The metadata key of a version that records a drop (SQL DROP TABLE). */
#define UDR_META_DROPPED "udr.dropped"

/**
 * 1 when v records a drop (metadata udr.dropped = "true": the table does
 * not exist from that version on; docs/FORMAT.md "Dropped tables"), else 0
 * (also for NULL).
 */
UDR_EXTERN int udr_version_is_dropped(const udr_version *v);

/** Deep copy. @return 0 or UDR_ENOMEM. */
UDR_EXTERN int udr_version_dup(udr_version **out, const udr_version *v);

/**
 * Check a table name: 1 to 128 characters of [A-Za-z0-9_.-], not starting
 * with '.' or '-'.
 * @return 0, or UDR_EINVAL quoting the name (non-printable bytes escaped).
 */
UDR_EXTERN int udr_table_name_check(const char *name);

/** An open catalog (opaque, thread-safe). */
typedef struct udr_catalog udr_catalog;

/**
 * Open the catalog in directory path.
 * @param store the chunk store whose chunks versions refer to, used to check
 *        at commit time that every chunk exists; NULL opens a catalog that
 *        cannot check (borrowed: it must outlive the catalog)
 * @param flags UDR_OPEN_CREATE to create it when missing
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND (not a catalog, no UDR_OPEN_CREATE);
 *         UDR_ECORRUPT (unknown format); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_open(udr_catalog **out, const char *path, udr_store *store,
                                unsigned int flags);

/** Close a catalog (accepts NULL). */
UDR_EXTERN void udr_catalog_close(udr_catalog *catalog);

/**
 * Commit v as version v->version of v->table.  Accepted only when
 * v->version == latest + 1 (1 for a new table).  On success v->created_ms
 * (when it was 0), v->parent and v->commit_seq are filled in; the version is
 * durable when the call returns.
 * @return 0; UDR_EINVAL (bad name, version 0, bad metadata); UDR_ECONFLICT
 *         stating the expected version number; UDR_ENOTFOUND naming a chunk
 *         missing from the store (nothing is committed); UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_catalog_commit(udr_catalog *catalog, udr_version *v);

/**
 * Commit v as the next version of its table: the library assigns
 * v->version = latest + 1 under the writer lock, so concurrent callers never
 * conflict with each other.
 * @return as udr_catalog_commit, without UDR_ECONFLICT.
 */
UDR_EXTERN int udr_catalog_commit_next(udr_catalog *catalog, udr_version *v);

/**
 * Read a version of a table.
 * @param version the number, or 0 for the latest
 * @param[out] out the version, freed with udr_version_free
 * @return 0; UDR_EINVAL (bad name); UDR_ENOTFOUND naming the table or the
 *         version; UDR_ECORRUPT naming the damaged file; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_get_version(udr_version **out, udr_catalog *catalog,
                                       const char *table, uint64_t version);

/**
 * The latest version number of a table.
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND when the table has no version;
 *         UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_catalog_latest(uint64_t *out, udr_catalog *catalog, const char *table);

/**
 * The version numbers of a table in ascending order.
 * @param[out] out array freed with udr_free
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND (no such table); UDR_ECORRUPT; UDR_EIO;
 *         UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_list_versions(uint64_t **out, size_t *count, udr_catalog *catalog,
                                         const char *table);

/**
 * The names of all tables with at least one committed version, sorted
 * (bytewise).
 * @param[out] out array freed with udr_strarray_free(out, count)
 * @return 0; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_list_tables(char ***out, size_t *count, udr_catalog *catalog);

/**
 * The tables that exist on a branch: as udr_catalog_list_tables (ref NULL:
 * main) or udr_catalog_list_tables_on (ref), without the tables whose
 * latest version there records a drop (udr_version_is_dropped).  Reads each
 * table's latest version file.
 * @param[out] out array freed with udr_strarray_free(out, count)
 * @return 0; UDR_EINVAL (malformed ref); UDR_ENOTFOUND (unknown ref);
 *         UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_list_live_tables(char ***out, size_t *count, udr_catalog *catalog, const char *ref);

/**
 * Check every metadata file: commit records, version files, their digests and
 * links, and (when the catalog has a store) that every chunk a version names
 * exists.  Removes temp files left by dead writers.
 * @return 0 when clean; UDR_ECORRUPT when a problem was found; UDR_EIO.
 */
UDR_EXTERN int udr_catalog_fsck(udr_check_stats *stats, udr_catalog *catalog, udr_problem_cb cb,
                                void *payload);

/**
 * The deliberate way out when HEAD names a commit whose record is missing
 * (which readers and writers refuse, since it may mean a lost record): set
 * HEAD back to the end of the log, but only when nothing else in the catalog
 * names a commit past that end (no version file, no checkpoint) and the log
 * has no gap.  Sequence numbers past the end will be handed out again, so
 * anything outside the store that remembers them (a subscriber's position)
 * must be reset too.
 * @param[out] old_head what HEAD said (may be NULL)
 * @param[out] new_head the end of the log (may be NULL)
 * @return 0 (also when HEAD was already right: then both are equal);
 *         UDR_ECORRUPT when a file names a commit past the end or the log has
 *         a gap (the message names it); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_reset_head(uint64_t *old_head, uint64_t *new_head, udr_catalog *catalog);

/** The last commit sequence number (0 for an empty catalog). */
UDR_EXTERN int udr_catalog_head(uint64_t *out, udr_catalog *catalog);

/**
 * Move the catalog at path to the newest format in place (format 1 -> 2:
 * group commit with a durable horizon, see FORMAT.md).  Older udr versions
 * refuse the upgraded catalog.
 * @return 0 upgraded, 1 already current, or an error.
 */
UDR_EXTERN int udr_catalog_upgrade(const char *path);

/** One table version made by a commit. */
typedef struct udr_change {
	char *table;          /**< table name */
	uint64_t old_version; /**< the table's version before the commit (0: new table) */
	uint64_t new_version; /**< the version the commit made */
	udr_hash digest;      /**< BLAKE3 of the version file's bytes */
} udr_change;

/**
 * A commit record: one atomic change of the catalog (docs/FORMAT.md).  Freed
 * with udr_commit_free; every pointer inside is owned by the struct.
 */
typedef struct udr_commit {
	uint64_t seq;         /**< sequence number, 1, 2, 3 ... without gaps */
	uint64_t parent;      /**< previous commit on the same branch (0: none) */
	int64_t time_ms;      /**< commit time, ms since the Unix epoch, UTC; never decreases */
	char *branch;         /**< branch name ("main") */
	char *author;         /**< from UDR_AUTHOR, else the user name */
	char *message;        /**< NULL when none */
	udr_change *changes;  /**< the table versions it made, in commit order (none for ref records) */
	size_t nchanges;
	char *op;             /**< NULL for a commit; else "create", "reset", "delete", "tag", "untag", "merge",
	                           "cherry-pick", "revert" */
	char *ref;            /**< ref records: "branch:NAME" or "tag:NAME"; NULL otherwise */
	uint64_t *parents;    /**< all parents (parents[0] == parent; a merge has two); NULL when none */
	size_t nparents;
	uint64_t source;      /**< cherry-pick and revert: the commit picked or reverted (0 otherwise) */
} udr_commit;

/** Free a commit record (accepts NULL). */
UDR_EXTERN void udr_commit_free(udr_commit *c);

/**
 * Read commit record seq.
 * @return 0; UDR_EINVAL (seq 0); UDR_ENOTFOUND (no such commit);
 *         UDR_ECORRUPT naming the damaged file; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_get_commit(udr_commit **out, udr_catalog *catalog, uint64_t seq);

#ifdef __cplusplus
}
#endif
#endif
