/*
 * fuzz_object.c - fuzz target for the decoding path: the input (after a
 * first byte choosing the kind) is installed as a compressed, delta or
 * manifest object in a scratch store that also holds a few valid pieces, and
 * read back with and without verification.  Damage must come back as an
 * error code (never a crash, a hang or bytes of the wrong size).
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udr/udr.h>
#include "store/store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static udr_store *store;
static udr_hash target;
static char dir[] = "/tmp/udr-fuzz-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* The scratch store goes with the process (replays ran in every make test). */
static void teardown(void)
{
	udr_store_close(store);
	store = NULL;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	static const char piece[] = "base piece for deltas: 0123456789 abcdefghijklmnopqrstuvwxyz";
	udr_hash h;
	if (!mkdtemp(dir) || udr_store_open(&store, dir, UDR_OPEN_CREATE) < 0)
		abort();
	atexit(teardown);
	/* valid objects the fuzzed ones may name as pieces or bases */
	udr_store_put(&h, store, piece, sizeof(piece) - 1);
	udr_store_put(&h, store, "x", 1);
	memset(target.bytes, 0xab, sizeof(target.bytes));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum udr__kind kinds[] = {UDR__K_ZST, UDR__K_DELTA, UDR__K_MANIFEST, UDR__K_RAW};
	char hex[UDR_HASH_HEXSIZE + 1];
	enum udr__kind kind;
	char *path;
	void *out = NULL;
	size_t len = 0;
	uint64_t sz;
	int fd, rc;
	if (!store)
		setup();
	if (size < 1)
		return 0;
	kind = kinds[data[0] % 4];
	if (!(path = udr__obj_path(store, &target, kind, hex)) || udr__store_fanout(store, path, true) < 0)
		abort();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	if (kind == UDR__K_MANIFEST && size - 1 >= 96) {
		/* name the target and fix the trailer, so the fuzzer reaches the
		 * piece lookups behind the checks it cannot forge */
		unsigned char *copy = malloc(size - 1);
		udr_hash tail;
		if (!copy)
			abort();
		memcpy(copy, data + 1, size - 1);
		memcpy(copy + 24, target.bytes, 32);
		udr_hash_buf(&tail, copy, size - 1 - 32);
		memcpy(copy + size - 1 - 32, tail.bytes, 32);
		if (write(fd, copy, size - 1) != (ssize_t)(size - 1))
			abort();
		free(copy);
	} else if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
		abort();
	}
	close(fd);
	rc = udr_store_get(&out, &len, store, &target);
	if (rc == 0 && udr_store_size(&sz, store, &target) == 0 && sz != len)
		abort(); /* an unverified read returned bytes of the wrong size */
	free(out);
	out = NULL;
	rc = udr_store_get_verified(&out, &len, store, &target);
	if (rc == 0)
		abort(); /* nothing hashes to 0xabab...: verification must fail */
	free(out);
	unlink(path);
	free(path);
	return 0;
}
