/*
 * store.c - the content-addressed chunk store: chunks/ab/cd/<hash> holds the
 * raw bytes whose BLAKE3-256 is <hash>.  Writes go through a locked temp
 * file in tmp/, fsync, link() under the final name (EEXIST: the same bytes
 * are already there), directory fsync.  Reads never lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"
#include "store/store_internal.h"

#define STORE_FORMAT 1
#define IO_BUFSZ ((size_t)1 << 20)

struct udr_store {
	char *path;
	char *tmpdir;
	size_t pathlen;
};

/* <path>/ab/cd/<64 hex> */
#define CHUNK_PATH_EXTRA (1 + 2 + 1 + 2 + 1 + UDR_HASH_HEXSIZE + 1)

static char *chunk_path(const udr_store *s, const udr_hash *h, char *hex)
{
	char *p = malloc(s->pathlen + CHUNK_PATH_EXTRA);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	udr_hash_tohex(hex, h);
	memcpy(p, s->path, s->pathlen);
	snprintf(p + s->pathlen, CHUNK_PATH_EXTRA, "/%.2s/%.2s/%s", hex, hex + 2, hex);
	return p;
}

static int write_config(const char *path, const char *tmpdir)
{
	char *cfg = udr__path_join(path, "config.json");
	char text[160];
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	snprintf(text, sizeof(text),
	         "{\"format\": %d, \"kind\": \"udr-chunk-store\", \"layout\": \"fanout-2-2\"}\n",
	         STORE_FORMAT);
	rc = udr__write_file_atomic(tmpdir, cfg, text, strlen(text), UDR__PUBLISH_NEW, true);
	free(cfg);
	return rc < 0 ? rc : 0;
}

int udr__check_config(const char *dir, const char *kind, int max_format)
{
	char *cfg = udr__path_join(dir, "config.json");
	char *text = NULL;
	json_t *root;
	json_error_t jerr;
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	rc = udr__read_file(&text, NULL, cfg, 1 << 16);
	if (rc < 0) {
		if (rc == UDR_ENOTFOUND)
			udr__error_set(UDR_ENOTFOUND, "not a %s: %s is missing", kind, cfg);
		free(cfg);
		return rc;
	}
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!root || !json_is_object(root) || !json_is_integer(json_object_get(root, "format")) ||
	    !json_is_string(json_object_get(root, "kind")) ||
	    strcmp(json_string_value(json_object_get(root, "kind")), kind) != 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: not a %s config", cfg, kind);
	} else if (json_integer_value(json_object_get(root, "format")) < 1 ||
	           json_integer_value(json_object_get(root, "format")) > max_format) {
		rc = udr__error_set(UDR_ECORRUPT, "%s: format %lld is not supported by this udr (max %d)", cfg,
		                    (long long)json_integer_value(json_object_get(root, "format")), max_format);
	}
	json_decref(root);
	free(cfg);
	return rc;
}

int udr_store_open(udr_store **out, const char *path, unsigned int flags)
{
	udr_store *s;
	struct stat st;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty chunk store path");
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return udr__error_oom();
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return udr__error_oom();
	}
	s->pathlen = strlen(s->path);
	while (s->pathlen > 1 && s->path[s->pathlen - 1] == '/')
		s->path[--s->pathlen] = '\0';
	s->tmpdir = udr__path_join(s->path, "tmp");
	if (!s->tmpdir) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if (UDR_IO->stat(s->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!(flags & UDR_OPEN_CREATE)) {
			rc = udr__error_set(UDR_ENOTFOUND, "not a chunk store: %s does not exist", s->path);
			goto fail;
		}
		if ((rc = udr__mkdirs(s->path)) < 0)
			goto fail;
	}
	if ((rc = udr__mkdir(s->tmpdir, NULL)) < 0)
		goto fail;
	rc = udr__check_config(s->path, "udr-chunk-store", STORE_FORMAT);
	if (rc == UDR_ENOTFOUND && (flags & UDR_OPEN_CREATE)) {
		rc = write_config(s->path, s->tmpdir);
		if (rc == 0)
			rc = udr__fsync_parent(s->path);
	}
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	udr_store_close(s);
	return rc;
}

void udr_store_close(udr_store *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->tmpdir);
	free(s);
}

