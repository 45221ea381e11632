/*
 * test_powercut.c - a simulated power cut at every step of commits.
 *
 * An I/O table that runs every call for real but also keeps the "disk" as
 * a power cut would leave it: a shadow tree that only changes when
 * something is synced.  The model is stricter than ext4 or xfs (it keeps no
 * order between unsynced operations at all):
 *   - fsync(file) makes the file's current bytes durable (by inode), not
 *     its name;
 *   - fsync(directory) makes the directory's current entries durable: each
 *     file entry with its inode's durable bytes (an inode never synced is
 *     an empty file, the delayed-allocation worst case), new
 *     subdirectories empty, removed entries gone;
 *   - syncfs makes the whole tree durable as it is.
 * At the k-th mutating call (open that creates, write, fsync, syncfs, link,
 * rename, unlink, mkdir) the power goes: that call and every later one
 * fails with EIO.  The shadow is then opened as the store: every commit
 * that returned success must be there, readable, with its content and its
 * commit number, versions gap-free, and fsck clean.  k runs until the
 * workload completes without meeting the cut.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udr/gc.h>
#include <udr/txn.h>

static const udr_io_methods *D;
static char ROOT[PATH_MAX], SHADOW[PATH_MAX];
static long cut_at, calls;
static int dead;

/* durable bytes per inode */
struct ino_bytes {
	dev_t dev;
	ino_t ino;
	char *buf;
	size_t len;
};
static struct ino_bytes *durable;
static size_t ndurable, capdurable;

static struct ino_bytes *durable_get(dev_t dev, ino_t ino, int create)
{
	for (size_t i = 0; i < ndurable; i++)
		if (durable[i].dev == dev && durable[i].ino == ino)
			return &durable[i];
	if (!create)
		return NULL;
	if (ndurable == capdurable) {
		capdurable = capdurable ? capdurable * 2 : 64;
		durable = realloc(durable, capdurable * sizeof(*durable));
		assert_non_null(durable);
	}
	memset(&durable[ndurable], 0, sizeof(*durable));
	durable[ndurable].dev = dev;
	durable[ndurable].ino = ino;
	return &durable[ndurable++];
}

static void durable_clear(void)
{
	for (size_t i = 0; i < ndurable; i++)
		free(durable[i].buf);
	ndurable = 0;
}

/* the current bytes of the open file fd become its inode's durable bytes */
static void durable_take_fd(int fd)
{
	struct stat st;
	struct ino_bytes *b;
	assert_int_equal(fstat(fd, &st), 0);
	b = durable_get(st.st_dev, st.st_ino, 1);
	free(b->buf);
	b->buf = malloc((size_t)st.st_size + 1);
	assert_non_null(b->buf);
	b->len = (size_t)pread(fd, b->buf, (size_t)st.st_size, 0);
}

static void write_shadow_file(const char *path, const struct stat *st)
{
	struct ino_bytes *b = durable_get(st->st_dev, st->st_ino, 0);
	th_write_file(path, b ? b->buf : "", b ? b->len : 0);
}

static char *shadow_of(const char *real)
{
	size_t n = strlen(ROOT);
	if (strncmp(real, ROOT, n) != 0 || (real[n] != '/' && real[n] != '\0'))
		return NULL;
	return th_fmt("%s%s", SHADOW, real + n);
}

static int copy_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char *sp = shadow_of(path);
	(void)ftw;
	if (!sp)
		return 0;
	if (type == FTW_D) {
		mkdir(sp, 0755);
	} else if (type == FTW_F) {
		int fd = open(path, O_RDONLY);
		if (fd >= 0) {
			durable_take_fd(fd);
			close(fd);
		}
		write_shadow_file(sp, st);
	}
	free(sp);
	return 0;
}

/* syncfs: the shadow becomes the tree as it is */
static void shadow_sync_all(void)
{
	th_rmtree(SHADOW);
	assert_int_equal(nftw(ROOT, copy_one, 32, FTW_PHYS), 0);
}

