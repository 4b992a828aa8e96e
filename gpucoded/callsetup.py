r"""The one call set-up of every entry point: code, default, options, format, shape.

:func:`gpucoded.coded_matmul`, :class:`gpucoded.CodedMatrix` (at construction and per
product), :func:`gpucoded.progressive.progressive_matmul` and the CUDA path (a CuPy
call through any of them) set up a call here, once, the same way:

1. the executor (:func:`gpucoded.executors.get_executor`) and the format its workers
   compute in for the result dtype (``Executor.compute_format``);
2. the code (:func:`resolve_code`): an instance as given; a name with its options
   (default :data:`DEFAULT_CODE`, m = :data:`DEFAULT_M`), ε-codes tuned for that
   format; ``"auto"`` chosen for that format, P, stragglers, rtol and the product's
   shape (n, k, l);
3. the call options (:func:`check_call`), with one rule for ``answers``: a code
   chosen by ``"auto"`` waits for the answers its prediction assumes
   (:func:`default_answers`);
4. the code fitted to the format (:func:`fit_code`): refused before any worker runs
   when no answer set can be decoded accurately, an ε-code tuned for another format
   retuned;
5. the ending (:func:`deliver`): ``out[...] = C`` and ``(C, CallInfo)`` with
   ``return_info``.

Warnings point at the user's line by one mechanism,
:func:`gpucoded.errors.warn_user` (frames are walked out of the package).

Caches, so that a repeated call solves and builds nothing (each bounded and
thread-safe, :class:`BoundedCache`):

* :data:`NAMED_CODES`: code instances built from a name, keyed by the name, m, P and
  the code options (and the worker dtype an ε-code is tuned for). A code instance
  keeps its decode weights per answer set and format, so a repeated
  ``coded_matmul(A, B, "approx_matdot", m=4, P=6)`` reuses the weights of the first;
* :data:`AUTO_CHOICES`: ``code="auto"``'s choice per (P, stragglers, format, rtol,
  shape, latency model);
* :data:`FITTED`: the fitted code per (code, format, ``allow_inaccurate``), weakly
  keyed by the code (an entry lives as long as its code) and at most
  :data:`FITS_PER_CODE` per code.
"""

from __future__ import annotations

import math
import numbers
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import guard, probes
from .codes import CODES, Code, lookup, make_code
from .executors import get_executor
from .executors.base import Executor, check_delays
from .formats import Format, get_format
from .integrity import verify_ready

__all__ = [
    "AUTO_CHOICES",
    "CALL_OPTIONS",
    "DEFAULT_CODE",
    "DEFAULT_M",
    "FITTED",
    "NAMED_CODES",
    "BoundedCache",
    "Call",
    "Setup",
    "check_call",
    "check_feasible",
    "default_answers",
    "deliver",
    "fit_code",
    "named_code",
    "resolve_code",
    "set_up",
]

#: Keyword options of one call (``coded_matmul``, ``CodedMatrix.matmul``), besides the
#: code's own options.
CALL_OPTIONS = (
    "failed",
    "delays",
    "executor",
    "answers",
    "deadline",
    "nonfinite",
    "verify",
    "check",
    "on_inaccurate",
    "allow_inaccurate",
    "wait_for_accuracy",
    "return_info",
    "out",
)
#: Keywords of :func:`gpucoded.codes.make_code` besides the constructors' own.
_MAKE_CODE_OPTIONS = ("p", "q", "r")


@dataclass
class Call:
    """The validated options of one call (see :func:`gpucoded.coded_matmul`)."""

    failed: frozenset[int] = frozenset()
    delays: list[float] | None = None
    deadline: float | None = None
    answers: int | None = None
    nonfinite: str = "raise"
    verify: str | None = None
    #: measure each product's error (``"probes"``, :mod:`gpucoded.probes`) or not
    check: str | None = "probes"
    on_inaccurate: str = "warn"
    allow_inaccurate: bool = False
    wait_for_accuracy: float | None = None
    return_info: bool = False
    out: Any = None


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"{name} must be >= 0 seconds (or None for no limit), got {value!r}")
    return v


def _failed_set(failed: Any, P: int) -> frozenset[int]:
    """``failed`` as a set of worker indices: an int or an iterable of ints in [0, P)."""
    if failed is None:
        return frozenset()
    items = [failed] if isinstance(failed, numbers.Integral | np.integer) else failed
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise TypeError(
            f"failed must be a worker index or a list of worker indices, got {failed!r}"
        )
    out = set()
    for w in items:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral | np.integer):
            raise TypeError(
                f"failed worker indices must be integers, got {w!r} ({type(w).__name__}) "
                f"in failed={failed!r}"
            )
        if not 0 <= int(w) < P:
            raise ValueError(f"failed worker index {int(w)} out of range [0, {P})")
        out.add(int(w))
    return frozenset(out)


