/*
 * udr/log.h - the changelog: the catalog's commit records as a queryable,
 * followable history, and time travel by time.
 */
#ifndef UDR_LOG_H
#define UDR_LOG_H

#include "common.h"
#include "catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UDR_LOG_QUERY_VERSION 1
/** What udr_catalog_log returns. */
typedef struct udr_log_query {
	unsigned int version;       /**< UDR_LOG_QUERY_VERSION */
	uint64_t since_seq;         /**< only commits with seq > since_seq (0: from the start) */
	int64_t since_ms;           /**< only commits at or after this time (0: no bound) */
	const char *const *tables;  /**< only commits that made a version of one of these tables, or
	                                 merges that took one into their branch (NULL: all) */
	size_t ntables;
	const char *branch;         /**< only this branch (NULL: all) */
	size_t limit;               /**< at most this many (0: no limit) */
	int newest_first;           /**< 1: descending seq; 0: ascending */
} udr_log_query;
#define UDR_LOG_QUERY_INIT {UDR_LOG_QUERY_VERSION, 0, 0, NULL, 0, NULL, 0, 0}

/**
 * Query the commit log.  The cost is proportional to the commits returned
 * (plus a logarithmic search for since_ms), not to the log's size: a table
 * filter walks the tables' own versions, which name their commits.  In a
 * store that has branched it also reads the records down to the last one
 * it returns (or the range's end), for merges that took a table's version
 * and so made none.
 * @param[out] out array of commits, freed with udr_commit_array_free
 * A table that has no versions gives no commits (not an error: a watcher
 * may wait for it; `udr log --table` says "not found" itself).
 * @return 0; UDR_EINVAL (bad table or branch name, unknown query version);
 *         UDR_ENOTFOUND (a branch that never existed: a deleted branch's
 *         commits are listed); UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_catalog_log(udr_commit ***out, size_t *count, udr_catalog *catalog,
                               const udr_log_query *query);

/** Free an array of commits (accepts NULL). */
UDR_EXTERN void udr_commit_array_free(udr_commit **commits, size_t count);

/**
 * Wait until the log's head is past after_seq, or timeout_ms passes
 * (-1: forever).  Uses inotify where available, else polls every 50 ms.
 * @param[out] head the head seen (may be NULL)
 * @return 1 when there are new commits, 0 on timeout, <0 on error.
 */
UDR_EXTERN int udr_catalog_wait(uint64_t *head, udr_catalog *catalog, uint64_t after_seq, int timeout_ms);

/**
 * The sequence number of the last commit made at or before time_ms (0 when
 * the log starts later).  O(log n) in the log's size.
 */
UDR_EXTERN int udr_catalog_seq_at_time(uint64_t *out, udr_catalog *catalog, int64_t time_ms);

/**
 * The version of table as it was after commit seq (as_of_seq), or at time
 * time_ms: the latest version made by a commit at or before it.  O(log n).
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND when the table had no version then;
 *         UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_catalog_get_version_at_seq(udr_version **out, udr_catalog *catalog, const char *table,
                                              uint64_t as_of_seq);
UDR_EXTERN int udr_catalog_get_version_at_time(udr_version **out, udr_catalog *catalog, const char *table,
                                               int64_t time_ms);

/**
 * Parse an RFC 3339 / ISO-8601 time into ms since the epoch:
 * "2026-11-01T12:00:00Z", "2026-11-01T13:00:00+01:00", "...-05:00" (the
 * offset is applied), "2026-11-01T12:00:00.5" (no zone: UTC), seconds and
 * fraction optional, 'T', 't' or ' ' between date and time.  A bare date
 * "2026-11-01" means the END of that day, 23:59:59.999 UTC, so that "as of
 * a date" includes that whole day (today included).
 * @return 0 or UDR_EINVAL quoting the text.
 */
UDR_EXTERN int udr_time_parse(int64_t *out, const char *text);

/** Format ms since the epoch as "2026-11-01T12:00:00.000Z" (out >= 32 bytes). */
UDR_EXTERN void udr_time_format(char *out, size_t outsz, int64_t time_ms);

#ifdef __cplusplus
}
#endif
#endif
