/*
 * test_retention_policy.c - the stored retention policy (src/catalog/
 * policyrec.c, docs/GC.md 1.1): udr_retention_set / _get / _policy_at,
 * validation with nothing written, the record and "@retention", format 5,
 * reopening, the policy applied by udr_retention_plan_ex with
 * UDR_RETENTION_POLICY (and a rule replacing only its default), fsck.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <udr/gc.h>

#include "catalog/catalog_internal.h"

#include "catfx.h"

static void reopen(fx *f)
{
	udr_catalog_close(f->cat);
	f->cat = NULL;
	ok(udr_catalog_open(&f->cat, f->cdir, f->st, 0), "reopen");
}

/* The stored policy as text. */
static char *get(fx *f)
{
	char *t = NULL;
	ok(udr_retention_get(&t, f->cat), "get");
	assert_non_null(t);
	return t;
}

static void assert_get(fx *f, const char *want)
{
	char *t = get(f);
	if (strcmp(t, want) != 0) {
		print_error("policy %s, expected %s\n", t, want);
		fail();
	}
	udr_free(t);
}

static void test_policy__set_get(void **state)
{
	fx *f = *state;
	uint64_t seq = 99, at = 0;
	char *t, *cfg;

	/* an empty log: refused, nothing to name */
	assert_int_equal(udr_retention_set(&seq, f->cat, "{\"default\":{\"keep_last\":1}}", NULL), UDR_ENOTFOUND);
	assert_int_equal(seq, 0);
	assert_get(f, "{}");
	put(f, "t", "a");
	put(f, "t", "b");
	assert_get(f, "{}");
	ok(udr_retention_policy_at(&t, &at, f->cat, 0), "policy_at");
	assert_string_equal(t, "{}");
	assert_int_equal(at, 0);
	udr_free(t);

	/* stored with keys sorted, compact; the message names it */
	ok(udr_retention_set(&seq, f->cat,
	                     "{ \"tables\": {\"t\": {\"keep_last\": 2}}, \"default\": {\"keep_within\": \"90d\", "
	                     "\"keep_last\": 30} }",
	                     NULL),
	   "set");
	assert_int_equal(seq, 3);
	assert_int_equal(head(f), 3);
	assert_get(f, "{\"default\":{\"keep_last\":30,\"keep_within\":\"90d\"},\"tables\":{\"t\":{\"keep_last\":2}}}");
	{
		udr_commit *cm = NULL;
		ok(udr_catalog_get_commit(&cm, f->cat, 3), "get_commit");
		assert_string_equal(cm->op, "retention");
		assert_string_equal(cm->branch, "");
		assert_int_equal(cm->nchanges, 0);
		assert_non_null(strstr(cm->message, "retention policy {\"default\""));
		udr_commit_free(cm);
	}
	t = th_join(f->cdir, "config.json");
	cfg = th_read_file(t, NULL);
	free(t);
	assert_non_null(strstr(cfg, "\"format\":5"));
	free(cfg);

	/* a later commit keeps it in force; policy_at(3) is what 3 stored */
	put(f, "t", "c");
	ok(udr_retention_set(&seq, f->cat, "{\"default\":{\"keep_daily\":7}}", "m"), "set 2");
	assert_int_equal(seq, 5);
	ok(udr_retention_policy_at(&t, &at, f->cat, 4), "policy_at 4");
	assert_int_equal(at, 3);
	assert_non_null(strstr(t, "\"keep_within\":\"90d\""));
	udr_free(t);
	ok(udr_retention_policy_at(&t, &at, f->cat, 2), "policy_at 2");
	assert_string_equal(t, "{}");
	assert_int_equal(at, 0);
	udr_free(t);
	assert_int_equal(udr_retention_policy_at(&t, &at, f->cat, 9), UDR_ENOTFOUND);
	assert_null(t);

	/* survives reopening */
	reopen(f);
	assert_get(f, "{\"default\":{\"keep_daily\":7}}");
	/* NULL clears: stores {} */
	ok(udr_retention_set(&seq, f->cat, NULL, NULL), "clear");
	assert_int_equal(seq, 6);
	assert_get(f, "{}");
	ok(udr_retention_policy_at(&t, &at, f->cat, 0), "policy_at");
	assert_int_equal(at, 6);
	udr_free(t);
	ok(udr_retention_set(NULL, f->cat, "{\"default\":{\"keep_last\":1}}", NULL), "set 3");
	ok(udr_retention_set(&seq, f->cat, "{}", NULL), "clear 2");
	assert_int_equal(seq, 8);
	assert_get(f, "{}");

	/* update: only over the record read (a compare-and-swap under the lock) */
	ok(udr_retention_update(&seq, f->cat, "{\"default\":{\"keep_last\":2}}", NULL, 8), "update");
	assert_int_equal(seq, 9);
	seq = 5;
	assert_int_equal(udr_retention_update(&seq, f->cat, "{\"default\":{\"keep_last\":3}}", NULL, 8), UDR_ECONFLICT);
	th_assert_error(UDR_ECONFLICT, "changed (commit 9)");
	assert_int_equal(seq, 0);
	assert_int_equal(udr_retention_update(&seq, f->cat, "{}", NULL, 0), UDR_ECONFLICT);
	assert_int_equal(head(f), 9);
	assert_get(f, "{\"default\":{\"keep_last\":2}}");
	/* bad input is still refused first */
	assert_int_equal(udr_retention_update(&seq, f->cat, "{\"default\":{\"keep_last\":0}}", NULL, 9), UDR_EINVAL);
	assert_int_equal(head(f), 9);
	fsck_clean(f);
}

