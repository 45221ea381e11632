/*
 * test_txn.c - multi-table transactions (include/udr/txn.h): snapshot reads
 * while others commit, own staged writes, restaging, atomic visibility of a
 * multi-table commit (also to concurrent readers), first-committer-wins
 * conflicts naming the table and the winning commit, no false conflicts,
 * serializable read checks, the "after an error only abort" rule, empty
 * commits, chunks that vanish before the commit, options, and a reader that
 * races a commit's publication.
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	udr_io_set(NULL);
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

/* A version of table with one chunk holding text and metadata "by" = by. */
static udr_version *mkver(fx *f, const char *table, const char *text, const char *by)
{
	udr_version *v = NULL;
	udr_hash h = put_str(f, text);
	assert_int_equal(udr_version_new(&v, table, 0), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	if (by)
		assert_int_equal(udr_version_set_meta(v, "by", by), 0);
	return v;
}

/* Plain (non-transactional) commit_next; returns the version number. */
static uint64_t commit_plain(fx *f, const char *table, const char *text, const char *by)
{
	udr_version *v = mkver(f, table, text, by);
	int rc = udr_catalog_commit_next(f->cat, v);
	if (rc != 0) {
		print_error("commit_next(%s): %d %s\n", table, rc, udr_error_last()->message);
		fail();
	}
	uint64_t n = v->version;
	udr_version_free(v);
	return n;
}

static void stage(fx *f, udr_txn *t, const char *table, const char *text, const char *by)
{
	udr_version *v = mkver(f, table, text, by);
	int rc = udr_txn_write(t, v);
	if (rc != 0) {
		print_error("txn_write(%s): %d %s\n", table, rc, udr_error_last()->message);
		fail();
	}
	udr_version_free(v);
}

static uint64_t head(fx *f)
{
	uint64_t h = 0;
	assert_int_equal(udr_catalog_head(&h, f->cat), 0);
	return h;
}

/* Latest committed version (0 when the table does not exist). */
static uint64_t latest(fx *f, const char *table)
{
	uint64_t l = 0;
	int rc = udr_catalog_latest(&l, f->cat, table);
	if (rc == UDR_ENOTFOUND)
		return 0;
	if (rc != 0) {
		print_error("latest(%s): %d %s\n", table, rc, udr_error_last()->message);
		fail();
	}
	return l;
}

static uint64_t txn_latest(udr_txn *t, const char *table)
{
	uint64_t l = 99;
	int rc = udr_txn_latest(&l, t, table);
	if (rc != 0) {
		print_error("txn_latest(%s): %d %s\n", table, rc, udr_error_last()->message);
		fail();
	}
	return l;
}

/* The metadata "by" of the committed version (latest when num is 0). */
static char *committed_by(fx *f, const char *table, uint64_t num)
{
	udr_version *v = NULL;
	int rc = udr_catalog_get_version(&v, f->cat, table, num);
	if (rc != 0) {
		print_error("get_version(%s, %llu): %d %s\n", table, (unsigned long long)num, rc,
		            udr_error_last()->message);
		fail();
	}
	const char *by = udr_version_get_meta(v, "by");
	char *r = strdup(by ? by : "");
	udr_version_free(v);
	return r;
}

static void expect_by(fx *f, const char *table, uint64_t num, const char *want)
{
	char *by = committed_by(f, table, num);
	assert_string_equal(by, want);
	free(by);
}

static int count_files_in_table(fx *f, const char *table)
{
	char *d = th_join3(f->cdir, "tables", table);
	int n = th_count_entries(d);
	free(d);
	return n;
}

/* ---- snapshot reads ------------------------------------------------------ */

static void txn_reader_keeps_snapshot(void **state)
{
	fx *f = *state;
	assert_int_equal(commit_plain(f, "a", "a1", "a1"), 1);
	assert_int_equal(commit_plain(f, "b", "b1", "b1"), 1);
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	assert_int_equal(udr_txn_snapshot(t), 2);

	/* Others commit: a twice, b once, a new table c. */
	assert_int_equal(commit_plain(f, "a", "a2", "a2"), 2);
	assert_int_equal(commit_plain(f, "a", "a3", "a3"), 3);
	assert_int_equal(commit_plain(f, "b", "b2", "b2"), 2);
	assert_int_equal(commit_plain(f, "c", "c1", "c1"), 1);
	assert_int_equal(head(f), 6);

	/* The transaction still reads as of commit 2. */
	assert_int_equal(udr_txn_snapshot(t), 2);
	assert_int_equal(txn_latest(t, "a"), 1);
	assert_int_equal(txn_latest(t, "b"), 1);
	assert_int_equal(txn_latest(t, "c"), 0);
	udr_version *v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "a", 0), 0);
	assert_int_equal(v->version, 1);
	assert_int_equal(v->commit_seq, 1);
	assert_string_equal(udr_version_get_meta(v, "by"), "a1");
	udr_version_free(v);
	v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "b", 0), 0);
	assert_string_equal(udr_version_get_meta(v, "by"), "b1");
	udr_version_free(v);
	v = NULL;
	/* Versions made after the snapshot do not exist for it. */
	assert_int_equal(udr_txn_get_version(&v, t, "a", 2), UDR_ENOTFOUND);
	assert_null(v);
	th_assert_error(UDR_ENOTFOUND, "a");
	assert_int_equal(udr_txn_get_version(&v, t, "c", 0), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "c");
	assert_null(v);
	/* ENOTFOUND is an answer, not a failure: the txn stays usable. */
	assert_int_equal(udr_txn_get_version(&v, t, "a", 1), 0);
	assert_string_equal(udr_version_get_meta(v, "by"), "a1");
	udr_version_free(v);
	/* Outside the transaction the new state is visible. */
	assert_int_equal(latest(f, "a"), 3);
	expect_by(f, "a", 0, "a3");
	udr_txn_abort(t);
	udr_txn_free(t);
}

