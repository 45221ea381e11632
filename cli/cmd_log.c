/*
 * cli/cmd_log.c - the changelog commands: `udr log` queries the commit log,
 * `udr watch` follows it and prints each commit as it is made.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <udr/gc.h>

#include "cli.h"

#define NOPERANDS(argc) ((argc) - optind)

/* How long watch waits for a commit before it looks at its stop flag. */
#define WATCH_POLL_MS 100

enum { OPT_SINCE = CLI_OPT_FIRST, OPT_SINCE_TIME, OPT_TABLE, OPT_BRANCH, OPT_LIMIT,
       OPT_REVERSE, OPT_JSON, OPT_GRAPH };

struct log_opts {
	udr_log_query q;
	const char **tables; /* room for argc names */
	int since_given;
	int json;
	int graph;
};


/* A branch that does not exist and never did (udr_catalog_log says
 * UDR_ENOTFOUND for it): `watch --branch` waits for it to be made. */
static int branch_never_existed(udr_catalog *cat, const char *branch)
{
	udr_reflog_entry *e = NULL;
	size_t n = 0;
	int rc = udr_branch_reflog(&e, &n, cat, branch, 1);
	udr_reflog_free(e, n);
	return rc == UDR_ENOTFOUND;
}

static int log_opt(int opt, const char *arg, void *payload)
{
	struct log_opts *o = payload;
	uint64_t n;
	int rc;

	switch (opt) {
	case OPT_SINCE:
		if ((rc = cli_parse_uint(&o->q.since_seq, arg, UINT64_MAX, 0, "--since")) != 0)
			return rc;
		o->since_given = 1;
		break;
	case OPT_SINCE_TIME:
		if ((rc = udr_time_parse(&o->q.since_ms, arg)) != 0)
			return cli_fail(rc);
		/* A bare date parses as the end of that day (as of); "since a
		 * date" starts at its beginning. */
		if (strlen(arg) == 10)
			o->q.since_ms -= 86400000 - 1;
		break;
	case OPT_TABLE:
		if ((rc = cli_check_table(arg)) != 0)
			return rc;
		o->tables[o->q.ntables++] = arg;
		break;
	case OPT_BRANCH:
		/* a name no branch can have lists nothing: say so (a deleted
		 * branch's commits are still listed by its name) */
		if (udr_ref_name_check(arg) != 0) {
			cli_errorf("%s", udr_error_last()->message);
			return CLI_EXIT_USAGE;
		}
		o->q.branch = arg;
		break;
	case OPT_LIMIT:
		if ((rc = cli_parse_limit(&n, arg)) != 0)
			return rc;
		o->q.limit = (size_t)n;
		break;
	case OPT_REVERSE:
		o->q.newest_first = 0;
		break;
	case OPT_GRAPH:
		o->graph = 1;
		break;
	default: /* OPT_JSON */
		o->json = 1;
		break;
	}
	return -1;
}

/* An expire record: "expire 3 versions of 1 table (keep_last=1)", then
 * each table's ranges. */
static void print_expire(udr_catalog *cat, uint64_t seq)
{
	char *text = NULL;
	json_t *o = NULL, *tables, *val;
	const char *t;
	if (udr_expire_record_json(&text, cat, seq) != 0 || !(o = json_loads(text, 0, NULL))) {
		udr_error_clear();
		fputs("  expire\n", stdout);
		udr_free(text);
		return;
	}
	tables = json_object_get(o, "tables");
	if (json_object_get(o, "undo")) { /* unexpire */
		json_int_t undo = json_integer_value(json_object_get(o, "undo"));
		if (undo)
			printf("  unexpire: undo of commit %" JSON_INTEGER_FORMAT "\n", undo);
		else
			printf("  unexpire: restore\n");
	} else {
		printf("  expire %" JSON_INTEGER_FORMAT " version%s of %zu table%s (%s)\n",
		       json_integer_value(json_object_get(o, "versions")),
		       json_integer_value(json_object_get(o, "versions")) == 1 ? "" : "s", json_object_size(tables),
		       json_object_size(tables) == 1 ? "" : "s", json_string_value(json_object_get(o, "rule")));
	}
	json_object_foreach(tables, t, val) {
		size_t i;
		json_t *p, *list = json_object_get(val, "add");
		bool un = list == NULL;
		if (un)
			list = json_object_get(val, "remove");
		printf("  %s:", t);
		json_array_foreach(list, i, p) {
			json_int_t a = json_integer_value(json_array_get(p, 0)), b = json_integer_value(json_array_get(p, 1));
			if (a == b)
				printf("%s %" JSON_INTEGER_FORMAT, i ? "," : "", a);
			else
				printf("%s %" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT, i ? "," : "", a, b);
		}
		fputs(un ? " unexpired\n" : " expired\n", stdout);
	}
	json_decref(o);
	udr_free(text);
}

