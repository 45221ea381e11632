/*
 * test_catalog.c - the versioned table catalog: sequential commits and
 * conflicts, commit_next, missing chunks, reads by number and latest, listing,
 * table-name validation, metadata round trips, stale caches and orphan
 * version files, fsck, several handles and threads.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udr/sys/io.h>
#include <udr/txn.h>

#include "catalog/catalog_internal.h"

typedef struct fx {
	char *dir;
	char *sdir; /* <dir>/chunks */
	char *cdir; /* <dir>/catalog */
	udr_store *st;
	udr_catalog *cat;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->sdir = th_join(f->dir, "chunks");
	f->cdir = th_join(f->dir, "catalog");
	if (udr_store_open(&f->st, f->sdir, UDR_OPEN_CREATE) != 0 ||
	    udr_catalog_open(&f->cat, f->cdir, f->st, UDR_OPEN_CREATE) != 0) {
		print_error("open: %s\n", udr_error_last()->message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_catalog_close(f->cat);
	udr_store_close(f->st);
	th_rmtree(f->dir);
	free(f->sdir);
	free(f->cdir);
	free(f->dir);
	free(f);
	return 0;
}

static udr_hash put_str(fx *f, const char *s)
{
	udr_hash h;
	assert_int_equal(udr_store_put(&h, f->st, s, strlen(s)), 0);
	return h;
}

/* Commit version num of table with one chunk holding text; asserts rc. */
static int commit_one(fx *f, const char *table, uint64_t num, const char *text, udr_hash *out)
{
	udr_hash h = put_str(f, text);
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, table, num), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	int rc = num ? udr_catalog_commit(f->cat, v) : udr_catalog_commit_next(f->cat, v);
	if (rc == 0 && num == 0)
		num = v->version;
	udr_version_free(v);
	if (out)
		*out = h;
	return rc == 0 ? (int)num : rc;
}

static void expect_latest(fx *f, const char *table, uint64_t want)
{
	uint64_t l = 0;
	int rc = udr_catalog_latest(&l, f->cat, table);
	if (rc != 0) {
		print_error("latest(%s): %d %s\n", table, rc, udr_error_last()->message);
		fail();
	}
	assert_int_equal(l, want);
}

static void expect_latest_on(udr_catalog *c, const char *table, uint64_t want)
{
	uint64_t l = 0;
	assert_int_equal(udr_catalog_latest(&l, c, table), 0);
	assert_int_equal(l, want);
}

static char *version_file(fx *f, const char *table, uint64_t num)
{
	return th_fmt("%s/tables/%s/%020llu.json", f->cdir, table, (unsigned long long)num);
}

/* ---- commits ----------------------------------------------------------- */

static void catalog_commit_sequence(void **state)
{
	fx *f = *state;
	udr_hash hs[5];
	int64_t before = 0;
	for (uint64_t n = 1; n <= 5; n++) {
		char text[32];
		snprintf(text, sizeof(text), "content %llu", (unsigned long long)n);
		udr_hash h = put_str(f, text);
		hs[n - 1] = h;
		udr_version *v = NULL;
		assert_int_equal(udr_version_new(&v, "t", n), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_version_add_chunk(v, &hs[0]), 0);
		assert_int_equal(v->commit_seq, 0);
		assert_int_equal(udr_catalog_commit(f->cat, v), 0);
		assert_int_equal(v->version, n);
		assert_int_equal(v->parent, n - 1);
		assert_int_equal(v->commit_seq, n);
		assert_true(v->created_ms > 1500000000000LL);
		assert_true(v->created_ms >= before);
		before = v->created_ms;
		udr_version_free(v);
		expect_latest(f, "t", n);
	}
	uint64_t head = 0;
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 5);
	for (uint64_t n = 1; n <= 5; n++) {
		udr_version *v = NULL;
		assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", n), 0);
		assert_string_equal(v->table, "t");
		assert_int_equal(v->version, n);
		assert_int_equal(v->parent, n - 1);
		assert_int_equal(v->commit_seq, n);
		assert_int_equal(v->nchunks, 2);
		assert_true(udr_hash_equal(&v->chunks[0], &hs[n - 1]));
		assert_true(udr_hash_equal(&v->chunks[1], &hs[0]));
		assert_null(v->message);
		assert_int_equal(v->nmeta, 0);
		udr_version_free(v);
	}
}

static void catalog_empty_head_and_tables(void **state)
{
	fx *f = *state;
	uint64_t head = 99;
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 0);
	char **names = NULL;
	size_t count = 99;
	assert_int_equal(udr_catalog_list_tables(&names, &count, f->cat), 0);
	assert_int_equal(count, 0);
	udr_strarray_free(names, count);
	udr_strarray_free(NULL, 0);
	uint64_t l;
	assert_int_equal(udr_catalog_latest(&l, f->cat, "nosuch"), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "nosuch");
	uint64_t *vs = NULL;
	assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, "nosuch"), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "nosuch");
}

