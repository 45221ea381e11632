/*
 * test_retention.c - retention rules (docs/GC.md 1.1, 1.2): duration text,
 * keep_last, keep_within's interval semantics at the millisecond, restic's
 * buckets in UTC (ISO weeks, new years, empty periods), restic's documented
 * example.  Table driven; pure code, no store.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <udr/gc.h>

/* "YYYY-MM-DD HH:MM:SS.mmm" (or a prefix down to the day) in UTC, in ms. */
static int64_t at(const char *s)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, se = 0, ms = 0;
	int n = sscanf(s, "%d-%d-%d %d:%d:%d.%d", &y, &mo, &d, &h, &mi, &se, &ms);
	assert_true(n >= 3);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

#define D_MS (86400000LL)

/* ---- durations ----------------------------------------------------------- */

static void retention_duration_valid(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t ms;
		const char *canonical; /* NULL: text itself */
	} cases[] = {
		{ "0s", 0, NULL },
		{ "6s", 6000, NULL },
		{ "1min", 60000, NULL },
		{ "4h", 4 * 3600000LL, NULL },
		{ "90d", 90 * D_MS, "12w6d" },
		{ "2w", 14 * D_MS, NULL },
		{ "1y", 365 * D_MS, NULL },
		{ "12h30min", 12 * 3600000LL + 30 * 60000LL, NULL },
		{ "1y2w3d4h5min6s",
		  365 * D_MS + 14 * D_MS + 3 * D_MS + 4 * 3600000LL + 5 * 60000LL + 6000, NULL },
		{ "0d", 0, "0s" },
		{ "60s", 60000, "1min" },
		{ "106751991167d7h12min55s", 106751991167LL * D_MS + 25975000LL, "292471208y35w2d7h12min55s" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ms = -1;
		char buf[64];
		if (udr_retention_parse_duration(&ms, cases[i].text) != 0) {
			print_error("%s: %s\n", cases[i].text, udr_error_last()->message);
			fail();
		}
		if (ms != cases[i].ms) {
			print_error("%s: %lld ms, expected %lld\n", cases[i].text, (long long)ms,
			            (long long)cases[i].ms);
			fail();
		}
		udr_retention_format_duration(buf, sizeof buf, ms);
		assert_string_equal(buf, cases[i].canonical ? cases[i].canonical : cases[i].text);
		/* The canonical text reads back to the same value. */
		assert_int_equal(udr_retention_parse_duration(&ms, buf), 0);
		assert_true(ms == cases[i].ms);
	}
}

static void retention_duration_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *why; /* a part of the message */
	} cases[] = {
		{ "", "empty" },
		{ "5", "needs a unit" },
		{ "m", "expected a number" },
		{ "5m", "ambiguous" },
		{ "1m2d", "ambiguous" },
		{ "1mo", "unknown unit" },
		{ "1month", "unknown unit" },
		{ "1ms", "unknown unit" },
		{ "1d1d", "out of order" },
		{ "1h2d", "out of order" },
		{ "-1d", "expected a number" },
		{ "+1d", "expected a number" },
		{ "1 d", "unknown unit" },
		{ " 1d", "expected a number" },
		{ "1d ", "expected a number" },
		{ "d", "expected a number" },
		{ "1.5h", "unknown unit" },
		{ "1D", "unknown unit" },
		{ "106751991168d", "too large" },
		{ "300000000y", "too large" },
		{ "99999999999999999999999s", "too large" },
		{ "106751991167d7h12min56s", "too large" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ms = 12345;
		int rc = udr_retention_parse_duration(&ms, cases[i].text);
		if (rc != UDR_EINVAL || strstr(udr_error_last()->message, cases[i].why) == NULL) {
			print_error("\"%s\": rc %d, message \"%s\", expected EINVAL with \"%s\"\n",
			            cases[i].text, rc, udr_error_last()->message, cases[i].why);
			fail();
		}
		assert_true(ms == 12345); /* untouched */
	}
	assert_int_equal(udr_retention_parse_duration(NULL, NULL), UDR_EINVAL);
}

/* ---- chains ---------------------------------------------------------------- */

/* Evaluate rule over times (newest first) and compare the kept positions
 * with the string expect, one char a version: 'k' kept, '.' expired. */
