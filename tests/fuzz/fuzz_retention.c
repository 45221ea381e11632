/*
 * fuzz_retention.c - fuzz target for the retention parsers (docs/GC.md 1.1):
 * durations and policies.  Any bytes must parse into a value that round-trips
 * (durations) or a policy whose rules evaluate, or be rejected with
 * UDR_EINVAL; never crash.  The first byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <udr/gc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void duration(const char *text)
{
	int64_t ms, again;
	char buf[64];
	int rc = udr_retention_parse_duration(&ms, text);
	if (rc != 0) {
		if (rc != UDR_EINVAL)
			abort();
		return;
	}
	/* every unit is whole seconds: the canonical text reads back exactly */
	udr_retention_format_duration(buf, sizeof buf, ms);
	if (ms < 0 || udr_retention_parse_duration(&again, buf) != 0 || again != ms)
		abort();
}

static void policy(const char *text)
{
	static const char *const tables[] = { "t", "prices", "raw_events" };
	static const char *const branches[] = { "main", "dev", "dev/a", "dev/team/b" };
	udr_retention_policy *p = NULL;
	int rc = udr_retention_policy_parse(&p, text);
	if (rc != 0) {
		if ((rc != UDR_EINVAL && rc != UDR_ENOMEM) || p != NULL)
			abort();
		return;
	}
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 4; j++) {
			udr_retention_rule r;
			unsigned out[3];
			const int64_t t[] = { 3000000, 2000000, 1000 };
			const char *src = NULL;
			if (udr_retention_policy_rule(&r, &src, p, tables[i], branches[j]) != 0 || src == NULL ||
			    udr_retention_keep(out, t, 3, &r, 4000000) != 0 || out[0] == 0)
				abort(); /* a checked rule always evaluates, and keeps c0 */
		}
	udr_retention_policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	if (size == 0 || !(text = malloc(size)))
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] & 1)
		policy(text);
	else
		duration(text);
	free(text);
	return 0;
}
