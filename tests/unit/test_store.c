/*
 * test_store.c - the content-addressed chunk store: open/create, put/get in
 * all forms, dedup, the on-disk layout, missing and corrupt chunks, foreach,
 * fsck (corruption, stray files, abandoned temp files), threads.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fx {
	char *dir;   /* scratch directory */
	char *sdir;  /* <dir>/chunks, the store */
	udr_store *st;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->sdir = th_join(f->dir, "chunks");
	if (udr_store_open(&f->st, f->sdir, UDR_OPEN_CREATE) != 0) {
		print_error("udr_store_open: %s\n", udr_error_last()->message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_store_close(f->st);
	th_rmtree(f->dir);
	free(f->sdir);
	free(f->dir);
	free(f);
	return 0;
}

static udr_hash put_str(udr_store *st, const char *s)
{
	udr_hash h;
	int rc = udr_store_put(&h, st, s, strlen(s));
	if (rc != 0) {
		print_error("put: %d %s\n", rc, udr_error_last()->message);
		fail();
	}
	return h;
}

static int count_cb(const udr_hash *h, void *payload)
{
	(void)h;
	(*(int *)payload)++;
	return 0;
}

static int nchunks(udr_store *st)
{
	int n = 0;
	assert_int_equal(udr_store_foreach(st, count_cb, &n), 0);
	return n;
}

/* ---- open ------------------------------------------------------------ */

static void store_open_missing_is_notfound(void **state)
{
	fx *f = *state;
	udr_store *s = (udr_store *)0x1;
	char *p = th_join(f->dir, "nope");
	assert_int_equal(udr_store_open(&s, p, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "nope");
	assert_false(th_exists(p)); /* nothing created */
	/* An existing empty directory is not a store either. */
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(udr_store_open(&s, p, 0), UDR_ENOTFOUND);
	assert_int_equal(th_count_entries(p), 0);
	free(p);
}

static void store_open_invalid_path(void **state)
{
	(void)state;
	udr_store *s = NULL;
	assert_int_equal(udr_store_open(&s, NULL, UDR_OPEN_CREATE), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(udr_store_open(&s, "", UDR_OPEN_CREATE), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
}

static void store_open_create_and_reopen(void **state)
{
	fx *f = *state;
	char *cfg = th_join(f->sdir, "config.json");
	assert_true(th_exists(cfg));
	assert_string_equal(udr_store_path(f->st), f->sdir);
	udr_hash h = put_str(f->st, "persist me");
	udr_store_close(f->st);
	f->st = NULL;
	/* Reopen without CREATE sees the chunk; CREATE on an existing store is fine. */
	assert_int_equal(udr_store_open(&f->st, f->sdir, 0), 0);
	assert_int_equal(udr_store_exists(f->st, &h), 1);
	udr_store *s2 = NULL;
	assert_int_equal(udr_store_open(&s2, f->sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_store_exists(s2, &h), 1);
	udr_store_close(s2);
	udr_store_close(NULL);
	free(cfg);
}

static void store_open_bad_config_is_corrupt(void **state)
{
	fx *f = *state;
	char *cfg = th_join(f->sdir, "config.json");
	udr_store_close(f->st);
	f->st = NULL;
	th_write_file(cfg, "{not json", 9);
	udr_store *s = NULL;
	assert_int_equal(udr_store_open(&s, f->sdir, 0), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, NULL);
	/* A well-formed config of an unknown format is corrupt too. */
	th_write_file(cfg, "{\"format\": \"something-else\", \"version\": 999}", 44);
	assert_int_equal(udr_store_open(&s, f->sdir, 0), UDR_ECORRUPT);
	free(cfg);
}

/* ---- put / get --------------------------------------------------------- */

static void store_put_get_roundtrip(void **state)
{
	fx *f = *state;
	const char *s = "hello, udr";
	udr_hash h, want;
	assert_int_equal(udr_store_put(&h, f->st, s, strlen(s)), 0);
	udr_hash_buf(&want, s, strlen(s));
	assert_true(udr_hash_equal(&h, &want));
	assert_int_equal(udr_store_exists(f->st, &h), 1);
	uint64_t sz = 0;
	assert_int_equal(udr_store_size(&sz, f->st, &h), 0);
	assert_int_equal(sz, strlen(s));

	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(udr_store_get(&buf, &len, f->st, &h), 0);
	assert_int_equal(len, strlen(s));
	assert_memory_equal(buf, s, len);
	udr_free(buf);
	buf = NULL;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), 0);
	assert_int_equal(len, strlen(s));
	assert_memory_equal(buf, s, len);
	udr_free(buf);
	udr_free(NULL);
}

static void store_layout_is_ab_cd_hash_raw(void **state)
{
	fx *f = *state;
	unsigned char data[5000];
	th_fill(data, sizeof(data), 11);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	char *p = th_chunk_path(f->sdir, &h);
	size_t len = 0;
	char *raw = th_read_file(p, &len);
	if (raw == NULL) {
		print_error("chunk not at %s\n", p);
		fail();
	}
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(raw, data, sizeof(data));
	free(raw);
	free(p);
}

static void store_put_dedup(void **state)
{
	fx *f = *state;
	udr_hash a = put_str(f->st, "same bytes");
	udr_hash b = put_str(f->st, "same bytes");
	assert_true(udr_hash_equal(&a, &b));
	assert_int_equal(nchunks(f->st), 1);
	udr_hash c = put_str(f->st, "other bytes");
	assert_false(udr_hash_equal(&a, &c));
	assert_int_equal(nchunks(f->st), 2);
	/* Dedup also across put_fd / put_file. */
	char *file = th_join(f->dir, "same");
	th_write_file(file, "same bytes", 10);
	udr_hash d;
	assert_int_equal(udr_store_put_file(&d, f->st, file), 0);
	assert_true(udr_hash_equal(&a, &d));
	assert_int_equal(nchunks(f->st), 2);
	/* No temp files left behind by the dedup path. */
	char *tmp = th_join(f->sdir, "tmp");
	int n = th_count_entries(tmp);
	assert_true(n <= 0);
	free(tmp);
	free(file);
}

static void store_empty_content(void **state)
{
	fx *f = *state;
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, NULL, 0), 0);
	assert_string_equal(th_hex(&h),
	                    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
	assert_int_equal(udr_store_put(&h, f->st, "", 0), 0);
	assert_int_equal(udr_store_exists(f->st, &h), 1);
	uint64_t sz = 99;
	assert_int_equal(udr_store_size(&sz, f->st, &h), 0);
	assert_int_equal(sz, 0);
	void *buf = NULL;
	size_t len = 99;
	assert_int_equal(udr_store_get(&buf, &len, f->st, &h), 0);
	assert_non_null(buf);
	assert_int_equal(len, 0);
	udr_free(buf);
	buf = NULL;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), 0);
	assert_non_null(buf);
	assert_int_equal(len, 0);
	udr_free(buf);
	char *out = th_join(f->dir, "empty.out");
	assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_VERIFY), 0);
	size_t flen = 99;
	char *content = th_read_file(out, &flen);
	assert_non_null(content);
	assert_int_equal(flen, 0);
	free(content);
	free(out);
	assert_int_equal(nchunks(f->st), 1);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

