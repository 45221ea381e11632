/*
 * catalog.c - tables, versions and the commit log on one commit point.
 *
 * A version file tables/<T>/<N>.json names the commit that made it; the
 * commit record log/<seq>.json names each version file with the BLAKE3 of its
 * bytes.  A version is visible only when both agree, so the creation of the
 * commit record (link(), never replacing) is the single atomic commit point
 * of every change, whatever number of tables it touches.  HEAD and
 * tables/<T>/LATEST are caches that readers verify and probe past.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include <udr/gc.h>
#include <udr/refs.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "catalog/catalog_internal.h"
#include "catalog/lease.h"

char *udr__version_path(const udr_catalog *c, const char *table, uint64_t version)
{
	size_t n = strlen(c->tablesdir) + strlen(table) + SEQ_DIGITS + 16;
	char *p = malloc(n);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	snprintf(p, n, "%s/%s/%020llu.json", c->tablesdir, table, (unsigned long long)version);
	return p;
}

char *udr__seq_path(const char *dir, uint64_t seq)
{
	size_t n = strlen(dir) + SEQ_DIGITS + 16;
	char *p = malloc(n);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	snprintf(p, n, "%s/%020llu.json", dir, (unsigned long long)seq);
	return p;
}

char *udr__commit_path(const udr_catalog *c, uint64_t seq)
{
	return udr__seq_path(c->logdir, seq);
}

static char *table_file(const udr_catalog *c, const char *table, const char *name)
{
	size_t n = strlen(c->tablesdir) + strlen(table) + strlen(name) + 3;
	char *p = malloc(n);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	snprintf(p, n, "%s/%s/%s", c->tablesdir, table, name);
	return p;
}

static int lock_file(int *fd, const char *path, int op);

/* ---- open / close ------------------------------------------------------- */

void udr_catalog_close(udr_catalog *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->tmpdir);
	free(c->logdir);
	free(c->tablesdir);
	free(c->lockpath);
	free(c->headpath);
	free(c->statedir);
	free(c->inflightpath);
	free(c->syncpath);
	free(c->refsdir);
	udr__refs_cache_free(c);
	udr__lease_close(c->lease);
	pthread_mutex_destroy(&c->lease_mu);
	free(c);
}

/* The handle's lease, made at the first pin; NULL with 0 on a store this
 * process cannot write (readers go on unpinned, GC.md 2.4). */
static int catalog_lease(udr__lease **out, udr_catalog *c)
{
	int rc = 0;
	*out = NULL;
	pthread_mutex_lock(&c->lease_mu);
	if (c->lease && !udr__lease_mine(c->lease)) {
		/* forked: the parent's lease is not ours to write (its pins stay
		 * until the parent closes it) */
		udr__lease_close(c->lease);
		c->lease = NULL;
	}
	if (!c->lease && !c->lease_unavailable) {
		rc = udr__lease_open(&c->lease, c->path);
		if (rc < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
			/* a read-only store: readers go on unpinned (GC.md 2.4) */
			udr_error_clear();
			c->lease_unavailable = true;
			rc = 0;
		}
	}
	*out = c->lease;
	pthread_mutex_unlock(&c->lease_mu);
	return rc;
}

/* A reader's statement (udr__catalog_statement_begin): the visible head
 * found by its first look, kept until the statement ends or this thread
 * commits (tl_commits moves on; the head it made is looked up again). */
static _Thread_local udr__statement tl_stmt;
static _Thread_local uint64_t tl_commits;

static void statement_forget(const udr_catalog *c)
{
	if (tl_stmt.c == c)
		tl_stmt.known = false;
}

/* No pin (a store this process cannot write): what follows (the expiry
 * check) still looks at the head as it is now, not as the statement first
 * saw it, so that the window for an expiry it misses stays as narrow as
 * without statements. */
static int unpinned(const udr_catalog *c, int rc)
{
	statement_forget(c);
	return rc;
}

/* The pinner's side of the expire handshake (GC.md 2.2), once the pin line
 * is written: wait while an expire step is in progress. */
static int pinned(udr_catalog *c, uint64_t *pin, int rc)
{
	if (rc < 0 || *pin == 0)
		return unpinned(c, rc);
	udr__test_pause("pin-written");
	if ((rc = udr__expiring_wait(c)) < 0) {
		udr__catalog_unpin(c, *pin);
		*pin = 0;
	}
	return rc;
}

int udr__catalog_pin_snapshot(uint64_t *pin, udr_catalog *c, uint64_t seq, const char *branch, const char *what)
{
	udr__lease *l;
	int rc;
	*pin = 0;
	if ((rc = catalog_lease(&l, c)) < 0 || !l)
		return unpinned(c, rc);
	return pinned(c, pin, udr__lease_pin_snapshot(pin, l, seq, branch, what));
}

int udr__catalog_pin_version(uint64_t *pin, udr_catalog *c, const char *table, uint64_t version, const char *what)
{
	udr__lease *l;
	int rc;
	*pin = 0;
	if ((rc = catalog_lease(&l, c)) < 0 || !l)
		return unpinned(c, rc);
	return pinned(c, pin, udr__lease_pin_version(pin, l, table, version, what));
}

int udr__catalog_pin_after(uint64_t *pin, udr_catalog *c, uint64_t after, const char *what)
{
	udr__lease *l;
	int rc;
	*pin = 0;
	if ((rc = catalog_lease(&l, c)) < 0 || !l)
		return unpinned(c, rc);
	return pinned(c, pin, udr__lease_pin_after(pin, l, after, what));
}

/* ---- public pins (include/udr/gc.h) -------------------------------------- */

struct udr_pin {
	udr__lease *lease; /* NULL: unpinned (a store this process cannot write) */
	uint64_t pin;
	bool after_pin;
	uint64_t after;
};

