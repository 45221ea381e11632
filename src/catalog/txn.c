/*
 * txn.c - multi-table transactions on the commit step.  A transaction reads
 * at its snapshot (the head when it began; a table's version at a snapshot
 * is found by binary search over the commits that made its versions) plus
 * its own staged versions, and commits them all through one commit record.
 * Conflicts: first committer wins on written tables; serializable mode also
 * checks the tables it read.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <udr/refs.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

enum txn_state { TXN_ACTIVE, TXN_FAILED, TXN_DONE };

struct udr_txn {
	udr_catalog *c;
	uint64_t snapshot;
	int isolation;
	char *branch;
	char *message;
	enum txn_state state;
	udr_version **staged;
	size_t nstaged, cap_staged;
	uint64_t pin; /* the snapshot's pin in the handle's lease (GC.md 2.3), 0: none */
	pid_t pin_owner; /* the process that pinned (a forked child leaves it alone) */
	uint64_t *vpins; /* version pins of older versions read (GC.md 2.3) */
	size_t nvpins, cap_vpins;
	char **reads;
	size_t nreads, cap_reads;
};

static void unpin(udr_txn *t)
{
	if (t->pin && t->pin_owner == getpid())
		udr__catalog_unpin(t->c, t->pin);
	t->pin = 0;
	for (size_t i = 0; i < t->nvpins && t->pin_owner == getpid(); i++)
		udr__catalog_unpin(t->c, t->vpins[i]);
	t->nvpins = 0;
}

/* A version older than the snapshot's (the snapshot pin keeps only that
 * one): pinned until the transaction ends, then checked for expiry. */
