/*
 * test_gcfence.c - the writers' side of the GC fence (docs/GC.md 4.3): the
 * hold on active.<e mod 2>, fresh records (only for whole-content hits on
 * copies older than the grace and than the put), the reader GC uses (a torn
 * record ignored), failures while recording (the put fails), and a store
 * the process cannot write (puts fail clearly, reads work).
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/gcfence.h"

typedef struct fx {
	char *dir;
	char *sdir;
	char *gc;
	udr_store *st;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->sdir = th_join(f->dir, "chunks");
	f->gc = th_join(f->sdir, "gc");
	if (udr_store_open(&f->st, f->sdir, UDR_OPEN_CREATE) != 0)
		return -1;
	udr__gc_test_now_ms = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	udr_io_set(NULL);
	udr__gc_test_now_ms = 0;
	udr_store_close(f->st);
	th_rmtree(f->dir);
	free(f->dir);
	free(f->sdir);
	free(f->gc);
	free(f);
	return 0;
}

static size_t file_size(const char *path)
{
	size_t n = 0;
	char *t = th_read_file(path, &n);
	if (!t)
		return (size_t)-1;
	free(t);
	return n;
}

static int try_ex(const char *gc, int parity)
{
	char *p = th_fmt("%s/active.%d", gc, parity);
	int fd = open(p, O_RDONLY), ok;
	assert_true(fd >= 0);
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	free(p);
	return ok;
}

static void test_gcfence__hold_takes_the_epochs_parity(void **state)
{
	fx *f = *state;
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	udr__gcstate gs;
	assert_int_equal(udr__gc_hold_begin(&h, f->st), 0);
	assert_int_equal(h.epoch, 0);
	assert_false(try_ex(f->gc, 0));
	udr__gc_hold_end(&h);
	assert_true(try_ex(f->gc, 0));
	udr__gcstate_init(&gs);
	gs.epoch = 3;
	gs.drained = 2;
	gs.phase = UDR__GC_DOOMED;
	assert_int_equal(udr__gcstate_save(f->sdir, f->st->tmpdir, &gs), 0);
	assert_int_equal(udr__gc_hold_begin(&h, f->st), 0);
	assert_int_equal(h.epoch, 3);
	assert_int_equal(h.phase, UDR__GC_DOOMED);
	assert_true(try_ex(f->gc, 0));
	assert_false(try_ex(f->gc, 1));
	udr__gc_hold_end(&h);
	udr__gc_hold_end(&h); /* twice is fine */
	assert_true(try_ex(f->gc, 1));
}

/* A child forked while a thread of the parent holds the fence (a Python
 * worker pool started during a put) inherits the descriptor, and with it
 * the lock's open file: without care the lock would outlive the parent's
 * put for the child's whole life, and every GC would wait on it. */
