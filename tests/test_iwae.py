"""IWAE (Burda et al. 2016) and DReG (Tucker et al. 2019) against independent computations: per-sample autograd of
the log-weights, AEVB's estimator A at K = 1, many-sample Monte Carlo, and training on digits."""
import math

import pytest
import torch
from test_estimators import data, make_model

from vae_core.algorithms import AEVB, IWAE, Minibatch
from vae_core.config import TrainConfig
from vae_core.estimators import (
    importance_weighted_bound,
    iw_objective,
    log_weight,
    reparameterize,
)
from vae_core.events import is_evaluation
from vae_core.fast_step import FlatParameters
from vae_core.models import DiagonalGaussian


def iwae(model, **change):
    config = TrainConfig(**{"dataset": "digits", "algorithm": "iwae", "iw_k": 4, **change})
    return IWAE(model, config, train_size=100)


def gradient(algorithm, x, eps) -> dict[str, torch.Tensor]:
    flat = FlatParameters(algorithm.module)
    algorithm.gradient(Minibatch(x, torch.arange(len(x))), {"eps": eps}, flat.grads)
    return {name: g.clone() for name, g in flat.grads.items()}


@pytest.mark.parametrize("gradient_kind", ["plain", "dreg"])
def test_the_objectives_value_is_the_iw_bound(gradient_kind):
    model, x = make_model("gaussian"), data()
    eps = torch.randn(7, 6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.double)
    torch.testing.assert_close(iw_objective(model, x, eps, gradient_kind), importance_weighted_bound(model, x, 7, eps=eps))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_iwae_gradient_is_the_softmax_weighted_sum_of_each_samples_gradient(likelihood):
    """-∇ (1/M) Σ_m L_K(x_m) = -(1/M) Σ_m Σ_k w̃_km ∇ log w_km, each ∇ log w_km by autograd of that one sample alone."""
    model, x = make_model(likelihood), data(M=3)
    K = 4
    eps = torch.randn(K, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    ours = gradient(iwae(model, iw_k=K), x, eps)
    params = dict(model.named_parameters())
    expected = {name: torch.zeros_like(p) for name, p in params.items()}
    posterior = model.encoder(x)
    log_w = log_weight(model, x, reparameterize(posterior, eps), posterior)  # (K, M)
    weights = torch.softmax(log_w.detach(), 0)
    for m in range(3):
        for k in range(K):
            grads = torch.autograd.grad(log_w[k, m], list(params.values()), retain_graph=True, allow_unused=True)
            for (name, _), g in zip(params.items(), grads):
                if g is not None:
                    expected[name] -= weights[k, m] * g / 3
    for name in params:
        torch.testing.assert_close(ours[name], expected[name], msg=name)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_with_k_1_is_aevb_with_estimator_a(likelihood):
    model, x = make_model(likelihood), data()
    eps = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.double)
    aevb = AEVB(model, TrainConfig(dataset="digits", estimator="A"), train_size=100)
    ours, theirs = gradient(iwae(model, iw_k=1), x, eps), gradient(aevb, x, eps)
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], msg=name)
    batch = Minibatch(x, torch.arange(6))
    g = torch.Generator().manual_seed(3)
    assert iwae(model, iw_k=1).draw_noise(batch, g)["eps"].shape == (1, 6, 3)


def _stl_iw(model, x, eps):
    """A biased cousin of DReG, for the test to tell apart: the IW bound with log q at stopped φ (w̃, not w̃²)."""
    posterior = model.encoder(x)
    frozen = DiagonalGaussian(posterior.mean.detach(), posterior.logvar.detach())
    return torch.logsumexp(log_weight(model, x, reparameterize(posterior, eps), frozen), 0) - math.log(len(eps))


def _batch_gradients(model, x, objective, K, batches, replicates, seed):
    """Per batch, the mean encoder gradient over `replicates` independent draws (x repeated that many times): (B, P)."""
    phi = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    g = torch.Generator().manual_seed(seed)
    X = x.repeat(replicates, 1)
    rows = []
    for _ in range(batches):
        eps = torch.randn(K, len(X), 3, generator=g, dtype=torch.double)
        rows.append(torch.cat([v.reshape(-1) for v in torch.autograd.grad(objective(model, X, eps).mean(), phi)]))
    return torch.stack(rows)


def test_dreg_is_unbiased_for_the_encoders_iwae_gradient():
    """The mean of DReG's ∇φ over 24,000 draws matches the plain IWAE estimator's (the same noise, so the difference
    of the two is what is tested) within 4.5 standard errors, for every encoder parameter; the same check tells the
    biased IW bound with stopped log q (w̃ in place of w̃²) apart. (Its lower variance as K grows: test_variance.py.)"""
    model, x = make_model("bernoulli", scale=0.3), data()
    K, B, R = 10, 40, 100
    plain = _batch_gradients(model, x, lambda m, X, e: iw_objective(m, X, e, "plain"), K, B, R, seed=4)
    dreg = _batch_gradients(model, x, lambda m, X, e: iw_objective(m, X, e, "dreg"), K, B, R, seed=4)
    biased = _batch_gradients(model, x, _stl_iw, K, B, R, seed=4)

    def z_scores(other):
        diff = other - plain  # (B, P): per batch, the difference of two means over the same draws
        return diff.mean(0) / (diff.std(0) / math.sqrt(B))

    assert z_scores(dreg).abs().max() < 4.5
    assert z_scores(biased).abs().max() > 10


