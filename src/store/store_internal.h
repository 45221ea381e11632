/*
 * store_internal.h - what other modules of libudr may use of the store.
 */
#ifndef UDR_STORE_INTERNAL_H
#define UDR_STORE_INTERNAL_H

#include <udr/store.h>

/* The store's temp directory (same file system as its chunks). */
const char *udr__store_tmpdir(const udr_store *s);

/* Check <dir>/config.json: kind must match and format be 1..max_format.
 * UDR_ENOTFOUND when it is missing, UDR_ECORRUPT when unusable. */
int udr__check_config(const char *dir, const char *kind, int max_format);

#endif
