/*
 * cli/cmd_catalog.c - the catalog commands: commit, show, versions, tables.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <udr/gc.h>

#include <udr/refs.h>
#include "cli.h"

#define NOPERANDS(argc) ((argc) - optind)

enum { OPT_META = CLI_OPT_FIRST, OPT_NEXT, OPT_JSON, OPT_FILE, OPT_SPEC, OPT_AT, OPT_BRANCH, OPT_ALLOW_EMPTY };

/* ---- commit ---- */

struct commit_opts {
	const char *message; /* NULL: none */
	char **meta;         /* KEY=VALUE arguments, in order */
	size_t nmeta;
	int next;
	const char *file; /* --file: store it and commit it */
	const char *spec; /* --spec: a multi-table commit */
	const char *branch; /* --branch: commit on it */
	int allow_empty;  /* --allow-empty: a version without chunks */
};

static int commit_opt(int opt, const char *arg, void *payload)
{
	struct commit_opts *o = payload;

	switch (opt) {
	case 'm':
		o->message = arg;
		break;
	case OPT_META:
		/* o->meta has room for argc entries: one per argument at most. */
		o->meta[o->nmeta++] = (char *)arg;
		break;
	case OPT_FILE:
		/* --file A --file B committed B alone, exit 0 */
		if (o->file)
			return cli_usage_error(cli_find_command("commit"), "--file can be given once (commit one "
			                                                  "file a version; several: --spec)");
		o->file = arg;
		break;
	case OPT_SPEC:
		o->spec = arg;
		break;
	case OPT_BRANCH:
		o->branch = arg;
		break;
	case OPT_ALLOW_EMPTY:
		o->allow_empty = 1;
		break;
	default:
		o->next = 1;
		break;
	}
	return -1;
}

/* Apply -m and --meta to v; returns an exit code. */
static int commit_apply_meta(udr_version *v, const struct commit_opts *o)
{
	size_t i;
	int rc;

	if (o->message && (rc = udr_version_set_message(v, o->message)) != 0)
		return cli_fail(rc);
	for (i = 0; i < o->nmeta; i++) {
		char *eq = strchr(o->meta[i], '=');

		if (!eq || eq == o->meta[i]) {
			cli_errorf("invalid --meta \"%s\" (expected KEY=VALUE with a non-empty KEY)",
			           o->meta[i]);
			return CLI_EXIT_USAGE;
		}
		*eq = '\0';
		/* --meta k=v --meta k=w kept w alone, exit 0 */
		rc = udr_version_get_meta(v, o->meta[i]) ? -2 : udr_version_set_meta(v, o->meta[i], eq + 1);
		if (rc == -2)
			cli_errorf("--meta %s given twice", o->meta[i]);
		*eq = '=';
		if (rc == -2)
			return CLI_EXIT_USAGE;
		if (rc)
			return cli_fail(rc);
	}
	return CLI_EXIT_OK;
}

/* Build the version from the operands TABLE [VERSION] HASH...; exit code. */
static int commit_build(udr_version **out, const struct commit_opts *o, int argc, char **argv)
{
	const char *table = argv[optind];
	uint64_t number = 0;
	udr_version *v = NULL;
	udr_hash h;
	int i = optind + 1, rc;

	if ((rc = cli_check_table(table)) != 0)
		return rc;
	if (!o->next && (rc = cli_parse_version(&number, argv[i++])) != 0)
		return rc;
	if ((rc = udr_version_new(&v, table, number)) != 0)
		return cli_fail(rc);
	for (; i < argc; i++) {
		if ((rc = cli_parse_hash(&h, argv[i])) != 0)
			goto fail;
		if ((rc = udr_version_add_chunk(v, &h)) != 0) {
			rc = cli_fail(rc);
			goto fail;
		}
	}
	if ((rc = commit_apply_meta(v, o)) != 0)
		goto fail;
	*out = v;
	return CLI_EXIT_OK;
fail:
	udr_version_free(v);
	return rc;
}

/*
 * Store FILE as the one chunk of v, with deltas against the table's latest
 * version when that is a single chunk (the usual "new version of a file").
 * Returns an exit code.
 */
static int commit_add_file(udr_version *v, const cli_ctx *ctx, udr_db *db, const char *file)
{
	udr_version *prev = NULL;
	udr_hash base, h;
	int has_base = 0;
	int rc = udr_catalog_get_version(&prev, udr_db_catalog(db), v->table, 0);

	if (rc == 0 && prev->nchunks == 1) {
		base = prev->chunks[0];
		has_base = 1;
	}
	udr_version_free(prev);
	if (rc && rc != UDR_ENOTFOUND)
		return cli_fail(rc);
	if ((rc = cli_put_input(&h, ctx, udr_db_store(db), file, has_base ? &base : NULL)) != 0)
		return rc;
	if ((rc = udr_version_add_chunk(v, &h)) != 0)
		return cli_fail(rc);
	return CLI_EXIT_OK;
}

