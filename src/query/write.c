/*
 * write.c - SQL writes to UDR tables: INSERT, UPDATE, DELETE, MERGE INTO,
 * CREATE TABLE [AS], DROP TABLE, and BEGIN ... COMMIT around several.  A
 * written table is shadowed in DuckDB by a temporary table holding its rows;
 * DuckDB runs the statements against it; at commit the shadow is compared
 * with the rows it started from (by row id) and the new version stores only
 * the change: deletion vectors for rows gone or changed, small new parts for
 * new rows, every other part shared.  All tables a transaction wrote commit
 * through one udr_txn (one commit record, first committer wins).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <pthread.h>

#include "catalog/catalog_internal.h"
#include <udr/refs.h>

#include "query/query_internal.h"

/* ---- what a statement writes ------------------------------------------------------------------- */

typedef enum wkind {
	WK_NONE,     /* a query, or a statement on session objects: not ours */
	WK_BEGIN,
	WK_COMMIT,
	WK_ROLLBACK,
	WK_INSERT,
	WK_UPDATE,
	WK_DELETE,
	WK_MERGE,
	WK_CREATE,   /* CREATE [OR REPLACE] TABLE (not TEMP) */
	WK_DROP,
	WK_ALTER,
	WK_INDEX     /* CREATE [UNIQUE] INDEX ... ON target */
} wkind;

typedef struct wstmt {
	wkind kind;
	bool has_target;
	char target[UDR_TABLE_NAME_MAX * 2 + 64]; /* as written, quotes removed */
	bool qualified;      /* schema.name: a session object */
	bool temp;           /* CREATE TEMP TABLE */
	bool or_replace, if_not_exists, if_exists;
	size_t splice;       /* CREATE: where "TEMP " goes */
	size_t tstart;       /* where the target starts in the text */
	bool more_targets;   /* DROP TABLE a, b */
	bool with;           /* WITH ... before the statement */
	const char *after;   /* the text after the target */
	char qual[UDR_TABLE_NAME_MAX * 2 + 64]; /* the target's qualifier ("temp.main" of temp.main.t) */
	char hides[UDR_TABLE_NAME_MAX * 2 + 64]; /* the name a session object takes: CREATE [TEMP] VIEW, ALTER
	                                            TABLE|VIEW ... RENAME TO ("": none) */
	char hides_qual[UDR_TABLE_NAME_MAX * 2 + 64];
	const char *hides_what;
} wstmt;

