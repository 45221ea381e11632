/*
 * gcfence.c - the writers' side of the GC fence (docs/GC.md 4.3): the shared
 * lock on chunks/gc/active.<e mod 2> that puts and commits with chunks hold,
 * and the fresh records of whole-content hits on old copies.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"
#include "store/gcfence.h"
#include "udr/gc.h"

int64_t udr__gc_test_now_ms;

static char *gc_file(const char *storepath, const char *name, unsigned parity)
{
	char rel[64];
	snprintf(rel, sizeof(rel), UDR__GC_DIR "/%s.%u", name, parity & 1);
	return udr__path_join(storepath, rel);
}

/* A store this process cannot write: say so, in words a user acts on. */
static int not_writable(int err, const char *path, const char *what)
{
	return udr__error_io(err, "cannot %s %s: puts and commits need write access to the chunk store "
	                     "(garbage collection's writer lock); reads do not", what, path);
}

/* Open active.<parity>: read-only when it exists (no O_CREAT, so the fault
 * counters of existing tests do not move), else create gc/ and it. */
static int open_active(int *fd, udr_store *s, unsigned parity)
{
	char *path = gc_file(s->path, "active", parity);
	int rc = 0;
	if (!path)
		return UDR_ENOMEM;
	*fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (*fd < 0 && errno == ENOENT) {
		if ((rc = udr__gc_dir_ensure(s->path)) < 0) {
			int err = errno;
			if (err == EACCES || err == EROFS || err == EPERM)
				rc = not_writable(err, path, "create the directory of");
			goto done;
		}
		/* an empty file: no fsync needed, a lost one is made again */
		*fd = UDR_IO->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	}
	if (*fd < 0) {
		int err = errno;
		rc = (err == EACCES || err == EROFS || err == EPERM) ? not_writable(err, path, "open")
		                                                      : udr__error_io(err, "cannot open %s", path);
	}
done:
	free(path);
	return rc;
}

/* The holds of this process (see udr__gc_hold). */
static pthread_mutex_t holds_mu = PTHREAD_MUTEX_INITIALIZER;
static udr__gc_hold *holds;
static pthread_once_t holds_once = PTHREAD_ONCE_INIT;

static void holds_prepare(void)
{
	pthread_mutex_lock(&holds_mu);
}

static void holds_parent(void)
{
	pthread_mutex_unlock(&holds_mu);
}

/* In the child: its copies of the parent's held descriptors are closed
 * (only close: a flock(LOCK_UN) would free the parent's lock as well). */
static void holds_child(void)
{
	for (udr__gc_hold *h = holds; h; h = h->next)
		if (h->fd >= 0)
			close(h->fd);
	holds = NULL;
	pthread_mutex_unlock(&holds_mu);
}

static void holds_init(void)
{
	pthread_atfork(holds_prepare, holds_parent, holds_child);
}

/* Open active.<parity> into h->fd and list h, both under holds_mu: a fork
 * between the two would give the child an unlisted copy of a descriptor
 * the parent is about to lock. */
static int holds_open(udr__gc_hold *h, udr_store *s, unsigned parity)
{
	int rc, fd = -1;
	pthread_mutex_lock(&holds_mu);
	if ((rc = open_active(&fd, s, parity)) == 0) {
		h->fd = fd;
		h->prev = NULL;
		h->next = holds;
		if (holds)
			holds->prev = h;
		holds = h;
	}
	pthread_mutex_unlock(&holds_mu);
	return rc;
}

static void holds_remove(udr__gc_hold *h)
{
	pthread_mutex_lock(&holds_mu);
	if (h->prev)
		h->prev->next = h->next;
	else if (holds == h)
		holds = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&holds_mu);
}

static void holds_close(udr__gc_hold *h)
{
	holds_remove(h);
	UDR_IO->close(h->fd); /* the lock goes with the last descriptor of its open file */
	h->fd = -1;
}

