/*
 * cli/util.c - helpers shared by the udr commands: error reporting and exit
 * codes, option parsing, operand checks, opening the store, JSON strings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_errorf(const char *fmt, ...)
{
	va_list ap;

	fputs("udr: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_exit_code(int udr_code)
{
	switch (udr_code) {
	case UDR_OK:
		return CLI_EXIT_OK;
	case UDR_EINVAL:
		return CLI_EXIT_USAGE;
	case UDR_ENOTFOUND:
		return CLI_EXIT_NOTFOUND;
	case UDR_ECONFLICT:
		return CLI_EXIT_CONFLICT;
	case UDR_ECORRUPT:
		return CLI_EXIT_CORRUPT;
	case UDR_EEXPIRED:
		return CLI_EXIT_EXPIRED;
	default: /* UDR_EIO, UDR_ENOMEM, UDR_ELOCKED, UDR_ERROR */
		return CLI_EXIT_IO;
	}
}

int cli_fail(int udr_code)
{
	const udr_error *e = udr_error_last();

	if (e->message && e->message[0])
		cli_errorf("%s", e->message);
	else
		cli_errorf("%s", udr_strerror(udr_code));
	return cli_exit_code(udr_code);
}

int cli_help(const cli_command *cmd)
{
	fputs(cmd->usage, stdout);
	return CLI_EXIT_OK;
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("udr: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd)
		fputs(cmd->usage, stderr);
	return CLI_EXIT_USAGE;
}

/* The name of the option getopt just rejected, for the message. */
static const char *rejected_option(char **argv, char *buf, size_t size)
{
	/* a long option's optopt is its value (OPT_... codes, not letters):
	 * its name is the word getopt stopped at */
	if (optopt > ' ' && optopt < 127 && (optind < 1 || strncmp(argv[optind - 1], "--", 2) != 0)) {
		snprintf(buf, size, "-%c", optopt);
		return buf;
	}
	return argv[optind - 1];
}

int cli_parse_options(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *longopts,
                      cli_opt_fn on_opt, void *payload)
{
	char opts[64], name[8];
	int opt, rc;

	/* ':' first: a missing option argument is reported as ':', not '?'. */
	snprintf(opts, sizeof(opts), ":hq%s", shortopts ? shortopts : "");
	optind = 0; /* GNU: full re-initialisation, main() parsed before us */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return cli_help(cmd);
		case 'q':
			ctx->quiet = 1;
			break;
		case CLI_OPT_STORE:
			ctx->store_dir = optarg;
			break;
		case ':':
			return cli_usage_error(cmd, "option %s requires an argument",
			                       rejected_option(argv, name, sizeof(name)));
		case '?': {
			/* "udr sql '-- a comment\nSELECT 1'": an operand, not an option */
			const char *w = rejected_option(argv, name, sizeof(name));
			return cli_usage_error(cmd, "unknown option %s%s", w,
			                       strpbrk(w, " \t\n") ? " (an operand that starts with - goes after --: "
			                                             "udr COMMAND [OPTIONS] -- OPERAND)"
			                                           : "");
		}
		default:
			rc = on_opt ? on_opt(opt, optarg, payload) : CLI_EXIT_USAGE;
			if (rc >= 0)
				return rc;
			break;
		}
	}
	return -1;
}

int cli_parse_hash(udr_hash *out, const char *text)
{
	int rc = udr_hash_fromhex(out, text);

	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

int cli_parse_version(uint64_t *out, const char *text)
{
	uint64_t v = 0;
	const char *p;

	for (p = text; *p; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			break;
		v = v * 10 + d;
	}
	if (p == text || *p || v == 0) {
		cli_errorf("invalid version number \"%s\" (expected an integer >= 1)", text);
		return CLI_EXIT_USAGE;
	}
	*out = v;
	return CLI_EXIT_OK;
}

void cli_put_text(const char *s, size_t n)
{
	/* a commit message is anyone's text: a terminal's control sequences
	 * (ESC, CR, backspace) in it are shown, not obeyed */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

int cli_parse_limit(uint64_t *out, const char *text)
{
	uint64_t v = 0;
	const char *p;

	for (p = text; *p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (p == text || *p || v == 0) {
		cli_errorf("invalid --limit \"%s\" (expected an integer >= 1)", text);
		return CLI_EXIT_USAGE;
	}
	*out = v;
	return CLI_EXIT_OK;
}

int cli_parse_uint(uint64_t *out, const char *text, uint64_t max, int suffixes, const char *what)
{
	uint64_t v = 0, mult = 1;
	const char *p;

	for (p = text; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			goto bad;
		v = v * 10 + d;
	}
	if (p == text)
		goto bad;
	if (suffixes && *p) {
		switch (*p) {
		case 'k': case 'K': mult = (uint64_t)1 << 10; break;
		case 'm': case 'M': mult = (uint64_t)1 << 20; break;
		case 'g': case 'G': mult = (uint64_t)1 << 30; break;
		default: goto bad;
		}
		p++;
		if (strcmp(p, "iB") == 0 || strcmp(p, "B") == 0)
			p += strlen(p);
	}
	if (*p || v > UINT64_MAX / mult || v * mult > max)
		goto bad;
	*out = v * mult;
	return CLI_EXIT_OK;
bad:
	cli_errorf("invalid %s \"%s\" (expected an integer from 0 to %llu%s)", what, text,
	           (unsigned long long)max, suffixes ? ", suffixes K, M, G allowed" : "");
	return CLI_EXIT_USAGE;
}

int cli_check_table(const char *name)
{
	int rc = udr_table_name_check(name);

	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

int cli_open_db(udr_db **out, const cli_ctx *ctx)
{
	int rc = udr_db_open(out, ctx->store_dir, 0);

	if (rc == UDR_ENOTFOUND) {
		cli_errorf("not a udr store: %s (run udr init)", ctx->store_dir);
		return CLI_EXIT_NOTFOUND;
	}
	return rc ? cli_fail(rc) : CLI_EXIT_OK;
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 when s does not start
 * one (bad lead byte, truncated, overlong, surrogate, above U+10FFFF).
 */
static size_t utf8_seqlen(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	return n;
}

void cli_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (*p < 0x20) {
			fprintf(f, "\\u%04x", *p++);
		} else if ((n = utf8_seqlen(p)) > 0) {
			fwrite(p, 1, n, f);
			p += n;
		} else {
			/* Not UTF-8: emit U+FFFD so the output stays valid JSON. */
			fputs("\\ufffd", f);
			p++;
		}
	}
	fputc('"', f);
}

int cli_finish_stdout(int code)
{
	int failed = fflush(stdout) != 0 || ferror(stdout);
	int err = errno;

	if (fclose(stdout) != 0 && !failed) {
		failed = 1;
		err = errno;
	}
	if (!failed)
		return code;
	cli_errorf("error writing to standard output: %s", strerror(err ? err : EIO));
	return code ? code : CLI_EXIT_IO;
}

void cli_format_time(char out[80], int64_t ms)
{
	int64_t secs = ms / 1000, rem = ms % 1000;
	time_t t;
	struct tm tm;

	if (rem < 0) { /* floor, not truncation, for times before 1970 */
		rem += 1000;
		secs -= 1;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 80, "%s", "invalid");
		return;
	}
	snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

void cli_format_size(char out[32], uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(out, 32, "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(out, 32, "%.1f %s", v, units[u]);
}
