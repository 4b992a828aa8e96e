"""The one call pipeline (gpucoded.pipeline): answer checks, formats, guard, selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded import pipeline
from gpucoded.errors import InaccurateResultError, InaccurateResultWarning
from gpucoded.executors.local import SerialExecutor
from gpucoded.formats import get_format
from gpucoded.progressive import progressive_matmul
from gpucoded.reference import exact_product
from gpucoded.stragglers import FaultyExecutor


class FormatExecutor(SerialExecutor):
    """Serial workers that report computing in ``fmt`` (TF32, BF16 emulation)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = get_format(fmt)

    def compute_format(self, dtype):
        return self.fmt


def test_progressive_erases_nan_answers():
    """A NaN answer is an erasure in progressive decoding too (it was decoded before)."""
    A, B = unit_gaussian((30, 20), 1), unit_gaussian((20, 10), 2)
    ex = FaultyExecutor(SerialExecutor(), {0: "nan"})
    outs = list(progressive_matmul(A, B, "matdot", m=2, P=4, executor=ex))
    assert outs, "no estimate"
    for C, info in outs:
        assert 0 not in info.workers
        assert np.isfinite(C).all()
        assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_progressive_bounds_use_the_tight_rho_norms():
    """Progressive and one-shot decodes of the same answers report the same bound
    (ρ_A = √p·max row norm, not the looser Frobenius norms)."""
    A, B = unit_gaussian((40, 30), 3), unit_gaussian((30, 20), 4)
    C1, info1 = next(
        progressive_matmul(A, B, "chebyshev", m=2, P=4, failed=[0], executor="serial")
    )
    C2, info2 = gpucoded.coded_matmul(
        A, B, "chebyshev", m=2, P=4, failed=[0], executor="serial", return_info=True
    )
    assert info1.workers == info2.used
    assert info1.error_bound == pytest.approx(info2.error_bound, rel=1e-12, abs=0)
    code, S = info2.code, list(info1.workers)
    At, Bt = code.encode(A, B)
    prods = [At[w] @ Bt[w] for w in S]
    kw = dict(shape=(40, 20), inner=At.shape[2], return_info=True, fmt="float64")
    ra, rb = np.linalg.norm(A, axis=1).max(), np.linalg.norm(B, axis=0).max()  # p = t = 1
    _, rho = code.decode(prods, S, norms=(ra, rb), **kw)
    _, fro = code.decode(prods, S, norms=(np.linalg.norm(A), np.linalg.norm(B)), **kw)
    assert info1.error_bound == pytest.approx(rho.error_bound, rel=1e-12, abs=0)
    assert rho.error_bound < 0.5 * fro.error_bound  # the check can tell the two apart


def test_worker_format_reaches_the_report_and_the_guard():
    """The executor's compute format is the one the call reports and the guard uses."""
    A, B = unit_gaussian((30, 30), 5, np.float32), unit_gaussian((30, 30), 6, np.float32)
    for fmt in ("float32", "tf32", "bf16"):
        _, info = gpucoded.coded_matmul(
            A, B, "chebyshev", m=2, executor=FormatExecutor(fmt), return_info=True,
            on_inaccurate="ignore",
        )  # fmt: skip
        assert info.format == fmt and info.decode.format in (None, fmt)


def _inaccurate_call(**kw):
    A, B = unit_gaussian((40, 40), 7), unit_gaussian((40, 40), 8)
    return gpucoded.coded_matmul(
        A, B, "approx_matdot", m=3, P=5, gamma=20.0, executor="serial", return_info=True, **kw
    )