static int pin_make(udr_pin **out, udr_catalog *c)
{
	udr_pin *p = calloc(1, sizeof(*p));
	int rc;
	if (!p)
		return udr__error_oom();
	rc = udr__lease_open(&p->lease, c->path);
	if (rc < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		udr_error_clear();
		p->lease = NULL;
		rc = 0;
	}
	if (rc < 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void udr_pin_release(udr_pin *p)
{
	if (!p)
		return;
	udr__lease_close(p->lease);
	free(p);
}

int udr_pin_version(udr_pin **out, udr_catalog *c, const char *table, uint64_t version)
{
	udr_pin *p = NULL;
	uint64_t latest = 0;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_pin_version");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	if (version == 0)
		return udr__error_set(UDR_EINVAL, "invalid version number 0: must be >= 1");
	if ((rc = udr__table_latest(&latest, c, table)) < 0)
		return rc;
	if (version > latest)
		return udr__error_set(UDR_ENOTFOUND, "table %s has no version %" PRIu64, table, version);
	if ((rc = pin_make(&p, c)) < 0)
		return rc;
	if (p->lease && ((rc = udr__lease_pin_version(&p->pin, p->lease, table, version, "pin")) < 0 ||
	                 (rc = udr__expiring_wait(c)) < 0)) {
		udr_pin_release(p);
		return rc;
	}
	if ((rc = udr__version_check(c, table, version, NULL)) < 0) {
		udr_pin_release(p);
		return rc;
	}
	*out = p;
	return 0;
}

int udr_pin_snapshot(udr_pin **out, udr_catalog *c, uint64_t seq, const char *branch)
{
	udr_pin *p = NULL;
	udr__record r;
	udr__tstate g;
	uint64_t head = 0, xseq = 0, bh;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_pin_snapshot");
	*out = NULL;
	if (!branch)
		branch = "main";
	if ((rc = udr_ref_name_check(branch)) < 0)
		return rc;
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		return rc;
	if (seq == 0 || seq > head)
		return udr__error_set(UDR_ENOTFOUND, "no commit %" PRIu64 " (the head is %" PRIu64 ")", seq, head);
	if (strcmp(branch, "main") != 0 && (rc = udr__branch_head(&bh, c, branch, seq)) < 0)
		return rc;
	if ((rc = pin_make(&p, c)) < 0)
		return rc;
	if (p->lease && ((rc = udr__lease_pin_snapshot(&p->pin, p->lease, seq, branch, "pin")) < 0 ||
	                 (rc = udr__expiring_wait(c)) < 0)) {
		udr_pin_release(p);
		return rc;
	}
	/* after the wait: is any table's version at the snapshot expired? */
	if ((rc = udr__expire_latest(&xseq, &head, c)) < 0 || xseq == 0) {
		if (rc < 0)
			udr_pin_release(p);
		else
			*out = p;
		return rc;
	}
	memset(&g, 0, sizeof(g));
	if ((rc = udr__record_read(&r, c, head)) < 0) {
		udr_pin_release(p);
		return rc;
	}
	rc = udr__global_state(&g, c, &r);
	for (size_t i = 0; rc == 0 && i < g.n; i++) {
		uint64_t v = 0;
		if (g.e[i].table[0] == '@' || g.e[i].version == 0)
			continue;
		if ((rc = udr__version_at_seq_on(&v, c, g.e[i].table, g.e[i].version, seq, branch)) == 0 && v > 0)
			rc = udr__version_check(c, g.e[i].table, v, NULL);
	}
	udr__tstate_free(&g);
	udr__record_free(&r);
	if (rc < 0) {
		udr_pin_release(p);
		return rc;
	}
	*out = p;
	return 0;
}

int udr_pin_after(udr_pin **out, udr_catalog *c, uint64_t after)
{
	udr_pin *p = NULL;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_pin_after");
	*out = NULL;
	if ((rc = pin_make(&p, c)) < 0)
		return rc;
	p->after_pin = true;
	p->after = after;
	/* the wait: an expire step that did not see the pin is linked before
	 * we return, so what it expired reads as expired, never as damage */
	if (p->lease && ((rc = udr__lease_pin_after(&p->pin, p->lease, after, "subscription")) < 0 ||
	                 (rc = udr__expiring_wait(c)) < 0)) {
		udr_pin_release(p);
		return rc;
	}
	*out = p;
	return 0;
}

int udr_pin_advance(udr_pin *p, uint64_t after)
{
	uint64_t pin;
	int rc;
	if (!p || !p->after_pin)
		return udr__error_set(UDR_EINVAL, "udr_pin_advance: not an after pin");
	if (after <= p->after)
		return 0;
	if (!p->lease) {
		p->after = after;
		return 0;
	}
	/* a subset of what the old pin keeps: no handshake needed */
	if ((rc = udr__lease_pin_after(&pin, p->lease, after, "subscription")) < 0)
		return rc;
	if (udr__lease_unpin(p->lease, p->pin) < 0)
		udr_error_clear(); /* the old pin stays: it only keeps more */
	p->pin = pin;
	p->after = after;
	return 0;
}

void udr__catalog_unpin(udr_catalog *c, uint64_t pin)
{
	if (pin && udr__lease_mine(c->lease) && udr__lease_unpin(c->lease, pin) < 0)
		udr_error_clear();
}

/* leases/ (GC.md 2.1) exists from creation; older catalogs get it at the
 * first pin. */
static int make_leases_dir(udr_catalog *c)
{
	char *d = udr__path_join(c->path, UDR__LEASES_DIR);
	int rc = d ? udr__mkdir(d, NULL) : UDR_ENOMEM;
	free(d);
	return rc;
}

int udr_catalog_open(udr_catalog **out, const char *path, udr_store *store, unsigned int flags)
{
	udr_catalog *c;
	struct stat st;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty catalog path");
	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return udr__error_oom();
	pthread_mutex_init(&c->lease_mu, NULL);
	c->store = store;
	if (!(c->path = strdup(path))) {
		rc = udr__error_oom();
		goto fail;
	}
	{
		size_t n = strlen(c->path);
		while (n > 1 && c->path[n - 1] == '/')
			c->path[--n] = '\0';
	}
	c->tmpdir = udr__path_join(c->path, "tmp");
	c->logdir = udr__path_join(c->path, "log");
	c->tablesdir = udr__path_join(c->path, "tables");
	c->lockpath = udr__path_join(c->path, "lock");
	c->headpath = udr__path_join(c->path, "HEAD");
	c->statedir = udr__path_join(c->path, "state");
	c->inflightpath = udr__path_join(c->path, "inflight");
	c->syncpath = udr__path_join(c->path, "sync");
	c->refsdir = udr__path_join(c->path, "refs");
	if (!c->refsdir ||
	    !c->tmpdir || !c->logdir || !c->tablesdir || !c->lockpath || !c->headpath || !c->statedir ||
	    !c->inflightpath || !c->syncpath) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if (UDR_IO->stat(c->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!(flags & UDR_OPEN_CREATE)) {
			rc = udr__error_set(UDR_ENOTFOUND, "not a catalog: %s does not exist", c->path);
			goto fail;
		}
		if ((rc = udr__mkdirs(c->path)) < 0)
			goto fail;
	}
	rc = udr__check_config(c->path, "udr-catalog", CATALOG_FORMAT_MAX);
	if (rc == UDR_ENOTFOUND && (flags & UDR_OPEN_CREATE)) {
		char *cfgpath = udr__path_join(c->path, "config.json");
		if (!cfgpath) {
			rc = UDR_ENOMEM;
			goto fail;
		}
		int lfd = -1;
		if ((rc = udr__mkdir(c->tmpdir, NULL)) == 0 && (rc = udr__mkdir(c->logdir, NULL)) == 0 &&
		    (rc = udr__mkdir(c->tablesdir, NULL)) == 0 && (rc = make_leases_dir(c)) == 0 &&
		    (rc = lock_file(&lfd, c->inflightpath, LOCK_SH)) == 0 &&
		    (udr__catalog_unlock(lfd), (rc = lock_file(&lfd, c->syncpath, LOCK_SH)) == 0)) {
			udr__catalog_unlock(lfd);
			rc = udr__config_write(c->tmpdir, cfgpath, "{\"format\":2,\"kind\":\"udr-catalog\",\"sealed\":true}",
			                       UDR__PUBLISH_NEW);
			if (rc >= 0)
				rc = udr__fsync_parent(c->path);
			if (rc >= 0)
				rc = CATALOG_FORMAT;
		}
		free(cfgpath);
	}
	if (rc < 0)
		goto fail;
	c->format = rc;
	*out = c;
	return 0;
fail:
	udr_catalog_close(c);
	return rc;
}

/* ---- lock ---------------------------------------------------------------- */

int udr__catalog_lock(int *fd, udr_catalog *c)
{
	*fd = UDR_IO->open(c->lockpath, O_RDWR | O_CREAT, 0644);
	if (*fd < 0)
		return udr__error_io(errno, "cannot open catalog lock %s", c->lockpath);
	if (UDR_IO->flock(*fd, LOCK_EX) < 0) {
		int err = errno;
		UDR_IO->close(*fd);
		*fd = -1;
		return udr__error_io(err, "cannot lock catalog %s", c->lockpath);
	}
	return 0;
}

void udr__catalog_unlock(int fd)
{
	if (fd >= 0)
		UDR_IO->close(fd); /* closing the descriptor releases the flock */
}

static _Thread_local const udr_catalog *tl_writer_view;
static _Thread_local bool tl_head_known; /* the linked head, found once under the lock */
static _Thread_local uint64_t tl_head;

/* Records read while the writer lock is held: the lock holder reads the
 * head record several times (its own checks, the table state, the latest
 * version's commit), and a linked record never changes.  Kept only until
 * the view is cleared.  A reader's statement keeps the records it read
 * within its horizon the same way (the head record and the commits of
 * the versions it binds, read again for each bind), until it ends. */
#define WCACHE 4
static _Thread_local struct {
	const udr_catalog *c;
	uint64_t seq;
	char *text;
	size_t len;
} tl_wcache[WCACHE];
static _Thread_local unsigned tl_wcache_next;

static void wcache_drop(void)
{
	for (int i = 0; i < WCACHE; i++) {
		free(tl_wcache[i].text);
		tl_wcache[i].text = NULL;
		tl_wcache[i].seq = 0;
		tl_wcache[i].c = NULL;
	}
}

static bool wcache_on(const udr_catalog *c)
{
	return c->format >= 2 && (tl_writer_view ? tl_writer_view == c : tl_stmt.c == c);
}

bool udr__writer_cache_get(const udr_catalog *c, uint64_t seq, char **text, size_t *len)
{
	if (!wcache_on(c))
		return false;
	for (int i = 0; i < WCACHE; i++)
		if (tl_wcache[i].text && tl_wcache[i].seq == seq && tl_wcache[i].c == c) {
			if (!(*text = malloc(tl_wcache[i].len + 1)))
				return false;
			memcpy(*text, tl_wcache[i].text, tl_wcache[i].len + 1);
			*len = tl_wcache[i].len;
			return true;
		}
	return false;
}

void udr__writer_cache_put(const udr_catalog *c, uint64_t seq, const char *text, size_t len)
{
	unsigned i = tl_wcache_next++ % WCACHE;
	if (!wcache_on(c))
		return;
	free(tl_wcache[i].text);
	tl_wcache[i].seq = 0;
	if ((tl_wcache[i].text = malloc(len + 1)) != NULL) {
		memcpy(tl_wcache[i].text, text, len);
		tl_wcache[i].text[len] = 0;
		tl_wcache[i].len = len;
		tl_wcache[i].seq = seq;
		tl_wcache[i].c = c;
	}
}

/* Versions the committing thread read and checked (load_checked) before it
 * took the writer lock: under the lock, the latest version of such a table
 * is not read and checked a second time when the log still names the same
 * version made by the same commit (a committed file never changes).  Set
 * and cleared by the commit step; a few entries, each table once. */
#define WVERIFIED 8
static _Thread_local struct {
	const udr_catalog *c;
	char table[UDR_TABLE_NAME_MAX + 1];
	uint64_t version, seq;
} tl_verified[WVERIFIED];
static _Thread_local unsigned tl_nverified;

void udr__writer_verified_add(const udr_catalog *c, const udr_version *v)
{
	if (tl_nverified >= WVERIFIED || !v->table || strlen(v->table) > UDR_TABLE_NAME_MAX || !v->commit_seq)
		return;
	tl_verified[tl_nverified].c = c;
	strcpy(tl_verified[tl_nverified].table, v->table);
	tl_verified[tl_nverified].version = v->version;
	tl_verified[tl_nverified].seq = v->commit_seq;
	tl_nverified++;
}

void udr__writer_verified_clear(void)
{
	tl_nverified = 0;
}

bool udr__writer_verified(const udr_catalog *c, const char *table, uint64_t version, uint64_t seq)
{
	if (tl_writer_view != c)
		return false;
	for (unsigned i = 0; i < tl_nverified; i++)
		if (tl_verified[i].c == c && tl_verified[i].version == version && tl_verified[i].seq == seq &&
		    strcmp(tl_verified[i].table, table) == 0)
			return true;
	return false;
}

static _Thread_local const udr__record *tl_head_record;

void udr__writer_record_set(const udr_catalog *c, const udr__record *r)
{
	tl_head_record = tl_writer_view == c && c->format >= 2 ? r : NULL;
}

const udr__record *udr__writer_record(const udr_catalog *c, uint64_t seq)
{
	const udr__record *r = tl_head_record;
	return r && tl_writer_view == c && r->cm && r->cm->seq == seq ? r : NULL;
}

void udr__catalog_statement_forget(const udr_catalog *c)
{
	statement_forget(c);
}

udr__statement udr__catalog_statement_begin(udr_catalog *c)
{
	udr__statement was = tl_stmt;
	if (!tl_writer_view)
		wcache_drop();
	tl_stmt.c = c;
	tl_stmt.known = false;
	return was;
}

void udr__catalog_statement_end(udr__statement was)
{
	if (!tl_writer_view)
		wcache_drop();
	/* an inner statement on the same catalog may have looked again (a
	 * pin's wait): the outer one looks again too, never back in time */
	if (was.c == tl_stmt.c)
		was.known = false;
	tl_stmt = was;
}

void udr__writer_view_set(udr_catalog *c)
{
	tl_commits++;
	tl_head_record = NULL;
	wcache_drop();
	tl_writer_view = c;
	tl_head_known = false;
}

void udr__writer_view_clear(void)
{
	tl_commits++;
	tl_head_record = NULL;
	wcache_drop();
	tl_writer_view = NULL;
	tl_head_known = false;
}

void udr__writer_head_set(uint64_t head)
{
	tl_head = head;
	tl_head_known = true;
}

bool udr__writer_view(const udr_catalog *c)
{
	return c->format < 2 || tl_writer_view == c;
}

/* Open (creating it when possible) and flock a lock file; op may include
 * LOCK_NB: then 1 is returned when somebody else holds it.  A lock file
 * that cannot be created on a read-only file system means nobody writes:
 * *fd is then -1 and 0 is returned. */
static int open_lock_file(int *fd, const char *path)
{
	*fd = UDR_IO->open(path, O_RDWR | O_CREAT, 0644);
	if (*fd < 0 && (errno == EROFS || errno == EACCES))
		*fd = UDR_IO->open(path, O_RDONLY, 0);
	if (*fd < 0) {
		if (errno == ENOENT || errno == EROFS)
			return 0;
		return udr__error_io(errno, "cannot open lock %s", path);
	}
	return 0;
}

static int lock_file(int *fd, const char *path, int op)
{
	int rc = open_lock_file(fd, path);
	if (rc < 0 || *fd < 0)
		return rc;
	if (UDR_IO->flock(*fd, op) < 0) {
		int err = errno;
		UDR_IO->close(*fd);
		*fd = -1;
		if (err == EWOULDBLOCK)
			return 1;
		return udr__error_io(err, "cannot lock %s", path);
	}
	return 0;
}

int udr__inflight_lock(int *fd, udr_catalog *c, int op)
{
	return lock_file(fd, c->inflightpath, op);
}

/* ---- small cache files --------------------------------------------------- */

/* Format 2 writes HEAD in place (no new inode per commit) as 20 digits, a
 * space, a 16-hex-digit check of the number and a newline, so that a read
 * racing the write, or a write torn by a crash, is recognized.  A plain
 * number (format 1, fsck, tests) is accepted as it is. */
#define HEAD_TEXT_LEN (SEQ_DIGITS + 1 + 16 + 1)

static uint64_t head_check(uint64_t n)
{
	uint64_t z = n ^ 0x5544522d48454144ULL; /* "UDR-HEAD" */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int head_text(char *out, size_t outsz, uint64_t n)
{
	return snprintf(out, outsz, "%020llu %016llx\n", (unsigned long long)n, (unsigned long long)head_check(n));
}

/* 0 parsed; -1 unusable; -2 a check that does not match (torn) */
static int read_number_file_once(uint64_t *out, const char *path)
{
	char *text = NULL;
	size_t len;
	int rc = udr__read_file(&text, &len, path, 64);
	if (rc < 0) {
		udr_error_clear();
		return -1;
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (len == HEAD_TEXT_LEN - 1 && text[SEQ_DIGITS] == ' ') {
		uint64_t chk = 0;
		rc = udr__parse_u64(out, text, SEQ_DIGITS);
		for (size_t i = SEQ_DIGITS + 1; i < len && rc == 0; i++) {
			char ch = text[i];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				rc = -1;
			chk = chk << 4 | (uint64_t)(d < 0 ? 0 : d);
		}
		if (rc == 0 && chk != head_check(*out))
			rc = -2;
	} else {
		rc = udr__parse_u64(out, text, len);
	}
	free(text);
	return rc;
}

static int read_number_file(uint64_t *out, const char *path)
{
	for (int i = 0; i < 100; i++) {
		int rc = read_number_file_once(out, path);
		if (rc != -2)
			return rc;
		sched_yield(); /* a writer is overwriting it: read again */
	}
	return -1; /* torn for good (a crash during the write): unusable */
}

/* Advance HEAD in place (format 2): one small overwrite of the same inode,
 * no sync (HEAD is only ever advanced past records already durable, and a
 * HEAD lost or torn by a crash is recovered). */
static void write_head_inplace(udr_catalog *c, uint64_t n)
{
	char text[64];
	struct stat st;
	int len = head_text(text, sizeof(text), n);
	int fd = UDR_IO->open(c->headpath, O_WRONLY | O_CREAT, 0644);
	if (fd >= 0 && UDR_IO->fstat(fd, &st) == 0 && st.st_size == len) {
		if (UDR_IO->write(fd, text, (size_t)len) != len)
			udr_error_clear();
		UDR_IO->close(fd);
		return;
	}
	if (fd >= 0)
		UDR_IO->close(fd);
	/* not yet in the fixed-width form: replace it once, atomically */
	if (udr__write_file_atomic(c->tmpdir, c->headpath, text, (size_t)len, UDR__PUBLISH_REPLACE, false) < 0)
		udr_error_clear();
}

/* ---- catalog/expiring: the expire handshake (GC.md 2.2) ------------------ */

#define EXPIRING_FILE "expiring"

static char *expiring_path(udr_catalog *c)
{
	return udr__path_join(c->path, EXPIRING_FILE);
}

int udr__expiring_begin(int *fd_out, udr_catalog *c)
{
	char *path = expiring_path(c), text[64];
	uint64_t g = 0;
	int fd, len, r;
	*fd_out = -1;
	if (!path)
		return udr__error_oom();
	if ((fd = UDR_IO->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		int rc = udr__error_io(errno, "cannot open %s", path);
		free(path);
		return rc;
	}
	while (UDR_IO->flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int rc = udr__error_io(errno, "cannot lock %s", path);
			UDR_IO->close(fd);
			free(path);
			return rc;
		}
	}
	/* under the lock no one writes it: an unreadable value (a crash
	 * during a write, damage) restarts the count */
	r = read_number_file_once(&g, path);
	if (r < 0)
		g = 0;
	g = g % 2 ? g + 2 : g + 1; /* odd: an expire step is in progress */
	len = head_text(text, sizeof(text), g);
	errno = 0;
	if (pwrite(fd, text, (size_t)len, 0) != len || ftruncate(fd, len) < 0) {
		int rc = udr__error_io(errno ? errno : ENOSPC, "cannot write %s", path);
		UDR_IO->close(fd);
		free(path);
		return rc;
	}
	free(path);
	*fd_out = fd;
	return 0;
}

void udr__expiring_end(int fd, udr_catalog *c)
{
	char *path, text[64];
	uint64_t g = 0;
	int len;
	if (fd < 0)
		return;
	/* even: done (a failure leaves it odd: pinners then find the lock
	 * free once we close, which tells them the step is over) */
	if ((path = expiring_path(c)) && read_number_file_once(&g, path) == 0 && g % 2 == 1) {
		len = head_text(text, sizeof(text), g + 1);
		if (pwrite(fd, text, (size_t)len, 0) != len)
			udr_error_clear();
	}
	free(path);
	UDR_IO->close(fd); /* the lock goes with the descriptor */
}

/* The strict form: 20 digits, a space, the 16 hex of the check, "\n".
 * 0 and *g; else -1 with why[] said. */
static int expiring_parse(uint64_t *g, const char *text, size_t len, char *why, size_t whysz)
{
	uint64_t chk = 0;
	if (len == 0) {
		snprintf(why, whysz, "empty");
		return -1;
	}
	if (len < HEAD_TEXT_LEN) {
		/* the start of one (digits, then the space, then hex) cut short */
		bool prefix = true;
		for (size_t i = 0; i < len && prefix; i++) {
			char ch = text[i];
			prefix = i < SEQ_DIGITS ? ch >= '0' && ch <= '9'
			         : i == SEQ_DIGITS ? ch == ' '
			                           : (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
		}
		if (prefix)
			snprintf(why, whysz, "truncated (%zu bytes of %d)", len, HEAD_TEXT_LEN);
		else
			snprintf(why, whysz, "not a generation in HEAD's format (%zu bytes)", len);
		return -1;
	}
	if (len > HEAD_TEXT_LEN || text[SEQ_DIGITS] != ' ' || text[HEAD_TEXT_LEN - 1] != '\n' ||
	    udr__parse_u64(g, text, SEQ_DIGITS) < 0) {
		snprintf(why, whysz, "not a generation in HEAD's format (%zu bytes)", len);
		return -1;
	}
	for (size_t i = SEQ_DIGITS + 1; i < HEAD_TEXT_LEN - 1; i++) {
		char ch = text[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (d < 0) {
			snprintf(why, whysz, "not a generation in HEAD's format (bad check digits)");
			return -1;
		}
		chk = chk << 4 | (uint64_t)d;
	}
	if (chk != head_check(*g)) {
		snprintf(why, whysz, "its check does not match its generation %llu", (unsigned long long)*g);
		return -1;
	}
	return 0;
}

/* Read the open file fd whole (at most 64 bytes) and judge it. */
static void expiring_judge(udr__expiring_info *out, int fd)
{
	char text[65];
	ssize_t n = UDR_IO->pread(fd, text, sizeof(text), 0);
	if (n < 0) {
		out->state = UDR__EXPIRING_DAMAGED;
		snprintf(out->damage, sizeof(out->damage), "cannot be read: %s", strerror(errno));
		return;
	}
	if (expiring_parse(&out->gen, text, (size_t)n, out->damage, sizeof(out->damage)) < 0) {
		out->state = UDR__EXPIRING_DAMAGED;
		out->gen = 0;
		return;
	}
	out->state = out->gen % 2 ? UDR__EXPIRING_ODD : UDR__EXPIRING_EVEN;
}

/* Open catalog/expiring and take lock_op (LOCK_NB) on it: 0 with *fd; 1
 * when out says all (missing, busy, not a file); < 0 an error. */
static int expiring_take(int *fd, udr__expiring_info *out, udr_catalog *c, int flags, int lock_op)
{
	char *path = expiring_path(c);
	struct stat st;
	int rc = 0;
	*fd = -1;
	memset(out, 0, sizeof(*out));
	if (!path)
		return udr__error_oom();
	snprintf(out->path, sizeof(out->path), "%s", path);
	if (UDR_IO->stat(path, &st) < 0) {
		if (errno == ENOENT)
			out->state = UDR__EXPIRING_MISSING;
		else
			rc = udr__error_io(errno, "cannot stat %s", path);
		free(path);
		return rc < 0 ? rc : 1;
	}
	if (!S_ISREG(st.st_mode)) {
		out->state = UDR__EXPIRING_DAMAGED;
		snprintf(out->damage, sizeof(out->damage), "not a regular file");
		free(path);
		return 1;
	}
	if ((*fd = UDR_IO->open(path, flags | O_CLOEXEC, 0)) < 0) {
		rc = errno == ENOENT ? (out->state = UDR__EXPIRING_MISSING, 1)
		                     : udr__error_io(errno, "cannot open %s", path);
		free(path);
		return rc;
	}
	free(path);
	while (UDR_IO->flock(*fd, lock_op | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		rc = errno == EWOULDBLOCK ? (out->state = UDR__EXPIRING_BUSY, 1)
		                          : udr__error_io(errno, "cannot lock %s", out->path);
		UDR_IO->close(*fd);
		*fd = -1;
		return rc;
	}
	return 0;
}

int udr__expiring_check(udr__expiring_info *out, udr_catalog *c)
{
	int fd, rc = expiring_take(&fd, out, c, O_RDONLY, LOCK_SH);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	/* under LOCK_SH no expirer writes it: what is read is what stays */
	expiring_judge(out, fd);
	UDR_IO->close(fd);
	return 0;
}

int udr__expiring_repair(udr__expiring_info *was, int *fixed, udr_catalog *c)
{
	char text[64];
	uint64_t g;
	int len, fd, rc = expiring_take(&fd, was, c, O_RDWR, LOCK_EX);
	*fixed = 0;
	if (rc != 0)
		return rc < 0 ? rc : 0;
	expiring_judge(was, fd);
	if (was->state == UDR__EXPIRING_ODD || was->state == UDR__EXPIRING_DAMAGED) {
		/* in place, on the inode a pinner probes, under LOCK_EX as an
		 * expirer writes it: even, so no pinner takes it for a step in
		 * progress; a damaged value starts over at 0 (only its parity
		 * is read) */
		g = was->state == UDR__EXPIRING_ODD ? was->gen + 1 : 0;
		len = head_text(text, sizeof(text), g);
		errno = 0;
		if (pwrite(fd, text, (size_t)len, 0) != len || ftruncate(fd, len) < 0)
			rc = udr__error_io(errno ? errno : ENOSPC, "cannot write %s", was->path);
		else
			*fixed = 1;
	}
	UDR_IO->close(fd);
	return rc;
}

int udr__expiring_wait(udr_catalog *c)
{
	char *path = expiring_path(c);
	int fd = -1, rc = 0;
	if (!path)
		return udr__error_oom();
	for (;;) {
		uint64_t g = 0;
		int r = read_number_file_once(&g, path);
		struct timespec ts = {0, 1000000};
		if (r == 0 && g % 2 == 0)
			break; /* no expire step in progress */
		/* odd, unreadable (missing, or being created) or a check that
		 * does not match (being written, or damaged for good): is an
		 * expirer alive?  If the lock is free, none is (or it just
		 * ended); only a live one writes it, so a torn value with the
		 * lock free is damage, not a write to wait for */
		if (fd < 0 && (fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0) {
			if (errno == ENOENT)
				break; /* no expirer ever ran */
			rc = udr__error_io(errno, "cannot open %s", path);
			break;
		}
		if (UDR_IO->flock(fd, LOCK_SH | LOCK_NB) == 0) {
			UDR_IO->flock(fd, LOCK_UN);
			break;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = udr__error_io(errno, "cannot probe %s", path);
			break;
		}
		nanosleep(&ts, NULL);
	}
	if (fd >= 0)
		UDR_IO->close(fd);
	free(path);
	/* what follows a pin (the expiry check) looks at the head as it is
	 * now, not as the running statement first saw it: an expiry linked
	 * before the wait ended is seen (GC.md 2.2) */
	statement_forget(c);
	return rc;
}

void udr__write_number_file(udr_catalog *c, const char *path, uint64_t n)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)n);
	/* A cache: no fsync, errors ignored; readers verify it and probe past. */
	if (udr__write_file_atomic(c->tmpdir, path, text, (size_t)len, UDR__PUBLISH_REPLACE, false) < 0)
		udr_error_clear();
}

static bool file_exists(const char *path)
{
	struct stat st;
	return UDR_IO->stat(path, &st) == 0;
}

static bool commit_exists(udr_catalog *c, uint64_t seq)
{
	char *p = udr__commit_path(c, seq);
	bool r = p && file_exists(p);
	free(p);
	return r;
}

/* Largest seq named in log/ (recovery path when HEAD is unusable). */
static int scan_log_max(uint64_t *out, udr_catalog *c)
{
	DIR *d = opendir(c->logdir);
	struct dirent *e;
	uint64_t max = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", c->logdir);
	while ((e = readdir(d)) != NULL) {
		uint64_t s;
		size_t n = strlen(e->d_name);
		if (n == SEQ_DIGITS + 5 && strcmp(e->d_name + SEQ_DIGITS, ".json") == 0 &&
		    udr__parse_u64(&s, e->d_name, SEQ_DIGITS) == 0 && s > max)
			max = s;
	}
	closedir(d);
	*out = max;
	return 0;
}

/*
 * The true head.  HEAD is written after every commit point, so a HEAD that
 * names a missing record means a record was lost, and a record beyond a
 * missing one means the log has a gap: both are damage, reported (strict)
 * rather than taken as an earlier head, which would hand sequence numbers
 * out a second time.  Without a usable HEAD the log directory is listed.
 */
int udr__head_find(uint64_t *out, udr__head_info *info, udr_catalog *c)
{
	uint64_t h = 0, cache = 0;
	memset(info, 0, sizeof(*info));
	if (read_number_file(&cache, c->headpath) == 0) {
		info->cache = cache;
		info->cache_ok = true;
	}
	if (info->cache_ok && cache > 0 && !commit_exists(c, cache))
		info->cache_missing = true;
	if (info->cache_ok && !info->cache_missing) {
		h = cache;
	again:
		while (commit_exists(c, h + 1))
			h++;
		/* a writer that died between its commit point and HEAD leaves
		 * HEAD behind by one; older writers refreshed it every 16th
		 * commit: a record within that reach past the end is a gap.
		 * Records are created in order and never removed, so if h + 1 is
		 * still missing after s was seen, the gap is real and not a
		 * commit that raced this probe. */
		for (uint64_t s = h + 2; s <= h + 17 && !info->beyond; s++)
			if (commit_exists(c, s)) {
				if (commit_exists(c, h + 1))
					goto again;
				info->beyond = s;
			}
	} else {
		uint64_t max = 0;
		int rc = scan_log_max(&max, c);
		if (rc < 0)
			return rc;
		while (h < max && commit_exists(c, h + 1))
			h++;
		if (h < max)
			info->beyond = max;
	}
	*out = h;
	return 0;
}

/* Is a record linked within udr__head_find's reach past h + 1? */
static bool record_beyond(udr_catalog *c, uint64_t h)
{
	for (uint64_t s = h + 2; s <= h + 17; s++)
		if (commit_exists(c, s))
			return true;
	return false;
}

static int strict_head(uint64_t *out, udr__head_info *infop, udr_catalog *c)
{
	udr__head_info info;
	uint64_t h;
	int rc = udr__head_find(&h, &info, c);
	if (infop)
		*infop = info;
	if (rc < 0)
		return rc;
	if (info.cache_missing) {
		char *p = udr__commit_path(c, info.cache);
		rc = udr__error_set(UDR_ECORRUPT, "catalog %s: HEAD names commit %llu but its record %s is missing "
		                    "(a commit record was lost; see udr fsck)", c->path, (unsigned long long)info.cache,
		                    p ? p : "?");
		free(p);
		return rc;
	}
	if (info.beyond)
		return udr__error_set(UDR_ECORRUPT, "catalog %s: the commit log has a gap: record %llu is missing but "
		                      "record %llu exists (see udr fsck)", c->path, (unsigned long long)h + 1,
		                      (unsigned long long)info.beyond);
	*out = h;
	return 0;
}

static int64_t udr__mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note_horizon(udr_catalog *c, uint64_t h)
{
	unsigned long long seen = atomic_load(&c->horizon_seen);
	while (seen < h && !atomic_compare_exchange_weak(&c->horizon_seen, &seen, h))
		;
}

/*
 * Format 2, readers: the log ends at HEAD, the durable horizon.  Records
 * linked past it belong to writers still making them durable (they hold
 * the in-flight lock shared and will advance HEAD), or were left by
 * writers that died: then nobody holds the in-flight lock, and this reader
 * runs the recovery (syncfs, check, advance HEAD) before it answers, so
 * that nothing it reports can be lost afterwards.  A HEAD that cannot be
 * read is recovered the same way, after waiting for writers in flight.
 */
static int visible_head(uint64_t *out, udr_catalog *c)
{
	udr__head_info info;
	uint64_t h;
	int rc, fd = -1, tries = 0;
	/* The common case: HEAD names a record and nothing is linked past it,
	 * nor within udr__head_find's reach past the next name (a record
	 * there is a gap: damage, which strict_head reports rather than
	 * answering an older state with success; HEAD may lag durable records
	 * after a power cut, as its overwrite is not synced).  Lookups of
	 * names that do not exist, without parsing anything. */
	if (read_number_file(&h, c->headpath) == 0 && (h == 0 || commit_exists(c, h)) && !commit_exists(c, h + 1) &&
	    !record_beyond(c, h)) {
		note_horizon(c, h);
		*out = h;
		return 0;
	}
again:
	if ((rc = strict_head(&h, &info, c)) < 0)
		return rc;
	if ((info.cache_ok && h == info.cache) || (!info.cache_ok && h == 0)) {
		note_horizon(c, h);
		*out = h;
		return 0;
	}
	if (info.cache_ok) {
		/* one open of the lock file for both tries below */
		if ((rc = open_lock_file(&fd, c->inflightpath)) < 0)
			return rc;
		if (fd >= 0 && UDR_IO->flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			if (err != EWOULDBLOCK) {
				UDR_IO->close(fd);
				return udr__error_io(err, "cannot lock %s", c->inflightpath);
			}
			rc = 1;
		}
	} else if ((rc = udr__inflight_lock(&fd, c, LOCK_EX)) < 0) {
		return rc;
	}
	if (rc == 1) {
		/* Busy: writers in flight hold it shared, and then HEAD is the
		 * horizon; but a recovery (another reader, a writer, fsck) holds
		 * it exclusively, and its HEAD is not final yet: wait for it to
		 * finish (a shared lock), then look again. */
		if (UDR_IO->flock(fd, LOCK_SH | LOCK_NB) < 0) {
			int err = errno;
			if (err != EWOULDBLOCK) {
				UDR_IO->close(fd);
				return udr__error_io(err, "cannot lock %s", c->inflightpath);
			}
			if (tries++ < 100) {
				rc = UDR_IO->flock(fd, LOCK_SH) < 0 ? udr__error_io(errno, "cannot lock %s", c->inflightpath) : 0;
				UDR_IO->close(fd);
				fd = -1;
				if (rc < 0)
					return rc;
				goto again;
			}
		}
		UDR_IO->close(fd);
		note_horizon(c, info.cache);
		*out = info.cache;
		return 0;
	}
	rc = udr__catalog_recover(&h, c, NULL);
	if (fd >= 0)
		UDR_IO->close(fd);
	if (rc < 0)
		return rc;
	note_horizon(c, h);
	*out = h;
	return 0;
}

int udr__catalog_true_head(uint64_t *out, udr_catalog *c)
{
	if (tl_head_known && tl_writer_view == c) {
		*out = tl_head; /* under the writer lock the head cannot move */
		return 0;
	}
	if (udr__writer_view(c))
		return strict_head(out, NULL, c);
	if (tl_stmt.c == c) {
		int rc;
		if (tl_stmt.known && tl_stmt.commits == tl_commits) {
			*out = tl_stmt.head;
			return 0;
		}
		if ((rc = visible_head(out, c)) == 0) {
			tl_stmt.head = *out;
			tl_stmt.commits = tl_commits;
			tl_stmt.known = true;
		}
		return rc;
	}
	return visible_head(out, c);
}

int udr__catalog_precheck(udr_catalog *c)
{
	uint64_t h;
	/* the common case, nothing past a readable HEAD: no recovery to do
	 * (the writer lock's head search checks the rest) */
	if (read_number_file(&h, c->headpath) == 0 && !commit_exists(c, h + 1))
		return 0;
	return visible_head(&h, c);
}

/* The version file of change ch matches its digest. */
static bool change_intact(udr_catalog *c, const udr_change *ch)
{
	char *p = udr__version_path(c, ch->table, ch->new_version), *text = NULL;
	size_t len;
	bool ok = false;
	if (p && udr__read_file(&text, &len, p, UDR__MAX_META_FILE) == 0) {
		udr_hash d;
		udr_hash_buf(&d, text, len);
		ok = udr_hash_equal(&d, &ch->digest);
	}
	udr_error_clear();
	free(text);
	free(p);
	return ok;
}

int udr__catalog_recover(uint64_t *out, udr_catalog *c, uint64_t *removed)
{
	const udr_catalog *was = tl_writer_view;
	udr__head_info info;
	udr__record r;
	udr_hash prev;
	bool have_prev = false;
	uint64_t h, from, keep = 0, s;
	int rc, dfd;
	const udr__record *was_rec = tl_head_record;
	wcache_drop();
	tl_writer_view = c;
	tl_head_record = NULL;
	if (removed)
		*removed = 0;
	if ((rc = strict_head(&h, &info, c)) < 0)
		goto done;
	from = info.cache_ok ? info.cache : 0;
	keep = h;
	if (h == from)
		goto done; /* nothing past HEAD (or an empty log without one) */
	/* everything linked so far becomes durable (a killed writer's record
	 * sits complete in the page cache; after a power cut this is a no-op) */
	if ((dfd = UDR_IO->open(c->logdir, O_RDONLY | O_DIRECTORY, 0)) < 0) {
		rc = udr__error_io(errno, "cannot open %s", c->logdir);
		goto done;
	}
	if (UDR_IO->syncfs(dfd) < 0 && errno != EROFS) {
		rc = udr__error_io(errno, "catalog %s: syncfs before recovering records past HEAD failed", c->path);
		UDR_IO->close(dfd);
		goto done;
	}
	UDR_IO->close(dfd);
	if (from > 0) {
		if ((rc = udr__record_read(&r, c, from)) < 0)
			goto done;
		prev = r.digest;
		have_prev = true;
		udr__record_free(&r);
	}
	/* without a HEAD nothing tells which records were ever durable: after
	 * the syncfs all of them are; a damaged one is left for readers and
	 * fsck to report (never removed: it may have been acknowledged) */
	for (s = info.cache_ok ? from + 1 : h + 1; s <= h; s++) {
		bool ok;
		rc = udr__record_read(&r, c, s);
		if (rc == UDR_ENOMEM)
			goto done;
		if (rc < 0) {
			udr_error_clear();
			rc = 0;
			break;
		}
		ok = r.legacy || (r.has_prev == have_prev && (!have_prev || udr_hash_equal(&r.prev, &prev)));
		for (size_t i = 0; i < r.cm->nchanges && ok; i++)
			ok = change_intact(c, &r.cm->changes[i]);
		prev = r.digest;
		have_prev = true;
		udr__record_free(&r);
		if (!ok)
			break;
	}
	keep = s - 1;
	/* records from the first broken one on were never acknowledged (their
	 * syncfs never returned) nor visible (HEAD never covered them).  They
	 * are moved aside into catalog/lost/, not deleted: should a HEAD
	 * damaged to a smaller number ever make damage look like a dead
	 * writer's leftovers, the records are still there to be put back. */
	if (keep < h) {
		char *lost = udr__path_join(c->path, "lost");
		if (lost && udr__mkdir(lost, NULL) == 0) {
			for (s = keep + 1; s <= h; s++) {
				char *p = udr__commit_path(c, s), name[96], *q;
				snprintf(name, sizeof(name), "%020llu.json.%lld", (unsigned long long)s,
				         (long long)udr__now_ms());
				q = udr__path_join(lost, name);
				if (p && q && UDR_IO->rename(p, q) == 0 && removed)
					(*removed)++;
				free(p);
				free(q);
			}
			udr__fsync_dir(lost);
			udr__fsync_dir(c->logdir);
		}
		udr_error_clear();
		free(lost);
	}
	if (keep > from || (keep > 0 && !info.cache_ok))
		udr__write_number_file(c, c->headpath, keep);
	rc = 0;
done:
	wcache_drop();
	tl_writer_view = was;
	tl_head_record = was_rec;
	if (rc == 0)
		*out = keep;
	return rc;
}

/*
 * Group-commit hints in catalog/sync, read and written only by the holder
 * of its lock and never needed for correctness (a lost or damaged hint only
 * changes how long a leader waits): at offset 0 "<last group size> <last
 * syncfs in us>\n"; at SYNC_TABLE_OFF a table of the writers that passed
 * through make_durable lately (thread id, monotonic ms).  A leader counts
 * the writers seen in the last SYNC_ACTIVE_MS to know how many commits it
 * may wait for: a group as large as the number of writers, instead of two
 * half groups alternating (one syncing while the other links).
 */
#define SYNC_SLOTS 32
#define SYNC_TABLE_OFF 64
#define SYNC_ACTIVE_MS 20
struct sync_slot {
	int64_t tid;
	int64_t ms;
};

/* Note this writer in the table; the number of writers active lately
 * (this one included). */
static unsigned note_writer(int fd)
{
	struct sync_slot t[SYNC_SLOTS];
	int64_t now = udr__mono_us() / 1000, me = (int64_t)gettid();
	size_t mine = SYNC_SLOTS, oldest = 0;
	unsigned n = 1;
	memset(t, 0, sizeof(t));
	if (UDR_IO->pread(fd, t, sizeof(t), SYNC_TABLE_OFF) < 0)
		memset(t, 0, sizeof(t));
	for (size_t i = 0; i < SYNC_SLOTS; i++) {
		if (t[i].tid == me)
			mine = i;
		else if (t[i].tid > 0 && t[i].ms <= now && now - t[i].ms < SYNC_ACTIVE_MS)
			n++;
		if (t[i].ms < t[oldest].ms)
			oldest = i;
	}
	if (mine == SYNC_SLOTS)
		mine = oldest;
	t[mine].tid = me;
	t[mine].ms = now;
	if (lseek(fd, SYNC_TABLE_OFF + (off_t)(mine * sizeof(t[0])), SEEK_SET) < 0 ||
	    UDR_IO->write(fd, &t[mine], sizeof(t[0])) < 0)
		udr_error_clear(); /* a hint only */
	return n;
}

/* HEAD covers seq: the commit is durable (HEAD is only advanced past
 * records already made durable). */
static bool head_covers(udr_catalog *c, uint64_t seq, uint64_t *d)
{
	return read_number_file(d, c->headpath) == 0 && *d >= seq;
}

int udr__catalog_make_durable(udr_catalog *c, uint64_t seq)
{
	uint64_t d = 0, hp = seq, last = 0, last_us = 0;
	unsigned writers = 1;
	int64_t t0;
	int fd = -1, dfd, rc = 0, tries = 0;
	char hint[48] = "", *end;
	/* group commit: one leader at a time syncs for everybody linked before
	 * its syncfs began; the others find HEAD past their record and return */
	if (read_number_file(&d, c->headpath) < 0)
		d = seq - 1;
	else if (d >= seq)
		return 0;
	/* catalog/sync holds hints and the leader's lock: the record is
	 * linked already, so a failure to open it (EIO, EMFILE, ENOSPC ...)
	 * must not fail a commit that is made: this writer syncs alone (a
	 * commit reported failed but present was retried, and applied twice) */
	if (open_lock_file(&fd, c->syncpath) < 0) {
		udr_error_clear();
		fd = -1;
	}
	if (fd >= 0) {
		writers = note_writer(fd);
		if (UDR_IO->pread(fd, hint, sizeof(hint) - 1, 0) > 0) {
			last = strtoull(hint, &end, 10);
			last_us = strtoull(end, NULL, 10);
		}
	}
	while (commit_exists(c, hp + 1))
		hp++;
	if (fd >= 0 && last > 1 && writers > 1 && d < seq && hp - d < writers) {
		/* other writers are committing too (the last syncfs covered
		 * several): those it released are deciding their next commit
		 * now.  Wait, without any lock, until each writer active lately
		 * has a commit linked past the durable horizon (this one's
		 * among them), so that one syncfs covers them all instead of two
		 * half groups alternating, one syncing while the other links
		 * (PostgreSQL's commit_delay).  At most 1 ms, and no longer
		 * than the last syncfs took: waiting costs no more than the
		 * sync it saves. */
		uint64_t want = d + writers;
		int64_t until = udr__mono_us() + (int64_t)(last_us > 0 && last_us < 1000 ? last_us : 1000);
		while (hp < want && udr__mono_us() < until) {
			/* sleep, not yield: on few cores a spinning writer takes
			 * the CPU from the writers it waits for */
			struct timespec nap = {0, 100000};
			nanosleep(&nap, NULL);
			while (commit_exists(c, hp + 1))
				hp++;
			if (head_covers(c, seq, &d))
				goto out; /* another leader's syncfs covered it */
		}
	}
	/* Become the leader (the exclusive lock), or wait for the leader in
	 * office and look at HEAD again: a writer its syncfs covered returns
	 * then, instead of queueing behind the next leader's whole sync.  The
	 * wait naps and looks, a few times per sync: blocked in flock for a
	 * shared lock, a covered writer could not return before it got the
	 * lock, and a writer that took it exclusively the instant the leader
	 * let go kept it for its own whole sync, so covered writers often
	 * waited two syncs.  After 64 looks it queues for the lock. */
	for (;;) {
		if (tries > 0 && head_covers(c, seq, &d))
			goto out;
		if (fd < 0)
			break; /* no lock file (read-only directory): sync alone */
		if (UDR_IO->flock(fd, LOCK_EX | (tries < 64 ? LOCK_NB : 0)) == 0)
			break;
		if (errno != EWOULDBLOCK) {
			/* no lock: sync alone (as above, the commit is made) */
			UDR_IO->close(fd);
			fd = -1;
			break;
		}
		tries++;
		{
			int64_t us = last_us / 4 < 50 ? 50 : last_us / 4 > 2000 ? 2000 : (int64_t)(last_us / 4);
			struct timespec nap = {0, (long)us * 1000};
			nanosleep(&nap, NULL);
		}
	}
	/* the leader: HEAD once more, under the lock (a leader may have
	 * finished between the last look and the lock) */
	if (read_number_file(&d, c->headpath) < 0)
		d = seq - 1;
	else if (d >= seq)
		goto out;
	while (commit_exists(c, hp + 1))
		hp++;
	t0 = udr__mono_us();
	if ((dfd = UDR_IO->open(c->logdir, O_RDONLY | O_DIRECTORY, 0)) < 0 || UDR_IO->syncfs(dfd) < 0) {
		rc = udr__error_io(errno, "commit %llu is linked but syncfs failed: it is not visible yet and its "
		                   "durability is unknown", (unsigned long long)seq);
		if (dfd >= 0)
			UDR_IO->close(dfd);
		goto out;
	}
	UDR_IO->close(dfd);
	/* ---- durable: commits up to hp may be shown to readers ---- */
	write_head_inplace(c, hp);
	if (fd >= 0) {
		/* the group hint in catalog/sync, for the next leader */
		int len = snprintf(hint, sizeof(hint), "%llu %lld\n", (unsigned long long)(hp - d < 64 ? hp - d : 64),
		                   (long long)(udr__mono_us() - t0));
		if (lseek(fd, 0, SEEK_SET) == 0 && UDR_IO->write(fd, hint, (size_t)len) < 0)
			udr_error_clear(); /* a hint only */
	}
out:
	if (fd >= 0)
		UDR_IO->close(fd); /* releases the lock */
	return rc;
}

int udr_catalog_head(uint64_t *out, udr_catalog *c)
{
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_head");
	return udr__catalog_true_head(out, c);
}

/* ---- commit records ------------------------------------------------------ */

void udr_commit_free(udr_commit *cm)
{
	if (!cm)
		return;
	for (size_t i = 0; i < cm->nchanges; i++)
		free(cm->changes[i].table);
	free(cm->changes);
	free(cm->branch);
	free(cm->author);
	free(cm->message);
	free(cm->op);
	free(cm->ref);
	free(cm->parents);
	free(cm);
}

int udr_catalog_get_commit(udr_commit **out, udr_catalog *c, uint64_t seq)
{
	if (!out || !c || seq == 0)
		return udr__error_set(UDR_EINVAL, "invalid argument: commit sequence numbers start at 1");
	return udr__commit_read(out, c, seq);
}

/* ---- versions ------------------------------------------------------------ */

/* Read and check the version file; 1 committed (*out set if out), 0 not
 * committed (absent or orphan), <0 error. */
static int load_checked(udr_version **out, udr_catalog *c, const char *table, uint64_t version)
{
	char *path = udr__version_path(c, table, version), *text = NULL;
	udr_version *v = NULL;
	udr_commit *cm = NULL;
	size_t len;
	int rc, attempt;
	if (!path)
		return UDR_ENOMEM;
	for (attempt = 0; attempt < 2; attempt++) {
		udr_hash digest;
		const udr_change *ch = NULL;
		rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE);
		if (rc == UDR_ENOTFOUND) {
			udr_error_clear();
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		if ((rc = udr__version_from_json(&v, text, len, path)) < 0)
			break;
		if (v->commit_seq == 0) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: it names no commit", path);
			break;
		}
		rc = udr__commit_read(&cm, c, v->commit_seq);
		if (rc == UDR_ENOTFOUND) { /* written by a commit that never happened */
			udr_error_clear();
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		for (size_t i = 0; i < cm->nchanges; i++)
			if (strcmp(cm->changes[i].table, table) == 0 && cm->changes[i].new_version == version)
				ch = &cm->changes[i];
		if (!ch) { /* an orphan (or a copy) that no commit lists here */
			rc = 0;
			break;
		}
		if (strcmp(v->table, table) != 0 || v->version != version) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: it names table %s version %llu",
			                    path, v->table, (unsigned long long)v->version);
			break;
		}
		udr_hash_buf(&digest, text, len);
		if (udr_hash_equal(&digest, &ch->digest)) {
			if (v->parent != ch->old_version) {
				rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: parent disagrees with commit %llu",
				                    path, (unsigned long long)cm->seq);
				break;
			}
			rc = 1;
			break;
		}
		/* An orphan can be replaced by the committed file between our two
		 * reads; once the commit record exists the file never changes, so
		 * a second mismatch is damage. */
		rc = udr__error_set(UDR_ECORRUPT,
		                    "corrupt version file %s: its digest does not match commit record %llu (tampered or damaged)",
		                    path, (unsigned long long)cm->seq);
		free(text);
		text = NULL;
		udr_version_free(v);
		v = NULL;
		udr_commit_free(cm);
		cm = NULL;
	}
	free(text);
	free(path);
	udr_commit_free(cm);
	if (rc == 1 && out)
		*out = v;
	else
		udr_version_free(v);
	return rc;
}

int udr__version_load(udr_version **out, udr_catalog *c, const char *table, uint64_t version)
{
	return load_checked(out, c, table, version);
}

static int version_file_exists(udr_catalog *c, const char *table, uint64_t version)
{
	char *p = udr__version_path(c, table, version);
	int r;
	if (!p)
		return UDR_ENOMEM;
	r = file_exists(p) ? 1 : 0;
	free(p);
	return r;
}

/* committed(table, n) with a cheap stat first; with keep, a committed
 * version that was loaded replaces *keep (so a caller that wants the
 * latest version does not load it a second time). */
static int is_committed(udr_catalog *c, const char *table, uint64_t version, udr_version **keep)
{
	udr_version *v = NULL;
	int rc = version_file_exists(c, table, version);
	if (rc <= 0)
		return rc;
	rc = load_checked(keep ? &v : NULL, c, table, version);
	if (rc == 1 && keep) {
		udr_version_free(*keep);
		*keep = v;
	}
	return rc;
}

/*
 * The latest version as the log says (the window of the head record, over
 * its checkpoint), then its file checked: 1 answered, 0 when the head
 * record is format 1 (no window: the caller searches the version files).
 * A committed latest whose file is missing or damaged is an integrity
 * error, never an older latest.
 */
static int latest_from_log(uint64_t *out, udr_version **keep, udr_catalog *c, const char *table, const char *view)
{
	udr__tentry e;
	udr_version *v = NULL;
	uint64_t head;
	int rc;
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		return rc;
	if ((rc = udr__state_lookup_ex(&e, c, head, table, view)) < 0)
		return rc;
	if (rc == 2)
		return 0;
	if (e.version > 0 && !keep && udr__writer_verified(c, table, e.version, e.seq)) {
		*out = e.version; /* checked by this commit before it took the lock */
		return 1;
	}
	if (e.version > 0) {
		if ((rc = load_checked(keep ? &v : NULL, c, table, e.version)) < 0)
			return rc;
		if (rc == 0) {
			char *vp = udr__version_path(c, table, e.version);
			rc = udr__error_set(UDR_ECORRUPT,
			                    "table %s: version %llu was made by commit %llu, but its file %s is missing or "
			                    "does not match that commit",
			                    table, (unsigned long long)e.version, (unsigned long long)e.seq, vp ? vp : "?");
			free(vp);
			return rc;
		}
		if (keep) {
			udr_version_free(*keep);
			*keep = v;
		}
	}
	*out = e.version;
	return 1;
}

/* The latest committed version number; with keep, also that version (or
 * NULL when the search did not end on a loaded one). */
static int table_latest(uint64_t *out, udr_version **keep, udr_catalog *c, const char *table, const char *view)
{
	char *lp;
	uint64_t n = 0, lo, hi;
	int rc;
	if ((rc = latest_from_log(out, keep, c, table, view)) != 0)
		return rc < 0 ? rc : 0;
	/* a log of format-1 records (older stores): search the version files */
	if (!(lp = table_file(c, table, "LATEST")))
		return UDR_ENOMEM;
	if (read_number_file(&n, lp) == 0 && n > 0) {
		rc = is_committed(c, table, n, keep);
		if (rc < 0)
			goto done;
		if (rc == 0) {
			/* LATEST is only written after version n's commit point, and
			 * committed files never go away: this is damage, not a cache
			 * to ignore (ignoring it would hand version n out again). */
			char *vp = udr__version_path(c, table, n);
			rc = udr__error_set(UDR_ECORRUPT,
			                    "table %s: version %llu is committed but its file %s is missing or damaged",
			                    table, (unsigned long long)n, vp ? vp : "?");
			free(vp);
			goto done;
		}
	}
	if (n == 0) {
		/* Committed versions are exactly 1..L: gallop then bisect. */
		lo = 0;
		hi = 1;
		while ((rc = is_committed(c, table, hi, keep)) == 1) {
			lo = hi;
			if (hi > UINT64_MAX / 2)
				break;
			hi *= 2;
		}
		if (rc < 0)
			goto done;
		while (hi - lo > 1) {
			uint64_t mid = lo + (hi - lo) / 2;
			if ((rc = is_committed(c, table, mid, keep)) < 0)
				goto done;
			if (rc)
				lo = mid;
			else
				hi = mid;
		}
		n = lo;
	}
	while ((rc = is_committed(c, table, n + 1, keep)) == 1)
		n++;
	if (rc < 0)
		goto done;
	rc = 0;
	*out = n;
done:
	if (keep && *keep && (rc < 0 || (*keep)->version != n)) {
		udr_version_free(*keep);
		*keep = NULL;
	}
	free(lp);
	return rc;
}

int udr__table_latest(uint64_t *out, udr_catalog *c, const char *table)
{
	return table_latest(out, NULL, c, table, UDR__VIEW_ALLOC);
}

int udr_catalog_latest(uint64_t *out, udr_catalog *c, const char *table)
{
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_latest");
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	/* readers: main's version (the allocation, in a store that never branched) */
	if ((rc = table_latest(out, NULL, c, table, "main")) < 0)
		return rc;
	if (*out == 0)
		return udr__error_set(UDR_ENOTFOUND, "table %s not found", table);
	return 0;
}

int udr_catalog_get_version(udr_version **out, udr_catalog *c, const char *table, uint64_t version)
{
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_get_version");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	if (version == 0) {
		udr_version *kept = NULL;
		if ((rc = table_latest(&version, &kept, c, table, "main")) < 0)
			return rc;
		if (version == 0)
			return udr__error_set(UDR_ENOTFOUND, "table %s not found", table);
		if (kept) { /* found and verified while looking for the latest */
			*out = kept;
			return 0;
		}
	}
	rc = load_checked(out, c, table, version);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		uint64_t latest = 0;
		if ((rc = udr__table_latest(&latest, c, table)) < 0)
			return rc;
		if (latest == 0)
			return udr__error_set(UDR_ENOTFOUND, "table %s not found", table);
		if (version < latest) {
			/* committed versions are exactly 1..latest */
			char *vp = udr__version_path(c, table, version);
			rc = udr__error_set(UDR_ECORRUPT, "table %s: version %llu is committed (the table is at %llu) but "
			                    "its file %s is missing or damaged", table, (unsigned long long)version,
			                    (unsigned long long)latest, vp ? vp : "?");
			free(vp);
			return rc;
		}
		return udr__error_set(UDR_ENOTFOUND, "table %s has no version %llu (latest is %llu)", table,
		                      (unsigned long long)version, (unsigned long long)latest);
	}
	return 0;
}

