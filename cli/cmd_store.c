/*
 * cli/cmd_store.c - the chunk-store commands: init, hash, put, get, exists,
 * stats.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#ifdef UDR_HAVE_QUERY
#include <udr/query.h>
#endif

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

/* Settings of a new store given to init; set[] says which were given. */
struct init_opts {
	udr_store_config cfg;
	int given;       /* number of settings given */
	int chunk_given; /* of them, format-2 only settings */
};

enum { OPT_FORMAT = CLI_OPT_FIRST, OPT_CHUNK_MIN, OPT_CHUNK_AVG, OPT_CHUNK_MAX, OPT_LEVEL,
       OPT_DEPTH, OPT_BASE, OPT_VERIFY, OPT_NO_VERIFY, OPT_JSON };

static int init_opt(int opt, const char *arg, void *payload)
{
	struct init_opts *o = payload;
	uint64_t v;
	int rc;

	switch (opt) {
	case OPT_FORMAT:
		if (strcmp(arg, "1") != 0 && strcmp(arg, "2") != 0 && strcmp(arg, "3") != 0) {
			cli_errorf("invalid --format \"%s\" (expected 1, 2 or 3)", arg);
			return CLI_EXIT_USAGE;
		}
		o->cfg.format = arg[0] - '0';
		break;
	case OPT_CHUNK_MIN:
	case OPT_CHUNK_AVG:
	case OPT_CHUNK_MAX:
		if ((rc = cli_parse_uint(&v, arg, UINT32_MAX, 1, "chunk size")) != 0)
			return rc;
		if (v == 0) {
			cli_errorf("invalid chunk size \"%s\" (must be > 0)", arg);
			return CLI_EXIT_USAGE;
		}
		if (opt == OPT_CHUNK_MIN)
			o->cfg.chunk_min = (uint32_t)v;
		else if (opt == OPT_CHUNK_AVG)
			o->cfg.chunk_avg = (uint32_t)v;
		else
			o->cfg.chunk_max = (uint32_t)v;
		o->chunk_given++;
		break;
	case OPT_LEVEL:
		if ((rc = cli_parse_uint(&v, arg, 19, 0, "compression level")) != 0)
			return rc;
		o->cfg.compression_level = (int)v;
		o->chunk_given++;
		break;
	default: /* OPT_DEPTH */
		/* 1 to 255 in one message (0 is not "the default" here) */
		if ((rc = cli_parse_uint(&v, arg, UINT64_MAX, 0, "delta depth")) != 0)
			return rc;
		if (v == 0 || v > 255) {
			cli_errorf("invalid delta depth \"%s\" (1 to 255)", arg);
			return CLI_EXIT_USAGE;
		}
		o->cfg.delta_max_depth = (int)v;
		o->chunk_given++;
		break;
	}
	o->given++;
	return -1;
}

int cli_cmd_init(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "chunk-min", required_argument, NULL, OPT_CHUNK_MIN },
		{ "chunk-avg", required_argument, NULL, OPT_CHUNK_AVG },
		{ "chunk-max", required_argument, NULL, OPT_CHUNK_MAX },
		{ "compression-level", required_argument, NULL, OPT_LEVEL },
		{ "delta-depth", required_argument, NULL, OPT_DEPTH },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("init");
	struct init_opts o = { UDR_STORE_CONFIG_INIT, 0, 0 };
	udr_store_config got;
	udr_store *store = NULL;
	udr_db *db = NULL;
	char *chunks;
	size_t n;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, init_opt, &o);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if (o.cfg.format == 1 && o.chunk_given)
		return cli_usage_error(self, "--chunk-*, --compression-level and --delta-depth "
		                             "need format 2 or 3");
	rc = udr_db_open(&db, ctx->store_dir, 0);
	if (rc == 0) {
		udr_db_close(db);
		if (o.given) {
			cli_errorf("a udr store already exists at %s: its settings are fixed at "
			           "creation (init without options leaves it as it is)", ctx->store_dir);
			return CLI_EXIT_USAGE;
		}
		printf("udr store already exists at %s\n", ctx->store_dir);
		return CLI_EXIT_OK;
	}
	if (rc != UDR_ENOTFOUND)
		return cli_fail(rc);
	/* The chunk store first, with the settings: udr_db_open then finds it
	 * and creates the catalog and the root's config (written last). */
	n = strlen(ctx->store_dir) + sizeof("/chunks");
	if (!(chunks = malloc(n))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	snprintf(chunks, n, "%s/chunks", ctx->store_dir);
	rc = udr_store_open_ext(&store, chunks, UDR_OPEN_CREATE, &o.cfg);
	free(chunks);
	if (rc)
		return cli_fail(rc);
	udr_store_get_config(&got, store);
	udr_store_close(store);
	if (o.given && got.format != o.cfg.format) {
		/* A chunk store left by an interrupted init keeps its settings. */
		cli_errorf("%s/chunks already exists with format %d: its settings are fixed at "
		           "creation", ctx->store_dir, got.format);
		return CLI_EXIT_USAGE;
	}
	rc = udr_db_open(&db, ctx->store_dir, UDR_OPEN_CREATE);
	if (rc)
		return cli_fail(rc);
	printf("initialized empty udr store at %s (format %d)\n", ctx->store_dir, got.format);
	udr_db_close(db);
	return CLI_EXIT_OK;
}

