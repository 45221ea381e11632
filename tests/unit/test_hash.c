/*
 * test_hash.c - BLAKE3-256 content hashes: known answers, cross-check with
 * b3sum, streaming equals one-shot, hex parsing and printing.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char EMPTY_HEX[] = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
static const char ABC_HEX[] = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";

static void hash_known_empty(void **state)
{
	(void)state;
	udr_hash h;
	udr_hash_buf(&h, "", 0);
	assert_string_equal(th_hex(&h), EMPTY_HEX);
	udr_hash_buf(&h, NULL, 0);
	assert_string_equal(th_hex(&h), EMPTY_HEX);
}

static void hash_known_abc(void **state)
{
	(void)state;
	udr_hash h;
	udr_hash_buf(&h, "abc", 3);
	assert_string_equal(th_hex(&h), ABC_HEX);
}

/* Lengths around BLAKE3's 64-byte block and 1024-byte chunk boundaries. */
static const size_t XLENS[] = {0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 8193,
                               65536, 65537, 1048577};

static void hash_cross_b3sum(void **state)
{
	(void)state;
	if (system("command -v b3sum >/dev/null 2>&1") != 0)
		skip();
	char *dir = th_mkdtemp();
	char *file = th_join(dir, "data");
	for (size_t i = 0; i < sizeof(XLENS) / sizeof(XLENS[0]); i++) {
		size_t len = XLENS[i];
		char *buf = malloc(len + 1);
		assert_non_null(buf);
		th_fill(buf, len, (uint32_t)i + 7);
		th_write_file(file, buf, len);
		char *cmd = th_fmt("b3sum --no-names '%s'", file);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		char line[128] = {0};
		assert_non_null(fgets(line, sizeof(line), p));
		assert_int_equal(pclose(p), 0);
		line[64] = '\0';
		udr_hash h;
		udr_hash_buf(&h, buf, len);
		if (strcmp(th_hex(&h), line) != 0) {
			print_error("length %zu: udr %s b3sum %s\n", len, th_hex(&h), line);
			fail();
		}
		free(cmd);
		free(buf);
	}
	th_rmtree(dir);
	free(file);
	free(dir);
}

static void hash_streaming_equals_oneshot(void **state)
{
	(void)state;
	const size_t len = 200000;
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	th_fill(buf, len, 42);
	udr_hash one;
	udr_hash_buf(&one, buf, len);

	udr_hasher *hs = NULL;
	assert_int_equal(udr_hasher_new(&hs), 0);
	assert_non_null(hs);
	/* Odd piece sizes, including empty updates. */
	static const size_t pieces[] = {0, 1, 2, 63, 64, 65, 1000, 1024, 0, 4096, 7};
	size_t off = 0, k = 0;
	while (off < len) {
		size_t n = pieces[k++ % (sizeof(pieces) / sizeof(pieces[0]))];
		if (n > len - off)
			n = len - off;
		udr_hasher_update(hs, buf + off, n);
		off += n;
	}
	udr_hash st;
	udr_hasher_final(hs, &st);
	assert_true(udr_hash_equal(&st, &one));

	/* final does not end the hasher: continuing equals hashing the concatenation. */
	udr_hasher_update(hs, "abc", 3);
	unsigned char *buf2 = malloc(len + 3);
	assert_non_null(buf2);
	memcpy(buf2, buf, len);
	memcpy(buf2 + len, "abc", 3);
	udr_hash cat, cont;
	udr_hash_buf(&cat, buf2, len + 3);
	udr_hasher_final(hs, &cont);
	assert_true(udr_hash_equal(&cat, &cont));

	/* reset starts over. */
	udr_hasher_reset(hs);
	udr_hasher_update(hs, "ab", 2);
	udr_hasher_update(hs, "c", 1);
	udr_hasher_final(hs, &st);
	assert_string_equal(th_hex(&st), ABC_HEX);
	udr_hasher_reset(hs);
	udr_hasher_final(hs, &st);
	assert_string_equal(th_hex(&st), EMPTY_HEX);

	udr_hasher_free(hs);
	udr_hasher_free(NULL);
	free(buf);
	free(buf2);
}

