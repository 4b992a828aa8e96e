"""code="auto": the lightest code meeting rtol; the exact default; the accuracy table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gpucoded
from gpucoded.autocode import choose_code
from gpucoded.reference import exact_product


def _gauss(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("rtol", [1e-2, 1e-12])
def test_auto_meets_rtol_on_every_straggler_pattern(rtol):
    """P=8, 3 stragglers, float64: the chosen code meets rtol on all 56 patterns."""
    A, B = _gauss((60, 80), 1), _gauss((80, 50), 2)
    E = exact_product(A, B)
    worst = 0.0
    for f in itertools.combinations(range(8), 3):
        C, info = gpucoded.coded_matmul(
            A, B, "auto", P=8, stragglers=3, rtol=rtol, failed=list(f), return_info=True
        )
        worst = max(worst, float(np.abs(C - E).max() / np.abs(E).max()))
    assert worst <= rtol
    assert info.code.auto_choice.predicted <= rtol


def test_looser_rtol_buys_a_finer_split():
    """rtol=1e-2 picks a larger m (an ε-code) than rtol=1e-12 (an exact code)."""
    loose = choose_code(8, 3, "float64", rtol=1e-2).code
    tight = choose_code(8, 3, "float64", rtol=1e-12).code
    assert loose.m > tight.m
    assert loose.approximate and not tight.approximate


def test_auto_reports_and_refuses():
    A, B = _gauss((20, 20), 3, np.float32), _gauss((20, 20), 4, np.float32)
    _, info = gpucoded.coded_matmul(A, B, "auto", P=8, stragglers=3, return_info=True)
    assert info.code is info.code.auto_choice.code and "chosen" in "\n".join(
        info.code.auto_choice.explain()
    )
    with pytest.raises(ValueError, match="no code on P=8.*rtol=1e-12.*float32"):
        gpucoded.coded_matmul(A, B, "auto", P=8, stragglers=3, rtol=1e-12)
    with pytest.raises(TypeError, match="needs P="):
        gpucoded.coded_matmul(A, B, "auto")
    with pytest.raises(TypeError, match="drop"):
        gpucoded.coded_matmul(A, B, "auto", P=8, m=2)
    with pytest.raises(TypeError, match="only apply with code='auto'"):
        gpucoded.coded_matmul(A, B, "chebyshev", m=2, rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_is_exact_to_working_precision(dtype):
    """No code given: A·B as accurate as A @ B (within 4x of its error, + 4 ulps), with
    any one worker failed."""
    A, B = _gauss((70, 90), 5, dtype), _gauss((90, 40), 6, dtype)
    E = exact_product(A, B)
    s = np.abs(E).max()
    plain = np.abs(A @ B - E).max() / s
    u = np.finfo(dtype).eps / 2
    for f in range(4):
        C, info = gpucoded.coded_matmul(A, B, failed=f, return_info=True)
        assert C.dtype == dtype and not info.code.approximate
        assert np.abs(C - E).max() / s <= 4 * plain + 4 * u


def test_code_auto_operator():
    M = _gauss((50, 40), 7)
    cm = gpucoded.CodedMatrix(M, "auto", P=8, stragglers=3, rtol=1e-2)
    x = _gauss((40,), 8)
    y, info = cm.matmul(x, failed=[0, 1, 2], return_info=True)
    assert len(info.used) == 5  # waits for the P - stragglers answers it predicted for
    assert np.abs(y - M @ x).max() <= 1e-2 * np.abs(M @ x).max()


# ----------------------------------------------------- bounded cost (issue 20 item 3)
def test_answer_sets_never_enumerate():
    """C(200, 100) ~ 9e58 sets: a bounded search, returned at once; small cases: all."""
    import math

    from gpucoded.codes.gamma import MAX_SUBSETS, answer_sets

    sets, exact = answer_sets(200, 100)
    assert not exact and len(sets) <= MAX_SUBSETS and sets.shape[1] == 100
    assert all(len(set(s)) == 100 for s in sets.tolist())
    sets, exact = answer_sets(8, 5)
    assert exact and len(sets) == math.comb(8, 5)
    # every contiguous gap of missing workers is searched
    sets, exact = answer_sets(30, 26, budget=200)
    missing = {tuple(sorted(set(range(30)) - set(s))) for s in sets.tolist()}
    assert all(tuple(range(i, i + 4)) in missing for i in range(27))


@pytest.mark.parametrize(("m", "P", "r"), [(4, 12, 8), (3, 13, 9)])
def test_searched_worst_case_matches_the_exhaustive_one(m, P, r):
    """Where all sets can still be enumerated (495 / 715), the bounded search (64 sets:
    the gaps, end splits and a sample) finds the same worst case as all of them."""
    import numpy as np

    from gpucoded.codes.gamma import ErrorModel

    gs = np.array([1.0, 10.0, 1e3, 1e5])
    full = ErrorModel("matdot", 1, m, P, r, budget=10_000)
    part = ErrorModel("matdot", 1, m, P, r, budget=64)
    assert full.exact and not part.exact
    for dtype in ("float64", "float32"):
        a = full.predict(gs, dtype).total
        b = part.predict(gs, dtype).total
        np.testing.assert_allclose(b, a, rtol=1e-9)


def test_large_p_is_refused_not_exhausting_memory():
    from gpucoded.codes.gamma import MAX_P, ErrorModel

    with pytest.raises(ValueError, match="at most P="):
        choose_code(MAX_P + 1, 1, "float64", rtol=1e-2)
    with pytest.raises(ValueError, match="at most P="):
        ErrorModel("matdot", 1, 3, MAX_P + 1)


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-4), ("float32", 1e-3)])
def test_auto_meets_rtol_on_every_data_family(dtype, rtol):
    """Issue 20 item 2: code="auto" meets its rtol on non-negative and non-centred data
    too (its prediction is a worst case over inputs, relative to ρ_Aρ_B, which the mean
    part of such data only makes smaller relative to max|AB|), without a warning."""
    import warnings

    from _trust import FAMILIES, family_operands

    from gpucoded.errors import InaccurateResultWarning

    for i, fam in enumerate(sorted(FAMILIES)):
        A, B = family_operands(fam, 120, 300, 60, dtype, i)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            C, info = gpucoded.coded_matmul(
                A, B, "auto", P=8, stragglers=1, rtol=rtol, return_info=True
            )
        E = exact_product(A, B).astype(np.float64)
        rel = float(np.abs(C - E).max() / np.abs(E).max())
        warned = any(issubclass(w.category, InaccurateResultWarning) for w in caught)
        assert rel <= rtol and not warned, (fam, info.code, rel, rtol, warned)


def test_auto_choice_is_one_the_guard_accepts():
    """code="auto" holds its choice to min(rtol, 1e-2 / overestimate(l)): the guard's
    measured check over-estimates an error spread over a row by up to 2.5·sqrt(l), so a
    code predicted just under rtol=1e-2 (ε-MatDot m=5 here, 8.8e-3) would be flagged
    after the work was done. Non-negative operands, 30 columns."""
    import warnings

    from gpucoded import probes

    rng = np.random.default_rng(0)
    A, B = rng.random((60, 40)), rng.random((40, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error", gpucoded.InaccurateResultWarning)
        C, info = gpucoded.coded_matmul(
            A, B, "auto", P=8, stragglers=3, rtol=1e-2, executor="serial", return_info=True
        )
    choice = info.code.auto_choice
    assert choice.target == pytest.approx(1e-2 / probes.overestimate(30))
    assert choice.predicted <= choice.target < choice.rtol
    assert info.accuracy <= 1e-2
    E = A @ B
    assert np.abs(C - E).max() <= 1e-2 * np.abs(E).max()
    assert any("target" in line for line in choice.explain())
    # a matrix-vector product is checked exactly: nothing to leave room for
    assert probes.overestimate(probes.PROBES) == 1.0