int udr__gc_hold_begin(udr__gc_hold *h, udr_store *s)
{
	h->fd = -1;
	h->prev = h->next = NULL;
	h->pid = (int)getpid();
	h->owner = pthread_self();
	pthread_once(&holds_once, holds_init);
	for (int attempt = 0;; attempt++) {
		uint64_t e, e2;
		enum udr__gc_phase p;
		int rc;
		if ((rc = udr__gcwatch_read(&e, &p, &s->gcw, s->path)) < 0)
			return rc;
		udr__test_pause("gc-hold-read");
		if ((rc = holds_open(h, s, (unsigned)(e & 1))) < 0)
			return rc;
		if (UDR_IO->flock(h->fd, LOCK_SH) < 0) {
			int err = errno;
			holds_close(h);
			return udr__error_io(err, "cannot lock %s/" UDR__GC_DIR "/active.%u", s->path, (unsigned)(e & 1));
		}
		/* the re-read under the lock makes the drain exact: a GC that
		 * published e+1 after our first read waits on the other file */
		if ((rc = udr__gcwatch_read(&e2, &p, &s->gcw, s->path)) < 0) {
			holds_close(h);
			return rc;
		}
		if ((e2 & 1) == (e & 1)) {
			h->epoch = e2;
			h->phase = p;
			return 0;
		}
		holds_close(h);
		if (attempt >= 1000)
			return udr__error_set(UDR_EIO, "garbage collection's epoch in %s/" UDR__GC_DIR "/STATE changed 1000 "
			                      "times while a writer waited; gave up", s->path);
	}
}

void udr__gc_hold_end(udr__gc_hold *h)
{
	if (h->fd >= 0 && h->pid == (int)getpid())
		holds_close(h);
	/* else a forked child's copy: its descriptor was closed at the fork */
	h->fd = -1;
}

/* The calling thread holds fd's file (a hold of its own, on another
 * descriptor: flock locks of two descriptors exclude each other in one
 * process too).  Another thread's hold ends by itself: waited for. */
static bool held_here(int fd)
{
	struct stat a, b;
	bool held = false;
	if (fstat(fd, &a) < 0)
		return false;
	pthread_once(&holds_once, holds_init);
	pthread_mutex_lock(&holds_mu);
	for (udr__gc_hold *h = holds; h && !held; h = h->next)
		held = h->fd >= 0 && pthread_equal(h->owner, pthread_self()) && fstat(h->fd, &b) == 0 &&
		       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	pthread_mutex_unlock(&holds_mu);
	return held;
}

int udr__gc_exclusive_begin(int fds[2], udr_store *s, bool wait)
{
	int rc = 0;
	fds[0] = fds[1] = -1;
	for (unsigned p = 0; p < 2 && rc == 0; p++) {
		if ((rc = open_active(&fds[p], s, p)) < 0)
			break;
		if (wait && held_here(fds[p])) {
			/* waiting would be for ourselves, forever */
			rc = udr__error_set(UDR_ELOCKED, "this thread holds garbage collection out of %s (an open "
			                    "udr_gc_hold, put or commit): end it first", s->path);
			break;
		}
		if (UDR_IO->flock(fds[p], LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
			int err = errno;
			rc = err == EWOULDBLOCK ? udr__error_set(UDR_ELOCKED, "a writer holds %s/" UDR__GC_DIR "/active.%u",
			                                          s->path, p)
			                        : udr__error_io(err, "cannot lock %s/" UDR__GC_DIR "/active.%u", s->path, p);
		}
	}
	if (rc < 0)
		udr__gc_exclusive_end(fds);
	return rc;
}

void udr__gc_exclusive_end(int fds[2])
{
	for (int p = 0; p < 2; p++) {
		if (fds[p] >= 0)
			UDR_IO->close(fds[p]);
		fds[p] = -1;
	}
}

int64_t udr__store_gc_grace_ms(const udr_store *s)
{
	return s->gc_grace_ms;
}

static int64_t now_ms(void)
{
	return udr__gc_test_now_ms ? udr__gc_test_now_ms : udr__now_ms();
}

static int64_t ts_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* Lock fresh.N for an append (shared among writers) and make sure it ends
 * on a record boundary (see udr__gc_fresh_note). */
static int fresh_lock_aligned(int fd, const char *path)
{
	struct stat st;
	for (int op = LOCK_SH;; op = LOCK_EX) {
		if (UDR_IO->flock(fd, op) < 0)
			return udr__error_io(errno, "cannot lock %s", path);
		if (UDR_IO->fstat(fd, &st) < 0)
			return udr__error_io(errno, "cannot stat %s", path);
		if (st.st_size % UDR__GC_FRESH_RECORD == 0)
			return 0;
		if (op == LOCK_EX)
			break;
	}
	/* LOCK_EX: no live writer is appending; the tail is a dead one's */
	if (ftruncate(fd, st.st_size - st.st_size % UDR__GC_FRESH_RECORD) < 0)
		return udr__error_io(errno, "cannot cut the torn record at the end of %s", path);
	return 0;
}

/* Was some copy of h made before the put began (start_ms; a copy this put
 * wrote is young and its own), and is one of those older than the grace? */
static int prior_copies(bool *prior, bool *old, udr_store *s, const udr_hash *h, int64_t start_ms)
{
	int64_t now = now_ms(), grace = s->gc_grace_ms;
	*prior = *old = false;
	for (unsigned copy = 0; copy < 64 && !*old; copy++) {
		udr__loc l;
		int64_t born_ms;
		int rc = udr__obj_find(&l, s, h, copy, false);
		if (rc < 0)
			return rc;
		if (l.kind == UDR__K_NONE)
			break;
		if (l.pack) {
			/* the index's mtime is in seconds: enough when the copy is
			 * clearly old; otherwise the pack's ctime (ns) decides */
			born_ms = l.pack->mtime * 1000 + 999;
			if (!(born_ms < start_ms && now - born_ms > grace)) {
				char path[4200];
				struct stat st;
				snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, l.pack->hex);
				if (UDR_IO->stat(path, &st) == 0)
					born_ms = ts_ms(&st.st_ctim);
			}
		} else {
			born_ms = ts_ms(&l.st.st_ctim);
		}
		udr__loc_free(&l);
		if (born_ms < start_ms) {
			*prior = true;
			if (now - born_ms > grace)
				*old = true;
		}
	}
	return 0;
}

