/*
 * commit.c - the commit step.  Outside the lock: validate, check chunks.
 * Under the writer lock: find the true head, check version numbers, publish
 * each version file durably (it names the coming commit), then publish the
 * commit record with link() - the commit point - and fsync its directory.
 * Caches (HEAD, LATEST) are refreshed after the commit point.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <udr/refs.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"
#include "store/gcfence.h"

/* src copied to out as an author: control characters (a newline would let
 * UDR_AUTHOR forge lines of `udr log`) become '?', and a cut falls between
 * UTF-8 characters. */
static void author_copy(char *out, size_t outsz, const char *src)
{
	size_t n = 0;
	for (; src[n] && n + 1 < outsz; n++)
		out[n] = ((unsigned char)src[n] < 0x20 || src[n] == 0x7f) ? '?' : src[n];
	if (((unsigned char)src[n] & 0xc0) == 0x80) {
		/* cut inside a character: drop its copied bytes and lead byte */
		while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0)
			n--;
	}
	out[n] = 0;
}

static void author_name(char *out, size_t outsz)
{
	/* the user's name, looked up once per thread and uid (a lookup reads
	 * /etc/passwd: more system calls than the rest of a commit's checks) */
	static _Thread_local char pw_name[256];
	static _Thread_local uid_t pw_uid;
	static _Thread_local bool pw_known;
	const char *env = getenv("UDR_AUTHOR");
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (env && *env) {
		author_copy(out, outsz, env);
		return;
	}
	if (pw_known && pw_uid == getuid()) {
		snprintf(out, outsz, "%s", pw_name);
		return;
	}
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name) {
		author_copy(pw_name, sizeof(pw_name), res->pw_name);
		pw_uid = getuid();
		pw_known = true;
		snprintf(out, outsz, "%s", pw_name);
		return;
	}
	env = getenv("USER");
	author_copy(out, outsz, env && *env ? env : "unknown");
}

/* Saved caller-visible fields, restored when a commit fails. */
struct saved {
	uint64_t version, parent, seq;
	int64_t created_ms;
	bool wrote;
};

/* Sizes are checked before anything is written: a version or record too
 * large for readers (UDR__MAX_META_FILE) must never be committed. */
static int check_sizes(const udr_version *v, const udr__commit_opts *o)
{
	size_t total = 0, n;
	const char *msg = o->message ? o->message : v->message;
	if (msg && (n = strnlen(msg, UDR_MESSAGE_MAX + 1)) > UDR_MESSAGE_MAX)
		return udr__error_set(UDR_EINVAL, "table %s: the commit message is longer than %zu bytes; nothing committed",
		                      v->table, UDR_MESSAGE_MAX);
	if (v->message && strnlen(v->message, UDR_MESSAGE_MAX + 1) > UDR_MESSAGE_MAX)
		return udr__error_set(UDR_EINVAL, "table %s: the version message is longer than %zu bytes; nothing committed",
		                      v->table, UDR_MESSAGE_MAX);
	if (v->nchunks > UDR_CHUNKS_MAX)
		return udr__error_set(UDR_EINVAL, "table %s: %zu chunks in one version, more than %zu; nothing committed",
		                      v->table, v->nchunks, UDR_CHUNKS_MAX);
	for (size_t k = 0; k < v->nmeta; k++) {
		size_t kl, vl;
		if (!v->meta[k].key || !*v->meta[k].key || !v->meta[k].value)
			return udr__error_set(UDR_EINVAL, "table %s: bad metadata entry", v->table);
		kl = strnlen(v->meta[k].key, UDR_META_KEY_MAX + 1);
		vl = strnlen(v->meta[k].value, UDR_META_TOTAL_MAX + 1);
		if (kl > UDR_META_KEY_MAX)
			return udr__error_set(UDR_EINVAL, "table %s: a metadata key is longer than %zu bytes; nothing committed",
			                      v->table, UDR_META_KEY_MAX);
		total += kl + vl;
		if (total > UDR_META_TOTAL_MAX)
			return udr__error_set(UDR_EINVAL, "table %s: metadata of more than %zu bytes; nothing committed",
			                      v->table, UDR_META_TOTAL_MAX);
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(udr_hash));
}

/*
 * The chunks of the latest committed version of each table of vs on branch
 * (NULL: main), sorted: a commit verified them when it made that version.
 * A version that cannot be read adds nothing (its chunks are verified).
 */
