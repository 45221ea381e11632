/*
 * test_log.c - the changelog (include/udr/log.h): queries since a sequence
 * number or a time, by tables (merging several tables' histories, listing a
 * transaction that touched two filtered tables once), by branch, with a
 * limit, oldest or newest first; udr_catalog_seq_at_time and time travel by
 * sequence number and by time (before the first commit, exact boundaries);
 * udr_catalog_wait (woken by another thread's commit, timeout); time
 * parsing and formatting.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
	char *dir;
	char *sdir;
	char *cdir;
	udr_store *st;
	udr_catalog *cat;
	/* The scripted history (see build_history). */
	uint64_t nseq;
	int64_t time_of[32];     /* time_ms of commit seq */
	char tables_of[32][8];   /* which of a, b, c commit seq touched: "ab", "c", ... */
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

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* One commit (a transaction) writing each table named by a letter of which. */
static uint64_t commit_tables(fx *f, const char *which)
{
	udr_txn *t = NULL;
	assert_int_equal(udr_txn_begin(&t, f->cat, NULL), 0);
	for (const char *p = which; *p; p++) {
		char name[2] = {*p, 0};
		char text[64];
		udr_version *v = NULL;
		udr_hash h;
		snprintf(text, sizeof(text), "%s@%llu", name, (unsigned long long)f->nseq + 1);
		assert_int_equal(udr_store_put(&h, f->st, text, strlen(text)), 0);
		assert_int_equal(udr_version_new(&v, name, 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_version_set_meta(v, "seq", text), 0);
		assert_int_equal(udr_txn_write(t, v), 0);
		udr_version_free(v);
	}
	uint64_t seq = 0;
	int rc = udr_txn_commit(t, &seq);
	if (rc)
		print_error("commit %s: %s\n", which, udr_error_last()->message);
	assert_int_equal(rc, 0);
	udr_txn_free(t);
	assert_int_equal(seq, f->nseq + 1);
	f->nseq = seq;
	udr_commit *cm = NULL;
	assert_int_equal(udr_catalog_get_commit(&cm, f->cat, seq), 0);
	f->time_of[seq] = cm->time_ms;
	snprintf(f->tables_of[seq], sizeof(f->tables_of[seq]), "%s", which);
	udr_commit_free(cm);
	return seq;
}

/*
 * 12 commits; some pairs share a millisecond (no sleep), others are apart:
 *   1 a   2 b   3 ab  4 c   5 a   6 bc  7 abc  8 c   9 b   10 a  11 ac  12 c
 */
static const char *const HISTORY[] = {"a", "b", "ab", "c", "a", "bc", "abc", "c", "b", "a", "ac", "c"};
#define NHIST 12

static void build_history(fx *f)
{
	for (int i = 0; i < NHIST; i++) {
		/* Pairs (1,2), (5,6), (9,10) are committed back to back; others 3 ms apart. */
		if (i > 0 && !(i == 1 || i == 5 || i == 9))
			sleep_ms(3);
		commit_tables(f, HISTORY[i]);
	}
	for (uint64_t s = 2; s <= f->nseq; s++)
		assert_true(f->time_of[s] >= f->time_of[s - 1]);
	/* The sleeps guarantee at least some distinct times. */
	assert_true(f->time_of[4] > f->time_of[3]);
	assert_true(f->time_of[12] > f->time_of[11]);
}

/* Expected seqs: the query evaluated naively over the scripted history. */
static size_t expected(fx *f, uint64_t *out, const udr_log_query *q)
{
	size_t n = 0;
	uint64_t all[32];
	size_t na = 0;
	for (uint64_t s = 1; s <= f->nseq; s++) {
		if (s <= q->since_seq)
			continue;
		if (q->since_ms && f->time_of[s] < q->since_ms)
			continue;
		if (q->branch && strcmp(q->branch, "main") != 0)
			continue;
		if (q->tables && q->ntables) {
			int hit = 0;
			for (size_t i = 0; i < q->ntables; i++)
				if (strlen(q->tables[i]) == 1 && strchr(f->tables_of[s], q->tables[i][0]))
					hit = 1;
			if (!hit)
				continue;
		}
		all[na++] = s;
	}
	for (size_t i = 0; i < na; i++) {
		if (q->limit && n == q->limit)
			break;
		out[n++] = q->newest_first ? all[na - 1 - i] : all[i];
	}
	return n;
}

static void check_query(fx *f, const udr_log_query *q, const char *what)
{
	uint64_t want[32];
	size_t nwant = expected(f, want, q);
	udr_commit **cs = NULL;
	size_t n = 999;
	int rc = udr_catalog_log(&cs, &n, f->cat, q);
	if (rc != 0) {
		print_error("%s: udr_catalog_log: %d %s\n", what, rc, udr_error_last()->message);
		fail();
	}
	int bad = n != nwant;
	for (size_t i = 0; !bad && i < n; i++)
		bad = cs[i]->seq != want[i];
	if (bad) {
		print_error("%s: got %zu commits:", what, n);
		for (size_t i = 0; i < n; i++)
			print_error(" %llu", (unsigned long long)cs[i]->seq);
		print_error("\n%s: expected %zu:", what, nwant);
		for (size_t i = 0; i < nwant; i++)
			print_error(" %llu", (unsigned long long)want[i]);
		print_error("\n");
		fail();
	}
	/* Each returned record is complete and correct. */
	for (size_t i = 0; i < n; i++) {
		const udr_commit *c = cs[i];
		assert_string_equal(c->branch, "main");
		assert_int_equal(c->time_ms, f->time_of[c->seq]);
		assert_int_equal(c->nchanges, strlen(f->tables_of[c->seq]));
		for (size_t k = 0; k < c->nchanges; k++)
			assert_non_null(strchr(f->tables_of[c->seq], c->changes[k].table[0]));
	}
	udr_commit_array_free(cs, n);
}

/* ---- queries ----------------------------------------------------------------- */

static void log_empty_catalog(void **state)
{
	fx *f = *state;
	udr_commit **cs = (udr_commit **)0x1;
	size_t n = 5;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, NULL), 0);
	assert_int_equal(n, 0);
	udr_commit_array_free(cs, n);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	q.newest_first = 1;
	const char *tabs[] = {"a"};
	q.tables = tabs;
	q.ntables = 1;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, 0);
	udr_commit_array_free(cs, n);
	udr_commit_array_free(NULL, 0);
}

