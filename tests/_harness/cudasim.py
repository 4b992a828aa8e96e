"""A simulated CUDA device behind CuPy's API, with CUDA's semantics (tests marked ``gpusim``).

What it models, and why each piece is there:

* **Streams** are FIFOs, each run by its own thread with small random delays, so work
  on different streams interleaves and only streams and events order it. The host
  never runs device work itself: reading device memory (``get``, ``float()``,
  ``bool()``) waits for the *current* stream only, as CuPy does.
* **Events** follow CuPy: ``record`` enqueues a marker; ``done`` is True for a
  never-recorded event; ``get_elapsed_time`` raises ``CUDARuntimeError`` while either
  event is unfinished; ``Stream.wait_event`` makes a stream wait for the last record.
* **Devices**: ``ndev`` devices (default 2), ``Device`` contexts with a per-device
  current stream; arrays know their device; kernels and GEMMs refuse operands of
  another device. Peer copies (``cupy.array(x)`` under another device,
  ``MemoryPointer.copy_from_device_async``) run on the stream they are issued on,
  ordered against the source device by nothing else.
* **Memory pool** (per device, one arena per stream like CuPy's): new blocks are
  filled with NaN bytes; a freed block returns to its stream's arena at once and a
  NaN fill is queued on that stream, so a read after free (or a race with the
  block's next owner) shows as NaN. ``used_bytes``/``total_bytes`` as CuPy's pool.
* **Kernels**: ``RawModule``/``RawKernel`` launches hand ``kernels.py``'s own grid,
  block and argument tuple to the real kernel sources compiled by g++ through the
  emulation shim (``tests/_harness/emu.py``), after checking argument types and
  widths, alignment of vector paths and that every access stays inside its buffer
  (``cudaErrorIllegalAddress`` otherwise).
* **cuBLAS**: ``cupy.matmul`` is a queued GEMM honouring the compute type as CuPy 14.2
  does (``tensordot_core_v11``: 2-D float32 GEMMs map only PEDANTIC and TF32, every
  other code is IEEE FP32; batched (>2-D) GEMMs ignore the compute type); ``gemmEx``
  takes the cuBLAS compute type directly (``CUBLAS_COMPUTE_32F_FAST_16BF`` rounds the
  operands to bfloat16, ``..._FAST_TF32`` to TF32; products exact, FP32 sums).

Counters in :attr:`Sim.stats` (host syncs, uploads, downloads, launches, kernel
builds) let tests assert what the library asks of the device; :attr:`Sim.uploads`
and :attr:`Sim.copies` give the bytes of every host-to-device and device-to-device
(peer or local) copy.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import os
import random
import re
import sys
import threading
import time
import types
from collections import Counter, defaultdict, deque
from typing import Any

import numpy as np

from . import emu as _emu

POISON = 0xFF  # every byte 0xFF: NaN in float16/32/64
ALIGN = 512


class CUDARuntimeError(RuntimeError):
    """As ``cupy_backends.cuda.api.runtime.CUDARuntimeError``: a CUDA status code."""

    def __init__(self, status: int, msg: str = ""):
        self.status = status
        names = {
            1: "cudaErrorInvalidValue",
            101: "cudaErrorInvalidDevice",
            400: "cudaErrorInvalidResourceHandle",
            600: "cudaErrorNotReady",
            700: "cudaErrorIllegalAddress",
            716: "cudaErrorMisalignedAddress",
        }
        super().__init__(f"{names.get(status, status)}: {msg}")


# ----------------------------------------------------------------------------- runtime


class _Queue:
    """One hardware work queue ("connection") of a device and the thread that runs it.

    Streams are assigned to the device's queues round robin in creation order, as the
    CUDA driver does (``CUDA_DEVICE_MAX_CONNECTIONS``, default 8, read when the context
    is created): streams sharing a queue are served in submission order, so an
    operation that waits (a spin kernel, an event wait, a GEMM behind a spin of its
    own stream) blocks every later operation of every stream on that queue
    (head-of-line blocking; the driver's false dependencies).
    """

    def __init__(self, sim: Sim, name: str):
        self.sim = sim
        self.q: deque = deque()
        self.cond = threading.Condition()
        self.pending = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, name=f"cudasim-{name}", daemon=True)
        self.thread.start()

    def submit(self, stream: Stream, fn, cost: float = 0.0) -> None:
        with self.cond:
            if self.stop:
                raise RuntimeError("simulated device is shut down")
            with stream._cond:
                stream.pending += 1
                stream.submitted += 1
            self.q.append((stream, fn, cost))
            self.pending += 1
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.q and not self.stop:
                    self.cond.wait()
                if self.stop and not self.q:
                    return
                stream, fn, cost = self.q.popleft()
            d = self.sim.rng_delay() + stream.extra_delay
            if d:
                time.sleep(d)
            t0 = time.perf_counter()
            try:
                fn()
            except BaseException as e:  # a device fault: sticky, raised at the next sync
                self.sim.faults.append(e)
            _busy_until(t0 + cost)  # the device-time model: the op takes its modelled time
            with stream._cond:
                stream.pending -= 1
                stream.completed += 1
                stream._cond.notify_all()
            with self.cond:
                self.pending -= 1
                self.cond.notify_all()

    def wait_idle(self) -> None:
        with self.cond:
            while self.pending:
                self.cond.wait()

    def shutdown(self) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        self.thread.join(timeout=10)


def _busy_until(t: float) -> None:
    """Wait until ``perf_counter() >= t`` (sleep for long waits, spin for short ones)."""
    while True:
        left = t - time.perf_counter()
        if left <= 0:
            return
        if left > 2e-3:
            time.sleep(left - 1e-3)


#: peak GEMM rates (flop/s) of the device-time model, per GEMM mode (H100 SXM-like)
PEAK_FLOPS = {"fp64": 67e12, "ieee32": 67e12, "tf32": 495e12, "bf16": 990e12, "other": 67e12}


class Sim:
    """State of one installed simulated device set.

    ``connections``: hardware queues per device (``CUDA_DEVICE_MAX_CONNECTIONS`` at
    install, default 8, at most 32). Device-time model: a kernel or copy takes
    ``launch_latency + bytes / bandwidth`` on its queue, a GEMM
    ``launch_latency + 2 m n k / PEAK_FLOPS[mode]``, so event deltas show device time
    and, between launches, the host's gaps.
    """

    def __init__(self, ndev: int = 2, max_delay: float = 2e-4, seed: int = 0, sms: int = 2,
                 connections: int | None = None):  # fmt: skip
        self.ndev = ndev
        self.max_delay = max_delay
        self.sms = sms
        if connections is None:
            connections = int(os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS", "8") or 8)
        self.connections = max(1, min(32, connections))
        self.bandwidth = 3.0e12  # B/s, read + write counted
        self.launch_latency = 2e-6  # s per kernel, copy or GEMM
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.tls = threading.local()
        self.queues: list[_Queue] = []
        self.hw: dict[int, list[_Queue]] = {}
        self._next_hw: Counter = Counter()
        self.streams: dict[int, Stream] = {}
        self.null: dict[int, Stream] = {}
        self.pools = [_Pool(self, d) for d in range(ndev)]
        self.stats: Counter = Counter()
        self.gemm_modes: list[str] = []
        self.faults: list[BaseException] = []
        self.compute_types = [0, 0, 0, 0]  # bf16, f16, f32, f64: COMPUTE_TYPE_TBD
        self._ptrs = itertools.count(0x1000, 0x10)
        self.lib = ctypes.CDLL(str(_emu.build()))
        self.uploads: list[int] = []  # bytes of each host-to-device copy
        self.copies: list[tuple[str, int]] = []  # ("peer_copy" | "d2d_copy", bytes) each
        #: cuBLAS handle -> stream pointer its work runs on (cublasSetStream)
        self.handle_stream: dict[int, int] = {}
        #: cuBLAS handle -> [(stream pointer, Stream, submitted count)] of its GEMMs
        self.handle_gemms: dict[int, list] = defaultdict(list)
        self._handles = itertools.count(5000)

    def assign_queue(self, dev: int) -> _Queue:
        """The hardware queue of the next stream created on ``dev`` (round robin)."""
        qs = self.hw.setdefault(dev, [])
        i = self._next_hw[dev] % self.connections
        self._next_hw[dev] += 1
        if i == len(qs):
            q = _Queue(self, f"d{dev}-hw{i}")
            qs.append(q)
            self.queues.append(q)
        return qs[i]

    def cost_bytes(self, nbytes: int) -> float:
        return self.launch_latency + nbytes / self.bandwidth

    def cost_gemm(self, m: int, n: int, k: int, mode: str) -> float:
        return self.launch_latency + 2.0 * m * n * k / PEAK_FLOPS.get(mode, 67e12)

    def rng_delay(self) -> float:
        if self.max_delay <= 0:
            return 0.0
        with self._rng_lock:
            return self._rng.uniform(0, self.max_delay)

    def rng_bool(self) -> bool:
        with self._rng_lock:
            return self._rng.random() < 0.5

    def new_ptr(self) -> int:
        return next(self._ptrs)

    # per-thread current device and stream stacks (CuPy: thread local)
    def device(self) -> int:
        st = getattr(self.tls, "dev", None)
        return st[-1] if st else 0

    def stream_stack(self, dev: int) -> list:
        if not hasattr(self.tls, "streams"):
            self.tls.streams = defaultdict(list)
        return self.tls.streams[dev]

    def current_stream(self, dev: int | None = None) -> Stream:
        dev = self.device() if dev is None else dev
        st = self.stream_stack(dev)
        return st[-1] if st else self.null[dev]

    def sync_point(self, what: str) -> None:
        self.stats["host_sync"] += 1
        self.stats[f"host_sync:{what}"] += 1

    def raise_faults(self) -> None:
        if self.faults:
            e = self.faults[0]
            raise CUDARuntimeError(700, f"a queued operation failed: {e!r}") from e

    def synchronize_all(self, timeout: float = 60.0) -> None:
        end = time.perf_counter() + timeout
        for q in list(self.queues):
            with q.cond:
                while q.pending and time.perf_counter() < end:
                    q.cond.wait(0.1)
                if q.pending:
                    self.faults.append(RuntimeError("a stream is still busy at teardown"))
                    return

    def shutdown(self) -> None:
        for q in list(self.queues):
            q.shutdown()


_SIM: Sim | None = None


def sim() -> Sim:
    if _SIM is None:
        raise RuntimeError("the simulated device is not installed")
    return _SIM


class Stream:
    """``cupy.cuda.Stream``: a FIFO on one of its device's hardware queues.

    Legacy default-stream semantics (CUDA's, for reads and writes alike): an operation
    on the null stream starts after every operation already queued on the device's
    *blocking* streams (``non_blocking=False``), and an operation on a blocking stream
    after every operation already queued on the null stream; ``non_blocking=True``
    streams are ordered against the null stream by nothing but events.
    """

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        s = sim()
        self.device_id = s.device()
        self.ptr = 0 if null else s.new_ptr()
        self.non_blocking = non_blocking
        self.is_null = null
        self.extra_delay = 0.0  # seconds added before each operation (a slow stream)
        self.pending = 0
        self.submitted = 0
        self.completed = 0
        self._cond = threading.Condition()
        self._hw = s.assign_queue(self.device_id)
        if not null:
            s.streams[self.ptr] = self
            s.stats["stream_create"] += 1

    def _legacy_waits(self) -> list:
        """(stream, count) pairs this operation must wait for (legacy-stream ordering)."""
        s = sim()
        if self.is_null:
            others = [st for st in s.streams.values()
                      if st.device_id == self.device_id and not st.non_blocking]  # fmt: skip
        elif not self.non_blocking:
            others = [s.null[self.device_id]]
        else:
            return []
        return [(st, st.submitted) for st in others if st.submitted > st.completed]

    def _submit(self, fn, touches=(), cost: float = 0.0) -> None:
        """Queue ``fn``; ``touches``: device memory (arrays or addresses) it reads or writes.

        Use-after-free detector: memory freed after this call is legal to touch only
        if it belongs to this stream's pool arena (CuPy reuses a freed block in the
        order of the stream it was allocated on); touching memory of another stream's
        arena that was freed meanwhile is a device fault. ``cost``: modelled device
        seconds.
        """
        caps = []
        for t in touches:
            b = t._mem.block if isinstance(t, ndarray) else _find_block(int(t))
            if b is not None:
                caps.append((b, b.frees))
        waits = self._legacy_waits()
        inner, me = fn, self.ptr

        def run():
            for st, n in waits:
                with st._cond:
                    while st.completed < n:
                        st._cond.wait()
            for b, f in caps:
                if b.frees != f and b.arena != me:
                    raise CUDARuntimeError(
                        700, f"use after free: a block of stream {b.arena}'s arena was "
                        f"freed before this operation on stream {me} ran"
                    )
            inner()

        self._hw.submit(self, run, cost)

    def __enter__(self):
        s = sim()
        if self.device_id != s.device():
            raise RuntimeError(
                f"The device that the stream is created on ({self.device_id}) is different "
                f"from the current device ({s.device()})"
            )
        s.stream_stack(self.device_id).append(self)
        return self

    def __exit__(self, *exc):
        sim().stream_stack(self.device_id).pop()

    def use(self):
        st = sim().stream_stack(self.device_id)
        if st:
            st[0] = self
        else:
            st.append(self)
        return self

    def wait_idle(self) -> None:
        with self._cond:
            while self.pending:
                self._cond.wait()

    def synchronize(self):
        s = sim()
        s.sync_point("stream")
        self.wait_idle()
        s.raise_faults()

    @property
    def done(self):
        return self.pending == 0

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        gen = event._gen
        self._submit(lambda: event._wait_gen(gen))

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"


def _stream_by_ptr(ptr: int, dev: int) -> Stream:
    s = sim()
    return s.null[dev] if ptr == 0 else s.streams[ptr]


class Event:
    """``cupy.cuda.Event``: a marker recorded on a stream."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self.disable_timing = disable_timing
        self.ptr = sim().new_ptr()
        sim().stats["event_create"] += 1
        self._gen = 0
        self._done_gen = 0
        self._time: float | None = None
        self._cond = threading.Condition()
        self.device_id: int | None = None

    def record(self, stream=None):
        s = sim()
        stream = s.current_stream() if stream is None else stream
        if stream.device_id != s.device():
            raise CUDARuntimeError(400, "event recorded on a stream of another device")
        self.device_id = stream.device_id
        with self._cond:
            self._gen += 1
            gen = self._gen
        stream._submit(lambda: self._complete(gen))

    def _complete(self, gen: int) -> None:
        with self._cond:
            if gen > self._done_gen:
                self._done_gen = gen
                self._time = time.perf_counter()
            self._cond.notify_all()

    def _wait_gen(self, gen: int) -> None:
        with self._cond:
            while self._done_gen < gen:
                self._cond.wait()

    @property
    def done(self):
        return self._done_gen >= self._gen  # never recorded: True (cudaEventQuery)

    def synchronize(self):
        s = sim()
        s.sync_point("event")
        self._wait_gen(self._gen)
        s.raise_faults()


def get_elapsed_time(start_event, end_event):
    for e in (start_event, end_event):
        if e.disable_timing or e._gen == 0:
            raise CUDARuntimeError(400, "event without timing or never recorded")
        if not e.done:
            raise CUDARuntimeError(600, "event not yet complete")
    return (end_event._time - start_event._time) * 1e3


class Device:
    """``cupy.cuda.Device``: a context setting the current device."""

    def __init__(self, device=None):
        s = sim()
        self.id = s.device() if device is None else int(device)
        if not 0 <= self.id < s.ndev:
            raise CUDARuntimeError(101, f"device {self.id} of {s.ndev}")
        self.attributes = {"MultiProcessorCount": s.sms}
        self.compute_capability = "90"

    def __enter__(self):
        s = sim()
        if not hasattr(s.tls, "dev"):
            s.tls.dev = []
        s.tls.dev.append(self.id)
        return self

    def __exit__(self, *exc):
        sim().tls.dev.pop()

    def use(self):
        s = sim()
        if not getattr(s.tls, "dev", None):
            s.tls.dev = [self.id]
        else:
            s.tls.dev[0] = self.id

    def synchronize(self):
        s = sim()
        s.sync_point("device")
        for st in [st for st in s.streams.values() if st.device_id == self.id]:
            st.wait_idle()
        s.null[self.id].wait_idle()
        s.raise_faults()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_current_stream(device_id=-1):
    s = sim()
    return s.current_stream(None if device_id == -1 else device_id)


def _memset_async(ptr, value, size, stream):
    s = sim()
    _check_range(ptr, size, "memsetAsync")
    _stream_by_ptr(int(stream), s.device())._submit(
        lambda: ctypes.memset(ptr, value, size), (ptr,)
    )


def _memcpy_async(dst, src, size, kind, stream):
    """``cudaMemcpyAsync`` between device addresses (device-to-device only)."""
    s = sim()
    if kind != 3:
        raise CUDARuntimeError(1, "memcpyAsync: only device-to-device is simulated")
    _check_range(dst, size, "memcpyAsync dst")
    _check_range(src, size, "memcpyAsync src")
    s.stats["d2d_copy"] += 1
    s.copies.append(("d2d_copy", int(size)))
    _stream_by_ptr(int(stream), s.device())._submit(
        lambda: ctypes.memmove(dst, src, size), (dst, src), s.cost_bytes(2 * size)
    )


# ----------------------------------------------------------------------------- memory


class _Block:
    __slots__ = ("arena", "buf", "device", "frees", "ptr", "size")

    def __init__(self, device: int, size: int, arena: int):
        self.frees = 0  # times returned to the pool
        self.buf = np.full(size, POISON, dtype=np.uint8)
        self.ptr = self.buf.ctypes.data
        self.size = size
        self.device = device
        self.arena = arena


class _Pool:
    """One device's pool: an arena of free blocks per stream (as CuPy's)."""

    def __init__(self, s: Sim, device: int):
        self.sim = s
        self.device = device
        self.free: dict[tuple[int, int], list[_Block]] = defaultdict(list)
        self.blocks: list[_Block] = []
        self.starts: list[int] = []
        self.used = 0
        self.lock = threading.Lock()

    def malloc(self, nbytes: int, stream: Stream) -> _Block:
        size = max(ALIGN, -(-nbytes // ALIGN) * ALIGN)
        with self.lock:
            lst = self.free[(stream.ptr, size)]
            if lst:
                blk = lst.pop()
            else:
                blk = _Block(self.device, size, stream.ptr)
                self.sim.stats["pool_grow"] += 1
                i = bisect.bisect(self.starts, blk.ptr)
                self.starts.insert(i, blk.ptr)
                self.blocks.insert(i, blk)
            self.used += size
        return blk

    def release(self, blk: _Block) -> None:
        with self.lock:
            self.used -= blk.size
            blk.frees += 1
            self.free[(blk.arena, blk.size)].append(blk)
        stream = _stream_by_ptr(blk.arena, blk.device)
        # the next user of the block on this stream finds NaN: a use after free shows
        try:
            stream._submit(lambda: ctypes.memset(blk.ptr, POISON, blk.size))
        except RuntimeError:
            pass

    def find(self, ptr: int) -> _Block | None:
        with self.lock:
            i = bisect.bisect(self.starts, ptr) - 1
            if i >= 0 and ptr < self.blocks[i].ptr + self.blocks[i].size:
                return self.blocks[i]
        return None

    def total(self) -> int:
        return sum(b.size for b in self.blocks)


def _find_block(ptr: int) -> _Block | None:
    for pool in sim().pools:
        b = pool.find(ptr)
        if b is not None:
            return b
    return None


def _check_range(ptr: int, nbytes: int, what: str, device: int | None = None) -> None:
    if nbytes <= 0:
        return
    b = _find_block(ptr)
    if b is None or ptr + nbytes > b.ptr + b.size:
        raise CUDARuntimeError(700, f"{what}: [{ptr:#x}, +{nbytes}) outside any allocation")
    if device is not None and b.device != device:
        raise CUDARuntimeError(700, f"{what}: memory of device {b.device} used on {device}")


class _Memory:
    """Owner of one block; returning it to the pool when the last array drops it."""

    def __init__(self, nbytes: int):
        s = sim()
        self.device_id = s.device()
        self.block = s.pools[self.device_id].malloc(nbytes, s.current_stream())
        self.ptr = self.block.ptr

    def __del__(self):
        s = _SIM
        if s is not None and self.block is not None:
            s.pools[self.device_id].release(self.block)
            self.block = None


class MemoryPointer:
    """``cupy.cuda.MemoryPointer``: a device address (``ptr``) in an allocation."""

    def __init__(self, mem: _Memory, offset: int):
        self.mem = mem
        self.ptr = mem.ptr + offset
        self.device_id = mem.device_id

    def copy_from_device_async(self, src, size, stream=None):
        s = sim()
        stream = s.current_stream() if stream is None else stream
        _check_range(self.ptr, size, "copy dst")
        _check_range(src.ptr, size, "copy src")
        dst_ptr, src_ptr = self.ptr, src.ptr
        kind = "peer_copy" if src.device_id != self.device_id else "d2d_copy"
        s.stats[kind] += 1
        s.copies.append((kind, int(size)))
        stream._submit(lambda: ctypes.memmove(dst_ptr, src_ptr, size), (dst_ptr, src_ptr),
                       s.cost_bytes(2 * size))

    def memset_async(self, value, size, stream=None):
        s = sim()
        stream = s.current_stream() if stream is None else stream
        ptr = self.ptr
        stream._submit(lambda: ctypes.memset(ptr, value, size))


class MemoryPool:
    """``cupy.get_default_memory_pool()``: bytes of the current device's pool."""

    def used_bytes(self):
        return sim().pools[sim().device()].used

    def total_bytes(self):
        return sim().pools[sim().device()].total()

    def free_all_blocks(self, stream=None):
        pass


_POOL = MemoryPool()


# ----------------------------------------------------------------------------- arrays


class ndarray:
    """Device array: a strided view into a pool block; host access only by copies."""

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(x) for x in shape)
        dtype = np.dtype(dtype)
        if memptr is None:
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            mem = _Memory(n)
            offset = 0
        else:
            mem, offset = memptr.mem, memptr.ptr - memptr.mem.ptr
        if strides is None:
            strides, acc = [], dtype.itemsize
            for d in reversed(shape):
                strides.insert(0, acc)
                acc *= max(d, 1)
            strides = tuple(strides)
        self._mem = mem
        self._offset = offset
        self._view = np.ndarray(shape, dtype, buffer=mem.block.buf, offset=offset, strides=strides)

    # -- metadata
    shape = property(lambda self: self._view.shape)
    dtype = property(lambda self: self._view.dtype)
    ndim = property(lambda self: self._view.ndim)
    size = property(lambda self: self._view.size)
    strides = property(lambda self: self._view.strides)
    itemsize = property(lambda self: self._view.itemsize)
    nbytes = property(lambda self: self._view.nbytes)
    flags = property(lambda self: self._view.flags)

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._mem, self._offset)

    @property
    def device(self) -> Device:
        return Device(self._mem.device_id)

    def _wrap_view(self, v: np.ndarray) -> ndarray:
        out = ndarray.__new__(ndarray)
        out._mem = self._mem
        out._offset = v.__array_interface__["data"][0] - self._mem.ptr
        out._view = v
        return out

    def __len__(self):
        return len(self._view)

    def __repr__(self):
        return f"<cudasim ndarray {self.shape} {self.dtype} on device {self._mem.device_id}>"

    def __array__(self, *a, **k):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly."
        )

    __array_priority__ = 100

    # -- views (no device work)
    def __getitem__(self, key):
        if isinstance(key, ndarray | list | np.ndarray) or (
            isinstance(key, tuple) and any(isinstance(k, ndarray | list | np.ndarray) for k in key)
        ):
            return _op(lambda v, k: v[k], self, key)  # advanced indexing: a gather kernel
        v = self._view[key]
        if not isinstance(v, np.ndarray):
            return _op(lambda x: x[key], self)  # a scalar read stays on the device
        return self._wrap_view(v)

    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not np.isscalar(shape[0]) else shape
        try:
            v = self._view.view()
            v.shape = shape  # raises when a copy would be needed
            return self._wrap_view(v)
        except AttributeError:
            return _op(lambda x: x.reshape(shape, order=order), self)

    def transpose(self, *axes):
        return self._wrap_view(self._view.transpose(*axes))

    T = property(lambda self: self.transpose())
    real = property(lambda self: self._wrap_view(self._view.real))

    def view(self, dtype=None):
        return self._wrap_view(self._view.view() if dtype is None else self._view.view(dtype))

    def ravel(self):
        return self.reshape(-1)

    # -- device work (queued on the current stream)
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _op(lambda v: v.astype(dtype), self)

    def copy(self, order="C"):
        return _op(lambda v: v.copy(), self)

    def fill(self, value):
        v = self._view
        _submit_current(lambda: v.fill(value), self)

    def __setitem__(self, key, value):
        v = self._view
        if isinstance(value, ndarray):
            src = value._view
            _submit_current(lambda: v.__setitem__(key, src), self, value)
        else:
            val = np.array(value, copy=True)
            _submit_current(lambda: v.__setitem__(key, val), self)

    def get(self, stream=None, order="C", out=None, blocking=True):
        s = sim()
        stream = s.current_stream() if stream is None else stream
        s.sync_point("get")
        s.stats["d2h"] += 1
        stream.wait_idle()
        s.raise_faults()
        res = np.array(self._view, order=order, copy=True)
        if out is not None:
            out[...] = res
            return out
        return res

    def set(self, arr, stream=None):
        host = np.array(arr, dtype=self.dtype, copy=True)
        v = self._view
        sim().uploads.append(host.nbytes)
        (stream or sim().current_stream())._submit(lambda: v.__setitem__(..., host))

    def __float__(self):
        return float(self.get())

    def __int__(self):
        return int(self.get())

    def __bool__(self):
        return bool(self.get())

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(np.ndarray, name, None)
        if attr is None or not callable(attr):
            raise AttributeError(name)
        return lambda *a, **k: _op(lambda v, *aa, **kk: getattr(v, name)(*aa, **kk), self, *a, **k)


