r"""Turn benchmark JSON into ``BENCHMARKS.md`` tables and PNG plots.

Usage::

    python -m bench.report bench/results/cpu.json [gpu/bench_gpu.json ...] \
        --md BENCHMARKS.md --img bench/img

Inputs, recognised by their content:

* pytest-benchmark JSON (``--benchmark-json``): entries of :mod:`bench.bench_core`
  (``extra_info["suite"] == "core"``) become the CPU ratio tables, scaling plots and
  the CPU target; every other group (engine, studies, pytest runs of
  ``bench_gpu.py``) gets a generic table with ratios to the group's fastest entry.
* the GPU summary of ``bench/bench_gpu.py`` (``{"meta": ..., "rows": [...]}``, written
  by ``bench/device_check.sh``): bandwidth vs the device-to-device copy ceiling and
  end-to-end vs the sum of worker GEMMs, with the GPU targets.

Statistic: the minimum over rounds by default (``--stat``): on a shared machine the
other jobs only ever add time, so the minimum is the best estimate of the cost.

Targets (benchmarks, not timed tests):

* CPU: :math:`(t_{\rm encode}+t_{\rm decode})/t_{\rm workers}\le 0.10` for MatDot
  m=4, P=8, n=2048;
* GPU: encode and decode bandwidth :math:`\ge 0.80\times` copy bandwidth (n ≥ 4096);
  end-to-end :math:`\le 1.10\times` the sum of worker GEMMs at n=8192.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CPU_TARGET",
    "GPU_BW_TARGET",
    "GPU_E2E_TARGET",
    "Results",
    "core_groups",
    "bandwidth_rows",
    "bandwidth_targets",
    "cpu_targets",
    "keep_added_sections",
    "gpu_targets",
    "load",
    "main",
    "render",
    "write_plots",
]

#: CPU target: (encode + decode) / workers at MatDot m=4, P=8, n=2048.
CPU_TARGET = {"code": "matdot", "m": 4, "P": 8, "n": 2048, "max_ratio": 0.10}
#: GPU targets: encode/decode bandwidth ratio to copy, end-to-end / sum of GEMMs.
GPU_BW_TARGET = {"min_n": 4096, "min_ratio": 0.80}
GPU_E2E_TARGET = {"n": 8192, "max_ratio": 1.10}
#: CPU bandwidth target: encode and decode at >= 0.80 of a same-run copy.
BW_TARGET = {"code": "matdot", "m": 4, "P": 8, "n": 2048, "min_fraction": 0.80}

#: Column order of the core stages.
STAGES = ("plain", "uncoded", "encode", "workers", "decode", "coded_matmul")


@dataclass
class Results:
    """Everything read from the input files."""

    core: list[dict[str, Any]] = field(default_factory=list)
    bandwidth: list[dict[str, Any]] = field(default_factory=list)
    other: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gpu_rows: list[dict[str, Any]] = field(default_factory=list)
    gpu_meta: dict[str, Any] = field(default_factory=dict)
    machines: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _stat(stats: dict[str, Any], stat: str) -> float:
    if stat not in stats:
        raise ValueError(f"benchmark stats have no {stat!r}; have {sorted(stats)}")
    return float(stats[stat])


def load(paths: Iterable[str | os.PathLike], stat: str = "min") -> Results:
    """Read pytest-benchmark JSON files and GPU summary files.

    Raises
    ------
    ValueError
        For a file that is neither format.
    """
    res = Results()
    for p in paths:
        p = Path(p)
        text = p.read_text()
        if not text.strip():  # e.g. device_check.sh's pytest JSON when every test skipped
            print(f"warning: {p} is empty; skipped", file=sys.stderr)
            continue
        data = json.loads(text)
        res.sources.append(str(p))
        if isinstance(data, dict) and "benchmarks" in data:
            _load_pytest_benchmark(data, res, stat, p.name)
        elif isinstance(data, dict) and "rows" in data:
            res.gpu_rows += [r for r in data["rows"] if isinstance(r, dict)]
            res.gpu_meta.update(data.get("meta", {}))
        else:
            raise ValueError(
                f"{p}: not a pytest-benchmark JSON (no 'benchmarks') nor a bench_gpu "
                f"summary (no 'rows')"
            )
    return res


def _load_pytest_benchmark(data: dict, res: Results, stat: str, source: str) -> None:
    mi = dict(data.get("machine_info", {}))
    mi["_datetime"] = data.get("datetime")
    mi["_commit"] = (data.get("commit_info") or {}).get("id")
    mi["_source"] = source
    res.machines.append(mi)
    for b in data["benchmarks"]:
        extra = b.get("extra_info") or {}
        row = {
            "group": b.get("group") or "(no group)",
            "name": b.get("name", "?"),
            "time": _stat(b["stats"], stat),
            "median": float(b["stats"].get("median", float("nan"))),
            "rounds": int(b["stats"].get("rounds", 0)),
            **extra,
        }
        if extra.get("suite") == "core":
            res.core.append(row)
        elif extra.get("suite") == "bandwidth":
            res.bandwidth.append(row)
        else:
            res.other.setdefault(row["group"], []).append(row)


# ------------------------------------------------------------------ core tables


def core_groups(core: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per code group: stage times (s) and ratios.

    Returns dicts with keys ``group, code, label, m, P, K, n, dtype, t`` (stage ->
    seconds), ``ratio`` (stage -> time / plain), ``encdec_over_workers``,
    ``encode_GBps``, ``decode_GBps`` and ``workers_GFlops``; sorted by code, dtype,
    m, P, n. Weight groups (no ``n``) are left out: see :func:`weight_rows`.
    """
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in core:
        if r.get("stage") in (*STAGES, "pipeline"):
            by[r["group"]].append(r)
    out = []
    for group, rows in by.items():
        t = {r["stage"]: r["time"] for r in rows}
        info = {r["stage"]: r for r in rows}
        first = rows[0]
        g = {k: first.get(k) for k in ("code", "label", "m", "P", "K", "n", "dtype")}
        g["group"] = group
        g["t"] = t
        loads = [r["loadavg_1min"] for r in rows if r.get("loadavg_1min") is not None]
        g["load"] = max(loads) if loads else None
        plain = t.get("plain")
        g["ratio"] = {s: t[s] / plain for s in t} if plain else {}
        pipe = info.get("pipeline", {})
        g["encdec_interleaved"] = pipe.get("encdec_over_workers_median")
        g["encdec_interleaved_min"] = pipe.get("encdec_over_workers_of_min")
        g["encdec_over_workers"] = (
            (t["encode"] + t["decode"]) / t["workers"]
            if all(s in t for s in ("encode", "decode", "workers"))
            else None
        )
        for s in ("encode", "decode"):
            nbytes = info.get(s, {}).get("bytes")
            g[f"{s}_GBps"] = nbytes / t[s] / 1e9 if nbytes and s in t else None
        fl = info.get("workers", {}).get("flops")
        g["workers_GFlops"] = fl / t["workers"] / 1e9 if fl and "workers" in t else None
        fl = info.get("plain", {}).get("flops")
        g["plain_GFlops"] = fl / t["plain"] / 1e9 if fl and "plain" in t else None
        out.append(g)
    out.sort(key=lambda g: (str(g["code"]), str(g["dtype"]), g["m"] or 0, g["P"] or 0, g["n"] or 0))
    return out


