"""Every code: encode/decode from every subset, bounds asserted (not tuned)."""

from __future__ import annotations

import itertools
from itertools import combinations

import numpy as np
import pytest
from _util import unit_gaussian
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpucoded import codes
from gpucoded.points import matdot_radius, polydot_radius
from gpucoded.reference import exact_product


def _decode_each(code, prods, C, inner, subsets):
    """(S, max error, DecodeInfo) of the decode from every subset S (norms taken as 1)."""
    for S in subsets:
        Ch, info = code.decode(
            prods[list(S)], S, shape=C.shape, norms=(1.0, 1.0), inner=inner, return_info=True
        )
        assert Ch.shape == C.shape
        yield S, float(np.abs(Ch - C).max()), info


EXACT = [
    codes.MatDot(3, 6),
    codes.ChebyshevMatDot(3, 6),
    codes.PolyDot(2, 2, 11),
    codes.PolynomialCode(2, 3, 8),
    codes.Replication(3, 2),
    codes.Uncoded(3),
]


def _all_decodable_subsets(code, sizes):
    for r in sizes:
        for S in itertools.combinations(range(code.P), r):
            if code.can_decode(S):
                yield S


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", EXACT, ids=repr)
def test_exact_codes_every_subset(code, dtype):
    """For every subset at or above threshold: error ≤ the derived rounding bound."""
    A = unit_gaussian((37, 29), 1, dtype)
    B = unit_gaussian((29, 23), 2, dtype)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    assert At.shape[0] == Bt.shape[0] == code.P
    assert At.dtype == dtype
    prods = At @ Bt
    n_checked = 0
    for S in _all_decodable_subsets(code, range(code.recovery_threshold, code.P + 1)):
        order = list(S)[::-1]  # answers in any order
        Ch, info = code.decode(
            prods[order],
            order,
            shape=C.shape,
            norms=(1.0, 1.0),
            inner=At.shape[2],
            return_info=True,
        )
        assert Ch.dtype == dtype and Ch.shape == C.shape
        err = float(np.abs(Ch - C).max())
        assert info.interp_bound == 0.0
        assert err <= info.error_bound, (S, err, info)
        n_checked += 1
    assert n_checked > 0


@pytest.mark.parametrize("code", EXACT, ids=repr)
def test_below_threshold_is_a_clear_error(code):
    """The threshold is tight: some subset one smaller cannot decode, and says so."""
    At, Bt = code.encode(np.ones((6, 6)), np.ones((6, 6)))
    bad = [
        S
        for S in itertools.combinations(range(code.P), code.recovery_threshold - 1)
        if not code.can_decode(S)
    ]
    assert bad
    S = list(bad[0])
    with pytest.raises(ValueError, match="needs|no answer"):
        code.decode((At @ Bt)[S], S)


def _adversarial_matdot(n, m, seed):
    """All mass on A_m and B_1: the pair feeding the highest coefficient x^(2m-2)."""
    A = np.zeros((n, n))
    B = np.zeros((n, n))
    w = n // m
    A[:, (m - 1) * w : m * w] = unit_gaussian((n, w), seed)
    B[:w, :] = unit_gaussian((w, n), seed + 1)
    # make the neglected coefficient as large as the norm allows: rank-one aligned blocks
    A[:, (m - 1) * w : m * w] = np.abs(A[:, (m - 1) * w : m * w])
    B[:w, :] = np.abs(B[:w, :])
    return A / np.linalg.norm(A), B / np.linalg.norm(B)


@pytest.mark.parametrize("m,P", [(2, 4), (3, 6), (4, 6)])
@pytest.mark.parametrize("inputs", ["random", "adversarial"])
def test_approx_matdot_meets_eq16_bound(m, P, inputs):
    """Points by Eq. (16) give max error ≤ ε from ANY m answers (Corollary 1).

    ε is chosen so that the rounding error (bounded a priori by the decode's fp bound)
    is far below it; the assertion is err ≤ ε + fp_bound.
    """
    eps = 1e-2
    code = codes.ApproxMatDot(m, P, eps=eps, norm_bound=1.0)
    assert code.delta < matdot_radius(m, eps, 1.0)
    n = 24
    if inputs == "random":
        A, B = unit_gaussian((n, n), 3), unit_gaussian((n, n), 4)
    else:
        A, B = _adversarial_matdot(n, m, 5)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    for S, err, info in _decode_each(code, prods, C, At.shape[2], combinations(range(P), m)):
        assert info.fp_bound < eps / 10  # the regime where the theorem is the binding limit
        assert err <= eps + info.fp_bound, (S, err)
        assert err <= info.error_bound
        assert info.interp_bound <= code.theorem_bound(m, 1.0) * (1 + 1e-12)


