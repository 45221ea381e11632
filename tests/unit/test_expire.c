/*
 * test_expire.c - expiry in the log (src/catalog/expire.c, docs/GC.md 1.4,
 * 1.5): expire records through udr_retention_apply, udr_version_expiry and
 * udr_version_readable, undo and restore (unexpire records), the gc record
 * (udr__catalog_gc_record) and its refusal of undo/restore of what its sweep
 * covers, reads reporting "swept", a model of the expired set over random
 * restores, and fsck after all of it.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/gc.h>

#include "catalog/catalog_internal.h"

#include "catfx.h"

/* Expire with keep_last k; the record's seq (0: nothing expired). */
static uint64_t expire_last(fx *f, uint64_t k)
{
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	char *rep = NULL;
	uint64_t seq0 = head(f), seq1;
	r.keep_last = k;
	ok(udr_retention_apply(&rep, f->cat, &r, NULL, 0), "apply");
	assert_non_null(rep);
	assert_non_null(strstr(rep, "\"dry_run\":false"));
	udr_free(rep);
	seq1 = head(f);
	return seq1 > seq0 ? seq1 : 0;
}

static int expired(fx *f, const char *t, uint64_t v)
{
	udr_expiry e;
	ok(udr_version_expiry(&e, f->cat, t, v), "expiry");
	return e.expired;
}

static void test_expire__api(void **state)
{
	fx *f = *state;
	udr_expiry e;
	char name[64];
	uint64_t v, seq, s2;
	for (int i = 0; i < 6; i++)
		put(f, "t", i % 2 ? "odd" : "even"); /* t@1..6 */
	seq = expire_last(f, 2);                   /* t@1..4 */
	assert_int_equal(seq, 7);
	assert_int_equal(f->cat->format, 4);
	for (v = 1; v <= 6; v++)
		assert_int_equal(expired(f, "t", v), v <= 4);
	ok(udr_version_expiry(&e, f->cat, "t", 3), "expiry");
	assert_int_equal(e.expired_seq, 7);
	assert_int_equal(e.swept, 0);
	assert_int_equal(e.gc_seq, 0);
	assert_int_equal(udr_version_readable(f->cat, "t", 5), 0);
	assert_int_equal(udr_version_readable(f->cat, "t", 99), 0); /* no such version: not expired */
	assert_int_equal(udr_version_readable(f->cat, "t", 2), UDR_EEXPIRED);
	assert_non_null(strstr(udr_error_last()->message, "t@2 expired by retention on "));
	assert_non_null(strstr(udr_error_last()->message, "(commit 7, keep_last=2)"));
	assert_non_null(strstr(udr_error_last()->message, "'udr retention restore t@2' brings it back"));
	/* time travel's: which time was which version (the time quoted as text) */
	assert_int_equal(udr_version_readable_at(f->cat, "t", 2, "2026-11-01\n"), UDR_EEXPIRED);
	assert_non_null(strstr(udr_error_last()->message, "t at 2026-11-01\\x0a was version 2, which expired by retention on "));
	assert_non_null(strstr(udr_error_last()->message, "(commit 7, keep_last=2)"));
	assert_int_equal(udr_version_readable_at(f->cat, "t", 5, "2026-11-01"), 0);
	assert_int_equal(udr_version_readable_at(f->cat, "t", 2, NULL), UDR_EEXPIRED);
	assert_non_null(strstr(udr_error_last()->message, "t@2 expired by retention on "));
	assert_int_equal(udr_expiry_last(name, sizeof name, &v, &e), 1);
	assert_string_equal(name, "t");
	assert_int_equal(v, 2);
	assert_int_equal(e.expired_seq, 7);
	/* bad input */
	assert_int_equal(udr_version_expiry(&e, f->cat, "t", 0), UDR_EINVAL);
	assert_int_equal(udr_version_expiry(&e, f->cat, "a/../b", 1), UDR_EINVAL);
	assert_int_equal(udr_retention_restore(NULL, f->cat, "t", 3, 2), UDR_EINVAL);
	assert_int_equal(udr_retention_restore(NULL, f->cat, "t", 0, 2), UDR_EINVAL);
	assert_int_equal(udr_retention_undo(NULL, f->cat, 3), UDR_EINVAL); /* a commit, not an expire record */
	assert_int_equal(head(f), 7);
	/* restore, undo */
	ok(udr_retention_restore(&s2, f->cat, "t", 2, 3), "restore");
	assert_int_equal(s2, 8);
	assert_int_equal(expired(f, "t", 2) + expired(f, "t", 3), 0);
	assert_int_equal(expired(f, "t", 1) + expired(f, "t", 4), 2);
	assert_int_equal(udr_retention_restore(&s2, f->cat, "t", 2, 3), UDR_ENOTFOUND);
	assert_int_equal(s2, 0);
	ok(udr_retention_undo(&s2, f->cat, 0), "undo");
	assert_int_equal(s2, 9);
	for (v = 1; v <= 6; v++)
		assert_int_equal(expired(f, "t", v), 0);
	ok(udr_retention_undo(&s2, f->cat, 7), "undo again");
	assert_int_equal(s2, 0);
	assert_int_equal(head(f), 9);
	fsck_clean(f);
}