static void store_put_null_data_is_einval(void **state)
{
	fx *f = *state;
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, NULL, 5), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(nchunks(f->st), 0);
}

static void store_missing_is_notfound(void **state)
{
	fx *f = *state;
	udr_hash h;
	udr_hash_buf(&h, "never stored", 12);
	const char *hex = th_hex(&h);
	char hexcopy[65];
	strcpy(hexcopy, hex);
	assert_int_equal(udr_store_exists(f->st, &h), 0);
	uint64_t sz;
	assert_int_equal(udr_store_size(&sz, f->st, &h), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, hexcopy);
	void *buf = NULL;
	size_t len;
	assert_int_equal(udr_store_get(&buf, &len, f->st, &h), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, hexcopy);
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, hexcopy);
	assert_null(buf);
	char *out = th_join(f->dir, "out");
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, 0), UDR_ENOTFOUND);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, UDR_GET_VERIFY), UDR_ENOTFOUND);
	close(fd);
	unlink(out);
	assert_int_equal(udr_store_get_file(f->st, &h, out, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, hexcopy);
	assert_false(th_exists(out));
	free(out);
}

static void store_corrupt_flipped_bit(void **state)
{
	fx *f = *state;
	unsigned char data[10000];
	th_fill(data, sizeof(data), 5);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	char hex[65];
	udr_hash_tohex(hex, &h);
	char *p = th_chunk_path(f->sdir, &h);
	th_flip_bit(p, 4321);

	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, hex);
	assert_null(buf);
	/* The unverified read returns the (damaged) bytes as they are. */
	assert_int_equal(udr_store_get(&buf, &len, f->st, &h), 0);
	assert_int_equal(len, sizeof(data));
	assert_int_not_equal(memcmp(buf, data, len), 0);
	udr_free(buf);

	char *out = th_join(f->dir, "out");
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, UDR_GET_VERIFY), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, hex);
	close(fd);
	unlink(out);
	assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_VERIFY), UDR_ECORRUPT);
	assert_false(th_exists(out)); /* nothing left at path */
	/* Without verification the file is written. */
	assert_int_equal(udr_store_get_file(f->st, &h, out, 0), 0);
	assert_true(th_exists(out));
	free(out);
	free(p);
}

