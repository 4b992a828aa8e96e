"""Every code of the library, all on the one machinery of :mod:`gpucoded.codes.base`.

``make_code(name, m=..., P=..., **options)`` builds a code from its name; the names
are the keys of :data:`CODES`, the registry a family joins with
``@gpucoded.codes.register("name")`` (:mod:`gpucoded.codes.registry`).
"""

from __future__ import annotations

from .base import Code
from .decoding import DecodeInfo, DecodeWeights, WeightSolution, rounding_level
from .evaluation import EvaluationCode
from .grid import BlockGrid
from .registry import CODES, lookup, make_code, register, registered_elsewhere

# the built-in families register themselves on import (this order lists their names)
from .replication import Replication, Uncoded  # isort: skip
from .hedged import Hedged  # isort: skip
from .matdot import ApproxMatDot, MatDot  # isort: skip
from .polydot import ApproxPolyDot, PolyDot  # isort: skip
from .chebyshev import ChebyshevMatDot  # isort: skip
from .circle import CircleMatDot  # isort: skip
from .polynomial import PolynomialCode  # isort: skip

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
    "WeightSolution",
    "lookup",
    "make_code",
    "register",
    "registered_elsewhere",
    "rounding_level",
]
