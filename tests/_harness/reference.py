"""NumPy reference of the kernels' encode/decode and derived error bounds.

float32/float64 data: the kernel and the reference are both length-N dot
products in the data's precision, each within ``gamma_N * S`` of the exact
value (Higham, Thm 3.1; ``S = sum |coef| |x|``), so they differ by at most
``2 gamma_N S``.

float16 data: the kernel accumulates in float32 and rounds once to binary16;
the reference is computed in float64 from the same (exactly representable)
values. ``|got - exact| <= u16 (|exact| + g32 S) + g32 S + 2^-25``, the last
term covering results in the binary16 subnormal range (absolute spacing 2^-24).
With more terms than one register chunk (``MAXM = 16``), the kernel stores the
partial sum in the binary16 output between chunks: each of the ``c - 1`` extra
roundings adds at most ``u16 * S`` (and ``2^-25``).
"""

from __future__ import annotations

import numpy as np

F16 = np.dtype(np.float16)
#: largest register chunk of the kernels (gpucoded.kernels.MAXM_CHOICES[-1])
MAXM = 16


def split_blocks(X: np.ndarray, gr: int, gc: int) -> np.ndarray:
    """Zero-padded blocks of X on a gr x gc grid, stacked as (gr*gc, rb, cb)."""
    n, k = X.shape
    rb, cb = -(-n // gr), -(-k // gc)
    pad = np.zeros((gr * rb, gc * cb), dtype=X.dtype)
    pad[:n, :k] = X
    return pad.reshape(gr, rb, gc, cb).transpose(0, 2, 1, 3).reshape(gr * gc, rb, cb)


def encode_ref(X: np.ndarray, G: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``Y[w] = sum_a G[w, a] X_a`` (P, rb, cb); float64 for float16 data."""
    B = split_blocks(X, *grid)
    if X.dtype == F16:
        B, G = B.astype(np.float64), np.asarray(G, dtype=np.float64)
    return (G @ B.reshape(B.shape[0], -1)).reshape(G.shape[0], *B.shape[1:])


def decode_ref(
    Z: np.ndarray, W: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """``C[i rb + r, u db + x] = sum_k W[i gt + u, k] Z[k, r, x]``, cropped to ``shape``."""
    gp, gt = grid
    R, rb, db = Z.shape
    if Z.dtype == F16:
        Z, W = Z.astype(np.float64), np.asarray(W, dtype=np.float64)
    blocks = (W @ Z.reshape(R, -1)).reshape(gp, gt, rb, db)
    full = blocks.transpose(0, 2, 1, 3).reshape(gp * rb, gt * db)
    return full[: shape[0], : shape[1]]


def gamma(nterms: int, dtype: np.dtype) -> float:
    """Higham's gamma_n = n u / (1 - n u), u the unit roundoff of ``dtype``."""
    u = float(np.finfo(dtype).eps) / 2
    return nterms * u / (1 - nterms * u)


def _bound(ref: np.ndarray, S: np.ndarray, nterms: int, dtype: np.dtype) -> np.ndarray:
    if np.dtype(dtype) == F16:
        g = gamma(nterms, np.float32)
        u16 = float(np.finfo(np.float16).eps) / 2
        extra = -(-nterms // MAXM) - 1  # partial sums rounded to binary16 between chunks
        return (
            u16 * (np.abs(ref) + g * S)
            + g * S
            + 2.0**-25
            + extra * (u16 * (1 + g) * S + 2.0**-25)
            + gamma(nterms, np.float64) * S
        )
    return 2 * gamma(nterms, dtype) * S


def encode_bound(X: np.ndarray, G: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Elementwise bound on |kernel - encode_ref| (module docstring)."""
    X64 = X.astype(np.float64)
    G64 = np.asarray(G, dtype=np.float64)
    B = np.abs(split_blocks(X64, *grid))
    m = B.shape[0]
    S = (np.abs(G64) @ B.reshape(m, -1)).reshape(G64.shape[0], *B.shape[1:])
    return _bound(encode_ref(X64, G64, grid), S, m, X.dtype)


def decode_bound(
    Z: np.ndarray, W: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Elementwise bound on |kernel - decode_ref| (module docstring)."""
    R = Z.shape[0]
    Z64 = Z.astype(np.float64)
    W64 = np.asarray(W, dtype=np.float64)
    S = decode_ref(np.abs(Z64), np.abs(W64), grid, shape)
    return _bound(decode_ref(Z64, W64, grid, shape), S, R, Z.dtype)
