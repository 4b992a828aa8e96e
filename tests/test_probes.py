"""The measured check (:mod:`gpucoded.probes`): its confidence, its scale, its paths.

The probe estimator's confidence is tested against the χ² figures the module states:
with the error in one entry (the worst case for the estimator, where the max norm is
the row norm), :math:`P(\\hat\\sigma<\\sigma/2)=P(\\chi^2_8<2)=0.019` and
:math:`P(\\kappa\\hat\\sigma<\\sigma)=P(\\chi^2_8<8/\\kappa^2)=0.0042`; the counts over
many draws must lie within 5 binomial standard deviations of those rates.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import gpucoded
from gpucoded import probes
from gpucoded.errors import InaccurateResultError, InaccurateResultWarning
from gpucoded.progressive import progressive_matmul
from gpucoded.reference import exact_product


def test_chi2_cdf_matches_the_stated_figures():
    assert probes.chi2_cdf(8 / 4, 8) == pytest.approx(0.01899, abs=1e-5)
    assert probes.chi2_cdf(16 / 4, 16) == pytest.approx(0.0011, abs=1e-4)
    assert probes.MISS_PROBABILITY == pytest.approx(0.0042, abs=1e-4)
    assert probes.CONFIDENCE == pytest.approx(1 - probes.MISS_PROBABILITY)
    # the closed form against a Monte Carlo of chi^2_8
    z = np.random.default_rng(0).standard_normal((200_000, 8))
    mc = float(np.mean((z**2).sum(1) < 2.0))
    assert mc == pytest.approx(probes.chi2_cdf(2.0, 8), abs=5 * math.sqrt(0.019 / 200_000))


def _binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("where", ["one entry", "one row", "everywhere"])
def test_estimator_confidence_over_many_draws(where):
    """How often the estimate falls below max|E| / 2 and below max|E|, over 3000 draws
    of the probes for a fixed error: at most the χ² rates (equal to them for an error
    in one entry, where max|E| = the row norm)."""
    rng = np.random.default_rng(1)
    n, k, l = 12, 10, 40
    A, B = rng.random((n, k)), rng.random((k, l))
    C = A @ B
    E = np.zeros((n, l))
    if where == "one entry":
        E[3, 7] = 1e-3
    elif where == "one row":
        E[5] = 1e-3 * rng.standard_normal(l)
    else:
        E = 1e-3 * rng.standard_normal((n, l))
    emax = np.abs(E).max()
    draws = 3000
    half = miss = 0
    for _ in range(draws):
        m = probes.measure(C + E, A, B, rng=rng)
        half += m.error / probes.KAPPA < emax / 2
        miss += m.error < emax
    p_half, p_miss = probes.chi2_cdf(2.0, 8), probes.MISS_PROBABILITY
    if where == "one entry":  # the worst case: the rates themselves
        assert _binomial_ok(half, draws, p_half), (half, draws * p_half)
        assert _binomial_ok(miss, draws, p_miss), (miss, draws * p_miss)
    else:  # spread errors: the estimate over-estimates, misses are rarer
        assert half <= draws * p_half + 5 * math.sqrt(draws * p_half)
        assert miss <= draws * p_miss + 5 * math.sqrt(draws * p_miss)


def test_scale_is_a_lower_bound_on_max_ab_never_the_result_alone():
    """A wrong result 6x too large: the scale stays below max|AB| and the check flags it
    (the issue's float32 PolyDot case had its scale from the wrong result)."""
    rng = np.random.default_rng(2)
    A, B = rng.random((60, 50)), rng.random((50, 40))
    AB = A @ B
    for C in (6 * AB, AB + 100.0, -AB):
        m = probes.measure(C, A, B, rng=rng)
        assert m.scale <= np.abs(AB).max() * (1 + 1e-12)
        assert m.relative > 1e-2
    ok = probes.measure(AB, A, B, rng=rng)
    assert ok.scale == pytest.approx(np.abs(AB).max(), rel=1e-10)  # max|C| - tiny error
    assert ok.relative < 1e-12


@pytest.mark.parametrize("l", [1, 3, 8])
def test_few_columns_are_checked_exactly(l, monkeypatch):
    """l <= PROBES: the unit vectors, i.e. the exact error and max|AB| (confidence 1)."""
    monkeypatch.setattr(probes, "EXACT_BELOW", 0)  # the unit vectors, not the small path
    rng = np.random.default_rng(3)
    A, B = rng.random((30, 20)).astype(np.float32), rng.random((20, l)).astype(np.float32)
    AB = exact_product(A, B).astype(np.float64)
    C = AB.astype(np.float32)
    C[4, l - 1] += 0.5
    m = probes.measure(C, A, B)
    assert m.exact and m.confidence == 1.0 and m.probes == l
    assert m.error == pytest.approx(np.abs(C - AB).max(), rel=1e-6)
    assert m.scale == pytest.approx(np.abs(AB).max(), rel=1e-12)


def test_float32_probes_are_computed_in_float64():
    """An exact float32 product measures at its own rounding, not the probe's: the
    probe rounding in float32 would be ~k u relative; float64 keeps it ~1e-16."""
    rng = np.random.default_rng(4)
    A = rng.random((200, 3000)).astype(np.float32)
    B = rng.random((3000, 50)).astype(np.float32)
    AB = exact_product(A, B)
    m = probes.measure(AB.astype(np.float32), A, B)  # C = AB rounded once to float32
    assert m.relative < 10 * probes.KAPPA * np.sqrt(50) * 2.0**-24


@pytest.mark.parametrize("exact_below", [0, probes.EXACT_BELOW])
def test_a_single_corrupt_entry_is_caught_by_the_call(monkeypatch, exact_below):
    """Two of four answers off in one entry (every decodable set holds one): the model
    cannot see it, the probes do (and the exact check of a small product)."""
    monkeypatch.setattr(probes, "EXACT_BELOW", exact_below)
    rng = np.random.default_rng(5)
    A, B = rng.random((40, 30)), rng.random((30, 20))
    with pytest.raises(InaccurateResultError, match="measured error"):
        gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor=_corrupting(0),
                              on_inaccurate="raise")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateResultWarning)
        C = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor=_corrupting(0), check=None)
    assert np.abs(C - A @ B).max() > 1.0  # what the unmeasured guard lets through


