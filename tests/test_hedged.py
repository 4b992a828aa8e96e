"""code="hedged": m exact tasks, a late one re-issued to a spare (gpucoded.hedging).

Re-issue, cancel, the virtual clock against the model (gpucoded.stragglers.hedged_time),
exactness on several data families, refusals, threads, Dask and the simulated device.
"""

from __future__ import annotations

import math
import threading
import time
import types

import numpy as np
import pytest

import gpucoded
from gpucoded.codes import Hedged, make_code
from gpucoded.errors import NotEnoughAnswersError
from gpucoded.executors.base import Run
from gpucoded.executors.local import SerialExecutor, busy_workers
from gpucoded.reference import exact_product
from gpucoded.stragglers import OneSlowDevice, hedged_time

LATE = 3.0  # seconds: the straggler of the "done means" checks


def _data(kind: str, n=60, k=48, l=40, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, k)), rng.standard_normal((k, l))
    if kind == "nonneg":  # non-negative, non-centred
        return rng.uniform(1.0, 2.0, (n, k)), rng.uniform(3.0, 4.0, (k, l))
    if kind == "sparse":
        A = rng.standard_normal((n, k)) * (rng.random((n, k)) < 0.05)
        return A, rng.standard_normal((k, l)) * (rng.random((k, l)) < 0.1)
    if kind == "heavy":  # Pareto tails, alpha = 1.5
        return rng.pareto(1.5, (n, k)) + 1, rng.standard_cauchy((k, l))
    raise AssertionError(kind)


def _check_exact(C, A, B, info):
    """|C - AB| within the decode's a-priori bound (the sum of m task GEMMs)."""
    err = float(np.abs(C - exact_product(A, B)).max())
    assert np.isfinite(err) and err <= info.error_bound, (err, info.error_bound)


def _gone(prefixes=("gpucoded-hedge",), wait=5.0) -> bool:
    """True once no worker task is running and no forwarding thread of ours is alive
    (waits up to ``wait``). The thread executor's pool threads outlive the runs: what
    must end is their work (:func:`gpucoded.executors.local.busy_workers`)."""
    end = time.perf_counter() + wait
    while time.perf_counter() < end:
        alive = [t for t in threading.enumerate() if t.name.startswith(prefixes)]
        if not alive and busy_workers() == 0:
            return True
        time.sleep(0.01)
    return False


# ------------------------------------------------------------------ the code
def test_make_code_and_options():
    c = make_code("hedged", m=4, P=8)
    assert isinstance(c, Hedged) and (c.m, c.P, c.spares, c.hedge_after) == (4, 8, 4, None)
    assert make_code("hedged", m=3).P == 6
    assert make_code("hedged", m=3, P=3, hedge_after=0.5).hedge_after == 0.5
    with pytest.raises(ValueError, match="P >= m"):
        Hedged(4, 3)
    with pytest.raises(TypeError, match="hedge_after must be a number of seconds"):
        Hedged(2, 4, hedge_after="soon")
    with pytest.raises(ValueError, match="hedge_after must be finite"):
        Hedged(2, 4, hedge_after=-1)
    A, B = _data("gaussian")
    with pytest.raises(TypeError, match="hedge_afte"):  # a misspelt option is named
        gpucoded.coded_matmul(A, B, "hedged", m=2, P=4, hedge_afte=1)


@pytest.mark.parametrize("kind", ["gaussian", "nonneg", "sparse", "heavy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_on_data_families(kind, dtype):
    A, B = (x.astype(dtype) for x in _data(kind))
    d = [0.0] * 6
    d[1] = 1.0  # task 1 is re-issued (hedge_after 0.2 virtual seconds)
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=3, P=6, delays=d, executor="serial", hedge_after=0.2,
        return_info=True,
    )  # fmt: skip
    assert C.dtype == dtype and [r.task for r in info.hedge.reissued] == [1]
    _check_exact(C, A, B, info)
    assert info.accuracy is not None and info.accuracy < 1e-2


# ------------------------------------------------------------ virtual clock
def _fixed_compute(monkeypatch, dt=0.001):
    """Every serial GEMM takes exactly ``dt`` virtual seconds (a counting perf_counter)."""
    from gpucoded.executors import local

    ticks = iter(range(10**9))
    fake = types.SimpleNamespace(perf_counter=lambda: next(ticks) * dt)
    monkeypatch.setattr(local, "time", fake)


def test_virtual_clock_closed_form(monkeypatch):
    """hedge_after=0.5: task 1 (worker 1 5 s late) goes to spare 4 at exactly 0.5;
    the result is complete at 0.5 + compute + spare 4's delay 0.1."""
    _fixed_compute(monkeypatch)
    A, B = _data("nonneg")
    d = [0.0, 5.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0]
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=4, P=8, delays=d, executor="serial", hedge_after=0.5,
        return_info=True,
    )  # fmt: skip
    (r,) = info.hedge.reissued
    assert (r.task, r.worker, r.at, r.after, r.backs_up) == (1, 4, 0.5, 0.5, 1)
    assert info.hedge.winners == {0: 0, 1: 4, 2: 2, 3: 3}
    assert info.used == (0, 4, 2, 3) and info.hedge.cancelled == [1]
    assert info.time_to_decode == pytest.approx(0.5 + 0.001 + 0.1, abs=1e-12)
    assert info.abandoned == [1]
    _check_exact(C, A, B, info)


