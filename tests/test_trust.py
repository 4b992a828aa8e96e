"""Trust (issue 13): no wrong product leaves silently; honest defaults; tests that bite.

Decode-level checks of :mod:`gpucoded.guard` (the pipeline wires the same functions):
every class of the issue's table, with cases of our own, is refused, warned about, or
accurate to 1e-2; the well-conditioned set never warns. Tolerances are the guard's
own rule (:data:`gpucoded.guard.RTOL_GUARD`) or derived in the test's docstring.
The last section kills the six mutations that survived the suite (issue item 7).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _trust import guarded_decode, operands, raw_decode
from _util import unit_gaussian

import gpucoded
from gpucoded import guard
from gpucoded.api import operand_norms
from gpucoded.codes import (
    ApproxMatDot,
    ApproxPolyDot,
    ChebyshevMatDot,
    DecodeInfo,
    MatDot,
    PolyDot,
    PolynomialCode,
)
from gpucoded.codes.optimized import OptimizedMatDot
from gpucoded.errors import InaccurateResultError, InaccurateResultWarning
from gpucoded.executors import SerialExecutor
from gpucoded.formats import get_format
from gpucoded.points import matdot_radius, polydot_radius
from gpucoded.reference import exact_product
from gpucoded.weights import spectral_abs_norms

F64, F32 = get_format("float64"), get_format("float32")


# ------------------------------------------------------------------ the rule itself
def _info(bound, estimate=None, cond=1e3, workers=(0, 1, 2)):
    return DecodeInfo(workers=workers, cond=cond, error_bound=bound, estimate=estimate)


def test_rule_threshold_and_modes():
    """Flag iff min(bound, estimate) > 1e-2 max|C| or the result is not finite."""
    code = MatDot(3, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guard.check_accuracy(_info(0.99e-2), 1.0, code=code, fmt=F64) == 0.99e-2
        # the typical estimate decides when it is below the bound
        guard.check_accuracy(_info(1.0, estimate=1e-3), 1.0, code=code, fmt=F64)
    with pytest.warns(InaccurateResultWarning) as rec:
        guard.check_accuracy(_info(1.01e-2, cond=3.5e9), 1.0, code=code, fmt=F64)
    msg = str(rec[0].message)
    for part in ("MatDot(m=3, P=6)", "m=3", "3 answers", "workers [0, 1, 2]", "cond 3.5e+09"):
        assert part in msg, (part, msg)
    assert "estimated error 0.01 relative" in msg and "Fix: use" in msg
    with pytest.raises(InaccurateResultError) as exc:
        guard.check_accuracy(_info(0.5), 1.0, code=code, fmt=F64, on_inaccurate="raise")
    assert exc.value.estimate == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guard.check_accuracy(_info(0.5), 1.0, code=code, fmt=F64, on_inaccurate="ignore")
    for scale in (math.nan, math.inf):
        with pytest.warns(InaccurateResultWarning, match="not finite"):
            guard.check_accuracy(_info(1e-9), scale, code=code, fmt=F64)
    with pytest.raises(ValueError, match="on_inaccurate must be one of"):
        guard.check_mode("loud")


def test_fix_names_concrete_remedies():
    """The fix names what applies: more answers, gamma='auto', Chebyshev, m, float64."""
    fix = guard.suggest_fix(ApproxMatDot(5, 7), F32, _info(1.0, workers=tuple(range(5))))
    for part in ("answers=6..7", "gamma='auto'", "code='chebyshev', m=5", "float64 workers"):
        assert part in fix, (part, fix)
    fix = guard.suggest_fix(MatDot(30, 60), F64)
    assert "m <= 24" in fix and "more answers" not in fix


def test_bound_exceeds_result():
    assert guard.bound_exceeds_result(1.0, 1.0) and guard.bound_exceeds_result(2.0, 1.0)
    assert not guard.bound_exceeds_result(0.5, 1.0) and not guard.bound_exceeds_result(None, 1)
    assert guard.bound_exceeds_result(1e-9, math.nan)


# ------------------------------------------------------- refusing the hopeless early
def test_matdot_200_refused_without_solving_anything():
    """matdot m=200, P=400: refused from the closed-form floor; no weights computed."""
    code = MatDot(200, 400)
    with pytest.raises(ValueError) as exc:
        guard.check_feasible(code, F64)
    msg = str(exc.value)
    assert "condition number >= 1e" in msg and "code='chebyshev', m=200" in msg
    assert "m <= 24" in msg and "allow_inaccurate=True" in msg
    assert len(code._cache) == 0
    guard.check_feasible(code, F64, allow_inaccurate=True)  # the explicit opt-in
    guard.check_feasible(ChebyshevMatDot(200, 400), F32)  # well conditioned: accepted


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_refusal_boundary_matches_the_measured_error(dtype):
    """MatDot, P = 2m: refused exactly where every decode tried is hopeless.

    With the interpolation weights the floor is a typical-case lower estimate of the
    rounding error: the measured error of two answer sets is at least floor/4
    (measured ratio ≥ 0.4). The default (regularised) decoder trades that rounding for
    an interpolation defect, but where the code is refused its error stays > 0.1 too.
    """
    fmt = get_format(dtype)
    A, B = operands(12, 12, 12, dtype, 3)
    refused = 0
    for m in (4, 8, 12, 14, 16, 18) if dtype == np.float32 else (4, 10, 16, 20, 24):
        sets = (list(range(2 * m - 1)), list(range(1, 2 * m)))
        interp = MatDot(m, 2 * m, decoder="interpolation")
        floor = guard.rounding_floor(interp, fmt)
        errs = [raw_decode(interp, A, B, S) for S in sets]
        assert min(errs) >= floor / 4, (m, floor, errs)
        code = MatDot(m, 2 * m)
        try:
            guard.check_feasible(code, fmt)
        except ValueError:
            refused += 1
            errs += [raw_decode(code, A, B, S) for S in sets]
            assert min(errs) > 0.1, (m, errs)
    assert refused == (2 if dtype == np.float32 else 0)  # float32: m = 16, 18


def test_overflowing_weights_refused_even_with_opt_in():
    code = ApproxMatDot(8, 10, gamma=1e6, decoder="interpolation")
    with pytest.raises(ValueError, match="overflow"):
        guard.check_feasible(code, F32, allow_inaccurate=True)
    dw = code.decode_weights(range(8), fmt=F32)
    with pytest.raises(ValueError, match="beyond the largest float32"):
        guard.check_weights(code, dw, F32)
    guard.check_weights(code, dw, F64)  # fits in float64 (the guard then warns)


# --------------------------------------------------------------- honest defaults
def test_instance_tuned_for_float64_is_retuned_for_float32():
    code = ApproxMatDot(3, 5, decode_points="paper")
    assert guard.check_code_format(code, F64) is code
    new = guard.check_code_format(code, F32)
    assert new is not code and new.worker_dtype == "float32"
    assert new.gamma == ApproxMatDot(3, 5, dtype="float32").gamma < code.gamma / 100
    assert new.decode_points == "paper" and (new.m, new.P) == (3, 5)
    pd = guard.check_code_format(ApproxPolyDot(2, 1, 6), "tf32")
    assert pd.worker_dtype == "tf32" and (pd.p, pd.q, pd.P) == (2, 1, 6)


def test_fixed_gamma_for_another_format_refused_with_recipe():
    with pytest.raises(ValueError, match=r"ApproxMatDot\(8, 10, dtype='float32'\)"):
        guard.check_code_format(ApproxMatDot(8, 10, gamma=1e6), F32)
    with pytest.raises(ValueError, match=r"ApproxPolyDot\(2, 2, 10, dtype='float32'\)"):
        guard.check_code_format(ApproxPolyDot(2, 2, 10, gamma=3e4), F32)
    code = ApproxMatDot(2, 4, gamma=100.0)  # harmless in float32: kept as given
    assert guard.check_code_format(code, F32) is code


def test_eps_codes_check_their_rounding():
    """ApproxMatDot(6, 8, eps=1e-3): the rounding at Eq. (16)'s points is ~1e8 > ε."""
    with pytest.raises(ValueError, match="smallest eps float64 workers allow") as exc:
        ApproxMatDot(6, 8, eps=1e-3, norm_bound=1)
    best = float(str(exc.value).split("use eps >= ")[1].split(",")[0])
    assert 1e-3 < best < 1.0
    code = ApproxMatDot(6, 8, eps=1.2 * best, norm_bound=1)  # what it says works, works
    assert code.gamma_choice == "eps"
    A, B = unit_gaussian((20, 20), 1), unit_gaussian((20, 20), 2)  # ‖A‖_F = ‖B‖_F = 1
    for S in (range(6), range(2, 8), (0, 2, 3, 4, 6, 7)):
        E = A @ B
        assert raw_decode(code, A, B, list(S)) * np.abs(E).max() <= 1.2 * best
    ApproxMatDot(3, 5, eps=1e-3, norm_bound=1)
    # what the refused code would have done: its Eq. (16) points, unguarded
    g = 1.0 / matdot_radius(6, 1e-3, 1.0)
    assert raw_decode(ApproxMatDot(6, 8, gamma=g), A, B, list(range(6))) > 1.0
    with pytest.raises(ValueError, match="smallest eps float32"):
        ApproxMatDot(3, 5, eps=1e-6, norm_bound=1, dtype="float32")


