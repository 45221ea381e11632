#!/bin/sh
# Run pytest with its temporary directories under WORKDIR (ctest passes one
# inside the build tree, per suite) instead of /tmp/pytest-of-$USER, and
# remove WORKDIR afterwards: the suites write gigabytes, and runs of
# different suites or build trees at the same time no longer share (and
# prune) one directory.  UDR_KEEP_TEST_TMP=1 keeps WORKDIR for inspection
# (the next run clears it).  Exits with pytest's status.
# Usage: run-pytest.sh WORKDIR PYTHON [PYTEST_ARGS...]
set -u
if [ $# -lt 2 ]; then
	echo "usage: $0 WORKDIR PYTHON [PYTEST_ARGS...]" >&2
	exit 2
fi
work=$1
py=$2
shift 2
[ -d "$work" ] && chmod -R u+rwX "$work" 2>/dev/null
rm -rf "$work"
mkdir -p "$work" || exit 2
"$py" -m pytest -p no:cacheprovider --basetemp="$work/base" "$@"
rc=$?
if [ "${UDR_KEEP_TEST_TMP:-0}" = 1 ]; then
	echo "run-pytest: temporary files kept in $work" >&2
else
	# pytest leaves some directories without write permission
	chmod -R u+rwX "$work" 2>/dev/null
	rm -rf "$work"
fi
exit $rc
