"""NumPy's dtype and shape rules (gpucoded.validate): promotion, empty products,
``np.dot``/``np.matmul`` on a CodedMatrix, shape errors in the user's shapes, and every
public submodule reachable after ``import gpucoded``.

Accuracy claims are checked against the exact product (integer arithmetic, or float64
of float16 values, which is exact for these sizes) with the call's own rigorous
a-priori bound (``CallInfo.error_bound``) as the tolerance, on non-negative sparse
(MNIST-like uint8), heavy-tailed (Pareto int64), bool and signed data.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gpucoded
from gpucoded.executors import SerialExecutor
from gpucoded.validate import working_dtype


class RecordingExecutor(SerialExecutor):
    def __init__(self) -> None:
        self.started = 0

    def start(self, *args, **kwargs):
        self.started += 1
        return super().start(*args, **kwargs)


def _mnist_like(rng, shape):
    """Pixels as stored: uint8, mostly 0, the rest spread over 1..255."""
    X = rng.integers(0, 256, shape).astype(np.uint8)
    X[rng.random(shape) < 0.8] = 0
    return X


def _pareto_int(rng, shape):
    return np.minimum(rng.pareto(1.5, shape) * 10, 10_000).astype(np.int64)


DATA = {
    "uint8 (MNIST-like)": lambda rng: (_mnist_like(rng, (40, 30)), _mnist_like(rng, (30, 20))),
    "int64 (Pareto)": lambda rng: (_pareto_int(rng, (40, 30)), _pareto_int(rng, (30, 20))),
    "int32 (signed)": lambda rng: (
        rng.integers(-1000, 1000, (40, 30)).astype(np.int32),
        rng.integers(-1000, 1000, (30, 20)).astype(np.int32),
    ),
    "bool": lambda rng: (rng.random((40, 30)) < 0.3, rng.random((30, 20)) < 0.3),
    "uint8 @ int8": lambda rng: (
        _mnist_like(rng, (40, 30)),
        rng.integers(-128, 128, (30, 20)).astype(np.int8),
    ),
}


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("code", ["chebyshev", "matdot"])
def test_integer_and_bool_operands(name, code):
    """Computed in float64 (the scipy.linalg rule) and within the call's own bound of
    the exact integer product; where NumPy's integer matmul does not wrap, that is
    NumPy's answer."""
    rng = np.random.default_rng(sorted(DATA).index(name))
    A, B = DATA[name](rng)
    exact = A.astype(np.int64) @ B.astype(np.int64)  # exact: |entries| < 2**63
    C, info = gpucoded.coded_matmul(A, B, code, m=3, P=6, failed=[1], return_info=True)
    assert C.dtype == np.float64
    assert np.abs(C - exact).max() <= info.error_bound
    assert np.array_equal(np.rint(C), exact)  # integers: rounding recovers them exactly


def test_uint8_where_numpy_wraps():
    """uint8 @ uint8 in NumPy wraps modulo 256; the coded product is the true one."""
    A = np.full((4, 3), 200, np.uint8)
    B = np.full((3, 2), 100, np.uint8)
    C = gpucoded.coded_matmul(A, B, executor="serial")
    assert np.array_equal(np.rint(C), np.full((4, 2), 60_000))
    assert np.array_equal(A @ B, np.full((4, 2), 60_000 % 256))  # what NumPy gives


def test_bool_counts_where_numpy_gives_or():
    A = np.ones((2, 3), bool)
    C = gpucoded.coded_matmul(A, A.T, executor="serial")
    assert C.dtype == np.float64 and np.array_equal(np.rint(C), np.full((2, 2), 3.0))


def test_float16_computes_in_float32():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((40, 30)).astype(np.float16)
    B = (rng.pareto(2.0, (30, 20)) + 1).astype(np.float16)  # positive, heavy-tailed
    exact = A.astype(np.float64) @ B.astype(np.float64)  # products of halves: exact here
    C, info = gpucoded.coded_matmul(A, B, m=2, return_info=True)
    assert C.dtype == np.float32 and info.format == "float32"
    assert np.abs(C - exact).max() <= info.error_bound


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        (np.uint8, np.uint8, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.int64, np.float32, np.float64),  # np.result_type: float64
        (np.uint8, np.float32, np.float32),  # np.result_type: float32
        (np.int8, np.complex64, np.complex64),
        (np.float16, np.float16, np.float32),
        (np.float16, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.float32, np.complex128, np.complex128),
    ],
)
def test_result_dtype_rule(a, b, want):
    """One rule: np.result_type, then bool/int -> float64 and float16 -> float32."""
    assert working_dtype(a, b) == want
    A, B = np.ones((4, 3), a), np.ones((3, 2), b)
    C = gpucoded.coded_matmul(A, B, executor="serial")
    assert C.dtype == want
    assert np.allclose(C, 3)


@pytest.mark.parametrize("dt", [np.longdouble, object, np.str_])
def test_dtypes_without_a_rule_are_refused(dt):
    ex = RecordingExecutor()
    with pytest.raises(TypeError, match=r"A has dtype .*astype\(numpy.float64\)"):
        gpucoded.coded_matmul(np.ones((4, 3)).astype(dt), np.ones((3, 2)), executor=ex)
    assert ex.started == 0


