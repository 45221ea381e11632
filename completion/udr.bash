# bash completion for udr                                  -*- shell-script -*-
# Installed as share/bash-completion/completions/udr; by hand:
#   source completion/udr.bash
# Commands and options come from the help texts of the udr being completed
# (`udr --help`, `udr COMMAND --help`), table names from `udr tables` on
# the store given by --store (else $UDR_STORE, else ./data).

# The commands: the names listed under "Commands:" in `udr --help`.
_udr_commands()
{
	"$1" --help 2>/dev/null |
		sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'
}

# The options of a command: every -x and --xyz its help names, and the
# options every command takes.
_udr_options()
{
	"$1" "$2" --help 2>/dev/null | tr ' [](),|=`' '\n\n\n\n\n\n\n\n' |
		grep -E '^--?[A-Za-z][A-Za-z-]*$'
	printf '%s\n' --store --quiet --help
}

_udr()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	local udr=${COMP_WORDS[0]} cmd= store= nargs=0 i w

	[[ $COMP_CWORD -gt 0 ]] && prev=${COMP_WORDS[COMP_CWORD - 1]}
	[[ $udr == "~/"* ]] && udr=$HOME/${udr#"~/"}
	COMPREPLY=()

	# The command, the store, and how many operands precede the word.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--store)
			((i + 1 < COMP_CWORD)) && store=${COMP_WORDS[i + 1]}
			i=$((i + 1))
			continue
			;;
		--store=*)
			store=${w#--store=}
			continue
			;;
		-o | -m | -p | --base | --output | --message | --meta | --file | --spec | --at | \
		--since | --since-time | --table | --branch | --limit | --repair-from | --sql | \
		--param | --threads | --memory-limit | --key | --format | --chunk-min | \
		--chunk-avg | --chunk-max | --compression-level | --delta-depth | --keep-last | \
		--keep-within | --keep-hourly | --keep-daily | --keep-weekly | --keep-monthly | \
		--keep-yearly | --grace | --threshold | --max-unused | --max-repack)
			[[ -n $cmd ]] && i=$((i + 1))  # the option's value
			continue
			;;
		-*)
			continue
			;;
		esac
		if [[ -z $cmd ]]; then
			cmd=$w
		else
			nargs=$((nargs + 1))
		fi
	done
	[[ $store == "~/"* ]] && store=$HOME/${store#"~/"}

	# The value of an option.
	case $prev in
	--store)
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		compopt -o filenames 2>/dev/null || true
		return
		;;
	-o | --output | --file | --spec | --repair-from)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null || true
		return
		;;
	--table)
		mapfile -t COMPREPLY < <(compgen -W "$("$udr" ${store:+--store "$store"} tables 2>/dev/null)" -- "$cur")
		return
		;;
	--format)
		if [[ $cmd == init ]]; then
			mapfile -t COMPREPLY < <(compgen -W '1 2' -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W 'csv parquet json ndjson' -- "$cur")
		fi
		return
		;;
	-m | -p | --base | --message | --meta | --at | --since | --since-time | --branch | \
	--limit | --sql | --param | --threads | --memory-limit | --key | --chunk-min | \
	--chunk-avg | --chunk-max | --compression-level | --delta-depth | --keep-last | \
	--keep-within | --keep-hourly | --keep-daily | --keep-weekly | --keep-monthly | --keep-yearly)
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W '--store --quiet --help --version' -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_udr_commands "$udr")" -- "$cur")
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_udr_options "$udr" "$cmd" | sort -u)" -- "$cur")
		return
	fi
	case $cmd in
	retention)
		((nargs == 0)) && mapfile -t COMPREPLY < <(compgen -W 'show set unset expire expired undo restore' -- "$cur")
		return
		;;
	help)
		((nargs == 0)) && mapfile -t COMPREPLY < <(compgen -W "$(_udr_commands "$udr")" -- "$cur")
		return
		;;
	commit | show | versions | import | export | diff-rows)
		if ((nargs == 0)); then
			mapfile -t COMPREPLY < <(compgen -W "$("$udr" ${store:+--store "$store"} tables 2>/dev/null)" -- "$cur")
			return
		fi
		;;
	esac
	mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	compopt -o filenames 2>/dev/null || true
}

complete -F _udr udr