static void catalog_conflict_states_expected(void **state)
{
	fx *f = *state;
	assert_int_equal(commit_one(f, "t", 1, "a", NULL), 1);
	/* Skipping ahead: conflict, expected 2. */
	assert_int_equal(commit_one(f, "t", 3, "b", NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "2");
	/* Committing an existing number again: conflict, expected 2. */
	assert_int_equal(commit_one(f, "t", 1, "c", NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "2");
	/* A new table must start at 1. */
	assert_int_equal(commit_one(f, "u", 2, "d", NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "1");
	/* Nothing was committed by the failures. */
	expect_latest(f, "t", 1);
	uint64_t head = 0;
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 1);
	uint64_t l;
	assert_int_equal(udr_catalog_latest(&l, f->cat, "u"), UDR_ENOTFOUND);
	/* And the right number still works. */
	assert_int_equal(commit_one(f, "t", 2, "e", NULL), 2);
	assert_int_equal(commit_one(f, "u", 1, "f", NULL), 1);
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 3);
}

static void catalog_commit_version_zero_is_einval(void **state)
{
	fx *f = *state;
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", 0), 0);
	assert_int_equal(udr_catalog_commit(f->cat, v), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	udr_version_free(v);
	uint64_t l;
	assert_int_equal(udr_catalog_latest(&l, f->cat, "t"), UDR_ENOTFOUND);
}

static void catalog_commit_next_assigns(void **state)
{
	fx *f = *state;
	for (int i = 1; i <= 12; i++)
		assert_int_equal(commit_one(f, "n", 0, "x", NULL), i);
	/* Mixed with explicit commits. */
	assert_int_equal(commit_one(f, "n", 13, "y", NULL), 13);
	assert_int_equal(commit_one(f, "n", 0, "z", NULL), 14);
	/* commit_next ignores a stale number already in v->version. */
	udr_hash h = put_str(f, "w");
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "n", 3), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_catalog_commit_next(f->cat, v), 0);
	assert_int_equal(v->version, 15);
	assert_int_equal(v->parent, 14);
	udr_version_free(v);
	expect_latest(f, "n", 15);
}

static void catalog_missing_chunk_commits_nothing(void **state)
{
	fx *f = *state;
	assert_int_equal(commit_one(f, "t", 1, "present", NULL), 1);
	udr_hash ghost;
	udr_hash_buf(&ghost, "not in the store", 16);
	char hex[65];
	udr_hash_tohex(hex, &ghost);
	udr_hash good = put_str(f, "good");
	for (int next = 0; next < 2; next++) {
		udr_version *v = NULL;
		assert_int_equal(udr_version_new(&v, "t", next ? 0 : 2), 0);
		assert_int_equal(udr_version_add_chunk(v, &good), 0);
		assert_int_equal(udr_version_add_chunk(v, &ghost), 0);
		int rc = next ? udr_catalog_commit_next(f->cat, v) : udr_catalog_commit(f->cat, v);
		assert_int_equal(rc, UDR_ENOTFOUND);
		th_assert_error(UDR_ENOTFOUND, hex);
		udr_version_free(v);
		/* A new table too. */
		assert_int_equal(udr_version_new(&v, "ghost", next ? 0 : 1), 0);
		assert_int_equal(udr_version_add_chunk(v, &ghost), 0);
		rc = next ? udr_catalog_commit_next(f->cat, v) : udr_catalog_commit(f->cat, v);
		assert_int_equal(rc, UDR_ENOTFOUND);
		udr_version_free(v);
	}
	expect_latest(f, "t", 1);
	uint64_t head = 0;
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 1);
	char **names = NULL;
	size_t count = 0;
	assert_int_equal(udr_catalog_list_tables(&names, &count, f->cat), 0);
	assert_int_equal(count, 1);
	assert_string_equal(names[0], "t");
	udr_strarray_free(names, count);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 2), UDR_ENOTFOUND);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
	/* Once the chunk exists, version 2 commits. */
	udr_hash h2;
	assert_int_equal(udr_store_put(&h2, f->st, "not in the store", 16), 0);
	assert_true(udr_hash_equal(&h2, &ghost));
	assert_int_equal(udr_version_new(&v, "t", 2), 0);
	assert_int_equal(udr_version_add_chunk(v, &ghost), 0);
	assert_int_equal(udr_catalog_commit(f->cat, v), 0);
	udr_version_free(v);
}

static void catalog_empty_version_has_no_chunks(void **state)
{
	fx *f = *state;
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "empty", 1), 0);
	assert_int_equal(udr_catalog_commit(f->cat, v), 0);
	udr_version_free(v);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "empty", 1), 0);
	assert_int_equal(v->nchunks, 0);
	udr_version_free(v);
}

/* ---- reads -------------------------------------------------------------- */

static void catalog_get_version_latest_and_by_number(void **state)
{
	fx *f = *state;
	udr_hash h1, h2, h3;
	commit_one(f, "t", 1, "one", &h1);
	commit_one(f, "t", 2, "two", &h2);
	commit_one(f, "t", 3, "three", &h3);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 0), 0);
	assert_int_equal(v->version, 3);
	assert_true(udr_hash_equal(&v->chunks[0], &h3));
	udr_version_free(v);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 2), 0);
	assert_int_equal(v->version, 2);
	assert_int_equal(v->nchunks, 1);
	assert_true(udr_hash_equal(&v->chunks[0], &h2));
	udr_version_free(v);
	v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 4), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "4");
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 99999), UDR_ENOTFOUND);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "other", 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "other");
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "other", 1), UDR_ENOTFOUND);
	assert_null(v);
}

static void catalog_list_versions_ascending(void **state)
{
	fx *f = *state;
	for (int i = 1; i <= 23; i++)
		assert_int_equal(commit_one(f, "t", (uint64_t)i, "c", NULL), i);
	commit_one(f, "other", 1, "c", NULL);
	uint64_t *vs = NULL;
	size_t count = 0;
	assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, "t"), 0);
	assert_int_equal(count, 23);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(vs[i], i + 1);
	udr_free(vs);
	assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, "other"), 0);
	assert_int_equal(count, 1);
	assert_int_equal(vs[0], 1);
	udr_free(vs);
}

static void catalog_list_tables_sorted(void **state)
{
	fx *f = *state;
	const char *names[] = {"b", "a", "B", "a.b", "Z_9", "a-c", "_x", "10", "9"};
	const char *sorted[] = {"10", "9", "B", "Z_9", "_x", "a", "a-c", "a.b", "b"};
	for (size_t i = 0; i < 9; i++)
		assert_int_equal(commit_one(f, names[i], 1, names[i], NULL), 1);
	commit_one(f, "b", 2, "again", NULL);
	char **out = NULL;
	size_t count = 0;
	assert_int_equal(udr_catalog_list_tables(&out, &count, f->cat), 0);
	assert_int_equal(count, 9);
	for (size_t i = 0; i < count; i++)
		assert_string_equal(out[i], sorted[i]);
	udr_strarray_free(out, count);
}

