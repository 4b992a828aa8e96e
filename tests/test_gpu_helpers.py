"""CPU-side logic of the GPU path: placement, precision table, executor options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpucoded import gpu
from gpucoded import kernels as K
from gpucoded.executors.cuda import CudaStreamExecutor


def test_round_robin_placement():
    assert gpu.place_workers([0, 1, 2, 3, 4], [0, 1]) == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}
    # erased workers do not shift the others off balance: placement follows the list
    assert gpu.place_workers([1, 3, 4], [2, 5]) == {1: 2, 3: 5, 4: 2}


def test_block_and_explicit_placement():
    assert gpu.place_workers(range(5), [0, 1], "block") == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    assert gpu.place_workers([0, 2], [0, 1], {0: 1, 2: 0}) == {0: 1, 2: 0}
    assert gpu.place_workers([0, 1], [0], [3, 4]) == {0: 3, 1: 4}
    with pytest.raises(ValueError):
        gpu.place_workers([0], [])
    with pytest.raises(ValueError):
        gpu.place_workers([0], [0], "random")


def test_precision_modes():
    assert gpu.PRECISIONS["ieee"] != gpu.PRECISIONS["tf32"]
    with pytest.raises(ValueError):
        CudaStreamExecutor(precision="fp8")
    with pytest.raises(ValueError):
        CudaStreamExecutor(delay_mode="sometimes")


def test_tf32_env_warning(monkeypatch):
    monkeypatch.delenv("CUPY_TF32", raising=False)
    assert gpu.tf32_env_warning() is None
    monkeypatch.setenv("CUPY_TF32", "1")
    assert "CUPY_TF32" in gpu.tf32_env_warning()


def test_import_without_cupy():
    """The GPU modules import on a machine without CuPy (lazy imports)."""
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "import gpucoded.kernels, gpucoded.gpu, gpucoded.executors.cuda\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_planner_choices():
    # aligned float32 with cb % 4 == 0 and lda % 4 == 0 -> 16-byte vectors
    pl = K.plan_encode("float32", (4096, 4096), 4096, (1, 4))
    assert (pl.vec, pl.maxm) == (4, 4)
    assert pl.name == "gc_encode<float, 4, 4>"
    # odd leading dimension -> scalar path
    assert K.plan_encode("float32", (100, 100), 101, (2, 2)).vec == 1
    # misaligned base address -> scalar path
    assert K.plan_encode("float64", (64, 64), 64, (1, 2), addr_align=8).vec == 1
    assert K.plan_decode("float64", 9, (64, 64), 64).name == "gc_decode<double, 2, 16>"
    assert K.plan_decode("float64", 30, (64, 64), 64).maxm == 16  # chunked
    assert K.plan_encode("float32", (10, 10), 10, (1, 1), max_blocks=7).grid == 1
    with pytest.raises(TypeError):
        K.plan_encode("int32", (4, 4), 4, (1, 1))


def test_kernel_sources_found():
    d = K.kernel_dir()
    for fam in K.FAMILIES:
        src = K.source(fam)
        assert '#include "common.cuh"' not in src
        assert "namespace gc" in src
    assert (d / "common.cuh").is_file()
