/*
 * store.c - the content-addressed chunk store: open and config, the public
 * put/get/exists API over the object kinds (object.c) and the put engine
 * (ingest.c), walking, fsck and stats.  Reads never lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "util/util.h"
#include "store/store_internal.h"
#include "store/pack.h"
#include "gc/collect.h"
#include "store/gcfence.h"

/* Defaults, chosen by measurement (docs/ARCHITECTURE.md, "Chunking"). */
#define DEF_MIN ((uint32_t)32 << 10)
#define DEF_AVG ((uint32_t)128 << 10)
#define DEF_MAX ((uint32_t)512 << 10)
#define DEF_LEVEL 3
#define DEF_DEPTH 50
#define PACK_TARGET ((uint64_t)32 << 20)
#define PACK_MAX ((uint64_t)64 << 20)

int udr__ingest(udr_hash *out, udr_store *s, int fd, const void *mem, size_t memlen, const udr_put_options *o,
                uint64_t *repaired);

static int resolve_config(udr_store_config *c, const udr_store_config *in)
{
	udr_store_config def = UDR_STORE_CONFIG_INIT;
	udr__cdc probe;
	*c = in ? *in : def;
	if (c->version != UDR_STORE_CONFIG_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown store config version %u", c->version);
	if (c->format < 1 || c->format > 3)
		return udr__error_set(UDR_EINVAL, "unknown store format %d (1, 2 or 3)", c->format);
	if (!c->chunk_avg)
		c->chunk_avg = DEF_AVG;
	if (!c->chunk_min)
		c->chunk_min = c->chunk_avg / 4 < DEF_MIN ? c->chunk_avg / 4 : DEF_MIN;
	if (!c->chunk_max)
		c->chunk_max = c->chunk_avg * 4;
	if (c->compression_level < -1)
		return udr__error_set(UDR_EINVAL, "invalid store settings: compression level %d (1..19; 0: none; -1: the "
		                      "default)", c->compression_level);
	if (c->compression_level == -1)
		c->compression_level = DEF_LEVEL;
	if (!c->delta_max_depth)
		c->delta_max_depth = DEF_DEPTH;
	if (c->compression_level > 19 || c->delta_max_depth < 1 || c->delta_max_depth > UDR__DELTA_DEPTH_HARD_MAX)
		return udr__error_set(UDR_EINVAL, "invalid store settings: compression level %d (0..19), delta depth %d "
		                      "(1..%d)", c->compression_level, c->delta_max_depth, UDR__DELTA_DEPTH_HARD_MAX);
	if (c->format >= 2 && (c->chunk_max > UDR__PIECE_HARD_MAX ||
	                       udr__cdc_init(&probe, c->chunk_min, c->chunk_avg, c->chunk_max) < 0))
		return udr__error_set(UDR_EINVAL,
		                      "invalid chunk sizes min %u avg %u max %u%s: need 64 <= min <= avg <= max <= 64 MiB, "
		                      "avg a power of two", c->chunk_min, c->chunk_avg, c->chunk_max,
		                      in && (!in->chunk_min || !in->chunk_max)
		                          ? " (min, max not given: avg / 4 up to 32K, avg x 4)"
		                          : "");
	return 0;
}

static int write_config_mode(const char *path, const char *tmpdir, const udr_store_config *c,
                             enum udr__publish_mode mode);

static int write_config(const char *path, const char *tmpdir, const udr_store_config *c)
{
	return write_config_mode(path, tmpdir, c, UDR__PUBLISH_NEW);
}

static int write_config_mode(const char *path, const char *tmpdir, const udr_store_config *c,
                             enum udr__publish_mode mode)
{
	char *cfg = udr__path_join(path, "config.json");
	char text[512];
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	if (c->format == 1)
		snprintf(text, sizeof(text),
		         "{\"format\":1,\"kind\":\"udr-chunk-store\",\"layout\":\"fanout-2-2\",\"sealed\":true}");
	else
		snprintf(text, sizeof(text),
		         "{\"format\":%d,\"kind\":\"udr-chunk-store\",\"layout\":\"fanout-2-2\","
		         "\"chunking\":{\"algorithm\":\"fastcdc-2020\",\"min\":%u,\"avg\":%u,\"max\":%u},"
		         "\"compression\":{\"algorithm\":\"zstd\",\"level\":%d},"
		         "\"delta\":{\"max_depth\":%d}%s,\"sealed\":true}",
		         c->format, c->chunk_min, c->chunk_avg, c->chunk_max, c->compression_level, c->delta_max_depth,
		         c->format >= 3 ? ",\"packs\":{\"target\":33554432,\"max\":67108864}" : "");
	rc = udr__config_write(tmpdir, cfg, text, mode);
	free(cfg);
	return rc < 0 ? rc : 0;
}

/* ---- upgrade to format 3: loose objects into packs ---------------------------- */

struct upg_w {
	udr__packw *w;
	char **pending; /* loose files whose entries are in w's unpublished pack */
	size_t n, cap;
	uint64_t published;
};

struct upg {
	udr_store *s;
	struct upg_w data, meta;
	udr__bcache *cache; /* decoded delta bases, shared by the whole walk */
	uint64_t packed, kept;
	const udr_upgrade_options *o; /* progress (may be NULL) */
	uint64_t done, total;         /* bytes of loose objects walked, to walk */
};

/* Remove loose files pending[from..to): their copies are durable in packs.
 * Under packs/lock (and the GC fence, held by pack_loose): a change to the
 * set of copies, like a repack's (GC.md, Prerequisite 6). */
static int upg_unlink(udr_store *s, struct upg_w *u, size_t from, size_t to)
{
	int rc = 0, fd = -1;
	if (from < to && (rc = udr__packs_lock(&fd, s, true)) < 0)
		fd = -1;
	udr__test_pause("upgrade-unlink");
	for (size_t i = from; i < to; i++) {
		if (rc == 0 && UDR_IO->unlink(u->pending[i]) < 0 && errno != ENOENT)
			rc = udr__error_io(errno, "cannot remove %s (now packed)", u->pending[i]);
		free(u->pending[i]);
	}
	if (fd >= 0)
		UDR_IO->close(fd);
	return rc;
}

static int upg_add(struct upg *g, struct upg_w *u, const udr_hash *h, enum udr__kind kind, uint64_t raw_size,
                   const unsigned char *payload, size_t len, const char *path)
{
	int rc;
	char *p;
	if (u->n == u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 256;
		char **q = realloc(u->pending, nc * sizeof(*q));
		if (!q)
			return udr__error_oom();
		u->pending = q;
		u->cap = nc;
	}
	if (!(p = strdup(path)))
		return udr__error_oom();
	if ((rc = udr__packw_append(u->w, h, (int)kind, raw_size, payload, (uint32_t)len)) < 0) {
		free(p);
		return rc;
	}
	g->packed++;
	if (udr__packw_published(u->w) != u->published) {
		/* the pack holding every earlier entry is durable: their loose
		 * files go; this entry went into the next pack */
		u->published = udr__packw_published(u->w);
		if ((rc = upg_unlink(g->s, u, 0, u->n)) < 0) {
			u->n = 0;
			free(p);
			return rc;
		}
		u->n = 0;
	}
	u->pending[u->n++] = p;
	return 0;
}

static bool is_parquet(const unsigned char *d, size_t n)
{
	return n >= 8 && memcmp(d, "PAR1", 4) == 0 && memcmp(d + n - 4, "PAR1", 4) == 0;
}

static int upg_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct upg *g = payload;
	char hex[UDR_HASH_HEXSIZE + 1];
	unsigned char *d = NULL, *dec = NULL;
	size_t dl = 0, decl = 0;
	uint64_t raw_size;
	int rc;
	if (l->pack)
		return 0;
	g->done += (uint64_t)l->st.st_size;
	if (g->o && g->o->progress)
		g->o->progress(g->done < g->total ? g->done : g->total, g->total, g->o->progress_payload);
	udr_hash_tohex(hex, h);
	if ((uint64_t)l->st.st_size > UDR__PIECE_HARD_MAX + 4096) {
		g->kept++;
		return 0;
	}
	if ((rc = udr__read_file((char **)&d, &dl, l->path, UDR__PIECE_HARD_MAX + 4096)) < 0)
		return rc;
	/* only intact objects are packed; damaged ones stay for fsck to report */
	if (l->kind == UDR__K_MANIFEST) {
		udr__manifest m;
		if (udr__manifest_parse(&m, d, dl, h, hex) < 0) {
			udr_error_clear();
			g->kept++;
			free(d);
			return 0;
		}
		raw_size = m.total;
		udr__manifest_free(&m);
		rc = upg_add(g, &g->meta, h, l->kind, raw_size, d, dl, l->path);
		free(d);
		return rc;
	}
	if (l->kind == UDR__K_RAW) {
		udr_hash a;
		udr_hash_buf(&a, d, dl);
		if (!udr_hash_equal(&a, h) || is_parquet(d, dl) || dl > UDR__PIECE_HARD_MAX) {
			/* Parquet parts stay loose: DuckDB reads them in place */
			g->kept++;
			free(d);
			return 0;
		}
		raw_size = dl;
	} else {
		/* a compressed or delta piece decodes, verified, through the reader
		 * (this loose file is its only copy: packed ones are looked up first
		 * and the loose copy is removed once packed) */
		udr__bcache_budget(g->cache, udr__decode_budget(g->s, 0));
		if (udr__piece_load_c(&dec, &decl, NULL, g->s, h, UINT64_MAX, true, g->cache) < 0) {
			udr_error_clear();
			g->kept++;
			free(d);
			return 0;
		}
		raw_size = decl;
		free(dec);
	}
	rc = upg_add(g, &g->data, h, l->kind, raw_size, d, dl, l->path);
	free(d);
	return rc;
}

