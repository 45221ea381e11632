/*
 * test_io_faults.c - fault injection through the I/O backend table: fail the
 * Nth open/write/fsync/link/rename/mkdir/unlink (EIO, ENOSPC, short writes)
 * during puts, commits and store creation, for N = 1, 2, ... until the
 * operation runs without meeting the fault.  After each failure: the error is
 * UDR_EIO, no partial chunk exists under its final name, a reopened store is
 * fsck-clean, every earlier committed version is intact, and a retry works.
 *
 * Puts of format-3 stores make hundreds of I/O steps (pieces into a pack,
 * its index, a manifest pack, geometric repacks), each followed by a full
 * check of the store, whose cost grows with the store: each operation's loop
 * starts from a fresh store (UDR_FAULT_GROW=1: one store for all, as `make
 * torture` runs it, with the larger repacks of a larger store).  Every step
 * of pack publishing, index publishing and the removal of merged packs
 * (udr__io_phase) gets a fault; elsewhere (appending pieces, copying packs in
 * a repack) the first two steps and every UDR_FAULT_STRIDE-th one (default
 * 1, every step).
 */
#include "helpers.h"
#include "store/store_internal.h"
#include "store/pack.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the faulty I/O table ------------------------------------------------ */

enum { OP_OPEN, OP_WRITE, OP_FSYNC, OP_LINK, OP_RENAME, OP_MKDIR, OP_UNLINK, OP_STAT, OP_SHORT };
static const char *const OP_NAMES[] = {"open",  "write",  "fsync", "link", "rename",
                                       "mkdir", "unlink", "stat",  "write-short"};

static const udr_io_methods *D; /* the default table */
static struct {
	int op;      /* which call to fail */
	long n;      /* fail the n-th call of it */
	long count;  /* calls of it seen so far */
	int err;     /* errno to fail with */
	int fired;   /* the fault was injected */
	int enospc_after_short; /* short write done: fail the next write with ENOSPC */
	long stride;   /* outside the phases, fail only every stride-th call (1: all) */
	long fired_at; /* the call that failed */
	unsigned fired_phase; /* udr__io_phase then */
} F;

static int hit(int op)
{
	int o = (F.op == OP_SHORT) ? OP_WRITE : F.op;
	unsigned phase;
	if (o != op || F.fired)
		return 0;
	++F.count;
	if (F.count < F.n)
		return 0;
	phase = __atomic_load_n(&udr__io_phase, __ATOMIC_RELAXED);
	if ((phase & (UDR__PHASE_PACK | UDR__PHASE_IDX | UDR__PHASE_RETIRE | UDR__PHASE_MIDX)) || F.stride <= 1 || F.count <= 2 || F.count % F.stride == 0) {
		F.fired = 1;
		F.fired_at = F.count;
		F.fired_phase = phase;
		return 1;
	}
	return 0;
}

/* The sampling stride of put faults: UDR_FAULT_STRIDE, default 1. */
static long put_stride(void)
{
	const char *e = getenv("UDR_FAULT_STRIDE");
	long k = e && *e ? strtol(e, NULL, 10) : 1;
	return k >= 1 ? k : 1;
}

