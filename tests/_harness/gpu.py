"""GPU availability for tests marked ``gpu`` (skip cleanly without CuPy or a device).

``GPUCODED_GPUSIM_GPU_TESTS=1`` (or ``pytest --gpusim-gpu-tests``) runs the ``gpu``-marked
tests on the simulated device instead (``tests/_harness/cudasim.py``, installed as
``cupy`` around each such test by ``tests/conftest.py``), so CI exercises them.
"""

from __future__ import annotations

import os

import pytest

#: the switch: run ``gpu``-marked tests on the simulated device
ENV = "GPUCODED_GPUSIM_GPU_TESTS"


def on_sim() -> bool:
    """Whether ``gpu``-marked tests run on the simulated device (the switch is on)."""
    return os.environ.get(ENV, "0") not in ("", "0")


def _reason() -> str | None:
    if on_sim():
        return None
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install
        return f"cupy not importable: {e}"
    try:
        if not cupy.cuda.is_available():
            return "cupy.cuda.is_available() is False (no CUDA device)"
    except Exception as e:  # pragma: no cover
        return f"CUDA not usable: {e}"
    return None


REASON = _reason()
#: apply as ``pytestmark = [pytest.mark.gpu, requires_gpu]``
requires_gpu = pytest.mark.skipif(REASON is not None, reason=REASON or "")
