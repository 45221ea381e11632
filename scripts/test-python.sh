#!/bin/sh
# Build the udr Python extension into OUTDIR (never into the source tree) and
# run the pytest suite tests/python against it.  Called by ctest (test
# "python"); usable by hand:  sh scripts/test-python.sh /usr/bin/python3 build/python
# Exits non-zero when the build or any test fails.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 PYTHON OUTDIR" >&2
	exit 2
fi
PY=$1
OUT=$2
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

cd "$SRC"
# build_py copies the package (udr/__init__.py, stubs, py.typed); build_ext
# compiles libudr, BLAKE3 and the extension with objects under OUT/tmp.
"$PY" setup.py -q build_py --build-lib "$OUT/lib" \
	build_ext --build-lib "$OUT/lib" --build-temp "$OUT/tmp"

# Run from OUT so that nothing is written into the source tree; pytest's
# temporary directories in OUT/pytest, removed after the run.
cd "$OUT"
PYTHONPATH="$OUT/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
	exec sh "$SRC/scripts/run-pytest.sh" "$OUT/pytest" "$PY" -q "$SRC/tests/python"
