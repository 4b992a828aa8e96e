"""What each answer beyond the threshold buys (ε-MatDot, progressive decoding)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gpucoded.codes import ApproxMatDot
from gpucoded.reference import exact_product, interpolation_error
from gpucoded.studies.progressive_gain import ladder, markdown, plot, worst_errors
from gpucoded.studies.sweep import unit_gaussian_pair

U64 = 2.0**-53


@pytest.mark.parametrize(("m", "P"), [(3, 6), (4, 8)])
def test_each_answer_buys_one_power_of_gamma(m, P):
    r"""ε₁ (exact arithmetic: mpmath defect, longdouble products) from r < 2m−1 answers
    is :math:`\sum_{d=r}^{2m-2}\gamma^{m-1-d}Y_d`, a polynomial in 1/γ whose lowest power
    is r−m+1. The measured order log10(ε₁(γ)/ε₁(10γ)) therefore tends to the *integer*
    r−m+1 as γ grows; any other integer is ≥ 1 away, so |order − (r−m+1)| < 1/2
    identifies it. Subsets: the first r workers (not symmetric about 0, so no
    parity cancellation of Y_r)."""
    A, B = unit_gaussian_pair(12, 0)

    def code(g):  # the truncated interpolation this test is about
        return ApproxMatDot(m, P, gamma=g, decoder="interpolation")

    for r in range(m, 2 * m - 1):
        S = tuple(range(r))
        e = [
            float(np.abs(interpolation_error(code(g), A, B, S)).max())
            for g in (1e3, 1e4)
        ]
        assert abs(math.log10(e[0] / e[1]) - (r - m + 1)) < 0.5, (m, r, e)


@pytest.mark.parametrize(("m", "gamma"), [(3, 1e3), (4, 1e2)])
def test_error_strictly_falls_with_answers_at_fixed_gamma(m, gamma):
    r"""At a fixed γ, in the interpolation-limited regime, the *guaranteed* error from
    r+1 answers (a-priori bound of ``DecodeWeights.bounds``, max over all subsets) is
    below the worst error *measured* from r answers (all subsets, float64 workers):
    every further answer strictly helps, by at least the factor err(r)/bound(r+1).

    Regime: the step r → r+1 is kept when r+1 < 2m−1 (still truncated) and the rounding
    term u·γ^{m−1} is ≤ 1/100 of the interpolation term γ^{−(r−m+2)} (the γ powers of
    ε₂ and ε₁ from r+1 answers, module docstring of ``progressive_gain``)."""
    P = 2 * m
    A, B = unit_gaussian_pair(24, 0)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    code = ApproxMatDot(m, P, gamma=gamma)
    worst, _ = worst_errors(code, range(m, 2 * m - 1), A, B, C, "float64", 10**6)
    inner = -(-24 // m)
    steps = [
        r for r in range(m, 2 * m - 2) if U64 * gamma ** (m - 1) <= gamma ** (-(r - m + 2)) / 100
    ]
    assert steps  # the regime is not empty for these (m, γ)
    for r in steps:
        bound = max(
            sum(code.decode_weights(S, partial=True).bounds(1.0, 1.0, np.float64, inner))
            for S in itertools.combinations(range(P), r + 1)
        )
        assert worst[r + 1] <= bound < worst[r], (r, worst, bound)


@pytest.fixture(scope="module")
def rows3():
    return ladder(3, "float64", n=24)


def test_gamma_tuned_for_the_answers_that_arrive(rows3):
    """The trade-off the study publishes (m = 3, P = 6, all subsets): when r > m answers
    arrive, γ tuned for r (``auto_gamma(answers=r)``) beats γ tuned for m, and the γ
    tuned for r is worse than γ tuned for m if only m answers arrive. At r = 2m−1 the
    decode is exact: the γ-tuned error is rounding only, ≤ the a-priori bound."""
    base = rows3[0]
    assert base["answers"] == 3 and base["err_gamma_m"] == base["err_gamma_r"]
    for row in rows3[1:]:
        assert row["err_gamma_r"] < row["err_gamma_m"]
        assert row["err_gamma_r_at_m"] > base["err_gamma_m"]
        assert row["n_subsets"] == math.comb(6, row["answers"])
    last = rows3[-1]
    code = ApproxMatDot(3, 6, gamma=last["gamma_r"])
    bound = max(
        sum(code.decode_weights(S, partial=True).bounds(1.0, 1.0, np.float64, 8))
        for S in itertools.combinations(range(6), 5)
    )
    assert last["answers"] == 5 and last["err_gamma_r"] <= bound


def test_table_plot_and_errors(rows3, tmp_path):
    md = markdown(rows3).splitlines()
    assert len(md) == 3 and md[2].startswith("| 3 | float64 |")
    assert plot(rows3, tmp_path / "p.png").stat().st_size > 0
    with pytest.raises(ValueError, match="P >= m"):
        ladder(3, P=3)


def test_cli_quick(tmp_path, capsys):
    """``gpucoded progressive --quick`` (m = 2..4) writes its CSV, table and plot."""
    from gpucoded.cli import main as cli_main

    assert cli_main(["progressive", "--quick", "--dtypes", "float64", "--out", str(tmp_path)]) == 0
    assert "rows in" in capsys.readouterr().out
    lines = (tmp_path / "progressive.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 + 3 + 4  # header, then m..2m-1 answers for m = 2, 3, 4
    assert (tmp_path / "progressive.png").stat().st_size > 0
    assert cli_main(["progressive", "--m", "1-3", "--out", str(tmp_path)]) == 2
    assert "argument --m" in capsys.readouterr().err
