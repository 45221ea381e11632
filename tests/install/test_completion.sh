#!/bin/bash
# The bash completion (completion/udr.bash) in a non-interactive bash: set
# COMP_WORDS/COMP_CWORD as readline would, call the function `complete`
# registered for udr, and check COMPREPLY.
# Usage: test_completion.sh UDR_BIN COMPLETION_FILE WORKDIR
# (UDR_BIN: the udr the completion runs, as if typed as the command word.)
set -u
udr=$1
completion=$2
work=$3
failed=0
passed=0

# shellcheck source=/dev/null
. "$completion" || { echo "FAIL: cannot source $completion"; exit 1; }
func=$(complete -p udr 2>/dev/null | sed -n 's/.*-F \([^ ]*\) udr$/\1/p')
if [ -z "$func" ]; then
	echo "FAIL: $completion registers no completion function for udr"
	exit 1
fi

# complete WORD... : the completions of the last word (may be empty)
complete_words()
{
	COMP_WORDS=("$udr" "$@")
	COMP_CWORD=$#
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	"$func" udr "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort
}

# expect WANT WORD... : the completions are exactly WANT (newline-separated)
expect()
{
	local want=$1 got
	shift
	got=$(complete_words "$@")
	if [ "$got" = "$want" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: udr $* <TAB>: expected [${want//$'\n'/ }], got [${got//$'\n'/ }]"
	fi
}

# has WANT WORD... : WANT is one of the completions
has()
{
	local want=$1 got
	shift
	got=$(complete_words "$@")
	if printf '%s\n' "$got" | grep -qxF -- "$want"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: udr $* <TAB>: [${got//$'\n'/ }] lacks $want"
	fi
}

store=$work/store
mkdir -p "$work"
"$udr" --store "$store" init >/dev/null
h=$(printf 'x' | "$udr" --store "$store" put -)
for t in users userlog sales; do
	"$udr" --store "$store" commit "$t" --next "$h" >/dev/null
done
touch "$work/data.csv" "$work/day two.csv"
mkdir -p "$work/dir"
cd "$work" || exit 1

# commands, and every command `udr --help` lists
expect $'commit' com
expect $'show\nsql\nstats' s
all=$(complete_words "")
want=$("$udr" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' | sort)
if [ -n "$want" ] && [ "$all" = "$want" ]; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
	echo "FAIL: udr <TAB>: [${all//$'\n'/ }], the help lists [${want//$'\n'/ }]"
fi
expect $'diff\ndiff-rows' dif
expect $'help' he
expect $'versions' help ver

# options: global, then a command's own (from its help)
expect $'--store' --st
has --version --
has --next commit --n
has --message commit --m
has --verify get --v
has --no-verify get --no
has --key diff-rows --k
has --strictness merge --st
expect $'--theirs' resolve --th
has --store tables --
expect $'--repair\n--repair-from\n--reset-head' fsck --re
has --json fsck --j
expect $'expire\nexpired' retention ex
expect $'restore' retention re
expect $'set\nshow' retention s
has --keep-daily gc --keep-d
has --keep-within retention expire --keep-w
has --dry-run retention expire --d

# table names from `udr tables` (--store before or after the command)
expect $'userlog\nusers' --store "$store" show us
expect $'userlog\nusers' show --store "$store" us
expect $'sales' --store "$store" versions s
expect $'userlog\nusers' --store "$store" log --table us
expect $'users' --store "$store" commit -m msg users
UDR_STORE=$store expect $'sales' diff-rows sa
# the second operand of show is a version, not a table: files
expect "" --store "$store" show users us

# option values and operands
expect $'1\n2' init --format ""
expect $'csv\njson\nndjson\nparquet' import t x.csv --format ""
expect $'data.csv\nday two.csv' put da
expect $'dir' --store di
expect $'data.csv' --store "$store" commit users --next --file dat
expect "" commit users -m ""

echo "completion: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
