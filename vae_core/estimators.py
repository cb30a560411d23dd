"""The SGVB estimators of Kingma & Welling (2014), written against the model's distributions.

Shapes use the paper's letters: M datapoints in a minibatch, L samples per datapoint, J latent
dimensions, D data dimensions. Every estimator returns one value per datapoint, shape (M,), and
draws its L samples in one batched pass of shape (L, M, J). Noise is injectable through `eps`
(L, M, J) or a `torch.Generator`; seeding belongs to the caller.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .models import VAE, DiagonalGaussian


class ModelView:
    """What the estimators need of a model, with parts swapped in: its encoder, a decoder (a linearised stand-in in the
    variance lab, one with sampled parameters in full VB) and the prior."""

    def __init__(self, model: VAE, decoder):
        self.encoder, self.decoder, self.prior = model.encoder, decoder, model.prior


Model = VAE | ModelView  # what the estimators take


def standard_normal_noise(L: int, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ε ~ p(ε) = N(0, I), shape (L, *like.shape)."""
    return torch.randn((L, *like.shape), generator=generator, dtype=like.dtype, device=like.device)


def reparameterize(posterior: DiagonalGaussian, eps: torch.Tensor) -> torch.Tensor:
    """z = g_φ(ε, x) = μ + σ ⊙ ε (eq. 4 and Section 2.4); eps (L, M, J) -> z (L, M, J)."""
    return posterior.mean + posterior.stddev * eps  # (L, M, J)


def kl_to_standard_normal(posterior: DiagonalGaussian) -> torch.Tensor:
    """KL(q_φ(z|x) || N(0, I)) in closed form (Appendix B): -½ Σ_j (1 + log σ_j² - μ_j² - σ_j²)."""
    z_mean, z_logvar = posterior.mean, posterior.logvar  # (M, J)
    return -0.5 * (1 + z_logvar - z_mean.square() - z_logvar.exp()).sum(-1)  # (M,)  Appendix B


def _posterior_samples(model: Model, x, L, eps, generator):
    posterior = model.encoder(x)  # q_φ(z|x), (M, J)
    if eps is None:
        eps = standard_normal_noise(L, posterior.mean, generator)
    return posterior, reparameterize(posterior, eps)  # z: (L, M, J)


def log_weight(model: Model, x: torch.Tensor, z: torch.Tensor, posterior: DiagonalGaussian) -> torch.Tensor:
    """log p_θ(x, z) - log q_φ(z|x) = log p_θ(x|z) + log p(z) - log q_φ(z|x) for z (L, M, J): (L, M).

    The summand of estimator A (eq. 6) and the log importance weight of the IW bound; `posterior` may be a
    stand-in for q (the variance lab passes one with stopped gradients)."""
    return model.decoder(z).log_prob(x) + model.prior(z).log_prob(z) - posterior.log_prob(z)  # (L, M)


