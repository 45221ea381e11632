/*
 * test_gcstate.c - chunks/gc/STATE (docs/GC.md 4.3): round trip of every
 * field, a missing file (epoch 0, idle), each kind of damage (a flipped bit,
 * a truncation, a file resealed with a wrong field), a failed replace that
 * leaves the old state, and the writers' cached re-read.
 */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "store/gcstate.h"

typedef struct fx {
	char *dir;
	char *tmp;
	char *state;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = th_mkdtemp();
	f->tmp = th_join(f->dir, "tmp");
	f->state = th_join3(f->dir, "gc", "STATE");
	assert_int_equal(udr__mkdir(f->tmp, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_rmtree(f->dir);
	free(f->dir);
	free(f->tmp);
	free(f->state);
	free(f);
	return 0;
}

static void full_state(udr__gcstate *st)
{
	udr__gcstate_init(st);
	st->epoch = 9;
	st->drained = 8;
	st->phase = UDR__GC_PLANNED;
	strcpy(st->doomed, "doomed-9");
	strcpy(st->dead, "dead-9");
	strcpy(st->plan, "plan-9.json");
	st->mark = 912;
	st->gc_seq = 915;
	st->started_ms = 1796047200000;
	st->pid = 4242;
	st->wall_ms = 1796047200123;
	strcpy(st->boot_id, "0b4e8f2a-9d3c-4c1e-8f7a-1b2c3d4e5f60");
	st->boottime_ms = 86400000;
	st->last = strdup("{\"epoch\":8,\"freed\":1048576,\"note\":\"caf\\u00e9\"}");
}

static void test_gcstate__missing_is_epoch_0_idle(void **state)
{
	fx *f = *state;
	udr__gcstate st;
	st.epoch = 77;
	assert_int_equal(udr__gcstate_load(&st, f->dir), 0);
	assert_int_equal(st.epoch, 0);
	assert_int_equal(st.drained, 0);
	assert_int_equal(st.phase, UDR__GC_IDLE);
	assert_null(st.last);
	assert_string_equal(st.doomed, "");
	assert_false(th_exists(f->state));
	udr__gcstate_release(&st);
}

static void test_gcstate__round_trip(void **state)
{
	fx *f = *state;
	udr__gcstate a, b;
	char *text;
	size_t len;
	full_state(&a);
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), 0);
	assert_int_equal(udr__gcstate_load(&b, f->dir), 0);
	assert_int_equal(b.epoch, 9);
	assert_int_equal(b.drained, 8);
	assert_int_equal(b.phase, UDR__GC_PLANNED);
	assert_string_equal(b.doomed, "doomed-9");
	assert_string_equal(b.dead, "dead-9");
	assert_string_equal(b.plan, "plan-9.json");
	assert_int_equal(b.mark, 912);
	assert_int_equal(b.gc_seq, 915);
	assert_int_equal(b.started_ms, 1796047200000);
	assert_int_equal(b.pid, 4242);
	assert_int_equal(b.wall_ms, 1796047200123);
	assert_string_equal(b.boot_id, "0b4e8f2a-9d3c-4c1e-8f7a-1b2c3d4e5f60");
	assert_int_equal(b.boottime_ms, 86400000);
	assert_non_null(b.last);
	assert_string_equal(b.last, "{\"epoch\":8,\"freed\":1048576,\"note\":\"caf\\u00E9\"}");
	/* byte-exact: the file is what format writes, one sealed line */
	text = th_read_file(f->state, &len);
	assert_non_null(text);
	{
		const char *want = "{\"format\":1,\"kind\":\"udr-gc-state\",\"epoch\":9,\"drained\":8,\"phase\":\"planned\","
		                   "\"doomed\":\"doomed-9\",\"dead\":\"dead-9\",\"plan\":\"plan-9.json\",\"mark\":912,"
		                   "\"gc_seq\":915,\"started_ms\":1796047200000,\"pid\":4242,\"wall_ms\":1796047200123,"
		                   "\"boot_id\":\"0b4e8f2a-9d3c-4c1e-8f7a-1b2c3d4e5f60\",\"boottime_ms\":86400000,"
		                   "\"last\":{\"epoch\":8,\"freed\":1048576,\"note\":\"caf\\u00E9\"},\"sealed\":true,\"check\":\"";
		assert_true(len == strlen(want) + 64 + 3);
		assert_memory_equal(text, want, strlen(want));
	}
	assert_non_null(strstr(text, ",\"sealed\":true,\"check\":\""));
	assert_int_equal(text[len - 1], '\n');
	assert_null(memchr(text, '\n', len - 1));
	free(text);
	/* every phase and null names survive too */
	for (int p = UDR__GC_IDLE; p <= UDR__GC_ABORTED; p++) {
		udr__gcstate c;
		udr__gcstate_release(&b);
		udr__gcstate_init(&c);
		c.epoch = (uint64_t)p + 100;
		c.drained = (uint64_t)p + 99;
		c.phase = (enum udr__gc_phase)p;
		assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &c), 0);
		assert_int_equal(udr__gcstate_load(&b, f->dir), 0);
		assert_int_equal(b.phase, p);
		assert_int_equal(b.epoch, (uint64_t)p + 100);
		assert_string_equal(b.doomed, "");
		assert_null(b.last);
	}
	udr__gcstate_release(&b);
	/* the temp file is gone */
	assert_int_equal(th_count_entries(f->tmp), 0);
	udr__gcstate_release(&a);
}

