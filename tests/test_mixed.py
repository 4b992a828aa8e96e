"""Mixed precision workers: exact float32 slice GEMMs, derived truncation bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _util import unit_gaussian

from gpucoded.codes import ApproxMatDot
from gpucoded.mixed import (
    mixed_bounds,
    slice_bits,
    sliced_cost,
    sliced_matmul,
    split_slices,
    truncation_factor,
)
from gpucoded.reference import exact_product

U64 = 2.0**-53


def test_slice_products_are_exact_in_float32():
    """2β + ⌈log2 cb⌉ ≤ 24 makes every float32 slice GEMM equal the float64 one bitwise."""
    rng = np.random.default_rng(0)
    At, Bt = rng.standard_normal((2, 9, 40)), rng.standard_normal((2, 40, 7)) * 1e3
    beta = slice_bits(40)
    assert 2 * beta + math.ceil(math.log2(40)) <= 24
    NA, _ = split_slices(At, 3, beta, -1)
    NB, _ = split_slices(Bt, 3, beta, -2)
    assert np.abs(NA).max() < 2**beta and np.all(NA == np.trunc(NA))
    for i, j in itertools.product(range(3), range(3)):
        p32 = (NA[i] @ NB[j]).astype(np.float64)
        p64 = NA[i].astype(np.float64) @ NB[j].astype(np.float64)
        assert np.array_equal(p32, p64)


@pytest.mark.parametrize("slices", [1, 3, 5])
def test_split_reconstructs_with_remainder_below_2_pow_minus_s_beta(slices):
    """X/σ − Σ n_i 2^{-(i+1)β} = ρ with |ρ| < 2^{-sβ}; σ are powers of two."""
    X = np.random.default_rng(1).standard_normal((6, 11)) * np.logspace(-3, 3, 11)
    N, sigma = split_slices(X, slices, 9, -1)
    assert np.all(np.log2(sigma) == np.round(np.log2(sigma)))
    rec = sum(N[i].astype(np.float64) * 2.0 ** (-(i + 1) * 9) for i in range(slices))
    rho = X / sigma - rec  # exact: disjoint bit ranges, ≤ 53 bits
    assert np.abs(rho).max() < 2.0 ** (-slices * 9)


@pytest.mark.parametrize("slices", [2, 4, 6])
def test_sliced_matmul_meets_its_entrywise_bound(slices):
    """|computed − ÃB̃| ≤ σ_rτ_c·cb·E(s,β) + (n_prod + 2)·u64·(|Ã||B̃|) entrywise.

    The first term is the truncation (module docstring), the second the float64
    accumulation of the n_prod = s(s+1)/2 scaled exact slice products and the scaling.
    """
    rng = np.random.default_rng(2)
    At, Bt = rng.standard_normal((3, 10, 16)), rng.standard_normal((3, 16, 8))
    beta = slice_bits(16)
    C = sliced_matmul(At, Bt, slices)
    ex = np.asarray(At, np.longdouble) @ np.asarray(Bt, np.longdouble)
    _, sa = split_slices(At, slices, beta, -1)
    _, sb = split_slices(Bt, slices, beta, -2)
    n_prod = slices * (slices + 1) // 2
    bound = sa * sb * 16 * truncation_factor(slices, beta) + (n_prod + 2) * U64 * (
        np.abs(At) @ np.abs(Bt)
    )
    assert np.all(np.abs(C - ex) <= bound)
    assert sliced_cost(slices)["gemms"] == n_prod


def test_coded_mixed_decode_meets_mixed_bounds_and_beats_float32():
    """ε-MatDot with slice workers: error ≤ :func:`mixed_bounds` for every m-subset.

    The claim the scheme exists for: its a-priori bound is below the plain float32
    worker's a-priori bound (:meth:`DecodeWeights.bounds` at float32) for every subset.
    """
    m, P, s = 4, 6, 4
    code = ApproxMatDot(m, P, gamma=300.0)
    A, B = unit_gaussian((12, 64), 3), unit_gaussian((64, 10), 4)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = sliced_matmul(At, Bt, s)
    inner = At.shape[2]
    for S in itertools.combinations(range(P), m):
        Ch = code.decode(prods[list(S)], S, shape=C.shape)
        dw = code.decode_weights(S)
        ib, fb = mixed_bounds(dw, 1.0, 1.0, inner, s, slice_bits(inner))
        assert float(np.abs(Ch - C).max()) <= ib + fb
        assert fb < dw.bounds(1.0, 1.0, np.float32, inner)[1]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too long"):
        slice_bits(2**23)
    with pytest.raises(ValueError, match="dtype"):
        slice_bits(8, "float16")
    with pytest.raises(TypeError, match="float64"):
        split_slices(np.ones((2, 2), np.float32), 2, 8, -1)
    with pytest.raises(ValueError, match="axis"):
        split_slices(np.ones((2, 2)), 2, 8, 0)
    with pytest.raises(ValueError, match="too many"):
        sliced_matmul(np.ones((1, 2, 16)), np.ones((1, 16, 2)), 2, bits=11)
    with pytest.raises(ValueError):
        truncation_factor(0, 8)
