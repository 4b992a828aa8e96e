r"""``code="auto"`` among replication, the codes and hedging (issue 24, item 3).

* Replication of m blocks on P = m·r workers survives any s missing workers iff
  r ≥ s + 1; at equal m it is preferred (no decode: rounding u·m against the
  Chebyshev code's u·F_S, F_S ≥ m).
* Chebyshev and ε-MatDot are still chosen where they allow a larger m.
* Hedging is a candidate only with a latency model, and chosen only where it is
  faster in expectation: checked here against an estimate of the expected times
  independent of the choice (other seeds, 2,000 draws, the straggler module's
  event simulation and order statistics).
* The chosen code meets rtol through ``coded_matmul`` with every set of s failed
  workers, on Gaussian, non-negative (uniform, pixel-like), sparse and heavy-tailed
  operands: the claim is :math:`\max|\hat C-AB|\le\mathrm{rtol}\cdot\max|AB|`, so
  rtol itself is the tolerance.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _trust import family_operands

import gpucoded
from gpucoded import autocode
from gpucoded.autocode import (
    LATENCY_WORK,
    MIN_LATENCY_DRAWS,
    choose_code,
    default_rtol,
    fastest,
    replication_blocks,
)
from gpucoded.codes import ChebyshevMatDot, Replication
from gpucoded.reference import exact_product
from gpucoded.stragglers import (
    Bimodal,
    OneSlowDevice,
    Pareto,
    ShiftedExponential,
    decodable_time,
    hedged_time,
)

MODELS = {
    "shifted-exp": ShiftedExponential(0.1, 0.05),
    "pareto": Pareto(0.1, 2.5),
    "bimodal": Bimodal(0.1, 0.25, 5.0),
    "one-slow": OneSlowDevice(0.1, 5.0, 0, 0.1),
}
KINDS = ["gaussian", "uniform [0,1)", "pixels uint8/255", "sparse 0/1", "student t (3)"]


# ------------------------------------------------------------------ replication
def test_replication_blocks_follow_the_library_class():
    """m | P (Replication builds P = m·r, refuses other P) and P/m ≥ s + 1 copies."""
    assert replication_blocks(8, 1) == [4, 2, 1]
    assert replication_blocks(12, 2) == [4, 3, 2, 1]
    assert replication_blocks(7, 1) == [1]  # 3 blocks x 2 copies would need P = 6
    assert replication_blocks(8, 0) == [8, 4, 2, 1]
    with pytest.raises(ValueError, match="P = m\\*r"):
        gpucoded.make_code("replication", m=3, P=7)


@pytest.mark.parametrize(("P", "s", "m"), [(8, 1, 4), (6, 2, 2), (10, 1, 5), (8, 0, 8)])
def test_replication_chosen_at_equal_m(P, s, m):
    """Where replication reaches the Chebyshev code's m it is chosen, waits for every
    block rather than for P − s answers, and explains why (F = m vs F_S)."""
    choice = choose_code(P, s, "float64")
    assert (choice.code.name, choice.code.m, choice.code.P) == ("replication", m, P)
    assert choice.code.r >= s + 1 and choice.answers is None
    cands = {(n, mm): e for n, mm, e in choice.candidates}
    u = np.finfo(np.float64).eps / 2
    ratio = autocode.scale_ratio(100, 100, 100)
    assert cands["replication", m] == pytest.approx(u * m * ratio, rel=1e-12)
    assert choice.factors["replication", m] == (pytest.approx(m), 0.0)
    # with stragglers these are ties: the Chebyshev code meets rtol at this m too
    # (without, replication's m = P is beyond every code's)
    assert (("chebyshev", m) in cands) == (s > 0)
    if s > 0:
        assert cands["chebyshev", m] <= choice.target
        assert choice.factors["chebyshev", m][0] >= m
        assert any(f"over chebyshev m={m}" in line for line in choice.explain())


@pytest.mark.parametrize(
    ("P", "s", "rtol", "name", "m"),
    [(12, 2, None, "chebyshev", 5), (7, 1, None, "chebyshev", 3), (9, 1, None, "chebyshev", 4),
     (8, 3, 1e-2, "approx_matdot", 4), (64, 4, 1e-2, "chebyshev", 30)],
)  # fmt: skip
def test_codes_still_chosen_where_they_allow_a_larger_m(P, s, rtol, name, m):
    choice = choose_code(P, s, "float64", rtol=rtol)
    assert (choice.code.name, choice.code.m) == (name, m)
    rep = [mm for n, mm, e in choice.candidates if n == "replication" and e <= choice.target]
    assert rep and max(rep) < m  # replication meets rtol, at more work per worker


# ------------------------------------------------------------------ hedging
@pytest.mark.parametrize(
    ("P", "s", "rtol"), [(8, 1, None), (9, 1, None), (8, 3, 1e-2), (12, 3, None)]
)
def test_hedging_not_chosen_without_a_latency_model(P, s, rtol):
    choice = choose_code(P, s, "float64", rtol=rtol)
    assert choice.code.name != "hedged"
    assert all(n != "hedged" for n, _, _ in choice.candidates)
    assert not choice.expected_time
    assert any("not considered without latency=" in line for line in choice.explain())


def _independent_means(choice, P, s, model, draws=2000, seed=12345):
    """Expected times of hedging and of the exact candidates at the chosen m, from
    other draws: hedged_time for hedging, decodable_time for the others (Chebyshev
    waits for the P − s answers it was predicted for, replication for a copy of
    every block)."""
    rng = np.random.default_rng(seed)
    T = [list(model.sample(P, rng)) for _ in range(draws)]
    m = choice.code.m
    hedged = float(np.mean([hedged_time(t, m)[0] for t in T]))
    runs = {"chebyshev": (ChebyshevMatDot(m, P), P - s)}
    if P % m == 0 and P // m > s:
        runs["replication"] = (Replication(m, P // m), None)
    others = {
        name: float(np.mean([decodable_time(code, t, answers=need)[0] for t in T]))
        for name, (code, need) in runs.items()
    }
    return hedged, others


def test_hedging_chosen_where_it_is_faster_in_expectation():
    """P = 9, 1 straggler, two of the nine workers 5x slow (Bimodal): the exact choice by
    m is Chebyshev m = 4, which waits for 8 answers, so for a slow one in every draw;
    hedging m = 4 re-issues the slow tasks to fast spares. Replication cannot use 9
    workers with 4 blocks."""
    model = MODELS["bimodal"]
    choice = choose_code(9, 1, "float64", latency=model)
    assert isinstance(choice.code, gpucoded.codes.Hedged) and choice.code.m == 4
    assert set(choice.expected_time) == {("chebyshev", 4), ("hedged", 4)}
    assert choice.answers is None and choice.latency is model
    t = choice.expected_time
    assert t["hedged", 4] < t["chebyshev", 4]
    hedged, others = _independent_means(choice, 9, 1, model)
    assert hedged < min(others.values())
    assert any("expected time to result" in line for line in choice.explain())


@pytest.mark.parametrize(("P", "s"), [(8, 1), (9, 1), (12, 3)])
@pytest.mark.parametrize("model", ["shifted-exp", "pareto", "one-slow"])
def test_hedging_not_chosen_where_it_is_slower(P, s, model):
    """Where the choice by m is faster than hedging at that m (independent estimate),
    it stays; the expected times of every candidate at that m are recorded."""
    lat = MODELS[model]
    plain = choose_code(P, s, "float64")
    choice = choose_code(P, s, "float64", latency=lat)
    hedged, others = _independent_means(choice, P, s, lat)
    assert hedged > others[plain.code.name]
    assert (choice.code.name, choice.code.m) == (plain.code.name, plain.code.m)
    assert ("hedged", plain.code.m) in choice.expected_time


def test_bimodal_keeps_replication_where_it_exists():
    """P = 8: replication (two copies of each of 4 blocks, both started at once) beats
    hedging's later re-issue under the bimodal model too."""
    choice = choose_code(8, 1, "float64", latency=MODELS["bimodal"])
    assert choice.code.name == "replication"
    t = choice.expected_time
    assert t["replication", 4] < t["hedged", 4] < t["chebyshev", 4]


