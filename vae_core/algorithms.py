"""Learning algorithms as objects the training loop calls, without the loop knowing which objective it optimises.

An algorithm is given a minibatch and the noise it drew for it, writes the gradient of the quantity to
minimise into the flat parameter buffer (by parameter name) and returns the values to log; the loop then
takes an optimizer step (`training.py`). Some algorithms do several updates per minibatch, or keep state
of their own (persistent chains), which the loop checkpoints with the parameters.

An algorithm is one class: its name, its help, the implementations of its gradient (`steps`: "fast", the
hand-derived step of `fast_step.py`, on the CPU in float32, for any depth of tanh, ReLU or softplus layers;
"autograd", for every network, device and dtype, from the class's `loss`; "compiled", that loss under
`torch.compile`, its backward pass compiled with it), whether it learns an encoder (else it is evaluated by
Appendix D's marginal likelihood) and its cost. `ALGORITHMS` is the registry every interface reads: the
config's choices and checks, the CLI's help, the sweep's cost order; adding an algorithm is a class here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch
from torch import nn

from .estimators import (
    ESTIMATORS,
    ModelView,
    estimator_terms,
    iw_objective,
    kl_to_standard_normal,
    log_weight,
    reparameterize,
)
from .fast_step import Grads, StepValues, lower_bound_gradient, wake_sleep_gradient
from .models import VAE, dream, dream_noise

if TYPE_CHECKING:
    from .config import TrainConfig

AUTOGRAD_STEPS = ("autograd", "compiled")  # from the algorithm's `loss`, eager or compiled: every algorithm has them
STEPS = ("fast", *AUTOGRAD_STEPS)  # the implementations an algorithm's gradient can have


class Minibatch(NamedTuple):
    x: torch.Tensor  # (M, D)
    rows: torch.Tensor  # (M,) which rows of the training set


class Algorithm:
    """The interface the training loop calls; AEVB below is the reference implementation. `train_size` is N, for
    the algorithms that keep state per training point or scale by it; `step` is one of the class's `steps`."""
    name: ClassVar[str]
    help: ClassVar[str]  # what it is and where the paper has it, for the CLI's and the form's help
    steps: ClassVar[tuple[str, ...]] = AUTOGRAD_STEPS  # the implementations of its gradient it has
    updates_per_minibatch: ClassVar[int] = 1
    uses_weight_decay: ClassVar[bool] = True  # the prior N(0, I) on θ as weight decay (MAP); full VB has its own KL
    learns_encoder: ClassVar[bool] = True  # q_φ(z|x) is trained, so its lower bound and its posteriors mean something
    # Time per training sample relative to AEVB's, roughly, as measured here (only the order matters: a sweep starts
    # its costliest trials first).
    relative_cost: ClassVar[float] = 1.0  # the values as measured: docs/PERFORMANCE.md, "Each algorithm's cost"

    def __init__(self, model: VAE, config: TrainConfig, train_size: int, step: str = "autograd"):
        if step not in self.steps:
            raise ValueError(f"{self.name} has no {step!r} step; it has {', '.join(self.steps)}")
        self.model, self.config, self.train_size, self.step = model, config, train_size, step
        # The fixed shapes of a training step (M, L, J never change within a run) compile once.
        self.objective = torch.compile(self.loss, dynamic=False) if step == "compiled" else self.loss

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
        minibatch's lower bound and its two terms. The step chosen at construction computes it."""
        if self.step == "fast":
            return self.fast_gradient(batch, noise, grads, with_values)
        with torch.enable_grad():
            loss = self.objective(batch, noise)
            autograd_into(self.module, loss, grads)
        if not with_values:
            return None
        with torch.no_grad():
            return self.step_values(batch, noise, loss.detach())

    def fast_gradient(self, batch, noise, grads, with_values) -> StepValues | None:
        raise NotImplementedError

    def loss(self, batch: Minibatch, noise: dict[str, torch.Tensor]) -> torch.Tensor:
        """The quantity to minimise, per datapoint, a scalar: the autograd steps differentiate it."""
        raise NotImplementedError

    def step_values(self, batch: Minibatch, noise: dict[str, torch.Tensor], loss: torch.Tensor) -> StepValues:
        """The minibatch's lower bound and its two terms at the parameters `loss` was computed with."""
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
    help = "Algorithm 1, the paper's"
    steps = STEPS

    def draw_noise(self, batch, generator):
        shape = (self.config.samples_per_point, len(batch.x), self.model.config.latent_dim)
        return {"eps": torch.randn(shape, generator=generator, device=batch.x.device, dtype=batch.x.dtype)}  # (L, M, J)

    def fast_gradient(self, batch, noise, grads, with_values):
        return lower_bound_gradient(self.model, batch.x, noise["eps"], self.config.estimator, grads, with_values)

    def loss(self, batch, noise):
        eps = noise["eps"]  # (L, M, J)
        return -ESTIMATORS[self.config.estimator](self.model, batch.x, eps.shape[0], eps=eps).mean()  # eq. 8 / N

    def step_values(self, batch, noise, loss):
        terms = estimator_terms(self.model, batch.x, noise["eps"], self.config.estimator)
        reconstruction, kl = (t.mean().item() for t in terms)
        return StepValues(-loss.item(), reconstruction, kl)