# ------------------------------------------------------- which answers to decode
def test_choose_answers_prefers_a_better_set():
    """Chebyshev m=16, P=40, float32, the first 31 arrivals the 31 largest points:
    predicted inaccurate; the chosen set (from 36 in hand) is accurate."""
    code = ChebyshevMatDot(16, 40)
    got = list(range(36))
    assert not guard.accurate_enough(code, got[:31], F32)
    S = guard.choose_answers(code, got, F32, needed=31)
    assert S != got[:31] and set(S) <= set(got)
    assert guard.predicted_error(code, S, F32) < 0.1 * guard.predicted_error(code, got[:31], F32)
    assert S == [w for w in got if w in S]  # arrival order kept
    A, B = operands(16, 16, 16, np.float32, 5)
    assert raw_decode(code, A, B, got[:31]) > 0.1  # 1e6 on main, 0.26 regularised
    assert raw_decode(code, A, B, S) <= guard.RTOL_GUARD
    # an accurate first set is kept as it is, and all in hand when needed covers them
    assert guard.choose_answers(code, list(range(0, 40, 1))[::-1][:31], F32, needed=31)
    good = list(range(0, 40, 2)) + list(range(1, 23, 2))
    assert guard.choose_answers(code, good, F32, needed=31) == good[:31]
    assert guard.choose_answers(code, got, F32, needed=0) == got


