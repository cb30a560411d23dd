"""The latent explorer's engine, the browser decoder's parity with it, and the shipped models."""
import json

import numpy as np
import pytest
import scipy.stats
import torch
from safetensors import safe_open

from vae_app.components import morph_pad_dir, pad_config
from vae_app.sources import shipped_models
from vae_core import runs
from vae_core.latent import LatentSpace
from vae_core.models import VAE, ModelConfig


def random_explorer(likelihood, dataset, shape, J=2, seed=0):
    model = VAE(ModelConfig(shape[0] * shape[1], J, (30,), likelihood, shape))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3, generator=g)
    return LatentSpace(model, dataset)


def numpy_decoder_mean(explorer, z):
    """Appendix C by hand: tanh hidden layer, sigmoid of the (first D) outputs."""
    dec = {k: v.numpy() for k, v in explorer.model.decoder.state_dict().items()}
    h = np.tanh(z @ dec["hidden.0.weight"].T + dec["hidden.0.bias"])
    out = h @ dec["out.weight"].T + dec["out.bias"]
    return 1 / (1 + np.exp(-out[:, :explorer.model.config.data_dim]))


def test_manifold_grid_is_the_inverse_normal_cdf_of_a_linear_grid():
    e = random_explorer("gaussian", "frey", (28, 20))
    images, z = e.manifold(grid=7, edge=0.05)
    expected = scipy.stats.norm.ppf(np.linspace(0.05, 0.95, 7))
    assert images.shape == (49, 28, 20) and z.shape == (49, 2)
    np.testing.assert_allclose(z[:7, 0], expected, atol=1e-6)  # first row: z1 left to right
    np.testing.assert_allclose(z[::7, 1], expected[::-1], atol=1e-6)  # first column: z2 top to bottom
    np.testing.assert_allclose(images.reshape(49, -1), numpy_decoder_mean(e, z), atol=1e-5)


def test_manifold_for_larger_j_moves_two_dims_around_a_base():
    e = random_explorer("bernoulli", "digits", (8, 8), J=4)
    base = np.array([0.5, -0.5, 1.0, 2.0], dtype=np.float32)
    z = e.manifold_latents(grid=3, dims=(1, 3), base=base)
    assert np.allclose(z[:, 0], 0.5) and np.allclose(z[:, 2], 1.0)
    assert len(np.unique(z[:, 1])) == 3 and len(np.unique(z[:, 3])) == 3


def test_interpolation_ends_at_the_two_encodings():
    e = random_explorer("bernoulli", "digits", (8, 8))
    path = e.interpolation(3, 9, steps=5)
    ends = e.decode(e.encode([3, 9]))
    np.testing.assert_allclose(path[[0, -1]], ends, atol=1e-6)
    originals, reconstructions = e.reconstructions([3, 9])
    np.testing.assert_allclose(reconstructions, ends, atol=1e-6)
    assert originals.shape == (2, 8, 8)


def open_pad(chromium, config: str):
    """The morph pad component's page, given its configuration as Streamlit would render it."""
    page = chromium.new_page()
    page.goto((morph_pad_dir() / "index.html").as_uri())
    page.evaluate("config => window.postMessage({type: 'streamlit:render', args: {config}}, '*')", config)
    page.wait_for_function("() => window.vaePad.image() !== null")
    return page


@pytest.mark.parametrize("likelihood, dataset, shape", [("gaussian", "frey", (28, 20)), ("bernoulli", "mnist", (28, 28))])
def test_browser_decode_matches_vae_core_within_1e_4(likelihood, dataset, shape, chromium):
    e = random_explorer(likelihood, dataset, shape, J=3)
    z = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32) * 2
    page = open_pad(chromium, pad_config(e, np.zeros(3), np.eye(3)[:2], np.zeros((1, 2)), None, None, "v"))
    browser_images = np.array(page.evaluate("zs => zs.map(z => Array.from(window.vaePad.decode(z)))", z.tolist()))
    server = e.decode(z).reshape(20, -1)
    assert np.abs(browser_images - server).max() < 1e-4
    assert server.std() > 0.05  # the images differ: the comparison has teeth


