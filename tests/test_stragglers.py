"""Straggler models, failure patterns, injection, progressive decoding."""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.codes import make_code
from gpucoded.demo import straggler_scenario
from gpucoded.executors.local import busy_workers
from gpucoded.progressive import progressive_matmul
from gpucoded.reference import exact_product
from gpucoded.stragglers import (
    Bimodal,
    FaultyExecutor,
    Pareto,
    Scenario,
    ShiftedExponential,
    decodable_time,
    fixed_failures,
    random_failures,
    worst_case_failures,
)


def test_latency_models_are_seeded():
    for model in (ShiftedExponential(0.1, 0.5), Pareto(0.2, 1.5), Bimodal(0.1, 0.25, 5.0, 0.1)):
        a, b = model.sample(16, seed=3), model.sample(16, seed=3)
        assert a.shape == (16,) and np.array_equal(a, b)
        assert not np.array_equal(a, model.sample(16, seed=4))


def test_shifted_exponential_mean():
    """Mean shift+scale; the sample mean of N draws has standard error scale/√N, so it
    lies within 5 standard errors (a 6e-7 two-sided chance of a false failure)."""
    m = ShiftedExponential(shift=0.2, scale=0.5)
    N = 20000
    t = m.sample(N, seed=1)
    assert t.min() >= 0.2
    assert abs(t.mean() - 0.7) <= 5 * 0.5 / math.sqrt(N)


def test_pareto_tail():
    """P(T > 2 x_m) = 2^-α; the empirical frequency of N draws has binomial standard
    error √(p(1−p)/N): within 5 of them."""
    m = Pareto(scale=0.1, alpha=1.5)
    N = 20000
    t = m.sample(N, seed=2)
    p = 2.0**-1.5
    assert t.min() >= 0.1
    assert abs((t > 0.2).mean() - p) <= 5 * math.sqrt(p * (1 - p) / N)


def test_bimodal_slows_exactly_the_fraction():
    t = Bimodal(base=0.1, fraction=0.25, slowdown=10.0).sample(12, seed=5)
    assert np.count_nonzero(np.isclose(t, 1.0)) == 3
    assert np.count_nonzero(np.isclose(t, 0.1)) == 9


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda: ShiftedExponential(-1.0, 1.0), "shift"),
        (lambda: ShiftedExponential(0.0, 0.0), "scale"),
        (lambda: Pareto(1.0, 0.0), "alpha"),
        (lambda: Bimodal(fraction=1.5), "fraction"),
        (lambda: random_failures(5, 4), "between 0 and P"),
        (lambda: fixed_failures([4], 4), r"\[0, 4\)"),
    ],
)
def test_bad_parameters(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_random_failures_seeded_and_distinct():
    f = random_failures(3, 10, seed=7)
    assert len(set(f)) == 3 and all(0 <= w < 10 for w in f)
    assert f == random_failures(3, 10, seed=7)


def test_decodable_time_is_the_order_statistic():
    times = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]
    code = make_code("matdot", m=2, P=6)  # threshold 3
    t, used = decodable_time(code, times)
    assert t == sorted(times)[2] and used == (1, 5, 3)
    rep = make_code("replication", m=2, P=4)  # worker w holds block w % 2
    assert decodable_time(rep, [1.0, 5.0, 2.0, 0.5]) == (1.0, (3, 0))
    assert decodable_time(code, [0.1, math.inf, math.inf, 0.2, math.inf, math.inf])[0] == math.inf


def test_worst_case_failures_match_the_call():
    """The reported worst error is what coded_matmul gives with those failures (the
    decodes differ only in summation order: within twice the a-priori rounding
    bound), and no other failure set does worse."""
    code = make_code("approx_matdot", m=3, P=5, gamma=20.0)
    A, B = unit_gaussian((24, 24), 11), unit_gaussian((24, 24), 12)
    F, err = worst_case_failures(code, 2, A, B)
    # ε-MatDot at its threshold: the guard flags these decodes (estimate > 1e-2 of
    # max|C|); this test compares errors with the worst case, so it is told to ignore
    quiet = {"on_inaccurate": "ignore"}
    C, info = gpucoded.coded_matmul(
        A, B, code, failed=F, answers=3, executor="serial", return_info=True, **quiet
    )
    Cx = exact_product(A, B)
    assert abs(float(np.abs(C - Cx).max()) - err) <= 2 * info.decode.fp_bound
    for G in [(0, 1), (1, 3), (2, 4)]:
        Cg, ig = gpucoded.coded_matmul(
            A, B, code, failed=G, answers=3, executor="serial", return_info=True, **quiet
        )
        assert float(np.abs(Cg - Cx).max()) <= err + 2 * ig.decode.fp_bound
    Fb, bound = worst_case_failures(code, 2)  # a-priori version
    assert len(Fb) == 2 and bound >= 0
    with pytest.raises(ValueError, match="both A and B"):
        worst_case_failures(code, 2, A)


