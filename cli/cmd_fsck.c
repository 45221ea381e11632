/*
 * cli/cmd_fsck.c - `udr fsck`: check the chunk store, then the catalog,
 * printing one line per problem and a summary.  With --repair-from FILE it
 * first takes good copies of damaged content from the files given; with
 * --repair it first removes crash leftovers and rebuilds derived files
 * (udr_db_repair, the query cache), checks, and checks again to report what
 * remains, naming the versions that are unrecoverable (docs/GC.md 6);
 * --json prints one JSON object instead of lines.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include <udr/sys/io.h>

#include "cli.h"

#ifdef UDR_HAVE_QUERY
#include <udr/query.h>
#endif

#define PLURAL(n) ((n) == 1 ? "" : "s")

/* A set of hashes (open addressing): the objects the store check reported,
 * the contents read back intact. */
typedef struct hash_set {
	udr_hash *v;
	bool *used;
	size_t cap, n;
} hash_set;

static size_t hset_slot(const hash_set *g, const udr_hash *h)
{
	size_t i;
	memcpy(&i, h->bytes, sizeof(i));
	for (i &= g->cap - 1; g->used[i] && memcmp(g->v[i].bytes, h->bytes, UDR_HASH_SIZE) != 0; i = (i + 1) & (g->cap - 1))
		;
	return i;
}

static bool hset_has(const hash_set *g, const udr_hash *h)
{
	return g->cap && g->used[hset_slot(g, h)];
}

static void hset_add(hash_set *g, const udr_hash *h)
{
	if (2 * (g->n + 1) > g->cap) {
		hash_set b = {NULL, NULL, g->cap ? 2 * g->cap : 256, 0};
		if (!(b.v = calloc(b.cap, sizeof(*b.v))) || !(b.used = calloc(b.cap, 1))) {
			free(b.v);
			free(b.used);
			return; /* a cache only */
		}
		for (size_t i = 0; i < g->cap; i++)
			if (g->used[i])
				hset_add(&b, &g->v[i]);
		free(g->v);
		free(g->used);
		*g = b;
	}
	size_t i = hset_slot(g, h);
	if (!g->used[i]) {
		g->used[i] = true;
		g->v[i] = *h;
		g->n++;
	}
}


/* Before each problem line: "found: " for --repair's first check (what it
 * found, and rebuilt where it could), "" otherwise. */
static const char *line_prefix = "";

/* --repair --dry-run: the check runs under a read-only I/O table (below) */
static bool dry_run;

struct fsck_state {
	const char *what; /* "chunk" or "catalog" */
	int in_catalog;
	uint64_t printed;
	hash_set reported; /* chunk store: the objects a problem names */
	json_t *list;      /* --json: problems go here instead of stdout */
};

/* Append {"kind","what","object","path","message"} to list. */
static void json_problem(json_t *list, const char *kind, const char *what, const char *object, const char *path,
                         const char *message)
{
	json_t *o = json_object();

	if (!o)
		return;
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "what", json_string(what));
	json_object_set_new(o, "object", object ? json_string(object) : json_null());
	json_object_set_new(o, "path", path ? json_string(path) : json_null());
	json_object_set_new(o, "message", json_string(message ? message : ""));
	json_array_append_new(list, o);
}

/*
 * The first word of a problem line.  A chunk-store problem concerns the chunk
 * itself; a catalog UDR_ENOTFOUND is a version naming something that is not
 * there (a missing chunk), so the version is "broken", not missing.
 */
static const char *problem_kind(int code, int in_catalog)
{
	switch (code) {
	case UDR_ECORRUPT:
		return "corrupt";
	case UDR_ENOTFOUND:
		return in_catalog ? "broken" : "missing";
	case UDR_EIO:
		return "unreadable";
	default:
		return "bad";
	}
}

/* One line per problem: "<kind> <what> <object>: <message> (<path>)". */
static int print_problem(const udr_problem *p, void *payload)
{
	struct fsck_state *st = payload;
	const char *object = p->object ? p->object : p->path ? p->path : "?";
	const char *message = p->message ? p->message : udr_strerror(p->code);
	char dry[1600];

	if (dry_run) {
		/* a rebuild the read-only table refused is no problem of the
		 * store: the problem it would fix was reported before it */
		if (strstr(message, strerror(EROFS)))
			return 0;
		/* "(rebuilt ...)", "(rewritten ...)": not done, --repair would */
		const char *w = strstr(message, "(rebuilt ");
		if (!w)
			w = strstr(message, "(rewritten ");
		if (w) {
			snprintf(dry, sizeof(dry), "%.*s(--repair: %s", (int)(w - message), message, w + 1);
			message = dry;
		}
	}

	if (!st->in_catalog && p->object) {
		udr_hash h;
		if (strlen(p->object) == UDR_HASH_HEXSIZE && udr_hash_fromhex(&h, p->object) == 0)
			hset_add(&st->reported, &h);
	}
	if (st->list) {
		json_problem(st->list, problem_kind(p->code, st->in_catalog), st->what, object, p->path, message);
		st->printed++;
		return 0;
	}
	printf("%s%s %s %s: %s", line_prefix, problem_kind(p->code, st->in_catalog), st->what, object, message);
	/* The path helps to find the file, unless the message already names it. */
	if (p->path && p->path != object && !strstr(message, p->path))
		printf(" (%s)", p->path);
	putchar('\n');
	st->printed++;
	return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The names of the directories (tables) or the numbers of the version
 * files (NNNN.json, 20 digits) under dir, sorted; 0 on success. */
static int list_dir(char ***names, size_t *nn, uint64_t **vers, size_t *nv, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (names) {
			if (*nn == cap) {
				size_t nc = cap ? 2 * cap : 16;
				char **t = realloc(*names, nc * sizeof(*t));
				if (!t)
					break;
				*names = t;
				cap = nc;
			}
			if (((*names)[*nn] = strdup(e->d_name)) != NULL)
				(*nn)++;
		} else {
			char *end;
			unsigned long long v;
			if (strlen(e->d_name) != 25 || strcmp(e->d_name + 20, ".json") != 0)
				continue;
			v = strtoull(e->d_name, &end, 10);
			if (end != e->d_name + 20 || v == 0)
				continue;
			if (*nv == cap) {
				size_t nc = cap ? 2 * cap : 64;
				uint64_t *t = realloc(*vers, nc * sizeof(*t));
				if (!t)
					break;
				*vers = t;
				cap = nc;
			}
			(*vers)[(*nv)++] = v;
		}
	}
	closedir(d);
	if (names && *nn)
		qsort(*names, *nn, sizeof(**names), cmp_cstr);
	if (vers && *nv)
		qsort(*vers, *nv, sizeof(**vers), cmp_u64);
	return 0;
}

