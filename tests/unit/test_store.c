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

/* The format of the fixture's store: every test runs on format 2 (one file
 * per object), and those that do not look at that layout on format 3 (packs,
 * the default) too; tests/unit/test_pack.c covers the packs themselves. */
static int g_format = 3;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	cfg.format = g_format;
	f->dir = th_mkdtemp();
	f->sdir = th_join(f->dir, "chunks");
	if (udr_store_open_ext(&f->st, f->sdir, UDR_OPEN_CREATE, &cfg) != 0) {
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
	if (g_format == 3) {
		/* format 3: random bytes stay raw, as one entry of a pack */
		off_t off;
		size_t plen = 0, len = 0;
		char *pk = th_object_at(f->sdir, &h, &off, &plen);
		assert_non_null(pk);
		assert_non_null(strstr(pk, "/packs/"));
		char *bytes = th_read_file(pk, &len);
		assert_int_equal(plen, sizeof(data));
		assert_memory_equal(bytes + off, data, sizeof(data));
		free(bytes);
		free(pk);
		return;
	}
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
	th_flip_object(f->sdir, &h, 4321);

	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, hex);
	assert_null(buf);
	/* udr_store_get verifies too: no damaged bytes. */
	assert_int_equal(udr_store_get(&buf, &len, f->st, &h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, hex);
	assert_null(buf);

	char *out = th_join(f->dir, "out");
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, UDR_GET_VERIFY), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, hex);
	close(fd);
	unlink(out);
	assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_VERIFY), UDR_ECORRUPT);
	assert_false(th_exists(out)); /* nothing left at path */
	assert_int_equal(udr_store_get_file(f->st, &h, out, 0), UDR_ECORRUPT); /* the default */
	assert_false(th_exists(out));
	/* Only the explicit opt-out writes the raw object's bytes as they are;
	 * a packed entry's CRC is checked on every read, verified or not. */
	if (g_format == 3) {
		assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_NOVERIFY), UDR_ECORRUPT);
		th_assert_error(UDR_ECORRUPT, "CRC");
		assert_false(th_exists(out));
	} else {
		assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_NOVERIFY), 0);
		assert_true(th_exists(out));
	}
	assert_int_equal(udr_store_get_file(f->st, &h, out, UDR_GET_VERIFY | UDR_GET_NOVERIFY), UDR_EINVAL);
	free(out);
}

static void store_corrupt_truncated(void **state)
{
	fx *f = *state;
	unsigned char data[3000];
	th_fill(data, sizeof(data), 6);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	th_truncate_object(f->sdir, &h, 1000);
	void *buf = NULL;
	size_t len = 0;
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, th_hex(&h));
	assert_null(buf);
	uint64_t sz = 0;
	/* the recorded size: a loose file's is what is left of it; a packed
	 * entry's header (intact here) still says the size it was written
	 * with.  udr_store_size reads the piece: damaged, no intact copy. */
	assert_int_equal(udr_store_size_recorded(&sz, f->st, &h), 0);
	assert_int_equal(sz, g_format == 3 ? 3000 : 1000);
	assert_int_equal(udr_store_size(&sz, f->st, &h), UDR_ECORRUPT);
	udr_error_clear();
	/* Truncated to zero too. */
	th_truncate_object(f->sdir, &h, 0);
	assert_int_equal(udr_store_get_verified(&buf, &len, f->st, &h), UDR_ECORRUPT);
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
	off_t coff;
	size_t clen;
	char *cp = th_object_at(f->sdir, &h, &coff, &clen);
	assert_non_null(cp);
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

/* ---- reads verify by default; re-puts repair ------------------------------ */

/* A format-2 store with small pieces (1K/4K/16K), so that chunked content
 * stays small and fast. */
static udr_store *small_store(fx *f, const char *name)
{
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *st = NULL;
	char *dir = th_join(f->dir, name);
	cfg.format = g_format;
	cfg.chunk_min = 1024;
	cfg.chunk_avg = 4096;
	cfg.chunk_max = 16384;
	if (udr_store_open_ext(&st, dir, UDR_OPEN_CREATE, &cfg) != 0) {
		print_error("open %s: %s\n", dir, udr_error_last()->message);
		fail();
	}
	free(dir);
	return st;
}

