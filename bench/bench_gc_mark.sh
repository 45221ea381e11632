#!/bin/bash
# bench_gc_mark.sh - gc's mark memory on a store of about 1,000,000 pieces
# (issue 15: at most 64 bytes a piece).
#
#   bench/bench_gc_mark.sh              # ~1.05 M pieces (1.2 GB of random bytes, 1 KiB pieces)
#   SCALE=0.1 bench/bench_gc_mark.sh    # ~105 k pieces
#
# Two tables of random bytes are committed to a store made with 1 KiB
# average pieces (so a million pieces fit in about a gigabyte); then
# `udr gc --dry-run --json` marks every piece.  Reported: the report's
# mark.peak_bytes (gc's own allocations: the sorted copy table, the walk's
# stack, delta references) per piece, against the goal, and the process's
# maxrss per piece (for information: it also holds the mapped pack indexes'
# pages, which are the page cache's) and the peak of the process's own
# memory (RssAnon, sampled) per piece.  Environment: SCALE, BENCH_DIR
# (default build-bench/gcmark), BUILD_DIR (default build-bench).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${SCALE:-1}
BUILD=${BUILD_DIR:-$ROOT/build-bench}
WORK=${BENCH_DIR:-$BUILD/gcmark}
UDR=$BUILD/udr

mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 >"$BUILD/bench-build.log" 2>&1 || { echo "bench: build failed, see $BUILD/bench-build.log" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
trap 'rm -rf "$WORK"' EXIT
S=$WORK/store
A=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 1050000000 * s }')
B=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 150000000 * s }')

echo "== UDR gc mark memory (SCALE=$SCALE): $(awk -v b=$((A + B)) 'BEGIN { printf "%.2f", b / 1e9 }') GB of random bytes in 1 KiB pieces =="
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg); udr $(git -C "$ROOT" rev-parse --short HEAD)"
"$UDR" --store "$S" init --chunk-min 512 --chunk-avg 1K --chunk-max 4K >/dev/null
head -c "$A" /dev/urandom >"$WORK/a"
"$UDR" --store "$S" commit a --next --file "$WORK/a" >/dev/null
rm "$WORK/a"
head -c "$B" /dev/urandom >"$WORK/b"
"$UDR" --store "$S" commit b --next --file "$WORK/b" >/dev/null
rm "$WORK/b"
# RssAnon (the process's own memory, without the mapped files the page
# cache holds) is sampled every 5 ms while the run lasts; its peak is the
# run's memory as a user's `top` would show it, less shared file pages
/usr/bin/time -f "%M" -o "$WORK/rss" "$UDR" --store "$S" gc --dry-run --grace 0s --json >"$WORK/gc.json" &
tpid=$!
anon=0
while kill -0 "$tpid" 2>/dev/null; do
	gpid=$(pgrep -P "$tpid" || true)
	if [ -n "$gpid" ]; then
		a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$gpid/status" 2>/dev/null || true)
		[ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
	fi
	sleep 0.005
done
wait "$tpid"
anon=$((anon * 1024))
read -r pieces peak secs < <(python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["mark"]; print(m["objects"], m["peak_bytes"], m["seconds"])' "$WORK/gc.json")
rss=$(($(cat "$WORK/rss") * 1024))
echo "  pieces marked: $pieces; mark ${secs} s; mark.peak_bytes $peak; maxrss $rss"
echo "  maxrss per piece: $(awk -v a="$rss" -v b="$pieces" 'BEGIN { printf "%.1f", a / b }') bytes (information: the mapped pack indexes' pages included)"
echo "  peak RssAnon per piece (sampled): $(awk -v a="$anon" -v b="$pieces" 'BEGIN { printf "%.1f", a / b }') bytes (the whole process's own memory: gc's tables, buffers, the C library's heap)"
r=$(awk -v a="$peak" -v b="$pieces" 'BEGIN { printf "%.1f", a / b }')
echo
echo "RESULT mark memory: mark.peak_bytes per piece = $r (goal <= 64) $(awk -v r="$r" 'BEGIN { print (r <= 64) ? "ok" : "MISS" }')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