static void catalog_orphan_version_files_are_invisible(void **state)
{
	fx *f = *state;
	commit_one(f, "real", 1, "r1", NULL);
	char *src = version_file(f, "real", 1);
	size_t len = 0;
	char *content = th_read_file(src, &len);
	if (content == NULL) {
		print_error("version file not at %s (docs/FORMAT.md layout)\n", src);
		fail();
	}
	/* Orphans as a crash before the commit point leaves them: version files
	 * naming their own table and number and a commit (seq 50) that never
	 * happened.  One of a table that was never committed: */
	char *pd = th_fmt("%s/tables/phantom", f->cdir);
	assert_int_equal(mkdir(pd, 0755), 0);
	char *pf = version_file(f, "phantom", 1);
	char *c1 = th_replace(content, "\"table\":\"real\"", "\"table\":\"phantom\"");
	char *c2 = th_replace(c1, "\"commit\":1", "\"commit\":50");
	th_write_file(pf, c2, strlen(c2));
	/* One of the next version of a committed table: */
	char *of = version_file(f, "real", 2);
	char *c3 = th_replace(content, "\"version\":1", "\"version\":2");
	char *c4 = th_replace(c3, "\"parent\":0", "\"parent\":1");
	char *c5 = th_replace(c4, "\"commit\":1", "\"commit\":2");
	th_write_file(of, c5, strlen(c5));
	free(c1);
	free(c2);
	free(c3);
	free(c4);
	free(c5);

	char **names = NULL;
	size_t count = 0;
	assert_int_equal(udr_catalog_list_tables(&names, &count, f->cat), 0);
	assert_int_equal(count, 1);
	assert_string_equal(names[0], "real");
	udr_strarray_free(names, count);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "phantom", 1), UDR_ENOTFOUND);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "phantom", 0), UDR_ENOTFOUND);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "real", 2), UDR_ENOTFOUND);
	expect_latest(f, "real", 1);
	uint64_t *vs = NULL;
	assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, "real"), 0);
	assert_int_equal(count, 1);
	udr_free(vs);
	/* fsck: orphans are garbage, not corruption. */
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);

	/* The orphans must not block the real commits of those numbers. */
	udr_hash h2, hp;
	assert_int_equal(commit_one(f, "real", 2, "r2", &h2), 2);
	assert_int_equal(commit_one(f, "phantom", 1, "p1", &hp), 1);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "real", 2), 0);
	assert_true(udr_hash_equal(&v->chunks[0], &h2));
	udr_version_free(v);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "phantom", 1), 0);
	assert_true(udr_hash_equal(&v->chunks[0], &hp));
	assert_string_equal(v->table, "phantom");
	udr_version_free(v);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
	free(of);
	free(pf);
	free(pd);
	free(content);
	free(src);
}

/* FORMAT.md: a version file whose commit record does not list it is an
 * orphan (invisible), even when its fields name another table. */
static void catalog_misplaced_version_file_is_orphan(void **state)
{
	fx *f = *state;
	commit_one(f, "real", 1, "r1", NULL);
	char *src = version_file(f, "real", 1);
	size_t len = 0;
	char *content = th_read_file(src, &len);
	assert_non_null(content);
	char *pd = th_fmt("%s/tables/copy", f->cdir);
	assert_int_equal(mkdir(pd, 0755), 0);
	char *pf = version_file(f, "copy", 1);
	th_write_file(pf, content, len);
	char **names = NULL;
	size_t count = 0;
	int rc = udr_catalog_list_tables(&names, &count, f->cat);
	if (rc != 0) {
		print_error("list_tables with a misplaced copy: %d %s\n", rc, udr_error_last()->message);
		fail();
	}
	assert_int_equal(count, 1);
	udr_strarray_free(names, count);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "copy", 1), UDR_ENOTFOUND);
	assert_int_equal(commit_one(f, "copy", 1, "c1", NULL), 1);
	free(pf);
	free(pd);
	free(content);
	free(src);
}

static void catalog_stale_caches_are_repaired(void **state)
{
	fx *f = *state;
	for (int i = 1; i <= 3; i++)
		commit_one(f, "t", (uint64_t)i, "c", NULL);
	char *latest = th_fmt("%s/tables/t/LATEST", f->cdir);
	char *head = th_fmt("%s/HEAD", f->cdir);
	/* stale-low, empty or junk caches are ignored; a LATEST above the
	 * truth is damage (tested below), never silently believed or skipped */
	const char *bad[] = {"1\n", "0", "garbage", "", "{\"version\": 1}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		th_write_file(latest, bad[i], strlen(bad[i]));
		th_write_file(head, bad[i], strlen(bad[i]));
		udr_catalog *c2 = NULL;
		assert_int_equal(udr_catalog_open(&c2, f->cdir, f->st, 0), 0);
		uint64_t l = 0, hd = 0;
		assert_int_equal(udr_catalog_latest(&l, c2, "t"), 0);
		assert_int_equal(l, 3);
		assert_int_equal(udr_catalog_head(&hd, c2), 0);
		assert_int_equal(hd, 3);
		udr_version *v = NULL;
		assert_int_equal(udr_catalog_get_version(&v, c2, "t", 0), 0);
		assert_int_equal(v->version, 3);
		udr_version_free(v);
		udr_catalog_close(c2);
	}
	/* LATEST is a cache of older stores that the log makes needless: even
	 * one above the truth is not believed. */
	th_write_file(latest, "99\n", 3);
	expect_latest(f, "t", 3);
	/* HEAD is written after every commit point: one naming a missing
	 * record says records were lost, and nothing may be committed over
	 * them (the sequence numbers would be handed out again). */
	th_write_file(head, "99\n", 3);
	{
		uint64_t hd = 0;
		assert_int_equal(udr_catalog_head(&hd, f->cat), UDR_ECORRUPT);
		th_assert_error(UDR_ECORRUPT, "99");
		assert_int_equal(commit_one(f, "t", 0, "refused", NULL), UDR_ECORRUPT);
		assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), UDR_ECORRUPT);
		assert_int_equal(udr_catalog_head(&hd, f->cat), UDR_ECORRUPT); /* fsck kept the evidence */
		th_write_file(head, "3", 1);
		assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
		expect_latest(f, "t", 3);
	}
	/* Deleted caches too; and the next commit number is right. */
	unlink(latest);
	unlink(head);
	expect_latest(f, "t", 3);
	th_write_file(latest, "1", 1);
	th_write_file(head, "1", 1);
	assert_int_equal(commit_one(f, "t", 0, "next", NULL), 4);
	th_write_file(latest, "2", 1);
	assert_int_equal(commit_one(f, "t", 4, "conflict", NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "5");
	assert_int_equal(commit_one(f, "t", 5, "ok", NULL), 5);
	uint64_t hd = 0;
	assert_int_equal(udr_catalog_head(&hd, f->cat), 0);
	assert_int_equal(hd, 5);
	free(latest);
	free(head);
}