@pytest.mark.parametrize("activation, hidden", [("relu", (30, 20)), ("softplus", (25,))])
def test_browser_decodes_other_networks_too(activation, hidden, chromium):
    """Several hidden layers and other activations (issue 21's networks) decode in the browser as in vae_core."""
    model = VAE(ModelConfig(64, 2, hidden, "bernoulli", (8, 8), activation, "default"),
                generator=torch.Generator().manual_seed(0))
    e = LatentSpace(model, "digits")
    z = np.random.default_rng(1).normal(size=(10, 2)).astype(np.float32) * 2
    page = open_pad(chromium, pad_config(e, np.zeros(2), np.eye(2), np.zeros((1, 2)), None, None, "v"))
    browser_images = np.array(page.evaluate("zs => zs.map(z => Array.from(window.vaePad.decode(z)))", z.tolist()))
    assert np.abs(browser_images - e.decode(z).reshape(10, -1)).max() < 1e-4


def test_the_pad_keeps_its_position_while_the_view_stays_and_fits_its_range_to_the_points(chromium):
    e = random_explorer("bernoulli", "digits", (8, 8))
    points = np.array([[-4.5, 0.2], [1.0, 3.9], [0.0, 0.0]])
    config = json.loads(pad_config(e, np.zeros(2), np.eye(2), points, None, np.full((3, 2), 0.3), "live", (1.0, -1.0)))
    assert 4.5 < config["span"] < 6  # the farthest point fits, with a margin: not the old fixed ±3
    page = open_pad(chromium, json.dumps(config))
    assert page.evaluate("() => window.vaePad.position()") == [1.0, -1.0]
    page.evaluate("() => { window.vaePad.position()[0] = 2.5; }")  # as a drag would leave it
    config["decoder"] = json.loads(pad_config(random_explorer("bernoulli", "digits", (8, 8), seed=1), np.zeros(2),
                                              np.eye(2), points, None, None, "live"))["decoder"]  # new live weights
    page.evaluate("config => window.postMessage({type: 'streamlit:render', args: {config}}, '*')", json.dumps(config))
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.vaePad.position()")[0] == 2.5  # kept: the same view
    config["view"] = "another model"
    page.evaluate("config => window.postMessage({type: 'streamlit:render', args: {config}}, '*')", json.dumps(config))
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.vaePad.position()") == [1.0, -1.0]  # a new view starts where it says


@pytest.mark.parametrize("name, dataset, pixels", [("frey-J2", "frey", 560), ("mnist-J2", "mnist", 784)])
def test_shipped_models_are_trained_to_1e7_with_a_model_card(name, dataset, pixels):
    path = shipped_models()[name]
    with safe_open(str(path), framework="pt") as f:
        metadata = {k: json.loads(v) for k, v in f.metadata().items()}
    assert metadata["dataset"] == dataset and metadata["samples_evaluated"] >= 10**7
    assert metadata["model_config"]["latent_dim"] == 2 and metadata["model_config"]["data_dim"] == pixels
    card = path.with_suffix(".md").read_text()
    assert "python -m vae_core train" in card and f"{metadata['test_lower_bound']:.2f}" in card
    assert path.stat().st_size < 4_000_000


def test_shipped_frey_model_scores_as_its_card_says(data_dir, monkeypatch):
    from vae_core.evaluation import dataset_lower_bound
    monkeypatch.setenv("VAE_DATA_DIR", str(data_dir))
    path = shipped_models()["frey-J2"]
    model, metadata = runs.load_model(path)
    e = LatentSpace(model, "frey")
    bound = dataset_lower_bound(model, torch.tensor(e._test.test), torch.Generator().manual_seed(0))[0]
    assert bound == pytest.approx(metadata["test_lower_bound"], abs=3.0)  # fresh noise, same model