static void log_all_both_orders(void **state)
{
	fx *f = *state;
	build_history(f);
	udr_commit **cs = NULL;
	size_t n = 0;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, NULL), 0);
	assert_int_equal(n, NHIST);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(cs[i]->seq, i + 1);
		assert_int_equal(cs[i]->parent, i);
	}
	/* A 3-table transaction is one record with three changes. */
	assert_int_equal(cs[6]->nchanges, 3);
	udr_commit_array_free(cs, n);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	check_query(f, &q, "all ascending");
	q.newest_first = 1;
	check_query(f, &q, "all newest first");
}

static void log_since_seq(void **state)
{
	fx *f = *state;
	build_history(f);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	for (uint64_t s = 0; s <= NHIST + 2; s++) {
		char what[64];
		q.since_seq = s;
		q.newest_first = 0;
		snprintf(what, sizeof(what), "since seq %llu", (unsigned long long)s);
		check_query(f, &q, what);
		q.newest_first = 1;
		check_query(f, &q, what);
	}
	/* Concretely: since 9 is 10, 11, 12. */
	udr_commit **cs = NULL;
	size_t n = 0;
	q.since_seq = 9;
	q.newest_first = 0;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, 3);
	assert_int_equal(cs[0]->seq, 10);
	assert_int_equal(cs[2]->seq, 12);
	udr_commit_array_free(cs, n);
}

