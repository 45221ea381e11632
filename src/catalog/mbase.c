/*
 * mbase.c - ancestry questions without reading the whole history.  A
 * record's parents are always older records (smaller seqs), so the seq is a
 * generation number that every record has for free: a walk that visits
 * records newest first can stop as soon as nothing it still has to visit
 * can matter.  Merge bases are found as git's paint-down does (each record
 * painted with the sides that reach it; a record reached from both sides is
 * a common ancestor, and what is below it is stale), reading the records
 * between the two commits and their bases, not the log.
 */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "catalog/catalog_internal.h"

#define SIDE_A 1u
#define SIDE_B 2u
#define STALE 4u
#define RESULT 8u

/* The records to visit, newest first, each once with its paint. */
struct frontier {
	uint64_t *seq;
	unsigned *paint;
	size_t n, cap;
};

static void frontier_free(struct frontier *f)
{
	free(f->seq);
	free(f->paint);
	memset(f, 0, sizeof(*f));
}

/* Add paint to s (inserted in descending order, merged with an entry for
 * the same seq). */
static int frontier_add(struct frontier *f, uint64_t s, unsigned paint)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) { /* first index with seq <= s */
		size_t mid = (lo + hi) / 2;
		if (f->seq[mid] > s)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->n && f->seq[lo] == s) {
		f->paint[lo] |= paint;
		return 0;
	}
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 16;
		uint64_t *a = realloc(f->seq, nc * sizeof(*a));
		unsigned *b;
		if (!a)
			return udr__error_oom();
		f->seq = a;
		if (!(b = realloc(f->paint, nc * sizeof(*b))))
			return udr__error_oom();
		f->paint = b;
		f->cap = nc;
	}
	memmove(f->seq + lo + 1, f->seq + lo, (f->n - lo) * sizeof(*f->seq));
	memmove(f->paint + lo + 1, f->paint + lo, (f->n - lo) * sizeof(*f->paint));
	f->seq[lo] = s;
	f->paint[lo] = paint;
	f->n++;
	return 0;
}

/* Remove and return the newest entry. */
static uint64_t frontier_pop(struct frontier *f, unsigned *paint)
{
	uint64_t s = f->seq[0];
	*paint = f->paint[0];
	memmove(f->seq, f->seq + 1, (f->n - 1) * sizeof(*f->seq));
	memmove(f->paint, f->paint + 1, (f->n - 1) * sizeof(*f->paint));
	f->n--;
	return s;
}

static bool frontier_live(const struct frontier *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (!(f->paint[i] & STALE))
			return true;
	return false;
}

int udr__is_ancestor(bool *out, udr_catalog *c, uint64_t x, uint64_t from)
{
	struct frontier f;
	int rc = 0;
	*out = false;
	memset(&f, 0, sizeof(f));
	if (x == 0 || from < x)
		return 0;
	if ((rc = frontier_add(&f, from, SIDE_A)) < 0)
		return rc;
	while (f.n > 0 && rc == 0) {
		unsigned paint;
		uint64_t s = frontier_pop(&f, &paint);
		udr_commit *cm = NULL;
		if (s == x) {
			*out = true;
			break;
		}
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		for (size_t i = 0; i < cm->nparents && rc == 0; i++)
			if (cm->parents[i] >= x)
				rc = frontier_add(&f, cm->parents[i], SIDE_A);
		udr_commit_free(cm);
	}
	frontier_free(&f);
	return rc;
}

int udr__merge_bases(uint64_t **out, size_t *count, udr_catalog *c, uint64_t a, uint64_t b)
{
	struct frontier f;
	uint64_t *res = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	*out = NULL;
	*count = 0;
	memset(&f, 0, sizeof(f));
	if (a == 0 || b == 0)
		return 0;
	if ((rc = frontier_add(&f, a, SIDE_A)) < 0 || (rc = frontier_add(&f, b, SIDE_B)) < 0)
		goto done;
	while (rc == 0 && frontier_live(&f)) {
		unsigned paint;
		uint64_t s = frontier_pop(&f, &paint);
		udr_commit *cm = NULL;
		unsigned flags = paint & (SIDE_A | SIDE_B | STALE);
		if ((flags & (SIDE_A | SIDE_B)) == (SIDE_A | SIDE_B)) {
			if (!(flags & STALE)) { /* a common ancestor nothing newer stands for */
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 4;
					uint64_t *r = realloc(res, nc * sizeof(*r));
					if (!r) {
						rc = udr__error_oom();
						break;
					}
					res = r;
					cap = nc;
				}
				res[n++] = s;
			}
			flags |= STALE;
		}
		if ((rc = udr__commit_read(&cm, c, s)) < 0)
			break;
		for (size_t i = 0; i < cm->nparents && rc == 0; i++)
			if (cm->parents[i] > 0)
				rc = frontier_add(&f, cm->parents[i], flags);
		udr_commit_free(cm);
	}
done:
	frontier_free(&f);
	/* a branch's create record holds the tables of the commit it was made
	 * at (its parent): as a base it is that commit.  Then a base that is
	 * an ancestor of another says nothing the other does not.  (rel made
	 * from main, x from rel: rel's create record and a later main commit
	 * were two bases, and the merge was refused as a criss-cross.) */
	for (size_t i = 0; rc == 0 && i < n; i++)
		for (;;) {
			udr_commit *cm = NULL;
			bool create;
			if ((rc = udr__commit_read(&cm, c, res[i])) < 0)
				break;
			create = cm->op && strcmp(cm->op, "create") == 0 && cm->nchanges == 0 && cm->nparents == 1 &&
			         cm->parents[0] > 0;
			if (create)
				res[i] = cm->parents[0];
			udr_commit_free(cm);
			if (!create)
				break;
		}
	for (size_t i = 0; rc == 0 && n > 1 && i < n;) {
		bool redundant = false;
		for (size_t j = 0; rc == 0 && j < n && !redundant; j++) {
			if (j == i)
				continue;
			if (res[j] == res[i])
				redundant = j < i; /* the same commit twice: the first kept */
			else
				rc = udr__is_ancestor(&redundant, c, res[i], res[j]);
		}
		if (rc == 0 && redundant) {
			memmove(res + i, res + i + 1, (n - i - 1) * sizeof(*res));
			n--;
		} else {
			i++;
		}
	}
	if (rc < 0) {
		free(res);
		return rc;
	}
	*out = res; /* newest first */
	*count = n;
	return 0;
}
