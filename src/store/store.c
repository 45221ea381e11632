/*
 * store.c - the content-addressed chunk store: open and config, the public
 * put/get/exists API over the object kinds (object.c) and the put engine
 * (ingest.c), walking, fsck and stats.  Reads never lock.
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
#include <zstd.h>

#include "util/util.h"
#include "store/store_internal.h"

/* Defaults, chosen by measurement (docs/ARCHITECTURE.md, "Chunking"). */
#define DEF_MIN ((uint32_t)32 << 10)
#define DEF_AVG ((uint32_t)128 << 10)
#define DEF_MAX ((uint32_t)512 << 10)
#define DEF_LEVEL 3
#define DEF_DEPTH 50

int udr__ingest(udr_hash *out, udr_store *s, int fd, const void *mem, size_t memlen, const udr_put_options *o,
                uint64_t *repaired);

static int resolve_config(udr_store_config *c, const udr_store_config *in)
{
	udr_store_config def = UDR_STORE_CONFIG_INIT;
	udr__cdc probe;
	*c = in ? *in : def;
	if (c->version != UDR_STORE_CONFIG_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown store config version %u", c->version);
	if (c->format != 1 && c->format != 2)
		return udr__error_set(UDR_EINVAL, "unknown store format %d (1 or 2)", c->format);
	if (!c->chunk_avg)
		c->chunk_avg = DEF_AVG;
	if (!c->chunk_min)
		c->chunk_min = c->chunk_avg / 4 < DEF_MIN ? c->chunk_avg / 4 : DEF_MIN;
	if (!c->chunk_max)
		c->chunk_max = c->chunk_avg * 4;
	if (c->compression_level < 0)
		c->compression_level = DEF_LEVEL;
	if (!c->delta_max_depth)
		c->delta_max_depth = DEF_DEPTH;
	if (c->compression_level > 19 || c->delta_max_depth < 1 || c->delta_max_depth > UDR__DELTA_DEPTH_HARD_MAX)
		return udr__error_set(UDR_EINVAL, "invalid store settings: compression level %d (0..19), delta depth %d "
		                      "(1..%d)", c->compression_level, c->delta_max_depth, UDR__DELTA_DEPTH_HARD_MAX);
	if (c->format == 2 && (c->chunk_max > UDR__PIECE_HARD_MAX ||
	                       udr__cdc_init(&probe, c->chunk_min, c->chunk_avg, c->chunk_max) < 0))
		return udr__error_set(UDR_EINVAL,
		                      "invalid chunk sizes min %u avg %u max %u: need 64 <= min <= avg <= max <= 64 MiB, "
		                      "avg a power of two", c->chunk_min, c->chunk_avg, c->chunk_max);
	return 0;
}

static int write_config_mode(const char *path, const char *tmpdir, const udr_store_config *c,
                             enum udr__publish_mode mode);

static int write_config(const char *path, const char *tmpdir, const udr_store_config *c)
{
	return write_config_mode(path, tmpdir, c, UDR__PUBLISH_NEW);
}

static int write_config_mode(const char *path, const char *tmpdir, const udr_store_config *c,
                             enum udr__publish_mode mode)
{
	char *cfg = udr__path_join(path, "config.json");
	char text[512];
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	if (c->format == 1)
		snprintf(text, sizeof(text),
		         "{\"format\":1,\"kind\":\"udr-chunk-store\",\"layout\":\"fanout-2-2\",\"sealed\":true}");
	else
		snprintf(text, sizeof(text),
		         "{\"format\":2,\"kind\":\"udr-chunk-store\",\"layout\":\"fanout-2-2\","
		         "\"chunking\":{\"algorithm\":\"fastcdc-2020\",\"min\":%u,\"avg\":%u,\"max\":%u},"
		         "\"compression\":{\"algorithm\":\"zstd\",\"level\":%d},"
		         "\"delta\":{\"max_depth\":%d},\"sealed\":true}",
		         c->chunk_min, c->chunk_avg, c->chunk_max, c->compression_level, c->delta_max_depth);
	rc = udr__config_write(tmpdir, cfg, text, mode);
	free(cfg);
	return rc < 0 ? rc : 0;
}

int udr_store_upgrade(const char *path, const udr_store_config *cfgin)
{
	udr_store_config cfg;
	udr_store *s = NULL;
	int rc;
	if (cfgin && cfgin->format != 2)
		return udr__error_set(UDR_EINVAL, "a chunk store can only be upgraded to format 2");
	if ((rc = resolve_config(&cfg, cfgin)) < 0)
		return rc;
	if ((rc = udr_store_open(&s, path, 0)) < 0)
		return rc;
	if (s->format == 2) {
		udr_store_close(s);
		if (cfgin)
			return udr__error_set(UDR_EINVAL, "chunk store %s is already format 2: its settings are fixed at "
			                      "creation", path);
		return 0;
	}
	/* rename over config.json: readers see the old or the new config */
	rc = write_config_mode(s->path, s->tmpdir, &cfg, UDR__PUBLISH_REPLACE);
	udr_store_close(s);
	return rc;
}

int udr__check_config(const char *dir, const char *kind, int max_format)
{
	char *cfg = udr__path_join(dir, "config.json");
	char *text = NULL;
	json_t *root;
	json_error_t jerr;
	size_t len;
	int rc, sealed;
	if (!cfg)
		return UDR_ENOMEM;
	rc = udr__read_file(&text, &len, cfg, 1 << 16);
	if (rc < 0) {
		if (rc == UDR_ENOTFOUND)
			udr__error_set(UDR_ENOTFOUND, "not a %s: %s is missing", kind, cfg);
		free(cfg);
		return rc;
	}
	/* configs written since format-2 records are sealed; an unsealed one
	 * is an older config, unless it says it was sealed */
	if ((sealed = udr__unseal(text, len, cfg, "config")) < 0) {
		free(text);
		free(cfg);
		return sealed;
	}
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root && !sealed && json_object_get(root, "sealed")) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: its check is missing or damaged", cfg);
	} else if (!root || !json_is_object(root) || !json_is_integer(json_object_get(root, "format")) ||
	    !json_is_string(json_object_get(root, "kind")) ||
	    strcmp(json_string_value(json_object_get(root, "kind")), kind) != 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: not a %s config", cfg, kind);
	} else if (json_integer_value(json_object_get(root, "format")) < 1 ||
	           json_integer_value(json_object_get(root, "format")) > max_format) {
		rc = udr__error_set(UDR_ECORRUPT, "%s: format %lld is not supported by this udr (max %d)", cfg,
		                    (long long)json_integer_value(json_object_get(root, "format")), max_format);
	} else {
		rc = (int)json_integer_value(json_object_get(root, "format"));
	}
	json_decref(root);
	free(cfg);
	return rc;
}

