/*
 * helpers.c - shared helpers of the cmocka unit tests (see helpers.h).
 * Linked into every tests/unit/test_*.c executable.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "store/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

char *th_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = th_fmt("%s/udr-unit-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpl));
	return tmpl;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	/* Make directories writable again in case a test removed permissions. */
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

void th_rmtree(const char *path)
{
	if (path == NULL)
		return;
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *th_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	return s;
}

char *th_join(const char *a, const char *b)
{
	return th_fmt("%s/%s", a, b);
}

char *th_join3(const char *a, const char *b, const char *c)
{
	return th_fmt("%s/%s/%s", a, b, c);
}

void th_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
	assert_int_equal(close(fd), 0);
}

char *th_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap + 1);
		assert_non_null(buf);
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int th_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

void th_flip_bit(const char *path, off_t offset)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, offset), 1);
	c ^= 0x01;
	assert_int_equal(pwrite(fd, &c, 1, offset), 1);
	assert_int_equal(close(fd), 0);
}

void th_truncate(const char *path, off_t size)
{
	assert_int_equal(truncate(path, size), 0);
}

int th_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	}
	closedir(d);
	return n;
}

static int count_files;
static int count_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (flag == FTW_F)
		count_files++;
	return 0;
}

int th_count_files_rec(const char *dir)
{
	count_files = 0;
	if (nftw(dir, count_cb, 16, FTW_PHYS) != 0)
		return -1;
	return count_files;
}

char *th_chunk_path(const char *storedir, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hash_tohex(hex, h);
	return th_fmt("%s/%.2s/%.2s/%s", storedir, hex, hex + 2, hex);
}

void th_fill(void *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)(x >> 3);
	}
}

