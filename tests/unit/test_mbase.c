/*
 * test_mbase.c - merge bases and ancestry (src/catalog/mbase.c) against a
 * brute-force model (every ancestor set walked in full) over random
 * histories of three branches with commits and merges, and the number of
 * records a merge base costs: those between the commits and their base,
 * not the history.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/sys/io.h>

#include "catalog/catalog_internal.h"

typedef struct fx {
	char *dir, *sdir, *cdir;
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
	    udr_catalog_open(&f->cat, f->cdir, f->st, UDR_OPEN_CREATE) != 0)
		return -1;
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

static void ok(int rc, const char *what)
{
	if (rc != 0) {
		print_error("%s: %d %s\n", what, rc, udr_error_last()->message);
		fail();
	}
}

static void put(fx *f, const char *branch, const char *table, const char *text)
{
	udr_version *v = NULL;
	udr_hash h;
	ok(udr_store_put(&h, f->st, text, strlen(text)), "put");
	ok(udr_version_new(&v, table, 0), "version_new");
	ok(udr_version_add_chunk(v, &h), "add_chunk");
	ok(udr_catalog_commit_on(f->cat, v, branch, 1), "commit_on");
	udr_version_free(v);
}

/* anc[s] = 1 for every ancestor of s (itself included), by a full walk. */
static void ancestors(fx *f, uint64_t s, unsigned char *anc)
{
	udr_commit *cm = NULL;
	if (s == 0 || anc[s])
		return;
	anc[s] = 1;
	ok(udr_catalog_get_commit(&cm, f->cat, s), "get_commit");
	for (size_t i = 0; i < cm->nparents; i++)
		ancestors(f, cm->parents[i], anc);
	udr_commit_free(cm);
}

/* The maximal common ancestors of a and b, newest first. */
static size_t model_bases(fx *f, uint64_t a, uint64_t b, uint64_t n, uint64_t *out)
{
	unsigned char *A = calloc(n + 1, 1), *B = calloc(n + 1, 1), *below = calloc(n + 1, 1);
	size_t k = 0;
	ancestors(f, a, A);
	ancestors(f, b, B);
	for (uint64_t s = n; s >= 1; s--) {
		unsigned char *mine;
		if (!A[s] || !B[s] || below[s])
			continue;
		out[k++] = s;
		/* everything under s is not maximal */
		mine = calloc(n + 1, 1);
		ancestors(f, s, mine);
		for (uint64_t x = 1; x <= n; x++)
			if (mine[x] && x != s)
				below[x] = 1;
		free(mine);
	}
	free(A);
	free(B);
	free(below);
	return k;
}

static void test_mbase__model(void **state)
{
	fx *f = *state;
	const char *br[3] = {"main", "b1", "b2"};
	char text[64], table[16];
	uint64_t n, bases_model[256];
	unsigned seed = 12345;
	size_t multi = 0, none = 0;
	put(f, NULL, "t0", "root");
	ok(udr_branch_create(NULL, f->cat, "b1", NULL), "create b1");
	ok(udr_branch_create(NULL, f->cat, "b2", NULL), "create b2");
	for (int step = 0; step < 70; step++) {
		int b = (int)(rand_r(&seed) % 3), o = (int)(rand_r(&seed) % 3);
		if (rand_r(&seed) % 3 == 0 && o != b) {
			udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
			udr_merge_result *m = NULL;
			int rc;
			mo.strategy = UDR_MERGE_THEIRS;
			rc = udr_merge(&m, f->cat, br[o], br[b], &mo);
			assert_true(rc == 0 || rc == UDR_ECONFLICT); /* criss-cross: refused */
			udr_merge_result_free(m);
		} else {
			snprintf(table, sizeof(table), "t%d", b);
			snprintf(text, sizeof(text), "%d on %s", step, br[b]);
			put(f, b ? br[b] : NULL, table, text);
		}
	}
	ok(udr_catalog_head(&n, f->cat), "head");
	assert_true(n < 256);
	/* every pair of commits in the last 40, and each against each */
	for (uint64_t a = n > 40 ? n - 40 : 1; a <= n; a++)
		for (uint64_t b = a; b <= n; b += 3) {
			uint64_t *got = NULL;
			size_t ng = 0, nm = model_bases(f, a, b, n, bases_model);
			bool anc;
			unsigned char *A = calloc(n + 1, 1);
			ok(udr__merge_bases(&got, &ng, f->cat, a, b), "merge_bases");
			assert_int_equal(ng, nm);
			multi += ng > 1;
			none += ng == 0;
			for (size_t i = 0; i < ng; i++)
				assert_int_equal(got[i], bases_model[i]);
			free(got);
			ancestors(f, b, A);
			ok(udr__is_ancestor(&anc, f->cat, a, b), "is_ancestor");
			assert_int_equal(anc, A[a]);
			free(A);
		}
	print_message("pairs with two or more bases: %zu, with none: %zu\n", multi, none);
	assert_true(multi > 0); /* the random history has criss-crosses */
}

/* Opens of commit records, counted under the library. */
static const udr_io_methods *D;
static long record_opens;
static int count_open(const char *path, int flags, mode_t mode)
{
	if (strstr(path, "/log/"))
		record_opens++;
	return D->open(path, flags, mode);
}

static void test_mbase__reads_between_only(void **state)
{
	fx *f = *state;
	udr_io_methods counting;
	uint64_t fork, *got = NULL, a, b;
	size_t ng = 0;
	char text[32];
	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "%d", i);
		put(f, NULL, "t", text);
	}
	ok(udr_catalog_head(&fork, f->cat), "head");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	put(f, "dev", "d", "dev 1");
	put(f, NULL, "t", "main 1");
	put(f, "dev", "d", "dev 2");
	ok(udr_catalog_head(&b, f->cat), "head");
	put(f, NULL, "t", "main 2");
	ok(udr_catalog_head(&a, f->cat), "head");
	D = udr_io_default();
	counting = *D;
	counting.open = count_open;
	assert_int_equal(udr_io_set(&counting), 0);
	record_opens = 0;
	ok(udr__merge_bases(&got, &ng, f->cat, a, b), "merge_bases");
	udr_io_set(NULL);
	assert_int_equal(ng, 1);
	assert_int_equal(got[0], fork);
	free(got);
	/* the six records above the fork, the fork and what the walk has
	 * queued when it stops: not the 100 below */
	print_message("record opens: %ld\n", record_opens);
	assert_true(record_opens > 0);
	assert_true(record_opens <= 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mbase__model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbase__reads_between_only, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