static void log_since_time(void **state)
{
	fx *f = *state;
	build_history(f);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	/* Every commit time, one ms before and after it. */
	for (uint64_t s = 1; s <= f->nseq; s++) {
		for (int d = -1; d <= 1; d++) {
			char what[80];
			q.since_ms = f->time_of[s] + d;
			snprintf(what, sizeof(what), "since time of %llu %+d ms", (unsigned long long)s, d);
			q.newest_first = 0;
			check_query(f, &q, what);
			q.newest_first = 1;
			check_query(f, &q, what);
		}
	}
	/* Exact boundary: since the time of commit 4 includes 4 (and, when 3
	 * shares its millisecond, 3 too) and never anything older. */
	udr_commit **cs = NULL;
	size_t n = 0;
	q.since_ms = f->time_of[4];
	q.newest_first = 0;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_true(n >= NHIST - 3);
	assert_int_equal(cs[0]->seq, 4); /* time_of[4] > time_of[3] by construction */
	udr_commit_array_free(cs, n);
	/* Far future: nothing; epoch + 1 ms: everything. */
	q.since_ms = f->time_of[f->nseq] + 100000;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, 0);
	udr_commit_array_free(cs, n);
	q.since_ms = 1;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, NHIST);
	udr_commit_array_free(cs, n);
	/* Combined with since_seq: the stricter bound wins. */
	q.since_ms = f->time_of[4];
	q.since_seq = 8;
	check_query(f, &q, "since time 4 and seq 8");
	q.since_ms = f->time_of[10];
	q.since_seq = 2;
	check_query(f, &q, "since time 10 and seq 2");
}

static void log_by_tables(void **state)
{
	fx *f = *state;
	build_history(f);
	const char *ab[] = {"a", "b"};
	const char *c[] = {"c"};
	const char *ba_dup[] = {"b", "a", "b"};
	const char *abc_none[] = {"a", "zzz", "c", "b"};
	const char *none[] = {"zzz"};
	struct {
		const char *const *t;
		size_t n;
		const char *name;
	} sets[] = {{ab, 2, "a,b"}, {c, 1, "c"}, {ba_dup, 3, "b,a,b"}, {abc_none, 4, "a,zzz,c,b"}, {none, 1, "zzz"}};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		udr_log_query q = UDR_LOG_QUERY_INIT;
		q.tables = sets[i].t;
		q.ntables = sets[i].n;
		for (uint64_t since = 0; since <= NHIST; since += 3) {
			for (size_t limit = 0; limit <= 4; limit += 2) {
				for (int nf = 0; nf <= 1; nf++) {
					char what[128];
					q.since_seq = since;
					q.limit = limit;
					q.newest_first = nf;
					snprintf(what, sizeof(what), "tables %s since %llu limit %zu %s", sets[i].name,
					         (unsigned long long)since, limit, nf ? "newest" : "oldest");
					check_query(f, &q, what);
				}
			}
		}
		for (uint64_t s = 1; s <= f->nseq; s += 2) {
			char what[128];
			q.since_seq = 0;
			q.limit = 0;
			q.since_ms = f->time_of[s];
			snprintf(what, sizeof(what), "tables %s since time of %llu", sets[i].name, (unsigned long long)s);
			q.newest_first = 0;
			check_query(f, &q, what);
			q.newest_first = 1;
			check_query(f, &q, what);
		}
	}
	/* Concretely: a txn touching both a and b (3 and 7) is listed once. */
	udr_log_query q = UDR_LOG_QUERY_INIT;
	q.tables = ab;
	q.ntables = 2;
	udr_commit **cs = NULL;
	size_t n = 0;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	uint64_t want[] = {1, 2, 3, 5, 6, 7, 9, 10, 11};
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cs[i]->seq, want[i]);
	udr_commit_array_free(cs, n);
	/* A bad table name is rejected. */
	const char *bad[] = {"a", "../x"};
	q.tables = bad;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
}