def autograd_into(module: nn.Module, loss: torch.Tensor, grads: Grads) -> None:
    """Backpropagates `loss` and writes each parameter's gradient into its view of the flat buffer."""
    names = [name for name, p in module.named_parameters() if name in grads]
    values = torch.autograd.grad(loss, [module.get_parameter(n) for n in names], allow_unused=True)
    for name, value in zip(names, values):
        grads[name].copy_(value) if value is not None else grads[name].zero_()


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
    help = "Fig. 2's baseline, the same networks"
    relative_cost = 1.4  # 7 large products per minibatch against AEVB's 5

    def draw_noise(self, batch, generator):
        x, c = batch.x, self.model.config
        return {**super().draw_noise(batch, generator),
                "z_dream": torch.randn((len(x), c.latent_dim), generator=generator, device=x.device, dtype=x.dtype),
                "x_noise": dream_noise(c.likelihood, tuple(x.shape), generator, x.device, x.dtype)}

    def fast_gradient(self, batch, noise, grads, with_values):
        return wake_sleep_gradient(self.model, batch.x, noise["eps"], noise["z_dream"], noise["x_noise"], grads,
                                   with_values)

    def _wake(self, batch, noise) -> tuple[torch.Tensor, torch.Tensor]:
        """q_φ(z|x) of the minibatch and log p_θ(x|z) (L, M) at its sample z, through which no gradient reaches φ."""
        posterior = self.model.encoder(batch.x)  # (M, J)
        z = reparameterize(posterior, noise["eps"]).detach()  # (L, M, J): a sample; the wake phase trains θ only
        return posterior, self.model.decoder(z).log_prob(batch.x)

    def loss(self, batch, noise):
        _, log_px = self._wake(batch, noise)
        with torch.no_grad():
            x_dream = dream(self.model.decoder(noise["z_dream"]), noise["x_noise"])  # (M, D)
        sleep = self.model.encoder(x_dream).log_prob(noise["z_dream"])  # (M,): log q_φ(z|x) of the dreams
        return -(log_px.mean() + sleep.mean())

    def step_values(self, batch, noise, loss):
        posterior, log_px = self._wake(batch, noise)
        reconstruction, kl = log_px.mean().item(), kl_to_standard_normal(posterior).mean().item()
        return StepValues(reconstruction - kl, reconstruction, kl)


