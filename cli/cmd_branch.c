/*
 * cli/cmd_branch.c - branches, tags, the reflog, merges and diffs between
 * refs (include/udr/refs.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#ifdef UDR_HAVE_QUERY
#include <udr/query.h>
#endif

#define NOPERANDS(argc) ((argc) - optind)

enum { OPT_JSON = CLI_OPT_FIRST, OPT_FROM, OPT_TO, OPT_AT, OPT_INTO, OPT_STRATEGY, OPT_TABLE, OPT_DRY, OPT_LIMIT, OPT_KEY,
       OPT_STRICT, OPT_CONTINUE, OPT_ABORT, OPT_OURS, OPT_THEIRS, OPT_WITH, OPT_SQL, OPT_ROWS };

struct ref_opts {
	int json;
	const char *from; /* --from / --to REF */
	const char *at;   /* --at TIME */
	const char *into;
	const char *strategy;
	const char **tables; /* --table T=ours|theirs */
	size_t ntables;
	const char **keys;   /* --key T=COLS */
	size_t nkeys;
	const char **stricts; /* --strictness T=table|row|cell */
	size_t nstricts;
	int cont, abort_, side;   /* merge --continue / --abort; resolve --ours/--theirs */
	const char *with, *sql;   /* resolve --with FILE / --sql QUERY */
	int dry_run;
	int rows; /* diff --rows */
	const char *message;
	const char *limit;
};

static int ref_opt(int opt, const char *arg, void *payload)
{
	struct ref_opts *o = payload;
	switch (opt) {
	case OPT_JSON:
		o->json = 1;
		break;
	case OPT_FROM:
	case OPT_TO:
		o->from = arg;
		break;
	case OPT_AT:
		o->at = arg;
		break;
	case OPT_INTO:
		o->into = arg;
		break;
	case OPT_STRATEGY:
		o->strategy = arg;
		break;
	case OPT_TABLE:
		o->tables[o->ntables++] = arg; /* room for argc entries */
		break;
	case OPT_DRY:
		o->dry_run = 1;
		break;
	case OPT_KEY:
		o->keys[o->nkeys++] = arg; /* room for argc entries */
		break;
	case OPT_STRICT:
		o->stricts[o->nstricts++] = arg;
		break;
	case OPT_CONTINUE:
		o->cont = 1;
		break;
	case OPT_ABORT:
		o->abort_ = 1;
		break;
	case OPT_OURS:
	case OPT_THEIRS:
		o->side = o->side && o->side != opt ? -1 : opt; /* both: refused */
		break;
	case OPT_WITH:
		o->with = arg;
		break;
	case OPT_SQL:
		o->sql = arg;
		break;
	case OPT_LIMIT:
		o->limit = arg;
		break;
	case OPT_ROWS:
		o->rows = 1;
		break;
	case 'm':
		o->message = arg;
		break;
	}
	return -1;
}

static const struct option ref_longopts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "at", required_argument, NULL, OPT_AT },
	{ "into", required_argument, NULL, OPT_INTO },
	{ "strategy", required_argument, NULL, OPT_STRATEGY },
	{ "table", required_argument, NULL, OPT_TABLE },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "strictness", required_argument, NULL, OPT_STRICT },
	{ "continue", no_argument, NULL, OPT_CONTINUE },
	{ "abort", no_argument, NULL, OPT_ABORT },
	{ "ours", no_argument, NULL, OPT_OURS },
	{ "theirs", no_argument, NULL, OPT_THEIRS },
	{ "with", required_argument, NULL, OPT_WITH },
	{ "sql", required_argument, NULL, OPT_SQL },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "rows", no_argument, NULL, OPT_ROWS },
	{ "message", required_argument, NULL, 'm' },
	CLI_COMMON_LONGOPTS
};

static void ref_opts_free(struct ref_opts *o)
{
	free(o->tables);
	free(o->keys);
	free(o->stricts);
}