static bool id_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool id_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Skip blanks and comments (query.c's). */
#define skip_ws udr__q_skip_blank

/* The word at *p is kw (case-insensitive): step over it. */
static bool word(const char **p, const char *kw)
{
	const char *s = skip_ws(*p);
	size_t n = strlen(kw);
	if (strncasecmp(s, kw, n) != 0 || id_char((unsigned char)s[n]))
		return false;
	*p = s + n;
	return true;
}

/* The text's first word is kw. */
static bool word_at(const char *sql, const char *kw)
{
	const char *p = sql;
	return word(&p, kw);
}

/* An identifier (bare or "quoted"): into out, quotes removed. */
static bool ident(const char **p, char *out, size_t outsz, bool *quoted)
{
	const char *s = skip_ws(*p);
	size_t n = 0;
	*quoted = false;
	if (*s == '"') {
		s++;
		for (;;) {
			if (!*s)
				return false;
			if (*s == '"') {
				if (s[1] != '"')
					break;
				s++;
			}
			if (n + 1 >= outsz)
				return false;
			out[n++] = *s++;
		}
		s++;
		*quoted = true;
	} else {
		if (!id_start((unsigned char)*s))
			return false;
		while (id_char((unsigned char)*s)) {
			if (n + 1 >= outsz)
				return false;
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	*p = s;
	return n > 0;
}

/* Step over an E'...' string (s at its quote): backslash escapes. */
static const char *skip_estring(const char *s)
{
	for (s++; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
		} else if (*s == '\'') {
			if (s[1] != '\'')
				return s + 1;
			s++;
		}
	}
	return s;
}

/* An E (or e) just before the quote at s, itself not the end of a longer
 * word: an E'...' string.  base: the start of the text. */
static bool is_estring(const char *base, const char *s)
{
	return *s == '\'' && s > base && (s[-1] == 'E' || s[-1] == 'e') &&
	       (s - 1 == base || !id_char((unsigned char)s[-2]));
}

/* Step over a string literal, quoted identifier or dollar-quoted text. */
static const char *skip_token(const char *s)
{
	if (*s == '\'' || *s == '"') {
		char qc = *s++;
		while (*s) {
			if (*s == qc) {
				if (s[1] == qc) {
					s += 2;
					continue;
				}
				return s + 1;
			}
			s++;
		}
		return s;
	}
	if (*s == '$') { /* $tag$ ... $tag$ */
		const char *e = s + 1;
		while (id_char((unsigned char)*e) && *e != '$')
			e++;
		if (*e == '$') {
			size_t tl = (size_t)(e - s + 1);
			const char *end;
			for (end = e + 1; *end; end++)
				if (strncmp(end, s, tl) == 0)
					return end + tl;
			return end;
		}
		return s + 1;
	}
	return s + 1;
}

static const char *next_word0(const char *s, const char **wend);
static bool is_word(const char *w, const char *end, const char *kw);

/* After WITH ...: the first keyword at depth 0 that starts the statement. */
static const char *after_with(const char *s)
{
	static const char *const starts[] = {"insert", "update", "delete", "merge", "select", "from", "values",
	                                     "table", NULL};
	const char *w, *we;
	for (w = next_word0(s, &we); w; w = next_word0(we, &we))
		for (size_t i = 0; starts[i]; i++)
			if (is_word(w, we, starts[i]))
				return w;
	return s + strlen(s);
}

/* The target of a write: an identifier, maybe schema-qualified. */
static void target(wstmt *st, const char **p, const char *sql)
{
	bool quoted;
	const char *s = *p;
	st->tstart = (size_t)(skip_ws(s) - sql);
	if (!ident(&s, st->target, sizeof(st->target), &quoted))
		return;
	st->has_target = true;
	/* schema.table, catalog.schema.table: a session object, named by its
	 * last part (temp.main.t is the shadow t as much as temp.t is) */
	while (*s == '.') {
		size_t ql = strlen(st->qual);
		st->qualified = true;
		snprintf(st->qual + ql, sizeof(st->qual) - ql, "%s%s", ql ? "." : "", st->target);
		s++;
		if (!ident(&s, st->target, sizeof(st->target), &quoted))
			break;
	}
	*p = s;
	st->after = s;
}

/* A possibly qualified name at *p into name (its last part) and qual (the
 * parts before it, dotted); false when there is none. */
static bool qualified_name(const char **p, char *name, char *qual, size_t sz)
{
	bool quoted, any = false;
	qual[0] = '\0';
	while (ident(p, name, sz, &quoted)) {
		any = true;
		if (**p != '.')
			break;
		(*p)++;
		{
			size_t ql = strlen(qual);
			snprintf(qual + ql, sz - ql, "%s%s", ql ? "." : "", name);
		}
	}
	return any;
}

static void classify(wstmt *st, const char *sql)
{
	const char *p = skip_ws(sql);
	memset(st, 0, sizeof(*st));
	if (word(&p, "begin") || word(&p, "start")) {
		st->kind = WK_BEGIN;
		return;
	}
	if (word(&p, "commit") || word(&p, "end")) {
		st->kind = WK_COMMIT;
		return;
	}
	if (word(&p, "rollback") || word(&p, "abort")) {
		st->kind = WK_ROLLBACK;
		return;
	}
	if (word(&p, "with")) {
		st->with = true;
		p = after_with(p);
	}
	if (word(&p, "insert")) {
		if (word(&p, "or")) {
			if (word(&p, "replace"))
				st->or_replace = true;
			else
				(void)word(&p, "ignore");
		}
		if (!word(&p, "into"))
			return;
		st->kind = WK_INSERT;
		target(st, &p, sql);
	} else if (word(&p, "update")) {
		st->kind = WK_UPDATE;
		target(st, &p, sql);
	} else if (word(&p, "delete")) {
		if (!word(&p, "from"))
			return;
		st->kind = WK_DELETE;
		target(st, &p, sql);
	} else if (word(&p, "truncate")) {
		(void)word(&p, "table");
		st->kind = WK_DELETE;
		target(st, &p, sql);
	} else if (word(&p, "merge")) {
		if (!word(&p, "into"))
			return;
		st->kind = WK_MERGE;
		target(st, &p, sql);
	} else if (word(&p, "create")) {
		if (word(&p, "or")) {
			if (!word(&p, "replace"))
				return;
			st->or_replace = true;
		}
		st->splice = (size_t)(skip_ws(p) - sql);
		if (word(&p, "temp") || word(&p, "temporary"))
			st->temp = true;
		if (!st->temp && (word(&p, "unique"), word(&p, "index"))) {
			/* CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON target */
			char skip[UDR_TABLE_NAME_MAX * 2 + 64];
			bool quoted;
			if (word(&p, "if") && !(word(&p, "not") && word(&p, "exists")))
				return;
			if (!word(&p, "on")) {
				if (!ident(&p, skip, sizeof(skip), &quoted) || !word(&p, "on"))
					return;
			}
			st->kind = WK_INDEX;
			target(st, &p, sql);
			return;
		}
		if (word(&p, "view")) {
			/* CREATE [OR REPLACE] [TEMP] VIEW [IF NOT EXISTS] name: a
			 * session object, which may hide a UDR table (the name) */
			if (word(&p, "if") && !(word(&p, "not") && word(&p, "exists")))
				return;
			if (qualified_name(&p, st->hides, st->hides_qual, sizeof(st->hides)))
				st->hides_what = "view";
			return;
		}
		if (!word(&p, "table"))
			return; /* macros, sequences ...: session objects */
		if (word(&p, "if")) {
			if (!word(&p, "not") || !word(&p, "exists"))
				return;
			st->if_not_exists = true;
		}
		st->kind = WK_CREATE;
		target(st, &p, sql);
	} else if (word(&p, "drop")) {
		if (!word(&p, "table"))
			return;
		if (word(&p, "if")) {
			if (!word(&p, "exists"))
				return;
			st->if_exists = true;
		}
		st->kind = WK_DROP;
		target(st, &p, sql);
		st->more_targets = *skip_ws(p) == ',';
	} else if (word(&p, "alter")) {
		bool view = false;
		if (!word(&p, "table") && !(view = word(&p, "view")))
			return;
		if (word(&p, "if") && !(word(&p, "exists")))
			return;
		if (!view)
			st->kind = WK_ALTER;
		target(st, &p, sql);
		/* ALTER TABLE|VIEW x RENAME TO name: the session object takes name */
		if (word(&p, "rename") && word(&p, "to") &&
		    qualified_name(&p, st->hides, st->hides_qual, sizeof(st->hides)))
			st->hides_what = view ? "view" : "table";
		if (view) {
			st->has_target = false;
			st->target[0] = '\0';
		}
	}
}

/* ---- statements that touch few rows ------------------------------------------------------------ */

/*
 * The next word at parenthesis depth 0 from s (literals, identifiers and
 * comments skipped): its start, or NULL at the end.  *depth0_end set to
 * the end of the text.
 */
static const char *next_word0(const char *s, const char **wend)
{
	int depth = 0;
	while (*s) {
		s = skip_ws(s);
		if (!*s)
			break;
		if (*s == '(') {
			depth++;
			s++;
		} else if (*s == ')') {
			depth--;
			s++;
		} else if (*s == '\'' || *s == '"' || *s == '$') {
			s = skip_token(s);
		} else if (id_start((unsigned char)*s)) {
			const char *w = s;
			while (id_char((unsigned char)*s))
				s++;
			if (is_estring(w, s)) {
				s = skip_estring(s);
				continue;
			}
			if (depth == 0) {
				*wend = s;
				return w;
			}
		} else {
			s++;
		}
	}
	return NULL;
}

static bool is_word(const char *w, const char *end, const char *kw)
{
	return (size_t)(end - w) == strlen(kw) && strncasecmp(w, kw, (size_t)(end - w)) == 0;
}

/*
 * Scan sql's identifiers (bare or quoted; literals, comments and E'...'
 * strings skipped) for name, any case: *refs counts them, *clash is set
 * when one is written in another case (DuckDB binds it to name), *qmarks
 * counts the ? placeholders (-1 when it uses $N or ?N ones).
 */
static void scan_idents(const char *sql, const char *name, size_t *refs, bool *clash, long *qmarks)
{
	const char *s = sql;
	char id[UDR_TABLE_NAME_MAX * 2 + 64];
	*refs = 0;
	*clash = false;
	*qmarks = 0;
	while (*s) {
		bool quoted;
		s = skip_ws(s);
		if (!*s)
			break;
		if (*s == '"' || id_start((unsigned char)*s)) {
			const char *b = s;
			if (ident(&s, id, sizeof(id), &quoted)) {
				if (!quoted && is_estring(b, s)) {
					s = skip_estring(s);
				} else if (strcasecmp(id, name) == 0) {
					(*refs)++;
					*clash |= strcmp(id, name) != 0;
				}
			} else {
				s = *b == '"' ? skip_token(b) : b + 1;
			}
		} else if (*s == '\'') {
			s = skip_token(s);
		} else if (*s == '$') {
			if (isdigit((unsigned char)s[1]))
				*qmarks = -1;
			s = skip_token(s);
		} else if (*s == '?') {
			if (isdigit((unsigned char)s[1]))
				*qmarks = -1; /* ?N: numbered, like $N */
			else if (*qmarks >= 0)
				(*qmarks)++;
			s++;
		} else if (isdigit((unsigned char)*s)) {
			while (id_char((unsigned char)*s) || *s == '.')
				s++;
		} else {
			s++;
		}
	}
}

/* How often name occurs as an identifier, and the ? placeholders. */
static void count_refs(const char *sql, const char *name, size_t *refs, long *qmarks)
{
	bool clash;
	scan_idents(sql, name, refs, &clash, qmarks);
}

/* An identifier of sql names name in another case (DuckDB binds it to name). */
static bool case_clash(const char *sql, const char *name)
{
	size_t refs;
	long qmarks;
	bool clash;
	scan_idents(sql, name, &refs, &clash, &qmarks);
	return clash;
}

/*
 * An UPDATE or DELETE of the form "UPDATE t [[AS] a] SET ... WHERE cond
 * [RETURNING ...]" / "DELETE FROM t [[AS] a] WHERE cond [RETURNING ...]"
 * (no FROM / USING): the alias (or t) and the byte spans of "WHERE cond".
 */
typedef struct wfast {
	char alias[UDR_TABLE_NAME_MAX * 2 + 64];
	size_t where, cond, cond_end; /* offsets of WHERE, of cond, after cond */
} wfast;

static bool fast_where(wfast *f, const wstmt *st, const char *sql)
{
	const char *p = st->after, *w, *we;
	bool quoted;
	memset(f, 0, sizeof(*f));
	snprintf(f->alias, sizeof(f->alias), "%s", st->target);
	if (!p)
		return false;
	if (word(&p, "as")) {
		if (!ident(&p, f->alias, sizeof(f->alias), &quoted))
			return false;
	} else {
		const char *q = p;
		char a[sizeof(f->alias)];
		if (ident(&q, a, sizeof(a), &quoted) &&
		    (quoted || !(strcasecmp(a, "set") == 0 || strcasecmp(a, "where") == 0 ||
		                 strcasecmp(a, "using") == 0 || strcasecmp(a, "returning") == 0))) {
			snprintf(f->alias, sizeof(f->alias), "%s", a);
			p = q;
		}
	}
	if (st->kind == WK_UPDATE && !word(&p, "set"))
		return false;
	for (w = next_word0(p, &we); w; w = next_word0(we, &we)) {
		if (is_word(w, we, "from") || is_word(w, we, "using"))
			return false;
		if (is_word(w, we, "where"))
			break;
	}
	if (!w)
		return false;
	f->where = (size_t)(w - sql);
	f->cond = (size_t)(we - sql);
	f->cond_end = strlen(sql);
	for (w = next_word0(we, &we); w; w = next_word0(we, &we))
		if (is_word(w, we, "returning")) {
			f->cond_end = (size_t)(w - sql);
			break;
		}
	return true;
}

/* ---- the open transaction ----------------------------------------------------------------------- */

typedef struct wtab {
	char *name;
	udr_version *base;  /* the version the transaction started from; NULL: none (or dropped) */
	bool shadow;        /* temp table "name" holds its rows */
	bool dropped;
	bool full;          /* store every row anew (created, replaced, base not Parquet) */
	unsigned long id;   /* "__udr o <id>": the rows the shadow started from, with positions */
	bool orig;          /* "__udr o <id>" exists */
	bool partial;       /* the shadow holds only some of the base's rows */
	uint64_t key_updates; /* import --key: rows deleted and inserted again with their key */
} wtab;

typedef struct udr__wtx {
	udr_txn *txn;
	bool explicit_txn;
	bool failed;
	wtab *t;
	size_t n, cap;
	unsigned long ids;
	char *message;      /* the session's message when the transaction began */
	char *branch;       /* the branch it commits on (NULL: main) */
	udr_gc_hold *hold;  /* at COMMIT: parts are put before the commit names them (udr/gc.h) */
} udr__wtx;

uint64_t udr__w_snapshot(udr_query *q)
{
	return q && q->wtx && q->wtx->txn ? udr_txn_snapshot(q->wtx->txn) : 0;
}

static wtab *wt_find(udr__wtx *w, const char *name)
{
	for (size_t i = 0; w && i < w->n; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return &w->t[i];
	return NULL;
}

bool udr__w_dropped(udr_query *q, const char *table)
{
	wtab *t = q ? wt_find(q->wtx, table) : NULL;
	return t && t->dropped && !t->shadow;
}

void udr__w_statement_failed(udr_query *q, const char *sql)
{
	wstmt st;
	if (!q || !q->wtx || !q->wtx->explicit_txn || !sql)
		return;
	classify(&st, sql);
	if (st.kind != WK_BEGIN && st.kind != WK_COMMIT && st.kind != WK_ROLLBACK)
		q->wtx->failed = true;
}

int udr__w_working(udr_query *q, const char *table)
{
	wtab *t = q && q->wtx && q->wtx->explicit_txn ? wt_find(q->wtx, table) : NULL;
	if (!t)
		return 0;
	if (t->shadow && !t->partial)
		return UDR__W_SHADOW;
	return t->dropped && !t->shadow ? UDR__W_DROPPED : 0;
}

/* DROP TABLE [IF EXISTS] temp.main."name" (a shadow), or "__udr o <id>" when name is NULL. */
static int drop_temp(udr_query *q, const char *name, unsigned long id, bool if_exists)
{
	udr__buf b = {0};
	int rc = udr__buf_puts(&b, if_exists ? "DROP TABLE IF EXISTS temp.main." : "DROP TABLE temp.main.");
	if (rc == 0)
		rc = name ? udr__sql_ident(&b, name) : udr__buf_printf(&b, "\"__udr o %lu\"", id);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	return rc;
}

/* Drop the shadows and end the transaction (nothing committed). */
static void wtx_end(udr_query *q)
{
	udr__wtx *w = q->wtx;
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++) {
		wtab *t = &w->t[i];
		if (t->shadow && t->orig) { /* both in one call */
			udr__buf b = {0};
			if (udr__buf_puts(&b, "DROP TABLE IF EXISTS temp.main.") == 0 && udr__sql_ident(&b, t->name) == 0 &&
			    udr__buf_printf(&b, "; DROP TABLE IF EXISTS temp.main.\"__udr o %lu\"", t->id) == 0)
				(void)udr__q_exec(q, b.ptr);
			udr__buf_free(&b);
		} else if (t->shadow) {
			(void)drop_temp(q, t->name, 0, true);
		} else if (t->orig) {
			(void)drop_temp(q, NULL, t->id, true);
		}
		free(t->name);
		udr_version_free(t->base);
	}
	free(w->t);
	free(w->message);
	free(w->branch);
	udr_txn_free(w->txn);
	udr_gc_hold_end(w->hold);
	free(w);
	q->wtx = NULL;
}

void udr__w_close(udr_query *q)
{
	if (q && q->wtx)
		wtx_end(q);
	for (size_t i = 0; q && i < q->nkstats; i++)
		free(q->kstats[i].col);
	if (q) {
		free(q->kstats);
		q->kstats = NULL;
		q->nkstats = q->capkstats = 0;
	}
}

/* Begin the session's write transaction on branch (NULL: main). */
static int wtx_begin(udr_query *q, bool explicit_txn, const char *branch)
{
	udr_txn_options o = UDR_TXN_OPTIONS_INIT;
	udr__wtx *w = calloc(1, sizeof(*w));
	int rc;
	if (!w)
		return udr__error_oom();
	o.message = q->message;
	o.branch = branch;
	if ((q->message && !(w->message = strdup(q->message))) || (branch && !(w->branch = strdup(branch)))) {
		free(w->message);
		free(w);
		return udr__error_oom();
	}
	/* no gc hold yet: the parts are put at COMMIT (wtx_commit), and a
	 * hold for the transaction's whole life kept every gc waiting behind
	 * an idle BEGIN, and deadlocked a gc called by this process meanwhile
	 * (the versions it reads are pinned by its snapshot, not the hold) */
	if ((rc = udr_txn_begin(&w->txn, q->cat, &o)) < 0) {
		free(w->message);
		free(w->branch);
		free(w);
		return rc;
	}
	w->explicit_txn = explicit_txn;
	q->wtx = w;
	return 0;
}

/* The entry of table in the transaction; its base read at the snapshot. */
static int wt_get(wtab **out, udr_query *q, const char *name)
{
	udr__wtx *w = q->wtx;
	wtab *t = wt_find(w, name);
	udr_version *v = NULL;
	int rc;
	if (t) {
		*out = t;
		return 0;
	}
	rc = udr_txn_get_version(&v, w->txn, name, 0);
	if (rc == UDR_ENOTFOUND) {
		udr_error_clear();
		v = NULL;
	} else if (rc < 0) {
		return rc;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4;
		wtab *p = realloc(w->t, cap * sizeof(*p));
		if (!p) {
			udr_version_free(v);
			return udr__error_oom();
		}
		w->t = p;
		w->cap = cap;
	}
	t = &w->t[w->n];
	memset(t, 0, sizeof(*t));
	if (!(t->name = strdup(name))) {
		udr_version_free(v);
		return udr__error_oom();
	}
	w->n++;
	t->base = v;
	t->dropped = v && udr__version_dropped(v);
	*out = t;
	return 0;
}

/* The table exists for the transaction (not dropped, not unknown). */
static bool wt_exists(const wtab *t)
{
	return t->shadow || (t->base && !t->dropped);
}

/* A table or view of this name in DuckDB that is not one of our shadows. */
static int session_object(bool *out, udr_query *q, const char *name)
{
	udr_result *r = NULL;
	wtab *t = wt_find(q->wtx, name);
	int rc;
	*out = false;
	if (t && t->shadow)
		return 0;
	/* no CREATE of the user's ran: the session's tables and views are
	 * UDR's own (udr_log, udr_tables, __udr_*), which a UDR table's name
	 * meets only when it is one of those */
	if (!q->user_objects && strcasecmp(name, "udr_log") != 0 && strcasecmp(name, "udr_tables") != 0 &&
	    strncasecmp(name, "__udr", 5) != 0)
		return 0;
	{
		udr__buf b = {0};
		rc = udr__buf_puts(&b, "SELECT count(*)::BIGINT FROM (SELECT table_name AS n FROM duckdb_tables() UNION ALL "
		                       "SELECT view_name FROM duckdb_views() WHERE NOT internal) WHERE lower(n) = lower(");
		if (rc == 0)
			rc = udr__sql_literal(&b, name);
		if (rc == 0)
			rc = udr__buf_puts(&b, ")");
		if (rc == 0)
			rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
		udr__buf_free(&b);
	}
	if (rc == 0) {
		udr_value v;
		*out = udr_result_get(&v, r, 0, 0) == 0 && v.type == UDR_TYPE_INT64 && v.i64 > 0;
	}
	udr_result_free(r);
	return rc;
}

/* The session has views or macros of its own (they may read any table). */
static int session_readers(bool *out, udr_query *q)
{
	udr_result *r = NULL;
	udr_value v;
	int rc;
	/* only a user's CREATE makes them (duckdb_functions() lists thousands
	 * of functions: asking costs more than a 1-row UPDATE) */
	*out = false;
	if (!q->user_objects)
		return 0;
	rc = udr__q_run(&r, q,
	                    "SELECT count(*)::BIGINT FROM (SELECT 1 FROM duckdb_views() WHERE NOT internal AND "
	                    "view_name <> 'udr_tables' AND NOT starts_with(view_name, '__udr') UNION ALL SELECT 1 FROM "
	                    "duckdb_functions() WHERE NOT internal AND function_type IN ('macro', 'table_macro'))",
	                    NULL, 0, UDR__RUN_ANY);
	*out = rc < 0 || (udr_result_get(&v, r, 0, 0) == 0 && v.type == UDR_TYPE_INT64 && v.i64 > 0);
	udr_result_free(r);
	return rc;
}

/* The base is Parquet parts whose changes can be stored as deletion vectors. */
static bool delta_capable(const udr_version *v)
{
	const char *f = udr_version_get_meta(v, "udr.format"), *sch = udr_version_get_meta(v, "udr.schema");
	/* the position columns would clash with columns of these names */
	/* and a column "rowid" would hide DuckDB's row ids, by which rows are matched */
	return v->nchunks > 0 && sch && !strcasestr(sch, "\"file_index\"") && !strcasestr(sch, "\"file_row_number\"") &&
	       !strcasestr(sch, "\"__udr_") && !strcasestr(sch, "\"rowid\"") && f &&
	       (strcmp(f, "parquet") == 0 || strcmp(f, "parquet-dv") == 0);
}

/* ---- a condition that selects a key: only the parts that may hold it are read ------------------ */

/*
 * A write whose condition is "[alias.]col = N" (N an integer literal, or a
 * ? bound to an integer) on an integer column reads only the parts whose
 * Parquet statistics (each row group's min and max of col, as DuckDB wrote
 * them) admit N, and the first part (the files' schema is bound from the
 * first file read, as for the whole scan).  DuckDB prunes the row groups of
 * a file by the same statistics, but it opens every file to do so (about
 * half a millisecond a part); the ranges are read once per part and session
 * (parts never change).  Only integer types: their statistics are the
 * values themselves, compared exactly; a part without statistics for col
 * in every row group is read.
 */
#define KEY_PART_ROWS 122880 /* a row group */

static bool key_type(const char *type)
{
	static const char *const t[] = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT",
	                                NULL};
	for (size_t i = 0; t[i]; i++)
		if (strcmp(type, t[i]) == 0)
			return true;
	return false;
}

/* "[alias.]col" at *p: col into out. */
static bool cond_col(const char **p, char *out, size_t outsz, const char *alias)
{
	const char *s = *p, *d;
	char a[UDR_TABLE_NAME_MAX * 2 + 64];
	bool quoted;
	if (!ident(&s, a, sizeof(a), &quoted))
		return false;
	d = skip_ws(s);
	if (*d == '.') {
		s = d + 1;
		if (strcasecmp(a, alias) != 0 || !ident(&s, out, outsz, &quoted))
			return false;
	} else if (snprintf(out, outsz, "%s", a) >= (int)outsz) {
		return false;
	}
	*p = s;
	return true;
}

/* An integer literal, or ? bound to an integer, at *p. */
static bool cond_int(const char **p, int64_t *v, const udr_value *params, size_t nparams)
{
	const char *s = skip_ws(*p), *d;
	char *e;
	long long x;
	if (*s == '?') {
		if (nparams != 1 || params[0].type != UDR_TYPE_INT64 || isdigit((unsigned char)s[1]))
			return false;
		*v = params[0].i64;
		*p = s + 1;
		return true;
	}
	d = s + (*s == '-');
	if (!isdigit((unsigned char)*d))
		return false;
	errno = 0;
	x = strtoll(s, &e, 10);
	if (errno || id_char((unsigned char)*e) || *e == '.')
		return false;
	*v = x;
	*p = e;
	return true;
}

/* cond is "[alias.]col = N" or "N = [alias.]col" with col an integer
 * column of the base: its name as the schema spells it, and N. */
static bool key_cond(char *col, size_t colsz, int64_t *val, const udr_version *base, const char *cond,
                     const char *alias, const udr_value *params, size_t nparams)
{
	const char *s = cond, *text = udr_version_get_meta(base, "udr.schema");
	char name[256];
	json_t *arr, *c;
	size_t i, found = 0;
	bool ok;
	if (cond_col(&s, name, sizeof(name), alias)) {
		s = skip_ws(s);
		ok = *s == '=' && s[1] != '=' && (s++, cond_int(&s, val, params, nparams));
	} else {
		ok = cond_int(&s, val, params, nparams);
		s = skip_ws(s);
		ok = ok && *s == '=' && s[1] != '=' && (s++, cond_col(&s, name, sizeof(name), alias));
	}
	if (!ok || *skip_ws(s) || !text || !(arr = json_loads(text, 0, NULL)))
		return false;
	/* DuckDB's identifiers are case-insensitive: exactly one column */
	json_array_foreach(arr, i, c) {
		const char *nm = json_string_value(json_object_get(c, "name"));
		const char *ty = json_string_value(json_object_get(c, "type"));
		if (!nm || strcasecmp(nm, name) != 0)
			continue;
		ok = found++ == 0 && ty && key_type(ty) && snprintf(col, colsz, "%s", nm) < (int)colsz;
	}
	json_decref(arr);
	return ok && found == 1;
}

static udr__kstat *kstat_find(udr_query *q, const udr_hash *part, const char *col)
{
	for (size_t i = 0; i < q->nkstats; i++)
		if (udr_hash_equal(&q->kstats[i].part, part) && strcmp(q->kstats[i].col, col) == 0)
			return &q->kstats[i];
	return NULL;
}

static int kstat_add(udr_query *q, const udr_hash *part, const char *col, bool known, int64_t min, int64_t max)
{
	udr__kstat *k;
	if (q->nkstats == q->capkstats) {
		size_t cap = q->capkstats ? q->capkstats * 2 : 64;
		if (!(k = realloc(q->kstats, cap * sizeof(*k))))
			return udr__error_oom();
		q->kstats = k;
		q->capkstats = cap;
	}
	k = &q->kstats[q->nkstats];
	if (!(k->col = strdup(col)))
		return udr__error_oom();
	k->part = *part;
	k->known = known;
	k->min = min;
	k->max = max;
	q->nkstats++;
	return 0;
}

/* The ranges of col in the parts of vw not cached yet and not small: one
 * query.  A part of less than a row group (what a small write adds) is read
 * whatever its range: asking its statistics cost more than reading it. */
static int kstats_load(udr_query *q, const udr__view *vw, const udr__parts *ps, const char *col)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	bool *seen = NULL, any = false;
	int rc = udr__buf_puts(&b, "SELECT file_name, min(TRY_CAST(stats_min_value AS BIGINT)), "
	                           "max(TRY_CAST(stats_max_value AS BIGINT)), count(*) FILTER (WHERE "
	                           "TRY_CAST(stats_min_value AS BIGINT) IS NULL OR TRY_CAST(stats_max_value AS BIGINT) "
	                           "IS NULL)::BIGINT FROM parquet_metadata([");
	for (size_t i = 0; rc == 0 && i < vw->nparts; i++) {
		if (ps->p[i].rows < KEY_PART_ROWS || kstat_find(q, &vw->parts[i], col))
			continue;
		if (any)
			rc = udr__buf_puts(&b, ", ");
		if (rc == 0)
			rc = udr__sql_read_path(&b, vw->paths[i]);
		any = true;
	}
	if (rc < 0 || !any)
		goto out;
	rc = udr__buf_puts(&b, "]) WHERE path_in_schema = ");
	if (rc == 0)
		rc = udr__sql_literal(&b, col);
	if (rc == 0)
		rc = udr__buf_puts(&b, " GROUP BY file_name");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc < 0)
		goto out;
	if (!(seen = calloc(vw->nparts, sizeof(*seen)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t row = 0; rc == 0 && row < udr_result_row_count(r); row++) {
		udr_value f, mn, mx, unk;
		if (udr_result_get(&f, r, row, 0) < 0 || udr_result_get(&mn, r, row, 1) < 0 ||
		    udr_result_get(&mx, r, row, 2) < 0 || udr_result_get(&unk, r, row, 3) < 0 || f.type != UDR_TYPE_TEXT)
			continue;
		/* the file as named in the list (a name not matched stays unknown) */
		for (size_t i = 0; rc == 0 && i < vw->nparts; i++) {
			char *rp;
			bool same;
			if (seen[i] || ps->p[i].rows < KEY_PART_ROWS || kstat_find(q, &vw->parts[i], col))
				continue;
			if (!(rp = udr__q_read_path(vw->paths[i]))) {
				rc = udr__error_oom();
				break;
			}
			same = strcmp(rp, f.str) == 0;
			free(rp);
			if (!same)
				continue;
			seen[i] = true;
			rc = kstat_add(q, &vw->parts[i], col,
			               mn.type == UDR_TYPE_INT64 && mx.type == UDR_TYPE_INT64 && unk.type == UDR_TYPE_INT64 &&
			                   unk.i64 == 0,
			               mn.i64, mx.i64);
		}
	}
	/* parts without statistics of col (no row groups): any value */
	for (size_t i = 0; rc == 0 && i < vw->nparts; i++)
		if (!seen[i] && ps->p[i].rows >= KEY_PART_ROWS && !kstat_find(q, &vw->parts[i], col))
			rc = kstat_add(q, &vw->parts[i], col, false, 0, 0);
out:
	free(seen);
	udr_result_free(r);
	udr__buf_free(&b);
	return rc;
}

/* The parts of vw a key condition may select rows of (*idx NULL: every
 * part, or cond is not such a condition). */
static int key_parts(size_t **idx, size_t *nidx, udr_query *q, const udr_version *base, const udr__view *vw,
                     const char *cond, const char *alias, const udr_value *params, size_t nparams)
{
	char col[256];
	int64_t v;
	size_t *ix = NULL, n = 0;
	udr__parts ps = {0};
	int rc;
	*idx = NULL;
	*nidx = 0;
	if (vw->nparts < 2 || !key_cond(col, sizeof(col), &v, base, cond, alias, params, nparams))
		return 0;
	if ((rc = udr__parts_of(&ps, base)) < 0)
		return rc;
	if (!ps.typed || ps.n != vw->nparts)
		goto out; /* rows per part unknown: every part */
	if ((rc = kstats_load(q, vw, &ps, col)) < 0) {
		/* no ranges (a part the footer query cannot read): every part,
		 * and the scan says what is wrong */
		if (rc != UDR_ENOMEM) {
			udr_error_clear();
			rc = 0;
		}
		goto out;
	}
	if (!(ix = malloc(vw->nparts * sizeof(*ix)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t i = 0; i < vw->nparts; i++) {
		const udr__kstat *k = kstat_find(q, &vw->parts[i], col);
		if (i == 0 || !k || !k->known || (k->min <= v && v <= k->max))
			ix[n++] = i;
	}
	if (n < vw->nparts) {
		*idx = ix;
		*nidx = n;
		ix = NULL;
	}
out:
	free(ix);
	udr__parts_free(&ps);
	return rc;
}

/*
 * Make the shadow of t: "__udr o <id>" holds the base's rows with their
 * positions (part, row in the part), and the temp table "name" the same rows
 * in the same order, so that row id k of both is the same row until the
 * statements change it.  A base that is not Parquet parts is copied whole and
 * stored whole at commit.
 */
/*
 * cond: NULL for every row of the base; else the shadow holds only the rows
 * of the base where cond (SQL over the table's columns, alias naming the
 * table, ? placeholders filled from params) holds: "" for none (an INSERT).
 * Such a partial shadow is for one statement that reads the table nowhere
 * else (udr__w_sql checks), and is stored as a delta only.
 */
static int make_shadow(udr_query *q, wtab *t, const char *cond, const char *alias, const udr_value *params,
                       size_t nparams)
{
	udr__buf b = {0}, nm = {0};
	udr__view *vw;
	int rc;
	if (t->shadow)
		return 0;
	if (cond && !delta_capable(t->base))
		cond = NULL; /* copied whole */
	t->id = ++q->wtx->ids;
	if ((rc = udr__sql_ident(&nm, t->name)) < 0)
		return rc;
	if (!delta_capable(t->base)) {
		char ref[UDR_TABLE_NAME_MAX + 32];
		t->full = true;
		snprintf(ref, sizeof(ref), "%s@%" PRIu64, t->name, t->base->version);
		rc = udr__buf_printf(&b, "CREATE TEMP TABLE %s AS SELECT * FROM ", nm.ptr);
		if (rc == 0)
			rc = udr__sql_ident(&b, ref);
		if (rc == 0)
			rc = udr__q_exec(q, b.ptr);
		t->shadow = rc == 0;
		goto out;
	}
	if ((rc = udr__q_view_get(&vw, q, t->base)) < 0)
		goto out;
	t->partial = cond != NULL;
	if (cond && *cond) {
		/* the rows where cond holds, with their positions: one statement */
		size_t *idx = NULL, nidx = 0;
		if ((rc = key_parts(&idx, &nidx, q, t->base, vw, cond, alias, params, nparams)) < 0)
			goto out;
		/* the statistics query ended the statement's hold on cached parts:
		 * the view again (held, and materialized if trimmed meanwhile) */
		if ((rc = udr__q_view_get(&vw, q, t->base)) < 0) {
			free(idx);
			goto out;
		}
		rc = udr__buf_printf(&b, "CREATE TEMP TABLE \"__udr o %lu\" AS SELECT * FROM (", t->id);
		if (rc == 0)
			rc = udr__dv_scan_sql_parts(&b, q, vw, true, idx, nidx);
		free(idx);
		if (rc == 0)
			rc = udr__buf_puts(&b, ") AS ");
		if (rc == 0)
			rc = udr__sql_ident(&b, alias);
		if (rc == 0)
			rc = udr__buf_printf(&b, " WHERE (\n%s\n)", cond);
		if (rc == 0)
			rc = udr__q_run(NULL, q, b.ptr, params, nparams, UDR__RUN_ANY);
	} else {
		/* every row, or none (an INSERT: the first part binds the columns) */
		size_t first = 0;
		rc = udr__buf_printf(&b, "CREATE TEMP TABLE \"__udr o %lu\" AS ", t->id);
		if (rc == 0)
			rc = udr__dv_scan_sql_parts(&b, q, vw, true, cond && vw->nparts ? &first : NULL, 1);
		if (rc == 0 && cond)
			rc = udr__buf_puts(&b, " LIMIT 0");
		if (rc == 0)
			rc = udr__q_exec(q, b.ptr);
	}
	udr__buf_free(&b);
	if (rc < 0)
		goto out;
	t->orig = true;
	rc = udr__buf_printf(&b, "CREATE TEMP TABLE %s AS SELECT * EXCLUDE (__udr_part, __udr_row) FROM \"__udr o %lu\"",
	                     nm.ptr, t->id);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	t->shadow = rc == 0;
out:
	udr__buf_free(&b);
	udr__buf_free(&nm);
	udr__q_cache_release(q);
	return rc;
}

/* ---- commit: from the shadow to a new version ------------------------------------------------------ */

typedef struct colset {
	char **names, **types;
	size_t n;
} colset;

static void colset_free(colset *c)
{
	udr_strarray_free(c->names, c->n);
	udr_strarray_free(c->types, c->n);
	memset(c, 0, sizeof(*c));
}

static int schema_text(char **out, const colset *c)
{
	return udr__q_schema_json(out, c->names, c->types, c->n);
}

/*
 * Types whose SQL equality holds between values that read back differently
 * (0.0 = -0.0; INTERVAL '1 month' = INTERVAL '30 days'), also inside lists
 * and structs: compared as text, or such a change would be taken for none.
 */
/* Types whose values are compared as text: "0.0 = -0.0" and "INTERVAL '1
 * month' = INTERVAL '30 days'" hold, but the values differ. */
static bool text_compared(const char *type)
{
	return strcasestr(type, "DOUBLE") || strcasestr(type, "FLOAT") || strcasestr(type, "REAL") ||
	       strcasestr(type, "INTERVAL");
}

/* A floating-point column (not a list or struct of them). */
static bool float_col(const char *type)
{
	return strcasecmp(type, "DOUBLE") == 0 || strcasecmp(type, "FLOAT") == 0;
}

/*
 * "a.c IS NOT DISTINCT FROM b.c", as text for the types above.  A DOUBLE or
 * FLOAT column compares its values and their sign bits instead, which says
 * the same as the text (equal values have equal bits but for the sign of 0
 * and NaN's payload, and the text shows the sign of 0 and of NaN but not the
 * payload) at a fraction of the cost (no formatting of every value).
 */
/* "OPEN a.c CLOSE IS NOT DISTINCT FROM OPEN bb.c CLOSE" */
static int cmp_wrapped(udr__buf *b, const char *open, const char *close, const char *a, const char *bb,
                       const char *name)
{
	int rc = udr__buf_printf(b, "%s%s.", open, a);
	if (rc == 0)
		rc = udr__sql_ident(b, name);
	if (rc == 0)
		rc = udr__buf_printf(b, "%s IS NOT DISTINCT FROM %s%s.", close, open, bb);
	if (rc == 0)
		rc = udr__sql_ident(b, name);
	return rc == 0 ? udr__buf_puts(b, close) : rc;
}

static int same_col(udr__buf *b, const char *a, const char *bb, const char *name, const char *type)
{
	int rc;
	if (float_col(type)) {
		rc = udr__buf_puts(b, "(");
		if (rc == 0)
			rc = cmp_wrapped(b, "", "", a, bb, name);
		if (rc == 0)
			rc = udr__buf_puts(b, " AND ");
		if (rc == 0)
			rc = cmp_wrapped(b, "signbit(", ")", a, bb, name);
		return rc == 0 ? udr__buf_puts(b, ")") : rc;
	}
	return text_compared(type) ? cmp_wrapped(b, "CAST(", " AS VARCHAR)", a, bb, name)
	                           : cmp_wrapped(b, "", "", a, bb, name);
}

/* "NOT (a.c IS NOT DISTINCT FROM b.c AND ...)": the row changed. */
static int changed_expr_as(udr__buf *b, const char *a, const char *bb, const colset *c)
{
	int rc = udr__buf_puts(b, "NOT (");
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		if (i)
			rc = udr__buf_puts(b, " AND ");
		if (rc == 0)
			rc = same_col(b, a, bb, c->names[i], c->types[i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, c->n ? ")" : "false)");
	return rc;
}

/* "NOT (o.c IS NOT DISTINCT FROM s.c AND ...)" */
static int changed_expr(udr__buf *b, const colset *c)
{
	return changed_expr_as(b, "o", "s", c);
}

/* Rows of each part of the base (udr.parts, else the Parquet footers). */
static int base_parts(udr__parts *ps, udr_query *q, const udr_version *v)
{
	udr__view *vw;
	int rc = udr__parts_of(ps, v);
	if (rc < 0 || ps->typed)
		return rc;
	if ((rc = udr__q_view_get(&vw, q, v)) < 0)
		return rc;
	for (size_t i = 0; i < ps->n && rc == 0; i++) {
		udr_result *r = NULL;
		udr_value x;
		rc = udr__q_run_path(&r, q, "SELECT num_rows::BIGINT FROM parquet_file_metadata(", vw->paths[i], ")");
		if (rc == 0 && (udr_result_get(&x, r, 0, 0) < 0 || x.type != UDR_TYPE_INT64 || x.i64 < 0))
			rc = udr__error_set(UDR_ECORRUPT, "table %s version %" PRIu64 ": part %zu has no row count", v->table,
			                    v->version, i);
		if (rc == 0)
			ps->p[i].rows = (uint64_t)x.i64;
		udr_result_free(r);
	}
	udr__q_cache_release(q);
	return rc;
}

int udr__parts_to_version(udr_version *v, const udr__parts *ps)
{
	udr__buf pm = {0};
	bool any_dv = false;
	int rc = v->nchunks ? udr__error_set(UDR_ERROR, "a version with chunks given typed parts") : 0;
	for (size_t i = 0; rc == 0 && i < ps->n; i++) {
		rc = udr_version_add_chunk(v, &ps->p[i].hash);
		any_dv |= ps->p[i].has_dv;
	}
	/* then the distinct deletion vectors, in order of first use */
	for (size_t i = 0; rc == 0 && i < ps->n; i++) {
		bool seen = false;
		if (!ps->p[i].has_dv)
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = ps->p[k].has_dv && udr_hash_equal(&ps->p[k].dv, &ps->p[i].dv);
		if (!seen)
			rc = udr_version_add_chunk(v, &ps->p[i].dv);
	}
	if (rc == 0)
		rc = udr__parts_meta(&pm, ps);
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.format", any_dv ? "parquet-dv" : "parquet");
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.parts", pm.ptr);
	udr__buf_free(&pm);
	return rc;
}

static int new_version(udr_version **out, const char *table, const udr__parts *ps, const colset *cols,
                       uint64_t rows)
{
	udr_version *v = NULL;
	char *sch = NULL, rowbuf[32];
	int rc = udr_version_new(&v, table, 0);
	if (rc == 0)
		rc = udr__parts_to_version(v, ps);
	snprintf(rowbuf, sizeof(rowbuf), "%" PRIu64, rows);
	if (rc == 0)
		rc = schema_text(&sch, cols);
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.schema", sch);
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.rows", rowbuf);
	if (rc == 0)
		rc = udr_version_set_meta(v, "udr.source", "sql");
	free(sch);
	if (rc < 0) {
		udr_version_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* Same parts (and deletion vectors) and schema as the base: no change. */
static bool same_as_base(const udr_version *v, const udr_version *base)
{
	const char *a, *b;
	if (!base || base->nchunks != v->nchunks)
		return false;
	for (size_t i = 0; i < v->nchunks; i++)
		if (!udr_hash_equal(&v->chunks[i], &base->chunks[i]))
			return false;
	a = udr_version_get_meta(v, "udr.schema");
	b = udr_version_get_meta(base, "udr.schema");
	return a && b && strcmp(a, b) == 0;
}

/* A type a Parquet part holds as itself (DuckDB reads it back with that
 * name); the others (TIMESTAMP_MS, INTEGER[3], BIT, HUGEINT, ENUM, nested
 * types ...) may come back as another (TIMESTAMP, INTEGER[], ...). */
static bool parquet_keeps_type(const char *t)
{
	static const char *const same[] = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT",
	                                   "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR",
	                                   "BLOB", "DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE",
	                                   "UUID", "INTERVAL"};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		if (strcmp(t, same[i]) == 0)
			return true;
	return strncmp(t, "DECIMAL(", 8) == 0;
}

/*
 * udr.schema is the types as DuckDB reads the parts back (what appends,
 * keyed imports and later writes compare with): CREATE TABLE ... AS with a
 * TIMESTAMP_MS column recorded TIMESTAMP_MS while its part reads back as
 * TIMESTAMP, so every later append or --key import of the table's own
 * export was refused.  When a column's type may change, the first part
 * says; *cols gets those types (the caller frees them).
 */
static int readback_types(colset *rb, udr_query *q, const colset *cols, const udr_hash *part, const char *table)
{
	bool same = true;
	char *path = NULL;
	udr__buf b = {0};
	int rc;
	memset(rb, 0, sizeof(*rb));
	for (size_t i = 0; i < cols->n && same; i++)
		same = parquet_keeps_type(cols->types[i]);
	if (same)
		return 0;
	if (part) {
		if ((rc = udr_store_local_path(&path, q->store, part)) < 0)
			return rc;
	} else {
		/* no rows, no part: a Parquet file of none, written aside, says
		 * what the first part will read back as (CREATE TABLE e AS ...
		 * WHERE false kept TIMESTAMP_MS, and its first INSERT made it
		 * TIMESTAMP: a schema change no statement asked for) */
		if (!(path = udr__q_tmp_path(q, "schema")))
			return udr__error_oom();
		/* written as the parts are (lossless_select): HUGEINT and
		 * UHUGEINT as DECIMAL(38,0), not the writer's DOUBLE */
		size_t nh = 0;
		rc = udr__buf_puts(&b, "COPY (SELECT *");
		for (size_t i = 0; rc == 0 && i < cols->n; i++) {
			if (strcmp(cols->types[i], "HUGEINT") != 0 && strcmp(cols->types[i], "UHUGEINT") != 0)
				continue;
			rc = udr__buf_puts(&b, nh++ ? ", CAST(" : " REPLACE (CAST(");
			if (rc == 0)
				rc = udr__sql_ident(&b, cols->names[i]);
			if (rc == 0)
				rc = udr__buf_puts(&b, " AS DECIMAL(38,0)) AS ");
			if (rc == 0)
				rc = udr__sql_ident(&b, cols->names[i]);
		}
		if (rc == 0)
			rc = udr__buf_puts(&b, nh ? ") FROM temp.main." : " FROM temp.main.");
		if (rc == 0)
			rc = udr__sql_ident(&b, table);
		if (rc == 0)
			rc = udr__buf_puts(&b, " LIMIT 0) TO ");
		if (rc == 0)
			rc = udr__sql_literal(&b, path);
		if (rc == 0)
			rc = udr__buf_puts(&b, " (FORMAT parquet)");
		if (rc == 0)
			rc = udr__q_exec(q, b.ptr);
		udr__buf_free(&b);
		if (rc < 0) {
			unlink(path);
			free(path);
			return rc;
		}
	}
	rc = udr__buf_puts(&b, "SELECT * FROM read_parquet(");
	if (rc == 0)
		rc = udr__sql_read_path(&b, path);
	if (rc == 0)
		rc = udr__buf_puts(&b, ")");
	if (rc == 0)
		rc = udr__q_describe(&rb->names, &rb->types, &rb->n, q, b.ptr);
	udr__buf_free(&b);
	if (!part)
		unlink(path);
	free(path);
	if (rc == 0 && rb->n != cols->n) {
		colset_free(rb);
		rc = udr__error_set(UDR_ERROR, "a part written has %zu columns, its rows %zu", rb->n, cols->n);
	}
	return rc;
}

/*
 * CREATE TABLE name (columns ...): what a udr table cannot keep is refused
 * rather than dropped at commit.  A version holds rows and their types
 * only: constraints (NOT NULL, CHECK, keys), DEFAULT and generated columns
 * vanished with the session's temporary table (the next INSERT stored
 * NULL where DuckDB stored the default, and broke every constraint, exit
 * 0).  A declared type its Parquet parts read back as another (ENUM,
 * TIMESTAMP_S, VARINT, BIT, INTEGER[2] ...) became that type, so later
 * writes took values the declared type refuses or rounds.  HUGEINT and
 * UHUGEINT are kept as DECIMAL(38,0) (QUERY.md).
 */
static int declared_check(udr_query *q, const char *name, const char *qt)
{
	udr__buf b = {0}, lit = {0}, rel = {0};
	colset cols = {0}, rb = {0};
	int rc = udr__sql_literal(&lit, name);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "SELECT error(first(m ORDER BY o)) FROM ("
		                     "SELECT 1 AS o, 'constraint ' || constraint_text AS m FROM duckdb_constraints() "
		                     "WHERE database_name = 'temp' AND schema_name = 'main' AND table_name = %s AND "
		                     "constraint_type <> 'NOT NULL' "
		                     "UNION ALL SELECT CASE WHEN column_default IS NOT NULL THEN 2 ELSE 3 END, "
		                     "'column ' || column_name || CASE WHEN column_default IS NOT NULL THEN "
		                     "': a DEFAULT or generated value' ELSE ': NOT NULL' END "
		                     "FROM duckdb_columns() WHERE database_name = 'temp' AND schema_name = 'main' AND "
		                     "table_name = %s AND (column_default IS NOT NULL OR NOT is_nullable) "
		                     "UNION ALL SELECT 4, 'a COLLATE clause' FROM duckdb_tables() WHERE database_name = "
		                     "'temp' AND schema_name = 'main' AND table_name = %s AND "
		                     "regexp_matches(sql, '\\sCOLLATE\\s', 'i')) HAVING count(*) > 0",
		                     lit.ptr, lit.ptr, lit.ptr);
	if (rc == 0 && (rc = udr__q_exec(q, b.ptr)) < 0) {
		char msg[512];
		const char *m = udr_error_last()->message, *at = strstr(m, "Error: ");
		snprintf(msg, sizeof(msg), "%s", at ? at + 7 : m);
		rc = udr__error_set(UDR_EINVAL,
		                    "table '%s': %s is not kept: a udr table keeps its rows and their types, no "
		                    "constraints (NOT NULL, CHECK, keys), defaults, generated columns or collations "
		                    "(nothing was created; declare the columns without them)",
		                    qt, msg);
		goto out;
	}
	if ((rc = udr__buf_puts(&rel, "SELECT * FROM temp.main.")) < 0 || (rc = udr__sql_ident(&rel, name)) < 0 ||
	    (rc = udr__q_describe(&cols.names, &cols.types, &cols.n, q, rel.ptr)) < 0 ||
	    (rc = readback_types(&rb, q, &cols, NULL, name)) < 0)
		goto out;
	for (size_t i = 0; i < rb.n && i < cols.n; i++) {
		if (strcmp(rb.types[i], cols.types[i]) == 0 ||
		    ((strcmp(cols.types[i], "HUGEINT") == 0 || strcmp(cols.types[i], "UHUGEINT") == 0) &&
		     strcmp(rb.types[i], "DECIMAL(38,0)") == 0))
			continue;
		rc = udr__error_set(UDR_EINVAL,
		                    "table '%s': column %s is declared %s, which udr stores as %s (its parts are "
		                    "Parquet); nothing was created: declare it %s",
		                    qt, cols.names[i], cols.types[i], rb.types[i], rb.types[i]);
		break;
	}
out:
	colset_free(&cols);
	colset_free(&rb);
	udr__buf_free(&b);
	udr__buf_free(&lit);
	udr__buf_free(&rel);
	return rc;
}

/* Store the shadow's rows anew (created or replaced tables). */
static int stage_full(udr_version **out, udr_query *q, wtab *t, const colset *cols)
{
	udr__buf b = {0};
	udr_hash *h = NULL;
	uint64_t *rows = NULL, total = 0;
	size_t n = 0;
	udr__parts ps = {0};
	int rc = udr__buf_puts(&b, "SELECT * FROM temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&b, t->name);
	if (rc == 0)
		rc = udr__q_write_parts(&h, &rows, &n, q, b.ptr, cols->names, cols->types, cols->n);
	udr__buf_free(&b);
	if (rc < 0)
		return rc;
	if (!(ps.p = calloc(n ? n : 1, sizeof(*ps.p))))
		rc = udr__error_oom();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		ps.p[i].hash = h[i];
		ps.p[i].rows = rows[i];
		total += rows[i];
	}
	ps.n = n;
	ps.typed = true;
	{
		colset rb = {0};
		if (rc == 0)
			rc = readback_types(&rb, q, cols, n > 0 ? &h[0] : NULL, t->name);
		if (rc == 0)
			rc = new_version(out, t->name, &ps, rb.n ? &rb : cols, total);
		colset_free(&rb);
	}
	udr__parts_free(&ps);
	free(h);
	free(rows);
	return rc;
}

static uint64_t nnew_rows(const uint64_t *rows, size_t n)
{
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += rows[i];
	return t;
}

/*
 * The deletion vectors of a write, put by a thread of their own while the
 * calling thread has DuckDB write the new rows and puts their parts: the two
 * kinds of puts are independent, and each waits mostly on its own fsyncs
 * (a deletion vector goes into a pack, which may then be merged), so the
 * waits overlap instead of adding up.  What is stored, and when it is
 * durable (each put before it returns), is as before.
 */
typedef struct dv_job {
	udr_store *store;
	uint8_t **enc;   /* per part: the encoded deletion vector, NULL: none to put */
	size_t *len;
	udr_hash *hash;  /* out */
	size_t n;
	int rc;
	char msg[1024];
} dv_job;

static void *dv_put_worker(void *arg)
{
	dv_job *j = arg;
	for (size_t i = 0; i < j->n && j->rc == 0; i++) {
		if (!j->enc[i])
			continue;
		if ((j->rc = udr_store_put(&j->hash[i], j->store, j->enc[i], j->len[i])) < 0)
			snprintf(j->msg, sizeof(j->msg), "%s", udr_error_last()->message);
	}
	return NULL;
}

/* A column of a nested type (DuckDB updates it by delete and insert). */
static bool nested_cols(const colset *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (strchr(c->types[i], '[') || strncmp(c->types[i], "STRUCT(", 7) == 0 ||
		    strncmp(c->types[i], "MAP(", 4) == 0 || strncmp(c->types[i], "UNION(", 6) == 0)
			return true;
	return false;
}

/*
 * Whether a deleted row and an inserted row may be the same (DuckDB's
 * equality, which takes -0.0 for 0.0: a necessary condition, cheap): the
 * exact pairing (md5 of every value's text, a window, a join) costs 3-4x
 * the write on a big update that changed every row it touched, and is
 * made only when some row may pair.
 */
static int any_pair(bool *out, udr_query *q, const wtab *t, const colset *cols, const char *nm)
{
	udr__buf b = {0};
	udr_result *r = NULL;
	udr_value x;
	int rc = udr__buf_printf(&b,
	                         "SELECT EXISTS (SELECT 1 FROM (SELECT * EXCLUDE (__udr_part, __udr_row) FROM "
	                         "\"__udr o %lu\" \"__udr a\" WHERE NOT EXISTS (SELECT 1 FROM temp.main.%s \"__udr b\" "
	                         "WHERE \"__udr b\".rowid = \"__udr a\".rowid)) \"__udr g\" SEMI JOIN (SELECT * FROM "
	                         "temp.main.%s \"__udr a\" WHERE NOT EXISTS (SELECT 1 FROM \"__udr o %lu\" \"__udr b\" "
	                         "WHERE \"__udr b\".rowid = \"__udr a\".rowid)) \"__udr n\" ON ",
	                         t->id, nm, nm, t->id);
	*out = false;
	/* on the values' hashes: integers, a hash join (nested values
	 * compared as such made it a nested loop join, 1M x 1M rows) */
	for (size_t i = 0; rc == 0 && i < cols->n; i++) {
		if (i)
			rc = udr__buf_puts(&b, " AND ");
		if (rc == 0)
			rc = udr__buf_puts(&b, "hash(\"__udr g\".");
		if (rc == 0)
			rc = udr__sql_ident(&b, cols->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&b, ") = hash(\"__udr n\".");
		if (rc == 0)
			rc = udr__sql_ident(&b, cols->names[i]);
		if (rc == 0)
			rc = udr__buf_puts(&b, ")");
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, ")");
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc == 0 && udr_result_get(&x, r, 0, 0) == 0 && x.type == UDR_TYPE_BOOL)
		*out = x.i64 != 0;
	else if (rc == 0)
		*out = true; /* unknown: pair exactly */
	udr_result_free(r);
	udr__buf_free(&b);
	return rc;
}

/*
 * The change of a shadow against the rows it started from: rows gone or
 * changed become deletion vectors of their parts (merged with the base's),
 * changed and new rows are written as new parts after the base's, in row
 * id order.  *out NULL when nothing changed.
 */
static int stage_delta(udr_version **out, udr_query *q, wtab *t, const colset *cols)
{
	udr__buf b = {0}, nm = {0}, cmp = {0};
	udr__parts ps = {0};
	uint8_t **bits = NULL;
	udr_hash *h = NULL;
	uint64_t *rows = NULL, *del = NULL, ndel = 0, nupd = 0, nnew = 0;
	size_t n = 0, kept = 0, nbase = 0;
	duckdb_result res;
	bool have_res = false, threaded = false, paired = false;
	char gone_x[160] = "", new_x[160] = "";
	dv_job dj;
	pthread_t dt;
	int rc;
	*out = NULL;
	memset(&dj, 0, sizeof(dj));
	if ((rc = base_parts(&ps, q, t->base)) < 0)
		return rc;
	nbase = ps.n;
	if (!(bits = calloc(ps.n ? ps.n : 1, sizeof(*bits))) || !(del = calloc(ps.n ? ps.n : 1, sizeof(*del))) ||
	    !(dj.enc = calloc(ps.n ? ps.n : 1, sizeof(*dj.enc))) || !(dj.len = calloc(ps.n ? ps.n : 1, sizeof(*dj.len))) ||
	    !(dj.hash = calloc(ps.n ? ps.n : 1, sizeof(*dj.hash)))) {
		rc = udr__error_oom();
		goto out;
	}
	if ((rc = udr__sql_ident(&nm, t->name)) < 0 || (rc = changed_expr(&cmp, cols)) < 0)
		goto out;
	/* 0. DuckDB updates a nested column (LIST, STRUCT, MAP ...) by
	 * deleting the row and inserting it anew, with a new row id: every
	 * such row looked deleted and inserted, so UPDATE q SET l = l
	 * committed a version and moved the rows to the end.  A gone row and
	 * a new row with the same values are paired (in row id order among
	 * equal rows) and are no change; the others are as before. */
	if (nested_cols(cols) && (rc = any_pair(&paired, q, t, cols, nm.ptr)) < 0)
		goto out;
	if (paired) {
		udr__buf m = {0}, part = {0};
		/* partitioned by the md5 of each value's text: a window's
		 * partition columns come out of it as their sort keys decode
		 * ([-0.0] came out [0.0]), so they are never the data itself */
		for (size_t i = 0; rc == 0 && i < cols->n; i++) {
			rc = udr__buf_puts(&part, i ? ", md5(CAST(" : "md5(CAST(");
			if (rc == 0)
				rc = udr__sql_ident(&part, cols->names[i]);
			if (rc == 0)
				rc = udr__buf_puts(&part, " AS VARCHAR))");
		}
		if (rc == 0)
			rc = udr__buf_printf(&m,
			                     "CREATE TEMP TABLE \"__udr m %lu\" AS SELECT \"__udr g\".__udr_g AS gr, "
			                     "\"__udr n\".__udr_n AS nr, ",
			                     t->id);
		/* exactly the same (the sign of a zero, as text) in a projection:
		 * in a join condition DuckDB compares the values under the casts
		 * (CAST([-0.0] AS VARCHAR) matched '[0.0]'), so the join pairs
		 * rows equal as values and this says which are the same */
		if (rc == 0)
			rc = changed_expr_as(&m, "\"__udr g\"", "\"__udr n\"", cols);
		if (rc == 0)
			rc = udr__buf_printf(&m,
			                     " AS __udr_changed FROM (SELECT rowid AS __udr_g, row_number() OVER "
			                     "(PARTITION BY %s ORDER BY rowid) AS __udr_k, * EXCLUDE (__udr_part, __udr_row) "
			                     "FROM \"__udr o %lu\" \"__udr a\" WHERE NOT EXISTS (SELECT 1 FROM temp.main.%s "
			                     "\"__udr b\" WHERE \"__udr b\".rowid = \"__udr a\".rowid)) \"__udr g\" JOIN "
			                     "(SELECT rowid AS __udr_n, row_number() OVER (PARTITION BY %s ORDER BY rowid) AS "
			                     "__udr_k, * FROM temp.main.%s \"__udr a\" WHERE NOT EXISTS (SELECT 1 FROM "
			                     "\"__udr o %lu\" \"__udr b\" WHERE \"__udr b\".rowid = \"__udr a\".rowid)) "
			                     "\"__udr n\" ON \"__udr g\".__udr_k = \"__udr n\".__udr_k",
			                     part.ptr, t->id, nm.ptr, part.ptr, nm.ptr, t->id);
		/* the join's own equality must be exact too: DuckDB takes an
		 * inner join's equal keys for one column (n.l became g.l in the
		 * projection) and looks through casts in its conditions; md5 of
		 * the text is neither (a nested float's -0.0 is not 0.0) */
		for (size_t i = 0; rc == 0 && i < cols->n; i++) {
			rc = udr__buf_puts(&m, " AND ");
			if (rc == 0 && text_compared(cols->types[i]))
				rc = cmp_wrapped(&m, "md5(CAST(", " AS VARCHAR))", "\"__udr g\"", "\"__udr n\"",
				                 cols->names[i]);
			else if (rc == 0)
				rc = same_col(&m, "\"__udr g\"", "\"__udr n\"", cols->names[i], cols->types[i]);
		}
		if (rc == 0)
			rc = udr__q_exec(q, m.ptr);
		udr__buf_free(&m);
		udr__buf_free(&part);
		if (rc < 0)
			goto out;
	}
	/* 1. positions of rows gone or changed (a paired row is neither) */
	if (paired) {
		snprintf(gone_x, sizeof(gone_x), " AND o.rowid NOT IN (SELECT gr FROM \"__udr m %lu\" WHERE NOT "
		         "__udr_changed)) OR (s.__udr_r IS NOT NULL AND ", t->id);
		snprintf(new_x, sizeof(new_x), " AND s.__udr_r NOT IN (SELECT nr FROM \"__udr m %lu\" WHERE NOT "
		         "__udr_changed)) OR (o.rowid IS NOT NULL AND ", t->id);
	}
	rc = udr__buf_printf(&b,
	                     "SELECT o.__udr_part::UBIGINT, o.__udr_row::UBIGINT, s.__udr_r IS NOT NULL FROM \"__udr o %lu\" o "
	                     "LEFT JOIN (SELECT rowid AS __udr_r, * FROM temp.main.%s) s ON o.rowid = s.__udr_r "
	                     "WHERE (s.__udr_r IS NULL%s%s)",
	                     t->id, nm.ptr, gone_x[0] ? gone_x : ") OR (", cmp.ptr);
	if (rc < 0)
		goto out;
	if (duckdb_query(q->con, b.ptr, &res) == DuckDBError) {
		rc = udr__q_error(q, duckdb_result_error(&res));
		duckdb_destroy_result(&res);
		goto out;
	}
	have_res = true;
	for (;;) {
		duckdb_data_chunk ch = duckdb_fetch_chunk(res);
		idx_t m;
		const uint64_t *pp, *rr;
		const bool *chg;
		if (!ch)
			break;
		m = duckdb_data_chunk_get_size(ch);
		pp = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
		rr = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 1));
		chg = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 2));
		for (idx_t i = 0; i < m && rc == 0; i++) {
			size_t pi = (size_t)pp[i];
			if (pi >= ps.n || rr[i] >= ps.p[pi].rows) {
				rc = udr__error_set(UDR_ERROR, "table %s: a row position outside its part", t->name);
				break;
			}
			if (!bits[pi]) {
				if (ps.p[pi].has_dv) {
					if ((rc = udr__dv_load(&bits[pi], q->store, &ps.p[pi], t->base)) < 0)
						break;
				} else if (!(bits[pi] = calloc(1, ps.p[pi].rows / 8 + 1))) {
					rc = udr__error_oom();
					break;
				}
			}
			bits[pi][rr[i] >> 3] |= (uint8_t)(1u << (rr[i] & 7));
			ndel++;
			nupd += chg[i] ? 1 : 0;
		}
		duckdb_destroy_data_chunk(&ch);
		if (rc < 0)
			break;
	}
	duckdb_destroy_result(&res);
	have_res = false;
	if (rc < 0)
		goto out;
	/* 2. the deletion vectors of the parts that lost rows, put by a thread
	 * of their own (a part that lost every row goes: nothing to put) */
	for (size_t i = 0; i < ps.n && rc == 0; i++) {
		if (!bits[i])
			continue;
		if ((rc = udr__dv_encode(&dj.enc[i], &dj.len[i], ps.p[i].rows, bits[i], &del[i])) < 0)
			break;
		if (del[i] == ps.p[i].rows) {
			free(dj.enc[i]);
			dj.enc[i] = NULL;
		}
	}
	if (rc < 0)
		goto out;
	dj.store = q->store;
	dj.n = ps.n;
	if (ndel) {
		threaded = pthread_create(&dt, NULL, dv_put_worker, &dj) == 0;
		if (!threaded)
			dv_put_worker(&dj);
	}
	/* 3. changed rows in their old order (by position: the shadow may hold
	 * them in another, as DuckDB does not keep the files' order through a
	 * filter of a scan of several parts), then new rows in row id order
	 * (the order they were inserted in), as new parts */
	udr__buf_free(&b);
	rc = udr__buf_printf(&b,
	                     "SELECT s.* EXCLUDE (__udr_r) FROM (SELECT rowid AS __udr_r, * FROM temp.main.%s) s "
	                     "LEFT JOIN \"__udr o %lu\" o ON o.rowid = s.__udr_r WHERE (o.rowid IS NULL%s%s) "
	                     "ORDER BY o.__udr_part NULLS LAST, o.__udr_row, s.__udr_r",
	                     nm.ptr, t->id, new_x[0] ? new_x : ") OR (", cmp.ptr);
	if (rc == 0)
		rc = udr__q_write_parts(&h, &rows, &n, q, b.ptr, cols->names, cols->types, cols->n);
	if (threaded) {
		pthread_join(dt, NULL);
		threaded = false;
	}
	if (rc < 0)
		goto out;
	if (dj.rc < 0) {
		rc = udr__error_set(dj.rc, "%s", dj.msg);
		goto out;
	}
	if (ndel == 0 && n == 0)
		goto out; /* nothing changed */
	/* import --key: a row replaced by one with its key is an update */
	nupd += t->key_updates;
	if (nupd > ndel || nupd > nnew_rows(rows, n)) {
		rc = udr__error_set(UDR_ERROR, "table %s: more rows updated than deleted or stored", t->name);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		nnew += rows[i];
	/* 4. the new parts list: the base's, with deletion vectors, then the new */
	for (size_t i = 0; i < ps.n; i++) {
		udr__part p = ps.p[i];
		if (bits[i]) {
			if (!dj.enc[i])
				continue; /* every row deleted: the part goes */
			p.dv = dj.hash[i];
			p.has_dv = true;
			p.deleted = del[i];
		}
		ps.p[kept++] = p;
	}
	ps.n = kept;
	{
		udr__part *np = realloc(ps.p, (kept + n + 1) * sizeof(*np));
		if (!np) {
			rc = udr__error_oom();
			goto out;
		}
		ps.p = np;
	}
	for (size_t i = 0; i < n; i++) {
		memset(&ps.p[ps.n], 0, sizeof(ps.p[ps.n]));
		ps.p[ps.n].hash = h[i];
		ps.p[ps.n].rows = rows[i];
		ps.n++;
	}
	ps.typed = true;
	{
		uint64_t total = 0;
		for (size_t i = 0; i < ps.n; i++)
			total += ps.p[i].rows - ps.p[i].deleted;
		rc = new_version(out, t->name, &ps, cols, total);
	}
	/* what the rows did: changed rows are deleted and stored anew */
	if (rc == 0 && (rc = udr__version_set_changes(*out, nnew - nupd, nupd, ndel - nupd)) < 0) {
		udr_version_free(*out);
		*out = NULL;
	}
out:
	if (threaded)
		pthread_join(dt, NULL);
	if (have_res)
		duckdb_destroy_result(&res);
	if (paired) {
		char drop[64];
		snprintf(drop, sizeof(drop), "DROP TABLE IF EXISTS temp.main.\"__udr m %lu\"", t->id);
		if (udr__q_exec(q, drop) < 0 && rc == 0)
			rc = udr_error_last()->code;
	}
	for (size_t i = 0; i < nbase; i++) {
		if (bits)
			free(bits[i]);
		if (dj.enc)
			free(dj.enc[i]);
	}
	free(bits);
	free(del);
	free(dj.enc);
	free(dj.len);
	free(dj.hash);
	udr__buf_free(&b);
	udr__buf_free(&nm);
	udr__buf_free(&cmp);
	udr__parts_free(&ps);
	free(h);
	free(rows);
	return rc;
}

