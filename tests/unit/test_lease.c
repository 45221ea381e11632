/*
 * test_lease.c - lease files (docs/GC.md 2.1): create (locked before it is
 * visible), pin and unpin lines, truncation when no pin is left, GC's
 * collection (live owners' pins minus unpins, a torn last line ignored, a
 * damaged line pins everything, dead owners' files and .tmp files removed,
 * an owner killed by SIGKILL), and transactions' snapshot pins.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <udr/gc.h>

#include "util/util.h"
#include "catalog/lease.h"
#include "catalog/catalog_internal.h"

typedef struct fx {
	char *dir;
	char *cat;
	char *leases;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->cat = th_join(f->dir, "catalog");
	f->leases = th_join(f->cat, "leases");
	if (mkdir(f->cat, 0755) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_rmtree(f->dir);
	free(f->dir);
	free(f->cat);
	free(f->leases);
	free(f);
	return 0;
}

static int lock_is_free(const char *path)
{
	int fd = open(path, O_RDONLY), ok;
	assert_true(fd >= 0);
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return ok;
}

static void test_lease__pins_and_unpins(void **state)
{
	fx *f = *state;
	udr__lease *l;
	udr__lease_set s;
	uint64_t p1, p2, p3;
	char *text;
	size_t len;
	/* no directory yet: no pins */
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(udr__lease_open(&l, f->cat), 0);
	assert_false(lock_is_free(udr__lease_path(l)));
	assert_non_null(strstr(udr__lease_path(l), ".lease"));
	assert_int_equal(th_count_entries(f->leases), 1);
	assert_int_equal(udr__lease_pin_snapshot(&p1, l, 812, "main", "txn"), 0);
	assert_int_equal(udr__lease_pin_snapshot(&p2, l, 815, "dev", "txn"), 0);
	assert_int_equal(udr__lease_pin_snapshot(&p3, l, 820, "main", "txn"), 0);
	assert_int_equal(p1, 1);
	assert_int_equal(p3, 3);
	text = th_read_file(udr__lease_path(l), &len);
	assert_true(strncmp(text, "{\"pin\":1,\"snapshot\":812,\"branch\":\"main\",\"what\":\"txn\",\"ms\":", 58) == 0);
	free(text);
	assert_int_equal(udr__lease_unpin(l, p2), 0);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 2);
	assert_false(s.pins_all);
	assert_int_equal(s.removed, 0);
	for (size_t i = 0; i < s.n; i++) {
		assert_true(s.v[i].snapshot_pin);
		assert_true(s.v[i].snapshot == 812 || s.v[i].snapshot == 820);
		assert_string_equal(s.v[i].branch, "main");
		assert_int_equal(s.v[i].pid, getpid());
		assert_true(s.v[i].ms > 0);
	}
	udr__lease_set_free(&s);
	/* the last live pin gone: the file is emptied, the next pin at 0 */
	assert_int_equal(udr__lease_unpin(l, p1), 0);
	text = th_read_file(udr__lease_path(l), &len);
	assert_non_null(strstr(text, "{\"unpin\":1}\n"));
	free(text);
	assert_int_equal(udr__lease_unpin(l, p3), 0);
	text = th_read_file(udr__lease_path(l), &len);
	assert_int_equal(len, 0);
	free(text);
	assert_int_equal(udr__lease_pin_snapshot(&p1, l, 900, "main", "txn"), 0);
	assert_int_equal(p1, 4); /* numbers never reused */
	text = th_read_file(udr__lease_path(l), &len);
	assert_true(strncmp(text, "{\"pin\":4,\"snapshot\":900,", 24) == 0);
	free(text);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].snapshot, 900);
	udr__lease_set_free(&s);
	udr__lease_close(l);
	assert_int_equal(th_count_entries(f->leases), 0);
}

