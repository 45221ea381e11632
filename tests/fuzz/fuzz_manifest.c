/*
 * fuzz_manifest.c - fuzz target for the manifest parser: any bytes must
 * parse into a consistent manifest or be rejected as UDR_ECORRUPT, never
 * crash or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size)
{
	udr__manifest m;
	int rc = udr__manifest_parse(&m, data, size, NULL, "fuzz");
	if (rc == 0) {
		uint64_t sum = 0;
		for (uint64_t i = 0; i < m.npieces; i++)
			sum += m.pieces[i].size;
		if (sum != m.total || m.npieces == 0)
			abort(); /* the parser promised consistency */
		udr__manifest_free(&m);
	} else if (rc != UDR_ECORRUPT && rc != UDR_ENOMEM) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy;
	udr_hash tail;
	check(data, size);
	/* A fuzzer cannot forge the BLAKE3 trailer: also parse the input with
	 * its trailer fixed, to reach the checks behind it. */
	if (size < 96 || !(copy = malloc(size)))
		return 0;
	memcpy(copy, data, size);
	udr_hash_buf(&tail, copy, size - 32);
	memcpy(copy + size - 32, tail.bytes, 32);
	check(copy, size);
	free(copy);
	return 0;
}