/* ---- names -------------------------------------------------------------- */

static void catalog_bad_table_names(void **state)
{
	fx *f = *state;
	char long129[130], long128[129];
	memset(long129, 'a', 129);
	long129[129] = '\0';
	memset(long128, 'b', 128);
	long128[128] = '\0';
	struct {
		const char *name;
		const char *quoted; /* expected in the message (NULL: not checked) */
	} bad[] = {
		{"a/b", "a/b"}, {"..", ".."}, {".", NULL}, {".x", ".x"}, {"-x", "-x"}, {"", NULL},
		{long129, NULL}, {"t\xc3\xa4", "t"}, {"a b", "a b"}, {"x\n", "x"}, {"../etc", NULL},
		{"a\\b", NULL}, {"a:b", "a:b"}, {"*", "*"}, {"\t", NULL},
	};
	commit_one(f, "keep", 1, "k", NULL);
	int before = th_count_files_rec(f->cdir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *n = bad[i].name;
		udr_error_clear();
		if (udr_table_name_check(n) != UDR_EINVAL) {
			print_error("name check accepted bad name #%zu \"%s\"\n", i, n);
			fail();
		}
		th_assert_error(UDR_EINVAL, bad[i].quoted);
		/* Non-printable bytes are escaped in the message. */
		const char *m = udr_error_last()->message;
		for (const char *p = m; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		udr_version *v = (udr_version *)0;
		assert_int_equal(udr_version_new(&v, n, 1), UDR_EINVAL);
		th_assert_error(UDR_EINVAL, bad[i].quoted);
		uint64_t l;
		assert_int_equal(udr_catalog_latest(&l, f->cat, n), UDR_EINVAL);
		udr_version *g = NULL;
		assert_int_equal(udr_catalog_get_version(&g, f->cat, n, 0), UDR_EINVAL);
		assert_int_equal(udr_catalog_get_version(&g, f->cat, n, 1), UDR_EINVAL);
		uint64_t *vs = NULL;
		size_t count;
		assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, n), UDR_EINVAL);
	}
	assert_int_equal(udr_table_name_check(NULL), UDR_EINVAL);
	/* A version whose table field was changed behind the API's back is
	 * still refused at commit, writing nothing. */
	const char *evil[] = {"../evil", "a/b", ".hidden", ""};
	udr_hash h = put_str(f, "payload");
	for (size_t i = 0; i < 4; i++) {
		udr_version *v = NULL;
		assert_int_equal(udr_version_new(&v, "fine", 1), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		free(v->table);
		v->table = strdup(evil[i]);
		assert_int_equal(udr_catalog_commit(f->cat, v), UDR_EINVAL);
		assert_int_equal(udr_catalog_commit_next(f->cat, v), UDR_EINVAL);
		udr_version_free(v);
	}
	assert_int_equal(th_count_files_rec(f->cdir), before);
	char *outside = th_join(f->dir, "evil");
	assert_false(th_exists(outside));
	free(outside);
	uint64_t head = 0;
	assert_int_equal(udr_catalog_head(&head, f->cat), 0);
	assert_int_equal(head, 1);

	/* The boundary cases that are valid. */
	assert_int_equal(udr_table_name_check(long128), 0);
	assert_int_equal(udr_table_name_check("a.b-c_D9"), 0);
	assert_int_equal(udr_table_name_check("x"), 0);
	assert_int_equal(udr_table_name_check("_"), 0);
	assert_int_equal(udr_table_name_check("a.."), 0);
	assert_int_equal(commit_one(f, long128, 1, "long", NULL), 1);
	assert_int_equal(commit_one(f, "a.b-c_D9", 1, "dots", NULL), 1);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, long128, 1), 0);
	assert_string_equal(v->table, long128);
	udr_version_free(v);
}

/* ---- metadata ------------------------------------------------------------ */