def test_predicted_error_is_a_safe_upper_estimate():
    """π_S ≥ the measured error over random sets (the choice relies on it)."""
    rng = np.random.default_rng(2)
    A, B = operands(12, 12, 12, np.float32, 6)
    for code in (MatDot(8, 20), ApproxMatDot(4, 8, dtype="float32")):
        for _ in range(5):
            S = sorted(rng.choice(code.P, code.recovery_threshold + 1, replace=False))
            assert raw_decode(code, A, B, S) <= guard.predicted_error(code, S, F32)


# ------------------------------------------- done means: every class of the table
CLASSES = {
    # class: (code factory, worker dtype, arrival order or None, failed workers)
    "approx_matdot m=12, P=14, float64": [
        (lambda: ApproxMatDot(12, 14), np.float64),
        (lambda: ApproxMatDot(11, 15), np.float64),
        (lambda: ApproxMatDot(10, 12), np.float64),
    ],
    "approx_matdot m=8, P=10, float32": [
        (lambda: ApproxMatDot(8, 10, dtype="float32"), np.float32),
        (lambda: ApproxMatDot(7, 9, dtype="float32"), np.float32),
        (lambda: ApproxMatDot(6, 9, dtype="float32"), np.float32),
    ],
    "approx_matdot m=5, P=7, float32": [
        (lambda: ApproxMatDot(5, 7, dtype="float32"), np.float32),
        (lambda: ApproxMatDot(4, 6, dtype="float32"), np.float32),
        (lambda: ApproxMatDot(5, 8, dtype="float32"), np.float32),
    ],
    "ApproxPolyDot(3, 3, P=29), float64": [
        (lambda: ApproxPolyDot(3, 3, 29), np.float64),
        (lambda: ApproxPolyDot(2, 3, 14), np.float64),
        (lambda: ApproxPolyDot(2, 2, 10), np.float64),
    ],
    "matdot m=40, P=80, float64": [
        (lambda: MatDot(40, 80), np.float64),
        (lambda: MatDot(28, 56), np.float64),
        (lambda: MatDot(14, 28), np.float32),
    ],
    "ApproxMatDot(3, 5) instance on float32": [
        (lambda: ApproxMatDot(3, 5), np.float32),
        (lambda: ApproxMatDot(4, 6), np.float32),
        (lambda: ApproxPolyDot(2, 1, 6), np.float32),
    ],
    "eps= ignoring rounding": [
        (lambda: ApproxMatDot(6, 8, eps=1e-3, norm_bound=1), np.float64),
        (lambda: ApproxMatDot(4, 6, eps=1e-4, norm_bound=1), np.float64),
        (lambda: ApproxPolyDot(2, 2, 9, eps=1e-3, norm_bound=1), np.float64),
    ],
    "overflowing weights": [
        (lambda: ApproxMatDot(8, 10, gamma=1e6), np.float32),
        (lambda: ApproxMatDot(6, 8, gamma=3e4), np.float32),
        (lambda: ApproxMatDot(12, 13, gamma=1e30), np.float64),
    ],
}


