/*
 * fuzz_sealed.h - for the fuzz targets of files sealed by a BLAKE3 trailer
 * (pack indexes, the multi-pack index): a fuzzer cannot forge the trailer,
 * so each input is checked as it is and once more with its trailer fixed.
 */
#ifndef UDR_FUZZ_SEALED_H
#define UDR_FUZZ_SEALED_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <udr/common.h>

static inline void fuzz_sealed(const uint8_t *data, size_t size, size_t min,
                               void (*check)(const uint8_t *data, size_t size, bool full))
{
	check(data, size, false);
	check(data, size, true);
	if (size >= min) {
		unsigned char *c = malloc(size);
		udr_hash tail;
		if (!c)
			return;
		memcpy(c, data, size);
		udr_hash_buf(&tail, c, size - UDR_HASH_SIZE);
		memcpy(c + size - UDR_HASH_SIZE, tail.bytes, UDR_HASH_SIZE);
		check(c, size, true);
		free(c);
	}
}

#endif
