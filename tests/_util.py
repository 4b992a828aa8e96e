"""Test helpers shared by the test modules."""

from __future__ import annotations

import numpy as np


def unit_gaussian(shape, seed, dtype=np.float64):
    """Gaussian matrix normalised to unit Frobenius norm (the paper's Fig. 1 inputs)."""
    X = np.random.default_rng(seed).standard_normal(shape)
    return (X / np.linalg.norm(X)).astype(dtype)
