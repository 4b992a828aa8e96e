r"""CPU encode/decode kernels and reusable workspaces (the NumPy path's hot loop).

Encode and decode are memory-bound: their limit is the machine's streaming
bandwidth. Two things decide how close the host path gets to it:

* **Workspaces.** A fresh 100 MB stack costs its page faults (the kernel zeroes
  every page on first touch: a write into fresh memory ran at about half the speed
  of a write into reused memory here). :class:`WorkspacePool` hands out reusable,
  256-byte aligned buffers. A buffer is reused only when *nothing else refers to
  it*: the pool checks the reference count of the buffer that every returned view
  keeps alive (NumPy views hold their base). An abandoned straggler still reading
  the previous call's ``At[w]`` holds such a view, and so does a caller (or a
  ``CodedMatrix``) that kept the stacks: the pool then allocates a new buffer and
  never writes under a live reader.
* **One pass.** The compiled loops (:func:`library`; ``gpucoded/_host/hostops.cpp``,
  CMake target ``gpucoded_host`` or :func:`build`) have the layout contract and the
  arithmetic of ``kernels/encode.cu`` and ``kernels/decode.cu`` — every output entry
  one sum in block order, so the results are bit-identical to those kernels run
  through the emulation harness (tested) — but walk rows and cache-sized column tiles
  with OpenMP instead of one emulated CUDA thread per position (the ``.cu`` sources
  built for the CPU spent their time in per-position index arithmetic and stayed well
  below copy bandwidth): encode reads each input once and writes each stack once,
  decode reads each answer once and writes C once. Encode's term count m is a
  template constant for m ≤ 8 (accumulators stay in registers; measured against
  the memory pattern alone and a copy by ``bench/bench_encode_floor.py``).
  Without the library (not built,
  a non-float dtype, ``GPUCODED_HOST=0``) the callers use NumPy.
* **Rows in both layouts.** :func:`take_rows` gathers rows (a minibatch of a fixed
  data matrix) and writes the first T of them transposed in the same pass, where
  NumPy's gather-then-transpose reads the gathered rows a second time: the
  logistic-regression study's ``CodedSGD`` needs :math:`X_b` (G's sample blocks)
  and :math:`X_b^\top` (the columns its ``CodedMatrix`` encodes) every step.

Rounding is the same as NumPy's: every output entry is one sequential sum of m
(encode) or R (decode) products in the working precision, so
:math:`|\hat y-y|\le\gamma_m\sum_a|g_a||x_a|`, :math:`\gamma_m=mu/(1-mu)`, the
term the a-priori bound (:meth:`gpucoded.codes.base.DecodeWeights.bounds`) counts.

Where the library comes from: ``pip install .`` builds it (CMakeLists.txt, portable
flags) into ``gpucoded/_host/``; a checkout's ``cmake --build build`` or :func:`build`
(into the per-user cache, :func:`cache_dir`) also work. Nothing is loaded from a
directory that other users can write (:func:`unsafe_reason`).

Environment: ``GPUCODED_HOST=0`` disables the library; ``GPUCODED_HOSTLIB=path``
loads that file (if it passes the same checks); ``GPUCODED_HOST_CACHE`` moves the
per-user cache; ``GPUCODED_HOST_THREADS`` sets the OpenMP threads (default: the
CPU count, at most 8); ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (idle OpenMP
threads sleep instead of spinning on the cores the workers need).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .safeload import (  # noqa: F401 (public here too: where builds go, what loads)
    _private_dir,
    cache_dir,
    private_cache_dir,
    unsafe_reason,
)

__all__ = [
    "WorkspacePool",
    "available",
    "build",
    "cache_dir",
    "combine_into",
    "decode_library",
    "encode_into",
    "library",
    "pool",
    "private_cache_dir",
    "source_path",
    "rowmul_wide",
    "take_rows",
    "unsafe_reason",
]

#: Bumped with the entry points of ``_host/hostops.cpp`` (``gc_host_abi``).
ABI = 4
#: Compiler flags of :func:`build` (the CMake target uses the same): a portable
#: baseline, no ``-march=native`` (``build(out, march="native")``, ``-DGPUCODED_NATIVE=ON``).
#: The AVX2 (x86-64-v3) variant the CMake build adds on x86-64; :func:`decode_library`
#: uses it for decode on a CPU with every feature of that level.
LIB_V3_NAME = "libgpucoded_host_v3.so"
#: /proc/cpuinfo flags of x86-64-v3 (AVX, AVX2, BMI1/2, F16C, FMA, LZCNT = abm, MOVBE)
V3_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})
CXX_FLAGS = (
    "-std=c++17",
    "-O3",
    "-fopenmp",
    "-fPIC",
    "-shared",
    "-ffp-contract=off",
    "-Wall",
)
LIB_NAME = "libgpucoded_host.so"
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
#: Alignment of pooled and fresh buffers (a cache line).
ALIGN = 64
#: Most terms (blocks of A or B, answers) the compiled loops take.
MAX_TERMS = 64
_i64 = ctypes.c_longlong
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


# ------------------------------------------------------------------ library


def source_path() -> Path:
    """The C++ file of the CPU build (it includes the kernel sources)."""
    return Path(__file__).resolve().parent / "_host" / "hostops.cpp"


def _sources() -> list[Path]:
    return [source_path()]


def _digest(cxx: str, flags: Sequence[str] = CXX_FLAGS) -> str:
    h = hashlib.sha256(" ".join((cxx, *flags)).encode())
    for p in _sources():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def source_digest() -> str:
    """SHA-256 of the C++ source: the stamp next to a packaged library (setup.py)."""
    return hashlib.sha256(source_path().read_bytes()).hexdigest()


def build(out: str | os.PathLike | None = None, *, march: str | None = None) -> Path:
    """Compile the CPU kernels with g++ and OpenMP; return the shared library's path.

    Without ``out`` the library goes to the per-user cache (:func:`cache_dir`,
    created 0700 and checked to be yours and private before anything is written or
    loaded), named by the hash of the sources and flags, where :func:`library`
    finds it. ``pip install .`` builds the same library into the package, so this is
    only needed for a checkout used without installing.

    Parameters
    ----------
    out : path, optional
        Where to write the library instead.
    march : str, optional
        ``-march=`` target (only with ``out``), e.g. ``"x86-64-v3"`` (the AVX2
        variant :func:`library` picks on CPUs that have it) or ``"native"`` (this CPU
        only: "illegal instruction" on an older one; README, "CPU path").

    Raises
    ------
    OSError
        No C++ compiler (``$CXX``, g++ or c++) on the PATH.
    PermissionError
        The cache directory is not private (another user could plant a library).
    RuntimeError
        The compiler failed (its output is in the message).
    ValueError
        ``march`` without ``out``.
    """
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise OSError("no C++ compiler: install g++ or set $CXX to build the CPU kernels")
    if march is not None and out is None:
        raise ValueError("march= needs out=: the per-user cache holds portable builds only")
    flags = CXX_FLAGS if march is None else (*CXX_FLAGS, f"-march={march}")
    if out is None:
        so = private_cache_dir() / f"gpucoded-host-{_digest(cxx)}.so"
        if so.is_file() and unsafe_reason(so, private=True) is None:
            return so
    else:
        so = Path(out)
        so.parent.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f"{so.name}.{os.getpid()}.tmp")
    cmd = [cxx, *flags, "-o", str(tmp), str(source_path())]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"CPU kernel build failed ({' '.join(cmd)}):\n{res.stderr}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, so)
    return so


def cpu_has_v3() -> bool:
    """Whether this CPU has every x86-64-v3 feature (:data:`V3_FLAGS`; Linux, x86-64)."""
    if "cpu_v3" not in _STATE:
        try:
            with open("/proc/cpuinfo") as f:
                lines = [ln for ln in f if ln.startswith("flags")]
            flags = lines[0].split(":", 1)[1].split() if lines else []
        except OSError:
            flags = []
        _STATE["cpu_v3"] = V3_FLAGS <= set(flags)
    return _STATE["cpu_v3"]


def _variant(base: Path) -> Path | None:
    """The AVX2 build next to ``base`` (same source and stamp) if this CPU can run it."""
    alt = base.with_name(LIB_V3_NAME)
    return alt if cpu_has_v3() and alt.is_file() else None


def packaged_path() -> Path:
    """Where ``pip install .`` puts the library: ``gpucoded/_host/libgpucoded_host.so``."""
    return Path(__file__).resolve().parent / "_host" / LIB_NAME


def repo_build_path() -> Path:
    """Where CMake's ``build/`` of a source checkout puts the library."""
    return Path(__file__).resolve().parent.parent / "build" / LIB_NAME


