"""The Estimator variance page's views: the settings from the form, the measurements (jobs in processes of their
own, cached per model version and settings, each result without the per-parameter moments), and what they say."""
from __future__ import annotations

import math

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
    """What the measurements say: B against A, the score function against both, and a word where a result
    surprises a reader of the paper."""
    lines = []
    for name, result in results.items():
        rows = {(r["estimator"], r["L"]): r for r in result.rows}
        R = result.settings["R"]
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
        if any(rows.get(("B", L)) and rows.get(("A", L)) and rows[("B", L)]["value_variance"] > rows[("A", L)]["value_variance"]
               for L in result.settings["L"]):
            lines.append("  - *B's value varies more than A's here.* That is expected of a trained model: in A the "
                         "sampled log p(x|z) and log p(z) - log q(z|x) move together and largely cancel (near the "
                         "optimum their sum is nearly log p(x)), while B keeps only the sampled reconstruction term, "
                         "with nothing to cancel it. The paper's claim is about the gradient, where B's KL in closed "
                         "form does lower the variance.")
        floor = 1 / math.sqrt(R)
        if any(r["estimator"] == "score" and r.get("phi_snr") is not None and r["phi_snr"] < 2 * floor for r in result.rows):
            lines.append(f"  - *The score function's signal-to-noise ratio sits near 1/√R = {floor:.3f}.* That is the "
                         f"floor of {R} replicates: an estimate whose mean is far below its spread shows |mean|/std of "
                         f"about 1/√R, whatever its true signal. Its signal is too small to see with {R} replicates.")
    return "\n".join(lines)
