"""The networks of Appendix C: Gaussian MLP encoder q_φ(z|x), Bernoulli or Gaussian MLP decoder p_θ(x|z).

Every module returns a `torch.distributions` object, so estimators are written against distributions,
not against raw network outputs. The paper's network (one tanh hidden layer, N(0, 0.01²) initialisation)
is the default; other activations, initialisations and several hidden layers are one setting away.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal
from torch.nn import functional as F

if TYPE_CHECKING:
    from .data import DatasetSpec

_LOG_2PI = math.log(2 * math.pi)
ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {"tanh": torch.tanh, "relu": F.relu, "softplus": F.softplus}
INITIALISATIONS = ("paper", "default")  # paper: N(0, 0.01²) (Section 5); default: PyTorch's nn.Linear initialisation


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
    hidden: tuple[int, ...]  # units of each hidden layer, input side first; the decoder mirrors the encoder
    likelihood: str  # "bernoulli" (MNIST, digits) or "gaussian" (Frey Face)
    image_shape: tuple[int, int]
    activation: str = "tanh"
    init: str = "paper"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"every hidden layer needs at least 1 unit, got {list(self.hidden)}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.init not in INITIALISATIONS:
            raise ValueError(f"init must be one of {', '.join(INITIALISATIONS)}, got {self.init!r}")
        if math.prod(self.image_shape) != self.data_dim:
            raise ValueError(f"image_shape {self.image_shape} does not hold data_dim {self.data_dim} pixels")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        if "hidden_dim" in d:  # files written before several hidden layers existed
            d["hidden"] = (d.pop("hidden_dim"),)
        return cls(**d)

    @classmethod
    def for_dataset(cls, spec: DatasetSpec, latent_dim: int, hidden: tuple[int, ...] | None = None,
                    activation: str = "tanh", init: str = "paper") -> ModelConfig:
        """The network for the data of `spec`: its D, image shape and decoder, with `hidden` layers or, when none are
        given, the paper's for the dataset (Section 5)."""
        return cls(spec.data_dim, latent_dim, hidden or spec.hidden, spec.likelihood, spec.image_shape, activation,
                   init)

    @property
    def decoder_outputs(self) -> int:
        """The width of the decoder's output layer: the parameters of p(x|z) for each of the D pixels."""
        return self.data_dim * DECODERS[self.likelihood].outputs_per_pixel

    def parameter_count(self) -> int:
        encoder = _layer_sizes(self.data_dim, self.hidden, 2 * self.latent_dim)
        decoder = _layer_sizes(self.latent_dim, self.hidden[::-1], self.decoder_outputs)
        return sum((a + 1) * b for sizes in (encoder, decoder) for a, b in zip(sizes, sizes[1:]))


def _layer_sizes(inputs: int, hidden: tuple[int, ...], outputs: int) -> list[int]:
    return [inputs, *hidden, outputs]


class MLP(nn.Module):
    """Hidden layers `hidden.0`, `hidden.1`, ... each followed by the activation, then the linear layer `out`."""
    hidden: list[nn.Linear]  # an nn.ModuleList of them
    out: nn.Linear
    outputs_per_pixel: int = 0  # a decoder's: the parameters of p(x|z) for each pixel

    def __init__(self, inputs: int, hidden: tuple[int, ...], outputs: int, activation: str):
        super().__init__()
        sizes = _layer_sizes(inputs, hidden, outputs)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-2], sizes[1:-1]))  # type: ignore[assignment]
        # The output layer stacks the distribution's parameters ([μ, log σ²]) in one matrix: one GEMM, not two.
        self.out = nn.Linear(sizes[-2], sizes[-1])
        self.activation = ACTIVATIONS[activation]

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The output layer's values: the stacked parameters of the distribution the subclass returns."""
        for layer in self.hidden:
            x = self.activation(layer(x))
        return self.out(x)

    forward = outputs


class GaussianMLPEncoder(MLP):
    """q_φ(z|x) = N(μ, σ²I) with h = tanh(W3 x + b3), [μ, log σ²] = W h + b (Appendix C.2, eq. 9)."""

    def __init__(self, data_dim: int, hidden: tuple[int, ...], latent_dim: int, activation: str = "tanh"):
        super().__init__(data_dim, hidden, 2 * latent_dim, activation)

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:  # type: ignore[override]  # x: (..., D)
        z_mean, z_logvar = self.outputs(x).chunk(2, dim=-1)  # (..., J) each
        return DiagonalGaussian(z_mean, z_logvar)