def test_virtual_clock_answer_at_the_reissue_instant_is_taken_first(monkeypatch):
    """Binary-exact times: worker 1 answers at exactly H = 0.5 (offset + compute +
    delay), and the model's tie rule holds: the answer is taken, nothing re-issued."""
    dt = 2.0**-10
    _fixed_compute(monkeypatch, dt)
    A, B = _data("gaussian")
    d = [0.0, 0.5 - 2 * dt, 0.0, 0.0]
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=2, P=4, delays=d, executor="serial", hedge_after=0.5,
        return_info=True,
    )  # fmt: skip
    assert info.hedge.reissued == [] and info.time_to_decode == 0.5
    assert hedged_time([dt + x for x in d], 2, 0.5, offsets=[0.0, dt]) == (0.5, [])
    d[1] += dt  # one tick later: re-issued at 0.5 to spare 2
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=2, P=4, delays=d, executor="serial", hedge_after=0.5,
        return_info=True,
    )  # fmt: skip
    assert [(r.task, r.worker, r.at) for r in info.hedge.reissued] == [(1, 2, 0.5)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rule", [None, 0.05])
def test_virtual_clock_matches_model(monkeypatch, seed, rule):
    """Serial executor == stragglers.hedged_time on the same latencies, exactly:
    every re-issue (task, spare, time) and the time to result, for fixed and rule H."""
    dt = 0.001
    _fixed_compute(monkeypatch, dt)
    rng = np.random.default_rng(seed)
    m, P = 4, 7
    d = list(rng.choice([0.0, 0.0, 0.01, 0.2, 1.0, math.inf], size=P))
    d[m:] = list(rng.choice([0.0, 0.03, 0.3], size=P - m))  # spares answer
    A, B = _data("sparse", seed=seed)
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=m, P=P, delays=d, executor="serial", hedge_after=rule,
        return_info=True,
    )  # fmt: skip
    latency = [dt + x for x in d]
    # the serial clock: one GEMM after another, never-answering workers not computed
    offsets = [dt * sum(math.isfinite(x) for x in d[:j]) for j in range(m)]
    t, reissues = hedged_time(latency, m, rule, offsets=offsets)
    assert [(r.task, r.worker) for r in info.hedge.reissued] == [(j, w) for j, w, _ in reissues]
    assert [r.at for r in info.hedge.reissued] == pytest.approx(
        [x for _, _, x in reissues], abs=1e-12
    )
    assert info.time_to_decode == pytest.approx(t, abs=1e-12)
    _check_exact(C, A, B, info)


def test_model_by_hand():
    """hedged_time on a case worked out by hand (rule: 2 x median, floor 0.02)."""
    # tasks 0..2 answer at 0.1, 0.1, 9; spares 3, 4 take 0.05 and 0.5
    t, re = hedged_time([0.1, 0.1, 9.0, 0.05, 0.5], 3)
    assert re == [(2, 3, 0.2)] and t == pytest.approx(0.25)
    # fixed H = 1: both spares are used in turn when the first copy on spare 3 is late
    t, re = hedged_time([0.1, 0.1, 9.0, 5.0, 0.5], 3, 1.0)
    assert re == [(2, 3, 1.0), (2, 4, 2.0)] and t == pytest.approx(2.5)
    assert hedged_time([math.inf, 0.1], 2, 0.1) == (math.inf, [])  # no spare


def test_one_slow_device_model():
    t = OneSlowDevice(base=0.1, slowdown=5, worker=2, jitter=0.0).sample(4)
    assert list(t) == [0.1, 0.1, 0.5, 0.1]
    j = OneSlowDevice(base=1.0, worker=0, jitter=0.1).sample(50, seed=1)
    assert j[0] >= 5.0 and np.all((j[1:] >= 1.0) & (j[1:] <= 1.1))
    with pytest.raises(ValueError, match="slow worker 4"):
        OneSlowDevice(worker=4).sample(4)