def test_a_faster_mean_within_the_noise_does_not_displace_the_choice():
    """fastest(): a candidate whose paired differences average less than 2 standard
    errors above zero leaves the choice by m; a clear one displaces it."""
    rng = np.random.default_rng(0)
    base = rng.exponential(1.0, 16)
    noise = rng.standard_normal(16)
    times = {("chebyshev", 4): base, ("hedged", 4): base - 0.01 + 0.5 * noise}
    assert np.mean(times["hedged", 4]) < np.mean(base)  # faster on average, by chance
    assert fastest(times, ("chebyshev", 4)) == ("chebyshev", 4)
    times["hedged", 4] = base - 1.0 + 0.1 * noise
    assert fastest(times, ("chebyshev", 4)) == ("hedged", 4)


def test_latency_is_checked_and_only_for_auto():
    A = np.ones((4, 4))
    with pytest.raises(TypeError, match="latency must be a gpucoded.stragglers.LatencyModel"):
        choose_code(8, 1, "float64", latency=0.1)
    with pytest.raises(TypeError, match="only apply with code='auto'"):
        gpucoded.coded_matmul(A, A, "chebyshev", m=2, latency=MODELS["pareto"])


def test_latency_draws_are_bounded():
    """Draws · m² stays within LATENCY_WORK (or at the floor): the hedged simulation
    costs about m² per draw."""
    choice = choose_code(64, 4, "float64", rtol=1e-2, latency=MODELS["shifted-exp"])
    m = choice.code.m
    assert choice.draws * m * m <= LATENCY_WORK or choice.draws == MIN_LATENCY_DRAWS
    assert autocode.latency_draws(512, 256) == MIN_LATENCY_DRAWS


