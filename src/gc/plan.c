/*
 * plan.c - the retention plan (docs/GC.md 1.2, 1.3): apply a rule to every
 * chain of table versions along the live branches and report which versions
 * it would expire and why the others stay (read-only); udr_retention_apply
 * then links the expire record (GC.md 1.4) through the commit step.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <udr/gc.h>
#include <udr/log.h>
#include <udr/refs.h>

#include "catalog/catalog_internal.h"
#include "catalog/lease.h"
#include "util/util.h"

/* What the plan decided for one version of a table. */
enum {
	V_UNREACHED = 0, /* on no live branch's chain: kept when its commit is in a live ref's history
	                  * (a merge took the other side's version), or when the orphan rule keeps it */
	V_EXPIRE,        /* on a chain, not kept by its rule (yet) */
	V_PINNED,        /* would expire, but a live pin reaches it (GC.md 2.3): the expire step keeps it */
	V_POLICY,        /* kept by the rule on some chain */
	V_OTHER_BRANCH,  /* on a chain of a branch the plan does not cover */
	V_MERGE_BASE,    /* in the snapshot of a merge base of two live branches (1.3 (3)) */
	V_LATEST,        /* the table's highest allocated version (1.3 (4)) */
	V_TAG,           /* in a tag's snapshot (1.3 (2)) */
	V_HEAD,          /* in a branch head's snapshot (1.3 (1)) */
	V_GONE,          /* expired already (an earlier expire record) */
};

static int report_pins(json_t *rep, const udr__lease_set *pins);

/* Raise version v's state to s when stronger. */
static void mark(unsigned char *st, uint64_t n, uint64_t v, unsigned char s)
{
	if (v >= 1 && v <= n && st[v] < s)
		st[v] = s;
}

/* A direct-mapped cache of commit times (records are immutable): chains
 * of several branches share their older versions, so their records are
 * read once, in constant time a lookup. */
#define TCACHE_SLOTS 4096
typedef struct tcache {
	uint64_t seq[TCACHE_SLOTS]; /* 0: empty */
	int64_t ms[TCACHE_SLOTS];
} tcache;

static int commit_time(int64_t *out, tcache *tc, udr_catalog *c, uint64_t seq)
{
	udr_commit *cm = NULL;
	size_t slot = (size_t)(seq % TCACHE_SLOTS);
	int rc;

	if (seq != 0 && tc->seq[slot] == seq) {
		*out = tc->ms[slot];
		return 0;
	}
	if ((rc = udr_catalog_get_commit(&cm, c, seq)) < 0)
		return rc;
	*out = cm->time_ms;
	udr_commit_free(cm);
	tc->seq[slot] = seq;
	tc->ms[slot] = *out;
	return 0;
}

/* Table's entry in a ref's snapshot (NULL: absent). */
static const udr_table_ref *snap_entry(const udr_table_ref *s, size_t n, const char *table)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].table, table) == 0)
			return &s[i];
	return NULL;
}

/* Version of table in a ref's snapshot (0: absent). */
static uint64_t snap_version(const udr_table_ref *s, size_t n, const char *table)
{
	const udr_table_ref *e = snap_entry(s, n, table);
	return e ? e->version : 0;
}

typedef struct refsnap {
	udr_table_ref *s;
	size_t n;
	bool covered; /* branches: the plan applies the rule on this branch */
} refsnap;

/*
 * Walk table's chain from v0 (newest first) and apply the rule.
 *
 * A version another branch made came onto this one by a merge, later than
 * the time the chain takes for it (its making): the version before it on
 * this branch was current until that merge.  The head's own merge is known
 * (put_seq, the record that put v0 there); older ones are not, so a version
 * older than one made elsewhere counts as current until the branch's head
 * record (head_seq), which is no earlier than any merge into it: keep_within
 * keeps it while that is in the window (more than the design keeps, never
 * less; after a merge, time travel into the window read a version that
 * --keep-within had expired and gc then removed; a helper's review).
 */
