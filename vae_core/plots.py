"""Plotly figures of learning curves, shared by the Train and Runs pages.

Each figure is a plain dict in Plotly's JSON schema, which `st.plotly_chart` and `Plotly.react` both take.
The Train page rebuilds two of them twice a second: built and serialised by plotly's validating figure
objects, a pair took about 20 ms of the app server, as dicts 2 ms (docs/PERFORMANCE.md)."""
from __future__ import annotations

import json
import math

import numpy as np


def smooth(values: list[float], strength: float) -> np.ndarray:
    """Exponential moving average; strength 0 leaves the values as they are, 0.99 smooths heavily."""
    out = np.empty(len(values))
    running = None
    for i, v in enumerate(values):
        running = v if running is None else strength * running + (1 - strength) * v
        out[i] = running
    return out


def _thin(x: list, y, points: int = 300) -> dict[str, list]:
    """At most `points` points, keeping the first and the last: the browser redraws these twice a second.
    Half are evenly spaced and half geometrically, so that the curve keeps its shape on a linear and on a log x
    axis alike (evenly spaced alone would draw the first decades of a log axis from two or three points)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) > points:
        spread = np.concatenate([np.linspace(0, len(x) - 1, points // 2), np.geomspace(1, len(x), points // 2) - 1])
        keep = np.unique(spread.round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": x.tolist(), "y": y.tolist()}


def _line(x, y, name: str, **style) -> dict:
    y = [v if math.isfinite(v) else None for v in y]  # JSON has no NaN or infinity; Plotly leaves a gap at None
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, **style}


def _figure(traces: list[dict], title: str, log_x: bool, **layout) -> dict:
    return {"data": traces, "layout": {
        "title": {"text": title}, "height": 360, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"title": {"text": "training samples evaluated"}, "type": "log" if log_x else "linear"},
        "yaxis": {"title": {"text": "nats per datapoint"}}, **layout}}


def to_json(figure: dict) -> str:
    """The figure as the Train page's chart component takes it (assets/live_chart.html parses it)."""
    return json.dumps(figure)


def learning_curves(series: dict[str, list[dict]], log_x: bool = True, smoothing: float = 0.6) -> dict:
    """Lower bound against samples evaluated: the smoothed minibatch bound over its faint raw curve, and the
    full train and test bounds at each evaluation, for each labelled run."""
    traces = []
    for label, rows in series.items():
        prefix = f"{label}: " if len(series) > 1 else ""
        batches = [r for r in rows if r.get("kind") == "minibatch"]
        if batches:
            x = [r["samples_evaluated"] for r in batches]
            y = [r["lower_bound"] for r in batches]
            traces.append(_line(**_thin(x, y), name=f"{prefix}minibatch (raw)", opacity=0.25, line={"width": 1},
                                showlegend=len(series) == 1))
            traces.append(_line(**_thin(x, smooth(y, smoothing)), name=f"{prefix}minibatch (smoothed)"))
        evaluations = [r for r in rows if "test_lower_bound" in r]
        for key, name in (("train_lower_bound", "train"), ("test_lower_bound", "test")):
            if evaluations:
                traces.append(_line([r["samples_evaluated"] for r in evaluations], [r[key] for r in evaluations],
                                    f"{prefix}{name}", mode="lines+markers"))
    return _figure(traces, "Lower bound (ELBO)", log_x)


def bound_terms(rows: list[dict], log_x: bool = True, smoothing: float = 0.6) -> dict:
    """The two terms of estimator B (eq. 7) on the minibatches: reconstruction E_q[log p(x|z)] and KL(q || p).
    The KL has an axis of its own on the right: it is often a hundred times smaller than the reconstruction
    term (about 10 against 1000 nats on Frey Face with J = 2) and would lie flat on a shared axis."""
    batches = [r for r in rows if r.get("kind") == "minibatch"]
    x = [r["samples_evaluated"] for r in batches]
    terms = (("reconstruction", "reconstruction  E[log p(x|z)]", "y", "#0068c9"),
             ("kl", "KL(q(z|x) || p(z)), right axis", "y2", "#ff2b2b"))
    traces = []
    for key, name, axis, color in terms:
        y = [r[key] for r in batches]
        traces.append(_line(**_thin(x, y), name=f"{name} raw", opacity=0.25, line={"width": 1, "color": color},
                            yaxis=axis, showlegend=False))
        traces.append(_line(**_thin(x, smooth(y, smoothing)), name=name, line={"color": color}, yaxis=axis))
    return _figure(traces, "Where the bound comes from", log_x,
                   yaxis={"title": {"text": "reconstruction, nats per datapoint", "font": {"color": terms[0][3]}}},
                   yaxis2={"title": {"text": "KL, nats per datapoint", "font": {"color": terms[1][3]}},
                           "overlaying": "y", "side": "right", "showgrid": False, "zeroline": False,
                           "automargin": True, "rangemode": "tozero", "tickmode": "auto"})
