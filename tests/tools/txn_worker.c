/*
 * txn_worker.c - load generator and inspector for the transaction, changelog
 * and subscription stress tests (tests/stress/test_txn_*.py,
 * test_subscribe*.py), linked to libudr.  Every line it prints is written
 * and flushed only after the library call it reports has returned, so a
 * test that kills it knows what was done.
 *
 *   txn_worker txn3 ROOT ID COUNT [TABLES]
 *       COUNT (0: forever) transactions, each writing the three tables
 *       t0 t1 t2 (or the comma-separated TABLES) with one chunk each whose
 *       content is "txn=<id>.<i> table=<t>" and metadata txn=<id>.<i>;
 *       prints "committed <seq> <id>.<i>" after each commit returns.
 *       With COUNT 1 and UDR_FAULT set, the single commit may die at an
 *       exact step; any other outcome prints "error <rc> <message>".
 *       Chunks are stored before the transaction begins, so that with
 *       UDR_FAULT the n-th fsync/link/rename counts only the commit's steps
 *       when the contents already exist (see "prepare").
 *   txn_worker prepare ROOT ID COUNT [TABLES]
 *       creates the store (when missing) and stores the chunks txn3 ROOT ID
 *       COUNT would store (none for COUNT 0); commits nothing.
 *   txn_worker conc ROOT WORKER SEED N POOL
 *       N transactions over random subsets (1-3 tables, seeded) of the
 *       comma-separated POOL; each reads its tables' latest versions at its
 *       snapshot and writes each with metadata txn=<worker>.<i>,
 *       snap=<snapshot>, based_on=<version read>; prints per attempt
 *       "attempt <id> snap <s> tables <a,b> commit <seq>" or
 *       "attempt <id> snap <s> tables <a,b> conflict <message>" or
 *       "attempt <id> snap <s> tables <a,b> error <rc> <message>".
 *   txn_worker rmw ROOT WORKER N
 *       N successful read-modify-write increments of the "counter" table
 *       (value in metadata "value") under snapshot isolation, retrying on
 *       conflict; prints "ok <seq> <value>" or "conflict" per attempt.
 *   txn_worker subscribe ROOT STATEDIR [UNTIL]
 *       follows the log (udr_catalog_wait + udr_catalog_log since its
 *       cursor) with exactly-once output; see subscribe() below.  Exits 0
 *       once its cursor reaches UNTIL (if given).  For the tests,
 *       TXN_WORKER_DIE_AT=append:<k> or cursor:<k> kills it at the k-th
 *       delivery right after the append or right after the cursor write.
 *   txn_worker dump ROOT
 *       the catalog through the API, one JSON object per line:
 *       {"head": H}, then {"commit": seq, "changes": [[table, old, new]...]}
 *       per commit, then {"version": [table, ver], "commit": seq,
 *       "parent": p, "meta": {...}, "content": "<verified chunk text>"} per
 *       version of every table.
 *   txn_worker fsck ROOT
 *       udr_store_fsck + udr_catalog_fsck; prints each problem; exit 0 clean,
 *       1 problems, 2 error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <udr/udr.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "txn_worker: %s: %d %s\n", what, rc, udr_error_last()->message);
	exit(2);
}

static void die_errno(const char *what, const char *path)
{
	fprintf(stderr, "txn_worker: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

static udr_db *open_db(const char *root)
{
	udr_db *db = NULL;
	int rc = udr_db_open(&db, root, UDR_OPEN_CREATE);
	if (rc)
		die("open", rc);
	return db;
}

/* Split a comma-separated list in place. */
static size_t split(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Chunk content of transaction txnid for table t. */
static int content_of(char *buf, size_t sz, const char *txnid, const char *table)
{
	return snprintf(buf, sz, "txn=%s table=%s", txnid, table);
}

static void put_content(udr_hash *h, udr_store *st, const char *txnid, const char *table)
{
	char buf[256];
	int n = content_of(buf, sizeof(buf), txnid, table);
	int rc = udr_store_put(h, st, buf, (size_t)n);
	if (rc)
		die("put", rc);
}

/* ---- txn3 / prepare ---------------------------------------------------------- */

static int txn3(const char *root, const char *id, long count, const char *tables_arg, int prepare_only)
{
	char tbuf[1024];
	char *tables[16];
	size_t nt;
	snprintf(tbuf, sizeof(tbuf), "%s", tables_arg ? tables_arg : "t0,t1,t2");
	nt = split(tbuf, tables, 16);
	udr_db *db = open_db(root);
	udr_store *st = udr_db_store(db);
	udr_catalog *cat = udr_db_catalog(db);
	for (long i = 0; (count == 0 && !prepare_only) || i < count; i++) {
		char txnid[128];
		udr_hash hs[16];
		snprintf(txnid, sizeof(txnid), "%s.%ld", id, i);
		for (size_t k = 0; k < nt; k++) {
			char buf[256];
			int len = content_of(buf, sizeof(buf), txnid, tables[k]);
			int rc = udr_store_put(&hs[k], st, buf, (size_t)len);
			if (rc) {
				printf("error %d put: %s\n", rc, udr_error_last()->message);
				fflush(stdout);
				udr_db_close(db);
				return 1;
			}
		}
		if (prepare_only)
			continue;
		udr_txn *t = NULL;
		int rc = udr_txn_begin(&t, cat, NULL);
		if (rc) {
			/* an I/O error (the snapshot's lease pin, GC.md 2.3) fails the
			 * begin, like a put's: reported, nothing written */
			printf("error %d begin: %s\n", rc, udr_error_last()->message);
			fflush(stdout);
			udr_db_close(db);
			return 1;
		}
		for (size_t k = 0; k < nt && rc == 0; k++) {
			udr_version *v = NULL;
			if ((rc = udr_version_new(&v, tables[k], 0)) == 0 && (rc = udr_version_add_chunk(v, &hs[k])) == 0 &&
			    (rc = udr_version_set_meta(v, "txn", txnid)) == 0)
				rc = udr_txn_write(t, v);
			udr_version_free(v);
		}
		uint64_t seq = 0;
		if (rc == 0)
			rc = udr_txn_commit(t, &seq);
		udr_txn_free(t);
		if (rc) {
			printf("error %d %s\n", rc, udr_error_last()->message);
			fflush(stdout);
			udr_db_close(db);
			return 1;
		}
		printf("committed %" PRIu64 " %s\n", seq, txnid);
		fflush(stdout);
	}
	udr_db_close(db);
	return 0;
}

/* ---- conc ----------------------------------------------------------------------- */

static int conc(const char *root, const char *worker, uint64_t seed, long n, const char *pool_arg)
{
	char pbuf[1024];
	char *pool[32];
	size_t np;
	snprintf(pbuf, sizeof(pbuf), "%s", pool_arg);
	np = split(pbuf, pool, 32);
	if (np == 0)
		return 2;
	rng_state = seed * 0x2545F4914F6CDD1DULL + 88172645463325252ULL;
	udr_db *db = open_db(root);
	udr_store *st = udr_db_store(db);
	udr_catalog *cat = udr_db_catalog(db);
	for (long i = 0; i < n; i++) {
		char txnid[128], tlist[512] = "";
		size_t pick[3], npick = 1 + (size_t)(rnd() % 3);
		if (npick > np)
			npick = np;
		for (size_t k = 0; k < npick;) {
			size_t c = (size_t)(rnd() % np), dup = 0;
			for (size_t j = 0; j < k; j++)
				dup |= pick[j] == c;
			if (!dup)
				pick[k++] = c;
		}
		for (size_t k = 0; k < npick; k++) {
			strcat(tlist, k ? "," : "");
			strcat(tlist, pool[pick[k]]);
		}
		snprintf(txnid, sizeof(txnid), "%s.%ld", worker, i);
		udr_hash hs[3];
		for (size_t k = 0; k < npick; k++)
			put_content(&hs[k], st, txnid, pool[pick[k]]);
		udr_txn *t = NULL;
		int rc = udr_txn_begin(&t, cat, NULL);
		if (rc)
			die("begin", rc);
		uint64_t snap = udr_txn_snapshot(t);
		for (size_t k = 0; k < npick && rc == 0; k++) {
			uint64_t base = 0;
			char sbuf[32], bbuf[32];
			udr_version *v = NULL;
			if ((rc = udr_txn_latest(&base, t, pool[pick[k]])) != 0)
				break;
			/* Read the version too (as a real read-modify-write would). */
			if (base) {
				udr_version *cur = NULL;
				if ((rc = udr_txn_get_version(&cur, t, pool[pick[k]], base)) != 0)
					break;
				udr_version_free(cur);
			}
			snprintf(sbuf, sizeof(sbuf), "%" PRIu64, snap);
			snprintf(bbuf, sizeof(bbuf), "%" PRIu64, base);
			if ((rc = udr_version_new(&v, pool[pick[k]], 0)) == 0 && (rc = udr_version_add_chunk(v, &hs[k])) == 0 &&
			    (rc = udr_version_set_meta(v, "txn", txnid)) == 0 && (rc = udr_version_set_meta(v, "snap", sbuf)) == 0 &&
			    (rc = udr_version_set_meta(v, "based_on", bbuf)) == 0)
				rc = udr_txn_write(t, v);
			udr_version_free(v);
		}
		uint64_t seq = 0;
		if (rc == 0)
			rc = udr_txn_commit(t, &seq);
		udr_txn_free(t);
		if (rc == 0)
			printf("attempt %s snap %" PRIu64 " tables %s commit %" PRIu64 "\n", txnid, snap, tlist, seq);
		else if (rc == UDR_ECONFLICT)
			printf("attempt %s snap %" PRIu64 " tables %s conflict %s\n", txnid, snap, tlist,
			       udr_error_last()->message);
		else
			printf("attempt %s snap %" PRIu64 " tables %s error %d %s\n", txnid, snap, tlist, rc,
			       udr_error_last()->message);
		fflush(stdout);
	}
	udr_db_close(db);
	return 0;
}

/* ---- rmw --------------------------------------------------------------------------- */

static int rmw(const char *root, const char *worker, long n)
{
	udr_db *db = open_db(root);
	udr_catalog *cat = udr_db_catalog(db);
	long done = 0, attempts = 0;
	while (done < n) {
		udr_txn *t = NULL;
		udr_version *cur = NULL, *nv = NULL;
		long value = 0;
		int rc = udr_txn_begin(&t, cat, NULL);
		if (rc)
			die("begin", rc);
		attempts++;
		rc = udr_txn_get_version(&cur, t, "counter", 0);
		if (rc == 0) {
			const char *s = udr_version_get_meta(cur, "value");
			value = s ? strtol(s, NULL, 10) : -1000000;
			udr_version_free(cur);
		} else if (rc == UDR_ENOTFOUND) {
			value = 0;
			rc = 0;
		}
		if (rc == 0) {
			char buf[32], ab[64];
			snprintf(buf, sizeof(buf), "%ld", value + 1);
			snprintf(ab, sizeof(ab), "%s.%ld", worker, attempts);
			if ((rc = udr_version_new(&nv, "counter", 0)) == 0 && (rc = udr_version_set_meta(nv, "value", buf)) == 0 &&
			    (rc = udr_version_set_meta(nv, "by", ab)) == 0)
				rc = udr_txn_write(t, nv);
			udr_version_free(nv);
		}
		uint64_t seq = 0;
		if (rc == 0)
			rc = udr_txn_commit(t, &seq);
		udr_txn_free(t);
		if (rc == 0) {
			printf("ok %" PRIu64 " %ld\n", seq, value + 1);
			done++;
		} else if (rc == UDR_ECONFLICT) {
			printf("conflict\n");
		} else {
			printf("error %d %s\n", rc, udr_error_last()->message);
			fflush(stdout);
			udr_db_close(db);
			return 1;
		}
		fflush(stdout);
	}
	udr_db_close(db);
	return 0;
}

/* ---- subscribe ------------------------------------------------------------------------
 * Exactly-once delivery into STATEDIR/out (one "<seq>\n" line per commit):
 *   - STATEDIR/cursor holds "<seq> <length of out>" and is replaced
 *     atomically (temp file, fsync, rename, fsync of the directory) after the
 *     line for <seq> has been appended to out and fsync'ed;
 *   - at start, out is truncated to the length the cursor names: a line
 *     appended whose cursor was never persisted is discarded, and delivered
 *     again from the cursor.  So out always holds each seq 1..cursor exactly
 *     once, in order, whatever moment the subscriber is killed at.
 * Every delivered seq is also printed on stdout ("<seq>") after the cursor
 * was persisted, and at start "resume <seq>".  A gap (a seq other than
 * cursor + 1) is a library bug: exit 3. */
static int read_cursor(const char *path, uint64_t *seq, uint64_t *len)
{
	FILE *f = fopen(path, "r");
	*seq = 0;
	*len = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		die_errno("open", path);
	}
	if (fscanf(f, "%" SCNu64 " %" SCNu64, seq, len) != 2) {
		fclose(f);
		fprintf(stderr, "txn_worker: bad cursor file %s\n", path);
		exit(2);
	}
	fclose(f);
	return 0;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd) < 0)
		die_errno("fsync dir", dir);
	close(fd);
}