def test_guard_modes():
    """warn (pointing at the caller's line), raise, ignore; the estimate is reported."""
    with pytest.warns(InaccurateResultWarning, match="fewer than two correct digits") as rec:
        _, info = _inaccurate_call()
    assert rec[0].filename == __file__  # stacklevel: the user's call, not the library
    assert info.accuracy > 1e-2
    with pytest.raises(InaccurateResultError, match="Fix: use"):
        _inaccurate_call(on_inaccurate="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = _inaccurate_call(on_inaccurate="ignore")
    assert info.accuracy > 1e-2
    with pytest.raises(ValueError, match="on_inaccurate"):
        _inaccurate_call(on_inaccurate="maybe")


def test_guard_accuracy_is_estimate_over_result_scale():
    """check=None: CallInfo.accuracy = min(bound, typical estimate) / max|C| (one
    reduction); by default the measured error over its scale (gpucoded.probes)."""
    A, B = unit_gaussian((50, 40), 9), unit_gaussian((40, 30), 10)
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=3, return_info=True, check=None)
    est = [x for x in (info.decode.error_bound, info.decode.estimate) if x is not None]
    assert info.accuracy == pytest.approx(min(est) / np.abs(C).max(), rel=1e-12, abs=0)
    assert info.measured is None
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=3, return_info=True)
    assert info.accuracy == pytest.approx(info.measured.error / info.measured.scale, rel=1e-12)


def test_progressive_is_guarded():
    """The first estimate (serial: workers 0, 1, 2, predicted 0.13 of max|C|) is flagged;
    with threads the first three arrivals vary and some sets decode accurately."""
    A, B = unit_gaussian((40, 40), 7), unit_gaussian((40, 40), 8)
    with pytest.raises(InaccurateResultError):
        list(progressive_matmul(
            A, B, "approx_matdot", m=3, P=5, gamma=20.0, on_inaccurate="raise", executor="serial"
        ))  # fmt: skip


def test_every_entry_point_runs_the_one_decode(monkeypatch):
    """coded_matmul, progressive_matmul and CodedMatrix all decode in pipeline.decode."""
    calls = []
    real = pipeline.decode
    monkeypatch.setattr(pipeline, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    A, B = unit_gaussian((20, 20), 11), unit_gaussian((20, 20), 12)
    gpucoded.coded_matmul(A, B)
    list(progressive_matmul(A, B, "matdot", m=2))
    gpucoded.CodedMatrix(B).rmatmul(A)
    assert len(calls) == 3


def test_hopeless_code_refused_before_any_worker():
    """A code no answer set can decode in float64 is refused at call time, fast,
    unless allow_inaccurate=True."""
    ran = []

    class Spy(SerialExecutor):
        def start(self, At, Bt, **kw):
            ran.append(1)
            return super().start(At, Bt, **kw)

    A, B = np.ones((4, 400)), np.ones((400, 4))
    with pytest.raises(ValueError, match="allow_inaccurate=True"):
        gpucoded.coded_matmul(A, B, "matdot", m=200, executor=Spy())
    assert not ran


def test_wait_for_accuracy_uses_more_answers():
    """MatDot m=6 on 30 float32 workers (serial order: clustered points first): the
    first 11 arrivals are ill-conditioned (error ~0.8, warned); with wait_for_accuracy
    the call collects more answers until guard.choose_answers finds a set that
    guard.accurate_enough accepts, and decodes that set."""
    from gpucoded import guard

    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 160)).astype(np.float32)
    B = rng.standard_normal((160, 40)).astype(np.float32)
    kw = dict(m=6, P=30, executor="serial", return_info=True)
    with pytest.warns(InaccurateResultWarning):
        C0, i0 = gpucoded.coded_matmul(A, B, "matdot", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateResultWarning)  # no warning now
        C1, i1 = gpucoded.coded_matmul(A, B, "matdot", wait_for_accuracy=60.0, **kw)
    E = exact_product(A, B)
    e0 = np.abs(C0 - E).max() / np.abs(E).max()
    e1 = np.abs(C1 - E).max() / np.abs(E).max()
    assert i0.selection == "first 11 arrivals" and len(i1.answered) > 11
    fmt = get_format("float32")
    S = guard.choose_answers(i1.code, i1.answered, fmt, needed=11)
    assert guard.accurate_enough(i1.code, S, fmt) and sorted(i1.used) == sorted(S)
    assert "waited for an accurate set" in i1.selection
    assert e1 <= 1e-2 < e0
    assert i1.accuracy <= 1e-2 < i0.accuracy


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"failed": [1.5]}, TypeError, "integers"),
        ({"failed": "1"}, TypeError, "worker index"),
        ({"failed": 7}, ValueError, "out of range"),
        ({"deadline": -1.0}, ValueError, "deadline must be >= 0"),
        ({"deadline": float("nan")}, ValueError, "deadline"),
        ({"wait_for_accuracy": -2}, ValueError, "wait_for_accuracy"),
        ({"allow_inaccurate": "yes"}, TypeError, "allow_inaccurate"),
        ({"bogus": 1}, TypeError, r"unknown keyword.*bogus.*failed.*gamma"),
        ({"outt": None}, TypeError, r"call options: failed"),
    ],
)
def test_front_door(kw, exc, match):
    A, B = np.ones((4, 4)), np.ones((4, 4))
    with pytest.raises(exc, match=match):
        gpucoded.coded_matmul(A, B, "approx_matdot", m=2, P=4, **kw)


