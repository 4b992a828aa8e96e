"""The gpucoded command: help, version, one-line errors with the fix, progress, ticks."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest

from gpucoded import __version__, cli, progress


def test_bare_command_prints_help(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gpucoded") and "demo" in out and "figure1" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"gpucoded {__version__}"


def test_missing_matplotlib_is_one_line_with_the_fix(monkeypatch, capsys, tmp_path):
    from gpucoded.studies import figure1

    def no_mpl(*a, **k):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(figure1, "plot", no_mpl)
    monkeypatch.setattr(figure1, "figure1", lambda cfg, progress=False: [])
    monkeypatch.setattr(figure1, "write_csv", lambda rows, path: None, raising=False)
    rc = cli.main(["figure1", "--quick", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err
    assert "pip install 'gpucoded[plot]'" in err and "--no-plots" in err


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy installed")
def test_missing_cupy_names_the_gpu_extra(capsys):
    rc = cli.main(["demo", "--n", "8", "--device", "gpu", "--straggler-delay", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "pip install 'gpucoded[gpu]'" in err and "\n" not in err


def test_value_errors_are_one_line(capsys):
    rc = cli.main(["demo", "--n", "8", "--m", "0", "--straggler-delay", "0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("gpucoded demo: ") and "\n" not in err


def test_logreg_one_fold_says_why(capsys):
    with pytest.raises(SystemExit, match="--folds 2 or more"):
        cli.main(["logreg", "--folds", "1", "--out", "unused"])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_and_not_quiet():
    pipe = io.StringIO()
    with progress.Progress(3, "x", stream=pipe) as bar:
        bar.update(3)
    assert pipe.getvalue() == ""  # not a terminal: silent
    tty = _Tty()
    with progress.Progress(3, "work", stream=tty) as bar:
        bar.update(3, "done")
    assert "work" in tty.getvalue() and "3/3" in tty.getvalue()
    progress.set_quiet(True)
    try:
        tty = _Tty()
        with progress.Progress(3, "work", stream=tty) as bar:
            bar.update(3)
        assert tty.getvalue() == ""
    finally:
        progress.set_quiet(False)


def test_a_long_weight_solve_reports_its_stages(monkeypatch):
    """A decode-weight solve in multiprecision draws a bar with its stages (the
    precision levels) once it has run SOLVE_DELAY seconds, on a terminal only; a
    solve that ends sooner, or a cached one, prints nothing."""
    import sys

    from gpucoded import make_code

    def solve(code):  # 3 of 6 ε-MatDot answers: regularised weights, two precisions
        return code.decode_weights(range(3), partial=True, fmt="float64")

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    solve(make_code("approx_matdot", m=3, P=6))
    assert tty.getvalue() == ""  # well under the default delay of 1 s
    monkeypatch.setattr(progress, "SOLVE_DELAY", 0.0)
    code = make_code("approx_matdot", m=3, P=6)
    solve(code)
    out = tty.getvalue()
    assert "decode weights: ApproxMatDot, 3 answers" in out
    assert "regularised weights, 120 digits" in out and "2it" in out
    n = len(out)
    solve(code)  # cached: no solve, no bar
    assert len(tty.getvalue()) == n
    pipe = io.StringIO()  # not a terminal: silent
    monkeypatch.setattr(sys, "stderr", pipe)
    solve(make_code("approx_matdot", m=3, P=6))
    assert pipe.getvalue() == ""
    with progress.solve_progress("outer"):  # nested solves: one bar, the outer one
        progress.step("a")
        with progress.solve_progress("inner"):
            progress.step("b")
    progress.step("outside")  # no running solve: a no-op


def test_quiet_flag_is_accepted_everywhere():
    parser = cli.build_parser()
    assert parser.parse_args(["--quiet", "demo"]).quiet
    assert parser.parse_args(["demo", "--quiet"]).quiet


def _saved_figures(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figs = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figs.append(self))
    return figs


def _integer_ticks(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


def test_integer_axes_have_integer_ticks(monkeypatch, tmp_path):
    """Fig. 1(a)/(c) N_succ and beyond's m count things: no 2.5 ticks."""
    from gpucoded.studies import beyond, figure1

    figs = _saved_figures(monkeypatch)
    rows = []
    for ns in (3, 4, 5):
        for g in (1.0, 100.0):
            rows.append(dict(dtype="float64", m=3, P=6, panel="b", code="approx_matdot",
                             n_succ=ns, gamma=g, max_err=1e-3 / ns, mean_err=1e-4,
                             eps1=1e-4, eps2=1e-5))  # fmt: skip
        rows.append(dict(dtype="float64", m=3, P=6, panel="a", code="matdot", n_succ=ns,
                         gamma=1.0, max_err=1e-3, mean_err=1e-4, eps1=0.0, eps2=1e-5))  # fmt: skip
    figure1.plot(rows, tmp_path)
    panels = {f.axes[0].get_title()[:9]: f.axes[0] for f in figs}
    assert _integer_ticks(panels["Fig. 1(a)"]) and _integer_ticks(panels["Fig. 1(c)"])
    figs.clear()
    name = next(iter(beyond.SCHEMES))
    brows = [dict(P_case="2m", dtype="float64", scheme=name, m=m, max_err=10.0**-m)
             for m in (2, 3, 4)]  # fmt: skip
    beyond.plot(brows, tmp_path / "b.png")
    assert figs and all(_integer_ticks(ax) for ax in figs[0].axes if ax.has_data())
    assert np.isfinite(len(figs))
