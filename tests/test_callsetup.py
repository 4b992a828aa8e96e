"""The one call set-up (gpucoded.callsetup): shared caches, one default, one warning
mechanism, the same set-up for every entry point."""

from __future__ import annotations

import gc
import threading
import warnings

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded import autocode, callsetup
from gpucoded.errors import InaccurateResultWarning
from gpucoded.executors import SerialExecutor
from gpucoded.formats import get_format
from gpucoded.progressive import progressive_matmul
from gpucoded.stragglers import ShiftedExponential


class FormatExecutor(SerialExecutor):
    """Serial workers that report computing in ``fmt``."""

    def __init__(self, fmt: str) -> None:
        self.fmt = get_format(fmt)

    def compute_format(self, dtype):
        return self.fmt


@pytest.fixture
def fresh_caches():
    for c in (callsetup.NAMED_CODES, callsetup.AUTO_CHOICES, callsetup.FITTED):
        c.clear()
    yield
    for c in (callsetup.NAMED_CODES, callsetup.AUTO_CHOICES, callsetup.FITTED):
        c.clear()


def test_repeated_named_call_solves_nothing(fresh_caches, monkeypatch):
    """The second coded_matmul(A, B, "approx_matdot", m=4, P=6) reuses the first's code
    and decode weights: no solve, and DecodeInfo.cached says so (False the first time:
    it was True after a fresh solve)."""
    A, B = unit_gaussian((32, 32), 1), unit_gaussian((32, 32), 2)
    kw = dict(m=4, P=6, executor="serial", return_info=True)
    _, first = gpucoded.coded_matmul(A, B, "approx_matdot", **kw)
    assert first.decode.cached is False
    solves = []
    cls = type(first.code)
    real = cls._solve
    monkeypatch.setattr(cls, "_solve", lambda self, *a: solves.append(a) or real(self, *a))
    C, again = gpucoded.coded_matmul(A, B, "approx_matdot", **kw)
    assert again.code is first.code
    assert again.decode.cached is True
    assert not solves
    # an operator with the same parameters shares the code (and so its weights)
    cm = gpucoded.CodedMatrix(A, "approx_matdot", m=4, P=6, executor="serial")
    assert cm.code is first.code
    cm @ B
    assert not solves


def test_named_codes_are_keyed_by_every_parameter(fresh_caches):
    """Different m, P, options or worker dtype give different codes."""
    A, B = unit_gaussian((16, 16), 3), unit_gaussian((16, 16), 4)
    codes = []
    for name, opts in [
        ("approx_matdot", dict(m=2, P=4)),
        ("approx_matdot", dict(m=2, P=5)),
        ("approx_matdot", dict(m=3, P=5)),
        ("approx_matdot", dict(m=2, P=4, gamma=0.5)),
        ("matdot", dict(m=2, P=4)),
    ]:
        # keys are under test, not accuracy (gamma=0.5 is far from the tuned points)
        _, info = gpucoded.coded_matmul(
            A, B, name, executor="serial", return_info=True, on_inaccurate="ignore", **opts
        )
        codes.append(info.code)
    _, info = gpucoded.coded_matmul(
        A.astype(np.float32), B.astype(np.float32), "approx_matdot", m=2, P=4,
        executor="serial", return_info=True, on_inaccurate="ignore",
    )  # fmt: skip
    codes.append(info.code)
    assert len({id(c) for c in codes}) == len(codes)
    assert len(callsetup.NAMED_CODES) == len(codes)


def test_named_code_cache_is_bounded(fresh_caches, monkeypatch):
    """At most ``maxsize`` codes, least recently used evicted first."""
    monkeypatch.setattr(callsetup.NAMED_CODES, "maxsize", 3)
    A, B = unit_gaussian((16, 16), 5), unit_gaussian((16, 16), 6)
    infos = []
    for P in range(4, 10):
        _, info = gpucoded.coded_matmul(A, B, "matdot", m=2, P=P, executor="serial",
                                        return_info=True)  # fmt: skip
        infos.append(info)
        assert len(callsetup.NAMED_CODES) <= 3
    _, last = gpucoded.coded_matmul(A, B, "matdot", m=2, P=9, executor="serial", return_info=True)
    assert last.code is infos[-1].code  # kept
    _, first = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor="serial", return_info=True)
    assert first.code is not infos[0].code  # evicted, built anew


def test_unhashable_options_are_built_each_time(fresh_caches):
    """An option that cannot be a key (a list) is not cached, and still works."""
    key = callsetup._freeze(("x", 2, 4, {"points": [[1.0, 2.0]], "a": {1, 2}}))
    assert key is None
    assert callsetup._freeze(("x", 2, 4, {"gamma": 0.5, "pts": np.arange(3.0)})) is not None


