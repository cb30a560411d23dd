"""What the dashboard's pages show, as numpy arrays, tables and bytes: the pages never touch torch."""
from __future__ import annotations

import hashlib
import io
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
from plotly.offline import get_plotlyjs

from . import data, runs
from . import explorer as _explorer
from . import variance as _variance
from .training import TrainConfig, check_continue_budget, format_duration, parse_sample_count
from .workers import training_threads


def dataset_table(data_dir: str | None = None) -> pd.DataFrame:
    """One row per dataset: whether it is on this machine, where, or how to get it."""
    rows = []
    for name, where in data.availability(data_dir).items():
        found = data.available(name, data_dir)
        rows.append({"dataset": name, "available": found,
                     "where": where if found else f"missing: run `python -m vae_core data --dataset {name}` or set VAE_DATA_DIR"})
    return pd.DataFrame(rows)


def train_config(dataset: str, latent_dim, hidden_dim, estimator: str, samples_per_point, batch_size, optimizer: str,
                 lr: str, samples: str, seed) -> TrainConfig:
    """A validated TrainConfig from the Train form's raw values; ValueError names what is wrong."""
    lr_value = lr.strip().lower()
    if lr_value != "auto":
        try:
            lr_value = float(lr_value)
        except ValueError:
            raise ValueError(f"step size must be a positive number or 'auto', got {lr!r}") from None
    config = TrainConfig(dataset=dataset, latent_dim=int(latent_dim), hidden_dim=int(hidden_dim) or None,
                         estimator=estimator, samples_per_point=int(samples_per_point), batch_size=int(batch_size),
                         optimizer=optimizer, lr=lr_value, samples=parse_sample_count(samples), seed=int(seed))
    config.validate()
    if data.available(dataset):
        return config
    raise ValueError(f"the {dataset} data is not on this machine. Run `python -m vae_core data --dataset {dataset}` "
                     f"(or set VAE_DATA_DIR to a folder holding {dataset}/), or pick `digits`, which needs no download.")


def mosaic(images: np.ndarray, columns: int, scale: int = 1, pad: int = 1) -> np.ndarray:
    """Images (N, h, w) in [0, 1] tiled into one uint8 picture, each pixel drawn as scale x scale."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
    canvas = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


def gallery(snapshot: dict, dataset: str, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """From a parameter snapshot: test images over their reconstructions, and samples from the prior."""
    model = _explorer.Explorer.from_snapshot(snapshot, dataset)
    originals, reconstructions = model.reconstructions(np.arange(count))
    scale = max(1, 96 // model.image_shape[0])
    return {"reconstructions": mosaic(np.concatenate([originals, reconstructions]), count, scale),
            "samples": mosaic(model.samples(count, seed), count, scale)}


def run_table(runs_dir: str | Path | None = None, live: dict | None = None) -> pd.DataFrame:
    """Every saved run: its settings, state, samples evaluated at its last checkpoint and last evaluated bounds.
    `live` maps run dir -> state for running ones."""
    rows = []
    for run_dir in runs.list_runs(runs_dir):
        saved = runs.read_json(run_dir / runs.CONFIG)
        config = saved["train_config"]
        status = runs.read_json(run_dir / runs.STATUS) if (run_dir / runs.STATUS).is_file() else {}
        state = (live or {}).get(str(run_dir)) or status.get("state", "unknown")
        if state in ("running", "paused") and str(run_dir) not in (live or {}):
            state = "interrupted"  # the app that trained it is gone; the checkpoint remains
        evaluations = [r for r in runs.read_metrics(run_dir / runs.METRICS) if "test_lower_bound" in r]
        last = evaluations[-1] if evaluations else {}
        rows.append({"run": run_dir.name, "state": state, "dataset": config["dataset"], "J": config["latent_dim"],
                     "estimator": config["estimator"], "L": config["samples_per_point"], "M": config["batch_size"],
                     "optimizer": config["optimizer"], "lr": saved.get("lr"),
                     "samples": runs.checkpoint_samples(run_dir), "budget": config["samples"],
                     "train bound": last.get("train_lower_bound"), "test bound": last.get("test_lower_bound"),
                     "path": str(run_dir)})
    return pd.DataFrame(rows)


def continue_budget(text: str, run_dir: str | Path) -> int:
    """The budget to continue a saved run to, from the Runs page's field; ValueError unless it is above what the
    run's checkpoint has already evaluated."""
    return check_continue_budget(run_dir, parse_sample_count(text))


