"""Fixtures shared by the test modules: the real data, a headless Chromium, and a clean digits run."""
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
