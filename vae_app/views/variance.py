"""The Estimator variance page's views: the settings from the form, the measurements (jobs in processes of their
own, cached per model version and settings, each result without the per-parameter moments), and what they say."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from vae_core import variance as lab
from vae_core.formatting import format_duration
from vae_core.runs import RunError

from .. import forms, jobs
from ..sources import Source
from .explorer import latent_space


def variance_settings(M, R, Ls: str, estimators=lab.GRADIENT_ESTIMATORS, letter: str = "L") -> lab.VarianceConfig:
    """The settings from the form: the values of L (or, for the k trade-off, of K) as the text typed."""
    try:
        samples = tuple(int(v) for v in Ls.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"the values of {letter} must be whole numbers separated by spaces, got {Ls!r}") from None
    config = lab.VarianceConfig(batch_size=forms.parse_number("Minibatch M", str(M)),
                                repeats=forms.parse_number("Replicates R", str(R)), samples=samples,
                                estimators=tuple(estimators))
    config.validate()
    return config


DEFAULT_SETTINGS = lab.VarianceConfig()  # what the form shows before any result


def form_values(settings: lab.VarianceConfig) -> dict:
    """The page's form fields (by key) showing `settings`."""
    return {"M": str(settings.batch_size), "R": str(settings.repeats), "L": " ".join(map(str, settings.samples)),
            "estimators": list(settings.estimators)}


@st.cache_resource(max_entries=16, show_spinner=False)
def _job(key: tuple, settings_key: str, tradeoff: bool, _source: Source, _settings: lab.VarianceConfig) -> jobs.Job:
    return (jobs.measure_iw_tradeoff if tradeoff else jobs.measure_variance)(_source, _settings)


@st.cache_resource(show_spinner=False)
def _paces() -> dict[bool, float]:
    """Seconds per sample pass (VarianceConfig.work) of this server's last finished measurement, for the lab and the
    k trade-off: the pace that the cost of the next one is estimated at, before it starts."""
    return {}


def measurement(source: Source, settings: lab.VarianceConfig, tradeoff: bool = False) -> jobs.Job:
    """The measurement of this model version with these settings (with `tradeoff`, the k trade-off's): started once,
    then shared by every rerun and session. A failed one is forgotten once seen, so that asking again tries again."""
    job = _job(source.key, repr(settings), tradeoff, source, settings)
    if job.error is not None:
        _job.clear(source.key, repr(settings), tradeoff, source, settings)
    if job.pace is not None:
        _paces()[tradeoff] = job.pace
    return job


def cost_caption(source: Source, fields: tuple, tradeoff: bool = False) -> None:
    """Under a form: `cost_said` for the settings its fields (M, R, the values of L or K[, the estimators]) hold;
    nothing for settings that Compute would refuse (it says why)."""
    try:
        settings = variance_settings(*fields, letter="K" if tradeoff else "L")
    except ValueError:
        return
    said = cost_said(source, settings, tradeoff)
    if said:
        st.caption(said)


def cost_said(source: Source, settings: lab.VarianceConfig, tradeoff: bool = False) -> str:
    """What the settings will cost on this model, before they run: the time at this server's last measured pace,
    or, before any, the work against the defaults'; settings the model cannot take are said by Compute."""
    try:
        model = latent_space(source).model
    except (RunError, OSError):  # a damaged model file: Compute says why
        return ""
    if settings.problems(model):
        return ""
    work = sum(settings.work(model, tradeoff))
    pace = _paces().get(tradeoff)
    if pace is not None:
        return (f"These settings take about {format_duration(work * pace)} on this model, at the pace of this "
                f"server's last measurement (plus a few seconds to start).")
    defaults = lab.VarianceConfig(samples=lab.TRADEOFF_K) if tradeoff else DEFAULT_SETTINGS
    return (f"These settings are {work / sum(defaults.work(model, tradeoff)):.2g}x the work of the defaults on this "
            f"model; the time left is shown as soon as the first values are measured.")


def variance_table(results: dict[str, lab.VarianceResult]) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, **row} for name, result in results.items() for row in result.rows])


def variance_ratio(numerator: dict, denominator: dict, part: str = "phi") -> tuple[float, float, float]:
    """The ratio of two rows' total gradient variances and its 95% interval, from each total's degrees of freedom
    (treating the two as independent, which overstates the spread of estimators that share their noise ε)."""
    ratio = numerator[f"{part}_total_variance"] / denominator[f"{part}_total_variance"]
    spread = 1.96 * math.sqrt(2 / numerator[f"{part}_total_variance_dof"] + 2 / denominator[f"{part}_total_variance_dof"])
    return ratio, ratio * math.exp(-spread), ratio * math.exp(spread)


