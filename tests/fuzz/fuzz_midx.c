/*
 * fuzz_midx.c - fuzz target for the multi-pack index parser and lookup: any
 * bytes either parse (and every lookup and record stays inside the file) or
 * are rejected as UDR_ECORRUPT, never crash or read out of bounds.
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
	udr__midx x;
	int rc = udr__midx_parse(&x, data, size, full, "fuzz");
	if (rc == 0) {
		/* structural checks only (readers' mode): lookups of every listed
		 * hash and of an absent one stay in bounds; pack numbers are the
		 * reader's to check (full mode: all in range) */
		for (uint64_t i = 0; i < x.n && i < 4096; i++) {
			udr__pack_entry e;
			uint32_t j;
			udr__midx_record(&e, &j, &x, i);
			uint64_t k = udr__midx_find(&x, &e.hash);
			if (k != UINT64_MAX && k >= x.n)
				abort();
			if (full && (k != i || j >= x.npacks || e.kind < 1 || e.kind > 4))
				abort();
		}
		for (uint32_t j = 0; j < x.npacks && j < 4096; j++) {
			udr_hash name;
			udr__midx_pack(&name, &x, j);
		}
		udr_hash h;
		memset(h.bytes, 0xa5, sizeof(h.bytes));
		if (udr__midx_find(&x, &h) != UINT64_MAX && udr__midx_find(&x, &h) >= x.n)
			abort();
	} else if (rc != UDR_ECORRUPT) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sealed(data, size, UDR__MIDX_HDR + UDR__IDX_FANOUT + UDR_HASH_SIZE, check);
	return 0;
}
