"""The training step's hand-derived gradients against autograd of the distribution-based estimators."""
import pytest
import torch

from vae_core.estimators import ESTIMATORS, estimator_b_terms
from vae_core.fast_step import FlatParameters, lower_bound_gradient
from vae_core.models import VAE, ModelConfig


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("estimator", ["A", "B"])
@pytest.mark.parametrize("L", [1, 4])
def test_gradient_and_values_match_autograd(likelihood, estimator, L):
    torch.manual_seed(0)
    model = VAE(ModelConfig(12, 3, 7, likelihood, (3, 4))).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    x = torch.rand(5, 12, dtype=torch.double)
    eps = torch.randn(L, 5, 3, dtype=torch.double)
    loss = -ESTIMATORS[estimator](model, x, L, eps=eps).mean()
    loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    flat = FlatParameters(model)
    values = lower_bound_gradient(model, x, eps, estimator, flat.grads, with_values=True)
    for ours, reference in zip(flat.grads, expected):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    assert values.lower_bound == pytest.approx(-loss.item(), abs=1e-10)
    reconstruction, kl = estimator_b_terms(model, x, L, eps=eps)
    assert values.reconstruction == pytest.approx(reconstruction.mean().item(), abs=1e-10)
    if estimator == "B":
        assert values.kl == pytest.approx(kl.mean().item(), abs=1e-10)


def test_flat_parameters_share_storage_with_the_model():
    model = VAE(ModelConfig(6, 2, 4, "bernoulli", (2, 3)))
    before = [p.detach().clone() for p in model.parameters()]
    flat = FlatParameters(model)
    assert flat.flat.numel() == sum(p.numel() for p in before)
    for p, b in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), b)  # values kept
    with torch.no_grad():
        flat.flat.add_(1.0)
    torch.testing.assert_close(model.encoder.to_hidden.weight.detach(), before[0] + 1.0)