def test_scenario_draw():
    sc = Scenario(ShiftedExponential(0.0, 0.1), failed=[0], random_failed=2, raises=[3], never=[4])
    inj = sc.draw(8, seed=1)
    assert 0 in inj.failed and len(inj.failed) == 3
    assert inj.delays[4] == math.inf and inj.raises == (3,)
    assert inj == sc.draw(8, seed=1)
    kw = inj.kwargs()
    assert isinstance(kw["executor"], FaultyExecutor) and kw["failed"] == list(inj.failed)


@pytest.mark.parametrize("executor", ["threads", "serial"])
def test_raising_and_never_workers_are_erasures(executor):
    A, B = unit_gaussian((30, 30), 13), unit_gaussian((30, 30), 14)
    inj = Scenario(raises=[0], never=[1]).draw(5)
    kw = inj.kwargs(executor)
    # the answering workers come 0.3 s late, so that worker 0's failure is seen before
    # the decode on a loaded machine too (threads: arrival order is not fixed)
    kw["delays"] = [d if w < 2 else 0.3 for w, d in enumerate(kw["delays"])]
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=2, P=5, return_info=True, **kw)
    assert "injected failure" in info.erased[0]
    assert set(info.used) == {2, 3, 4}
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_straggler_scenario_saves_the_delay():
    """Uncoded waits for the delayed worker; the codes return well before it (the
    demo's table is the rows of straggler_comparison)."""
    buf = io.StringIO()
    printed = straggler_scenario(n=60, m=2, delay=1.0, out=buf)
    assert "saved ms" in buf.getvalue() and len(buf.getvalue().splitlines()) == 5
    rows = {r["code"]: r for r in printed}
    assert rows["uncoded"]["seconds"] >= 1.0
    assert rows["matdot"]["seconds"] < 0.5 and rows["approx_matdot"]["seconds"] < 0.5
    assert 0 not in rows["matdot"]["used"] and 0 not in rows["approx_matdot"]["used"]


def test_progressive_estimates_respect_their_bounds_and_refine():
    """ε-MatDot m=3, P=6, answers in worker order: estimates after 3, 4, 5 answers
    (K = 5: exact then, interp bound 0). Each estimate's error is within its a-priori
    bound, and the interpolation bound shrinks with every answer."""
    A, B = unit_gaussian((40, 40), 15), unit_gaussian((40, 40), 16)
    Cx = exact_product(A, B)
    delays = [0.0, 0.02, 0.04, 0.06, 0.08, 5.0]
    # the 3-answer estimate is flagged by the guard (estimate ≈ 0.1 of max|C|); the bounds,
    # not the guard, are under test here
    out = list(progressive_matmul(A, B, "approx_matdot", m=3, P=6, gamma=30.0, delays=delays,
                                  on_inaccurate="ignore"))  # fmt: skip
    assert [len(i.workers) for _, i in out] == [3, 4, 5]
    for C, info in out:
        assert np.abs(C - Cx).max() <= info.error_bound
    ib = [i.interp_bound for _, i in out]
    assert ib[0] > ib[1] > ib[2] == 0.0


def test_progressive_break_cancels_the_run():
    A, B = unit_gaussian((20, 20), 17), unit_gaussian((20, 20), 18)
    gen = progressive_matmul(A, B, "approx_matdot", m=2, P=4, delays=[0, 0, 5.0, 5.0])
    t0 = time.perf_counter()
    C, info = next(gen)
    gen.close()
    assert time.perf_counter() - t0 < 1.0 and len(info.workers) == 2
    deadline = time.perf_counter() + 1.0
    while busy_workers():  # the pool's threads stay; their delayed tasks must end
        assert time.perf_counter() < deadline, "delayed workers still alive after close()"
        time.sleep(0.005)


def test_progressive_not_enough_answers():
    A, B = unit_gaussian((10, 10), 19), unit_gaussian((10, 10), 20)
    with pytest.raises(gpucoded.NotEnoughAnswersError, match="only 1 of its P=3 workers"):
        list(progressive_matmul(A, B, "approx_matdot", m=2, P=3, failed=[0, 1]))
