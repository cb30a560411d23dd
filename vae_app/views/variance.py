"""The Estimator variance page's views: the settings from the form, the measurements (jobs in processes of their
own, cached per model version and settings, each result without the per-parameter moments), and what they say."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from vae_core import variance as lab

from .. import jobs
from ..sources import Source


def variance_settings(M, R, Ls: str, estimators) -> lab.VarianceConfig:
    try:
        samples = tuple(int(v) for v in Ls.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"the values of L must be whole numbers separated by spaces, got {Ls!r}") from None
    config = lab.VarianceConfig(batch_size=int(M), repeats=int(R), samples=samples, estimators=tuple(estimators))
    config.validate()
    return config


@st.cache_resource(max_entries=16, show_spinner=False)
def _job(key: tuple, settings_key: str, _source: Source, _settings: lab.VarianceConfig) -> jobs.Job:
    return jobs.measure_variance(_source, _settings)


def measurement(source: Source, settings: lab.VarianceConfig) -> jobs.Job:
    """The measurement of this model version with these settings: started once, then shared by every rerun and
    session. A failed one is forgotten once seen, so that asking again tries again."""
    job = _job(source.key, repr(settings), source, settings)
    if job.error is not None:
        _job.clear(source.key, repr(settings), source, settings)
    return job


def variance_table(results: dict[str, lab.VarianceResult]) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, **row} for name, result in results.items() for row in result.rows])


def variance_summary(results: dict[str, lab.VarianceResult]) -> str:
    """A few sentences read off the measurements: B against A, and the score function against both."""
    lines = []
    for name, result in results.items():
        rows = {(r["estimator"], r["L"]): r for r in result.rows}
        for L in result.settings["L"][:1] + result.settings["L"][-1:]:
            a, b, score = rows.get(("A", L)), rows.get(("B", L)), rows.get(("score", L))
            parts = []
            if a and b:
                parts.append(f"B/A variance: value {b['value_variance'] / a['value_variance']:.3g}, "
                             f"∇φ {b['phi_total_variance'] / a['phi_total_variance']:.3g}")
            if a and score:
                parts.append(f"score/A ∇φ variance {score['phi_total_variance'] / a['phi_total_variance']:.3g}")
            if parts:
                lines.append(f"- **{name}**, L = {L}: " + "; ".join(parts))
    return "\n".join(lines)
