/*
 * sweep.c - GC's sweep (docs/GC.md 5) and the run around it: the locks
 * (chunks/gc/lock; LOCK_EX on chunks/gc/active.0 and .1 from before the
 * locked mark to the doomed set, GC.md 4.7; packs/lock from before the
 * listing to the end of deletion), unchaining (decided before the lock),
 * the plan, the doomed set, the rewrites through the pack writer, the
 * guard, deletion, STATE, and the report.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog_internal.h"
#include "gc/collect.h"
#include "store/gcfence.h"
#include "store/gcstate.h"
#include "store/pack.h"
#include "store/store_internal.h"
#include "util/util.h"

enum { A_KEEP = 0, A_DROP = 1, A_REWRITE = 2 };

/* The phases of a run, in order (report "phases", seconds each). */
enum { PH_PREMARK, PH_UNCHAIN, PH_WAIT, PH_MARK, PH_PLAN, PH_REWRITE, PH_GUARD, PH_DELETE, PH_N };
static const char *const ph_name[PH_N] = {"premark", "unchain", "wait", "mark", "plan", "rewrite", "guard", "delete"};

typedef struct run {
	udr_store *s;
	udr_catalog *c;
	const udr__gc_collect_opts *o;
	udr__gc_mark m;
	int lockfd, act[2], packsfd;
	int doomfd; /* LOCK_EX on the published doomed set: "this run is alive" */
	udr__gcstate st;
	/* plan */
	size_t *dead_loose; /* indexes in m.loose */
	size_t ndead_loose;
	uint64_t dead_objects, loose_bytes, dropped, rewritten, removed_bytes, removed_pieces, removed_manifests;
	uint64_t written_packs, written_bytes, bytes_before, unused_after;
	uint64_t gc_seq, temp_files, fresh_dropped;
	uint64_t unchained, unchain_bytes; /* pieces written in full (unchain), their packs' bytes */
	uint64_t leftovers; /* run files of earlier runs removed (abandon_leftovers) */
	bool resumed;
	double mark_seconds;
	/* writers stopped (both active files held exclusively): from, until
	 * (0: still), and the pieces unchained meanwhile (0 when the unlocked
	 * mark could decide it, the usual case) */
	int64_t stopped_from_ms, stopped_until_ms;
	uint64_t unchained_stopped;
	uint64_t premark_passed_over; /* objects the unlocked mark did not find (commits made meanwhile) */
	uint64_t seeded;              /* delta copies the locked mark took from the unlocked one's reads */
	/* where the run's time went (report "phases"): the clock at the end of
	 * each phase, 0 when it did not run */
	int64_t ph[PH_N];
	struct udr__bcache *cache; /* decoded pieces of unchaining's chains */
} run;

static void progress(run *r, const char *phase, uint64_t done, uint64_t total)
{
	if (r->o->progress)
		r->o->progress(phase, done, total, r->o->progress_payload);
}

static int gc_path(char *out, size_t n, const udr_store *s, const char *name)
{
	if (snprintf(out, n, "%s/" UDR__GC_DIR "/%s", s->path, name) >= (int)n)
		return udr__error_set(UDR_EINVAL, "gc: path too long under %s", s->path);
	return 0;
}

/* chunks/gc/lock: LOCK_EX without waiting; busy names the holder's pid. */
static int take_gc_lock(run *r)
{
	char path[4200], buf[32];
	int fd, rc;
	if ((rc = udr__gc_dir_ensure(r->s->path)) < 0 || (rc = gc_path(path, sizeof(path), r->s, "lock")) < 0)
		return rc;
	if ((fd = UDR_IO->open(path, O_RDWR | O_CREAT, 0644)) < 0)
		return udr__error_io(errno, "cannot open %s", path);
	/* a writer probing whether a run is alive holds LOCK_SH for an instant
	 * (gcfence.c gc_running): try a few times before calling it busy */
	for (int i = 0; i < 20 && UDR_IO->flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK; i++) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	if (UDR_IO->flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		ssize_t n = err == EWOULDBLOCK ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
		UDR_IO->close(fd);
		if (err != EWOULDBLOCK)
			return udr__error_io(err, "cannot lock %s", path);
		buf[n > 0 ? n : 0] = 0;
		return udr__error_set(UDR_ELOCKED, "another gc is running on this store (pid %s; %s)",
		                      n > 0 ? buf : "unknown", path);
	}
	snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, strlen(buf), 0) < 0) {
		/* the pid is only for messages */
	}
	r->lockfd = fd;
	return 0;
}

static void release_all(run *r)
{
	if (r->packsfd >= 0)
		UDR_IO->close(r->packsfd);
	/* the fence: LOCK_EX on both active files (GC.md 4, this round) */
	udr__gc_exclusive_end(r->act);
	if (r->lockfd >= 0)
		UDR_IO->close(r->lockfd);
	if (r->doomfd >= 0)
		UDR_IO->close(r->doomfd);
	r->packsfd = r->lockfd = r->doomfd = -1;
}

static int unlink_ok(const char *path)
{
	if (UDR_IO->unlink(path) < 0 && errno != ENOENT)
		return udr__error_io(errno, "cannot remove %s", path);
	return 0;
}

int udr__gc_deleting_plan(char **out, const char *storepath)
{
	udr__gcstate st;
	char path[4200], *text = NULL;
	size_t len;
	int rc;
	*out = NULL;
	if ((rc = udr__gcstate_load(&st, storepath)) < 0)
		return rc;
	if (st.phase == UDR__GC_DELETING && st.plan[0] &&
	    snprintf(path, sizeof(path), "%s/" UDR__GC_DIR "/%s", storepath, st.plan) < (int)sizeof(path)) {
		rc = udr__read_file(&text, &len, path, (size_t)1 << 30);
		if (rc == UDR_ENOTFOUND) {
			/* removed by the run that finished it (STATE not yet idle) */
			udr_error_clear();
			rc = 0;
		}
		*out = rc == 0 ? text : NULL;
	}
	udr__gcstate_release(&st);
	return rc < 0 ? rc : 0;
}

bool udr__gc_plan_names(const char *plan, const char *hex)
{
	char pat[UDR_HASH_HEXSIZE + 3];
	if (!plan)
		return false;
	snprintf(pat, sizeof(pat), "\"%s\"", hex);
	return strstr(plan, pat) != NULL;
}

int udr__gc_plan_removes(bool *out, const char *storepath, const char *hex)
{
	char *plan;
	int rc = udr__gc_deleting_plan(&plan, storepath);
	*out = rc == 0 && udr__gc_plan_names(plan, hex);
	free(plan);
	return rc;
}

static int state_save(run *r, enum udr__gc_phase ph);

/* A run killed while deleting (STATE deleting): its guard had passed, and
 * since STATE said deleting the plan's packs have been invisible to readers
 * and fsck (udr__gc_plan_removes): remove them (index, then bytes).  Its
 * loose files stay visible until deleted, so the new mark judges those. */
/* The plan of a run killed while deleting: read into *text (NULL when it
 * is gone: nothing left to delete) and checked.  It is always written
 * sealed, so one without its seal (cut short, emptied) is damaged like one
 * whose check fails: UDR_ECORRUPT naming it, and the way out (udr fsck
 * --repair abandons such a run, GC.md 6). */
static int read_plan(char **text, size_t *len, const udr_store *s, const char *name, uint64_t epoch, uint64_t mark)
{
	char path[4200], head[160];
	int rc;
	*text = NULL;
	if ((rc = gc_path(path, sizeof(path), s, name)) < 0)
		return rc;
	if ((rc = udr__read_file(text, len, path, (size_t)1 << 30)) < 0)
		return rc == UDR_ENOTFOUND ? (udr_error_clear(), 0) : rc;
	rc = udr__unseal(*text, *len, path, "gc plan");
	if (rc == 0)
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc plan %s: it has no seal (cut short or damaged)", path);
	/* written by write_plan with the run's epoch and mark first: a sealed
	 * plan of another run (another store's, another epoch's) put in its
	 * place would delete the packs it names */
	snprintf(head, sizeof(head), "{\"format\":1,\"kind\":\"udr-gc-plan\",\"epoch\":%" PRIu64 ",\"mark\":%" PRIu64 ",",
	         epoch, mark);
	if (rc > 0 && (*len < strlen(head) || memcmp(*text, head, strlen(head)) != 0))
		rc = udr__error_set(UDR_ECORRUPT, "corrupt gc plan %s: not the plan of the run chunks/gc/STATE names "
		                    "(epoch %" PRIu64 ", mark %" PRIu64 "): another run's", path, epoch, mark);
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", udr_error_last()->message ? udr_error_last()->message : "");
		free(*text);
		*text = NULL;
		return udr__error_set(UDR_ECORRUPT, "%s; the gc run it belongs to was killed while deleting and cannot "
		                      "be finished: udr fsck --repair abandons it (nothing more is deleted)", msg);
	}
	return 0;
}

int udr__gc_plan_check(const udr_store *s, const char *name, uint64_t epoch, uint64_t mark)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_plan(&text, &len, s, name, epoch, mark);
	free(text);
	return rc;
}