static void write_cursor(const char *dir, const char *path, uint64_t seq, uint64_t len)
{
	char tmp[4096], buf[64];
	snprintf(tmp, sizeof(tmp), "%s/cursor.tmp", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die_errno("open", tmp);
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64 "\n", seq, len);
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		die_errno("write", tmp);
	close(fd);
	if (rename(tmp, path) < 0)
		die_errno("rename", tmp);
	fsync_dir(dir);
}

/* TXN_WORKER_DIE_AT="<point>:<k>": SIGKILL ourselves at the k-th pass
 * through point ("append": the line is in out, its cursor not yet written;
 * "cursor": the cursor is written, the line not yet printed). */
static void die_at(const char *point)
{
	static long passes[2];
	const char *spec = getenv("TXN_WORKER_DIE_AT");
	size_t pl = strlen(point);
	if (!spec || strncmp(spec, point, pl) != 0 || spec[pl] != ':')
		return;
	long *count = &passes[point[0] == 'c'];
	if (++*count == strtol(spec + pl + 1, NULL, 10)) {
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
}

static int subscribe(const char *root, const char *dir, uint64_t until)
{
	char cpath[4096], opath[4096];
	uint64_t cursor, len;
	snprintf(cpath, sizeof(cpath), "%s/cursor", dir);
	snprintf(opath, sizeof(opath), "%s/out", dir);
	read_cursor(cpath, &cursor, &len);
	int ofd = open(opath, O_WRONLY | O_CREAT, 0644);
	if (ofd < 0)
		die_errno("open", opath);
	struct stat sb;
	if (fstat(ofd, &sb) < 0)
		die_errno("stat", opath);
	if ((uint64_t)sb.st_size < len) {
		fprintf(stderr, "txn_worker: %s shorter (%lld) than its cursor says (%" PRIu64 ")\n", opath,
		        (long long)sb.st_size, len);
		return 2;
	}
	if (ftruncate(ofd, (off_t)len) < 0 || fsync(ofd) < 0)
		die_errno("truncate", opath);
	if (lseek(ofd, 0, SEEK_END) < 0)
		die_errno("seek", opath);
	printf("resume %" PRIu64 "\n", cursor);
	fflush(stdout);
	udr_db *db = open_db(root);
	udr_catalog *cat = udr_db_catalog(db);
	while (until == 0 || cursor < until) {
		uint64_t head = 0;
		int rc = udr_catalog_wait(&head, cat, cursor, 2000);
		if (rc < 0)
			die("wait", rc);
		if (rc == 0)
			continue;
		udr_log_query q = UDR_LOG_QUERY_INIT;
		q.since_seq = cursor;
		q.limit = 50;
		udr_commit **cs = NULL;
		size_t n = 0;
		if ((rc = udr_catalog_log(&cs, &n, cat, &q)) != 0)
			die("log", rc);
		if (n == 0) {
			fprintf(stderr, "txn_worker: wait said head %" PRIu64 " > cursor %" PRIu64 " but the log is empty\n",
			        head, cursor);
			return 3;
		}
		for (size_t i = 0; i < n; i++) {
			char line[32];
			if (cs[i]->seq != cursor + 1) {
				fprintf(stderr, "txn_worker: gap: got seq %" PRIu64 " after %" PRIu64 "\n", cs[i]->seq, cursor);
				return 3;
			}
			int ln = snprintf(line, sizeof(line), "%" PRIu64 "\n", cs[i]->seq);
			if (write(ofd, line, (size_t)ln) != ln || fsync(ofd) < 0)
				die_errno("append", opath);
			len += (uint64_t)ln;
			die_at("append");
			cursor = cs[i]->seq;
			write_cursor(dir, cpath, cursor, len);
			die_at("cursor");
			printf("%" PRIu64 "\n", cursor);
			fflush(stdout);
		}
		udr_commit_array_free(cs, n);
	}
	close(ofd);
	udr_db_close(db);
	return 0;
}

/* ---- dump -------------------------------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int dump(const char *root)
{
	udr_db *db = open_db(root);
	udr_store *st = udr_db_store(db);
	udr_catalog *cat = udr_db_catalog(db);
	uint64_t head = 0;
	int rc = udr_catalog_head(&head, cat);
	if (rc)
		die("head", rc);
	printf("{\"head\": %" PRIu64 "}\n", head);
	for (uint64_t s = 1; s <= head; s++) {
		udr_commit *cm = NULL;
		if ((rc = udr_catalog_get_commit(&cm, cat, s)) != 0)
			die("get_commit", rc);
		printf("{\"commit\": %" PRIu64 ", \"time_ms\": %lld, \"changes\": [", s, (long long)cm->time_ms);
		for (size_t i = 0; i < cm->nchanges; i++) {
			printf("%s[", i ? ", " : "");
			json_str(cm->changes[i].table);
			printf(", %" PRIu64 ", %" PRIu64 "]", cm->changes[i].old_version, cm->changes[i].new_version);
		}
		printf("]}\n");
		udr_commit_free(cm);
	}
	char **names = NULL;
	size_t nn = 0;
	if ((rc = udr_catalog_list_tables(&names, &nn, cat)) != 0)
		die("list_tables", rc);
	for (size_t t = 0; t < nn; t++) {
		uint64_t latest = 0;
		if ((rc = udr_catalog_latest(&latest, cat, names[t])) != 0)
			die("latest", rc);
		for (uint64_t n = 1; n <= latest; n++) {
			udr_version *v = NULL;
			if ((rc = udr_catalog_get_version(&v, cat, names[t], n)) != 0)
				die("get_version", rc);
			printf("{\"version\": [");
			json_str(v->table);
			printf(", %" PRIu64 "], \"commit\": %" PRIu64 ", \"parent\": %" PRIu64 ", \"meta\": {", v->version,
			       v->commit_seq, v->parent);
			for (size_t k = 0; k < v->nmeta; k++) {
				printf("%s", k ? ", " : "");
				json_str(v->meta[k].key);
				printf(": ");
				json_str(v->meta[k].value);
			}
			printf("}, \"content\": ");
			/* The chunks' bytes, verified against their hashes, concatenated
			 * (text contents only: this tool writes text). */
			char *all = calloc(1, 1);
			size_t alen = 0;
			for (size_t c = 0; c < v->nchunks; c++) {
				void *data = NULL;
				size_t dlen = 0;
				if ((rc = udr_store_get_verified(&data, &dlen, st, &v->chunks[c])) != 0)
					die("get_verified", rc);
				all = realloc(all, alen + dlen + 1);
				memcpy(all + alen, data, dlen);
				alen += dlen;
				all[alen] = 0;
				udr_free(data);
			}
			json_str(all);
			free(all);
			printf("}\n");
			udr_version_free(v);
		}
	}
	udr_strarray_free(names, nn);
	udr_db_close(db);
	return 0;
}

