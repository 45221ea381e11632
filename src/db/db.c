/*
 * db.c - one handle over a store root: <root>/chunks and <root>/catalog,
 * with the catalog checking chunks against the store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "gc/collect.h"
#include "store/gcfence.h"
#include "store/gcstate.h"
#include "catalog/catalog_internal.h"
#include "catalog/lease.h"
#include "udr/gc.h"

#define ROOT_FORMAT 1

struct udr_db {
	char *path;
	udr_store *store;
	udr_catalog *catalog;
};

void udr_db_close(udr_db *db)
{
	if (!db)
		return;
	udr_catalog_close(db->catalog);
	udr_store_close(db->store);
	free(db->path);
	free(db);
}

int udr_db_open(udr_db **out, const char *path, unsigned int flags)
{
	udr_db *db;
	char *sub = NULL;
	struct stat st;
	bool root_exists;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty store path");
	*out = NULL;
	if (!(db = calloc(1, sizeof(*db))) || !(db->path = strdup(path))) {
		free(db);
		return udr__error_oom();
	}
	if (UDR_IO->stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!(flags & UDR_OPEN_CREATE)) {
			rc = udr__error_set(UDR_ENOTFOUND, "not a udr store: %s does not exist (run udr init)", path);
			goto fail;
		}
		if ((rc = udr__mkdirs(path)) < 0)
			goto fail;
	}
	rc = udr__check_config(path, "udr-store", ROOT_FORMAT);
	if (rc == UDR_ENOTFOUND && !(flags & UDR_OPEN_CREATE)) {
		rc = udr__error_set(UDR_ENOTFOUND, "not a udr store: %s (run udr init)", path);
		goto fail;
	}
	if (rc < 0 && rc != UDR_ENOTFOUND)
		goto fail;
	root_exists = rc > 0;
	if (!(sub = udr__path_join(path, "chunks"))) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if ((rc = udr_store_open(&db->store, sub, flags)) < 0)
		goto part_missing;
	free(sub);
	if (!(sub = udr__path_join(path, "catalog"))) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if ((rc = udr_catalog_open(&db->catalog, sub, db->store, flags)) < 0)
		goto part_missing;
	free(sub);
	sub = NULL;
	rc = udr__check_config(path, "udr-store", ROOT_FORMAT);
	if (rc < 0 && rc != UDR_ENOTFOUND)
		goto fail;
	if (rc == UDR_ENOTFOUND) {
		/* written last: a root with a config has both of its parts */
		char *cfgpath = udr__path_join(path, "config.json");
		if (!cfgpath) {
			rc = UDR_ENOMEM;
			goto fail;
		}
		udr_error_clear();
		rc = udr__config_write(udr__store_tmpdir(db->store), cfgpath,
		                       "{\"format\":1,\"kind\":\"udr-store\",\"sealed\":true}", UDR__PUBLISH_NEW);
		free(cfgpath);
		if (rc < 0)
			goto fail;
	}
	*out = db;
	return 0;
part_missing:
	/* the root's config is written last, after both parts: a part that
	 * is not there under a root that is is damage, not a missing store */
	if (rc == UDR_ENOTFOUND && root_exists)
		rc = udr__error_set(UDR_ECORRUPT, "damaged udr store %s: %s", path, udr_error_last()->message);
fail:
	free(sub);
	udr_db_close(db);
	return rc;
}

udr_store *udr_db_store(udr_db *db)
{
	return db ? db->store : NULL;
}

udr_catalog *udr_db_catalog(udr_db *db)
{
	return db ? db->catalog : NULL;
}

const char *udr_db_path(const udr_db *db)
{
	return db ? db->path : NULL;
}

/* ---- garbage collection (src/gc) ------------------------------------------ */