static void txn_snapshot_of_empty_catalog(void **state)
{
	fx *f = *state;
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	assert_int_equal(udr_txn_snapshot(t), 0);
	commit_plain(f, "a", "x", "x");
	assert_int_equal(txn_latest(t, "a"), 0);
	udr_version *v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "a", 1), UDR_ENOTFOUND);
	udr_txn_free(t);
}

static void txn_sees_own_staged_writes(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "a", "a2 staged", "staged-a");
	stage(f, t, "newt", "n1 staged", "staged-n");
	assert_int_equal(txn_latest(t, "a"), 2);
	assert_int_equal(txn_latest(t, "newt"), 1);

	udr_version *v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "a", 0), 0);
	assert_int_equal(v->version, 2);
	assert_int_equal(v->parent, 1);
	assert_int_equal(v->commit_seq, 0); /* staged */
	assert_string_equal(udr_version_get_meta(v, "by"), "staged-a");
	udr_hash h = put_str(f, "a2 staged");
	assert_int_equal(v->nchunks, 1);
	assert_true(udr_hash_equal(&v->chunks[0], &h));
	udr_version_free(v);
	v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "a", 2), 0);
	assert_int_equal(v->commit_seq, 0);
	udr_version_free(v);
	v = NULL;
	/* The committed version below the staged one is still readable. */
	assert_int_equal(udr_txn_get_version(&v, t, "a", 1), 0);
	assert_int_equal(v->commit_seq, 1);
	assert_string_equal(udr_version_get_meta(v, "by"), "a1");
	udr_version_free(v);
	v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "newt", 0), 0);
	assert_int_equal(v->version, 1);
	assert_int_equal(v->parent, 0);
	assert_string_equal(udr_version_get_meta(v, "by"), "staged-n");
	udr_version_free(v);

	/* Nobody else sees staged data. */
	assert_int_equal(latest(f, "a"), 1);
	assert_int_equal(latest(f, "newt"), 0);
	assert_int_equal(head(f), 1);

	uint64_t seq = 0;
	assert_int_equal(udr_txn_commit(t, &seq), 0);
	assert_int_equal(seq, 2);
	udr_txn_free(t);
	assert_int_equal(latest(f, "a"), 2);
	assert_int_equal(latest(f, "newt"), 1);
	expect_by(f, "a", 2, "staged-a");
	expect_by(f, "newt", 1, "staged-n");
	v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "a", 2), 0);
	assert_int_equal(v->commit_seq, 2);
	assert_int_equal(v->parent, 1);
	udr_version_free(v);
}

static void txn_stage_same_table_twice_replaces(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "a", "first", "first");
	stage(f, t, "b", "b-only", "b");
	stage(f, t, "a", "second", "second");
	assert_int_equal(txn_latest(t, "a"), 2); /* not 3 */
	udr_version *v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "a", 0), 0);
	assert_string_equal(udr_version_get_meta(v, "by"), "second");
	udr_version_free(v);
	uint64_t seq = 0;
	assert_int_equal(udr_txn_commit(t, &seq), 0);
	udr_txn_free(t);
	assert_int_equal(seq, 2);
	assert_int_equal(latest(f, "a"), 2);
	expect_by(f, "a", 2, "second");
	expect_by(f, "b", 1, "b");
	udr_commit *cm = NULL;
	assert_int_equal(udr_catalog_get_commit(&cm, f->cat, seq), 0);
	assert_int_equal(cm->nchanges, 2);
	int seen_a = 0;
	for (size_t i = 0; i < cm->nchanges; i++) {
		if (strcmp(cm->changes[i].table, "a") == 0) {
			seen_a++;
			assert_int_equal(cm->changes[i].old_version, 1);
			assert_int_equal(cm->changes[i].new_version, 2);
		}
	}
	assert_int_equal(seen_a, 1);
	udr_commit_free(cm);
	/* Exactly two version files for a (and its LATEST cache at most). */
	assert_true(count_files_in_table(f, "a") <= 3);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
}

