/*
 * hash.c - content hashes: BLAKE3-256 through the official C implementation
 * (with its runtime SIMD dispatch), hex conversion.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blake3.h"
#include "util.h"

struct udr_hasher {
	blake3_hasher b3;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int udr_hash_fromhex(udr_hash *out, const char *hex)
{
	char q[160];
	size_t n;
	if (!out)
		return udr__error_set(UDR_EINVAL, "invalid argument: output hash is NULL");
	if (!hex)
		return udr__error_set(UDR_EINVAL, "invalid hash: NULL (expected 64 hex digits)");
	n = strnlen(hex, UDR_HASH_HEXSIZE + 1);
	if (n != UDR_HASH_HEXSIZE) {
		udr__quote(q, sizeof(q), hex);
		return udr__error_set(UDR_EINVAL, "invalid hash '%s': expected 64 hex digits, got %s%zu characters",
		                      q, n > UDR_HASH_HEXSIZE ? "more than " : "",
		                      n > UDR_HASH_HEXSIZE ? (size_t)UDR_HASH_HEXSIZE : n);
	}
	for (size_t i = 0; i < UDR_HASH_SIZE; i++) {
		int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			udr__quote(q, sizeof(q), hex);
			return udr__error_set(UDR_EINVAL, "invalid hash '%s': not a hex digit at position %zu",
			                      q, 2 * i + (hi < 0 ? 0 : 1) + 1);
		}
		out->bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void udr_hash_tohex(char out[UDR_HASH_HEXSIZE + 1], const udr_hash *h)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < UDR_HASH_SIZE; i++) {
		out[2 * i] = digits[h->bytes[i] >> 4];
		out[2 * i + 1] = digits[h->bytes[i] & 15];
	}
	out[UDR_HASH_HEXSIZE] = '\0';
}

int udr_hash_equal(const udr_hash *a, const udr_hash *b)
{
	return memcmp(a->bytes, b->bytes, UDR_HASH_SIZE) == 0;
}

void udr_hash_buf(udr_hash *out, const void *data, size_t len)
{
	blake3_hasher h;
	blake3_hasher_init(&h);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out->bytes, UDR_HASH_SIZE);
}

int udr_hash_fd(udr_hash *out, int fd)
{
	/* 1 MiB reads keep the SIMD kernels fed with many 1 KiB BLAKE3 chunks at
	 * once; the buffer is heap-allocated to keep stacks small. */
	const size_t bufsz = 1u << 20;
	unsigned char *buf = malloc(bufsz);
	blake3_hasher h;
	if (!buf)
		return udr__error_oom();
	blake3_hasher_init(&h);
	for (;;) {
		ssize_t n = UDR_IO->read(fd, buf, bufsz);
		if (n < 0) {
			int err = errno;
			free(buf);
			return udr__error_io(err, "read failed while hashing");
		}
		if (n == 0)
			break;
		blake3_hasher_update(&h, buf, (size_t)n);
	}
	free(buf);
	blake3_hasher_finalize(&h, out->bytes, UDR_HASH_SIZE);
	return 0;
}

int udr_hasher_new(udr_hasher **out)
{
	udr_hasher *h = malloc(sizeof(*h));
	if (!h)
		return udr__error_oom();
	blake3_hasher_init(&h->b3);
	*out = h;
	return 0;
}

void udr_hasher_update(udr_hasher *h, const void *data, size_t len)
{
	blake3_hasher_update(&h->b3, data, len);
}

void udr_hasher_final(udr_hasher *h, udr_hash *out)
{
	blake3_hasher_finalize(&h->b3, out->bytes, UDR_HASH_SIZE);
}

void udr_hasher_reset(udr_hasher *h)
{
	blake3_hasher_reset(&h->b3);
}

void udr_hasher_free(udr_hasher *h)
{
	free(h);
}
