"""Dask executor under a saturated thread pool: a straggler never waits for a pool slot.

A delayed task secedes from the worker's thread pool while it waits. It used to
``rejoin`` the pool before its GEMM, and ``rejoin`` blocks until one of the pool's
threads finishes a task: on a saturated in-process cluster the straggler's answer
then depended on unrelated tasks, and a cycle (a pool thread waiting, directly or
not, for that answer) froze the call with no CPU use. These tests bound every wait
(the run's ``timeout``, a subprocess ``timeout``), so a regression fails, never hangs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dask_mod = pytest.importorskip("gpucoded.executors.dask")

#: released by the test once it has the straggler's answer (or gave up waiting)
_GATE = threading.Event()


def _hold_pool_thread(limit: float) -> bool:
    """Occupy one of the worker's pool threads until the test opens the gate."""
    return _GATE.wait(limit)


def _states(client) -> dict[str, list[str]]:
    def look(dask_worker):
        st = dask_worker.state
        return {
            "executing": [str(t.key) for t in st.executing],
            "long_running": [str(t.key) for t in st.long_running],
        }

    (out,) = client.run(look).values()
    return out


def _until(cond, limit: float, what: str) -> None:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > limit:
            pytest.fail(f"setup: {what} not reached in {limit} s")
        time.sleep(0.01)


def test_straggler_answers_while_every_pool_thread_is_busy():
    """One Dask worker with one thread: coded worker 0 is 1.5 s late (seceded), then
    a task takes the only pool thread and holds it until the straggler has answered.

    The answer must come: the straggler computes on its own thread. With ``rejoin``
    it waited for the held thread, which waited for the answer: a deadlock (here cut
    by the run's 30 s timeout, so the test fails instead of hanging).
    """
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster, set_as_default=False)
    _GATE.clear()
    run = None
    try:
        ex = dask_mod.DaskExecutor(client)
        At = np.arange(2 * 8 * 8, dtype=float).reshape(2, 8, 8)
        Bt = np.ones((2, 8, 8))
        run = ex.start(At, Bt, workers=[0], delays=[1.5, 0.0], timeout=30.0)
        _until(lambda: _states(client)["long_running"], 30.0, "the straggler seceded")
        holder = client.submit(_hold_pool_thread, 60.0, pure=False)
        _until(lambda: holder.key in _states(client)["executing"], 30.0, "pool thread held")
        answers = list(run)  # bounded by the run's timeout
        assert [a.worker for a in answers] == [0], "the straggler never answered"
        assert answers[0].error is None
        np.testing.assert_array_equal(answers[0].product, At[0] @ Bt[0])
    finally:
        _GATE.set()
        if run is not None:
            run.cancel()
        client.close()
        cluster.close()


_STRESS = textwrap.dedent(
    """
    import faulthandler, random, sys, threading
    import numpy as np
    import distributed
    from gpucoded.executors.dask import DaskExecutor

    faulthandler.dump_traceback_later(float(sys.argv[1]), exit=True)  # a hang: stacks, rc 1
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    ex = DaskExecutor(client)
    P = 8
    At, Bt = np.ones((P, 16, 16)), np.ones((P, 16, 16))
    delays = [0.0, 0.0, 0.002, 0.01, 0.03, 0.1, float("inf")]

    def caller(seed):
        rng = random.Random(seed)
        for _ in range(25):
            d = [rng.choice(delays) for _ in range(P)]
            keep = rng.randint(0, P)
            with ex.start(At, Bt, workers=range(P), delays=d, timeout=20.0) as run:
                for i, _a in enumerate(run):
                    if i + 1 >= keep:
                        break
    ths = [threading.Thread(target=caller, args=(s,)) for s in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    client.close()
    cluster.close()
    print("ok")
    """
)


def test_many_concurrent_delayed_and_cancelled_runs_do_not_stall(tmp_path):
    """4 callers x 25 runs of P = 8 tasks (delays 0 to 0.1 s, some never answer, each
    run cancelled after a random number of answers) on 2 Dask workers x 1 thread.

    Run in a subprocess with a watchdog: a stall dumps every thread's stack and the
    test fails with it, instead of hanging the suite.
    """
    script = tmp_path / "stress.py"
    script.write_text(_STRESS)
    env = dict(os.environ, PYTHONPATH=str(Path(dask_mod.__file__).parents[2]))
    try:
        proc = subprocess.run(
            [sys.executable, str(script), "240"],
            capture_output=True, text=True, timeout=300, env=env,
        )
    except subprocess.TimeoutExpired as e:  # pragma: no cover - the watchdog fires first
        pytest.fail(f"the stress run stalled:\n{e.stderr}")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-6000:]