/* ---- atomic visibility ---------------------------------------------------- */

static void txn_multi_table_commit_is_one_record(void **state)
{
	fx *f = *state;
	commit_plain(f, "x", "x1", "x1");
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	o.message = "three tables";
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	stage(f, t, "x", "x2", "t1");
	stage(f, t, "y", "y1", "t1");
	stage(f, t, "z", "z1", "t1");
	/* Not visible before the commit. */
	assert_int_equal(latest(f, "x"), 1);
	assert_int_equal(latest(f, "y"), 0);
	assert_int_equal(latest(f, "z"), 0);
	uint64_t seq = 0;
	assert_int_equal(udr_txn_commit(t, &seq), 0);
	udr_txn_free(t);
	assert_int_equal(seq, 2);
	assert_int_equal(head(f), 2); /* one commit, not three */
	udr_commit *cm = NULL;
	assert_int_equal(udr_catalog_get_commit(&cm, f->cat, 2), 0);
	assert_int_equal(cm->nchanges, 3);
	assert_non_null(cm->message);
	assert_string_equal(cm->message, "three tables");
	assert_string_equal(cm->branch, "main");
	const char *names[3] = {"x", "y", "z"};
	uint64_t olds[3] = {1, 0, 0}, news[3] = {2, 1, 1};
	for (int k = 0; k < 3; k++) {
		int found = 0;
		for (size_t i = 0; i < cm->nchanges; i++) {
			if (strcmp(cm->changes[i].table, names[k]) == 0) {
				found++;
				assert_int_equal(cm->changes[i].old_version, olds[k]);
				assert_int_equal(cm->changes[i].new_version, news[k]);
			}
		}
		assert_int_equal(found, 1);
		udr_version *v = NULL;
		assert_int_equal(udr_catalog_get_version(&v, f->cat, names[k], news[k]), 0);
		assert_int_equal(v->commit_seq, 2);
		assert_string_equal(udr_version_get_meta(v, "by"), "t1");
		udr_version_free(v);
	}
	udr_commit_free(cm);
}

static void txn_abort_makes_nothing_visible(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "a", "a2", "aborted");
	stage(f, t, "b", "b1", "aborted");
	udr_txn_abort(t);
	/* After abort: every operation is refused. */
	uint64_t seq = 7;
	assert_int_equal(udr_txn_commit(t, &seq), UDR_EINVAL);
	assert_int_equal(seq, 0);
	udr_txn_free(t);
	assert_int_equal(latest(f, "a"), 1);
	assert_int_equal(latest(f, "b"), 0);
	assert_int_equal(head(f), 1);
	/* No files were written for the aborted transaction. */
	assert_int_equal(count_files_in_table(f, "a") <= 2, 1);
	assert_true(count_files_in_table(f, "b") <= 0);
	/* Freeing an active transaction aborts it too. */
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "a", "a2 again", "freed");
	udr_txn_free(t);
	udr_txn_free(NULL);
	assert_int_equal(latest(f, "a"), 1);
}

/* Concurrent readers (each a transaction) see the three tables at equal
 * versions while a writer thread commits transactions writing all three. */
struct atomic_args {
	fx *f;
	int iterations;
	volatile int stop;
	int failures;
	int reads;
	char msg[512];
};

static void *atomic_writer(void *p)
{
	struct atomic_args *a = p;
	for (int i = 0; i < a->iterations; i++) {
		udr_txn *t = NULL;
		char text[64];
		if (udr_txn_begin(&t, a->f->cat, NULL) != 0) {
			a->failures++;
			snprintf(a->msg, sizeof(a->msg), "begin: %s", udr_error_last()->message);
			break;
		}
		for (int k = 0; k < 3; k++) {
			udr_version *v = NULL;
			udr_hash h;
			snprintf(text, sizeof(text), "w%d-%d", i, k);
			udr_store_put(&h, a->f->st, text, strlen(text));
			udr_version_new(&v, k == 0 ? "p" : k == 1 ? "q" : "r", 0);
			udr_version_add_chunk(v, &h);
			if (udr_txn_write(t, v) != 0)
				a->failures++;
			udr_version_free(v);
		}
		int rc = udr_txn_commit(t, NULL);
		udr_txn_free(t);
		if (rc != 0) {
			a->failures++;
			snprintf(a->msg, sizeof(a->msg), "writer commit: %d %s", rc, udr_error_last()->message);
			break;
		}
	}
	a->stop = 1;
	return NULL;
}