static int upg_count(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct upg *g = payload;
	(void)h;
	if (!l->pack)
		g->total += (uint64_t)l->st.st_size;
	return 0;
}

/* Pack the loose objects of format-3 store s in batches: each batch's pack is
 * durable before the loose files it replaces are removed (resumable: a
 * rerun packs what is still loose). */
static int pack_loose(udr_store *s, const udr_upgrade_options *o, udr_upgrade_report *rep)
{
	struct upg g;
	int rc;
	memset(&g, 0, sizeof(g));
	g.s = s;
	g.o = o;
	/* the bytes to walk, for progress: one pass over the directories */
	if (o && o->progress) {
		if ((rc = udr__obj_foreach(s, false, upg_count, NULL, &g)) < 0)
			return rc;
		o->progress(0, g.total, o->progress_payload);
	}
	if (!(g.cache = udr__bcache_new(UDR__BCACHE_MAX, 0)))
		return UDR_ENOMEM;
	if ((rc = udr__packw_new(&g.data.w, s, UDR__PACK_CLASS_DATA)) < 0 ||
	    (rc = udr__packw_new(&g.meta.w, s, UDR__PACK_CLASS_META)) < 0)
		goto done;
	rc = udr__obj_foreach(s, true, upg_visit, NULL, &g);
	if (rc == 0 && (rc = udr__packw_flush(g.data.w)) == 0)
		rc = upg_unlink(s, &g.data, 0, g.data.n);
	else
		upg_unlink(s, &g.data, g.data.n, g.data.n);
	g.data.n = 0;
	if (rc == 0 && (rc = udr__packw_flush(g.meta.w)) == 0)
		rc = upg_unlink(s, &g.meta, 0, g.meta.n);
	g.meta.n = 0;
	if (rc == 0 && (rc = udr__pack_repack(s, UDR__PACK_CLASS_DATA)) == 0)
		rc = udr__pack_repack(s, UDR__PACK_CLASS_META);
	/* an upgraded store starts with a multi-pack index over all its packs */
	if (rc == 0)
		rc = udr__midx_update(s, true, true);
	if (rc == 0 && o && o->progress)
		o->progress(g.total, g.total, o->progress_payload);
	if (rep) {
		rep->packed = g.packed;
		rep->kept = g.kept;
		rep->bytes = g.done;
	}
done:
	for (size_t i = 0; i < g.data.n; i++)
		free(g.data.pending[i]);
	for (size_t i = 0; i < g.meta.n; i++)
		free(g.meta.pending[i]);
	free(g.data.pending);
	free(g.meta.pending);
	udr__packw_free(g.data.w);
	udr__packw_free(g.meta.w);
	udr__bcache_free(g.cache);
	return rc;
}

int udr_store_upgrade(const char *path, const udr_store_config *cfgin)
{
	return udr_store_upgrade_ext(path, cfgin, NULL, NULL);
}

int udr_store_upgrade_ext(const char *path, const udr_store_config *cfgin, const udr_upgrade_options *o,
                          udr_upgrade_report *rep)
{
	udr_store_config cfg;
	udr_store *s = NULL;
	int target = cfgin ? cfgin->format : 3, rc;
	if (rep)
		memset(rep, 0, sizeof(*rep));
	if (target != 2 && target != 3)
		return udr__error_set(UDR_EINVAL, "a chunk store can only be upgraded to format 2 or 3");
	if ((rc = resolve_config(&cfg, cfgin)) < 0)
		return rc;
	cfg.format = target;
	if ((rc = udr_store_open(&s, path, 0)) < 0)
		return rc;
	if (s->format >= 2 && cfgin) {
		rc = udr__error_set(UDR_EINVAL, "chunk store %s is already format %d: its settings are fixed at creation",
		                    path, s->format);
		goto done;
	}
	if (s->format > target)
		goto done;
	if (s->format >= 2) /* the settings stay: only the format changes */
		udr_store_get_config(&cfg, s), cfg.format = target;
	if (s->format < target) {
		/* the config first (rename: readers see the old or the new one);
		 * from then on new objects go into packs */
		if ((rc = write_config_mode(s->path, s->tmpdir, &cfg, UDR__PUBLISH_REPLACE)) < 0)
			goto done;
		udr_store_close(s);
		s = NULL;
		if ((rc = udr_store_open(&s, path, 0)) < 0)
			goto done;
	}
	if (s->format >= 3) {
		/* the packing is a put (GC.md 4.3): it holds the fence throughout */
		udr__gc_hold h = UDR__GC_HOLD_INIT;
		/* and waits for a run sweeping the store: the run does not
		 * expect its loose files packed and unlinked under it (a
		 * format-2 run takes no packs/lock), review R6 */
		if ((rc = udr__gc_hold_begin(&h, s)) == 0 && (rc = udr__gc_sweep_wait(s)) == 0)
			rc = pack_loose(s, o, rep);
		udr__gc_hold_end(&h);
	}
done:
	udr_store_close(s);
	return rc;
}

