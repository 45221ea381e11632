/*
 * cli/cmd_spec.c - `udr commit --spec FILE`: several tables committed at once
 * from a JSON spec, through one transaction (all or nothing).  The spec is
 * checked completely before anything is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* One entry of "tables", validated. */
struct spec_table {
	const char *table;
	udr_hash *chunks;
	size_t nchunks;
	json_t *files;       /* array of strings (borrowed from the document) */
	const char *message; /* NULL: the spec's message */
	json_t *metadata;    /* object of strings, or NULL */
	uint64_t version;    /* expected new version; 0: the next one */
	bool allow_empty;    /* no chunks and no files is what is meant */
	udr_hash *stored;    /* the hashes of files, stored before the transaction */
};

struct spec {
	json_t *doc;
	const char *message;
	const char *branch; /* NULL: main */
	int isolation;
	struct spec_table *tables;
	size_t ntables;
};

static void spec_free(struct spec *sp)
{
	size_t i;

	for (i = 0; i < sp->ntables; i++) {
		free(sp->tables[i].chunks);
		free(sp->tables[i].stored);
	}
	free(sp->tables);
	json_decref(sp->doc);
}

/* Reject keys other than the allowed ones (a typo must not be ignored). */
static int check_keys(json_t *obj, const char *const *allowed, const char *where)
{
	const char *key;
	json_t *val;
	size_t i;

	json_object_foreach(obj, key, val) {
		for (i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (!allowed[i]) {
			cli_errorf("invalid spec: %s: unknown key \"%s\"", where, key);
			return CLI_EXIT_USAGE;
		}
	}
	return CLI_EXIT_OK;
}

static int parse_table(struct spec_table *t, json_t *obj, size_t idx)
{
	static const char *const keys[] = { "table", "chunks", "files", "message", "metadata",
	                                    "version", "allow_empty", NULL };
	char where[64];
	json_t *v, *item;
	const char *key;
	size_t i;
	int rc;

	snprintf(where, sizeof(where), "tables[%zu]", idx);
	if (!json_is_object(obj)) {
		cli_errorf("invalid spec: %s is not an object", where);
		return CLI_EXIT_USAGE;
	}
	if ((rc = check_keys(obj, keys, where)) != 0)
		return rc;
	v = json_object_get(obj, "table");
	if (!json_is_string(v)) {
		cli_errorf("invalid spec: %s: \"table\" (a string) is required", where);
		return CLI_EXIT_USAGE;
	}
	t->table = json_string_value(v);
	if (udr_table_name_check(t->table) != 0) {
		cli_errorf("invalid spec: %s: %s", where, udr_error_last()->message);
		return CLI_EXIT_USAGE;
	}
	v = json_object_get(obj, "chunks");
	if (v && !json_is_array(v)) {
		cli_errorf("invalid spec: %s: \"chunks\" must be an array of hashes", where);
		return CLI_EXIT_USAGE;
	}
	if (v && json_array_size(v)) {
		if (!(t->chunks = calloc(json_array_size(v), sizeof(*t->chunks)))) {
			cli_errorf("out of memory");
			return CLI_EXIT_IO;
		}
		json_array_foreach(v, i, item) {
			if (!json_is_string(item) ||
			    udr_hash_fromhex(&t->chunks[i], json_string_value(item)) != 0) {
				cli_errorf("invalid spec: %s.chunks[%zu]: not a hash (64 hex digits)",
				           where, i);
				return CLI_EXIT_USAGE;
			}
			t->nchunks++;
		}
	}
	v = json_object_get(obj, "files");
	if (v && !json_is_array(v)) {
		cli_errorf("invalid spec: %s: \"files\" must be an array of paths", where);
		return CLI_EXIT_USAGE;
	}
	json_array_foreach(v, i, item) {
		struct stat st;
		int err = 0;

		if (!json_is_string(item) || !json_string_value(item)[0]) {
			cli_errorf("invalid spec: %s.files[%zu]: not a file name", where, i);
			return CLI_EXIT_USAGE;
		}
		if (stat(json_string_value(item), &st) != 0 || access(json_string_value(item), R_OK) != 0)
			err = errno;
		else if (S_ISDIR(st.st_mode))
			err = EISDIR;
		if (err) {
			cli_errorf("spec %s.files[%zu]: cannot read %s: %s", where, i,
			           json_string_value(item), strerror(err));
			return err == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_USAGE;
		}
	}
	t->files = v;
	v = json_object_get(obj, "message");
	if (v && !json_is_string(v) && !json_is_null(v)) {
		cli_errorf("invalid spec: %s: \"message\" must be a string or null", where);
		return CLI_EXIT_USAGE;
	}
	t->message = json_is_string(v) ? json_string_value(v) : NULL;
	v = json_object_get(obj, "metadata");
	if (v && !json_is_object(v)) {
		cli_errorf("invalid spec: %s: \"metadata\" must be an object of strings", where);
		return CLI_EXIT_USAGE;
	}
	json_object_foreach(v, key, item) {
		if (!key[0] || !json_is_string(item)) {
			cli_errorf("invalid spec: %s.metadata: \"%s\" must be a non-empty key with a "
			           "string value", where, key);
			return CLI_EXIT_USAGE;
		}
	}
	t->metadata = v;
	v = json_object_get(obj, "version");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1)) {
		cli_errorf("invalid spec: %s: \"version\" must be an integer >= 1", where);
		return CLI_EXIT_USAGE;
	}
	t->version = v ? (uint64_t)json_integer_value(v) : 0;
	v = json_object_get(obj, "allow_empty");
	if (v && !json_is_boolean(v)) {
		cli_errorf("invalid spec: %s: \"allow_empty\" must be true or false", where);
		return CLI_EXIT_USAGE;
	}
	t->allow_empty = json_is_true(v);
	return CLI_EXIT_OK;
}