# --------------------------------------------------------- failures, erasures
def test_failed_primary_goes_to_a_spare_at_once():
    A, B = _data("gaussian")
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=3, P=5, failed=[2], executor="serial", return_info=True
    )
    (r,) = info.hedge.reissued
    assert (r.task, r.worker, r.at, r.after, r.backs_up) == (2, 3, 0.0, None, None)
    assert info.erased == {2: "failed"} and info.used == (0, 1, 3)
    _check_exact(C, A, B, info)


class _NanFirstCopy(SerialExecutor):
    """Serial, but worker 1's first answer is NaN (a corrupted GEMM): an erasure."""

    def start(self, At, Bt, *, workers, delays=None, timeout=None):
        inner = super().start(At, Bt, workers=workers, delays=delays, timeout=timeout)
        first = len(list(workers)) > 1

        class R(Run):
            def __iter__(self):
                for a in inner:
                    if first and a.worker == 1:
                        a.product = np.full_like(a.product, np.nan)
                    yield a

            def cancel(self):
                inner.cancel()

        return R()


def test_unusable_answer_is_erased_and_reissued():
    A, B = _data("heavy")
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=3, P=4, executor=_NanFirstCopy(), return_info=True
    )
    assert "not finite" in info.erased[1] or "NaN" in info.erased[1]
    assert [(r.task, r.worker, r.after) for r in info.hedge.reissued] == [(1, 3, None)]
    assert info.used == (0, 3, 2)
    _check_exact(C, A, B, info)


def test_no_spare_left_raises_before_returning_a_wrong_number():
    A, B = _data("gaussian")
    d = [0.0, math.inf, math.inf, 0.0]  # spare 2 never answers, spare 3 is down
    with pytest.raises(NotEnoughAnswersError, match=r"task\(s\) \[1\]"):
        gpucoded.coded_matmul(
            A, B, "hedged", m=2, P=4, failed=[3], delays=d, executor="serial",
            hedge_after=0.1,
        )  # fmt: skip
    with pytest.raises(NotEnoughAnswersError, match="deadline"):
        gpucoded.coded_matmul(
            A, B, "hedged", m=2, P=2, delays=[0, 0.5], executor="threads", deadline=0.05
        )


def test_refused_options():
    A, B = _data("gaussian")
    with pytest.raises(TypeError, match="verify= does not apply"):
        gpucoded.coded_matmul(A, B, "hedged", m=2, P=4, verify="warn")
    from gpucoded.progressive import progressive_matmul

    with pytest.raises(TypeError, match="hedged"):
        next(progressive_matmul(A, B, "hedged", m=2, P=4))


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize("late", [[1], [0, 3]])
def test_threads_late_workers_do_not_hold_the_result(late):
    """One or two of the first m workers LATE s late: the spares' copies win."""
    A, B = _data("nonneg", 200, 160, 120)
    d = [0.0] * 8
    for w in late:
        d[w] = LATE
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=4, P=8, delays=d, executor="threads", return_info=True
    )
    assert info.time_to_decode < LATE  # did not wait for a straggler
    for w in late:
        assert info.hedge.winners[w] >= 4 and w in info.hedge.cancelled
        assert w in info.abandoned
    assert {r.task for r in info.hedge.reissued} >= set(late)
    assert info.hedge.bytes_to_spares == sum(
        (A[:, :40].nbytes + B[:40].nbytes) for _ in info.hedge.reissued
    )
    _check_exact(C, A, B, info)
    assert _gone()  # the delayed worker threads and the forwarders all ended


def test_threads_losing_spare_copy_is_cancelled():
    """hedge_after=0.4 re-issues task 1 to spares 9 s late; the original (2 s) wins,
    the spares' copies are cancelled: the call returns and their threads exit."""
    A, B = _data("gaussian")
    d = [0.0, 2.0, 0.0, 9.0, 9.0, 9.0]
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=3, P=6, delays=d, executor="threads", hedge_after=0.4,
        return_info=True,
    )  # fmt: skip
    spares = [r.worker for r in info.hedge.reissued if r.task == 1]  # every 0.4 s
    assert spares[:3] == [3, 4, 5]  # each late copy backed up again while spares last
    assert info.hedge.winners[1] == 1 and set(spares) <= set(info.hedge.cancelled)
    assert info.time_to_decode < 9.0
    _check_exact(C, A, B, info)
    assert _gone()


