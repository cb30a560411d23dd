"""What the dashboard's pages show, as numpy arrays, tables and bytes: the pages never touch torch."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, runs
from .models import VAE, ModelConfig
from .training import TrainConfig, parse_sample_count


def dataset_table(data_dir: str | None = None) -> pd.DataFrame:
    """One row per dataset: whether it is on this machine, where, or how to get it."""
    rows = []
    for name, where in data.availability(data_dir).items():
        missing = where.startswith("missing")
        rows.append({"dataset": name, "available": not missing,
                     "where": (f"missing: run `python -m vae_core data --dataset {name}` or set VAE_DATA_DIR"
                               if missing else where)})
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
    if not data.availability()[dataset].startswith("missing"):
        return config
    raise ValueError(f"the {dataset} data is not on this machine. Run `python -m vae_core data --dataset {dataset}` "
                     f"(or set VAE_DATA_DIR to a folder holding {dataset}/), or pick `digits`, which needs no download.")


def _model(state: dict, model_config: dict) -> VAE:
    model = VAE(ModelConfig.from_dict(model_config))
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    return model.eval()


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


@torch.no_grad()
def gallery(snapshot: dict, dataset: str, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """From a parameter snapshot: test images over their reconstructions, and samples from the prior."""
    model = _model(snapshot["state"], snapshot["model_config"])
    shape = model.config.image_shape
    test = torch.tensor(data.load(dataset, download=False).test[:count])
    reconstructions = model.decoder(model.encoder(test).mean).mean  # decoder mean at the encoder mean
    z = torch.randn(count, model.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    samples = model.decoder(z).mean
    scale = max(1, 96 // shape[0])
    pairs = torch.cat([test, reconstructions]).reshape(-1, *shape).numpy()
    return {"reconstructions": mosaic(pairs, count, scale), "samples": mosaic(samples.reshape(-1, *shape).numpy(), count, scale)}


def run_table(runs_dir: str | Path | None = None, live: dict | None = None) -> pd.DataFrame:
    """Every saved run: its settings, state and final numbers. `live` maps run dir -> state for running ones."""
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
                     "samples": last.get("samples_evaluated", 0), "budget": config["samples"],
                     "train bound": last.get("train_lower_bound"), "test bound": last.get("test_lower_bound"),
                     "path": str(run_dir)})
    return pd.DataFrame(rows)


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
        text += f", {rate:,.0f} samples/s, {max(0.0, (total - done) / rate):,.0f} s left"
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
