/*
 * udr/store.h - the content-addressed chunk store.
 *
 * Bytes in, BLAKE3-256 hash out.  The same bytes are stored once (dedup).
 * Every write is atomic and durable when the call returns (temp file, fsync,
 * link, directory fsync); a reader never sees a partial chunk.  A store handle
 * may be shared by any number of threads, and any number of processes may
 * use the same store directory at once.
 *
 * Reads verify: every piece of a content (and every delta base it is decoded
 * against) is rehashed before its bytes are handed out, and the whole content
 * at the end, so damage on disk is UDR_ECORRUPT naming the chunk, never wrong
 * bytes.  A put that finds its content (or a piece) already stored checks that
 * the stored object decodes to the bytes being put, and replaces a damaged
 * object by a good copy.
 */
#ifndef UDR_STORE_H
#define UDR_STORE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An open chunk store (opaque, thread-safe). */
typedef struct udr_store udr_store;

/**
 * Open the chunk store in directory path.
 * @param[out] out the new handle; close with udr_store_close
 * @param path the chunk store directory (e.g. "data/chunks")
 * @param flags UDR_OPEN_CREATE to create the directory and its config when
 *        missing
 * @return 0; UDR_EINVAL for a NULL or empty path; UDR_ENOTFOUND when the
 *         directory is not a chunk store and UDR_OPEN_CREATE was not given;
 *         UDR_ECORRUPT when its config is unreadable or of an unknown format;
 *         UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_open(udr_store **out, const char *path, unsigned int flags);

/** Close a store handle (accepts NULL). */
UDR_EXTERN void udr_store_close(udr_store *store);

/** The directory the store was opened at (borrowed, lives as long as store). */
UDR_EXTERN const char *udr_store_path(const udr_store *store);

/**
 * Store len bytes; durable when the call returns.  Content larger than the
 * store's chunk_max is split into content-defined pieces (each itself
 * content-addressed and shared) listed by a manifest; the hash is always the
 * BLAKE3 of the whole content.  When the content or a piece is already
 * stored, the stored object is checked to decode to these bytes; a damaged
 * (or unreadable) one is replaced atomically by a good copy (temp file,
 * fsync, rename over it, directory fsync), so a re-put repairs damage.
 * @param[out] out the BLAKE3-256 of the bytes (also when they already existed)
 * @return 0; UDR_EINVAL (data NULL with len > 0); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_put(udr_hash *out, udr_store *store, const void *data, size_t len);

/**
 * Store everything readable from fd (from its current offset to end of
 * file), streaming with bounded memory.  Nothing is published when a read
 * fails midway.
 * @return as udr_store_put; UDR_EIO names the failing read.
 */
UDR_EXTERN int udr_store_put_fd(udr_hash *out, udr_store *store, int fd);

/** Store the content of the file at path, streaming.  As udr_store_put_fd;
 *  UDR_ENOTFOUND when the file does not exist. */
UDR_EXTERN int udr_store_put_file(udr_hash *out, udr_store *store, const char *path);

/**
 * 1 when the chunk exists, 0 when it does not, a negative UDR_E* on error
 * (UDR_EIO).
 */
UDR_EXTERN int udr_store_exists(udr_store *store, const udr_hash *hash);

/**
 * The size of a chunk's content in bytes: a chunked content's from its
 * manifest (checked), a one-piece content's by decoding and rehashing the
 * piece, which costs a read of it (a damaged header cannot give another
 * size; a piece stored whole, UDR_PUT_WHOLE or format 1, may be large).
 * @return 0; UDR_ENOTFOUND; UDR_ECORRUPT (damaged, no intact copy); UDR_EIO.
 */
UDR_EXTERN int udr_store_size(uint64_t *out, udr_store *store, const udr_hash *hash);

/**
 * The size a chunk's first readable copy records (a manifest's total, a
 * piece's header, a raw file's length), without reading its data: for
 * sizing a buffer or counting bytes.  Damage can make it wrong; a read that
 * verifies (udr_store_get, udr_store_size) finds it.
 * @return 0; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_store_size_recorded(uint64_t *out, udr_store *store, const udr_hash *hash);

/**
 * Read a whole chunk into memory, verified: each piece is rehashed before it
 * is used and the whole content at the end.  Damage (a piece or object that
 * does not hash to its name, a bad frame or manifest, a missing piece or
 * delta base) is UDR_ECORRUPT naming the chunk (and the piece), and nothing
 * is returned.
 * @param[out] out a buffer owned by the caller, freed with udr_free (non-NULL
 *             also for an empty chunk)
 * @param[out] out_len its length
 * @return 0; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_get(void **out, size_t *out_len, udr_store *store, const udr_hash *hash);

/** The same as udr_store_get (which verifies too; kept for compatibility). */
UDR_EXTERN int udr_store_get_verified(void **out, size_t *out_len, udr_store *store,
                                      const udr_hash *hash);

