"""The Paper page's views: the figures of vae_core.paper drawn from the runs that exist, what is missing, and the
paper's claims as the runs measure them."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from vae_core import data, paper, runs
from vae_core.sweep import Sweep

from . import run_index

COLORS = {"aevb": "#1f77b4", "wake-sleep": "#d62728", "mcem": "#2ca02c"}
VARIANT_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")  # each variant's (full VB's log σ²₀, IWAE's K)
# Each panel's y axis frames the curves from this many samples on (the paper's axes start at 10^5): the first
# evaluations' transient (a dip of up to 6·10^5 nats at a few hundred samples) would otherwise flatten everything
# after it. Plotly's autoscale button shows the whole curve.
FRAMED_FROM = 10**4
CLAIMED = {True: "✓ holds", False: "✗ does not hold", None: "— not yet"}
SHOWN = (paper.FIGURE_2, paper.FIGURE_3, paper.APPENDIX_F)  # the page's figures, in its order
# What "Train what is missing" trains: Appendix F's AEVB runs are Figure 2's, which one sweep of both would hold twice.
TRAINABLE = (paper.FIGURE_2, paper.FIGURE_3)


def records(runs_dir=None) -> list[runs.RunRecord]:
    return run_index().records(runs_dir)


def curves(records: list[runs.RunRecord]) -> dict[paper.Figure, dict[paper.Panel, list[paper.Curve]]]:
    """The runs of each panel of each figure the page shows."""
    return {figure: paper.curves(figure, records) for figure in SHOWN}


def _lines(plot, figure: paper.Figure, curves: list[paper.Curve], row: int, col: int, shown: set,
           variants: list[float]) -> None:
    """One line per run and set: train solid, test dashed, coloured by algorithm (and variant), and for a run that
    reports its IW bound (IWAE), that bound on the test set dotted; an empty panel says so."""
    if not curves:  # no axes to invent: the panel says it is empty
        plot.add_annotation(text="no runs yet", showarrow=False, font={"color": "grey"}, row=row, col=col,
                            x=0.5, y=0.5, xref="x domain", yref="y domain")
        plot.update_xaxes(visible=False, row=row, col=col)
        plot.update_yaxes(visible=False, row=row, col=col)
    for curve in curves:
        variant = figure.describe(curve)
        colour = VARIANT_COLORS[variants.index(curve.variant) % len(VARIANT_COLORS)] if variant else COLORS[curve.algorithm]
        for which, dash in (("train", "solid"), ("test", "dash")) + ((("iw_test", "dot"),) if curve.iw_test else ()):
            name = f"{curve.algorithm}{', ' + variant if variant else ''} ({'test IW bound' if which == 'iw_test' else which})"
            plot.add_scatter(x=curve.samples, y=getattr(curve, which), mode="lines", row=row, col=col,
                             line={"color": colour, "dash": dash, "width": 1.5}, name=name, legendgroup=name,
                             showlegend=name not in shown,
                             hovertemplate=f"{curve.run} (seed {curve.seed})<br>%{{x:,}} samples: %{{y:.2f}} "
                                           f"<extra>{name}, {paper.MEASURES[figure.measure][0]}</extra>")
            shown.add(name)
    framed = [v for curve in curves for which in ("train", "test", "iw_test")
              for s, v in zip(curve.samples, getattr(curve, which)) if s >= FRAMED_FROM and not math.isnan(v)]
    if framed:
        low, high = min(framed), max(framed)
        pad = 0.05 * (high - low) or 1.0
        plot.update_yaxes(range=[low - pad, high + pad], row=row, col=col)


def draw(figure: paper.Figure, panels: dict[paper.Panel, list[paper.Curve]], log_x: bool = True):
    """A figure as the paper lays it out (Fig. 2: MNIST's five panels above Frey Face's four), its measure against
    training samples evaluated, train (solid) and test (dashed), one line per run, a colour per algorithm and per
    value of the figure's variant (Appendix F: full VB's initial log-variance of q(θ))."""
    from plotly.subplots import make_subplots

    rows = math.ceil(len(figure.panels) / figure.columns)
    plot = make_subplots(rows=rows, cols=figure.columns, subplot_titles=[p.label for p in figure.panels],
                         horizontal_spacing=0.25 / figure.columns, vertical_spacing=0.14)
    variants = sorted({c.variant for lines in panels.values() for c in lines if c.variant is not None})
    shown = set()
    for index, panel in enumerate(figure.panels):
        _lines(plot, figure, panels[panel], index // figure.columns + 1, index % figure.columns + 1, shown, variants)
    reach = max((s for lines in panels.values() for c in lines for s in c.samples), default=10**8)
    plot.update_xaxes(type="log" if log_x else "linear", title_text="samples evaluated", title_font_size=10,
                      range=[3, math.log10(reach) + 0.1] if log_x else [0, reach * 1.02],  # one x range for all
                      dtick=2 if log_x and figure.columns > 2 else None)  # every other decade where panels are narrow
    plot.update_yaxes(title_text=f"{paper.MEASURES[figure.measure][0]} (nats per datapoint)", title_font_size=10,
                      col=1)
    plot.update_annotations(font_size=12)  # the panels' titles, which collide at narrow widths in the default 16
    plot.update_layout(height=140 + 240 * rows, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                       legend={"orientation": "h", "y": -0.24 / rows})
    return plot


def missing_table(curves) -> pd.DataFrame:
    rows = [{"figure": figure.name, "dataset": panel.dataset, "J": panel.latent_dim,
             "N_train": f"{panel.train_size:,}" if panel.train_size else "all", "algorithm": algorithm}
            for figure in TRAINABLE for panel, algorithm in paper.missing(figure, curves[figure])]
    return pd.DataFrame(rows, columns=["figure", "dataset", "J", "N_train", "algorithm"])


def claims_table(curves) -> pd.DataFrame:
    return pd.DataFrame([{"figure": figure.name, "where": where, "claim": v.claim, "verdict": CLAIMED[v.holds],
                          "evidence": v.evidence}
                         for figure in SHOWN for where, verdicts in paper.claims(figure, curves[figure]).items()
                         for v in verdicts])


def missing_sweep(curves, samples: int) -> Path | None:
    """A sweep (saved, not started) of a run for each missing configuration of the trainable figures whose data is
    on this machine, with the paper's settings and the budget given; None when nothing is missing here."""
    configs = [figure.config(panel, algorithm, samples).to_dict()
               for figure in TRAINABLE for panel, algorithm in paper.missing(figure, curves[figure])]
    configs = [c for c in configs if data.available(c["dataset"])]
    if not configs:
        return None
    sweep = Sweep.from_configs(runs.new_run_dir(None, "paper"), configs)
    sweep.save(["the Paper page: train what is missing"])
    return sweep.sweep_dir
