#!/bin/sh
# Installability: `cmake --install` into a scratch prefix, then build and run
# a program against the installed library through pkg-config (udr.pc).
# Usage: test_install.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1)
for f in udr/udr.h udr/store.h udr/catalog.h udr/txn.h udr/log.h udr/sys/io.h; do
	test -f "$tmp/prefix/include/$f" || { echo "missing header $f"; exit 1; }
done
ls "$tmp"/prefix/lib*/libudr.so "$tmp"/prefix/lib*/libudr.a >/dev/null
cat > "$tmp/app.c" <<'C'
#include <udr/udr.h>
#include <stdio.h>
int main(void)
{
	udr_hash h;
	char hex[UDR_HASH_HEXSIZE + 1];
	udr_hash_buf(&h, "abc", 3);
	udr_hash_tohex(hex, &h);
	printf("%s\n", hex);
	return 0;
}
C
libdir=$(dirname "$pc")
# shellcheck disable=SC2046
cc "$tmp/app.c" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs udr) -Wl,-rpath,"$libdir" -o "$tmp/app"
got=$("$tmp/app")
want=6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85
if [ "$got" != "$want" ]; then
	echo "installed library hashed 'abc' to $got, expected $want"
	exit 1
fi
echo "1 passed, 0 failed"
