"""The simulated device cannot drift from the real CuPy API.

The real ``cupy-cuda13x`` wheel imports on a machine without a GPU
(``cupy.cuda.is_available()`` is False). These tests check that every CuPy name the
library uses exists in it, that the calls the library makes fit CuPy's signatures
(read with ``inspect`` or, for Cython builtins, from the signature line CuPy puts at
the top of the docstring), and that the simulated classes take the same parameters.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpusim
ROOT = Path(__file__).resolve().parent.parent
cupy = pytest.importorskip("cupy")


def params(obj) -> list[str]:
    """Parameter names (self excluded) from inspect or from the docstring's first line."""
    try:
        names = list(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        doc = (obj.__doc__ or "").strip().splitlines()[0]
        m = re.search(r"\((.*)\)", doc)
        assert m, f"no signature for {obj}: {doc!r}"
        names = []
        for p in m.group(1).split(","):
            p = p.split("=")[0].strip().lstrip("*").split()
            if p and p[-1] not in ("self", ""):
                names.append(p[-1])
    return [n for n in names if n != "self"]


def resolve(root, dotted: str):
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_real_cupy_imports_without_a_device():
    assert cupy.__version__.split(".")[0] >= "14"
    assert cupy.cuda.is_available() is False
    from gpucoded import backend

    backend.cupy_or_none.cache_clear()
    assert backend.cupy_or_none() is None  # CPU paths never pick CuPy here


# (real name, keywords the library passes)
CALLS = [
    ("cuda.Stream", {"non_blocking"}),
    ("cuda.Stream.record", {"event"}),
    ("cuda.Stream.wait_event", {"event"}),
    ("cuda.Event", set()),
    ("cuda.Event.record", {"stream"}),
    ("cuda.Device", {"device"}),
    ("cuda.get_current_stream", set()),
    ("cuda.get_elapsed_time", {"start_event", "end_event"}),
    ("cuda.runtime.memsetAsync", {"ptr", "value", "size", "stream"}),
    ("cuda.MemoryPointer.copy_from_device_async", {"src", "size", "stream"}),
    ("ndarray.get", {"stream"}),
    ("asnumpy", {"stream"}),
    ("asarray", {"dtype"}),
    ("array", set()),
    ("empty", {"dtype"}),
    ("zeros", {"dtype"}),
    ("full", {"dtype"}),
    ("ascontiguousarray", {"dtype"}),
    ("broadcast_to", set()),
    ("matmul", {"out"}),
    ("RawModule", {"code", "path", "options", "name_expressions"}),
    ("RawModule.get_function", {"name"}),
    ("RawKernel", {"code", "name", "options"}),
    ("_core._routines_linalg.set_compute_type", {"dtype", "compute_type"}),
    ("_core._routines_linalg.get_compute_type", {"dtype"}),
]


@pytest.mark.parametrize(("name", "keywords"), CALLS, ids=[c[0] for c in CALLS])
def test_library_calls_fit_real_signatures(name, keywords):
    if name.startswith("_core."):
        importlib.import_module("cupy._core._routines_linalg")
    real = params(resolve(cupy, name))
    assert keywords <= set(real), (name, real)


def test_stream_and_event_signatures_exact():
    assert params(cupy.cuda.Stream) == ["null", "non_blocking", "ptds", "priority"]
    assert params(cupy.cuda.Event) == ["block", "disable_timing", "interprocess"]
    assert params(cupy.RawKernel.__call__)[:3] == ["grid", "block", "args"]
    assert "shared_mem" in cupy.RawKernel.__call__.__doc__


def test_every_cupy_name_in_the_library_exists():
    """``cp.X`` / ``cupy.X`` anywhere in gpucoded/ resolves in the real package."""
    pat = re.compile(r"\b(?:cp|cupy)\.((?:[A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*)")
    used = set()
    for f in (ROOT / "gpucoded").rglob("*.py"):
        used |= {m.group(1) for m in pat.finditer(f.read_text())}
    used -= {"ndarray.get"}  # checked above
    missing = []
    for name in sorted(used):
        try:
            resolve(cupy, name)
        except AttributeError:
            # attribute of an instance (e.g. ``cp.cuda.Device().id``): check the class
            head, _, attr = name.rpartition(".")
            try:
                cls = resolve(cupy, head)
            except AttributeError:
                missing.append(name)
                continue
            if attr not in dir(cls) and attr not in (cls.__doc__ or ""):
                missing.append(name)
    assert not missing, missing
    assert {"cuda.Stream", "cuda.Event", "matmul", "RawModule"} <= used


def test_cublas_module_ships_gemmex_and_bf16_compute_type():
    """cuBLAS needs its library to import; its compiled module still names what we call."""
    libs = Path(cupy.__file__).resolve().parent.parent / "cupy_backends" / "cuda" / "libs"
    so = next(libs.glob("cublas*.so"))
    data = so.read_bytes()
    for name in (b"gemmEx", b"CUBLAS_COMPUTE_32F_FAST_16BF", b"CUBLAS_GEMM_DEFAULT_TENSOR_OP"):
        assert name in data, name
    assert params(cupy.cuda.device.get_cublas_handle) == []
    assert cupy.cuda.runtime.CUDA_R_32F == 0


def test_simulated_classes_mirror_the_real_ones(sim):
    """The simulated device takes exactly the real parameters (so tests cannot pass on
    a call the real CuPy would refuse)."""
    import cupy as sim_cp

    pairs = [
        "cuda.Stream",
        "cuda.Event",
        "cuda.Stream.record",
        "cuda.Stream.wait_event",
        "cuda.Event.record",
        "cuda.MemoryPointer.copy_from_device_async",
        "ndarray.get",
        "asnumpy",
        "empty",
        "zeros",
        "ascontiguousarray",
        "RawModule.get_function",
    ]
    for name in pairs:
        assert params(resolve(sim_cp, name)) == params(resolve(cupy, name)), name
    real_raw = params(cupy.RawModule)
    assert params(sim_cp.RawModule) == [p for p in real_raw if p != "self"], real_raw
    assert params(sim_cp.cuda.Device) == params(cupy.cuda.Device)
    assert params(sim_cp.cuda.get_elapsed_time) == params(cupy.cuda.get_elapsed_time)
    assert params(sim_cp.cuda.runtime.memsetAsync) == params(cupy.cuda.runtime.memsetAsync)
    assert params(sim_cp.asarray) == params(cupy.asarray)
    assert params(sim_cp.array) == params(cupy.array)


def test_gpu_tests_skip_cleanly_with_real_cupy():
    """With the real (device-less) CuPy installed, gpu-marked tests skip, not fail."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_gpu_kernels.py", "tests/test_gpu_executor.py", "-rs"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert "skipped" in out.stdout and "failed" not in out.stdout
