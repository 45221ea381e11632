#!/bin/sh
# Installability, as a new user meets it:
#  - `cmake --install` into a scratch prefix: headers, libraries, udr.pc, the
#    manual pages (rendered without warnings), the bash completion;
#  - the README's C example (examples/hello.c, the same text) built through
#    pkg-config against the installed library, run without ldconfig;
#  - the Python package installed with pip into a scratch directory;
#  - then, with the clone (source tree, .deps/, build tree) hidden, the
#    installed udr (put, get, sql), the example and the package still work,
#    and so do the prefix and the package moved elsewhere.
# The clone is hidden by mounting empty directories over it in a private
# mount namespace (root and unshare(1)); without them that step runs with
# the clone in place and says so, and the checks that every library
# resolves outside the clone (ldd, RUNPATH) remain.
# Usage: test_install.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/udr-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*"; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(ls -d "$prefix"/lib*/pkgconfig | head -1)
libdir=$(dirname "$pc")
for f in udr/udr.h udr/store.h udr/catalog.h udr/txn.h udr/log.h udr/sys/io.h; do
	test -f "$prefix/include/$f" || fail "missing header $f"
done
ls "$libdir/libudr.so" "$libdir/libudr.a" "$prefix/bin/udr" >/dev/null || fail "missing files"
query=0
if [ -e "$build/libudr_query.so" ]; then
	query=1
	test -f "$libdir/libduckdb.so" || fail "the query module is installed without libduckdb.so"
fi
ok "installed files (query module: $query)"

# Nothing installed may look for libraries in the clone.
for f in "$prefix/bin/udr" "$libdir"/lib*.so; do
	rp=$(readelf -d "$f" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')
	case "$rp" in
	*"$src"* | *"$build"*) fail "$f has a runpath into the clone: $rp" ;;
	esac
done
if ldd "$prefix/bin/udr" | grep -e "not found" -e "$src" -e "$build"; then
	fail "the installed udr resolves libraries in the clone or not at all"
fi
# DuckDB is loaded when SQL first runs (src/query/duck.c), never at start.
for f in "$prefix/bin/udr" "$libdir"/libudr*.so; do
	if readelf -d "$f" | grep 'NEEDED.*libduckdb'; then
		fail "$f links libduckdb.so (it must be loaded only when SQL runs)"
	fi
done
ok "runpaths and ldd of the installed udr"

# The manual pages: one per command plus udr.1, rendered without warnings.
man1=$prefix/share/man/man1
cmds=$("$prefix/bin/udr" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$cmds" ] || fail "no commands in udr --help"
for c in $cmds; do
	test -f "$man1/udr-$c.1" || fail "no manual page for udr $c"
done
test -f "$man1/udr.1" || fail "no udr.1"
if command -v man >/dev/null 2>&1; then
	render() { MANWIDTH=80 man --warnings -l "$1"; }
elif command -v groff >/dev/null 2>&1; then
	render() { groff -man -Tutf8 -ww "$1"; }
else
	fail "neither man nor groff to render the manual pages (scripts/setup.sh installs them)"
fi
for f in "$man1"/*.1; do
	out=$(LC_ALL=C.UTF-8 render "$f" 2>"$tmp/man.err") || fail "cannot render $f"
	[ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err"; fail "warnings rendering $f"; }
	printf '%s\n' "$out" | grep -q '^NAME' || fail "$f renders without NAME"
done
name=$(LC_ALL=C.UTF-8 render "$man1/udr-put.1" 2>/dev/null | sed -n '/^NAME/{n;p;}' | tr -s ' ')
[ "$name" = " udr-put - store a file, print its hash" ] || fail "udr-put.1 NAME: $name"
ok "manual pages ($(ls "$man1" | wc -l) pages)"

# The bash completion, as installed.
comp=$prefix/share/bash-completion/completions/udr
test -f "$comp" || fail "no bash completion installed"
bash "$src/tests/install/test_completion.sh" "$prefix/bin/udr" "$comp" "$tmp/completion" ||
	fail "bash completion"
ok "bash completion"

# The README's C example is examples/hello.c, word for word.
awk '/\(examples\/hello\.c\)/ && !f { f = 1; next }
     f && /^```c$/ { inside = 1; next }
     inside && /^```$/ { exit }
     inside { print }' "$src/README.md" > "$tmp/readme-hello.c"
cmp -s "$tmp/readme-hello.c" "$src/examples/hello.c" ||
	fail "README.md's C example differs from examples/hello.c"
# Built as the README says, against the installed library only.
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$src/examples/hello.c" \
	$(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs udr) -o "$tmp/hello"
got=$(ldd "$tmp/hello" | sed -n 's/^[[:space:]]*libudr\.so[^ ]* => \([^ ]*\) .*/\1/p')
[ -n "$got" ] && [ "$(readlink -f "$got")" = "$(readlink -f "$libdir/libudr.so.0")" ] ||
	fail "hello loads libudr from '$got', not from $libdir"
ok "README example built with pkg-config"

# The Python package, installed with pip from a copy of the sources (pip
# builds in the tree it is given) into a scratch directory.
PY=/usr/bin/python3
pyt=$tmp/python
mkdir "$tmp/src"
cp -R "$src/setup.py" "$src/pyproject.toml" "$src/README.md" "$src/CMakeLists.txt" \
	"$src/src" "$src/include" "$src/python" "$tmp/src/"
dd=$(sed -n 's/^UDR_DUCKDB_DIR:PATH=//p' "$build/CMakeCache.txt")
if [ "$query" = 1 ]; then
	export UDR_DUCKDB_DIR="$dd"
else
	export UDR_DUCKDB_DIR="$tmp/no-duckdb"
fi
# A Python without the wheel package (pyenv's python3 first on PATH): setup.py
# says what to do instead of "invalid command 'bdist_wheel'"; the README
# names the interpreter.
mkdir -p "$tmp/nowheel/wheel"
echo 'raise ImportError("no wheel here")' > "$tmp/nowheel/wheel/__init__.py"
if (cd "$tmp/src" && PYTHONPATH="$tmp/nowheel" PYTHONDONTWRITEBYTECODE=1 \
	"$PY" setup.py bdist_wheel) >"$tmp/nowheel.log" 2>&1; then
	fail "setup.py bdist_wheel without the wheel package succeeded"
fi
grep -q "needs the 'wheel' package" "$tmp/nowheel.log" &&
	grep -q "/usr/bin/python3 -m pip install" "$tmp/nowheel.log" ||
	{ cat "$tmp/nowheel.log"; fail "setup.py does not explain the missing wheel package"; }
if grep -E '^ *(sudo )?pip3? install' "$src/README.md"; then
	fail "README.md says a bare pip install (name the interpreter: /usr/bin/python3 -m pip)"
fi
ok "a missing wheel package is explained; the README names the interpreter"
if "$PY" -m pip --version >/dev/null 2>&1; then
	how="pip install --target"
	PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1 \
		"$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
		--target "$pyt" "$tmp/src" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; fail "pip install"; }
