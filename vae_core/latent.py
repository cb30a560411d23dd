"""The latent space of a trained model, seen through numpy: Fig. 4 manifolds, Fig. 5 samples, reconstructions,
interpolations, and encodings of the test set with their projections to a plane.

Everything returns numpy arrays (images in [0, 1], shape (N, h, w)) so the dashboard never touches torch. The
test set is loaded only when something needs it: decoding (manifolds, samples) works without any data.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from . import data
from .models import VAE, ModelConfig


class LatentSpace:
    """A trained model and the name of its dataset; for the user's data (a path), the options it is read with and
    the SHA-256 it was trained on (`data.load`'s image_size, scale and sha256)."""

    def __init__(self, model: VAE, dataset: str, label: str = "", data_options: dict | None = None):
        self.model = model.eval()
        self.dataset = dataset
        self.label = label
        self.data_options = dict(data_options or {})

    @classmethod
    def from_state(cls, model_config: dict, state: dict, dataset: str, label: str = "live",
                   data_options: dict | None = None) -> LatentSpace:
        """From a parameter snapshot: the ModelConfig as a dict and numpy arrays by parameter name."""
        model = VAE(ModelConfig.from_dict(model_config))
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return cls(model, dataset, label, data_options)

    def _tensor(self, array) -> torch.Tensor:
        """A copy of `array` where the model is, in its dtype: the numpy side stays on the CPU (its data read-only),
        the model may be on a GPU."""
        parameter = next(self.model.parameters())
        return torch.tensor(np.asarray(array), dtype=parameter.dtype, device=parameter.device)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.model.config.image_shape

    @property
    def is_image(self) -> bool:
        """Whether its data are images (else vectors, drawn as plots)."""
        return data.is_image(self.image_shape)

    @property
    def manifold_grid(self) -> int:
        """Images per side of the Fig. 4 manifold at first: its dataset's spec's, else Fig. 4's."""
        return data.DATASETS[self.dataset].manifold_grid if self.dataset in data.DATASETS else data.MANIFOLD_GRID

    def load_data(self) -> data.Dataset:
        """The data the model was trained on (nothing is downloaded; the user's data is refused if it changed)."""
        return data.load(self.dataset, download=False, **self.data_options)

    @functools.cached_property
    def _test(self) -> data.Dataset:
        return self.load_data()

    @functools.cached_property
    def data_problem(self) -> str | None:
        """Why the user's data cannot be read (moved, changed since the model trained on it), or None."""
        try:
            _ = self._test  # read once; kept for the encodings
        except data.DataError as e:
            return str(e)
        return None

    @property
    def has_test_set(self) -> bool:
        """Whether the dataset is on this machine: encodings, reconstructions and interpolations need its test set;
        decoding (manifolds, samples, the pad) needs none."""
        return data.available(self.dataset) if self.dataset in data.DATASETS else self.data_problem is None

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decoder means p_θ(x|z) for z (N, J): images (N, h, w)."""
        mean = self.model.decoder(self._tensor(z)).mean  # (N, D)
        return mean.reshape(-1, *self.image_shape).cpu().numpy()

    def manifold_latents(self, grid: int = 20, edge: float = 0.05, dims: tuple[int, int] = (0, 1),
                         base: np.ndarray | None = None) -> np.ndarray:
        """Fig. 4: a linear grid on the unit square through the inverse CDF of N(0, 1), z (grid², J), row-major
        from the top left; z along `dims`, the rest from `base` (zeros by default)."""
        if not 0 < edge < 0.5:
            raise ValueError(f"the grid's edge must lie between 0 and 0.5, got {edge}")
        coords = torch.special.ndtri(torch.linspace(edge, 1 - edge, grid, dtype=torch.float64, device="cpu")).numpy()
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
        # Drawn on the CPU: a seed shows the same samples whatever the model's device.
        z = torch.randn(count, self.latent_dim, generator=torch.Generator().manual_seed(seed), device="cpu")
        return self.decode(z.numpy())

    def test_images(self, indices) -> np.ndarray:
        return self._test.test[np.asarray(indices)].reshape(-1, *self.image_shape)

    @property
    def test_size(self) -> int:
        return len(self._test.test)

    @torch.no_grad()
    def encode(self, indices) -> np.ndarray:
        """Encoder means μ_φ(x) of test images, (N, J)."""
        return self.model.encoder(self._tensor(self._test.test[np.asarray(indices)])).mean.cpu().numpy()

    def reconstructions(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Test images and their reconstructions: the decoder mean at the encoder mean."""
        return self.test_images(indices), self.decode(self.encode(indices))

    def interpolation(self, first: int, second: int, steps: int = 10) -> np.ndarray:
        """Decoded points on the straight line between the encodings of two test images."""
        ends = self.encode([first, second])
        t = np.linspace(0, 1, steps)[:, None]
        return self.decode((1 - t) * ends[0] + t * ends[1])

    @functools.cached_property
    def test_posteriors(self) -> tuple[np.ndarray, np.ndarray]:
        """q(z|x) of the whole test set: means and standard deviations, (N, J) each."""
        with torch.no_grad():
            posterior = self.model.encoder(self._tensor(self._test.test))
        return posterior.mean.cpu().numpy(), posterior.stddev.cpu().numpy()

    @property
    def test_encodings(self) -> np.ndarray:
        """The whole test set encoded (the means of q(z|x)), (N, J)."""
        return self.test_posteriors[0]

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
