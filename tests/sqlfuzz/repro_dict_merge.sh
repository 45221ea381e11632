#!/bin/sh
mkdir -p "${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}"
# Values that are SQL-equal but distinct (0.0/-0.0, INTERVAL '1 month'/'30 days', NaN/-NaN) are merged
# when DuckDB's Parquet writer dictionary-encodes a column: CREATE TABLE AS, UPDATE and even
# `udr optimize --full` ("the rows read do not change") silently change stored values.
U="${UDR:-$(dirname "$0")/../../build/udr} --store ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rd"; rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rd; $U init >/dev/null
$U sql "CREATE TABLE iv AS SELECT i AS id, CASE WHEN i % 2 = 0 THEN INTERVAL 30 DAY ELSE INTERVAL 1 MONTH END AS v FROM range(4) r(i)" >/dev/null
$U sql "INSERT INTO iv SELECT i AS id, CASE WHEN i % 2 = 0 THEN INTERVAL 30 DAY ELSE INTERVAL 1 MONTH END FROM range(4, 8) r(i)" >/dev/null
echo "== before optimize (expected: 4 x '1 month', 4 x '30 days')"
$U sql --csv "SELECT CAST(v AS VARCHAR) AS v, count(*) AS n FROM iv GROUP BY ALL ORDER BY ALL"
$U optimize iv --full
echo "== after optimize --full"
$U sql --csv "SELECT CAST(v AS VARCHAR) AS v, count(*) AS n FROM iv GROUP BY ALL ORDER BY ALL"
$U sql --csv "SELECT new_version, inserted, updated, deleted, message FROM udr_log WHERE \"table\" = 'iv'"
echo "== DOUBLE: 0.0 / -0.0 / NaN / -NaN, then optimize --full (expected 10 rows of each)"
$U sql "CREATE TABLE d AS SELECT * FROM (VALUES (1, 0.0::DOUBLE), (2, '-0.0'::DOUBLE), (3, 'nan'::DOUBLE), (4, -('nan'::DOUBLE)))  v(id, x)" >/dev/null
for k in 1 2 3 4 5 6 7 8 9; do $U sql --no-compact "INSERT INTO d SELECT id + 4 * $k, x FROM d@1" >/dev/null; done
$U sql --csv "SELECT CAST(x AS VARCHAR) AS x, count(*) AS n FROM d GROUP BY ALL ORDER BY ALL"
$U optimize d --full
$U sql --csv "SELECT CAST(x AS VARCHAR) AS x, count(*) AS n FROM d GROUP BY ALL ORDER BY ALL"
rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rd
