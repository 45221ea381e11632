/*
 * locate.c - the object-location layer: "where are the bytes of hash H" ->
 * a loose file (ab/cd/<hash>[.kind]) or an entry of a pack; one reader over
 * both, and one enumerator.  Lookup order: the packs (format 3), then the
 * loose files.  Nothing else in the store opens an object by path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"

static const enum udr__kind loose_order[] = {UDR__K_RAW, UDR__K_ZST, UDR__K_MANIFEST, UDR__K_DELTA};

void udr__loc_free(udr__loc *l)
{
	free(l->path);
	memset(l, 0, sizeof(*l));
}

const char *udr__loc_where(char *buf, size_t n, const udr__loc *l)
{
	if (l->pack)
		snprintf(buf, n, "pack %s at offset %llu", l->pack->hex, (unsigned long long)l->offset);
	else
		snprintf(buf, n, "%s", l->path ? l->path : "(nowhere)");
	return buf;
}

void udr__loose_dir_known(const udr_store *s, unsigned top)
{
	if (s->packs)
		__atomic_fetch_or(&s->packs->top[top >> 3], (unsigned char)(1u << (top & 7)), __ATOMIC_RELEASE);
}

/* Fill out with the packed entry e of pack p. */
static void found_packed(udr__loc *out, udr__pack *p, const udr__pack_entry *e)
{
	out->kind = e->kind >= 1 && e->kind <= 4 ? (enum udr__kind)e->kind : UDR__K_RAW;
	out->pack = p;
	out->offset = e->offset;
	out->length = e->length;
}

/*
 * Copy *copy of h.  With use_midx the multi-pack index answers first: its
 * record is copy 0, and a miss in it is believed for the packs it covers
 * (only the packs it does not cover are searched).  Further copies come from
 * every pack's own index, the midx's entry skipped, so that a damaged midx
 * record (found out when its entry is read) never hides a good copy.
 */
static int find_once(udr__loc *out, udr_store *s, const udr_hash *h, unsigned *copy, bool use_midx)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	udr__packset *ps = s->packs;
	if (ps) {
		udr__pack *pick = NULL;
		udr__pack_entry pe;
		bool all = true;
		memset(&pe, 0, sizeof(pe));
		pthread_mutex_lock(&ps->mu);
		if (use_midx && ps->midx.p) {
			uint64_t k = udr__midx_find(&ps->midx, h);
			all = false;
			if (k != UINT64_MAX) {
				uint32_t j;
				udr__midx_record(&pe, &j, &ps->midx, k);
				pick = j < ps->midx.npacks ? ps->mpacks[j] : NULL;
				if (pick && (pick->gone || pick->broken || pe.kind < 1 || pe.kind > 4))
					pick = NULL;
				/* its pack went (repacked away) or is unusable: every
				 * pack's own index, the newer ones hold it now */
				if (!pick)
					all = true;
			}
		}
		if (pick) {
			if ((*copy)-- == 0) {
				found_packed(out, pick, &pe);
				pthread_mutex_unlock(&ps->mu);
				return 0;
			}
			all = true;
		}
		/* the packs it does not cover first (newer than it: where a
		 * repack moved what it names), then, when all, those it covers */
		for (int pass = 0; pass < (all ? 2 : 1); pass++)
			for (size_t i = 0; i < ps->n; i++) {
				udr__pack *p = ps->v[i];
				udr__pack_entry e;
				uint64_t k;
				if (p->covered != (pass == 1) || p->gone || p->broken ||
				    (k = udr__idx_find(&p->idx, h)) == UINT64_MAX)
					continue;
				udr__idx_record(&e, &p->idx, k);
				if (p == pick && e.offset == pe.offset && e.length == pe.length && e.kind == pe.kind)
					continue; /* the midx's copy, counted already (a record that differs is another) */
				if ((*copy)-- == 0) {
					found_packed(out, p, &e);
					pthread_mutex_unlock(&ps->mu);
					return 0;
				}
			}
		pthread_mutex_unlock(&ps->mu);
		/* no loose directory ab/ at the last scan: no loose object either */
		if (!(__atomic_load_n(&ps->top[h->bytes[0] >> 3], __ATOMIC_ACQUIRE) & (1u << (h->bytes[0] & 7))))
			return 0;
	}
	for (size_t i = 0; i < sizeof(loose_order) / sizeof(loose_order[0]); i++) {
		char *p = udr__obj_path(s, h, loose_order[i], hex);
		if (!p)
			return UDR_ENOMEM;
		if (UDR_IO->stat(p, &out->st) == 0) {
			if (!S_ISREG(out->st.st_mode)) {
				free(p);
				return udr__error_set(UDR_ECORRUPT, "chunk %s: object is not a regular file", hex);
			}
			if ((*copy)-- == 0) {
				out->kind = loose_order[i];
				out->path = p;
				return 0;
			}
		} else if (errno != ENOENT && errno != ENOTDIR) {
			int err = errno;
			free(p);
			return udr__error_io(err, "cannot stat chunk %s", hex);
		}
		free(p);
	}
	return 0;
}