static void test_gcfence__a_forked_child_does_not_keep_the_hold(void **state)
{
	fx *f = *state;
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	int go[2], done[2];
	char b = 0;
	pid_t pid;
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	assert_int_equal(udr__gc_hold_begin(&h, f->st), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		if (write(done[1], "r", 1) != 1)
			_exit(2);
		if (read(go[0], &b, 1) < 0) /* lives until the parent has looked */
			_exit(3);
		/* the child's copy of the hold, ended after its descriptor's
		 * number was reused, must not close the new file */
		{
			int fd = open("/dev/null", O_RDONLY);
			udr__gc_hold_end(&h);
			if (fd >= 0 && fcntl(fd, F_GETFD) < 0)
				_exit(4);
		}
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	assert_int_equal(read(done[0], &b, 1), 1);
	assert_false(try_ex(f->gc, 0)); /* the parent's hold */
	udr__gc_hold_end(&h);
	assert_true(try_ex(f->gc, 0)); /* the child does not hold it */
	/* and a hold the child takes is its own */
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	{
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	close(done[0]);
}

struct putarg {
	udr_store *st;
	int rc;
	int done;
};

static void *put_thread(void *p)
{
	struct putarg *a = p;
	udr_hash h;
	a->rc = udr_store_put(&h, a->st, "blocked put", 11);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_gcfence__an_exclusive_holder_blocks_puts(void **state)
{
	fx *f = *state;
	udr_hash h;
	struct putarg a = {f->st, -100, 0};
	pthread_t t;
	int fds[2];
	assert_int_equal(udr_store_put(&h, f->st, "x", 1), 0);
	for (int i = 0; i < 2; i++) {
		char *p = th_fmt("%s/active.%d", f->gc, i);
		fds[i] = open(p, O_RDWR | O_CREAT, 0644);
		assert_true(fds[i] >= 0);
		assert_int_equal(flock(fds[i], LOCK_EX), 0);
		free(p);
	}
	assert_int_equal(pthread_create(&t, NULL, put_thread, &a), 0);
	usleep(300000);
	assert_int_equal(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);
	close(fds[0]);
	close(fds[1]);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
}

static void test_gcfence__exclusive_waits_for_writers_and_stops_them(void **state)
{
	fx *f = *state;
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	struct putarg a = {f->st, -100, 0};
	pthread_t t;
	int fds[2];
	/* a writer in progress: the non-blocking form says so, holds nothing */
	assert_int_equal(udr__gc_hold_begin(&h, f->st), 0);
	assert_int_equal(udr__gc_exclusive_begin(fds, f->st, false), UDR_ELOCKED);
	th_assert_error(UDR_ELOCKED, "active.0");
	assert_int_equal(fds[0], -1);
	udr__gc_hold_end(&h);
	assert_int_equal(udr__gc_exclusive_begin(fds, f->st, true), 0);
	assert_false(try_ex(f->gc, 0));
	assert_false(try_ex(f->gc, 1));
	assert_int_equal(pthread_create(&t, NULL, put_thread, &a), 0);
	usleep(300000);
	assert_int_equal(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);
	udr__gc_exclusive_end(fds);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_true(try_ex(f->gc, 0));
}

/* A gc run by the thread that holds the fence would wait for itself
 * forever (flock locks of two descriptors exclude each other in one
 * process): refused at once; another thread's hold is waited for. */
static void *hold_for_a_while(void *arg)
{
	fx *f = arg;
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	if (udr__gc_hold_begin(&h, f->st) == 0) {
		usleep(300000);
		udr__gc_hold_end(&h);
	}
	return NULL;
}

static void test_gcfence__a_gc_of_the_holding_thread_is_refused_not_deadlocked(void **state)
{
	fx *f = *state;
	udr__gc_hold h = UDR__GC_HOLD_INIT;
	pthread_t t;
	int fds[2];
	assert_int_equal(udr__gc_hold_begin(&h, f->st), 0);
	assert_int_equal(udr__gc_exclusive_begin(fds, f->st, true), UDR_ELOCKED);
	th_assert_error(UDR_ELOCKED, "this thread holds garbage collection out");
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	udr__gc_hold_end(&h);
	assert_int_equal(pthread_create(&t, NULL, hold_for_a_while, f), 0);
	usleep(100000);
	assert_int_equal(udr__gc_exclusive_begin(fds, f->st, true), 0); /* waited */
	udr__gc_exclusive_end(fds);
	pthread_join(t, NULL);
}

static void test_gcfence__fresh_only_for_old_copies_made_before_the_put(void **state)
{
	fx *f = *state;
	udr_hash x, y, z;
	char *fresh0 = th_join(f->gc, "fresh.0");
	unsigned char *rec;
	size_t n;
	assert_int_equal(udr__store_gc_grace_ms(f->st), UDR__GC_GRACE_MS_DEFAULT);
	assert_int_equal(udr_store_put(&x, f->st, "old content", 11), 0);
	assert_false(th_exists(fresh0));
	/* the same content again at once: a young copy, no record */
	assert_int_equal(udr_store_put(&x, f->st, "old content", 11), 0);
	assert_false(th_exists(fresh0));
	/* 25 h later: the copy is older than the grace (and than the put's
	 * start, less the 50 ms margin for coarse file times) */
	usleep(100000);
	udr__gc_test_now_ms = udr__now_ms() + 25 * 3600 * 1000LL;
	assert_int_equal(udr_store_put(&x, f->st, "old content", 11), 0);
	rec = (unsigned char *)th_read_file(fresh0, &n);
	assert_non_null(rec);
	assert_int_equal(n, UDR__GC_FRESH_RECORD);
	assert_memory_equal(rec + 8, x.bytes, 32);
	assert_int_equal((int64_t)udr__get_le64(rec), udr__gc_test_now_ms);
	free(rec);
	/* new content put "then" is its own copy: no record; chunked content too */
	assert_int_equal(udr_store_put(&y, f->st, "brand new", 9), 0);
	{
		size_t big = (size_t)3 << 20;
		char *b = malloc(big);
		th_fill(b, big, 5);
		assert_int_equal(udr_store_put(&z, f->st, b, big), 0);
		assert_int_equal(file_size(fresh0), UDR__GC_FRESH_RECORD);
		usleep(100000);
		udr__gc_test_now_ms = udr__now_ms() + 48 * 3600 * 1000LL;
		assert_int_equal(udr_store_put(&z, f->st, b, big), 0);
		free(b);
	}
	assert_int_equal(file_size(fresh0), 2 * UDR__GC_FRESH_RECORD);
	rec = (unsigned char *)th_read_file(fresh0, &n);
	assert_memory_equal(rec + 40 + 8, z.bytes, 32); /* the manifest: the whole content */
	free(rec);
	free(fresh0);
}

struct collect {
	int n;
	int64_t ms[8];
	udr_hash h[8];
	int stop_at;
};

static int collect_cb(int64_t ms, const udr_hash *h, void *p)
{
	struct collect *c = p;
	if (c->n < 8) {
		c->ms[c->n] = ms;
		c->h[c->n] = *h;
	}
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void test_gcfence__reader_skips_a_torn_record(void **state)
{
	fx *f = *state;
	struct collect c = {0};
	unsigned char buf[3 * 40 + 17];
	char *path = th_join(f->gc, "fresh.1");
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 1, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(udr__gc_dir_ensure(f->sdir), 0);
	for (int i = 0; i < 3; i++) {
		udr__put_le64(buf + 40 * i, 1000 + (uint64_t)i);
		memset(buf + 40 * i + 8, 0xa0 + i, 32);
	}
	memset(buf + 120, 0xee, 17);
	th_write_file(path, buf, sizeof(buf));
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 1, collect_cb, &c), 0);
	assert_int_equal(c.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c.ms[i], 1000 + i);
		assert_int_equal(c.h[i].bytes[0], 0xa0 + i);
		assert_int_equal(c.h[i].bytes[31], 0xa0 + i);
	}
	/* parity 3 is parity 1 */
	c.n = 0;
	c.stop_at = 2;
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 3, collect_cb, &c), 7);
	assert_int_equal(c.n, 2);
	/* GC's reset: gone, and reading it again is no record; twice is fine */
	assert_int_equal(udr__gc_fresh_reset(f->sdir, 1), 0);
	assert_false(th_exists(path));
	c.n = 0;
	c.stop_at = 0;
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 1, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(udr__gc_fresh_reset(f->sdir, 1), 0);
	/* more records than one read buffer */
	{
		size_t many = 1000, len = many * 40 + 39;
		unsigned char *big = calloc(1, len);
		for (size_t i = 0; i < many; i++)
			udr__put_le64(big + 40 * i, i);
		th_write_file(path, big, len);
		free(big);
		c.n = 0;
		c.stop_at = 0;
		assert_int_equal(udr__gc_fresh_foreach(f->sdir, 1, collect_cb, &c), 0);
		assert_int_equal(c.n, 1000);
	}
	free(path);
}

