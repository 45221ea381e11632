/*
 * udrq.c - a small driver over the public query API (include/udr/query.h),
 * used by the end-to-end tests in tests/query and by bench/bench_query.sh.
 * The udr CLI offers the same operations as `udr import/export/sql/diff-rows`.
 *
 *   udrq ROOT import TABLE [--append] [--format F] [-m MSG] FILE...
 *   udrq ROOT import-sql TABLE [--append] [-m MSG] SQL [-p VALUE]...
 *   udrq ROOT sql [--mode table|csv|json|ndjson] [--out FILE] SQL [-p VALUE]...
 *   udrq ROOT export TABLE[@REF] OUT
 *   udrq ROOT diff-rows TABLE REF1 REF2 --key COL[,COL...] [--mode M]
 *   udrq ROOT resolve TABLE[@REF]
 *
 * A parameter VALUE is text, or typed with a prefix: int:5, float:1.5,
 * bool:true, null.  Exit status: 0, or the absolute UDR error code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <udr/udr.h>
#include <udr/query.h>

static int fail(int rc)
{
	const udr_error *e = udr_error_last();
	fprintf(stderr, "udrq: %s: %s\n", udr_strerror(rc), e->message);
	return rc < 0 ? -rc : 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: udrq ROOT import|import-sql|sql|export|diff-rows|resolve ... (see udrq.c)\n");
	return 2;
}

static udr_value param_of(const char *s)
{
	if (strncmp(s, "int:", 4) == 0)
		return udr_value_int64(strtoll(s + 4, NULL, 10));
	if (strncmp(s, "float:", 6) == 0)
		return udr_value_double(strtod(s + 6, NULL));
	if (strncmp(s, "bool:", 5) == 0)
		return udr_value_bool(strcmp(s + 5, "true") == 0 || strcmp(s + 5, "1") == 0);
	if (strcmp(s, "null") == 0)
		return udr_value_null();
	return udr_value_text(s);
}

static int mode_of(const char *m)
{
	if (strcmp(m, "csv") == 0)
		return UDR_OUTPUT_CSV;
	if (strcmp(m, "json") == 0)
		return UDR_OUTPUT_JSON;
	if (strcmp(m, "ndjson") == 0)
		return UDR_OUTPUT_NDJSON;
	return UDR_OUTPUT_TABLE;
}

static int format_of(const char *f)
{
	if (strcmp(f, "parquet") == 0)
		return UDR_FORMAT_PARQUET;
	if (strcmp(f, "csv") == 0)
		return UDR_FORMAT_CSV;
	if (strcmp(f, "json") == 0)
		return UDR_FORMAT_JSON;
	if (strcmp(f, "ndjson") == 0)
		return UDR_FORMAT_NDJSON;
	return UDR_FORMAT_AUTO;
}

int main(int argc, char **argv)
{
	udr_db *db = NULL;
	udr_query *q = NULL;
	udr_result *r = NULL;
	udr_query_options qo = UDR_QUERY_OPTIONS_INIT;
	udr_import_options io = UDR_IMPORT_OPTIONS_INIT;
	udr_value params[64];
	const char *args[256];
	size_t nparams = 0, nargs = 0;
	const char *out = NULL, *keys = NULL, *cmd;
	int mode = UDR_OUTPUT_TABLE, rc = 0, timing = 0;
	struct timespec t0, t1;

	if (argc < 3)
		return usage();
	cmd = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--append") == 0)
			io.mode = UDR_IMPORT_APPEND;
		else if (strcmp(a, "--format") == 0 && i + 1 < argc)
			io.format = format_of(argv[++i]);
		else if (strcmp(a, "-m") == 0 && i + 1 < argc)
			io.message = argv[++i];
		else if (strcmp(a, "--mode") == 0 && i + 1 < argc)
			mode = mode_of(argv[++i]);
		else if (strcmp(a, "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(a, "--key") == 0 && i + 1 < argc)
			keys = argv[++i];
		else if (strcmp(a, "--time") == 0)
			timing = 1;
		else if (strcmp(a, "--threads") == 0 && i + 1 < argc)
			qo.threads = atoi(argv[++i]);
		else if (strcmp(a, "--no-verify") == 0)
			qo.verify = 0;
		else if (strcmp(a, "-p") == 0 && i + 1 < argc && nparams < 64)
			params[nparams++] = param_of(argv[++i]);
		else if (nargs < 256)
			args[nargs++] = a;
	}
	if ((rc = udr_db_open(&db, argv[1], UDR_OPEN_CREATE)) < 0)
		return fail(rc);
	if ((rc = udr_query_open(&q, db, &qo)) < 0) {
		udr_db_close(db);
		return fail(rc);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (strcmp(cmd, "import") == 0 && nargs >= 2) {
		uint64_t v = 0;
		if ((rc = udr_query_import(&v, q, args[0], args + 1, nargs - 1, &io)) == 0)
			printf("%s@%llu\n", args[0], (unsigned long long)v);
	} else if (strcmp(cmd, "import-sql") == 0 && nargs == 2) {
		uint64_t v = 0;
		if ((rc = udr_query_import_sql(&v, q, args[0], args[1], params, nparams, &io)) == 0)
			printf("%s@%llu\n", args[0], (unsigned long long)v);
	} else if (strcmp(cmd, "sql") == 0 && nargs == 1) {
		if (out) {
			uint64_t rows = 0;
			if ((rc = udr_query_sql_to_file(&rows, q, args[0], params, nparams, out, UDR_FORMAT_AUTO)) == 0)
				printf("%llu rows\n", (unsigned long long)rows);
		} else if ((rc = udr_query_sql(&r, q, args[0], params, nparams)) == 0) {
			rc = udr_result_write(r, STDOUT_FILENO, mode);
		}
	} else if (strcmp(cmd, "export") == 0 && nargs == 2) {
		uint64_t rows = 0;
		if ((rc = udr_query_export(&rows, q, args[0], NULL, args[1], UDR_FORMAT_AUTO)) == 0)
			printf("%llu rows\n", (unsigned long long)rows);
	} else if (strcmp(cmd, "diff-rows") == 0 && nargs == 3 && keys) {
		char *ks = strdup(keys), *save = NULL;
		const char *kv[64];
		size_t nk = 0;
		for (char *t = strtok_r(ks, ",", &save); t && nk < 64; t = strtok_r(NULL, ",", &save))
			kv[nk++] = t;
		if ((rc = udr_query_diff_rows(&r, q, args[0], args[1], args[2], kv, nk)) == 0)
			rc = udr_result_write(r, STDOUT_FILENO, mode);
		free(ks);
	} else if (strcmp(cmd, "resolve") == 0 && nargs == 1) {
		uint64_t v = 0;
		if ((rc = udr_query_resolve(&v, q, args[0], NULL)) == 0)
			printf("%llu\n", (unsigned long long)v);
	} else {
		udr_query_close(q);
		udr_db_close(db);
		return usage();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (timing)
		fprintf(stderr, "time: %.6f s\n",
		        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (rc < 0)
		rc = fail(rc);
	udr_result_free(r);
	udr_query_close(q);
	udr_db_close(db);
	return rc;
}
