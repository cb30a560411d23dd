"""The Home page's views."""
from __future__ import annotations

import pandas as pd

from vae_core import data


def dataset_table(data_dir: str | None = None) -> pd.DataFrame:
    """One row per dataset: what it is (its spec), whether it is on this machine, where, or how to get it."""
    rows = []
    for name, where in data.availability(data_dir).items():
        found, spec = not where.startswith("missing"), data.dataset_spec(name)
        rows.append({"dataset": name, "name": spec.title, "image": "x".join(map(str, spec.image_shape)),
                     "training points": spec.train_size, "decoder p(x|z)": spec.likelihood,
                     "the paper's hidden units": " ".join(map(str, spec.hidden)), "available": found,
                     "where": where if found else f"missing: run `python -m vae_core data --dataset {name}` or set VAE_DATA_DIR"})
    return pd.DataFrame(rows)