static int find_impl(udr__loc *out, udr_store *s, const udr_hash *h, unsigned copy, bool rescan, bool strict);

int udr__obj_find(udr__loc *out, udr_store *s, const udr_hash *h, unsigned copy, bool rescan)
{
	return find_impl(out, s, h, copy, rescan, true);
}

int udr__obj_exists_write(enum udr__kind *kind, udr_store *s, const udr_hash *h)
{
	udr__loc l;
	int rc = find_impl(&l, s, h, 0, true, false);
	*kind = l.kind;
	udr__loc_free(&l);
	return rc < 0 ? rc : *kind != UDR__K_NONE;
}

/* strict: a miss while a pack cannot be indexed (index and pack damaged)
 * is UDR_ECORRUPT; else it is believed (a writer then stores a copy) */
static int find_impl(udr__loc *out, udr_store *s, const udr_hash *h, unsigned copy, bool rescan, bool strict)
{
	unsigned c = copy;
	int rc;
	memset(out, 0, sizeof(*out));
	if (s->packs && !__atomic_load_n(&s->packs->scanned, __ATOMIC_ACQUIRE)) {
		if ((rc = udr__packset_scan(s)) < 0)
			return rc;
	} else if (s->packs) {
		udr__packset_recheck(s);
	}
	if ((rc = find_once(out, s, h, &c, true)) < 0 || out->kind != UDR__K_NONE || !rescan || copy != 0 ||
	    !s->packs)
		return rc;
	if ((rc = udr__packset_scan(s)) < 0)
		return rc;
	/* a miss is believed only after every pack's own index agrees: a
	 * damaged multi-pack index (its checksum is not checked on open) may
	 * miss what it covers; without rescan (the ingest's dedup lookups) a
	 * false miss only stores a second copy */
	c = copy;
	if ((rc = find_once(out, s, h, &c, false)) < 0 || out->kind != UDR__K_NONE)
		return rc;
	/* nor is a miss believed while a pack's index is damaged: the open
	 * checks only its structure, and a damaged record can hide an entry
	 * (each index is checked whole once per handle, on a miss) */
	{
		unsigned rebuilt;
		char broken[UDR_HASH_HEXSIZE + 1], hex[UDR_HASH_HEXSIZE + 1];
		if ((rc = udr__packset_verify(s, &rebuilt, broken)) < 0)
			return rc;
		if (rebuilt) {
			c = copy;
			if ((rc = find_once(out, s, h, &c, false)) < 0 || out->kind != UDR__K_NONE)
				return rc;
		}
		if (broken[0] && strict) {
			udr_hash_tohex(hex, h);
			return udr__error_set(UDR_ECORRUPT,
			                      "chunk %s not found, and the index of pack %s is damaged (the pack's bytes "
			                      "do not hash to its name): it may hold the chunk (udr fsck)",
			                      hex, broken);
		}
	}
	return 0;
}