def _candidates() -> list[tuple[Path, bool]]:
    """Where a built library may be, with whether it must be private (the cache).

    ``$GPUCODED_HOSTLIB``; CMake's ``build/`` of a source checkout (unless older
    than the source); the installed package's (unless its stamp names another
    source); the per-user cache.
    """
    env = os.environ.get("GPUCODED_HOSTLIB")
    if env:
        return [(Path(env), False)]
    out = []
    repo_build = repo_build_path()
    if repo_build.is_file():
        newest = max(p.stat().st_mtime for p in _sources())
        if repo_build.stat().st_mtime >= newest:  # stale builds are ignored
            out.append((repo_build, False))
    pkg = packaged_path()
    stamp = pkg.with_name(pkg.name + ".sha256")
    if pkg.is_file() and stamp.is_file() and stamp.read_text().strip() == source_digest():
        out.append((pkg, False))
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is not None:
        out.append((cache_dir() / f"gpucoded-host-{_digest(cxx)}.so", True))
    return out


def _load(path: Path) -> ctypes.CDLL:
    # OpenMP threads that spin between calls steal the cores of the worker GEMMs (and
    # on an oversubscribed machine a spinning barrier made encode 4x slower, measured):
    # sleep instead, unless the user chose otherwise (read when libgomp starts)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    lib = ctypes.CDLL(str(path))
    if lib.gc_host_abi() != ABI:
        raise OSError(f"{path}: ABI {lib.gc_host_abi()}, expected {ABI}; rebuild it")
    p = ctypes.c_void_p
    for sfx in ("f32", "f64"):
        enc = getattr(lib, f"gc_host_encode_{sfx}")
        enc.argtypes = [p, _i64, _i64, _i64, ctypes.c_int, ctypes.c_int, _i64, _i64, p,
                        ctypes.c_int, p, ctypes.c_int]  # fmt: skip
        enc.restype = ctypes.c_int
        dec = getattr(lib, f"gc_host_decode_{sfx}")
        dec.argtypes = [p, p, ctypes.c_int, _i64, _i64, p, ctypes.c_int, ctypes.c_int, p,
                        _i64, _i64, _i64, ctypes.c_int]  # fmt: skip
        dec.restype = ctypes.c_int
        take = getattr(lib, f"gc_host_take_rows_{sfx}")
        take.argtypes = [p, _i64, _i64, p, _i64, _i64, p, _i64, _i64, p, _i64]
        take.restype = ctypes.c_int
        mul = getattr(lib, f"gc_host_rowmul_wide_{sfx}")
        mul.argtypes = [p, _i64, _i64, _i64, p, ctypes.c_int, p, p, ctypes.c_int]
        mul.restype = ctypes.c_int
    return lib


