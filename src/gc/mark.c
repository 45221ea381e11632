/*
 * mark.c - GC's mark (docs/GC.md 3): the copy table (16 bytes a copy,
 * sorted by hash prefix, collisions resolved with the full hashes), the
 * roots, the walk through manifests and delta bases, and the choice of the
 * one copy each live object keeps.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "catalog/catalog_internal.h"
#include "gc/collect.h"
#include "store/gcfence.h"
#include "store/pack.h"
#include "store/store_internal.h"
#include "util/util.h"

#define SEQ_DIGITS 20

static void account(udr__gc_mark *m, int64_t delta)
{
	m->cur_bytes = (uint64_t)((int64_t)m->cur_bytes + delta);
	if (m->cur_bytes > m->peak_bytes)
		m->peak_bytes = m->cur_bytes;
}

static uint64_t hash_prefix(const udr_hash *h)
{
	uint64_t p = 0;
	for (int i = 0; i < 8; i++)
		p = p << 8 | h->bytes[i];
	return p;
}

size_t udr__gc_copy_pack(const udr__gc_mark *m, uint32_t id, uint64_t *record)
{
	size_t lo = 0, hi = m->npacks;
	if (id >= m->base[m->npacks])
		return SIZE_MAX;
	while (hi - lo > 1) { /* last pack whose base <= id */
		size_t mid = lo + (hi - lo) / 2;
		if (m->base[mid] <= id)
			lo = mid;
		else
			hi = mid;
	}
	if (record)
		*record = id - m->base[lo];
	return lo;
}

void udr__gc_copy_hash(udr_hash *out, const udr__gc_mark *m, uint32_t id)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	if (p == SIZE_MAX) {
		*out = m->loose[id - m->base[m->npacks]].hash;
	} else {
		memcpy(out->bytes, udr__idx_hash_at(&m->packs[p].p->idx, rec), UDR_HASH_SIZE);
	}
}

/* The full hash of copy id, in place (the index's bytes or the loose entry's). */
static const unsigned char *copy_hash_ref(const udr__gc_mark *m, uint32_t id)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	if (p == SIZE_MAX)
		return m->loose[id - m->base[m->npacks]].hash.bytes;
	return udr__idx_hash_at(&m->packs[p].p->idx, rec);
}

/* Kind and payload length of a copy. */
static int copy_kind(const udr__gc_mark *m, uint32_t id, uint32_t *length)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	if (p == SIZE_MAX) {
		const udr__gc_loose *l = &m->loose[id - m->base[m->npacks]];
		if (length)
			*length = (uint32_t)(l->size > UINT32_MAX ? UINT32_MAX : l->size);
		return l->kind;
	}
	const unsigned char *r = udr__idx_rec_at(&m->packs[p].p->idx, rec);
	if (length)
		*length = udr__get_le32(r + 8);
	return r[12] >= 1 && r[12] <= 4 ? r[12] : UDR__K_RAW;
}

static int64_t ctime_ms(const struct stat *st)
{
	return (int64_t)st->st_ctim.tv_sec * 1000 + st->st_ctim.tv_nsec / 1000000;
}

/* ---- listing ------------------------------------------------------------------ */

static int list_packs(udr__gc_mark *m)
{
	udr_store *s = m->s;
	udr__packset *ps = s->packs;
	int rc;
	if (!ps)
		return 0;
	if ((rc = udr__packset_scan(s)) < 0)
		return rc;
	pthread_mutex_lock(&ps->mu);
	if (!(m->packs = calloc(ps->n ? ps->n : 1, sizeof(*m->packs)))) {
		pthread_mutex_unlock(&ps->mu);
		return udr__error_oom();
	}
	for (size_t i = 0; i < ps->n; i++) {
		udr__pack *p = ps->v[i];
		if (p->gone || p->broken || p->retired)
			continue;
		p->holds++;
		m->packs[m->npacks++].p = p;
	}
	pthread_mutex_unlock(&ps->mu);
	account(m, (int64_t)(m->npacks * sizeof(*m->packs)));
	for (size_t i = 0; i < m->npacks; i++) {
		udr__gc_packinfo *pi = &m->packs[i];
		char path[4200];
		struct stat st;
		snprintf(path, sizeof(path), "%s/packs/%s.idx", s->path, pi->p->hex);
		/* an index named now, or a pack indexed in memory (no index): the
		 * pack's own time */
		if (stat(path, &st) == 0)
			pi->ctime_ms = ctime_ms(&st);
		snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, pi->p->hex);
		if (stat(path, &st) < 0)
			return udr__error_io(errno, "cannot stat %s", path);
		if (pi->ctime_ms == 0 || ctime_ms(&st) > pi->ctime_ms)
			pi->ctime_ms = ctime_ms(&st);
		pi->size = (uint64_t)st.st_size;
		pi->entries = pi->p->idx.n;
	}
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool is_hex2(const char *n)
{
	return strlen(n) == 2 && hexval(n[0]) >= 0 && hexval(n[1]) >= 0;
}

static int loose_add(udr__gc_mark *m, const char *dir, const char *name)
{
	static const struct { const char *sfx; int kind; } kinds[] = {
		{"", UDR__K_RAW}, {".zst", UDR__K_ZST}, {".m", UDR__K_MANIFEST}, {".d", UDR__K_DELTA}};
	char hex[UDR_HASH_HEXSIZE + 1], path[4200];
	udr_hash h;
	struct stat st;
	int kind = 0;
	if (strlen(name) < UDR_HASH_HEXSIZE)
		return 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(name + UDR_HASH_HEXSIZE, kinds[i].sfx) == 0)
			kind = kinds[i].kind;
	memcpy(hex, name, UDR_HASH_HEXSIZE);
	hex[UDR_HASH_HEXSIZE] = 0;
	if (!kind || udr_hash_fromhex(&h, hex) != 0)
		return 0;
	{
		/* only a file at its own place (xx/yy/ of its name, lowercase) is a
		 * copy readers find: a stray one elsewhere is not listed (as a
		 * copy it could be kept while the real one was removed) */
		char want[UDR_HASH_HEXSIZE + 1];
		size_t dl = strlen(dir);
		udr_hash_tohex(want, &h);
		if (strcmp(want, hex) != 0 || dl < 6 || dir[dl - 6] != '/' || dir[dl - 3] != '/' ||
		    memcmp(dir + dl - 5, hex, 2) != 0 || memcmp(dir + dl - 2, hex + 2, 2) != 0)
			return 0;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 0;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : udr__error_io(errno, "cannot stat %s", path);
	if (!S_ISREG(st.st_mode))
		return 0;
	if (m->nloose == m->caploose) {
		size_t nc = m->caploose ? 2 * m->caploose : 256;
		udr__gc_loose *q = realloc(m->loose, nc * sizeof(*q));
		if (!q)
			return udr__error_oom();
		account(m, (int64_t)((nc - m->caploose) * sizeof(*q)));
		m->loose = q;
		m->caploose = nc;
	}
	m->loose[m->nloose].hash = h;
	m->loose[m->nloose].kind = (uint8_t)kind;
	m->loose[m->nloose].ctime_ms = ctime_ms(&st);
	m->loose[m->nloose].size = (uint64_t)st.st_size;
	m->nloose++;
	return 0;
}