static void version_setters(void **state)
{
	(void)state;
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", 0), 0);
	assert_string_equal(v->table, "t");
	assert_int_equal(v->version, 0);
	assert_int_equal(v->nchunks, 0);
	assert_null(v->message);
	assert_int_equal(udr_version_set_meta(v, "", "x"), UDR_EINVAL);
	assert_int_equal(udr_version_set_meta(v, NULL, "x"), UDR_EINVAL);
	assert_int_equal(udr_version_set_meta(v, "k", NULL), UDR_EINVAL);
	assert_int_equal(v->nmeta, 0);
	assert_int_equal(udr_version_set_meta(v, "zeta", "1"), 0);
	assert_int_equal(udr_version_set_meta(v, "alpha", "2"), 0);
	assert_int_equal(udr_version_set_meta(v, "mid", "3"), 0);
	assert_int_equal(udr_version_set_meta(v, "alpha", "replaced"), 0);
	assert_int_equal(v->nmeta, 3);
	assert_string_equal(v->meta[0].key, "alpha");
	assert_string_equal(v->meta[0].value, "replaced");
	assert_string_equal(v->meta[1].key, "mid");
	assert_string_equal(v->meta[2].key, "zeta");
	assert_string_equal(udr_version_get_meta(v, "zeta"), "1");
	assert_null(udr_version_get_meta(v, "nope"));
	assert_int_equal(udr_version_set_message(v, "hello"), 0);
	assert_string_equal(v->message, "hello");
	udr_hash h;
	for (int i = 0; i < 1000; i++) {
		udr_hash_buf(&h, &i, sizeof(i));
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
	}
	assert_int_equal(v->nchunks, 1000);

	udr_version *d = NULL;
	assert_int_equal(udr_version_dup(&d, v), 0);
	assert_ptr_not_equal(d, v);
	assert_ptr_not_equal(d->table, v->table);
	assert_ptr_not_equal(d->chunks, v->chunks);
	assert_ptr_not_equal(d->message, v->message);
	assert_string_equal(d->message, "hello");
	assert_int_equal(d->nchunks, 1000);
	assert_memory_equal(d->chunks, v->chunks, 1000 * sizeof(udr_hash));
	assert_int_equal(d->nmeta, 3);
	assert_string_equal(d->meta[1].value, "3");
	assert_int_equal(udr_version_add_chunk(d, &h), 0); /* the copy can grow */
	assert_int_equal(v->nchunks, 1000);
	assert_int_equal(udr_version_set_message(v, NULL), 0);
	assert_null(v->message);
	assert_string_equal(d->message, "hello");
	udr_version_free(d);
	udr_version_free(v);
	udr_version_free(NULL);
}

static void catalog_metadata_roundtrip(void **state)
{
	fx *f = *state;
	const char *msg = "Gr\xc3\xbc\xc3\x9f" "e \xf0\x9f\x9a\x80 \"quoted\" 'single' back\\slash\nnew line\ttab "
	                  "{\"json\": [1,2]} \x01 ctl";
	struct {
		const char *k, *v;
	} meta[] = {
		{"author", "J\xc3\xb6rg \"the\" tester"},
		{"quote\"key", "value with \\ and /"},
		{"empty", ""},
		{"emoji \xf0\x9f\x98\x80", "\xe2\x82\xac 100"},
		{"multi", "line1\nline2\r\n"},
		{"a=b", "c=d"},
	};
	const size_t nm = sizeof(meta) / sizeof(meta[0]);
	udr_hash h = put_str(f, "data");
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "meta", 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_version_set_message(v, msg), 0);
	for (size_t i = 0; i < nm; i++)
		assert_int_equal(udr_version_set_meta(v, meta[i].k, meta[i].v), 0);
	v->created_ms = 1700000000123LL;
	assert_int_equal(udr_catalog_commit(f->cat, v), 0);
	assert_int_equal(v->created_ms, 1700000000123LL);
	udr_version_free(v);

	/* Read back through a fresh handle (from disk). */
	for (int pass = 0; pass < 2; pass++) {
		udr_catalog *c = f->cat;
		if (pass == 1)
			assert_int_equal(udr_catalog_open(&c, f->cdir, f->st, 0), 0);
		udr_version *r = NULL;
		assert_int_equal(udr_catalog_get_version(&r, c, "meta", 1), 0);
		assert_non_null(r->message);
		assert_string_equal(r->message, msg);
		assert_int_equal(r->nmeta, nm);
		for (size_t i = 0; i < nm; i++) {
			const char *got = udr_version_get_meta(r, meta[i].k);
			if (got == NULL || strcmp(got, meta[i].v) != 0) {
				print_error("meta %s: got %s\n", meta[i].k, got ? got : "(null)");
				fail();
			}
		}
		for (size_t i = 1; i < r->nmeta; i++)
			assert_true(strcmp(r->meta[i - 1].key, r->meta[i].key) < 0);
		assert_int_equal(r->created_ms, 1700000000123LL);
		udr_version_free(r);
		if (pass == 1)
			udr_catalog_close(c);
	}
	/* An empty message is kept apart from no message. */
	udr_version *e = NULL;
	assert_int_equal(udr_version_new(&e, "meta", 2), 0);
	assert_int_equal(udr_version_set_message(e, ""), 0);
	assert_int_equal(udr_catalog_commit(f->cat, e), 0);
	udr_version_free(e);
	assert_int_equal(udr_catalog_get_version(&e, f->cat, "meta", 2), 0);
	assert_true(e->message == NULL || e->message[0] == '\0');
	assert_int_equal(e->nmeta, 0);
	udr_version_free(e);
}

/* ---- open / store-less ------------------------------------------------- */

static void catalog_open_missing_is_notfound(void **state)
{
	fx *f = *state;
	char *p = th_join(f->dir, "nocat");
	udr_catalog *c = NULL;
	assert_int_equal(udr_catalog_open(&c, p, NULL, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, NULL);
	assert_false(th_exists(p));
	assert_int_equal(udr_catalog_open(&c, NULL, NULL, 0), UDR_EINVAL);
	assert_int_equal(udr_catalog_open(&c, "", NULL, 0), UDR_EINVAL);
	/* An unknown format: corrupt. */
	char *cfg = th_join(f->cdir, "config.json");
	assert_true(th_exists(cfg));
	th_write_file(cfg, "[[[", 3);
	assert_int_equal(udr_catalog_open(&c, f->cdir, NULL, 0), UDR_ECORRUPT);
	free(cfg);
	free(p);
}

static void catalog_without_store_accepts_any_hash(void **state)
{
	fx *f = *state;
	char *p = th_join(f->dir, "bare");
	udr_catalog *c = NULL;
	assert_int_equal(udr_catalog_open(&c, p, NULL, UDR_OPEN_CREATE), 0);
	udr_hash h;
	memset(&h, 0xab, sizeof(h));
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_catalog_commit(c, v), 0);
	udr_version_free(v);
	assert_int_equal(udr_catalog_get_version(&v, c, "t", 1), 0);
	assert_true(udr_hash_equal(&v->chunks[0], &h));
	udr_version_free(v);
	assert_int_equal(udr_catalog_fsck(NULL, c, NULL, NULL), 0);
	udr_catalog_close(c);
	udr_catalog_close(NULL);
	free(p);
}

