"""The Train page's views: the progress line, the live figures, and the gallery of reconstructions and samples."""
from __future__ import annotations

import json
import math
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


def _number(value):
    return value if value is not None and math.isfinite(value) else None  # JSON has no NaN: a gap in the chart


def chart_rows(rows: list[dict]) -> str:
    """Metrics rows as the live charts take them: minibatches [samples, bound, reconstruction, KL] and evaluations
    [samples, train bound, test bound, train log p(x), test log p(x)], non-finite values as null."""
    minibatch = [[r["samples_evaluated"], _number(r.get("lower_bound")), _number(r.get("reconstruction")),
                  _number(r.get("kl"))] for r in rows if r.get("kind") == "minibatch"]
    evaluation = [[r["samples_evaluated"]] + [_number(r.get(k)) for k in ("train_lower_bound", "test_lower_bound",
                  "train_marginal_log_likelihood", "test_marginal_log_likelihood")] for r in rows if runs.is_evaluation(r)]
    return json.dumps({"minibatch": minibatch, "evaluation": evaluation})


def unsent_rows(worker, key: str = "live_charts") -> tuple[int, list[dict]]:
    """Where the browser's charts stand and the rows they lack: everything after a (re)mount, which the chart says
    with a new token, or when the run changes; else only the rows that came since the last send."""
    mounted = st.session_state.get(key) or {}
    sent = st.session_state.get(f"{key} sent", {})
    same = sent.get("token") == mounted.get("token") and sent.get("run") == str(worker.run_dir)
    start = sent.get("count", 0) if same else 0
    rows = worker.rows[start:]  # the follower thread only appends
    st.session_state[f"{key} sent"] = {"token": mounted.get("token"), "run": str(worker.run_dir), "count": start + len(rows)}
    return start, rows


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
