#!/usr/bin/python3
"""Seeded data generators for the UDR benchmarks (bench/bench_*.sh).

Same arguments, same bytes (on the same Python version): every peer in a
benchmark run ingests exactly the same files.

    gen_data.py random   OUT --size BYTES [--seed S]
    gen_data.py mixed    OUT --size BYTES [--seed S] [--segment BYTES]
        alternating segments (default 4 MiB) of random bytes and CSV text
        with unique rows: about half incompressible, half compressible
    gen_data.py edit     IN OUT [--edits 100] [--seed S]
        IN with scattered small edits: half inserts, half overwrites of
        1..16 bytes at random offsets
    gen_data.py table    OUTDIR --size BYTES [--versions 20] [--change 0.01]
                         [--append 0.01] [--seed S] [--linear] [--window K]
        OUTDIR/v01.csv ...: a CSV table of about BYTES; each version
        rewrites a random --change fraction of the rows (same ids, new
        values) and appends an --append fraction of new rows; fractions
        of the current table, or of the first version's with --linear
        (so that 1,000 versions grow 11x, not 21,000x). --window K streams:
        version v is written only once at most K-1 of the files written
        before it are still there (the caller deletes each file once it
        has consumed it, so a long series never fills the disk), and each
        path is printed as soon as it is complete
    gen_data.py grouped  OUTDIR [--groups 200] [--history 100]
                         [--versions 100] [--seed S]
        OUTDIR/v001.csv ...: a daily table sorted by group then date;
        version k holds --history + k days of every group, so each version
        inserts one row into every group (200 scattered inserts)

Prints the files written, one per line.
"""

import argparse
import datetime
import os
import random
import sys
import time

FIRST = ("Ada Alan Barbara Claude Donald Edsger Frances Grace Hedy Ivan John Ken Leslie Linus Margaret Niklaus "
         "Ole Radia Robin Shafi Sophie Tim Tony Ward Yukihiro Zhang Anita Bjarne Carl Dennis Erna Fran").split()
LAST = ("Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Lamarr Sutherland McCarthy Thompson Lamport "
        "Torvalds Hamilton Wirth Dahl Perlman Milner Goldwasser Wilson Berners-Lee Hoare Cunningham Matsumoto "
        "Borg Stroustrup Ritchie Kernighan Pike Cerf Kahn").split()
CITIES = ("Amsterdam Berlin Cairo Dublin Edinburgh Florence Geneva Helsinki Istanbul Jakarta Kyoto Lisbon Madrid "
          "Nairobi Oslo Paris Quito Rome Seoul Tokyo Utrecht Vienna Warsaw Xiamen York Zurich Lagos Lima Perth "
          "Toronto Austin Denver").split()
PRODUCTS = ["%s-%s" % (a, b) for a in ("widget gadget sprocket flange gizmo doohickey bracket valve spring gear"
                                        .split())
            for b in ("alpha beta gamma delta omega mini maxi pro lite plus".split())]
STATUS = ("shipped", "pending", "cancelled", "returned", "delivered")
WORDS = ("the quick brown fox jumps over lazy dog data store version table chunk hash delta compress "
         "commit durable fast small large order customer invoice payment refund note urgent priority "
         "standard express warehouse north south east west").split()