static void log_branch_filter(void **state)
{
	fx *f = *state;
	build_history(f);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	q.branch = "main";
	check_query(f, &q, "branch main");
	udr_commit **cs = NULL;
	size_t n = 0;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, NHIST);
	udr_commit_array_free(cs, n);
	/* a branch that never existed: not found (an empty log hid a typo);
	 * a malformed name: invalid */
	q.branch = "dev";
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "no branch 'dev'");
	q.branch = "bad..name";
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), UDR_EINVAL);
	q.branch = "dev";
	const char *a[] = {"a"};
	q.tables = a;
	q.ntables = 1;
	q.limit = 2;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), UDR_ENOTFOUND);
	q.branch = "main";
	q.newest_first = 1;
	check_query(f, &q, "branch main, table a, limit 2, newest");
}

static void log_limit(void **state)
{
	fx *f = *state;
	build_history(f);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	for (size_t limit = 1; limit <= NHIST + 1; limit++) {
		char what[64];
		q.limit = limit;
		snprintf(what, sizeof(what), "limit %zu", limit);
		q.newest_first = 0;
		check_query(f, &q, what);
		q.newest_first = 1;
		check_query(f, &q, what);
	}
	udr_commit **cs = NULL;
	size_t n = 0;
	q.limit = 3;
	q.newest_first = 1;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, 3);
	assert_int_equal(cs[0]->seq, 12);
	assert_int_equal(cs[1]->seq, 11);
	assert_int_equal(cs[2]->seq, 10);
	udr_commit_array_free(cs, n);
	q.newest_first = 0;
	q.since_seq = 4;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), 0);
	assert_int_equal(n, 3);
	assert_int_equal(cs[0]->seq, 5);
	assert_int_equal(cs[2]->seq, 7);
	udr_commit_array_free(cs, n);
}

static void log_bad_arguments(void **state)
{
	fx *f = *state;
	udr_commit **cs = NULL;
	size_t n = 0;
	udr_log_query q = UDR_LOG_QUERY_INIT;
	q.version = 42;
	assert_int_equal(udr_catalog_log(&cs, &n, f->cat, &q), UDR_EINVAL);
	th_assert_error(UDR_EINVAL, NULL);
	assert_int_equal(udr_catalog_log(NULL, &n, f->cat, NULL), UDR_EINVAL);
	assert_int_equal(udr_catalog_log(&cs, NULL, f->cat, NULL), UDR_EINVAL);
	assert_int_equal(udr_catalog_log(&cs, &n, NULL, NULL), UDR_EINVAL);
	uint64_t s;
	assert_int_equal(udr_catalog_seq_at_time(NULL, f->cat, 0), UDR_EINVAL);
	assert_int_equal(udr_catalog_seq_at_time(&s, NULL, 0), UDR_EINVAL);
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version_at_seq(&v, f->cat, "bad/name", 1), UDR_EINVAL);
	assert_int_equal(udr_catalog_get_version_at_time(&v, f->cat, "", 1), UDR_EINVAL);
	assert_true(udr_catalog_wait(NULL, NULL, 0, 0) < 0);
}

/* ---- time travel ---------------------------------------------------------------- */

/* The latest version of table (a letter) made by a commit <= seq (0: none). */
static uint64_t expected_version_at(fx *f, char table, uint64_t seq)
{
	uint64_t v = 0;
	for (uint64_t s = 1; s <= seq && s <= f->nseq; s++)
		if (strchr(f->tables_of[s], table))
			v++;
	return v;
}

static void log_seq_at_time(void **state)
{
	fx *f = *state;
	uint64_t s = 99;
	/* Empty log. */
	assert_int_equal(udr_catalog_seq_at_time(&s, f->cat, 4102444800000LL), 0);
	assert_int_equal(s, 0);
	build_history(f);
	/* Before the first commit. */
	s = 99;
	assert_int_equal(udr_catalog_seq_at_time(&s, f->cat, f->time_of[1] - 1), 0);
	assert_int_equal(s, 0);
	assert_int_equal(udr_catalog_seq_at_time(&s, f->cat, 0), 0);
	assert_int_equal(s, 0);
	/* Exact boundaries: the last commit at or before each time. */
	for (uint64_t k = 1; k <= f->nseq; k++) {
		for (int d = -1; d <= 1; d++) {
			int64_t t = f->time_of[k] + d;
			uint64_t want = 0;
			for (uint64_t j = 1; j <= f->nseq; j++)
				if (f->time_of[j] <= t)
					want = j;
			assert_int_equal(udr_catalog_seq_at_time(&s, f->cat, t), 0);
			if (s != want)
				print_error("seq_at_time(time of %llu %+d) = %llu, expected %llu\n", (unsigned long long)k,
				            d, (unsigned long long)s, (unsigned long long)want);
			assert_int_equal(s, want);
		}
	}
	/* After the last commit: the head. */
	assert_int_equal(udr_catalog_seq_at_time(&s, f->cat, f->time_of[f->nseq] + 3600000), 0);
	assert_int_equal(s, f->nseq);
}

