/* Store "hello" and commit it as the next version of table greetings.
 * Build: cc hello.c $(pkg-config --cflags --libs udr) -o hello
 * Run:   ./hello [STORE]   (default ./data; created when missing) */
#include <inttypes.h>
#include <stdio.h>

#include <udr/udr.h>

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "data";
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_db *db;
	udr_hash h;
	udr_version *v = NULL;
	int rc;

	if (udr_db_open(&db, root, UDR_OPEN_CREATE) < 0) {
		fprintf(stderr, "hello: %s\n", udr_error_last()->message);
		return 1;
	}
	rc = udr_store_put(&h, udr_db_store(db), "hello", 5);
	if (rc == 0)
		rc = udr_version_new(&v, "greetings", 0);
	if (rc == 0)
		rc = udr_version_add_chunk(v, &h);
	if (rc == 0)
		rc = udr_catalog_commit_next(udr_db_catalog(db), v); /* sets v->version */
	if (rc < 0) {
		fprintf(stderr, "hello: %s\n", udr_error_last()->message);
	} else {
		udr_hash_tohex(hex, &h);
		printf("greetings@%" PRIu64 " = %s\n", v->version, hex);
	}
	udr_version_free(v);
	udr_db_close(db);
	return rc < 0 ? 1 : 0;
}
