"""bench/bench_overhead.py runs: its quick tables print, and its timers leave the library
as they found it (table 7 wraps the pipeline's functions for the run only)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

import gpucoded  # noqa: E402
from bench import bench_overhead  # noqa: E402
from gpucoded import api, pipeline, probes  # noqa: E402
from gpucoded.codes import dispatch  # noqa: E402


def _state() -> tuple:
    from gpucoded.codes.decoding import DecodeInfo, DecodeWeights
    from gpucoded.executors.local import SerialExecutor

    return (
        api.set_up, pipeline.collect, pipeline.answer_problem, probes.measure, dispatch.encode,
        DecodeInfo.__dict__["of"], DecodeWeights.__dict__["choose"],
        SerialExecutor.__dict__["start"], dispatch.HOST_LOOPS_FROM, probes.EXACT_BELOW,
    )  # fmt: skip


def test_quick_tables_print_and_restore_the_library(capsys):
    before = _state()
    bench_overhead.main(["--only", "exact", "paths", "steps", "--reps", "3", "--warm", "1",
                         "--tiny-sizes", "32"])  # fmt: skip
    out = capsys.readouterr().out
    assert "| float64 | 32 |" in out and "| 32 | polydot p=2 q=2 P=12 | 6144 |" in out
    steps = [line for line in out.splitlines() if line.startswith("| whole call |")]
    assert len(steps) == 1 and len(steps[0].split("|")) == 2 + 1 + len(bench_overhead.FAMILIES)
    assert _state() == before
    A = np.ones((4, 4))
    assert np.array_equal(gpucoded.coded_matmul(A, A), A @ A)