def weight_rows(core: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decode-weight groups: first (uncached) and cached call times per code."""
    by: dict[str, dict[str, Any]] = {}
    for r in core:
        st = r.get("stage")
        if st not in ("weights_first", "weights_cached"):
            continue
        d = by.setdefault(
            r["group"], {k: r.get(k) for k in ("group", "code", "label", "m", "P", "K")}
        )
        d[st] = r["time"]
    return sorted(by.values(), key=lambda d: (str(d["code"]), d["m"] or 0, d["P"] or 0))


def cpu_targets(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CPU target, per dtype measured: ratio, limit and verdict."""
    c = CPU_TARGET
    out = []
    for g in groups:
        if (g["code"], g["m"], g["P"], g["n"]) != (c["code"], c["m"], c["P"], c["n"]):
            continue
        how = (
            ("encdec_interleaved_min", "interleaved in each round, each part's min over rounds"),
            ("encdec_interleaved", "interleaved in each round, median of the per-round ratio"),
            ("encdec_over_workers", "separate stage benchmarks, min over rounds"),
        )
        for key, what in how:
            r = g.get(key)
            if r is None:
                continue
            out.append(
                {
                    "target": f"CPU (encode+decode)/workers <= {c['max_ratio']:.2f}, "
                    f"{g['label']} m={c['m']} P={c['P']} n={c['n']} {g['dtype']} ({what})",
                    "measured": r,
                    "met": r <= c["max_ratio"],
                }
            )
    return out


# ------------------------------------------------------------------ bandwidth


def bandwidth_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (code, n, dtype): encode/decode fraction of the same-run copy.

    The fraction is the copy's minimum time over the benchmark's rounds divided by
    the operation's minimum (equal bytes), as stored by ``bench/bench_bandwidth.py``.
    """
    by: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r.get("label"), r.get("m"), r.get("P"), r.get("n"), r.get("dtype"))
        d = by.setdefault(
            key,
            {k: r.get(k) for k in ("code", "label", "m", "P", "K", "n", "dtype", "grid")},
        )
        op = r.get("op")
        d[f"{op}_fraction"] = r.get("fraction")
        d[f"{op}_GBps"] = r.get("GBps")
        d[f"{op}_copy_GBps"] = r.get("copy_GBps")
        d[f"{op}_ms"] = r["time"] * 1e3
        d["compiled"] = r.get("compiled")
        d["threads"] = r.get("host_threads")
        d["load"] = max(d.get("load") or 0.0, r.get("loadavg_1min") or 0.0)
    return sorted(by.values(), key=lambda d: (str(d["code"]), str(d["dtype"]), d["n"] or 0))


def bandwidth_targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Encode and decode at >= 0.80 of the copy, MatDot m=4 P=8 n=2048, per dtype."""
    t = BW_TARGET
    out = []
    for d in bandwidth_rows(rows):
        if (d["code"], d["m"], d["P"], d["n"]) != (t["code"], t["m"], t["P"], t["n"]):
            continue
        for op in ("encode", "decode"):
            f = d.get(f"{op}_fraction")
            if f is None:
                continue
            out.append(
                {
                    "target": f"CPU {op} bandwidth >= {t['min_fraction']:.2f} x copy (same run), "
                    f"{d['label']} m={t['m']} P={t['P']} n={t['n']} {d['dtype']}",
                    "measured": f,
                    "met": f >= t["min_fraction"],
                }
            )
    return out


def _bandwidth_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| code | grid (p,s,t) | P | K | n | dtype | encode ms | encode / copy | "
        "decode ms | decode / copy | encode GB/s | decode GB/s | copy GB/s | load |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in bandwidth_rows(rows):
        copy = d.get("encode_copy_GBps") or d.get("decode_copy_GBps")
        lines.append(
            f"| {d['label']} | {tuple(d['grid'] or ())} | {d['P']} | {d['K']} | {d['n']} | "
            f"{d['dtype']} | {_f(d.get('encode_ms'), '.2f')} | "
            f"{_f(d.get('encode_fraction'), '.2f')} | {_f(d.get('decode_ms'), '.2f')} | "
            f"{_f(d.get('decode_fraction'), '.2f')} | {_f(d.get('encode_GBps'), '.1f')} | "
            f"{_f(d.get('decode_GBps'), '.1f')} | {_f(copy, '.1f')} | "
            f"{_f(d.get('load'), '.1f')} |"
        )
    return lines


def _bandwidth_plots(plt: Any, rows: Sequence[dict[str, Any]], img: Path) -> list[Path]:
    """Fraction of the copy vs n, one figure per dtype (encode and decode panels)."""
    written = []
    table = bandwidth_rows(rows)
    for dtype in sorted({d["dtype"] for d in table}):
        ds = [d for d in table if d["dtype"] == dtype]
        if len({d["n"] for d in ds}) < 2:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
        for ax, op in zip(axes, ("encode", "decode"), strict=True):
            for label in sorted({d["label"] for d in ds}):
                pts = sorted(
                    (d["n"], d[f"{op}_fraction"])
                    for d in ds
                    if d["label"] == label and d.get(f"{op}_fraction") is not None
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), "o-", label=label)
            ax.axhline(BW_TARGET["min_fraction"], color="k", ls="--", lw=1, label="target 0.80")
            ax.set_xscale("log", base=2)
            ns = sorted({d["n"] for d in ds})
            ax.set_xticks(ns)
            ax.set_xticklabels([str(n) for n in ns])
            ax.set_xlabel("n (A, B are n x n)")
            ax.set_title(f"{op} ({dtype})")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("bandwidth / copy bandwidth (same run)")
        axes[1].legend(fontsize=7)
        p = img / f"cpu_bandwidth_{dtype}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


