#!/bin/sh
# Install what building and testing UDR needs, from Debian's packages only.
# Safe to run again: installs only what is missing.
set -eu

PKGS="gcc make cmake pkg-config librust-blake3-dev libjansson-dev libcmocka-dev libzstd-dev \
python3 python3-dev python3-pytest python3-pytest-xdist python3-pandas python3-setuptools python3-wheel b3sum zstd groff-base"
[ "${UDR_SETUP_BENCH:-0}" = 1 ] && PKGS="$PKGS borgbackup restic git hyperfine"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# DuckDB (optional: the query module and `udr sql` need it) from npm.
if command -v npm >/dev/null 2>&1 || { [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null 2>&1; }; then
	sh "$(dirname "$0")/fetch-duckdb.sh" || echo "setup: DuckDB not fetched; the query module will not be built" >&2
else
	echo "setup: npm not available; the query module will not be built" >&2
fi
ls -d /usr/share/cargo/registry/blake3-*/c >/dev/null 2>&1 || {
	echo "setup: BLAKE3 C sources not found under /usr/share/cargo/registry" >&2
	exit 1
}
