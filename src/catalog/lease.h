/*
 * lease.h - lease files (docs/GC.md 2.1): an open handle's pins on versions
 * and snapshots in catalog/leases/<pid>-<16 hex>.lease, held under flock
 * LOCK_EX by its owner for its whole life, and GC's collection of the pins
 * of live owners (dead owners' files are removed).
 */
#ifndef UDR_LEASE_H
#define UDR_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define UDR__LEASES_DIR "leases"

typedef struct udr__lease udr__lease;

/*
 * Create a lease in <catdir>/leases/ (made when missing): open
 * .<pid>-<rand>.tmp with O_CREAT|O_EXCL, flock LOCK_EX, rename to
 * <pid>-<rand>.lease (the lock stays on the inode, so GC never sees an
 * unlocked lease).  *out owns the descriptor until udr__lease_close.
 * Errors: UDR_EIO (errno in the message, and left in errno: EACCES/EROFS
 * for a store the process cannot write), UDR_ENOMEM.
 */
int udr__lease_open(udr__lease **out, const char *catdir);
/* Remove the lease file and close it (NULL is fine). */
void udr__lease_close(udr__lease *l);
/* Whether this process made l (false in a child forked after it was
 * made: the child must make its own to pin, and leave l's file alone). */
bool udr__lease_mine(const udr__lease *l);
/* The lease's file (borrowed, valid until close). */
const char *udr__lease_path(const udr__lease *l);

/*
 * Append a snapshot pin {"pin":N,"snapshot":S,"branch":B,"what":W,"ms":T}
 * (one pwrite at the owner's offset); *pin receives N.  Thread-safe.
 * UDR_EIO when the line cannot be written whole (nothing is pinned then).
 */
int udr__lease_pin_snapshot(uint64_t *pin, udr__lease *l, uint64_t snapshot, const char *branch, const char *what);
/* A version pin {"pin":N,"version":[T,V],"what":W,"ms":T} (a statement's or
 * a read's resolved version, GC.md 2.3); as udr__lease_pin_snapshot. */
int udr__lease_pin_version(uint64_t *pin, udr__lease *l, const char *table, uint64_t version, const char *what);
/* An after pin {"pin":N,"after":S,"what":W,"ms":T}: a subscription's cursor;
 * the new and old versions of every record past S stay (GC.md 2.3). */
int udr__lease_pin_after(uint64_t *pin, udr__lease *l, uint64_t after, const char *what);
/* Drop pin N: an {"unpin":N} line, or, when it was the last live pin, the
 * file truncated to 0 and the offset restarted.  UDR_EIO on failure (the
 * pin then stays, which only keeps more). */
int udr__lease_unpin(udr__lease *l, uint64_t pin);

typedef enum udr__pin_kind {
	UDR__PIN_SNAPSHOT = 1, /* snapshot, branch */
	UDR__PIN_VERSION,      /* table, version */
	UDR__PIN_AFTER,        /* after */
	UDR__PIN_PUT           /* a content hash (line): the sweep's business */
} udr__pin_kind;

/* One live pin, as GC reads it.  A pin line of no known kind, or with bad
 * fields, is damage (pins_all), never a pin. */
typedef struct udr__lease_pin {
	udr__pin_kind kind;
	int64_t pid;       /* from the file name (messages only) */
	uint64_t pin;
	bool snapshot_pin; /* a "snapshot" pin (the fields below are set) */
	uint64_t snapshot;
	char *branch;      /* NULL when absent */
	char *what;        /* NULL when absent */
	int64_t ms;
	char *table;       /* UDR__PIN_VERSION */
	uint64_t version;
	uint64_t after;    /* UDR__PIN_AFTER */
	char *line;        /* the line as written */
} udr__lease_pin;

typedef struct udr__lease_set {
	udr__lease_pin *v;
	size_t n;
	/* a live owner's lease with a complete line that is not a pin or an
	 * unpin (damaged by hand): GC must treat it as pinning everything */
	bool pins_all;
	char *damaged; /* the first such file (malloc'd) */
	uint64_t removed; /* files of dead owners removed */
	uint64_t dead;    /* udr__leases_list: *.lease files of dead owners (left in place) */
} udr__lease_set;

/*
 * GC's view of the leases in <catdir>/leases/: each *.lease probed with
 * flock(LOCK_EX|LOCK_NB): free (owner dead) -> removed, with free .tmp
 * files; busy -> read whole, its complete lines minus unpinned pins (a last
 * line without '\n' is a write in progress, ignored).  A missing directory
 * is no lease.  out is freed by udr__lease_set_free.  Errors: UDR_EIO,
 * UDR_ENOMEM.
 */
int udr__leases_collect(udr__lease_set *out, const char *catdir);
/* The same without removing anything (dead owners' files are skipped):
 * for udr gc --status. */
int udr__leases_list(udr__lease_set *out, const char *catdir);
void udr__lease_set_free(udr__lease_set *s);

#endif