@pytest.mark.parametrize(
    ("sa", "sb"),
    [
        ((4, 0), (0, 3)),  # zeros(4, 3)
        ((0, 5), (5, 3)),  # empty (0, 3)
        ((4, 5), (5, 0)),
        ((0,), (0, 3)),  # 1-D empty: zeros(3)
        ((4, 0), (0,)),
        ((0, 4, 5), (5, 3)),  # an empty stack
        ((2, 4, 0), (2, 0, 3)),
        ((0, 4, 5), (0, 5, 3)),
    ],
)
@pytest.mark.parametrize("dt", [np.float64, np.float32, np.uint8])
def test_empty_products_are_numpys(sa, sb, dt):
    ex = RecordingExecutor()
    A, B = np.ones(sa, dt), np.ones(sb, dt)
    C, info = gpucoded.coded_matmul(A, B, executor=ex, return_info=True)
    want = np.matmul(A.astype(working_dtype(dt)), B.astype(working_dtype(dt)))
    assert C.shape == want.shape and C.dtype == want.dtype
    assert np.array_equal(C, want)  # zeros where NumPy has zeros
    assert ex.started == 0 and info.accuracy == 0.0 and "empty product" in info.selection
    out = np.full(want.shape, np.nan, want.dtype)
    assert gpucoded.coded_matmul(A, B, executor=ex, out=out) is out
    assert np.array_equal(out, want)


def test_empty_with_wrong_inner_dimension_is_refused():
    with pytest.raises(ValueError, match=r"\(4, 0\) and B has shape \(1, 3\)"):
        gpucoded.coded_matmul(np.ones((4, 0)), np.ones((1, 3)))


@pytest.fixture(scope="module")
def cm():
    M = np.random.default_rng(3).standard_normal((100, 80)) + 2.0  # non-centred
    return gpucoded.CodedMatrix(M, "chebyshev", m=2, P=4, executor="serial")


def test_numpy_protocols(cm):
    """np.dot / np.matmul / @ with a CodedMatrix on either side: the coded product."""
    x, y = np.linspace(0, 1, 80), np.linspace(1, 2, 100)
    X = np.random.default_rng(4).pareto(2.0, (80, 5))
    ref = cm.matmul(x)
    for got in (np.dot(cm, x), np.matmul(cm, x), cm @ x):
        assert np.array_equal(got, ref)
    ref = cm.rmatmul(y)
    for got in (np.dot(y, cm), np.matmul(y, cm), y @ cm):
        assert np.array_equal(got, ref)
    assert np.array_equal(np.matmul(cm, X), cm.matmul(X))
    C, info = cm.matmul(X, return_info=True)
    assert np.abs(C - cm.M @ X).max() <= info.error_bound
    out = np.empty(100)
    assert np.matmul(cm, x, out=out) is out and np.array_equal(out, cm.matmul(x))
    assert np.dot(cm, x, out=out) is out


def test_numpy_protocols_refuse_the_rest(cm):
    with pytest.raises(ValueError, match="use np.matmul"):
        np.dot(cm, np.ones((2, 80, 3)))
    with pytest.raises(TypeError):
        np.add(cm, 1)
    with pytest.raises(TypeError):
        np.linalg.norm(cm)


def test_shape_errors_name_the_users_shapes(cm):
    with pytest.raises(ValueError, match=r"shape \(100, 80\) and X has shape \(81,\)"):
        cm @ np.ones(81)
    with pytest.raises(ValueError, match=r"A has shape \(99,\) and the CodedMatrix .*\(100, 80\)"):
        np.ones(99) @ cm
    with pytest.raises(ValueError, match=r"\(100, 80\) and X has shape \(3, 81, 2\)"):
        np.matmul(cm, np.ones((3, 81, 2)))
    for f in (lambda: cm @ cm, lambda: np.dot(cm, cm), lambda: np.matmul(cm, cm)):
        with pytest.raises(TypeError, match=r"CodedMatrix @ CodedMatrix.*cm2.M"):
            f()
    with pytest.raises(ValueError, match=r"A has shape \(3, 4\) and B has shape \(5,\)"):
        gpucoded.coded_matmul(np.ones((3, 4)), np.ones(5))


def test_coded_matrix_empty_other_operand(cm):
    assert np.array_equal(cm @ np.ones((80, 0)), np.zeros((100, 0)))
    assert np.array_equal(np.ones((0, 100)) @ cm, np.zeros((0, 80)))
    with pytest.raises(ValueError, match=r"non-empty 2-D matrix, got shape \(0, 3\)"):
        gpucoded.CodedMatrix(np.ones((0, 3)))


def test_coded_matrix_promotes_like_coded_matmul():
    M = _mnist_like(np.random.default_rng(8), (30, 20))
    cm = gpucoded.CodedMatrix(M, executor="serial")
    assert cm.dtype == np.float64
    x = np.arange(20, dtype=np.int16)
    assert np.array_equal(np.rint(cm @ x), M.astype(np.int64) @ x)


def test_every_public_submodule_is_reachable():
    """In a fresh interpreter: ``gpucoded.<name>`` works without importing it first."""
    code = (
        "import sys, gpucoded\n"
        "assert 'gpucoded.stragglers' not in sys.modules\n"
        "names = gpucoded._submodules()\n"
        "assert {'stragglers', 'studies', 'hostops', 'executors', 'guard'} <= set(names)\n"
        "mods = [getattr(gpucoded, n) for n in names]\n"
        "assert all(m.__name__ == 'gpucoded.' + n for m, n in zip(mods, names))\n"
        "assert 'stragglers' in dir(gpucoded)\n"
        "try:\n    gpucoded.no_such_thing\nexcept AttributeError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "no attribute 'no_such_thing'" in r.stdout