# ------------------------------------------------------------------ GPU summary


def gpu_targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """GPU targets from the bench_gpu summary rows (worst case over the cases)."""
    out = []
    ok_rows = [r for r in rows if "error" not in r]
    for op in ("encode", "decode"):
        rs = [
            r
            for r in ok_rows
            if r.get("op") == op
            and r.get("n", 0) >= GPU_BW_TARGET["min_n"]
            and r.get("ratio_to_copy") is not None
        ]
        if rs:
            worst = min(rs, key=lambda r: r["ratio_to_copy"])
            out.append(
                {
                    "target": f"GPU {op} bandwidth >= {GPU_BW_TARGET['min_ratio']:.2f} x copy "
                    f"(n >= {GPU_BW_TARGET['min_n']}, worst of {len(rs)} cases: n={worst['n']} "
                    f"{worst.get('dtype')} grid={worst.get('grid')})",
                    "measured": worst["ratio_to_copy"],
                    "met": worst["ratio_to_copy"] >= GPU_BW_TARGET["min_ratio"],
                }
            )
    rs = [
        r
        for r in ok_rows
        if r.get("op") == "coded_matmul"
        and r.get("n") == GPU_E2E_TARGET["n"]
        and r.get("ratio_to_sum_gemm") is not None
    ]
    if rs:
        worst = max(rs, key=lambda r: r["ratio_to_sum_gemm"])
        out.append(
            {
                "target": f"GPU end-to-end <= {GPU_E2E_TARGET['max_ratio']:.2f} x sum of worker "
                f"GEMMs (n={GPU_E2E_TARGET['n']}, worst of {len(rs)} cases: "
                f"{worst.get('dtype')} m={worst.get('m')})",
                "measured": worst["ratio_to_sum_gemm"],
                "met": worst["ratio_to_sum_gemm"] <= GPU_E2E_TARGET["max_ratio"],
            }
        )
    return out


