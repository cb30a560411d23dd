"""The training loop of Algorithm 1: minibatches, the algorithm's gradient, an optimizer step, evaluations and
checkpoints, with pause, resume and stop from any thread. The loop does not know which objective it optimises:
that is the algorithm's (`algorithms.py`).

`Trainer.from_config(config)` builds a run (data, model, device, run folder); `Trainer.resume_from(run_dir)`
continues one from its last checkpoint, exactly. `trainer.events()` yields progress as `TrainEvent`s, and
`trainer.run(callback)` drives it to the end. The trainer holds its run folder's lock while it exists and
releases it when training ends (or on `close()`).
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import checkpoint, runs
from . import data as data_module
from .algorithms import Algorithm, Minibatch, make_algorithm
from .config import STEP_SIZE_CANDIDATES, TrainConfig, resolve_device
from .estimators import estimator_b_terms
from .events import EventKind, TrainEvent
from .fast_step import FlatParameters, StepValues
from .models import VAE
from .runs import RunError, RunRecorder


class MinibatchStream:
    """Minibatches of M distinct training rows, reshuffled each epoch, optionally binarised (Bernoulli data)."""

    def __init__(self, x_train: torch.Tensor, batch_size: int, binarize: bool):
        self.x, self.M, self.binarize = x_train, batch_size, binarize
        self.order = torch.empty(len(x_train), dtype=torch.long, device=x_train.device)
        self.position = 0

    def shuffle(self, generator: torch.Generator) -> None:
        self.order = torch.randperm(len(self.x), generator=generator, device=self.x.device)
        self.position = 0

    def next(self, generator: torch.Generator) -> Minibatch:
        if self.position + self.M > len(self.order):  # a new epoch: reshuffle
            self.shuffle(generator)
        index = self.order[self.position:self.position + self.M]  # (M,)
        x = torch.index_select(self.x, 0, index)  # (M, D)
        self.position += self.M
        if self.binarize:
            x = torch.bernoulli(x, generator=generator)
        return Minibatch(x, index)


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


def step_size_trial(trainer: "Trainer") -> Iterator[TrainEvent]:
    """Section 5: each candidate step size trains `trial_steps` steps from the same fresh start, and the one whose
    minibatch bounds over the second half of its steps are best is kept; then training starts afresh with it."""
    scores = {}
    for lr in STEP_SIZE_CANDIDATES[trainer.config.optimizer]:
        trainer.reset(lr)
        bounds = [trainer.train_step(with_values=True).lower_bound for _ in range(trainer.config.trial_steps)]
        tail = bounds[len(bounds) // 2:]
        scores[lr] = float(np.mean(tail)) if all(map(math.isfinite, tail)) else -math.inf
        yield trainer.emit(EventKind.TRIAL, lower_bound=scores[lr], lr=lr, message=f"step size {lr}: mean bound {scores[lr]:.2f}")
    trainer.lr = max(scores, key=scores.get)
    trainer.trial_scores = {str(lr): score for lr, score in scores.items()}
    tried = ", ".join(f"{lr}: {score:.2f}" for lr, score in scores.items())
    yield trainer.emit(EventKind.TRIAL, lr=trainer.lr, message=f"step size {trainer.lr} chosen (mean bound per step size: {tried})")
    trainer.reset(trainer.lr)


class Trainer:
    """Trains `model` on `dataset` by the algorithm `config` names, writing the run's files to `run_dir`."""

    def __init__(self, config: TrainConfig, model: VAE, dataset: data_module.Dataset, run_dir: Path,
                 lock: runs.RunLock | None = None):
        self.config, self.model, self.dataset, self.run_dir, self.lock = config, model, dataset, Path(run_dir), lock
        self.device = next(model.parameters()).device
        self.x_train = torch.tensor(dataset.train[:config.train_size], device=self.device)  # Fig. 3 trains on 1000
        self.x_test = torch.tensor(dataset.test, device=self.device)
        # Trained on binarised pixels, a run is scored on binary images too: a fixed draw, the same at every evaluation.
        self.eval_train, self.eval_test = (
            (torch.tensor(data_module.binarized(dataset.train[:config.train_size], config.seed + 4), device=self.device),
             torch.tensor(data_module.binarized(dataset.test, config.seed + 5), device=self.device))
            if config.binarize else (self.x_train, self.x_test))
        self.algorithm: Algorithm = make_algorithm(config, model, self.device, len(self.x_train))
        self.params = FlatParameters(self.algorithm.module)
        self._initial = self.params.flat.detach().clone()  # every candidate step size starts from here
        self.stream = MinibatchStream(self.x_train, config.batch_size, config.binarize)
        self.recorder = RunRecorder(self.run_dir)
        self.lr: float | None = None if config.lr == "auto" else float(config.lr)
        self.trial_scores: dict[str, float] = {}
        self.notes: list[str] = []  # what a resumed run lost, for the caller to say
        self._stop, self._unpaused = threading.Event(), threading.Event()
        self._unpaused.set()
        self.reset(self.lr or STEP_SIZE_CANDIDATES[config.optimizer][0])

    # Factories: a new run, or the continuation of one.
    @classmethod
    def from_config(cls, config: TrainConfig, run_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                    dataset: data_module.Dataset | None = None, progress: data_module.Progress | None = None,
                    by: str = "the library") -> "Trainer":
        """A new run of `config` in `run_dir` (a new or empty folder) or a fresh folder under `runs_dir`; `by` says
        who trains it (the run's lock shows it)."""
        config.validate()
        dataset = dataset or data_module.load(config.dataset, config.data_dir, progress=progress)
        if dataset.name != config.dataset:
            raise ValueError(f"the dataset given is {dataset.name!r} but the config names {config.dataset!r}")
        if run_dir is None:
            run_dir = runs.new_run_dir(runs_dir, f"{config.dataset}-J{config.latent_dim}")
        lock = runs.claim_new_run(run_dir, by)
        return cls(config, cls._model(config, dataset), dataset, Path(run_dir), lock)

    @classmethod
    def resume_from(cls, run_dir: str | Path, samples: int | None = None, dataset: data_module.Dataset | None = None,
                    progress: data_module.Progress | None = None, by: str = "the library") -> "Trainer":
        """Continues the run in `run_dir` from its last checkpoint, optionally to a larger budget."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir} is not a folder; give the folder of a run to continue")
        lock = runs.RunLock(run_dir, by)  # refuses while another process trains the run
        try:
            if not (run_dir / runs.CHECKPOINT).is_file():
                raise FileNotFoundError(f"{run_dir} holds no checkpoint to resume from ({runs.CHECKPOINT} is missing)")
            record = runs.read_run(run_dir)
            for name in (runs.CONFIG, runs.CHECKPOINT):
                if name in record.problems:
                    raise RunError(f"{run_dir} cannot be continued: {record.problems[name]}")
            config = TrainConfig.from_dict(record.train_config)
            if samples is not None:
                config.samples = check_continue_budget(run_dir, samples)
            config.validate()
            dataset = dataset or data_module.load(config.dataset, config.data_dir, progress=progress)
            trainer = cls(config, cls._model(config, dataset), dataset, run_dir, lock)
            trainer.lr, trainer.trial_scores = record.config["lr"], record.config.get("trial_scores", {})
            trainer._restore(record)
            return trainer
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def _model(config: TrainConfig, dataset: data_module.Dataset) -> VAE:
        init = torch.Generator().manual_seed(config.seed)  # the same θ, φ for every candidate step size
        return VAE(config.model_config(dataset.spec), generator=init).to(resolve_device(config.device))

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

    def close(self) -> None:
        """Releases the run folder's lock: another process may now train it."""
        if self.lock is not None:
            self.lock.release()

    # State.
    def reset(self, lr: float) -> None:
        """A fresh run's state: the initial parameters, the training stream's generator, a new optimizer, the
        first epoch's order."""
        with torch.no_grad():
            self.params.flat.copy_(self._initial)
        self.algorithm.reset()
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)  # shuffles, binarisation, noise
        self.optimizer = self._make_optimizer(lr)
        self.stream.shuffle(self.generator)
        self.step = 0
        self.seconds = self._saved_seconds = 0.0  # training time so far, and at the last checkpoint

    def _make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        # MAP under p(θ) = N(0, I): ∇ -log p(θ)/N = θ/N per datapoint (full VB has the prior in its own KL)
        weight_decay = 1.0 / len(self.x_train) if self.config.weight_decay and self.algorithm.uses_weight_decay else 0.0
        fused = self.device.type == "cpu" or self.config.optimizer != "adagrad"  # fused Adagrad is CPU-only
        kind = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[self.config.optimizer]
        extra = {"momentum": 0.9} if self.config.optimizer == "sgd" else {}
        return kind([self.params.flat], lr=lr, weight_decay=weight_decay, fused=fused, **extra)

    def _training_state(self) -> checkpoint.TrainingState:
        return checkpoint.TrainingState(self.params.flat, self.optimizer, self.generator, {"order": self.stream.order},
                                        self.algorithm.state())

    def _restore(self, record: runs.RunRecord) -> None:
        self.reset(self.lr)
        progress = checkpoint.restore(self.run_dir / runs.CHECKPOINT, self._training_state())
        progress = runs.checked_progress(progress, self.config.to_dict())
        self.step, self.stream.position, self.seconds = progress["step"], progress["position"], progress["seconds"]
        self._saved_seconds = self.seconds
        # Rows logged after the checkpoint are dropped: they will be produced again.
        self.recorder.rows = [r for r in record.metrics if r["samples_evaluated"] <= self.samples_evaluated]
        if runs.METRICS in record.problems:
            self.notes.append(f"{record.problems[runs.METRICS]}: the learning curve "
                              f"before {self.samples_evaluated:,} samples keeps only those rows; training continues "
                              f"from the checkpoint")

    @property
    def metrics(self) -> list[dict]:
        return self.recorder.rows

    @property
    def samples_evaluated(self) -> int:
        return self.step * self.config.batch_size

    @property
    def total_steps(self) -> int:
        return math.ceil(self.config.samples / self.config.batch_size)

    @property
    def log_every(self) -> int:
        """Steps between logged minibatch bounds: often enough for a live chart, at most ~1000 rows a run
        up to 10^6 samples, and never more than 20 steps apart."""
        return max(1, min(self.total_steps // 1000, 20))

    def logs_bound(self, step: int) -> bool:
        """Whether a step logs its minibatch bound: every step of the first 10 * log_every, which span the
        first decades of the paper's log x axis, then every log_every-th."""
        return step < 10 * self.log_every or step % self.log_every == 0

    def _eval_steps(self) -> set[int]:
        """Steps after which the full bounds are evaluated: the first, then at 1, 2, 3 and 5 x 10^k training samples (a
        log-spaced series on the paper's x axis that lands on 10^5, 3·10^5, 10^6 and 10^7), and the last."""
        M, S = self.config.batch_size, self.total_steps
        marks = (m * 10**k for k in range(13) for m in (1, 2, 3, 5))
        return {1, S} | {math.ceil(n / M) for n in marks if M <= n and math.ceil(n / M) < S}

    # One iteration of Algorithm 1.
    def step_size(self) -> float:
        """The step size for the current step: the base one, or the IWAE schedule's for the current epoch (Burda
        et al. 2016: 3^i epochs at lr·10^(-i/7), i = 0..7, then the last)."""
        if self.config.lr_schedule == "constant":
            return self.lr
        epoch, stage, end = self.samples_evaluated / len(self.x_train), 0, 1
        while epoch >= end and stage < 7:
            stage += 1
            end += 3 ** stage
        return self.lr * 10 ** (-stage / 7)

    def train_step(self, with_values: bool = False) -> StepValues | None:
        """A minibatch, then for each of the algorithm's updates its noise, its gradient and an optimizer step."""
        if self.config.lr_schedule != "constant" and self.lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.step_size()
        batch = self.stream.next(self.generator)  # (M, D)
        self.algorithm.prepare(batch, self.generator)
        values = None
        for update in range(self.algorithm.updates_per_minibatch):
            noise = self.algorithm.draw_noise(batch, self.generator)
            last = update == self.algorithm.updates_per_minibatch - 1
            values = self.algorithm.gradient(batch, noise, self.params.grads, with_values and last)
            self.optimizer.step()
        self.step += 1
        return values

    def _evaluate(self, final: bool) -> dict[str, float]:
        """What an evaluation scores, with a generator of its own (evaluation never moves the training stream): the
        lower bound (estimator B, L = 1) on the training set (a subset but for the final evaluation) and on the test
        set; with evaluation "marginal", Appendix D's estimate of log p(x) on the first `marginal_points` of each."""
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
        model = self.algorithm.evaluation_model()
        scores = {}
        if self.algorithm.learns_encoder:  # with an untrained encoder (MCEM's) the bound says nothing
            train = self.eval_train if final else self.eval_train[:self.config.eval_train_size]
            scores["train_lower_bound"] = dataset_lower_bound(model, train, generator)[0]
            scores["test_lower_bound"] = dataset_lower_bound(model, self.eval_test, generator)[0]
        if self.config.evaluation == "marginal":
            from .marginal import MarginalConfig, marginal_log_likelihood
            n = self.config.marginal_points
            estimator = MarginalConfig.for_model(self.algorithm.learns_encoder)
            for split, x in (("train", self.eval_train[:n]), ("test", self.eval_test[:n])):
                scores[f"{split}_marginal_log_likelihood"] = marginal_log_likelihood(model, x, estimator, generator)[0].mean().item()
        return scores

    # Events: every report goes through `emit`, which hands it to the run's recorder first.
    def emit(self, kind: EventKind, **values) -> TrainEvent:
        rate = self.samples_evaluated / self.seconds if self.seconds > 0 else 0.0
        event = TrainEvent(kind, self.samples_evaluated, self.config.samples, self.seconds, rate, **values)
        self.recorder.record(event)
        return event

    def _save_checkpoint(self, scores: dict[str, float] | None = None) -> TrainEvent:
        """What a resumed run continues from; with the `scores` of an evaluation, the model too. Between evaluations
        model.safetensors stays the last evaluated model, which its metadata describes."""
        progress = {"step": self.step, "position": self.stream.position, "seconds": self.seconds,
                    "samples_evaluated": self.samples_evaluated}
        runs.write_atomic(self.run_dir / runs.CHECKPOINT, checkpoint.pack(self._training_state(), progress))
        if scores is not None:
            runs.save_model(self.algorithm.evaluation_model(), self.run_dir / runs.MODEL, {
                "dataset": self.config.dataset, "algorithm": self.algorithm.name, "samples_evaluated": self.samples_evaluated,
                **scores})
        self._saved_seconds = self.seconds
        return self.emit(EventKind.CHECKPOINT)  # the recorder writes the metrics so far

    def _evaluation(self, final: bool) -> Iterator[TrainEvent]:
        scores = self._evaluate(final)
        bad = {k: v for k, v in scores.items() if not math.isfinite(v)}
        if bad:
            yield self._fail("the evaluation came out " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in bad.items()))
            return
        yield self.emit(EventKind.EVALUATION, **scores)
        yield self._save_checkpoint(scores)

    def _fail(self, what: str) -> TrainEvent:
        kept = (f"The last good checkpoint in {self.run_dir} is kept." if (self.run_dir / runs.CHECKPOINT).is_file()
                else "No checkpoint had been saved yet.")
        return self.emit(EventKind.FAILED, message=f"Training stopped at {self.samples_evaluated:,} samples: {what}. "
                         f"{kept} A smaller step size (lr {self.lr} was used) usually avoids this.")

    # The loop.
    def events(self) -> Iterator[TrainEvent]:
        """Trains until the budget is spent or `stop()` is called, yielding progress as it goes."""
        try:
            yield from self._train()
        finally:
            self.close()

    def _train(self) -> Iterator[TrainEvent]:
        if self.lr is None:
            yield from step_size_trial(self)
        runs.write_json(self.run_dir / runs.CONFIG, {
            "train_config": self.config.to_dict(), "model_config": self.model.config.to_dict(), "lr": self.lr,
            "trial_scores": self.trial_scores, "device": str(self.device), "algorithm": self.algorithm.name,
            "step": self.algorithm.step,
            "evaluation_data": ("binarised once: train with seed+4, test with seed+5 (data.binarized)"
                                if self.config.binarize else "the grey pixels as they are")})
        yield self.emit(EventKind.STARTED, lr=self.lr)
        eval_steps = self._eval_steps()
        while self.step < self.total_steps and not self._stop.is_set():
            if self.paused:
                yield self.emit(EventKind.PAUSED)
                while not self._unpaused.wait(0.1):
                    pass
                if self._stop.is_set():
                    break
                yield self.emit(EventKind.RESUMED)
            started = time.perf_counter()
            values = self.train_step(with_values=self.logs_bound(self.step))
            self.seconds += time.perf_counter() - started
            if values is not None:
                if not math.isfinite(values.lower_bound):
                    yield self._fail(f"the minibatch lower bound became {values.lower_bound}")
                    return
                yield self.emit(EventKind.MINIBATCH, lower_bound=values.lower_bound,
                                reconstruction=values.reconstruction, kl=values.kl)
            if self.step in eval_steps:
                for event in self._evaluation(final=self.step == self.total_steps):
                    yield event
                    if event.kind == EventKind.FAILED:
                        return
            elif self.seconds - self._saved_seconds >= self.config.checkpoint_seconds:
                # Evaluations thin out on a log scale; a killed run loses at most this much. Only good states are
                # kept: a step that logs no bound could have made the parameters non-finite unseen.
                if not bool(torch.isfinite(self.params.flat).all()):
                    yield self._fail("the parameters became non-finite")
                    return
                yield self._save_checkpoint()
        if self.step < self.total_steps:  # stopped early: keep a checkpoint of exactly where it stopped
            for event in self._evaluation(final=False):
                yield event
                if event.kind == EventKind.FAILED:
                    return
        last = self.recorder.last_evaluation
        scores = {k: last.get(k) for k in ("train_lower_bound", "test_lower_bound", "train_marginal_log_likelihood",
                                           "test_marginal_log_likelihood")}
        yield self.emit(EventKind.FINISHED if self.step >= self.total_steps else EventKind.STOPPED, lr=self.lr, **scores)

    def run(self, callback: Callable[[TrainEvent], None] | None = None) -> TrainEvent:
        """Runs `events()` to the end, passing each event to `callback`; returns the last event."""
        event = None
        for event in self.events():
            if callback is not None:
                callback(event)
        return event

