"""Unchaining decided group by group (GC.md 3.3): a chain whose dying part
is long is unchained, one whose dying part is a single base the size of
what unchaining would write keeps it, in the same run.  One store-wide
decision unchained both or neither."""
import json
import random

import pytest

from conftest import FAULT_INJECTION

from test_gc_unchain_review import read_version



def commit(udr, tmp_path, table, data):
    f = tmp_path / "in"
    f.write_bytes(data)
    udr.ok("commit", table, "--next", "--file", f)


# UDR_GC_UNCHAIN_BYTES (test builds): full copies made one by one, the
# sample's made again for the write; the outcome must not change
BATCHES = [None] + ([1, 100_000] if FAULT_INJECTION else [])


@pytest.mark.parametrize("batch", BATCHES)
def test_a_long_dying_chain_unchains_and_a_short_one_keeps_its_base(udr, tmp_path, batch):
    env = {"UDR_GC_UNCHAIN_BYTES": str(batch)} if batch else None
    rng = random.Random(11)
    # "long": 12 versions of a CSV table changing 5% of its rows each:
    # keeping the last, its pieces are deltas on 11 dying levels
    rows = ["%d,%s,%d" % (i, rng.choice(["ab", "cd", "ef"]) * 3, rng.randrange(10**6)) for i in range(80000)]
    for v in range(12):
        for _ in range(len(rows) // 20):
            rows[rng.randrange(len(rows))] = "%d,xx,%d" % (rng.randrange(10**6), rng.randrange(10**6))
        commit(udr, tmp_path, "long", "\n".join(rows).encode())
    want_long = "\n".join(rows).encode()
    # "short": 2 versions of 3 MB of compressible bytes, the second with one
    # byte in 8 KiB changed: each kept piece is a small delta on one dying
    # base as big as its own full copy (unchaining saves nothing); bigger
    # than "long", so a store-wide sum would decline both
    words = [b"%06d," % rng.randrange(10**6) for _ in range(430_000)]
    data = bytearray(b"".join(words)[:3_000_000])
    commit(udr, tmp_path, "short", bytes(data))
    for i in range(0, len(data), 8192):
        data[i] = ord("x")
    commit(udr, tmp_path, "short", bytes(data))
    dry = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--dry-run", "--json", env=env).out)
    rep = json.loads(udr.ok("gc", "--keep-last", "1", "--grace", "0s", "--json", env=env).out)
    assert rep["written"]["unchained"] > 0 and rep["written"]["unchained"] == dry["written"]["unchained"], rep
    # the short chain's bases stay, the long chain's went
    assert rep["mark"]["base_only"] > 0, rep["mark"]
    again = json.loads(udr.ok("gc", "--grace", "0s", "--dry-run", "--json").out)
    assert again["written"]["unchained"] == 0 and again["removed"]["objects"] == 0, again
    assert again["mark"]["base_only"] == rep["mark"]["base_only"], (again["mark"], rep["mark"])
    # the same decision and result whatever the batches (what this seeded
    # data gives: long's 10 pieces unchained, short's 21 bases kept)
    assert (rep["written"]["unchained"], rep["mark"]["base_only"]) == (10, 21), rep
    assert read_version(udr, tmp_path, "long", 12) == want_long
    assert read_version(udr, tmp_path, "short", 2) == bytes(data)
    udr.ok("fsck")