/* The base's udr.schema as columns (NULL types never match). */
static bool same_schema(const udr_version *base, const colset *cols)
{
	const char *text = udr_version_get_meta(base, "udr.schema");
	json_error_t jerr;
	json_t *arr = text ? json_loads(text, 0, &jerr) : NULL, *c;
	size_t i;
	bool same = arr && json_is_array(arr) && json_array_size(arr) == cols->n;
	json_array_foreach(arr, i, c) {
		const char *nm = json_string_value(json_object_get(c, "name"));
		const char *ty = json_string_value(json_object_get(c, "type"));
		if (!same || !nm || !ty || strcmp(nm, cols->names[i]) != 0 || strcmp(ty, cols->types[i]) != 0)
			same = false;
	}
	json_decref(arr);
	return same;
}

/* Names the position columns of the delta path would clash with. */
static bool reserved_column(const colset *cols)
{
	for (size_t i = 0; i < cols->n; i++)
		if (strcasecmp(cols->names[i], "file_index") == 0 || strcasecmp(cols->names[i], "file_row_number") == 0 ||
		    strcasecmp(cols->names[i], "rowid") == 0 || strncasecmp(cols->names[i], "__udr_", 6) == 0)
			return true;
	return false;
}

/*
 * The shadow holds exactly the base's rows, in order (a table replaced by
 * the same rows): *same set.  Compared row by row (POSITIONAL JOIN) after
 * the row counts.
 */
