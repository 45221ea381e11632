/*
 * test_refs.c - branches, tags, the reflog and merges (include/udr/refs.h):
 * ref-name rules with nothing written on a bad name, isolation of branches,
 * version numbers unique across branches, tags, reset and the reflog,
 * deletion, transactions on a branch, every table-level merge case (up to
 * date, fast-forward, clean three-way, conflict writing nothing, ours and
 * theirs, criss-cross bases, a moved target), a model check across
 * checkpoints, a second handle, and fsck after all of it.  Merge bases and
 * ancestry (src/catalog/mbase.c) against a brute-force model (every
 * ancestor set walked in full) over random histories of three branches with
 * commits and merges, and the records a merge base costs: those between the
 * commits and their base, not the history.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/sys/io.h>

#include "catalog/catalog_internal.h"

typedef struct fx {
	char *dir;
	char *sdir;
	char *cdir;
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

static void ok(int rc, const char *what)
{
	if (rc != 0) {
		print_error("%s: %d %s\n", what, rc, udr_error_last()->message);
		fail();
	}
}

/* Commit the next version of table on branch (NULL: main); its number. */
static uint64_t put(fx *f, const char *branch, const char *table, const char *text)
{
	udr_version *v = NULL;
	udr_hash h;
	uint64_t n;
	ok(udr_store_put(&h, f->st, text, strlen(text)), "put");
	ok(udr_version_new(&v, table, 0), "version_new");
	ok(udr_version_add_chunk(v, &h), "add_chunk");
	ok(udr_catalog_commit_on(f->cat, v, branch, 1), "commit_on");
	n = v->version;
	udr_version_free(v);
	return n;
}

/* The latest version of table on ref (0: absent). */
static uint64_t on(fx *f, const char *ref, const char *table)
{
	uint64_t v = 0;
	int rc = udr_catalog_latest_on(&v, f->cat, table, ref);
	if (rc == UDR_ENOTFOUND)
		return 0;
	ok(rc, "latest_on");
	return v;
}

static uint64_t head(fx *f)
{
	uint64_t h;
	ok(udr_catalog_head(&h, f->cat), "head");
	return h;
}

static void fsck_clean(fx *f)
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

static void test_refs__names(void **state)
{
	fx *f = *state;
	static const char *good[] = {"dev", "feature/x", "a.b", "v1.0", "A_b-9", "x.lockx", "-x/y" + 1};
	static const char *bad[] = {"", "-x", "/x", "x/", "a..b", "a//b", "x.lock", "a b", "a:b", "a@b", "ä", "a\\b"};
	char longname[300];
	uint64_t h;
	put(f, NULL, "t", "one");
	h = head(f);
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ok(udr_ref_name_check(good[i]), good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(udr_ref_name_check(bad[i]), UDR_EINVAL);
		assert_int_equal(udr_branch_create(NULL, f->cat, bad[i], NULL), UDR_EINVAL);
		assert_int_equal(udr_tag_create(NULL, f->cat, bad[i], NULL), UDR_EINVAL);
	}
	memset(longname, 'a', 256);
	longname[256] = '\0';
	assert_int_equal(udr_ref_name_check(longname), UDR_EINVAL);
	longname[255] = '\0';
	ok(udr_ref_name_check(longname), "255 bytes");
	/* unknown refs and bad refs write nothing */
	assert_int_equal(udr_branch_create(NULL, f->cat, "dev", "nosuch"), UDR_ENOTFOUND);
	assert_int_equal(udr_branch_create(NULL, f->cat, "dev", "commit:99"), UDR_ENOTFOUND);
	assert_int_equal(udr_branch_create(NULL, f->cat, "dev", "commit:x"), UDR_EINVAL);
	assert_int_equal(udr_branch_delete(NULL, f->cat, "main"), UDR_EINVAL);
	assert_int_equal(udr_branch_delete(NULL, f->cat, "nosuch"), UDR_ENOTFOUND);
	assert_int_equal(udr_branch_reset(NULL, f->cat, "nosuch", "main"), UDR_ENOTFOUND);
	assert_int_equal(udr_tag_delete(NULL, f->cat, "nosuch"), UDR_ENOTFOUND);
	{
		udr_version *v = NULL;
		udr_hash hh;
		ok(udr_store_put(&hh, f->st, "x", 1), "put");
		ok(udr_version_new(&v, "t", 0), "new");
		ok(udr_version_add_chunk(v, &hh), "chunk");
		assert_int_equal(udr_catalog_commit_on(f->cat, v, "nosuch", 1), UDR_ENOTFOUND);
		assert_int_equal(udr_catalog_commit_on(f->cat, v, "a..b", 1), UDR_EINVAL);
		udr_version_free(v);
	}
	assert_int_equal(head(f), h);
	fsck_clean(f);
}