# ------------------------------------------------------------------ plots


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_plots(res: Results, img: Path) -> list[Path]:
    """PNG plots; returns the files written ([] without matplotlib or data)."""
    plt = _plt()
    if plt is None:
        return []
    img.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    groups = core_groups(res.core)
    c = CPU_TARGET
    # time vs n per stage, one plot per dtype, for the target's code parameters
    for dtype in sorted({g["dtype"] for g in groups}):
        gs = [
            g
            for g in groups
            if (g["code"], g["m"], g["P"], g["dtype"]) == (c["code"], c["m"], c["P"], dtype)
        ]
        ns = sorted({g["n"] for g in gs})
        if len(ns) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for st in STAGES:
            pts = sorted((g["n"], g["t"][st]) for g in gs if st in g["t"])
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", label=st)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel("n (A, B are n x n)")
        ax.set_ylabel("seconds (min over rounds)")
        ax.set_title(f"{gs[0]['label']} m={c['m']} P={c['P']} {dtype}: time vs n per stage")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        p = img / f"cpu_time_vs_n_{dtype}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    # time vs m (P = 2m) at the target's n, MatDot float64
    gs = [
        g
        for g in groups
        if g["code"] == c["code"]
        and g["n"] == c["n"]
        and g["P"] == 2 * g["m"]
        and g["dtype"] == "float64"
    ]
    if len({g["m"] for g in gs}) >= 2:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for st in STAGES:
            pts = sorted((g["m"], g["t"][st]) for g in gs if st in g["t"])
            if pts:
                ax.semilogy(*zip(*pts, strict=True), "o-", label=st)
        ax.set_xlabel("m (P = 2m workers)")
        ax.set_ylabel("seconds (min over rounds)")
        ax.set_title(f"MatDot n={c['n']} float64: time vs m")
        ax.set_xticks(sorted({g["m"] for g in gs}))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        p = img / "cpu_time_vs_m.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    written += _bandwidth_plots(plt, res.bandwidth, img)
    # GPU: GB/s vs copy bandwidth
    bw = [r for r in res.gpu_rows if r.get("op") in ("encode", "decode") and "GBps" in r]
    if bw:
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        labels = [f"{r['op']} n={r['n']}\n{r.get('dtype', '')} {r.get('grid', '')}" for r in bw]
        x = list(range(len(bw)))
        ax.bar(x, [r["GBps"] for r in bw], label="kernel GB/s")
        ax.plot(
            x,
            [r.get("copy_GBps", float("nan")) for r in bw],
            "k_",
            ms=18,
            label="copy GB/s (ceiling)",
        )
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=6, rotation=90)
        ax.set_ylabel("GB/s (read + write)")
        ax.set_title("GPU encode/decode bandwidth vs device-to-device copy")
        ax.legend(fontsize=8)
        p = img / "gpu_bandwidth.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