def test_scalar_failed_is_one_worker():
    A, B = unit_gaussian((8, 8), 13), unit_gaussian((8, 8), 14)
    _, info = gpucoded.coded_matmul(A, B, failed=3, return_info=True)
    assert info.erased == {3: "failed"} and 3 not in info.used


def test_lost_dask_worker_is_named():
    """A cancelled Dask future (its worker died) shows as a lost worker."""

    class FutureCancelledError(Exception):
        pass

    assert pipeline.erasure_reason(FutureCancelledError("x")).startswith("worker lost")
    assert pipeline.erasure_reason(RuntimeError("boom")) == "raised RuntimeError('boom')"


def test_wait_for_accuracy_is_bounded_by_its_budget():
    """Threads, the other answers come 5 s late: the call returns once the waiting
    budget is spent (Run.limit), decodes what it has and says so."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 160)).astype(np.float32)
    B = rng.standard_normal((160, 40)).astype(np.float32)
    delays = [0.0] * 11 + [5.0] * 19
    with pytest.warns(InaccurateResultWarning):
        _, info = gpucoded.coded_matmul(
            A, B, "matdot", m=6, P=30, delays=delays, wait_for_accuracy=0.2,
            executor="threads", return_info=True,
        )  # fmt: skip
    assert "waited up to 0.2 s" in info.selection and len(info.used) == 11
    assert sorted(info.answered) == list(range(11))  # nobody waited for the late ones
    assert sorted(info.abandoned) == list(range(11, 30))


def test_absmax_is_the_guard_scale():
    assert pipeline.absmax(np.array([[1.0, -3.0], [2.0, 0.5]])) == 3.0
    assert np.isnan(pipeline.absmax(np.array([1.0, np.nan, -5.0])))
    assert pipeline.absmax(np.array([1.0, -np.inf])) == np.inf
    assert pipeline.absmax(np.array([3 + 4j, -1.0])) == 5.0


def test_verify_flags_a_verified_bound_that_exceeds_the_result():
    """verify=: a verified bound ≥ max|C| vouches for no digit, so it is flagged."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 30)).astype(np.float32)
    B = rng.standard_normal((30, 20)).astype(np.float32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        C, info = gpucoded.coded_matmul(
            A, B, "approx_matdot", m=5, P=8, verify="warn", return_info=True,
            allow_inaccurate=True,
        )  # fmt: skip
    assert info.integrity.error_bound >= np.abs(C).max()
    assert info.integrity.bound_exceeds_result
    assert any("verified error bound" in str(w.message) for w in rec)
    assert all(issubclass(w.category, gpucoded.InaccurateResultWarning) for w in rec)
    # a well-conditioned exact code: the verified bound is far below the result
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=3, P=7, verify="warn", return_info=True)
    assert info.integrity.error_bound < 1e-2 * np.abs(C).max()
    assert not info.integrity.bound_exceeds_result