def _binop(name):
    def f(self, other):
        return _op(lambda a, b: getattr(a, name)(b), self, other)

    return f


for _n in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__matmul__", "__pow__", "__lt__", "__le__", "__gt__", "__ge__",
    "__eq__", "__ne__", "__and__", "__or__",
):  # fmt: skip
    setattr(ndarray, _n, _binop(_n))
ndarray.__neg__ = lambda self: _op(lambda a: -a, self)
ndarray.__abs__ = lambda self: _op(np.abs, self)
ndarray.__hash__ = object.__hash__
ndarray.__module__ = "cupy"  # gpucoded.backend.is_cupy_array looks at the module name


def _arrays(args) -> list[ndarray]:
    out = []
    for a in args:
        if isinstance(a, ndarray):
            out.append(a)
        elif isinstance(a, list | tuple):
            out += _arrays(a)
    return out


def _check_devices(arrs, what: str) -> None:
    dev = sim().device()
    for a in arrs:
        if a._mem.device_id != dev:
            raise ValueError(
                f"{what}: the array is on device {a._mem.device_id}, the current device "
                f"is {dev}"
            )


def _submit_current(fn, *arrs) -> None:
    _check_devices(arrs, "operation")
    sim().current_stream()._submit(fn, arrs)


def _host(a):
    if isinstance(a, ndarray):
        return a._view
    if isinstance(a, list | tuple):
        return type(a)(_host(x) for x in a)
    return a