static int f_open(const char *path, int flags, mode_t mode)
{
	if (hit(OP_OPEN)) {
		errno = F.err;
		return -1;
	}
	return D->open(path, flags, mode);
}
static int f_close(int fd) { return D->close(fd); }
static ssize_t f_read(int fd, void *buf, size_t len) { return D->read(fd, buf, len); }
static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
	return D->pread(fd, buf, len, off);
}
static ssize_t f_write(int fd, const void *buf, size_t len)
{
	if (F.enospc_after_short) {
		errno = ENOSPC;
		return -1;
	}
	if (hit(OP_WRITE)) {
		if (F.op == OP_SHORT && len > 1) {
			/* A disk filling up: a short write, then ENOSPC. */
			F.enospc_after_short = 1;
			return D->write(fd, buf, len / 2);
		}
		errno = F.err;
		return -1;
	}
	return D->write(fd, buf, len);
}
static int f_fsync(int fd)
{
	if (hit(OP_FSYNC)) {
		errno = F.err;
		return -1;
	}
	return D->fsync(fd);
}
static int f_link(const char *a, const char *b)
{
	if (hit(OP_LINK)) {
		errno = F.err;
		return -1;
	}
	return D->link(a, b);
}
static int f_rename(const char *a, const char *b)
{
	if (hit(OP_RENAME)) {
		errno = F.err;
		return -1;
	}
	return D->rename(a, b);
}
static int f_unlink(const char *p)
{
	if (hit(OP_UNLINK)) {
		errno = F.err;
		return -1;
	}
	return D->unlink(p);
}
static int f_mkdir(const char *p, mode_t m)
{
	if (hit(OP_MKDIR)) {
		errno = F.err;
		return -1;
	}
	return D->mkdir(p, m);
}
static int f_stat(const char *p, struct stat *st)
{
	if (hit(OP_STAT)) {
		errno = F.err;
		return -1;
	}
	return D->stat(p, st);
}
static int f_fstat(int fd, struct stat *st) { return D->fstat(fd, st); }
static int f_flock(int fd, int op) { return D->flock(fd, op); }
/* Naming an open (O_TMPFILE) file is a link; flushing the file system is a sync. */
static int f_link_fd(int fd, const char *to)
{
	if (hit(OP_LINK)) {
		errno = F.err;
		return -1;
	}
	return D->link_fd(fd, to);
}
static int f_syncfs(int fd)
{
	if (hit(OP_FSYNC)) {
		errno = F.err;
		return -1;
	}
	return D->syncfs(fd);
}

static udr_io_methods FAULTY = {
	.version = UDR_IO_METHODS_VERSION,
	.open = f_open,
	.close = f_close,
	.read = f_read,
	.pread = f_pread,
	.write = f_write,
	.fsync = f_fsync,
	.link = f_link,
	.rename = f_rename,
	.unlink = f_unlink,
	.mkdir = f_mkdir,
	.stat = f_stat,
	.fstat = f_fstat,
	.flock = f_flock,
	.link_fd = f_link_fd,
	.syncfs = f_syncfs,
};

static void arm(int op, long n)
{
	memset(&F, 0, sizeof(F));
	F.op = op;
	F.n = n;
	F.stride = 1;
	F.err = (op == OP_WRITE || op == OP_SHORT) ? ENOSPC : EIO;
	D = udr_io_default();
	assert_int_equal(udr_io_set(&FAULTY), 0);
}

static void disarm(void)
{
	assert_int_equal(udr_io_set(NULL), 0);
	assert_ptr_equal(udr_io_current(), udr_io_default());
}

/* ---- a model of what was committed --------------------------------------- */

#define MAXV 2000
typedef struct model {
	char *dir;
	char *root;
	udr_db *db;
	uint64_t latest;            /* of table "t" */
	udr_hash *chunks[MAXV + 1]; /* chunks of each committed version */
	size_t nchunks[MAXV + 1];
	udr_hash puts[MAXV];        /* every put reported done */
	int nputs;
	long absorbed;              /* faults after which the call still returned 0 */
	long injected;
	long in_phase[5];           /* of which during pack, index publishing, repack, its removals, midx writing */
} model;

static void reopen(model *m)
{
	udr_db_close(m->db);
	m->db = NULL;
	int rc = udr_db_open(&m->db, m->root, 0);
	if (rc != 0) {
		print_error("reopen after fault: %d %s\n", rc, udr_error_last()->message);
		fail();
	}
}