static void check_version(fx *f, udr_version *v, char table, uint64_t want)
{
	assert_non_null(v);
	assert_int_equal(v->table[0], table);
	assert_int_equal(v->version, want);
	/* Its commit is the want-th commit touching table. */
	uint64_t n = 0, seq = 0;
	for (uint64_t s = 1; s <= f->nseq && n < want; s++)
		if (strchr(f->tables_of[s], table)) {
			n++;
			seq = s;
		}
	assert_int_equal(v->commit_seq, seq);
	char text[64];
	snprintf(text, sizeof(text), "%c@%llu", table, (unsigned long long)seq);
	assert_string_equal(udr_version_get_meta(v, "seq"), text);
}

static void log_version_at_seq(void **state)
{
	fx *f = *state;
	udr_version *v = (udr_version *)0x1;
	/* Empty catalog: not found. */
	assert_int_equal(udr_catalog_get_version_at_seq(&v, f->cat, "a", 5), UDR_ENOTFOUND);
	assert_null(v);
	build_history(f);
	const char tables[] = "abc";
	for (int ti = 0; ti < 3; ti++) {
		char name[2] = {tables[ti], 0};
		for (uint64_t s = 0; s <= f->nseq + 3; s++) {
			uint64_t want = expected_version_at(f, tables[ti], s);
			v = NULL;
			int rc = udr_catalog_get_version_at_seq(&v, f->cat, name, s);
			if (want == 0) {
				if (rc != UDR_ENOTFOUND)
					print_error("at_seq(%s, %llu): %d, expected not found\n", name, (unsigned long long)s, rc);
				assert_int_equal(rc, UDR_ENOTFOUND);
				th_assert_error(UDR_ENOTFOUND, name);
				assert_null(v);
				continue;
			}
			if (rc != 0)
				print_error("at_seq(%s, %llu): %d %s\n", name, (unsigned long long)s, rc,
				            udr_error_last()->message);
			assert_int_equal(rc, 0);
			if (v->version != want)
				print_error("at_seq(%s, %llu) = version %llu, expected %llu\n", name, (unsigned long long)s,
				            (unsigned long long)v->version, (unsigned long long)want);
			check_version(f, v, tables[ti], want);
			udr_version_free(v);
		}
	}
	/* A table that never existed. */
	assert_int_equal(udr_catalog_get_version_at_seq(&v, f->cat, "nosuch", 12), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "nosuch");
}