static int list_loose(udr__gc_mark *m)
{
	DIR *d = opendir(m->s->path), *d2, *d3;
	struct dirent *e, *e2, *e3;
	int rc = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", m->s->path);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char p1[4200];
		if (!is_hex2(e->d_name))
			continue;
		if (snprintf(p1, sizeof(p1), "%s/%s", m->s->path, e->d_name) >= (int)sizeof(p1))
			continue;
		if (!(d2 = opendir(p1)))
			continue;
		while (rc == 0 && (e2 = readdir(d2)) != NULL) {
			char p2[4300];
			if (!is_hex2(e2->d_name))
				continue;
			if (snprintf(p2, sizeof(p2), "%s/%s", p1, e2->d_name) >= (int)sizeof(p2))
				continue;
			if (!(d3 = opendir(p2)))
				continue;
			while (rc == 0 && (e3 = readdir(d3)) != NULL)
				rc = loose_add(m, p2, e3->d_name);
			closedir(d3);
		}
		closedir(d2);
	}
	closedir(d);
	return rc;
}

static int cmp_copy(const void *a, const void *b)
{
	const udr__gc_copy *x = a, *y = b;
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int build_fan(udr__gc_mark *m)
{
	unsigned bits = 4;
	size_t nb, k = 0;
	while (bits < 24 && ((size_t)1 << (bits + 2)) <= m->n)
		bits++;
	nb = (size_t)1 << bits;
	if (!(m->fan = malloc((nb + 1) * sizeof(*m->fan))))
		return udr__error_oom();
	account(m, (int64_t)((nb + 1) * sizeof(*m->fan)));
	m->fanbits = bits;
	for (size_t b = 0; b < nb; b++) {
		while (k < m->n && (m->v[k].prefix >> (64 - bits)) < b)
			k++;
		m->fan[b] = (uint32_t)k;
	}
	m->fan[nb] = (uint32_t)m->n;
	return 0;
}

static int build_table(udr__gc_mark *m)
{
	uint64_t total = 0;
	size_t k = 0;
	if (!(m->base = malloc((m->npacks + 1) * sizeof(*m->base))))
		return udr__error_oom();
	account(m, (int64_t)((m->npacks + 1) * sizeof(*m->base)));
	for (size_t i = 0; i < m->npacks; i++) {
		m->base[i] = total;
		total += m->packs[i].entries;
	}
	m->base[m->npacks] = total;
	total += m->nloose;
	if (total >= UINT32_MAX)
		return udr__error_set(UDR_ENOMEM, "gc: %llu copies are more than one run can mark",
		                      (unsigned long long)total);
	if (!(m->v = malloc((total ? total : 1) * sizeof(*m->v))))
		return udr__error_oom();
	account(m, (int64_t)(total * sizeof(*m->v)));
	m->n = (size_t)total;
	for (size_t i = 0; i < m->npacks; i++)
		for (uint64_t r = 0; r < m->packs[i].entries; r++) {
			udr__pack_entry e;
			udr__idx_record(&e, &m->packs[i].p->idx, r);
			m->v[k].prefix = hash_prefix(&e.hash);
			m->v[k].id = (uint32_t)(m->base[i] + r);
			m->v[k].flags = 0;
			k++;
		}
	for (size_t i = 0; i < m->nloose; i++, k++) {
		m->v[k].prefix = hash_prefix(&m->loose[i].hash);
		m->v[k].id = (uint32_t)(m->base[m->npacks] + i);
		m->v[k].flags = 0;
	}
	qsort(m->v, m->n, sizeof(*m->v), cmp_copy);
	/* runs of one prefix holding several hashes (a prefix collision): sort
	 * the run by full hash (insertion sort; such runs are tiny) */
	for (size_t i = 0; i < m->n;) {
		size_t j = i + 1;
		while (j < m->n && m->v[j].prefix == m->v[i].prefix)
			j++;
		if (j - i > 1) {
			for (size_t a = i + 1; a < j; a++) {
				udr__gc_copy t = m->v[a];
				udr_hash ht, hb;
				size_t b = a;
				udr__gc_copy_hash(&ht, m, t.id);
				while (b > i) {
					udr__gc_copy_hash(&hb, m, m->v[b - 1].id);
					int c = memcmp(hb.bytes, ht.bytes, UDR_HASH_SIZE);
					if (c < 0 || (c == 0 && m->v[b - 1].id < t.id))
						break;
					m->v[b] = m->v[b - 1];
					b--;
				}
				m->v[b] = t;
			}
		}
		for (size_t a = i; a < j; a++) {
			bool first = a == i;
			if (!first) {
				udr_hash h1, h2;
				udr__gc_copy_hash(&h1, m, m->v[a - 1].id);
				udr__gc_copy_hash(&h2, m, m->v[a].id);
				first = !udr_hash_equal(&h1, &h2);
			}
			if (first) {
				m->v[a].flags |= UDR__GC_FIRST;
				m->objects++;
			}
		}
		i = j;
	}
	return build_fan(m);
}

size_t udr__gc_find(const udr__gc_mark *m, const udr_hash *h)
{
	uint64_t p = hash_prefix(h);
	size_t lo = 0, hi = m->n;
	if (m->fan) {
		uint64_t b = p >> (64 - m->fanbits);
		lo = m->fan[b];
		hi = m->fan[b + 1];
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->v[mid].prefix < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < m->n && m->v[i].prefix == p; i++)
		if ((m->v[i].flags & UDR__GC_FIRST) && memcmp(copy_hash_ref(m, m->v[i].id), h->bytes, UDR_HASH_SIZE) == 0)
			return i;
	return SIZE_MAX;
}

static size_t run_end(const udr__gc_mark *m, size_t i)
{
	size_t j = i + 1;
	while (j < m->n && !(m->v[j].flags & UDR__GC_FIRST))
		j++;
	return j;
}

/* ---- the walk -------------------------------------------------------------------- */

static int push(udr__gc_mark *m, size_t i)
{
	if (m->nstack == m->capstack) {
		size_t nc = m->capstack ? 2 * m->capstack : 1024;
		uint32_t *q = realloc(m->stack, nc * sizeof(*q));
		if (!q)
			return udr__error_oom();
		account(m, (int64_t)((nc - m->capstack) * sizeof(*q)));
		m->stack = q;
		m->capstack = nc;
	}
	m->stack[m->nstack++] = (uint32_t)i;
	return 0;
}

enum color { C_LIVE, C_BASE, C_COMM };

static int missing(udr__gc_mark *m, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hash_tohex(hex, h);
	if (!m->missing_once)
		return 1; /* the caller rescans and marks again, once */
	return udr__error_set(UDR_ECORRUPT,
	                      "gc: chunk %s is missing (no intact copy in any pack or loose file), needed by %s; "
	                      "nothing was removed (run udr fsck)", hex, m->root_what ? m->root_what : "a root");
}

/* An object a root names, with no copy listed.  The lenient mark (the
 * unlocked one before unchaining) passes over it: a commit made while it
 * ran names pieces of packs published after its listing (with writers
 * committing, bench_gc.sh's latency run, it failed every time and the
 * unchaining moved under the writers' lock: commits waited 1-1.5 s).  It
 * only chooses what to unchain, which adds copies and removes nothing;
 * the locked mark that decides what goes is strict. */
static int not_found(udr__gc_mark *m, const udr_hash *h)
{
	if (m->lenient) {
		m->passed_over++;
		return 0;
	}
	return missing(m, h);
}

/* Reach object run i with color. */
static int visit_run(udr__gc_mark *m, size_t i, enum color col)
{
	uint32_t *f = &m->v[i].flags;
	if (col == C_COMM) {
		if (*f & UDR__GC_COMM)
			return 0;
		*f |= UDR__GC_COMM;
	} else if (col == C_LIVE) {
		if (*f & UDR__GC_LIVE)
			return 0;
		*f |= UDR__GC_LIVE;
	} else {
		if (*f & (UDR__GC_LIVE | UDR__GC_BASE))
			return 0;
		*f |= UDR__GC_BASE;
	}
	return push(m, i);
}

/* Reach h with color; 1 when it is missing and must not be (rescan). */
static int visit(udr__gc_mark *m, const udr_hash *h, enum color col)
{
	size_t i = udr__gc_find(m, h);
	if (i == SIZE_MAX)
		return col == C_COMM ? 0 : not_found(m, h);
	return visit_run(m, i, col);
}

/* Keep the runs of delta copy id's bases for the next expansion (only when
 * every base is present: a missing one goes through visit each time). */
static int dref_keep(udr__gc_mark *m, uint32_t id, const udr__delta_hdr *dh)
{
	size_t runs[UDR__DELTA_BASES_MAX];
	for (int k = 0; k < dh->nbases; k++)
		if ((runs[k] = udr__gc_find(m, &dh->bases[k])) == SIZE_MAX)
			return 0;
	if (!m->dref) {
		if (!(m->dref = calloc(m->n ? m->n : 1, sizeof(*m->dref))))
			return udr__error_oom();
		account(m, (int64_t)(m->n * sizeof(*m->dref)));
	}
	if (m->ndpool + 1 + (size_t)dh->nbases > m->capdpool) {
		size_t nc = m->capdpool ? m->capdpool + m->capdpool / 2 : 256; /* 1 KiB: the bound is per copy */
		uint32_t *q;
		if (m->ndpool + 1 + (size_t)dh->nbases >= UINT32_MAX)
			return 0;
		if (!(q = realloc(m->dpool, nc * sizeof(*q))))
			return udr__error_oom();
		account(m, (int64_t)((nc - m->capdpool) * sizeof(*q)));
		m->dpool = q;
		m->capdpool = nc;
	}
	m->dref[id] = (uint32_t)(m->ndpool + 1);
	m->dpool[m->ndpool++] = (uint32_t)dh->nbases;
	for (int k = 0; k < dh->nbases; k++)
		m->dpool[m->ndpool++] = (uint32_t)runs[k];
	return 0;
}

static int copy_intact(udr__gc_mark *m, uint32_t id, const udr_hash *h);

/* Object run i [i, end) of h has delta copies and an intact full (raw or
 * zstd) copy: shun the deltas (never kept, their bases not followed), so
 * that a base only they needed dies (unchaining, GC.md 3.3).  A full copy
 * found damaged is flagged.  < 0 on I/O errors. */
static int shun_deltas(udr__gc_mark *m, size_t i, size_t end, const udr_hash *h)
{
	bool delta = false, full = false;
	uint32_t len;
	int rc;
	for (size_t j = i; j < end; j++) {
		int kind = copy_kind(m, m->v[j].id, &len);
		delta |= kind == UDR__K_DELTA;
		full |= (kind == UDR__K_RAW || kind == UDR__K_ZST) && !(m->v[j].flags & UDR__GC_DAMAGED);
	}
	if (!delta || !full)
		return 0;
	for (size_t j = i; j < end; j++) {
		int kind = copy_kind(m, m->v[j].id, &len);
		if ((kind != UDR__K_RAW && kind != UDR__K_ZST) || (m->v[j].flags & UDR__GC_DAMAGED))
			continue;
		if ((rc = copy_intact(m, m->v[j].id, h)) < 0)
			return rc;
		if (rc == 1) {
			m->v[j].flags |= UDR__GC_DAMAGED;
			continue;
		}
		for (size_t k = i; k < end; k++)
			if (copy_kind(m, m->v[k].id, &len) == UDR__K_DELTA)
				m->v[k].flags |= UDR__GC_SHUNNED;
		return 0;
	}
	return 0;
}

/* The bases of delta copy id from the seed's resolved header: 1 when the
 * seed listed its pack and read it, 0 when not (read it). */
static int seed_bases(const udr__gc_mark *m, uint32_t id, udr__delta_hdr *dh)
{
	const udr__gc_mark *sd = m->seed;
	uint64_t rec, sid;
	size_t p;
	const uint32_t *d;
	if (!sd || !m->seedpack || !sd->dref)
		return 0;
	if ((p = udr__gc_copy_pack(m, id, &rec)) == SIZE_MAX || m->seedpack[p] == UINT32_MAX)
		return 0;
	sid = sd->base[m->seedpack[p]] + rec;
	if (sid >= sd->base[sd->npacks] || !sd->dref[sid])
		return 0;
	d = sd->dpool + sd->dref[sid] - 1;
	if (d[0] < 1 || d[0] > UDR__DELTA_BASES_MAX)
		return 0;
	memset(dh, 0, sizeof(*dh));
	dh->nbases = (int)d[0];
	for (uint32_t k = 0; k < d[0]; k++) /* (a seed's runs are copy ids: udr__gc_mark_seed_trim) */
		udr__gc_copy_hash(&dh->bases[k], sd, d[1 + k]);
	return 1;
}

/* Expand object run i: read every manifest and delta copy (a damaged one
 * is flagged and skipped); manifest pieces get the run's colour, delta
 * bases BASE (COMM in the committed pass).  Delta copies of an object with
 * an intact full copy are shunned first (not in the committed pass). */
static int expand(udr__gc_mark *m, size_t i, bool comm)
{
	size_t end = run_end(m, i);
	bool needed = false, readable = false, other = false;
	udr_hash h;
	int rc = 0;
	udr__gc_copy_hash(&h, m, m->v[i].id);
	if (!comm && (rc = shun_deltas(m, i, end, &h)) < 0)
		return rc;
	for (size_t j = i; j < end && rc == 0; j++) {
		uint32_t len = 0;
		int kind = copy_kind(m, m->v[j].id, &len);
		unsigned char *buf = NULL;
		size_t blen = 0;
		udr__loc l;
		uint64_t rec;
		size_t p;
		char hex[UDR_HASH_HEXSIZE + 1], what[200];
		bool vanished = false, bad = false;
		if (kind != UDR__K_MANIFEST && kind != UDR__K_DELTA) {
			other = true;
			continue;
		}
		if (!comm && (m->v[j].flags & UDR__GC_SHUNNED))
			continue;
		needed = true;
		if (m->v[j].flags & UDR__GC_DAMAGED)
			continue;
		if (kind == UDR__K_DELTA && m->dref && m->dref[m->v[j].id]) {
			/* read, checked and parsed by an earlier expansion */
			const uint32_t *d = m->dpool + m->dref[m->v[j].id] - 1;
			readable = true;
			for (uint32_t k = 0; k < d[0] && rc == 0; k++)
				rc = visit_run(m, d[1 + k], comm ? C_COMM : C_BASE);
			continue;
		}
		if (kind == UDR__K_DELTA) {
			udr__delta_hdr dh;
			if (seed_bases(m, m->v[j].id, &dh) == 1) {
				/* read, checked and parsed by the unlocked mark */
				m->seeded++;
				if ((rc = dref_keep(m, m->v[j].id, &dh)) == 0) {
					readable = true;
					for (int k = 0; k < dh.nbases && rc == 0; k++)
						rc = visit(m, &dh.bases[k], comm ? C_COMM : C_BASE);
				}
				continue;
			}
		}
		memset(&l, 0, sizeof(l));
		l.kind = (enum udr__kind)kind;
		p = udr__gc_copy_pack(m, m->v[j].id, &rec);
		if (p == SIZE_MAX) {
			if (!(l.path = udr__obj_path(m->s, &h, (enum udr__kind)kind, hex)))
				return udr__error_oom();
		} else {
			const unsigned char *r = udr__idx_rec_at(&m->packs[p].p->idx, rec);
			l.pack = m->packs[p].p;
			l.offset = udr__get_le64(r);
			l.length = udr__get_le32(r + 8);
		}
		rc = udr__loc_read_win(&buf, &blen, m->s, &l, &h,
		                       kind == UDR__K_DELTA ? UDR__PIECE_HARD_MAX : (size_t)1 << 31, &vanished, m->win);
		udr_hash_tohex(hex, &h);
		snprintf(what, sizeof(what), "chunk %s", hex);
		bad = rc == UDR_ECORRUPT;
		if (rc == 0) {
			if (kind == UDR__K_MANIFEST) {
				uint64_t np = 0;
				udr_hash ph;
				bad = (rc = udr__manifest_check(buf, blen, &h, what, &np)) == UDR_ECORRUPT;
				if (rc == 0)
					readable = true;
				for (uint64_t k = 0; k < np && rc == 0; k++) {
					udr__manifest_entry(buf, k, &ph, NULL);
					rc = visit(m, &ph, comm ? C_COMM : (m->v[i].flags & UDR__GC_LIVE) ? C_LIVE : C_BASE);
				}
			} else {
				udr__delta_hdr dh;
				bad = (rc = udr__delta_parse(&dh, buf, blen, what)) == UDR_ECORRUPT;
				if (rc == 0 && (rc = dref_keep(m, m->v[j].id, &dh)) == 0) {
					readable = true;
					for (int k = 0; k < dh.nbases && rc == 0; k++)
						rc = visit(m, &dh.bases[k], comm ? C_COMM : C_BASE);
				}
			}
		}
		free(buf);
		udr__loc_free(&l);
		if (bad) {
			/* this copy's read or parse failed (not a piece's visit,
			 * whose UDR_ECORRUPT means a missing object) */
			/* this copy is damaged: flagged, never kept; others may do */
			m->v[j].flags |= UDR__GC_DAMAGED;
			udr_error_clear();
			rc = 0;
		} else if (rc == UDR_ENOTFOUND && vanished) {
			m->v[j].flags |= UDR__GC_DAMAGED;
			udr_error_clear();
			rc = 0;
		}
	}
	if (rc == 0 && needed && !readable && !other && !comm)
		return not_found(m, &h);
	return rc;
}

/* An expansion's place in the packs, for reading in offset order. */
struct udr__gc_xkey {
	uint64_t key; /* pack number << 40 | entry offset; UINT64_MAX: loose */
	uint32_t i;   /* the run in v */
	uint32_t len; /* the entry's bytes in its pack (header, payload, CRC) */
};

static int cmp_xkey(const void *a, const void *b)
{
	const struct udr__gc_xkey *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

#define XKEY_PACK(k) ((size_t)((k) >> 40))
#define XKEY_OFF(k) ((k) & (((uint64_t)1 << 40) - 1))
#define XKEY_GAP ((uint64_t)4096)
#define XKEY_BATCH ((size_t)1 << 16)

/* Expand everything on the stack, generation by generation (at most
 * XKEY_BATCH at a time, 1 MiB of keys): each sorted by where its objects'
 * first copies lie, so the reads of the deltas and manifests go through
 * the packs in offset order and the read window serves most of them
 * (popped from the stack, a version's new deltas came in reverse: one
 * pread each, a tenth of a run at 1,000 versions).  The mark is a
 * closure: the order changes nothing else. */
static int drain(udr__gc_mark *m, bool comm)
{
	int rc = 0;
	if (!m->win && m->npacks) {
		/* 16 bytes a copy, 1-256 KiB: within the mark's budget of a
		 * small store too */
		if (!(m->win = calloc(1, sizeof(*m->win))))
			return udr__error_oom();
		m->win->cap = m->n > UDR__READWIN_SIZE / 16 ? UDR__READWIN_SIZE : m->n * 16;
		if (m->win->cap < (size_t)1 << 10)
			m->win->cap = (size_t)1 << 10;
		account(m, (int64_t)(sizeof(*m->win) + m->win->cap));
	}
	while (rc == 0 && m->nstack > 0) {
		/* the top XKEY_BATCH of the stack: the keys' memory stays bounded
		 * (a content of a million pieces is one generation) */
		size_t n = m->nstack < XKEY_BATCH ? m->nstack : XKEY_BATCH, top = m->nstack - n;
		if (n == 1) {
			rc = expand(m, m->stack[--m->nstack], comm);
			continue;
		}
		if (n > m->capxkeys) {
			size_t nc = m->capxkeys ? m->capxkeys : 16;
			struct udr__gc_xkey *q;
			while (nc < n)
				nc *= 2;
			if (!(q = realloc(m->xkeys, nc * sizeof(*q))))
				return udr__error_oom();
			account(m, (int64_t)((nc - m->capxkeys) * sizeof(*q)));
			m->xkeys = q;
			m->capxkeys = nc;
		}
		size_t nx = 0;
		for (size_t k = 0; k < n; k++) {
			struct udr__gc_xkey *x = &m->xkeys[nx];
			uint64_t rec;
			size_t p, run = m->stack[top + k], end = run_end(m, run);
			bool reads = false;
			uint32_t len;
			/* a run of plain pieces only: expand would read nothing and
			 * reach nothing (no manifest, no delta to shun); skipped */
			for (size_t j = run; j < end && !reads; j++) {
				int kind = copy_kind(m, m->v[j].id, &len);
				reads = kind == UDR__K_MANIFEST || kind == UDR__K_DELTA;
			}
			if (!reads)
				continue;
			nx++;
			p = udr__gc_copy_pack(m, m->v[run].id, &rec);
			x->i = (uint32_t)run;
			x->key = UINT64_MAX;
			x->len = 0;
			if (p != SIZE_MAX && p < ((size_t)1 << 23)) {
				const unsigned char *r = udr__idx_rec_at(&m->packs[p].p->idx, rec);
				uint64_t off = udr__get_le64(r);
				if (off < ((uint64_t)1 << 40)) {
					x->key = (uint64_t)p << 40 | off;
					x->len = udr__get_le32(r + 8) + UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC;
				}
			}
		}
		m->nstack = top;
		n = nx;
		qsort(m->xkeys, n, sizeof(*m->xkeys), cmp_xkey);
		/* scanned: the hint set last reaches the entries before it (an
		 * expansion that reads nothing, as a seeded delta's, fills no
		 * window: the scan ahead ran again for every entry, about an
		 * eighth of a run at 1,000 versions) */
		size_t scanned = 0;
		for (size_t k = 0; k < n && rc == 0; k++) {
			const struct udr__gc_xkey *x = &m->xkeys[k];
			if (m->win && x->key != UINT64_MAX && k >= scanned) {
				/* the hint: this pack's entries of this generation
				 * from here on, as far as one window reaches */
				const struct udr__pack *pk = m->packs[XKEY_PACK(x->key)].p;
				uint64_t off = XKEY_OFF(x->key), end = off + x->len;
				const udr__readwin *w = m->win;
				if (!(w->len && w->pack == pk && off >= w->off && end <= w->off + w->len)) {
					for (size_t j = k + 1; j < n && XKEY_PACK(m->xkeys[j].key) == XKEY_PACK(x->key) &&
					                       m->xkeys[j].key != UINT64_MAX;
					     j++) {
						uint64_t b = XKEY_OFF(m->xkeys[j].key), e = b + m->xkeys[j].len;
						/* a gap costs a copy; a few KiB cost less than
						 * another pread */
						if (e - off > m->win->cap || (b > end && b - end > XKEY_GAP))
							break;
						if (e > end)
							end = e;
						scanned = j + 1;
					}
					m->win->hint_pack = pk;
					m->win->hint_end = end;
				}
			}
			rc = expand(m, x->i, comm);
		}
	}
	m->nstack = 0;
	return rc;
}

/* ---- roots ------------------------------------------------------------------------------- */

static int version_root(udr__gc_mark *m, const char *path, const char *table, uint64_t number, uint64_t latest,
                        udr__gc_expired_fn expired, void *payload)
{
	char *text = NULL;
	size_t len;
	udr_version *v = NULL;
	int rc, exp = 0;
	if (number <= latest) {
		/* committed, as the log says: the file must be the one its commit
		 * record made (digest, table, version, parent), or the chunks of
		 * the version committed there are unknown */
		if ((rc = udr__version_load(&v, m->c, table, number)) == 1)
			goto walk;
		if (rc < 0 && rc != UDR_ECORRUPT)
			return rc;
		{
			char why[600];
			snprintf(why, sizeof(why), "%s", rc < 0 ? udr_error_last()->message : "no commit record lists it");
			udr_error_clear();
			return udr__error_set(UDR_ECORRUPT, "gc: version file %s is not the one the log committed (%s), so the "
			                      "chunks of version %llu of table %s are unknown; nothing was removed (run udr "
			                      "fsck)",
			                      path, why, (unsigned long long)number, table);
		}
	}
	/* beyond the log: a commit in flight, or a dead one's leftover for fsck */
	if ((rc = udr__read_file(&text, &len, path, UDR__MAX_META_FILE)) < 0)
		return rc == UDR_ENOTFOUND ? 0 : rc;
	rc = udr__version_from_json(&v, text, len, path);
	free(text);
	if (rc < 0)
		return udr__error_set(UDR_ECORRUPT, "gc: version file %s is unreadable, so the chunks it names are "
		                      "unknown; nothing was removed (run udr fsck)", path);
walk:
	rc = 0;
	if (expired && (rc = expired(&exp, v->table, v->version, payload)) < 0) {
		udr_version_free(v);
		return rc;
	}
	snprintf(m->root_buf, sizeof(m->root_buf), "version %.200s@%llu", v->table, (unsigned long long)v->version);
	m->root_what = m->root_buf;
	/* every version's objects are committed (walked only when some copy
	 * is young: mark_once); unexpired ones are live */
	for (size_t k = 0; k < v->nchunks && rc == 0 && m->comm_walk; k++)
		rc = visit(m, &v->chunks[k], C_COMM);
	if (rc == 0 && m->comm_walk)
		rc = drain(m, true);
	if (exp)
		m->expired_versions++;
	else
		m->versions++;
	for (size_t k = 0; k < v->nchunks && rc == 0 && !exp; k++)
		rc = visit(m, &v->chunks[k], C_LIVE);
	if (rc == 0 && !m->defer)
		rc = drain(m, false);
	udr_version_free(v);
	return rc;
}

/*
 * Every table's latest version as the log allocated it (on any branch):
 * its version files 1..latest must all be there, or the chunks of the
 * missing ones are unknown and would be removed (FORMAT.md: a missing
 * version file is an integrity error, never a smaller latest).  Versions
 * committed after this read only add files.  Keys of refs ("@...") are
 * dropped.
 */
static int log_latest(udr__tstate *out, udr_catalog *c)
{
	uint64_t head = 0;
	udr__record r;
	bool known = true;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = udr__catalog_true_head(&head, c)) < 0 || head == 0)
		return rc;
	if ((rc = udr__record_read(&r, c, head)) < 0)
		return rc;
	rc = r.branched ? udr__global_state(out, c, &r) : udr__state_at(out, &known, c, head);
	udr__record_free(&r);
	if (rc < 0)
		udr__tstate_free(out);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The log's versions 1..latest of table (the version numbers of its files
 * in seen, n of them): the first missing one's error, else 0. */
