"""The marginal-likelihood estimator of Appendix D, for latent spaces of few dimensions (J below 5).

For each datapoint x: run two independent HMC chains over z ~ p_θ(z|x) (`hmc.py`), started from the encoder's
q_φ(z|x), whose scale also sets each chain's first step size (a model with no encoder, Monte Carlo EM's, starts
both at the highest of several modes: `highest_mode`). Cross their halves: the first half of one chain with the
second half of the other, and the other way round, so that each half holds draws of both chains. Fit a density q(z)
to one half, a Gaussian kernel density whose bandwidth is chosen on held-out draws (the authors' code: ten factors
around Scott's rule, fitted on one half and scored on the other); then, on the other half's draws, fresh samples,

    p(x) ≈ [ (1/L) Σ_l q(z⁽ˡ⁾) / (p(z⁽ˡ⁾) p_θ(x|z⁽ˡ⁾)) ]⁻¹        (Appendix D)

and the same with the halves' roles swapped; the two estimates of 1/p(x) are averaged. The standard error is the
authors' normal approximation from the spread of the log ratios, with the two estimates' disagreement added. With
one chain fitting q and the other supplying the draws, two chains in different modes of p(z|x) made the draws fall
where q is nearly zero, and p(x) read absurdly high; crossed halves cover both modes. The estimate still ignores
autocorrelation within a chain, and cannot see a mode neither chain reached. The authors' code took both halves
from one chain; draws next to the fitted ones then score too high under q, which biases log p(x) low (what was
measured, on Figure 3's runs and on the tests' linear-Gaussian model: docs/REPRODUCTION.md, "Appendix D's
estimator"). Everything runs vectorised over datapoints: chains of
shape (2, M, J), kernel densities as batched matrix products, in chunks that bound the memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .hmc import Sampler, log_joint

MAX_LATENT = 4  # "for higher dimensional latent space the estimates became unreliable" (Appendix D)
MAX_ELEMENTS = 2**24  # kernel-density differences held at once (M·e·K·J doubles, 128 MiB)


@dataclass
class MarginalConfig:
    samples: int = 50  # posterior samples per datapoint (Appendix E: 50): half fit q(z), half estimate
    leapfrog_steps: int = 4  # per HMC transition (Appendix E)
    burn_in: int = 10  # transitions before the first sample, in which each chain's step size is tuned
    target: float = 0.9  # acceptance rate the step sizes are tuned toward (Appendix E)
    batch_size: int = 1000  # datapoints at once
    start: str = "encoder"  # where the chains start: "encoder" (q_φ(z|x)), or "modes" for a model with no encoder
    mode_starts: int = 8  # with "modes": prior draws per datapoint, each climbed to a mode of log p(x, z)
    mode_steps: int = 300  # Adam steps of each climb

    @classmethod
    def for_model(cls, learns_encoder: bool) -> MarginalConfig:
        """The estimator for a model whose encoder was trained (chains start at q_φ(z|x)), or not (Monte Carlo EM's:
        they start at climbed modes)."""
        return cls(start="encoder" if learns_encoder else "modes")

    def validate(self, latent_dim: int) -> None:
        problems = []
        if latent_dim > MAX_LATENT:
            problems.append(f"the marginal-likelihood estimator of Appendix D is for J below 5 (the paper found it "
                            f"unreliable above), and this model has J = {latent_dim}; use the importance-weighted "
                            f"bound (evaluate --iw-samples K) instead")
        if not isinstance(self.samples, int) or not 8 <= self.samples <= 100_000:
            problems.append(f"the posterior samples per datapoint must be a whole number from 8 to 100,000, got {self.samples!r}")
        if not isinstance(self.leapfrog_steps, int) or not 1 <= self.leapfrog_steps <= 1000:
            problems.append(f"leapfrog steps must be a whole number from 1 to 1,000, got {self.leapfrog_steps!r}")
        if self.start not in ("encoder", "modes"):
            problems.append(f"the chains start from the encoder or from modes, got {self.start!r}")
        if problems:
            raise ValueError("; ".join(problems))


def kde_log_density(points: torch.Tensor, at: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """log of a Gaussian kernel density fitted to `points` (M, K, J), at `at` (M, E, J): kernels N(z_k, f² Σ) with Σ
    the points' covariance (as scipy's gaussian_kde), bandwidth factor f (M,) per datapoint. Returns (M, E)."""
    dtype = at.dtype
    points, at, factor = points.double(), at.double(), factor.double()  # a few draws make a narrow covariance
    M, K, J = points.shape
    centred = points - points.mean(1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred / (K - 1)  # (M, J, J)
    # A chain that moved along fewer than J directions leaves a singular covariance: a ridge at its own scale.
    scale = torch.diagonal(covariance, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)  # (M,)
    covariance = covariance + 1e-6 * scale.view(M, 1, 1) * torch.eye(J, dtype=points.dtype, device=points.device)
    kernel = covariance * factor.view(M, 1, 1).square()
    chol = torch.linalg.cholesky(kernel)  # (M, J, J)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (M,)
    chunk = max(1, MAX_ELEMENTS // (M * K * J))  # evaluation points at a time: memory stays bounded at any L
    parts = []
    for start in range(0, at.shape[1], chunk):
        diff = at[:, start:start + chunk, None, :] - points[:, None, :, :]  # (M, e, K, J)
        solved = torch.linalg.solve_triangular(chol[:, None], diff.transpose(-1, -2), upper=False)  # (M, e, J, K)
        mahalanobis = solved.square().sum(-2)  # (M, e, K)
        log_kernel = -0.5 * (mahalanobis + J * math.log(2 * math.pi) + log_det[:, None, None])
        parts.append(torch.logsumexp(log_kernel, -1) - math.log(K))  # (M, e)
    return torch.cat(parts, 1).to(dtype)


def fitted_kde_factor(points: torch.Tensor) -> torch.Tensor:
    """Per datapoint, the bandwidth factor among ten around Scott's rule (n^(-1/(J+4)) · e^((i-5)/2)) whose density
    fitted on the second half of `points` (M, K, J) best predicts the first half (the authors' code)."""
    M, K, J = points.shape
    half = K // 2
    scott = (K - half) ** (-1.0 / (J + 4))
    factors = torch.tensor([scott * math.exp((i - 5) / 2) for i in range(10)], dtype=points.dtype, device=points.device)
    scores = torch.stack([kde_log_density(points[:, half:], points[:, :half], f.expand(M)).sum(-1) for f in factors])
    return factors[scores.argmax(0)]  # (M,)


def highest_mode(model, x: torch.Tensor, config: MarginalConfig,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where both chains start for a model with no encoder (Monte Carlo EM): the highest of `mode_starts` modes of
    log p(z) + log p_θ(x|z), each climbed by Adam from a draw of the prior. Not in the paper, which does not say
    where its chains started. Such posteriors are narrow and have many modes (on Figure 3's MCEM model, N = 1000,
    the eight modes of a training point differ by 206 nats on average), so chains started from the prior stay far
    from the mass within Appendix E's burn-in, and p(x) reads hundreds of nats off. Returns z0 (2, M, J) and first
    step sizes (2, M, 1)."""
    M, J = x.shape[0], model.config.latent_dim
    target = log_joint(model, x)
    z = torch.randn((config.mode_starts, M, J), generator=generator, dtype=x.dtype, device=x.device).requires_grad_(True)
    climb = torch.optim.Adam([z], lr=0.05)
    with torch.enable_grad():
        for _ in range(config.mode_steps):
            climb.zero_grad()
            (-target(z).sum()).backward()
            climb.step()
    with torch.no_grad():
        best = target(z).argmax(0)  # (M,)
        z0 = z.detach()[best, torch.arange(M, device=x.device)]  # (M, J)
    return z0.expand(2, M, J).clone(), torch.full((2, M, 1), 0.05, dtype=x.dtype, device=x.device)


@torch.no_grad()
def marginal_log_likelihood(model, x: torch.Tensor, config: MarginalConfig = MarginalConfig(),
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Appendix D's estimate of log p_θ(x) for each row of x (N, D), and its standard error: two tensors (N,)."""
    config.validate(model.config.latent_dim)
    estimates, errors = [], []
    for start in range(0, len(x), config.batch_size):
        part = x[start:start + config.batch_size]  # (M, D)
        if config.start == "modes":
            z0, first_step = highest_mode(model, part, config, generator)
        else:
            posterior = model.encoder(part)
            noise = torch.randn((2, *posterior.mean.shape), generator=generator, dtype=part.dtype, device=part.device)
            z0 = posterior.mean + posterior.stddev * noise  # (2, M, J): two chains per datapoint
            first_step = 0.5 * posterior.stddev.mean(-1, keepdim=True).expand(2, -1, -1)  # (2, M, 1): the encoder's scale
        sampler = Sampler(config.leapfrog_steps, first_step.clone(), config.target, per_chain=True)
        draws, log_p, _ = sampler.sample(log_joint(model, part), z0, config.samples // 2, config.burn_in, generator)
        chains = draws.transpose(0, 2)  # (M, 2, S/2, J)
        log_joints = log_p.transpose(0, 2).double()  # (M, 2, S/2)
        # Two crossed halves, each with draws of both chains: the first half of one chain and the second of the
        # other. Each half in turn fits q(z) and the other supplies the fresh draws; both estimates are averaged.
        # Two chains caught in different modes of p(z|x) are then both covered by q (with one chain's draws only,
        # the other's fall where q is nearly zero, and p(x) reads absurdly high); their disagreement joins the
        # stated error.
        h = chains.shape[2] // 2
        halves = [torch.cat([chains[:, 0, :h], chains[:, 1, h:]], 1), torch.cat([chains[:, 0, h:], chains[:, 1, :h]], 1)]
        joints = [torch.cat([log_joints[:, 0, :h], log_joints[:, 1, h:]], 1),
                  torch.cat([log_joints[:, 0, h:], log_joints[:, 1, :h]], 1)]  # (M, S/2) each
        inverses, variances = [], []
        for fit, fresh in ((0, 1), (1, 0)):
            factor = fitted_kde_factor(halves[fit])
            log_q = kde_log_density(halves[fit], halves[fresh], factor)  # (M, S/2)
            log_ratio = log_q.double() - joints[fresh]  # log q(z) - log p(x, z) on the fresh draws
            n = log_ratio.shape[1]
            inverses.append(torch.logsumexp(log_ratio, 1) - math.log(n))  # log of Appendix D's 1/p(x)
            var = log_ratio.var(1)
            variances.append(var / n + var.square() / (n - 1))  # the authors' normal approximation
        both = torch.stack(inverses)  # (2, M)
        estimates.append((-(torch.logsumexp(both, 0) - math.log(2))).to(part.dtype))  # Appendix D, both ways
        spread = (both[0] - both[1]).square() / 4
        errors.append(torch.sqrt((variances[0] + variances[1]) / 4 + spread).to(part.dtype))
    return torch.cat(estimates), torch.cat(errors)