static int same_rows(bool *same, udr_query *q, wtab *t, const colset *cols)
{
	char ref[UDR_TABLE_NAME_MAX + 32];
	udr__buf b = {0}, cmp = {0};
	udr_result *r = NULL;
	udr_value x;
	int rc;
	*same = false;
	snprintf(ref, sizeof(ref), "%s@%" PRIu64, t->name, t->base->version);
	rc = changed_expr(&cmp, cols);
	if (rc == 0)
		rc = udr__buf_puts(&b, "SELECT ((SELECT count(*) FROM temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&b, t->name);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") = (SELECT count(*) FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, ref);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&b, t->name);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") s POSITIONAL JOIN (SELECT * FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, ref);
	if (rc == 0)
		rc = udr__buf_printf(&b, ") o WHERE %s))::BIGINT", cmp.ptr);
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc == 0 && udr_result_get(&x, r, 0, 0) == 0 && x.type == UDR_TYPE_INT64)
		*same = x.i64 == 1;
	udr_result_free(r);
	udr__buf_free(&b);
	udr__buf_free(&cmp);
	return rc;
}

/*
 * udr.changes of v, which stores t's rows whole: a new table's rows are all
 * inserted; else, without positions to match rows by, the rows are compared
 * as multisets (EXCEPT ALL): a changed row is one deleted and one inserted.
 * Columns of another schema: every row deleted and inserted.
 */