static int finish_deleting(run *r)
{
	char path[4200], packs[4200], *text = NULL;
	size_t len;
	int rc;
	if (r->st.phase != UDR__GC_DELETING || !r->st.plan[0])
		return 0;
	r->resumed = true;
	if ((rc = gc_path(path, sizeof(path), r->s, r->st.plan)) < 0)
		return rc;
	if ((rc = read_plan(&text, &len, r->s, r->st.plan, r->st.epoch, r->st.mark)) < 0 || !text)
		return rc;
	snprintf(packs, sizeof(packs), "%s/packs", r->s->path);
	udr__phase_enter(UDR__PHASE_GC_RETIRE);
	rc = 0;
	for (char *q = text; rc == 0 && (q = strchr(q, '"')) != NULL;) {
		char *e = strchr(q + 1, '"');
		if (!e)
			break;
		if (e - q - 1 == UDR_HASH_HEXSIZE) {
			char hex[UDR_HASH_HEXSIZE + 1], ip[4300], pp[4300];
			memcpy(hex, q + 1, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = 0;
			snprintf(ip, sizeof(ip), "%s/%s.idx", packs, hex);
			snprintf(pp, sizeof(pp), "%s/%s.pack", packs, hex);
			if ((rc = unlink_ok(ip)) == 0 && (rc = udr__fsync_dir(packs)) == 0)
				rc = unlink_ok(pp);
		}
		q = e + 1;
	}
	if (rc == 0)
		rc = udr__fsync_dir(packs);
	udr__phase_leave(UDR__PHASE_GC_RETIRE);
	free(text);
	if (rc < 0)
		return rc;
	/* done: STATE idle first, then the plan it named (abandon_leftovers
	 * removes the doomed set) */
	r->st.plan[0] = r->st.doomed[0] = 0;
	if ((rc = state_save(r, UDR__GC_IDLE)) < 0)
		return rc;
	(void)unlink_ok(path);
	udr_error_clear();
	return 0;
}

/* A run killed before it deleted anything (STATE planned or rewritten)
 * left its plan and maybe durable outputs (duplicates the new mark finds):
 * STATE idle, then every run file of earlier runs goes (plan-<e>.json, and
 * the doomed-/dead-/journal- files of GC.md 5.1 should a run leave one). */
static int abandon_leftovers(run *r)
{
	char dir[4200];
	DIR *d;
	struct dirent *e;
	int rc;
	if (r->st.phase == UDR__GC_PLANNED || r->st.phase == UDR__GC_REWRITTEN) {
		r->resumed = true;
		r->st.plan[0] = r->st.doomed[0] = 0;
		if ((rc = state_save(r, UDR__GC_IDLE)) < 0)
			return rc;
	}
	snprintf(dir, sizeof(dir), "%s/" UDR__GC_DIR, r->s->path);
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
	rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char path[4500];
		if (strncmp(e->d_name, "plan-", 5) != 0 && strncmp(e->d_name, "doomed-", 7) != 0 &&
		    strncmp(e->d_name, "dead-", 5) != 0 && strncmp(e->d_name, "journal-", 8) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((rc = unlink_ok(path)) == 0)
			r->leftovers++;
	}
	closedir(d);
	return rc;
}

/* S6, fresh records: only those younger than the grace are roots, so the
 * older ones go (both files rewritten; no writer appends meanwhile: the
 * run holds both active files). */
struct fresh_keep {
	udr__buf b;
	int64_t cut;
	uint64_t dropped;
};

static int fresh_keep_cb(int64_t ms, const udr_hash *hash, void *payload)
{
	struct fresh_keep *k = payload;
	unsigned char rec[UDR__GC_FRESH_RECORD];
	if (ms < k->cut) {
		k->dropped++;
		return 0;
	}
	udr__put_le64(rec, (uint64_t)ms);
	memcpy(rec + 8, hash->bytes, UDR_HASH_SIZE);
	return udr__buf_put(&k->b, rec, sizeof(rec));
}

static int fresh_trim(run *r, int64_t now)
{
	int rc = 0;
	for (unsigned par = 0; par < 2 && rc == 0; par++) {
		struct fresh_keep k = {{0}, now - r->o->grace_ms, 0};
		char path[4200], name[16];
		snprintf(name, sizeof(name), "fresh.%u", par);
		if ((rc = gc_path(path, sizeof(path), r->s, name)) < 0)
			break;
		rc = udr__gc_fresh_foreach(r->s->path, par, fresh_keep_cb, &k);
		if (rc == 0 && k.dropped > 0)
			rc = udr__write_file_atomic(r->s->tmpdir, path, k.b.ptr ? k.b.ptr : "", k.b.len,
			                            UDR__PUBLISH_REPLACE, true);
		r->fresh_dropped += k.dropped;
		udr__buf_free(&k.b);
	}
	return rc;
}

/* ---- plan -------------------------------------------------------------------------------- */

static int cmp_frac_desc(const void *a, const void *b, void *ctx)
{
	const udr__gc_packinfo *v = ctx;
	const udr__gc_packinfo *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
	double fx = x->size ? (double)x->dead_bytes / (double)x->size : 0;
	double fy = y->size ? (double)y->dead_bytes / (double)y->size : 0;
	return fx > fy ? -1 : fx < fy;
}

/* Does object run b keep a copy after the sweep (a kept copy, or any copy
 * in a pack kept as it is)?  SIZE_MAX (not stored): no. */
static bool stays(const udr__gc_mark *m, size_t b)
{
	if (b == SIZE_MAX)
		return false;
	for (size_t j = b; j < m->n && (j == b || !(m->v[j].flags & UDR__GC_FIRST)); j++) {
		size_t p = udr__gc_copy_pack(m, m->v[j].id, NULL);
		if ((m->v[j].flags & UDR__GC_KEPT) || (p != SIZE_MAX && m->packs[p].action == A_KEEP))
			return true;
	}
	return false;
}

/*
 * A pack kept as it is keeps its dead entries too.  A dead manifest or delta
 * there that names a piece or base this run removes (no kept copy and no
 * copy in a pack kept as it is; or one missing already) would outlive what
 * it needs: fsck reports it as damage on a healthy store, and a later
 * repack may keep such a delta over another copy.  Its pack is rewritten
 * instead, whatever the threshold or the limit (review R5).  The dead
 * manifest and delta entries of kept packs are read for this.
 */
static int kept_packs_pass(run *r, uint64_t *repack, bool *changed)
{
	udr__gc_mark *m = &r->m;
	int rc = 0;
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		uint64_t rec;
		size_t p = udr__gc_copy_pack(m, m->v[i].id, &rec);
		udr__pack_entry e;
		udr__loc l;
		unsigned char *buf = NULL;
		size_t len = 0;
		char hex[UDR_HASH_HEXSIZE + 1];
		bool dangling = false;
		udr_hash h;
		if (p == SIZE_MAX || m->packs[p].action != A_KEEP || m->packs[p].live_entries == 0 ||
		    (m->v[i].flags & UDR__GC_KEPT))
			continue;
		udr__idx_record(&e, &m->packs[p].p->idx, rec);
		if (e.kind != UDR__K_MANIFEST && e.kind != UDR__K_DELTA)
			continue;
		udr__gc_copy_hash(&h, m, m->v[i].id);
		udr_hash_tohex(hex, &h);
		memset(&l, 0, sizeof(l));
		l.kind = (enum udr__kind)e.kind;
		l.pack = m->packs[p].p;
		l.offset = e.offset;
		l.length = e.length;
		rc = udr__loc_read(&buf, &len, r->s, &l, &h, e.kind == UDR__K_DELTA ? UDR__PIECE_HARD_MAX : (size_t)1 << 31,
		                   NULL);
		if (rc == 0 && e.kind == UDR__K_MANIFEST) {
			udr__manifest mf;
			if ((rc = udr__manifest_parse(&mf, buf, len, &h, hex)) == 0) {
				for (uint64_t k = 0; k < mf.npieces && !dangling; k++) {
					dangling = !stays(m, udr__gc_find(m, &mf.pieces[k].hash));
				}
				udr__manifest_free(&mf);
			}
		} else if (rc == 0) {
			udr__delta_hdr dh;
			if ((rc = udr__delta_parse(&dh, buf, len, hex)) == 0)
				for (int k = 0; k < dh.nbases && !dangling; k++)
					dangling = !stays(m, udr__gc_find(m, &dh.bases[k]));
		}
		free(buf);
		if (rc == UDR_ECORRUPT) {
			/* a damaged dead entry: rewriting the pack drops it */
			udr_error_clear();
			rc = 0;
			dangling = true;
		}
		if (rc == 0 && dangling) {
			m->packs[p].action = A_REWRITE;
			*repack += m->packs[p].live_bytes;
			*changed = true;
		}
	}
	return rc;
}

/* Until no pack changes: a pack rewritten drops dead entries that other
 * kept packs' dead entries may name. */
static int kept_packs_self_contained(run *r, uint64_t *repack)
{
	bool changed;
	int rc;
	do {
		changed = false;
		rc = kept_packs_pass(r, repack, &changed);
	} while (rc == 0 && changed);
	return rc;
}

static int plan(run *r)
{
	udr__gc_mark *m = &r->m;
	uint64_t total = 0, unused = 0, repack = 0, limit = r->o->max_repack_bytes;
	size_t *cand = NULL, nc = 0;
	int rc;
	for (size_t i = 0; i < m->npacks; i++)
		total += m->packs[i].size;
	for (size_t i = 0; i < m->nloose; i++)
		total += m->loose[i].size;
	r->bytes_before = total;
	/* dead copies: objects, and the loose files among them */
	if (!(r->dead_loose = malloc((m->nloose ? m->nloose : 1) * sizeof(*r->dead_loose))) ||
	    !(cand = malloc((m->npacks ? m->npacks : 1) * sizeof(*cand)))) {
		free(cand);
		return udr__error_oom();
	}
	for (size_t i = 0; i < m->n; i++) {
		uint64_t rec;
		size_t p = udr__gc_copy_pack(m, m->v[i].id, &rec);
		if ((m->v[i].flags & UDR__GC_FIRST) && !(m->v[i].flags & (UDR__GC_LIVE | UDR__GC_BASE)))
			r->dead_objects++;
		if (p == SIZE_MAX && !(m->v[i].flags & UDR__GC_KEPT)) {
			size_t li = m->v[i].id - m->base[m->npacks];
			r->dead_loose[r->ndead_loose++] = li;
			r->loose_bytes += m->loose[li].size;
		}
	}
	/* A pack holding a shunned delta copy (mark.c shun_deltas: the object
	 * has an intact full copy, the delta's bases were not followed and may
	 * die) is never kept as it is, whatever the threshold or the limit: the
	 * base-less delta would outlive its bases, and a later repack, which
	 * keeps the first copy of each hash it meets, could keep it and drop
	 * the full copy (review R5).  Rewritten, it keeps only kept copies. */
	for (size_t i = 0; i < m->n; i++) {
		size_t p = udr__gc_copy_pack(m, m->v[i].id, NULL);
		if (p != SIZE_MAX && (m->v[i].flags & UDR__GC_SHUNNED) && m->packs[p].live_entries > 0 &&
		    m->packs[p].action != A_REWRITE) {
			m->packs[p].action = A_REWRITE;
			repack += m->packs[p].live_bytes;
		}
	}
	for (size_t i = 0; i < m->npacks; i++) {
		udr__gc_packinfo *pi = &m->packs[i];
		double frac = pi->size ? (double)pi->dead_bytes / (double)pi->size : 0;
		if (pi->live_entries == 0) {
			pi->action = A_DROP;
			continue;
		}
		if (pi->dead_bytes == 0 || pi->action == A_REWRITE)
			continue;
		if (frac * 100 >= r->o->threshold_pct || pi->size < r->s->pack_target / 4) {
			if (!limit || repack + pi->live_bytes <= limit) {
				pi->action = A_REWRITE;
				repack += pi->live_bytes;
				continue;
			}
		}
		cand[nc++] = i;
		unused += pi->dead_bytes;
	}
	qsort_r(cand, nc, sizeof(*cand), cmp_frac_desc, m->packs);
	for (size_t k = 0; k < nc; k++) {
		udr__gc_packinfo *pi = &m->packs[cand[k]];
		if ((double)unused * 100 <= (double)r->o->max_unused_pct * (double)total)
			break;
		if (limit && repack + pi->live_bytes > limit)
			continue;
		pi->action = A_REWRITE;
		repack += pi->live_bytes;
		unused -= pi->dead_bytes;
	}
	free(cand);
	if ((rc = kept_packs_self_contained(r, &repack)) < 0)
		return rc;
	unused = 0;
	for (size_t i = 0; i < m->npacks; i++)
		if (m->packs[i].action == A_KEEP)
			unused += m->packs[i].dead_bytes;
	r->unused_after = unused;
	for (size_t i = 0; i < m->npacks; i++)
		if (m->packs[i].action == A_DROP)
			r->dropped++;
		else if (m->packs[i].action == A_REWRITE)
			r->rewritten++;
	return 0;
}

static int write_plan(run *r, uint64_t epoch)
{
	udr__buf b = {0};
	char path[4200], name[64];
	int rc;
	snprintf(name, sizeof(name), "plan-%" PRIu64 ".json", epoch);
	if ((rc = gc_path(path, sizeof(path), r->s, name)) < 0)
		return rc;
	rc = udr__buf_printf(&b, "{\"format\":1,\"kind\":\"udr-gc-plan\",\"epoch\":%" PRIu64 ",\"mark\":%" PRIu64
	                     ",\"drop\":[", epoch, r->st.mark);
	for (int a = A_DROP; a <= A_REWRITE && rc == 0; a++) {
		bool first = true;
		if (a == A_REWRITE)
			rc = udr__buf_puts(&b, "],\"rewrite\":[");
		for (size_t i = 0; i < r->m.npacks && rc == 0; i++)
			if (r->m.packs[i].action == a) {
				rc = udr__buf_printf(&b, "%s\"%s\"", first ? "" : ",", r->m.packs[i].p->hex);
				first = false;
			}
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, "],\"loose\":[");
	for (size_t k = 0; k < r->ndead_loose && rc == 0; k++) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &r->m.loose[r->dead_loose[k]].hash);
		rc = udr__buf_printf(&b, "%s\"%s\"", k ? "," : "", hex);
	}
	if (rc == 0)
		rc = udr__buf_printf(&b, "],\"dead_objects\":%" PRIu64 ",\"sealed\":true}", r->dead_objects);
	if (rc == 0)
		rc = udr__config_write(r->s->tmpdir, path, b.ptr, UDR__PUBLISH_REPLACE);
	udr__buf_free(&b);
	if (rc == 0)
		snprintf(r->st.plan, sizeof(r->st.plan), "%s", name);
	return rc;
}

