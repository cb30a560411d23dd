"""Learning algorithms as objects the training loop calls, without the loop knowing which objective it optimises.

An algorithm is given a minibatch and the noise it drew for it, writes the gradient of the quantity to
minimise into the flat parameter buffer (by parameter name) and returns the values to log; the loop then
takes an optimizer step (`training.py`). Some algorithms do several updates per minibatch, or keep state
of their own (persistent chains), which the loop checkpoints with the parameters.

AEVB (Algorithm 1) and the wake-sleep baseline of Fig. 2 each have two implementations of the same gradient:
the hand-derived step of `fast_step.py`, for the paper's network on the CPU in float32, and an autograd step for
every other network, device or dtype. `make_algorithm` picks by the `step` setting.
"""
from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from .config import TrainConfig
from .estimators import ESTIMATORS, estimator_terms, kl_to_standard_normal, reparameterize
from .fast_step import Grads, StepValues, lower_bound_gradient, wake_sleep_gradient
from .models import VAE, dream, dream_noise


class Minibatch(NamedTuple):
    x: torch.Tensor  # (M, D)
    index: torch.Tensor  # (M,) rows of the training set


class Algorithm:
    """The interface the training loop calls; AEVB below is the reference implementation."""
    name: ClassVar[str]
    step: ClassVar[str]  # which implementation computes the gradient: "fast" or "autograd"
    updates_per_minibatch: ClassVar[int] = 1

    def __init__(self, model: VAE, config: TrainConfig):
        self.model, self.config = model, config

    @property
    def module(self) -> nn.Module:
        """Whose parameters the optimizer trains."""
        return self.model

    def draw_noise(self, batch: Minibatch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random numbers one update needs, drawn from the loop's generator (so a resumed run draws the same)."""
        raise NotImplementedError

    def prepare(self, batch: Minibatch, generator: torch.Generator) -> None:
        """Called once per minibatch before its updates (Monte Carlo EM's E-step)."""

    def gradient(self, batch: Minibatch, noise: dict[str, torch.Tensor], grads: Grads,
                 with_values: bool = False) -> StepValues | None:
        """Writes ∇ of the quantity to minimise, per datapoint, into `grads`; with `with_values`, returns the
        minibatch's lower bound and its two terms."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint keeps besides the parameters; restored in place."""
        return {}

    def reset(self) -> None:
        """Back to the state of a fresh run (each candidate of the step-size trial starts from it)."""

    def evaluation_model(self) -> VAE:
        """The model whose lower bound is evaluated and saved."""
        return self.model


class AEVB(Algorithm):
    """Algorithm 1: ∇ of -(1/M) Σ_i L̃(θ, φ; x_i), the minibatch estimator (eq. 8) divided by N, with estimator
    A (eq. 6) or B (eq. 7) and L samples per datapoint; the noise is ε ~ N(0, I) of shape (L, M, J)."""
    name = "aevb"

    def draw_noise(self, batch, generator):
        shape = (self.config.samples_per_point, len(batch.x), self.model.config.latent_dim)
        return {"eps": torch.randn(shape, generator=generator, device=batch.x.device, dtype=batch.x.dtype)}  # (L, M, J)


class FastAEVB(AEVB):
    """The hand-derived gradient (`fast_step.lower_bound_gradient`)."""
    step = "fast"

    def gradient(self, batch, noise, grads, with_values=False):
        return lower_bound_gradient(self.model, batch.x, noise["eps"], self.config.estimator, grads, with_values)


def autograd_into(module: nn.Module, loss: torch.Tensor, grads: Grads) -> None:
    """Backpropagates `loss` and writes each parameter's gradient into its view of the flat buffer."""
    names = [name for name, p in module.named_parameters() if name in grads]
    values = torch.autograd.grad(loss, [module.get_parameter(n) for n in names], allow_unused=True)
    for name, value in zip(names, values):
        grads[name].copy_(value) if value is not None else grads[name].zero_()


class AutogradAEVB(AEVB):
    """The same gradient by autograd over `estimators.py`: any network, device or dtype."""
    step = "autograd"

    def gradient(self, batch, noise, grads, with_values=False):
        x, eps = batch.x, noise["eps"]
        with torch.enable_grad():
            loss = -ESTIMATORS[self.config.estimator](self.model, x, eps.shape[0], eps=eps).mean()  # eq. 8 / N
            autograd_into(self.model, loss, grads)
        if not with_values:
            return None
        with torch.no_grad():
            reconstruction, kl = (t.mean().item() for t in estimator_terms(self.model, x, eps, self.config.estimator))
        return StepValues(-loss.item(), reconstruction, kl)


class WakeSleep(AEVB):
    """The wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995) as the paper ran it against AEVB (Fig. 2): the same
    encoder as recognition model, the same decoder, initialisation, M, optimizer and prior on the parameters.

    Wake phase: z ~ q_φ(z|x) for the minibatch, with no gradient through z; θ takes a step on log p(z) + log p_θ(x|z).
    Sleep phase: M dreams, z ~ N(0, I) then x ~ p_θ(x|z) (Frey Face dreams clipped to [0, 1]); φ takes a step on
    log q_φ(z|x) of the dreams. Both phases' gradients go into one buffer, so one optimizer step serves both. The
    logged and evaluated value is the same lower bound as AEVB's (estimator B), so the curves compare.
    Noise per update: ε (L, M, J) for the wake sample, z (M, J) and pixel noise (M, D) for the dreams.
    """
    name = "wake-sleep"

    def draw_noise(self, batch, generator):
        x, c = batch.x, self.model.config
        return {**super().draw_noise(batch, generator),
                "z_dream": torch.randn((len(x), c.latent_dim), generator=generator, device=x.device, dtype=x.dtype),
                "x_noise": dream_noise(c.likelihood, tuple(x.shape), generator, x.device, x.dtype)}


class FastWakeSleep(WakeSleep):
    step = "fast"

    def gradient(self, batch, noise, grads, with_values=False):
        return wake_sleep_gradient(self.model, batch.x, noise["eps"], noise["z_dream"], noise["x_noise"], grads,
                                   with_values)


class AutogradWakeSleep(WakeSleep):
    step = "autograd"

    def gradient(self, batch, noise, grads, with_values=False):
        x, eps, model = batch.x, noise["eps"], self.model
        with torch.enable_grad():
            posterior = model.encoder(x)  # (M, J)
            z = reparameterize(posterior, eps).detach()  # (L, M, J): a sample; the wake phase trains θ only
            log_px = model.decoder(z).log_prob(x)  # (L, M)
            with torch.no_grad():
                x_dream = dream(model.decoder(noise["z_dream"]), noise["x_noise"])  # (M, D)
            sleep = model.encoder(x_dream).log_prob(noise["z_dream"])  # (M,): log q_φ(z|x) of the dreams
            autograd_into(model, -(log_px.mean() + sleep.mean()), grads)
        if not with_values:
            return None
        with torch.no_grad():
            reconstruction, kl = log_px.mean().item(), kl_to_standard_normal(posterior).mean().item()
        return StepValues(reconstruction - kl, reconstruction, kl)


IMPLEMENTATIONS = {("aevb", "fast"): FastAEVB, ("aevb", "autograd"): AutogradAEVB,
                   ("wake-sleep", "fast"): FastWakeSleep, ("wake-sleep", "autograd"): AutogradWakeSleep}


def make_algorithm(config: TrainConfig, model: VAE, device: torch.device) -> Algorithm:
    """The algorithm `config` names, with the gradient step it asks for ("auto": the fast step wherever it applies)."""
    fast = config.step == "fast" or (config.step == "auto" and config.fast_step_unavailable() is None
                                     and device.type == "cpu" and next(model.parameters()).dtype == torch.float32)
    return IMPLEMENTATIONS[config.algorithm, "fast" if fast else "autograd"](model, config)
