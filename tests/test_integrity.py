r"""Silent data corruption: detection with K+1 answers, location with K+2 (``verify=``).

Notation (see :mod:`gpucoded.integrity`): :math:`\hat C_T` is the decode from the
answer set T and :math:`e_T` its a-priori bound (``DecodeWeights.bounds``). A
corruption E of worker c's answer moves :math:`\hat C_S` by :math:`W_S[:,c]E`. The
leave-one-out check misses it only if
:math:`\|\hat C_S-\hat C_{S\setminus c}\|\le e_S+e_{S\setminus c}`, and since
:math:`\hat C_{S\setminus c}` is honest, that forces
:math:`\|W_S[:,c]E\|_{\max}\le 2(e_S+e_{S\setminus c})`. The tests assert this
contrapositive (a corruption that moves the result by more must be detected), that
located workers are exactly the corrupted ones, and that every returned result is
within ``CallInfo.error_bound``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _faults import patterns
from _util import unit_gaussian

import gpucoded
from gpucoded.api import operand_norms
from gpucoded.errors import CorruptAnswerError, CorruptionWarning, NotEnoughAnswersError
from gpucoded.executors import SerialExecutor, ThreadExecutor
from gpucoded.integrity import can_check, can_locate
from gpucoded.reference import exact_product
from gpucoded.stragglers import FaultyExecutor

EXACT = {
    "matdot": {"m": 2},
    "chebyshev": {"m": 3},
    "polydot": {"p": 2, "q": 1},
    "polynomial": {"p": 2, "q": 2},
    "circle": {"m": 3},
}
APPROX = {"approx_matdot": {"m": 2}, "approx_polydot": {"p": 2, "q": 1}}
COUNTS = {
    "injected": 0,
    "detected": 0,
    "located": 0,
    "invisible to the decode (harmless)": 0,
    "not reached (answered after the decode)": 0,
    "undetected, within the tolerance (harmless)": 0,
    "must detect": 0,
    "must detect: detected": 0,
}
#: every injected corruption ends in exactly one of these outcomes
OUTCOMES = (
    "detected",
    "invisible to the decode (harmless)",
    "not reached (answered after the decode)",
    "undetected, within the tolerance (harmless)",
)


@pytest.fixture(scope="module")
def operands():
    A, B = unit_gaussian((8, 6), 70), unit_gaussian((6, 5), 71)
    return A, B, exact_product(A, B)


def _code(name, opts, extra):
    probe = gpucoded.make_code(name, **opts)
    return gpucoded.make_code(name, P=probe.recovery_threshold + extra, **opts)


def _bound(code, S, A, B):
    """e_S: the a-priori bound of the decode from S (the one machinery's bounds())."""
    rb, cb, db = code.grid.block_dims(A.shape[0], A.shape[1], B.shape[1])
    na, nb = operand_norms(code, A, B)
    return sum(code.decode_weights(S).bounds(na, nb, np.float64, cb))


def _moved(code, S, c, e):
    """max |Re(W_S[:, c]) E|: the change of the decode from S when E = e (real) is
    added at one entry of worker c's answer (real inputs: the decode keeps the real
    part, so a complex code's weight moves the result by its real part only)."""
    dw = code.decode_weights(S)
    return float(np.abs(np.real(dw.W[:, dw.workers.index(c)])).max() * abs(e))


def _must_detect(code, S, c, e, A, B):
    """The contrapositive of the module docstring: moved by more than 2(e_S + e_S\\c)."""
    tol = _bound(code, S, A, B) + _bound(code, set(S) - {c}, A, B)
    return _moved(code, S, c, e) > 2 * tol


@pytest.mark.parametrize("name", list(EXACT))
def test_detect_with_threshold_plus_one(name, operands):
    """K+1 answers of an exact code: a clean run verifies, a corrupt answer is detected."""
    A, B, E = operands
    code = _code(name, EXACT[name], 1)
    S = list(range(code.P))
    assert can_check(code, S) and not can_locate(code, S)
    C, info = gpucoded.coded_matmul(
        A, B, code, executor=SerialExecutor(), verify="raise", return_info=True
    )
    assert info.integrity.checked and info.integrity.consistent
    assert info.integrity.max_ratio <= 1.0
    assert np.abs(C - E).max() <= info.error_bound
    for c in S:
        e = 1.0
        COUNTS["injected"] += 1
        must = _must_detect(code, S, c, e, A, B)
        COUNTS["must detect"] += must
        ex = FaultyExecutor(SerialExecutor(), {c: ("perturb", e)})
        try:
            gpucoded.coded_matmul(A, B, code, executor=ex, verify="raise")
        except CorruptAnswerError as err:
            COUNTS["detected"] += 1
            COUNTS["must detect: detected"] += must
            assert set(err.suspects) == set(S)
            assert err.report.max_ratio > 1.0
        else:
            assert not must, f"corruption of worker {c} moved C but was not detected"
            COUNTS["undetected, within the tolerance (harmless)"] += 1


@pytest.mark.parametrize("executor", [SerialExecutor, ThreadExecutor])
@pytest.mark.parametrize("name", list(EXACT) + list(APPROX))
def test_locate_with_threshold_plus_two(name, executor, operands):
    """K+2 answers: each corrupt worker in turn is located, excluded, C is correct.

    The returned C is the honest decode without the corrupt worker, so it must be
    within that decode's own a-priori bound (``info.decode.error_bound``), which is
    tighter than the verified bound.
    """
    A, B, E = operands
    opts = EXACT.get(name) or APPROX[name]
    code = _code(name, opts, 2)
    for c in range(code.P):
        COUNTS["injected"] += 1
        ex = FaultyExecutor(executor(), {c: ("perturb", 1.0)})
        C, info = gpucoded.coded_matmul(A, B, code, executor=ex, verify="correct", return_info=True)
        assert info.integrity.excluded == (c,)
        assert info.erased[c] == "corrupt answer (excluded)"
        assert c not in info.used
        assert np.abs(C - E).max() <= info.decode.error_bound <= info.error_bound
        COUNTS["detected"] += 1
        COUNTS["located"] += 1


@pytest.mark.parametrize(
    "name", ["matdot", "polynomial", "circle", "approx_matdot", "approx_polydot"]
)
def test_every_pattern_every_corrupt_worker(name, operands):
    """Exhaustive at small P: for every failure pattern that leaves at least a
    locatable answer set, and every answering worker corrupted in turn, C is within
    the honest decode's bound, and the corrupt worker is excluded whenever the
    corruption moves the decode by more than the tolerance (a corruption the decode
    cannot see, e.g. orthogonal to the real part for the circle code, is harmless)."""
    A, B, E = operands
    opts = EXACT.get(name) or APPROX[name]
    code = _code(name, opts, 3)
    done = 0
    for F in patterns(code.P):
        alive = [w for w in range(code.P) if w not in F]
        if not can_locate(code, alive):
            continue
        for c in alive:
            COUNTS["injected"] += 1
            ex = FaultyExecutor(SerialExecutor(), {c: ("perturb", 1.0)})
            C, info = gpucoded.coded_matmul(
                A, B, code, failed=F, executor=ex, verify="correct", return_info=True
            )
            S = sorted(set(info.used) | set(info.integrity.excluded))
            if info.integrity.excluded:
                assert info.integrity.excluded == (c,)
                COUNTS["detected"] += 1
                COUNTS["located"] += 1
            elif c in S:
                assert not _must_detect(code, S, c, 1.0, A, B)
                COUNTS["invisible to the decode (harmless)"] += 1
            else:  # the loop may stop before c answers
                COUNTS["not reached (answered after the decode)"] += 1
            assert np.abs(C - E).max() <= info.decode.error_bound
            done += 1
    assert done > 0


@pytest.mark.parametrize("name", list(EXACT))
def test_two_corrupt_workers_located(name, operands):
    """K+4 answers (all awaited): two corrupt workers are located and excluded."""
    A, B, E = operands
    code = _code(name, EXACT[name], 4)
    bad = {1: ("perturb", 0.5), code.P - 2: ("scale", 3.0)}
    COUNTS["injected"] += 2
    ex = FaultyExecutor(SerialExecutor(), bad)
    C, info = gpucoded.coded_matmul(
        A, B, code, executor=ex, verify="correct", answers=code.P, return_info=True
    )
    assert set(info.integrity.excluded) == set(bad)
    assert np.abs(C - E).max() <= info.decode.error_bound
    COUNTS["detected"] += 2
    COUNTS["located"] += 2


@pytest.mark.parametrize("name", list(APPROX))
def test_approx_small_perturbation_within_verified_bound(name, operands):
    """An approximate code's check has the interpolation bound as tolerance.

    A corruption far below the bound may pass, but then the result is within the
    verified bound e_S + 2 max_w e_{S\\w} (single-fault model, module docstring of
    gpucoded.integrity); one far above it is located.
    """
    A, B, E = operands
    code = _code(name, APPROX[name], 2)
    S = list(range(code.P))
    eS = _bound(code, S, A, B)
    for e in (1e-3 * eS, 1e3 * eS):
        COUNTS["injected"] += 1
        ex = FaultyExecutor(SerialExecutor(), {0: ("perturb", e)})
        C, info = gpucoded.coded_matmul(A, B, code, executor=ex, verify="correct", return_info=True)
        assert np.abs(C - E).max() <= info.error_bound
        if info.integrity.excluded:
            COUNTS["detected"] += 1
            COUNTS["located"] += 1
            assert info.integrity.excluded == (0,)
        else:
            assert e < eS  # the large one must be found
            COUNTS["undetected, within the tolerance (harmless)"] += 1


def test_detected_but_not_locatable_raises(operands):
    """verify='correct' with only K+1 answers: detection, but location needs K+2."""
    A, B, _ = operands
    code = _code("matdot", EXACT["matdot"], 1)
    ex = FaultyExecutor(SerialExecutor(), {1: ("perturb", 1.0)})
    COUNTS["injected"] += 1
    with pytest.raises(CorruptAnswerError, match="too few answers to locate"):
        gpucoded.coded_matmul(A, B, code, executor=ex, verify="correct")
    COUNTS["detected"] += 1


def test_warn_mode_flags_and_voids_bound(operands):
    """verify='warn': a CorruptionWarning, the report says inconsistent, bound is inf."""
    A, B, _ = operands
    code = _code("polynomial", EXACT["polynomial"], 1)
    ex = FaultyExecutor(SerialExecutor(), {2: ("perturb", 1.0)})
    COUNTS["injected"] += 1
    # and the guard says that an infinite verified bound vouches for no digit; the
    # measured check (probes) sees the corrupted product too
    with (
        pytest.warns(CorruptionWarning, match="inconsistent"),
        pytest.warns(gpucoded.InaccurateResultWarning, match="vouches for no digit"),
        pytest.warns(gpucoded.InaccurateResultWarning, match="measured error"),
    ):
        _, info = gpucoded.coded_matmul(A, B, code, executor=ex, verify="warn", return_info=True)
    assert info.integrity.consistent is False
    assert info.error_bound == np.inf
    COUNTS["detected"] += 1


def test_unverifiable_answers(operands):
    """Exactly K answers cannot be cross-checked: warn says so, raise/correct refuse."""
    A, B, E = operands
    code = _code("matdot", EXACT["matdot"], 1)  # P = K+1
    with pytest.warns(CorruptionWarning, match="unverified"):
        C, info = gpucoded.coded_matmul(A, B, code, failed=[0], verify="warn", return_info=True)
    assert not info.integrity.checked
    assert info.integrity.error_bound is None  # falls back to the decode's bound
    assert np.abs(C - E).max() <= info.error_bound
    for mode in ("raise", "correct"):
        with pytest.raises(NotEnoughAnswersError, match="could not be cross-checked"):
            gpucoded.coded_matmul(A, B, code, failed=[0], verify=mode)


def test_replication_needs_two_copies_per_block(operands):
    """Replication verifies a block only when two copies of it answered."""
    A, B, E = operands
    code = gpucoded.make_code("replication", m=2, P=6)  # r = 3
    assert not can_check(code, [0, 1, 2])  # block 1 answered once
    assert can_check(code, [0, 1, 2, 3]) and can_locate(code, list(range(6)))
    ex = FaultyExecutor(SerialExecutor(), {3: ("perturb", 1.0)})
    COUNTS["injected"] += 1
    C, info = gpucoded.coded_matmul(A, B, code, executor=ex, verify="correct", return_info=True)
    assert info.integrity.excluded == (3,)
    assert np.abs(C - E).max() <= info.decode.error_bound
    COUNTS["detected"] += 1
    COUNTS["located"] += 1


def test_verify_with_nonfinite_inputs_is_skipped_and_flagged():
    """NaN inputs with nonfinite='propagate': no check (everything is NaN), flagged."""
    A = np.ones((4, 4))
    A[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C, info = gpucoded.coded_matmul(
            A, np.eye(4), "matdot", m=2, verify="raise", nonfinite="propagate", return_info=True
        )
    assert info.nonfinite_input and "not finite" in info.integrity.reason
    assert np.isnan(C[0, 0])


def test_counts_reported():
    """Injected corruptions of the tests above that must be found were all found."""
    if COUNTS["injected"] == 0:
        pytest.skip("corruption tests were deselected")
    print(f"corruptions injected/detected/located: {COUNTS}")
    # the accounting closes: every injection has exactly one outcome
    assert sum(COUNTS[k] for k in OUTCOMES) == COUNTS["injected"]
    # every corruption the contrapositive of the bound says must be seen was seen
    assert COUNTS["must detect: detected"] == COUNTS["must detect"]
    assert COUNTS["located"] <= COUNTS["detected"]
    if COUNTS["injected"] >= 100:  # the whole module ran: these outcomes all occur
        assert COUNTS["located"] >= 50 and COUNTS["must detect"] >= 5


class _TF32Serial(SerialExecutor):
    """Workers that compute in TF32 (as tensor-core GEMMs report): the answers are
    float32 arrays, the format of their rounding is tf32."""

    def compute_format(self, dtype):
        from gpucoded.formats import get_format

        if np.dtype(dtype) == np.float32:
            return get_format("tf32")
        return super().compute_format(dtype)


def test_verify_decodes_in_the_workers_format():
    """Issue 20 item 5: with TF32 workers, verify= bounds and decodes in tf32 (not the
    answers' float32), like the unverified call: no 2,000x too tight verified bound."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((32, 24)).astype(np.float32)
    B = rng.standard_normal((24, 16)).astype(np.float32)
    opts = {"m": 2, "P": 5, "executor": _TF32Serial(), "return_info": True}
    _, plain = gpucoded.coded_matmul(A, B, "chebyshev", **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptionWarning)
        _, checked = gpucoded.coded_matmul(A, B, "chebyshev", verify="warn", **opts)
    assert plain.format == checked.format == "tf32"
    assert checked.decode.format == "tf32"
    # the verified bound contains the decode's own tf32 bound (e_S + 2 max e_S\w)
    assert checked.integrity.error_bound >= plain.decode.error_bound
    # and the same decode in float32 (what verify did before) is hundreds of times tighter
    f32 = dict(opts, executor=SerialExecutor())
    _, tight = gpucoded.coded_matmul(A, B, "chebyshev", verify="warn", **f32)
    assert tight.decode.workers == checked.decode.workers
    assert checked.decode.error_bound > 100 * tight.decode.error_bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_answer_check_refuses_nonfinite_and_keeps_huge_finite(dtype, layout):
    """An answer with a NaN or an Inf (from finite inputs) is refused; one whose entries
    are finite but whose sum overflows (two entries of 0.9 × the format's largest) is
    kept: the fast check's non-finite total is confirmed entrywise first."""
    from gpucoded.integrity import answer_problem

    big = 0.9 * float(np.finfo(dtype).max)
    for bad, refused in ((np.nan, True), (np.inf, True), (-np.inf, True), (big, False)):
        Z = np.ones((6, 10), dtype=dtype)
        Z[2, 4] = bad
        Z[4, 6] = big if not refused else 1.0
        Z = Z if layout == "contiguous" else Z[:, ::2]
        with np.errstate(over="ignore"):
            got = answer_problem(Z, Z.shape, dtype)
        assert (got is not None) == refused, (bad, got)
        if refused:
            assert "non-finite" in got
