"""A code family defined outside the package joins by ``@gpucoded.codes.register``.

The family below lives in this file only: MatDot's encoding on the monomial basis at
equispaced points of [-s, s]. Once registered, ``coded_matmul`` builds and decodes it by
name (with failed workers), ``make_code`` and ``advise`` find it, and error messages
list it and its options; nothing in the library names it.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucoded
from gpucoded import codes
from gpucoded.codes import BlockGrid, EvaluationCode
from gpucoded.reference import exact_product

NAME = "test_equispaced"


class Equispaced(EvaluationCode):
    """Exact MatDot-shaped code at equispaced points; threshold 2m - 1."""

    @classmethod
    def default_P(cls, m: int) -> int:
        return 2 * m + 1  # two stragglers

    def __init__(self, m: int, P: int, *, spread: float = 0.5) -> None:
        targets = np.zeros((1, 2 * m - 1))
        targets[0, m - 1] = 1.0
        super().__init__(
            BlockGrid(1, m, 1),
            np.linspace(-spread, spread, P),
            list(range(m)),
            [m - 1 - j for j in range(m)],
            targets,
            threshold=2 * m - 1,
        )


@pytest.fixture
def family():
    cls = codes.register(NAME)(Equispaced)
    try:
        yield cls
    finally:
        del codes.CODES[NAME]
        del Equispaced.name  # register set it (the class did not define one)


def _data(kind: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "nonnegative":  # non-centred: the product has no cancellation
        return rng.uniform(0.0, 1.0, shape) + 2.0
    if kind == "sparse":
        return rng.standard_normal(shape) * (rng.uniform(size=shape) < 0.1)
    return rng.standard_t(1.5, shape)  # heavy-tailed


@pytest.mark.parametrize("kind", ["gaussian", "nonnegative", "sparse", "heavy"])
def test_registered_family_runs_by_name_with_failed_workers(family, kind):
    """coded_matmul(A, B, NAME, ...) builds the registered class, skips the failed
    workers and decodes exactly: the error is within the decode's a-priori bound
    (rounding only, an exact code) and a few hundred ulps of the scale."""
    A, B = _data(kind, (30, 24), 1), _data(kind, (24, 20), 2)
    C, info = gpucoded.coded_matmul(
        A, B, NAME.replace("_", "-").upper(), m=3, failed=[0, 4], return_info=True
    )
    assert type(info.code) is family and info.code.P == 7  # default_P(3)
    assert not {0, 4} & set(info.used) and len(info.used) == 5
    ref = np.asarray(exact_product(A, B), dtype=np.float64)
    err = float(np.abs(C - ref).max())
    assert err <= info.decode.error_bound
    scale = np.abs(A).sum(axis=1).max() * np.abs(B).sum(axis=0).max()  # |A||B| entrywise
    # interpolation at 5 points of [-1/2, 1/2]: weights up to ~1e2, so ~1e3 u of scale
    assert err <= 1e3 * np.finfo(np.float64).eps * scale


def test_make_code_and_messages_know_the_registered_family(family):
    code = codes.make_code(NAME, m=2, spread=0.25)
    assert isinstance(code, family) and code.P == 5 and code.name == NAME
    assert float(np.abs(code.points).max()) == 0.25
    with pytest.raises(ValueError, match=NAME):  # the valid names listed
        codes.make_code("no_such_code", m=2)
    with pytest.raises(TypeError, match="spread"):  # its options listed
        gpucoded.coded_matmul(np.ones((4, 4)), np.ones((4, 4)), NAME, m=2, sprd=1.0)
    with pytest.raises(TypeError, match="does not take"):  # no p/q: grid_args is ("m",)
        codes.make_code(NAME, p=1, q=2)


def test_advise_measures_the_registered_family(family):
    from gpucoded.studies.advise import advise

    opts = {o.name: o for o in advise(2, 5, 1, "float64", n=16)}
    assert NAME in opts and opts[NAME].exact and opts[NAME].workers == 5
    assert opts[NAME].error < 1e-12  # exact from 4 >= 3 answers: rounding only


def test_register_refuses_non_codes_and_taken_names(family):
    with pytest.raises(TypeError, match="Code subclass"):
        codes.register("not_a_code")(dict)
    with pytest.raises(ValueError, match="already registered"):
        codes.register("matdot")(Equispaced)
    with pytest.raises(ValueError, match="not 'auto'"):
        codes.register("auto")
    assert codes.CODES["matdot"] is codes.MatDot
