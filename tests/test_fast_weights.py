"""Fast decode weights (issue 13, item 3): float solve with a residual check, a
structured O(K²) high-precision solve where it fails, equal to the dense mpmath solve."""

from __future__ import annotations

import numpy as np
import pytest

from gpucoded import codes
from gpucoded import dualsolve as ds
from gpucoded import weights as wt


def _rel(W, ref) -> float:
    """Largest difference of two lists of rows, relative to the largest reference weight."""
    big = max(abs(x) for row in ref for x in row)
    return float(max(abs(a - b) for ra, rb in zip(W, ref, strict=True)
                     for a, b in zip(ra, rb, strict=True)) / big)


@pytest.mark.parametrize(
    ("code", "S"),
    [
        (codes.ChebyshevMatDot(8, 16), tuple(range(1, 16))),
        (codes.ChebyshevMatDot(8, 16), tuple(range(0, 16, 2)) + (1, 3, 5, 7, 9, 11, 13)),
        (codes.MatDot(4, 8), (0, 2, 3, 4, 5, 6, 7)),
        (codes.ApproxMatDot(3, 6, gamma=7e4), (0, 1, 2, 3, 4)),
        (codes.ApproxPolyDot(2, 2, 9, gamma=7e4), tuple(range(8))),  # weights up to 1e33
        (codes.PolyDot(2, 2, 11), tuple(range(1, 11))),
        (codes.PolyDot(2, 2, 11), tuple(range(11))),  # over-determined
    ],
    ids=lambda x: repr(x) if not isinstance(x, tuple) else str(len(x)),
)
def test_weights_equal_dense_mpmath(code, S):
    """Every path gives the dense mpmath solution (precision doubled to agreement) to
    1e-24 of the largest weight: the refined float weights carry ~1e-27, the
    structured solves are certified (Arb) or converged (mpmath) to 1e-30."""
    pts = [code.points[w] for w in S]
    ncoef = min(len(S), code.K)
    ref, cond_ref, _ = ds.dense_mp_weights(pts, code.targets[:, :ncoef], code.basis, 40, None)
    W, cond, _, W_mp = wt.interpolation_weights(pts, code.targets, code.basis)
    assert cond == pytest.approx(cond_ref, rel=1e-6)
    if len(S) > ncoef:
        # over-determined: an exact solution (W V = T to 1e-24) within a few ulps of
        # the minimum-norm one (the float solve's null-space component is not refined)
        ctx = wt.mp_context(60)
        V = wt.basis_values(ctx, pts, ncoef, code.basis)
        res = max(abs(ctx.fsum(W_mp[c][k] * V[k, j] for k in range(len(S))) - code.targets[c, j])
                  for c in range(len(W_mp)) for j in range(ncoef))
        assert res <= 1e-24 * max(abs(x) for row in W_mp for x in row)
        assert _rel(W_mp, ref) <= 1e-13
        return
    assert _rel(W_mp, ref) <= 1e-24
    # absolute, per block: the defect Σ_k W_ck φ_d(λ_k) − t_d cancels from |W| to ~0
    for ra, rb in zip(W_mp, ref, strict=True):
        assert sum(abs(a - b) for a, b in zip(ra, rb, strict=True)) <= 1e-28
    np.testing.assert_allclose(W, wt.round_rows(ref), rtol=4e-16, atol=0)
    if len(S) == ncoef:
        fl, _, _ = ds.mp_dual_weights(pts, code.targets[:, :ncoef], code.basis, 40)
        assert _rel(fl, ref) <= 1e-28


def test_mpmath_fallback_equals_arb(monkeypatch):
    """Without python-flint the mpmath structured solve gives the same weights."""
    code = codes.MatDot(16, 32)
    pts = [code.points[w] for w in range(1, 32)]
    arb_w, cond_a, _ = ds.mp_dual_weights(pts, code.targets, "monomial", 40)
    monkeypatch.setattr(ds, "_flint_dual_weights", lambda *a: None)
    mp_w, cond_m, _ = ds.mp_dual_weights(pts, code.targets, "monomial", 40)
    assert _rel(arb_w, mp_w) <= 1e-28
    assert cond_a == pytest.approx(cond_m, rel=1e-9)