/* Read the store's settings from its config (format already checked). */
static int load_settings(udr_store *s, int format)
{
	char *cfg = udr__path_join(s->path, "config.json"), *text = NULL;
	json_t *root = NULL, *ch, *co, *de;
	udr_store_config c = UDR_STORE_CONFIG_INIT;
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	s->format = format;
	if (format == 1) {
		free(cfg);
		return 0;
	}
	if ((rc = udr__read_file(&text, NULL, cfg, 1 << 16)) < 0)
		goto done;
	root = json_loads(text, 0, NULL);
	ch = json_object_get(root, "chunking");
	co = json_object_get(root, "compression");
	de = json_object_get(root, "delta");
	if (!json_is_integer(json_object_get(ch, "min")) || !json_is_integer(json_object_get(ch, "avg")) ||
	    !json_is_integer(json_object_get(ch, "max")) || !json_is_integer(json_object_get(co, "level")) ||
	    !json_is_integer(json_object_get(de, "max_depth"))) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: settings missing", cfg);
		goto done;
	}
	c.chunk_min = (uint32_t)json_integer_value(json_object_get(ch, "min"));
	c.chunk_avg = (uint32_t)json_integer_value(json_object_get(ch, "avg"));
	c.chunk_max = (uint32_t)json_integer_value(json_object_get(ch, "max"));
	c.compression_level = (int)json_integer_value(json_object_get(co, "level"));
	c.delta_max_depth = (int)json_integer_value(json_object_get(de, "max_depth"));
	if ((rc = resolve_config(&c, &c)) < 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: %s", cfg, udr_error_last()->message);
		goto done;
	}
	udr__cdc_init(&s->cdc, c.chunk_min, c.chunk_avg, c.chunk_max);
	s->threshold = c.chunk_max;
	s->level = c.compression_level;
	s->max_depth = c.delta_max_depth;
	rc = 0;
