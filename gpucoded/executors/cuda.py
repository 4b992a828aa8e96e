"""GPU executor: workers run on non-blocking CUDA streams, one cuBLAS GEMM each.

Worker ``w`` computes ``At[w] @ Bt[w]`` on a non-blocking worker stream of the device
it is placed on, with that stream's own cuBLAS handle (``gemmEx`` in the precision
mode's compute type, :func:`gpucoded.gpu.gemm`; concurrent GEMMs never share a handle
or its workspace). Streams, handles and events are created once per executor and
device and reused by every run: a control stream (cancel writes), then
:func:`gpucoded.gpu.worker_stream_slots` worker streams, created together so each has
a hardware queue of its own (CUDA has ``CUDA_DEVICE_MAX_CONNECTIONS`` queues; streams
beyond them share queues, and a spin on one blocks the rest of its queue). With more
workers than worker streams, delayed workers get streams of their own and the others
share the rest (:meth:`CudaStreamExecutor._slots`). Each
stream records CUDA events around its work; the run polls ``event.done``
(``cudaEventQuery``), so answers are yielded in completion order with no
device-wide synchronisation, and per-worker times come from
``cudaEventElapsedTime`` against a reference event recorded at the start.

Straggler injection (``delays[w]`` seconds):

* ``delay_mode="gpu"`` (default): a one-thread delay kernel spins for
  ``delays[w]`` on the worker's stream before its GEMM, so the GPU really is
  late. ``math.inf``: the same kernel capped at ``never_cap`` seconds and no
  GEMM: the worker never answers. Every spin also watches a per-run device
  flag that :meth:`Run.cancel` sets (``cudaMemsetAsync`` on a control stream),
  so cancelling ends all injected waits at once. A GEMM already queued behind
  a released delay still runs (CUDA work cannot be dequeued); it is finite and
  its answer is ignored.
* ``delay_mode="host"``: the GEMM runs at once; the answer is withheld on the
  host until ``delays[w]`` after the start (``inf``: never delivered).

Several GPUs: workers are placed over ``devices`` (round robin by default, see
:func:`gpucoded.gpu.place_workers`); each device receives one copy of the slices
of ``At``/``Bt`` its workers need; answers are copied back to the caller's device
(peer-to-peer where the driver allows it) as they are collected. Every
cross-device copy is ordered by events on both sides: it runs on the stream of the
memory it reads (so that memory is not reused before the copy) after the
destination's allocation, and the destination's stream waits for it.

Encoded once, used many times (:class:`gpucoded.CodedMatrix`):
:meth:`CudaStreamExecutor.place` copies each worker's block of one side to that
worker's device once and returns a :class:`DevicePlaced`; a run given it as ``At`` or
``Bt`` runs worker w on ``where[w]``, reads the resident block in place, and copies
only the other operand. Each device's placed copies end with an event that the run's
worker streams wait for, so a run may start while they are still in flight (on any
stream of any thread). On one device that already holds the CuPy stack, ``place``
keeps the stack as it is (nothing to copy).

Ordering without host synchronisation: each device's inputs and the worker outputs
are allocated on that device's current stream, one event marks them ready, and each
worker stream waits for it; the run never synchronises the device while stragglers
may still be running.

Lifetime of in-flight work: CuPy's pool hands a freed block back to its stream's
arena at once, so memory that queued work may still touch must stay referenced until
that work is *observed* complete. Every worker records a last event after everything
it queued (delay kernel, GEMM); at :meth:`~CudaStreamExecutor.start` the run registers,
in a process-wide list, that event with the worker's stream, inputs, output and the
run's cancel flag; the cancel write registers its own event. Entries leave the list
only when their event is done (checked at every start, cancel and close), so neither
a returned call, nor a cancelled or failed worker, nor a dropped executor lets a
straggler write into memory the pool has handed to someone else.

Float32 GEMMs run in an explicit format (``precision``, default ``"ieee"``: no
TF32), see :mod:`gpucoded.gpu`; :meth:`CudaStreamExecutor.compute_format` reports it
(tf32/bf16 when set), and the decode's bounds use it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import gpu
from ..errors import warn_user
from ..formats import Format
from .base import Answer, Executor, Placed, Run

__all__ = ["CudaStreamExecutor", "DevicePlaced"]


#: (event, objects the work before it may touch): kept until the event is observed done
_INFLIGHT: list[tuple[Any, tuple]] = []
_INFLIGHT_LOCK = threading.Lock()


def _hold(event: Any, *refs: Any) -> None:
    """Keep ``refs`` alive until ``event`` (recorded after the work using them) is done."""
    with _INFLIGHT_LOCK:
        _INFLIGHT.append((event, refs))


def _release_done() -> int:
    """Drop the entries whose event is done; return how many are still in flight."""
    with _INFLIGHT_LOCK:
        _INFLIGHT[:] = [x for x in _INFLIGHT if not x[0].done]
        return len(_INFLIGHT)


def inflight() -> int:
    """Number of held entries whose work has not been observed complete (tests, hygiene)."""
    return _release_done()


@dataclass
class _Worker:
    w: int
    device: int
    stream: Any
    ev_start: Any = None  # before the injected delay
    ev_gemm: Any = None  # before the GEMM
    ev_end: Any = None  # after the GEMM
    ev_last: Any = None  # after everything queued on the stream for this run
    handle: int | None = None  # the stream's own cuBLAS handle
    product: Any = None
    host_delay: float = 0.0
    never: bool = False
    error: BaseException | None = None
    done: bool = False


class DevicePlaced(Placed):
    """One side's encoded blocks, each resident on the device of the worker that uses it.

    Made by :meth:`CudaStreamExecutor.place`. ``blocks[w]`` is worker w's block (a view
    of one contiguous per-device stack) on device ``where[w]``; ``ready[d]`` an event
    recorded on device d after its copies, which every run's worker streams on d wait
    for (no device-wide synchronisation); ``home`` the device the stack came from.
    """

    def __init__(
        self, blocks: dict[int, Any], shape: tuple, dtype: Any, where: dict[int, int],
        ready: dict[int, Any], home: int,
    ) -> None:  # fmt: skip
        super().__init__(blocks, shape, dtype, where)
        self.ready = ready
        self.home = home


@dataclass
class _DeviceStreams:
    """One device's streams of an executor, created once (``_streams_of``)."""

    ctl: Any  # control stream: cancel writes
    slots: list[Any]  # worker streams, one hardware queue each
    handles: list[int]  # one cuBLAS handle per worker stream
    events: list[Any] = field(default_factory=list)  # finished events, reused