def library(reload: bool = False) -> ctypes.CDLL | None:
    """The compiled CPU kernels, or None (not built, or ``GPUCODED_HOST=0``).

    Looks at ``$GPUCODED_HOSTLIB``, then ``build/libgpucoded_host.so`` of a source
    checkout (CMake; ignored when older than the sources), then the one ``pip
    install .`` put into the package, then :func:`build`'s per-user cache. Never
    compiles on its own. A library that another user could have written or replaced
    (:func:`unsafe_reason`) is not loaded: one line on stderr says why, and NumPy is
    used.
    """
    if not reload and "lib" in _STATE:  # loaded (or known absent): no lock on the hot path
        return _STATE["lib"]
    with _LOCK:
        if reload:
            for key in ("lib", "path", "decode_lib", "decode_path"):
                _STATE.pop(key, None)
        if "lib" in _STATE:
            return _STATE["lib"]
        lib = None
        if os.environ.get("GPUCODED_HOST", "1") not in ("0", "", "off", "no"):
            for path, private in _candidates():
                if path.is_file():
                    reason = unsafe_reason(path, private=private)
                    if reason is not None:
                        print(
                            f"gpucoded: not loading CPU kernels {path}: {reason}; using NumPy",
                            file=sys.stderr,
                        )
                        continue
                    try:
                        lib = _load(path)
                        _STATE["path"] = path
                        break
                    except (OSError, AttributeError) as e:
                        print(f"gpucoded: ignoring CPU kernels {path}: {e}", file=sys.stderr)
        _STATE["lib"] = _STATE["decode_lib"] = lib
        _STATE["decode_path"] = _STATE.get("path")
        alt = None if lib is None or "GPUCODED_HOSTLIB" in os.environ else _variant(_STATE["path"])
        why = None if alt is None else unsafe_reason(alt)
        if why is not None:
            print(f"gpucoded: not loading CPU kernels {alt}: {why}", file=sys.stderr)
        elif alt is not None:
            try:  # the AVX2 build for decode only (README, "CPU path": measured)
                _STATE["decode_lib"], _STATE["decode_path"] = _load(alt), alt
            except (OSError, AttributeError) as e:
                print(f"gpucoded: ignoring CPU kernels {alt}: {e}", file=sys.stderr)
        return lib


