"""The Paper page's views: Figures 2 and 3 and the full-VB comparison drawn from the runs that exist, what is
missing, and the paper's claims as the runs measure them."""
from __future__ import annotations

import pandas as pd

from pathlib import Path

from vae_core import data, paper, runs
from vae_core.sweep import Sweep

COLORS = {"aevb": "#1f77b4", "wake-sleep": "#d62728", "mcem": "#2ca02c"}
VARIANT_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")  # full VB's initial log-variances, in order
NAMES = paper.NAMES
# Each panel's y axis frames the curves from this many samples on (the paper's axes start at 10^5): the first
# evaluations' transient (a dip of up to 6·10^5 nats at a few hundred samples) would otherwise flatten everything
# after it. Plotly's autoscale button shows the whole curve.
FRAMED_FROM = 10**4
CLAIMED = {True: "✓ holds", False: "✗ does not hold", None: "— not yet"}


def records(runs_dir=None) -> list[runs.RunRecord]:
    return [runs.read_run(path) for path in runs.list_runs(runs_dir)]


def _colour(curve: paper.Curve, variants: list[str]) -> str:
    return VARIANT_COLORS[variants.index(curve.variant) % len(VARIANT_COLORS)] if curve.variant else COLORS[curve.algorithm]


def _lines(figure, curves: list[paper.Curve], row: int, col: int, shown: set, measure: str,
           variants: list[str] = ()) -> None:
    """One line per run and set: train solid, test dashed, coloured by algorithm (and variant); an empty panel
    says so."""
    if not curves:
        figure.add_scatter(x=[1e3, 1e8], y=[None, None], mode="lines", showlegend=False, row=row, col=col,
                           hoverinfo="skip")  # axes to draw, over the paper's x range
        figure.add_annotation(text="no runs yet", showarrow=False, font=dict(color="grey"), row=row, col=col,
                              x=0.5, y=0.5, xref="x domain", yref="y domain")
    for curve in curves:
        for which, dash in (("train", "solid"), ("test", "dash")):
            name = f"{curve.algorithm}{', ' + curve.variant if curve.variant else ''} ({which})"
            figure.add_scatter(x=curve.samples, y=getattr(curve, which), mode="lines", row=row, col=col,
                               line=dict(color=_colour(curve, list(variants)), dash=dash, width=1.5), name=name,
                               legendgroup=name, showlegend=name not in shown,
                               hovertemplate=f"{curve.run} (seed {curve.seed})<br>%{{x:,}} samples: %{{y:.2f}} "
                                             f"<extra>{name}, {measure}</extra>")
            shown.add(name)
    framed = [v for curve in curves for which in ("train", "test")
              for s, v in zip(curve.samples, getattr(curve, which)) if s >= FRAMED_FROM and v == v]  # v == v: not NaN
    if framed:
        low, high = min(framed), max(framed)
        pad = 0.05 * (high - low) or 1.0
        figure.update_yaxes(range=[low - pad, high + pad], row=row, col=col)


def figure_2(panels: dict[tuple[str, int], list[paper.Curve]], log_x: bool = True):
    """Figure 2 as the paper lays it out: MNIST's five panels above Frey Face's four, lower bound against training
    samples evaluated, AEVB and wake-sleep, train (solid) and test (dashed), one line per run."""
    from plotly.subplots import make_subplots

    titles = [f"{NAMES[d]}, J = {J}" for d, J in paper.FIGURE_2]
    figure = make_subplots(rows=2, cols=5, subplot_titles=titles + [""], horizontal_spacing=0.05, vertical_spacing=0.14)
    shown = set()
    for index, panel in enumerate(paper.FIGURE_2):
        row, col = (1, index + 1) if index < 5 else (2, index - 4)  # MNIST above, Frey Face below
        _lines(figure, panels[panel], row, col, shown, "lower bound")
    figure.update_xaxes(type="log" if log_x else "linear", title_text="samples evaluated", title_font_size=10,
                        dtick=2 if log_x else None)  # every other decade: five panels a row leave little room
    figure.update_yaxes(title_text="lower bound", title_font_size=10, col=1)
    figure.update_annotations(font_size=12)  # the panels' titles, which collide at narrow widths in the default 16
    figure.update_layout(height=620, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.12))
    return figure