static void *atomic_reader(void *p)
{
	struct atomic_args *a = p;
	while (!a->stop) {
		udr_txn *t = NULL;
		uint64_t l[3] = {0, 0, 0};
		if (udr_txn_begin(&t, a->f->cat, NULL) != 0) {
			a->failures++;
			snprintf(a->msg, sizeof(a->msg), "reader begin: %s", udr_error_last()->message);
			break;
		}
		int rc = 0;
		for (int k = 0; k < 3 && rc == 0; k++) {
			rc = udr_txn_latest(&l[k], t, k == 0 ? "p" : k == 1 ? "q" : "r");
			if (rc != 0) {
				a->failures++;
				snprintf(a->msg, sizeof(a->msg), "reader latest: %d %s", rc, udr_error_last()->message);
			}
		}
		if (rc != 0) {
			udr_txn_free(t);
			break;
		}
		if (l[0] != l[1] || l[1] != l[2]) {
			a->failures++;
			snprintf(a->msg, sizeof(a->msg), "partial commit seen at snapshot %llu: %llu %llu %llu",
			         (unsigned long long)udr_txn_snapshot(t), (unsigned long long)l[0],
			         (unsigned long long)l[1], (unsigned long long)l[2]);
		}
		/* The snapshot's head equals the number of 3-table commits. */
		if (l[0] != udr_txn_snapshot(t)) {
			a->failures++;
			snprintf(a->msg, sizeof(a->msg), "snapshot %llu but p at %llu",
			         (unsigned long long)udr_txn_snapshot(t), (unsigned long long)l[0]);
		}
		udr_txn_free(t);
		a->reads++;
		if (a->failures)
			break;
	}
	return NULL;
}

static void txn_concurrent_readers_never_see_partial_commits(void **state)
{
	fx *f = *state;
	struct atomic_args w = {f, 60, 0, 0, 0, ""};
	struct atomic_args r1 = {f, 0, 0, 0, 0, ""}, r2 = {f, 0, 0, 0, 0, ""};
	pthread_t tw, t1, t2;
	assert_int_equal(pthread_create(&tw, NULL, atomic_writer, &w), 0);
	assert_int_equal(pthread_create(&t1, NULL, atomic_reader, &r1), 0);
	assert_int_equal(pthread_create(&t2, NULL, atomic_reader, &r2), 0);
	pthread_join(tw, NULL);
	r1.stop = r2.stop = 1;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	if (w.failures || r1.failures || r2.failures)
		print_error("writer: %s\nreader1: %s\nreader2: %s\n", w.msg, r1.msg, r2.msg);
	assert_int_equal(w.failures, 0);
	assert_int_equal(r1.failures, 0);
	assert_int_equal(r2.failures, 0);
	assert_true(r1.reads + r2.reads > 0);
	assert_int_equal(latest(f, "p"), 60);
	assert_int_equal(latest(f, "q"), 60);
	assert_int_equal(latest(f, "r"), 60);
	assert_int_equal(head(f), 60);
}

/* ---- conflicts -------------------------------------------------------------- */

static void txn_first_committer_wins(void **state)
{
	fx *f = *state;
	commit_plain(f, "acct", "v1", "init");
	udr_txn *t1 = NULL, *t2 = NULL;
	assert_int_equal(udr_txn_begin(&t1, f->cat, NULL), 0);
	assert_int_equal(udr_txn_begin(&t2, f->cat, NULL), 0);
	stage(f, t1, "acct", "t1", "t1");
	stage(f, t2, "other", "t2 other", "t2");
	stage(f, t2, "acct", "t2", "t2");
	uint64_t s1 = 0, s2 = 99;
	assert_int_equal(udr_txn_commit(t1, &s1), 0);
	assert_int_equal(s1, 2);
	assert_int_equal(udr_txn_commit(t2, &s2), UDR_ECONFLICT);
	assert_int_equal(s2, 0);
	/* The message names the table and the commit that won. */
	th_assert_error(UDR_ECONFLICT, "acct");
	th_assert_error(UDR_ECONFLICT, "commit 2");
	/* The loser is finished. */
	assert_int_equal(udr_txn_commit(t2, &s2), UDR_EINVAL);
	udr_txn_free(t1);
	udr_txn_free(t2);
	/* Nothing of the loser is visible, not even its other table. */
	assert_int_equal(latest(f, "acct"), 2);
	expect_by(f, "acct", 2, "t1");
	assert_int_equal(latest(f, "other"), 0);
	assert_int_equal(head(f), 2);
	/* No orphans left behind. */
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
}

static void txn_conflict_names_the_latest_winner(void **state)
{
	fx *f = *state;
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "fresh", "mine", "loser");
	/* Two others create the same new table, then an unrelated commit. */
	commit_plain(f, "fresh", "w1", "w1");
	commit_plain(f, "fresh", "w2", "w2");
	commit_plain(f, "unrelated", "u", "u");
	uint64_t s = 0;
	assert_int_equal(udr_txn_commit(t, &s), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "fresh");
	th_assert_error(UDR_ECONFLICT, "commit 2");
	udr_txn_free(t);
	expect_by(f, "fresh", 0, "w2");
	assert_int_equal(latest(f, "fresh"), 2);
}