def _dummy(a):
    if isinstance(a, ndarray):
        return np.broadcast_to(np.zeros((), a.dtype), a.shape)
    if isinstance(a, list | tuple):
        return type(a)(_dummy(x) for x in a)
    return a


def _op(fn, *args, **kw):
    """Queue ``fn`` on the current stream; the result is a new device array."""
    dest = kw.pop("out", None) if isinstance(kw.get("out"), ndarray) else None
    arrs = _arrays(args) + _arrays(kw.values()) + ([dest] if dest is not None else [])
    with np.errstate(all="ignore"):
        meta = fn(*_dummy(args), **{k: _dummy(v) for k, v in kw.items()})
    if not isinstance(meta, np.ndarray | np.generic):
        return meta  # shape/dtype-only functions (result_type, ndim, ...)
    meta = np.asarray(meta)
    out = empty(meta.shape, meta.dtype) if dest is None else dest  # out=: written in place
    ov = out._view

    def run():
        with np.errstate(all="ignore"):
            ov[...] = fn(*_host(args), **{k: _host(v) for k, v in kw.items()})

    nbytes = out.nbytes + sum(a.nbytes for a in arrs)
    _check_devices(arrs, "operation")
    sim().current_stream()._submit(run, arrs, sim().cost_bytes(nbytes))
    return out


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def empty_like(a, dtype=None):
    return empty(a.shape, a.dtype if dtype is None else dtype)