def figure_3(panels: dict[int, list[paper.Curve]], log_x: bool = True):
    """Figure 3: the marginal log-likelihood (Appendix D's estimate) against training samples evaluated, MNIST with
    J = 3, trained on 1000 and on 50000 points; AEVB, wake-sleep and Monte Carlo EM."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=[f"MNIST, J = 3, N_train = {n:,}" for n in paper.FIGURE_3])
    shown = set()
    for col, n in enumerate(paper.FIGURE_3, 1):
        _lines(figure, panels[n], 1, col, shown, "log p(x)")
    figure.update_xaxes(type="log" if log_x else "linear", title_text="samples evaluated", title_font_size=10)
    figure.update_yaxes(title_text="marginal log-likelihood", title_font_size=10, col=1)
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return figure


def appendix_f(panels: dict[tuple[str, int], list[paper.Curve]], log_x: bool = True):
    """Full variational Bayes (Appendix F) against AEVB by the lower bound, Frey Face J = 2 and MNIST J = 20; a
    colour per initial log-variance of q(θ)."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=[f"{NAMES[d]}, J = {J}" for d, J in paper.APPENDIX_F])
    variants = sorted({c.variant for curves in panels.values() for c in curves if c.variant},
                      key=lambda v: float(v.rsplit("=", 1)[1]))
    shown = set()
    for col, panel in enumerate(paper.APPENDIX_F, 1):
        _lines(figure, panels[panel], 1, col, shown, "lower bound", variants)
    figure.update_xaxes(type="log" if log_x else "linear", title_text="samples evaluated", title_font_size=10)
    figure.update_yaxes(title_text="lower bound", title_font_size=10, col=1)
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return figure


def missing_table(panels, panels_3) -> pd.DataFrame:
    rows = [{"figure": "Fig. 2", "dataset": d, "J": J, "N_train": "all", "algorithm": a} for d, J, a in paper.missing(panels)]
    rows += [{"figure": "Fig. 3", "dataset": "mnist", "J": 3, "N_train": f"{n:,}", "algorithm": a}
             for n, a in paper.missing_3(panels_3)]
    return pd.DataFrame(rows, columns=["figure", "dataset", "J", "N_train", "algorithm"])


def claims_table(panels, panels_3, panels_f=None) -> pd.DataFrame:
    rows = []
    for where, verdicts in paper.claims(panels).items():
        label = f"{NAMES[where]}, all J" if isinstance(where, str) else f"{NAMES[where[0]]}, J = {where[1]}"
        rows += [{"figure": "Fig. 2", "where": label, "claim": v.claim, "verdict": CLAIMED[v.holds],
                  "evidence": v.evidence} for v in verdicts]
    for n, verdicts in paper.claims_3(panels_3).items():
        rows += [{"figure": "Fig. 3", "where": f"MNIST, N_train = {n:,}", "claim": v.claim, "verdict": CLAIMED[v.holds],
                  "evidence": v.evidence} for v in verdicts]
    for (d, J), verdicts in paper.claims_f(panels_f or {}).items():
        rows += [{"figure": "App. F", "where": f"{NAMES[d]}, J = {J}", "claim": v.claim, "verdict": CLAIMED[v.holds],
                  "evidence": v.evidence} for v in verdicts]
    return pd.DataFrame(rows)


def missing_sweep(panels, panels_3, samples: int) -> Path | None:
    """A sweep (saved, not started) of a run for each missing configuration of Figures 2 and 3 whose data is on this
    machine, with the paper's settings and the budget given; None when nothing is missing here."""
    configs = [paper.figure_2_config(d, J, a, samples).to_dict() for d, J, a in paper.missing(panels)]
    configs += [paper.figure_3_config(n, a, samples).to_dict() for n, a in paper.missing_3(panels_3)]
    configs = [c for c in configs if data.available(c["dataset"])]
    if not configs:
        return None
    sweep = Sweep.from_configs(runs.new_run_dir(None, "paper"), configs)
    sweep.save(["the Paper page: train what is missing"])
    return sweep.sweep_dir