else
	how="setup.py build_ext (no pip for $PY)"
	(cd "$tmp/src" && PYTHONDONTWRITEBYTECODE=1 "$PY" setup.py -q build_py --build-lib "$pyt" \
		build_ext --build-lib "$pyt" --build-temp "$tmp/pybuild") >"$tmp/pip.log" 2>&1 ||
		{ cat "$tmp/pip.log"; fail "setup.py build"; }
fi
unset UDR_DUCKDB_DIR
rm -rf "$tmp/src" "$tmp/pybuild"
ext=$(ls "$pyt"/udr/_udr*.so)
if ldd "$ext" | grep -e "not found" -e "$src" -e "$build"; then
	fail "the installed extension resolves libraries in the clone or not at all"
fi
ok "Python package ($how)"

# What a user runs: udr put/get/sql, the example, the package.
# Usage: run.sh PREFIX PYTHON_DIR HELLO|- WORKDIR QUERY
cat > "$tmp/run.sh" <<'SH'
set -eu
udr=$1/bin/udr
work=$4
query=$5
unset LD_LIBRARY_PATH PYTHONPATH UDR_DUCKDB_LIBRARY
mkdir -p "$work"
"$udr" --store "$work/store" init >/dev/null
printf 'id,name\n1,ada\n2,grace\n' > "$work/users.csv"
h=$("$udr" --store "$work/store" put "$work/users.csv")
"$udr" --store "$work/store" get "$h" -o "$work/copy.csv"
cmp "$work/users.csv" "$work/copy.csv"
if [ "$query" = 1 ]; then
	"$udr" --store "$work/store" import users "$work/users.csv" >/dev/null
	n=$("$udr" --store "$work/store" sql "SELECT count(*) AS n FROM users" --csv | tr -d '\r' | tail -1)
	[ "$n" = 2 ] || { echo "udr sql counted $n rows"; exit 1; }
fi
if [ "$3" != - ]; then
	out=$("$3" "$work/hello-store")
	case $out in
	"greetings@1 = "*) ;;
	*) echo "hello printed: $out"; exit 1 ;;
	esac
fi
PYTHONPATH=$2 PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 - "$work/pystore" "$query" <<'PY'
import sys

import udr

with udr.open(sys.argv[1]) as db:
    h = db.store.put(b"hello")
    assert db.store.get_verified(h) == b"hello"
    if sys.argv[2] == "1":
        assert udr.HAVE_QUERY
        db.write("t", [{"id": 1}, {"id": 2}])
        assert db.sql("SELECT count(*) FROM t").fetchone() == (2,)
PY
SH

if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
	# An empty directory over the build tree, then over the source tree.
	unshare -m sh -eu -c '
		for d in "$1" "$2"; do
			[ -d "$d" ] && mount -t tmpfs -o size=1m,mode=0755 udr-hidden "$d"
		done
		[ -z "$(ls -A "$2")" ] || { echo "the clone is not hidden"; exit 1; }
		shift 2
		sh "$@"' sh "$build" "$src" "$tmp/run.sh" "$prefix" "$pyt" "$tmp/hello" "$tmp/w1" "$query" ||
		fail "installed programs with the clone hidden"
	ok "udr put/get/sql, the example and the package with the clone hidden"
else
	sh "$tmp/run.sh" "$prefix" "$pyt" "$tmp/hello" "$tmp/w1" "$query" ||
		fail "installed programs"
	ok "udr put/get/sql, the example and the package (the clone not hidden: needs root and unshare)"
fi

# Moved elsewhere, the prefix and the package still work ($ORIGIN runpaths).
mv "$prefix" "$tmp/moved-prefix"
mv "$pyt" "$tmp/moved-python"
sh "$tmp/run.sh" "$tmp/moved-prefix" "$tmp/moved-python" - "$tmp/w2" "$query" ||
	fail "the prefix and the package moved elsewhere"
ok "the prefix and the package moved elsewhere"

echo "$passed passed, 0 failed"
