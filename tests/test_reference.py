"""The mpmath reference: ε₁/ε₂ split against a full mpmath decode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _util import unit_gaussian

from gpucoded import codes, reference


@pytest.mark.parametrize(
    "code",
    [
        codes.MatDot(3, 6),
        codes.ChebyshevMatDot(3, 6),
        codes.PolyDot(2, 2, 11),
        codes.PolynomialCode(2, 2, 5),
    ],
    ids=repr,
)
def test_eps1_vanishes_for_exact_codes(code):
    A, B = unit_gaussian((12, 10), 20), unit_gaussian((10, 14), 21)
    prods = np.matmul(*code.encode(A, B))
    for S in itertools.combinations(range(code.P), code.recovery_threshold):
        Ch = code.decode(prods[list(S)], S, shape=(12, 14))
        sp = reference.error_split(code, A, B, S, Ch)
        # the mpmath weights converge to 1e-30 relative; ε₁ is zero up to that
        assert sp.eps1 <= 1e-28
        assert sp.eps2 == pytest.approx(sp.total, rel=1e-6, abs=1e-30)


@pytest.mark.parametrize(
    "code",
    [
        codes.ApproxMatDot(3, 6, gamma=300.0),
        codes.ApproxPolyDot(2, 1, 6, gamma=40.0),
        codes.Uncoded(3),
    ],
    ids=repr,
)
def test_split_matches_full_mpmath_decode(code):
    """ε₁ from the defect tensor equals the fully-mpmath decode's error."""
    A, B = unit_gaussian((6, 9), 22), unit_gaussian((9, 5), 23)
    S = list(range(code.recovery_threshold))[::-1]
    C = reference.exact_product(A, B)
    Cinf = reference.exact_decode(code, A, B, S)
    E1 = reference.interpolation_error(code, A, B, S)
    np.testing.assert_allclose(
        np.asarray(E1, dtype=float),
        np.asarray(Cinf - C, dtype=float),
        rtol=1e-12,
        atol=1e-18,
    )


def test_moderate_gamma_error_is_interpolation():
    """At moderate γ the float decode error is ε₁ up to the rounding bound."""
    code = codes.ApproxMatDot(3, 6, gamma=100.0)
    A, B = unit_gaussian((30, 30), 24), unit_gaussian((30, 30), 25)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    for S in itertools.combinations(range(6), 3):
        Ch, info = code.decode(
            prods[list(S)], S, shape=(30, 30), norms=(1, 1), inner=At.shape[2], return_info=True
        )
        sp = reference.error_split(code, A, B, S, Ch)
        assert sp.eps2 <= info.fp_bound
        assert sp.eps1 <= info.interp_bound
        assert abs(sp.total - sp.eps1) <= sp.eps2 + 1e-30
        assert sp.eps1 > 10 * sp.eps2  # this γ is in the interpolation-limited regime
