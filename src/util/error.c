/*
 * error.c - the thread-local last error and the small shared helpers that
 * every module uses (udr_free, version string, error names).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef UDR_VERSION_STRING
#define UDR_VERSION_STRING "0.0.0"
#endif

static _Thread_local struct {
	udr_error err;
	char msg[2048];
} tls_error = {{0, ""}, ""};

const udr_error *udr_error_last(void)
{
	if (!tls_error.err.message)
		tls_error.err.message = "";
	return &tls_error.err;
}

void udr_error_clear(void)
{
	tls_error.err.code = 0;
	tls_error.msg[0] = '\0';
	tls_error.err.message = tls_error.msg;
}

static int error_vset(int code, const char *suffix, const char *fmt, va_list ap)
{
	/* Format into a scratch buffer first: callers may pass the previous
	 * message (udr_error_last()->message) as an argument to wrap it. */
	char tmp[sizeof(tls_error.msg)];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	if (suffix && n >= 0 && (size_t)n < sizeof(tmp))
		snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%s", suffix);
	memcpy(tls_error.msg, tmp, sizeof(tmp));
	tls_error.err.code = code;
	tls_error.err.message = tls_error.msg;
	return code;
}

int udr__error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

static int os_error(int code, int err, const char *fmt, va_list ap)
{
	char suffix[160];
	snprintf(suffix, sizeof(suffix), ": %s (errno %d)", strerror(err), err);
	return error_vset(code, suffix, fmt, ap);
}

int udr__error_os(int err, const char *fmt, ...)
{
	int code = err == ENOENT ? UDR_ENOTFOUND : err == ENOMEM ? UDR_ENOMEM : UDR_EIO;
	va_list ap;
	va_start(ap, fmt);
	os_error(code, err, fmt, ap);
	va_end(ap);
	return code;
}

int udr__error_io(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	os_error(UDR_EIO, err, fmt, ap);
	va_end(ap);
	return UDR_EIO;
}

int udr__error_oom(void)
{
	return udr__error_set(UDR_ENOMEM, "out of memory");
}

void udr__quote(char *out, size_t outsz, const char *in)
{
	size_t o = 0;
	if (outsz == 0)
		return;
	if (!in) {
		snprintf(out, outsz, "(null)");
		return;
	}
	for (size_t i = 0; in[i]; i++) {
		unsigned char c = (unsigned char)in[i];
		char tmp[8];
		size_t n;
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			tmp[0] = (char)c;
			n = 1;
		} else if (c == '\\') {
			memcpy(tmp, "\\\\", 2);
			n = 2;
		} else {
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		}
		if (o + n + 4 >= outsz) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o] = '\0';
}

const char *udr_strerror(int code)
{
	switch (code) {
	case UDR_OK: return "success";
	case UDR_ERROR: return "error";
	case UDR_EINVAL: return "invalid argument";
	case UDR_ENOTFOUND: return "not found";
	case UDR_ECONFLICT: return "conflict";
	case UDR_ECORRUPT: return "integrity failure";
	case UDR_EIO: return "I/O error";
	case UDR_ENOMEM: return "out of memory";
	case UDR_ELOCKED: return "locked";
	case UDR_EEXPIRED: return "expired by retention";
	default: return "unknown error";
	}
}

const char *udr_libversion(void)
{
	return UDR_VERSION_STRING;
}

void udr_free(void *ptr)
{
	free(ptr);
}

void udr_strarray_free(char **strings, size_t count)
{
	if (!strings)
		return;
	for (size_t i = 0; i < count; i++)
		free(strings[i]);
	free(strings);
}