/* A writer killed by a power cut mid-append leaves a torn record (its put
 * failed: the record was not durable).  The next writer's record must not
 * be misaligned behind it, or GC would read garbage hashes and sweep the
 * content the record protects. */
static void test_gcfence__a_record_after_a_torn_one_is_read(void **state)
{
	fx *f = *state;
	struct collect c = {0};
	unsigned char torn[40 + 17];
	char *fresh0 = th_join(f->gc, "fresh.0");
	udr_hash x;
	assert_int_equal(udr_store_put(&x, f->st, "old content", 11), 0);
	assert_int_equal(udr__gc_dir_ensure(f->sdir), 0);
	udr__put_le64(torn, 5);
	memset(torn + 8, 0xab, 32);
	memset(torn + 40, 0xee, 17);
	th_write_file(fresh0, torn, sizeof(torn));
	usleep(100000);
	udr__gc_test_now_ms = udr__now_ms() + 25 * 3600 * 1000LL;
	assert_int_equal(udr_store_put(&x, f->st, "old content", 11), 0);
	assert_int_equal(file_size(fresh0), 2 * UDR__GC_FRESH_RECORD);
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ms[0], 5);
	assert_memory_equal(c.h[1].bytes, x.bytes, 32);
	assert_int_equal(c.ms[1], udr__gc_test_now_ms);
	free(fresh0);
}