static int versions_complete(udr__gc_mark *m, const char *table, uint64_t *seen, size_t n, uint64_t latest)
{
	uint64_t want = 1;
	if (n > 1)
		qsort(seen, n, sizeof(*seen), cmp_u64);
	for (size_t i = 0; i < n && want <= latest; i++)
		if (seen[i] == want)
			want++;
	if (want > latest)
		return 0;
	{
		char *p = udr__version_path(m->c, table, want);
		int rc = udr__error_set(UDR_ECORRUPT, "gc: version %llu of table %s is in the log but its version file%s%s "
		                        "is missing, so the chunks it names are unknown; nothing was removed (run udr fsck)",
		                        (unsigned long long)want, table, p ? " " : "", p ? p : "");
		free(p);
		return rc;
	}
}

static int version_roots(udr__gc_mark *m, udr__gc_expired_fn expired, void *payload)
{
	DIR *d, *td;
	struct dirent *e, *f;
	udr__tstate latest;
	size_t checked = 0;
	int rc;
	if ((rc = log_latest(&latest, m->c)) < 0)
		return rc;
	if (!(d = opendir(m->c->tablesdir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", m->c->tablesdir);
		goto tables_gone;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char *dir;
		uint64_t *seen = NULL;
		size_t nseen = 0, capseen = 0;
		const udr__tentry *te;
		if (e->d_name[0] == '.' || !(dir = udr__path_join(m->c->tablesdir, e->d_name)))
			continue;
		te = udr__tstate_find(&latest, e->d_name);
		if ((td = opendir(dir)) != NULL) {
			while (rc == 0 && (f = readdir(td)) != NULL) {
				char *p;
				uint64_t num = 0;
				if (strlen(f->d_name) != SEQ_DIGITS + 5 || strcmp(f->d_name + SEQ_DIGITS, ".json") != 0 ||
				    udr__parse_u64(&num, f->d_name, SEQ_DIGITS) < 0 || !(p = udr__path_join(dir, f->d_name))) {
					udr_error_clear();
					continue;
				}
				if (nseen == capseen) {
					size_t nc = capseen ? 2 * capseen : 64;
					uint64_t *q = realloc(seen, nc * sizeof(*q));
					if (!q) {
						free(p);
						rc = udr__error_oom();
						break;
					}
					seen = q;
					capseen = nc;
				}
				seen[nseen++] = num;
				rc = version_root(m, p, e->d_name, num, te ? te->version : 0, expired, payload);
				free(p);
			}
			closedir(td);
		} else if (errno != ENOTDIR) {
			rc = udr__error_io(errno, "cannot list %s", dir);
		}
		if (rc == 0 && te) {
			checked++;
			rc = versions_complete(m, e->d_name, seen, nseen, te->version);
		}
		free(seen);
		free(dir);
	}
	closedir(d);
tables_gone:
	/* a table of the log with no directory at all */
	for (size_t i = 0; rc == 0 && checked < latest.n && i < latest.n; i++) {
		const char *t = latest.e[i].table;
		char *dir;
		struct stat st;
		if (t[0] == '@' || latest.e[i].version == 0)
			continue;
		if (!(dir = udr__path_join(m->c->tablesdir, t))) {
			rc = udr__error_oom();
			break;
		}
		if (UDR_IO->stat(dir, &st) < 0)
			rc = versions_complete(m, t, NULL, 0, latest.e[i].version);
		free(dir);
	}
	udr__tstate_free(&latest);
	return rc;
}

/* The merge records catalog/merges/<target>.json: every 64-hex string in them that names a stored
 * object (parts of conflicts and of the merge's version) is live. */
static int merge_roots(udr__gc_mark *m)
{
	char *dir = udr__path_join(m->c->path, "merges");
	DIR *d;
	struct dirent *e;
	int rc = 0;
	if (!dir)
		return udr__error_oom();
	if (!(d = opendir(dir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
		free(dir);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		size_t nl = strlen(e->d_name), run = 0;
		char *p, *text = NULL;
		size_t len;
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0 || !(p = udr__path_join(dir, e->d_name)))
			continue;
		rc = udr__read_file(&text, &len, p, UDR__MAX_META_FILE);
		if (rc == UDR_ENOTFOUND)
			rc = 0;
		snprintf(m->root_buf, sizeof(m->root_buf), "merge record %.250s", p);
		m->root_what = m->root_buf;
		for (size_t i = 0; rc == 0 && text && i <= len; i++) {
			if (i < len && hexval(text[i]) >= 0) {
				run++;
				continue;
			}
			if (run == UDR_HASH_HEXSIZE) {
				char hex[UDR_HASH_HEXSIZE + 1];
				udr_hash h;
				memcpy(hex, text + i - run, UDR_HASH_HEXSIZE);
				hex[UDR_HASH_HEXSIZE] = 0;
				if (udr_hash_fromhex(&h, hex) == 0 && udr__gc_find(m, &h) != SIZE_MAX &&
				    (rc = visit(m, &h, C_LIVE)) == 0)
					rc = drain(m, false);
			}
			run = 0;
		}
		free(text);
		free(p);
	}
	closedir(d);
	free(dir);
	return rc;
}

static int fresh_cb(int64_t ms, const udr_hash *hash, void *payload)
{
	udr__gc_mark *m = payload;
	size_t i;
	int rc;
	if (ms < m->now_ms - m->grace_ms || (i = udr__gc_find(m, hash)) == SIZE_MAX)
		return 0;
	if (!(m->v[i].flags & UDR__GC_LIVE))
		m->fresh++;
	m->v[i].flags |= UDR__GC_ROOTED;
	m->root_what = "a fresh record";
	if ((rc = visit(m, hash, C_LIVE)) == 0)
		rc = drain(m, false);
	return rc;
}

static bool copy_young(const udr__gc_mark *m, uint32_t id)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	int64_t t = p == SIZE_MAX ? m->loose[id - m->base[m->npacks]].ctime_ms : m->packs[p].ctime_ms;
	return t >= m->now_ms - m->grace_ms;
}

static int young_roots(udr__gc_mark *m)
{
	int rc = 0;
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		size_t end;
		bool young = false;
		if (!(m->v[i].flags & UDR__GC_FIRST))
			continue;
		end = run_end(m, i);
		for (size_t j = i; j < end; j++)
			if (copy_young(m, m->v[j].id)) {
				m->v[j].flags |= UDR__GC_YOUNG;
				young = true;
			}
		if (!young || (m->v[i].flags & (UDR__GC_COMM | UDR__GC_LIVE)))
			continue;
		udr_hash h;
		udr__gc_copy_hash(&h, m, m->v[i].id);
		m->young++;
		m->v[i].flags |= UDR__GC_ROOTED;
		m->root_what = "a young uncommitted object";
		if ((rc = visit(m, &h, C_LIVE)) == 0)
			rc = drain(m, false);
	}
	return rc;
}

/* ---- kept copies ------------------------------------------------------------------------- */

static uint64_t entry_bytes(uint32_t len)
{
	return (uint64_t)UDR__PACK_ENTRY_HDR + len + UDR__PACK_ENTRY_CRC;
}

/* A loose .zst copy of h: does it decompress to bytes that hash to h?
 * 0 yes, 1 no (damaged or gone), < 0 I/O or memory. */
static int zst_intact(udr__gc_mark *m, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1], *path, *raw = NULL;
	unsigned char *dec = NULL;
	size_t rawlen = 0;
	unsigned long long size;
	udr_hash a;
	int rc;
	if (!(path = udr__obj_path(m->s, h, UDR__K_ZST, hex)))
		return udr__error_oom();
	rc = udr__read_file(&raw, &rawlen, path, UDR__PIECE_HARD_MAX + (UDR__PIECE_HARD_MAX >> 4));
	free(path);
	if (rc == UDR_ENOTFOUND || rc == UDR_ECORRUPT) {
		udr_error_clear();
		return 1;
	}
	if (rc < 0)
		return rc;
	size = ZSTD_getFrameContentSize(raw, rawlen);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > UDR__PIECE_HARD_MAX) {
		free(raw);
		return 1;
	}
	if (!(dec = malloc(size ? (size_t)size : 1))) {
		free(raw);
		return udr__error_oom();
	}
	{
		size_t r = ZSTD_decompress(dec, size ? (size_t)size : 1, raw, rawlen);
		rc = ZSTD_isError(r) || r != size ? 1 : 0;
	}
	if (rc == 0) {
		udr_hash_buf(&a, dec, (size_t)size);
		rc = udr_hash_equal(&a, h) ? 0 : 1;
	}
	free(dec);
	free(raw);
	return rc;
}

