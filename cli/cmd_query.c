/*
 * cli/cmd_query.c - the SQL commands over table versions: import, export,
 * sql, diff-rows.  They drive the query module (<udr/query.h>, DuckDB);
 * built without it (no UDR_HAVE_QUERY), each command only says so.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define NO_QUERY_MODULE "this udr was built without the query module (DuckDB)"

#ifndef UDR_HAVE_QUERY

/* --help still works (with a note); anything else is refused, exit 2. */
static int no_query(const char *name, int argc, char **argv)
{
	const cli_command *self = cli_find_command(name);
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_help(self);
			printf("\nNot available: %s.\n", NO_QUERY_MODULE);
			return CLI_EXIT_OK;
		}
	}
	cli_errorf("%s", NO_QUERY_MODULE);
	return CLI_EXIT_USAGE;
}

int cli_cmd_import(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return no_query("import", argc, argv);
}

int cli_cmd_export(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return no_query("export", argc, argv);
}

int cli_cmd_sql(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return no_query("sql", argc, argv);
}

int cli_cmd_optimize(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return no_query("optimize", argc, argv);
}

int cli_cmd_diff_rows(cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	return no_query("diff-rows", argc, argv);
}

#else /* UDR_HAVE_QUERY */

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <udr/query.h>

#define NOPERANDS(argc) ((argc) - optind)

enum { OPT_FORMAT = CLI_OPT_FIRST, OPT_APPEND, OPT_SQL, OPT_CSV, OPT_JSON, OPT_NDJSON,
       OPT_TABLE, OPT_KEY, OPT_META, OPT_THREADS, OPT_MEMORY, OPT_FULL, OPT_DELETED, OPT_SMALL,
       OPT_NO_COMPACT, OPT_BRANCH };

/* Everything the four commands accept; each lists only its own options. */
struct query_opts {
	int format;           /* --format: UDR_FORMAT_* */
	int output;           /* UDR_OUTPUT_* for results on standard output */
	int output_set;       /* --csv, --json, --ndjson or --table given */
	int append;           /* import --append */
	const char *message;  /* import -m */
	const char *sql;      /* import --sql */
	const char *out;      /* sql -o FILE */
	udr_value *params;    /* -p VALUE, room for argc */
	size_t nparams;
	char **keys;          /* diff-rows --key, each maybe COL,COL; room for argc */
	size_t nkeys;
	udr_query_options qo; /* --threads, --memory-limit */
	const char *branch;   /* import, export, sql, optimize --branch */
	udr_optimize_options opt; /* optimize --full, --deleted, --small-parts */
	int no_compact;           /* sql --no-compact */
};

static int parse_format(int *out, const char *name)
{
	static const struct { const char *name; int format; } formats[] = {
		{ "parquet", UDR_FORMAT_PARQUET }, { "csv", UDR_FORMAT_CSV },
		{ "json", UDR_FORMAT_JSON }, { "ndjson", UDR_FORMAT_NDJSON },
	};
	size_t i;

	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (strcmp(formats[i].name, name) == 0) {
			*out = formats[i].format;
			return CLI_EXIT_OK;
		}
	}
	cli_errorf("invalid --format \"%s\" (expected parquet, csv, json or ndjson)", name);
	return CLI_EXIT_USAGE;
}

/*
 * A parameter: text as given, or typed by a prefix (int:, float:, bool:,
 * text:), or NULL for exactly "null".  Text keeps pointing into argv.
 */
static int parse_param(udr_value *out, const char *arg)
{
	char *end = NULL;

	if (strcmp(arg, "null") == 0) {
		*out = udr_value_null();
	} else if (strncmp(arg, "int:", 4) == 0) {
		long long i;

		errno = 0;
		i = strtoll(arg + 4, &end, 10);
		if (!arg[4] || *end || errno)
			goto bad;
		*out = udr_value_int64((int64_t)i);
	} else if (strncmp(arg, "float:", 6) == 0) {
		double d;

		errno = 0;
		d = strtod(arg + 6, &end);
		/* ERANGE: too large, or too small for a double; a subnormal
		 * (1e-320) is a value, what underflows to 0 is not */
		if (!arg[6] || *end || (errno == ERANGE && (d == 0 || isinf(d))))
			goto bad;
		*out = udr_value_double(d);
	} else if (strncmp(arg, "bool:", 5) == 0) {
		if (strcmp(arg + 5, "true") == 0 || strcmp(arg + 5, "1") == 0)
			*out = udr_value_bool(1);
		else if (strcmp(arg + 5, "false") == 0 || strcmp(arg + 5, "0") == 0)
			*out = udr_value_bool(0);
		else
			goto bad;
	} else if (strncmp(arg, "text:", 5) == 0) {
		*out = udr_value_text(arg + 5);
	} else {
		*out = udr_value_text(arg);
	}
	return CLI_EXIT_OK;
bad:
	cli_errorf("invalid parameter \"%s\" (int:N, float:X, bool:true|false, text:S, null or text)",
	           arg);
	return CLI_EXIT_USAGE;
}

