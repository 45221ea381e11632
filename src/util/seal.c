/*
 * seal.c - sealed JSON files: a one-line JSON object whose last key is
 * "check", the BLAKE3 of every byte of the file before `,"check"`.  Any change
 * to a sealed file (a flipped bit, a truncation, an appended byte) is found
 * by rehashing it, before anything in it is believed (docs/FORMAT.md).
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char seal_head[] = ",\"check\":\"";
#define SEAL_HEAD_LEN (sizeof(seal_head) - 1)

int udr__seal(char **text, size_t *len)
{
	udr_hash h;
	char hex[UDR_HASH_HEXSIZE + 1];
	size_t n = *len, total;
	char *t;
	if (n < 2 || (*text)[n - 1] != '}')
		return udr__error_set(UDR_ERROR, "internal error: sealing a text that is not a JSON object");
	n--; /* the closing brace moves behind the check */
	udr_hash_buf(&h, *text, n);
	udr_hash_tohex(hex, &h);
	if (!udr__add_ok(n, UDR__SEAL_TAIL + 1, &total) || !(t = realloc(*text, total)))
		return udr__error_oom();
	memcpy(t + n, seal_head, SEAL_HEAD_LEN);
	memcpy(t + n + SEAL_HEAD_LEN, hex, UDR_HASH_HEXSIZE);
	memcpy(t + n + SEAL_HEAD_LEN + UDR_HASH_HEXSIZE, "\"}\n", 4);
	*text = t;
	*len = n + UDR__SEAL_TAIL;
	return 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int udr__unseal(const char *text, size_t len, const char *path, const char *what)
{
	const char *tail;
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hash h;
	if (len < UDR__SEAL_TAIL + 2)
		return 0;
	tail = text + len - UDR__SEAL_TAIL;
	if (memcmp(tail, seal_head, SEAL_HEAD_LEN) != 0 || !is_lower_hex(tail + SEAL_HEAD_LEN, UDR_HASH_HEXSIZE) ||
	    memcmp(tail + SEAL_HEAD_LEN + UDR_HASH_HEXSIZE, "\"}\n", 3) != 0)
		return 0;
	udr_hash_buf(&h, text, (size_t)(tail - text));
	udr_hash_tohex(hex, &h);
	if (memcmp(hex, tail + SEAL_HEAD_LEN, UDR_HASH_HEXSIZE) != 0)
		return udr__error_set(UDR_ECORRUPT, "corrupt %s %s: its check does not match its bytes (damaged or edited)",
		                      what, path);
	return 1;
}

int udr__config_write(const char *tmpdir, const char *path, const char *json, enum udr__publish_mode mode)
{
	size_t len = strlen(json);
	char *text = malloc(len + 1);
	int rc;
	if (!text)
		return udr__error_oom();
	memcpy(text, json, len + 1);
	if ((rc = udr__seal(&text, &len)) == 0)
		rc = udr__write_file_atomic(tmpdir, path, text, len, mode, true);
	free(text);
	return rc;
}
