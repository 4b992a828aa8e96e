r"""``code="auto"`` pinned at one configuration: the choice, the prediction, the promise.

P = 8 workers, 3 stragglers (r = 5 answers), rtol = 1e-2, float64 workers, a
100×100×100 product. The predictions are the codes' worst-case error factors
(relative to :math:`\rho_A\rho_B`) times the typical scale ratio
:math:`\rho_A\rho_B/\max|AB|\approx\sqrt{k/(2\ln nl)}` = 2.33 here
(:func:`gpucoded.autocode.scale_ratio`). ε-MatDot m = 5 predicts 1.25e-2 with the
ratio (misses), 5.4e-3 without it (would be chosen): the choice is m = 4.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucoded
from gpucoded.autocode import choose_code, scale_ratio
from gpucoded.codes.gamma import best_gamma
from gpucoded.reference import exact_product

P, STRAGGLERS, RTOL, SHAPE = 8, 3, 1e-2, (100, 100, 100)


def test_auto_choice_and_prediction_include_the_scale_ratio():
    choice = choose_code(P, STRAGGLERS, "float64", rtol=RTOL, shape=SHAPE)
    ratio = scale_ratio(*SHAPE)
    assert (choice.code.name, choice.code.m, choice.answers) == ("approx_matdot", 4, 5)
    model = {m: best_gamma("matdot", 1, m, P, 5, "float64") for m in (4, 5)}
    assert choice.predicted == pytest.approx(model[4].error * ratio, rel=1e-12)
    assert choice.code.gamma == pytest.approx(model[4].gamma, rel=1e-12)
    cands = {(n, m): e for n, m, e in choice.candidates}
    assert cands[("approx_matdot", 5)] == pytest.approx(model[5].error * ratio, rel=1e-12)
    assert cands[("approx_matdot", 5)] > RTOL > choice.predicted  # m = 5 misses with the ratio


def _data(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if kind == "nonnegative":
        return rng.uniform(0.0, 1.0, shape) + 2.0
    if kind == "sparse":
        return rng.standard_normal(shape) * (rng.uniform(size=shape) < 0.1)
    if kind == "heavy":
        return rng.standard_t(1.5, shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("kind", ["gaussian", "nonnegative", "sparse", "heavy"])
def test_auto_meets_rtol_with_three_failed_workers(kind):
    """Through coded_matmul, with 3 of the 8 workers failed: the chosen code's error is
    within rtol·max|AB| and within its prediction (both relative to max|AB|; the
    prediction is a worst case over answer sets with a typical scale, measured
    about 7-45x above the error on these four kinds of data)."""
    rng = np.random.default_rng(5)
    A, B = _data(kind, SHAPE[:2], rng), _data(kind, SHAPE[1:], rng)
    C, info = gpucoded.coded_matmul(
        A, B, "auto", P=P, stragglers=STRAGGLERS, rtol=RTOL, failed=[0, 3, 6],
        executor="serial", return_info=True,
    )  # fmt: skip
    ref = np.asarray(exact_product(A, B), dtype=np.float64)
    rel = float(np.abs(C - ref).max() / np.abs(ref).max())
    assert info.code.m == 4 and len(info.used) == 5
    assert rel <= min(RTOL, info.code.auto_choice.predicted)