class BernoulliMLPDecoder(MLP):
    """p_θ(x|z) = Bernoulli(y), y = sigmoid(W2 tanh(W1 z + b1) + b2) (Appendix C.1)."""
    outputs_per_pixel = 1  # its logit

    def forward(self, z: torch.Tensor) -> BernoulliImage:  # type: ignore[override]  # z: (..., J)
        return BernoulliImage(self.outputs(z))  # logits (..., D)


class GaussianMLPDecoder(MLP):
    """p_θ(x|z) = N(μ, σ²I) with h = tanh(W3 z + b3) and log σ² = W5 h + b5 as in Appendix C.2, but the mean is
    μ = sigmoid(W4 h + b4), which keeps it in (0, 1) like Frey Face's pixels: Appendix C.2 writes μ = W4 h + b4; the
    sigmoid is the authors' code's `sigmoidgaussian` decoder (dpkingma/anglepy), beside its plain `gaussian`."""
    outputs_per_pixel = 2  # its mean's logit and its log-variance

    def forward(self, z: torch.Tensor) -> DiagonalGaussian:  # type: ignore[override]
        mean_logits, x_logvar = self.outputs(z).chunk(2, dim=-1)  # (..., D) each
        return DiagonalGaussian(torch.sigmoid(mean_logits), x_logvar)


DECODERS = {"bernoulli": BernoulliMLPDecoder, "gaussian": GaussianMLPDecoder}  # by the likelihood p(x|z)
LIKELIHOODS = tuple(DECODERS)


def dream_noise(likelihood: str, shape: tuple[int, ...], generator: torch.Generator | None = None,
                device=None, dtype=None) -> torch.Tensor:
    """The noise that turns a decoder's output into a sample x ~ p_θ(x|z) (`dream`): uniform for Bernoulli pixels,
    standard normal for Gaussian ones."""
    draw = torch.rand if likelihood == "bernoulli" else torch.randn
    return draw(shape, generator=generator, device=device, dtype=dtype)


def dream(px: BernoulliImage | DiagonalGaussian, noise: torch.Tensor) -> torch.Tensor:
    """x ~ p_θ(x|z) from `dream_noise`: a Bernoulli pixel is 1 where its noise falls below its mean; a Gaussian pixel is
    μ + σ·noise, clipped to [0, 1] as the authors' code clips Frey Face dreams."""
    if isinstance(px, BernoulliImage):
        return (noise < px.mean).to(noise.dtype)
    return (px.mean + px.stddev * noise).clamp_(0.0, 1.0)


class VAE(nn.Module):
    """Encoder q_φ(z|x), decoder p_θ(x|z) and the prior p(z) = N(0, I)."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        D, J, hidden, activation = config.data_dim, config.latent_dim, config.hidden, config.activation
        self.encoder = GaussianMLPEncoder(D, hidden, J, activation)
        self.decoder = DECODERS[config.likelihood](J, hidden[::-1], config.decoder_outputs, activation)
        self.initialise(generator)

    @torch.no_grad()
    def initialise(self, generator: torch.Generator | None = None) -> None:
        """Section 5: every parameter from N(0, 0.01²) ("paper"); or PyTorch's own nn.Linear initialisation
        ("default": weights uniform in ±1/√fan_in by Kaiming's rule with a = √5, biases uniform in ±1/√fan_in)."""
        for module in self.modules():
            if not isinstance(module, nn.Linear):
                continue
            if self.config.init == "paper":
                module.weight.normal_(0.0, 0.01, generator=generator)
                module.bias.normal_(0.0, 0.01, generator=generator)
            else:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)

    def prior(self, like: torch.Tensor) -> DiagonalGaussian:
        """p(z) = N(0, I), shaped like `like` (..., J)."""
        zeros = torch.zeros_like(like)
        return DiagonalGaussian(zeros, zeros)

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
        return self.encoder(x)


_LEGACY_NAMES = {".to_hidden.": ".hidden.0.", ".to_z_params.": ".out.", ".to_x_params.": ".out."}


T = TypeVar("T")  # a state dict's values: tensors, or their shapes


def upgrade_state_dict(tensors: dict[str, T]) -> dict[str, T]:
    """Parameter names of model files written before several hidden layers existed, renamed to today's."""
    def rename(name: str) -> str:
        for old, new in _LEGACY_NAMES.items():
            name = name.replace(old, new)
        return name
    return {rename(k): v for k, v in tensors.items()}