static int full_changes(udr_query *q, wtab *t, const colset *cols, udr_version *v)
{
	char ref[UDR_TABLE_NAME_MAX + 32];
	const char *rows = udr_version_get_meta(v, "udr.rows");
	udr__buf b = {0}, nm = {0}, rf = {0};
	udr_result *r = NULL;
	udr_value x, y;
	uint64_t n = 0;
	bool same;
	int rc;
	if (!rows || udr__parse_u64(&n, rows, strlen(rows)) < 0)
		return 0; /* not known: no udr.changes */
	if (!t->base || t->dropped || udr__version_dropped(t->base)) /* created (again) */
		return udr__version_set_changes(v, n, 0, 0);
	snprintf(ref, sizeof(ref), "%s@%" PRIu64, t->name, t->base->version);
	if ((rc = udr__sql_ident(&nm, t->name)) < 0 || (rc = udr__sql_ident(&rf, ref)) < 0)
		goto out;
	{ /* the columns the base reads as (raw chunks have no udr.schema) */
		colset bc = {0};
		udr__buf d = {0};
		rc = udr__buf_printf(&d, "SELECT * FROM %s", rf.ptr);
		if (rc == 0)
			rc = udr__q_describe(&bc.names, &bc.types, &bc.n, q, d.ptr);
		udr__buf_free(&d);
		same = rc == 0 && bc.n == cols->n;
		for (size_t i = 0; same && i < bc.n; i++)
			same = strcmp(bc.names[i], cols->names[i]) == 0 && strcmp(bc.types[i], cols->types[i]) == 0;
		colset_free(&bc);
		if (rc < 0)
			goto out;
	}
	if (same) {
		/* compared as SQL writes compare (same_col): a float with its
		 * sign bit, an INTERVAL or nested float as text */
		udr__buf p = {0};
		for (size_t i = 0; rc == 0 && i < cols->n; i++) {
			const char *c = cols->names[i], *ty = cols->types[i];
			if (i)
				rc = udr__buf_puts(&p, ", ");
			if (rc == 0 && float_col(ty)) {
				rc = udr__sql_ident(&p, c);
				if (rc == 0)
					rc = udr__buf_puts(&p, ", signbit(");
				if (rc == 0)
					rc = udr__sql_ident(&p, c);
				if (rc == 0)
					rc = udr__buf_puts(&p, ")");
			} else if (rc == 0 && text_compared(ty)) {
				rc = udr__buf_puts(&p, "CAST(");
				if (rc == 0)
					rc = udr__sql_ident(&p, c);
				if (rc == 0)
					rc = udr__buf_puts(&p, " AS VARCHAR)");
			} else if (rc == 0) {
				rc = udr__sql_ident(&p, c);
			}
		}
		if (rc == 0 && !cols->n)
			rc = udr__buf_puts(&p, "*");
		if (rc == 0)
			rc = udr__buf_printf(&b,
			                     "SELECT (SELECT count(*) FROM (SELECT %s FROM temp.main.%s EXCEPT ALL SELECT %s "
			                     "FROM %s))::BIGINT, (SELECT count(*) FROM (SELECT %s FROM %s EXCEPT ALL SELECT %s "
			                     "FROM temp.main.%s))::BIGINT",
			                     p.ptr, nm.ptr, p.ptr, rf.ptr, p.ptr, rf.ptr, p.ptr, nm.ptr);
		udr__buf_free(&p);
	} else
		rc = udr__buf_printf(&b, "SELECT %" PRIu64 "::BIGINT, (SELECT count(*) FROM %s)::BIGINT", n, rf.ptr);
	if (rc == 0)
		rc = udr__q_run(&r, q, b.ptr, NULL, 0, UDR__RUN_ANY);
	if (rc == 0 && (udr_result_get(&x, r, 0, 0) < 0 || udr_result_get(&y, r, 0, 1) < 0 || x.type != UDR_TYPE_INT64 ||
	                y.type != UDR_TYPE_INT64 || x.i64 < 0 || y.i64 < 0))
		rc = udr__error_set(UDR_ERROR, "table %s: cannot count the rows changed", t->name);
	if (rc == 0)
		rc = udr__version_set_changes(v, (uint64_t)x.i64, 0, (uint64_t)y.i64);
out:
	udr_result_free(r);
	udr__buf_free(&b);
	udr__buf_free(&nm);
	udr__buf_free(&rf);
	return rc;
}

/* The version table t gets at commit; *out NULL when it does not change. */
static int stage_table(udr_version **out, udr_query *q, wtab *t)
{
	colset cols = {0};
	udr__buf b = {0};
	int rc;
	*out = NULL;
	if (!t->shadow) {
		if (!t->dropped || !t->base || udr__version_dropped(t->base))
			return 0; /* created and dropped again, or never there */
		if ((rc = udr_version_new(out, t->name, 0)) == 0)
			rc = udr_version_set_meta(*out, UDR_META_DROPPED, "true");
		if (rc == 0) { /* every row of the table is deleted */
			const char *r = udr_version_get_meta(t->base, "udr.rows");
			uint64_t n = 0;
			if (r && udr__parse_u64(&n, r, strlen(r)) == 0)
				rc = udr__version_set_changes(*out, 0, 0, n);
		}
		return rc;
	}
	rc = udr__buf_puts(&b, "SELECT * FROM temp.main.");
	if (rc == 0)
		rc = udr__sql_ident(&b, t->name);
	if (rc == 0)
		rc = udr__q_describe(&cols.names, &cols.types, &cols.n, q, b.ptr);
	udr__buf_free(&b);
	if (rc < 0)
		return rc;
	if (cols.n == 0) {
		colset_free(&cols);
		return udr__error_set(UDR_EINVAL, "table %s has no columns", t->name);
	}
	if (t->partial) {
		/* some rows only: a delta by construction (never stored whole) */
		rc = stage_delta(out, q, t, &cols);
	} else if (t->full || !t->orig || !t->base || t->dropped || !same_schema(t->base, &cols) ||
	           reserved_column(&cols)) {
		bool same = false;
		/* rows replaced by the same rows (same schema): no change */
		if (t->base && !t->dropped && same_schema(t->base, &cols) && (rc = same_rows(&same, q, t, &cols)) < 0) {
			colset_free(&cols);
			return rc;
		}
		if (!same)
			rc = stage_full(out, q, t, &cols);
		if (rc == 0 && *out && t->base && !t->dropped && same_as_base(*out, t->base)) {
			udr_version_free(*out);
			*out = NULL;
		}
		if (rc == 0 && *out && (rc = full_changes(q, t, &cols, *out)) < 0) {
			udr_version_free(*out);
			*out = NULL;
		}
	} else {
		rc = stage_delta(out, q, t, &cols);
	}
	colset_free(&cols);
	udr__q_cache_release(q);
	return rc;
}

/* Keep the current error across cleanup that may set another. */
static int end_keep_error(udr_query *q, int rc)
{
	char msg[2048];
	snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
	wtx_end(q);
	if (rc < 0)
		return udr__error_set(rc, "%s", msg);
	return rc;
}

static void compact_after(udr_query *q, const char *branch, char **tables, size_t n);

/* Commit every table the transaction changed (one commit record), end it,
 * then compact what passed a threshold. */
static int wtx_commit(udr_query *q)
{
	udr__wtx *w = q->wtx;
	char **changed = calloc(w->n ? w->n : 1, sizeof(*changed));
	char *branch = w->branch; /* the compaction commits there too */
	size_t nchanged = 0;
	int rc = 0;
	w->branch = NULL;
	/* the parts put here and the commit naming them, with no gc between */
	if (!w->hold)
		rc = udr_gc_hold_begin(&w->hold, q->store);
	for (size_t i = 0; i < w->n && rc == 0; i++) {
		udr_version *v = NULL;
		if ((rc = stage_table(&v, q, &w->t[i])) < 0)
			break;
		if (!v)
			continue; /* this table did not change; the others may have */
		if (w->message)
			rc = udr_version_set_message(v, w->message);
		if (rc == 0)
			rc = udr_txn_write(w->txn, v);
		if (rc == 0 && changed && !udr__version_dropped(v) && (changed[nchanged] = strdup(v->table)))
			nchanged++;
		udr_version_free(v);
	}
	if (rc == 0)
		rc = udr_txn_commit(w->txn, NULL);
	rc = end_keep_error(q, rc);
	if (rc == 0)
		compact_after(q, branch, changed, nchanged);
	udr_strarray_free(changed, nchanged);
	free(branch);
	return rc;
}

/* A result without rows or columns (what DuckDB returns for DDL). */
static int empty_result(udr_result **out, udr_query *q)
{
	if (!out)
		return 0;
	return udr__q_run(out, q, "DROP VIEW IF EXISTS temp.main.__udr_none", NULL, 0, UDR__RUN_ANY);
}

static int refuse_failed(void)
{
	return udr__error_set(UDR_EINVAL, "a statement of this transaction failed: nothing can be committed; "
	                                  "ROLLBACK ends it");
}

/* The condition's parentheses balance and it has no top-level ';'. */
static bool balanced(const char *s, const char *end)
{
	const char *begin = s;
	int depth = 0;
	while (s < end) {
		if (*s == '(') {
			depth++;
		} else if (*s == ')') {
			if (--depth < 0)
				return false;
		} else if (*s == ';' && depth == 0) {
			return false;
		} else if (*s == '\'' || *s == '"' || *s == '$') {
			const char *n = is_estring(begin, s) ? skip_estring(s) : skip_token(s);
			if (n > end)
				return false;
			s = n;
			continue;
		} else if (s[0] == '-' && s[1] == '-') {
			while (s < end && *s != '\n')
				s++;
			continue;
		} else if (s[0] == '/' && s[1] == '*') {
			s = skip_ws(s);
			continue;
		}
		s++;
	}
	return depth == 0;
}

/*
 * Run an INSERT, UPDATE, DELETE or MERGE on t's shadow.  A statement alone
 * (autocommit) that names t only as its target copies into the shadow only
 * the rows it can change: none for an INSERT; for "UPDATE t SET ... WHERE
 * c" and "DELETE FROM t WHERE c", the rows where c holds, and then runs the
 * statement without its WHERE (c is evaluated once, on the table's rows).
 * Anything else copies every row.
 */
static int run_write(udr_result **out, udr_query *q, wtab *t, const wstmt *st, const char *sql,
                     const udr_value *params, size_t nparams, bool autoc)
{
	size_t refs = 0, fn = 0;
	long qm = 0;
	bool hidden = false;
	wfast f;
	count_refs(sql, t->name, &refs, &qm);
	if (!autoc || refs != 1 || (nparams && qm < 0) || t->shadow)
		goto whole;
	/* readers of the table the text does not name (query_table('t'),
	 * query('... t'), the session's views and macros, bound when used)
	 * would read the partial shadow: every row is copied then */
	count_refs(sql, "query_table", &fn, &qm);
	if (fn)
		goto whole;
	count_refs(sql, "query", &fn, &qm);
	if (fn)
		goto whole;
	/* rowid is the row's position in the shadow: the version's position
	 * only when the shadow holds every row in order (a partial shadow
	 * numbered the rows it holds from 0: `SET x = rowid WHERE ...` wrote
	 * other numbers than DuckDB's own table would, and `WHERE rowid = 0`
	 * did not bind) */
	count_refs(sql, "rowid", &fn, &qm);
	if (fn)
		goto whole;
	{
		int rc = session_readers(&hidden, q);
		if (rc < 0)
			return rc;
		if (hidden)
			goto whole;
	}
	if (st->kind == WK_INSERT) {
		int rc = make_shadow(q, t, "", t->name, NULL, 0);
		return rc < 0 ? rc : udr__q_run(out, q, sql, params, nparams, UDR__RUN_USER);
	}
	/* WITH ...: the condition alone would lose the statement's CTEs */
	if ((st->kind == WK_UPDATE || st->kind == WK_DELETE) && !st->with && fast_where(&f, st, sql)) {
		char *cond, *head;
		size_t ce = f.cond_end, nbefore, ncond;
		long qa = 0, qb = 0;
		udr__buf stmt = {0};
		int rc;
		while (ce > f.cond && (isspace((unsigned char)sql[ce - 1]) || sql[ce - 1] == ';'))
			ce--;
		if (ce <= f.cond || !balanced(sql + f.cond, sql + ce))
			goto whole;
		if (!(cond = strndup(sql + f.cond, ce - f.cond)) || !(head = strndup(sql, f.where))) {
			free(cond);
			return udr__error_oom();
		}
		/* the placeholders before WHERE, in the condition, after it */
		count_refs(head, "", &refs, &qa);
		count_refs(cond, "", &refs, &qb);
		nbefore = (size_t)qa;
		ncond = (size_t)qb;
		free(head);
		if (qa < 0 || qb < 0 || nbefore + ncond > nparams) {
			free(cond);
			goto whole;
		}
		rc = make_shadow(q, t, cond, f.alias, params + nbefore, ncond);
		free(cond);
		if (rc < 0)
			return rc;
		if (!t->partial) /* copied whole (not Parquet parts): the statement as it is */
			return udr__q_run(out, q, sql, params, nparams, UDR__RUN_USER);
		/* the statement without "WHERE cond": every row of the shadow */
		rc = udr__buf_put(&stmt, sql, f.where);
		if (rc == 0)
			rc = udr__buf_puts(&stmt, "\n");
		if (rc == 0)
			rc = udr__buf_puts(&stmt, sql + f.cond_end);
		if (rc == 0) {
			udr_value *pv = calloc(nparams ? nparams : 1, sizeof(*pv));
			if (!pv) {
				rc = udr__error_oom();
			} else {
				if (nparams) { /* params may be NULL (none): memcpy's source must not */
					memcpy(pv, params, nbefore * sizeof(*pv));
					memcpy(pv + nbefore, params + nbefore + ncond, (nparams - nbefore - ncond) * sizeof(*pv));
				}
				rc = udr__q_run(out, q, stmt.ptr, pv, nparams - ncond, UDR__RUN_USER);
				free(pv);
			}
		}
		udr__buf_free(&stmt);
		return rc;
	}
whole:
	{
		int rc = make_shadow(q, t, NULL, NULL, NULL, 0);
		return rc < 0 ? rc : udr__q_run(out, q, sql, params, nparams, UDR__RUN_USER);
	}
}