static void log_version_at_time(void **state)
{
	fx *f = *state;
	udr_version *v = NULL;
	assert_int_equal(udr_catalog_get_version_at_time(&v, f->cat, "a", 4102444800000LL), UDR_ENOTFOUND);
	build_history(f);
	/* Before the first commit: nothing. */
	v = (udr_version *)0x1;
	assert_int_equal(udr_catalog_get_version_at_time(&v, f->cat, "a", f->time_of[1] - 1), UDR_ENOTFOUND);
	th_assert_error(UDR_ENOTFOUND, "a");
	assert_null(v);
	/* c's first commit is 4: at time_of[4]-1 it did not exist. */
	assert_int_equal(udr_catalog_get_version_at_time(&v, f->cat, "c", f->time_of[4] - 1), UDR_ENOTFOUND);
	const char tables[] = "abc";
	for (int ti = 0; ti < 3; ti++) {
		char name[2] = {tables[ti], 0};
		for (uint64_t k = 1; k <= f->nseq; k++) {
			for (int d = -1; d <= 1; d++) {
				int64_t t = f->time_of[k] + d;
				uint64_t seq = 0;
				for (uint64_t j = 1; j <= f->nseq; j++)
					if (f->time_of[j] <= t)
						seq = j;
				uint64_t want = expected_version_at(f, tables[ti], seq);
				v = NULL;
				int rc = udr_catalog_get_version_at_time(&v, f->cat, name, t);
				if (want == 0) {
					assert_int_equal(rc, UDR_ENOTFOUND);
					continue;
				}
				if (rc != 0)
					print_error("at_time(%s, %lld): %d %s\n", name, (long long)t, rc, udr_error_last()->message);
				assert_int_equal(rc, 0);
				check_version(f, v, tables[ti], want);
				udr_version_free(v);
			}
		}
	}
	/* Far future: the latest. */
	v = NULL;
	assert_int_equal(udr_catalog_get_version_at_time(&v, f->cat, "c", f->time_of[f->nseq] + 86400000), 0);
	check_version(f, v, 'c', expected_version_at(f, 'c', f->nseq));
	udr_version_free(v);
}

/* ---- wait ------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct delayed {
	fx *f;
	int delay_ms;
	int64_t committed_at;
	int rc;
};

static void *delayed_commit(void *p)
{
	struct delayed *d = p;
	udr_version *v = NULL;
	udr_hash h;
	sleep_ms(d->delay_ms);
	udr_store_put(&h, d->f->st, "late", 4);
	udr_version_new(&v, "late", 0);
	udr_version_add_chunk(v, &h);
	d->rc = udr_catalog_commit_next(d->f->cat, v);
	d->committed_at = mono_ms();
	udr_version_free(v);
	return NULL;
}

static void log_wait_wakes_on_commit(void **state)
{
	fx *f = *state;
	commit_tables(f, "a");
	/* Already past: returns 1 at once. */
	uint64_t h = 0;
	int64_t t0 = mono_ms();
	assert_int_equal(udr_catalog_wait(&h, f->cat, 0, 10000), 1);
	assert_int_equal(h, 1);
	assert_true(mono_ms() - t0 < 5000);
	/* Another thread commits after 300 ms: wait (up to 20 s) returns 1
	 * promptly after it. */
	for (int round = 0; round < 3; round++) {
		struct delayed d = {f, 300, 0, -99};
		pthread_t th;
		uint64_t before = 0;
		assert_int_equal(udr_catalog_head(&before, f->cat), 0);
		t0 = mono_ms();
		assert_int_equal(pthread_create(&th, NULL, delayed_commit, &d), 0);
		h = 0;
		int rc = udr_catalog_wait(&h, f->cat, before, 20000);
		int64_t woke = mono_ms();
		pthread_join(th, NULL);
		assert_int_equal(d.rc, 0);
		assert_int_equal(rc, 1);
		assert_int_equal(h, before + 1);
		/* It did wait for the commit... */
		assert_true(woke - t0 >= 250);
		/* ...and woke promptly (generous bound for a noisy machine; the
		 * 1 s internal re-check and the 20 s timeout are both far). */
		if (woke - d.committed_at > 900)
			print_error("woke %lld ms after the commit\n", (long long)(woke - d.committed_at));
		assert_true(woke - d.committed_at <= 900);
	}
	/* Forever (-1) also returns when a commit comes. */
	{
		struct delayed d = {f, 100, 0, -99};
		pthread_t th;
		uint64_t before = 0;
		assert_int_equal(udr_catalog_head(&before, f->cat), 0);
		assert_int_equal(pthread_create(&th, NULL, delayed_commit, &d), 0);
		assert_int_equal(udr_catalog_wait(NULL, f->cat, before, -1), 1);
		pthread_join(th, NULL);
	}
}

