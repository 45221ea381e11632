/*
 * fuzz_delta.c - fuzz target for the delta header parser (udr__delta_parse,
 * versions 1 and 2).  A header it accepts must be within the format's limits
 * and re-encode to the same bytes; anything else must be refused with
 * UDR_ECORRUPT, never read past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <udr/udr.h>
#include "store/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	udr__delta_hdr dh;
	unsigned char *copy, *again = NULL;
	size_t alen = 0;
	int rc;
	/* an exact-size copy: ASan sees any read past the input */
	if (!(copy = malloc(size ? size : 1)))
		abort();
	memcpy(copy, data, size);
	rc = udr__delta_parse(&dh, copy, size, "fuzz");
	if (rc != 0) {
		if (rc != UDR_ECORRUPT)
			abort();
		free(copy);
		return 0;
	}
	if ((dh.version != 1 && dh.version != 2) || dh.depth < 1 || dh.depth > UDR__DELTA_DEPTH_HARD_MAX ||
	    dh.nbases < 1 || dh.nbases > UDR__DELTA_BASES_MAX || (dh.version == 1 && dh.nbases != 1) ||
	    dh.raw_size == 0 || dh.raw_size > UDR__PIECE_HARD_MAX || dh.frame > size ||
	    (dh.flags & ~UDR__DELTA_STEP) || (dh.version == 1 && dh.flags))
		abort();
	/* the parsed fields and the frame encode the same object again (version
	 * 1 does not check its reserved bytes: those may differ) */
	if (udr__delta_encode(&again, &alen, &dh, copy + dh.frame, size - dh.frame) != 0 || alen != size)
		abort();
	if (dh.version == 2 ? memcmp(again, copy, size) != 0
	                    : memcmp(again, copy, 6) != 0 || memcmp(again + 8, copy + 8, size - 8) != 0)
		abort();
	free(again);
	free(copy);
	return 0;
}
