/*
 * lease.c - lease files (docs/GC.md 2.1): a handle's pins, one JSON line
 * each, in a file its owner holds under flock LOCK_EX; liveness is the lock,
 * never a pid or a clock.  GC removes dead owners' files and reads the pins
 * of live ones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"
#include "catalog/lease.h"

#define LEASE_MAX ((size_t)64 << 20)

struct udr__lease {
	pthread_mutex_t mu;
	int fd;
	char *path;
	off_t off;         /* where the next line goes */
	uint64_t next_pin; /* numbers start at 1 */
	uint64_t live;     /* pins not unpinned */
	pid_t owner;       /* the process that made it (a forked child does not own it) */
};

bool udr__lease_mine(const udr__lease *l)
{
	return l && l->owner == getpid();
}

const char *udr__lease_path(const udr__lease *l)
{
	return l->path;
}

int udr__lease_open(udr__lease **out, const char *catdir)
{
	char *dir = udr__path_join(catdir, UDR__LEASES_DIR);
	udr__lease *l = NULL;
	int rc = 0, oserr = 0;
	*out = NULL;
	if (!dir)
		return UDR_ENOMEM;
	if ((rc = udr__mkdir(dir, NULL)) < 0) {
		oserr = errno;
		goto done;
	}
	if (!(l = calloc(1, sizeof(*l)))) {
		rc = udr__error_oom();
		goto done;
	}
	l->fd = -1;
	l->next_pin = 1;
	pthread_mutex_init(&l->mu, NULL);
	for (int attempt = 0; attempt < 16; attempt++) {
		uint64_t r;
		char name[64], tmpname[64];
		char *tmp, *fin;
		int fd;
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (uint64_t)udr__now_ms() ^ ((uint64_t)attempt << 40) ^ (uint64_t)(uintptr_t)l;
		snprintf(name, sizeof(name), "%ld-%016" PRIx64 ".lease", (long)getpid(), r);
		snprintf(tmpname, sizeof(tmpname), ".%ld-%016" PRIx64 ".tmp", (long)getpid(), r);
		tmp = udr__path_join(dir, tmpname);
		fin = udr__path_join(dir, name);
		if (!tmp || !fin) {
			free(tmp);
			free(fin);
			rc = UDR_ENOMEM;
			goto done;
		}
		fd = UDR_IO->open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
		if (fd < 0) {
			int err = errno;
			free(tmp);
			free(fin);
			if (err == EEXIST)
				continue;
			oserr = err;
			rc = udr__error_io(err, "cannot create a lease in %s", dir);
			goto done;
		}
		if (UDR_IO->flock(fd, LOCK_EX) < 0) {
			rc = udr__error_io(errno, "cannot lock lease %s", tmp);
			UDR_IO->close(fd);
			UDR_IO->unlink(tmp);
			free(tmp);
			free(fin);
			goto done;
		}
		/* GC may remove a .tmp whose lock it found free between our open
		 * and flock: the rename then fails with ENOENT and we start over */
		if (UDR_IO->rename(tmp, fin) < 0) {
			int err = errno;
			UDR_IO->close(fd);
			UDR_IO->unlink(tmp);
			free(tmp);
			free(fin);
			if (err == ENOENT)
				continue;
			rc = udr__error_io(err, "cannot publish a lease in %s", dir);
			goto done;
		}
		free(tmp);
		l->fd = fd;
		l->path = fin;
		l->owner = getpid();
		*out = l;
		l = NULL;
		rc = 0;
		goto done;
	}
	rc = udr__error_set(UDR_EIO, "cannot create a unique lease in %s", dir);
done:
	if (l) {
		pthread_mutex_destroy(&l->mu);
		free(l);
	}
	free(dir);
	if (rc < 0)
		errno = oserr; /* EACCES/EROFS tell the caller the store is read-only */
	return rc;
}

void udr__lease_close(udr__lease *l)
{
	if (!l)
		return;
	/* a forked child leaves its parent's lease alone (it shares the lock) */
	if (l->path && l->owner == getpid())
		UDR_IO->unlink(l->path); /* a leftover is removed by GC (its lock is free) */
	if (l->fd >= 0)
		UDR_IO->close(l->fd);
	pthread_mutex_destroy(&l->mu);
	free(l->path);
	free(l);
}

/* One whole line at the owner's offset: a reader sees it whole or torn at
 * the end (no '\n' yet), never interleaved. */
static int put_line(udr__lease *l, const char *line, size_t len)
{
	ssize_t n = pwrite(l->fd, line, len, l->off);
	if (n != (ssize_t)len) {
		int err = n < 0 ? errno : ENOSPC;
		/* a partial line stays without its '\n' until overwritten: ignored */
		return udr__error_io(err, "cannot write to lease %s", l->path);
	}
	l->off += (off_t)len;
	return 0;
}