int udr__obj_exists(enum udr__kind *kind, udr_store *s, const udr_hash *h, bool rescan)
{
	udr__loc l;
	int rc = udr__obj_find(&l, s, h, 0, rescan);
	*kind = l.kind;
	udr__loc_free(&l);
	return rc < 0 ? rc : *kind != UDR__K_NONE;
}

/* The pack's descriptor, opened on first use, with a read counted on it
 * (pack_put when done).  UDR_ENOTFOUND when the pack is gone. */
static int pack_get(udr_store *s, udr__pack *p)
{
	char path[4200];
	struct stat st;
	int fd;
	pthread_mutex_lock(&s->packs->mu);
	if (p->fd >= 0) {
		p->readers++;
		fd = p->fd;
		pthread_mutex_unlock(&s->packs->mu);
		return fd;
	}
	pthread_mutex_unlock(&s->packs->mu);
	snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, p->hex);
	if ((fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0) {
		if (errno == ENOENT) {
			pthread_mutex_lock(&s->packs->mu);
			p->gone = true;
			pthread_mutex_unlock(&s->packs->mu);
			return UDR_ENOTFOUND;
		}
		return udr__error_io(errno, "cannot open pack %s", path);
	}
	if (UDR_IO->fstat(fd, &st) < 0) {
		int rc = udr__error_io(errno, "cannot stat pack %s", path);
		UDR_IO->close(fd);
		return rc;
	}
	pthread_mutex_lock(&s->packs->mu);
	if (p->fd < 0) {
		p->fd = fd;
		p->size = (uint64_t)st.st_size;
	} else {
		UDR_IO->close(fd);
		fd = p->fd;
	}
	p->readers++;
	pthread_mutex_unlock(&s->packs->mu);
	return fd;
}

static void pack_put(udr_store *s, udr__pack *p)
{
	pthread_mutex_lock(&s->packs->mu);
	p->readers--;
	udr__pack_release_locked(p); /* the last read of a retired pack closes it */
	pthread_mutex_unlock(&s->packs->mu);
}

/* pread all of len bytes at off; short: UDR_ECORRUPT (the pack is cut short). */
static int pread_all(int fd, unsigned char *buf, size_t len, uint64_t off, const char *hex, const udr__pack *p)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = UDR_IO->pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return udr__error_io(errno, "read of chunk %s from pack %s failed", hex, p->hex);
		}
		if (n == 0)
			return udr__error_set(UDR_ECORRUPT, "chunk %s: pack %s is cut short at offset %llu", hex, p->hex,
			                      (unsigned long long)(off + got));
		got += (size_t)n;
	}
	return 0;
}

/* Check the entry header of a packed copy against its index record. */
bool udr__loc_header_matches(const unsigned char *hdr, const udr__loc *l, const udr_hash *h)
{
	return memcmp(hdr + 16, h->bytes, UDR_HASH_SIZE) == 0 && hdr[0] == (unsigned char)l->kind &&
	       (hdr[4] | hdr[5] << 8 | hdr[6] << 16 | (uint32_t)hdr[7] << 24) == l->length;
}

int udr__pack_read_at(udr_store *s, udr__pack *p, unsigned char *buf, size_t len, uint64_t off)
{
	int fd, rc;
	if ((fd = pack_get(s, p)) < 0)
		return fd == UDR_ENOTFOUND ? udr__error_set(UDR_ENOTFOUND, "pack %s is gone", p->hex) : fd;
	rc = pread_all(fd, buf, len, off, "entries", p);
	pack_put(s, p);
	return rc;
}

static int header_check(const unsigned char hdr[UDR__PACK_ENTRY_HDR], const udr__loc *l, const udr_hash *h,
                        const char *hex)
{
	if (!udr__loc_header_matches(hdr, l, h))
		return udr__error_set(UDR_ECORRUPT, "chunk %s: pack %s has another entry at offset %llu (damaged index?)",
		                      hex, l->pack->hex, (unsigned long long)l->offset);
	return 0;
}

