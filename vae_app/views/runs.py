"""The Runs page's views: every run as a row, damaged ones included, and what can be done with each."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from vae_core import data, runs
from vae_core.config import TrainConfig, parse_sample_count
from vae_core.runs import check_continue_budget

from . import run_index

# What the Runs table shows first: which run, where it stands, its bounds, and what it is; the rest on demand
FIRST_COLUMNS = ("run", "name", "state", "test bound", "train bound", "test IW bound", "samples", "budget", "dataset",
                 "algorithm", "J")


def run_table(runs_dir: str | Path | None = None, live: dict | None = None) -> pd.DataFrame:
    """Every run folder: its settings, state (and who trains it), samples evaluated at its last checkpoint and last
    evaluated bounds; a damaged run is listed with what is damaged. `live` maps run dir -> state for the runs this
    app trains."""
    rows = []
    for record in run_index().records(runs_dir):
        run_dir = record.path
        config, last = record.train_config, record.last_evaluation
        state = (live or {}).get(str(run_dir)) or record.state
        sweep = runs.sweep_of(run_dir)
        rows.append({"run": f"{sweep}/{record.name}" if sweep else record.name, "name": record.meta.get("name", ""),
                     "tags": ", ".join(record.meta.get("tags", [])), "note": record.meta.get("note", ""),
                     "sweep": sweep or "", "state": str(state),
                     "trained by": runs.describe_holder(record.holder) if record.holder else "",
                     "algorithm": (record.config or {}).get("algorithm", "aevb") if record.config else None,
                     "dataset": dataset_name(record), "J": config.get("latent_dim"),
                     "estimator": config.get("estimator"), "L": config.get("samples_per_point"),
                     "M": config.get("batch_size"), "optimizer": config.get("optimizer"),
                     "lr": (record.config or {}).get("lr"), "samples": record.samples_done,
                     "budget": config.get("samples"), "train bound": last.get("train_lower_bound"),
                     "test bound": last.get("test_lower_bound"), "K": config.get("iw_k"),
                     "test IW bound": last.get("test_iw_bound"), "problems": record.describe_problems(),
                     "path": str(run_dir)})
    table = pd.DataFrame(rows)
    for column in ("J", "L", "M", "K", "samples", "budget"):  # whole numbers, blank where a damaged run says nothing
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def dataset_name(record: runs.RunRecord) -> str | None:
    """A run's dataset as the table names it: this project's by name, the user's by its file or folder's name."""
    dataset = record.train_config.get("dataset")
    if dataset is None or dataset in data.DATASETS:
        return dataset
    return f"{Path(str(dataset)).name} (your data)"


def data_problem(run_dir: str | Path) -> str | None:
    """Why a run on the user's data cannot be continued: its data gone, unreadable, or changed since it trained
    (the SHA-256 its config.json recorded); None when the data is the same, or is this project's."""
    record = runs.read_run(run_dir, metrics=False)
    if record.config is None or record.train_config.get("dataset") in data.DATASETS:
        return None
    config = TrainConfig.from_dict(record.train_config)
    try:
        data.load(config.dataset, **config.data_options, sha256=(record.config.get("data") or {}).get("sha256"))
    except data.DataError as e:
        return str(e)
    return None


def matching(table: pd.DataFrame, words: str) -> pd.DataFrame:
    """The rows whose text (run, name, tags, note, sweep, state, dataset, algorithm) holds every word given."""
    if not words.strip() or table.empty:
        return table
    text = table[["run", "name", "tags", "note", "sweep", "state", "dataset", "algorithm"]].astype(str) \
        .agg(" ".join, axis=1).str.lower()
    keep = pd.Series(True, index=table.index)
    for word in words.lower().split():
        keep &= text.str.contains(word, regex=False)
    return table[keep]


def continue_budget(text: str, run_dir: str | Path) -> int:
    """The budget to continue a saved run to, from the Runs page's field; ValueError unless it is above what the
    run's checkpoint has already evaluated."""
    return check_continue_budget(run_dir, parse_sample_count(text))


def run_metrics(run_dir: str | Path) -> list[dict]:
    return run_index().read(run_dir).metrics


def metrics_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def model_file(run_dir: str | Path) -> bytes | None:
    path = Path(run_dir) / runs.MODEL
    return path.read_bytes() if path.is_file() else None
