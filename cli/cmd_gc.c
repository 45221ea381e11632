/*
 * cmd_gc.c - `udr gc`: garbage collection (docs/GC.md 7.1) through
 * udr_db_gc, and `udr gc --status`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#ifdef UDR_HAVE_QUERY
#include <udr/query.h>
#endif

#define NOPERANDS(argc) ((argc) - optind)

enum { OPT_DRY = CLI_OPT_FIRST, OPT_GRACE, OPT_THRESHOLD, OPT_MAX_UNUSED, OPT_MAX_REPACK, OPT_JSON, OPT_STATUS,
       OPT_KEEP_LAST, OPT_KEEP_WITHIN, OPT_KEEP_HOURLY, OPT_KEEP_DAILY, OPT_KEEP_WEEKLY, OPT_KEEP_MONTHLY,
       OPT_KEEP_YEARLY };

struct gc_args {
	udr_gc_options o;
	udr_retention_rule rule;
	int json, status, bad, nkeys;
};

static int gc_opt(int opt, const char *arg, void *payload)
{
	struct gc_args *a = payload;
	const cli_command *self = cli_find_command("gc");
	uint64_t v;
	static const char *const keep[] = {"--keep-last", "--keep-within", "--keep-hourly", "--keep-daily",
	                                   "--keep-weekly", "--keep-monthly", "--keep-yearly"};
	int rc;
	if (opt >= OPT_KEEP_LAST && opt <= OPT_KEEP_YEARLY) {
		a->nkeys++;
		return (rc = cli_keep_opt(&a->rule, keep[opt - OPT_KEEP_LAST], arg)) != 0 ? rc : -1;
	}
	switch (opt) {
	case OPT_DRY:
		a->o.dry_run = 1;
		return -1;
	case OPT_JSON:
		a->json = 1;
		return -1;
	case OPT_STATUS:
		a->status = 1;
		return -1;
	case OPT_GRACE:
		if (udr_retention_parse_duration(&a->o.grace_ms, arg) < 0) {
			udr_error_clear();
			return cli_usage_error(self, "invalid duration for --grace: '%s' (e.g. 24h, 30min, 0s, 1d12h)", arg);
		}
		return -1;
	case OPT_THRESHOLD:
	case OPT_MAX_UNUSED:
		if (cli_parse_uint(&v, arg, 100, 0, opt == OPT_THRESHOLD ? "--threshold" : "--max-unused") != 0)
			return CLI_EXIT_USAGE;
		if (opt == OPT_THRESHOLD)
			a->o.threshold_pct = (unsigned)v;
		else
			a->o.max_unused_pct = (unsigned)v;
		return -1;
	case OPT_MAX_REPACK:
		if (cli_parse_uint(&v, arg, UINT64_MAX / 2, 1, "--max-repack") != 0)
			return CLI_EXIT_USAGE;
		if (v == 0)
			return cli_usage_error(self, "--max-repack must be more than 0");
		a->o.max_repack_bytes = v;
		return -1;
	}
	return CLI_EXIT_USAGE;
}

/* At most one redraw each PROGRESS_MS within a phase (a rewrite reports
 * every entry: thousands of lines a second on a terminal otherwise); a new
 * phase and a phase's last step are always drawn. */
#define PROGRESS_MS 100

static void progress_cb(const char *phase, uint64_t done, uint64_t total, void *payload)
{
	static char last[32];
	static int64_t last_ms;
	struct timespec ts;
	int64_t now;
	(void)payload;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (strcmp(last, phase) == 0 && !(total && done >= total) && now - last_ms < PROGRESS_MS)
		return;
	snprintf(last, sizeof(last), "%s", phase);
	last_ms = now;
	if (total)
		fprintf(stderr, "\r\033[Kgc: %s %" PRIu64 "/%" PRIu64, phase, done, total);
	else
		fprintf(stderr, "\r\033[Kgc: %s", phase);
	fflush(stderr);
}

/* A number field of the report's object `obj` (a tiny scan of our own
 * compact JSON: "obj":{..."key":N...}). */