struct upgrade_progress {
	const cli_ctx *ctx;
	cli_progress *p;
};

/* The walk's first report starts the display (the total is known then) and
 * draws at once: an upgrade of a large store announces itself. */
static void upgrade_progress_cb(uint64_t done, uint64_t total, void *payload)
{
	struct upgrade_progress *u = payload;
	if (!u->p && total > 0 && (u->p = cli_progress_start(u->ctx, "upgrade", total, -1)))
		cli_progress_draw(u->p, done);
	else
		cli_progress_update(u->p, done);
}

int cli_cmd_upgrade(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "chunk-min", required_argument, NULL, OPT_CHUNK_MIN },
		{ "chunk-avg", required_argument, NULL, OPT_CHUNK_AVG },
		{ "chunk-max", required_argument, NULL, OPT_CHUNK_MAX },
		{ "compression-level", required_argument, NULL, OPT_LEVEL },
		{ "delta-depth", required_argument, NULL, OPT_DEPTH },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("upgrade");
	struct init_opts o = { UDR_STORE_CONFIG_INIT, 0, 0 };
	udr_store_config before, after;
	udr_upgrade_options uo = { 0 };
	udr_upgrade_report rep = { 0 };
	struct upgrade_progress up = { ctx, NULL };
	udr_store *store = NULL;
	udr_db *db = NULL;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, init_opt, &o);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	udr_store_get_config(&before, udr_db_store(db));
	udr_db_close(db);
	{
		size_t n = strlen(ctx->store_dir) + sizeof("/chunks");
		char *chunks = malloc(n);
		if (!chunks) {
			cli_errorf("out of memory");
			return CLI_EXIT_IO;
		}
		snprintf(chunks, n, "%s/chunks", ctx->store_dir);
		uo.progress = upgrade_progress_cb;
		uo.progress_payload = &up;
		rc = udr_store_upgrade_ext(chunks, o.given ? &o.cfg : NULL, &uo, &rep);
		cli_progress_finish(up.p);
		if (rc == 0)
			rc = udr_store_open(&store, chunks, 0);
		free(chunks);
	}
	if (rc == 0) {
		size_t n = strlen(ctx->store_dir) + sizeof("/catalog");
		char *cat = malloc(n);
		if (!cat) {
			udr_store_close(store);
			cli_errorf("out of memory");
			return CLI_EXIT_IO;
		}
		snprintf(cat, n, "%s/catalog", ctx->store_dir);
		rc = udr_catalog_upgrade(cat);
		free(cat);
		if (rc == 0)
			printf("upgraded the catalog to format 2 (group commit)\n");
		if (rc == 1)
			rc = 0;
	}
	if (rc) {
		udr_store_close(store);
		return cli_fail(rc);
	}
	udr_store_get_config(&after, store);
	udr_store_close(store);
	if (before.format == after.format)
		printf("the chunk store is already format %d\n", after.format);
	else
		printf("upgraded the chunk store from format %d to format %d (pieces of %u/%u/%u bytes, "
		       "zstd level %d, delta depth %d)\n", before.format, after.format, after.chunk_min,
		       after.chunk_avg, after.chunk_max, after.compression_level, after.delta_max_depth);
	if (after.format >= 3 && rep.packed + rep.kept > 0) {
		char b[32];
		cli_format_size(b, rep.bytes);
		printf("packed %" PRIu64 " of %" PRIu64 " loose objects (%s)", rep.packed, rep.packed + rep.kept, b);
		if (rep.kept)
			printf("; %" PRIu64 " stay loose (Parquet parts, which SQL reads in place, "
			       "and damaged objects: see udr fsck)", rep.kept);
		printf("\n");
	}
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