def _case_outcome(factory, dtype, seed):
    try:
        code = factory()
    except ValueError as exc:  # refused at construction (eps= codes)
        return "refused", math.nan, str(exc)
    A, B = operands(16, 16, 16, dtype, seed)
    o = guarded_decode(code, A, B)
    return o.kind, o.rel_error, o.message


def _unguarded_error(factory, dtype, seed):
    """The error the unguarded decode of the first threshold answers gives (main's)."""
    try:
        code = factory()
    except ValueError:  # eps= codes refused by their constructor (see the eps test)
        return math.inf
    A, B = operands(16, 16, 16, dtype, seed)
    try:
        return raw_decode(code, A, B, list(range(code.recovery_threshold)))
    except ArithmeticError:  # the weight solve itself fails (points ~1e-30): no teeth
        return 0.0


@pytest.mark.parametrize("cls", list(CLASSES))
def test_no_silent_inaccurate_result(cls):
    """Each class: refused, warned, or within 1e-2 — never silently worse; and each
    class has a case whose unguarded decode is worse than 1e-2 (the test has teeth)."""
    worst = 0.0
    for factory, dtype in CLASSES[cls]:
        for seed in (0, 1):
            kind, rel, msg = _case_outcome(factory, dtype, seed)
            assert kind != "silent" or rel <= guard.RTOL_GUARD, (cls, kind, rel)
            if kind != "silent":
                assert "Fix" in msg or "use" in msg, msg
        worst = max(worst, _unguarded_error(factory, dtype, 0))
    assert not worst <= guard.RTOL_GUARD, (cls, worst)  # NaN (overflow) counts as worse


def test_chebyshev_arrival_order_class():
    """Chebyshev with failures, the first K arrivals badly placed (the table's last
    class, at m=12..16): main decoded them (error > 1); now the set is chosen."""
    for m, P, failed, rev in ((16, 40, (36, 37, 38, 39), False), (10, 28, (0, 1, 2, 3), True)):
        code = ChebyshevMatDot(m, P)
        A, B = operands(16, 16, 16, np.float32, m)
        arrivals = [w for w in range(P)[:: -1 if rev else 1] if w not in failed]
        assert raw_decode(code, A, B, arrivals[: code.recovery_threshold]) > guard.RTOL_GUARD
        o = guarded_decode(code, A, B, arrivals=arrivals)
        assert o.kind != "silent" or o.rel_error <= guard.RTOL_GUARD
        assert o.rel_error <= guard.RTOL_GUARD


