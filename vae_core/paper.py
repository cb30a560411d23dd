"""The paper's experiments as data: the configurations of Figure 2, the settings they share, which runs belong to
them, and what the runs say of the paper's claims. The Paper page and the sweep's `--figure 2` preset both read
them from here.

Figure 2: lower bound against training samples evaluated, AEVB against wake-sleep with the same networks, on MNIST
(J = 3, 5, 10, 20, 200) and Frey Face (J = 2, 5, 10, 20); train and test bounds; Section 5's settings throughout.
Figure 3: the marginal log-likelihood (Appendix D's estimate, on the first 1000 training and test points) against
training samples evaluated, AEVB, wake-sleep and Monte Carlo EM, on MNIST with 100 hidden units and J = 3, trained
on 1000 and on 50000 points.
Appendix F: full variational Bayes against AEVB, by the lower bound, at Frey Face J = 2 and MNIST J = 20 (the
comparison of docs/REPRODUCTION.md); each initial log-variance of q(θ) is a line of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import STEP_SIZE_CANDIDATES, TrainConfig
from .data import DATASETS
from .runs import RunRecord, is_evaluation
from .training import format_duration

FIGURE_2 = (("mnist", 3), ("mnist", 5), ("mnist", 10), ("mnist", 20), ("mnist", 200),
            ("frey", 2), ("frey", 5), ("frey", 10), ("frey", 20))  # (dataset, J), the paper's panel order
FIGURE_2_ALGORITHMS = ("aevb", "wake-sleep")
# What may differ between two runs of one panel without leaving the paper's settings.
FREE = {"dataset", "latent_dim", "algorithm", "samples", "seed", "lr", "step", "device", "data_dir", "eval_train_size",
        "trial_steps", "checkpoint_seconds"}


APPENDIX_F = (("frey", 2), ("mnist", 20))
APPENDIX_F_ALGORITHMS = ("aevb", "full-vb")

FIGURE_3 = (1000, 50000)  # the training-set sizes of its two panels
FIGURE_3_ALGORITHMS = ("aevb", "wake-sleep", "mcem")


def figure_3_config(train_size: int, algorithm: str, samples: int, seed: int = 0) -> TrainConfig:
    """One run of Figure 3: MNIST, 100 hidden units, J = 3, the first `train_size` training points, evaluated by the
    marginal likelihood; Section 5's settings otherwise."""
    return TrainConfig(dataset="mnist", latent_dim=3, hidden=(100,), train_size=train_size, algorithm=algorithm,
                       evaluation="marginal", samples=samples, seed=seed)


def figure_3_panel(train_config: dict) -> int | None:
    """The panel (training-set size) of Figure 3 a run belongs to, or None."""
    try:
        config = TrainConfig.from_dict(train_config).to_dict()
    except (TypeError, ValueError):
        return None
    reference = figure_3_config(config.get("train_size") or 0, config["algorithm"], 1).to_dict()
    if any(config[k] != v for k, v in reference.items() if k not in FREE | {"train_size", "marginal_points"}):
        return None
    return config["train_size"] if config["train_size"] in FIGURE_3 and config["algorithm"] in FIGURE_3_ALGORITHMS else None


def figure_2_config(dataset: str, latent_dim: int, algorithm: str, samples: int, seed: int = 0) -> TrainConfig:
    """One run of Figure 2: Section 5's settings (the defaults) for a panel and an algorithm."""
    return TrainConfig(dataset=dataset, latent_dim=latent_dim, algorithm=algorithm, samples=samples, seed=seed)


def figure_2_panel(train_config: dict, panels=FIGURE_2, algorithms=FIGURE_2_ALGORITHMS,
                   free=FREE) -> tuple[str, int] | None:
    """The panel of Figure 2 a run belongs to, or None when its settings are not the paper's (another network,
    estimator, L, M, optimizer, or a step size outside Section 5's set). Appendix F's panels ask the same."""
    defaults = TrainConfig().to_dict()
    try:
        config = TrainConfig.from_dict(train_config).to_dict()
    except (TypeError, ValueError):
        return None
    if any(config[k] != v for k, v in defaults.items() if k not in free):
        return None
    if config["lr"] != "auto" and config["lr"] not in STEP_SIZE_CANDIDATES["adagrad"]:
        return None
    panel = (config["dataset"], config["latent_dim"])
    return panel if panel in panels and config["algorithm"] in algorithms else None


def appendix_f_panel(train_config: dict) -> tuple[str, int] | None:
    """The panel of the full-VB comparison a run belongs to: Section 5's settings, any initial log-variance of q(θ)."""
    return figure_2_panel(train_config, APPENDIX_F, APPENDIX_F_ALGORITHMS, FREE | {"vb_logvar"})


