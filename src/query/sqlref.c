/*
 * sqlref.c - finds UDR table references in SQL text without parsing SQL: a
 * small lexer that knows DuckDB's string literals, quoted identifiers,
 * comments and parameters, so that nothing inside a literal or comment is
 * ever taken for a reference.  No DuckDB dependency (unit-testable alone).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <udr/refs.h>

#include "query/query_internal.h"

static bool ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static bool digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool prefix_ci(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);
	return n >= pl && strncasecmp(s, p, pl) == 0;
}

/* Branch and tag names (udr_ref_name_check). */
static bool refname_ok(const char *s, size_t n)
{
	char tmp[UDR_REF_NAME_MAX + 1];
	if (n == 0 || n > UDR_REF_NAME_MAX || memchr(s, '\0', n))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (udr_ref_name_check(tmp) < 0) { /* the catalog's rules (refs.c) */
		udr_error_clear();
		return false;
	}
	return true;
}

static int ref_error(const char *text, size_t len)
{
	char q[160], tmp[UDR__REF_TEXT_MAX + 2];
	size_t n = len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1;
	memcpy(tmp, text, n);
	tmp[n] = '\0';
	udr__quote(q, sizeof(q), tmp);
	return udr__error_set(UDR_EINVAL,
	                      "malformed version reference '%s' (expected a version number, latest, a "
	                      "time such as 2026-11-01T12:00:00Z or 2026-11-01T13:00:00+01:00, a date "
	                      "such as 2026-11-01, commit:N, branch:NAME or tag:NAME)",
	                      q);
}

int udr__ref_parse(udr__ref *out, const char *text, size_t len)
{
	if (!out || !text || len == 0 || len > UDR__REF_TEXT_MAX || memchr(text, '\0', len))
		return ref_error(text ? text : "", text ? len : 0);
	memset(out, 0, sizeof(*out));
	memcpy(out->text, text, len);
	out->text[len] = '\0';
	if (digits(text, len)) {
		if (udr__parse_u64(&out->num, text, len) < 0 || out->num == 0)
			return ref_error(text, len);
		out->kind = UDR__REF_VERSION;
		return 0;
	}
	if (len == 6 && strncasecmp(text, "latest", 6) == 0) {
		out->kind = UDR__REF_LATEST;
		return 0;
	}
	if (prefix_ci(text, len, "commit:")) {
		if (!digits(text + 7, len - 7) || udr__parse_u64(&out->num, text + 7, len - 7) < 0 ||
		    out->num == 0)
			return ref_error(text, len);
		out->kind = UDR__REF_COMMIT;
		return 0;
	}
	if (prefix_ci(text, len, "branch:") || prefix_ci(text, len, "tag:")) {
		size_t skip = (text[0] == 'b' || text[0] == 'B') ? 7 : 4;
		if (!refname_ok(text + skip, len - skip))
			return ref_error(text, len);
		out->kind = skip == 7 ? UDR__REF_BRANCH : UDR__REF_TAG;
		memmove(out->text, text + skip, len - skip);
		out->text[len - skip] = '\0';
		return 0;
	}
	if (isalpha((unsigned char)text[0]) && refname_ok(text, len) && !memchr(text, ':', len)) {
		/* NAME@dev: a branch, else a tag (resolved against the catalog) */
		out->kind = UDR__REF_BRANCH;
		out->bare = true;
		return 0;
	}
	if (len >= 10 && digits(text, 4) && text[4] == '-') {
		if (udr_time_parse(&out->time_ms, out->text) < 0) {
			udr_error_clear();
			return ref_error(text, len);
		}
		out->kind = UDR__REF_TIME;
		return 0;
	}
	return ref_error(text, len);
}

