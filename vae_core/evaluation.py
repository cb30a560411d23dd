"""What an evaluation scores, for the training loop and the CLI's `evaluate` alike: the data it scores (binary
images for a binarised run), the lower bound over a whole set, and Appendix D's marginal likelihood."""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import data as data_module
from .estimators import estimator_b_terms, importance_weighted_bound
from .models import VAE

BINARIZE_SEED_OFFSETS = {"train": 4, "test": 5}  # the fixed draws of a binarised run's evaluation sets: seed + these


class EvaluationSets(NamedTuple):
    train: torch.Tensor  # (N, D)
    test: torch.Tensor  # (N_test, D)


def evaluation_sets(train: torch.Tensor, test: torch.Tensor, binarized: bool, seed: int) -> EvaluationSets:
    """What evaluations score: the training points a run trains on and the test set, as they are, or, for a run
    trained on binarised pixels, binary images drawn once with the run's seed (the same at every evaluation)."""
    if not binarized:
        return EvaluationSets(train, test)

    def drawn(x: torch.Tensor, split: str) -> torch.Tensor:
        return torch.tensor(data_module.binarized(x.cpu().numpy(), seed + BINARIZE_SEED_OFFSETS[split]), device=x.device)

    return EvaluationSets(drawn(train, "train"), drawn(test, "test"))


def describe_sets(binarized: bool) -> str:
    """What the evaluation sets are, as the run's config.json says it."""
    if not binarized:
        return "the grey pixels as they are"
    train, test = BINARIZE_SEED_OFFSETS["train"], BINARIZE_SEED_OFFSETS["test"]
    return f"binarised once: train with seed+{train}, test with seed+{test} (data.binarized)"


def evaluation_batch(device: torch.device) -> int:
    """Rows per pass of an evaluation: on a GPU a whole test set at once (fewer, fuller kernels); on a CPU 1000."""
    return 1000 if device.type == "cpu" else 10_000


@torch.no_grad()
def dataset_lower_bound(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
                        batch_size: int | None = None) -> tuple[float, float, float]:
    """Mean over the rows of x of estimator B (eq. 7) with L = 1: (lower bound, reconstruction, KL), nats per
    datapoint."""
    batch_size = batch_size or evaluation_batch(x.device)
    totals = torch.zeros(2, dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        reconstruction, kl = estimator_b_terms(model, x[start:start + batch_size], generator=generator)
        totals += torch.stack([reconstruction.sum(), kl.sum()]).double()
    reconstruction, kl = (totals / len(x)).tolist()
    return reconstruction - kl, reconstruction, kl


@torch.no_grad()
def dataset_iw_bound(model: VAE, x: torch.Tensor, K: int, generator: torch.Generator | None = None,
                     batch_size: int | None = None, progress=None) -> torch.Tensor:
    """The importance-weighted bound with K samples of each row of x, (N,), in batches of rows (each in chunks of
    samples, `estimators.importance_weighted_bound`); `progress(rows)` after each batch."""
    batch_size = batch_size or evaluation_batch(x.device)
    parts = []
    for start in range(0, len(x), batch_size):
        parts.append(importance_weighted_bound(model, x[start:start + batch_size], K, generator=generator))
        if progress is not None:
            progress(len(parts[-1]))
    return torch.cat(parts)


ACTIVE_UNIT_THRESHOLD = 1e-2  # Burda et al. (2016), Section 5.2: a unit is active when Cov_x(E_q[z_j]) exceeds it


@torch.no_grad()
def active_units(model: VAE, x: torch.Tensor, batch_size: int | None = None) -> tuple[int, torch.Tensor]:
    """Burda et al.'s active units: the number of latent dimensions j whose A_j = Cov_x(E_q(z|x)[z_j]), the variance
    over the rows of x of the encoder's mean, exceeds ACTIVE_UNIT_THRESHOLD; and every A_j, (J,)."""
    batch_size = batch_size or evaluation_batch(x.device)
    means = torch.cat([model.encoder(x[start:start + batch_size]).mean for start in range(0, len(x), batch_size)])
    activity = means.double().var(0)  # (J,)
    return int((activity > ACTIVE_UNIT_THRESHOLD).sum()), activity


def scores(model: VAE, sets: EvaluationSets, generator: torch.Generator, learns_encoder: bool,
           marginal_points: int | None = None, iw_k: int | None = None) -> dict[str, float]:
    """The lower bound (estimator B, L = 1) on both sets, when the encoder is learned (with an untrained one, as
    Monte Carlo EM's, the bound says nothing); with `iw_k`, beside it the importance-weighted bound at that K (an
    IWAE run's own); with `marginal_points`, Appendix D's estimate of log p(x) on the first that many points of each
    set. Keys: `events.EVALUATION_KEYS`."""
    result = {}
    if learns_encoder:
        for split, x in sets._asdict().items():
            result[f"{split}_lower_bound"] = dataset_lower_bound(model, x, generator)[0]
            if iw_k is not None:
                result[f"{split}_iw_bound"] = dataset_iw_bound(model, x, iw_k, generator).double().mean().item()
    if marginal_points is not None:
        from .marginal import MarginalConfig, marginal_log_likelihood
        estimator = MarginalConfig.for_model(learns_encoder)
        for split, x in sets._asdict().items():
            estimate, _ = marginal_log_likelihood(model, x[:marginal_points], estimator, generator)
            result[f"{split}_marginal_log_likelihood"] = estimate.mean().item()
    return result