static void test_refs__isolation(void **state)
{
	fx *f = *state;
	udr_ref *refs = NULL;
	uint64_t *vs = NULL;
	char **names = NULL;
	size_t n = 0;
	assert_int_equal(put(f, NULL, "users", "u1"), 1);
	assert_int_equal(put(f, NULL, "users", "u2"), 2);
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create dev");
	assert_int_equal(udr_branch_create(NULL, f->cat, "dev", NULL), UDR_ECONFLICT);
	assert_int_equal(on(f, "dev", "users"), 2);
	/* numbers are allocated across branches: 3 on dev, 4 on main */
	assert_int_equal(put(f, "dev", "users", "u3 dev"), 3);
	assert_int_equal(put(f, "dev", "sales", "s1 dev"), 1);
	assert_int_equal(on(f, NULL, "users"), 2);
	assert_int_equal(on(f, NULL, "sales"), 0);
	assert_int_equal(put(f, NULL, "users", "u4 main"), 4);
	assert_int_equal(on(f, "main", "users"), 4);
	assert_int_equal(on(f, "branch:dev", "users"), 3);
	/* the old API reads main */
	{
		uint64_t l;
		udr_version *v = NULL;
		ok(udr_catalog_latest(&l, f->cat, "users"), "latest");
		assert_int_equal(l, 4);
		assert_int_equal(udr_catalog_latest(&l, f->cat, "sales"), UDR_ENOTFOUND);
		ok(udr_catalog_get_version(&v, f->cat, "users", 0), "get 0");
		assert_int_equal(v->version, 4);
		assert_int_equal(v->parent, 2);
		udr_version_free(v);
		/* a version is one thing whatever branch made it */
		ok(udr_catalog_get_version(&v, f->cat, "users", 3), "get 3");
		assert_int_equal(v->parent, 2);
		udr_version_free(v);
	}
	ok(udr_catalog_list_versions(&vs, &n, f->cat, "users"), "versions main");
	assert_int_equal(n, 3);
	assert_int_equal(vs[0], 1);
	assert_int_equal(vs[1], 2);
	assert_int_equal(vs[2], 4);
	free(vs);
	ok(udr_catalog_list_versions_on(&vs, &n, f->cat, "users", "dev"), "versions dev");
	assert_int_equal(n, 3);
	assert_int_equal(vs[2], 3);
	free(vs);
	ok(udr_catalog_list_tables(&names, &n, f->cat), "tables");
	assert_int_equal(n, 1);
	udr_strarray_free(names, n);
	ok(udr_catalog_list_tables_on(&names, &n, f->cat, "dev"), "tables dev");
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "sales");
	udr_strarray_free(names, n);
	ok(udr_catalog_refs(&refs, &n, f->cat, UDR_REF_BRANCH), "refs");
	assert_int_equal(n, 2);
	assert_string_equal(refs[0].name, "dev");
	assert_string_equal(refs[1].name, "main");
	udr_ref_array_free(refs, n);
	/* a second handle sees the same */
	{
		udr_catalog *c2 = NULL;
		uint64_t l;
		ok(udr_catalog_open(&c2, f->cdir, f->st, 0), "open 2");
		ok(udr_catalog_latest_on(&l, c2, "users", "dev"), "latest 2");
		assert_int_equal(l, 3);
		ok(udr_catalog_latest(&l, c2, "users"), "latest main 2");
		assert_int_equal(l, 4);
		udr_catalog_close(c2);
	}
	{ /* the catalog says format 3, so older versions refuse it */
		char *cfg = th_join(f->cdir, "config.json");
		char *text = th_read_file(cfg, NULL);
		assert_non_null(strstr(text, "\"format\":3"));
		free(text);
		free(cfg);
	}
	fsck_clean(f);
}