static double field(const char *json, const char *obj, const char *key)
{
	char pat[64];
	const char *p = json, *q;
	if (obj) {
		snprintf(pat, sizeof(pat), "\"%s\":{", obj);
		if (!(p = strstr(json, pat)))
			return 0;
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (!(q = strstr(p, pat)))
		return 0;
	return strtod(q + strlen(pat), NULL);
}

static void print_text(const char *r)
{
	char a[32], b[32], c[32];
	int dry = strstr(r, "\"dry_run\":true") != NULL;
	if (strstr(r, "\"retention\":{")) {
		/* gc --keep-*: what the rule expired (the expire record's report) */
		const char *rule = strstr(r, "\"rule\":\"");
		char rs[200] = "";
		if (rule)
			sscanf(rule + 8, "%199[^\"]", rs);
		printf("%s %.0f versions by %s\n", dry ? "would expire" : "expired", field(r, "expired", "versions"),
		       rs[0] ? rs : "the rule");
	}
	cli_format_size(a, (uint64_t)field(r, "removed", "bytes"));
	printf("%s%.0f objects marked: %.0f live (%.0f young, %.0f only as delta bases), %.0f versions kept, %.0f "
	       "expired ones not\n",
	       dry ? "dry run: " : "", field(r, "mark", "objects"), field(r, "mark", "live"), field(r, "mark", "young"),
	       field(r, "mark", "base_only"), field(r, "mark", "versions"), field(r, "mark", "expired_versions"));
	printf("%s %.0f dead objects (%.0f copies, %.0f loose files), %.0f packs dropped, %.0f packs rewritten: %s\n",
	       dry ? "would remove" : "removed", field(r, "removed", "objects"), field(r, "removed", "copies"),
	       field(r, "removed", "loose"), field(r, "removed", "packs_dropped"), field(r, "removed", "packs_rewritten"),
	       a);
	cli_format_size(b, (uint64_t)field(r, "store", "bytes_before"));
	cli_format_size(c, (uint64_t)field(r, "store", "bytes_after"));
	printf("store: %s before, %s after%s; %.0f packs written; mark used %.0f bytes\n", b, c,
	       dry ? " (estimated)" : "", field(r, "written", "packs"), field(r, "mark", "peak_bytes"));
	if (strstr(r, "\"cache\":{")) {
		cli_format_size(a, (uint64_t)field(r, "cache", "bytes"));
		printf("query cache: %.0f parts removed (%s)%s\n", field(r, "cache", "files"), a,
		       strstr(r, "\"skipped\":true") ? ", skipped: in use" : "");
	}
}

/* The query cache after a sweep (docs/GC.md 5.4): parts whose content is
 * gone are removed (never waiting on statements); the report gets its
 * "cache" object. */
static int trim_cache(char **report, udr_db *db, int dry)
{
	uint64_t files = 0, bytes = 0;
	int skipped = 0;
	size_t n = strlen(*report);
	char *r;
#ifdef UDR_HAVE_QUERY
	if (!dry) {
		udr_query_cache_info ci;
		int rc = udr_query_cache_trim(&ci, &skipped, db, NULL);
		if (rc < 0)
			return rc;
		files = ci.parts;
		bytes = ci.part_bytes;
	}
#else
	(void)db;
	(void)dry;
#endif
	if (n < 2 || (*report)[n - 1] != '}' || !(r = malloc(n + 100)))
		return 0;
	snprintf(r, n + 100, "%.*s,\"cache\":{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"skipped\":%s}}",
	         (int)(n - 1), *report, files, bytes, skipped ? "true" : "false");
	udr_free(*report);
	*report = r;
	return 0;
}

int cli_cmd_gc(cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "threshold", required_argument, NULL, OPT_THRESHOLD },
		{ "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
		{ "max-repack", required_argument, NULL, OPT_MAX_REPACK },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "status", no_argument, NULL, OPT_STATUS },
		{ "keep-last", required_argument, NULL, OPT_KEEP_LAST },
		{ "keep-within", required_argument, NULL, OPT_KEEP_WITHIN },
		{ "keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY },
		{ "keep-daily", required_argument, NULL, OPT_KEEP_DAILY },
		{ "keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY },
		{ "keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY },
		{ "keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY },
		CLI_COMMON_LONGOPTS
	};
	const cli_command *self = cli_find_command("gc");
	struct gc_args a;
	udr_gc_options def = UDR_GC_OPTIONS_INIT;
	char *out = NULL;
	udr_db *db;
	int rc;
	udr_retention_rule rdef = UDR_RETENTION_RULE_INIT;
	memset(&a, 0, sizeof(a));
	a.o = def;
	a.rule = rdef;
	if ((rc = cli_parse_options(ctx, self, argc, argv, NULL, longopts, gc_opt, &a)) >= 0)
		return rc;
	if (NOPERANDS(argc) > 0)
		return cli_usage_error(self, "too many arguments");
	if (a.status && (a.o.dry_run || a.o.grace_ms >= 0 || a.o.max_repack_bytes || a.o.threshold_pct != 10 ||
	                 a.o.max_unused_pct != 5))
		return cli_usage_error(self, "--status takes only --json");
	if (a.status && a.nkeys)
		return cli_usage_error(self, "--status takes only --json");
	if (a.nkeys)
		a.o.rule = &a.rule; /* expire by it first (a record in the log) */
	if ((rc = cli_open_db(&db, ctx)) != 0)
		return rc;
	if (a.status) {
		rc = udr_db_gc_status(&out, db);
	} else {
		if (!ctx->quiet && isatty(2)) {
			a.o.progress = progress_cb;
		}
		rc = udr_db_gc(&out, db, &a.o);
		if (a.o.progress)
			fprintf(stderr, "\r\033[K");
		if (rc == 0)
			rc = trim_cache(&out, db, a.o.dry_run);
	}
	udr_db_close(db);
	if (rc)
		return cli_fail(rc);
	if (!a.status) {
		/* a damaged lease held the expire step (GC.md 2.4) */
		json_t *r = json_loads(out, 0, NULL);
		json_t *held = json_object_get(json_object_get(r, "retention"), "held");
		if (json_is_string(held))
			fprintf(stderr, "udr: warning: %s\n", json_string_value(held));
		json_decref(r);
	}
	if (a.json) {
		printf("%s\n", out);
	} else if (a.status) {
		const char *last = strstr(out, "\"last\":{");
		const char *ph = strstr(out, "\"phase\":\"");
		char phase[32] = "?";
		if (ph)
			sscanf(ph + 9, "%31[a-z]", phase);
		printf("epoch %.0f, phase %s, %s\n", field(out, NULL, "epoch"), phase,
		       strstr(out, "\"running\":null") ? "no gc running" : "a gc is running");
		if (strstr(out, "\"running\":null") == NULL)
			printf("running: pid %.0f\n", field(out, NULL, "running"));
		if (strcmp(phase, "damaged") == 0)
			printf("chunks/gc/STATE is damaged: puts, commits of chunks and gc stop until it is repaired; %s\n",
			       strstr(out, "\"running\":null") ? "no gc runs: udr fsck --repair writes it anew"
			                                      : "wait for the running gc, then run udr fsck --repair");
		{
			/* open readers' pins (GC.md 2.4: a hung owner's pins hold) */
			json_t *r = json_loads(out, 0, NULL);
			json_t *ls = json_object_get(r, "leases"), *p;
			size_t i;
			json_array_foreach(json_object_get(ls, "pins"), i, p) {
				const char *what = json_string_value(json_object_get(p, "what"));
				char when[40] = "";
				if (json_is_integer(json_object_get(p, "ms")))
					udr_time_format(when, sizeof(when), (int64_t)json_integer_value(json_object_get(p, "ms")));
				printf("pin: pid %" JSON_INTEGER_FORMAT ", %s since %s\n", json_integer_value(json_object_get(p, "pid")),
				       what ? what : "?", when[0] ? when : "?");
			}
			if (json_is_string(json_object_get(ls, "damaged")))
				printf("damaged lease (a live owner's; expiry waits until it is gone): %s\n",
				       json_string_value(json_object_get(ls, "damaged")));
			/* the expire handshake's file, when not at rest (GC.md 2.2) */
			{
				json_t *x = json_object_get(r, "expiring");
				const char *xs = json_string_value(json_object_get(x, "state"));
				const char *xd = json_string_value(json_object_get(x, "damage"));
				if (xs && strcmp(xs, "odd") == 0)
					printf("catalog/expiring: odd, left by an expire step that died (nothing waits on it; "
					       "udr fsck --repair makes it even)\n");
				else if (xs && strcmp(xs, "busy") == 0)
					printf("catalog/expiring: an expire step is running\n");
				else if (xs && strcmp(xs, "damaged") == 0)
					printf("catalog/expiring: damaged (%s); udr fsck --repair rewrites it\n", xd ? xd : "?");
			}
			json_decref(r);
		}
		if (last) {
			printf("last run:\n");
			print_text(last + 7);
		} else {
			printf("no run finished yet\n");
		}
	} else if (!ctx->quiet) {
		print_text(out);
	}
	udr_free(out);
	return CLI_EXIT_OK;
}
