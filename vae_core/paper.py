"""The paper's experiments as data: each figure is one record (`Figure`) of its panels, the algorithms it compares,
the configuration each panel trains, what its curves measure and what the paper claims of them. Every interface
reads these records: the CLI's `report`, the sweep's `--figure` presets and the Paper page; the functions below
(curves, missing runs, claims, the report) take any of them.

Figure 2: lower bound against training samples evaluated, AEVB against wake-sleep with the same networks, on MNIST
(J = 3, 5, 10, 20, 200) and Frey Face (J = 2, 5, 10, 20); train and test bounds; Section 5's settings throughout.
Figure 3: the marginal log-likelihood (Appendix D's estimate, on the first 1000 training and test points) against
training samples evaluated, AEVB, wake-sleep and Monte Carlo EM, on MNIST with 100 hidden units and J = 3, trained
on 1000 and on 50000 points.
Appendix F: full variational Bayes against AEVB, by the lower bound, at Frey Face J = 2 and MNIST J = 20 (the
comparison of docs/REPRODUCTION.md); each initial log-variance of q(θ) is a line of its own.
Beyond the paper, IWAE runs (Burda et al. 2016) with Section 5's settings are drawn on Figure 2's axes, one line per
K: their ELBO, comparable with AEVB's and wake-sleep's, and beside it the IW bound L_K they train on.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .config import STEP_SIZE_CANDIDATES, TrainConfig
from .data import DATASETS
from .events import is_evaluation
from .formatting import format_duration
from .runs import RunRecord

NAMES = {name: spec.title for name, spec in DATASETS.items()}  # as the paper names each dataset
ALGORITHM_NAMES = {"aevb": "AEVB", "wake-sleep": "wake-sleep", "mcem": "mcem", "full-vb": "full VB", "iwae": "IWAE"}  # as claims say
# An evaluation's measures, by their name in metrics.jsonl: as axes and tables name them, and as the claims do.
MEASURES = {"lower_bound": ("lower bound", "bound"), "marginal_log_likelihood": ("marginal log-likelihood", "log p(x)")}
# What may differ between two runs of one panel and algorithm, besides their budget, without leaving the paper's
# settings (Section 5); the step size, if not chosen by the trial, must still be one of Section 5's (panel_of).
FREE = frozenset({"seed", "lr", "step", "device", "data_dir", "eval_train_size", "trial_steps", "checkpoint_seconds"})
BUDGETS = (10**5, 3 * 10**5, 10**6, 10**7)  # the points of Figure 2's x axis the docs report


@dataclass(frozen=True)
class Panel:
    """One panel of a figure: the data, J and (Fig. 3) the number of training points its runs train on."""
    dataset: str
    latent_dim: int
    train_size: int | None = None  # None: all of them

    @property
    def label(self) -> str:
        return f"{NAMES[self.dataset]} J = {self.latent_dim}" + (f", N_train = {self.train_size:,}"
                                                                 if self.train_size else "")

    @property
    def where(self) -> str:
        """How the claims name the panel: by its training-set size where that is what tells it apart (Fig. 3)."""
        return f"N_train = {self.train_size:,}" if self.train_size else self.label


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims as the runs measure it. `text` names the algorithms as {first} and {second}.
    "better": `first`'s test value lies above `second`'s less `margin` nats, at the largest budget every seed of
    both reached, one verdict per variant of `first`; "faster": `first` reaches the best training value every seed
    of `second` reached with fewer samples; "across J": per dataset, no J's test value of `first` falls more than
    `margin` below a smaller J's."""
    kind: str
    text: str
    first: str = "aevb"
    second: str = ""
    margin: float = 0.0

    def says(self, variant: str = "") -> str:
        """The claim, for a variant of `first` if it has one: "Full VB (log σ²₀ = -6) reaches AEVB's bound"."""
        name = ALGORITHM_NAMES[self.first]
        return self.text.format(first=name[0].upper() + name[1:] + (f" ({variant})" if variant else ""),
                                second=ALGORITHM_NAMES.get(self.second, ""))


@dataclass(frozen=True)
class Variant:
    """A setting whose values are lines of their own, for one algorithm (Appendix F: full VB's initial
    log-variance of q(θ))."""
    algorithm: str
    setting: str
    label: str  # a value as the legend and the claims say it


