r"""The norm measures of the a-priori bound, and the operator caches that feed them.

:math:`\rho_A=\sqrt p\max_v\|A_{v,:}\|_2` and :math:`\rho_B=\sqrt t\max_w\|B_{:,w}\|_2`
(:func:`gpucoded.pipeline.operand_norms`) are valid because every entry of a worker
product is a bilinear form in the block pieces, with
:math:`\max_v\sum_a\|A_a[v,:]\|^2\le\rho_A^2` and
:math:`\max_w\sum_b\|B_b[:,w]\|^2\le\rho_B^2`. The tests check that claim on the
blocks themselves (tight for equal row/column norms, so a wrong factor shows), for a
grid with p != t, and the operator's cached :math:`\rho_M` and encoded stacks.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucoded
from gpucoded import codes
from gpucoded.pipeline import col_norm, operand_norms, row_norm
from gpucoded.reference import exact_product


def _block_sums(code: codes.Code, A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    r""":math:`\max_v\sum_a\|A_a[v,:]\|^2` and :math:`\max_w\sum_b\|B_b[:,w]\|^2` over the
    code's (zero-padded) blocks."""
    g = code.grid
    rb, cb, db = g.block_dims(A.shape[0], A.shape[1], B.shape[1])
    Ab = g.split(A, g.p, g.s, rb, cb)  # (n_a, rb, cb)
    Bb = g.split(B, g.s, g.t, cb, db)  # (n_b, cb, db)
    return float((Ab**2).sum(axis=(0, 2)).max()), float((Bb**2).sum(axis=(0, 1)).max())


def _equal_norms(shape: tuple[int, int], axis: int, kind: str, seed: int) -> np.ndarray:
    """Data whose rows (axis=1) or columns (axis=0) all have norm 1."""
    rng = np.random.default_rng(seed)
    if kind == "nonnegative":
        X = rng.uniform(0.0, 1.0, shape) + 3.0
    elif kind == "sparse":
        X = rng.standard_normal(shape) * (rng.uniform(size=shape) < 0.2)
        X[0, :] += 1.0  # no empty row or column
        X[:, 0] += 1.0
    elif kind == "heavy":
        X = rng.standard_t(1.5, shape)
    else:
        X = rng.standard_normal(shape)
    return X / np.linalg.norm(X, axis=axis, keepdims=True)


@pytest.mark.parametrize("kind", ["gaussian", "nonnegative", "sparse", "heavy"])
@pytest.mark.parametrize("pq", [(1, 3), (3, 1), (2, 3)])
def test_rho_covers_the_block_sums_tightly_for_p_not_t(pq, kind):
    """PolynomialCode(p, q): A in p row blocks, B in t = q column blocks (p != t). With
    every row of A and every column of B of norm 1 and the sizes multiples of the
    blocks, the block sums are exactly p and t: rho_A^2 = p, rho_B^2 = t, not the
    other way round (√p for B would make the bound too small whenever p < t)."""
    p, q = pq
    code = codes.PolynomialCode(p, q, p * q + 1)
    A = _equal_norms((6 * p, 10), 1, kind, 1)
    B = _equal_norms((10, 6 * q), 0, kind, 2)
    sa, sb = _block_sums(code, A, B)
    ra, rb = operand_norms(code, A, B)
    assert (ra, rb) == (row_norm(code, A), col_norm(code, B))
    assert sa == pytest.approx(p, rel=1e-12) and sb == pytest.approx(q, rel=1e-12)
    assert ra**2 == pytest.approx(sa, rel=1e-12) and rb**2 == pytest.approx(sb, rel=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "nonnegative", "sparse", "heavy"])
