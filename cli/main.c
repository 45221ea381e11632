/*
 * cli/main.c - entry point of the udr tool: global options, the command
 * table and dispatch.  A new command is one cli_cmd_* function and one row
 * of the table below.
 */
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif
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
	"  -q, --quiet   no progress display (shown on stderr for long puts and\n"
	"                gets when it is a terminal)\n"
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
	"  6 the version expired by retention\n"
	"Errors are reported on stderr as \"udr: <message>\".\n";

static const cli_command commands[] = {
	{ "init", "create the store",
	  "usage: udr init [--format 1|2|3] [--chunk-min N] [--chunk-avg N] [--chunk-max N]\n"
	  "                [--compression-level N] [--delta-depth N]\n"
	  "\n"
	  "Create the store at the --store directory (DIR/chunks, DIR/catalog).\n"
	  "Running it on an existing store is harmless and says so; giving settings\n"
	  "for an existing store is an error (exit 2): they are fixed at creation.\n"
	  "  --format 1|2|3           3 (default): content larger than --chunk-max is\n"
	  "                           split into content-defined pieces, pieces are\n"
	  "                           compressed (zstd) and stored as deltas when\n"
	  "                           that is smaller, many to a pack file; 2: the\n"
	  "                           same with one file per piece; 1: each content\n"
	  "                           is one plain file holding exactly its bytes\n"
	  "  --chunk-min N            smallest piece (default 32K)\n"
	  "  --chunk-avg N            average piece, a power of two (default 128K)\n"
	  "  --chunk-max N            largest piece (default 4 x avg); smaller content\n"
	  "                           stays one piece\n"
	  "  --compression-level N    zstd level 1..19, 0: no compression (default 3)\n"
	  "  --delta-depth N          longest chain of deltas, 1..255 (default 50;\n"
	  "                           1: every delta's base is stored in full)\n"
	  "Sizes take the suffixes K, M, G (powers of 1024).\n",
	  cli_cmd_init },
	{ "upgrade", "move an older store to the newest formats in place",
	  "usage: udr upgrade [--chunk-min N] [--chunk-avg N] [--chunk-max N]\n"
	  "                   [--compression-level N] [--delta-depth N]\n"
	  "\n"
	  "Move the chunk store to format 3 (pieces in pack files with indexes)\n"
	  "and a format-1 catalog to format 2 (group commit), in place; later\n"
	  "catalog formats begin with the first command that needs them (the\n"
	  "first branch, expiry or retention policy).  The chunk store's\n"
	  "config changes first, atomically; then every intact loose object\n"
	  "except Parquet parts (which SQL reads in place) is packed, batch by\n"
	  "batch, each pack durable before the loose files it replaces are\n"
	  "removed: a killed upgrade loses nothing and running it again resumes.\n"
	  "Damaged objects stay loose for udr fsck to report.  Progress is shown\n"
	  "on a terminal.  The settings apply to a format-1 store (one plain file\n"
	  "per content), which gains pieces, compression and deltas (defaults as\n"
	  "for init); a format-2 store keeps its own, and settings given for it\n"
	  "are refused (exit 2): they are fixed at creation.  On a store already\n"
	  "current it does nothing (exit 0).  Older udr versions refuse an\n"
	  "upgraded store.\n",
	  cli_cmd_upgrade },
	{ "hash", "print the BLAKE3 hash of a file without storing it",
	  "usage: udr hash [FILE|-]\n"
	  "\n"
	  "Print the BLAKE3-256 hash of FILE (standard input when FILE is - or\n"
	  "missing) as 64 hex digits, as b3sum does.  Stores nothing and needs\n"
	  "no store.\n",
	  cli_cmd_hash },
	{ "put", "store a file, print its hash",
	  "usage: udr put [--base HASH] [FILE|-]\n"
	  "\n"
	  "Store the content of FILE (standard input when FILE is - or missing)\n"
	  "and print its hash.  Storing the same bytes twice keeps one copy.\n"
	  "  --base HASH  a similar content already stored (an older version of\n"
	  "               the file): new pieces are stored as deltas against its\n"
	  "               pieces when that is smaller; an absent base is ignored\n"
	  "Shows progress on stderr when it is a terminal (not with --quiet).\n",
	  cli_cmd_put },
	{ "get", "write a chunk to standard output or a file",
	  "usage: udr get HASH [-o FILE] [--verify | --no-verify]\n"
	  "\n"
	  "Write the chunk HASH to standard output, or to FILE with -o.  The content\n"
	  "is verified: each piece is rehashed before it is written and the whole\n"
	  "content at the end; damage exits 4 naming the chunk.  Standard output\n"
	  "then may already hold the verified pieces before the damaged one (or,\n"
	  "for one plain object above 64 MiB, its bytes): discard it.\n"
	  "  -o, --output FILE  write to FILE atomically (it appears complete and\n"
	  "                     verified, or not at all); - is standard output.\n"
	  "                     A FILE that exists and is not a regular file (a\n"
	  "                     device, a FIFO) or is a symlink is written through,\n"
	  "                     as by the shell's >, never replaced\n"
	  "  --verify           also to standard output (or a FILE written through),\n"
	  "                     nothing of damaged content is written (content above\n"
	  "                     64 MiB is read twice)\n"
	  "  --no-verify        do not rehash (faster; zstd and manifest checksums\n"
	  "                     are still checked, damage to plain objects is not\n"
	  "                     noticed)\n"
	  "Shows progress on stderr when it is a terminal (not with --quiet) and\n"
	  "the output is a file.\n",
	  cli_cmd_get },
	{ "exists", "test whether a chunk is stored",
	  "usage: udr exists HASH\n"
	  "\n"
	  "Exit with status 0 when the chunk HASH is stored, 1 when it is not.\n"
	  "Prints nothing (like test(1)); errors go to stderr.\n",
	  cli_cmd_exists },
	{ "commit", "commit a table version, or several tables at once",
	  "usage: udr commit TABLE VERSION HASH... [-m MESSAGE] [--meta KEY=VALUE]... [--branch BRANCH]\n"
	  "       udr commit TABLE --next HASH... [-m MESSAGE] [--meta KEY=VALUE]... [--branch BRANCH]\n"
	  "       udr commit TABLE (VERSION|--next) --allow-empty [-m MESSAGE] ...\n"
	  "       udr commit TABLE --next --file PATH [-m MESSAGE] [--meta KEY=VALUE]... [--branch BRANCH]\n"
	  "       udr commit --spec FILE|-\n"
	  "\n"
	  "Commit the chunks HASH... (in this order) as version VERSION of TABLE;\n"
	  "VERSION must be the latest version + 1 (1 for a new table), otherwise\n"
	  "the commit is refused as a conflict (exit 3).  With --next the next\n"
	  "number is chosen atomically.  Every chunk must be stored.  Prints the\n"
	  "version number committed.  A version without chunks is refused (exit\n"
	  "2, nothing written) unless --allow-empty: as in git, it is usually a\n"
	  "forgotten HASH, and SQL has no columns to read from it.\n"
	  "  -m, --message MESSAGE  the version's message\n"
	  "  --meta KEY=VALUE       a metadata entry (repeatable)\n"
	  "  --next                 commit as the next version\n"
	  "  --allow-empty          commit a version with no chunks\n"
	  "  --file PATH            store PATH (- for standard input) and commit it\n"
	  "                         as the version's one chunk, in one step; when the\n"
	  "                         latest version is one chunk, new pieces are\n"
	  "                         stored as deltas against it\n"
	  "  --branch BRANCH        commit on BRANCH (default main); the version\n"
	  "                         number is still the table's highest + 1 over all\n"
	  "                         branches; an unknown branch exits 1\n"
	  "  --spec FILE            commit several tables atomically, as described\n"
	  "                         by the JSON spec FILE (- for standard input)\n"
	  "Table names: 1 to 128 characters of [A-Za-z0-9_.-], not starting with\n"
	  "'.' or '-'.\n"
	  "\n"
	  "The spec of --spec is one JSON object:\n"
	  "  {\"message\": \"nightly load\",         the commit's message (optional)\n"
	  "   \"isolation\": \"snapshot\",           or \"serializable\" (optional)\n"
	  "   \"branch\": \"dev\",                   the branch to commit on (optional;\n"
	  "                                      default main)\n"
	  "   \"tables\": [                        one entry per table, at least one\n"
	  "     {\"table\": \"sales\",               the table (required, each once)\n"
	  "      \"chunks\": [\"<hash>\", ...],      stored chunks (optional)\n"
	  "      \"files\": [\"path\", ...],         files to store, their hashes\n"
	  "                                      appended after chunks (optional;\n"
	  "                                      paths relative to the current\n"
	  "                                      directory)\n"
	  "      \"message\": \"...\",               the version's message (optional;\n"
	  "                                      default: the commit's message)\n"
	  "      \"metadata\": {\"k\": \"v\"},         string metadata (optional)\n"
	  "      \"version\": 4,                    the version it must become\n"
	  "                                      (optional; else the next one)\n"
	  "      \"allow_empty\": false}]}          true: commit it even without\n"
	  "                                      chunks or files (optional)\n"
	  "Every table gets its next version through one commit record: all become\n"
	  "visible at once or none does.  Unknown keys are refused.  Prints\n"
	  "\"commit SEQ\", then TABLE@VERSION for each table.  An invalid spec exits 2\n"
	  "and a missing chunk or file 1, with nothing committed; a conflict with a\n"
	  "concurrent commit (or a \"version\" that is not the next) exits 3.\n",
	  cli_cmd_commit },
	{ "show", "print a table version as JSON",
	  "usage: udr show TABLE [VERSION | --at TIME] [--branch REF] [--json]\n"
	  "\n"
	  "Print version VERSION (default: the latest) of TABLE as a JSON object:\n"
	  "table, version, parent (0 for the first version), created (ISO-8601\n"
	  "UTC), created_ms, message (null when none), metadata, chunks, commit\n"
	  "(the sequence number of the commit that made it).  --json is accepted\n"
	  "for symmetry with the other listing commands.\n"
	  "  --at TIME  the version that was the latest at TIME: an RFC 3339 time\n"
	  "             (2026-11-01T12:00:00Z, 2026-11-01T13:00:00+01:00; no zone:\n"
	  "             UTC; fraction optional) or a date (2026-11-01: as of the end\n"
	  "             of that day, UTC); exit 1 when the table had no version then\n"
	  "  --branch REF  the latest version on REF (a branch, tag or commit:N; see\n"
	  "             udr branch) instead of main's; with --at, REF as of TIME\n",
	  cli_cmd_show },
	{ "versions", "list the versions of a table",
	  "usage: udr versions TABLE [--branch REF] [--json]\n"
	  "\n"
	  "Print the version numbers of TABLE, one per line, ascending: on main,\n"
	  "or on REF with --branch (its version and that version's parents).  A\n"
	  "version that records a drop (SQL DROP TABLE) is printed \"N (dropped)\".\n"
	  "  --json  print a JSON array of numbers instead\n",
	  cli_cmd_versions },
	{ "tables", "list the tables",
	  "usage: udr tables [--branch REF] [--json]\n"
	  "\n"
	  "Print the names of all tables (on main, or on REF), one per line, sorted.\n"
	  "A table whose latest version records a drop (SQL DROP TABLE) is left\n"
	  "out; its versions stay readable (udr versions, udr show TABLE N).\n"
	  "  --json  print a JSON array of strings instead\n",
	  cli_cmd_tables },
	{ "log", "list commits, newest first",
	  "usage: udr log [--since SEQ] [--since-time TIME] [--table TABLE]...\n"
	  "               [--branch BRANCH] [--limit N] [--reverse] [--json]\n"
	  "       udr log --graph [--branch REF] [--limit N]\n"
	  "\n"
	  "Print the commit log, newest first: each commit as a line\n"
	  "\"commit SEQ (BRANCH) TIME AUTHOR\", its message indented by four spaces\n"
	  "(when it has one), and one line \"  TABLE: OLD -> NEW\" per table version\n"
	  "it made (OLD is \"new\" for a table's first version).\n"
	  "  --since SEQ         only commits after commit SEQ\n"
	  "  --since-time TIME   only commits made at or after TIME (RFC 3339, as\n"
	  "                      --at of show; a date: from the start of that day, UTC)\n"
	  "  --table TABLE       only commits that changed TABLE: made a version of\n"
	  "                      it, or merges that took one into their branch\n"
	  "                      (repeatable: any; a table never committed is not\n"
	  "                      found, exit 1; branch resets are in udr reflog)\n"
	  "  --branch BRANCH     only commits on BRANCH\n"
	  "  --limit N           at most N commits\n"
	  "  --graph             draw the commit graph as git log --graph does\n"
	  "                      (\"*\" a commit, \"|\" a line of history, \"\\\" a\n"
	  "                      merge's second parent, \"/\" lines joining), one\n"
	  "                      line per commit: \"SEQ (REFS) MESSAGE\" (no message:\n"
	  "                      its changes); every branch, or the history of\n"
	  "                      REF with --branch; branch and tag records are not\n"
	  "                      drawn (a new branch starts at its commit)\n"
	  "  --reverse           oldest first\n"
	  "  --json              a JSON array of objects: seq, parent, time, time_ms,\n"
	  "                      branch, author, message (null when none), changes\n"
	  "                      (table, old, new, digest); records of branch and\n"
	  "                      tag operations and merges also op, ref and parents\n"
	  "                      (text: a line \"  OP REF (commit PARENTS)\")\n",
	  cli_cmd_log },
	{ "watch", "follow the commit log",
	  "usage: udr watch [--since SEQ] [--table TABLE]... [--branch BRANCH] [--json]\n"
	  "\n"
	  "Print each new commit as soon as it is made, oldest first, in the format\n"
	  "of `udr log` (--json: one JSON object per line), flushing after each.\n"
	  "Runs until interrupted (SIGINT, SIGTERM: exit 0).\n"
	  "  --since SEQ      first replay the commits after commit SEQ (0: all)\n"
	  "  --table TABLE    only commits that changed TABLE, as in udr log\n"
	  "                   (repeatable: any)\n"
	  "  --branch BRANCH  only commits on BRANCH\n"
	  "  --json           one JSON object per commit and line\n",
	  cli_cmd_watch },
	{ "branch", "list, create, delete or reset branches",
	  "usage: udr branch [list] [--json]\n"
	  "       udr branch create NAME [--from REF] [--at TIME]\n"
	  "       udr branch delete NAME\n"
	  "       udr branch reset NAME --to REF [--at TIME]\n"
	  "\n"
	  "A branch names a commit and through it one version of every table; the\n"
	  "default branch is main.  Writes (commit, import, transactions, merge)\n"
	  "go to one branch; reads take --branch REF.  A REF is NAME (a branch,\n"
	  "else a tag; an error when both exist), branch:NAME, tag:NAME or\n"
	  "commit:N.  Every move of a branch is a commit of the log, atomic with\n"
	  "it, and kept in the branch's reflog (udr reflog NAME).\n"
	  "  list                 each branch and its head commit (the default)\n"
	  "  create NAME          a new branch at --from REF (default: main); costs\n"
	  "                       one small record whatever the data\n"
	  "  delete NAME          delete a branch (never main); its commits stay\n"
	  "  reset NAME --to REF  move a branch to another commit (undo: reset it\n"
	  "                       to the old head its reflog shows)\n"
	  "  --at TIME            REF as it was at TIME (RFC 3339 or a date)\n"
	  "  --json               list as a JSON array of {name, commit}\n"
	  "Names: 1 to 255 bytes of letters, digits and ._-/, no .., no //, not\n"
	  "starting with - or /, not ending with / or .lock; anything else exits 2\n"
	  "with nothing written.  An unknown branch or ref exits 1; creating a\n"
	  "branch that exists exits 3.\n",
	  cli_cmd_branch },
	{ "tag", "list, create or delete tags",
	  "usage: udr tag [list] [--json]\n"
	  "       udr tag create NAME [REF] [--at TIME]\n"
	  "       udr tag delete NAME\n"
	  "\n"
	  "A tag is an immutable name of a commit (REF, default main's head).\n"
	  "Creating a tag that exists exits 3; a tag is only removed by\n"
	  "`udr tag delete`.  Names as for branches.\n",
	  cli_cmd_tag },
	{ "reflog", "list the moves of a branch",
	  "usage: udr reflog [NAME] [--limit N] [--json]\n"
	  "\n"
	  "Print every move of branch NAME (default main), newest first: \"SEQ OP\n"
	  "OLD -> HEAD TIME AUTHOR\", OP one of commit, merge, cherry-pick,\n"
	  "revert, create, reset, delete (HEAD 0: deleted).  A deleted branch\n"
	  "keeps its reflog.\n"
	  "  --limit N  at most N moves\n"
	  "  --json     a JSON array of {seq, op, head, old, time, time_ms,\n"
	  "             author, message}\n",
	  cli_cmd_reflog },
	{ "merge", "merge a branch, tag or commit into a branch",
	  "usage: udr merge SOURCE [--into BRANCH] [--strategy ours|theirs]\n"
	  "                 [--table TABLE=ours|theirs]... [--key TABLE=COLUMNS]...\n"
	  "                 [--strictness TABLE=table|row|cell]... [--dry-run]\n"
	  "                 [-m MESSAGE] [--json]\n"
	  "       udr merge --continue [--into BRANCH] [--json]\n"
	  "       udr merge --abort [--into BRANCH]\n"
	  "\n"
	  "Merge the commit SOURCE names into BRANCH (default main): nothing when\n"
	  "it is already there; a fast-forward when BRANCH has nothing of its own;\n"
	  "else three-way against the merge base, table by table: a table changed\n"
	  "on one side takes that side's version (no data is copied).  A table\n"
	  "changed on both sides is merged row by row when it has a key (--key, or\n"
	  "the key import --key or an earlier row merge recorded): rows are matched\n"
	  "on the key in the base, BRANCH (ours) and SOURCE (theirs); a row added,\n"
	  "deleted or changed on one side takes that side, a row changed the same\n"
	  "way on both sides is kept, a row changed differently on both sides is a\n"
	  "conflict.  The merged table is a new version that shares BRANCH's parts\n"
	  "(replaced rows as deletion vectors, new rows in small parts).  A table\n"
	  "without a key, whose schema changed, or of strictness table is a\n"
	  "conflict unless a strategy picks a side.  A merge is one commit with two\n"
	  "parents.  With conflicts nothing is written to BRANCH, they are listed\n"
	  "(rows in conflict per table), recorded (see udr conflicts, udr resolve)\n"
	  "and the exit status is 3.  In a criss-cross history (several merge\n"
	  "bases) a table's base is the version the bases agree on (or merge to);\n"
	  "where they disagree, a table both sides changed conflicts unless both\n"
	  "hold the same rows.  A key column the table lacks, or a key that is\n"
	  "NULL or repeats in a version, is an error (exit 2), nothing written.\n"
	  "--continue commits the recorded merge with its resolutions if BRANCH has\n"
	  "not moved (else exit 3: --abort and merge again); conflicts left\n"
	  "unresolved: exit 3.  --abort discards the record.\n"
	  "  --into BRANCH         the branch to merge into (default main)\n"
	  "  --strategy S          ours (keep BRANCH's) or theirs (take SOURCE's)\n"
	  "                        for every table changed on both sides\n"
	  "  --table TABLE=S       the same for one table (repeatable); it takes\n"
	  "                        precedence over a row-level merge\n"
	  "  --key TABLE=COLUMNS   merge TABLE row by row on COLUMNS (comma-separated,\n"
	  "                        e.g. id or region,id; repeatable)\n"
	  "  --strictness TABLE=S  row (default): a row changed differently on both\n"
	  "                        sides conflicts; cell: a row whose sides changed\n"
	  "                        different columns takes both changes; table: any\n"
	  "                        change on both sides conflicts (repeatable)\n"
	  "  --dry-run             report what would merge and conflict (rows per\n"
	  "                        table), write nothing\n"
	  "  -m, --message MESSAGE the merge commit's message\n"
	  "  --continue            commit the recorded merge into BRANCH\n"
	  "  --abort               discard the recorded merge into BRANCH\n"
	  "  --json                one JSON object: commit, base, ours, theirs,\n"
	  "                        up_to_date, fast_forward, dry_run, conflicts,\n"
	  "                        tables [{table, base, ours, theirs, result,\n"
	  "                        conflict, rows?: {ours, theirs, same, cells,\n"
	  "                        conflict}, note?}]\n",
	  cli_cmd_merge },
	{ "conflicts", "list the conflicts of a merge that wrote nothing",
	  "usage: udr conflicts [--into BRANCH] [--json]\n"
	  "\n"
	  "The conflicts recorded by the last merge into BRANCH (default main) that\n"
	  "had conflicts: one row per conflicting row (table, key, and the base,\n"
	  "ours and theirs rows as JSON, null where the row is absent) and one per\n"
	  "table conflicting as a whole (key null, {\"version\": N} per side), with\n"
	  "how it is resolved (ours, theirs, version, or empty).  SQL sees the same\n"
	  "in the table udr_conflicts (with a target column).\n"
	  "  --into BRANCH   the merge's target (default main)\n"
	  "  --json          a JSON array of {table, key, base, ours, theirs, resolved}\n",
	  cli_cmd_conflicts },
	{ "resolve", "resolve a conflict of a recorded merge",
	  "usage: udr resolve TABLE (--ours | --theirs) [--key VALUE] [--into BRANCH]\n"
	  "       udr resolve TABLE (--with FILE | --sql QUERY) [--into BRANCH]\n"
	  "\n"
	  "Resolve TABLE in the recorded merge into BRANCH (default main): take\n"
	  "ours or theirs for the whole table, or, with --key, for the one\n"
	  "conflicting row whose key is VALUE (the key's value as text for a\n"
	  "one-column key, else its JSON object, as udr_conflicts' key shows it,\n"
	  "spaced as you like);\n"
	  "or give the table's resolved rows, from a file (CSV, Parquet or JSON by\n"
	  "its extension) or a query (which may read NAME@REF).  Nothing is\n"
	  "committed until udr merge --continue.\n"
	  "  --ours, --theirs   the side to take\n"
	  "  --key VALUE        one conflicting row only\n"
	  "  --with FILE        the resolved rows from FILE, read as `udr import`\n"
	  "                     reads it (format from its name; the path as it\n"
	  "                     is, no glob)\n"
	  "  --sql QUERY        the resolved rows of QUERY\n"
	  "  --into BRANCH      the merge's target (default main)\n",
	  cli_cmd_resolve },
	{ "diff", "list the tables that differ between two refs",
	  "usage: udr diff REF1 REF2 [--rows] [--json]\n"
	  "\n"
	  "Print each table whose version differs between the commits REF1 and\n"
	  "REF2 name: \"added|removed|changed TABLE: V1 -> V2\" (0: absent).\n"
	  "  --rows  also count rows: before and after, and the rows only the new\n"
	  "          or only the old version holds (+ADDED -REMOVED, compared as\n"
	  "          multisets: a changed row counts once each way); reads both\n"
	  "          versions of every table listed\n"
	  "  --json  a JSON array of {table, change, old, new} (with --rows also\n"
	  "          rows_old, rows_new, rows_added, rows_removed; null when the\n"
	  "          schema changed)\n",
	  cli_cmd_diff },
	{ "cherry-pick", "apply one commit's table changes to a branch",
	  "usage: udr cherry-pick COMMIT [--branch BRANCH] [--strategy ours|theirs]\n"
	  "                       [--dry-run] [-m MESSAGE] [--json]\n"
	  "\n"
	  "Apply the table changes of COMMIT (a number, commit:N, or a branch or\n"
	  "tag: its head) to BRANCH (default main) as one commit: each table the\n"
	  "commit changed gets a new version with the content of the commit's\n"
	  "version, when BRANCH still has the version the commit started from.  A\n"
	  "table BRANCH already has at the commit's version is left alone.  A\n"
	  "table at another version is a conflict: nothing is written, exit 3.\n"
	  "A ref record, a merge, or a commit already in BRANCH's history is\n"
	  "refused (exit 2).\n"
	  "  --branch BRANCH       the branch to commit on (default main)\n"
	  "  --strategy S          on a conflict: ours (leave the table) or theirs\n"
	  "                        (take the commit's content anyway)\n"
	  "  --dry-run             report, write nothing\n"
	  "  -m, --message MESSAGE the commit's message (default \"cherry-pick of\n"
	  "                        commit N\")\n"
	  "  --json                {commit, source, head, up_to_date, dry_run,\n"
	  "                        conflicts, tables [{table, expected, ours,\n"
	  "                        content, result, conflict}]}\n",
	  cli_cmd_cherry_pick },
	{ "revert", "undo one commit's table changes on a branch",
	  "usage: udr revert COMMIT [--branch BRANCH] [--strategy ours|theirs]\n"
	  "                  [--dry-run] [-m MESSAGE] [--json]\n"
	  "\n"
	  "Undo COMMIT on BRANCH (default main) as one new commit: each table the\n"
	  "commit changed gets a new version with the content of the version\n"
	  "before the commit, when BRANCH still has the commit's version (a table\n"
	  "already back at it is left alone); another version is a conflict:\n"
	  "nothing is written, exit 3.  COMMIT must be in BRANCH's history.  A\n"
	  "commit that created a table cannot be reverted (a revert drops no\n"
	  "table: DROP TABLE does); nor can a ref record or a merge (exit 2).\n"
	  "  --branch BRANCH       the branch to commit on (default main)\n"
	  "  --strategy S          on a conflict: ours (leave the table) or theirs\n"
	  "                        (take the old content anyway)\n"
	  "  --dry-run             report, write nothing\n"
	  "  -m, --message MESSAGE the commit's message (default \"revert of commit\n"
	  "                        N\")\n"
	  "  --json                as for cherry-pick\n",
	  cli_cmd_revert },
	{ "retention", "the retention policy, and which versions it expires",
	  "usage: udr retention show [--json]\n"
	  "       udr retention set FILE|- [-m MESSAGE] [--json]\n"
	  "       udr retention set [--table TABLE] [--branch BRANCH] --keep-... [-m MESSAGE]\n"
	  "       udr retention unset [--table TABLE] [--branch BRANCH] | --all [-m MESSAGE]\n"
	  "       udr retention expire [--dry-run] [--table TABLE] [--branch BRANCH]\n"
	  "                            [--keep-last K] [--keep-within DURATION]\n"
	  "                            [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
	  "                            [--keep-monthly N] [--keep-yearly N] [--json]\n"
	  "       udr retention expired [TABLE] [--json]\n"
	  "       udr retention undo [SEQ] [--json]\n"
	  "       udr retention restore TABLE@V[..W] [--json]\n"
	  "\n"
	  "The stored policy (docs/GC.md 1.1) is a record in the log (udr log shows\n"
	  "it): a default rule, and rules per table, per branch (a name, or NAME/*\n"
	  "for every branch under NAME/) and per branch and table.  A table's chain\n"
	  "on a branch gets the most specific, whole (keys are not mixed): the\n"
	  "pair's, the table's, the branch's, the default.  No policy (or {}): \n"
	  "nothing expires unless a --keep option says so.  udr gc and retention\n"
	  "expire without --keep options apply it; with them the options replace\n"
	  "only its default for that run.\n"
	  "show prints the policy and, for each table on each branch, the rule that\n"
	  "applies and where it comes from (pair, table, branch, default, none);\n"
	  "--json: {seq, policy, rules: [{branch, table, source, rule, text}]}.\n"
	  "set FILE (- for stdin) stores a whole policy as JSON:\n"
	  "  {\"default\":{\"keep_last\":30,\"keep_within\":\"90d\"},\n"
	  "   \"tables\":{\"raw\":{\"keep_last\":3}},\"branches\":{\"dev/*\":{\"keep_within\":\"14d\"}},\n"
	  "   \"pairs\":{\"main\":{\"prices\":{\"keep_last\":1000}}}}\n"
	  "(keys keep_last, keep_within, keep_hourly ... keep_yearly; \"grace\":\n"
	  "udr gc's default --grace; undo other than \"0s\" and an orphans rule are\n"
	  "refused: not applied yet).\n"
	  "set --keep-... replaces one rule whole: the default, or with --table, \n"
	  "--branch or both the table's, branch's or pair's; unset removes it (exit\n"
	  "1 when there is none), unset --all clears the policy.  Bad JSON, keys or\n"
	  "values exit 2 with nothing written.  -m sets the record's message.\n"
	  "\n"
	  "Expire the table versions a retention rule does not keep now: one\n"
	  "expire record in the log (docs/GC.md 1.4); their data can no longer be\n"
	  "read (exit 6).  With --dry-run, show them and write nothing.  A rule\n"
	  "works on each table's chain on each branch: the version in the branch\n"
	  "head's snapshot, then its parents.  A version is kept when any option\n"
	  "keeps it on any chain, and always when it is in a branch head's or a\n"
	  "tag's snapshot, in a merge base of two branches, or is its table's\n"
	  "latest version.  A version on no chain whose commit is in no branch's\n"
	  "or tag's history (a deleted branch's, one a reset moved away from) is\n"
	  "kept only by --keep-within, counted from the last reset, delete or\n"
	  "untag; one on no chain but in a history (a merge took the other side's)\n"
	  "is kept.\n"
	  "  --keep-last K          the K newest versions of each chain (K >= 1)\n"
	  "  --keep-within D        versions current at some moment of the last D\n"
	  "                         (units y w d h min s, e.g. 90d, 1y2w, 12h30min;\n"
	  "                         y is 365 days; there is no month)\n"
	  "  --keep-hourly N ... --keep-yearly N\n"
	  "                         the newest version of each of the N most recent\n"
	  "                         UTC hours, days, ISO weeks (from Monday), months\n"
	  "                         or years that hold one (as restic forget)\n"
	  "  --table TABLE          only this table (unknown: exit 1)\n"
	  "  --branch BRANCH        apply the rule on this branch only; the other\n"
	  "                         branches' versions are kept (unknown: exit 1;\n"
	  "                         only with --dry-run for now)\n"
	  "  --dry-run              show the plan, write nothing\n"
	  "  --json                 the plan as JSON: {dry_run, now, now_ms, at, rule,\n"
	  "                         table, branch, expired: {versions, tables, ranges},\n"
	  "                         kept: {versions, by_reason}}; without --dry-run\n"
	  "                         dry_run false and expired: {records, versions,\n"
	  "                         tables, ranges} as the record holds them\n"
	  "Without --keep options the stored policy decides; a count of 0 or a bad duration\n"
	  "exits 2 with nothing done.  Heads', tags' and latest versions are checked\n"
	  "again when the record is linked and never expire.\n"
	  "expired lists the expired versions (TABLE@A..B expired by commit S on\n"
	  "TIME); undo takes back what expire record SEQ (default: the newest)\n"
	  "expired, restore the versions named: each one unexpire record, their\n"
	  "data readable again (restore of no expired version: exit 1).\n",
	  cli_cmd_retention },
	{ "stats", "show what the chunk store holds",
	  "usage: udr stats [--json]\n"
	  "\n"
	  "Print what the chunk store holds.  An object is one file of the chunk\n"
	  "store: a piece (raw, compressed or delta) or a manifest (the list of\n"
	  "pieces of a content split into pieces); `udr fsck` counts the same\n"
	  "objects and bytes on disk.  Then the size of the data at each step,\n"
	  "so that each saving shows where it happens:\n"
	  "  logical            every distinct content (put, committed), in full\n"
	  "  after dedup        every distinct piece, decoded (identical pieces once)\n"
	  "  after delta        as after dedup, but delta pieces at their stored size\n"
	  "                     (a delta is zstd-compressed against its base)\n"
	  "  after compression  the piece objects as stored (zstd, deltas)\n"
	  "  on disk            every object file: the pieces and the manifests\n"
	  "with the ratios dedup (logical / after dedup), delta (after dedup /\n"
	  "after delta), compression (after delta / after compression) and total\n"
	  "(logical / on disk).  Then the query cache (<store>/cache/query: parts\n"
	  "materialized for SQL, derived data; `udr cache clear` empties it).\n"
	  "  --json  one JSON object: format, objects, contents, pieces, manifests,\n"
	  "          compressed, deltas, logical_bytes, unique_bytes (after dedup),\n"
	  "          after_delta_bytes, piece_bytes (after compression),\n"
	  "          stored_bytes (on disk), dedup_ratio, delta_ratio,\n"
	  "          compression_ratio, total_ratio, query_cache_parts,\n"
	  "          query_cache_bytes, query_temp_bytes\n",
	  cli_cmd_stats },
	{ "cache", "show or clear the query cache",
	  "usage: udr cache [stats|clear] [--json]\n"
	  "\n"
	  "The query cache (<store>/cache/query) holds table parts that SQL reads\n"
	  "and that the store does not keep as one plain file (compressed, split\n"
	  "into pieces): each is materialized there once, verified.  It is derived\n"
	  "data, also counted by `udr stats`.\n"
	  "  stats  (the default) the parts cached, their size, and the size of\n"
	  "         cache/query/tmp (parts of running imports, DuckDB spill files)\n"
	  "  clear  remove every cached part and what killed imports left; safe\n"
	  "         while other processes query: it waits for running statements\n"
	  "         (they hold a shared lock on the cache), and later statements\n"
	  "         materialize again what they need.  Prints what was removed.\n"
	  "  --json one JSON object: parts, part_bytes, temp_bytes\n",
	  cli_cmd_cache },
	{ "gc", "remove what no version needs (garbage collection)",
	  "usage: udr gc [--dry-run] [--keep-last K] [--keep-within DURATION]\n"
	  "              [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
	  "              [--keep-monthly N] [--keep-yearly N] [--grace DURATION]\n"
	  "              [--threshold PCT] [--max-unused PCT] [--max-repack SIZE] [--json] [-q]\n"
	  "       udr gc --status [--json]\n"
	  "\n"
	  "Remove the chunks no kept version of any table needs, puts never\n"
	  "committed once they are older than the grace, and duplicate copies;\n"
	  "rewrite packs with dead entries.  First expire the versions the stored\n"
	  "retention policy (udr retention set) does not keep, the --keep-* options\n"
	  "replacing its default for this run (as `udr retention expire`: branch\n"
	  "heads, tags, merge bases and each table's latest are always kept), then\n"
	  "remove the data only expired versions needed: they read as expired\n"
	  "(exit 6) and can no longer be restored.  With no policy and no --keep-*\n"
	  "option nothing expires: only versions expired earlier lose their data.\n"
	  "Puts and commits wait while it marks; then only those that reuse data\n"
	  "it removes wait, until it ends.\n"
	  "Every deletion comes after a check that each live chunk keeps a copy; a\n"
	  "kill at any moment leaves a consistent store and the next run finishes\n"
	  "the work.\n"
	  "  --dry-run          report what would be expired and removed; change nothing\n"
	  "  --keep-last K ... --keep-yearly N\n"
	  "                     the default rule for this run (see udr retention --help)\n"
	  "  --grace DURATION   keep uncommitted data younger than this (default:\n"
	  "                     the stored policy's grace, else the store's, 24h;\n"
	  "                     e.g. 0s, 30min, 7d)\n"
	  "  --threshold PCT    rewrite a pack at least PCT% dead (10)\n"
	  "  --max-unused PCT   then rewrite more until unused space <= PCT% (5)\n"
	  "  --max-repack SIZE  copy at most SIZE of live data (K, M, G suffixes)\n"
	  "  --json             the report as one JSON object (retention, mark,\n"
	  "                     removed, written, store, temp, gc_seq)\n"
	  "  --status           the state of gc and the last run's report\n"
	  "Exit codes: 0; 2 usage; 4 a live chunk is missing (nothing removed);\n"
	  "5 I/O, or another gc is running (its pid named).\n",
	  cli_cmd_gc },
	{ "fsck", "check the chunk store and the catalog",
	  "usage: udr fsck [--repair [--dry-run]] [--json] [--repair-from FILE]... [--reset-head]\n"
	  "\n"
	  "Rehash every chunk and check every catalog file, including that every\n"
	  "chunk a version names is stored; remove temp files of dead writers.\n"
	  "Prints one line per problem and a summary (\"N objects (M bytes on\n"
	  "disk)\": the objects and on-disk size `udr stats` counts); exits 0 when\n"
	  "clean, 4 when problems were found.  A version naming a missing chunk is\n"
	  "\"broken\"; when chunks are damaged, each version that can no longer be\n"
	  "read back in full is named (\"damaged version T@V\"); versions whose data\n"
	  "gc removed after they expired are not checked.  Derived files found\n"
	  "damaged (pack indexes, checkpoints) are rebuilt from the data.\n"
	  "  --repair            first remove crash leftovers and rebuild derived\n"
	  "                      files (refused, exit 5, while a gc runs): finish a\n"
	  "                      gc run killed while deleting, abandon one killed\n"
	  "                      before, remove its run files, write a damaged\n"
	  "                      chunks/gc/STATE anew, cut torn records off\n"
	  "                      chunks/gc/fresh.*, remove leases of dead processes,\n"
	  "                      index packs without an index, rebuild the\n"
	  "                      multi-pack index, remove query cache files that\n"
	  "                      fail verification; one \"repair: ...\" line each.\n"
	  "                      Then check (its lines start \"found: \"); when it\n"
	  "                      found problems, check again (\"repair: checking\n"
	  "                      again\") and report what remains, naming each\n"
	  "                      version that cannot be read back\n"
	  "                      (\"unrecoverable T@V (branch B, commit S): chunk H\n"
	  "                      missing|damaged\"); exit 4 while any remains.\n"
	  "                      Never writes a chunk, never changes a\n"
	  "                      commit record, never expires anything.\n"
	  "  --dry-run           with --repair: say what it would do (\"would: ...\"\n"
	  "                      lines) and check, changing nothing (every write\n"
	  "                      of the library refused); exit as plain fsck\n"
	  "  --json              one JSON object: the counts of the summary,\n"
	  "                      \"problems\" [{kind, what, object, path, message}],\n"
	  "                      \"unrecoverable\" [{table, version, branch, commit,\n"
	  "                      chunks, reason}], with --repair \"repair\" (what was\n"
	  "                      done, and \"found\": the first check's problems),\n"
	  "                      \"exit\"; exit codes as without it\n"
	  "  --repair-from FILE  first take a good copy of damaged content from FILE\n"
	  "                      (repeatable): FILE is stored, and every damaged\n"
	  "                      object of its content and its pieces is replaced\n"
	  "                      atomically; prints \"repair HASH from FILE: N\n"
	  "                      damaged objects replaced\", then checks as above\n"
	  "  --reset-head        when HEAD names a commit whose record is missing\n"
	  "                      (reported as a lost record; commits are refused),\n"
	  "                      set it back to the end of the log - only when no\n"
	  "                      version file or checkpoint names a commit past that\n"
	  "                      end; the sequence numbers past it are handed out\n"
	  "                      again\n"
	  "(`udr put FILE` repairs the same way: a put never keeps damaged objects\n"
	  "of the content it stores.)  When it finds no problem, a gc run that its\n"
	  "guard aborted is reset, so that `udr gc` runs again.\n",
	  cli_cmd_fsck },
	{ "import", "import CSV, Parquet or JSON files (or a query) as a table version",
	  "usage: udr import TABLE FILE... [--format F] [--append | --key COL[,COL...]] [-m MESSAGE]\n"
	  "       udr import TABLE --sql QUERY [-p VALUE]... [--append] [-m MESSAGE]\n"
	  "       (both take --branch BRANCH)\n"
	  "\n"
	  "Import the rows of FILE... (all of one format; - reads standard input,\n"
	  "which needs --format) or the result of QUERY as the next version of\n"
	  "TABLE, stored as Parquet parts (up to 983,040 rows each, one chunk per\n"
	  "part, read in place by queries).  Prints the version number committed.\n"
	  "Nothing is committed on error.\n"
	  "  --format F         csv, parquet, json or ndjson (default: from the\n"
	  "                     extension: .csv .tsv .txt, .parquet .pq, .json,\n"
	  "                     .ndjson .jsonl, each optionally .gz or .zst)\n"
	  "  --append           the new version keeps the previous version's parts\n"
	  "                     unchanged and adds the new rows as new parts; the\n"
	  "                     columns must match by name, order and type (exit 2\n"
	  "                     naming the column otherwise)\n"
	  "  --key COL[,COL...] FILE... is a full new copy of TABLE whose rows are\n"
	  "                     matched on these columns (unique on both sides):\n"
	  "                     only the rows that differ are stored (deletion\n"
	  "                     vectors and new parts); prints the version, the\n"
	  "                     same one when nothing differs (nothing committed)\n"
	  "  --sql QUERY        import the result of QUERY (which may read tables,\n"
	  "                     as in `udr sql`) instead of files\n"
	  "  -p, --param VALUE  a value for the next ? of QUERY (see `udr sql`)\n"
	  "  -m, --message MSG  the version's message\n"
	  "  --branch BRANCH    commit on BRANCH (default main); an append\n"
	  "                     extends BRANCH's version\n"
	  "  --threads N, --memory-limit SIZE   DuckDB settings (default: all\n"
	  "                     cores, DuckDB's default limit)\n"
	  "The version's metadata records udr.format, udr.schema, udr.rows and\n"
	  "udr.source.  A file that cannot be read exits 2 with DuckDB's message,\n"
	  "a missing file 1.\n",
	  cli_cmd_import },
	{ "export", "write a table version to a Parquet, CSV or JSON file",
	  "usage: udr export TABLE[@REF] OUT [--format F] [--branch REF]\n"
	  "\n"
	  "Write version REF of TABLE (default: the latest) to OUT, atomically (it\n"
	  "appears complete or not at all), and print the number of rows.  OUT -\n"
	  "is standard output (give --format; the number of rows then goes to\n"
	  "stderr).  An OUT that exists and is not a regular file (a device, a\n"
	  "FIFO) or is a symlink is written through, as by the shell's >, never\n"
	  "replaced: the data is first made complete in a temporary file in\n"
	  "$TMPDIR (default /tmp), then copied.\n"
	  "  --format F  parquet, csv, json (one JSON array) or ndjson (default:\n"
	  "              from OUT's extension)\n"
	  "REF: a version number (users@3), latest, an RFC 3339 time or a date\n"
	  "(users@2026-11-01T12:00:00Z, users@2026-11-01T13:00:00+01:00: the\n"
	  "version current then; users@2026-11-01: at the end of that day, UTC),\n"
	  "commit:SEQ (the tables of that commit), branch:NAME, tag:NAME, or a\n"
	  "bare branch or tag name (users@dev).\n"
	  "  --branch REF  the same as TABLE@REF (a branch named like a version,\n"
	  "                latest or a time is read as one: write branch:NAME)\n",
	  cli_cmd_export },
	{ "sql", "run a SQL query over table versions",
	  "usage: udr sql QUERY [-p VALUE]... [-m MESSAGE] [--branch NAME] [--no-compact]\n"
	  "               [--csv | --json | --ndjson | -o FILE]\n"
	  "\n"
	  "Run one SQL statement (DuckDB's dialect) and print its result as an\n"
	  "aligned table (default), CSV, a JSON array of objects or NDJSON, or\n"
	  "write it to FILE.  Each table name reads that table's latest version\n"
	  "on the session's branch (main, or --branch), all as of one snapshot;\n"
	  "NAME@REF reads another:\n"
	  "  users@3                  version 3\n"
	  "  users@latest             the latest version\n"
	  "  users@2026-11-01T12:00:00Z, users@2026-11-01T13:00:00+01:00\n"
	  "                           the version current at that time\n"
	  "  users@2026-11-01         ... at the end of that day (UTC)\n"
	  "  users@commit:12          the version current right after commit 12\n"
	  "  users@branch:main        the latest version on branch main\n"
	  "  \"my-table@3\"             quoted: for names that are not plain SQL\n"
	  "                           identifiers (allowed for any reference)\n"
	  "Write NAME@REF without spaces; two versions can be joined in one\n"
	  "query (FROM users@3 a JOIN users@5 b USING (id)).  The views udr_log\n"
	  "(the changelog: seq, time, branch, author, message, \"table\",\n"
	  "old_version, new_version, and the rows inserted, updated, deleted and\n"
	  "whether it dropped the table) and udr_tables list the history and tables.\n"
	  "INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE [AS] and DROP TABLE\n"
	  "on tables commit a new version of each table they change (nothing when\n"
	  "nothing changed), storing only the change; \"BEGIN; ...; COMMIT\" runs\n"
	  "several statements as one commit, on the session's branch.  NAME@REF\n"
	  "is read-only, except NAME@branch:B where B is the session's branch.\n"
	  "  -m, --message MSG  the message of the commit a write makes\n"
	  "  --branch NAME      read bare table names on branch NAME and commit\n"
	  "                     writes there (default: main)\n"
	  "  --no-compact       no compaction after a write (see `udr optimize`)\n"
	  "  -p, --param VALUE  a value for the next ? placeholder, bound by DuckDB\n"
	  "                     (never spliced into the query): text as given, or\n"
	  "                     int:N, float:X, bool:true|false, text:S, null\n"
	  "  --csv              CSV with a header line (NULL is an empty field)\n"
	  "  --json             a JSON array of objects (NaN and infinite\n"
	  "                     doubles are NaN, Infinity and -Infinity, as\n"
	  "                     Python's json module and udr export write them)\n"
	  "  --ndjson           one JSON object per line\n"
	  "  --table            an aligned table (the default)\n"
	  "  -o, --output FILE  write the result to FILE (streamed, atomically):\n"
	  "                     .parquet, .csv, .json or .ndjson; prints the rows.\n"
	  "                     - is standard output (give --format; the rows\n"
	  "                     are counted on stderr); a device, a FIFO or a\n"
	  "                     symlink is written through as by `udr export`\n"
	  "  --format F         the format of FILE when its extension says none\n"
	  "  --threads N, --memory-limit SIZE   DuckDB settings\n"
	  "A SQL error exits 2 with DuckDB's message; an unknown table, version,\n"
	  "time or branch exits 1 naming it; a damaged part of a version exits 4\n"
	  "naming the chunk.\n",
	  cli_cmd_sql },
	{ "optimize", "compact a table: rewrite parts with many deleted rows, merge small ones",
	  "usage: udr optimize TABLE [--full] [--deleted PCT] [--small-parts N] [-m MESSAGE]\n"
	  "                    [--branch NAME]\n"
	  "\n"
	  "Commit a compacted version of TABLE: the parts whose deletion vectors\n"
	  "delete at least PCT% of their rows, and the small parts (fewer than\n"
	  "122,880 rows) once there are at least N of them, are replaced by new\n"
	  "parts holding their rows that are not deleted; the other parts are kept\n"
	  "as they are.  The rows read do not change.  Prints the version committed,\n"
	  "or \"nothing to compact\" (nothing is committed).  SQL writes run a\n"
	  "compaction after they commit (with the defaults) that merges small parts\n"
	  "geometrically, a few at a time, rather than all of them.\n"
	  "  --full             rewrite every part\n"
	  "  --deleted PCT      the share of deleted rows that rewrites a part (default\n"
	  "                     25; 0: never)\n"
	  "  --small-parts N    merge small parts once there are N (default 8; 0: never)\n"
	  "  -m, --message MSG  the commit message\n"
	  "  --branch NAME      compact the table on branch NAME (default: main)\n"
	  "  --threads N, --memory-limit SIZE   DuckDB settings\n",
	  cli_cmd_optimize },
	{ "diff-rows", "show rows added, removed and changed between two versions",
	  "usage: udr diff-rows TABLE REF1 REF2 --key COL[,COL...] [--csv | --json | --ndjson]\n"
	  "\n"
	  "Compare versions REF1 (old) and REF2 (new) of TABLE, matching rows by\n"
	  "the key columns, and print one row per added, removed or changed row,\n"
	  "ordered by the key: change (added, removed, changed; named _change when\n"
	  "a key column is named change), the key columns, then old.C and new.C\n"
	  "for every other column C (NULL where absent).\n"
	  "REF1, REF2: as after @ in `udr sql` (3, latest, 2026-11-01, commit:12).\n"
	  "  --key COL[,COL...]  the key columns (repeatable); they must exist in\n"
	  "                      both versions and be unique in each (else exit 2)\n"
	  "  --csv, --json, --ndjson, --table   the output format (as `udr sql`)\n",
	  cli_cmd_diff_rows },
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
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
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
	while ((opt = getopt_long(argc, argv, "+:hq", main_longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			print_main_usage(stdout);
			return CLI_EXIT_OK;
		case OPT_VERSION:
			printf("udr %s\n", udr_libversion());
			return CLI_EXIT_OK;
		case 'q':
			ctx->quiet = 1;
			break;
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
	ctx.quiet = 0;
	rc = parse_global(&ctx, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind == argc)
		return main_usage_error("%s", "no command given");
	/* hidden, for the build: the manual pages from the help texts */
	if (strcmp(argv[optind], "__man-pages") == 0) {
		if (argc - optind != 2)
			return main_usage_error("%s", "usage: udr __man-pages DIR");
		return cli_man_pages(argv[optind + 1], main_usage, main_usage_tail, commands,
		                     NCOMMANDS);
	}
	/* hidden, for tests: where a chunk's bytes are */
	if (strcmp(argv[optind], "__locate") == 0)
		return cli_cmd_locate(&ctx, argc - optind, argv + optind);
	cmd = cli_find_command(argv[optind]);
	if (!cmd)
		return main_usage_error("unknown command \"%s\"", argv[optind]);
	if (ctx.store_dir[0] == '\0')
		return main_usage_error("%s", "--store needs a non-empty directory");
	return cmd->run(&ctx, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
	/* Pieces (up to a few hundred KiB) are allocated by worker threads and
	 * freed by the thread that writes them out.  glibc's defaults hand that
	 * memory back to the kernel (munmap, heap trims) and fault it in again:
	 * 66,000-145,000 page faults and ~10% of the CPU time of a 1 GiB get.
	 * Kept instead; the peak is bounded by the pipelines either way. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
	return cli_finish_stdout(run(argc, argv));
}
