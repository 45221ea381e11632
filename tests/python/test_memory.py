"""Memory: streaming keeps RSS bounded, no reference leaks, buffers are not
copied by the bindings."""

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc

import udr
from conftest import rss_kib

STREAM_SCRIPT = textwrap.dedent(r"""
    import os, sys
    import udr

    def kib(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])

    work = sys.argv[1]
    src, dst = os.path.join(work, "big.bin"), os.path.join(work, "big.out")
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(1024):          # 1 GiB, real blocks (not sparse)
            f.write(block)
    store = udr.ChunkStore(os.path.join(work, "chunks"))
    del block
    base = kib("VmRSS")
    h = store.put_file(src)
    after_put = kib("VmHWM")
    store.get_file(h, dst, verify=True)
    after_get = kib("VmHWM")
    assert os.path.getsize(dst) == 1 << 30
    assert udr.hash_file(dst) == h
    assert store.size(h) == 1 << 30
    print(base, after_put, after_get)
""")


def test_one_gib_put_file_get_file_bounded_rss(tmp_path):
    # A fresh interpreter, so that the peak (VmHWM) reflects this work only.
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    base, after_put, after_get = map(int, r.stdout.split())
    print("RSS base %d KiB, peak after put_file %d KiB, after get_file %d KiB"
          % (base, after_put, after_get))
    assert after_put - base < 64 * 1024
    assert after_get - base < 64 * 1024


def test_no_leak_in_100k_calls(catalog, store):
    payload = b"refcount " * 100
    h = store.put(payload)
    catalog.commit(udr.TableVersion("leak", 1, [h], message="m", metadata={"k": "v"}))

    def loop(n):
        for i in range(n):
            r = i % 3
            if r == 0:
                assert store.put(payload) == h
            elif r == 1:
                assert len(store.get(h)) == len(payload)
            else:
                assert catalog.get_version("leak", 1).version == 1

    def errors(n):
        for _ in range(n):
            try:
                store.get("f" * 64)
            except udr.NotFoundError:
                pass
            try:
                udr.TableVersion("bad name", 1, [])
            except udr.InvalidArgumentError:
                pass

    loop(3000)  # warm-up: caches, allocator arenas
    errors(1000)
    gc.collect()
    before = rss_kib()
    loop(100_000)
    errors(20_000)
    gc.collect()
    growth = rss_kib() - before
    print("RSS growth over 100,000 calls: %d KiB" % growth)
    assert growth < 4 * 1024


def test_put_does_not_copy_buffers(store):
    big = bytearray(os.urandom(32 << 20))
    view = memoryview(big)
    tracemalloc.start()
    try:
        h1 = store.put(big)
        h2 = store.put(view)
        h3 = store.put(view[1:])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A copy of the buffer through Python's allocator would show 32 MiB.
    assert peak < 1 << 20, "peak traced allocation %d bytes" % peak
    assert h1 == h2 == udr.hash(big)
    assert h3 == udr.hash(bytes(big[1:]))


def test_buffer_export_released_after_put(store):
    """put releases the buffer it borrowed, on success and on failure."""
    ba = bytearray(b"resizable")
    mv = memoryview(ba)
    store.put(mv)
    mv.release()  # BufferError if put had leaked its export of mv
    ba.extend(b" still")  # BufferError if an export of ba were leaked
    mv = memoryview(ba)
    store.close()
    try:
        store.put(mv)  # fails: closed
    except udr.Error:
        pass
    mv.release()
    ba.extend(b"!")
