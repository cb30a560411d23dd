"""Hamiltonian Monte Carlo over z for a batch of datapoints at once (Appendices D and E).

Chains run in parallel, z of shape (C, M, J): C chains for each of M datapoints, each with its own target
log p(z) + log p_θ(x|z). A transition draws momenta ρ ~ N(0, I), takes leapfrog steps of size ε along
∇ log p, and accepts the end point with probability min(1, exp(H0 - H1)), H = -log p(z) + ½‖ρ‖². The step
size is tuned toward an acceptance rate (the paper: 90%), for all chains at once or for each chain: a global ε
grows or shrinks by a factor 1.25 after each transition as the mean acceptance is above or below the target (the
authors' code); a chain's own ε by exp(accepted - target), which settles where the chain accepts the target share of
its moves. Each chain's step takes a random sign (the authors' code), so the move stays reversible.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

LogDensity = Callable[[torch.Tensor], torch.Tensor]  # z (C, M, J) -> log p(z) (C, M), differentiable


def value_and_grad(log_density: LogDensity, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(z) (C, M) and ∇_z log p(z) (C, M, J): each chain's density depends on its own z only."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = log_density(z)
        (gradient,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), gradient


def log_joint(model, x: torch.Tensor) -> LogDensity:
    """The target of the paper's HMC: log p(z) + log p_θ(x|z) for the datapoints x (M, D), z (C, M, J) -> (C, M)."""
    return lambda z: model.decoder(z).log_prob(x) + model.prior(z).log_prob(z)


@dataclass
class Sampler:
    """HMC with `leapfrog_steps` per transition and a step size tuned toward `target` acceptance. `step_size` is a
    number (global tuning) or a tensor of shape (C, M, 1) (one per chain)."""
    leapfrog_steps: int = 10
    step_size: float | torch.Tensor = 0.01
    target: float = 0.9
    per_chain: bool = False
    adapt: bool = True  # tune the step size after each transition

    def transition(self, log_density: LogDensity, z: torch.Tensor, generator: torch.Generator | None = None,
                   current: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One HMC move of every chain from z (C, M, J): the new z, its log density (C, M), and which chains accepted
        (C, M). `current` passes log p(z) and its gradient at z when the caller has them."""
        C, M, J = z.shape
        if self.per_chain and not torch.is_tensor(self.step_size):
            self.step_size = torch.full((C, M, 1), float(self.step_size), dtype=z.dtype, device=z.device)
        sign = torch.randint(0, 2, (C, M, 1), generator=generator, device=z.device).to(z.dtype) * 2 - 1
        eps = sign * self.step_size  # (C, M, 1) or broadcast
        rho = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)  # momenta
        value0, grad = current if current is not None else value_and_grad(log_density, z)
        h0 = -value0 + 0.5 * rho.square().sum(-1)  # (C, M)
        z1, rho1 = z, rho + 0.5 * eps * grad  # half step for the momenta
        for step in range(self.leapfrog_steps):
            z1 = z1 + eps * rho1
            value1, grad = value_and_grad(log_density, z1)
            rho1 = rho1 + (eps if step < self.leapfrog_steps - 1 else 0.5 * eps) * grad  # the last is a half step
        h1 = -value1 + 0.5 * rho1.square().sum(-1)
        u = torch.rand((C, M), generator=generator, dtype=z.dtype, device=z.device)
        accept = (u < torch.exp(torch.clamp(h0 - h1, max=0.0))) & torch.isfinite(h1)  # Metropolis-Hastings
        z_new = torch.where(accept[..., None], z1, z)
        value = torch.where(accept, value1, value0)
        if self.adapt:
            self._tune(accept)
        return z_new, value, accept

    def _tune(self, accept: torch.Tensor) -> None:
        if self.per_chain:
            assert torch.is_tensor(self.step_size)  # made per chain by the first transition
            self.step_size = self.step_size * torch.exp(accept.to(self.step_size.dtype)[..., None] - self.target)
        else:
            factor = min(1.25, 1.02 ** min(100, accept.numel()))
            rate = accept.float().mean().item()
            self.step_size = self.step_size / factor if rate < self.target else self.step_size * factor

    def sample(self, log_density: LogDensity, z: torch.Tensor, samples: int, burn_in: int = 0,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """`samples` draws after `burn_in` transitions from z (C, M, J): (S, C, M, J), their log densities (S, C, M),
        and the acceptance rate over the draws. The step size is tuned during the burn-in only, so that the draws
        come from a fixed Markov chain, and then set to the geometric mean of its values over the burn-in's second
        half (a streak of accepted moves can leave the last value too large to accept anything)."""
        draws, values, accepted, log_steps = [], [], torch.zeros((), device=z.device), []  # summed on z's device
        adapt = self.adapt
        for i in range(burn_in + samples):
            self.adapt = adapt and i < burn_in
            z, value, accept = self.transition(log_density, z, generator)
            if adapt and burn_in // 2 <= i < burn_in:
                log_steps.append(torch.log(torch.as_tensor(self.step_size, dtype=z.dtype, device=z.device)))
            if adapt and i == burn_in - 1:  # sample with the geometric mean of the tuned sizes, not the last one
                mean = torch.stack(log_steps).mean(0).exp()
                self.step_size = mean if torch.is_tensor(self.step_size) else float(mean)
            if i >= burn_in:
                draws.append(z)
                values.append(value)
                accepted += accept.float().mean()
        self.adapt = adapt
        return torch.stack(draws), torch.stack(values), accepted.item() / max(1, samples)


