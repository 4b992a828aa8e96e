"""The issue-8 study: subset sampling, rows, the claims it publishes (small cases)."""

from __future__ import annotations

import math

import pytest

from gpucoded.studies.beyond import (
    COLUMNS,
    SCHEMES,
    evaluate,
    markdown,
    plot,
    run_study,
    subset_sample,
)


def test_subset_sample_all_or_windows_plus_random():
    S, sampled = subset_sample(6, 3, 100)
    assert not sampled and len(S) == math.comb(6, 3)
    S, sampled = subset_sample(20, 10, 12, seed=3)
    assert sampled and len(S) == 12 and len(set(S)) == 12
    assert (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) in S  # the clustered window is always there
    assert S == subset_sample(20, 10, 12, seed=3)[0]
    with pytest.raises(ValueError):
        subset_sample(3, 4, 10)


@pytest.fixture(scope="module")
def rows():
    return {
        name: evaluate(name, 3, 5, "float64", n=10, max_subsets=10)
        for name in ("eps_matdot", "circle", "replication", "matdot")
    }


def test_rows_have_every_column_and_respect_their_bound(rows):
    """Measured worst error ≤ the a-priori bound of the decode weights (all subsets)."""
    for name, r in rows.items():
        assert set(COLUMNS) <= set(r)
        if name != "replication":  # replication's dropped blocks have no a-priori bound
            assert r["max_err"] <= r["bound"], name
        assert r["eps1"] + r["eps2"] >= r["max_err"] * (1 - 1e-6)


def test_circle_beats_eps_matdot_by_10x_at_threshold_m(rows):
    """The circle code's a-priori bound (exact decode: rounding only) is 10× below the
    error ε-MatDot actually reaches with its best γ — at twice the storage per worker,
    which the row records."""
    c, e = rows["circle"], rows["eps_matdot"]
    assert c["answers"] == e["answers"] == 3
    assert c["bound"] * 10 < e["max_err"]
    assert c["storage"] == 2 * e["storage"]
    assert c["eps1"] < 1e-30 * e["eps1"] + 1e-60


def test_replication_row_includes_the_worst_failure_pattern(rows):
    """m = 3, P = 5: workers 3, 4 copy blocks 0, 1; block 2 has one copy (worker 2).
    The constructed worst pattern fails worker 2, so the decode misses block 2: the
    error is interpolation-like (ε₁ = the dropped product), not rounding."""
    r = rows["replication"]
    assert r["eps1"] > 0 and r["eps2"] < r["eps1"]


def test_run_study_tables_and_plot(tmp_path):
    res = run_study([2], ["float64"], ["eps_matdot", "mixed", "circle"], max_subsets=4)
    assert {r["scheme"] for r in res} == {"eps_matdot", "circle"}  # mixed is float32 only
    md = markdown(res)
    assert len(md.splitlines()) == 3  # header, rule; P = m+2 = 2m = 4 coincide: one row
    p = plot(res, tmp_path / "beyond_test.png")
    assert p.exists() and p.stat().st_size > 0
    assert all(name in SCHEMES for name in ("mixed", "circle", "chebyshev_half"))


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scheme"):
        evaluate("nope", 3, 5, "float64")


def test_cli_quick_writes_csv_and_png(tmp_path, capsys):
    """``gpucoded beyond --quick`` runs end to end (m = 2..4, 4 subsets per case) and
    writes the CSV (one row per scheme, m, P and format), the Markdown table and the PNG."""
    from gpucoded.cli import main as cli_main

    assert cli_main(["beyond", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "m= 2" in out and "rows in" in out  # progress lines, then the summary
    lines = (tmp_path / "beyond.csv").read_text().splitlines()
    assert lines[0].startswith("scheme,m,P,dtype")
    assert {ln.split(",")[1] for ln in lines[1:]} == {"2", "3", "4"}
    assert (tmp_path / "beyond.png").stat().st_size > 0
    assert (tmp_path / "beyond.md").read_text().startswith("| m | P | dtype |")


def test_cli_bad_arguments_are_clear_errors(tmp_path):
    from gpucoded.studies.beyond import main

    with pytest.raises(SystemExit, match="unknown scheme"):
        main(["--out", str(tmp_path), "--schemes", "nope", "--m", "2"])
    with pytest.raises(SystemExit, match="--m"):
        main(["--out", str(tmp_path), "--m", "x-y"])


def test_heavy_schemes_cap_their_subsets():
    """From m = HEAVY_FROM_M the circle schemes (mpmath weights per subset) evaluate at
    most ``heavy_subsets`` subsets; 0 lifts the cap (then ``max_subsets`` rules)."""
    from gpucoded.studies.beyond import HEAVY_FROM_M

    m = HEAVY_FROM_M
    r = evaluate("circle", m, m + 2, "float64", heavy_subsets=2, split=False)
    assert r["n_subsets"] == 2 and r["sampled"] == f"2 of {math.comb(m + 2, m)}"
    r = evaluate("circle", m, m + 2, "float64", heavy_subsets=0, max_subsets=5, split=False)
    assert r["n_subsets"] == 5