/* A retention record: the policy it stored (GC.md 1.1). */
static void print_policy(udr_catalog *cat, uint64_t seq)
{
	char *text = NULL;

	if (udr_retention_policy_at(&text, NULL, cat, seq) != 0) {
		udr_error_clear(); /* the log stays readable; fsck reports the damage */
		fputs("  retention policy\n", stdout);
	} else if (strcmp(text, "{}") == 0) {
		fputs("  retention policy cleared\n", stdout);
	} else {
		printf("  retention policy %s\n", text);
	}
	udr_free(text);
}

/* The change made a version that records a drop (DROP TABLE).  A version
 * file that cannot be read says nothing here: the log stays readable (fsck
 * and the commands that read the version report the damage). */
static int change_dropped(udr_catalog *cat, const udr_change *ch)
{
	udr_version *v = NULL;
	int dropped = udr_catalog_get_version(&v, cat, ch->table, ch->new_version) == 0 && udr_version_is_dropped(v);

	udr_version_free(v);
	udr_error_clear();
	return dropped;
}

static void print_commit_text(udr_catalog *cat, const udr_commit *c)
{
	char when[80];
	const char *m;
	size_t i;

	cli_format_time(when, c->time_ms);
	printf("commit %" PRIu64 " (%s) %s ", c->seq, c->branch ? c->branch : "?", when);
	/* control characters as '?': an author with a newline (stored by an
	 * older udr, which kept UDR_AUTHOR as it was) would forge lines */
	for (const char *a = c->author ? c->author : "?"; *a; a++)
		putchar((unsigned char)*a < 0x20 || *a == 0x7f ? '?' : *a);
	putchar('\n');
	if (c->op && c->source) { /* cherry-pick, revert (not twice: it is the default message) */
		char what[128];

		snprintf(what, sizeof(what), "%s of commit %" PRIu64, c->op, c->source);
		if (!c->message || strcmp(c->message, what) != 0)
			printf("  %s\n", what);
	}
	else if (c->op && (strcmp(c->op, "expire") == 0 || strcmp(c->op, "unexpire") == 0)) /* GC.md 1.4 */
		print_expire(cat, c->seq);
	else if (c->op && strcmp(c->op, "retention") == 0) /* GC.md 1.1 */
		print_policy(cat, c->seq);
	else if (c->op) { /* a ref record (branches) */
		printf("  %s %s", c->op, c->ref ? c->ref : "");
		for (i = 0; i < c->nparents; i++)
			printf("%s%" PRIu64, i ? ", " : c->ref ? " (commit " : "(commit ", c->parents[i]);
		fputs(c->nparents ? ")\n" : "\n", stdout);
	}
	if (c->message) {
		/* Indented, line by line, so a message cannot fake a header. */
		for (m = c->message; *m;) {
			size_t n = strcspn(m, "\n");

			fputs("    ", stdout);
			cli_put_text(m, n);
			putchar('\n');
			m += n + (m[n] == '\n');
		}
	}
	for (i = 0; i < c->nchanges; i++) {
		const udr_change *ch = &c->changes[i];

		if (ch->old_version && change_dropped(cat, ch))
			printf("  %s: %" PRIu64 " -> dropped (%" PRIu64 ")\n", ch->table, ch->old_version,
			       ch->new_version);
		else if (ch->old_version)
			printf("  %s: %" PRIu64 " -> %" PRIu64 "\n", ch->table, ch->old_version,
			       ch->new_version);
		else
			printf("  %s: new -> %" PRIu64 "\n", ch->table, ch->new_version);
	}
}