/* Write {"pin":N, <fields of o>, "ms":T} as one line; *pin receives N. */
static int pin_line(uint64_t *pin, udr__lease *l, json_t *o)
{
	json_t *line = NULL;
	char *text = NULL;
	int rc = 0;
	*pin = 0;
	if (!o)
		return udr__error_oom();
	pthread_mutex_lock(&l->mu);
	if (!(line = json_pack("{s:I}", "pin", (json_int_t)l->next_pin)) || json_object_update(line, o) < 0 ||
	    json_object_set_new(line, "ms", json_integer((json_int_t)udr__now_ms())) < 0 ||
	    !(text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII))) {
		rc = udr__error_oom();
		goto done;
	}
	{
		size_t len = strlen(text);
		char *t2 = realloc(text, len + 2);
		if (!t2) {
			rc = udr__error_oom();
			goto done;
		}
		text = t2;
		text[len] = '\n';
		text[len + 1] = '\0';
		if ((rc = put_line(l, text, len + 1)) < 0)
			goto done;
	}
	*pin = l->next_pin++;
	l->live++;
done:
	pthread_mutex_unlock(&l->mu);
	json_decref(line);
	json_decref(o);
	free(text);
	return rc;
}

int udr__lease_pin_snapshot(uint64_t *pin, udr__lease *l, uint64_t snapshot, const char *branch, const char *what)
{
	return pin_line(pin, l, json_pack("{s:I,s:s,s:s}", "snapshot", (json_int_t)snapshot, "branch",
	                                  branch ? branch : "main", "what", what ? what : "txn"));
}

int udr__lease_pin_version(uint64_t *pin, udr__lease *l, const char *table, uint64_t version, const char *what)
{
	return pin_line(pin, l, json_pack("{s:[s,I],s:s}", "version", table, (json_int_t)version, "what",
	                                  what ? what : "read"));
}

int udr__lease_pin_after(uint64_t *pin, udr__lease *l, uint64_t after, const char *what)
{
	return pin_line(pin, l, json_pack("{s:I,s:s}", "after", (json_int_t)after, "what",
	                                  what ? what : "subscription"));
}

int udr__lease_unpin(udr__lease *l, uint64_t pin)
{
	char line[64];
	int rc = 0;
	if (pin == 0)
		return 0;
	pthread_mutex_lock(&l->mu);
	if (l->live <= 1) {
		/* no live pin left: empty the file and start over at 0 */
		if (ftruncate(l->fd, 0) < 0) {
			rc = udr__error_io(errno, "cannot truncate lease %s", l->path);
		} else {
			l->off = 0;
			l->live = 0;
		}
	} else {
		int n = snprintf(line, sizeof(line), "{\"unpin\":%" PRIu64 "}\n", pin);
		if ((rc = put_line(l, line, (size_t)n)) == 0)
			l->live--;
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

/* ---- GC's side ---------------------------------------------------------------- */

void udr__lease_set_free(udr__lease_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].branch);
		free(s->v[i].what);
		free(s->v[i].line);
		free(s->v[i].table);
	}
	free(s->v);
	free(s->damaged);
	memset(s, 0, sizeof(*s));
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static void mark_damaged(udr__lease_set *s, const char *path)
{
	s->pins_all = true;
	if (!s->damaged)
		s->damaged = strdup(path);
}

