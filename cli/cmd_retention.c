/*
 * cmd_retention.c - `udr retention`: which versions a retention rule
 * expires (docs/GC.md 1.2, 1.3, 7.1).  Built: `expire --dry-run` (the plan,
 * written nowhere), `expire` (links an expire record, GC.md 1.4), `expired
 * [TABLE]`, `undo [SEQ]` and `restore TABLE@V[..W]` (unexpire records).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

enum {
	OPT_TABLE = CLI_OPT_FIRST,
	OPT_BRANCH,
	OPT_KEEP_LAST,
	OPT_KEEP_WITHIN,
	OPT_KEEP_HOURLY,
	OPT_KEEP_DAILY,
	OPT_KEEP_WEEKLY,
	OPT_KEEP_MONTHLY,
	OPT_KEEP_YEARLY,
	OPT_DRY_RUN,
	OPT_JSON,
};

static const struct option retention_longopts[] = {
	{ "table", required_argument, NULL, OPT_TABLE },
	{ "branch", required_argument, NULL, OPT_BRANCH },
	{ "keep-last", required_argument, NULL, OPT_KEEP_LAST },
	{ "keep-within", required_argument, NULL, OPT_KEEP_WITHIN },
	{ "keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY },
	{ "keep-daily", required_argument, NULL, OPT_KEEP_DAILY },
	{ "keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY },
	{ "keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY },
	{ "keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "json", no_argument, NULL, OPT_JSON },
	CLI_COMMON_LONGOPTS
};

struct retention_opts {
	const char *table, *branch;
	udr_retention_rule rule;
	int nkeys, dry_run, json;
};

/* A count of at least 1 (there is no "keep 0": leave the option out). */
static int parse_count(uint64_t *out, const char *text, uint64_t max, const char *opt)
{
	uint64_t v = 0;
	const char *p;

	for (p = text; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10) {
			cli_errorf("invalid %s \"%s\": at most %" PRIu64, opt, text, max);
			return CLI_EXIT_USAGE;
		}
		v = v * 10 + d;
	}
	if (p == text || *p) {
		cli_errorf("invalid %s \"%s\" (expected an integer >= 1)", opt, text);
		return CLI_EXIT_USAGE;
	}
	if (v == 0) {
		cli_errorf("invalid %s 0: it must be at least 1 (leave it out to keep nothing by it)", opt);
		return CLI_EXIT_USAGE;
	}
	*out = v;
	return 0;
}

int cli_keep_opt(udr_retention_rule *rule, const char *name, const char *arg)
{
	static const char *const buckets[] = {"--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly",
	                                      "--keep-yearly"};
	uint32_t *slot[] = {&rule->keep_hourly, &rule->keep_daily, &rule->keep_weekly, &rule->keep_monthly,
	                    &rule->keep_yearly};
	uint64_t v;
	int rc;
	/* a key given twice is refused: the last one winning silently turns
	 * a typo into expiring far more than meant */
	bool twice = (strcmp(name, "--keep-last") == 0 && rule->keep_last != 0) ||
	             (strcmp(name, "--keep-within") == 0 && rule->keep_within_ms >= 0);
	for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++)
		twice = twice || (strcmp(name, buckets[i]) == 0 && *slot[i] != 0);
	if (twice) {
		cli_errorf("%s given twice", name);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(name, "--keep-last") == 0) {
		if ((rc = parse_count(&v, arg, UINT64_MAX, name)) != 0)
			return rc;
		rule->keep_last = v;
		return 0;
	}
	if (strcmp(name, "--keep-within") == 0) {
		int64_t ms;
		if ((rc = udr_retention_parse_duration(&ms, arg)) != 0)
			return cli_fail(rc);
		rule->keep_within_ms = ms;
		return 0;
	}
	for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++)
		if (strcmp(name, buckets[i]) == 0) {
			if ((rc = parse_count(&v, arg, UINT32_MAX, name)) != 0)
				return rc;
			*slot[i] = (uint32_t)v;
			return 0;
		}
	return CLI_EXIT_USAGE;
}

static int retention_opt(int opt, const char *arg, void *payload)
{
	struct retention_opts *o = payload;
	static const char *const names[] = {"--keep-last", "--keep-within", "--keep-hourly", "--keep-daily",
	                                    "--keep-weekly", "--keep-monthly", "--keep-yearly"};
	int rc;

	switch (opt) {
	case OPT_TABLE:
		o->table = arg;
		return -1;
	case OPT_BRANCH:
		o->branch = arg;
		return -1;
	case OPT_DRY_RUN:
		o->dry_run = 1;
		return -1;
	case OPT_JSON:
		o->json = 1;
		return -1;
	case OPT_KEEP_LAST:
	case OPT_KEEP_WITHIN:
	case OPT_KEEP_HOURLY:
	case OPT_KEEP_DAILY:
	case OPT_KEEP_WEEKLY:
	case OPT_KEEP_MONTHLY:
	case OPT_KEEP_YEARLY:
		o->nkeys++;
		if ((rc = cli_keep_opt(&o->rule, names[opt - OPT_KEEP_LAST], arg)) != 0)
			return rc;
		return -1;
	default:
		return -1;
	}
}

