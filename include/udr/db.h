/*
 * udr/db.h - one handle over a whole store root: <root>/chunks (the chunk
 * store) and <root>/catalog (the catalog, checking chunks against the store).
 */
#ifndef UDR_DB_H
#define UDR_DB_H

#include "common.h"
#include "store.h"
#include "catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An open store root (opaque, thread-safe). */
typedef struct udr_db udr_db;

/**
 * Open (with UDR_OPEN_CREATE: create when missing) the store root at path.
 * @return 0; UDR_EINVAL; UDR_ENOTFOUND ("not a udr store"); UDR_ECORRUPT;
 *         UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_db_open(udr_db **out, const char *path, unsigned int flags);

/** Close (accepts NULL); the store and catalog handles die with it. */
UDR_EXTERN void udr_db_close(udr_db *db);

/** The chunk store of db (borrowed, lives as long as db). */
UDR_EXTERN udr_store *udr_db_store(udr_db *db);

/** The catalog of db (borrowed, lives as long as db). */
UDR_EXTERN udr_catalog *udr_db_catalog(udr_db *db);

/** The root directory (borrowed). */
UDR_EXTERN const char *udr_db_path(const udr_db *db);

#ifdef __cplusplus
}
#endif
#endif