@dataclass(frozen=True, eq=False)
class Figure:
    """A figure of the paper as data: its panels (in the paper's order, `columns` a row), the algorithms each panel
    compares, the settings each run trains with beyond Section 5's defaults and its panel's, the evaluation its
    curves plot, and its claims. `also`: algorithms beyond the paper's drawn on its axes where runs of them exist,
    which its sweep does not train, its missing runs do not list and its claims do not judge."""
    name: str  # as the Paper page's tables name it
    title: str
    panels: tuple[Panel, ...]
    algorithms: tuple[str, ...]
    claims: tuple[Claim, ...]
    measure: str = "lower_bound"  # an evaluation's train_<measure> and test_<measure>
    settings: dict = field(default_factory=dict)
    free: frozenset = FREE
    variant: Variant | None = None
    columns: int = 2
    also: tuple[str, ...] = ()

    @property
    def drawn(self) -> tuple[str, ...]:
        """Every algorithm whose runs the figure draws: the paper's, then those beyond it."""
        return self.algorithms + self.also

    def config(self, panel: Panel, algorithm: str, samples: int, seed: int = 0) -> TrainConfig:
        """One run of the figure: Section 5's settings (the defaults) for a panel and an algorithm."""
        return TrainConfig(dataset=panel.dataset, latent_dim=panel.latent_dim, train_size=panel.train_size,
                           algorithm=algorithm, samples=samples, seed=seed, **self.settings)

    def configs(self, samples: int, seeds: list[int]) -> list[dict]:
        """The figure's grid, as a sweep's trials: every panel, algorithm and seed."""
        return [self.config(panel, algorithm, samples, seed).to_dict()
                for panel, algorithm, seed in itertools.product(self.panels, self.algorithms, seeds)]

    def panel_of(self, train_config: dict) -> Panel | None:
        """The panel a run belongs to, or None when its settings are not the figure's (another network, estimator,
        L, M, optimizer, algorithm, or a step size outside Section 5's set)."""
        try:
            config = TrainConfig.from_dict(train_config).to_dict()
        except (TypeError, ValueError):
            return None
        if config["algorithm"] not in self.drawn or config["lr"] not in ("auto", *STEP_SIZE_CANDIDATES["adagrad"]):
            return None
        for panel, reference in _references(self, config["algorithm"]):
            if all(config[k] == v for k, v in reference.items()):
                return panel
        return None

    def describe(self, curve: Curve) -> str:
        """A curve's variant as the figure says it ("log σ²₀ = -6"); empty for a curve of no variant."""
        return "" if curve.variant is None or self.variant is None else self.variant.label.format(curve.variant)


@functools.cache
def _references(figure: Figure, algorithm: str) -> tuple[tuple[Panel, dict], ...]:
    """Each panel's settings for `algorithm`, but for what may differ between its runs (the figure's `free` ones and
    the budget): what `panel_of` compares a run's settings with, made once."""
    return tuple((panel, {k: v for k, v in figure.config(panel, algorithm, 1).to_dict().items()
                          if k not in figure.free and k != "samples"}) for panel in figure.panels)


FIGURE_2 = Figure(
    "Fig. 2", "Figure 2: AEVB against wake-sleep, by the lower bound",
    tuple(Panel(d, J) for d, J in (("mnist", 3), ("mnist", 5), ("mnist", 10), ("mnist", 20), ("mnist", 200),
                                   ("frey", 2), ("frey", 5), ("frey", 10), ("frey", 20))),  # the paper's panel order
    ("aevb", "wake-sleep"),
    # Fig. 2's caption: AEVB "converged considerably faster and reached a better solution in all experiments"
    (Claim("better", "{first} reaches a better bound", "aevb", "wake-sleep"),
     Claim("faster", "{first} converges faster", "aevb", "wake-sleep"),
     # and "more latent variables does not result in more overfitting" (the bound's KL term regularises): superfluous
     # latent variables that overfit would lower the test bound as J grows, so each J's test bound is compared with
     # the best of the smaller J's
     Claim("across J", "More latent dimensions did not cause overfitting", "aevb", margin=1.0)),
    columns=5,  # MNIST's five panels above Frey Face's four
    also=("iwae",), free=FREE | {"iw_k"}, variant=Variant("iwae", "iw_k", "K = {:g}"))  # IWAE: a line per K
FIGURE_3 = Figure(
    "Fig. 3", "Figure 3: AEVB, wake-sleep and Monte Carlo EM, by the marginal likelihood",
    (Panel("mnist", 3, 1000), Panel("mnist", 3, 50000)),
    ("aevb", "wake-sleep", "mcem"),
    # Fig. 3: AEVB matches or beats both, within a nat (Appendix D's estimates are rough)
    (Claim("better", "{first} matches or beats {second}", "aevb", "mcem", 1.0),
     Claim("better", "{first} matches or beats {second}", "aevb", "wake-sleep", 1.0)),
    measure="marginal_log_likelihood", settings={"hidden": (100,), "evaluation": "marginal"},
    free=FREE | {"marginal_points"})
