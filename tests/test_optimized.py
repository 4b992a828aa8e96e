"""OptimizedMatDot: stable alternating ridge minimisation, bounds from the machinery."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _util import unit_gaussian

from gpucoded.codes import ApproxMatDot
from gpucoded.codes.optimized import OptimizedMatDot, optimize_matdot, ridge_weights
from gpucoded.reference import exact_product

U64 = 2.0**-53


def test_alternating_minimisation_is_monotone_and_nonnegative():
    """Each step minimises J exactly in its block (ridge lstsq) and the balancing
    rescale leaves J unchanged, so J never increases (up to float64 rounding of J,
    relative 1e-9) and, a sum of squares, never goes negative — also from a random,
    badly scaled start where an unregularised solve would be singular."""
    rng = np.random.default_rng(0)
    init = (rng.standard_normal((5, 3)), np.zeros((5, 3)))  # H = 0: singular without ridge
    for kw in ({"gamma": 100.0}, {"init": init}):
        _, _, hist = optimize_matdot(3, 5, 1e-10, iters=6, **kw)
        assert all(j >= 0 for j in hist)
        assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(hist))


def test_ridge_weights_solve_the_normal_equations():
    """The W-step solution zeroes the gradient of its ridge objective.

    Gradient residual relative to ‖Mᵀt‖ ≤ 1e3·u64·κ, with κ the condition number of
    the column-scaled stacked system (backward stability of SVD least squares).
    """
    rng = np.random.default_rng(1)
    G, H, rho = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), 1e-3
    w = ridge_weights(G, H, rho)
    M = np.einsum("ka,kb->abk", G, H).reshape(9, 4)
    c = np.linalg.norm(G, axis=1) * np.linalg.norm(H, axis=1)
    t = np.eye(3).ravel()
    grad = M.T @ (M @ w - t) + rho**2 * 4 * c**2 * w
    lhs = np.vstack([M, rho * 2 * np.diag(c)])
    kappa = np.linalg.cond(lhs / np.abs(lhs).max(axis=0))
    assert np.abs(grad).max() <= 1e3 * U64 * kappa**2 * np.abs(M.T @ t).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimized_code_decodes_every_subset_within_its_bound(dtype):
    """Every m-subset (also ones it was not trained on): error ≤ DecodeWeights bound.

    The defect comes from the exact float64 coefficients in mpmath, so the bound holds
    whatever the optimiser produced.
    """
    m, P = 3, 5
    u = float(np.finfo(dtype).eps) / 2
    code = OptimizedMatDot.search(
        m, P, u, inner=20, gamma=30.0, iters=4, subsets=[(0, 1, 2), (2, 3, 4)]
    )
    A, B = unit_gaussian((11, 60), 2, dtype), unit_gaussian((60, 9), 3, dtype)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    for S in itertools.combinations(range(P), m):
        Ch, info = code.decode(
            prods[list(S)], S, shape=C.shape, norms=(1.0, 1.0), inner=20, return_info=True
        )
        assert float(np.abs(Ch - C).max()) <= info.error_bound


def test_search_does_not_worsen_the_surrogate_of_its_start():
    """J(optimised) ≤ J(ε-MatDot start): the search keeps its best iterate."""
    m, P, rho = 3, 5, 1e-12
    start = ApproxMatDot(m, P, gamma=1e4)
    _, _, hist1 = optimize_matdot(m, P, rho, init=(start.GA, start.GB), iters=1)
    _, _, hist = optimize_matdot(m, P, rho, init=(start.GA, start.GB), iters=5)
    assert min(hist) <= hist1[0] * (1 + 1e-9)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="rho"):
        optimize_matdot(3, 4, 0.0)
    with pytest.raises(ValueError, match="P=2"):
        optimize_matdot(3, 2, 1e-8)
    with pytest.raises(ValueError, match="shape"):
        OptimizedMatDot(np.ones((4, 3)), np.ones((4, 2)), 1e-8)
    with pytest.raises(ValueError, match="finite"):
        OptimizedMatDot(np.full((4, 3), np.nan), np.ones((4, 3)), 1e-8)
    with pytest.raises(ValueError, match="init"):
        optimize_matdot(3, 4, 1e-8, init=(np.ones((3, 3)), np.ones((3, 3))))
