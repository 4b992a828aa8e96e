"""Minimal ctypes binding of NVRTC, enough to compile the kernels on a CPU-only host.

NVRTC needs no GPU: it is a compiler library. It comes from the PyPI wheel
``nvidia-cuda-nvrtc`` (CUDA 13: ``nvidia/cu13/lib/libnvrtc.so.13``), from a CUDA
toolkit, or from ``$GPUCODED_NVRTC``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass


def _candidates() -> list[str]:
    out: list[str] = []
    env = os.environ.get("GPUCODED_NVRTC")
    if env:
        out.append(env)
    try:
        import nvidia  # namespace package from the nvidia-* wheels

        for base in nvidia.__path__:
            out += sorted(
                glob.glob(os.path.join(base, "cu1*", "lib", "libnvrtc.so*")), reverse=True
            )
            out += sorted(
                glob.glob(os.path.join(base, "cuda_nvrtc", "lib", "libnvrtc.so*")), reverse=True
            )
    except ImportError:
        pass
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            out += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")), reverse=True)
    lib = ctypes.util.find_library("nvrtc")
    if lib:
        out.append(lib)
    return [c for c in out if "builtins" not in os.path.basename(c)]


def load() -> ctypes.CDLL:
    """Load libnvrtc or raise ``OSError`` listing what was tried."""
    tried = _candidates()
    for c in tried:
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    raise OSError(f"libnvrtc not found (tried {tried or 'nothing'}); pip install nvidia-cuda-nvrtc")


def version(lib: ctypes.CDLL) -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def supported_archs(lib: ctypes.CDLL) -> list[int]:
    n = ctypes.c_int()
    lib.nvrtcGetNumSupportedArchs(ctypes.byref(n))
    arr = (ctypes.c_int * n.value)()
    lib.nvrtcGetSupportedArchs(arr)
    return list(arr)


@dataclass
class Result:
    """Outcome of one compilation."""

    ok: bool
    log: str
    lowered: dict[str, str]
    cubin_size: int


def compile_source(
    lib: ctypes.CDLL,
    src: str,
    name_expressions: Sequence[str],
    options: Sequence[str],
    arch: int,
) -> Result:
    """Compile ``src`` to a cubin for ``sm_<arch>`` and lower the name expressions."""
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"gpucoded.cu", 0, None, None)
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed: {rc}")
    try:
        for ne in name_expressions:
            lib.nvrtcAddNameExpression(prog, ne.encode())
        opts = [o.encode() for o in (*options, f"--gpu-architecture=sm_{arch}")]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        lowered: dict[str, str] = {}
        cubin = 0
        if rc == 0:
            for ne in name_expressions:
                p = ctypes.c_char_p()
                if lib.nvrtcGetLoweredName(prog, ne.encode(), ctypes.byref(p)) == 0:
                    lowered[ne] = p.value.decode()
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
            cubin = size.value
        return Result(rc == 0, log, lowered, cubin)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
