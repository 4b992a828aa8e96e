"""Unit tests of the guard's mathematics (gpucoded/guard.py).

The refusal rests on a theorem: every decode's weights w for target coefficient j
satisfy ‖w‖₁ ≥ |t_{d,j}|/R^j (module docstring of gpucoded.guard). It is checked here
against exactly solved interpolation weights over codes and answer sets, with the
Chebyshev coefficients checked against NumPy's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb

from gpucoded import guard
from gpucoded.codes import (
    ApproxMatDot,
    ApproxPolyDot,
    ChebyshevMatDot,
    CircleMatDot,
    MatDot,
    PolyDot,
    PolynomialCode,
)
from gpucoded.formats import get_format


@pytest.mark.parametrize("d", [0, 1, 2, 5, 12, 25])
def test_chebyshev_coefficients(d):
    """log10 |coefficient of x^j in T_d| equals NumPy's cheb2poly, zero where it is."""
    coefs = npcheb.cheb2poly([0] * d + [1])
    for j in range(d + 3):
        got = guard._log10_cheb_coef(d, j)
        c = coefs[j] if j < len(coefs) else 0.0
        if c == 0:
            assert got == -math.inf
        else:
            assert got == pytest.approx(math.log10(abs(c)), abs=1e-9)


CODES = [
    MatDot(3, 7, decoder="interpolation"),
    MatDot(6, 13, decoder="interpolation"),
    MatDot(10, 21, decoder="interpolation"),
    ApproxMatDot(3, 6, gamma=50.0, decoder="interpolation"),
    ApproxMatDot(5, 8, gamma=10.0, decoder="interpolation"),
    PolyDot(2, 2, 9, decoder="interpolation"),
    ApproxPolyDot(2, 1, 7, gamma=30.0, decoder="interpolation"),
    PolynomialCode(3, 2, 8, decoder="interpolation"),
]


@pytest.mark.parametrize("code", CODES, ids=repr)
def test_weight_floor_is_a_lower_bound(code):
    """max_c ‖w_c‖₁ ≥ 10^weight_floor for the exact interpolation weights of random
    answer sets of every size (threshold … P)."""
    lb = guard.weight_floor(code)
    assert lb is not None and lb > -math.inf
    rng = np.random.default_rng(0)
    for r in range(code.recovery_threshold, code.P + 1):
        for _ in range(3):
            S = sorted(rng.choice(code.P, r, replace=False))
            W = code.decode_weights(S).W
            assert math.log10(np.abs(W).sum(axis=1).max()) >= lb - 1e-9, (S, lb)


def test_weight_floor_tight_for_matdot():
    """For MatDot at Chebyshev nodes the floor is within a factor 10 of the weights."""
    code = MatDot(8, 15)
    W = code.decode_weights(range(15)).W
    assert math.log10(np.abs(W).sum(axis=1).max()) <= guard.weight_floor(code) + 1


def test_floor_does_not_apply_to_well_conditioned_bases():
    for code in (ChebyshevMatDot(40, 80), CircleMatDot(8, 10)):
        assert guard.weight_floor(code) is None
        assert guard.rounding_floor(code, "float32") == 0.0
        guard.check_feasible(code, "bf16")


def test_rounding_floor_scales_with_the_format():
    code = MatDot(10, 20)
    f64, f32 = guard.rounding_floor(code, "float64"), guard.rounding_floor(code, "float32")
    assert f32 / f64 == pytest.approx(get_format("float32").u / get_format("float64").u)


def test_best_conditioned_picks_a_better_set():
    """Greedy max-volume choice: k distinct workers of those given, in their order, with
    a smaller condition number than the first k of a clustered arrival order."""
    code = ChebyshevMatDot(10, 28)
    got = list(range(24))  # the 4 nodes nearest −1 missing
    S = guard.best_conditioned(code, got, 19)
    assert len(set(S)) == 19 and set(S) <= set(got) and S == sorted(S)
    assert code.decode_weights(S).cond < code.decode_weights(got[:19]).cond / 10


def test_largest_feasible_m():
    """The suggested m is the largest MatDot m whose floor stays below 1e-2."""
    mmax = guard._largest_feasible_m(MatDot(30, 60), get_format("float64"))
    u = get_format("float64").u
    assert guard.rounding_floor(MatDot(mmax, 2 * mmax), "float64") < 1e-2
    assert guard.rounding_floor(MatDot(mmax + 1, 2 * mmax + 2), "float64") >= 1e-2 * (1 - u)