APPENDIX_F = Figure(
    "App. F", "Appendix F: full variational Bayes against AEVB",
    (Panel("frey", 2), Panel("mnist", 20)),
    ("aevb", "full-vb"),
    # Appendix F proposes the method without results; the paper's reviewers report that it "performed really badly"
    (Claim("better", "{first} reaches {second}'s bound", "full-vb", "aevb", 1.0),),
    free=FREE | {"vb_logvar"}, variant=Variant("full-vb", "vb_logvar", "log σ²₀ = {:g}"))
FIGURES = {2: FIGURE_2, 3: FIGURE_3}  # what `sweep --figure` trains and `report --figure` reports


@dataclass
class Curve:
    """One run's evaluated values: samples evaluated, train and test values; `variant` tells apart runs of one
    algorithm whose settings differ on purpose (the value of the figure's variant setting). `iw_train` and `iw_test`:
    the IW bound at the run's own K at the same evaluations, for an IWAE run on a figure of the lower bound."""
    run: str
    algorithm: str
    seed: int
    samples: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    variant: float | None = None
    path: str = ""  # the run's folder: two runs of one name may lie in different sweeps
    iw_train: list[float] = field(default_factory=list)
    iw_test: list[float] = field(default_factory=list)

    def at(self, samples: float, which: str = "test") -> float | None:
        """The value at `samples`, interpolated on the log axis between evaluations; None outside the curve."""
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


def curve(record: RunRecord, figure: Figure) -> Curve:
    """The run's evaluated values of the figure's measure on the training and test sets."""
    measure = figure.measure
    rows = [r for r in record.metrics if is_evaluation(r) and r.get(f"test_{measure}") is not None]
    config = TrainConfig.from_dict(record.train_config)
    variant = figure.variant
    value = getattr(config, variant.setting) if variant and config.algorithm == variant.algorithm else None
    iw = measure == "lower_bound" and rows and all(r.get("test_iw_bound") is not None for r in rows)
    return Curve(record.name, config.algorithm, config.seed, [r["samples_evaluated"] for r in rows],
                 [r[f"train_{measure}"] for r in rows], [r[f"test_{measure}"] for r in rows], value, str(record.path),
                 [r["train_iw_bound"] for r in rows] if iw else [], [r["test_iw_bound"] for r in rows] if iw else [])


def _one_per_seed(curves: list[Curve]) -> list[Curve]:
    """Runs of the same settings and seed are one experiment run twice (a short run and a longer one, or a run
    continued in another folder): the one that got furthest stands for it."""
    furthest: dict[tuple, Curve] = {}
    for c in curves:
        key = (c.algorithm, c.seed, c.variant)
        if key not in furthest or c.samples[-1] > furthest[key].samples[-1]:
            furthest[key] = c
    return [c for c in curves if furthest[(c.algorithm, c.seed, c.variant)] is c]


def curves(figure: Figure, records: list[RunRecord]) -> dict[Panel, list[Curve]]:
    """The runs of each panel of the figure (every seed), from the run records given; damaged runs and runs not
    yet evaluated are left out."""
    panels: dict[Panel, list[Curve]] = {panel: [] for panel in figure.panels}
    for record in records:
        panel = None if record.damaged else figure.panel_of(record.train_config)
        if panel is not None:
            line = curve(record, figure)
            if line.samples:
                panels[panel].append(line)
    return {panel: _one_per_seed(lines) for panel, lines in panels.items()}


def missing(figure: Figure, panels: dict[Panel, list[Curve]]) -> list[tuple[Panel, str]]:
    """(panel, algorithm) of the figure with no run yet."""
    return [(panel, a) for panel, lines in panels.items() for a in figure.algorithms
            if not any(c.algorithm == a for c in lines)]


@dataclass
class Verdict:
    claim: str
    holds: bool | None  # None: the runs cannot tell yet
    evidence: str


def _of(curves: list[Curve], algorithm: str) -> list[Curve]:
    return sorted((c for c in curves if c.algorithm == algorithm and c.samples), key=lambda c: c.seed)


def _means_at_shared_budget(groups: list[list[Curve]], which: str = "test") -> tuple[int, list[float]]:
    """The largest budget every curve of the groups reached, and each group's mean value there: every seed counts
    (a budget only the longest seed reached would leave the others out of the mean)."""
    budget = min(c.samples[-1] for group in groups for c in group)
    return budget, [float(np.mean([c.at(budget, which) for c in group])) for group in groups]


