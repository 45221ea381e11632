/*
 * test_review_capi38.c - a hostile review of the C API (stop 38): wrong
 * answers with success at the edges of udr_catalog_log's query, a wrong size
 * from udr_store_size for a damaged one-piece chunk, an integrity error for
 * commit 0, a crash on tables = NULL, a leak on non-UTF-8 metadata, and
 * settings out of range accepted.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fx {
	char *dir;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* a database with three commits of t */
static udr_db *three_commits(fx *f)
{
	udr_db *db = NULL;
	char *root = th_join(f->dir, "db");
	assert_int_equal(udr_db_open(&db, root, UDR_OPEN_CREATE), 0);
	free(root);
	for (int i = 0; i < 3; i++) {
		udr_version *v = NULL;
		udr_hash h;
		char data[32];
		snprintf(data, sizeof(data), "content %d", i);
		assert_int_equal(udr_store_put(&h, udr_db_store(db), data, strlen(data)), 0);
		assert_int_equal(udr_version_new(&v, "t", 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_catalog_commit_next(udr_db_catalog(db), v), 0);
		udr_version_free(v);
	}
	return db;
}

static int log_count(size_t *n, udr_db *db, const udr_log_query *q)
{
	udr_commit **cs = NULL;
	int rc = udr_catalog_log(&cs, n, udr_db_catalog(db), q);
	if (rc == 0)
		udr_commit_array_free(cs, *n);
	return rc;
}

static void capi_log_query_edges(void **state)
{
	udr_db *db = three_commits(*state);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	size_t n = 99;

	/* every commit is after the first millisecond (INT64_MIN - 1 wrapped
	 * to the last one: an empty log, rc 0) */
	q.since_ms = INT64_MIN;
	assert_int_equal(log_count(&n, db, &q), 0);
	assert_int_equal(n, 3);
	q.since_ms = -1000;
	assert_int_equal(log_count(&n, db, &q), 0);
	assert_int_equal(n, 3);
	q.since_ms = INT64_MAX;
	assert_int_equal(log_count(&n, db, &q), 0);
	assert_int_equal(n, 0);

	/* after the head: nothing (UINT64_MAX + 1 was commit 0: "missing",
	 * UDR_ECORRUPT on a sound store) */
	q = (udr_log_query)UDR_LOG_QUERY_INIT;
	for (uint64_t since = 2; since != 0; since = since == 2 ? 3 : since == 3 ? UINT64_MAX - 1 :
	                                                          since == UINT64_MAX - 1 ? UINT64_MAX : 0) {
		q.since_seq = since;
		n = 99;
		assert_int_equal(log_count(&n, db, &q), 0);
		assert_int_equal(n, since == 2 ? 1 : 0);
	}
	q.since_seq = UINT64_MAX;
	q.newest_first = 1;
	assert_int_equal(log_count(&n, db, &q), 0);
	assert_int_equal(n, 0);

	/* tables NULL is "all", whatever ntables says (it crashed) */
	q = (udr_log_query)UDR_LOG_QUERY_INIT;
	q.ntables = 2;
	assert_int_equal(log_count(&n, db, &q), 0);
	assert_int_equal(n, 3);

	/* no record 0: an invalid argument, not damage */
	{
		char *out = NULL;
		assert_int_equal(udr_expire_record_json(&out, udr_db_catalog(db), 0), UDR_EINVAL);
		assert_null(out);
		udr_error_clear();
	}
	udr_db_close(db);
}

/* Flip one byte of the file at off. */
static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void capi_size_of_a_damaged_piece(void **state)
{
	fx *f = *state;
	for (int format = 2; format <= 3; format++) {
		udr_store_config cfg = UDR_STORE_CONFIG_INIT;
		udr_store *s = NULL;
		char *dir = th_fmt("%s/s%d", f->dir, format), *loc = NULL, file[4200];
		char data[1000];
		udr_hash h;
		uint64_t size = 0;
		long off = 0;
		cfg.format = format;
		for (int i = 0; i < 1000; i++)
			data[i] = "hello world "[i % 12]; /* compressed: its size is in a header */
		assert_int_equal(udr_store_open_ext(&s, dir, UDR_OPEN_CREATE, &cfg), 0);
		assert_int_equal(udr_store_put(&h, s, data, sizeof(data)), 0);
		assert_int_equal(udr_store_size(&size, s, &h), 0);
		assert_int_equal(size, 1000);
		assert_int_equal(udr_store_debug_locate(&loc, s, &h), 0);
		if (format == 3) {
			/* "pack PATH OFFSET ...": the entry's raw size at +8 */
			assert_int_equal(sscanf(loc, "pack %4199s %ld", file, &off), 2);
			off += 9;
		} else {
			/* "loose PATH ...": the zstd frame's content size after its
			 * 6-byte header */
			assert_int_equal(sscanf(loc, "loose %4199s", file), 1);
			off = 6;
		}
		free(loc);
		udr_store_close(s);
		flip(file, off);
		assert_int_equal(udr_store_open(&s, dir, 0), 0);
		size = 0;
		assert_int_equal(udr_store_size(&size, s, &h), UDR_ECORRUPT);
		udr_error_clear();
		assert_int_equal(udr_store_verify(s, &h), UDR_ECORRUPT);
		udr_error_clear();
		/* a good copy again: the right size, whichever copy's header is
		 * read first (the damaged one made it "corrupt") */
		assert_int_equal(udr_store_put(&h, s, data, sizeof(data)), 0);
		assert_int_equal(udr_store_size(&size, s, &h), 0);
		assert_int_equal(size, 1000);

		udr_store_close(s);
		free(dir);
	}
}

/* A damaged pack entry first found, an intact loose copy beside it: the
 * size is the intact copy's (it said "corrupt": the header of one copy
 * compared with the bytes of the other). */
static void capi_size_with_one_copy_intact(void **state)
{
	fx *f = *state;
	udr_store *s = NULL;
	char *dir = th_join(f->dir, "two"), *loc = NULL, *loose, file[4200];
	unsigned char data[1000];
	udr_hash h;
	uint64_t size = 0;
	long off = 0;
	th_fill(data, sizeof(data), 38); /* incompressible: a raw entry */
	assert_int_equal(udr_store_open(&s, dir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_store_put(&h, s, data, sizeof(data)), 0);
	assert_int_equal(udr_store_debug_locate(&loc, s, &h), 0);
	assert_int_equal(sscanf(loc, "pack %4199s %ld", file, &off), 2);
	free(loc);
	udr_store_close(s);
	flip(file, off + 9); /* the entry's raw size */
	loose = th_chunk_path(dir, &h);
	{
		char *d1 = strdup(loose);
		*strrchr(d1, '/') = '\0';
		*strrchr(d1, '/') = '\0';
		(void)mkdir(d1, 0755);
		free(d1);
		d1 = strdup(loose);
		*strrchr(d1, '/') = '\0';
		(void)mkdir(d1, 0755);
		free(d1);
	}
	th_write_file(loose, data, sizeof(data));
	assert_int_equal(udr_store_open(&s, dir, 0), 0);
	assert_int_equal(udr_store_size(&size, s, &h), 0);
	assert_int_equal(size, 1000);
	udr_store_close(s);
	free(loose);
	free(dir);
}

static void capi_commit_refusals_leak_nothing(void **state)
{
	udr_db *db = three_commits(*state);
	udr_version *v = NULL;
	udr_hash h;
	uint64_t latest = 0;
	/* refused (not UTF-8): the JSON built so far was leaked (LSan, ASan
	 * half of make test) */
	assert_int_equal(udr_store_put(&h, udr_db_store(db), "x", 1), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(udr_version_new(&v, "t", 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_version_set_meta(v, "a", "fine"), 0);
		assert_int_equal(udr_version_set_meta(v, "b", "\xff\xfe"), 0);
		assert_int_equal(udr_catalog_commit_next(udr_db_catalog(db), v), UDR_EINVAL);
		udr_error_clear();
		udr_version_free(v);
	}
	assert_int_equal(udr_catalog_latest(&latest, udr_db_catalog(db), "t"), 0);
	assert_int_equal(latest, 3);
	udr_db_close(db);
}

static void capi_settings_out_of_range(void **state)
{
	fx *f = *state;
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	udr_store *s = NULL;
	char *dir = th_join(f->dir, "cfg"), *file = th_join(f->dir, "in");
	udr_hash h;
	cfg.compression_level = -2;
	assert_int_equal(udr_store_open_ext(&s, dir, UDR_OPEN_CREATE, &cfg), UDR_EINVAL);
	assert_null(s);
	assert_false(th_exists(dir));
	udr_error_clear();
	cfg.compression_level = -1; /* the default */
	assert_int_equal(udr_store_open_ext(&s, dir, UDR_OPEN_CREATE, &cfg), 0);
	th_write_file(file, "abc", 3);
	po.flags = 0x80;
	assert_int_equal(udr_store_put_file_ext(&h, s, file, &po), UDR_EINVAL);
	udr_error_clear();
	po.flags = UDR_PUT_WHOLE;
	assert_int_equal(udr_store_put_file_ext(&h, s, file, &po), 0);
	udr_store_close(s);
	free(dir);
	free(file);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(capi_log_query_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(capi_size_of_a_damaged_piece, setup, teardown),
		cmocka_unit_test_setup_teardown(capi_size_with_one_copy_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(capi_commit_refusals_leak_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(capi_settings_out_of_range, setup, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