# ------------------------------------------------------------------ the promise
CASES = [  # (P, s, rtol, latency, the family chosen)
    (8, 1, None, None, "replication"),
    (6, 2, None, None, "replication"),
    (12, 2, None, None, "chebyshev"),
    (8, 3, 1e-2, None, "approx_matdot"),
    (9, 1, None, "bimodal", "hedged"),
]


@pytest.mark.parametrize(("P", "s", "rtol", "model", "name"), CASES)
def test_choice_meets_rtol_with_any_s_failed(P, s, rtol, model, name):
    """Through coded_matmul with every set of s failed workers, on five kinds of data:
    max|Ĉ − AB| ≤ rtol·max|AB| (rtol None: working precision, 1000 u)."""
    lat = None if model is None else MODELS[model]
    tol = default_rtol("float64") if rtol is None else rtol
    worst = {}
    for i, kind in enumerate(KINDS):
        A, B = family_operands(kind, 40, 60, 30, np.float64, i)
        E = np.asarray(exact_product(A, B), dtype=np.float64)
        for f in itertools.combinations(range(P), s):
            C, info = gpucoded.coded_matmul(
                A, B, "auto", P=P, stragglers=s, rtol=rtol, latency=lat, failed=list(f),
                executor="serial", return_info=True,
            )  # fmt: skip
            assert info.code.name == name
            rel = float(np.abs(C - E).max() / np.abs(E).max())
            worst[kind] = max(worst.get(kind, 0.0), rel)
    assert all(v <= tol for v in worst.values()), worst


def test_advise_passes_the_latency_model_to_auto(capsys):
    """``gpucoded advise --rtol ... --latency ...`` shows what code="auto" picks with that
    model, and why (work per worker, bits, F, expected times)."""
    from gpucoded.cli import build_parser

    argv = ["advise", "--m", "4", "--P", "9", "--stragglers", "1", "--n", "20", "--rtol",
            "1e-10", "--latency", "bimodal:0.1,0.25,5"]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    auto = out[out.index("code='auto'") :]
    assert "latency=Bimodal" in auto and "-> Hedged(m=4, P=9" in auto
    for word in ("work/worker", "bits*m", "E[time]", "expected time to result", "over chebyshev"):
        assert word in auto