static void txn_no_false_conflicts_sequential(void **state)
{
	fx *f = *state;
	for (int i = 1; i <= 6; i++) {
		udr_txn *t = NULL;
		char by[16];
		snprintf(by, sizeof(by), "t%d", i);
		assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
		if (i > 1)
			assert_int_equal(txn_latest(t, "same"), (uint64_t)i - 1);
		stage(f, t, "same", by, by);
		uint64_t seq = 0;
		int rc = udr_txn_commit(t, &seq);
		if (rc != 0)
			print_error("txn %d: %d %s\n", i, rc, udr_error_last()->message);
		assert_int_equal(rc, 0);
		assert_int_equal(seq, (uint64_t)i);
		udr_txn_free(t);
		expect_by(f, "same", (uint64_t)i, by);
	}
	/* Also after a plain commit of the table in between. */
	commit_plain(f, "same", "plain", "plain");
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "same", "after plain", "after");
	assert_int_equal(udr_txn_commit(t, NULL), 0);
	udr_txn_free(t);
	assert_int_equal(latest(f, "same"), 8);
}

static void txn_disjoint_concurrent_both_commit(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	commit_plain(f, "b", "b1", "b1");
	udr_txn *t1 = NULL, *t2 = NULL, *t3 = NULL;
	assert_int_equal(udr_txn_begin(&t1, f->cat, NULL), 0);
	assert_int_equal(udr_txn_begin(&t2, f->cat, NULL), 0);
	assert_int_equal(udr_txn_begin(&t3, f->cat, NULL), 0);
	/* Snapshot isolation: reading a table another txn writes is no conflict. */
	assert_int_equal(txn_latest(t1, "b"), 1);
	assert_int_equal(txn_latest(t2, "a"), 1);
	stage(f, t1, "a", "a2", "t1");
	stage(f, t2, "b", "b2", "t2");
	stage(f, t3, "c", "c1", "t3");
	stage(f, t3, "d", "d1", "t3");
	uint64_t s1 = 0, s2 = 0, s3 = 0;
	assert_int_equal(udr_txn_commit(t2, &s2), 0);
	assert_int_equal(udr_txn_commit(t1, &s1), 0);
	assert_int_equal(udr_txn_commit(t3, &s3), 0);
	assert_int_equal(s2, 3);
	assert_int_equal(s1, 4);
	assert_int_equal(s3, 5);
	udr_txn_free(t1);
	udr_txn_free(t2);
	udr_txn_free(t3);
	expect_by(f, "a", 2, "t1");
	expect_by(f, "b", 2, "t2");
	expect_by(f, "c", 1, "t3");
	expect_by(f, "d", 1, "t3");
}

static void txn_serializable_fails_when_read_table_changed(void **state)
{
	fx *f = *state;
	commit_plain(f, "src", "s1", "s1");
	commit_plain(f, "dst", "d1", "d1");
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	o.isolation = UDR_TXN_SERIALIZABLE;

	/* Read src, write dst; another commit changes src: conflict. */
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	udr_version *v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "src", 0), 0);
	udr_version_free(v);
	stage(f, t, "dst", "d2", "derived");
	uint64_t winner = 0;
	commit_plain(f, "src", "s2", "s2");
	winner = head(f);
	uint64_t seq = 9;
	assert_int_equal(udr_txn_commit(t, &seq), UDR_ECONFLICT);
	assert_int_equal(seq, 0);
	th_assert_error(UDR_ECONFLICT, "src");
	char *needle = th_fmt("commit %llu", (unsigned long long)winner);
	th_assert_error(UDR_ECONFLICT, needle);
	free(needle);
	udr_txn_free(t);
	assert_int_equal(latest(f, "dst"), 1);

	/* The same under snapshot isolation commits (write skew is allowed). */
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "src", 0), 0);
	udr_version_free(v);
	stage(f, t, "dst", "d2 si", "derived-si");
	commit_plain(f, "src", "s3", "s3");
	assert_int_equal(udr_txn_commit(t, NULL), 0);
	udr_txn_free(t);
	expect_by(f, "dst", 2, "derived-si");

	/* Serializable, read through udr_txn_latest, of a table that does not
	 * exist yet: its creation by someone else is a conflict too. */
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	assert_int_equal(txn_latest(t, "phantom"), 0);
	stage(f, t, "dst", "d3", "phantom-check");
	commit_plain(f, "phantom", "p1", "p1");
	assert_int_equal(udr_txn_commit(t, NULL), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "phantom");
	udr_txn_free(t);
	assert_int_equal(latest(f, "dst"), 2);

	/* Serializable without interference commits; changes to tables it did
	 * not read do not matter. */
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	v = NULL;
	assert_int_equal(udr_txn_get_version(&v, t, "src", 1), 0);
	udr_version_free(v);
	stage(f, t, "dst", "d4", "ser-ok");
	commit_plain(f, "unrelated", "u", "u");
	assert_int_equal(udr_txn_commit(t, NULL), 0);
	udr_txn_free(t);
	expect_by(f, "dst", 3, "ser-ok");
}

