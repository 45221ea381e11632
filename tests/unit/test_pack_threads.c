/*
 * test_pack_threads.c - one store handle used by several threads at once
 * (readers, a writer whose puts repack in this process, an enumerator and
 * the multi-pack index check) while two other processes repack the store
 * again and again: every pack the handle knows is removed under it, over and
 * over.  Never wrong bytes, never damage, never "not found" for stored
 * content; no descriptor or mapping of a removed pack left once the readers
 * are done (holds and reads released on every path).  A few seconds by
 * default; UDR_PACK_THREADS_SECONDS for longer runs (make torture).  Built
 * with -fsanitize=thread it also finds fields of the pack set read or
 * written outside its mutex.
 */
#include "helpers.h"

#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/pack.h"
#include "store/store_internal.h"

#define NCHAIN 4   /* chains of deltas: v0 plain, v1 on v0, ... */
#define NVER 4     /* versions per chain */
#define NITEM (NCHAIN * NVER)
#define NREADERS 3

typedef struct item {
	udr_hash h;
	uint32_t seed;
	size_t n;
	int ver;
} item;

static item items[NITEM];
static char *g_dir, *g_sdir;
static udr_store *g_st;
static volatile int g_stop;
static int g_fail_get, g_fail_enum, g_fail_midx, g_fail_put;
static unsigned long g_gets, g_enums, g_puts;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* The bytes of version ver of a chain: the base bytes with ver small edits. */
static unsigned char *make_bytes(const item *it)
{
	unsigned char *b = malloc(it->n);
	th_fill(b, it->n, it->seed);
	for (int v = 1; v <= it->ver; v++)
		memcpy(b + (size_t)v * 7919 % (it->n - 16), "EDITED-VERSION!!", 16);
	return b;
}

static void note(int *counter, const char *what, const udr_hash *h, int rc)
{
	pthread_mutex_lock(&g_mu);
	if (*counter < 5)
		fprintf(stderr, "%s %s: rc %d: %s\n", what, h ? th_hex(h) : "", rc, udr_error_last()->message);
	(*counter)++;
	pthread_mutex_unlock(&g_mu);
}

static void *reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
		const item *it = &items[rand_r(&seed) % NITEM];
		void *got = NULL;
		size_t gl = 0;
		int rc = udr_store_get(&got, &gl, g_st, &it->h);
		if (rc != 0) {
			note(&g_fail_get, "get", &it->h, rc);
		} else {
			unsigned char *want = make_bytes(it);
			if (gl != it->n || memcmp(got, want, gl) != 0)
				note(&g_fail_get, "wrong bytes of", &it->h, 0);
			free(want);
			udr_free(got);
		}
		__atomic_fetch_add(&g_gets, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Read every copy an enumeration hands out, through its (held) pack. */
static int enum_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	unsigned char *d = NULL;
	size_t dl = 0;
	int rc;
	(void)payload;
	if (!l->pack)
		return 0;
	rc = udr__loc_read(&d, &dl, g_st, l, h, UDR__PIECE_HARD_MAX + 4096, NULL);
	free(d);
	if (rc == UDR_ENOTFOUND) { /* its pack was repacked away meanwhile */
		udr_error_clear();
		return 0;
	}
	if (rc < 0)
		note(&g_fail_enum, "enumerated copy", h, rc);
	return 0;
}