static void test_expire__gc_record(void **state)
{
	fx *f = *state;
	udr_expiry e;
	uint64_t e1, e2, g, s;
	for (int i = 0; i < 6; i++)
		put(f, "t", i % 2 ? "a" : "b"); /* t@1..6 */
	e1 = expire_last(f, 4);             /* t@1..2: commit 7 */
	put(f, "t", "c");                   /* t@7: commit 8 */
	e2 = expire_last(f, 3);             /* t@3..4: commit 9 */
	assert_int_equal(e1, 7);
	assert_int_equal(e2, 9);
	/* bad gc records: nothing written */
	assert_int_equal(udr__catalog_gc_record(&g, f->cat, 1, 99, 7), UDR_EINVAL); /* mark past the head */
	assert_int_equal(udr__catalog_gc_record(&g, f->cat, 1, 7, 8), UDR_EINVAL);  /* through past mark */
	assert_int_equal(head(f), 9);
	ok(udr__catalog_gc_record(&g, f->cat, 1, 8, 7), "gc record");
	assert_int_equal(g, 10);
	/* through never goes back */
	assert_int_equal(udr__catalog_gc_record(&s, f->cat, 2, 9, 6), UDR_EINVAL);
	/* versions of e1 are swept; e2's are not */
	ok(udr_version_expiry(&e, f->cat, "t", 1), "expiry");
	assert_int_equal(e.expired, 1);
	assert_int_equal(e.swept, 1);
	assert_int_equal(e.gc_seq, 10);
	assert_true(e.gc_ms > 0);
	ok(udr_version_expiry(&e, f->cat, "t", 3), "expiry");
	assert_int_equal(e.swept, 0);
	assert_int_equal(udr_version_readable(f->cat, "t", 2), UDR_EEXPIRED);
	assert_non_null(strstr(udr_error_last()->message, "its data was removed by gc on "));
	assert_non_null(strstr(udr_error_last()->message, "(commit 10)"));
	/* undo/restore of what the sweep covers: UDR_ECONFLICT, nothing written */
	assert_int_equal(udr_retention_undo(&s, f->cat, e1), UDR_ECONFLICT);
	assert_non_null(strstr(udr_error_last()->message, "removed by gc"));
	assert_int_equal(udr_retention_restore(&s, f->cat, "t", 1, 4), UDR_ECONFLICT);
	assert_int_equal(head(f), 10);
	/* what it does not cover still comes back */
	ok(udr_retention_restore(&s, f->cat, "t", 3, 4), "restore");
	assert_int_equal(s, 11);
	assert_int_equal(expired(f, "t", 3), 0);
	/* a later gc record through e2 */
	ok(udr__catalog_gc_record(&g, f->cat, 2, 11, 9), "gc record 2");
	fsck_clean(f);
}