/* ---- fsck --------------------------------------------------------------- */

static void catalog_fsck_clean_and_removes_temp(void **state)
{
	fx *f = *state;
	for (int i = 1; i <= 4; i++)
		commit_one(f, "t", (uint64_t)i, "c", NULL);
	commit_one(f, "u", 1, "d", NULL);
	char *tmpdir = th_join(f->cdir, "tmp");
	mkdir(tmpdir, 0755);
	char *tf = th_join(tmpdir, "424242-abcdef.tmp");
	th_write_file(tf, "{\"partial\":", 11);
	udr_check_stats stats;
	memset(&stats, 0, sizeof(stats));
	th_problems pr = {0};
	assert_int_equal(udr_catalog_fsck(&stats, f->cat, th_problem_cb, &pr), 0);
	assert_int_equal(pr.count, 0);
	assert_int_equal(stats.problems, 0);
	assert_int_equal(stats.temp_removed, 1);
	assert_true(stats.objects >= 5);
	assert_false(th_exists(tf));
	free(tf);
	free(tmpdir);
}

static void catalog_fsck_missing_chunk(void **state)
{
	fx *f = *state;
	udr_hash h;
	commit_one(f, "t", 1, "will vanish", &h);
	char hex[65];
	udr_hash_tohex(hex, &h);
	th_remove_object(f->sdir, &h);
	/* a handle that read the pack keeps it open (a pack vanishes only in a
	 * repack, which copied its entries first): a new one sees it gone */
	udr_catalog_close(f->cat);
	udr_store_close(f->st);
	assert_int_equal(udr_store_open(&f->st, f->sdir, 0), 0);
	assert_int_equal(udr_catalog_open(&f->cat, f->cdir, f->st, 0), 0);
	th_problems pr = {0};
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	assert_true(th_problems_mention(&pr, hex));
	th_problems_free(&pr);
}

static void catalog_corrupt_version_file(void **state)
{
	fx *f = *state;
	commit_one(f, "t", 1, "a", NULL);
	commit_one(f, "t", 2, "b", NULL);
	char *vf = version_file(f, "t", 1);
	size_t len = 0;
	char *orig = th_read_file(vf, &len);
	assert_non_null(orig);
	/* A flipped bit inside the file: its digest no longer matches the commit record. */
	th_flip_bit(vf, (off_t)(len / 2));
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, NULL);
	th_problems pr = {0};
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	th_problems_free(&pr);
	/* Version 2 is still readable. */
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 2), 0);
	udr_version_free(v);
	v = NULL;
	/* Deleted: the commit record references it, so this is corruption, not "not found". */
	assert_int_equal(unlink(vf), 0);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), UDR_ECORRUPT);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	th_problems_free(&pr);
	/* Restored: clean again. */
	th_write_file(vf, orig, len);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), 0);
	udr_version_free(v);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
	/* Truncated to nothing. */
	th_truncate(vf, 0);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), UDR_ECORRUPT);
	free(orig);
	free(vf);
}

static void catalog_corrupt_commit_record(void **state)
{
	fx *f = *state;
	commit_one(f, "t", 1, "a", NULL);
	commit_one(f, "t", 2, "b", NULL);
	char *rec = th_fmt("%s/log/%020llu.json", f->cdir, 1ULL);
	size_t len = 0;
	char *orig = th_read_file(rec, &len);
	if (orig == NULL) {
		print_error("commit record not at %s\n", rec);
		fail();
	}
	th_write_file(rec, "{\"broken\": ", 11);
	char *vf = version_file(f, "t", 1);
	udr_version *v = NULL;
	/* Version 1 was made by the damaged record: corrupt, not absent. */
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), UDR_ECORRUPT);
	th_problems pr = {0};
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &pr), UDR_ECORRUPT);
	assert_true(pr.count >= 1);
	th_problems_free(&pr);
	/* fsck must not delete a version file as an "orphan" because its
	 * record is damaged: the log (record 2 exists) shows seq 1 was used. */
	if (!th_exists(vf)) {
		print_error("fsck deleted %s, a committed version file\n", vf);
		fail();
	}
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "t", 1), UDR_ECORRUPT);
	free(vf);
	th_write_file(rec, orig, len);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
	free(orig);
	free(rec);
}

/* ---- several handles, threads ------------------------------------------ */

static void catalog_two_handles_see_each_other(void **state)
{
	fx *f = *state;
	udr_catalog *b = NULL;
	assert_int_equal(udr_catalog_open(&b, f->cdir, f->st, 0), 0);
	commit_one(f, "t", 1, "via a", NULL);
	uint64_t l = 0;
	assert_int_equal(udr_catalog_latest(&l, b, "t"), 0);
	assert_int_equal(l, 1);
	udr_hash h = put_str(f, "via b");
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_catalog_commit(b, v), UDR_ECONFLICT);
	assert_int_equal(udr_catalog_commit_next(b, v), 0);
	assert_int_equal(v->version, 2);
	udr_version_free(v);
	expect_latest(f, "t", 2);
	udr_catalog_close(b);
}

typedef struct targ {
	udr_catalog *cat;
	udr_hash h;
	uint64_t got[25];
	int failures;
} targ;