/*
 * DuckDB identifiers are case-insensitive: "Users" would bind to the shadow
 * of "users" (read it, or write into it).  Refused while "users" is written
 * (a failed statement of the transaction).
 */
static int refuse_case_clash(udr_query *q, const wstmt *st, const char *sql)
{
	size_t n = q->wtx ? q->wtx->n : 0;
	for (size_t i = 0; i <= n; i++) {
		const char *nm = i < n ? (q->wtx->t[i].shadow ? q->wtx->t[i].name : NULL)
		                       : (st->has_target && !st->qualified ? st->target : NULL);
		char qt[UDR_TABLE_NAME_MAX * 4 + 8];
		if (!nm || !case_clash(sql, nm))
			continue;
		if (q->wtx)
			q->wtx->failed = true;
		udr__quote(qt, sizeof(qt), nm);
		return udr__error_set(UDR_EINVAL,
		                      "names that differ from '%s' only in case cannot be used while it is written: "
		                      "DuckDB identifiers are case-insensitive",
		                      qt);
	}
	return 0;
}

/*
 * A write whose target is NAME@REF.  Versions, times, commits and tags never
 * change: refused.  NAME@branch:B (or NAME@B, B a branch) is the table on B:
 * allowed when B is the session's branch (the statement runs with NAME as
 * its target), refused otherwise, so that a write never lands on a branch
 * the session does not read.
 */
static int write_at(udr_result **out, udr_query *q, const wstmt *st, const char *sql, const udr_value *params,
                    size_t nparams)
{
	char qt[UDR_TABLE_NAME_MAX * 4 + 8], qb[UDR_REF_NAME_MAX * 4 + 8], name[UDR_TABLE_NAME_MAX + 1];
	const char *at = strchr(st->target, '@'), *branch;
	udr__ref ref;
	udr__buf b = {0};
	int rc;
	udr__quote(qt, sizeof(qt), st->target);
	if ((size_t)(at - st->target) > UDR_TABLE_NAME_MAX || udr__ref_parse(&ref, at + 1, strlen(at + 1)) < 0 ||
	    (ref.kind != UDR__REF_BRANCH && ref.kind != UDR__REF_TAG)) {
		udr_error_clear();
		return udr__error_set(UDR_EINVAL,
		                      "cannot write to '%s': a table's versions never change; write to the table "
		                      "by its name (a new version), reading old versions as NAME@REF",
		                      qt);
	}
	memcpy(name, st->target, (size_t)(at - st->target));
	name[at - st->target] = '\0';
	branch = udr__q_branch(q);
	if (ref.kind == UDR__REF_BRANCH) {
		uint64_t head = 0, bh = 0;
		/* NAME@B: a branch, else a tag (both: ambiguous) */
		if (ref.bare && ((rc = udr_catalog_head(&head, q->cat)) < 0 ||
		                 (rc = udr__resolve_at_seq(&bh, q->cat, ref.text, head)) < 0))
			return rc;
		if (ref.bare && udr__branch_head(&bh, q->cat, ref.text, head) == UDR_ENOTFOUND) {
			udr_error_clear();
			ref.kind = UDR__REF_TAG;
		}
	}
	if (ref.kind == UDR__REF_TAG)
		return udr__error_set(UDR_EINVAL,
		                      "cannot write to '%s': a tag names one commit and never moves; write on a "
		                      "branch (udr sql --branch NAME)",
		                      qt);
	if (ref.kind == UDR__REF_BRANCH && strcmp(ref.text, branch) != 0) {
		udr__quote(qb, sizeof(qb), branch);
		return udr__error_set(UDR_EINVAL,
		                      "cannot write to '%s': this session writes on branch '%s'; to write on "
		                      "another branch, open the session on it (udr sql --branch NAME, Python "
		                      "branch=NAME, udr_query_set_branch)",
		                      qt, qb);
	}
	/* the session's branch: the statement on NAME */
	rc = udr__buf_put(&b, sql, st->tstart);
	if (rc == 0)
		rc = udr__sql_ident(&b, name);
	if (rc == 0)
		rc = udr__buf_puts(&b, st->after);
	if (rc == 0)
		rc = udr__w_sql(out, q, b.ptr, params, nparams);
	udr__buf_free(&b);
	return rc;
}

/*
 * A temporary table or view of a UDR table's name (on the session's branch)
 * would hide the table from every later statement of the session: reads
 * would see its rows and writes go to it, committing nothing (DuckDB finds
 * the session's object before udr's tables).  Refused; 0 otherwise.
 */
static int refuse_hiding(udr_query *q, const char *name, const char *qual, const char *what)
{
	static const char *const searched[] = {"", "main", "temp", "memory", "temp.main", "memory.main"};
	char ref[UDR_REF_NAME_MAX + 8], qt[UDR_TABLE_NAME_MAX * 2 + 72];
	char **names = NULL;
	size_t n = 0;
	bool in_path = false;
	int rc = 0, hit = -1;
	/* an object of another schema (CREATE SCHEMA s; CREATE TABLE s.t) is
	 * not where DuckDB looks for a bare name */
	for (size_t i = 0; i < sizeof(searched) / sizeof(searched[0]) && !in_path; i++)
		in_path = strcasecmp(qual, searched[i]) == 0;
	if (!in_path)
		return 0;
	snprintf(ref, sizeof(ref), "branch:%s", q->branch ? q->branch : "main");
	if ((rc = udr_catalog_list_tables_on(&names, &n, q->cat, ref)) < 0) {
		if (rc != UDR_ENOTFOUND)
			return rc;
		udr_error_clear();
		return 0;
	}
	/* identifiers are case-insensitive: T hides t */
	for (size_t i = 0; i < n && hit < 0 && rc == 0; i++) {
		udr_version *v = NULL;
		if (strcasecmp(names[i], name) != 0)
			continue;
		rc = udr_catalog_get_version_on(&v, q->cat, names[i], 0, ref);
		if (rc == 0 && !udr_version_is_dropped(v))
			hit = (int)i;
		udr_version_free(v);
		if (rc == UDR_ENOTFOUND) {
			udr_error_clear();
			rc = 0;
		}
	}
	if (rc == 0 && hit >= 0) {
		if (q->wtx)
			q->wtx->failed = true;
		udr__quote(qt, sizeof(qt), names[hit]);
		rc = udr__error_set(UDR_EINVAL,
		                    "'%s' is a UDR table: a %s of its name would hide it from this session's statements "
		                    "(reads would see the %s's rows, writes would go to it and commit nothing); name it "
		                    "otherwise",
		                    qt, what, what);
	}
	udr_strarray_free(names, n);
	return rc;
}

static int refuse_read_only(const char *quoted_table)
{
	return udr__error_set(UDR_EINVAL, "read-only session: the statement would change UDR table '%s' (nothing "
	                                  "was written)", quoted_table);
}

int udr__w_sql(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams)
{
	char qt[UDR_TABLE_NAME_MAX * 4 + 8];
	wstmt st;
	wtab *t = NULL;
	bool autoc, sess;
	udr__buf b = {0};
	int rc;
	classify(&st, sql);
	/* a CREATE that is not of a UDR table makes a session object (a view,
	 * macro, temporary table ...): from then on they are looked for */
	if (!(st.kind == WK_CREATE && !st.temp && !st.qualified) && word_at(sql, "create"))
		q->user_objects = true;
	if (q->read_only && (st.kind == WK_BEGIN || st.kind == WK_COMMIT || st.kind == WK_ROLLBACK))
		return udr__error_set(UDR_EINVAL, "read-only session: transaction statements (BEGIN, COMMIT, "
		                                  "ROLLBACK) are not run");
	if (st.hides_what && (rc = refuse_hiding(q, st.hides, st.hides_qual, st.hides_what)) < 0)
		return rc;
	if (st.kind == WK_CREATE && (st.temp || st.qualified) && st.has_target &&
	    (rc = refuse_hiding(q, st.target, st.qual, st.temp ? "temporary table" : "table")) < 0)
		return rc;
	switch (st.kind) {
	case WK_NONE:
		if (q->wtx && q->wtx->failed)
			return refuse_failed();
		return q->wtx && (rc = refuse_case_clash(q, &st, sql)) < 0 ? rc : 1;
	case WK_BEGIN:
		if (q->wtx)
			return udr__error_set(UDR_EINVAL, "a transaction is already open (COMMIT or ROLLBACK ends it)");
		if ((rc = wtx_begin(q, true, q->branch)) < 0)
			return rc;
		return empty_result(out, q);
	case WK_COMMIT:
		if (!q->wtx)
			return udr__error_set(UDR_EINVAL, "no transaction is open (BEGIN starts one)");
		if (q->wtx->failed)
			return end_keep_error(q, refuse_failed());
		if ((rc = wtx_commit(q)) < 0)
			return rc;
		return empty_result(out, q);
	case WK_ROLLBACK:
		if (!q->wtx)
			return udr__error_set(UDR_EINVAL, "no transaction is open (BEGIN starts one)");
		wtx_end(q);
		return empty_result(out, q);
	default:
		break;
	}
	if (q->wtx && q->wtx->failed)
		return refuse_failed();
	if ((rc = refuse_case_clash(q, &st, sql)) < 0)
		return rc;
	/* the session's own tables (make_shadow): rows and positions that COMMIT
	 * turns into the version; a write there would lose or double rows */
	if (st.has_target && strncasecmp(st.target, "__udr ", 6) == 0) {
		udr__quote(qt, sizeof(qt), st.target);
		if (q->wtx)
			q->wtx->failed = true;
		return udr__error_set(UDR_EINVAL, "'%s' is one of udr's internal tables of this session: SQL does not "
		                                  "write it",
		                      qt);
	}
	/* the shadow of a table being written is a temporary table of its name:
	 * a session statement on that name would change what is committed */
	for (size_t i = 0; q->wtx && st.has_target && (st.qualified || (st.kind == WK_CREATE && st.temp)) &&
	                   i < q->wtx->n; i++) {
		if (q->wtx->t[i].shadow && strcasecmp(q->wtx->t[i].name, st.target) == 0) {
			q->wtx->failed = true;
			udr__quote(qt, sizeof(qt), q->wtx->t[i].name);
			return udr__error_set(UDR_EINVAL,
			                      "table '%s' is written by this transaction: a temporary or "
			                      "schema-qualified table of its name cannot be made or changed until it ends",
			                      qt);
		}
	}
	if (!st.has_target || st.qualified || (st.kind == WK_CREATE && st.temp))
		return 1; /* the session's own objects: DuckDB's business */
	udr__quote(qt, sizeof(qt), st.target);
	if (q->read_only && strchr(st.target, '@'))
		return refuse_read_only(qt);
	if (strchr(st.target, '@'))
		return write_at(out, q, &st, sql, params, nparams);
	if (udr_table_name_check(st.target) < 0) {
		if (st.kind == WK_CREATE) /* as DuckDB's, it would vanish with the session */
			return udr_error_last()->code;
		udr_error_clear();
		return 1;
	}
	if (strcasecmp(st.target, "udr_log") == 0 || strcasecmp(st.target, "udr_tables") == 0 ||
	    strcasecmp(st.target, "udr_conflicts") == 0)
		/* DuckDB wrote the session's view or table of that name: a
		 * count, exit 0, nothing committed */
		return udr__error_set(UDR_EINVAL, "%s is one of UDR's read-only views (udr_log, udr_tables, "
		                                  "udr_conflicts): SQL cannot write a table of that name", qt);
	if ((rc = session_object(&sess, q, st.target)) < 0)
		return rc;
	if (sess)
		return 1;
	if (q->read_only)
		return refuse_read_only(qt);
	autoc = !q->wtx;
	if (autoc && (rc = wtx_begin(q, false, q->branch)) < 0)
		return rc;
	/* the statement reads at the transaction's snapshot */
	q->snap_head = udr__w_snapshot(q);
	if ((rc = wt_get(&t, q, st.target)) < 0)
		goto fail;
	switch (st.kind) {
	case WK_INSERT:
	case WK_UPDATE:
	case WK_DELETE:
	case WK_MERGE:
		if (!wt_exists(t)) {
			if (autoc)
				wtx_end(q);
			return 1; /* DuckDB: the table does not exist */
		}
		rc = run_write(out, q, t, &st, sql, params, nparams, autoc);
		break;
	case WK_INDEX:
		if (!wt_exists(t)) {
			if (autoc)
				wtx_end(q);
			return 1; /* DuckDB's: a session table, or no such table */
		}
		rc = udr__error_set(UDR_EINVAL,
		                    "CREATE INDEX is not supported on udr tables (table '%s'): a version keeps rows "
		                    "and their types, no index or uniqueness",
		                    qt);
		break;
	case WK_ALTER:
		if (!wt_exists(t)) {
			if (autoc)
				wtx_end(q);
			return 1;
		}
		rc = udr__error_set(UDR_EINVAL,
		                    "ALTER TABLE is not supported on udr tables (table '%s'); make a new version "
		                    "with CREATE OR REPLACE TABLE %s AS SELECT ...",
		                    qt, qt);
		break;
	case WK_CREATE:
		if (wt_exists(t) && !st.or_replace) {
			if (st.if_not_exists) {
				rc = empty_result(out, q);
				break;
			}
			rc = udr__error_set(UDR_EINVAL,
			                    "table '%s' already exists (CREATE OR REPLACE TABLE makes a new version of "
			                    "it, DROP TABLE drops it)",
			                    qt);
			break;
		}
		/* the rows go into a temporary table of that name, stored at commit */
		rc = udr__buf_put(&b, sql, st.splice);
		if (rc == 0)
			rc = udr__buf_puts(&b, "TEMP ");
		if (rc == 0)
			rc = udr__buf_puts(&b, sql + st.splice);
		if (rc == 0)
			rc = udr__q_run(out, q, b.ptr, params, nparams, UDR__RUN_USER);
		udr__buf_free(&b);
		if (rc == 0 && *skip_ws(st.after) == '(' && (rc = declared_check(q, t->name, qt)) < 0) {
			/* the session's table goes; the table it replaced stays */
			char *msg = strdup(udr_error_last()->message);
			(void)drop_temp(q, t->name, 0, true);
			rc = msg ? udr__error_set(rc, "%s", msg) : udr__error_oom();
			free(msg);
		}
		if (rc == 0) {
			t->shadow = true;
			t->full = true;
			t->dropped = false;
		}
		break;
	case WK_DROP:
		if (st.more_targets) {
			rc = udr__error_set(UDR_EINVAL, "DROP TABLE names one udr table at a time");
			break;
		}
		if (!wt_exists(t)) {
			if (st.if_exists)
				rc = empty_result(out, q);
			else
				rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found", qt);
			break;
		}
		if (t->shadow) {
			if ((rc = drop_temp(q, t->name, 0, false)) < 0)
				break;
			t->shadow = false;
		}
		t->dropped = true;
		t->full = false;
		rc = empty_result(out, q);
		break;
	default:
		rc = 1;
		break;
	}
	if (rc < 0)
		goto fail;
	if (autoc) {
		if ((rc = wtx_commit(q)) < 0 && out) {
			udr_result_free(*out);
			*out = NULL;
		}
	}
	return rc;
fail:
	if (out && *out) {
		udr_result_free(*out);
		*out = NULL;
	}
	if (autoc)
		return end_keep_error(q, rc);
	q->wtx->failed = true;
	return rc;
}

/* ---- scripts: BEGIN; ...; COMMIT in one call ------------------------------------------------------------ */

/* Split sql at top-level semicolons (outside literals, identifiers, comments). */
static int split_script(char ***out, size_t *count, const char *sql)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	const char *s = sql, *start = sql;
	for (;;) {
		bool end = !*s;
		if (end || *s == ';') {
			const char *a = skip_ws(start);
			if (a < s || (end && *a)) {
				if (n == cap) {
					size_t c2 = cap ? cap * 2 : 8;
					char **p = realloc(v, c2 * sizeof(*p));
					if (!p)
						goto oom;
					v = p;
					cap = c2;
				}
				if (!(v[n] = strndup(start, (size_t)(s - start))))
					goto oom;
				n++;
			}
			if (end)
				break;
			start = ++s;
			continue;
		}
		if (s[0] == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			s = skip_ws(s);
		} else if (*s == '\'' || *s == '"' || *s == '$') {
			s = is_estring(sql, s) ? skip_estring(s) : skip_token(s);
		} else {
			s++;
		}
	}
	/* statements that are only blanks or comments are not statements */
	{
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (*skip_ws(v[i]))
				v[k++] = v[i];
			else
				free(v[i]);
		}
		n = k;
	}
	*out = v;
	*count = n;
	return 0;
