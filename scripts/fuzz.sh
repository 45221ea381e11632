#!/bin/sh
# Build the fuzz targets with libFuzzer + ASan/UBSan (clang) and run each for
# SECONDS (default 60), growing tests/fuzz/corpus/<target>/.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
B3=$(ls -d /usr/share/cargo/registry/blake3-*/c | sort | tail -1)
OUT=build-fuzz
mkdir -p $OUT
SRCS="$(ls src/util/*.c src/store/*.c src/catalog/*.c src/db/*.c src/gc/*.c) $B3/blake3.c $B3/blake3_dispatch.c $B3/blake3_portable.c"
for t in tests/fuzz/fuzz_*.c; do
	name=$(basename "$t" .c)
	corpus=tests/fuzz/corpus/${name#fuzz_}
	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
		-DBLAKE3_NO_SSE2 -DBLAKE3_NO_SSE41 -DBLAKE3_NO_AVX2 -DBLAKE3_NO_AVX512 \
		-DUDR_VERSION_STRING='"fuzz"' -Iinclude -Isrc -I"$B3" "$t" $SRCS \
		-ljansson -lzstd -lpthread -o "$OUT/$name"
	mkdir -p "$corpus"
	"$OUT/$name" -max_total_time="$SECONDS_EACH" -max_len=65536 "$corpus"
done
