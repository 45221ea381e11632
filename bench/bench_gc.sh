#!/bin/bash
# bench_gc.sh - garbage collection against restic's forget --prune (issue 15).
#
#   bench/bench_gc.sh                 # full size: 1,000 versions of a 20 MB table (long)
#   SCALE=0.1 bench/bench_gc.sh       # 100 versions of a 2 MB table
#
# A table made by gen_data.py's table generator (each version rewrites 1% of
# the first version's rows and appends 1% of them, so 1,000 versions grow
# the table 11x) is committed version by version with `udr commit --file`
# (pieces stored as deltas) and backed up by restic as snapshots of one
# path. Then half of the versions are expired and their data collected:
#
#   udr gc --keep-last K --grace 0s       vs   restic forget --keep-last K --prune
#
# Ratios: restic time / udr time (goal >= 2, i.e. udr at most 0.5x), and
# udr's store after gc / a fresh udr store holding only the kept versions
# (goal <= 1.1). The kept versions are read back and compared with the
# files' digests. A writer's mean commit latency while gc runs / alone
# (goal <= 1.5). Environment: SCALE (default 1), VERSIONS, SIZE, KEEP,
# BENCH_DIR (default build-bench/gcdata), BUILD_DIR (default build-bench,
# reconfigured Release with tests off).
#
# The full size ingests about 120 GB (an hour). udr's commits and restic's
# backups of a version run side by side, each timed on its own (the ingest
# times are for information; no goal depends on them). KEEP_DATA=1 keeps the
# ingested stores in BENCH_DIR and measures on copies of them; REUSE=1 then
# skips the ingest when BENCH_DIR holds one of the same VERSIONS, SIZE and
# KEEP (so the measuring part can be repeated on a quiet machine, or with
# another build).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${SCALE:-1}
BUILD=${BUILD_DIR:-$ROOT/build-bench}
WORK=${BENCH_DIR:-$BUILD/gcdata}
UDR=$BUILD/udr

scaled() { awk -v n="$1" -v s="$SCALE" -v m="${2:-1}" 'BEGIN { v = int(n * s); if (v < m) v = m; print v }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f", a / b }'; }
size() { du -sb "$1" | cut -f1; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

VERSIONS=${VERSIONS:-$(scaled 1000 4)}
SIZE=${SIZE:-$(scaled 20000000 100000)}
KEEP=${KEEP:-$((VERSIONS / 2))}

mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 >"$BUILD/bench-build.log" 2>&1 || { echo "bench: build failed, see $BUILD/bench-build.log" >&2; exit 1; }

PARAMS="$VERSIONS $SIZE $KEEP"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/home/restic
if [ "${REUSE:-0}" = 1 ] && [ "$(cat "$WORK/ingested" 2>/dev/null)" = "$PARAMS" ]; then
	REUSED=1
else
	REUSED=0
	rm -rf "$WORK"
	mkdir -p "$WORK/gen" "$WORK/stage" "$WORK/home"
fi
if [ "${KEEP_DATA:-0}" = 1 ]; then
	trap 'rm -rf "$WORK/run"' EXIT
else
	trap 'rm -rf "$WORK"' EXIT
fi
U=$WORK/udr F=$WORK/fresh R=$WORK/restic

echo "== UDR gc benchmark (SCALE=$SCALE): $VERSIONS versions of a $(mb "$SIZE") MB table, keep the last $KEEP =="
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg); udr $(git -C "$ROOT" rev-parse --short HEAD); $(restic version | cut -d' ' -f1-2)"

timed() { # file to add the seconds to, command...
	local f=$1 t0
	shift
	t0=$(now)
	"$@" >/dev/null
	echo "$(since "$t0")" >>"$f"
}
if [ "$REUSED" = 1 ]; then
	echo "ingest: reused from $WORK ($(cat "$WORK/ingest.txt"))"
else
	"$UDR" --store "$U" init >/dev/null
	"$UDR" --store "$F" init >/dev/null
	restic init -q -r "$R" >/dev/null
	# Stream the versions: the generator keeps at most 3 files on disk.
	v=0 logical=0
	: >"$WORK/digests"
	: >"$WORK/t.udr"
	: >"$WORK/t.restic"
	while read -r path; do
		v=$((v + 1))
		logical=$((logical + $(stat -c %s "$path")))
		ln -f "$path" "$WORK/stage/table.csv"
		timed "$WORK/t.udr" "$UDR" --store "$U" commit t --next --file "$path" &
		p1=$!
		timed "$WORK/t.restic" restic -q -r "$R" backup --host bench "$WORK/stage/table.csv" &
		p2=$!
		if [ "$v" -gt $((VERSIONS - KEEP)) ]; then
			"$UDR" --store "$F" commit t --next --file "$path" >/dev/null
			echo "$v $(b3sum --no-names "$path")" >>"$WORK/digests"
		fi
		wait $p1
		wait $p2
		rm -f "$path" "$WORK/stage/table.csv"
	done < <(python3 "$HERE/gen_data.py" table "$WORK/gen" --size "$SIZE" --versions "$VERSIONS" --linear --window 3 --seed 5)
	[ "$v" = "$VERSIONS" ] || { echo "bench: generator stopped after $v versions" >&2; exit 1; }
	sync
	sum() { awk '{ s += $1 } END { printf "%.1f", s }' "$1"; }
	echo "$(mb "$logical") MB in all; udr commits $(sum "$WORK/t.udr")s, restic backups $(sum "$WORK/t.restic")s, side by side" >"$WORK/ingest.txt"
	echo "$PARAMS" >"$WORK/ingested"
	echo "ingest: $(cat "$WORK/ingest.txt")"
