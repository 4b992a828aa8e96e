"""Operand families for trust studies: users' data is rarely zero-mean Gaussian.

``FAMILIES`` maps a name to a sampler ``(rng, shape) -> array``: Gaussian, and the
non-negative, non-centred, sparse and heavy-tailed data of issue 20 (pixels as stored
and scaled, counts, probabilities, one-hot rows). ``FAMILY_CODES`` is the set of codes
the accuracy guard is measured on across them: exact well-conditioned codes (never to
be flagged) and codes that may miss 1e-2 (to be flagged when they do). The tests and
``bench/bench_trust.py`` draw from these, so the table in docs/RESULTS.md and the
property tests speak of the same data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["FAMILIES", "FAMILY_CODES", "one_hot"]


def one_hot(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Rows with a single 1 in a random column."""
    X = np.zeros(shape)
    X[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] = 1.0
    return X


#: name -> sampler(rng, shape)
FAMILIES: dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]] = {
    "gaussian": lambda rng, s: rng.standard_normal(s),
    "uniform [0,1)": lambda rng, s: rng.random(s),
    "pixels uint8/255": lambda rng, s: rng.integers(0, 256, size=s) / 255.0,
    "exponential": lambda rng, s: rng.exponential(size=s),
    "gaussian mean 5": lambda rng, s: 5.0 + rng.standard_normal(s),
    "sparse 0/1": lambda rng, s: (rng.random(s) < 0.1).astype(float),
    "one-hot rows": one_hot,
    "student t (3)": lambda rng, s: rng.standard_t(3, size=s),
}

#: (code name, options, exact and well conditioned)
FAMILY_CODES: list[tuple[str, dict, bool]] = [
    ("chebyshev", {"m": 4, "P": 9}, True),
    ("matdot", {"m": 3, "P": 7}, True),
    ("polynomial", {"p": 2, "q": 2, "P": 6}, True),
    ("polydot", {"p": 2, "q": 3, "P": 20}, False),
    ("matdot", {"m": 10, "P": 20}, False),
    ("approx_matdot", {"m": 3, "P": 5}, False),
    ("approx_matdot", {"m": 8, "P": 10}, False),
    ("approx_polydot", {"p": 2, "q": 2, "P": 10}, False),
]
