"""The variance lab against a linear-Gaussian model whose ELBO, gradients and log p(x) have closed forms."""
import math

import numpy as np
import pytest
import torch

from vae_core.models import VAE, ModelConfig
from vae_core.variance import GRADIENT_ESTIMATORS, REPLICATE_PASSES, VarianceConfig, measure_variance, snr_slopes

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


@pytest.fixture(scope="module")
def tradeoff(linear_gaussian):
    """The k trade-off on the linear-Gaussian model with q put near its exact posterior: the mean off by (1, -0.7)
    and the variance 1.5 times the posterior's largest, so that q is wider than p(z|x) in every direction and the
    importance weights are bounded (every moment finite: the asymptotic regime of the papers, from K ≈ 30 here)."""
    import copy

    from vae_core.variance import measure_iw_tradeoff
    model = copy.deepcopy(linear_gaussian.model)
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dec = model.decoder
    A, b, s = dec.to_mean.weight.detach(), dec.to_mean.bias.detach(), dec.logvar.exp().detach()
    _, covariance = linear_gaussian.posterior(x)
    W = covariance @ A.T / s  # the posterior mean is W (x - b)
    with torch.no_grad():
        model.encoder.to_mean.weight.copy_(W)
        model.encoder.to_mean.bias.copy_(-W @ b + torch.tensor([1.0, -0.7], dtype=torch.float64))
        model.encoder.logvar.fill_(math.log(1.5 * torch.linalg.eigvalsh(covariance).max().item()))
    config = VarianceConfig(batch_size=M, repeats=2000, samples=(30, 100, 300, 1000), seed=2)
    return measure_iw_tradeoff(model, x, config), linear_gaussian.log_px(x).mean().item()


def _asymptotic_exponent(result, key, estimator):
    """b of log SNR = a + b log K + c/K (the first correction to the power law) fitted by weighted least squares to
    the measured SNRs and their errors, with b's standard error."""
    rows = [r for r in result.rows if r["estimator"] == estimator]
    K = np.array([r["K"] for r in rows], dtype=float)
    y = np.log([r[key] for r in rows])
    weight = (np.array([r[key] for r in rows]) / np.array([r[key + "_error"] for r in rows])) ** 2
    X = np.stack([np.ones_like(K), np.log(K), 1 / K], 1)
    covariance = np.linalg.inv(X.T @ (X * weight[:, None]))
    return (covariance @ (X.T @ (weight * y)))[1], math.sqrt(covariance[1, 1])


@pytest.mark.slow
def test_the_snrs_follow_root_k_and_one_over_root_k_within_their_error(tradeoff):
    """Rainforth et al. (2018): the decoder's gradient SNR rises like √K, the IWAE encoder's falls like 1/√K; Tucker
    et al. (2019): DReG's encoder SNR rises like √K. Each exponent, fitted with its 1/K correction, within three
    standard errors of ±1/2; the plain log-log slope of the IWAE encoder too (its SNR is small, near the floor of
    R = 2000 replicates, so its error is the largest). And the bound rises toward log p(x) with K."""
    result, log_px = tradeoff
    for key, estimator, expected in (("theta_snr", "iwae", 0.5), ("phi_snr", "dreg", 0.5), ("phi_snr", "iwae", -0.5)):
        b, error = _asymptotic_exponent(result, key, estimator)
        assert abs(b - expected) < 3 * error, (key, estimator, b, error)
    slopes = snr_slopes(result)
    assert abs(slopes["iwae"]["phi"] + 0.5) < 3 * slopes["iwae"]["phi_error"] and slopes["iwae"]["phi_error"] < 0.1
    assert slopes["iwae"]["theta"] == pytest.approx(slopes["dreg"]["theta"], rel=1e-9)  # DReG changes the encoder's gradient only
    for row in result.rows:
        assert row["estimator"] == "iwae" or row["phi_snr"] > 10 * row["phi_snr_error"]
    _, bound = result.table("value_mean", "iwae", x="K")
    assert bound == sorted(bound) and log_px - 0.01 < bound[-1] < log_px + 0.005


def test_the_tradeoff_vectorised_equals_the_naive_loop():
    from vae_core.variance import measure_iw_tradeoff
    model = VAE(ModelConfig(12, 2, (8,), "bernoulli", (3, 4)), generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    config = VarianceConfig(batch_size=4, repeats=6, samples=(1, 3), max_elements=100)  # several chunks
    fast, slow = measure_iw_tradeoff(model, x, config, groups=3), measure_iw_tradeoff(model, x, config, vectorised=False,
                                                                                    groups=3)
    assert [(r["estimator"], r["K"]) for r in fast.rows] == [("iwae", 1), ("dreg", 1), ("iwae", 3), ("dreg", 3)]
    for a, b in zip(fast.rows, slow.rows):
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=1e-6, abs=1e-12), key


def test_the_total_variances_degrees_of_freedom_give_its_spread():
    """Satterthwaite's degrees of freedom of a total variance against Monte Carlo: over 400 repetitions of R = 50
    replicates of a gradient of 30 parameters with very different variances, the spread of log(total) is about
    sqrt(2 / dof), and dof lies between R - 1 (one parameter) and 30 (R - 1) (all equal)."""
    from vae_core.variance import _Moments
    generator = torch.Generator().manual_seed(0)
    scales = torch.logspace(-1, 1, 30, dtype=torch.float64)  # standard deviations from 0.1 to 10
    logs, dofs = [], []
    for _ in range(400):
        moments = _Moments()
        moments.add([torch.randn(50, 30, generator=generator, dtype=torch.float64) * scales])
        summary = moments.summary()
        logs.append(math.log(summary["total_variance"]))
        dofs.append(summary["total_variance_dof"])
    dof = sum(dofs) / len(dofs)
    assert 49 < dof < 30 * 49
    assert abs(torch.tensor(logs).std().item() / math.sqrt(2 / dof) - 1) < 0.15


def test_progress_follows_the_cost_of_each_L_not_their_count(linear_gaussian):
    """The largest L is most of the work: progress must say so, or the time left shrinks before the slowest part."""
    model = linear_gaussian.model
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    config = VarianceConfig(batch_size=M, repeats=4, samples=(1, 10, 100))
    reported: list[float] = []
    measure_variance(model, x, config, progress=reported.append)
    work = config.work(model)
    P = model.config.parameter_count()
    assert work == [4 * 6 * (L * M + REPLICATE_PASSES) * P for L in (1, 10, 100)]  # R x (5 estimators and ∇θ) x ...
    assert reported[0] == 0.0 and reported[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(reported[1:], np.cumsum(work) / sum(work))
    assert reported[2] == pytest.approx((3 + 30 + 2 * REPLICATE_PASSES) / (3 + 30 + 300 + 3 * REPLICATE_PASSES))

