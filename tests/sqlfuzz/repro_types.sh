#!/bin/sh
mkdir -p "${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}"
# Types Parquet cannot hold are silently converted on commit (exit 0), unlike DuckDB's own tables
U="${UDR:-$(dirname "$0")/../../build/udr} --store ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rt"; rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rt; $U init >/dev/null
$U sql "CREATE TABLE h (c HUGEINT)" >/dev/null
$U sql "INSERT INTO h VALUES (12345678901234567891)"; echo "rc=$?"
echo "== expected 12345678901234567891,HUGEINT"
$U sql --csv "SELECT CAST(c AS VARCHAR) AS v, typeof(c) AS t FROM h"
echo "== common case: sum() of BIGINT is HUGEINT (expected 9007199254740993)"
$U sql "CREATE TABLE s AS SELECT sum(v) AS total FROM (VALUES (9007199254740992::BIGINT), (1)) t(v)" >/dev/null
$U sql --csv "SELECT CAST(total AS VARCHAR) AS total, typeof(total) AS t FROM s"
echo "== INTERVAL sub-millisecond part dropped (expected '1 month 2 days 00:00:00.000003')"
$U sql "CREATE TABLE i AS SELECT INTERVAL '1 month 2 days 3 microseconds' AS c" >/dev/null
$U sql --csv "SELECT CAST(c AS VARCHAR) AS v FROM i"
echo "== TIMETZ offset dropped (expected 12:34:56+05:30)"
$U sql "CREATE TABLE z AS SELECT TIMETZ '12:34:56+05:30' AS c" >/dev/null
$U sql --csv "SELECT CAST(c AS VARCHAR) AS v FROM z"
echo "== UNION becomes STRUCT (expected x, UNION(i INTEGER, s VARCHAR))"
$U sql "CREATE TABLE un AS SELECT 'x'::UNION(i INTEGER, s VARCHAR) AS c" >/dev/null
$U sql --csv "SELECT CAST(c AS VARCHAR) AS v, typeof(c) AS t FROM un"
rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rt
