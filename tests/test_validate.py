"""Bad input: clear errors before any worker runs; unusual layouts work.

Every error test asserts (1) the exception type, (2) that the message names the
argument and the fix, and (3) for ``coded_matmul`` that no worker was started.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded import codes
from gpucoded.backend import array_module
from gpucoded.executors import SerialExecutor
from gpucoded.reference import exact_product
from gpucoded.validate import check_count, check_operands, check_same_device


class RecordingExecutor(SerialExecutor):
    """A serial executor that counts how many runs were started."""

    def __init__(self) -> None:
        self.started = 0

    def start(self, *args, **kwargs):
        self.started += 1
        return super().start(*args, **kwargs)


def _refused(exc, match, A, B, code="matdot", **kw):
    ex = RecordingExecutor()
    with pytest.raises(exc, match=match):
        gpucoded.coded_matmul(A, B, code, executor=ex, **kw)
    assert ex.started == 0, "a worker ran before the bad input was refused"


GOOD_A, GOOD_B = np.ones((4, 3)), np.ones((3, 2))


@pytest.mark.parametrize(
    ("A", "B", "exc", "match"),
    [
        (np.ones((4, 3)), np.ones((4, 2)), ValueError, r"A has shape \(4, 3\) and B .*\(4, 2\)"),
        (np.ones((4, 3)), np.ones(4), ValueError, r"A has shape \(4, 3\) and B has shape \(4,\)"),
        (np.ones(()), np.ones((4, 2)), ValueError, r"at least 1 dimension.*scalar"),
        (np.ones((4, 3)), np.ones((2, 2, 1)), ValueError, r"differ.*second-to-last axis of B"),
        (np.ones((2, 4, 3)), np.ones((3, 3, 2)), ValueError, r"stack shapes \(2,\) and \(3,\)"),
        (np.ones((4, 3), object), GOOD_B, TypeError, r"A has dtype object"),
        (np.ones((4, 3), np.longdouble), GOOD_B, TypeError, r"A has dtype float128.*astype"),
        (GOOD_A, np.ones((3, 2), np.clongdouble), TypeError, r"B has dtype complex256"),
        ([[1, 2], [3]], GOOD_B, TypeError, r"A cannot be converted to a matrix"),
    ],
)
def test_bad_operands(A, B, exc, match):
    _refused(exc, match, A, B, m=2)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf in the GEMMs
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["A", "B"])
def test_nonfinite_inputs(bad, which):
    """NaN/Inf: refused by default (naming the option), flagged with 'propagate'."""
    A, B = np.ones((4, 3)), np.ones((3, 2))
    (A if which == "A" else B)[1, 1] = bad
    _refused(ValueError, rf"{which} contains NaN or Inf.*nonfinite='propagate'", A, B, m=2)
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=2, nonfinite="propagate", return_info=True)
    assert info.nonfinite_input
    assert not np.isfinite(C).all()
    assert not any("non-finite" in r for r in info.erased.values())  # NaN answers expected
    _, clean = gpucoded.coded_matmul(
        np.ones((4, 3)), np.ones((3, 2)), "matdot", m=2, return_info=True
    )
    assert not clean.nonfinite_input


def test_complex_supported():
    """Complex inputs are supported (not refused) and keep their dtype."""
    rng = np.random.default_rng(80)
    A = rng.standard_normal((5, 4)) + 1j * rng.standard_normal((5, 4))
    B = rng.standard_normal((4, 3)).astype(np.complex64)
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=2, return_info=True)
    assert C.dtype == np.complex128
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_mixed_numpy_cupy_refused():
    """A CuPy operand with a NumPy one: TypeError naming both fixes (no CuPy needed:
    the backend recognises CuPy arrays by their module)."""
    fake = types.new_class("ndarray")
    fake.__module__ = "cupy._core.core"
    with pytest.raises(TypeError, match=r"mixed NumPy and CuPy.*cupy.asnumpy.*cupy.asarray"):
        array_module(np.ones(2), fake())
    with pytest.raises(TypeError, match="mixed NumPy and CuPy"):
        check_operands(np.ones((2, 2)), fake())


def test_different_gpus_refused():
    """Operands on two devices: ValueError naming both device ids and the fix."""
    A = types.SimpleNamespace(device=types.SimpleNamespace(id=0))
    B = types.SimpleNamespace(device=types.SimpleNamespace(id=1))
    with pytest.raises(ValueError, match=r"A is on GPU 0 and B on GPU 1.*cupy.cuda.Device"):
        check_same_device(A, B)
    check_same_device(A, types.SimpleNamespace(device=types.SimpleNamespace(id=0)))
    check_same_device(np.ones(2), np.ones(2))  # host arrays have no device id


@pytest.mark.gpu
def test_different_gpus_refused_on_device():
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    with cupy.cuda.Device(0):
        A = cupy.ones((4, 4))
    with cupy.cuda.Device(1):
        B = cupy.ones((4, 4))
    with pytest.raises(ValueError, match="A is on GPU 0 and B on GPU 1"):
        gpucoded.coded_matmul(A, B, "matdot", m=2)


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"code": "matdot", "m": 2, "P": 2}, ValueError, r"P=2 workers is below the recovery"),
        ({"code": "polydot", "p": 2, "q": 2, "P": 5}, ValueError, r"use P >= 9"),
        ({"code": "matdot", "m": 2.5}, TypeError, r"m must be an integer, got 2.5"),
        ({"code": "matdot", "m": True}, TypeError, r"m must be an integer"),
        ({"code": "matdot", "m": 2, "P": 4.0}, TypeError, r"P must be an integer"),
        ({"code": "matdot", "m": 0}, ValueError, r"m must be >= 1, got 0"),
        ({"code": "polydot", "p": 2, "q": 0}, ValueError, r"q must be >= 1"),
        ({"code": "nosuchcode", "m": 2}, ValueError, r"unknown code 'nosuchcode'; valid.*matdot"),
        ({"code": "approx_matdot", "m": 2, "gamma": 0}, ValueError, r"gamma must be a finite"),
        ({"code": "approx_matdot", "m": 2, "gamma": -3}, ValueError, r"gamma must be a finite"),
        ({"code": "approx_matdot", "m": 2, "gamma": math.nan}, ValueError, r"gamma must be"),
        ({"code": "approx_matdot", "m": 2, "gamma": math.inf}, ValueError, r"gamma must be"),
        ({"code": "approx_polydot", "p": 2, "q": 1, "eps": 0}, ValueError, r"eps must be > 0"),
        ({"code": "approx_matdot", "m": 2, "eps": -1e-3}, ValueError, r"eps must be > 0"),
        ({"code": "approx_matdot", "m": 2, "eps": math.nan}, ValueError, r"eps must be > 0"),
        (
            {"code": "approx_matdot", "m": 2, "eps": 1e-3, "norm_bound": 0},
            ValueError,
            r"norm_bound \(eta\) must be > 0",
        ),
        (
            {"code": "matdot", "m": 2, "P": 4, "points": [0.1, 0.2, 0.1, 0.3]},
            ValueError,
            r"points must be pairwise distinct; points\[0\] == points\[2\]",
        ),
        (
            {"code": "approx_matdot", "m": 2, "P": 3, "points": [0.0, 0.0, 0.0]},
            ValueError,
            r"duplicate or zero-spread",
        ),
        ({"code": "matdot", "m": 2, "points": [0.1, 0.2]}, ValueError, r"expected P=4 evaluation"),
        ({"code": "chebyshev", "m": 2, "points": [0, 0.5, 1, 2]}, ValueError, r"\[-1, 1\]"),
        ({"code": "matdot", "m": 2, "answers": 2}, ValueError, r"answers=2 must be between"),
        ({"code": "matdot", "m": 2, "failed": [9]}, ValueError, r"failed worker index 9"),
        ({"code": "matdot", "m": 2, "delays": [0.0]}, ValueError, r"one entry per worker"),
        ({"code": "matdot", "m": 2, "delays": [0, 0, -1, 0]}, ValueError, r"delays\[2\]"),
        ({"code": "matdot", "m": 2, "nonfinite": "ignore"}, ValueError, r"nonfinite must be"),
        ({"code": "matdot", "m": 2, "verify": "yes"}, ValueError, r"verify must be None or one"),
        ({"code": "uncoded", "m": 2, "P": 3}, ValueError, r"uncoded uses P = m = 2"),
        ({"code": "replication", "m": 2, "P": 5}, ValueError, r"P = m\*r"),
    ],
)
def test_bad_parameters(kw, exc, match):
    kw = dict(kw)
    _refused(exc, match, unit_gaussian((6, 4), 81), unit_gaussian((4, 5), 82), **kw)


def test_check_count():
    assert check_count("m", np.int64(3)) == 3
    assert check_count("m", None) is None
    with pytest.raises(TypeError, match="m must be an integer, got '2'"):
        check_count("m", "2")


def test_every_evaluation_code_checks_its_points():
    """Points reaching the shared machinery by any route (not only ``points=``) are
    checked: duplicates are refused by EvaluationCode itself."""
    grid = codes.BlockGrid(1, 1, 1)
    with pytest.raises(ValueError, match="pairwise distinct"):
        codes.EvaluationCode(grid, np.array([0.5, 0.5]), [0], [0], np.ones((1, 1)), threshold=1)


@pytest.mark.parametrize(
    ("name", "opts", "shape"),
    [
        ("matdot", {"m": 3}, (2, 1, 2)),  # k=1 split into 3 blocks
        ("polydot", {"p": 2, "q": 2}, (1, 1, 1)),  # every dimension smaller than its split
        ("polynomial", {"p": 3, "q": 2}, (2, 3, 1)),
        ("approx_polydot", {"p": 2, "q": 2}, (1, 3, 1)),
        ("replication", {"m": 4}, (3, 2, 3)),
    ],
)
def test_split_finer_than_matrix_allowed(name, opts, shape):
    """m or p·q larger than the split dimension: allowed (documented in
    gpucoded.validate), zero-padded blocks, result within the call's bound."""
    n, k, l = shape
    A, B = unit_gaussian((n, k), 83), unit_gaussian((k, l), 84)
    # serial: the same answers every run. The product has l <= 8 columns, so the guard's
    # measured check is exact (gpucoded.probes): it warns exactly when the relative
    # error exceeds 1e-2 (ε-PolyDot decodes approximately); exact codes never warn
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", gpucoded.InaccurateResultWarning)
        C, info = gpucoded.coded_matmul(A, B, name, return_info=True, executor="serial", **opts)
    flagged = any(issubclass(w.category, gpucoded.InaccurateResultWarning) for w in seen)
    E = exact_product(A, B)
    rel = np.abs(C - E).max() / np.abs(E).max()
    assert info.measured is not None and info.measured.exact
    assert flagged == (rel > 1e-2), (rel, info.accuracy)
    if not name.startswith("approx"):
        assert not flagged
    assert C.shape == (n, l)
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def _layouts(X):
    yield "C", np.ascontiguousarray(X)
    yield "F", np.asfortranarray(X)
    yield "transposed", np.ascontiguousarray(X.T).T
    big = np.zeros((2 * X.shape[0], 3 * X.shape[1]), X.dtype)
    big[::2, ::3] = X
    yield "strided", big[::2, ::3]
    yield "negative-stride", np.ascontiguousarray(X[::-1, ::-1])[::-1, ::-1]


@pytest.mark.parametrize("name", ["matdot", "approx_matdot", "polydot", "polynomial"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_layouts_work(name, dtype):
    """Non-contiguous, transposed, Fortran-ordered and strided inputs give results
    within the bound, and the same result as the C-contiguous inputs (the encode
    copies the blocks into one layout, so up to the same bound twice)."""
    A = unit_gaussian((9, 7), 85).astype(dtype)
    B = unit_gaussian((7, 6), 86).astype(dtype)
    opts = {"p": 2, "q": 2} if "poly" in name else {"m": 2}
    E = exact_product(A, B)
    ref = None
    for (la, Av), (lb, Bv) in zip(_layouts(A), _layouts(B), strict=True):
        assert la == lb
        C, info = gpucoded.coded_matmul(Av, Bv, name, failed=[0], return_info=True, **opts)
        assert C.dtype == dtype and C.shape == (9, 6), la
        assert np.abs(C - E).max() <= info.error_bound, la
        if ref is None:
            ref = (C, info.error_bound)
        else:
            assert np.abs(C - ref[0]).max() <= info.error_bound + ref[1], la