int udr__check_config(const char *dir, const char *kind, int max_format)
{
	char *cfg = udr__path_join(dir, "config.json");
	char *text = NULL;
	json_t *root;
	const char *found;
	json_error_t jerr;
	size_t len;
	int rc, sealed;
	if (!cfg)
		return UDR_ENOMEM;
	rc = udr__read_file(&text, &len, cfg, 1 << 16);
	if (rc < 0) {
		if (rc == UDR_ENOTFOUND)
			udr__error_set(UDR_ENOTFOUND, "not a %s: %s is missing", kind, cfg);
		free(cfg);
		return rc;
	}
	/* configs written since format-2 records are sealed; an unsealed one
	 * is an older config, unless it says it was sealed */
	if ((sealed = udr__unseal(text, len, cfg, "config")) < 0) {
		free(text);
		free(cfg);
		return sealed;
	}
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root && !sealed && json_object_get(root, "sealed")) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: its check is missing or damaged", cfg);
	} else if ((found = json_string_value(json_object_get(root, "kind"))) && strcmp(found, kind) != 0 &&
	           (strcmp(found, "udr-store") == 0 || strcmp(found, "udr-chunk-store") == 0 ||
	            strcmp(found, "udr-catalog") == 0)) {
		/* another part of a store (--store DIR/chunks): not damage */
		rc = udr__error_set(UDR_EINVAL, "%s is not a %s but a %s: give %s", dir, kind, found,
		                    strcmp(kind, "udr-store") == 0 ? "the store's root (which holds chunks/ and catalog/)"
		                    : strcmp(kind, "udr-catalog") == 0 ? "the store's catalog/ directory"
		                                                        : "the store's chunks/ directory");
	} else if (!root || !json_is_object(root) || !json_is_integer(json_object_get(root, "format")) ||
	    !json_is_string(json_object_get(root, "kind")) ||
	    strcmp(json_string_value(json_object_get(root, "kind")), kind) != 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: not a %s config", cfg, kind);
	} else if (json_integer_value(json_object_get(root, "format")) < 1 ||
	           json_integer_value(json_object_get(root, "format")) > max_format) {
		rc = udr__error_set(UDR_ECORRUPT, "%s: format %lld is not supported by this udr (max %d)", cfg,
		                    (long long)json_integer_value(json_object_get(root, "format")), max_format);
	} else {
		rc = (int)json_integer_value(json_object_get(root, "format"));
	}
	json_decref(root);
	free(cfg);
	return rc;
}

/* The optional gc block of config root (any format): the grace of
 * uncommitted puts (docs/GC.md 4.3). */
static int load_gc(udr_store *s, json_t *root, const char *cfg)
{
	json_t *gc = json_object_get(root, "gc"), *g = json_object_get(gc, "grace_ms");
	if (gc && (!json_is_object(gc) || (g && (!json_is_integer(g) || json_integer_value(g) < 0))))
		return udr__error_set(UDR_ECORRUPT, "corrupt config %s: gc.grace_ms is not a non-negative integer", cfg);
	if (g)
		s->gc_grace_ms = (int64_t)json_integer_value(g);
	return 0;
}

/* Read the store's settings from its config (format already checked). */
static int load_settings(udr_store *s, int format)
{
	char *cfg = udr__path_join(s->path, "config.json"), *text = NULL;
	json_t *root = NULL, *ch, *co, *de;
	udr_store_config c = UDR_STORE_CONFIG_INIT;
	int rc;
	if (!cfg)
		return UDR_ENOMEM;
	s->format = format;
	s->gc_grace_ms = UDR__GC_GRACE_MS_DEFAULT;
	if ((rc = udr__read_file(&text, NULL, cfg, 1 << 16)) < 0)
		goto done;
	root = json_loads(text, 0, NULL);
	if (format == 1) {
		rc = load_gc(s, root, cfg);
		goto done;
	}
	ch = json_object_get(root, "chunking");
	co = json_object_get(root, "compression");
	de = json_object_get(root, "delta");
	if (!json_is_integer(json_object_get(ch, "min")) || !json_is_integer(json_object_get(ch, "avg")) ||
	    !json_is_integer(json_object_get(ch, "max")) || !json_is_integer(json_object_get(co, "level")) ||
	    !json_is_integer(json_object_get(de, "max_depth"))) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: settings missing", cfg);
		goto done;
	}
	c.chunk_min = (uint32_t)json_integer_value(json_object_get(ch, "min"));
	c.chunk_avg = (uint32_t)json_integer_value(json_object_get(ch, "avg"));
	c.chunk_max = (uint32_t)json_integer_value(json_object_get(ch, "max"));
	c.compression_level = (int)json_integer_value(json_object_get(co, "level"));
	c.delta_max_depth = (int)json_integer_value(json_object_get(de, "max_depth"));
	c.format = format;
	if ((rc = resolve_config(&c, &c)) < 0) {
		rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: %s", cfg, udr_error_last()->message);
		goto done;
	}
	if (format >= 3) {
		json_t *pk = json_object_get(root, "packs");
		json_t *t = json_object_get(pk, "target"), *mx = json_object_get(pk, "max");
		if (!json_is_integer(t) || !json_is_integer(mx) || json_integer_value(t) < 4096 ||
		    json_integer_value(mx) < json_integer_value(t) || json_integer_value(mx) > ((json_int_t)1 << 32)) {
			rc = udr__error_set(UDR_ECORRUPT, "corrupt config %s: pack sizes missing or invalid", cfg);
			goto done;
		}
		s->pack_target = (uint64_t)json_integer_value(t);
		s->pack_max = (uint64_t)json_integer_value(mx);
	}
	if ((rc = load_gc(s, root, cfg)) < 0)
		goto done;
	udr__cdc_init(&s->cdc, c.chunk_min, c.chunk_avg, c.chunk_max);
	s->threshold = c.chunk_max;
	s->level = c.compression_level;
	s->max_depth = c.delta_max_depth;
	rc = 0;
done:
	json_decref(root);
	free(text);
	free(cfg);
	return rc;
}

/* Format 3: packs/ exists (made durable when created) and the pack set. */
static int open_packs(udr_store *s)
{
	char *dir = udr__path_join(s->path, "packs");
	bool created = false;
	int rc;
	if (!dir)
		return UDR_ENOMEM;
	rc = udr__mkdir(dir, &created);
	if (rc == 0 && created)
		rc = udr__fsync_dir(s->path);
	free(dir);
	if (rc < 0)
		return rc;
	if (!(s->packs = malloc(sizeof(*s->packs))))
		return udr__error_oom();
	udr__packset_init(s->packs);
#ifdef UDR_FAULT_INJECTION
	{
		/* tests only: a multi-pack index after fewer new packs */
		const char *env = getenv("UDR_MIDX_THRESHOLD");
		if (env && atoi(env) > 0)
			udr__midx_threshold = (unsigned)atoi(env);
		/* tests only: a pack without an index is read at once */
		if ((env = getenv("UDR_ORPHAN_PACK_AGE")) != NULL && atoi(env) >= 0)
			udr__orphan_age = (unsigned)atoi(env);
	}
#endif
	return 0;
}