static int committed_chunks(udr_hash **out, size_t *count, udr_catalog *c, udr_version *const *vs, size_t n,
                            const char *branch)
{
	char ref[UDR_REF_NAME_MAX + 8];
	udr_hash *all = NULL;
	size_t k = 0, cap = 0;
	snprintf(ref, sizeof(ref), "branch:%s", branch ? branch : "main");
	for (size_t i = 0; i < n; i++) {
		udr_version *v = NULL;
		if (udr_catalog_get_version_on(&v, c, vs[i]->table, 0, ref) < 0) {
			udr_error_clear();
			continue;
		}
		udr__writer_verified_add(c, v); /* the lock holder need not check it again */
		if (k + v->nchunks > cap) {
			size_t c2 = (k + v->nchunks) * 2, bytes;
			udr_hash *p;
			if (!udr__mul_ok(c2, sizeof(udr_hash), &bytes) || !(p = realloc(all, bytes))) {
				udr_version_free(v);
				free(all);
				return udr__error_oom();
			}
			all = p;
			cap = c2;
		}
		if (v->nchunks)
			memcpy(all + k, v->chunks, v->nchunks * sizeof(udr_hash));
		k += v->nchunks;
		udr_version_free(v);
	}
	if (k)
		qsort(all, k, sizeof(udr_hash), cmp_hash);
	*out = all;
	*count = k;
	return 0;
}

/*
 * Every chunk a commit names must be stored and intact: decoded and
 * rehashed (each distinct chunk once), so that damage is found before it is
 * committed, never after.  Chunks the table's latest version on the branch
 * already names were verified when that version was committed: they are
 * not read again (a 1-row change of a large table would otherwise rehash
 * all of it), so the cost follows what the commit adds.  Outside the lock;
 * GC (when it lands) must keep what a commit in progress verified and what
 * a latest version names.
 */
static int verify_chunks(udr_catalog *c, udr_version *const *vs, size_t n, const char *branch)
{
	size_t total = 0, bytes, k = 0, nknown = 0;
	udr_hash *all, *known = NULL;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		total += vs[i]->nchunks;
	if (total == 0)
		return 0;
	if (!udr__mul_ok(total, sizeof(udr_hash), &bytes) || !(all = malloc(bytes)))
		return udr__error_oom();
	for (size_t i = 0; i < n; i++) {
		if (vs[i]->nchunks == 0)
			continue; /* chunks may be NULL */
		memcpy(all + k, vs[i]->chunks, vs[i]->nchunks * sizeof(udr_hash));
		k += vs[i]->nchunks;
	}
	qsort(all, total, sizeof(udr_hash), cmp_hash);
	if ((rc = committed_chunks(&known, &nknown, c, vs, n, branch)) < 0) {
		free(all);
		return rc;
	}
	for (k = 0; k < total && rc == 0; k++) {
		if (k > 0 && udr_hash_equal(&all[k], &all[k - 1]))
			continue;
		if (nknown && bsearch(&all[k], known, nknown, sizeof(udr_hash), cmp_hash))
			continue; /* verified when the version naming it was committed */
		/* a chunk a running gc is removing: verified once the run is over
		 * (it may be gone then: "not found", nothing committed) */
		if ((rc = udr__gc_doom_check(c->store, &all[k])) < 0)
			break;
		rc = udr_store_verify(c->store, &all[k]);
		if (rc == UDR_ENOTFOUND || rc == UDR_ECORRUPT) {
			char hex[UDR_HASH_HEXSIZE + 1], why[200];
			udr_hash_tohex(hex, &all[k]);
			snprintf(why, sizeof(why), "%s", udr_error_last()->message);
			rc = udr__error_set(rc, "chunk %s %s; nothing committed (%s)", hex,
			                    rc == UDR_ENOTFOUND ? "not found in the store" : "is damaged", why);
		}
	}
	free(all);
	free(known);
	return rc;
}

int (*udr__row_meta_check)(struct udr_store *store, const struct udr_version *v);

/* A version whose row-level metadata SQL would refuse as damaged: bad
 * input, refused before anything is written (after verify_chunks, so a
 * missing chunk is said as such). */