static int parse(struct ref_opts *o, cli_ctx *ctx, const cli_command *self, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	if (!(o->tables = calloc((size_t)argc + 1, sizeof(*o->tables))) ||
	    !(o->keys = calloc((size_t)argc + 1, sizeof(*o->keys))) ||
	    !(o->stricts = calloc((size_t)argc + 1, sizeof(*o->stricts)))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	int rc = cli_parse_options(ctx, self, argc, argv, "m:", ref_longopts, ref_opt, o);
	if (rc >= 0)
		return rc;
	/* the options these commands share, given to one whose help does not
	 * name them, are refused (never silently ignored: a --dry-run that
	 * writes) */
	{
		const struct {
			bool used;
			const char *name;
		} only[] = {{o->nkeys > 0, "--key"},        {o->nstricts > 0, "--strictness"},
		            {o->cont, "--continue"},       {o->abort_, "--abort"},
		            {o->side == OPT_OURS, "--ours"}, {o->side == OPT_THEIRS, "--theirs"},
		            {o->side < 0, "--ours"},       {o->with != NULL, "--with"},
		            {o->sql != NULL, "--sql"},     {o->dry_run, "--dry-run"},
		            {o->strategy != NULL, "--strategy"}, {o->ntables > 0, "--table"},
		            {o->rows, "--rows"}};
		for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
			if (only[i].used && !strstr(self->usage, only[i].name))
				return cli_usage_error(self, "udr %s takes no %s", self->name, only[i].name);
	}
	return rc;
}

/* The commit ref record seq names (its parent: a tag, untag or delete
 * record given as the target stands for its own parent), else fallback. */
static uint64_t record_parent(udr_catalog *c, uint64_t seq, uint64_t fallback)
{
	udr_commit *cm = NULL;
	uint64_t p = fallback;
	if (udr_catalog_get_commit(&cm, c, seq) == 0)
		p = cm->parent;
	else
		udr_error_clear();
	udr_commit_free(cm);
	return p;
}

/* The commit ref names (now, or at --at). */
static int resolve(uint64_t *out, udr_catalog *c, const char *ref, const char *at)
{
	int64_t ms;
	int rc;
	if (!at)
		return udr_catalog_resolve(out, c, ref);
	if ((rc = udr_time_parse(&ms, at)) != 0)
		return rc;
	return udr_catalog_resolve_at(out, c, ref, ms);
}

static void print_refs(const udr_ref *refs, size_t n, int json)
{
	if (json) {
		fputc('[', stdout);
		for (size_t i = 0; i < n; i++) {
			fputs(i ? ", {\"name\": " : "{\"name\": ", stdout);
			cli_json_string(stdout, refs[i].name);
			printf(", \"commit\": %" PRIu64 "}", refs[i].commit);
		}
		fputs("]\n", stdout);
		return;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s %" PRIu64 "\n", refs[i].name, refs[i].commit);
}

static int list_refs(cli_ctx *ctx, int kind, int json)
{
	udr_db *db;
	udr_ref *refs = NULL;
	size_t n = 0;
	int rc;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if ((rc = udr_catalog_refs(&refs, &n, udr_db_catalog(db), kind)) == 0)
		print_refs(refs, n, json);
	else
		rc = cli_fail(rc);
	udr_ref_array_free(refs, n);
	udr_db_close(db);
	return rc;
}

int cli_cmd_branch(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("branch");
	struct ref_opts o;
	const char *sub, *name;
	udr_db *db = NULL;
	uint64_t seq = 0, target = 0;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	sub = NOPERANDS(argc) ? argv[optind] : "list";
	if (strcmp(sub, "list") == 0) {
		rc = NOPERANDS(argc) > 1 ? cli_usage_error(self, "too many arguments")
		                         : list_refs(ctx, UDR_REF_BRANCH, o.json);
		goto out;
	}
	if (strcmp(sub, "create") != 0 && strcmp(sub, "delete") != 0 && strcmp(sub, "reset") != 0) {
		rc = cli_usage_error(self, "unknown subcommand '%s' (list, create, delete or reset)", sub);
		goto out;
	}
	if (NOPERANDS(argc) != 2) {
		rc = cli_usage_error(self, NOPERANDS(argc) < 2 ? "missing NAME" : "too many arguments");
		goto out;
	}
	name = argv[optind + 1];
	if (strcmp(sub, "reset") == 0 && !o.from) {
		rc = cli_usage_error(self, "branch reset needs --to REF");
		goto out;
	}
	if (strcmp(sub, "delete") == 0 && (o.from || o.at)) {
		rc = cli_usage_error(self, "branch delete takes no --from, --to or --at");
		goto out;
	}
	if ((rc = udr_ref_name_check(name)) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if (strcmp(sub, "delete") == 0) {
		rc = udr_branch_delete(&seq, udr_db_catalog(db), name);
	} else {
		char ref[40];
		rc = resolve(&target, udr_db_catalog(db), o.from ? o.from : "branch:main", o.at);
		if (rc == 0 && target == 0) {
			cli_errorf("branch main has no commits yet: commit something first");
			rc = CLI_EXIT_NOTFOUND;
			goto out;
		}
		snprintf(ref, sizeof(ref), "commit:%" PRIu64, target);
		if (rc == 0)
			rc = strcmp(sub, "create") == 0 ? udr_branch_create(&seq, udr_db_catalog(db), name, ref)
			                                : udr_branch_reset(&seq, udr_db_catalog(db), name, ref);
	}
	if (rc != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if (strcmp(sub, "delete") == 0)
		printf("deleted branch %s (commit %" PRIu64 ")\n", name, seq);
	else
		printf("%s branch %s at commit %" PRIu64 " (commit %" PRIu64 ")\n",
		       strcmp(sub, "create") == 0 ? "created" : "reset", name, record_parent(udr_db_catalog(db), seq, target),
		       seq);
out:
	udr_db_close(db);
	ref_opts_free(&o);
	return rc;
}

int cli_cmd_tag(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("tag");
	struct ref_opts o;
	const char *sub, *name;
	udr_db *db = NULL;
	uint64_t seq = 0, target = 0;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	sub = NOPERANDS(argc) ? argv[optind] : "list";
	if (strcmp(sub, "list") == 0) {
		rc = NOPERANDS(argc) > 1 ? cli_usage_error(self, "too many arguments") : list_refs(ctx, UDR_REF_TAG, o.json);
		goto out;
	}
	if (strcmp(sub, "create") != 0 && strcmp(sub, "delete") != 0) {
		rc = cli_usage_error(self, "unknown subcommand '%s' (list, create or delete)", sub);
		goto out;
	}
	if (NOPERANDS(argc) < 2 || NOPERANDS(argc) > (strcmp(sub, "create") == 0 ? 3 : 2)) {
		rc = cli_usage_error(self, NOPERANDS(argc) < 2 ? "missing NAME" : "too many arguments");
		goto out;
	}
	name = argv[optind + 1];
	if ((rc = udr_ref_name_check(name)) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if (strcmp(sub, "delete") == 0) {
		if ((rc = udr_tag_delete(&seq, udr_db_catalog(db), name)) == 0)
			printf("deleted tag %s (commit %" PRIu64 ")\n", name, seq);
	} else {
		char ref[40];
		const char *what = NOPERANDS(argc) == 3 ? argv[optind + 2] : "branch:main";
		if ((rc = resolve(&target, udr_db_catalog(db), what, o.at)) == 0) {
			snprintf(ref, sizeof(ref), "commit:%" PRIu64, target);
			if (target == 0) {
				cli_errorf("branch main has no commits yet: commit something first");
				rc = CLI_EXIT_NOTFOUND;
				goto out;
			}
			if ((rc = udr_tag_create(&seq, udr_db_catalog(db), name, ref)) == 0)
				printf("tagged commit %" PRIu64 " as %s (commit %" PRIu64 ")\n",
				       record_parent(udr_db_catalog(db), seq, target), name, seq);
		}
	}
	if (rc < 0)
		rc = cli_fail(rc);
out:
	udr_db_close(db);
	ref_opts_free(&o);
	return rc;
}

int cli_cmd_reflog(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("reflog");
	struct ref_opts o;
	udr_reflog_entry *e = NULL;
	size_t n = 0;
	uint64_t limit = 0;
	udr_db *db = NULL;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) > 1) {
		rc = cli_usage_error(self, "too many arguments");
		goto out;
	}
	if (o.limit && (rc = cli_parse_limit(&limit, o.limit)) != 0)
		goto out;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	rc = udr_branch_reflog(&e, &n, udr_db_catalog(db), NOPERANDS(argc) ? argv[optind] : "main", (size_t)limit);
	if (rc != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if (o.json)
		fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		char when[80];
		cli_format_time(when, e[i].time_ms);
		if (o.json) {
			printf("%s{\"seq\": %" PRIu64 ", \"op\": ", i ? ", " : "", e[i].seq);
			cli_json_string(stdout, e[i].op);
			printf(", \"head\": %" PRIu64 ", \"old\": %" PRIu64 ", \"time\": \"%s\", \"time_ms\": %" PRId64
			       ", \"author\": ",
			       e[i].head, e[i].old, when, e[i].time_ms);
			cli_json_string(stdout, e[i].author);
			fputs(", \"message\": ", stdout);
			if (e[i].message)
				cli_json_string(stdout, e[i].message);
			else
				fputs("null", stdout);
			fputc('}', stdout);
		} else {
			printf("%" PRIu64 " %s %" PRIu64 " -> %" PRIu64 " %s %s\n", e[i].seq, e[i].op, e[i].old, e[i].head,
			       when, e[i].author);
		}
	}
	if (o.json)
		fputs("]\n", stdout);
out:
	udr_reflog_free(e, n);
	udr_db_close(db);
	ref_opts_free(&o);
	return rc;
}

static int strategy_of(int *out, const char *s)
{
	if (strcmp(s, "ours") == 0)
		*out = UDR_MERGE_OURS;
	else if (strcmp(s, "theirs") == 0)
		*out = UDR_MERGE_THEIRS;
	else
		return -1;
	return 0;
}

/* "TABLE=VALUE": the table (allocated) and the value; NULL with a usage error. */
static char *table_eq(const char **value, const cli_command *self, const char *opt, const char *arg, int *rc)
{
	const char *eq = strchr(arg, '=');
	char *t;
	if (!eq || eq == arg || !eq[1]) {
		*rc = cli_usage_error(self, "%s takes TABLE=VALUE, not '%s'", opt, arg);
		return NULL;
	}
	if (!(t = strndup(arg, (size_t)(eq - arg)))) {
		cli_errorf("out of memory");
		*rc = CLI_EXIT_IO;
		return NULL;
	}
	if ((*rc = cli_check_table(t)) != 0) {
		free(t);
		return NULL;
	}
	*value = eq + 1;
	return t;
}

static void print_merge(const udr_merge_result *m, int json, int dry_run)
{
	if (json) {
		printf("{\"commit\": %" PRIu64 ", \"base\": %" PRIu64 ", \"ours\": %" PRIu64 ", \"theirs\": %" PRIu64
		       ", \"up_to_date\": %s, \"fast_forward\": %s, \"dry_run\": %s, \"conflicts\": %zu, \"tables\": [",
		       m->seq, m->base, m->ours, m->theirs, m->up_to_date ? "true" : "false",
		       m->fast_forward ? "true" : "false", dry_run ? "true" : "false", m->nconflicts);
		for (size_t i = 0; i < m->ntables; i++) {
			const udr_merge_table *t = &m->tables[i];
			fputs(i ? ", {\"table\": " : "{\"table\": ", stdout);
			cli_json_string(stdout, t->table);
			printf(", \"base\": %" PRIu64 ", \"ours\": %" PRIu64 ", \"theirs\": %" PRIu64 ", \"result\": %" PRIu64
			       ", \"conflict\": %s",
			       t->base, t->ours, t->theirs, t->result, t->conflict ? "true" : "false");
			if (t->rowlevel)
				printf(", \"rows\": {\"ours\": %" PRIu64 ", \"theirs\": %" PRIu64 ", \"same\": %" PRIu64
				       ", \"cells\": %" PRIu64 ", \"conflict\": %" PRIu64 "}",
				       t->rows_ours, t->rows_theirs, t->rows_same, t->rows_cells, t->rows_conflict);
			if (t->note) {
				fputs(", \"note\": ", stdout);
				cli_json_string(stdout, t->note);
			}
			fputc('}', stdout);
		}
		fputs("]}\n", stdout);
		return;
	}
	if (m->up_to_date)
		printf("already up to date\n");
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		if (t->conflict && t->rowlevel)
			printf("conflict %s: %" PRIu64 " row%s changed differently on both sides (base %" PRIu64 ", ours %" PRIu64
			       ", theirs %" PRIu64 ")\n",
			       t->table, t->rows_conflict, t->rows_conflict == 1 ? "" : "s", t->base, t->ours, t->theirs);
		else if (t->conflict)
			printf("conflict %s: base %" PRIu64 ", ours %" PRIu64 ", theirs %" PRIu64 "%s%s\n", t->table, t->base,
			       t->ours, t->theirs, t->note ? ": " : "", t->note ? t->note : "");
		else if (t->rowlevel)
			printf("%s %s row by row: %" PRIu64 " row%s from theirs, %" PRIu64 " from ours, %" PRIu64
			       " the same on both, %" PRIu64 " cell by cell%s\n",
			       dry_run ? "would merge" : "merged", t->table, t->rows_theirs, t->rows_theirs == 1 ? "" : "s",
			       t->rows_ours, t->rows_same, t->rows_cells, t->result == t->ours ? " (ours unchanged)" : "");
		else if (t->result != t->ours)
			printf("%s %s: %" PRIu64 " -> %" PRIu64 "\n", dry_run ? "would take" : "took", t->table, t->ours,
			       t->result);
		else
			printf("kept %s: %" PRIu64 " (theirs %" PRIu64 ")\n", t->table, t->ours, t->theirs);
	}
	if (m->seq)
		printf("%s commit %" PRIu64 "\n", m->fast_forward ? "fast-forward" : "merge", m->seq);
	else if (dry_run && !m->up_to_date && m->nconflicts == 0)
		printf("dry run: nothing written\n");
}

/* udr merge --continue | --abort [--into BRANCH] */
static int merge_resume(cli_ctx *ctx, const cli_command *self, const struct ref_opts *o, int argc)
{
#ifdef UDR_HAVE_QUERY
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_merge_result *m = NULL;
	int rc;
	if (o->cont && o->abort_)
		return cli_usage_error(self, "--continue and --abort exclude each other");
	if (NOPERANDS(argc) != 0)
		return cli_usage_error(self, "--continue and --abort take no SOURCE (the recorded merge is used)");
	if (o->nkeys || o->nstricts || o->ntables || o->strategy || o->dry_run)
		return cli_usage_error(self, "--continue and --abort use the recorded merge's options");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if ((rc = udr_query_open(&q, db, NULL)) == 0) {
		if (o->abort_) {
			if ((rc = udr_query_merge_abort(q, o->into)) == 0)
				printf("merge into %s aborted: its record removed\n", o->into ? o->into : "main");
		} else {
			rc = udr_query_merge_continue(&m, q, o->into);
			if (m)
				print_merge(m, o->json, 0);
		}
	}
	udr_merge_result_free(m);
	udr_query_close(q);
	udr_db_close(db);
	return rc ? cli_fail(rc) : 0;
#else
	(void)ctx;
	(void)o;
	(void)argc;
	return cli_usage_error(self, "--continue and --abort need the query module (this udr was built without it)");
#endif
}

int cli_cmd_merge(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("merge");
	struct ref_opts o;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	char **names = NULL, **knames = NULL, **snames = NULL;
	const char **kcols = NULL;
	int *strat = NULL, *strict = NULL;
	udr_db *db = NULL;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	if (o.cont || o.abort_) {
		rc = merge_resume(ctx, self, &o, argc);
		goto out;
	}
	if (NOPERANDS(argc) != 1) {
		rc = cli_usage_error(self, NOPERANDS(argc) ? "too many arguments" : "missing SOURCE");
		goto out;
	}
	if (o.strategy && strategy_of(&mo.strategy, o.strategy) < 0) {
		rc = cli_usage_error(self, "--strategy must be ours or theirs");
		goto out;
	}
	if (!(names = calloc(o.ntables + 1, sizeof(*names))) || !(strat = calloc(o.ntables + 1, sizeof(*strat))) ||
	    !(knames = calloc(o.nkeys + 1, sizeof(*knames))) || !(kcols = calloc(o.nkeys + 1, sizeof(*kcols))) ||
	    !(snames = calloc(o.nstricts + 1, sizeof(*snames))) || !(strict = calloc(o.nstricts + 1, sizeof(*strict)))) {
		cli_errorf("out of memory");
		rc = CLI_EXIT_IO;
		goto out;
	}
	for (size_t i = 0; i < o.ntables; i++) {
		const char *v;
		if (!(names[i] = table_eq(&v, self, "--table", o.tables[i], &rc)))
			goto out;
		if (strategy_of(&strat[i], v) < 0) {
			rc = cli_usage_error(self, "--table takes TABLE=ours or TABLE=theirs, not '%s'", o.tables[i]);
			goto out;
		}
	}
	for (size_t i = 0; i < o.nkeys; i++)
		if (!(knames[i] = table_eq(&kcols[i], self, "--key", o.keys[i], &rc)))
			goto out;
	for (size_t i = 0; i < o.nstricts; i++) {
		const char *v;
		if (!(snames[i] = table_eq(&v, self, "--strictness", o.stricts[i], &rc)))
			goto out;
#ifdef UDR_HAVE_QUERY
		if (strcmp(v, "table") == 0)
			strict[i] = UDR_STRICT_TABLE;
		else if (strcmp(v, "row") == 0)
			strict[i] = UDR_STRICT_ROW;
		else if (strcmp(v, "cell") == 0)
			strict[i] = UDR_STRICT_CELL;
		else {
			rc = cli_usage_error(self, "--strictness takes TABLE=table, TABLE=row or TABLE=cell, not '%s'",
			                     o.stricts[i]);
			goto out;
		}
#endif
	}
	mo.tables = (const char *const *)names;
	mo.table_strategies = strat;
	mo.ntables = o.ntables;
	mo.dry_run = o.dry_run;
	mo.message = o.message;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
#ifdef UDR_HAVE_QUERY
	{
		udr_rowmerge_options ro = UDR_ROWMERGE_OPTIONS_INIT;
		udr_query *q = NULL;
		ro.merge = mo;
		ro.key_tables = (const char *const *)knames;
		ro.keys = kcols;
		ro.nkeys = o.nkeys;
		ro.strict_tables = (const char *const *)snames;
		ro.strictness = strict;
		ro.nstrict = o.nstricts;
		if ((rc = udr_query_open(&q, db, NULL)) == 0)
			rc = udr_query_merge(&m, q, argv[optind], o.into, &ro);
		udr_query_close(q);
	}
#else
	if (o.nkeys || o.nstricts) {
		rc = cli_usage_error(self, "--key and --strictness need the query module (this udr was built without it)");
		goto out;
	}
	rc = udr_merge(&m, udr_db_catalog(db), argv[optind], o.into, &mo);
#endif
	if (m)
		print_merge(m, o.json, o.dry_run);
	if (rc != 0)
		rc = cli_fail(rc);
out:
	udr_merge_result_free(m);
	for (size_t i = 0; names && i < o.ntables; i++)
		free(names[i]);
	for (size_t i = 0; knames && i < o.nkeys; i++)
		free(knames[i]);
	for (size_t i = 0; snames && i < o.nstricts; i++)
		free(snames[i]);
	free(names);
	free(knames);
	free(kcols);
	free(snames);
	free(strict);
	free(strat);
	udr_db_close(db);
	ref_opts_free(&o);
	return rc;
}

/* Row counts of one table between two versions (0: absent): rows before and
 * after, and the rows only the new or only the old version holds, compared
 * as multisets (a changed row is one added and one removed); added/removed
 * -1 when the schemas differ. */
struct row_counts {
	int64_t old_rows, new_rows, added, removed;
};

#ifdef UDR_HAVE_QUERY
/* "TABLE@commit:N" quoted as an SQL identifier: the table as commit N has
 * it (whichever branch made N). */
static int quoted_ref(char *buf, size_t cap, const char *table, uint64_t commit)
{
	size_t n = 0;
	buf[n++] = '"';
	for (const char *p = table; *p; p++) {
		if (n + 3 >= cap)
			return -1;
		if (*p == '"')
			buf[n++] = '"';
		buf[n++] = *p;
	}
	return snprintf(buf + n, cap - n, "@commit:%" PRIu64 "\"", commit) >= (int)(cap - n) ? -1 : 0;
}

static int64_t first_int(udr_result *r, size_t col)
{
	udr_value x;
	return udr_result_get(&x, r, 0, col) == 0 && x.type == UDR_TYPE_INT64 ? x.i64 : -1;
}

/* 1: the two references read as the same columns (names and types, in
 * order); 0: they do not; < 0: an error.  EXCEPT ALL alone would compare
 * rows by position with implicit casts (a renamed column, or INTEGER made
 * VARCHAR, counted as no change). */
/* 1 when a and b have the same columns (names, types, order), 0 when not,
 * or an error.  With 1, *signs (malloc'd) holds ", signbit(\"c\")" for each
 * float column c (or is ""): EXCEPT takes 0.0 and -0.0, NaN and -NaN for
 * the same, while SQL writes, keyed imports and diff-rows do not. */
static int same_columns(udr_query *q, const char *a, const char *b, char **signs)
{
	char sql[4 * UDR_TABLE_NAME_MAX + 128];
	udr_result *ra = NULL, *rb = NULL;
	size_t len = 0, cap = 1;
	int rc, same;
	*signs = NULL;
	snprintf(sql, sizeof(sql), "SELECT * FROM %s LIMIT 0", a);
	if ((rc = udr_query_sql(&ra, q, sql, NULL, 0)) != 0)
		return rc;
	snprintf(sql, sizeof(sql), "SELECT * FROM %s LIMIT 0", b);
	if ((rc = udr_query_sql(&rb, q, sql, NULL, 0)) != 0) {
		udr_result_free(ra);
		return rc;
	}
	same = udr_result_column_count(ra) == udr_result_column_count(rb);
	for (size_t i = 0; same && i < udr_result_column_count(ra); i++) {
		const char *na = udr_result_column_name(ra, i), *nb = udr_result_column_name(rb, i);
		const char *ta = udr_result_column_type_name(ra, i), *tb = udr_result_column_type_name(rb, i);
		same = na && nb && ta && tb && strcmp(na, nb) == 0 && strcmp(ta, tb) == 0;
		if (same && (strstr(ta, "DOUBLE") || strstr(ta, "FLOAT"))) {
			/* a float: its sign bit; floats inside lists, structs and
			 * maps: the text of the value ("-0.0", "-nan") */
			bool top = strcmp(ta, "DOUBLE") == 0 || strcmp(ta, "FLOAT") == 0;
			size_t need = len + 2 * strlen(na) + 32;
			char *p = need > cap ? realloc(*signs, need) : *signs;
			if (!p) {
				same = -1;
				break;
			}
			*signs = p;
			cap = need > cap ? need : cap;
			len += (size_t)sprintf(p + len, top ? ", signbit(\"" : ", CAST(\"");
			for (const char *c = na; *c; c++) {
				if (*c == '"')
					p[len++] = '"';
				p[len++] = *c;
			}
			len += (size_t)sprintf(p + len, top ? "\")" : "\" AS VARCHAR)");
		}
	}
	udr_result_free(ra);
	udr_result_free(rb);
	if (same == 1 && !*signs && !(*signs = calloc(1, 1)))
		same = -1;
	if (same != 1) {
		free(*signs);
		*signs = NULL;
	}
	if (same < 0) {
		cli_errorf("out of memory");
		return UDR_ENOMEM;
	}
	return same;
}

/* 1: version ver of table is a drop (DROP TABLE: no rows, the table absent) */
static int is_drop(udr_catalog *cat, const char *table, uint64_t ver)
{
	udr_version *v = NULL;
	int rc;
	if (!ver)
		return 0;
	if ((rc = udr_catalog_get_version(&v, cat, table, ver)) < 0)
		return rc;
	rc = udr_version_is_dropped(v) != 0;
	udr_version_free(v);
	return rc;
}

static int count_rows(struct row_counts *c, udr_query *q, udr_catalog *cat, const udr_table_diff *d, uint64_t c1,
                      uint64_t c2)
{
	char a[2 * UDR_TABLE_NAME_MAX + 48], b[2 * UDR_TABLE_NAME_MAX + 48], sql[16 * UDR_TABLE_NAME_MAX + 512];
	udr_result *r = NULL;
	uint64_t vold = d->old_version, vnew = d->new_version;
	char *signs = NULL;
	int rc;
	memset(c, 0, sizeof(*c));
	/* a side where the table is dropped holds no rows (reading it is "not found") */
	if ((rc = is_drop(cat, d->table, vold)) < 0)
		return rc;
	if (rc)
		vold = 0;
	if ((rc = is_drop(cat, d->table, vnew)) < 0)
		return rc;
	if (rc)
		vnew = 0;
	if (!vold && !vnew)
		return 0;
	/* names are at most UDR_TABLE_NAME_MAX bytes: they fit, quotes doubled */
	if ((vold && quoted_ref(a, sizeof(a), d->table, c1) < 0) || (vnew && quoted_ref(b, sizeof(b), d->table, c2) < 0))
		abort();
	if (!vold || !vnew) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", vold ? a : b);
		if ((rc = udr_query_sql(&r, q, sql, NULL, 0)) != 0)
			return rc;
		if (vold)
			c->old_rows = c->removed = first_int(r, 0);
		else
			c->new_rows = c->added = first_int(r, 0);
		udr_result_free(r);
		return 0;
	}
	if ((rc = same_columns(q, a, b, &signs)) < 0)
		return rc; /* damage (exit 4), I/O: never a partial answer */
	if (rc == 1) {
		size_t n = 4 * strlen(signs) + 6 * sizeof(a) + 256;
		char *big = malloc(n);
		if (!big) {
			free(signs);
			cli_errorf("out of memory");
			return UDR_ENOMEM;
		}
		snprintf(big, n,
		         "SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s), "
		         "(SELECT count(*) FROM (SELECT *%s FROM %s EXCEPT ALL SELECT *%s FROM %s)), "
		         "(SELECT count(*) FROM (SELECT *%s FROM %s EXCEPT ALL SELECT *%s FROM %s))",
		         a, b, signs, b, signs, a, signs, a, signs, b);
		free(signs);
		rc = udr_query_sql(&r, q, big, NULL, 0);
		free(big);
		if (rc == 0)
			rc = 1;
	}
	if (rc == 1) {
		c->old_rows = first_int(r, 0);
		c->new_rows = first_int(r, 1);
		c->added = first_int(r, 2);
		c->removed = first_int(r, 3);
		udr_result_free(r);
		return 0;
	}
	if (rc != 0 && rc != UDR_EINVAL)
		return rc; /* damage (exit 4), I/O: never a partial answer */
	/* the schemas differ (EXCEPT needs the same columns): counts only */
	udr_error_clear();
	snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s)", a, b);
	if ((rc = udr_query_sql(&r, q, sql, NULL, 0)) != 0)
		return rc;
	c->old_rows = first_int(r, 0);
	c->new_rows = first_int(r, 1);
	c->added = c->removed = -1;
	udr_result_free(r);
	return 0;
}
#endif