/*
 * Call fn for every version file under catalog/tables/T/ (those of main,
 * of other branches and of deleted ones alike, as gc's mark looks at
 * them), tables by name, versions in order.
 */
typedef void (*version_file_fn)(const char *table, uint64_t version, void *payload);

static void each_version_file(udr_db *db, version_file_fn fn, void *payload)
{
	char **tables = NULL, tdir[4200];
	size_t ntables = 0;

	if (snprintf(tdir, sizeof(tdir), "%s/catalog/tables", udr_db_path(db)) >= (int)sizeof(tdir) ||
	    list_dir(&tables, &ntables, NULL, NULL, tdir) != 0)
		return;
	for (size_t t = 0; t < ntables; t++) {
		uint64_t *vs = NULL;
		size_t nv = 0;
		char vdir[4500];

		if (snprintf(vdir, sizeof(vdir), "%s/%s", tdir, tables[t]) < (int)sizeof(vdir) &&
		    list_dir(NULL, NULL, &vs, &nv, vdir) == 0)
			for (size_t i = 0; i < nv; i++)
				fn(tables[t], vs[i], payload);
		free(vs);
	}
	for (size_t t = 0; t < ntables; t++)
		free(tables[t]);
	free(tables);
}

/*
 * After the chunk store reported damage: name the table versions it
 * damages.  Each version (not swept by gc) whose chunks are all stored is
 * read back in full (udr_store_verify: every piece and delta base); one
 * that fails is printed as "damaged TABLE@V: chunk H: why".  Every version
 * file is looked at (catalog/tables/T/, as gc's mark does): those of main,
 * of other branches and of deleted ones alike (review R5: only main's
 * tables and versions were, so damage elsewhere named nothing).  A version
 * naming a missing chunk was reported by the catalog check already.  Only
 * run when the store check found something, so a clean fsck reads no data
 * twice.  reported (the store check ran to its end): the objects its
 * problems named; it decoded every object, each content through all its
 * pieces, so only a chunk it named is read again (for the message); NULL:
 * every chunk is read, a content found intact once for all versions.
 * list (--json): the damaged versions go there instead of stdout.  unrec
 * (--json, --repair): every version that cannot be read back, as
 * {"table","version","branch","commit","chunks":[...],"reason":"missing"|
 * "damaged"} ("missing": some chunk it names is not stored, which the
 * catalog check reported as "broken"; "damaged": stored but not readable).
 * Returns the number of damaged versions named (each a problem).
 */
static void add_unrecoverable(json_t *unrec, udr_catalog *c, const char *table, uint64_t version, uint64_t commit_seq,
                              json_t *chunks, uint64_t nchunks, const char *reason)
{
	udr_commit *cm = NULL;
	json_t *o = json_object();

	if (!o) {
		json_decref(chunks);
		return;
	}
	json_object_set_new(o, "table", json_string(table));
	json_object_set_new(o, "version", json_integer((json_int_t)version));
	if (commit_seq && udr_catalog_get_commit(&cm, c, commit_seq) == 0 && cm->branch)
		json_object_set_new(o, "branch", json_string(cm->branch));
	else
		json_object_set_new(o, "branch", json_null());
	udr_error_clear();
	udr_commit_free(cm);
	json_object_set_new(o, "commit", commit_seq ? json_integer((json_int_t)commit_seq) : json_null());
	json_object_set_new(o, "chunks", chunks);
	json_object_set_new(o, "chunk_count", json_integer((json_int_t)nchunks));
	json_object_set_new(o, "reason", json_string(reason));
	json_array_append_new(unrec, o);
}

/* At most this many chunks are listed per unrecoverable version (all are
 * counted in chunk_count). */
#define UNREC_CHUNKS_MAX 16

/* Append hex to the version's list while it is short; count it. */
static void unrec_chunk(json_t *list, uint64_t *n, const char *hex)
{
	if (json_array_size(list) < UNREC_CHUNKS_MAX)
		json_array_append_new(list, json_string(hex));
	(*n)++;
}

struct name_damaged {
	udr_db *db;
	const hash_set *reported;
	json_t *list, *unrec;
	hash_set good; /* contents read back intact */
	uint64_t printed;
};

static void name_damaged_one(const char *table, uint64_t version, void *payload)
{
	struct name_damaged *n = payload;
	udr_catalog *c = udr_db_catalog(n->db);
	udr_store *s = udr_db_store(n->db);
	udr_version *v = NULL;
	udr_expiry x;
	if (udr_version_expiry(&x, c, table, version) == 0 && x.swept)
		return; /* its data may be gone by design */
	udr_error_clear();
	if (udr_catalog_get_version(&v, c, table, version) != 0) {
		/* the catalog check reported the file; its chunks are
		 * not known, so its data cannot be read back */
		int code = udr_error_last()->code;
		udr_error_clear();
		if (n->unrec && code != UDR_ENOTFOUND)
			add_unrecoverable(n->unrec, c, table, version, 0, json_array(), 0, "version file damaged");
		return;
	}
	json_t *missing = n->unrec ? json_array() : NULL, *damaged = n->unrec ? json_array() : NULL;
	uint64_t nmissing = 0, ndamaged = 0;
	bool named = false;
	for (size_t k = 0; k < v->nchunks; k++) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, &v->chunks[k]);
		if (missing && !hset_has(&n->good, &v->chunks[k]) && udr_store_exists(s, &v->chunks[k]) != 1) {
			udr_error_clear(); /* reported as broken by the catalog check */
			unrec_chunk(missing, &nmissing, hex);
			continue;
		}
		if (hset_has(&n->good, &v->chunks[k]) || (n->reported && !hset_has(n->reported, &v->chunks[k])))
			continue; /* read back intact already, here or by the store check */
		if (udr_store_exists(s, &v->chunks[k]) != 1) {
			udr_error_clear(); /* missing: reported as broken */
			continue;
		}
		if (udr_store_verify(s, &v->chunks[k]) == 0) {
			hset_add(&n->good, &v->chunks[k]);
			continue;
		}
		/* one problem line per version (its first damaged
		 * chunk); every damaged chunk goes to unrecoverable */
		if (named) {
			udr_error_clear();
			if (damaged)
				unrec_chunk(damaged, &ndamaged, hex);
			continue;
		}
		if (n->list) {
			char obj[UDR_TABLE_NAME_MAX + 32], msg[600];
			snprintf(obj, sizeof(obj), "%s@%" PRIu64, table, version);
			snprintf(msg, sizeof(msg), "chunk %s cannot be read back: %.400s", hex,
			         udr_error_last()->message ? udr_error_last()->message : "damaged");
			json_problem(n->list, "damaged", "version", obj, NULL, msg);
		} else {
			printf("%sdamaged version %s@%" PRIu64 ": chunk %s cannot be read back: %s\n", line_prefix,
			       table, version, hex,
			       udr_error_last()->message ? udr_error_last()->message : "damaged");
		}
		udr_error_clear();
		n->printed++;
		named = true;
		if (damaged)
			unrec_chunk(damaged, &ndamaged, hex);
		if (!n->unrec)
			break; /* the line is all plain fsck says */
	}
	if (n->unrec && nmissing + ndamaged > 0) {
		/* missing chunks first, then damaged ones, at most
		 * UNREC_CHUNKS_MAX listed */
		size_t j;
		json_t *h;
		json_array_foreach(damaged, j, h) {
			if (json_array_size(missing) >= UNREC_CHUNKS_MAX)
				break;
			json_array_append(missing, h);
		}
		add_unrecoverable(n->unrec, c, v->table, v->version, v->commit_seq, missing, nmissing + ndamaged,
		                  nmissing && ndamaged ? "missing and damaged" : nmissing ? "missing" : "damaged");
	} else {
		json_decref(missing);
	}
	json_decref(damaged);
	udr_version_free(v);
}