static void log_wait_times_out(void **state)
{
	fx *f = *state;
	uint64_t h = 99;
	/* Empty catalog. */
	int64_t t0 = mono_ms();
	assert_int_equal(udr_catalog_wait(&h, f->cat, 0, 300), 0);
	int64_t took = mono_ms() - t0;
	assert_int_equal(h, 0);
	assert_true(took >= 290);
	assert_true(took < 10000);
	commit_tables(f, "ab");
	t0 = mono_ms();
	assert_int_equal(udr_catalog_wait(&h, f->cat, 1, 400), 0);
	took = mono_ms() - t0;
	assert_int_equal(h, 1);
	assert_true(took >= 390);
	assert_true(took < 10000);
	/* Timeout 0: just a check. */
	assert_int_equal(udr_catalog_wait(&h, f->cat, 1, 0), 0);
	assert_int_equal(udr_catalog_wait(&h, f->cat, 0, 0), 1);
	/* Waiting past a future seq still times out (no false wake-up when a
	 * commit comes that does not reach it). */
	struct delayed d = {f, 50, 0, -99};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, delayed_commit, &d), 0);
	t0 = mono_ms();
	assert_int_equal(udr_catalog_wait(&h, f->cat, 5, 500), 0);
	took = mono_ms() - t0;
	pthread_join(th, NULL);
	assert_int_equal(d.rc, 0);
	assert_int_equal(h, 2);
	assert_true(took >= 490);
}

/* ---- time parsing ------------------------------------------------------------------ */

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void log_time_parse_good(void **state)
{
	(void)state;
	struct {
		const char *text;
		int64_t want;
	} good[] = {
		{"2026-11-01T12:00:00Z", utc_ms(2026, 11, 1, 12, 0, 0, 0)},
		{"2026-11-01T12:00:00.5Z", utc_ms(2026, 11, 1, 12, 0, 0, 500)},
		{"2026-11-01T12:00:00.123Z", utc_ms(2026, 11, 1, 12, 0, 0, 123)},
		{"2026-11-01T12:00:00.123456Z", utc_ms(2026, 11, 1, 12, 0, 0, 123)},
		{"2026-11-01T23:59:59.999Z", utc_ms(2026, 11, 1, 23, 59, 59, 999)},
		/* a bare date: as of the end of that day (UTC) */
		{"2026-11-01", utc_ms(2026, 11, 1, 23, 59, 59, 999)},
		{"2024-02-29", utc_ms(2024, 2, 29, 23, 59, 59, 999)},
		/* RFC 3339 offsets, crossing midnight both ways */
		{"2026-11-01T12:00:00+01:00", utc_ms(2026, 11, 1, 11, 0, 0, 0)},
		{"2026-11-01T00:30:00+01:00", utc_ms(2026, 10, 31, 23, 30, 0, 0)},
		{"2026-11-01T23:30:00.250-05:30", utc_ms(2026, 11, 2, 5, 0, 0, 250)},
		{"2026-12-31T20:00:00-0500", utc_ms(2027, 1, 1, 1, 0, 0, 0)},
		{"2026-11-01T12:00:00-00:00", utc_ms(2026, 11, 1, 12, 0, 0, 0)},
		/* no zone: UTC; seconds optional; space or lowercase t (as DuckDB prints) */
		{"2026-11-01T12:00:00", utc_ms(2026, 11, 1, 12, 0, 0, 0)},
		{"2026-11-01T12:00Z", utc_ms(2026, 11, 1, 12, 0, 0, 0)},
		{"2026-11-01 12:00:00.1", utc_ms(2026, 11, 1, 12, 0, 0, 100)},
		{"2026-11-01t12:00:00z", utc_ms(2026, 11, 1, 12, 0, 0, 0)},
		{"1970-01-01T00:00:00Z", 0},
		{"2024-02-29T00:00:00Z", utc_ms(2024, 2, 29, 0, 0, 0, 0)},
		{"2000-01-01T00:00:00+00:00", 946684800000LL},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t ms = -42;
		int rc = udr_time_parse(&ms, good[i].text);
		if (rc != 0 || ms != good[i].want)
			print_error("udr_time_parse(\"%s\") = %d, %lld; expected %lld\n", good[i].text, rc, (long long)ms,
			            (long long)good[i].want);
		assert_int_equal(rc, 0);
		assert_int_equal(ms, good[i].want);
	}
	assert_int_equal(utc_ms(2026, 11, 1, 12, 0, 0, 0), 1793534400000LL);
	/* format -> parse round trip, including the shape of the text. */
	int64_t samples[] = {0, 1, 999, 1000, 1793534400123LL, 1795897563629LL, 946684799999LL};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		char buf[40];
		int64_t back = -1;
		udr_time_format(buf, sizeof(buf), samples[i]);
		assert_int_equal(strlen(buf), 24);
		assert_int_equal(buf[10], 'T');
		assert_int_equal(buf[23], 'Z');
		assert_int_equal(udr_time_parse(&back, buf), 0);
		assert_int_equal(back, samples[i]);
	}
	char buf[40];
	udr_time_format(buf, sizeof(buf), 1793534400123LL);
	assert_string_equal(buf, "2026-11-01T12:00:00.123Z");
	/* before 1970, and the ends of int64 (near INT64_MIN the floor
	 * division overflowed: a year 292278994 for a time before all) */
	udr_time_format(buf, sizeof(buf), -1);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	udr_time_format(buf, sizeof(buf), -1000);
	assert_string_equal(buf, "1969-12-31T23:59:59.000Z");
	udr_time_format(buf, sizeof(buf), INT64_MIN);
	assert_true(buf[0] == '-' && strstr(buf, ".192Z") != NULL);
	udr_time_format(buf, sizeof(buf), INT64_MAX);
	assert_true(buf[0] != '-' && strstr(buf, ".807Z") != NULL);
}

