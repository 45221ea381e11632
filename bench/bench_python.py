#!/usr/bin/env python3
"""Python bindings vs the C API: put then get N chunks of 64 KiB.

Builds (into build-py/bench, not the source tree) the C peer
bench/bench_c_putget.c against the library sources, then alternates C and
Python runs on fresh stores with identical data and prints throughputs and
the Python/C ratio (goal: >= 0.9).  Not a test: it never fails on the ratio.

    python3 bench/bench_python.py [--chunks 10000] [--size 65536] [--rounds 2]
                                  [--get-reps 5]

`udr` must be importable: install it (pip install --no-build-isolation .),
or build it with scripts/test-python.sh and set PYTHONPATH=<OUTDIR>/lib;
by default the script builds it itself into build-py/bench/lib.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blake3_dir():
    d = os.environ.get("UDR_BLAKE3_DIR")
    if d:
        return d
    found = sorted(glob.glob("/usr/share/cargo/registry/blake3-*/c"), reverse=True)
    if not found:
        sys.exit("BLAKE3 C sources not found (librust-blake3-dev)")
    return found[0]


def link_flags():
    """The libraries libudr links: CMakeLists.txt's pkg_check_modules, via
    pkg-config (as setup.py does)."""
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    flags = []
    for m in re.finditer(r"pkg_check_modules\(\s*\w+([^)]*)\)", text):
        for mod in m.group(1).split():
            if mod.isupper():
                continue  # REQUIRED, IMPORTED_TARGET, ...
            flags += subprocess.run(["pkg-config", "--libs", mod], check=True,
                                    capture_output=True, text=True).stdout.split()
    return flags + ["-lpthread"]


def build_c_peer(outdir):
    exe = os.path.join(outdir, "bench_c_putget")
    b3 = blake3_dir()
    srcs = [os.path.join(ROOT, "bench", "bench_c_putget.c")]
    lib = sorted(glob.glob(os.path.join(ROOT, "src", "*", "*.c")))
    # The optional query module needs DuckDB (scripts/fetch-duckdb.sh), as in setup.py.
    dd = os.environ.get("UDR_DUCKDB_DIR") or os.path.join(ROOT, ".deps", "duckdb")
    extra = []
    if os.path.exists(os.path.join(dd, "include", "duckdb.h")) and os.path.exists(
            os.path.join(dd, "lib", "libduckdb.so")):
        extra = ["-isystem", os.path.join(dd, "include"), "-L" + os.path.join(dd, "lib"),
                 "-lduckdb", "-Wl,-rpath," + os.path.join(dd, "lib")]
    else:
        lib = [f for f in lib if os.path.basename(os.path.dirname(f)) != "query"]
    srcs += lib
    b3srcs = [os.path.join(b3, n) for n in ("blake3.c", "blake3_dispatch.c", "blake3_portable.c",
                                           "blake3_sse2_x86-64_unix.S",
                                           "blake3_sse41_x86-64_unix.S",
                                           "blake3_avx2_x86-64_unix.S",
                                           "blake3_avx512_x86-64_unix.S")]
    deps = srcs + b3srcs + glob.glob(os.path.join(ROOT, "src", "*", "*.h")) + glob.glob(
        os.path.join(ROOT, "include", "udr", "**", "*.h"), recursive=True)
    if os.path.exists(exe) and os.path.getmtime(exe) >= max(map(os.path.getmtime, deps)):
        return exe
    os.makedirs(outdir, exist_ok=True)
    # Same optimisation level as the extension (Python's default -O2).
    cmd = ["cc", "-O2", "-g", "-D_GNU_SOURCE", '-DUDR_VERSION_STRING="bench"',
           "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"), "-I" + b3,
           "-o", exe, *srcs, *b3srcs, *extra, *link_flags()]
    print("building C peer:", os.path.relpath(exe, ROOT), flush=True)
    subprocess.run(cmd, check=True)
    return exe


def import_udr(outdir):
    try:
        import udr  # noqa: F401
        return udr
    except ImportError:
        pass
    lib = os.path.join(outdir, "lib")
    print("building the extension into", os.path.relpath(lib, ROOT), flush=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", lib,
                    "build_ext", "--build-lib", lib, "--build-temp",
                    os.path.join(outdir, "tmp")], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    sys.path.insert(0, lib)
    import udr
    return udr


def run_python(udr, store_dir, n, block, reps):
    store = udr.ChunkStore(store_dir)
    buf = bytearray(block)
    hashes = []
    put = store.put
    t0 = time.perf_counter()
    for i in range(n):
        buf[0:8] = i.to_bytes(8, "little")
        hashes.append(put(buf))
    t_put = time.perf_counter() - t0
    get = store.get
    size = len(block)
    t_get = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for h in hashes:
            if len(get(h)) != size:
                raise SystemExit("wrong length")
        t_get = min(t_get, time.perf_counter() - t0)
    store.close()
    return t_put, t_get


def run_c(exe, store_dir, n, seed_file, size, reps):
    out = subprocess.run([exe, store_dir, str(n), str(size), seed_file, str(reps)], check=True,
                         capture_output=True, text=True).stdout
    t_put, t_get = map(float, out.split())
    return t_put, t_get


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=64 * 1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--get-reps", type=int, default=5,
                    help="times the get phase is repeated per round (best kept)")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()

    outdir = os.path.join(ROOT, "build-py", "bench")
    exe = build_c_peer(outdir)
    udr = import_udr(outdir)

    work = tempfile.mkdtemp(prefix="udr-bench-", dir=args.dir)
    try:
        block = os.urandom(args.size)
        seed = os.path.join(work, "seed")
        with open(seed, "wb") as f:
            f.write(block)
        best = {"c": [float("inf")] * 2, "py": [float("inf")] * 2}
        for r in range(args.rounds):
            for side in ("c", "py"):
                d = os.path.join(work, "%s%d" % (side, r))
                if side == "c":
                    t = run_c(exe, d, args.chunks, seed, args.size, args.get_reps)
                else:
                    t = run_python(udr, d, args.chunks, block, args.get_reps)
                best[side] = [min(a, b) for a, b in zip(best[side], t)]
                shutil.rmtree(d)
                print("round %d %-2s put %.3fs get %.3fs" % (r + 1, side, t[0], t[1]), flush=True)
        mib = args.chunks * args.size / (1 << 20)
        print()
        print("%d chunks x %d bytes (%.0f MiB), best of %d rounds" % (
            args.chunks, args.size, mib, args.rounds))
        for op, i in (("put", 0), ("get", 1)):
            c, p = best["c"][i], best["py"][i]
            print("%s  C %8.1f MiB/s %8.0f ops/s | Python %8.1f MiB/s %8.0f ops/s | "
                  "ratio %.2fx" % (op, mib / c, args.chunks / c, mib / p, args.chunks / p, c / p))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