static void store_corrupt_truncated(void **state)
{
	fx *f = *state;
	unsigned char data[3000];
	th_fill(data, sizeof(data), 6);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	char *p = th_chunk_path(f->sdir, &h);
	th_truncate(p, 1000);
	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, th_hex(&h));
	assert_null(buf);
	uint64_t sz = 0;
	assert_int_equal(udr_store_size(&sz, f->st, &h), 0);
	assert_int_equal(sz, 1000);
	/* Truncated to zero too. */
	th_truncate(p, 0);
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
	free(p);
}

/* ---- streaming --------------------------------------------------------- */

static void store_put_fd_and_file_large(void **state)
{
	fx *f = *state;
	const size_t len = 3 * 1024 * 1024 + 17;
	unsigned char *data = malloc(len);
	assert_non_null(data);
	th_fill(data, len, 77);
	char *file = th_join(f->dir, "big");
	th_write_file(file, data, len);
	udr_hash want, h;
	udr_hash_buf(&want, data, len);

	assert_int_equal(udr_store_put_file(&h, f->st, file), 0);
	assert_true(udr_hash_equal(&h, &want));
	/* Large content may be stored as a manifest of pieces (format 2): some
	 * object named after the whole content's hash exists. */
	char *cp = th_object_path(f->sdir, &h);
	assert_true(th_exists(cp));
	void *whole = NULL;
	size_t wlen = 0;
	assert_int_equal(udr_store_get_verified(&whole, &wlen, f->st, &h), 0);
	assert_int_equal(wlen, len);
	assert_memory_equal(whole, data, len);
	udr_free(whole);
	uint64_t sz = 0;
	assert_int_equal(udr_store_size(&sz, f->st, &h), 0);
	assert_int_equal(sz, len);

	/* put_fd from the current offset. */
	int fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 100, SEEK_SET), 100);
	assert_int_equal(udr_store_put_fd(&h, f->st, fd), 0);
	close(fd);
	udr_hash_buf(&want, data + 100, len - 100);
	assert_true(udr_hash_equal(&h, &want));
	void *buf = NULL;
	size_t blen = 0;
	assert_int_equal(udr_store_get_verified(&buf, &blen, f->st, &h), 0);
	assert_int_equal(blen, len - 100);
	assert_memory_equal(buf, data + 100, blen);
	udr_free(buf);

	/* From a pipe (not seekable, size unknown). */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		size_t off = 0;
		while (off < 200000) {
			ssize_t n = write(pfd[1], data + off, 200000 - off);
			if (n <= 0)
				_exit(1);
			off += (size_t)n;
		}
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(udr_store_put_fd(&h, f->st, pfd[0]), 0);
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	udr_hash_buf(&want, data, 200000);
	assert_true(udr_hash_equal(&h, &want));
	assert_true(nchunks(f->st) >= 3); /* pieces of chunked content may be listed too */
	free(cp);
	free(file);
	free(data);
}