/* Read and check the entry header of a packed copy. */
static int entry_header(unsigned char hdr[UDR__PACK_ENTRY_HDR], int fd, const udr__loc *l, const udr_hash *h,
                        const char *hex)
{
	int rc = pread_all(fd, hdr, UDR__PACK_ENTRY_HDR, l->offset, hex, l->pack);
	return rc < 0 ? rc : header_check(hdr, l, h, hex);
}

/* Entries up to this size are read with their header in one pread and
 * moved down (one system call, not two: gc's mark and fsck read thousands
 * of small deltas and manifests); larger ones are read in two, into place. */
#define SMALL_ENTRY ((size_t)64 << 10)

/* Has the pack's file been replaced since it was opened (a damaged pack
 * replaced by a good copy of the same name)?  Then reopen it. */
static bool pack_reopened(udr_store *s, udr__pack *p)
{
	char path[4200];
	struct stat a, b;
	int fd, old;
	snprintf(path, sizeof(path), "%s/packs/%s.pack", s->path, p->hex);
	pthread_mutex_lock(&s->packs->mu);
	old = p->fd;
	pthread_mutex_unlock(&s->packs->mu);
	if (old < 0 || UDR_IO->fstat(old, &a) < 0 || UDR_IO->stat(path, &b) < 0 ||
	    (a.st_ino == b.st_ino && a.st_dev == b.st_dev))
		return false;
	if ((fd = UDR_IO->open(path, O_RDONLY | O_CLOEXEC, 0)) < 0)
		return false;
	pthread_mutex_lock(&s->packs->mu);
	if (p->fd == old && p->readers == 0) {
		UDR_IO->close(old);
		p->fd = fd;
		p->reopens++; /* read windows filled from the old file are stale */
	} else {
		UDR_IO->close(fd); /* in use: the next failed read tries again */
		fd = -1;
	}
	pthread_mutex_unlock(&s->packs->mu);
	return fd >= 0;
}

static int loc_read_once(unsigned char **out, size_t *out_len, uint64_t *raw, udr_store *s, const udr__loc *l,
                         const udr_hash *h, size_t max, bool *vanished, udr__readwin *w);

static int loc_read_retry(unsigned char **out, size_t *out_len, uint64_t *raw, udr_store *s, const udr__loc *l,
                          const udr_hash *h, size_t max, bool *vanished, udr__readwin *w)
{
	int rc = loc_read_once(out, out_len, raw, s, l, h, max, vanished, w);
	if (rc == UDR_ECORRUPT && l->pack && pack_reopened(s, l->pack)) {
		udr_error_clear();
		if (w)
			w->len = 0; /* read from the file as it is now */
		rc = loc_read_once(out, out_len, raw, s, l, h, max, vanished, w);
	}
	return rc;
}

int udr__loc_read_win(unsigned char **out, size_t *out_len, udr_store *s, const udr__loc *l, const udr_hash *h,
                      size_t max, bool *vanished, udr__readwin *w)
{
	return loc_read_retry(out, out_len, NULL, s, l, h, max, vanished, w);
}

int udr__loc_read_entry(unsigned char **out, size_t *out_len, uint64_t *raw, udr_store *s, const udr__loc *l,
                        const udr_hash *h, size_t max, bool *vanished, udr__readwin *w)
{
	if (!l->pack)
		return udr__error_set(UDR_EINVAL, "udr__loc_read_entry: not a packed copy");
	return loc_read_retry(out, out_len, raw, s, l, h, max, vanished, w);
}

int udr__loc_read(unsigned char **out, size_t *out_len, udr_store *s, const udr__loc *l, const udr_hash *h,
                  size_t max, bool *vanished)
{
	return udr__loc_read_win(out, out_len, s, l, h, max, vanished, NULL);
}

void udr__readwin_free(udr__readwin *w)
{
	if (w) {
		free(w->buf);
		memset(w, 0, sizeof(*w));
	}
}

