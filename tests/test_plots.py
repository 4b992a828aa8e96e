"""The studies' plots read without the paper: each legend entry names its code and
statistic, the x-axes count "answers received" (no N_succ), the y-axes name the
operands' scale, and no panel is a single point on a zoomed-in axis."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions save (not written to disk)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figs: list = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figs.append(self))
    return figs


def _texts(fig) -> list[str]:
    """Every visible text of a figure: titles, axis labels, legend entries."""
    out = [t.get_text() for t in fig.texts]
    for leg in fig.legends:
        out += [t.get_text() for t in leg.get_texts()] + [leg.get_title().get_text()]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return [t for t in out if t]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _figure1_rows() -> list[dict]:
    rows = []
    for ns in (1, 2, 3, 4, 5, 6):
        for code, g in (("matdot", 1.0), ("chebyshev", 1.0), ("approx_matdot", 7e4)):
            if code == "approx_matdot" and ns < 3:
                continue
            rows.append(dict(dtype="float64", m=3, P=6, panel="a", code=code, n_succ=ns,
                             gamma=g, max_err=1e-3 / ns, mean_err=1e-4 / ns,
                             eps1=1e-4, eps2=1e-5))  # fmt: skip
        for g in (1.0, 100.0, 1e4, 7e4, 1e6):
            if ns >= 3:
                rows.append(dict(dtype="float64", m=3, P=6, panel="b", code="approx_matdot",
                                 n_succ=ns, gamma=g, max_err=1e-3 / ns / g, mean_err=1e-4,
                                 eps1=1e-4 / g, eps2=1e-9 * g))  # fmt: skip
    return rows


def test_figure1_legends_name_code_and_statistic(figures, tmp_path):
    from gpucoded.studies import figure1

    figure1.plot(_figure1_rows(), tmp_path)
    by_panel = {f.axes[0].get_title()[:9]: f for f in figures}
    a = by_panel["Fig. 1(a)"].axes[0]
    entries = [e for e in _legend(a) if not e.startswith("2m−1")]
    assert len(entries) == len(set(entries)) == 6  # three codes × (worst case, mean)
    for code in ("MatDot λ(1)", "Chebyshev", "ε-MatDot λ(70000)"):
        assert f"{code}: worst case" in entries and f"{code}: mean" in entries
    b = by_panel["Fig. 1(b)"].axes[0]
    assert {"4 answers received: worst case", "ε₁ interpolation (its worst pattern)",
            "ε₂ rounding (its worst pattern)"} <= set(_legend(b))  # fmt: skip
    c = by_panel["Fig. 1(c)"].axes[0]
    assert all(e.endswith("worst case") for e in _legend(c) if e.startswith("γ"))


def test_no_jargon_and_a_scale_note_on_every_error_axis(figures, tmp_path):
    """figure1, gamma_check, beyond, progressive: "answers received", never N_succ; each
    error axis says the operands are of unit Frobenius norm."""
    from gpucoded.studies import beyond, figure1, gamma_check, progressive_gain

    figure1.plot(_figure1_rows(), tmp_path)
    gs = np.logspace(0, 4, 5)
    curves = {(2, "float64"): (gs, gs * 1e-9, gs * 2e-9, 10.0, 1e-8)}
    gamma_check.plot_gamma_check([], curves, tmp_path)
    beyond.plot(_beyond_rows(), tmp_path / "b.png")
    prows = [dict(m=m, dtype="float64", answers=r, err_gamma_m=1e-6, err_gamma_r=1e-6 / r)
             for m in (2, 3) for r in range(m, 2 * m)]  # fmt: skip
    progressive_gain.plot(prows, tmp_path / "p.png")
    assert len(figures) == 3 + 1 + 1 + 1
    for fig in figures:
        texts = _texts(fig)
        assert not any("N_succ" in t for t in texts), texts
        ylabels = [ax.get_ylabel() for ax in fig.axes if ax.has_data()]
        ylabels += [t.get_text() for t in fig.texts]  # supylabel
        assert any("unit Frobenius norm" in y for y in ylabels), ylabels
    xlabels = [ax.get_xlabel() for fig in figures for ax in fig.axes] + [
        t.get_text() for fig in figures for t in fig.texts
    ]
    assert sum("answers received" in x for x in xlabels) >= 3  # fig1 (a), (c), progressive
    progressive_legend = [t.get_text() for t in figures[-1].legends[0].get_texts()]
    assert "γ tuned for m answers" in progressive_legend  # the line styles are explained


def _beyond_rows() -> list[dict]:
    # a scheme measured at one m only (P = 2m from m = 3), others at m = 2, 3, 4
    from gpucoded.studies.beyond import SCHEMES

    a, b = list(SCHEMES)[:2]
    rows = [dict(P_case="m+2", dtype="float64", scheme=a, m=m, max_err=10.0**-m)
            for m in (2, 3, 4)]  # fmt: skip
    rows.append(dict(P_case="2m", dtype="float64", scheme=b, m=3, max_err=1e-5))
    return rows


def test_beyond_has_no_single_point_axis(figures, tmp_path):
    """A panel with one measured m still spans every m of the study, with integer ticks
    (was: one point on ticks 2.84–3.16)."""
    from gpucoded.studies import beyond

    beyond.plot(_beyond_rows(), tmp_path / "b.png")
    (fig,) = figures
    for ax in fig.axes:
        if not ax.has_data():
            continue
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert lo <= 2 and hi >= 4 and len(ticks) >= 3, (ax.get_title(), lo, hi)
        assert all(float(t).is_integer() for t in ticks)
    assert fig.legends and "worst case" in fig.legends[0].get_title().get_text()


def test_quick_modes_have_several_m_per_panel():
    """``beyond --quick`` measures m = 2..4: every P case has at least two m values."""
    from gpucoded.studies.beyond import QUICK, _ms

    ms = _ms(QUICK["m"])
    assert len([m for m in ms if m + 2 != 2 * m]) >= 2  # the P = 2m panel (m = 2 is m+2)

