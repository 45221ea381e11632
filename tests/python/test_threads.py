"""Threads: concurrent commit_next accounts for every version; the GIL is
released during hashing and I/O so threads run in parallel."""

import os
import threading
import time

import udr


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def check_commit_next(store, catalog, nthreads=8, per_thread=25):
    results = {}
    lock = threading.Lock()

    def work(t):
        for i in range(per_thread):
            data = ("thread %d item %d " % (t, i)).encode() * 50
            h = store.put(data)
            v = udr.TableVersion("shared", 0, [h], message="%d/%d" % (t, i))
            n = catalog.commit_next(v)
            assert v.version == n
            with lock:
                assert n not in results
                results[n] = (h, "%d/%d" % (t, i))

    run_threads(nthreads, work)
    total = nthreads * per_thread
    assert sorted(results) == list(range(1, total + 1))
    assert catalog.list_versions("shared") == list(range(1, total + 1))
    for n, (h, msg) in results.items():
        v = catalog.get_version("shared", n)
        assert v.chunk_hashes == [h] and v.message == msg
        assert v.parent_version == (n - 1 if n > 1 else None)


def test_eight_threads_commit_next(store, catalog):
    check_commit_next(store, catalog)


def test_eight_threads_commit_next_database(db):
    check_commit_next(db.store, db.catalog)


def test_commit_with_conflicts_from_threads(store, catalog):
    """Threads racing with explicit numbers: each number wins exactly once."""
    h = store.put(b"race")
    wins = []
    lock = threading.Lock()

    def work(t):
        for n in range(1, 21):
            try:
                catalog.commit(udr.TableVersion("race", n, [h], message=str(t)))
            except udr.ConflictError:
                continue
            with lock:
                wins.append(n)

    run_threads(8, work)
    assert sorted(wins) == list(range(1, 21))


def _put_all(store, chunks, nthreads):
    def work(t):
        for c in chunks[t::nthreads]:
            store.put(c)

    start = time.perf_counter()
    run_threads(nthreads, work)
    return time.perf_counter() - start


def test_gil_released_parallel_puts(tmp_path):
    """4 threads putting 64 KiB chunks beat 1 thread (2-core machine)."""
    n = 1200
    block = os.urandom(64 * 1024)
    chunks1 = [i.to_bytes(8, "little") + block[8:] for i in range(n)]
    chunks4 = [(i + n).to_bytes(8, "little") + block[8:] for i in range(n)]
    best1 = best4 = None
    # Alternate the two so that disk-cache state does not favour either side.
    for rnd in range(2):
        s1 = udr.ChunkStore(str(tmp_path / ("one%d" % rnd)))
        s4 = udr.ChunkStore(str(tmp_path / ("four%d" % rnd)))
        t1 = _put_all(s1, chunks1, 1)
        t4 = _put_all(s4, chunks4, 4)
        best1 = t1 if best1 is None else min(best1, t1)
        best4 = t4 if best4 is None else min(best4, t4)
        s1.close()
        s4.close()
    ratio = best1 / best4
    print("GIL ratio: 1 thread %.3fs, 4 threads %.3fs, speed-up %.2fx" % (best1, best4, ratio))
    assert ratio > 1.2, "4 threads only %.2fx faster than 1" % ratio


def test_gil_released_during_hashing():
    """While another thread hashes a large buffer, this thread keeps running:
    its longest stall is far shorter than one hash call (with the GIL held,
    it would stall for the whole call)."""
    data = os.urandom(256 << 20)
    t0 = time.perf_counter()
    udr.hash(data)
    one_call = time.perf_counter() - t0
    done = threading.Event()

    def hasher():
        for _ in range(4):
            udr.hash(data)
        done.set()

    t = threading.Thread(target=hasher)
    t.start()
    last = time.perf_counter()
    max_gap = 0.0
    spins = 0
    while not done.is_set():
        now = time.perf_counter()
        max_gap = max(max_gap, now - last)
        last = now
        spins += 1
    t.join()
    print("hash call %.1f ms, longest stall of the other thread %.1f ms, %d spins"
          % (one_call * 1e3, max_gap * 1e3, spins))
    assert max_gap < one_call / 2
