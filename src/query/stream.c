/*
 * stream.c - results read batch by batch while DuckDB runs the query
 * (udr_query_sql_stream): memory bounded by a batch, first rows at once.
 * A session runs one statement at a time, so before any other statement
 * runs on it, the open stream's remaining rows are read into memory
 * (udr__q_settle) and the stream goes on from there.
 */
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "query/query_internal.h"

struct udr_stream {
	udr_query *q;               /* while DuckDB still produces rows (live) */
	duckdb_prepared_statement st;
	duckdb_result res;
	bool live;
	duckdb_logical_type *types;
	udr_result *cols;           /* no rows: names and types */
	udr_result *batch;          /* the current batch (reused) */
	udr_result *rest;           /* the rows read into memory by udr__q_settle */
	bool rest_given;
	int err;                    /* the error the stream ended with */
	char *errmsg;
};

/* The stream ends with the current error (kept for later calls). */
static int stream_fail(udr_stream *s, int rc)
{
	const char *m = udr_error_last()->message;
	s->err = rc;
	free(s->errmsg);
	s->errmsg = strdup(m && *m ? m : "query failed");
	return rc;
}

/* DuckDB is done with the query: let go of it and of the session. */
static void stream_close(udr_stream *s)
{
	if (!s->live)
		return;
	duckdb_destroy_result(&s->res);
	duckdb_destroy_prepare(&s->st);
	s->live = false;
	if (s->q && s->q->con) {
		/* A query stopped early stays the connection's active query until
		 * the next one runs: registering a function (udr_tables) in between
		 * would go into its transaction and be lost.  End it now. */
		duckdb_result res;
		(void)duckdb_query(s->q->con, "SELECT 1", &res);
		duckdb_destroy_result(&res);
	}
	if (s->q) {
		if (s->q->stream == s)
			s->q->stream = NULL;
		udr__q_cache_release(s->q); /* the statement reads no part now */
		s->q = NULL;
	}
}

/* An error DuckDB reports for the running statement, mapped. */
static int stream_error(udr_stream *s, const char *msg)
{
	udr_query *q = s->q;
	int rc;
	if (q && q->scan_rc < 0) {
		rc = udr__error_set(q->scan_rc, "%s", q->scan_msg);
		q->scan_rc = 0;
	} else {
		rc = udr__q_error(q, msg);
	}
	return rc;
}

/* The next chunk from DuckDB into r (appended); *got 0 at the end. */
static int stream_fetch(udr_stream *s, udr_result *r, bool *got)
{
	duckdb_data_chunk chunk;
	int rc = 0;
	*got = false;
	while ((chunk = duckdb_fetch_chunk(s->res)) != NULL) {
		idx_t n = duckdb_data_chunk_get_size(chunk);
		if (n)
			rc = udr__result_append(r, chunk, s->types);
		duckdb_destroy_data_chunk(&chunk);
		if (rc < 0)
			return rc;
		if (n) {
			*got = true;
			return 0;
		}
	}
	{
		const char *e = duckdb_result_error(&s->res);
		if (e && *e)
			return stream_error(s, e);
	}
	return 0;
}

void udr__q_settle(udr_query *q)
{
	udr_stream *s = q ? q->stream : NULL;
	duckdb_logical_type *types = NULL;
	bool got = true;
	int rc = 0;
	if (!s)
		return;
	q->stream = NULL; /* from here on, q runs other statements */
	if (!s->rest) {
		rc = udr__result_columns(&s->rest, &types, &s->res);
		if (rc == 0)
			udr__result_types_free(types, udr_result_column_count(s->rest));
	}
	while (rc == 0 && got)
		rc = stream_fetch(s, s->rest, &got);
	if (rc < 0) {
		stream_fail(s, rc);
		udr_error_clear(); /* the stream's error, not the caller's */
	}
	stream_close(s);
}

/* A stream of a result already read whole (r, taken; NULL: no columns). */
static int stream_of_result(udr_stream **out, udr_result *r)
{
	udr_stream *s = calloc(1, sizeof(*s));
	int rc;
	if (!s) {
		udr_result_free(r);
		return udr__error_oom();
	}
	if ((rc = udr__result_columns_of(&s->cols, r)) < 0) {
		udr_result_free(r);
		free(s);
		return rc;
	}
	if (!r && (rc = udr__result_columns_of(&r, NULL)) < 0) {
		udr_stream_free(s);
		return rc;
	}
	s->rest = r;
	*out = s;
	return 0;
}

