/*
 * fsck.c - the catalog check: every commit record from 1 to the head, every
 * version file it names (digest, fields, parent chain), that each table's
 * versions are exactly 1..latest, that every chunk named exists (when the
 * catalog has a store), stray files, and cache repair.  Under the writer
 * lock it also removes orphans: version files of commits that never
 * happened, and abandoned temp files.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/file.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"
#include "store/gcstate.h"

struct tbl {
	char *name;
	uint64_t latest; /* per the log */
};

struct ck {
	udr_catalog *c;
	udr_check_stats *stats;
	udr_problem_cb cb;
	void *payload;
	bool stop;
	struct tbl *tables;
	size_t ntables, cap;
	uint64_t head;
	/* what the records must agree with, built while walking them */
	udr__tstate state;    /* tables after the commits checked so far */
	udr__tstate window;   /* tables changed since the current base */
	udr__tstate global;   /* refs.c: allocation and refs after the records checked */
	uint64_t base;        /* the current base checkpoint */
	udr_hash base_digest; /* its digest */
	bool prev_legacy;     /* the previous record was format 1 */
	bool unsure;          /* a damaged record since the current base */
	bool incomplete;      /* a damaged record at all: the state misses its changes */
	bool have_prev;
	udr_hash prev_digest; /* digest of the previous record */
	int64_t prev_time;
};

/* report a problem; the check stops when the callback asks to */
#define problem(k, code, object, path, ...)                                                   \
	do {                                                                                      \
		if (udr__problem((k)->stats, (k)->cb, (k)->payload, code, object, path, __VA_ARGS__)) \
			(k)->stop = true;                                                             \
	} while (0)

static struct tbl *table_get(struct ck *k, const char *name)
{
	for (size_t i = 0; i < k->ntables; i++)
		if (strcmp(k->tables[i].name, name) == 0)
			return &k->tables[i];
	if (k->ntables == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 16;
		struct tbl *p = realloc(k->tables, cap * sizeof(*p));
		if (!p)
			return NULL;
		k->tables = p;
		k->cap = cap;
	}
	k->tables[k->ntables].name = strdup(name);
	if (!k->tables[k->ntables].name)
		return NULL;
	k->tables[k->ntables].latest = 0;
	return &k->tables[k->ntables++];
}

static void check_chunks(struct ck *k, const udr_version *v, const char *path)
{
	char obj[UDR_TABLE_NAME_MAX + 32];
	udr_expiry x;
	if (!k->c->store)
		return;
	snprintf(obj, sizeof(obj), "%s@%llu", v->table, (unsigned long long)v->version);
	for (size_t i = 0; i < v->nchunks && !k->stop; i++) {
		int rc = udr_store_exists(k->c->store, &v->chunks[i]);
		if (rc != 1 && v->version > 0) {
			/* a version whose data a gc record let the sweep remove is
			 * counted, not checked (GC.md 6): its chunks may be gone by
			 * design (asked only then: the lookup may rebuild an expired
			 * set, whose own check comes later) */
			bool swept = udr_version_expiry(&x, k->c, v->table, v->version) == 0 && x.swept;
			udr_error_clear();
			if (swept)
				return;
		}
		if (rc != 1) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, &v->chunks[i]);
			problem(k, UDR_ENOTFOUND, obj, path, "version %s names chunk %s, which is missing from the store",
			        obj, hex);
		}
	}
}

/*
 * The checkpoint file of base B must be the bytes record r names by digest.
 * It is rewritten only when it is missing or damaged and the state fsck
 * computed from the log (text, NULL when a damaged record left that state
 * incomplete) has exactly that digest: a checkpoint is derived data, but
 * fsck never writes anything the log does not vouch for.
 */
