r"""Straggler and failure models, and their injection into ``coded_matmul``.

Latency models give each of the P workers a finish time (seconds), drawn with a
seed:

* :class:`ShiftedExponential`: :math:`T = s + E`, :math:`E\sim\mathrm{Exp}` with
  mean ``scale`` (the classical model of coded computing, Lee et al. 2018);
* :class:`Pareto`: :math:`T = x_m U^{-1/\alpha}` (heavy tail; infinite variance for
  :math:`\alpha\le 2`);
* :class:`Bimodal`: ``round(fraction·P)`` workers, chosen at random, are ``slowdown``
  times slower than the others (optionally with a multiplicative jitter).

Failure patterns choose workers that never answer: :func:`fixed_failures`,
:func:`random_failures` (s per call) and :func:`worst_case_failures` (the s workers
whose loss maximises the decoding error, for studies). A :class:`Scenario` combines
a latency model, failures, workers that *raise* and workers that *never finish* and
draws an :class:`Injection` whose :meth:`Injection.kwargs` plug into
``coded_matmul`` on any executor.

The time at which a code can decode, given the workers' finish times, is
:func:`decodable_time`: for MDS-like codes the K-th order statistic
:math:`T_{(K)}` of the finish times (K the recovery threshold); for replication the
first time every block has a copy.
"""

from __future__ import annotations

import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codes import Code
from .errors import WorkerError
from .executors import get_executor
from .executors.base import Answer, Executor, Run

__all__ = [
    "Bimodal",
    "FaultyExecutor",
    "Injection",
    "LatencyModel",
    "Pareto",
    "Scenario",
    "ShiftedExponential",
    "decodable_time",
    "fixed_failures",
    "random_failures",
    "straggler_comparison",
    "worst_case_failures",
]


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _positive(name: str, x: float, *, zero_ok: bool = False) -> float:
    x = float(x)
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'} and finite, got {x}")
    return x


