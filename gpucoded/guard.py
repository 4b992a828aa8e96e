r"""The accuracy guard: no decoded product leaves the library silently wrong.

Every decode (``coded_matmul``, progressive decoding, operators, the GPU path) ends
here. The true product is unknown at run time, so the guard compares an *error
estimate* with the *scale of the result*:

* the result's scale :math:`s=\max|\hat C|`;
* the estimate :math:`e=\min(\text{bound},\ \text{typical})`, where ``bound`` is the
  decode's rigorous a-priori bound (:attr:`DecodeInfo.error_bound`: interpolation
  defect + first-order worst-case rounding in the worker format) and ``typical`` its
  typical-case counterpart (:attr:`DecodeInfo.estimate`, when the decode provides one);

**Rule.** The result is flagged when :math:`e > 10^{-2}\,s` (fewer than about two
correct digits relative to the largest entry) or when it is not finite while the
inputs were. ``on_inaccurate`` then decides: ``"warn"`` (default) emits
:class:`~gpucoded.errors.InaccurateResultWarning`, ``"raise"`` raises
:class:`~gpucoded.errors.InaccurateResultError`, ``"ignore"`` does nothing (the
estimate is still reported).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .errors import InaccurateResultError, InaccurateResultWarning
from .formats import Format

__all__ = ["ON_INACCURATE", "RTOL_GUARD", "check_accuracy", "relative_estimate"]

#: Relative error above which a result is flagged (about two correct digits).
RTOL_GUARD = 1e-2
ON_INACCURATE = ("warn", "raise", "ignore")


def check_mode(on_inaccurate: str) -> str:
    """Validate ``on_inaccurate`` before any work is done."""
    if on_inaccurate not in ON_INACCURATE:
        raise ValueError(
            f"on_inaccurate must be one of {', '.join(map(repr, ON_INACCURATE))}; "
            f"got {on_inaccurate!r}"
        )
    return on_inaccurate


def relative_estimate(info: Any, scale: float) -> float:
    """The decode's error estimate relative to ``scale`` (inf when scale is 0 or NaN)."""
    cands = [x for x in (info.error_bound, getattr(info, "estimate", None)) if x is not None]
    if not cands:
        return math.nan
    e = min(cands)
    if e == 0:
        return 0.0
    if not scale > 0 or not math.isfinite(scale):
        return math.inf
    return e / scale


def check_accuracy(
    info: Any,
    scale: float,
    *,
    code: Any,
    fmt: Format,
    on_inaccurate: str = "warn",
    stacklevel: int = 3,
) -> float:
    """Apply the rule of this module to one decode; return the relative estimate.

    Parameters
    ----------
    info : DecodeInfo
        The decode's report (``error_bound``, ``estimate``, ``cond``, ``workers``).
    scale : float
        :math:`\\max|\\hat C|` (NaN if the result is not finite).
    code : Code
        The code that decoded (named in the message).
    fmt : Format
        The worker format the answers were computed in.
    """
    rel = relative_estimate(info, scale)
    if on_inaccurate == "ignore" or not (rel > RTOL_GUARD or math.isnan(scale)):
        return rel
    msg = (
        f"{code!r} (m={code.m}) decoded from {len(info.workers)} answers "
        f"(workers {list(info.workers)}) in {fmt.name}: cond {info.cond:.2g}, estimated "
        f"error {rel:.2g} relative to max|C| = {scale:.3g}; the result may have fewer than "
        f"two correct digits. {suggest_fix(code, fmt, info)}"
    )
    if on_inaccurate == "raise":
        raise InaccurateResultError(msg, estimate=rel)
    warnings.warn(msg, InaccurateResultWarning, stacklevel=stacklevel)
    return rel


def suggest_fix(code: Any, fmt: Format, info: Any) -> str:
    """A concrete way out for an inaccurate decode of ``code``."""
    fixes = []
    if getattr(code, "approximate", False):
        fixes.append("gamma='auto' (points tuned for the worker format)")
        fixes.append("more answers (answers=...)")
    if getattr(code, "basis", None) == "monomial":
        fixes.append("a Chebyshev code (code='chebyshev')")
    fixes.append(f"a smaller m than {code.m}")
    if fmt.name != "float64":
        fixes.append("float64 workers")
    return "Fix: use " + ", or ".join(fixes) + "; on_inaccurate='ignore' silences this."