/* ---- errors -------------------------------------------------------------------- */

static void expect_inactive(udr_txn *t)
{
	udr_version *v = (udr_version *)0x1;
	uint64_t l = 0, seq = 5;
	udr_version *w = NULL;
	assert_int_equal(udr_version_new(&w, "ok", 0), 0);
	assert_int_equal(udr_txn_write(t, w), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, "abort");
	udr_version_free(w);
	assert_int_equal(udr_txn_get_version(&v, t, "ok", 0), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(udr_txn_latest(&l, t, "ok"), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(udr_txn_commit(t, &seq), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(seq, 0);
}

static void txn_after_error_only_abort(void **state)
{
	fx *f = *state;
	commit_plain(f, "ok", "base", "base");

	/* A bad table name in write. */
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "ok", "good staged", "good");
	udr_version *bad = mkver(f, "ok", "bad", "bad");
	free(bad->table);
	bad->table = strdup("../evil");
	assert_int_equal(udr_txn_write(t, bad), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	udr_version_free(bad);
	expect_inactive(t);
	udr_txn_abort(t);
	udr_txn_abort(t); /* twice is harmless */
	udr_txn_free(t);
	assert_int_equal(latest(f, "ok"), 1); /* the good staged write was not committed */

	/* A missing chunk in write. */
	t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	udr_version *v = NULL;
	udr_hash missing;
	udr_hash_buf(&missing, "never stored", 12);
	assert_int_equal(udr_version_new(&v, "ok", 0), 0);
	assert_int_equal(udr_version_add_chunk(v, &missing), 0);
	assert_int_equal(udr_txn_write(t, v), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, th_hex(&missing));
	udr_version_free(v);
	expect_inactive(t);
	udr_txn_free(t);

	/* NULL version. */
	t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	assert_int_equal(udr_txn_write(t, NULL), UDR_EINVAL);
	expect_inactive(t);
	udr_txn_free(t);

	/* After a successful commit, and after a conflict, too. */
	t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "ok", "committed", "c");
	assert_int_equal(udr_txn_commit(t, NULL), 0);
	expect_inactive(t);
	udr_txn_free(t);

	udr_txn *t2 = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	assert_int_equal(udr_txn_begin(&t2, f->cat, NULL), 0);
	stage(f, t, "ok", "x", "x");
	stage(f, t2, "ok", "y", "y");
	assert_int_equal(udr_txn_commit(t, NULL), 0);
	assert_int_equal(udr_txn_commit(t2, NULL), UDR_ECONFLICT);
	expect_inactive(t2);
	udr_txn_free(t);
	udr_txn_free(t2);
	assert_int_equal(latest(f, "ok"), 3);
}

static void txn_bad_arguments_and_options(void **state)
{
	fx *f = *state;
	udr_txn *t = (udr_txn *)0x1;
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	assert_int_equal(udr_txn_begin(NULL, f->cat, NULL), UDR_EINVAL);
	assert_int_equal(udr_txn_begin(&t, NULL, NULL), UDR_EINVAL);
	o.isolation = 7;
	t = (udr_txn *)0x1;
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, "7");
	assert_null(t);
	o.isolation = UDR_TXN_SNAPSHOT;
	o.version = 99;
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), UDR_EINVAL);
	o.version = UDR_TXN_OPTIONS_VERSION;
	o.branch = "main";
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	udr_txn_free(t);
	/* txn.h: "UDR_ENOTFOUND (unknown branch)". */
	o.branch = "no-such-branch";
	t = NULL;
	int rc = udr_txn_begin(&t, f->cat, &o);
	udr_txn_free(t);
	if (rc != UDR_ENOTFOUND)
		print_error("udr_txn_begin with unknown branch returned %d (%s), txn.h documents UDR_ENOTFOUND: %s\n",
		            rc, udr_strerror(rc), udr_error_last()->message);
	assert_int_equal(rc, UDR_ENOTFOUND);
	/* NULL txn everywhere. */
	uint64_t l;
	udr_version *v = NULL;
	assert_int_equal(udr_txn_latest(&l, NULL, "a"), UDR_EINVAL);
	assert_int_equal(udr_txn_get_version(&v, NULL, "a", 0), UDR_EINVAL);
	assert_int_equal(udr_txn_commit(NULL, NULL), UDR_EINVAL);
	assert_int_equal(udr_txn_snapshot(NULL), 0);
	udr_txn_abort(NULL);
	/* Read of a bad name is rejected. */
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	assert_int_equal(udr_txn_latest(&l, t, "bad/name"), UDR_EINVAL);
	udr_txn_free(t);
	assert_int_equal(head(f), 0);
}

