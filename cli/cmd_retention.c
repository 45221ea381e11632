/*
 * cmd_retention.c - `udr retention`: which versions a retention rule
 * expires (docs/GC.md 1.1-1.3, 7.1).  Built: `show`, `set`, `unset` (the
 * stored policy, a retention record), `expire --dry-run` (the plan, written
 * nowhere), `expire` (links an expire record, GC.md 1.4; by the stored
 * policy, its default replaced by --keep-...), `expired [TABLE]`, `undo
 * [SEQ]` and `restore TABLE@V[..W]` (unexpire records).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	OPT_ALL,
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
	{ "all", no_argument, NULL, OPT_ALL },
	{ "message", required_argument, NULL, 'm' },
	CLI_COMMON_LONGOPTS
};

struct retention_opts {
	const char *table, *branch, *message;
	const char *within; /* --keep-within as given: stored as written */
	udr_retention_rule rule;
	int nkeys, dry_run, json, all;
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
	case OPT_ALL:
		o->all = 1;
		return -1;
	case 'm':
		o->message = arg;
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
		if (opt == OPT_KEEP_WITHIN)
			o->within = arg;
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

/* ---- the stored policy (GC.md 1.1): show, set, unset --------------------- */

/* A rule as the policy's JSON object ({} for a rule with no key). */
static json_t *rule_json(const udr_retention_rule *r)
{
	json_t *o = json_object();
	char d[64];

	if (!o)
		return NULL;
	if (r->keep_last)
		json_object_set_new(o, "keep_last", json_integer((json_int_t)r->keep_last));
	if (r->keep_within_ms >= 0) {
		udr_retention_format_duration(d, sizeof d, r->keep_within_ms);
		json_object_set_new(o, "keep_within", json_string(d));
	}
	if (r->keep_hourly)
		json_object_set_new(o, "keep_hourly", json_integer(r->keep_hourly));
	if (r->keep_daily)
		json_object_set_new(o, "keep_daily", json_integer(r->keep_daily));
	if (r->keep_weekly)
		json_object_set_new(o, "keep_weekly", json_integer(r->keep_weekly));
	if (r->keep_monthly)
		json_object_set_new(o, "keep_monthly", json_integer(r->keep_monthly));
	if (r->keep_yearly)
		json_object_set_new(o, "keep_yearly", json_integer(r->keep_yearly));
	return o;
}

/* FILE or - (stdin), at most 1 MiB. */
static int read_policy_file(char **out, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t n = 0, cap = 1 << 20;
	char *buf;

	if (!f) {
		cli_errorf("cannot open %s: %s", path, strerror(errno));
		return CLI_EXIT_NOTFOUND;
	}
	{
		struct stat st;
		if (f != stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
			fclose(f); /* it said "read error" */
			cli_errorf("%s is a directory, not a policy file", path);
			return CLI_EXIT_USAGE;
		}
	}
	if (!(buf = malloc(cap + 1))) {
		if (f != stdin)
			fclose(f);
		return cli_fail(UDR_ENOMEM);
	}
	n = fread(buf, 1, cap + 1, f);
	if (ferror(f) || n > cap) {
		cli_errorf("%s: %s", path, n > cap ? "a policy is at most 1 MiB" : "read error");
		if (f != stdin)
			fclose(f);
		free(buf);
		return n > cap ? CLI_EXIT_USAGE : CLI_EXIT_IO;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	if (strlen(buf) != n) {
		cli_errorf("%s: a policy is JSON text (it holds a NUL byte)", path);
		free(buf);
		return CLI_EXIT_USAGE;
	}
	*out = buf;
	return 0;
}

/* Remove the object under key when it became empty. */
static void drop_empty(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_object(v) && json_object_size(v) == 0)
		json_object_del(o, key);
}

/* The policy with one rule (default, tables[T], branches[B] or
 * pairs[B][T]) replaced by rule, or removed (rule NULL).  1: there was no
 * such rule to remove. */
static int policy_edit(json_t *pol, const char *table, const char *branch, json_t *rule)
{
	json_t *parent = pol, *x;
	const char *key = "default";

	if (table && branch) {
		if (!(x = json_object_get(pol, "pairs"))) {
			if (!rule)
				return 1;
			json_object_set_new(pol, "pairs", x = json_object());
		}
		if (!(parent = json_object_get(x, branch))) {
			if (!rule)
				return 1;
			json_object_set_new(x, branch, parent = json_object());
		}
		key = table;
	} else if (table || branch) {
		const char *k = table ? "tables" : "branches";
		if (!(parent = json_object_get(pol, k))) {
			if (!rule)
				return 1;
			json_object_set_new(pol, k, parent = json_object());
		}
		key = table ? table : branch;
	}
	if (!json_is_object(parent))
		return 1;
	if (!rule) {
		if (json_object_del(parent, key) != 0)
			return 1;
	} else {
		json_object_set(parent, key, rule);
	}
	if (table && branch) {
		drop_empty(json_object_get(pol, "pairs"), branch);
		drop_empty(pol, "pairs");
	}
	drop_empty(pol, "tables");
	drop_empty(pol, "branches");
	return 0;
}