int cli_cmd_commit(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "meta", required_argument, NULL, OPT_META },
		{ "next", no_argument, NULL, OPT_NEXT },
		{ "file", required_argument, NULL, OPT_FILE },
		{ "spec", required_argument, NULL, OPT_SPEC },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "allow-empty", no_argument, NULL, OPT_ALLOW_EMPTY },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("commit");
	struct commit_opts o = { NULL, NULL, 0, 0, NULL, NULL, NULL, 0 };
	udr_version *v = NULL;
	udr_db *db = NULL;
	udr_gc_hold *hold = NULL;
	int rc;

	o.meta = calloc((size_t)argc, sizeof(*o.meta));
	if (!o.meta) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	rc = cli_parse_options(ctx, self, argc, argv, "m:", longopts, commit_opt, &o);
	if (rc >= 0)
		goto out;
	if (o.spec) {
		if (NOPERANDS(argc) > 0 || o.next || o.file || o.message || o.nmeta || o.branch || o.allow_empty)
			rc = cli_usage_error(self, "--spec takes no TABLE, VERSION, HASH, --next, "
			                           "--file, -m, --meta, --branch or --allow-empty "
			                           "(they are in the spec)");
		else
			rc = cli_commit_spec(ctx, o.spec);
		goto out;
	}
	if (o.file && NOPERANDS(argc) > (o.next ? 1 : 2)) {
		rc = cli_usage_error(self, "--file cannot be combined with HASH operands");
		goto out;
	}
	if (NOPERANDS(argc) < (o.next ? 1 : 2)) {
		rc = cli_usage_error(self, NOPERANDS(argc) ? "missing VERSION (or --next)"
		                                           : "missing TABLE");
		goto out;
	}
	if ((rc = commit_build(&v, &o, argc, argv)) != 0)
		goto out;
	/* as git: a version with no data is almost always a forgotten HASH,
	 * and SQL cannot read it (no columns); only on request */
	if (!o.file && v->nchunks == 0 && !o.allow_empty) {
		cli_errorf("nothing to commit: no HASH given for table %s (give the chunks, or "
		           "--file PATH; --allow-empty commits a version without data)", v->table);
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if (o.file && o.branch && strcmp(o.branch, "main") != 0 && strcmp(o.branch, "branch:main") != 0) {
		/* the branch before the file is stored (it was, then the commit
		 * said not found) */
		uint64_t head = 0;
		char ref[512];
		snprintf(ref, sizeof(ref), "%s%s", strncmp(o.branch, "branch:", 7) == 0 ? "" : "branch:", o.branch);
		if ((rc = udr_catalog_resolve(&head, udr_db_catalog(db), ref)) != 0) {
			rc = cli_fail(rc);
			goto out;
		}
	}
	/* the put and the commit naming it, with no gc in between (udr/gc.h) */
	if (o.file && (rc = udr_gc_hold_begin(&hold, udr_db_store(db))) < 0) {
		rc = cli_fail(rc);
		goto out;
	}
	if (o.file && (rc = commit_add_file(v, ctx, db, o.file)) != 0)
		goto out;
	if (o.branch)
		rc = udr_catalog_commit_on(udr_db_catalog(db), v, o.branch, o.next);
	else if (o.next)
		rc = udr_catalog_commit_next(udr_db_catalog(db), v);
	else
		rc = udr_catalog_commit(udr_db_catalog(db), v);
	if (rc == 0)
		printf("%" PRIu64 "\n", v->version);
	else
		rc = cli_fail(rc);
out:
	udr_gc_hold_end(hold);
	udr_db_close(db);
	udr_version_free(v);
	free(o.meta);
	return rc;
}

/* ---- show ---- */

static void print_version_json(const udr_version *v)
{
	char when[80], hex[UDR_HASH_HEXSIZE + 1];
	size_t i;

	cli_format_time(when, v->created_ms);
	fputs("{\n  \"table\": ", stdout);
	cli_json_string(stdout, v->table);
	printf(",\n  \"version\": %" PRIu64 ",\n  \"parent\": %" PRIu64 ",\n", v->version,
	       v->parent);
	printf("  \"created\": \"%s\",\n  \"created_ms\": %" PRId64 ",\n", when, v->created_ms);
	fputs("  \"message\": ", stdout);
	if (v->message)
		cli_json_string(stdout, v->message);
	else
		fputs("null", stdout);
	fputs(",\n  \"metadata\": {", stdout);
	for (i = 0; i < v->nmeta; i++) {
		fputs(i ? ",\n    " : "\n    ", stdout);
		cli_json_string(stdout, v->meta[i].key);
		fputs(": ", stdout);
		cli_json_string(stdout, v->meta[i].value);
	}
	fputs(v->nmeta ? "\n  },\n  \"chunks\": [" : "},\n  \"chunks\": [", stdout);
	for (i = 0; i < v->nchunks; i++) {
		udr_hash_tohex(hex, &v->chunks[i]);
		printf("%s\"%s\"", i ? ",\n    " : "\n    ", hex);
	}
	fputs(v->nchunks ? "\n  ],\n" : "],\n", stdout);
	printf("  \"commit\": %" PRIu64 "\n}\n", v->commit_seq);
}

struct show_opts {
	int json;
	const char *at; /* --at TIME */
	const char *branch; /* --branch REF */
};

