"""How the variance of the SGVB estimators falls with the number of samples L, measured.

For a model snapshot and a fixed minibatch of M datapoints, R independent replicates of each estimator
are drawn at each L, each replicate with fresh noise ε of shape (L, M, J), shared by the estimators so
that their comparison is sharp. Per estimator and L this reports the lower-bound estimate's mean and
variance (per datapoint, nats²) and, for the gradient with respect to the encoder parameters φ and the
decoder parameters θ: the total variance (trace of the covariance), the norm of the mean gradient and
the mean per-parameter signal-to-noise ratio |E g| / std g. All figures are per datapoint, i.e. of the
objective (1/M) Σ_i L̃(θ, φ; x_i) (eq. 8 divided by N).

Estimators of ∇φ: SGVB A (eq. 6) and B (eq. 7), both pathwise through z = μ + σ ⊙ ε (eq. 4); the
score-function (REINFORCE) estimator E_q[f(z) ∇φ log q_φ(z|x)], f = log p(x, z) - log q(z|x), with and
without a baseline (f at z = μ, which does not depend on ε and so keeps it unbiased); and "sticking the
landing" (Roeder et al. 2017), the pathwise gradient of eq. 6 without the score term ∇φ log q. ∇θ is the
same function of the noise for all five (z does not depend on θ), so it is measured once per L.
The importance-weighted bound with K = L is reported for the value.

Per-replicate gradients are computed with `torch.func.vmap(grad(...))` over chunks of replicates, so the
R x len(L) backward passes become a few batched ones; `vectorised=False` runs them one by one instead.

The k trade-off (`measure_iw_tradeoff`): the same replicates of the IWAE gradient (the gradient of the IW bound L_K
itself) and of DReG's (Tucker et al. 2019) at each K, the signal-to-noise ratios of their decoder (θ) and encoder
(φ) parts and the bound's value. Rainforth et al. (2018) show the decoder's SNR rising like √K and the plain
encoder's falling like 1/√K; DReG's encoder SNR rises like √K. `snr_slopes` fits the log-log slopes.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .estimators import (
    ModelView,
    estimator_a,
    estimator_b,
    importance_weighted_bound,
    iw_objective,
    log_weight,
    reparameterize,
)
from .models import VAE, DiagonalGaussian

GRADIENT_ESTIMATORS = ("A", "B", "score", "score-baseline", "stl")
# Value estimates per datapoint; "iw" is the importance-weighted bound with K = L (one chunk of K samples).
VALUE_ESTIMATORS = {"A": estimator_a, "B": estimator_b,
                    "iw": lambda model, x, L, eps: importance_weighted_bound(model, x, L, eps=eps, max_elements=2**62)}


# A replicate's own gradient (kept apart, then added to the float64 moments) costs about as much as this many samples
# through the network: measured on a CPU, docs/PERFORMANCE.md ("The variance lab's cost").
REPLICATE_PASSES = 250
VARIANCE_LIMITS = {"batch_size": 10_000, "repeats": 100_000, "L": 10_000}


@dataclass
class VarianceConfig:
    batch_size: int = 10  # M
    repeats: int = 100  # R
    samples: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)  # the values of L
    estimators: tuple[str, ...] = GRADIENT_ESTIMATORS
    seed: int = 0
    max_elements: int = 2**23  # decoder outputs per chunk of replicates (R_chunk x L x M x D); larger is slower here

    def problems(self, model: VAE | None = None, train_size: int | None = None) -> list[str]:
        """What is wrong with these settings (for `model` and a training set of `train_size`, when given)."""
        problems = []
        for name, low, what in (("batch_size", 1, "the minibatch M"), ("repeats", 2, "the replicates R")):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                problems.append(f"{what} must be a whole number of at least {low}, got {value!r}")
            elif value > VARIANCE_LIMITS[name]:
                problems.append(f"{what} must be at most {VARIANCE_LIMITS[name]:,}, got {value:,}")
        if not self.samples or any(not isinstance(L, int) or L < 1 for L in self.samples):
            problems.append(f"every L must be a whole number of at least 1, got {list(self.samples)!r}")
        elif max(self.samples) > VARIANCE_LIMITS["L"]:
            problems.append(f"every L must be at most {VARIANCE_LIMITS['L']:,}, got {max(self.samples):,}")
        unknown = [e for e in self.estimators if e not in GRADIENT_ESTIMATORS]
        if unknown or not self.estimators:
            problems.append(f"estimators must be among {', '.join(GRADIENT_ESTIMATORS)}, got {list(self.estimators)!r}")
        if problems:
            return problems
        if train_size is not None and self.batch_size > train_size:
            problems.append(f"the minibatch M must be at most the {train_size:,} training datapoints of this model's "
                            f"data, got {self.batch_size:,}")
        if model is not None:
            from .config import memory_allowed
            needed, allowed = self.memory_needed(model), memory_allowed()
            if needed > allowed:
                problems.append(f"these settings need about {needed / 2**30:.1f} GiB of memory, more than the "
                                f"{allowed / 2**30:.1f} GiB allowed here: lower R, L or M")
        return problems

    def validate(self, model: VAE | None = None, train_size: int | None = None) -> None:
        problems = self.problems(model, train_size)
        if problems:
            raise ValueError("; ".join(problems))

    def work(self, model: VAE, tradeoff: bool = False) -> list[float]:
        """The measurement's cost at each value of L (or, with `tradeoff`, of K), in passes of a sample through the
        network's P parameters, estimated before anything runs: for each gradient (the estimators and ∇θ, or IWAE's,
        DReG's and the bound's value) R replicates of L x M samples, and each replicate's own gradient, kept apart
        and added to the moments, which costs as much as REPLICATE_PASSES more samples."""
        P = model.config.parameter_count()
        gradients = len(IW_ESTIMATORS) + 1 if tradeoff else len(self.estimators) + 1
        return [float(self.repeats * gradients * (L * self.batch_size + REPLICATE_PASSES) * P) for L in self.samples]

    def memory_needed(self, model: VAE) -> int:
        """Bytes the measurement needs, estimated before anything is allocated: the noise of every replicate at the
        largest L, a chunk's decoder outputs and per-replicate gradients, and the moments' accumulators."""
        c = model.config
        out, parameters = c.decoder_outputs, c.parameter_count()
        L, M, J = max(self.samples), self.batch_size, c.latent_dim
        chunk = max(1, self.max_elements // (L * M * out))  # replicates per chunk
        noise = 2 * self.repeats * L * M * J * 4  # ε and z0
        work = 8 * min(chunk, self.repeats) * L * M * (out + sum(c.hidden)) * 4 + 2 * min(chunk, self.repeats) * parameters * 4
        return noise + work + 2 * (len(self.estimators) + 1) * parameters * 8


class _LinearisedDecoder:
    """Stands in for p_θ(x|z) at the sampled z0: the same log-density and the same gradient in z there.

    A gradient with respect to φ sees the decoder only through log p_θ(x|z) and ∂/∂z of it at the
    sampled z, so with these two computed once (one decoder pass for all estimators) every estimator's
    φ-gradient below costs an encoder pass. Exact, not an approximation: first order is all a gradient uses.
    """

    def __init__(self, log_px: torch.Tensor, grad_z: torch.Tensor, z0: torch.Tensor):  # (L, M), (L, M, J), (L, M, J)
        self.log_px, self.grad_z, self.z0 = log_px, grad_z, z0

    def __call__(self, z: torch.Tensor) -> _LinearisedDecoder:
        self.z = z
        return self

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_px + ((self.z - self.z0) * self.grad_z).sum(-1)  # (L, M)


class _Objectives(nn.Module):
    """Scalar objectives whose gradients are the estimators: per-datapoint means over the minibatch."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, estimator: str, x: torch.Tensor, eps: torch.Tensor, decoded: tuple | None = None,
                baseline: torch.Tensor | None = None) -> torch.Tensor:  # eps: (L, M, J)
        """`decoded` = (log p(x|z0), ∂/∂z log p(x|z0), z0) swaps in the linearised decoder; `baseline` (M,) is
        f at z = μ for the score function's baseline (computed by the caller when the decoder is swapped)."""
        vae = self.vae if decoded is None else ModelView(self.vae, _LinearisedDecoder(*decoded))
        L = eps.shape[0]
        if estimator == "A":
            return estimator_a(vae, x, L, eps=eps).mean()  # eq. 6
        if estimator == "B":
            return estimator_b(vae, x, L, eps=eps).mean()  # eq. 7
        posterior = vae.encoder(x)  # (M, J)
        z = reparameterize(posterior, eps)  # (L, M, J), eq. 4
        if estimator == "stl":  # eq. 6 with log q evaluated at stopped φ: the score term ∇φ log q is dropped
            frozen = DiagonalGaussian(posterior.mean.detach(), posterior.logvar.detach())
            return log_weight(vae, x, z, frozen).mean()
        z = z.detach()  # score function: no path through z
        log_q = posterior.log_prob(z)  # (L, M)
        log_w = log_weight(vae, x, z, posterior)  # (L, M)
        f = log_w.detach()
        if estimator == "score-baseline":
            f = f - (_baseline(self.vae, x) if baseline is None else baseline)
        # ∇φ: f ∇φ log q(z|x) (REINFORCE); ∇θ: ∇θ log p_θ(x|z), as for every other estimator. log_w + log q is
        # log p(x, z), which has no φ-gradient with z stopped.
        return (f * log_q + log_w + log_q).mean()