/* Length of the unquoted ref lexeme at s (the text after '@'). */
static size_t ref_lexeme(const char *s)
{
	size_t i = 0;
	if (isdigit((unsigned char)s[0])) {
		/* A date, optionally with a time and a zone: 2026-11-01T12:00:00.5Z */
		if (isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
		    isdigit((unsigned char)s[3]) && s[4] == '-') {
			i = 5;
			while (isdigit((unsigned char)s[i]) || s[i] == '-')
				i++;
			if (s[i] == 'T' || s[i] == 't') {
				i++;
				while (isdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.')
					i++;
			}
			if (s[i] == 'Z' || s[i] == 'z') {
				i++;
			} else if ((s[i] == '+' || (s[i] == '-' && i > 10)) && isdigit((unsigned char)s[i + 1])) {
				i++;
				while (isdigit((unsigned char)s[i]) || s[i] == ':')
					i++;
			}
			return i;
		}
		while (isdigit((unsigned char)s[i]))
			i++;
		return i;
	}
	while (isalpha((unsigned char)s[i]) || s[i] == '_')
		i++;
	if (i > 0 && s[i] != ':') {
		/* a bare branch or tag name: letters, digits, '_' and '/' (names
		 * with '.' or '-' are written branch:NAME or tag:NAME) */
		while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '/')
			i++;
		return i;
	}
	if (s[i] == ':' && s[i + 1] != ':') {
		if (i == 6 && strncasecmp(s, "commit", 6) == 0) {
			i++;
			while (isdigit((unsigned char)s[i]))
				i++;
		} else if ((i == 6 && strncasecmp(s, "branch", 6) == 0) ||
		           (i == 3 && strncasecmp(s, "tag", 3) == 0)) {
			i++;
			while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-' ||
			       s[i] == '/')
				i++;
		} else {
			/* an unknown KIND:...: taken whole, so that it is refused */
			i++;
			while (isalnum((unsigned char)s[i]) || s[i] == '_')
				i++;
		}
	}
	return i;
}

typedef struct scan_state {
	udr__sqlref *refs;
	size_t n, cap;
	udr__table_exists_fn exists;
	void *payload;
} scan_state;

static int push(scan_state *st, size_t start, size_t end, const char *table, size_t tlen,
                bool has_ref, int special, const udr__ref *ref)
{
	udr__sqlref *r;
	if (tlen > UDR_TABLE_NAME_MAX)
		tlen = UDR_TABLE_NAME_MAX;
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 8, bytes;
		udr__sqlref *p;
		if (!udr__mul_ok(cap, sizeof(*p), &bytes) || !(p = realloc(st->refs, bytes)))
			return udr__error_oom();
		st->refs = p;
		st->cap = cap;
	}
	r = &st->refs[st->n++];
	memset(r, 0, sizeof(*r));
	r->start = start;
	r->end = end;
	memcpy(r->table, table, tlen);
	r->table[tlen] = '\0';
	r->has_ref = has_ref;
	r->special = special;
	if (ref)
		r->ref = *ref;
	else
		r->ref.kind = UDR__REF_LATEST;
	return 0;
}

/* 1 when name (tlen bytes) is an existing table, 0 when not, <0 on error. */
static int table_exists(scan_state *st, const char *name, size_t tlen)
{
	char tmp[UDR_TABLE_NAME_MAX + 1];
	int rc;
	if (tlen == 0 || tlen > UDR_TABLE_NAME_MAX || memchr(name, '\0', tlen))
		return 0;
	memcpy(tmp, name, tlen);
	tmp[tlen] = '\0';
	if (udr_table_name_check(tmp) < 0) {
		udr_error_clear();
		return 0;
	}
	rc = st->exists(tmp, st->payload);
	return rc;
}

static int special_of(const char *s, size_t n, bool ci)
{
	int (*cmp)(const char *, const char *, size_t) = ci ? strncasecmp : strncmp;
	if (n == 7 && cmp(s, "udr_log", 7) == 0)
		return UDR__SPECIAL_LOG;
	if (n == 10 && cmp(s, "udr_tables", 10) == 0)
		return UDR__SPECIAL_TABLES;
	if (n == 13 && cmp(s, "udr_conflicts", 13) == 0)
		return UDR__SPECIAL_CONFLICTS;
	return UDR__SPECIAL_NONE;
}

