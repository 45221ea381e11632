/*
 * pick.c - cherry-pick and revert of one commit onto a branch, at table
 * level (FORMAT.md "Cherry-pick and revert").  Each is one ordinary commit
 * on the target branch (new version numbers, the chunks and metadata of the
 * version it takes) whose record says op "cherry-pick" or "revert" and the
 * commit it came from ("source").  Planned outside the lock on the branch's
 * head; the commit step refuses it when that head moved meanwhile (as for a
 * merge), so the check "the target still has the version the plan saw" is
 * decided by the one commit point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/refs.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

/* The commit a ref string names; a branch or tag naming a create or reset
 * record stands for the commit that record names.  "commit:N" must be a
 * commit with table changes of its own. */
static int pick_source(udr_commit **out, udr_catalog *c, const char *ref, const char *what)
{
	uint64_t s;
	bool explicit = strncmp(ref, "commit:", 7) == 0;
	int rc;
	*out = NULL;
	if ((rc = udr_catalog_resolve(&s, c, ref)) < 0)
		return rc;
	for (int hops = 0;; hops++) {
		udr_commit *cm = NULL;
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			return rc;
		if (cm->op && !udr__op_commits(cm->op)) {
			bool through = !explicit && hops < 64 && cm->parent > 0 &&
			               (strcmp(cm->op, "create") == 0 || strcmp(cm->op, "reset") == 0);
			if (through) {
				s = cm->parent;
				udr_commit_free(cm);
				continue;
			}
			rc = udr__error_set(UDR_EINVAL,
			                    "commit %llu is a ref record (%s of %s), not a commit with table changes: "
			                    "nothing to %s, nothing written",
			                    (unsigned long long)cm->seq, cm->op, cm->ref ? cm->ref : cm->branch, what);
		} else if (cm->op && strcmp(cm->op, "merge") == 0) {
			rc = udr__error_set(UDR_EINVAL,
			                    "commit %llu is a merge: %s takes a commit with table changes of its own "
			                    "(diff its parents and commit instead); nothing written",
			                    (unsigned long long)cm->seq, what);
		} else if (cm->nchanges == 0) {
			rc = udr__error_set(UDR_EINVAL, "commit %llu changes no table: nothing to %s, nothing written",
			                    (unsigned long long)cm->seq, what);
		}
		if (rc < 0) {
			udr_commit_free(cm);
			return rc;
		}
		*out = cm;
		return 0;
	}
}

/* 1 when versions a and b of table hold the same chunks and metadata (a
 * commit picked before, or a revert already made, under another number). */
int udr__same_content(udr_catalog *c, const char *table, uint64_t a, uint64_t b)
{
	udr_version *va = NULL, *vb = NULL;
	int rc = 0, same = 0;
	if (a == 0 || b == 0)
		return 0;
	if ((rc = udr__version_load(&va, c, table, a)) == 1 && (rc = udr__version_load(&vb, c, table, b)) == 1) {
		same = va->nchunks == vb->nchunks && va->nmeta == vb->nmeta &&
		       (va->nchunks == 0 || memcmp(va->chunks, vb->chunks, va->nchunks * sizeof(udr_hash)) == 0);
		for (size_t i = 0; same && i < va->nmeta; i++)
			same = strcmp(va->meta[i].key, vb->meta[i].key) == 0 && strcmp(va->meta[i].value, vb->meta[i].value) == 0;
	}
	udr_version_free(va);
	udr_version_free(vb);
	if (rc < 0)
		return rc;
	return rc == 1 ? same : udr__error_set(UDR_ECORRUPT, "table %s: version %llu is not committed", table,
	                                         (unsigned long long)(va ? b : a));
}

/*
 * revert false: cherry-pick.  For each table the commit changed (old ->
 * new), "from" is the version the target must still have and "to" the
 * version whose content it takes: pick old -> new, revert new -> old.
 */