static void print_count(int64_t v)
{
	if (v < 0)
		fputs("null", stdout);
	else
		printf("%" PRId64, v);
}

int cli_cmd_diff(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("diff");
	struct ref_opts o;
	udr_table_diff *d = NULL;
	struct row_counts *rc_rows = NULL;
	size_t n = 0;
	udr_db *db = NULL;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 2) {
		rc = cli_usage_error(self, NOPERANDS(argc) < 2 ? "missing REF" : "too many arguments");
		goto out;
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if ((rc = udr_catalog_diff(&d, &n, udr_db_catalog(db), argv[optind], argv[optind + 1])) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if (o.rows) {
#ifdef UDR_HAVE_QUERY
		udr_query *q = NULL;
		uint64_t c1 = 0, c2 = 0;
		/* every count first: a damaged version fails the command before
		 * anything is printed */
		if (!(rc_rows = calloc(n ? n : 1, sizeof(*rc_rows)))) {
			cli_errorf("out of memory");
			rc = CLI_EXIT_IO;
			goto out;
		}
		if ((rc = udr_catalog_resolve(&c1, udr_db_catalog(db), argv[optind])) == 0 &&
		    (rc = udr_catalog_resolve(&c2, udr_db_catalog(db), argv[optind + 1])) == 0)
			rc = udr_query_open(&q, db, NULL);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = count_rows(&rc_rows[i], q, udr_db_catalog(db), &d[i], c1, c2);
		udr_query_close(q);
		if (rc != 0) {
			rc = cli_fail(rc);
			goto out;
		}
#else
		rc = cli_usage_error(self, "--rows needs SQL (this udr was built without DuckDB)");
		goto out;
#endif
	}
	if (o.json)
		fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		const char *what = d[i].old_version == 0 ? "added" : d[i].new_version == 0 ? "removed" : "changed";
		if (o.json) {
			fputs(i ? ", {\"table\": " : "{\"table\": ", stdout);
			cli_json_string(stdout, d[i].table);
			printf(", \"change\": \"%s\", \"old\": %" PRIu64 ", \"new\": %" PRIu64, what, d[i].old_version,
			       d[i].new_version);
			if (rc_rows) {
				fputs(", \"rows_old\": ", stdout);
				print_count(rc_rows[i].old_rows);
				fputs(", \"rows_new\": ", stdout);
				print_count(rc_rows[i].new_rows);
				fputs(", \"rows_added\": ", stdout);
				print_count(rc_rows[i].added);
				fputs(", \"rows_removed\": ", stdout);
				print_count(rc_rows[i].removed);
			}
			fputc('}', stdout);
		} else {
			printf("%s %s: %" PRIu64 " -> %" PRIu64, what, d[i].table, d[i].old_version, d[i].new_version);
			if (rc_rows && rc_rows[i].added >= 0)
				printf("  rows %" PRId64 " -> %" PRId64 " (+%" PRId64 " -%" PRId64 ")", rc_rows[i].old_rows,
				       rc_rows[i].new_rows, rc_rows[i].added, rc_rows[i].removed);
			else if (rc_rows)
				printf("  rows %" PRId64 " -> %" PRId64 " (schema changed)", rc_rows[i].old_rows,
				       rc_rows[i].new_rows);
			fputc('\n', stdout);
		}
	}
	if (o.json)
		fputs("]\n", stdout);
out:
	free(rc_rows);
	udr_table_diff_free(d, n);
	udr_db_close(db);
	ref_opts_free(&o);
	return rc;
}