@dataclass
class _DeviceState:
    a: dict[int, Any]  # worker -> its A block on this device
    b: dict[int, Any]  # worker -> its B block on this device
    ref: Any  # inputs and outputs ready; also the time origin on this device
    out: Any = None  # (workers on this device, rb, db) outputs, allocated before ref
    out_index: dict[int, int] = field(default_factory=dict)  # worker -> row of out
    flag: Any = None  # int32[1]; set on cancel, ends every delay kernel of the run
    ctl: Any = None  # control stream for the release


class _CudaRun(Run):
    def __init__(
        self,
        ex: CudaStreamExecutor,
        workers: list[_Worker],
        devs: dict[int, _DeviceState],
        home: int,
        t0: float,
        timeout: float | None,
        to_numpy: bool,
    ) -> None:
        self._ex = ex
        self._workers = workers
        self._devs = devs
        self._home = home
        self._t0 = t0
        self._timeout = timeout
        self._to_numpy = to_numpy
        self._cancelled = False
        #: worker -> seconds spent in its GEMM alone (events), filled as answers arrive
        self.gemm_times: dict[int, float] = {}

    def _elapsed(self, dev: int, ev: Any) -> float:
        import cupy as cp

        with cp.cuda.Device(dev):
            return cp.cuda.get_elapsed_time(self._devs[dev].ref, ev) / 1e3

    def _collect(self, wk: _Worker) -> Answer:
        import cupy as cp

        start = self._elapsed(wk.device, wk.ev_start)
        end = self._elapsed(wk.device, wk.ev_end)
        with cp.cuda.Device(wk.device):
            self.gemm_times[wk.w] = cp.cuda.get_elapsed_time(wk.ev_gemm, wk.ev_end) / 1e3
        prod = wk.product
        if self._to_numpy:
            prod = cp.asnumpy(prod, stream=wk.stream)
        elif wk.device != self._home:
            prod = _copy_to(prod, wk.device, self._home)  # peer copy onto the caller's device
        end = max(end, wk.host_delay)
        return Answer(wk.w, prod, None, start, end)

    def __iter__(self) -> Iterator[Answer]:
        pending = [wk for wk in self._workers if not wk.never]
        for wk in list(pending):
            if wk.error is not None:
                pending.remove(wk)
                yield Answer(wk.w, None, wk.error, 0.0, 0.0)
        poll = self._ex.poll_interval
        while pending and not self._cancelled:
            now = time.perf_counter() - self._t0
            if self._timeout is not None and now > self._timeout:
                return
            ready = [wk for wk in pending if wk.ev_end.done and now >= wk.host_delay]
            if not ready:
                time.sleep(poll)
                continue
            ready.sort(key=lambda wk: self._elapsed(wk.device, wk.ev_end))
            for wk in ready:
                pending.remove(wk)
                wk.done = True
                try:
                    ans = self._collect(wk)
                except Exception as e:  # pragma: no cover - device errors
                    ans = Answer(wk.w, None, e, 0.0, 0.0)
                yield ans
                if self._cancelled:
                    return

    def cancel(self) -> None:
        """Stop yielding; release every injected delay kernel so the streams drain.

        Returns at once (the flag is set with ``cudaMemsetAsync`` on a control
        stream). Not cancelled: GEMMs already queued on the worker streams (CUDA work
        cannot be dequeued) still run to completion; their outputs and inputs stay
        allocated until then (:meth:`CudaStreamExecutor.close` waits for them).
        """
        if self._cancelled:
            return
        self._cancelled = True
        import cupy as cp

        for dev, st in self._devs.items():
            if st.flag is not None:
                with cp.cuda.Device(dev):
                    st.ctl.wait_event(st.ref)  # after the flag was zeroed (stream order)
                    cp.cuda.runtime.memsetAsync(st.flag.data.ptr, 1, 4, st.ctl.ptr)
                    _hold(st.ctl.record(self._ex._event(dev)), st)
        # the run's events go back to the pool; one is handed out again only once done
        for wk in self._workers:
            self._ex._give_back(wk.device, [wk.ev_start, wk.ev_gemm, wk.ev_end, wk.ev_last])
        for dev, st in self._devs.items():
            self._ex._give_back(dev, [st.ref])
        _release_done()


