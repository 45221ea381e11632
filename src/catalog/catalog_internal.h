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

#define CATALOG_FORMAT 1
#define SEQ_DIGITS 20
#define UDR__MAX_META_FILE (1u << 30) /* a version of ~14M chunks */

struct udr_catalog {
	char *path;
	char *tmpdir;
	char *logdir;
	char *tablesdir;
	char *lockpath;
	char *headpath;
	udr_store *store; /* borrowed, may be NULL */
};

int udr__version_to_json(char **out, size_t *out_len, const udr_version *v);
int udr__version_from_json(udr_version **out, const char *text, size_t len, const char *path);

/* Paths of the catalog's files (malloc'd, NULL on OOM). */
char *udr__version_path(const udr_catalog *c, const char *table, uint64_t version);
char *udr__commit_path(const udr_catalog *c, uint64_t seq);

/* The writer lock (flock on catalog/lock), held by one commit step at a time. */
int udr__catalog_lock(int *fd, udr_catalog *c);
void udr__catalog_unlock(int fd);

/* Write a cache file holding one number (no fsync, errors ignored). */
void udr__write_number_file(udr_catalog *c, const char *path, uint64_t n);

/* The true last commit sequence number: HEAD cache, then probing forward. */
int udr__catalog_true_head(uint64_t *out, udr_catalog *c);

/* Read a commit record; seq beyond the head is UDR_ENOTFOUND. */
int udr__commit_read(udr_commit **out, udr_catalog *c, uint64_t seq);

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
