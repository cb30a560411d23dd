"""The latent explorer's engine: Fig. 4 manifolds, Fig. 5 samples, reconstructions, interpolations,
encodings of the test set, and the decoder weights that the browser decodes with while you drag.

Everything returns numpy arrays (images in [0, 1], shape (N, h, w)) so the pages never touch torch.
"""
from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import numpy as np
import torch

from . import data, runs
from .models import VAE, ModelConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_MODELS = ASSETS / "models"


def shipped_models() -> dict[str, Path]:
    """The pretrained models shipped in assets/models, by name (e.g. 'frey-J2')."""
    return {p.stem: p for p in sorted(SHIPPED_MODELS.glob("*.safetensors"))}


def model_card(path: Path) -> str:
    card = path.with_suffix(".md")
    return card.read_text() if card.is_file() else ""


class Explorer:
    """A trained model and its dataset, seen through numpy."""

    def __init__(self, model: VAE, dataset: str, label: str = ""):
        self.model = model.eval()
        self.dataset = dataset
        self.label = label

    @classmethod
    def from_file(cls, path: str | Path, label: str = "") -> "Explorer":
        model, metadata = runs.load_model(path)
        return cls(model, metadata["dataset"], label or Path(path).stem)

    @classmethod
    def from_snapshot(cls, snapshot: dict, dataset: str, label: str = "live") -> "Explorer":
        model = VAE(ModelConfig.from_dict(snapshot["model_config"]))
        model.load_state_dict({k: torch.as_tensor(v) for k, v in snapshot["state"].items()})
        return cls(model, dataset, label)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.model.config.image_shape

    @functools.cached_property
    def _test(self) -> data.Dataset:
        return data.load(self.dataset, download=False)

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decoder means p_θ(x|z) for z (N, J): images (N, h, w)."""
        mean = self.model.decoder(torch.as_tensor(np.asarray(z), dtype=torch.float32)).mean  # (N, D)
        return mean.reshape(-1, *self.image_shape).numpy()

    def manifold_latents(self, grid: int = 20, edge: float = 0.05, dims: tuple[int, int] = (0, 1),
                         base: np.ndarray | None = None) -> np.ndarray:
        """Fig. 4: a linear grid on the unit square through the inverse CDF of N(0, 1), z (grid², J), row-major
        from the top left; z along `dims`, the rest from `base` (zeros by default)."""
        if not 0 < edge < 0.5:
            raise ValueError(f"the grid's edge must lie between 0 and 0.5, got {edge}")
        coords = torch.special.ndtri(torch.linspace(edge, 1 - edge, grid, dtype=torch.float64)).numpy()
        z = np.tile(np.zeros(self.latent_dim) if base is None else np.asarray(base, dtype=np.float64), (grid * grid, 1))
        rows, cols = np.meshgrid(coords[::-1], coords, indexing="ij")  # top row = largest second coordinate
        z[:, dims[0]], z[:, dims[1]] = cols.reshape(-1), rows.reshape(-1)
        return z.astype(np.float32)

    def manifold(self, grid: int = 20, edge: float = 0.05, dims: tuple[int, int] = (0, 1),
                 base: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        z = self.manifold_latents(grid, edge, dims, base)
        return self.decode(z), z

    def samples(self, count: int = 64, seed: int = 0) -> np.ndarray:
        """Fig. 5: decoder means of z drawn from the prior N(0, I)."""
        z = torch.randn(count, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self.decode(z.numpy())

    def test_images(self, indices) -> np.ndarray:
        return self._test.test[np.asarray(indices)].reshape(-1, *self.image_shape)

    @property
    def test_size(self) -> int:
        return len(self._test.test)

    @torch.no_grad()
    def encode(self, indices) -> np.ndarray:
        """Encoder means μ_φ(x) of test images, (N, J)."""
        return self.model.encoder(torch.tensor(self._test.test[np.asarray(indices)])).mean.numpy()

    def reconstructions(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Test images and their reconstructions: the decoder mean at the encoder mean."""
        return self.test_images(indices), self.decode(self.encode(indices))

    def interpolation(self, first: int, second: int, steps: int = 10) -> np.ndarray:
        """Decoded points on the straight line between the encodings of two test images."""
        ends = self.encode([first, second])
        t = np.linspace(0, 1, steps)[:, None]
        return self.decode((1 - t) * ends[0] + t * ends[1])

    @functools.cached_property
    def test_encodings(self) -> np.ndarray:
        """The whole test set encoded, (N, J)."""
        return self.encode(np.arange(self.test_size))

    @property
    def test_labels(self) -> np.ndarray | None:
        return self._test.test_labels

    def projection(self, method: str = "pca", limit: int | None = None) -> np.ndarray:
        """2-D coordinates of the test encodings: z itself for J = 2, else PCA or t-SNE (on the first `limit`)."""
        z = self.test_encodings[:limit]
        if self.latent_dim <= 2:
            return np.column_stack([z, np.zeros(len(z))]) if self.latent_dim == 1 else z  # J = 1 on a line
        if method == "pca":
            from sklearn.decomposition import PCA
            return PCA(n_components=2).fit_transform(z)
        if method == "tsne":
            from sklearn.manifold import TSNE
            return TSNE(n_components=2, init="pca", random_state=0).fit_transform(z)
        raise ValueError(f"projection must be 'pca' or 'tsne', got {method!r}")

    def principal_plane(self) -> np.ndarray:
        """The first two principal directions of the test encodings, (2, J), for a pad over J > 2."""
        from sklearn.decomposition import PCA
        return PCA(n_components=2).fit(self.test_encodings).components_.astype(np.float32)

    def decoder_payload(self) -> dict:
        """The decoder's weights for assets/decoder.js: base64 float32, row-major, the mean's rows first."""
        decoder = self.model.decoder
        pack = lambda t: base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().tobytes()).decode()
        return {"J": self.latent_dim, "H": self.model.config.hidden_dim, "D": self.model.config.data_dim,
                "shape": list(self.image_shape), "w1": pack(decoder.to_hidden.weight), "b1": pack(decoder.to_hidden.bias),
                "w2": pack(decoder.to_x_params.weight), "b2": pack(decoder.to_x_params.bias)}

    def pad_html(self, base: np.ndarray, directions: np.ndarray, points: np.ndarray, labels: np.ndarray | None,
                 span: float = 3.0) -> str:
        """The morph pad: a 2-D pad over `points` (faint), moving z = base + a·directions[0] + b·directions[1],
        with one slider per latent dimension, decoding in the browser on every pointer move."""
        config = {"decoder": self.decoder_payload(), "base": np.asarray(base, dtype=float).tolist(),
                  "directions": np.asarray(directions, dtype=float).tolist(), "span": span,
                  "points": np.round(np.asarray(points, dtype=float), 3).tolist(),
                  "labels": None if labels is None else np.asarray(labels).tolist()}
        template = (ASSETS / "morph_pad.html").read_text()
        return (template.replace("/*DECODER_JS*/", (ASSETS / "decoder.js").read_text())
                .replace("/*CONFIG*/null", json.dumps(config)))


def image_png(image: np.ndarray, scale: int = 1) -> bytes:
    """A [0, 1] grey image as PNG bytes."""
    import io

    from PIL import Image

    pixels = (np.clip(np.kron(image, np.ones((scale, scale))), 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