int udr_store_open_ext(udr_store **out, const char *path, unsigned int flags, const udr_store_config *cfgin)
{
	udr_store *s;
	udr_store_config cfg = UDR_STORE_CONFIG_INIT;
	struct stat st;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty chunk store path");
	*out = NULL;
	if ((flags & UDR_OPEN_CREATE) && (rc = resolve_config(&cfg, cfgin)) < 0)
		return rc;
	if (!(s = calloc(1, sizeof(*s))) || !(s->path = strdup(path))) {
		free(s);
		return udr__error_oom();
	}
	udr__gcwatch_init(&s->gcw);
	s->gc_grace_ms = UDR__GC_GRACE_MS_DEFAULT;
	s->pathlen = strlen(s->path);
	while (s->pathlen > 1 && s->path[s->pathlen - 1] == '/')
		s->path[--s->pathlen] = '\0';
	{
		const char *env = getenv("UDR_THREADS");
		long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
		s->threads = n < 1 ? 1 : n > 16 ? 16 : (int)n;
	}
	if (!(s->tmpdir = udr__path_join(s->path, "tmp"))) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if (UDR_IO->stat(s->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!(flags & UDR_OPEN_CREATE)) {
			rc = udr__error_set(UDR_ENOTFOUND, "not a chunk store: %s does not exist", s->path);
			goto fail;
		}
		if ((rc = udr__mkdirs(s->path)) < 0)
			goto fail;
	}
	rc = udr__check_config(s->path, "udr-chunk-store", UDR__STORE_FORMAT_MAX);
	if (rc == UDR_ENOTFOUND && (flags & UDR_OPEN_CREATE)) {
		udr_error_clear();
		if ((rc = udr__mkdir(s->tmpdir, NULL)) < 0 || (rc = write_config(s->path, s->tmpdir, &cfg)) < 0 ||
		    (rc = udr__fsync_parent(s->path)) < 0)
			goto fail;
		rc = udr__check_config(s->path, "udr-chunk-store", UDR__STORE_FORMAT_MAX);
	}
	if (rc < 0)
		goto fail;
	if ((rc = load_settings(s, rc)) < 0 || (rc = udr__mkdir(s->tmpdir, NULL)) < 0)
		goto fail;
	if (s->format >= 3 && (rc = open_packs(s)) < 0)
		goto fail;
	s->fanout_known = calloc(65536 / 8, 1); /* a cache: NULL only costs mkdirs */
	*out = s;
	return 0;
fail:
	udr_store_close(s);
	return rc;
}

int udr_store_open(udr_store **out, const char *path, unsigned int flags)
{
	return udr_store_open_ext(out, path, flags, NULL);
}

void udr_store_get_config(udr_store_config *out, const udr_store *s)
{
	udr_store_config def = UDR_STORE_CONFIG_INIT;
	*out = def;
	out->format = s->format;
	if (s->format >= 2) {
		out->chunk_min = (uint32_t)s->cdc.min;
		out->chunk_avg = (uint32_t)s->cdc.avg;
		out->chunk_max = (uint32_t)s->cdc.max;
		out->compression_level = s->level;
		out->delta_max_depth = s->max_depth;
	} else {
		out->compression_level = 0;
		out->delta_max_depth = 1;
	}
}

void udr_store_close(udr_store *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->tmpdir);
	free(s->fanout_known);
	udr__gcwatch_destroy(&s->gcw);
	udr__bcache_free(udr__bcache_take(s));
	if (s->packs) {
		udr__packset_free(s->packs);
		free(s->packs);
	}
	free(s);
}

const char *udr_store_path(const udr_store *s)
{
	return s ? s->path : NULL;
}

const char *udr__store_tmpdir(const udr_store *s)
{
	return s->tmpdir;
}