/* Size of fd when it is a regular file read from its start, else 0. */
static uint64_t input_size(int fd)
{
	struct stat st;
	off_t off;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	off = lseek(fd, 0, SEEK_CUR);
	return off >= 0 && off <= st.st_size ? (uint64_t)(st.st_size - off) : 0;
}

int cli_put_input(udr_hash *out, const cli_ctx *ctx, udr_store *store, const char *path,
                  const udr_hash *base)
{
	udr_put_options po = UDR_PUT_OPTIONS_INIT;
	cli_progress *prog;
	int fd, code = 0, rc;

	if (open_input(path, &fd, &code))
		return code;
	prog = cli_progress_start(ctx, "put", input_size(fd), -1);
	po.base = base;
	po.progress = prog ? cli_progress_put_cb : NULL;
	po.progress_payload = prog;
	rc = udr_store_put_fd_ext(out, store, fd, &po);
	cli_progress_finish(prog);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

struct put_opts {
	udr_hash base;
	int has_base;
};

static int put_opt(int opt, const char *arg, void *payload)
{
	struct put_opts *o = payload;
	int rc = udr_hash_fromhex(&o->base, arg);

	if (rc) {
		cli_errorf("invalid --base: %s", udr_error_last()->message);
		return CLI_EXIT_USAGE;
	}
	o->has_base = 1;
	return -1;
}

int cli_cmd_put(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "base", required_argument, NULL, OPT_BASE },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("put");
	struct put_opts o;
	udr_hash h;
	udr_db *db;
	int rc;

	memset(&o, 0, sizeof(o));
	rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, put_opt, &o);
	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 1)
		return cli_usage_error(self, "too many arguments");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = cli_put_input(&h, ctx, udr_db_store(db), argv[optind], o.has_base ? &o.base : NULL);
	if (rc == 0)
		print_hash(&h);
	udr_db_close(db);
	return rc;
}

/* Chunks up to this size are verified in memory before going to stdout. */
#define VERIFY_IN_MEMORY_MAX ((uint64_t)64 << 20)

/*
 * `get --verify` to standard output, or through path (an output that is not
 * a plain file: a device, a FIFO, a symlink; NULL: standard output).  Every
 * get verifies (the library rehashes each piece before writing it, and a raw
 * object of up to 64 MiB before writing anything), but a larger raw object,
 * or the pieces before a damaged one, would reach the output before the
 * damage is known (exit 4 then).  Bytes written to a pipe cannot be taken
 * back, so with --verify no byte of damaged content reaches it (and path is
 * opened, truncating it, only once the content is known to be good):
 *  - a chunk up to 64 MiB is read into memory and verified
 *    (udr_store_get_verified); exactly the verified bytes are written;
 *  - a larger chunk is first streamed through the hash into /dev/null
 *    (bounded memory), then streamed to the output, verifying again.  Chunks
 *    are immutable, so the second pass sees the same bytes unless the medium
 *    changes under us - and then its own verification still exits 4.
 * Returns an exit code (reported).
 */