def check_call(code: Code, **options: Any) -> Call:
    """Validate the call options against ``code`` before any work.

    Raises
    ------
    TypeError
        An unknown option (the message lists the valid ones), or a value of the
        wrong type (``failed=[1.5]``).
    ValueError
        A value out of range (negative ``deadline``, ``answers`` outside
        [threshold, P], a worker index ≥ P, unknown mode).
    """
    from .validate import check_count

    unknown = sorted(set(options) - set(CALL_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; valid: {', '.join(CALL_OPTIONS)}")
    c = Call(**options)
    c.failed = _failed_set(c.failed, code.P)
    c.delays = check_delays(c.delays, code.P)
    c.deadline = _seconds("deadline", c.deadline)
    c.wait_for_accuracy = _seconds("wait_for_accuracy", c.wait_for_accuracy)
    c.answers = check_count("answers", c.answers)
    if c.answers is not None and not code.recovery_threshold <= c.answers <= code.P:
        raise ValueError(
            f"answers={c.answers} must be between the recovery threshold "
            f"{code.recovery_threshold} and P={code.P}"
        )
    if c.nonfinite not in ("raise", "propagate"):
        raise ValueError(f"nonfinite must be 'raise' or 'propagate', got {c.nonfinite!r}")
    verify_ready(c.verify, None, ())  # refuses an unknown mode
    guard.check_mode(c.on_inaccurate)
    probes.check_mode(c.check)
    if not isinstance(c.allow_inaccurate, bool):
        raise TypeError(f"allow_inaccurate must be True or False, got {c.allow_inaccurate!r}")
    return c


def code_option_names(name: str) -> list[str]:
    """Keyword options a code built by ``name`` accepts (its constructor's and make_code's)."""
    cls = CODES.get(name.lower().replace("-", "_"))
    return [] if cls is None else cls.option_names()  # the family's declared options


def resolve_code(
    code: str | Code | None,
    m: int | None,
    P: int | None,
    options: dict[str, Any],
    dtype: Any = None,
    *,
    fmt: Format | None = None,
    shape: tuple[int, int, int] | None = None,
) -> Code:
    """The code of a call: an instance (checked against m, P) or built from its name.

    ``None`` is the exact default, :data:`DEFAULT_CODE`; ``"auto"`` the lightest code
    meeting ``options["rtol"]`` with ``options["stragglers"]`` (default 1) of P
    workers missing, for workers in ``fmt`` and a product of ``shape`` (n, k, l), ranked
    by expected time under ``options["latency"]`` when given
    (:func:`gpucoded.autocode.choose_code`). Unknown code options raise a
    ``TypeError`` naming them and listing the valid call and code options.
    """
    from .validate import check_count

    m, P = check_count("m", m), check_count("P", P)
    auto = {k: options.pop(k) for k in ("stragglers", "rtol", "latency") if k in options}
    if code == "auto":
        return auto_code(m, P, auto, options, fmt or get_format(dtype or "float64"), shape)
    if any(v is not None for v in auto.values()):
        raise TypeError(f"{sorted(auto)} only apply with code='auto'")
    if code is None:
        code = DEFAULT_CODE
    if isinstance(code, str):
        valid = code_option_names(code)
        unknown = sorted(k for k in options if k not in valid)
        if valid and unknown:
            raise TypeError(
                f"unknown keyword(s) {unknown}; call options: {', '.join(CALL_OPTIONS)}; "
                f"options of code {code!r}: {', '.join(valid)}"
            )
    for key in _MAKE_CODE_OPTIONS:
        if key in options:
            options[key] = check_count(key, options[key])
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(code, Code):
        if options:
            raise TypeError(
                f"code options {sorted(options)} are only accepted with a code name; "
                f"configure the {type(code).__name__} instance instead (call options: "
                f"{', '.join(CALL_OPTIONS)})"
            )
        if m is not None and m != code.m:
            raise ValueError(f"m={m} conflicts with the code's m={code.m}")
        if P is not None and P != code.P:
            raise ValueError(f"P={P} conflicts with the code's P={code.P}")
        return code
    if not isinstance(code, str):
        raise TypeError(f"code must be a code name or a gpucoded.codes.Code, got {type(code)}")
    if m is None and "p" not in options:
        m = DEFAULT_M
    if lookup(code).tunes_to_format and dtype is not None:
        # tune the default/auto evaluation points for the arithmetic the workers do
        options.setdefault("dtype", dtype)
    return named_code(code, m, P, options)


def auto_code(
    m: int | None, P: int | None, auto: dict, options: dict, fmt: Format, shape: Any
) -> Code:
    """``code="auto"``: checks its options, then :func:`gpucoded.autocode.choose_code`."""
    from .autocode import choose_code
    from .validate import check_count

    if options or m is not None:
        extra = sorted(options) + (["m"] if m is not None else [])
        raise TypeError(f"code='auto' chooses the code and m itself; drop {extra}")
    if P is None:
        raise TypeError(
            "code='auto' needs P= (workers) and optionally stragglers=, rtol=, latency="
        )
    s = auto.get("stragglers")
    s = 1 if s is None else check_count("stragglers", s, minimum=0)
    rtol, shape, lat = auto.get("rtol"), tuple(shape or (100, 100, 100)), auto.get("latency")
    key = _freeze(("auto", P, s, fmt.name, rtol, shape, lat))
    if key is None:  # an rtol that is not a plain number: choose_code refuses or copes
        return choose_code(P, s, fmt, rtol=rtol, shape=shape, latency=lat).code
    return AUTO_CHOICES.get(
        key, lambda: choose_code(P, s, fmt, rtol=rtol, shape=shape, latency=lat).code
    )


#: The code of a call without one: exact, Chebyshev points (well conditioned).
DEFAULT_CODE = "chebyshev"
#: Storage fraction 1/m of a call naming a code without m.
DEFAULT_M = 2


# ------------------------------------------------------------------- caches
_MISSING = object()


class BoundedCache:
    """A thread-safe least-recently-used map of at most ``maxsize`` entries.

    :meth:`get` builds a missing value outside the lock (a slow build, such as a
    code whose construction solves for its points, does not hold up other calls);
    when two threads build the same key at once, the first stored wins and both
    return it.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value of ``key``, made by ``make()`` (and stored) when missing."""
        with self._lock:
            value = self._items.get(key, _MISSING)
            if value is not _MISSING:
                self._items.move_to_end(key)
                self.hits += 1
                return value
        value = make()
        with self._lock:
            self.misses += 1
            value = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > max(0, self.maxsize):
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


class FitCache:
    """Per code object (weakly referenced), a small map: key -> fitted code.

    An entry dies with its code (a user's instance, or a named code evicted from
    :data:`NAMED_CODES`). A fit that is the code itself is stored as a marker, not
    as a reference to the code (which would keep the weak key alive). At most
    ``per_code`` keys per code (formats × ``allow_inaccurate`` × checks: a handful).
    """

    def __init__(self, per_code: int) -> None:
        self.per_code = per_code
        self._fits: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, code: Code, key: Hashable, make: Callable[[], Any]) -> Any:
        try:
            with self._lock:
                fits = self._fits.get(code)
                if fits is not None and key in fits:
                    hit = fits[key]
                    return code if hit is _MISSING else hit
        except TypeError:  # a code class that cannot be weakly referenced or hashed
            return make()
        value = make()
        with self._lock:
            fits = self._fits.setdefault(code, {})
            if len(fits) >= self.per_code:
                fits.clear()
            fits[key] = _MISSING if value is code else value
        return value

    def __len__(self) -> int:
        return len(self._fits)

    def entries(self, code: Code) -> int:
        """Keys stored for ``code``."""
        return len(self._fits.get(code, ()))

    def clear(self) -> None:
        with self._lock:
            self._fits.clear()


#: Named codes kept (each with its decode weights): a few dozen configurations.
CODE_CACHE_SIZE = 32
#: ``code="auto"`` choices kept.
AUTO_CACHE_SIZE = 256
#: Fits kept per code object.
FITS_PER_CODE = 16

NAMED_CODES = BoundedCache(CODE_CACHE_SIZE)
AUTO_CHOICES = BoundedCache(AUTO_CACHE_SIZE)
FITTED = FitCache(FITS_PER_CODE)


def _freeze(x: Any) -> Hashable | None:
    """A hashable key for ``x`` (nested dicts, sequences, arrays), or None if ``x``
    holds something unhashable (then the call is not cached)."""
    try:
        return _frozen(x)
    except TypeError:
        return None


def _frozen(x: Any) -> Hashable:
    if isinstance(x, dict):
        return ("dict", tuple(sorted((str(k), _frozen(v)) for k, v in x.items())))
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(_frozen(v) for v in x))
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, x.shape, x.tobytes())
    hash(x)  # TypeError for anything else unhashable
    return (type(x).__name__, x)