static int pin_older(udr_txn *t, const char *table, uint64_t version)
{
	uint64_t pin = 0;
	int rc;
	if (t->nvpins == t->cap_vpins) {
		size_t cap = t->cap_vpins ? t->cap_vpins * 2 : 4;
		uint64_t *p = realloc(t->vpins, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		t->vpins = p;
		t->cap_vpins = cap;
	}
	if ((rc = udr__catalog_pin_version(&pin, t->c, table, version, "txn")) < 0)
		return rc;
	if (pin)
		t->vpins[t->nvpins++] = pin;
	return 0;
}

static int fail(udr_txn *t, int rc)
{
	t->state = TXN_FAILED;
	return rc;
}

static int check_active(udr_txn *t)
{
	if (!t)
		return udr__error_set(UDR_EINVAL, "invalid argument: transaction is NULL");
	if (t->state != TXN_ACTIVE)
		return udr__error_set(UDR_EINVAL, "the transaction is no longer active (%s); it can only be aborted",
		                      t->state == TXN_FAILED ? "an earlier step failed" : "committed or aborted");
	return 0;
}

int udr_txn_begin(udr_txn **out, udr_catalog *c, const udr_txn_options *opts)
{
	udr_txn_options def = UDR_TXN_OPTIONS_INIT;
	udr_txn *t;
	int rc;
	if (!out || !c)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_txn_begin");
	*out = NULL;
	if (!opts)
		opts = &def;
	if (opts->version != UDR_TXN_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown transaction options version %u", opts->version);
	if (opts->isolation != UDR_TXN_SNAPSHOT && opts->isolation != UDR_TXN_SERIALIZABLE)
		return udr__error_set(UDR_EINVAL, "unknown isolation level %d", opts->isolation);
	if (opts->branch && (rc = udr_ref_name_check(opts->branch)) < 0)
		return rc;
	if (!(t = calloc(1, sizeof(*t))))
		return udr__error_oom();
	t->c = c;
	t->isolation = opts->isolation;
	if (!(t->branch = strdup(opts->branch ? opts->branch : "main")) ||
	    (opts->message && !(t->message = strdup(opts->message)))) {
		udr_txn_free(t);
		return udr__error_oom();
	}
	for (;;) {
		uint64_t xseq;
		if ((rc = udr__catalog_true_head(&t->snapshot, c)) < 0) {
			udr_txn_free(t);
			return rc;
		}
		if (strcmp(t->branch, "main") != 0) {
			uint64_t bh; /* the branch must exist at the snapshot */
			if ((rc = udr__branch_head(&bh, c, t->branch, t->snapshot)) < 0) {
				udr_txn_free(t);
				return rc;
			}
		}
		/* GC keeps what the snapshot reaches until commit, abort or free;
		 * a pin that cannot be written fails the begin (never unpinned
		 * silently).  The pin waits out an expire step in progress (the
		 * handshake, GC.md 2.2); an expire record linked after the
		 * snapshot may not have seen the pin, so the snapshot is taken
		 * again at the new head (nothing was read under it yet). */
		if ((rc = udr__catalog_pin_snapshot(&t->pin, c, t->snapshot, t->branch, "txn")) < 0) {
			udr_txn_free(t);
			return rc;
		}
		if ((rc = udr__expire_latest(&xseq, NULL, c)) < 0) {
			udr__catalog_unpin(c, t->pin);
			t->pin = 0;
			udr_txn_free(t);
			return rc;
		}
		if (xseq <= t->snapshot || t->pin == 0)
			break;
		udr__catalog_unpin(c, t->pin);
		t->pin = 0;
	}
	t->pin_owner = getpid();
	*out = t;
	return 0;
}

uint64_t udr_txn_snapshot(const udr_txn *t)
{
	return t ? t->snapshot : 0;
}

static udr_version *staged_for(udr_txn *t, const char *table)
{
	for (size_t i = 0; i < t->nstaged; i++)
		if (strcmp(t->staged[i]->table, table) == 0)
			return t->staged[i];
	return NULL;
}

static int note_read(udr_txn *t, const char *table)
{
	if (t->isolation != UDR_TXN_SERIALIZABLE)
		return 0;
	for (size_t i = 0; i < t->nreads; i++)
		if (strcmp(t->reads[i], table) == 0)
			return 0;
	if (t->nreads == t->cap_reads) {
		size_t cap = t->cap_reads ? t->cap_reads * 2 : 8;
		char **p = realloc(t->reads, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		t->reads = p;
		t->cap_reads = cap;
	}
	if (!(t->reads[t->nreads] = strdup(table)))
		return udr__error_oom();
	t->nreads++;
	return 0;
}

/* The table's latest version at the snapshot, ignoring staged writes. */
static int snapshot_latest(uint64_t *out, udr_txn *t, const char *table)
{
	uint64_t latest;
	int rc;
	if ((rc = udr__table_latest(&latest, t->c, table)) < 0)
		return rc;
	return udr__version_at_seq_on(out, t->c, table, latest, t->snapshot, t->branch);
}

int udr_txn_latest(uint64_t *out, udr_txn *t, const char *table)
{
	udr_version *s;
	int rc;
	if ((rc = check_active(t)) < 0)
		return rc;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument: output is NULL");
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	if ((s = staged_for(t, table))) {
		*out = s->version;
		return 0;
	}
	if ((rc = note_read(t, table)) < 0)
		return fail(t, rc);
	if ((rc = snapshot_latest(out, t, table)) < 0)
		return fail(t, rc);
	return 0;
}

int udr_txn_get_version(udr_version **out, udr_txn *t, const char *table, uint64_t version)
{
	udr_version *s;
	uint64_t latest;
	int rc;
	if ((rc = check_active(t)) < 0)
		return rc;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument: output is NULL");
	*out = NULL;
	if ((rc = udr_table_name_check(table)) < 0)
		return rc;
	s = staged_for(t, table);
	if (s && (version == 0 || version == s->version))
		return udr_version_dup(out, s);
	if ((rc = note_read(t, table)) < 0 || (rc = snapshot_latest(&latest, t, table)) < 0)
		return fail(t, rc);
	if (version == 0)
		version = latest;
	if (version == 0)
		return udr__error_set(UDR_ENOTFOUND, "table %s not found (in this transaction's snapshot)", table);
	if (version > latest)
		return udr__error_set(UDR_ENOTFOUND, "table %s has no version %llu in this transaction's snapshot "
		                      "(latest is %llu)", table, (unsigned long long)version, (unsigned long long)latest);
	if (version < latest && (rc = pin_older(t, table, version)) < 0)
		return fail(t, rc);
	rc = udr_catalog_get_version(out, t->c, table, version);
	if (rc == 0 && (rc = udr__version_check(t->c, table, version, NULL)) < 0) {
		/* expired (GC.md 1.5): like a missing version, the transaction
		 * may go on */
		udr_version_free(*out);
		*out = NULL;
	}
	return rc == UDR_ECORRUPT || rc == UDR_EIO ? fail(t, rc) : rc;
}

int udr_txn_write(udr_txn *t, const udr_version *v)
{
	udr_version *copy = NULL, *old;
	uint64_t latest;
	int rc;
	if ((rc = check_active(t)) < 0)
		return rc;
	if (!v)
		return fail(t, udr__error_set(UDR_EINVAL, "invalid argument: version is NULL"));
	if ((rc = udr_table_name_check(v->table)) < 0)
		return fail(t, rc);
	if (t->c->store) {
		for (size_t i = 0; i < v->nchunks; i++) {
			rc = udr_store_exists(t->c->store, &v->chunks[i]);
			if (rc == 0) {
				char hex[UDR_HASH_HEXSIZE + 1];
				udr_hash_tohex(hex, &v->chunks[i]);
				rc = udr__error_set(UDR_ENOTFOUND, "chunk %s not found in the store (table %s)", hex, v->table);
			}
			if (rc < 0)
				return fail(t, rc);
		}
	}
	if ((rc = snapshot_latest(&latest, t, v->table)) < 0)
		return fail(t, rc);
	if ((rc = udr_version_dup(&copy, v)) < 0)
		return fail(t, rc);
	copy->version = latest + 1;
	copy->parent = latest;
	{
		/* numbers are allocated over all branches: the highest at the
		 * snapshot + 1 (the commit assigns it again under the lock) */
		udr__tentry e;
		rc = udr__state_lookup_ex(&e, t->c, t->snapshot, v->table, UDR__VIEW_ALLOC);
		if (rc == 1 && e.version >= latest)
			copy->version = e.version + 1;
		else if (rc < 0 && rc != UDR_ENOTFOUND) {
			udr_version_free(copy);
			return fail(t, rc);
		}
		udr_error_clear();
	}
	copy->commit_seq = 0;
	if ((old = staged_for(t, v->table))) {
		for (size_t i = 0; i < t->nstaged; i++)
			if (t->staged[i] == old)
				t->staged[i] = copy;
		udr_version_free(old);
		return 0;
	}
	if (t->nstaged == t->cap_staged) {
		size_t cap = t->cap_staged ? t->cap_staged * 2 : 4;
		udr_version **p = realloc(t->staged, cap * sizeof(*p));
		if (!p) {
			udr_version_free(copy);
			return fail(t, udr__error_oom());
		}
		t->staged = p;
		t->cap_staged = cap;
	}
	t->staged[t->nstaged++] = copy;
	return 0;
}

int udr_txn_commit(udr_txn *t, uint64_t *seq_out)
{
	udr__commit_opts o;
	uint64_t *reads = NULL;
	int rc;
	if (seq_out)
		*seq_out = 0;
	if ((rc = check_active(t)) < 0)
		return rc;
	t->state = TXN_DONE;
	if (t->nstaged == 0) {
		unpin(t);
		return 0;
	}
	memset(&o, 0, sizeof(o));
	o.assign = true;
	o.use_snapshot = true;
	o.snapshot = t->snapshot;
	o.message = t->message;
	o.branch = t->branch;
	if (t->isolation == UDR_TXN_SERIALIZABLE && t->nreads) {
		/* what each read table was on the branch at the snapshot (0:
		 * absent): a reset since can bring back an older commit's
		 * version, which the commits' seqs alone do not show */
		if (!(reads = calloc(t->nreads, sizeof(*reads)))) {
			unpin(t);
			return udr__error_oom();
		}
		for (size_t i = 0; i < t->nreads; i++) {
			if ((rc = snapshot_latest(&reads[i], t, t->reads[i])) == UDR_ENOTFOUND) {
				reads[i] = 0;
				udr_error_clear();
			} else if (rc < 0) {
				free(reads);
				unpin(t);
				return rc;
			}
		}
		o.check_tables = (const char *const *)t->reads;
		o.check_versions = reads;
		o.ncheck = t->nreads;
	}
	rc = udr__catalog_commit_versions(seq_out, t->c, t->staged, t->nstaged, &o);
	free(reads);
	unpin(t);
	return rc;
}

void udr_txn_abort(udr_txn *t)
{
	if (t && t->state == TXN_ACTIVE)
		t->state = TXN_DONE;
	if (t)
		unpin(t);
}

void udr_txn_free(udr_txn *t)
{
	if (!t)
		return;
	unpin(t);
	for (size_t i = 0; i < t->nstaged; i++)
		udr_version_free(t->staged[i]);
	free(t->staged);
	free(t->vpins);
	for (size_t i = 0; i < t->nreads; i++)
		free(t->reads[i]);
	free(t->reads);
	free(t->branch);
	free(t->message);
	free(t);
}