/*
 * The doomed set (GC.md 4.7): every object this run removes entirely (no
 * kept copy, no copy in a pack kept as it is), in hash order, durable
 * before STATE names it.  Closed under references: a manifest or delta
 * that stays never names a doomed object (kept_packs_self_contained), so a
 * writer checks only the objects it reuses directly.
 */
static int write_doomed(run *r, uint64_t epoch)
{
	udr__gc_mark *m = &r->m;
	udr_hash *hs = NULL;
	uint64_t n = 0;
	char path[4200], name[64], *bytes = NULL;
	size_t len = 0;
	int rc;
	for (size_t i = 0; i < m->n; i++)
		if ((m->v[i].flags & UDR__GC_FIRST) && !stays(m, i))
			n++;
	if (!(hs = malloc((size_t)(n ? n : 1) * sizeof(*hs))))
		return udr__error_oom();
	n = 0;
	for (size_t i = 0; i < m->n; i++)
		if ((m->v[i].flags & UDR__GC_FIRST) && !stays(m, i))
			udr__gc_copy_hash(&hs[n++], m, m->v[i].id);
	/* v is sorted by prefix then hash: already in order.  The name is
	 * never reused (a random part), even if a damaged STATE removed by
	 * hand sends the epoch back: a writer that found a dead run's set
	 * ignores that name for good (gcfence.c) */
	{
		uint64_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint64_t)udr__now_ms() ^ ((uint64_t)getpid() << 40);
		snprintf(name, sizeof(name), "doomed-%" PRIu64 "-%016" PRIx64, epoch, rnd);
	}
	if ((rc = gc_path(path, sizeof(path), r->s, name)) == 0 &&
	    (rc = udr__doomset_encode(&bytes, &len, epoch, hs, n)) == 0)
		rc = udr__write_file_atomic(r->s->tmpdir, path, bytes, len, UDR__PUBLISH_REPLACE, true);
	/* held until the run ends, before STATE names the set: a writer
	 * waiting for the run tells it is dead by this lock, not by gc/lock,
	 * which the next run holds while it waits for that writer (review R6) */
	if (rc == 0 && ((r->doomfd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0 ||
	                UDR_IO->flock(r->doomfd, LOCK_EX) < 0))
		rc = udr__error_io(errno, "cannot lock %s", path);
	free(bytes);
	free(hs);
	if (rc == 0)
		snprintf(r->st.doomed, sizeof(r->st.doomed), "%s", name);
	return rc;
}

/* ---- rewrite ------------------------------------------------------------------------------- */

#define REWRITE_WINDOW ((size_t)1 << 20) /* one read covers kept entries within 1 MiB */
#define REWRITE_GAP ((uint64_t)16 << 10) /* and skips at most 16 KiB of dead ones between two */

/* qsort_r: copy ids of one pack (its index, its first id) by their
 * entries' offsets */
struct id_order {
	const udr__idx *idx;
	uint64_t base;
};

static int cmp_id_offset(const void *a, const void *b, void *arg)
{
	const struct id_order *o = arg;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	uint64_t x = udr__get_le64(udr__idx_rec_at(o->idx, i - o->base));
	uint64_t y = udr__get_le64(udr__idx_rec_at(o->idx, j - o->base));
	if (x != y) /* equal only in a damaged index: then by id, never by chance */
		return x < y ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* The kept copies in packs this run rewrites, as copy ids (*out): pack by
 * pack (m->packs order), each pack's in offset order; pack p's are
 * (*starts)[p] up to (*starts)[p + 1] (npacks + 1 entries, malloc'd). */
static int rewrite_order(uint32_t **out, size_t **starts, const udr__gc_mark *m)
{
	uint32_t *ids = NULL;
	size_t *st = calloc(m->npacks + 1, sizeof(*st)), *fill, total;
	if (!st)
		return udr__error_oom();
	for (size_t i = 0; i < m->n; i++) {
		size_t p = udr__gc_copy_pack(m, m->v[i].id, NULL);
		if (p != SIZE_MAX && m->packs[p].action == A_REWRITE && (m->v[i].flags & UDR__GC_KEPT))
			st[p + 1]++;
	}
	for (size_t p = 0; p < m->npacks; p++)
		st[p + 1] += st[p];
	total = st[m->npacks];
	ids = malloc((total ? total : 1) * sizeof(*ids));
	fill = malloc((m->npacks + 1) * sizeof(*fill));
	if (!ids || !fill) {
		free(ids);
		free(fill);
		free(st);
		return udr__error_oom();
	}
	memcpy(fill, st, (m->npacks + 1) * sizeof(*fill));
	for (size_t i = 0; i < m->n; i++) {
		size_t p = udr__gc_copy_pack(m, m->v[i].id, NULL);
		if (p != SIZE_MAX && m->packs[p].action == A_REWRITE && (m->v[i].flags & UDR__GC_KEPT))
			ids[fill[p]++] = m->v[i].id;
	}
	free(fill);
	for (size_t p = 0; p < m->npacks; p++)
		if (st[p + 1] - st[p] > 1) {
			struct id_order o = {&m->packs[p].p->idx, m->base[p]};
			qsort_r(ids + st[p], st[p + 1] - st[p], sizeof(*ids), cmp_id_offset, &o);
		}
	*out = ids;
	*starts = st;
	return 0;
}

/*
 * S1: the kept entries of the rewritten packs into new packs (the writer
 * sorts each output's index itself).  Read in pack order through a read
 * window, one pread serving neighbouring kept entries (skipping short
 * runs of dead ones), each entry's header, CRC and decoded size from the
 * one read (udr__loc_read_entry: the checks of udr__loc_read).  Hash order
 * with a second read for the size was two scattered preads an entry.
 */
static int rewrite(run *r)
{
	udr__gc_mark *m = &r->m;
	udr__packw *w[2] = {NULL, NULL};
	udr__readwin win;
	uint32_t *ids = NULL;
	size_t *starts = NULL;
	uint64_t done = 0, total = 0;
	int rc = 0;
	for (size_t i = 0; i < m->npacks; i++)
		if (m->packs[i].action == A_REWRITE)
			total += m->packs[i].live_bytes;
	if (total == 0)
		return 0;
	if ((rc = rewrite_order(&ids, &starts, m)) < 0)
		return rc;
	memset(&win, 0, sizeof(win));
	win.cap = REWRITE_WINDOW;
	udr__phase_enter(UDR__PHASE_GC_REWRITE);
	for (size_t p = 0; p < m->npacks && rc == 0; p++) {
		const udr__idx *idx = &m->packs[p].p->idx;
		int cls = idx->cls == UDR__PACK_CLASS_META ? 1 : 0;
		for (size_t k = starts[p]; k < starts[p + 1] && rc == 0; k++) {
			udr__pack_entry e;
			udr__loc l;
			unsigned char *buf = NULL;
			size_t len = 0;
			uint64_t raw = 0, end;
			udr__idx_record(&e, idx, ids[k] - m->base[p]);
			if (!w[cls] &&
			    (rc = udr__packw_new(&w[cls], r->s, cls == 1 ? UDR__PACK_CLASS_META : UDR__PACK_CLASS_DATA)) < 0)
				break;
			memset(&l, 0, sizeof(l));
			l.kind = e.kind >= 1 && e.kind <= 4 ? (enum udr__kind)e.kind : UDR__K_RAW;
			l.pack = m->packs[p].p;
			l.offset = e.offset;
			l.length = e.length;
			end = e.offset + UDR__PACK_ENTRY_HDR + e.length + UDR__PACK_ENTRY_CRC;
			if (!(win.len && win.pack == l.pack && e.offset >= win.off && end <= win.off + win.len)) {
				/* the hint: the kept entries that follow in this
				 * pack, as far as one window reaches */
				for (size_t j = k + 1; j < starts[p + 1]; j++) {
					const unsigned char *rec = udr__idx_rec_at(idx, ids[j] - m->base[p]);
					uint64_t b = udr__get_le64(rec),
					         x = b + UDR__PACK_ENTRY_HDR + udr__get_le32(rec + 8) + UDR__PACK_ENTRY_CRC;
					if (b < end || x - e.offset > win.cap || b - end > REWRITE_GAP)
						break;
					end = x;
				}
				win.hint_pack = l.pack;
				win.hint_end = end;
			}
			/* CRC and header checked by the read: a damaged entry stops the run */
			rc = udr__loc_read_entry(&buf, &len, &raw, r->s, &l, &e.hash, e.length, NULL, &win);
			if (rc == 0)
				rc = udr__packw_append(w[cls], &e.hash, l.kind, raw, buf, (uint32_t)len);
			free(buf);
			done += (uint64_t)UDR__PACK_ENTRY_HDR + e.length + UDR__PACK_ENTRY_CRC;
			progress(r, "rewrite", done, total);
		}
	}
	udr__readwin_free(&win);
	free(ids);
	free(starts);
	for (int k = 0; k < 2; k++) {
		if (rc == 0 && w[k])
			rc = udr__packw_flush(w[k]);
		if (w[k])
			r->written_packs += udr__packw_published(w[k]);
		udr__packw_free(w[k]);
	}
	udr__phase_leave(UDR__PHASE_GC_REWRITE);
	return rc;
}

/* ---- unchain -------------------------------------------------------------------------------- */

/* What a full copy of delta h (raw size raw, stored in e.length bytes)
 * adds over the delta: the zstd frame when smaller, else the raw bytes.
 * *full and *z (either may stay NULL) receive the bytes when asked.  1 when
 * h does not decode (left chained).  Decodes through cache (shared by the
 * threads of fc_make, which sets its budget). */
static int full_copy(run *r, udr__bcache *cache, const udr_hash *h, uint64_t raw, unsigned char **full, size_t *flen,
                     unsigned char **z, size_t *zlen)
{
	int rc;
	*full = *z = NULL;
	*flen = *zlen = 0;
	{
		/* its bytes checked against h; the levels of its chain, shared
		 * with other candidates through the cache, are not rehashed one by
		 * one (damage in them changes these bytes) */
		const udr__bref *ref = NULL;
		const unsigned char *d;
		int depth;
		if ((rc = udr__base_load(&ref, &depth, r->s, h, cache)) < 0) {
			if (rc == UDR_ECORRUPT || rc == UDR_ENOTFOUND) {
				udr_error_clear();
				return 1;
			}
			return rc;
		}
		d = udr__bref_data(ref, flen);
		if (*flen != raw) {
			udr__bref_release(cache, ref);
			*flen = 0;
			return 1;
		}
		if (!(*full = malloc(*flen ? *flen : 1))) {
			udr__bref_release(cache, ref);
			return udr__error_oom();
		}
		memcpy(*full, d, *flen);
		udr__bref_release(cache, ref);
	}
	if (r->s->level > 0 && (rc = udr__zstd_compress(z, zlen, *full, *flen, r->s->level, NULL, 0)) < 0) {
		free(*full);
		*full = NULL;
		return rc;
	}
	if (*z && *zlen >= *flen - *flen / 32) {
		free(*z);
		*z = NULL;
		*zlen = 0;
	}
	return 0;
}

/* A candidate for unchaining: a live object whose kept copy is a delta
 * (stored bytes) on a base only dead versions need; its full copy once
 * made (fc_make). */
typedef struct uc_cand {
	udr_hash h;
	size_t run;   /* its first copy in the mark (m->v) */
	size_t group; /* unchain_groups: its group's root */
	uint64_t raw, stored;
	int64_t cost; /* what its full copy adds over its delta: exact when sampled */
	uint64_t where; /* its kept copy's pack number << 40 | offset: the order candidates decode in */
	bool sampled, chosen;
	bool made; /* its full copy is held (full, or z when smaller) */
	unsigned char *full, *z;
	size_t flen, zlen;
	int rc; /* fc_make: 0 made, 1 left chained (does not decode), < 0 error */
} uc_cand;

typedef struct fc_pool {
	run *r;
	uc_cand **c;
	size_t n, next;
	pthread_mutex_t mu; /* the first error: */
	int err;
	char *msg; /* its message, whole (malloc'd; NULL: out of memory) */
} fc_pool;

static void *fc_worker(void *arg)
{
	fc_pool *p = arg;
	for (;;) {
		size_t k = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		uc_cand *c;
		if (k >= p->n)
			break;
		c = p->c[k];
		c->rc = full_copy(p->r, p->r->cache, &c->h, c->raw, &c->full, &c->flen, &c->z, &c->zlen);
		if (c->rc == 0 && c->z) { /* only what is appended is held */
			free(c->full);
			c->full = NULL;
		}
		if (c->rc < 0) {
			pthread_mutex_lock(&p->mu);
			if (!p->err) {
				p->err = c->rc;
				p->msg = strdup(udr_error_last()->message);
			}
			pthread_mutex_unlock(&p->mu);
			udr_error_clear();
			__atomic_store_n(&p->next, p->n, __ATOMIC_RELAXED); /* the others stop too */
		}
	}
	return NULL;
}

/* A helper thread of fc_make: it runs at a lower priority (nice +10), so
 * that writers committing while gc runs (it unchains before it stops them)
 * get the cores first; gc's own thread keeps its priority, so a run is
 * never slower than with one thread.  (Measured on 2 cores, bench_gc.sh
 * at SCALE=0.2: a writer's mean commit latency while gc runs went from
 * 0.94x to 1.39x of alone with an ordinary second thread.) */
static void *fc_helper(void *arg)
{
#ifdef __linux__
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) {
		/* only a preference */
	}
#endif
	return fc_worker(arg);
}

/*
 * The cache of unchaining's decodes: the bases a candidate's chains need
 * widen with depth (a delta names the pieces around its own), and the
 * candidates, decoded in the order they were written, share them with
 * their neighbours.  On bench_gc.sh's SCALE=0.3 store (depth 50, 128 KiB
 * pieces, 118 candidates) the run decoded 17,800 pieces with 16 MiB,
 * 9,500 with 128, 3,500 with 256 and 3,200 with 1 GiB: (depth + 1) x 40
 * average pieces, within a sixteenth of the memory.
 */
size_t udr__gc_unchain_cache_test;  /* tests: the cache's size (0: computed) */
bool udr__gc_unchain_hash_order;    /* tests: candidates in the mark's order, as before */

static size_t unchain_cache_cap(const udr_store *s)
{
	uint64_t avg = s->cdc.avg ? s->cdc.avg : ((uint64_t)128 << 10);
	if (udr__gc_unchain_cache_test)
		return udr__gc_unchain_cache_test;
	uint64_t want = (uint64_t)(s->max_depth > 0 ? s->max_depth + 1 : 2) * 40 * avg, lim = udr__mem_limit() / 16;
	if (want > lim)
		want = lim;
	if (want < udr__bcache_cap(s))
		want = udr__bcache_cap(s);
	return want > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)want;
}