/* One commit as a one-line JSON object. */
static void print_commit_json(udr_catalog *cat, const udr_commit *c)
{
	char when[80], hex[UDR_HASH_HEXSIZE + 1];
	size_t i;

	cli_format_time(when, c->time_ms);
	printf("{\"seq\": %" PRIu64 ", \"parent\": %" PRIu64 ", \"time\": \"%s\", "
	       "\"time_ms\": %" PRId64 ", \"branch\": ", c->seq, c->parent, when, c->time_ms);
	cli_json_string(stdout, c->branch ? c->branch : "");
	fputs(", \"author\": ", stdout);
	cli_json_string(stdout, c->author ? c->author : "");
	fputs(", \"message\": ", stdout);
	if (c->message)
		cli_json_string(stdout, c->message);
	else
		fputs("null", stdout);
	fputs(", \"changes\": [", stdout);
	for (i = 0; i < c->nchanges; i++) {
		udr_hash_tohex(hex, &c->changes[i].digest);
		fputs(i ? ", {\"table\": " : "{\"table\": ", stdout);
		cli_json_string(stdout, c->changes[i].table);
		printf(", \"old\": %" PRIu64 ", \"new\": %" PRIu64 ", \"digest\": \"%s\"%s}",
		       c->changes[i].old_version, c->changes[i].new_version, hex,
		       c->changes[i].old_version && change_dropped(cat, &c->changes[i]) ? ", \"dropped\": true" : "");
	}
	fputc(']', stdout);
	if (c->op) { /* a ref record (branches): what it did */
		fputs(", \"op\": ", stdout);
		cli_json_string(stdout, c->op);
		fputs(", \"ref\": ", stdout);
		if (c->ref)
			cli_json_string(stdout, c->ref);
		else
			fputs("null", stdout);
		fputs(", \"parents\": [", stdout);
		for (i = 0; i < c->nparents; i++)
			printf("%s%" PRIu64, i ? ", " : "", c->parents[i]);
		fputc(']', stdout);
		if (c->source)
			printf(", \"source\": %" PRIu64, c->source);
		if (strcmp(c->op, "retention") == 0) { /* the policy it stored */
			char *text = NULL;
			if (udr_retention_policy_at(&text, NULL, cat, c->seq) == 0)
				printf(", \"retention\": %s", text);
			else
				udr_error_clear();
			udr_free(text);
		}
	}
	fputc('}', stdout);
}

/* Parse the options shared by log and watch; -1 to go on, else an exit code. */
static int parse_log_options(struct log_opts *o, cli_ctx *ctx, const cli_command *self, int argc,
                             char **argv, const struct option *longopts)
{
	udr_log_query init = UDR_LOG_QUERY_INIT;
	int rc;

	memset(o, 0, sizeof(*o));
	o->q = init;
	o->q.newest_first = 1;
	if (!(o->tables = calloc((size_t)argc + 1, sizeof(*o->tables)))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	o->q.tables = o->tables;
	rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, log_opt, o);
	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if (o->q.ntables == 0)
		o->q.tables = NULL;
	return -1;
}