def _samples(curves: list[Curve], values: list[int], unit: str = "") -> str:
    """Samples at which the curves' seeds got somewhere: the one seed's, or the mean of several and each seed's."""
    if len(values) == 1:
        return f"{values[0]:,}{unit}"
    each = "; ".join(f"seed {c.seed}: {v:,}" for c, v in zip(curves, values))
    return f"{round(float(np.mean(values))):,}{unit} on average ({each})"


def _better(figure: Figure, claim: Claim, first: list[Curve], second: list[Curve]) -> list[Verdict]:
    """A "better" claim, one verdict per variant of `first`, the evidence in the figure's order of algorithms."""
    verdicts = []
    for variant in sorted({c.variant for c in first}, key=lambda v: (v is not None, v or 0.0)):
        mine = [c for c in first if c.variant == variant]
        budget, (f, s) = _means_at_shared_budget([mine, second])
        compared = sorted([(claim.first, f, len(mine)), (claim.second, s, len(second))],
                          key=lambda row: figure.algorithms.index(row[0]))
        seeds = (f" (the means of {' and '.join(str(n) for *_, n in compared)} seeds)"
                 if len(mine) > 1 or len(second) > 1 else "")
        verdicts.append(Verdict(claim.says(figure.describe(mine[0])), bool(f > s - claim.margin),
                                f"test {MEASURES[figure.measure][1]} at {budget:,.0f} samples: "
                                + ", ".join(f"{ALGORITHM_NAMES[a]} {v:.2f}" for a, v, _ in compared) + seeds))
    return verdicts


def _faster(figure: Figure, claim: Claim, first: list[Curve], second: list[Curve]) -> list[Verdict]:
    """A "faster" claim: the samples at which each seed first reaches the best training value every seed of `second`
    reached (its worst seed's best, so that each of its seeds has a point there), the mean over `first`'s seeds
    against the mean over `second`'s. A seed of `first` whose curve ends short of it gets there after its end, if
    at all: that may already decide the claim; if not, the verdict waits for it and says so."""
    target = min(max(c.train) for c in second)
    second_at, first_at = [c.reaches(target) for c in second], [c.reaches(target) for c in first]
    name, other = ALGORITHM_NAMES[claim.first], ALGORITHM_NAMES[claim.second]
    what = (f"{other}'s best training {MEASURES[figure.measure][1]} {target:.2f}"
            + (" (the lowest of its seeds' bests)" if len(second) > 1 else ""))
    short = [c for c, at in zip(first, first_at) if at is None]
    reached = [at for at in second_at if at is not None]  # all of them: each reached its own best, or above
    if not short:
        first_reached = [at for at in first_at if at is not None]
        return [Verdict(claim.says(), bool(np.mean(first_reached) < np.mean(reached)), f"{what} was reached by {name} "
                        f"at {_samples(first, first_reached, ' samples')}, by {other} at {_samples(second, reached)}")]
    soonest = [c.samples[-1] if at is None else at for c, at in zip(first, first_at)]
    slower = bool(np.mean(soonest) >= np.mean(reached))  # even were each short seed there just after its end
    return [Verdict(claim.says(), False if slower else None, f"{what} was reached by {other} at "
                    f"{_samples(second, reached, ' samples')}; " + "; ".join(
                        f"{name}'s seed {c.seed} has not reached it by {c.samples[-1]:,}, where its curve ends"
                        for c in short) + ("" if slower else " (undecided until then)"))]


def _across_j(figure: Figure, claim: Claim, by_j: dict[int, list[Curve]]) -> Verdict:
    """An "across J" claim over one dataset's panels, at the largest budget every seed of every J reached; the
    train - test gaps beside the test values."""
    if len(by_j) < 2:
        return Verdict(claim.text, None, f"needs {ALGORITHM_NAMES[claim.first]} runs at two values of J or more")
    Js = sorted(by_j)
    budget, test = _means_at_shared_budget([by_j[J] for J in Js])
    _, train = _means_at_shared_budget([by_j[J] for J in Js], "train")
    worse = [J for i, J in enumerate(Js[1:], 1) if test[i] < max(test[:i]) - claim.margin]
    return Verdict(claim.text, not worse,
                   f"{ALGORITHM_NAMES[claim.first]}'s test {MEASURES[figure.measure][1]} at {budget:,.0f} samples "
                   "(train - test gap): " + ", ".join(f"J = {J}: {t:.2f} ({r - t:+.2f})" for J, t, r in zip(Js, test, train))
                   + (f"; below a smaller J's at J = {', '.join(map(str, worse))}" if worse else ""))