const char *udr_store_path(const udr_store *s)
{
	return s ? s->path : NULL;
}

const char *udr__store_tmpdir(const udr_store *s)
{
	return s->tmpdir;
}

/* Make sure chunks/ab/cd exists; a directory we create is made durable in
 * its parent before anything is published inside it. */
static int ensure_fanout(const udr_store *s, const char *final)
{
	char dir[4096];
	size_t n = s->pathlen + 3;
	bool created;
	int rc;
	if (s->pathlen + 7 >= sizeof(dir))
		return udr__error_set(UDR_EINVAL, "chunk store path too long: %s", s->path);
	memcpy(dir, final, n);
	dir[n] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	if (created && (rc = udr__fsync_dir(s->path)) < 0)
		return rc;
	memcpy(dir, final, n + 3);
	dir[n + 3] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	if (created) {
		dir[n] = '\0';
		if ((rc = udr__fsync_dir(dir)) < 0)
			return rc;
	}
	return 0;
}

/*
 * Is the chunk already stored with the expected size?  1 yes, 0 no (absent,
 * or present with a wrong size: a damaged chunk that this put repairs), <0
 * error.  A chunk published a moment ago by another writer may still wait
 * for that writer's directory fsync; syncing it here too makes "durable when
 * put returns" hold for every caller, at no cost for older chunks.
 */
static int already_stored(const char *final, uint64_t size, bool *damaged)
{
	struct stat st;
	*damaged = false;
	if (UDR_IO->stat(final, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return udr__error_io(errno, "cannot stat chunk %s", final);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		*damaged = true;
		return 0;
	}
	if (time(NULL) - st.st_ctime < 5) {
		int rc = udr__fsync_parent(final);
		if (rc < 0)
			return rc;
	}
	return 1;
}

static int publish_chunk(udr_store *s, udr__tmp *t, const char *final, bool damaged)
{
	int rc = ensure_fanout(s, final);
	if (rc < 0) {
		udr__tmp_discard(t);
		return rc;
	}
	rc = udr__tmp_publish(t, final, damaged ? UDR__PUBLISH_REPLACE : UDR__PUBLISH_NEW, true);
	if (rc == 1) /* a concurrent writer published the same bytes first */
		rc = udr__fsync_parent(final);
	return rc < 0 ? rc : 0;
}

int udr_store_put(udr_hash *out, udr_store *s, const void *data, size_t len)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__tmp t = {-1, NULL};
	char *final;
	bool damaged;
	int rc;
	if (!out || !s || (!data && len))
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put");
	udr_hash_buf(out, data ? data : "", len);
	if (!(final = chunk_path(s, out, hex)))
		return UDR_ENOMEM;
	rc = already_stored(final, len, &damaged);
	if (rc != 0)
		goto done;
	if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
		goto done;
	if ((rc = udr__write_all(t.fd, data, len, t.path)) < 0) {
		udr__tmp_discard(&t);
		goto done;
	}
	rc = publish_chunk(s, &t, final, damaged);
done:
	free(final);
	return rc < 0 ? rc : 0;
}

int udr_store_put_fd(udr_hash *out, udr_store *s, int fd)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__tmp t = {-1, NULL};
	udr_hasher *h = NULL;
	char *buf = NULL, *final = NULL;
	uint64_t total = 0;
	bool damaged;
	int rc;
	if (!out || !s || fd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put_fd");
	if ((rc = udr_hasher_new(&h)) < 0)
		return rc;
	if (!(buf = malloc(IO_BUFSZ))) {
		rc = udr__error_oom();
		goto done;
	}
	if ((rc = udr__tmp_create(&t, s->tmpdir)) < 0)
		goto done;
	for (;;) {
		ssize_t n = UDR_IO->read(fd, buf, IO_BUFSZ);
		if (n < 0) {
			rc = udr__error_io(errno, "read of input failed after %llu bytes; nothing stored",
			                   (unsigned long long)total);
			goto done;
		}
		if (n == 0)
			break;
		udr_hasher_update(h, buf, (size_t)n);
		if ((rc = udr__write_all(t.fd, buf, (size_t)n, t.path)) < 0)
			goto done;
		total += (uint64_t)n;
	}
	udr_hasher_final(h, out);
	if (!(final = chunk_path(s, out, hex))) {
		rc = UDR_ENOMEM;
		goto done;
	}
	rc = already_stored(final, total, &damaged);
	if (rc != 0)
		goto done;
	rc = publish_chunk(s, &t, final, damaged);
done:
	udr__tmp_discard(&t); /* no-op when published */
	udr_hasher_free(h);
	free(buf);
	free(final);
	return rc < 0 ? rc : 0;
}