static void print_plan(const char *report)
{
	json_error_t err;
	json_t *r = json_loads(report, 0, &err), *exp, *ranges, *kept, *by, *val;
	const char *t;

	if (!r) {
		fputs(report, stdout);
		fputc('\n', stdout);
		return;
	}
	exp = json_object_get(r, "expired");
	ranges = json_object_get(exp, "ranges");
	kept = json_object_get(r, "kept");
	by = json_object_get(kept, "by_reason");
	if (json_integer_value(json_object_get(json_object_get(r, "pins"), "pins")) > 0) {
		json_t *pids = json_object_get(json_object_get(r, "pins"), "pids"), *x;
		size_t i;
		printf("kept what %" JSON_INTEGER_FORMAT " pin(s) of open readers reach (pid",
		       json_integer_value(json_object_get(json_object_get(r, "pins"), "pins")));
		json_array_foreach(pids, i, x) printf("%s %" JSON_INTEGER_FORMAT, i ? "," : "", json_integer_value(x));
		printf(")\n");
	}
	if (json_is_string(json_object_get(r, "held")))
		fprintf(stderr, "udr: warning: %s\n", json_string_value(json_object_get(r, "held")));
	if (json_is_false(json_object_get(r, "dry_run"))) {
		json_t *recs = json_object_get(exp, "records");
		if (json_array_size(recs) == 0)
			printf("nothing expired (%s; at commit %" JSON_INTEGER_FORMAT ")\n",
			       json_string_value(json_object_get(r, "rule")), json_integer_value(json_object_get(r, "at")));
		else
			printf("expired %" JSON_INTEGER_FORMAT " version(s) of %zu table(s) in commit %" JSON_INTEGER_FORMAT
			       " (%s; now %s)\n",
			       json_integer_value(json_object_get(exp, "versions")), json_object_size(ranges),
			       json_integer_value(json_array_get(recs, 0)), json_string_value(json_object_get(r, "rule")),
			       json_string_value(json_object_get(r, "now")));
	} else
	printf("would expire %" JSON_INTEGER_FORMAT " version(s) of %zu table(s) (%s; now %s, at commit %" JSON_INTEGER_FORMAT
	       ")\n",
	       json_integer_value(json_object_get(exp, "versions")), json_object_size(ranges),
	       json_string_value(json_object_get(r, "rule")), json_string_value(json_object_get(r, "now")),
	       json_integer_value(json_object_get(r, "at")));
	json_object_foreach(ranges, t, val) {
		size_t i;
		json_t *p;
		printf("  %s:", t);
		json_array_foreach(val, i, p) {
			json_int_t a = json_integer_value(json_array_get(p, 0)), b = json_integer_value(json_array_get(p, 1));
			if (a == b)
				printf("%s %" JSON_INTEGER_FORMAT, i ? "," : "", a);
			else
				printf("%s %" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT, i ? "," : "", a, b);
		}
		fputc('\n', stdout);
	}
	printf("keeps %" JSON_INTEGER_FORMAT " version(s):", json_integer_value(json_object_get(kept, "versions")));
	json_object_foreach(by, t, val)
		printf(" %s %" JSON_INTEGER_FORMAT, t, json_integer_value(val));
	fputc('\n', stdout);
	json_decref(r);
}