static int get_verified(udr_store *store, const udr_hash *h, const char *path)
{
	uint64_t size;
	size_t len;
	void *buf;
	int rc, null_fd, fd = STDOUT_FILENO;

	if ((rc = udr_store_size_recorded(&size, store, h)) != 0)
		return cli_fail(rc);
	if (size <= VERIFY_IN_MEMORY_MAX) {
		if ((rc = udr_store_get_verified(&buf, &len, store, h)) != 0)
			return cli_fail(rc);
		if (!path) {
			/* A short write sets the stream's error flag: cli_finish_stdout
			 * reports it and exits 5. */
			(void)fwrite(buf, 1, len, stdout);
		} else if ((rc = cli_output_open(&fd, path)) == 0) {
			/* a reader that went away (a FIFO) ends the output quietly */
			if ((rc = cli_output_write(fd, buf, len, path)) < 0)
				rc = CLI_EXIT_OK;
			if (close(fd) != 0 && rc == 0) {
				cli_errorf("cannot write %s: %s", path, strerror(errno));
				rc = CLI_EXIT_IO;
			}
		}
		udr_free(buf);
		return rc;
	}
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		cli_errorf("cannot open /dev/null: %s", strerror(errno));
		return CLI_EXIT_IO;
	}
	rc = udr_store_get_fd(store, h, null_fd, UDR_GET_VERIFY);
	close(null_fd);
	if (rc)
		return cli_fail(rc);
	fflush(stdout);
	if (path && (rc = cli_output_open(&fd, path)) != 0)
		return rc;
	rc = udr_store_get_fd(store, h, fd, UDR_GET_VERIFY);
	rc = rc ? cli_fail(rc) : CLI_EXIT_OK;
	if (path && close(fd) != 0 && rc == 0) {
		cli_errorf("cannot write %s: %s", path, strerror(errno));
		rc = CLI_EXIT_IO;
	}
	return rc;
}

static int progress_wanted(const cli_ctx *ctx)
{
	return !ctx->quiet && isatty(STDERR_FILENO);
}

/*
 * `get -o FILE` with a progress display: as udr_store_get_file (a temp file
 * next to FILE, renamed over it only when complete and verified), but into
 * a descriptor of ours, whose offset a thread samples for the display.
 * FILE is a new or regular file (CLI_OUT_FILE).
 */