/* The collection's view of expiry: removable are versions expired by an
 * expire record <= through (GC.md 1.4), read at the head of the moment:
 * one unexpired before the mark is kept, and the gc record, linked after
 * the guard and before anything is deleted (4.3 G5, the collection's
 * record hook), is refused when an unexpire linked after the mark took
 * back one of them (review R3), so nothing restored loses its data.  A
 * dry run adds the versions the rule's plan would expire (`plan`: the
 * plan's "expired"."ranges"), so its numbers are the real run's. */
struct gc_expiry {
	udr_catalog *c;
	uint64_t through;
	json_t *plan;
	/* the expired sets, read once at the true head of the first question
	 * (>= the mark's head): an unexpire after the mark makes the gc
	 * record refused, so a fixed head is as safe as the head of the
	 * moment; one table's set at a time (mark asks table by table) */
	bool have_head;
	udr__record head;
	char table[UDR_TABLE_NAME_MAX + 1];
	bool have_set;
	udr__xset set;
};

static void gc_expiry_release(struct gc_expiry *x)
{
	if (x->have_set)
		udr__xset_free(&x->set);
	if (x->have_head)
		udr__record_free(&x->head);
	x->have_set = x->have_head = false;
	json_decref(x->plan);
	x->plan = NULL;
}

static int gc_expired(int *out, const char *table, uint64_t version, void *payload)
{
	struct gc_expiry *x = payload;
	const udr__xrange *r;
	json_t *rs, *jr;
	size_t i;
	int rc;
	*out = 0;
	if (!table) {
		/* the collection marks again, under its lock: the head and the
		 * sets are read anew at its first question (>= that mark's head) */
		if (x->have_set)
			udr__xset_free(&x->set);
		if (x->have_head)
			udr__record_free(&x->head);
		x->have_set = x->have_head = false;
		return 0;
	}
	if (x->plan && (rs = json_object_get(x->plan, table)))
		json_array_foreach(rs, i, jr) {
			json_int_t a = json_integer_value(json_array_get(jr, 0)), b = json_integer_value(json_array_get(jr, 1));
			if (a > 0 && (uint64_t)a <= version && version <= (uint64_t)b) {
				*out = 1;
				return 0;
			}
		}
	if (x->through == 0)
		return 0;
	if (!x->have_head) {
		uint64_t head;
		if ((rc = udr__catalog_true_head(&head, x->c)) < 0)
			return rc;
		if ((rc = udr__record_read(&x->head, x->c, head)) < 0)
			return rc;
		x->have_head = true;
	}
	if (!x->have_set || strcmp(x->table, table) != 0) {
		uint64_t from;
		if (x->have_set)
			udr__xset_free(&x->set);
		x->have_set = false;
		if (strlen(table) >= sizeof(x->table))
			return udr__error_set(UDR_EINVAL, "gc: table name too long: %s", table);
		if ((rc = udr__xset_at(&x->set, &from, x->c, &x->head, table)) < 0)
			return rc;
		snprintf(x->table, sizeof(x->table), "%s", table);
		x->have_set = true;
	}
	r = udr__xset_find(&x->set, version);
	*out = r && r->seq <= x->through;
	return 0;
}

/* The collection's record hook: link the gc record that lets the sweep
 * remove what expire records <= through expired.  Called only when the
 * run removes something, after its guard, holding the gc lock (no other
 * run links one meanwhile); a run that linked one with a later through
 * since our through was read leaves its through (it never decreases). */
static int gc_record_cb(uint64_t *seq, udr_catalog *c, uint64_t epoch, uint64_t mark, uint64_t through,
                        void *payload)
{
	udr__record r;
	uint64_t head, prev = 0, gseq;
	int rc;
	(void)payload;
	*seq = 0;
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		return rc;
	if (head > 0) {
		if ((rc = udr__record_read(&r, c, head)) < 0)
			return rc;
		rc = udr__gc_at(&prev, &gseq, c, &r);
		udr__record_free(&r);
		if (rc < 0)
			return rc;
	}
	if (prev >= through && gseq > 0) {
		/* the last gc record covers every expire record this run sweeps:
		 * no new one (each run would add one to the log) */
		*seq = gseq;
		return 0;
	}
	return udr__catalog_gc_record(seq, c, epoch, mark, through > prev ? through : prev);
}