static int query_opt(int opt, const char *arg, void *payload)
{
	struct query_opts *o = payload;
	uint64_t n;
	int rc;

	switch (opt) {
	case OPT_FORMAT:
		return (rc = parse_format(&o->format, arg)) != 0 ? rc : -1;
	case OPT_APPEND:
		o->append = 1;
		break;
	case OPT_BRANCH:
		o->branch = arg;
		break;
	case 'm':
		o->message = arg;
		break;
	case OPT_SQL:
		o->sql = arg;
		break;
	case 'o':
		o->out = arg;
		break;
	case 'p':
		if ((rc = parse_param(&o->params[o->nparams], arg)) != 0)
			return rc;
		o->nparams++;
		break;
	case OPT_CSV:
		o->output = UDR_OUTPUT_CSV;
		o->output_set = 1;
		break;
	case OPT_JSON:
		o->output = UDR_OUTPUT_JSON;
		o->output_set = 1;
		break;
	case OPT_NDJSON:
		o->output = UDR_OUTPUT_NDJSON;
		o->output_set = 1;
		break;
	case OPT_TABLE:
		o->output = UDR_OUTPUT_TABLE;
		o->output_set = 1;
		break;
	case OPT_KEY:
		o->keys[o->nkeys++] = (char *)arg;
		break;
	case OPT_META:
		/* udr_import_options has no metadata entries (yet); refuse
		 * rather than drop them silently. */
		cli_errorf("--meta is not supported by import yet (only -m)");
		return CLI_EXIT_USAGE;
	case OPT_THREADS:
		if ((rc = cli_parse_uint(&n, arg, 1024, 0, "--threads")) != 0)
			return rc;
		o->qo.threads = (int)n;
		break;
	case OPT_MEMORY:
		o->qo.memory_limit = arg;
		break;
	case OPT_FULL:
		o->opt.full = 1;
		break;
	case OPT_NO_COMPACT:
		o->no_compact = 1;
		break;
	case OPT_DELETED:
		if ((rc = cli_parse_uint(&n, arg, 100, 0, "--deleted")) != 0)
			return rc;
		o->opt.deleted_pct = (unsigned int)n;
		break;
	case OPT_SMALL:
		if ((rc = cli_parse_uint(&n, arg, 1u << 30, 0, "--small-parts")) != 0)
			return rc;
		o->opt.small_parts = (unsigned int)n;
		break;
	default:
		return CLI_EXIT_USAGE;
	}
	return -1;
}

/* Session options every command accepts. */
#define QUERY_SESSION_LONGOPTS                                        \
	{ "threads", required_argument, NULL, OPT_THREADS },          \
	{ "memory-limit", required_argument, NULL, OPT_MEMORY }

/* Parse options; room for one parameter / key per argument.  -1 to go on. */
static int query_parse(struct query_opts *o, cli_ctx *ctx, const cli_command *self, int argc,
                       char **argv, const char *shortopts, const struct option *longopts)
{
	udr_query_options qo = UDR_QUERY_OPTIONS_INIT;
	udr_optimize_options opt = UDR_OPTIMIZE_OPTIONS_INIT;

	memset(o, 0, sizeof(*o));
	o->qo = qo;
	o->opt = opt;
	o->output = UDR_OUTPUT_TABLE;
	o->params = calloc((size_t)argc + 1, sizeof(*o->params));
	o->keys = calloc((size_t)argc + 1, sizeof(*o->keys));
	if (!o->params || !o->keys) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	return cli_parse_options(ctx, self, argc, argv, shortopts, longopts, query_opt, o);
}

static void query_opts_release(struct query_opts *o)
{
	free(o->params);
	free(o->keys);
}

/* Open the store (not creating it) and a query session; exit code. */
static int query_open(udr_db **db, udr_query **q, const cli_ctx *ctx, const struct query_opts *o)
{
	int rc;

	*db = NULL;
	*q = NULL;
	if ((rc = cli_open_db(db, ctx)) != 0)
		return rc;
	if ((rc = udr_query_open(q, *db, &o->qo)) != 0) {
		rc = cli_fail(rc);
		udr_db_close(*db);
		*db = NULL;
	}
	return rc;
}

