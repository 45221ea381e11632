/*
 * io.c - the process-wide I/O table (see udr/sys/io.h): default POSIX
 * methods that retry EINTR, and, in builds with UDR_FAULT_INJECTION, a
 * wrapper driven by the environment variable UDR_FAULT="<op>:<n>:<action>"
 * that makes the n-th call of op fail with EIO (action "eio") or kills the
 * process with SIGKILL right before it (action "crash").  Crash tests use it
 * to stop a real process at an exact step of the durability protocol.
 * Such builds also honour UDR_PAUSE (udr__test_pause), which holds a process
 * at a named point until the test lets it go.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util.h"

static int d_open(const char *path, int flags, mode_t mode)
{
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd;
}

static int d_close(int fd)
{
	/* Linux closes the descriptor even when close reports EINTR. */
	int rc = close(fd);
	return (rc < 0 && errno == EINTR) ? 0 : rc;
}

static ssize_t d_read(int fd, void *buf, size_t len)
{
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t d_pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n;
	do
		n = pread(fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t d_write(int fd, const void *buf, size_t len)
{
	ssize_t n;
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static int d_fsync(int fd)
{
	int rc;
	do
		rc = fsync(fd);
	while (rc < 0 && errno == EINTR);
	return rc;
}

static int d_link(const char *from, const char *to) { return link(from, to); }
static int d_rename(const char *from, const char *to) { return rename(from, to); }
static int d_unlink(const char *path) { return unlink(path); }
static int d_mkdir(const char *path, mode_t mode) { return mkdir(path, mode); }
static int d_stat(const char *path, struct stat *st) { return stat(path, st); }
static int d_fstat(int fd, struct stat *st) { return fstat(fd, st); }

static int d_flock(int fd, int op)
{
	int rc;
	do
		rc = flock(fd, op);
	while (rc < 0 && errno == EINTR);
	return rc;
}

static int d_link_fd(int fd, const char *to)
{
	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc path with
	 * AT_SYMLINK_FOLLOW does the same for everybody. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
}

static int d_syncfs(int fd)
{
	return syncfs(fd);
}

static const udr_io_methods default_methods = {
	UDR_IO_METHODS_VERSION, d_open, d_close, d_read, d_pread, d_write, d_fsync,
	d_link, d_rename, d_unlink, d_mkdir, d_stat, d_fstat, d_flock, d_link_fd, d_syncfs,
};

static _Atomic(const udr_io_methods *) current_methods = &default_methods;

#ifdef UDR_FAULT_INJECTION
enum fault_op { F_NONE, F_OPEN, F_WRITE, F_FSYNC, F_LINK, F_RENAME, F_UNLINK, F_MKDIR, F_SYNCFS };
static enum fault_op fault_op = F_NONE;
static long fault_n;
static int fault_crash;
static atomic_long fault_count;

static int fault_hit(enum fault_op op)
{
	if (op != fault_op)
		return 0;
	if (atomic_fetch_add(&fault_count, 1) + 1 != fault_n)
		return 0;
	if (fault_crash)
		kill(getpid(), SIGKILL);
	errno = EIO;
	return 1;
}

static int f_open(const char *p, int fl, mode_t m)
{
	/* only opens that create count (O_TMPFILE too): reads are not
	 * interesting crash points */
	if (((fl & O_CREAT) || (fl & O_TMPFILE) == O_TMPFILE) && fault_hit(F_OPEN))
		return -1;
	return d_open(p, fl, m);
}
static ssize_t f_write(int fd, const void *b, size_t n) { return fault_hit(F_WRITE) ? -1 : d_write(fd, b, n); }
static int f_fsync(int fd) { return fault_hit(F_FSYNC) ? -1 : d_fsync(fd); }
static int f_link(const char *a, const char *b) { return fault_hit(F_LINK) ? -1 : d_link(a, b); }
static int f_rename(const char *a, const char *b) { return fault_hit(F_RENAME) ? -1 : d_rename(a, b); }
static int f_unlink(const char *p) { return fault_hit(F_UNLINK) ? -1 : d_unlink(p); }
static int f_mkdir(const char *p, mode_t m) { return fault_hit(F_MKDIR) ? -1 : d_mkdir(p, m); }
static int f_link_fd(int fd, const char *to) { return fault_hit(F_LINK) ? -1 : d_link_fd(fd, to); }
static int f_syncfs(int fd) { return fault_hit(F_SYNCFS) ? -1 : d_syncfs(fd); }

static const udr_io_methods fault_methods = {
	UDR_IO_METHODS_VERSION, f_open, d_close, d_read, d_pread, f_write, f_fsync,
	f_link, f_rename, f_unlink, f_mkdir, d_stat, d_fstat, d_flock, f_link_fd, f_syncfs,
};

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void fault_init(void)
{
	static const char *names[] = {"", "open", "write", "fsync", "link", "rename", "unlink", "mkdir", "syncfs"};
	const char *spec = getenv("UDR_FAULT");
	char op[16];
	char action[16];
	long n;
	if (!spec || !*spec)
		return;
	if (sscanf(spec, "%15[a-z]:%ld:%15[a-z]", op, &n, action) != 3 || n < 1)
		return;
	for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(op, names[i]) == 0)
			fault_op = (enum fault_op)i;
	fault_n = n;
	fault_crash = strcmp(action, "crash") == 0;
	if (fault_op != F_NONE && current_methods == &default_methods)
		current_methods = &fault_methods;
}
#endif

const udr_io_methods *udr__io(void)
{
#ifdef UDR_FAULT_INJECTION
	pthread_once(&fault_once, fault_init);
#endif
	return atomic_load_explicit(&current_methods, memory_order_acquire);
}

int udr_io_set(const udr_io_methods *m)
{
	if (!m) {
		atomic_store(&current_methods, &default_methods);
		return 0;
	}
	if (m->version != UDR_IO_METHODS_VERSION || !m->open || !m->close || !m->read || !m->pread ||
	    !m->write || !m->fsync || !m->link || !m->rename || !m->unlink || !m->mkdir || !m->stat ||
	    !m->fstat || !m->flock || !m->link_fd || !m->syncfs)
		return udr__error_set(UDR_EINVAL, "invalid I/O methods table (version %d)", m->version);
	atomic_store(&current_methods, m);
	return 0;
}

const udr_io_methods *udr_io_default(void)
{
	return &default_methods;
}

const udr_io_methods *udr_io_current(void)
{
	return udr__io();
}

void udr__test_pause(const char *point)
{
#ifdef UDR_FAULT_INJECTION
	const char *spec = getenv("UDR_PAUSE");
	size_t n = strlen(point);
	char path[4096];
	int fd;
	if (!spec || strncmp(spec, point, n) != 0 || spec[n] != ':' || !spec[n + 1])
		return;
	snprintf(path, sizeof(path), "%s/%s.reached", spec + n + 1, point);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/%s.go", spec + n + 1, point);
	for (int i = 0; i < 12000 && access(path, F_OK) != 0; i++) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
#else
	(void)point;
#endif
}