def named_code(name: str, m: int | None, P: int | None, options: dict[str, Any]) -> Code:
    """``make_code(name, m=m, P=P, **options)``, shared by every call with the same
    parameters (:data:`NAMED_CODES`); options that cannot be keyed build a new code."""
    key = _freeze((name.lower().replace("-", "_"), m, P, options))
    if key is None:
        return make_code(name, m=m, P=P, **options)
    return NAMED_CODES.get(key, lambda: make_code(name, m=m, P=P, **options))

def fit_code(code: Code, executor: Executor, dtype: Any, call: Call) -> tuple[Code, Format]:
    """The code to run for ``executor``'s worker format, and that format.

    :meth:`~gpucoded.executors.base.Executor.compute_format` gives the format the
    workers compute in for result dtype ``dtype``; a code that cannot give a usable
    product in it is refused before any work (:func:`gpucoded.guard.check_feasible`,
    unless ``call.allow_inaccurate``), and an ε-code tuned for another format is
    retuned or refused (:func:`gpucoded.guard.check_code_format`).
    """
    fmt = executor.compute_format(dtype)
    return FITTED.get(code, (fmt.name, call.allow_inaccurate), lambda: _fit(code, fmt, call)), fmt


def _fit(code: Code, fmt: Format, call: Call) -> Code:
    try:
        return guard.check_code_format(code, fmt)  # retunes first, then check_feasible
    except ValueError:
        if not call.allow_inaccurate:
            raise
        guard.check_feasible(code, fmt, allow_inaccurate=True)  # still refuses overflow
    return code