/* Is copy id of h intact?  0 yes, 1 damaged (flag it), < 0 an error that
 * stops the run (I/O, memory).  A pack entry: its header and CRC, as the
 * rewrite reads it; a loose raw file: its bytes hash to h; a loose .zst
 * file: it decompresses to such bytes.  Loose .m copies were parsed by the
 * walk (their checksum); a loose .d copy is kept only when no other copy
 * is intact (choose_kept ranks it last), so it is not decoded here. */
static int copy_intact(udr__gc_mark *m, uint32_t id, const udr_hash *h)
{
	uint64_t rec;
	size_t p = udr__gc_copy_pack(m, id, &rec);
	char hex[UDR_HASH_HEXSIZE + 1];
	int rc;
	if (p != SIZE_MAX) {
		udr__pack_entry e;
		udr__loc l;
		unsigned char *buf = NULL;
		size_t len = 0;
		bool vanished = false;
		udr__idx_record(&e, &m->packs[p].p->idx, rec);
		memset(&l, 0, sizeof(l));
		l.kind = e.kind >= 1 && e.kind <= 4 ? (enum udr__kind)e.kind : UDR__K_RAW;
		l.pack = m->packs[p].p;
		l.offset = e.offset;
		l.length = e.length;
		rc = udr__loc_read(&buf, &len, m->s, &l, h, e.length, &vanished);
		free(buf);
		if (rc == UDR_ECORRUPT || (rc == UDR_ENOTFOUND && vanished)) {
			udr_error_clear();
			return 1;
		}
		return rc;
	}
	{
		const udr__gc_loose *x = &m->loose[id - m->base[m->npacks]];
		unsigned char *buf;
		udr_hasher *hs = NULL;
		udr_hash a;
		char *path;
		int fd;
		uint64_t total = 0;
		if (x->kind == UDR__K_ZST)
			return zst_intact(m, h);
		if (x->kind != UDR__K_RAW)
			return 0;
		if (!(path = udr__obj_path(m->s, h, UDR__K_RAW, hex)))
			return udr__error_oom();
		fd = UDR_IO->open(path, O_RDONLY, 0);
		if (fd < 0) {
			rc = errno == ENOENT ? 1 : udr__error_io(errno, "cannot open %s", path);
			free(path);
			return rc;
		}
		if (!(buf = malloc((size_t)1 << 20)) || udr_hasher_new(&hs) < 0) {
			free(buf);
			UDR_IO->close(fd);
			free(path);
			return udr__error_oom();
		}
		rc = 0;
		for (;;) {
			ssize_t n = UDR_IO->read(fd, buf, (size_t)1 << 20);
			if (n < 0) {
				rc = udr__error_io(errno, "read of %s failed", path);
				break;
			}
			if (n == 0)
				break;
			udr_hasher_update(hs, buf, (size_t)n);
			total += (uint64_t)n;
		}
		UDR_IO->close(fd);
		free(buf);
		free(path);
		udr_hasher_final(hs, &a);
		udr_hasher_free(hs);
		if (rc < 0)
			return rc;
		(void)total;
		return udr_hash_equal(&a, h) ? 0 : 1;
	}
}

