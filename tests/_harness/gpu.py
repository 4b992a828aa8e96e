"""GPU availability for tests marked ``gpu`` (skip cleanly without CuPy or a device)."""

from __future__ import annotations

import pytest


def _reason() -> str | None:
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