static void *thread_main(void *p)
{
	targ *a = p;
	for (int i = 0; i < 25; i++) {
		udr_version *v = NULL;
		if (udr_version_new(&v, "shared", 0) != 0 || udr_version_add_chunk(v, &a->h) != 0 ||
		    udr_catalog_commit_next(a->cat, v) != 0)
			a->failures++;
		else
			a->got[i] = v->version;
		udr_version_free(v);
	}
	return NULL;
}

static void catalog_threads_commit_next(void **state)
{
	fx *f = *state;
	targ args[4];
	pthread_t th[4];
	udr_hash h = put_str(f, "shared chunk");
	for (int t = 0; t < 4; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].cat = f->cat;
		args[t].h = h;
		assert_int_equal(pthread_create(&th[t], NULL, thread_main, &args[t]), 0);
	}
	int seen[101] = {0};
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].failures, 0);
		for (int i = 0; i < 25; i++) {
			assert_true(args[t].got[i] >= 1 && args[t].got[i] <= 100);
			seen[args[t].got[i]]++;
			if (i > 0)
				assert_true(args[t].got[i] > args[t].got[i - 1]);
		}
	}
	for (int n = 1; n <= 100; n++)
		assert_int_equal(seen[n], 1);
	expect_latest(f, "shared", 100);
	uint64_t *vs = NULL;
	size_t count = 0;
	assert_int_equal(udr_catalog_list_versions(&vs, &count, f->cat, "shared"), 0);
	assert_int_equal(count, 100);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(vs[i], i + 1);
	udr_free(vs);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
}

/* The commit step writes its version files and record into unnamed files
 * (O_TMPFILE) made before it takes the writer lock, the first 8 version
 * files of a commit; the others, and every file where the file system has
 * no O_TMPFILE, go through named temp files.  Both ways make the same
 * files, replace an orphan of the next number, and leave no temp file. */
static int (*real_open)(const char *, int, mode_t);
static int tmpfile_opens;
static int tmpfile_refused;

static int tmpfile_open(const char *p, int fl, mode_t m)
{
	if ((fl & O_TMPFILE) == O_TMPFILE && strstr(p, "/catalog/tmp")) {
		tmpfile_opens++;
		if (tmpfile_refused) {
			errno = EOPNOTSUPP;
			return -1;
		}
	}
	return real_open(p, fl, m);
}

static void commit_files_either_way(fx *f, int refused)
{
	static udr_io_methods m;
	const char *t = refused ? "named" : "unnamed";
	char table[32], *tmp = th_join(f->cdir, "tmp");
	udr_txn *txn = NULL;
	udr_version *v = NULL;
	uint64_t seq = 0;
	udr_hash h = put_str(f, t);
	m = *udr_io_default();
	real_open = m.open;
	m.open = tmpfile_open;
	tmpfile_opens = 0;
	tmpfile_refused = refused;
	assert_int_equal(udr_io_set(&m), 0);

	assert_int_equal(commit_one(f, t, 0, "one", NULL), 1);
	/* an orphan of version 2, as a crash before the commit point leaves it */
	{
		char *src = version_file(f, t, 1), *dst = version_file(f, t, 2);
		size_t len = 0;
		char *content = th_read_file(src, &len);
		char *c1 = th_replace(content, "\"version\":1", "\"version\":2");
		char *c2 = th_replace(c1, "\"commit\":", "\"commit\":9");
		th_write_file(dst, c2, strlen(c2));
		free(c1);
		free(c2);
		free(content);
		free(src);
		free(dst);
	}
	assert_int_equal(commit_one(f, t, 0, "two", NULL), 2);
	/* 12 tables in one commit: more than get an unnamed file */
	assert_int_equal(udr_txn_begin(&txn, f->cat, NULL), 0);
	for (int i = 0; i < 12; i++) {
		snprintf(table, sizeof(table), "%s%02d", t, i);
		assert_int_equal(udr_version_new(&v, table, 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_txn_write(txn, v), 0);
		udr_version_free(v);
	}
	assert_int_equal(udr_txn_commit(txn, &seq), 0);
	udr_txn_free(txn);
	assert_int_equal(udr_io_set(NULL), 0);

	/* tried once per commit without O_TMPFILE; else the record's and 8 */
	assert_int_equal(tmpfile_opens, refused ? 3 : 2 + 2 + 9);
	expect_latest(f, t, 2);
	assert_int_equal(udr_catalog_get_version(&v, f->cat, t, 2), 0);
	assert_int_equal(v->commit_seq, seq - 1);
	udr_version_free(v);
	for (int i = 0; i < 12; i++) {
		snprintf(table, sizeof(table), "%s%02d", t, i);
		assert_int_equal(udr_catalog_get_version(&v, f->cat, table, 0), 0);
		assert_int_equal(v->version, 1);
		assert_int_equal(v->commit_seq, seq);
		assert_true(udr_hash_equal(&v->chunks[0], &h));
		udr_version_free(v);
	}
	assert_int_equal(th_count_entries(tmp), 0);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
	free(tmp);
}

static void catalog_commit_unnamed_and_named_temp_files(void **state)
{
	fx *f = *state;
	commit_files_either_way(f, 0);
	commit_files_either_way(f, 1);
}

/* A reader's statement (udr__catalog_statement_begin) looks at the head
 * once: another handle's commits are not seen until it ends, its own
 * commits and the pin handshake's wait look again, statements nest, and a
 * thread of its own is unaffected. */
static void *head_of_other_thread(void *arg)
{
	fx *f = arg;
	uint64_t h = 0;
	if (udr_catalog_head(&h, f->cat) != 0)
		return NULL;
	return (void *)(uintptr_t)h;
}

typedef struct committer {
	fx *f;
	udr_catalog *c;
	uint64_t num;
	const char *text;
	int rc;
} committer;

static void *commit_thread(void *arg)
{
	committer *k = arg;
	udr_hash x;
	udr_version *v = NULL;
	if ((k->rc = udr_store_put(&x, k->f->st, k->text, strlen(k->text))) == 0 &&
	    (k->rc = udr_version_new(&v, "t", k->num)) == 0 && (k->rc = udr_version_add_chunk(v, &x)) == 0)
		k->rc = udr_catalog_commit(k->c, v);
	udr_version_free(v);
	return NULL;
}

static void commit_in_thread(fx *f, udr_catalog *c, uint64_t num, const char *text)
{
	committer k = {f, c, num, text, -1};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, commit_thread, &k), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(k.rc, 0);
}

