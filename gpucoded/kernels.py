"""Fused CUDA encode/decode kernels: source loading, launch planning, launches.

The kernel sources in ``kernels/`` (shipped as ``gpucoded/_kernels``) are the
single source of truth. They are compiled either ahead of time by CMake into a
fatbin (loaded with ``cupy.RawModule(path=...)``) or at run time by NVRTC
(``cupy.RawModule(code=..., name_expressions=...)``). This module imports
without CuPy; CuPy is imported lazily on the first launch.

Layout contract (see ``kernels/encode.cu`` and ``kernels/decode.cu``)
------------------------------------------------------------------------
A matrix ``X`` (``nrows x ncols``) on a ``gr x gc`` block grid has blocks of
``rb x cb`` with ``rb = ceil(nrows/gr)``, ``cb = ceil(ncols/gc)``, zero padded;
block ``a = i*gc + j``. Encoding writes

.. math:: Y_w = \\sum_a G_{w,a} X_a, \\qquad Y \\in \\mathbb{R}^{P\\times rb\\times cb},

and decoding of R answers ``Z_k`` (each ``rb x db``, read in place through a device
array of R pointers: no stacked copy) with weights ``W`` (``gp*gt x R``) writes
``C[i rb + r, u db + x] = \\sum_k W_{i gt + u, k} Z_{k,r,x}`` inside ``C`` only.

Ordering: every allocation, copy and launch of :func:`encode`/:func:`decode` is on
the launch stream (``stream=`` or the current one); cached coefficient copies are
ordered to other streams by events; nothing here synchronises the host with the
device (except once per device for the never-set delay flag).
"""

from __future__ import annotations

import collections
import functools
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .formats import FORMATS

#: Kernel families; one compiled module per family when JIT-compiled.
FAMILIES = ("encode", "decode", "delay")
#: Register-chunk sizes instantiated for the encode/decode kernels.
MAXM_CHOICES = (4, 8, 16)
#: Vector widths instantiated per element type (16-byte vectors at most).
VEC_CHOICES = {"float": (1, 4), "double": (1, 2), "gc::half_t": (1, 8)}
#: Threads per block for all launches.
BLOCK = 256
#: NVRTC/nvcc options; no fast-math (CuPy adds -ftz=true on its own JIT path).
NVRTC_OPTIONS = ("-std=c++17",)
FATBIN_NAME = "gpucoded_kernels.fatbin"
NAMES_NAME = "gpucoded_kernels.names.json"

#: data dtype -> kernel C type: the worker formats' ``c_type`` (:mod:`gpucoded.formats`),
#: plus binary16, a storage type the kernels support (float accumulation) though it is
#: not a worker format
_CTYPES = {f.storage: f.c_type for f in FORMATS.values()} | {np.dtype(np.float16): "gc::half_t"}


def kernel_dir() -> Path:
    """Directory holding the kernel sources.

    Looks for the package data ``gpucoded/_kernels`` first, then for the
    repository's ``kernels/`` next to the package.
    """
    try:
        pkg = importlib.resources.files("gpucoded") / "_kernels"
        if pkg.is_dir() and (pkg / "encode.cu").is_file():
            # resolved: in a source checkout gpucoded/_kernels links to kernels/
            return Path(str(pkg)).resolve()
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - odd installs
        pass
    repo = Path(__file__).resolve().parent.parent / "kernels"
    if (repo / "encode.cu").is_file():
        return repo
    raise FileNotFoundError("gpucoded kernel sources not found (gpucoded/_kernels or kernels/)")


