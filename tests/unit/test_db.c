/*
 * test_db.c - the store-root handle: create layout, reopen, missing root,
 * the store and catalog it hands out work together.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void db_create_layout(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	char *root = th_join(dir, "root");
	udr_db *db = NULL;
	assert_int_equal(udr_db_open(&db, root, UDR_OPEN_CREATE), 0);
	assert_non_null(db);
	assert_string_equal(udr_db_path(db), root);
	char *chunks = th_join(root, "chunks");
	char *catalog = th_join(root, "catalog");
	char *c1 = th_join(root, "config.json");
	char *c2 = th_join(chunks, "config.json");
	char *c3 = th_join(catalog, "config.json");
	struct stat st;
	assert_int_equal(stat(chunks, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(stat(catalog, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(th_exists(c1));
	assert_true(th_exists(c2));
	assert_true(th_exists(c3));
	assert_string_equal(udr_store_path(udr_db_store(db)), chunks);

	/* The handles work together: the catalog checks chunks in the store. */
	udr_store *s = udr_db_store(db);
	udr_catalog *c = udr_db_catalog(db);
	assert_non_null(s);
	assert_non_null(c);
	udr_hash h, ghost;
	assert_int_equal(udr_store_put(&h, s, "row", 3), 0);
	udr_hash_buf(&ghost, "ghost", 5);
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &ghost), 0);
	assert_int_equal(udr_catalog_commit(c, v), UDR_ENOTFOUND);
	udr_version_free(v);
	assert_int_equal(udr_version_new(&v, "t", 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_catalog_commit(c, v), 0);
	udr_version_free(v);
	/* the chunk is in the chunk store (format 3: in a pack under chunks/packs) */
	off_t coff;
	size_t clen;
	char *chunkfile = th_object_at(chunks, &h, &coff, &clen);
	assert_non_null(chunkfile);
	assert_non_null(strstr(chunkfile, "/chunks/packs/"));
	assert_int_equal(clen, 3);
	udr_db_close(db);
	udr_db_close(NULL);

	/* Reopen without CREATE. */
	assert_int_equal(udr_db_open(&db, root, 0), 0);
	uint64_t l = 0;
	assert_int_equal(udr_catalog_latest(&l, udr_db_catalog(db), "t"), 0);
	assert_int_equal(l, 1);
	assert_int_equal(udr_store_exists(udr_db_store(db), &h), 1);
	udr_db_close(db);
	/* CREATE on an existing root keeps the data. */
	assert_int_equal(udr_db_open(&db, root, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_latest(&l, udr_db_catalog(db), "t"), 0);
	assert_int_equal(l, 1);
	udr_db_close(db);

	th_rmtree(dir);
	free(chunkfile);
	free(c1);
	free(c2);
	free(c3);
	free(chunks);
	free(catalog);
	free(root);
	free(dir);
}

static void db_open_missing_is_notfound(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	char *root = th_join(dir, "missing");
	udr_db *db = NULL;
	assert_int_equal(udr_db_open(&db, root, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, NULL);
	assert_false(th_exists(root));
	/* An existing directory that is not a store. */
	assert_int_equal(udr_db_open(&db, dir, 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, NULL);
	assert_int_equal(th_count_entries(dir), 0);
	/* A file, not a directory. */
	char *file = th_join(dir, "file");
	th_write_file(file, "x", 1);
	int rc = udr_db_open(&db, file, 0);
	assert_true(rc == UDR_ENOTFOUND || rc == UDR_EIO || rc == UDR_EINVAL);
	rc = udr_db_open(&db, file, UDR_OPEN_CREATE);
	assert_true(rc < 0);
	assert_int_equal(udr_db_open(&db, NULL, UDR_OPEN_CREATE), UDR_EINVAL);
	assert_int_equal(udr_db_open(&db, "", UDR_OPEN_CREATE), UDR_EINVAL);
	th_rmtree(dir);
	free(file);
	free(root);
	free(dir);
}

static void db_open_bad_config_is_corrupt(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	udr_db *db = NULL;
	assert_int_equal(udr_db_open(&db, dir, UDR_OPEN_CREATE), 0);
	udr_db_close(db);
	char *cfg = th_join(dir, "config.json");
	th_write_file(cfg, "\x00\x01garbage", 9);
	assert_int_equal(udr_db_open(&db, dir, 0), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, NULL);
	th_rmtree(dir);
	free(cfg);
	free(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(db_create_layout),
		cmocka_unit_test(db_open_missing_is_notfound),
		cmocka_unit_test(db_open_bad_config_is_corrupt),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
