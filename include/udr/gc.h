/*
 * udr/gc.h - garbage collection with retention (docs/GC.md): retention rules,
 * which versions of a chain a rule keeps.
 *
 * Here: the rule type and its evaluation over one chain of versions
 * (GC.md 1.2), duration text, the plan, expire records (1.4), their undo
 * and restore, udr_version_expiry (7.3), and the writers' hold on the gc
 * fence.  Collection itself is udr_db_gc (udr/db.h), which with a rule
 * expires, links a gc record and removes what only expired versions need.
 */
#ifndef UDR_GC_H
#define UDR_GC_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UDR_RETENTION_RULE_VERSION 1

/**
 * A retention rule (GC.md 1.1, 1.2): a version is kept when any key keeps it.
 * A rule with every key unset keeps everything.  Initialise with
 * UDR_RETENTION_RULE_INIT, then set the keys wanted.
 */
typedef struct udr_retention_rule {
	unsigned int version;   /**< UDR_RETENTION_RULE_VERSION */
	uint64_t keep_last;     /**< the K newest versions of the chain; 0: none */
	int64_t keep_within_ms; /**< versions current at some moment of [now - D, now]; < 0: none */
	uint32_t keep_hourly;   /**< the newest version of each of the N most recent UTC hours
	                             holding a version; 0: none */
	uint32_t keep_daily;    /**< likewise per UTC day */
	uint32_t keep_weekly;   /**< likewise per ISO week (Monday to Sunday, UTC) */
	uint32_t keep_monthly;  /**< likewise per UTC calendar month */
	uint32_t keep_yearly;   /**< likewise per UTC calendar year */
} udr_retention_rule;

#define UDR_RETENTION_RULE_INIT { UDR_RETENTION_RULE_VERSION, 0, -1, 0, 0, 0, 0, 0 }

/** Why a version is kept: bits of udr_retention_keep()'s output. */
#define UDR_KEEP_LAST    0x01u
#define UDR_KEEP_WITHIN  0x02u
#define UDR_KEEP_HOURLY  0x04u
#define UDR_KEEP_DAILY   0x08u
#define UDR_KEEP_WEEKLY  0x10u
#define UDR_KEEP_MONTHLY 0x20u
#define UDR_KEEP_YEARLY  0x40u
#define UDR_KEEP_ALL     0x80u /**< the rule has no key: it keeps everything */

/**
 * Parse a duration: one or more `<digits><unit>` with units s, min, h, d,
 * w and y (365 days), e.g. "1y2w3d4h5min6s"; no month ("m" is refused as
 * ambiguous), no sign, no spaces, each unit at most once and in that order
 * (largest first).  "0s" is zero.
 * @param[out] out_ms the duration in milliseconds
 * @param text NUL-terminated text
 * @return 0; UDR_EINVAL quoting text (empty, unknown unit, out of order,
 *         or more than 2^63 - 1 ms).
 */
UDR_EXTERN int udr_retention_parse_duration(int64_t *out_ms, const char *text);

/**
 * Write a duration in the form udr_retention_parse_duration() reads, largest
 * units first ("1y2w3d", "0s").  There is no millisecond unit: a remainder
 * below one second is dropped (rounded down).
 * @param[out] buf receives the text (NUL-terminated, 48 bytes suffice)
 * @param size size of buf
 * @param ms the duration, >= 0
 */
UDR_EXTERN void udr_retention_format_duration(char *buf, size_t size, int64_t ms);

/**
 * Check a rule: version known, keep_last and every bucket count either unset
 * or >= 1 (there is no way to say "keep 0"), keep_within_ms < 0 or >= 0.
 * @return 0; UDR_EINVAL naming the key.
 */
UDR_EXTERN int udr_retention_rule_check(const udr_retention_rule *rule);

/**
 * Which versions of one chain a rule keeps (GC.md 1.2).
 * @param[out] out n reason masks (UDR_KEEP_*; 0: the rule keeps it not);
 *        a rule with no key keeps every version (UDR_KEEP_ALL)
 * @param times_ms the chain newest first: times_ms[0] is c0, the version in
 *        the branch head's snapshot, times_ms[i] the time of the record that
 *        made c(i); non-increasing (the log's time never decreases)
 * @param n number of versions in the chain
 * @param rule the rule (checked as by udr_retention_rule_check())
 * @param now_ms the time of the evaluation, >= times_ms[0]
 * @return 0; UDR_EINVAL for a bad rule, times increasing along the chain or
 *         now before c0.
 */
