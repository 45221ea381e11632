/*
 * cli/main.c - entry point of the udr tool: global options, the command
 * table and dispatch.  A new command is one cli_cmd_* function and one row
 * of the table below.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmd_help(cli_ctx *ctx, int argc, char **argv);

static const char main_usage[] =
	"usage: udr [--store DIR] COMMAND [ARGS...]\n"
	"       udr --help | --version | help [COMMAND]\n"
	"\n"
	"A content-addressed, versioned data store.\n"
	"\n"
	"Global options:\n"
	"  --store DIR   the store root (default: $UDR_STORE, else ./data);\n"
	"                every command also accepts --store after its name\n"
	"  -h, --help    show this help (COMMAND --help: help on COMMAND)\n"
	"  --version     show the version\n"
	"\n"
	"Commands:\n";

static const char main_usage_tail[] =
	"\n"
	"Exit status:\n"
	"  0 success\n"
	"  1 not found (hash, table, version, store; `exists` when absent)\n"
	"  2 usage error or invalid argument\n"
	"  3 version conflict\n"
	"  4 integrity failure (corrupt data or metadata)\n"
	"  5 I/O or other error\n"
	"Errors are reported on stderr as \"udr: <message>\".\n";

static const cli_command commands[] = {
	{ "init", "create the store",
	  "usage: udr init\n"
	  "\n"
	  "Create the store at the --store directory (DIR/chunks, DIR/catalog).\n"
	  "Running it on an existing store is harmless and says so.\n",
	  cli_cmd_init },
	{ "hash", "print the BLAKE3 hash of a file without storing it",
	  "usage: udr hash [FILE|-]\n"
	  "\n"
	  "Print the BLAKE3-256 hash of FILE (standard input when FILE is - or\n"
	  "missing) as 64 hex digits, as b3sum does.  Stores nothing and needs\n"
	  "no store.\n",
	  cli_cmd_hash },
	{ "put", "store a file, print its hash",
	  "usage: udr put [FILE|-]\n"
	  "\n"
	  "Store the content of FILE (standard input when FILE is - or missing)\n"
	  "as one chunk and print its hash.  Storing the same bytes twice keeps\n"
	  "one copy.\n",
	  cli_cmd_put },
	{ "get", "write a chunk to standard output or a file",
	  "usage: udr get HASH [-o FILE] [--verify]\n"
	  "\n"
	  "Write the chunk HASH to standard output, or to FILE with -o.\n"
	  "  -o, --output FILE  write to FILE atomically (it appears complete or\n"
	  "                     not at all)\n"
	  "  --verify           rehash the content; on a mismatch nothing is\n"
	  "                     written and the exit status is 4\n",
	  cli_cmd_get },
	{ "exists", "test whether a chunk is stored",
	  "usage: udr exists HASH\n"
	  "\n"
	  "Exit with status 0 when the chunk HASH is stored, 1 when it is not.\n"
	  "Prints nothing (like test(1)); errors go to stderr.\n",
	  cli_cmd_exists },
	{ "commit", "commit a table version",
	  "usage: udr commit TABLE VERSION [HASH...] [-m MESSAGE] [--meta KEY=VALUE]...\n"
	  "       udr commit TABLE --next [HASH...] [-m MESSAGE] [--meta KEY=VALUE]...\n"
	  "\n"
	  "Commit the chunks HASH... (in this order) as version VERSION of TABLE;\n"
	  "VERSION must be the latest version + 1 (1 for a new table), otherwise\n"
	  "the commit is refused as a conflict (exit 3).  With --next the next\n"
	  "number is chosen atomically.  Every chunk must be stored.  Prints the\n"
	  "version number committed.\n"
	  "  -m, --message MESSAGE  the version's message\n"
	  "  --meta KEY=VALUE       a metadata entry (repeatable)\n"
	  "  --next                 commit as the next version\n"
	  "Table names: 1 to 128 characters of [A-Za-z0-9_.-], not starting with\n"
	  "'.' or '-'.\n",
	  cli_cmd_commit },
	{ "show", "print a table version as JSON",
	  "usage: udr show TABLE [VERSION] [--json]\n"
	  "\n"
	  "Print version VERSION (default: the latest) of TABLE as a JSON object:\n"
	  "table, version, parent (0 for the first version), created (ISO-8601\n"
	  "UTC), created_ms, message (null when none), metadata, chunks, commit\n"
	  "(the sequence number of the commit that made it).  --json is accepted\n"
	  "for symmetry with the other listing commands.\n",
	  cli_cmd_show },
	{ "versions", "list the versions of a table",
	  "usage: udr versions TABLE [--json]\n"
	  "\n"
	  "Print the version numbers of TABLE, one per line, ascending.\n"
	  "  --json  print a JSON array of numbers instead\n",
	  cli_cmd_versions },
	{ "tables", "list the tables",
	  "usage: udr tables [--json]\n"
	  "\n"
	  "Print the names of all tables, one per line, sorted.\n"
	  "  --json  print a JSON array of strings instead\n",
	  cli_cmd_tables },
	{ "fsck", "check the chunk store and the catalog",
	  "usage: udr fsck\n"
	  "\n"
	  "Rehash every chunk and check every catalog file, including that every\n"
	  "chunk a version names is stored; remove temp files of dead writers.\n"
	  "Prints one line per problem and a summary; exits 0 when clean, 4 when\n"
	  "problems were found.\n",
	  cli_cmd_fsck },
	{ "help", "show help on a command",
	  "usage: udr help [COMMAND]\n"
	  "\n"
	  "Show the general help, or the help of COMMAND.\n",
	  cmd_help },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const cli_command *cli_find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_main_usage(FILE *f)
{
	size_t i;

	fputs(main_usage, f);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs(main_usage_tail, f);
}

static int main_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int main_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("udr: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_main_usage(stderr);
	return CLI_EXIT_USAGE;
}

static int cmd_help(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *cmd;
	int rc = cli_parse_options(ctx, cli_find_command("help"), argc, argv, NULL,
	                           (const struct option[]){ CLI_COMMON_LONGOPTS }, NULL, NULL);

	if (rc >= 0)
		return rc;
	if (optind == argc) {
		print_main_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc - optind > 1)
		return cli_usage_error(cli_find_command("help"), "too many arguments");
	cmd = cli_find_command(argv[optind]);
	if (!cmd)
		return main_usage_error("unknown command \"%s\"", argv[optind]);
	return cli_help(cmd);
}

enum { OPT_VERSION = CLI_OPT_FIRST };

static const struct option main_longopts[] = {
	{ "version", no_argument, NULL, OPT_VERSION },
	CLI_COMMON_LONGOPTS
};

/* Parse the options before the command; -1 to go on, else an exit code. */
static int parse_global(cli_ctx *ctx, int argc, char **argv)
{
	int opt;

	opterr = 0;
	/* '+': stop at the command name, its options are its own. */
	while ((opt = getopt_long(argc, argv, "+:h", main_longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			print_main_usage(stdout);
			return CLI_EXIT_OK;
		case OPT_VERSION:
			printf("udr %s\n", udr_libversion());
			return CLI_EXIT_OK;
		case CLI_OPT_STORE:
			ctx->store_dir = optarg;
			break;
		case ':':
			return main_usage_error("option %s requires an argument", argv[optind - 1]);
		default:
			if (optopt) {
				char name[3] = { '-', (char)optopt, 0 };

				return main_usage_error("unknown option %s", name);
			}
			return main_usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	return -1;
}

static int run(int argc, char **argv)
{
	cli_ctx ctx;
	const cli_command *cmd;
	const char *env = getenv("UDR_STORE");
	int rc;

	ctx.store_dir = env && env[0] ? env : "./data";
	rc = parse_global(&ctx, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind == argc)
		return main_usage_error("%s", "no command given");
	cmd = cli_find_command(argv[optind]);
	if (!cmd)
		return main_usage_error("unknown command \"%s\"", argv[optind]);
	if (ctx.store_dir[0] == '\0')
		return main_usage_error("%s", "--store needs a non-empty directory");
	return cmd->run(&ctx, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
	return cli_finish_stdout(run(argc, argv));
}