int udr_catalog_list_versions(uint64_t **out, size_t *count, udr_catalog *c, const char *table)
{
	uint64_t latest, *arr;
	size_t bytes;
	int rc;
	if (!out || !count)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_list_versions");
	if (c && udr__catalog_branched(c))
		return udr_catalog_list_versions_on(out, count, c, table, "branch:main");
	if ((rc = udr_catalog_latest(&latest, c, table)) < 0)
		return rc;
	if (latest > SIZE_MAX || !udr__mul_ok((size_t)latest, sizeof(uint64_t), &bytes) ||
	    !(arr = malloc(bytes)))
		return udr__error_oom();
	for (uint64_t i = 0; i < latest; i++)
		arr[i] = i + 1;
	*out = arr;
	*count = (size_t)latest;
	return 0;
}

int udr_version_is_dropped(const udr_version *v)
{
	const char *d = v ? udr_version_get_meta(v, UDR_META_DROPPED) : NULL;
	return d && strcmp(d, "true") == 0;
}

int udr_catalog_list_live_tables(char ***out, size_t *count, udr_catalog *c, const char *ref)
{
	char **names = NULL;
	size_t n = 0, k = 0;
	int rc;
	if (!out || !count || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_list_live_tables");
	rc = ref ? udr_catalog_list_tables_on(&names, &n, c, ref) : udr_catalog_list_tables(&names, &n, c);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		udr_version *v = NULL;
		rc = ref ? udr_catalog_get_version_on(&v, c, names[i], 0, ref) : udr_catalog_get_version(&v, c, names[i], 0);
		if (rc == 0 && udr_version_is_dropped(v)) {
			free(names[i]);
			names[i] = NULL;
		} else if (rc == 0) {
			names[k++] = names[i];
		}
		udr_version_free(v);
	}
	if (rc < 0) {
		udr_strarray_free(names, n);
		return rc;
	}
	*out = names;
	*count = k;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int udr_catalog_list_tables(char ***out, size_t *count, udr_catalog *c)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (!out || !count || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_list_tables");
	{
		/* the log knows every table: the (sealed) state at the head is
		 * the list, in one or two file reads whatever the number of
		 * tables; a table whose files were lost is listed, and reading
		 * it fails, rather than being left out */
		udr__tstate st;
		uint64_t head;
		bool known;
		if ((rc = udr__catalog_true_head(&head, c)) < 0 || (head > 0 && udr__catalog_branched(c) &&
		                                                    (rc = udr__branch_head(&head, c, "main", head)) < 0) ||
		    (rc = udr__state_at(&st, &known, c, head)) < 0)
			return rc;
		if (known) {
			if (st.n && !(names = calloc(st.n, sizeof(*names))))
				rc = udr__error_oom();
			for (size_t i = 0; i < st.n && rc == 0; i++)
				if (!(names[n++] = strdup(st.e[i].table)))
					rc = udr__error_oom();
			udr__tstate_free(&st);
			if (rc < 0) {
				udr_strarray_free(names, n);
				return rc;
			}
			*out = names; /* sorted like the state */
			*count = n;
			return 0;
		}
	}
	if (!(d = opendir(c->tablesdir)))
		return udr__error_io(errno, "cannot list %s", c->tablesdir);
	while ((e = readdir(d)) != NULL) {
		uint64_t latest = 0;
		if (e->d_name[0] == '.' || udr_table_name_check(e->d_name) < 0) {
			udr_error_clear();
			continue;
		}
		if ((rc = udr__table_latest(&latest, c, e->d_name)) < 0)
			break;
		if (latest == 0)
			continue;
		if (n == cap) {
			char **p;
			cap = cap ? cap * 2 : 16;
			if (!(p = realloc(names, cap * sizeof(*names)))) {
				rc = udr__error_oom();
				break;
			}
			names = p;
		}
		if (!(names[n] = strdup(e->d_name))) {
			rc = udr__error_oom();
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		udr_strarray_free(names, n);
		return rc;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*count = n;
	return 0;
}

/* ---- upgrade ------------------------------------------------------------- */

int udr__catalog_upgrade(udr_catalog *c)
{
	char *cfgpath = NULL;
	uint64_t head;
	int lockfd = -1, fd = -1, rc;
	if (c->format >= 2)
		return 1;
	/* format-1 writers hold the writer lock across their flushes; HEAD
	 * becomes the durable horizon, so it must name the true head, durably,
	 * before the config says format 2 */
	if ((rc = udr__catalog_lock(&lockfd, c)) < 0)
		return rc;
	if ((rc = strict_head(&head, NULL, c)) < 0)
		goto done;
	if ((rc = lock_file(&fd, c->inflightpath, LOCK_SH)) < 0)
		goto done;
	udr__catalog_unlock(fd);
	if ((rc = lock_file(&fd, c->syncpath, LOCK_SH)) < 0)
		goto done;
	udr__catalog_unlock(fd);
	{
		char text[32];
		int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)head);
		if ((rc = udr__write_file_atomic(c->tmpdir, c->headpath, text, (size_t)len, UDR__PUBLISH_REPLACE, true)) < 0)
			goto done;
	}
	if (!(cfgpath = udr__path_join(c->path, "config.json"))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	rc = udr__config_write(c->tmpdir, cfgpath, "{\"format\":2,\"kind\":\"udr-catalog\",\"sealed\":true}",
	                       UDR__PUBLISH_REPLACE);
	if (rc >= 0)
		rc = udr__fsync_parent(cfgpath);
	if (rc >= 0) {
		c->format = 2;
		rc = 0;
	}
done:
	free(cfgpath);
	udr__catalog_unlock(lockfd);
	return rc;
}

int udr_catalog_upgrade(const char *path)
{
	udr_catalog *c = NULL;
	int rc = udr_catalog_open(&c, path, NULL, 0);
	if (rc < 0)
		return rc;
	rc = udr__catalog_upgrade(c);
	udr_catalog_close(c);
	return rc;
}
