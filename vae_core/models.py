"""The networks of Appendix C: Gaussian MLP encoder q_φ(z|x), Bernoulli or Gaussian MLP decoder p_θ(x|z).

Every module returns a `torch.distributions` object, so estimators are written against distributions,
not against raw network outputs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.distributions import Bernoulli, Independent, Normal

_LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian(Independent):
    """N(mean, diag(exp(logvar))) over the last dimension, keeping `logvar` for the analytic KL (Appendix B)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.logvar = logvar
        super().__init__(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; μ, diag σ²) = -½ Σ_j (log 2π + log σ_j² + (x_j - μ_j)² / σ_j²), from the stored log σ²."""
        return -0.5 * (_LOG_2PI + self.logvar + (x - self.mean).square() * torch.exp(-self.logvar)).sum(-1)


class BernoulliImage(Independent):
    """Independent Bernoulli pixels given by their logits; `mean` is the decoder's image."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        super().__init__(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Σ_d x_d log y_d + (1 - x_d) log(1 - y_d) with y = sigmoid(logits) (Appendix C.1), written as
        x·logits - softplus(logits): the same value in two fused ops, which matters under vmap."""
        return (x * self.logits - F.softplus(self.logits)).sum(-1)


@dataclass(frozen=True)
class ModelConfig:
    data_dim: int  # D
    latent_dim: int  # J
    hidden_dim: int
    likelihood: str  # "bernoulli" (MNIST, digits) or "gaussian" (Frey Face)
    image_shape: tuple[int, int]

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}")
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be at least 1, got {self.hidden_dim}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if math.prod(self.image_shape) != self.data_dim:
            raise ValueError(f"image_shape {self.image_shape} does not hold data_dim {self.data_dim} pixels")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{**d, "image_shape": tuple(d["image_shape"])})


class GaussianMLPEncoder(nn.Module):
    """q_φ(z|x) = N(μ, σ²I) with h = tanh(W3 x + b3), [μ, log σ²] = W h + b (Appendix C.2, eq. 9)."""

    def __init__(self, data_dim: int, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.to_hidden = nn.Linear(data_dim, hidden_dim)
        # μ and log σ² come from one matrix so the hot path does one GEMM instead of two.
        self.to_z_params = nn.Linear(hidden_dim, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:  # x: (..., D)
        z_mean, z_logvar = self.to_z_params(torch.tanh(self.to_hidden(x))).chunk(2, dim=-1)  # (..., J) each
        return DiagonalGaussian(z_mean, z_logvar)


class BernoulliMLPDecoder(nn.Module):
    """p_θ(x|z) = Bernoulli(y), y = sigmoid(W2 tanh(W1 z + b1) + b2) (Appendix C.1)."""

    def __init__(self, latent_dim: int, hidden_dim: int, data_dim: int):
        super().__init__()
        self.to_hidden = nn.Linear(latent_dim, hidden_dim)
        self.to_x_params = nn.Linear(hidden_dim, data_dim)

    def forward(self, z: torch.Tensor) -> BernoulliImage:  # z: (..., J)
        return BernoulliImage(self.to_x_params(torch.tanh(self.to_hidden(z))))  # logits (..., D)


class GaussianMLPDecoder(nn.Module):
    """p_θ(x|z) = N(μ, σ²I) with μ = sigmoid(W4 h + b4) kept in (0, 1) for Frey Face pixels (Appendix C.2)."""

    def __init__(self, latent_dim: int, hidden_dim: int, data_dim: int):
        super().__init__()
        self.to_hidden = nn.Linear(latent_dim, hidden_dim)
        self.to_x_params = nn.Linear(hidden_dim, 2 * data_dim)

    def forward(self, z: torch.Tensor) -> DiagonalGaussian:
        mean_logits, x_logvar = self.to_x_params(torch.tanh(self.to_hidden(z))).chunk(2, dim=-1)  # (..., D)
        return DiagonalGaussian(torch.sigmoid(mean_logits), x_logvar)


class VAE(nn.Module):
    """Encoder q_φ(z|x), decoder p_θ(x|z) and the prior p(z) = N(0, I)."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        D, H, J = config.data_dim, config.hidden_dim, config.latent_dim
        self.encoder = GaussianMLPEncoder(D, H, J)
        decoder = BernoulliMLPDecoder if config.likelihood == "bernoulli" else GaussianMLPDecoder
        self.decoder = decoder(J, H, D)
        with torch.no_grad():  # Section 5: parameters initialised from N(0, 0.01²)
            for p in self.parameters():
                p.normal_(0.0, 0.01, generator=generator)

    def prior(self, like: torch.Tensor) -> DiagonalGaussian:
        """p(z) = N(0, I), shaped like `like` (..., J)."""
        zeros = torch.zeros_like(like)
        return DiagonalGaussian(zeros, zeros)

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
        return self.encoder(x)
