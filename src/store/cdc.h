/*
 * cdc.h - content-defined chunking (FastCDC, 2020 variant: gear hash with
 * normalized chunking).  The gear table and masks are part of the on-disk
 * format: changing them changes piece boundaries and so breaks dedup with
 * existing data (docs/FORMAT.md).
 */
#ifndef UDR_CDC_H
#define UDR_CDC_H

#include <stddef.h>
#include <stdint.h>

typedef struct udr__cdc {
	size_t min, avg, max;
	uint64_t mask_s; /* harder mask before the average size */
	uint64_t mask_l; /* easier mask after it */
} udr__cdc;

/* Limits on the settings a store may choose. */
#define UDR__CDC_MIN_LIMIT ((size_t)64)
#define UDR__CDC_MAX_LIMIT ((size_t)64 << 20)

/* Set up for the given sizes; avg must be a power of two with
 * min <= avg <= max.  Returns 0, or -1 for unusable settings. */
int udr__cdc_init(udr__cdc *c, size_t min, size_t avg, size_t max);

/* Length of the first piece of data[0..len): the whole of it when len <=
 * min, never more than max.  When more input may follow (final == 0) and no
 * cut point is found before len, returns 0: call again with more data. */
size_t udr__cdc_cut(const udr__cdc *c, const unsigned char *data, size_t len, int final);

#endif