/* Before gc --keep-* writes its expire record: a run that cannot collect
 * (another holds the gc lock, STATE damaged or aborted) should expire
 * nothing (review R4).  A run starting between this check and the
 * collection's lock still leaves the expire record alone (undoable). */
static int gc_precheck(udr_db *db)
{
	udr__gcstate st;
	char *path;
	int rc, fd;
	if ((rc = udr__gcstate_load(&st, udr_store_path(db->store))) < 0)
		return rc;
	if (st.phase == UDR__GC_ABORTED) {
		rc = udr__error_set(UDR_ECORRUPT, "gc: the run of epoch %llu was aborted by its guard; run udr fsck: once it "
		                    "finds no problem it lets gc run again (nothing expired)", (unsigned long long)st.epoch);
		udr__gcstate_release(&st);
		return rc;
	}
	udr__gcstate_release(&st);
	if (!(path = udr__path_join(udr_store_path(db->store), "gc/lock")))
		return udr__error_oom();
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
			char buf[32];
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = 0;
			if (n > 0 && buf[n - 1] == '\n')
				buf[n - 1] = 0;
			rc = udr__error_set(UDR_ELOCKED, "another gc is running on this store (pid %s; %s); nothing expired",
			                    n > 0 ? buf : "unknown", path);
		}
		close(fd);
	}
	free(path);
	return rc;
}

int udr_db_gc(char **report_json, udr_db *db, const udr_gc_options *opts)
{
	udr__gc_collect_opts o = UDR__GC_COLLECT_OPTS_INIT;
	udr_gc_options def = UDR_GC_OPTIONS_INIT;
	struct gc_expiry x;
	char *xjson = NULL, *cjson = NULL;
	int rc;
	if (!report_json || !db)
		return udr__error_set(UDR_EINVAL, "gc: NULL argument");
	*report_json = NULL;
	if (!opts)
		opts = &def;
	if (opts->version != UDR_GC_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "gc: options of version %u (expected %d)", opts->version,
		                      UDR_GC_OPTIONS_VERSION);
	o.dry_run = opts->dry_run != 0;
	o.grace_ms = opts->grace_ms < 0 ? udr__store_gc_grace_ms(db->store) : opts->grace_ms;
	o.threshold_pct = opts->threshold_pct;
	o.max_unused_pct = opts->max_unused_pct;
	o.max_repack_bytes = opts->max_repack_bytes;
	o.progress = opts->progress;
	o.progress_payload = opts->progress_payload;
	memset(&x, 0, sizeof(x));
	x.c = db->catalog;
	/* expire by the stored policy, its default replaced by the rule when
	 * given (GC.md 1.1; a record in the log; a dry run only plans), then
	 * collect what versions expired by then alone needed: the gc record
	 * is linked by the collection, only if it removes something.  No
	 * policy and no rule: nothing expires. */
	bool expire = opts->rule != NULL;
	{
		uint64_t pseq = 0;
		char *ptext = NULL;
		json_t *pj, *g;
		if ((rc = udr_retention_policy_at(&ptext, &pseq, db->catalog, 0)) < 0)
			return rc;
		expire = expire || pseq > 0;
		/* the policy's grace, unless the caller gave one (GC.md 1.1) */
		if (pseq > 0 && opts->grace_ms < 0 && (pj = json_loads(ptext, 0, NULL)) != NULL) {
			if ((g = json_object_get(pj, "grace")) != NULL &&
			    (!json_is_string(g) || udr_retention_parse_duration(&o.grace_ms, json_string_value(g)) < 0))
				rc = udr__error_set(UDR_ECORRUPT, "retention record %llu: its grace is not a duration",
				                    (unsigned long long)pseq);
			json_decref(pj);
		}
		free(ptext);
		if (rc < 0)
			return rc;
	}
	if (expire && !opts->dry_run && (rc = gc_precheck(db)) < 0)
		return rc;
	if (expire && opts->progress) /* the plan reads every version file, the step may wait for writers */
		opts->progress("expire", 0, 0, opts->progress_payload);
	if (expire && (rc = udr_retention_apply(&xjson, db->catalog, opts->rule, NULL,
	                                        UDR_RETENTION_POLICY | (opts->dry_run ? UDR_RETENTION_DRY_RUN : 0))) < 0)
		return rc;
	if ((rc = udr__expire_latest(&x.through, NULL, db->catalog)) < 0) {
		free(xjson);
		return rc;
	}
	if (opts->dry_run && xjson) {
		json_t *p = json_loads(xjson, 0, NULL);
		if (p)
			x.plan = json_incref(json_object_get(json_object_get(p, "expired"), "ranges"));
		json_decref(p);
	}
	if (!opts->dry_run && x.through > 0) {
		o.record = gc_record_cb;
		o.record_through = x.through;
	}
	o.expired = gc_expired;
	o.expired_payload = &x;
	rc = udr__gc_collect(&cjson, db->store, db->catalog, &o);
	if (cjson && xjson && cjson[0] == '{') {
		/* {"retention": <the expire report>, <the collection's fields>} */
		udr__buf b = {0};
		if (udr__buf_printf(&b, "{\"retention\":%s%s%s", xjson, cjson[1] == '}' ? "" : ",", cjson + 1) == 0) {
			free(cjson);
			cjson = b.ptr;
		} else {
			udr__buf_free(&b);
		}
	}
	free(xjson);
	gc_expiry_release(&x);
	*report_json = cjson;
	return rc;
}

