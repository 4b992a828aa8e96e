"""Shared fixtures and GPU skipping (gpu-marked tests skip without a device).

With ``GPUCODED_GPUSIM_GPU_TESTS=1`` or ``--gpusim-gpu-tests`` the ``gpu``-marked tests
run on the simulated device (installed as ``cupy`` around each of them) instead of
being skipped.
"""

from __future__ import annotations

import os

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--gpusim-gpu-tests",
        action="store_true",
        help="run the gpu-marked tests on the simulated CUDA device (tests/_harness/cudasim.py)",
    )


def pytest_configure(config):
    if config.getoption("--gpusim-gpu-tests", default=False):
        os.environ["GPUCODED_GPUSIM_GPU_TESTS"] = "1"  # before test modules import _harness.gpu


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    from _harness.gpu import on_sim

    from gpucoded.backend import gpu_available

    if on_sim():
        for item in items:
            if item.get_closest_marker("gpu") is not None:
                item.fixturenames.insert(0, "_gpu_test_on_sim")
        return
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device / CuPy available")
    for item in items:
        # the marker, not the keyword: a checkout in a folder named "gpu" would match
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def _gpu_test_on_sim(sim):
    """A ``gpu``-marked test running on the simulated device (the switch is on)."""
    return sim


@pytest.fixture
def sim(monkeypatch):
    """The simulated CUDA device (``tests/_harness/cudasim.py``) installed as ``cupy``."""
    from _harness import cudasim

    s = cudasim.install(monkeypatch)
    yield s
    s.teardown()


@pytest.fixture
def stack_spy(sim, monkeypatch):
    """List that records the largest ndim of every ``cupy.stack`` call of the test
    (a decode that stacks its (rb, db) answers shows up as a 2)."""
    import cupy as cp

    stacked: list[int] = []
    real = cp.stack

    def spy(arrays, *a, **k):
        stacked.append(max(x.ndim for x in arrays))
        return real(arrays, *a, **k)

    monkeypatch.setattr(cp, "stack", spy, raising=False)
    return stacked