# ---------------------------------------------------------------- latency models
class LatencyModel(ABC):
    """A distribution of per-worker finish times (seconds)."""

    @abstractmethod
    def sample(self, P: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Finish times of P workers, shape (P,)."""


@dataclass(frozen=True)
class ShiftedExponential(LatencyModel):
    r""":math:`T = \text{shift} + \mathrm{Exp}(\text{mean}=\text{scale})`."""

    shift: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _positive("shift", self.shift, zero_ok=True)
        _positive("scale", self.scale)

    def sample(self, P: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        return self.shift + _rng(seed).exponential(self.scale, size=int(P))


@dataclass(frozen=True)
class Pareto(LatencyModel):
    r""":math:`T = x_m U^{-1/\alpha}` (Pareto type I: :math:`P(T>t)=(x_m/t)^\alpha`)."""

    scale: float = 1.0
    alpha: float = 2.0

    def __post_init__(self) -> None:
        _positive("scale", self.scale)
        _positive("alpha", self.alpha)

    def sample(self, P: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        return self.scale * (1.0 + _rng(seed).pareto(self.alpha, size=int(P)))


@dataclass(frozen=True)
class Bimodal(LatencyModel):
    """``round(fraction·P)`` random workers take ``slowdown × base``, the others ``base``.

    ``jitter`` multiplies every time by an independent U(1, 1+jitter).
    """

    base: float = 1.0
    fraction: float = 0.1
    slowdown: float = 10.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        _positive("base", self.base)
        _positive("slowdown", self.slowdown)
        _positive("jitter", self.jitter, zero_ok=True)
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")

    def sample(self, P: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        rng = _rng(seed)
        t = np.full(int(P), self.base)
        slow = rng.choice(int(P), size=round(self.fraction * P), replace=False)
        t[slow] *= self.slowdown
        if self.jitter:
            t *= rng.uniform(1.0, 1.0 + self.jitter, size=int(P))
        return t


# ---------------------------------------------------------------- failure patterns
def fixed_failures(workers: Iterable[int], P: int) -> tuple[int, ...]:
    """A fixed set of failed workers, validated against P."""
    out = tuple(sorted({int(w) for w in workers}))
    if out and (out[0] < 0 or out[-1] >= P):
        raise ValueError(f"failed workers must be in [0, {P}); got {list(out)}")
    return out


def random_failures(
    s: int, P: int, seed: int | np.random.Generator | None = None
) -> tuple[int, ...]:
    """s distinct failed workers drawn uniformly among P."""
    if not 0 <= s <= P:
        raise ValueError(f"s={s} failures must be between 0 and P={P}")
    return tuple(sorted(int(w) for w in _rng(seed).choice(P, size=s, replace=False)))


def worst_case_failures(
    code: Code,
    s: int,
    A: Any = None,
    B: Any = None,
    *,
    max_subsets: int = 5000,
) -> tuple[tuple[int, ...], float]:
    r"""The s failed workers that maximise the error of decoding from the survivors.

    The decode uses every survivor (``coded_matmul(..., failed=F, answers=P-s)``).
    With A and B the error is measured, :math:`\|\hat C-C\|_{\max}` against
    :func:`gpucoded.reference.exact_product` (one encode, one product per worker,
    one decode per subset); without them it is the a-priori bound of the decode for
    unit-norm float64 inputs (:meth:`~gpucoded.codes.DecodeWeights.bounds`).

    Returns
    -------
    failed : tuple of int
    error : float
        The measured error, or the bound.
    """
    P = code.P
    if not 0 <= s <= P:
        raise ValueError(f"s={s} failures must be between 0 and P={P}")
    n_sub = math.comb(P, s)
    if n_sub > max_subsets:
        raise ValueError(f"{n_sub} failure sets of size {s} among {P}: above max_subsets")
    if (A is None) != (B is None):
        raise ValueError("give both A and B (measured error) or neither (a-priori bound)")
    products = exact = None
    if A is not None:
        from .backend import to_numpy  # noqa: PLC0415
        from .reference import exact_product  # noqa: PLC0415

        A, B = to_numpy(A), to_numpy(B)
        At, Bt = code.encode(A, B)
        products = At @ Bt
        exact = exact_product(A, B)
    best: tuple[tuple[int, ...], float] | None = None
    for F in itertools.combinations(range(P), s):
        S = [w for w in range(P) if w not in F]
        if not code.can_decode(S):
            continue
        if products is None:
            ib, fb = code.decode_weights(S).bounds(1.0, 1.0, np.float64, 0)
            err = ib + fb
        else:
            C = code.decode(products[S], S, shape=exact.shape, real=A.dtype.kind != "c")
            err = float(np.abs(C - exact).max())
        if best is None or err > best[1]:
            best = (F, err)
    if best is None:
        raise ValueError(f"{code!r} cannot decode after any {s} failures")
    return best


def decodable_time(
    code: Code, finish_times: Sequence[float], answers: int | None = None
) -> tuple[float, tuple[int, ...]]:
    r"""When the code could decode, given each worker's finish time.

    Answers are taken in order of finish time until ``code.can_decode`` (and at
    least ``answers`` of them); for threshold codes this is the K-th order statistic
    :math:`T_{(K)}`. Returns ``(time, workers used)``; ``(inf, ())`` if never.
    """
    order = sorted(range(len(finish_times)), key=lambda w: finish_times[w])
    need = answers or 0
    got: list[int] = []
    for w in order:
        if math.isinf(finish_times[w]):
            break
        got.append(w)
        if len(got) >= need and code.can_decode(got):
            return float(finish_times[w]), tuple(got)
    return math.inf, ()


# ---------------------------------------------------------------- injection
class _FaultyRun(Run):
    def __init__(self, inner: Run, raises: Mapping[int, BaseException]) -> None:
        self._inner = inner
        self._raises = raises

    def __iter__(self) -> Iterator[Answer]:
        for a in self._inner:
            if a.worker in self._raises:
                a = Answer(a.worker, None, self._raises[a.worker], a.start, a.end)
            yield a

    def cancel(self) -> None:
        self._inner.cancel()


class FaultyExecutor(Executor):
    """Wraps any executor: the workers in ``raises`` fail with an exception.

    The failing worker's answer is replaced by its error at the time it would have
    answered (a worker that crashes after doing its work), so ``coded_matmul``
    treats it as an erasure.
    """

    name = "faulty"

    def __init__(
        self, inner: Executor, raises: Iterable[int] | Mapping[int, BaseException]
    ) -> None:
        self.inner = inner
        if isinstance(raises, Mapping):
            self.raises = {int(w): e for w, e in raises.items()}
        else:
            self.raises = {int(w): WorkerError(f"injected failure of worker {w}") for w in raises}

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        run = self.inner.start(At, Bt, workers=workers, delays=delays, timeout=timeout)
        return _FaultyRun(run, self.raises)


@dataclass
class Injection:
    """One draw of a :class:`Scenario` for P workers.

    Attributes
    ----------
    delays : list of float
        Per-worker injected delay (``math.inf``: never finishes).
    failed : tuple of int
        Workers that fail before starting.
    raises : tuple of int
        Workers whose computation raises.
    """

    delays: list[float]
    failed: tuple[int, ...] = ()
    raises: tuple[int, ...] = ()

    def kwargs(self, executor: Any = None) -> dict[str, Any]:
        """``delays``, ``failed`` and ``executor`` arguments for ``coded_matmul``."""
        ex = executor
        if self.raises:
            ex = FaultyExecutor(get_executor(executor), self.raises)
        return {"delays": list(self.delays), "failed": list(self.failed), "executor": ex}


@dataclass
class Scenario:
    """A straggler/failure scenario to draw per call.

    Parameters
    ----------
    latency : LatencyModel, optional
        Per-worker delays (default: none).
    failed : iterable of int
        Workers that always fail.
    random_failed : int
        Additional failures drawn uniformly per call.
    raises : iterable of int
        Workers whose computation raises (an erasure at its finish time).
    never : iterable of int
        Workers that never finish (``delay = inf``).
    """

    latency: LatencyModel | None = None
    failed: Iterable[int] = ()
    random_failed: int = 0
    raises: Iterable[int] = ()
    never: Iterable[int] = ()

    def draw(self, P: int, seed: int | np.random.Generator | None = None) -> Injection:
        rng = _rng(seed)
        delays = np.zeros(P) if self.latency is None else self.latency.sample(P, rng)
        fixed = set(fixed_failures(self.failed, P))
        rest = [w for w in range(P) if w not in fixed]
        if self.random_failed > len(rest):
            raise ValueError(f"random_failed={self.random_failed} > {len(rest)} workers left")
        extra = rng.choice(rest, size=self.random_failed, replace=False) if rest else []
        failed = tuple(sorted(fixed | {int(w) for w in extra}))
        d = [float(x) for x in delays]
        for w in fixed_failures(self.never, P):
            d[w] = math.inf
        return Injection(d, failed, fixed_failures(self.raises, P))


# ---------------------------------------------------------------- demo
def straggler_comparison(
    n: int = 600,
    m: int = 3,
    delay: float = 1.0,
    executor: Any = "threads",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time saved by coding when one worker straggles (the ``gpucoded demo`` scenario).

    Worker 0 of every scheme is delayed by ``delay`` seconds; every scheme stores
    1/m of A and B per worker. Uncoded must wait for it; MatDot (P = 2m) and
    ε-MatDot (P = m + 1) decode without it.

    Returns
    -------
    rows : list of dict
        ``code``, ``P``, ``seconds`` (wall clock of the call), ``max_error``
        (against the exact product) and ``used`` workers.
    """
    from .api import coded_matmul  # noqa: PLC0415
    from .reference import exact_product  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / n
    B = rng.standard_normal((n, n)) / n
    C = exact_product(A, B)
    rows = []
    for name, P in (("uncoded", m), ("matdot", 2 * m), ("approx_matdot", m + 1)):
        delays = [delay] + [0.0] * (P - 1)
        t0 = time.perf_counter()
        Ch, info = coded_matmul(
            A, B, name, m=m, P=P, delays=delays, executor=executor, return_info=True
        )
        dt = time.perf_counter() - t0
        err = float(np.abs(Ch - C).max())
        rows.append({"code": name, "P": P, "seconds": dt, "max_error": err, "used": info.used})
    return rows