@pytest.mark.parametrize("p,q,P,eps", [(2, 1, 6, 1e-2), (2, 2, 10, 0.5), (1, 3, 5, 1e-2)])
def test_approx_polydot_meets_eq14_bound(p, q, P, eps):
    """Points by Eq. (14), the paper's decoder (d_il answers per block): error ≤ ε.

    ε per case is the smallest round value for which float64 rounding stays far below
    ε (Eq. (14) with p²q = 8 points forces γ ≈ 14/ε, condition ≈ γ⁷).
    """
    code = codes.ApproxPolyDot(p, q, P, eps=eps, norm_bound=1.0, decode_points="paper")
    assert code.recovery_threshold == p * p * q
    assert code.delta < polydot_radius(p, q, eps, 1.0)
    A, B = unit_gaussian((20, 18), 6), unit_gaussian((18, 22), 7)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    for _, err, info in _decode_each(
        code, prods, C, At.shape[2], combinations(range(P), p * p * q)
    ):
        assert info.fp_bound < eps / 10
        assert err <= eps + info.fp_bound
        assert info.interp_bound <= code.theorem_bound(None, 1.0) * (1 + 1e-12)


def test_more_answers_reduce_the_error():
    """With m + r answers the interpolation error falls like δ^(r+1): check the ratio."""
    m, P = 3, 6
    code = codes.ApproxMatDot(m, P, gamma=1000.0)
    A, B = unit_gaussian((30, 30), 8), unit_gaussian((30, 30), 9)
    C = exact_product(A, B)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    worst = []
    for r in range(m, 2 * m - 1):
        worst.append(
            max(
                float(np.abs(code.decode(prods[list(S)], S, shape=C.shape) - C).max())
                for S in itertools.combinations(range(P), r)
            )
        )
    # each extra answer gains roughly a factor δ = 1e-3; demand at least 10x
    for a, b in itertools.pairwise(worst):
        assert b < a / 10, worst


def test_approx_polydot_uses_more_answers():
    code = codes.ApproxPolyDot(2, 2, 11, gamma=50.0)
    A, B = unit_gaussian((16, 16), 10), unit_gaussian((16, 16), 11)
    C = exact_product(A, B)
    prods = np.matmul(*code.encode(A, B))
    e8 = np.abs(code.decode(prods[:8], range(8), shape=C.shape) - C).max()
    e10 = np.abs(code.decode(prods[:10], range(10), shape=C.shape) - C).max()
    assert e10 < e8 / 5