static int setup(void **state)
{
	model *m = calloc(1, sizeof(*m));
	m->dir = th_mkdtemp();
	m->root = th_join(m->dir, "root");
	if (udr_db_open(&m->db, m->root, UDR_OPEN_CREATE) != 0)
		return -1;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	model *m = *state;
	udr_io_set(NULL);
	udr_db_close(m->db);
	for (int i = 0; i <= MAXV; i++)
		free(m->chunks[i]);
	if (m->injected)
		print_message("    faults injected: %ld, absorbed (call returned 0): %ld; during pack publishing %ld, "
		              "index publishing %ld, repacks %ld (removals %ld), multi-pack index writing %ld\n",
		              m->injected, m->absorbed, m->in_phase[0], m->in_phase[1], m->in_phase[2], m->in_phase[3],
		              m->in_phase[4]);
	th_rmtree(m->dir);
	free(m->root);
	free(m->dir);
	free(m);
	return 0;
}

/* Put content #seed (size bytes) with the default table, record it. */
static udr_hash model_put(model *m, uint32_t seed, size_t size)
{
	unsigned char *d = malloc(size);
	th_fill(d, size, seed);
	udr_hash h;
	assert_int_equal(udr_store_put(&h, udr_db_store(m->db), d, size), 0);
	free(d);
	m->puts[m->nputs++] = h;
	return h;
}

static void model_record_version(model *m, const udr_hash *hs, size_t n)
{
	m->latest++;
	assert_true(m->latest <= MAXV);
	m->chunks[m->latest] = malloc(n * sizeof(udr_hash) + 1);
	memcpy(m->chunks[m->latest], hs, n * sizeof(udr_hash));
	m->nchunks[m->latest] = n;
}

static void model_commit(model *m, uint32_t seed)
{
	udr_hash hs[2];
	hs[0] = model_put(m, seed, 100 + seed % 5000);
	hs[1] = model_put(m, 7, 10);
	udr_version *v = NULL;
	assert_int_equal(udr_version_new(&v, "t", m->latest + 1), 0);
	assert_int_equal(udr_version_add_chunk(v, &hs[0]), 0);
	assert_int_equal(udr_version_add_chunk(v, &hs[1]), 0);
	assert_int_equal(udr_catalog_commit(udr_db_catalog(m->db), v), 0);
	udr_version_free(v);
	model_record_version(m, hs, 2);
}

static int verify_chunk_cb(const udr_hash *h, void *payload)
{
	model *m = payload;
	void *buf = NULL;
	size_t len;
	int rc = udr_store_get_verified(&buf, &len, udr_db_store(m->db), h);
	udr_free(buf);
	if (rc != 0)
		print_error("chunk %s under its final name does not verify: %d\n", th_hex(h), rc);
	return rc != 0;
}

/* Temp files in dir not named after this (live) process: FORMAT.md lets
 * fsck keep a temp file while its creator lives (here: after an injected
 * unlink failure), but those of dead writers must go. */