static void *enumerator(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
		udr_store_pack_stats ps;
		bool stale = false;
		int rc = udr__obj_foreach(g_st, false, enum_visit, NULL, NULL);
		if (rc < 0)
			note(&g_fail_enum, "foreach", NULL, rc);
		/* a walk with no lock taken by its visitor, often: the likeliest
		 * to overlap a scan that finds its packs gone */
		for (int k = 0; k < 20; k++)
			if ((rc = udr_store_pack_stats_get(&ps, g_st)) < 0)
				note(&g_fail_enum, "pack stats", NULL, rc);
		if ((rc = udr__midx_check(g_st, &stale)) < 0)
			note(&g_fail_midx, "midx check", NULL, rc);
		__atomic_fetch_add(&g_enums, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Puts through the shared handle: each leaves a pack and may repack (and
 * rewrite the multi-pack index) in this process, under the readers. */
static void *writer(void *arg)
{
	uint32_t seed = 900000 + (uint32_t)(uintptr_t)arg;
	while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
		size_t n = 3000 + seed % 5000;
		unsigned char *d = malloc(n);
		udr_hash h;
		int rc;
		th_fill(d, n, seed++);
		if ((rc = udr_store_put(&h, g_st, d, n)) != 0)
			note(&g_fail_put, "put", NULL, rc);
		free(d);
		__atomic_fetch_add(&g_puts, 1, __ATOMIC_RELAXED);
		usleep(2000);
	}
	return NULL;
}

/* The other process: small puts (each a pack, each a geometric repack) and
 * a merge of every pack, again and again, until killed. */
static void repacker(const char *sdir)
{
	for (uint32_t i = 0;; i++) {
		udr_store *c = NULL;
		unsigned char d[1500];
		udr_hash h;
		if (udr_store_open(&c, sdir, 0) != 0)
			_exit(2);
		th_fill(d, sizeof(d), 500000 + i + (uint32_t)getpid() * 1000003u);
		if (udr_store_put(&h, c, d, sizeof(d)) != 0 || udr__pack_repack_all(c, UDR__PACK_CLASS_DATA) != 0) {
			fprintf(stderr, "repacker: %s\n", udr_error_last()->message);
			_exit(3);
		}
		udr_store_close(c);
	}
}

static void pack_threads_one_handle_under_repacks(void **state)
{
	const char *env = getenv("UDR_PACK_THREADS_SECONDS");
	double secs = env && *env ? atof(env) : 3.0;
	char *tmp;
	pthread_t rd[NREADERS], en, wr;
	pid_t pid[2];
	unsigned saved = udr__packs_recheck_ms;
	uint64_t restarts = udr__packs_restarts;
	(void)state;

	g_dir = th_mkdtemp();
	g_sdir = th_join(g_dir, "chunks");
	tmp = th_join(g_dir, "v.bin");
	assert_int_equal(udr_store_open(&g_st, g_sdir, UDR_OPEN_CREATE), 0);
	/* chains of deltas, each version a put of its own (its own pack) */
	for (int c = 0; c < NCHAIN; c++)
		for (int v = 0; v < NVER; v++) {
			item *it = &items[c * NVER + v];
			udr_put_options o = UDR_PUT_OPTIONS_INIT;
			unsigned char *b;
			it->seed = 100 + (uint32_t)c;
			it->n = 20000 + (size_t)c * 9000;
			it->ver = v;
			b = make_bytes(it);
			th_write_file(tmp, b, it->n);
			free(b);
			if (v > 0)
				o.base = &items[c * NVER + v - 1].h;
			assert_int_equal(udr_store_put_file_ext(&it->h, g_st, tmp, &o), 0);
		}
	{
		/* one content of many pieces: packs with longer indexes to walk */
		size_t n = (size_t)4 << 20;
		unsigned char *b = malloc(n);
		udr_hash h;
		th_fill(b, n, 4242);
		assert_int_equal(udr_store_put(&h, g_st, b, n), 0);
		free(b);
	}
	for (int v = 1; v < NVER; v++) {
		udr__delta_hdr dh;
		assert_int_equal(udr__delta_peek(&dh, g_st, &items[v].h), 0);
		assert_true(dh.nbases >= 1); /* a chain of deltas indeed */
	}

	/* every lookup compares packs/' times: scans, and retirements of
	 * packs under the readers, as often as can be */
	udr__packs_recheck_ms = 0;
	fflush(NULL);
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0)
			repacker(g_sdir);
	}
	for (int i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_create(&rd[i], NULL, reader, (void *)(uintptr_t)(i + 1)), 0);
	assert_int_equal(pthread_create(&en, NULL, enumerator, NULL), 0);
	assert_int_equal(pthread_create(&wr, NULL, writer, NULL), 0);

	usleep((useconds_t)(secs * 1e6));
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NREADERS; i++)
		pthread_join(rd[i], NULL);
	pthread_join(en, NULL);
	pthread_join(wr, NULL);
	for (int k = 0; k < 2; k++) {
		int status = 0;
		kill(pid[k], SIGKILL);
		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		if (WIFEXITED(status))
			fprintf(stderr, "repacker exited %d\n", WEXITSTATUS(status));
		assert_true(WIFSIGNALED(status));
	}
	{
		/* retired packs found again later (a listing missed their index
		 * while a repack ran): each left a struct behind */
		udr__packset *ps = g_st->packs;
		size_t again = 0;
		for (size_t i = 0; i < ps->ndead; i++) {
			bool dup = false;
			for (size_t j = 0; j < ps->n && !dup; j++)
				dup = strcmp(ps->dead[i]->hex, ps->v[j]->hex) == 0;
			for (size_t j = i + 1; j < ps->ndead && !dup; j++)
				dup = strcmp(ps->dead[i]->hex, ps->dead[j]->hex) == 0;
			again += dup;
		}
		print_message("%lu gets, %lu enumerations, %lu puts, %llu restarts, %zu packs retired (%zu of them "
		              "listed again later)\n", g_gets, g_enums, g_puts,
		              (unsigned long long)(udr__packs_restarts - restarts), ps->ndead, again);
	}
	assert_int_equal(g_fail_get, 0);
	assert_int_equal(g_fail_enum, 0);
	assert_int_equal(g_fail_midx, 0);
	assert_int_equal(g_fail_put, 0);
	assert_true(g_gets > 0);

	/* the readers are done: one more lookup lists packs/ and lets go of
	 * every removed pack (a hold or read never released keeps one) */
	{
		void *got = NULL;
		size_t gl = 0;
		assert_int_equal(udr_store_get(&got, &gl, g_st, &items[NITEM - 1].h), 0);
		udr_free(got);
	}
	assert_int_equal(th_deleted_under(g_sdir, TH_FDS | TH_MAPS), 0);
	assert_int_equal(udr_store_fsck(NULL, g_st, NULL, NULL), 0);
	udr__packs_recheck_ms = saved;
	udr_store_close(g_st);
	th_rmtree(g_dir);
	free(tmp);
	free(g_sdir);
	free(g_dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pack_threads_one_handle_under_repacks),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
