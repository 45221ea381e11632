/*
 * policy.c - the retention policy of docs/GC.md 1.1 as JSON: parsed and
 * checked whole, and the rule that applies to a table on a branch (the most
 * specific, whole: pairs[B][T], tables[T], branches[B], default).  Pure code;
 * the `retention` record storing it is src/catalog/policyrec.c.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <udr/catalog.h>
#include <udr/gc.h>
#include <udr/refs.h>

#include "util/util.h"

typedef struct pentry {
	char *branch; /* branch key, without the trailing slash-star of a prefix; NULL for tables */
	bool prefix;  /* "NAME/" + "*": every branch under NAME/ */
	char *table;  /* NULL for branches */
	udr_retention_rule rule;
} pentry;

struct udr_retention_policy {
	bool has_default, has_orphans;
	udr_retention_rule def, orphans;
	pentry *tables, *branches, *pairs;
	size_t ntables, nbranches, npairs;
	int64_t undo_ms, grace_ms;
};

void udr_retention_policy_free(udr_retention_policy *p)
{
	pentry *lists[3];
	size_t ns[3];

	if (!p)
		return;
	lists[0] = p->tables, lists[1] = p->branches, lists[2] = p->pairs;
	ns[0] = p->ntables, ns[1] = p->nbranches, ns[2] = p->npairs;
	for (int l = 0; l < 3; l++) {
		for (size_t i = 0; i < ns[l]; i++) {
			free(lists[l][i].branch);
			free(lists[l][i].table);
		}
		free(lists[l]);
	}
	free(p);
}

static int bad(const char *where, const char *why)
{
	char q[300];
	udr__quote(q, sizeof q, where);
	return udr__error_set(UDR_EINVAL, "retention policy: %s: %s", q, why);
}

static int parse_rule(udr_retention_rule *out, json_t *o, const char *where)
{
	static const char *const buckets[] = { "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
		                               "keep_yearly" };
	udr_retention_rule r = UDR_RETENTION_RULE_INIT;
	uint32_t *bp[5];
	const char *key;
	json_t *v;

	bp[0] = &r.keep_hourly, bp[1] = &r.keep_daily, bp[2] = &r.keep_weekly, bp[3] = &r.keep_monthly,
	bp[4] = &r.keep_yearly;
	if (!json_is_object(o))
		return bad(where, "a rule must be an object of keep_ keys");
	json_object_foreach(o, key, v) {
		size_t b;
		if (strcmp(key, "keep_last") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1)
				return bad(where, "keep_last must be an integer >= 1");
			r.keep_last = (uint64_t)json_integer_value(v);
			continue;
		}
		if (strcmp(key, "keep_within") == 0) {
			int64_t ms;
			if (!json_is_string(v))
				return bad(where, "keep_within must be a duration text such as \"90d\"");
			if (udr_retention_parse_duration(&ms, json_string_value(v)) < 0) {
				char msg[400];
				snprintf(msg, sizeof msg, "keep_within: %s", udr_error_last()->message);
				return bad(where, msg);
			}
			r.keep_within_ms = ms;
			continue;
		}
		for (b = 0; b < 5; b++)
			if (strcmp(key, buckets[b]) == 0)
				break;
		if (b == 5) {
			char msg[700], q[300];
			udr__quote(q, sizeof q, key);
			snprintf(msg, sizeof msg, "unknown key \"%s\" (keep_last, keep_within, keep_hourly, keep_daily, "
			                          "keep_weekly, keep_monthly, keep_yearly)", q);
			return bad(where, msg);
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)UINT32_MAX) {
			char msg[200];
			snprintf(msg, sizeof msg, "%s must be an integer from 1 to %" PRIu32, buckets[b], UINT32_MAX);
			return bad(where, msg);
		}
		*bp[b] = (uint32_t)json_integer_value(v);
	}
	*out = r;
	return 0;
}