/* Make [l->offset, + need) lie in w: 0, or -1 to read it the plain way
 * (which names any error: a short file, an I/O error, no memory).  A new
 * window reaches the caller's hint (the end of the entries it reads next
 * in this pack) or only this entry: never more than is wanted. */
static int win_fill(udr__readwin *w, int fd, const udr__loc *l, size_t need)
{
	size_t got = 0, want = need, cap;
	if (!w->cap)
		w->cap = UDR__READWIN_SIZE;
	cap = w->cap;
	/* l->pack->reopens is stable while this read holds the pack (a
	 * reopen waits for no readers) */
	if (w->len && w->pack == l->pack && w->reopens == l->pack->reopens && l->offset >= w->off &&
	    l->offset - w->off <= w->len && need <= w->len - (size_t)(l->offset - w->off)) {
		w->hits++;
		return 0;
	}
	w->len = 0;
	if (w->hint_pack == l->pack && w->hint_end > l->offset + need)
		want = w->hint_end - l->offset > cap ? cap : (size_t)(w->hint_end - l->offset);
	if (want <= need || (!w->buf && !(w->buf = malloc(cap)))) {
		w->alone++;
		return -1;
	}
	while (got < want) {
		ssize_t n = UDR_IO->pread(fd, w->buf + got, want - got, (off_t)(l->offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < need)
		return -1;
	w->pack = l->pack;
	w->reopens = l->pack->reopens;
	w->off = l->offset;
	w->len = got;
	w->fills++;
	return 0;
}

static int loc_read_once(unsigned char **out, size_t *out_len, uint64_t *raw, udr_store *s, const udr__loc *l,
                         const udr_hash *h, size_t max, bool *vanished, udr__readwin *w)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char hdr[UDR__PACK_ENTRY_HDR], *buf;
	size_t n;
	int fd, rc;
	udr_hash_tohex(hex, h);
	if (vanished)
		*vanished = false;
	if (l->kind == UDR__K_NONE)
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	if (!l->pack) {
		char *b = NULL;
		rc = udr__read_file(&b, out_len, l->path, max);
		if (rc == UDR_ENOTFOUND)
			return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		if (rc == UDR_ECORRUPT)
			return udr__error_set(UDR_ECORRUPT, "chunk %s: object larger than any valid one", hex);
		*out = (unsigned char *)b;
		return rc;
	}
	if (l->length > max)
		return udr__error_set(UDR_ECORRUPT, "chunk %s: entry in pack %s larger than any valid one", hex,
		                      l->pack->hex);
	if ((fd = pack_get(s, l->pack)) < 0) {
		if (fd == UDR_ENOTFOUND) {
			if (vanished)
				*vanished = true;
			return udr__error_set(UDR_ENOTFOUND, "chunk %s: pack %s is gone", hex, l->pack->hex);
		}
		return fd;
	}
	/* the header apart, the payload (and CRC) at the start of the buffer
	 * handed out: no move of the payload after reading it (the entry read
	 * whole and moved down cost a copy of every byte of a get, and the
	 * header was read a second time besides) */
	n = (size_t)l->length + UDR__PACK_ENTRY_CRC;
	if (!(buf = malloc(n <= SMALL_ENTRY ? UDR__PACK_ENTRY_HDR + n : n))) {
		pack_put(s, l->pack);
		return udr__error_oom();
	}
	if (n <= SMALL_ENTRY) {
		if (w && win_fill(w, fd, l, UDR__PACK_ENTRY_HDR + n) == 0) {
			memcpy(buf, w->buf + (l->offset - w->off), UDR__PACK_ENTRY_HDR + n);
			rc = 0;
		} else {
			rc = pread_all(fd, buf, UDR__PACK_ENTRY_HDR + n, l->offset, hex, l->pack);
		}
		if (rc == 0 && (rc = header_check(buf, l, h, hex)) == 0) {
			memcpy(hdr, buf, UDR__PACK_ENTRY_HDR);
			memmove(buf, buf + UDR__PACK_ENTRY_HDR, n);
		}
	} else {
		rc = entry_header(hdr, fd, l, h, hex);
		if (rc == 0)
			rc = pread_all(fd, buf, n, l->offset + UDR__PACK_ENTRY_HDR, hex, l->pack);
	}
	pack_put(s, l->pack);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	{
		const unsigned char *c = buf + l->length;
		uint32_t want = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
		if (udr__crc32c(udr__crc32c(0, hdr, UDR__PACK_ENTRY_HDR), buf, (size_t)l->length) != want) {
			free(buf);
			return udr__error_set(UDR_ECORRUPT, "chunk %s is corrupt: its entry in pack %s (offset %llu) fails "
			                      "its CRC", hex, l->pack->hex, (unsigned long long)l->offset);
		}
	}
	if (raw) { /* from the header the CRC just covered */
		*raw = 0;
		for (int i = 7; i >= 0; i--)
			*raw = *raw << 8 | hdr[8 + i];
	}
	*out = buf;
	*out_len = l->length;
	return 0;
}

int udr__loc_raw_size(uint64_t *out, udr_store *s, const udr__loc *l, const udr_hash *h)
{
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char hdr[UDR__PACK_ENTRY_HDR];
	int fd, rc;
	udr_hash_tohex(hex, h);
	if ((fd = pack_get(s, l->pack)) < 0)
		return fd == UDR_ENOTFOUND ? udr__error_set(UDR_ENOTFOUND, "chunk %s: pack %s is gone", hex, l->pack->hex)
		                           : fd;
	rc = entry_header(hdr, fd, l, h, hex);
	pack_put(s, l->pack);
	if (rc < 0)
		return rc;
	*out = 0;
	for (int i = 7; i >= 0; i--)
		*out = *out << 8 | hdr[8 + i];
	return 0;
}

int udr__obj_read(unsigned char **out, size_t *out_len, enum udr__kind *kind, udr_store *s, const udr_hash *h,
                  size_t max, unsigned copy)
{
	for (int attempt = 0;; attempt++) {
		udr__loc l;
		bool vanished = false;
		int rc = udr__obj_find(&l, s, h, copy, true);
		if (rc < 0)
			return rc;
		*kind = l.kind;
		if (l.kind == UDR__K_NONE) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, h);
			return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		}
		rc = udr__loc_read(out, out_len, s, &l, h, max, &vanished);
		udr__loc_free(&l);
		/* each vanished pack means a repack finished meanwhile: bounded */
		if (!vanished || attempt >= 64)
			return rc;
		/* repacked away since it was found: its entries are in a newer pack */
		udr_error_clear();
		if ((rc = udr__packset_scan(s)) < 0)
			return rc;
	}
}