static void test_refs__tags_reset_reflog(void **state)
{
	fx *f = *state;
	udr_reflog_entry *log = NULL;
	uint64_t c1, seq, t;
	size_t n;
	put(f, NULL, "t", "1");
	c1 = head(f);
	ok(udr_tag_create(NULL, f->cat, "v1", NULL), "tag");
	assert_int_equal(udr_tag_create(NULL, f->cat, "v1", NULL), UDR_ECONFLICT);
	put(f, NULL, "t", "2");
	ok(udr_catalog_resolve(&t, f->cat, "tag:v1"), "resolve tag");
	assert_int_equal(t, c1);
	assert_int_equal(on(f, "v1", "t"), 1);
	assert_int_equal(on(f, "main", "t"), 2);
	/* a name that is both: ambiguous unless qualified */
	ok(udr_branch_create(NULL, f->cat, "v1", NULL), "branch v1");
	assert_int_equal(udr_catalog_resolve(&t, f->cat, "v1"), UDR_EINVAL);
	assert_int_equal(on(f, "branch:v1", "t"), 2);
	assert_int_equal(on(f, "tag:v1", "t"), 1);
	/* reset main to the tag, then undo through the reflog */
	ok(udr_branch_reset(&seq, f->cat, "main", "tag:v1"), "reset");
	assert_int_equal(on(f, NULL, "t"), 1);
	ok(udr_branch_reflog(&log, &n, f->cat, "main", 0), "reflog");
	assert_true(n >= 3);
	assert_string_equal(log[0].op, "reset");
	assert_int_equal(log[0].seq, seq);
	assert_string_equal(log[1].op, "commit");
	{
		char ref[40];
		snprintf(ref, sizeof(ref), "commit:%llu", (unsigned long long)log[0].old);
		udr_reflog_free(log, n);
		ok(udr_branch_reset(NULL, f->cat, "main", ref), "undo");
	}
	assert_int_equal(on(f, NULL, "t"), 2);
	/* the next version is still 3: numbers are never handed out twice */
	assert_int_equal(put(f, NULL, "t", "3"), 3);
	ok(udr_tag_delete(NULL, f->cat, "v1"), "untag");
	assert_int_equal(udr_catalog_resolve(&t, f->cat, "tag:v1"), UDR_ENOTFOUND);
	ok(udr_tag_create(NULL, f->cat, "v1", "commit:1"), "tag again");
	fsck_clean(f);
}

static void test_refs__delete(void **state)
{
	fx *f = *state;
	udr_reflog_entry *log = NULL;
	size_t n;
	put(f, NULL, "t", "1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	put(f, "dev", "t", "2");
	ok(udr_branch_delete(NULL, f->cat, "dev"), "delete");
	assert_int_equal(udr_branch_delete(NULL, f->cat, "dev"), UDR_ENOTFOUND);
	{
		udr_version *v = NULL;
		udr_hash h;
		ok(udr_store_put(&h, f->st, "x", 1), "put");
		ok(udr_version_new(&v, "t", 0), "new");
		ok(udr_version_add_chunk(v, &h), "chunk");
		assert_int_equal(udr_catalog_commit_on(f->cat, v, "dev", 1), UDR_ENOTFOUND);
		udr_version_free(v);
	}
	/* its version stays readable by number; the reflog keeps the moves */
	{
		udr_version *v = NULL;
		ok(udr_catalog_get_version(&v, f->cat, "t", 2), "get 2");
		udr_version_free(v);
	}
	ok(udr_branch_reflog(&log, &n, f->cat, "dev", 0), "reflog");
	assert_int_equal(n, 3);
	assert_string_equal(log[0].op, "delete");
	assert_int_equal(log[0].head, 0);
	assert_string_equal(log[2].op, "create");
	udr_reflog_free(log, n);
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "re-create");
	assert_int_equal(on(f, "dev", "t"), 1);
	fsck_clean(f);
}