static int count_dead_temp(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	char mine[32];
	snprintf(mine, sizeof(mine), "%ld-", (long)getpid());
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (strncmp(e->d_name, mine, strlen(mine)) != 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Everything the model says is there is there, intact; the store is clean. */
static void model_check(model *m, const char *ctx)
{
	reopen(m);
	udr_store *st = udr_db_store(m->db);
	udr_catalog *cat = udr_db_catalog(m->db);
	/* No chunk under a final name is partial. */
	if (udr_store_foreach(st, verify_chunk_cb, m) != 0) {
		print_error("%s: a partial or damaged chunk is visible\n", ctx);
		fail();
	}
	th_problems pr = {0};
	udr_check_stats s1, s2;
	int rc1 = udr_store_fsck(&s1, st, th_problem_cb, &pr);
	int rc2 = udr_catalog_fsck(&s2, cat, th_problem_cb, &pr);
	if (rc1 != 0 || rc2 != 0) {
		print_error("%s: fsck store %d catalog %d, %d problems; first: %s\n", ctx, rc1, rc2,
		            pr.count, pr.count ? pr.messages[0] : "-");
		fail();
	}
	th_problems_free(&pr);
	/* fsck removed every temp file (no writer is alive). */
	char *t1 = th_join3(m->root, "chunks", "tmp");
	char *t2 = th_join3(m->root, "catalog", "tmp");
	if (count_dead_temp(t1) > 0 || count_dead_temp(t2) > 0) {
		print_error("%s: temp files of dead writers left after fsck\n", ctx);
		fail();
	}
	free(t1);
	free(t2);
	for (int i = 0; i < m->nputs; i++) {
		if (udr_store_exists(st, &m->puts[i]) != 1) {
			print_error("%s: chunk %s reported stored is gone\n", ctx, th_hex(&m->puts[i]));
			fail();
		}
	}
	if (m->latest == 0)
		return;
	uint64_t l = 0;
	assert_int_equal(udr_catalog_latest(&l, cat, "t"), 0);
	if (l != m->latest) {
		print_error("%s: latest %llu, expected %llu\n", ctx, (unsigned long long)l,
		            (unsigned long long)m->latest);
		fail();
	}
	for (uint64_t n = 1; n <= m->latest; n++) {
		udr_version *v = NULL;
		int rc = udr_catalog_get_version(&v, cat, "t", n);
		if (rc != 0) {
			print_error("%s: version %llu unreadable: %d %s\n", ctx, (unsigned long long)n, rc,
			            udr_error_last()->message);
			fail();
		}
		assert_int_equal(v->nchunks, m->nchunks[n]);
		assert_memory_equal(v->chunks, m->chunks[n], v->nchunks * sizeof(udr_hash));
		udr_version_free(v);
	}
}

static void check_failed_rc(model *m, int rc, const char *ctx)
{
	m->injected++;
	for (int b = 0; b < 5; b++)
		if (F.fired_phase & (1u << b))
			m->in_phase[b]++;
	if (rc == 0) {
		m->absorbed++;
		print_message("    absorbed (returned 0): %s\n", ctx);
		return;
	}
	if (rc != UDR_EIO) {
		print_error("%s: returned %d (%s), expected UDR_EIO; message: %s\n", ctx, rc,
		            udr_strerror(rc), udr_error_last()->message);
		fail();
	}
	/* The errno is kept in the message. */
	const char *want = strerror(F.err);
	if (F.op == OP_SHORT)
		want = strerror(ENOSPC);
	if (strstr(udr_error_last()->message, want) == NULL) {
		print_error("%s: message \"%s\" does not say \"%s\"\n", ctx, udr_error_last()->message,
		            want);
		fail();
	}
}

/* ---- scenarios ------------------------------------------------------------ */

#define NMAX 400

static void run_put_faults(model *m, int op, size_t size, int streaming)
{
	static uint32_t seed = 5000;
	long n, next;
	for (n = 1; n <= NMAX; n = next) {
		char ctx[96];
		snprintf(ctx, sizeof(ctx), "put%s %zu bytes, %s #%ld", streaming ? "_file" : "", size,
		         OP_NAMES[op], n);
		seed++;
		unsigned char *d = malloc(size + 1);
		th_fill(d, size, seed);
		udr_hash want, h;
		udr_hash_buf(&want, d, size);
		char *file = NULL;
		if (streaming) {
			file = th_join(m->dir, "input");
			th_write_file(file, d, size);
		}
		udr_store *st = udr_db_store(m->db);
		arm(op, n);
		F.stride = put_stride();
		int rc = streaming ? udr_store_put_file(&h, st, file) : udr_store_put(&h, st, d, size);
		int fired = F.fired;
		next = F.fired_at + 1;
		snprintf(ctx, sizeof(ctx), "put%s %zu bytes, %s #%ld", streaming ? "_file" : "", size, OP_NAMES[op],
		         F.fired_at);
		disarm();
		if (!fired) {
			if (rc != 0) {
				print_error("%s: fault not reached but put failed: %d %s\n", ctx, rc,
				            udr_error_last()->message);
				fail();
			}
			assert_true(udr_hash_equal(&h, &want));
			m->puts[m->nputs++] = h;
			model_check(m, ctx);
			free(d);
			free(file);
			break;
		}
		/* A failed chunk write is never reported done. */
		if (rc == 0 && op != OP_UNLINK) {
			print_error("%s: the fault was injected but put returned 0\n", ctx);
			fail();
		}
		check_failed_rc(m, rc, ctx);
		if (rc == 0)
			m->puts[m->nputs++] = h;
		model_check(m, ctx);
		/* Retry with a healthy disk. */
		st = udr_db_store(m->db);
		rc = streaming ? udr_store_put_file(&h, st, file) : udr_store_put(&h, st, d, size);
		if (rc != 0) {
			print_error("%s: retry failed: %d %s\n", ctx, rc, udr_error_last()->message);
			fail();
		}
		assert_true(udr_hash_equal(&h, &want));
		m->puts[m->nputs++] = h;
		void *buf = NULL;
		size_t len = 0;
		assert_int_equal(udr_store_get_verified(&buf, &len, st, &h), 0);
		assert_int_equal(len, size);
		udr_free(buf);
		free(d);
		free(file);
	}
	assert_true(n <= NMAX);
}

static void run_commit_faults(model *m, int op, int next)
{
	static uint32_t seed = 90000;
	long n;
	for (n = 1; n <= NMAX; n++) {
		char ctx[96];
		snprintf(ctx, sizeof(ctx), "commit%s, %s #%ld", next ? "_next" : "", OP_NAMES[op], n);
		udr_hash hs[3];
		hs[0] = model_put(m, ++seed, 3000);
		hs[1] = model_put(m, ++seed, 10);
		hs[2] = hs[0];
		udr_version *v = NULL;
		assert_int_equal(udr_version_new(&v, "t", next ? 0 : m->latest + 1), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(udr_version_add_chunk(v, &hs[i]), 0);
		assert_int_equal(udr_version_set_message(v, ctx), 0);
		assert_int_equal(udr_version_set_meta(v, "n", "x"), 0);
		udr_catalog *cat = udr_db_catalog(m->db);
		arm(op, n);
		int rc = next ? udr_catalog_commit_next(cat, v) : udr_catalog_commit(cat, v);
		int fired = F.fired;
		disarm();
		if (!fired) {
			if (rc != 0) {
				print_error("%s: fault not reached but commit failed: %d %s\n", ctx, rc,
				            udr_error_last()->message);
				fail();
			}
			assert_int_equal(v->version, m->latest + 1);
			model_record_version(m, hs, 3);
			udr_version_free(v);
			model_check(m, ctx);
			break;
		}
		check_failed_rc(m, rc, ctx);
		/* Old state or new state; with rc == 0 it must be the new one. */
		reopen(m);
		uint64_t l = 0;
		cat = udr_db_catalog(m->db);
		int lrc = udr_catalog_latest(&l, cat, "t");
		if (m->latest == 0 && lrc == UDR_ENOTFOUND)
			l = 0;
		else
			assert_int_equal(lrc, 0);
		int visible = 0;
		if (l == m->latest + 1) {
			model_record_version(m, hs, 3);
			visible = 1;
		} else if (l != m->latest) {
			print_error("%s: latest %llu, neither old %llu nor new\n", ctx,
			            (unsigned long long)l, (unsigned long long)m->latest);
			fail();
		} else if (rc == 0) {
			print_error("%s: commit returned 0 but the version is not there\n", ctx);
			fail();
		}
		model_check(m, ctx);
		if (visible) {
			/* The commit became visible: nothing to retry. */
			udr_version_free(v);
			continue;
		}
		/* Retry the same version number with a healthy disk: leftovers of the
		 * failed attempt must not stand in the way. */
		udr_version *r = NULL;
		assert_int_equal(udr_version_new(&r, "t", m->latest + 1), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(udr_version_add_chunk(r, &hs[i]), 0);
		rc = udr_catalog_commit(udr_db_catalog(m->db), r);
		if (rc != 0) {
			print_error("%s: retry of version %llu failed: %d %s\n", ctx,
			            (unsigned long long)(m->latest + 1), rc, udr_error_last()->message);
			fail();
		}
		model_record_version(m, hs, 3);
		udr_version_free(r);
		udr_version_free(v);
		model_check(m, ctx);
	}
	assert_true(n <= NMAX);
}

static void prepare(model *m)
{
	for (uint32_t i = 1; i <= 3; i++)
		model_commit(m, i);
	model_check(m, "prepare");
}

static int grow(void)
{
	const char *e = getenv("UDR_FAULT_GROW");
	return e && *e == '1';
}

/* A fresh database for the next operation's loop (the model forgets the
 * old one; the counts of injected faults stay). */
static void model_fresh(model *m)
{
	static int gen;
	udr_db_close(m->db);
	m->db = NULL;
	for (int i = 0; i <= MAXV; i++) {
		free(m->chunks[i]);
		m->chunks[i] = NULL;
		m->nchunks[i] = 0;
	}
	m->latest = 0;
	m->nputs = 0;
	th_rmtree(m->root);
	free(m->root);
	m->root = th_fmt("%s/root%d", m->dir, ++gen);
	assert_int_equal(udr_db_open(&m->db, m->root, UDR_OPEN_CREATE), 0);
	prepare(m);
}

static const int WRITE_OPS[] = {OP_OPEN, OP_WRITE, OP_SHORT, OP_FSYNC, OP_LINK,
                                OP_RENAME, OP_MKDIR, OP_UNLINK};
#define NWRITE_OPS (sizeof(WRITE_OPS) / sizeof(WRITE_OPS[0]))

static void faults_put_small(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++)
		run_put_faults(m, WRITE_OPS[i], 1000, 0);
}

static void faults_put_large(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++) {
		if (i && !grow())
			model_fresh(m);
		run_put_faults(m, WRITE_OPS[i], 1024 * 1024 + 5, 0);
	}
	/* format 3: faults met each phase: publishing, repacks, their removals */
	assert_true(m->in_phase[0] > 0 && m->in_phase[1] > 0 && m->in_phase[2] > 0 && m->in_phase[3] > 0);
}

static void faults_put_file_streaming(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++) {
		if (i && !grow())
			model_fresh(m);
		run_put_faults(m, WRITE_OPS[i], 600 * 1024 + 3, 1);
	}
	assert_true(m->in_phase[0] > 0 && m->in_phase[1] > 0 && m->in_phase[2] > 0 && m->in_phase[3] > 0);
}

/*
 * Every step of writing the multi-pack index: a fresh store per attempt
 * holding one put (its pack and a midx), then a second put under the fault
 * (its pack, the geometric merge of the two, a new midx: threshold 1), the
 * same steps in the same order each time, so that attempt n fails exactly
 * the n-th call.  After each: UDR_EIO (or absorbed), the store reopens
 * fsck-clean (old, new or no midx, never a damaged one) and the first put
 * and every put reported done read back.
 */
static void faults_put_midx(void **state)
{
	model *m = *state;
	unsigned saved = udr__midx_threshold;
	unsigned char a[3000], b[3000];
	udr_hash ha, hb;
	long attempts = 0;
	udr__midx_threshold = 1;
	th_fill(a, sizeof(a), 71);
	th_fill(b, sizeof(b), 72);
	for (size_t i = 0; i < NWRITE_OPS; i++) {
		for (long n = 1; n <= NMAX; n++) {
			char *dir = th_fmt("%s/midx-%zu-%ld", m->dir, i, n), ctx[96];
			udr_store *st = NULL;
			assert_int_equal(udr_store_open(&st, dir, UDR_OPEN_CREATE), 0);
			assert_int_equal(udr_store_put(&ha, st, a, sizeof(a)), 0);
			arm(WRITE_OPS[i], n);
			int rc = udr_store_put(&hb, st, b, sizeof(b));
			int fired = F.fired;
			snprintf(ctx, sizeof(ctx), "midx: put, %s #%ld", OP_NAMES[WRITE_OPS[i]], n);
			disarm();
			udr_store_close(st);
			if (fired) {
				attempts++;
				if (rc == 0 && WRITE_OPS[i] != OP_UNLINK) {
					print_error("%s: the fault was injected but put returned 0\n", ctx);
					fail();
				}
				check_failed_rc(m, rc, ctx);
			}
			assert_int_equal(udr_store_open(&st, dir, 0), 0);
			th_problems pr = {0};
			int frc = udr_store_fsck(NULL, st, th_problem_cb, &pr);
			if (frc != 0) {
				print_error("%s: fsck %d, %d problems; first: %s\n", ctx, frc, pr.count,
				            pr.count ? pr.messages[0] : "-");
				fail();
			}
			th_problems_free(&pr);
			void *buf = NULL;
			size_t len = 0;
			assert_int_equal(udr_store_get(&buf, &len, st, &ha), 0);
			assert_memory_equal(buf, a, sizeof(a));
			udr_free(buf);
			if (rc == 0) {
				assert_int_equal(udr_store_get(&buf, &len, st, &hb), 0);
				assert_memory_equal(buf, b, sizeof(b));
				udr_free(buf);
			}
			udr_store_close(st);
			th_rmtree(dir);
			free(dir);
			if (!fired)
				break;
		}
	}
	udr__midx_threshold = saved;
	print_message("    midx: %ld faults over the second put\n", attempts);
	assert_true(m->in_phase[4] >= 8); /* open, write, fsyncs, rename of the midx, at least */
}

static void faults_put_empty(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++) {
		/* Only the first round can store the empty chunk: later rounds dedup. */
		run_put_faults(m, WRITE_OPS[i], 0, 0);
	}
}

