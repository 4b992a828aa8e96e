"""The accuracy guard at the decode level: what the call pipeline does, without it.

:func:`guarded_decode` runs the guard's steps in the pipeline's order (format check
of the code, refusal of the hopeless, choice of the answers, weight overflow check,
decode, accuracy check) on answers computed in the worker dtype, and reports how
the result left: refused, warned, or silent, with its true error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from gpucoded import guard
from gpucoded.api import operand_norms
from gpucoded.errors import InaccurateResultWarning
from gpucoded.formats import get_format
from gpucoded.reference import exact_product
from gpucoded.studies.families import FAMILIES


@dataclass
class Outcome:
    kind: str  # "refused", "warned" or "silent"
    rel_error: float = np.nan  # max|C - AB| / max|AB| (NaN when refused)
    abs_error: float = np.nan
    bound: float | None = None
    used: tuple = ()
    message: str = ""


def operands(n, k, l, dtype, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, l)).astype(dtype)
    return A, B


def raw_decode(code, A, B, S):
    """The unguarded decode from the answers of S (what main returned): rel. error."""
    At, Bt = code.encode(A, B)
    with np.errstate(all="ignore"):
        C = code.decode([At[w] @ Bt[w] for w in S], S, shape=(A.shape[0], B.shape[1]))
        E = exact_product(A, B).astype(np.float64)
        return float(np.max(np.abs(C - E)) / np.max(np.abs(E)))


def guarded_decode(code, A, B, *, arrivals=None, failed=(), needed=None, fmt=None, E=None):
    """The guard's steps around one decode; ``arrivals``: usable answers in order.

    ``E``: the exact product, when the caller has it already."""
    fmt = get_format(A.dtype if fmt is None else fmt)
    try:
        code = guard.check_code_format(code, fmt)
        guard.check_feasible(code, fmt)
    except ValueError as exc:
        return Outcome("refused", message=str(exc))
    got = [w for w in (range(code.P) if arrivals is None else arrivals) if w not in failed]
    need = code.recovery_threshold if needed is None else needed
    S = guard.choose_answers(code, got, fmt, needed=need)
    try:
        guard.check_weights(code, code.decode_weights(S, fmt=fmt), fmt)
    except ValueError as exc:
        return Outcome("refused", message=str(exc), used=tuple(S))
    At, Bt = code.encode(A, B)
    prods = [At[w] @ Bt[w] for w in S]
    with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        C, info = code.decode(
            prods,
            S,
            shape=(A.shape[0], B.shape[1]),
            norms=operand_norms(code, A, B),
            inner=At.shape[2],
            fmt=fmt,
            return_info=True,
        )
        scale = float(np.max(np.abs(C))) if np.all(np.isfinite(C)) else np.nan
        guard.check_accuracy(info, scale, code=code, fmt=fmt)
        E = exact_product(A, B).astype(np.float64) if E is None else E
        abs_err = float(np.max(np.abs(C - E)))
        rel = abs_err / float(np.max(np.abs(E)))
    flagged = [w for w in caught if issubclass(w.category, InaccurateResultWarning)]
    kind = "warned" if flagged else "silent"
    msg = str(flagged[0].message) if flagged else ""
    return Outcome(kind, rel, abs_err, info.error_bound, tuple(S), msg)


# ------------------------------------------------------------------ data families


def family_operands(family, n, k, l, dtype, seed):
    """A (n, k) and B (k, l) drawn from ``FAMILIES[family]`` in ``dtype``."""
    rng = np.random.default_rng(seed)
    draw = FAMILIES[family]
    return draw(rng, (n, k)).astype(dtype), draw(rng, (k, l)).astype(dtype)