static void test_policy__update_on_a_fresh_log(void **state)
{
	fx *f = *state;
	uint64_t seq = 0;
	put(f, "t", "a");
	assert_int_equal(udr_retention_update(&seq, f->cat, "{}", NULL, 1), UDR_ECONFLICT);
	ok(udr_retention_update(&seq, f->cat, "{\"tables\":{\"t\":{\"keep_daily\":1}}}", "first", 0), "update 0");
	assert_int_equal(seq, 2);
	fsck_clean(f);
}

static void test_policy__bad_input_writes_nothing(void **state)
{
	static const char *const bad[] = {
		"",
		"nope",
		"[]",
		"{\"default\":{\"keep_last\":0}}",
		"{\"default\":{\"keep_last\":-1}}",
		"{\"default\":{\"keep_last\":\"3\"}}",
		"{\"default\":{\"keep_within\":\"5m\"}}",
		"{\"default\":{\"keep_within\":\"1d1d\"}}",
		"{\"default\":{\"keep_within\":90}}",
		"{\"default\":{\"keep_hourly\":4294967296}}",
		"{\"default\":{\"keep_weekly\":0}}",
		"{\"default\":{\"keep\":1}}",
		"{\"default\":[]}",
		"{\"default\":{\"keep_last\":1},\"default\":{\"keep_last\":2}}",
		"{\"tables\":{\"../x\":{\"keep_last\":1}}}",
		"{\"tables\":[]}",
		"{\"branches\":{\"a..b\":{\"keep_last\":1}}}",
		"{\"pairs\":{\"main\":{\"keep_last\":1}}}",
		"{\"grace\":\"24\"}",
		"{\"grace\":86400}",
		"{\"undo\":\"1s\"}",
		"{\"undo\":7}",
		"{\"orphans\":{\"keep_last\":1}}",
		"{\"extra\":1}",
	};
	fx *f = *state;
	uint64_t seq;
	put(f, "t", "a");
	ok(udr_retention_set(NULL, f->cat, "{\"default\":{\"keep_last\":4}}", NULL), "set");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		seq = 77;
		int rc = udr_retention_set(&seq, f->cat, bad[i], NULL);
		if (rc != UDR_EINVAL) {
			print_error("%s: %d, expected UDR_EINVAL\n", bad[i], rc);
			fail();
		}
		assert_int_equal(seq, 0);
		assert_non_null(strstr(udr_error_last()->message, "retention policy"));
		assert_int_equal(head(f), 2);
	}
	/* allowed: undo 0s, orphans null, grace (what this version applies) */
	ok(udr_retention_set(&seq, f->cat, "{\"undo\":\"0s\",\"orphans\":null,\"grace\":\"2d\"}", NULL), "undo 0s");
	assert_int_equal(seq, 3);
	assert_int_equal(udr_retention_set(&seq, NULL, "{}", NULL), UDR_EINVAL);
	fsck_clean(f);
}

/* The plan's expired ranges of table, as JSON text ("null": none). */
static char *ranges(fx *f, const udr_retention_rule *rule, const char *branch)
{
	char *rep = NULL, *out;
	json_t *o, *r;
	ok(udr_retention_plan_ex(&rep, f->cat, rule, NULL, branch, UDR_RETENTION_NOW, UDR_RETENTION_POLICY), "plan");
	o = json_loads(rep, 0, NULL);
	assert_non_null(o);
	r = json_object_get(json_object_get(o, "expired"), "ranges");
	out = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	udr_free(rep);
	return out;
}

static void assert_ranges(fx *f, const udr_retention_rule *rule, const char *want)
{
	char *r = ranges(f, rule, NULL);
	if (strcmp(r, want) != 0) {
		print_error("ranges %s, expected %s\n", r, want);
		fail();
	}
	free(r);
}

