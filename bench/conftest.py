"""pytest configuration of the benchmark suite (``python -m pytest bench``).

* Collects ``bench_*.py`` files (the root ``pyproject.toml`` only collects
  ``tests/test_*.py``), with the default ``Test*`` classes and ``test_*`` functions.
* ``--bench-quick`` (or ``GPUCODED_BENCH_QUICK=1``): tiny sizes and a single round,
  so the whole suite runs in seconds; CI uses it to prove the suite runs and asserts
  nothing about times. Benchmark modules read :func:`quick_mode` at import time.
* Registers the ``gpu`` and ``slow`` markers and skips ``gpu`` items without a
  device, as ``tests/conftest.py`` does.
* Adds the BLAS configuration (threadpoolctl), the OpenBLAS environment, the CPU
  model and the load average to pytest-benchmark's ``machine_info``, so that every
  JSON file says what it was measured on.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy  # noqa: F401  (BLAS initialised here, before a bench module can pin its threads)
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the suite runs from a checkout without an install
    sys.path.insert(0, str(ROOT))

QUICK_ENV = "GPUCODED_BENCH_QUICK"
BLAS_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)
#: BLAS environment and load average when the session started (before collection:
#: some bench modules set thread variables for their own script mode when imported).
_START: dict[str, Any] = {}


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def quick_mode() -> bool:
    """Whether the suite runs in quick mode (set by ``--bench-quick`` or the env var)."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        default=False,
        help="benchmark suite in quick mode: tiny sizes, one round (seconds; for CI)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--bench-quick", default=False):
        os.environ[QUICK_ENV] = "1"
    _START.setdefault("env", {k: os.environ.get(k) for k in BLAS_ENV})
    _START.setdefault("loadavg", loadavg())
    config.addinivalue_line("markers", "gpu: needs a CUDA device and CuPy (skipped otherwise)")
    config.addinivalue_line("markers", "slow: long-running benchmark")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` as test modules (unless pytest already does)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # given on the command line: the python plugin collects it
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from gpucoded.backend import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device / CuPy available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bench_quick() -> bool:
    """True in quick mode."""
    return quick_mode()


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded by NumPy (or [])."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    import mpmath

    machine_info["gpucoded"] = {
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadavg_at_start": _START.get("loadavg"),
        "loadavg_at_end": loadavg(),
        "numpy": numpy.__version__,
        "mpmath": mpmath.__version__,
        "blas": blas_info(),
        "env": _START.get("env", {}),
        "quick": quick_mode(),
    }
