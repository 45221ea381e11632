/*
 * helpers.h - shared helpers of the cmocka unit tests: scratch directories,
 * small file manipulations (write, flip a bit, truncate), chunk paths, and a
 * problem collector for the fsck callbacks.
 */
#ifndef UDR_TEST_HELPERS_H
#define UDR_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <udr/udr.h>
#include <udr/sys/io.h>

/* A fresh empty scratch directory (malloc'ed path); removed by th_rmtree. */
char *th_mkdtemp(void);
/* rm -rf path (ignores a missing path). */
void th_rmtree(const char *path);
/* malloc'ed a/b (and a/b/c when c is non-NULL). */
char *th_join(const char *a, const char *b);
char *th_join3(const char *a, const char *b, const char *c);
/* malloc'ed printf. */
char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* malloc'ed copy of s with the first occurrence of from replaced by to;
 * fails the test when from does not occur. */
char *th_replace(const char *s, const char *from, const char *to);
/* Write len bytes to path (creating/truncating); asserts success. */
void th_write_file(const char *path, const void *data, size_t len);
/* Read a whole file (malloc'ed, NUL-terminated); NULL when missing. */
char *th_read_file(const char *path, size_t *len);
/* 1 when path exists (lstat). */
int th_exists(const char *path);
/* Flip one bit of the byte at offset; asserts success. */
void th_flip_bit(const char *path, off_t offset);
/* Truncate to size; asserts success. */
void th_truncate(const char *path, off_t size);
/* Number of entries (files and dirs, excluding . and ..) in dir, -1 if missing. */
int th_count_entries(const char *dir);
/* Number of regular files under dir, recursively. */
int th_count_files_rec(const char *dir);

/* <storedir>/ab/cd/<hex> for hash (malloc'ed). */
char *th_chunk_path(const char *storedir, const udr_hash *h);
/* The object file of hash in whichever kind it is stored (FORMAT.md chunk
 * store format 2: <hash>, <hash>.zst, <hash>.m, <hash>.d); the raw name
 * when none exists.  malloc'ed. */
char *th_object_path(const char *storedir, const udr_hash *h);
/* Where the first copy of hash is (the object-location layer, through
 * udr_store_debug_locate): the file holding it (a loose object or a pack,
 * malloc'ed; NULL when absent), the offset of its payload in that file (the
 * bytes a loose object would hold) and the payload's length. */
char *th_object_at(const char *storedir, const udr_hash *h, off_t *off, size_t *len);
/* Flip one bit of the byte at `at` of the first copy's payload. */
void th_flip_object(const char *storedir, const udr_hash *h, size_t at);
/* Truncate the file holding the first copy to `keep` bytes of its payload (a
 * truncated pack loses the entries after it too). */
void th_truncate_object(const char *storedir, const udr_hash *h, size_t keep);
/* Remove every copy of hash: a loose file is unlinked, a pack is rewritten
 * without its entry (under its new name, with its index). */
void th_remove_object(const char *storedir, const udr_hash *h);
/* Fill buf with deterministic pseudo-random bytes from seed. */
void th_fill(void *buf, size_t len, uint32_t seed);
/* Hex of a hash in a static rotating buffer (for messages). */
const char *th_hex(const udr_hash *h);

/* Collects problems from fsck callbacks. */
typedef struct th_problems {
	int count;
	int codes[64];
	char *objects[64];
	char *paths[64];
	char *messages[64];
} th_problems;
int th_problem_cb(const udr_problem *p, void *payload);
void th_problems_free(th_problems *p);
/* 1 when some collected problem's object, path or message contains needle. */
int th_problems_mention(const th_problems *p, const char *needle);

/* Assert that the last error has code and that its message contains needle
 * (needle may be NULL). */
#define th_assert_error(code, needle) th_assert_error_(code, needle, __FILE__, __LINE__)
void th_assert_error_(int code, const char *needle, const char *file, int line);

/* Descriptors (/proc/self/fd, with TH_FDS) and mappings (/proc/self/maps,
 * with TH_MAPS) of this process that name a deleted file under dir; each is
 * printed. */
#define TH_FDS 1
#define TH_MAPS 2
int th_deleted_under(const char *dir, int what);

/* Run the group, with argv[1] (if any) as a cmocka test-name filter
 * (wildcards * and ?), so that a single test can be run by name. */
#define th_run(argc, argv, tests, setup, teardown) \
	(th_filter((argc), (argv)), cmocka_run_group_tests(tests, setup, teardown))
void th_filter(int argc, char **argv);

#endif