/**
 * Fully decode and verify the content hash (every piece, every delta base,
 * the whole content), without keeping its bytes: what a commit calls before
 * it names a chunk.
 * @return 0 when the content is stored and intact; UDR_ENOTFOUND; UDR_ECORRUPT
 *         naming the chunk (and the piece); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_verify(udr_store *store, const udr_hash *hash);

/** Flags for the streaming reads. */
#define UDR_GET_VERIFY 0x1u   /**< verify (the default; accepted for compatibility) */
#define UDR_GET_NOVERIFY 0x2u /**< do not rehash: sizes, manifest checksums and zstd
                                   frame checksums are still checked, but a damaged raw
                                   object (or raw piece) is written as it is */

/**
 * Stream a chunk into fd with bounded memory, verified unless
 * UDR_GET_NOVERIFY: each piece is rehashed before it is written, so damage
 * stops the stream at the damaged piece (only verified bytes were written)
 * with UDR_ECORRUPT.  A single raw object of up to 64 MiB is read and
 * verified before anything is written; a larger one is streamed, and its
 * damage is known only at the end: UDR_ECORRUPT after the bytes were written.
 * On UDR_ECORRUPT the caller must discard what was written to fd
 * (udr_store_get_file does that for files).
 * @return 0; UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO; UDR_EINVAL (both
 *         UDR_GET_VERIFY and UDR_GET_NOVERIFY).
 */
UDR_EXTERN int udr_store_get_fd(udr_store *store, const udr_hash *hash, int fd, unsigned int flags);

/**
 * Write a chunk to the file at path, atomically: the file appears (replacing
 * any file of that name) only when all bytes were written and (unless
 * UDR_GET_NOVERIFY) verified.  On failure nothing is left at path.
 * @return as udr_store_get_fd.
 */
UDR_EXTERN int udr_store_get_file(udr_store *store, const udr_hash *hash, const char *path,
                                  unsigned int flags);

/**
 * Where the content of a chunk can be read in place: when the store keeps it
 * as one plain file holding exactly the content (no compression, no
 * pieces), the path of that file.  Readers must treat the file as read-only.
 * Nothing is verified: the caller must rehash the file's bytes against hash
 * before trusting them (the query layer hashes each part once per process).
 * @param[out] out malloc'd path, freed with udr_free (set only when 0 is
 *             returned)
 * @return 0 with a path; 1 when the content exists but is not stored as one
 *         plain file (read it with udr_store_get_fd / udr_store_get_file);
 *         UDR_ENOTFOUND; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_local_path(char **out, udr_store *store, const udr_hash *hash);

/** Settings chosen when a store is created (docs/ARCHITECTURE.md says how
 *  the defaults were picked). */
typedef struct udr_store_config {
	unsigned int version;   /**< UDR_STORE_CONFIG_VERSION */
	int format;             /**< 3 (default): pieces, compression, deltas, in pack files; 2: the same
	                             with one file per object; 1: raw files only */
	uint32_t chunk_min;     /**< content-defined chunking: smallest piece (0: default) */
	uint32_t chunk_avg;     /**< average piece, a power of two (0: default) */
	uint32_t chunk_max;     /**< largest piece; content up to this size stays one piece (0: default) */
	int compression_level;  /**< zstd level 1..19; 0: no compression; -1: default */
	int delta_max_depth;    /**< longest chain of deltas, 1..255 (0: default, 50) */
} udr_store_config;
#define UDR_STORE_CONFIG_VERSION 1
#define UDR_STORE_CONFIG_INIT {UDR_STORE_CONFIG_VERSION, 3, 0, 0, 0, -1, 0}

/**
 * Open the chunk store in path, creating it with the settings cfg when it
 * does not exist and UDR_OPEN_CREATE is given (cfg NULL: defaults; cfg is
 * ignored for an existing store).
 * @return as udr_store_open; UDR_EINVAL for unusable settings.
 */
UDR_EXTERN int udr_store_open_ext(udr_store **out, const char *path, unsigned int flags,
                                  const udr_store_config *cfg);