/* A quoted identifier's unescaped text: is it "NAME@REF" or a bare table? */
static int quoted_ident(scan_state *st, size_t start, size_t end, const char *text, size_t len)
{
	const char *at = memchr(text, '@', len);
	int special, rc;
	if (at) {
		size_t tlen = (size_t)(at - text);
		udr__ref ref;
		if ((rc = table_exists(st, text, tlen)) <= 0)
			return rc; /* not a UDR table: an alias or DuckDB's business */
		if ((rc = udr__ref_parse(&ref, at + 1, len - tlen - 1)) < 0)
			return rc;
		return push(st, start, end, text, tlen, true, UDR__SPECIAL_NONE, &ref);
	}
	if ((special = special_of(text, len, false)) != UDR__SPECIAL_NONE)
		return push(st, start, end, text, len, false, special, NULL);
	return 0; /* a bare name is resolved where DuckDB binds it, if it does */
}

/* Skip a '...' literal starting at s[i] == '\''; backslash escapes when esc. */
static size_t skip_string(const char *s, size_t n, size_t i, bool esc)
{
	i++;
	while (i < n) {
		if (esc && s[i] == '\\' && i + 1 < n) {
			i += 2;
		} else if (s[i] == '\'') {
			if (i + 1 < n && s[i + 1] == '\'')
				i += 2;
			else
				return i + 1;
		} else {
			i++;
		}
	}
	return n;
}