def decode_library() -> ctypes.CDLL | None:
    """The library :func:`combine_into` uses: the AVX2 build where the CPU has it and
    the build made it (decode measured 1.3-2x faster with it), else :func:`library`.

    Encode and :func:`take_rows` keep the baseline build, which was as fast or faster
    for them (memory-bound; ``bench/bench_native_flags.py``).
    """
    library()
    return _STATE.get("decode_lib")


def available() -> bool:
    """Whether the compiled CPU kernels are loaded."""
    return library() is not None


#: Cores of the machine (read once: ``os.cpu_count`` is a system call).
_CPUS = os.cpu_count() or 1
#: Below this many output elements a loop runs on one thread: waking an OpenMP team
#: costs tens of microseconds, more than the work (a warm n=32 call spent a third of
#: its time there).
SERIAL_BELOW = 1 << 15


def threads(elements: int | None = None) -> int:
    """OpenMP threads of a loop writing ``elements`` numbers (``$GPUCODED_HOST_THREADS``,
    else 1 below :data:`SERIAL_BELOW`, else the CPUs, at most 8)."""
    env = os.environ.get("GPUCODED_HOST_THREADS")
    if env:
        return max(1, int(env))
    if elements is not None and elements < SERIAL_BELOW:
        return 1
    return max(1, min(8, _CPUS))


# ------------------------------------------------------------------ workspaces