def run_metrics(run_dir: str | Path) -> list[dict]:
    return runs.read_metrics(Path(run_dir) / runs.METRICS)


def metrics_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def model_file(run_dir: str | Path) -> bytes | None:
    path = Path(run_dir) / runs.MODEL
    return path.read_bytes() if path.is_file() else None


def progress(worker) -> dict:
    """The progress bar's fraction and text for a TrainingWorker: samples, rate, time remaining, last bounds."""
    rows = worker.rows
    last = rows[-1] if rows else {}
    done, total = last.get("samples_evaluated", 0), worker.config["samples"]
    rate = last.get("samples_per_second", 0.0)
    text = f"{worker.state}: {done:,} / {total:,} samples"
    if rate:
        text += f", {rate:,.0f} samples/s"
    if rate and worker.active:  # a stopped or finished run has no time left
        text += f", {format_duration((total - done) / rate)} left"
    if worker.active and worker.threads:  # one core is left to this page while it redraws
        text += f", on {worker.threads} of {training_threads(watched=False)} cores"
    evaluations = [r for r in rows if "test_lower_bound" in r]
    if evaluations:
        text += f", train {evaluations[-1]['train_lower_bound']:.2f} / test {evaluations[-1]['test_lower_bound']:.2f} nats"
    return {"fraction": min(1.0, done / total) if total else 0.0, "text": text}


_gallery_memo: dict = {}


def gallery_cached(snapshot: dict, dataset: str) -> dict[str, np.ndarray]:
    """`gallery`, computed once per snapshot: the live page redraws twice a second, snapshots come every two."""
    key = (id(snapshot), snapshot["samples_evaluated"], dataset)
    if key not in _gallery_memo:
        _gallery_memo.clear()
        _gallery_memo[key] = gallery(snapshot, dataset)
    return _gallery_memo[key]


# The latent explorer's views.

def explorer_sources(live_worker=None) -> dict[str, dict]:
    """Models the explorer can show: the run training in this session, shipped models, saved runs."""
    sources = {}
    if live_worker is not None and live_worker.snapshot is not None:
        sources[f"this session's run ({live_worker.run_dir.name})"] = {"live": True, "worker": live_worker}
    for name, path in _explorer.shipped_models().items():
        sources[f"shipped: {name}"] = {"live": False, "path": path, "card": _explorer.model_card(path)}
    for run_dir in runs.list_runs():
        if (run_dir / runs.MODEL).is_file():
            sources[f"run: {run_dir.name}"] = {"live": False, "path": run_dir / runs.MODEL}
    return sources


def frozen_source(source: dict, snapshot: dict | None) -> dict:
    """A live source pinned to `snapshot` (None: follow the worker's latest)."""
    return source if snapshot is None else {**source, "snapshot": snapshot}


_explorers: dict = {}


def explorer_for(source: dict) -> "_explorer.Explorer":
    """An Explorer per model version, kept while it is current (its encodings are reused across reruns)."""
    if source["live"]:
        snapshot = source.get("snapshot") or source["worker"].snapshot
        key = ("live", str(source["worker"].run_dir), snapshot["samples_evaluated"])
        make = lambda: _explorer.Explorer.from_snapshot(snapshot, source["worker"].config["dataset"])
    else:
        key = (str(source["path"]), Path(source["path"]).stat().st_mtime)
        make = lambda: _explorer.Explorer.from_file(source["path"])
    if key not in _explorers:
        if len(_explorers) > 8:
            _explorers.clear()
        _explorers[key] = make()
    return _explorers[key]


def pad_plane_choices(J: int) -> list[str]:
    return ["first two principal components"] + [f"z{a + 1}, z{b + 1}" for a in range(J) for b in range(a + 1, J)]


