/*
 * retention.c - retention rules (docs/GC.md 1.1, 1.2): duration text, and
 * which versions of one chain a rule keeps.  Pure code: no I/O, no clock;
 * the caller passes the chain's times and `now`.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <udr/gc.h>

#include "util/util.h"

#define MS_S 1000LL
#define MS_MIN (60 * MS_S)
#define MS_H (60 * MS_MIN)
#define MS_D (24 * MS_H)
#define MS_W (7 * MS_D)
#define MS_Y (365 * MS_D)

static const struct {
	const char *name;
	int64_t ms;
} units[] = {
	{ "y", MS_Y }, { "w", MS_W }, { "d", MS_D }, { "h", MS_H }, { "min", MS_MIN }, { "s", MS_S },
};
#define NUNITS (sizeof units / sizeof units[0])

int udr_retention_parse_duration(int64_t *out_ms, const char *text)
{
	char q[96];
	const char *p = text;
	int64_t total = 0;
	size_t next_unit = 0; /* units must come largest first, each once */

	if (text == NULL)
		return udr__error_set(UDR_EINVAL, "duration: no text");
	udr__quote(q, sizeof q, text);
	if (*p == '\0')
		return udr__error_set(UDR_EINVAL, "duration %s: empty (e.g. 90d, 1y2w, 12h30min)", q);
	while (*p != '\0') {
		uint64_t n = 0;
		size_t u, len;

		if (*p < '0' || *p > '9')
			return udr__error_set(UDR_EINVAL,
			                      "duration %s: expected a number at \"%s\" (e.g. 90d, 1y2w, 12h30min)",
			                      q, p);
		while (*p >= '0' && *p <= '9') {
			if (n > (UINT64_MAX - 9) / 10)
				return udr__error_set(UDR_EINVAL, "duration %s: too large", q);
			n = n * 10 + (uint64_t)(*p - '0');
			p++;
		}
		for (u = 0; u < NUNITS; u++) {
			len = strlen(units[u].name);
			/* "min" before "m": both start the same, and "m" alone is refused below. */
			if (strncmp(p, units[u].name, len) == 0 &&
			    !(units[u].name[0] == 'm' && p[len] >= 'a' && p[len] <= 'z'))
				break;
		}
		if (u == NUNITS) {
			if (*p == 'm' && (p[1] == '\0' || (p[1] >= '0' && p[1] <= '9')))
				return udr__error_set(UDR_EINVAL,
				                      "duration %s: unit \"m\" is ambiguous; write min for "
				                      "minutes (there is no month unit: use d or w)",
				                      q);
			if (*p == '\0')
				return udr__error_set(UDR_EINVAL,
				                      "duration %s: a number needs a unit (s, min, h, d, w, y)", q);
			return udr__error_set(UDR_EINVAL,
			                      "duration %s: unknown unit at \"%s\" (units: s, min, h, d, w, y)",
			                      q, p);
		}
		if (u < next_unit)
			return udr__error_set(UDR_EINVAL,
			                      "duration %s: unit %s repeated or out of order (largest first: "
			                      "y w d h min s)",
			                      q, units[u].name);
		next_unit = u + 1;
		if (n > (uint64_t)INT64_MAX / (uint64_t)units[u].ms ||
		    (int64_t)n * units[u].ms > INT64_MAX - total)
			return udr__error_set(UDR_EINVAL, "duration %s: too large", q);
		total += (int64_t)n * units[u].ms;
		p += strlen(units[u].name);
	}
	*out_ms = total;
	return 0;
}

void udr_retention_format_duration(char *buf, size_t size, int64_t ms)
{
	size_t o = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (ms < MS_S) {
		snprintf(buf, size, "0s");
		return;
	}
	for (size_t u = 0; u < NUNITS && ms >= MS_S; u++) {
		int64_t n = ms / units[u].ms;
		int w;

		if (n == 0)
			continue;
		ms -= n * units[u].ms;
		w = snprintf(buf + o, size - o, "%" PRId64 "%s", n, units[u].name);
		if (w < 0 || (size_t)w >= size - o)
			return; /* truncated, still NUL-terminated */
		o += (size_t)w;
	}
}

int udr_retention_rule_check(const udr_retention_rule *r)
{
	if (r == NULL)
		return udr__error_set(UDR_EINVAL, "retention rule: none given");
	if (r->version != UDR_RETENTION_RULE_VERSION)
		return udr__error_set(UDR_EINVAL, "retention rule: unknown struct version %u (expected %u)",
		                      r->version, UDR_RETENTION_RULE_VERSION);
	/* Counts are unsigned with 0 meaning "not set", so the only bad value of
	 * keep_within_ms is none: every int64 is either "none" (< 0) or a window. */
	return 0;
}

void udr_retention_rule_format(char *buf, size_t size, const udr_retention_rule *r)
{
	size_t o = 0;
	int w;
	char d[48];
	static const char *const names[] = { "keep_hourly", "keep_daily", "keep_weekly",
		                             "keep_monthly", "keep_yearly" };
	uint32_t counts[5];

	if (size == 0)
		return;
	buf[0] = '\0';
	counts[0] = r->keep_hourly;
	counts[1] = r->keep_daily;
	counts[2] = r->keep_weekly;
	counts[3] = r->keep_monthly;
	counts[4] = r->keep_yearly;
#define APPEND(...)                                                                 \
	do {                                                                        \
		w = snprintf(buf + o, size - o, __VA_ARGS__);                       \
		if (w < 0 || (size_t)w >= size - o)                                 \
			return;                                                     \
		o += (size_t)w;                                                     \
	} while (0)
	if (r->keep_last > 0)
		APPEND("%skeep_last=%" PRIu64, o ? "," : "", r->keep_last);
	if (r->keep_within_ms >= 0) {
		udr_retention_format_duration(d, sizeof d, r->keep_within_ms);
		APPEND("%skeep_within=%s", o ? "," : "", d);
	}
	for (size_t i = 0; i < 5; i++)
		if (counts[i] > 0)
			APPEND("%s%s=%" PRIu32, o ? "," : "", names[i], counts[i]);
	if (o == 0)
		APPEND("keep all");
#undef APPEND
}

