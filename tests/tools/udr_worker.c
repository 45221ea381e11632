/*
 * udr_worker.c - a load generator for the stress tests, linked to libudr.
 * Each line it prints is written (and flushed) only after the library call
 * it reports has returned, so a test that kills it knows what was done.
 *
 *   udr_worker crashloop ROOT SEED     puts and commits forever:
 *                                      "put <hash>", "commit <table> <version> <hash>..."
 *   udr_worker commits ROOT TABLE N    N x commit_next of one chunk: "commit <table> <version>"
 *   udr_worker puts ROOT SEED N        N puts, half shared content, half own: "put <hash>"
 *   udr_worker group ROOT SEED T...    commits forever to one or two of the tables T... (two
 *                                      through a transaction): "ack <seq> (<table> <version>
 *                                      <hash>)..." once the commit returned success
 *   udr_worker reader ROOT T...        reads forever: "seen <head> <table> <version> <seq>
 *                                      <hash>" for each table's latest version as read
 *
 * With UDR_WORKER_POWERCUT=DIR every worker shares one simulated disk
 * (powercut_setup below): only what a syncfs saw survives a power cut.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udr/udr.h>
#include <udr/sys/io.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "udr_worker: %s: %d %s\n", what, rc, udr_error_last()->message);
	exit(2);
}

/*
 * A power cut shared by several processes (UDR_WORKER_POWERCUT=DIR): the
 * "disk" is DIR/snap, a copy of the store ROOT holding what a syncfs made
 * durable.  Every change to a path under ROOT first notes the path in
 * DIR/dirty (under a shared flock on DIR/lock, so that it is noted before
 * it happens); a syncfs takes that flock exclusively, so that no change is
 * half done, and copies the current state of every noted path into snap
 * (each file atomically): everything any process did before the syncfs
 * began is then on the "disk".  An fsync copies the one file it makes
 * durable (or, for a directory, the noted paths in it).  The test cuts the power by killing every process at once and replacing
 * ROOT by snap.  A cut during a copy leaves some of the newer changes in
 * snap and not others: a legal outcome too, since the file system promises
 * no order among unsynced changes.
 */
static const udr_io_methods *pc_real;
static udr_io_methods pc_io;
static char pc_root[4096], pc_snap[4096], pc_dirtypath[4096];
static size_t pc_rootlen;
static int pc_lock = -1, pc_dirty = -1;
static char *pc_fdpath[4096];

static void pc_note(const char *path)
{
	char line[4200];
	int n;
	if (strncmp(path, pc_root, pc_rootlen) != 0 || (path[pc_rootlen] != '/' && path[pc_rootlen] != 0))
		return;
	n = snprintf(line, sizeof(line), "%s\n", path);
	if (n > 0 && (size_t)n < sizeof(line) && write(pc_dirty, line, (size_t)n) != n)
		_exit(90);
}

static void pc_begin(void)
{
	if (flock(pc_lock, LOCK_SH) < 0)
		_exit(91);
}

static void pc_end(void)
{
	flock(pc_lock, LOCK_UN);
}

static void pc_mkdirs(const char *path)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
}