static int choose_kept(udr__gc_mark *m)
{
	/* first estimate of each pack's live bytes: every copy of a live object */
	for (size_t i = 0; i < m->n; i++) {
		size_t end;
		if (!(m->v[i].flags & UDR__GC_FIRST))
			continue;
		end = run_end(m, i);
		if (!(m->v[i].flags & (UDR__GC_LIVE | UDR__GC_BASE)))
			continue;
		for (size_t j = i; j < end; j++) {
			uint32_t len;
			size_t p = udr__gc_copy_pack(m, m->v[j].id, NULL);
			copy_kind(m, m->v[j].id, &len);
			if (p != SIZE_MAX)
				m->packs[p].live_bytes += entry_bytes(len);
		}
	}
	for (size_t i = 0; i < m->n; i++) {
		size_t end, best = SIZE_MAX;
		double best_frac = -1;
		int best_rank = 99;
		if (!(m->v[i].flags & UDR__GC_FIRST))
			continue;
		end = run_end(m, i);
		if (!(m->v[i].flags & (UDR__GC_LIVE | UDR__GC_BASE)))
			continue;
		m->live++;
		if (!(m->v[i].flags & UDR__GC_LIVE))
			m->base_only++;
		for (size_t j = i; j < end; j++) {
			uint32_t len;
			int kind = copy_kind(m, m->v[j].id, &len), rank;
			size_t p = udr__gc_copy_pack(m, m->v[j].id, NULL);
			double frac = 0;
			if (m->v[j].flags & (UDR__GC_DAMAGED | UDR__GC_SHUNNED))
				continue;
			/* a loose raw copy (read in place), then the pack with the
			 * highest live fraction (newest on ties), then other loose
			 * ones, a delta last (copy_intact cannot decode it alone) */
			if (p == SIZE_MAX)
				rank = kind == UDR__K_RAW ? 0 : kind == UDR__K_DELTA ? 3 : 2;
			else {
				rank = 1;
				frac = m->packs[p].size ? (double)m->packs[p].live_bytes / (double)m->packs[p].size : 0;
			}
			if (rank < best_rank ||
			    (rank == best_rank && rank == 1 &&
			     (frac > best_frac || (frac == best_frac && m->packs[p].ctime_ms >
			                                                     m->packs[udr__gc_copy_pack(m, m->v[best].id, NULL)].ctime_ms)))) {
				best = j;
				best_rank = rank;
				best_frac = frac;
			}
		}
		if (best != SIZE_MAX && end - i > 1) {
			/* other copies go: the one kept must be intact (a damaged
			 * kept copy would outlive the only good one) */
			udr_hash h;
			int rc;
			udr__gc_copy_hash(&h, m, m->v[i].id);
			if ((rc = copy_intact(m, m->v[best].id, &h)) < 0)
				return rc;
			if (rc == 1) {
				m->v[best].flags |= UDR__GC_DAMAGED;
				m->live--;
				if (!(m->v[i].flags & UDR__GC_LIVE))
					m->base_only--;
				i--; /* choose again among the others */
				continue;
			}
		}
		if (best == SIZE_MAX) {
			udr_hash h;
			udr__gc_copy_hash(&h, m, m->v[i].id);
			m->missing_once = true;
			m->root_what = "a live object (only damaged copies)";
			return missing(m, &h);
		}
		m->v[best].flags |= UDR__GC_KEPT;
	}
	for (size_t k = 0; k < m->npacks; k++)
		m->packs[k].live_bytes = 0;
	for (size_t i = 0; i < m->n; i++) {
		uint32_t len;
		size_t p = udr__gc_copy_pack(m, m->v[i].id, NULL);
		if (p == SIZE_MAX)
			continue;
		copy_kind(m, m->v[i].id, &len);
		if (m->v[i].flags & UDR__GC_KEPT) {
			m->packs[p].live_bytes += entry_bytes(len);
			m->packs[p].live_entries++;
		} else {
			m->packs[p].dead_bytes += entry_bytes(len);
		}
	}
	return 0;
}