class IWAE(Algorithm):
    """The importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016): ∇ of -(1/M) Σ_i L_K(x_i), the IW
    bound with K = `iw_k` samples per datapoint (`estimators.iw_objective`, by autograd over the shared log-weight);
    K = 1 is AEVB with estimator A. With `iw_gradient` dreg, the encoder's gradient is Tucker et al.'s (2019).
    The noise is ε ~ N(0, I) of shape (K, M, J). The logged minibatch value is L_K, its terms those of the ELBO's
    estimator A over the same K samples (reconstruction - KL is their ELBO, below L_K)."""
    name = "iwae"
    help = "the importance-weighted bound L_K (Burda et al. 2016), K = --iw-k"
    relative_cost = 1.0  # per sample of z: a step costs about K times AEVB's at L = 1 (the sweep's order ignores K)

    def draw_noise(self, batch, generator):
        shape = (self.config.iw_k, len(batch.x), self.model.config.latent_dim)
        return {"eps": torch.randn(shape, generator=generator, device=batch.x.device, dtype=batch.x.dtype)}  # (K, M, J)

    def loss(self, batch, noise):
        return -iw_objective(self.model, batch.x, noise["eps"], self.config.iw_gradient).mean()

    def step_values(self, batch, noise, loss):
        posterior = self.model.encoder(batch.x)
        z = reparameterize(posterior, noise["eps"])  # (K, M, J)
        reconstruction = self.model.decoder(z).log_prob(batch.x).mean().item()
        elbo = log_weight(self.model, batch.x, z, posterior).mean().item()  # estimator A over the K samples
        return StepValues(-loss.item(), reconstruction, reconstruction - elbo)


class MonteCarloEM(Algorithm):
    """Monte Carlo EM (Appendix E), the baseline of Fig. 3: no encoder, persistent posterior chains instead.

    Each training point keeps a sample z of its posterior. For a minibatch, the E-step moves those samples by one HMC
    transition of 10 leapfrog steps targeting log p(z) + log p_θ(x|z), with one step size for all chains tuned
    toward 90% acceptance; then 5 updates of θ ascend (1/M) Σ log p_θ(x, z) at the acquired samples. Chains start
    from the prior. The chains and the step size are checkpointed with the parameters. A minibatch counts its M
    training samples evaluated, whatever the number of updates (docs/REPRODUCTION.md).
    """
    name = "mcem"
    help = "Monte Carlo EM with HMC (Appendix E), evaluated by the marginal likelihood"
    learns_encoder = False
    relative_cost = 13.0  # an HMC transition of 10 leapfrog steps and 5 updates a minibatch
    updates_per_minibatch = 5  # Appendix E

    def __init__(self, model: VAE, config: TrainConfig, train_size: int, step: str = "autograd"):
        super().__init__(model, config, train_size, step)
        self.chains = torch.zeros(train_size, model.config.latent_dim, device=next(model.parameters()).device)  # (N, J)
        self.hmc_step = torch.zeros(1, dtype=torch.float64, device="cpu")  # a number the host reads each minibatch
        self.reset()

    def reset(self):
        init = torch.Generator(device=self.chains.device).manual_seed(self.config.seed + 3)  # the prior, seeded
        self.chains.copy_(torch.randn(self.chains.shape, generator=init, device=self.chains.device))
        self.hmc_step.fill_(0.01)

    def state(self):
        return {"chains": self.chains, "hmc_step": self.hmc_step}

    def draw_noise(self, batch, generator):
        return {}

    def prepare(self, batch, generator):
        """The E-step: one HMC transition of the minibatch's chains."""
        from .hmc import Sampler, log_joint

        sampler = Sampler(leapfrog_steps=10, step_size=float(self.hmc_step), target=0.9)  # Appendix E
        z, _, _ = sampler.transition(log_joint(self.model, batch.x), self.chains[batch.rows][None], generator)
        self.chains[batch.rows] = z[0].detach()
        self.hmc_step.fill_(sampler.step_size)

    def loss(self, batch, noise):
        z = self.chains[batch.rows]  # (M, J), the E-step's samples
        return -self.model.decoder(z).log_prob(batch.x).mean()  # -log p_θ(x|z); log p(z) has no θ

    def step_values(self, batch, noise, loss):
        z = self.chains[batch.rows]
        reconstruction, log_prior = -loss.item(), self.model.prior(z).log_prob(z).mean().item()
        return StepValues(reconstruction + log_prior, reconstruction, -log_prior)  # log p(x, z): not a bound