static void test_lease__torn_and_damaged_lines(void **state)
{
	fx *f = *state;
	udr__lease *l;
	udr__lease_set s;
	uint64_t p;
	int fd;
	const char *torn = "{\"pin\":9,\"snapsh";
	assert_int_equal(udr__lease_open(&l, f->cat), 0);
	assert_int_equal(udr__lease_pin_snapshot(&p, l, 5, "main", "txn"), 0);
	/* a line still being written (no '\n'): ignored */
	fd = open(udr__lease_path(l), O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, torn, strlen(torn)), (ssize_t)strlen(torn));
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 1);
	assert_false(s.pins_all);
	udr__lease_set_free(&s);
	/* completed into garbage: damage, GC must pin everything */
	assert_int_equal(write(fd, "\n", 1), 1);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_true(s.pins_all);
	assert_non_null(s.damaged);
	assert_non_null(strstr(s.damaged, ".lease"));
	assert_int_equal(s.n, 1);
	udr__lease_set_free(&s);
	close(fd);
	udr__lease_close(l);
}

static void test_lease__dead_owners_files_are_removed(void **state)
{
	fx *f = *state;
	udr__lease_set s;
	udr__lease *l;
	uint64_t p;
	int pipefd[2];
	pid_t child;
	char *stale, *staletmp;
	char c;
	assert_int_equal(udr__lease_open(&l, f->cat), 0); /* a live one stays */
	assert_int_equal(udr__lease_pin_snapshot(&p, l, 7, "main", "txn"), 0);
	/* a leftover of a dead owner (no lock) and an abandoned .tmp */
	stale = th_join(f->leases, "999999-00000000000000aa.lease");
	staletmp = th_join(f->leases, ".999999-00000000000000bb.tmp");
	th_write_file(stale, "{\"pin\":1,\"snapshot\":1,\"branch\":\"main\",\"what\":\"txn\",\"ms\":1}\n", 59);
	th_write_file(staletmp, "", 0);
	/* an owner killed by SIGKILL while it holds a pin */
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		udr__lease *cl;
		uint64_t cp;
		if (udr__lease_open(&cl, f->cat) != 0 || udr__lease_pin_snapshot(&cp, cl, 3, "main", "txn") != 0)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	assert_int_equal(th_count_entries(f->leases), 4);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 2); /* ours and the live child's */
	assert_int_equal(s.removed, 2);
	udr__lease_set_free(&s);
	assert_false(th_exists(stale));
	assert_false(th_exists(staletmp));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].snapshot, 7);
	assert_int_equal(s.removed, 1);
	udr__lease_set_free(&s);
	assert_int_equal(th_count_entries(f->leases), 1);
	udr__lease_close(l);
	free(stale);
	free(staletmp);
}

static void test_lease__transactions_pin_their_snapshot(void **state)
{
	fx *f = *state;
	udr_store *st;
	udr_catalog *c;
	udr_txn *t1, *t2;
	udr__lease_set s;
	char *sdir = th_join(f->dir, "chunks");
	char *cdir = th_join(f->dir, "cat2");
	assert_int_equal(udr_store_open(&st, sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_open(&c, cdir, st, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_txn_begin(&t1, c, NULL), 0);
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.v[0].snapshot_pin);
	assert_int_equal(s.v[0].snapshot, udr_txn_snapshot(t1));
	assert_string_equal(s.v[0].what, "txn");
	udr__lease_set_free(&s);
	assert_int_equal(udr_txn_begin(&t2, c, NULL), 0);
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 2);
	udr__lease_set_free(&s);
	udr_txn_abort(t1);
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 1);
	udr__lease_set_free(&s);
	assert_int_equal(udr_txn_commit(t2, NULL), 0); /* nothing staged */
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 0);
	udr__lease_set_free(&s);
	udr_txn_free(t1);
	udr_txn_free(t2);
	udr_catalog_close(c);
	{
		char *ld = th_join(cdir, "leases");
		assert_int_equal(th_count_entries(ld), 0);
		free(ld);
	}
	udr_store_close(st);
	free(sdir);
	free(cdir);
}