/* Floor division: periods of times before 1970 must not round toward zero. */
static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Days since 1970-01-01 to the proleptic Gregorian year and month (1-12)
 * (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int64_t *year, unsigned *month)
{
	z += 719468;
	const int64_t era = floordiv(z, 146097);
	const int64_t doe = z - era * 146097;
	const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const int64_t mp = (5 * doy + 2) / 153;
	const unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);

	*year = yoe + era * 400 + (m <= 2);
	*month = m;
}

enum { B_HOUR, B_DAY, B_WEEK, B_MONTH, B_YEAR, NBUCKETS };

/* The UTC period of time t for bucket kind b, as a number that differs
 * exactly when the period does. */
static int64_t period_of(int b, int64_t t)
{
	int64_t day = floordiv(t, MS_D), year;
	unsigned month;

	switch (b) {
	case B_HOUR:
		return floordiv(t, MS_H);
	case B_DAY:
		return day;
	case B_WEEK:
		/* 1970-01-01 was a Thursday, so Monday 1969-12-29 is day -3: ISO weeks
		 * (Monday to Sunday) are the runs of 7 days counted from there. */
		return floordiv(day + 3, 7);
	case B_MONTH:
		civil_from_days(day, &year, &month);
		return year * 12 + (int64_t)month - 1;
	default:
		civil_from_days(day, &year, &month);
		return year;
	}
}

int udr_retention_keep(unsigned int *out, const int64_t *t, size_t n, const udr_retention_rule *r,
                       int64_t now_ms)
{
	static const unsigned bit[NBUCKETS] = { UDR_KEEP_HOURLY, UDR_KEEP_DAILY, UDR_KEEP_WEEKLY,
		                                UDR_KEEP_MONTHLY, UDR_KEEP_YEARLY };
	uint32_t left[NBUCKETS];
	int64_t last[NBUCKETS];
	bool seen[NBUCKETS] = { false };
	int rc = udr_retention_rule_check(r);

	if (rc < 0)
		return rc;
	if (n == 0)
		return 0;
	if (out == NULL || t == NULL)
		return udr__error_set(UDR_EINVAL, "retention: no chain given");
	for (size_t i = 1; i < n; i++)
		if (t[i] > t[i - 1])
			return udr__error_set(UDR_EINVAL,
			                      "retention: chain times increase from position %zu to %zu "
			                      "(%" PRId64 " < %" PRId64 ")",
			                      i - 1, i, t[i - 1], t[i]);
	if (now_ms < t[0])
		return udr__error_set(UDR_EINVAL,
		                      "retention: now (%" PRId64 ") is before the newest version (%" PRId64 ")",
		                      now_ms, t[0]);
	/* A rule with no key keeps everything (GC.md 1.1: "{}" keeps all, as a
	 * missing policy does): nothing expires unless someone says so. */
	if (r->keep_last == 0 && r->keep_within_ms < 0 && r->keep_hourly == 0 && r->keep_daily == 0 &&
	    r->keep_weekly == 0 && r->keep_monthly == 0 && r->keep_yearly == 0) {
		for (size_t i = 0; i < n; i++)
			out[i] = UDR_KEEP_ALL;
		return 0;
	}
	left[B_HOUR] = r->keep_hourly;
	left[B_DAY] = r->keep_daily;
	left[B_WEEK] = r->keep_weekly;
	left[B_MONTH] = r->keep_monthly;
	left[B_YEAR] = r->keep_yearly;

	for (size_t i = 0; i < n; i++) {
		unsigned k = 0;

		if (r->keep_last > 0 && (uint64_t)i < r->keep_last)
			k |= UDR_KEEP_LAST;
		/* Current interval [t(i), t(i-1)), open for c0: it meets [now - D, now]
		 * when t(i-1) >= now - D (inclusive, GC.md 1.2) and t(i) <= now (always:
		 * now is at or after c0's time). */
		if (r->keep_within_ms >= 0) {
			if (i == 0)
				k |= UDR_KEEP_WITHIN;
			else if (/* now - D below INT64_MIN: the window reaches every time */
			         now_ms < INT64_MIN + r->keep_within_ms ||
			         now_ms - r->keep_within_ms <= t[i - 1])
				k |= UDR_KEEP_WITHIN;
		}
		/* Buckets as restic forget: walking newest first, the first version
		 * seen in a period is that period's last; each new period with a
		 * version uses up one of the N (empty periods are never seen). */
		for (int b = 0; b < NBUCKETS; b++) {
			int64_t p;

			if (left[b] == 0)
				continue;
			p = period_of(b, t[i]);
			if (seen[b] && p == last[b])
				continue;
			seen[b] = true;
			last[b] = p;
			left[b]--;
			k |= bit[b];
		}
		out[i] = k;
	}
	return 0;
}