static void faults_commit(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++)
		run_commit_faults(m, WRITE_OPS[i], 0);
}

static void faults_commit_next(void **state)
{
	model *m = *state;
	prepare(m);
	for (size_t i = 0; i < NWRITE_OPS; i++)
		run_commit_faults(m, WRITE_OPS[i], 1);
}

static void faults_first_commit_of_table(void **state)
{
	model *m = *state;
	/* No version yet: the table directory itself is created under faults. */
	run_commit_faults(m, OP_MKDIR, 0);
}

static void faults_db_create(void **state)
{
	model *m = *state;
	const int ops[] = {OP_OPEN, OP_WRITE, OP_FSYNC, OP_LINK, OP_RENAME, OP_MKDIR};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		long n;
		for (n = 1; n <= NMAX; n++) {
			char *root = th_fmt("%s/create-%zu-%ld", m->dir, i, n);
			udr_db *db = NULL;
			arm(ops[i], n);
			int rc = udr_db_open(&db, root, UDR_OPEN_CREATE);
			int fired = F.fired;
			disarm();
			if (fired && rc == 0) {
				/* absorbed: then it must be fully usable */
				m->absorbed++;
			}
			if (fired && rc != 0) {
				m->injected++;
				if (rc != UDR_EIO) {
					print_error("db create, %s #%ld: %d %s\n", OP_NAMES[ops[i]], n, rc,
					            udr_error_last()->message);
					fail();
				}
			}
			if (rc != 0) {
				/* A half-created root is completed by a retry. */
				rc = udr_db_open(&db, root, UDR_OPEN_CREATE);
				if (rc != 0) {
					print_error("db create retry after %s #%ld: %d %s\n", OP_NAMES[ops[i]], n,
					            rc, udr_error_last()->message);
					fail();
				}
			}
			udr_hash h;
			assert_int_equal(udr_store_put(&h, udr_db_store(db), "x", 1), 0);
			udr_version *v = NULL;
			assert_int_equal(udr_version_new(&v, "t", 1), 0);
			assert_int_equal(udr_version_add_chunk(v, &h), 0);
			assert_int_equal(udr_catalog_commit(udr_db_catalog(db), v), 0);
			udr_version_free(v);
			udr_db_close(db);
			rc = udr_db_open(&db, root, 0);
			if (rc != 0) {
				print_error("db create, %s #%ld (create returned %s): reopen: %d %s\n",
				            OP_NAMES[ops[i]], n, fired ? "after the fault" : "cleanly", rc,
				            udr_error_last()->message);
				fail();
			}
			assert_int_equal(udr_store_fsck(NULL, udr_db_store(db), NULL, NULL), 0);
			assert_int_equal(udr_catalog_fsck(NULL, udr_db_catalog(db), NULL, NULL), 0);
			udr_db_close(db);
			free(root);
			if (!fired)
				break;
		}
		assert_true(n <= NMAX);
	}
}