/* ,"leases":{"pins":[{pin line, "pid":N}...],"damaged":PATH|null}: the
 * live pins of open readers (GC.md 2.1, 2.4), read without removing. */
static int status_leases(udr__buf *b, udr_db *db, uint64_t *stale)
{
	udr__lease_set ls;
	json_t *o = json_object(), *pins = json_array();
	char *text = NULL;
	int rc = udr__leases_list(&ls, db->catalog->path);
	if (rc == 0 && (!o || !pins))
		rc = udr__error_oom();
	for (size_t i = 0; rc == 0 && i < ls.n; i++) {
		json_t *p = json_loads(ls.v[i].line, 0, NULL);
		if (!p || !json_is_object(p)) {
			json_decref(p);
			continue;
		}
		if (json_object_set_new(p, "pid", json_integer((json_int_t)ls.v[i].pid)) < 0 ||
		    json_array_append_new(pins, p) < 0)
			rc = udr__error_oom();
	}
	*stale = ls.dead;
	if (rc == 0 && (json_object_set(o, "pins", pins) < 0 ||
	                json_object_set_new(o, "damaged", ls.damaged ? json_string(ls.damaged) : json_null()) < 0 ||
	                !(text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER))))
		rc = udr__error_oom();
	if (rc == 0)
		rc = udr__buf_printf(b, ",\"leases\":%s", text);
	free(text);
	json_decref(o);
	json_decref(pins);
	udr__lease_set_free(&ls);
	return rc;
}

/* ,"state_missing":bool,"run_files":[names]: run files in chunks/gc
 * (plan-, doomed-, dead-, journal-) that STATE does not name, and whether
 * STATE is missing while gc/ exists (removed by hand: with run files left,
 * fsck counts them a problem, GC.md 6).  A damaged STATE names nothing
 * trustworthy: no file is listed then. */