def _corrupting(worker: int):
    from gpucoded.executors import SerialExecutor
    from gpucoded.stragglers import FaultyExecutor

    faults = {worker: ("perturb", 1e3), worker + 1: ("perturb", 1e3)}
    return FaultyExecutor(SerialExecutor(), faults)


def test_check_option_is_validated():
    A = np.ones((4, 4))
    with pytest.raises(ValueError, match="check must be 'probes'"):
        gpucoded.coded_matmul(A, A, check="maybe")


def test_every_call_path_measures():
    rng = np.random.default_rng(6)
    A, B = rng.random((30, 20)), rng.random((20, 16))
    _, info = gpucoded.coded_matmul(A, B, "matdot", m=2, return_info=True)
    assert info.measured.exact and info.measured.probes == 16  # small: the exact error
    big = rng.random((90, 80)), rng.random((80, 75))  # 540,000 > EXACT_BELOW
    _, info = gpucoded.coded_matmul(*big, "matdot", m=2, return_info=True)
    assert not info.measured.exact and info.measured.probes == 8
    M = gpucoded.CodedMatrix(A, "matdot", m=2)
    _, info = M.matmul(B, return_info=True)
    assert info.measured is not None
    _, info = M.matmul(B[:, 0], return_info=True)  # M's left probes, multiplied once
    assert not info.measured.exact and info.measured.probes == 8
    _, info = gpucoded.coded_matmul(A, B[:, 0], "matdot", m=2, return_info=True)
    assert info.measured.exact and info.measured.probes == 1  # a matrix-vector product
    _, info = M.matmul(B, return_info=True, check=None)
    assert info.measured is None


