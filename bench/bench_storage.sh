#!/bin/bash
# bench_storage.sh - the "Storage engine" benchmark: ingest time and
# repository size of UDR against borg, restic and git on generated data,
# all peers in the same run; then a sweep of chunk_avg settings.
#
#   bench/bench_storage.sh                 # full size (25+ minutes; SCALE=0.5: ~9)
#   SCALE=0.1 bench/bench_storage.sh       # quick run
#   ONLY="1 2 5" bench/bench_storage.sh    # some scenarios (1 2 3 4 5 sweep)
#
# Environment: SCALE (default 1), BENCH_DIR (default build-bench/benchdata),
# BUILD_DIR (default build-bench), KEEP_DATA=1 keeps generated inputs,
# SWEEP_AVGS (default "16384 32768 65536 131072"), SWEEP_SCALE (size factor
# of the sweep relative to the scenarios, default 0.25).
#
# Scenarios:
#   1  fresh ingest of a 1 GiB mixed file (half random, half CSV)
#   2  the same file with 100 scattered edits, ingested after it
#   3  20 versions of a 200 MB CSV table (1% rows changed + 1% appended each)
#   4  grouped daily table, 100 versions, one row inserted in each of 200 groups
#   5  udr get of the 1 GiB content vs cat of the file (warm)
#   sweep  scenarios 2 and 3 (scaled down) at several chunk_avg settings
#
# Ratios are peer / udr for times and sizes: higher is better for udr.
# Repository sizes are `du -sb` of the repository directory (UDR: the store
# root; git: .git; borg and restic: the repository, not their caches).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${SCALE:-1}
BUILD=${BUILD_DIR:-$ROOT/build-bench}
WORK=${BENCH_DIR:-$BUILD/benchdata}
ONLY=${ONLY:-"1 2 3 4 5 sweep"}
SWEEP_AVGS=${SWEEP_AVGS:-"16384 32768 65536 131072"}
SWEEP_SCALE=${SWEEP_SCALE:-0.25}
UDR=$BUILD/udr
TOOL=$BUILD/bench_putget