class CudaStreamExecutor(Executor):
    """Workers as non-blocking CUDA streams (cuBLAS GEMMs), completion via events.

    Parameters
    ----------
    devices : sequence of int, optional
        GPUs to use (default: the current device only).
    placement : "round_robin", "block", mapping or sequence
        Worker -> device assignment, see :func:`gpucoded.gpu.place_workers`.
    delay_mode : {"gpu", "host"}
        How ``delays`` are injected (module docstring).
    precision : {"ieee", "pedantic", "tf32", "bf16"}
        cuBLAS compute type of float32 GEMMs; ``"ieee"`` (default) never uses TF32.
    never_cap : float
        Safety cap (s) for the spin kernel of a worker that never completes.
    poll_interval : float
        Seconds between event polls (host sleep).
    """

    name = "cuda"

    def __init__(
        self,
        devices: Sequence[int] | None = None,
        placement: Any = "round_robin",
        delay_mode: str = "gpu",
        precision: str = "ieee",
        never_cap: float = 120.0,
        poll_interval: float = 20e-6,
    ) -> None:
        if delay_mode not in ("gpu", "host"):
            raise ValueError("delay_mode must be 'gpu' or 'host'")
        if precision not in gpu.PRECISION_MODES:
            raise ValueError(f"precision must be one of {sorted(gpu.PRECISION_MODES)}")
        self.devices = None if devices is None else [int(d) for d in devices]
        self.placement = placement
        self.delay_mode = delay_mode
        self.precision = precision
        self.never_cap = float(never_cap)
        self.poll_interval = float(poll_interval)
        #: device -> its streams: control stream, worker slots, their cuBLAS handles
        self._dev: dict[int, _DeviceStreams] = {}
        self._lock = threading.Lock()

    def compute_format(self, dtype: Any) -> Format:
        """The format the worker GEMMs run in: the precision mode's (tf32, bf16) for float32."""
        return gpu.precision_format(self.precision, dtype)

    def _streams_of(self, device: int) -> _DeviceStreams:
        """The device's streams, created once, together: the control stream, then
        :func:`gpucoded.gpu.worker_stream_slots` worker streams (consecutive streams get
        distinct hardware queues), each with its own cuBLAS handle."""
        import cupy as cp

        with self._lock:
            ds = self._dev.get(device)
            if ds is None:
                with cp.cuda.Device(device):
                    ctl = cp.cuda.Stream(non_blocking=True)
                    slots = [cp.cuda.Stream(non_blocking=True)
                             for _ in range(gpu.worker_stream_slots())]  # fmt: skip
                    handles = [gpu.new_handle(s) for s in slots]
                ds = self._dev[device] = _DeviceStreams(ctl, slots, handles)
        return ds

    def _slots(self, device: int, mine: list[int], delayed: set[int]) -> dict[int, int]:
        """Worker -> index of its worker stream on ``device``.

        As many workers as streams: one each. More workers than streams: delayed
        workers (their spin blocks whatever follows on their stream) get streams of
        their own first, the others share the rest round robin, so a delay never holds
        up an undelayed worker; if even that is impossible, a warning says so.
        """
        n = len(self._streams_of(device).slots)
        if len(mine) <= n:
            return {w: i for i, w in enumerate(mine)}
        slow = [w for w in mine if w in delayed]
        own = slow[: n - 1]
        rest = [w for w in mine if w not in own]
        if len(slow) > len(own):
            warn_user(
                f"{len(slow)} delayed workers but {n} worker streams on device {device} "
                f"(CUDA_DEVICE_MAX_CONNECTIONS={gpu.hardware_queues()}): delayed workers "
                "share streams and delay each other; set CUDA_DEVICE_MAX_CONNECTIONS=32 "
                "before CUDA starts, or delay fewer workers",
                UserWarning,
            )
        out = {w: i for i, w in enumerate(own)}
        free = list(range(len(own), n))
        out.update({w: free[i % len(free)] for i, w in enumerate(rest)})
        return out

    def _event(self, device: int) -> Any:
        """A finished event of the device's pool (created only when none is free)."""
        import cupy as cp

        ds = self._streams_of(device)
        with self._lock:
            for i, ev in enumerate(ds.events):
                if ev.done:
                    return ds.events.pop(i)
        with cp.cuda.Device(device):
            return cp.cuda.Event()

    def _give_back(self, device: int, events: list[Any]) -> None:
        ds = self._dev.get(device)
        if ds is not None:
            with self._lock:
                ds.events.extend(e for e in events if e is not None)
                del ds.events[4 * len(ds.slots) + 64 :]  # bounded

    def place(self, Xt: Any) -> Any:
        r"""Copy each worker's block of ``Xt`` (P, rows, cols) to that worker's device, once.

        Workers map to devices as in :meth:`start` (``placement`` over all P workers).
        On one device holding the CuPy stack already, the stack is kept as it is.
        Otherwise each device d receives one contiguous stack of the rows its workers
        use (:math:`\{\tilde X_w : \mathrm{where}[w]=d\}`), copied peer-to-peer (or
        uploaded, for a NumPy stack) in stream order, and an event marks it ready;
        :meth:`start` then reads those copies and copies nothing of this side again.

        Returns
        -------
        DevicePlaced or array
            The placed blocks, to pass to :meth:`start` as ``At`` or ``Bt``.
        """
        import cupy as cp

        _require_device()
        on_device = isinstance(Xt, cp.ndarray)
        home = Xt.device.id if on_device else cp.cuda.Device().id
        devices = self.devices or [home]
        if on_device and set(devices) == {home}:
            return Xt
        where = gpu.place_workers(range(Xt.shape[0]), devices, self.placement)
        blocks: dict[int, Any] = {}
        ready: dict[int, Any] = {}
        for dev in sorted(set(where.values())):
            mine = [w for w in where if where[w] == dev]
            X_d = _rows_to(Xt, mine, dev, home)
            blocks.update({w: X_d[i] for i, w in enumerate(mine)})
            with cp.cuda.Device(dev):
                ready[dev] = cp.cuda.get_current_stream().record()
        return DevicePlaced(blocks, Xt.shape, Xt.dtype, where, ready, home)

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        _require_device()
        msg = gpu.tf32_env_warning()
        if msg and self.precision == "ieee":
            warn_user(msg, UserWarning)
        _release_done()
        workers = [int(w) for w in workers]
        to_numpy, home, pinned = _home_of(At, Bt)
        if pinned is not None:  # run each worker where its placed block is
            missing = [w for w in workers if w not in pinned.where]
            if missing:
                raise ValueError(
                    f"workers {missing} have no placed block (placed: {sorted(pinned.where)})"
                )
            place = {w: pinned.where[w] for w in workers}
        else:
            place = gpu.place_workers(workers, self.devices or [home], self.placement)
        t0 = time.perf_counter()
        need_flag = (
            self.delay_mode == "gpu"
            and delays is not None
            and any(float(delays[w]) > 0 for w in workers)
        )
        devs = {
            dev: self._prepare(At, Bt, [w for w in workers if place[w] == dev], dev, home,
                               to_numpy, need_flag)  # fmt: skip
            for dev in sorted(set(place.values()))
        }
        delayed = set()
        if self.delay_mode == "gpu" and delays is not None:
            delayed = {w for w in workers if float(delays[w]) > 0}
        slot: dict[int, int] = {}
        for dev in devs:
            slot.update(self._slots(dev, [w for w in workers if place[w] == dev], delayed))
        run_workers: list[_Worker] = []
        with gpu.gemm_precision(self.precision):
            for w in workers:
                d = 0.0 if delays is None else float(delays[w])
                wk = self._launch(w, place[w], devs[place[w]], d, slot[w])
                run_workers.append(wk)
                # what this worker's queued work touches lives until it is seen done
                _hold(wk.ev_last, wk.stream, devs[place[w]], wk.product)
        return _CudaRun(self, run_workers, devs, home, t0, timeout, to_numpy)

    def _prepare(
        self, At: Any, Bt: Any, mine: list[int], dev: int, home: int, to_numpy: bool, flag: bool
    ) -> _DeviceState:
        """Inputs (only the rows ``mine`` need) and outputs on ``dev``, one ready event."""
        import cupy as cp

        a = _blocks_on(At, mine, dev, home, to_numpy)
        b = _blocks_on(Bt, mine, dev, home, to_numpy)
        with cp.cuda.Device(dev):
            shape = (len(mine), At.shape[1], Bt.shape[2])
            st = _DeviceState(a, b, self._event(dev))
            st.out = cp.empty(shape, dtype=cp.result_type(At.dtype, Bt.dtype))
            st.out_index = {w: i for i, w in enumerate(mine)}
            if flag:
                st.flag = cp.zeros(1, dtype=cp.int32)
                st.ctl = self._streams_of(dev).ctl
            s = cp.cuda.get_current_stream()
            for X in (At, Bt):
                if isinstance(X, DevicePlaced):
                    s.wait_event(X.ready[dev])  # the placed copies, however long ago
            st.ref.record(s)  # inputs and outputs ready
        return st

    def _launch(self, w: int, dev: int, st: _DeviceState, d: float, slot: int) -> _Worker:
        """Queue worker ``w`` on its stream: wait for the inputs, delay, GEMM, events."""
        import cupy as cp

        ds = self._streams_of(dev)
        wk = _Worker(w, dev, ds.slots[slot], handle=ds.handles[slot])
        with cp.cuda.Device(dev), wk.stream:
            wk.stream.wait_event(st.ref)
            wk.ev_start, wk.ev_gemm, wk.ev_end = (self._event(dev) for _ in range(3))
            wk.ev_start.record(wk.stream)
            try:
                if math.isinf(d):
                    wk.never = True
                    if self.delay_mode == "gpu":
                        self._delay(st, self.never_cap, wk.stream)
                    return wk
                if self.delay_mode == "gpu" and d > 0:
                    self._delay(st, d, wk.stream)
                else:
                    wk.host_delay = d
                wk.ev_gemm.record(wk.stream)
                out = st.out[st.out_index[w]]
                wk.product = gpu.gemm(st.a[w], st.b[w], self.precision, out=out,
                                      handle=wk.handle)  # fmt: skip
                wk.ev_end.record(wk.stream)
            except Exception as e:  # a worker that fails to launch is an erasure
                wk.error = e
            finally:  # after whatever was queued (a spin, a GEMM, part of one)
                wk.ev_last = wk.stream.record(self._event(dev))
        return wk

    def _delay(self, st: _DeviceState, seconds: float, stream: Any) -> None:
        from .. import kernels

        kernels.delay(seconds, flag=st.flag, stream=stream)

    def close(self) -> None:
        """Wait for all worker streams (abandoned GEMMs included), then drop the streams.

        Held inputs and outputs are released once their work is seen done (at once,
        after the wait).
        """
        import cupy as cp
        from cupy_backends.cuda.libs import cublas

        with self._lock:
            devs, self._dev = self._dev, {}
        for dev, ds in devs.items():
            with cp.cuda.Device(dev):
                for s in (ds.ctl, *ds.slots):
                    s.synchronize()
                for h in ds.handles:
                    cublas.destroy(h)
        _release_done()