class DecoderPosterior(nn.Module):
    """Full VB's trainable parameters (Appendix F): the encoder φ, and q(θ) = N(μ, diag σ²) over the decoder's
    parameters, whose means μ are the model's own decoder and whose log-variances sit beside them."""

    def __init__(self, model: VAE, logvar: float):
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder
        self.decoder_logvar = nn.ParameterDict({name.replace(".", "_"): nn.Parameter(torch.full_like(p, logvar))
                                                for name, p in model.decoder.named_parameters()})

    def sample(self, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """θ = μ + σ ⊙ ζ, one draw of every decoder parameter (Appendix F's reparameterisation)."""
        return {name: p + torch.exp(0.5 * self.decoder_logvar[name.replace(".", "_")]) * noise[name]
                for name, p in self.decoder.named_parameters()}

    def kl(self) -> torch.Tensor:
        """KL(q(θ) || p(θ)) with p(θ) = N(0, I), in closed form (Appendix B's formula, over the parameters)."""
        logvars = [self.decoder_logvar[name.replace(".", "_")] for name, _ in self.decoder.named_parameters()]
        return sum(0.5 * (lv.exp() + mu.square() - 1 - lv).sum() for mu, lv in zip(self.decoder.parameters(), logvars))


class FullVB(Algorithm):
    """Full variational Bayes (Appendix F): a diagonal Gaussian q(θ) over the decoder's parameters with prior N(0, I),
    trained with the estimator of Algorithm 2, both z and θ reparameterised: per datapoint

        (1/M) Σ_i [ -KL(q_φ(z|x_i) || p(z)) + (1/L) Σ_l log p_θ(x_i|z_il) ] - KL(q(θ) || p(θ)) / N,  θ = μ + σ ⊙ ζ

    with one draw of θ per minibatch. The prior on θ enters through its KL, so the optimizer adds no weight decay.
    Evaluations score the lower bound of the mean network θ = μ (the model saved with the run).
    """
    name = "full-vb"
    help = "a Gaussian posterior over θ too (Appendix F)"
    relative_cost = 3.0  # a draw of θ and functional calls of the decoder, by autograd
    uses_weight_decay = False

    def __init__(self, model: VAE, config: TrainConfig, train_size: int, step: str = "autograd"):
        super().__init__(model, config, train_size, step)
        self.posterior = DecoderPosterior(model, config.vb_logvar)

    @property
    def module(self):
        return self.posterior

    def reset(self):
        with torch.no_grad():
            for lv in self.posterior.decoder_logvar.values():
                lv.fill_(self.config.vb_logvar)

    def draw_noise(self, batch, generator):
        noise = AEVB.draw_noise(self, batch, generator)  # ε for z
        for name, p in self.model.decoder.named_parameters():
            noise[name] = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return noise

    def _terms(self, batch, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At one draw θ ~ q(θ): estimator B's reconstruction and KL terms (M,) each, and KL(q(θ) || p(θ)) / N."""
        from torch.func import functional_call

        theta = self.posterior.sample(noise)
        view = ModelView(self.model, lambda z: functional_call(self.model.decoder, theta, (z,)))
        reconstruction, kl = estimator_terms(view, batch.x, noise["eps"], "B")
        return reconstruction, kl, self.posterior.kl() / self.train_size

    def loss(self, batch, noise):
        reconstruction, kl, kl_theta = self._terms(batch, noise)
        return -((reconstruction - kl).mean() - kl_theta)

    def step_values(self, batch, noise, loss):
        reconstruction, kl, kl_theta = self._terms(batch, noise)
        return StepValues(-loss.item(), reconstruction.mean().item(), kl.mean().item() + kl_theta.item())


ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (AEVB, WakeSleep, IWAE, MonteCarloEM, FullVB)}


def fast_step_unavailable(algorithm: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str | None:
    """Why the hand-derived step cannot train `algorithm` on `device` in `dtype`, or None when it can."""
    if "fast" not in ALGORITHMS[algorithm].steps:
        served = ", ".join(name for name, cls in ALGORITHMS.items() if "fast" in cls.steps)
        return f"serves {served} only, not {algorithm}"
    if device.type != "cpu":
        return "runs on the CPU only"
    if dtype != torch.float32:
        return "runs in float32 only"
    return None


def make_algorithm(config: TrainConfig, model: VAE, train_size: int) -> Algorithm:
    """The algorithm `config` names, with the gradient step it asks for ("auto": the fast step wherever it applies);
    `train_size` is N."""
    parameter = next(model.parameters())
    step = config.step
    if step == "auto":
        step = "autograd" if fast_step_unavailable(config.algorithm, parameter.device, parameter.dtype) else "fast"
    return ALGORITHMS[config.algorithm](model, config, train_size, step)