@pytest.mark.parametrize("family", ["gaussian", "nonneg", "shifted", "sparse", "heavy"])
def test_max_norm_is_numpys_norm(family):
    """The one-pass ρ norms equal numpy.linalg.norm's: both are unscaled sums of k
    non-negative squares in float64, each within (k-1)·u relative of the exact sum, so
    the two square roots differ by at most (k-1)·u relative."""
    rng = np.random.default_rng(5)
    shape = (37, 53)
    X = {
        "gaussian": lambda: rng.standard_normal(shape),
        "nonneg": lambda: rng.random(shape),
        "shifted": lambda: rng.standard_normal(shape) + 5.0,
        "sparse": lambda: (rng.random(shape) < 0.05) * 1.0,
        "heavy": lambda: rng.standard_t(1.5, shape),
    }[family]()
    u = np.finfo(np.float64).eps / 2
    for axis, k in ((1, shape[1]), (0, shape[0])):
        ref = np.linalg.norm(X, axis=axis).max()
        assert abs(pipeline.max_norm(X, axis) - ref) <= (k - 1) * u * ref
    X[3, 4] = np.nan
    assert np.isnan(pipeline.max_norm(X, 1)) and np.isnan(pipeline.max_norm(X, 0))


@pytest.mark.parametrize("check", ["probes", None])
@pytest.mark.parametrize("executor", ["serial", "threads"])
@pytest.mark.parametrize("n", [24, 150])  # the exact check of a small product, the probes
def test_host_answers_are_checked_through_the_decode(monkeypatch, check, executor, n):
    """Host answers of a run with nothing in the background (serial; threads' inline run
    of tiny workers, n = 24) are not read once more for NaN/Inf on arrival: a NaN/Inf
    answer makes the decoded C non-finite, which the guard's pass over C sees; only then
    are the decoded answers looked at, the bad one erased and the next answer collected.
    A healthy call checks no answer's finiteness; a faulty one returns the decode of the
    healthy answers, unflagged. A pool run (threads, n = 150) checks each on arrival."""
    from gpucoded import integrity
    from gpucoded.executors import ThreadExecutor
    from gpucoded.stragglers import FaultyExecutor

    rng = np.random.default_rng(12)
    A, B = rng.random((n, n)) + 1.0, rng.random((n, n))  # non-negative, non-centred
    E = A @ B
    looked = []
    real = integrity.answer_problem
    monkeypatch.setattr(
        pipeline, "answer_problem",
        lambda p, *a, check_finite=True, **k: looked.append(check_finite) or real(
            p, *a, check_finite=check_finite, **k),
    )  # fmt: skip
    inner = SerialExecutor() if executor == "serial" else ThreadExecutor()
    kw = dict(m=4, P=9, return_info=True, check=check)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateResultWarning)
        warnings.simplefilter("error", RuntimeWarning)  # NumPy's, of the NaN/Inf decoded
        C, info = gpucoded.coded_matmul(A, B, "matdot", executor=inner, **kw)
        deferred = executor == "serial" or n == 24
        assert looked and not info.erased
        assert not any(looked) if deferred else all(looked)
        for fault in ("nan", "inf"):
            ex = FaultyExecutor(inner, {1: fault, 4: fault})
            C, info = gpucoded.coded_matmul(A, B, "matdot", executor=ex, **kw)
            # serial: in order, both are read; threads: a late one may be abandoned
            assert set(info.erased) <= {1, 4} and (executor == "threads" or len(info.erased) == 2)
            assert all("non-finite" in why for why in info.erased.values())
            assert 1 not in info.used and 4 not in info.used and len(info.used) == 7
            assert np.isfinite(C).all()
            assert np.abs(C - E).max() <= info.error_bound


def test_a_nonfinite_decode_of_finite_answers_is_flagged_not_erased(monkeypatch):
    """A C that is not finite although every answer is (an overflow in the decode, made
    here by the combine): no answer is erased, and the guard refuses the result."""
    from gpucoded.codes import dispatch

    real = dispatch.combine

    def overflowing(*a, **k):
        C = real(*a, **k)
        C[0, 0] = np.inf
        return C

    monkeypatch.setattr(dispatch, "combine", overflowing)
    rng = np.random.default_rng(2)
    A, B = rng.random((20, 16)), rng.random((16, 12))
    with pytest.raises(InaccurateResultError) as exc:
        gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor="serial", on_inaccurate="raise")
    assert "not finite" in str(exc.value) or "non-finite" in str(exc.value)
    _, info = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor="serial",
                                    on_inaccurate="ignore", return_info=True)  # fmt: skip
    assert not info.erased and len(info.used) == 3