# ------------------------------------------------------------------ markdown


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x * 1e3:.3g}"


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _machine_lines(res: Results) -> list[str]:
    lines = []
    for mi in res.machines:
        gc = mi.get("gpucoded", {})
        cpu = mi.get("cpu", {})
        blas = ", ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
            f"{b.get('num_threads')} threads)"
            for b in gc.get("blas", [])
            if b.get("user_api") == "blas"
        )
        env = {k: v for k, v in (gc.get("env") or {}).items() if v is not None}
        lines += [
            f"- `{mi['_source']}` measured {mi.get('_datetime', '?')} at commit "
            f"`{(mi.get('_commit') or '?')[:10]}`",
            f"  - CPU: {gc.get('cpu_model') or cpu.get('brand_raw', '?')}, "
            f"{gc.get('nproc') or cpu.get('count', '?')} cores; "
            f"{mi.get('system', '')} {mi.get('release', '')}; Python "
            f"{mi.get('python_version', '?')}; NumPy {gc.get('numpy', '?')}; "
            f"mpmath {gc.get('mpmath', '?')}",
            f"  - BLAS (threadpoolctl): {blas or 'not recorded (threadpoolctl missing)'}",
            f"  - BLAS environment: {env or 'OPENBLAS_CORETYPE and thread variables unset'}",
            f"  - load average (1, 5, 15 min) at start: {_load(gc.get('loadavg_at_start'))}, "
            f"at end: {_load(gc.get('loadavg_at_end'))}"
            + ("; **quick mode** (tiny sizes, not a measurement)" if gc.get("quick") else ""),
        ]
    if res.gpu_meta:
        lines.append("- GPU summary: " + ", ".join(f"{k} {v}" for k, v in res.gpu_meta.items()))
    return lines


def _load(x: Sequence[float] | None) -> str:
    return "?" if not x else " / ".join(f"{v:.1f}" for v in x)