# ----------------------------------------------------- no false alarm where it is fine
WELL = [
    MatDot(2, 5),
    MatDot(4, 9),
    MatDot(6, 12),
    ChebyshevMatDot(5, 12),
    ChebyshevMatDot(10, 22),
    PolyDot(2, 1, 7),
    PolynomialCode(2, 2, 6),
    PolynomialCode(3, 2, 8),
]


@pytest.mark.parametrize("shape", [(8, 8, 8), (64, 200, 48), (96, 1024, 64)])
def test_no_false_alarm_on_well_conditioned_calls(shape):
    """Exact codes with cond ≤ 1e6 at/above threshold and ε-MatDot m ≤ 3 at the
    automatic γ, float64: no warning, for the first answers, all answers, and a
    random set; the tests assert that each decode is in that set (cond ≤ 1e6)."""
    rng = np.random.default_rng(7)
    codes = [*WELL, ApproxMatDot(2, 4), ApproxMatDot(3, 5), ApproxMatDot(3, 7)]
    for code in codes:
        A, B = operands(*shape, np.float64, int(rng.integers(1 << 30)))
        E = exact_product(A, B).astype(np.float64)
        K = code.recovery_threshold
        sets = [list(range(K)), list(range(code.P)), sorted(rng.permutation(code.P)[:K])]
        for S in sets:
            if not code.approximate:
                assert code.decode_weights(S).cond <= 1e6, (code, S)
            o = guarded_decode(code, A, B, arrivals=S, needed=len(S), E=E)
            assert o.kind == "silent", (code, S, o.message)
            assert o.abs_error <= o.bound


# ----------------------------------------------------- the six surviving mutations
@pytest.mark.parametrize("p,q,eps", [(2, 2, 0.5), (2, 3, 1e-2), (1, 3, 1e-2), (1, 4, 1e-3)])
def test_eq14_radius_keeps_theorem2(p, q, eps):
    """Points just inside Eq. (14)'s radius satisfy Theorem 2's bound ≤ ε.

    Kills ``polydot_radius`` dropping the factor q: at q times the radius the same
    bound exceeds ε (by 1.06–1.5 for these cases)."""
    r = polydot_radius(p, q, eps, 1.0)
    assert r == min(eps / (q * (p * p * q - 1)), 1 / (p * p * q - 1))
    P = p * p * q + 2
    pts = 0.999999 * r * np.cos((2 * np.arange(1, P + 1) - 1) * np.pi / (2 * P))
    code = ApproxPolyDot(p, q, P, points=pts)
    assert code.theorem_bound(None, 1.0) <= eps


def test_approx_matdot_passes_decode_points():
    """``decode_points="paper"`` reaches the machinery: with 4 answers, m = 3, the
    block uses only the first d = 3 (weight 0 on the 4th); "all" uses all four."""
    paper = ApproxMatDot(3, 5, gamma=100.0, decode_points="paper")
    allw = ApproxMatDot(3, 5, gamma=100.0)
    assert paper.decode_points == "paper"
    assert paper.decode_weights([0, 1, 2, 3]).W[0, 3] == 0.0
    assert allw.decode_weights([0, 1, 2, 3]).W[0, 3] != 0.0


@pytest.mark.parametrize("answers", [4, 5])
def test_answers_is_the_number_decoded(answers):
    A, B = unit_gaussian((6, 8), 1), unit_gaussian((8, 5), 2)
    _, info = gpucoded.coded_matmul(
        A, B, "matdot", m=2, P=7, answers=answers, executor="serial", return_info=True
    )
    assert len(info.used) == answers
    assert info.used == tuple(range(answers))
    # and the call stopped collecting at that answer (no extra wait for one more)
    assert info.answered == list(range(answers))


def test_operand_norms_are_row_and_column_norms():
    r"""ρ_A = √p·max row norm of A, ρ_B = √t·max column norm of B (not the other way).

    A has one heavy row (row norm 10, column norms ≤ √(1+...)): a column-norm ρ_A
    would be about 10× too small and the bound invalid."""
    A = np.ones((6, 4))
    A[2] = 5.0
    B = np.arange(1.0, 21.0).reshape(4, 5)
    code = PolyDot(2, 1, 7)
    ra, rb = operand_norms(code, A, B)
    assert ra == pytest.approx(math.sqrt(2) * 10.0)
    assert rb == pytest.approx(math.sqrt(2) * np.linalg.norm(B[:, 4]))
    assert ra != pytest.approx(math.sqrt(2) * np.linalg.norm(A, axis=0).max())