int cli_cmd_log(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "since-time", required_argument, NULL, OPT_SINCE_TIME },
		{ "table", required_argument, NULL, OPT_TABLE },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "reverse", no_argument, NULL, OPT_REVERSE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "graph", no_argument, NULL, OPT_GRAPH },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("log");
	struct log_opts o;
	udr_commit **commits = NULL;
	size_t n = 0, i;
	udr_db *db = NULL;
	int rc = parse_log_options(&o, ctx, self, argc, argv, longopts);

	if (rc >= 0)
		goto out;
	if (o.graph && (o.json || o.q.ntables || o.since_given || o.q.since_ms || !o.q.newest_first)) {
		rc = cli_usage_error(self, "--graph takes only --branch and --limit");
		goto out;
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if (o.graph) {
		rc = cli_log_graph(db, o.q.branch, o.q.limit);
		goto out;
	}
	/* a table that was never committed is an error, as for `udr show` */
	for (i = 0; i < o.q.ntables; i++) {
		uint64_t latest;

		if ((rc = udr_catalog_latest(&latest, udr_db_catalog(db), o.q.tables[i])) != 0) {
			rc = cli_fail(rc);
			goto out;
		}
	}
	if ((rc = udr_catalog_log(&commits, &n, udr_db_catalog(db), &o.q)) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if (o.json)
		fputs(n ? "[\n" : "[", stdout);
	for (i = 0; i < n; i++) {
		if (o.json) {
			print_commit_json(udr_db_catalog(db), commits[i]);
			fputs(i + 1 < n ? ",\n" : "\n", stdout);
		} else {
			print_commit_text(udr_db_catalog(db), commits[i]);
		}
	}
	if (o.json)
		fputs("]\n", stdout);
out:
	udr_commit_array_free(commits, n);
	udr_db_close(db);
	free(o.tables);
	return rc;
}

/* ---- watch ---- */

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* SIGINT and SIGTERM end the watch cleanly (exit 0): no SA_RESTART, so a
 * blocking wait returns early, and the loop looks at the flag. */
static void install_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_cmd_watch(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "table", required_argument, NULL, OPT_TABLE },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("watch");
	struct log_opts o;
	udr_catalog *cat;
	udr_db *db = NULL;
	uint64_t cursor, head;
	int rc = parse_log_options(&o, ctx, self, argc, argv, longopts);

	if (rc >= 0)
		goto out;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	cat = udr_db_catalog(db);
	cursor = o.q.since_seq;
	if (!o.since_given && (rc = udr_catalog_head(&cursor, cat)) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	o.q.newest_first = 0;
	install_stop_handlers();
	/* Replay first (--since), then wait for each new head. */
	rc = 1;
	while (!watch_stop) {
		udr_commit **commits = NULL;
		size_t n = 0, i;

		if (rc == 1) {
			o.q.since_seq = cursor;
			if ((rc = udr_catalog_head(&head, cat)) == 0)
				rc = udr_catalog_log(&commits, &n, cat, &o.q);
			if (rc == UDR_ENOTFOUND && o.q.branch && branch_never_existed(cat, o.q.branch)) {
				udr_error_clear(); /* watching a branch to come: nothing yet */
				rc = 0;
			}
			if (rc) {
				rc = cli_fail(rc);
				goto out;
			}
			for (i = 0; i < n; i++) {
				if (o.json) {
					print_commit_json(cat, commits[i]);
					putchar('\n');
				} else {
					print_commit_text(cat, commits[i]);
				}
				if (fflush(stdout) != 0)
					break; /* reported by cli_finish_stdout */
			}
			/* Commits up to head were all looked at, also those the
			 * filters dropped. */
			if (n && commits[n - 1]->seq > head)
				head = commits[n - 1]->seq;
			if (head > cursor)
				cursor = head;
			udr_commit_array_free(commits, n);
			if (ferror(stdout)) {
				rc = CLI_EXIT_IO;
				goto out;
			}
		}
		rc = udr_catalog_wait(NULL, cat, cursor, WATCH_POLL_MS);
		if (rc < 0) {
			if (watch_stop)
				break;
			rc = cli_fail(rc);
			goto out;
		}
	}
	rc = CLI_EXIT_OK;
out:
	udr_db_close(db);
	free(o.tables);
	return rc;
}
