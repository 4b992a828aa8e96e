"""bench/report.py: bandwidth fractions, their target, and sections others add survive."""

from __future__ import annotations

import json

import pytest

report = pytest.importorskip("bench.report")


def _bw(op, n, dtype, t, copy, code="matdot", label="MatDot", P=8):
    nbytes = 1_000_000
    return {
        "group": f"bandwidth {label} n={n} {dtype}",
        "name": f"test_{op}",
        "stats": {"min": t, "median": t, "rounds": 5},
        "extra_info": {
            "suite": "bandwidth", "op": op, "code": code, "label": label, "m": 4, "P": P,
            "K": 7, "n": n, "dtype": dtype, "grid": [1, 4, 1], "bytes": nbytes,
            "copy_min_s": copy, "copy_GBps": nbytes / copy / 1e9, "GBps": nbytes / t / 1e9,
            "fraction": copy / t, "compiled": True, "host_threads": 2,
        },
    }  # fmt: skip


@pytest.fixture
def bw_json(tmp_path):
    rows = [
        _bw("encode", 2048, "float64", 0.010, 0.009),  # 0.90: met
        _bw("decode", 2048, "float64", 0.010, 0.007),  # 0.70: missed
        _bw("encode", 1024, "float64", 0.004, 0.002),
        _bw("decode", 1024, "float64", 0.004, 0.004),
    ]
    p = tmp_path / "bw.json"
    p.write_text(json.dumps({"benchmarks": rows, "machine_info": {}}))
    return p


def test_bandwidth_fractions_and_target(bw_json):
    res = report.load([bw_json])
    rows = report.bandwidth_rows(res.bandwidth)
    assert [(d["n"], round(d["encode_fraction"], 2)) for d in rows] == [(1024, 0.5), (2048, 0.9)]
    verdicts = {t["target"].split()[1]: t["met"] for t in report.bandwidth_targets(res.bandwidth)}
    assert verdicts == {"encode": True, "decode": False}
    md = report.render(res)
    assert "## CPU encode/decode bandwidth vs copy" in md
    assert "| 0.90 |" in md and "| 0.70 |" in md


def test_regeneration_keeps_sections_others_added(bw_json, tmp_path):
    md = tmp_path / "B.md"
    args = [str(bw_json), "--md", str(md), "--img", str(tmp_path / "img"), "--no-plots"]
    assert report.main(args) == 0
    added = (
        "## Decode weights: fast float solve\n\nkept 1\n\n"
        "## CodedMatrix reuse\n\n```\n## not a heading (code)\n```\n\nkept 2\n"
    )
    md.write_text(md.read_text() + "\n" + added)
    assert report.main(args) == 0
    text = md.read_text()
    assert text.count("## Decode weights: fast float solve") == 1
    assert "kept 1" in text and "kept 2" in text and "## not a heading (code)" in text
    assert text.count("## CPU encode/decode bandwidth vs copy") == 1  # own: regenerated
    assert text.index("## CodedMatrix reuse") < text.index("## How to run")