def test_serial_executor_orders_by_finish_time():
    """Delays decreasing with the worker index: the last worker finishes first, so the
    first K answers are workers P-1, P-2, ... (not 0, 1, ... by start time)."""
    A, B = unit_gaussian((6, 8), 3), unit_gaussian((8, 5), 4)
    P = 6
    delays = [0.01 * (P - w) for w in range(P)]
    _, info = gpucoded.coded_matmul(
        A, B, "matdot", m=2, P=P, delays=delays, executor=SerialExecutor(), return_info=True
    )
    assert info.used == (5, 4, 3)
    ends = [info.worker_times[w][1] for w in info.answered]
    assert ends == sorted(ends)


def test_interp_factor_uses_abs_defect():
    r"""interp_factor = max_c ‖|D_c|‖₂ as documented; it differs from ‖D_c‖₂ when the
    defect has mixed signs (optimised codes). (‖D_c‖₂ would also bound ε₁ — the
    bilinear form over the block rows is :math:`x^\top(D_c\otimes I)y` — but it is not
    the documented, tested quantity.)"""
    assert spectral_abs_norms(np.array([[[1.0, 1.0], [1.0, -1.0]]]))[0] == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    code = OptimizedMatDot(rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), 1e-6)
    dw = code.decode_weights(range(5))
    abs_norm = max(np.linalg.norm(np.abs(Dc), 2) for Dc in dw.defect)
    plain = max(np.linalg.norm(Dc, 2) for Dc in dw.defect)
    assert dw.interp_factor == pytest.approx(abs_norm, rel=1e-12)
    assert abs_norm > plain * (1 + 1e-6)


# ------------------------------------------------------------- end to end (pipeline)
def test_end_to_end_no_false_alarm_at_large_inner_dimension():
    """Through ``coded_matmul`` at k = 8192, float64, where the a-priori bound alone
    reaches ~1 relative for ε-MatDot m = 3: the typical-case estimate keeps it quiet."""
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((24, 8192)), rng.standard_normal((8192, 24))
    E = A @ B
    calls = [
        ("approx_matdot", {"m": 2}),
        ("approx_matdot", {"m": 3}),
        ("approx_matdot", {"m": 3, "P": 7}),
        ("matdot", {"m": 4}),
        ("chebyshev", {"m": 10}),
        ("polydot", {"p": 2, "q": 2}),
        ("polynomial", {"p": 2, "q": 3}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateResultWarning)
        for name, kw in calls:
            for failed in ([], [1]):
                C, info = gpucoded.coded_matmul(A, B, name, failed=failed, return_info=True, **kw)
                assert np.abs(C - E).max() <= info.error_bound


def test_end_to_end_wait_for_accuracy_decodes_a_better_set():
    """Chebyshev m=8, P=24, float32, the 4 nodes nearest −1 failed, serial order: the
    first 15 arrivals are warned about (error > 1e-2); waiting decodes more answers
    and is accurate and quiet."""
    A, B = operands(16, 16, 16, np.float32, 5)
    E = exact_product(A, B).astype(np.float64)
    kw = dict(m=8, P=24, failed=[20, 21, 22, 23], executor="serial", return_info=True)
    with pytest.warns(InaccurateResultWarning, match="Chebyshev"):
        C0, i0 = gpucoded.coded_matmul(A, B, "chebyshev", **kw)
    assert np.abs(C0 - E).max() > guard.RTOL_GUARD * np.abs(E).max()
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateResultWarning)
        C1, i1 = gpucoded.coded_matmul(A, B, "chebyshev", wait_for_accuracy=30.0, **kw)
    assert len(i1.used) > len(i0.used) == 15
    assert np.abs(C1 - E).max() <= guard.RTOL_GUARD * np.abs(E).max()
    assert "waited" in i1.selection