static int status_run_files(udr__buf *b, udr_db *db, const udr__gcstate *st, bool damaged)
{
	char *dir = udr__path_join(udr_store_path(db->store), UDR__GC_DIR), *sp;
	struct stat sb;
	bool missing = false, first = true;
	DIR *d;
	struct dirent *e;
	int rc;
	if (!dir)
		return udr__error_oom();
	if ((sp = udr__path_join(dir, "STATE")) == NULL) {
		free(dir);
		return udr__error_oom();
	}
	missing = stat(dir, &sb) == 0 && stat(sp, &sb) < 0 && errno == ENOENT;
	free(sp);
	rc = udr__buf_printf(b, ",\"state_missing\":%s,\"run_files\":[", missing ? "true" : "false");
	if (rc == 0 && !damaged && (d = opendir(dir)) != NULL) {
		while (rc == 0 && (e = readdir(d)) != NULL) {
			const char *n = e->d_name;
			if (strncmp(n, "plan-", 5) != 0 && strncmp(n, "doomed-", 7) != 0 && strncmp(n, "dead-", 5) != 0 &&
			    strncmp(n, "journal-", 8) != 0)
				continue;
			if (strcmp(n, st->plan) == 0 || strcmp(n, st->doomed) == 0 || strcmp(n, st->dead) == 0)
				continue;
			/* names are [A-Za-z0-9._-] when gc made them; anything else is skipped */
			if (strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(n))
				continue;
			rc = udr__buf_printf(b, "%s\"%s\"", first ? "" : ",", n);
			first = false;
		}
		closedir(d);
	}
	free(dir);
	return rc == 0 ? udr__buf_puts(b, "]") : rc;
}

static const char *const expiring_states[] = {"missing", "even", "odd", "busy", "damaged"};

/* ,"expiring":{"state":"missing|even|odd|busy|damaged","generation":N|null,
 * "damage":TEXT|null,"path":PATH}: the expire handshake's file (GC.md 2.2,
 * 6); odd means an expirer died mid-step (its lock is free). */