def test_auto_choice_cached_per_format_shape_P_stragglers_rtol(fresh_caches, monkeypatch):
    """code="auto" chooses once per (P, stragglers, format, rtol, shape); progressive
    calls choose for the executor's worker format and the product's shape too (they
    assumed float64 and 100³ before)."""
    calls = []
    real = autocode.choose_code

    def spy(P, s, fmt, *, rtol=None, shape=(100, 100, 100), latency=None):
        calls.append((P, s, get_format(fmt).name, rtol, tuple(shape)))
        return real(P, s, fmt, rtol=rtol, shape=shape, latency=latency)

    monkeypatch.setattr(autocode, "choose_code", spy)
    A, B = unit_gaussian((40, 30), 7), unit_gaussian((30, 20), 8)
    # caching is under test here, not accuracy: the choice meets rtol by its model, and
    # the measured check may still flag it (it over-estimates by up to sqrt(l))
    kw = dict(P=8, stragglers=3, rtol=1e-2, return_info=True, on_inaccurate="ignore")
    _, i1 = gpucoded.coded_matmul(A, B, "auto", executor="serial", **kw)
    _, i2 = gpucoded.coded_matmul(A, B, "auto", executor="serial", **kw)
    assert i2.code is i1.code and calls == [(8, 3, "float64", 1e-2, (40, 30, 20))]
    gpucoded.coded_matmul(A, B[:, :10], "auto", executor="serial", **kw)  # another shape
    assert len(calls) == 2
    # a latency model is part of the key: a new model chooses anew, an equal one not
    lat = ShiftedExponential(0.1, 0.05)
    for model in (lat, ShiftedExponential(0.1, 0.05)):
        gpucoded.coded_matmul(A, B, "auto", executor="serial", latency=model, **kw)
    assert len(calls) == 3
    f32 = FormatExecutor("float32")
    steps = list(
        progressive_matmul(
            A, B, "auto", P=8, stragglers=3, rtol=1e-2, executor=f32, on_inaccurate="ignore"
        )
    )
    assert calls[-1] == (8, 3, "float32", 1e-2, (40, 30, 20))
    assert steps and steps[0][1].format == "float32"


def test_auto_cache_is_bounded(fresh_caches, monkeypatch):
    monkeypatch.setattr(callsetup.AUTO_CHOICES, "maxsize", 2)
    A = unit_gaussian((20, 20), 9)
    for l in (3, 4, 5, 6):
        gpucoded.coded_matmul(A, A[:, :l], "auto", P=6, executor="serial")
        assert len(callsetup.AUTO_CHOICES) <= 2


def test_fits_live_as_long_as_their_code(fresh_caches):
    """The fit cache holds codes weakly: a dropped code leaves no entry; a code's own
    entries are bounded."""
    A, B = unit_gaussian((16, 16), 10), unit_gaussian((16, 16), 11)
    code = gpucoded.make_code("chebyshev", m=2, P=4)
    gpucoded.coded_matmul(A, B, code, executor="serial")
    gpucoded.coded_matmul(A.astype(np.float32), B.astype(np.float32), code, executor="serial")
    assert callsetup.FITTED.entries(code) == 2  # float64 and float32 workers
    n = len(callsetup.FITTED)
    del code
    gc.collect()
    assert len(callsetup.FITTED) == n - 1
    cache = callsetup.FitCache(per_code=3)
    code = gpucoded.make_code("chebyshev", m=2, P=4)
    for i in range(10):
        cache.get(code, i, lambda: code)
        assert cache.entries(code) <= 3


def test_bounded_cache_under_threads():
    """Concurrent gets: every caller of a key gets the one stored value; never more
    than maxsize entries."""
    cache = callsetup.BoundedCache(16)
    seen: dict[int, set[int]] = {}
    lock = threading.Lock()

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for k in rng.integers(0, 8, 300):
            v = cache.get(int(k), object)
            with lock:
                seen.setdefault(int(k), set()).add(id(v))
            assert len(cache) <= 16

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 8
    assert all(len(ids) == 1 for ids in seen.values())  # 8 keys fit: none evicted


def _inaccurate():
    return unit_gaussian((40, 40), 7), unit_gaussian((40, 40), 8)


def test_warnings_point_at_the_users_line_from_every_entry_point():
    """coded_matmul, CodedMatrix (both sides) and progressive_matmul warn at the line
    that called them (one mechanism: frames walked out of the package)."""
    A, B = _inaccurate()
    opts = dict(m=3, P=5, gamma=20.0, executor="serial")
    cm = gpucoded.CodedMatrix(A, "approx_matdot", **opts)
    cmb = gpucoded.CodedMatrix(B, "approx_matdot", **opts)
    for call in (
        lambda: gpucoded.coded_matmul(A, B, "approx_matdot", **opts),
        lambda: cm @ B,
        lambda: cm.matmul(B),
        lambda: A @ cmb,
        lambda: list(progressive_matmul(A, B, "approx_matdot", until_exact=False, **opts)),
    ):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            call()
        hits = [r for r in rec if issubclass(r.category, InaccurateResultWarning)]
        assert hits, "no warning"
        assert all(r.filename == __file__ for r in hits), [r.filename for r in hits]


def test_one_default_code_for_every_entry_point():
    """No code: the exact Chebyshev default everywhere (progressive_matmul used
    ε-MatDot): one estimate, already exact."""
    A, B = unit_gaussian((20, 20), 12), unit_gaussian((20, 20), 13)
    steps = list(progressive_matmul(A, B, executor="serial"))
    assert len(steps) == 1 and steps[0][1].interp_bound == 0
    _, info = gpucoded.coded_matmul(A, B, executor="serial", return_info=True)
    cm = gpucoded.CodedMatrix(A, executor="serial")
    assert info.code is cm.code  # the same shared default code
    assert type(info.code).__name__ == "ChebyshevMatDot" and info.code.m == callsetup.DEFAULT_M


def test_deliver_fills_out_and_returns_info():
    A, B = unit_gaussian((10, 8), 14), unit_gaussian((8, 6), 15)
    out = np.empty((10, 6))
    C, info = gpucoded.CodedMatrix(B, executor="serial").rmatmul(A, out=out, return_info=True)
    assert C is out and info.used
    C2 = gpucoded.coded_matmul(A, B, executor="serial", out=np.empty((10, 6)))
    np.testing.assert_allclose(C, C2, rtol=0, atol=1e-13)