static uint64_t name_damaged_versions(udr_db *db, const hash_set *reported, json_t *list, json_t *unrec)
{
	struct name_damaged n = { db, reported, list, unrec, { NULL, NULL, 0, 0 }, 0 };

	each_version_file(db, name_damaged_one, &n);
	free(n.good.v);
	free(n.good.used);
	return n.printed;
}

#ifdef UDR_HAVE_QUERY
/*
 * Every version file's row-level metadata as SQL reads it
 * (udr_query_check_version: udr.parts, each deletion vector decoded
 * against its part, udr.format): a version SQL would refuse as damaged
 * while every file hashes right (a hand-written udr.parts committed by a
 * program, a writer's bug) is a problem here, not only on read.  Versions
 * swept by gc and files the catalog check could not read are skipped (the
 * catalog check reported those).  Problems go through print_problem as the
 * catalog's; with unrec, each such version is unrecoverable.
 */
struct row_meta {
	udr_db *db;
	struct fsck_state *st;
	json_t *unrec;
};

static void check_row_meta_one(const char *table, uint64_t version, void *payload)
{
	struct row_meta *m = payload;
	udr_catalog *c = udr_db_catalog(m->db);
	udr_version *v = NULL;
	udr_expiry x;

	if (udr_version_expiry(&x, c, table, version) == 0 && x.swept) {
		udr_error_clear();
		return;
	}
	udr_error_clear();
	if (udr_catalog_get_version(&v, c, table, version) != 0) {
		udr_error_clear();
		return;
	}
	/* damage only: a version SQL refuses as bad input (an unknown
	 * udr.format, which commits refuse now) is no problem of the store */
	if (udr_query_check_version(udr_db_store(m->db), v) == UDR_ECORRUPT) {
		char obj[UDR_TABLE_NAME_MAX + 32], msg[700];
		udr_problem pr;

		snprintf(obj, sizeof(obj), "%s@%" PRIu64, table, version);
		snprintf(msg, sizeof(msg), "SQL cannot read it: %.600s",
		         udr_error_last()->message ? udr_error_last()->message : "bad row-level metadata");
		udr_error_clear();
		pr.code = UDR_ECORRUPT;
		pr.object = obj;
		pr.path = NULL;
		pr.message = msg;
		print_problem(&pr, m->st);
		if (m->unrec)
			add_unrecoverable(m->unrec, c, v->table, v->version, v->commit_seq, json_array(), 0,
			                  "row-level metadata damaged");
	}
	udr_error_clear();
	udr_version_free(v);
}

static void check_row_meta(udr_db *db, struct fsck_state *st, json_t *unrec)
{
	struct row_meta m = { db, st, unrec };

	each_version_file(db, check_row_meta_one, &m);
}
#endif

/* Run one check; returns its UDR code after reporting an aborted check. */
static int run_check(int rc, const char *what)
{
	if (rc != 0 && rc != UDR_ECORRUPT) {
		const udr_error *e = udr_error_last();

		cli_errorf("%s check failed: %s", what,
		           e->message && e->message[0] ? e->message : udr_strerror(rc));
	}
	return rc;
}

enum { OPT_REPAIR_FROM = CLI_OPT_FIRST, OPT_RESET_HEAD, OPT_REPAIR, OPT_JSON, OPT_DRY_RUN };

/* The files of --repair-from, in order, and the flags. */
struct repair_list {
	const char **files;
	size_t n;
	bool reset_head, repair, json, dry_run;
};

static int fsck_opt(int opt, const char *arg, void *payload)
{
	struct repair_list *l = payload;
	const char **p;

	if (opt == OPT_DRY_RUN) {
		l->dry_run = true;
		return -1;
	}
	if (opt == OPT_RESET_HEAD || opt == OPT_REPAIR || opt == OPT_JSON) {
		*(opt == OPT_RESET_HEAD ? &l->reset_head : opt == OPT_REPAIR ? &l->repair : &l->json) = true;
		return -1;
	}
	if (!(p = realloc(l->files, (l->n + 1) * sizeof(*p)))) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
	l->files = p;
	l->files[l->n++] = arg;
	return -1;
}

/*
 * Store each file; the put replaces every damaged object of its content and
 * pieces.  One line per file.  Returns 0 or the exit code of the first
 * failure (the others are still tried).
 */
static int repair_from(udr_store *store, const struct repair_list *l)
{
	int code = CLI_EXIT_OK;

	for (size_t i = 0; i < l->n; i++) {
		char hex[UDR_HASH_HEXSIZE + 1];
		uint64_t repaired = 0;
		udr_hash h;
		int rc = udr_store_repair_file(&h, &repaired, store, l->files[i]);

		if (rc) {
			int c = cli_fail(rc);

			if (code == CLI_EXIT_OK)
				code = c;
			continue;
		}
		udr_hash_tohex(hex, &h);
		printf("repair %s from %s: %" PRIu64 " damaged object%s replaced\n", hex, l->files[i],
		       repaired, PLURAL(repaired));
	}
	return code;
}