def test_losing_copy_cancelled_when_its_task_is_won_and_its_spare_reused():
    """One spare: task 1 goes to it at 0.5 s, the original wins at 1 s, so the spare's
    copy is cancelled *then* (not at the end of the call) and the spare takes the
    still-late task 2 (its original answers at 2 s)."""
    from gpucoded.executors.local import ThreadExecutor

    log: list[tuple[str, int]] = []

    class Spy(ThreadExecutor):
        def start(self, At, Bt, **kw):
            run, i = super().start(At, Bt, **kw), len([e for e in log if e[0] == "start"])
            log.append(("start", i))
            cancel = run.cancel
            run.cancel = lambda: (log.append(("cancel", i)), cancel())[1]
            return run

    A, B = _data("nonneg")
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=3, P=4, delays=[0.0, 1.0, 2.0, 9.0], executor=Spy(),
        hedge_after=0.5, return_info=True,
    )  # fmt: skip
    assert [(r.task, r.worker) for r in info.hedge.reissued] == [(1, 3), (2, 3)]
    assert log.index(("cancel", 1)) < log.index(("start", 2))
    assert info.hedge.winners == {0: 0, 1: 1, 2: 2} and info.used == (0, 1, 2)
    _check_exact(C, A, B, info)
    assert _gone()


# --------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_ex():
    distributed = pytest.importorskip("distributed")
    from gpucoded.executors.dask import DaskExecutor, _close_clients

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield DaskExecutor(client)
    _close_clients()
    client.close()
    cluster.close()


@pytest.mark.parametrize("late", [[2], [1, 2]])
def test_dask_late_workers(dask_ex, late):
    A, B = _data("sparse", 120, 80, 60)
    d = [0.0] * 8
    for w in late:
        d[w] = LATE
    before = dask_ex.bytes_sent
    C, info = gpucoded.coded_matmul(
        A, B, "hedged", m=4, P=8, delays=d, executor=dask_ex, return_info=True
    )
    assert info.time_to_decode < LATE
    for w in late:
        assert info.hedge.winners[w] >= 4
    # what the spares received is what the executor scattered for them
    per_task = A[:, :20].nbytes + B[:20].nbytes
    assert info.hedge.bytes_to_spares == per_task * len(info.hedge.reissued) > 0
    assert dask_ex.bytes_sent - before == info.hedge.bytes_to_spares + 4 * per_task
    _check_exact(C, A, B, info)


# ------------------------------------------------------- simulated device
@pytest.mark.gpusim
def test_cuda_streams_late_worker(sim):
    import cupy as cp

    from gpucoded.executors.cuda import CudaStreamExecutor

    A, B = _data("nonneg", 40, 32, 24)
    d = [0.0] * 6
    d[1] = LATE
    ex = CudaStreamExecutor(delay_mode="host")
    C, info = gpucoded.coded_matmul(
        cp.asarray(A), cp.asarray(B), "hedged", m=3, P=6, delays=d, executor=ex,
        hedge_after=0.05, return_info=True,
    )  # fmt: skip
    assert info.time_to_decode < LATE and info.hedge.winners[1] >= 3
    _check_exact(C.get(), A, B, info)
    ex.close()


# ------------------------------------------------------------------- advise
def test_advise_lists_hedging_and_says_why(capsys):
    """m=4, P=8, 2 stragglers, tol 1e-10: hedging is exact at 1/4 (the uncoded sum), the
    codes at 1/4 are not, so hedging is preferred; under one slow device its expected
    time (2 x median + a spare's latency) is above the exact Chebyshev m'=3's, which the
    tool names as faster at more work."""
    from gpucoded.studies import advise as adv

    opts = adv.advise(4, 8, 2)
    by = {o.name.split(" γ")[0]: o for o in opts}
    h = by["hedged m=4"]
    assert h.exact and h.m == 4 and h.error <= 1e-15 and h.bits > 50
    adv.expected_times(opts, OneSlowDevice(base=0.1, slowdown=5.0, jitter=0.0), 2, draws=3)
    # no jitter: every draw alike; hedged = 2 x 0.1 (median) + 0.1 (a spare), exactly
    assert h.expected_time == pytest.approx(0.3)
    assert by["Chebyshev m'=3"].expected_time == pytest.approx(0.1)
    lines = adv.verdict(opts, 4, 1e-10)
    assert any(s.startswith("What users do anyway") and "hedged m=4" in s for s in lines)
    assert "Preferred: hedged m=4, a baseline" in "\n".join(lines)
    assert any(s.startswith("Faster at more work") and "300 ms" in s for s in lines)
    from gpucoded.cli import build_parser

    argv = ["advise", "--m", "4", "--P", "8", "--stragglers", "2", "--latency", "pareto:0.1,2"]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    assert "E[time]" in capsys.readouterr().out
    with pytest.raises(ValueError, match="use one of"):
        adv.parse_latency("lognormal:1,2")
