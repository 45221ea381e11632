/*
 * udr/txn.h - multi-table transactions with snapshot isolation (MVCC).
 *
 * A transaction reads the catalog as of the commit that was the head when it
 * began (its snapshot), plus its own staged writes, and commits all staged
 * table versions through one commit record: all become visible at once or
 * none does, also across crashes.  Readers never block writers nor the
 * reverse.  Conflicts are detected at commit, first committer wins.
 */
#ifndef UDR_TXN_H
#define UDR_TXN_H

#include "common.h"
#include "catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A transaction (opaque; use from one thread at a time). */
typedef struct udr_txn udr_txn;

/** Isolation levels. */
#define UDR_TXN_SNAPSHOT     0 /**< write-write conflicts on tables fail the commit */
#define UDR_TXN_SERIALIZABLE 1 /**< also: a table read since the snapshot changed */

#define UDR_TXN_OPTIONS_VERSION 1
typedef struct udr_txn_options {
	unsigned int version;  /**< UDR_TXN_OPTIONS_VERSION */
	int isolation;         /**< UDR_TXN_SNAPSHOT (default) or UDR_TXN_SERIALIZABLE */
	const char *branch;    /**< NULL: "main" (the only branch for now) */
	const char *message;   /**< commit message, may be NULL; copied */
} udr_txn_options;
#define UDR_TXN_OPTIONS_INIT {UDR_TXN_OPTIONS_VERSION, UDR_TXN_SNAPSHOT, NULL, NULL}

/**
 * Begin a transaction on catalog (which must outlive it), taking a snapshot.
 * @param opts NULL for defaults
 * @return 0; UDR_EINVAL (unknown options version or isolation);
 *         UDR_ENOTFOUND (unknown branch); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_txn_begin(udr_txn **out, udr_catalog *catalog, const udr_txn_options *opts);

/** The snapshot: the commit sequence number the transaction reads at. */
UDR_EXTERN uint64_t udr_txn_snapshot(const udr_txn *txn);

/**
 * Read a version as the transaction sees it: the snapshot plus its own staged
 * writes (a staged version has commit_seq 0).  version 0 means the latest.
 * @return as udr_catalog_get_version; UDR_EINVAL when the transaction is not
 *         active.
 */
UDR_EXTERN int udr_txn_get_version(udr_version **out, udr_txn *txn, const char *table, uint64_t version);

/** Latest version number of table as the transaction sees it (0: none). */
UDR_EXTERN int udr_txn_latest(uint64_t *out, udr_txn *txn, const char *table);

/**
 * Stage v as the next version of v->table (v->version is ignored and chosen
 * as the snapshot's latest + 1).  Staging the same table twice replaces the
 * staged version.  v is copied; the caller keeps ownership.
 * @return 0; UDR_EINVAL (bad table name, inactive transaction); UDR_ENOTFOUND
 *         (a chunk missing from the store); UDR_ENOMEM.  After any error the
 *         transaction can only be aborted.
 */
UDR_EXTERN int udr_txn_write(udr_txn *txn, const udr_version *v);

/**
 * Commit every staged version atomically in one commit record.
 * @param[out] seq_out the commit's sequence number (may be NULL); a commit
 *             with nothing staged is a no-op returning 0 and seq 0
 * @return 0; UDR_ECONFLICT naming the table and the commit that won;
 *         UDR_ENOTFOUND (a chunk vanished); UDR_EIO.  The transaction is
 *         finished either way; free it with udr_txn_free.
 */
UDR_EXTERN int udr_txn_commit(udr_txn *txn, uint64_t *seq_out);

/** Abandon the transaction: nothing staged becomes visible. */
UDR_EXTERN void udr_txn_abort(udr_txn *txn);

/** Free a transaction (aborting it when still active; accepts NULL). */
UDR_EXTERN void udr_txn_free(udr_txn *txn);

#ifdef __cplusplus
}
#endif
#endif