@dataclass
class Curve:
    """One run's evaluated bounds: samples evaluated, train and test lower bounds; `variant` tells apart runs of
    one algorithm whose settings differ on purpose (full VB's initial log-variance)."""
    run: str
    algorithm: str
    seed: int
    samples: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    variant: str = ""
    path: str = ""  # the run's folder: two runs of one name may lie in different sweeps

    def at(self, samples: float, which: str = "test") -> float | None:
        """The bound at `samples`, interpolated on the log axis between evaluations; None outside the curve."""
        if not self.samples or not self.samples[0] <= samples <= self.samples[-1]:
            return None
        return float(np.interp(math.log(samples), np.log(self.samples), getattr(self, which)))

    def reaches(self, bound: float, which: str = "train") -> int | None:
        """The number of samples at which the curve first reaches `bound`, interpolated on the log axis between the
        evaluations around the crossing; None if it never does."""
        values = getattr(self, which)
        for i, (s, b) in enumerate(zip(self.samples, values)):
            if b >= bound:
                if i == 0 or b == values[i - 1]:
                    return s
                fraction = (bound - values[i - 1]) / (b - values[i - 1])
                return round(math.exp(math.log(self.samples[i - 1]) + fraction * math.log(s / self.samples[i - 1])))
        return None


def curve(record: RunRecord, measure: str = "lower_bound") -> Curve:
    """The run's evaluated `measure` ("lower_bound", or "marginal_log_likelihood") on the training and test sets."""
    rows = [r for r in record.metrics if is_evaluation(r) and r.get(f"test_{measure}") is not None]
    algorithm = record.train_config.get("algorithm", "aevb")
    variant = f"log σ²₀ = {record.train_config.get('vb_logvar', -10.0):g}" if algorithm == "full-vb" else ""
    return Curve(record.name, algorithm, record.train_config.get("seed", 0),
                 [r["samples_evaluated"] for r in rows], [r[f"train_{measure}"] for r in rows],
                 [r[f"test_{measure}"] for r in rows], variant, str(record.path))


def _one_per_seed(curves: list[Curve]) -> list[Curve]:
    """Runs of the same settings and seed are one experiment run twice (a short run and a longer one, or a run
    continued in another folder): the one that got furthest stands for it."""
    furthest: dict[tuple, Curve] = {}
    for c in curves:
        key = (c.algorithm, c.seed, c.variant)
        if key not in furthest or c.samples[-1] > furthest[key].samples[-1]:
            furthest[key] = c
    return [c for c in curves if furthest[(c.algorithm, c.seed, c.variant)] is c]


def figure_2_curves(records: list[RunRecord], panels=FIGURE_2, panel_of=figure_2_panel) -> dict[tuple[str, int], list[Curve]]:
    """The runs of each panel (every seed), from the run records given; damaged runs are left out."""
    curves: dict[tuple[str, int], list[Curve]] = {panel: [] for panel in panels}
    for record in records:
        panel = None if record.damaged else panel_of(record.train_config)
        if panel is not None and record.last_evaluation:
            line = curve(record)
            if line.samples:
                curves[panel].append(line)
    return {panel: _one_per_seed(lines) for panel, lines in curves.items()}


def appendix_f_curves(records: list[RunRecord]) -> dict[tuple[str, int], list[Curve]]:
    return figure_2_curves(records, APPENDIX_F, appendix_f_panel)


def claims_f(panels: dict[tuple[str, int], list[Curve]]) -> dict[tuple[str, int], list[Verdict]]:
    """Full VB against AEVB per panel, at the largest budget both reached: each initial log-variance's test bound
    against AEVB's. Appendix F proposes the method without results; the paper's reviewers report that it
    "performed really badly"."""
    verdicts = {}
    for panel, curves in panels.items():
        aevb, vb = _best(curves, "aevb"), _best(curves, "full-vb")
        if not aevb or not vb:
            verdicts[panel] = [Verdict("Full VB reaches AEVB's bound", None, "needs runs of both algorithms")]
            continue
        rows = []
        for variant in sorted({c.variant for c in vb}):
            mine = [c for c in vb if c.variant == variant]
            budget, a, f = _at_shared_budget(aevb, mine)
            rows.append(Verdict(f"Full VB ({variant}) reaches AEVB's bound", bool(f >= a - 1.0),
                                f"test bound at {budget:,.0f} samples: AEVB {a:.2f}, full VB {f:.2f}"))
        verdicts[panel] = rows
    return verdicts