static void test_refs__txn_on_branch(void **state)
{
	fx *f = *state;
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	udr_txn *t = NULL;
	udr_version *v = NULL;
	udr_hash h;
	uint64_t l;
	put(f, NULL, "a", "a1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	o.branch = "dev";
	ok(udr_txn_begin(&t, f->cat, &o), "begin");
	/* a commit on main does not conflict with a transaction on dev */
	put(f, NULL, "a", "a2 main");
	ok(udr_store_put(&h, f->st, "a3", 2), "put");
	ok(udr_version_new(&v, "a", 0), "new");
	ok(udr_version_add_chunk(v, &h), "chunk");
	ok(udr_txn_latest(&l, t, "a"), "txn latest");
	assert_int_equal(l, 1);
	ok(udr_txn_write(t, v), "write");
	ok(udr_txn_commit(t, NULL), "commit");
	udr_txn_free(t);
	assert_int_equal(on(f, "dev", "a"), 3);
	assert_int_equal(on(f, "main", "a"), 2);
	/* a commit on dev after the snapshot does */
	ok(udr_txn_begin(&t, f->cat, &o), "begin 2");
	put(f, "dev", "a", "a4 dev");
	ok(udr_txn_write(t, v), "write 2");
	assert_int_equal(udr_txn_commit(t, NULL), UDR_ECONFLICT);
	udr_txn_free(t);
	udr_version_free(v);
	o.branch = "nosuch";
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), UDR_ENOTFOUND);
	fsck_clean(f);
}

/* One transaction on dev: writes `write` (and reads `read` when not NULL,
 * serializable), then `move` moves dev under it, then it commits. */
static int txn_across(fx *f, const char *write, const char *read, void (*move)(fx *f))
{
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	udr_txn *t = NULL;
	udr_version *v = NULL;
	udr_hash h;
	uint64_t l;
	int rc;
	o.branch = "dev";
	if (read)
		o.isolation = UDR_TXN_SERIALIZABLE;
	ok(udr_txn_begin(&t, f->cat, &o), "begin");
	if (read)
		ok(udr_txn_latest(&l, t, read), "read");
	ok(udr_store_put(&h, f->st, "txn", 3), "put");
	ok(udr_version_new(&v, write, 0), "new");
	ok(udr_version_add_chunk(v, &h), "chunk");
	ok(udr_txn_write(t, v), "write");
	move(f);
	rc = udr_txn_commit(t, NULL);
	udr_txn_free(t);
	udr_version_free(v);
	return rc;
}

static void reset_to_main(fx *f)
{
	ok(udr_branch_reset(NULL, f->cat, "dev", "main"), "reset");
}

static void reset_in_place(fx *f)
{
	ok(udr_branch_reset(NULL, f->cat, "dev", "dev"), "reset in place");
}

static void made_again_at_main(fx *f)
{
	ok(udr_branch_delete(NULL, f->cat, "dev"), "delete");
	ok(udr_branch_create(NULL, f->cat, "dev", "main"), "create");
}

/*
 * A reset (or delete and create) moves a branch to versions made by
 * commits older than a transaction's snapshot: the check of the seq that
 * made a table's version passed, and the transaction committed on top of a
 * version that was no longer the branch's (the reset's content lost, the
 * version reset away back; a helper's review).
 */