/* fsync of a directory: its entries as they are, with durable bytes */
static void shadow_sync_dir(const char *real)
{
	char *sp = shadow_of(real);
	DIR *d;
	struct dirent *e;
	struct stat st;
	if (!sp)
		return;
	if (stat(sp, &st) < 0) { /* the directory itself is not durable: nothing is reachable */
		free(sp);
		return;
	}
	assert_non_null(d = opendir(real));
	while ((e = readdir(d)) != NULL) {
		char *rp, *p;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		rp = th_join(real, e->d_name);
		p = th_join(sp, e->d_name);
		if (lstat(rp, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				mkdir(p, 0755);
			else
				write_shadow_file(p, &st);
		}
		free(rp);
		free(p);
	}
	closedir(d);
	assert_non_null(d = opendir(sp));
	while ((e = readdir(d)) != NULL) {
		char *rp, *p;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		rp = th_join(real, e->d_name);
		p = th_join(sp, e->d_name);
		if (lstat(rp, &st) < 0)
			th_rmtree(p);
		free(rp);
		free(p);
	}
	closedir(d);
	free(sp);
}

static int step(void)
{
	if (dead)
		return 1;
	if (++calls == cut_at) {
		dead = 1;
		return 1;
	}
	return 0;
}

#define CUT(expr)                \
	do {                         \
		if (step()) {            \
			errno = EIO;         \
			return -1;           \
		}                        \
		return (expr);           \
	} while (0)

static int p_open(const char *p, int fl, mode_t m)
{
	if ((fl & O_CREAT) || (fl & O_TMPFILE) == O_TMPFILE)
		CUT(D->open(p, fl, m));
	if (dead && (fl & (O_WRONLY | O_RDWR))) {
		errno = EIO;
		return -1;
	}
	return D->open(p, fl, m);
}
static ssize_t p_write(int fd, const void *b, size_t n) { CUT(D->write(fd, b, n)); }
static int p_fsync(int fd)
{
	struct stat st;
	char proc[64], real[PATH_MAX];
	ssize_t n;
	int rc;
	if (step()) {
		errno = EIO;
		return -1;
	}
	if ((rc = D->fsync(fd)) < 0)
		return rc;
	assert_int_equal(fstat(fd, &st), 0);
	if (!S_ISDIR(st.st_mode)) {
		durable_take_fd(fd);
		return 0;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, real, sizeof(real) - 1);
	assert_true(n > 0);
	real[n] = '\0';
	shadow_sync_dir(real);
	return 0;
}
static int p_syncfs(int fd)
{
	int rc;
	if (step()) {
		errno = EIO;
		return -1;
	}
	if ((rc = D->syncfs(fd)) == 0)
		shadow_sync_all();
	return rc;
}
static int p_link(const char *a, const char *b) { CUT(D->link(a, b)); }
static int p_rename(const char *a, const char *b) { CUT(D->rename(a, b)); }
static int p_unlink(const char *p) { CUT(D->unlink(p)); }
static int p_mkdir(const char *p, mode_t m) { CUT(D->mkdir(p, m)); }
static int p_link_fd(int fd, const char *to) { CUT(D->link_fd(fd, to)); }
static int p_close(int fd) { return D->close(fd); }
static ssize_t p_read(int fd, void *b, size_t n) { return D->read(fd, b, n); }
static ssize_t p_pread(int fd, void *b, size_t n, off_t o) { return D->pread(fd, b, n, o); }
static int p_stat(const char *p, struct stat *st) { return D->stat(p, st); }
static int p_fstat(int fd, struct stat *st) { return D->fstat(fd, st); }
static int p_flock(int fd, int op) { return D->flock(fd, op); }

static const udr_io_methods POWERCUT = {
	UDR_IO_METHODS_VERSION, p_open, p_close, p_read, p_pread, p_write, p_fsync, p_link,
	p_rename, p_unlink, p_mkdir, p_stat, p_fstat, p_flock, p_link_fd, p_syncfs,
};

struct ack {
	uint64_t seq;
	char table[8];
	uint64_t version;
	udr_hash chunk;
};

static udr_version *make_version(udr_db *db, const char *table, int i, udr_hash *h)
{
	char text[64];
	udr_version *v = NULL;
	int n = snprintf(text, sizeof(text), "powercut %s %d", table, i);
	if (udr_store_put(h, udr_db_store(db), text, (size_t)n) != 0)
		return NULL;
	assert_int_equal(udr_version_new(&v, table, 0), 0);
	assert_int_equal(udr_version_add_chunk(v, h), 0);
	return v;
}

#define COMMITS 6

/* The workload: single-table commits and two-table transactions; returns
 * the number of acknowledged table versions in acks. */
static size_t workload(udr_db *db, struct ack *acks)
{
	size_t n = 0;
	uint64_t latest[3] = {0, 0, 0};
	for (int i = 0; i < COMMITS; i++) {
		const char *t = (i % 2) ? "b" : "a";
		udr_hash h, h2;
		udr_version *v = make_version(db, t, i, &h), *w;
		if (!v)
			break;
		if (i % 3 == 2) {
			udr_txn *txn = NULL;
			uint64_t seq = 0;
			if (!(w = make_version(db, "c", i, &h2))) {
				udr_version_free(v);
				break;
			}
			if (udr_txn_begin(&txn, udr_db_catalog(db), NULL) == 0 && udr_txn_write(txn, v) == 0 &&
			    udr_txn_write(txn, w) == 0 && udr_txn_commit(txn, &seq) == 0) {
				/* one process: the versions it made are the next ones */
				uint64_t lv = ++latest[i % 2], lw = ++latest[2];
				acks[n++] = (struct ack){seq, "", lv, h};
				snprintf(acks[n - 1].table, sizeof(acks[n - 1].table), "%s", t);
				acks[n++] = (struct ack){seq, "c", lw, h2};
			}
			udr_txn_free(txn);
			udr_version_free(w);
		} else if (udr_catalog_commit_next(udr_db_catalog(db), v) == 0) {
			assert_int_equal(v->version, ++latest[i % 2]);
			acks[n] = (struct ack){v->commit_seq, "", v->version, h};
			snprintf(acks[n].table, sizeof(acks[n].table), "%s", t);
			n++;
		}
		udr_version_free(v);
		if (dead)
			break;
	}
	return n;
}

static void check_shadow(const struct ack *acks, size_t n, long k)
{
	udr_db *db = NULL;
	udr_check_stats st;
	int rc = udr_db_open(&db, SHADOW, 0);
	if (rc != 0)
		fail_msg("cut at %ld: the store does not open after the power cut: %s", k, udr_error_last()->message);
	for (size_t i = 0; i < n; i++) {
		udr_version *v = NULL;
		rc = udr_catalog_get_version(&v, udr_db_catalog(db), acks[i].table, acks[i].version);
		if (rc != 0)
			fail_msg("cut at %ld: acknowledged %s@%llu (commit %llu) lost: %s", k, acks[i].table,
			         (unsigned long long)acks[i].version, (unsigned long long)acks[i].seq,
			         udr_error_last()->message);
		assert_int_equal(v->commit_seq, acks[i].seq);
		assert_int_equal(v->nchunks, 1);
		assert_true(udr_hash_equal(&v->chunks[0], &acks[i].chunk));
		assert_int_equal(udr_store_exists(udr_db_store(db), &acks[i].chunk), 1);
		udr_version_free(v);
	}
	for (const char *const *t = (const char *const[]){"a", "b", "c", NULL}; *t; t++) {
		uint64_t *vs = NULL;
		size_t nv = 0;
		if (udr_catalog_list_versions(&vs, &nv, udr_db_catalog(db), *t) == 0)
			for (size_t j = 0; j < nv; j++)
				assert_int_equal(vs[j], j + 1);
		free(vs);
	}
	if (udr_catalog_fsck(&st, udr_db_catalog(db), NULL, NULL) != 0)
		fail_msg("cut at %ld: catalog fsck after the power cut: %s", k, udr_error_last()->message);
	udr_db_close(db);
}

/* A store whose catalog is format 1 (an older store, never upgraded): its
 * writers sync before the record's link and fsync log/ after it. */
static void make_format1(udr_db **db, const char *root)
{
	char *cat = th_join(root, "catalog"), *cfg = th_join(cat, "config.json"), *p;
	udr_db_close(*db);
	*db = NULL;
	{
		const char *text = "{\"format\":1,\"kind\":\"udr-catalog\"}\n";
		th_write_file(cfg, text, strlen(text));
	}
	p = th_join(cat, "inflight");
	unlink(p);
	free(p);
	p = th_join(cat, "sync");
	unlink(p);
	free(p);
	free(cfg);
	free(cat);
	assert_int_equal(udr_db_open(db, root, 0), 0);
}

static void powercut_every_step(int format1)
{
	char *scratch = th_mkdtemp();
	long k;
	D = udr_io_default();
	for (k = 1; k < 5000; k++) {
		struct ack acks[2 * COMMITS];
		udr_db *db = NULL;
		size_t n;
		char *root = th_join(scratch, "store"), *shadow = th_join(scratch, "shadow");
		th_rmtree(root);
		th_rmtree(shadow);
		assert_int_equal(udr_db_open(&db, root, UDR_OPEN_CREATE), 0);
		if (format1)
			make_format1(&db, root);
		assert_non_null(realpath(root, ROOT));
		snprintf(SHADOW, sizeof(SHADOW), "%s", shadow);
		durable_clear();
		shadow_sync_all(); /* a store that was created and synced */
		cut_at = k;
		calls = 0;
		dead = 0;
		assert_int_equal(udr_io_set(&POWERCUT), 0);
		n = workload(db, acks);
		udr_io_set(NULL);
		udr_db_close(db);
		check_shadow(acks, n, k);
		free(root);
		free(shadow);
		if (!dead) {
			assert_int_equal(n, COMMITS + COMMITS / 3);
			break;
		}
	}
	printf("power cut at each of %ld steps of %d commits (format %d): every acknowledged commit survived\n", k - 1,
	       COMMITS, format1 ? 1 : 2);
	assert_true(k > 20);
	durable_clear();
	th_rmtree(scratch);
	free(scratch);
}

static void test_powercut_every_step(void **state)
{
	(void)state;
	powercut_every_step(0);
}

/* format 1: the record is synced (syncfs) before its link, then only log/
 * is fsynced; an unnamed record file is not in the tree syncfs makes
 * durable here, nor on ext4 without a journal (its inode is written with
 * no link, and the fsync of log/ does not write it again) */
static void test_powercut_every_step_format1(void **state)
{
	(void)state;
	powercut_every_step(1);
}

/* ---- expiry (GC.md 1.4, review R3) ------------------------------------------ */

static int is_expired(udr_db *db, uint64_t v)
{
	udr_expiry e;
	if (udr_version_expiry(&e, udr_db_catalog(db), "t", v) != 0)
		fail_msg("expiry of t@%llu: %s", (unsigned long long)v, udr_error_last()->message);
	return e.expired;
}

/* A power cut at each step of an expire record (the first one: the
 * catalog becomes format 4), a restore and a second expire: every
 * acknowledged one is there after the cut, none is half there (the kept
 * versions read, the expired ones are expired exactly as the records
 * linked say), and fsck is clean. */
static void test_powercut_expire(void **state)
{
	char *scratch = th_mkdtemp();
	long k;
	(void)state;
	D = udr_io_default();
	for (k = 1; k < 5000; k++) {
		udr_db *db = NULL;
		udr_hash h;
		uint64_t s1 = 0, s2 = 0, s3 = 0, head = 0;
		int ack1 = 0, ack2 = 0, ack3 = 0;
		udr_retention_rule r = UDR_RETENTION_RULE_INIT;
		char *rep = NULL;
		char *root = th_join(scratch, "store"), *shadow = th_join(scratch, "shadow");
		th_rmtree(root);
		th_rmtree(shadow);
		assert_int_equal(udr_db_open(&db, root, UDR_OPEN_CREATE), 0);
		for (int i = 0; i < 6; i++) { /* t@1..6, commits 1..6 */
			udr_version *v = make_version(db, "t", i, &h);
			assert_non_null(v);
			assert_int_equal(udr_catalog_commit_next(udr_db_catalog(db), v), 0);
			udr_version_free(v);
		}
		assert_non_null(realpath(root, ROOT));
		snprintf(SHADOW, sizeof(SHADOW), "%s", shadow);
		durable_clear();
		shadow_sync_all();
		cut_at = k;
		calls = 0;
		dead = 0;
		assert_int_equal(udr_io_set(&POWERCUT), 0);
		r.keep_last = 3; /* t@1..3 */
		if (udr_retention_apply(&rep, udr_db_catalog(db), &r, NULL, 0) == 0 &&
		    udr_catalog_head(&s1, udr_db_catalog(db)) == 0 && s1 == 7)
			ack1 = 1;
		udr_free(rep);
		rep = NULL;
		if (ack1 && udr_retention_restore(&s2, udr_db_catalog(db), "t", 2, 2) == 0 && s2 == 8)
			ack2 = 1;
		r.keep_last = 2; /* t@4 too (t@2 again) */
		if (ack2 && udr_retention_apply(&rep, udr_db_catalog(db), &r, NULL, 0) == 0 &&
		    udr_catalog_head(&s3, udr_db_catalog(db)) == 0 && s3 == 9)
			ack3 = 1;
		udr_free(rep);
		udr_io_set(NULL);
		udr_db_close(db);
		db = NULL;
		if (udr_db_open(&db, shadow, 0) != 0)
			fail_msg("cut at %ld: the store does not open after the power cut: %s", k, udr_error_last()->message);
		assert_int_equal(udr_catalog_head(&head, udr_db_catalog(db)), 0);
		if (head < 6 + (uint64_t)ack1 + (uint64_t)ack2 + (uint64_t)ack3)
			fail_msg("cut at %ld: acknowledged expiry lost (head %llu, acks %d %d %d)", k, (unsigned long long)head,
			         ack1, ack2, ack3);
		/* what the linked records say, whatever was acknowledged */
		assert_int_equal(is_expired(db, 1), head >= 7);
		assert_int_equal(is_expired(db, 2), head == 7 || head >= 9);
		assert_int_equal(is_expired(db, 3), head >= 7);
		assert_int_equal(is_expired(db, 4), head >= 9);
		assert_int_equal(is_expired(db, 5), 0);
		assert_int_equal(is_expired(db, 6), 0);
		for (uint64_t v = 1; v <= 6; v++) {
			int want = (v == 1 || v == 3) ? head >= 7 : v == 2 ? (head == 7 || head >= 9) : v == 4 ? head >= 9 : 0;
			assert_int_equal(udr_version_readable(udr_db_catalog(db), "t", v), want ? UDR_EEXPIRED : 0);
		}
		if (udr_catalog_fsck(NULL, udr_db_catalog(db), NULL, NULL) != 0)
			fail_msg("cut at %ld: catalog fsck after the power cut: %s", k, udr_error_last()->message);
		udr_db_close(db);
		free(root);
		free(shadow);
		if (!dead) {
			assert_true(ack1 && ack2 && ack3);
			break;
		}
	}
	printf("power cut at each of %ld steps of two expires and a restore: every acknowledged one survived\n", k - 1);
	assert_true(k > 10);
	durable_clear();
	th_rmtree(scratch);
	free(scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_powercut_every_step),
		cmocka_unit_test(test_powercut_every_step_format1),
		cmocka_unit_test(test_powercut_expire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