static void check(const char *name, const int64_t *t, size_t n, const udr_retention_rule *r,
                  int64_t now, const char *expect)
{
	unsigned *out = calloc(n ? n : 1, sizeof *out);
	char *got = calloc(n + 1, 1);
	assert_non_null(out);
	assert_non_null(got);
	assert_int_equal(strlen(expect), n);
	if (udr_retention_keep(out, t, n, r, now) != 0) {
		print_error("%s: %s\n", name, udr_error_last()->message);
		fail();
	}
	for (size_t i = 0; i < n; i++)
		got[i] = out[i] ? 'k' : '.';
	if (strcmp(got, expect) != 0) {
		print_error("%s: kept %s, expected %s\n", name, got, expect);
		fail();
	}
	free(out);
	free(got);
}

static void retention_keep_last(void **state)
{
	(void)state;
	const int64_t now = at("2026-11-30 12:00:00");
	const int64_t t[] = { now - 1, now - 2, now - 3, now - 4, now - 5 };
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	unsigned out[5];

	/* No key: everything is kept (a rule of {} keeps all, GC.md 1.1). */
	check("no key keeps everything", t, 5, &r, now, "kkkkk");
	assert_int_equal(udr_retention_keep(out, t, 5, &r, now), 0);
	assert_int_equal(out[4], UDR_KEEP_ALL);
	r.keep_last = 1;
	check("K=1", t, 5, &r, now, "k....");
	r.keep_last = 3;
	check("K=3", t, 5, &r, now, "kkk..");
	r.keep_last = 5;
	check("K=n", t, 5, &r, now, "kkkkk");
	r.keep_last = 1000;
	check("K beyond history", t, 5, &r, now, "kkkkk");
	r.keep_last = UINT64_MAX;
	check("K huge", t, 5, &r, now, "kkkkk");
	assert_int_equal(udr_retention_keep(out, t, 5, &r, now), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(out[i], UDR_KEEP_LAST);
	/* An empty chain is fine. */
	assert_int_equal(udr_retention_keep(NULL, NULL, 0, &r, now), 0);
}

static void retention_keep_within_boundary(void **state)
{
	(void)state;
	const int64_t now = at("2026-11-30 12:00:00");
	const int64_t D = 5000;
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	r.keep_within_ms = D;

	/* c1's interval ends exactly at now - D: current at the window's first
	 * instant, kept.  c2's ended before the window: expired. */
	const int64_t eq[] = { now - 1000, now - D, now - 9000, now - 9500 };
	check("t(i-1) == now - D keeps c(i)", eq, 4, &r, now, "kkk.");
	/* One millisecond earlier: c2 (whose successor came at now - D - 1) goes. */
	const int64_t past[] = { now - 1000, now - D - 1, now - 9000 };
	check("t(i-1) == now - D - 1 expires c(i)", past, 3, &r, now, "kk.");
	/* The version current all of the window was committed long ago: kept;
	 * "committed within D" would have dropped it. */
	const int64_t old[] = { now - 100, now - 400LL * D_MS, now - 500LL * D_MS };
	check("current through the window", old, 3, &r, now, "kk.");
	/* c0 is kept even when committed long before the window. */
	const int64_t one[] = { now - 1000LL * D_MS };
	check("c0 old", one, 1, &r, now, "k");
	/* D = 0: only what is current at now. */
	r.keep_within_ms = 0;
	const int64_t z[] = { now, now - 1, now - 2 };
	check("D=0, c0 at now", z, 3, &r, now, "kk.");
	const int64_t z2[] = { now - 1, now - 2 };
	check("D=0", z2, 2, &r, now, "k.");
	/* A window reaching before 1970 and INT64_MIN does not overflow. */
	r.keep_within_ms = INT64_MAX;
	const int64_t all[] = { now, 5, -5 };
	check("D=max", all, 3, &r, now, "kkk");
	/* Several versions at the same millisecond. */
	r.keep_within_ms = D;
	const int64_t same[] = { now - D, now - D, now - D, now - D - 1 };
	check("same ms", same, 4, &r, now, "kkkk");
}

static void retention_buckets(void **state)
{
	(void)state;
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	unsigned out[8];

	/* Hourly: two in one hour (the newer is that hour's), gap hours empty. */
	const int64_t h[] = { at("2026-11-30 12:59:59.999"), at("2026-11-30 12:00:00"),
		              at("2026-11-30 11:59:59.999"), at("2026-11-30 05:00:00"),
		              at("2026-11-29 05:30:00") };
	r.keep_hourly = 2;
	check("hourly 2", h, 5, &r, at("2026-11-30 13:00:00"), "k.k..");
	r.keep_hourly = 3;
	check("hourly 3 skips empty hours", h, 5, &r, at("2026-11-30 13:00:00"), "k.kk.");
	r.keep_hourly = 100;
	check("hourly beyond history", h, 5, &r, at("2026-11-30 13:00:00"), "k.kkk");
	assert_int_equal(udr_retention_keep(out, h, 5, &r, at("2026-11-30 13:00:00")), 0);
	assert_int_equal(out[0], UDR_KEEP_HOURLY);
	r.keep_hourly = 0;

	/* Daily across a new year, with empty days between. */
	const int64_t d[] = { at("2027-01-01 00:00:00"), at("2026-12-31 23:59:59.999"),
		              at("2026-12-31 00:00:00"), at("2026-12-20 10:00:00"),
		              at("2026-12-20 09:00:00") };
	r.keep_daily = 1;
	check("daily 1", d, 5, &r, at("2027-01-02"), "k....");
	r.keep_daily = 2;
	check("daily 2 across new year", d, 5, &r, at("2027-01-02"), "kk...");
	r.keep_daily = 3;
	check("daily 3 skips empty days", d, 5, &r, at("2027-01-02"), "kk.k.");
	r.keep_daily = 0;

	/* Yearly and monthly at the new year. */
	const int64_t y[] = { at("2027-01-01 00:00:00"), at("2026-12-31 23:59:59.999"),
		              at("2026-06-01"), at("2024-02-29 12:00:00"), at("2024-01-01") };
	r.keep_yearly = 2;
	check("yearly 2", y, 5, &r, at("2027-01-02"), "kk...");
	r.keep_yearly = 3;
	check("yearly 3 skips 2025", y, 5, &r, at("2027-01-02"), "kk.k.");
	r.keep_yearly = 0;
	r.keep_monthly = 3;
	check("monthly 3", y, 5, &r, at("2027-01-02"), "kkk..");
	r.keep_monthly = 4;
	check("monthly 4 (leap day is February's)", y, 5, &r, at("2027-01-02"), "kkkk.");
	r.keep_monthly = 0;

	/* ISO weeks start on Monday.  2026-12-28 is a Monday; 2027-01-03 the
	 * Sunday of the same ISO week (2026-W53); 2027-01-04 starts 2027-W01. */
	const int64_t w[] = { at("2027-01-04 00:00:00"), at("2027-01-03 23:59:59.999"),
		              at("2026-12-31 12:00:00"), at("2026-12-28 00:00:00"),
		              at("2026-12-27 23:59:59.999"), at("2026-12-21 00:00:00") };
	r.keep_weekly = 1;
	check("weekly 1", w, 6, &r, at("2027-01-05"), "k.....");
	r.keep_weekly = 2;
	check("weekly 2: the Sunday before is the week's last", w, 6, &r, at("2027-01-05"), "kk....");
	r.keep_weekly = 3;
	check("weekly 3: Monday 12-28 shares 2026-W53", w, 6, &r, at("2027-01-05"), "kk..k.");
	r.keep_weekly = 0;

	/* Weeks before 1970 (floor division): 1969-12-29 is a Monday. */
	const int64_t old[] = { at("1970-01-04 23:00:00"), at("1969-12-29 00:00:00"),
		                at("1969-12-28 23:59:59.999") };
	r.keep_weekly = 2;
	check("weekly before 1970", old, 3, &r, at("1970-01-05"), "k.k");
	r.keep_weekly = 0;

	/* Keys combine: kept if any keeps; masks name each reason. */
	const int64_t c[] = { at("2026-11-30 10:00:00"), at("2026-11-30 09:00:00"),
		              at("2026-11-29 09:00:00"), at("2026-10-01") };
	r.keep_last = 1;
	r.keep_daily = 2;
	r.keep_monthly = 2;
	assert_int_equal(udr_retention_keep(out, c, 4, &r, at("2026-11-30 11:00:00")), 0);
	assert_int_equal(out[0], UDR_KEEP_LAST | UDR_KEEP_DAILY | UDR_KEEP_MONTHLY);
	assert_int_equal(out[1], 0);
	assert_int_equal(out[2], UDR_KEEP_DAILY);
	assert_int_equal(out[3], UDR_KEEP_MONTHLY);
}

/* restic's documentation: daily backups over a long time, with
 * --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75 keep the
 * 7 most recent days, the last days of the weeks and months not already
 * kept, and the last day of each of 75 years. */
static void retention_restic_example(void **state)
{
	(void)state;
	const int64_t first = at("1920-01-01 12:00:00"), last = at("2026-11-30 12:00:00");
	const size_t n = (size_t)((last - first) / D_MS) + 1;
	int64_t *t = malloc(n * sizeof *t);
	unsigned *out = malloc(n * sizeof *out);
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	char *expect = calloc(n + 1, 1);
	static const char *const listed[] = {
		/* daily 7 */
		"2026-11-30", "2026-11-29", "2026-11-28", "2026-11-27", "2026-11-26", "2026-11-25",
		"2026-11-24",
		/* weekly 5: W49 (11-30) and W48 (11-29) are daily's; then the Sundays */
		"2026-11-22", "2026-11-15", "2026-11-08",
		/* monthly 12: November is daily's */
		"2026-10-31", "2026-09-30", "2026-08-31", "2026-07-31", "2026-06-30", "2026-05-31",
		"2026-04-30", "2026-03-31", "2026-02-28", "2026-01-31", "2025-12-31",
	};

	assert_non_null(t);
	assert_non_null(out);
	assert_non_null(expect);
	for (size_t i = 0; i < n; i++) {
		t[i] = last - (int64_t)i * D_MS;
		expect[i] = '.';
	}
	for (size_t j = 0; j < sizeof listed / sizeof listed[0]; j++) {
		size_t i = (size_t)((last - at(listed[j]) - 12 * 3600000LL) / D_MS);
		expect[i] = 'k';
	}
	/* yearly 75: 2026 (daily's), 2025 (monthly's), then 12-31 of 2024 ... 1952 */
	for (int y = 2024; y >= 1952; y--) {
		char s[16];
		snprintf(s, sizeof s, "%d-12-31", y);
		expect[(size_t)((last - at(s) - 12 * 3600000LL) / D_MS)] = 'k';
	}
	r.keep_daily = 7;
	r.keep_weekly = 5;
	r.keep_monthly = 12;
	r.keep_yearly = 75;
	assert_int_equal(udr_retention_keep(out, t, n, &r, last + 1), 0);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if ((out[i] != 0) != (expect[i] == 'k')) {
			print_error("day %zu before the last: kept %u, expected %c\n", i, out[i], expect[i]);
			fail();
		}
		kept += out[i] != 0;
	}
	assert_int_equal(kept, 7 + 3 + 11 + 73);
	free(t);
	free(out);
	free(expect);
}

