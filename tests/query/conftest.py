"""Fixtures for the query module's end-to-end tests: run the udrq driver
(tests/query/udrq.c, built with the query module) against a scratch store."""
import os
import subprocess

import pytest


def _bin():
    b = os.environ.get("UDRQ_BIN")
    if not b:
        build = os.environ.get("UDR_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build-query"))
        b = os.path.join(build, "udrq")
    return b


class Udrq:
    def __init__(self, root):
        self.root = str(root)
        self.bin = _bin()

    def run(self, *args, check=True):
        p = subprocess.run([self.bin, self.root, *[str(a) for a in args]],
                           capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"udrq {args} failed ({p.returncode}): {p.stderr}")
        return p


@pytest.fixture
def udrq(tmp_path):
    if not os.path.exists(_bin()):
        pytest.skip("udrq not built (the query module needs DuckDB: scripts/fetch-duckdb.sh)")
    return Udrq(tmp_path / "root")
