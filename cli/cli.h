/*
 * cli/cli.h - shared declarations of the udr command-line tool.
 *
 * The CLI uses only the public API (<udr/udr.h>).  Each command is one entry
 * of the table in main.c; helpers for errors, exit codes, argument parsing and
 * JSON output live in util.c.
 */
#ifndef UDR_CLI_H
#define UDR_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <udr/udr.h>

/** Exit codes of the udr tool (documented in `udr --help`). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_NOTFOUND = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_CONFLICT = 3,
	CLI_EXIT_CORRUPT = 4,
	CLI_EXIT_IO = 5,
	CLI_EXIT_EXPIRED = 6
};

/** State shared by all commands. */
typedef struct cli_ctx {
	const char *store_dir; /**< --store, $UDR_STORE or "./data" */
	int quiet;             /**< --quiet: no progress display */
} cli_ctx;

/** One command: name, one-line summary, usage text, handler. */
typedef struct cli_command {
	const char *name;
	const char *summary;
	const char *usage; /**< full help text printed by --help */
	int (*run)(cli_ctx *ctx, int argc, char **argv);
} cli_command;

/* Commands (cmd_*.c).  argv[0] is the command name; they return an exit code. */
int cli_cmd_init(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_upgrade(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_hash(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_put(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_get(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_exists(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_locate(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_commit(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_show(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_versions(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_tables(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_fsck(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_cache(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_gc(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_log(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_watch(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_branch(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_tag(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_reflog(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_merge(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_conflicts(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_resolve(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_diff(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_cherry_pick(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_revert(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_retention(cli_ctx *ctx, int argc, char **argv);
/** udr log --graph (cmd_graph.c): the graph of every branch, or of the
 *  history of ref (NULL: all), at most limit commits (0: all). */
int cli_log_graph(udr_db *db, const char *ref, size_t limit);

/* SQL over table versions (cmd_query.c); without the query module (DuckDB)
 * they report that it is missing and return CLI_EXIT_USAGE. */
int cli_cmd_import(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_export(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_sql(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_diff_rows(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_optimize(cli_ctx *ctx, int argc, char **argv);

/** `udr commit --spec FILE` (cmd_spec.c): an atomic multi-table commit. */
int cli_commit_spec(cli_ctx *ctx, const char *spec_path);

/** The command table (main.c). */
const cli_command *cli_find_command(const char *name);

/**
 * Write the manual pages DIR/udr.1 (from the general help: usage, then the
 * command list, then tail) and DIR/udr-COMMAND.1 for each of the n commands
 * (from their help texts) (man.c).  The build runs it as the hidden command
 * `udr __man-pages DIR`.  Reports errors; returns an exit code.
 */
int cli_man_pages(const char *dir, const char *usage, const char *tail,
                  const cli_command *cmds, size_t n);

/* Messages and exit codes (util.c). */

/** Print "udr: <formatted message>" to stderr. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Map a negative UDR_E* code to a CLI exit code. */
int cli_exit_code(int udr_code);

/** Report the library's last error ("udr: <message>") and map code to an exit code. */
int cli_fail(int udr_code);

/** Print usage of cmd to stderr with "udr: <why>" first; returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** Print the help text of cmd to stdout; returns CLI_EXIT_OK. */
int cli_help(const cli_command *cmd);

/* Argument parsing (util.c). */

/**
 * Parse the options of a command with getopt_long.  Every command knows
 * -h/--help and --store DIR; extra options are given as a getopt_long table
 * and a short-option string.  Calls on_opt for each extra option.
 * @return -1 to go on (optind then indexes the first operand), or an exit code
 *         to return at once (help printed, usage error reported).
 */
typedef int (*cli_opt_fn)(int opt, const char *arg, void *payload);
int cli_parse_options(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *longopts,
                      cli_opt_fn on_opt, void *payload);

/** getopt_long values of the options every command accepts. */
#define CLI_OPT_STORE 0x100
#define CLI_OPT_FIRST 0x101 /* first value free for a command's own long options */

/** Long options every command accepts (-q/--quiet too); end a command's
 *  table with this. */
#define CLI_COMMON_LONGOPTS                                  \
	{ "help", no_argument, NULL, 'h' },                  \
	{ "quiet", no_argument, NULL, 'q' },                 \
	{ "store", required_argument, NULL, CLI_OPT_STORE }, \
	{ NULL, 0, NULL, 0 }

/** Parse a hash operand; on error reports it and returns CLI_EXIT_USAGE. */
int cli_parse_hash(udr_hash *out, const char *text);

/** Parse a version number (decimal, >= 1); on error returns CLI_EXIT_USAGE. */
int cli_parse_version(uint64_t *out, const char *text);

/** Check a table name with the library; on error returns CLI_EXIT_USAGE. */
int cli_check_table(const char *name);

/**
 * Parse a non-negative decimal integer no larger than max; with suffixes
 * allowed, K, M or G (case-insensitive, optionally followed by "iB" or "B")
 * multiply by 1024, 1024^2, 1024^3.  On error reports "invalid WHAT" quoting
 * text and returns CLI_EXIT_USAGE.
 */
/** Print n bytes of text to stdout, control characters as \xNN (a
 * commit message cannot move the cursor or color the terminal). */
void cli_put_text(const char *s, size_t n);

/** --limit N: an integer >= 1 (a message naming --limit otherwise); exit code. */
int cli_parse_limit(uint64_t *out, const char *text);

int cli_parse_uint(uint64_t *out, const char *text, uint64_t max, int suffixes, const char *what);
/** --keep-last/--keep-within/--keep-hourly...--keep-yearly (name with its dashes) into rule; 0 or an exit code (reported). */
int cli_keep_opt(udr_retention_rule *rule, const char *name, const char *arg);

/* The store (util.c). */

/**
 * Open the store root ctx->store_dir without creating it.  A missing store is
 * reported as "not a udr store: DIR (run udr init)".
 * @return 0 or an exit code.
 */
int cli_open_db(udr_db **out, const cli_ctx *ctx);

/**
 * Store FILE ("-" or NULL: standard input) with a progress display, deltas
 * against base (may be NULL) (cmd_store.c).  Reports errors.
 * @return 0 or an exit code.
 */
int cli_put_input(udr_hash *out, const cli_ctx *ctx, udr_store *store, const char *path,
                  const udr_hash *base);

/* Output operands: get -o, export OUT, sql -o (output.c). */

/** How an output operand is written. */
enum {
	CLI_OUT_FILE,    /**< a new or regular file: temp file renamed over it */
	CLI_OUT_STDOUT,  /**< "-": standard output */
	CLI_OUT_THROUGH  /**< an existing device, FIFO, socket or symlink: opened
	                      and written through (O_TRUNC), never replaced */
};

/**
 * Classify the output operand path (lstat: a symlink is written through).
 * A directory, or a written-through target that resolves inside the store
 * of db (may be NULL: no check), is reported (exit 2).
 * @return 0 with *kind set, or an exit code (reported).
 */
int cli_output_classify(int *kind, const char *path, udr_db *db);

/** Open a CLI_OUT_THROUGH target for writing; 0 or an exit code (reported). */
int cli_output_open(int *fd, const char *path);

/**
 * Write all of buf to fd (name for the message).
 * @return 0; -1 when the reader went away (EPIPE, not reported: a quiet
 *         end, SIGPIPE being ignored); CLI_EXIT_IO (reported).
 */
int cli_output_write(int fd, const void *buf, size_t len, const char *name);

/** Whether fd is standard output or the same file (a count printed on
 *  stdout would then mix with the data). */
int cli_output_is_stdout(int fd);

/** A private temp directory ($TMPDIR or /tmp) and the file in it that the
 *  library writes for an output that is not a plain file. */
typedef struct cli_output_tmp {
	char *dir;
	char *file; /**< dir/ + the operand's base name (its extension gives
	                 the format), "stdout" for "-" */
} cli_output_tmp;

/** Make t (released by cli_output_tmp_release); 0 or an exit code (reported). */
int cli_output_tmp_init(cli_output_tmp *t, const char *path);

/** Remove t's file and directory and free t (accepts a zeroed t). */
void cli_output_tmp_release(cli_output_tmp *t);

/** As cli_fail, with the temp file in the library's message named shown. */
int cli_output_fail(int udr_code, const cli_output_tmp *t, const char *shown);

/**
 * Copy t's file to standard output (kind CLI_OUT_STDOUT) or through path
 * (CLI_OUT_THROUGH).  SIGPIPE is ignored; a reader going away ends the copy
 * quietly.  *to_stdout: whether the target was standard output.
 * @return 0 or an exit code (reported).
 */
int cli_output_deliver(int *to_stdout, const cli_output_tmp *t, const char *path, int kind);

/* Output (util.c). */

/** Write s as a JSON string literal (quoted, escaped) to f. */
void cli_json_string(FILE *f, const char *s);

/** Flush and close stdout; on a write error report it and return CLI_EXIT_IO. */
int cli_finish_stdout(int code);

/** Format ms since the epoch as ISO-8601 UTC with milliseconds. */
void cli_format_time(char out[80], int64_t ms);

/** A byte count for humans: "512 B", "1.5 KiB", "3.0 MiB" ... */
void cli_format_size(char out[32], uint64_t bytes);

/* Progress display on stderr (progress.c). */

/**
 * A progress line ("LABEL  12.0 MiB / 64.0 MiB  18%  95.2 MiB/s  ETA 0:01")
 * redrawn on stderr with \r at most 10 times a second and cleared at the end.
 * Only shown when stderr is a terminal and --quiet was not given; otherwise
 * cli_progress_start returns NULL, and every function accepts NULL.
 */
typedef struct cli_progress cli_progress;

/**
 * Start a display.  total: the expected size (0: unknown, no percentage or
 * ETA).  poll_fd >= 0: a thread samples that descriptor's file offset every
 * 100 ms as the bytes done (for writes the library makes); -1: the caller
 * reports with cli_progress_update / cli_progress_put_cb.
 */
cli_progress *cli_progress_start(const cli_ctx *ctx, const char *label, uint64_t total, int poll_fd);

/** Report bytes done (redraws when 100 ms passed since the last drawing). */
void cli_progress_update(cli_progress *p, uint64_t done);

/** Draw now, whenever the last drawing was (a long step's first frame). */
void cli_progress_draw(cli_progress *p, uint64_t done);

/** udr_put_options.progress adapter: payload is the cli_progress. */
void cli_progress_put_cb(uint64_t done, void *payload);

/** Stop the display, clear its line and free it. */
void cli_progress_finish(cli_progress *p);

#endif
