#!/bin/sh
# udr get of a mixed file (half random, half CSV text; gen_data.py mixed)
# against cat of the same file, page cache warm, in one run: output to
# /dev/null and to a file on the store's file system.  Rounds are
# interleaved; prints medians, the speed ratio (cat time / udr time; issue
# 10's goal for the verified get: at least 0.6) and the load average.
#   sh bench/get_vs_cat.sh [UDR_BIN] [SIZE_MIB] [OTHER_UDR_BIN] [ROUNDS]
# OTHER_UDR_BIN (an older build, say) reads the same store.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
UDR=${1:-build/udr}
MIB=${2:-256}
OTHER=${3:-}
ROUNDS=${4:-5}
W=$(mktemp -d "${TMPDIR:-/tmp}/udr-getbench.XXXXXX")
trap 'rm -rf "$W"' EXIT
python3 "$HERE/gen_data.py" mixed "$W/in" --size $((MIB << 20)) --seed 1 >/dev/null
"$UDR" --store "$W/s" init >/dev/null
H=$("$UDR" --store "$W/s" -q put "$W/in")
cat "$W/in" >/dev/null
"$UDR" --store "$W/s" get "$H" >/dev/null # warm: the packs in the page cache
t1() { # seconds of "$@", output to $OUT
	s=$(date +%s.%N); "$@" >"$OUT"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
run() { # name command...: one timed run appended to $W/t.name
	n=$1; shift
	t1 "$@" >>"$W/t.$n"
	[ "$OUT" = /dev/null ] || rm -f "$OUT"
}
med() { sort -n "$W/t.$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
L0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
	OUT=/dev/null
	run cat_null cat "$W/in"
	run get_null "$UDR" --store "$W/s" get "$H"
	run nov_null "$UDR" --store "$W/s" get --no-verify "$H"
	[ -z "$OTHER" ] || run oth_null "$OTHER" --store "$W/s" get "$H"
	OUT=$W/out
	run cat_file cat "$W/in"
	run get_file "$UDR" --store "$W/s" get "$H"
	[ -z "$OTHER" ] || run oth_file "$OTHER" --store "$W/s" get "$H"
done
L1=$(cut -d' ' -f1-3 /proc/loadavg)
row() { # label name peer
	printf '%-34s %6.2f s   speed ratio to cat %.2f\n' "$1" "$(med "$2")" "$(echo "$(med "$3") / $(med "$2")" | bc -l)"; }
echo "file: $MIB MiB (half random, half text), page cache warm, median of $ROUNDS interleaved rounds"
printf '%-34s %6.2f s\n' "cat > /dev/null" "$(med cat_null)"
row "udr get > /dev/null (verified)" get_null cat_null
row "udr get --no-verify > /dev/null" nov_null cat_null
[ -z "$OTHER" ] || row "other udr get > /dev/null" oth_null cat_null
printf '%-34s %6.2f s\n' "cat > file" "$(med cat_file)"
row "udr get > file (verified)" get_file cat_file
[ -z "$OTHER" ] || row "other udr get > file" oth_file cat_file
echo "load average: before $L0, after $L1"
