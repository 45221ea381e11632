#!/bin/sh
# The pytest suites clean up after themselves: every ctest target that runs
# pytest goes through scripts/run-pytest.sh (temporary directories in the
# build tree, removed after the run, nothing in /tmp/pytest-of-$USER), and
# run-pytest.sh does so, passing pytest's exit status on.
# Usage: test_pytest_tmp.sh BUILD_DIR PYTHON
set -eu
build=$(cd "$1" && pwd)
py=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
run=$src/scripts/run-pytest.sh
tmp=$(mktemp -d /tmp/udr-pytest-tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL - $*"; exit 1; }

# 1. Every ctest command that runs pytest (or the python suite's script) uses run-pytest.sh with a directory inside the build tree.
(cd "$build" && ctest --show-only=json-v1) > "$tmp/tests.json"
"$py" - "$tmp/tests.json" "$build" "$src" <<'PY' || fail "a pytest target bypasses run-pytest.sh"
import json, os, sys
tests = json.load(open(sys.argv[1]))["tests"]
build, src = sys.argv[2], sys.argv[3]
bad, n = [], 0
for t in tests:
    cmd = t.get("command") or []
    line = " ".join(cmd)
    if any(a == "pytest" or a.endswith("/pytest") or a.endswith("run-pytest.sh") for a in cmd):
        n += 1
        i = next((i for i, a in enumerate(cmd) if a.endswith("scripts/run-pytest.sh")), None)
        if i is None or not cmd[i + 1].startswith(build + "/"):
            bad.append((t["name"], line))
    elif "test-python.sh" in line:
        n += 1
        script = open(os.path.join(src, "scripts", "test-python.sh")).read()
        if "run-pytest.sh" not in script or not cmd[-1].startswith(build + "/"):
            bad.append((t["name"], line))
for name, line in bad:
    print("ctest %s: %s" % (name, line))
print("%d pytest targets checked" % n)
sys.exit(1 if bad or n == 0 else 0)
PY

# 2. run-pytest.sh: tmp_path under WORKDIR, WORKDIR removed, status kept.
mkdir "$tmp/suite"
cat > "$tmp/suite/test_tmp.py" <<'PY'
import os


def test_tmp_path_is_under_workdir(tmp_path):
    assert str(tmp_path).startswith(os.environ["WANT_BASE"] + "/"), tmp_path
    (tmp_path / "big").write_bytes(b"x" * 4096)
    os.chmod(tmp_path, 0o500)     # a directory the run must still remove


def test_maybe_fail():
    assert os.environ.get("MAKE_IT_FAIL") != "1"
PY
WANT_BASE=$tmp/work/base sh "$run" "$tmp/work" "$py" -q "$tmp/suite" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "a passing run failed"; }
[ ! -e "$tmp/work" ] || fail "WORKDIR left after a passing run"
rc=0
MAKE_IT_FAIL=1 WANT_BASE=$tmp/work/base sh "$run" "$tmp/work" "$py" -q "$tmp/suite" \
	>"$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/out"; fail "a failing run exited $rc, not 1"; }
[ ! -e "$tmp/work" ] || fail "WORKDIR left after a failing run"
UDR_KEEP_TEST_TMP=1 WANT_BASE=$tmp/work/base sh "$run" "$tmp/work" "$py" -q "$tmp/suite" \
	>"$tmp/out" 2>&1 || fail "a kept run failed"
[ -d "$tmp/work/base" ] || fail "UDR_KEEP_TEST_TMP=1 did not keep WORKDIR"
echo "1 passed, 0 failed"