static void faults_reads_report_eio(void **state)
{
	model *m = *state;
	prepare(m);
	udr_store *st = udr_db_store(m->db);
	udr_hash h = m->chunks[1][0];
	void *buf = NULL;
	size_t len;
	/* A read whose open fails with EIO is an I/O error, not "not found". */
	arm(OP_OPEN, 1);
	int rc = udr_store_get(&buf, &len, st, &h);
	int fired = F.fired;
	disarm();
	if (fired) {
		assert_int_equal(rc, UDR_EIO);
		assert_null(buf);
	} else {
		/* format 3: the pack was open already, no open to fail */
		assert_int_equal(rc, 0);
		udr_free(buf);
		buf = NULL;
	}
	arm(OP_OPEN, 1);
	rc = udr_store_get_verified(&buf, &len, st, &h);
	fired = F.fired;
	disarm();
	if (fired) {
		assert_int_equal(rc, UDR_EIO);
	} else {
		assert_int_equal(rc, 0);
		udr_free(buf);
		buf = NULL;
	}
	/* exists: an EIO from stat is not "does not exist". */
	arm(OP_STAT, 1);
	rc = udr_store_exists(st, &h);
	fired = F.fired;
	disarm();
	if (fired)
		assert_int_equal(rc, UDR_EIO);
	arm(OP_OPEN, 1);
	udr_version *v = NULL;
	rc = udr_catalog_get_version(&v, udr_db_catalog(m->db), "t", 1);
	fired = F.fired;
	disarm();
	if (fired)
		assert_int_equal(rc, UDR_EIO);
	else
		udr_version_free(v);
	model_check(m, "reads");
}

