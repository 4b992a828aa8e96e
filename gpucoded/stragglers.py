r"""Straggler and failure models, and their injection into ``coded_matmul``.

Latency models give each of the P workers a finish time (seconds), drawn with a
seed:

* :class:`ShiftedExponential`: :math:`T = s + E`, :math:`E\sim\mathrm{Exp}` with
  mean ``scale`` (the classical model of coded computing, Lee et al. 2018);
* :class:`Pareto`: :math:`T = x_m U^{-1/\alpha}` (heavy tail; infinite variance for
  :math:`\alpha\le 2`);
* :class:`Bimodal`: ``round(fraction·P)`` workers, chosen at random, are ``slowdown``
  times slower than the others (optionally with a multiplicative jitter);
* :class:`OneSlowDevice`: one *fixed* worker is ``slowdown`` times slower (the common
  multi-GPU case: one device throttled or shared), the others ``base`` with jitter.

Failure patterns choose workers that never answer: :func:`fixed_failures`,
:func:`random_failures` (s per call) and :func:`worst_case_failures` (the s workers
whose loss maximises the decoding error, for studies). A :class:`Scenario` combines
a latency model, failures, workers that *raise* and workers that *never finish* and
draws an :class:`Injection` whose :meth:`Injection.kwargs` plug into
``coded_matmul`` on any executor.

The time at which a code can decode, given the workers' finish times, is
:func:`decodable_time`: for MDS-like codes the K-th order statistic
:math:`T_{(K)}` of the finish times (K the recovery threshold); for replication the
first time every block has a copy. The time of hedged execution
(:mod:`gpucoded.hedging`) given each worker's latency is :func:`hedged_time`.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .codes import Code
from .errors import WorkerError
from .executors import get_executor
from .executors.base import Answer, Executor, Run
from .formats import Format

__all__ = [
    "ERASURE_FAULTS",
    "Bimodal",
    "FaultyExecutor",
    "Injection",
    "LatencyModel",
    "OneSlowDevice",
    "Pareto",
    "Scenario",
    "ShiftedExponential",
    "decodable_time",
    "hedged_time",
    "fixed_failures",
    "random_failures",
    "tamper",
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


@dataclass(frozen=True)
class OneSlowDevice(LatencyModel):
    """Worker ``worker`` takes ``slowdown × base``, every other ``base``; all times are
    multiplied by independent U(1, 1+jitter) draws."""

    base: float = 1.0
    slowdown: float = 5.0
    worker: int = 0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        _positive("base", self.base)
        _positive("slowdown", self.slowdown)
        _positive("jitter", self.jitter, zero_ok=True)
        if self.worker < 0:
            raise ValueError(f"worker must be >= 0, got {self.worker}")

    def sample(self, P: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        if not 0 <= self.worker < P:
            raise ValueError(f"the slow worker {self.worker} is not among P={P} workers")
        t = np.full(int(P), self.base)
        t[self.worker] *= self.slowdown
        if self.jitter:
            t *= _rng(seed).uniform(1.0, 1.0 + self.jitter, size=int(P))
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
        from .backend import to_numpy
        from .reference import exact_product

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
            C = code.decode(  # data: the weights coded_matmul applies (decoder "auto")
                products[S], S, shape=exact.shape, real=A.dtype.kind != "c", data=(A, B)
            )
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


def hedged_time(
    latency: Sequence[float],
    m: int,
    hedge_after: float | None = None,
    *,
    offsets: Sequence[float] | None = None,
    factor: float = 2.0,
    floor: float = 0.02,
) -> tuple[float, list[tuple[int, int, float]]]:
    r"""When hedged execution (:mod:`gpucoded.hedging`) has every task, given latencies.

    A copy issued to worker w at time t answers at :math:`t+L_w` (``latency[w]``,
    ``math.inf``: never); task j's first copy runs on worker j from time 0 and answers
    at ``offsets[j]`` + :math:`L_j` (``offsets``: a start lag, e.g. the serial
    executor's one-after-another clock; default 0). Workers m..P-1 are spares. A task
    whose newest copy was issued :math:`H` ago is re-issued to the lowest idle spare
    (tasks in index order); the first copy to answer wins and frees the spares of the
    task's copies. :math:`H` = ``hedge_after``, or
    :math:`\max(	ext{floor},	ext{factor}\cdot\mathrm{median})` of the durations of
    the copies won so far (no re-issue before the first). An answer at the same
    instant as a re-issue is taken first. This is an event simulation written apart
    from :func:`gpucoded.hedging.run_tasks`, which must agree with it exactly on the
    serial executor's virtual clock.

    Returns
    -------
    time : float
        When the last task was won (``inf`` if never).
    reissues : list of (task, spare, time)
    """
    P = len(latency)
    if not 1 <= m <= P:
        raise ValueError(f"need 1 <= m <= P; got m={m}, P={P}")
    off = [0.0] * m if offsets is None else [float(x) for x in offsets]
    live: dict[int, list[tuple[int, float, float]]] = {
        j: [(j, 0.0, off[j] + float(latency[j]))] for j in range(m)
    }  # task -> copies (worker, issued, answers at)
    won: dict[int, float] = {}
    idle = list(range(m, P))
    durations: list[float] = []
    reissues: list[tuple[int, int, float]] = []
    now = 0.0
    while len(won) < m:
        H = hedge_after
        if H is None and durations:
            H = max(floor, factor * float(np.median(durations)))
        nxt = min((a for j in live for (_, _, a) in live[j]), default=math.inf)
        hedge = math.inf
        if H is not None and idle:
            hedge = max(now, min(max(i for (_, i, _) in live[j]) + H for j in live))
        if math.isinf(nxt) and math.isinf(hedge):
            return math.inf, reissues
        if hedge < nxt:  # (a spare freed late re-issues an overdue task at once)
            now = hedge
            for j in sorted(live):
                if idle and hedge >= max(i for (_, i, _) in live[j]) + H:
                    w = idle.pop(0)
                    live[j].append((w, hedge, hedge + float(latency[w])))
                    reissues.append((j, w, hedge))
            continue
        j, (w, issued, at) = min(
            ((j, c) for j in live for c in live[j] if c[2] == nxt), key=lambda x: (x[0], x[1][0])
        )
        now = won[j] = at
        durations.append(at - issued)
        idle = sorted(idle + [x for (x, _, _) in live.pop(j) if x >= m])
    return max(won.values()), reissues


# ---------------------------------------------------------------- injection
#: Fault kinds of :class:`FaultyExecutor` that make a worker an erasure (the answer
#: checks of ``coded_matmul`` see them on arrival); ``("perturb", e)`` and
#: ``("scale", f)`` are silent corruptions only a ``verify=`` check can see.
ERASURE_FAULTS = ("raise", "shape", "dtype", "nan", "inf", "never")


def tamper(ans: Answer, fault: Any) -> Answer | None:
    """The answer as a faulty worker delivers it (None: it never arrives).

    ``fault``: an exception instance (the worker raises it after its work), one of
    :data:`ERASURE_FAULTS`, ``("perturb", e)`` (adds e to the first entry) or
    ``("scale", f)`` (multiplies the answer by f). Answers that already failed pass
    through unchanged, except that an exception fault replaces their error.
    """
    if isinstance(fault, BaseException):
        return Answer(ans.worker, None, fault, ans.start, ans.end)
    if not ans.ok:
        return ans
    P = ans.product
    if fault == "never":
        return None
    if fault == "raise":
        err = WorkerError(f"injected fault of worker {ans.worker}")
        return replace(ans, product=None, error=err)
    if fault == "shape":
        return replace(ans, product=P[None])
    if fault == "dtype":
        if P.dtype.kind == "c":
            other = np.complex64 if P.dtype != np.complex64 else np.complex128
        else:
            other = np.float32 if P.dtype != np.float32 else np.float64
        return replace(ans, product=P.astype(other))
    if fault in ("nan", "inf"):
        Q = P.copy()
        Q.flat[0] = np.nan if fault == "nan" else np.inf
        return replace(ans, product=Q)
    kind, value = fault
    if kind == "perturb":
        Q = P.copy()
        Q.flat[0] += value
        return replace(ans, product=Q)
    if kind == "scale":
        return replace(ans, product=P * value)
    raise ValueError(f"unknown fault {fault!r}")


class _FaultyRun(Run):
    def __init__(self, inner: Run, faults: Mapping[int, Any], interrupt_after: int | None) -> None:
        self._inner = inner
        self._faults = faults
        self._interrupt_after = interrupt_after

    def __iter__(self) -> Iterator[Answer]:
        for k, a in enumerate(self._inner):
            if self._interrupt_after is not None and k >= self._interrupt_after:
                raise KeyboardInterrupt  # Ctrl-C while the caller consumes answers
            if a.worker in self._faults:
                a = tamper(a, self._faults[a.worker])
                if a is None:
                    continue
            yield a

    def cancel(self) -> None:
        self._inner.cancel()

    @property
    def background(self) -> bool:  # type: ignore[override]
        return self._inner.background


class FaultyExecutor(Executor):
    """Wraps any executor and injects faults into chosen workers' answers.

    Parameters
    ----------
    inner : Executor
        Runs the workers (its :meth:`compute_format` is reported unchanged).
    faults : iterable of int, or mapping worker -> fault
        Workers listed without a fault raise :class:`~gpucoded.errors.WorkerError`
        after their work (an erasure); a mapping gives each worker its fault, see
        :func:`tamper` (an exception instance, a kind of :data:`ERASURE_FAULTS`, or a
        silent ``("perturb", e)`` / ``("scale", f)``).
    interrupt_after : int, optional
        Raise ``KeyboardInterrupt`` in the consumer's loop after this many answers
        (what Ctrl-C does while ``coded_matmul`` waits).
    """

    name = "faulty"

    def __init__(
        self,
        inner: Executor,
        faults: Iterable[int] | Mapping[int, Any] = (),
        *,
        interrupt_after: int | None = None,
    ) -> None:
        self.inner = inner
        if isinstance(faults, Mapping):
            self.faults = {int(w): f for w, f in faults.items()}
        else:
            self.faults = {int(w): WorkerError(f"injected failure of worker {w}") for w in faults}
        self.interrupt_after = interrupt_after

    def compute_format(self, dtype: Any) -> Format:
        """The inner executor's compute format (faults do not change the arithmetic)."""
        return self.inner.compute_format(dtype)

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
        return _FaultyRun(run, self.faults, self.interrupt_after)


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
