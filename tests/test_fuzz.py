"""Hypothesis fuzzing: codes × shapes × dtypes × failure patterns × injected faults.

Property: every case either returns C with ``max|C - AB| <= CallInfo.error_bound``
(AB in extended precision), or raises a documented error — never a silent wrong
answer. Documented errors here: NotEnoughAnswersError (too many erasures, or a
verification that needs more answers), CorruptAnswerError (only when a corruption
was really injected: no false alarms) and ValueError for NaN inputs with
``nonfinite="raise"`` or for complex inputs to a real-only code. Silent corruptions
are injected only with ``verify`` set (without it the library is not asked to look);
erasure faults (raise, wrong shape or dtype, NaN, never answering) are injected with
any mode.

Profiles: ``GPUCODED_FUZZ=ci`` (default, 600 cases, derandomized, well under
60 s) or ``GPUCODED_FUZZ=long`` (10,000 cases), e.g.
``GPUCODED_FUZZ=long python -m pytest tests/test_fuzz.py -s``; the counts are printed.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpucoded
from gpucoded.errors import CorruptAnswerError, CorruptionWarning, NotEnoughAnswersError
from gpucoded.executors import SerialExecutor, ThreadExecutor
from gpucoded.reference import exact_product
from gpucoded.stragglers import FaultyExecutor

settings.register_profile(
    "gpucoded-ci",
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "gpucoded-long",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("gpucoded-" + os.environ.get("GPUCODED_FUZZ", "ci"))

#: code configurations; one instance each for the whole session (weights are cached)
CONFIGS = [
    ("matdot", {"m": 2, "P": 7}),
    ("matdot", {"m": 3, "P": 8}),
    ("chebyshev", {"m": 2, "P": 7}),
    ("approx_matdot", {"m": 2, "P": 6}),
    ("approx_matdot", {"m": 3, "P": 7}),
    ("polydot", {"p": 2, "q": 1, "P": 8}),
    ("approx_polydot", {"p": 2, "q": 1, "P": 7}),
    ("polynomial", {"p": 2, "q": 2, "P": 8}),
    ("replication", {"m": 2, "P": 8}),
    ("uncoded", {"m": 2}),
    ("circle", {"m": 2, "P": 6}),
]
_CODES: dict[int, gpucoded.codes.Code] = {}
SILENT = ("perturb", "scale")
ERASURE = ("raise", "shape", "dtype", "nan", "inf", "never")
COUNTS: Counter = Counter()
#: how each case ended: exactly one outcome per case
OUTCOME: Counter = Counter()


def _code(i: int) -> gpucoded.codes.Code:
    if i not in _CODES:
        name, opts = CONFIGS[i]
        _CODES[i] = gpucoded.make_code(name, **opts)
    return _CODES[i]


@st.composite
def cases(draw):
    ci = draw(st.integers(0, len(CONFIGS) - 1))
    P = _code(ci).P
    n, k, l = (draw(st.integers(1, 9)) for _ in range(3))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.complex64, np.complex128]))
    scale = 10.0 ** draw(st.integers(-3, 3))
    # failure patterns: mostly within what the code tolerates, sometimes one too many
    order = draw(st.permutations(range(P)))
    nf = draw(st.integers(0, P - _code(ci).recovery_threshold + 1))
    failed = set(order[:nf])
    verify = draw(st.sampled_from([None, "warn", "raise", "correct"]))
    kinds = ERASURE + (SILENT if verify else ())
    # faults on the first workers to answer (serial order), so they reach the decode
    alive = [w for w in range(P) if w not in failed]
    nfault = draw(st.integers(0, min(2, len(alive))))
    where = draw(st.permutations(alive[: nfault + 2]))[:nfault] if nfault else []
    faults = {w: draw(st.sampled_from(kinds)) for w in where}
    # the single-fault model of gpucoded.integrity: at most one silent corruption
    silent = [w for w, f in faults.items() if f in SILENT]
    for w in silent[1:]:
        faults[w] = "raise"
    size = draw(st.sampled_from([1e-6, 1e-2, 1.0, 1e3]))
    nan_input = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
    threads = draw(st.integers(0, 9)) == 0
    seed = draw(st.integers(0, 2**31 - 1))
    return ci, (n, k, l), dtype, scale, failed, verify, faults, size, nan_input, threads, seed


def _operands(shape, dtype, scale, seed):
    n, k, l = shape
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, k)), rng.standard_normal((k, l))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((n, k))
        B = B + 1j * rng.standard_normal((k, l))
    return (scale * A).astype(dtype), B.astype(dtype)


@settings(PROFILE)
@given(cases())
def test_fuzz_result_within_bound_or_documented_error(case):
    ci, shape, dtype, scale, failed, verify, faults, size, nan_input, threads, seed = case
    code = _code(ci)
    A, B = _operands(shape, dtype, scale, seed)
    COUNTS["cases"] += 1
    COUNTS["patterns"] += 1
    if nan_input:
        A[0, 0] = np.nan
        with pytest.raises(ValueError, match="contains NaN or Inf"):
            gpucoded.coded_matmul(A, B, code)
        COUNTS["nan inputs refused"] += 1
        OUTCOME["nan input refused"] += 1
        return
    spec = {}
    for w, f in faults.items():
        # a silent fault scales with the answers: a fraction `size` of the typical entry
        typical = float(np.abs(A).max() * np.abs(B).max()) * shape[1] + 1e-300
        spec[w] = (f, size * typical) if f == "perturb" else (f, 1.0 + size) if f == "scale" else f
    COUNTS["faults injected"] += len(spec)
    silent = {w for w, f in spec.items() if isinstance(f, tuple)}
    COUNTS["silent corruptions injected"] += len(silent)
    ex = FaultyExecutor(ThreadExecutor() if threads else SerialExecutor(), spec)
    if getattr(code, "decoder", None) == "real" and np.dtype(dtype).kind == "c":
        with pytest.raises(ValueError, match="decodes real inputs only"):
            gpucoded.coded_matmul(A, B, code, executor=ex)
        COUNTS["complex inputs refused by a real-only code"] += 1
        OUTCOME["complex input refused"] += 1
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            C, info = gpucoded.coded_matmul(
                A, B, code, failed=sorted(failed), executor=ex, verify=verify, return_info=True
            )
        except NotEnoughAnswersError as e:
            COUNTS["not enough answers"] += 1
            OUTCOME["not enough answers"] += 1
            assert set(e.answered).isdisjoint(failed)
            return
        except CorruptAnswerError:
            assert silent, "false alarm: no corruption was injected"
            COUNTS["corruptions detected"] += 1
            OUTCOME["corruption raised"] += 1
            return
    flagged = any(issubclass(w.category, CorruptionWarning) for w in caught)
    erased_faults = [w for w in spec if w in info.erased and info.erased[w] != "failed"]
    COUNTS["erasure faults detected"] += len([w for w in erased_faults if w not in silent])
    excluded = info.integrity is not None and bool(info.integrity.excluded)
    if excluded:
        assert set(info.integrity.excluded) <= silent, "an honest worker was excluded"
        COUNTS["corruptions detected"] += len(info.integrity.excluded)
    elif flagged and info.integrity is not None and info.integrity.consistent is False:
        assert silent, "false alarm: no corruption was injected"
        COUNTS["corruptions detected"] += 1
        OUTCOME["corruption warned"] += 1
        return  # warned: the result is known to be wrong, its bound is inf
    elif flagged and silent & set(info.used):
        assert not info.integrity.checked
        COUNTS["unverifiable results flagged"] += 1
        OUTCOME["unverifiable result flagged"] += 1
        return  # warned "unverified": too few answers to cross-check a corrupt one
    assert not set(info.used) & set(failed)
    err = float(np.abs(C - exact_product(A, B)).max())
    assert err <= info.error_bound, (err, info.error_bound, info.integrity)
    if silent & set(info.used):  # harmless at the bound: missed, yet within it
        COUNTS["silent corruptions used, undetected, within bound"] += 1
    COUNTS["results within bound"] += 1
    OUTCOME["corrupt worker excluded, within bound" if excluded else "within bound"] += 1


def test_fuzz_counts():
    """Prints what the fuzz run covered (run with -s); the property test asserted it."""
    if not COUNTS["cases"]:
        pytest.skip("fuzz test deselected")
    print(f"fuzz counts: {dict(COUNTS)}; outcomes: {dict(OUTCOME)}")
    # the accounting closes: every case that ran ended in exactly one outcome
    assert sum(OUTCOME.values()) == COUNTS["cases"]
    assert COUNTS["results within bound"] == (
        OUTCOME["within bound"] + OUTCOME["corrupt worker excluded, within bound"]
    )
    if COUNTS["cases"] >= PROFILE.max_examples:  # a full run: every path was exercised
        for key in (
            "nan input refused",
            "not enough answers",
            "within bound",
            "corrupt worker excluded, within bound",
            "corruption raised",
            "corruption warned",
            "complex input refused",
            "unverifiable result flagged",
        ):
            assert OUTCOME[key] > 0, (key, dict(OUTCOME))
        assert COUNTS["erasure faults detected"] > 0
        # silent corruptions that reached the decode were each detected or harmless
        assert COUNTS["corruptions detected"] > 0
