r"""``code="auto"`` at bounded cost: the Chebyshev factors from one QR per (P, r), the
ε-MatDot predictions only above the Chebyshev m, and the answer sets capped.

The table of :func:`gpucoded.autocode._chebyshev_factors` is checked against the
direct minimum-norm weights :math:`W=T\,V_S^{+}` (``numpy.linalg.pinv``) set by set:
both are float64 solutions of the same least-squares problem, which differ by about
:math:`{\rm cond}(V_S)\,u` relative (backward-stable solvers), so the tolerance is
:math:`100\,{\rm cond}(V_S)\,u` with a floor of 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpucoded import autocode
from gpucoded.autocode import AUTO_ELEMENTS, AUTO_SUBSETS, chebyshev_error, choose_code
from gpucoded.codes import ChebyshevMatDot
from gpucoded.codes import gamma as gamma_mod
from gpucoded.codes.gamma import answer_sets

U64 = float(np.finfo(np.float64).eps) / 2


def _direct(m: int, P: int, r: int) -> tuple[float, float]:
    """(max_S F_S, max_S cond(V_S)) from pinv weights, one answer set at a time."""
    code = ChebyshevMatDot(m, P)
    subs, _ = answer_sets(P, r, AUTO_SUBSETS)
    x = np.asarray(code.points).real
    K = int(code.K)
    T = np.asarray(code.targets, dtype=float)[:, :K]
    gab = np.linalg.norm(code.GA, axis=1) * np.linalg.norm(code.GB, axis=1)
    F, cond = 0.0, 1.0
    for S in subs:
        V = np.cos(np.arange(K)[None, :] * np.arccos(np.clip(x[S], -1, 1))[:, None])
        W = T @ np.linalg.pinv(V)
        F = max(F, float((np.abs(W) * gab[S][None, :]).sum(axis=-1).max()))
        cond = max(cond, float(np.linalg.cond(V)))
    return F, cond


@pytest.mark.parametrize(
    "m,P,r",
    [(1, 5, 3), (3, 8, 6), (5, 12, 10), (12, 24, 23), (4, 24, 8), (8, 40, 20),
     (15, 40, 30), (20, 64, 60), (30, 64, 60)],
)  # fmt: skip
def test_chebyshev_factors_match_the_pseudo_inverse_weights(m, P, r):
    F, cond = _direct(m, P, r)
    got = chebyshev_error(m, P, r, 1.0)
    assert got == pytest.approx(F, rel=max(100 * cond * U64, 1e-12))


def test_chebyshev_error_refuses_too_few_answers():
    with pytest.raises(ValueError, match="2m - 1 <= r"):
        chebyshev_error(5, 12, 8, U64)


def test_approx_matdot_only_predicted_above_the_chebyshev_m():
    """A tie in m goes to the exact code, so no ε-MatDot m at or below the largest
    Chebyshev m meeting rtol is predicted (P = 64: Chebyshev m = 30 meets 1e-2)."""
    choice = choose_code(64, 4, "float64", rtol=1e-2)
    assert (choice.code.name, choice.code.m) == ("chebyshev", 30)
    approx = [m for name, m, _ in choice.candidates if name == "approx_matdot"]
    assert approx and min(approx) == 31


def test_auto_answer_sets_stay_within_the_budget(monkeypatch):
    """P = 256, 4 stragglers: every prediction's answer sets hold at most
    AUTO_ELEMENTS numbers per (sets × answers × answers) array (or the 16-set floor),
    and the Chebyshev factors take one QR for all m (one answer_sets call)."""
    seen: list[tuple[str, int, int]] = []

    def spy(where):
        def wrapped(P, r, budget=AUTO_SUBSETS, seed=0):
            sets, exact = answer_sets(P, r, budget, seed)
            seen.append((where, *sets.shape))
            return sets, exact

        return wrapped

    monkeypatch.setattr(autocode, "answer_sets", spy("chebyshev"))
    monkeypatch.setattr(gamma_mod, "answer_sets", spy("approx"))
    autocode._chebyshev_factors.cache_clear()
    gamma_mod.best_gamma.cache_clear()
    choice = choose_code(256, 4, "float64", rtol=1e-2)
    # m=125 predicts below rtol but above the guard's room (1e-2 / overestimate(100))
    assert (choice.code.name, choice.code.m) == ("chebyshev", 124) and not choice.exact
    assert [w for w, _, _ in seen].count("chebyshev") == 1
    for _, N, r in seen:
        assert N * r * r <= AUTO_ELEMENTS or N == 16
