/*
 * gcstate.h - chunks/gc/STATE, the sealed JSON file in which garbage
 * collection publishes its epoch and phase (docs/GC.md 4.3, docs/FORMAT.md
 * "GC state"): load, durable replace, and a cheap cached re-read for writers.
 */
#ifndef UDR_GCSTATE_H
#define UDR_GCSTATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Phases of a run, in order (aborted: a run stopped, docs/GC.md 5.3). */
enum udr__gc_phase {
	UDR__GC_IDLE = 0,
	UDR__GC_DOOMED,
	UDR__GC_PLANNED,
	UDR__GC_REWRITTEN,
	UDR__GC_DELETING,
	UDR__GC_ABORTED
};
/* "idle", "doomed", ... ("?" for a value out of range). */
const char *udr__gc_phase_name(enum udr__gc_phase p);

/* Longest value of the doomed/dead/plan fields (file names or digests). */
#define UDR__GC_NAME_MAX 128
/* Longest boot_id (a uuid is 36). */
#define UDR__GC_BOOTID_MAX 63

#define UDR__GC_DIR "gc"
#define UDR__GC_STATE_FILE "STATE"

typedef struct udr__gcstate {
	uint64_t epoch;   /* raised each time a run publishes a doomed set */
	uint64_t drained; /* highest epoch whose writers are known finished (<= epoch) */
	enum udr__gc_phase phase;
	char doomed[UDR__GC_NAME_MAX + 1]; /* "" stands for null */
	char dead[UDR__GC_NAME_MAX + 1];
	char plan[UDR__GC_NAME_MAX + 1];
	uint64_t mark;        /* catalog seq M of the run's mark */
	uint64_t gc_seq;      /* the newest gc record a run linked (0: none): fsck --reset-head never goes below it */
	int64_t started_ms;   /* when the run started */
	int64_t pid;          /* the run's process */
	int64_t wall_ms;      /* clock guard (GC.md 4.6): wall clock ... */
	char boot_id[UDR__GC_BOOTID_MAX + 1]; /* ... in this boot ("" null) ... */
	int64_t boottime_ms;  /* ... at this CLOCK_BOOTTIME */
	char *last;           /* the last run's summary: compact JSON object text, or NULL (owned) */
} udr__gcstate;

/* A state of epoch 0, phase idle, everything else null/0 (what a missing
 * STATE means). */
void udr__gcstate_init(udr__gcstate *st);
/* Free what st owns (last); st is then as after init.  NULL is fine. */
void udr__gcstate_release(udr__gcstate *st);

/*
 * Parse the bytes of a STATE file (path only for messages).  The file must
 * be sealed and intact, format 1, kind "udr-gc-state", with every field of
 * the right type and range (drained <= epoch); otherwise UDR_ECORRUPT naming
 * path and what is wrong.  out is initialised first, and released on error.
 */
int udr__gcstate_parse(udr__gcstate *out, const char *text, size_t len, const char *path);

/*
 * Load <storepath>/gc/STATE into out (caller releases it).  A missing file
 * (or missing gc/) is epoch 0, phase idle: returns 0.  A damaged one is
 * UDR_ECORRUPT; an unreadable one UDR_EIO.
 */
int udr__gcstate_load(udr__gcstate *out, const char *storepath);

/*
 * Replace <storepath>/gc/STATE durably: sealed text written to a temp file
 * in tmpdir (the store's tmp/, same file system), fsync, rename, fsync gc/.
 * gc/ is created (and the store directory synced) when missing.  Returns 0
 * or UDR_EIO/UDR_ENOMEM/UDR_EINVAL (a field out of range: drained > epoch,
 * a name with characters that need escaping or too long, last not an
 * object).  Readers see the old file or the new one, never a mix.
 */
int udr__gcstate_save(const char *storepath, const char *tmpdir, const udr__gcstate *st);

/* The compact sealed text save writes (malloc'd into *out, length *len). */
int udr__gcstate_format(char **out, size_t *len, const udr__gcstate *st);

/* Make <storepath>/gc (fsync of storepath when it was created).  Returns 0
 * or the error of mkdir (EACCES/EROFS keep their errno in the message). */
int udr__gc_dir_ensure(const char *storepath);

/*
 * A cheap re-read for writers: the epoch and phase of STATE, re-parsed only
 * when stat shows another file (device, inode, size, mtime or ctime
 * changed); one stat otherwise.  The file parsed last is kept open, so its
 * inode number cannot be reused by a later STATE: "same device and inode"
 * is exact, not a heuristic (STATE is only ever replaced, never written in
 * place; the times catch a hand edit).  Thread-safe (a mutex).  A missing
 * STATE is epoch 0, idle; a damaged one UDR_ECORRUPT (not cached).
 */
typedef struct udr__gcwatch {
	pthread_mutex_t mu;
	int fd;       /* the STATE parsed last, held open; -1 when none */
	bool valid;   /* the fields below describe the last stat */
	bool missing; /* STATE did not exist then */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint64_t epoch;
	enum udr__gc_phase phase;
	uint64_t parses; /* how many times STATE was parsed (tests) */
	/* The doomed set of a run between its plan and its end (GC.md 4.7):
	 * STATE's "doomed" name while the phase is planned, rewritten or
	 * deleting, else "".  doom is the set loaded from it (gcfence.c, under
	 * mu; freed when the name changes); doom_on mirrors doomed[0] != 0 for
	 * a lock-free first test; doom_ignored names a set whose run was found
	 * dead (its lock on the set file free, gcfence.c), which then binds no
	 * writer; both are dropped when STATE names another set or the same
	 * name with another started_ms (review R6). */
	char doomed[UDR__GC_NAME_MAX + 1];
	char doom_ignored[UDR__GC_NAME_MAX + 1];
	int64_t doomed_started; /* STATE's started_ms with that name */
	struct udr__doomset *doom;
	int doom_on;
} udr__gcwatch;
void udr__gcwatch_init(udr__gcwatch *w);
void udr__gcwatch_destroy(udr__gcwatch *w);
/* Free a loaded doomed set (gcfence.c); NULL is fine. */
void udr__doomset_free(struct udr__doomset *d);
int udr__gcwatch_read(uint64_t *epoch, enum udr__gc_phase *phase, udr__gcwatch *w, const char *storepath);

#endif