static void pc_remove(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			char q[4200];
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(q, sizeof(q), "%s/%s", path, e->d_name);
			pc_remove(q);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

/* snap gets path's present state (under the exclusive flock) */
static void pc_copy(const char *path)
{
	char to[4200], tmp[4300], *slash, buf[65536];
	struct stat st;
	snprintf(to, sizeof(to), "%s%s", pc_snap, path + pc_rootlen);
	if (lstat(path, &st) < 0) {
		pc_remove(to);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		pc_mkdirs(to);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s/.pc-copy", pc_snap);
	if ((slash = strrchr(to, '/')) != NULL) {
		*slash = 0;
		pc_mkdirs(to);
		*slash = '/';
	}
	int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;
	if (in < 0 || out < 0)
		_exit(92);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			_exit(93);
	close(in);
	close(out);
	struct stat ts;
	if (lstat(to, &ts) == 0 && S_ISDIR(ts.st_mode))
		pc_remove(to);
	if (rename(tmp, to) < 0)
		_exit(94);
}

/* the noted paths, one a line, NUL-terminated (NULL when none) */
static char *pc_read_dirty(void)
{
	char *text = NULL, buf[65536];
	size_t len = 0;
	ssize_t n;
	int in = open(pc_dirtypath, O_RDONLY);
	while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0) {
		if (!(text = realloc(text, len + (size_t)n + 1)))
			_exit(98);
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
		text[len] = 0;
	}
	if (in >= 0)
		close(in);
	return text;
}

static int pc_cmp(const void *a, const void *b)
{
	/* parents before children: a directory is made before its files */
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pc_syncfs(int fd)
{
	(void)fd;
	if (flock(pc_lock, LOCK_EX) < 0)
		_exit(95);
	char *text = pc_read_dirty();
	if (text) {
		/* each path once (the state copied is the present one) */
		char **lines = NULL;
		size_t n = 0;
		for (char *line = text, *nl; *line; line = nl + 1) {
			if (!(nl = strchr(line, '\n')))
				break;
			*nl = 0;
			lines = realloc(lines, (n + 1) * sizeof(*lines));
			lines[n++] = line;
		}
		if (n)
			qsort(lines, n, sizeof(*lines), pc_cmp);
		for (size_t i = 0; i < n; i++)
			if (i == 0 || strcmp(lines[i], lines[i - 1]) != 0)
				pc_copy(lines[i]);
		free(lines);
		free(text);
	}
	if (ftruncate(pc_dirty, 0) < 0)
		_exit(96);
	flock(pc_lock, LOCK_UN);
	return 0;
}

static int pc_open(const char *path, int flags, mode_t mode)
{
	int fd;
	if (!(flags & (O_CREAT | O_WRONLY | O_RDWR | O_TRUNC))) {
		fd = pc_real->open(path, flags, mode); /* path kept for fsync */
	} else {
		pc_begin();
		pc_note(path);
		fd = pc_real->open(path, flags, mode);
		pc_end();
	}
	if (fd >= 0 && fd < 4096) {
		free(pc_fdpath[fd]);
		pc_fdpath[fd] = strdup(path);
	}
	return fd;
}

static int pc_close(int fd)
{
	if (fd >= 0 && fd < 4096) {
		free(pc_fdpath[fd]);
		pc_fdpath[fd] = NULL;
	}
	return pc_real->close(fd);
}

static ssize_t pc_write(int fd, const void *buf, size_t len)
{
	ssize_t r;
	pc_begin();
	if (fd >= 0 && fd < 4096 && pc_fdpath[fd])
		pc_note(pc_fdpath[fd]);
	r = pc_real->write(fd, buf, len);
	pc_end();
	return r;
}

static int pc_path2(int (*op)(const char *, const char *), const char *a, const char *b)
{
	int r;
	pc_begin();
	pc_note(a);
	pc_note(b);
	r = op(a, b);
	pc_end();
	return r;
}

static int pc_link(const char *a, const char *b)
{
	return pc_path2(pc_real->link, a, b);
}

static int pc_rename(const char *a, const char *b)
{
	return pc_path2(pc_real->rename, a, b);
}

static int pc_unlink(const char *p)
{
	int r;
	pc_begin();
	pc_note(p);
	r = pc_real->unlink(p);
	pc_end();
	return r;
}

static int pc_mkdir(const char *p, mode_t m)
{
	int r;
	pc_begin();
	pc_note(p);
	r = pc_real->mkdir(p, m);
	pc_end();
	return r;
}

static int pc_link_fd(int fd, const char *to)
{
	int r;
	pc_begin();
	pc_note(to);
	r = pc_real->link_fd(fd, to);
	pc_end();
	return r;
}

/* fsync makes one file durable (copied into snap as it is now); fsync of
 * a directory makes its names durable: each noted path directly in it is
 * copied (with its present content: unsynced data may survive too). */
static int pc_fsync(int fd)
{
	const char *path = fd >= 0 && fd < 4096 ? pc_fdpath[fd] : NULL;
	struct stat st;
	if (!path || strncmp(path, pc_root, pc_rootlen) != 0 || pc_real->fstat(fd, &st) < 0)
		return 0;
	if (flock(pc_lock, LOCK_EX) < 0)
		_exit(97);
	if (!S_ISDIR(st.st_mode)) {
		struct stat now;
		if (lstat(path, &now) == 0 && now.st_ino == st.st_ino)
			pc_copy(path); /* still under that name */
	} else {
		char *text = pc_read_dirty();
		size_t plen = strlen(path);
		if (text) {
			for (char *line = text, *nl; *line; line = nl + 1) {
				if (!(nl = strchr(line, '\n')))
					break;
				*nl = 0;
				if (strncmp(line, path, plen) == 0 && line[plen] == '/' && !strchr(line + plen + 1, '/'))
					pc_copy(line);
			}
			free(text);
		}
	}
	flock(pc_lock, LOCK_UN);
	return 0;
}

static void powercut_setup(const char *root)
{
	const char *dir = getenv("UDR_WORKER_POWERCUT");
	char p[4200];
	if (!dir || !*dir)
		return;
	if (!realpath(root, pc_root))
		die("powercut: realpath", -1);
	pc_rootlen = strlen(pc_root);
	snprintf(pc_snap, sizeof(pc_snap), "%s/snap", dir);
	snprintf(pc_dirtypath, sizeof(pc_dirtypath), "%s/dirty", dir);
	snprintf(p, sizeof(p), "%s/lock", dir);
	if ((pc_lock = open(p, O_RDWR | O_CREAT, 0644)) < 0 ||
	    (pc_dirty = open(pc_dirtypath, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0)
		die("powercut: open", -1);
	pc_real = udr_io_default();
	pc_io = *pc_real;
	pc_io.open = pc_open;
	pc_io.close = pc_close;
	pc_io.write = pc_write;
	pc_io.link = pc_link;
	pc_io.rename = pc_rename;
	pc_io.unlink = pc_unlink;
	pc_io.mkdir = pc_mkdir;
	pc_io.link_fd = pc_link_fd;
	pc_io.fsync = pc_fsync;
	pc_io.syncfs = pc_syncfs;
	if (udr_io_set(&pc_io) != 0)
		die("powercut: io_set", -1);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static int crashloop(udr_db *db, uint64_t seed)
{
	static const char *const tables[] = {"alpha", "beta", "gamma.v2"};
	udr_store *st = udr_db_store(db);
	udr_catalog *cat = udr_db_catalog(db);
	rng_state = seed * 0x2545F4914F6CDD1DULL + 88172645463325252ULL;
	unsigned char *buf = malloc(1 << 20);
	udr_hash recent[8];
	int nrecent = 0;
	char hex[UDR_HASH_HEXSIZE + 1];
	for (uint64_t iter = 0;; iter++) {
		/* Sizes from empty to ~1 MiB; some contents repeat (dedup). */
		size_t len;
		uint64_t r = rnd() % 100;
		if (r < 5)
			len = 0;
		else if (r < 70)
			len = rnd() % 4096;
		else if (r < 95)
			len = rnd() % 65536;
		else
			len = rnd() % (1 << 20);
		uint64_t cseed = (rnd() % 4 == 0) ? rnd() % 16 : rnd();
		fill(buf, len, cseed);
		udr_hash h;
		int rc = udr_store_put(&h, st, buf, len);
		if (rc != 0)
			die("put", rc);
		udr_hash_tohex(hex, &h);
		printf("put %s\n", hex);
		fflush(stdout);
		recent[nrecent++ % 8] = h;

		if (rnd() % 3 == 0) {
			const char *t = tables[rnd() % 3];
			udr_version *v = NULL;
			if ((rc = udr_version_new(&v, t, 0)) != 0)
				die("version_new", rc);
			int n = 1 + (int)(rnd() % 4);
			int avail = nrecent < 8 ? nrecent : 8;
			for (int i = 0; i < n; i++)
				udr_version_add_chunk(v, &recent[rnd() % avail]);
			char msg[64];
			snprintf(msg, sizeof(msg), "iteration %llu", (unsigned long long)iter);
			udr_version_set_message(v, msg);
			udr_version_set_meta(v, "seed", "crash");
			/* Alternate between explicit numbers and commit_next. */
			uint64_t latest = 0;
			int lrc = udr_catalog_latest(&latest, cat, t);
			if (lrc != 0 && lrc != UDR_ENOTFOUND)
				die("latest", lrc);
			if (rnd() % 2) {
				v->version = latest + 1;
				rc = udr_catalog_commit(cat, v);
			} else {
				rc = udr_catalog_commit_next(cat, v);
			}
			if (rc != 0)
				die("commit", rc);
			printf("commit %s %llu", t, (unsigned long long)v->version);
			for (size_t i = 0; i < v->nchunks; i++) {
				udr_hash_tohex(hex, &v->chunks[i]);
				printf(" %s", hex);
			}
			printf("\n");
			fflush(stdout);
			udr_version_free(v);
		}
	}
	return 0;
}

static int commits(udr_db *db, const char *table, long n)
{
	udr_hash h;
	char pid[32];
	snprintf(pid, sizeof(pid), "worker %ld", (long)getpid());
	int rc = udr_store_put(&h, udr_db_store(db), pid, strlen(pid));
	if (rc != 0)
		die("put", rc);
	for (long i = 0; i < n; i++) {
		udr_version *v = NULL;
		if ((rc = udr_version_new(&v, table, 0)) != 0)
			die("version_new", rc);
		udr_version_add_chunk(v, &h);
		if ((rc = udr_catalog_commit_next(udr_db_catalog(db), v)) != 0)
			die("commit_next", rc);
		printf("commit %s %llu\n", table, (unsigned long long)v->version);
		fflush(stdout);
		udr_version_free(v);
	}
	return 0;
}

static int puts_(udr_db *db, uint64_t seed, long n)
{
	unsigned char *buf = malloc(300000);
	char hex[UDR_HASH_HEXSIZE + 1];
	for (long i = 0; i < n; i++) {
		/* Even: content every worker writes too; odd: this worker's own. */
		size_t len = (size_t)(i * 7919 % 300000);
		fill(buf, len, (i % 2 == 0) ? (uint64_t)i : seed * 1000003 + (uint64_t)i);
		udr_hash h;
		int rc = udr_store_put(&h, udr_db_store(db), buf, len);
		if (rc != 0)
			die("put", rc);
		/* what a put acknowledged is found at once, whatever other
		 * processes repack meanwhile */
		if ((rc = udr_store_exists(udr_db_store(db), &h)) != 1)
			die("exists after put", rc < 0 ? rc : UDR_ENOTFOUND);
		udr_hash_tohex(hex, &h);
		printf("put %s\n", hex);
		fflush(stdout);
	}
	free(buf);
	return 0;
}

/* n small contents of this worker's own, each looked up right after its put
 * (small puts make small packs, which every put's geometric repack merges:
 * the pack holding a content keeps being replaced by other processes). */
static int smallputs(udr_db *db, uint64_t seed, long n)
{
	char text[64], hex[UDR_HASH_HEXSIZE + 1];
	for (long i = 0; i < n; i++) {
		int len = snprintf(text, sizeof(text), "small %llu %ld", (unsigned long long)seed, i), rc;
		udr_hash h;
		if ((rc = udr_store_put(&h, udr_db_store(db), text, (size_t)len)) != 0)
			die("put", rc);
		if ((rc = udr_store_exists(udr_db_store(db), &h)) != 1) {
			udr_hash_tohex(hex, &h);
			fprintf(stderr, "put %s then exists: %d\n", hex, rc);
			die("exists after put", rc < 0 ? rc : UDR_ENOTFOUND);
		}
	}
	return 0;
}

/* Read the contents hexes[0..n) (each decoded and verified, every delta
 * base with it) again and again through this one handle, whose list of packs
 * goes stale while other processes put and repack, until the file stop
 * exists: any failure is reported and ends the worker with exit 3 (damage)
 * or 4 (not found), so that the test names what a reader would have said.
 * Between two contents, a lookup of one that is not stored makes the handle
 * read packs/ again (a miss is believed only after a rescan), as a reader
 * of new data does: its list then changes while repacks run. */
static int getloop(udr_db *db, const char *stop, char **hexes, int n)
{
	long rounds = 0;
	for (;;) {
		struct stat st;
		bool last = stat(stop, &st) == 0;
		for (int i = 0; i < n; i++) {
			udr_hash h;
			void *buf = NULL;
			size_t len = 0;
			int rc;
			if (udr_hash_fromhex(&h, hexes[i]) != 0)
				die("hash", UDR_EINVAL);
			if ((rc = udr_store_get(&buf, &len, udr_db_store(db), &h)) != 0) {
				fprintf(stderr, "udr_worker: round %ld: get %s: %d %s\n", rounds, hexes[i], rc,
				        udr_error_last()->message);
				exit(rc == UDR_ENOTFOUND ? 4 : 3);
			}
			udr_free(buf);
			udr_hash_buf(&h, &rounds, sizeof(rounds));
			if ((rc = udr_store_exists(udr_db_store(db), &h)) != 0)
				die("exists of an absent content", rc);
		}
		rounds++;
		if (last)
			break;
	}
	printf("rounds %ld\n", rounds);
	return 0;
}

static udr_version *one_version(udr_db *db, const char *table, uint64_t seed, uint64_t iter, udr_hash *h)
{
	char text[96];
	udr_version *v = NULL;
	int n = snprintf(text, sizeof(text), "group %llu %llu %s", (unsigned long long)seed,
	                 (unsigned long long)iter, table);
	int rc = udr_store_put(h, udr_db_store(db), text, (size_t)n);
	if (rc != 0)
		die("put", rc);
	if ((rc = udr_version_new(&v, table, 0)) != 0)
		die("version_new", rc);
	udr_version_add_chunk(v, h);
	return v;
}

static int group(udr_db *db, uint64_t seed, char **tables, int ntables)
{
	udr_catalog *cat = udr_db_catalog(db);
	char hex[UDR_HASH_HEXSIZE + 1];
	rng_state = seed * 0x2545F4914F6CDD1DULL + 88172645463325252ULL;
	for (uint64_t iter = 0;; iter++) {
		int a = (int)(rnd() % (uint64_t)ntables), b = (int)(rnd() % (uint64_t)ntables);
		udr_hash ha, hb;
		udr_version *va = one_version(db, tables[a], seed, iter, &ha), *vb = NULL;
		uint64_t seq = 0;
		int rc;
		if (a != b && rnd() % 3 == 0) {
			udr_txn *t = NULL;
			vb = one_version(db, tables[b], seed, iter, &hb);
			if ((rc = udr_txn_begin(&t, cat, NULL)) != 0)
				die("txn_begin", rc);
			if ((rc = udr_txn_write(t, va)) != 0 || (rc = udr_txn_write(t, vb)) != 0)
				die("txn_write", rc);
			rc = udr_txn_commit(t, &seq);
			if (rc == 0) {
				uint64_t la, lb;
				/* the versions it made: read back from the commit record */
				udr_commit *cm = NULL;
				if ((rc = udr_catalog_get_commit(&cm, cat, seq)) != 0)
					die("get_commit after txn", rc);
				la = lb = 0;
				for (size_t i = 0; i < cm->nchanges; i++) {
					if (strcmp(cm->changes[i].table, tables[a]) == 0)
						la = cm->changes[i].new_version;
					if (strcmp(cm->changes[i].table, tables[b]) == 0)
						lb = cm->changes[i].new_version;
				}
				udr_commit_free(cm);
				printf("ack %llu %s %llu ", (unsigned long long)seq, tables[a], (unsigned long long)la);
				udr_hash_tohex(hex, &ha);
				printf("%s %s %llu ", hex, tables[b], (unsigned long long)lb);
				udr_hash_tohex(hex, &hb);
				printf("%s\n", hex);
				fflush(stdout);
			} else if (rc != UDR_ECONFLICT) {
				die("txn_commit", rc);
			}
			udr_txn_free(t);
		} else {
			if ((rc = udr_catalog_commit_next(cat, va)) != 0)
				die("commit_next", rc);
			udr_hash_tohex(hex, &ha);
			printf("ack %llu %s %llu %s\n", (unsigned long long)va->commit_seq, tables[a],
			       (unsigned long long)va->version, hex);
			fflush(stdout);
		}
		udr_version_free(va);
		udr_version_free(vb);
	}
	return 0;
}

static int reader(udr_db *db, char **tables, int ntables)
{
	udr_catalog *cat = udr_db_catalog(db);
	char hex[UDR_HASH_HEXSIZE + 1];
	uint64_t last = 0;
	for (;;) {
		uint64_t head = 0;
		int rc = udr_catalog_head(&head, cat);
		if (rc != 0)
			die("head", rc);
		if (head < last) {
			printf("BACKWARDS %llu %llu\n", (unsigned long long)last, (unsigned long long)head);
			fflush(stdout);
		}
		last = head;
		for (int i = 0; i < ntables; i++) {
			udr_version *v = NULL;
			rc = udr_catalog_get_version(&v, cat, tables[i], 0);
			if (rc == UDR_ENOTFOUND)
				continue;
			if (rc != 0)
				die("get_version", rc);
			udr_hash_tohex(hex, v->nchunks ? &v->chunks[0] : &(udr_hash){{0}});
			printf("seen %llu %s %llu %llu %s\n", (unsigned long long)head, tables[i],
			       (unsigned long long)v->version, (unsigned long long)v->commit_seq, hex);
			udr_version_free(v);
		}
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: udr_worker crashloop ROOT SEED | commits ROOT TABLE N | "
		                "puts ROOT SEED N | smallputs ROOT SEED N | getloop ROOT STOP HASH...\n");
		return 2;
	}
	udr_db *db = NULL;
	int rc;
	powercut_setup(argv[2]);
	rc = udr_db_open(&db, argv[2], UDR_OPEN_CREATE);
	if (rc != 0)
		die("open", rc);
	if (strcmp(argv[1], "crashloop") == 0)
		rc = crashloop(db, strtoull(argv[3], NULL, 10));
	else if (strcmp(argv[1], "commits") == 0 && argc >= 5)
		rc = commits(db, argv[3], strtol(argv[4], NULL, 10));
	else if (strcmp(argv[1], "group") == 0 && argc >= 5)
		rc = group(db, strtoull(argv[3], NULL, 10), argv + 4, argc - 4);
	else if (strcmp(argv[1], "reader") == 0 && argc >= 4)
		rc = reader(db, argv + 3, argc - 3);
	else if (strcmp(argv[1], "puts") == 0 && argc >= 5)
		rc = puts_(db, strtoull(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	else if (strcmp(argv[1], "getloop") == 0 && argc >= 5)
		rc = getloop(db, argv[3], argv + 4, argc - 4);
	else if (strcmp(argv[1], "smallputs") == 0 && argc >= 5)
		rc = smallputs(db, strtoull(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	else
		rc = 2;
	udr_db_close(db);
	return rc;
}
