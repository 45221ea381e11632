/*
 * policyrec.c - the stored retention policy (docs/GC.md 1.1): a branch-less
 * record with op "retention" holding the policy object, and the global
 * state's "@retention" entry naming the record in force.  The catalog
 * becomes format 5 at the first one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <udr/gc.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

/* Policy keys this version stores but does not apply are refused, never
 * silently ignored (GC.md 1.1 "Built"): undo other than 0s, orphans other
 * than null.  grace is applied by udr_db_gc when no grace is given. */
int udr__retention_check(const char *text)
{
	udr_retention_policy *p = NULL;
	json_t *o, *v;
	int64_t ms = 0;
	int rc;

	if ((rc = udr_retention_policy_parse(&p, text)) < 0)
		return rc;
	udr_retention_policy_free(p);
	if (!(o = json_loads(text, JSON_REJECT_DUPLICATES, NULL)))
		return udr__error_oom(); /* the parser read it */
	rc = 0;
	if ((v = json_object_get(o, "undo")) &&
	         (udr_retention_parse_duration(&ms, json_string_value(v)) < 0 || ms != 0))
		rc = udr__error_set(UDR_EINVAL, "retention policy: \"undo\" other than \"0s\" is not applied yet");
	else if ((v = json_object_get(o, "orphans")) && !json_is_null(v))
		rc = udr__error_set(UDR_EINVAL, "retention policy: an \"orphans\" rule is not applied yet (null: "
		                                "orphans get the default rule's keep_within)");
	json_decref(o);
	return rc;
}

/* The record after pr (r itself, or read) names pr's bytes as its
 * predecessor.  A record's own seal does not tell it from another store's
 * valid record of the same number and history (a file copied over it):
 * its successor's "prev" does, and a policy taken from such a record
 * would expire what the store's own policy keeps (the gc files sweep,
 * tests/stress/test_sweep_gc.py). */
static int chained(udr_catalog *c, const udr__record *pr, const udr__record *r)
{
	udr__record nx;
	const udr__record *n = r;
	uint64_t s = pr->cm->seq + 1;
	int rc = 0;
	if (s != r->cm->seq) {
		if ((rc = udr__record_read(&nx, c, s)) < 0)
			return rc;
		n = &nx;
	}
	if (!n->legacy && (!n->has_prev || !udr_hash_equal(&n->prev, &pr->digest)))
		rc = udr__error_set(UDR_ECORRUPT, "retention record %" PRIu64 " (%s/%020" PRIu64 ".json) is not the one "
		                    "the log chains: record %" PRIu64 " names another predecessor (the file was "
		                    "replaced or damaged); the policy is not applied", pr->cm->seq, c->logdir,
		                    pr->cm->seq, s);
	if (n != r)
		udr__record_free(&nx);
	return rc;
}

int udr__retention_at(uint64_t *seq, char **json, udr_catalog *c, const udr__record *r)
{
	udr__tentry e;
	udr__record pr;
	int rc;

	*seq = 0;
	if (json)
		*json = NULL;
	if (!r || !r->branched)
		return 0;
	if ((rc = udr__global_lookup(&e, c, r, "@retention")) <= 0)
		return rc;
	if (e.version == 0 || e.version > r->cm->seq)
		return udr__error_set(UDR_ECORRUPT, "global state: \"@retention\" names commit %" PRIu64, e.version);
	if (e.version == r->cm->seq) {
		pr = *r;
	} else if ((rc = udr__record_read(&pr, c, e.version)) < 0) {
		return rc;
	}
	rc = 0;
	if (!pr.retention)
		rc = udr__error_set(UDR_ECORRUPT, "global state: \"@retention\" names commit %" PRIu64
		                                  ", which is not a retention record", e.version);
	else if (e.version < r->cm->seq && !pr.legacy)
		rc = chained(c, &pr, r);
	if (rc == 0 && json && !(*json = strdup(pr.retention)))
		rc = udr__error_oom();
	if (e.version != r->cm->seq)
		udr__record_free(&pr);
	if (rc < 0)
		return rc;
	*seq = e.version;
	return 0;
}