int udr_store_put_file(udr_hash *out, udr_store *s, const char *path)
{
	struct stat st;
	int fd, rc;
	if (!path)
		return udr__error_set(UDR_EINVAL, "invalid argument: input path is NULL");
	fd = UDR_IO->open(path, O_RDONLY, 0);
	if (fd < 0)
		return udr__error_os(errno, "cannot open input file %s", path);
	if (UDR_IO->fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		UDR_IO->close(fd);
		return udr__error_set(UDR_EINVAL, "input %s is a directory", path);
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = udr_store_put_fd(out, s, fd);
	UDR_IO->close(fd);
	return rc;
}

static int open_chunk(int *fd, struct stat *st, udr_store *s, const udr_hash *h, char **pathp)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	char *p;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	if (!(p = chunk_path(s, h, hex)))
		return UDR_ENOMEM;
	*fd = UDR_IO->open(p, O_RDONLY, 0);
	if (*fd < 0) {
		int err = errno;
		free(p);
		if (err == ENOENT)
			return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		return udr__error_io(err, "cannot open chunk %s", hex);
	}
	if (UDR_IO->fstat(*fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int err = errno;
		UDR_IO->close(*fd);
		free(p);
		return udr__error_set(UDR_ECORRUPT, "chunk %s: not a regular file (%s)", hex, strerror(err));
	}
	if (pathp)
		*pathp = p;
	else
		free(p);
	return 0;
}

static int get_impl(void **out, size_t *out_len, udr_store *s, const udr_hash *h, bool verify)
{
	struct stat st;
	char hex[UDR_HASH_HEXSIZE + 1];
	char *buf;
	size_t got;
	int fd, rc;
	if (!out || !out_len)
		return udr__error_set(UDR_EINVAL, "invalid argument: output is NULL");
	if ((rc = open_chunk(&fd, &st, s, h, NULL)) < 0)
		return rc;
	udr_hash_tohex(hex, h);
	if ((uint64_t)st.st_size >= SIZE_MAX) {
		UDR_IO->close(fd);
		return udr__error_oom();
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		UDR_IO->close(fd);
		return udr__error_oom();
	}
	rc = udr__read_full(fd, buf, (size_t)st.st_size, &got, hex);
	UDR_IO->close(fd);
	if (rc == 0 && got != (size_t)st.st_size)
		rc = udr__error_set(UDR_ECORRUPT, "chunk %s: file shrank while read", hex);
	if (rc == 0 && verify) {
		udr_hash actual;
		udr_hash_buf(&actual, buf, got);
		if (!udr_hash_equal(&actual, h)) {
			char ahex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(ahex, &actual);
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: its content hashes to %s", hex, ahex);
		}
	}
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = got;
	return 0;
}

int udr_store_get(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h, false);
}

int udr_store_get_verified(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h, true);
}

int udr_store_get_fd(udr_store *s, const udr_hash *h, int outfd, unsigned int flags)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct stat st;
	udr_hasher *hs = NULL;
	char *buf = NULL;
	uint64_t total = 0;
	int fd, rc;
	if ((rc = open_chunk(&fd, &st, s, h, NULL)) < 0)
		return rc;
	udr_hash_tohex(hex, h);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if ((flags & UDR_GET_VERIFY) && (rc = udr_hasher_new(&hs)) < 0)
		goto done;
	if (!(buf = malloc(IO_BUFSZ))) {
		rc = udr__error_oom();
		goto done;
	}
	for (;;) {
		ssize_t n = UDR_IO->read(fd, buf, IO_BUFSZ);
		if (n < 0) {
			rc = udr__error_io(errno, "read of chunk %s failed", hex);
			goto done;
		}
		if (n == 0)
			break;
		if (hs)
			udr_hasher_update(hs, buf, (size_t)n);
		if ((rc = udr__write_all(outfd, buf, (size_t)n, "output")) < 0)
			goto done;
		total += (uint64_t)n;
	}
	if (total != (uint64_t)st.st_size) {
		rc = udr__error_set(UDR_ECORRUPT, "chunk %s: file changed size while read", hex);
		goto done;
	}
	if (hs) {
		udr_hash actual;
		udr_hasher_final(hs, &actual);
		if (!udr_hash_equal(&actual, h)) {
			char ahex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(ahex, &actual);
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: its content hashes to %s", hex, ahex);
		}
	}