/* One check of the whole store: the chunk store, the catalog, the versions
 * damage reaches. */
struct pass {
	udr_check_stats cs, ms;
	uint64_t problems;
	int rc_store, rc_cat;
	json_t *list;  /* --json: the problems */
	json_t *unrec; /* --json, --repair: the unrecoverable versions (NULL: not collected) */
};

static void run_pass(struct pass *p, udr_db *db)
{
	struct fsck_state chunk_state = { "chunk", 0, 0, { NULL, NULL, 0, 0 }, p->list };
	struct fsck_state cat_state = { "catalog", 1, 0, { NULL, NULL, 0, 0 }, p->list };

	p->rc_store = run_check(udr_store_fsck(&p->cs, udr_db_store(db), print_problem, &chunk_state), "chunk store");
	p->rc_cat = run_check(udr_catalog_fsck(&p->ms, udr_db_catalog(db), print_problem, &cat_state), "catalog");
#ifdef UDR_HAVE_QUERY
	check_row_meta(db, &cat_state, p->unrec);
	/* part directories of killed imports (<root>/cache/query/tmp/import-*) */
	{
		uint64_t stale = 0;

		/* not under --dry-run: it removes part directories itself */
		if (!dry_run && run_check(udr_query_clean_temp(&stale, db, NULL), "query temp") == 0)
			p->ms.temp_removed += stale;
	}
#endif
	p->problems = chunk_state.printed + cat_state.printed;
	if (chunk_state.printed > 0 || (p->unrec && cat_state.printed > 0))
		p->problems += name_damaged_versions(db,
		                                     chunk_state.printed == 0 || p->rc_store == 0 || p->rc_store == UDR_ECORRUPT
		                                             ? &chunk_state.reported
		                                             : NULL,
		                                     p->list, p->unrec);
	free(chunk_state.reported.v);
	free(chunk_state.reported.used);
	free(cat_state.reported.v);
	free(cat_state.reported.used);
}

static bool pass_clean(const struct pass *p)
{
	return p->problems == 0 && p->rc_store == 0 && p->rc_cat == 0;
}

static uint64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

/*
 * --repair's own step (udr_db_repair, then the query cache), printed one
 * line per thing done ("repair: ...") or, with --json, kept in *out.
 * Returns 0 or the exit code of a refusal (UDR_ELOCKED: a gc runs).
 */
static int repair_step(json_t **out, udr_db *db, bool json)
{
	char *text = NULL;
	json_t *r;
	int rc = udr_db_repair(&text, db);

	*out = NULL;
	if (rc)
		return cli_fail(rc);
	r = json_loads(text, 0, NULL);
	udr_free(text);
	if (!r) {
		cli_errorf("out of memory");
		return CLI_EXIT_IO;
	}
#ifdef UDR_HAVE_QUERY
	{
		udr_query_cache_info gone = { 0, 0, 0 };
		int skipped = 0;

		if (run_check(udr_query_cache_verify(&gone, &skipped, db, NULL), "query cache") != 0)
			udr_error_clear();
		json_object_set_new(r, "query_cache_removed", json_integer((json_int_t)gone.parts));
		json_object_set_new(r, "query_cache_busy", json_boolean(skipped));
	}
#endif
	if (!json) {
		const char *phase = json_string_value(json_object_get(r, "gc_phase"));
		uint64_t n;

		if (json_is_true(json_object_get(r, "gc_state_rebuilt")))
			printf("repair: chunks/gc/STATE was damaged and no gc runs: written anew at epoch %" PRIu64
			       " (the newest gc record: %" PRIu64 "); a gc run it named is abandoned, nothing deleted (the next "
			       "udr gc collects what it left)\n",
			       jint(r, "gc_epoch"), jint(r, "gc_seq"));
		if (json_is_true(json_object_get(r, "gc_finished")))
			printf("repair: gc run of epoch %" PRIu64 " was killed while deleting: finished (its plan's packs "
			       "removed)\n", jint(r, "gc_epoch"));
		if (json_is_true(json_object_get(r, "gc_plan_damaged")))
			printf("repair: gc run of epoch %" PRIu64 " was killed while deleting and its plan is damaged: "
			       "abandoned, gc state idle, nothing more deleted (the next udr gc collects what it left)\n",
			       jint(r, "gc_epoch"));
		if (json_is_true(json_object_get(r, "gc_abandoned")))
			printf("repair: gc run of epoch %" PRIu64 " was killed before deleting (%s): abandoned, gc state "
			       "idle\n", jint(r, "gc_epoch"), phase ? phase : "?");
		if ((n = jint(r, "gc_files")) > 0)
			printf("repair: removed %" PRIu64 " run file%s of abandoned gc runs\n", n, PLURAL(n));
		if ((n = jint(r, "fresh_cut_bytes")) > 0)
			printf("repair: cut a torn record (%" PRIu64 " byte%s) off chunks/gc/fresh\n", n, PLURAL(n));
		if ((n = jint(r, "leases")) > 0)
			printf("repair: removed %" PRIu64 " stale lease%s of dead processes\n", n, PLURAL(n));
		if ((n = jint(r, "pack_indexes")) > 0)
			printf("repair: indexed %" PRIu64 " pack%s without an index, from %s bytes\n", n, PLURAL(n),
			       n == 1 ? "its" : "their");
		if ((n = jint(r, "pack_indexes_rewritten")) > 0)
			printf("repair: rewrote %" PRIu64 " damaged pack index%s from %s pack%s\n", n, n == 1 ? "" : "es",
			       n == 1 ? "its" : "their", PLURAL(n));
		if (json_is_true(json_object_get(r, "midx")))
			printf("repair: rebuilt the multi-pack index\n");
		{
			json_t *x = json_object_get(r, "expiring");
			const char *was = json_string_value(json_object_get(x, "was"));

			if (was && strcmp(was, "odd") == 0)
				printf("repair: catalog/expiring was left odd (%" PRIu64 ") by an expire step whose process "
				       "died: made even (%" PRIu64 ")\n", jint(x, "generation"), jint(x, "generation") + 1);
			else if (was)
				printf("repair: catalog/expiring was damaged (%s): written anew, even (0)\n",
				       json_string_value(json_object_get(x, "damage")));
		}
		if ((n = jint(r, "query_cache_removed")) > 0)
			printf("repair: removed %" PRIu64 " query cache file%s failing verification\n", n, PLURAL(n));
		if (json_is_true(json_object_get(r, "query_cache_busy")))
			printf("repair: the query cache is in use: not verified\n");
	}
	*out = r;
	return 0;
}