def test_dreg_leaves_the_decoders_gradient_as_it_is():
    model, x = make_model("gaussian"), data()
    eps = torch.randn(5, 6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.double)
    plain, dreg = gradient(iwae(model, iw_k=5), x, eps), gradient(iwae(model, iw_k=5, iw_gradient="dreg"), x, eps)
    for name in plain:
        if name.startswith("decoder."):
            torch.testing.assert_close(dreg[name], plain[name], msg=name)
    assert any(not torch.allclose(dreg[n], plain[n]) for n in plain if n.startswith("encoder."))


@pytest.mark.parametrize("change, words", [
    ({"algorithm": "iwae"}, "iwae needs iw_k"),
    ({"algorithm": "iwae", "iw_k": 0}, "iw_k must be a whole number from 1 to 10,000"),
    ({"algorithm": "iwae", "iw_k": 20_000}, "iw_k must be a whole number from 1 to 10,000"),
    ({"algorithm": "iwae", "iw_k": 5, "samples_per_point": 2}, "samples_per_point L must stay 1"),
    ({"iw_k": 5}, "iw_k applies to the iwae algorithm only, not aevb"),
    ({"algorithm": "wake-sleep", "iw_gradient": "dreg"}, "applies to the iwae algorithm only, not wake-sleep"),
    ({"algorithm": "iwae", "iw_k": 5, "iw_gradient": "stl"}, "iw_gradient must be one of plain, dreg"),
])
def test_bad_iwae_settings_are_named(change, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(dataset="digits", **change).validate()


def test_memory_grows_with_k():
    small, large = (TrainConfig(dataset="mnist", algorithm="iwae", iw_k=k).memory_needed() for k in (1, 1000))
    assert large > 100 * (small - TrainConfig(dataset="mnist", algorithm="iwae", iw_k=1, batch_size=1).memory_needed())


@pytest.mark.parametrize("gradient_kind", ["plain", "dreg"])
def test_an_iwae_run_reports_its_iw_bound_above_its_elbo_and_resumes_exactly(tmp_path, gradient_kind):
    from vae_core.training import Trainer
    config = TrainConfig(dataset="digits", samples=20_000, lr=0.02, hidden=(50,), algorithm="iwae", iw_k=5,
                         iw_gradient=gradient_kind)
    whole = Trainer.from_config(config, tmp_path / "whole")
    last = whole.run()
    evaluations = [r for r in whole.metrics if is_evaluation(r)]
    assert all(r["test_iw_bound"] > r["test_lower_bound"] and r["train_iw_bound"] > r["train_lower_bound"]
               for r in evaluations[1:])
    assert last.test_iw_bound > evaluations[0]["test_iw_bound"] + 10  # it learns
    minibatches = [r for r in whole.metrics if r["kind"] == "minibatch"]
    assert all(r["lower_bound"] > r["reconstruction"] - r["kl"] - 1e-9 for r in minibatches)  # L_K over the ELBO
    part = Trainer.from_config(config, tmp_path / "part")
    part.run(lambda e: part.stop() if e.samples_evaluated >= 7_300 else None)
    resumed = Trainer.resume_from(tmp_path / "part")
    resumed.run()
    assert torch.equal(resumed.params.flat, whole.params.flat)


def test_aevb_runs_report_no_iw_bound(tmp_path):
    from vae_core.training import Trainer
    trainer = Trainer.from_config(TrainConfig(dataset="digits", samples=2_000, lr=0.02, hidden=(20,)), tmp_path / "r")
    trainer.run()
    assert not any("test_iw_bound" in r for r in trainer.metrics)


def test_active_units_count_the_latent_dimensions_whose_encoder_mean_varies_over_the_data():
    """Burda et al.'s A_j = Cov_x(E_q[z_j]) against numpy's variance of the encoder's means; a dimension whose mean
    ignores x (its weights zeroed) is inactive, one whose mean varies barely (weights scaled down) too."""
    import numpy as np

    from vae_core.evaluation import active_units
    model, x = make_model("bernoulli", J=4), data(M=500)
    out = model.encoder.out  # the mean's J rows come first, then the log-variances'
    with torch.no_grad():
        out.weight[0].zero_()
        out.weight[1].mul_(1e-3)
    count, activity = active_units(model, x, batch_size=128)
    means = model.encoder(x).mean.detach().numpy()
    np.testing.assert_allclose(activity.numpy(), means.var(0, ddof=1), rtol=1e-10, atol=1e-20)
    assert activity[0] == 0 and activity[1] < 1e-2 < activity[2:].min()
    assert count == 2