/* ---- the run ----------------------------------------------------------------------------- */

/* The walk's own memory: read window, keys, stack. */
static void free_walk(udr__gc_mark *m)
{
	udr__readwin_free(m->win);
	free(m->win);
	m->win = NULL;
	free(m->xkeys);
	m->xkeys = NULL;
	m->capxkeys = 0;
	free(m->stack);
	m->stack = NULL;
	m->nstack = m->capstack = 0;
}

static void mark_reset(udr__gc_mark *m)
{
	if (m->packs && m->s && m->s->packs)
		for (size_t i = 0; i < m->npacks; i++)
			udr__pack_unhold(m->s->packs, m->packs[i].p);
	free(m->packs);
	free(m->base);
	free(m->loose);
	free(m->v);
	free(m->fan);
	free_walk(m);
	free(m->seedpack);
	m->seedpack = NULL;
	m->seeded = 0;
	free(m->dref);
	free(m->dpool);
	m->dref = m->dpool = NULL;
	m->ndpool = m->capdpool = 0;
	m->packs = NULL;
	m->base = NULL;
	m->loose = NULL;
	m->v = NULL;
	m->fan = NULL;
	m->stack = NULL;
	m->npacks = m->nloose = m->caploose = m->n = m->nstack = m->capstack = 0;
	m->objects = m->live = m->base_only = m->young = m->fresh = m->versions = m->expired_versions = 0;
	m->cur_bytes = 0;
}

