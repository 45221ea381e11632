#!/bin/sh
# Fetch DuckDB's C API header and shared library (for the optional query
# module, src/query) into the git-ignored .deps/ folder:
#   .deps/duckdb/include/duckdb.h   from the npm package duckdb@1.4.4
#   .deps/duckdb/lib/libduckdb.so   from @duckdb/node-bindings-linux-x64@1.4.4-r.4
# Idempotent: does nothing when both files are present.  Needs npm and tar.
set -eu

DUCKDB_PKG="duckdb@1.4.4"
BINDINGS_PKG="@duckdb/node-bindings-linux-x64@1.4.4-r.4"

root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
out="$deps/duckdb"

if [ -f "$out/include/duckdb.h" ] && [ -f "$out/lib/libduckdb.so" ]; then
	echo "fetch-duckdb: already present in $out"
	exit 0
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*) echo "fetch-duckdb: only linux x86-64 binaries are fetched (this is $(uname -s)-$(uname -m))" >&2
   exit 1 ;;
esac
if ! command -v npm >/dev/null 2>&1; then
	echo "fetch-duckdb: npm is required (apt-get install npm) to fetch DuckDB; the query module is optional" >&2
	exit 1
fi
command -v tar >/dev/null 2>&1 || { echo "fetch-duckdb: tar is required" >&2; exit 1; }

mkdir -p "$deps/npm" "$out/include" "$out/lib"
work=$(mktemp -d "$deps/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# pack <spec> <tarball name>: npm pack into .deps/npm unless already there.
pack() {
	tgz="$deps/npm/$2"
	if [ ! -f "$tgz" ]; then
		echo "fetch-duckdb: npm pack $1" >&2
		(cd "$deps/npm" && npm pack --silent "$1" >/dev/null) || {
			echo "fetch-duckdb: npm pack $1 failed" >&2; exit 1; }
		[ -f "$tgz" ] || { echo "fetch-duckdb: npm pack $1 did not produce $2" >&2; exit 1; }
	fi
	echo "$tgz"
}

if [ ! -f "$out/include/duckdb.h" ]; then
	tgz=$(pack "$DUCKDB_PKG" "duckdb-1.4.4.tgz")
	tar -xzf "$tgz" -C "$work" package/src/duckdb/src/include/duckdb.h || {
		echo "fetch-duckdb: duckdb.h not found in $tgz" >&2; exit 1; }
	cp "$work/package/src/duckdb/src/include/duckdb.h" "$out/include/duckdb.h.tmp"
	mv "$out/include/duckdb.h.tmp" "$out/include/duckdb.h"
fi
if [ ! -f "$out/lib/libduckdb.so" ]; then
	tgz=$(pack "$BINDINGS_PKG" "duckdb-node-bindings-linux-x64-1.4.4-r.4.tgz")
	mkdir -p "$work/b"
	tar -xzf "$tgz" -C "$work/b"
	so=$(find "$work/b" -name libduckdb.so | head -n 1)
	[ -n "$so" ] || { echo "fetch-duckdb: libduckdb.so not found in $tgz" >&2; exit 1; }
	cp "$so" "$out/lib/libduckdb.so.tmp"
	mv "$out/lib/libduckdb.so.tmp" "$out/lib/libduckdb.so"
fi
echo "fetch-duckdb: DuckDB 1.4.4 in $out"
