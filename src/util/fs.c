/*
 * fs.c - durable file helpers over the I/O table: temp files held under an
 * flock, the publish step of the durability protocol (fsync, link or
 * rename, directory fsync), small-file reads, paths, time and buffers.
 */
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

char *udr__path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n;
	char *p;
	if (!udr__add_ok(la, lb, &n) || !udr__add_ok(n, 2, &n)) {
		udr__error_oom();
		return NULL;
	}
	p = malloc(n);
	if (!p) {
		udr__error_oom();
		return NULL;
	}
	memcpy(p, a, la);
	if (la && a[la - 1] != '/')
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

int udr__mkdir(const char *path, bool *created)
{
	if (created)
		*created = false;
	if (UDR_IO->mkdir(path, 0755) == 0) {
		if (created)
			*created = true;
		return 0;
	}
	if (errno == EEXIST) {
		struct stat st;
		char target[256];
		ssize_t n;
		if (UDR_IO->stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && UDR_IO->stat(path, &st) != 0) {
			n = readlink(path, target, sizeof(target) - 1);
			target[n > 0 ? n : 0] = '\0';
			return udr__error_set(UDR_EIO, "cannot create directory %s: it is a dangling symbolic link "
			                      "(to %s, which does not exist)", path, n > 0 ? target : "?");
		}
		return udr__error_set(UDR_EIO, "cannot create directory %s: a file of that name exists", path);
	}
	return udr__error_os(errno, "cannot create directory %s", path);
}

int udr__mkdirs(const char *path)
{
	char *p = strdup(path);
	int rc = 0;
	if (!p)
		return udr__error_oom();
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		rc = udr__mkdir(p, NULL);
		*s = '/';
		if (rc < 0)
			goto out;
	}
	rc = udr__mkdir(p, NULL);
out:
	free(p);
	return rc;
}

int udr__fsync_dir(const char *dir)
{
	int fd = UDR_IO->open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return udr__error_io(errno, "cannot open directory %s for fsync", dir);
	if (UDR_IO->fsync(fd) < 0) {
		int err = errno;
		UDR_IO->close(fd);
		return udr__error_io(err, "fsync of directory %s failed", dir);
	}
	UDR_IO->close(fd);
	return 0;
}

int udr__fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int rc;
	if (!slash)
		return udr__fsync_dir(".");
	if (slash == path)
		return udr__fsync_dir("/");
	dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return udr__error_oom();
	rc = udr__fsync_dir(dir);
	free(dir);
	return rc;
}

int udr__read_full(int fd, void *buf, size_t len, size_t *got, const char *what)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = UDR_IO->read(fd, (char *)buf + off, len - off);
		if (n < 0)
			return udr__error_io(errno, "read of %s failed", what);
		if (n == 0)
			break;
		off += (size_t)n;
	}
	*got = off;
	return 0;
}