def figure_3_curves(records: list[RunRecord]) -> dict[int, list[Curve]]:
    """The runs of each panel of Figure 3 (training-set size), by their marginal log-likelihood."""
    panels: dict[int, list[Curve]] = {n: [] for n in FIGURE_3}
    for record in records:
        panel = None if record.damaged else figure_3_panel(record.train_config)
        if panel is not None:
            line = curve(record, "marginal_log_likelihood")
            if line.samples:
                panels[panel].append(line)
    return {panel: _one_per_seed(lines) for panel, lines in panels.items()}


def missing(panels: dict[tuple[str, int], list[Curve]]) -> list[tuple[str, int, str]]:
    """(dataset, J, algorithm) of Figure 2 with no run yet."""
    return [(d, J, a) for (d, J), curves in panels.items() for a in FIGURE_2_ALGORITHMS
            if not any(c.algorithm == a for c in curves)]


def missing_3(panels: dict[int, list[Curve]]) -> list[tuple[int, str]]:
    """(training-set size, algorithm) of Figure 3 with no run yet."""
    return [(n, a) for n, curves in panels.items() for a in FIGURE_3_ALGORITHMS if not any(c.algorithm == a for c in curves)]


def claims_3(panels: dict[int, list[Curve]]) -> dict[int, list[Verdict]]:
    """Figure 3's claims as the runs measure them: AEVB's test log-likelihood matches or beats Monte Carlo EM's and
    wake-sleep's at the largest budget they share (within 1 nat, Appendix D's estimates being rough), per panel."""
    verdicts = {}
    for n, curves in panels.items():
        aevb = _best(curves, "aevb")
        rows = []
        for other in ("mcem", "wake-sleep"):
            theirs = _best(curves, other)
            if not aevb or not theirs:
                rows.append(Verdict(f"AEVB matches or beats {other}", None, "needs runs of both algorithms"))
                continue
            budget, a, o = _at_shared_budget(aevb, theirs)
            rows.append(Verdict(f"AEVB matches or beats {other}", bool(a >= o - 1.0),
                                f"test log p(x) at {budget:,.0f} samples: AEVB {a:.2f}, {other} {o:.2f}"))
        verdicts[n] = rows
    return verdicts


@dataclass
class Verdict:
    claim: str
    holds: bool | None  # None: not enough runs to tell
    evidence: str


def _best(curves: list[Curve], algorithm: str) -> list[Curve]:
    return [c for c in curves if c.algorithm == algorithm and c.samples]


def _at_shared_budget(first: list[Curve], second: list[Curve]) -> tuple[int, float, float]:
    """The largest budget both groups of curves reached, and each group's mean test value there."""
    budget = min(max(c.samples[-1] for c in first), max(c.samples[-1] for c in second))
    return budget, *(float(np.mean([v for c in group if (v := c.at(budget)) is not None])) for group in (first, second))


def claims(panels: dict[tuple[str, int], list[Curve]]) -> dict[tuple[str, int] | str, list[Verdict]]:
    """What the runs say of the paper's claims, per panel: AEVB reaches a better test bound than wake-sleep at the
    largest budget both have reached, and gets to wake-sleep's best training bound with fewer samples; and across
    the panels of a dataset, that more latent dimensions did not make AEVB overfit: no J's test bound falls more than a
    nat below a smaller J's (the train-test gaps are shown beside them)."""
    verdicts: dict = {}
    for panel, curves in panels.items():
        aevb, ws = _best(curves, "aevb"), _best(curves, "wake-sleep")
        if not aevb or not ws:
            verdicts[panel] = [Verdict("AEVB reaches a better bound", None, "needs runs of both algorithms")]
            continue
        budget, a, w = _at_shared_budget(aevb, ws)
        target = max(max(c.train) for c in ws)
        reached = [c.reaches(target) for c in aevb]
        first = min((r for r in reached if r is not None), default=None)
        ws_first = min(c.reaches(target) for c in ws)
        verdicts[panel] = [
            Verdict("AEVB reaches a better bound", bool(a > w),
                    f"test bound at {budget:,.0f} samples: AEVB {a:.2f}, wake-sleep {w:.2f}"),
            Verdict("AEVB converges faster", None if first is None else bool(first < ws_first),
                    f"wake-sleep's best training bound {target:.2f} was reached by AEVB at "
                    + (f"{first:,} samples, by wake-sleep at {ws_first:,}" if first is not None else "no point yet"))]
    for dataset in ("mnist", "frey"):
        aevb = {J: _best(panels[(d, J)], "aevb") for d, J in FIGURE_2 if d == dataset and _best(panels[(d, J)], "aevb")}
        if len(aevb) < 2:
            verdicts[dataset] = [Verdict("More latent dimensions did not cause overfitting", None,
                                         "needs AEVB runs at two values of J or more")]
            continue
        # Superfluous latent variables that overfit would lower the test bound as J grows (section 5: the bound's KL
        # term regularises), so each J's test bound is compared with the best of the smaller J's, at a budget all reached.
        budget = min(max(c.samples[-1] for c in group) for group in aevb.values())
        test = {J: np.mean([c.at(budget) for c in group if c.at(budget) is not None]) for J, group in aevb.items()}
        gap = {J: np.mean([c.at(budget, "train") - c.at(budget) for c in group if c.at(budget) is not None])
               for J, group in aevb.items()}
        Js = sorted(test)
        worse = [J for i, J in enumerate(Js[1:], 1) if test[J] < max(test[j] for j in Js[:i]) - 1.0]
        verdicts[dataset] = [Verdict(
            "More latent dimensions did not cause overfitting", not worse,
            f"AEVB's test bound at {budget:,.0f} samples (train - test gap): "
            + ", ".join(f"J = {J}: {test[J]:.2f} ({gap[J]:+.2f})" for J in Js)
            + (f"; below a smaller J's at J = {', '.join(map(str, worse))}" if worse else ""))]
    return verdicts