/**
 * Upgrade the chunk store at path to format cfg->format (2 or 3; cfg NULL:
 * format 3 with the defaults, or with the store's own settings when it is
 * format 2 already).  The config changes first, atomically and durably; from
 * then on new objects are written the new way (handles already open go on
 * writing objects of their format, still valid).  Format 1 to 2 changes
 * nothing else: format 2 reads format-1 objects as they are.  To format 3,
 * every intact loose object except Parquet parts (which DuckDB reads in
 * place) is then packed in batches, each batch's pack durable before the
 * loose files it replaces are removed: a killed upgrade loses nothing and a
 * rerun resumes.  Damaged objects stay loose for fsck to report.
 * @return 0 (also for a store already at the target format when cfg is
 *         NULL); UDR_EINVAL (bad settings, or settings given for a store
 *         already at format 2 or 3, whose settings are fixed at creation);
 *         UDR_ENOTFOUND; UDR_ECORRUPT; UDR_EIO.
 */
UDR_EXTERN int udr_store_upgrade(const char *path, const udr_store_config *cfg);

/** Options of udr_store_upgrade_ext (zero-initialise). */
typedef struct udr_upgrade_options {
	/**
	 * Called with the bytes of loose objects walked so far and the bytes
	 * to walk (counted first): once with 0 at the start, then after each
	 * object, and with done == total at the end of a complete run.
	 */
	void (*progress)(uint64_t done, uint64_t total, void *payload);
	void *progress_payload;
} udr_upgrade_options;

/** What an upgrade to format 3 did (zero for other upgrades). */
typedef struct udr_upgrade_report {
	uint64_t packed; /**< loose objects packed */
	uint64_t kept;   /**< loose objects left loose (Parquet parts, damaged, too large) */
	uint64_t bytes;  /**< bytes of loose objects walked */
} udr_upgrade_report;

/** udr_store_upgrade with progress and a report (o and rep may be NULL). */
UDR_EXTERN int udr_store_upgrade_ext(const char *path, const udr_store_config *cfg, const udr_upgrade_options *o,
                                     udr_upgrade_report *rep);

/** The settings of an open store. */
UDR_EXTERN void udr_store_get_config(udr_store_config *out, const udr_store *store);

/** Options of a put. */
typedef struct udr_put_options {
	unsigned int version;       /**< UDR_PUT_OPTIONS_VERSION */
	const udr_hash *base;       /**< content to store new pieces as deltas against (the table's
	                                 previous version, say); NULL: none; absent base: ignored */
	void (*progress)(uint64_t bytes_done, void *payload); /**< called now and then (may be NULL) */
	void *progress_payload;
	unsigned int flags;         /**< UDR_PUT_* */
} udr_put_options;
#define UDR_PUT_OPTIONS_VERSION 1
#define UDR_PUT_OPTIONS_INIT {UDR_PUT_OPTIONS_VERSION, NULL, NULL, NULL, 0}

/** Store the content as one plain file, whatever its size: not chunked,
 *  compressed nor delta'd, so udr_store_local_path can hand it to readers
 *  that read in place (Parquet parts read by DuckDB, say). */
#define UDR_PUT_WHOLE 0x1u

/**
 * udr_store_put_fd with options (opts NULL: defaults).  For a regular file
 * the size is checked at the end: input that shrank or grew while it was
 * read fails with UDR_EIO and nothing is published under its hash.
 */
UDR_EXTERN int udr_store_put_fd_ext(udr_hash *out, udr_store *store, int fd, const udr_put_options *opts);

/** udr_store_put_file with options. */
UDR_EXTERN int udr_store_put_file_ext(udr_hash *out, udr_store *store, const char *path,
                                      const udr_put_options *opts);

/**
 * Take a good copy of stored content from the file at path: store it as
 * udr_store_put_file does, which replaces every damaged object it finds for
 * the content's hash and its pieces (`udr fsck --repair-from FILE`).
 * @param[out] out the content's hash
 * @param[out] repaired the number of damaged objects replaced (may be NULL)
 * @return as udr_store_put_file.
 */
UDR_EXTERN int udr_store_repair_file(udr_hash *out, uint64_t *repaired, udr_store *store,
                                     const char *path);

/**
 * What a store holds (udr_store_stats).  An object is one file of the chunk
 * store: a piece (raw, zstd or delta) or a manifest; objects = pieces +
 * manifests.  The byte counts follow the content down to the disk, each step
 * shown where it saves (docs/ARCHITECTURE.md, "Counting"):
 * logical_bytes >= unique_bytes (dedup) >= after_delta_bytes (deltas)
 * >= piece_bytes (compression); stored_bytes adds the manifests.
 */
