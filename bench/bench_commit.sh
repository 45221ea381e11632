#!/bin/sh
# bench/bench_commit.sh - commit-path benchmarks, printed as ratios (not a test).
#
#   sh bench/bench_commit.sh [BUILD_DIR]     (default: build)
#
# (1) durable single-table commit vs "create + write + fsync a file + fsync
#     its directory", measured in the same run on the same file system;
#     goal: one commit costs at most 3x that.
# (2) 4 writer processes on disjoint tables: aggregate commits/s vs 1 writer;
#     goal >= 1.5x.
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
echo "   RATIO commit / fsync'd-file = $(ratio "$c" "$b")   (goal <= 3)"

echo "-- (2) writer processes on disjoint tables, $secs s each"
o1=$("$bin" writers "$scratch/w1" 1 "$secs")
o4=$("$bin" writers "$scratch/w4" 4 "$secs")
r1=$(field "$o1" per_s); r4=$(field "$o4" per_s)
echo "   1 writer: $r1 commits/s; 4 writers: $r4 commits/s aggregate"
echo "   RATIO 4 writers / 1 writer = $(ratio "$r4" "$r1")   (goal >= 1.5)"

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