static int sql_stream(udr_stream **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams)
{
	duckdb_pending_result pending = NULL;
	char *rewritten = NULL;
	udr_result *r = NULL;
	udr_stream *s;
	duckdb_logical_type *types2 = NULL;
	int rc;
	if (out)
		*out = NULL;
	if (!out || !q || !sql)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_sql_stream");
	/* DuckDB first: a script's statements may write before any runs SQL */
	if ((rc = udr__q_duck(q)) < 0)
		return rc;
	/* SQL writes and transactions run whole, as udr_query_sql runs them
	 * (write.c), and their result is streamed from memory: a BEGIN ...
	 * COMMIT script statement by statement, then one statement that
	 * writes to a UDR table or is a transaction statement */
	udr__q_settle(q);
	if ((rc = udr__w_script(&r, q, sql, params, nparams)) != 1)
		goto done; /* a failed script may leave its last statement's result */
	if ((rc = udr__q_rewrite(&rewritten, q, sql)) < 0)
		return rc;
	rc = udr__w_sql(&r, q, rewritten, params, nparams);
	if (rc != 1) {
		free(rewritten);
		goto done;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		free(rewritten);
		return udr__error_oom();
	}
	s->q = q;
	rc = udr__q_prepare(&s->st, q, rewritten, params, nparams, UDR__RUN_USER);
	free(rewritten);
	if (rc < 0)
		goto fail;
	if (duckdb_pending_prepared_streaming(s->st, &pending) == DuckDBError) {
		rc = stream_error(s, duckdb_pending_error(pending));
		goto fail;
	}
	if (duckdb_execute_pending(pending, &s->res) == DuckDBError) {
		rc = stream_error(s, duckdb_result_error(&s->res));
		duckdb_destroy_result(&s->res);
		goto fail;
	}
	duckdb_destroy_pending(&pending);
	s->live = true;
	if ((rc = udr__result_columns(&s->cols, &s->types, &s->res)) < 0 ||
	    (rc = udr__result_columns(&s->batch, &types2, &s->res)) < 0)
		goto fail;
	udr__result_types_free(types2, udr_result_column_count(s->batch));
	q->stream = s;
	*out = s;
	return 0;
done:
	if (rc < 0) {
		udr_result_free(r);
		return rc;
	}
	return stream_of_result(out, r);
fail:
	if (pending)
		duckdb_destroy_pending(&pending);
	q->scan_rc = 0;
	udr_stream_free(s);
	udr__q_cache_release(q);
	return rc;
}

int udr_query_sql_stream(udr_stream **out, udr_query *q, const char *sql, const udr_value *params,
                         size_t nparams)
{
	udr__statement was;
	int rc;
	if (!q)
		return sql_stream(out, q, sql, params, nparams);
	was = udr__catalog_statement_begin(q->cat); /* one look at the head */
	rc = sql_stream(out, q, sql, params, nparams);
	if (rc < 0)
		udr__w_statement_failed(q, sql);
	udr__catalog_statement_end(was);
	return rc;
}

const udr_result *udr_stream_columns(const udr_stream *s)
{
	return s ? s->cols : NULL;
}

int udr_stream_next(const udr_result **out, udr_stream *s)
{
	bool got = false;
	int rc;
	if (!out || !s)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_stream_next");
	*out = NULL;
	if (s->rest) { /* read into memory by udr__q_settle */
		if (!s->rest_given && udr_result_row_count(s->rest)) {
			s->rest_given = true;
			*out = s->rest;
			return 0;
		}
		if (s->err)
			return udr__error_set(s->err, "%s", s->errmsg);
		return 0;
	}
	if (s->err)
		return udr__error_set(s->err, "%s", s->errmsg);
	if (!s->live)
		return 0;
	udr__result_clear(s->batch);
	if ((rc = stream_fetch(s, s->batch, &got)) < 0) {
		stream_fail(s, rc);
		stream_close(s);
		return rc;
	}
	if (!got) {
		stream_close(s);
		return 0;
	}
	*out = s->batch;
	return 0;
}

void udr_stream_free(udr_stream *s)
{
	if (!s)
		return;
	stream_close(s);
	if (s->st)
		duckdb_destroy_prepare(&s->st);
	if (s->cols)
		udr__result_types_free(s->types, udr_result_column_count(s->cols));
	else
		free(s->types);
	udr_result_free(s->cols);
	udr_result_free(s->batch);
	udr_result_free(s->rest);
	free(s->errmsg);
	free(s);
}