def test_progressive_bound_never_increases():
    """Issue 20 item 4: the reported bound is non-increasing as answers arrive (a decode
    can ignore an answer). ε-MatDot m=5, P=10, float32 rose 160 -> 400 from the 5th
    to the 6th answer before."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((40, 30)).astype(np.float32)
        B = rng.standard_normal((30, 20)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InaccurateResultWarning)
            out = list(
                progressive_matmul(
                    A, B, "approx_matdot", m=5, P=10, until_exact=False, executor="serial"
                )
            )
        bounds = [d.error_bound for _, d in out]
        assert all(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:], strict=False)), bounds
        E = exact_product(A, B).astype(np.float64)
        for C, d in out:
            assert np.abs(C - E).max() <= d.error_bound


@pytest.mark.gpusim
def test_device_check_costs_no_extra_host_sync(sim):
    """The CUDA path measures on the device: no more host synchronisations than the
    unmeasured guard's max|C| (the four numbers come back in one transfer)."""
    import cupy as cp

    rng = np.random.default_rng(7)
    A, B = rng.random((40, 30)), rng.random((30, 24))
    dA, dB = cp.asarray(A), cp.asarray(B)
    cp.cuda.Device(0).synchronize()
    syncs = {}
    for check in (None, "probes"):
        n0 = sim.stats["host_sync"]
        C, info = gpucoded.coded_matmul(dA, dB, "matdot", m=2, check=check, return_info=True)
        syncs[check] = sim.stats["host_sync"] - n0
    assert isinstance(C, cp.ndarray) and info.measured is not None
    assert syncs["probes"] <= syncs[None], syncs
    assert info.accuracy < 1e-10 and info.measured.scale > 0


def _no_host(monkeypatch):
    """The array-module path of :func:`probes.measure` (what CuPy and complex data run)."""
    monkeypatch.setattr(probes, "_host_stats", lambda *a: None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("l", [5, 40])
def test_compiled_and_array_paths_measure_the_same(monkeypatch, dtype, l):
    """The compiled one-pass-per-operand loops give the statistics of the GEMM path:
    same error, scale and max|C| to float64 rounding (both sum in float64; k = 300
    terms, so within 300·2⁻⁵³ relative of |A||B||X|, far below 1e-9 here)."""
    from gpucoded import hostops

    if not hostops.available():
        pytest.skip("compiled CPU loops not built")
    rng = np.random.default_rng(5)
    A = (rng.random((70, 300)) + 0.5).astype(dtype)  # non-negative, non-centred
    B = rng.standard_t(3, (300, l)).astype(dtype)  # heavy-tailed
    C = (A.astype(np.float64) @ B).astype(dtype)
    C[3, 1] += 0.01 * np.abs(C).max()  # an error to measure
    got = probes.measure(C, A, B, rng=np.random.default_rng(1))
    assert probes._host_stats(C, A, B, np.eye(l) if l <= 8 else np.ones((l, 8)), l <= 8)
    _no_host(monkeypatch)
    ref = probes.measure(C, A, B, rng=np.random.default_rng(1))
    for f in ("error", "scale", "result_max"):
        assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-9), f
    assert got.exact == ref.exact == (l <= 8)


@pytest.mark.parametrize("exact_below", [0, probes.EXACT_BELOW])
def test_compiled_path_reports_a_nonfinite_result(monkeypatch, exact_below):
    """A NaN in Ĉ makes the error and max|Ĉ| NaN on the compiled path too (its
    max|M| pass does not see NaNs; the rows of ĈX do), and on the small products'
    exact path."""
    monkeypatch.setattr(probes, "EXACT_BELOW", exact_below)
    rng = np.random.default_rng(6)
    A, B = rng.random((40, 30)), rng.random((30, 20))
    C = A @ B
    C[7, 3] = np.nan
    got = probes.measure(C, A, B)
    assert math.isnan(got.error) and math.isnan(got.result_max)
    C[7, 3] = np.inf
    got = probes.measure(C, A, B)
    assert not math.isfinite(got.result_max)


# ------------------------------------------------- probes of a shared operand (CodedMatrix)


def _flag(m: probes.Measured) -> bool:
    return not m.relative <= probes.RTOL_FLAG