static void query_close(udr_db *db, udr_query *q)
{
	udr_query_close(q);
	udr_db_close(db);
}

/*
 * Output to a pipe whose reader went away (`udr sql ... | head`) is not an
 * error: SIGPIPE is ignored and EPIPE ends the output quietly, exit 0.
 */
static int output_done(int rc)
{
	if (rc == UDR_EIO && errno == EPIPE)
		return CLI_EXIT_OK;
	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

/* Write a result to standard output in the chosen format; exit code. */
static int write_result(const udr_result *r, int output)
{
	int rc;

	/* the result goes straight to the descriptor: nothing may be buffered */
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	rc = udr_result_write(r, STDOUT_FILENO, output);
	return output_done(rc);
}

/* Stream a query's rows to standard output, batch by batch; exit code. */
static int stream_result(udr_query *q, const char *sql, const struct query_opts *o)
{
	udr_stream *s = NULL;
	int rc = udr_query_sql_stream(&s, q, sql, o->params, o->nparams);

	if (rc)
		return cli_fail(rc);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	rc = udr_stream_write(NULL, s, STDOUT_FILENO, o->output);
	rc = output_done(rc);
	udr_stream_free(s);
	return rc;
}

/* --key a,b --key c: one copy "a,b,c" (*buf) split on commas into *cols;
 * exit code (-1: go on). */
static int split_keys(char **buf, const char ***cols, size_t *ncols, const struct query_opts *o)
{
	size_t room = 0, i;
	char *save = NULL, *tok;

	*ncols = 0;
	for (i = 0; i < o->nkeys; i++)
		room += strlen(o->keys[i]) + 1;
	*buf = malloc(room + 1);
	*cols = calloc(room + 1, sizeof(**cols)); /* at most one name per byte */
	if (!*buf || !*cols) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	(*buf)[0] = '\0';
	for (i = 0; i < o->nkeys; i++) {
		strcat(*buf, o->keys[i]);
		strcat(*buf, ",");
	}
	for (tok = strtok_r(*buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		(*cols)[(*ncols)++] = tok;
	return -1;
}

/* ---- import ---- */

int cli_cmd_import(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "append", no_argument, NULL, OPT_APPEND },
		{ "message", required_argument, NULL, 'm' },
		{ "meta", required_argument, NULL, OPT_META },
		{ "sql", required_argument, NULL, OPT_SQL },
		{ "param", required_argument, NULL, 'p' },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "key", required_argument, NULL, OPT_KEY },
		QUERY_SESSION_LONGOPTS,
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("import");
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	struct query_opts o;
	udr_db *db = NULL;
	udr_query *q = NULL;
	uint64_t version = 0;
	const char *table;
	char *keybuf = NULL;
	const char **keys = NULL;
	size_t nkeys = 0;
	int rc = query_parse(&o, ctx, self, argc, argv, "m:p:", longopts);

	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) < 1) {
		rc = cli_usage_error(self, "missing TABLE");
		goto out;
	}
	if (o.sql && NOPERANDS(argc) > 1) {
		rc = cli_usage_error(self, "--sql takes no FILE operands");
		goto out;
	}
	if (!o.sql && NOPERANDS(argc) < 2) {
		rc = cli_usage_error(self, "missing FILE (or --sql QUERY)");
		goto out;
	}
	if (!o.sql && o.nparams) {
		rc = cli_usage_error(self, "-p/--param needs --sql");
		goto out;
	}
	if (o.sql && o.format) {
		rc = cli_usage_error(self, "--format applies to files, not to --sql");
		goto out;
	}
	if (o.nkeys && (o.sql || o.append)) {
		rc = cli_usage_error(self, "--key applies to files that are a full copy of the table "
		                           "(not to --sql or --append)");
		goto out;
	}
	if (o.nkeys && (rc = split_keys(&keybuf, &keys, &nkeys, &o)) >= 0)
		goto out;
	if (o.nkeys && !nkeys) {
		rc = cli_usage_error(self, "--key names no column");
		goto out;
	}
	rc = -1;
	table = argv[optind];
	if ((rc = cli_check_table(table)) != 0)
		goto out;
	io.format = o.format;
	io.mode = o.append ? UDR_IMPORT_APPEND : UDR_IMPORT_OVERWRITE;
	io.message = o.message;
	io.ref = o.branch;
	io.keys = keys;
	io.nkeys = nkeys;
	/* - is standard input (read once, as any pipe): it needs --format,
	 * and can be given once (twice, a file on stdin was imported twice) */
	for (int i = optind + 1, dash = 0; !o.sql && i < argc; i++) {
		if (strcmp(argv[i], "-") != 0)
			continue;
		if (o.format == UDR_FORMAT_AUTO || dash++) {
			rc = cli_usage_error(self, dash > 1 ? "- (standard input) can be given once"
			                                    : "- (standard input) needs --format");
			goto out;
		}
		argv[i] = "/dev/stdin";
	}
	if ((rc = query_open(&db, &q, ctx, &o)) != 0)
		goto out;
	if (o.sql)
		rc = udr_query_import_sql(&version, q, table, o.sql, o.params, o.nparams, &io);
	else
		rc = udr_query_import(&version, q, table, (const char *const *)argv + optind + 1,
		                      (size_t)(argc - optind - 1), &io);
	if (rc == 0)
		printf("%" PRIu64 "\n", version);
	else
		rc = cli_fail(rc);