UDR_EXTERN int udr_retention_keep(unsigned int *out, const int64_t *times_ms, size_t n,
                                  const udr_retention_rule *rule, int64_t now_ms);

/**
 * The rule as text, "keep_last=500,keep_within=90d,keep_daily=14" (keys in
 * the order of the struct), or "keep all" for a rule with no key.
 * @param[out] buf receives the text (NUL-terminated; 256 bytes suffice)
 */
UDR_EXTERN void udr_retention_rule_format(char *buf, size_t size, const udr_retention_rule *rule);

/**
 * A retention policy (GC.md 1.1) parsed from its JSON: a default rule and
 * overrides per table, per branch (a name, or "NAME/" followed by "*", for every branch
 * under NAME/) and per branch and table, the orphans' rule, `undo` and
 * `grace`.  Opaque; free with udr_retention_policy_free.  udr_retention_set
 * stores one in a `retention` record.
 */
typedef struct udr_retention_policy udr_retention_policy;

/**
 * Parse and check a policy, e.g.
 * {"default":{"keep_last":30,"keep_within":"90d"},"tables":{"raw":{"keep_last":3}},
 *  "branches":{"dev/@":{"keep_within":"14d"}},"pairs":{"main":{"prices":{"keep_last":1000}}},
 *  "orphans":null,"undo":"0s","grace":"24h"}
 * (where "dev/@" stands for dev, slash, star: every branch under dev/).
 * Every key is optional; unknown keys, counts below 1 (or above 2^32 - 1 for
 * buckets), bad durations, table or branch names are refused whole.
 * @param[out] out the policy (free with udr_retention_policy_free)
 * @return 0; UDR_EINVAL naming the key; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_policy_parse(udr_retention_policy **out, const char *json);

/** Free a policy (accepts NULL). */
UDR_EXTERN void udr_retention_policy_free(udr_retention_policy *policy);

/**
 * The rule for table on branch (NULL: main): the most specific, whole (keys
 * are not mixed): pairs[B][T], tables[T], branches[B], default; a branch key
 * matches by name, else by the longest "NAME/" + "*" prefix.  With none of these,
 * a rule with no key, which keeps everything.
 * @param[out] out the rule
 * @param[out] source when not NULL: "pair", "table", "branch", "default" or
 *             "none" (static text)
 * @return 0; UDR_EINVAL (no policy or table).
 */
UDR_EXTERN int udr_retention_policy_rule(udr_retention_rule *out, const char **source,
                                         const udr_retention_policy *policy, const char *table,
                                         const char *branch);

/** The default rule: 1 and *out set when the policy has one, 0 when not. */
UDR_EXTERN int udr_retention_policy_default(udr_retention_rule *out, const udr_retention_policy *policy);

/** The orphans' rule: 1 and *out set when the policy has one, 0 when null or absent. */
UDR_EXTERN int udr_retention_policy_orphans(udr_retention_rule *out, const udr_retention_policy *policy);

/** The policy's `undo` (default 0) and `grace` (default 24 h) in ms. */
UDR_EXTERN int64_t udr_retention_policy_undo_ms(const udr_retention_policy *policy);
UDR_EXTERN int64_t udr_retention_policy_grace_ms(const udr_retention_policy *policy);

struct udr_catalog;

/** udr_retention_plan's now_ms: take the clock. */
#define UDR_RETENTION_NOW INT64_MIN

