"""The Paper page's views: the figures of vae_core.paper drawn from the runs that exist, what is missing, and the
paper's claims as the runs measure them."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from vae_core import data, paper, runs
from vae_core.formatting import format_duration
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


PANEL_SIZE = (300, 260)  # each panel's chart, width and height in pixels: as many to a row as the page's width takes
EMPTY_PANEL_SIZE = (300, 110)  # a panel without runs: its title and "no runs yet"


def _line_styles(figure: paper.Figure, panels: dict[paper.Panel, list[paper.Curve]]) -> dict[str, dict]:
    """Each line's name and its style, over all the figure's panels: train solid, test dashed, the test IW bound
    (IWAE's) dotted, coloured by algorithm or, where the figure has a variant, by its value."""
    variants = sorted({c.variant for lines in panels.values() for c in lines if c.variant is not None})
    styles = {}
    for curve in (c for lines in panels.values() for c in lines):
        variant = figure.describe(curve)
        colour = VARIANT_COLORS[variants.index(curve.variant) % len(VARIANT_COLORS)] if variant else COLORS[curve.algorithm]
        for which, dash in (("train", "solid"), ("test", "dash")) + ((("iw_test", "dot"),) if curve.iw_test else ()):
            styles[_name(figure, curve, which)] = {"color": colour, "dash": dash, "width": 1.5}
    return styles


def _name(figure: paper.Figure, curve: paper.Curve, which: str) -> str:
    variant = figure.describe(curve)
    return f"{curve.algorithm}{', ' + variant if variant else ''} ({'test IW bound' if which == 'iw_test' else which})"


def draw(figure: paper.Figure, panels: dict[paper.Panel, list[paper.Curve]], log_x: bool = True) -> dict:
    """A figure as charts: its lines' names and styles (for one legend, `legend_html`) and a chart per panel in the
    paper's order, each of PANEL_SIZE so that the page lays them out as its width allows (the paper's rows on a
    wide screen, one a row on a phone). Each panel plots the figure's measure against training samples evaluated, one
    line per run, on one x range shared by every panel; an empty panel says so instead of inventing axes."""
    import plotly.graph_objects as go

    styles = _line_styles(figure, panels)
    reach = max((s for lines in panels.values() for c in lines for s in c.samples), default=10**8)
    measure = paper.MEASURES[figure.measure][0]
    charts = {}
    for panel in figure.panels:
        plot = go.Figure()
        for curve in panels[panel]:
            for which in ("train", "test") + (("iw_test",) if curve.iw_test else ()):
                name = _name(figure, curve, which)
                plot.add_scatter(x=curve.samples, y=getattr(curve, which), mode="lines", line=styles[name], name=name,
                                 showlegend=False, hovertemplate=f"{curve.run} (seed {curve.seed})<br>%{{x:,}} samples: "
                                                                 f"%{{y:.2f}} <extra>{name}, {measure}</extra>")
        plot.update_xaxes(type="log" if log_x else "linear", title_text="samples evaluated", title_font_size=10,
                          range=[3, math.log10(reach) + 0.1] if log_x else [0, reach * 1.02],  # one for all panels
                          dtick=2 if log_x else None)
        plot.update_yaxes(title_text=f"{measure} (nats per datapoint)", title_font_size=10)
        _frame(plot, panels[panel])
        width, height = PANEL_SIZE if panels[panel] else EMPTY_PANEL_SIZE
        plot.update_layout(title={"text": panel.label, "font": {"size": 13}}, width=width, height=height,
                           margin={"l": 10, "r": 10, "t": 36, "b": 10})
        charts[panel] = plot
    return {"lines": styles, "panels": charts}


def legend_html(styles: dict[str, dict]) -> str:
    """One legend for a figure's panels, as HTML that wraps with the page's width: each line's name (data, escaped)
    after a stroke in its colour, solid, dashed or dotted."""
    from html import escape

    strokes = {"solid": "solid", "dash": "dashed", "dot": "dotted"}
    items = "".join(f'<span style="margin-right:1.2em;white-space:nowrap"><span style="display:inline-block;width:2em;'
                    f'vertical-align:middle;border-top:2px {strokes[style["dash"]]} {style["color"]}"></span> '
                    f'{escape(name)}</span> ' for name, style in styles.items())
    return f'<div style="font-size:0.85em;line-height:1.8">{items}</div>'



def _frame(plot, curves: list[paper.Curve]) -> None:
    """The panel's y axis framed on its curves from FRAMED_FROM samples on, padded by 5%; an empty panel says so
    and draws no axes (it has none to show)."""
    if not curves:
        plot.add_annotation(text="no runs yet", showarrow=False, font={"color": "grey"}, x=0.5, y=0.5,
                            xref="x domain", yref="y domain")
        plot.update_xaxes(visible=False)
        plot.update_yaxes(visible=False)
    framed = [v for curve in curves for which in ("train", "test", "iw_test")
              for s, v in zip(curve.samples, getattr(curve, which)) if s >= FRAMED_FROM and not math.isnan(v)]
    if framed:
        low, high = min(framed), max(framed)
        pad = 0.05 * (high - low) or 1.0
        plot.update_yaxes(range=[low - pad, high + pad])


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


def _missing_configs(curves, samples: int) -> list[dict]:
    """A run's settings for each missing configuration of the trainable figures whose data is on this machine."""
    configs = [figure.config(panel, algorithm, samples).to_dict()
               for figure in TRAINABLE for panel, algorithm in paper.missing(figure, curves[figure])]
    return [c for c in configs if data.available(c["dataset"])]


def _pace_key(train_config: dict) -> tuple:
    return train_config.get("dataset"), train_config.get("algorithm"), train_config.get("evaluation")


def missing_cost(curves, samples: int, records: list[runs.RunRecord], slots: int) -> str:
    """What training the missing runs would take on this machine, said before they start: each at the pace (training
    samples a second, evaluations included) of this machine's finished runs of its data, algorithm and evaluation,
    `slots` at a time; the runs of which none has finished here yet are counted, not timed."""
    paces: dict[tuple, list[float]] = {}
    for record in records:
        rate = record.status.get("samples_per_second")
        if record.state == runs.RunState.FINISHED and isinstance(rate, (int, float)) and rate > 0:
            paces.setdefault(_pace_key(record.train_config), []).append(float(rate))
    configs = _missing_configs(curves, samples)
    if not configs:
        return ""
    timed = [c["samples"] / statistics.median(paces[_pace_key(c)]) for c in configs if _pace_key(c) in paces]
    said = f"{len(configs)} runs of {samples:,} samples"
    if not timed:
        return f"{said}; no run like them has finished on this machine yet, so their time is not known."
    at_once = max(1, min(slots, len(configs)))
    seconds = sum(timed) * len(configs) / len(timed) / at_once  # the untimed ones as long as the timed on average
    untimed = len(configs) - len(timed)
    return (f"{said}: about {format_duration(seconds)}, {at_once} at a time, at the pace of this machine's finished "
            f"runs like them" + (f" ({untimed} of them are like no run finished here: each taken as long as the "
                                 f"others on average)." if untimed else "."))


def missing_sweep(curves, samples: int) -> Path | None:
    """A sweep (saved, not started) of a run for each missing configuration of the trainable figures whose data is
    on this machine, with the paper's settings and the budget given; None when nothing is missing here."""
    configs = _missing_configs(curves, samples)
    if not configs:
        return None
    sweep = Sweep.from_configs(runs.new_run_dir(None, "paper"), configs)
    sweep.save(["the Paper page: train what is missing"])
    return sweep.sweep_dir
