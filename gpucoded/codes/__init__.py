"""Every code of the library, all on the one machinery of :mod:`gpucoded.codes.base`.

``make_code(name, m=..., P=..., **options)`` builds a code from its name; the names
are the keys of :data:`CODES`.
"""

from __future__ import annotations

import math
from typing import Any

from .base import BlockGrid, Code, DecodeInfo, DecodeWeights, EvaluationCode
from .chebyshev import ChebyshevMatDot
from .circle import CircleMatDot
from .hedged import Hedged
from .matdot import ApproxMatDot, MatDot
from .polydot import ApproxPolyDot, PolyDot
from .polynomial import PolynomialCode
from .replication import Replication, Uncoded

__all__ = [
    "CODES",
    "ApproxMatDot",
    "ApproxPolyDot",
    "BlockGrid",
    "ChebyshevMatDot",
    "CircleMatDot",
    "Code",
    "DecodeInfo",
    "DecodeWeights",
    "EvaluationCode",
    "Hedged",
    "MatDot",
    "PolyDot",
    "PolynomialCode",
    "Replication",
    "Uncoded",
    "make_code",
]

#: code name -> class
CODES: dict[str, type[Code]] = {
    "uncoded": Uncoded,
    "replication": Replication,
    "hedged": Hedged,
    "matdot": MatDot,
    "approx_matdot": ApproxMatDot,
    "polydot": PolyDot,
    "approx_polydot": ApproxPolyDot,
    "chebyshev": ChebyshevMatDot,
    "circle": CircleMatDot,
    "polynomial": PolynomialCode,
}


def _pq(m: int | None, p: int | None, q: int | None) -> tuple[int, int]:
    if p is not None and q is not None:
        if m is not None and m != p * q:
            raise ValueError(f"m={m} must equal p*q={p * q}")
        return p, q
    if m is None:
        raise ValueError("give m, or p and q")
    # the most square split p <= q with p*q = m (p = 1 for primes: MatDot)
    p = max(d for d in range(1, math.isqrt(m) + 1) if m % d == 0)
    return p, m // p


def make_code(
    name: str,
    *,
    m: int | None = None,
    P: int | None = None,
    p: int | None = None,
    q: int | None = None,
    r: int | None = None,
    **options: Any,
) -> Code:
    """Build a code from its name.

    Parameters
    ----------
    name : str
        One of :data:`CODES`.
    m : int
        Storage fraction 1/m (PolyDot: m = p*q; give p and q to choose the split).
    P : int
        Workers. Default: the recovery threshold + 1 (one straggler tolerated); m for
        uncoded, m·r for replication (r = 2 by default), 2m for hedged (m spares).
    options
        Passed to the code's constructor (``gamma``, ``eps``, ``norm_bound``,
        ``points``, ``decode_points``).
    """
    key = name.lower().replace("-", "_")
    if key not in CODES:
        raise ValueError(f"unknown code {name!r}; valid names: {', '.join(CODES)}")
    if key == "uncoded":
        if m is None:
            raise ValueError("uncoded needs m")
        if P is not None and P != m:
            raise ValueError(f"uncoded uses P = m = {m} workers, got P={P}")
        return Uncoded(m)
    if key == "replication":
        if m is None:
            raise ValueError("replication needs m")
        if r is None:
            r = 2 if P is None else P // m
        if P is not None and P != m * r:
            raise ValueError(f"replication needs P = m*r; got P={P}, m={m} (use r=P/m)")
        return Replication(m, r)
    if key == "hedged":
        return Hedged(m if m is not None else 2, P, **options)
    if key in ("matdot", "approx_matdot", "chebyshev", "circle"):
        if m is None:
            raise ValueError(f"{key} needs m")
        if P is None:
            P = m + 1 if key in ("approx_matdot", "circle") else 2 * m
        return CODES[key](m, P, **options)
    if key == "polynomial":
        if p is None or q is None:
            p, q = _pq(m, p, q)
        if P is None:
            P = p * q + 1
        return PolynomialCode(p, q, P, **options)
    p, q = _pq(m, p, q)
    if P is None:
        P = p * p * q + (1 if key == "approx_polydot" else q)
    return CODES[key](p, q, P, **options)