void udr__gc_mark_free(udr__gc_mark *m)
{
	if (m)
		mark_reset(m);
}

/* Which of the listed packs the seed listed too (by name: a pack's bytes,
 * so its records, are the same; the entry counts must agree). */
static int seed_packs(udr__gc_mark *m)
{
	const udr__gc_mark *sd = m->seed;
	if (!sd || !m->npacks || !sd->npacks || !sd->dref)
		return 0;
	if (!(m->seedpack = malloc(m->npacks * sizeof(*m->seedpack))))
		return udr__error_oom();
	account(m, (int64_t)(m->npacks * sizeof(*m->seedpack)));
	for (size_t p = 0; p < m->npacks; p++) {
		m->seedpack[p] = UINT32_MAX;
		for (size_t q = 0; q < sd->npacks && q < UINT32_MAX; q++) {
			if (strcmp(sd->packs[q].p->hex, m->packs[p].p->hex) == 0) {
				if (sd->packs[q].entries == m->packs[p].entries &&
				    sd->base[q + 1] - sd->base[q] == m->packs[p].entries)
					m->seedpack[p] = (uint32_t)q;
				break;
			}
		}
	}
	return 0;
}

bool udr__gc_mark_per_root; /* tests: drain after each version, as before */

static int mark_once(udr__gc_mark *m, udr__gc_expired_fn expired, void *payload)
{
	int rc;
	if ((rc = list_packs(m)) < 0 || (rc = list_loose(m)) < 0 || (rc = build_table(m)) < 0)
		return rc;
	if ((rc = seed_packs(m)) < 0)
		return rc;
	/* COMMITTED is read by young_roots only, for objects with a young
	 * copy: none, no walk (a copy's age is its file's, listed above) */
	m->comm_walk = false;
	for (size_t p = 0; p < m->npacks && !m->comm_walk; p++)
		m->comm_walk = m->packs[p].ctime_ms >= m->now_ms - m->grace_ms;
	for (size_t i = 0; i < m->nloose && !m->comm_walk; i++)
		m->comm_walk = m->loose[i].ctime_ms >= m->now_ms - m->grace_ms;
	if (m->lenient)
		udr__test_pause("gc-premark-listed"); /* tests: a commit between the listing and the roots */
	/* Every kept version's contents are pushed before one drain: a
	 * generation is then the objects of all versions at once, read in
	 * pack order (drained per version, each generation's entries lay in
	 * the regions of the many older versions whose pieces it shares: one
	 * pread for about three entries at 1,000 versions).  The walk with
	 * COMMITTED drains per version (its stack would mix colours), and so
	 * does the second try after a missing object, whose message names
	 * the version that needs it. */
	m->defer = !m->comm_walk && !m->missing_once && !udr__gc_mark_per_root;
	rc = version_roots(m, expired, payload);
	if (rc == 0 && m->defer) {
		m->root_what = "a kept version";
		rc = drain(m, false);
	}
	m->defer = false;
	if (rc != 0)
		return rc;
	if ((rc = merge_roots(m)) != 0)
		return rc;
	for (unsigned par = 0; par < 2 && rc == 0; par++)
		rc = udr__gc_fresh_foreach(m->s->path, par, fresh_cb, m);
	if (rc != 0)
		return rc;
	if ((rc = young_roots(m)) != 0)
		return rc;
	return choose_kept(m);
}