static void retention_bad_input(void **state)
{
	(void)state;
	const int64_t now = at("2026-11-30");
	unsigned out[3];
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	r.keep_last = 1;

	const int64_t up[] = { now - 10, now - 5, now - 20 };
	assert_int_equal(udr_retention_keep(out, up, 3, &r, now), UDR_EINVAL);
	assert_non_null(strstr(udr_error_last()->message, "increase"));
	const int64_t ok[] = { now - 1, now - 2, now - 3 };
	assert_int_equal(udr_retention_keep(out, ok, 3, &r, now - 2), UDR_EINVAL);
	assert_non_null(strstr(udr_error_last()->message, "before the newest"));
	r.version = 99;
	assert_int_equal(udr_retention_keep(out, ok, 3, &r, now), UDR_EINVAL);
	assert_int_equal(udr_retention_rule_check(NULL), UDR_EINVAL);
	assert_int_equal(udr_retention_keep(NULL, ok, 3, NULL, now), UDR_EINVAL);
}

/* Bad flags and no catalog: refused, no report. */
static void retention_apply_flags(void **state)
{
	(void)state;
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	char *rep = (char *)"untouched";
	r.keep_last = 1;
	assert_int_equal(udr_retention_apply(&rep, NULL, &r, NULL, 0), UDR_EINVAL);
	assert_null(rep);
	assert_int_equal(udr_retention_apply(&rep, NULL, &r, NULL, UDR_RETENTION_DRY_RUN | 0x80u), UDR_EINVAL);
	assert_non_null(strstr(udr_error_last()->message, "unknown flags"));
	assert_int_equal(udr_retention_apply(&rep, NULL, &r, NULL, UDR_RETENTION_DRY_RUN), UDR_EINVAL);
	assert_null(rep);
}

