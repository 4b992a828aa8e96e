r"""Mixed precision workers: exact low-precision slice GEMMs, high-precision sums.

ε-approximate codes amplify each worker's rounding error by their decode weights
(:math:`\sim\gamma^{m-1}`), so with float32 workers the best reachable error is about
:math:`u_{32}^{1/m}`. Here the master encodes in float64 and splits every encoded
operand into ``s`` *slices* of ``β`` bits (Ozaki's error-free splitting), the worker
multiplies slices in float32 — **exactly**, because each slice product is an integer
dot product below :math:`2^{24}` — and the master adds the slice products in float64:

.. math::
    \tilde A = \sigma\Big(\sum_{i<s} a_i + \rho_A\Big),\quad
    a_i = n_i\,2^{-(i+1)\beta},\ |n_i|<2^\beta,\ |\rho_A|<2^{-s\beta},

with :math:`\sigma` a power of two per row of Ã (per column of B̃), and

.. math:: \tilde A\tilde B \approx \sigma\tau\sum_{i+j<s} a_i b_j .

Exactness: :math:`|n_in'_j|<2^{2\beta}`, so a length-``cb`` dot product of slices is an
integer of magnitude :math:`<cb\,2^{2\beta}\le 2^{24}` when
:math:`2\beta+\lceil\log_2 cb\rceil\le 24` (:func:`slice_bits`): float32 holds it
exactly, in any summation order. Truncation: the dropped terms (i+j ≥ s, the
remainders counting as digit s) give, entrywise,

.. math:: |\tilde A\tilde B-\text{computed}|\le\sigma_r\tau_c\,cb\,E(s,\beta),\qquad
          E=\sum_{0\le i,j\le s,\ i+j\ge s}2^{-(i+j)\beta}

(:func:`truncation_factor`), and :math:`\sigma_r\le2\|G_A[w]\|_2\|A\|_F` (the same for
τ), so the decode adds at most :math:`4\,cb\,E\cdot F\,\|A\|_F\|B\|_F` with F the
decode's ``fp_factor`` (:func:`mixed_bounds`).

Worker cost, per slice count s: s float32 copies of Ã and of B̃ (storage s× a float32
worker), s(s+1)/2 float32 GEMMs, s(s+1)/2 float32 answers (or one float64 sum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import array_module
from .codes.decoding import DecodeWeights
from .formats import FORMATS

__all__ = [
    "mixed_bounds",
    "slice_bits",
    "sliced_cost",
    "sliced_matmul",
    "split_slices",
    "truncation_factor",
]

#: significand bits (including the implicit one) of the IEEE worker formats (an
#: emulated format's products are not float32-exact sums of its slices)
_MANTISSA = {n: f.mantissa_bits + 1 for n, f in FORMATS.items() if not f.emulated}


def slice_bits(inner: int, dtype: str = "float32") -> int:
    r"""Largest β with :math:`2\beta+\lceil\log_2\,\mathrm{inner}\rceil\le t` (t: significand bits).

    Raises
    ------
    ValueError
        If no β ≥ 1 makes the slice products exact (inner dimension too long).
    """
    if dtype not in _MANTISSA:
        raise ValueError(f"dtype must be one of {tuple(_MANTISSA)}, got {dtype!r}")
    if inner < 1:
        raise ValueError(f"inner must be >= 1, got {inner}")
    beta = (_MANTISSA[dtype] - math.ceil(math.log2(inner))) // 2
    if beta < 1:
        raise ValueError(
            f"inner dimension {inner} is too long for exact {dtype} slice products; "
            "split the inner dimension into more blocks"
        )
    return beta


def truncation_factor(slices: int, bits: int) -> float:
    r""":math:`E(s,\beta)=\sum_{0\le i,j\le s,\,i+j\ge s}2^{-(i+j)\beta}` (see module doc)."""
    if slices < 1 or bits < 1:
        raise ValueError(f"slices and bits must be >= 1, got {slices}, {bits}")
    return float(
        sum(
            2.0 ** (-(i + j) * bits)
            for i in range(slices + 1)
            for j in range(slices + 1)
            if i + j >= slices
        )
    )


def sliced_cost(slices: int) -> dict[str, float]:
    """Per-worker cost relative to one float32 worker: storage, GEMMs, answers."""
    n = slices * (slices + 1) / 2
    return {"storage": float(slices), "gemms": n, "answers": n}


def split_slices(X: Any, slices: int, bits: int, axis: int) -> tuple[Any, Any]:
    r"""Error-free split of float64 X into integer slices.

    Parameters
    ----------
    X : array (..., r, c), float64
    slices, bits : int
        s and β.
    axis : int
        Axis along which one scale is shared: -1 (a scale per row, for Ã) or -2
        (a scale per column, for B̃).

    Returns
    -------
    N : array (slices, ..., r, c), float32
        Integers with :math:`|n_i|<2^\beta`.
    sigma : array, float64
        Powers of two (broadcastable to X) with
        :math:`X=\sigma(\sum_i n_i2^{-(i+1)\beta}+\rho)`, :math:`|\rho|<2^{-s\beta}`.
    """
    xp = array_module(X)
    if X.dtype != np.float64:
        raise TypeError(f"split_slices expects float64 input, got {X.dtype}")
    if axis not in (-1, -2):
        raise ValueError(f"axis must be -1 (rows) or -2 (columns), got {axis}")
    mx = xp.abs(X).max(axis=axis, keepdims=True)
    _, e = xp.frexp(xp.where(mx > 0, mx, 1.0))  # mx < 2**e
    sigma = xp.ldexp(xp.ones_like(mx), e)
    R = X / sigma  # exact (power of two), |R| < 1
    out = xp.empty((slices,) + X.shape, dtype=np.float32)
    scale = float(2**bits)
    for i in range(slices):
        R = R * scale  # exact
        n = xp.trunc(R)
        out[i] = n  # |n| < 2**bits: exact in float32
        R = R - n  # exact
    return out, sigma


def sliced_matmul(At: Any, Bt: Any, slices: int, bits: int | None = None) -> Any:
    """Worker products ``At @ Bt`` from exact float32 slice GEMMs, summed in float64.

    Parameters
    ----------
    At : array (P, rb, cb), Bt : array (P, cb, db), float64
        Encoded operands (float64 master encode).
    slices : int
        s ≥ 1.
    bits : int, optional
        β; default :func:`slice_bits` (cb).

    Returns
    -------
    array (P, rb, db), float64.
    """
    if At.dtype != np.float64 or Bt.dtype != np.float64:
        raise TypeError("sliced_matmul expects the float64 encoded operands")
    cb = At.shape[-1]
    beta = slice_bits(cb) if bits is None else bits
    if 2 * beta + math.ceil(math.log2(max(cb, 1))) > _MANTISSA["float32"]:
        raise ValueError(f"bits={beta} is too many for exact products of length {cb}")
    NA, sa = split_slices(At, slices, beta, -1)
    NB, sb = split_slices(Bt, slices, beta, -2)
    xp = array_module(At)
    acc = xp.zeros(At.shape[:-1] + Bt.shape[-1:], dtype=np.float64)
    # sum the smallest terms first (i + j descending)
    for d in range(slices - 1, -1, -1):
        for i in range(d + 1):
            prod = (NA[i] @ NB[d - i]).astype(np.float64)  # exact integers
            acc += prod * 2.0 ** (-(d + 2) * beta)
    return acc * sa * sb


def mixed_bounds(
    dw: DecodeWeights, norm_a: float, norm_b: float, inner: int, slices: int, bits: int
) -> tuple[float, float]:
    r"""(interp_bound, fp_bound) of a decode whose workers used :func:`sliced_matmul`.

    fp_bound = the float64 bound of :meth:`DecodeWeights.bounds` (encode, master sums of
    the :math:`s(s+1)/2` slice products, decode) + the slice truncation
    :math:`4\,cb\,E(s,\beta)\,F\,\|A\|_F\|B\|_F` (module docstring).
    """
    n_products = slices * (slices + 1) // 2
    interp, fp64 = dw.bounds(norm_a, norm_b, np.float64, n_products + 2)
    trunc = 4 * inner * truncation_factor(slices, bits) * dw.fp_factor * norm_a * norm_b
    return interp, fp64 + trunc