static int check_row_meta(udr_catalog *c, udr_version *const *vs, size_t n)
{
	for (size_t i = 0; i < n && udr__row_meta_check; i++) {
		int rc = udr__row_meta_check(c->store, vs[i]);
		if (rc == UDR_ECORRUPT || rc == UDR_EINVAL) {
			char why[700];
			snprintf(why, sizeof(why), "%s", udr_error_last()->message);
			return udr__error_set(UDR_EINVAL, "refused: the metadata is not a row-level version SQL can read: "
			                      "%s; nothing committed", why);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int check_inputs(udr_catalog *c, udr_version *const *vs, size_t n, const udr__commit_opts *o)
{
	int rc;
	if (!c || ((!vs || n == 0) && !o->op))
		return udr__error_set(UDR_EINVAL, "invalid argument: nothing to commit");
	/* before anything is written (the record's serialization found it
	 * only after a retention change had upgraded the catalog) */
	if ((rc = udr__message_check(o->message)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (!vs[i])
			return udr__error_set(UDR_EINVAL, "invalid argument: version %zu is NULL", i);
		if ((rc = udr_table_name_check(vs[i]->table)) < 0)
			return rc;
		if (!o->assign && vs[i]->version == 0)
			return udr__error_set(UDR_EINVAL, "invalid version 0 for table %s: versions start at 1",
			                      vs[i]->table);
		if ((rc = check_sizes(vs[i], o)) < 0)
			return rc;
	}
	if (n > 1) { /* each table once: a sorted copy of the names (commits of 100k tables) */
		const char **names = malloc(n * sizeof(*names));
		if (!names)
			return udr__error_oom();
		for (size_t i = 0; i < n; i++)
			names[i] = vs[i]->table;
		qsort(names, n, sizeof(*names), cmp_name);
		for (size_t i = 1; i < n; i++)
			if (strcmp(names[i - 1], names[i]) == 0) {
				rc = udr__error_set(UDR_EINVAL, "table %s appears twice in one commit", names[i]);
				free(names);
				return rc;
			}
		free(names);
	}
	if (c->store && n > 0 && (rc = verify_chunks(c, vs, n, o->branch)) < 0)
		return rc;
	return check_row_meta(c, vs, n);
}

/*
 * A table with no committed version file whose directory exists: either the
 * leftover of a crashed first commit, or version files that were lost.
 * Search the log (rare, O(log size)) before handing out version 1 again.
 */
static int check_really_new(udr_catalog *c, const char *table, uint64_t head)
{
	char *dir = udr__path_join(c->tablesdir, table);
	struct stat st;
	int rc = 0;
	if (!dir)
		return UDR_ENOMEM;
	if (UDR_IO->stat(dir, &st) < 0) {
		free(dir);
		return 0; /* never created: a new table */
	}
	for (uint64_t s = head; s >= 1 && rc == 0; s--) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		for (size_t i = 0; i < cm->nchanges; i++)
			if (strcmp(cm->changes[i].table, table) == 0) {
				rc = udr__error_set(UDR_ECORRUPT,
				                    "table %s: commit %llu made its version %llu, but the version files in %s are "
				                    "missing; refusing to reuse version numbers",
				                    table, (unsigned long long)s, (unsigned long long)cm->changes[i].new_version,
				                    dir);
				break;
			}
		udr_commit_free(cm);
	}
	free(dir);
	return rc;
}

/* The commit seq of a table's latest version (0 when none). */
static int latest_commit_seq(uint64_t *seq, udr_catalog *c, const char *table, uint64_t latest)
{
	udr_version *v = NULL;
	int rc;
	*seq = 0;
	if (latest == 0)
		return 0;
	rc = udr__version_load(&v, c, table, latest);
	if (rc < 0)
		return rc;
	if (rc == 1)
		*seq = v->commit_seq;
	udr_version_free(v);
	return 0;
}

/*
 * Unnamed files (O_TMPFILE) for what the commit step writes under the
 * writer lock, made before the lock is taken: the lock holder then only
 * writes their bytes and names them (link_fd).  Creating an inode is the
 * most expensive step of a commit (on ext4 without a journal, the inode
 * allocator scans past every recently freed inode of the group: half of a
 * commit's CPU time on the benchmark machine), and with named temp files
 * it happened twice per commit under the writer lock, and under tmp/'s
 * directory lock besides (O_TMPFILE takes no directory lock).  Unnamed
 * files that are never named vanish with their descriptor or a crash.
 * At most PRE_MAX per commit (descriptors); without O_TMPFILE or /proc
 * (link_fd names the file through /proc/self/fd), *fd is -1 and the
 * named temp files of udr__write_file_atomic are used as before.
 */
#define PRE_MAX 8

static int pre_open(int *fd, udr_catalog *c)
{
	static _Atomic int proc_fd = -1; /* /proc/self/fd usable (1), not (0), unknown (-1) */
	int have = proc_fd;
	*fd = -1;
	if (have < 0)
		proc_fd = have = access("/proc/self/fd", X_OK) == 0;
	if (!have)
		return 0;
	*fd = UDR_IO->open(c->tmpdir, O_TMPFILE | O_RDWR, 0644);
	if (*fd >= 0 || errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
		return 0;
	return udr__error_io(errno, "cannot create temp file in %s", c->tmpdir);
}

static void pre_close(int *fd)
{
	if (*fd >= 0)
		UDR_IO->close(*fd);
	*fd = -1;
}

/* Name the unnamed file fd `path` (its bytes written), replacing a file of
 * that name when replace: 0, or -1 with errno. */
static int pre_link(int fd, const char *path, bool replace)
{
	if (UDR_IO->link_fd(fd, path) == 0)
		return 0;
	if (errno != EEXIST || !replace || (UDR_IO->unlink(path) < 0 && errno != ENOENT))
		return -1;
	return UDR_IO->link_fd(fd, path);
}

static int publish_version(udr_catalog *c, udr_version *v, udr_hash *digest, int fd)
{
	char *text = NULL, *path = NULL, *dir = NULL;
	size_t len;
	bool created;
	int rc;
	if ((rc = udr__version_to_json(&text, &len, v)) < 0)
		return rc;
	if (len > UDR__MAX_META_FILE) {
		free(text);
		return udr__error_set(UDR_EINVAL, "table %s: its version file would be %zu bytes, over the limit of %u",
		                      v->table, len, UDR__MAX_META_FILE);
	}
	udr_hash_buf(digest, text, len);
	if (!(dir = udr__path_join(c->tablesdir, v->table)) || !(path = udr__version_path(c, v->table, v->version))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	/* a table with versions has its directory (were it gone, its latest
	 * version's file would be too, and the commit refused before this) */
	if (v->parent == 0 && (rc = udr__mkdir(dir, &created)) < 0)
		goto done;
	/* REPLACE: a file under this name can only be an orphan of a crashed
	 * commit, since the number is latest + 1 and we hold the lock.  No
	 * fsync here: publish_record's syncfs makes it durable, with its name,
	 * before the commit point (format 2: the group's syncfs, before the
	 * commit is visible).  With an unnamed file: unlink and link instead
	 * of rename (an orphan, invisible either way). */
	if (fd < 0)
		rc = udr__write_file_atomic(c->tmpdir, path, text, len, UDR__PUBLISH_REPLACE, false);
	else if ((rc = udr__write_all(fd, text, len, path)) == 0 && pre_link(fd, path, true) < 0)
		rc = udr__error_io(errno, "cannot publish %s", path);
done:
	free(text);
	free(path);
	free(dir);
	return rc;
}

/* Publish the commit record: 0 committed and durable; 1 committed but its
 * durability is unknown (directory fsync failed, error set); <0 not
 * committed. */
static int publish_record(udr_catalog *c, const udr_commit *cm, const udr__record *ext, int prefd)
{
	char *text = NULL, *path = NULL;
	udr__tmp t = {prefd, NULL};
	size_t len = 0;
	int rc;
	if ((rc = udr__record_encode(&text, &len, cm, ext)) < 0)
		return rc;
	if (!(path = udr__commit_path(c, cm->seq))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	if (t.fd < 0 && (rc = udr__tmp_create(&t, c->tmpdir)) < 0)
		goto done;
	if ((rc = udr__write_all(t.fd, text, len, t.path ? t.path : path)) < 0)
		goto done;
	/* One syncfs makes everything written for this commit durable - the
	 * version files with their names (and new table directories) and the
	 * record's bytes - where separate fsyncs would cost three: the record
	 * may then be linked.  Format 2 links first and syncs after the lock
	 * is released (udr__catalog_make_durable): the record is complete in
	 * the page cache before its link, and readers only see it once a
	 * syncfs begun after its link has returned. */
	if (c->format < 2 && UDR_IO->syncfs(t.fd) < 0) {
		rc = udr__error_io(errno, "syncfs before commit record %s failed", path);
		goto done;
	}
	if ((t.path ? UDR_IO->link(t.path, path) : UDR_IO->link_fd(t.fd, path)) < 0) {
		int err = errno;
		if (err == EEXIST)
			rc = udr__error_set(UDR_ECORRUPT, "commit record %s already exists", path);
		else
			rc = udr__error_io(err, "cannot publish commit record %s", path);
		goto done;
	}
	/* ---- commit point (format 2: linked; visible once durable) ---- */
	if (c->format < 2 && udr__fsync_parent(path) < 0) {
		udr__error_set(UDR_EIO, "commit %llu is visible but may not survive a crash: %s",
		               (unsigned long long)cm->seq, udr_error_last()->message);
		rc = 1;
	}
done:
	if (t.path)
		udr__tmp_discard(&t);
	free(text);
	free(path);
	return rc;
}

/*
 * What the new record adds (FORMAT.md): the previous record's digest, and
 * its window over a base checkpoint.  The window goes on from the previous
 * record's until CHECKPOINT_EVERY commits or CHECKPOINT_WINDOW tables; then
 * the state at the previous commit is written as state/<head>.json (before
 * the commit point, so the same syncfs makes it durable) and becomes the
 * base.  After a format-1 record (older stores) the state is computed once
 * from the whole log.
 */
static int record_ext(udr__record *ext, udr_catalog *c, const udr__record *prev, const udr_commit *cm)
{
	uint64_t head = cm->seq - 1;
	int rc = 0;
	if (head > 0) {
		ext->has_prev = true;
		ext->prev = prev->digest;
	}
	if (head > 0 && (prev->legacy || head - prev->base >= CHECKPOINT_EVERY || prev->window.n >= CHECKPOINT_WINDOW)) {
		udr__tstate st;
		if (prev->legacy) {
			bool known;
			if ((rc = udr__state_at(&st, &known, c, head)) == 0 && !known)
				rc = udr__state_scan(&st, c, head); /* a log of format-1 records only */
		}
		else if ((rc = udr__state_base(&st, c, prev)) == 0)
			rc = udr__tstate_merge(&st, &prev->window);
		if (rc == 0)
			rc = udr__state_write(&ext->base_state, c, &st, head);
		udr__tstate_free(&st);
		ext->base = head;
	} else if (head > 0) {
		ext->base = prev->base;
		ext->base_state = prev->base_state;
		rc = udr__tstate_copy(&ext->window, &prev->window);
	}
	for (size_t i = 0; i < cm->nchanges && rc == 0; i++)
		rc = udr__tstate_set(&ext->window, cm->changes[i].table, cm->changes[i].new_version, cm->seq);
	return rc;
}

/* On a branch: the table's version on it (the snapshot of the record the
 * commit continues) and the seq that put it there; a format-1 snapshot
 * (only main existed) is the allocation itself. */
static int branch_old(uint64_t *old, uint64_t *seq, udr_catalog *c, uint64_t snap_from, const char *table,
                      uint64_t latest)
{
	int rc = udr__snapshot_table(old, seq, c, snap_from, table);
	if (rc == 2) {
		*old = latest;
		return latest_commit_seq(seq, c, table, latest);
	}
	return rc < 0 ? rc : 0;
}

int udr__catalog_commit_versions(uint64_t *seq_out, udr_catalog *c, udr_version *const *vs, size_t n,
                                 const udr__commit_opts *o)
{
	struct saved *saved = NULL;
	udr_commit cm;
	udr__record prev, ext;
	udr__refplan plan;
	uint64_t parents[2];
	char author[256];
	uint64_t head = 0;
	int lockfd = -1, inflight = -1, rc, pre[PRE_MAX + 1];
	bool committed = false;
	udr__gc_hold gch = UDR__GC_HOLD_INIT;

	memset(&cm, 0, sizeof(cm));
	memset(&prev, 0, sizeof(prev));
	memset(&ext, 0, sizeof(ext));
	for (size_t i = 0; i <= PRE_MAX; i++)
		pre[i] = -1;
	udr__writer_verified_clear();
	/* A commit naming chunks holds the GC fence (docs/GC.md 4.3) from
	 * before it verifies them until its record is linked: a GC waits for
	 * it, or it sees the GC's epoch.  Records without chunks take none. */
	if (c && c->store && vs) {
		bool chunks = false;
		for (size_t i = 0; i < n && !chunks; i++)
			chunks = vs[i] && vs[i]->nchunks > 0;
		if (chunks && (rc = udr__gc_hold_begin(&gch, c->store)) < 0)
			return rc;
	}
	if ((rc = check_inputs(c, vs, n, o)) < 0) {
		udr__writer_verified_clear();
		udr__gc_hold_end(&gch);
		return rc;
	}
	if (!(saved = calloc(n ? n : 1, sizeof(*saved))) || !(cm.changes = calloc(n ? n : 1, sizeof(udr_change))))  {
		free(saved);
		udr__gc_hold_end(&gch);
		return udr__error_oom();
	}
	for (size_t i = 0; i < n; i++) {
		saved[i].version = vs[i]->version;
		saved[i].parent = vs[i]->parent;
		saved[i].seq = vs[i]->commit_seq;
		saved[i].created_ms = vs[i]->created_ms;
	}
	author_name(author, sizeof(author));
	{
		/* glibc's first gmtime_r reads /etc/localtime: do it before the
		 * writer lock rather than under it (a CLI commit's only one) */
		char t0[40];
		udr__format_time(t0, sizeof(t0), 0);
	}
	/* the files the lock holder will write, created before the lock */
	if ((rc = pre_open(&pre[PRE_MAX], c)) < 0)
		goto done;
	for (size_t i = 0; i < n && i < PRE_MAX && pre[PRE_MAX] >= 0; i++)
		if ((rc = pre_open(&pre[i], c)) < 0)
			goto done;

	if (c->format >= 2) {
		/* readers' view first: it recovers records a dead writer left
		 * past HEAD; then the in-flight lock, held until this commit is
		 * durable (recovery waits for it), then the writer lock */
		if ((rc = udr__catalog_precheck(c)) < 0 || (rc = udr__inflight_lock(&inflight, c, LOCK_SH)) < 0)
			goto done;
	}
	if ((rc = udr__catalog_lock(&lockfd, c)) < 0)
		goto done;
	udr__writer_view_set(c);
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		goto done;
	udr__writer_head_set(head);
	if (c->format < 2 || head % 64 == 0)
		udr__tmp_clean(c->tmpdir, NULL); /* dead writers' temp files (fsck removes them too) */
	if (head > 0 && (rc = udr__record_read(&prev, c, head)) < 0)
		goto done;
	if (head > 0)
		udr__writer_record_set(c, &prev); /* the state lookups below use it */
	/* a branch: its head, and the ref checks (refs.c) */
	if ((rc = udr__refs_plan(&plan, c, head > 0 ? &prev : NULL, head, o)) < 0)
		goto done;
	/* a ref or adopted version never names an expired version: decided
	 * here, against the expire records linked so far */
	if ((rc = udr__expire_refuse(c, head > 0 ? &prev : NULL, o)) < 0)
		goto done;

	for (size_t i = 0; i < n; i++) {
		uint64_t latest, lseq, old;
		if ((rc = udr__table_latest(&latest, c, vs[i]->table)) < 0)
			goto done;
		/* with a format-2 head the log said "new" already (no scan) */
		if (latest == 0 && prev.legacy && (rc = check_really_new(c, vs[i]->table, head)) < 0)
			goto done;
		/* on a branch: the old version is the branch's; numbers are
		 * allocated across branches (latest above) */
		old = latest;
		lseq = 0;
		if (plan.branchy && (rc = branch_old(&old, &lseq, c, plan.snap_from, vs[i]->table, latest)) < 0)
			goto done;
		if (o->use_snapshot) {
			if (!plan.branchy && (rc = latest_commit_seq(&lseq, c, vs[i]->table, latest)) < 0)
				goto done;
			if (lseq > o->snapshot) {
				rc = udr__error_set(UDR_ECONFLICT,
				                    "conflict on table %s: commit %llu changed it after this transaction's "
				                    "snapshot (commit %llu)",
				                    vs[i]->table, (unsigned long long)lseq, (unsigned long long)o->snapshot);
				goto done;
			}
			/* a reset (or a branch deleted and made again) moves the
			 * branch to versions of older commits: the seq check
			 * passes, the version read is gone all the same */
			if (old != vs[i]->parent) {
				rc = udr__error_set(UDR_ECONFLICT,
				                    "conflict on table %s: its version on the branch is %llu, not version %llu "
				                    "this transaction read at its snapshot (commit %llu): the branch was reset "
				                    "or made again since",
				                    vs[i]->table, (unsigned long long)old, (unsigned long long)vs[i]->parent,
				                    (unsigned long long)o->snapshot);
				goto done;
			}
		}
		if (o->assign) {
			vs[i]->version = latest + 1;
		} else if (vs[i]->version != latest + 1) {
			if (latest == 0)
				rc = udr__error_set(UDR_ECONFLICT,
				                    "conflict on table %s: version %llu cannot be committed, expected version 1 "
				                    "(the table is new)",
				                    vs[i]->table, (unsigned long long)vs[i]->version);
			else
				rc = udr__error_set(UDR_ECONFLICT,
				                    "conflict on table %s: version %llu cannot be committed, expected version "
				                    "%llu (latest is %llu)",
				                    vs[i]->table, (unsigned long long)vs[i]->version,
				                    (unsigned long long)latest + 1, (unsigned long long)latest);
			goto done;
		}
		cm.changes[i].table = vs[i]->table;
		cm.changes[i].old_version = old;
		cm.changes[i].new_version = vs[i]->version;
	}
	for (size_t i = 0; i < o->ncheck; i++) {
		uint64_t latest, lseq;
		if ((rc = udr__table_latest(&latest, c, o->check_tables[i])) < 0)
			goto done;
		if (plan.branchy ? (rc = branch_old(&latest, &lseq, c, plan.snap_from, o->check_tables[i], latest)) < 0
		                 : (rc = latest_commit_seq(&lseq, c, o->check_tables[i], latest)) < 0)
			goto done;
		if (lseq > o->snapshot) {
			rc = udr__error_set(UDR_ECONFLICT,
			                    "conflict: table %s, read by this transaction, was changed by commit %llu after "
			                    "its snapshot (commit %llu)",
			                    o->check_tables[i], (unsigned long long)lseq, (unsigned long long)o->snapshot);
			goto done;
		}
		if (o->check_versions && latest != o->check_versions[i]) {
			rc = udr__error_set(UDR_ECONFLICT,
			                    "conflict: table %s, read by this transaction at version %llu (its snapshot, "
			                    "commit %llu), is at version %llu on the branch now: the branch was reset or made "
			                    "again since",
			                    o->check_tables[i], (unsigned long long)o->check_versions[i],
			                    (unsigned long long)o->snapshot, (unsigned long long)latest);
			goto done;
		}
	}

	cm.seq = head + 1;
	cm.parent = plan.parent;
	cm.op = (char *)o->op;
	if (o->op && !udr__op_commits(o->op) && !udr__op_retention(o->op))
		cm.ref = udr__ref_string(o);
	cm.source = o->source;
	if (cm.parent > 0) {
		parents[0] = cm.parent;
		parents[1] = o->parent2;
		cm.parents = parents;
		cm.nparents = o->parent2 ? 2 : 1;
	}
	cm.time_ms = udr__now_ms();
	if (prev.cm && prev.cm->time_ms > cm.time_ms)
		cm.time_ms = prev.cm->time_ms; /* the log's time never goes backwards */
	cm.branch = (char *)(o->branch ? o->branch : "main");
	if (o->op && (strcmp(o->op, "tag") == 0 || strcmp(o->op, "untag") == 0 || udr__op_retention(o->op)))
		cm.branch = (char *)"";
	if (o->op && strcmp(o->op, "gc") == 0) {
		if (n > 0 || (rc = udr__gc_record_check(c, head > 0 ? &prev : NULL, head, o)) < 0)
			goto done;
		ext.has_gc = true;
		ext.gc_epoch = o->gc_epoch;
		ext.gc_mark = o->gc_mark;
		ext.gc_through = o->gc_through;
	}
	if (o->op && strcmp(o->op, "retention") == 0) {
		if (n > 0 || !o->retention) {
			rc = udr__error_set(UDR_EINVAL, "a retention record changes no table and holds a policy");
			goto done;
		}
		if (o->retention_check) {
			uint64_t cur = 0;
			if ((rc = udr__retention_at(&cur, NULL, c, head > 0 ? &prev : NULL)) < 0)
				goto done;
			if (cur != o->retention_expect) {
				rc = udr__error_set(UDR_ECONFLICT,
				                    "the retention policy changed (commit %llu) since it was read (commit %llu): "
				                    "nothing written, run it again",
				                    (unsigned long long)cur, (unsigned long long)o->retention_expect);
				goto done;
			}
		}
		if (!(ext.retention = strdup(o->retention))) {
			rc = udr__error_oom();
			goto done;
		}
	}
	if (o->expire) {
		/* decided here, at the one commit point: what the linked head
		 * must keep is dropped; nothing left, nothing written */
		if ((rc = udr__expire_prepare(&ext.xrec, c, head > 0 ? &prev : NULL, head, o->expire, cm.seq, cm.time_ms)) < 0)
			goto done;
		if (rc == 1) {
			rc = 0;
			if (seq_out)
				*seq_out = 0;
			goto done;
		}
		if (n > 0 || !udr__op_expiry(o->op) || (strcmp(o->op, "unexpire") == 0) != o->expire->unexpire) {
			rc = udr__error_set(UDR_EINVAL, "an expire record changes no table");
			goto done;
		}
	}
	/* every check passed: the config says the format the record needs
	 * before the record exists (older udr versions then refuse the
	 * catalog); a refused command never raised it */
	if (plan.format && (rc = udr__catalog_config_format(c, plan.format)) < 0)
		goto done;
	cm.author = author;
	cm.message = (char *)(o->message ? o->message : (n == 1 ? vs[0]->message : NULL));
	cm.nchanges = n;
	for (size_t i = 0; i < n; i++) {
		vs[i]->parent = cm.changes[i].old_version;
		vs[i]->commit_seq = cm.seq;
		if (vs[i]->created_ms == 0)
			vs[i]->created_ms = cm.time_ms;
		if ((rc = publish_version(c, vs[i], &cm.changes[i].digest, i < PRE_MAX ? pre[i] : -1)) < 0)
			goto done;
		saved[i].wrote = true;
	}
	if ((rc = plan.branchy ? udr__record_ext_refs(&ext, c, &prev, &cm, o, plan.snap_from, plan.ref_prev)
	                       : record_ext(&ext, c, &prev, &cm)) < 0)
		goto done;
	/* format 1 syncs the record's bytes before its link and then only
	 * fsyncs log/: an unnamed file is not made durable by that syncfs
	 * the way a named one is (ext4 without a journal writes its inode
	 * with no link, and the fsync of log/ does not write it again), so
	 * the record there is a named temp file, as before */
	rc = publish_record(c, &cm, &ext, c->format >= 2 ? pre[PRE_MAX] : -1);
	/* linked (or not): GC may go on; never across the group's syncfs */
	udr__test_pause("gc-commit-linked");
	udr__gc_hold_end(&gch);
	if (rc >= 0) {
		committed = true;
		if (c->format < 2) {
			/* HEAD after every commit point: readers start there, and a
			 * HEAD naming a missing record tells a lost record from the
			 * end of the log (no fsync: a HEAD left behind by a crash is
			 * probed past) */
			udr__write_number_file(c, c->headpath, cm.seq);
		} else {
			/* the lock is released before the flush; HEAD (the durable
			 * horizon) is advanced by whoever syncs */
			udr__writer_view_clear();
			udr__catalog_unlock(lockfd);
			lockfd = -1;
			if (udr__catalog_make_durable(c, cm.seq) < 0)
				rc = 1;
		}
		if (rc == 1)
			rc = UDR_EIO; /* the message was set by publish_record or make_durable */
		if (seq_out)
			*seq_out = cm.seq;
	}
done:
	udr__writer_view_clear();
	udr__writer_verified_clear();
	if (!committed) {
		int keep = rc;
		for (size_t i = 0; i < n; i++) {
			if (saved[i].wrote) {
				char *p = udr__version_path(c, vs[i]->table, vs[i]->version);
				if (p)
					UDR_IO->unlink(p);
				free(p);
			}
			vs[i]->version = saved[i].version;
			vs[i]->parent = saved[i].parent;
			vs[i]->commit_seq = saved[i].seq;
			vs[i]->created_ms = saved[i].created_ms;
		}
		rc = keep;
	}
	udr__catalog_unlock(lockfd);
	udr__catalog_unlock(inflight);
	udr__gc_hold_end(&gch);
	for (size_t i = 0; i <= PRE_MAX; i++)
		pre_close(&pre[i]);
	udr__record_free(&prev);
	udr__record_free(&ext);
	free(cm.changes);
	free(cm.ref);
	free(saved);
	return rc;
}

int udr_catalog_commit(udr_catalog *c, udr_version *v)
{
	udr_version *vs[1] = {v};
	udr__commit_opts o;
	memset(&o, 0, sizeof(o));
	return udr__catalog_commit_versions(NULL, c, vs, 1, &o);
}

int udr_catalog_commit_next(udr_catalog *c, udr_version *v)
{
	udr_version *vs[1] = {v};
	udr__commit_opts o;
	memset(&o, 0, sizeof(o));
	o.assign = true;
	return udr__catalog_commit_versions(NULL, c, vs, 1, &o);
}