@pytest.mark.parametrize("where", ["one entry", "spread down the column"])
def test_left_probes_confidence_over_many_draws(where):
    """Left probes of a matrix–vector product (fixed_side "A"): over fresh probe sets,
    κσ̂ falls below the column norm ‖e‖₂ (≥ max|e|) at the χ²₈ rate the module states,
    within 5 binomial standard deviations, whatever the error's shape."""
    rng = np.random.default_rng(21)
    M, x = rng.random((200, 50)), rng.random(50)
    y = M @ x
    e = np.zeros(200)
    if where == "one entry":
        e[17] = 1e-3
    else:
        e[:] = rng.standard_normal(200) * 1e-4
    trials, misses = 1500, 0
    for _ in range(trials):
        fx = probes.fixed_side(M, "A")
        R = fx.W.T @ (y + e) - fx.V.T @ x  # what _fixed_measure forms: wᵀŷ − (Mᵀw)ᵀx
        sig = math.sqrt(float((R * R).sum()) / fx.s)
        misses += probes.KAPPA * sig < np.linalg.norm(e)
    assert _binomial_ok(misses, trials, probes.MISS_PROBABILITY), misses


def test_left_probe_estimate_is_what_measure_reports():
    """measure(..., fixed=...) forms the same residual as the test above, and bounds the
    error: κσ̂ ≥ max|e| here (an error of 1e-4 relative, far below the flag)."""
    rng = np.random.default_rng(22)
    M, x = rng.random((300, 40)), rng.random((40, 1))
    y = M @ x
    C = y + 1e-4 * np.abs(y).max() * rng.standard_normal(y.shape) / math.sqrt(300)
    fx = probes.fixed_side(M, "A")
    got = probes.measure(C, M, x, fixed=fx)
    R = fx.W.T @ C - fx.V.T @ x
    sig2 = float((R * R).sum(axis=0).max()) / 8
    assert got.error == pytest.approx(probes.KAPPA * math.sqrt(sig2))
    assert not got.exact and got.error >= np.abs(C - y).max()
    assert got.scale <= np.abs(y).max()


def test_left_probes_flag_only_after_the_exact_check():
    """An error spread down the column at 3e-3 of max|Mx| (below the 1e-2 flag): the
    left probes over-estimate it by up to κ√n and would flag it; measure checks such a
    result exactly first, so it is not flagged. At 3e-2 it is, by the exact check."""
    rng = np.random.default_rng(23)
    n = 2000
    M, x = rng.random((n, 30)), rng.random((30, 1))
    y = M @ x
    fx = probes.fixed_side(M, "A")
    for level, flagged in ((3e-3, False), (3e-2, True)):
        C = y + level * np.abs(y).max() * np.sign(rng.standard_normal(y.shape))
        got = probes.measure(C, M, x, fixed=fx)
        assert got.exact and got.relative == pytest.approx(level, rel=1e-6)
        assert _flag(got) == flagged


def test_right_probes_of_the_shared_operand_match_measure():
    """X @ M with M's probes multiplied once (fixed_side "B"): the same statistics as
    measure's own right probes drawn the same (V = M W formed before, not per call)."""
    rng = np.random.default_rng(24)
    M, X = rng.random((60, 40)), rng.random((5, 60))
    C = X @ M
    C[2, 7] += 0.05
    fx = probes.fixed_side(M, "B")
    got = probes.measure(C, X, M, fixed=fx)
    R = C @ fx.W - X @ fx.V
    assert got.error == pytest.approx(
        probes.KAPPA * math.sqrt(float((R * R).sum(axis=1).max()) / 8), rel=1e-12
    )
    assert got.error >= 0.05 / probes.KAPPA