static void log_time_parse_bad(void **state)
{
	(void)state;
	const char *bad[] = {
		"",
		"garbage",
		"2026",
		"2026-11",
		"2026-13-01",
		"2026-11-01T",
		"2026-11-01T25:00:00Z",
		"2026-11-01T12:61:00Z",
		"2026-11-01T12:00:00.Z",
		"2026-11-01T12:00:00ZZ",
		"2026-11-01T12:00:00Z trailing",
		"2026-11-01T12:00:00+24:00",
		"2026-11-01T12:00:00+01",
		"2026-11-01T12:00:00+1:00",
		"2026-11-01T12:00:00+01:60",
		"2026-11-01+01:00",
		"2026-11-01T12:00.5Z",
		"2026-11-01T12Z",
		"2026-1-01",
		" 2026-11-01",
		"2026-11-01T12:00:60Z",
		"2026-00-10",
		"2026-11-00",
		"yesterday",
		"2026-02-30",
		"2026-04-31T00:00:00Z",
		"2025-02-29T00:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 12345;
		int rc = udr_time_parse(&ms, bad[i]);
		if (rc != UDR_EINVAL)
			print_error("udr_time_parse(\"%s\") = %d (ms %lld), expected UDR_EINVAL\n", bad[i], rc,
			            (long long)ms);
		assert_int_equal(rc, UDR_EINVAL);
		/* The message quotes the text. */
		if (*bad[i])
			th_assert_error(UDR_EINVAL, bad[i]);
	}
	int64_t ms;
	assert_int_equal(udr_time_parse(&ms, NULL), UDR_EINVAL);
	assert_int_equal(udr_time_parse(NULL, "2026-11-01"), UDR_EINVAL);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(log_empty_catalog),
		T(log_all_both_orders),
		T(log_since_seq),
		T(log_since_time),
		T(log_by_tables),
		T(log_branch_filter),
		T(log_limit),
		T(log_bad_arguments),
		T(log_seq_at_time),
		T(log_version_at_seq),
		T(log_version_at_time),
		T(log_wait_wakes_on_commit),
		T(log_wait_times_out),
		T(log_time_parse_good),
		T(log_time_parse_bad),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