/* ---- failures -------------------------------------------------------------- */

static int fail_mode; /* 1: open of fresh.N fails, 2: its fsync, 3: EROFS on creating anything */
static int fresh_fd = -1;

static int x_open(const char *path, int flags, mode_t mode)
{
	if (fail_mode == 1 && strstr(path, "/gc/fresh.")) {
		errno = ENOSPC;
		return -1;
	}
	if (fail_mode == 3 && (flags & O_CREAT)) {
		errno = EROFS;
		return -1;
	}
	int fd = udr_io_default()->open(path, flags, mode);
	if (strstr(path, "/gc/fresh."))
		fresh_fd = fd;
	return fd;
}
static int x_fsync(int fd)
{
	if (fail_mode == 2 && fd == fresh_fd) {
		errno = EIO;
		return -1;
	}
	return udr_io_default()->fsync(fd);
}
static int x_mkdir(const char *p, mode_t m)
{
	if (fail_mode == 3) {
		errno = EROFS;
		return -1;
	}
	return udr_io_default()->mkdir(p, m);
}

static void test_gcfence__a_fresh_record_that_cannot_be_written_fails_the_put(void **state)
{
	fx *f = *state;
	udr_hash x;
	udr_io_methods m = *udr_io_default();
	m.open = x_open;
	m.fsync = x_fsync;
	assert_int_equal(udr_store_put(&x, f->st, "content", 7), 0);
	usleep(100000);
	udr__gc_test_now_ms = udr__now_ms() + 25 * 3600 * 1000LL;
	assert_int_equal(udr_io_set(&m), 0);
	for (fail_mode = 1; fail_mode <= 2; fail_mode++) {
		assert_int_equal(udr_store_put(&x, f->st, "content", 7), UDR_EIO);
		th_assert_error(UDR_EIO, "cannot record that");
	}
	fail_mode = 0;
	assert_int_equal(udr_store_put(&x, f->st, "content", 7), 0);
	udr_io_set(NULL);
}

/* A whole-content hit on a copy younger than the grace but made before the
 * put began is recorded too: the copy may be named only by expired
 * versions, which root 4 does not protect, and GC may run with a --grace
 * below the store's.  Unsynced and best effort (a lost record only makes a
 * later commit fail cleanly): no fsync, and a failed write does not fail
 * the put. */