int udr__gc_fresh_note(udr_store *s, const udr__gc_hold *h, const udr_hash *hash, int64_t start_ms, bool *noted)
{
	unsigned char rec[UDR__GC_FRESH_RECORD];
	char *path;
	bool prior, old;
	int rc, fd;
	if (noted)
		*noted = false;
	if ((rc = prior_copies(&prior, &old, s, hash, start_ms)) < 0 || !prior)
		return rc;
	if (!(path = gc_file(s->path, "fresh", (unsigned)(h->epoch & 1))))
		return UDR_ENOMEM;
	udr__put_le64(rec, (uint64_t)now_ms());
	memcpy(rec + 8, hash->bytes, UDR_HASH_SIZE);
	/* gc/ exists: the hold made active.N in it */
	if ((fd = UDR_IO->open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		rc = udr__error_io(errno, "cannot open %s", path);
		goto done;
	}
	/* one write of 40 bytes with O_APPEND: whole or torn at the end (a
	 * crash), never interleaved with another writer's record.  Writers
	 * append under LOCK_SH on the file; a length not a multiple of 40 is
	 * then a torn record of a dead writer (a power cut before its put
	 * returned), cut under LOCK_EX: appending behind it would misalign
	 * every later record, and GC would read garbage hashes.  Only a hit
	 * on a copy older than the grace is synced: a young copy's record
	 * lost to a power cut only makes a later commit fail cleanly */
	if ((rc = fresh_lock_aligned(fd, path)) == 0 && (rc = udr__write_all(fd, rec, sizeof(rec), path)) == 0 &&
	    old && UDR_IO->fsync(fd) < 0)
		rc = udr__error_io(errno, "fsync of %s failed", path);
	UDR_IO->close(fd);
	if (rc == 0 && noted)
		*noted = true;
done:
	if (rc < 0 && !old) {
		/* best effort for a young copy: the put stands */
		udr_error_clear();
		rc = 0;
	} else if (rc < 0) {
		char hex[UDR_HASH_HEXSIZE + 1], why[256];
		udr_hash_tohex(hex, hash);
		snprintf(why, sizeof(why), "%s", udr_error_last()->message);
		rc = udr__error_set(rc, "cannot record that %s was put again (it could be collected while uncommitted): %s",
		                    hex, why);
	}
	free(path);
	return rc;
}

int udr__gc_fresh_foreach(const char *storepath, unsigned parity, udr__gc_fresh_cb cb, void *payload)
{
	char *path = gc_file(storepath, "fresh", parity);
	unsigned char buf[UDR__GC_FRESH_RECORD * 256];
	size_t have = 0;
	int fd, rc = 0;
	if (!path)
		return UDR_ENOMEM;
	if ((fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot open %s", path);
		free(path);
		return rc;
	}
	for (;;) {
		size_t got = 0, k = 0;
		if ((rc = udr__read_full(fd, buf + have, sizeof(buf) - have, &got, path)) < 0)
			break;
		have += got;
		for (; k + UDR__GC_FRESH_RECORD <= have; k += UDR__GC_FRESH_RECORD) {
			udr_hash h;
			memcpy(h.bytes, buf + k + 8, UDR_HASH_SIZE);
			if ((rc = cb((int64_t)udr__get_le64(buf + k), &h, payload)) != 0)
				goto out;
		}
		memmove(buf, buf + k, have - k);
		have -= k;
		if (got == 0)
			break; /* EOF: what is left is a torn record */
	}
out:
	UDR_IO->close(fd);
	free(path);
	return rc;
}

int udr__gc_fresh_repair(const char *storepath, unsigned parity, uint64_t *cut)
{
	char *path = gc_file(storepath, "fresh", parity);
	struct stat st;
	int fd, rc = 0;
	*cut = 0;
	if (!path)
		return UDR_ENOMEM;
	if ((fd = UDR_IO->open(path, O_RDWR | O_CLOEXEC, 0)) < 0) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot open %s", path);
		free(path);
		return rc;
	}
	if (UDR_IO->fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat %s", path);
	} else if (st.st_size % UDR__GC_FRESH_RECORD != 0) {
		/* the writers' own cut, under LOCK_EX (fresh_lock_aligned) */
		off_t was = st.st_size;
		if ((rc = fresh_lock_aligned(fd, path)) == 0 && UDR_IO->fstat(fd, &st) == 0 && st.st_size < was) {
			*cut = (uint64_t)(was - st.st_size);
			if (UDR_IO->fsync(fd) < 0)
				rc = udr__error_io(errno, "cannot sync %s", path);
		}
	}
	UDR_IO->close(fd);
	free(path);
	return rc;
}

int udr__gc_fresh_reset(const char *storepath, unsigned parity)
{
	char *path = gc_file(storepath, "fresh", parity);
	int rc = 0;
	if (!path)
		return UDR_ENOMEM;
	if (UDR_IO->unlink(path) < 0) {
		if (errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove %s", path);
	} else {
		rc = udr__fsync_parent(path);
	}
	free(path);
	return rc;
}

/* The public hold (udr/gc.h): one more LOCK_SH on its own open file
 * description; a put's or commit's own hold inside it is granted while a GC
 * waits for the exclusive lock (Linux grants a shared flock compatible with
 * the holders, waiting exclusive requests or not), so holds nest. */
struct udr_gc_hold {
	udr__gc_hold h;
};

int udr_gc_hold_begin(udr_gc_hold **out, udr_store *s)
{
	udr_gc_hold *g;
	int rc;
	*out = NULL;
	if (!s)
		return udr__error_set(UDR_EINVAL, "udr_gc_hold_begin: no store");
	if (!(g = malloc(sizeof(*g))))
		return udr__error_oom();
	g->h = (udr__gc_hold)UDR__GC_HOLD_INIT;
	if ((rc = udr__gc_hold_begin(&g->h, s)) < 0) {
		free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void udr_gc_hold_end(udr_gc_hold *g)
{
	if (!g)
		return;
	udr__gc_hold_end(&g->h);
	free(g);
}

/* ---- the doomed set (GC.md 4.7) -------------------------------------------------- */

struct udr__doomset {
	char *bytes;    /* the file (NULL when all) */
	uint64_t n;     /* hashes */
	bool all;       /* unreadable or damaged: every object counts as doomed */
};

void udr__doomset_free(struct udr__doomset *d)
{
	if (d) {
		free(d->bytes);
		free(d);
	}
}

int udr__doomset_encode(char **out, size_t *len, uint64_t epoch, const udr_hash *hashes, uint64_t n)
{
	size_t bytes;
	char *b;
	udr_hash seal;
	*out = NULL;
	*len = 0;
	if (n > (SIZE_MAX - UDR__DOOM_HEADER - UDR_HASH_SIZE) / UDR_HASH_SIZE)
		return udr__error_oom();
	bytes = UDR__DOOM_HEADER + (size_t)n * UDR_HASH_SIZE + UDR_HASH_SIZE;
	if (!(b = malloc(bytes)))
		return udr__error_oom();
	memcpy(b, UDR__DOOM_MAGIC, 8);
	for (int i = 0; i < 8; i++) {
		b[8 + i] = (char)(epoch >> (8 * i));
		b[16 + i] = (char)(n >> (8 * i));
	}
	for (uint64_t i = 0; i < n; i++)
		memcpy(b + UDR__DOOM_HEADER + i * UDR_HASH_SIZE, hashes[i].bytes, UDR_HASH_SIZE);
	udr_hash_buf(&seal, b, bytes - UDR_HASH_SIZE);
	memcpy(b + bytes - UDR_HASH_SIZE, seal.bytes, UDR_HASH_SIZE);
	*out = b;
	*len = bytes;
	return 0;
}

/* Parse the bytes of a doomed file: 0, or UDR_ECORRUPT saying what is wrong. */
static int doom_parse(uint64_t *n, const char *b, size_t len, const char *path)
{
	udr_hash seal;
	uint64_t count = 0;
	if (len < UDR__DOOM_HEADER + UDR_HASH_SIZE || memcmp(b, UDR__DOOM_MAGIC, 8) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt doomed set %s: bad header", path);
	for (int i = 7; i >= 0; i--)
		count = count << 8 | (unsigned char)b[16 + i];
	if (count != (len - UDR__DOOM_HEADER - UDR_HASH_SIZE) / UDR_HASH_SIZE ||
	    (len - UDR__DOOM_HEADER - UDR_HASH_SIZE) % UDR_HASH_SIZE != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt doomed set %s: %zu bytes for %llu hashes", path, len,
		                      (unsigned long long)count);
	udr_hash_buf(&seal, b, len - UDR_HASH_SIZE);
	if (memcmp(seal.bytes, b + len - UDR_HASH_SIZE, UDR_HASH_SIZE) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt doomed set %s: its seal does not match", path);
	for (uint64_t i = 1; i < count; i++)
		if (memcmp(b + UDR__DOOM_HEADER + (i - 1) * UDR_HASH_SIZE, b + UDR__DOOM_HEADER + i * UDR_HASH_SIZE,
		           UDR_HASH_SIZE) >= 0)
			return udr__error_set(UDR_ECORRUPT, "corrupt doomed set %s: hashes out of order", path);
	*n = count;
	return 0;
}

static int cmp_hash_bytes(const void *a, const void *b)
{
	return memcmp(a, b, UDR_HASH_SIZE);
}

/* Under w->mu: is h in the set STATE names (loaded on first use)?  A set
 * that cannot be read or is damaged dooms everything: writers then wait for
 * the run on every object they reuse, as if GC stopped the world. */
static bool doom_has(udr_store *s, const udr_hash *h)
{
	udr__gcwatch *w = &s->gcw;
	struct udr__doomset *d = w->doom;
	if (!w->doomed[0] || strcmp(w->doomed, w->doom_ignored) == 0)
		return false;
	if (!d) {
		char rel[UDR__GC_NAME_MAX + 8], *path;
		size_t len = 0;
		int rc = UDR_ENOMEM;
		if (!(d = calloc(1, sizeof(*d))))
			return true; /* no memory: the safe answer */
		snprintf(rel, sizeof(rel), UDR__GC_DIR "/%s", w->doomed);
		if ((path = udr__path_join(s->path, rel)) != NULL &&
		    (rc = udr__read_file(&d->bytes, &len, path, (size_t)1 << 34)) == 0)
			rc = doom_parse(&d->n, d->bytes, len, path);
		free(path);
		if (rc < 0) {
			udr_error_clear();
			free(d->bytes);
			d->bytes = NULL;
			d->all = true;
		}
		w->doom = d;
	}
	if (d->all)
		return true;
	return d->n && bsearch(h->bytes, d->bytes + UDR__DOOM_HEADER, (size_t)d->n, UDR_HASH_SIZE, cmp_hash_bytes);
}

/* Is a run alive?  gc/lock is held by every run; a free lock (taken and
 * dropped at once) means the run that published the set is dead. */
static bool gc_running(udr_store *s)
{
	char *path = udr__path_join(s->path, UDR__GC_DIR "/lock");
	int fd;
	bool held = true;
	if (!path)
		return true;
	fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0);
	free(path);
	if (fd < 0)
		return errno != ENOENT;
	if (UDR_IO->flock(fd, LOCK_SH | LOCK_NB) == 0)
		held = false;
	UDR_IO->close(fd);
	return held;
}

/* Is the run that published the set `name` alive?  It holds LOCK_EX on
 * its doomed file from before STATE names it until it ends.  gc/lock alone
 * does not tell: the next run holds it while it waits for the writers'
 * fence, so a writer waiting on a dead run's set would wait for the next
 * run, and that run for the writer (review R6).  A set file that cannot
 * be opened falls back to gc/lock. */
static bool run_alive(udr_store *s, const char *name)
{
	char rel[UDR__GC_NAME_MAX + 8], *path;
	int fd;
	bool held = true;
	snprintf(rel, sizeof(rel), UDR__GC_DIR "/%s", name);
	if (!(path = udr__path_join(s->path, rel)))
		return true;
	fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0);
	free(path);
	if (fd < 0)
		return errno == ENOENT ? gc_running(s) : true;
	if (UDR_IO->flock(fd, LOCK_SH | LOCK_NB) == 0)
		held = false;
	UDR_IO->close(fd);
	return held;
}

/* Wait until the run that published the set `name` has ended (STATE no
 * longer names it) or is found dead (run_alive: the set then binds
 * nobody), then rescan the packs. */
static int wait_run(udr_store *s, const char *name)
{
	for (unsigned i = 0;; i++) {
		uint64_t e;
		enum udr__gc_phase p;
		struct timespec ts = {0, (long)(i < 6 ? 1000000L << i : 50000000L)};
		bool doomed;
		int rc;
		if ((rc = udr__gcwatch_read(&e, &p, &s->gcw, s->path)) < 0)
			return rc;
		pthread_mutex_lock(&s->gcw.mu);
		doomed = strcmp(s->gcw.doomed, name) == 0 && strcmp(name, s->gcw.doom_ignored) != 0;
		pthread_mutex_unlock(&s->gcw.mu);
		if (!doomed)
			break;
		if (!run_alive(s, name)) {
			/* killed: what it deleted is gone, the rest stays until the
			 * next run, which drains this writer before it judges */
			pthread_mutex_lock(&s->gcw.mu);
			if (strcmp(s->gcw.doomed, name) == 0)
				snprintf(s->gcw.doom_ignored, sizeof(s->gcw.doom_ignored), "%s", name);
			pthread_mutex_unlock(&s->gcw.mu);
			break;
		}
		nanosleep(&ts, NULL);
	}
	/* copies may be gone: the caller looks again, in a fresh listing */
	if (s->packs) {
		int rc = udr__packset_scan(s);
		if (rc < 0)
			return rc;
	}
	return 1;
}

int udr__gc_doom_check(udr_store *s, const udr_hash *h)
{
	bool doomed;
	char name[UDR__GC_NAME_MAX + 1];
	if (!__atomic_load_n(&s->gcw.doom_on, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&s->gcw.mu);
	doomed = doom_has(s, h);
	snprintf(name, sizeof(name), "%s", s->gcw.doomed);
	pthread_mutex_unlock(&s->gcw.mu);
	if (!doomed)
		return 0;
	/* wait for the run to end: it cannot publish another set while this
	 * writer holds active (its next run drains it first) */
	udr__test_pause("gc-doom-wait");
	return wait_run(s, name);
}

int udr__gc_sweep_wait(udr_store *s)
{
	char name[UDR__GC_NAME_MAX + 1];
	uint64_t e;
	enum udr__gc_phase p;
	bool live;
	int rc;
	if ((rc = udr__gcwatch_read(&e, &p, &s->gcw, s->path)) < 0)
		return rc;
	pthread_mutex_lock(&s->gcw.mu);
	snprintf(name, sizeof(name), "%s", s->gcw.doomed);
	live = name[0] && strcmp(name, s->gcw.doom_ignored) != 0;
	pthread_mutex_unlock(&s->gcw.mu);
	if (!live)
		return 0;
	rc = wait_run(s, name);
	return rc < 0 ? rc : 0;
}
