/*
 * cli/cmd_pick.c - udr cherry-pick and udr revert (include/udr/refs.h).
 */
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON = CLI_OPT_FIRST, OPT_BRANCH, OPT_STRATEGY, OPT_DRY };

struct pick_opts {
	int json, dry_run;
	const char *branch, *strategy, *message;
};

static int pick_opt(int opt, const char *arg, void *payload)
{
	struct pick_opts *o = payload;
	switch (opt) {
	case OPT_JSON:
		o->json = 1;
		break;
	case OPT_BRANCH:
		o->branch = arg;
		break;
	case OPT_STRATEGY:
		o->strategy = arg;
		break;
	case OPT_DRY:
		o->dry_run = 1;
		break;
	case 'm':
		o->message = arg;
		break;
	}
	return -1;
}

static const struct option pick_longopts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "branch", required_argument, NULL, OPT_BRANCH },
	{ "strategy", required_argument, NULL, OPT_STRATEGY },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "message", required_argument, NULL, 'm' },
	CLI_COMMON_LONGOPTS
};

static void print_result(const udr_merge_result *m, const struct pick_opts *o, bool revert)
{
	if (o->json) {
		printf("{\"commit\": %" PRIu64 ", \"source\": %" PRIu64 ", \"head\": %" PRIu64
		       ", \"up_to_date\": %s, \"dry_run\": %s, \"conflicts\": %zu, \"tables\": [",
		       m->seq, m->theirs, m->ours, m->up_to_date ? "true" : "false", o->dry_run ? "true" : "false",
		       m->nconflicts);
		for (size_t i = 0; i < m->ntables; i++) {
			fputs(i ? ", {\"table\": " : "{\"table\": ", stdout);
			cli_json_string(stdout, m->tables[i].table);
			printf(", \"expected\": %" PRIu64 ", \"ours\": %" PRIu64 ", \"content\": %" PRIu64
			       ", \"result\": %" PRIu64 ", \"conflict\": %s}",
			       m->tables[i].base, m->tables[i].ours, m->tables[i].theirs, m->tables[i].result,
			       m->tables[i].conflict ? "true" : "false");
		}
		fputs("]}\n", stdout);
		return;
	}
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		if (t->conflict)
			printf("conflict %s: at %" PRIu64 ", the commit %s %" PRIu64 "\n", t->table, t->ours,
			       revert ? "made" : "started from", t->base);
		else if (t->result == 0)
			printf("would take %s: %" PRIu64 " (content of %" PRIu64 ")\n", t->table, t->ours, t->theirs);
		else if (t->result != t->ours)
			printf("took %s: %" PRIu64 " -> %" PRIu64 " (content of %" PRIu64 ")\n", t->table, t->ours, t->result,
			       t->theirs);
		else
			printf("kept %s: %" PRIu64 "\n", t->table, t->ours);
	}
	if (m->seq)
		printf("%s commit %" PRIu64 "\n", revert ? "revert" : "cherry-pick", m->seq);
	else if (m->up_to_date)
		printf("nothing to %s: nothing written\n", revert ? "revert" : "cherry-pick");
	else if (o->dry_run && m->nconflicts == 0)
		printf("dry run: nothing written\n");
}

static int run(cli_ctx *ctx, int argc, char **argv, bool revert)
{
	const cli_command *self = cli_find_command(revert ? "revert" : "cherry-pick");
	struct pick_opts o;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	udr_db *db = NULL;
	char ref[64];
	const char *commit;
	int rc;
	memset(&o, 0, sizeof(o));
	if ((rc = cli_parse_options(ctx, self, argc, argv, "m:", pick_longopts, pick_opt, &o)) >= 0)
		return rc;
	if (argc - optind != 1)
		return cli_usage_error(self, argc - optind ? "too many arguments" : "missing COMMIT");
	if (o.strategy && strcmp(o.strategy, "ours") == 0)
		mo.strategy = UDR_MERGE_OURS;
	else if (o.strategy && strcmp(o.strategy, "theirs") == 0)
		mo.strategy = UDR_MERGE_THEIRS;
	else if (o.strategy)
		return cli_usage_error(self, "--strategy must be ours or theirs");
	commit = argv[optind];
	/* a plain number is a commit */
	if (*commit && strspn(commit, "0123456789") == strlen(commit) && strlen(commit) < 21) {
		snprintf(ref, sizeof(ref), "commit:%s", commit);
		commit = ref;
	}
	mo.dry_run = o.dry_run;
	mo.message = o.message;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = revert ? udr_revert(&m, udr_db_catalog(db), commit, o.branch, &mo)
	            : udr_cherry_pick(&m, udr_db_catalog(db), commit, o.branch, &mo);
	if (m && (rc == 0 || rc == UDR_EIO || m->nconflicts > 0)) /* not a branch that moved meanwhile */
		print_result(m, &o, revert);
	if (rc != 0)
		rc = cli_fail(rc);
	udr_merge_result_free(m);
	udr_db_close(db);
	return rc;
}

int cli_cmd_cherry_pick(cli_ctx *ctx, int argc, char **argv)
{
	return run(ctx, argc, argv, false);
}

int cli_cmd_revert(cli_ctx *ctx, int argc, char **argv)
{
	return run(ctx, argc, argv, true);
}
