"""Hashes are BLAKE3-256 as computed by the reference b3sum tool."""

import os
import shutil
import subprocess

import pytest

import udr

B3SUM = shutil.which("b3sum")

SIZES = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4096, 65536, 65537, 1 << 20, 3 * (1 << 20) + 7]


def b3sum(path):
    out = subprocess.run([B3SUM, "--no-names", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return out.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("b3")
    result = []
    for n in SIZES:
        p = d / ("f%d" % n)
        p.write_bytes(os.urandom(n))
        result.append(p)
    return result


def test_b3sum_available():
    assert B3SUM, "b3sum is required for the cross-implementation check"


def test_put_equals_b3sum(store, files):
    for p in files:
        data = p.read_bytes()
        expect = b3sum(p)
        assert len(expect) == 64
        assert store.put(data) == expect, p.name
        assert store.put_file(str(p)) == expect, p.name
        assert udr.hash(data) == expect
        assert udr.hash_file(str(p)) == expect
        assert store.get_verified(expect) == data


def test_known_answer():
    # b3sum of the empty input and of "abc" (BLAKE3 reference test vectors).
    assert udr.hash(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert udr.hash(b"abc") == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
