"""Chosen workers' encoded blocks of a fixed matrix (gpucoded.studies.gather).

Moved with the code from ``CodedMatrix.gather`` (the logistic-regression study's
machinery, now in studies/): the entries are those of ``CodedMatrix.encoded``, bit for
bit, from every source, on the host and on a (simulated) device.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.studies.gather import EncodedRows


def _rows(M, *args, **kw):
    cm = gpucoded.CodedMatrix(M, *args, executor="serial", **kw)
    return cm, EncodedRows(cm.M, cm.code)


@pytest.mark.parametrize("source", ["stored", "encode", "raw", "raw-padded"])
@pytest.mark.parametrize("side", ["A", "B"])
def test_gather_is_the_encoded_blocks_of_the_selected_rows_or_columns(side, source):
    """gather(side, workers, J) holds exactly the entries of the encoded stack for M's
    rows J (side A, p = 1) or columns J (side B, t = 1, transposed), from each source:
    the store encoded once (a copy of the encoding GEMM's output), M's rows/columns J
    encoded for the workers only, or those rows/columns handed in as ``raw`` (as they
    are, or zero padded to s·cb): each entry is the same length-s sum, so equality is
    exact. Padding: k = 29 is not a multiple of m = 3, and J repeats and reorders
    indices."""
    M = unit_gaussian((31, 29), 9)
    cm, er = _rows(M, "matdot", m=3, P=6)
    n, k = M.shape
    workers, J = [4, 0, 2], [5, 0, 5, 17, 3]
    kw = {"source": "stored" if source == "stored" else "encode"}
    if source.startswith("raw"):
        rows = M[J, :] if side == "A" else M[:, J].T  # (|J|, inner)
        if source == "raw-padded":
            inner = rows.shape[1]
            rows = np.concatenate([rows, np.zeros((5, 3 * -(-inner // 3) - inner))], axis=1)
        kw["raw"] = rows if side == "A" else rows.T  # B: M's columns, (inner, |J|)
    got = er.gather(side, workers, J, **kw)
    if side == "A":
        enc = cm.encoded("A", M.dtype, cm.code.grid.block_dims(n, k, 1))  # (P, n, cb)
        want = enc[workers][:, J, :]
    else:
        enc = cm.encoded("B", M.dtype, cm.code.grid.block_dims(1, n, k))  # (P, cb, k)
        want = enc[workers][:, :, J].transpose(0, 2, 1)
    assert got.shape == (3, 5, want.shape[2]) and np.array_equal(got, want)
    assert bool(er._rows) == (source == "stored")  # "encode" never builds the store
    assert got.dtype == np.float64
    assert er.gather(side, [1], [2], np.float32, source=kw["source"]).dtype == np.float32


@pytest.mark.parametrize("source", ["encode", "stored"])
def test_gather_side_a_then_side_b_with_the_same_workers(source):
    """The caches are per side: after side A's rows for workers S, side B for the same
    S uses G_B's rows (MatDot's G_A[w, i] = λ_w^i and G_B[w, j] = λ_w^(m-1-j) differ),
    and the store of side A is not served for side B. Non-negative, non-centred data
    (entries 1..2): every encoded entry is a distinct positive-weighted sum."""
    M = np.random.default_rng(3).uniform(1.0, 2.0, (12, 12))
    cm, er = _rows(M, "matdot", m=3, P=6)
    workers, J = [1, 4, 5], [0, 7, 11]
    er.gather("A", workers, J, source=source)  # fills the caches for side A
    got = er.gather("B", workers, J, source=source)
    enc = cm.encoded("B", M.dtype, cm.code.grid.block_dims(1, 12, 12))  # (P, cb, k)
    assert np.array_equal(got, enc[workers][:, :, J].transpose(0, 2, 1))
    got_a = er.gather("A", workers, J, source=source)  # and back: still side A's rows
    enc_a = cm.encoded("A", M.dtype, cm.code.grid.block_dims(12, 12, 1))
    assert np.array_equal(got_a, enc_a[workers][:, J, :])


def test_gather_default_source_and_raw_checks():
    """NumPy M: the default source encodes (no store); raw is checked against index
    and M's inner dimension, and only the encoding source takes it."""
    M = unit_gaussian((12, 10), 11)
    _, er = _rows(M, "matdot", m=2, P=4)
    er.gather("B", [0, 3], [1, 2])
    assert not er._rows
    cols = M[:, [1, 2]]
    assert np.array_equal(er.gather("B", [0, 3], None, raw=cols), er.gather("B", [0, 3], [1, 2]))
    with pytest.raises(ValueError, match="raw must be M's columns"):
        er.gather("B", [0], [1, 2, 3], raw=cols)  # three indices, two columns
    with pytest.raises(ValueError, match="raw must be M's columns"):
        er.gather("B", [0], None, raw=cols.T)  # rows of Mᵀ, not M's columns
    with pytest.raises(ValueError, match="source='encode' only"):
        er.gather("B", [0], [1, 2], source="stored", raw=cols)
    with pytest.raises(ValueError, match="source must be"):
        er.gather("B", [0], [1], source="cache")


def test_gather_refuses_what_it_cannot_select():
    M = unit_gaussian((12, 10), 10)
    _, er = _rows(M, "polydot", p=2, q=2)
    with pytest.raises(ValueError, match="side 'A' with p = 1"):
        er.gather("A", [0], [1])  # PolyDot splits M's rows: a row is not a block's row
    _, er = _rows(M, "matdot", m=2, P=4)
    with pytest.raises(IndexError, match=r"index must lie in 0\.\.9"):
        er.gather("B", [0], [10])
    with pytest.raises(IndexError, match="index must lie"):
        er.gather("B", [0], [-1])  # no wrap-around into another worker's rows
    with pytest.raises(IndexError, match=r"workers must lie in 0\.\.3"):
        er.gather("A", [4], [0])


@pytest.mark.gpusim
@pytest.mark.parametrize("source", ["encode", "stored"])
@pytest.mark.parametrize("side", ["A", "B"])
def test_gather_on_device_arrays(sim, side, source):
    """gather on a CuPy M stays on the device (both sources; G moved to the device by
    encode_side) and holds the entries the host computes for the same M: the same
    length-s sums, in the same order."""
    import cupy as cp

    M = np.random.default_rng(23).standard_normal((31, 29))
    _, host = _rows(M, "matdot", m=3, P=6)
    _, dev = _rows(cp.asarray(M), "matdot", m=3, P=6)
    workers, J = [4, 0, 2], [5, 0, 5, 17, 3]
    got = dev.gather(side, workers, cp.asarray(J), source=source)
    assert isinstance(got, cp.ndarray)
    want = host.gather(side, workers, J, source=source)
    assert np.array_equal(got.get(), want)
    if source == "encode":  # raw columns (side B) / rows (side A) given on the device
        raw = M[J, :] if side == "A" else M[:, J]
        got = dev.gather(side, workers, None, raw=cp.asarray(raw))
        assert isinstance(got, cp.ndarray) and np.array_equal(got.get(), want)
