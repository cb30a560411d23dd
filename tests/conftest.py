import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The verified copies of MNIST and Frey Face; CI sets VAE_DATA_DIR, so these tests never skip there."""
    path = Path(os.environ.get("VAE_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "mnist").is_dir() or not (path / "frey").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data is required in CI but {path} lacks mnist/ or frey/")
        pytest.skip(f"no real data at {path}; set VAE_DATA_DIR")
    return path
