/*
 * log.c - the changelog over commit records: queries whose cost follows
 * what they return, time travel by sequence number or by time (binary
 * searches: commit times never decrease and a table's versions are made by
 * increasing commits), and waiting for new commits (inotify, else polling).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

int udr_time_parse(int64_t *out, const char *text)
{
	char q[100];
	if (!out || !text)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_time_parse");
	if (udr__parse_time(out, text) < 0) {
		udr__quote(q, sizeof(q), text);
		return udr__error_set(UDR_EINVAL,
		                      "invalid time '%s': expected RFC 3339 like 2026-11-01T12:00:00Z or "
		                      "2026-11-01T13:00:00+01:00 (no zone: UTC), or a date (the end of that day, UTC)", q);
	}
	return 0;
}

void udr_time_format(char *out, size_t outsz, int64_t ms)
{
	udr__format_time(out, outsz, ms);
}

void udr_commit_array_free(udr_commit **a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		udr_commit_free(a[i]);
	free(a);
}

/* Commit seq of version `version` of table (must be committed). */
static int version_seq(uint64_t *seq, udr_catalog *c, const char *table, uint64_t version)
{
	udr_version *v = NULL;
	*seq = 0;
	int rc = udr__version_load(&v, c, table, version);
	if (rc == 0)
		return udr__error_set(UDR_ECORRUPT, "table %s: version %llu vanished while reading", table,
		                      (unsigned long long)version);
	if (rc < 0)
		return rc;
	*seq = v->commit_seq;
	udr_version_free(v);
	return 0;
}

/* Largest version of table (<= latest) made by a commit <= seq; 0 if none. */
int udr__version_at_seq(uint64_t *out, udr_catalog *c, const char *table, uint64_t latest, uint64_t seq)
{
	return udr__version_at_seq_on(out, c, table, latest, seq, "main");
}

int udr__version_at_seq_on(uint64_t *out, udr_catalog *c, const char *table, uint64_t latest, uint64_t seq,
                           const char *branch)
{
	uint64_t lo = 0, hi, s = 0;
	udr__tentry e;
	int rc;
	*out = 0;
	if (latest == 0)
		return 0;
	/* the state at seq answers in one or two reads (format-2 records) */
	rc = udr__state_lookup_ex(&e, c, seq, table, branch);
	if (rc == 0 || rc == 1) {
		*out = e.version < latest ? e.version : latest;
		return 0;
	}
	if (rc == UDR_ENOTFOUND && branch[0] != '@' && strcmp(branch, "main") != 0)
		return rc; /* no such branch at seq */
	if (rc == UDR_ENOTFOUND)
		udr_error_clear(); /* seq past the head: as for any seq >= latest's commit */
	else if (rc < 0)
		return rc;
	if ((rc = version_seq(&s, c, table, latest)) < 0)
		return rc;
	if (s <= seq) {
		*out = latest;
		return 0;
	}
	hi = latest; /* invariant: seq(lo) <= seq < seq(hi), seq(0) = 0 */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((rc = version_seq(&s, c, table, mid)) < 0)
			return rc;
		if (s <= seq)
			lo = mid;
		else
			hi = mid;
	}
	*out = lo;
	return 0;
}

int udr_catalog_get_version_at_seq(udr_version **out, udr_catalog *c, const char *table, uint64_t seq)
{
	uint64_t latest, v;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_get_version_at_seq");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0 || (rc = udr__table_latest(&latest, c, table)) < 0 ||
	    (rc = udr__version_at_seq(&v, c, table, latest, seq)) < 0)
		return rc;
	if (v == 0)
		return udr__error_set(UDR_ENOTFOUND, "table %s had no version at commit %llu", table,
		                      (unsigned long long)seq);
	return udr_catalog_get_version(out, c, table, v);
}

static int commit_time(int64_t *t, udr_catalog *c, uint64_t seq)
{
	udr_commit *cm = NULL;
	int rc = udr__commit_read(&cm, c, seq);
	if (rc < 0)
		return rc;
	*t = cm->time_ms;
	udr_commit_free(cm);
	return 0;
}