static int check_state_file(struct ck *k, uint64_t base, const udr_hash *want, const char *text, size_t len,
                            const char *obj)
{
	char *file = NULL, *sp = udr__state_path(k->c, base);
	size_t flen;
	udr_hash d;
	int rc;
	if (!sp)
		return UDR_ENOMEM;
	rc = udr__read_file(&file, &flen, sp, UDR__MAX_META_FILE);
	if (rc == UDR_ENOMEM) {
		free(sp);
		return rc;
	}
	if (rc == 0)
		udr_hash_buf(&d, file, flen);
	if (rc < 0 || !udr_hash_equal(&d, want)) {
		if (rc == 0)
			problem(k, UDR_ECORRUPT, obj, sp, "checkpoint of commit %llu is damaged%s", (unsigned long long)base,
			        text ? " (rewritten from the log)" : " (not rewritten: the log is damaged too)");
		udr_error_clear();
		if (text && (udr__mkdir(k->c->statedir, NULL) < 0 ||
		             udr__write_file_atomic(k->c->tmpdir, sp, text, len, UDR__PUBLISH_REPLACE, true) < 0))
			problem(k, UDR_EIO, obj, sp, "cannot rewrite checkpoint of commit %llu: %s", (unsigned long long)base,
			        udr_error_last()->message);
		udr_error_clear();
	}
	free(file);
	free(sp);
	return 0;
}

/*
 * A record's base must be the previous commit (a new checkpoint) or the
 * base of the record before it, and it must name the checkpoint's digest
 * that the log produces.  Returns 1 when the window can't be checked (a
 * damaged record since the base).
 */
static int check_base(struct ck *k, const udr__record *r, const char *path, const char *obj)
{
	uint64_t seq = r->cm->seq;
	if (r->base == seq - 1 && seq > 1) {
		char *text = NULL;
		size_t len = 0;
		int rc;
		k->base = seq - 1;
		k->base_digest = r->base_state;
		k->unsure = false;
		udr__tstate_free(&k->window);
		if (!k->incomplete) {
			udr_hash d;
			if ((rc = udr__state_encode(&text, &len, &k->state, seq - 1)) < 0)
				return rc;
			udr_hash_buf(&d, text, len);
			if (!udr_hash_equal(&d, &r->base_state)) {
				problem(k, UDR_ECORRUPT, obj, path,
				        "commit %llu names a checkpoint of commit %llu that the log does not produce",
				        (unsigned long long)seq, (unsigned long long)k->base);
				free(text);
				text = NULL;
			}
		}
		rc = check_state_file(k, k->base, &r->base_state, text, len, obj);
		free(text);
		return rc;
	}
	if (k->unsure)
		return 1; /* nothing to compare with until the next checkpoint */
	if (k->prev_legacy || r->base != k->base)
		problem(k, UDR_ECORRUPT, obj, path, "commit %llu names base %llu, expected %llu", (unsigned long long)seq,
		        (unsigned long long)r->base, (unsigned long long)(k->prev_legacy ? seq - 1 : k->base));
	else if (r->base > 0 && !udr_hash_equal(&r->base_state, &k->base_digest))
		problem(k, UDR_ECORRUPT, obj, path, "commit %llu names another checkpoint of commit %llu than commit %llu",
		        (unsigned long long)seq, (unsigned long long)r->base, (unsigned long long)seq - 1);
	return 0;
}

/*
 * The version file a change of record seq names, checked against the
 * change itself (the record is in hand: no second read of it, so fsck costs
 * one read per file).  1 intact (*out set), 0 missing, UDR_ECORRUPT naming
 * the file.
 */