/* The bytes a mark trimmed to a seed still holds. */
static uint64_t seed_bytes(const udr__gc_mark *sd)
{
	return (uint64_t)(sd->n * sizeof(*sd->dref) + sd->capdpool * sizeof(*sd->dpool) +
	                  sd->npacks * sizeof(*sd->packs) + (sd->npacks + 1) * sizeof(*sd->base) +
	                  sd->caploose * sizeof(*sd->loose));
}

void udr__gc_mark_seed_trim(udr__gc_mark *m)
{
	/* the bases' runs become copy ids (any copy names the object's hash),
	 * and the copy table goes: a seed then holds 4 bytes a copy and its
	 * resolved headers */
	for (size_t pos = 0; m->v && pos < m->ndpool;) {
		uint32_t cnt = m->dpool[pos];
		for (uint32_t k = 0; k < cnt; k++)
			m->dpool[pos + 1 + k] = m->v[m->dpool[pos + 1 + k]].id;
		pos += 1 + (size_t)cnt;
	}
	free(m->v);
	m->v = NULL;
	free_walk(m);
	free(m->fan);
	m->fan = NULL;
	free(m->seedpack);
	m->seedpack = NULL;
	m->seed = NULL;
}

static int mark_run(udr__gc_mark *m, const udr__gc_mark *seed, udr_store *s, udr_catalog *c, int64_t now_ms,
                    int64_t grace_ms, udr__gc_expired_fn expired, void *payload, bool lenient)
{
	int rc;
	memset(m, 0, sizeof(*m));
	m->seed = seed;
	/* the seed's memory is this mark's too while it runs */
	if (seed)
		account(m, (int64_t)seed_bytes(seed));
	m->lenient = lenient;
	m->s = s;
	m->c = c;
	m->now_ms = now_ms;
	m->grace_ms = grace_ms;
	rc = mark_once(m, expired, payload);
	if (rc == 1) {
		/* a live object was missing: a repack may have moved it; list again */
		mark_reset(m);
		m->missing_once = true;
		if (seed)
			account(m, (int64_t)seed_bytes(seed));
		rc = mark_once(m, expired, payload);
	}
	m->seed = NULL; /* the caller frees it */
	if (rc > 0)
		rc = udr__error_set(UDR_ECORRUPT, "gc: a live chunk is missing");
	if (rc < 0)
		mark_reset(m);
	return rc;
}

int udr__gc_mark_run(udr__gc_mark *m, udr_store *s, udr_catalog *c, int64_t now_ms, int64_t grace_ms,
                     udr__gc_expired_fn expired, void *payload)
{
	return mark_run(m, NULL, s, c, now_ms, grace_ms, expired, payload, false);
}

int udr__gc_mark_run_seeded(udr__gc_mark *m, const udr__gc_mark *seed, udr_store *s, udr_catalog *c,
                            int64_t now_ms, int64_t grace_ms, udr__gc_expired_fn expired, void *payload)
{
	return mark_run(m, seed, s, c, now_ms, grace_ms, expired, payload, false);
}

int udr__gc_premark_run(udr__gc_mark *m, udr_store *s, udr_catalog *c, int64_t now_ms, int64_t grace_ms,
                        udr__gc_expired_fn expired, void *payload)
{
	return mark_run(m, NULL, s, c, now_ms, grace_ms, expired, payload, true);
}