fi
if [ "${KEEP_DATA:-0}" = 1 ]; then
	# measure on copies: the kept stores stay as ingested
	rm -rf "$WORK/run"
	mkdir -p "$WORK/run"
	cp -a "$U" "$R" "$WORK/run/"
	U=$WORK/run/udr R=$WORK/run/restic
	# the copy's dirty pages go to disk now, not during the latency runs
	# below (at full size, 33 GB of restic's: commits alone took 125 ms,
	# 4 s at worst, while the writeback ran)
	sync
fi
su0=$(size "$U") sr0=$(size "$R") sf=$(size "$F")

# A writer's commit latency while gc runs (goal <= 1.5x alone): new 64 KB
# files committed one by one to another table, alone before and after, and
# while the same gc runs on a copy of the store (the timed gc below is
# undisturbed).
# LAT_UDR overrides the binary of this part (to compare builds).
LU=${LAT_UDR:-$UDR}
L=$WORK/lat
rm -rf "$L" "$WORK/w"
cp -a "$U" "$L"
mkdir -p "$WORK/w"
for i in $(seq 1 400); do head -c 65536 /dev/urandom >"$WORK/w/$i"; done
sync
lat_commit() { # store, file number: microseconds of one commit
	local s e
	s=$(date +%s%N)
	"$LU" --store "$1" commit w --next --file "$WORK/w/$2" >/dev/null
	e=$(date +%s%N)
	echo $(((e - s) / 1000))
}
: >"$WORK/lat.alone"
for i in $(seq 1 30); do lat_commit "$L" "$i" >>"$WORK/lat.alone"; done
: >"$WORK/lat.gc"
"$LU" --store "$L" gc --keep-last "$KEEP" --grace 0s >/dev/null &
gcpid=$!
i=30
while kill -0 "$gcpid" 2>/dev/null && [ $i -lt 400 ]; do
	i=$((i + 1))
	lat_commit "$L" "$i" >>"$WORK/lat.gc"
done
wait "$gcpid"
# and alone again after it: background load that changes during the run
# moves both samples, not only the one taken while gc runs
for j in $(seq 1 30); do i=$((i + 1)); [ $i -le 400 ] || break; lat_commit "$L" "$i" >>"$WORK/lat.alone"; done
lat_stats() { awk '{ s += $1; if ($1 > m) m = $1; n++ } END { if (n == 0) n = 1; printf "%.1f %.1f %d\n", s / n / 1000, m / 1000, n }' "$1"; }
read -r la_mean la_max la_n < <(lat_stats "$WORK/lat.alone")
read -r lg_mean lg_max lg_n < <(lat_stats "$WORK/lat.gc")
rm -rf "$L"

t0=$(now)
"$UDR" --store "$U" gc --keep-last "$KEEP" --grace 0s --json >"$WORK/gc.json"
sync
tgc=$(since "$t0")
t0=$(now)
restic -q -r "$R" forget --host bench --keep-last "$KEEP" --prune >/dev/null
sync
trp=$(since "$t0")
su1=$(size "$U") sr1=$(size "$R")

# every kept version reads back byte for byte
bad=0
while read -r ver dig; do
	got=$("$UDR" --store "$U" show t "$ver" | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["chunks"]))' |
		while read -r h; do "$UDR" --store "$U" get "$h"; done | b3sum --no-names)
	[ "$got" = "$dig" ] || { echo "bench: t@$ver reads back wrong" >&2; bad=1; }
done <"$WORK/digests"
"$UDR" --store "$U" fsck >/dev/null || { echo "bench: fsck after gc failed" >&2; bad=1; }
[ $bad = 0 ] || exit 1

printf '  %-44s %10s %14s %14s\n' "" "seconds" "bytes before" "bytes after"
printf '  %-44s %10s %14s %14s\n' "udr gc --keep-last $KEEP --grace 0s" "$tgc" "$su0" "$su1"
printf '  %-44s %10s %14s %14s\n' "restic forget --keep-last $KEEP --prune" "$trp" "$sr0" "$sr1"
printf '  %-44s %10s %14s %14s\n' "fresh udr store of the kept versions" "" "$sf" ""
echo "  udr gc report: $(tr -d '\n' <"$WORK/gc.json" | cut -c1-400)"
echo "  commit latency alone: mean ${la_mean} ms, max ${la_max} ms ($la_n commits); while gc runs: mean ${lg_mean} ms, max ${lg_max} ms ($lg_n commits)"
r1=$(div "$trp" "$tgc") r2=$(div "$su1" "$sf") r3=$(div "$lg_mean" "$la_mean")
echo
echo "RESULT gc time: restic forget --prune / udr gc = $r1 (goal >= 2: udr at most 0.5x) $(awk -v r="$r1" 'BEGIN { print (r >= 2) ? "ok" : "MISS" }')"
echo "RESULT space: udr after gc / fresh store of kept versions = $r2 (goal <= 1.1) $(awk -v r="$r2" 'BEGIN { print (r <= 1.1) ? "ok" : "MISS" }')"
echo "RESULT commit latency: mean while gc runs / alone = $r3 (goal <= 1.5) $(awk -v r="$r3" 'BEGIN { print (r <= 1.5) ? "ok" : "MISS" }')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
