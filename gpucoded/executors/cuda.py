"""GPU executor: every worker is a non-blocking CUDA stream running one cuBLAS GEMM.

Worker ``w`` computes ``At[w] @ Bt[w]`` (``cupy.matmul`` inside its own
``cupy.cuda.Stream(non_blocking=True)``) on the device it is placed on. Each
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
(peer-to-peer where the driver allows it) as they are collected.

Float32 GEMMs run with an explicit cuBLAS compute type (``precision``, default
``"ieee"``: no TF32), see :func:`gpucoded.gpu.gemm_precision`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import gpu
from .base import Answer, Executor, Run

__all__ = ["CudaStreamExecutor"]


@dataclass
class _Worker:
    w: int
    device: int
    stream: Any
    ev_start: Any = None  # before the injected delay
    ev_gemm: Any = None  # before the GEMM
    ev_end: Any = None  # after the GEMM
    product: Any = None
    host_delay: float = 0.0
    never: bool = False
    error: BaseException | None = None
    done: bool = False


@dataclass
class _DeviceState:
    At: Any
    Bt: Any
    index: dict[int, int]  # worker -> row in the per-device stacks
    ref: Any  # reference event (time origin on this device)
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
            with cp.cuda.Device(self._home):
                prod = cp.array(prod)  # peer copy onto the caller's device
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
        stream); GEMMs already queued behind a released delay still run.
        """
        if self._cancelled:
            return
        self._cancelled = True
        import cupy as cp

        for dev, st in self._devs.items():
            if st.flag is not None:
                with cp.cuda.Device(dev):
                    cp.cuda.runtime.memsetAsync(st.flag.data.ptr, 1, 4, st.ctl.ptr)


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
        if precision not in gpu.PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(gpu.PRECISIONS)}")
        self.devices = None if devices is None else [int(d) for d in devices]
        self.placement = placement
        self.delay_mode = delay_mode
        self.precision = precision
        self.never_cap = float(never_cap)
        self.poll_interval = float(poll_interval)
        self._streams: dict[tuple[int, int], Any] = {}
        self._keep: list[Any] = []

    def _stream(self, device: int, w: int) -> Any:
        import cupy as cp

        key = (device, w)
        if key not in self._streams:
            with cp.cuda.Device(device):
                self._streams[key] = cp.cuda.Stream(non_blocking=True)
        return self._streams[key]

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        import cupy as cp

        msg = gpu.tf32_env_warning()
        if msg and self.precision == "ieee":
            warnings.warn(msg, stacklevel=2)
        to_numpy = not isinstance(At, cp.ndarray)
        home = At.device.id if not to_numpy else cp.cuda.Device().id
        devices = self.devices or [home]
        place = gpu.place_workers(workers, devices, self.placement)
        t0 = time.perf_counter()

        # inputs: once per device, only the rows its workers need
        need_flag = (
            self.delay_mode == "gpu"
            and delays is not None
            and any(float(delays[w]) > 0 for w in workers)
        )
        devs: dict[int, _DeviceState] = {}
        for dev in sorted(set(place.values())):
            mine = [w for w in workers if place[w] == dev]
            if dev == home and not to_numpy:
                A_d, B_d, index = At, Bt, {w: w for w in mine}
            else:
                A_d = _rows_to(At, mine, dev, home)
                B_d = _rows_to(Bt, mine, dev, home)
                index = {w: i for i, w in enumerate(mine)}
            with cp.cuda.Device(dev):
                st = _DeviceState(A_d, B_d, index, cp.cuda.Event())
                if need_flag:
                    st.flag = cp.zeros(1, dtype=cp.int32)
                    st.ctl = cp.cuda.Stream(non_blocking=True)
                    self._keep.append(st.flag)  # a spinning kernel may still read it
                cp.cuda.get_current_stream().synchronize()  # inputs ready first
                st.ref.record(cp.cuda.get_current_stream())
                st.ref.synchronize()
                devs[dev] = st

        run_workers: list[_Worker] = []
        with gpu.gemm_precision(self.precision):
            for w in workers:
                dev = place[w]
                st = devs[dev]
                d = 0.0 if delays is None else float(delays[w])
                wk = _Worker(w, dev, self._stream(dev, w))
                with cp.cuda.Device(dev), wk.stream:
                    wk.ev_start = cp.cuda.Event()
                    wk.ev_gemm = cp.cuda.Event()
                    wk.ev_end = cp.cuda.Event()
                    wk.ev_start.record(wk.stream)
                    try:
                        if math.isinf(d):
                            wk.never = True
                            if self.delay_mode == "gpu":
                                self._delay(st, self.never_cap, wk.stream)
                            run_workers.append(wk)
                            continue
                        if self.delay_mode == "gpu" and d > 0:
                            self._delay(st, d, wk.stream)
                        else:
                            wk.host_delay = d
                        wk.ev_gemm.record(wk.stream)
                        i = st.index[w]
                        wk.product = cp.matmul(st.At[i], st.Bt[i])
                        wk.ev_end.record(wk.stream)
                    except Exception as e:  # a worker that fails to launch is an erasure
                        wk.error = e
                run_workers.append(wk)
        return _CudaRun(self, run_workers, devs, home, t0, timeout, to_numpy)

    def _delay(self, st: _DeviceState, seconds: float, stream: Any) -> None:
        from .. import kernels

        kernels.delay(seconds, flag=st.flag, stream=stream)

    def close(self) -> None:
        """Wait for all worker streams and drop cached streams and flags."""
        for s in self._streams.values():
            s.synchronize()
        self._streams.clear()
        self._keep.clear()


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
    with cp.cuda.Device(dev):
        return cp.array(sub)  # device-to-device (peer) copy