def _require_device() -> None:
    """Raise a clear error when CuPy or a CUDA device is missing."""
    from ..backend import gpu_available

    if not gpu_available():
        raise RuntimeError(
            "executor='cuda' needs CuPy and a CUDA device, and none is usable here "
            "(cupy missing, or cupy.cuda.is_available() is False); use executor='threads', "
            "or install the GPU extra (pip install 'gpucoded[gpu]') on a machine with a GPU"
        )


def _home_of(At: Any, Bt: Any) -> tuple[bool, int, DevicePlaced | None]:
    """(answers to NumPy?, the caller's device, a placed side or None) of a run's inputs.

    A placed side was made by :meth:`CudaStreamExecutor.place`; the other operand (the
    one streamed through it) decides where answers go: its device, or the host.
    """
    import cupy as cp

    placed = [X for X in (At, Bt) if isinstance(X, Placed)]
    for X in placed:
        if not isinstance(X, DevicePlaced):
            raise TypeError(
                f"these blocks were placed by another executor ({type(X).__name__}); "
                "place them with this CudaStreamExecutor's place()"
            )
    if len(placed) == 2 and placed[0].where != placed[1].where:
        raise ValueError("At and Bt were placed on different devices for some workers")
    pinned = placed[0] if placed else None
    free = [X for X in (At, Bt) if not isinstance(X, Placed)]
    if free:
        to_numpy = not isinstance(free[0], cp.ndarray)
        home = cp.cuda.Device().id if to_numpy else free[0].device.id
        return to_numpy, home, pinned
    return False, pinned.home, pinned