/* Make the full copies of the n candidates c[] (decoded through one
 * shared cache, compressed), on the store's worker threads: decoding
 * chains is most of a run's time.  The cache's decode budget is their
 * budgets' sum, so damage still cannot make the batch decode without
 * bound.  The first error of any candidate is returned (a candidate that
 * does not decode is not an error: rc 1). */
static int fc_make(run *r, uc_cand **c, size_t n)
{
	fc_pool p = {r, c, n, 0, PTHREAD_MUTEX_INITIALIZER, 0, NULL};
	pthread_t t[16];
	int rc;
	int nt = r->s->threads > 1 ? r->s->threads : 1, started = 0;
	uint64_t budget = 0;
	if (n == 0)
		return 0;
	if (nt > 16)
		nt = 16;
	if ((size_t)nt > n)
		nt = (int)n;
	/* one cache for the run's decodes: candidates share their chains */
	if (!r->cache && !(r->cache = udr__bcache_new(unchain_cache_cap(r->s), 0)))
		return udr__error_oom();
	for (size_t k = 0; k < n; k++) {
		uint64_t b = udr__decode_budget(r->s, c[k]->raw);
		budget = budget > UINT64_MAX - b ? UINT64_MAX : budget + b;
	}
	udr__bcache_budget(r->cache, budget);
	for (int i = 1; i < nt; i++)
		if (pthread_create(&t[started], NULL, fc_helper, &p) == 0)
			started++;
	fc_worker(&p);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_destroy(&p.mu);
	if (!p.err)
		return 0;
	rc = p.msg ? udr__error_set(p.err, "%s", p.msg) : udr__error_oom();
	free(p.msg);
	return rc;
}

static void cand_drop(uc_cand *c)
{
	free(c->full);
	free(c->z);
	c->full = c->z = NULL;
	c->made = false;
}

/* Append c's full copy to *w (made when NULL). */
static int cand_append(run *r, udr__packw **w, uc_cand *c)
{
	int rc;
	if (!*w && (rc = udr__packw_new(w, r->s, UDR__PACK_CLASS_DATA)) < 0)
		return rc;
	if (c->z)
		return udr__packw_append(*w, &c->h, UDR__K_ZST, c->flen, c->z, (uint32_t)c->zlen);
	return udr__packw_append(*w, &c->h, UDR__K_RAW, c->flen, c->full, (uint32_t)c->flen);
}

static int cmp_cand_where(const void *a, const void *b)
{
	const uc_cand *x = a, *y = b;
	if (x->where != y->where)
		return x->where < y->where ? -1 : 1;
	return x->run < y->run ? -1 : x->run > y->run;
}

/* The live objects whose kept copy is a delta naming a base no live object
 * needs, in the order they were written; a delta entry that does not parse is left
 * chained (the guard and fsck speak of damage). */
static int unchain_candidates(run *r, uc_cand **out, size_t *nout)
{
	udr__gc_mark *m = &r->m;
	uc_cand *cands = NULL;
	size_t ncand = 0, capcand = 0;
	int rc = 0;
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		size_t kept = SIZE_MAX, j = i, p;
		uint64_t rec;
		udr__pack_entry e;
		udr__loc l;
		udr__delta_hdr dh;
		unsigned char *buf = NULL;
		size_t len = 0;
		char hex[UDR_HASH_HEXSIZE + 1];
		bool dead_base = false;
		udr_hash h;
		if (!(m->v[i].flags & UDR__GC_FIRST) || !(m->v[i].flags & UDR__GC_LIVE))
			continue;
		do {
			if (m->v[j].flags & UDR__GC_KEPT)
				kept = j;
			j++;
		} while (j < m->n && !(m->v[j].flags & UDR__GC_FIRST));
		if (kept == SIZE_MAX || (p = udr__gc_copy_pack(m, m->v[kept].id, &rec)) == SIZE_MAX)
			continue;
		udr__idx_record(&e, &m->packs[p].p->idx, rec);
		if (e.kind != UDR__K_DELTA)
			continue;
		if (m->dref && m->dref[m->v[kept].id]) {
			/* its bases, as the mark resolved them: read it only when one dies */
			const uint32_t *d = m->dpool + m->dref[m->v[kept].id] - 1;
			for (uint32_t k = 0; k < d[0] && !dead_base; k++)
				dead_base = !(m->v[d[1 + k]].flags & UDR__GC_LIVE);
			if (!dead_base)
				continue;
			dead_base = false; /* decided again from the entry, below */
		}
		udr__gc_copy_hash(&h, m, m->v[i].id);
		udr_hash_tohex(hex, &h);
		memset(&l, 0, sizeof(l));
		l.kind = UDR__K_DELTA;
		l.pack = m->packs[p].p;
		l.offset = e.offset;
		l.length = e.length;
		if ((rc = udr__loc_read(&buf, &len, r->s, &l, &h, e.length, NULL)) == 0 &&
		    (rc = udr__delta_parse(&dh, buf, len, hex)) == 0)
			for (int k = 0; k < dh.nbases; k++) {
				size_t b = udr__gc_find(m, &dh.bases[k]);
				dead_base |= b != SIZE_MAX && !(m->v[b].flags & UDR__GC_LIVE);
			}
		free(buf);
		if (rc == UDR_ECORRUPT) {
			udr_error_clear();
			rc = 0;
			continue;
		}
		if (rc < 0 || !dead_base)
			continue;
		if (ncand == capcand) {
			size_t c2 = capcand ? 2 * capcand : 256;
			uc_cand *q = realloc(cands, c2 * sizeof(*cands));
			if (!q) {
				rc = udr__error_oom();
				break;
			}
			cands = q;
			capcand = c2;
		}
		memset(&cands[ncand], 0, sizeof(cands[ncand]));
		cands[ncand].h = h;
		cands[ncand].run = i;
		cands[ncand].raw = dh.raw_size;
		cands[ncand].stored = e.length;
		cands[ncand].where = (uint64_t)p << 40 | (e.offset & (((uint64_t)1 << 40) - 1));
		ncand++;
	}
	if (rc < 0) {
		free(cands);
		return rc;
	}
	/* In the order they were written, which is their contents' order: a
	 * candidate's chain and its neighbours' share most bases (a delta
	 * names the pieces around its own), so the shared cache serves the
	 * next one.  In the mark's (hash) order each decoded its chains' whole
	 * cone anew: on bench_gc.sh's SCALE=0.3 store, unchaining 118 pieces
	 * was most of a run. */
	if (ncand > 1 && !udr__gc_unchain_hash_order)
		qsort(cands, ncand, sizeof(*cands), cmp_cand_where);
	*out = cands;
	*nout = ncand;
	return 0;
}

/* ---- guard ---------------------------------------------------------------------------------- */

static bool pack_removed(const run *r, const char *hex)
{
	for (size_t i = 0; i < r->m.npacks; i++)
		if (r->m.packs[i].action != A_KEEP && strcmp(r->m.packs[i].p->hex, hex) == 0)
			return true;
	return false;
}

/* Does h keep a copy outside what is removed: a copy in a pack kept or
 * written whose entry header checks (hash, kind, length) as readers do,
 * or a loose file not removed?  Every copy is looked up in turn. */
static int guard_one(run *r, const udr_hash *h, bool *ok)
{
	udr__gc_mark *m = &r->m;
	int rc = 0;
	*ok = false;
	for (unsigned k = 0; !*ok && rc == 0; k++) {
		udr__loc l;
		if ((rc = udr__obj_find(&l, r->s, h, k, k == 0)) < 0)
			break;
		if (l.kind == UDR__K_NONE) {
			udr__loc_free(&l);
			break;
		}
		if (l.pack) {
			uint64_t raw;
			if (!pack_removed(r, l.pack->hex) && udr__loc_raw_size(&raw, r->s, &l, h) == 0)
				*ok = true;
			udr_error_clear();
		} else {
			bool dead = false;
			for (size_t d = 0; d < r->ndead_loose && !dead; d++) {
				const udr__gc_loose *x = &m->loose[r->dead_loose[d]];
				dead = udr_hash_equal(&x->hash, h) && (int)x->kind == (int)l.kind;
			}
			*ok = !dead;
		}
		udr__loc_free(&l);
	}
	return rc;
}