static void hash_fd_from_offset(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	char *file = th_join(dir, "f");
	const size_t len = 300001;
	char *buf = malloc(len);
	assert_non_null(buf);
	th_fill(buf, len, 3);
	th_write_file(file, buf, len);

	int fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	udr_hash a, b;
	assert_int_equal(udr_hash_fd(&a, fd), 0);
	udr_hash_buf(&b, buf, len);
	assert_true(udr_hash_equal(&a, &b));
	/* From the current offset. */
	assert_int_equal(lseek(fd, 1000, SEEK_SET), 1000);
	assert_int_equal(udr_hash_fd(&a, fd), 0);
	udr_hash_buf(&b, buf + 1000, len - 1000);
	assert_true(udr_hash_equal(&a, &b));
	/* At EOF: the empty hash. */
	assert_int_equal(udr_hash_fd(&a, fd), 0);
	assert_string_equal(th_hex(&a), EMPTY_HEX);
	close(fd);

	/* A write-only descriptor cannot be read: UDR_EIO. */
	fd = open(file, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(udr_hash_fd(&a, fd), UDR_EIO);
	th_assert_error(UDR_EIO, NULL);
	close(fd);
	/* A closed descriptor too. */
	assert_int_equal(udr_hash_fd(&a, fd), UDR_EIO);

	th_rmtree(dir);
	free(buf);
	free(file);
	free(dir);
}

static void hash_hex_roundtrip_both_cases(void **state)
{
	(void)state;
	udr_hash h, g;
	assert_int_equal(udr_hash_fromhex(&h, ABC_HEX), 0);
	char out[UDR_HASH_HEXSIZE + 1];
	memset(out, 'x', sizeof(out));
	udr_hash_tohex(out, &h);
	assert_int_equal(out[UDR_HASH_HEXSIZE], '\0');
	assert_string_equal(out, ABC_HEX);
	udr_hash_buf(&g, "abc", 3);
	assert_true(udr_hash_equal(&h, &g));

	char upper[UDR_HASH_HEXSIZE + 1];
	for (int i = 0; i <= UDR_HASH_HEXSIZE; i++)
		upper[i] = (char)((ABC_HEX[i] >= 'a' && ABC_HEX[i] <= 'f') ? ABC_HEX[i] - 32 : ABC_HEX[i]);
	memset(&g, 0, sizeof(g));
	assert_int_equal(udr_hash_fromhex(&g, upper), 0);
	assert_true(udr_hash_equal(&h, &g));
	udr_hash_tohex(out, &g);
	assert_string_equal(out, ABC_HEX); /* always printed lowercase */

	/* Mixed case. */
	char mixed[UDR_HASH_HEXSIZE + 1];
	memcpy(mixed, ABC_HEX, sizeof(mixed));
	for (int i = 0; i < UDR_HASH_HEXSIZE; i += 2)
		mixed[i] = upper[i];
	assert_int_equal(udr_hash_fromhex(&g, mixed), 0);
	assert_true(udr_hash_equal(&h, &g));

	/* All byte values survive. */
	for (int i = 0; i < UDR_HASH_SIZE; i++)
		h.bytes[i] = (unsigned char)(i * 8 + 7);
	udr_hash_tohex(out, &h);
	assert_int_equal(udr_hash_fromhex(&g, out), 0);
	assert_memory_equal(h.bytes, g.bytes, UDR_HASH_SIZE);
}

static void hash_equal(void **state)
{
	(void)state;
	udr_hash a, b;
	udr_hash_buf(&a, "abc", 3);
	udr_hash_buf(&b, "abc", 3);
	assert_int_equal(udr_hash_equal(&a, &b), 1);
	b.bytes[31] ^= 1;
	assert_int_equal(udr_hash_equal(&a, &b), 0);
	b.bytes[31] ^= 1;
	b.bytes[0] ^= 0x80;
	assert_int_equal(udr_hash_equal(&a, &b), 0);
}

static void check_bad_hex(const char *hex, const char *quoted)
{
	udr_hash h;
	udr_error_clear();
	int rc = udr_hash_fromhex(&h, hex);
	if (rc != UDR_EINVAL) {
		print_error("udr_hash_fromhex(\"%s\") returned %d, expected UDR_EINVAL\n",
		            hex ? hex : "(null)", rc);
		fail();
	}
	th_assert_error(UDR_EINVAL, quoted);
}

static void hash_hex_bad_inputs(void **state)
{
	(void)state;
	char buf[200];
	check_bad_hex(NULL, NULL);
	check_bad_hex("", NULL);
	check_bad_hex("abc", "abc");
	/* 63 and 65 digits. */
	memcpy(buf, ABC_HEX, 63);
	buf[63] = '\0';
	check_bad_hex(buf, "6437b3ac");
	memcpy(buf, ABC_HEX, 64);
	buf[64] = '0';
	buf[65] = '\0';
	check_bad_hex(buf, "6437b3ac");
	/* 128 digits. */
	snprintf(buf, sizeof(buf), "%s%s", ABC_HEX, ABC_HEX);
	check_bad_hex(buf, NULL);
	/* Bad characters at the start, middle, end. */
	memcpy(buf, ABC_HEX, 65);
	buf[0] = 'g';
	check_bad_hex(buf, "g437b3ac");
	memcpy(buf, ABC_HEX, 65);
	buf[30] = ' ';
	check_bad_hex(buf, NULL);
	memcpy(buf, ABC_HEX, 65);
	buf[63] = 'z';
	check_bad_hex(buf, NULL);
	memcpy(buf, ABC_HEX, 65);
	buf[10] = '-';
	check_bad_hex(buf, NULL);
	/* Leading/trailing whitespace and 0x prefix are not hashes. */
	snprintf(buf, sizeof(buf), " %s", ABC_HEX);
	check_bad_hex(buf, NULL);
	snprintf(buf, sizeof(buf), "%s\n", ABC_HEX);
	check_bad_hex(buf, NULL);
	snprintf(buf, sizeof(buf), "0x%.62s", ABC_HEX);
	check_bad_hex(buf, NULL);
	/* Non-ASCII bytes must not crash and are rejected. */
	memcpy(buf, ABC_HEX, 65);
	buf[5] = (char)0xc3;
	buf[6] = (char)0xa4;
	check_bad_hex(buf, NULL);
	check_bad_hex("not-a-hash", "not-a-hash");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash_known_empty),
		cmocka_unit_test(hash_known_abc),
		cmocka_unit_test(hash_cross_b3sum),
		cmocka_unit_test(hash_streaming_equals_oneshot),
		cmocka_unit_test(hash_fd_from_offset),
		cmocka_unit_test(hash_hex_roundtrip_both_cases),
		cmocka_unit_test(hash_equal),
		cmocka_unit_test(hash_hex_bad_inputs),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