static int version_of_change(udr_version **out, const udr_change *ch, uint64_t seq, const char *vp)
{
	char *text = NULL;
	size_t len;
	udr_hash d;
	udr_version *v = NULL;
	int rc = udr__read_file(&text, &len, vp, UDR__MAX_META_FILE);
	*out = NULL;
	if (rc == UDR_ENOTFOUND) {
		udr_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	udr_hash_buf(&d, text, len);
	if (!udr_hash_equal(&d, &ch->digest))
		rc = udr__error_set(UDR_ECORRUPT,
		                    "corrupt version file %s: its digest does not match commit record %llu (tampered or "
		                    "damaged)", vp, (unsigned long long)seq);
	else if ((rc = udr__version_from_json(&v, text, len, vp)) == 0 &&
	         (strcmp(v->table, ch->table) != 0 || v->version != ch->new_version || v->commit_seq != seq ||
	          v->parent != ch->old_version))
		rc = udr__error_set(UDR_ECORRUPT, "corrupt version file %s: it does not say what commit %llu says of it",
		                    vp, (unsigned long long)seq);
	free(text);
	if (rc < 0) {
		udr_version_free(v);
		return rc;
	}
	*out = v;
	return 1;
}

static int check_commit(struct ck *k, uint64_t seq)
{
	udr__record r;
	udr_commit *cm;
	char obj[48], *path;
	bool skip_window = false;
	int rc;
	snprintf(obj, sizeof(obj), "commit %llu", (unsigned long long)seq);
	k->stats->objects++;
	if (!(path = udr__commit_path(k->c, seq)))
		return UDR_ENOMEM;
	rc = udr__record_read(&r, k->c, seq);
	if (rc == UDR_ENOMEM) {
		free(path);
		return rc;
	}
	if (rc < 0) {
		problem(k, rc == UDR_ENOTFOUND ? UDR_ECORRUPT : rc, obj, path, "%s", udr_error_last()->message);
		/* what follows can't be checked against this record */
		k->have_prev = false;
		k->unsure = true;
		k->incomplete = true;
		free(path);
		return 0;
	}
	cm = r.cm;
	if (!r.branched && cm->parent != seq - 1 && strcmp(cm->branch, "main") == 0)
		problem(k, UDR_ECORRUPT, obj, path, "commit %llu names parent %llu, expected %llu", (unsigned long long)seq,
		        (unsigned long long)cm->parent, (unsigned long long)seq - 1);
	if (seq > 1 && cm->time_ms < k->prev_time)
		problem(k, UDR_ECORRUPT, obj, path, "commit %llu is older than commit %llu (the log's time goes backwards)",
		        (unsigned long long)seq, (unsigned long long)seq - 1);
	k->prev_time = cm->time_ms;
	if (!r.legacy) {
		if (k->have_prev && (!r.has_prev || !udr_hash_equal(&r.prev, &k->prev_digest)))
			problem(k, UDR_ECORRUPT, obj, path, "commit %llu does not name the digest of record %llu",
			        (unsigned long long)seq, (unsigned long long)seq - 1);
		if (r.branched) {
			/* a store that branched: the refs and snapshots (refs.c) */
			char why[512];
			skip_window = true;
			if ((rc = udr__fsck_refs_record(&k->global, k->c, &r, why, sizeof(why))) < 0) {
				if (rc == UDR_ENOMEM)
					goto out;
				problem(k, UDR_ECORRUPT, obj, path, "%s", udr_error_last()->message);
			} else if (rc == 1) {
				problem(k, UDR_ECORRUPT, obj, path, "%s", why);
			}
		} else {
			if ((rc = check_base(k, &r, path, obj)) < 0)
				goto out;
			skip_window = rc == 1;
		}
	}
	if (!r.branched) { /* the global state before the store branched */
		char why[16];
		if ((rc = udr__fsck_refs_record(&k->global, k->c, &r, why, sizeof(why))) < 0)
			goto out;
	}
	for (size_t i = 0; i < cm->nchanges && !k->stop; i++) {
		const udr_change *ch = &cm->changes[i];
		struct tbl *t = table_get(k, ch->table);
		udr_version *v = NULL;
		char *vp = udr__version_path(k->c, ch->table, ch->new_version);
		if (!t || !vp || udr__tstate_set(&k->state, ch->table, ch->new_version, seq) < 0 ||
		    udr__tstate_set(&k->window, ch->table, ch->new_version, seq) < 0) {
			free(vp);
			rc = udr__error_oom();
			goto out;
		}
		if (k->unsure && ch->old_version > t->latest)
			t->latest = ch->old_version; /* a damaged record before this one may have made it */
		if ((!r.branched && ch->old_version != t->latest) || ch->new_version != t->latest + 1)
			problem(k, UDR_ECORRUPT, ch->table, vp,
			        "commit %llu makes table %s go from version %llu to %llu, but the log had it at %llu",
			        (unsigned long long)seq, ch->table, (unsigned long long)ch->old_version,
			        (unsigned long long)ch->new_version, (unsigned long long)t->latest);
		if (ch->new_version > t->latest)
			t->latest = ch->new_version;
		k->stats->objects++;
		rc = version_of_change(&v, ch, seq, vp);
		if (rc == UDR_ENOMEM) {
			free(vp);
			goto out;
		}
		if (rc < 0)
			problem(k, UDR_ECORRUPT, ch->table, vp, "%s", udr_error_last()->message);
		else if (rc == 0)
			problem(k, UDR_ECORRUPT, ch->table, vp,
			        "version %llu of table %s, made by commit %llu, is missing",
			        (unsigned long long)ch->new_version, ch->table, (unsigned long long)seq);
		else
			check_chunks(k, v, vp);
		udr_version_free(v);
		free(vp);
	}
	if (!r.legacy && !skip_window && !udr__tstate_equal(&r.window, &k->window))
		problem(k, UDR_ECORRUPT, obj, path, "commit %llu: its window of changed tables disagrees with the log",
		        (unsigned long long)seq);
	k->have_prev = true;
	k->prev_digest = r.digest;
	k->prev_legacy = r.legacy;
	rc = 0;
out:
	udr__record_free(&r);
	free(path);
	return rc;
}

/*
 * A version file beyond the log's latest version is deleted only when it is
 * provably the leftover of a commit that never happened: the commit it names
 * is in the log, intact, and does not list it.  One that names a commit past
 * the head stays: it may be the leftover of an interrupted commit (the next
 * commit of its table replaces it) or the last trace of a lost record, and
 * only the second is worth a report - HEAD, written after every commit
 * point, tells which.  Unreadable files and files whose record is damaged
 * are evidence, and stay.
 */
static bool is_orphan(struct ck *k, const char *table, uint64_t ver, const char *path)
{
	char *text = NULL;
	size_t len;
	udr_version *v = NULL;
	udr_commit *cm = NULL;
	bool orphan = false;
	if (udr__read_file(&text, &len, path, UDR__MAX_META_FILE) < 0 ||
	    udr__version_from_json(&v, text, len, path) < 0) {
		udr_error_clear();
		free(text);
		return false; /* unreadable: report, never delete */
	}
	if (v->commit_seq <= k->head && udr__commit_read(&cm, k->c, v->commit_seq) == 0) {
		orphan = true;
		for (size_t i = 0; i < cm->nchanges; i++)
			if (strcmp(cm->changes[i].table, table) == 0 && cm->changes[i].new_version == ver)
				orphan = false;
	}
	udr_error_clear();
	udr_commit_free(cm);
	udr_version_free(v);
	free(text);
	return orphan;
}

/* Look at every file under tables/<T>/: numbered files beyond the log's
 * latest are orphans (removed under the lock), anything else is stray. */
static int check_table_dir(struct ck *k, const char *name, bool locked)
{
	char *dir = udr__path_join(k->c->tablesdir, name);
	struct tbl *t = NULL;
	DIR *d;
	struct dirent *e;
	if (!dir)
		return UDR_ENOMEM;
	for (size_t i = 0; i < k->ntables; i++)
		if (strcmp(k->tables[i].name, name) == 0)
			t = &k->tables[i];
	if (!(d = opendir(dir))) {
		problem(k, UDR_ECORRUPT, name, dir, "table entry is not a readable directory");
		free(dir);
		return 0;
	}
	while ((e = readdir(d)) != NULL && !k->stop) {
		uint64_t ver;
		size_t n = strlen(e->d_name);
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || strcmp(e->d_name, "LATEST") == 0)
			continue;
		if (!(p = udr__path_join(dir, e->d_name))) {
			closedir(d);
			free(dir);
			return UDR_ENOMEM;
		}
		if (n == SEQ_DIGITS + 5 && strcmp(e->d_name + SEQ_DIGITS, ".json") == 0 &&
		    udr__parse_u64(&ver, e->d_name, SEQ_DIGITS) == 0 && ver > 0) {
			if ((!t || ver > t->latest) && locked && is_orphan(k, name, ver, p))
				UDR_IO->unlink(p); /* leftover of a commit that never happened */
		} else {
			problem(k, UDR_ECORRUPT, name, p, "stray file in table directory");
		}
		free(p);
	}
	closedir(d);
	if (locked && !t) {
		/* leftover of a crashed first commit: nothing the log names */
		char *lf = udr__path_join(dir, "LATEST");
		if (lf)
			UDR_IO->unlink(lf);
		free(lf);
		rmdir(dir); /* fails, harmlessly, if anything else is left */
	}
	if (locked && t) {
		char *lf = udr__path_join(dir, "LATEST");
		if (lf)
			udr__write_number_file(k->c, lf, t->latest);
		free(lf);
	}
	free(dir);
	return 0;
}

