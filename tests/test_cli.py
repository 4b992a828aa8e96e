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


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(capsys, flag):
    assert cli.main([flag]) == 0
    assert capsys.readouterr().out.strip() == f"gpucoded {__version__}"


def test_help_command(capsys):
    """``gpucoded help`` is the top-level help, ``help CMD`` that command's options, an
    unknown topic one line listing the commands."""
    assert cli.main(["help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gpucoded") and "advise" in out and "help" in out
    assert cli.main(["help", "advise"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gpucoded advise") and "--stragglers" in out
    assert cli.main(["help", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'nope'" in err and "figure1" in err


#: each misuse: the argv and what the one line must name (the option, the valid range)
MISUSES = [
    (["advise", "--m", "4", "--P", "9", "--rtol", "-1"], ["--rtol", "> 0"]),
    (["advise", "--m", "4", "--P", "9", "--tol", "0"], ["--tol", "> 0"]),
    (["advise", "--m", "4", "--P", "9", "--n", "0"], ["--n", ">= 1"]),
    (["advise", "--m", "4", "--P", "9", "--n", "2"], ["--n", ">= --m"]),
    (["advise", "--m", "4", "--P", "9", "--stragglers", "-1"], ["--stragglers", ">= 0"]),
    (["advise", "--m", "4", "--P", "9", "--stragglers", "6"], ["--stragglers", "[0, 5]"]),
    (["advise", "--m", "4", "--P", "3"], ["--P", ">= --m"]),
    (["advise", "--m", "0", "--P", "3"], ["--m", ">= 1"]),
    (["advise", "--m", "2", "--P", "5", "--stragglers", "1", "--usual-stragglers", "2"],
     ["--usual-stragglers", "[0, stragglers=1]"]),
    (["advise", "--m", "x", "--P", "5"], ["--m", "integer"]),
    (["figure1", "--m", "0", "--out", "unused"], ["--m", ">= 1"]),
    (["figure1", "--m", "5", "--P", "4", "--out", "unused"], ["--P", ">= --m"]),
    (["figure1", "--n", "2", "--out", "unused"], ["--n", ">= --m"]),
    (["figure1", "--approx-gamma", "-3", "--out", "unused"], ["--approx-gamma", "> 0"]),
    (["figure1", "--approx-gamma", "nan", "--out", "unused"], ["--approx-gamma", "finite"]),
    (["figure1", "--dtypes", "float63", "--out", "unused"], ["--dtypes", "float64"]),
    (["figure1", "--gammas", "0", "--out", "unused"], ["--gammas", ">= 1"]),
    (["beyond", "--m", "1-3", "--out", "unused"], ["--m", ">= 2"]),
    (["beyond", "--m", "4-2", "--out", "unused"], ["--m", "a <= b"]),
    (["beyond", "--max-subsets", "0", "--out", "unused"], ["--max-subsets", ">= 1"]),
    (["beyond", "--schemes", "nope", "--out", "unused"], ["--schemes", "eps_matdot"]),
    (["progressive", "--m", "3,4", "--out", "unused"], ["--m", "a-b"]),
    (["progressive", "--dtypes", "int8", "--out", "unused"], ["--dtypes", "float32"]),
    (["logreg", "--iterations", "0", "--out", "unused"], ["--iterations", ">= 1"]),
    (["logreg", "--modes", "best", "--out", "unused"], ["--modes", "worst"]),
    (["demo", "--n", "0"], ["--n", ">= 1"]),
    (["demo", "--n", "2", "--m", "4"], ["--n", ">= --m"]),
    (["demo", "--straggler-delay", "-1"], ["--straggler-delay", ">= 0"]),
    (["advise", "--m", "4"], ["--P", "required"]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "names"), MISUSES, ids=lambda v: " ".join(v))
def test_bad_values_are_one_line_naming_option_and_range(capsys, argv, names):
    """Refused before any work: exit 2, one line on stderr naming the option and what
    it accepts, no Namespace dump, nothing on stdout."""
    assert cli.main(argv) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.startswith(f"gpucoded {argv[0]}: ") and "\n" not in err, err
    assert "Namespace" not in err and cap.out == ""
    for name in names:
        assert name in err, (name, err)


def test_bad_values_exit_nonzero_as_a_command():
    """The command itself (python -m gpucoded) exits 2 with the one line."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "gpucoded", "advise", "--m", "4", "--P", "9", "--rtol", "-1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--rtol" in r.stderr and "> 0" in r.stderr


def _no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail as it does where it is not installed."""
    import sys

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import -> ModuleNotFoundError


STUDY_RUNS = [
    (["figure1", "--quick", "--gammas", "3", "--dtypes", "float64", "--no-split"],
     ["figure1.csv"]),
    (["beyond", "--m", "2", "--schemes", "eps_matdot", "--dtypes", "float64",
      "--max-subsets", "2", "--no-split"], ["beyond.csv", "beyond.md"]),
    (["progressive", "--m", "2-2", "--dtypes", "float64", "--max-subsets", "2"],
     ["progressive.csv", "progressive.md"]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "files"), STUDY_RUNS, ids=lambda v: v[0])
def test_without_matplotlib_data_first_then_exit_0(monkeypatch, capsys, tmp_path, argv, files):
    """Without matplotlib a study writes its data, says where and how to get the plots
    (pip install matplotlib / the plot extra) and exits 0; no PNG."""
    _no_matplotlib(monkeypatch)
    rc = cli.main([*argv, "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    for f in files:
        assert (tmp_path / f).stat().st_size > 0 and str(tmp_path / f) in out
    assert "pip install matplotlib" in out and "gpucoded[plot]" in out
    assert not list(tmp_path.glob("*.png"))


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