static void retention_rule_format(void **state)
{
	(void)state;
	char buf[256];
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;

	udr_retention_rule_format(buf, sizeof buf, &r);
	assert_string_equal(buf, "keep all");
	r.keep_last = 500;
	udr_retention_rule_format(buf, sizeof buf, &r);
	assert_string_equal(buf, "keep_last=500");
	r.keep_within_ms = 90 * D_MS;
	r.keep_daily = 14;
	r.keep_yearly = 2;
	udr_retention_rule_format(buf, sizeof buf, &r);
	assert_string_equal(buf, "keep_last=500,keep_within=12w6d,keep_daily=14,keep_yearly=2");
	/* A short buffer stays terminated. */
	udr_retention_rule_format(buf, 10, &r);
	assert_true(strlen(buf) < 10);
}

/* ---- policies (GC.md 1.1) ---------------------------------------------------- */

static void retention_policy_resolution(void **state)
{
	(void)state;
	udr_retention_policy *p = NULL;
	udr_retention_rule r;
	const char *src = NULL;
	const char *text =
		"{\"default\":{\"keep_last\":30,\"keep_within\":\"90d\",\"keep_daily\":14},"
		"\"tables\":{\"raw_events\":{\"keep_last\":3,\"keep_within\":\"7d\"}},"
		"\"branches\":{\"main\":{\"keep_last\":100},\"dev/*\":{\"keep_within\":\"14d\"},"
		"\"dev/team/*\":{\"keep_last\":7},\"dev/x\":{\"keep_yearly\":2}},"
		"\"pairs\":{\"main\":{\"prices\":{\"keep_last\":1000}},\"dev/*\":{\"prices\":{}}},"
		"\"orphans\":null,\"undo\":\"1h\",\"grace\":\"2d\"}";

	assert_int_equal(udr_retention_policy_parse(&p, text), 0);
	/* pairs[B][T] first */
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "prices", "main"), 0);
	assert_string_equal(src, "pair");
	assert_true(r.keep_last == 1000 && r.keep_within_ms < 0);
	/* a pair's {} keeps everything (no key) and wins, whole, over the rest */
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "prices", "dev/a"), 0);
	assert_string_equal(src, "pair");
	assert_true(r.keep_last == 0 && r.keep_within_ms < 0 && r.keep_daily == 0);
	/* then tables[T], whatever the branch */
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "raw_events", "dev/team/a"), 0);
	assert_string_equal(src, "table");
	assert_true(r.keep_last == 3 && r.keep_within_ms == 7 * D_MS && r.keep_daily == 0);
	/* then branches[B]: exact name, else the longest prefix */
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", NULL), 0);
	assert_string_equal(src, "branch");
	assert_true(r.keep_last == 100);
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "dev/a"), 0);
	assert_true(r.keep_within_ms == 14 * D_MS && r.keep_last == 0);
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "dev/team/a"), 0);
	assert_true(r.keep_last == 7 && r.keep_within_ms < 0);
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "dev/x"), 0);
	assert_true(r.keep_yearly == 2 && r.keep_within_ms < 0);
	/* "dev/*" is not "dev" itself; nor "devx/a" */
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "dev"), 0);
	assert_string_equal(src, "default");
	assert_true(r.keep_last == 30 && r.keep_within_ms == 90 * D_MS && r.keep_daily == 14);
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "devx/a"), 0);
	assert_string_equal(src, "default");
	assert_int_equal(udr_retention_policy_orphans(&r, p), 0);
	assert_true(udr_retention_policy_undo_ms(p) == 3600000);
	assert_true(udr_retention_policy_grace_ms(p) == 2 * D_MS);
	udr_retention_policy_free(p);

	/* An empty policy keeps everything; defaults for undo and grace. */
	assert_int_equal(udr_retention_policy_parse(&p, "{}"), 0);
	assert_int_equal(udr_retention_policy_rule(&r, &src, p, "t", "main"), 0);
	assert_string_equal(src, "none");
	unsigned out[2];
	const int64_t t[] = { 2000, 1000 };
	assert_int_equal(udr_retention_keep(out, t, 2, &r, 1LL << 40), 0);
	assert_true(out[0] && out[1]);
	assert_true(udr_retention_policy_undo_ms(p) == 0 && udr_retention_policy_grace_ms(p) == D_MS);
	udr_retention_policy_free(p);
	assert_int_equal(udr_retention_policy_parse(&p, "{\"orphans\":{\"keep_within\":\"1d\"}}"), 0);
	assert_int_equal(udr_retention_policy_orphans(&r, p), 1);
	assert_true(r.keep_within_ms == D_MS);
	udr_retention_policy_free(p);
	udr_retention_policy_free(NULL);
}