int udr_catalog_seq_at_time(uint64_t *out, udr_catalog *c, int64_t ms)
{
	uint64_t head, lo = 0, hi;
	int64_t t;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_seq_at_time");
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		return rc;
	*out = 0;
	if (head == 0)
		return 0;
	if ((rc = commit_time(&t, c, head)) < 0)
		return rc;
	if (t <= ms) {
		*out = head;
		return 0;
	}
	hi = head; /* time(lo) <= ms < time(hi) */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((rc = commit_time(&t, c, mid)) < 0)
			return rc;
		if (t <= ms)
			lo = mid;
		else
			hi = mid;
	}
	*out = lo;
	return 0;
}

int udr_catalog_get_version_at_time(udr_version **out, udr_catalog *c, const char *table, int64_t ms)
{
	uint64_t seq;
	int rc;
	char when[40];
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_get_version_at_time");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0 || (rc = udr_catalog_seq_at_time(&seq, c, ms)) < 0)
		return rc;
	rc = udr_catalog_get_version_at_seq(out, c, table, seq);
	if (rc == UDR_ENOTFOUND) {
		udr__format_time(when, sizeof(when), ms);
		return udr__error_set(UDR_ENOTFOUND, "table %s had no version at %s", table, when);
	}
	return rc;
}

/* ---- log queries -------------------------------------------------------- */

struct out_list {
	udr_commit **items;
	size_t n, cap;
};

static int out_push(struct out_list *l, udr_commit *cm)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		udr_commit **p = realloc(l->items, cap * sizeof(*p));
		if (!p) {
			udr_commit_free(cm);
			return udr__error_oom();
		}
		l->items = p;
		l->cap = cap;
	}
	l->items[l->n++] = cm;
	return 0;
}

/* Read commit seq and keep it if the branch matches; 1 kept, 0 skipped. */
static int take(struct out_list *l, udr_catalog *c, uint64_t seq, const udr_log_query *q)
{
	udr_commit *cm = NULL;
	int rc = udr__commit_read(&cm, c, seq);
	if (rc < 0)
		return rc;
	if (q->branch && strcmp(cm->branch, q->branch) != 0) {
		udr_commit_free(cm);
		return 0;
	}
	rc = out_push(l, cm);
	return rc < 0 ? rc : 1;
}

/* A cursor over one table's versions whose commits fall in [lo, hi]. */
struct cursor {
	const char *table;
	uint64_t version; /* current version, 0 when exhausted */
	uint64_t latest;
	uint64_t seq;     /* its commit */
};

static int cursor_load(struct cursor *k, udr_catalog *c, uint64_t lo, uint64_t hi)
{
	int rc;
	if (k->version == 0 || k->version > k->latest) {
		k->version = 0;
		return 0;
	}
	if ((rc = version_seq(&k->seq, c, k->table, k->version)) < 0)
		return rc;
	if (k->seq < lo || k->seq > hi)
		k->version = 0;
	return 0;
}

/*
 * A merge that takes a table's version from its source makes no version of
 * its own, so the version walk cannot see it, yet it changes the table on
 * its branch: its window then names the table with the merge's own seq
 * (FORMAT.md, window).  Only stores that branched have merges; there the
 * log is scanned for them, one record at a time, no further than the
 * version walk's next answer (or the range's end when it has none).
 */
struct merge_scan {
	bool on;
	uint64_t pos;   /* the next record to look at */
	uint64_t found; /* a merge that took one of the tables (0: none yet) */
};

static bool merge_takes(const udr__record *r, const udr_log_query *q)
{
	if (r->legacy || !r->cm->op || strcmp(r->cm->op, "merge") != 0 ||
	    (q->branch && strcmp(r->cm->branch, q->branch) != 0))
		return false;
	for (size_t i = 0; i < q->ntables; i++) {
		const udr__tentry *e = udr__tstate_find(&r->window, q->tables[i]);
		if (e && e->seq == r->cm->seq)
			return true;
	}
	return false;
}

/* Might record seq be a merge?  Its bytes are looked at before they are
 * parsed (a record of a store with many tables is a large window: the scan
 * of 20,000 such records took 1.25 s parsed, 0.11 s looked at): a merge
 * record holds the JSON string "merge" (its op), however it is spaced, or
 * a \u escape that could spell it; a message "merge" only costs a parse.
 * A record that cannot be read is "maybe", for udr__record_read to report. */
