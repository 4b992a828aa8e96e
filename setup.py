"""Build step of ``pip install .``: run CMakeLists.txt and put its outputs in the package.

Everything else (metadata, dependencies, package data) is in pyproject.toml. The CMake
project builds

* ``libgpucoded_host.so``, the compiled CPU encode/decode loops
  (``gpucoded/_host/hostops.cpp``, OpenMP, portable flags: no ``-march=native``) and,
  on x86-64, its AVX2 variant ``libgpucoded_host_v3.so``, which ``gpucoded.hostops``
  loads from ``gpucoded/_host/`` (the variant for decode on CPUs that have AVX2);
* the CUDA fatbin and its name map, when ``nvcc`` is found (``gpucoded/_kernels/``).

Why setuptools with a CMake step rather than scikit-build-core: the editable install of
README command 2 must put the library where the checkout's ``gpucoded`` imports find it
(setuptools' editable mode builds extensions in place; scikit-build-core's default
redirects imports to site-packages, and a ctypes-loaded file is not an import), and the
package data keeps its ``gpucoded/_kernels`` link to ``kernels/``.

Without ``cmake`` or a C++ compiler the package installs anyway and uses NumPy; the
build says so in one line (shown by ``pip install -v .``). Editable installs
(``pip install -e .``) build in place: the library lands in the checkout's
``gpucoded/_host/``. Environment: ``GPUCODED_CMAKE_ARGS`` (extra configure arguments,
e.g. ``-DGPUCODED_NATIVE=ON`` or ``-DGPUCODED_CUDA=OFF``), ``GPUCODED_BUILD_JOBS``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
LIB = "libgpucoded_host.so"
LIB_V3 = "libgpucoded_host_v3.so"
KERNEL_FILES = ("gpucoded_kernels.fatbin", "gpucoded_kernels.names.json")


def _say(msg: str) -> None:
    print(f"gpucoded: {msg}", flush=True)


class CMakeBuild(build_ext):
    """Configure and build CMakeLists.txt; copy the library (and fatbin) into the package."""

    def get_ext_filename(self, fullname: str) -> str:
        # a plain shared library loaded with ctypes, not a Python extension module
        return os.path.join(*fullname.split(".")[:-1], LIB)

    #: files besides the library, relative to the package, that a build may produce
    EXTRAS = (
        f"_host/{LIB}.sha256", f"_host/{LIB_V3}", *(f"_kernels/{f}" for f in KERNEL_FILES)
    )

    def copy_extensions_to_source(self) -> None:
        # editable install (pip install -e): the library and its companions go into the
        # checkout's package directory, where the editable import finds them
        super().copy_extensions_to_source()
        src = Path(self.get_finalized_command("build_py").get_package_dir("gpucoded"))
        for rel in self.EXTRAS:
            built = Path(self.build_lib) / "gpucoded" / rel
            if built.is_file():
                shutil.copyfile(built, src / rel)

    def build_extension(self, ext: Extension) -> None:
        dest = Path(self.get_ext_fullpath(ext.name)).resolve()
        cmake = shutil.which("cmake")
        if cmake is None:
            _say("cmake not found: CPU loops not built, NumPy is used (install cmake, reinstall)")
            return
        tmp = Path(self.build_temp).resolve() / "cmake"
        args = [
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGPUCODED_COPY_TO_SOURCE=OFF",
            *shlex.split(os.environ.get("GPUCODED_CMAKE_ARGS", "")),
        ]
        jobs = os.environ.get("GPUCODED_BUILD_JOBS", str(os.cpu_count() or 1))
        steps = (
            [cmake, "-S", str(ROOT), "-B", str(tmp), *args],
            [cmake, "--build", str(tmp), "--parallel", jobs],
        )
        for cmd in steps:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stdout, res.stderr, sep="\n")
                raise RuntimeError(f"gpucoded: {' '.join(cmd)} failed (output above)")
        built = tmp / LIB
        if built.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built, dest)
            variant = (tmp / LIB_V3).is_file()  # AVX2 variant (x86-64): decode, at run time
            if variant:
                shutil.copyfile(tmp / LIB_V3, dest.with_name(LIB_V3))
            # which source it was built from: gpucoded.hostops skips a stale library
            src = (ROOT / "gpucoded" / "_host" / "hostops.cpp").read_bytes()
            dest.with_name(LIB + ".sha256").write_text(hashlib.sha256(src).hexdigest() + "\n")
            _say(f"CPU loops built: {dest.name}" + (f" and {LIB_V3} (AVX2)" if variant else ""))
        else:
            _say("no C++ compiler found: CPU loops not built, NumPy is used")
        kdir = dest.parent.parent / "_kernels"
        if all((tmp / f).is_file() for f in KERNEL_FILES):
            kdir.mkdir(parents=True, exist_ok=True)
            for f in KERNEL_FILES:
                shutil.copyfile(tmp / f, kdir / f)
            _say("CUDA fatbin built")
        else:
            _say("no CUDA fatbin (nvcc not found or GPUCODED_CUDA=OFF): NVRTC compiles kernels")


setup(
    # optional: a build without the library still installs (NumPy path)
    ext_modules=[Extension("gpucoded._host.libgpucoded_host", sources=[], optional=True)],
    cmdclass={"build_ext": CMakeBuild},
)