def _targets_table(targets: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---:|---|"]
    for t in targets:
        lines.append(
            f"| {t['target']} | {t['measured']:.3f} | {'**met**' if t['met'] else '**missed**'} |"
        )
    return lines


def _core_lines(groups: Sequence[dict[str, Any]]) -> list[str]:
    head = (
        "| group | plain A@B (ms) | uncoded | encode | workers (all P) | decode | "
        "coded_matmul | (enc+dec)/workers | same, interleaved | encode GB/s | decode GB/s | "
        "workers GFlop/s | load |"
    )
    lines = [head, "|---|" + "---:|" * 12]
    for g in groups:
        r = g["ratio"]
        lines.append(
            f"| {g['group']} | {_ms(g['t'].get('plain'))} | "
            + " | ".join(_f(r.get(s), ".3f") for s in STAGES[1:])
            + f" | {_f(g['encdec_over_workers'])} | {_f(g['encdec_interleaved_min'])} | "
            f"{_f(g['encode_GBps'], '.1f')} | "
            f"{_f(g['decode_GBps'], '.1f')} | {_f(g['workers_GFlops'], '.0f')} | "
            f"{_f(g['load'], '.1f')} |"
        )
    return lines


def _analysis(groups: Sequence[dict[str, Any]]) -> list[str]:
    """Why the CPU ratio is what it is, from the measured rates."""
    c = CPU_TARGET
    lines = []
    for g in groups:
        if (g["code"], g["m"], g["P"], g["n"]) != (c["code"], c["m"], c["P"], c["n"]):
            continue
        if None in (g["encode_GBps"], g["decode_GBps"], g["workers_GFlops"]):
            continue
        series = sorted(
            (h["n"], h["encdec_over_workers"])
            for h in groups
            if (h["code"], h["m"], h["P"], h["dtype"]) == (c["code"], c["m"], c["P"], g["dtype"])
            and h["encdec_over_workers"] is not None
        )
        lines.append(
            f"- {g['dtype']}: encode streams at {g['encode_GBps']:.1f} GB/s and decode at "
            f"{g['decode_GBps']:.1f} GB/s (bytes read + written, counted once), the workers "
            f"compute at {g['workers_GFlops']:.0f} GFlop/s. Encode/decode are memory-bound "
            f"(O(P·n²) bytes, about 2 flops per element), the workers compute-bound "
            f"(O(P·n³/m) flops), so the ratio is expected to fall like m/n; measured "
            f"(separate stages): " + ", ".join(f"n={n}: {r:.3f}" for n, r in series) + "."
        )
    return lines


def _weights_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| code | K answers | first call (ms) | cached call (µs) | first / cached |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in rows:
        f, c = d.get("weights_first"), d.get("weights_cached")
        ratio = f / c if f and c else None
        lines.append(
            f"| {d['label']} m={d['m']} P={d['P']} | {d.get('K', '–')} | {_ms(f)} | "
            f"{_f(None if c is None else c * 1e6, '.2f')} | {_f(ratio, '.0f')} |"
        )
    return lines


def _other_lines(other: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for group in sorted(other):
        rows = sorted(other[group], key=lambda r: r["time"])
        fastest = rows[0]["time"]
        extra_keys = [k for k in ("GBps",) if any(k in r for r in rows)]
        lines += [
            f"#### {group}",
            "",
            "| benchmark | time (ms) | median (ms) | rounds | / fastest |"
            + "".join(f" {k} |" for k in extra_keys),
            "|---|---:|---:|---:|---:|" + "---:|" * len(extra_keys),
        ]
        for r in rows:
            lines.append(
                f"| {r['name']} | {_ms(r['time'])} | {_ms(r['median'])} | {r['rounds']} | "
                f"{r['time'] / fastest:.2f} |"
                + "".join(f" {_f(r.get(k), '.1f')} |" for k in extra_keys)
            )
        lines.append("")
    return lines


def _gpu_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    bw = [r for r in rows if r.get("op") in ("encode", "decode") and "error" not in r]
    if bw:
        lines += [
            "| op | n | dtype | grid | P/R | ms | GB/s | copy GB/s | ratio to copy |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in bw:
            lines.append(
                f"| {r['op']} | {r['n']} | {r.get('dtype')} | {r.get('grid')} | "
                f"{r.get('P', r.get('R', '–'))} | {_ms(r.get('seconds'))} | "
                f"{_f(r.get('GBps'), '.0f')} | {_f(r.get('copy_GBps'), '.0f')} | "
                f"{_f(r.get('ratio_to_copy'), '.2f')} |"
            )
        lines.append("")
    e2e = [r for r in rows if r.get("op") == "coded_matmul" and "error" not in r]
    if e2e:
        lines += [
            "| n | dtype | m | P | end-to-end (ms) | sum worker GEMMs (ms) | / sum GEMMs | "
            "/ used GEMMs | / plain A@B | rel. error |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in e2e:
            lines.append(
                f"| {r['n']} | {r.get('dtype')} | {r.get('m')} | {r.get('P')} | "
                f"{_ms(r.get('seconds'))} | {_ms(r.get('sum_worker_gemm_s'))} | "
                f"{_f(r.get('ratio_to_sum_gemm'), '.3f')} | "
                f"{_f(r.get('ratio_to_used_gemm'), '.3f')} | "
                f"{_f(r.get('ratio_to_plain'), '.2f')} | {_f(r.get('rel_error'), '.1e')} |"
            )
        lines.append("")
    bad = [r for r in rows if "error" in r]
    if bad:
        lines.append("Failed GPU cases: " + "; ".join(f"{r.get('op')}: {r['error']}" for r in bad))
        lines.append("")
    return lines


def render(
    res: Results,
    plots: Sequence[Path] = (),
    md_dir: Path = Path("."),
    notes: str = "",
    command: str = "python -m bench",
    stat: str = "min",
) -> str:
    """The Markdown report."""
    groups = core_groups(res.core)
    targets = cpu_targets(groups) + bandwidth_targets(res.bandwidth) + gpu_targets(res.gpu_rows)
    out = [
        "# Benchmarks",
        "",
        f"Generated by `bench/report.py` from {', '.join(f'`{s}`' for s in res.sources)}; "
        f"regenerate with `{command}`. Times are the **{stat}** over rounds.",
        "",
    ]
    if notes:
        out += [notes.rstrip(), ""]
    out += ["## Machine", ""] + _machine_lines(res) + [""]
    out += ["## Targets", ""]
    if targets:
        out += _targets_table(targets)
    else:
        out.append("No target's configuration was measured in these files.")
    missing = []
    if not res.gpu_rows:
        missing.append("GPU targets: not measured here (no `bench_gpu.json` given).")
    out += [""] + [f"- {m}" for m in missing] + ([""] if missing else [])
    if groups:
        out += [
            "## CPU: stage times as ratios to plain `A @ B`",
            "",
            "Each row is one pytest-benchmark group; each stage's time is divided by the "
            "group's plain `A @ B`. *uncoded*: `coded_matmul` with `Uncoded(m)` (m-way "
            "split, same storage, no redundancy); *workers*: `At[w] @ Bt[w]` for all P "
            "workers (the serial executor computes all of them); *decode*: the K = "
            "threshold answers, weights cached; *coded_matmul*: end to end, serial "
            "executor. *(enc+dec)/workers*: from the separate stage benchmarks; *same, "
            "interleaved*: encode, the P workers and decode timed inside each round of one "
            "benchmark (`test_pipeline`), each part's minimum over its rounds. "
            "*load*: the highest 1-minute load average seen while the group ran "
            "(above the core count, other jobs competed for the cores).",
            "",
        ]
        out += _core_lines(groups) + [""]
        analysis = _analysis(groups)
        if analysis:
            out += ["Reading the CPU target:", ""] + analysis + [""]
    if res.bandwidth:
        out += [
            "## CPU encode/decode bandwidth vs copy",
            "",
            "`bench/bench_bandwidth.py`: `code.encode(A, B)` and `code.decode(answers, S)` "
            "(K separate answers, as `coded_matmul` passes them), each against an "
            "`np.copyto` of the same read + write bytes timed before every round of the "
            "same benchmark; *op / copy* = copy time / op time (minima over rounds), "
            "i.e. the op's bytes/s as a fraction of the copy's. Encode bytes: A, B read "
            "+ P blocks of each written; decode bytes: K answers read + C written.",
            "",
        ]
        out += _bandwidth_lines(res.bandwidth) + [""]
        comp = {d.get("compiled") for d in bandwidth_rows(res.bandwidth)}
        thr = {d.get("threads") for d in bandwidth_rows(res.bandwidth)}
        out += [
            f"Compiled host loops (`gpucoded.hostops`): {sorted(comp, key=str)}; "
            f"OpenMP threads: {sorted(thr, key=str)}.",
            "",
        ]
    wr = weight_rows(res.core)
    if wr:
        out += ["## Decode weights: first call vs cached (small thresholds)", ""]
        out += _weights_lines(wr) + [""]
    if plots:
        out += ["## Plots", ""]
        for p in plots:
            rel = os.path.relpath(p, md_dir)
            out += [f"![{p.stem}]({Path(rel).as_posix()})", ""]
    if res.gpu_rows:
        out += ["## GPU (CUDA events, `bench/bench_gpu.py`)", ""] + _gpu_lines(res.gpu_rows)
    if res.other:
        out += ["## Other benchmark groups", ""] + _other_lines(res.other)
    out += [
        "## How to run",
        "",
        "```",
        "python -m bench                  # full CPU suite -> bench/results/cpu.json, this file,"
        " bench/img/",
        "python -m bench --quick          # seconds, tiny sizes, writes to a temp dir (CI)",
        "python -m pytest bench --bench-quick -p no:cacheprovider   # the suite alone",
        "OUT=/tmp/gpu bash bench/device_check.sh   # GPU half; copy $OUT/bench_gpu.json to"
        " bench/results/gpu/",
        "python -m bench.report bench/results/cpu.json bench/results/gpu/bench_gpu.json",
        "```",
    ]
    return "\n".join(out).rstrip() + "\n"


#: Level-2 headings this report writes (sections with other headings in an existing
#: report, e.g. "## Decode weights: fast solve" or "## CodedMatrix ..." added by hand or by
#: other tools, are carried over on regeneration).
OWN_HEADINGS = (
    "## Machine",
    "## Targets",
    "## CPU: stage times as ratios to plain `A @ B`",
    "## CPU encode/decode bandwidth vs copy",
    "## Decode weights: first call vs cached (small thresholds)",
    "## Decode weights (mpmath): first call vs cached",  # its former title
    "## Plots",
    "## GPU (CUDA events, `bench/bench_gpu.py`)",
    "## Other benchmark groups",
    "## How to run",
)


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each level-2 section, in order ('' for the preamble)."""
    out: list[tuple[str, str]] = []
    head, body = "", []
    fence = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        if line.startswith("## ") and not fence:
            out.append((head, "".join(body)))
            head, body = line.rstrip("\n"), [line]
        else:
            body.append(line)
    out.append((head, "".join(body)))
    return out


def keep_added_sections(old: str, new: str) -> str:
    """``new`` plus the sections of ``old`` that this report does not write.

    A section is carried over when its heading is neither one of
    :data:`OWN_HEADINGS` nor a heading of ``new`` (e.g. from the notes file); it
    goes before "## How to run", in its old order.
    """
    produced = {h for h, _ in _sections(new)}
    keep = [body for h, body in _sections(old) if h and h not in OWN_HEADINGS and h not in produced]
    if not keep:
        return new
    parts = _sections(new)
    out = []
    for h, body in parts:
        if h == "## How to run":
            out += [b if b.endswith("\n\n") else b.rstrip("\n") + "\n\n" for b in keep]
        out.append(body)
    if "## How to run" not in produced:
        out += ["\n"] + keep
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark JSON -> BENCHMARKS.md + PNG plots")
    ap.add_argument("json", nargs="+", help="pytest-benchmark JSON or bench_gpu.json files")
    ap.add_argument("--md", default="BENCHMARKS.md", help="Markdown output (default %(default)s)")
    ap.add_argument("--img", default="bench/img", help="PNG directory (default %(default)s)")
    ap.add_argument("--stat", default="min", choices=("min", "median", "mean"))
    ap.add_argument(
        "--notes", default=None, help="Markdown (a file, or literal text) inserted after the title"
    )
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    res = load(args.json, args.stat)
    md = Path(args.md)
    plots = [] if args.no_plots else write_plots(res, Path(args.img))
    notes = ""
    if args.notes:
        notes = Path(args.notes).read_text() if Path(args.notes).is_file() else args.notes
    md.parent.mkdir(parents=True, exist_ok=True)
    text = render(res, plots, md.parent, notes, stat=args.stat)
    if md.is_file():
        text = keep_added_sections(md.read_text(), text)
    md.write_text(text)
    print(f"wrote {md} and {len(plots)} plot(s) in {args.img}")
    targets = cpu_targets(core_groups(res.core)) + bandwidth_targets(res.bandwidth)
    for t in targets + gpu_targets(res.gpu_rows):
        print(f"{'MET   ' if t['met'] else 'MISSED'} {t['measured']:.3f}  {t['target']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
