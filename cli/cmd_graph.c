/*
 * cli/cmd_graph.c - udr log --graph: the commit graph drawn as git log
 * --graph draws it, newest first: one column per line of history ('|'),
 * '*' the commit, '\' a merge's second parent opening a column, '/' two
 * columns joining.  Ref records are not commits of the graph: a create or
 * reset record stands for the commit it names, tag, untag and delete
 * records are left out; branch heads and tags decorate their commits.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <udr/log.h>
#include <udr/refs.h>

#include "cli.h"

#define GRAPH_OOM (-1000) /* not a udr error code */

struct graph {
	udr_commit **by_seq; /* indexed by seq (NULL: none) */
	uint64_t *eff;       /* the graph node a seq stands for (0: none) */
	uint64_t n;          /* highest seq + 1 */
	uint64_t *cols;      /* the commits each column waits for */
	size_t ncols;
};

static bool is_ref_op(const char *op)
{
	return op && strcmp(op, "merge") != 0 && strcmp(op, "cherry-pick") != 0 && strcmp(op, "revert") != 0;
}

static bool passes_through(const char *op)
{
	return op && (strcmp(op, "create") == 0 || strcmp(op, "reset") == 0);
}

/* The graph parents of node s: its parents, each through create/reset
 * records, without duplicates or hidden ones. */
static size_t node_parents(const struct graph *g, uint64_t s, uint64_t out[2])
{
	const udr_commit *cm = g->by_seq[s];
	size_t k = 0;
	for (size_t i = 0; i < cm->nparents && k < 2; i++) {
		uint64_t p = cm->parents[i] < g->n ? g->eff[cm->parents[i]] : 0;
		if (p && (k == 0 || out[0] != p))
			out[k++] = p;
	}
	return k;
}

static long col_of(const uint64_t *cols, size_t n, uint64_t s)
{
	for (size_t i = 0; i < n; i++)
		if (cols[i] == s)
			return (long)i;
	return -1;
}

/* Rows that carry each edge (from column f to column t) one column per
 * row until every edge is straight. */
static void connector_rows(long *from, const long *to, size_t nedges, size_t width, int indent)
{
	char *row = malloc(2 * width + 2);
	if (!row)
		return;
	for (;;) {
		bool bent = false;
		size_t len = 0;
		memset(row, ' ', 2 * width + 1);
		for (size_t e = 0; e < nedges; e++) {
			size_t at;
			char ch;
			if (to[e] == from[e]) {
				at = (size_t)(2 * from[e]);
				ch = '|';
			} else if (to[e] > from[e]) {
				at = (size_t)(2 * from[e] + 1);
				ch = '\\';
				from[e]++;
				bent = true;
			} else {
				at = (size_t)(2 * from[e] - 1);
				ch = '/';
				from[e]--;
				bent = true;
			}
			if (row[at] == ' ' || row[at] == '|')
				row[at] = ch;
			if (at + 1 > len)
				len = at + 1;
		}
		if (!bent)
			break;
		row[len] = '\0';
		printf("%*s%s\n", indent, "", row);
	}
	free(row);
}

static void print_node_text(const udr_commit *cm, const char *deco)
{
	printf("%" PRIu64, cm->seq);
	if (deco && *deco)
		printf(" (%s)", deco);
	if (cm->message) {
		size_t n = strcspn(cm->message, "\n");
		putchar(' ');
		cli_put_text(cm->message, n);
	} else if (cm->op && strcmp(cm->op, "merge") == 0 && cm->nparents == 2) {
		printf(" merge of commit %" PRIu64 " into %s", cm->parents[1], cm->branch ? cm->branch : "?");
	} else {
		for (size_t i = 0; i < cm->nchanges && i < 4; i++) {
			if (cm->changes[i].old_version)
				printf("%s %s: %" PRIu64 " -> %" PRIu64, i ? "," : "", cm->changes[i].table,
				       cm->changes[i].old_version, cm->changes[i].new_version);
			else
				printf("%s %s: new -> %" PRIu64, i ? "," : "", cm->changes[i].table, cm->changes[i].new_version);
		}
		if (cm->nchanges > 4)
			printf(", ... (%zu tables)", cm->nchanges);
	}
	fputc('\n', stdout);
}