out:
	free(keybuf);
	free(keys);
	query_close(db, q);
	query_opts_release(&o);
	return rc;
}

/* ---- optimize ---- */

int cli_cmd_optimize(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "full", no_argument, NULL, OPT_FULL },
		{ "deleted", required_argument, NULL, OPT_DELETED },
		{ "small-parts", required_argument, NULL, OPT_SMALL },
		{ "message", required_argument, NULL, 'm' },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		QUERY_SESSION_LONGOPTS,
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("optimize");
	struct query_opts o;
	udr_db *db = NULL;
	udr_query *q = NULL;
	uint64_t version = 0;
	int rc = query_parse(&o, ctx, self, argc, argv, "m:", longopts);

	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 1) {
		rc = cli_usage_error(self, NOPERANDS(argc) ? "too many arguments" : "missing TABLE");
		goto out;
	}
	if ((rc = query_open(&db, &q, ctx, &o)) != 0)
		goto out;
	o.opt.message = o.message;
	rc = o.branch ? udr_query_set_branch(q, o.branch) : 0;
	if (rc == 0)
		rc = udr_query_optimize(&version, q, argv[optind], &o.opt);
	if (rc == 0 && version)
		printf("%" PRIu64 "\n", version);
	else if (rc == 0)
		printf("nothing to compact\n");
	else
		rc = cli_fail(rc);
out:
	query_close(db, q);
	query_opts_release(&o);
	return rc;
}

/* ---- output files (export, sql -o) ---- */

/* What export or sql -o writes: a table version, or a query's result. */
struct out_job {
	const char *table, *ref;  /* export */
	const char *sql;          /* sql -o (then table is NULL) */
	const udr_value *params;
	size_t nparams;
};

static int run_job(uint64_t *rows, udr_query *q, const struct out_job *j, const char *path,
                   int format)
{
	if (j->sql)
		return udr_query_sql_to_file(rows, q, j->sql, j->params, j->nparams, path, format);
	return udr_query_export(rows, q, j->table, j->ref, path, format);
}

/*
 * Write job's output to path and print the number of rows.  A new or
 * regular file is made atomically by the library (temp file, rename).
 * "-" (standard output) and an existing device, FIFO or symlink must not
 * be renamed over: the library writes a private temp file, complete before
 * any byte reaches the target, which is then copied through (the row count
 * goes to stderr when the data went to stdout).
 */
static int write_output(const cli_ctx *ctx, const cli_command *self, udr_db *db, udr_query *q,
                        const struct out_job *j, const char *path, int format)
{
	cli_output_tmp t;
	uint64_t rows = 0;
	int kind, to_stdout = 0, rc;

	if ((rc = cli_output_classify(&kind, path, db)) != 0)
		return rc;
	if (kind == CLI_OUT_FILE) {
		if ((rc = run_job(&rows, q, j, path, format)) != 0)
			return cli_fail(rc);
		printf("%" PRIu64 " rows\n", rows);
		return CLI_EXIT_OK;
	}
	if (kind == CLI_OUT_STDOUT && !format)
		return cli_usage_error(self, "standard output (-) needs --format");
	if ((rc = cli_output_tmp_init(&t, path)) != 0)
		return rc;
	if ((rc = run_job(&rows, q, j, t.file, format)) != 0)
		rc = cli_output_fail(rc, &t, kind == CLI_OUT_STDOUT ? "standard output" : path);
	else
		rc = cli_output_deliver(&to_stdout, &t, path, kind);
	cli_output_tmp_release(&t);
	if (rc == 0 && !to_stdout)
		printf("%" PRIu64 " rows\n", rows);
	else if (rc == 0 && !ctx->quiet)
		fprintf(stderr, "%" PRIu64 " rows\n", rows);
	return rc;
}

