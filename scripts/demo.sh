#!/bin/sh
# A short tour of the main job on the embedded default store ./data:
# store content, commit versions of a table, travel back in time, check.
set -eu
cd "$(dirname "$0")/.."
if [ -n "${UDR_DEMO_BIN:-}" ]; then
	# tests/cli/test_cli_demo.py: a given udr, store and file directory, and
	# UDR_DEMO_ARGV: a file that gets the arguments of each command shown
	UDR=$UDR_DEMO_BIN
	export UDR_STORE="${UDR_STORE:?}"
	work=${UDR_DEMO_FILES:?}
else
	sh scripts/setup.sh
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null
	cmake --build build-release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
	UDR="$PWD/build-release/udr"
	export UDR_STORE="$PWD/data"
	# the example files stay, so that the commands shown can be run again
	work=$PWD/build-release/demo
fi
mkdir -p "$work"

# quote WORD: WORD as the shell reads it back (printf %q for sh): as it is
# when it has only characters no shell treats specially, else in single
# quotes, with each ' written as '\''.
quote()
{
	case $1 in
	'' | *[!A-Za-z0-9_./:=@%+,-]*)
		# (the x keeps trailing newlines through the command substitution)
		q=$(printf '%sx' "$1" | sed "s/'/'\\\\''/g")
		printf "'%s'" "${q%x}" ;;
	*)
		printf '%s' "$1" ;;
	esac
}
# show CMD ARG...: print the command line, quoted so that it can be pasted
# back into a shell (after the two exports the demo prints first).
show()
{
	printf '$'
	for a in "$@"; do
		printf ' %s' "$(quote "$a")"
	done
	printf '\n'
}
# run ARG...: show `udr ARG...`, then run it
run()
{
	show udr "$@"
	[ -z "${UDR_DEMO_ARGV:-}" ] || printf '%s\0' udr "$@" >> "$UDR_DEMO_ARGV"
	"$UDR" "$@"
}

echo "# to run the commands below yourself:"
echo "# export PATH=$(quote "$(dirname "$UDR")"):\"\$PATH\""
echo "# export UDR_STORE=$(quote "$UDR_STORE")"
run init
printf 'id,name\n1,ada\n2,grace\n' > "$work/users-v1.csv"
printf 'id,name\n1,ada\n2,grace\n3,linus\n' > "$work/users-v2.csv"
run put "$work/users-v1.csv"
run put "$work/users-v2.csv"
echo "# again: deduplicated, the same hash"
run put "$work/users-v1.csv"
H1=$("$UDR" put "$work/users-v1.csv")
H2=$("$UDR" put "$work/users-v2.csv")
run commit demo_users --next "$H1" -m "first load"
run commit demo_users --next "$H2" -m "add linus" --meta source=demo
run versions demo_users
run show demo_users 1
echo "# time travel: the data of version 1 as it was"
run get "$H1" --verify
if "$UDR" sql "SELECT 1" >/dev/null 2>&1; then
	echo "# the same data as a table you can query with SQL, version by version"
	run import demo_people "$work/users-v1.csv" -m "day 1"
	run import demo_people "$work/users-v2.csv" -m "day 2"
	V=$("$UDR" versions demo_people | tail -1)
	P=$((V - 1))
	run sql "SELECT n.id, n.name FROM \"demo_people@$V\" n ANTI JOIN \"demo_people@$P\" o USING (id)"
	run diff-rows demo_people "$P" "$V" --key id
	run sql "SELECT seq, \"table\", new_version, message FROM udr_log ORDER BY seq DESC LIMIT 3"
fi
run tables
run stats
run fsck
echo "# demo done: the store is in $(quote "$UDR_STORE") (run it again to add more versions)"