/* Read and check the spec at path ("-": standard input); an exit code. */
static int spec_load(struct spec *sp, const char *path)
{
	static const char *const keys[] = { "message", "isolation", "branch", "tables", NULL };
	const char *name = strcmp(path, "-") == 0 ? "(standard input)" : path;
	json_error_t jerr;
	json_t *v, *item;
	FILE *f = stdin;
	size_t i, j;
	int rc;

	if (strcmp(path, "-") != 0 && !(f = fopen(path, "rb"))) {
		cli_errorf("cannot open spec %s: %s", path, strerror(errno));
		return errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_IO;
	}
	{
		struct stat st;
		if (f != stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
			fclose(f); /* a directory opens, and reads as an empty file */
			cli_errorf("invalid spec %s: it is a directory", path);
			return CLI_EXIT_USAGE;
		}
	}
	sp->doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	if (f != stdin)
		fclose(f);
	if (!sp->doc) {
		cli_errorf("invalid spec %s: line %d column %d: %s", name, jerr.line, jerr.column,
		           jerr.text);
		return CLI_EXIT_USAGE;
	}
	if (!json_is_object(sp->doc)) {
		cli_errorf("invalid spec %s: not a JSON object", name);
		return CLI_EXIT_USAGE;
	}
	if ((rc = check_keys(sp->doc, keys, "top level")) != 0)
		return rc;
	v = json_object_get(sp->doc, "message");
	if (v && !json_is_string(v) && !json_is_null(v)) {
		cli_errorf("invalid spec: \"message\" must be a string or null");
		return CLI_EXIT_USAGE;
	}
	sp->message = json_is_string(v) ? json_string_value(v) : NULL;
	v = json_object_get(sp->doc, "branch");
	if (v && !json_is_string(v)) {
		cli_errorf("invalid spec: \"branch\" must be a string");
		return CLI_EXIT_USAGE;
	}
	sp->branch = v ? json_string_value(v) : NULL;
	v = json_object_get(sp->doc, "isolation");
	sp->isolation = UDR_TXN_SNAPSHOT;
	if (v && json_is_string(v) && strcmp(json_string_value(v), "serializable") == 0) {
		sp->isolation = UDR_TXN_SERIALIZABLE;
	} else if (v && !(json_is_string(v) && strcmp(json_string_value(v), "snapshot") == 0)) {
		cli_errorf("invalid spec: \"isolation\" must be \"snapshot\" or \"serializable\"");
		return CLI_EXIT_USAGE;
	}
	v = json_object_get(sp->doc, "tables");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		cli_errorf("invalid spec: \"tables\" (a non-empty array) is required");
		return CLI_EXIT_USAGE;
	}
	if (!(sp->tables = calloc(json_array_size(v), sizeof(*sp->tables)))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	json_array_foreach(v, i, item) {
		sp->ntables++;
		if ((rc = parse_table(&sp->tables[i], item, i)) != 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (strcmp(sp->tables[j].table, sp->tables[i].table) == 0) {
				cli_errorf("invalid spec: table \"%s\" appears twice (tables[%zu] and "
				           "tables[%zu])", sp->tables[i].table, j, i);
				return CLI_EXIT_USAGE;
			}
		}
	}
	/* as `udr commit` without HASH: usually forgotten chunks, and SQL has
	 * no columns to read from such a version (after every other check) */
	for (i = 0; i < sp->ntables; i++) {
		const struct spec_table *t = &sp->tables[i];
		if (t->nchunks == 0 && json_array_size(t->files) == 0 && !t->allow_empty) {
			cli_errorf("invalid spec: tables[%zu]: nothing to commit for table %s: no \"chunks\" or "
			           "\"files\" (\"allow_empty\": true commits a version without data)", i, t->table);
			return CLI_EXIT_USAGE;
		}
	}
	return CLI_EXIT_OK;
}

