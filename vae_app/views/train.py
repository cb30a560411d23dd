"""The Train page's views: the gallery of reconstructions and samples (the progress line and the live charts poll
their run's feed on their own: `components.LiveFeed`), and "your own data": an upload kept on the server, and the
inspection shown before Start."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from vae_core import data, userdata

from ..figures import vectors_figure
from ..images import mosaic, scale_for
from ..sources import LiveRun

GALLERY_SECONDS = 5.0  # how often the Train page redraws what its component does not: the gallery, the run's message
UPLOAD_TYPES = ("npz", "npy", "csv", "zip")  # what the upload takes: files; a folder comes as a .zip of images
UPLOADS = "uploads"  # under the user's cache (data.cache_dir()): uploaded data, kept so that its runs find it again


@st.cache_data(max_entries=4, show_spinner=False)
def _gallery(key: tuple, _source: LiveRun, count: int = 8, seed: int = 0) -> dict:
    space = _source.load()
    originals, reconstructions = space.reconstructions(np.arange(min(count, space.test_size)))
    samples = space.samples(count, seed)
    if not space.is_image:  # rows of numbers: as plots
        return {"reconstructions": vectors_figure({"test point 0": originals[0], "its reconstruction": reconstructions[0]},
                                                  "a test point and its reconstruction"),
                "samples": vectors_figure({f"sample {i + 1}": s for i, s in enumerate(samples[:3])},
                                          "samples from the prior, decoded")}
    scale = scale_for(space.image_shape, 96)
    return {"reconstructions": mosaic(np.concatenate([originals, reconstructions]), len(originals), scale),
            "samples": mosaic(samples, count, scale)}


def gallery(worker) -> dict:
    """From the worker's latest parameter snapshot: test images over their reconstructions, and samples from the
    prior (for data that is not images, plots of them); computed once per snapshot (snapshots come every two seconds,
    the page may redraw more often)."""
    source = LiveRun.of(worker)
    return _gallery(source.key, source)


def stored_upload(name: str, content: bytes) -> Path:
    """An uploaded file kept on the server, under the user's cache, named by its content's SHA-256 (the same upload
    is one file) and a safe form of its name: the name is data, never a path. Written whole or not at all."""
    suffix = Path(name).suffix.lower()
    if suffix.lstrip(".") not in UPLOAD_TYPES:
        raise ValueError(f"an upload must be a {', '.join('.' + t for t in UPLOAD_TYPES)} file, got {suffix or 'none'}")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:60] or "upload"
    folder = data.cache_dir() / UPLOADS / hashlib.sha256(content).hexdigest()[:16]
    target = folder / f"{stem}{suffix}"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".upload.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(staging, target)
    return target


def inspection(path: str, image_size: str, scale: str, likelihood: str) -> tuple[list[dict], dict]:
    """What the project makes of the data at `path`, read with the form's `image_size` (as typed) and `scale`:
    `userdata.describe` as rows for a table, and a preview, a grid of its first training images or plots of its
    first datapoints. DataError or ValueError says what is wrong."""
    dataset = data.load(path, image_size=userdata.parse_image_size(image_size), scale=scale)
    rows = [{"about": what, "what the project makes of it": text}
            for what, text in userdata.summary(userdata.describe(dataset, likelihood))]
    first = dataset.train[:16]
    if dataset.spec.is_image:
        shape = dataset.spec.image_shape
        return rows, {"image": mosaic(first.reshape(-1, *shape), 8, scale_for(shape, 64))}
    return rows, {"figure": vectors_figure({f"datapoint {i}": row for i, row in enumerate(first[:3])},
                                           "the first training datapoints")}