def estimator_a(model: Model, x: torch.Tensor, L: int = 1, eps: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """SGVB estimator A (eq. 6): (1/L) Σ_l [log p_θ(x, z^(l)) - log q_φ(z^(l)|x)], per datapoint (M,)."""
    posterior, z = _posterior_samples(model, x, L, eps, generator)  # z: (L, M, J)
    return log_weight(model, x, z, posterior).mean(0)  # (M,)  eq. 6


def estimator_b_terms(model: Model, x: torch.Tensor, L: int = 1, eps: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of estimator B (eq. 7): the reconstruction (1/L) Σ_l log p_θ(x|z^(l)) and the
    analytic KL(q_φ(z|x) || p(z)), each per datapoint (M,)."""
    posterior, z = _posterior_samples(model, x, L, eps, generator)  # z: (L, M, J)
    reconstruction = model.decoder(z).log_prob(x).mean(0)  # (M,)
    return reconstruction, kl_to_standard_normal(posterior)  # (M,), (M,)


def estimator_b(model: Model, x: torch.Tensor, L: int = 1, eps: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """SGVB estimator B (eq. 7, eq. 10 for the Gaussian encoder): -KL(q||p) + (1/L) Σ_l log p_θ(x|z^(l))."""
    reconstruction, kl = estimator_b_terms(model, x, L, eps, generator)
    return reconstruction - kl  # (M,)  eq. 7


ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {"A": estimator_a, "B": estimator_b}


def estimator_terms(model: Model, x: torch.Tensor, eps: torch.Tensor, estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstruction (1/L) Σ_l log p_θ(x|z^(l)) and the KL part of `estimator`, per datapoint (M,): B's
    analytic KL (eq. 7), or for A the Monte Carlo estimate (1/L) Σ_l [log q_φ(z^(l)|x) - log p(z^(l))] (eq. 6)."""
    reconstruction, kl = estimator_b_terms(model, x, eps=eps)
    if estimator == "A":
        kl = reconstruction - estimator_a(model, x, eps=eps)
    return reconstruction, kl


def minibatch_lower_bound(per_datapoint: torch.Tensor, N: int) -> torch.Tensor:
    """The minibatch estimator (eq. 8): L(θ, φ; X) ≈ (N/M) Σ_i L̃(θ, φ; x_i) for a minibatch of M."""
    M = per_datapoint.shape[0]
    return N / M * per_datapoint.sum()  # eq. 8


def importance_weighted_bound(model: Model, x: torch.Tensor, K: int, eps: torch.Tensor | None = None,
                              generator: torch.Generator | None = None, max_elements: int = 2**24) -> torch.Tensor:
    """The importance-weighted bound (Burda et al. 2015): log (1/K) Σ_k p_θ(x, z_k) / q_φ(z_k|x), per datapoint (M,).

    Equals the ELBO's estimator A at K = 1 and rises toward log p_θ(x) as K grows. The K samples are
    taken in chunks so that no chunk holds more than `max_elements` decoder outputs.
    """
    posterior = model.encoder(x)  # (M, J)
    M, D = x.shape[0], x.shape[-1]
    chunk = max(1, max_elements // max(1, M * D))
    running = None  # log Σ_k w_k over the chunks so far, (M,)
    for start in range(0, K, chunk):
        k = min(chunk, K - start)
        e = eps[start:start + k] if eps is not None else standard_normal_noise(k, posterior.mean, generator)
        z = reparameterize(posterior, e)  # (k, M, J)
        part = torch.logsumexp(log_weight(model, x, z, posterior), 0)  # (M,)
        running = part if running is None else torch.logaddexp(running, part)
    assert running is not None  # K >= 1
    return running - math.log(K)  # (M,)


IW_GRADIENTS = ("plain", "dreg")  # the encoder's gradient of the IW bound: through L_K itself, or Tucker et al.'s


def iw_objective(model: VAE, x: torch.Tensor, eps: torch.Tensor, gradient: str = "plain") -> torch.Tensor:
    """The IW bound L_K = log (1/K) Σ_k w_k, w_k = p_θ(x, z_k) / q_φ(z_k|x), with K = eps.shape[0] samples
    z_k = μ + σ ⊙ ε_k (Burda et al. 2016, eq. 8), per datapoint (M,), as a surrogate whose value is L_K and whose
    gradient is the estimator `gradient` names; one sample of z per ε, shared by both.

    "plain": autograd through L_K itself (IWAE): Σ_k w̃_k ∇ log w_k with w̃_k = w_k / Σ_j w_j, for θ and for φ, the
    score term ∇_φ log q included. "dreg", the doubly reparameterised gradient (Tucker, Lawson, Gu & Maddison
    2019, eq. 6): θ's the same; φ's Σ_k w̃_k² ∂log w_k/∂z_k ∂z_k/∂φ, log q taken at stopped φ, which is unbiased
    for the same ∇_φ L_K. Its weights come from a forward pass without a graph first; z then enters the decoder
    as z_sg + w̃ (z - z_sg) (sg: stopped gradient), the same value with its path to φ scaled by w̃_k once more."""
    K = eps.shape[0]
    posterior = model.encoder(x)  # (M, J)
    z = reparameterize(posterior, eps)  # (K, M, J)
    if gradient == "plain":
        return torch.logsumexp(log_weight(model, x, z, posterior), 0) - math.log(K)  # (M,)
    if gradient != "dreg":
        raise ValueError(f"gradient must be one of {', '.join(IW_GRADIENTS)}, got {gradient!r}")
    frozen = DiagonalGaussian(posterior.mean.detach(), posterior.logvar.detach())  # log q at stopped φ
    with torch.no_grad():
        w = torch.softmax(log_weight(model, x, z, frozen), 0)  # (K, M): w̃_k
    stopped = z.detach()
    log_w = log_weight(model, x, stopped + w[..., None] * (z - stopped), frozen)  # (K, M), the value of log w_k
    return torch.logsumexp(log_w.detach(), 0) - math.log(K) + (w * (log_w - log_w.detach())).sum(0)  # (M,)
