/*
 * fuzz_idx.c - fuzz target for the pack index parser and lookup: any bytes
 * either parse (and every lookup stays inside the index) or are rejected as
 * UDR_ECORRUPT, never crash or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sealed.h"
#include "store/pack.h"
#include "store/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, bool full)
{
	udr__idx x;
	int rc = udr__idx_parse(&x, data, size, full, "fuzz");
	if (rc == 0) {
		/* structural checks only (readers' mode): lookups of every listed
		 * hash and of absent ones stay in bounds */
		for (uint64_t i = 0; i < x.n && i < 4096; i++) {
			udr__pack_entry e;
			udr__idx_record(&e, &x, i);
			uint64_t k = udr__idx_find(&x, &e.hash);
			if (k != UINT64_MAX && k >= x.n)
				abort();
			if (full && k != i)
				abort(); /* sorted, no duplicates: found where it is */
		}
		udr_hash h;
		memset(h.bytes, 0xa5, sizeof(h.bytes));
		if (udr__idx_find(&x, &h) != UINT64_MAX && udr__idx_find(&x, &h) >= x.n)
			abort();
	} else if (rc != UDR_ECORRUPT) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sealed(data, size, UDR__IDX_HDR + UDR__IDX_FANOUT + UDR_HASH_SIZE, check);
	return 0;
}
