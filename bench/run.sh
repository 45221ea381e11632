#!/bin/sh
# run.sh - run every UDR benchmark (`make bench` calls this).
#
#   bench/run.sh                 # full size: about 35 minutes on 2 cores
#   SCALE=0.5 bench/run.sh       # about 17 minutes
#   SCALE=0.1 bench/run.sh       # quick run, a few minutes
#
# Environment (passed on to each script): SCALE, BENCH_DIR, BUILD_DIR,
# KEEP_DATA, ROUNDS; see bench/README.md.  Python-binding numbers are
# separate: python3 bench/bench_python.py.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
keep=${KEEP_DATA:-0}
# both scripts use the same 1 GiB*SCALE mixed file (same name and seed in
# the same BENCH_DIR): the core run keeps it for the storage run, which
# removes it at its end unless KEEP_DATA=1
KEEP_DATA=1 bash "$HERE/bench_core.sh"
echo
KEEP_DATA=$keep bash "$HERE/bench_storage.sh"