static void test_gcfence__a_hit_on_a_young_copy_is_recorded_unsynced(void **state)
{
	fx *f = *state;
	struct collect c = {0};
	udr_hash x, y;
	udr_io_methods m = *udr_io_default();
	char *fresh0 = th_join(f->gc, "fresh.0");
	m.open = x_open;
	m.fsync = x_fsync;
	assert_int_equal(udr_store_put(&x, f->st, "young content", 13), 0);
	assert_false(th_exists(fresh0));
	usleep(100000);
	assert_int_equal(udr_io_set(&m), 0);
	fail_mode = 2; /* an fsync of fresh.N would fail the put */
	assert_int_equal(udr_store_put(&y, f->st, "young content", 13), 0);
	assert_memory_equal(y.bytes, x.bytes, 32);
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_memory_equal(c.h[0].bytes, x.bytes, 32);
	assert_true(c.ms[0] > udr__now_ms() - 60000);
	fail_mode = 1; /* fresh.N cannot be opened: the put still succeeds */
	assert_int_equal(udr_store_put(&y, f->st, "young content", 13), 0);
	fail_mode = 0;
	udr_io_set(NULL);
	assert_int_equal(file_size(fresh0), UDR__GC_FRESH_RECORD);
	free(fresh0);
}

static void test_gcfence__a_store_that_cannot_be_written_still_reads(void **state)
{
	fx *f = *state;
	udr_hash x, y;
	unsigned char *out = NULL;
	size_t len = 0;
	udr_io_methods m = *udr_io_default();
	m.open = x_open;
	m.mkdir = x_mkdir;
	assert_int_equal(udr_store_put(&x, f->st, "readable", 8), 0);
	th_rmtree(f->gc); /* a store written by an older udr: no gc/ */
	fail_mode = 3;
	assert_int_equal(udr_io_set(&m), 0);
	assert_int_equal(udr_store_put(&y, f->st, "refused", 7), UDR_EIO);
	th_assert_error(UDR_EIO, "write access");
	assert_int_equal(udr_store_get((void **)&out, &len, f->st, &x), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(out, "readable", 8);
	free(out);
	udr_io_set(NULL);
	fail_mode = 0;
	assert_false(th_exists(f->gc));
}

/* fsck --repair cuts a dead writer's torn tail to whole records (the
 * records before it intact, read back the same); whole files, a missing
 * file and a second repair change nothing. */
static void test_gcfence__repair_cuts_a_torn_tail_only(void **state)
{
	fx *f = *state;
	struct collect c = {0};
	unsigned char buf[2 * 40 + 13];
	char *path = th_join(f->gc, "fresh.0");
	uint64_t cut = 99;
	assert_int_equal(udr__gc_fresh_repair(f->sdir, 0, &cut), 0); /* no file */
	assert_int_equal(cut, 0);
	assert_false(th_exists(path));
	assert_int_equal(udr__gc_dir_ensure(f->sdir), 0);
	for (int i = 0; i < 2; i++) {
		udr__put_le64(buf + 40 * i, 500 + (uint64_t)i);
		memset(buf + 40 * i + 8, 0x30 + i, 32);
	}
	memset(buf + 80, 0x77, 13);
	th_write_file(path, buf, 80); /* whole: untouched */
	assert_int_equal(udr__gc_fresh_repair(f->sdir, 0, &cut), 0);
	assert_int_equal(cut, 0);
	assert_int_equal(file_size(path), 80);
	th_write_file(path, buf, sizeof(buf));
	assert_int_equal(udr__gc_fresh_repair(f->sdir, 0, &cut), 0);
	assert_int_equal(cut, 13);
	assert_int_equal(file_size(path), 80);
	assert_int_equal(udr__gc_fresh_foreach(f->sdir, 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ms[1], 501);
	assert_int_equal(c.h[1].bytes[31], 0x31);
	assert_int_equal(udr__gc_fresh_repair(f->sdir, 0, &cut), 0);
	assert_int_equal(cut, 0);
	free(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gcfence__hold_takes_the_epochs_parity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__an_exclusive_holder_blocks_puts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__exclusive_waits_for_writers_and_stops_them, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_gc_of_the_holding_thread_is_refused_not_deadlocked, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__fresh_only_for_old_copies_made_before_the_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_record_after_a_torn_one_is_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_forked_child_does_not_keep_the_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_hit_on_a_young_copy_is_recorded_unsynced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__reader_skips_a_torn_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__repair_cuts_a_torn_tail_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_fresh_record_that_cannot_be_written_fails_the_put, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_gcfence__a_store_that_cannot_be_written_still_reads, setup, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
