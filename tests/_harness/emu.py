"""CPU emulation of the CUDA kernels: g++ build of kernels/emu/harness.cpp + ctypes.

The harness ``#include``s the exact ``kernels/*.cu`` sources through the shim
``kernels/emu/cuda_emu.h``; this module compiles it once per source hash (cached
under ``$GPUCODED_EMU_CACHE`` or the temp dir) and launches the kernels on NumPy
arrays with the same launch plans (:func:`gpucoded.kernels.plan_encode`,
:func:`gpucoded.kernels.plan_decode`) as the GPU path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from gpucoded import hostops
from gpucoded import kernels as K

CXX_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Wno-unknown-pragmas")
_SUFFIX = {np.dtype(np.float16): "f16", np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def compiler() -> str | None:
    """The C++ compiler to use (``$CXX`` or g++), or None."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _sources() -> list[Path]:
    d = K.kernel_dir()
    return sorted([*d.glob("*.cu"), *d.glob("*.cuh"), *(d / "emu").glob("*")])


def build() -> Path:
    """Compile the harness shared object (cached by source hash) and return its path."""
    cxx = compiler()
    if cxx is None:
        raise OSError("no C++ compiler")
    h = hashlib.sha256(" ".join((cxx, *CXX_FLAGS)).encode())
    for p in _sources():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    # never a shared temp dir: another user could plant the .so there (gpucoded.hostops)
    env = os.environ.get("GPUCODED_EMU_CACHE")
    cache = Path(env) if env else hostops.private_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    so = cache / f"gpucoded-emu-{h.hexdigest()[:16]}.so"
    if so.is_file():
        return so
    tmp = so.with_suffix(f".{os.getpid()}.tmp")
    src = K.kernel_dir() / "emu" / "harness.cpp"
    res = subprocess.run(
        [cxx, *CXX_FLAGS, "-o", str(tmp), str(src)], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise RuntimeError(f"harness build failed:\n{res.stderr}")
    os.replace(tmp, so)
    return so


class Emu:
    """Loaded harness; methods mirror :func:`gpucoded.kernels.encode` / ``decode``."""

    def __init__(self, path: Path | None = None, max_blocks: int = 3):
        self.lib = ctypes.CDLL(str(path or build()))
        self.max_blocks = max_blocks
        self.last_plan: K.Launch | None = None

    @staticmethod
    def _ptr(a: np.ndarray) -> ctypes.c_void_p:
        return ctypes.c_void_p(a.ctypes.data)

    def encode(
        self,
        X: np.ndarray,
        G: np.ndarray,
        grid: tuple[int, int],
        out: np.ndarray | None = None,
        reverse: bool = False,
    ) -> np.ndarray:
        gr, gc = grid
        item = X.dtype.itemsize
        assert X.strides[1] == item
        ld = X.strides[0] // item
        G = np.ascontiguousarray(G, dtype=K.acc_dtype(X.dtype))
        P = G.shape[0]
        rb, cb = K.block_dims(X.shape[0], X.shape[1], gr, gc)
        if out is None:
            out = np.empty((P, rb, cb), dtype=X.dtype)
        plan = K.plan_encode(
            X.dtype, X.shape, ld, grid, K._align_of(X.ctypes.data, out.ctypes.data), self.max_blocks
        )
        self.last_plan = plan
        fn = getattr(self.lib, f"gc_emu_encode_{_SUFFIX[X.dtype]}")
        ll, i32 = ctypes.c_longlong, ctypes.c_int
        rc = fn(
            i32(plan.vec),
            i32(plan.maxm),
            ctypes.c_uint(plan.grid),
            ctypes.c_uint(plan.block),
            i32(int(reverse)),
            self._ptr(X),
            ll(ld),
            ll(X.shape[0]),
            ll(X.shape[1]),
            i32(gr),
            i32(gc),
            ll(rb),
            ll(cb),
            self._ptr(G),
            i32(P),
            self._ptr(out),
        )
        assert rc == 0, "no such instantiation in the harness"
        return out

    def decode(
        self,
        Z: np.ndarray,
        W: np.ndarray,
        grid: tuple[int, int],
        out: np.ndarray,
        reverse: bool = False,
    ) -> np.ndarray:
        gp, gt = grid
        Z = np.ascontiguousarray(Z)
        R, rb, db = Z.shape
        # the kernel reads each answer through a pointer array (no stacked copy needed)
        plane = rb * db * Z.dtype.itemsize
        zptrs = np.array([Z.ctypes.data + k * plane for k in range(R)], dtype=np.uint64)
        W = np.ascontiguousarray(W, dtype=K.acc_dtype(Z.dtype))
        item = out.dtype.itemsize
        assert out.strides[1] == item
        ldc = out.strides[0] // item
        plan = K.plan_decode(
            Z.dtype, R, (rb, db), ldc, K._align_of(Z.ctypes.data, out.ctypes.data), self.max_blocks
        )
        self.last_plan = plan
        fn = getattr(self.lib, f"gc_emu_decode_{_SUFFIX[Z.dtype]}")
        ll, i32 = ctypes.c_longlong, ctypes.c_int
        rc = fn(
            i32(plan.vec),
            i32(plan.maxm),
            ctypes.c_uint(plan.grid),
            ctypes.c_uint(plan.block),
            i32(int(reverse)),
            self._ptr(zptrs),
            i32(R),
            ll(rb),
            ll(db),
            self._ptr(W),
            i32(gp),
            i32(gt),
            self._ptr(out),
            ll(ldc),
            ll(out.shape[0]),
            ll(out.shape[1]),
        )
        assert rc == 0, "no such instantiation in the harness"
        return out

    def half_to_float(self, h: np.ndarray) -> np.ndarray:
        h = np.ascontiguousarray(h, dtype=np.float16)
        f = np.empty(h.shape, dtype=np.float32)
        self.lib.gc_emu_half_to_float(self._ptr(h), self._ptr(f), ctypes.c_longlong(h.size))
        return f

    def float_to_half(self, f: np.ndarray) -> np.ndarray:
        f = np.ascontiguousarray(f, dtype=np.float32)
        h = np.empty(f.shape, dtype=np.float16)
        self.lib.gc_emu_float_to_half(self._ptr(f), self._ptr(h), ctypes.c_longlong(f.size))
        return h

    def delay(self, seconds: float, flag: np.ndarray | None = None) -> None:
        if flag is None:
            flag = np.zeros(1, dtype=np.int32)
        self.lib.gc_emu_delay(self._ptr(flag), ctypes.c_longlong(round(seconds * 1e9)))