static int get_file_progress(const cli_ctx *ctx, udr_store *store, const udr_hash *h,
                             const char *path, unsigned flags)
{
	cli_progress *prog;
	uint64_t total;
	size_t n = strlen(path) + 48;
	char *tmp;
	int fd, rc;

	if ((rc = udr_store_size_recorded(&total, store, h)) != 0)
		return cli_fail(rc);
	if (!(tmp = malloc(n))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	snprintf(tmp, n, "%s.udr-get-%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_errorf("cannot create output file %s: %s", tmp, strerror(errno));
		free(tmp);
		return CLI_EXIT_IO;
	}
	prog = cli_progress_start(ctx, "get", total, fd);
	rc = udr_store_get_fd(store, h, fd, flags);
	cli_progress_finish(prog);
	rc = rc ? cli_fail(rc) : CLI_EXIT_OK;
	if (close(fd) != 0 && rc == 0) {
		cli_errorf("cannot write %s: %s", tmp, strerror(errno));
		rc = CLI_EXIT_IO;
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		cli_errorf("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		rc = CLI_EXIT_IO;
	}
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

/*
 * `get -o PATH` where PATH is a device, a FIFO or a symlink (CLI_OUT_THROUGH):
 * written through, never replaced by a renamed temp file (a symlink such as
 * /dev/stdout would be replaced, not followed).  Not atomic: a missing chunk
 * leaves PATH untouched, damage found while writing may leave part of the
 * content (--verify: nothing).  Returns an exit code (reported).
 */
static int get_through(const cli_ctx *ctx, udr_store *store, const udr_hash *h, const char *path,
                       unsigned flags, int verify)
{
	cli_progress *prog = NULL;
	uint64_t total = 0;
	struct stat st;
	int fd, rc;

	if ((rc = udr_store_exists(store, h)) <= 0) {
		char hex[UDR_HASH_HEXSIZE + 1];

		if (rc < 0)
			return cli_fail(rc);
		udr_hash_tohex(hex, h);
		cli_errorf("chunk %s not found", hex);
		return CLI_EXIT_NOTFOUND;
	}
	if (verify)
		return get_verified(store, h, path);
	if ((rc = cli_output_open(&fd, path)) != 0)
		return rc;
	/* a regular file behind a symlink has an offset to show progress by */
	if (progress_wanted(ctx) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    udr_store_size_recorded(&total, store, h) == 0)
		prog = cli_progress_start(ctx, "get", total, fd);
	rc = udr_store_get_fd(store, h, fd, flags);
	cli_progress_finish(prog);
	rc = rc ? cli_fail(rc) : CLI_EXIT_OK;
	if (close(fd) != 0 && rc == 0) {
		cli_errorf("cannot write %s: %s", path, strerror(errno));
		rc = CLI_EXIT_IO;
	}
	return rc;
}

struct get_opts {
	const char *output;
	int verify;
	int no_verify;
};

static int get_opt(int opt, const char *arg, void *payload)
{
	struct get_opts *o = payload;

	if (opt == 'o')
		o->output = arg;
	else if (opt == OPT_NO_VERIFY)
		o->no_verify = 1;
	else
		o->verify = 1;
	return -1;
}

int cli_cmd_get(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("get");
	struct get_opts o = { NULL, 0, 0 };
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
	if (o.output && strcmp(o.output, "-") == 0)
		o.output = NULL; /* standard output, as without -o */
	if (o.verify && o.no_verify)
		return cli_usage_error(self, "--verify and --no-verify exclude each other");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	flags = o.no_verify ? UDR_GET_NOVERIFY : 0; /* verified by default */
	if (o.output) {
		int kind = CLI_OUT_FILE;

		if ((rc = cli_output_classify(&kind, o.output, db)) == 0 && kind == CLI_OUT_THROUGH)
			rc = get_through(ctx, udr_db_store(db), &h, o.output, flags, o.verify);
		if (rc || kind == CLI_OUT_THROUGH) {
			udr_db_close(db);
			return rc;
		}
	}
	if (o.output && progress_wanted(ctx)) {
		rc = get_file_progress(ctx, udr_db_store(db), &h, o.output, flags);
		udr_db_close(db);
		return rc;
	}
	if (o.output) {
		rc = udr_store_get_file(udr_db_store(db), &h, o.output, flags);
	} else if (o.verify) {
		rc = get_verified(udr_db_store(db), &h, NULL);
		udr_db_close(db);
		return rc;
	} else {
		cli_progress *prog;
		uint64_t total = 0;

		fflush(stdout); /* the library writes to the descriptor directly */
		/* Progress when stdout is a file (its offset can be sampled). */
		prog = progress_wanted(ctx) && udr_store_size_recorded(&total, udr_db_store(db), &h) == 0
		       ? cli_progress_start(ctx, "get", total, STDOUT_FILENO) : NULL;
		rc = udr_store_get_fd(udr_db_store(db), &h, STDOUT_FILENO, flags);
		cli_progress_finish(prog);
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

/* Hidden, for tests: where the copies of a chunk are (udr_store_debug_locate). */
int cli_cmd_locate(cli_ctx *ctx, int argc, char **argv)
{
	udr_db *db;
	udr_hash h;
	char *text = NULL;
	int rc;

	if (argc != 2) {
		cli_errorf("usage: udr __locate HASH");
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_parse_hash(&h, argv[1])) != 0)
		return rc;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = udr_store_debug_locate(&text, udr_db_store(db), &h);
	udr_db_close(db);
	if (rc)
		return rc == UDR_ENOTFOUND ? (cli_fail(rc), CLI_EXIT_NOTFOUND) : cli_fail(rc);
	fputs(text, stdout);
	free(text);
	return CLI_EXIT_OK;
}

static double ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 1.0;
}

static void print_size_line(const char *label, uint64_t bytes)
{
	char human[32];

	cli_format_size(human, bytes);
	printf("%-19s %s (%" PRIu64 " bytes)\n", label, human, bytes);
}

static int stats_opt(int opt, const char *arg, void *payload)
{
	*(int *)payload = 1;
	return -1;
}

/* The query cache, when the query module is built in (zeros otherwise). */
struct cache_info {
	uint64_t parts, part_bytes, temp_bytes;
};

static int cache_info_get(struct cache_info *out, udr_db *db, int clear)
{
	memset(out, 0, sizeof(*out));
#ifdef UDR_HAVE_QUERY
	{
		udr_query_cache_info ci;
		int rc = clear ? udr_query_cache_clear(&ci, db, NULL) : udr_query_cache_stats(&ci, db, NULL);

		if (rc)
			return rc;
		out->parts = ci.parts;
		out->part_bytes = ci.part_bytes;
		out->temp_bytes = ci.temp_bytes;
	}
#else
	(void)db;
	(void)clear;
#endif
	return 0;
}

static const char *midx_state(int midx)
{
	return midx > 0 ? "present" : midx < 0 ? "damaged" : "none";
}

int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("stats");
	struct cache_info ci;
	udr_store_config cfg;
	udr_store_stats st;
	udr_store_pack_stats ps;
	char human[32];
	udr_db *db;
	int json = 0;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, stats_opt, &json);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = udr_store_stats_get(&st, udr_db_store(db));
	if (rc == 0)
		rc = udr_store_pack_stats_get(&ps, udr_db_store(db));
	if (rc == 0)
		rc = cache_info_get(&ci, db, 0);
	udr_store_get_config(&cfg, udr_db_store(db));
	udr_db_close(db);
	if (rc)
		return cli_fail(rc);
	if (json) {
		printf("{\"format\": %d, \"objects\": %" PRIu64 ", \"contents\": %" PRIu64
		       ", \"pieces\": %" PRIu64 ", \"manifests\": %" PRIu64 ", \"compressed\": %" PRIu64
		       ", \"deltas\": %" PRIu64 ", \"logical_bytes\": %" PRIu64
		       ", \"unique_bytes\": %" PRIu64 ", \"after_delta_bytes\": %" PRIu64
		       ", \"piece_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
		       ", \"dedup_ratio\": %.4f, \"delta_ratio\": %.4f, \"compression_ratio\": %.4f"
		       ", \"total_ratio\": %.4f, \"query_cache_parts\": %" PRIu64
		       ", \"query_cache_bytes\": %" PRIu64 ", \"query_temp_bytes\": %" PRIu64
		       ", \"packs\": %" PRIu64 ", \"pack_bytes\": %" PRIu64 ", \"pack_index_bytes\": %" PRIu64
		       ", \"packed_objects\": %" PRIu64 ", \"loose_objects\": %" PRIu64
		       ", \"midx\": \"%s\", \"midx_packs\": %" PRIu64 ", \"midx_objects\": %" PRIu64
		       ", \"midx_bytes\": %" PRIu64 "}\n",
		       cfg.format, st.pieces + st.manifests, st.contents, st.pieces, st.manifests,
		       st.compressed, st.deltas, st.logical_bytes, st.unique_bytes, st.after_delta_bytes,
		       st.piece_bytes, st.stored_bytes, ratio(st.logical_bytes, st.unique_bytes),
		       ratio(st.unique_bytes, st.after_delta_bytes),
		       ratio(st.after_delta_bytes, st.piece_bytes),
		       ratio(st.logical_bytes, st.stored_bytes), ci.parts, ci.part_bytes, ci.temp_bytes, ps.packs,
		       ps.pack_bytes, ps.index_bytes, ps.packed, ps.loose, midx_state(ps.midx), ps.midx_packs,
		       ps.midx_objects, ps.midx_bytes);
		return CLI_EXIT_OK;
	}
	printf("%-19s %d\n", "format:", cfg.format);
	printf("%-19s %" PRIu64 " (%" PRIu64 " piece%s, %" PRIu64 " manifest%s)\n", "objects:",
	       st.pieces + st.manifests, st.pieces, st.pieces == 1 ? "" : "s", st.manifests,
	       st.manifests == 1 ? "" : "s");
	printf("%-19s %" PRIu64 "\n", "contents:", st.contents);
	printf("%-19s %" PRIu64 "\n", "compressed pieces:", st.compressed);
	printf("%-19s %" PRIu64 "\n", "delta pieces:", st.deltas);
	print_size_line("logical:", st.logical_bytes);
	print_size_line("after dedup:", st.unique_bytes);
	print_size_line("after delta:", st.after_delta_bytes);
	print_size_line("after compression:", st.piece_bytes);
	print_size_line("on disk:", st.stored_bytes);
	printf("%-19s %.2f\n", "dedup ratio:", ratio(st.logical_bytes, st.unique_bytes));
	printf("%-19s %.2f\n", "delta ratio:", ratio(st.unique_bytes, st.after_delta_bytes));
	printf("%-19s %.2f\n", "compression ratio:", ratio(st.after_delta_bytes, st.piece_bytes));
	printf("%-19s %.2f\n", "total ratio:", ratio(st.logical_bytes, st.stored_bytes));
	cli_format_size(human, ps.pack_bytes + ps.index_bytes);
	printf("%-19s %" PRIu64 " pack%s, %s with indexes (%" PRIu64 " object%s); %" PRIu64
	       " loose object%s\n", "packs:", ps.packs, ps.packs == 1 ? "" : "s", human, ps.packed,
	       ps.packed == 1 ? "" : "s", ps.loose, ps.loose == 1 ? "" : "s");
	if (ps.midx == 1) {
		cli_format_size(human, ps.midx_bytes);
		printf("%-19s %" PRIu64 " of %" PRIu64 " pack%s, %" PRIu64 " object%s, %s\n", "multi-pack index:",
		       ps.midx_packs, ps.packs, ps.packs == 1 ? "" : "s", ps.midx_objects,
		       ps.midx_objects == 1 ? "" : "s", human);
	} else {
		printf("%-19s %s\n", "multi-pack index:", ps.midx ? "damaged, ignored (udr fsck rebuilds it)" : "none");
	}
	cli_format_size(human, ci.part_bytes);
	printf("%-19s %" PRIu64 " part%s, %s (%" PRIu64 " bytes)", "query cache:", ci.parts,
	       ci.parts == 1 ? "" : "s", human, ci.part_bytes);
	cli_format_size(human, ci.temp_bytes);
	printf(", temp %s (udr cache clear)\n", human);
	return CLI_EXIT_OK;
}

int cli_cmd_cache(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("cache");
	struct cache_info ci;
	char human[32];
	const char *action;
	udr_db *db;
	int json = 0, clear;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, stats_opt, &json);

	if (rc >= 0)
		return rc;
	if (NOPERANDS(argc) > 1)
		return cli_usage_error(self, "too many arguments");
	action = NOPERANDS(argc) ? argv[optind] : "stats";
	if (strcmp(action, "stats") != 0 && strcmp(action, "clear") != 0)
		return cli_usage_error(self, "unknown action \"%s\" (stats or clear)", action);
	clear = action[0] == 'c';
#ifndef UDR_HAVE_QUERY
	cli_errorf("this udr was built without the query module (DuckDB): there is no query cache");
	return CLI_EXIT_USAGE;
#endif
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	rc = cache_info_get(&ci, db, clear);
	udr_db_close(db);
	if (rc)
		return cli_fail(rc);
	if (json) {
		printf("{\"parts\": %" PRIu64 ", \"part_bytes\": %" PRIu64 ", \"temp_bytes\": %" PRIu64
		       "}\n", ci.parts, ci.part_bytes, ci.temp_bytes);
		return CLI_EXIT_OK;
	}
	cli_format_size(human, ci.part_bytes);
	if (clear) {
		printf("removed %" PRIu64 " cached part%s, %s (%" PRIu64 " bytes)\n", ci.parts,
		       ci.parts == 1 ? "" : "s", human, ci.part_bytes);
		return CLI_EXIT_OK;
	}
	printf("%" PRIu64 " cached part%s, %s (%" PRIu64 " bytes)", ci.parts, ci.parts == 1 ? "" : "s",
	       human, ci.part_bytes);
	cli_format_size(human, ci.temp_bytes);
	printf("; temp %s (%" PRIu64 " bytes)\n", human, ci.temp_bytes);
	return CLI_EXIT_OK;
}