/* "unrecoverable T@V (branch B, commit S): chunk H missing" lines. */
static void print_unrecoverable(json_t *unrec)
{
	size_t i;
	json_t *u;

	json_array_foreach(unrec, i, u) {
		json_t *ch = json_object_get(u, "chunks"), *b = json_object_get(u, "branch");
		size_t n = json_array_size(ch);

		uint64_t all = jint(u, "chunk_count");

		if (all == 0) {
			/* its version file is damaged: which chunks it names is not known */
			printf("unrecoverable %s@%" PRIu64 ": %s\n", json_string_value(json_object_get(u, "table")),
			       jint(u, "version"), json_string_value(json_object_get(u, "reason")));
			continue;
		}
		printf("unrecoverable %s@%" PRIu64 " (branch %s, commit %" PRIu64 "): chunk%s", json_string_value(json_object_get(u, "table")),
		       jint(u, "version"), json_is_string(b) ? json_string_value(b) : "?", jint(u, "commit"), PLURAL(all));
		for (size_t k = 0; k < n; k++)
			printf("%s%s", k ? ", " : " ", json_string_value(json_array_get(ch, k)));
		if (all > n)
			printf(" and %" PRIu64 " more", all - n);
		printf(" %s\n", json_string_value(json_object_get(u, "reason")));
	}
}

/*
 * --dry-run: the I/O table of the library (udr/sys/io.h, through which every
 * file-system call of libudr goes) replaced by one under which nothing can
 * change the store: a new file, a link, a rename, an unlink or a mkdir fail
 * with EROFS, and an existing file is only ever opened read-only (flock
 * works on it; a write through it fails).  What the check would rebuild
 * then fails and is reported, never done.
 */
static const udr_io_methods *ro_base;

static int ro_open(const char *path, int flags, mode_t mode)
{
	struct stat st;

#ifdef O_TMPFILE
	if ((flags & O_TMPFILE) == O_TMPFILE) {
		errno = EROFS;
		return -1;
	}
#endif
	if (flags & (O_TRUNC | O_EXCL)) {
		errno = EROFS;
		return -1;
	}
	if ((flags & O_CREAT) && ro_base->stat(path, &st) < 0) {
		if (errno == ENOENT)
			errno = EROFS;
		return -1;
	}
	flags &= ~(O_WRONLY | O_RDWR | O_CREAT | O_APPEND);
	return ro_base->open(path, flags | O_RDONLY, 0);
}

static int ro_close(int fd) { return ro_base->close(fd); }
static ssize_t ro_read(int fd, void *buf, size_t len) { return ro_base->read(fd, buf, len); }
static ssize_t ro_pread(int fd, void *buf, size_t len, off_t off) { return ro_base->pread(fd, buf, len, off); }
static int ro_stat(const char *path, struct stat *st) { return ro_base->stat(path, st); }
static int ro_fstat(int fd, struct stat *st) { return ro_base->fstat(fd, st); }
static int ro_flock(int fd, int op) { return ro_base->flock(fd, op); }

static ssize_t ro_write(int fd, const void *buf, size_t len)
{
	(void)fd, (void)buf, (void)len;
	errno = EROFS;
	return -1;
}

static int ro_fd(int fd)
{
	(void)fd;
	return 0; /* nothing was written through it */
}

static int ro_path2(const char *a, const char *b)
{
	(void)a, (void)b;
	errno = EROFS;
	return -1;
}

static int ro_unlink(const char *path)
{
	(void)path;
	errno = EROFS;
	return -1;
}

static int ro_mkdir(const char *path, mode_t mode)
{
	struct stat st;

	(void)mode;
	errno = ro_base->stat(path, &st) == 0 ? EEXIST : EROFS; /* as mkdir says of a name that exists */
	return -1;
}

static int ro_link_fd(int fd, const char *to)
{
	(void)fd, (void)to;
	errno = EROFS;
	return -1;
}

static const udr_io_methods ro_methods = {
	UDR_IO_METHODS_VERSION, ro_open, ro_close, ro_read, ro_pread, ro_write, ro_fd,
	ro_path2, ro_path2, ro_unlink, ro_mkdir, ro_stat, ro_fstat, ro_flock, ro_link_fd, ro_fd,
};

/* catalog/expiring damaged in its bytes (--repair rewrites it), not a
 * directory or other non-file in its place, nor unreadable (left to a person) */
static bool expiring_rewritable(const char *damage)
{
	return damage && strncmp(damage, "not a regular file", 18) != 0 && strncmp(damage, "cannot", 6) != 0;
}

/*
 * --repair --dry-run's own step: what udr_db_repair would do, read from the
 * gc status (nothing taken, nothing written), one "would: ..." line each
 * or, with --json, in *out.  Returns 0, or the exit code --repair would
 * end with at once (5: a gc runs; 4: STATE damaged).
 */