int udr_catalog_fsck(udr_check_stats *stats, udr_catalog *c, udr_problem_cb cb, void *payload)
{
	udr_check_stats local;
	struct ck k;
	uint64_t head = 0, beyond = 0;
	udr__head_info hinfo;
	int lockfd = -1, inflight = -1, rc;
	DIR *d;
	struct dirent *e;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument: catalog is NULL");
	memset(&k, 0, sizeof(k));
	memset(&local, 0, sizeof(local));
	k.c = c;
	k.stats = stats ? stats : &local;
	memset(k.stats, 0, sizeof(*k.stats));
	k.cb = cb;
	k.payload = payload;
	/* The lock keeps committers out while orphans are told apart from
	 * commits in progress. */
	if (c->format >= 2 && (rc = udr__inflight_lock(&inflight, c, LOCK_EX)) < 0)
		return rc;
	if ((rc = udr__catalog_lock(&lockfd, c)) < 0) {
		udr__catalog_unlock(inflight);
		return rc;
	}
	udr__writer_view_set(c);
	if ((rc = udr__tmp_clean(c->tmpdir, &k.stats->temp_removed)) < 0)
		goto done;
	if (c->format >= 2) {
		/* no writer is in flight: records past HEAD are a dead writer's,
		 * made durable and kept when intact, else removed (recovery) */
		uint64_t rh, removed = 0;
		udr__head_info hi;
		if (udr__head_find(&rh, &hi, c) == 0 && !hi.cache_missing && !hi.beyond &&
		    udr__catalog_recover(&rh, c, &removed) < 0)
			udr_error_clear(); /* what is wrong is reported below */
		(void)removed;
	}
	if ((rc = udr__head_find(&head, &hinfo, c)) < 0)
		goto done;
	k.head = head;
	if (hinfo.cache_missing)
		problem(&k, UDR_ECORRUPT, "HEAD", c->headpath,
		        "HEAD names commit %llu, but the log ends at %llu: commit records were lost (or HEAD is damaged); "
		        "commits are refused until this is resolved",
		        (unsigned long long)hinfo.cache, (unsigned long long)head);
	/* records past a gap are checked too: the log has lost a commit,
	 * and every record that is left is evidence */
	if (!(d = opendir(c->logdir))) {
		rc = udr__error_io(errno, "cannot list %s", c->logdir);
		goto done;
	}
	while ((e = readdir(d)) != NULL && !k.stop) {
		uint64_t s = 0;
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (strlen(e->d_name) == SEQ_DIGITS + 5 && strcmp(e->d_name + SEQ_DIGITS, ".json") == 0 &&
		    udr__parse_u64(&s, e->d_name, SEQ_DIGITS) == 0 && s > 0) {
			if (s > head && s > beyond)
				beyond = s;
			continue;
		}
		p = udr__path_join(c->logdir, e->d_name);
		problem(&k, UDR_ECORRUPT, e->d_name, p, "stray file in commit log");
		free(p);
	}
	closedir(d);
	k.head = beyond > head ? beyond : head;
	for (uint64_t s = 1; s <= k.head && !k.stop; s++)
		if ((rc = check_commit(&k, s)) < 0)
			goto done;
	if (!(d = opendir(c->tablesdir))) {
		rc = udr__error_io(errno, "cannot list %s", c->tablesdir);
		goto done;
	}
	while ((e = readdir(d)) != NULL && !k.stop) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (udr_table_name_check(e->d_name) < 0) {
			char *p = udr__path_join(c->tablesdir, e->d_name);
			udr_error_clear();
			problem(&k, UDR_ECORRUPT, e->d_name, p, "stray entry in tables directory (not a table name)");
			free(p);
			continue;
		}
		if ((rc = check_table_dir(&k, e->d_name, true)) < 0)
			break;
	}
	closedir(d);
	if (rc < 0)
		goto done;
	/* a table the log knows but whose directory is gone */
	for (size_t i = 0; i < k.ntables && !k.stop; i++) {
		char *dir = udr__path_join(c->tablesdir, k.tables[i].name);
		struct stat st;
		if (dir && UDR_IO->stat(dir, &st) < 0)
			problem(&k, UDR_ECORRUPT, k.tables[i].name, dir, "table directory is missing");
		free(dir);
	}
	/* HEAD is evidence of how far the log went: rebuilt only when it
	 * contradicts nothing */
	if (!hinfo.cache_missing && !beyond && (!hinfo.cache_ok || hinfo.cache != head))
		udr__write_number_file(c, c->headpath, head);
	rc = 0;