def claims(figure: Figure, panels: dict[Panel, list[Curve]]) -> dict[str, list[Verdict]]:
    """What the runs say of the figure's claims, by where they apply (a panel, or all J of a dataset)."""
    verdicts: dict[str, list[Verdict]] = {}
    judges = {"better": _better, "faster": _faster}
    for panel, lines in panels.items():
        verdicts[panel.where] = []
        for claim in (c for c in figure.claims if c.kind in judges):
            first, second = _of(lines, claim.first), _of(lines, claim.second)
            if first and second:
                verdicts[panel.where] += judges[claim.kind](figure, claim, first, second)
            else:
                verdicts[panel.where].append(Verdict(claim.says(), None, "needs runs of both algorithms"))
    for claim in (c for c in figure.claims if c.kind == "across J"):
        for dataset in dict.fromkeys(panel.dataset for panel in figure.panels):
            by_j = {p.latent_dim: mine for p, lines in panels.items() if p.dataset == dataset
                    and (mine := _of(lines, claim.first))}
            verdicts[f"{NAMES[dataset]}, all J"] = [_across_j(figure, claim, by_j)]
    return verdicts


def training_seconds(record: RunRecord) -> float | None:
    """The run's training time in seconds across all its continuations: its checkpoint's `seconds`, which each
    continuation carries on from (the lock's `since`, which each new holder rewrites, would count only the last
    one). Wall-clock time of the training steps; evaluations, the step-size trial, pauses and stops excluded."""
    return (record.progress or {}).get("seconds")


def _rows(figure: Figure, curves: list[Curve]) -> list[tuple[str, list[Curve], str]]:
    """The report's rows of one panel: (algorithm as the row names it, its curves, "" or "iw_" for the IW bound's
    values): each of the paper's algorithms, then those beyond it that have runs; a row per variant, and for runs
    that report their IW bound, a row of it below."""
    rows = []
    for algorithm in figure.algorithms + tuple(a for a in figure.also if any(c.algorithm == a for c in curves)):
        mine = [c for c in curves if c.algorithm == algorithm]
        for variant in sorted({c.variant for c in mine}, key=lambda v: (v is not None, v)) or [None]:
            group = [c for c in mine if c.variant == variant]
            name = algorithm + (f" ({figure.describe(group[0])})" if variant is not None else "")
            rows.append((name, group, ""))
            if group and all(c.iw_test for c in group):
                rows.append((f"{name}, IW bound", group, "iw_"))
    return rows


def report(records: list[RunRecord], figure: Figure) -> str:
    """A figure's numbers as a Markdown table: each configuration and algorithm, the train and test values at the
    paper's budgets (the mean over seeds; blank where a seed has not reached the budget), the seeds and the training time;
    then the claims as the runs measure them."""
    by_path = {str(r.path): r for r in records}
    panels = curves(figure, records)
    names = {10**5: "10^5", 3 * 10**5: "3·10^5", 10**6: "10^6", 10**7: "10^7"}
    head = " | ".join(f"{names[b]} train | {names[b]} test" for b in BUDGETS)
    lines = [f"| configuration | algorithm | {head} | seeds | training time per run |",
             "|---|---|" + "---|" * (2 * len(BUDGETS)) + "---|---|"]
    for panel, panel_curves in panels.items():
        for algorithm, mine, iw in _rows(figure, panel_curves):
            cells = []
            for budget in BUDGETS:
                for which in (f"{iw}train", f"{iw}test"):
                    values = [c.at(budget, which) for c in mine]  # every seed counts: blank until each is there
                    known = [v for v in values if v is not None]
                    cells.append(f"{np.mean(known):.2f}" if mine and len(known) == len(values) else "")
            walls = [w for c in mine if by_path[c.path].state == "finished" and (w := training_seconds(by_path[c.path])) is not None]
            wall = format_duration(float(np.mean(walls))) if walls else ""
            lines.append(f"| {panel.label} | {algorithm} | {' | '.join(cells)} | {len(mine)} | {wall} |")
    lines += ["", (f"Values: the {MEASURES[figure.measure][0]} per datapoint in nats, interpolated on the log axis "
                   "between evaluations; the mean over seeds" + ("; an \"IW bound\" row: the importance-weighted bound "
                   "at the run's own K, which it trains on." if figure.also else ".")), "",
              "| where | claim | verdict | evidence |",
              "|---|---|---|---|"]
    for where, items in claims(figure, panels).items():
        for v in items:
            verdict = {True: "holds", False: "does not hold", None: "not yet"}[v.holds]
            lines.append(f"| {where} | {v.claim} | {verdict} | {v.evidence} |")
    return "\n".join(lines)