done:
	UDR_IO->close(fd);
	udr_hasher_free(hs);
	free(buf);
	return rc;
}

int udr_store_get_file(udr_store *s, const udr_hash *h, const char *path, unsigned int flags)
{
	char *tmp;
	size_t n;
	int fd, rc;
	if (!s || !h || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_get_file");
	n = strlen(path) + 48;
	if (!(tmp = malloc(n)))
		return udr__error_oom();
	snprintf(tmp, n, "%s.udr-tmp-%ld-%lld", path, (long)getpid(), (long long)udr__now_ms());
	fd = UDR_IO->open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		rc = udr__error_os(errno, "cannot create output file %s", tmp);
		free(tmp);
		return rc == UDR_ENOTFOUND ? udr__error_set(UDR_EIO, "%s", udr_error_last()->message) : rc;
	}
	rc = udr_store_get_fd(s, h, fd, flags);
	if (UDR_IO->close(fd) < 0 && rc == 0)
		rc = udr__error_io(errno, "close of %s failed", tmp);
	if (rc == 0 && UDR_IO->rename(tmp, path) < 0)
		rc = udr__error_io(errno, "cannot rename output file to %s", path);
	if (rc < 0)
		UDR_IO->unlink(tmp);
	free(tmp);
	return rc;
}

int udr_store_exists(udr_store *s, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct stat st;
	char *p;
	int rc;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	if (!(p = chunk_path(s, h, hex)))
		return UDR_ENOMEM;
	if (UDR_IO->stat(p, &st) == 0)
		rc = S_ISREG(st.st_mode) ? 1 : 0;
	else if (errno == ENOENT || errno == ENOTDIR)
		rc = 0;
	else
		rc = udr__error_io(errno, "cannot stat chunk %s", hex);
	free(p);
	return rc;
}

int udr_store_size(uint64_t *out, udr_store *s, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct stat st;
	char *p;
	int rc = 0;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_size");
	if (!(p = chunk_path(s, h, hex)))
		return UDR_ENOMEM;
	if (UDR_IO->stat(p, &st) == 0) {
		if (S_ISREG(st.st_mode))
			*out = (uint64_t)st.st_size;
		else
			rc = udr__error_set(UDR_ECORRUPT, "chunk %s: not a regular file", hex);
	} else if (errno == ENOENT || errno == ENOTDIR) {
		rc = udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	} else {
		rc = udr__error_io(errno, "cannot stat chunk %s", hex);
	}
	free(p);
	return rc;
}

int udr_store_local_path(char **out, udr_store *s, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	struct stat st;
	char *p;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_local_path");
	if (!(p = chunk_path(s, h, hex)))
		return UDR_ENOMEM;
	if (UDR_IO->stat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = errno;
		free(p);
		if (err == ENOENT || err == ENOTDIR || err == 0)
			return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		return udr__error_io(err, "cannot stat chunk %s", hex);
	}
	*out = p;
	return 0;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/*
 * Walk chunks/ab/cd/<hash>.  For each well-formed chunk name call visit;
 * for anything else under the fan-out call stray (may be NULL).
 */
typedef int (*walk_visit)(const udr_hash *h, const char *path, void *payload);
typedef int (*walk_stray)(const char *path, void *payload);

static int walk_dir(const char *dir, int level, const char *prefix, walk_visit visit, walk_stray stray,
                    void *payload)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", dir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		char *p;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (level == 0 && (strcmp(name, "tmp") == 0 || strcmp(name, "config.json") == 0))
			continue;
		if (!(p = udr__path_join(dir, name))) {
			rc = UDR_ENOMEM;
			break;
		}
		if (level < 2 && strlen(name) == 2 && is_hex(name, 2)) {
			char pre[5];
			snprintf(pre, sizeof(pre), "%s%s", prefix, name);
			rc = walk_dir(p, level + 1, pre, visit, stray, payload);
		} else if (level == 2 && strlen(name) == UDR_HASH_HEXSIZE && is_hex(name, UDR_HASH_HEXSIZE) &&
		           strncmp(name, prefix, 4) == 0) {
			udr_hash h;
			udr_hash_fromhex(&h, name);
			rc = visit(&h, p, payload);
		} else if (stray) {
			rc = stray(p, payload);
		}
		free(p);
	}
	closedir(d);
	return rc;
}