static int hexdigit(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

int udr__store_fanout(const udr_store *s, const char *final, bool sync)
{
	char dir[4096];
	size_t n = s->pathlen + 3;
	const char *hx = final + s->pathlen + 1; /* "ab/cd/..." */
	unsigned idx = (unsigned)(hexdigit(hx[0]) << 12 | hexdigit(hx[1]) << 8 | hexdigit(hx[3]) << 4 | hexdigit(hx[4]));
	bool created, made = false;
	int rc;
	if (s->fanout_known && (__atomic_load_n(&s->fanout_known[idx >> 3], __ATOMIC_ACQUIRE) & (1u << (idx & 7))))
		return 0;
	if (s->pathlen + 7 >= sizeof(dir))
		return udr__error_set(UDR_EINVAL, "chunk store path too long: %s", s->path);
	memcpy(dir, final, n);
	dir[n] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	made |= created;
	udr__loose_dir_known(s, (unsigned)(idx >> 8));
	if (created && sync && (rc = udr__fsync_dir(s->path)) < 0)
		return rc;
	memcpy(dir, final, n + 3);
	dir[n + 3] = '\0';
	if ((rc = udr__mkdir(dir, &created)) < 0)
		return rc;
	made |= created;
	if (created && sync) {
		dir[n] = '\0';
		if ((rc = udr__fsync_dir(dir)) < 0)
			return rc;
	}
	/* Only directories made durable (or found existing) are remembered; one
	 * created unsynced waits for the caller's syncfs. */
	if (s->fanout_known && (sync || !made))
		__atomic_fetch_or(&s->fanout_known[idx >> 3], (unsigned char)(1u << (idx & 7)), __ATOMIC_RELEASE);
	return 0;
}

int udr_store_put(udr_hash *out, udr_store *s, const void *data, size_t len)
{
	if (!out || !s || (!data && len))
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put");
	return udr__ingest(out, s, -1, data ? data : "", len, NULL, NULL);
}

static int put_fd(udr_hash *out, udr_store *s, int fd, const udr_put_options *o, uint64_t *repaired)
{
	if (!out || !s || fd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_put_fd");
	if (o && o->version != UDR_PUT_OPTIONS_VERSION)
		return udr__error_set(UDR_EINVAL, "unknown put options version %u", o->version);
	if (o && (o->flags & ~UDR_PUT_WHOLE))
		return udr__error_set(UDR_EINVAL, "unknown put flags 0x%x", o->flags & ~UDR_PUT_WHOLE);
	return udr__ingest(out, s, fd, NULL, 0, o, repaired);
}

int udr_store_put_fd_ext(udr_hash *out, udr_store *s, int fd, const udr_put_options *o)
{
	return put_fd(out, s, fd, o, NULL);
}

int udr_store_put_fd(udr_hash *out, udr_store *s, int fd)
{
	return udr_store_put_fd_ext(out, s, fd, NULL);
}

static int put_file(udr_hash *out, udr_store *s, const char *path, const udr_put_options *o, uint64_t *repaired)
{
	struct stat st;
	int fd, rc;
	if (!path)
		return udr__error_set(UDR_EINVAL, "invalid argument: input path is NULL");
	fd = UDR_IO->open(path, O_RDONLY, 0);
	if (fd < 0)
		return udr__error_os(errno, "cannot open input file %s", path);
	if (UDR_IO->fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		UDR_IO->close(fd);
		return udr__error_set(UDR_EINVAL, "input %s is a directory", path);
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = put_fd(out, s, fd, o, repaired);
	UDR_IO->close(fd);
	return rc;
}

int udr_store_put_file_ext(udr_hash *out, udr_store *s, const char *path, const udr_put_options *o)
{
	return put_file(out, s, path, o, NULL);
}

int udr_store_repair_file(udr_hash *out, uint64_t *repaired, udr_store *s, const char *path)
{
	uint64_t n = 0;
	int rc = put_file(out, s, path, NULL, &n);
	if (repaired)
		*repaired = n;
	return rc;
}

int udr_store_put_file(udr_hash *out, udr_store *s, const char *path)
{
	return udr_store_put_file_ext(out, s, path, NULL);
}

/* ---- reads ---------------------------------------------------------------- */

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static int mem_sink(const void *d, size_t n, void *payload)
{
	struct membuf *m = payload;
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		unsigned char *q;
		while (cap < m->len + n)
			cap *= 2;
		if (!(q = realloc(m->p, cap)))
			return udr__error_oom();
		m->p = q;
		m->cap = cap;
	}
	memcpy(m->p + m->len, d, n);
	m->len += n;
	return 0;
}

/* Reads verify: every piece is rehashed before it is used, and the whole
 * content at the end; nothing is returned for damaged content. */
static int get_impl(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	struct membuf m = {NULL, 0, 0};
	enum udr__kind kind;
	uint64_t size;
	int rc;
	if (!out || !out_len || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: output, store or hash is NULL");
	if ((rc = udr__obj_exists(&kind, s, h, true)) < 0)
		return rc;
	if (kind == UDR__K_RAW) {
		/* one read into the buffer returned, then the hash */
		unsigned char *d = NULL;
		size_t dl = 0;
		if ((rc = udr__raw_load(&d, &dl, s, h, SIZE_MAX / 2, true)) < 0)
			return rc;
		*out = d;
		*out_len = dl;
		return 0;
	}
	if ((rc = udr__content_size(&size, s, h)) < 0)
		return rc;
	if (size >= SIZE_MAX / 2)
		return udr__error_oom();
	/* the size comes from a header: grow towards it, never trust it for one
	 * big allocation */
	m.cap = (size_t)(size < ((uint64_t)64 << 20) ? size : ((uint64_t)64 << 20)) + 1;
	if (!(m.p = malloc(m.cap)))
		return udr__error_oom();
	rc = udr__content_stream(s, h, true, mem_sink, &m);
	if (rc == 0 && m.len != size) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		rc = udr__error_set(UDR_ECORRUPT, "chunk %s: decoded %zu bytes, expected %llu", hex, m.len,
		                    (unsigned long long)size);
	}
	if (rc < 0) {
		free(m.p);
		return rc;
	}
	*out = m.p;
	*out_len = m.len;
	return 0;
}

int udr_store_get(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h);
}

int udr_store_get_verified(void **out, size_t *out_len, udr_store *s, const udr_hash *h)
{
	return get_impl(out, out_len, s, h);
}

static int count_sink(const void *d, size_t n, void *payload);

int udr_store_verify(udr_store *s, const udr_hash *h)
{
	uint64_t n = 0;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	return udr__content_stream(s, h, true, count_sink, &n);
}

static int fd_sink(const void *d, size_t n, void *payload)
{
	return udr__write_all(*(int *)payload, d, n, "output");
}

int udr_store_get_fd(udr_store *s, const udr_hash *h, int outfd, unsigned int flags)
{
	if (!s || !h || outfd < 0)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_get_fd");
	if ((flags & UDR_GET_VERIFY) && (flags & UDR_GET_NOVERIFY))
		return udr__error_set(UDR_EINVAL, "invalid argument: UDR_GET_VERIFY and UDR_GET_NOVERIFY together");
	return udr__content_stream(s, h, (flags & UDR_GET_NOVERIFY) == 0, fd_sink, &outfd);
}

int udr_store_get_file(udr_store *s, const udr_hash *h, const char *path, unsigned int flags)
{
	char *tmp;
	size_t n;
	int fd, rc;
	if (!s || !h || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_get_file");
	if ((rc = udr_store_exists(s, h)) <= 0) {
		if (rc == 0) {
			char hex[UDR_HASH_HEXSIZE + 1];
			udr_hash_tohex(hex, h);
			rc = udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
		}
		return rc;
	}
	{
		/* A device, pipe or socket (/dev/null, /dev/stdout, a fifo) is
		 * written in place: renaming over it would replace the node. */
		struct stat st;
		if (UDR_IO->stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (S_ISDIR(st.st_mode))
				return udr__error_set(UDR_EINVAL, "output %s is a directory", path);
			if ((fd = UDR_IO->open(path, O_WRONLY, 0)) < 0)
				return udr__error_io(errno, "cannot open output %s", path);
			rc = udr_store_get_fd(s, h, fd, flags);
			if (UDR_IO->close(fd) < 0 && rc == 0)
				rc = udr__error_io(errno, "close of %s failed", path);
			return rc;
		}
	}
	n = strlen(path) + 48;
	if (!(tmp = malloc(n)))
		return udr__error_oom();
	snprintf(tmp, n, "%s.udr-tmp-%ld-%lld", path, (long)getpid(), (long long)udr__now_ms());
	fd = UDR_IO->open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		rc = udr__error_io(errno, "cannot create output file %s", tmp);
		free(tmp);
		return rc;
	}
	rc = udr_store_get_fd(s, h, fd, flags);
	if (UDR_IO->close(fd) < 0 && rc == 0)
		rc = udr__error_io(errno, "close of %s failed", tmp);
	if (rc == 0 && UDR_IO->rename(tmp, path) < 0)
		rc = udr__error_io(errno, "cannot rename output file to %s", path);
	if (rc < 0)
		UDR_IO->unlink(tmp);
	free(tmp);
	return rc;
}

int udr_store_exists(udr_store *s, const udr_hash *h)
{
	enum udr__kind kind;
	if (!s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument: store or hash is NULL");
	return udr__obj_exists(&kind, s, h, true);
}

static int size_sink(const void *d, size_t n, void *payload)
{
	(void)d;
	*(uint64_t *)payload += n;
	return 0;
}

/*
 * A manifest's total is checked with the manifest (its trailer, the sum of
 * its pieces).  One piece's size comes from a zstd frame's header, a pack
 * entry's header (outside its CRC's check here) or a file's length, which
 * damage changes without failing anything (a review: 23016 for a 1000-byte
 * chunk, rc 0): the piece is decoded and rehashed, and its size is what it
 * decodes to (a piece stored whole may be large: callers that only size a
 * buffer or count take udr_store_size_recorded).
 */
int udr_store_size(uint64_t *out, udr_store *s, const udr_hash *h)
{
	enum udr__kind kind = UDR__K_NONE;
	uint64_t size = 0, got = 0;
	int rc;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_size");
	if ((rc = udr__content_size(&size, s, h)) < 0)
		return rc;
	if ((rc = udr__obj_exists(&kind, s, h, true)) < 0)
		return rc;
	if (rc == 1 && kind != UDR__K_MANIFEST) {
		/* the first intact copy's bytes: the header read above may be a
		 * damaged copy's while another copy is intact */
		if ((rc = udr__content_stream(s, h, true, size_sink, &got)) < 0)
			return rc;
		size = got;
	}
	*out = size;
	return 0;
}

int udr_store_size_recorded(uint64_t *out, udr_store *s, const udr_hash *h)
{
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_size_recorded");
	return udr__content_size(out, s, h);
}

int udr_store_local_path(char **out, udr_store *s, const udr_hash *h)
{
	udr__loc l;
	int rc;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_local_path");
	if ((rc = udr__obj_find(&l, s, h, 0, true)) < 0)
		return rc;
	if (l.kind == UDR__K_NONE) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	}
	/* only a loose raw file is the content itself (packed bytes are not) */
	if (l.kind != UDR__K_RAW || !l.path) {
		udr__loc_free(&l);
		return 1;
	}
	*out = l.path;
	return 0;
}

/* ---- walking ---------------------------------------------------------------- */

struct foreach_ctx {
	udr_store_foreach_cb cb;
	void *payload;
};

static int foreach_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct foreach_ctx *c = payload;
	(void)l;
	return c->cb(h, c->payload);
}

int udr_store_foreach(udr_store *s, udr_store_foreach_cb cb, void *payload)
{
	struct foreach_ctx c = {cb, payload};
	if (!s || !cb)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_foreach");
	return udr__obj_foreach(s, false, foreach_visit, NULL, &c);
}

int udr_store_debug_locate(char **out, udr_store *s, const udr_hash *h)
{
	udr__buf b = {NULL, 0, 0};
	int rc = 0;
	if (!out || !s || !h)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_debug_locate");
	*out = NULL;
	for (unsigned copy = 0; rc == 0; copy++) {
		udr__loc l;
		if ((rc = udr__obj_find(&l, s, h, copy, copy == 0)) < 0)
			break;
		if (l.kind == UDR__K_NONE)
			break;
		if (l.pack)
			rc = udr__buf_printf(&b, "pack %s/packs/%s.pack %llu %llu %d\n", s->path, l.pack->hex,
			                     (unsigned long long)l.offset,
			                     (unsigned long long)l.length + UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC,
			                     (int)l.kind);
		else
			rc = udr__buf_printf(&b, "loose %s %d\n", l.path, (int)l.kind);
		udr__loc_free(&l);
	}
	if (rc < 0) {
		udr__buf_free(&b);
		return rc;
	}
	if (!b.len) {
		char hex[UDR_HASH_HEXSIZE + 1];
		udr_hash_tohex(hex, h);
		udr__buf_free(&b);
		return udr__error_set(UDR_ENOTFOUND, "chunk %s not found", hex);
	}
	*out = b.ptr;
	return 0;
}

