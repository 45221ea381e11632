#!/bin/sh
# bench/bench_commit.sh - commit-path benchmarks, printed as ratios (not a test).
#
#   sh bench/bench_commit.sh [BUILD_DIR]     (default: build)
#
# (1) durable single-table commit vs "create + write + fsync a file + fsync
#     its directory", measured in the same run on the same file system;
#     goal: one commit costs at most 2x that.
# (2) 4 and 8 writer processes on disjoint tables: aggregate commits/s vs 1
#     writer; goals >= 3x and >= 4x (group commit).
# (4) readers while 4 writers commit: median latency of `show T` and
#     `log --limit 10` (library calls) with and without the writers.
# (2b) (2) again with every syncfs followed by a sleep of UDR_BENCH_FLUSH_US
#     (default 3000): a disk whose flush takes milliseconds, where group
#     commit, not CPU, decides the ratios (for information).
# (3) udr_catalog_log(newest_first, limit 10) - what `udr log --limit 10`
#     does - on a 1,000,000-commit log vs a 1,000-commit log; goal <= 2.
#     The long log is built through the library with an I/O table whose
#     fsync is a no-op (durability does not change the log's shape); it is
#     kept in $UDR_BENCH_LOGDIR (default /tmp/udr-bench-log) and reused by
#     later runs.
#
# Environment: UDR_BENCH_DIR (scratch for (1) and (2), default a fresh dir
# under /tmp), UDR_BENCH_N (commits for (1), default 300), UDR_BENCH_SECONDS
# (for (2), default 5), UDR_BENCH_BIG (default 1000000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
if [ ! -e "$build/libudr.so" ]; then
	echo "bench_commit.sh: $build/libudr.so not found; build first (cmake --build $build)" >&2
	exit 2
fi
bin=$build/bench_commit
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -o "$bin" "$here/bench_commit.c" -I"$src/include" \
	-L"$build" -ludr -Wl,-rpath,"$build"

scratch=${UDR_BENCH_DIR:-$(mktemp -d /tmp/udr-bench-commit.XXXXXX)}
logdir=${UDR_BENCH_LOGDIR:-/tmp/udr-bench-log}
n=${UDR_BENCH_N:-300}
secs=${UDR_BENCH_SECONDS:-5}
big=${UDR_BENCH_BIG:-1000000}
trap 'rm -rf "$scratch"' EXIT

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
field() { echo "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }

echo "== UDR commit benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(df -T "$scratch" | awk 'NR==2 {print $2}') at $scratch)"

echo "-- (1) durable single-table commit vs one fsync'd file + directory fsync ($n each, interleaved)"
out=$("$bin" durable "$scratch/durable" "$n")
b=$(field "$out" baseline_us); c=$(field "$out" commit_us)
echo "   fsync'd file + dir fsync: median $b us; commit: median $c us  ($out)"
echo "   RATIO commit / fsync'd-file = $(ratio "$c" "$b")   (goal <= 2)"

echo "-- (2) writer processes on disjoint tables, $secs s each, in 1-s turns (1, 4, 8 writers, ...)"
echo "   so that all three see the same disk weather (the machine may be shared)"
add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }
c1=0; c4=0; c8=0; s1=0; s4=0; s8=0; y1=0; y4=0; y8=0
i=0
while [ "$i" -lt "$secs" ]; do
	# fresh stores each turn, removed only at the end: on ext4 without a
	# journal, inodes freed in the last 30 s (dirty_expire) are skipped one
	# by one when allocating, so removing a turn's thousands of files would
	# slow the next turns' file creation (the benchmark's own deletions)
	o=$(UDR_BENCH_FLUSH_US=0 "$bin" writers "$scratch/w1.$i" 1 1); c1=$(add "$c1" "$(field "$o" commits)"); s1=$(add "$s1" "$(field "$o" seconds)"); y1=$(add "$y1" "$(field "$o" syncs)")
	o=$(UDR_BENCH_FLUSH_US=0 "$bin" writers "$scratch/w4.$i" 4 1); c4=$(add "$c4" "$(field "$o" commits)"); s4=$(add "$s4" "$(field "$o" seconds)"); y4=$(add "$y4" "$(field "$o" syncs)")
	o=$(UDR_BENCH_FLUSH_US=0 "$bin" writers "$scratch/w8.$i" 8 1); c8=$(add "$c8" "$(field "$o" commits)"); s8=$(add "$s8" "$(field "$o" seconds)"); y8=$(add "$y8" "$(field "$o" syncs)")
	i=$((i + 1))
