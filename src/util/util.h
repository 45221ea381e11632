/*
 * util.h - internal utilities shared by every module of libudr: the error
 * state, the I/O table wrappers, durable file helpers, paths, time, buffers.
 * Names with the udr__ prefix are internal and may change at any time.
 */
#ifndef UDR_UTIL_H
#define UDR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <udr/udr.h>
#include <udr/sys/io.h>

#if defined(__GNUC__)
#define UDR__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UDR__UNUSED __attribute__((unused))
#else
#define UDR__PRINTF(a, b)
#define UDR__UNUSED
#endif

/* ---- errors (error.c) -------------------------------------------------- */

/* Set the thread's last error; returns code so callers can `return`. */
int udr__error_set(int code, const char *fmt, ...) UDR__PRINTF(2, 3);
/* Set an I/O error from errno err: "<what>: <strerror> (errno N)".  ENOENT
 * maps to UDR_ENOTFOUND, ENOMEM to UDR_ENOMEM, everything else UDR_EIO. */
int udr__error_os(int err, const char *fmt, ...) UDR__PRINTF(2, 3);
/* Same, but every errno maps to UDR_EIO (ENOENT included). */
int udr__error_io(int err, const char *fmt, ...) UDR__PRINTF(2, 3);
int udr__error_oom(void);
/* Copy printable text for quoting user input in messages (escapes bytes
 * outside 0x20..0x7e, truncates long values). */
void udr__quote(char *out, size_t outsz, const char *in);

/* ---- I/O table (io.c) -------------------------------------------------- */

const udr_io_methods *udr__io(void);
#define UDR_IO (udr__io())
/* Tests only: in builds with UDR_FAULT_INJECTION, UDR_PAUSE="<point>:<dir>"
 * stops the process where it calls this with that point: it creates
 * <dir>/<point>.reached, then waits (60 s at most) for <dir>/<point>.go, so
 * that a test can run another process in an exact window.  A no-op
 * otherwise. */
void udr__test_pause(const char *point);

/* ---- files (fs.c) ------------------------------------------------------ */

/* Join two path parts with '/'; NULL on OOM (error set). */
char *udr__path_join(const char *a, const char *b);
/* mkdir that accepts EEXIST; *created (may be NULL) tells if it made it. */
int udr__mkdir(const char *path, bool *created);
/* mkdir -p for dir and its parents under an existing base. */
int udr__mkdirs(const char *path);
/* fsync a directory by path. */
int udr__fsync_dir(const char *dir);
/* fsync the directory that contains path. */
int udr__fsync_parent(const char *path);
/* Read a whole small file (up to max bytes; larger is UDR_ECORRUPT).  The
 * buffer is NUL-terminated.  Missing file: UDR_ENOTFOUND. */
int udr__read_file(char **out, size_t *out_len, const char *path, size_t max);
/* Write all of len bytes to fd through the I/O table. */
int udr__write_all(int fd, const void *data, size_t len, const char *what);
/* Read up to len bytes (short only at EOF); *got receives the count. */
int udr__read_full(int fd, void *buf, size_t len, size_t *got, const char *what);

/*
 * A temp file in tmpdir, named <pid>-<random>.tmp and held under an flock
 * for its whole life, so that a checker can tell an abandoned temp file (lock
 * free) from one a live writer is using.
 */
typedef struct udr__tmp {
	int fd;
	char *path;
} udr__tmp;
int udr__tmp_create(udr__tmp *t, const char *tmpdir);
/* Close and unlink (safe on a zeroed or already-finished struct). */
void udr__tmp_discard(udr__tmp *t);
/* Close without unlinking (after it was published). */
void udr__tmp_close(udr__tmp *t);
/* A cache entry at path that is not a regular file (a directory, FIFO,
 * device or symlink put there) is removed, a directory with what it holds:
 * 1 a regular file is there, 0 nothing is (now), < 0 on errors.  Derived
 * data only: never call it on the store's own files. */
int udr__cache_entry_regular(const char *path);

/*
 * The query module's check of a version's row-level metadata
 * (udr_query_check_version, src/query/dv.c), which that module installs
 * here when it is loaded; NULL in a libudr without it.  Every commit runs
 * it on its versions before the writer lock (src/catalog/commit.c), so a
 * version SQL would refuse as damaged is never committed, whoever built it.
 */