static void test_refs__txn_across_reset(void **state)
{
	fx *f = *state;
	put(f, NULL, "a", "a1");
	put(f, NULL, "b", "b1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	put(f, "dev", "a", "a2 dev");
	put(f, "dev", "b", "b2 dev");
	put(f, NULL, "a", "a3 main");
	assert_int_equal(on(f, "dev", "a"), 2);
	/* written: dev's a goes from 2 to main's 3 under it */
	assert_int_equal(txn_across(f, "a", NULL, reset_to_main), UDR_ECONFLICT);
	assert_int_equal(on(f, "dev", "a"), 3);
	put(f, "dev", "a", "a4 dev");
	put(f, "dev", "b", "b5 dev");
	assert_int_equal(txn_across(f, "a", NULL, made_again_at_main), UDR_ECONFLICT);
	assert_int_equal(on(f, "dev", "a"), 3);
	/* read (serializable): dev's b goes back to main's 1 under it */
	put(f, "dev", "b", "b6 dev");
	assert_int_equal(txn_across(f, "c", "b", reset_to_main), UDR_ECONFLICT);
	assert_int_equal(on(f, "dev", "b"), 1);
	assert_int_equal(on(f, "dev", "c"), 0);
	/* a reset that changes nothing the transaction touched is no conflict */
	put(f, "dev", "b", "b7 dev");
	ok(txn_across(f, "a", "b", reset_in_place), "commit across a reset in place");
	assert_int_equal(on(f, "dev", "a"), 5);
	fsck_clean(f);
}

static void test_refs__merge(void **state)
{
	fx *f = *state;
	udr_merge_result *m = NULL;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	uint64_t h;
	put(f, NULL, "a", "a1");
	put(f, NULL, "b", "b1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	/* up to date */
	ok(udr_merge(&m, f->cat, "dev", "main", NULL), "merge utd");
	assert_true(m->up_to_date);
	assert_int_equal(m->seq, 0);
	udr_merge_result_free(m);
	/* fast-forward */
	put(f, "dev", "a", "a3 dev");
	ok(udr_merge(&m, f->cat, "dev", NULL, NULL), "merge ff");
	assert_true(m->fast_forward);
	assert_true(m->seq > 0);
	udr_merge_result_free(m);
	assert_int_equal(on(f, NULL, "a"), 2);
	/* merging it again: up to date */
	ok(udr_merge(&m, f->cat, "dev", NULL, NULL), "merge again");
	assert_true(m->up_to_date);
	udr_merge_result_free(m);
	/* clean three-way: a on dev, b and new c on main */
	put(f, "dev", "a", "a4 dev");
	put(f, NULL, "b", "b2 main");
	put(f, "dev", "c", "c1 dev");
	ok(udr_merge(&m, f->cat, "dev", "main", NULL), "merge 3way");
	assert_false(m->fast_forward);
	assert_int_equal(m->nconflicts, 0);
	udr_merge_result_free(m);
	assert_int_equal(on(f, NULL, "a"), 3);
	assert_int_equal(on(f, NULL, "b"), 2);
	assert_int_equal(on(f, NULL, "c"), 1);
	assert_int_equal(on(f, "dev", "b"), 1);
	{
		udr_commit *cm = NULL;
		ok(udr_catalog_get_commit(&cm, f->cat, head(f)), "merge record");
		assert_string_equal(cm->op, "merge");
		assert_int_equal(cm->nparents, 2);
		assert_string_equal(cm->branch, "main");
		udr_commit_free(cm);
	}
	/* conflict: both change a; nothing written */
	put(f, "dev", "a", "a dev again");
	put(f, NULL, "a", "a main again");
	h = head(f);
	assert_int_equal(udr_merge(&m, f->cat, "dev", "main", NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "a");
	assert_non_null(m);
	assert_int_equal(m->nconflicts, 1);
	assert_string_equal(m->tables[0].table, "a");
	assert_true(m->tables[0].conflict);
	udr_merge_result_free(m);
	assert_int_equal(head(f), h);
	/* dry run with a strategy: reports, writes nothing */
	mo.strategy = UDR_MERGE_THEIRS;
	mo.dry_run = 1;
	ok(udr_merge(&m, f->cat, "dev", "main", &mo), "dry run");
	assert_int_equal(m->seq, 0);
	assert_int_equal(m->nconflicts, 0);
	udr_merge_result_free(m);
	assert_int_equal(head(f), h);
	/* per-table ours */
	{
		const char *tables[] = {"a"};
		int strat[] = {UDR_MERGE_OURS};
		uint64_t mine = on(f, NULL, "a");
		mo.strategy = UDR_MERGE_FAIL;
		mo.dry_run = 0;
		mo.tables = tables;
		mo.table_strategies = strat;
		mo.ntables = 1;
		ok(udr_merge(&m, f->cat, "dev", "main", &mo), "ours");
		udr_merge_result_free(m);
		assert_int_equal(on(f, NULL, "a"), mine);
	}
	/* theirs, the other way round */
	put(f, NULL, "a", "a main 3");
	put(f, "dev", "a", "a dev 3");
	mo.ntables = 0;
	mo.strategy = UDR_MERGE_THEIRS;
	ok(udr_merge(&m, f->cat, "main", "dev", &mo), "theirs");
	udr_merge_result_free(m);
	assert_int_equal(on(f, "dev", "a"), on(f, NULL, "a"));
	fsck_clean(f);
}

/*
 * A criss-cross history (main and dev merged each other's old heads: two
 * merge bases).  A table's base is the version both bases have, else what
 * the two bases merge to over their own base; a table the bases still
 * disagree on conflicts when both sides changed it (a strategy picks).
 */
static void test_refs__criss_cross(void **state)
{
	fx *f = *state;
	udr_merge_result *m = NULL;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	uint64_t x, y, h, a_main2, b_dev2, c_main, c_dev;
	char rx[40], ry[40];
	const char *only[] = {"c"};
	const int side[] = {UDR_MERGE_THEIRS};
	put(f, NULL, "a", "1");
	put(f, NULL, "c", "c 1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	put(f, NULL, "a", "main 1");
	put(f, NULL, "c", "c main");
	x = head(f);
	put(f, "dev", "b", "dev 1");
	put(f, "dev", "c", "c dev");
	y = head(f);
	snprintf(rx, sizeof(rx), "commit:%llu", (unsigned long long)x);
	snprintf(ry, sizeof(ry), "commit:%llu", (unsigned long long)y);
	/* merge each into the other from the heads before: two merge bases;
	 * c changed on both sides, each keeping its own */
	mo.strategy = UDR_MERGE_OURS;
	ok(udr_merge(&m, f->cat, ry, "main", &mo), "y into main");
	udr_merge_result_free(m);
	ok(udr_merge(&m, f->cat, rx, "dev", &mo), "x into dev");
	udr_merge_result_free(m);
	c_main = on(f, NULL, "c");
	c_dev = on(f, "dev", "c");
	assert_true(c_main != c_dev);
	a_main2 = put(f, NULL, "a", "main 2");
	b_dev2 = put(f, "dev", "b", "dev 2");
	h = head(f);
	/* a: main's own change since; b: dev's; c: the bases disagree (each
	 * side resolved the crossing differently), a conflict with a note */
	assert_int_equal(udr_merge(&m, f->cat, "dev", "main", NULL), UDR_ECONFLICT);
	assert_int_equal(m->nconflicts, 1);
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		if (strcmp(t->table, "c") == 0) {
			assert_true(t->conflict);
			assert_non_null(t->note);
			assert_non_null(strstr(t->note, "criss-cross"));
		} else {
			assert_false(t->conflict);
			assert_null(t->note);
			if (strcmp(t->table, "a") == 0)
				assert_int_equal(t->result, a_main2);
			else if (strcmp(t->table, "b") == 0)
				assert_int_equal(t->result, b_dev2);
		}
	}
	udr_merge_result_free(m);
	assert_int_equal(head(f), h);
	/* a strategy for every table does not decide c (the bases disagree:
	 * maybe one side alone changed it); a side named for c does */
	mo.strategy = UDR_MERGE_THEIRS;
	assert_int_equal(udr_merge(&m, f->cat, "dev", "main", &mo), UDR_ECONFLICT);
	assert_int_equal(m->nconflicts, 1);
	udr_merge_result_free(m);
	mo.strategy = UDR_MERGE_FAIL;
	mo.tables = only;
	mo.table_strategies = side;
	mo.ntables = 1;
	ok(udr_merge(&m, f->cat, "dev", "main", &mo), "dev into main");
	assert_int_equal(m->nconflicts, 0);
	udr_merge_result_free(m);
	assert_int_equal(on(f, NULL, "a"), a_main2);
	assert_int_equal(on(f, NULL, "b"), b_dev2);
	assert_int_equal(on(f, NULL, "c"), c_dev);
	fsck_clean(f);
}

/* Many commits over two branches and 40 tables, across checkpoints of both
 * series, compared with a model, in this handle and a fresh one. */
static void test_refs__model(void **state)
{
	fx *f = *state;
	uint64_t model[2][40];
	const char *br[2] = {"main", "dev"};
	char name[16], text[64];
	uint64_t next[40];
	memset(model, 0, sizeof(model));
	memset(next, 0, sizeof(next));
	put(f, NULL, "t0", "seed");
	model[0][0] = next[0] = 1;
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	model[1][0] = 1;
	for (int i = 0; i < 300; i++) {
		int b = (i * 7 + i / 13) % 2, t = (i * 11) % 40;
		snprintf(name, sizeof(name), "t%d", t);
		snprintf(text, sizeof(text), "%d", i);
		model[b][t] = put(f, b ? "dev" : NULL, name, text);
		assert_int_equal(model[b][t], ++next[t]);
		if (i % 97 == 0) {
			udr_catalog *c2 = NULL;
			udr_catalog_close(f->cat);
			ok(udr_catalog_open(&c2, f->cdir, f->st, 0), "reopen");
			f->cat = c2;
		}
	}
	for (int b = 0; b < 2; b++)
		for (int t = 0; t < 40; t++) {
			snprintf(name, sizeof(name), "t%d", t);
			assert_int_equal(on(f, br[b], name), model[b][t]);
		}
	fsck_clean(f);
}

/* Global checkpoints are derived: a lost or damaged one is rebuilt for
 * reads, and fsck reports and rewrites it. */
static void test_refs__global_checkpoint_damage(void **state)
{
	fx *f = *state;
	char *rdir = th_join(f->cdir, "refs");
	th_problems p = {0};
	int files;
	put(f, NULL, "t", "1");
	ok(udr_branch_create(NULL, f->cat, "dev", NULL), "create");
	for (int i = 0; i < 70; i++)
		put(f, i % 2 ? "dev" : NULL, "t", i % 2 ? "dev" : "main");
	files = th_count_entries(rdir);
	assert_true(files >= 2);
	th_rmtree(rdir);
	udr_catalog_close(f->cat);
	ok(udr_catalog_open(&f->cat, f->cdir, f->st, 0), "reopen");
	assert_int_equal(on(f, "dev", "t"), 71);
	assert_int_equal(on(f, "main", "t"), 70);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &p), UDR_ECORRUPT);
	assert_true(th_problems_mention(&p, "global checkpoint"));
	th_problems_free(&p);
	assert_int_equal(th_count_entries(rdir), files);
	fsck_clean(f);
	free(rdir);
}

/* Many branches from a head that does not move, over checkpoints of both
 * series: each reads its own tables, main is untouched. */
static void test_refs__many_branches(void **state)
{
	fx *f = *state;
	char name[32], text[32];
	for (int t = 0; t < 5; t++) {
		snprintf(name, sizeof(name), "t%d", t);
		put(f, NULL, name, "main");
	}
	for (int b = 0; b < 150; b++) {
		snprintf(name, sizeof(name), "b%03d", b);
		ok(udr_branch_create(NULL, f->cat, name, NULL), "create");
		if (b % 3 == 0) {
			snprintf(text, sizeof(text), "%d", b);
			put(f, name, "t1", text);
		}
	}
	for (int b = 0; b < 150; b++) {
		uint64_t v;
		snprintf(name, sizeof(name), "b%03d", b);
		v = on(f, name, "t1");
		assert_true(b % 3 == 0 ? v > 1 : v == 1);
		assert_int_equal(on(f, name, "t4"), 1);
	}
	assert_int_equal(on(f, NULL, "t1"), 1);
	{
		udr_ref *refs = NULL;
		size_t n = 0;
		ok(udr_catalog_refs(&refs, &n, f->cat, UDR_REF_BRANCH), "refs");
		assert_int_equal(n, 151);
		udr_ref_array_free(refs, n);
	}
	fsck_clean(f);
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

static void test_refs__merge_base_model(void **state)
{
	fx *f = *state;
	const char *br[3] = {"main", "b1", "b2"};
	char text[64], table[16];
	uint64_t n, bases_model[256];
	unsigned seed = 12345;
	size_t multi = 0;
	put(f, NULL, "t0", "root");
	ok(udr_branch_create(NULL, f->cat, "b1", NULL), "create b1");
	ok(udr_branch_create(NULL, f->cat, "b2", NULL), "create b2");
	for (int step = 0; step < 45; step++) {
		int b = (int)(rand_r(&seed) % 3), o = (int)(rand_r(&seed) % 3);
		if (rand_r(&seed) % 2 == 0 && o != b) {
			udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
			udr_merge_result *m = NULL;
			int rc;
			mo.strategy = UDR_MERGE_THEIRS;
			rc = udr_merge(&m, f->cat, br[o], br[b], &mo);
			assert_true(rc == 0 || rc == UDR_ECONFLICT); /* a criss-cross may conflict */
			udr_merge_result_free(m);
		} else {
			snprintf(table, sizeof(table), "t%d", b);
			snprintf(text, sizeof(text), "%d on %s", step, br[b]);
			(void)put(f, b ? br[b] : NULL, table, text);
		}
	}
	ok(udr_catalog_head(&n, f->cat), "head");
	assert_true(n < 256);
	/* pairs of the last 30 commits */
	for (uint64_t a = n > 30 ? n - 30 : 1; a <= n; a++)
		for (uint64_t b = a; b <= n; b += 3) {
			uint64_t *got = NULL;
			size_t ng = 0, nm = model_bases(f, a, b, n, bases_model);
			bool anc;
			unsigned char *A = calloc(n + 1, 1);
			ok(udr__merge_bases(&got, &ng, f->cat, a, b), "merge_bases");
			assert_int_equal(ng, nm);
			multi += ng > 1;
			for (size_t i = 0; i < ng; i++)
				assert_int_equal(got[i], bases_model[i]);
			free(got);
			ancestors(f, b, A);
			ok(udr__is_ancestor(&anc, f->cat, a, b), "is_ancestor");
			assert_int_equal(anc, A[a]);
			free(A);
		}
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

static void test_refs__merge_base_reads(void **state)
{
	fx *f = *state;
	udr_io_methods counting;
	uint64_t fork, *got = NULL, a, b;
	size_t ng = 0;
	char text[32];
	for (int i = 0; i < 50; i++) {
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
	 * queued when it stops: not the 50 below */
	assert_true(record_opens > 0);
	assert_true(record_opens <= 12);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refs__names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__isolation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__tags_reset_reflog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__txn_on_branch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__txn_across_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__criss_cross, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__merge_base_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__merge_base_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__global_checkpoint_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs__many_branches, setup, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
