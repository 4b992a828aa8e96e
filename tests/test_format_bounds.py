"""Bounds hold for workers that compute in TF32 or BF16 (issue 11).

The workers below really round their GEMM operands to 10 / 7 mantissa bits (what a
tensor core reads; products exact, float32 accumulation: ``formats.round_operands``)
and report that format through ``Executor.compute_format``. The pipeline hands the one
format to the decode, so the reported bound must cover the error. The same answers
bounded with float32's unit roundoff must not (the failure the format plumbing fixes).
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.executors.local import SerialExecutor
from gpucoded.formats import get_format, round_operands
from gpucoded.reference import exact_product


class EmulatedFormatExecutor(SerialExecutor):
    """Serial workers whose GEMMs read their operands in ``fmt`` (CPU emulation)."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = get_format(fmt)

    def compute_format(self, dtype):
        return self.fmt if np.dtype(dtype) == np.float32 else get_format(dtype)

    def start(self, At, Bt, **kw):
        return super().start(round_operands(At, self.fmt), round_operands(Bt, self.fmt), **kw)


CASES = [("matdot", 4, 8), ("chebyshev", 4, 8), ("polynomial", 4, 6), ("approx_matdot", 2, 5)]


@pytest.mark.parametrize("fmt", ["tf32", "bf16"])
@pytest.mark.parametrize(("name", "m", "P"), CASES)
def test_bound_covers_emulated_tensor_core_workers(fmt, name, m, P):
    A = unit_gaussian((96, 128), 1, np.float32)
    B = unit_gaussian((128, 80), 2, np.float32)
    C, info = gpucoded.coded_matmul(
        A, B, name, m=m, P=P, executor=EmulatedFormatExecutor(fmt), failed=[0],
        return_info=True, on_inaccurate="ignore", allow_inaccurate=True,
    )  # fmt: skip
    assert info.format == fmt
    err = float(np.abs(C - exact_product(A, B)).max())
    assert err <= info.error_bound
    # the same decode bounded as if the workers had computed in IEEE float32
    dw = info.code.decode_weights(info.used, fmt=fmt)
    norms = gpucoded.api.operand_norms(info.code, A, B)
    inner = -(-A.shape[1] // info.code.grid.s)
    fp32 = sum(dw.bounds(*norms, "float32", inner))
    assert fp32 < info.error_bound


def test_float32_bound_would_not_cover_tf32_workers():
    """The case of issue 11: MatDot m=4 with TF32 GEMMs has an error above the bound
    that float32's unit roundoff gives, and below the TF32 bound."""
    A = unit_gaussian((256, 256), 3, np.float32)
    B = unit_gaussian((256, 256), 4, np.float32)
    C, info = gpucoded.coded_matmul(
        A, B, "matdot", m=4, P=8, executor=EmulatedFormatExecutor("tf32"),
        return_info=True, on_inaccurate="ignore",
    )  # fmt: skip
    err = float(np.abs(C - exact_product(A, B)).max())
    dw = info.code.decode_weights(info.used, fmt="tf32")
    norms = gpucoded.api.operand_norms(info.code, A, B)
    fp32 = sum(dw.bounds(*norms, "float32", 64))
    assert fp32 < err <= info.error_bound