static int guard_lost(const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hash_tohex(hex, h);
	return udr__error_set(UDR_ECORRUPT, "gc guard: live chunk %s would have no copy left after the sweep; "
	                      "nothing was removed", hex);
}

/* A live object's first copy, as the store's lookup finds it, in a pack
 * this run keeps or wrote: its header is checked in pack order. */
typedef struct gq {
	uint64_t off;
	uint32_t length;
	uint32_t i;  /* the object's run in m->v */
	uint16_t pk; /* in the guard's pack list */
	uint8_t kind;
} gq;

static int cmp_gq(const void *a, const void *b)
{
	const gq *x = a, *y = b;
	if (x->pk != y->pk)
		return x->pk < y->pk ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

#define GUARD_WINDOW ((size_t)1 << 20) /* one read covers entries within 1 MiB */
#define GUARD_GAP ((uint64_t)64 << 10) /* and skips at most 64 KiB between two */

/* Every live object keeps a copy outside what is removed (guard_one).
 * The store's lookup finds each one's first copy; those in packs that stay
 * (nearly all) have their headers read in pack order, many to a read
 * (one pread an object was a tenth of a run at 1,000 versions); an object
 * whose first copy is elsewhere or fails goes through guard_one, which
 * tries every copy and decides as before. */
static int guard(run *r)
{
	udr__gc_mark *m = &r->m;
	uint64_t done = 0;
	gq *q = NULL;
	size_t nq = 0, capq = 0, npk = 0;
	struct udr__pack **pk = NULL;
	bool *pk_removed = NULL;
	unsigned char *buf = NULL;
	int rc = 0;
	if (r->s->packs && (rc = udr__packset_scan(r->s)) < 0)
		return rc;
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		udr_hash h;
		udr__loc l;
		bool ok = false, slow = true;
		if (!(m->v[i].flags & UDR__GC_FIRST) || !(m->v[i].flags & (UDR__GC_LIVE | UDR__GC_BASE)))
			continue;
		udr__gc_copy_hash(&h, m, m->v[i].id);
		/* the first copy in a pack that stays (the copies of packs this
		 * run rewrites come first for many); a loose one, or none: the
		 * per-object check decides */
		for (unsigned k = 0; rc == 0 && slow; k++) {
			size_t p = 0;
			if ((rc = udr__obj_find(&l, r->s, &h, k, k == 0)) < 0)
				break;
			if (!l.pack || l.kind == UDR__K_NONE) {
				udr__loc_free(&l);
				break;
			}
			while (p < npk && pk[p] != l.pack)
				p++;
			if (p == npk && npk < UINT16_MAX) {
				struct udr__pack **np = realloc(pk, (npk + 1) * sizeof(*pk));
				bool *nr = np ? realloc(pk_removed, (npk + 1) * sizeof(*pk_removed)) : NULL;
				if (np)
					pk = np;
				if (nr)
					pk_removed = nr;
				if (!np || !nr) {
					udr__loc_free(&l);
					rc = udr__error_oom();
					break;
				}
				pk[npk] = l.pack;
				pk_removed[npk] = pack_removed(r, l.pack->hex);
				npk++;
			}
			if (p < npk && !pk_removed[p]) {
				if (nq == capq) {
					size_t nc = capq ? 2 * capq : 4096;
					gq *nqv = realloc(q, nc * sizeof(*q));
					if (!nqv) {
						udr__loc_free(&l);
						rc = udr__error_oom();
						break;
					}
					q = nqv;
					capq = nc;
				}
				q[nq].off = l.offset;
				q[nq].length = l.length;
				q[nq].i = (uint32_t)i;
				q[nq].pk = (uint16_t)p;
				q[nq].kind = (uint8_t)l.kind;
				nq++;
				slow = false;
			}
			udr__loc_free(&l);
		}
		if (rc < 0)
			break;
		if (!slow)
			continue; /* counted when its header is read below */
		if ((rc = guard_one(r, &h, &ok)) == 0 && !ok)
			rc = guard_lost(&h);
		if ((++done & 1023) == 0)
			progress(r, "verify", done, m->live);
	}
	if (rc == 0 && nq > 0) {
		qsort(q, nq, sizeof(*q), cmp_gq);
		if (!(buf = malloc(GUARD_WINDOW)))
			rc = udr__error_oom();
	}
	for (size_t a = 0; a < nq && rc == 0;) {
		/* entries a..b-1: one pack, one read */
		size_t b = a + 1;
		uint64_t from = q[a].off, to = q[a].off + UDR__PACK_ENTRY_HDR;
		int rrc;
		while (b < nq && q[b].pk == q[a].pk && q[b].off + UDR__PACK_ENTRY_HDR - from <= GUARD_WINDOW &&
		       q[b].off <= to + GUARD_GAP) {
			if (q[b].off + UDR__PACK_ENTRY_HDR > to)
				to = q[b].off + UDR__PACK_ENTRY_HDR;
			b++;
		}
		rrc = udr__pack_read_at(r->s, pk[q[a].pk], buf, (size_t)(to - from), from);
		if (rrc < 0)
			udr_error_clear(); /* each goes through guard_one, which says */
		for (size_t k = a; k < b && rc == 0; k++) {
			udr_hash h;
			udr__loc l;
			bool ok = false;
			udr__gc_copy_hash(&h, m, m->v[q[k].i].id);
			memset(&l, 0, sizeof(l));
			l.kind = (enum udr__kind)q[k].kind;
			l.pack = pk[q[k].pk];
			l.offset = q[k].off;
			l.length = q[k].length;
			if (rrc == 0 && udr__loc_header_matches(buf + (q[k].off - from), &l, &h))
				ok = true;
			else if ((rc = guard_one(r, &h, &ok)) == 0 && !ok)
				rc = guard_lost(&h);
			if ((++done & 1023) == 0)
				progress(r, "verify", done, m->live);
		}
		a = b;
	}
	if (rc == 0) /* the line ends at its total, as mark's and rewrite's do */
		progress(r, "verify", done, m->live);
	free(buf);
	free(q);
	free(pk);
	free(pk_removed);
	return rc;
}

/* ---- delete -------------------------------------------------------------------------------- */

static int unlink_loose(run *r, bool top)
{
	udr__gc_mark *m = &r->m;
	int rc = 0;
	for (size_t k = 0; k < r->ndead_loose && rc == 0; k++) {
		const udr__gc_loose *x = &m->loose[r->dead_loose[k]];
		char hex[UDR_HASH_HEXSIZE + 1], *p;
		if ((x->kind == UDR__K_MANIFEST || x->kind == UDR__K_DELTA) != top)
			continue;
		if (!(p = udr__obj_path(r->s, &x->hash, (enum udr__kind)x->kind, hex)))
			return udr__error_oom();
		rc = unlink_ok(p);
		free(p);
		r->removed_bytes += x->size;
	}
	return rc;
}

/*
 * STATE says deleting (the plan's packs are invisible to readers from
 * then on).  Dead loose manifests and deltas go first, then the packs
 * (every index, fsync, every pack, fsync), then the other loose objects:
 * a kill leaves no visible dead manifest without its pieces.
 */
static int delete_all(run *r)
{
	udr__gc_mark *m = &r->m;
	char packs[4200], path[4300];
	int rc = 0;
	snprintf(packs, sizeof(packs), "%s/packs", r->s->path);
	udr__phase_enter(UDR__PHASE_GC_RETIRE);
	rc = unlink_loose(r, true);
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		bool any = false;
		for (size_t i = 0; i < m->npacks && rc == 0; i++) {
			if (m->packs[i].action == A_KEEP)
				continue;
			snprintf(path, sizeof(path), "%s/%s.%s", packs, m->packs[i].p->hex, pass == 0 ? "idx" : "pack");
			rc = unlink_ok(path);
			any = true;
		}
		if (rc == 0 && any)
			rc = udr__fsync_dir(packs);
		progress(r, "delete", (uint64_t)pass + 1, 2);
	}
	if (rc == 0)
		rc = unlink_loose(r, false);
	if (rc == 0 && r->ndead_loose) {
		int fd = UDR_IO->open(r->s->path, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0 || UDR_IO->syncfs(fd) < 0)
			rc = udr__error_io(errno, "syncfs of %s failed", r->s->path);
		if (fd >= 0)
			UDR_IO->close(fd);
	}
	udr__phase_leave(UDR__PHASE_GC_RETIRE);
	if (rc == 0 && r->s->packs && (r->dropped || r->rewritten)) {
		/* the multi-pack index no longer names removed packs */
		if ((rc = udr__packset_scan(r->s)) == 0)
			rc = udr__midx_update_locked(r->s, false);
	}
	return rc;
}

/* ---- STATE -------------------------------------------------------------------------------- */

static int state_save(run *r, enum udr__gc_phase ph)
{
	int rc;
	r->st.phase = ph;
	r->st.pid = (int64_t)getpid();
	r->st.wall_ms = udr__now_ms();
	udr__phase_enter(UDR__PHASE_GC_STATE);
	rc = udr__gcstate_save(r->s->path, r->s->tmpdir, &r->st);
	udr__phase_leave(UDR__PHASE_GC_STATE);
	return rc;
}

/* ---- the report ---------------------------------------------------------------------------- */