done:
	json_decref(root);
	free(text);
	free(cfg);
	return rc;
}

int udr_store_open_ext(udr_store **out, const char *path, unsigned int flags, const udr_store_config *cfgin)
{
	udr_store *s;
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	struct stat st;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty chunk store path");
	*out = NULL;
	if ((flags & UDR_OPEN_CREATE) && (rc = resolve_config(&cfg, cfgin)) < 0)
		return rc;
	if (!(s = calloc(1, sizeof(*s))) || !(s->path = strdup(path))) {
		free(s);
		return udr__error_oom();
	}
	s->pathlen = strlen(s->path);
	while (s->pathlen > 1 && s->path[s->pathlen - 1] == '/')
		s->path[--s->pathlen] = '\0';
	{
		const char *env = getenv("UDR_THREADS");
		long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
		s->threads = n < 1 ? 1 : n > 16 ? 16 : (int)n;
	}
	if (!(s->tmpdir = udr__path_join(s->path, "tmp"))) {
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
	rc = udr__check_config(s->path, "udr-chunk-store", UDR__STORE_FORMAT_MAX);
	if (rc == UDR_ENOTFOUND && (flags & UDR_OPEN_CREATE)) {
		udr_error_clear();
		if ((rc = udr__mkdir(s->tmpdir, NULL)) < 0 || (rc = write_config(s->path, s->tmpdir, &cfg)) < 0 ||
		    (rc = udr__fsync_parent(s->path)) < 0)
			goto fail;
		rc = udr__check_config(s->path, "udr-chunk-store", UDR__STORE_FORMAT_MAX);
	}
	if (rc < 0)
		goto fail;
	if ((rc = load_settings(s, rc)) < 0 || (rc = udr__mkdir(s->tmpdir, NULL)) < 0)
		goto fail;
	s->fanout_known = calloc(65536 / 8, 1); /* a cache: NULL only costs mkdirs */
	*out = s;
	return 0;
fail:
	udr_store_close(s);
	return rc;
}

int udr_store_open(udr_store **out, const char *path, unsigned int flags)
{
	return udr_store_open_ext(out, path, flags, NULL);
}

void udr_store_get_config(udr_store_config *out, const udr_store *s)
{
	udr_store_config def = UDR_STORE_CONFIG_INIT;
	*out = def;
	out->format = s->format;
	if (s->format == 2) {
		out->chunk_min = (uint32_t)s->cdc.min;
		out->chunk_avg = (uint32_t)s->cdc.avg;
		out->chunk_max = (uint32_t)s->cdc.max;
		out->compression_level = s->level;
		out->delta_max_depth = s->max_depth;
	} else {
		out->compression_level = 0;
		out->delta_max_depth = 1;
	}
}

void udr_store_close(udr_store *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->tmpdir);
	free(s->fanout_known);
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

static int hexdigit(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

int udr__store_fanout(const udr_store *s, const char *final, bool sync)
{
	char dir[4096];
	size_t n = s->pathlen + 3;
	const char *hx = final + s->pathlen + 1; /* "ab/cd/..." */
	unsigned idx = (unsigned)(hexdigit(hx[0]) << 12 | hexdigit(hx[1]) << 8 | hexdigit(hx[3]) << 4 | hexdigit(hx[4]));
	bool created, made = false;
	int rc;
	if (s->fanout_known && (__atomic_load_n(&s->fanout_known[idx >> 3], __ATOMIC_ACQUIRE) & (1u << (idx & 7))))
		return 0;
	if (s->pathlen + 7 >= sizeof(dir))
		return udr__error_set(UDR_EINVAL, "chunk store path too long: %s", s->path);
	memcpy(dir, final, n);
	dir[n] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	made |= created;
	if (created && sync && (rc = udr__fsync_dir(s->path)) < 0)
		return rc;
	memcpy(dir, final, n + 3);
	dir[n + 3] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	made |= created;
	if (created && sync) {
		dir[n] = '\0';
		if ((rc = udr__fsync_dir(dir)) < 0)
			return rc;
	}
	/* Only directories made durable (or found existing) are remembered; one
	 * created unsynced waits for the caller's syncfs. */
	if (s->fanout_known && (sync || !made))
		__atomic_fetch_or(&s->fanout_known[idx >> 3], (unsigned char)(1u << (idx & 7)), __ATOMIC_RELEASE);
	return 0;
}

int udr_store_put(udr_hash *out, udr_store *s, const void *data, size_t len)
{
	if (!out || !s || (!data && len))
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put");
	return udr__ingest(out, s, -1, data ? data : "", len, NULL, NULL);
}

static int put_fd(udr_hash *out, udr_store *s, int fd, const udr_put_options *o, uint64_t *repaired)
{
	if (!out || !s || fd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put_fd");
	if (o && o->version != UDR_PUT_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown put options version %u", o->version);
	return udr__ingest(out, s, fd, NULL, 0, o, repaired);
}

int udr_store_put_fd_ext(udr_hash *out, udr_store *s, int fd, const udr_put_options *o)
{
	return put_fd(out, s, fd, o, NULL);
}

int udr_store_put_fd(udr_hash *out, udr_store *s, int fd)
{
	return udr_store_put_fd_ext(out, s, fd, NULL);
}

static int put_file(udr_hash *out, udr_store *s, const char *path, const udr_put_options *o, uint64_t *repaired)
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
	rc = put_fd(out, s, fd, o, repaired);
	UDR_IO->close(fd);
	return rc;
}

int udr_store_put_file_ext(udr_hash *out, udr_store *s, const char *path, const udr_put_options *o)
{
	return put_file(out, s, path, o, NULL);
}

int udr_store_repair_file(udr_hash *out, uint64_t *repaired, udr_store *s, const char *path)
{
	uint64_t n = 0;
	int rc = put_file(out, s, path, NULL, &n);
	if (repaired)
		*repaired = n;
	return rc;
}

int udr_store_put_file(udr_hash *out, udr_store *s, const char *path)
{
	return udr_store_put_file_ext(out, s, path, NULL);
}

/* ---- reads ---------------------------------------------------------------- */

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static int mem_sink(const void *d, size_t n, void *payload)
{
	struct membuf *m = payload;
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		unsigned char *q;
		while (cap < m->len + n)
			cap *= 2;
		if (!(q = realloc(m->p, cap)))
			return udr__error_oom();
		m->p = q;
		m->cap = cap;
	}
	memcpy(m->p + m->len, d, n);
	m->len += n;
	return 0;
}

/* Reads verify: every piece is rehashed before it is used, and the whole
 * content at the end; nothing is returned for damaged content. */
static int get_impl(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	struct membuf m = {NULL, 0, 0};
	enum udr__kind kind;
	struct stat st;
	uint64_t size;
	int rc;
	if (!out || !out_len || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: output, store or hash is NULL");
	if ((rc = udr__obj_locate(&kind, &st, NULL, s, h)) < 0)
		return rc;
	if (kind == UDR__K_RAW) {
		/* one read into the buffer returned, then the hash */
		unsigned char *d = NULL;
		size_t dl = 0;
		if ((rc = udr__raw_load(&d, &dl, s, h, SIZE_MAX / 2, true)) < 0)
			return rc;
		*out = d;
		*out_len = dl;
		return 0;
	}
	if ((rc = udr__content_size(&size, s, h)) < 0)
		return rc;
	if (size >= SIZE_MAX / 2)
		return udr__error_oom();
	/* the size comes from a header: grow towards it, never trust it for one
	 * big allocation */
	m.cap = (size_t)(size < ((uint64_t)64 << 20) ? size : ((uint64_t)64 << 20)) + 1;
	if (!(m.p = malloc(m.cap)))
		return udr__error_oom();
	rc = udr__content_stream(s, h, true, mem_sink, &m);
	if (rc == 0 && m.len != size) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		rc = udr__error_set(UDR_ECORRUPT, "chunk %s: decoded %zu bytes, expected %llu", hex, m.len,
		                    (unsigned long long)size);
	}
	if (rc < 0) {
		free(m.p);
		return rc;
	}
	*out = m.p;
	*out_len = m.len;
	return 0;
}

int udr_store_get(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h);
}

int udr_store_get_verified(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h);
}

