/*
 * gcstate.c - chunks/gc/STATE (docs/GC.md 4.3, docs/FORMAT.md "GC state"):
 * parse and format the sealed JSON, replace it durably, and let writers
 * re-read its epoch with one stat when it has not changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"
#include "store/gcstate.h"

#define STATE_MAX (1 << 20)

static const char *const phase_names[] = {"idle", "doomed", "planned", "rewritten", "deleting", "aborted"};
#define NPHASES (sizeof(phase_names) / sizeof(phase_names[0]))

static const char *const keys[] = {"format",     "kind",   "epoch",   "drained", "phase",       "doomed",
                                   "dead",       "plan",   "mark",    "gc_seq",  "started_ms",  "pid",
                                   "wall_ms",    "boot_id", "boottime_ms", "last", "sealed"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const char *udr__gc_phase_name(enum udr__gc_phase p)
{
	return (unsigned)p < NPHASES ? phase_names[p] : "?";
}

void udr__gcstate_init(udr__gcstate *st)
{
	memset(st, 0, sizeof(*st));
	st->phase = UDR__GC_IDLE;
}

void udr__gcstate_release(udr__gcstate *st)
{
	if (!st)
		return;
	free(st->last);
	udr__gcstate_init(st);
}

/* Names are file names or hex digests: [A-Za-z0-9._-], nothing to escape. */
static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* "corrupt gc state PATH: "KEY" WHAT" */
static int bad(const char *path, const char *what, const char *key)
{
	return udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: \"%s\" %s", path, key, what);
}