static void test_policy__applied_by_the_plan(void **state)
{
	fx *f = *state;
	udr_retention_rule one = UDR_RETENTION_RULE_INIT;
	char *rep = NULL;
	for (int i = 0; i < 5; i++) {
		char text[16];
		snprintf(text, sizeof text, "t%d", i);
		put(f, "t", text);
		snprintf(text, sizeof text, "u%d", i);
		put(f, "u", text);
	}
	/* no policy, no rule: nothing; a rule alone: as before */
	assert_ranges(f, NULL, "{}");
	one.keep_last = 1;
	assert_ranges(f, &one, "{\"t\":[[1,4]],\"u\":[[1,4]]}");
	/* flags: unknown refused; no rule without the policy flag refused */
	assert_int_equal(udr_retention_plan_ex(&rep, f->cat, &one, NULL, NULL, UDR_RETENTION_NOW, 0x80), UDR_EINVAL);
	assert_int_equal(udr_retention_plan_ex(&rep, f->cat, NULL, NULL, NULL, UDR_RETENTION_NOW, 0), UDR_EINVAL);
	assert_null(rep);

	ok(udr_retention_set(NULL, f->cat, "{\"default\":{\"keep_last\":3},\"tables\":{\"u\":{\"keep_last\":2}}}", NULL),
	   "set");
	assert_ranges(f, NULL, "{\"t\":[[1,2]],\"u\":[[1,3]]}");
	/* a rule replaces only the default */
	assert_ranges(f, &one, "{\"t\":[[1,4]],\"u\":[[1,3]]}");
	/* a pair beats the table's rule, a branch rule the default */
	ok(udr_retention_set(NULL, f->cat,
	                     "{\"default\":{\"keep_last\":3},\"tables\":{\"u\":{\"keep_last\":2}},"
	                     "\"branches\":{\"main\":{\"keep_last\":4}},\"pairs\":{\"main\":{\"u\":{\"keep_last\":5}}}}",
	                     NULL),
	   "set 2");
	assert_ranges(f, NULL, "{\"t\":[[1,1]]}");
	assert_ranges(f, &one, "{\"t\":[[1,1]]}");
	/* the report names the policy record */
	ok(udr_retention_plan_ex(&rep, f->cat, &one, NULL, NULL, UDR_RETENTION_NOW, UDR_RETENTION_POLICY), "plan");
	assert_non_null(strstr(rep, "\"rule\":\"policy 12, default keep_last=1\""));
	assert_non_null(strstr(rep, "\"policy\":12"));
	udr_free(rep);
	/* applied: the expire record names it */
	ok(udr_retention_apply(&rep, f->cat, NULL, NULL, UDR_RETENTION_POLICY), "apply");
	udr_free(rep);
	ok(udr_expire_record_json(&rep, f->cat, 13), "record");
	assert_non_null(strstr(rep, "\"policy\":12"));
	assert_non_null(strstr(rep, "\"rule\":\"policy 12\""));
	udr_free(rep);
	/* cleared: nothing more expires, even orphans */
	ok(udr_retention_set(NULL, f->cat, NULL, NULL), "clear");
	assert_ranges(f, NULL, "{}");
	fsck_clean(f);
}

static void test_policy__fsck_and_damage(void **state)
{
	fx *f = *state;
	char *path, *text, *bad;
	size_t len;
	udr_retention_policy *p = NULL;
	uint64_t seq = 0;
	put(f, "t", "a");
	put(f, "t", "b");
	ok(udr_retention_set(NULL, f->cat, "{\"default\":{\"keep_last\":2}}", NULL), "set");
	fsck_clean(f);
	/* a policy that no longer passes the checks (the seal redone so only
	 * fsck's check of the policy can see it): fsck reports it, the plan
	 * fails with UDR_ECORRUPT, never "no policy" */
	path = th_join(f->cdir, "log/00000000000000000003.json");
	text = th_read_file(path, &len);
	bad = th_replace(text, "\"default\":{\"keep_last\":2}", "\"default\":{\"keep_last\":0}");
	{
		/* reseal: the check is BLAKE3 of the bytes before ,"check":" */
		char *cut = strstr(bad, ",\"check\":\"");
		udr_hash h;
		char hex[UDR_HASH_HEXSIZE + 1], *out;
		assert_non_null(cut);
		udr_hash_buf(&h, bad, (size_t)(cut - bad));
		udr_hash_tohex(hex, &h);
		*cut = '\0';
		out = th_fmt("%s,\"check\":\"%s\"}\n", bad, hex);
		th_write_file(path, out, strlen(out));
		free(out);
	}
	reopen(f);
	{
		th_problems pr = {0};
		assert_int_not_equal(udr_catalog_fsck(NULL, f->cat, th_problem_cb, &pr), 0);
		assert_true(th_problems_mention(&pr, "its retention policy is not valid"));
		th_problems_free(&pr);
	}
	{
		char *rep = NULL;
		assert_int_equal(udr_retention_plan_ex(&rep, f->cat, NULL, NULL, NULL, UDR_RETENTION_NOW,
		                                       UDR_RETENTION_POLICY),
		                 UDR_ECORRUPT);
		th_assert_error(UDR_ECORRUPT, "retention record 3");
		assert_null(rep);
	}
	assert_int_equal(udr__retention_load(&p, &seq, f->cat, 0), UDR_ECORRUPT);
	assert_null(p);
	th_write_file(path, text, len);
	reopen(f);
	fsck_clean(f);
	ok(udr__retention_load(&p, &seq, f->cat, 0), "load");
	assert_non_null(p);
	assert_int_equal(seq, 3);
	udr_retention_policy_free(p);
	free(bad);
	free(text);
	free(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_policy__set_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy__bad_input_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy__update_on_a_fresh_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy__applied_by_the_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy__fsck_and_damage, setup, teardown),
	};
	th_filter(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