static char *dup_str(json_t *v)
{
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* The complete lines of one live owner's lease: pins minus unpins. */
static int parse_lease(udr__lease_set *s, const char *path, const char *name, const char *text, size_t len)
{
	size_t first = s->n, pos = 0;
	int64_t pid = strtoll(name, NULL, 10);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		json_t *o, *p, *u;
		size_t ll;
		if (!nl)
			break; /* a line being written */
		ll = (size_t)(nl - (text + pos));
		o = json_loadb(text + pos, ll, JSON_REJECT_DUPLICATES, NULL);
		p = json_object_get(o, "pin");
		u = json_object_get(o, "unpin");
		if (json_is_integer(u) && !p && json_integer_value(u) > 0) {
			uint64_t id = (uint64_t)json_integer_value(u);
			for (size_t i = first; i < s->n; i++)
				if (s->v[i].pin == id) {
					free(s->v[i].branch);
					free(s->v[i].what);
					free(s->v[i].line);
					free(s->v[i].table);
					s->v[i] = s->v[--s->n];
					break;
				}
		} else if (json_is_integer(p) && !u && json_integer_value(p) > 0) {
			udr__lease_pin *q;
			json_t *snap = json_object_get(o, "snapshot");
			if (s->n % 64 == 0) {
				udr__lease_pin *nv = realloc(s->v, (s->n + 64) * sizeof(*nv));
				if (!nv) {
					json_decref(o);
					return udr__error_oom();
				}
				s->v = nv;
			}
			q = &s->v[s->n];
			memset(q, 0, sizeof(*q));
			q->pid = pid;
			q->pin = (uint64_t)json_integer_value(p);
			if (!(q->line = strndup(text + pos, ll))) {
				json_decref(o);
				return udr__error_oom();
			}
			if (snap) {
				if (!json_is_integer(snap) || json_integer_value(snap) < 0) {
					free(q->line);
					mark_damaged(s, path);
					json_decref(o);
					pos += ll + 1;
					continue;
				}
				q->snapshot_pin = true;
				q->snapshot = (uint64_t)json_integer_value(snap);
				q->branch = dup_str(json_object_get(o, "branch"));
				q->what = dup_str(json_object_get(o, "what"));
			}
			{
				json_t *ver = json_object_get(o, "version"), *aft = json_object_get(o, "after");
				bool bad = false;
				if (ver) {
					json_t *vt = json_array_get(ver, 0), *vv = json_array_get(ver, 1);
					bad = snap || aft || !json_is_array(ver) || json_array_size(ver) != 2 ||
					      !json_is_string(vt) || !json_is_integer(vv) || json_integer_value(vv) < 1 ||
					      !(q->table = strdup(json_string_value(vt)));
					q->kind = UDR__PIN_VERSION;
					q->version = bad ? 0 : (uint64_t)json_integer_value(vv);
				} else if (aft) {
					bad = snap || !json_is_integer(aft) || json_integer_value(aft) < 0;
					q->kind = UDR__PIN_AFTER;
					q->after = bad ? 0 : (uint64_t)json_integer_value(aft);
				} else if (snap) {
					q->kind = UDR__PIN_SNAPSHOT;
				} else if (json_is_string(json_object_get(o, "put"))) {
					q->kind = UDR__PIN_PUT;
				} else {
					bad = true; /* a pin of no kind known: it may pin anything */
				}
				if (bad) {
					free(q->line);
					free(q->branch);
					free(q->what);
					free(q->table);
					mark_damaged(s, path);
					json_decref(o);
					pos += ll + 1;
					continue;
				}
			}
			if (!q->what)
				q->what = dup_str(json_object_get(o, "what"));
			if (json_is_integer(json_object_get(o, "ms")))
				q->ms = (int64_t)json_integer_value(json_object_get(o, "ms"));
			s->n++;
		} else {
			mark_damaged(s, path);
		}
		json_decref(o);
		pos += ll + 1;
	}
	return 0;
}

static int collect(udr__lease_set *out, const char *catdir, bool remove_dead);

int udr__leases_collect(udr__lease_set *out, const char *catdir)
{
	return collect(out, catdir, true);
}

int udr__leases_list(udr__lease_set *out, const char *catdir)
{
	return collect(out, catdir, false);
}

static int collect(udr__lease_set *out, const char *catdir, bool remove_dead)
{
	char *dir = udr__path_join(catdir, UDR__LEASES_DIR);
	DIR *d;
	struct dirent *e;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	if (!dir)
		return UDR_ENOMEM;
	if (!(d = opendir(dir))) {
		rc = errno == ENOENT ? 0 : udr__error_io(errno, "cannot list %s", dir);
		free(dir);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		bool lease = e->d_name[0] != '.' && ends_with(e->d_name, ".lease");
		bool tmp = e->d_name[0] == '.' && ends_with(e->d_name, ".tmp");
		char *p, *text = NULL;
		size_t len = 0;
		int fd;
		if (!lease && !tmp)
			continue;
		if (!(p = udr__path_join(dir, e->d_name))) {
			rc = UDR_ENOMEM;
			break;
		}
		if ((fd = UDR_IO->open(p, O_RDONLY | O_CLOEXEC, 0)) < 0) {
			if (errno != ENOENT) /* its owner closed it meanwhile */
				rc = udr__error_io(errno, "cannot open lease %s", p);
			free(p);
			continue;
		}
		if (UDR_IO->flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* free: the owner is dead (or has not locked its .tmp yet,
			 * and then finds it gone and starts over) */
			if (!remove_dead) {
				if (lease) /* listing only: left for the next gc */
					out->dead++;
			} else if (UDR_IO->unlink(p) == 0)
				out->removed++;
			else if (errno != ENOENT)
				rc = udr__error_io(errno, "cannot remove the lease of a dead owner %s", p);
		} else if (errno != EWOULDBLOCK) {
			rc = udr__error_io(errno, "cannot probe lease %s", p);
		} else if (lease) {
			rc = udr__read_file(&text, &len, p, LEASE_MAX);
			if (rc == UDR_ENOTFOUND) {
				udr_error_clear();
				rc = 0; /* closed meanwhile: no pins */
			} else if (rc == 0) {
				rc = parse_lease(out, p, e->d_name, text, len);
			} else if (rc == UDR_ECORRUPT) {
				udr_error_clear();
				mark_damaged(out, p); /* larger than any sane lease */
				rc = 0;
			}
			free(text);
		}
		UDR_IO->close(fd);
		free(p);
	}
	closedir(d);
	free(dir);
	if (rc < 0)
		udr__lease_set_free(out);
	return rc;
}
