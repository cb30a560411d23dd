"""The Home page's views."""
from __future__ import annotations

import pandas as pd

from vae_core import data


def dataset_table(data_dir: str | None = None) -> pd.DataFrame:
    """One row per dataset: whether it is on this machine, where, or how to get it."""
    rows = []
    for name, where in data.availability(data_dir).items():
        found = not where.startswith("missing")
        rows.append({"dataset": name, "available": found,
                     "where": where if found else f"missing: run `python -m vae_core data --dataset {name}` or set VAE_DATA_DIR"})
    return pd.DataFrame(rows)