static int get_u64(uint64_t *out, json_t *root, const char *key, const char *path)
{
	json_t *v = json_object_get(root, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bad(path, "is missing or not a non-negative integer", key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_i64(int64_t *out, json_t *root, const char *key, const char *path)
{
	uint64_t u;
	int rc = get_u64(&u, root, key, path);
	*out = (int64_t)u;
	return rc;
}

static int get_name(char *out, size_t max, json_t *root, const char *key, const char *path)
{
	json_t *v = json_object_get(root, key);
	out[0] = '\0';
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || !name_ok(json_string_value(v), max))
		return bad(path, "is missing, or not null or a plain name", key);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int udr__gcstate_parse(udr__gcstate *out, const char *text, size_t len, const char *path)
{
	json_t *root = NULL, *v;
	json_error_t jerr;
	const char *key;
	int rc, sealed;
	udr__gcstate_init(out);
	if ((sealed = udr__unseal(text, len, path, "gc state")) < 0)
		return sealed;
	if (sealed == 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: not sealed (truncated, damaged or edited)",
		                      path);
	/* The seal covers every byte; what follows catches a file sealed by
	 * something that is not udr, or by a newer udr. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: not a JSON object (%s)", path,
		                    root ? "another JSON value" : jerr.text);
		goto done;
	}
	v = json_object_get(root, "format");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: format is not 1 (written by a newer udr, or "
		                    "damaged)", path);
		goto done;
	}
	v = json_object_get(root, "kind");
	if (!json_is_string(v) || strcmp(json_string_value(v), "udr-gc-state") != 0) {
		rc = bad(path, "is not \"udr-gc-state\"", "kind");
		goto done;
	}
	json_object_foreach(root, key, v) {
		size_t i;
		for (i = 0; i < NKEYS; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (i == NKEYS && strcmp(key, "check") != 0) {
			char q[64];
			udr__quote(q, sizeof(q), key);
			rc = bad(path, "is not a key of format 1", q);
			goto done;
		}
	}
	for (size_t i = 0; i < NKEYS; i++)
		if (!json_object_get(root, keys[i])) {
			rc = bad(path, "is missing", keys[i]);
			goto done;
		}
	if (!json_is_true(json_object_get(root, "sealed"))) {
		rc = bad(path, "is not true", "sealed");
		goto done;
	}
	if ((rc = get_u64(&out->epoch, root, "epoch", path)) < 0 ||
	    (rc = get_u64(&out->drained, root, "drained", path)) < 0 ||
	    (rc = get_name(out->doomed, UDR__GC_NAME_MAX, root, "doomed", path)) < 0 ||
	    (rc = get_name(out->dead, UDR__GC_NAME_MAX, root, "dead", path)) < 0 ||
	    (rc = get_name(out->plan, UDR__GC_NAME_MAX, root, "plan", path)) < 0 ||
	    (rc = get_u64(&out->mark, root, "mark", path)) < 0 ||
	    (rc = get_u64(&out->gc_seq, root, "gc_seq", path)) < 0 ||
	    (rc = get_i64(&out->started_ms, root, "started_ms", path)) < 0 ||
	    (rc = get_i64(&out->pid, root, "pid", path)) < 0 ||
	    (rc = get_i64(&out->wall_ms, root, "wall_ms", path)) < 0 ||
	    (rc = get_name(out->boot_id, UDR__GC_BOOTID_MAX, root, "boot_id", path)) < 0 ||
	    (rc = get_i64(&out->boottime_ms, root, "boottime_ms", path)) < 0)
		goto done;
	if (out->drained > out->epoch) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: drained %" PRIu64 " is past epoch %" PRIu64,
		                    path, out->drained, out->epoch);
		goto done;
	}
	v = json_object_get(root, "phase");
	rc = -1;
	if (json_is_string(v))
		for (size_t i = 0; i < NPHASES; i++)
			if (strcmp(json_string_value(v), phase_names[i]) == 0) {
				out->phase = (enum udr__gc_phase)i;
				rc = 0;
			}
	if (rc < 0) {
		rc = bad(path, "is not a known phase", "phase");
		goto done;
	}
	v = json_object_get(root, "last");
	if (json_is_object(v)) {
		if (!(out->last = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII))) {
			rc = udr__error_oom();
			goto done;
		}
	} else if (!json_is_null(v)) {
		rc = bad(path, "is not an object or null", "last");
		goto done;
	}
	rc = 0;
done:
	json_decref(root);
	if (rc < 0)
		udr__gcstate_release(out);
	return rc;
}

static int state_path(char **out, const char *storepath)
{
	char *dir = udr__path_join(storepath, UDR__GC_DIR);
	*out = dir ? udr__path_join(dir, UDR__GC_STATE_FILE) : NULL;
	free(dir);
	return *out ? 0 : UDR_ENOMEM;
}

/* A damaged STATE stops puts, commits with chunks and gc (reads go on):
 * say how to go on.  Removing it is safe while no gc runs (GC.md 4.7; a
 * doomed set's name is never reused, so the epoch going back binds
 * nobody): a run's outputs are published before STATE says
 * so, and packs it had hidden hold only dead or duplicate copies, which the
 * next run, starting afresh, judges again. */
static int damaged(int rc)
{
	char msg[1200];
	if (rc != UDR_ECORRUPT)
		return rc;
	snprintf(msg, sizeof(msg), "%s", udr_error_last()->message ? udr_error_last()->message : "corrupt gc state");
	return udr__error_set(rc, "%s; puts, commits of chunks and gc stop until it is repaired: `udr fsck --repair` "
	                      "writes it anew once no gc runs", msg);
}

int udr__gcstate_load(udr__gcstate *out, const char *storepath)
{
	char *path, *text = NULL;
	size_t len = 0;
	int rc;
	udr__gcstate_init(out);
	if ((rc = state_path(&path, storepath)) < 0)
		return rc;
	rc = udr__read_file(&text, &len, path, STATE_MAX);
	if (rc == UDR_ENOTFOUND) {
		udr_error_clear();
		rc = 0;
	} else if (rc == 0) {
		rc = damaged(udr__gcstate_parse(out, text, len, path));
	}
	free(text);
	free(path);
	return rc;
}

static int put_name(udr__buf *b, const char *key, const char *v, size_t max)
{
	if (!v[0])
		return udr__buf_printf(b, ",\"%s\":null", key);
	if (!name_ok(v, max))
		return udr__error_set(UDR_EINVAL, "internal error: gc state %s is not a plain name", key);
	return udr__buf_printf(b, ",\"%s\":\"%s\"", key, v);
}

int udr__gcstate_format(char **out, size_t *len, const udr__gcstate *st)
{
	udr__buf b = {0};
	int rc;
	*out = NULL;
	*len = 0;
	if (st->drained > st->epoch || (unsigned)st->phase >= NPHASES || st->epoch > INT64_MAX ||
	    st->mark > INT64_MAX || st->gc_seq > INT64_MAX || st->started_ms < 0 || st->pid < 0 ||
	    st->wall_ms < 0 || st->boottime_ms < 0)
		return udr__error_set(UDR_EINVAL, "internal error: gc state out of range (epoch %" PRIu64
		                      ", drained %" PRIu64 ")", st->epoch, st->drained);
	if ((rc = udr__buf_printf(&b, "{\"format\":1,\"kind\":\"udr-gc-state\",\"epoch\":%" PRIu64
	                          ",\"drained\":%" PRIu64 ",\"phase\":\"%s\"",
	                          st->epoch, st->drained, phase_names[st->phase])) < 0 ||
	    (rc = put_name(&b, "doomed", st->doomed, UDR__GC_NAME_MAX)) < 0 ||
	    (rc = put_name(&b, "dead", st->dead, UDR__GC_NAME_MAX)) < 0 ||
	    (rc = put_name(&b, "plan", st->plan, UDR__GC_NAME_MAX)) < 0 ||
	    (rc = udr__buf_printf(&b, ",\"mark\":%" PRIu64 ",\"gc_seq\":%" PRIu64 ",\"started_ms\":%" PRId64
	                          ",\"pid\":%" PRId64 ",\"wall_ms\":%" PRId64,
	                          st->mark, st->gc_seq, st->started_ms, st->pid, st->wall_ms)) < 0 ||
	    (rc = put_name(&b, "boot_id", st->boot_id, UDR__GC_BOOTID_MAX)) < 0 ||
	    (rc = udr__buf_printf(&b, ",\"boottime_ms\":%" PRId64 ",\"last\":", st->boottime_ms)) < 0)
		goto fail;
	if (st->last) {
		json_error_t jerr;
		json_t *l = json_loads(st->last, JSON_REJECT_DUPLICATES, &jerr);
		char *t = json_is_object(l) ? json_dumps(l, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)
		                            : NULL;
		bool obj = json_is_object(l);
		json_decref(l);
		if (!obj) {
			rc = udr__error_set(UDR_EINVAL, "internal error: gc state last is not a JSON object");
			goto fail;
		}
		if (!t) {
			rc = udr__error_oom();
			goto fail;
		}
		rc = udr__buf_puts(&b, t);
		free(t);
	} else {
		rc = udr__buf_puts(&b, "null");
	}
	if (rc < 0 || (rc = udr__buf_puts(&b, ",\"sealed\":true}")) < 0)
		goto fail;
	*len = b.len;
	*out = b.ptr;
	if ((rc = udr__seal(out, len)) < 0) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	return rc;
fail:
	udr__buf_free(&b);
	return rc;
}

int udr__gc_dir_ensure(const char *storepath)
{
	char *dir = udr__path_join(storepath, UDR__GC_DIR);
	bool created = false;
	int rc;
	if (!dir)
		return UDR_ENOMEM;
	rc = udr__mkdir(dir, &created);
	if (rc == 0 && created)
		rc = udr__fsync_dir(storepath);
	free(dir);
	return rc;
}

int udr__gcstate_save(const char *storepath, const char *tmpdir, const udr__gcstate *st)
{
	char *text = NULL, *path = NULL;
	size_t len;
	int rc;
	if ((rc = udr__gcstate_format(&text, &len, st)) < 0 || (rc = state_path(&path, storepath)) < 0 ||
	    (rc = udr__gc_dir_ensure(storepath)) < 0)
		goto done;
	rc = udr__write_file_atomic(tmpdir, path, text, len, UDR__PUBLISH_REPLACE, true);
done:
	free(text);
	free(path);
	return rc < 0 ? rc : 0;
}

/* ---- the writers' cached read ----------------------------------------------- */

void udr__gcwatch_init(udr__gcwatch *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	pthread_mutex_init(&w->mu, NULL);
}

void udr__gcwatch_destroy(udr__gcwatch *w)
{
	if (w->fd >= 0)
		UDR_IO->close(w->fd);
	w->fd = -1;
	udr__doomset_free(w->doom);
	w->doom = NULL;
	pthread_mutex_destroy(&w->mu);
}

/* The doomed name STATE gives (or "") and the start of the run that named
 * it: another set drops the loaded one and the "run found dead" mark.  The
 * name alone is not enough: epochs start again at 0 when STATE is removed
 * (the way out of a damaged STATE), and a later run's doomed-<e> must not
 * be judged by the set, or the death, of an earlier one (review R6). */
static void watch_doom(udr__gcwatch *w, const char *name, int64_t started_ms)
{
	if (strcmp(w->doomed, name) != 0 || w->doomed_started != started_ms) {
		udr__doomset_free(w->doom);
		w->doom = NULL;
		snprintf(w->doomed, sizeof(w->doomed), "%s", name);
		w->doomed_started = started_ms;
		w->doom_ignored[0] = 0;
	}
	__atomic_store_n(&w->doom_on, w->doomed[0] != 0, __ATOMIC_RELEASE);
}

/* Open STATE, parse it through that descriptor, and on success keep the
 * descriptor (its inode stays allocated) with the file's identity. */
static int watch_load(udr__gcwatch *w, const char *path)
{
	struct stat st;
	udr__gcstate gs;
	char *text = NULL;
	size_t got = 0;
	int rc, fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			w->valid = true;
			w->missing = true;
			w->epoch = 0;
			w->phase = UDR__GC_IDLE;
			watch_doom(w, "", 0);
			return 0;
		}
		return udr__error_io(errno, "cannot open gc state %s", path);
	}
	if (UDR_IO->fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat gc state %s", path);
		goto fail;
	}
	if (st.st_size > STATE_MAX) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc state %s: larger than %d bytes", path, STATE_MAX);
		goto fail;
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		rc = udr__error_oom();
		goto fail;
	}
	if ((rc = udr__read_full(fd, text, (size_t)st.st_size + 1, &got, path)) < 0)
		goto fail;
	w->parses++;
	if ((rc = udr__gcstate_parse(&gs, text, got, path)) < 0)
		goto fail;
	free(text);
	if (w->fd >= 0)
		UDR_IO->close(w->fd);
	w->fd = fd;
	w->valid = true;
	w->missing = false;
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	w->size = st.st_size;
	w->mtim = st.st_mtim;
	w->ctim = st.st_ctim;
	w->epoch = gs.epoch;
	w->phase = gs.phase;
	watch_doom(w, gs.phase == UDR__GC_PLANNED || gs.phase == UDR__GC_REWRITTEN || gs.phase == UDR__GC_DELETING
	                      ? gs.doomed
	                      : "",
	           gs.started_ms);
	udr__gcstate_release(&gs);
	return 0;
fail:
	free(text);
	UDR_IO->close(fd);
	return damaged(rc);
}

static bool same_ts(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

int udr__gcwatch_read(uint64_t *epoch, enum udr__gc_phase *phase, udr__gcwatch *w, const char *storepath)
{
	char *path;
	struct stat st;
	int rc = 0;
	if ((rc = state_path(&path, storepath)) < 0)
		return rc;
	pthread_mutex_lock(&w->mu);
	if (UDR_IO->stat(path, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR) {
			rc = udr__error_io(errno, "cannot stat gc state %s", path);
			w->valid = false;
			goto done;
		}
		if (w->fd >= 0)
			UDR_IO->close(w->fd);
		w->fd = -1;
		w->valid = true;
		w->missing = true;
		w->epoch = 0;
		w->phase = UDR__GC_IDLE;
		watch_doom(w, "", 0);
		goto done;
	}
	if (!w->valid || w->missing || st.st_dev != w->dev || st.st_ino != w->ino || st.st_size != w->size ||
	    !same_ts(&st.st_mtim, &w->mtim) || !same_ts(&st.st_ctim, &w->ctim)) {
		/* another file (or the same edited): parse the one open() finds;
		 * if it was replaced after our stat, the next call sees that */
		w->valid = false;
		rc = watch_load(w, path);
	}
done:
	if (rc == 0) {
		*epoch = w->epoch;
		*phase = w->phase;
	}
	pthread_mutex_unlock(&w->mu);
	free(path);
	return rc;
}
