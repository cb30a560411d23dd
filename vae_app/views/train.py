"""The Train page's views: the gallery of reconstructions and samples (the progress line and the live charts poll
their run's feed on their own: `components.LiveFeed`)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..images import mosaic, scale_for
from ..sources import LiveRun

GALLERY_SECONDS = 5.0  # how often the Train page redraws what its component does not: the gallery, the run's message


@st.cache_data(max_entries=4, show_spinner=False)
def _gallery(key: tuple, _source: LiveRun, count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    space = _source.load()
    originals, reconstructions = space.reconstructions(np.arange(count))
    scale = scale_for(space.image_shape, 96)
    return {"reconstructions": mosaic(np.concatenate([originals, reconstructions]), count, scale),
            "samples": mosaic(space.samples(count, seed), count, scale)}


def gallery(worker) -> dict[str, np.ndarray]:
    """From the worker's latest parameter snapshot: test images over their reconstructions, and samples from the
    prior; computed once per snapshot (snapshots come every two seconds, the page may redraw more often)."""
    source = LiveRun(worker.run_dir, worker.config["dataset"], worker.snapshot)
    return _gallery(source.key, source)
