"""The Train page's views: the progress line and the gallery of reconstructions and samples (the live charts poll
their run's feed on their own: `components.LiveFeed`)."""
from __future__ import annotations

import os

import numpy as np
import streamlit as st

from vae_core import runs
from vae_core.runs import RunState
from vae_core.training import format_duration

from ..images import mosaic, scale_for
from ..sources import LiveRun


def progress(worker) -> dict:
    """The progress bar's fraction and text for a TrainingWorker: samples, rate, time remaining, last bounds."""
    rows = worker.rows
    last = rows[-1] if rows else {}
    done, total = last.get("samples_evaluated", 0), worker.config["samples"]
    rate = last.get("samples_per_second", 0.0)
    text = f"{worker.state}: {done:,} / {total:,} samples"
    if rate:
        text += f", {rate:,.0f} samples/s"
    if rate and worker.state == RunState.RUNNING:  # a paused, stopped or finished run has no time left
        text += f", {format_duration((total - done) / rate)} left"
    if worker.active and worker.threads:  # the thread count the worker measured to train fastest
        text += f", on {worker.threads} of {os.cpu_count()} cores"
    last = next((r for r in reversed(rows) if runs.is_evaluation(r)), {})
    for train, test, what in (("train_lower_bound", "test_lower_bound", ""),
                              ("train_marginal_log_likelihood", "test_marginal_log_likelihood", " (log p(x))")):
        if last.get(test) is not None:
            text += f", train {last[train]:.2f} / test {last[test]:.2f} nats{what}"
    return {"fraction": min(1.0, done / total) if total else 0.0, "text": text}


@st.cache_data(max_entries=4, show_spinner=False)
def _gallery(key: tuple, _source: LiveRun, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    space = _source.load()
    originals, reconstructions = space.reconstructions(np.arange(count))
    scale = scale_for(space.image_shape, 96)
    return {"reconstructions": mosaic(np.concatenate([originals, reconstructions]), count, scale),
            "samples": mosaic(space.samples(count, seed), count, scale)}


def gallery(worker) -> dict[str, np.ndarray]:
    """From the worker's latest parameter snapshot: test images over their reconstructions, and samples from the
    prior; computed once per snapshot (the live page redraws twice a second, snapshots come every two)."""
    source = LiveRun(worker.run_dir, worker.config["dataset"], worker.snapshot)
    return _gallery(source.key, source)
