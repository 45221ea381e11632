"""Shared fixtures of the udr Python binding tests (run by scripts/test-python.sh)."""

import os

import pytest

import udr


def rss_kib(field="VmRSS"):
    """A field of /proc/self/status in KiB (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not found")


@pytest.fixture
def store(tmp_path):
    s = udr.ChunkStore(str(tmp_path / "chunks"))
    yield s
    s.close()


@pytest.fixture
def catalog(tmp_path, store):
    c = udr.Catalog(str(tmp_path / "catalog"), store=store)
    yield c
    c.close()


@pytest.fixture
def db(tmp_path):
    with udr.open(str(tmp_path / "root")) as d:
        yield d


def chunk_file(store_path, hash_hex):
    """The file holding a chunk (the layout is the library's business: search)."""
    for root, _dirs, files in os.walk(store_path):
        for name in files:
            if name.startswith(hash_hex):
                return os.path.join(root, name)
    raise AssertionError("chunk file of %s not found" % hash_hex)