/* "main, dev, tag: v1" for the refs naming node s. */
static void decoration(char *out, size_t outsz, const struct graph *g, const udr_ref *refs, size_t nrefs, uint64_t s)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < nrefs && len + 8 < outsz; i++) {
		uint64_t c = refs[i].commit < g->n ? g->eff[refs[i].commit] : 0;
		int w;
		if (c != s)
			continue;
		w = snprintf(out + len, outsz - len, "%s%s%s", len ? ", " : "", refs[i].kind == UDR_REF_TAG ? "tag: " : "",
		             refs[i].name);
		if (w < 0 || (size_t)w >= outsz - len) {
			out[len] = '\0';
			break;
		}
		len += (size_t)w;
	}
}

/* The edges from this commit's columns to the next row's (nc): each line
 * to its commit's column there, the commit's column to its parents'. */
static size_t plain_edges(long *from, long *to, const struct graph *g, uint64_t s, long idx, const uint64_t *ps,
                          size_t np, const uint64_t *nc, size_t nn)
{
	size_t ne = 0;
	for (size_t i = 0; i < g->ncols; i++) {
		if ((long)i == idx) {
			for (size_t k = 0; k < np; k++) {
				from[ne] = (long)i;
				to[ne++] = col_of(nc, nn, ps[k]);
			}
		} else {
			from[ne] = (long)i;
			to[ne++] = col_of(nc, nn, g->cols[i] != s ? g->cols[i] : ps[0]);
		}
	}
	return ne;
}

static int draw(struct graph *g, const bool *shown, const udr_ref *refs, size_t nrefs, size_t limit)
{
	size_t rows = 0;
	g->cols = calloc((size_t)g->n + 2, sizeof(uint64_t));
	if (!g->cols)
		return -1;
	for (uint64_t s = g->n - 1; s >= 1 && (!limit || rows < limit); s--) {
		uint64_t ps[2], *nc;
		long *from, *to, idx;
		size_t np, nn = 0, ne = 0, width;
		char deco[512];
		if (!shown[s])
			continue;
		rows++;
		idx = col_of(g->cols, g->ncols, s);
		if (idx < 0) {
			g->cols[g->ncols] = s;
			idx = (long)g->ncols++;
		}
		np = node_parents(g, s, ps);
		/* the columns after this commit: its parents in its column (the
		 * second one next to it unless it has a column), then the first
		 * occurrence of each commit only */
		nc = calloc(g->ncols + 2, sizeof(uint64_t));
		from = calloc(g->ncols + 3, sizeof(long));
		to = calloc(g->ncols + 3, sizeof(long));
		if (!nc || !from || !to) {
			free(nc);
			free(from);
			free(to);
			return -1;
		}
		for (size_t i = 0; i < g->ncols; i++) {
			if ((long)i == idx) {
				for (size_t k = 0; k < np; k++)
					if (k == 0 || col_of(g->cols, g->ncols, ps[k]) < 0)
						nc[nn++] = ps[k];
			} else {
				nc[nn++] = g->cols[i];
			}
		}
		{
			size_t m = 0;
			for (size_t i = 0; i < nn; i++)
				if (col_of(nc, m, nc[i]) < 0)
					nc[m++] = nc[i];
			nn = m;
		}
		/* the commit's row */
		width = g->ncols > nn ? g->ncols : nn;
		for (size_t i = 0; i < g->ncols; i++)
			printf("%s%c", i ? " " : "", (long)i == idx ? '*' : '|');
		{
			size_t used = 2 * g->ncols - 1, want = 2 * width - 1;
			printf("%*s ", (int)(want - used), "");
		}
		decoration(deco, sizeof(deco), g, refs, nrefs, s);
		print_node_text(g->by_seq[s], deco);
		/* a merge whose second parent has a column left of it: git opens
		 * a column for it next to the merge ('\'), then carries that
		 * line left to the existing one ('/' rows) */
		if (np == 2 && col_of(g->cols, g->ncols, ps[1]) >= 0 && col_of(g->cols, g->ncols, ps[1]) < idx) {
			size_t nm = 0;
			for (size_t i = 0; i < g->ncols; i++) {
				from[ne] = (long)i;
				to[ne++] = (long)i <= idx ? (long)i : (long)i + 1;
				if ((long)i == idx) {
					from[ne] = (long)i;
					to[ne++] = idx + 1;
				}
			}
			connector_rows(from, to, ne, g->ncols + 1, 0);
			ne = 0;
			for (size_t i = 0; i < g->ncols; i++) {
				uint64_t id = (long)i == idx ? ps[0] : g->cols[i];
				from[ne] = (long)nm++;
				to[ne++] = col_of(nc, nn, id);
				if ((long)i == idx) {
					from[ne] = (long)nm++;
					to[ne++] = col_of(nc, nn, ps[1]);
				}
			}
			width = g->ncols + 1;
		} else {
			ne = plain_edges(from, to, g, s, idx, ps, np, nc, nn);
		}
		connector_rows(from, to, ne, width, 0);
		memcpy(g->cols, nc, nn * sizeof(uint64_t));
		g->ncols = nn;
		free(nc);
		free(from);
		free(to);
		if (s == 1)
			break;
	}
	return 0;
}