def pad_plane(model, choice: str, around: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Base point and the two directions the pad moves along: z1, z2 for J = 2; for J > 2 two chosen
    dimensions or the first two principal components, around the encoding of test image `around`."""
    J = model.latent_dim
    if J == 1:
        return np.zeros(1), np.array([[1.0], [0.0]]), "z1"
    if J == 2:
        return np.zeros(2), np.eye(2), "z1, z2"
    base = model.encode([around])[0]
    if choice == "first two principal components":
        return base, model.principal_plane(), f"the first two principal components around test image {around}"
    a, b = (int(s.strip()[1:]) - 1 for s in choice.split(","))
    return base, np.eye(J)[[a, b]], f"{choice} around test image {around}"


def pad_html(model, base, directions) -> str:
    points = model.test_encodings[:3000] - base  # drawn in the pad's own coordinates
    plane = points @ np.asarray(directions).T
    labels = None if model.test_labels is None else model.test_labels[:3000]
    return model.pad_html(base, directions, plane, labels)


def manifold_view(model, grid: int, edge: float):
    """Fig. 4 as a Plotly image with a transparent point per cell that carries z (hover, click)."""
    import plotly.express as px

    images, zs = model.manifold(grid, edge)
    h, w = model.image_shape
    picture = mosaic(images, grid, 1, pad=0)
    figure = px.imshow(picture, color_continuous_scale="gray", zmin=0, zmax=255)
    centres = np.array([((i % grid) * w + w / 2, (i // grid) * h + h / 2) for i in range(grid * grid)])
    figure.add_scatter(x=centres[:, 0], y=centres[:, 1], mode="markers", marker=dict(size=max(4, 400 // grid), opacity=0),
                       customdata=zs[:, :2], hovertemplate="z = (%{customdata[0]:.2f}, %{customdata[1]:.2f})<extra></extra>")
    figure.update_layout(coloraxis_showscale=False, height=620, margin=dict(l=0, r=0, t=0, b=0))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure, picture / 255.0, zs, images


def strip(images: np.ndarray, shape) -> np.ndarray:
    return mosaic(images, len(images), max(1, 96 // shape[0]))


def sample_mosaic(model, seed: int) -> np.ndarray:
    return mosaic(model.samples(64, seed), 8, max(1, 48 // model.image_shape[0]))


def reconstruction_mosaic(model, count: int = 12) -> np.ndarray:
    originals, reconstructions = model.reconstructions(np.arange(count))
    return mosaic(np.concatenate([originals, reconstructions]), count, max(1, 72 // model.image_shape[0]))


def scatter_view(model, method: str):
    import plotly.graph_objects as go

    limit = None if method == "pca" else 2000  # t-SNE on 10000 points would take minutes here
    xy = model.projection(method, limit)
    labels = model.test_labels[:len(xy)] if model.test_labels is not None else None
    figure = go.Figure(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers",
                                    marker=dict(size=4, color=labels, colorscale="Turbo", showscale=labels is not None),
                                    customdata=np.arange(len(xy)),
                                    hovertemplate="test image %{customdata}<extra></extra>"))
    if model.latent_dim <= 2:
        axes = ("z1, mean of q(z|x)", "z2" if model.latent_dim == 2 else "")
    else:
        name = "principal component" if method == "pca" else "t-SNE"
        axes = (f"{name} 1 of the means of q(z|x)", f"{name} 2")
    figure.update_layout(height=520, margin=dict(l=0, r=0, t=10, b=0), dragmode="select",
                         xaxis_title=axes[0], yaxis_title=axes[1])
    return figure


# The estimator variance lab's views.

def variance_sources(live_worker, datasets) -> dict[str, dict]:
    """Untrained models at initialisation, then what the explorer can show (live run, shipped, saved runs)."""
    sources = {f"untrained {d} (J = 2)": {"untrained": d} for d in datasets
               if data.available(d)}
    return explorer_sources(live_worker) | sources


def variance_settings(M, R, Ls: str, estimators) -> "_variance.VarianceConfig":
    try:
        samples = tuple(int(v) for v in Ls.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"the values of L must be whole numbers separated by spaces, got {Ls!r}") from None
    config = _variance.VarianceConfig(batch_size=int(M), repeats=int(R), samples=samples, estimators=tuple(estimators))
    config.validate()
    return config


_variance_memo: dict = {}


def variance_cached(source: dict, settings, progress=None) -> "_variance.VarianceResult":
    """The measurement for this model version and these settings, computed once."""
    if "untrained" in source:
        key = ("untrained", source["untrained"])
        make = lambda: _variance.subject(dataset=source["untrained"])
    else:
        explorer = explorer_for(source)
        key = ("model", explorer)  # the object itself: an id could be reused once the explorer cache clears
        make = lambda: (explorer.model, data.load(explorer.dataset, download=False))
    key = key + (repr(settings),)
    if key not in _variance_memo:
        model, dataset = make()
        x = _variance.fixed_minibatch(dataset.train, settings.batch_size, settings.seed)
        _variance_memo[key] = _variance.measure_variance(model, x, settings, progress)
    return _variance_memo[key]


_QUANTITIES = {"value (lower bound)": "value_variance", "gradient wrt φ (encoder)": "phi_total_variance",
               "gradient wrt θ (decoder)": "theta_total_variance"}


def variance_figure(results: dict, quantity: str):
    """Log-log variance against L per estimator (and model), with a 1/L reference line."""
    import plotly.graph_objects as go

    key = _QUANTITIES[quantity]
    figure = go.Figure()
    dashes = ["solid", "dash"]
    first_value = None
    for n, (name, result) in enumerate(results.items()):
        for estimator in (*_variance.GRADIENT_ESTIMATORS, "iw"):
            L, values = result.table(key, estimator)
            if values:
                label = "all estimators" if key == "theta_total_variance" else estimator
                figure.add_scatter(x=L, y=values, mode="lines+markers", line=dict(dash=dashes[n % 2]),
                                   name=f"{label} · {name}" if len(results) > 1 else label)
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


def snr_figure(results: dict):
    import plotly.graph_objects as go

    figure = go.Figure()
    for n, (name, result) in enumerate(results.items()):
        for estimator in _variance.GRADIENT_ESTIMATORS:
            L, snr = result.table("phi_snr", estimator)
            if snr:
                figure.add_scatter(x=L, y=snr, mode="lines+markers", line=dict(dash=["solid", "dash"][n % 2]),
                                   name=f"{estimator} · {name}" if len(results) > 1 else estimator)
    figure.update_xaxes(type="log", title="samples per datapoint L")
    figure.update_yaxes(type="log", title="mean |E g| / std g")
    figure.update_layout(title="Signal-to-noise ratio of the gradient wrt φ", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def variance_table(results: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, **row} for name, result in results.items() for row in result.rows])


def variance_summary(results: dict) -> str:
    """A few sentences read off the measurements: B against A, and the score function against both."""
    lines = []
    for name, result in results.items():
        rows = {(r["estimator"], r["L"]): r for r in result.rows}
        for L in result.settings["L"][:1] + result.settings["L"][-1:]:
            a, b, score = rows.get(("A", L)), rows.get(("B", L)), rows.get(("score", L))
            parts = []
            if a and b:
                parts.append(f"B/A variance: value {b['value_variance'] / a['value_variance']:.3g}, "
                             f"∇φ {b['phi_total_variance'] / a['phi_total_variance']:.3g}")
            if a and score:
                parts.append(f"score/A ∇φ variance {score['phi_total_variance'] / a['phi_total_variance']:.3g}")
            if parts:
                lines.append(f"- **{name}**, L = {L}: " + "; ".join(parts))
    return "\n".join(lines)


def live_chart_dir() -> Path:
    """A folder for the Train page's chart component to serve: assets/live_chart.html as index.html beside
    plotly.js from the installed plotly package (no network). Made once per version of either, in the user's
    cache (or the temp folder where the cache cannot be written), and renamed into place whole so that a
    half-written folder is never served."""
    page = (_explorer.ASSETS / "live_chart.html").read_bytes()
    name = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:16]
    for root in (data.cache_dir(), Path(tempfile.gettempdir()) / "vae_core"):
        folder = root / "live_chart" / name
        if (folder / "index.html").is_file():
            return folder
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent))
        except OSError:
            continue
        try:
            (staging / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
            (staging / "index.html").write_bytes(page)
            staging.rename(folder)
        except OSError:  # another server process made it first, or this folder cannot be written
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "index.html").is_file():
                continue
        return folder
    raise OSError(f"cannot write the live chart's folder in {data.cache_dir()} or the temp folder")
