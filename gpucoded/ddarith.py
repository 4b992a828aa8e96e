r"""Double-double arithmetic on NumPy arrays (about 106 bits, elementwise).

A double-double is a pair (hi, lo) of float64 arrays with :math:`x=hi+lo`,
:math:`|lo|\le u|hi|`. The error-free transformations of Knuth (:func:`two_sum`:
:math:`a+b=s+e` exactly) and Dekker (:func:`two_prod`: :math:`ab=p+e` exactly, by
splitting each factor at 27 bits) give sums and products with a relative error of a
few :math:`u^2=2^{-106}` (Hida, Li and Bailey's accurate variants). Used by the decode
weights' iterative refinement (:mod:`gpucoded.weights`) and the batched study weights
(:mod:`gpucoded.studies.fastweights`). Arguments broadcast like NumPy's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dd_add", "dd_div", "dd_mul", "dd_neg", "split", "two_prod", "two_sum"]

DD = tuple[np.ndarray, np.ndarray]

_SPLIT = 134217729.0  # 2**27 + 1 (Dekker)


def two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """(s, e) with s = fl(a + b) and a + b = s + e exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def split(a: np.ndarray) -> DD:
    """(hi, lo) with a = hi + lo exactly, each of at most 26 significant bits (Dekker)."""
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: np.ndarray, b: np.ndarray) -> DD:
    """(p, e) with p = fl(a·b) and a·b = p + e exactly (Dekker, no FMA)."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _renorm(s: np.ndarray, e: np.ndarray) -> DD:
    hi = s + e
    return hi, e - (hi - s)


def dd_add(x: DD, y: DD) -> DD:
    """Double-double sum x + y (accurate variant: two two_sums)."""
    s, e = two_sum(x[0], y[0])
    t, f = two_sum(x[1], y[1])
    s, e = _renorm(s, e + t)
    return _renorm(s, e + f)


def dd_mul(x: DD, y: DD) -> DD:
    """Double-double product x·y."""
    p, e = two_prod(x[0], y[0])
    return _renorm(p, e + (x[0] * y[1] + x[1] * y[0]))


def dd_neg(x: DD) -> DD:
    """−x."""
    return -x[0], -x[1]


def dd_div(x: DD, y: DD) -> DD:
    """Double-double quotient x / y (three quotient digits, two correction steps)."""
    q1 = x[0] / y[0]
    r = dd_add(x, dd_neg(dd_mul((q1, np.zeros_like(q1)), y)))
    q2 = r[0] / y[0]
    r = dd_add(r, dd_neg(dd_mul((q2, np.zeros_like(q2)), y)))
    q3 = r[0] / y[0]
    q = _renorm(q1, q2)
    return dd_add(q, (q3, np.zeros_like(q3)))