static int dry_repair_step(json_t **out, udr_db *db, bool json)
{
	char *text = NULL;
	json_t *st, *r = json_object(), *lines = json_array();
	const char *phase;
	uint64_t epoch, n;
	int code = 0;
	char line[900];

	*out = NULL;
	if (!r || !lines || udr_db_gc_status(&text, db) != 0 || !(st = json_loads(text, 0, NULL))) {
		udr_free(text);
		json_decref(r);
		json_decref(lines);
		return cli_fail(UDR_EIO);
	}
	udr_free(text);
	phase = json_string_value(json_object_get(st, "phase"));
	epoch = jint(st, "epoch");
#define WOULD(...) do { \
		snprintf(line, sizeof(line), __VA_ARGS__); \
		json_array_append_new(lines, json_string(line)); \
		if (!json) \
			printf("would: %s\n", line); \
	} while (0)
	if (!json_is_null(json_object_get(st, "running"))) {
		WOULD("refuse: a gc runs (pid %" PRIu64 "); fsck --repair does not run while gc does", jint(st, "running"));
		code = cli_exit_code(UDR_ELOCKED);
	} else {
		if (phase && strcmp(phase, "damaged") == 0)
			WOULD("write chunks/gc/STATE anew (it is damaged): idle, a gc run it named abandoned (nothing "
			      "deleted), the newest gc record of the log as its floor");
		if (phase && strcmp(phase, "deleting") == 0 && json_string_value(json_object_get(st, "plan_damage")))
			WOULD("abandon the gc run of epoch %" PRIu64 " killed while deleting: its plan is damaged (gc state "
			      "idle, nothing more deleted)", epoch);
		else if (phase && strcmp(phase, "deleting") == 0)
			WOULD("finish the gc run of epoch %" PRIu64 " killed while deleting (its plan's packs removed)", epoch);
		else if (phase && (strcmp(phase, "planned") == 0 || strcmp(phase, "rewritten") == 0))
			WOULD("abandon the gc run of epoch %" PRIu64 " killed before deleting (%s): gc state idle", epoch, phase);
		if ((n = json_array_size(json_object_get(st, "run_files"))) > 0)
			WOULD("remove %" PRIu64 " run file%s of abandoned gc runs (and the files of a run it abandons)", n,
			      PLURAL(n));
		if ((n = jint(st, "fresh_torn")) > 0)
			WOULD("cut a torn record (%" PRIu64 " byte%s) off chunks/gc/fresh", n, PLURAL(n));
		if ((n = jint(st, "stale_leases")) > 0)
			WOULD("remove %" PRIu64 " stale lease%s of dead processes", n, PLURAL(n));
		{
			json_t *x = json_object_get(st, "expiring");
			const char *xs = json_string_value(json_object_get(x, "state"));

			if (xs && strcmp(xs, "odd") == 0)
				WOULD("make catalog/expiring even (%" PRIu64 "): an expire step whose process died left it odd",
				      jint(x, "generation") + 1);
			else if (xs && strcmp(xs, "damaged") == 0 && expiring_rewritable(json_string_value(json_object_get(x, "damage"))))
				WOULD("write catalog/expiring anew, even (0): it is damaged (%s)",
				      json_string_value(json_object_get(x, "damage")));
		}
		WOULD("rebuild what the check below finds damaged and derivable (pack indexes, the multi-pack index, "
		      "checkpoints) and remove temp files of dead writers; verify the query cache");
	}
#undef WOULD
	json_object_set_new(r, "gc_phase", json_string(phase ? phase : "?"));
	json_object_set_new(r, "gc_epoch", json_integer((json_int_t)epoch));
	json_object_set_new(r, "would", lines);
	json_decref(st);
	*out = r;
	return code;
}

/* --json when no check ran (the store cannot be opened, or --repair was
 * refused): one object with the error and the exit code, as the error
 * line on stderr says them; code is returned. */