def compared(ratio: tuple[float, float, float]) -> str:
    """What a ratio with its interval says: below 1, above 1, or not told apart by the replicates."""
    value, low, high = ratio
    verdict = "lower" if high < 1 else "higher" if low > 1 else "not told apart from A's with these replicates"
    return f"{verdict} ({value:.3g}, 95% interval {low:.3g} to {high:.3g})"


def variance_summary(results: dict[str, lab.VarianceResult]) -> str:
    """What the measurements say: B against A, the score function against both, and a word where a result
    surprises a reader of the paper; each comparison of two noisy figures with its interval."""
    lines = []
    for name, result in results.items():
        rows = {(r["estimator"], r["L"]): r for r in result.rows}
        R = result.settings["R"]
        for L in result.settings["L"][:1] + result.settings["L"][-1:]:
            a, b, score = rows.get(("A", L)), rows.get(("B", L)), rows.get(("score", L))
            parts = []
            if a and b:
                parts.append(f"B/A variance: value {b['value_variance'] / a['value_variance']:.3g}, "
                             f"∇φ {compared(variance_ratio(b, a))}")
            if a and score:
                parts.append(f"score/A ∇φ variance {score['phi_total_variance'] / a['phi_total_variance']:.3g}")
            if parts:
                lines.append(f"- **{name}**, L = {L}: " + "; ".join(parts))
        both = [L for L in result.settings["L"] if rows.get(("B", L)) and rows.get(("A", L))]
        if any(rows[("B", L)]["value_variance"] > rows[("A", L)]["value_variance"] for L in both):
            L = both[0]
            lines.append("  - *B's value varies more than A's here.* That is expected of a trained model: in A the "
                         "sampled log p(x|z) and log p(z) - log q(z|x) move together and largely cancel (near the "
                         "optimum their sum is nearly log p(x)), while B keeps only the sampled reconstruction term, "
                         "with nothing to cancel it. The paper's claim is about the gradient: B's ∇φ variance at "
                         f"L = {L} is {compared(variance_ratio(rows[('B', L)], rows[('A', L)]))}.")
        floor = 1 / math.sqrt(R)
        if any(r["estimator"] == "score" and r.get("phi_snr") is not None and r["phi_snr"] < 2 * floor for r in result.rows):
            lines.append(f"  - *The score function's signal-to-noise ratio sits near 1/√R = {floor:.3f}.* That is the "
                         f"floor of {R} replicates: an estimate whose mean is far below its spread shows |mean|/std of "
                         f"about 1/√R, whatever its true signal. Its signal is too small to see with {R} replicates.")
    return "\n".join(lines)


def settings_said(result: lab.VarianceResult) -> str:
    """The settings a result was measured with, as the page states them under it."""
    s = result.settings
    varied = f"L = {' '.join(map(str, s['L']))}" if "L" in s else f"K = {' '.join(map(str, s['K']))}"
    estimators = f", estimators {', '.join(s['estimators'])}" if s.get("estimators") else ""
    return f"Measured with M = {s['M']}, R = {s['R']}, {varied}{estimators}, noise seed {s.get('seed', 0)}."


# What the k trade-off's charts show, in two sentences (the papers' findings), for the page and the glossary alike.
TRADEOFF_EXPLAINED = (
    "As K grows the IW bound tightens toward log p(x), the decoder's gradient gets cleaner (its signal-to-noise "
    "ratio rises like √K) and the encoder's plain IWAE gradient gets noisier relative to its shrinking signal (its "
    "SNR falls like 1/√K): a tighter bound is not necessarily better for learning the encoder (Rainforth et al. "
    "2018, \"Tighter Variational Bounds are Not Necessarily Better\"). The doubly reparameterised gradient (DReG, "
    "Tucker et al. 2019) drops the score term that carries that noise and reweights the pathwise one, so its "
    "encoder SNR rises like √K too.")


def tradeoff_summary(result: lab.VarianceResult) -> str:
    """The slopes the measurement shows, against the papers' ±1/2."""
    slopes = lab.snr_slopes(result)
    if not all(math.isfinite(slopes[name]["theta"]) for name in slopes):
        return "Measure at two values of K above 1 or more to read the slopes."
    said = lambda s, part: f"{s[part]:+.2f}" + (f" ± {s[part + '_error']:.2f}" if math.isfinite(s[part + '_error']) else "")
    return (f"Slopes of log SNR against log K (from K = 2 on; the papers' asymptotes: decoder +0.5, IWAE encoder "
            f"-0.5, DReG encoder +0.5): decoder {said(slopes['iwae'], 'theta')}, IWAE encoder "
            f"{said(slopes['iwae'], 'phi')}, DReG encoder {said(slopes['dreg'], 'phi')}. An SNR near 1/√R = "
            f"{1 / math.sqrt(result.settings['R']):.3f} is the floor that R replicates resolve, not a signal.")