@pytest.mark.parametrize("p,q", [(1, 3), (2, 2), (1, 2), (2, 1)])
def test_converse_null_space_construction(p, q):
    """Appendix B: with pq−1 answers there are A, B with every answer 0 but ‖AB‖ large.

    The decoder sees zeros for both (A, B) and (−A, B), so one of them is decoded with
    max error ≥ η²/(n·min(p,q)); the code itself refuses to decode so few answers.
    """
    P = p * p * q + q + 1
    code = codes.ApproxPolyDot(p, q, P, gamma=10.0)
    n, eta = 12, 1.0
    for S in itertools.combinations(range(P), p * q - 1):
        Gam = code.GA[list(S)]
        rho = np.linalg.svd(Gam)[2][-1]  # unit null vector of the (pq-1)×pq system
        Q = rho.reshape(p, q)
        Abar = eta * np.sqrt(p * q) / n * np.ones((n // p, n // q))
        Bbar = eta * np.sqrt(p * q) / n * np.ones((n // q, n // p))
        A, B = np.kron(Q, Abar), np.kron(Q.T, Bbar)
        assert np.linalg.norm(A) == pytest.approx(eta) and np.linalg.norm(B) == pytest.approx(eta)
        At, Bt = code.encode(A, B)
        prods = np.matmul(At[list(S)], Bt[list(S)])
        assert np.abs(prods).max() <= 1e-14  # every answer vanishes
        # any decoder maps the zero answers to one output d(0); for d(0) = 0:
        assert np.abs(A @ B).max() >= eta**2 / (n * min(p, q)) * (1 - 1e-12)
        with pytest.raises(ValueError):
            code.decode(prods, S)


def test_replication_and_uncoded_partial():
    code = codes.Replication(3, 2)
    assert code.P == 6 and code.recovery_threshold == 5
    assert code.can_decode([0, 1, 2]) and not code.can_decode([0, 3, 1, 4])
    A, B = unit_gaussian((9, 9), 12), unit_gaussian((9, 9), 13)
    prods = np.matmul(*code.encode(A, B))
    C = code.decode(prods[[0, 1, 2]], [0, 1, 2], shape=(9, 9))
    np.testing.assert_allclose(C, A @ B, atol=1e-15)
    # uncoded with a failure, decoded partially, drops the missing block's term
    u = codes.Uncoded(3)
    pu = np.matmul(*u.encode(A, B))
    Cp = u.decode(pu[[0, 2]], [0, 2], shape=(9, 9), partial=True)
    np.testing.assert_allclose(Cp, A[:, :3] @ B[:3] + A[:, 6:] @ B[6:], atol=1e-15)


def test_weights_are_cached():
    code = codes.ApproxMatDot(4, 8, gamma=100.0)
    w1 = code.decode_weights([5, 1, 2, 7])
    w2 = code.decode_weights([1, 2, 5, 7])
    assert w1 is w2


def test_make_code_names_and_errors():
    for name in codes.CODES:
        c = codes.make_code(name, m=4)
        assert c.P >= c.recovery_threshold
        assert c.m == 4, name  # the code's m is the m it was built from (coded_matmul checks)
    with pytest.raises(ValueError, match="valid names"):
        codes.make_code("matdoot", m=3)
    with pytest.raises(ValueError, match="recovery threshold"):
        codes.MatDot(3, 4)


@pytest.mark.parametrize(
    "basis_code", [codes.ChebyshevMatDot(40, 80), codes.ChebyshevMatDot(12, 30)]
)
def test_chebyshev_large_m_is_accurate(basis_code):
    """cos(k arccos x) evaluation keeps Chebyshev codes exact far past m≈30."""
    code = basis_code
    A, B = unit_gaussian((code.m * 2, code.m * 2), 14), unit_gaussian((code.m * 2, 7), 15)
    C = exact_product(A, B)
    prods = np.matmul(*code.encode(A, B))
    S = sorted(np.random.default_rng(16).choice(code.P, code.recovery_threshold, replace=False))
    Ch, info = code.decode(prods[S], S, shape=C.shape, norms=(1, 1), inner=2, return_info=True)
    assert np.abs(Ch - C).max() <= info.error_bound
    assert info.cond < 1e6


# ---------------------------------------------------------------- property-based


@st.composite
def _case(draw):
    family = draw(
        st.sampled_from(
            [
                "matdot",
                "approx_matdot",
                "chebyshev",
                "polydot",
                "approx_polydot",
                "polynomial",
                "replication",
            ]
        )
    )
    if family in ("polydot", "approx_polydot", "polynomial"):
        p, q = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        code = codes.make_code(family, p=p, q=q, P=None)
        code = codes.make_code(
            family, p=p, q=q, P=code.recovery_threshold + draw(st.integers(0, 2))
        )
    elif family == "replication":
        code = codes.Replication(draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    else:
        m = draw(st.integers(1, 4))
        thr = m if family == "approx_matdot" else 2 * m - 1
        opts = (
            {"gamma": draw(st.sampled_from([3.0, 30.0, 300.0]))}
            if family == "approx_matdot"
            else {}
        )
        code = codes.make_code(family, m=m, P=thr + draw(st.integers(0, 2)), **opts)
    n, k, l = (draw(st.integers(1, 12)) for _ in range(3))
    r = draw(st.integers(code.recovery_threshold, code.P))
    S = draw(st.permutations(range(code.P)))[:r]
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return code, (n, k, l), S, dtype, draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(_case())
def test_property_any_code_any_subset_within_bound(case):
    """Any code, shape, dtype and decodable answer set: error ≤ the reported bound."""
    code, (n, k, l), S, dtype, seed = case
    assume(code.can_decode(S))
    A = np.random.default_rng(seed).standard_normal((n, k)).astype(dtype)
    B = np.random.default_rng(seed + 1).standard_normal((k, l)).astype(dtype)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    Ch, info = code.decode(
        prods[S],
        S,
        shape=(n, l),
        return_info=True,
        inner=At.shape[2],
        norms=(float(np.linalg.norm(A)), float(np.linalg.norm(B))),
    )
    assert Ch.shape == (n, l) and Ch.dtype == dtype
    assert np.abs(Ch - exact_product(A, B)).max() <= info.error_bound


# ------------------------------------------------------------ traits, typed results
@pytest.mark.parametrize("name", ["uncoded", "replication", "matdot", "approx_matdot",
                                  "polydot", "approx_polydot", "chebyshev", "circle",
                                  "polynomial"])  # fmt: skip
def test_each_family_declares_its_traits_and_solves_into_a_typed_result(name):
    """make_code builds P = default_P(m) workers; ``approximate`` and ``basis`` are the
    family's declaration (ε-codes approximate, polynomial codes carry their basis);
    ``_solve`` returns a WeightSolution whose W decodes a product within its bound."""
    cls = codes.CODES[name]
    code = codes.make_code(name, m=4)
    assert type(code) is cls and code.P == cls.default_P(4) and code.name == name
    assert code.approximate == name.startswith("approx")
    assert (code.basis is None) == (name in ("uncoded", "replication"))
    S = tuple(range(code.recovery_threshold))
    sol = code._solve(S, False, code._weights_format(None))
    assert isinstance(sol, codes.WeightSolution) and sol.W.shape == (code.grid.n_c, len(S))
    A = np.random.default_rng(1).uniform(1.0, 2.0, (8, 12))  # non-negative, non-centred
    B = np.random.default_rng(2).uniform(1.0, 2.0, (12, 8))
    At, Bt = code.encode(A, B)
    C, info = code.decode(np.matmul(At, Bt)[list(S)], S, shape=(8, 8), norms=(
        np.linalg.norm(A), np.linalg.norm(B)), inner=At.shape[2], return_info=True)  # fmt: skip
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_circle_weights_class_comes_from_the_hook_not_a_swap():
    """CircleMatDot keeps decoder='real'/'complex' as given (no overwrite after the base
    constructor) and its weights are built as RealPartWeights / DecodeWeights."""
    from gpucoded.codes.circle import RealPartWeights

    real, cplx = codes.CircleMatDot(3, 5), codes.CircleMatDot(3, 5, decoder="complex")
    assert (real.decoder, cplx.decoder) == ("real", "complex")
    assert type(real.decode_weights([0, 1, 2])) is RealPartWeights
    assert type(cplx.decode_weights([0, 1, 2])) is codes.DecodeWeights
    with pytest.raises(ValueError, match="decoder must be one of"):
        codes.MatDot(3, 6, decoder="real")  # a circle decoder is not a MatDot one


def test_retune_hooks_of_the_epsilon_codes():
    """An ε-code with automatic points re-tunes itself for another format (same grid,
    workers, decoder); one with the user's gamma stays itself; the hints name the
    constructor a user would call."""
    from gpucoded.formats import FORMATS

    f32 = FORMATS["float32"]
    auto = codes.ApproxMatDot(3, 5, decoder="interpolation")
    new = auto.retuned(f32)
    assert type(new) is codes.ApproxMatDot and new is not auto
    assert (new.m, new.P, new.worker_dtype, new.decoder) == (3, 5, "float32", "interpolation")
    assert new.gamma < auto.gamma  # float32 needs points further from 0
    fixed = codes.ApproxPolyDot(2, 1, 6, gamma=50.0)
    assert fixed.retuned(f32) is fixed
    assert fixed.rebuild_hint(f32) == "ApproxPolyDot(2, 1, 6, dtype='float32')"
    assert auto.rebuild_hint(f32) == "ApproxMatDot(3, 5, dtype='float32')"
    assert codes.MatDot(3, 6).retuned(f32).P == 6  # exact codes: themselves