const char *th_hex(const udr_hash *h)
{
	static char bufs[4][UDR_HASH_HEXSIZE + 1];
	static int next;
	char *b = bufs[next++ & 3];
	udr_hash_tohex(b, h);
	return b;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

int th_problem_cb(const udr_problem *p, void *payload)
{
	th_problems *ps = payload;
	/* Every problem must say what it is about. */
	assert_non_null(p);
	assert_non_null(p->message);
	if (ps->count < 64) {
		ps->codes[ps->count] = p->code;
		ps->objects[ps->count] = dup_or_empty(p->object);
		ps->paths[ps->count] = dup_or_empty(p->path);
		ps->messages[ps->count] = dup_or_empty(p->message);
	}
	ps->count++;
	return 0;
}

void th_problems_free(th_problems *p)
{
	int n = p->count < 64 ? p->count : 64;
	for (int i = 0; i < n; i++) {
		free(p->objects[i]);
		free(p->paths[i]);
		free(p->messages[i]);
	}
	memset(p, 0, sizeof(*p));
}

int th_problems_mention(const th_problems *p, const char *needle)
{
	int n = p->count < 64 ? p->count : 64;
	for (int i = 0; i < n; i++) {
		if (strstr(p->objects[i], needle) || strstr(p->paths[i], needle) ||
		    strstr(p->messages[i], needle))
			return 1;
	}
	return 0;
}

void th_assert_error_(int code, const char *needle, const char *file, int line)
{
	const udr_error *e = udr_error_last();
	if (e == NULL) {
		print_error("%s:%d: udr_error_last() returned NULL\n", file, line);
		fail();
	}
	if (e->message == NULL) {
		print_error("%s:%d: udr_error_last()->message is NULL\n", file, line);
		fail();
	}
	if (e->code != code) {
		print_error("%s:%d: last error code %d (%s), expected %d; message: %s\n", file, line,
		            e->code, udr_strerror(e->code), code, e->message);
		fail();
	}
	if (needle != NULL && strstr(e->message, needle) == NULL) {
		print_error("%s:%d: last error message \"%s\" does not contain \"%s\"\n", file, line,
		            e->message, needle);
		fail();
	}
}

void th_filter(int argc, char **argv)
{
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	/* A stray UDR_FAULT from the environment would make every test fail. */
	unsetenv("UDR_FAULT");
}

char *th_replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	if (p == NULL) {
		print_error("\"%s\" not found in \"%s\"\n", from, s);
		fail();
	}
	return th_fmt("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

char *th_object_path(const char *storedir, const udr_hash *h)
{
	static const char *const kinds[] = {"", ".zst", ".m", ".d"};
	char *raw = th_chunk_path(storedir, h);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *p = th_fmt("%s%s", raw, kinds[i]);
		if (th_exists(p)) {
			free(raw);
			return p;
		}
		free(p);
	}
	return raw;
}

/* ---- objects through the location layer ---------------------------------- */

char *th_object_at(const char *storedir, const udr_hash *h, off_t *off, size_t *len)
{
	udr_store *st = NULL;
	char *text = NULL, *path = NULL;
	assert_int_equal(udr_store_open(&st, storedir, 0), 0);
	int rc = udr_store_debug_locate(&text, st, h);
	udr_store_close(st);
	if (rc == UDR_ENOTFOUND)
		return NULL;
	assert_int_equal(rc, 0);
	char where[4200];
	unsigned long long o = 0, l = 0;
	int kind = 0;
	if (sscanf(text, "pack %4199s %llu %llu %d", where, &o, &l, &kind) == 4) {
		path = strdup(where);
		*off = (off_t)(o + UDR__PACK_ENTRY_HDR);
		*len = (size_t)(l - UDR__PACK_ENTRY_HDR - UDR__PACK_ENTRY_CRC);
	} else {
		struct stat sb;
		assert_int_equal(sscanf(text, "loose %4199s %d", where, &kind), 2);
		path = strdup(where);
		assert_int_equal(stat(path, &sb), 0);
		*off = 0;
		*len = (size_t)sb.st_size;
	}
	free(text);
	return path;
}

void th_flip_object(const char *storedir, const udr_hash *h, size_t at)
{
	off_t off;
	size_t len;
	char *p = th_object_at(storedir, h, &off, &len);
	assert_non_null(p);
	assert_true(at < len);
	th_flip_bit(p, off + (off_t)at);
	free(p);
}

void th_truncate_object(const char *storedir, const udr_hash *h, size_t keep)
{
	off_t off;
	size_t len;
	char *p = th_object_at(storedir, h, &off, &len);
	assert_non_null(p);
	assert_true(keep <= len);
	th_truncate(p, off + (off_t)keep);
	free(p);
}

/* Rewrite the pack at path without the entries of h. */
static void drop_from_pack(const char *path, const udr_hash *h)
{
	size_t n = 0;
	unsigned char *p = (unsigned char *)th_read_file(path, &n);
	assert_non_null(p);
	unsigned char *q = malloc(n);
	assert_non_null(q);
	memcpy(q, p, UDR__PACK_HDR);
	size_t qn = UDR__PACK_HDR;
	uint64_t count = 0, off = UDR__PACK_HDR, next;
	udr__pack_entry e;
	int rc;
	while ((rc = udr__pack_entry_parse(&e, &next, p, n, off, path)) == 0) {
		if (!udr_hash_equal(&e.hash, h)) {
			memcpy(q + qn, p + off, (size_t)(next - off));
			qn += (size_t)(next - off);
			count++;
		}
		off = next;
	}
	assert_int_equal(rc, 1);
	char *dir = strdup(path);
	*strrchr(dir, '/') = '\0';
	char *oldidx = th_replace(path, ".pack", ".idx");
	if (count) {
		for (int i = 0; i < 8; i++)
			q[qn + i] = (unsigned char)(count >> (8 * i));
		memcpy(q + qn + 8, p + n - 8, 8);
		qn += UDR__PACK_TRAILER;
		udr_hash name;
		udr_hash_buf(&name, q, qn);
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &name);
		unsigned char *ix = NULL;
		size_t il = 0;
		assert_int_equal(udr__pack_reindex(&ix, &il, q, qn, &name, path), 0);
		char *np = th_fmt("%s/%s.pack", dir, hex), *ni = th_fmt("%s/%s.idx", dir, hex);
		th_write_file(np, q, qn);
		th_write_file(ni, ix, il);
		free(np);
		free(ni);
		free(ix);
	}
	assert_int_equal(unlink(oldidx), 0);
	assert_int_equal(unlink(path), 0);
	free(oldidx);
	free(dir);
	free(p);
	free(q);
}

void th_remove_object(const char *storedir, const udr_hash *h)
{
	off_t off;
	size_t len;
	char *p;
	while ((p = th_object_at(storedir, h, &off, &len)) != NULL) {
		size_t n = strlen(p);
		if (n > 5 && strcmp(p + n - 5, ".pack") == 0)
			drop_from_pack(p, h);
		else
			assert_int_equal(unlink(p), 0);
		free(p);
	}
}

int th_deleted_under(const char *dir, int what)
{
	int count = 0;
	if (what & TH_MAPS) {
		char *text = th_read_file("/proc/self/maps", NULL);
		assert_non_null(text);
		for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
			if (strstr(line, dir) && strstr(line, "(deleted)")) {
				print_message("mapped: %s\n", line);
				count++;
			}
		free(text);
	}
	if (what & TH_FDS) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		assert_non_null(d);
		while ((e = readdir(d)) != NULL) {
			char link[512], target[4200];
			ssize_t k;
			snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
			if ((k = readlink(link, target, sizeof(target) - 1)) < 0)
				continue;
			target[k] = '\0';
			if (strstr(target, dir) && strstr(target, "(deleted)")) {
				print_message("open: %s -> %s\n", link, target);
				count++;
			}
		}
		closedir(d);
	}
	return count;
}
