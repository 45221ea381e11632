#!/bin/sh
# Run pytest with its temporary directories under WORKDIR (ctest passes one
# inside the build tree, per suite) instead of /tmp/pytest-of-$USER, and
# remove WORKDIR afterwards: the suites write gigabytes, and runs of
# different suites or build trees at the same time no longer share (and
# prune) one directory.  UDR_KEEP_TEST_TMP=1 keeps WORKDIR for inspection
# (the next run clears it).  Exits with pytest's status.
#
# UDR_PYTEST_WORKERS=N (ctest sets it for the suites whose tests are
# independent) spreads the tests over N processes with pytest-xdist
# (python3-pytest-xdist, installed by scripts/setup.sh); "auto" means one per
# CPU, 1 or a missing xdist runs them in this process.  Tests marked with
# one xdist_group (the corruption sweep's damage cases) share one worker.
# The slowest tests are listed at the end, for whoever keeps CI in time.
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
workers=${UDR_PYTEST_WORKERS:-1}
[ "$workers" = auto ] && workers=$(nproc 2>/dev/null || echo 1)
if [ "$workers" -gt 1 ] 2>/dev/null; then
	if "$py" -c "import xdist" 2>/dev/null; then
		set -- -n "$workers" --dist loadgroup "$@"
	else
		echo "run-pytest: pytest-xdist missing, running the tests in one process" >&2
	fi
fi
"$py" -m pytest -p no:cacheprovider --durations=15 --basetemp="$work/base" "$@"
rc=$?
if [ "${UDR_KEEP_TEST_TMP:-0}" = 1 ]; then
	echo "run-pytest: temporary files kept in $work" >&2
else
	# pytest leaves some directories without write permission
	chmod -R u+rwX "$work" 2>/dev/null
	rm -rf "$work"
fi
exit $rc
