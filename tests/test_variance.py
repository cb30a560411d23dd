"""The variance lab against a linear-Gaussian model whose ELBO, gradients and log p(x) have closed forms."""
import math

import numpy as np
import pytest
import torch

from vae_core.models import VAE, ModelConfig
from vae_core.variance import GRADIENT_ESTIMATORS, VarianceConfig, measure_variance

D, J, M = 4, 2, 3


@pytest.fixture(scope="module")
def measured(linear_gaussian):
    model = linear_gaussian.model
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    config = VarianceConfig(batch_size=M, repeats=400, samples=(1, 2, 5, 10, 20, 50, 100), seed=2)
    return model, x, measure_variance(model, x, config, moments=True)


def test_mean_gradients_agree_with_the_closed_form(measured, linear_gaussian):
    model, x, result = measured
    exact = torch.autograd.grad(linear_gaussian.elbo(x), list(model.parameters()))
    names = [n for n, _ in model.named_parameters()]
    phi = torch.cat([g.reshape(-1) for n, g in zip(names, exact) if n.startswith("encoder.")]).numpy()
    theta = torch.cat([g.reshape(-1) for n, g in zip(names, exact) if n.startswith("decoder.")]).numpy()
    for L in (1, 10, 100):
        for estimator in GRADIENT_ESTIMATORS:
            mean, var = result.moments[(estimator, L, "phi")]
            se = np.sqrt(var / 400)
            assert np.all(np.abs(mean - phi) <= 4.5 * se + 1e-9), (estimator, L, mean, phi)
        mean, var = result.moments[("theta", L, "theta")]
        assert np.all(np.abs(mean - theta) <= 4.5 * np.sqrt(var / 400) + 1e-9)


def test_value_means_agree_with_the_closed_form_and_iw_rises_toward_log_px(measured, linear_gaussian):
    model, x, result = measured
    elbo, log_px = linear_gaussian.elbo(x).item(), linear_gaussian.log_px(x).mean().item()
    for row in (r for r in result.rows if r["estimator"] in ("A", "B")):
        assert abs(row["value_mean"] - elbo) < 4.5 * math.sqrt(row["minibatch_value_variance"] / 400)
    L, iw = result.table("value_mean", "iw")
    assert iw[0] == pytest.approx(elbo, abs=4.5 * math.sqrt(result.rows[5]["minibatch_value_variance"] / 400))
    assert iw[-1] > iw[0] + 0.05 and iw[-1] < log_px + 0.01  # tighter with K, never above log p(x)


@pytest.mark.parametrize("key, estimators", [
    ("phi_total_variance", GRADIENT_ESTIMATORS), ("theta_total_variance", ("A",)), ("value_variance", ("A", "B"))])
def test_every_variance_falls_as_one_over_l(measured, key, estimators):
    _, _, result = measured
    for estimator in estimators:
        L, variance = result.table(key, estimator)
        slope = np.polyfit(np.log(L), np.log(variance), 1)[0]
        assert abs(slope + 1) < 0.1, (estimator, key, slope)


def test_b_has_less_variance_than_a_and_the_score_function_far_more(measured):
    _, _, result = measured
    for L in (1, 10, 100):
        row = {r["estimator"]: r for r in result.rows if r["L"] == L}
        assert row["B"]["phi_total_variance"] < row["A"]["phi_total_variance"]
        assert row["B"]["value_variance"] < row["A"]["value_variance"]
        assert row["score"]["phi_total_variance"] > 10 * row["A"]["phi_total_variance"]
        assert row["score-baseline"]["phi_total_variance"] < row["score"]["phi_total_variance"]


def test_vectorised_equals_the_naive_loop():
    model = VAE(ModelConfig(12, 2, (8,), "bernoulli", (3, 4)), generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    config = VarianceConfig(batch_size=4, repeats=6, samples=(1, 3), max_elements=100)  # several chunks
    fast, slow = measure_variance(model, x, config), measure_variance(model, x, config, vectorised=False)
    for a, b in zip(fast.rows, slow.rows):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=1e-6, abs=1e-12), key  # SNR divides by tiny variances


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="every L must be"):
        VarianceConfig(samples=(0, 2)).validate()
    with pytest.raises(ValueError, match="estimators must be among"):
        VarianceConfig(estimators=("C",)).validate()


def test_theta_chart_draws_one_line_whichever_estimators_are_chosen():
    from vae_app.figures import variance_figure
    model = VAE(ModelConfig(12, 2, (8,), "bernoulli", (3, 4)), generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(3))
    result = measure_variance(model, x, VarianceConfig(batch_size=4, repeats=4, samples=(1, 2), estimators=("B", "stl")))
    names = [t.name for t in variance_figure({"m": result}, "gradient wrt θ (decoder)").data]
    assert names == ["all estimators", "1/L"]
    names = [t.name for t in variance_figure({"m": result}, "gradient wrt φ (encoder)").data]
    assert names == ["B", "stl", "1/L"]