static int pick(udr_merge_result **out, udr_catalog *c, const char *commit, const char *branch,
                const udr_merge_options *opts, bool revert)
{
	const char *what = revert ? "revert" : "cherry-pick", *fn = revert ? "udr_revert" : "udr_cherry_pick";
	udr_merge_options def = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	udr_commit *src = NULL;
	udr_version **vs = NULL;
	size_t nv = 0, cap = 0;
	char msg[128];
	bool in_target;
	udr__tstate named; /* the versions whose content the record copies */
	int rc;
	memset(&named, 0, sizeof(named));
	if (!out || !c || !commit)
		return udr__error_set(UDR_EINVAL, "invalid argument to %s", fn);
	*out = NULL;
	if (!opts)
		opts = &def;
	if ((rc = udr__merge_opts_check(opts)) < 0)
		return rc;
	if (!branch)
		branch = "main";
	if ((rc = udr_ref_name_check(branch)) < 0)
		return rc;
	if (!(m = calloc(1, sizeof(*m))))
		return udr__error_oom();
	if ((rc = pick_source(&src, c, commit, what)) < 0 || (rc = udr__branch_head(&m->ours, c, branch, 0)) < 0)
		goto done;
	m->theirs = src->seq;
	if (m->ours == 0) {
		rc = udr__error_set(UDR_ENOTFOUND, "branch %s has no commits yet", branch);
		goto done;
	}
	if ((rc = udr__is_ancestor(&in_target, c, src->seq, m->ours)) < 0)
		goto done;
	if (!revert && in_target) {
		rc = udr__error_set(UDR_EINVAL, "commit %llu is already on branch %s (in its history): nothing to "
		                    "cherry-pick, nothing written", (unsigned long long)src->seq, branch);
		goto done;
	}
	if (revert && !in_target) {
		rc = udr__error_set(UDR_EINVAL, "commit %llu is not on branch %s (not in its history): nothing to revert, "
		                    "nothing written", (unsigned long long)src->seq, branch);
		goto done;
	}
	if (!(vs = calloc(src->nchanges, sizeof(*vs)))) {
		rc = udr__error_oom();
		goto done;
	}
	for (size_t i = 0; i < src->nchanges; i++) {
		const udr_change *ch = &src->changes[i];
		uint64_t from = revert ? ch->new_version : ch->old_version;
		uint64_t to = revert ? ch->old_version : ch->new_version, ours;
		udr__tentry e;
		int conflict = 0, s;
		if (revert && to != 0) {
			/* created again after a drop: its old version is the drop
			 * (the revert dropped the table, exit 0) */
			udr_version *tv = NULL;
			int d;
			if ((rc = udr_catalog_get_version(&tv, c, ch->table, to)) < 0)
				goto done;
			d = udr_version_is_dropped(tv);
			udr_version_free(tv);
			if (d)
				to = 0;
		}
		if (revert && to == 0) {
			rc = udr__error_set(UDR_EINVAL,
			                    "commit %llu created table %s: a revert drops no table (udr sql "
			                    "'DROP TABLE ...' does); nothing written",
			                    (unsigned long long)src->seq, ch->table);
			goto done;
		}
		if ((rc = udr__state_lookup(&e, c, m->ours, ch->table)) < 0)
			goto done;
		ours = rc == 1 ? e.version : 0;
		if (rc == 2 && (rc = udr__table_latest(&ours, c, ch->table)) < 0) /* a format-1 head: only main */
			goto done;
		rc = 0;
		/* ours may be from and still hold to's content: a commit that
		 * changed no content (a second commit of the same chunks) */
		if (ours != to && (rc = udr__same_content(c, ch->table, ours, to)) < 0)
			goto done;
		if (ours == to || rc == 1) {
			/* already there: nothing for this table */
			if ((rc = udr__merge_add_table(m, &cap, ch->table, from, ours, to, ours, 0)) < 0)
				goto done;
			continue;
		}
		/* the version the commit expects, or one with its content */
		if (ours != from && (rc = udr__same_content(c, ch->table, ours, from)) < 0)
			goto done;
		s = ours == from || rc == 1 ? UDR_MERGE_THEIRS : udr__merge_strategy_for(opts, ch->table);
		rc = 0;
		conflict = s == UDR_MERGE_FAIL;
		if ((rc = udr__merge_add_table(m, &cap, ch->table, from, ours, to, ours, conflict)) < 0)
			goto done;
		if (s != UDR_MERGE_THEIRS)
			continue;
		m->tables[m->ntables - 1].result = 0; /* the new version, once committed */
		/* an expired version's content is not copied (GC.md 1.4); the
		 * commit step checks again under the writer lock */
		if ((rc = udr__version_check(c, ch->table, to, NULL)) < 0 ||
		    (rc = udr__tstate_set(&named, ch->table, to, 0)) < 0)
			goto done;
		if ((rc = udr__version_load(&vs[nv], c, ch->table, to)) < 0)
			goto done;
		if (rc == 0) {
			rc = udr__error_set(UDR_ECORRUPT, "table %s: version %llu, named by commit %llu, is not committed",
			                    ch->table, (unsigned long long)to, (unsigned long long)src->seq);
			goto done;
		}
		rc = 0;
		/* the content of `to` as the target's next version */
		vs[nv]->version = 0;
		vs[nv]->parent = 0;
		vs[nv]->commit_seq = 0;
		vs[nv]->created_ms = 0;
		nv++;
	}
	m->base = src->parent;
	if (m->nconflicts > 0) {
		for (size_t x = 0; x < m->ntables; x++)
			if (m->tables[x].conflict) {
				rc = udr__error_set(UDR_ECONFLICT,
				                    "%s of commit %llu onto %s: %zu table%s no longer at the version the commit "
				                    "%s (first: %s, at %llu, not %llu); nothing written",
				                    what, (unsigned long long)src->seq, branch, m->nconflicts,
				                    m->nconflicts == 1 ? "" : "s", revert ? "made" : "started from",
				                    m->tables[x].table, (unsigned long long)m->tables[x].ours,
				                    (unsigned long long)m->tables[x].base);
				break;
			}
		goto done;
	}
	if (nv == 0) {
		m->up_to_date = 1;
		goto done;
	}
	if (opts->dry_run)
		goto done;
	snprintf(msg, sizeof(msg), "%s of commit %llu", what, (unsigned long long)src->seq);
	{
		udr__commit_opts o;
		memset(&o, 0, sizeof(o));
		o.assign = true;
		o.op = revert ? "revert" : "cherry-pick";
		o.branch = branch;
		o.ref_name = branch;
		o.target = m->ours;
		o.source = src->seq;
		o.named = &named;
		o.message = opts->message ? opts->message : msg;
		if ((rc = udr__catalog_commit_versions(&m->seq, c, vs, nv, &o)) < 0 && rc != UDR_EIO)
			goto done;
	}
	for (size_t i = 0, k = 0; i < m->ntables && k < nv; i++)
		if (strcmp(m->tables[i].table, vs[k]->table) == 0)
			m->tables[i].result = vs[k++]->version;
done:
	udr__tstate_free(&named);
	for (size_t i = 0; i < nv; i++)
		udr_version_free(vs[i]);
	free(vs);
	udr_commit_free(src);
	if (rc < 0 && rc != UDR_ECONFLICT && rc != UDR_EIO) {
		udr_merge_result_free(m);
		return rc;
	}
	*out = m;
	return rc;
}

int udr_cherry_pick(udr_merge_result **out, udr_catalog *c, const char *commit, const char *branch,
                    const udr_merge_options *opts)
{
	return pick(out, c, commit, branch, opts, false);
}

int udr_revert(udr_merge_result **out, udr_catalog *c, const char *commit, const char *branch,
               const udr_merge_options *opts)
{
	return pick(out, c, commit, branch, opts, true);
}