def test_coded_matrix_checks_without_reading_m_again(monkeypatch):
    """cm @ x and X @ cm: the measured check never multiplies M (its probes were
    multiplied once); a corrupt answer is still caught, by the exact check."""
    from gpucoded import hostops

    rng = np.random.default_rng(25)
    M = rng.random((120, 90))
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2, P=4, executor="serial")
    cm @ rng.random(90), rng.random((3, 120)) @ cm  # probes of both sides made
    seen = []
    real_rw, real_wide = hostops.rowmul_wide, probes._wide
    monkeypatch.setattr(hostops, "rowmul_wide",
                        lambda A, *a, **k: (seen.append(A), real_rw(A, *a, **k))[1])  # fmt: skip
    monkeypatch.setattr(probes, "_wide", lambda A, xp: (seen.append(A), real_wide(A, xp))[1])
    y, info = cm.matmul(rng.random(90), return_info=True)
    Y, info2 = cm.rmatmul(rng.random((12, 120)), return_info=True)
    assert not any(np.shares_memory(a, M) for a in seen)
    assert info.measured is not None and not info.measured.exact
    assert info2.measured is not None and info.accuracy < 1e-10
    faulty = gpucoded.CodedMatrix(M, "matdot", m=2, P=4, executor=_corrupting(0))
    with pytest.raises(InaccurateResultError, match="column by column"):
        faulty.matmul(rng.random(90), on_inaccurate="raise")


# ------------------------------------------------------------- small products: exact


def _operands(kind: str, shape_a: tuple, shape_b: tuple, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    if kind == "non-negative":
        return rng.random(shape_a) + 2.0, rng.random(shape_b)  # non-centred too
    if kind == "sparse":
        return (rng.random(shape_a) < 0.05) * 1.0, rng.random(shape_b) * (rng.random(shape_b) < 0.1)
    return rng.standard_t(2, shape_a), rng.standard_t(2, shape_b)  # heavy-tailed


@pytest.mark.parametrize("kind", ["gaussian", "non-negative", "sparse", "heavy-tailed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_products_are_measured_exactly(kind, dtype):
    """n·k·l ≤ EXACT_BELOW: the error is max|Ĉ − AB| itself and the scale max|AB|
    (float64, whose rounding k·2⁻⁵³ relative is far below the 1e-9 asked), confidence
    1, whatever the data; one more column and the probes measure instead."""
    A, B = _operands(kind, (64, 64), (64, 128), 11)
    A, B = A.astype(dtype), B.astype(dtype)
    assert A.shape[0] * A.shape[1] * B.shape[1] == probes.EXACT_BELOW
    AB = exact_product(A, B).astype(np.float64)
    C = AB.astype(dtype)
    C[7, 100] += 1e-3 * max(np.abs(AB).max(), 1.0)
    m = probes.measure(C, A, B)
    assert m.exact and m.confidence == 1.0 and m.probes == 128
    assert m.error == pytest.approx(np.abs(C - AB).max(), rel=1e-9)
    assert m.scale == pytest.approx(np.abs(AB).max(), rel=1e-12)
    assert m.result_max == np.abs(C).max()
    B1 = np.concatenate([B, B[:, :1]], axis=1)  # 64·64·129 > EXACT_BELOW
    C1 = np.concatenate([C, AB[:, :1].astype(dtype)], axis=1)
    m1 = probes.measure(C1, A, B1)
    assert not m1.exact and m1.probes == probes.PROBES
    assert probes.exact_reference(A, B1) is None


def test_the_call_computes_the_exact_product_once(monkeypatch):
    """A small ε-MatDot call (its answer set has candidate weights): the decoder's
    measured choice and the accuracy check share one float64 product."""
    calls = []
    real = probes.exact_reference
    monkeypatch.setattr(probes, "exact_reference", lambda A, B: calls.append(1) or real(A, B))
    A, B = _operands("non-negative", (24, 40), (40, 16), 3)
    C, info = gpucoded.coded_matmul(A, B, "approx_matdot", m=4, P=6, return_info=True,
                                    on_inaccurate="ignore")  # fmt: skip
    assert len(calls) == 1
    assert info.decode.scores is not None and info.measured.exact
    assert info.measured.error == pytest.approx(np.abs(C - A @ B).max(), rel=1e-9)
    _, info = gpucoded.coded_matmul(A, B, "approx_matdot", m=4, P=6, return_info=True,
                                    on_inaccurate="ignore", check=None)  # fmt: skip
    assert len(calls) == 1 and info.measured is None and info.decode.scores is None