static int report(char **out, run *r, int64_t started, bool dry)
{
	udr__gc_mark *m = &r->m;
	udr__buf b = {0};
	char when[40], phases[400];
	size_t pl = 0;
	int64_t prev = started;
	/* each phase's seconds: from the end of the last phase that ran */
	pl += (size_t)snprintf(phases + pl, sizeof(phases) - pl, "{");
	for (int k = 0; k < PH_N; k++) {
		double sec = r->ph[k] ? (double)(r->ph[k] - prev) / 1000.0 : 0.0;
		if (r->ph[k])
			prev = r->ph[k];
		pl += (size_t)snprintf(phases + pl, sizeof(phases) - pl, "%s\"%s\":%.3f", k ? "," : "", ph_name[k], sec);
	}
	snprintf(phases + pl, sizeof(phases) - pl, "}");
	uint64_t dead_copies = 0, after;
	int rc;
	for (size_t i = 0; i < m->n; i++)
		if (!(m->v[i].flags & UDR__GC_KEPT))
			dead_copies++;
	r->removed_pieces = r->removed_manifests = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].flags & UDR__GC_KEPT)
			continue;
		{
			uint64_t rec;
			size_t p = udr__gc_copy_pack(m, m->v[i].id, &rec);
			int kind;
			if (p == SIZE_MAX)
				kind = m->loose[m->v[i].id - m->base[m->npacks]].kind;
			else {
				udr__pack_entry e;
				if (m->packs[p].action == A_KEEP)
					continue;
				udr__idx_record(&e, &m->packs[p].p->idx, rec);
				kind = e.kind;
			}
			if (kind == UDR__K_MANIFEST)
				r->removed_manifests++;
			else
				r->removed_pieces++;
		}
	}
	if (dry) {
		/* what a run would remove: dropped packs and dead loose files whole,
		 * the dead bytes of rewritten packs */
		r->removed_bytes = r->loose_bytes;
		for (size_t i = 0; i < m->npacks; i++)
			if (m->packs[i].action == A_DROP)
				r->removed_bytes += m->packs[i].size;
			else if (m->packs[i].action == A_REWRITE)
				r->removed_bytes += m->packs[i].dead_bytes;
	}
	udr__format_time(when, sizeof(when), started);
	after = r->bytes_before + r->written_bytes >= r->removed_bytes
	                ? r->bytes_before + r->written_bytes - r->removed_bytes
	                : 0;
	rc = udr__buf_printf(
	        &b,
	        "{\"dry_run\":%s,\"epoch\":%" PRIu64 ",\"resumed\":%s,\"started\":\"%s\",\"seconds\":%.3f,"
	        "\"mark\":{\"objects\":%" PRIu64 ",\"live\":%" PRIu64 ",\"young\":%" PRIu64 ",\"fresh\":%" PRIu64
	        ",\"base_only\":%" PRIu64 ",\"versions\":%" PRIu64 ",\"expired_versions\":%" PRIu64
	        ",\"copies\":%zu,\"peak_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"seeded\":%" PRIu64 "},"
	        "\"removed\":{\"objects\":%" PRIu64 ",\"copies\":%" PRIu64 ",\"pieces\":%" PRIu64
	        ",\"manifests\":%" PRIu64 ",\"loose\":%zu,\"packs_dropped\":%" PRIu64 ",\"packs_rewritten\":%" PRIu64
	        ",\"bytes\":%" PRIu64 "},"
	        "\"written\":{\"packs\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"unchained\":%" PRIu64 "},"
	        "\"writers_stopped\":{\"seconds\":%.3f,\"unchained\":%" PRIu64 ",\"premark_passed_over\":%" PRIu64 "},"
	        "\"store\":{\"bytes_before\":%" PRIu64 ",\"bytes_after\":%" PRIu64 ",\"unused_after_pct\":%.2f},"
	        "\"temp\":{\"files\":%" PRIu64 "},\"gc_seq\":%" PRIu64 ",\"phases\":%s,\"warnings\":[]}",
	        dry ? "true" : "false", r->st.epoch, r->resumed ? "true" : "false", when, (double)(udr__now_ms() - started) / 1000.0, m->objects,
	        m->live, m->young, m->fresh, m->base_only, m->versions, m->expired_versions, m->n, m->peak_bytes,
	        r->mark_seconds, r->seeded, r->dead_objects, dead_copies, r->removed_pieces, r->removed_manifests,
	        r->ndead_loose, r->dropped, r->rewritten, r->removed_bytes, r->written_packs, r->written_bytes, r->unchained,
	        r->stopped_from_ms ? (double)((r->stopped_until_ms ? r->stopped_until_ms : udr__now_ms()) - r->stopped_from_ms) / 1000.0 : 0.0,
	        r->unchained_stopped, r->premark_passed_over,
	        r->bytes_before, after, after ? 100.0 * (double)r->unused_after / (double)after : 0.0, r->temp_files, r->gc_seq,
	        phases);
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*out = b.ptr;
	return 0;
}

/* ---- the run -------------------------------------------------------------------------------- */

static uint64_t packs_bytes(udr_store *s)
{
	udr_store_pack_stats ps;
	if (udr_store_pack_stats_get(&ps, s) != 0) {
		udr_error_clear();
		return 0;
	}
	return ps.pack_bytes; /* as bytes_before and the removed packs count: .pack files only */
}

/* The unchaining cost is estimated on at most this many candidates, evenly
 * spread (each is decoded through its chain and compressed), the others
 * from the sample's compression ratio: the estimate only weighs space
 * against time, never safety. */
#define UNCHAIN_SAMPLE 64

/* Full copies are made in batches of at most this many candidates and
 * this many raw bytes (a batch's decoded and compressed bytes are held
 * until appended; pieces may be up to 64 MiB); the sample's copies are
 * kept for the write up to the same bytes. */
#define UNCHAIN_BATCH 64
#define UNCHAIN_BATCH_BYTES ((uint64_t)64 << 20)

static uint64_t unchain_batch_bytes(void)
{
#ifdef UDR_FAULT_INJECTION
	/* tests: small batches, and sampled copies made again for the write */
	const char *e = getenv("UDR_GC_UNCHAIN_BYTES");
	if (e && *e)
		return strtoull(e, NULL, 10);
#endif
	return UNCHAIN_BATCH_BYTES;
}

/* Copy id's kind and bytes (a pack entry, or a loose file). */
static enum udr__kind copy_entry(const udr__gc_mark *m, uint32_t id, uint64_t *bytes)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	if (p != SIZE_MAX) {
		udr__pack_entry e;
		udr__idx_record(&e, &m->packs[p].p->idx, rec);
		*bytes = e.length;
		return (enum udr__kind)e.kind;
	}
	*bytes = m->loose[id - m->base[m->npacks]].size;
	return (enum udr__kind)m->loose[id - m->base[m->npacks]].kind;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static size_t uf_find(size_t *par, size_t x)
{
	while (par[x] != x) {
		par[x] = par[par[x]];
		x = par[x];
	}
	return x;
}

static void uf_union(size_t *par, size_t a, size_t b)
{
	size_t ra = uf_find(par, a), rb = uf_find(par, b);
	if (ra != rb)
		par[ra] = rb;
}

/*
 * Decide which candidates to unchain, group by group (GC.md 3.3): a group
 * is a set of dying objects (base_only: kept only as bases) joined by the
 * delta edges between them, with the candidates naming them.  Unchaining a
 * group's candidates lets all of its objects die; it pays when their bytes
 * (the saving) exceed 1.25x what the candidates' full copies add over
 * their deltas (the cost: exact for sampled candidates, else raw size x
 * ratio - stored).  A chain whose dead part is a few small deltas over a
 * restart keeps it; one that reaches back through many levels unchains.
 * When the bases of some dying delta are not known from the mark (not
 * read), everything is one group (the store-wide rule).  *nchosen the
 * candidates chosen.
 */