int cli_cmd_conflicts(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("conflicts");
	struct ref_opts o;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 0) {
		rc = cli_usage_error(self, "too many arguments");
		goto out;
	}
#ifdef UDR_HAVE_QUERY
	{
		udr_db *db = NULL;
		udr_query *q = NULL;
		udr_result *r = NULL;
		udr_value p = udr_value_text(o.into ? o.into : "main");
		if ((rc = cli_open_db(&db, ctx)) != 0)
			goto out;
		if (o.into) {
			/* an unknown branch is an error, not "no conflicts" */
			char *ref = malloc(strlen(o.into) + 8);
			uint64_t at;
			if (!ref) {
				udr_db_close(db);
				rc = cli_fail(UDR_ENOMEM);
				goto out;
			}
			sprintf(ref, "branch:%s", o.into);
			rc = udr_catalog_resolve(&at, udr_db_catalog(db), ref);
			free(ref);
			if (rc != 0) {
				udr_db_close(db);
				rc = cli_fail(rc);
				goto out;
			}
		}
		if ((rc = udr_query_open(&q, db, NULL)) == 0)
			rc = udr_query_sql(&r, q,
			                   "SELECT \"table\", key, base, ours, theirs, resolved FROM udr_conflicts "
			                   "WHERE target = ? ORDER BY \"table\", key::VARCHAR",
			                   &p, 1);
		if (rc == 0)
			rc = udr_result_write(r, 1, o.json ? UDR_OUTPUT_JSON : UDR_OUTPUT_TABLE);
		udr_result_free(r);
		udr_query_close(q);
		udr_db_close(db);
		rc = rc ? cli_fail(rc) : 0;
	}
