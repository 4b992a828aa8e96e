"""A tiny stand-in for the parts of CuPy the CUDA executor uses (CPU logic tests).

Arrays are NumPy arrays. A fake stream keeps a virtual "busy until" time: work
launched on it (the delay kernel, a never-released wait) pushes that time
forward, and an event recorded on it is ``done`` once the wall clock passes
the stream's busy time at the moment of recording. That is enough to exercise
the executor's ordering, timeout, never-completes and placement logic.
"""

from __future__ import annotations

import sys
import time
import types

import numpy as np

_current: list = []  # stack of streams
_device: list = [0]


class Stream:
    def __init__(self, non_blocking: bool = False):
        self.busy_until = time.perf_counter()
        self.ptr = id(self)
        self.device = _device[-1]

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()

    def synchronize(self):
        pass

    def push(self, seconds: float) -> None:
        self.busy_until = max(self.busy_until, time.perf_counter()) + seconds


_null = Stream()


def get_current_stream():
    return _current[-1] if _current else _null


class Event:
    def __init__(self, *a, **k):
        self.t = None

    def record(self, stream=None):
        s = stream or get_current_stream()
        self.t = max(s.busy_until, time.perf_counter())

    @property
    def done(self):
        return self.t is not None and time.perf_counter() >= self.t

    def synchronize(self):
        while not self.done:
            time.sleep(1e-4)


def get_elapsed_time(a, b):
    return (b.t - a.t) * 1e3


class Device:
    def __init__(self, d=None):
        self.id = _device[-1] if d is None else int(d)

    def __enter__(self):
        _device.append(self.id)
        return self

    def __exit__(self, *exc):
        _device.pop()


class _Array(np.ndarray):
    """NumPy array that remembers a device id."""

    def __array_finalize__(self, obj):
        self._dev = getattr(obj, "_dev", _device[-1])

    @property
    def device(self):
        return Device(self._dev)

    @property
    def data(self):  # CuPy's MemoryPointer: only .ptr is used
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _wrap(a):
    out = np.asarray(a).view(_Array)
    out._dev = _device[-1]
    return out


def install(monkeypatch, kernels_module) -> dict:
    """Install the fake as ``cupy`` and stub the delay kernels; returns a call log."""
    log: dict = {"delay": [], "flags": [], "memset": []}
    cp = types.ModuleType("cupy")
    cuda = types.ModuleType("cupy.cuda")
    runtime = types.SimpleNamespace(
        memsetAsync=lambda ptr, v, n, s: log["memset"].append(ptr),
    )
    cuda.Stream, cuda.Event, cuda.Device = Stream, Event, Device
    cuda.get_current_stream, cuda.get_elapsed_time, cuda.runtime = (
        get_current_stream,
        get_elapsed_time,
        runtime,
    )
    cp.cuda = cuda
    cp.ndarray = _Array
    cp.int32 = np.int32
    cp.asarray = _wrap
    cp.array = lambda a: _wrap(np.array(a))
    cp.ascontiguousarray = lambda a: _wrap(np.ascontiguousarray(a))
    cp.zeros = lambda *a, **k: _wrap(np.zeros(*a, **k))
    cp.matmul = lambda a, b: _wrap(np.matmul(a, b))
    cp.asnumpy = lambda a, stream=None: np.asarray(a).view(np.ndarray).copy()
    linalg = types.ModuleType("cupy._core._routines_linalg")
    state = {np.dtype(np.float32): 1}
    linalg.get_compute_type = lambda dt: state[np.dtype(dt)]
    linalg.set_compute_type = lambda dt, v: state.__setitem__(np.dtype(dt), v)
    core = types.ModuleType("cupy._core")
    core._routines_linalg = linalg
    cp._core = core
    log["compute_type"] = state
    for name, mod in (
        ("cupy", cp),
        ("cupy.cuda", cuda),
        ("cupy._core", core),
        ("cupy._core._routines_linalg", linalg),
    ):
        monkeypatch.setitem(sys.modules, name, mod)

    def delay(seconds, flag=None, stream=None):
        log["delay"].append(seconds)
        log["flags"].append(flag)
        (stream or get_current_stream()).push(seconds)

    monkeypatch.setattr(kernels_module, "delay", delay)
    return log