static int json_error(int code, const char *message)
{
	json_t *out = json_object();

	if (!out)
		return code;
	json_object_set_new(out, "error", json_string(message && message[0] ? message : "failed"));
	json_object_set_new(out, "problem_count", json_null());
	json_object_set_new(out, "problems", json_array());
	json_object_set_new(out, "unrecoverable", json_array());
	json_object_set_new(out, "exit", json_integer(code));
	json_dumpf(out, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(out);
	return code;
}

/* cli_open_db, and with --json the JSON document of its failure. */
static int open_db(udr_db **db, cli_ctx *ctx, bool json)
{
	int rc = cli_open_db(db, ctx);

	if (rc != 0 && json) {
		char msg[4400];

		if (rc == CLI_EXIT_NOTFOUND && (!udr_error_last()->message || !udr_error_last()->message[0]))
			snprintf(msg, sizeof(msg), "not a udr store: %s (run udr init)", ctx->store_dir);
		else if (rc == CLI_EXIT_NOTFOUND)
			snprintf(msg, sizeof(msg), "not a udr store: %s (run udr init): %s", ctx->store_dir,
			         udr_error_last()->message);
		else
			snprintf(msg, sizeof(msg), "%s", udr_error_last()->message ? udr_error_last()->message : "");
		return json_error(rc, msg);
	}
	return rc;
}

int cli_cmd_fsck(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repair-from", required_argument, NULL, OPT_REPAIR_FROM },
		{ "reset-head", no_argument, NULL, OPT_RESET_HEAD },
		{ "repair", no_argument, NULL, OPT_REPAIR },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("fsck");
	struct repair_list repairs = { NULL, 0, false, false, false, false };
	struct pass first, last;
	json_t *rep = NULL, *notes = NULL, *out = NULL;
	udr_db *db;
	int rc_repair, code;
	bool gc_reset = false;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, fsck_opt, &repairs);

	if (rc >= 0) {
		free(repairs.files);
		return rc;
	}
	if (optind < argc) {
		free(repairs.files);
		return cli_usage_error(self, "too many arguments");
	}
	if (repairs.json && (repairs.n > 0 || repairs.reset_head)) {
		free(repairs.files);
		return cli_usage_error(self, "--json does not go with --repair-from or --reset-head");
	}
	if (repairs.dry_run && (!repairs.repair || repairs.n > 0 || repairs.reset_head)) {
		free(repairs.files);
		return cli_usage_error(self, "--dry-run goes with --repair only (not --repair-from or --reset-head)");
	}
	if (repairs.dry_run) {
		/* from here on no call of libudr can change the store */
		dry_run = true;
		ro_base = udr_io_current();
		if (udr_io_set(&ro_methods) != 0) {
			free(repairs.files);
			return cli_fail(UDR_EINVAL);
		}
	}
	for (size_t i = 0; i < repairs.n; i++) {
		/* before the check of the whole store, not after it */
		struct stat st;
		int failed = stat(repairs.files[i], &st) != 0, e = errno;
		if (failed || S_ISDIR(st.st_mode)) {
			cli_errorf("--repair-from %s: %s", repairs.files[i], failed ? strerror(e) : "is a directory");
			free(repairs.files);
			return failed && e == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_USAGE;
		}
	}
	if ((rc = open_db(&db, ctx, repairs.json)) != 0) {
		free(repairs.files);
		return rc;
	}
	rc_repair = repair_from(udr_db_store(db), &repairs);
	free(repairs.files);
	if (repairs.reset_head) {
		uint64_t was = 0, now = 0;

		rc = udr_catalog_reset_head(&was, &now, udr_db_catalog(db));
		if (rc) {
			udr_db_close(db);
			return cli_fail(rc);
		}
		if (was != now)
			printf("reset HEAD from %" PRIu64 " to %" PRIu64 " (the end of the log)\n", was, now);
	}
	if (repairs.dry_run && (rc = dry_repair_step(&rep, db, repairs.json)) != 0) {
		/* why points into rep: said before rep is freed */
		const char *why = json_string_value(json_array_get(json_object_get(rep, "would"), 0));

		udr_db_close(db);
		if (repairs.json)
			rc = json_error(rc, why);
		json_decref(rep);
		return rc;
	}
	if (repairs.repair && !repairs.dry_run && (rc = repair_step(&rep, db, repairs.json)) != 0) {
		udr_db_close(db); /* refused (a gc runs): nothing was changed */
		return repairs.json ? json_error(rc, udr_error_last()->message) : rc;
	}
	memset(&first, 0, sizeof(first));
	memset(&last, 0, sizeof(last));
	if (repairs.json)
		first.list = json_array();
	if ((repairs.json && !repairs.repair) || repairs.dry_run)
		first.unrec = json_array();
	if (repairs.repair)
		line_prefix = "found: ";
	run_pass(&first, db);
	line_prefix = "";
	if (repairs.repair && !repairs.dry_run && !pass_clean(&first)) {
		/* what the check could rebuild it has: what remains now is the
		 * store's state after repair, unrecoverable versions named */
		if (!repairs.json)
			printf("repair: checking again\n");
		last.unrec = json_array();
		if (repairs.json)
			last.list = json_array();
		/* a fresh handle: the first pass rewrote indexes on disk that this
		 * handle still holds as it read them before (a damaged index entry
		 * would name an intact chunk unrecoverable) */
		udr_db_close(db);
		if ((rc = open_db(&db, ctx, repairs.json)) != 0)
			return rc;
		run_pass(&last, db);
	} else {
		last = first;
		memset(&first, 0, sizeof(first)); /* one pass: its lists and counts are last's */
		if (repairs.repair && !last.unrec)
			last.unrec = json_array();
	}
	{
		/* a live owner's lease damaged by hand (GC.md 2.4): no data is
		 * at risk, but expiry stops until it goes; said, not counted */
		char *st = NULL;

		if (udr_db_gc_status(&st, db) == 0) {
			json_t *r = json_loads(st, 0, NULL);
			json_t *d = json_object_get(json_object_get(r, "leases"), "damaged");
			const char *phase = json_string_value(json_object_get(r, "phase"));

			char msg[5][600];
			int nm = 0;
			json_t *rf = json_object_get(r, "run_files");

			/* a damaged STATE is a problem (writers and gc stop); what
			 * a crash leaves and --repair removes (GC.md 6) is said, not
			 * counted: no data is at risk */
			if (phase && strcmp(phase, "damaged") == 0) {
				/* a problem: puts, commits of chunks and gc stop */
				char pm[900], sp[4200];
				const char *dm = json_string_value(json_object_get(r, "damage"));

				snprintf(pm, sizeof(pm), "%.800s", dm ? dm : "chunks/gc/STATE is damaged");
				snprintf(sp, sizeof(sp), "%s/chunks/gc/STATE", udr_db_path(db));
				if (repairs.json)
					json_problem(last.list, "corrupt", "gc", "STATE", sp, pm);
				else
					printf("corrupt gc STATE: %s\n", pm);
				last.problems++;
			} else if (json_string_value(json_object_get(r, "plan_damage")) &&
			           json_is_null(json_object_get(r, "running"))) {
				/* a problem: no gc run and no --repair finishes that run
				 * (--repair abandons it) */
				char pm[900], sp[4200];
				const char *pname = json_string_value(json_object_get(r, "plan"));

				snprintf(pm, sizeof(pm), "%.800s", json_string_value(json_object_get(r, "plan_damage")));
				snprintf(sp, sizeof(sp), "%s/chunks/gc/%s", udr_db_path(db), pname ? pname : "");
				if (repairs.json)
					json_problem(last.list, "corrupt", "gc", pname ? pname : "plan", sp, pm);
				else
					printf("corrupt gc plan: %s\n", pm);
				last.problems++;
			} else if (phase && strcmp(phase, "idle") != 0 && strcmp(phase, "aborted") != 0 &&
			         json_is_null(json_object_get(r, "running")))
				snprintf(msg[nm++], sizeof(msg[0]), "gc epoch %" PRIu64 " was interrupted (%s); the next udr gc "
				         "or udr fsck --repair finishes it", jint(r, "epoch"), phase);
			{
				/* the expire handshake's file (GC.md 2.2, 6): damaged
				 * is a problem, odd with its lock free a crash's
				 * leftover that nobody waits on */
				json_t *x = json_object_get(r, "expiring");
				const char *xs = json_string_value(json_object_get(x, "state"));
				const char *xp = json_string_value(json_object_get(x, "path"));

				if (xs && strcmp(xs, "damaged") == 0) {
					char pm[900];
					const char *dm = json_string_value(json_object_get(x, "damage"));

					snprintf(pm, sizeof(pm), "%.200s is damaged: %.200s; readers and pinners go on (they wait "
					         "only while its lock is held), %s", xp ? xp : "expiring", dm ? dm : "?",
					         expiring_rewritable(dm) ? "udr fsck --repair writes it anew"
					                                 : "expire steps fail until it is moved away by hand");
					if (repairs.json)
						json_problem(last.list, "corrupt", "catalog", "expiring", xp, pm);
					else
						printf("corrupt catalog/expiring: %s\n", pm);
					last.problems++;
				} else if (xs && strcmp(xs, "odd") == 0) {
					snprintf(msg[nm++], sizeof(msg[0]), "catalog/expiring is odd (%" PRIu64 "): an expire step "
					         "was interrupted (its process died, nothing waits on it); udr fsck --repair makes "
					         "it even", jint(x, "generation"));
				}
			}
			if (jint(r, "stale_leases") > 0)
				snprintf(msg[nm++], sizeof(msg[0]), "%" PRIu64 " lease file%s of dead processes; udr fsck "
				         "--repair or udr gc removes them", jint(r, "stale_leases"),
				         PLURAL(jint(r, "stale_leases")));
			if (jint(r, "fresh_torn") > 0)
				snprintf(msg[nm++], sizeof(msg[0]), "chunks/gc/fresh ends with a torn record (%" PRIu64 " byte%s); "
				         "udr fsck --repair cuts it", jint(r, "fresh_torn"),
				         PLURAL(jint(r, "fresh_torn")));
			if (json_is_null(json_object_get(r, "running")) && json_array_size(rf) > 0) {
				/* run files no STATE names; with STATE gone (removed by
				 * hand), a problem: the run's epoch and the newest gc
				 * record's number went with it (GC.md 6) */
				char names[400] = "";
				size_t nf = json_array_size(rf), k, used = 0;

				for (k = 0; k < nf && k < 4; k++)
					used += (size_t)snprintf(names + used, used < sizeof(names) ? sizeof(names) - used : 0,
					                         "%s%.100s", k ? ", " : "", json_string_value(json_array_get(rf, k)));
				if (nf > 4 && used < sizeof(names))
					snprintf(names + used, sizeof(names) - used, " and %zu more", nf - 4);
				/* a first run (epoch 1) writes its plan before its
				 * first STATE: killed between, it leaves these files
				 * and no STATE, a crash's leftover; files of a later
				 * epoch mean a STATE existed and went */
				bool later = false;

				for (k = 0; k < nf; k++) {
					const char *n = json_string_value(json_array_get(rf, k)), *dash = strchr(n ? n : "", '-');
					char *end = NULL;
					unsigned long long e = dash ? strtoull(dash + 1, &end, 10) : 0;

					if (!dash || end == dash + 1 || e != 1)
						later = true;
				}
				if (json_is_true(json_object_get(r, "state_missing")) && later) {
					char pm[900], sp[4200];

					snprintf(pm, sizeof(pm), "chunks/gc/STATE is missing but %zu run file%s of a gc run "
					         "remain%s (%s): removed by hand, the gc epoch and the newest gc record's "
					         "number went with it; udr fsck --repair removes the run files (no pack, no "
					         "object)", nf, PLURAL(nf), nf == 1 ? "s" : "", names);
					snprintf(sp, sizeof(sp), "%s/chunks/gc/STATE", udr_db_path(db));
					if (repairs.json)
						json_problem(last.list, "missing", "gc", "STATE", sp, pm);
					else
						printf("missing gc STATE: %s\n", pm);
					last.problems++;
				} else {
					snprintf(msg[nm++], sizeof(msg[0]), "%zu run file%s of %s left in chunks/gc "
					         "(%s); udr fsck --repair or the next udr gc removes them", nf, PLURAL(nf),
					         json_is_true(json_object_get(r, "state_missing"))
					                 ? "a first gc run killed before it wrote chunks/gc/STATE"
					                 : "earlier gc runs", names);
				}
			}
			for (int i = 0; i < nm; i++) {
				if (repairs.json) {
					notes = notes ? notes : json_array();
					json_array_append_new(notes, json_string(msg[i]));
				} else {
					printf("note: %s\n", msg[i]);
				}
			}

			if (json_is_string(d)) {
				char dmsg[4400];

				snprintf(dmsg, sizeof(dmsg), "lease %s of a live process is damaged: retention expires nothing "
				         "while it stays (it goes when its owner exits)", json_string_value(d));
				if (repairs.json) {
					notes = notes ? notes : json_array();
					json_array_append_new(notes, json_string(dmsg));
				} else {
					printf("note: %s\n", dmsg);
				}
			}
			json_decref(r);
		} else {
			udr_error_clear();
		}
		udr_free(st);
	}
	if (pass_clean(&last) && !repairs.dry_run) {
		/* a gc run its guard aborted may run again once the store is clean */
		int was = 0;

		if (udr_db_gc_reset(&was, db) != 0) {
			cli_errorf("%s", udr_error_last()->message);
			last.rc_store = UDR_EIO;
		} else if (was) {
			gc_reset = true;
			if (!repairs.json)
				printf("gc: the aborted run was reset (no problem found); gc may run again\n");
		}
	}
	udr_db_close(db);

	if (last.problems > 0 || last.rc_store == UDR_ECORRUPT || last.rc_cat == UDR_ECORRUPT)
		code = CLI_EXIT_CORRUPT;
	else if (last.rc_store || last.rc_cat)
		code = cli_exit_code(last.rc_store ? last.rc_store : last.rc_cat);
	else
		code = rc_repair;
	if (repairs.json) {
		uint64_t temp = last.cs.temp_removed + last.ms.temp_removed + first.cs.temp_removed + first.ms.temp_removed;

		out = json_object();
		json_object_set_new(out, "objects", json_integer((json_int_t)last.cs.objects));
		json_object_set_new(out, "bytes", json_integer((json_int_t)last.cs.bytes));
		json_object_set_new(out, "catalog_files", json_integer((json_int_t)last.ms.objects));
		json_object_set_new(out, "problem_count", json_integer((json_int_t)last.problems));
		json_object_set_new(out, "temp_removed", json_integer((json_int_t)temp));
		json_object_set_new(out, "problems", last.list);
		json_object_set_new(out, "unrecoverable", last.unrec ? last.unrec : json_array());
		if (rep) {
			/* what the first check found (and rebuilt where it could) */
			json_object_set_new(rep, "found", first.list ? first.list : json_array());
			json_object_set_new(rep, "found_count", json_integer((json_int_t)first.problems));
			json_object_set_new(out, "repair", rep);
			rep = NULL;
		}
		json_object_set_new(out, "gc_reset", json_boolean(gc_reset));
		if (repairs.dry_run)
			json_object_set_new(out, "dry_run", json_true());
		json_object_set_new(out, "notes", notes ? notes : json_array());
		json_object_set_new(out, "exit", json_integer(code));
		json_dumpf(out, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(out);
		json_decref(first.unrec);
		return code;
	}
	if (repairs.repair)
		print_unrecoverable(last.unrec);
	json_decref(last.unrec);
	json_decref(first.unrec);
	json_decref(rep);
	{
		uint64_t temp = last.cs.temp_removed + last.ms.temp_removed + first.cs.temp_removed + first.ms.temp_removed;

		if (repairs.dry_run)
			printf("fsck --dry-run: %" PRIu64 " object%s (%" PRIu64 " bytes on disk) and %" PRIu64
			       " catalog file%s checked, %" PRIu64 " problem%s found, nothing changed\n",
			       last.cs.objects, PLURAL(last.cs.objects), last.cs.bytes, last.ms.objects,
			       PLURAL(last.ms.objects), last.problems, PLURAL(last.problems));
		else
			printf("fsck: %" PRIu64 " object%s (%" PRIu64 " bytes on disk) and %" PRIu64
			       " catalog file%s checked, %" PRIu64 " problem%s%s, %" PRIu64 " temp file%s removed\n",
			       last.cs.objects, PLURAL(last.cs.objects), last.cs.bytes, last.ms.objects,
			       PLURAL(last.ms.objects), last.problems, PLURAL(last.problems),
			       repairs.repair ? " remaining" : "", temp, PLURAL(temp));
	}
	return code;
}
