/*
 * cli/output.c - where the output operand of get, export and sql -o goes:
 * "-" is standard output, an existing device, FIFO or symlink is written
 * through (as the shell's > would), anything else is a file the library
 * makes atomically (temp file, rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* A target resolving inside the store is refused, as the library refuses an
 * output file there: writing through a symlink must not bypass that. */
static int check_outside_store(const char *path, udr_db *db)
{
	char *real = realpath(path, NULL), *root;
	int rc = CLI_EXIT_OK, err = errno;
	size_t n;

	root = db ? realpath(udr_db_path(db), NULL) : NULL;
	if (!real && err == ENOENT) {
		/* a file to be made: where its directory is */
		char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
		if (dir && slash && slash != dir)
			*slash = '\0';
		else if (dir && slash)
			strcpy(dir, "/");
		else if (dir)
			strcpy(dir, ".");
		real = dir ? realpath(dir, NULL) : NULL;
		free(dir);
	}

	/* /proc/self/fd/1 of a pipe resolves to no path: nothing to check */
	if (real && root) {
		n = strlen(root);
		if (strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/' || n == 1)) {
			cli_errorf("refusing to write \"%s\": it is inside the store (%s), which only "
			           "udr itself writes", path, root);
			rc = CLI_EXIT_USAGE;
		}
	}
	free(real);
	free(root);
	return rc;
}

int cli_output_classify(int *kind, const char *path, udr_db *db)
{
	struct stat st;

	if (strcmp(path, "-") == 0) {
		*kind = CLI_OUT_STDOUT;
		return CLI_EXIT_OK;
	}
	/* lstat: a symlink (/dev/stdout) must not be renamed over either */
	if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) {
		/* get -o S/catalog/HEAD replaced the store's HEAD (exit 0) */
		*kind = CLI_OUT_FILE;
		return check_outside_store(path, db);
	}
	if (S_ISDIR(st.st_mode) || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
		cli_errorf("output %s is a directory", path);
		return CLI_EXIT_USAGE;
	}
	*kind = CLI_OUT_THROUGH;
	return check_outside_store(path, db);
}

int cli_output_open(int *fd, const char *path)
{
	/* no O_CREAT: the target exists (cli_output_classify); a dangling
	 * symlink is reported rather than followed into a new file */
	*fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (*fd < 0) {
		cli_errorf("cannot open output %s: %s", path, strerror(errno));
		return CLI_EXIT_IO;
	}
	return CLI_EXIT_OK;
}

int cli_output_write(int fd, const void *buf, size_t len, const char *name)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			/* a reader that went away (| head) ends the output quietly */
			if (errno == EPIPE)
				return -1;
			cli_errorf("cannot write %s: %s", name, strerror(errno));
			return CLI_EXIT_IO;
		}
		p += w;
		len -= (size_t)w;
	}
	return CLI_EXIT_OK;
}

int cli_output_is_stdout(int fd)
{
	struct stat a, b;

	return fd == STDOUT_FILENO || (fstat(fd, &a) == 0 && fstat(STDOUT_FILENO, &b) == 0 &&
	                               a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
	                               a.st_rdev == b.st_rdev);
}

int cli_output_tmp_init(cli_output_tmp *t, const char *path)
{
	const char *dir = getenv("TMPDIR"), *base = strrchr(path, '/');
	size_t n;

	memset(t, 0, sizeof(*t));
	if (!dir || !*dir)
		dir = "/tmp";
	base = strcmp(path, "-") == 0 ? "stdout" : base ? base + 1 : path;
	/* the name keeps the operand's extension, which gives the format; a
	 * long one is cut from the front (the library appends a suffix) */
	if (strlen(base) > 64)
		base += strlen(base) - 64;
	n = strlen(dir) + sizeof("/udr-output-XXXXXX");
	if (!(t->dir = malloc(n)) || !(t->file = malloc(n + 1 + strlen(base)))) {
		free(t->dir);
		t->dir = NULL;
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	snprintf(t->dir, n, "%s/udr-output-XXXXXX", dir);
	if (!mkdtemp(t->dir)) {
		cli_errorf("cannot create a temporary directory in %s: %s", dir, strerror(errno));
		free(t->dir);
		free(t->file);
		memset(t, 0, sizeof(*t));
		return CLI_EXIT_IO;
	}
	sprintf(t->file, "%s/%s", t->dir, base);
	return CLI_EXIT_OK;
}

void cli_output_tmp_release(cli_output_tmp *t)
{
	if (t->file)
		unlink(t->file);
	if (t->dir)
		rmdir(t->dir);
	free(t->file);
	free(t->dir);
	memset(t, 0, sizeof(*t));
}

int cli_output_fail(int udr_code, const cli_output_tmp *t, const char *shown)
{
	const char *msg = udr_error_last()->message, *at;
	size_t tl = strlen(t->file);

	if (!msg || !msg[0] || !strstr(msg, t->file))
		return cli_fail(udr_code);
	/* the message names the temp file: name the user's operand instead */
	fputs("udr: ", stderr);
	while ((at = strstr(msg, t->file)) != NULL) {
		fwrite(msg, 1, (size_t)(at - msg), stderr);
		fputs(shown, stderr);
		msg = at + tl;
	}
	fputs(msg, stderr);
	fputc('\n', stderr);
	return cli_exit_code(udr_code);
}

int cli_output_deliver(int *to_stdout, const cli_output_tmp *t, const char *path, int kind)
{
	const char *name = kind == CLI_OUT_STDOUT ? "standard output" : path;
	static char buf[1 << 16];
	int in, out, rc = CLI_EXIT_OK;
	ssize_t r;

	in = open(t->file, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		cli_errorf("cannot open %s: %s", t->file, strerror(errno));
		return CLI_EXIT_IO;
	}
	if (kind == CLI_OUT_STDOUT) {
		out = STDOUT_FILENO;
		fflush(stdout);
	} else if ((rc = cli_output_open(&out, path)) != 0) {
		close(in);
		return rc;
	}
	*to_stdout = cli_output_is_stdout(out);
	signal(SIGPIPE, SIG_IGN);
	while (rc == CLI_EXIT_OK) {
		r = read(in, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_errorf("cannot read %s: %s", t->file, strerror(errno));
			rc = CLI_EXIT_IO;
		}
		if (r <= 0)
			break;
		if ((rc = cli_output_write(out, buf, (size_t)r, name)) < 0) {
			rc = CLI_EXIT_OK;
			break;
		}
	}
	close(in);
	if (out != STDOUT_FILENO && close(out) != 0 && rc == CLI_EXIT_OK) {
		cli_errorf("cannot write %s: %s", name, strerror(errno));
		rc = CLI_EXIT_IO;
	}
	return rc;
}
