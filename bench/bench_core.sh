#!/bin/bash
# bench_core.sh - the "Core" benchmark: hashing, whole-file put and small
# durable puts/gets, each against a peer measured in the same run.
#
#   bench/bench_core.sh                 # full size (1 GiB file, 100,000 puts)
#   SCALE=0.1 bench/bench_core.sh       # quick run: every size times 0.1
#
# Environment: SCALE (default 1), BENCH_DIR (data and stores, default
# build-bench/benchdata; must be on the disk you want measured),
# BUILD_DIR (default build-bench), KEEP_DATA=1 keeps the generated input,
# ROUNDS (default 3: best of ROUNDS for the timed whole-file runs).
#
# Ratios are peer time / udr time (or udr rate / peer rate): higher is
# better for udr, and each is printed with its goal.  The machine is shared
# and noisy: compare ratios, not absolute times.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${SCALE:-1}
BUILD=${BUILD_DIR:-$ROOT/build-bench}
WORK=${BENCH_DIR:-$BUILD/benchdata}
ROUNDS=${ROUNDS:-3}
UDR=$BUILD/udr
TOOL=$BUILD/bench_putget

scaled() { awk -v n="$1" -v s="$SCALE" -v m="${2:-1}" 'BEGIN { v = int(n * s); if (v < m) v = m; print v }'; }
now() { date +%s.%N; }
# timeit CMD...: run CMD (stdout discarded), print its wall seconds
timeit() {
	local t0 t1
	t0=$(now)
	"$@" >"$NULL"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}
min() { printf '%s\n' "$@" | sort -g | head -1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.3f", a / b }'; }
# verdict RATIO GOAL: "ok" when RATIO >= GOAL
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r + 0 >= g + 0) ? "ok" : "MISS" }'; }

# A sink for output: /dev/null when it is the real device; on machines where
# it has been replaced by a regular file (seen in sandboxes: every write
# then lands in memory) a private null device node, when we may make one.
null_sink() {
	if [ -c /dev/null ]; then echo /dev/null; return; fi
	rm -f "$WORK/null"
	if mknod -m 666 "$WORK/null" c 1 3 2>/dev/null; then echo "$WORK/null"; return; fi
	echo "bench: warning: /dev/null is not a device and mknod failed; output costs a write to a file" >&2
	echo /dev/null
}

build() {
	local i
	mkdir -p "$BUILD"
	for i in 1 2 3 4 5; do
		if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null &&
			cmake --build "$BUILD" -j2 >"$BUILD/bench-build.log" 2>&1; then
			cc -O2 -I "$ROOT/include" "$HERE/bench_putget.c" "$BUILD/libudr.a" -ljansson -lzstd -lpthread -o "$TOOL"
			return 0
		fi
		echo "bench: build failed (attempt $i, see $BUILD/bench-build.log); retrying in 60 s" >&2
		sleep 60
	done
	echo "bench: build keeps failing" >&2
	exit 1
}

machine() {
	echo "machine: nproc $(nproc), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem/ { print $2 " GiB RAM" }')"
	echo "disk:    $(findmnt -no FSTYPE,SOURCE -T "$WORK" | head -1) at $WORK ($(df -h --output=avail "$WORK" | tail -1 | tr -d ' ') free)"
	echo "kernel:  $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "udr:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' +uncommitted changes'), Release build, UDR_THREADS=${UDR_THREADS:-nproc}"
}

row() { printf '%-46s %12s %12s %8s %7s %s\n' "$@"; }

build
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
NULL=$(null_sink)
SIZE=$(scaled $((1 << 30)) 1048576)
NPUT=$(scaled 100000 1000)
NFSYNC=$(scaled 10000 500) # each half of the peer loop (run before and after udr)
FILE=$WORK/mixed_$SIZE.bin
MIB=$(awk -v b="$SIZE" 'BEGIN { printf "%.0f", b / 1048576 }')

echo "== UDR core benchmark (SCALE=$SCALE) =="
machine
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" != "$SIZE" ]; then
	echo "generating $FILE ($SIZE bytes, half random, half CSV text)..."
	python3 "$HERE/gen_data.py" mixed "$FILE.tmp" --size "$SIZE" --seed 1 >/dev/null
	mv "$FILE.tmp" "$FILE"
fi
echo "input:   $FILE, $SIZE bytes"
echo

# ---- 1. hash vs b3sum --------------------------------------------------------
cat "$FILE" >"$NULL"
"$UDR" hash "$FILE" >/dev/null
b3sum --num-threads 1 "$FILE" >/dev/null
HU=() HB=()
for r in $(seq "$ROUNDS"); do
	HU+=("$(timeit "$UDR" hash "$FILE")")
	HB+=("$(timeit b3sum --num-threads 1 "$FILE")")
done
hu=$(min "${HU[@]}") hb=$(min "${HB[@]}")
[ "$("$UDR" hash "$FILE")" = "$(b3sum --no-names "$FILE")" ] || { echo "bench: hash mismatch with b3sum" >&2; exit 1; }

# ---- 2. put vs cp + sync -----------------------------------------------------
PU=() PC=()
for r in $(seq "$ROUNDS"); do
	rm -rf "$WORK/core_store" "$WORK/core_copy"
	"$UDR" --store "$WORK/core_store" init >/dev/null
	sync
	PU+=("$(timeit "$UDR" --store "$WORK/core_store" put "$FILE")")
	stored=$(du -sb "$WORK/core_store" | cut -f1)
	rm -rf "$WORK/core_store"
	sync
	PC+=("$(timeit sh -c "cp '$FILE' '$WORK/core_copy' && sync")")
	rm -f "$WORK/core_copy"