done:
	udr__writer_view_clear();
	udr__catalog_unlock(lockfd);
	udr__catalog_unlock(inflight);
	udr__tstate_free(&k.state);
	udr__tstate_free(&k.window);
	udr__tstate_free(&k.global);
	for (size_t i = 0; i < k.ntables; i++)
		free(k.tables[i].name);
	free(k.tables);
	if (rc < 0)
		return rc;
	if (k.stats->problems)
		return udr__error_set(UDR_ECORRUPT, "catalog %s: %llu problem(s) found", c->path,
		                      (unsigned long long)k.stats->problems);
	return 0;
}

/* A file in dir named <20 digits>.json whose number is past end (checkpoints). */
static int numbered_past(uint64_t *found, const char *dir, uint64_t end)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	*found = 0;
	if (!d)
		return errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
	while ((e = readdir(d)) != NULL) {
		uint64_t s;
		if (strlen(e->d_name) == SEQ_DIGITS + 5 && strcmp(e->d_name + SEQ_DIGITS, ".json") == 0 &&
		    udr__parse_u64(&s, e->d_name, SEQ_DIGITS) == 0 && s > end && s > *found)
			*found = s;
	}
	closedir(d);
	return 0;
}

/* A version file (of any table) that names a commit past end: 1 with its
 * path in the error message, 0 none. */
