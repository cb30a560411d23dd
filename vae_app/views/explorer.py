"""The Latent explorer's views: the latent space of the chosen model (cached per model version), the morph pad's
plane, and the mosaics of samples, reconstructions and interpolations."""
from __future__ import annotations

import numpy as np
import streamlit as st

from vae_core import data
from vae_core.latent import LatentSpace

from ..components import pad_config
from ..figures import vectors_figure
from ..images import mosaic, scale_for
from ..sources import Source
from ..text import plain

VECTOR_SLIDERS = 12  # sliders of z drawn for data that is not images; the others stay at 0


@st.cache_resource(max_entries=8, show_spinner=False)
def _space(key: tuple, _source: Source) -> LatentSpace:
    return _source.load()


def latent_space(source: Source) -> LatentSpace:
    """The source's model, loaded once per version: its test-set encodings are reused across reruns."""
    return _space(source.key, source)


def needs_test_set(space: LatentSpace) -> str:
    """What to do when the model's test set is not on this machine; for the user's data, why it cannot be read (as
    text: it names their files)."""
    if space.dataset not in data.DATASETS:
        return plain(f"This needs the test set of the data the model was trained on, which cannot be read: "
                       f"{space.data_problem}")
    return (f"This needs the {space.dataset} test set, which is not on this machine: run `python -m vae_core data "
            f"--dataset {space.dataset}`, or set VAE_DATA_DIR to a folder holding {space.dataset}/.")


def pad_plane_choices(space: LatentSpace) -> list[str]:
    J = space.latent_dim
    pairs = [f"z{a + 1}, z{b + 1}" for a in range(J) for b in range(a + 1, J)]
    return (["first two principal components"] if space.has_test_set else []) + pairs


def pad_plane(space: LatentSpace, choice: str, around: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Base point and the two directions the pad moves along: z1, z2 for J = 2; for J > 2 two chosen
    dimensions or the first two principal components, around the encoding of test image `around` (around z = 0
    without the test set)."""
    J = space.latent_dim
    if J == 1:
        return np.zeros(1), np.array([[1.0], [0.0]]), "z1"
    if J == 2:
        return np.zeros(2), np.eye(2), "z1, z2"
    base, where = (space.encode([around])[0], f"test image {around}") if space.has_test_set else (np.zeros(J), "z = 0")
    if choice == "first two principal components":
        return base, space.principal_plane(), f"the first two principal components around {where}"
    a, b = (int(s.strip()[1:]) - 1 for s in choice.split(","))
    return base, np.eye(J)[[a, b]], f"{choice} around {where}"


def pad(space: LatentSpace, base, directions, view: str, position=(0.0, 0.0)) -> str:
    """The morph pad's configuration over the encoded test set (its first 3000 points, none without the test set), in
    the pad's own coordinates, with each point's σ of q(z|x) along the pad's two directions."""
    directions = np.asarray(directions, dtype=float)
    if not space.has_test_set:
        return pad_config(space, base, directions, np.zeros((0, 2)), None, None, view, position)
    means, stddevs = (a[:3000] for a in space.test_posteriors)
    plane = (means - base) @ directions.T  # (N, 2)
    sigmas = np.sqrt(stddevs.astype(float) ** 2 @ (directions ** 2).T)  # σ along each direction: √Σ_j d_j² σ_j²
    labels = None if space.test_labels is None else space.test_labels[:3000]
    return pad_config(space, base, directions, plane, labels, sigmas, view, position)


def pad_position(shared: str) -> list[float]:
    """The pad's position in a shared link's `pad=a,b`; the centre without one."""
    position = shared.split(",")
    return [float(v) for v in position] if len(position) == 2 else [0.0, 0.0]


def picked_point(event) -> int | None:
    """The index of the point clicked on a chart drawn with `on_select="rerun"`; None before a click."""
    picked = event.selection.points if event and event.selection else []
    return picked[0]["point_index"] if picked else None


def format_z(z) -> str:
    """z as people read it: two decimals, not float32's tail."""
    return "[" + ", ".join(f"{v:.2f}" for v in np.asarray(z, dtype=float)) + "]"


def strip(images: np.ndarray, shape) -> np.ndarray:
    return mosaic(images, len(images), scale_for(shape, 96))


def sample_mosaic(space: LatentSpace, seed: int) -> np.ndarray:
    """Fig. 5: 64 samples from the prior, each drawn about 84 pixels tall (a Frey face 3x its 28 rows)."""
    return mosaic(space.samples(64, seed), 8, scale_for(space.image_shape, 84))


def reconstruction_mosaic(space: LatentSpace, count: int = 12) -> np.ndarray:
    count = min(count, space.test_size)  # a user's small data may hold fewer test images
    originals, reconstructions = space.reconstructions(np.arange(count))
    return mosaic(np.concatenate([originals, reconstructions]), count, scale_for(space.image_shape, 72))


def vector_decoded(space: LatentSpace, z) -> dict:
    """The decoder's mean at z (its first dimensions given, the others 0), as a plot."""
    full = np.zeros((1, space.latent_dim), dtype=np.float32)
    full[0, :len(z)] = z
    return vectors_figure({"decoder mean": space.decode(full)[0]}, "p(x|z): the decoder's mean")


def vector_samples(space: LatentSpace, seed: int, count: int = 4) -> dict:
    """Fig. 5 for data that is not images: decoded samples from the prior, as plots."""
    return vectors_figure({f"sample {i + 1}": s for i, s in enumerate(space.samples(count, seed))},
                          f"{count} samples from the prior, decoded")


def vector_reconstruction(space: LatentSpace, index: int) -> dict:
    originals, reconstructions = space.reconstructions([index])
    return vectors_figure({f"test point {index}": originals[0], "its reconstruction": reconstructions[0]},
                          "a test point and its reconstruction")