static void txn_empty_commit_is_noop(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	char *logdir = th_join(f->cdir, "log");
	int before = th_count_entries(logdir);
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	uint64_t seq = 77;
	assert_int_equal(udr_txn_commit(t, &seq), 0);
	assert_int_equal(seq, 0);
	udr_txn_free(t);
	/* With reads only, too (also serializable). */
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	o.isolation = UDR_TXN_SERIALIZABLE;
	assert_int_equal(udr_txn_begin(&t, f->cat, &o), 0);
	assert_int_equal(txn_latest(t, "a"), 1);
	commit_plain(f, "a", "a2", "a2");
	seq = 77;
	assert_int_equal(udr_txn_commit(t, &seq), 0);
	assert_int_equal(seq, 0);
	udr_txn_free(t);
	assert_int_equal(head(f), 2);
	assert_int_equal(th_count_entries(logdir), before + 1);
	free(logdir);
}

static void txn_commit_with_missing_chunk(void **state)
{
	fx *f = *state;
	commit_plain(f, "a", "a1", "a1");
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	stage(f, t, "b", "b staged", "b");
	udr_hash h = put_str(f, "will vanish");
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "a", 0), 0);
	assert_int_equal(udr_version_add_chunk(v, &h), 0);
	assert_int_equal(udr_txn_write(t, v), 0);
	udr_version_free(v);
	/* The chunk disappears between staging and commit. */
	th_remove_object(f->sdir, &h);
	uint64_t seq = 5;
	assert_int_equal(udr_txn_commit(t, &seq), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, th_hex(&h));
	assert_int_equal(seq, 0);
	udr_txn_free(t);
	/* Nothing at all was committed. */
	assert_int_equal(head(f), 1);
	assert_int_equal(latest(f, "a"), 1);
	assert_int_equal(latest(f, "b"), 0);
	assert_int_equal(udr_catalog_fsck(NULL, f->cat, NULL, NULL), 0);
}

/* ---- read-modify-write from threads: no lost update ------------------------ */

struct rmw_args {
	fx *f;
	int n;
	int commits;
	int conflicts;
	int errors;
	char msg[256];
};

static void *rmw_thread(void *p)
{
	struct rmw_args *a = p;
	for (int i = 0; i < a->n;) {
		udr_txn *t = NULL;
		udr_version *cur = NULL, *nv = NULL;
		long value = 0;
		if (udr_txn_begin(&t, a->f->cat, NULL) != 0) {
			a->errors++;
			break;
		}
		int rc = udr_txn_get_version(&cur, t, "counter", 0);
		if (rc == 0) {
			value = strtol(udr_version_get_meta(cur, "value"), NULL, 10);
			udr_version_free(cur);
		} else if (rc != UDR_ENOTFOUND) {
			snprintf(a->msg, sizeof(a->msg), "read: %d %s", rc, udr_error_last()->message);
			a->errors++;
			udr_txn_free(t);
			break;
		}
		char buf[32];
		snprintf(buf, sizeof(buf), "%ld", value + 1);
		udr_version_new(&nv, "counter", 0);
		udr_version_set_meta(nv, "value", buf);
		udr_txn_write(t, nv);
		udr_version_free(nv);
		rc = udr_txn_commit(t, NULL);
		udr_txn_free(t);
		if (rc == 0) {
			a->commits++;
			i++;
		} else if (rc == UDR_ECONFLICT) {
			a->conflicts++;
		} else {
			snprintf(a->msg, sizeof(a->msg), "commit: %d %s", rc, udr_error_last()->message);
			a->errors++;
			break;
		}
	}
	return NULL;
}

static void txn_threads_read_modify_write_no_lost_update(void **state)
{
	fx *f = *state;
	struct rmw_args a[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].f = f;
		a[i].n = 15;
		assert_int_equal(pthread_create(&th[i], NULL, rmw_thread, &a[i]), 0);
	}
	int commits = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (a[i].errors)
			print_error("thread %d: %s\n", i, a[i].msg);
		assert_int_equal(a[i].errors, 0);
		commits += a[i].commits;
	}
	assert_int_equal(commits, 60);
	assert_int_equal(latest(f, "counter"), 60);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version(&v, f->cat, "counter", 0), 0);
	assert_string_equal(udr_version_get_meta(v, "value"), "60");
	udr_version_free(v);
}

/* ---- a reader racing the publication of a commit ------------------------------
 * A writer has published version file t/2 (naming commit 2) and is about to
 * link log/2.  A reader probing t's latest reads t/2, tries log/2 (absent:
 * the version is not committed yet), and the writer links it right then.
 * The reader must answer 1 or 2, never report corruption.  The I/O table
 * holds the two threads at exactly those steps. */
