/*
 * cli/cmd_store.c - the chunk-store commands: init, hash, put, get, exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Operands of a command after its options: argv[optind..argc). */
#define NOPERANDS(argc) ((argc) - optind)

static const struct option common_longopts[] = { CLI_COMMON_LONGOPTS };

/* Open FILE for reading ("-" or NULL: standard input); -1 after reporting. */
static int open_input(const char *path, int *out_fd, int *exit_code)
{
	int fd;

	if (!path || strcmp(path, "-") == 0) {
		*out_fd = STDIN_FILENO;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_errorf("cannot open %s: %s", path, strerror(errno));
		*exit_code = errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_IO;
		return -1;
	}
	*out_fd = fd;
	return 0;
}

static void print_hash(const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];

	udr_hash_tohex(hex, h);
	printf("%s\n", hex);
}

int cli_cmd_init(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("init");
	udr_db *db = NULL;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, common_longopts, NULL, NULL);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	rc = udr_db_open(&db, ctx->store_dir, 0);
	if (rc == 0) {
		printf("udr store already exists at %s\n", ctx->store_dir);
		udr_db_close(db);
		return CLI_EXIT_OK;
	}
	if (rc != UDR_ENOTFOUND)
		return cli_fail(rc);
	rc = udr_db_open(&db, ctx->store_dir, UDR_OPEN_CREATE);
	if (rc)
		return cli_fail(rc);
	printf("initialized empty udr store at %s\n", ctx->store_dir);
	udr_db_close(db);
	return CLI_EXIT_OK;
}

/*
 * Hash fd.  A regular file read from its start is mapped and hashed in one
 * call: no copy out of the page cache, and BLAKE3 sees the whole input at
 * once, which lets its SIMD paths work on many chunks in parallel (as b3sum
 * does).  Anything else (pipes, terminals, offsets) streams via udr_hash_fd.
 */
static int hash_fd(udr_hash *out, int fd)
{
	struct stat st;
	void *map;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= SIZE_MAX && lseek(fd, 0, SEEK_CUR) == 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map != MAP_FAILED) {
			madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
			udr_hash_buf(out, map, (size_t)st.st_size);
			munmap(map, (size_t)st.st_size);
			return 0;
		}
	}
	return udr_hash_fd(out, fd);
}

int cli_cmd_hash(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("hash");
	udr_hash h;
	int fd, code = 0;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, common_longopts, NULL, NULL);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 1)
		return cli_usage_error(self, "too many arguments");
	if (open_input(argv[optind], &fd, &code))
		return code;
	rc = hash_fd(&h, fd);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc)
		return cli_fail(rc);
	print_hash(&h);
	return CLI_EXIT_OK;
}

int cli_cmd_put(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("put");
	const char *path;
	udr_db *db;
	udr_hash h;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, common_longopts, NULL, NULL);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 1)
		return cli_usage_error(self, "too many arguments");
	path = argv[optind];
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (!path || strcmp(path, "-") == 0)
		rc = udr_store_put_fd(&h, udr_db_store(db), STDIN_FILENO);
	else
		rc = udr_store_put_file(&h, udr_db_store(db), path);
	if (rc == 0)
		print_hash(&h);
	else
		rc = cli_fail(rc);
	udr_db_close(db);
	return rc;
}

/* Chunks up to this size are verified in memory before going to stdout. */
#define VERIFY_IN_MEMORY_MAX ((uint64_t)64 << 20)

/*
 * `get --verify` to standard output.  Bytes written to a pipe cannot be taken
 * back, so corrupt bytes must never reach stdout:
 *  - a chunk up to 64 MiB is read into memory and verified
 *    (udr_store_get_verified); exactly the verified bytes are written;
 *  - a larger chunk is first streamed through the hash into /dev/null
 *    (bounded memory), then streamed to stdout, verifying again.  Chunks are
 *    immutable, so the second pass sees the same bytes unless the medium
 *    changes under us - and then its own verification still exits 4.
 */
static int get_verified_stdout(udr_store *store, const udr_hash *h)
{
	uint64_t size;
	size_t len;
	void *buf;
	int rc, null_fd;

	if ((rc = udr_store_size(&size, store, h)) != 0)
		return rc;
	if (size <= VERIFY_IN_MEMORY_MAX) {
		if ((rc = udr_store_get_verified(&buf, &len, store, h)) != 0)
			return rc;
		/* A short write sets the stream's error flag: cli_finish_stdout
		 * reports it and exits 5. */
		(void)fwrite(buf, 1, len, stdout);
		udr_free(buf);
		return 0;
	}
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		cli_errorf("cannot open /dev/null: %s", strerror(errno));
		return UDR_EIO;
	}
	rc = udr_store_get_fd(store, h, null_fd, UDR_GET_VERIFY);
	close(null_fd);
	if (rc)
		return rc;
	fflush(stdout);
	return udr_store_get_fd(store, h, STDOUT_FILENO, UDR_GET_VERIFY);
}

struct get_opts {
	const char *output;
	int verify;
};

enum { OPT_VERIFY = CLI_OPT_FIRST };

static int get_opt(int opt, const char *arg, void *payload)
{
	struct get_opts *o = payload;

	if (opt == 'o')
		o->output = arg;
	else
		o->verify = 1;
	return -1;
}

int cli_cmd_get(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("get");
	struct get_opts o = { NULL, 0 };
	unsigned flags;
	udr_db *db;
	udr_hash h;
	int rc = cli_parse_options(ctx, self, argc, argv, "o:", longopts, get_opt, &o);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) != 1)
		return cli_usage_error(self, NOPERANDS(argc) ? "too many arguments"
		                                             : "missing HASH");
	if ((rc = cli_parse_hash(&h, argv[optind])) != 0)
		return rc;
	if (o.output && !o.output[0])
		return cli_usage_error(self, "-o needs a file name");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	flags = o.verify ? UDR_GET_VERIFY : 0;
	if (o.output) {
		rc = udr_store_get_file(udr_db_store(db), &h, o.output, flags);
	} else if (o.verify) {
		rc = get_verified_stdout(udr_db_store(db), &h);
	} else {
		fflush(stdout); /* the library writes to the descriptor directly */
		rc = udr_store_get_fd(udr_db_store(db), &h, STDOUT_FILENO, 0);
	}
	if (rc)
		rc = cli_fail(rc);
	udr_db_close(db);
	return rc;
}

int cli_cmd_exists(cli_ctx *ctx, int argc, char **argv)
{
	const cli_command *self = cli_find_command("exists");
	udr_db *db;
	udr_hash h;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, common_longopts, NULL, NULL);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) != 1)
		return cli_usage_error(self, NOPERANDS(argc) ? "too many arguments"
		                                             : "missing HASH");
	if ((rc = cli_parse_hash(&h, argv[optind])) != 0)
		return rc;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = udr_store_exists(udr_db_store(db), &h);
	rc = rc == 1 ? CLI_EXIT_OK : rc == 0 ? CLI_EXIT_NOTFOUND : cli_fail(rc);
	udr_db_close(db);
	return rc;
}