static int plan_chain(unsigned char *st, uint64_t nv, udr_catalog *c, tcache *tc, const char *table, uint64_t v0,
                      const udr_retention_rule *rule, int64_t now, bool covered, const char *branch,
                      uint64_t put_seq, uint64_t head_seq)
{
	int64_t *t = NULL, head_ms = 0;
	uint64_t *vs = NULL;
	unsigned *keep = NULL;
	bool *after_foreign = NULL, foreign = false;
	size_t n = 0, cap = 0;
	uint64_t v = v0;
	int rc = 0;

	while (v != 0) {
		udr_version *ver = NULL;
		uint64_t parent, seq;

		if (v > nv) {
			rc = udr__error_set(UDR_ECORRUPT, "%s@%" PRIu64 " is beyond the table's highest allocated version %" PRIu64,
			                    table, v, nv);
			goto out;
		}
		if ((rc = udr_catalog_get_version(&ver, c, table, v)) < 0)
			goto out;
		parent = ver->parent;
		seq = ver->commit_seq;
		udr_version_free(ver);
		if (parent >= v) {
			rc = udr__error_set(UDR_ECORRUPT, "%s@%" PRIu64 " names parent %" PRIu64 ", not an older version",
			                    table, v, parent);
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			int64_t *nt = realloc(t, cap * sizeof *t);
			if (!nt) {
				rc = udr__error_oom();
				goto out;
			}
			t = nt;
			uint64_t *nvs = realloc(vs, cap * sizeof *vs);
			if (!nvs) {
				rc = udr__error_oom();
				goto out;
			}
			vs = nvs;
			bool *na = realloc(after_foreign, cap * sizeof *after_foreign);
			if (!na) {
				rc = udr__error_oom();
				goto out;
			}
			after_foreign = na;
		}
		if ((rc = commit_time(&t[n], tc, c, seq)) < 0)
			goto out;
		/* the head: current here since the record that put it here */
		if (n == 0 && put_seq > seq && (rc = commit_time(&t[0], tc, c, put_seq)) < 0)
			goto out;
		after_foreign[n] = foreign;
		if (rule->keep_within_ms >= 0 && branch && !foreign && seq > 0) {
			udr_commit *cm = NULL;
			if ((rc = udr_catalog_get_commit(&cm, c, seq)) < 0)
				goto out;
			foreign = cm->branch && strcmp(cm->branch, branch) != 0;
			udr_commit_free(cm);
		}
		/* the log's time never decreases; a version file claiming a newer
		 * commit than its child's would make the chain's intervals wrong */
		if (n > 0 && t[n] > t[n - 1]) {
			rc = udr__error_set(UDR_ECORRUPT,
			                    "%s@%" PRIu64 " (commit %" PRIu64 ") is newer than its successor %s@%" PRIu64,
			                    table, v, seq, table, vs[n - 1]);
			goto out;
		}
		vs[n++] = v;
		v = parent;
	}
	if (n == 0)
		goto out;
	if (!covered) {
		for (size_t i = 0; i < n; i++)
			mark(st, nv, vs[i], V_OTHER_BRANCH);
		goto out;
	}
	if (!(keep = calloc(n, sizeof *keep))) {
		rc = udr__error_oom();
		goto out;
	}
	if ((rc = udr_retention_keep(keep, t, n, rule, now)) < 0)
		goto out;
	if (rule->keep_within_ms >= 0 && head_seq > 0 && (rc = commit_time(&head_ms, tc, c, head_seq)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (after_foreign[i] && rule->keep_within_ms >= 0 &&
		    (now < INT64_MIN + rule->keep_within_ms || now - rule->keep_within_ms <= head_ms))
			keep[i] |= UDR_KEEP_WITHIN;
	for (size_t i = 0; i < n; i++)
		mark(st, nv, vs[i], keep[i] ? V_POLICY : V_EXPIRE);
out:
	free(t);
	free(vs);
	free(keep);
	free(after_foreign);
	return rc;
}

/* What the orphan rule (GC.md 1.2) needs, built once a plan meets a
 * version on no live chain: the commits in the history of a live ref
 * (reachable from a branch head or a tag through parents), and the time
 * of the newest record that moved a ref away or removed it (reset,
 * delete, untag): an orphan stopped being current at that time at the
 * latest, so keeping it while that time is within keep_within keeps at
 * least what the design's t(i-1) keeps. */
typedef struct reach {
	unsigned char *bits; /* [head + 1]: 1 when in a live ref's history */
	int64_t moved_ms;    /* 0: no such record */
	bool built;
} reach;

static int reach_build(reach *r, udr_catalog *c, uint64_t head, const udr_ref *refs, size_t nrefs)
{
	int rc = 0;
	r->built = true;
	if (!(r->bits = calloc((size_t)head + 1, 1)))
		return udr__error_oom();
	for (size_t i = 0; i < nrefs; i++)
		if (refs[i].commit >= 1 && refs[i].commit <= head)
			r->bits[refs[i].commit] = 1;
	/* parents are older records: one pass from the head down */
	for (uint64_t s = head; s >= 1 && rc == 0; s--) {
		udr_commit *cm = NULL;
		if ((rc = udr_catalog_get_commit(&cm, c, s)) < 0)
			break;
		if (r->bits[s])
			for (size_t k = 0; k < cm->nparents; k++)
				if (cm->parents[k] >= 1 && cm->parents[k] < s)
					r->bits[cm->parents[k]] = 1;
		if (cm->op && (strcmp(cm->op, "reset") == 0 || strcmp(cm->op, "delete") == 0 ||
		               strcmp(cm->op, "untag") == 0) && cm->time_ms > r->moved_ms)
			r->moved_ms = cm->time_ms;
		udr_commit_free(cm);
	}
	return rc;
}

/* Apply the orphan rule to table's versions on no live chain: those whose
 * commit no live ref's history holds expire unless keep_within keeps them
 * (the rule's other keys need a chain). */
static int plan_orphans(unsigned char *st, uint64_t nv, reach *r, udr_catalog *c, const char *table, uint64_t head,
                        const udr_ref *refs, size_t nrefs, const udr_retention_rule *rule, int64_t now)
{
	int rc;
	for (uint64_t v = 1; v <= nv; v++) {
		udr_version *ver = NULL;
		uint64_t seq;
		if (st[v] != V_UNREACHED)
			continue;
		if (!r->built && (rc = reach_build(r, c, head, refs, nrefs)) < 0)
			return rc;
		if ((rc = udr_catalog_get_version(&ver, c, table, v)) < 0) {
			if (rc != UDR_ENOTFOUND)
				return rc;
			udr_error_clear(); /* a number never committed: nothing to expire */
			continue;
		}
		seq = ver->commit_seq;
		udr_version_free(ver);
		if (seq == 0 || seq > head || r->bits[seq])
			continue;
		if (rule->keep_within_ms > 0 && r->moved_ms >= now - rule->keep_within_ms)
			continue;
		st[v] = V_EXPIRE;
	}
	return 0;
}

/* The wall clock, or in test builds UDR_GC_NOW (ms since the epoch or a
 * time udr_time_parse reads). */
static int gc_now(int64_t *out)
{
	struct timespec ts;
#ifdef UDR_FAULT_INJECTION
	const char *env = getenv("UDR_GC_NOW");
	if (env && *env) {
		char *end;
		long long v;
		errno = 0;
		v = strtoll(env, &end, 10);
		if (*end == '\0' && errno == 0 && env[0] != '-' && env[0] != '+' && env[0] != ' ') {
			*out = v;
			return 0;
		}
		if (udr_time_parse(out, env) == 0)
			return 0;
		return udr__error_set(UDR_EINVAL, "UDR_GC_NOW: not ms since the epoch nor a time: %s", env);
	}
#endif
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return udr__error_os(errno, "clock_gettime");
	*out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append [a, b] to a JSON array of ranges. */
static int add_range(json_t *arr, uint64_t a, uint64_t b)
{
	json_t *p = json_pack("[II]", (json_int_t)a, (json_int_t)b);
	return p && json_array_append_new(arr, p) == 0 ? 0 : udr__error_oom();
}

/* The rules of a plan: one rule for every chain, or (UDR_RETENTION_POLICY)
 * the stored policy at the plan's head, whose default `over` replaces when
 * given (GC.md 1.1). */
typedef struct rules {
	const udr_retention_rule *one; /* one rule for all (no policy mode) */
	udr_retention_policy *policy;  /* the stored policy (NULL: none) */
	uint64_t policy_seq;           /* its retention record (0: none) */
	const udr_retention_rule *over; /* policy mode: replaces the default */
} rules;

/* The rule of table's chain on branch. */
static int chain_rule(udr_retention_rule *out, const rules *R, const char *table, const char *branch)
{
	const char *src = "none";
	udr_retention_rule all = UDR_RETENTION_RULE_INIT;
	int rc;

	if (R->one) {
		*out = *R->one;
		return 0;
	}
	*out = all;
	if (R->policy && (rc = udr_retention_policy_rule(out, &src, R->policy, table, branch)) < 0)
		return rc;
	if (R->over && (strcmp(src, "default") == 0 || strcmp(src, "none") == 0))
		*out = *R->over;
	return 0;
}

/* The rule orphans get (GC.md 1.1 "orphans": null): the applicable
 * default's keep_within.  0 and *out set, or 1: orphans are all kept (no
 * default, or one with no key, which keeps everything). */
static int orphan_rule(udr_retention_rule *out, const rules *R)
{
	if (R->one)
		*out = *R->one;
	else if (R->over)
		*out = *R->over;
	else if (!R->policy || udr_retention_policy_default(out, R->policy) == 0)
		return 1;
	if (out->keep_last == 0 && out->keep_within_ms < 0 && out->keep_hourly == 0 && out->keep_daily == 0 &&
	    out->keep_weekly == 0 && out->keep_monthly == 0 && out->keep_yearly == 0)
		return 1;
	return 0;
}

static int plan_run(char **out_json, udr_catalog *c, rules *R, const char *table, const char *branch,
                    int64_t now_ms);

int udr_retention_plan(char **out_json, udr_catalog *c, const udr_retention_rule *rule, const char *table,
                       const char *branch, int64_t now_ms)
{
	return udr_retention_plan_ex(out_json, c, rule, table, branch, now_ms, 0);
}

int udr_retention_plan_ex(char **out_json, udr_catalog *c, const udr_retention_rule *rule, const char *table,
                          const char *branch, int64_t now_ms, unsigned flags)
{
	rules R;
	int rc;

	if (out_json)
		*out_json = NULL;
	if (flags & ~(unsigned)UDR_RETENTION_POLICY)
		return udr__error_set(UDR_EINVAL, "retention plan: unknown flags 0x%x", flags);
	if (!(flags & UDR_RETENTION_POLICY) && !rule)
		return udr__error_set(UDR_EINVAL, "retention plan: no rule");
	if (rule && (rc = udr_retention_rule_check(rule)) < 0)
		return rc;
	memset(&R, 0, sizeof R);
	if (flags & UDR_RETENTION_POLICY)
		R.over = rule;
	else
		R.one = rule;
	rc = plan_run(out_json, c, &R, table, branch, now_ms);
	udr_retention_policy_free(R.policy);
	return rc;
}

static int plan_run(char **out_json, udr_catalog *c, rules *R, const char *table, const char *branch,
                    int64_t now_ms)
{
	udr_retention_rule orule;
	bool orphans_kept = false;
	char **tables = NULL;
	size_t ntables = 0, nrefs = 0;
	udr_ref *refs = NULL;
	refsnap *snaps = NULL, *mb = NULL;
	size_t nmb = 0;
	tcache *tc = NULL;
	json_t *rep = NULL, *exp_tables = NULL, *ranges = NULL;
	uint64_t head = 0, total_exp = 0, gone = 0, kept[V_HEAD + 1] = { 0 };
	udr__record hr;
	int64_t head_ms = 0;
	bool branch_found = branch == NULL;
	reach rch = { NULL, 0, false };
	char text[320]; /* "policy S, default " and a rule (< 256) */
	udr__lease_set pins;
	int rc;

	if (!out_json || !c)
		return udr__error_set(UDR_EINVAL, "retention plan: no output or catalog");
	*out_json = NULL;
	if (table && (rc = udr_table_name_check(table)) < 0)
		return rc;
	if (branch && (rc = udr_ref_name_check(branch)) < 0)
		return rc;
	if (now_ms == UDR_RETENTION_NOW && (rc = gc_now(&now_ms)) < 0)
		return rc;
	memset(&hr, 0, sizeof hr);
	memset(&pins, 0, sizeof pins);
	if (!(tc = calloc(1, sizeof *tc)))
		return udr__error_oom();
	if ((rc = udr_catalog_head(&head, c)) < 0)
		goto out;
	/* the live pins, for the report: the expire step reads them again
	 * after its handshake and keeps what they reach then (a pin taken
	 * between the two is kept, not counted here) */
	if ((rc = udr__leases_list(&pins, c->path)) < 0)
		goto out;
	if (head > 0) {
		if ((rc = commit_time(&head_ms, tc, c, head)) < 0 || (rc = udr__record_read(&hr, c, head)) < 0)
			goto out;
		/* the policy in force at the head planned at */
		if (!R->one && (rc = udr__retention_load(&R->policy, &R->policy_seq, c, head)) < 0)
			goto out;
	}
	orphans_kept = orphan_rule(&orule, R) == 1;
	/* now is never before the head record's time (GC.md 4.6) */
	if (now_ms < head_ms)
		now_ms = head_ms;
	udr__test_pause("plan-head"); /* tests: commits linked after the plan read head */
	/* refs and their snapshots as of head, not of a later head: a commit
	 * linked meanwhile must not show versions beyond what head allocated */
	if ((rc = udr__catalog_refs_at(&refs, &nrefs, c, 0, head)) < 0)
		goto out;
	if (!(snaps = calloc(nrefs ? nrefs : 1, sizeof *snaps))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t i = 0; i < nrefs; i++) {
		char ref[40];
		bool is_branch = refs[i].kind == UDR_REF_BRANCH;

		if (is_branch && branch && strcmp(refs[i].name, branch) == 0)
			branch_found = true;
		if (head == 0 || refs[i].commit == 0) {
			continue; /* main before the first commit */
		}
		snprintf(ref, sizeof ref, "commit:%" PRIu64, refs[i].commit);
		rc = udr_catalog_snapshot(&snaps[i].s, &snaps[i].n, c, ref);
		if (rc < 0)
			goto out;
		snaps[i].covered = is_branch && (!branch || strcmp(refs[i].name, branch) == 0);
	}
	/* merge bases of each pair of live branches (GC.md 1.3 (3), pairwise:
	 * a subset of the design's fork points, the ones a merge of two of
	 * today's heads reads) */
	for (size_t i = 0; i < nrefs && head > 0; i++) {
		if (refs[i].kind != UDR_REF_BRANCH || refs[i].commit == 0)
			continue;
		for (size_t j = i + 1; j < nrefs; j++) {
			uint64_t *bases = NULL;
			size_t nb = 0;
			if (refs[j].kind != UDR_REF_BRANCH || refs[j].commit == 0)
				continue;
			if ((rc = udr__merge_bases(&bases, &nb, c, refs[i].commit, refs[j].commit)) < 0)
				goto out;
			for (size_t k = 0; k < nb && rc == 0; k++) {
				char ref[40];
				refsnap *ns = realloc(mb, (nmb + 1) * sizeof *mb);
				if (!ns) {
					rc = udr__error_oom();
					break;
				}
				mb = ns;
				memset(&mb[nmb], 0, sizeof mb[nmb]);
				snprintf(ref, sizeof ref, "commit:%" PRIu64, bases[k]);
				if ((rc = udr_catalog_snapshot(&mb[nmb].s, &mb[nmb].n, c, ref)) == 0)
					nmb++;
			}
			free(bases);
			if (rc < 0)
				goto out;
		}
	}
	if (!branch_found) {
		char q[300];
		udr__quote(q, sizeof q, branch);
		rc = udr__error_set(UDR_ENOTFOUND, "branch '%s' not found", q);
		goto out;
	}
	if (table) {
		uint64_t n;
		if ((rc = udr__table_allocated(&n, c, head, table)) < 0)
			goto out;
		if (n == 0) {
			char q[300];
			udr__quote(q, sizeof q, table);
			rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found", q);
			goto out;
		}
		if (!(tables = calloc(1, sizeof *tables)) || !(tables[0] = strdup(table))) {
			rc = udr__error_oom();
			goto out;
		}
		ntables = 1;
	} else if ((rc = udr_catalog_list_tables(&tables, &ntables, c)) < 0) {
		goto out;
	}

	if (!(rep = json_object()) || !(exp_tables = json_object()) || !(ranges = json_object())) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t ti = 0; ti < ntables; ti++) {
		const char *T = tables[ti];
		uint64_t nv, texp = 0;
		unsigned char *st;
		json_t *arr;

		if ((rc = udr__table_allocated(&nv, c, head, T)) < 0)
			goto out;
		if (nv == 0)
			continue;
		if (nv > SIZE_MAX - 1 || !(st = calloc((size_t)nv + 1, 1))) {
			rc = udr__error_oom();
			goto out;
		}
		for (size_t i = 0; i < nrefs && rc == 0; i++) {
			uint64_t v0 = snaps[i].s ? snap_version(snaps[i].s, snaps[i].n, T) : 0;
			if (v0 == 0 || refs[i].kind != UDR_REF_BRANCH)
				continue;
			udr_retention_rule crule;
			if ((rc = chain_rule(&crule, R, T, refs[i].name)) < 0)
				break;
			rc = plan_chain(st, nv, c, tc, T, v0, &crule, now_ms, snaps[i].covered, refs[i].name,
			                snap_entry(snaps[i].s, snaps[i].n, T)->commit, refs[i].commit);
		}
		if (rc < 0) {
			free(st);
			goto out;
		}
		/* always kept (GC.md 1.3): heads, tags, the latest allocated */
		mark(st, nv, nv, V_LATEST);
		for (size_t i = 0; i < nmb; i++)
			mark(st, nv, snap_version(mb[i].s, mb[i].n, T), V_MERGE_BASE);
		for (size_t i = 0; i < nrefs; i++) {
			uint64_t v = snaps[i].s ? snap_version(snaps[i].s, snaps[i].n, T) : 0;
			mark(st, nv, v, refs[i].kind == UDR_REF_BRANCH ? V_HEAD : V_TAG);
		}
		/* orphans (a plan on every branch only: one restricted to a
		 * branch keeps what is not on it) */
		if (!branch && head > 0 && !orphans_kept &&
		    (rc = plan_orphans(st, nv, &rch, c, T, head, refs, nrefs, &orule, now_ms)) < 0) {
			free(st);
			goto out;
		}
		/* what the live pins reach is kept (a pin that cannot be
		 * resolved: the whole table, as the expire step does; a damaged
		 * lease of a live process stops the step, which says so) */
		if (pins.n > 0) {
			uint64_t *pv = NULL;
			size_t np = 0;
			int pr = udr__expire_pinned(&pv, &np, c, &pins, head, T, nv);
			if (pr < 0) {
				free(st);
				rc = pr;
				goto out;
			}
			for (uint64_t v = 1; pr == 1 && v <= nv; v++)
				if (st[v] == V_EXPIRE)
					st[v] = V_PINNED;
			for (size_t k = 0; k < np; k++)
				if (pv[k] >= 1 && pv[k] <= nv && st[pv[k]] == V_EXPIRE)
					st[pv[k]] = V_PINNED;
			free(pv);
		}
		/* versions an earlier expire record took: neither expired now
		 * nor kept (a head never is one: the commit step refuses both) */
		if (head > 0) {
			udr__xset set;
			uint64_t from;
			if ((rc = udr__xset_at(&set, &from, c, &hr, T)) < 0) {
				free(st);
				goto out;
			}
			for (size_t i = 0; i < set.n; i++)
				for (uint64_t v = set.r[i].first; v <= set.r[i].last && v <= nv; v++)
					st[v] = V_GONE;
			udr__xset_free(&set);
		}
		if (!(arr = json_array())) {
			free(st);
			rc = udr__error_oom();
			goto out;
		}
		for (uint64_t v = 1; v <= nv && rc == 0; v++) {
			if (st[v] == V_GONE) {
				gone++;
				continue;
			}
			if (st[v] != V_EXPIRE) {
				kept[st[v]]++;
				continue;
			}
			uint64_t w = v;
			while (w + 1 <= nv && st[w + 1] == V_EXPIRE)
				w++;
			rc = add_range(arr, v, w);
			texp += w - v + 1;
			v = w;
		}
		free(st);
		if (rc == 0 && texp > 0 &&
		    (json_object_set_new(exp_tables, T, json_integer((json_int_t)texp)) < 0 ||
		     json_object_set(ranges, T, arr) < 0))
			rc = udr__error_oom();
		json_decref(arr);
		if (rc < 0)
			goto out;
		total_exp += texp;
	}

	if (R->one) {
		udr_retention_rule_format(text, sizeof text, R->one);
	} else {
		char def[256] = "";
		if (R->over)
			udr_retention_rule_format(def, sizeof def, R->over);
		if (R->policy_seq)
			snprintf(text, sizeof text, "policy %" PRIu64 "%s%s", R->policy_seq, def[0] ? ", default " : "", def);
		else
			snprintf(text, sizeof text, "%s", def[0] ? def : "no policy");
	}
	{
		char when[64];
		json_t *by, *expired, *k;
		uint64_t kept_total = 0;

		for (size_t i = 0; i <= V_HEAD; i++)
			kept_total += kept[i];
		udr_time_format(when, sizeof when, now_ms);
		by = json_pack("{sIsIsIsIsIsIsIsI}", "policy", (json_int_t)kept[V_POLICY], "head",
		               (json_int_t)kept[V_HEAD], "tag", (json_int_t)kept[V_TAG], "merge_base", (json_int_t)kept[V_MERGE_BASE],
		               "pinned", (json_int_t)kept[V_PINNED], "latest", (json_int_t)kept[V_LATEST], "orphan",
		               (json_int_t)kept[V_UNREACHED], "other_branch", (json_int_t)kept[V_OTHER_BRANCH]);
		expired = json_pack("{sIsOsO}", "versions", (json_int_t)total_exp, "tables", exp_tables, "ranges", ranges);
		k = json_pack("{sIso}", "versions", (json_int_t)kept_total, "by_reason", by);
		if (!by || !expired || !k || json_object_set_new(rep, "dry_run", json_true()) < 0 ||
		    json_object_set_new(rep, "now", json_string(when)) < 0 ||
		    json_object_set_new(rep, "now_ms", json_integer(now_ms)) < 0 ||
		    json_object_set_new(rep, "at", json_integer((json_int_t)head)) < 0 ||
		    json_object_set_new(rep, "rule", json_string(text)) < 0 ||
		    json_object_set_new(rep, "policy", json_integer((json_int_t)R->policy_seq)) < 0 ||
		    json_object_set_new(rep, "table", table ? json_string(table) : json_null()) < 0 ||
		    json_object_set_new(rep, "branch", branch ? json_string(branch) : json_null()) < 0 ||
		    json_object_set_new(rep, "expired", expired) < 0 || json_object_set_new(rep, "kept", k) < 0 ||
		    json_object_set_new(rep, "already_expired", json_integer((json_int_t)gone)) < 0) {
			rc = udr__error_oom();
			goto out;
		}
	}
	if ((rc = report_pins(rep, &pins)) < 0)
		goto out;
	if (!(*out_json = json_dumps(rep, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		rc = udr__error_oom();
out:
	json_decref(rep);
	json_decref(exp_tables);
	json_decref(ranges);
	udr__lease_set_free(&pins);
	for (size_t i = 0; snaps && i < nrefs; i++)
		udr_table_ref_array_free(snaps[i].s, snaps[i].n);
	free(snaps);
	for (size_t i = 0; i < nmb; i++)
		udr_table_ref_array_free(mb[i].s, mb[i].n);
	free(mb);
	udr_ref_array_free(refs, nrefs);
	udr_strarray_free(tables, ntables);
	free(rch.bits);
	free(tc);
	udr__record_free(&hr);
	return rc;
}

/* The plan's expired ranges as an expire request (tables sorted). */
static int request_from_plan(udr__xrec **out, json_t *plan)
{
	json_t *ranges = json_object_get(json_object_get(plan, "expired"), "ranges"), *arr, *p;
	const char **names = NULL;
	const char *key;
	udr__xrec *x;
	size_t n = 0, i;
	int rc = 0;
	*out = NULL;
	if (!(x = calloc(1, sizeof *x)) || !(x->rule = strdup(json_string_value(json_object_get(plan, "rule")))))
		goto oom;
	x->at = (uint64_t)json_integer_value(json_object_get(plan, "at"));
	x->policy = (uint64_t)json_integer_value(json_object_get(plan, "policy"));
	if (json_object_size(ranges) == 0) {
		*out = x;
		return 0;
	}
	if (!(names = calloc(json_object_size(ranges), sizeof *names)) ||
	    !(x->t = calloc(json_object_size(ranges), sizeof *x->t)))
		goto oom;
	json_object_foreach(ranges, key, arr)
		names[n++] = key;
	qsort(names, n, sizeof *names, cmp_name);
	for (size_t t = 0; t < n; t++) {
		udr__xtable *xt = &x->t[x->nt];
		arr = json_object_get(ranges, names[t]);
		if (!(xt->table = strdup(names[t])))
			goto oom;
		x->nt++;
		if (!(xt->ranges = calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof *xt->ranges)))
			goto oom;
		json_array_foreach(arr, i, p) {
			xt->ranges[i][0] = (uint64_t)json_integer_value(json_array_get(p, 0));
			xt->ranges[i][1] = (uint64_t)json_integer_value(json_array_get(p, 1));
		}
		xt->nranges = json_array_size(arr);
	}
	free(names);
	*out = x;
	return rc;
oom:
	free(names);
	udr__xrec_free(x);
	return udr__error_oom();
}

/* The report after the expire step: what the record holds. */
static int report_written(json_t *rep, const udr__record *r, uint64_t seq)
{
	json_t *exp = json_object(), *tables = json_object(), *ranges = json_object(), *recs = json_array();
	int fail = !exp || !tables || !ranges || !recs;
	if (!fail && seq)
		fail |= json_array_append_new(recs, json_integer((json_int_t)seq));
	for (size_t i = 0; !fail && r && r->xrec && i < r->xrec->nt; i++) {
		const udr__xtable *t = &r->xrec->t[i];
		json_t *arr = json_array();
		uint64_t k = 0;
		fail |= !arr;
		for (size_t j = 0; !fail && j < t->nranges; j++) {
			k += t->ranges[j][1] - t->ranges[j][0] + 1;
			fail |= add_range(arr, t->ranges[j][0], t->ranges[j][1]) < 0;
		}
		fail |= json_object_set_new(ranges, t->table, arr);
		fail |= json_object_set_new(tables, t->table, json_integer((json_int_t)k));
	}
	fail |= json_object_set_new(exp, "records", recs);
	fail |= json_object_set_new(exp, "versions",
	                            json_integer((json_int_t)(r && r->xrec ? r->xrec->versions : 0)));
	fail |= json_object_set_new(exp, "tables", tables);
	fail |= json_object_set_new(exp, "ranges", ranges);
	fail |= json_object_set_new(rep, "dry_run", json_false());
	fail |= json_object_set_new(rep, "expired", exp);
	return fail ? udr__error_oom() : 0;
}

/* "pins": the live pins the expire step kept what they reach of:
 * {"pins":N,"pids":[...],"kinds":{"txn":1,"sql":2,...}} (by "what"). */
static int report_pins(json_t *rep, const udr__lease_set *pins)
{
	json_t *o = json_object(), *pids = json_array(), *kinds = json_object();
	int fail = !o || !pids || !kinds;
	for (size_t i = 0; !fail && i < pins->n; i++) {
		const udr__lease_pin *p = &pins->v[i];
		const char *what = p->what ? p->what : "other";
		json_t *k = json_object_get(kinds, what), *x;
		size_t j;
		bool seen = false;
		fail |= json_object_set_new(kinds, what, json_integer(k ? json_integer_value(k) + 1 : 1)) < 0;
		json_array_foreach(pids, j, x) seen |= json_integer_value(x) == p->pid;
		if (!seen)
			fail |= json_array_append_new(pids, json_integer((json_int_t)p->pid)) < 0;
	}
	if (!fail) {
		fail |= json_object_set_new(o, "pins", json_integer((json_int_t)pins->n)) < 0;
		fail |= json_object_set(o, "pids", pids) < 0;
		fail |= json_object_set(o, "kinds", kinds) < 0;
		fail |= json_object_set(rep, "pins", o) < 0;
	}
	json_decref(o);
	json_decref(pids);
	json_decref(kinds);
	return fail ? udr__error_oom() : 0;
}

/* The report of a run a damaged lease held: nothing expired, and why. */
static int held_by_damaged_lease(json_t *rep, const char *path)
{
	char why[1200];
	json_t *exp = json_object();
	snprintf(why, sizeof why,
	         "nothing expired: lease %s of a live process is damaged and may pin any version "
	         "(expiry goes on once its owner exits and the lease is gone)",
	         path ? path : "?");
	if (!exp || json_object_set_new(exp, "records", json_array()) || json_object_set_new(exp, "versions", json_integer(0)) ||
	    json_object_set_new(exp, "tables", json_object()) || json_object_set_new(exp, "ranges", json_object()) ||
	    json_object_set_new(rep, "dry_run", json_false()) || json_object_set_new(rep, "expired", exp) ||
	    json_object_set_new(rep, "held", json_string(why))) {
		return udr__error_oom();
	}
	return 0;
}

int udr_retention_apply(char **report_json, struct udr_catalog *c, const udr_retention_rule *rule, const char *table,
                        unsigned flags)
{
	char *plan = NULL;
	json_t *rep = NULL;
	json_error_t jerr;
	udr__xrec *req = NULL;
	udr__commit_opts o;
	udr__record r;
	uint64_t seq = 0;
	char msg[300];
	int rc;

	if (report_json)
		*report_json = NULL;
	if (flags & ~(unsigned)(UDR_RETENTION_DRY_RUN | UDR_RETENTION_POLICY))
		return udr__error_set(UDR_EINVAL, "retention: unknown flags 0x%x", flags);
	if ((rc = udr_retention_plan_ex(&plan, c, rule, table, NULL, UDR_RETENTION_NOW, flags & UDR_RETENTION_POLICY)) < 0 ||
	    (flags & UDR_RETENTION_DRY_RUN)) {
		if (report_json)
			*report_json = plan;
		else
			free(plan);
		return rc;
	}
	memset(&r, 0, sizeof r);
	if (!(rep = json_loads(plan, 0, &jerr))) {
		rc = udr__error_oom();
		goto out;
	}
	if ((rc = request_from_plan(&req, rep)) < 0)
		goto out;
	udr__test_pause("expire-planned");
	if (req->nt > 0) {
		/* the expire handshake (GC.md 2.2): expiring odd, then the live
		 * pins, then the record, then even; a pinner that wrote its pin
		 * after we read the leases waits for the record and checks
		 * expiry after it */
		udr__lease_set pins;
		int xfd = -1;
		uint64_t h = 0;
		memset(&pins, 0, sizeof pins);
		if ((rc = udr__expiring_begin(&xfd, c)) < 0)
			goto out;
		udr__test_pause("expire-odd");
		if ((rc = udr__leases_collect(&pins, c->path)) < 0) {
			udr__expiring_end(xfd, c);
			goto out;
		}
		udr__test_pause("expire-leases-read");
		if (pins.pins_all) {
			/* a live owner's lease damaged by hand: it may pin anything */
			rc = held_by_damaged_lease(rep, pins.damaged);
			udr__lease_set_free(&pins);
			udr__expiring_end(xfd, c);
			if (rc < 0)
				goto out;
			if (report_json && !(*report_json = json_dumps(rep, JSON_COMPACT | JSON_PRESERVE_ORDER)))
				rc = udr__error_oom();
			goto out;
		}
		/* the commit step checks again under the writer lock what the
		 * linked head keeps (heads, tags, latest, ref records since the
		 * plan's head, the pins) and drops it: the plan read without the
		 * lock */
		if ((rc = report_pins(rep, &pins)) < 0) {
			udr__lease_set_free(&pins);
			udr__expiring_end(xfd, c);
			goto out;
		}
		req->pins = &pins;
		memset(&o, 0, sizeof o);
		o.op = "expire";
		o.expire = req;
		snprintf(msg, sizeof msg, "retention: %s", req->rule);
		o.message = msg;
		rc = udr__catalog_commit_versions(&seq, c, NULL, 0, &o);
		req->pins = NULL;
		udr__lease_set_free(&pins);
		/* pinners read the head after we say even: it must show E */
		while (rc == 0 && seq > 0 && (rc = udr__catalog_true_head(&h, c)) == 0 && h < seq)
			sched_yield();
		udr__test_pause("expire-linked"); /* tests: E linked, expiring still odd */
		udr__expiring_end(xfd, c);
		if (rc < 0)
			goto out;
		if (seq > 0 && (rc = udr__record_read(&r, c, seq)) < 0)
			goto out;
	}
	if ((rc = report_written(rep, seq ? &r : NULL, seq)) < 0)
		goto out;
	if (report_json && !(*report_json = json_dumps(rep, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		rc = udr__error_oom();
out:
	udr__record_free(&r);
	udr__xrec_free(req);
	json_decref(rep);
	free(plan);
	return rc;
}