struct udr_store;
struct udr_version;
extern int (*udr__row_meta_check)(struct udr_store *store, const struct udr_version *v);

/* Remove abandoned temp files in tmpdir; counts them into *removed. */
int udr__tmp_clean(const char *tmpdir, uint64_t *removed);

enum udr__publish_mode {
	UDR__PUBLISH_NEW,     /* the name must be new: EEXIST is reported as 1 */
	UDR__PUBLISH_REPLACE  /* replace any file of that name */
};
/*
 * Durable publish of a complete temp file: fsync it, give it its final name
 * (link for NEW, rename for REPLACE), unlink the temp name, fsync the
 * directory.  Returns 0, 1 when mode is NEW and the name already existed
 * (the temp file is discarded), or a negative error.  t is finished either way.
 */
int udr__tmp_publish(udr__tmp *t, const char *final, enum udr__publish_mode mode, bool sync);
/* Write a small file durably via a temp file in tmpdir. */
int udr__write_file_atomic(const char *tmpdir, const char *final, const void *data, size_t len,
                           enum udr__publish_mode mode, bool sync);

/* ---- checks (fs.c) ----------------------------------------------------- */

/* Count a problem found by a check and pass it to cb (may be NULL).
 * Returns 1 when the callback asks to stop, else 0. */
int udr__problem(udr_check_stats *stats, udr_problem_cb cb, void *payload, int code, const char *object,
                 const char *path, const char *fmt, ...) UDR__PRINTF(7, 8);

/* ---- sealed JSON files (seal.c) ---------------------------------------- */

/* `,"check":"<64 hex>"}\n`: what a seal adds at the end of a file. */
#define UDR__SEAL_TAIL 77
/* Seal the compact JSON object text[0..len) (ending in '}', no newline):
 * realloc'd to end in `,"check":"<BLAKE3 of the bytes before it>"}\n`. */
int udr__seal(char **text, size_t *len);
/* 1: sealed and intact; 0: no seal at the end (the caller decides whether
 * an unsealed file is acceptable, e.g. an older format); UDR_ECORRUPT
 * naming `what` and path when the check does not match. */
int udr__unseal(const char *text, size_t len, const char *path, const char *what);
/* Write a config file: json is a compact object that ends with
 * `"sealed":true}` (so a damaged seal can't pass for an older, unsealed
 * config); sealed, then written durably.  Returns as
 * udr__write_file_atomic. */
int udr__config_write(const char *tmpdir, const char *path, const char *json, enum udr__publish_mode mode);

/* ---- misc -------------------------------------------------------------- */

int64_t udr__now_ms(void);
/* The memory this process may use: the machine's, or its cgroup's limit
 * when lower (v2, then v1); 4 GiB when neither can be read.  For sizing
 * caches of a run (fsck's contents, gc's unchaining). */
uint64_t udr__mem_limit(void);
/* ISO-8601 UTC with milliseconds: 2026-11-28T20:18:03.123Z (out >= 32). */
void udr__format_time(char *out, size_t outsz, int64_t ms);
/* Parse RFC 3339 (zone Z, +hh:mm or -hh:mm; none: UTC; seconds and
 * fraction optional) or a bare date YYYY-MM-DD, which means the end of that
 * day (23:59:59.999 UTC); -1 on error.  See fs.c. */
int udr__parse_time(int64_t *out, const char *text);

/* Growable byte buffer. */
typedef struct udr__buf {
	char *ptr;
	size_t len;
	size_t cap;
} udr__buf;
int udr__buf_grow(udr__buf *b, size_t extra);
int udr__buf_put(udr__buf *b, const void *data, size_t len);
int udr__buf_puts(udr__buf *b, const char *s);
int udr__buf_printf(udr__buf *b, const char *fmt, ...) UDR__PRINTF(2, 3);
void udr__buf_free(udr__buf *b);

/* Overflow-checked size arithmetic: false on overflow. */
static inline bool udr__mul_ok(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
static inline bool udr__add_ok(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* Strict decimal parse of an unsigned 64-bit number; -1 on error. */
int udr__parse_u64(uint64_t *out, const char *text, size_t len);

#endif
