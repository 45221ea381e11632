/*
 * udr/sys/io.h - the I/O backend table (extension API, weaker stability).
 *
 * Every file-system call libudr makes goes through one table of function
 * pointers, like SQLite's VFS.  Tests replace it to inject faults (fail the
 * Nth write, fsync or rename; crash there); a later object-store backend
 * starts from the same seam.  The functions follow POSIX semantics: they
 * return -1 and set errno on failure.
 */
#ifndef UDR_SYS_IO_H
#define UDR_SYS_IO_H

#include <sys/types.h>
#include <sys/stat.h>
#include "../common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UDR_IO_METHODS_VERSION 1

typedef struct udr_io_methods {
	int version; /**< UDR_IO_METHODS_VERSION */
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*fsync)(int fd);
	int (*link)(const char *from, const char *to);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	int (*stat)(const char *path, struct stat *st);
	int (*fstat)(int fd, struct stat *st);
	int (*flock)(int fd, int operation);
	/** Give the open file fd (possibly an unnamed O_TMPFILE file) the name
	 *  to; fails with EEXIST when to exists. */
	int (*link_fd)(int fd, const char *to);
	/** Flush the whole file system that holds fd (data and metadata). */
	int (*syncfs)(int fd);
} udr_io_methods;

/**
 * Replace the process-wide I/O table (NULL restores the default).  The table
 * must stay valid until replaced.  Not to be called while other threads use
 * libudr.
 * @return 0, or UDR_EINVAL when methods has an unknown version or a NULL entry.
 */
UDR_EXTERN int udr_io_set(const udr_io_methods *methods);

/** The default table (plain POSIX calls, retrying EINTR). */
UDR_EXTERN const udr_io_methods *udr_io_default(void);

/** The table in use. */
UDR_EXTERN const udr_io_methods *udr_io_current(void);

#ifdef __cplusplus
}
#endif
#endif