def check_feasible(code: Code, fmt: Format, allow_inaccurate: bool) -> None:
    """:func:`gpucoded.guard.check_feasible`, once per (code, format, allow_inaccurate).

    For an operator whose code is fixed (its encoded side must not change) and whose
    result dtype may differ from one call to the next.
    """

    def check() -> None:
        guard.check_feasible(code, fmt, allow_inaccurate=allow_inaccurate)

    FITTED.get(code, ("feasible", fmt.name, allow_inaccurate), check)


def default_answers(code: Code, call: Call) -> Call:
    """The one ``answers`` rule: a code chosen by ``code="auto"`` waits, unless told
    otherwise, for the answers its prediction assumed."""
    choice = code.auto_choice
    if call.answers is None and choice is not None:
        call.answers = choice.answers
    return call


# ------------------------------------------------------------------ the set-up
@dataclass
class Setup:
    """A call set up: the fitted code, the worker format, the executor, the result
    dtype and the validated call options."""

    code: Code
    fmt: Format
    executor: Executor
    dtype: np.dtype
    call: Call


def set_up(
    code: str | Code | None,
    m: int | None,
    P: int | None,
    code_options: dict[str, Any],
    *,
    executor: Any,
    like: Any,
    dtype: Any,
    shape: tuple[int, int, int],
    call_options: dict[str, Any],
) -> Setup:
    r"""Resolve executor, format, code, call options and the fit, once per call.

    Parameters
    ----------
    code, m, P, code_options
        As given to the entry point (``code_options`` may hold ``stragglers`` and
        ``rtol`` and ``latency`` for ``code="auto"``; it is consumed).
    executor : Executor, str or None
        As given (see :func:`gpucoded.executors.get_executor`).
    like : array
        An operand (NumPy or CuPy: selects the default executor).
    dtype : dtype
        The result dtype of the product; the worker format is
        ``executor.compute_format(dtype)``.
    shape : (n, k, l)
        The 2-D product's shape (``code="auto"`` predicts for it).
    call_options : dict
        The call options (:data:`CALL_OPTIONS` without ``executor``).
    """
    ex = get_executor(executor, like=like)
    fmt = ex.compute_format(dtype)
    c = resolve_code(code, m, P, code_options, dtype, fmt=fmt, shape=shape)
    call = default_answers(c, check_call(c, **call_options))
    c, fmt = fit_code(c, ex, dtype, call)
    return Setup(c, fmt, ex, np.dtype(dtype), call)


def deliver(C: Any, call: Call, info: Any) -> Any:
    """The ending of every call: ``out[...] = C`` with ``out=``, and ``(C, info)``
    with ``return_info=True``."""
    if call.out is not None:
        call.out[...] = C
        C = call.out
    return (C, info) if call.return_info else C