/* A branch key: a branch name, or NAME, slash, star for every branch under NAME/. */
static int branch_key(pentry *e, const char *key, const char *where)
{
	size_t n = strlen(key);
	char *name;

	e->prefix = n > 2 && strcmp(key + n - 2, "/*") == 0;
	if (!(name = strndup(key, e->prefix ? n - 2 : n)))
		return udr__error_oom();
	if (udr_ref_name_check(name) < 0) {
		free(name);
		udr_error_clear();
		return bad(where, "a branch key must be a branch name or NAME/*");
	}
	e->branch = name;
	return 0;
}

static int add_entry(pentry **list, size_t *n, pentry *e)
{
	pentry *l = realloc(*list, (*n + 1) * sizeof **list);
	if (!l) {
		free(e->branch);
		free(e->table);
		return udr__error_oom();
	}
	*list = l;
	l[(*n)++] = *e;
	return 0;
}

static int parse_duration_key(int64_t *out, json_t *v, const char *key)
{
	if (!v)
		return 0;
	if (!json_is_string(v))
		return bad(key, "must be a duration text such as \"24h\"");
	if (udr_retention_parse_duration(out, json_string_value(v)) < 0) {
		char msg[400];
		snprintf(msg, sizeof msg, "%s", udr_error_last()->message);
		return bad(key, msg);
	}
	return 0;
}