class _Moments:
    """Mean and variance over replicates of a block of gradient tensors. Each chunk is reduced in place in
    float32 (the per-replicate gradients are large, and fresh allocations of that size cost page faults),
    and chunks are merged in float64 with Chan, Golub & LeVeque's pairwise update."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None  # m2: sum of squared deviations from the mean

    def add(self, grads: list[torch.Tensor]) -> None:  # each (R_chunk, *parameter shape), consumed
        n_b = grads[0].shape[0]
        means, m2s = [], []
        for g in grads:
            g = g.reshape(n_b, -1)
            mean = g.mean(0)
            means.append(mean)
            m2s.append(g.sub_(mean).square_().sum(0))
        self.merge(n_b, torch.cat(means).double(), torch.cat(m2s).double())

    def merge(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        """Takes in the moments of `n_b` more replicates (another _Moments' n, mean and m2)."""
        if self.n == 0:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta.square() * (self.n * n_b / n)
        self.n = n

    def mean_and_variance(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.m2 / (self.n - 1)

    def summary(self) -> dict[str, float]:
        mean, var = self.mean_and_variance()
        moving = var > 0
        snr = (mean.abs()[moving] / var[moving].sqrt()).mean().item() if moving.any() else math.nan
        # Satterthwaite's degrees of freedom of the total: (Σ σ²)² / Σ σ⁴ parameters' worth of R - 1 each, so that
        # log(total) has a standard error of about sqrt(2 / dof) (with independent parameters; the 1 / (R - 1) of a
        # single parameter's variance at worst)
        dof = (var.sum().square() / var.square().sum()).item() * (self.n - 1) if moving.any() else math.nan
        return {"total_variance": var.sum().item(), "mean_norm": mean.norm().item(), "snr": snr,
                "total_variance_dof": dof}


@dataclass
class VarianceResult:
    rows: list[dict] = field(default_factory=list)  # one per (estimator, L)
    settings: dict = field(default_factory=dict)
    # (estimator, L, "phi" | "theta") -> per-parameter mean and variance of the gradient, numpy
    moments: dict = field(default_factory=dict, repr=False)

    def table(self, key: str, estimator: str, x: str = "L") -> tuple[list[int], list[float]]:
        """The values of `key` for `estimator` against `x` (L, or K for the k trade-off)."""
        rows = [r for r in self.rows if r["estimator"] == estimator and r.get(key) is not None]
        return [r[x] for r in rows], [r[key] for r in rows]


def _baseline(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """f = log p(x, z) - log q(z|x) at z = μ: a baseline that does not depend on ε, (M,)."""
    with torch.no_grad():
        posterior = vae.encoder(x)
        return log_weight(vae, x, posterior.mean, posterior)


def _value_stats(values: torch.Tensor) -> dict[str, float]:
    """values: (R, M) per-datapoint estimates -> mean, per-datapoint variance, variance of the minibatch mean."""
    values = values.double()
    return {"value_mean": values.mean().item(), "value_variance": values.var(0).mean().item(),
            "minibatch_value_variance": values.mean(1).var().item()}


def measure_variance(model: VAE, x: torch.Tensor, config: VarianceConfig = VarianceConfig(),
                     progress: Callable[[float], None] | None = None, vectorised: bool = True,
                     moments: bool = False) -> VarianceResult:
    """Measures every figure of the module docstring for `model` on the minibatch `x` (M, D). With `moments`, the
    result also keeps each gradient's per-parameter mean and variance (for MNIST, megabytes per estimator and L)."""
    config.validate(model)
    model = model.eval()
    objectives = _Objectives(model)
    params = {k: v.detach() for k, v in objectives.named_parameters()}
    phi = {k: v for k, v in params.items() if k.startswith("vae.encoder.")}
    theta = {k: v for k, v in params.items() if k.startswith("vae.decoder.")}
    J, out_dim = model.config.latent_dim, model.config.decoder_outputs
    generator = torch.Generator(device=x.device).manual_seed(config.seed)  # the noise is drawn where x is
    result = VarianceResult(settings={"M": len(x), "R": config.repeats, "L": list(config.samples),
                                      "estimators": list(config.estimators), "seed": config.seed})
    baseline = _baseline(model, x)

    def decoder_pass(th: dict, z: torch.Tensor):
        """Mean of log p_θ(x|z) over the (L, M) samples, for ∇θ and ∂/∂z; the values ride along."""
        log_px = functional_call(objectives.vae.decoder, {k[len("vae.decoder."):]: v for k, v in th.items()}, (z,)).log_prob(x)
        return log_px.mean(), log_px.detach()

    def phi_objective(estimator):
        return lambda w, e, log_px, grad_z, z0: functional_call(
            objectives, (w, theta), (estimator, x, e, (log_px, grad_z, z0), baseline))

    for L in _reporting(config.samples, config.work(model), progress):
        # (R, L, M, J), fresh each L
        eps = torch.randn(config.repeats, L, len(x), J, generator=generator, dtype=x.dtype, device=x.device)
        chunk = max(1, config.max_elements // (L * len(x) * out_dim))
        accumulated = {e: _Moments() for e in config.estimators} | {"theta": _Moments()}
        values: dict[str, list[torch.Tensor]] = {name: [] for name in VALUE_ESTIMATORS}  # (M,) per replicate
        for start in range(0, config.repeats, chunk):
            e_chunk = eps[start:start + chunk]  # (R_chunk, L, M, J)
            with torch.no_grad():
                z0 = reparameterize(model.encoder(x), e_chunk)  # (R_chunk, L, M, J), eq. 4
            if vectorised:
                (g_theta, g_z), log_px = vmap(grad(decoder_pass, argnums=(0, 1), has_aux=True), in_dims=(None, 0))(theta, z0)
                grad_z = g_z * (L * len(x))  # ∂ log p(x|z)/∂z per sample: undo the mean's 1/(L M)
                accumulated["theta"].add(list(g_theta.values()))
                for estimator in config.estimators:
                    g_phi = vmap(grad(phi_objective(estimator)), in_dims=(None, 0, 0, 0, 0))(phi, e_chunk, log_px, grad_z, z0)
                    accumulated[estimator].add(list(g_phi.values()))
                with torch.no_grad():
                    for name, f in VALUE_ESTIMATORS.items():
                        per_replicate = lambda lp, gz, z, e: f(ModelView(model, _LinearisedDecoder(lp, gz, z)), x, L, eps=e)
                        values[name].extend(vmap(per_replicate)(log_px, grad_z, z0, e_chunk))  # (R_chunk, M)
            else:  # the naive loop: the real decoder, one backward pass per replicate and estimator
                for e in e_chunk:
                    accumulated["theta"].add(_naive_gradient(objectives, "B", theta, phi, x, e))
                    for estimator in config.estimators:
                        accumulated[estimator].add(_naive_gradient(objectives, estimator, phi, theta, x, e))
                    with torch.no_grad():
                        for name, f in VALUE_ESTIMATORS.items():
                            values[name].append(f(model, x, L, eps=e))  # (M,)
        _record(result, L, accumulated, values, config.estimators, moments)
    return result


def _reporting(values: tuple[int, ...], work: list[float], progress: Callable[[float], None] | None):
    """Each value of L (or K), with `progress` told 0 before the first and, after each, the share of the work done:
    by cost (VarianceConfig.work), as the last values are most of the time."""
    if progress:
        progress(0.0)  # the measurement itself begins: what came before was loading
    done = 0.0
    for value, cost in zip(values, work):
        yield value
        done += cost
        if progress:
            progress(done / sum(work))


def _record(result: VarianceResult, L: int, accumulated: dict[str, _Moments], values: dict[str, list],
            estimators: tuple[str, ...], moments: bool) -> None:
    """Adds the rows of one L to `result`, from its gradients' moments and its values: a row per estimator, then the
    importance-weighted bound's; with `moments`, each gradient's per-parameter mean and variance too."""
    if moments:
        for name, m in accumulated.items():
            result.moments[(name, L, "theta") if name == "theta" else (name, L, "phi")] = tuple(
                t.numpy() for t in m.mean_and_variance())
    theta_stats = {f"theta_{k}": v for k, v in accumulated["theta"].summary().items()}
    for estimator in estimators:
        row = {"estimator": estimator, "L": L, **{f"phi_{k}": v for k, v in accumulated[estimator].summary().items()},
               **theta_stats}
        if estimator in ("A", "B"):
            row |= _value_stats(torch.stack(values[estimator]))
        result.rows.append(row)
    result.rows.append({"estimator": "iw", "L": L, **_value_stats(torch.stack(values["iw"]))})


def _naive_gradient(objectives, estimator, wrt, fixed, x, eps) -> list[torch.Tensor]:
    w = {k: v.clone().requires_grad_() for k, v in wrt.items()}
    value = functional_call(objectives, (w, fixed), (estimator, x, eps))
    return [g[None] for g in torch.autograd.grad(value, list(w.values()))]  # each (1, *shape)


def fixed_minibatch(train: np.ndarray, M: int, seed: int = 0) -> torch.Tensor:
    """M training points chosen once by `seed`: the same minibatch for every estimator and snapshot."""
    index = np.random.default_rng(seed).choice(len(train), size=M, replace=False)
    return torch.tensor(train[np.sort(index)])


def subject(source: str | None = None, dataset: str | None = None, latent_dim: int = 2, hidden_dim: int | None = None,
            seed: int = 0, data_dir: str | None = None):
    """The model to measure and its dataset: a run folder or .safetensors file, or (source None) an untrained
    model of the paper's shape for `dataset`, initialised from N(0, 0.01²) with `seed`."""
    from pathlib import Path

    from . import data, runs

    if source is not None:
        path = Path(source)
        path = path / runs.MODEL if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{source} is neither a run folder holding {runs.MODEL} nor a model file")
        model, metadata = runs.load_model(path)
        return model, data.load(metadata["dataset"], data_dir, download=False, **metadata.get("data_options", {}))
    if dataset is None:
        raise ValueError("give a run folder or model file, or --untrained with --dataset")
    from .config import TrainConfig
    shape = TrainConfig(dataset=dataset, latent_dim=latent_dim, hidden=(hidden_dim,) if hidden_dim else None, seed=seed)
    problems = {k: v for k, v in shape.problems().items() if k in ("latent_dim", "hidden", "seed")}
    if problems:  # before the network is allocated
        raise ValueError("; ".join(problems.values()))
    loaded = data.load(dataset, data_dir, download=False)
    return VAE(shape.model_config(loaded.spec), generator=torch.Generator().manual_seed(seed)), loaded


TRADEOFF_K = (1, 10, 100)  # the k trade-off's values of K unless told
IW_ESTIMATORS = {"iwae": "plain", "dreg": "dreg"}  # the k trade-off's rows, by the gradient of iw_objective each is


class _IWObjective(nn.Module):
    """The minibatch mean of the IW bound, whose gradient is the estimator named (`estimators.iw_objective`)."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor, gradient: str) -> torch.Tensor:  # eps: (K, M, J)
        return iw_objective(self.vae, x, eps, gradient).mean()


def measure_iw_tradeoff(model: VAE, x: torch.Tensor, config: VarianceConfig = VarianceConfig(samples=TRADEOFF_K),
                        progress: Callable[[float], None] | None = None, vectorised: bool = True,
                        groups: int = 10) -> VarianceResult:
    """At each K of `config.samples`, R replicates (fresh noise ε of shape (K, M, J) each, shared by the two
    estimators) of the IWAE and DReG gradients of the IW bound on the minibatch `x`: a row per estimator and K with
    the SNR, its standard error, the total variance and the mean norm of the encoder's (phi_) and decoder's (theta_)
    parts, and the bound's value (value_mean, value_variance). Per datapoint, as `measure_variance`. The SNR's error
    is the spread of its value over `groups` equal groups of the replicates, divided by √groups."""
    config.validate(model)
    objective = _IWObjective(model.eval())
    params = {k: v.detach() for k, v in objective.named_parameters()}
    J, out_dim = model.config.latent_dim, model.config.decoder_outputs
    generator = torch.Generator(device=x.device).manual_seed(config.seed)  # the noise is drawn where x is
    groups = max(1, min(groups, config.repeats // 2))
    result = VarianceResult(settings={"M": len(x), "R": config.repeats, "K": list(config.samples),
                                      "estimators": list(IW_ESTIMATORS), "seed": config.seed})
    parts = {(name, part): prefix for name in IW_ESTIMATORS for part, prefix in (("phi", "vae.encoder."),
                                                                                  ("theta", "vae.decoder."))}
    for K in _reporting(config.samples, config.work(model, tradeoff=True), progress):
        eps = torch.randn(config.repeats, K, len(x), J, generator=generator, dtype=x.dtype,
                          device=x.device)  # (R, K, M, J)
        chunk = max(1, config.max_elements // (K * len(x) * out_dim))
        total = {key: _Moments() for key in parts}
        snrs: dict[tuple[str, str], list[float]] = {key: [] for key in parts}  # each group's
        values: list[torch.Tensor] = []
        bounds = np.linspace(0, config.repeats, groups + 1).round().astype(int)
        for first, last in zip(bounds, bounds[1:]):
            group = {key: _Moments() for key in parts}
            for start in range(first, last, chunk):
                e_chunk = eps[start:min(start + chunk, last)]  # (R_chunk, K, M, J)
                with torch.no_grad():
                    values.extend(vmap(lambda e: iw_objective(model, x, e))(e_chunk))  # (M,) each
                for name, gradient in IW_ESTIMATORS.items():
                    f = lambda p, e, gradient=gradient: functional_call(objective, p, (x, e, gradient))
                    if vectorised:
                        g = vmap(grad(f), in_dims=(None, 0))(params, e_chunk)  # each (R_chunk, *shape)
                    else:
                        each = [grad(f)(params, e) for e in e_chunk]
                        g = {k: torch.stack([d[k] for d in each]) for k in params}
                    for part in ("phi", "theta"):
                        group[(name, part)].add([v for k, v in g.items() if k.startswith(parts[(name, part)])])
            for key, m in group.items():
                snrs[key].append(m.summary()["snr"])
                total[key].merge(m.n, m.mean, m.m2)
        stats = _value_stats(torch.stack(values))
        for name in IW_ESTIMATORS:
            row = {"estimator": name, "K": K, **stats}
            for part in ("phi", "theta"):
                row |= {f"{part}_{k}": v for k, v in total[(name, part)].summary().items()}
                row[f"{part}_snr_error"] = float(np.std(snrs[(name, part)], ddof=1) / math.sqrt(groups)) \
                    if groups > 1 else math.nan
            result.rows.append(row)
    return result


def snr_slopes(result: VarianceResult, from_k: int = 2) -> dict[str, dict[str, float]]:
    """The slope of log SNR against log K per estimator and part ("phi", "theta"), by least squares weighted by each
    point's error, over the Ks from `from_k` on (at K = 1 the IW bound is the ELBO, far from the asymptotic
    regime), with its standard error ("phi_error", "theta_error"): Rainforth et al. (2018) predict +1/2 for θ and
    -1/2 for the IWAE φ, Tucker et al. (2019) +1/2 for DReG's φ. NaN with fewer than two such K."""
    slopes: dict[str, dict[str, float]] = {}
    for name in IW_ESTIMATORS:
        slopes[name] = {}
        for part in ("phi", "theta"):
            rows = [r for r in result.rows if r["estimator"] == name and r["K"] >= from_k
                    and r.get(f"{part}_snr", 0) > 0 and math.isfinite(r[f"{part}_snr"])]
            slope = error = math.nan
            if len(rows) >= 2:
                x = np.log([r["K"] for r in rows])
                y = np.log([r[f"{part}_snr"] for r in rows])
                sigma = np.array([r.get(f"{part}_snr_error", math.nan) / r[f"{part}_snr"] for r in rows])
                w = 1 / sigma**2 if np.all(np.isfinite(sigma) & (sigma > 0)) else np.ones(len(rows))
                xbar = np.sum(w * x) / np.sum(w)
                sxx = np.sum(w * (x - xbar) ** 2)
                slope = float(np.sum(w * (x - xbar) * y) / sxx)
                error = float(1 / math.sqrt(sxx)) if np.all(np.isfinite(sigma) & (sigma > 0)) else math.nan
            slopes[name][part], slopes[name][f"{part}_error"] = slope, error
    return slopes