def _blocks_on(X: Any, mine: list[int], dev: int, home: int, to_numpy: bool) -> dict[int, Any]:
    """Worker -> its block of X on ``dev``: placed blocks as they are (already there), the
    caller's stack in place on its own device, else one contiguous copy of its rows."""
    if isinstance(X, DevicePlaced):
        return {w: X.blocks[w] for w in mine}
    if dev == home and not to_numpy:
        return {w: X[w] for w in mine}
    X_d = _rows_to(X, mine, dev, home)
    return {w: X_d[i] for i, w in enumerate(mine)}


def _copy_to(src: Any, src_dev: int, dst_dev: int) -> Any:
    """Copy of ``src`` (C-contiguous, on ``src_dev``) on ``dst_dev``, ordered by events.

    The copy runs on ``src_dev``'s current stream, after the work that produced
    ``src`` there and before the pool can hand ``src``'s memory to anyone else (it is
    freed in that stream's order); it waits for the destination's allocation, and the
    destination device's current stream waits for the copy.
    """
    import cupy as cp

    with cp.cuda.Device(dst_dev):
        dst = cp.empty(src.shape, dtype=src.dtype)
        allocated = cp.cuda.get_current_stream().record()
    with cp.cuda.Device(src_dev):
        s = cp.cuda.get_current_stream()
        s.wait_event(allocated)
        dst.data.copy_from_device_async(src.data, src.nbytes, s)
        copied = s.record()
    with cp.cuda.Device(dst_dev):
        cp.cuda.get_current_stream().wait_event(copied)
    return dst


def _rows_to(src: Any, rows: list[int], dev: int, home: int) -> Any:
    """Contiguous copy of ``src[rows]`` on device ``dev`` (src: NumPy or CuPy on ``home``)."""
    import cupy as cp
    import numpy as np

    idx = np.asarray(rows, dtype=np.int64)
    if not isinstance(src, cp.ndarray):
        with cp.cuda.Device(dev):
            return cp.asarray(np.ascontiguousarray(src[idx]))
    with cp.cuda.Device(home):
        sub = cp.ascontiguousarray(src[cp.asarray(idx)])
    if dev == home:
        return sub
    return _copy_to(sub, home, dev)  # device-to-device (peer) copy, ordered on both sides
