"""Tests of ``bench/report.py`` on small synthetic benchmark JSON.

The synthetic times are chosen so every ratio the report derives is known in closed
form; the ratios are a division or two of doubles, so they are compared with
``rel=1e-12`` (a few ulps of relative rounding per operation, far below any digit
the report prints) rather than a tuned tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402

REL = 1e-12  # a handful of float64 roundings (see the module docstring)


def _bench(group: str, name: str, t: float, **extra: object) -> dict:
    """One pytest-benchmark entry with min = t and median = 1.5 t."""
    return {
        "group": group,
        "name": name,
        "fullname": f"bench/bench_core.py::X::{name}",
        "extra_info": extra,
        "stats": {"min": t, "median": 1.5 * t, "mean": 1.5 * t, "rounds": 3},
    }


def _core(group: str, stage: str, t: float, n: int, dtype: str, **kw: object) -> dict:
    info = {
        "suite": "core",
        "stage": stage,
        "code": "matdot",
        "label": "MatDot",
        "m": 4,
        "P": 8,
        "K": 7,
        "n": n,
        "dtype": dtype,
    }
    info.update(kw)
    return _bench(group, f"test_{stage}", t, **info)


# stage -> seconds for n=2048; encode+decode = 0.08 s vs 1.0 s of workers (met) in
# float64, 0.25 s (missed) in float32
F64 = {
    "plain": 0.5,
    "uncoded": 0.6,
    "encode": 0.05,
    "workers": 1.0,
    "decode": 0.03,
    "coded_matmul": 1.2,
}
F32 = {
    "plain": 0.25,
    "uncoded": 0.3,
    "encode": 0.15,
    "workers": 1.0,
    "decode": 0.10,
    "coded_matmul": 1.4,
}


def synthetic_cpu() -> dict:
    """A pytest-benchmark file: two target groups, a smaller n, weights, a foreign group."""
    rows = []
    for dtype, times in (("float64", F64), ("float32", F32)):
        g = f"MatDot m=4 P=8 n=2048 {dtype}"
        for st, t in times.items():
            extra = {"bytes": 4e8} if st in ("encode", "decode") else {}
            if st == "workers":
                extra = {"flops": 2e11}
            rows.append(_core(g, st, t, 2048, dtype, **extra))
    rows.append(  # the interleaved measurement of the float64 target group: 0.12, 0.09
        _core(
            "MatDot m=4 P=8 n=2048 float64",
            "pipeline",
            1.2,
            2048,
            "float64",
            encdec_over_workers_median=0.12,
            encdec_over_workers_of_min=0.09,
        )
    )
    for st, t in F64.items():  # n = 1024: every stage 8x faster except encode/decode 4x
        f = 4 if st in ("encode", "decode") else 8
        rows.append(_core("MatDot m=4 P=8 n=1024 float64", st, t / f, 1024, "float64"))
    w = "weights MatDot m=4 P=8"
    rows.append(
        _bench(
            w,
            "test_weights_first",
            4e-3,
            suite="core",
            stage="weights_first",
            code="matdot",
            label="MatDot",
            m=4,
            P=8,
            K=7,
        )
    )
    rows.append(
        _bench(
            w,
            "test_weights_cached",
            2e-6,
            suite="core",
            stage="weights_cached",
            code="matdot",
            label="MatDot",
            m=4,
            P=8,
            K=7,
        )
    )
    rows.append(_bench("engine threads", "test_a", 2.0))
    rows.append(_bench("engine threads", "test_b", 1.0))
    return {
        "machine_info": {
            "system": "Linux",
            "gpucoded": {
                "cpu_model": "Synthetic CPU",
                "nproc": 2,
                "blas": [
                    {
                        "user_api": "blas",
                        "internal_api": "openblas",
                        "version": "0.3",
                        "architecture": "X",
                        "num_threads": 2,
                    }
                ],
                "env": {"OPENBLAS_CORETYPE": None},
            },
        },
        "commit_info": {"id": "0123456789abcdef"},
        "datetime": "2026-01-01T00:00:00",
        "benchmarks": rows,
    }


def synthetic_gpu() -> dict:
    """A bench_gpu.py summary: encode meets 0.8x copy, decode misses, e2e meets 1.10x."""
    return {
        "meta": {"device": "Synthetic GPU"},
        "rows": [
            {
                "op": "encode",
                "n": 8192,
                "dtype": "float32",
                "grid": [1, 4],
                "P": 7,
                "seconds": 1e-3,
                "GBps": 3600.0,
                "copy_GBps": 4000.0,
                "ratio_to_copy": 0.9,
            },
            {
                "op": "decode",
                "n": 8192,
                "dtype": "float32",
                "grid": [1, 1],
                "R": 7,
                "seconds": 1e-3,
                "GBps": 2800.0,
                "copy_GBps": 4000.0,
                "ratio_to_copy": 0.7,
            },
            {"op": "encode", "n": 2048, "ratio_to_copy": 0.1},  # below min n: ignored
            {
                "op": "coded_matmul",
                "n": 8192,
                "dtype": "float32",
                "m": 4,
                "P": 8,
                "seconds": 0.105,
                "sum_worker_gemm_s": 0.1,
                "ratio_to_sum_gemm": 1.05,
            },
            {"op": "encode_case", "error": "RuntimeError: boom"},
        ],
    }


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    cpu, gpu = tmp_path / "cpu.json", tmp_path / "bench_gpu.json"
    cpu.write_text(json.dumps(synthetic_cpu()))
    gpu.write_text(json.dumps(synthetic_gpu()))
    return cpu, gpu


def test_load_sorts_core_other_and_gpu(files):
    res = report.load(files)
    assert len(res.core) == 6 + 1 + 6 + 6 + 2
    assert set(res.other) == {"engine threads"}
    assert len(res.gpu_rows) == 5 and res.gpu_meta["device"] == "Synthetic GPU"


def test_core_ratios_and_rates(files):
    """Ratios are stage / plain; rates are bytes/s and flop/s of the recorded counts."""
    groups = {g["group"]: g for g in report.core_groups(report.load(files).core)}
    g = groups["MatDot m=4 P=8 n=2048 float64"]
    for st, t in F64.items():
        assert g["ratio"][st] == pytest.approx(t / F64["plain"], rel=REL)
    assert g["encdec_over_workers"] == pytest.approx(0.08, rel=REL)
    assert g["encode_GBps"] == pytest.approx(4e8 / 0.05 / 1e9, rel=REL)
    assert g["workers_GFlops"] == pytest.approx(2e11 / 1.0 / 1e9, rel=REL)
    # n = 1024: encode, decode 4x cheaper, workers 8x: the ratio is half that of n=2048
    small = groups["MatDot m=4 P=8 n=1024 float64"]
    assert small["encdec_over_workers"] == pytest.approx(0.16, rel=REL)


def test_median_statistic(files):
    """--stat median reads the median (1.5x the min here); ratios are unchanged."""
    groups = report.core_groups(report.load(files, stat="median").core)
    g = next(g for g in groups if g["group"] == "MatDot m=4 P=8 n=2048 float64")
    assert g["t"]["plain"] == pytest.approx(1.5 * F64["plain"], rel=REL)
    assert g["encdec_over_workers"] == pytest.approx(0.08, rel=REL)


def test_cpu_target_verdicts(files):
    """One verdict per dtype and measurement (separate stages; interleaved if present)."""
    targets = report.cpu_targets(report.core_groups(report.load(files).core))
    got = {
        ("float64" in t["target"], t["target"].split("(")[-1].split()[0]): (t["met"], t["measured"])
        for t in targets
    }
    assert len(targets) == 4
    assert got[(True, "separate")] == (True, pytest.approx(0.08, rel=REL))
    assert got[(True, "interleaved")] in {(False, 0.12), (True, 0.09)}
    assert sorted(t["measured"] for t in targets if "interleaved" in t["target"]) == [0.09, 0.12]
    assert got[(False, "separate")] == (False, pytest.approx(0.25, rel=REL))


def test_gpu_target_verdicts():
    targets = report.gpu_targets(synthetic_gpu()["rows"])
    verdict = {t["target"].split()[1]: (t["met"], t["measured"]) for t in targets}
    assert verdict["encode"] == (True, 0.9)  # the n=2048 row is below the target's n
    assert verdict["decode"] == (False, 0.7)
    assert verdict["end-to-end"] == (True, 1.05)


def test_weights_rows(files):
    (w,) = report.weight_rows(report.load(files).core)
    assert w["weights_first"] == 4e-3 and w["weights_cached"] == 2e-6


def test_render_markdown(files, tmp_path):
    md = report.render(report.load(files), notes="Shared machine.")
    assert md.startswith("# Benchmarks")
    assert "Shared machine." in md
    assert "| MatDot m=4 P=8 n=2048 float64 | 500 |" in md  # plain in ms
    assert "0.080 | **met**" in md and "0.250 | **missed**" in md
    assert "0.700 | **missed**" in md  # GPU decode bandwidth
    assert "Synthetic CPU" in md and "openblas 0.3" in md
    assert "#### engine threads" in md and "RuntimeError: boom" in md
    assert "| MatDot m=4 P=8 | 7 | 4 | 2.00 | 2000 |" in md  # weights: ms, µs, ratio


def test_load_rejects_unknown_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a pytest-benchmark JSON"):
        report.load([p])


def test_load_skips_empty_file(files, tmp_path):
    """device_check.sh leaves an empty pytest JSON when every GPU test skipped."""
    empty = tmp_path / "pytest_benchmark.json"
    empty.write_text("")
    res = report.load([files[0], empty])
    assert res.sources == [str(files[0])] and len(res.core) == 21


def test_main_writes_report_and_plots(files, tmp_path):
    pytest.importorskip("matplotlib")
    md, img = tmp_path / "out" / "BENCHMARKS.md", tmp_path / "out" / "img"
    assert report.main([*map(str, files), "--md", str(md), "--img", str(img)]) == 0
    pngs = sorted(p.name for p in img.glob("*.png"))
    assert pngs == ["cpu_time_vs_n_float64.png", "gpu_bandwidth.png"]
    text = md.read_text()
    assert "![cpu_time_vs_n_float64](img/cpu_time_vs_n_float64.png)" in text
    for p in img.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