typedef struct udr_store_stats {
	uint64_t contents;       /**< distinct contents that are not only pieces of others */
	uint64_t pieces;         /**< stored pieces (raw, compressed or delta objects) */
	uint64_t manifests;      /**< chunked contents */
	uint64_t compressed;     /**< pieces stored as zstd frames */
	uint64_t deltas;         /**< pieces stored as deltas */
	uint64_t logical_bytes;  /**< logical: size of all distinct contents, in full */
	uint64_t unique_bytes;   /**< after dedup: size of all distinct pieces, decoded */
	uint64_t stored_bytes;   /**< on disk: bytes of all object files (pieces and manifests) */
	uint64_t after_delta_bytes; /**< after delta: as unique_bytes, but each delta piece
	                                 counted at its object's size (a delta is zstd-compressed
	                                 against its base: the two savings are one step there) */
	uint64_t piece_bytes;    /**< after compression: bytes of the piece objects (stored_bytes
	                              without the manifests) */
} udr_store_stats;

/**
 * Count what the store holds (reads every manifest and object header).
 * @return 0; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_stats_get(udr_store_stats *out, udr_store *store);

/** How a store keeps its objects (format 3: pack files; docs/FORMAT.md). */
typedef struct udr_store_pack_stats {
	uint64_t packs;       /**< visible pack files (those with an index) */
	uint64_t pack_bytes;  /**< their size */
	uint64_t index_bytes; /**< the size of their indexes */
	uint64_t packed;      /**< object copies in packs */
	uint64_t loose;       /**< objects in files of their own (whole parts, older formats) */
	int midx;             /**< the multi-pack index: 1 in use, 0 none, -1 damaged (ignored until fsck rebuilds it) */
	uint64_t midx_packs;  /**< visible packs it covers (the others are searched through their own index) */
	uint64_t midx_objects; /**< objects it lists */
	uint64_t midx_bytes;  /**< its size */
} udr_store_pack_stats;

/**
 * Count packs and loose objects.
 * @return 0; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_pack_stats_get(udr_store_pack_stats *out, udr_store *store);

/**
 * For tests and debugging: where the copies of a chunk are, one line each,
 * "loose PATH KIND" or "pack PACKPATH OFFSET LENGTH KIND" (the entry's bytes,
 * header and CRC included; KIND 1 raw, 2 zstd, 3 manifest, 4 delta).
 * @param[out] out malloc'd text, freed with free()
 * @return 0; UDR_ENOTFOUND; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_store_debug_locate(char **out, udr_store *store, const udr_hash *hash);

/** Called by udr_store_foreach for each stored chunk; non-zero stops. */
typedef int (*udr_store_foreach_cb)(const udr_hash *hash, void *payload);

/**
 * Call cb for every chunk in the store (in no particular order).
 * @return 0; the callback's non-zero value when it stopped; UDR_EIO.
 */
UDR_EXTERN int udr_store_foreach(udr_store *store, udr_store_foreach_cb cb, void *payload);

/** One problem found by a check (fsck). Pointers are valid during the call. */
typedef struct udr_problem {
	int code;             /**< UDR_ECORRUPT, UDR_ENOTFOUND or UDR_EIO */
	const char *object;   /**< the hash, table or version concerned */
	const char *path;     /**< the file concerned */
	const char *message;  /**< what is wrong */
} udr_problem;

/** Called for each problem; non-zero stops the check. */
typedef int (*udr_problem_cb)(const udr_problem *problem, void *payload);

/** What a check did. */
typedef struct udr_check_stats {
	uint64_t objects;      /**< objects (pieces and manifests, as udr_store_stats counts
	                            them) or catalog files checked */
	uint64_t bytes;        /**< the chunk store's: the size on disk of the objects
	                            checked (as udr_store_stats.stored_bytes); 0 for the catalog */
	uint64_t problems;     /**< problems reported */
	uint64_t temp_removed; /**< abandoned temp files removed */
} udr_check_stats;

/**
 * Check every chunk (rehash against its name, look for stray files) and remove
 * temp files left by dead writers.  Each problem is passed to cb (may be NULL).
 * @param[out] stats what was checked (may be NULL)
 * @return 0 when clean; UDR_ECORRUPT when a problem was found; UDR_EIO when
 *         the check itself could not run.
 */
UDR_EXTERN int udr_store_fsck(udr_check_stats *stats, udr_store *store, udr_problem_cb cb,
                              void *payload);

#ifdef __cplusplus
}
#endif
#endif
