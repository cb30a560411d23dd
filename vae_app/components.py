"""The custom components: the Train page's live chart (assets/live_chart.html) and the latent explorer's morph
pad (assets/morph_pad.html with assets/decoder.js), which decodes in the browser while you drag."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from vae_core import data
from vae_core.latent import LatentSpace

from .sources import ASSETS


def decoder_payload(space: LatentSpace) -> dict:
    """The decoder's weights for assets/decoder.js: each layer as base64 float32, row-major, the mean's rows first."""
    decoder = space.model.decoder
    pack = lambda t: base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().tobytes()).decode()
    layers = [*decoder.hidden, decoder.out]
    return {"J": space.latent_dim, "D": space.model.config.data_dim, "shape": list(space.image_shape),
            "activation": space.model.config.activation,
            "layers": [{"w": pack(l.weight), "b": pack(l.bias), "in": l.in_features, "out": l.out_features}
                       for l in layers]}


def pad_html(space: LatentSpace, base: np.ndarray, directions: np.ndarray, points: np.ndarray,
             labels: np.ndarray | None, span: float = 3.0) -> str:
    """The morph pad: a 2-D pad over `points` (faint), moving z = base + a·directions[0] + b·directions[1],
    with one slider per latent dimension, decoding in the browser on every pointer move."""
    config = {"decoder": decoder_payload(space), "base": np.asarray(base, dtype=float).tolist(),
              "directions": np.asarray(directions, dtype=float).tolist(), "span": span,
              "points": np.round(np.asarray(points, dtype=float), 3).tolist(),
              "labels": None if labels is None else np.asarray(labels).tolist()}
    template = (ASSETS / "morph_pad.html").read_text()
    return (template.replace("/*DECODER_JS*/", (ASSETS / "decoder.js").read_text())
            .replace("/*CONFIG*/null", json.dumps(config)))


def live_chart_dir() -> Path:
    """A folder for the Train page's chart component to serve: assets/live_chart.html as index.html beside
    plotly.js from the installed plotly package (no network). Made once per version of either, in the user's
    cache (or the temp folder where the cache cannot be written), and renamed into place whole so that a
    half-written folder is never served."""
    import plotly
    from plotly.offline import get_plotlyjs

    page = (ASSETS / "live_chart.html").read_bytes()
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


@functools.cache
def live_chart():
    """The live chart component, declared once, here: Streamlit names a component after the module declaring it,
    which must be an imported module, not a page script."""
    import streamlit.components.v1 as components

    return components.declare_component("live_chart", path=str(live_chart_dir()))