static void test_gcstate__refuses_to_write_what_it_cannot_read(void **state)
{
	fx *f = *state;
	udr__gcstate a;
	full_state(&a);
	a.drained = 10;
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), UDR_EINVAL);
	a.drained = 8;
	strcpy(a.doomed, "a\"b");
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), UDR_EINVAL);
	strcpy(a.doomed, "x");
	free(a.last);
	a.last = strdup("[1,2]");
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), UDR_EINVAL);
	assert_false(th_exists(f->state));
	udr__gcstate_release(&a);
}

/* Write text (sealed here) as STATE and expect ECORRUPT naming needle. */
static void expect_resealed_corrupt(fx *f, const char *json, const char *needle)
{
	char *text = strdup(json);
	size_t len = strlen(text);
	udr__gcstate st;
	assert_int_equal(udr__seal(&text, &len), 0);
	th_write_file(f->state, text, len);
	free(text);
	st.epoch = 5;
	assert_int_equal(udr__gcstate_load(&st, f->dir), UDR_ECORRUPT);
	th_assert_error(UDR_ECORRUPT, needle);
	th_assert_error(UDR_ECORRUPT, "corrupt gc state");
	assert_int_equal(st.epoch, 0);
	assert_null(st.last);
}

static void test_gcstate__damage(void **state)
{
	fx *f = *state;
	udr__gcstate a, b;
	char *good;
	size_t len;
	full_state(&a);
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), 0);
	udr__gcstate_release(&a);
	good = th_read_file(f->state, &len);
	/* a flipped bit anywhere: the check finds it (or the seal is gone) */
	for (size_t off = 0; off < len; off += 7) {
		th_write_file(f->state, good, len);
		th_flip_bit(f->state, (off_t)off);
		assert_int_equal(udr__gcstate_load(&b, f->dir), UDR_ECORRUPT);
		assert_int_equal(b.epoch, 0);
	}
	/* truncated at every length, and an appended byte */
	for (size_t keep = 0; keep < len; keep += 5) {
		th_write_file(f->state, good, len);
		th_truncate(f->state, (off_t)keep);
		assert_int_equal(udr__gcstate_load(&b, f->dir), UDR_ECORRUPT);
		th_assert_error(UDR_ECORRUPT, f->state);
	}
	{
		char *more = malloc(len + 1);
		memcpy(more, good, len);
		more[len] = ' ';
		th_write_file(f->state, more, len + 1);
		assert_int_equal(udr__gcstate_load(&b, f->dir), UDR_ECORRUPT);
		free(more);
	}
	/* unsealed but otherwise valid */
	{
		const char *u = "{\"format\":1,\"kind\":\"udr-gc-state\",\"epoch\":1,\"drained\":0,\"phase\":\"idle\","
		                "\"doomed\":null,\"dead\":null,\"plan\":null,\"mark\":0,\"gc_seq\":0,\"started_ms\":0,"
		                "\"pid\":0,\"wall_ms\":0,\"boot_id\":null,\"boottime_ms\":0,\"last\":null,\"sealed\":true}\n";
		th_write_file(f->state, u, strlen(u));
		assert_int_equal(udr__gcstate_load(&b, f->dir), UDR_ECORRUPT);
		th_assert_error(UDR_ECORRUPT, "not sealed");
	}
	free(good);
	/* sealed by something else, with a wrong field: each is refused */