/**
 * Plan retention now (GC.md 1.2, 1.3), writing nothing: apply rule to the
 * chain of each table on each live branch (the version in the branch head's
 * snapshot, then its parents), and report which versions it would expire.
 * A version is kept when any chain's rule keeps it, and always when it is in
 * a branch head's or a tag's snapshot or is its table's highest allocated
 * version or in the snapshot of a merge base of two live branches' heads.
 * Versions on no live branch's chain (orphans) are kept: GC.md's orphan
 * rule is not built yet, nor fork points beyond pairwise merge bases.
 * @param[out] out_json the report, freed with udr_free:
 *   {"dry_run":true,"now":ISO,"now_ms":N,"at":HEAD,"rule":TEXT,"table":T|null,
 *    "branch":B|null,"expired":{"versions":N,"tables":{T:N},"ranges":{T:[[a,b],...]}},
 *    "kept":{"versions":N,"by_reason":{"policy":N,"head":N,"tag":N,"merge_base":0,
 *    "pinned":0,"latest":N,"orphan":N,"other_branch":N}},"already_expired":N}
 *   (each kept version counted once, under the first of head, tag, latest,
 *   merge_base, other_branch, policy, orphan that applies; ranges sorted,
 *   disjoint, not adjacent; versions an expire record took already are in
 *   neither part, only counted in already_expired)
 * @param catalog the catalog
 * @param rule the rule (udr_retention_rule_check)
 * @param table only this table (NULL: every table)
 * @param branch apply the rule on this branch only (NULL: every branch); the
 *        other branches' chains are then all kept ("other_branch")
 * @param now_ms the evaluation time, or UDR_RETENTION_NOW: the wall clock
 *        (in builds with fault injection, env UDR_GC_NOW when set: ms since
 *        the epoch or a time as udr_time_parse reads); raised to the head
 *        record's time when below it
 * @return 0; UDR_EINVAL (bad rule, table or branch name); UDR_ENOTFOUND (no
 *         such table or branch); UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_plan(char **out_json, struct udr_catalog *catalog, const udr_retention_rule *rule,
                                  const char *table, const char *branch, int64_t now_ms);

/** udr_retention_apply's flags. */
#define UDR_RETENTION_DRY_RUN 0x1u
/**
 * udr_retention_apply's and udr_retention_plan_ex's flag: apply the stored
 * policy (udr_retention_set) at the plan's head, each chain's rule chosen by
 * udr_retention_policy_rule; `rule`, when not NULL, replaces only the
 * policy's default for this run (its table, branch and pair rules, more
 * specific, still apply; GC.md 1.1).  Without a stored policy and rule
 * NULL nothing expires.  Orphans (versions on no live chain) get the
 * default's (or `rule`'s) keep_within; with no default, or one with no
 * key, they are kept.  The report's "policy" is the retention record used
 * (0: none), "rule" "policy N" (", default RULE" when replaced).
 */
#define UDR_RETENTION_POLICY 0x2u

/**
 * udr_retention_plan with flags (0 or UDR_RETENTION_POLICY; with it rule
 * may be NULL).
 */
UDR_EXTERN int udr_retention_plan_ex(char **out_json, struct udr_catalog *catalog, const udr_retention_rule *rule,
                                     const char *table, const char *branch, int64_t now_ms, unsigned flags);

/**
 * Store a retention policy (GC.md 1.1): link a branch-less `retention`
 * record holding it (keys sorted, compact), which the global state's
 * "@retention" names from then on; shown by `udr log`.  The catalog becomes
 * format 5 at the first one (older versions refuse it).
 * @param[out] seq_out the record (may be NULL)
 * @param catalog the catalog (it must have a commit: UDR_ENOTFOUND if not)
 * @param policy_json the policy as udr_retention_policy_parse reads it;
 *        NULL or "{}" clears it (stores "{}", which keeps everything: the
 *        same as no policy).  Keys stored but not applied by this version
 *        are refused: "undo" other than "0s", "orphans" other than null.
 *        "grace" is udr_db_gc's when its options give none.
 * @param message the record's message (NULL: "retention policy JSON" or
 *        "retention policy cleared")
 * @return 0; UDR_EINVAL naming the key (nothing written); UDR_ENOTFOUND;
 *         UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_set(uint64_t *seq_out, struct udr_catalog *catalog, const char *policy_json,
                                 const char *message);

/**
 * udr_retention_set, but only while the retention record in force at the
 * linked head is still `expect` (what udr_retention_policy_at returned;
 * 0: none), checked under the writer lock: an edit of the policy read
 * before loses no concurrent change.
 * @return as udr_retention_set; UDR_ECONFLICT (another change was linked
 *         since: nothing written).
 */
UDR_EXTERN int udr_retention_update(uint64_t *seq_out, struct udr_catalog *catalog, const char *policy_json,
                                    const char *message, uint64_t expect);

/**
 * The stored policy at the readers' head: its JSON (keys sorted, compact),
 * or "{}" when none was ever stored (or it was cleared).
 * @param[out] out_json freed with udr_free
 * @return 0; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_get(char **out_json, struct udr_catalog *catalog);

/**
 * The policy in force at commit at (0: the readers' head) and the
 * `retention` record that stored it: at a retention record's seq, the
 * policy that record stored.
 * @param[out] out_json its JSON, "{}" when none (freed with udr_free)
 * @param[out] seq_out the retention record (0: none); may be NULL
 * @return 0; UDR_ENOTFOUND (no commit at); UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_policy_at(char **out_json, uint64_t *seq_out, struct udr_catalog *catalog, uint64_t at);

/**
 * Apply rule now to the catalog (or one table) on every branch: what
 * `udr gc --keep-...` runs first.  With UDR_RETENTION_DRY_RUN this is
 * udr_retention_plan(report_json, catalog, rule, table, NULL,
 * UDR_RETENTION_NOW).  Without, the plan's expired versions are linked as
 * one expire record (GC.md 1.4) through the commit step, which drops under
 * the writer lock every version a branch head's or tag's snapshot names at
 * the linked head, each table's latest, the snapshots ref records linked
 * after the plan's head named, and versions expired already; nothing left,
 * nothing written.  The catalog becomes format 4 at its first expire record.
 * @param[out] report_json as udr_retention_plan's (NULL after a failure);
 *   without a dry run "dry_run" is false and "expired" is what the record
 *   holds: {"records":[SEQ] or [],"versions":N,"tables":{T:N},"ranges":{T:[[a,b]...]}}
 * @return as udr_retention_plan; UDR_EINVAL also for unknown flags;
 *         UDR_ELOCKED, UDR_EIO from the commit step.
 */