static int version_past(udr_catalog *c, uint64_t end)
{
	DIR *d = opendir(c->tablesdir), *td;
	struct dirent *e, *f;
	int rc = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", c->tablesdir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char *dir;
		if (e->d_name[0] == '.' || !(dir = udr__path_join(c->tablesdir, e->d_name)))
			continue;
		if ((td = opendir(dir)) != NULL) {
			while (rc == 0 && (f = readdir(td)) != NULL) {
				char *p, *text = NULL;
				size_t len;
				udr_version *v = NULL;
				if (strlen(f->d_name) != SEQ_DIGITS + 5 || strcmp(f->d_name + SEQ_DIGITS, ".json") != 0 ||
				    !(p = udr__path_join(dir, f->d_name)))
					continue;
				if (udr__read_file(&text, &len, p, UDR__MAX_META_FILE) < 0 ||
				    udr__version_from_json(&v, text, len, p) < 0)
					rc = udr__error_set(UDR_ECORRUPT, "version file %s is unreadable; can't tell which commit "
					                    "made it", p);
				else if (v->commit_seq > end)
					rc = udr__error_set(UDR_ECORRUPT, "version file %s names commit %llu, past the end of the "
					                    "log (%llu): that commit's record was lost, or the file is the "
					                    "leftover of an interrupted commit (then delete it)", p,
					                    (unsigned long long)v->commit_seq, (unsigned long long)end);
				udr_version_free(v);
				free(text);
				free(p);
			}
			closedir(td);
		}
		free(dir);
	}
	closedir(d);
	return rc < 0 ? rc : 0;
}