static void store_put_file_missing_is_notfound(void **state)
{
	fx *f = *state;
	char *file = th_join(f->dir, "does-not-exist");
	udr_hash h;
	assert_int_equal(udr_store_put_file(&h, f->st, file), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "does-not-exist");
	assert_int_equal(nchunks(f->st), 0);
	free(file);
}

static void store_put_fd_read_error_publishes_nothing(void **state)
{
	fx *f = *state;
	char *file = th_join(f->dir, "wo");
	th_write_file(file, "some content", 12);
	int fd = open(file, O_WRONLY);
	assert_true(fd >= 0);
	udr_hash h;
	assert_int_equal(udr_store_put_fd(&h, f->st, fd), UDR_EIO);
	th_assert_error(UDR_EIO, NULL);
	close(fd);
	/* A directory cannot be read either (EISDIR). */
	fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_put_fd(&h, f->st, fd), UDR_EIO);
	close(fd);
	assert_int_equal(nchunks(f->st), 0);
	char *tmp = th_join(f->sdir, "tmp");
	assert_true(th_count_entries(tmp) <= 0);
	free(tmp);
	free(file);
}

static void store_get_fd_and_file(void **state)
{
	fx *f = *state;
	const size_t len = 1024 * 1024 + 3;
	unsigned char *data = malloc(len);
	assert_non_null(data);
	th_fill(data, len, 9);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, data, len), 0);

	char *out = th_join(f->dir, "out");
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, UDR_GET_VERIFY), 0);
	close(fd);
	size_t rlen = 0;
	char *raw = th_read_file(out, &rlen);
	assert_int_equal(rlen, len);
	assert_memory_equal(raw, data, len);
	free(raw);

	/* get_file replaces an existing file. */
	th_write_file(out, "old old old old old old old old old old old", 43);
	assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_VERIFY), 0);
	raw = th_read_file(out, &rlen);
	assert_int_equal(rlen, len);
	assert_memory_equal(raw, data, len);
	free(raw);
	unlink(out);
	assert_int_equal(udr_store_get_file(f->st, &h, out, 0), 0);
	raw = th_read_file(out, &rlen);
	assert_int_equal(rlen, len);
	assert_memory_equal(raw, data, len);
	free(raw);

	/* Into a missing directory: an error, not a crash. */
	char *bad = th_join3(f->dir, "no-such-dir", "out");
	int rc = udr_store_get_file(f->st, &h, bad, 0);
	assert_true(rc < 0);
	assert_false(th_exists(bad));
	free(bad);
	free(out);
	free(data);
}

/* ---- foreach ----------------------------------------------------------- */

typedef struct seen {
	udr_hash hashes[64];
	int counts[64];
	int n;
	int calls;
	int stop_after;
} seen;

static int seen_cb(const udr_hash *h, void *payload)
{
	seen *s = payload;
	s->calls++;
	int found = 0;
	for (int i = 0; i < s->n; i++) {
		if (udr_hash_equal(&s->hashes[i], h)) {
			s->counts[i]++;
			found = 1;
		}
	}
	if (!found)
		s->counts[63]++; /* unexpected hash */
	if (s->stop_after && s->calls >= s->stop_after)
		return 42;
	return 0;
}

static void store_foreach_visits_each_once(void **state)
{
	fx *f = *state;
	seen s;
	memset(&s, 0, sizeof(s));
	s.n = 40;
	for (int i = 0; i < s.n; i++) {
		unsigned char d[100];
		th_fill(d, sizeof(d), (uint32_t)i);
		assert_int_equal(udr_store_put(&s.hashes[i], f->st, d, (size_t)(i * 2)), 0);
	}
	/* Leave a temp file around: foreach must not report it. */
	char *tmpdir = th_join(f->sdir, "tmp");
	mkdir(tmpdir, 0755);
	char *tf = th_join(tmpdir, "999999-zzzz.tmp");
	th_write_file(tf, "x", 1);
	assert_int_equal(udr_store_foreach(f->st, seen_cb, &s), 0);
	assert_int_equal(s.calls, s.n);
	for (int i = 0; i < s.n; i++)
		assert_int_equal(s.counts[i], 1);
	assert_int_equal(s.counts[63], 0);

	memset(s.counts, 0, sizeof(s.counts));
	s.calls = 0;
	s.stop_after = 3;
	assert_int_equal(udr_store_foreach(f->st, seen_cb, &s), 42);
	assert_int_equal(s.calls, 3);
	free(tf);
	free(tmpdir);
}