/* ---- enumeration --------------------------------------------------------------- */

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The kind a loose object file name stands for, or UDR__K_NONE for a stray. */
static enum udr__kind name_kind(const char *name, const char *prefix)
{
	size_t n = strlen(name);
	if (n < UDR_HASH_HEXSIZE || !is_hex(name, UDR_HASH_HEXSIZE) || strncmp(name, prefix, 4) != 0)
		return UDR__K_NONE;
	if (n == UDR_HASH_HEXSIZE)
		return UDR__K_RAW;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".zst") == 0)
		return UDR__K_ZST;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".m") == 0)
		return UDR__K_MANIFEST;
	if (strcmp(name + UDR_HASH_HEXSIZE, ".d") == 0)
		return UDR__K_DELTA;
	return UDR__K_NONE;
}

struct walk {
	udr_store *s;
	bool all;
	udr__obj_visit visit;
	udr__stray_visit stray;
	void *payload;
};

/* Is l the first copy of h in lookup order? */
static int first_copy(struct walk *w, const udr_hash *h, const udr__loc *l)
{
	udr__loc f;
	unsigned c = 0;
	int rc;
	memset(&f, 0, sizeof(f));
	if ((rc = find_once(&f, w->s, h, &c, false)) < 0)
		return rc;
	rc = f.pack == l->pack && f.offset == l->offset &&
	     (l->pack || (f.path && l->path && strcmp(f.path, l->path) == 0));
	udr__loc_free(&f);
	return rc;
}