/* Every chunk the spec names must be stored before anything is written. */
static int spec_check_chunks(const struct spec *sp, udr_store *store)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	size_t i, j;
	int rc;

	for (i = 0; i < sp->ntables; i++) {
		for (j = 0; j < sp->tables[i].nchunks; j++) {
			rc = udr_store_exists(store, &sp->tables[i].chunks[j]);
			if (rc < 0)
				return cli_fail(rc);
			if (rc == 0) {
				udr_hash_tohex(hex, &sp->tables[i].chunks[j]);
				cli_errorf("chunk %s not found (tables[%zu], table %s); nothing committed",
				           hex, i, sp->tables[i].table);
				return CLI_EXIT_NOTFOUND;
			}
		}
	}
	return CLI_EXIT_OK;
}

/*
 * Store the files of one table before any transaction begins, so that a
 * long upload is never redone when the commit has to be retried.  They get
 * deltas against the table's latest version when it is a single chunk, as
 * with `commit --file` (the base is only a hint for compression: any
 * version will do).
 */
static int spec_store_files(struct spec_table *t, udr_catalog *cat, const cli_ctx *ctx, udr_store *store)
{
	udr_version *prev = NULL;
	udr_hash base;
	int has_base = 0, rc;
	size_t i, n = json_array_size(t->files);
	json_t *item;

	if (n == 0)
		return CLI_EXIT_OK;
	if (!(t->stored = calloc(n, sizeof(*t->stored)))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	if (udr_catalog_get_version(&prev, cat, t->table, 0) == 0 && prev->nchunks == 1) {
		base = prev->chunks[0];
		has_base = 1;
	}
	udr_version_free(prev);
	json_array_foreach(t->files, i, item)
		if ((rc = cli_put_input(&t->stored[i], ctx, store, json_string_value(item),
		                        has_base ? &base : NULL)) != 0)
			return rc;
	return CLI_EXIT_OK;
}

/* Build and stage the version of one table; an exit code. */
static int spec_stage(udr_txn *txn, const struct spec_table *t, const struct spec *sp)
{
	udr_version *v = NULL;
	uint64_t latest = 0;
	const char *key;
	json_t *item;
	size_t i;
	int rc;

	if ((rc = udr_txn_latest(&latest, txn, t->table)) != 0)
		return cli_fail(rc);
	if (t->version && t->version != latest + 1) {
		cli_errorf("version conflict on table %s: the spec asks for version %" PRIu64
		           " but the next version is %" PRIu64 "; nothing committed", t->table,
		           t->version, latest + 1);
		return CLI_EXIT_CONFLICT;
	}
	if ((rc = udr_version_new(&v, t->table, 0)) != 0)
		return cli_fail(rc);
	for (i = 0; i < t->nchunks; i++)
		if ((rc = udr_version_add_chunk(v, &t->chunks[i])) != 0)
			goto fail;
	for (i = 0; i < json_array_size(t->files); i++)
		if ((rc = udr_version_add_chunk(v, &t->stored[i])) != 0)
			goto fail;
	if ((rc = udr_version_set_message(v, t->message ? t->message : sp->message)) != 0)
		goto fail;
	json_object_foreach(t->metadata, key, item)
		if ((rc = udr_version_set_meta(v, key, json_string_value(item))) != 0)
			goto fail;
	rc = udr_txn_write(txn, v);
fail:
	udr_version_free(v);
	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

/*
 * One attempt: begin, stage every table, commit.  An exit code; *conflict
 * is set when the transaction lost to a concurrent commit.
 */
static int spec_attempt(uint64_t *seq, bool *conflict, const struct spec *sp, udr_db *db)
{
	udr_txn_options topts = UDR_TXN_OPTIONS_INIT;
	udr_txn *txn = NULL;
	size_t i;
	int rc;

	*conflict = false;
	topts.isolation = sp->isolation;
	topts.message = sp->message;
	topts.branch = sp->branch;
	if ((rc = udr_txn_begin(&txn, udr_db_catalog(db), &topts)) != 0)
		return cli_fail(rc);
	for (i = 0; i < sp->ntables; i++)
		if ((rc = spec_stage(txn, &sp->tables[i], sp)) != 0)
			goto out;
	if ((rc = udr_txn_commit(txn, seq)) == UDR_ECONFLICT)
		*conflict = true;
	else if (rc != 0)
		rc = cli_fail(rc);
out:
	udr_txn_free(txn);
	return rc;
}

int cli_commit_spec(cli_ctx *ctx, const char *spec_path)
{
	struct spec sp;
	udr_commit *c = NULL;
	udr_db *db = NULL;
	uint64_t seq = 0;
	bool conflict = false, any_version = false;
	size_t i;
	int rc, attempt;

	memset(&sp, 0, sizeof(sp));
	if ((rc = spec_load(&sp, spec_path)) != 0)
		goto out;
	if ((rc = cli_open_db(&db, ctx)) != 0)
		goto out;
	if ((rc = spec_check_chunks(&sp, udr_db_store(db))) != 0)
		goto out;
	for (i = 0; i < sp.ntables; i++) {
		any_version |= sp.tables[i].version != 0;
		if ((rc = spec_store_files(&sp.tables[i], udr_db_catalog(db), ctx, udr_db_store(db))) != 0)
			goto out;
	}
	/*
	 * Without explicit versions the spec asks for "the next version" of each
	 * table: a commit that lost to a concurrent one is retried on the new
	 * head (the files are stored already; only the checks are redone), as
	 * `commit --next` never conflicts.  Explicit versions conflict as asked.
	 */
	for (attempt = 0;; attempt++) {
		rc = spec_attempt(&seq, &conflict, &sp, db);
		if (!conflict)
			break;
		if (any_version || attempt >= 1000) {
			rc = cli_fail(UDR_ECONFLICT);
			goto out;
		}
		udr_error_clear();
		usleep((useconds_t)(1000 + rand() % 4000) * (unsigned)(attempt < 8 ? attempt + 1 : 8));
	}
	if (rc != 0)
		goto out;
	printf("commit %" PRIu64 "\n", seq);
	if ((rc = udr_catalog_get_commit(&c, udr_db_catalog(db), seq)) != 0) {
		rc = cli_fail(rc);
		goto out;
	}
	for (i = 0; i < c->nchanges; i++)
		printf("%s@%" PRIu64 "\n", c->changes[i].table, c->changes[i].new_version);
out:
	udr_commit_free(c);
	udr_db_close(db);
	spec_free(&sp);
	return rc;
}