int udr_retention_policy_parse(udr_retention_policy **out, const char *text)
{
	udr_retention_policy *p;
	json_error_t jerr;
	json_t *o, *v, *w;
	const char *key, *k2;
	int rc = 0;

	if (!out || !text)
		return udr__error_set(UDR_EINVAL, "retention policy: no text");
	*out = NULL;
	if (!(o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)))
		return udr__error_set(UDR_EINVAL, "retention policy: not JSON: %s (line %d)", jerr.text, jerr.line);
	if (!json_is_object(o)) {
		json_decref(o);
		return udr__error_set(UDR_EINVAL, "retention policy: must be a JSON object");
	}
	if (!(p = calloc(1, sizeof *p))) {
		json_decref(o);
		return udr__error_oom();
	}
	p->undo_ms = 0;
	p->grace_ms = 24LL * 3600 * 1000;
	json_object_foreach(o, key, v) {
		if (strcmp(key, "default") == 0) {
			rc = parse_rule(&p->def, v, "default");
			p->has_default = true;
		} else if (strcmp(key, "orphans") == 0) {
			if (!json_is_null(v)) {
				rc = parse_rule(&p->orphans, v, "orphans");
				p->has_orphans = true;
			}
		} else if (strcmp(key, "undo") == 0) {
			rc = parse_duration_key(&p->undo_ms, v, "undo");
		} else if (strcmp(key, "grace") == 0) {
			rc = parse_duration_key(&p->grace_ms, v, "grace");
		} else if (strcmp(key, "tables") == 0 || strcmp(key, "branches") == 0) {
			bool tables = key[0] == 't';
			if (!json_is_object(v)) {
				rc = bad(key, "must be an object");
				break;
			}
			json_object_foreach(v, k2, w) {
				pentry e = { 0 };
				if (tables) {
					if (udr_table_name_check(k2) < 0) {
						udr_error_clear();
						rc = bad(k2, "not a table name");
						break;
					}
					if (!(e.table = strdup(k2))) {
						rc = udr__error_oom();
						break;
					}
				} else if ((rc = branch_key(&e, k2, k2)) < 0) {
					break;
				}
				if ((rc = parse_rule(&e.rule, w, k2)) < 0) {
					free(e.branch);
					free(e.table);
					break;
				}
				if ((rc = tables ? add_entry(&p->tables, &p->ntables, &e)
				                 : add_entry(&p->branches, &p->nbranches, &e)) < 0)
					break;
			}
		} else if (strcmp(key, "pairs") == 0) {
			if (!json_is_object(v)) {
				rc = bad(key, "must be an object of branch keys");
				break;
			}
			json_object_foreach(v, k2, w) {
				const char *t;
				json_t *r;
				if (!json_is_object(w)) {
					rc = bad(k2, "must be an object of tables");
					break;
				}
				json_object_foreach(w, t, r) {
					pentry e = { 0 };
					if (udr_table_name_check(t) < 0) {
						udr_error_clear();
						rc = bad(t, "not a table name");
						break;
					}
					if ((rc = branch_key(&e, k2, k2)) < 0)
						break;
					if (!(e.table = strdup(t))) {
						free(e.branch);
						rc = udr__error_oom();
						break;
					}
					if ((rc = parse_rule(&e.rule, r, t)) < 0) {
						free(e.branch);
						free(e.table);
						break;
					}
					if ((rc = add_entry(&p->pairs, &p->npairs, &e)) < 0)
						break;
				}
				if (rc < 0)
					break;
			}
		} else {
			rc = bad(key, "unknown key (default, tables, branches, pairs, orphans, undo, grace)");
		}
		if (rc < 0)
			break;
	}
	json_decref(o);
	if (rc < 0) {
		udr_retention_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* How well branch key e matches branch: 0 not, else higher is better (an
 * exact name beats every prefix, a longer prefix a shorter one). */
static size_t match(const pentry *e, const char *branch)
{
	size_t n = strlen(e->branch);
	if (!e->prefix)
		return strcmp(e->branch, branch) == 0 ? SIZE_MAX : 0;
	return strncmp(branch, e->branch, n) == 0 && branch[n] == '/' && branch[n + 1] != '\0' ? n + 1 : 0;
}

int udr_retention_policy_rule(udr_retention_rule *out, const char **source, const udr_retention_policy *p,
                              const char *table, const char *branch)
{
	const pentry *best = NULL;
	size_t bestm = 0;
	udr_retention_rule all = UDR_RETENTION_RULE_INIT;

	if (!out || !p || !table)
		return udr__error_set(UDR_EINVAL, "retention policy: no policy or table");
	if (!branch)
		branch = "main";
	for (size_t i = 0; i < p->npairs; i++) {
		size_t m;
		if (strcmp(p->pairs[i].table, table) != 0 || (m = match(&p->pairs[i], branch)) == 0)
			continue;
		if (m > bestm)
			best = &p->pairs[i], bestm = m;
	}
	if (best) {
		*out = best->rule;
		if (source)
			*source = "pair";
		return 0;
	}
	for (size_t i = 0; i < p->ntables; i++)
		if (strcmp(p->tables[i].table, table) == 0) {
			*out = p->tables[i].rule;
			if (source)
				*source = "table";
			return 0;
		}
	for (size_t i = 0; i < p->nbranches; i++) {
		size_t m = match(&p->branches[i], branch);
		if (m > bestm)
			best = &p->branches[i], bestm = m;
	}
	if (best) {
		*out = best->rule;
		if (source)
			*source = "branch";
		return 0;
	}
	*out = p->has_default ? p->def : all;
	if (source)
		*source = p->has_default ? "default" : "none";
	return 0;
}

int udr_retention_policy_default(udr_retention_rule *out, const udr_retention_policy *p)
{
	if (!out || !p)
		return udr__error_set(UDR_EINVAL, "retention policy: no policy");
	if (p->has_default)
		*out = p->def;
	return p->has_default ? 1 : 0;
}

int udr_retention_policy_orphans(udr_retention_rule *out, const udr_retention_policy *p)
{
	if (!out || !p)
		return udr__error_set(UDR_EINVAL, "retention policy: no policy");
	if (p->has_orphans) {
		*out = p->orphans;
		return 1;
	}
	return 0;
}

int64_t udr_retention_policy_undo_ms(const udr_retention_policy *p)
{
	return p ? p->undo_ms : 0;
}

int64_t udr_retention_policy_grace_ms(const udr_retention_policy *p)
{
	return p ? p->grace_ms : 24LL * 3600 * 1000;
}