static int show_opt(int opt, const char *arg, void *payload)
{
	struct show_opts *o = payload;

	if (opt == OPT_AT)
		o->at = arg;
	else if (opt == OPT_BRANCH)
		o->branch = arg;
	else
		o->json = 1;
	return -1;
}

int cli_cmd_show(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "at", required_argument, NULL, OPT_AT },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("show");
	struct show_opts o = { 0, NULL, NULL };
	uint64_t number = 0;
	int64_t at_ms = 0;
	udr_version *v = NULL;
	udr_db *db;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, show_opt, &o);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) < 1 || NOPERANDS(argc) > 2)
		return cli_usage_error(self, NOPERANDS(argc) ? "too many arguments"
		                                             : "missing TABLE");
	if ((rc = cli_check_table(argv[optind])) != 0)
		return rc;
	if (NOPERANDS(argc) == 2 && o.at)
		return cli_usage_error(self, "give either VERSION or --at, not both");
	if (NOPERANDS(argc) == 2 && (rc = cli_parse_version(&number, argv[optind + 1])) != 0)
		return rc;
	if (o.at && (rc = udr_time_parse(&at_ms, o.at)) != 0)
		return cli_fail(rc);
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (o.branch) {
		/* the version on the ref (as of --at); a number is one version
		 * whatever branch made it */
		uint64_t commit = 0;
		char ref[40];
		rc = o.at ? udr_catalog_resolve_at(&commit, udr_db_catalog(db), o.branch, at_ms)
		          : udr_catalog_resolve(&commit, udr_db_catalog(db), o.branch);
		snprintf(ref, sizeof(ref), "commit:%" PRIu64, commit);
		if (rc == 0)
			rc = udr_catalog_get_version_on(&v, udr_db_catalog(db), argv[optind], number, ref);
	} else if (o.at)
		rc = udr_catalog_get_version_at_time(&v, udr_db_catalog(db), argv[optind], at_ms);
	else
		rc = udr_catalog_get_version(&v, udr_db_catalog(db), argv[optind], number);
	/* an expired version's chunks may be gone (GC.md 1.5): exit 6, naming
	 * the time --at resolved to it as SQL's t@TIME does */
	if (rc == 0 && !udr_version_is_dropped(v))
		rc = udr_version_readable_at(udr_db_catalog(db), v->table, v->version, o.at);
	if (rc == 0)
		print_version_json(v);
	else
		rc = cli_fail(rc);
	udr_version_free(v);
	udr_db_close(db);
	return rc;
}

/* ---- versions, tables ---- */

/* --json and --branch REF of versions and tables */
static const struct option list_longopts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "branch", required_argument, NULL, OPT_BRANCH },
	CLI_COMMON_LONGOPTS
};

int cli_cmd_versions(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("versions");
	uint64_t *list = NULL;
	size_t n = 0, i;
	udr_db *db;
	struct show_opts o = { 0, NULL, NULL };
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, list_longopts, show_opt, &o);
	int json;

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) != 1)
		return cli_usage_error(self, NOPERANDS(argc) ? "too many arguments"
		                                             : "missing TABLE");
	if ((rc = cli_check_table(argv[optind])) != 0)
		return rc;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	json = o.json;
	rc = o.branch ? udr_catalog_list_versions_on(&list, &n, udr_db_catalog(db), argv[optind], o.branch)
	              : udr_catalog_list_versions(&list, &n, udr_db_catalog(db), argv[optind]);
	if (rc) {
		rc = cli_fail(rc);
	} else if (json) {
		fputc('[', stdout);
		for (i = 0; i < n; i++)
			printf("%s%" PRIu64, i ? ", " : "", list[i]);
		fputs("]\n", stdout);
	} else {
		for (i = 0; i < n; i++) {
			/* a version that records a drop says so (the number stays
			 * readable: the drop itself has no rows) */
			udr_version *v = NULL;
			int dropped = udr_catalog_get_version(&v, udr_db_catalog(db), argv[optind], list[i]) == 0 &&
			              udr_version_is_dropped(v);

			udr_version_free(v);
			udr_error_clear();
			printf("%" PRIu64 "%s\n", list[i], dropped ? " (dropped)" : "");
		}
	}
	udr_free(list);
	udr_db_close(db);
	return rc;
}

int cli_cmd_tables(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("tables");
	char **names = NULL;
	size_t n = 0, i;
	udr_db *db;
	struct show_opts o = { 0, NULL, NULL };
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, list_longopts, show_opt, &o);
	int json = o.json;

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	/* dropped tables (DROP TABLE) are gone; their versions stay readable */
	rc = udr_catalog_list_live_tables(&names, &n, udr_db_catalog(db), o.branch);
	if (rc) {
		rc = cli_fail(rc);
	} else if (json) {
		fputc('[', stdout);
		for (i = 0; i < n; i++) {
			fputs(i ? ", " : "", stdout);
			cli_json_string(stdout, names[i]);
		}
		fputs("]\n", stdout);
	} else {
		for (i = 0; i < n; i++)
			printf("%s\n", names[i]);
	}
	udr_strarray_free(names, n);
	udr_db_close(db);
	return rc;
}
