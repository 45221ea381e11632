"""The locked mark seeded with the unlocked mark's delta headers (GC.md 4.7,
"Built (stop 43)") while writers commit, put and repack between the two
marks.  UDR_GC_SEED_CHECK=1 (a test build) marks once more without the
seed under the same locks and fails the run unless both marks agree copy
by copy (flags, kept copies, per-pack bytes)."""
import json
import random
import subprocess
import time

import pytest

from conftest import FAULT_INJECTION, UDR_BIN, base_env
from test_gc_unchain_review import read_version
from test_review_r7 import table_versions

needs_faults = pytest.mark.skipif(not FAULT_INJECTION, reason="UDR_PAUSE and UDR_GC_SEED_CHECK need a test build")


def init(udr, depth):
    udr.root = udr.root.parent / ("s%d" % depth)
    udr.ok("init", "--chunk-min", "2K", "--chunk-avg", "4K", "--chunk-max", "16K", "--delta-depth", str(depth))


def commit(udr, tmp_path, table, data):
    f = tmp_path / "in"
    f.write_bytes(data)
    udr.ok("commit", table, "--next", "--file", f)


def pack_names(udr):
    return {p.stem for p in (udr.root / "chunks" / "packs").glob("*.pack")}


def gc_between_marks(udr, tmp_path, args, during, unchain):
    """`udr gc ARGS --json`, checked against a full mark, paused between its
    unlocked and locked marks while during() runs; its report."""
    pause = tmp_path / "pause"
    pause.mkdir(exist_ok=True)
    for f in pause.iterdir():
        f.unlink()
    env = {"UDR_PAUSE": "gc-seeded:%s" % pause, "UDR_GC_SEED_CHECK": "1"}
    if unchain:
        env["UDR_GC_UNCHAIN"] = "always"
    p = subprocess.Popen([UDR_BIN, "--store", str(udr.root), "gc", *args, "--json"], env=base_env(env),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t = time.monotonic() + 120
        while not (pause / "gc-seeded.reached").exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < t
            time.sleep(0.01)
        during()
    finally:
        (pause / "gc-seeded.go").touch()
        out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return json.loads(out)


@needs_faults
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_seeded_mark_equals_a_full_mark_with_writers_between_the_marks(udr, tmp_path, seed):
    """Tables of delta chains; each gc run (unchaining forced half the time,
    --keep-last or not, grace 0s or 1h) pauses after its unlocked mark and
    unchaining, while writers commit new versions (deltas on pieces of the
    seed's packs), put pieces of every size (geometric repacks merge packs
    the seed listed) and put again what gc may have collected.  Every run
    succeeds with the full mark's cross-check, some copies come from the
    seed, and every kept version reads back; fsck is clean."""
    rng = random.Random(seed)
    init(udr, rng.choice([3, 8, 50]))
    tables = {t: table_versions(14, seed=seed * 10 + k) for k, t in enumerate("abc")}
    made = {t: 0 for t in tables}

    def write_some(n):
        for _ in range(n):
            t = rng.choice(sorted(tables))
            if made[t] < len(tables[t]):
                commit(udr, tmp_path, t, tables[t][made[t]])
                made[t] += 1

    write_some(12)
    seeded = 0
    merged = 0
    for rnd in range(6):
        args = ["--grace", rng.choice(["0s", "1h"])]
        if rng.random() < 0.6:
            args += ["--keep-last", str(rng.randint(1, 3))]

        def during():
            nonlocal merged
            before = pack_names(udr)
            write_some(rng.randint(1, 4))
            if rnd % 2 == 0:
                return  # commits only: the seed's packs stay
            for size in rng.sample([20_000, 40_000, 80_000, 160_000, 30_000, 60_000, 10_000], 4):
                g = tmp_path / "w"
                g.write_bytes(rng.randbytes(size))
                udr.ok("put", g)
            merged += len(before - pack_names(udr))

        rep = gc_between_marks(udr, tmp_path, args, during, rng.random() < 0.5)
        seeded += rep["mark"]["seeded"]
        for t in tables:
            if made[t]:
                assert read_version(udr, tmp_path, t, made[t]) == tables[t][made[t] - 1], (t, made[t], rnd)
    assert seeded > 0
    assert merged > 0  # some pack the seed listed was repacked away under it
    r = udr("fsck")
    assert r.code == 0, r
