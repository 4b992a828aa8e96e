"""Worker faults: every failure pattern, erasures of every kind, too many erasures.

Correctness claims are asserted against the call's own a-priori bound
(``CallInfo.error_bound`` = interpolation bound + first-order rounding bound of the
decode that was used), compared with the extended-precision product
(:func:`gpucoded.reference.exact_product`): the bound is derived in
:meth:`gpucoded.codes.DecodeWeights.bounds`, so no tolerance is tuned here.
"""

from __future__ import annotations

import numpy as np
import pytest
from _faults import patterns
from _util import unit_gaussian

import gpucoded
from gpucoded.errors import NotEnoughAnswersError
from gpucoded.executors import SerialExecutor, ThreadExecutor
from gpucoded.reference import exact_product
from gpucoded.stragglers import ERASURE_FAULTS, FaultyExecutor

#: Small instances of every code: name -> constructor options.
CODE_CONFIGS = {
    "matdot": {"m": 2, "P": 5},
    "chebyshev": {"m": 2, "P": 5},
    "circle": {"m": 2, "P": 4},
    "approx_matdot": {"m": 2, "P": 5},
    "polydot": {"p": 2, "q": 1, "P": 6},
    "approx_polydot": {"p": 2, "q": 1, "P": 6},
    "polynomial": {"p": 2, "q": 2, "P": 6},
    "replication": {"m": 2, "P": 6},
    "uncoded": {"m": 3},
}
EXECUTORS = {"serial": SerialExecutor, "threads": ThreadExecutor}
PATTERN_COUNT: dict[str, int] = {}


@pytest.fixture(scope="module")
def operands():
    A, B = unit_gaussian((7, 6), 60), unit_gaussian((6, 5), 61)
    return A, B, exact_product(A, B)


@pytest.fixture(scope="module")
def code_instances():
    # one instance per code for the whole module: decode weights are cached per subset
    return {name: gpucoded.make_code(name, **opts) for name, opts in CODE_CONFIGS.items()}


@pytest.mark.parametrize("executor", list(EXECUTORS))
@pytest.mark.parametrize("name", list(CODE_CONFIGS))
def test_every_failure_pattern(name, executor, operands, code_instances):
    """All 2^P failure patterns: decodable ones are within the bound, others raise.

    A pattern F is survivable iff ``code.can_decode(workers not in F)``; for the
    evaluation codes that is exactly |F| <= P - K, for replication "no block lost".
    Every pattern with at most P - K failures must be survivable, and then the result
    is within ``info.error_bound``; every other pattern raises NotEnoughAnswersError
    whose ``answered`` lists exactly the workers that answered.
    """
    A, B, E = operands
    code = code_instances[name]
    P, K = code.P, code.recovery_threshold
    tolerated = refused = 0
    for F in patterns(P):
        rest = [w for w in range(P) if w not in F]
        if len(F) <= P - K and not isinstance(code, gpucoded.codes.Replication):
            assert code.can_decode(rest)
        if code.can_decode(rest):
            C, info = gpucoded.coded_matmul(
                A, B, code, failed=F, executor=EXECUTORS[executor](), return_info=True
            )
            assert np.abs(C - E).max() <= info.error_bound
            assert not set(info.used) & set(F)
            tolerated += 1
        else:
            with pytest.raises(NotEnoughAnswersError) as exc:
                gpucoded.coded_matmul(A, B, code, failed=F, executor=EXECUTORS[executor]())
            assert exc.value.answered == () and sorted(exc.value.erased) == sorted(F)
            assert exc.value.needed == K
            assert all(exc.value.erased[w] == "failed" for w in F)
            refused += 1
    # every pattern ran and ended one way or the other
    assert tolerated + refused == 2**P
    if isinstance(code, gpucoded.codes.Replication):
        # survivable iff each of the m blocks keeps one of its P/m copies
        assert tolerated == (2 ** (P // code.m) - 1) ** code.m
    else:  # MDS-like codes: exactly the patterns with at most P - K failures
        assert tolerated == sum(1 for F in patterns(P, P - K))
    PATTERN_COUNT[f"{name}/{executor}"] = tolerated + refused


def test_pattern_count_reported():
    """The exhaustive test above ran every pattern of every code (2^P each)."""
    if len(PATTERN_COUNT) < len(CODE_CONFIGS) * len(EXECUTORS):
        pytest.skip("exhaustive pattern tests were deselected")
    expected = sum(2 ** gpucoded.make_code(n, **o).P for n, o in CODE_CONFIGS.items())
    assert sum(PATTERN_COUNT.values()) == expected * len(EXECUTORS)
    print(f"failure patterns tried: {sum(PATTERN_COUNT.values())}")


@pytest.mark.parametrize("executor", list(EXECUTORS))
@pytest.mark.parametrize("fault", ERASURE_FAULTS)
@pytest.mark.parametrize("name", ["matdot", "approx_polydot", "replication"])
def test_faulty_worker_is_an_erasure(name, fault, executor, operands, code_instances):
    """A worker that raises, answers the wrong shape/dtype, NaN/Inf or never: an erasure.

    Worker 0 answers first on the serial executor (no delays), so without the
    check its bad answer would be used; the result must instead be within the bound
    of a decode that does not use worker 0.
    """
    A, B, E = operands
    code = code_instances[name]
    ex = FaultyExecutor(EXECUTORS[executor](), {0: fault})
    C, info = gpucoded.coded_matmul(A, B, code, executor=ex, return_info=True)
    assert 0 not in info.used
    assert np.abs(C - E).max() <= info.error_bound
    if fault != "never":  # a silent worker is simply never heard from
        assert 0 in info.erased
        expected = {
            "raise": "raised",
            "shape": "wrong shape",
            "dtype": "wrong dtype",
            "nan": "non-finite",
            "inf": "non-finite",
        }[fault]
        assert expected in info.erased[0]


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_too_many_erasures_names_who_answered(executor, operands, code_instances):
    """P - K + 1 faulty workers of mixed kinds: a clear error listing who answered."""
    A, B, _ = operands
    code = code_instances["matdot"]  # P=5, K=3: three faults are one too many
    faults = {0: "raise", 2: "nan", 4: "shape"}
    ex = FaultyExecutor(EXECUTORS[executor](), faults)
    with pytest.raises(NotEnoughAnswersError, match=r"needs 3 answers; only 2 usable") as exc:
        gpucoded.coded_matmul(A, B, code, executor=ex)
    err = exc.value
    assert sorted(err.answered) == [1, 3]
    assert set(err.erased) == {0, 2, 4}
    assert "workers [1, 3]" in str(err)


def test_never_answering_workers_reported(operands, code_instances):
    """Workers that never answer and leave too few: reported as 'no answer'."""
    A, B, _ = operands
    code = code_instances["polynomial"]  # P=6, K=4
    ex = FaultyExecutor(ThreadExecutor(), dict.fromkeys([0, 1, 2], "never"))
    with pytest.raises(NotEnoughAnswersError) as exc:
        gpucoded.coded_matmul(A, B, code, executor=ex)
    assert sorted(exc.value.answered) == [3, 4, 5]
    assert {exc.value.erased[w] for w in (0, 1, 2)} == {"no answer"}
