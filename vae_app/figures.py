"""Plotly figures: learning curves (the Runs page; the Train page's live charts draw themselves in the browser,
assets/live_chart.html), the variance lab's charts, the Fig. 4 manifold and the latent scatter.

Learning-curve figures are plain dicts in Plotly's JSON schema, which `st.plotly_chart` takes: built and
serialised by plotly's validating figure objects, they cost ten times as much (docs/PERFORMANCE.md)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vae_core.events import is_evaluation
from vae_core.latent import LatentSpace
from vae_core.variance import GRADIENT_ESTIMATORS, VarianceResult

from .images import mosaic

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def run_colours(runs: list[str]) -> dict[str, str]:
    """Each run's colour in one chart: its own (from its folder's name, not its position, so the same in every chart
    where it meets no other run of that colour), or, taken already, the next one free: runs overlaid in one chart
    never share a colour (while there are no more of them than colours)."""
    import zlib
    taken: dict[str, str] = {}
    for run in runs:
        start = zlib.crc32(run.encode()) % len(PALETTE)
        free = [PALETTE[(start + i) % len(PALETTE)] for i in range(len(PALETTE))]
        taken[run] = next((c for c in free if c not in taken.values()), free[0])
    return taken


def smooth(values: list[float], strength: float) -> np.ndarray:
    """Exponential moving average (running = strength·running + (1 - strength)·value, from the first value);
    strength 0 leaves the values as they are, 0.99 smooths heavily."""
    return pd.Series(values, dtype=float).ewm(alpha=1 - strength, adjust=False).mean().to_numpy()


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


EVALUATED = {"train_lower_bound": "train", "test_lower_bound": "test",  # what an evaluation may hold, as the legend says
             "train_marginal_log_likelihood": "train log p(x)", "test_marginal_log_likelihood": "test log p(x)",
             "train_iw_bound": "train IW bound L_K", "test_iw_bound": "test IW bound L_K"}


def learning_curves(series: dict[str, list[dict]], log_x: bool = True, smoothing: float = 0.6) -> dict:
    """Lower bound against samples evaluated: the smoothed minibatch bound over its faint raw curve, and the
    evaluations (train solid, test dashed), for each labelled run; with several runs, each in its own colour."""
    traces = []
    colours = run_colours(list(series))
    for label, rows in series.items():
        several = len(series) > 1
        prefix = f"{label}: " if several else ""
        colour = {"color": colours[label]} if several else {}
        batches = [r for r in rows if r.get("kind") == "minibatch"]
        if batches:
            x = [r["samples_evaluated"] for r in batches]
            y = [r["lower_bound"] for r in batches]
            traces.append(_line(**_thin(x, y), name=f"{prefix}minibatch (raw)", opacity=0.25,
                                line={"width": 1, **colour}, showlegend=not several))
            traces.append(_line(**_thin(x, smooth(y, smoothing)), name=f"{prefix}minibatch (smoothed)",
                                line={"width": 1.5, **colour}))
        evaluations = [r for r in rows if is_evaluation(r)]
        for key, name in EVALUATED.items():
            scored = [r for r in evaluations if r.get(key) is not None]
            if scored:
                dash = ("dashdot" if key.startswith("test") else "dot") if "iw" in key else \
                    ("dash" if key.startswith("test") else "solid")
                traces.append(_line([r["samples_evaluated"] for r in scored], [r[key] for r in scored],
                                    f"{prefix}{name}", mode="lines+markers", line={"dash": dash, **colour}))
    return _figure(traces, "Lower bound (ELBO)", log_x)


STYLES = {  # each estimator its own dash and marker, so that A stays visible where B lies on it
    "A": {"dash": "dash", "symbol": "circle-open"}, "B": {"dash": "solid", "symbol": "x"},
    "score": {"dash": "dot", "symbol": "square"}, "score-baseline": {"dash": "dashdot", "symbol": "diamond"},
    "stl": {"dash": "longdash", "symbol": "triangle-up"}, "iw": {"dash": "solid", "symbol": "star"}}
VARIANCE_QUANTITIES = {"value (lower bound)": "value_variance", "gradient wrt φ (encoder)": "phi_total_variance",
                       "gradient wrt θ (decoder)": "theta_total_variance"}


def variance_figure(results: dict[str, VarianceResult], quantity: str):
    """Log-log variance against L per estimator (and model), with a 1/L reference line."""
    import plotly.graph_objects as go

    key = VARIANCE_QUANTITIES[quantity]
    figure = go.Figure()
    first_value = None
    for n, (name, result) in enumerate(results.items()):
        for estimator in (*GRADIENT_ESTIMATORS, "iw"):
            L, values = result.table(key, estimator)
            if values:
                label = "all estimators" if key == "theta_total_variance" else estimator
                style = STYLES[estimator]
                figure.add_scatter(x=L, y=values, mode="lines+markers", name=f"{label} · {name}" if len(results) > 1 else label,
                                   line=dict(dash=style["dash"], width=2 if n == 0 else 1),
                                   marker=dict(symbol=style["symbol"], size=9))
                first_value = first_value or (L[0], values[0])
                if key == "theta_total_variance":
                    break  # ∇θ is the same for every estimator: one line per model
    if first_value:
        L0, v0 = first_value
        Ls = sorted({L for r in results.values() for L in r.settings["L"]})
        figure.add_scatter(x=Ls, y=[v0 * L0 / L for L in Ls], mode="lines", line=dict(color="grey", dash="dot"), name="1/L")
    figure.update_xaxes(type="log", title="samples per datapoint L")
    figure.update_yaxes(type="log", title="variance per datapoint (trace for gradients)")
    figure.update_layout(title=f"Variance of the {quantity}", height=420, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def snr_figure(results: dict[str, VarianceResult]):
    import plotly.graph_objects as go

    figure = go.Figure()
    for n, (name, result) in enumerate(results.items()):
        for estimator in GRADIENT_ESTIMATORS:
            L, snr = result.table("phi_snr", estimator)
            if snr:
                style = STYLES[estimator]
                figure.add_scatter(x=L, y=snr, mode="lines+markers", name=f"{estimator} · {name}" if len(results) > 1 else estimator,
                                   line=dict(dash=style["dash"], width=2 if n == 0 else 1),
                                   marker=dict(symbol=style["symbol"], size=9))
        R = result.settings["R"]
        figure.add_hline(y=1 / math.sqrt(R), line=dict(color="grey", dash="dot"),
                         annotation_text=f"1/√R: the floor that {R} replicates can resolve", annotation_position="bottom right")
    figure.update_xaxes(type="log", title="samples per datapoint L")
    figure.update_yaxes(type="log", title="mean |E g| / std g")
    figure.update_layout(title="Signal-to-noise ratio of the gradient wrt φ", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return figure


TRADEOFF_LINES = (("theta_snr", "iwae", "decoder θ (IWAE and DReG alike)", "solid", "x"),
                  ("phi_snr", "iwae", "encoder φ, IWAE", "dash", "circle-open"),
                  ("phi_snr", "dreg", "encoder φ, DReG", "dot", "triangle-up"))


def iw_tradeoff_figure(result: VarianceResult):
    """The k trade-off: log-log SNR of the IW bound's gradient against K, the decoder's and the encoder's by IWAE and
    DReG, with error bars, √K through the decoder's first point and 1/√K through the IWAE encoder's, and the 1/√R
    floor."""
    import plotly.graph_objects as go

    figure = go.Figure()
    anchors = {}
    for key, estimator, name, dash, symbol in TRADEOFF_LINES:
        K, snr = result.table(key, estimator, x="K")
        _, error = result.table(key + "_error", estimator, x="K")
        figure.add_scatter(x=K, y=snr, error_y=dict(type="data", array=error, visible=True), mode="lines+markers",
                           name=name, line=dict(dash=dash, width=2), marker=dict(symbol=symbol, size=9))
        if estimator == "iwae" and K:
            anchors[key] = (K[0], snr[0])  # the reference lines start at the IWAE estimator's first point
    Ks = result.settings["K"]
    for key, power, label in (("theta_snr", 0.5, "√K"), ("phi_snr", -0.5, "1/√K")):
        if anchors.get(key):
            K0, s0 = anchors[key]
            figure.add_scatter(x=Ks, y=[s0 * (k / K0) ** power for k in Ks], mode="lines", name=label,
                               line=dict(color="grey", dash="dot"))
    R = result.settings["R"]
    figure.add_hline(y=1 / math.sqrt(R), line=dict(color="grey", dash="dashdot"),
                     annotation_text=f"1/√R: the floor that {R} replicates can resolve", annotation_position="bottom right")
    figure.update_xaxes(type="log", title="importance samples K")
    figure.update_yaxes(type="log", title="mean |E g| / std g")
    figure.update_layout(title="Signal-to-noise ratio of the IW bound's gradient against K", height=420,
                         margin=dict(l=10, r=10, t=40, b=10))
    return figure


def iw_bound_figure(result: VarianceResult):
    """The IW bound L_K against K (its mean over the replicates, with its standard error): it rises toward log p(x)."""
    import plotly.graph_objects as go

    K, bound = result.table("value_mean", "iwae", x="K")
    _, spread = result.table("minibatch_value_variance", "iwae", x="K")
    R = result.settings["R"]
    figure = go.Figure(go.Scatter(x=K, y=bound, mode="lines+markers", name="IW bound L_K",
                                  error_y=dict(type="data", array=[math.sqrt(v / R) for v in spread], visible=True)))
    figure.update_xaxes(type="log", title="importance samples K")
    figure.update_yaxes(title="nats per datapoint")
    figure.update_layout(title="The bound itself: L_K against K (K = 1 is the ELBO)", height=340,
                         margin=dict(l=10, r=10, t=40, b=10))
    return figure


def manifold_axes(space: LatentSpace, grid: int, zs: np.ndarray) -> dict:
    """Fig. 4's axes: z1 across and z2 down the grid, a tick (its z) at every few cells' centres, in the picture's
    pixels."""
    h, w = space.image_shape
    every = max(1, math.ceil(grid / 7))  # at most 7 ticks an axis
    cells = range(0, grid, every)
    return {"x": ("z1", [((c + 0.5) * w, f"{zs[c, 0]:.2f}") for c in cells]),
            "y": ("z2", [((r + 0.5) * h, f"{zs[r * grid, 1]:.2f}") for r in cells])}


def manifold_figure(space: LatentSpace, grid: int, edge: float):
    """Fig. 4 as a Plotly image with z1 and z2 axes, and a transparent point per cell that carries z (hover, click);
    also returns the picture in [0, 1], its axes (`manifold_axes`), each cell's z and the cells' images."""
    import plotly.express as px

    images, zs = space.manifold(grid, edge)
    h, w = space.image_shape
    picture = mosaic(images, grid, 1, pad=0)[..., 0]  # no frames: the grey channel is the whole picture
    figure = px.imshow(picture, color_continuous_scale="gray", zmin=0, zmax=255)
    centres = np.array([((i % grid) * w + w / 2, (i // grid) * h + h / 2) for i in range(grid * grid)])
    figure.add_scatter(x=centres[:, 0], y=centres[:, 1], mode="markers", marker=dict(size=max(4, 400 // grid), opacity=0),
                       customdata=zs[:, :2], hovertemplate="z = (%{customdata[0]:.2f}, %{customdata[1]:.2f})<extra></extra>")
    axes = manifold_axes(space, grid, zs)
    figure.update_layout(coloraxis_showscale=False, height=820, margin=dict(l=60, r=0, t=0, b=50))
    for axis, update in (("x", figure.update_xaxes), ("y", figure.update_yaxes)):
        title, ticks = axes[axis]
        update(title_text=title, tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks], showgrid=False)
    return figure, picture / 255.0, axes, zs, images


def scatter_figure(space: LatentSpace, method: str):
    """The encoded test set: z itself for J <= 2, else its principal components or a t-SNE map, by label."""
    import plotly.graph_objects as go

    limit = None if method == "pca" else 2000  # t-SNE on 10000 points would take minutes here
    xy = space.projection(method, limit)
    labels = space.test_labels[:len(xy)] if space.test_labels is not None else None
    figure = go.Figure(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers",
                                    marker=dict(size=4, color=labels, colorscale="Turbo", showscale=labels is not None),
                                    customdata=np.arange(len(xy)),
                                    hovertemplate="test image %{customdata}<extra></extra>"))
    if space.latent_dim <= 2:
        axes = ("z1, mean of q(z|x)", "z2" if space.latent_dim == 2 else "")
    else:
        name = "principal component" if method == "pca" else "t-SNE"
        axes = (f"{name} 1 of the means of q(z|x)", f"{name} 2")
    figure.update_layout(height=520, margin=dict(l=0, r=0, t=10, b=0), dragmode="select",
                         xaxis_title=axes[0], yaxis_title=axes[1])
    return figure


BARS_UP_TO = 24  # datapoints of at most this many numbers are drawn as bars, longer ones as lines


def vectors_figure(vectors: dict[str, np.ndarray], title: str, height: int = 320) -> dict:
    """Datapoints that are not images (rows of a CSV, say), each a trace over its D numbers: bars for short ones,
    lines for long ones. A plain dict in Plotly's schema; the names are the legend's, as text."""
    traces = []
    for name, vector in vectors.items():
        values = np.asarray(vector, dtype=float).reshape(-1)
        x = list(range(1, len(values) + 1))
        if len(values) <= BARS_UP_TO:
            traces.append({"type": "bar", "x": x, "y": values.tolist(), "name": name})
        else:
            traces.append(_line(x, values.tolist(), name))
    return {"data": traces, "layout": {
        "title": {"text": title}, "height": height, "barmode": "group", "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "y": -0.25}, "xaxis": {"title": {"text": "value number (1 to D)"}},
        "yaxis": {"title": {"text": "value in [0, 1]"}, "range": [0, 1]}}}
