"""Dask distributed executor on one in-process LocalCluster (module scoped, fast start)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.executors import get_executor
from gpucoded.reference import exact_product
from gpucoded.stragglers import Scenario

distributed = pytest.importorskip("distributed")
dask_mod = pytest.importorskip("gpucoded.executors.dask")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    yield c
    dask_mod._close_clients()  # clients made from the address (executor="inproc://...")
    c.close()
    cluster.close()


def _busy(client) -> int:
    """Tasks executing (or seceded, e.g. waiting an injected delay) on all workers."""

    def count(dask_worker):
        return len(dask_worker.state.executing) + len(dask_worker.state.long_running)

    return sum(client.run(count).values())


def _wait_idle(client, limit: float) -> float:
    t0 = time.perf_counter()
    while _busy(client) or any(client.processing().values()):
        if time.perf_counter() - t0 > limit:
            pytest.fail(f"tasks still running {limit} s after the call returned")
        time.sleep(0.01)
    return time.perf_counter() - t0


def test_executor_resolution(client):
    ex = get_executor(client)
    assert isinstance(ex, dask_mod.DaskExecutor) and ex.client is client
    by_address = get_executor(client.scheduler.address)
    assert isinstance(by_address, dask_mod.DaskExecutor)
    assert get_executor(client.scheduler.address).client is by_address.client  # reused
    with pytest.raises(TypeError, match="Client"):
        dask_mod.DaskExecutor(42)


def test_dask_matdot_is_exact_within_its_bound(client):
    A, B = unit_gaussian((50, 40), 1), unit_gaussian((40, 30), 2)
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=3, P=6, executor=client, return_info=True)
    assert len(info.used) == 5
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_only_own_blocks_are_scattered(client):
    """Each coded worker's task depends on exactly two scattered blocks, its own."""
    P = 4
    At = np.arange(P, dtype=float)[:, None, None] * np.ones((P, 3, 2))
    Bt = np.ones((P, 2, 2))
    run = dask_mod.DaskExecutor(client).start(At, Bt, workers=range(P))
    with run:
        answers = {a.worker: a for a in run}
        assert len(run._data) == 2 * P
    for w, a in answers.items():
        assert np.array_equal(a.product, At[w] @ Bt[w])


def test_straggler_does_not_delay_the_call_and_nothing_lingers(client):
    """One worker 5 s late: the call returns in a small fraction of that, and the
    delayed task ends (it waits on the run's distributed.Event) within the same
    fraction, so no task keeps running on the cluster."""
    A, B = unit_gaussian((60, 60), 3), unit_gaussian((60, 60), 4)
    delay = 5.0
    gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor=client)  # warm up
    t0 = time.perf_counter()
    C, info = gpucoded.coded_matmul(
        A, B, "matdot", m=2, P=4, delays=[0, delay, 0, 0], executor=client, return_info=True
    )
    assert time.perf_counter() - t0 < 0.2 * delay
    assert 1 not in info.used
    assert _wait_idle(client, 0.3 * delay) < 0.3 * delay
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_never_and_raising_workers_are_erasures(client):
    A, B = unit_gaussian((30, 30), 5), unit_gaussian((30, 30), 6)
    inj = Scenario(raises=[0], never=[1]).draw(5)
    C, info = gpucoded.coded_matmul(
        A, B, "matdot", m=2, P=5, return_info=True, **inj.kwargs(client)
    )
    assert "injected failure" in info.erased[0] and set(info.used) == {2, 3, 4}
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound
    _wait_idle(client, 2.0)


def test_task_that_raises_is_an_erasure(client, monkeypatch):
    real = dask_mod._worker_task

    def broken(a, b, delay, name, t0):
        if a[0, 0] == 1.0:
            raise ArithmeticError("boom")
        return real(a, b, delay, name, t0)

    monkeypatch.setattr(dask_mod, "_worker_task", broken)
    P = 3
    At = np.arange(P, dtype=float)[:, None, None] * np.ones((P, 2, 2))
    Bt = np.ones((P, 2, 2))
    with dask_mod.DaskExecutor(client).start(At, Bt, workers=range(P)) as run:
        answers = {a.worker: a for a in run}
    assert isinstance(answers[1].error, ArithmeticError) and answers[1].product is None
    assert answers[0].ok and answers[2].ok


def test_deadline_raises_with_the_count(client):
    A, B = unit_gaussian((20, 20), 7), unit_gaussian((20, 20), 8)
    t0 = time.perf_counter()
    with pytest.raises(gpucoded.NotEnoughAnswersError, match="only 1 usable arrived by the dead"):
        gpucoded.coded_matmul(
            A, B, "matdot", m=2, P=4, delays=[0, 5.0, math.inf, 5.0], deadline=0.3, executor=client
        )
    assert time.perf_counter() - t0 < 2.0
    _wait_idle(client, 2.0)


def test_embedded_local_cluster_by_name():
    """executor="dask" starts one in-process LocalCluster, reused by later calls."""
    A, B = unit_gaussian((20, 20), 9), unit_gaussian((20, 20), 10)
    try:
        ex = get_executor("dask")
        assert get_executor("dask").client is ex.client
        C, info = gpucoded.coded_matmul(
            A, B, "approx_matdot", m=2, P=3, executor="dask", return_info=True
        )
        assert np.abs(C - exact_product(A, B)).max() <= info.error_bound
    finally:
        dask_mod._close_local()


def test_wait_for_accuracy_is_bounded_by_its_budget_on_dask(client):
    """MatDot m=6, P=30, float32 on Dask: the 11 prompt answers are predicted inaccurate
    and the other 19 come 5 s late. ``wait_for_accuracy=0.2`` tightens the run's limit
    (Run.limit): the run stops waiting, decodes the 11 it has, warns and says so. A run
    that ignored the limit would collect the late answers (all 30 answered, no warning)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 160)).astype(np.float32)
    B = rng.standard_normal((160, 40)).astype(np.float32)
    delays = [0.0] * 11 + [5.0] * 19
    with pytest.warns(gpucoded.InaccurateResultWarning):
        _, info = gpucoded.coded_matmul(
            A, B, "matdot", m=6, P=30, delays=delays, wait_for_accuracy=0.2,
            executor=client, return_info=True,
        )  # fmt: skip
    assert "waited up to 0.2 s" in info.selection and len(info.used) == 11
    assert sorted(info.answered) == list(range(11))
    assert sorted(info.abandoned) == list(range(11, 30))
    _wait_idle(client, 3.0)  # the late tasks were released by the cancel


def test_run_limit_tightens_a_dask_run_while_it_waits(client):
    """Run.limit called after iteration began (as collect does) ends the wait for a
    worker due in 5 s; only the prompt answer is delivered."""
    P = 2
    At, Bt = np.ones((P, 3, 3)), np.ones((P, 3, 3))
    with dask_mod.DaskExecutor(client).start(At, Bt, workers=range(P), delays=[0, 5.0]) as run:
        got = []
        for a in run:
            got.append(a.worker)
            run.limit(time.perf_counter() - run._t0 + 0.1)
    assert got == [0]
    _wait_idle(client, 3.0)
