#!/bin/sh
# bench/bench_branches.sh - branches at scale, printed as ratios (not a test).
#
#   sh bench/bench_branches.sh [BUILD_DIR]     (default: build)
#
# Two stores of 100 tables: one with only main, one with 10,000 branches
# (every 10th with a commit of its own).  In turns on both (same disk
# weather), durable: creating one more branch, reading a table's latest
# version on a branch (warm handle, and a fresh handle per read), committing
# on a branch.  Goal: each within 1.2x of the one-branch store.
# Environment: UDR_BENCH_BRANCHES (default 10000), UDR_BENCH_TABLES (100),
# UDR_BENCH_REPS (200), UDR_BENCH_DIR (scratch, default a fresh dir in /tmp).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
if [ ! -e "$build/libudr.so" ]; then
	echo "bench_branches.sh: $build/libudr.so not found; build first" >&2
	exit 2
fi
bin=$build/bench_branches
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -o "$bin" "$here/bench_branches.c" -I"$src/include" \
	-L"$build" -ludr -Wl,-rpath,"$build"
nb=${UDR_BENCH_BRANCHES:-10000}
nt=${UDR_BENCH_TABLES:-100}
reps=${UDR_BENCH_REPS:-200}
scratch=${UDR_BENCH_DIR:-$(mktemp -d /tmp/udr-bench-branches.XXXXXX)}
trap 'rm -rf "$scratch"' EXIT
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
field() { echo "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }

echo "== UDR branch benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "-- building: $nt tables, 1 branch / $nb branches"
echo "   one:  $("$bin" build "$scratch/one" "$nt" 0)"
echo "   many: $("$bin" build "$scratch/many" "$nt" "$nb")"
mid=$(printf 'b%05d' $((nb / 2)))
out=$("$bin" measure "$scratch/one" "$scratch/many" "$reps" "$mid")
echo "   $out"
for k in create read coldread commit; do
	a=$(field "$out" ${k}_one_us); b=$(field "$out" ${k}_many_us)
	echo "   RATIO $k: $b us / $a us = $(ratio "$b" "$a")   (goal <= 1.2)"
done