static void retention_policy_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ "", "not JSON" },
		{ "[]", "must be a JSON object" },
		{ "{\"defaults\":{}}", "unknown key" },
		{ "{\"default\":{\"keep_lst\":1}}", "unknown key" },
		{ "{\"default\":{\"keep_last\":0}}", "keep_last must be" },
		{ "{\"default\":{\"keep_last\":-1}}", "keep_last must be" },
		{ "{\"default\":{\"keep_last\":\"3\"}}", "keep_last must be" },
		{ "{\"default\":{\"keep_last\":1.5}}", "keep_last must be" },
		{ "{\"default\":{\"keep_daily\":0}}", "keep_daily must be" },
		{ "{\"default\":{\"keep_daily\":4294967296}}", "keep_daily must be" },
		{ "{\"default\":{\"keep_within\":\"5m\"}}", "ambiguous" },
		{ "{\"default\":{\"keep_within\":90}}", "duration text" },
		{ "{\"default\":[]}", "must be an object" },
		{ "{\"default\":{\"keep_last\":1,\"keep_last\":2}}", "not JSON" },
		{ "{\"tables\":{\"a/b\":{}}}", "not a table name" },
		{ "{\"tables\":[]}", "must be an object" },
		{ "{\"branches\":{\"-x\":{}}}", "branch key" },
		{ "{\"branches\":{\"/*\":{}}}", "branch key" },
		{ "{\"branches\":{\"a/../b/*\":{}}}", "branch key" },
		{ "{\"pairs\":{\"main\":{\"a/b\":{}}}}", "not a table name" },
		{ "{\"pairs\":{\"main\":[]}}", "must be an object" },
		{ "{\"pairs\":{\"main\":{\"t\":{\"keep_last\":0}}}}", "keep_last must be" },
		{ "{\"orphans\":3}", "must be an object" },
		{ "{\"undo\":\"1mo\"}", "unknown unit" },
		{ "{\"grace\":24}", "duration text" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		udr_retention_policy *p = (udr_retention_policy *)&cases; /* must be reset */
		int rc = udr_retention_policy_parse(&p, cases[i].text);
		if (rc != UDR_EINVAL || p != NULL || strstr(udr_error_last()->message, cases[i].why) == NULL) {
			print_error("%s: rc %d, message \"%s\", expected EINVAL with \"%s\"\n", cases[i].text, rc,
			            udr_error_last()->message, cases[i].why);
			fail();
		}
	}
	assert_int_equal(udr_retention_policy_parse(NULL, "{}"), UDR_EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retention_duration_valid),
		cmocka_unit_test(retention_duration_invalid),
		cmocka_unit_test(retention_keep_last),
		cmocka_unit_test(retention_keep_within_boundary),
		cmocka_unit_test(retention_buckets),
		cmocka_unit_test(retention_restic_example),
		cmocka_unit_test(retention_bad_input),
		cmocka_unit_test(retention_apply_flags),
		cmocka_unit_test(retention_policy_resolution),
		cmocka_unit_test(retention_policy_invalid),
		cmocka_unit_test(retention_rule_format),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
