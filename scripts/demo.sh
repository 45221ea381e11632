#!/bin/sh
# A short tour of the main job on the embedded default store ./data:
# store content, commit versions of a table, travel back in time, check.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
UDR="$PWD/build-release/udr"
export UDR_STORE="$PWD/data"
run() { echo "\$ udr $*"; "$UDR" "$@"; }

run init
printf 'id,name\n1,ada\n2,grace\n' > /tmp/udr-demo-users-v1.csv
printf 'id,name\n1,ada\n2,grace\n3,linus\n' > /tmp/udr-demo-users-v2.csv
H1=$("$UDR" put /tmp/udr-demo-users-v1.csv); echo "\$ udr put users-v1.csv"; echo "$H1"
H2=$("$UDR" put /tmp/udr-demo-users-v2.csv); echo "\$ udr put users-v2.csv"; echo "$H2"
echo "\$ udr put users-v1.csv   (again: deduplicated, same hash)"; "$UDR" put /tmp/udr-demo-users-v1.csv
run commit demo_users --next "$H1" -m "first load"
run commit demo_users --next "$H2" -m "add linus" --meta source=demo
run versions demo_users
run show demo_users 1
echo "\$ udr get <hash of version 1> --verify   (time travel: the data as it was)"
"$UDR" get "$H1" --verify
if "$UDR" sql "SELECT 1" >/dev/null 2>&1; then
	echo "# the same data as a table you can query with SQL, version by version"
	run import demo_people /tmp/udr-demo-users-v1.csv -m "day 1"
	run import demo_people /tmp/udr-demo-users-v2.csv -m "day 2"
	V=$("$UDR" versions demo_people | tail -1)
	P=$((V - 1))
	run sql "SELECT n.id, n.name FROM \"demo_people@$V\" n ANTI JOIN \"demo_people@$P\" o USING (id)"
	run diff-rows demo_people "$P" "$V" --key id
	run sql "SELECT seq, \"table\", new_version, message FROM udr_log ORDER BY seq DESC LIMIT 3"
fi
run tables
run stats
run fsck
rm -f /tmp/udr-demo-users-v1.csv /tmp/udr-demo-users-v2.csv
echo "demo done: the store is in ./data (run it again to add more versions)"
