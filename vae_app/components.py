"""The custom components, each a folder served to an iframe that speaks Streamlit's components v1 protocol: the Train
page's live charts (assets/live_chart.html with plotly.js) and the latent explorer's morph pad (assets/morph_pad.html
with assets/decoder.js), which decodes in the browser while you drag. Both follow Streamlit's light or dark theme."""
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


def pad_config(space: LatentSpace, base: np.ndarray, directions: np.ndarray, points: np.ndarray,
               labels: np.ndarray | None, sigmas: np.ndarray | None, view: str, position=(0.0, 0.0)) -> str:
    """What the morph pad draws: a 2-D pad over `points` (the encoded test set in the pad's coordinates, faint),
    moving z = base + a·directions[0] + b·directions[1], with one slider per latent dimension, decoding in the browser
    on every pointer move. `sigmas` (N, 2) are the encoder's σ along the pad's two directions, drawn as an ellipse
    around a point the user picks. The pad's range follows the points. `view` names what is shown: while it stays
    the same (a live model's new weights), the pad keeps its position; `position` is where a new view starts."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    span = float(np.clip(1.15 * np.quantile(np.abs(points), 0.995), 0.5, 12.0)) if len(points) else 3.0
    return json.dumps({"decoder": decoder_payload(space), "base": np.asarray(base, dtype=float).tolist(),
                       "directions": np.asarray(directions, dtype=float).tolist(), "span": span,
                       "points": np.round(points, 3).tolist(),
                       "labels": None if labels is None else np.asarray(labels).tolist(),
                       "sigmas": None if sigmas is None else np.round(np.asarray(sigmas, dtype=float), 3).tolist(),
                       "view": view, "position": [float(v) for v in position]})


def component_dir(name: str, files: dict[str, bytes]) -> Path:
    """A folder for a component to serve, holding `files` (index.html first): made once per version of them, in the
    user's cache (or the temp folder where the cache cannot be written), and renamed into place whole so that a
    half-written folder is never served."""
    version = hashlib.sha256(b"".join(files.values())).hexdigest()[:16]
    for root in (data.cache_dir(), Path(tempfile.gettempdir()) / "vae_core"):
        folder = root / name / version
        if (folder / "index.html").is_file():
            return folder
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent))
        except OSError:
            continue
        try:
            for file, content in files.items():
                (staging / file).write_bytes(content)
            staging.rename(folder)
        except OSError:  # another server process made it first, or this folder cannot be written
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "index.html").is_file():
                continue
        return folder
    raise OSError(f"cannot write the {name} component's folder in {data.cache_dir()} or the temp folder")


def live_chart_dir() -> Path:
    """The Train page's live charts: assets/live_chart.html beside plotly.js from the installed plotly package (no
    network)."""
    from plotly.offline import get_plotlyjs

    return component_dir("live_chart", {"index.html": (ASSETS / "live_chart.html").read_bytes(),
                                        "plotly.min.js": get_plotlyjs().encode()})


def morph_pad_dir() -> Path:
    """The Latent explorer's morph pad: assets/morph_pad.html beside assets/decoder.js."""
    return component_dir("morph_pad", {"index.html": (ASSETS / "morph_pad.html").read_bytes(),
                                       "decoder.js": (ASSETS / "decoder.js").read_bytes()})


@functools.cache
def live_chart():
    """The live chart component, declared once, here: Streamlit names a component after the module declaring it,
    which must be an imported module, not a page script."""
    import streamlit.components.v1 as components

    return components.declare_component("live_chart", path=str(live_chart_dir()))


@functools.cache
def morph_pad():
    """The morph pad component (see `live_chart`): it returns {"view", "a", "b", "pick"} when the user lets go."""
    import streamlit.components.v1 as components

    return components.declare_component("morph_pad", path=str(morph_pad_dir()))
