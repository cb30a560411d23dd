"""Training by Algorithm 1 (AEVB): minibatches of M, L noise samples each, the gradient of the
minibatch estimator (eq. 8), and an Adagrad (or Adam) step.

`Trainer.events()` yields progress as `TrainEvent`s; `Trainer.run(callback)` drives it to the end.
`pause()`, `resume()` and `stop()` may be called from any thread. Every evaluation, every stop and every
`checkpoint_seconds` of training write an atomic checkpoint to the run directory, from which
`Trainer.resume_from(run_dir)` continues exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import data as data_module
from . import runs
from .estimators import ESTIMATORS, estimator_b_terms
from .fast_step import FlatParameters, lower_bound_gradient
from .models import VAE, ModelConfig

STEP_SIZE_CANDIDATES = (0.01, 0.02, 0.1)  # Section 5: "chosen from {0.01, 0.02, 0.1}"


@dataclass
class TrainConfig:
    """Defaults follow Section 5 of the paper; `hidden_dim=None` takes the paper's size for the dataset."""
    dataset: str = "digits"
    latent_dim: int = 2  # J
    hidden_dim: int | None = None
    estimator: str = "B"
    samples_per_point: int = 1  # L
    batch_size: int = 100  # M
    samples: int = 1_000_000  # budget of training samples evaluated (minibatches x M), the paper's x-axis
    optimizer: str = "adagrad"
    lr: float | str = "auto"
    weight_decay: bool = True  # MAP under the prior p(θ) = N(0, I), scaled per datapoint by 1/N
    binarize: bool = False  # dynamic binarisation of each minibatch (Bernoulli data only)
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    evaluations: int = 20  # full-bound evaluations, log-spaced over the budget
    eval_train_size: int = 10000  # training points in scheduled evaluations; the final one uses all
    trial_steps: int = 30  # per candidate step size when lr="auto"
    checkpoint_seconds: float = 60.0  # training time between checkpoints besides those at the evaluations

    def validate(self) -> None:
        """Raises ValueError saying which setting is wrong and what is allowed."""
        problems = []
        if self.dataset not in data_module.DATASETS:
            problems.append(f"dataset must be one of {', '.join(data_module.DATASETS)}, got {self.dataset!r}")
        for name in ("latent_dim", "samples_per_point", "batch_size", "samples", "evaluations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.batch_size > data_module.TRAIN_SIZES.get(self.dataset, self.batch_size):  # M distinct rows a step
            problems.append(f"batch_size M must be at most the {data_module.TRAIN_SIZES[self.dataset]} training "
                            f"datapoints of {self.dataset}, got {self.batch_size}")
        if self.hidden_dim is not None and (not isinstance(self.hidden_dim, int) or self.hidden_dim < 1):
            problems.append(f"hidden_dim must be a whole number of at least 1, got {self.hidden_dim!r}")
        if self.estimator not in ESTIMATORS:
            problems.append(f"estimator must be 'A' or 'B', got {self.estimator!r}")
        if self.optimizer not in ("adagrad", "adam"):
            problems.append(f"optimizer must be 'adagrad' or 'adam', got {self.optimizer!r}")
        if self.lr != "auto" and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number or 'auto', got {self.lr!r}")
        if not (isinstance(self.checkpoint_seconds, (int, float)) and self.checkpoint_seconds > 0):
            problems.append(f"checkpoint_seconds must be a positive number, got {self.checkpoint_seconds!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        elif self.device == "cuda" and not torch.cuda.is_available():
            problems.append("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainEvent:
    """One report from the trainer. Lower bounds are per datapoint, in nats, with the ELBO's sign."""
    # trial (one per step size tried, then the choice), minibatch, evaluation, paused, resumed, finished, stopped, failed
    kind: str
    samples_evaluated: int
    total_samples: int
    seconds: float  # training time so far, pauses and evaluations excluded
    samples_per_second: float
    lower_bound: float | None = None  # of the current minibatch (eq. 8 / M)
    reconstruction: float | None = None
    kl: float | None = None
    train_lower_bound: float | None = None
    test_lower_bound: float | None = None
    lr: float | None = None
    message: str = ""

    def to_row(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != ""}


def parse_sample_count(text: str | int | float) -> int:
    """A budget of samples as people write it: 1e6, 1_000_000 or 1000000; ValueError says what is wrong."""
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a number of samples (write e.g. 1e6 or 1000000)") from None
    if not math.isfinite(value) or not value.is_integer() or value < 1:
        raise ValueError(f"the number of samples must be a whole number of at least 1, got {text!r}")
    return int(value)


def check_continue_budget(run_dir: str | Path, samples: int) -> int:
    """`samples` if it is above what the run's last checkpoint has evaluated, where a continuation starts;
    otherwise ValueError saying so. The CLI's --resume and the Runs page both ask here."""
    done = runs.checkpoint_samples(run_dir)
    if samples <= done:
        raise ValueError(f"{Path(run_dir).name} has already evaluated {done:,} samples; "
                         f"give a larger budget than that to continue it")
    return samples


def format_duration(seconds: float) -> str:
    """A time left as people read it: "42 s", "3 min 20 s", "1 h 11 min"; "?" while it is unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def resolve_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


@torch.no_grad()
def dataset_lower_bound(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
                        batch_size: int = 1000) -> tuple[float, float, float]:
    """Mean over the rows of x of estimator B with L = 1: (lower bound, reconstruction, KL), nats per datapoint."""
    totals = torch.zeros(2, dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        reconstruction, kl = estimator_b_terms(model, x[start:start + batch_size], generator=generator)
        totals += torch.stack([reconstruction.sum(), kl.sum()]).double()
    reconstruction, kl = (totals / len(x)).tolist()
    return reconstruction - kl, reconstruction, kl


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                 dataset: data_module.Dataset | None = None, progress: data_module.Progress | None = None):
        """A new run. `run_dir` (created if missing) or a fresh folder under `runs_dir` holds its files."""
        config.validate()
        self.config = config
        self.dataset = dataset or data_module.load(config.dataset, config.data_dir, progress=progress)
        if self.dataset.name != config.dataset:
            raise ValueError(f"the dataset given is {self.dataset.name!r} but the config names {config.dataset!r}")
        self.device = resolve_device(config.device)
        self.model_config = ModelConfig(self.dataset.data_dim, config.latent_dim,
                                        config.hidden_dim or self.dataset.default_hidden,
                                        self.dataset.likelihood, self.dataset.image_shape)
        if run_dir is None:
            run_dir = runs.new_run_dir(runs_dir, f"{config.dataset}-J{config.latent_dim}")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._x_train = torch.tensor(self.dataset.train, device=self.device)
        self._x_test = torch.tensor(self.dataset.test, device=self.device)
        self.lr: float | None = None if config.lr == "auto" else float(config.lr)
        self.trial_scores: dict[str, float] = {}
        self._fresh_state()
        self.metrics: list[dict] = []

    @classmethod
    def resume_from(cls, run_dir: str | Path, samples: int | None = None, dataset: data_module.Dataset | None = None,
                    progress: data_module.Progress | None = None) -> "Trainer":
        """Continues the run in `run_dir` from its last checkpoint, optionally with a larger budget."""
        run_dir = Path(run_dir)
        if not (run_dir / runs.CHECKPOINT).is_file():
            raise FileNotFoundError(f"{run_dir} holds no checkpoint to resume from ({runs.CHECKPOINT} is missing)")
        saved = runs.read_json(run_dir / runs.CONFIG)
        config = TrainConfig.from_dict(saved["train_config"])
        if samples is not None:
            config.samples = check_continue_budget(run_dir, samples)
        trainer = cls(config, run_dir, dataset=dataset, progress=progress)
        trainer.lr, trainer.trial_scores = saved["lr"], saved.get("trial_scores", {})
        trainer._load_checkpoint()
        return trainer

    # Control, from any thread.
    def pause(self) -> None:
        self._unpaused.clear()

    def resume(self) -> None:
        self._unpaused.set()

    def stop(self) -> None:
        self._stop.set()
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        return not self._unpaused.is_set()

    # State.
    def _fresh_state(self, lr: float | None = None) -> None:
        init = torch.Generator().manual_seed(self.config.seed)  # the same θ, φ for every candidate step size
        self.model = VAE(self.model_config, generator=init).to(self.device)
        self.params = FlatParameters(self.model)
        self.generator = _generator(self.device, self.config.seed + 1)  # shuffles, binarisation, ε
        self.optimizer = self._make_optimizer(lr if lr is not None else (self.lr or STEP_SIZE_CANDIDATES[0]))
        self.step = 0
        self._order = torch.randperm(len(self._x_train), generator=self.generator, device=self.device)
        self._position = 0
        self.seconds = self._saved_seconds = 0.0  # training time so far, and at the last checkpoint

    def _make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        weight_decay = 1.0 / len(self._x_train) if self.config.weight_decay else 0.0  # ∇ -log p(θ)/N = θ/N
        optimizer = torch.optim.Adagrad if self.config.optimizer == "adagrad" else torch.optim.Adam
        return optimizer([self.params.flat], lr=lr, weight_decay=weight_decay, fused=True)

    @property
    def samples_evaluated(self) -> int:
        return self.step * self.config.batch_size

    @property
    def log_every(self) -> int:
        """Steps between logged minibatch bounds: often enough for a live chart, at most ~1000 rows a run
        up to 10^6 samples, and never more than 20 steps apart."""
        return max(1, min(self.total_steps // 1000, 20))

    def logs_bound(self, step: int) -> bool:
        """Whether a step logs its minibatch bound: every step of the first 10 * log_every, which span the
        first decades of the paper's log x axis, then every log_every-th."""
        return step < 10 * self.log_every or step % self.log_every == 0

    @property
    def total_steps(self) -> int:
        return math.ceil(self.config.samples / self.config.batch_size)

    def _next_minibatch(self) -> torch.Tensor:
        M = self.config.batch_size
        if self._position + M > len(self._order):  # a new epoch: reshuffle
            self._order = torch.randperm(len(self._x_train), generator=self.generator, device=self.device)
            self._position = 0
        x = torch.index_select(self._x_train, 0, self._order[self._position:self._position + M])  # (M, D)
        self._position += M
        if self.config.binarize:
            x = torch.bernoulli(x, generator=self.generator)
        return x

    def train_step(self, with_values: bool = False):
        """One iteration of Algorithm 1: a minibatch, its noise, the gradient of eq. 8, an optimizer step."""
        x = self._next_minibatch()
        eps = torch.randn((self.config.samples_per_point, len(x), self.model_config.latent_dim),
                          generator=self.generator, device=self.device)  # (L, M, J)
        values = lower_bound_gradient(self.model, x, eps, self.config.estimator, self.params.grads, with_values)
        self.optimizer.step()
        self.step += 1
        return values

    def _evaluate(self, final: bool) -> tuple[float, float]:
        eval_generator = _generator(self.device, self.config.seed + 2)  # evaluation never moves the training stream
        train = self._x_train if final else self._x_train[:self.config.eval_train_size]
        return (dataset_lower_bound(self.model, train, eval_generator)[0],
                dataset_lower_bound(self.model, self._x_test, eval_generator)[0])

    def _eval_steps(self) -> set[int]:
        """Steps after which the full bounds are evaluated: log-spaced, as the paper's x-axis, and the last."""
        S = self.total_steps
        return set(np.unique(np.round(np.geomspace(1, S, min(S, self.config.evaluations))).astype(int)).tolist()) | {S}

    # Trial of step sizes (Section 5).
    def _choose_step_size(self) -> Iterator[TrainEvent]:
        for lr in STEP_SIZE_CANDIDATES:
            self._fresh_state(lr)
            bounds = [self.train_step(True).lower_bound for _ in range(self.config.trial_steps)]
            tail = bounds[len(bounds) // 2:]
            score = float(np.mean(tail)) if all(map(math.isfinite, tail)) else -math.inf
            self.trial_scores[str(lr)] = score
            yield self._event("trial", lower_bound=score, lr=lr, message=f"step size {lr}: mean bound {score:.2f}")
        self.lr = max(STEP_SIZE_CANDIDATES, key=lambda lr: self.trial_scores[str(lr)])
        tried = ", ".join(f"{lr}: {score:.2f}" for lr, score in self.trial_scores.items())
        yield self._event("trial", lr=self.lr, message=f"step size {self.lr} chosen (mean bound per step size: {tried})")
        self._fresh_state(self.lr)

    # Checkpoints.
    def _save_checkpoint(self, bounds: tuple[float, float] | None = None) -> None:
        """What a resumed run continues from, and the metrics so far; with the (train, test) `bounds` of an
        evaluation, the model too. Between evaluations model.safetensors stays the last evaluated model, which its
        metadata describes."""
        opt_state = self.optimizer.state_dict()["state"].get(0, {})
        tensors = {"parameters": self.params.flat.detach().cpu().clone(), "order": self._order.cpu(),
                   "generator": self.generator.get_state().cpu(),
                   **{f"optimizer.{k}": v.detach().cpu().reshape(-1).clone() for k, v in opt_state.items()}}
        progress = {"step": self.step, "position": self._position, "seconds": self.seconds,
                    "samples_evaluated": self.samples_evaluated}
        from safetensors.torch import save
        runs.write_atomic(self.run_dir / runs.CHECKPOINT, save(tensors, metadata={"progress": json.dumps(progress)}))
        if bounds is not None:
            runs.save_model(self.model, self.run_dir / runs.MODEL, {
                "dataset": self.config.dataset, "samples_evaluated": self.samples_evaluated,
                "train_lower_bound": bounds[0], "test_lower_bound": bounds[1]})
        runs.write_metrics(self.run_dir / runs.METRICS, self.metrics)
        self._saved_seconds = self.seconds

    def _load_checkpoint(self) -> None:
        tensors, metadata = runs.read_safetensors(self.run_dir / runs.CHECKPOINT)
        progress = metadata["progress"]
        self._fresh_state(self.lr)
        with torch.no_grad():
            self.params.flat.copy_(tensors["parameters"])
        opt_state = self.optimizer.state_dict()
        shapes = {"step": (), "sum": self.params.flat.shape, "exp_avg": self.params.flat.shape,
                  "exp_avg_sq": self.params.flat.shape}
        opt_state["state"] = {0: {k[len("optimizer."):]: v.reshape(shapes[k[len("optimizer."):]])
                                  for k, v in tensors.items() if k.startswith("optimizer.")}}
        self.optimizer.load_state_dict(opt_state)
        self.generator.set_state(tensors["generator"])
        self._order = tensors["order"].to(self.device)
        self.step, self._position, self.seconds = progress["step"], progress["position"], progress["seconds"]
        self._saved_seconds = self.seconds
        # Rows logged after the checkpoint are dropped: they will be produced again.
        self.metrics = [r for r in runs.read_metrics(self.run_dir / runs.METRICS)
                        if r["samples_evaluated"] <= self.samples_evaluated]

    def _write_status(self, state: str, message: str = "", **extra) -> None:
        runs.write_json(self.run_dir / runs.STATUS, {
            "state": state, "message": message, "samples_evaluated": self.samples_evaluated,
            "total_samples": self.config.samples, "updated": time.time(), **extra})

    def _event(self, kind: str, **values) -> TrainEvent:
        rate = self.samples_evaluated / self.seconds if self.seconds > 0 else 0.0
        return TrainEvent(kind, self.samples_evaluated, self.config.samples, self.seconds, rate, **values)

    # The loop.
    def events(self) -> Iterator[TrainEvent]:
        """Trains until the budget is spent or `stop()` is called, yielding progress as it goes."""
        if self.lr is None:
            yield from self._choose_step_size()
        runs.write_json(self.run_dir / runs.CONFIG, {
            "train_config": self.config.to_dict(), "model_config": self.model_config.to_dict(),
            "lr": self.lr, "trial_scores": self.trial_scores, "device": str(self.device)})
        eval_steps = self._eval_steps()
        self._write_status("running")
        while self.step < self.total_steps and not self._stop.is_set():
            if not self._unpaused.is_set():
                self._write_status("paused")
                yield self._event("paused")
                while not self._unpaused.wait(0.1):
                    pass
                if self._stop.is_set():
                    break
                self._write_status("running")
                yield self._event("resumed")
            started = time.perf_counter()
            values = self.train_step(with_values=self.logs_bound(self.step))
            self.seconds += time.perf_counter() - started
            if values is not None:
                if not math.isfinite(values.lower_bound):
                    yield self._fail(f"the minibatch lower bound became {values.lower_bound}")
                    return
                event = self._event("minibatch", lower_bound=values.lower_bound,
                                    reconstruction=values.reconstruction, kl=values.kl)
                self.metrics.append(event.to_row())
                yield event
            if self.step in eval_steps:
                event = self._checkpoint(final=self.step == self.total_steps)
                yield event
                if event.kind == "failed":
                    return
            elif self.seconds - self._saved_seconds >= self.config.checkpoint_seconds:
                # Evaluations thin out on a log scale; a killed run loses at most this much. Only good states are
                # kept: a step that logs no bound could have made the parameters non-finite unseen.
                if not bool(torch.isfinite(self.params.flat).all()):
                    yield self._fail("the parameters became non-finite")
                    return
                self._save_checkpoint()
        if self.step < self.total_steps:  # stopped early: keep a checkpoint of exactly where it stopped
            event = self._checkpoint(final=False)
            if event.kind == "failed":
                yield event
                return
        kind = "finished" if self.step >= self.total_steps else "stopped"
        last = next((r for r in reversed(self.metrics) if "test_lower_bound" in r), {})
        summary = {"train_lower_bound": last.get("train_lower_bound"), "test_lower_bound": last.get("test_lower_bound"),
                   "samples_per_second": self._event(kind).samples_per_second}
        self._write_status(kind, **summary)
        yield self._event(kind, train_lower_bound=summary["train_lower_bound"],
                          test_lower_bound=summary["test_lower_bound"], lr=self.lr)

    def _checkpoint(self, final: bool) -> TrainEvent:
        train_bound, test_bound = self._evaluate(final)
        if not (math.isfinite(train_bound) and math.isfinite(test_bound)):
            return self._fail(f"the lower bound became {train_bound} (train), {test_bound} (test)")
        self.metrics.append(self._event("evaluation", train_lower_bound=train_bound,
                                        test_lower_bound=test_bound).to_row())
        self._save_checkpoint((train_bound, test_bound))
        return self._event("evaluation", train_lower_bound=train_bound, test_lower_bound=test_bound)

    def _fail(self, what: str) -> TrainEvent:
        message = (f"Training stopped at {self.samples_evaluated} samples: {what}. The last good checkpoint in "
                   f"{self.run_dir} is kept. A smaller step size (lr {self.lr} was used) usually avoids this.")
        self._write_status("failed", message)
        return self._event("failed", message=message)

    def run(self, callback: Callable[[TrainEvent], None] | None = None) -> TrainEvent:
        """Runs `events()` to the end, passing each event to `callback`; returns the last event."""
        event = None
        for event in self.events():
            if callback is not None:
                callback(event)
        return event