/* expired, undo, restore: no --keep-..., --branch, --dry-run, --table */
static int other_subcommand(cli_ctx *ctx, const cli_command *self, const struct retention_opts *o, int argc,
                            char **argv)
{
	const char *sub = argv[optind];
	int nargs = argc - optind - 1, rc;
	udr_db *db = NULL;
	char *text = NULL;
	uint64_t seq = 0, first = 0, last = 0;
	char table[UDR_TABLE_NAME_MAX + 1];

	if (o->nkeys || o->branch || o->dry_run || o->table)
		return cli_usage_error(self, "'%s' takes no --keep-..., --branch, --dry-run or --table", sub);
	if (nargs > 1 || (strcmp(sub, "restore") == 0 && nargs != 1))
		return cli_usage_error(self, nargs > 1 ? "too many arguments" : "missing TABLE@V[..W]");
	if (strcmp(sub, "expired") == 0 && nargs == 1 && (rc = cli_check_table(argv[optind + 1])) != 0)
		return rc;
	if (strcmp(sub, "undo") == 0 && nargs == 1 && ((rc = cli_parse_version(&seq, argv[optind + 1])) != 0))
		return rc;
	if (strcmp(sub, "restore") == 0) {
		const char *ref = argv[optind + 1], *at = strchr(ref, '@'), *dots;
		char num[48];
		size_t tl = at ? (size_t)(at - ref) : 0;
		if (!at || tl == 0 || tl > UDR_TABLE_NAME_MAX)
			return cli_usage_error(self, "restore needs TABLE@V or TABLE@V..W, not \"%s\"", ref);
		memcpy(table, ref, tl);
		table[tl] = '\0';
		if ((rc = cli_check_table(table)) != 0)
			return rc;
		dots = strstr(at + 1, "..");
		snprintf(num, sizeof num, "%.*s", dots ? (int)(dots - at - 1) : (int)strlen(at + 1), at + 1);
		if ((rc = cli_parse_version(&first, num)) != 0)
			return rc;
		last = first;
		if (dots && (rc = cli_parse_version(&last, dots + 2)) != 0)
			return rc;
		if (last < first)
			return cli_usage_error(self, "restore: %" PRIu64 "..%" PRIu64 " is an empty range", first, last);
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (strcmp(sub, "expired") == 0) {
		json_t *arr = NULL, *x;
		size_t i;
		rc = udr_retention_expired(&text, udr_db_catalog(db), nargs ? argv[optind + 1] : NULL);
		if (rc == 0 && o->json) {
			puts(text);
		} else if (rc == 0 && (arr = json_loads(text, 0, NULL))) {
			json_array_foreach(arr, i, x) {
				json_int_t a = json_integer_value(json_object_get(x, "first")),
				           b = json_integer_value(json_object_get(x, "last"));
				printf("%s@%" JSON_INTEGER_FORMAT, json_string_value(json_object_get(x, "table")), a);
				if (b != a)
					printf("..%" JSON_INTEGER_FORMAT, b);
				printf(" expired by commit %" JSON_INTEGER_FORMAT " on %s\n",
				       json_integer_value(json_object_get(x, "seq")), json_string_value(json_object_get(x, "time")));
			}
			json_decref(arr);
		}
	} else if (strcmp(sub, "undo") == 0) {
		uint64_t out = 0;
		rc = udr_retention_undo(&out, udr_db_catalog(db), seq);
		if (rc == 0 && o->json)
			printf("{\"seq\":%" PRIu64 "}\n", out);
		else if (rc == 0 && out)
			printf("unexpired in commit %" PRIu64 "\n", out);
		else if (rc == 0)
			printf("nothing to undo: what it expired is unexpired already\n");
	} else {
		uint64_t out = 0;
		rc = udr_retention_restore(&out, udr_db_catalog(db), table, first, last);
		if (rc == 0 && o->json)
			printf("{\"seq\":%" PRIu64 "}\n", out);
		else if (rc == 0)
			printf("unexpired in commit %" PRIu64 "\n", out);
	}
	if (rc != 0)
		rc = cli_fail(rc);
	udr_free(text);
	udr_db_close(db);
	return rc;
}

int cli_cmd_retention(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("retention");
	struct retention_opts o;
	udr_retention_rule init = UDR_RETENTION_RULE_INIT;
	udr_db *db = NULL;
	char *report = NULL;
	int rc;

	memset(&o, 0, sizeof o);
	o.rule = init;
	rc = cli_parse_options(ctx, self, argc, argv, "", retention_longopts, retention_opt, &o);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return cli_usage_error(self, "missing subcommand (expire, expired, undo, restore)");
	if (strcmp(argv[optind], "expired") == 0 || strcmp(argv[optind], "undo") == 0 ||
	    strcmp(argv[optind], "restore") == 0)
		return other_subcommand(ctx, self, &o, argc, argv);
	if (strcmp(argv[optind], "expire") != 0)
		return cli_usage_error(self, "unknown subcommand '%s' (built: expire, expired, undo, restore)", argv[optind]);
	if (optind + 1 < argc)
		return cli_usage_error(self, "expiring named versions (TABLE@V) is not built yet; "
		                             "give --keep-... options with --dry-run");
	if (o.nkeys == 0)
		return cli_usage_error(self, "give at least one --keep-... option");
	if (!o.dry_run && o.branch)
		return cli_usage_error(self, "--branch is only built with --dry-run: expire on every branch, or see the plan");
	if (o.table && (rc = cli_check_table(o.table)) != 0)
		return rc;
	if (o.branch && (rc = udr_ref_name_check(o.branch)) != 0)
		return cli_fail(rc);
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (o.dry_run)
		rc = udr_retention_plan(&report, udr_db_catalog(db), &o.rule, o.table, o.branch, UDR_RETENTION_NOW);
	else
		rc = udr_retention_apply(&report, udr_db_catalog(db), &o.rule, o.table, 0);
	if (rc != 0) {
		rc = cli_fail(rc);
	} else if (o.json) {
		if (strstr(report, "\"held\":")) {
			json_t *r = json_loads(report, 0, NULL);
			if (json_is_string(json_object_get(r, "held")))
				fprintf(stderr, "udr: warning: %s\n", json_string_value(json_object_get(r, "held")));
			json_decref(r);
		}
		fputs(report, stdout);
		fputc('\n', stdout);
	} else {
		print_plan(report);
	}
	udr_free(report);
	udr_db_close(db);
	return rc;
}
