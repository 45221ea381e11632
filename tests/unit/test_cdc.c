/*
 * test_cdc.c - content-defined chunking: the cut points are part of the
 * on-disk format (dedup with existing stores depends on them), so the
 * optimized udr__cdc_cut is compared with the plain byte-at-a-time FastCDC
 * loop it replaced, over random, text-like and constant inputs, several
 * store settings, every kind of length and both values of `final`.
 */
#include "helpers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/cdc.h"

/* ---- the reference: the loop as first written ---------------------------- */

static uint64_t ref_gear[256];

static uint64_t ref_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void ref_init(void)
{
	uint64_t s = 0x5544522d43444331ull;
	for (int i = 0; i < 256; i++)
		ref_gear[i] = ref_splitmix64(&s);
}

static size_t ref_cut(const udr__cdc *c, const unsigned char *data, size_t len, int final)
{
	size_t n = len, normal = c->avg, i;
	uint64_t fp = 0;
	if (len <= c->min)
		return final ? len : 0;
	if (n > c->max)
		n = c->max;
	if (normal > n)
		normal = n;
	for (i = c->min; i < normal; i++) {
		fp = (fp << 1) + ref_gear[data[i]];
		if (!(fp & c->mask_s))
			return i + 1;
	}
	for (; i < n; i++) {
		fp = (fp << 1) + ref_gear[data[i]];
		if (!(fp & c->mask_l))
			return i + 1;
	}
	if (n == c->max || final)
		return n;
	return 0;
}

/* ---- inputs ----------------------------------------------------------------- */

static uint64_t rng = 12345;

static uint64_t next_rand(void)
{
	return ref_splitmix64(&rng);
}

enum fill { RANDOM, TEXT, CONSTANT, LOWBITS };

static void fill(unsigned char *p, size_t n, enum fill how)
{
	static const char *const words[] = {"alpha", "beta", "gamma", "2024-01-", "sensor", ",", "\n", "0.25"};
	size_t i = 0;
	switch (how) {
	case RANDOM:
		for (; i < n; i++)
			p[i] = (unsigned char)next_rand();
		break;
	case TEXT:
		while (i < n) {
			const char *w = words[next_rand() % 8];
			for (size_t k = 0; w[k] && i < n; k++)
				p[i++] = (unsigned char)w[k];
		}
		break;
	case CONSTANT:
		memset(p, 'x', n);
		break;
	case LOWBITS: /* few distinct bytes: long runs without a cut point */
		for (; i < n; i++)
			p[i] = (unsigned char)(next_rand() & 3);
		break;
	}
}

/* Cut data[0..len) into pieces with both implementations, as the put does
 * (more input may follow until the end), and compare every cut. */
static void compare_stream(const udr__cdc *c, const unsigned char *data, size_t len)
{
	size_t start = 0;
	while (start < len) {
		size_t have = len - start;
		/* a call with a window shorter than max, as at the end of a
		 * read buffer, must agree too (0 or the same cut) */
		for (int final = 0; final <= 1; final++) {
			size_t a = udr__cdc_cut(c, data + start, have, final);
			size_t b = ref_cut(c, data + start, have, final);
			if (a != b)
				fail_msg("cut at %zu (have %zu, final %d): %zu, reference %zu", start, have, final, a, b);
			if (have > 7) {
				size_t w = have - 7;
				a = udr__cdc_cut(c, data + start, w, final);
				b = ref_cut(c, data + start, w, final);
				if (a != b)
					fail_msg("cut at %zu (window %zu, final %d): %zu, reference %zu", start, w, final, a,
					         b);
			}
		}
		start += udr__cdc_cut(c, data + start, have, 1);
	}
}

static void check_settings(size_t min, size_t avg, size_t max, size_t total)
{
	udr__cdc c;
	unsigned char *buf = malloc(total);
	assert_non_null(buf);
	assert_int_equal(udr__cdc_init(&c, min, avg, max), 0);
	for (int how = RANDOM; how <= LOWBITS; how++) {
		fill(buf, total, (enum fill)how);
		compare_stream(&c, buf, total);
		/* every short length around min and the unrolled steps */
		for (size_t l = min > 16 ? min - 16 : 0; l < min + 40 && l <= total; l++)
			for (int final = 0; final <= 1; final++)
				assert_int_equal(udr__cdc_cut(&c, buf, l, final), ref_cut(&c, buf, l, final));
	}
	free(buf);
}

static void test_cdc__same_cuts_default(void **state)
{
	(void)state;
	check_settings(32768, 131072, 524288, (size_t)8 << 20);
}

static void test_cdc__same_cuts_small(void **state)
{
	(void)state;
	check_settings(1024, 4096, 16384, (size_t)1 << 20);
	check_settings(64, 64, 64, 4096);
	check_settings(64, 128, 100000, (size_t)1 << 20);
	check_settings(1000, 1024, 1027, 200000); /* min and max not multiples of 4 */
	check_settings(4097, 8192, 8193, 200000);
}

/* A few exact cuts of the default settings: a change to the table, the masks
 * or the loop shows here even if both implementations changed together. */
static void test_cdc__known_cuts(void **state)
{
	udr__cdc c;
	uint64_t s = 7;
	size_t total = (size_t)4 << 20, start = 0, n = 0;
	uint64_t sum = 0;
	unsigned char *buf = malloc(total);
	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < total; i++)
		buf[i] = (unsigned char)ref_splitmix64(&s);
	assert_int_equal(udr__cdc_init(&c, 32768, 131072, 524288), 0);
	while (start < total) {
		size_t cut = udr__cdc_cut(&c, buf + start, total - start, 1);
		sum = sum * 31 + cut;
		start += cut;
		n++;
	}
	/* the values printed by the byte loop before it was unrolled */
	assert_int_equal(n, 29);
	assert_int_equal(sum, 6799300536543678718ull);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cdc__same_cuts_default),
	    cmocka_unit_test(test_cdc__same_cuts_small),
	    cmocka_unit_test(test_cdc__known_cuts),
	};
	ref_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
