"""NumPy reference of the kernels' encode/decode and derived error bounds."""

from __future__ import annotations

import numpy as np


def split_blocks(X: np.ndarray, gr: int, gc: int) -> np.ndarray:
    """Zero-padded blocks of X on a gr x gc grid, stacked as (gr*gc, rb, cb)."""
    n, k = X.shape
    rb, cb = -(-n // gr), -(-k // gc)
    pad = np.zeros((gr * rb, gc * cb), dtype=X.dtype)
    pad[:n, :k] = X
    return pad.reshape(gr, rb, gc, cb).transpose(0, 2, 1, 3).reshape(gr * gc, rb, cb)


def encode_ref(X: np.ndarray, G: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``Y[w] = sum_a G[w, a] X_a`` (P, rb, cb)."""
    B = split_blocks(X, *grid)
    return (G @ B.reshape(B.shape[0], -1)).reshape(G.shape[0], *B.shape[1:])


def decode_ref(
    Z: np.ndarray, W: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """``C[i rb + r, u db + x] = sum_k W[i gt + u, k] Z[k, r, x]``, cropped to ``shape``."""
    gp, gt = grid
    R, rb, db = Z.shape
    blocks = (W @ Z.reshape(R, -1)).reshape(gp, gt, rb, db)
    full = blocks.transpose(0, 2, 1, 3).reshape(gp * rb, gt * db)
    return full[: shape[0], : shape[1]]


def gamma(nterms: int, dtype: np.dtype) -> float:
    """Higham's gamma_n = n u / (1 - n u), u the unit roundoff of ``dtype``."""
    u = float(np.finfo(dtype).eps) / 2
    return nterms * u / (1 - nterms * u)


def encode_bound(X: np.ndarray, G: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Elementwise bound on |kernel - reference| for encode.

    Both are dot products of length m, each within gamma_m * sum |G||X_a| of the
    exact value (Higham, Thm 3.1), hence the factor 2. Computed in float64.
    """
    B = np.abs(split_blocks(X.astype(np.float64), *grid))
    m = B.shape[0]
    S = (np.abs(G.astype(np.float64)) @ B.reshape(m, -1)).reshape(G.shape[0], *B.shape[1:])
    return 2 * gamma(m, X.dtype) * S


def decode_bound(
    Z: np.ndarray, W: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Elementwise bound on |kernel - reference| for decode (same argument, length R)."""
    R = Z.shape[0]
    S = decode_ref(np.abs(Z.astype(np.float64)), np.abs(W.astype(np.float64)), grid, shape)
    return 2 * gamma(R, Z.dtype) * S
