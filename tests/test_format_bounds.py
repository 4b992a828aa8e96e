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


# ------------------------------------------------------------ the format table itself
def _documented_rows() -> list[tuple[str, str, int, int]]:
    """(name, storage, k of u = 2^-k, mantissa bits) of the table in formats' docstring."""
    import re

    from gpucoded import formats

    rows = re.findall(
        r"^(\w+)\s+(\w+)\s+:math:`2\^\{-(\d+)\}`\s+(\d+)\s", formats.__doc__, flags=re.M
    )
    return [(n, s, int(k), int(b)) for n, s, k, b in rows]


def test_format_table_is_self_consistent():
    """Every format's unit roundoff is half an ulp of its mantissa, u = 2^-(bits + 1)
    (round to nearest: |fl(x) - x| <= u|x|), its bits fit its storage, it is emulated
    exactly when it keeps fewer bits than the storage, and the table documented in
    gpucoded.formats is the one the code holds (same names, storage, u, bits)."""
    from gpucoded.formats import FORMATS

    for f in FORMATS.values():
        nmant = np.finfo(f.storage).nmant
        assert f.u == 2.0 ** -(f.mantissa_bits + 1), f.name
        assert f.mantissa_bits <= nmant and f.emulated == (f.mantissa_bits < nmant), f.name
        if f.name in ("float32", "float64"):
            assert f.storage == np.dtype(f.name) and f.mantissa_bits == nmant
    doc = _documented_rows()
    assert sorted(r[0] for r in doc) == sorted(FORMATS)
    for name, storage, k, bits in doc:
        f = FORMATS[name]
        assert (f.storage.name, f.u, f.mantissa_bits) == (storage, 2.0**-k, bits), name


def _round_reference(x: np.ndarray, bits: int) -> np.ndarray:
    """Round-to-nearest-even to ``bits`` explicit mantissa bits, in float64 (exact):
    x = m·2^e with 1/2 <= |m| < 1 has bits + 1 significant bits after scaling by
    2^(bits + 1 - e); np.round rounds halves to even."""
    x64 = x.astype(np.float64)
    _, e = np.frexp(x64)
    scale = np.ldexp(1.0, bits + 1 - e)
    return (np.round(x64 * scale) / scale).astype(np.float32)


@pytest.mark.parametrize("bits", [7, 10, 15])
def test_round_mantissa_is_round_to_nearest_even(bits):
    """Exact ties go to the even neighbour (1 + 2^-(bits+1) -> 1, 1 + 3·2^-(bits+1) ->
    1 + 2^-(bits-1)); every value, on Gaussian, non-negative, sparse and heavy-tailed
    data and on all the ties between consecutive short-format numbers, is the
    float64-exact round-to-nearest-even, within u = 2^-(bits+1) relative."""
    from gpucoded.formats import round_mantissa

    h = 2.0 ** -(bits + 1)  # half an ulp of the short format at 1
    ties = np.array([1 + h, 1 + 3 * h, -(1 + h), 2 * (1 + h)])
    got = round_mantissa(ties.astype(np.float32), bits)
    assert got[0] == 1.0 and got[1] == 1 + 4 * h and got[2] == -1.0 and got[3] == 2.0
    rng = np.random.default_rng(bits)
    grid = (1 + np.arange(2**bits) * 2 * h + h) * 2.0 ** rng.integers(-20, 20, 2**bits)
    data = [
        rng.standard_normal(4000),
        rng.uniform(0, 5, 4000) + 3,
        rng.standard_normal(4000) * (rng.uniform(size=4000) < 0.05),
        rng.standard_t(1.5, 4000),
        grid,  # every tie of one binade, scaled
    ]
    for x in data:
        x32 = x.astype(np.float32)
        y = round_mantissa(x32, bits)
        assert np.array_equal(y, _round_reference(x32, bits))
        assert np.all(np.abs(y.astype(np.float64) - x32) <= h * np.abs(x32.astype(np.float64)))
