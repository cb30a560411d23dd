"""What the training loop reports, as it goes: one `TrainEvent` per happening, of one `EventKind`."""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class EventKind(enum.StrEnum):
    TRIAL = "trial"  # one per step size tried, then one naming the choice
    STARTED = "started"  # the run's config is written and its minibatches begin
    MINIBATCH = "minibatch"  # a step that logs its minibatch bound
    EVALUATION = "evaluation"  # the full train and test bounds
    CHECKPOINT = "checkpoint"  # the checkpoint and the metrics so far are on disk
    PAUSED = "paused"
    RESUMED = "resumed"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def ends(self) -> bool:
        return self in (EventKind.FINISHED, EventKind.STOPPED, EventKind.FAILED)

    @property
    def logged(self) -> bool:
        """Kept in metrics.jsonl: the learning curves."""
        return self in (EventKind.MINIBATCH, EventKind.EVALUATION)


@dataclass
class TrainEvent:
    """One report from the trainer. Lower bounds are per datapoint, in nats, with the ELBO's sign."""
    kind: EventKind
    samples_evaluated: int
    total_samples: int
    seconds: float  # training time so far, pauses and evaluations excluded
    samples_per_second: float
    lower_bound: float | None = None  # of the current minibatch, per datapoint (eq. 8 / N)
    reconstruction: float | None = None
    kl: float | None = None
    train_lower_bound: float | None = None
    test_lower_bound: float | None = None
    train_marginal_log_likelihood: float | None = None  # Appendix D's estimate, when the run evaluates it
    test_marginal_log_likelihood: float | None = None
    train_iw_bound: float | None = None  # the importance-weighted bound at an IWAE run's own K
    test_iw_bound: float | None = None
    lr: float | None = None
    message: str = ""
    run_config: dict | None = None  # STARTED: what the run's config.json records (the recorder writes it)

    def to_row(self) -> dict:
        row = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != "" and k != "run_config"}
        row["kind"] = str(self.kind)
        return row


# What an evaluation scores: the TrainEvent fields an EVALUATION row carries, and a run's summary reports.
# The live chart (assets/live_chart.html) takes an evaluation's values by their place here: new keys go last.
EVALUATION_KEYS = ("train_lower_bound", "test_lower_bound", "train_marginal_log_likelihood",
                   "test_marginal_log_likelihood", "train_iw_bound", "test_iw_bound")


def is_evaluation(row: dict) -> bool:
    """A metrics row of an evaluation (the bounds, or the marginal likelihood), not of a minibatch."""
    return row.get("kind") == str(EventKind.EVALUATION)


def last_evaluation(rows: list[dict]) -> dict:
    """The latest evaluation row of a run's metrics; empty before its first."""
    return next((r for r in reversed(rows) if is_evaluation(r)), {})