/* ---- fsck ---------------------------------------------------------------------------------- */

static int problem_cb(const udr_problem *p, void *payload)
{
	int *n = payload;
	(*n)++;
	printf("problem %d %s %s: %s\n", p->code, p->object ? p->object : "-", p->path ? p->path : "-",
	       p->message ? p->message : "");
	return 0;
}

static int fsck(const char *root)
{
	udr_db *db = NULL;
	int rc = udr_db_open(&db, root, 0);
	if (rc)
		die("open", rc);
	int problems = 0;
	int r1 = udr_store_fsck(NULL, udr_db_store(db), problem_cb, &problems);
	int r2 = udr_catalog_fsck(NULL, udr_db_catalog(db), problem_cb, &problems);
	udr_db_close(db);
	printf("fsck store %d catalog %d problems %d\n", r1, r2, problems);
	if ((r1 < 0 && r1 != UDR_ECORRUPT) || (r2 < 0 && r2 != UDR_ECORRUPT))
		return 2;
	return (r1 || r2 || problems) ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc >= 5 && (strcmp(argv[1], "txn3") == 0 || strcmp(argv[1], "prepare") == 0))
		return txn3(argv[2], argv[3], strtol(argv[4], NULL, 10), argc > 5 ? argv[5] : NULL,
		            strcmp(argv[1], "prepare") == 0);
	if (argc == 7 && strcmp(argv[1], "conc") == 0)
		return conc(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtol(argv[5], NULL, 10), argv[6]);
	if (argc == 5 && strcmp(argv[1], "rmw") == 0)
		return rmw(argv[2], argv[3], strtol(argv[4], NULL, 10));
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "subscribe") == 0)
		return subscribe(argv[2], argv[3], argc == 5 ? strtoull(argv[4], NULL, 10) : 0);
	if (argc == 3 && strcmp(argv[1], "dump") == 0)
		return dump(argv[2]);
	if (argc == 3 && strcmp(argv[1], "fsck") == 0)
		return fsck(argv[2]);
	fprintf(stderr,
	        "usage: txn_worker txn3|prepare ROOT ID COUNT [TABLES]\n"
	        "       txn_worker conc ROOT WORKER SEED N POOL\n"
	        "       txn_worker rmw ROOT WORKER N\n"
	        "       txn_worker subscribe ROOT STATEDIR [UNTIL]\n"
	        "       txn_worker dump ROOT | fsck ROOT\n");
	return 2;
}