scaled() { awk -v n="$1" -v s="$SCALE" -v m="${2:-1}" 'BEGIN { v = int(n * s); if (v < m) v = m; print v }'; }
now() { date +%s.%N; }
timeit() {
	local t0 t1
	t0=$(now)
	"$@" >"$NULL"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
min() { printf '%s\n' "$@" | sort -g | head -1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f", a / b }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r + 0 >= g + 0) ? "ok" : "MISS" }'; }
size() { du -sb "$1" | cut -f1; }
# bytes of regular files only (no directory entries)
fbytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
has() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
row() { printf '  %-40s %10s %12s %9s %8s %s\n' "$@"; }
hdr() { echo; echo "== $* =="; }

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
	echo "peers:   $(borg --version), $(restic version | cut -d' ' -f1-2), $(git --version)"
}

# ---- the tools -------------------------------------------------------------
export BORG_BASE_DIR=$WORK/home/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
	BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_DISPLAY_PASSPHRASE=no
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/home/restic
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=bench \
	GIT_COMMITTER_EMAIL=bench@example.invalid

CLI_FILE=0 # udr commit TABLE --next --file FILE
CLI_AVG=0  # udr init --chunk-avg N

udr_init() { # ROOT [AVG]
	rm -rf "$1"
	if [ -n "${2:-}" ] && [ "$2" != 0 ]; then
		if [ $CLI_AVG = 1 ]; then
			"$UDR" --store "$1" init --chunk-avg "$2" >/dev/null
		else
			# the C API creates the store with the setting; the CLI then uses it
			"$TOOL" create "$1" "$2"
		fi
	else
		"$UDR" --store "$1" init >/dev/null
	fi
}
# udr_series ROOT TABLE FILE...: commit each file as the next version of
# TABLE, each stored as deltas against the table's previous version
udr_series() {
	local root=$1 table=$2 f
	shift 2
	if [ $CLI_FILE = 1 ]; then
		for f in "$@"; do "$UDR" --store "$root" commit "$table" --next --file "$f"; done
	else
		"$TOOL" ingest "$root" "$table" 0 "$@"
	fi
}
borg_init() { rm -rf "$1"; borg init -e none "$1" >/dev/null 2>&1; }
# borg_series REPO STAGE_DIR NAME FILE...: archive each FILE as STAGE_DIR/NAME
BORG_N=0 # archive names must be unique within a repository
borg_series() {
	local repo=$1 stage=$2 name=$3 f
	shift 3
	for f in "$@"; do
		BORG_N=$((BORG_N + 1))
		ln -f "$f" "$stage/$name"
		(cd "$stage" && borg create --compression lz4 "$repo::a$BORG_N" "$name")
	done
}
restic_init() { rm -rf "$1"; restic init -q -r "$1" >/dev/null; }
restic_series() {
	local repo=$1 stage=$2 name=$3 f
	shift 3
	for f in "$@"; do
		ln -f "$f" "$stage/$name"
		restic -q -r "$repo" backup "$stage/$name"
	done
}
git_init() { rm -rf "$1"; git init -q "$1"; }
git_series() {
	local dir=$1 name=$2 f i=0
	shift 2
	for f in "$@"; do
		i=$((i + 1))
		ln -f "$f" "$dir/$name"
		git -C "$dir" add "$name"
		git -C "$dir" commit -q -m "v$i"
	done
}
stage() { rm -rf "$WORK/stage_$1"; mkdir -p "$WORK/stage_$1"; echo "$WORK/stage_$1"; }

gen() { # FILE-OR-DIR gen_data.py args...: generate once (cached by name)
	local out=$1
	shift
	if [ ! -e "$out" ]; then
		echo "generating $out ..." >&2
		python3 "$HERE/gen_data.py" "$@" >/dev/null
	fi
}

# ---- main ------------------------------------------------------------------
build
mkdir -p "$WORK" "$WORK/home"
WORK=$(cd "$WORK" && pwd)
NULL=$(null_sink)
[ "$NULL" = /dev/null ] || echo "note: /dev/null is a regular file on this machine; output goes to $NULL instead" >&2
"$UDR" commit --help 2>&1 | grep -q -- '--file' && CLI_FILE=1
"$UDR" init --help 2>&1 | grep -q -- '--chunk-avg' && CLI_AVG=1

BIG=$(scaled $((1 << 30)) 1048576)
TSIZE=$(scaled 200000000 100000)
TVERS=20
GVERS=$(scaled 100 5)
MIXED=$WORK/mixed_$BIG.bin
EDITED=$WORK/mixed_$BIG.edited.bin
TDIR=$WORK/table_$TSIZE
GDIR=$WORK/grouped_$GVERS

echo "== UDR storage benchmark (SCALE=$SCALE) =="
machine
echo "udr ingest of table versions: $([ $CLI_FILE = 1 ] && echo 'udr commit TABLE --next --file' || echo 'C API (udr_store_put_file_ext with base + udr_catalog_commit_next), bench_putget ingest')"
echo "chunk_avg settings: $([ $CLI_AVG = 1 ] && echo 'udr init --chunk-avg' || echo 'C API udr_store_open_ext')"

if has 1 || has 2 || has 5; then
	gen "$MIXED" mixed "$MIXED" --size "$BIG" --seed 1
	gen "$EDITED" edit "$MIXED" "$EDITED" --edits 100 --seed 2
fi
has 3 && gen "$TDIR" table "$TDIR" --size "$TSIZE" --versions "$TVERS" --seed 3
has 4 && gen "$GDIR" grouped "$GDIR" --groups 200 --history 100 --versions "$GVERS" --seed 4

SUMMARY=()
summary() { SUMMARY+=("$(printf '%-58s %8s %8s %s' "$1" "$2" "$3" "$(verdict "$2" "$3")")"); }

# ---- 1 and 2 -------------------------------------------------------------------
if has 1 || has 2 || has 5; then
	U=$WORK/s1_udr B=$WORK/s1_borg R=$WORK/s1_restic
	SU=$(stage s1u) SB=$(stage s1b) SR=$(stage s1r)
	ln -f "$MIXED" "$SU/data.bin"
	udr_init "$U"
	borg_init "$B"
	restic_init "$R"
	cat "$MIXED" >"$NULL"
	sync
	tu1=$(timeit "$UDR" --store "$U" put "$SU/data.bin")
	sync
	BORG_N=0
	tb1=$(timeit borg_series "$B" "$SB" data.bin "$MIXED")
	sync
	tr1=$(timeit restic_series "$R" "$SR" data.bin "$MIXED")
	su1=$(size "$U") sb1=$(size "$B") sr1=$(size "$R") fu1=$(fbytes "$U")
	hdr "1. fresh ingest of $(mb "$BIG") MB mixed file"
	row "" "seconds" "repo bytes" "t peer/udr" "size p/u" ""
	row "udr put" "$tu1" "$su1" "" "" "(files only: $fu1)"
	row "borg create (-e none, lz4)" "$tb1" "$sb1" "$(div "$tb1" "$tu1")" "$(div "$sb1" "$su1")" "goal t >= 2"
	row "restic backup" "$tr1" "$sr1" "$(div "$tr1" "$tu1")" "$(div "$sr1" "$su1")" "goal t >= 4"
	summary "1. ingest: borg time / udr time" "$(div "$tb1" "$tu1")" 2
	summary "1. ingest: restic time / udr time" "$(div "$tr1" "$tu1")" 4

	if has 2; then
		ln -f "$EDITED" "$SU/data.bin"
		cat "$EDITED" >"$NULL"
		sync
		tu2=$(timeit "$UDR" --store "$U" put "$SU/data.bin")
		sync
		BORG_N=1
		tb2=$(timeit borg_series "$B" "$SB" data.bin "$EDITED")
		sync
		tr2=$(timeit restic_series "$R" "$SR" data.bin "$EDITED")
		au=$(($(size "$U") - su1)) ab=$(($(size "$B") - sb1)) ar=$(($(size "$R") - sr1))
		# UDR with a base: the edited file committed as version 2 of a table
		# whose version 1 is the original (deltas against the old pieces)
		D=$WORK/s2_udr_delta
		udr_init "$D"
		udr_series "$D" big "$MIXED" >/dev/null
		sd=$(size "$D")
		sync
		td2=$(timeit udr_series "$D" big "$EDITED")
		ad=$(($(size "$D") - sd))
		rm -rf "$D"
		hdr "2. the same file with 100 scattered edits, ingested after it"
		row "" "seconds" "bytes added" "t peer/udr" "added p/u" ""
		row "udr put" "$tu2" "$au" "" "" ""
		row "borg create" "$tb2" "$ab" "$(div "$tb2" "$tu2")" "$(div "$ab" "$au")" "goal t >= 3, added >= 5"
		row "restic backup" "$tr2" "$ar" "$(div "$tr2" "$tu2")" "$(div "$ar" "$au")" ""
		row "udr as table v2 (base = v1, deltas)" "$td2" "$ad" "$(div "$tb2" "$td2")" "$(div "$ab" "$ad")" "(ratios vs borg)"
		summary "2. edits: borg time / udr put time" "$(div "$tb2" "$tu2")" 3
		summary "2. edits: borg bytes added / udr put bytes added" "$(div "$ab" "$au")" 5
	fi
	rm -rf "$B" "$R" "$SB" "$SR" "$BORG_BASE_DIR" "$RESTIC_CACHE_DIR"

	if has 5; then
		H=$("$UDR" hash "$MIXED")
		# make sure the original content is there (scenario 1 may have been skipped)
		"$UDR" --store "$U" exists "$H" || "$UDR" --store "$U" put "$MIXED" >/dev/null
		cat "$MIXED" >"$NULL"
		"$UDR" --store "$U" get "$H" >"$NULL"
		GU=() GC=()
		for r in 1 2 3; do
			GU+=("$(timeit "$UDR" --store "$U" get "$H")")
			GC+=("$(timeit cat "$MIXED")")
		done
		gu=$(min "${GU[@]}") gc=$(min "${GC[@]}")
		hdr "5. read back $(mb "$BIG") MB to a null device, warm, best of 3"
		row "" "seconds" "MB/s" "cat/udr" "" ""
		row "udr get HASH > null device" "$gu" "$(awk -v b="$BIG" -v t="$gu" 'BEGIN { printf "%.0f", b / t / 1e6 }')" "" "" ""
		row "cat FILE > null device" "$gc" "$(awk -v b="$BIG" -v t="$gc" 'BEGIN { printf "%.0f", b / t / 1e6 }')" "$(div "$gc" "$gu")" "" "goal >= 0.7"
		echo "  samples (s): udr get ${GU[*]} | cat ${GC[*]}"
		summary "5. read: cat time / udr get time" "$(div "$gc" "$gu")" 0.7
	fi
	rm -rf "$U" "$SU"
fi

# ---- 3 ---------------------------------------------------------------------------
if has 3; then
	FILES=("$TDIR"/v*.csv)
	logical=$(cat "${FILES[@]}" | wc -c)
	U=$WORK/s3_udr B=$WORK/s3_borg R=$WORK/s3_restic G=$WORK/s3_git
	SB=$(stage s3b) SR=$(stage s3r)
	udr_init "$U"
	borg_init "$B"
	restic_init "$R"
	git_init "$G"
	sync
	tu=$(timeit udr_series "$U" t "${FILES[@]}")
	sync
	tb=$(timeit borg_series "$B" "$SB" table.csv "${FILES[@]}")
	sync
	tr=$(timeit restic_series "$R" "$SR" table.csv "${FILES[@]}")
	sync
	tg=$(timeit git_series "$G" table.csv "${FILES[@]}")
	sync
	su=$(size "$U") sb=$(size "$B") sr=$(size "$R") sg=$(size "$G/.git")
	tgc=$(timeit git -C "$G" gc -q)
	sgc=$(size "$G/.git")
	hdr "3. $TVERS versions of a $(mb "$(stat -c %s "${FILES[0]}")") MB CSV table (1% changed + 1% appended each), $(mb "$logical") MB in all"
	row "" "seconds" "repo bytes" "t peer/udr" "size p/u" ""
	row "udr (table versions, deltas)" "$tu" "$su" "" "" "(files only: $(fbytes "$U"))"
	row "borg create" "$tb" "$sb" "$(div "$tb" "$tu")" "$(div "$sb" "$su")" ""
	row "restic backup" "$tr" "$sr" "$(div "$tr" "$tu")" "$(div "$sr" "$su")" ""
	row "git add + commit" "$tg" "$sg" "$(div "$tg" "$tu")" "$(div "$sg" "$su")" ""
	row "git gc after that (time: gc only)" "$tgc" "$sgc" "$(div "$tgc" "$tu")" "$(div "$sgc" "$su")" ""
	row "git commits + gc" "$(add "$tg" "$tgc")" "$sgc" "$(div "$(add "$tg" "$tgc")" "$tu")" "" ""
	"$TOOL" stats "$U" | tr '\n' ' ' | sed 's/^/  udr store: /; s/$/\n/'
	best_t=$(min "$tb" "$tr" "$tg") best_s=$(min "$sb" "$sr" "$sg" "$sgc")
	summary "3. table: fastest peer time / udr time" "$(div "$best_t" "$tu")" 1
	summary "3. table: smallest peer repo / udr repo (incl. git gc)" "$(div "$best_s" "$su")" 1
	rm -rf "$U" "$B" "$R" "$G" "$SB" "$SR" "$BORG_BASE_DIR" "$RESTIC_CACHE_DIR"
fi

# ---- 4 ---------------------------------------------------------------------------
if has 4; then
	FILES=("$GDIR"/v*.csv)
	logical=$(cat "${FILES[@]}" | wc -c)
	U=$WORK/s4_udr B=$WORK/s4_borg G=$WORK/s4_git
	SB=$(stage s4b)
	udr_init "$U"
	borg_init "$B"
	git_init "$G"
	sync
	tu=$(timeit udr_series "$U" daily "${FILES[@]}")
	sync
	tb=$(timeit borg_series "$B" "$SB" daily.csv "${FILES[@]}")
	sync
	tg=$(timeit git_series "$G" daily.csv "${FILES[@]}")
	sg0=$(size "$G/.git")
	tgc=$(timeit git -C "$G" gc -q)
	su=$(size "$U") sb=$(size "$B") sg=$(size "$G/.git")
	tgt=$(add "$tg" "$tgc")
	hdr "4. grouped daily table: $GVERS versions, 200 groups, one row added per group each, $(mb "$logical") MB in all"
	row "" "seconds" "repo bytes" "t peer/udr" "size p/u" ""
	row "udr (table versions, deltas)" "$tu" "$su" "" "" "(files only: $(fbytes "$U"))"
	row "git add + commit, then git gc" "$tgt" "$sg" "$(div "$tgt" "$tu")" "$(div "$sg" "$su")" "goal t >= 1, size >= 1"
	row "  (git commits only / gc only)" "$tg / $tgc" "$sg0" "" "" "(size before gc)"
	row "borg create" "$tb" "$sb" "$(div "$tb" "$tu")" "$(div "$sb" "$su")" ""
	"$TOOL" stats "$U" | tr '\n' ' ' | sed 's/^/  udr store: /; s/$/\n/'
	summary "4. grouped: git (commits+gc) time / udr time" "$(div "$tgt" "$tu")" 1
	summary "4. grouped: git .git after gc / udr store" "$(div "$sg" "$su")" 1
	rm -rf "$U" "$B" "$G" "$SB" "$BORG_BASE_DIR"
fi

# ---- chunk_avg sweep ------------------------------------------------------------
if has sweep; then
	SS=$(awk -v a="$SCALE" -v b="$SWEEP_SCALE" 'BEGIN { print a * b }')
	WB=$(awk -v s="$SS" 'BEGIN { v = int(1073741824 * s); if (v < 1048576) v = 1048576; print v }')
	WT=$(awk -v s="$SS" 'BEGIN { v = int(200000000 * s); if (v < 100000) v = 100000; print v }')
	WM=$WORK/sweep_mixed_$WB.bin WE=$WORK/sweep_mixed_$WB.edited.bin WD=$WORK/sweep_table_$WT
	gen "$WM" mixed "$WM" --size "$WB" --seed 11
	gen "$WE" edit "$WM" "$WE" --edits 100 --seed 12
	gen "$WD" table "$WD" --size "$WT" --versions 10 --seed 13
	WFILES=("$WD"/v*.csv)
	hdr "chunk_avg sweep (scenario 2 on $(mb "$WB") MB, scenario 3 with 10 versions of $(mb "$WT") MB)"
	printf '  %-9s %9s %12s %12s %9s %12s | %9s %12s %12s\n' "chunk_avg" "s2 put s" "s2 store B" "(files B)" "s2 edit s" "s2 added B" "s3 all s" "s3 store B" "(files B)"
	for avg in $SWEEP_AVGS; do
		U=$WORK/sweep_udr
		udr_init "$U" "$avg"
		sync
		t1=$(timeit "$UDR" --store "$U" put "$WM")
		s1=$(size "$U") f1=$(fbytes "$U")
		t2=$(timeit "$UDR" --store "$U" put "$WE")
		a2=$(($(size "$U") - s1))
		udr_init "$U" "$avg"
		sync
		t3=$(timeit udr_series "$U" t "${WFILES[@]}")
		s3=$(size "$U") f3=$(fbytes "$U")
		printf '  %-9s %9s %12s %12s %9s %12s | %9s %12s %12s\n' "$avg" "$t1" "$s1" "$f1" "$t2" "$a2" "$t3" "$s3" "$f3"
		rm -rf "$U"
	done
	[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$WM" "$WE" "$WD"
fi

hdr "summary (ratio, goal)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$MIXED" "$EDITED" "$TDIR" "$GDIR"
rm -rf "$WORK/home"
[ "$NULL" = /dev/null ] || rm -f "$NULL"
