"""Dask executor: blocks scattered once (ScatteredStacks), event-free undelayed runs,
fire-and-forget cancellation that still leaves nothing running."""

from __future__ import annotations

import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dask_mod = pytest.importorskip("gpucoded.executors.dask")


@pytest.fixture(scope="module")
def ex():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    yield dask_mod.DaskExecutor(c)
    c.close()
    cluster.close()


def _stacks(P=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((P, 5, 3)), rng.standard_normal((P, 3, 4))


def _answers(run):
    with run:
        return {a.worker: a.product for a in run if a.ok}


def test_scattered_once_serves_many_runs(ex):
    At, Bt = _stacks()
    h = ex.scatter_stacks(At, Bt)
    assert h.workers == [0, 1, 2, 3]
    assert set(h.placement.values()) == set(ex.addresses())  # spread over both workers
    for _ in range(2):
        run = ex.start(h, None, workers=range(4))
        assert run._data == []  # nothing scattered by the run itself
        got = _answers(run)
        for w in range(4):
            np.testing.assert_array_equal(got[w], At[w] @ Bt[w])
    # each block lives on its coded worker's Dask worker only
    who = ex.client.who_has([*h.a.values(), *h.b.values()])
    for w in range(4):
        assert set(who[h.a[w].key]) == {h.placement[w]} == set(who[h.b[w].key])


def test_run_needs_the_workers_it_was_given(ex):
    At, Bt = _stacks()
    h = ex.scatter_stacks(At, Bt, workers=[0, 2])
    with pytest.raises(ValueError, match=r"workers \[1\] have no scattered blocks"):
        ex.start(h, None, workers=[0, 1])
    h.release()
    assert h.workers == []


def test_undelayed_run_makes_no_event(ex):
    At, Bt = _stacks(seed=1)
    run = ex.start(At, Bt, workers=range(4))
    assert run._event_name is None
    assert len(_answers(run)) == 4
    run = ex.start(At, Bt, workers=range(4), delays=[0, 0.01, 0, 0])
    assert run._event_name is not None
    assert len(_answers(run)) == 4


def test_cancel_returns_at_once_and_releases_delayed_tasks(ex):
    At, Bt = _stacks(seed=2)
    h = ex.scatter_stacks(At, Bt)
    run = ex.start(h, None, workers=range(4), delays=[0, 30.0, float("inf"), 0])
    got = {}
    for a in run:
        got[a.worker] = a
        if len(got) == 2:
            break
    t0 = time.perf_counter()
    run.cancel()
    assert time.perf_counter() - t0 < 0.5  # no waiting on the cluster
    assert sorted(got) == [0, 3]

    def busy(dask_worker):
        return len(dask_worker.state.executing) + len(dask_worker.state.long_running)

    t0 = time.perf_counter()
    while sum(ex.client.run(busy).values()) or any(ex.client.processing().values()):
        assert time.perf_counter() - t0 < 10, "delayed tasks still running after cancel"
        time.sleep(0.02)
    # the scattered blocks survive a run's cancellation: reusable
    assert len(_answers(ex.start(h, None, workers=[1, 2]))) == 2
