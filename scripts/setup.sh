#!/bin/sh
# Install what building and testing UDR needs, from Debian's packages only.
# Safe to run again: installs only what is missing.
set -eu

PKGS="gcc make cmake pkg-config librust-blake3-dev libjansson-dev libcmocka-dev libzstd-dev \
python3 python3-dev python3-pytest python3-setuptools b3sum zstd"
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
ls -d /usr/share/cargo/registry/blake3-*/c >/dev/null 2>&1 || {
	echo "setup: BLAKE3 C sources not found under /usr/share/cargo/registry" >&2
	exit 1
}
