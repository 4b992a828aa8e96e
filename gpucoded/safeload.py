"""Where compiled code may be loaded from: the per-user build cache and its checks.

A shared library runs with the rights of the process that loads it, so a library that
another user could have planted or replaced must never be loaded. This module says
where run-time builds go (a per-user cache created 0700, never a shared temporary
directory) and why a given path is unsafe (:func:`unsafe_reason`); :mod:`gpucoded.hostops`
loads only what passes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["cache_dir", "private_cache_dir", "unsafe_reason"]


def cache_dir() -> Path:
    """The per-user cache of run-time builds (not created here).

    ``$GPUCODED_HOST_CACHE``, else ``$XDG_CACHE_HOME/gpucoded``, else
    ``~/.cache/gpucoded``. Never a shared temporary directory: a library there could
    have been planted by another user (:func:`unsafe_reason`).
    """
    env = os.environ.get("GPUCODED_HOST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "gpucoded"


def private_cache_dir() -> Path:
    """:func:`cache_dir`, created 0700 if missing and checked to be yours and private.

    Where anything compiled at run time goes (this module's :func:`build`, the
    benchmarks' and the tests' helper libraries).

    Raises
    ------
    PermissionError
        It exists but another user owns it or others can enter or write it.
    """
    return _private_dir(cache_dir())


def _private_dir(d: Path) -> Path:
    """``d`` created 0700 if missing; refuse it unless it is ours and private."""
    d.parent.mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass
    reason = unsafe_reason(d, private=True)
    if reason is not None:
        raise PermissionError(
            f"gpucoded: the build cache {d} is not private ({reason}); remove it, or set "
            "GPUCODED_HOST_CACHE to a directory only you can write (mode 0700)"
        )
    return d


def _writable_by_others(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def unsafe_reason(path: str | os.PathLike, *, private: bool = False) -> str | None:
    """Why code at ``path`` (a library, or a directory of libraries) must not be loaded.

    Refused, so that no other user can have planted or replaced the code:

    * ``path`` (resolved through links) or its directory writable by group or others;
    * any further parent writable by group or others without the sticky bit (``/tmp``
      itself is fine: others cannot rename or replace entries they do not own);
    * with ``private=True`` (the per-user build cache and what it holds): ``path``
      and its directory not owned by the current user, or the directory open to
      group or others at all (it is created 0700).

    The path as given and its resolved target are both checked.

    Returns
    -------
    str or None
        The reason, naming the offending path and the fix; None if it is safe.
    """
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    given = Path(os.path.abspath(path))
    try:
        real = given.resolve(strict=True)
    except OSError as e:
        return f"{given} cannot be resolved ({e})"
    for p in dict.fromkeys((given, real)):
        try:
            st = p.stat()
        except OSError as e:
            return f"{p} cannot be read ({e})"
        strict = [p] if stat.S_ISDIR(st.st_mode) else [p, p.parent]
        for i, q in enumerate([*strict, *p.parents[len(strict) - 1 :]]):
            st = q.stat()
            own = i < len(strict)
            if own and _writable_by_others(st):
                return f"{q} is writable by group or others (chmod go-w {q})"
            if not own and _writable_by_others(st) and not st.st_mode & stat.S_ISVTX:
                return f"its parent {q} is writable by group or others and not sticky"
            if private and own and uid is not None and st.st_uid != uid:
                return f"{q} is owned by uid {st.st_uid}, not by you (uid {uid})"
            if private and own and stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077:
                return f"{q} has mode {stat.S_IMODE(st.st_mode):o}, not 700 (chmod 700 {q})"
    return None