UDR_EXTERN int udr_retention_apply(char **report_json, struct udr_catalog *catalog, const udr_retention_rule *rule,
                                   const char *table, unsigned flags);

/**
 * Whether a table version expired by retention (GC.md 1.4, 1.5), as of the
 * readers' head: one global-state lookup, one record, one checkpoint.
 */
typedef struct udr_expiry {
	int expired;          /**< 1: an expire record took it */
	int swept;            /**< 1: a gc record's sweep covers it (its data may be gone) */
	uint64_t expired_seq; /**< the expire record (0: not expired) */
	uint64_t gc_seq;      /**< the gc record (0: none) */
	int64_t expired_ms;   /**< that record's time, ms since the epoch */
	int64_t gc_ms;
} udr_expiry;

/**
 * @param[out] out zeroed, then filled when the version expired
 * @param catalog the catalog
 * @param table a table name
 * @param version a version number >= 1 (not checked to exist)
 * @return 0; UDR_EINVAL (bad name, version 0); UDR_ECORRUPT (an expire
 *         record or checkpoint the log does not produce); UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_version_expiry(udr_expiry *out, struct udr_catalog *catalog, const char *table,
                                  uint64_t version);

/**
 * May the data of table@version be read (GC.md 1.5)?  What every read path
 * checks once it has the version it will read.
 * @return 0 (not expired; also for a version that does not exist);
 *         UDR_EEXPIRED with the message of GC.md 1.5 ("t@3 expired by
 *         retention on DATE (commit S, RULE); ..."); UDR_EINVAL;
 *         UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_version_readable(struct udr_catalog *catalog, const char *table, uint64_t version);

/**
 * As udr_version_readable, for the version that time travel to `at`
 * resolved to: the message says which time was which version, as SQL's
 * t@TIME does ("t at TIME was version 3, which expired by retention on
 * DATE (commit S, RULE); ...").
 * @param at the time as the caller was given it (quoted into the message);
 *        NULL: as udr_version_readable
 * @return as udr_version_readable.
 */
UDR_EXTERN int udr_version_readable_at(struct udr_catalog *catalog, const char *table, uint64_t version,
                                       const char *at);

/**
 * Pins (GC.md 2.1-2.3): keep versions from expiring, and so from being
 * swept, while the pin lives, for callers that read chunks themselves.  A
 * pin owns a lease file of its own in catalog/leases/ (so it does not
 * depend on the catalog handle after it is made: the handle may close
 * first).  On a store this process cannot write (EACCES, EROFS) the pin is
 * made unpinned, silently (GC.md 2.4).
 */
typedef struct udr_pin udr_pin;

/**
 * Pin table@version, then (after any expire step in progress, the
 * handshake of GC.md 2.2) check it is not expired.
 * @return 0; UDR_EEXPIRED (nothing pinned); UDR_ENOTFOUND (no such
 *         version); UDR_EINVAL; UDR_EIO (no lease could be written);
 *         UDR_ENOMEM.
 */
UDR_EXTERN int udr_pin_version(udr_pin **out, struct udr_catalog *catalog, const char *table, uint64_t version);

/**
 * Pin the snapshot of branch (NULL: main) at commit seq: each table's
 * version visible there, as a transaction at seq reads it; then check none
 * of them is expired.
 * @return 0; UDR_EEXPIRED (nothing pinned); UDR_ENOTFOUND (no such commit,
 *         or the branch does not exist at seq); UDR_EINVAL; UDR_EIO;
 *         UDR_ENOMEM.
 */
UDR_EXTERN int udr_pin_snapshot(udr_pin **out, struct udr_catalog *catalog, uint64_t seq, const char *branch);