#define HEAD "{\"format\":1,\"kind\":\"udr-gc-state\","
#define REST "\"doomed\":null,\"dead\":null,\"plan\":null,\"mark\":0,\"gc_seq\":0,\"started_ms\":0," \
	     "\"pid\":0,\"wall_ms\":0,\"boot_id\":null,\"boottime_ms\":0,\"last\":null,\"sealed\":true}"
	{
		/* the valid base parses (so each case below fails for its field) */
		char *text = strdup(HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"idle\"," REST);
		size_t n = strlen(text);
		assert_int_equal(udr__seal(&text, &n), 0);
		th_write_file(f->state, text, n);
		free(text);
		assert_int_equal(udr__gcstate_load(&b, f->dir), 0);
		assert_int_equal(b.epoch, 3);
		udr__gcstate_release(&b);
	}
	expect_resealed_corrupt(f, "{\"format\":2,\"kind\":\"udr-gc-state\",\"epoch\":3,\"drained\":2,\"phase\":\"idle\"," REST,
	                        "format is not 1");
	expect_resealed_corrupt(f, "{\"format\":1,\"kind\":\"udr-other\",\"epoch\":3,\"drained\":2,\"phase\":\"idle\"," REST,
	                        "\"kind\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":4,\"phase\":\"idle\"," REST, "drained 4 is past epoch 3");
	expect_resealed_corrupt(f, HEAD "\"epoch\":-3,\"drained\":0,\"phase\":\"idle\"," REST, "\"epoch\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":\"3\",\"drained\":0,\"phase\":\"idle\"," REST, "\"epoch\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"sweeping\"," REST, "\"phase\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"idle\",\"extra\":1," REST,
	                        "\"extra\" is not a key of format 1");
	expect_resealed_corrupt(f, HEAD "\"drained\":2,\"phase\":\"idle\"," REST, "\"epoch\" is missing");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"epoch\":3,\"drained\":2,\"phase\":\"idle\"," REST, "not a JSON object");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"idle\","
	                        "\"doomed\":\"../x\",\"dead\":null,\"plan\":null,\"mark\":0,\"gc_seq\":0,\"started_ms\":0,"
	                        "\"pid\":0,\"wall_ms\":0,\"boot_id\":null,\"boottime_ms\":0,\"last\":null,\"sealed\":true}",
	                        "\"doomed\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"idle\","
	                        "\"doomed\":null,\"dead\":null,\"plan\":null,\"mark\":0,\"gc_seq\":0,\"started_ms\":0,"
	                        "\"pid\":0,\"wall_ms\":0,\"boot_id\":null,\"boottime_ms\":0,\"last\":[],\"sealed\":true}",
	                        "\"last\"");
	expect_resealed_corrupt(f, HEAD "\"epoch\":3,\"drained\":2,\"phase\":\"idle\","
	                        "\"doomed\":null,\"dead\":null,\"plan\":null,\"mark\":0,\"gc_seq\":0,\"started_ms\":0,"
	                        "\"pid\":0,\"wall_ms\":0,\"boot_id\":null,\"boottime_ms\":0,\"last\":null,\"sealed\":false}",
	                        "\"sealed\"");
	expect_resealed_corrupt(f, "{\"kind\":\"udr-gc-state\"}", "format is not 1");
#undef HEAD
#undef REST
}

/* A replace that fails at any step leaves the old state whole. */
static int fail_op; /* 1 write, 2 fsync, 3 rename */
static int d_calls;
static ssize_t x_write(int fd, const void *b, size_t n)
{
	if (fail_op == 1) {
		errno = ENOSPC;
		return -1;
	}
	return udr_io_default()->write(fd, b, n);
}
static int x_fsync(int fd)
{
	if (fail_op == 2 && d_calls++ == 0) {
		errno = EIO;
		return -1;
	}
	return udr_io_default()->fsync(fd);
}
static int x_rename(const char *a, const char *b)
{
	if (fail_op == 3) {
		errno = EIO;
		return -1;
	}
	return udr_io_default()->rename(a, b);
}

static void test_gcstate__failed_replace_keeps_the_old_state(void **state)
{
	fx *f = *state;
	udr__gcstate a, b;
	udr_io_methods m = *udr_io_default();
	m.write = x_write;
	m.fsync = x_fsync;
	m.rename = x_rename;
	full_state(&a);
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), 0);
	assert_int_equal(udr_io_set(&m), 0);
	for (fail_op = 1; fail_op <= 3; fail_op++) {
		d_calls = 0;
		a.epoch = 50;
		assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), UDR_EIO);
		assert_int_equal(udr__gcstate_load(&b, f->dir), 0);
		assert_int_equal(b.epoch, 9);
		udr__gcstate_release(&b);
		assert_int_equal(th_count_entries(f->tmp), 0);
	}
	udr_io_set(NULL);
	udr__gcstate_release(&a);
}

static void test_gcstate__watch_rereads_only_a_changed_file(void **state)
{
	fx *f = *state;
	udr__gcwatch w;
	udr__gcstate a;
	uint64_t e = 99;
	enum udr__gc_phase p = UDR__GC_ABORTED;
	udr__gcwatch_init(&w);
	/* missing: epoch 0 idle, nothing parsed */
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(e, 0);
	assert_int_equal(p, UDR__GC_IDLE);
	assert_int_equal(w.parses, 0);
	full_state(&a);
	a.phase = UDR__GC_DOOMED;
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), 0);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(e, 9);
	assert_int_equal(p, UDR__GC_DOOMED);
	assert_int_equal(w.parses, 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(w.parses, 1);
	/* replaced with the same size: still seen (another inode) */
	a.epoch = 8;
	a.drained = 7;
	assert_int_equal(udr__gcstate_save(f->dir, f->tmp, &a), 0);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(e, 8);
	assert_int_equal(w.parses, 2);
	/* damaged: an error, and not cached */
	th_flip_bit(f->state, 20);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), UDR_ECORRUPT);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), UDR_ECORRUPT);
	th_flip_bit(f->state, 20);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(e, 8);
	/* removed again: back to epoch 0 */
	assert_int_equal(unlink(f->state), 0);
	assert_int_equal(udr__gcwatch_read(&e, &p, &w, f->dir), 0);
	assert_int_equal(e, 0);
	udr__gcstate_release(&a);
	udr__gcwatch_destroy(&w);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gcstate__missing_is_epoch_0_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcstate__round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcstate__refuses_to_write_what_it_cannot_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcstate__damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcstate__failed_replace_keeps_the_old_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcstate__watch_rereads_only_a_changed_file, setup, teardown),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