/* An expired-set checkpoint (catalog/expired/<table>/<seq>.json) past end:
 * *found its seq (0: none). */
static int expired_past(uint64_t *found, udr_catalog *c, uint64_t end)
{
	char *top = udr__path_join(c->path, "expired");
	DIR *d;
	struct dirent *e;
	int rc = 0;
	*found = 0;
	if (!top)
		return udr__error_oom();
	if (!(d = opendir(top))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", top);
		free(top);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char *dir;
		uint64_t f = 0;
		if (e->d_name[0] == '.' || !(dir = udr__path_join(top, e->d_name)))
			continue;
		rc = numbered_past(&f, dir, end);
		free(dir);
		if (f > *found)
			*found = f;
	}
	closedir(d);
	free(top);
	return rc;
}

int udr_catalog_reset_head(uint64_t *old_head, uint64_t *new_head, udr_catalog *c)
{
	udr__head_info info;
	uint64_t end = 0, past;
	int lockfd = -1, rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument: catalog is NULL");
	if ((rc = udr__catalog_lock(&lockfd, c)) < 0)
		return rc;
	if ((rc = udr__head_find(&end, &info, c)) < 0)
		goto done;
	if (old_head)
		*old_head = info.cache_ok ? info.cache : end;
	if (new_head)
		*new_head = end;
	if (info.beyond) {
		rc = udr__error_set(UDR_ECORRUPT, "the log has a gap (record %llu is missing, record %llu exists): "
		                    "HEAD can't be reset over it", (unsigned long long)end + 1,
		                    (unsigned long long)info.beyond);
		goto done;
	}
	if (!info.cache_missing) {
		rc = 0;
		goto done;
	}
	if ((rc = numbered_past(&past, c->statedir, end)) < 0)
		goto done;
	if (!past && c->refsdir && (rc = numbered_past(&past, c->refsdir, end)) < 0)
		goto done;
	if (!past && (rc = expired_past(&past, c, end)) < 0)
		goto done;
	if (past) {
		rc = udr__error_set(UDR_ECORRUPT, "checkpoint %llu is past the end of the log (%llu): a record was lost",
		                    (unsigned long long)past, (unsigned long long)end);
		goto done;
	}
	if ((rc = version_past(c, end)) < 0)
		goto done;
	if (c->store) {
		/* a gc record past the end was lost after its run removed data:
		 * below it, the versions it swept would look restorable (review
		 * R4); STATE names the last gc record a run linked */
		udr__gcstate st;
		udr__gcstate_init(&st);
		if ((rc = udr__gcstate_load(&st, udr_store_path(c->store))) == 0 && st.gc_seq > end)
			rc = udr__error_set(UDR_ECORRUPT, "gc record %llu is past the end of the log (%llu): it was lost "
			                    "after gc removed the data of versions it names as expired; HEAD can't be reset "
			                    "below it (restore the record from a backup)",
			                    (unsigned long long)st.gc_seq, (unsigned long long)end);
		udr__gcstate_release(&st);
		if (rc < 0)
			goto done;
		rc = 0;
	}
	{
		char text[32];
		int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)end);
		rc = udr__write_file_atomic(c->tmpdir, c->headpath, text, (size_t)n, UDR__PUBLISH_REPLACE, true);
		if (rc > 0)
			rc = 0;
	}
done:
	udr__catalog_unlock(lockfd);
	return rc;
}