done
pu=$(min "${PU[@]}") pc=$(min "${PC[@]}")

# Diagnostic: the same put into a fresh store whose 65,536 fan-out
# directories exist already (one round): how much of the put is creating and
# fsyncing directories.
rm -rf "$WORK/core_store"
"$UDR" --store "$WORK/core_store" init >/dev/null
python3 -c "
import os, sys
for a in range(256):
    for b in range(256):
        os.makedirs('%s/chunks/%02x/%02x' % (sys.argv[1], a, b), exist_ok=True)" "$WORK/core_store"
sync
pf=$(timeit "$UDR" --store "$WORK/core_store" put "$FILE")
rm -rf "$WORK/core_store"
sync

# ---- 2b. get: verified (the default) vs --no-verify ------------------------------
# The cost of verification (each piece rehashed before it is written, the
# whole content at the end), page cache warm: the mixed file as pieces
# (format 2), and as one plain object (format 1, above 64 MiB: streamed).
GV=() GN=() G1V=() G1N=()
rm -rf "$WORK/core_get" "$WORK/core_get1"
"$UDR" --store "$WORK/core_get" init >/dev/null
"$UDR" --store "$WORK/core_get1" init --format 1 >/dev/null
gh=$("$UDR" --store "$WORK/core_get" put "$FILE")
"$UDR" --store "$WORK/core_get1" put "$FILE" >/dev/null
"$UDR" --store "$WORK/core_get" get "$gh" >"$NULL"
for r in $(seq "$ROUNDS"); do
	GV+=("$(timeit "$UDR" --store "$WORK/core_get" get "$gh")")
	GN+=("$(timeit "$UDR" --store "$WORK/core_get" get --no-verify "$gh")")
	G1V+=("$(timeit "$UDR" --store "$WORK/core_get1" get "$gh")")
	G1N+=("$(timeit "$UDR" --store "$WORK/core_get1" get --no-verify "$gh")")
done
gv=$(min "${GV[@]}") gn=$(min "${GN[@]}") g1v=$(min "${G1V[@]}") g1n=$(min "${G1N[@]}")
rm -rf "$WORK/core_get" "$WORK/core_get1"

# ---- 3. small durable puts and gets -------------------------------------------
rm -rf "$WORK/core_fsync" "$WORK/core_small"
sync
f1=$("$TOOL" fsync "$WORK/core_fsync" "$NFSYNC" 4096)
rm -rf "$WORK/core_fsync"
sync
read -r sp sg < <("$TOOL" putget "$WORK/core_small" "$NPUT" 4096 1)
rm -rf "$WORK/core_small"
sync
f2=$("$TOOL" fsync "$WORK/core_fsync" "$NFSYNC" 4096)
rm -rf "$WORK/core_fsync"
fs_rate=$(awk -v n="$NFSYNC" -v a="$f1" -v b="$f2" 'BEGIN { printf "%.0f", 2 * n / (a + b) }')
put_rate=$(awk -v n="$NPUT" -v t="$sp" 'BEGIN { printf "%.0f", n / t }')
get_rate=$(awk -v n="$NPUT" -v t="$sg" 'BEGIN { printf "%.0f", n / t }')

mib() { awk -v b="$SIZE" -v t="$1" 'BEGIN { printf "%.0f MiB/s", b / t / 1048576 }'; }
row "measure" "udr" "peer" "ratio" "goal" "verdict"
r=$(div "$hb" "$hu")
row "hash $MIB MiB, warm, best of $ROUNDS (s)" "$hu" "$hb" "$r" ">=0.95" "$(verdict "$r" 0.95)"
row "  throughput (peer: b3sum --num-threads 1)" "$(mib "$hu")" "$(mib "$hb")" "" "" ""
r=$(div "$pc" "$pu")
row "put, fresh store, durable, best of $ROUNDS (s)" "$pu" "$pc" "$r" ">=0.8" "$(verdict "$r" 0.8)"
row "  throughput (peer: cp + sync)" "$(mib "$pu")" "$(mib "$pc")" "" "" ""
r=$(div "$pc" "$pf")
row "  diagnostic: fan-out dirs pre-created (s)" "$pf" "$pc" "$r" "" "info"
row "  store size after put, bytes (peer: input)" "$stored" "$SIZE" "$(div "$stored" "$SIZE")" "" "info"
r=$(div "$put_rate" "$fs_rate")
row "$NPUT durable 4 KiB puts (chunks/s)" "$put_rate" "$fs_rate" "$r" "" "context"
row "  peer: C loop write+fsync file+fsync dir (/s)" "" "$fs_rate" "" "" ""
row "$NPUT 4 KiB gets, warm, best of 3 (chunks/s)" "$get_rate" "" "" "" "info"
row "get pieces, warm (s; peer: get --no-verify)" "$gv" "$gn" "$(div "$gn" "$gv")" "" "info"
row "  throughput" "$(mib "$gv")" "$(mib "$gn")" "" "" ""
row "get one plain object, warm (s; peer: idem)" "$g1v" "$g1n" "$(div "$g1n" "$g1v")" "" "info"
row "  throughput" "$(mib "$g1v")" "$(mib "$g1n")" "" "" ""
echo
echo "samples (s): hash udr ${HU[*]} | b3sum ${HB[*]} | put ${PU[*]} | cp+sync ${PC[*]} | fsync-loop halves $f1 $f2 (n=$NFSYNC each) | get ${GV[*]} | get --no-verify ${GN[*]} | get plain ${G1V[*]} | get plain --no-verify ${G1N[*]}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${KEEP_DATA:-0}" = 1 ] || rm -f "$FILE"
[ "$NULL" = /dev/null ] || rm -f "$NULL"