/* `retention show`: the policy, then for each table on each branch the rule
 * that applies and where it comes from. */
static int policy_show(udr_catalog *cat, int as_json)
{
	udr_retention_policy *pol = NULL;
	udr_ref *refs = NULL;
	size_t nrefs = 0;
	char *text = NULL;
	uint64_t seq = 0;
	json_t *out = NULL, *rules = NULL, *p = NULL;
	int rc;

	if ((rc = udr_retention_policy_at(&text, &seq, cat, 0)) != 0 ||
	    (rc = udr_retention_policy_parse(&pol, text)) != 0 ||
	    (rc = udr_catalog_refs(&refs, &nrefs, cat, UDR_REF_BRANCH)) != 0)
		goto done;
	p = json_loads(text, 0, NULL);
	out = json_object();
	rules = json_array();
	if (!p || !out || !rules) {
		rc = UDR_ENOMEM;
		goto done;
	}
	json_object_set_new(out, "seq", json_integer((json_int_t)seq));
	json_object_set(out, "policy", p);
	for (size_t i = 0; i < nrefs && rc == 0; i++) {
		char **tables = NULL;
		size_t nt = 0;
		if (refs[i].commit == 0)
			continue; /* main before the first commit */
		if ((rc = udr_catalog_list_tables_on(&tables, &nt, cat, refs[i].name)) != 0)
			break;
		for (size_t t = 0; t < nt && rc == 0; t++) {
			udr_retention_rule r;
			const char *src = NULL;
			char txt[256];
			json_t *e;
			if ((rc = udr_retention_policy_rule(&r, &src, pol, tables[t], refs[i].name)) != 0)
				break;
			udr_retention_rule_format(txt, sizeof txt, &r);
			e = json_pack("{sssssssoss}", "branch", refs[i].name, "table", tables[t], "source", src, "rule",
			              rule_json(&r), "text", txt);
			if (!e || json_array_append_new(rules, e) != 0)
				rc = UDR_ENOMEM;
		}
		udr_strarray_free(tables, nt);
	}
	if (rc != 0)
		goto done;
	json_object_set(out, "rules", rules);
	if (as_json) {
		char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!s) {
			rc = UDR_ENOMEM;
			goto done;
		}
		puts(s);
		free(s);
	} else {
		json_t *e;
		size_t i;
		char *s = json_dumps(p, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (seq && strcmp(text, "{}") != 0)
			printf("retention policy (commit %" PRIu64 "):\n%s\n", seq, s ? s : text);
		else if (seq)
			printf("no retention policy (cleared in commit %" PRIu64
			       "): nothing expires unless a --keep-... option says so\n", seq);
		else
			printf("no retention policy: nothing expires unless a --keep-... option says so\n");
		free(s);
		json_array_foreach(rules, i, e)
			printf("  %s on %s: %s (%s)\n", json_string_value(json_object_get(e, "table")),
			       json_string_value(json_object_get(e, "branch")), json_string_value(json_object_get(e, "text")),
			       json_string_value(json_object_get(e, "source")));
	}
done:
	json_decref(out);
	json_decref(rules);
	json_decref(p);
	udr_ref_array_free(refs, nrefs);
	udr_retention_policy_free(pol);
	udr_free(text);
	return rc;
}