oom:
	udr_strarray_free(v, n);
	return udr__error_oom();
}

int udr__w_script(udr_result **out, udr_query *q, const char *sql, const udr_value *params, size_t nparams)
{
	char **stmts = NULL;
	size_t n = 0;
	wstmt first;
	int rc = 0;
	classify(&first, sql);
	if (first.kind != WK_BEGIN)
		return 1;
	if ((rc = split_script(&stmts, &n, sql)) < 0)
		return rc;
	if (n < 2) {
		udr_strarray_free(stmts, n);
		return 1;
	}
	if (nparams) {
		udr_strarray_free(stmts, n);
		return udr__error_set(UDR_EINVAL, "parameters are not supported in a BEGIN ... COMMIT script");
	}
	/* one transaction, ended by the last statement: a statement after its
	 * COMMIT would run (and could fail) after the commit */
	for (size_t i = 1; i + 1 < n; i++) {
		wstmt st;
		classify(&st, stmts[i]);
		if (st.kind == WK_BEGIN || st.kind == WK_COMMIT || st.kind == WK_ROLLBACK) {
			udr_strarray_free(stmts, n);
			return udr__error_set(UDR_EINVAL, "a script is one transaction: BEGIN, its statements, then COMMIT "
			                                  "(or ROLLBACK) as its last statement; nothing was run");
		}
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool last = i + 1 == n;
		if (out && *out) {
			udr_result_free(*out);
			*out = NULL;
		}
		rc = udr_query_sql(last ? out : NULL, q, stmts[i], NULL, 0);
	}
	udr_strarray_free(stmts, n);
	if (rc < 0 && q->wtx) /* a failed script commits nothing */
		rc = end_keep_error(q, rc);
	else if (rc == 0 && q->wtx)
		rc = end_keep_error(q, udr__error_set(UDR_EINVAL, "the script's transaction is not ended: finish it "
		                                                  "with COMMIT (or ROLLBACK); nothing was committed"));
	if (rc < 0 && out && *out) { /* no result with an error */
		udr_result_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- compaction ------------------------------------------------------------------------------------------- */

#define SMALL_PART_ROWS 122880 /* one row group (import.c's geometry) */

static const udr_optimize_options g_compact_default = UDR_OPTIMIZE_OPTIONS_INIT;

static int check_optimize_options(const udr_optimize_options *o)
{
	if (o->version != UDR_OPTIMIZE_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown udr_optimize_options version %u", o->version);
	if (o->deleted_pct > 100)
		return udr__error_set(UDR_EINVAL, "deleted_pct must be 0 to 100 (%u given)", o->deleted_pct);
	return 0;
}

int udr_query_set_compaction(udr_query *q, const udr_optimize_options *opts)
{
	int rc;
	if (!q)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_set_compaction");
	if (!opts) {
		q->compact_off = true;
		return 0;
	}
	if ((rc = check_optimize_options(opts)) < 0)
		return rc;
	q->compact = *opts;
	q->compact.message = NULL;
	q->compact_custom = true;
	q->compact_off = false;
	return 0;
}

static uint64_t live_rows(const udr__part *p)
{
	return p->rows - p->deleted;
}

typedef struct geo_part {
	uint64_t live;
	size_t i;
} geo_part;

static int cmp_geo(const void *a, const void *b)
{
	const geo_part *x = a, *y = b;
	return x->live != y->live ? (x->live < y->live ? -1 : 1) : (x->i > y->i) - (x->i < y->i);
}

/*
 * The small parts the compaction after a write merges (it runs when there
 * are at least small_parts of them), chosen as git's geometric repack
 * chooses packs, with factor 4: sorted by live rows, the largest parts that
 * each hold at least 4 times the rows of the next smaller one stay; the
 * parts below the first that does not are merged, and so is each larger one
 * that the merged part would not be a quarter of, and then the smallest
 * ones left until at most small_parts / 2 small parts remain.  Each row is
 * rewritten a few times over a table's life (a logarithm of the rows
 * written), and a large small part (the last part of an import, up to
 * 122,879 rows) is not rewritten for a few new rows, as merging every small
 * part did: simulated over 20,000 one-row writes, 27-36 rows rewritten a
 * write instead of 6,300-15,700, one compaction every 4 writes instead of
 * 7, at most 7 small parts either way.
 */
static int select_geometric(bool *sel, const udr__parts *ps, size_t keep)
{
	geo_part *g;
	size_t k = 0, split;
	uint64_t total = 0;
	if (!(g = malloc((ps->n ? ps->n : 1) * sizeof(*g))))
		return udr__error_oom();
	for (size_t i = 0; i < ps->n; i++)
		if (!sel[i] && ps->p[i].rows < SMALL_PART_ROWS)
			g[k++] = (geo_part){live_rows(&ps->p[i]), i};
	qsort(g, k, sizeof(*g), cmp_geo);
	for (split = k ? k - 1 : 0; split > 0; split--)
		if (g[split].live < 4 * g[split - 1].live)
			break;
	if (split)
		split++; /* the larger of the pair that broke the sequence is merged too */
	for (size_t i = 0; i < split; i++)
		total += g[i].live;
	for (; split < k && (4 * total > g[split].live || k - split + 1 > keep); split++)
		total += g[split].live;
	for (size_t i = 0; split >= 2 && i < split; i++)
		sel[g[i].i] = true;
	free(g);
	return 0;
}

/*
 * Rewrite the parts of table's latest version that o selects (see
 * udr_optimize_options): their rows that are not deleted become new parts
 * after the parts kept.  *version 0 when nothing was selected.
 */
static int optimize_table(uint64_t *version, udr_query *q, const char *table, const udr_optimize_options *o,
                          bool after_write, const char *branch)
{
	udr_txn_options to = UDR_TXN_OPTIONS_INIT;
	udr_txn *txn = NULL;
	udr_version *base = NULL, *v = NULL;
	udr__parts ps = {0}, np = {0};
	udr__buf b = {0};
	colset cols = {0};
	bool *sel = NULL;
	udr_hash *h = NULL;
	uint64_t *rows = NULL, total = 0;
	size_t n = 0, nsel = 0, nsmall = 0;
	char ref[UDR_TABLE_NAME_MAX + 32], qt[UDR_TABLE_NAME_MAX * 4 + 8];
	uint64_t snap_head = q->snap_head;
	int rc;
	*version = 0;
	udr__quote(qt, sizeof(qt), table);
	to.message = o->message;
	to.branch = branch;
	if ((rc = udr_txn_begin(&txn, q->cat, &to)) < 0)
		return rc;
	/* its statements read at its own snapshot: after a write, the
	 * statement's was taken before the write's commit */
	q->snap_head = udr_txn_snapshot(txn);
	rc = udr_txn_get_version(&base, txn, table, 0);
	if (rc == 0 && udr__version_dropped(base)) {
		udr_version_free(base);
		base = NULL;
		rc = UDR_ENOTFOUND;
	}
	if (rc == UDR_ENOTFOUND) {
		rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found", qt);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (!delta_capable(base)) {
		if (!o->full) /* nothing to compact: not Parquet parts with deletion vectors */
			goto out;
	} else if ((rc = base_parts(&ps, q, base)) < 0) {
		goto out;
	}
	if (!(sel = calloc(ps.n ? ps.n : 1, sizeof(*sel)))) {
		rc = udr__error_oom();
		goto out;
	}
	for (size_t i = 0; i < ps.n; i++) {
		const udr__part *p = &ps.p[i];
		/* after a write, only full-size parts are rewritten for their deleted
		 * rows (small ones are merged by count): small tables do not get a
		 * second commit for every write */
		sel[i] = o->full || (o->deleted_pct && p->has_dv && p->deleted * 100 >= (uint64_t)o->deleted_pct * p->rows &&
		                     (!after_write || p->rows >= SMALL_PART_ROWS));
		nsmall += !sel[i] && p->rows < SMALL_PART_ROWS;
	}
	if (o->small_parts && nsmall >= o->small_parts) {
		if (after_write) {
			if ((rc = select_geometric(sel, &ps, o->small_parts / 2)) < 0)
				goto out;
		} else {
			for (size_t i = 0; i < ps.n; i++)
				sel[i] |= ps.p[i].rows < SMALL_PART_ROWS;
		}
	}
	for (size_t i = 0; i < ps.n; i++)
		nsel += sel[i];
	if (delta_capable(base) && (nsel == 0 || (nsel == 1 && ps.n == 1 && !ps.p[0].has_dv)))
		goto out; /* nothing to rewrite */
	/* the rows of the selected parts that are not deleted, in order */
	snprintf(ref, sizeof(ref), "%s@%" PRIu64, table, base->version);
	rc = udr__buf_puts(&b, "SELECT * FROM ");
	if (rc == 0)
		rc = udr__sql_ident(&b, ref);
	if (rc == 0)
		rc = udr__q_describe(&cols.names, &cols.types, &cols.n, q, b.ptr);
	if (rc < 0)
		goto out;
	if (delta_capable(base) && nsel < ps.n) {
		/* the selected parts only, in order: DuckDB does not keep the
		 * files' order through a filter that skips whole files (a
		 * "WHERE __udr_part IN (...)" gave the rows of the parts kept by
		 * the geometric choice in a different order from run to run) */
		udr__view *vw;
		size_t *idx = malloc(nsel * sizeof(*idx)), k = 0;
		udr__buf_free(&b);
		if (!idx) {
			rc = udr__error_oom();
			goto out;
		}
		for (size_t i = 0; i < ps.n; i++)
			if (sel[i])
				idx[k++] = i;
		rc = udr__q_view_get(&vw, q, base);
		if (rc == 0)
			rc = udr__buf_puts(&b, "SELECT * EXCLUDE (__udr_part, __udr_row) FROM (");
		if (rc == 0)
			rc = udr__dv_scan_sql_parts(&b, q, vw, true, idx, nsel);
		if (rc == 0)
			rc = udr__buf_puts(&b, ") ORDER BY __udr_part, __udr_row");
		free(idx);
		if (rc < 0)
			goto out;
	}
	if (rc == 0)
		rc = udr__q_write_parts(&h, &rows, &n, q, b.ptr, cols.names, cols.types, cols.n);
	if (rc < 0)
		goto out;
	/* the parts kept, then the new ones */
	if (!(np.p = calloc(ps.n + n + 1, sizeof(*np.p)))) {
		rc = udr__error_oom();
		goto out;
	}
	np.typed = true;
	for (size_t i = 0; i < ps.n; i++)
		if (!sel[i])
			np.p[np.n++] = ps.p[i];
	for (size_t i = 0; i < n; i++) {
		np.p[np.n].hash = h[i];
		np.p[np.n++].rows = rows[i];
	}
	for (size_t i = 0; i < np.n; i++)
		total += np.p[i].rows - np.p[i].deleted;
	if ((rc = new_version(&v, table, &np, &cols, total)) < 0)
		goto out;
	if (same_as_base(v, base))
		goto out;
	/* the same rows, stored anew */
	if ((rc = udr__version_set_changes(v, 0, 0, 0)) < 0)
		goto out;
	if (o->message && (rc = udr_version_set_message(v, o->message)) < 0)
		goto out;
	if ((rc = udr_txn_write(txn, v)) < 0 || (rc = udr_txn_commit(txn, NULL)) < 0)
		goto out;
	*version = base->version + 1;
out:
	udr__q_cache_release(q);
	udr__buf_free(&b);
	colset_free(&cols);
	udr__parts_free(&ps);
	free(np.p);
	free(sel);
	free(h);
	free(rows);
	udr_version_free(v);
	udr_version_free(base);
	udr_txn_free(txn);
	q->snap_head = snap_head;
	return rc;
}

static int optimize_unheld(uint64_t *version, udr_query *q, const char *table, const udr_optimize_options *opts)
{
	udr_optimize_options def = UDR_OPTIMIZE_OPTIONS_INIT;
	uint64_t v = 0;
	int rc;
	if (version)
		*version = 0;
	if (!q || !table)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_query_optimize");
	if (!opts)
		opts = &def;
	if ((rc = check_optimize_options(opts)) < 0 || (rc = udr_table_name_check(table)) < 0)
		return rc;
	if (q->wtx)
		return udr__error_set(UDR_EINVAL, "a SQL transaction is open in this session (COMMIT or ROLLBACK it first)");
	if ((rc = optimize_table(&v, q, table, opts, false, q->branch)) < 0)
		return rc;
	if (version)
		*version = v;
	return 0;
}

/* the puts and the commit naming them, with no gc in between (udr/gc.h) */
int udr_query_optimize(uint64_t *version, udr_query *q, const char *table, const udr_optimize_options *opts)
{
	udr_gc_hold *hold = NULL;
	int rc;
	if (udr__q_refuse_read_only(q, "udr_query_optimize") < 0)
		return UDR_EINVAL;
	if (opts && (rc = udr__message_check(opts->message)) < 0)
		return rc;
	if ((rc = udr_gc_hold_begin(&hold, q ? q->store : NULL)) < 0)
		return rc;
	rc = optimize_unheld(version, q, table, opts);
	udr_gc_hold_end(hold);
	return rc;
}

/*
 * After a SQL write committed: compact the tables it changed when a
 * threshold is passed (a commit of its own).  The write stands whatever
 * happens here; a failure (another writer got in first, ...) only leaves
 * the compaction to the next write.
 */
static void compact_after(udr_query *q, const char *branch, char **tables, size_t n)
{
	const udr_optimize_options *o = q->compact_custom ? &q->compact : &g_compact_default;
	udr_optimize_options oo;
	if (q->compact_off || !tables)
		return;
	oo = *o;
	oo.full = 0;
	oo.message = "compaction after a SQL write";
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		udr_gc_hold *hold = NULL; /* its parts put, then committed */
		if (udr_gc_hold_begin(&hold, q->store) < 0 || optimize_table(&v, q, tables[i], &oo, true, branch) < 0)
			udr_error_clear();
		udr_gc_hold_end(hold);
	}
}

/* ---- import of a full copy matched on keys ------------------------------------------------------------ */

/* One BIGINT of a query's first row. */
static int query_count(uint64_t *out, udr_query *q, const char *sql)
{
	udr_result *r = NULL;
	udr_value x;
	int rc = udr__q_run(&r, q, sql, NULL, 0, UDR__RUN_ANY);
	if (rc == 0 && (udr_result_get(&x, r, 0, 0) < 0 || x.type != UDR_TYPE_INT64 || x.i64 < 0))
		rc = udr__error_set(UDR_ERROR, "cannot count the rows of: %.200s", sql);
	if (rc == 0)
		*out = (uint64_t)x.i64;
	udr_result_free(r);
	return rc;
}

/*
 * 1 when relation's keys are proven unique by one ordered pass: in the
 * order a window sees the rows, each key is greater than the one before it,
 * all but the first (which has none before it).  A strictly increasing
 * sequence repeats no value, whatever order it was in: DuckDB's ">" is a
 * strict order under which no value is greater than an equal one (for
 * every type: 0.0 = -0.0, NaN = NaN, INTERVAL '1 month' = '30 days', the
 * same for rows of several keys), and a NULL key is greater than nothing,
 * nor anything than it.  A copy sorted on its key (a dump, usually) costs
 * a scan instead of a hash of every key.  0 when that does not hold: the
 * caller hashes.
 */
static int keys_increase(int *out, udr_query *q, const char *relation, const char *const *keys, size_t nkeys)
{
	udr__buf b = {0}, k = {0};
	const char *open = nkeys > 1 ? "row(" : "", *close = nkeys > 1 ? ")" : "";
	uint64_t n = 0;
	int rc;
	*out = 0;
	rc = udr__sql_idents(&k, NULL, keys, nkeys);
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "SELECT count(*) FILTER (WHERE (\"__udr k\" > \"__udr p\") IS NOT TRUE)::BIGINT "
		                     "FROM (SELECT %s%s%s, lag(%s%s%s) OVER () FROM %s) AS \"__udr s\"(\"__udr k\", \"__udr p\")",
		                     open, k.ptr, close, open, k.ptr, close, relation);
	if (rc == 0)
		rc = query_count(&n, q, b.ptr);
	if (rc == 0)
		*out = n <= 1;
	udr__buf_free(&b);
	udr__buf_free(&k);
	return rc;
}

/* 1 when the columns of relation (SQL) repeat a key value. */
static int keys_repeat(bool *out, udr_query *q, const char *relation, const char *const *keys, size_t nkeys)
{
	udr__buf b = {0}, k = {0};
	uint64_t n = 0;
	int inc, rc = keys_increase(&inc, q, relation, keys, nkeys);
	*out = false;
	if (rc < 0 || inc)
		return rc;
	rc = udr__sql_idents(&k, NULL, keys, nkeys);
	if (rc == 0)
		rc = udr__buf_printf(&b, "SELECT count(*)::BIGINT FROM (SELECT 1 FROM %s GROUP BY %s HAVING count(*) > 1)",
		                     relation, k.ptr);
	if (rc == 0)
		rc = query_count(&n, q, b.ptr);
	*out = rc == 0 && n > 0;
	udr__buf_free(&b);
	udr__buf_free(&k);
	return rc;
}

/* "NOT EXISTS (SELECT 1 FROM other y WHERE y.c IS NOT DISTINCT FROM x.c AND ...)" */
static int no_equal_row(udr__buf *b, const char *other, const char *x, const colset *cols)
{
	int rc = udr__buf_printf(b, "NOT EXISTS (SELECT 1 FROM %s y WHERE ", other);
	for (size_t i = 0; rc == 0 && i < cols->n; i++) {
		if (i)
			rc = udr__buf_puts(b, " AND ");
		if (rc == 0)
			rc = same_col(b, "y", x, cols->names[i], cols->types[i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(b, ")");
	return rc;
}

/* The rows of the table (shadow, quoted name nm) without an equal row in
 * the new copy but with a row of their key there: each is one update. */
static int key_updates(uint64_t *out, udr_query *q, const char *nm, const char *const *keys, size_t nkeys,
                       const colset *cols)
{
	udr__buf b = {0};
	int rc = udr__buf_printf(&b, "SELECT count(*)::BIGINT FROM temp.main.%s x WHERE ", nm);
	if (rc == 0)
		rc = no_equal_row(&b, "temp.main.\"__udr new\"", "x", cols);
	if (rc == 0)
		rc = udr__buf_puts(&b, " AND EXISTS (SELECT 1 FROM temp.main.\"__udr new\" y WHERE ");
	for (size_t k = 0; rc == 0 && k < nkeys; k++) {
		if (k)
			rc = udr__buf_puts(&b, " AND ");
		if (rc == 0)
			rc = udr__buf_puts(&b, "y.");
		if (rc == 0)
			rc = udr__sql_ident(&b, keys[k]);
		if (rc == 0)
			rc = udr__buf_puts(&b, " IS NOT DISTINCT FROM x.");
		if (rc == 0)
			rc = udr__sql_ident(&b, keys[k]);
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, ")");
	if (rc == 0)
		rc = query_count(out, q, b.ptr);
	udr__buf_free(&b);
	return rc;
}

static int shadow_from_rows(udr_query *q, wtab *t, const char *rows_sql);

/* "y.k IS NOT DISTINCT FROM o.k AND ..." */
static int keys_match(udr__buf *b, const char *const *keys, size_t nkeys)
{
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < nkeys; k++) {
		rc = udr__buf_puts(b, k ? " AND y." : "y.");
		if (rc == 0)
			rc = udr__sql_ident(b, keys[k]);
		if (rc == 0)
			rc = udr__buf_puts(b, " IS NOT DISTINCT FROM o.");
		if (rc == 0)
			rc = udr__sql_ident(b, keys[k]);
	}
	return rc;
}

/*
 * import --key of a table of Parquet parts: the rows that differ, found in
 * one pass, and only they copied.  A full outer join of the table's rows
 * (with their positions) and the new copy (temp.main."__udr new", with its row
 * ids) on the key keeps the pairs that are not equal column for column, and
 * the rows of either side without a partner: temp.main."__udr kd" holds
 * (__udr_opart, __udr_orow: the position of a row of the table to delete,
 * NULL for none; __udr_nr: the row id in the copy of a row to insert, NULL
 * for none; the copy's columns).  The shadow then starts from the rows to
 * delete (their positions; their columns are never read), loses them all,
 * and gains the rows to insert in the copy's order, so the commit stores
 * exactly the difference (deletion vectors, new parts).
 *
 * The copy's keys were checked unique, so each row of the table has at
 * most one partner.  The table's are checked here by counting instead of
 * hashing every key: with m(y) the partners of the copy's row y, the rows
 * left (the table's rows, less those to delete, plus those to insert)
 * number the copy's rows plus the sum of m(y) - 1 over the copy's rows
 * with a partner, so they equal the copy's exactly when no row of the copy
 * has two partners.  A key repeated in the table but absent from the copy
 * loses both rows, as the copy asks.
 */
static int keyed_diff(udr_query *q, wtab *t, const char *table, const char *nm, const char *const *keys,
                      size_t nkeys, const colset *cols)
{
	udr__buf b = {0}, rows = {0};
	udr__view *vw;
	uint64_t nold = 0, same = 0;
	int rc = udr__q_view_get(&vw, q, t->base);
	if (rc == 0)
		rc = udr__buf_puts(&b, "CREATE TEMP TABLE \"__udr kd\" AS SELECT o.__udr_part AS __udr_opart, "
		                       "o.__udr_row AS __udr_orow, y.__udr_nr");
	for (size_t i = 0; rc == 0 && i < cols->n; i++) {
		rc = udr__buf_puts(&b, ", y.");
		if (rc == 0)
			rc = udr__sql_ident(&b, cols->names[i]);
	}
	if (rc == 0)
		rc = udr__buf_puts(&b, " FROM (");
	if (rc == 0)
		rc = udr__dv_scan_sql(&b, q, vw, true);
	if (rc == 0)
		rc = udr__buf_puts(&b, ") o FULL OUTER JOIN (SELECT rowid AS __udr_nr, * FROM temp.main.\"__udr new\") y ON ");
	if (rc == 0)
		rc = keys_match(&b, keys, nkeys);
	if (rc == 0)
		rc = udr__buf_puts(&b, " WHERE o.__udr_row IS NULL OR y.__udr_nr IS NULL OR ");
	if (rc == 0)
		rc = changed_expr_as(&b, "o", "y", cols);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	udr__q_cache_release(q);
	/* the table's side: a key repeated there pairs two of its rows with
	 * one of the copy's, which would leave more rows than the copy has
	 * (its parts held again: the release above let them go) */
	if (rc == 0 && (rc = udr__q_view_get(&vw, q, t->base)) == 0 &&
	    (rc = udr__buf_puts(&b, "SELECT count(*)::BIGINT FROM (")) == 0 &&
	    (rc = udr__dv_scan_sql(&b, q, vw, false)) == 0 && (rc = udr__buf_puts(&b, ")")) == 0)
		rc = query_count(&nold, q, b.ptr);
	udr__buf_free(&b);
	udr__q_cache_release(q);
	/* 1 when the rows left (every row of kd deletes or inserts one) are the copy's */
	if (rc == 0)
		rc = udr__buf_printf(&b,
		                     "SELECT (%" PRIu64 " - count(__udr_orow) + count(__udr_nr) = "
		                     "(SELECT count(*) FROM temp.main.\"__udr new\"))::BIGINT FROM temp.main.\"__udr kd\"",
		                     nold);
	if (rc == 0)
		rc = query_count(&same, q, b.ptr);
	udr__buf_free(&b);
	if (rc == 0 && same != 1)
		rc = udr__error_set(UDR_EINVAL, "the key is not unique in table %s", table);
	if (rc < 0) {
		(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr kd\"");
		return rc;
	}
	/* a key in both whose row changed: one update */
	rc = query_count(&t->key_updates, q,
	                 "SELECT count(*)::BIGINT FROM temp.main.\"__udr kd\" WHERE __udr_orow IS NOT NULL AND __udr_nr IS NOT NULL");
	if (rc == 0)
		rc = udr__buf_puts(&rows, "SELECT __udr_opart, __udr_orow");
	for (size_t i = 0; rc == 0 && i < cols->n; i++)
		rc = udr__buf_puts(&rows, ", NULL");
	if (rc == 0)
		rc = udr__buf_puts(&rows, " FROM temp.main.\"__udr kd\" WHERE __udr_orow IS NOT NULL");
	if (rc == 0)
		rc = shadow_from_rows(q, t, rows.ptr);
	if (rc == 0)
		rc = udr__buf_printf(&b, "DELETE FROM temp.main.%s", nm);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	if (rc == 0)
		rc = udr__buf_printf(&b, "INSERT INTO temp.main.%s SELECT * EXCLUDE (__udr_opart, __udr_orow, __udr_nr) "
		                         "FROM temp.main.\"__udr kd\" WHERE __udr_nr IS NOT NULL ORDER BY __udr_nr",
		                     nm);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	udr__buf_free(&rows);
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr kd\"");
	return rc;
}

/* The table's rows as a relation: "(SELECT ... FROM read_parquet(...))"
 * when fast (its parts held until udr__q_cache_release), else the shadow. */
static int table_rows_sql(udr__buf *b, udr_query *q, wtab *t, const char *nm, bool fast)
{
	udr__view *vw;
	int rc;
	if (!fast)
		return udr__buf_printf(b, "temp.main.%s", nm);
	if ((rc = udr__q_view_get(&vw, q, t->base)) < 0)
		return rc;
	rc = udr__buf_puts(b, "(");
	if (rc == 0)
		rc = udr__dv_scan_sql(b, q, vw, false);
	return rc == 0 ? udr__buf_puts(b, ")") : rc;
}

int udr__w_import_keyed(uint64_t *version, udr_query *q, const char *table, const char *select_sql,
                        const char *const *keys, size_t nkeys, const char *message, const char *branch)
{
	udr__buf b = {0}, nm = {0};
	colset have = {0}, got = {0};
	wtab *t = NULL;
	bool rep = false, fast;
	int rc;
	if (q->wtx)
		return udr__error_set(UDR_EINVAL, "a SQL transaction is open in this session (COMMIT or ROLLBACK it first)");
	if ((rc = wtx_begin(q, false, branch)) < 0)
		return rc;
	free(q->wtx->message);
	q->wtx->message = NULL;
	if (message && !(q->wtx->message = strdup(message))) {
		rc = udr__error_oom();
		goto fail;
	}
	q->snap_head = udr__w_snapshot(q);
	if ((rc = wt_get(&t, q, table)) < 0)
		goto fail;
	if (!wt_exists(t)) {
		wtx_end(q);
		return 1;
	}
	/* Parquet parts: only the rows that differ are copied (keyed_diff);
	 * else the shadow holds every row, compared below */
	fast = delta_capable(t->base);
	if ((!fast && (rc = make_shadow(q, t, NULL, NULL, NULL, 0)) < 0) || (rc = udr__sql_ident(&nm, table)) < 0)
		goto fail;
	/* the new copy, and both sides' columns: the same names, types, order */
	rc = udr__buf_printf(&b, "CREATE TEMP TABLE \"__udr new\" AS %s", select_sql);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	if (rc < 0)
		goto fail;
	if ((rc = table_rows_sql(&b, q, t, nm.ptr, fast)) == 0) {
		udr__buf sel = {0};
		rc = udr__buf_printf(&sel, "SELECT * FROM %s", b.ptr);
		if (rc == 0)
			rc = udr__q_describe(&have.names, &have.types, &have.n, q, sel.ptr);
		udr__buf_free(&sel);
	}
	if (rc == 0)
		rc = udr__q_describe(&got.names, &got.types, &got.n, q, "SELECT * FROM temp.main.\"__udr new\"");
	udr__buf_free(&b);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; rc == 0 && i < (have.n > got.n ? have.n : got.n); i++) {
		if (i >= have.n || i >= got.n || strcmp(have.names[i], got.names[i]) != 0 ||
		    strcmp(have.types[i], got.types[i]) != 0)
			rc = udr__error_set(UDR_EINVAL,
			                    "the new copy of table %s must have its columns (names, types, order): "
			                    "column %zu is %s %s, the table's is %s %s",
			                    table, i + 1, i < got.n ? got.names[i] : "(none)", i < got.n ? got.types[i] : "",
			                    i < have.n ? have.names[i] : "(none)", i < have.n ? have.types[i] : "");
	}
	for (size_t k = 0; rc == 0 && k < nkeys; k++) {
		bool found = false;
		for (size_t i = 0; i < have.n && !found; i++)
			found = keys[k] && strcmp(keys[k], have.names[i]) == 0;
		if (!found)
			rc = udr__error_set(UDR_EINVAL, "key column '%s' is not a column of table %s", keys[k] ? keys[k] : "",
			                    table);
	}
	if (rc < 0)
		goto fail;
	/* matched on keys: unique on both sides, or rows would be lost or
	 * doubled (the table's side: checked by keyed_diff's count when fast) */
	if ((rc = keys_repeat(&rep, q, "temp.main.\"__udr new\"", keys, nkeys)) < 0)
		goto fail;
	if (rep) {
		rc = udr__error_set(UDR_EINVAL, "the key is not unique in the new copy of table %s", table);
		goto fail;
	}
	if (fast) {
		if ((rc = keyed_diff(q, t, table, nm.ptr, keys, nkeys, &have)) < 0)
			goto fail;
		goto commit;
	}
	if ((rc = table_rows_sql(&b, q, t, nm.ptr, false)) == 0)
		rc = keys_repeat(&rep, q, b.ptr, keys, nkeys);
	udr__buf_free(&b);
	if (rc < 0)
		goto fail;
	if (rep) {
		rc = udr__error_set(UDR_EINVAL, "the key is not unique in table %s", table);
		goto fail;
	}
	/* rows that go and come back with their key are updates (udr.changes) */
	if ((rc = key_updates(&t->key_updates, q, nm.ptr, keys, nkeys, &have)) < 0)
		goto fail;
	/* rows without an equal row in the new copy go; then the new copy's
	 * rows without an equal row left come: only they are stored */
	rc = udr__buf_printf(&b, "DELETE FROM temp.main.%s x WHERE ", nm.ptr);
	if (rc == 0)
		rc = no_equal_row(&b, "temp.main.\"__udr new\"", "x", &have);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	if (rc < 0)
		goto fail;
	rc = udr__buf_printf(&b, "INSERT INTO temp.main.%s SELECT * FROM temp.main.\"__udr new\" x WHERE ", nm.ptr);
	if (rc == 0) {
		udr__buf other = {0};
		rc = udr__buf_printf(&other, "temp.main.%s", nm.ptr);
		if (rc == 0)
			rc = no_equal_row(&b, other.ptr, "x", &have);
		udr__buf_free(&other);
	}
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	if (rc < 0)
		goto fail;
commit:
	(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr new\"");
	colset_free(&have);
	colset_free(&got);
	udr__buf_free(&nm);
	if ((rc = wtx_commit(q)) < 0)
		return rc;
	if (version) {
		/* the branch's latest (the unchanged version when nothing differed) */
		char ref[UDR_REF_NAME_MAX + 8];
		udr_version *v = NULL;
		snprintf(ref, sizeof(ref), "branch:%s", branch ? branch : "main");
		if ((rc = udr_catalog_get_version_on(&v, q->cat, table, 0, ref)) < 0)
			return rc;
		*version = v->version;
		udr_version_free(v);
	}
	return 0;
fail:
	{
		char msg[2048];
		snprintf(msg, sizeof(msg), "%s", udr_error_last()->message);
		(void)udr__q_exec(q, "DROP TABLE IF EXISTS temp.main.\"__udr new\"");
		udr__error_set(rc, "%s", msg);
	}
	colset_free(&have);
	colset_free(&got);
	udr__buf_free(&b);
	udr__buf_free(&nm);
	return end_keep_error(q, rc);
}

/* ---- a new version made by statements on a base's shadow (row merges) ------------------------------------ */

/* The shadow of t from rows_sql: (__udr_part, __udr_row, the columns) of
 * base's rows it starts from, positions given, no scan of base. */
static int shadow_from_rows(udr_query *q, wtab *t, const char *rows_sql)
{
	udr__buf b = {0}, nm = {0};
	udr__view *vw;
	int rc = udr__q_view_get(&vw, q, t->base);
	t->id = ++q->wtx->ids;
	if (rc == 0)
		rc = udr__buf_printf(&b, "CREATE TEMP TABLE \"__udr o %lu\" AS ", t->id);
	if (rc == 0)
		rc = udr__dv_scan_sql(&b, q, vw, true);
	if (rc == 0)
		rc = udr__buf_puts(&b, " LIMIT 0");
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	t->orig = rc == 0;
	t->partial = true;
	if (rc == 0)
		rc = udr__buf_printf(&b, "INSERT INTO \"__udr o %lu\" %s", t->id, rows_sql);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	udr__buf_free(&b);
	if (rc == 0)
		rc = udr__sql_ident(&nm, t->name);
	if (rc == 0)
		rc = udr__buf_printf(&b, "CREATE TEMP TABLE %s AS SELECT * EXCLUDE (__udr_part, __udr_row) FROM \"__udr o %lu\"",
		                     nm.ptr, t->id);
	if (rc == 0)
		rc = udr__q_exec(q, b.ptr);
	t->shadow = rc == 0;
	udr__buf_free(&b);
	udr__buf_free(&nm);
	udr__q_cache_release(q);
	return rc;
}

int udr__w_stage_edit(udr_version **out, udr_query *q, const udr_version *base, const char *cond,
                      const char *rows_sql, const char *const *stmts, size_t nstmts)
{
	udr__wtx w;
	wtab t;
	int rc;
	*out = NULL;
	if (q->wtx)
		return udr__error_set(UDR_EINVAL, "a SQL transaction is open in this session (COMMIT or ROLLBACK it first)");
	memset(&w, 0, sizeof(w));
	memset(&t, 0, sizeof(t));
	if (!(t.name = strdup(base->table)))
		return udr__error_oom();
	t.base = (udr_version *)base; /* borrowed: never freed here */
	q->wtx = &w;                  /* make_shadow numbers its tables from it */
	if (rows_sql && delta_capable(base))
		rc = shadow_from_rows(q, &t, rows_sql);
	else
		rc = make_shadow(q, &t, cond, "x", NULL, 0);
	for (size_t i = 0; rc == 0 && i < nstmts; i++)
		rc = udr__q_exec(q, stmts[i]);
	if (rc == 0)
		rc = stage_table(out, q, &t);
	if (t.shadow)
		(void)drop_temp(q, t.name, 0, true);
	if (t.orig)
		(void)drop_temp(q, NULL, t.id, true);
	q->wtx = NULL;
	free(t.name);
	return rc;
}

int udr__w_same_col(udr__buf *b, const char *a, const char *bb, const char *name, const char *type)
{
	return same_col(b, a, bb, name, type);
}
