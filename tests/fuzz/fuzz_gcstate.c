/*
 * fuzz_gcstate.c - fuzz target for the parser of chunks/gc/STATE
 * (store/gcstate.c): any bytes parse into a state that formats back to the
 * same bytes, or are rejected as UDR_ECORRUPT, never crash.  A fuzzer cannot
 * forge the seal, so an input that ends in '}' is also sealed first, to
 * reach the checks behind it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "store/gcstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, size_t len)
{
	udr__gcstate st;
	int rc = udr__gcstate_parse(&st, text, len, "fuzz");
	if (rc == 0) {
		char *again = NULL;
		size_t alen = 0;
		udr__gcstate st2;
		if (st.drained > st.epoch)
			abort();
		/* what parses formats, and parses to the same state */
		if (udr__gcstate_format(&again, &alen, &st) != 0)
			abort();
		if (udr__gcstate_parse(&st2, again, alen, "fuzz") != 0 || st2.epoch != st.epoch ||
		    st2.drained != st.drained || st2.phase != st.phase || strcmp(st2.doomed, st.doomed) != 0 ||
		    strcmp(st2.boot_id, st.boot_id) != 0 || (st.last == NULL) != (st2.last == NULL) ||
		    (st.last && strcmp(st.last, st2.last) != 0))
			abort();
		udr__gcstate_release(&st2);
		udr__gcstate_release(&st);
		free(again);
	} else if (rc != UDR_ECORRUPT && rc != UDR_ENOMEM) {
		abort();
	}
	udr_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	size_t len = size;
	check((const char *)data, size);
	if (size < 2 || data[size - 1] != '}' || !(text = malloc(size)))
		return 0;
	memcpy(text, data, size);
	if (udr__seal(&text, &len) == 0)
		check(text, len);
	free(text);
	return 0;
}