static int count_sink(const void *d, size_t n, void *payload)
{
	(void)d;
	*(uint64_t *)payload += n;
	return 0;
}

int udr_store_verify(udr_store *s, const udr_hash *h)
{
	uint64_t n = 0;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	return udr__content_stream(s, h, true, count_sink, &n);
}

static int fd_sink(const void *d, size_t n, void *payload)
{
	return udr__write_all(*(int *)payload, d, n, "output");
}

int udr_store_get_fd(udr_store *s, const udr_hash *h, int outfd, unsigned int flags)
{
	if (!s || !h || outfd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_get_fd");
	if ((flags & UDR_GET_VERIFY) && (flags & UDR_GET_NOVERIFY))
		return udr__error_set(UDR_EINVAL, "invalid argument: UDR_GET_VERIFY and UDR_GET_NOVERIFY together");
	return udr__content_stream(s, h, (flags & UDR_GET_NOVERIFY) == 0, fd_sink, &outfd);
}

int udr_store_get_file(udr_store *s, const udr_hash *h, const char *path, unsigned int flags)
{
	char *tmp;
	size_t n;
	int fd, rc;
	if (!s || !h || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_get_file");
	if ((rc = udr_store_exists(s, h)) <= 0) {
		if (rc == 0) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, h);
			rc = udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		}
		return rc;
	}
	{
		/* A device, pipe or socket (/dev/null, /dev/stdout, a fifo) is
		 * written in place: renaming over it would replace the node. */
		struct stat st;
		if (UDR_IO->stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (S_ISDIR(st.st_mode))
				return udr__error_set(UDR_EINVAL, "output %s is a directory", path);
			if ((fd = UDR_IO->open(path, O_WRONLY, 0)) < 0)
				return udr__error_io(errno, "cannot open output %s", path);
			rc = udr_store_get_fd(s, h, fd, flags);
			if (UDR_IO->close(fd) < 0 && rc == 0)
				rc = udr__error_io(errno, "close of %s failed", path);
			return rc;
		}
	}
	n = strlen(path) + 48;
	if (!(tmp = malloc(n)))
		return udr__error_oom();
	snprintf(tmp, n, "%s.udr-tmp-%ld-%lld", path, (long)getpid(), (long long)udr__now_ms());
	fd = UDR_IO->open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		rc = udr__error_io(errno, "cannot create output file %s", tmp);
		free(tmp);
		return rc;
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
	enum udr__kind kind;
	int rc;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	if ((rc = udr__obj_locate(&kind, NULL, NULL, s, h)) < 0)
		return rc;
	return kind != UDR__K_NONE;
}

