"""Fixtures shared by the test modules: the real data, a headless Chromium, and a clean digits run."""
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from vae_core.models import VAE, DiagonalGaussian, ModelConfig

REPO = Path(__file__).resolve().parents[1]
# How long a test waits for something that takes seconds on an idle machine before it gives up: long enough that
# no load decides a test. Waits poll and go on as soon as the thing has happened; none asserts a duration.
PATIENCE = 600.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The verified copies of MNIST and Frey Face; CI sets VAE_DATA_DIR, so these tests never skip there."""
    path = Path(os.environ.get("VAE_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
    if not (path / "mnist").is_dir() or not (path / "frey").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data is required in CI but {path} lacks mnist/ or frey/")
        pytest.skip(f"no real data at {path}; set VAE_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def chromium():
    """A headless Chromium (Debian's, driven by Playwright); CI installs it, so it never skips there."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("no chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class LinearGaussian:
    """A VAE whose encoder and decoder are linear-Gaussian: its ELBO, its gradients, log p(x) and the posterior
    p(z|x) all have closed forms, against which estimators, the variance lab and HMC are tested."""
    D, J = 4, 2

    def __init__(self):
        D, J = self.D, self.J

        class LinearEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.to_mean = nn.Linear(D, J)
                self.logvar = nn.Parameter(torch.tensor([-0.7, 0.4], dtype=torch.float64))

            def forward(self, x):
                return DiagonalGaussian(self.to_mean(x), self.logvar.expand(*x.shape[:-1], J))

        class LinearGaussianDecoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.to_mean = nn.Linear(J, D)
                self.logvar = nn.Parameter(torch.tensor([0.2, -0.3, 0.5, -0.1], dtype=torch.float64))

            def forward(self, z):
                return DiagonalGaussian(self.to_mean(z), self.logvar.expand(*z.shape[:-1], D))

        self.model = VAE(ModelConfig(D, J, (1,), "gaussian", (1, D))).double()
        self.model.encoder, self.model.decoder = LinearEncoder().double(), LinearGaussianDecoder().double()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if "to_mean" in name:
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.7)

    def elbo(self, x):
        """Per-datapoint mean of E_q[log N(x; A z + b, diag s)] - KL(q || N(0, I)), exactly."""
        enc, dec = self.model.encoder, self.model.decoder
        m, v = enc.to_mean(x), enc.logvar.exp()  # (M, J), (J,)
        A, b, s = dec.to_mean.weight, dec.to_mean.bias, dec.logvar.exp()
        residual = x - (m @ A.T + b)  # (M, D)
        expected_log_lik = (-0.5 * torch.log(2 * math.pi * s) - (residual.square() + (A.square() * v).sum(1)) / (2 * s)).sum(-1)
        kl = 0.5 * (v + m.square() - 1 - enc.logvar).sum(-1)  # Appendix B
        return (expected_log_lik - kl).mean()

    def log_px(self, x):
        """log p(x) per datapoint: x ~ N(b, A Aᵀ + diag s)."""
        dec = self.model.decoder
        A, b, s = dec.to_mean.weight, dec.to_mean.bias, dec.logvar.exp()
        return torch.distributions.MultivariateNormal(b, A @ A.T + torch.diag(s)).log_prob(x)

    def posterior(self, x):
        """p(z|x) = N(m, P⁻¹) with P = I + Aᵀ S⁻¹ A and m = P⁻¹ Aᵀ S⁻¹ (x - b): means (M, J) and covariance (J, J)."""
        dec = self.model.decoder
        A, b, s = dec.to_mean.weight.detach(), dec.to_mean.bias.detach(), dec.logvar.exp().detach()
        covariance = torch.linalg.inv(torch.eye(self.J, dtype=A.dtype) + A.T @ (A / s[:, None]))
        means = (x - b) / s @ A @ covariance
        return means, covariance


@pytest.fixture(scope="session")
def linear_gaussian() -> LinearGaussian:
    return LinearGaussian()


def wait_until(condition, what: str, poll: float = 0.2, between=None) -> None:
    """Polls `condition` (calling `between` after each miss) until it holds; fails naming `what` after PATIENCE."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE:.0f} s for {what}"
        time.sleep(poll)
        if between is not None:
            between()


def pytest_collection_modifyitems(items):
    """Markers from what a test uses: the real data, Chromium, Ray (`slow` and `cuda` are set by hand, on the
    tests); a `cuda` test is skipped where PyTorch sees no GPU."""
    no_gpu = pytest.mark.skip(reason="no CUDA GPU here (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"data_dir", "app_with_data"}:
            item.add_marker(pytest.mark.data)
        if "chromium" in fixtures:
            item.add_marker(pytest.mark.browser)
        if item.module.__name__ == "test_sweep":
            item.add_marker(pytest.mark.ray)


def open_tab(app, label: str) -> None:
    """Opens a tab of the Latent explorer, as a click on it does: only the open tab is drawn."""
    from vae_app import session
    key = session.EXPLORER_TAB if label in session_tabs("image") else session.EXPLORER_VECTOR_TAB
    app.session_state[key] = label
    app.run()


def session_tabs(kind: str) -> list[str]:
    return (["Morph pad", "Manifold (Fig. 4)", "Interpolation", "Samples (Fig. 5)", "Reconstructions", "Latent scatter"]
            if kind == "image" else ["Decoder", "Samples", "Reconstructions", "Latent scatter"])