/* A restore linked after the gc run's mark, of a version expired by a
 * record its through covers: the run marked that version's data dead, so
 * the gc record is refused (UDR_ECONFLICT, nothing written) rather than
 * letting a restored version lose its data; a restore of a later expiry's
 * version, or one before the mark, does not stop it (review R3). */
static void test_expire__gc_record_after_restore(void **state)
{
	fx *f = *state;
	uint64_t e1, e2, g, s, mark;
	for (int i = 0; i < 6; i++)
		put(f, "t", i % 2 ? "a" : "b"); /* t@1..6 */
	e1 = expire_last(f, 4);             /* t@1..2: commit 7 */
	put(f, "t", "c");                   /* t@7: commit 8 */
	e2 = expire_last(f, 3);             /* t@3..4: commit 9 */
	assert_int_equal(e1, 7);
	assert_int_equal(e2, 9);
	mark = head(f); /* the run marks at 9, through e1 */
	ok(udr_retention_restore(&s, f->cat, "t", 4, 4), "restore of e2's");
	assert_int_equal(s, 10);
	ok(udr_retention_restore(&s, f->cat, "t", 2, 2), "restore of e1's");
	assert_int_equal(s, 11);
	assert_int_equal(expired(f, "t", 2), 0);
	assert_int_equal(udr__catalog_gc_record(&g, f->cat, 1, mark, e1), UDR_ECONFLICT);
	assert_non_null(strstr(udr_error_last()->message, "t@2"));
	assert_int_equal(head(f), 11);
	/* the same run through e1 with its mark after the restore is fine; so
	 * is one whose through does not cover the restored version */
	ok(udr__catalog_gc_record(&g, f->cat, 1, 9, 6), "gc record through 6");
	assert_int_equal(g, 12);
	ok(udr__catalog_gc_record(&g, f->cat, 2, 11, e1), "gc record marked after the restore");
	assert_int_equal(g, 13);
	assert_int_equal(expired(f, "t", 2), 0);
	assert_int_equal(expired(f, "t", 1), 1);
	fsck_clean(f);
}

/* Random restores against a model of which versions are expired. */
static void test_expire__model(void **state)
{
	fx *f = *state;
	enum { N = 40 };
	int model[N + 1] = {0};
	unsigned seed = 12345;
	for (int i = 0; i < N; i++)
		put(f, "t", i % 3 == 0 ? "x" : i % 3 == 1 ? "y" : "z");
	assert_int_not_equal(expire_last(f, 3), 0); /* t@1..37 */
	for (int v = 1; v <= N - 3; v++)
		model[v] = 1;
	for (int round = 0; round < 30; round++) {
		uint64_t a, b, s = 0;
		int any = 0, rc;
		seed = seed * 1103515245u + 12345u;
		a = 1 + (seed >> 8) % N;
		seed = seed * 1103515245u + 12345u;
		b = a + (seed >> 8) % 5;
		if (b > N)
			b = N;
		for (uint64_t v = a; v <= b; v++)
			any |= model[v];
		rc = udr_retention_restore(&s, f->cat, "t", a, b);
		assert_int_equal(rc, any ? 0 : UDR_ENOTFOUND);
		for (uint64_t v = a; v <= b; v++)
			model[v] = 0;
		if (round % 10 == 9)
			expire_last(f, 3); /* expires the restored ones again */
		if (round % 10 == 9)
			for (int v = 1; v <= N - 3; v++)
				model[v] = 1;
		for (int v = 1; v <= N; v++)
			assert_int_equal(expired(f, "t", (uint64_t)v), model[v]);
	}
	fsck_clean(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_expire__api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire__gc_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire__gc_record_after_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire__model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