int udr_store_size(uint64_t *out, udr_store *s, const udr_hash *h)
{
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_size");
	return udr__content_size(out, s, h);
}

int udr_store_local_path(char **out, udr_store *s, const udr_hash *h)
{
	enum udr__kind kind;
	char *p = NULL;
	int rc;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_local_path");
	if ((rc = udr__obj_locate(&kind, NULL, &p, s, h)) < 0)
		return rc;
	if (kind == UDR__K_NONE) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	}
	if (kind != UDR__K_RAW) {
		free(p);
		return 1;
	}
	*out = p;
	return 0;
}

/* ---- walking ---------------------------------------------------------------- */

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The kind an object file name stands for, or UDR__K_NONE for a stray. */
static enum udr__kind name_kind(const char *name, const char *prefix)
{
	size_t n = strlen(name);
	if (n < UDR_HASH_HEXSIZE || !is_hex(name, UDR_HASH_HEXSIZE) || strncmp(name, prefix, 4) != 0)
		return UDR__K_NONE;
	if (n == UDR_HASH_HEXSIZE)
		return UDR__K_RAW;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".zst") == 0)
		return UDR__K_ZST;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".m") == 0)
		return UDR__K_MANIFEST;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".d") == 0)
		return UDR__K_DELTA;
	return UDR__K_NONE;
}