static void test_lease__a_forked_child_leaves_the_parents_lease_alone(void **state)
{
	fx *f = *state;
	udr_store *st;
	udr_catalog *c;
	udr_txn *t;
	udr__lease_set s;
	pid_t child;
	int status;
	char *sdir = th_join(f->dir, "chunks");
	char *cdir = th_join(f->dir, "cat4");
	assert_int_equal(udr_store_open(&st, sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_open(&c, cdir, st, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_txn_begin(&t, c, NULL), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		udr_txn *t2;
		udr__lease_set cs;
		int ok = udr_txn_begin(&t2, c, NULL) == 0;
		ok = ok && udr__leases_collect(&cs, cdir) == 0 && cs.n == 2;
		udr__lease_set_free(&cs);
		udr_txn_free(t);  /* the parent's pin: not ours to drop */
		udr_txn_free(t2);
		udr_catalog_close(c); /* removes only the child's own lease */
		udr_store_close(st);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].pid, getpid());
	assert_int_equal(s.v[0].snapshot, udr_txn_snapshot(t));
	udr__lease_set_free(&s);
	udr_txn_free(t);
	udr_catalog_close(c);
	udr_store_close(st);
	free(sdir);
	free(cdir);
}

static int open_errno;
static int x_open(const char *path, int flags, mode_t mode)
{
	if (open_errno && (flags & O_CREAT) && strstr(path, "/leases/")) {
		errno = open_errno;
		return -1;
	}
	return udr_io_default()->open(path, flags, mode);
}

static void test_lease__read_only_goes_unpinned_a_full_disk_fails(void **state)
{
	fx *f = *state;
	udr_store *st;
	udr_catalog *c;
	udr_txn *t = NULL;
	udr__lease_set s;
	udr_io_methods m = *udr_io_default();
	char *sdir = th_join(f->dir, "chunks");
	char *cdir = th_join(f->dir, "cat3");
	m.open = x_open;
	assert_int_equal(udr_store_open(&st, sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_open(&c, cdir, st, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_io_set(&m), 0);
	open_errno = ENOSPC;
	assert_int_equal(udr_txn_begin(&t, c, NULL), UDR_EIO);
	assert_null(t);
	open_errno = EROFS;
	assert_int_equal(udr_txn_begin(&t, c, NULL), 0);
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_int_equal(s.n, 0);
	udr__lease_set_free(&s);
	udr_txn_free(t);
	open_errno = 0;
	udr_io_set(NULL);
	udr_catalog_close(c);
	udr_store_close(st);
	free(sdir);
	free(cdir);
}

static void test_lease__version_after_and_put_pins(void **state)
{
	fx *f = *state;
	udr__lease *l, *l3;
	udr__lease_set s;
	uint64_t p1, p2, p3;
	int fd;
	assert_int_equal(udr__lease_open(&l, f->cat), 0);
	assert_int_equal(udr__lease_pin_version(&p1, l, "prices", 17, "sql"), 0);
	assert_int_equal(udr__lease_pin_after(&p2, l, 800, NULL), 0);
	assert_int_equal(udr__lease_pin_snapshot(&p3, l, 9, "dev", "txn"), 0);
	/* a put pin (written by hand into a lease of its own: the owner's
	 * next line would overwrite it in l) */
	assert_int_equal(udr__lease_open(&l3, f->cat), 0);
	fd = open(udr__lease_path(l3), O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	{
		const char *put = "{\"pin\":40,\"put\":\"00ff\",\"ms\":1}\n";
		assert_int_equal(write(fd, put, strlen(put)), (ssize_t)strlen(put));
	}
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_false(s.pins_all);
	assert_int_equal(s.n, 4);
	for (size_t i = 0; i < s.n; i++) {
		if (s.v[i].pin == p1) {
			assert_int_equal(s.v[i].kind, UDR__PIN_VERSION);
			assert_string_equal(s.v[i].table, "prices");
			assert_int_equal(s.v[i].version, 17);
			assert_string_equal(s.v[i].what, "sql");
		} else if (s.v[i].pin == p2) {
			assert_int_equal(s.v[i].kind, UDR__PIN_AFTER);
			assert_int_equal(s.v[i].after, 800);
			assert_string_equal(s.v[i].what, "subscription");
		} else if (s.v[i].pin == p3) {
			assert_int_equal(s.v[i].kind, UDR__PIN_SNAPSHOT);
			assert_int_equal(s.v[i].snapshot, 9);
			assert_string_equal(s.v[i].branch, "dev");
		} else {
			assert_int_equal(s.v[i].pin, 40);
			assert_int_equal(s.v[i].kind, UDR__PIN_PUT);
		}
	}
	udr__lease_set_free(&s);
	assert_int_equal(udr__lease_unpin(l, p1), 0);
	assert_int_equal(udr__leases_collect(&s, f->cat), 0);
	assert_int_equal(s.n, 3);
	udr__lease_set_free(&s);
	/* pins with bad fields or of no known kind may pin anything: damage */
	{
		static const char *const bad[] = {
			"{\"pin\":50,\"version\":[\"t\",0]}\n",
			"{\"pin\":51,\"version\":[\"t\"]}\n",
			"{\"pin\":52,\"version\":[7,3]}\n",
			"{\"pin\":53,\"after\":-1}\n",
			"{\"pin\":54,\"after\":\"x\"}\n",
			"{\"pin\":55,\"snapshot\":3,\"version\":[\"t\",1]}\n",
			"{\"pin\":56,\"what\":\"by hand\"}\n",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			udr__lease *l2;
			int fd2;
			assert_int_equal(udr__lease_open(&l2, f->cat), 0);
			fd2 = open(udr__lease_path(l2), O_WRONLY | O_APPEND);
			assert_int_equal(write(fd2, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
			close(fd2);
			assert_int_equal(udr__leases_collect(&s, f->cat), 0);
			if (!s.pins_all)
				fail_msg("not damage: %s", bad[i]);
			assert_non_null(strstr(s.damaged, udr__lease_path(l2)));
			assert_int_equal(s.n, 3);
			udr__lease_set_free(&s);
			udr__lease_close(l2);
		}
	}
	close(fd);
	udr__lease_close(l3);
	udr__lease_close(l);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t expiring_value(const char *cdir)
{
	char *p = th_join(cdir, "expiring"), buf[64] = {0};
	FILE *fp = fopen(p, "r");
	unsigned long long g = 0;
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof buf, fp));
	fclose(fp);
	free(p);
	/* HEAD's format: 20 digits, a space, 16 hex digits */
	assert_int_equal(strlen(buf), 38);
	assert_int_equal(buf[20], ' ');
	assert_int_equal(sscanf(buf, "%20llu", &g), 1);
	return g;
}

/* The expire handshake's file (GC.md 2.2): odd while an expirer holds it,
 * even after; a pinner waits while it is odd, and not for a dead expirer. */
static void test_lease__expiring_handshake(void **state)
{
	fx *f = *state;
	udr_store *st;
	udr_catalog *c;
	char *sdir = th_join(f->dir, "chunks");
	char *cdir = th_join(f->dir, "cat3");
	int fd, pipefd[2], status;
	pid_t pid;
	double t0, waited;
	assert_int_equal(udr_store_open(&st, sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_open(&c, cdir, st, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr__expiring_wait(c), 0); /* no file: no expirer ever */
	assert_int_equal(udr__expiring_begin(&fd, c), 0);
	assert_int_equal(expiring_value(cdir), 1);
	/* a pinner in another process waits until the expirer ends */
	assert_int_equal(pipe(pipefd), 0);
	t0 = now_s();
	pid = fork();
	if (pid == 0) {
		udr_catalog *c2;
		double w;
		if (udr_catalog_open(&c2, cdir, st, 0) != 0 || udr__expiring_wait(c2) != 0)
			_exit(1);
		w = now_s() - t0;
		if (write(pipefd[1], &w, sizeof w) != sizeof w)
			_exit(2);
		_exit(0);
	}
	usleep(300 * 1000);
	udr__expiring_end(fd, c);
	assert_int_equal(expiring_value(cdir), 2);
	assert_int_equal(read(pipefd[0], &waited, sizeof waited), (ssize_t)sizeof waited);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (waited < 0.25)
		fail_msg("the pinner did not wait for the expire step (%.3f s)", waited);
	assert_int_equal(udr__expiring_wait(c), 0);
	/* an expirer killed in its step leaves the value odd and the lock free:
	 * pinners go on at once; the next expirer takes the next odd value */
	pid = fork();
	if (pid == 0) {
		int fd2;
		if (udr__expiring_begin(&fd2, c) != 0)
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(expiring_value(cdir), 3);
	t0 = now_s();
	assert_int_equal(udr__expiring_wait(c), 0);
	assert_true(now_s() - t0 < 1.0);
	assert_int_equal(udr__expiring_begin(&fd, c), 0);
	assert_int_equal(expiring_value(cdir), 5);
	udr__expiring_end(fd, c);
	assert_int_equal(expiring_value(cdir), 6);
	/* a damaged value: pinners ask the lock; the expirer starts over */
	{
		char *p = th_join(cdir, "expiring");
		FILE *fp = fopen(p, "w");
		fputs("garbage\n", fp);
		fclose(fp);
		free(p);
	}
	assert_int_equal(udr__expiring_wait(c), 0);
	assert_int_equal(udr__expiring_begin(&fd, c), 0);
	assert_int_equal(expiring_value(cdir), 1);
	udr__expiring_end(fd, c);
	assert_int_equal(expiring_value(cdir), 2);
	close(pipefd[0]);
	close(pipefd[1]);
	udr_catalog_close(c);
	udr_store_close(st);
	free(sdir);
	free(cdir);
}

/* The public pins (include/udr/gc.h): own lease files, version and after
 * pins as GC reads them, advance, release, a catalog closed first. */
static void test_lease__public_pins(void **state)
{
	fx *f = *state;
	udr_store *st;
	udr_catalog *c;
	udr_version *v = NULL;
	udr_hash h;
	udr_pin *pv = NULL, *pa = NULL, *bad = NULL;
	udr__lease_set s;
	char *sdir = th_join(f->dir, "chunks");
	char *cdir = th_join(f->dir, "cat4");
	char *ldir = th_join(cdir, "leases");
	assert_int_equal(udr_store_open(&st, sdir, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_catalog_open(&c, cdir, st, UDR_OPEN_CREATE), 0);
	assert_int_equal(udr_store_put(&h, st, "abc", 3), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(udr_version_new(&v, "t", 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h), 0);
		assert_int_equal(udr_catalog_commit_next(c, v), 0);
		udr_version_free(v);
	}
	assert_int_equal(udr_pin_version(&bad, c, "t", 3), UDR_ENOTFOUND);
	assert_null(bad);
	assert_int_equal(udr_pin_version(&bad, c, "t", 0), UDR_EINVAL);
	assert_int_equal(udr_pin_version(&bad, c, "no/such", 1), UDR_EINVAL);
	assert_int_equal(udr_pin_version(&bad, c, "u", 1), UDR_ENOTFOUND);
	assert_int_equal(th_count_entries(ldir), 0); /* nothing left behind */
	assert_int_equal(udr_pin_version(&pv, c, "t", 1), 0);
	assert_int_equal(udr_pin_after(&pa, c, 0), 0);
	assert_int_equal(udr_pin_advance(pv, 5), UDR_EINVAL);
	assert_int_equal(udr_pin_advance(pa, 1), 0);
	assert_int_equal(udr_pin_advance(pa, 1), 0); /* not past: no-op */
	assert_int_equal(udr__leases_collect(&s, cdir), 0);
	assert_false(s.pins_all);
	assert_int_equal(s.n, 2);
	for (size_t i = 0; i < s.n; i++) {
		if (s.v[i].kind == UDR__PIN_VERSION) {
			assert_string_equal(s.v[i].table, "t");
			assert_int_equal(s.v[i].version, 1);
		} else {
			assert_int_equal(s.v[i].kind, UDR__PIN_AFTER);
			assert_int_equal(s.v[i].after, 1);
		}
	}
	udr__lease_set_free(&s);
	assert_int_equal(th_count_entries(ldir), 2); /* a lease each */
	/* an expired version cannot be pinned, and leaves no lease behind;
	 * the pinned one was kept by the expire step */
	{
		udr_retention_rule rule = UDR_RETENTION_RULE_INIT;
		char *rep = NULL;
		udr_pin *px = NULL;
		udr_hash h3;
		assert_int_equal(udr_store_put(&h3, st, "def", 3), 0);
		assert_int_equal(udr_version_new(&v, "t", 0), 0);
		assert_int_equal(udr_version_add_chunk(v, &h3), 0);
		assert_int_equal(udr_catalog_commit_next(c, v), 0); /* t@3 */
		udr_version_free(v);
		udr_pin_release(pa); /* its records would keep t@2 */
		pa = NULL;
		rule.keep_last = 1;
		assert_int_equal(udr_retention_apply(&rep, c, &rule, NULL, 0), 0);
		if (!strstr(rep, "\"ranges\":{\"t\":[[2,2]]}"))
			fail_msg("report: %s", rep);
		free(rep);
		assert_int_equal(udr_pin_version(&px, c, "t", 2), UDR_EEXPIRED);
		assert_null(px);
		assert_int_equal(th_count_entries(ldir), 1);
		/* snapshots: commit 2 reads t@2, expired; commit 3 reads t@3 */
		assert_int_equal(udr_pin_snapshot(&px, c, 2, NULL), UDR_EEXPIRED);
		assert_null(px);
		assert_int_equal(udr_pin_snapshot(&px, c, 0, NULL), UDR_ENOTFOUND);
		assert_int_equal(udr_pin_snapshot(&px, c, 99, NULL), UDR_ENOTFOUND);
		assert_int_equal(udr_pin_snapshot(&px, c, 3, "nosuch"), UDR_ENOTFOUND);
		assert_int_equal(udr_pin_snapshot(&px, c, 3, "bad name!"), UDR_EINVAL);
		assert_int_equal(th_count_entries(ldir), 1);
		assert_int_equal(udr_pin_snapshot(&px, c, 3, NULL), 0);
		assert_int_equal(udr__leases_collect(&s, cdir), 0);
		assert_int_equal(s.n, 2);
		for (size_t i = 0; i < s.n; i++)
			if (s.v[i].kind == UDR__PIN_SNAPSHOT) {
				assert_int_equal(s.v[i].snapshot, 3);
				assert_string_equal(s.v[i].branch, "main");
			}
		udr__lease_set_free(&s);
		udr_pin_release(px);
		assert_int_equal(th_count_entries(ldir), 1);
	}
	/* the pins do not need the handle any more */
	udr_catalog_close(c);
	assert_int_equal(th_count_entries(ldir), 1);
	udr_pin_release(pv);
	udr_pin_release(pa);
	udr_pin_release(NULL);
	assert_int_equal(th_count_entries(ldir), 0);
	udr_store_close(st);
	free(sdir);
	free(cdir);
	free(ldir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lease__pins_and_unpins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__torn_and_damaged_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__dead_owners_files_are_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__transactions_pin_their_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__read_only_goes_unpinned_a_full_disk_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__a_forked_child_leaves_the_parents_lease_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__version_after_and_put_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__expiring_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease__public_pins, setup, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