/* ---- export ---- */

int cli_cmd_export(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		QUERY_SESSION_LONGOPTS,
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("export");
	struct query_opts o;
	udr_db *db = NULL;
	udr_query *q = NULL;
	struct out_job job = { NULL, NULL, NULL, NULL, 0 };
	int rc = query_parse(&o, ctx, self, argc, argv, NULL, longopts);

	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 2) {
		rc = cli_usage_error(self, NOPERANDS(argc) < 2 ? "missing TABLE[@REF] or OUT"
		                                               : "too many arguments");
		goto out;
	}
	if ((rc = query_open(&db, &q, ctx, &o)) != 0)
		goto out;
	job.table = argv[optind];
	job.ref = o.branch;
	rc = write_output(ctx, self, db, q, &job, argv[optind + 1], o.format);
out:
	query_close(db, q);
	query_opts_release(&o);
	return rc;
}

/* ---- sql ---- */

int cli_cmd_sql(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "param", required_argument, NULL, 'p' },
		{ "message", required_argument, NULL, 'm' },
		{ "no-compact", no_argument, NULL, OPT_NO_COMPACT },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "ndjson", no_argument, NULL, OPT_NDJSON },
		{ "table", no_argument, NULL, OPT_TABLE },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		QUERY_SESSION_LONGOPTS,
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("sql");
	struct query_opts o;
	udr_db *db = NULL;
	udr_query *q = NULL;
	int rc = query_parse(&o, ctx, self, argc, argv, "p:o:m:", longopts);

	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 1) {
		rc = cli_usage_error(self, NOPERANDS(argc) ? "too many arguments (quote the query)"
		                                           : "missing QUERY");
		goto out;
	}
	if (o.format && !o.out) {
		rc = cli_usage_error(self, "--format applies to -o FILE");
		goto out;
	}
	if (o.out && o.output_set) {
		/* --json -o x.csv wrote CSV, exit 0 */
		rc = cli_usage_error(self, "--csv, --json, --ndjson and --table are for standard output; -o FILE "
		                           "takes its format from the file's name or --format");
		goto out;
	}
	if ((rc = query_open(&db, &q, ctx, &o)) != 0)
		goto out;
	if ((o.message && (rc = udr_query_set_message(q, o.message)) != 0) ||
	    (o.branch && (rc = udr_query_set_branch(q, o.branch)) != 0) ||
	    (o.no_compact && (rc = udr_query_set_compaction(q, NULL)) != 0)) {
		rc = cli_fail(rc);
		goto out;
	}
	if (o.out) {
		struct out_job job = { NULL, NULL, argv[optind], o.params, o.nparams };

		rc = write_output(ctx, self, db, q, &job, o.out, o.format);
	} else {
		rc = stream_result(q, argv[optind], &o);
	}
out:
	query_close(db, q);
	query_opts_release(&o);
	return rc;
}

/* ---- diff-rows ---- */

int cli_cmd_diff_rows(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "ndjson", no_argument, NULL, OPT_NDJSON },
		{ "table", no_argument, NULL, OPT_TABLE },
		QUERY_SESSION_LONGOPTS,
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("diff-rows");
	struct query_opts o;
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_result *r = NULL;
	const char **cols = NULL;
	char *buf = NULL;
	size_t ncols = 0;
	int rc = query_parse(&o, ctx, self, argc, argv, NULL, longopts);

	if (rc >= 0)
		goto out;
	if (NOPERANDS(argc) != 3) {
		rc = cli_usage_error(self, NOPERANDS(argc) < 3 ? "expected TABLE REF1 REF2"
		                                               : "too many arguments");
		goto out;
	}
	if (!o.nkeys) {
		rc = cli_usage_error(self, "missing --key COL[,COL...]");
		goto out;
	}
	if ((rc = split_keys(&buf, &cols, &ncols, &o)) >= 0)
		goto out;
	if (!ncols) {
		rc = cli_usage_error(self, "--key names no column");
		goto out;
	}
	if ((rc = query_open(&db, &q, ctx, &o)) != 0)
		goto out;
	rc = udr_query_diff_rows(&r, q, argv[optind], argv[optind + 1], argv[optind + 2], cols,
	                         ncols);
	rc = rc ? cli_fail(rc) : write_result(r, o.output);
out:
	free(buf);
	free(cols);
	udr_result_free(r);
	query_close(db, q);
	query_opts_release(&o);
	return rc;
}

#endif /* UDR_HAVE_QUERY */
