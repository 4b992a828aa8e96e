r"""``np.matmul`` semantics on 2-D coded products, and the ``out=`` check.

Every entry point (``coded_matmul``, ``CodedMatrix``) turns its operands into 2-D coded
products with :func:`matmul_plan` and puts the results back together with the plan's
``assemble``; :func:`check_out` validates ``out=`` against the result once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import array_module

__all__ = ["MatmulPlan", "check_out", "matmul_plan"]


@dataclass
class MatmulPlan:
    """How a ``np.matmul``-style product maps onto 2-D coded products.

    ``pairs``: the 2-D products (A_i, B_i) to compute; ``assemble(Cs)`` gives the
    result of ``np.matmul(A, B)``'s shape (``shape``) from their results.
    """

    pairs: list[tuple[Any, Any]]
    assemble: Callable[[list[Any]], Any]
    shape: tuple[int, ...]


def matmul_plan(A: Any, B: Any) -> MatmulPlan:
    r"""``np.matmul`` semantics on 2-D coded products.

    * a 1-D A is a row (1, k), a 1-D B a column (k, 1); the added axis is dropped;
    * stacks ``(..., n, k) @ (..., k, l)`` broadcast their leading axes. When one side
      is a single matrix the stack is folded into **one** coded product (rows of
      :math:`(A_1;\dots;A_b)B`, or columns of :math:`A(B_1\dots B_b)`): one encode, P
      GEMMs; otherwise one coded product per broadcast pair.
    """
    from .validate import _as_array

    A, B = _as_array("A", A), _as_array("B", B)
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError(
            f"matmul needs arrays of at least 1 dimension, got shapes {A.shape} and "
            f"{B.shape} (multiply by a scalar with *)"
        )
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    n, k, l = A2.shape[-2], A2.shape[-1], B2.shape[-1]
    if B2.shape[-2] != k and max(A.ndim, B.ndim) > 2:  # 2-D: check_operands says it
        raise ValueError(
            f"inner dimensions differ: A has shape {A.shape}, B has shape {B.shape} "
            f"(need A.shape[-1] == B.shape[-2])"
        )
    if A2.ndim == 2 and B2.ndim == 2:  # the common case: one 2-D product
        shape = (() if A.ndim == 1 else (n,)) + (() if B.ndim == 1 else (l,))
        return MatmulPlan(*_fold(A2, B2, (), (n, k, l), shape), shape)
    try:
        batch = tuple(np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2]))
    except ValueError as e:
        raise ValueError(
            f"stack shapes {A.shape[:-2]} and {B.shape[:-2]} do not broadcast"
        ) from e
    shape = batch + (() if A.ndim == 1 else (n,)) + (() if B.ndim == 1 else (l,))
    return MatmulPlan(*_fold(A2, B2, batch, (n, k, l), shape), shape)


def _fold(A2: Any, B2: Any, batch: tuple, nkl: tuple, shape: tuple) -> tuple[list, Callable]:
    """The 2-D products of a (broadcast) stack and how to put their results together."""
    n, k, l = nkl
    if not batch:
        return [(A2, B2)], lambda Cs: Cs[0].reshape(shape)
    xp = array_module(A2, B2)
    if B2.ndim == 2:  # (..., n, k) @ (k, l): one product of the stacked rows
        return [(A2.reshape(-1, k), B2)], lambda Cs: Cs[0].reshape(shape)
    if A2.ndim == 2:  # (n, k) @ (..., k, l): one product of the side-by-side columns
        Bf = xp.moveaxis(B2, -2, 0).reshape(k, -1)
        return [(A2, Bf)], lambda Cs: xp.moveaxis(Cs[0].reshape((n, *batch, l)), 0, -2).reshape(
            shape
        )
    Ab = xp.broadcast_to(A2, (*batch, n, k)).reshape(-1, n, k)
    Bb = xp.broadcast_to(B2, (*batch, k, l)).reshape(-1, k, l)
    return list(zip(Ab, Bb, strict=True)), lambda Cs: xp.stack(Cs).reshape(shape)


def check_out(out: Any, shape: tuple, dtype: Any, like: Any) -> None:
    """``out=``: an array of the result's shape and dtype, on the operands' side."""
    if out is None:
        return
    xp = array_module(like)
    if array_module(out) is not xp or not hasattr(out, "shape"):
        where = "a CuPy array on the operands' GPU" if xp is not np else "a NumPy array"
        raise TypeError(f"out must be {where}, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape) or out.dtype != np.dtype(dtype):
        raise ValueError(
            f"out has shape {tuple(out.shape)} and dtype {out.dtype}; the result has shape "
            f"{tuple(shape)} and dtype {np.dtype(dtype)}"
        )
    if xp is not np:
        from .validate import check_same_device

        check_same_device(like, out)
