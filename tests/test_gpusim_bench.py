"""bench/bench_gpu.py on the simulated device: its timing rules (issue 25, defect 5).

The simulator's device-time model makes event deltas show device time and, between
launches, the host's gaps; these tests check that the benchmark's kernel windows hold
the device work alone and that the summary runs end to end (the device check's dry run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpusim

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_gpu  # noqa: E402

HOST_GAP = 0.05  # s of host work before the launch


def _old_time_events(fn, reps=3):
    """The benchmark's window before the fix: start event on an idle stream, then fn."""
    import cupy as cp

    s = cp.cuda.get_current_stream()
    out = []
    for _ in range(reps):
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record(s)
        fn()
        e1.record(s)
        e1.synchronize()
        out.append(cp.cuda.get_elapsed_time(e0, e1) / 1e3)
    return min(out)


def test_event_window_excludes_host_launch_time(sim):
    import cupy as cp

    from gpucoded import kernels as K

    sim.max_delay = 0.0
    X = cp.zeros((64, 64))
    G = cp.ones((3, 2))
    out = cp.empty((3, 64, 32))

    def launch():  # host work before the launch, as a real launch path has
        time.sleep(HOST_GAP)
        K.encode(X, G, (1, 2), out=out)

    assert _old_time_events(launch) >= HOST_GAP  # the host's gap sat in the window
    dev, host, covered = bench_gpu.timed_launch(launch, reps=3, warmup_s=0.2)
    assert covered and host >= HOST_GAP
    assert dev < HOST_GAP / 2  # the window holds the device work, not the host's gap


def test_summary_runs_on_the_simulated_device(sim, tmp_path, monkeypatch):
    """The device check's benchmark step end to end (tiny sizes): every case, no error."""
    monkeypatch.setattr(bench_gpu, "WARMUP_S", 0.02)
    sim.max_delay = 0.0
    rows = bench_gpu.summary(quick=True, sizes=(32,))
    assert rows and not [r for r in rows if "error" in r], [r for r in rows if "error" in r]
    e2e = [r for r in rows if r["op"] == "coded_matmul"]
    assert e2e and all(r["rel_error"] < 1e-5 for r in e2e)
    assert all("host_call_s" in r and "encode_launch_host_s" in r for r in e2e)
    bench_gpu.write(rows, tmp_path)
    assert (tmp_path / "bench_gpu.json").is_file()
    assert "coded_matmul" in bench_gpu.table(rows)