static int status_expiring(udr__buf *b, udr_db *db)
{
	udr__expiring_info x;
	json_t *o;
	char *text;
	int rc = udr__expiring_check(&x, db->catalog);
	if (rc < 0) {
		/* said, not fatal: the rest of the status stays readable */
		x.state = UDR__EXPIRING_DAMAGED;
		snprintf(x.damage, sizeof(x.damage), "cannot be checked: %s",
		         udr_error_last()->message ? udr_error_last()->message : "error");
		udr_error_clear();
	}
	o = json_pack("{s:s, s:o, s:o, s:s}", "state", expiring_states[x.state], "generation",
	              x.state == UDR__EXPIRING_EVEN || x.state == UDR__EXPIRING_ODD ? json_integer((json_int_t)x.gen)
	                                                                           : json_null(),
	              "damage", x.state == UDR__EXPIRING_DAMAGED ? json_string(x.damage) : json_null(), "path", x.path);
	if (!o || !(text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
		json_decref(o);
		return udr__error_oom();
	}
	json_decref(o);
	rc = udr__buf_printf(b, ",\"expiring\":%s", text);
	free(text);
	return rc;
}

int udr_db_gc_status(char **state_json, udr_db *db)
{
	udr__gcstate st;
	udr__buf b = {0};
	char *path, pid[32] = "null", *damage = NULL;
	uint64_t stale = 0;
	bool damaged;
	int rc, fd;
	if (!state_json || !db)
		return udr__error_set(UDR_EINVAL, "gc: NULL argument");
	*state_json = NULL;
	if ((rc = udr__gcstate_load(&st, udr_store_path(db->store))) == UDR_ECORRUPT) {
		/* still say whether a run holds the lock: the way out of a
		 * damaged STATE (removing it) is only for when none does */
		if (!(damage = strdup(udr_error_last()->message ? udr_error_last()->message : "damaged")))
			return udr__error_oom();
		udr_error_clear();
		udr__gcstate_init(&st);
		rc = 0;
	}
	if (rc < 0)
		return rc;
	if (!(path = udr__path_join(udr_store_path(db->store), "gc/lock"))) {
		udr__gcstate_release(&st);
		return udr__error_oom();
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
			char buf[32];
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
			long v = 0;
			buf[n > 0 ? n : 0] = 0;
			if (sscanf(buf, "%ld", &v) == 1 && v > 0)
				snprintf(pid, sizeof(pid), "%ld", v);
			else
				snprintf(pid, sizeof(pid), "0");
		}
		close(fd);
	}
	free(path);
	rc = udr__buf_printf(&b, "{\"epoch\":%llu,\"phase\":\"%s\",\"running\":%s", (unsigned long long)st.epoch,
	                     damage ? "damaged" : udr__gc_phase_name(st.phase), pid);
	if (rc == 0 && damage) {
		json_t *m = json_string(damage);
		char *q = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
		rc = q ? udr__buf_printf(&b, ",\"damage\":%s", q) : udr__error_oom();
		free(q);
		json_decref(m);
	}
	damaged = damage != NULL;
	free(damage);
	if (rc == 0)
		rc = udr__buf_puts(&b, ",\"plan\":");
	if (rc == 0)
		rc = st.plan[0] ? udr__buf_printf(&b, "\"%s\"", st.plan) : udr__buf_puts(&b, "null");
	if (rc == 0 && !damaged && st.phase == UDR__GC_DELETING && st.plan[0]) {
		/* ,"plan_damage":"...": the plan a run killed while deleting
		 * left is damaged (no gc or --repair can finish it; fsck counts
		 * it a problem, --repair abandons the run) */
		int prc = udr__gc_plan_check(db->store, st.plan, st.epoch, st.mark);
		if (prc == UDR_ECORRUPT) {
			json_t *m = json_string(udr_error_last()->message ? udr_error_last()->message : "damaged");
			char *q = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
			udr_error_clear();
			rc = q ? udr__buf_printf(&b, ",\"plan_damage\":%s", q) : udr__error_oom();
			free(q);
			json_decref(m);
		} else if (prc < 0) {
			rc = prc;
		}
	}
	if (rc == 0)
		rc = udr__buf_printf(&b, ",\"last\":%s", st.last ? st.last : "null");
	if (rc == 0)
		rc = status_leases(&b, db, &stale);
	if (rc == 0) {
		/* what fsck --repair removes: leases of dead owners, torn
		 * tails of the fresh files (GC.md 6) */
		uint64_t torn = 0;
		for (unsigned par = 0; par < 2; par++) {
			char name[16], *fp;
			struct stat fs;
			snprintf(name, sizeof(name), "gc/fresh.%u", par);
			if ((fp = udr__path_join(udr_store_path(db->store), name)) != NULL && stat(fp, &fs) == 0)
				torn += (uint64_t)fs.st_size % UDR__GC_FRESH_RECORD;
			free(fp);
		}
		rc = udr__buf_printf(&b, ",\"stale_leases\":%llu,\"fresh_torn\":%llu", (unsigned long long)stale,
		                     (unsigned long long)torn);
	}
	if (rc == 0)
		rc = status_run_files(&b, db, &st, damaged);
	if (rc == 0)
		rc = status_expiring(&b, db);
	if (rc == 0)
		rc = udr__buf_puts(&b, "}");
	udr__gcstate_release(&st);
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	*state_json = b.ptr;
	return 0;
}