class WorkspacePool:
    """Reusable 256-byte aligned buffers, reused only when no view of them is alive.

    :meth:`empty` returns an array viewing a pooled byte buffer. NumPy views keep
    their base alive, so while the caller, an executor's worker thread or an
    abandoned straggler holds any view of it, the buffer's reference count is above
    the pool's own and it is not handed out again. At most ``max_idle`` idle buffers
    and ``max_bytes`` of idle memory are kept (oldest dropped first).
    """

    def __init__(self, max_bytes: int = 1 << 30, max_idle: int = 6) -> None:
        self.max_bytes = int(max_bytes)
        self.max_idle = int(max_idle)
        self._bufs: list[np.ndarray] = []
        self._offset: dict[int, int] = {}  # id(buffer) -> bytes to its aligned start
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _free(self, i: int) -> bool:
        # references to an idle buffer: the pool's list and getrefcount's argument
        return sys.getrefcount(self._bufs[i]) <= 2

    def empty(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        """An uninitialised, C-contiguous, 64-byte aligned array (pooled memory)."""
        dt = np.dtype(dtype)
        nbytes = math.prod(int(d) for d in shape) * dt.itemsize
        with self._lock:
            pick = None
            for i in range(len(self._bufs)):
                size = self._bufs[i].nbytes - ALIGN
                if nbytes <= size <= 2 * nbytes + 4096 and self._free(i):
                    pick = self._bufs.pop(i)
                    break
            if pick is None:
                self.misses += 1
                pick = np.empty(nbytes + ALIGN, np.uint8)
                self._offset[id(pick)] = (-_addr(pick)) % ALIGN
                self._bufs.append(pick)
                self._trim()  # only a new buffer can push the pool over its limits
            else:
                self.hits += 1
                self._bufs.append(pick)  # most recently used last
            off = self._offset[id(pick)]
        return pick[off : off + nbytes].view(dt).reshape(tuple(shape))

    def _trim(self) -> None:
        """Drop the oldest idle buffers beyond ``max_idle`` or ``max_bytes``."""
        idle = [i for i in range(len(self._bufs)) if self._free(i)]
        total = sum(self._bufs[i].nbytes for i in idle)
        drop = set()
        for i in idle:
            if len(idle) - len(drop) <= self.max_idle and total <= self.max_bytes:
                break
            drop.add(i)
            total -= self._bufs[i].nbytes
        for i in drop:
            self._offset.pop(id(self._bufs[i]), None)
        self._bufs = [b for i, b in enumerate(self._bufs) if i not in drop]

    def clear(self) -> None:
        """Drop every idle buffer (live ones stay alive through their views)."""
        with self._lock:
            self._bufs.clear()
            self._offset.clear()

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers the pool tracks (idle and in use)."""
        with self._lock:
            return sum(b.nbytes for b in self._bufs)


_POOL = WorkspacePool()


def pool() -> WorkspacePool:
    """The process-wide pool used by ``Code.encode`` on the host."""
    return _POOL


def aligned_empty(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A fresh (not pooled) 256-byte aligned array, e.g. a decode result."""
    dt = np.dtype(dtype)
    nbytes = math.prod(int(d) for d in shape) * dt.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    off = (-_addr(raw)) % ALIGN
    return raw[off : off + nbytes].view(dt).reshape(tuple(shape))


# ------------------------------------------------------------------ kernels


def _addr(a: np.ndarray) -> int:
    """Address of an array's first element.

    Through the buffer protocol where it can (``ndarray.ctypes`` leaves objects
    behind on every call; the hygiene test counts them), else the array interface.
    """
    if a.flags.writeable and a.flags.c_contiguous and a.size:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    return int(a.__array_interface__["data"][0])


def _rows(X: np.ndarray) -> int | None:
    """Row stride of a 2-D array in elements, or None if its rows are not contiguous."""
    if X.ndim != 2 or (X.shape[1] > 1 and X.strides[1] != X.itemsize):
        return None
    s = X.strides[0]
    return s // X.itemsize if s % X.itemsize == 0 and s >= 0 else None


def encode_into(
    X: np.ndarray, G: np.ndarray, grid: tuple[int, int], block: tuple[int, int], Y: np.ndarray
) -> bool:
    r"""``Y[w] = Σ_a G[w, a] X_a`` with the compiled loops; False if they cannot run.

    X (nrows × ncols, rows contiguous) on a ``grid = (gr, gc)`` block grid of
    ``block = (rb, cb)`` blocks, zero padded (``nrows ≤ gr·rb``, ``ncols ≤ gc·cb``);
    G (P, gr·gc); Y (P, rb, cb) C-contiguous; one float dtype (float32 or float64).
    Returns False, writing nothing, without the library, for another dtype or
    layout, or for more than :data:`MAX_TERMS` blocks.

    Raises
    ------
    ValueError
        Shapes that do not fit together (the loops would read or write out of
        bounds).
    """
    lib = library()
    dt = X.dtype
    if lib is None or dt not in _SUFFIX or G.dtype != dt or Y.dtype != dt:
        return False
    gr, gcols = grid
    rb, cb = block
    P = Y.shape[0] if Y.ndim == 3 else -1
    if (
        X.ndim != 2
        or X.shape[0] > gr * rb
        or X.shape[1] > gcols * cb
        or Y.shape != (P, rb, cb)
        or G.shape != (P, gr * gcols)
    ):
        raise ValueError(
            f"encode_into: X {X.shape} on a {gr}x{gcols} grid of {rb}x{cb} blocks, "
            f"G {G.shape} and Y {Y.shape} do not fit (need Y (P, {rb}, {cb}), G (P, {gr * gcols}))"
        )
    ldx = _rows(X)
    if ldx is None or not Y.flags.c_contiguous or gr * gcols > MAX_TERMS:
        return False
    G = np.ascontiguousarray(G)
    fn = lib.gc_host_encode_f32 if dt == np.float32 else lib.gc_host_encode_f64
    rc = fn(_addr(X), ldx, X.shape[0], X.shape[1], gr, gcols, rb, cb, _addr(G), P,
            _addr(Y), threads(Y.size))  # fmt: skip
    return rc == 0


def combine_into(
    W: np.ndarray,
    answers: Sequence[np.ndarray],
    grid: tuple[int, int],
    C: np.ndarray,
) -> bool:
    r"""``C[i rb + r, u db + x] = Σ_k W[i t + u, k] Z_k[r, x]`` with the compiled loops.

    ``answers``: R arrays (rb, db) with contiguous rows; W (p·t, R); C (n × l)
    C-contiguous with ``n ≤ p·rb``, ``l ≤ t·db``; one float dtype. Returns False,
    writing nothing, if the loops cannot run (see :func:`encode_into`).

    Raises
    ------
    ValueError
        Shapes that do not fit together.
    """
    lib = decode_library()
    dt = C.dtype
    R = len(answers)
    if lib is None or dt not in _SUFFIX or W.dtype != dt or R == 0 or R > MAX_TERMS:
        return False
    if any(a.dtype != dt for a in answers) or not C.flags.c_contiguous:
        return False
    gp, gt = grid
    rb, db = answers[0].shape
    n, l = C.shape
    shapes = {a.shape for a in answers}
    if len(shapes) != 1 or W.shape != (gp * gt, R) or n > gp * rb or l > gt * db:
        raise ValueError(
            f"combine_into: answers of shapes {sorted(shapes)}, W {W.shape} and C {C.shape} "
            f"do not fit a {gp}x{gt} block grid"
        )
    lds = [_rows(a) for a in answers]
    if any(s is None for s in lds):
        return False
    W = np.ascontiguousarray(W)
    ptrs = (ctypes.c_void_p * R)(*[_addr(a) for a in answers])
    ldz = (_i64 * R)(*lds)
    fn = lib.gc_host_decode_f32 if dt == np.float32 else lib.gc_host_decode_f64
    rc = fn(ptrs, ldz, R, rb, db, _addr(W), gp, gt, _addr(C), l, n, l, threads(C.size))
    return rc == 0


#: Entries of M below which :func:`rowmul_wide` multiplies with NumPy (same float64
#: sums, another order): for a 32 × 32 operand the three compiled calls' set-up (checks,
#: addresses, an output) cost more than the arithmetic.
SMALL_ROWMUL = 4096


def rowmul_wide(
    M: np.ndarray, W: np.ndarray, *, absmax: bool = False
) -> tuple[np.ndarray, float] | None:
    r"""``M @ W`` in float64 (M float32 or float64, W float64 with at most 8 columns),
    and with ``absmax`` also :math:`\max|M|` (NaN if M has a NaN), in one pass over M.

    The probe products of :func:`gpucoded.probes.measure`: float32 rows are widened as
    they are read (no float64 copy of M), each entry one sequential float64 sum.
    Returns None, computing nothing, where the loops cannot run (no library, another
    dtype, rows not contiguous, W of more than 8 columns). Runs the build of
    :func:`decode_library` (AVX2 where there is one: the loop is arithmetic-bound).
    """
    lib = decode_library()
    dt = M.dtype
    if lib is None or dt not in _SUFFIX or M.ndim != 2 or W.ndim != 2:
        return None
    if M.size <= SMALL_ROWMUL and W.shape[0] == M.shape[1] and W.dtype == np.float64:
        # a few thousand entries: NumPy's call costs less than the loop's set-up
        Mw = M if dt == np.float64 else M.astype(np.float64)
        amax = float(np.abs(Mw).max(initial=0.0)) if absmax else 0.0
        return Mw @ W, amax
    rows, cols = M.shape
    S = W.shape[1]
    ldm = _rows(M) if rows > 0 else cols
    if ldm is None or not 1 <= S <= 8 or W.shape[0] != cols or W.dtype != np.float64:
        return None
    W = np.ascontiguousarray(W)
    out = np.empty((rows, S), np.float64)
    amax = ctypes.c_double(0.0)
    fn = lib.gc_host_rowmul_wide_f32 if dt == np.float32 else lib.gc_host_rowmul_wide_f64
    rc = fn(_addr(M), ldm, rows, cols, _addr(W), S, _addr(out),
            ctypes.addressof(amax) if absmax else None, threads(M.size))  # fmt: skip
    if rc != 0:
        return None
    return out, float(amax.value)


def take_rows(
    X: np.ndarray,
    index: Any,
    transposed: int = 0,
    *,
    out: np.ndarray | None = None,
    out_t: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""``X[index]`` and, for its first ``transposed`` rows, also ``X[index[:T]].T``.

    A minibatch loop that multiplies by :math:`X_b` and by :math:`X_b^\top` needs
    the gathered rows in both layouts; the compiled loop writes both in one pass
    over the source rows (the transposed copy is made from the rows while they are
    in cache) where NumPy gathers and then transposes (a second read). Data
    movement only: the same numbers either way.

    Parameters
    ----------
    X : ndarray (N, k)
        Rows contiguous (any row stride).
    index : array of int
        Rows to take, each in ``0 .. N-1``.
    transposed : int
        How many of the taken rows to also return transposed (0: none).
    out, out_t : ndarray, optional
        C-contiguous destinations, (len(index), k) and (k, transposed) of X's dtype:
        a loop that reuses them skips the page faults of fresh buffers (on this
        project's VMs a fresh 0.8 MB array cost more than the gather itself).

    Returns
    -------
    rows : ndarray (len(index), k)
    rows_t : ndarray (k, transposed) or None
    """
    idx = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
    n, (N, k) = idx.size, X.shape
    T = int(transposed)
    if not 0 <= T <= n:
        raise ValueError(f"transposed must lie in 0..{n}, got {transposed}")
    for name, buf, shape in (("out", out, (n, k)), ("out_t", out_t, (k, T))):
        if buf is not None and (
            buf.shape != shape or buf.dtype != X.dtype or not buf.flags.c_contiguous
        ):
            raise ValueError(f"{name} must be a C-contiguous {X.dtype} array of shape {shape}")
    lib = _STATE["lib"] if "lib" in _STATE else library()
    ldx = _rows(X)
    if lib is None or X.dtype not in _SUFFIX or ldx is None or not n:  # NumPy
        if n and (int(idx.min()) < 0 or int(idx.max()) >= N):
            raise IndexError(f"index must lie in 0..{N - 1}")
        rows = X[idx]
        if out is not None:
            out[...] = rows
            rows = out
        if not T:
            return rows, None
        if out_t is None:
            return rows, np.ascontiguousarray(rows[:T].T)
        np.copyto(out_t, rows[:T].T)
        return rows, out_t
    rows = np.empty((n, k), X.dtype) if out is None else out
    rows_t = (np.empty((k, T), X.dtype) if out_t is None else out_t) if T else None
    fn = lib.gc_host_take_rows_f32 if X.dtype == np.float32 else lib.gc_host_take_rows_f64
    dst_t = rows_t if T else rows
    if fn(_addr(X), ldx, N, _addr(idx), n, k, _addr(rows), k, T, _addr(dst_t), T) == 2:
        raise IndexError(f"index must lie in 0..{N - 1}")
    return rows, rows_t


if __name__ == "__main__":  # python -m gpucoded.hostops: build and report
    print(build())
    print("loaded:", library(reload=True) is not None, _STATE.get("path"))
