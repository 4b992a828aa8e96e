r"""The code registry: code name -> family class, and building a code from its name.

A family is a :class:`~gpucoded.codes.base.Code` subclass that declares what it is
(traits on the class: ``approximate``, ``basis``, ``grid_args``, :meth:`~Code.default_P`,
:meth:`~Code.retuned`, ...) and registers itself::

    @gpucoded.codes.register("my_code")
    class MyCode(EvaluationCode):
        ...

after which ``coded_matmul(A, B, "my_code", m=..., P=...)``, :func:`make_code`, the
``gpucoded advise`` study and the error messages listing the valid names know it;
nothing else in the library names a family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .base import Code

__all__ = ["CODES", "lookup", "make_code", "register", "registered_elsewhere"]

#: code name -> class (the registered families, in registration order).
CODES: dict[str, type[Code]] = {}

C = TypeVar("C", bound=type[Code])


def _key(name: str) -> str:
    """The registry key of a code name (case and ``-``/``_`` do not matter)."""
    return name.lower().replace("-", "_")


def register(name: str, *, replace: bool = False) -> Callable[[C], C]:
    """Class decorator: register a :class:`Code` subclass under ``name``.

    Parameters
    ----------
    name : str
        The code name (``coded_matmul(A, B, name, ...)``, :func:`make_code`); case
        and ``-``/``_`` are not significant. The class's ``name`` attribute is set to
        it unless the class defines its own.
    replace : bool
        Allow replacing a family registered under the same name (default: refuse,
        so that two families never silently share a name).

    Raises
    ------
    TypeError
        The decorated object is not a ``Code`` subclass.
    ValueError
        ``name`` is empty or already registered to another class.
    """
    key = _key(str(name))
    if not key or key == "auto":
        raise ValueError(f"a code name must be non-empty and not 'auto', got {name!r}")

    def deco(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Code)):
            raise TypeError(f"@register({name!r}) decorates a gpucoded.codes.Code subclass")
        old = CODES.get(key)
        if old is not None and old is not cls and not replace:
            raise ValueError(
                f"code name {key!r} is already registered to {old.__module__}."
                f"{old.__qualname__}; pick another name or pass replace=True"
            )
        if "name" not in cls.__dict__:
            cls.name = key
        CODES[key] = cls
        return cls

    return deco


def registered_elsewhere() -> list[str]:
    """Names of the families registered outside this package (user-defined codes)."""
    return [k for k, cls in CODES.items() if not cls.__module__.startswith("gpucoded.")]


def lookup(name: str) -> type[Code]:
    """The family registered under ``name``; ``ValueError`` listing the valid names."""
    cls = CODES.get(_key(name)) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown code {name!r}; valid names: {', '.join(CODES)}")
    return cls


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
        One of :data:`CODES` (the registered families).
    m : int
        Storage fraction 1/m (PolyDot: m = p*q; give p and q to choose the split).
    P : int
        Workers. Default: the family's :meth:`~gpucoded.codes.base.Code.default_P`
        (exact codes: threshold + 1 straggler, ε-codes: threshold + 1; m for
        uncoded, m·r for replication, r = 2 by default).
    p, q, r : int, optional
        Grid and copy counts, for the families whose ``grid_args`` name them.
    options
        Passed to the code's constructor (``gamma``, ``eps``, ``norm_bound``,
        ``points``, ``decode_points``, ``decoder``, ``dtype``, ...).

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), or counts that
        contradict each other.
    TypeError
        ``p``, ``q`` or ``r`` for a family that does not take them.
    """
    cls = lookup(name)
    grid = {"p": p, "q": q, "r": r}
    extra = sorted(k for k, v in grid.items() if v is not None and k not in cls.grid_args)
    if extra:
        raise TypeError(
            f"code {cls.name!r} does not take {extra}; its grid arguments: "
            f"{', '.join(cls.grid_args)}"
        )
    given = {k: v for k, v in grid.items() if k in cls.grid_args}
    return cls.build(m=m, P=P, **given, **options)