static pthread_mutex_t race_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t race_cv = PTHREAD_COND_INITIALIZER;
static int race_armed, race_at_link, race_reader_missed, race_linked;
static char race_record[64];

static void race_wait(int *flag)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&race_mu);
	while (!*flag)
		if (pthread_cond_timedwait(&race_cv, &race_mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&race_mu);
}

static void race_set(int *flag)
{
	pthread_mutex_lock(&race_mu);
	*flag = 1;
	pthread_cond_broadcast(&race_cv);
	pthread_mutex_unlock(&race_mu);
}

static int race_open(const char *path, int flags, mode_t mode)
{
	int fd = udr_io_default()->open(path, flags, mode);
	if (fd < 0 && errno == ENOENT && race_armed && race_at_link && !race_reader_missed &&
	    strstr(path, race_record)) {
		race_set(&race_reader_missed);
		race_wait(&race_linked);
		errno = ENOENT;
	}
	return fd;
}

static int race_link(const char *from, const char *to)
{
	if (race_armed && strstr(to, race_record)) {
		race_set(&race_at_link);
		race_wait(&race_reader_missed);
		int rc = udr_io_default()->link(from, to);
		int e = errno;
		race_set(&race_linked);
		errno = e;
		return rc;
	}
	return udr_io_default()->link(from, to);
}

struct race_writer {
	fx *f;
	int rc;
	char msg[256];
};

static void *race_writer_main(void *p)
{
	struct race_writer *w = p;
	udr_txn *t = NULL;
	w->rc = udr_txn_begin(&t, w->f->cat, NULL);
	if (w->rc == 0) {
		udr_version *v = NULL;
		udr_hash h;
		udr_store_put(&h, w->f->st, "racing", 6);
		udr_version_new(&v, "t", 0);
		udr_version_add_chunk(v, &h);
		udr_version_set_meta(v, "by", "racer");
		w->rc = udr_txn_write(t, v);
		udr_version_free(v);
		if (w->rc == 0)
			w->rc = udr_txn_commit(t, NULL);
	}
	if (w->rc)
		snprintf(w->msg, sizeof(w->msg), "%s", udr_error_last()->message);
	udr_txn_free(t);
	return NULL;
}

static void race_run(fx *f, int use_txn)
{
	commit_plain(f, "t", "t1", "t1");
	static udr_io_methods m;
	m = *udr_io_default();
	m.open = race_open;
	m.link = race_link;
	snprintf(race_record, sizeof(race_record), "log/%020llu.json", 2ULL);
	race_at_link = race_reader_missed = race_linked = 0;
	assert_int_equal(udr_io_set(&m), 0);
	race_armed = 1;
	struct race_writer w = {f, 0, ""};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, race_writer_main, &w), 0);
	race_wait(&race_at_link);
	uint64_t l = 0;
	int rc;
	if (use_txn) {
		udr_txn *t = NULL;
		rc = udr_txn_begin(&t, f->cat, NULL);
		if (rc == 0)
			rc = udr_txn_latest(&l, t, "t");
		udr_txn_free(t);
	} else {
		rc = udr_catalog_latest(&l, f->cat, "t");
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
	race_set(&race_reader_missed); /* in case the reader never got there */
	pthread_join(th, NULL);
	race_armed = 0;
	udr_io_set(NULL);
	if (rc != 0)
		print_error("reader racing a commit: %d (%s): %s\n", rc, udr_strerror(rc), msg);
	assert_int_equal(w.rc, 0);
	assert_int_equal(rc, 0);
	assert_true(l == 1 || l == 2);
	assert_int_equal(latest(f, "t"), 2);
}

static void txn_reader_racing_commit_point_catalog_latest(void **state)
{
	race_run(*state, 0);
}

static void txn_reader_racing_commit_point_txn_latest(void **state)
{
	race_run(*state, 1);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(txn_reader_keeps_snapshot),
		T(txn_snapshot_of_empty_catalog),
		T(txn_sees_own_staged_writes),
		T(txn_stage_same_table_twice_replaces),
		T(txn_multi_table_commit_is_one_record),
		T(txn_abort_makes_nothing_visible),
		T(txn_concurrent_readers_never_see_partial_commits),
		T(txn_first_committer_wins),
		T(txn_conflict_names_the_latest_winner),
		T(txn_no_false_conflicts_sequential),
		T(txn_disjoint_concurrent_both_commit),
		T(txn_serializable_fails_when_read_table_changed),
		T(txn_after_error_only_abort),
		T(txn_bad_arguments_and_options),
		T(txn_empty_commit_is_noop),
		T(txn_commit_with_missing_chunk),
		T(txn_threads_read_modify_write_no_lost_update),
		T(txn_reader_racing_commit_point_catalog_latest),
		T(txn_reader_racing_commit_point_txn_latest),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
