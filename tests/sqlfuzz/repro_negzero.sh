#!/bin/sh
mkdir -p "${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}"
# -0.0 silently becomes 0.0 when a written Parquet part holds both 0.0 and -0.0
U="${UDR:-$(dirname "$0")/../../build/udr} --store ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rz"; rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rz; $U init >/dev/null
echo "== CREATE TABLE AS: 50 x 0.0 and 50 x -0.0 (expected: 50 rows '-0.0', 50 rows '0.0')"
$U sql "CREATE TABLE t AS SELECT i AS id, CASE WHEN i % 2 = 0 THEN 0.0::DOUBLE ELSE '-0.0'::DOUBLE END AS x FROM range(100) r(i)" >/dev/null; echo "rc=$?"
$U sql --csv "SELECT CAST(x AS VARCHAR) AS x, count(*) AS n FROM t GROUP BY ALL ORDER BY ALL"
echo "== UPDATE making -0.0 in some rows while others become 0.0 (expected: ids 1,3,5 '-0.0')"
$U sql "CREATE TABLE w AS SELECT i AS id, (CASE WHEN i % 2 = 0 THEN 1.0 ELSE -1.0 END)::DOUBLE AS x FROM range(10) r(i)" >/dev/null
$U sql --csv "UPDATE w SET x = x * 0 WHERE id < 6"; echo "rc=$?"
$U sql --csv "SELECT id, CAST(x AS VARCHAR) AS x FROM w WHERE id < 6 ORDER BY id"
rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rz
