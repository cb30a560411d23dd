"""The training step's hand-derived gradients against autograd of the distribution-based estimators, and the two
AEVB steps (fast and autograd) against each other."""
import pytest
import torch
from torch.nn import functional as F

from vae_core import fast_step
from vae_core.algorithms import AEVB, Minibatch, WakeSleep
from vae_core.config import TrainConfig
from vae_core.estimators import ESTIMATORS, estimator_b_terms
from vae_core.fast_step import FlatParameters, _linear, lower_bound_gradient
from vae_core.models import VAE, ModelConfig


def random_model(config: ModelConfig, std: float, seed: int, dtype=torch.float32) -> VAE:
    """A model whose every parameter is N(0, std²), so that every gradient has teeth (the paper's 0.01 would not)."""
    torch.manual_seed(seed)
    model = VAE(config).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("estimator", ["A", "B"])
@pytest.mark.parametrize("L", [1, 4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32 on the CPU takes the oneDNN products
@pytest.mark.parametrize("activation, hidden", [("tanh", (7,)), ("relu", (7,)), ("softplus", (7,)), ("tanh", (7, 5)),
                                                ("relu", (6, 5, 4))])
def test_gradient_and_values_match_autograd(likelihood, estimator, L, dtype, activation, hidden, monkeypatch):
    monkeypatch.setattr(fast_step, "_ONEDNN_MIN_WIDTH", 1)  # every weight gradient through oneDNN in float32
    model = random_model(ModelConfig(12, 3, hidden, likelihood, (3, 4), activation), std=0.5, seed=0, dtype=torch.double)
    x = torch.rand(5, 12, dtype=torch.double)
    eps = torch.randn(L, 5, 3, dtype=torch.double)
    loss = -ESTIMATORS[estimator](model, x, L, eps=eps).mean()  # the reference, always in float64
    loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    reconstruction, kl = estimator_b_terms(model, x, L, eps=eps)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    model = model.to(dtype)
    flat = FlatParameters(model)
    values = lower_bound_gradient(model, x.to(dtype), eps.to(dtype), estimator, flat.grads, with_values=True)
    assert flat.grads.keys() == expected.keys()
    for name, reference in expected.items():
        torch.testing.assert_close(flat.grads[name].double(), reference, rtol=tolerance, atol=tolerance)
    assert values.lower_bound == pytest.approx(-loss.item(), abs=tolerance * 10)
    assert values.reconstruction == pytest.approx(reconstruction.mean().item(), abs=tolerance * 10)
    if estimator == "B":
        assert values.kl == pytest.approx(kl.mean().item(), abs=tolerance * 10)


@pytest.mark.parametrize("activation", ["none", "tanh", "relu", "softplus"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_the_layer_it_stands_for(activation, bias):
    torch.manual_seed(0)
    layer = torch.nn.Linear(30, 20, bias=bias)
    x = torch.randn(8, 30)
    expected = {"none": lambda t: t, "tanh": torch.tanh, "relu": torch.relu, "softplus": F.softplus}[activation](layer(x))
    torch.testing.assert_close(_linear(x, layer.weight.detach(), layer.bias, activation), expected.detach())
    # the backward use: a product with a transposed weight view
    torch.testing.assert_close(_linear(expected.detach(), layer.weight.detach().t(), None),
                               expected.detach() @ layer.weight.detach())


def test_flat_parameters_share_storage_with_the_model():
    model = VAE(ModelConfig(6, 2, (4,), "bernoulli", (2, 3)))
    before = [p.detach().clone() for p in model.parameters()]
    flat = FlatParameters(model)
    assert flat.flat.numel() == sum(p.numel() for p in before)
    for p, b in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), b)  # values kept
    with torch.no_grad():
        flat.flat.add_(1.0)
    torch.testing.assert_close(model.encoder.hidden[0].weight.detach(), before[0] + 1.0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("estimator", ["A", "B"])
@pytest.mark.parametrize("L", [1, 3])
def test_the_two_aevb_steps_write_the_same_gradient_and_values(likelihood, estimator, L, monkeypatch):
    """`--step fast` and `--step autograd` compute one gradient: on the paper's network in float32, as trained."""
    monkeypatch.setattr(fast_step, "_ONEDNN_MIN_WIDTH", 1)  # the weight gradients of wide layers, at this size
    model = random_model(ModelConfig(20, 3, (9,), likelihood, (4, 5)), std=0.3, seed=1)
    config = TrainConfig(estimator=estimator, samples_per_point=L)
    batch = Minibatch(torch.rand(6, 20), torch.arange(6))
    eps = {"eps": torch.randn(L, 6, 3)}
    flat = FlatParameters(model)
    steps = {}
    for algorithm in (AEVB(model, config, 6, "fast"), AEVB(model, config, 6, "autograd")):
        values = algorithm.gradient(batch, eps, flat.grads, with_values=True)
        steps[algorithm.step] = ({k: v.clone() for k, v in flat.grads.items()}, values)
        flat.flat.grad.zero_()
    (fast, fast_values), (auto, auto_values) = steps["fast"], steps["autograd"]
    assert any(v.abs().max() > 1e-3 for v in fast.values())  # a gradient with teeth
    for name in fast:
        torch.testing.assert_close(fast[name], auto[name], rtol=1e-4, atol=1e-5)
    for field in ("lower_bound", "reconstruction", "kl"):
        assert getattr(fast_values, field) == pytest.approx(getattr(auto_values, field), rel=1e-5, abs=1e-4)


def wake_sleep_reference(model, x, eps, z_dream, x_noise):
    """The wake and sleep objectives written from the definitions with torch.distributions, and their gradients
    by autograd: wake -(1/(L M)) Σ log p_θ(x|z), z ~ q(z|x) without a path; sleep -(1/M) Σ log q_φ(z_d|x_d)."""
    from torch.distributions import Bernoulli, Normal
    enc, dec = model.encoder, model.decoder

    def decoder_distribution(z):
        out = dec.out(torch.tanh(dec.hidden[0](z)))
        if model.config.likelihood == "bernoulli":
            return Bernoulli(logits=out, validate_args=False), torch.sigmoid(out)  # grey pixels: the cross-entropy
        mean_logits, logvar = out.chunk(2, -1)
        return Normal(torch.sigmoid(mean_logits), (0.5 * logvar).exp()), None

    mean, logvar = enc.out(torch.tanh(enc.hidden[0](x))).chunk(2, -1)
    z = (mean + (0.5 * logvar).exp() * eps).detach()
    wake = -decoder_distribution(z)[0].log_prob(x).sum(-1).mean()
    with torch.no_grad():
        px, probs = decoder_distribution(z_dream)
        x_dream = (x_noise < probs).double() if probs is not None else (px.mean + px.stddev * x_noise).clamp(0, 1)
    d_mean, d_logvar = enc.out(torch.tanh(enc.hidden[0](x_dream))).chunk(2, -1)
    sleep = -Normal(d_mean, (0.5 * d_logvar).exp()).log_prob(z_dream).sum(-1).mean()
    (wake + sleep).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("L", [1, 3])
def test_wake_and_sleep_gradients_match_autograd_of_their_objectives(likelihood, L):
    from vae_core.fast_step import wake_sleep_gradient
    # tanh: the reference below writes tanh
    model = random_model(ModelConfig(12, 3, (7,), likelihood, (3, 4)), std=0.5, seed=2, dtype=torch.double)
    x = torch.rand(5, 12, dtype=torch.double)
    eps, z_dream = torch.randn(L, 5, 3, dtype=torch.double), torch.randn(5, 3, dtype=torch.double)
    x_noise = torch.rand(5, 12, dtype=torch.double) if likelihood == "bernoulli" else torch.randn(5, 12, dtype=torch.double)
    expected = wake_sleep_reference(model, x, eps, z_dream, x_noise)
    flat = FlatParameters(model)
    wake_sleep_gradient(model, x, eps, z_dream, x_noise, flat.grads)
    for name, reference in expected.items():
        torch.testing.assert_close(flat.grads[name], reference, rtol=1e-10, atol=1e-10)
    # The wake phase trains only θ, the sleep phase only φ: each half of the buffer is its phase's.
    assert all(v.abs().max() > 0 for v in flat.grads.values())


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_two_wake_sleep_steps_write_the_same_gradient_and_values(likelihood, monkeypatch):
    monkeypatch.setattr(fast_step, "_ONEDNN_MIN_WIDTH", 1)  # the weight gradients of wide layers, at this size
    model = random_model(ModelConfig(20, 3, (9,), likelihood, (4, 5)), std=0.3, seed=3)
    config = TrainConfig(algorithm="wake-sleep", samples_per_point=2)
    batch = Minibatch(torch.rand(6, 20), torch.arange(6))
    noise = WakeSleep(model, config, 6, "fast").draw_noise(batch, torch.Generator().manual_seed(0))
    assert noise["eps"].shape == (2, 6, 3) and noise["z_dream"].shape == (6, 3) and noise["x_noise"].shape == (6, 20)
    flat = FlatParameters(model)
    results = []
    for algorithm in (WakeSleep(model, config, 6, "fast"), WakeSleep(model, config, 6, "autograd")):
        values = algorithm.gradient(batch, noise, flat.grads, with_values=True)
        results.append(({k: v.clone() for k, v in flat.grads.items()}, values))
        flat.flat.grad.zero_()
    (fast, fast_values), (auto, auto_values) = results
    for name in fast:
        torch.testing.assert_close(fast[name], auto[name], rtol=1e-4, atol=1e-5)
    assert fast_values.lower_bound == pytest.approx(auto_values.lower_bound, rel=1e-5)
    assert fast_values.kl == pytest.approx(auto_values.kl, rel=1e-5)