static void catalog_statement_keeps_one_head(void **state)
{
	fx *f = *state;
	udr_catalog *c2 = NULL;
	udr__statement outer, inner;
	uint64_t h = 0, l = 0;
	pthread_t th;
	void *seen = NULL;
	commit_one(f, "t", 1, "one", NULL);
	assert_int_equal(udr_catalog_open(&c2, f->cdir, f->st, 0), 0);
	outer = udr__catalog_statement_begin(f->cat);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 1);
	/* another handle commits in another thread (another process, as far
	 * as this handle knows; a commit in this thread ends the reuse) */
	commit_in_thread(f, c2, 2, "two");
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 1); /* the statement's state */
	assert_int_equal(udr_catalog_latest(&l, f->cat, "t"), 0);
	assert_int_equal(l, 1);
	/* the other handle, and another thread on this one, are unaffected */
	assert_int_equal(udr_catalog_head(&h, c2), 0);
	assert_int_equal(h, 2);
	assert_int_equal(pthread_create(&th, NULL, head_of_other_thread, f), 0);
	assert_int_equal(pthread_join(th, &seen), 0);
	assert_int_equal((uintptr_t)seen, 2);
	/* the pin handshake's wait looks again (GC.md 2.2) */
	assert_int_equal(udr__expiring_wait(f->cat), 0);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 2);
	/* a statement begun inside looks afresh, and after it the outer one
	 * looks again too: never back in time */
	commit_in_thread(f, c2, 3, "three");
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 2);
	inner = udr__catalog_statement_begin(f->cat);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 3);
	udr__catalog_statement_end(inner);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 3);
	/* this thread's own commit is seen at once, then kept again */
	assert_int_equal(commit_one(f, "t", 4, "four", NULL), 4);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 4);
	expect_latest(f, "t", 4);
	commit_in_thread(f, c2, 5, "five");
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 4);
	/* a commit from the statement's stale view is still checked against
	 * the true head under the writer lock: version 5 exists */
	assert_int_equal(commit_one(f, "t", 5, "five again", NULL), UDR_ECONFLICT);
	udr__catalog_statement_end(outer);
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	assert_int_equal(h, 5);
	expect_latest(f, "t", 5);
	udr_catalog_close(c2);
}

/* A statement keeps the records it read, but only within its horizon: a
 * record linked past HEAD by a writer still in flight stays invisible
 * however often it is asked for. */
static void catalog_statement_keeps_no_record_past_the_horizon(void **state)
{
	fx *f = *state;
	udr_catalog *c2 = NULL;
	udr__statement was;
	udr_commit *cm = NULL;
	uint64_t h = 0;
	char *head = th_fmt("%s/HEAD", f->cdir), *inflight = th_fmt("%s/inflight", f->cdir);
	int fd;
	commit_one(f, "t", 1, "one", NULL);
	commit_one(f, "t", 2, "two", NULL);
	/* record 2 is linked, HEAD still says 1, its writer holds inflight */
	th_write_file(head, "1\n", 2);
	fd = open(inflight, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_SH), 0);
	assert_int_equal(udr_catalog_open(&c2, f->cdir, f->st, 0), 0);
	was = udr__catalog_statement_begin(c2);
	assert_int_equal(udr_catalog_head(&h, c2), 0);
	assert_int_equal(h, 1);
	assert_int_equal(udr__commit_read(&cm, c2, 1), 0);
	udr_commit_free(cm);
	cm = NULL;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(udr__commit_read(&cm, c2, 2), UDR_ENOTFOUND);
		assert_null(cm);
		expect_latest_on(c2, "t", 1);
	}
	udr__catalog_statement_end(was);
	/* the writer finishes: HEAD moves, the record is seen */
	th_write_file(head, "2\n", 2);
	close(fd);
	was = udr__catalog_statement_begin(c2);
	assert_int_equal(udr__commit_read(&cm, c2, 2), 0);
	assert_int_equal(cm->seq, 2);
	udr_commit_free(cm);
	expect_latest_on(c2, "t", 2);
	udr__catalog_statement_end(was);
	udr_catalog_close(c2);
	free(head);
	free(inflight);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(catalog_commit_sequence),
		T(catalog_empty_head_and_tables),
		T(catalog_conflict_states_expected),
		T(catalog_commit_version_zero_is_einval),
		T(catalog_commit_next_assigns),
		T(catalog_missing_chunk_commits_nothing),
		T(catalog_empty_version_has_no_chunks),
		T(catalog_get_version_latest_and_by_number),
		T(catalog_list_versions_ascending),
		T(catalog_list_tables_sorted),
		T(catalog_orphan_version_files_are_invisible),
		T(catalog_misplaced_version_file_is_orphan),
		T(catalog_stale_caches_are_repaired),
		T(catalog_bad_table_names),
		T(version_setters),
		T(catalog_metadata_roundtrip),
		T(catalog_open_missing_is_notfound),
		T(catalog_without_store_accepts_any_hash),
		T(catalog_fsck_clean_and_removes_temp),
		T(catalog_fsck_missing_chunk),
		T(catalog_corrupt_version_file),
		T(catalog_corrupt_commit_record),
		T(catalog_two_handles_see_each_other),
		T(catalog_threads_commit_next),
		T(catalog_statement_keeps_one_head),
		T(catalog_statement_keeps_no_record_past_the_horizon),
		T(catalog_commit_unnamed_and_named_temp_files),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
