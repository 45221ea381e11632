#!/bin/sh
# Benchmark of row-level merges (issue 12; a measurement, not a test): two
# branches that each changed 1% of a keyed table, merged row by row, against
# DuckDB's FULL OUTER JOIN of the three versions' keys in the same run.
# Env: BUILD (default build), WORK (default /tmp/udr-bench-rowmerge),
#      ROWS (default 1000000: the issue asks 10M; a shared 2-core machine),
#      REPEAT (3).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
work=${WORK:-/tmp/udr-bench-rowmerge}
rows=${ROWS:-1000000}
repeat=${REPEAT:-3}
duck="$root/.deps/duckdb"
[ -f "$build/libudr_query.so" ] || { echo "bench_rowmerge: build the query module first (cmake --build $build)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cc -O2 -std=c11 -D_GNU_SOURCE -o "$work/bench_rowmerge" "$root/bench/bench_rowmerge.c" \
	-I"$root/include" -I"$duck/include" -L"$build" -ludr_query -Wl,-rpath,"$build" \
	-L"$duck/lib" -lduckdb -Wl,-rpath,"$duck/lib" -lpthread -lm
echo "== row-level merge: $rows rows ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$work/bench_rowmerge" "$work" "$rows" "$repeat"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$work"