#else
	rc = cli_usage_error(self, "udr conflicts needs the query module (this udr was built without it)");
#endif
out:
	ref_opts_free(&o);
	return rc;
}

int cli_cmd_resolve(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("resolve");
	struct ref_opts o;
	const char *key = NULL;
	int rc = parse(&o, ctx, self, argc, argv);
	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 1) {
		rc = cli_usage_error(self, NOPERANDS(argc) ? "too many arguments" : "missing TABLE");
		goto out;
	}
	if ((rc = cli_check_table(argv[optind])) != 0)
		goto out;
	if (o.nkeys > 1) {
		rc = cli_usage_error(self, "one --key VALUE at a time");
		goto out;
	}
	key = o.nkeys ? o.keys[0] : NULL;
	if (o.side < 0 || (!o.side + !o.with + !o.sql) != 2 || (key && !o.side)) {
		rc = cli_usage_error(self, "give one of --ours, --theirs (with --key VALUE for one row), --with FILE "
		                           "or --sql QUERY");
		goto out;
	}
#ifdef UDR_HAVE_QUERY
	{
		udr_db *db = NULL;
		udr_query *q = NULL;
		char *sql = NULL;
		int side = o.side == OPT_OURS ? UDR_MERGE_OURS : o.side == OPT_THEIRS ? UDR_MERGE_THEIRS : 0;
		if (o.with && (rc = udr_query_file_select(&sql, o.with, UDR_FORMAT_AUTO)) != 0) {
			/* the file read as import reads it ('g/b[1].csv' was a glob,
			 * an .ndjson file was read as CSV) */
			rc = cli_fail(rc);
			goto out;
		}
		if ((rc = cli_open_db(&db, ctx)) != 0) {
			udr_free(sql);
			goto out;
		}
		if ((rc = udr_query_open(&q, db, NULL)) == 0)
			rc = udr_query_merge_resolve(q, o.into, argv[optind], side, key, sql ? sql : o.sql);
		if (rc == 0)
			printf("resolved %s%s%s: %s\n", argv[optind], key ? " key " : "", key ? key : "",
			       side == UDR_MERGE_OURS ? "ours" : side == UDR_MERGE_THEIRS ? "theirs" : "a resolved version");
		udr_free(sql);
		udr_query_close(q);
		udr_db_close(db);
		rc = rc ? cli_fail(rc) : 0;
	}
#else
	rc = cli_usage_error(self, "udr resolve needs the query module (this udr was built without it)");
#endif
out:
	ref_opts_free(&o);
	return rc;
}
