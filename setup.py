"""Build the udr Python extension (udr._udr) together with libudr itself.

The extension links the library statically: setup.py compiles every
src/*/*.c and the official BLAKE3 C sources shipped by Debian's
librust-blake3-dev (/usr/share/cargo/registry/blake3-*/c, or $UDR_BLAKE3_DIR)
into objects of its own build directory, so no installed libudr is needed.

    /usr/bin/python3 -m pip install --no-build-isolation .   # (Debian 12: add --break-system-packages)
    python3 setup.py build_py --build-lib OUT build_ext --build-lib OUT --build-temp OUT/tmp
"""

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))

WARNINGS = [
    "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes",
    "-Wpointer-arith", "-Wformat=2", "-Wno-unused-parameter",
]


def rel(*parts):
    return os.path.join(ROOT, *parts)


def lib_version():
    """The library version, from the project() line of CMakeLists.txt."""
    with open(rel("CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(\s*udr\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else "0.0.0"


def blake3_dir():
    """The BLAKE3 C sources, chosen as CMakeLists.txt does (newest first)."""
    d = os.environ.get("UDR_BLAKE3_DIR")
    if not d:
        found = sorted(glob.glob("/usr/share/cargo/registry/blake3-*/c"), reverse=True)
        d = found[0] if found else ""
    if not d or not os.path.exists(os.path.join(d, "blake3.h")):
        raise SystemExit("BLAKE3 C sources not found: install librust-blake3-dev "
                         "or set UDR_BLAKE3_DIR")
    return d


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def duckdb_dir():
    """DuckDB for the optional query module (src/query): $UDR_DUCKDB_DIR or
    the .deps/duckdb that scripts/fetch-duckdb.sh fills; None when absent,
    in which case src/query is left out.  Keep in step with CMakeLists.txt."""
    d = os.environ.get("UDR_DUCKDB_DIR") or rel(".deps", "duckdb")
    if (os.path.exists(os.path.join(d, "include", "duckdb.h"))
            and os.path.exists(os.path.join(d, "lib", "libduckdb.so"))):
        return d
    return None


def lib_sources():
    srcs = sorted(glob.glob(rel("src", "*", "*.c")))
    if duckdb_dir() is None:
        srcs = [s for s in srcs if os.path.basename(os.path.dirname(s)) != "query"]
    return srcs


def link_flags():
    """The libraries libudr links, following CMakeLists.txt: every
    pkg_check_modules(... module) there, through pkg-config, plus pthread."""
    with open(rel("CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    flags = []
    for m in re.finditer(r"pkg_check_modules\(\s*\w+([^)]*)\)", text):
        mods = [w for w in m.group(1).split()
                if w not in ("REQUIRED", "QUIET", "IMPORTED_TARGET", "GLOBAL", "NO_CMAKE_PATH",
                             "NO_CMAKE_ENVIRONMENT_PATH")]
        for mod in mods:
            libs = pkg_config("--libs", mod)
            if libs is None:
                raise SystemExit("pkg-config cannot find %s (install its -dev package)" % mod)
            flags += libs
    dd = duckdb_dir()
    if dd is not None:
        # src/query is compiled in (lib_sources).  DuckDB is not linked: the
        # query module dlopens it at the first SQL session (src/query/duck.c),
        # so `import udr` does not load it.  The build copies libduckdb.so
        # next to the extension (BuildExt), which finds it there through its
        # runpath $ORIGIN: the installed package needs nothing of the clone,
        # which may be moved or deleted.
        flags += ["-Wl,-rpath,$ORIGIN", "-ldl"]
    return flags + ["-lpthread"]


def check_wheel_support(argv):
    """pip builds a wheel (bdist_wheel), which setuptools older than 70.1
    leaves to the separate `wheel` package.  Without it setuptools only says
    "invalid command 'bdist_wheel'": say what to do instead."""
    if "bdist_wheel" not in argv:
        return
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (setuptools >= 70.1)
        return
    except ImportError:
        pass
    try:
        import wheel  # noqa: F401
    except ImportError:
        raise SystemExit(
            "udr: building a wheel needs the 'wheel' package, which this Python "
            "(%s) lacks.\n"
            "Install it (Debian: apt-get install python3-wheel), or use the system "
            "Python, which has it:\n"
            "    /usr/bin/python3 -m pip install --no-build-isolation "
            "--break-system-packages .\n"
            "(A python3 found first on PATH, e.g. from pyenv, may be another "
            "interpreter.)" % sys.executable)


def blake3_sources(d):
    srcs = [os.path.join(d, n) for n in ("blake3.c", "blake3_dispatch.c", "blake3_portable.c")]
    macros = []
    if sysconfig.get_platform().endswith("x86_64"):
        srcs += [os.path.join(d, f"blake3_{n}_x86-64_unix.S")
                 for n in ("sse2", "sse41", "avx2", "avx512")]
    else:
        macros = [(m, None) for m in ("BLAKE3_NO_SSE2", "BLAKE3_NO_SSE41",
                                      "BLAKE3_NO_AVX2", "BLAKE3_NO_AVX512")]
    return srcs, macros


class BuildExt(build_ext):
    """Compile libudr and BLAKE3 into objects first (in parallel, skipping
    up-to-date objects), then build the extension linking them in.  The
    BLAKE3 assembly (.S) goes through the C compiler driver, which
    setuptools does not do by itself."""

    def _compile_group(self, sources, macros, include_dirs, cflags, depends):
        if ".S" not in self.compiler.src_extensions:
            self.compiler.src_extensions.append(".S")
        objects = self.compiler.object_filenames(sources, output_dir=self.build_temp)
        dep_mtime = max((os.path.getmtime(p) for p in depends), default=0)
        todo = []
        for src, obj in zip(sources, objects):
            if (self.force or not os.path.exists(obj)
                    or os.path.getmtime(obj) < max(os.path.getmtime(src), dep_mtime)):
                todo.append(src)
                os.makedirs(os.path.dirname(obj), exist_ok=True)

        def one(src):
            self.compiler.compile([src], output_dir=self.build_temp, macros=macros,
                                  include_dirs=include_dirs, extra_postargs=cflags)

        if todo:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                for f in [pool.submit(one, s) for s in todo]:
                    f.result()
        return objects

    def build_extension(self, ext):
        b3 = blake3_dir()
        b3_srcs, b3_macros = blake3_sources(b3)
        headers = (glob.glob(rel("include", "udr", "**", "*.h"), recursive=True)
                   + glob.glob(rel("src", "**", "*.h"), recursive=True))
        objs = self._compile_group(b3_srcs, b3_macros, [b3], ["-O3", "-w"],
                                   [os.path.join(b3, "blake3.h")])
        lib_srcs = lib_sources()
        dd = duckdb_dir()
        objs += self._compile_group(
            lib_srcs,
            [("_GNU_SOURCE", None), ("UDR_VERSION_STRING", '"%s"' % lib_version())],
            [rel("include"), rel("src"), b3],
            ["-std=c11", "-fvisibility=hidden", *WARNINGS]
            + (["-isystem", os.path.join(dd, "include")] if dd else []),
            headers)
        ext.extra_objects = objs
        ext.depends = list(ext.depends) + headers + lib_srcs + b3_srcs
        super().build_extension(ext)
        if dd is not None:
            self._copy_duckdb(dd, os.path.dirname(self.get_ext_fullpath(ext.name)))

    def _copy_duckdb(self, dd, dest):
        """libduckdb.so next to the extension (its runpath is $ORIGIN), so
        that the package is whole wherever it is installed or moved."""
        src = os.path.join(dd, "lib", "libduckdb.so")
        dst = os.path.join(dest, "libduckdb.so")
        st = os.stat(src)
        if os.path.exists(dst):
            dt = os.stat(dst)
            if dt.st_size == st.st_size and dt.st_mtime >= st.st_mtime:
                return
        tmp = dst + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)


ext = Extension(
    "udr._udr",
    sources=sorted(glob.glob(os.path.join("python", "*.c"))),
    depends=glob.glob(os.path.join("python", "*.h")),
    include_dirs=[rel("include"), rel("python")],
    # UDRPY_HAVE_QUERY: the query module (src/query) is compiled in, so the
    # SQL methods work; without it they raise udr.Error.
    define_macros=[("_GNU_SOURCE", None)]
    + ([("UDRPY_HAVE_QUERY", None)] if duckdb_dir() is not None else []),
    extra_compile_args=["-std=c11", *WARNINGS],
    extra_link_args=link_flags(),
)

check_wheel_support(sys.argv)

setup(
    version=lib_version(),
    packages=["udr"],
    package_dir={"udr": "python/udr"},
    package_data={"udr": ["py.typed", "__init__.pyi"]},
    include_package_data=False,
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
    # Keep setuptools' default build tree (pip builds in place) out of the
    # CMake build/ directory.
    options={"build": {"build_base": "build-py/setuptools"}},
)