int udr_db_gc_reset(int *was_aborted, udr_db *db)
{
	udr__gcstate st;
	const char *sp;
	char *path;
	int fd, rc;
	if (was_aborted)
		*was_aborted = 0;
	if (!db)
		return udr__error_set(UDR_EINVAL, "gc: NULL argument");
	sp = udr_store_path(db->store);
	if ((rc = udr__gcstate_load(&st, sp)) < 0)
		return rc;
	if (st.phase != UDR__GC_ABORTED) {
		udr__gcstate_release(&st);
		return 0;
	}
	if (!(path = udr__path_join(sp, "gc/lock"))) {
		udr__gcstate_release(&st);
		return udr__error_oom();
	}
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		rc = udr__error_io(errno, "cannot open %s", path);
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? udr__error_set(UDR_ELOCKED, "a gc is running on this store (%s)", path)
		                          : udr__error_io(errno, "cannot lock %s", path);
	} else {
		udr__gcstate_release(&st);
		/* again under the lock */
		if ((rc = udr__gcstate_load(&st, sp)) == 0 && st.phase == UDR__GC_ABORTED) {
			st.phase = UDR__GC_IDLE;
			st.plan[0] = st.doomed[0] = 0;
			if ((rc = udr__gcstate_save(sp, udr__store_tmpdir(db->store), &st)) == 0 && was_aborted)
				*was_aborted = 1;
		}
	}
	if (fd >= 0)
		close(fd);
	free(path);
	udr__gcstate_release(&st);
	return rc;
}

/* ---- fsck --repair (docs/GC.md 6) ------------------------------------------------------- */

int udr_db_repair(char **report_json, udr_db *db)
{
	udr__gc_repair_out g;
	udr__lease_set ls;
	udr__expiring_info xw;
	int xfixed = 0;
	uint64_t indexes = 0, rewritten = 0;
	bool midx = false;
	json_t *o;
	int rc;
	if (report_json)
		*report_json = NULL;
	if (!report_json || !db)
		return udr__error_set(UDR_EINVAL, "udr_db_repair: NULL argument");
	/* gc's run files and fresh tails, under gc's own locks (refused while
	 * a gc runs) */
	if ((rc = udr__gc_repair(&g, db->store, db->catalog)) < 0)
		return rc;
	/* leases of dead owners (their lock is free): removed as gc's expire
	 * step removes them */
	memset(&ls, 0, sizeof(ls));
	if ((rc = udr__leases_collect(&ls, db->catalog->path)) < 0)
		return rc;
	/* catalog/expiring left odd by a dead expirer, or damaged: made even
	 * in place when no expirer holds it (GC.md 6) */
	if ((rc = udr__expiring_repair(&xw, &xfixed, db->catalog)) < 0) {
		udr__lease_set_free(&ls);
		return rc;
	}
	if ((rc = udr__store_repair_packs(db->store, &indexes, &rewritten, &midx)) < 0) {
		udr__lease_set_free(&ls);
		return rc;
	}
	o = json_pack("{s:s, s:I, s:b, s:b, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "gc_phase",
	              g.rebuilt ? "damaged" : udr__gc_phase_name((enum udr__gc_phase)g.phase), "gc_epoch",
	              (json_int_t)g.epoch, "gc_finished", g.finished, "gc_abandoned", g.abandoned, "gc_plan_damaged",
	              g.plan_damaged, "gc_state_rebuilt",
	              g.rebuilt, "gc_seq", (json_int_t)g.gc_seq, "gc_files", (json_int_t)g.run_files,
	              "fresh_cut_bytes", (json_int_t)(g.fresh_cut[0] + g.fresh_cut[1]), "leases",
	              (json_int_t)ls.removed, "pack_indexes", (json_int_t)indexes, "pack_indexes_rewritten",
	              (json_int_t)rewritten, "midx", midx, "expiring",
	              !xfixed ? json_null()
	                      : json_pack("{s:s, s:o, s:s}", "was", expiring_states[xw.state], "generation",
	                                  xw.state == UDR__EXPIRING_ODD ? json_integer((json_int_t)xw.gen) : json_null(),
	                                  "damage", xw.state == UDR__EXPIRING_DAMAGED ? xw.damage : ""));
	udr__lease_set_free(&ls);
	if (!o)
		return udr__error_oom();
	*report_json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return *report_json ? 0 : udr__error_oom();
}