def source(family: str) -> str:
    """Source of one kernel family with ``common.cuh`` inlined (for NVRTC)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}")
    d = kernel_dir()
    common = (d / "common.cuh").read_text()
    text = (d / f"{family}.cu").read_text()
    return text.replace('#include "common.cuh"', common.replace("#pragma once", ""))


def ctype(dtype: Any) -> str:
    """C++ element type for a NumPy/CuPy dtype (``float32 -> 'float'``)."""
    dt = np.dtype(dtype)
    try:
        return _CTYPES[dt]
    except KeyError:
        raise TypeError(
            f"gpucoded kernels support float16, float32 and float64, not {dt}"
        ) from None


def acc_dtype(dtype: Any) -> np.dtype:
    """Accumulation (and coefficient) dtype of the kernels for a data dtype."""
    dt = np.dtype(dtype)
    return np.dtype(np.float32) if dt == np.dtype(np.float16) else dt


def choose_maxm(m: int) -> int:
    """Smallest instantiated register chunk holding ``m`` terms (else the largest)."""
    for c in MAXM_CHOICES:
        if m <= c:
            return c
    return MAXM_CHOICES[-1]


def name_expression(family: str, ct: str, vec: int = 1, maxm: int = 4) -> str:
    """Template name expression, e.g. ``'gc_encode<float, 4, 16>'``."""
    if family == "delay":
        return "gc_delay"
    return f"gc_{family}<{ct}, {vec}, {maxm}>"


def all_name_expressions(family: str) -> list[str]:
    """Every instantiation of a family (what NVRTC and CMake must build)."""
    if family == "delay":
        return ["gc_delay"]
    return [
        name_expression(family, ct, v, m)
        for ct, vecs in VEC_CHOICES.items()
        for v in vecs
        for m in MAXM_CHOICES
    ]


@dataclass(frozen=True)
class Launch:
    """A planned launch: kernel name expression, grid and block size."""

    name: str
    grid: int
    block: int
    vec: int
    maxm: int


def _vec_for(ct: str, itemsize: int, addr_ok: bool, *dims: int) -> int:
    """Widest instantiated vector width dividing every dim (and aligned)."""
    for v in sorted(VEC_CHOICES[ct], reverse=True):
        if v > 1 and addr_ok and all(d % v == 0 for d in dims):
            return v
    return 1


def _grid_for(npos: int, max_blocks: int) -> int:
    return max(1, min(-(-npos // BLOCK), max_blocks))


def block_dims(nrows: int, ncols: int, gr: int, gc: int) -> tuple[int, int]:
    """Block shape ``(ceil(nrows/gr), ceil(ncols/gc))`` of a ``gr x gc`` grid."""
    return -(-nrows // gr), -(-ncols // gc)


def plan_encode(
    dtype: Any,
    shape: tuple[int, int],
    ld: int,
    grid: tuple[int, int],
    addr_align: int = 256,
    max_blocks: int = 132 * 32,
) -> Launch:
    """Choose instantiation and launch geometry for :func:`encode`.

    ``addr_align`` is the largest power of two dividing the source and
    destination addresses (in bytes); vector accesses need ``vec*itemsize``.
    """
    ct = ctype(dtype)
    itemsize = np.dtype(dtype).itemsize
    gr, gc = grid
    rb, cb = block_dims(shape[0], shape[1], gr, gc)
    maxv = max(VEC_CHOICES[ct])
    vec = _vec_for(ct, itemsize, addr_align % (maxv * itemsize) == 0, cb, ld)
    maxm = choose_maxm(gr * gc)
    npos = rb * (cb // vec)
    return Launch(
        name_expression("encode", ct, vec, maxm), _grid_for(npos, max_blocks), BLOCK, vec, maxm
    )


def plan_decode(
    dtype: Any,
    R: int,
    block_shape: tuple[int, int],
    ldc: int,
    addr_align: int = 256,
    max_blocks: int = 132 * 32,
) -> Launch:
    """Choose instantiation and launch geometry for :func:`decode`."""
    ct = ctype(dtype)
    itemsize = np.dtype(dtype).itemsize
    rb, db = block_shape
    maxv = max(VEC_CHOICES[ct])
    vec = _vec_for(ct, itemsize, addr_align % (maxv * itemsize) == 0, db, ldc)
    maxm = choose_maxm(R)
    npos = rb * (db // vec)
    return Launch(
        name_expression("decode", ct, vec, maxm), _grid_for(npos, max_blocks), BLOCK, vec, maxm
    )


def _align_of(*addrs: int) -> int:
    a = 256
    while a > 1 and any(x % a for x in addrs):
        a //= 2
    return a


# --------------------------------------------------------------------------- modules


def fatbin_path() -> Path | None:
    """The CMake-built fatbin and its name map, if present.

    Searched: ``$GPUCODED_FATBIN``, ``gpucoded/_kernels/``, the repository's
    ``build/``. The name map (``*.names.json``) must sit next to it.
    """
    cands = []
    env = os.environ.get("GPUCODED_FATBIN")
    if env:
        cands.append(Path(env))
    try:
        cands.append(kernel_dir() / FATBIN_NAME)
    except FileNotFoundError:  # pragma: no cover
        pass
    cands.append(Path(__file__).resolve().parent.parent / "build" / FATBIN_NAME)
    for p in cands:
        if p.is_file() and p.with_name(NAMES_NAME).is_file():
            return p
    return None


def load_name_map(path: Path) -> dict[str, str]:
    """Name expression -> mangled symbol, as written by ``kernels/names.cmake``."""
    return json.loads(path.with_name(NAMES_NAME).read_text())


class _Module:
    """A compiled family: resolves name expressions to ``cupy.RawKernel``."""

    def __init__(self, raw: Any, names: dict[str, str] | None):
        self._raw = raw
        self._names = names

    def get(self, name: str) -> Any:
        if self._names is None:
            return self._raw.get_function(name)
        return self._raw.get_function(self._names[name])


@functools.cache
def _fatbin_module(path: str, device: int) -> _Module:
    import cupy as cp

    p = Path(path)
    return _Module(cp.RawModule(path=str(p)), load_name_map(p))


@functools.cache
def _jit_module(family: str, device: int) -> _Module:
    import cupy as cp

    names = all_name_expressions(family)
    raw = cp.RawModule(code=source(family), options=NVRTC_OPTIONS, name_expressions=names)
    return _Module(raw, None)


def use_fatbin() -> bool:
    """Whether launches use the prebuilt fatbin (``GPUCODED_JIT=1`` forces NVRTC)."""
    return os.environ.get("GPUCODED_JIT", "0") != "1" and fatbin_path() is not None


#: (device, fatbin path or None, name expression) -> cupy.RawKernel
_KERNELS: dict[tuple[int, str | None, str], Any] = {}
#: (GPUCODED_JIT, GPUCODED_FATBIN) -> the fatbin launches use (None: NVRTC), looked up
#: once per setting: the file-system search of fatbin_path costs more host time than
#: a launch (cleared by reset_device_state)
_FATBIN_CHOICE: dict[tuple[str | None, str | None], Path | None] = {}


def _launch_fatbin() -> Path | None:
    key = (os.environ.get("GPUCODED_JIT"), os.environ.get("GPUCODED_FATBIN"))
    if key not in _FATBIN_CHOICE:
        _FATBIN_CHOICE[key] = fatbin_path() if use_fatbin() else None
    return _FATBIN_CHOICE[key]


def get_kernel(family: str, name: str) -> Any:
    """The ``cupy.RawKernel`` for a name expression on the current device (built once)."""
    import cupy as cp

    dev = cp.cuda.Device().id
    fb = _launch_fatbin()
    key = (dev, None if fb is None else str(fb), name)
    k = _KERNELS.get(key)
    if k is None:
        mod = _fatbin_module(str(fb), dev) if fb is not None else _jit_module(family, dev)
        k = _KERNELS[key] = mod.get(name)
    return k


@dataclass
class _Coef:
    """A cached device copy of a coefficient matrix and the events that order its use."""

    array: Any
    ready: Any  # recorded after the upload, on the upload stream
    stream_ptr: int
    last_use: Any = None  # recorded after the latest kernel reading it


_COEF_CACHE: collections.OrderedDict[tuple, _Coef] = collections.OrderedDict()
_COEF_CACHE_SIZE = 256
_RETIRED: list[_Coef] = []  # evicted, kept until the last kernel reading them is done


def _upload(host: np.ndarray) -> Any:
    """Host-to-device copy of a coefficient matrix on the current stream."""
    import cupy as cp

    return cp.asarray(host)


def _coefficients(M: Any, dtype: np.dtype) -> tuple[Any, _Coef | None]:
    """Coefficient matrix on the current device, C-contiguous, in ``dtype``.

    Host matrices (the codes' ``GA``/``GB`` and the decode weights of an answer *set*)
    are small and reused across calls: their device copies are cached by content, so a
    repeated call makes no host-to-device transfer. The copy is made on the current
    (launch) stream; a launch on another stream waits for it with an event, never with
    a host synchronisation. An evicted copy is kept until the last kernel that reads it
    has finished (its ``last_use`` event), so eviction needs no synchronisation either.
    Returns the array and its cache entry (None for device input).
    """
    import cupy as cp

    if isinstance(M, cp.ndarray):
        return cp.ascontiguousarray(M, dtype=dtype), None
    host = np.ascontiguousarray(M, dtype=dtype)
    stream = cp.cuda.get_current_stream()
    key = (cp.cuda.Device().id, host.dtype.str, host.shape, host.tobytes())
    hit = _COEF_CACHE.get(key)
    if hit is not None:
        _COEF_CACHE.move_to_end(key)
        if hit.stream_ptr != stream.ptr:
            stream.wait_event(hit.ready)  # device-side ordering after the upload
        return hit.array, hit
    dev = _upload(host)
    ent = _Coef(dev, stream.record(), stream.ptr)
    _COEF_CACHE[key] = ent
    _RETIRED[:] = [c for c in _RETIRED if not c.last_use.done]
    if len(_COEF_CACHE) > _COEF_CACHE_SIZE:
        _, old = _COEF_CACHE.popitem(last=False)
        if old.last_use is not None and not old.last_use.done:
            _RETIRED.append(old)
    return dev, ent


def _used(*entries: _Coef | None) -> None:
    """Record, on the current stream, that the launch just queued read these entries."""
    import cupy as cp

    for e in entries:
        if e is not None:
            e.last_use = cp.cuda.get_current_stream().record(e.last_use)


def reset_device_state() -> None:
    """Drop every cached module, kernel, coefficient copy and flag (e.g. after a device reset)."""
    _fatbin_module.cache_clear()
    _jit_module.cache_clear()
    _never_set_flag_on.cache_clear()
    _KERNELS.clear()
    _FATBIN_CHOICE.clear()
    _COEF_CACHE.clear()
    _RETIRED.clear()


def _max_blocks() -> int:
    import cupy as cp

    return int(cp.cuda.Device().attributes["MultiProcessorCount"]) * 32


def _ld_of(X: Any, *, write: bool = False) -> int:
    """Row stride (elements) of a 2-D array with unit column stride.

    The stride is returned as it is, never rounded up: a broadcast (stride 0) or
    overlapping view is read correctly in place by the kernels, which address row
    ``r`` at ``r * ld``. An output (``write=True``) must not overlap itself:
    ``ld >= ncols`` unless it has a single row.
    """
    item = X.dtype.itemsize
    if X.ndim != 2 or (X.shape[1] > 1 and X.strides[1] != item):
        raise ValueError("need a 2-D array with unit column stride")
    if X.strides[0] % item or X.strides[0] < 0:
        raise ValueError("need a non-negative row stride that is a multiple of the itemsize")
    ld = X.strides[0] // item
    if write and X.shape[0] > 1 and ld < X.shape[1]:
        raise ValueError(
            f"output rows overlap (row stride {ld} < {X.shape[1]} columns): pass a "
            "C-contiguous out, or none"
        )
    return ld


def _stream_ctx(stream: Any) -> Any:
    return stream if stream is not None else _null_ctx()


# --------------------------------------------------------------------------- launches


def encode(
    X: Any,
    G: Any,
    grid: tuple[int, int],
    P: int | None = None,
    out: Any = None,
    stream: Any = None,
) -> Any:
    """Fused encode of one CuPy matrix on a block grid.

    Parameters
    ----------
    X : cupy.ndarray, shape (nrows, ncols)
        Read in place when its columns have unit stride and its row stride is
        non-negative (any leading dimension, including broadcast rows with stride
        0); other layouts are first copied to C order.
    G : array_like, shape (P, gr*gc)
        Encoding coefficients; cast to :func:`acc_dtype` of ``X`` (float32 for
        float16 data, else ``X``'s dtype).
    grid : (gr, gc)
        Block grid; ``(p, s)`` for A, ``(s, t)`` for B.
    P : int, optional
        Number of workers (rows of ``G``), checked if given.
    out : cupy.ndarray, shape (P, rb, cb), optional
        Contiguous destination.
    stream : cupy.cuda.Stream, optional
        Stream for every allocation, copy and the launch (default: current).

    Returns
    -------
    cupy.ndarray, shape (P, rb, cb)
        ``Y[w] = sum_a G[w, a] X_a`` with ``rb = ceil(nrows/gr)``, ``cb = ceil(ncols/gc)``.
    """
    gr, gc = (int(g) for g in grid)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    with _stream_ctx(stream):
        return _encode_on_stream(X, G, gr, gc, P, out)


def _encode_on_stream(X: Any, G: Any, gr: int, gc: int, P: int | None, out: Any) -> Any:
    import cupy as cp

    item = X.dtype.itemsize
    if (X.shape[1] > 1 and X.strides[1] != item) or X.strides[0] < 0 or X.strides[0] % item:
        X = cp.ascontiguousarray(X)  # e.g. a transposed view: one copy, then the fused pass
    ld = _ld_of(X)
    G, gent = _coefficients(G, acc_dtype(X.dtype))
    if G.ndim != 2 or G.shape[1] != gr * gc:
        raise ValueError(f"G must be (P, {gr * gc}), got {G.shape}")
    Pw = G.shape[0]
    if P is not None and P != Pw:
        raise ValueError(f"P={P} but G has {Pw} rows")
    rb, cb = block_dims(X.shape[0], X.shape[1], gr, gc)
    if out is None:
        out = cp.empty((Pw, rb, cb), dtype=X.dtype)
    elif out.shape != (Pw, rb, cb) or not out.flags.c_contiguous or out.dtype != X.dtype:
        raise ValueError("out must be C-contiguous (P, rb, cb) of X's dtype")
    if Pw == 0 or rb * cb == 0:
        return out
    plan = plan_encode(
        X.dtype, X.shape, ld, (gr, gc), _align_of(X.data.ptr, out.data.ptr), _max_blocks()
    )
    k = get_kernel("encode", plan.name)
    args = (
        X,
        np.int64(ld),
        np.int64(X.shape[0]),
        np.int64(X.shape[1]),
        np.int32(gr),
        np.int32(gc),
        np.int64(rb),
        np.int64(cb),
        G,
        np.int32(Pw),
        out,
    )
    k((plan.grid,), (plan.block,), args)
    _used(gent)
    return out


def decode(
    Z: Any,
    W: Any,
    grid: tuple[int, int],
    out_shape: tuple[int, int],
    out: Any = None,
    stream: Any = None,
) -> Any:
    """Fused decode of the answers into ``C`` in its final layout (one pass over them).

    Parameters
    ----------
    Z : cupy.ndarray (R, rb, db), or a sequence of R cupy.ndarray (rb, db)
        The answers of the R answering workers (columns of ``W``), read where they
        are: a sequence is not stacked first (the kernel takes a device array of R
        pointers); answers that are not C-contiguous are copied.
    W : array_like, shape (gp*gt, R)
        Decode weights; cast to :func:`acc_dtype` of the answers.
    grid : (gp, gt)
        Block grid of C; ``(p, t)``.
    out_shape : (n, l)
        Shape of C; must satisfy ``ceil(n/gp) == rb`` and ``ceil(l/gt) == db``.
    out : cupy.ndarray, shape (n, l), optional
        Destination with unit column stride and non-overlapping rows.
    stream : cupy.cuda.Stream, optional
        Stream for every allocation, copy and the launch (default: current).

    Returns
    -------
    cupy.ndarray, shape (n, l)
        ``C[i rb + r, u db + x] = sum_k W[i gt + u, k] Z[k][r, x]``.
    """
    with _stream_ctx(stream):
        return _decode_on_stream(Z, W, grid, out_shape, out)


def _answer_list(Z: Any) -> list:
    import cupy as cp

    if isinstance(Z, cp.ndarray):
        if Z.ndim != 3:
            raise ValueError("Z must be (R, rb, db)")
        Z = list(Z)
    Z = [cp.ascontiguousarray(z) for z in Z]
    if any(z.ndim != 2 for z in Z) or len({z.shape for z in Z}) > 1 or len(
        {z.dtype for z in Z}
    ) > 1:
        raise ValueError("answers must be (rb, db) arrays of one shape and dtype")
    return Z


def _decode_on_stream(Z: Any, W: Any, grid: tuple[int, int], out_shape: tuple, out: Any) -> Any:
    import cupy as cp

    gp, gt = (int(g) for g in grid)
    n, l = (int(v) for v in out_shape)
    Zs = _answer_list(Z)
    R = len(Zs)
    if R == 0:
        raise ValueError("decode needs at least one answer")
    rb, db = Zs[0].shape
    dtype = Zs[0].dtype
    if block_dims(n, l, gp, gt) != (rb, db):
        raise ValueError(f"answers of block shape {(rb, db)} do not tile C {out_shape} on {grid}")
    W, went = _coefficients(W, acc_dtype(dtype))
    if W.shape != (gp * gt, R):
        raise ValueError(f"W must be ({gp * gt}, {R}), got {W.shape}")
    if out is None:
        out = cp.empty((n, l), dtype=dtype)
    elif out.shape != (n, l) or out.dtype != dtype:
        raise ValueError("out has the wrong shape or dtype")
    ldc = _ld_of(out, write=True)
    if n * l == 0:
        return out
    ptrs = [z.data.ptr for z in Zs]
    zptr = cp.asarray(np.array(ptrs, dtype=np.uint64))
    plan = plan_decode(dtype, R, (rb, db), ldc, _align_of(*ptrs, out.data.ptr), _max_blocks())
    k = get_kernel("decode", plan.name)
    args = (
        zptr,
        np.int32(R),
        np.int64(rb),
        np.int64(db),
        W,
        np.int32(gp),
        np.int32(gt),
        out,
        np.int64(ldc),
        np.int64(n),
        np.int64(l),
    )
    k((plan.grid,), (plan.block,), args)
    _used(went)
    return out


def delay(seconds: float, flag: Any = None, stream: Any = None) -> None:
    """Launch the straggler kernel: one thread spins ``seconds`` of GPU time.

    Parameters
    ----------
    seconds : float
        Spin time (GPU global timer); for a worker that never completes, a cap.
    flag : cupy.ndarray of int32, optional
        The spin also ends as soon as ``flag[0] != 0`` (set it from another
        stream, e.g. ``cudaMemsetAsync``, to cancel). Default: a flag that is
        never set.
    stream : cupy.cuda.Stream, optional
    """
    if flag is None:
        flag = _never_set_flag()
    k = get_kernel("delay", "gc_delay")
    with _stream_ctx(stream):
        k((1,), (1,), (flag, np.int64(round(seconds * 1e9))))


@functools.cache
def _never_set_flag_on(device: int) -> Any:
    import cupy as cp

    with cp.cuda.Device(device):
        f = cp.zeros(1, dtype=cp.int32)
        cp.cuda.get_current_stream().synchronize()
    return f


def _never_set_flag() -> Any:
    import cupy as cp

    return _never_set_flag_on(cp.cuda.Device().id)


class _null_ctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
