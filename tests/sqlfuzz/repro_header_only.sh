#!/bin/sh
mkdir -p "${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}"
# minor (loud, not silent): a header-only CSV (a full copy with no rows) is refused by import --key
U="${UDR:-$(dirname "$0")/../../build/udr} --store ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rf"; rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rf; $U init >/dev/null
$U sql "CREATE TABLE q (id BIGINT, f DOUBLE)" >/dev/null; $U sql "INSERT INTO q VALUES (1, 1.5)" >/dev/null
printf 'id,f\n' > ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/hdr.csv
$U import q ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/hdr.csv --key id; echo "rc=$? (expected: a new version with 0 rows, 1 deleted)"
rm -rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/rf ${UDR_FUZZ_DIR:-/tmp/udr-sqlfuzz}/hdr.csv