def zeros(shape, dtype=float, order="C"):
    out = empty(shape, dtype, order)
    out.fill(0)
    return out


def full(shape, fill_value, dtype=None, order="C"):
    out = empty(shape, np.result_type(fill_value) if dtype is None else dtype, order)
    out.fill(fill_value)
    return out


def _upload(host: np.ndarray) -> ndarray:
    host = np.array(host, copy=True, order="C")  # pageable: staged at the call
    out = empty(host.shape, host.dtype)
    ov = out._view
    s = sim()
    s.stats["h2d"] += 1
    s.uploads.append(host.nbytes)
    s.current_stream()._submit(lambda: ov.__setitem__(..., host), (), s.cost_bytes(host.nbytes))
    return out


def _device_copy(a: ndarray, dtype=None) -> ndarray:
    """Copy onto the current device on its current stream (a peer read if needed)."""
    s = sim()
    if a._mem.device_id == s.device():
        return a.astype(a.dtype if dtype is None else dtype)
    out = empty(a.shape, a.dtype)
    src = a._view
    ov = out._view
    s.stats["peer_copy"] += 1
    s.copies.append(("peer_copy", int(out.nbytes)))
    s.current_stream()._submit(lambda: ov.__setitem__(..., src))
    return out if dtype is None else out.astype(dtype, copy=False)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        if a._mem.device_id != sim().device():
            return _device_copy(a, dtype)
        return a if dtype is None else a.astype(dtype, copy=False)
    return _upload(np.asarray(a, dtype=dtype))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return _device_copy(obj, dtype)
    return _upload(np.asarray(obj, dtype=dtype))


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray):
        if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return _op(lambda v: np.ascontiguousarray(v, dtype=dtype), a)
    return _upload(np.ascontiguousarray(a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return np.asarray(a, order=order)


def broadcast_to(array, shape):
    return array._wrap_view(np.broadcast_to(array._view, shape))


def get_default_memory_pool():
    return _POOL


def get_array_module(*args):
    return sys.modules["cupy"] if _arrays(args) else np


# ----------------------------------------------------------------------------- cuBLAS

CT_NAMES = {0: "TBD", 1: "DEFAULT", 2: "PEDANTIC", 3: "FP16", 4: "FP32", 5: "FP64", 6: "BF16",
            7: "TF32"}  # fmt: skip


def _ct_index(dtype) -> int:
    ch = np.dtype(dtype).char
    if ch == "e":
        return 1
    if ch in "fF":
        return 2
    if ch in "dD":
        return 3
    raise TypeError(f"dtype is not supported: {dtype}")


def set_compute_type(dtype, compute_type):
    if compute_type not in CT_NAMES:
        raise ValueError(f"Unknown compute type: {compute_type}")
    sim().compute_types[_ct_index(dtype)] = compute_type


def get_compute_type(dtype):
    s = sim()
    i = _ct_index(dtype)
    if s.compute_types[i] == 0:
        ct = 1
        if np.dtype(dtype).char in "fF" and int(os.getenv("CUPY_TF32", "0")) > 0:
            ct = 7
        s.compute_types[i] = ct
    return s.compute_types[i]


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to ``bits`` explicit mantissa bits (nearest, ties to even)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    shift = 23 - bits
    bias = (1 << (shift - 1)) - 1 + ((u >> shift) & 1)
    r = ((u + bias) >> shift) << shift
    out = r.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(x), out, x)


def _gemm_host(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    if mode == "tf32":
        a, b = round_mantissa(a, 10), round_mantissa(b, 10)
    elif mode == "bf16":
        a, b = round_mantissa(a, 7), round_mantissa(b, 7)
    return np.matmul(a, b)  # exact products of the rounded operands, FP32 sums


def matmul(a, b, out=None, **kw):
    """``cupy.matmul``: a queued cuBLAS GEMM, compute type as CuPy 14.2 maps it."""
    s = sim()
    _check_devices([a, b], "matmul")
    dt = np.result_type(a.dtype, b.dtype)
    mode = {"f": "ieee32", "d": "fp64", "F": "ieee32", "D": "fp64"}.get(dt.char, "other")
    if a.ndim == 2 and b.ndim == 2 and dt.char in "fF":
        ct = get_compute_type(dt)
        mode = "tf32" if ct == 7 else "ieee32"  # PEDANTIC is IEEE too; BF16 is not mapped
    s.gemm_modes.append(mode)
    s.stats["gemm"] += 1
    shape = np.matmul(_dummy(a), _dummy(b)).shape
    if out is None:
        out = empty(shape, dt)
    av, bv, ov = a._view, b._view, out._view

    def run():
        ov[...] = _gemm_host(av, bv, mode)

    # CuPy's own handle (one per thread and device): cupy.matmul sets its stream first
    stream = s.current_stream()
    handle = 1000 + s.device()
    s.handle_stream[handle] = stream.ptr
    _note_gemm(handle, stream)
    kdim = a.shape[-1]
    m_, n_ = ov.shape[-2] if ov.ndim > 1 else 1, ov.shape[-1]
    batch = int(np.prod(ov.shape[:-2])) if ov.ndim > 2 else 1
    stream._submit(run, (a, b, out), s.cost_gemm(batch * m_, n_, kdim, mode))
    return out


def _note_gemm(handle: int, stream: Stream) -> None:
    """Count GEMMs queued on a cuBLAS handle while one of another stream is unfinished.

    cuBLAS is deterministic for concurrent GEMMs only when each stream has its own
    handle (or workspace): ``stats["gemm_shared_handle"]`` counts the violations.
    """
    s = sim()
    lst = s.handle_gemms[handle]
    lst[:] = [(st, n) for st, n in lst if st.completed < n]
    if any(st is not stream for st, _ in lst):
        s.stats["gemm_shared_handle"] += 1
    lst.append((stream, stream.submitted + 1))


def _cublas_module() -> types.ModuleType:
    m = types.ModuleType("cupy_backends.cuda.libs.cublas")
    m.CUBLAS_OP_N, m.CUBLAS_OP_T = 0, 1
    m.CUBLAS_COMPUTE_32F, m.CUBLAS_COMPUTE_32F_PEDANTIC = 68, 69
    m.CUBLAS_COMPUTE_32F_FAST_16F, m.CUBLAS_COMPUTE_32F_FAST_16BF = 74, 75
    m.CUBLAS_COMPUTE_32F_FAST_TF32, m.CUBLAS_COMPUTE_64F = 77, 70
    m.CUBLAS_GEMM_DEFAULT, m.CUBLAS_GEMM_DEFAULT_TENSOR_OP = -1, 99
    modes = {68: "ieee32", 69: "ieee32", 75: "bf16", 77: "tf32", 70: "fp64"}
    types_ = {0: np.float32, 1: np.float64}

    def gemmEx(handle, transa, transb, m_, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
               C, Ctype, ldc, computeType, algo):  # fmt: skip
        s = sim()
        if computeType not in modes or not (Atype == Btype == Ctype) or Atype not in types_:
            raise CUDARuntimeError(1, f"gemmEx: compute type {computeType}, types {Atype}")
        dt = np.dtype(types_[Atype])
        it = dt.itemsize
        # column-major: op(A) m x k, op(B) k x n, C m x n
        ar, ac = (m_, k) if transa == 0 else (k, m_)
        br, bc = (k, n) if transb == 0 else (n, k)
        for ptr, r, c, ld, what in ((A, ar, ac, lda, "A"), (B, br, bc, ldb, "B"),
                                    (C, m_, n, ldc, "C")):  # fmt: skip
            if ld < r:
                raise CUDARuntimeError(1, f"gemmEx: ld{what}={ld} < rows {r}")
            _check_range(ptr, ((c - 1) * ld + r) * it, f"gemmEx {what}", s.device())
        al = float(np.frombuffer(ctypes.string_at(alpha, it), dt)[0])
        be = float(np.frombuffer(ctypes.string_at(beta, it), dt)[0])
        mode = modes[computeType]
        s.gemm_modes.append(mode)
        s.stats["gemm"] += 1
        if handle not in s.handle_stream and not 1000 <= handle < 1000 + s.ndev:
            raise CUDARuntimeError(1, f"gemmEx: cuBLAS handle {handle} was not created")
        stream = _stream_by_ptr(s.handle_stream.get(handle, 0), s.device())
        _note_gemm(handle, stream)

        def cm(ptr, r, c, ld):  # column-major r x c view at ptr
            buf = (ctypes.c_char * (((c - 1) * ld + r) * it)).from_address(ptr)
            return np.ndarray((r, c), dt, buffer=buf, strides=(it, ld * it))

        def run():
            a = cm(A, ar, ac, lda)
            b = cm(B, br, bc, ldb)
            c = cm(C, m_, n, ldc)
            a = a if transa == 0 else a.T
            b = b if transb == 0 else b.T
            res = al * _gemm_host(a, b, mode)
            c[...] = res if be == 0 else res + be * c

        stream._submit(run, (A, B, C), s.cost_gemm(m_, n, k, mode))

    def create():
        s = sim()
        h = next(s._handles)
        s.handle_stream[h] = 0
        s.stats["cublas_create"] += 1
        return h

    def destroy(handle):
        sim().handle_stream.pop(handle, None)

    def setStream(handle, stream):
        sim().handle_stream[handle] = int(stream)

    def getStream(handle):
        return sim().handle_stream.get(handle, 0)

    m.gemmEx = gemmEx
    m.create, m.destroy, m.setStream, m.getStream = create, destroy, setStream, getStream
    return m


# ----------------------------------------------------------------------------- kernels

# C signatures of kernels/*.cu: P = pointer to data type, A = pointer to accumulation
# type, PP = pointer to an array of data pointers, i/l = int32/int64.
_SIGS = {
    "encode": ("P", "l", "l", "l", "i", "i", "l", "l", "A", "i", "P"),
    "decode": ("PP", "i", "l", "l", "A", "i", "i", "P", "l", "l", "l"),
    "delay": ("I", "l"),
}
_CT = {"float": np.float32, "double": np.float64, "gc::half_t": np.float16}
_SUFFIX = {np.dtype(np.float16): "f16", np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _parse(name: str) -> tuple[str, Any, int, int]:
    if name == "gc_delay":
        return "delay", None, 1, 1
    m = re.fullmatch(r"gc_(encode|decode)<(float|double|gc::half_t), (\d+), (\d+)>", name)
    if not m:
        raise CUDARuntimeError(500, f"no kernel named {name!r}")
    return m.group(1), np.dtype(_CT[m.group(2)]), int(m.group(3)), int(m.group(4))


class RawKernel:
    """A kernel of ``kernels/*.cu``; a launch runs the g++-compiled source on a stream."""

    def __init__(self, code, name, options=(), backend="nvrtc", *, translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=None):  # fmt: skip
        self.code = code
        self.name = name
        self.family, self.T, self.vec, self.maxm = _parse(name)
        sim().stats["kernel_build"] += 1

    def __call__(self, grid, block, args, *, shared_mem=0):
        s = sim()
        (g,), (b,) = tuple(grid), tuple(block)
        sig = _SIGS[self.family]
        if len(args) != len(sig):
            raise TypeError(f"{self.name}: {len(args)} arguments, the kernel takes {len(sig)}")
        acc = np.dtype(np.float32) if self.T == np.dtype(np.float16) else self.T
        cargs = []
        for a, kind in zip(args, sig, strict=True):
            if kind in ("i", "l"):
                want = np.int32 if kind == "i" else np.int64
                if type(a) is not want:
                    raise TypeError(f"{self.name}: argument {a!r} must be {want.__name__}")
                cargs.append(ctypes.c_int(int(a)) if kind == "i" else ctypes.c_longlong(int(a)))
                continue
            if not isinstance(a, ndarray):
                raise TypeError(f"{self.name}: pointer argument must be a device array")
            _check_devices([a], self.name)
            want = {"P": self.T, "A": acc, "PP": np.dtype(np.uint64), "I": np.dtype(np.int32)}
            if a.dtype != want[kind]:
                raise TypeError(f"{self.name}: array of {a.dtype}, kernel expects {want[kind]}")
            cargs.append(ctypes.c_void_p(a.data.ptr))
        s.stats["launch"] += 1
        s.stats[f"launch:{self.family}"] += 1
        lib, rev = s.lib, s.rng_bool()
        dev = s.device()
        ptr_args = [a for a in args if isinstance(a, ndarray)]
        if self.family == "delay":
            self._memcheck(args, dev)
            flag_ptr, ns = args[0].data.ptr, int(args[1])

            def spin():  # the real kernel in 200 us slices, the CPU yielded between them
                end = time.perf_counter() + ns / 1e9
                while True:
                    left = end - time.perf_counter()
                    if left <= 0 or ctypes.c_int32.from_address(flag_ptr).value != 0:
                        return
                    lib.gc_emu_delay(cargs[0], ctypes.c_longlong(int(min(left, 2e-4) * 1e9)))
                    time.sleep(2e-4)

            s.current_stream()._submit(spin, ptr_args, s.launch_latency)
            return
        fn = getattr(lib, f"gc_emu_{self.family}_{_SUFFIX[self.T]}")
        head = (ctypes.c_int(self.vec), ctypes.c_int(self.maxm), ctypes.c_uint(g),
                ctypes.c_uint(b), ctypes.c_int(int(rev)))  # fmt: skip

        def run():  # checked when it runs: the pointer array is device data
            self._memcheck(args, dev)
            if fn(*head, *cargs) != 0:
                raise RuntimeError(f"no instantiation {self.name} in the harness")

        s.current_stream()._submit(run, ptr_args, s.cost_bytes(self._bytes(args)))

    def _bytes(self, args) -> int:
        """Bytes the launch reads and writes (the device-time model)."""
        it = self.T.itemsize
        v = [x if isinstance(x, ndarray) else int(x) for x in args]
        if self.family == "encode":
            _, _, nr, nc, _, _, rb, cb, _, P, _ = v
            return (nr * nc + P * rb * cb) * it
        _, R, rb, db, _, _, _, _, _, nr, nc = v
        return (R * rb * db + nr * nc) * it

    def _memcheck(self, args, dev: int) -> None:
        """Every address the kernel touches lies in its allocation; vector paths aligned."""
        it = self.T.itemsize if self.T is not None else 4
        acc = 4 if it == 2 else it
        v = self.vec
        if self.family == "delay":
            _check_range(args[0].data.ptr, 4, "gc_delay flag")
            return
        if self.family == "encode":
            X, ld, nr, nc, gr, gc_, rb, cb, G, P, Y = (x if isinstance(x, ndarray) else int(x)
                                                       for x in args)  # fmt: skip
            if nr > 0:
                _check_range(X.data.ptr, ((nr - 1) * ld + nc) * it, "encode X")
            _check_range(G.data.ptr, P * gr * gc_ * acc, "encode G")
            _check_range(Y.data.ptr, P * rb * cb * it, "encode Y")
            ptrs, dims = [X.data.ptr, Y.data.ptr], [ld, cb]
        else:
            Zp, R, rb, db, W, gp, gt, C, ldc, nr, nc = (x if isinstance(x, ndarray) else int(x)
                                                        for x in args)  # fmt: skip
            _check_range(Zp.data.ptr, R * 8, "decode pointer array")
            zs = np.frombuffer(ctypes.string_at(Zp.data.ptr, R * 8), np.uint64) if R else []
            for k, z in enumerate(zs):
                _check_range(int(z), rb * db * it, f"decode answer {k}", dev)
            _check_range(W.data.ptr, gp * gt * R * acc, "decode W")
            if nr > 0:
                _check_range(C.data.ptr, ((nr - 1) * ldc + nc) * it, "decode C")
            ptrs, dims = [*map(int, zs), C.data.ptr], [db, ldc]
        if v > 1 and (any(p % (v * it) for p in ptrs) or any(d % v for d in dims)):
            raise CUDARuntimeError(716, f"{self.name}: vector access not aligned")


class RawModule:
    """``cupy.RawModule``: kernels by name expression (NVRTC) or mangled name (fatbin)."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=None):  # fmt: skip
        import json

        from gpucoded import kernels as K

        if (code is None) == (path is None):
            raise TypeError("One of code and path must be specified")
        self.code, self.path = code, path
        self.names = None
        if path is not None:
            from pathlib import Path

            p = Path(path)
            names = json.loads(p.with_name(K.NAMES_NAME).read_text())
            self.names = {v: k for k, v in names.items()}
        else:
            for ne in name_expressions or ():
                fam = _parse(ne)[0]
                if f"gc_{fam}" not in code:
                    raise CUDARuntimeError(1, f"{ne} not in the module source")
            self.exprs = set(name_expressions or ())
        sim().stats["module_build"] += 1

    def get_function(self, name):
        if self.names is not None:
            if name not in self.names:
                raise CUDARuntimeError(500, f"no symbol {name} in {self.path}")
            return RawKernel(self.code, self.names[name])
        if name not in self.exprs:
            raise CUDARuntimeError(500, f"{name} was not a name expression of the module")
        return RawKernel(self.code, name)


# ----------------------------------------------------------------------------- install


def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def install(monkeypatch, ndev: int = 2, max_delay: float = 2e-4, seed: int = 0) -> Sim:
    """Install the simulated device as ``cupy``; undone (threads joined) at teardown."""
    global _SIM
    from gpucoded import backend, kernels

    s = Sim(ndev=ndev, max_delay=max_delay, seed=seed)
    _SIM = s
    # one BLAS thread per simulated queue: concurrent multi-threaded GEMMs from several
    # queue threads thrash a small machine (worker answers 10x late, orders flip)
    blas = _blas_one_thread()
    for d in range(ndev):
        s.tls.dev = [d]
        s.null[d] = Stream(null=True)
    s.tls.dev = []

    runtime = _module(
        "cupy.cuda.runtime",
        CUDARuntimeError=CUDARuntimeError,
        CUDA_R_32F=0,
        CUDA_R_64F=1,
        memcpyDeviceToDevice=3,
        memsetAsync=_memset_async,
        memcpyAsync=_memcpy_async,
        getDeviceProperties=lambda d: {"name": b"cudasim", "major": 9, "minor": 0,
                                       "multiProcessorCount": s.sms},  # fmt: skip
        getDeviceCount=lambda: s.ndev,
        getDevice=lambda: s.device(),
        deviceCanAccessPeer=lambda a, b: 1,
        runtimeGetVersion=lambda: 13000,
    )
    device = _module(
        "cupy.cuda.device", Device=Device, get_cublas_handle=lambda: 1000 + s.device()
    )
    cuda = _module(
        "cupy.cuda",
        Stream=Stream,
        Event=Event,
        Device=Device,
        MemoryPointer=MemoryPointer,
        get_current_stream=get_current_stream,
        get_elapsed_time=get_elapsed_time,
        is_available=lambda: True,
        runtime=runtime,
        device=device,
    )
    Stream.null = property(lambda self: s.null[s.device()])
    linalg_core = _module(
        "cupy._core._routines_linalg",
        get_compute_type=get_compute_type,
        set_compute_type=set_compute_type,
        COMPUTE_TYPE_DEFAULT=1,
        COMPUTE_TYPE_PEDANTIC=2,
        COMPUTE_TYPE_BF16=6,
        COMPUTE_TYPE_TF32=7,
    )
    core = _module("cupy._core", _routines_linalg=linalg_core)
    linalg = _module("cupy.linalg", norm=lambda *a, **k: _op(np.linalg.norm, *a, **k))
    cublas = _cublas_module()
    cp = _module(
        "cupy",
        __version__="14.2.0+cudasim",
        ndarray=ndarray,
        cuda=cuda,
        _core=core,
        linalg=linalg,
        RawModule=RawModule,
        RawKernel=RawKernel,
        empty=empty,
        empty_like=empty_like,
        zeros=zeros,
        full=full,
        asarray=asarray,
        array=array,
        ascontiguousarray=ascontiguousarray,
        asnumpy=asnumpy,
        matmul=matmul,
        broadcast_to=broadcast_to,
        get_default_memory_pool=get_default_memory_pool,
        get_array_module=get_array_module,
        sim=s,
    )

    def fallback(name):  # any other NumPy function: a queued device operation
        f = getattr(np, name)
        if callable(f) and not isinstance(f, type):
            return lambda *a, **k: _op(f, *a, **k)
        return f

    cp.__getattr__ = fallback
    mods = {
        "cupy": cp,
        "cupy.cuda": cuda,
        "cupy.cuda.runtime": runtime,
        "cupy.cuda.device": device,
        "cupy._core": core,
        "cupy._core._routines_linalg": linalg_core,
        "cupy.linalg": linalg,
        "cupy_backends": _module("cupy_backends"),
        "cupy_backends.cuda": _module("cupy_backends.cuda"),
        "cupy_backends.cuda.libs": _module("cupy_backends.cuda.libs", cublas=cublas),
        "cupy_backends.cuda.libs.cublas": cublas,
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    _reset_library_caches(backend, kernels)

    def teardown():
        global _SIM
        s.synchronize_all()
        faults = list(s.faults)
        _reset_library_caches(backend, kernels)
        import gc

        gc.collect()
        s.shutdown()
        if blas is not None:
            blas.restore_original_limits()
        _SIM = None
        if faults:
            raise AssertionError(f"device faults during the test: {faults}")

    s.teardown = teardown
    return s


_BLAS_CTL: list = []


def _blas_one_thread():
    """Limit BLAS to one thread (restorable), or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    if not _BLAS_CTL:
        _BLAS_CTL.append(ThreadpoolController())
    return _BLAS_CTL[0].limit(limits=1, user_api="blas")


def _reset_library_caches(backend, kernels) -> None:
    """Forget everything the library keeps per device (a new simulated device set)."""
    from gpucoded import executors
    from gpucoded.executors import cuda as cuda_ex

    backend.cupy_or_none.cache_clear()
    with executors._LOCK:  # streams of the previous device set: dropped, not waited for
        executors._DEFAULTS.clear()
    with cuda_ex._INFLIGHT_LOCK:
        cuda_ex._INFLIGHT.clear()
    reset = getattr(kernels, "reset_device_state", None)
    if reset is not None:
        reset()
    from gpucoded import probes

    probes.reset_device_state()