static bool maybe_merge(udr_catalog *c, uint64_t seq)
{
	char *path = udr__commit_path(c, seq), *text = NULL;
	size_t len = 0;
	bool maybe = true;
	if (path && udr__read_file(&text, &len, path, UDR__MAX_META_FILE) == 0)
		maybe = memmem(text, len, "\"merge\"", 7) != NULL || memmem(text, len, "\\u", 2) != NULL;
	udr_error_clear();
	free(text);
	free(path);
	return maybe;
}

/* Scan records strictly beyond bound (newest first: above it; else below
 * it) for the next merge that took one of q's tables. */
static int merge_scan_to(struct merge_scan *m, udr_catalog *c, const udr_log_query *q, uint64_t lo, uint64_t hi,
                         uint64_t bound)
{
	while (m->on && !m->found && m->pos >= lo && m->pos <= hi &&
	       (q->newest_first ? m->pos > bound : m->pos < bound)) {
		udr__record r;
		int rc;
		if (maybe_merge(c, m->pos)) {
			if ((rc = udr__record_read(&r, c, m->pos)) < 0)
				return rc;
			if (merge_takes(&r, q))
				m->found = m->pos;
			udr__record_free(&r);
		}
		m->pos = q->newest_first ? m->pos - 1 : m->pos + 1;
	}
	return 0;
}

static int query_tables(struct out_list *l, udr_catalog *c, const udr_log_query *q, uint64_t lo, uint64_t hi)
{
	struct cursor *ks = calloc(q->ntables, sizeof(*ks));
	struct merge_scan ms = {udr__catalog_branched(c), q->newest_first ? hi : lo, 0};
	uint64_t last_emitted = 0;
	int rc = 0;
	if (!ks)
		return udr__error_oom();
	for (size_t i = 0; i < q->ntables; i++) {
		uint64_t v;
		ks[i].table = q->tables[i];
		if ((rc = udr__table_latest(&ks[i].latest, c, ks[i].table)) < 0)
			goto done;
		/* the log is every branch's: walk the table's version numbers,
		 * allocated in commit order over all branches */
		if (q->newest_first) {
			if ((rc = udr__version_at_seq_on(&v, c, ks[i].table, ks[i].latest, hi, UDR__VIEW_ALLOC)) < 0)
				goto done;
		} else {
			/* first version whose commit >= lo */
			if ((rc = udr__version_at_seq_on(&v, c, ks[i].table, ks[i].latest, lo - 1, UDR__VIEW_ALLOC)) < 0)
				goto done;
			v = v + 1;
		}
		ks[i].version = v;
		if ((rc = cursor_load(&ks[i], c, lo, hi)) < 0)
			goto done;
	}
	while (!q->limit || l->n < q->limit) {
		size_t best = q->ntables;
		uint64_t seq;
		for (size_t i = 0; i < q->ntables; i++) {
			if (!ks[i].version)
				continue;
			if (best == q->ntables || (q->newest_first ? ks[i].seq > ks[best].seq : ks[i].seq < ks[best].seq))
				best = i;
		}
		if (best < q->ntables)
			seq = ks[best].seq;
		else
			seq = q->newest_first ? lo - 1 : hi + 1; /* the scan's bound: the range's end */
		if ((rc = merge_scan_to(&ms, c, q, lo, hi, seq)) < 0)
			goto done;
		if (ms.found && (best == q->ntables || (q->newest_first ? ms.found > seq : ms.found < seq)))
			seq = ms.found;
		else if (best == q->ntables)
			break;
		if (seq != last_emitted && (rc = take(l, c, seq, q)) < 0)
			goto done;
		last_emitted = seq;
		if (ms.found == seq)
			ms.found = 0;
		for (size_t i = 0; i < q->ntables; i++) {
			if (ks[i].version && ks[i].seq == seq) {
				ks[i].version = q->newest_first ? ks[i].version - 1 : ks[i].version + 1;
				if ((rc = cursor_load(&ks[i], c, lo, hi)) < 0)
					goto done;
			}
		}
	}
	rc = 0;
done:
	free(ks);
	return rc;
}