/* ---- fsck ----------------------------------------------------------------- */

struct fsck_ctx {
	udr_store *s;
	udr__bcache *cache; /* decoded delta bases, shared by the whole walk */
	udr_check_stats *stats;
	udr_problem_cb cb;
	void *payload;
	uint64_t *written; /* fsck --repair: indexes written (NULL: not counted) */
	udr__verified *verified; /* contents and pieces udr__verify_contents checked */
};

#define report(c, code, object, path, ...) \
	udr__problem((c)->stats, (c)->cb, (c)->payload, code, object, path, __VA_ARGS__)

static int count_sink(const void *d, size_t n, void *payload)
{
	(void)d;
	*(uint64_t *)payload += n;
	return 0;
}

static int fsck_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct fsck_ctx *c = payload;
	char hex[UDR_HASH_HEXSIZE + 1], where[4300];
	enum udr__kind kind = l->kind;
	uint64_t n = 0;
	int rc;
	udr_hash_tohex(hex, h);
	udr__loc_where(where, sizeof(where), l);
	c->stats->objects++;
	/* Every object decodes to bytes that hash to its name; for a manifest
	 * that covers each of its pieces and the whole content.  (Copies other
	 * than the first are checked byte by byte with their pack, below.) */
	if (!l->pack && (kind == UDR__K_RAW || kind == UDR__K_MANIFEST)) {
		udr__loc f;
		bool same;
		if ((rc = udr__obj_find(&f, c->s, h, 0, false)) < 0)
			return report(c, rc, hex, where, "%s", udr_error_last()->message);
		same = f.kind == kind || f.pack;
		udr__loc_free(&f);
		if (!same)
			return report(c, UDR_ECORRUPT, hex, where, "chunk %s is stored twice, in different forms", hex);
	}
	udr__bcache_budget(c->cache, udr__decode_budget(c->s, 0));
	if (udr__verified_has(c->verified, h)) {
		rc = 0; /* checked already, as a content or one of its pieces */
	} else if (kind == UDR__K_RAW || kind == UDR__K_MANIFEST) {
		rc = udr__content_stream_c(c->s, h, true, count_sink, &n, c->cache);
	} else {
		unsigned char *d = NULL;
		size_t dl;
		rc = udr__piece_load_c(&d, &dl, NULL, c->s, h, UINT64_MAX, true, c->cache);
		free(d);
	}
	if (rc == UDR_ENOMEM || rc == UDR_EIO)
		return report(c, rc, hex, where, "%s", udr_error_last()->message);
	if (rc < 0)
		return report(c, UDR_ECORRUPT, hex, where, "%s", udr_error_last()->message);
	/* the object's size on disk, as udr_store_stats counts stored_bytes
	 * (the bytes rehashed count a piece twice: alone and in its content) */
	c->stats->bytes += l->pack ? l->length : (uint64_t)l->st.st_size;
	return 0;
}

static int fsck_stray(const char *path, void *payload)
{
	struct fsck_ctx *c = payload;
	return report(c, UDR_ECORRUPT, path, path, "stray file in chunk store (not an object name)");
}

/* Map a whole file read-only (len 0: not mapped, *p NULL). */
static int map_file(unsigned char **p, size_t *len, const char *path)
{
	struct stat st;
	int fd = UDR_IO->open(path, O_RDONLY, 0);
	*p = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? UDR_ENOTFOUND : udr__error_io(errno, "cannot open %s", path);
	if (UDR_IO->fstat(fd, &st) < 0) {
		int rc = udr__error_io(errno, "cannot stat %s", path);
		UDR_IO->close(fd);
		return rc;
	}
	if (st.st_size > 0) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			int rc = udr__error_io(errno, "cannot map %s", path);
			UDR_IO->close(fd);
			return rc;
		}
		*p = m;
		*len = (size_t)st.st_size;
	}
	UDR_IO->close(fd);
	return 0;
}

/*
 * One pack and its index: the name is the hash of the bytes, every entry's
 * CRC holds, the index is intact and says what the pack's bytes say.  A pack
 * without index (a crash between the two names) gets its index, rebuilt from
 * its bytes: publishing it completes that pack's interrupted publication.  A
 * damaged index is rebuilt and reported.
 */
/*
 * Write the index of pack hex, rebuilt from its bytes, under packs/lock: a
 * repack removes a merged pack's index before its bytes, so an index written
 * in that window would outlive its pack (objects listed but missing).  Under
 * the lock the pack is still there (written) or gone (nothing to do).
 */
static int write_index(struct fsck_ctx *c, const char *hex, const char *pp, const char *ip, const unsigned char *want,
                       size_t wl, bool missing)
{
	struct stat st;
	int fd = -1, rc;
	if ((rc = udr__packs_lock(&fd, c->s, true)) < 0)
		return report(c, rc, hex, ip, "%s", udr_error_last()->message);
	if (UDR_IO->stat(pp, &st) < 0) {
		rc = errno == ENOENT ? 0 : report(c, udr__error_io(errno, "cannot stat %s", pp), hex, pp, "%s",
		                                  udr_error_last()->message);
	} else if ((rc = udr__write_file_atomic(c->s->tmpdir, ip, want, wl,
	                                        missing ? UDR__PUBLISH_NEW : UDR__PUBLISH_REPLACE, true)) < 0) {
		rc = report(c, rc, hex, ip, "%s", udr_error_last()->message);
	} else {
		rc = 0;
		if (c->written)
			(*c->written)++;
	}
	UDR_IO->close(fd);
	return rc;
}

static int fsck_pack(struct fsck_ctx *c, const char *dir, const char *hex)
{
	char pp[4200], ip[4200];
	unsigned char *pk = NULL, *ix = NULL, *want = NULL;
	size_t pl = 0, il = 0, wl = 0;
	udr_hash name, got;
	int rc;
	snprintf(pp, sizeof(pp), "%s/%s.pack", dir, hex);
	snprintf(ip, sizeof(ip), "%s/%s.idx", dir, hex);
	udr_hash_fromhex(&name, hex);
	/* a pack a gc run is deleting: gone already, its index must not come
	 * back; the next run removes it (docs/GC.md 5.2) */
	{
		bool gone;
		rc = udr__gc_plan_removes(&gone, c->s->path, hex);
		if (rc == UDR_ECORRUPT) {
			/* a damaged STATE names no plan: the pack is checked as
			 * readers see it (visible); the STATE is reported once, as
			 * a problem of its own (cmd_fsck, fsck --repair rebuilds it) */
			udr_error_clear();
			rc = 0;
			gone = false;
		}
		if (rc < 0)
			return report(c, rc, hex, pp, "%s", udr_error_last()->message);
		if (gone)
			return 0;
	}
	if ((rc = map_file(&pk, &pl, pp)) < 0) {
		if (rc == UDR_ENOTFOUND) {
			udr_error_clear();
			return report(c, UDR_ECORRUPT, hex, ip, "pack index without its pack %s.pack: the objects it "
			              "lists are missing", hex);
		}
		return report(c, rc, hex, pp, "%s", udr_error_last()->message);
	}
	udr_hash_buf(&got, pk, pl);
	if (!udr_hash_equal(&got, &name)) {
		rc = report(c, UDR_ECORRUPT, hex, pp, "pack %s is damaged: its bytes hash to something else", hex);
		/* which entries: each is checked on its own below */
	}
	if ((rc = udr__pack_reindex(&want, &wl, pk, pl, &name, pp)) < 0) {
		rc = report(c, UDR_ECORRUPT, hex, pp, "%s", udr_error_last()->message);
		goto done;
	}
	rc = map_file(&ix, &il, ip);
	if (rc == UDR_ENOTFOUND || (rc == 0 && (il != wl || memcmp(ix, want, wl) != 0))) {
		bool missing = rc == UDR_ENOTFOUND;
		udr__idx x;
		udr_error_clear();
		if (!udr_hash_equal(&got, &name))
			goto done; /* a damaged pack: never indexed anew */
		if (!missing && udr__idx_parse(&x, ix, il, true, ip) == 0) {
			/* intact but different: indexes differ only if this udr built it otherwise */
			rc = report(c, UDR_ECORRUPT, hex, ip, "pack index %s.idx does not match its pack", hex);
		} else if (!missing) {
			rc = report(c, UDR_ECORRUPT, hex, ip, "%s (rebuilt from the pack)", udr_error_last()->message);
		}
		udr_error_clear();
		rc = write_index(c, hex, pp, ip, want, wl, missing);
	} else if (rc < 0) {
		rc = report(c, rc, hex, ip, "%s", udr_error_last()->message);
	}
done:
	if (pk)
		munmap(pk, pl);
	if (ix)
		munmap(ix, il);
	free(want);
	return rc;
}

