"""Plotly figures of learning curves, shared by the Train and Runs pages."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def smooth(values: list[float], strength: float) -> np.ndarray:
    """Exponential moving average; strength 0 leaves the values as they are, 0.99 smooths heavily."""
    out = np.empty(len(values))
    running = None
    for i, v in enumerate(values):
        running = v if running is None else strength * running + (1 - strength) * v
        out[i] = running
    return out


def _thin(x: list, y, points: int = 300) -> dict[str, np.ndarray]:
    """At most `points` points, keeping the first and the last: the browser redraws these twice a second.
    Half are evenly spaced and half geometrically, so that the curve keeps its shape on a linear and on a log x
    axis alike (evenly spaced alone would draw the first decades of a log axis from two or three points)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) > points:
        spread = np.concatenate([np.linspace(0, len(x) - 1, points // 2), np.geomspace(1, len(x), points // 2) - 1])
        keep = np.unique(spread.round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": x, "y": y}


def _layout(fig: go.Figure, title: str, log_x: bool) -> go.Figure:
    fig.update_layout(title=title, height=360, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
                      legend=dict(orientation="h", y=-0.25), xaxis_title="training samples evaluated",
                      yaxis_title="nats per datapoint")
    fig.update_xaxes(type="log" if log_x else "linear")
    return fig


def learning_curves(series: dict[str, list[dict]], log_x: bool = True, smoothing: float = 0.6) -> go.Figure:
    """Lower bound against samples evaluated: the smoothed minibatch bound over its faint raw curve, and the
    full train and test bounds at each evaluation, for each labelled run."""
    fig = go.Figure()
    for label, rows in series.items():
        prefix = f"{label}: " if len(series) > 1 else ""
        batches = [r for r in rows if r.get("kind") == "minibatch"]
        if batches:
            x = [r["samples_evaluated"] for r in batches]
            y = [r["lower_bound"] for r in batches]
            fig.add_scatter(**_thin(x, y), mode="lines", name=f"{prefix}minibatch (raw)", opacity=0.25,
                            line=dict(width=1), showlegend=len(series) == 1)
            fig.add_scatter(**_thin(x, smooth(y, smoothing)), mode="lines", name=f"{prefix}minibatch (smoothed)")
        evaluations = [r for r in rows if "test_lower_bound" in r]
        for key, name in (("train_lower_bound", "train"), ("test_lower_bound", "test")):
            if evaluations:
                fig.add_scatter(x=[r["samples_evaluated"] for r in evaluations], y=[r[key] for r in evaluations],
                                mode="lines+markers", name=f"{prefix}{name}")
    return _layout(fig, "Lower bound (ELBO)", log_x)


def bound_terms(rows: list[dict], log_x: bool = True, smoothing: float = 0.6) -> go.Figure:
    """The two terms of estimator B (eq. 7) on the minibatches: reconstruction E_q[log p(x|z)] and KL(q || p).
    The KL has an axis of its own on the right: it is often a hundred times smaller than the reconstruction
    term (about 10 against 1000 nats on Frey Face with J = 2) and would lie flat on a shared axis."""
    batches = [r for r in rows if r.get("kind") == "minibatch"]
    fig = go.Figure()
    x = [r["samples_evaluated"] for r in batches]
    terms = (("reconstruction", "reconstruction  E[log p(x|z)]", "y", "#0068c9"),
             ("kl", "KL(q(z|x) || p(z)), right axis", "y2", "#ff2b2b"))
    for key, name, axis, color in terms:
        y = [r[key] for r in batches]
        fig.add_scatter(**_thin(x, y), mode="lines", opacity=0.25, line=dict(width=1, color=color), yaxis=axis,
                        showlegend=False, name=f"{name} raw")
        fig.add_scatter(**_thin(x, smooth(y, smoothing)), mode="lines", line=dict(color=color), yaxis=axis, name=name)
    _layout(fig, "Where the bound comes from", log_x)
    fig.update_layout(yaxis_title=dict(text="reconstruction, nats per datapoint", font_color=terms[0][3]),
                      yaxis2=dict(title=dict(text="KL, nats per datapoint", font_color=terms[1][3]), overlaying="y",
                                  side="right", showgrid=False, zeroline=False, automargin=True,
                                  rangemode="tozero", tickmode="auto"))
    return fig
