#!/bin/sh
# udr put of a mixed file (half random, half compressible text) against
# cp + sync of the same file, on format 3 and format 2, in one run; prints
# seconds (median of 3), the speed ratio to cp (cp time / udr time; issue 10's
# goal: at least 0.8 for format 3), the load average before each step, and
# strace -c system calls per piece.
#   sh bench/put_vs_cp.sh [UDR_BIN] [SIZE_MIB] [OTHER_UDR_BIN]
# Everything runs under nice -n 19 (the machine may be shared).
set -eu
UDR=${1:-build/udr}
MIB=${2:-256}
OTHER=${3:-}
W=$(mktemp -d "${TMPDIR:-/tmp}/udr-putbench.XXXXXX")
trap 'rm -rf "$W"' EXIT
python3 - "$W/in" "$MIB" <<'PY'
import os, sys, random
path, mib = sys.argv[1], int(sys.argv[2])
r = random.Random(7)
words = [b"alpha", b"beta", b"gamma", b"delta", b"2024-01-", b"sensor", b"ok", b"fail", b"0.25", b"1337"]
with open(path, "wb") as f:
    for i in range(mib):
        if i % 2:
            f.write(os.urandom(1 << 20))
        else:
            line = b""
            buf = []
            n = 0
            while n < (1 << 20):
                line = b",".join(r.choice(words) for _ in range(8)) + b"\n"
                buf.append(line)
                n += len(line)
            f.write(b"".join(buf)[: 1 << 20])
PY
sync
load() { cut -d' ' -f1-3 /proc/loadavg; }
t1() { # seconds of "$@"
	s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
t() { # the median of 3 runs
	for i in 1 2 3; do t1 "$@"; done | sort -n | sed -n 2p; }
echo "file: $MIB MiB (half random, half text)"
L=$(load); C=$(t nice -n 19 sh -c "cp '$W/in' '$W/copy' && sync '$W/copy'"); rm -f "$W/copy"
printf 'cp + sync           %6.2f s   load %s\n' "$C" "$L"
for f in 3 2; do
	L=$(load); P=$(t nice -n 19 sh -c "rm -rf '$W/s'; '$UDR' --store '$W/s' init --format $f >/dev/null && '$UDR' --store '$W/s' -q put '$W/in'")
	printf 'udr put, format %s   %6.2f s   x%.2f of cp   speed ratio %.2f   load %s\n' "$f" "$P" \
		"$(echo "$P / $C" | bc -l)" "$(echo "$C / $P" | bc -l)" "$L"
done
if [ -n "$OTHER" ]; then
	L=$(load); P=$(t nice -n 19 sh -c "rm -rf '$W/s'; '$OTHER' --store '$W/s' init --format 3 >/dev/null && '$OTHER' --store '$W/s' -q put '$W/in'")
	printf 'other udr, format 3 %6.2f s   x%.2f of cp   load %s\n' "$P" "$(echo "$P / $C" | bc -l)" "$L"
fi
L=$(load); C2=$(t nice -n 19 sh -c "cp '$W/in' '$W/copy' && sync '$W/copy'"); rm -f "$W/copy"
printf 'cp + sync again     %6.2f s   load %s\n' "$C2" "$L"
if command -v strace >/dev/null; then
	rm -rf "$W/s"; "$UDR" --store "$W/s" init --format 3 >/dev/null
	nice -n 19 strace -f -c -o "$W/strace" "$UDR" --store "$W/s" -q put "$W/in" >/dev/null
	P=$("$UDR" --store "$W/s" stats 2>/dev/null | awk '/^objects:/ {sub(/\(/, "", $3); print $3; exit}')
	echo "strace -c -f of the format-3 put (pieces: ${P:-?}; calls per piece = calls / pieces):"
	# calls are column 4 (the errors column may be empty)
	awk -v p="${P:-0}" 'NR <= 2 { print; next }
		/total/ || $NF ~ /^(write|pwrite64|fsync|fdatasync|openat|link|linkat|rename|renameat2|unlink|unlinkat|futex|read|pread64|mmap|munmap|newfstatat|statx|flock)$/ {
			if (p > 0 && $4 ~ /^[0-9]+$/) printf "%s   %.3f per piece\n", $0, $4 / p; else print }' "$W/strace"
fi