int udr__write_all(int fd, const void *data, size_t len, const char *what)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = UDR_IO->write(fd, p, len);
		if (n < 0)
			return udr__error_io(errno, "write to %s failed", what);
		if (n == 0)
			return udr__error_io(EIO, "write to %s made no progress", what);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int udr__read_file(char **out, size_t *out_len, const char *path, size_t max)
{
	int fd = UDR_IO->open(path, O_RDONLY, 0);
	struct stat st;
	char *buf;
	size_t got = 0;
	int rc;
	if (fd < 0)
		return udr__error_os(errno, "cannot open %s", path);
	if (UDR_IO->fstat(fd, &st) < 0) {
		rc = udr__error_io(errno, "cannot stat %s", path);
		UDR_IO->close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		UDR_IO->close(fd);
		return udr__error_set(UDR_ECORRUPT, "%s: not a regular file of at most %zu bytes", path, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		UDR_IO->close(fd);
		return udr__error_oom();
	}
	rc = udr__read_full(fd, buf, (size_t)st.st_size, &got, path);
	UDR_IO->close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[got] = '\0';
	*out = buf;
	if (out_len)
		*out_len = got;
	return 0;
}

int udr__tmp_create(udr__tmp *t, const char *tmpdir)
{
	for (int attempt = 0; attempt < 16; attempt++) {
		uint64_t r;
		char name[64];
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (uint64_t)udr__now_ms() ^ ((uint64_t)attempt << 40) ^ (uint64_t)(uintptr_t)t;
		snprintf(name, sizeof(name), "%ld-%016llx.tmp", (long)getpid(), (unsigned long long)r);
		t->path = udr__path_join(tmpdir, name);
		if (!t->path)
			return UDR_ENOMEM;
		t->fd = UDR_IO->open(t->path, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (t->fd >= 0) {
			if (UDR_IO->flock(t->fd, LOCK_EX | LOCK_NB) < 0) {
				int err = errno;
				udr__tmp_discard(t);
				return udr__error_io(err, "cannot lock temp file in %s", tmpdir);
			}
			return 0;
		}
		if (errno != EEXIST) {
			int err = errno;
			free(t->path);
			t->path = NULL;
			t->fd = -1;
			return udr__error_io(err, "cannot create temp file in %s", tmpdir);
		}
		free(t->path);
		t->path = NULL;
	}
	t->fd = -1;
	return udr__error_set(UDR_EIO, "cannot create a unique temp file in %s", tmpdir);
}

void udr__tmp_close(udr__tmp *t)
{
	if (t->fd >= 0)
		UDR_IO->close(t->fd);
	t->fd = -1;
	free(t->path);
	t->path = NULL;
}

void udr__tmp_discard(udr__tmp *t)
{
	if (t->path)
		UDR_IO->unlink(t->path);
	udr__tmp_close(t);
}

int udr__tmp_publish(udr__tmp *t, const char *final, enum udr__publish_mode mode, bool sync)
{
	int rc = 0;
	if (sync && UDR_IO->fsync(t->fd) < 0) {
		rc = udr__error_io(errno, "fsync of temp file for %s failed", final);
		udr__tmp_discard(t);
		return rc;
	}
	if (mode == UDR__PUBLISH_NEW) {
		if (UDR_IO->link(t->path, final) < 0) {
			int err = errno;
			udr__tmp_discard(t);
			if (err == EEXIST)
				return 1;
			return udr__error_io(err, "cannot publish %s", final);
		}
		/* The final name holds the data; a failed unlink only leaves a
		 * temp file behind, which fsck removes. */
		udr__tmp_discard(t);
	} else {
		if (UDR_IO->rename(t->path, final) < 0) {
			int err = errno;
			udr__tmp_discard(t);
			return udr__error_io(err, "cannot publish %s", final);
		}
		udr__tmp_close(t);
	}
	if (sync)
		rc = udr__fsync_parent(final);
	return rc;
}

int udr__write_file_atomic(const char *tmpdir, const char *final, const void *data, size_t len,
                           enum udr__publish_mode mode, bool sync)
{
	udr__tmp t = {-1, NULL};
	int rc = udr__tmp_create(&t, tmpdir);
	if (rc < 0)
		return rc;
	rc = udr__write_all(t.fd, data, len, t.path);
	if (rc < 0) {
		udr__tmp_discard(&t);
		return rc;
	}
	return udr__tmp_publish(&t, final, mode, sync);
}

static bool owner_alive(const char *name)
{
	char *end;
	long pid = strtol(name, &end, 10);
	if (end == name || *end != '-' || pid <= 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int udr__cache_entry_regular(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : udr__error_io(errno, "cannot stat %s", path);
	if (S_ISREG(st.st_mode))
		return 1;
	if (S_ISDIR(st.st_mode) ? nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0
	                        : unlink(path) < 0 && errno != ENOENT)
		return udr__error_io(errno, "cannot remove %s (not a regular file, in the query cache)", path);
	return 0;
}

int udr__tmp_clean(const char *tmpdir, uint64_t *removed)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return udr__error_io(errno, "cannot list %s", tmpdir);
	}
	while ((e = readdir(d)) != NULL) {
		char *p;
		int fd;
		if (e->d_name[0] == '.')
			continue;
		p = udr__path_join(tmpdir, e->d_name);
		if (!p) {
			closedir(d);
			return UDR_ENOMEM;
		}
		/* A temp file's name starts with its creator's pid: a live
		 * creator may not have taken the lock yet, so it is left alone.
		 * (A reused pid only delays the cleanup.) */
		if (owner_alive(e->d_name)) {
			free(p);
			continue;
		}
		fd = UDR_IO->open(p, O_RDONLY, 0);
		if (fd >= 0) {
			/* A live writer holds the lock for the file's whole life. */
			if (UDR_IO->flock(fd, LOCK_EX | LOCK_NB) == 0) {
				if (UDR_IO->unlink(p) == 0 && removed)
					(*removed)++;
			}
			UDR_IO->close(fd);
		}
		free(p);
	}
	closedir(d);
	return 0;
}

int udr__problem(udr_check_stats *stats, udr_problem_cb cb, void *payload, int code, const char *object,
                 const char *path, const char *fmt, ...)
{
	char msg[1400];
	udr_problem p;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	stats->problems++;
	p.code = code;
	p.object = object;
	p.path = path ? path : "";
	p.message = msg;
	return cb && cb(&p, payload) != 0 ? 1 : 0;
}

int64_t udr__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t udr__mem_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t mem = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : (uint64_t)4 << 30;
	const char *files[] = {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");
		unsigned long long v;
		if (!f)
			continue;
		/* "max" (no limit) does not parse */
		if (fscanf(f, "%llu", &v) == 1 && v > 0 && (uint64_t)v < mem)
			mem = (uint64_t)v;
		fclose(f);
	}
	return mem;
}

void udr__format_time(char *out, size_t outsz, int64_t ms)
{
	/* floor division with no overflow ((ms - 999) / 1000 overflowed near
	 * INT64_MIN, and printed a year 292278994 for a time before all) */
	int64_t sec = ms / 1000;
	int frac = (int)(ms % 1000);
	time_t s;
	struct tm tm;
	if (frac < 0) {
		frac += 1000;
		sec--;
	}
	s = (time_t)sec;
	if (!gmtime_r(&s, &tm)) {
		snprintf(out, outsz, "%" PRId64 " ms", ms);
		return;
	}
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* n decimal digits at *p as a number, advancing *p; -1 unless n digits. */
static int fixed_digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* RFC 3339 / ISO 8601: YYYY-MM-DD, then optionally [Tt ]hh:mm[:ss[.fff...]]
 * and a zone Z, +hh:mm, -hh:mm (or +hhmm); no zone means UTC.  A bare date
 * is the last millisecond of that day (UTC): "as of 2026-11-30" includes
 * everything committed that day.  Every field is checked (no 2026-02-30,
 * no 25:00), digits beyond milliseconds are truncated. */
int udr__parse_time(int64_t *out, const char *text)
{
	const char *p = text;
	int y, mo, d, h, mi, sec = 0, ms = 0, off = 0, has_sec = 0;
	int64_t t;
	if (!text || (y = fixed_digits(&p, 4)) < 0 || *p++ != '-' || (mo = fixed_digits(&p, 2)) < 1 ||
	    mo > 12 || *p++ != '-' || (d = fixed_digits(&p, 2)) < 1 || d > days_in_month(y, mo))
		return -1;
	if (*p == '\0') {
		*out = (days_from_civil(y, mo, d) + 1) * 86400000 - 1;
		return 0;
	}
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if ((h = fixed_digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (mi = fixed_digits(&p, 2)) < 0 ||
	    mi > 59)
		return -1;
	if (*p == ':') {
		p++;
		if ((sec = fixed_digits(&p, 2)) < 0 || sec > 59)
			return -1;
		has_sec = 1;
	}
	if (*p == '.' && has_sec) {
		int digits = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if ((oh = fixed_digits(&p, 2)) < 0 || oh > 23)
			return -1;
		if (*p == ':')
			p++;
		if ((om = fixed_digits(&p, 2)) < 0 || om > 59)
			return -1;
		off = sign * (oh * 60 + om);
	}
	if (*p != '\0')
		return -1;
	t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off) * 60 + sec;
	*out = t * 1000 + ms;
	return 0;
}

int udr__buf_grow(udr__buf *b, size_t extra)
{
	size_t need, cap;
	char *p;
	if (!udr__add_ok(b->len, extra, &need) || !udr__add_ok(need, 1, &need))
		return udr__error_oom();
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		if (!udr__mul_ok(cap, 2, &cap))
			return udr__error_oom();
	p = realloc(b->ptr, cap);
	if (!p)
		return udr__error_oom();
	b->ptr = p;
	b->cap = cap;
	return 0;
}

int udr__buf_put(udr__buf *b, const void *data, size_t len)
{
	int rc = udr__buf_grow(b, len);
	if (rc < 0)
		return rc;
	memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
	return 0;
}

int udr__buf_puts(udr__buf *b, const char *s)
{
	return udr__buf_put(b, s, strlen(s));
}

int udr__buf_printf(udr__buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return udr__error_set(UDR_ERROR, "formatting failed");
	rc = udr__buf_grow(b, (size_t)n);
	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void udr__buf_free(udr__buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

int udr__parse_u64(uint64_t *out, const char *text, size_t len)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(text[i] - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}