int udr__sql_scan(udr__sqlref **out, size_t *count, const char *s, udr__table_exists_fn exists,
                  void *payload)
{
	scan_state st = {NULL, 0, 0, exists, payload};
	size_t n, i = 0;
	char prev = '\0'; /* last significant character */
	int rc = 0;
	char *qbuf = NULL;
	if (!out || !count || !s || !exists)
		return udr__error_set(UDR_EINVAL, "invalid argument to the SQL scanner");
	n = strlen(s);
	if (!(qbuf = malloc(n + 1)))
		return udr__error_oom();
	while (i < n && rc >= 0) {
		unsigned char c = (unsigned char)s[i];
		if (isspace(c)) {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < n && s[i + 1] == '*') {
			int depth = 1;
			i += 2;
			while (i < n && depth > 0) {
				if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			}
			continue;
		}
		if (c == '\'') {
			i = skip_string(s, n, i, false);
			prev = '\'';
			continue;
		}
		if (c == '"') {
			size_t start = i, len = 0;
			i++;
			while (i < n) {
				if (s[i] == '"') {
					if (i + 1 < n && s[i + 1] == '"') {
						qbuf[len++] = '"';
						i += 2;
						continue;
					}
					break;
				}
				qbuf[len++] = s[i++];
			}
			if (i >= n)
				break; /* unterminated: DuckDB will say so */
			i++;
			qbuf[len] = '\0';
			if (prev != '.')
				rc = quoted_ident(&st, start, i, qbuf, len);
			prev = '"';
			continue;
		}
		if (c == '$') {
			size_t j = i + 1;
			if (j < n && isdigit((unsigned char)s[j])) { /* $1 parameter */
				while (j < n && isdigit((unsigned char)s[j]))
					j++;
				i = j;
				prev = '0';
				continue;
			}
			if (j < n && (s[j] == '$' || isalpha((unsigned char)s[j]) || s[j] == '_')) {
				while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_'))
					j++;
				if (j < n && s[j] == '$') { /* $tag$ ... $tag$ */
					size_t taglen = j + 1 - i;
					const char *end = NULL;
					for (size_t k = j + 1; k + taglen <= n; k++)
						if (s[k] == '$' && memcmp(s + k, s + i, taglen) == 0) {
							end = s + k;
							break;
						}
					i = end ? (size_t)(end - s) + taglen : n;
					prev = '\'';
					continue;
				}
			}
			i++;
			prev = '$';
			continue;
		}
		if (isdigit(c)) {
			while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.'))
				i++;
			prev = '0';
			continue;
		}
		if (ident_start(c)) {
			size_t start = i, j = i, len;
			int special;
			while (j < n && ident_char((unsigned char)s[j]))
				j++;
			len = j - start;
			if (j < n && s[j] == '\'') {
				/* E'...' (backslash escapes), X'..', B'..', N'..': a literal */
				i = skip_string(s, n, j, len == 1 && (c == 'E' || c == 'e'));
				prev = '\'';
				continue;
			}
			if (j + 1 < n && s[j] == '@' && isalnum((unsigned char)s[j + 1])) {
				size_t rl = ref_lexeme(s + j + 1), end = j + 1 + rl;
				udr__ref ref;
				char q[160], tmp[UDR_TABLE_NAME_MAX + 1];
				if (rl == 0 || (end < n && ident_char((unsigned char)s[end]))) {
					while (end < n && ident_char((unsigned char)s[end]))
						end++;
					rc = ref_error(s + j + 1, end - j - 1);
					break;
				}
				if ((rc = udr__ref_parse(&ref, s + j + 1, rl)) < 0)
					break;
				if ((rc = table_exists(&st, s + start, len)) < 0)
					break;
				if (rc == 0) {
					size_t tl = len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1;
					memcpy(tmp, s + start, tl);
					tmp[tl] = '\0';
					udr__quote(q, sizeof(q), tmp);
					rc = udr__error_set(UDR_ENOTFOUND, "table '%s' not found", q);
					break;
				}
				rc = push(&st, start, end, s + start, len, true, UDR__SPECIAL_NONE, &ref);
				i = end;
				prev = 'a';
				continue;
			}
			i = j;
			if (prev == '.') { /* x.name: a column or another schema's object */
				prev = 'a';
				continue;
			}
			prev = 'a';
			if ((special = special_of(s + start, len, true)) != UDR__SPECIAL_NONE) {
				rc = push(&st, start, j, s + start, len, false, special, NULL);
				continue;
			}
			if (len == 14 && strncasecmp(s + start, "enable_logging", 14) == 0) {
				size_t k = j;
				while (k < n && isspace((unsigned char)s[k]))
					k++;
				if (k < n && s[k] == '(') {
					/* its file storage writes wherever it is told */
					rc = udr__error_set(UDR_EINVAL, "enable_logging() is not allowed in udr SQL "
					                                "(it can write files)");
					break;
				}
			}
			continue;
		}
		prev = (char)c;
		i++;
	}
	free(qbuf);
	if (rc < 0) {
		free(st.refs);
		return rc;
	}
	*out = st.refs;
	*count = st.n;
	return 0;
}

int udr__sql_ident(udr__buf *b, const char *name)
{
	int rc = udr__buf_put(b, "\"", 1);
	for (const char *p = name; rc == 0 && *p; p++)
		rc = *p == '"' ? udr__buf_put(b, "\"\"", 2) : udr__buf_put(b, p, 1);
	return rc ? rc : udr__buf_put(b, "\"", 1);
}

int udr__sql_idents(udr__buf *b, const char *alias, const char *const *names, size_t n)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i)
			rc = udr__buf_puts(b, ", ");
		if (rc == 0 && alias)
			rc = udr__buf_printf(b, "%s.", alias);
		if (rc == 0)
			rc = udr__sql_ident(b, names[i]);
	}
	return rc;
}

int udr__sql_literal(udr__buf *b, const char *text)
{
	int rc = udr__buf_put(b, "'", 1);
	for (const char *p = text; rc == 0 && *p; p++)
		rc = *p == '\'' ? udr__buf_put(b, "''", 2) : udr__buf_put(b, p, 1);
	return rc ? rc : udr__buf_put(b, "'", 1);
}
