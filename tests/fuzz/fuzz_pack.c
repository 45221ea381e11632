/*
 * fuzz_pack.c - fuzz target for the pack parsers (frame, entries, re-index):
 * any bytes either index into a consistent index or are rejected as
 * UDR_ECORRUPT, never crash or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pack.h"
#include "store/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size)
{
	unsigned char *ix = NULL;
	size_t il = 0;
	udr_hash name;
	udr_hash_buf(&name, data, size);
	int rc = udr__pack_reindex(&ix, &il, data, size, &name, "fuzz");
	if (rc == 0) {
		/* what the re-index promised: an intact index whose every record
		 * points at an entry of its hash that parses */
		udr__idx x;
		if (udr__idx_parse(&x, ix, il, true, "fuzz") != 0)
			abort();
		for (uint64_t i = 0; i < x.n; i++) {
			udr__pack_entry e, pe;
			uint64_t next;
			udr__idx_record(&e, &x, i);
			if (udr__pack_entry_parse(&pe, &next, data, size, e.offset, "fuzz") != 0 ||
			    !udr_hash_equal(&pe.hash, &e.hash) || pe.length != e.length || udr__idx_find(&x, &e.hash) != i)
				abort();
		}
		free(ix);
	} else if (rc != UDR_ECORRUPT && rc != UDR_ENOMEM) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size);
	/* a fuzzer cannot forge CRCs: also parse the input with every entry's
	 * CRC fixed, to reach the checks behind them */
	if (size >= UDR__PACK_HDR + UDR__PACK_TRAILER + UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC) {
		unsigned char *c = malloc(size);
		uint64_t off = UDR__PACK_HDR;
		if (!c)
			return 0;
		memcpy(c, data, size);
		while (off + UDR__PACK_ENTRY_HDR + UDR__PACK_ENTRY_CRC <= size - UDR__PACK_TRAILER) {
			uint32_t len = (uint32_t)c[off + 4] | (uint32_t)c[off + 5] << 8 | (uint32_t)c[off + 6] << 16 |
			               (uint32_t)c[off + 7] << 24;
			uint64_t end = off + UDR__PACK_ENTRY_HDR + (uint64_t)len;
			if (end + UDR__PACK_ENTRY_CRC > size - UDR__PACK_TRAILER)
				break;
			uint32_t crc = udr__crc32c(0, c + off, UDR__PACK_ENTRY_HDR + (size_t)len);
			for (int i = 0; i < 4; i++)
				c[end + i] = (unsigned char)(crc >> (8 * i));
			off = end + UDR__PACK_ENTRY_CRC;
		}
		check(c, size);
		free(c);
	}
	return 0;
}
