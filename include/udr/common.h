/*
 * udr/common.h - error codes, the thread-local last error, content hashes.
 *
 * Every public function of libudr returns an int: 0 (UDR_OK) on success or one
 * of the negative UDR_E* codes below.  The message of the most recent failure
 * on the calling thread is available from udr_error_last().
 */
#ifndef UDR_COMMON_H
#define UDR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define UDR_EXTERN __attribute__((visibility("default")))
#else
#define UDR_EXTERN
#endif

/** Error codes: what a caller can act on. */
#define UDR_OK          0  /**< success */
#define UDR_ERROR      -1  /**< generic failure */
#define UDR_EINVAL     -2  /**< invalid argument (bad hash, bad table name, ...) */
#define UDR_ENOTFOUND  -3  /**< object, table, version or store does not exist */
#define UDR_ECONFLICT  -4  /**< version conflict: somebody else committed first */
#define UDR_ECORRUPT   -5  /**< integrity failure: stored data or metadata is damaged */
#define UDR_EIO        -6  /**< operating-system I/O error (errno kept in the message) */
#define UDR_ENOMEM     -7  /**< out of memory or size overflow */
#define UDR_ELOCKED    -8  /**< a lock could not be taken without waiting */
#define UDR_EEXPIRED   -9  /**< the version expired by retention (docs/GC.md 1.5) */

/** Size of a BLAKE3-256 digest in bytes, and as lowercase hex text. */
#define UDR_HASH_SIZE    32
#define UDR_HASH_HEXSIZE 64

/** A content hash: the BLAKE3-256 digest of the content's bytes. */
typedef struct udr_hash {
	unsigned char bytes[UDR_HASH_SIZE];
} udr_hash;

/** The last error raised on this thread. */
typedef struct udr_error {
	int code;            /**< one of UDR_E* */
	const char *message; /**< names the object and the cause; never NULL */
} udr_error;

/**
 * The last error raised by libudr on the calling thread.
 * @return a pointer valid until the next libudr call on this thread; never
 *         NULL (code 0 and an empty message when there was no error).
 */
UDR_EXTERN const udr_error *udr_error_last(void);

/** Forget the last error of the calling thread. */
UDR_EXTERN void udr_error_clear(void);

/** A short static description of an error code ("not found", ...). */
UDR_EXTERN const char *udr_strerror(int code);

/** The library version, e.g. "0.1.0". */
UDR_EXTERN const char *udr_libversion(void);

/** Free memory returned by libudr through an out parameter (accepts NULL). */
UDR_EXTERN void udr_free(void *ptr);

/** Free an array of strings returned by libudr (accepts NULL). */
UDR_EXTERN void udr_strarray_free(char **strings, size_t count);

/**
 * Parse a hash written as 64 hexadecimal digits (either case).
 * @param[out] out the parsed hash
 * @param hex NUL-terminated text
 * @return 0, or UDR_EINVAL (quoting the value) when hex is NULL or is not
 *         exactly 64 hex digits.
 */
UDR_EXTERN int udr_hash_fromhex(udr_hash *out, const char *hex);

/** Write the 64 lowercase hex digits of h and a NUL into out. */
UDR_EXTERN void udr_hash_tohex(char out[UDR_HASH_HEXSIZE + 1], const udr_hash *h);

/** 1 when a and b are the same hash, 0 otherwise. */
UDR_EXTERN int udr_hash_equal(const udr_hash *a, const udr_hash *b);

/** Hash a buffer in memory (BLAKE3-256, identical to b3sum). */
UDR_EXTERN void udr_hash_buf(udr_hash *out, const void *data, size_t len);

/**
 * Hash everything readable from a file descriptor, streaming, from its
 * current offset to end of file.
 * @return 0, or UDR_EIO when a read fails.
 */
UDR_EXTERN int udr_hash_fd(udr_hash *out, int fd);

/** Incremental hasher (opaque). */
typedef struct udr_hasher udr_hasher;

/** Allocate a hasher. @return 0 or UDR_ENOMEM. Free with udr_hasher_free. */
UDR_EXTERN int udr_hasher_new(udr_hasher **out);
UDR_EXTERN void udr_hasher_update(udr_hasher *h, const void *data, size_t len);
/** Write the digest of everything fed so far; the hasher can continue. */
UDR_EXTERN void udr_hasher_final(udr_hasher *h, udr_hash *out);
UDR_EXTERN void udr_hasher_reset(udr_hasher *h);
UDR_EXTERN void udr_hasher_free(udr_hasher *h);

/** Flags for udr_store_open, udr_catalog_open and udr_db_open. */
#define UDR_OPEN_CREATE 0x1u /**< create the store / catalog when missing */

#ifdef __cplusplus
}
#endif
#endif