def test_residual_check_rejects_beyond_float():
    """The float path declines an ill-conditioned system (MatDot K = 41, κ ≈ 1e16):
    its refinement does not contract, so the structured solve takes over."""
    code = codes.MatDot(21, 42)
    x = code.points[:41]
    assert wt._float_weights(x, code.targets, "monomial", None) is None
    dw = code.decode_weights(range(41))
    assert dw.dps > 32 and dw.cond > 1e15  # came from the high-precision path


def test_float_path_for_chebyshev_large_threshold():
    """A Chebyshev code with threshold 127 is solved by the refined float path (its
    Chebyshev–Vandermonde system is well conditioned) and its weights interpolate:
    Σ_k w_k T_j(λ_k) = t_j to 1e-25, checked in mpmath."""
    code = codes.ChebyshevMatDot(64, 128)
    S = tuple(range(1, 128))
    dw = code.decode_weights(S)
    assert dw.dps == 32 and dw.cond < 1e5
    ctx = wt.mp_context(60)
    V = wt.basis_values(ctx, [code.points[w] for w in S], code.K, "chebyshev")
    res = [ctx.fsum(dw.W_mp[0][k] * V[k, j] for k in range(len(S))) - code.targets[0, j]
           for j in range(code.K)]
    assert max(abs(x) for x in res) <= 1e-25


def test_hopeless_threshold_returns_in_bounded_time():
    """MatDot m = 200 (threshold 399, κ ≈ 1e153) does not hang: the certified O(K²)
    solve returns (the trust layer refuses such codes before solving)."""
    code = codes.MatDot(200, 400)
    dw = code.decode_weights(range(399))
    assert dw.cond > 1e100 and np.all(np.isfinite(dw.W))


def test_points_too_close_raise():
    with pytest.raises((ArithmeticError, ValueError)):
        wt.interpolation_weights([0.5, 0.5, 0.25], np.array([[0.0, 1.0, 0.0]]), "monomial")


def test_lu_solve_many_is_mpmaths_lu_solve():
    """One LU decomposition for several right-hand sides gives mpmath's ``lu_solve``
    of each, digit for digit (the regularised weights did not change with it)."""

    from gpucoded.weights import _lu_solve_many, mp_context

    ctx = mp_context(60)
    rng = np.random.default_rng(5)
    M = ctx.matrix([[ctx.mpf(float(x)) for x in row] for row in rng.standard_normal((7, 7))])
    rhs = [ctx.matrix([ctx.mpf(float(x)) for x in rng.standard_normal(7)]) for _ in range(4)]
    got = _lu_solve_many(ctx, M, rhs)
    for b, w in zip(rhs, got, strict=True):
        want = ctx.lu_solve(M, b)
        assert w.rows == 7 and all(w[k] == want[k] for k in range(7))


def test_solves_that_do_not_converge_say_so(monkeypatch):
    """Every doubling-precision solve stops at the digit cap with an ArithmeticError
    that names it (the cap lowered so the first precision is already the last)."""
    from gpucoded.codes import ApproxMatDot

    monkeypatch.setattr(ds, "MAX_DPS", 10)
    with pytest.raises(ArithmeticError, match="regularised decode weights did not converge"):
        ApproxMatDot(3, 6).decode_weights(range(3), partial=True, fmt="float64")
    monkeypatch.setattr(ds, "_flint_dual_weights", lambda *a: None)  # the mpmath loop
    with pytest.raises(ArithmeticError, match="decode weights did not converge up to 10"):
        ds.mp_dual_weights([0.1, 0.5, 0.9], np.eye(3), "monomial", 40)