/*
 * The multi-pack index, after the packs' indexes are repaired: intact and
 * saying what the indexes of its packs say, or reported and rebuilt over the
 * packs there are.  A stale one (naming a pack a repack removed) is legal:
 * readers fall back to the packs' own indexes for what it names there.
 */
static int fsck_midx(struct fsck_ctx *c)
{
	char path[4200];
	bool stale = false;
	int rc = udr__midx_check(c->s, &stale);
	if (rc >= 0)
		return 0;
	snprintf(path, sizeof(path), "%s/packs/%s", c->s->path, UDR__MIDX_FILE);
	if (rc != UDR_ECORRUPT)
		return report(c, rc, path, path, "%s", udr_error_last()->message);
	rc = report(c, UDR_ECORRUPT, path, path, "%s (rebuilt from the pack indexes)", udr_error_last()->message);
	if (rc == 0 && udr__midx_update(c->s, true, true) < 0) {
		/* nothing written over it: it stays ignored by readers, as damaged */
		rc = report(c, UDR_EIO, path, path, "%s", udr_error_last()->message);
	}
	return rc;
}

static int fsck_packs(struct fsck_ctx *c)
{
	char *dir = udr__path_join(c->s->path, "packs");
	DIR *d;
	struct dirent *e;
	int rc = 0;
	if (!dir)
		return UDR_ENOMEM;
	if (!(d = opendir(dir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
		free(dir);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *nm = e->d_name;
		size_t n = strlen(nm);
		char hex[UDR_HASH_HEXSIZE + 1], p[4200];
		struct stat st;
		bool ok = n > UDR_HASH_HEXSIZE;
		if (nm[0] == '.' || strcmp(nm, "lock") == 0 || strcmp(nm, UDR__MIDX_FILE) == 0)
			continue;
		for (size_t i = 0; ok && i < UDR_HASH_HEXSIZE; i++)
			ok = (nm[i] >= '0' && nm[i] <= '9') || (nm[i] >= 'a' && nm[i] <= 'f');
		snprintf(p, sizeof(p), "%s/%s", dir, nm);
		if (ok && strcmp(nm + UDR_HASH_HEXSIZE, ".pack") == 0) {
			memcpy(hex, nm, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = '\0';
			rc = fsck_pack(c, dir, hex);
		} else if (ok && strcmp(nm + UDR_HASH_HEXSIZE, ".idx") == 0) {
			memcpy(hex, nm, UDR_HASH_HEXSIZE);
			hex[UDR_HASH_HEXSIZE] = '\0';
			snprintf(p, sizeof(p), "%s/%s.pack", dir, hex);
			if (UDR_IO->stat(p, &st) < 0 && errno == ENOENT)
				rc = report(c, UDR_ECORRUPT, hex, p, "pack index without its pack %s.pack: the objects it lists "
				            "are missing", hex);
		} else {
			rc = report(c, UDR_ECORRUPT, p, p, "stray file in chunk store (not a pack or pack index)");
		}
	}
	closedir(d);
	free(dir);
	if (rc == 0)
		rc = fsck_midx(c);
	return rc;
}

int udr_store_fsck(udr_check_stats *stats, udr_store *s, udr_problem_cb cb, void *payload)
{
	udr_check_stats local = {0, 0, 0, 0};
	struct fsck_ctx c;
	int rc;
	if (!s)
		return udr__error_set(UDR_EINVAL, "invalid argument: store is NULL");
	c.s = s;
	c.stats = stats ? stats : &local;
	memset(c.stats, 0, sizeof(*c.stats));
	c.cb = cb;
	c.payload = payload;
	c.written = NULL;
	c.verified = NULL;
	if ((rc = udr__tmp_clean(s->tmpdir, &c.stats->temp_removed)) < 0)
		return rc;
	if (!(c.cache = udr__bcache_new(UDR__BCACHE_MAX, 0)))
		return UDR_ENOMEM;
	if (s->packs && (rc = fsck_packs(&c)) < 0) {
		udr__bcache_free(c.cache);
		return rc;
	}
	/* the contents first, in delta order through one large cache; then
	 * every object, skipping what that pass checked (fsckwalk.c) */
	udr__bcache_free(c.cache);
	if ((rc = udr__verify_contents(&c.verified, &c.cache, s)) < 0) {
		/* (out of memory, or the listing failed) the walk checks all */
		udr_error_clear();
		if (!(c.cache = udr__bcache_new(UDR__BCACHE_MAX, 0)))
			return UDR_ENOMEM;
	}
	rc = udr__obj_foreach(s, false, fsck_visit, fsck_stray, &c);
	udr__verified_free(c.verified);
	udr__bcache_free(c.cache);
	if (rc < 0)
		return rc;
	if (c.stats->problems)
		return udr__error_set(UDR_ECORRUPT, "chunk store %s: %llu problem(s) found", s->path,
		                      (unsigned long long)c.stats->problems);
	return 0;
}

/* A problem of the repair's own pass over the packs: kept for the check
 * that follows (which reports it), never printed twice. */
static int repair_quiet(const udr_problem *p, void *payload)
{
	(void)p;
	(void)payload;
	return 0;
}

int udr__store_repair_packs(udr_store *s, uint64_t *indexes, uint64_t *rewritten, bool *midx)
{
	udr_check_stats st = {0, 0, 0, 0};
	struct fsck_ctx c = {s, NULL, &st, repair_quiet, NULL, indexes, NULL};
	struct fsck_ctx cr = {s, NULL, &st, repair_quiet, NULL, rewritten, NULL};
	char *dir, mp[4200];
	DIR *d;
	struct dirent *e;
	struct stat sb;
	bool had, stale = false;
	int rc = 0;
	*indexes = 0;
	*rewritten = 0;
	*midx = false;
	if (!s->packs)
		return 0;
	if (!(dir = udr__path_join(s->path, "packs")))
		return UDR_ENOMEM;
	if (!(d = opendir(dir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
		free(dir);
		return rc;
	}
	/* a pack without its index: fsck_pack indexes it from its bytes when
	 * they hash to its name (under packs/lock, never a pack a gc run is
	 * deleting); so it rewrites a damaged index (trailer or order), before
	 * the multi-pack index below is built from the indexes; a damaged pack
	 * is left to the check */
	while (rc == 0 && (e = readdir(d)) != NULL) {
		const char *nm = e->d_name;
		char hex[UDR_HASH_HEXSIZE + 1], ip[4300];
		bool ok = strlen(nm) == UDR_HASH_HEXSIZE + 5 && strcmp(nm + UDR_HASH_HEXSIZE, ".pack") == 0;
		for (size_t i = 0; ok && i < UDR_HASH_HEXSIZE; i++)
			ok = (nm[i] >= '0' && nm[i] <= '9') || (nm[i] >= 'a' && nm[i] <= 'f');
		if (!ok)
			continue;
		memcpy(hex, nm, UDR_HASH_HEXSIZE);
		hex[UDR_HASH_HEXSIZE] = '\0';
		snprintf(ip, sizeof(ip), "%s/%s.idx", dir, hex);
		if (UDR_IO->stat(ip, &sb) == 0) {
			unsigned char *ix = NULL;
			size_t il = 0;
			udr__idx x;
			if ((rc = map_file(&ix, &il, ip)) == UDR_ENOTFOUND) {
				udr_error_clear();
				rc = 0;
				continue; /* gone meanwhile (repacked away) */
			}
			if (rc == 0 && udr__idx_parse(&x, ix, il, true, ip) == 0) {
				munmap(ix, il);
				continue;
			}
			if (ix)
				munmap(ix, il);
			udr_error_clear();
			if ((rc = fsck_pack(&cr, dir, hex)) > 0)
				rc = 0;
			/* this handle's lookups (and the multi-pack index built
			 * below from them) take the rewritten index */
			if (rc == 0)
				rc = udr__packset_reload(s, hex);
			continue;
		}
		if (errno != ENOENT)
			continue;
		if ((rc = fsck_pack(&c, dir, hex)) > 0)
			rc = 0;
	}
	closedir(d);
	free(dir);
	if (rc < 0)
		return rc;
	if (*indexes && (rc = udr__packset_scan(s)) < 0)
		return rc;
	/* the multi-pack index: rebuilt when damaged, or written when missing
	 * and due (udr__midx_threshold packs not covered) */
	snprintf(mp, sizeof(mp), "%s/packs/%s", s->path, UDR__MIDX_FILE);
	had = UDR_IO->stat(mp, &sb) == 0;
	rc = udr__midx_check(s, &stale);
	if (rc == UDR_ECORRUPT) {
		udr_error_clear();
		if ((rc = udr__midx_update(s, true, true)) < 0)
			return rc;
		*midx = true;
	} else if (rc < 0) {
		return rc;
	} else if (!had) {
		if ((rc = udr__midx_update(s, false, true)) < 0)
			return rc;
		*midx = UDR_IO->stat(mp, &sb) == 0;
	}
	return 0;
}

/* ---- stats ---------------------------------------------------------------- */

struct hset {
	udr_hash *v;
	size_t n, cap;
};

static int hset_add(struct hset *hs, const udr_hash *h)
{
	if (hs->n == hs->cap) {
		size_t cap = hs->cap ? hs->cap * 2 : 1024;
		udr_hash *p = realloc(hs->v, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		hs->v = p;
		hs->cap = cap;
	}
	hs->v[hs->n++] = *h;
	return 0;
}

static int hcmp(const void *a, const void *b)
{
	return memcmp(a, b, UDR_HASH_SIZE);
}

struct sized {
	udr_hash h;
	uint64_t size;
};

struct stats_ctx {
	udr_store *s;
	udr_store_stats *st;
	struct sized *pieces; /* every piece-kind object, with its size */
	size_t npieces, cap_pieces;
	struct hset referenced; /* pieces named by manifests */
};

static int stats_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	struct stats_ctx *c = payload;
	enum udr__kind kind = l->kind;
	uint64_t size = 0, disk = l->pack ? l->length : (uint64_t)l->st.st_size;
	int rc;
	c->st->stored_bytes += disk;
	if (kind == UDR__K_MANIFEST) {
		udr__manifest m;
		if ((rc = udr__manifest_load(&m, c->s, h)) < 0)
			return rc;
		c->st->manifests++;
		c->st->contents++;
		c->st->logical_bytes += m.total;
		rc = 0;
		for (uint64_t i = 0; i < m.npieces && rc == 0; i++)
			rc = hset_add(&c->referenced, &m.pieces[i].hash);
		udr__manifest_free(&m);
		return rc;
	}
	if ((rc = udr__content_size(&size, c->s, h)) < 0)
		return rc;
	c->st->pieces++;
	c->st->unique_bytes += size;
	c->st->after_delta_bytes += kind == UDR__K_DELTA ? disk : size;
	c->st->piece_bytes += disk;
	if (kind == UDR__K_ZST)
		c->st->compressed++;
	if (kind == UDR__K_DELTA)
		c->st->deltas++;
	if (c->npieces == c->cap_pieces) {
		size_t cap = c->cap_pieces ? c->cap_pieces * 2 : 1024;
		struct sized *p = realloc(c->pieces, cap * sizeof(*p));
		if (!p)
			return udr__error_oom();
		c->pieces = p;
		c->cap_pieces = cap;
	}
	c->pieces[c->npieces].h = *h;
	c->pieces[c->npieces].size = size;
	c->npieces++;
	return 0;
}

int udr_store_stats_get(udr_store_stats *out, udr_store *s)
{
	struct stats_ctx c;
	int rc;
	if (!out || !s)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_stats_get");
	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.st = out;
	rc = udr__obj_foreach(s, false, stats_visit, NULL, &c);
	if (rc == 0 && c.referenced.n)
		qsort(c.referenced.v, c.referenced.n, sizeof(udr_hash), hcmp);
	/* a piece no manifest names is content of its own */
	for (size_t i = 0; rc == 0 && i < c.npieces; i++) {
		if (c.referenced.n && bsearch(&c.pieces[i].h, c.referenced.v, c.referenced.n, sizeof(udr_hash), hcmp))
			continue;
		out->contents++;
		out->logical_bytes += c.pieces[i].size;
	}
	free(c.pieces);
	free(c.referenced.v);
	return rc < 0 ? rc : 0;
}

static int packstats_visit(const udr_hash *h, const udr__loc *l, void *payload)
{
	udr_store_pack_stats *o = payload;
	(void)h;
	if (l->pack)
		o->packed++;
	else
		o->loose++;
	return 0;
}

int udr_store_pack_stats_get(udr_store_pack_stats *out, udr_store *s)
{
	int rc;
	if (!out || !s)
		return udr__error_set(UDR_EINVAL, "invalid argument to udr_store_pack_stats_get");
	memset(out, 0, sizeof(*out));
	if ((rc = udr__obj_foreach(s, true, packstats_visit, NULL, out)) < 0)
		return rc;
	if (s->packs) {
		udr__packset *ps = s->packs;
		char p[4200];
		pthread_mutex_lock(&ps->mu);
		for (size_t i = 0; i < ps->n; i++) {
			struct stat st;
			if (ps->v[i]->gone || ps->v[i]->broken)
				continue;
			snprintf(p, sizeof(p), "%s/packs/%s.pack", s->path, ps->v[i]->hex);
			if (UDR_IO->stat(p, &st) < 0)
				continue;
			out->packs++;
			out->pack_bytes += (uint64_t)st.st_size;
			out->index_bytes += ps->v[i]->idx.len;
			out->midx_packs += ps->v[i]->covered;
		}
		out->midx = ps->midx.p ? 1 : ps->midx_damaged ? -1 : 0;
		out->midx_objects = ps->midx.n;
		out->midx_bytes = ps->midx.p ? ps->midx.len : ps->midx_size;
		pthread_mutex_unlock(&ps->mu);
	}
	return 0;
}