typedef int (*walk_visit)(const udr_hash *h, enum udr__kind kind, const char *path, void *payload);
typedef int (*walk_stray)(const char *path, void *payload);

static int walk_dir(const char *dir, int level, const char *prefix, walk_visit visit, walk_stray stray, void *payload)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", dir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		enum udr__kind kind;
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
			char pre[8];
			snprintf(pre, sizeof(pre), "%.2s%.2s", prefix, name);
			rc = walk_dir(p, level + 1, pre, visit, stray, payload);
		} else if (level == 2 && (kind = name_kind(name, prefix)) != UDR__K_NONE) {
			udr_hash h;
			char hex[UDR_HASH_HEXSIZE + 1];
			memcpy(hex, name, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = '\0';
			udr_hash_fromhex(&h, hex);
			rc = visit(&h, kind, p, payload);
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

static int foreach_visit(const udr_hash *h, enum udr__kind kind, const char *path, void *payload)
{
	struct foreach_ctx *c = payload;
	(void)kind;
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

/* ---- fsck ----------------------------------------------------------------- */

struct fsck_ctx {
	udr_store *s;
	udr__bcache *cache; /* decoded delta bases, shared by the whole walk */
	udr_check_stats *stats;
	udr_problem_cb cb;
	void *payload;
};

#define report(c, code, object, path, ...) \
	udr__problem((c)->stats, (c)->cb, (c)->payload, code, object, path, __VA_ARGS__)

static int fsck_visit(const udr_hash *h, enum udr__kind kind, const char *path, void *payload)
{
	struct fsck_ctx *c = payload;
	char hex[UDR_HASH_HEXSIZE + 1];
	struct stat st;
	uint64_t n = 0;
	int rc;
	udr_hash_tohex(hex, h);
	c->stats->objects++;
	/* Every object decodes to bytes that hash to its name; for a manifest
	 * that covers each of its pieces and the whole content. */
	if (kind == UDR__K_RAW || kind == UDR__K_MANIFEST) {
		enum udr__kind found;
		if ((rc = udr__obj_locate(&found, NULL, NULL, c->s, h)) < 0)
			return report(c, rc, hex, path, "%s", udr_error_last()->message);
		if (found != kind)
			return report(c, UDR_ECORRUPT, hex, path, "chunk %s is stored twice, in different forms", hex);
	}
	if (kind == UDR__K_RAW || kind == UDR__K_MANIFEST) {
		rc = udr__content_stream(c->s, h, true, count_sink, &n);
	} else {
		unsigned char *d = NULL;
		size_t dl;
		udr__bcache_budget(c->cache, udr__decode_budget(c->s, 0));
		rc = udr__piece_load_c(&d, &dl, NULL, c->s, h, UINT64_MAX, true, c->cache);
		n = dl;
		free(d);
	}
	if (rc == UDR_ENOMEM || rc == UDR_EIO)
		return report(c, rc, hex, path, "%s", udr_error_last()->message);
	if (rc < 0)
		return report(c, UDR_ECORRUPT, hex, path, "%s", udr_error_last()->message);
	/* the object's size on disk, as udr_store_stats counts stored_bytes
	 * (the bytes rehashed count a piece twice: alone and in its content) */
	if (UDR_IO->stat(path, &st) == 0)
		c->stats->bytes += (uint64_t)st.st_size;
	return 0;
}

static int fsck_stray(const char *path, void *payload)
{
	struct fsck_ctx *c = payload;
	return report(c, UDR_ECORRUPT, path, path, "stray file in chunk store (not an object name)");
}

int udr_store_fsck(udr_check_stats *stats, udr_store *s, udr_problem_cb cb, void *payload)
{
	udr_check_stats local = {0, 0, 0, 0};
	struct fsck_ctx c;
	int rc;
	if (!s)
		return udr__error_set(UDR_EINVAL, "invalid argument: store is NULL");
	c.s = s;
	c.stats = stats ? stats : &local;
	memset(c.stats, 0, sizeof(*c.stats));
	c.cb = cb;
	c.payload = payload;
	if ((rc = udr__tmp_clean(s->tmpdir, &c.stats->temp_removed)) < 0)
		return rc;
	if (!(c.cache = udr__bcache_new(UDR__BCACHE_MAX, 0)))
		return UDR_ENOMEM;
	rc = walk_dir(s->path, 0, "", fsck_visit, fsck_stray, &c);
	udr__bcache_free(c.cache);
	if (rc < 0)
		return rc;
	if (c.stats->problems)
		return udr__error_set(UDR_ECORRUPT, "chunk store %s: %llu problem(s) found", s->path,
		                      (unsigned long long)c.stats->problems);
	return 0;
}

/* ---- stats ---------------------------------------------------------------- */

struct hset {
	udr_hash *v;
	size_t n, cap;
};

static int hset_add(struct hset *hs, const udr_hash *h)
{
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 1024;
		udr_hash *p = realloc(hs->v, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		hs->v = p;
		hs->cap = cap;
	}
	hs->v[hs->n++] = *h;
	return 0;
}

static int hcmp(const void *a, const void *b)
{
	return memcmp(a, b, UDR_HASH_SIZE);
}

struct sized {
	udr_hash h;
	uint64_t size;
};

struct stats_ctx {
	udr_store *s;
	udr_store_stats *st;
	struct sized *pieces; /* every piece-kind object, with its size */
	size_t npieces, cap_pieces;
	struct hset referenced; /* pieces named by manifests */
};

static int stats_visit(const udr_hash *h, enum udr__kind kind, const char *path, void *payload)
{
	struct stats_ctx *c = payload;
	struct stat st;
	uint64_t size = 0, disk = 0;
	int rc;
	if (UDR_IO->stat(path, &st) == 0)
		disk = (uint64_t)st.st_size;
	c->st->stored_bytes += disk;
	if (kind == UDR__K_MANIFEST) {
		udr__manifest m;
		if ((rc = udr__manifest_load(&m, c->s, h)) < 0)
			return rc;
		c->st->manifests++;
		c->st->contents++;
		c->st->logical_bytes += m.total;
		rc = 0;
		for (uint64_t i = 0; i < m.npieces && rc == 0; i++)
			rc = hset_add(&c->referenced, &m.pieces[i].hash);
		udr__manifest_free(&m);
		return rc;
	}
	if ((rc = udr__content_size(&size, c->s, h)) < 0)
		return rc;
	c->st->pieces++;
	c->st->unique_bytes += size;
	c->st->after_delta_bytes += kind == UDR__K_DELTA ? disk : size;
	c->st->piece_bytes += disk;
	if (kind == UDR__K_ZST)
		c->st->compressed++;
	if (kind == UDR__K_DELTA)
		c->st->deltas++;
	if (c->npieces == c->cap_pieces) {
		size_t cap = c->cap_pieces ? c->cap_pieces * 2 : 1024;
		struct sized *p = realloc(c->pieces, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		c->pieces = p;
		c->cap_pieces = cap;
	}
	c->pieces[c->npieces].h = *h;
	c->pieces[c->npieces].size = size;
	c->npieces++;
	return 0;
}

int udr_store_stats_get(udr_store_stats *out, udr_store *s)
{
	struct stats_ctx c;
	int rc;
	if (!out || !s)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_stats_get");
	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.st = out;
	rc = walk_dir(s->path, 0, "", stats_visit, NULL, &c);
	if (rc == 0 && c.referenced.n)
		qsort(c.referenced.v, c.referenced.n, sizeof(udr_hash), hcmp);
	/* a piece no manifest names is content of its own */
	for (size_t i = 0; rc == 0 && i < c.npieces; i++) {
		if (c.referenced.n && bsearch(&c.pieces[i].h, c.referenced.v, c.referenced.n, sizeof(udr_hash), hcmp))
			continue;
		out->contents++;
		out->logical_bytes += c.pieces[i].size;
	}
	free(c.pieces);
	free(c.referenced.v);
	return rc < 0 ? rc : 0;
}
