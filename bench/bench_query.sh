#!/bin/sh
# Benchmark of the query module (a measurement, not a test): prints ratios
# measured in one run.
#   1. scan-aggregate GROUP BY over a 10M-row table version through
#      udr_query_sql vs DuckDB over the same Parquet files (goal: <= 5%);
#   2. import of a ~1 GB CSV vs DuckDB's own COPY ... TO parquet (goal: <= 1.1x).
# Needs the query module built in build-query (cmake -S . -B build-query).
# Env: BUILD (default build-query), WORK (scratch dir, default /tmp/udr-bench-query),
#      ROWS (10000000), CSV_ROWS (rows of the CSV, default 13000000 ~ 1 GB), REPEAT.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-query}
work=${WORK:-/tmp/udr-bench-query}
rows=${ROWS:-10000000}
csv_rows=${CSV_ROWS:-13000000}
repeat=${REPEAT:-5}
duck="$root/.deps/duckdb"

[ -x "$build/udrq" ] || { echo "bench_query: build the query module first (cmake --build $build --target udrq udr_query)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cc -O2 -std=c11 -D_GNU_SOURCE -o "$work/bench_query" "$root/bench/bench_query.c" \
	-I"$root/include" -I"$duck/include" -L"$build" -ludr_query -Wl,-rpath,"$build" \
	-L"$duck/lib" -lduckdb -Wl,-rpath,"$duck/lib" -lpthread -lm

echo "== scan: GROUP BY over $rows rows ($(nproc) cores)"
"$build/udrq" "$work/scan" import-sql t \
	"SELECT range AS id, range % 1000 AS g, (range * 7919 % 100003) / 100003.0 AS x,
	        (range % 97)::INTEGER AS v, 'name-' || (range % 5000) AS s FROM range($rows)" >/dev/null
"$work/bench_query" scan "$work/scan" t "$repeat"

echo "== import: CSV of $csv_rows rows"
"$build/udrq" "$work/gen" sql "SELECT 1" >/dev/null
"$build/udrq" "$work/gen" sql \
	"SELECT range AS id, range % 1000 AS g, (range * 7919 % 100003) / 100003.0 AS x,
	        'customer-' || (range % 100000) AS name, TIMESTAMP '2024-01-01' + to_seconds(range) AS ts,
	        md5(range::VARCHAR) AS h FROM range($csv_rows)" --out "$work/big.csv" >/dev/null
ls -l "$work/big.csv" | awk '{printf "csv: %.2f GB\n", $5 / 1e9}'
"$work/bench_query" import "$work" "$work/big.csv" "${IMPORT_REPEAT:-3}"
rm -rf "$work"