static void io_set_validates(void **state)
{
	(void)state;
	const udr_io_methods *d = udr_io_default();
	assert_non_null(d);
	assert_int_equal(d->version, UDR_IO_METHODS_VERSION);
	udr_io_methods bad = FAULTY;
	bad.version = 99;
	assert_int_equal(udr_io_set(&bad), UDR_EINVAL);
	assert_ptr_equal(udr_io_current(), d);
	bad = FAULTY;
	bad.fsync = NULL;
	assert_int_equal(udr_io_set(&bad), UDR_EINVAL);
	bad = FAULTY;
	bad.flock = NULL;
	assert_int_equal(udr_io_set(&bad), UDR_EINVAL);
	bad = FAULTY;
	bad.link_fd = NULL;
	assert_int_equal(udr_io_set(&bad), UDR_EINVAL);
	assert_ptr_equal(udr_io_current(), d);
	D = d;
	assert_int_equal(udr_io_set(&FAULTY), 0);
	assert_ptr_equal(udr_io_current(), &FAULTY);
	assert_int_equal(udr_io_set(NULL), 0);
	assert_ptr_equal(udr_io_current(), d);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(io_set_validates),
		T(faults_put_small),
		T(faults_put_large),
		T(faults_put_file_streaming),
		T(faults_put_midx),
		T(faults_put_empty),
		T(faults_commit),
		T(faults_commit_next),
		T(faults_first_commit_of_table),
		T(faults_db_create),
		T(faults_reads_report_eio),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