NAMES = {name: spec.title for name, spec in DATASETS.items()}  # as the paper names each dataset
BUDGETS = (10**5, 3 * 10**5, 10**6, 10**7)  # the points of Figure 2's x axis the docs report


def wall_seconds(record: RunRecord) -> float | None:
    """From the run's start (its lock's `since`) to its last status, in seconds."""
    from .runs import LOCK, read_json
    try:
        since = read_json(record.path / LOCK)["since"]
    except (OSError, ValueError, KeyError):
        return None
    return record.status.get("updated", since) - since


def report(records: list[RunRecord], figure: int) -> str:
    """A figure's numbers as a Markdown table: each configuration and algorithm, the train and test values at the
    paper's budgets (the mean over seeds; blank where no run has reached the budget), the seeds and the wall time;
    then the claims as the runs measure them."""
    by_path = {str(r.path): r for r in records}
    if figure == 2:
        panels = figure_2_curves(records)
        keyed = {f"{NAMES[d]} J = {J}": curves for (d, J), curves in panels.items()}
        algorithms, verdicts, what = FIGURE_2_ALGORITHMS, claims(panels), "lower bound"
    else:
        panels = figure_3_curves(records)
        keyed = {f"MNIST J = 3, N_train = {n:,}": curves for n, curves in panels.items()}
        algorithms, verdicts, what = FIGURE_3_ALGORITHMS, claims_3(panels), "marginal log-likelihood"
    names = {10**5: "10^5", 3 * 10**5: "3·10^5", 10**6: "10^6", 10**7: "10^7"}
    head = " | ".join(f"{names[b]} train | {names[b]} test" for b in BUDGETS)
    lines = [f"| configuration | algorithm | {head} | seeds | wall time per run |",
             "|---|---|" + "---|" * (2 * len(BUDGETS)) + "---|---|"]
    for label, curves in keyed.items():
        for algorithm in algorithms:
            mine = [c for c in curves if c.algorithm == algorithm]
            cells = []
            for budget in BUDGETS:
                for which in ("train", "test"):
                    values = [v for c in mine if (v := c.at(budget, which)) is not None]
                    cells.append(f"{np.mean(values):.2f}" if values else "")
            walls = [w for c in mine if by_path[c.path].state == "finished" and (w := wall_seconds(by_path[c.path])) is not None]
            wall = format_duration(float(np.mean(walls))) if walls else ""
            lines.append(f"| {label} | {algorithm} | {' | '.join(cells)} | {len(mine)} | {wall} |")
    lines += ["", f"Values: the {what} per datapoint in nats, interpolated on the log axis between evaluations; the "
                  "mean over seeds.", "", "| where | claim | verdict | evidence |", "|---|---|---|---|"]
    for where, items in verdicts.items():
        label = (f"{NAMES[where]}, all J" if isinstance(where, str) else f"{NAMES[where[0]]} J = {where[1]}"
                 if isinstance(where, tuple) else f"N_train = {where:,}")
        for v in items:
            verdict = {True: "holds", False: "does not hold", None: "not yet"}[v.holds]
            lines.append(f"| {label} | {v.claim} | {verdict} | {v.evidence} |")
    return "\n".join(lines)