int udr_catalog_log(udr_commit ***out, size_t *count, udr_catalog *c, const udr_log_query *query)
{
	udr_log_query dq = UDR_LOG_QUERY_INIT;
	const udr_log_query *q = query ? query : &dq;
	struct out_list l = {NULL, 0, 0};
	uint64_t head, lo, hi;
	int rc;
	if (!out || !count || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_catalog_log");
	if (q->version != UDR_LOG_QUERY_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown log query version %u", q->version);
	for (size_t i = 0; q->tables && i < q->ntables; i++)
		if ((rc = udr_table_name_check(q->tables[i])) < 0)
			return rc;
	/* a branch: one that exists, or existed (its commits stay in the log);
	 * a mistyped name was an empty log, exit 0 */
	if (q->branch && strcmp(q->branch, "main") != 0) {
		uint64_t bh = 0;
		if ((rc = udr_ref_name_check(q->branch)) < 0)
			return rc;
		if ((rc = udr__branch_head(&bh, c, q->branch, 0)) == UDR_ENOTFOUND) {
			udr_reflog_entry *e = NULL;
			size_t ne = 0;
			udr_error_clear();
			rc = udr_branch_reflog(&e, &ne, c, q->branch, 1);
			udr_reflog_free(e, ne);
			if (rc == UDR_ENOTFOUND)
				return udr__error_set(UDR_ENOTFOUND, "no branch '%s' (it never existed)", q->branch);
		}
		if (rc < 0)
			return rc;
	}
	if ((rc = udr__catalog_true_head(&head, c)) < 0)
		return rc;
	/* since_seq at or past the head: nothing (UINT64_MAX + 1 was commit 0,
	 * "missing": an integrity error on a sound store); since_ms at the
	 * first millisecond: no bound (INT64_MIN - 1 was the last one) */
	lo = q->since_seq >= head ? head + 1 : q->since_seq + 1;
	hi = head;
	if (q->since_ms && q->since_ms != INT64_MIN && lo <= hi) {
		uint64_t s;
		if ((rc = udr_catalog_seq_at_time(&s, c, q->since_ms - 1)) < 0)
			return rc;
		if (s + 1 > lo)
			lo = s + 1;
	}
	if (lo <= hi) {
		if (q->tables && q->ntables) {
			rc = query_tables(&l, c, q, lo, hi);
		} else if (q->newest_first) {
			for (uint64_t s = hi; s >= lo && (!q->limit || l.n < q->limit); s--)
				if ((rc = take(&l, c, s, q)) < 0)
					break;
		} else {
			for (uint64_t s = lo; s <= hi && (!q->limit || l.n < q->limit); s++)
				if ((rc = take(&l, c, s, q)) < 0)
					break;
		}
		if (rc < 0) {
			udr_commit_array_free(l.items, l.n);
			return rc;
		}
	}
	*out = l.items;
	*count = l.n;
	return 0;
}

/* ---- waiting for commits ------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int udr_catalog_wait(uint64_t *head_out, udr_catalog *c, uint64_t after, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	uint64_t head;
	int ifd, rc;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument: catalog is NULL");
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	/* a commit creates its name in log/ and then (format 2, once durable)
	 * overwrites HEAD (or renames a new one into place): readers only see
	 * it after the second */
	if (ifd >= 0 && (inotify_add_watch(ifd, c->logdir, IN_CREATE | IN_MOVED_TO) < 0 ||
	                 inotify_add_watch(ifd, c->path, IN_MODIFY | IN_MOVED_TO) < 0)) {
		close(ifd);
		ifd = -1;
	}
	for (;;) {
		int wait_ms = 50;
		if ((rc = udr__catalog_true_head(&head, c)) < 0)
			break;
		if (head > after) {
			rc = 1;
			break;
		}
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			if (left <= 0) {
				rc = 0;
				break;
			}
			if (ifd < 0 && left < wait_ms)
				wait_ms = (int)left;
			else if (ifd >= 0)
				wait_ms = left > 1000 ? 1000 : (int)left;
		} else if (ifd >= 0) {
			wait_ms = 1000; /* re-check now and then even with inotify */
		}
		if (ifd >= 0) {
			struct pollfd p = {ifd, POLLIN, 0};
			if (poll(&p, 1, wait_ms) > 0) {
				char buf[4096];
				while (read(ifd, buf, sizeof(buf)) > 0)
					;
			}
		} else {
			struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	if (ifd >= 0)
		close(ifd);
	if (rc >= 0 && head_out)
		*head_out = head;
	return rc;
}