static int walk_dir(struct walk *w, const char *dir, int level, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return udr__error_io(errno, "cannot list %s", dir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		enum udr__kind kind;
		char *p;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		/* gc/: garbage collection's state and fence files (GC.md 4.3) */
		if (level == 0 && (strcmp(name, "tmp") == 0 || strcmp(name, "config.json") == 0 ||
		                   strcmp(name, UDR__GC_DIR) == 0 || (w->s->format >= 3 && strcmp(name, "packs") == 0)))
			continue;
		if (!(p = udr__path_join(dir, name))) {
			rc = UDR_ENOMEM;
			break;
		}
		if (level < 2 && strlen(name) == 2 && is_hex(name, 2)) {
			char pre[8];
			snprintf(pre, sizeof(pre), "%.2s%.2s", prefix, name);
			rc = walk_dir(w, p, level + 1, pre);
		} else if (level == 2 && (kind = name_kind(name, prefix)) != UDR__K_NONE) {
			udr_hash h;
			udr__loc l;
			char hex[UDR_HASH_HEXSIZE + 1];
			memcpy(hex, name, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = '\0';
			udr_hash_fromhex(&h, hex);
			memset(&l, 0, sizeof(l));
			l.kind = kind;
			l.path = p;
			if (UDR_IO->stat(p, &l.st) < 0)
				memset(&l.st, 0, sizeof(l.st));
			if (w->all || (rc = first_copy(w, &h, &l)) == 1)
				rc = w->visit(&h, &l, w->payload);
		} else if (w->stray) {
			rc = w->stray(p, w->payload);
		}
		free(p);
	}
	closedir(d);
	return rc;
}

int udr__obj_foreach(udr_store *s, bool all_copies, udr__obj_visit visit, udr__stray_visit stray, void *payload)
{
	struct walk w = {s, all_copies, visit, stray, payload};
	int rc;
	if (s->packs) {
		udr__packset *ps = s->packs;
		udr__pack **v;
		size_t n;
		if ((rc = udr__packset_scan(s)) < 0)
			return rc;
		/* the packs listed now, held: a scan in another thread may retire
		 * one while its index is walked here */
		pthread_mutex_lock(&ps->mu);
		n = ps->n;
		if (!(v = malloc((n ? n : 1) * sizeof(*v)))) {
			pthread_mutex_unlock(&ps->mu);
			return udr__error_oom();
		}
		for (size_t i = 0; i < n; i++) {
			v[i] = ps->v[i];
			v[i]->holds++;
		}
		pthread_mutex_unlock(&ps->mu);
		rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			udr__pack *p = v[i];
			bool skip;
			/* gone is written by scans in other threads: read under the
			 * mutex (the held index itself stays as it is) */
			pthread_mutex_lock(&ps->mu);
			skip = p->gone || p->broken;
			pthread_mutex_unlock(&ps->mu);
			if (skip)
				continue;
			for (uint64_t k = 0; k < p->idx.n; k++) {
				udr__pack_entry e;
				udr__loc l;
				memset(&l, 0, sizeof(l));
				udr__idx_record(&e, &p->idx, k);
				l.kind = e.kind >= 1 && e.kind <= 4 ? (enum udr__kind)e.kind : UDR__K_RAW;
				l.pack = p;
				l.offset = e.offset;
				l.length = e.length;
				if (!all_copies && (rc = first_copy(&w, &e.hash, &l)) != 1) {
					if (rc < 0)
						break;
					rc = 0;
					continue;
				}
				if ((rc = visit(&e.hash, &l, payload)) != 0)
					break;
			}
		}
		for (size_t i = 0; i < n; i++)
			udr__pack_unhold(ps, v[i]);
		free(v);
		if (rc != 0)
			return rc;
	}
	return walk_dir(&w, s->path, 0, "");
}