struct foreach_ctx {
	udr_store_foreach_cb cb;
	void *payload;
};

static int foreach_visit(const udr_hash *h, const char *path, void *payload)
{
	struct foreach_ctx *c = payload;
	(void)path;
	return c->cb(h, c->payload);
}

int udr_store_foreach(udr_store *s, udr_store_foreach_cb cb, void *payload)
{
	struct foreach_ctx c = {cb, payload};
	if (!s || !cb)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_foreach");
	return walk_dir(s->path, 0, "", foreach_visit, NULL, &c);
}

struct fsck_ctx {
	udr_check_stats *stats;
	udr_problem_cb cb;
	void *payload;
	char *buf;
	int stop;
};

static int report(struct fsck_ctx *c, int code, const char *object, const char *path, const char *fmt, ...)
	UDR__PRINTF(5, 6);

static int report(struct fsck_ctx *c, int code, const char *object, const char *path, const char *fmt, ...)
{
	char msg[1024];
	udr_problem p;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->stats->problems++;
	p.code = code;
	p.object = object;
	p.path = path;
	p.message = msg;
	if (c->cb && c->cb(&p, c->payload) != 0)
		return c->stop = 1;
	return 0;
}

static int fsck_visit(const udr_hash *h, const char *path, void *payload)
{
	struct fsck_ctx *c = payload;
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hasher *hs;
	int fd, rc = 0;
	udr_hash_tohex(hex, h);
	c->stats->objects++;
	fd = UDR_IO->open(path, O_RDONLY, 0);
	if (fd < 0)
		return report(c, UDR_EIO, hex, path, "cannot open chunk: %s", strerror(errno));
	if ((rc = udr_hasher_new(&hs)) < 0) {
		UDR_IO->close(fd);
		return rc;
	}
	for (;;) {
		ssize_t n = UDR_IO->read(fd, c->buf, IO_BUFSZ);
		if (n < 0) {
			rc = report(c, UDR_EIO, hex, path, "read failed: %s", strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		c->stats->bytes += (uint64_t)n;
		udr_hasher_update(hs, c->buf, (size_t)n);
	}
	{
		udr_hash actual;
		udr_hasher_final(hs, &actual);
		if (!udr_hash_equal(&actual, h)) {
			char ahex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(ahex, &actual);
			rc = report(c, UDR_ECORRUPT, hex, path, "corrupt chunk: content hashes to %s", ahex);
		}
	}
done:
	udr_hasher_free(hs);
	UDR_IO->close(fd);
	return rc;
}

static int fsck_stray(const char *path, void *payload)
{
	struct fsck_ctx *c = payload;
	return report(c, UDR_ECORRUPT, path, path, "stray file in chunk store (not a chunk name)");
}

int udr_store_fsck(udr_check_stats *stats, udr_store *s, udr_problem_cb cb, void *payload)
{
	udr_check_stats local = {0, 0, 0, 0};
	struct fsck_ctx c;
	int rc;
	if (!s)
		return udr__error_set(UDR_EINVAL, "invalid argument: store is NULL");
	c.stats = stats ? stats : &local;
	memset(c.stats, 0, sizeof(*c.stats));
	c.cb = cb;
	c.payload = payload;
	c.stop = 0;
	if ((rc = udr__tmp_clean(s->tmpdir, &c.stats->temp_removed)) < 0)
		return rc;
	if (!(c.buf = malloc(IO_BUFSZ)))
		return udr__error_oom();
	rc = walk_dir(s->path, 0, "", fsck_visit, fsck_stray, &c);
	free(c.buf);
	if (rc < 0)
		return rc;
	if (c.stats->problems)
		return udr__error_set(UDR_ECORRUPT, "chunk store %s: %llu problem(s) found", s->path,
		                      (unsigned long long)c.stats->problems);
	return 0;
}