/**
 * Pin what a subscription at cursor `after` has still to deliver: the new
 * and old versions of every record past `after` (GC.md 2.3).  Versions
 * already expired are not brought back: reading them is UDR_EEXPIRED.
 * @return 0; UDR_EINVAL; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_pin_after(udr_pin **out, struct udr_catalog *catalog, uint64_t after);

/**
 * Move an after pin forward (a subscription delivered events): the new pin
 * line is written before the old is dropped.  An `after` not past the
 * pin's is a no-op.
 * @return 0; UDR_EINVAL (not an after pin); UDR_EIO (the old pin stays).
 */
UDR_EXTERN int udr_pin_advance(udr_pin *pin, uint64_t after);

/** Drop the pin and its lease (accepts NULL). */
UDR_EXTERN void udr_pin_release(udr_pin *pin);

/**
 * Take back what expire record expire_seq (0: the newest) expired and is
 * still expired by it: one unexpire record (GC.md 1.4).
 * @param[out] seq_out the unexpire record, 0 when nothing of it was left
 *             expired (nothing written); may be NULL
 * @return 0; UDR_EINVAL (not an expire record); UDR_ENOTFOUND (no such
 *         commit, or no expire record at all); UDR_ECORRUPT; UDR_EIO;
 *         UDR_ENOMEM.  (A gc record's sweep refusing it, UDR_ECONFLICT, is
 *         not built: nothing is swept yet.)
 */
UDR_EXTERN int udr_retention_undo(uint64_t *seq_out, struct udr_catalog *catalog, uint64_t expire_seq);

/**
 * Unexpire the expired versions first..last of table: one unexpire record.
 * @param[out] seq_out the unexpire record; may be NULL
 * @return 0; UDR_EINVAL (bad name or range); UDR_ENOTFOUND (no version of
 *         the range is expired: nothing written); UDR_ECORRUPT; UDR_EIO;
 *         UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_restore(uint64_t *seq_out, struct udr_catalog *catalog, const char *table,
                                     uint64_t first, uint64_t last);

/**
 * The expired versions at the readers' head, as JSON:
 * [{"table":T,"first":A,"last":B,"seq":S,"time":ISO},...] (by table, then
 * version; S the expire record, time its time).
 * @param[out] out the text, freed with udr_free
 * @param table only this table (NULL: all)
 * @return 0; UDR_EINVAL; UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_retention_expired(char **out, struct udr_catalog *catalog, const char *table);

/**
 * What the last UDR_EEXPIRED of the calling thread was about (bindings fill
 * their error's attributes from it).
 * @param[out] table receives the table name (NUL-terminated), may be NULL
 * @param[out] version, out the version and its expiry, may be NULL
 * @return 1 when this thread has had one, else 0 (outputs untouched).
 */
UDR_EXTERN int udr_expiry_last(char *table, size_t tablesz, uint64_t *version, udr_expiry *out);

/**
 * The "expire" object of expire record seq (GC.md 1.4), or the "unexpire"
 * object of an unexpire record ({"undo":S,"tables":{T:{"remove":...}}}), e.g.
 * {"at":7,"policy":0,"rule":"keep_last=1","versions":3,
 *  "tables":{"t":{"add":[[1,1],[3,4]],"prev":0,"state":"<64 hex>"}}}
 * @param[out] out the JSON text, freed with udr_free
 * @return 0; UDR_EINVAL (neither); UDR_ENOTFOUND (no such commit);
 *         UDR_ECORRUPT; UDR_EIO; UDR_ENOMEM.
 */
UDR_EXTERN int udr_expire_record_json(char **out, struct udr_catalog *catalog, uint64_t seq);

#ifdef __cplusplus
}
#endif

/*
 * Keep garbage collection out while the caller puts content and then
 * commits versions naming it ("put now, commit later" within one
 * operation).  Every put and every commit holds the collection's fence by
 * itself; between the two, content not yet named by any version is kept
 * only for the grace (`udr gc --grace`), so an operation that puts and
 * then commits holds this across both: a `udr gc` that starts meanwhile
 * waits until it ends, and a hold begun while a gc runs waits for it
 * (a gc started by the thread holding one is UDR_ELOCKED: it would wait
 * for itself).  Holds nest.  0; UDR_EIO (the store's gc/ files cannot be made: a
 * read-only store); UDR_ECORRUPT (a damaged chunks/gc/STATE).
 */
typedef struct udr_gc_hold udr_gc_hold;
UDR_EXTERN int udr_gc_hold_begin(udr_gc_hold **out, udr_store *store);
UDR_EXTERN void udr_gc_hold_end(udr_gc_hold *hold); /* accepts NULL */

#endif