/* show, set, unset (GC.md 7.1). */
static int policy_subcommand(cli_ctx *ctx, const cli_command *self, const struct retention_opts *o, int argc,
                             char **argv)
{
	const char *sub = argv[optind];
	int nargs = argc - optind - 1, rc;
	udr_db *db = NULL;
	char *text = NULL, *file = NULL, *newtext = NULL;
	uint64_t seq = 0, read_seq = 0;
	int edit = 0;
	json_t *pol = NULL, *rule = NULL;

	if (o->dry_run)
		return cli_usage_error(self, "'%s' takes no --dry-run", sub);
	if (strcmp(sub, "show") == 0) {
		if (nargs > 0 || o->nkeys || o->table || o->branch || o->message || o->all)
			return cli_usage_error(self, "'show' takes only --json");
	} else if (strcmp(sub, "set") == 0) {
		if (o->all)
			return cli_usage_error(self, "'set' takes no --all (use unset --all)");
		if (nargs > 1)
			return cli_usage_error(self, "too many arguments");
		if (nargs == 1 && (o->nkeys || o->table || o->branch))
			return cli_usage_error(self, "give either FILE (the whole policy) or --keep-... [--table] [--branch]");
		if (nargs == 0 && o->nkeys == 0)
			return cli_usage_error(self, "give FILE (or - for stdin) or at least one --keep-... option");
	} else { /* unset */
		if (nargs > 0 || o->nkeys)
			return cli_usage_error(self, "'unset' takes [--table T] [--branch B] or --all");
		if (o->all && (o->table || o->branch))
			return cli_usage_error(self, "--all clears the whole policy: no --table or --branch");
	}
	if (o->table && (rc = cli_check_table(o->table)) != 0)
		return rc;
	if (o->branch) {
		/* a branch name, or NAME/ followed by a star: every branch under NAME/ */
		size_t n = strlen(o->branch);
		char name[512];
		snprintf(name, sizeof name, "%.*s", n > 2 && strcmp(o->branch + n - 2, "/*") == 0 ? (int)n - 2 : (int)n,
		         o->branch);
		if ((rc = udr_ref_name_check(name)) != 0)
			return cli_fail(rc);
	}
	if (strcmp(sub, "set") == 0 && nargs == 1 && (rc = read_policy_file(&file, argv[optind + 1])) != 0)
		return rc;
	if ((rc = cli_open_db(&db, ctx)) != 0) {
		free(file);
		return rc;
	}
	if (strcmp(sub, "show") == 0) {
		rc = policy_show(udr_db_catalog(db), o->json);
		goto done;
	}
	if (file) {
		newtext = file;
		file = NULL;
	} else if (o->all) {
		if (!(newtext = strdup("{}"))) {
			rc = UDR_ENOMEM;
			goto done;
		}
	} else {
		if ((rc = udr_retention_policy_at(&text, &read_seq, udr_db_catalog(db), 0)) != 0)
			goto done;
		edit = 1;
		if (!(pol = json_loads(text, 0, NULL)) || (o->nkeys && !(rule = rule_json(&o->rule)))) {
			rc = UDR_ENOMEM;
			goto done;
		}
		if (rule && o->within)
			json_object_set_new(rule, "keep_within", json_string(o->within));
		if (policy_edit(pol, o->table, o->branch, rule) == 1) {
			udr_db_close(db);
			json_decref(pol);
			udr_free(text);
			cli_errorf("no %s rule to unset%s%s%s%s", o->table && o->branch ? "pair" : o->table ? "table" :
			           o->branch ? "branch" : "default", o->table ? " for table " : "", o->table ? o->table : "",
			           o->branch ? " on branch " : "", o->branch ? o->branch : "");
			return CLI_EXIT_NOTFOUND;
		}
		if (!(newtext = json_dumps(pol, JSON_COMPACT | JSON_SORT_KEYS))) {
			rc = UDR_ENOMEM;
			goto done;
		}
	}
	/* an edit is linked only over the policy it read (exit 3 otherwise) */
	rc = edit ? udr_retention_update(&seq, udr_db_catalog(db), newtext, o->message, read_seq)
	          : udr_retention_set(&seq, udr_db_catalog(db), newtext, o->message);
	if (rc == 0 && o->json)
		printf("{\"seq\":%" PRIu64 "}\n", seq);
	else if (rc == 0 && !ctx->quiet)
		printf("retention policy stored in commit %" PRIu64 "\n", seq);
done:
	if (rc != 0)
		rc = cli_fail(rc);
	json_decref(pol);
	json_decref(rule);
	free(file);
	free(newtext);
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
	rc = cli_parse_options(ctx, self, argc, argv, "m:", retention_longopts, retention_opt, &o);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return cli_usage_error(self, "missing subcommand (show, set, unset, expire, expired, undo, restore)");
	if (strcmp(argv[optind], "show") == 0 || strcmp(argv[optind], "set") == 0 ||
	    strcmp(argv[optind], "unset") == 0)
		return policy_subcommand(ctx, self, &o, argc, argv);
	if (o.message || o.all)
		return cli_usage_error(self, "-m and --all are options of set and unset");
	if (strcmp(argv[optind], "expired") == 0 || strcmp(argv[optind], "undo") == 0 ||
	    strcmp(argv[optind], "restore") == 0)
		return other_subcommand(ctx, self, &o, argc, argv);
	if (strcmp(argv[optind], "expire") != 0)
		return cli_usage_error(self, "unknown subcommand '%s' (show, set, unset, expire, expired, undo, restore)",
		                       argv[optind]);
	if (optind + 1 < argc)
		return cli_usage_error(self, "expiring named versions (TABLE@V) is not built yet; "
		                             "give --keep-... options with --dry-run");
	if (!o.dry_run && o.branch)
		return cli_usage_error(self, "--branch is only built with --dry-run: expire on every branch, or see the plan");
	if (o.table && (rc = cli_check_table(o.table)) != 0)
		return rc;
	if (o.branch && (rc = udr_ref_name_check(o.branch)) != 0)
		return cli_fail(rc);
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (o.dry_run)
		rc = udr_retention_plan_ex(&report, udr_db_catalog(db), o.nkeys ? &o.rule : NULL, o.table, o.branch,
		                           UDR_RETENTION_NOW, UDR_RETENTION_POLICY);
	else
		rc = udr_retention_apply(&report, udr_db_catalog(db), o.nkeys ? &o.rule : NULL, o.table,
		                         UDR_RETENTION_POLICY);
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