class Rows:
    """Unique CSV rows (about 100 bytes each) from a seeded generator."""

    header = "id,date,first_name,last_name,city,product,qty,price,status,comment"

    def __init__(self, rng):
        self.r = rng
        d0 = datetime.date(2015, 1, 1)
        self.dates = [(d0 + datetime.timedelta(days=i)).isoformat() for i in range(3650)]
        self.qty = [str(i) for i in range(1, 100)]
        self.price = ["%d.%02d" % (i // 100, i % 100) for i in range(99, 500000, 37)]
        self.comments = [" ".join(rng.choices(WORDS, k=rng.randint(2, 7))) for _ in range(5000)]

    def make(self, ids):
        r, n = self.r, len(ids)
        cols = (map(str, ids), r.choices(self.dates, k=n), r.choices(FIRST, k=n), r.choices(LAST, k=n),
                r.choices(CITIES, k=n), r.choices(PRODUCTS, k=n), r.choices(self.qty, k=n),
                r.choices(self.price, k=n), r.choices(STATUS, k=n), r.choices(self.comments, k=n))
        return list(map(",".join, zip(*cols)))


def write_random(out, size, rng):
    left = size
    while left:
        n = min(left, 4 << 20)
        out.write(rng.randbytes(n))
        left -= n


def gen_random(a):
    rng = random.Random(a.seed)
    with open(a.out, "wb") as f:
        write_random(f, a.size, rng)
    print(a.out)


def gen_mixed(a):
    rng = random.Random(a.seed)
    rows = Rows(random.Random(a.seed + 1))
    next_id, left, seg = 1, a.size, a.segment
    with open(a.out, "wb") as f:
        k = 0
        while left:
            n = min(left, seg)
            if k % 2 == 0:
                write_random(f, n, rng)
            else:
                parts, have = [], 0
                while have < n:
                    batch = rows.make(range(next_id, next_id + 20000))
                    next_id += 20000
                    text = ("\n".join(batch) + "\n").encode()
                    parts.append(text)
                    have += len(text)
                f.write(b"".join(parts)[:n])
            left -= n
            k += 1
    print(a.out)


def gen_edit(a):
    rng = random.Random(a.seed)
    with open(a.inp, "rb") as f:
        data = f.read()
    offs = sorted(rng.randrange(len(data)) for _ in range(a.edits))
    with open(a.out, "wb") as f:
        pos = 0
        for i, off in enumerate(offs):
            f.write(data[pos:off])
            n = rng.randint(1, 16)
            f.write(rng.randbytes(n))
            pos = off if i % 2 == 0 else min(off + n, len(data))  # even: insert, odd: overwrite
        f.write(data[pos:])
    print(a.out)


def gen_table(a):
    rng = random.Random(a.seed)
    rows = Rows(random.Random(a.seed + 1))
    n = max(100, a.size // 100)
    table = rows.make(range(1, n + 1))
    next_id = n + 1
    os.makedirs(a.outdir, exist_ok=True)
    width = len(str(a.versions))
    written = []
    for v in range(1, a.versions + 1):
        if v > 1:
            base = n if a.linear else len(table)
            k = max(1, int(base * a.change))
            idx = rng.sample(range(len(table)), k)
            new = rows.make([int(table[i].split(",", 1)[0]) for i in idx])
            for i, row in zip(idx, new):
                table[i] = row
            k = max(1, int(base * a.append))
            table.extend(rows.make(range(next_id, next_id + k)))
            next_id += k
        if a.window:
            while sum(os.path.exists(w) for w in written[-a.window:]) >= a.window:
                time.sleep(0.01)
        path = os.path.join(a.outdir, "v%0*d.csv" % (width, v))
        with open(path + ".tmp", "w") as f:
            f.write(Rows.header + "\n")
            f.write("\n".join(table))
            f.write("\n")
        os.rename(path + ".tmp", path)
        written.append(path)
        print(path, flush=True)


def gen_grouped(a):
    rng = random.Random(a.seed)
    d0 = datetime.date(2020, 1, 1)
    days = a.history + a.versions
    dates = [(d0 + datetime.timedelta(days=i)).isoformat() for i in range(days)]
    groups = []
    for g in range(a.groups):
        name = "grp-%04d-%s" % (g, rng.choice(CITIES).lower())
        price = rng.uniform(10, 500)
        sector = rng.choice(PRODUCTS)
        rows = []
        for d in range(days):
            price *= 1 + rng.gauss(0, 0.02)
            lo, hi = price * (1 - rng.random() * 0.03), price * (1 + rng.random() * 0.03)
            close = price * (1 + rng.gauss(0, 0.01))
            rows.append("%s,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%d,%s" % (
                name, dates[d], sector, price, hi, lo, close, (hi + lo + close) / 3, rng.randrange(1000, 10 ** 7),
                rng.randrange(10, 50000), rng.choice(STATUS)))
        groups.append(rows)
    os.makedirs(a.outdir, exist_ok=True)
    width = len(str(a.versions))
    for v in range(1, a.versions + 1):
        path = os.path.join(a.outdir, "v%0*d.csv" % (width, v))
        n = a.history + v
        with open(path, "w") as f:
            f.write("group,date,sector,open,high,low,close,vwap,volume,trades,status\n")
            for rows in groups:
                f.write("\n".join(rows[:n]))
                f.write("\n")
        print(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("random")
    s.add_argument("out")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(fn=gen_random)
    s = sub.add_parser("mixed")
    s.add_argument("out")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--segment", type=int, default=4 << 20)
    s.set_defaults(fn=gen_mixed)
    s = sub.add_parser("edit")
    s.add_argument("inp")
    s.add_argument("out")
    s.add_argument("--edits", type=int, default=100)
    s.add_argument("--seed", type=int, default=2)
    s.set_defaults(fn=gen_edit)
    s = sub.add_parser("table")
    s.add_argument("outdir")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--versions", type=int, default=20)
    s.add_argument("--change", type=float, default=0.01)
    s.add_argument("--append", type=float, default=0.01)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--linear", action="store_true")
    s.add_argument("--window", type=int, default=0)
    s.set_defaults(fn=gen_table)
    s = sub.add_parser("grouped")
    s.add_argument("outdir")
    s.add_argument("--groups", type=int, default=200)
    s.add_argument("--history", type=int, default=100)
    s.add_argument("--versions", type=int, default=100)
    s.add_argument("--seed", type=int, default=4)
    s.set_defaults(fn=gen_grouped)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
