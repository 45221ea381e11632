/*
 * test_error.c - the error API: udr_strerror for every code, the
 * thread-local last error, clearing, the library version.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const int CODES[] = {UDR_OK,        UDR_ERROR, UDR_EINVAL, UDR_ENOTFOUND, UDR_ECONFLICT,
                            UDR_ECORRUPT,  UDR_EIO,   UDR_ENOMEM, UDR_ELOCKED,   UDR_EEXPIRED};

static void error_strerror_each_code(void **state)
{
	(void)state;
	const size_t n = sizeof(CODES) / sizeof(CODES[0]);
	for (size_t i = 0; i < n; i++) {
		const char *s = udr_strerror(CODES[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s, udr_strerror(CODES[j])) == 0) {
				print_error("codes %d and %d share the text \"%s\"\n", CODES[i], CODES[j], s);
				fail();
			}
		}
	}
	assert_non_null(strstr(udr_strerror(UDR_ENOTFOUND), "not found"));
	assert_int_equal(UDR_EEXPIRED, -9);
	assert_string_equal(udr_strerror(UDR_EEXPIRED), "expired by retention");
	/* Unknown codes still give text. */
	assert_non_null(udr_strerror(-9999));
	assert_string_equal(udr_strerror(-10), "unknown error");
	assert_non_null(udr_strerror(12345));
	assert_non_null(udr_strerror(-100));
}

static void error_last_set_and_cleared(void **state)
{
	(void)state;
	udr_error_clear();
	const udr_error *e = udr_error_last();
	assert_non_null(e);
	assert_int_equal(e->code, 0);
	assert_non_null(e->message);
	assert_string_equal(e->message, "");
	udr_hash h;
	assert_int_equal(udr_hash_fromhex(&h, "xyz"), UDR_EINVAL);
	e = udr_error_last();
	assert_int_equal(e->code, UDR_EINVAL);
	assert_non_null(strstr(e->message, "xyz"));
	udr_error_clear();
	e = udr_error_last();
	assert_int_equal(e->code, 0);
	assert_string_equal(e->message, "");
	/* A long bad value does not overflow the message. */
	char big[10000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(udr_hash_fromhex(&h, big), UDR_EINVAL);
	assert_int_equal(udr_error_last()->code, UDR_EINVAL);
	assert_true(strlen(udr_error_last()->message) < 100000);
	assert_int_equal(udr_table_name_check(big), UDR_EINVAL);
}

static void *thread_fn(void *arg)
{
	int *ok = arg;
	/* A fresh thread has no error, whatever the main thread did. */
	const udr_error *e = udr_error_last();
	*ok = (e != NULL && e->code == 0 && e->message != NULL);
	udr_hash h;
	if (udr_hash_fromhex(&h, "thread-bad") != UDR_EINVAL)
		*ok = 0;
	if (udr_error_last()->code != UDR_EINVAL || !strstr(udr_error_last()->message, "thread-bad"))
		*ok = 0;
	return NULL;
}

static void error_last_is_thread_local(void **state)
{
	(void)state;
	udr_hash h;
	assert_int_equal(udr_hash_fromhex(&h, "main-bad"), UDR_EINVAL);
	int ok = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, thread_fn, &ok), 0);
	pthread_join(t, NULL);
	assert_true(ok);
	/* The thread's error did not replace ours. */
	th_assert_error(UDR_EINVAL, "main-bad");
}

static void error_libversion(void **state)
{
	(void)state;
	assert_non_null(udr_libversion());
	assert_string_equal(udr_libversion(), "0.1.0");
	udr_strarray_free(NULL, 0);
	udr_free(NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_strerror_each_code),
		cmocka_unit_test(error_last_set_and_cleared),
		cmocka_unit_test(error_last_is_thread_local),
		cmocka_unit_test(error_libversion),
	};
	return th_run(argc, argv, tests, NULL, NULL);
}
