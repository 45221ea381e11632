/*
 * catfx.h - the fixture of the unit tests that need a store and a catalog
 * in a scratch directory (test_expire.c, test_retention_policy.c): setup and
 * teardown for cmocka, and small steps that fail the test with the library's
 * message (commit a text as the next version, the head, a clean fsck).
 * Include after helpers.h.
 */
#ifndef UDR_TEST_CATFX_H
#define UDR_TEST_CATFX_H

#include <stdlib.h>
#include <string.h>

typedef struct fx {
	char *dir, *sdir, *cdir;
	udr_store *st;
	udr_catalog *cat;
} fx;

static inline int setup(void **state)
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

static inline int teardown(void **state)
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

static inline void ok(int rc, const char *what)
{
	if (rc != 0) {
		print_error("%s: %d %s\n", what, rc, udr_error_last()->message);
		fail();
	}
}

static inline void put(fx *f, const char *table, const char *text)
{
	udr_version *v = NULL;
	udr_hash h;
	ok(udr_store_put(&h, f->st, text, strlen(text)), "put");
	ok(udr_version_new(&v, table, 0), "version_new");
	ok(udr_version_add_chunk(v, &h), "add_chunk");
	ok(udr_catalog_commit_next(f->cat, v), "commit");
	udr_version_free(v);
}

static inline uint64_t head(fx *f)
{
	uint64_t h;
	ok(udr_catalog_head(&h, f->cat), "head");
	return h;
}

static inline void fsck_clean(fx *f)
{
	th_problems p = {0};
	int rc = udr_catalog_fsck(NULL, f->cat, th_problem_cb, &p);
	if (rc != 0) {
		for (int i = 0; i < p.count && i < 64; i++)
			print_error("fsck: %s\n", p.messages[i] ? p.messages[i] : "?");
		fail();
	}
	th_problems_free(&p);
}

#endif
