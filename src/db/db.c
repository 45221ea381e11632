/*
 * db.c - one handle over a store root: <root>/chunks and <root>/catalog,
 * with the catalog checking chunks against the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"
#include "store/store_internal.h"

#define ROOT_FORMAT 1

struct udr_db {
	char *path;
	udr_store *store;
	udr_catalog *catalog;
};

void udr_db_close(udr_db *db)
{
	if (!db)
		return;
	udr_catalog_close(db->catalog);
	udr_store_close(db->store);
	free(db->path);
	free(db);
}

int udr_db_open(udr_db **out, const char *path, unsigned int flags)
{
	udr_db *db;
	char *sub = NULL;
	struct stat st;
	bool root_exists;
	int rc;
	if (!out || !path || !*path)
		return udr__error_set(UDR_EINVAL, "invalid argument: empty store path");
	*out = NULL;
	if (!(db = calloc(1, sizeof(*db))) || !(db->path = strdup(path))) {
		free(db);
		return udr__error_oom();
	}
	if (UDR_IO->stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		if (!(flags & UDR_OPEN_CREATE)) {
			rc = udr__error_set(UDR_ENOTFOUND, "not a udr store: %s does not exist (run udr init)", path);
			goto fail;
		}
		if ((rc = udr__mkdirs(path)) < 0)
			goto fail;
	}
	rc = udr__check_config(path, "udr-store", ROOT_FORMAT);
	if (rc == UDR_ENOTFOUND && !(flags & UDR_OPEN_CREATE)) {
		rc = udr__error_set(UDR_ENOTFOUND, "not a udr store: %s (run udr init)", path);
		goto fail;
	}
	if (rc < 0 && rc != UDR_ENOTFOUND)
		goto fail;
	root_exists = rc > 0;
	if (!(sub = udr__path_join(path, "chunks"))) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if ((rc = udr_store_open(&db->store, sub, flags)) < 0)
		goto part_missing;
	free(sub);
	if (!(sub = udr__path_join(path, "catalog"))) {
		rc = UDR_ENOMEM;
		goto fail;
	}
	if ((rc = udr_catalog_open(&db->catalog, sub, db->store, flags)) < 0)
		goto part_missing;
	free(sub);
	sub = NULL;
	rc = udr__check_config(path, "udr-store", ROOT_FORMAT);
	if (rc < 0 && rc != UDR_ENOTFOUND)
		goto fail;
	if (rc == UDR_ENOTFOUND) {
		/* written last: a root with a config has both of its parts */
		char *cfgpath = udr__path_join(path, "config.json");
		if (!cfgpath) {
			rc = UDR_ENOMEM;
			goto fail;
		}
		udr_error_clear();
		rc = udr__config_write(udr__store_tmpdir(db->store), cfgpath,
		                       "{\"format\":1,\"kind\":\"udr-store\",\"sealed\":true}", UDR__PUBLISH_NEW);
		free(cfgpath);
		if (rc < 0)
			goto fail;
	}
	*out = db;
	return 0;
part_missing:
	/* the root's config is written last, after both parts: a part that
	 * is not there under a root that is is damage, not a missing store */
	if (rc == UDR_ENOTFOUND && root_exists)
		rc = udr__error_set(UDR_ECORRUPT, "damaged udr store %s: %s", path, udr_error_last()->message);
fail:
	free(sub);
	udr_db_close(db);
	return rc;
}

udr_store *udr_db_store(udr_db *db)
{
	return db ? db->store : NULL;
}

udr_catalog *udr_db_catalog(udr_db *db)
{
	return db ? db->catalog : NULL;
}

const char *udr_db_path(const udr_db *db)
{
	return db ? db->path : NULL;
}