int udr_retention_policy_at(char **out_json, uint64_t *seq_out, udr_catalog *c, uint64_t at)
{
	udr__record r;
	uint64_t seq = 0;
	char *text = NULL;
	int rc;

	if (out_json)
		*out_json = NULL;
	if (seq_out)
		*seq_out = 0;
	if (!out_json || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_retention_policy_at");
	if (at == 0 && (rc = udr_catalog_head(&at, c)) < 0)
		return rc;
	if (at > 0) {
		if ((rc = udr__record_read(&r, c, at)) < 0)
			return rc;
		rc = udr__retention_at(&seq, &text, c, &r);
		udr__record_free(&r);
		if (rc < 0)
			return rc;
	}
	if (!text && !(text = strdup("{}")))
		return udr__error_oom();
	*out_json = text;
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int udr_retention_get(char **out_json, udr_catalog *c)
{
	return udr_retention_policy_at(out_json, NULL, c, 0);
}

int udr__retention_load(udr_retention_policy **out, uint64_t *seq, udr_catalog *c, uint64_t at)
{
	char *text = NULL;
	int rc;

	*out = NULL;
	if ((rc = udr_retention_policy_at(&text, seq, c, at)) < 0)
		return rc;
	if (*seq == 0) {
		free(text);
		return 0;
	}
	/* the record was checked when stored and by fsck: a policy that no
	 * longer parses is damage, never "no policy" */
	if ((rc = udr__retention_check(text)) == 0)
		rc = udr_retention_policy_parse(out, text);
	if (rc < 0 && rc != UDR_ENOMEM) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", udr_error_last()->message);
		rc = udr__error_set(UDR_ECORRUPT, "retention record %" PRIu64 ": %s", *seq, msg);
	}
	free(text);
	return rc;
}

static int set_policy(uint64_t *seq_out, udr_catalog *c, const char *policy_json, const char *message, bool check,
                      uint64_t expect);

int udr_retention_set(uint64_t *seq_out, udr_catalog *c, const char *policy_json, const char *message)
{
	return set_policy(seq_out, c, policy_json, message, false, 0);
}

int udr_retention_update(uint64_t *seq_out, udr_catalog *c, const char *policy_json, const char *message,
                         uint64_t expect)
{
	return set_policy(seq_out, c, policy_json, message, true, expect);
}

static int set_policy(uint64_t *seq_out, udr_catalog *c, const char *policy_json, const char *message, bool check,
                      uint64_t expect)
{
	udr__commit_opts o;
	json_t *p;
	json_error_t jerr;
	char *canon = NULL, *msg = NULL;
	int rc;

	if (seq_out)
		*seq_out = 0;
	if (!c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_retention_set");
	if (seq_out)
		*seq_out = 0;
	if (!policy_json)
		policy_json = "{}";
	if ((rc = udr__retention_check(policy_json)) < 0)
		return rc;
	if (!(p = json_loads(policy_json, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_EINVAL, "retention policy: not JSON: %s", jerr.text);
	canon = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	if (!canon)
		return udr__error_oom();
	if (!message) {
		size_t n = strlen(canon) + 32;
		if (!(msg = malloc(n))) {
			free(canon);
			return udr__error_oom();
		}
		if (strcmp(canon, "{}") == 0)
			snprintf(msg, n, "retention policy cleared");
		else
			snprintf(msg, n, "retention policy %s", canon);
		message = msg;
	}
	memset(&o, 0, sizeof o);
	o.op = "retention";
	o.retention = canon;
	o.retention_check = check;
	o.retention_expect = expect;
	udr__test_pause("retention-set"); /* tests: another change links meanwhile */
	o.message = message;
	rc = udr__catalog_commit_versions(seq_out, c, NULL, 0, &o);
	free(canon);
	free(msg);
	return rc;
}
