"""The maths against independent computations: torch.distributions, closed forms, Monte Carlo."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vae_core.estimators import (
    estimator_a,
    estimator_b,
    estimator_b_terms,
    importance_weighted_bound,
    kl_to_standard_normal,
    minibatch_lower_bound,
    reparameterize,
)
from vae_core.models import VAE, DiagonalGaussian, ModelConfig


def make_model(likelihood="bernoulli", D=12, J=3, H=16, scale=0.5, seed=0):
    model = VAE(ModelConfig(D, J, (H,), likelihood, (3, D // 3))).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # larger weights than the N(0, 0.01) start, so that every term matters
        for p in model.parameters():
            p.normal_(0, scale, generator=g)
    return model


def data(M=6, D=12, seed=1):
    return torch.rand(M, D, generator=torch.Generator().manual_seed(seed), dtype=torch.double)


def test_initialisation_is_normal_with_std_001():
    model = VAE(ModelConfig(784, 20, (500,), "bernoulli", (28, 28)), generator=torch.Generator().manual_seed(0))
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert abs(weights.mean().item()) < 1e-4
    assert weights.std().item() == pytest.approx(0.01, rel=0.01)


def test_diagonal_gaussian_log_prob_matches_multivariate_normal():
    mean, logvar, z = torch.randn(4, 3).double(), torch.randn(4, 3).double(), torch.randn(5, 4, 3).double()
    ours = DiagonalGaussian(mean, logvar).log_prob(z)
    reference = MultivariateNormal(mean, covariance_matrix=torch.diag_embed(logvar.exp())).log_prob(z)
    torch.testing.assert_close(ours, reference)


def test_bernoulli_decoder_log_prob_is_appendix_c1_formula():
    model, x = make_model("bernoulli"), data()
    z = torch.randn(2, 6, 3, dtype=torch.double)
    dec = model.decoder
    y = torch.sigmoid(dec.out(torch.tanh(dec.hidden[0](z))))  # Appendix C.1
    expected = (x * y.log() + (1 - x) * (1 - y).log()).sum(-1)
    torch.testing.assert_close(dec(z).log_prob(x), expected)
    torch.testing.assert_close(dec(z).mean, y)


def test_gaussian_decoder_log_prob_matches_torch_normal_with_sigmoid_mean():
    model, x = make_model("gaussian"), data()
    z = torch.randn(2, 6, 3, dtype=torch.double)
    dec = model.decoder
    mean_logits, logvar = dec.out(torch.tanh(dec.hidden[0](z))).chunk(2, -1)
    expected = Normal(torch.sigmoid(mean_logits), (0.5 * logvar).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(dec(z).log_prob(x), expected)
    assert ((dec(z).mean > 0) & (dec(z).mean < 1)).all()


def test_analytic_kl_matches_torch_and_monte_carlo():
    q = DiagonalGaussian(torch.tensor([[0.5, -1.0, 2.0]]).double(), torch.tensor([[-1.0, 0.3, -2.0]]).double())
    prior = DiagonalGaussian(torch.zeros(1, 3).double(), torch.zeros(1, 3).double())
    analytic = kl_to_standard_normal(q)
    torch.testing.assert_close(analytic, kl_divergence(q, prior))
    z = reparameterize(q, torch.randn(400_000, 1, 3, generator=torch.Generator().manual_seed(0), dtype=torch.double))
    log_ratio = q.log_prob(z) - prior.log_prob(z)  # (L, 1)
    mc, se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(len(z))
    assert abs(mc - analytic.item()) < 4 * se


def test_reparameterized_samples_have_posterior_moments_and_shape():
    q = DiagonalGaussian(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(0.25)]]))
    z = reparameterize(q, torch.randn(100_000, 1, 2, generator=torch.Generator().manual_seed(0)))
    assert z.shape == (100_000, 1, 2)  # (L, M, J)
    torch.testing.assert_close(z.mean(0), q.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), q.stddev, atol=0.02, rtol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_estimators_a_and_b_have_the_same_expectation(likelihood):
    model, x = make_model(likelihood), data()
    L = 200_000
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        eps = torch.randn(L, 6, 3, generator=g, dtype=torch.double)
        posterior = model.encoder(x)
        z = reparameterize(posterior, eps)
        log_px = model.decoder(z).log_prob(x)
        a_samples = log_px + model.prior(z).log_prob(z) - posterior.log_prob(z)  # (L, M) terms of eq. 6
        b_samples = log_px - kl_to_standard_normal(posterior)  # (L, M) terms of eq. 7
        diff = a_samples - b_samples
        se = diff.std(0) / math.sqrt(L)
        assert (diff.mean(0).abs() < 4 * se + 1e-9).all()
        # The estimator functions agree with these per-sample terms.
        torch.testing.assert_close(estimator_a(model, x, L, eps=eps), a_samples.mean(0))
        torch.testing.assert_close(estimator_b(model, x, L, eps=eps), b_samples.mean(0))


def test_estimator_b_has_lower_variance_than_a_here():
    model, x = make_model("bernoulli"), data()
    with torch.no_grad():
        eps = torch.randn(20_000, 1, 6, 3, generator=torch.Generator().manual_seed(4), dtype=torch.double)
        a = torch.stack([estimator_a(model, x, eps=e) for e in eps[:2000]])
        b = torch.stack([estimator_b(model, x, eps=e) for e in eps[:2000]])
    assert (b.var(0) < a.var(0)).all()


def test_estimator_b_terms_are_reconstruction_and_kl():
    model, x = make_model("gaussian"), data()
    eps = torch.randn(4, 6, 3, dtype=torch.double)
    reconstruction, kl = estimator_b_terms(model, x, eps=eps)
    posterior = model.encoder(x)
    torch.testing.assert_close(kl, kl_divergence(posterior, model.prior(posterior.mean)))
    torch.testing.assert_close(reconstruction, model.decoder(reparameterize(posterior, eps)).log_prob(x).mean(0))


def test_minibatch_estimator_is_n_over_m_times_the_sum():
    per_point = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert minibatch_lower_bound(per_point, N=100).item() == pytest.approx(100 / 4 * 10)


def test_importance_weighted_bound_is_estimator_a_at_k1_and_grows_with_k():
    model, x = make_model("bernoulli"), data()
    with torch.no_grad():
        eps = torch.randn(1, 6, 3, dtype=torch.double)
        torch.testing.assert_close(importance_weighted_bound(model, x, 1, eps=eps), estimator_a(model, x, eps=eps))
        g = torch.Generator().manual_seed(5)
        means = []
        for K in (1, 10, 100):
            reps = torch.stack([importance_weighted_bound(model, x, K, generator=g) for _ in range(300)])  # (R, M)
            means.append((reps.mean().item(), reps.mean(1).std().item() / math.sqrt(300)))
    for (low, se_low), (high, se_high) in zip(means, means[1:]):
        assert high > low - 3 * (se_low + se_high)
    assert means[-1][0] > means[0][0] + 3 * (means[0][1] + means[-1][1])  # a clear rise from K = 1 to 100


def test_importance_weighted_bound_chunks_give_the_same_value():
    model, x = make_model("gaussian"), data()
    eps = torch.randn(50, 6, 3, dtype=torch.double)
    with torch.no_grad():
        whole = importance_weighted_bound(model, x, 50, eps=eps)
        chunked = importance_weighted_bound(model, x, 50, eps=eps, max_elements=6 * 12 * 7)  # chunks of 7 samples
    torch.testing.assert_close(whole, chunked)