def test_bound_holds_for_a_polynomial_code_with_p_below_t(kind):
    """The a-priori bound with these rho covers the error of a p = 1, t = 3 product in
    float32 workers (the rounding term scales with rho_A·rho_B)."""
    A = _equal_norms((12, 40), 1, kind, 3).astype(np.float32)
    B = _equal_norms((40, 18), 0, kind, 4).astype(np.float32)
    C, info = gpucoded.coded_matmul(
        A, B, "polynomial", p=1, q=3, P=5, failed=[2], executor="serial", return_info=True
    )
    ref = np.asarray(exact_product(A.astype(np.float64), B.astype(np.float64)), float)
    assert float(np.abs(C - ref).max()) <= info.decode.error_bound


def test_coded_matrix_rho_is_rows_for_side_a_and_columns_for_side_b():
    """CodedMatrix.rho("A") = √p·max row norm, rho("B") = √t·max column norm of M (the
    claim on M's own blocks, checked as above). A heavy row makes them differ: M has one
    row of 10s (norm 10·√k) and small entries elsewhere."""
    rng = np.random.default_rng(7)
    M = rng.uniform(0.0, 0.1, (8, 12))
    M[3, :] = 10.0
    cm = gpucoded.CodedMatrix(M, "polydot", p=2, q=2, executor="serial")
    g = cm.code.grid
    assert cm.rho("A") == pytest.approx(np.sqrt(g.p) * np.linalg.norm(M, axis=1).max())
    assert cm.rho("B") == pytest.approx(np.sqrt(g.t) * np.linalg.norm(M, axis=0).max())
    sa, _ = _block_sums(cm.code, M, M.T)  # M as the A operand
    _, sb = _block_sums(cm.code, M.T, M)  # M as the B operand
    assert sa <= cm.rho("A") ** 2 * (1 + 1e-12) and sb <= cm.rho("B") ** 2 * (1 + 1e-12)
    assert cm.rho("A") == pytest.approx(np.sqrt(2) * 10 * np.sqrt(12))  # the heavy row
    assert cm.rho("B") < 0.5 * cm.rho("A")


@pytest.mark.parametrize("first", ["float32", "float64"])
def test_one_coded_matrix_with_two_dtypes(first):
    """The encoded stack is cached per result dtype: a float32 M multiplied by a float32
    and by a float64 operand (either order) uses a float32 and a float64 stack, and
    each result meets its own format's a-priori bound (a float32 stack reused for the
    float64 product would miss the float64 bound by ~1e7)."""
    rng = np.random.default_rng(8)
    M = (rng.uniform(0.0, 1.0, (20, 16)) + 1.0).astype(np.float32)  # non-negative
    X = rng.standard_normal((16, 5))
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2, P=4, executor="serial")
    order = ["float32", "float64"] if first == "float32" else ["float64", "float32"]
    for dt in order:
        C, info = cm.matmul(X.astype(dt), return_info=True)
        assert C.dtype == np.dtype(dt)
        Xd = X.astype(dt).astype(np.float64)
        ref = np.asarray(exact_product(M.astype(np.float64), Xd), float)
        assert float(np.abs(C - ref).max()) <= info.decode.error_bound, dt
    dims = cm.code.grid.block_dims(20, 16, 5)
    assert cm.encoded("A", np.float32, dims).dtype == np.float32
    assert cm.encoded("A", np.float64, dims).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_operand_means_are_the_largest_absolute_row_and_column_means(dtype):
    """μ_A = max_v |mean(A[v, :])|, μ_B = max_w |mean(B[:, w])| (the fast real path and the
    generic one agree with the definition, negative means included); NaN propagates."""
    from gpucoded.pipeline import operand_means

    rng = np.random.default_rng(4)
    A = (rng.random((9, 13)) - np.linspace(0, 1.5, 9)[:, None]).astype(dtype)  # rows of both signs
    B = (rng.random((13, 6)) - np.linspace(1.2, 0, 6)).astype(dtype)
    want = (
        max(abs(complex(A[v].astype(np.complex128).mean())) for v in range(9)),
        max(abs(complex(B[:, w].astype(np.complex128).mean())) for w in range(6)),
    )
    got = operand_means(A, B)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert got == pytest.approx(want, rel=tol)
    A[4, 2] = np.nan
    assert np.isnan(operand_means(A, B)[0])