int cli_log_graph(udr_db *db, const char *branch, size_t limit)
{
	udr_catalog *c = udr_db_catalog(db);
	udr_log_query q = UDR_LOG_QUERY_INIT;
	udr_commit **all = NULL;
	udr_ref *refs = NULL;
	size_t n = 0, nrefs = 0;
	struct graph g;
	bool *shown = NULL;
	int rc;
	memset(&g, 0, sizeof(g));
	q.newest_first = 0;
	if ((rc = udr_catalog_log(&all, &n, c, &q)) != 0 || (rc = udr_catalog_refs(&refs, &nrefs, c, 0)) != 0)
		goto out;
	g.n = n ? all[n - 1]->seq + 1 : 1;
	if (!(g.by_seq = calloc(g.n, sizeof(*g.by_seq))) || !(g.eff = calloc(g.n, sizeof(*g.eff))) ||
	    !(shown = calloc(g.n, sizeof(*shown)))) {
		rc = GRAPH_OOM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		udr_commit *cm = all[i];
		g.by_seq[cm->seq] = cm;
		if (passes_through(cm->op))
			g.eff[cm->seq] = cm->parent < g.n ? g.eff[cm->parent] : 0;
		else if (!is_ref_op(cm->op))
			g.eff[cm->seq] = cm->seq;
	}
	if (branch) {
		uint64_t h;
		if ((rc = udr_catalog_resolve(&h, c, branch)) != 0)
			goto out;
		if (h < g.n && g.eff[h])
			shown[g.eff[h]] = true;
		for (uint64_t s = g.n - 1; s >= 1; s--) {
			uint64_t ps[2];
			size_t np;
			if (!shown[s])
				continue;
			np = node_parents(&g, s, ps);
			for (size_t k = 0; k < np; k++)
				shown[ps[k]] = true;
		}
	} else {
		for (uint64_t s = 1; s < g.n; s++)
			shown[s] = g.eff[s] == s;
	}
	if (draw(&g, shown, refs, nrefs, limit) < 0)
		rc = GRAPH_OOM;
out:
	if (rc == GRAPH_OOM) {
		cli_errorf("out of memory");
		rc = CLI_EXIT_IO;
	} else if (rc != 0) {
		rc = cli_fail(rc);
	}
	free(g.by_seq);
	free(g.eff);
	free(g.cols);
	free(shown);
	udr_ref_array_free(refs, nrefs);
	udr_commit_array_free(all, n);
	return rc;
}
