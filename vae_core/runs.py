"""Run directories: `config.json`, `metrics.jsonl`, `model.safetensors`, `checkpoint.safetensors`, `status.json`.

Every file is written atomically (temporary file, fsync, rename), so a crash or a restart leaves
either the old or the new version, never half of one. No pickle anywhere: tensors go to safetensors,
everything else to JSON.
"""
from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .models import VAE, ModelConfig

RUNS_DIR_ENV = "VAE_RUNS_DIR"
CONFIG, METRICS, MODEL, CHECKPOINT, STATUS = (
    "config.json", "metrics.jsonl", "model.safetensors", "checkpoint.safetensors", "status.json")


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV, "runs"))


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; runs and models are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_metrics(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_bytes(model: VAE, metadata: dict | None = None) -> bytes:
    """The model as safetensors bytes; its ModelConfig (and `metadata`) travel in the header."""
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    header = {"model_config": json.dumps(model.config.to_dict()), **{k: json.dumps(v) for k, v in (metadata or {}).items()}}
    return save_safetensors(tensors, metadata=header)


def save_model(model: VAE, path: str | os.PathLike, metadata: dict | None = None) -> None:
    write_atomic(path, model_bytes(model, metadata))


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON-decoded header metadata of a safetensors file, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and JSON-decoded header metadata of a safetensors file."""
    return load_safetensors(Path(path).read_bytes()), read_metadata(path)


def checkpoint_samples(run_dir: str | os.PathLike) -> int:
    """Training samples evaluated at the run's last checkpoint, where a resumed run continues; 0 without one."""
    path = Path(run_dir) / CHECKPOINT
    return read_metadata(path)["progress"]["samples_evaluated"] if path.is_file() else 0


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """A model saved by `save_model`, in eval mode, and the metadata saved with it."""
    tensors, metadata = read_safetensors(path)
    model = VAE(ModelConfig.from_dict(metadata.pop("model_config")))
    model.load_state_dict(tensors)
    return model.to(device).eval(), metadata


def new_run_dir(runs_dir: str | os.PathLike | None, label: str) -> Path:
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{secrets.token_hex(2)}"
    run_dir.mkdir()
    return run_dir


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[Path]:
    """Run directories under `runs_dir` (newest first) that hold a config."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / CONFIG).is_file()), key=lambda p: p.name, reverse=True)
