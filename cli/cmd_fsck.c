/*
 * cli/cmd_fsck.c - `udr fsck`: check the chunk store, then the catalog,
 * printing one line per problem and a summary.  With --repair-from FILE it
 * first takes good copies of damaged content from the files given.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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


struct fsck_state {
	const char *what; /* "chunk" or "catalog" */
	int in_catalog;
	uint64_t printed;
	hash_set reported; /* chunk store: the objects a problem names */
};

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

	printf("%s %s %s: %s", problem_kind(p->code, st->in_catalog), st->what, object, message);
	if (!st->in_catalog && p->object) {
		udr_hash h;
		if (strlen(p->object) == UDR_HASH_HEXSIZE && udr_hash_fromhex(&h, p->object) == 0)
			hset_add(&st->reported, &h);
	}
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
 * Returns the number of lines printed.
 */
static uint64_t name_damaged_versions(udr_db *db, const hash_set *reported)
{
	udr_catalog *c = udr_db_catalog(db);
	udr_store *s = udr_db_store(db);
	char **tables = NULL, tdir[4200];
	size_t ntables = 0;
	uint64_t printed = 0;
	hash_set good = {NULL, NULL, 0, 0};

	if (snprintf(tdir, sizeof(tdir), "%s/catalog/tables", udr_db_path(db)) >= (int)sizeof(tdir) ||
	    list_dir(&tables, &ntables, NULL, NULL, tdir) != 0)
		return 0;
	for (size_t t = 0; t < ntables; t++) {
		uint64_t *vs = NULL;
		size_t nv = 0;
		char vdir[4500];
		if (snprintf(vdir, sizeof(vdir), "%s/%s", tdir, tables[t]) >= (int)sizeof(vdir) ||
		    list_dir(NULL, NULL, &vs, &nv, vdir) != 0)
			continue;
		for (size_t i = 0; i < nv; i++) {
			udr_version *v = NULL;
			udr_expiry x;
			if (udr_version_expiry(&x, c, tables[t], vs[i]) == 0 && x.swept)
				continue; /* its data may be gone by design */
			udr_error_clear();
			if (udr_catalog_get_version(&v, c, tables[t], vs[i]) != 0) {
				udr_error_clear(); /* the catalog check reported it */
				continue;
			}
			for (size_t k = 0; k < v->nchunks; k++) {
				char hex[UDR_HASH_HEXSIZE + 1];
				if (hset_has(&good, &v->chunks[k]) || (reported && !hset_has(reported, &v->chunks[k])))
					continue; /* read back intact already, here or by the store check */
				if (udr_store_exists(s, &v->chunks[k]) != 1) {
					udr_error_clear(); /* missing: reported as broken */
					continue;
				}
				if (udr_store_verify(s, &v->chunks[k]) == 0) {
					hset_add(&good, &v->chunks[k]);
					continue;
				}
				udr_hash_tohex(hex, &v->chunks[k]);
				printf("damaged version %s@%" PRIu64 ": chunk %s cannot be read back: %s\n", tables[t], vs[i],
				       hex, udr_error_last()->message ? udr_error_last()->message : "damaged");
				udr_error_clear();
				printed++;
				break;
			}
			udr_version_free(v);
		}
		free(vs);
	}
	for (size_t t = 0; t < ntables; t++)
		free(tables[t]);
	free(tables);
	free(good.v);
	free(good.used);
	return printed;
}

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

enum { OPT_REPAIR_FROM = CLI_OPT_FIRST, OPT_RESET_HEAD };

/* The files of --repair-from, in order. */
struct repair_list {
	const char **files;
	size_t n;
	bool reset_head;
};

static int fsck_opt(int opt, const char *arg, void *payload)
{
	struct repair_list *l = payload;
	const char **p;

	if (opt == OPT_RESET_HEAD) {
		l->reset_head = true;
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

int cli_cmd_fsck(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repair-from", required_argument, NULL, OPT_REPAIR_FROM },
		{ "reset-head", no_argument, NULL, OPT_RESET_HEAD },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("fsck");
	udr_check_stats cs = { 0 }, ms = { 0 };
	struct fsck_state chunk_state = { "chunk", 0, 0, { NULL, NULL, 0, 0 } }, cat_state = { "catalog", 1, 0, { NULL, NULL, 0, 0 } };
	struct repair_list repairs = { NULL, 0, false };
	uint64_t problems;
	udr_db *db;
	int rc_store, rc_cat, rc_repair;
	int rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, fsck_opt, &repairs);

	if (rc >= 0) {
		free(repairs.files);
		return rc;
	}
	if (optind < argc) {
		free(repairs.files);
		return cli_usage_error(self, "too many arguments");
	}
	if ((rc = cli_open_db(&db, ctx)) != 0) {
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
	rc_store = run_check(udr_store_fsck(&cs, udr_db_store(db), print_problem, &chunk_state),
	                     "chunk store");
	rc_cat = run_check(udr_catalog_fsck(&ms, udr_db_catalog(db), print_problem, &cat_state),
	                   "catalog");
#ifdef UDR_HAVE_QUERY
	/* part directories of killed imports (<root>/cache/query/tmp/import-*) */
	{
		uint64_t stale = 0;

		if (run_check(udr_query_clean_temp(&stale, db, NULL), "query temp") == 0)
			ms.temp_removed += stale;
	}
#endif
	problems = chunk_state.printed + cat_state.printed;
	if (chunk_state.printed > 0)
		problems += name_damaged_versions(db, rc_store == 0 || rc_store == UDR_ECORRUPT ? &chunk_state.reported
		                                                                                 : NULL);
	free(chunk_state.reported.v);
	free(chunk_state.reported.used);
	{
		/* a live owner's lease damaged by hand (GC.md 2.4): no data is
		 * at risk, but expiry stops until it goes; said, not counted */
		char *st = NULL;

		if (udr_db_gc_status(&st, db) == 0) {
			json_t *r = json_loads(st, 0, NULL);
			json_t *d = json_object_get(json_object_get(r, "leases"), "damaged");

			if (json_is_string(d))
				printf("note: lease %s of a live process is damaged: retention expires nothing while it "
				       "stays (it goes when its owner exits)\n", json_string_value(d));
			json_decref(r);
		} else {
			udr_error_clear();
		}
		udr_free(st);
	}
	if (problems == 0 && rc_store == 0 && rc_cat == 0) {
		/* a gc run its guard aborted may run again once the store is clean */
		int was = 0;

		if (udr_db_gc_reset(&was, db) != 0) {
			cli_errorf("%s", udr_error_last()->message);
			rc_store = UDR_EIO;
		} else if (was) {
			printf("gc: the aborted run was reset (no problem found); gc may run again\n");
		}
	}
	udr_db_close(db);

	printf("fsck: %" PRIu64 " object%s (%" PRIu64 " bytes on disk) and %" PRIu64
	       " catalog file%s checked, %" PRIu64 " problem%s, %" PRIu64
	       " temp file%s removed\n",
	       cs.objects, PLURAL(cs.objects), cs.bytes, ms.objects, PLURAL(ms.objects),
	       problems, PLURAL(problems), cs.temp_removed + ms.temp_removed,
	       PLURAL(cs.temp_removed + ms.temp_removed));
	if (problems > 0 || rc_store == UDR_ECORRUPT || rc_cat == UDR_ECORRUPT)
		return CLI_EXIT_CORRUPT;
	if (rc_store || rc_cat)
		return cli_exit_code(rc_store ? rc_store : rc_cat);
	return rc_repair;
}
