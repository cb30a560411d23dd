"""The custom components, each a folder served to an iframe that speaks Streamlit's components v1 protocol: the Train
page's live charts (assets/live_chart.html with plotly.js) and the latent explorer's morph pad (assets/morph_pad.html
with assets/decoder.js), which decodes in the browser while you drag. Both follow Streamlit's light or dark theme."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vae_core import data
from vae_core.events import EVALUATION_KEYS, is_evaluation
from vae_core.latent import LatentSpace
from vae_core.runs import RunState

from .sources import ASSETS


def decoder_payload(space: LatentSpace) -> dict:
    """The decoder's weights for assets/decoder.js: each layer as base64 float32, row-major, the mean's rows first."""
    decoder = space.model.decoder
    pack = lambda t: base64.b64encode(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).decode()
    layers = [*decoder.hidden, decoder.out]
    return {"J": space.latent_dim, "D": space.model.config.data_dim, "shape": list(space.image_shape),
            "activation": space.model.config.activation,
            "layers": [{"w": pack(layer.weight), "b": pack(layer.bias), "in": layer.in_features, "out": layer.out_features}
                       for layer in layers]}


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


FEEDS = "feeds"  # the live charts' feeds, a folder of the live chart component's own, so that it serves them
FEED_DAYS = 7  # feeds of runs nobody has followed for this long are removed when an app server starts


def new_feed_name() -> str:
    """A new feed's place, relative to the live chart component's page: a secret name (128 random bits), not one
    derived from the run. The server hands a component's files to any client that names them, so a feed is read only
    by the page it is given to: the Train page of the session that owns the run (`TrainingWorker.owner`)."""
    return f"{FEEDS}/{secrets.token_urlsafe(16)}.json"


def _number(value):
    return value if value is not None and math.isfinite(value) else None  # JSON has no NaN: a gap in the chart


def chart_row(row: dict) -> tuple[str, list] | None:
    """A metrics row as the live charts take it: a minibatch [samples, bound, reconstruction, KL], an evaluation
    [samples, train bound, test bound, train log p(x), test log p(x)], non-finite values as null; else None."""
    if row.get("kind") == "minibatch":
        return "minibatch", [row["samples_evaluated"]] + [_number(row.get(k)) for k in ("lower_bound", "reconstruction", "kl")]
    if is_evaluation(row):
        return "evaluation", [row["samples_evaluated"]] + [_number(row.get(k)) for k in EVALUATION_KEYS]
    return None


def _feeds_folder() -> Path:
    return _made_feeds_folder(live_chart_dir())


@functools.cache
def _made_feeds_folder(component: Path) -> Path:
    folder = component / FEEDS
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():  # once per process and folder
        try:
            if time.time() - old.stat().st_mtime > FEED_DAYS * 86400:
                old.unlink()
        except OSError:
            pass
    return folder


PART_ROWS = 1000  # minibatch rows in each sealed part of a feed: a 10^8-sample run logs 50,000


def part_name(feed: str | Path, index: int) -> str:
    """Where the `index`-th sealed part of a feed lies, beside the feed (as the component derives it too)."""
    return str(feed).removesuffix(".json") + f".{index}.json"


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


class LiveFeed:
    """A run as the Train page's live component polls it: a JSON file in the chart component's folder,
    {"active", "progress": {"state", "fraction", "text"}, "parts", "part_rows", "minibatch": [...], "evaluation": [...]},
    rewritten whole (and atomically) at most every `every` seconds while rows arrive, at once when the run's state
    changes. The component fetches it on its own timer and draws the progress line and the charts from it, so
    following a run costs no Streamlit rerun; rows are converted once each, as they come.

    Every `part_rows` minibatch rows are sealed into a part (`part_name`), written once, before the feed that counts
    it; the feed holds only the rows after the last part, so what is rewritten and fetched every second stays small
    however long the run (whole, a 10^8-sample run's rows are 3.5 MB), and a page fetches each part once."""

    def __init__(self, every: float = 1.0, part_rows: int = PART_ROWS, folder: Path | None = None,
                 name: str | None = None):
        self.name = name or new_feed_name()  # what the page gives its component
        self.path = (folder or _feeds_folder().parent) / self.name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.every, self.part_rows = every, part_rows
        self.rows = {"minibatch": [], "evaluation": []}  # JSON text of each converted row
        self.parts = 0  # minibatch rows sealed into parts: parts * part_rows
        self.taken = 0  # rows converted so far
        self.written: tuple[int, str] | None = None  # (rows, state) of the file as written
        self.last = 0.0  # when it was written
        self.problem = ""  # why the file could not be written, if it could not

    def update(self, rows: list[dict], state: RunState, progress: Callable[[], dict]) -> None:
        """Takes in the rows not seen yet and writes the file, with `progress()` (the worker's `progress_line`, made
        only when the file is written), if it is behind and was not written within `every` seconds (at once when the
        run's state has changed)."""
        for row in rows[self.taken:]:
            converted = chart_row(row)
            if converted is not None:
                self.rows[converted[0]].append(json.dumps(converted[1]))
        self.taken = len(rows)
        now = time.monotonic()
        state = RunState(state)
        active = state.active
        if self.written == (self.taken, state) or (active and self.written and self.written[1] == state
                                                   and now - self.last < self.every):
            return
        minibatch, n = self.rows["minibatch"], self.part_rows
        try:
            while len(minibatch) >= (self.parts + 1) * n:
                _write_atomically(Path(part_name(self.path, self.parts)),
                                  f"[{','.join(minibatch[self.parts * n:(self.parts + 1) * n])}]")
                self.parts += 1
            _write_atomically(self.path, (
                f'{{"active": {json.dumps(active)}, "progress": {json.dumps(progress())}, "parts": {self.parts}, '
                f'"part_rows": {n}, "minibatch": [{",".join(minibatch[self.parts * n:])}], '
                f'"evaluation": [{",".join(self.rows["evaluation"])}]}}'))
            self.written, self.last, self.problem = (self.taken, state), now, ""
        except OSError as e:
            self.problem = f"the live charts cannot be updated: {e}"


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