static int unchain_groups(run *r, uc_cand *c, size_t n, double ratio, bool force, uint64_t *nchosen)
{
	const udr__gc_mark *m = &r->m;
	size_t *obj = NULL, *par = NULL, nobj = 0, cap = n + 64;
	uint64_t *saving = NULL;
	int64_t *cost = NULL;
	bool whole = m->dref == NULL;
	int rc = 0;
	*nchosen = 0;
	if (!(obj = malloc(cap * sizeof(*obj))))
		return udr__error_oom();
	for (size_t k = 0; k < n; k++)
		obj[nobj++] = c[k].run;
	for (size_t i = 0; i < m->n; i++) {
		if (!(m->v[i].flags & UDR__GC_FIRST) || !(m->v[i].flags & UDR__GC_BASE) || (m->v[i].flags & UDR__GC_LIVE))
			continue;
		if (nobj == cap) {
			size_t *q = realloc(obj, 2 * cap * sizeof(*obj));
			if (!q) {
				free(obj);
				return udr__error_oom();
			}
			obj = q;
			cap *= 2;
		}
		obj[nobj++] = i;
	}
	qsort(obj, nobj, sizeof(*obj), cmp_size);
	if (!(par = malloc(nobj * sizeof(*par))) || !(saving = calloc(nobj, sizeof(*saving))) ||
	    !(cost = calloc(nobj, sizeof(*cost)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t x = 0; x < nobj; x++)
		par[x] = x;
	for (size_t x = 0; x < nobj; x++) {
		size_t i = obj[x], j = i;
		bool dying = !(m->v[i].flags & UDR__GC_LIVE);
		do {
			const udr__gc_copy *cp = &m->v[j];
			uint64_t bytes;
			enum udr__kind kind = copy_entry(m, cp->id, &bytes);
			if (dying && (cp->flags & UDR__GC_KEPT))
				saving[x] += bytes;
			if (!(cp->flags & UDR__GC_SHUNNED) && !(cp->flags & UDR__GC_DAMAGED) && kind == UDR__K_DELTA) {
				if (!m->dref || !m->dref[cp->id]) {
					whole = true; /* its bases are unknown here */
				} else {
					const uint32_t *d = m->dpool + m->dref[cp->id] - 1;
					for (uint32_t k = 0; k < d[0]; k++) {
						size_t b = d[1 + k], *y;
						if (m->v[b].flags & UDR__GC_LIVE)
							continue;
						if (!(y = bsearch(&b, obj, nobj, sizeof(*obj), cmp_size))) {
							whole = true;
							continue;
						}
						uf_union(par, x, (size_t)(y - obj));
					}
				}
			}
			j++;
		} while (j < m->n && !(m->v[j].flags & UDR__GC_FIRST));
	}
	if (whole)
		for (size_t x = 1; x < nobj; x++)
			uf_union(par, x, 0);
	for (size_t x = 0; x < nobj; x++) {
		size_t root = uf_find(par, x);
		if (root != x) {
			saving[root] += saving[x];
			saving[x] = 0;
		}
	}
	for (size_t k = 0; k < n; k++) {
		const size_t *y = bsearch(&c[k].run, obj, nobj, sizeof(*obj), cmp_size); /* there: added above */
		c[k].group = uf_find(par, (size_t)(y - obj));
		if (!c[k].sampled)
			c[k].cost = (int64_t)((double)c[k].raw * ratio) - (int64_t)c[k].stored;
		cost[c[k].group] += c[k].cost;
	}
	for (size_t k = 0; k < n; k++) {
		size_t g = c[k].group;
		c[k].chosen = c[k].rc == 0 && (force || (saving[g] > 0 && (double)saving[g] > 1.25 * (double)(cost[g] > 0 ? cost[g] : 0)));
		*nchosen += c[k].chosen;
	}
out:
	free(obj);
	free(par);
	free(saving);
	free(cost);
	return rc;
}

/*
 * Unchaining (GC.md 3.3): live objects whose kept copy is a delta with a
 * base that no live object needs (kept only as a base: a piece of expired
 * versions) can be written in full (decoded and verified, zstd when
 * smaller); the mark then runs again (with remark), and it shuns the
 * deltas of objects with an intact full copy (mark.c shun_deltas), so the
 * bases only they needed die.  Decided per group of dying objects
 * (unchain_groups) on a cost estimated from at most UNCHAIN_SAMPLE
 * candidates; a dry run only counts what it would unchain
 * (r->unchained).  Only adds copies: a kill at any point leaves duplicates
 * that the next run's mark resolves the same way.  Pack stores only.  A
 * candidate that does not decode is left chained (the guard and fsck speak
 * of damage; unchaining is not a repair).  The store before the run is
 * without the packs it wrote (r->unchain_bytes).
 */
static int unchain_step(run *r, bool dry, bool remark)
{
	udr_store *s = r->s;
	const udr__gc_collect_opts *o = r->o;
	uc_cand *c = NULL, *batch[UNCHAIN_BATCH];
	udr__packw *w = NULL;
	size_t n = 0, nb = 0, step;
	uint64_t chosen = 0, pb0, after, out_bytes = 0, raw_bytes = 0, held = 0;
	const uint64_t maxbytes = unchain_batch_bytes();
	bool force = false;
	int rc;
	if (!s->packs)
		return 0;
	if ((rc = unchain_candidates(r, &c, &n)) < 0 || n == 0)
		goto out;
	/* the sample: its full copies are made once, kept for the write
	 * within UNCHAIN_BATCH_BYTES */
	step = n > UNCHAIN_SAMPLE ? n / UNCHAIN_SAMPLE : 1;
	for (size_t k = 0, done = 0; k < n && done < UNCHAIN_SAMPLE && rc == 0;) {
		uint64_t bytes = 0;
		nb = 0;
		for (; k < n && done < UNCHAIN_SAMPLE && nb < UNCHAIN_BATCH && (nb == 0 || bytes + c[k].raw <= maxbytes);
		     k += step, done++) {
			batch[nb++] = &c[k];
			bytes += c[k].raw;
		}
		if ((rc = fc_make(r, batch, nb)) < 0)
			goto out;
		for (size_t b = 0; b < nb; b++) {
			uc_cand *x = batch[b];
			if (x->rc != 0)
				continue;
			x->sampled = true;
			x->cost = (int64_t)(x->z ? x->zlen : x->flen) - (int64_t)x->stored;
			out_bytes += x->z ? x->zlen : x->flen;
			raw_bytes += x->flen;
			if (held + (x->z ? x->zlen : x->flen) <= maxbytes) {
				x->made = true;
				held += x->z ? x->zlen : x->flen;
			} else {
				cand_drop(x); /* made again for the write */
			}
		}
	}
	if (raw_bytes == 0)
		goto out; /* nothing sampled decodes: leave the chains */
#ifdef UDR_FAULT_INJECTION
	/* tests: UDR_GC_UNCHAIN=always unchains whatever it costs */
	force = getenv("UDR_GC_UNCHAIN") && strcmp(getenv("UDR_GC_UNCHAIN"), "always") == 0;
#endif
	if ((rc = unchain_groups(r, c, n, (double)out_bytes / (double)raw_bytes, force, &chosen)) < 0)
		goto out;
	r->unchained = chosen;
	if (dry || chosen == 0)
		goto out;
	pb0 = packs_bytes(s);
	r->unchained = 0;
	for (size_t k = 0; k < n && rc == 0;) {
		uint64_t bytes = 0;
		nb = 0;
		for (; k < n && nb < UNCHAIN_BATCH && rc == 0; k++) {
			if (!c[k].chosen)
				continue;
			if (c[k].made) { /* the sample's */
				if ((rc = cand_append(r, &w, &c[k])) == 0)
					r->unchained++;
				cand_drop(&c[k]);
				continue;
			}
			if (nb > 0 && bytes + c[k].raw > maxbytes)
				break;
			batch[nb++] = &c[k];
			bytes += c[k].raw;
		}
		if (rc == 0)
			rc = fc_make(r, batch, nb);
		for (size_t b = 0; b < nb; b++) {
			if (rc == 0 && batch[b]->rc == 0 && (rc = cand_append(r, &w, batch[b])) == 0)
				r->unchained++;
			cand_drop(batch[b]);
		}
	}
	if (w) {
		if (rc == 0)
			rc = udr__packw_flush(w);
		r->written_packs += udr__packw_published(w);
		udr__packw_free(w);
	}
	after = packs_bytes(s);
	r->unchain_bytes = after > pb0 ? after - pb0 : 0;
	if (rc == 0 && r->unchained > 0 && remark) {
		int64_t t0;
		udr__gc_mark_free(&r->m);
		if ((rc = udr__packset_scan(s)) < 0)
			goto out;
		t0 = udr__now_ms();
		rc = udr__gc_mark_run(&r->m, s, r->c, o->now_ms ? o->now_ms : udr__now_ms(), o->grace_ms, o->expired,
		                      o->expired_payload);
		r->mark_seconds += (double)(udr__now_ms() - t0) / 1000.0;
	}
out:
	for (size_t k = 0; k < n; k++)
		cand_drop(&c[k]);
	free(c);
	return rc;
}

#ifdef UDR_FAULT_INJECTION
/* A full mark of the same store and clock as seeded mark ms: UDR_ECORRUPT
 * naming the first copy whose flags differ (tests: UDR_GC_SEED_CHECK). */
static int seed_check(const udr__gc_mark *ms, udr_store *s, udr_catalog *c, int64_t now, const udr__gc_collect_opts *o)
{
	udr__gc_mark mp;
	int rc = udr__gc_mark_run(&mp, s, c, now, o->grace_ms, o->expired, o->expired_payload);
	if (rc < 0)
		return rc;
	if (mp.n != ms->n || mp.npacks != ms->npacks || mp.live != ms->live || mp.base_only != ms->base_only)
		rc = udr__error_set(UDR_ECORRUPT, "gc: seeded mark differs from a full mark (%zu/%zu copies, %llu/%llu live)",
		                    ms->n, mp.n, (unsigned long long)ms->live, (unsigned long long)mp.live);
	for (size_t i = 0; rc == 0 && i < mp.n; i++) {
		if (mp.v[i].id != ms->v[i].id || mp.v[i].flags != ms->v[i].flags) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash h;
			udr__gc_copy_hash(&h, &mp, mp.v[i].id);
			udr_hash_tohex(hex, &h);
			rc = udr__error_set(UDR_ECORRUPT, "gc: seeded mark differs from a full mark at copy %zu of %s: "
			                    "flags %u, full %u", i, hex, ms->v[i].flags, mp.v[i].flags);
		}
	}
	for (size_t p = 0; rc == 0 && p < mp.npacks; p++)
		if (mp.packs[p].live_bytes != ms->packs[p].live_bytes || mp.packs[p].dead_bytes != ms->packs[p].dead_bytes)
			rc = udr__error_set(UDR_ECORRUPT, "gc: seeded mark differs from a full mark in pack %s's bytes",
			                    mp.packs[p].p->hex);
	udr__gc_mark_free(&mp);
	return rc;
}
#endif

int udr__gc_collect(char **report_json, udr_store *s, udr_catalog *c, const udr__gc_collect_opts *o)
{
	udr__gc_collect_opts def = UDR__GC_COLLECT_OPTS_INIT;
	run r;
	udr__gc_mark seed; /* the unlocked mark, for the locked one's delta headers */
	int64_t started = udr__now_ms(), t0;
	int rc;
	bool pre = false; /* unchaining was decided (and done) before the lock */
	uint64_t packs_before = 0;
	*report_json = NULL;
	if (!o)
		o = &def;
	if (!s || !c)
		return udr__error_set(UDR_EINVAL, "gc: no store or catalog");
	if (o->grace_ms < 0 || o->threshold_pct > 100 || o->max_unused_pct > 100)
		return udr__error_set(UDR_EINVAL, "gc: grace must be >= 0, threshold and max-unused 0..100");
	memset(&r, 0, sizeof(r));
	memset(&seed, 0, sizeof(seed));
	r.s = s;
	r.c = c;
	r.o = o;
	r.lockfd = r.packsfd = r.doomfd = r.act[0] = r.act[1] = -1;
	udr__gcstate_init(&r.st);
	if ((rc = take_gc_lock(&r)) < 0)
		goto done;
	if ((rc = udr__gcstate_load(&r.st, s->path)) < 0)
		goto done;
	if (r.st.phase == UDR__GC_ABORTED) {
		rc = udr__error_set(UDR_ECORRUPT, "gc: the run of epoch %" PRIu64 " was aborted by its guard (%s); run "
		                    "udr fsck: once it finds no problem in %s it lets gc run again", r.st.epoch, r.st.last ? r.st.last : "no reason recorded", s->path);
		goto done;
	}
	/* the unlocked mark below is most of a run's marking: its line from
	 * the start, not once it is over */
	progress(&r, "mark", 0, 0);
	/* unchaining only adds copies: decided on a mark made without
	 * stopping writers, and written before the world stops (a failure
	 * here, e.g. a pack a writer's repack removed under the mark, leaves
	 * the decision to the locked mark, as before) */
	if (!o->dry_run && s->packs && r.st.phase == UDR__GC_IDLE) {
		/* packs/lock, not the writers' locks: writers go on putting and
		 * committing, but no repack removes a pack under this mark (a
		 * writer's geometric repack skips while it is held).  Without it
		 * a busy writer's repack failed the mark ("pack ... is gone"),
		 * and the unchaining moved under the writers' lock: commits
		 * waited ~300 ms on bench_gc.sh's store.  Released before the
		 * writers' locks are taken (the order is active, then packs). */
		int pfd = -1;
		if ((rc = udr__packs_lock(&pfd, s, true)) < 0)
			goto done;
		t0 = udr__now_ms();
		rc = udr__gc_premark_run(&r.m, s, c, o->now_ms ? o->now_ms : udr__now_ms(), o->grace_ms, o->expired,
		                         o->expired_payload);
		r.mark_seconds += (double)(udr__now_ms() - t0) / 1000.0;
		r.ph[PH_PREMARK] = udr__now_ms();
		udr__test_pause("gc-premark"); /* tests: writers put between the unlocked mark and its unchaining */
		r.premark_passed_over = r.m.passed_over;
		if (rc == 0)
			rc = unchain_step(&r, false, false);
		r.ph[PH_UNCHAIN] = udr__now_ms();
		pre = rc == 0;
		if (pre && !o->no_seed && r.m.dref) {
			/* its resolved delta headers serve the locked mark (a
			 * delta copy in a pack both list has the same bytes) */
			seed = r.m;
			udr__gc_mark_seed_trim(&seed);
		} else {
			udr__gc_mark_free(&r.m);
		}
		memset(&r.m, 0, sizeof(r.m));
		if (rc < 0) {
			udr_error_clear();
			r.unchained = r.unchain_bytes = 0;
		}
		rc = udr__packset_scan(s);
		UDR_IO->close(pfd);
		if (rc < 0)
			goto done;
		udr__test_pause("gc-seeded"); /* tests: writers commit and repack between the two marks */
		/* the expiry seen by that mark may be older than the locked one's
		 * head (an unexpire between them): asked again from scratch */
		if (o->expired) {
			int ignored;
			if ((rc = o->expired(&ignored, NULL, 0, o->expired_payload)) < 0)
				goto done;
		}
	}
	/* a run killed earlier left at most dead copies and durable outputs:
	 * marking again from scratch finds what it left (GC.md 5.2, "Built") */
	if ((rc = udr__gc_exclusive_begin(r.act, r.s, true)) < 0)
		goto done;
	r.stopped_from_ms = r.ph[PH_WAIT] = udr__now_ms();
	if (s->packs && (rc = udr__packs_lock(&r.packsfd, s, true)) < 0)
		goto done;
	if (!o->dry_run && ((rc = finish_deleting(&r)) < 0 || (rc = abandon_leftovers(&r)) < 0))
		goto done;
	udr__test_pause("gc-locked"); /* tests: a run holding every lock */
	progress(&r, "mark", 0, 0);
	if ((rc = udr_catalog_head(&r.st.mark, c)) < 0)
		goto done;
	t0 = udr__now_ms();
	{
		int64_t now = o->now_ms ? o->now_ms : udr__now_ms();
		rc = udr__gc_mark_run_seeded(&r.m, pre && seed.dref ? &seed : NULL, s, c, now, o->grace_ms, o->expired,
		                             o->expired_payload);
		r.mark_seconds += (double)(udr__now_ms() - t0) / 1000.0;
		r.seeded = r.m.seeded;
#ifdef UDR_FAULT_INJECTION
		/* tests: UDR_GC_SEED_CHECK=1 marks again without the seed, under
		 * the same locks and clock, and fails the run (nothing removed)
		 * unless both marks agree copy by copy */
		if (rc == 0 && pre && seed.dref && getenv("UDR_GC_SEED_CHECK") && strcmp(getenv("UDR_GC_SEED_CHECK"), "1") == 0)
			rc = seed_check(&r.m, s, c, now, o);
#endif
	}
	udr__gc_mark_free(&seed);
	memset(&seed, 0, sizeof(seed));
	if (rc < 0)
		goto done;
	if (!pre && (rc = unchain_step(&r, o->dry_run, true)) < 0)
		goto done;
	if (!pre && !o->dry_run)
		r.unchained_stopped = r.unchained;
	r.ph[PH_MARK] = udr__now_ms();
	progress(&r, "mark", r.m.objects, r.m.objects);
	if ((rc = plan(&r)) < 0)
		goto done;
	/* the store before this run: without the packs unchaining wrote */
	r.bytes_before -= r.unchain_bytes <= r.bytes_before ? r.unchain_bytes : r.bytes_before;
	if (o->dry_run || (r.dead_objects == 0 && r.ndead_loose == 0 && r.dropped == 0 && r.rewritten == 0)) {
		bool dry = o->dry_run;
		rc = report(report_json, &r, started, dry);
		goto done;
	}
	packs_before = packs_bytes(s);
	r.st.epoch++;
	r.st.drained = r.st.epoch;
	r.st.started_ms = started;
	r.st.dead[0] = r.st.doomed[0] = 0;
	if ((rc = write_plan(&r, r.st.epoch)) < 0 || (rc = write_doomed(&r, r.st.epoch)) < 0 ||
	    (rc = state_save(&r, UDR__GC_PLANNED)) < 0)
		goto done;
	/* S6 early: the fresh records older than the grace go while no writer
	 * can append; then writers go on, avoiding the doomed set (GC.md 4.7) */
	if ((rc = fresh_trim(&r, o->now_ms ? o->now_ms : udr__now_ms())) < 0)
		goto done;
	udr__gc_exclusive_end(r.act);
	r.stopped_until_ms = r.ph[PH_PLAN] = udr__now_ms();
	udr__test_pause("gc-doomed"); /* tests: writers run while the run goes on */
	if ((rc = rewrite(&r)) < 0)
		goto done;
	r.ph[PH_REWRITE] = udr__now_ms();
	if ((rc = state_save(&r, UDR__GC_REWRITTEN)) < 0)
		goto done;
	progress(&r, "verify", 0, r.m.live);
	udr__test_pause("gc-guard"); /* tests: a copy lost before the guard */
	if ((rc = guard(&r)) < 0) {
		/* STATE aborted (best effort: the error already says why); the
		 * guard's message is kept, not the save's */
		free(r.st.last);
		r.st.last = strdup("{\"aborted\":\"the guard found a live chunk without a copy\"}");
		{
			char msg[1024];
			snprintf(msg, sizeof(msg), "%s", udr_error_last()->message ? udr_error_last()->message : "");
			if (state_save(&r, UDR__GC_ABORTED) < 0)
				udr__error_set(rc, "%s (and STATE could not be marked aborted)", msg);
			else
				udr__error_set(rc, "%s", msg);
		}
		goto done;
	}
	r.ph[PH_GUARD] = udr__now_ms();
	if (o->record && (rc = o->record(&r.gc_seq, c, r.st.epoch, r.st.mark, o->record_through, o->record_payload)) < 0)
		goto done;
	if (r.gc_seq > r.st.gc_seq) /* the newest gc record any run linked: fsck --reset-head's floor */
		r.st.gc_seq = r.gc_seq;
	if ((rc = state_save(&r, UDR__GC_DELETING)) < 0)
		goto done;
	if ((rc = delete_all(&r)) < 0)
		goto done;
	r.ph[PH_DELETE] = udr__now_ms();
	{
		/* written bytes: what the packs grew by net of what left them */
		uint64_t after = packs_bytes(s), removed_pack_bytes = 0;
		for (size_t i = 0; i < r.m.npacks; i++)
			if (r.m.packs[i].action != A_KEEP)
				removed_pack_bytes += r.m.packs[i].size;
		r.written_bytes = after + removed_pack_bytes >= packs_before ? after + removed_pack_bytes - packs_before : 0;
		r.written_bytes += r.unchain_bytes;
		r.removed_bytes = r.loose_bytes + removed_pack_bytes;
	}
	/* S7: temp files of dead writers in both tmp/ directories (their
	 * owners' pids are gone and nobody holds their lock) */
	if (udr__tmp_clean(s->tmpdir, &r.temp_files) < 0 || udr__tmp_clean(c->tmpdir, &r.temp_files) < 0)
		udr_error_clear();
	{
		char path[4200], plan[UDR__GC_NAME_MAX + 1], doomed[UDR__GC_NAME_MAX + 1];
		snprintf(plan, sizeof(plan), "%s", r.st.plan);
		snprintf(doomed, sizeof(doomed), "%s", r.st.doomed);
		r.st.plan[0] = r.st.doomed[0] = 0;
		if ((rc = report(report_json, &r, started, false)) < 0)
			goto done;
		free(r.st.last);
		r.st.last = strdup(*report_json);
		if ((rc = state_save(&r, UDR__GC_IDLE)) < 0)
			goto done;
		/* the plan after STATE idle: while STATE says deleting, readers
		 * need it to hide the packs being removed */
		if (gc_path(path, sizeof(path), s, plan) == 0)
			(void)unlink_ok(path);
		if (doomed[0] && gc_path(path, sizeof(path), s, doomed) == 0)
			(void)unlink_ok(path);
		udr_error_clear();
	}
done:
	if (rc < 0) {
		free(*report_json);
		*report_json = NULL;
	}
	udr__gc_mark_free(&seed);
	udr__gc_mark_free(&r.m);
	free(r.dead_loose);
	udr__bcache_free(r.cache);
	release_all(&r);
	udr__gcstate_release(&r.st);
	return rc < 0 ? rc : 0;
}

/* ---- fsck --repair (GC.md 6) ------------------------------------------------------------- */

/* The highest epoch in the names of run files (plan-E.json, doomed-E-R,
 * dead-E, journal-E): 0 when there are none. */
static uint64_t run_files_epoch(run *r)
{
	char dir[4200];
	DIR *d;
	struct dirent *e;
	uint64_t top = 0;
	snprintf(dir, sizeof(dir), "%s/" UDR__GC_DIR, r->s->path);
	if (!(d = opendir(dir)))
		return 0;
	while ((e = readdir(d)) != NULL) {
		const char *dash = strchr(e->d_name, '-');
		char *end = NULL;
		unsigned long long v;
		if (!dash || (strncmp(e->d_name, "plan-", 5) != 0 && strncmp(e->d_name, "doomed-", 7) != 0 &&
		              strncmp(e->d_name, "dead-", 5) != 0 && strncmp(e->d_name, "journal-", 8) != 0))
			continue;
		v = strtoull(dash + 1, &end, 10);
		if (end != dash + 1 && v > top)
			top = v;
	}
	closedir(d);
	return top;
}

/*
 * fsck --repair of a damaged STATE (GC.md 6), under gc/lock, both active
 * files and packs/lock: no run is alive.  A run it named is abandoned,
 * never finished, which deletes nothing: its outputs were published before
 * STATE named them, and its plan's packs stay for the next gc to judge.
 * Three rules for finishing such a run failed review, each deleting a copy
 * that a committed version needed: "a plan pack without its index" (an
 * index may just be lost), "its gc record is in the log" (killed between
 * its record and STATE deleting, the run counts as dead and writers reuse
 * its copies), "its gc record is the log's head" (a writer's record linked
 * past HEAD, still in its syncfs, is not seen).  Abandoning a run killed
 * while deleting leaves what it had not removed yet, which may include
 * dead deltas and manifests whose bases and pieces it removed: fsck names
 * them until the next gc drops them, and a commit that deduplicated onto
 * one fails its chunk check.  The new STATE is idle, at the highest epoch
 * its run files name, with the newest gc record of the log as fsck
 * --reset-head's floor (read back from the head to it: a record lost with
 * STATE lowers the floor).
 */
static int rebuild_state(run *r, udr__gc_repair_out *out)
{
	uint64_t head = 0;
	int rc;
	r->st.epoch = r->st.drained = run_files_epoch(r);
	if (udr__catalog_true_head(&head, r->c) < 0)
		udr_error_clear(); /* a damaged log: fsck reports it; no floor found */
	for (uint64_t seq = head; seq > 0 && r->st.gc_seq == 0; seq--) {
		udr__record rec;
		rc = udr__record_read(&rec, r->c, seq);
		if (rc == 0 && rec.has_gc)
			r->st.gc_seq = seq;
		udr__record_free(&rec);
		if (rc < 0 && rc != UDR_ECORRUPT && rc != UDR_ENOTFOUND)
			return rc;
		udr_error_clear(); /* a damaged record is fsck's to report */
	}
	free(r->st.last);
	r->st.last = strdup("{\"rebuilt\":\"chunks/gc/STATE was damaged; fsck --repair wrote it anew\"}");
	if ((rc = state_save(r, UDR__GC_IDLE)) < 0)
		return rc;
	out->phase = r->st.phase;
	out->epoch = r->st.epoch;
	out->gc_seq = r->st.gc_seq;
	return 0;
}

int udr__gc_repair(udr__gc_repair_out *out, udr_store *s, udr_catalog *c)
{
	udr__gc_collect_opts def = UDR__GC_COLLECT_OPTS_INIT;
	run r;
	int rc;
	memset(out, 0, sizeof(*out));
	if (!s || !c)
		return udr__error_set(UDR_EINVAL, "fsck --repair: no store or catalog");
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.c = c;
	r.o = &def;
	r.lockfd = r.packsfd = r.doomfd = r.act[0] = r.act[1] = -1;
	udr__gcstate_init(&r.st);
	if ((rc = take_gc_lock(&r)) < 0) {
		if (rc == UDR_ELOCKED)
			rc = udr__error_set(UDR_ELOCKED, "fsck --repair does not run while gc does: %s",
			                    udr_error_last()->message);
		goto done;
	}
	if ((rc = udr__gcstate_load(&r.st, s->path)) == UDR_ECORRUPT) {
		/* damaged, and no run is alive (gc/lock is ours): nothing a run
		 * needs is in it any more, so it is written anew below (GC.md 6) */
		udr_error_clear();
		udr__gcstate_init(&r.st);
		out->rebuilt = true;
		rc = 0;
	}
	if (rc < 0)
		goto done;
	out->phase = r.st.phase;
	out->epoch = r.st.epoch;
	/* the locks a gc run takes, in its order: no writer appends to a fresh
	 * file or changes the pack set meanwhile */
	if ((rc = udr__gc_exclusive_begin(r.act, r.s, true)) < 0)
		goto done;
	if (s->packs && (rc = udr__packs_lock(&r.packsfd, s, true)) < 0)
		goto done;
	if (out->rebuilt && (rc = rebuild_state(&r, out)) < 0)
		goto done;
	if (r.st.phase == UDR__GC_DELETING && r.st.plan[0] && udr__gc_plan_check(s, r.st.plan, r.st.epoch, r.st.mark) == UDR_ECORRUPT) {
		/* its plan damaged: which packs it removes is not known for
		 * sure, so none more goes.  STATE idle: the plan's packs are
		 * visible again (dead copies and duplicates the guard checked;
		 * udr__store_repair_packs indexes those whose index went), as
		 * when a damaged STATE is written anew */
		udr_error_clear();
		out->plan_damaged = true;
		r.st.plan[0] = r.st.doomed[0] = 0;
		if ((rc = state_save(&r, UDR__GC_IDLE)) < 0)
			goto done;
	}
	if ((rc = finish_deleting(&r)) < 0)
		goto done;
	out->finished = out->phase == UDR__GC_DELETING && r.resumed;
	r.resumed = false;
	if ((rc = abandon_leftovers(&r)) < 0)
		goto done;
	out->abandoned = r.resumed;
	out->run_files = r.leftovers;
	for (unsigned par = 0; par < 2 && rc == 0; par++) {
		uint64_t cut = 0;
		rc = udr__gc_fresh_repair(s->path, par, &cut);
		out->fresh_cut[par] = cut;
	}
done:
	release_all(&r);
	udr__gcstate_release(&r.st);
	return rc;
}