/* ---- fsck -------------------------------------------------------------- */

static void put_n(fx *f, udr_hash *hs, int n, size_t size)
{
	unsigned char *d = malloc(size);
	for (int i = 0; i < n; i++) {
		th_fill(d, size, (uint32_t)(1000 + i));
		assert_int_equal(udr_store_put(&hs[i], f->st, d, size), 0);
	}
	free(d);
}

static void store_fsck_clean(void **state)
{
	fx *f = *state;
	udr_hash hs[10];
	put_n(f, hs, 10, 777);
	udr_check_stats stats;
	memset(&stats, 0xff, sizeof(stats));
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(&stats, f->st, th_problem_cb, &pr), 0);
	assert_int_equal(pr.count, 0);
	assert_int_equal(stats.objects, 10);
	assert_int_equal(stats.bytes, 7770);
	assert_int_equal(stats.problems, 0);
	assert_int_equal(stats.temp_removed, 0);
	/* NULL stats and callback are allowed. */
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

static void store_fsck_finds_flipped_and_truncated(void **state)
{
	fx *f = *state;
	udr_hash hs[6];
	put_n(f, hs, 6, 2048);
	char flipped[65], trunc[65], emptied[65];
	strcpy(flipped, th_hex(&hs[1]));
	strcpy(trunc, th_hex(&hs[3]));
	strcpy(emptied, th_hex(&hs[4]));
	char *p1 = th_chunk_path(f->sdir, &hs[1]);
	char *p3 = th_chunk_path(f->sdir, &hs[3]);
	char *p4 = th_chunk_path(f->sdir, &hs[4]);
	th_flip_bit(p1, 2047);
	th_truncate(p3, 100);
	th_truncate(p4, 0);
	udr_check_stats stats;
	memset(&stats, 0, sizeof(stats));
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(&stats, f->st, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_int_equal(pr.count, 3);
	assert_int_equal(stats.problems, 3);
	for (int i = 0; i < pr.count; i++)
		assert_int_equal(pr.codes[i], UDR_ECORRUPT);
	assert_true(th_problems_mention(&pr, flipped));
	assert_true(th_problems_mention(&pr, trunc));
	assert_true(th_problems_mention(&pr, emptied));
	th_problems_free(&pr);
	/* fsck reports; it does not "repair" by itself: still corrupt the second time. */
	assert_int_equal(udr_store_fsck(NULL, f->st, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_int_equal(pr.count, 3);
	th_problems_free(&pr);
	free(p1);
	free(p3);
	free(p4);
}

static void store_fsck_finds_stray_files(void **state)
{
	fx *f = *state;
	udr_hash hs[2];
	put_n(f, hs, 2, 64);
	char hex[65];
	strcpy(hex, th_hex(&hs[0]));
	/* A file that is not a hash, inside a fan-out directory. */
	char *src = th_chunk_path(f->sdir, &hs[0]);
	char *d = th_fmt("%s/%.2s/%.2s", f->sdir, hex, hex + 2);
	char *stray = th_join(d, "notahash");
	th_write_file(stray, "junk", 4);
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(NULL, f->st, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	assert_true(th_problems_mention(&pr, "notahash"));
	th_problems_free(&pr);
	unlink(stray);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);

	/* A valid chunk under the wrong fan-out directory is stray too. */
	char *wrongdir = th_fmt("%s/%.2s", f->sdir, hex[0] == 'f' ? "00" : "ff");
	mkdir(wrongdir, 0755);
	char *wrongdir2 = th_join(wrongdir, "ee");
	mkdir(wrongdir2, 0755);
	char *misplaced = th_join(wrongdir2, hex);
	size_t len;
	char *content = th_read_file(src, &len);
	th_write_file(misplaced, content, len);
	assert_int_equal(udr_store_fsck(NULL, f->st, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	th_problems_free(&pr);
	free(content);
	free(misplaced);
	free(wrongdir2);
	free(wrongdir);
	free(stray);
	free(d);
	free(src);
}

static void store_fsck_removes_abandoned_temp(void **state)
{
	fx *f = *state;
	udr_hash hs[2];
	put_n(f, hs, 2, 64);
	char *tmpdir = th_join(f->sdir, "tmp");
	mkdir(tmpdir, 0755);
	char *t1 = th_join(tmpdir, "123456-abcdef.tmp");
	char *t2 = th_join(tmpdir, "123457-fedcba.tmp");
	char *held = th_join(tmpdir, "123458-aaaaaa.tmp");
	th_write_file(t1, "partial", 7);
	th_write_file(t2, "", 0);
	th_write_file(held, "being written", 13);
	/* A temp file still locked by a live writer must be left alone. */
	int hfd = open(held, O_RDWR);
	assert_true(hfd >= 0);
	assert_int_equal(flock(hfd, LOCK_EX | LOCK_NB), 0);

	udr_check_stats stats;
	memset(&stats, 0, sizeof(stats));
	th_problems pr = {0};
	assert_int_equal(udr_store_fsck(&stats, f->st, th_problem_cb, &pr), 0);
	assert_int_equal(pr.count, 0);
	assert_int_equal(stats.temp_removed, 2);
	assert_false(th_exists(t1));
	assert_false(th_exists(t2));
	assert_true(th_exists(held));
	assert_int_equal(stats.objects, 2);
	close(hfd);
	/* Once its writer is gone it is removed. */
	memset(&stats, 0, sizeof(stats));
	assert_int_equal(udr_store_fsck(&stats, f->st, NULL, NULL), 0);
	assert_int_equal(stats.temp_removed, 1);
	assert_false(th_exists(held));
	free(held);
	free(t2);
	free(t1);
	free(tmpdir);
}

/* ---- threads ----------------------------------------------------------- */

typedef struct targ {
	udr_store *st;
	int id;
	int failures;
	udr_hash hs[50];
} targ;

static void *thread_main(void *p)
{
	targ *a = p;
	unsigned char d[4096];
	for (int i = 0; i < 50; i++) {
		/* Even i: content shared by all threads; odd i: private content. */
		th_fill(d, sizeof(d), (uint32_t)(i % 2 == 0 ? i : 100000 + a->id * 100 + i));
		if (udr_store_put(&a->hs[i], a->st, d, sizeof(d)) != 0)
			a->failures++;
	}
	return NULL;
}

static void store_threads_put_same_and_different(void **state)
{
	fx *f = *state;
	targ args[4];
	pthread_t th[4];
	for (int t = 0; t < 4; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].st = f->st;
		args[t].id = t;
		assert_int_equal(pthread_create(&th[t], NULL, thread_main, &args[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].failures, 0);
	}
	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < 50; i++) {
			void *buf = NULL;
			size_t len = 0;
			assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &args[t].hs[i]), 0);
			assert_int_equal(len, 4096);
			udr_free(buf);
		}
	}
	assert_int_equal(nchunks(f->st), 25 + 4 * 25);
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(store_open_missing_is_notfound),
		T(store_open_invalid_path),
		T(store_open_create_and_reopen),
		T(store_open_bad_config_is_corrupt),
		T(store_put_get_roundtrip),
		T(store_layout_is_ab_cd_hash_raw),
		T(store_put_dedup),
		T(store_empty_content),
		T(store_put_null_data_is_einval),
		T(store_missing_is_notfound),
		T(store_corrupt_flipped_bit),
		T(store_corrupt_truncated),
		T(store_put_fd_and_file_large),
		T(store_put_file_missing_is_notfound),
		T(store_put_fd_read_error_publishes_nothing),
		T(store_get_fd_and_file),
		T(store_foreach_visits_each_once),
		T(store_fsck_clean),
		T(store_fsck_finds_flipped_and_truncated),
		T(store_fsck_finds_stray_files),
		T(store_fsck_removes_abandoned_temp),
		T(store_threads_put_same_and_different),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