struct hlist {
	udr_hash v[512];
	int n;
};

static int hlist_cb(const udr_hash *h, void *payload)
{
	struct hlist *l = payload;
	if (l->n < 512)
		l->v[l->n++] = *h;
	return 0;
}

/* The object file of some piece of content h (not h itself) whose file
 * name ends with suffix ("" for raw), the n-th such found; NULL when none. */
static char *piece_file(udr_store *st, const udr_hash *h, const char *suffix, int n)
{
	struct hlist l;
	l.n = 0;
	assert_int_equal(udr_store_foreach(st, hlist_cb, &l), 0);
	for (int i = 0; i < l.n; i++) {
		char *p;
		size_t pl, sl = strlen(suffix);
		if (udr_hash_equal(&l.v[i], h))
			continue;
		p = th_object_path(udr_store_path(st), &l.v[i]);
		pl = strlen(p);
		if (strlen(strrchr(p, '/') + 1) == 64 + sl && strcmp(p + pl - sl, suffix) == 0 && n-- == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* Every read path fails with UDR_ECORRUPT naming h; nothing is returned
 * and no file is left. */
static void assert_reads_fail(fx *f, udr_store *st, const udr_hash *h)
{
	void *buf = NULL;
	size_t len = 7;
	char *out = th_join(f->dir, "read-out");
	int fd;
	assert_int_equal(udr_store_get(&buf, &len, st, h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, th_hex(h));
	assert_null(buf);
	assert_int_equal(udr_store_get_verified(&buf, &len, st, h), UDR_ECORRUPT);
	assert_null(buf);
	assert_int_equal(udr_store_verify(st, h), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, th_hex(h));
	unlink(out);
	assert_int_equal(udr_store_get_file(st, h, out, 0), UDR_ECORRUPT);
	assert_false(th_exists(out));
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(st, h, fd, 0), UDR_ECORRUPT);
	close(fd);
	unlink(out);
	free(out);
}

/* Every read path returns exactly data. */
static void assert_reads_ok(fx *f, udr_store *st, const udr_hash *h, const void *data, size_t n)
{
	void *buf = NULL;
	size_t len = 0;
	char *out = th_join(f->dir, "read-out"), *got;
	int rc = udr_store_get(&buf, &len, st, h);
	if (rc != 0)
		print_error("get: %s\n", udr_error_last()->message);
	assert_int_equal(rc, 0);
	assert_int_equal(len, n);
	assert_memory_equal(buf, data, n);
	udr_free(buf);
	assert_int_equal(udr_store_verify(st, h), 0);
	assert_int_equal(udr_store_get_file(st, h, out, 0), 0);
	got = th_read_file(out, &len);
	assert_non_null(got);
	assert_int_equal(len, n);
	assert_memory_equal(got, data, n);
	free(got);
	unlink(out);
	free(out);
}

/* The bug: udr_store_get, get_fd and get_file returned a damaged raw
 * object's bytes with 0, and a raw object truncated to 0 bytes as empty. */
static void store_get_verifies_raw_by_default(void **state)
{
	fx *f = *state;
	unsigned char data[5000];
	udr_hash h;
	char *p, *out = th_join(f->dir, "out");
	struct stat sb;
	int fd;
	th_fill(data, sizeof(data), 21);
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	th_flip_object(f->sdir, &h, 2500);
	assert_reads_fail(f, f->st, &h);
	/* A raw object up to 64 MiB is verified before anything is written. */
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(udr_store_get_fd(f->st, &h, fd, 0), UDR_ECORRUPT);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	close(fd);
	th_truncate_object(f->sdir, &h, 0);
	assert_reads_fail(f, f->st, &h);
	free(out);
}

/* Three chunked contents in a small_store: rnd (random: raw pieces), txt
 * (text: zstd pieces) and txt2 (txt edited, put from the file in2 with txt
 * as its base: delta pieces). */
#define KINDS_SIZE 200000
struct kinds {
	unsigned char rnd[KINDS_SIZE], txt[KINDS_SIZE], txt2[KINDS_SIZE];
	udr_hash hr, ht, ht2;
	char *in, *in2; /* files holding rnd and txt2 */
};

static struct kinds *kinds_put(fx *f, udr_store *st)
{
	struct kinds *k = calloc(1, sizeof(*k));
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	th_fill(k->rnd, KINDS_SIZE, 1);
	/* text with random digits: it compresses, and a delta of a few edits is
	 * much smaller than the piece compressed (deltas are written only then) */
	for (size_t i = 0; i < KINDS_SIZE; i++)
		k->txt[i] = (unsigned char)("row,1234,abcdef\n"[i % 16] + (i / 4096) % 7);
	for (size_t i = 4; i + 4 < KINDS_SIZE; i += 16)
		for (int d = 0; d < 4; d++)
			k->txt[i + (size_t)d] = (unsigned char)('0' + k->rnd[i + (size_t)d] % 10);
	memcpy(k->txt2, k->txt, KINDS_SIZE);
	for (size_t i = 0; i < KINDS_SIZE; i += 5000)
		k->txt2[i] ^= 0x20; /* a few edits in every piece: deltas pay */
	k->in = th_join(f->dir, "in");
	k->in2 = th_join(f->dir, "in2");
	th_write_file(k->in, k->rnd, KINDS_SIZE);
	th_write_file(k->in2, k->txt2, KINDS_SIZE);
	assert_int_equal(udr_store_put(&k->hr, st, k->rnd, KINDS_SIZE), 0);
	assert_int_equal(udr_store_put(&k->ht, st, k->txt, KINDS_SIZE), 0);
	po.base = &k->ht;
	assert_int_equal(udr_store_put_file_ext(&k->ht2, st, k->in2, &po), 0);
	return k;
}

static void kinds_free(struct kinds *k)
{
	free(k->in);
	free(k->in2);
	free(k);
}

/* The base piece a delta object names. */
static udr_hash delta_base(const char *delta_path)
{
	size_t dl = 0;
	unsigned char *d = (unsigned char *)th_read_file(delta_path, &dl);
	udr_hash bh;
	assert_non_null(d);
	assert_true(dl > 44);
	memcpy(bh.bytes, d + 12, 32);
	free(d);
	return bh;
}

/* Damage to each object kind (raw piece, zstd piece, manifest, delta, a
 * delta's base) fails every read. */
static void store_get_verifies_every_kind(void **state)
{
	fx *f = *state;
	udr_store *st = small_store(f, "kinds");
	struct kinds *k = kinds_put(f, st);
	size_t n = KINDS_SIZE;
	char *p;
	assert_reads_ok(f, st, &k->hr, k->rnd, n);
	assert_reads_ok(f, st, &k->ht2, k->txt2, n);

	/* a raw piece: one flipped bit */
	p = piece_file(st, &k->hr, "", 3);
	assert_non_null(p);
	th_flip_bit(p, 100);
	assert_reads_fail(f, st, &k->hr);
	th_flip_bit(p, 100);
	assert_reads_ok(f, st, &k->hr, k->rnd, n);
	free(p);
	/* the manifest */
	p = th_object_path(udr_store_path(st), &k->hr);
	assert_int_equal(strcmp(p + strlen(p) - 2, ".m"), 0);
	th_flip_bit(p, 70);
	assert_reads_fail(f, st, &k->hr);
	th_flip_bit(p, 70);
	free(p);
	/* a zstd piece of the text */
	p = piece_file(st, &k->ht, ".zst", 0);
	assert_non_null(p);
	th_flip_bit(p, 20);
	assert_reads_fail(f, st, &k->ht);
	th_flip_bit(p, 20);
	free(p);
	/* a delta piece */
	p = piece_file(st, &k->ht2, ".d", 0);
	assert_non_null(p);
	th_flip_bit(p, 60);
	assert_reads_fail(f, st, &k->ht2);
	th_flip_bit(p, 60);
	assert_reads_ok(f, st, &k->ht2, k->txt2, n);
	/* the delta's base, made raw with one byte flipped: the delta decodes
	 * against the base's bytes, which must be verified */
	{
		udr_hash bh = delta_base(p);
		void *bb = NULL;
		size_t bl = 0;
		char *bpath = th_object_path(udr_store_path(st), &bh), *braw = th_chunk_path(udr_store_path(st), &bh);
		assert_int_equal(udr_store_get(&bb, &bl, st, &bh), 0);
		unlink(bpath);
		((unsigned char *)bb)[bl / 2] ^= 1;
		th_write_file(braw, bb, bl);
		udr_free(bb);
		assert_reads_fail(f, st, &k->ht2);
		free(bpath);
		free(braw);
	}
	free(p);
	kinds_free(k);
	udr_store_close(st);
}

/* A manifest rewritten with a valid trailer but two pieces swapped: every
 * piece verifies, only the whole content's hash can tell.  Read with one
 * thread and with several (the content is hashed by a thread of its own
 * beside the one writing the output); a sink that fails part way stops the
 * read without hanging. */
static void store_get_detects_forged_manifest(void **state)
{
	fx *f = *state;
	static const char *const threads[] = {"1", "4"};
	for (size_t t = 0; t < 2; t++) {
		char name[32], *p, *mf, *out;
		unsigned char *data = malloc(KINDS_SIZE);
		udr_hash h;
		udr_hasher *hs;
		udr_hash tr;
		size_t ml = 0;
		uint64_t n;
		unsigned char tmp[36];
		int fd;
		udr_store *st;
		setenv("UDR_THREADS", threads[t], 1);
		snprintf(name, sizeof(name), "forged%s", threads[t]);
		st = small_store(f, name);
		unsetenv("UDR_THREADS");
		th_fill(data, KINDS_SIZE, 7 + (unsigned)t);
		assert_int_equal(udr_store_put(&h, st, data, KINDS_SIZE), 0);
		assert_reads_ok(f, st, &h, data, KINDS_SIZE);
		/* a sink that fails at once: an error, not a hang */
		out = th_join(f->dir, "ro-out");
		th_write_file(out, "", 0);
		fd = open(out, O_RDONLY);
		assert_true(fd >= 0);
		assert_true(udr_store_get_fd(st, &h, fd, 0) < 0);
		close(fd);
		unlink(out);
		free(out);
		p = th_object_path(udr_store_path(st), &h);
		assert_int_equal(strcmp(p + strlen(p) - 2, ".m"), 0);
		mf = th_read_file(p, &ml);
		assert_non_null(mf);
		memcpy(&n, mf + 16, 8); /* little-endian hosts only, like the store */
		assert_true(n >= 3);
		assert_int_equal(ml, 64 + 36 * n + 32);
		memcpy(tmp, mf + 64, 36);
		memcpy(mf + 64, mf + 64 + 36, 36);
		memcpy(mf + 64 + 36, tmp, 36);
		assert_int_equal(udr_hasher_new(&hs), 0);
		udr_hasher_update(hs, mf, 64 + 36 * n);
		udr_hasher_final(hs, &tr);
		memcpy(mf + 64 + 36 * n, tr.bytes, sizeof(tr.bytes));
		udr_hasher_free(hs);
		unlink(p);
		th_write_file(p, mf, ml);
		assert_reads_fail(f, st, &h);
		free(mf);
		free(p);
		free(data);
		udr_store_close(st);
	}
}

/* The bug: putting content whose stored object was damaged was a dedup hit
 * that kept the damage.  Single objects, raw and compressed. */
static void store_reput_repairs_damaged_object(void **state)
{
	fx *f = *state;
	unsigned char data[10000], text[10000];
	udr_hash h, h2, ht;
	char *p;
	th_fill(data, sizeof(data), 31);
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (unsigned char)('a' + i % 13);
	assert_int_equal(udr_store_put(&h, f->st, data, sizeof(data)), 0);
	assert_int_equal(udr_store_put(&ht, f->st, text, sizeof(text)), 0);
	p = th_chunk_path(f->sdir, &h);
	th_flip_bit(p, 9999);
	assert_int_equal(udr_store_verify(f->st, &h), UDR_ECORRUPT);
	assert_int_equal(udr_store_put(&h2, f->st, data, sizeof(data)), 0);
	assert_true(udr_hash_equal(&h, &h2));
	assert_reads_ok(f, f->st, &h, data, sizeof(data));
	/* truncated to nothing */
	th_truncate(p, 0);
	assert_int_equal(udr_store_put(&h2, f->st, data, sizeof(data)), 0);
	assert_reads_ok(f, f->st, &h, data, sizeof(data));
	free(p);
	/* a compressed object */
	p = th_object_path(f->sdir, &ht);
	assert_int_equal(strcmp(p + strlen(p) - 4, ".zst"), 0);
	th_truncate(p, 10);
	assert_int_equal(udr_store_put(&h2, f->st, text, sizeof(text)), 0);
	assert_reads_ok(f, f->st, &ht, text, sizeof(text));
	free(p);
	/* an intact object is left alone: same inode */
	{
		struct stat a, b;
		p = th_object_path(f->sdir, &ht);
		assert_int_equal(stat(p, &a), 0);
		assert_int_equal(udr_store_put(&h2, f->st, text, sizeof(text)), 0);
		assert_int_equal(stat(p, &b), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		free(p);
	}
	assert_int_equal(udr_store_fsck(NULL, f->st, NULL, NULL), 0);
}

/* Chunked content: a damaged piece, a damaged manifest and a delta whose
 * base is damaged are all repaired by putting the content again; and
 * udr_store_repair_file counts what it replaced. */
static void store_reput_repairs_pieces_and_manifest(void **state)
{
	fx *f = *state;
	udr_store *st = small_store(f, "rep");
	struct kinds *k = kinds_put(f, st);
	size_t n = KINDS_SIZE;
	uint64_t repaired = 99;
	udr_hash h;
	char *p;

	/* nothing damaged: nothing repaired */
	assert_int_equal(udr_store_repair_file(&h, &repaired, st, k->in), 0);
	assert_true(udr_hash_equal(&h, &k->hr));
	assert_int_equal(repaired, 0);
	/* two damaged pieces, one truncated to nothing */
	p = piece_file(st, &k->hr, "", 1);
	th_flip_bit(p, 1);
	free(p);
	p = piece_file(st, &k->hr, "", 4);
	th_truncate(p, 0);
	free(p);
	assert_reads_fail(f, st, &k->hr);
	assert_int_equal(udr_store_repair_file(&h, &repaired, st, k->in), 0);
	assert_int_equal(repaired, 2);
	assert_reads_ok(f, st, &k->hr, k->rnd, n);
	/* the manifest, by a plain put from memory */
	p = th_object_path(udr_store_path(st), &k->hr);
	th_flip_bit(p, 64 + 5);
	assert_reads_fail(f, st, &k->hr);
	assert_int_equal(udr_store_put(&h, st, k->rnd, n), 0);
	assert_reads_ok(f, st, &k->hr, k->rnd, n);
	free(p);
	/* a delta's base piece damaged: re-putting the delta'd content stores
	 * its piece anew; re-putting the base content repairs the base */
	p = piece_file(st, &k->ht2, ".d", 0);
	assert_non_null(p);
	{
		udr_hash bh = delta_base(p);
		char *bpath = th_object_path(udr_store_path(st), &bh);
		th_truncate(bpath, 5);
		free(bpath);
	}
	free(p);
	assert_reads_fail(f, st, &k->ht2);
	assert_reads_fail(f, st, &k->ht);
	assert_int_equal(udr_store_repair_file(&h, &repaired, st, k->in2), 0);
	assert_true(udr_hash_equal(&h, &k->ht2));
	assert_true(repaired >= 1);
	assert_reads_ok(f, st, &k->ht2, k->txt2, n);
	assert_int_equal(udr_store_put(&h, st, k->txt, n), 0);
	assert_reads_ok(f, st, &k->ht, k->txt, n);
	assert_int_equal(udr_store_fsck(NULL, st, NULL, NULL), 0);
	kinds_free(k);
	udr_store_close(st);
}

/* Format 1 stores and UDR_PUT_WHOLE stream raw objects through a temp file:
 * a re-put repairs those too. */
static void store_reput_repairs_raw_stream(void **state)
{
	fx *f = *state;
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_store *st1 = NULL;
	char *d1 = th_join(f->dir, "f1"), *in = th_join(f->dir, "in"), *p;
	size_t n = 300000;
	unsigned char *data = malloc(n);
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	uint64_t repaired = 0;
	udr_hash h, h2;
	th_fill(data, n, 3);
	th_write_file(in, data, n);
	cfg.format = 1;
	assert_int_equal(udr_store_open_ext(&st1, d1, UDR_OPEN_CREATE, &cfg), 0);
	/* from memory */
	assert_int_equal(udr_store_put(&h, st1, data, n), 0);
	p = th_chunk_path(d1, &h);
	th_flip_bit(p, n - 1);
	assert_reads_fail(f, st1, &h);
	assert_int_equal(udr_store_put(&h2, st1, data, n), 0);
	assert_reads_ok(f, st1, &h, data, n);
	/* streamed from a file */
	th_truncate(p, 0);
	assert_int_equal(udr_store_repair_file(&h2, &repaired, st1, in), 0);
	assert_int_equal(repaired, 1);
	assert_reads_ok(f, st1, &h, data, n);
	free(p);
	udr_store_close(st1);
	/* UDR_PUT_WHOLE in a format-2 store */
	po.flags = UDR_PUT_WHOLE;
	assert_int_equal(udr_store_put_file_ext(&h, f->st, in, &po), 0);
	p = th_chunk_path(f->sdir, &h);
	th_flip_bit(p, 7);
	assert_reads_fail(f, f->st, &h);
	assert_int_equal(udr_store_put_file_ext(&h2, f->st, in, &po), 0);
	assert_reads_ok(f, f->st, &h, data, n);
	free(p);
	free(d1);
	free(in);
	free(data);
}

static void store_verify_api(void **state)
{
	fx *f = *state;
	udr_hash h = put_str(f->st, "verify me"), absent;
	udr_hash_buf(&absent, "absent", 6);
	assert_int_equal(udr_store_verify(f->st, &h), 0);
	assert_int_equal(udr_store_verify(f->st, &absent), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, th_hex(&absent));
	assert_int_equal(udr_store_verify(NULL, &h), UDR_EINVAL);
	assert_int_equal(udr_store_verify(f->st, NULL), UDR_EINVAL);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests_format2[] = {
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
		T(store_get_verifies_raw_by_default),
		T(store_get_verifies_every_kind),
		T(store_get_detects_forged_manifest),
		T(store_reput_repairs_damaged_object),
		T(store_reput_repairs_pieces_and_manifest),
		T(store_reput_repairs_raw_stream),
		T(store_verify_api),
	};
	/* format 3: all but the tests of loose-file layout and damage by file
	 * name (test_pack.c has their pack counterparts) */
	const struct CMUnitTest tests_format3[] = {
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
		T(store_fsck_removes_abandoned_temp),
		T(store_threads_put_same_and_different),
		T(store_get_verifies_raw_by_default),
		T(store_reput_repairs_raw_stream),
		T(store_verify_api),
	};
	int failed;
	g_format = 3;
	failed = th_run(argc, argv, tests_format3, NULL, NULL);
	g_format = 2;
	failed += cmocka_run_group_tests(tests_format2, NULL, NULL);
	return failed;
}