done
rm -rf "$scratch"/w1.* "$scratch"/w4.* "$scratch"/w8.*
r1=$(ratio "$c1" "$s1"); r4=$(ratio "$c4" "$s4"); r8=$(ratio "$c8" "$s8")
echo "   1 writer: $r1 commits/s; 4 writers: $r4; 8 writers: $r8 commits/s aggregate"
echo "   syncfs calls per second: $(ratio "$y1" "$s1"), $(ratio "$y4" "$s4"), $(ratio "$y8" "$s8"); commits per syncfs: $(ratio "$c1" "$y1"), $(ratio "$c4" "$y4"), $(ratio "$c8" "$y8")"
echo "   RATIO 4 writers / 1 writer = $(ratio "$r4" "$r1")   (goal >= 3)"
echo "   RATIO 8 writers / 1 writer = $(ratio "$r8" "$r1")   (goal >= 4)"

flush=${UDR_BENCH_FLUSH_US:-3000}
echo "-- (2b) the same with a slower disk simulated: every syncfs then sleeps ${flush} us (UDR_BENCH_FLUSH_US),"
echo "   so the flush, not the 2 cores, bounds the single writer (for information: how well groups form)"
c1=0; c4=0; c8=0; y4=0; y8=0
i=0
while [ "$i" -lt 3 ]; do
	o=$(UDR_BENCH_FLUSH_US=$flush "$bin" writers "$scratch/f1.$i" 1 1); c1=$(add "$c1" "$(field "$o" commits)")
	o=$(UDR_BENCH_FLUSH_US=$flush "$bin" writers "$scratch/f4.$i" 4 1); c4=$(add "$c4" "$(field "$o" commits)"); y4=$(add "$y4" "$(field "$o" syncs)")
	o=$(UDR_BENCH_FLUSH_US=$flush "$bin" writers "$scratch/f8.$i" 8 1); c8=$(add "$c8" "$(field "$o" commits)"); y8=$(add "$y8" "$(field "$o" syncs)")
	i=$((i + 1))
done
rm -rf "$scratch"/f1.* "$scratch"/f4.* "$scratch"/f8.*
echo "   commits per syncfs: 4 writers $(ratio "$c4" "$y4"), 8 writers $(ratio "$c8" "$y8")"
echo "   RATIO (simulated ${flush} us flush) 4 writers / 1 writer = $(ratio "$c4" "$c1"); 8 writers / 1 writer = $(ratio "$c8" "$c1")   (information)"

echo "-- (4) readers while 4 writers commit ($secs s)"
o=$("$bin" readers "$scratch/rd" 4 "$secs")
echo "   $o"
echo "   RATIO show busy / idle = $(ratio "$(field "$o" busy_show_us)" "$(field "$o" idle_show_us)"); log10 busy / idle = $(ratio "$(field "$o" busy_log10_us)" "$(field "$o" idle_log10_us)")"

echo "-- (3) log --limit 10 (newest first) on a $big-commit log vs a 1000-commit log"
echo "   logs built through libudr with a no-op fsync in the I/O table (udr_io_set)"
small=$scratch/log1k
"$bin" buildlog "$small" 1000 100 >/dev/null
if [ -e "$logdir/config.json" ]; then
	echo "   reusing the long log in $logdir (extended to $big if shorter)"
fi
t0=$(date +%s)
o=$("$bin" buildlog "$logdir" "$big" 100)
echo "   long log: $o (this run: $(( $(date +%s) - t0 )) s)"
qs=$("$bin" logquery "$small" 300)
qb=$("$bin" logquery "$logdir" 300)
s10=$(field "$qs" log10_us); b10=$(field "$qb" log10_us)
st=$(field "$qs" table_log10_us); bt=$(field "$qb" table_log10_us)
echo "   1k log: $qs"
echo "   big log: $qb"
echo "   RATIO log10 big / small = $(ratio "$b10" "$s10")   (goal <= 2)"
echo "   RATIO log10 filtered to one table, big / small = $(ratio "$bt" "$st")   (same goal, for information)"
