"""CircleMatDot: complex points on a circle; bounds asserted from the decode weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _util import unit_gaussian

from gpucoded import codes
from gpucoded.api import coded_matmul
from gpucoded.codes.circle import CircleMatDot, RealPartWeights, circle_points
from gpucoded.reference import error_split, exact_decode, exact_product


def _decode_all(code, A, B, r, dtype):
    C = exact_product(A, B)
    At, Bt = code.encode(A.astype(dtype), B.astype(dtype))
    prods = At @ Bt
    for S in itertools.combinations(range(code.P), r):
        order = list(S)[::-1]
        Ch, info = code.decode(
            prods[order],
            order,
            shape=C.shape,
            partial=r < code.recovery_threshold,
            norms=(float(np.linalg.norm(A)), float(np.linalg.norm(B))),
            inner=At.shape[2],
            return_info=True,
        )
        yield S, Ch, C, info


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,P", [(3, 5), (4, 8), (5, 7)])
def test_real_decoder_is_exact_from_any_m_answers(m, P, dtype):
    """Real inputs: m complex answers = 2m ≥ 2m−1 real equations, so ε₁ = 0.

    The decode is flagged exact (interp bound 0) and the error stays below the
    first-order rounding bound u·n·F·‖A‖‖B‖ of :meth:`DecodeWeights.bounds`.
    """
    code = CircleMatDot(m, P)
    A, B = unit_gaussian((21, 26), 1), unit_gaussian((26, 17), 2)
    for S, Ch, C, info in _decode_all(code, A, B, m, dtype):
        assert Ch.dtype == dtype and np.isrealobj(Ch)
        assert info.interp_bound == 0.0
        assert float(np.abs(Ch - C).max()) <= info.error_bound, S
        dw = code.decode_weights(S)
        assert isinstance(dw, RealPartWeights)
        # the weights converged to 1e-30 relative, so the exact-arithmetic defect is
        # zero up to 1e-30 times the size of the weighted encodings (fp_factor)
        assert dw.interp_factor <= 1e-29 * dw.fp_factor


def test_real_decoder_matches_the_mpmath_decode():
    """Independent check: the all-mpmath decode's real part equals C = AB.

    Both sides are rounded once to longdouble (unit roundoff u_ld); the reference
    product accumulates 26 terms, so the tolerance is (26 + 4)·u_ld·‖A‖_F‖B‖_F.
    """
    code = CircleMatDot(4, 6)
    A, B = unit_gaussian((8, 26), 3), unit_gaussian((26, 6), 4)
    C = exact_product(A, B)
    u_ld = float(np.finfo(np.longdouble).eps)
    for S in [(0, 1, 2, 3), (1, 2, 4, 5), (0, 2, 3, 5)]:
        Cinf = exact_decode(code, A, B, S)
        assert float(np.abs(np.real(Cinf) - C).max()) <= 30 * u_ld


@pytest.mark.parametrize("gamma", [10.0, 100.0])
def test_real_decoder_below_threshold_is_approximate(gamma):
    """r = ⌈m/2⌉..m−1 answers: a truncated real interpolation at the 2r virtual points.

    Error ≤ the derived a-priori bound; the interpolation bound falls with the radius
    1/γ (it is O(γ^{-1}) like ε-MatDot), checked between γ and 10γ.
    """
    m, P = 4, 6
    A, B = unit_gaussian((16, 20), 5), unit_gaussian((20, 12), 6)
    near = CircleMatDot(m, P, gamma=gamma)
    far = CircleMatDot(m, P, gamma=10 * gamma)
    for r in (2, 3):
        for S, Ch, C, info in _decode_all(near, A, B, r, np.float64):
            assert float(np.abs(Ch - C).max()) <= info.error_bound, S
            assert info.interp_bound > 0
            i_far = far.decode_weights(S, partial=True).interp_factor
            assert i_far < near.decode_weights(S, partial=True).interp_factor / 5


def test_error_split_respects_the_bounds():
    """reference.error_split: ε₁ ≤ |D|-bound·‖A‖‖B‖ and ε₂ ≤ fp bound for each decode.

    For exact decodes (r = m) the bound is the defect of the converged mpmath weights
    (≈1e-75 here), not the 0 that :meth:`DecodeWeights.bounds` reports for exact codes.
    """
    code = CircleMatDot(5, 7, gamma=50.0)
    A, B = unit_gaussian((15, 25), 7), unit_gaussian((25, 10), 8)
    for r in (3, 5):
        for S, Ch, _, info in itertools.islice(_decode_all(code, A, B, r, np.float64), 6):
            sp = error_split(code, A, B, S, Ch, partial=r < 5)
            dw = code.decode_weights(S, partial=r < 5)
            assert sp.eps1 <= dw.interp_factor * (1 + 1e-9)
            assert sp.eps2 <= info.fp_bound


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_complex_decoder_is_epsilon_approximate(dtype):
    """decoder='complex': truncated complex interpolation, any m answers, ≤ the bound."""
    code = CircleMatDot(3, 5, gamma=1e3, decoder="complex")
    assert code.approximate
    rng = np.random.default_rng(9)
    A = unit_gaussian((12, 15), 9).astype(dtype)
    B = unit_gaussian((15, 9), 10).astype(dtype)
    if dtype == np.complex128:
        A = A + 1j * rng.standard_normal(A.shape) / 30
        B = B + 1j * rng.standard_normal(B.shape) / 30
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    nA, nB = float(np.linalg.norm(A)), float(np.linalg.norm(B))
    for S in itertools.combinations(range(code.P), 3):
        Ch, info = code.decode(
            prods[list(S)],
            S,
            shape=C.shape,
            norms=(nA, nB),
            inner=At.shape[2],
            real=dtype != np.complex128,
            return_info=True,
        )
        assert float(np.abs(Ch - C).max()) <= info.error_bound
        assert info.interp_bound > 0


def test_circle_is_better_conditioned_than_real_points():
    """Worst κ∞ over m-subsets: circle (real decoder) below real Chebyshev points at γ=1.

    Both systems are solved at radius 1; the claim is the one the code exists for.
    """
    m, P = 6, 8
    circ = CircleMatDot(m, P)
    real = codes.ApproxMatDot(m, P, gamma=1.0)
    subsets = list(itertools.combinations(range(P), m))
    kc = max(circ.decode_weights(S).cond for S in subsets)
    kr = max(real.decode_weights(S).cond for S in subsets)
    assert kc < kr


def test_through_coded_matmul_and_make_code():
    code = codes.make_code("circle", m=3)
    assert isinstance(code, CircleMatDot) and code.P == 4 and code.storage_factor == 2
    A, B = unit_gaussian((9, 12), 11), unit_gaussian((12, 7), 12)
    C = coded_matmul(A, B, code=code, failed=[1])
    assert C.dtype == np.float64
    assert np.abs(C - A @ B).max() < 1e-13


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="decoder"):
        CircleMatDot(3, 4, decoder="imag")
    with pytest.raises(ValueError, match="gamma"):
        CircleMatDot(3, 4, gamma=-1.0)
    with pytest.raises(ValueError, match="radius"):
        circle_points(3, 0.0)
    code = CircleMatDot(5, 7)
    At, Bt = code.encode(np.ones((5, 5)), np.ones((5, 5)))
    prods = At @ Bt
    with pytest.raises(ValueError, match="at least 3"):
        code.decode(prods[:2], [0, 1], partial=True)
    with pytest.raises(ValueError, match="needs 5"):
        code.decode(prods[:4], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="real inputs only"):
        code.decode(prods[:5], range(5), real=False)
