"""The training loop of Algorithm 1: minibatches, the algorithm's gradient, an optimizer step, evaluations and
checkpoints, with pause, resume and stop from any thread. The loop does not know which objective it optimises
(that is the algorithm's, `algorithms.py`), when it evaluates (`schedules.py`) or what an evaluation scores
(`evaluation.py`); the run's files are written by its recorder (`runs.RunRecorder`) from the events.

`Trainer.from_config(config)` builds a run (data, model, device, run folder); `Trainer.resume_from(run_dir)`
continues one from its last checkpoint, exactly. `trainer.events()` yields progress as `TrainEvent`s, and
`trainer.run(callback)` drives it to the end. The trainer holds its run folder's lock while it exists and
releases it when training ends (or on `close()`).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, runs, schedules, userdata
from . import data as data_module
from .algorithms import Algorithm, Minibatch, make_algorithm
from .config import STEP_SIZE_CANDIDATES, TrainConfig, device_problem, resolve_device
from .evaluation import EvaluationSets, describe_sets, evaluation_sets, scores
from .events import EVALUATION_KEYS, EventKind, TrainEvent
from .fast_step import FlatParameters, StepValues
from .models import VAE
from .runs import RunRecorder

SEED_OFFSETS = {"stream": 1, "evaluation": 2}  # the training stream's and the evaluations' generators: seed + these
OPTIMIZERS = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


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


def make_optimizer(config: TrainConfig, parameters: torch.Tensor, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    fused = parameters.device.type == "cpu" or config.optimizer != "adagrad"  # fused Adagrad is CPU-only
    extra = {"momentum": 0.9} if config.optimizer == "sgd" else {}
    return OPTIMIZERS[config.optimizer]([parameters], lr=lr, weight_decay=weight_decay, fused=fused, **extra)


class TrainingFailed(Exception):
    """Training cannot go on (a non-finite bound, parameter or evaluation); the message says what happened."""


def _values(values: StepValues | None) -> StepValues:
    assert values is not None  # asked for with_values
    return values


def step_size_trial(trainer: Trainer) -> Generator[TrainEvent, None, tuple[float, dict[str, float]]]:
    """Section 5: each candidate step size trains `trial_steps` steps from the same fresh start, and the one whose
    minibatch bounds over the second half of its steps are best is chosen; returns it with every candidate's
    score. The trainer is left at the fresh start."""
    found = {}
    for lr in STEP_SIZE_CANDIDATES[trainer.config.optimizer]:
        trainer.reset(lr)
        bounds = [_values(trainer.train_step(with_values=True)).lower_bound for _ in range(trainer.config.trial_steps)]
        tail = bounds[len(bounds) // 2:]
        found[lr] = float(np.mean(tail)) if all(map(math.isfinite, tail)) else -math.inf
        yield trainer.emit(EventKind.TRIAL, lower_bound=found[lr], lr=lr, message=f"step size {lr}: mean bound {found[lr]:.2f}")
    chosen = max(found, key=lambda lr: found[lr])
    tried = ", ".join(f"{lr}: {score:.2f}" for lr, score in found.items())
    yield trainer.emit(EventKind.TRIAL, lr=chosen, message=f"step size {chosen} chosen (mean bound per step size: {tried})")
    trainer.reset(chosen)
    return chosen, {str(lr): score for lr, score in found.items()}


class Control:
    """Pause, resume and stop, from any thread; the loop asks `paused` and `stopping` between steps."""

    def __init__(self):
        self._stop, self._unpaused = threading.Event(), threading.Event()
        self._unpaused.set()

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

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self) -> None:
        while not self._unpaused.wait(0.1):
            pass


def _dataset(config: TrainConfig, dataset: data_module.Dataset | None, progress,
             recorded: dict | None = None) -> data_module.Dataset:
    """The dataset `config` names: the one given, checked, or loaded; for a run that recorded the SHA-256 of the
    user's data it trained on (its config.json's `data`), refused when the data is no longer the same."""
    dataset = dataset or data_module.load(config.dataset, config.data_dir, progress=progress, **config.data_options,
                                          sha256=(recorded or {}).get("sha256"))
    if dataset.name != config.dataset:
        raise ValueError(f"the dataset given is {dataset.name!r} but the config names {config.dataset!r}")
    return dataset


def _model(config: TrainConfig, dataset: data_module.Dataset) -> VAE:
    init = torch.Generator().manual_seed(config.seed)  # the same θ, φ for every candidate step size
    return VAE(config.model_config(dataset.spec), generator=init).to(resolve_device(config.device))


def _device_to_continue_on(config: TrainConfig, record: runs.RunRecord, run_dir: str | Path) -> str:
    """A run continues on the kind of device it began on: its random stream is that device's generator (a CPU's
    and a GPU's differ in kind and state), so "auto" on another machine must not move it."""
    began_on = (record.config or {}).get("device")
    if not began_on:
        return config.device
    kind = torch.device(began_on).type
    if device_problem(kind):
        raise runs.RunError(f"{run_dir} began on {began_on}, and a run continues on the kind of device it began on "
                            f"(its random stream is that device's), but PyTorch sees no CUDA GPU here: continue it on "
                            f"a machine with one")
    return kind


class Trainer(Control):
    """Trains `model` on `dataset` by the algorithm `config` names, writing the run's files to `run_dir`."""

    def __init__(self, config: TrainConfig, model: VAE, dataset: data_module.Dataset, run_dir: Path,
                 lock: runs.RunLock | None = None):
        self.config, self.model, self.dataset, self.run_dir, self.lock = config, model, dataset, Path(run_dir), lock
        self.device = next(model.parameters()).device
        self.x_train = torch.tensor(dataset.train[:config.train_size], device=self.device)  # Fig. 3 trains on 1000
        self.sets = evaluation_sets(self.x_train, torch.tensor(dataset.test, device=self.device), config.binarize,
                                    config.seed)
        self.algorithm: Algorithm = make_algorithm(config, model, len(self.x_train))
        self.params = FlatParameters(self.algorithm.module)
        self._initial = self.params.flat.detach().clone()  # every candidate step size starts from here
        self.stream = MinibatchStream(self.x_train, config.batch_size, config.binarize)
        self.recorder = RunRecorder(self.run_dir)
        self.lr: float | None = None if config.lr == "auto" else float(config.lr)
        self.trial_scores: dict[str, float] = {}
        self.notes: list[str] = []  # what a resumed run lost, for the caller to say
        self.total_steps = schedules.total_steps(config.samples, config.batch_size)
        super().__init__()
        self.reset(self.lr or STEP_SIZE_CANDIDATES[config.optimizer][0])

    # Factories: a new run, or the continuation of one.
    @classmethod
    def from_config(cls, config: TrainConfig, run_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                    dataset: data_module.Dataset | None = None, progress: data_module.Progress | None = None,
                    by: str = "the library") -> Trainer:
        """A new run of `config` in `run_dir` (a new or empty folder) or a fresh folder under `runs_dir`; `by` says
        who trains it (the run's lock shows it). If the trainer cannot be built, the folder is left as it was."""
        config.validate()
        dataset = _dataset(config, dataset, progress)
        with runs.claimed_new_run(run_dir, runs_dir, config.run_label, by) as lock:
            return cls(config, _model(config, dataset), dataset, lock.run_dir, lock)

    @classmethod
    def resume_from(cls, run_dir: str | Path, samples: int | None = None, dataset: data_module.Dataset | None = None,
                    progress: data_module.Progress | None = None, by: str = "the library") -> Trainer:
        """Continues the run in `run_dir` from its last checkpoint, optionally to a larger budget."""
        with runs.claimed_run_to_continue(run_dir, by) as (lock, record):
            config = TrainConfig.from_dict(record.train_config)
            if samples is not None:
                config.samples = runs.check_continue_budget(run_dir, samples)
            config.device = _device_to_continue_on(config, record, run_dir)
            config.validate()
            dataset = _dataset(config, dataset, progress, (record.config or {}).get("data"))
            trainer = cls(config, _model(config, dataset), dataset, Path(run_dir), lock)
            trainer._restore(record)
            return trainer

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
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed + SEED_OFFSETS["stream"])
        # MAP under p(θ) = N(0, I): ∇ -log p(θ)/N = θ/N per datapoint (full VB has the prior in its own KL)
        decay = 1.0 / len(self.x_train) if self.config.weight_decay and self.algorithm.uses_weight_decay else 0.0
        self.optimizer = make_optimizer(self.config, self.params.flat, lr, decay)
        self.stream.shuffle(self.generator)
        self.step = 0
        self.seconds = self._saved_seconds = 0.0  # training time so far, and at the last checkpoint

    def _training_state(self) -> checkpoint.TrainingState:
        return checkpoint.TrainingState(self.params.flat, self.optimizer, self.generator, {"order": self.stream.order},
                                        self.algorithm.state())

    def _restore(self, record: runs.RunRecord) -> None:
        assert record.config is not None  # claimed_run_to_continue refuses a run without one
        self.lr, self.trial_scores = record.config["lr"], record.config.get("trial_scores", {})
        self.reset(self.lr)
        progress = checkpoint.restore(self.run_dir / runs.CHECKPOINT, self._training_state())
        progress = runs.checked_progress(progress, self.config.to_dict())
        self.step, self.stream.position, self.seconds = progress["step"], progress["position"], progress["seconds"]
        self._saved_seconds = self.seconds
        # Rows logged after the checkpoint are dropped: they will be produced again.
        self.recorder.rows = [r for r in record.metrics if r["samples_evaluated"] <= self.samples_evaluated]
        if runs.METRICS in record.problems:
            self.notes.append(f"{record.problems[runs.METRICS]}: the learning curve before {self.samples_evaluated:,} "
                              f"samples keeps only those rows; training continues from the checkpoint")

    @property
    def metrics(self) -> list[dict]:
        return self.recorder.rows

    @property
    def samples_evaluated(self) -> int:
        return self.step * self.config.batch_size

    # One iteration of Algorithm 1.
    def train_step(self, with_values: bool = False) -> StepValues | None:
        """A minibatch, then for each of the algorithm's updates its noise, its gradient and an optimizer step."""
        if self.config.lr_schedule == "iwae" and self.lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = schedules.iwae_step_size(self.lr, self.samples_evaluated, len(self.x_train))
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

    # Events: every report goes through `emit`, which hands it to the run's recorder first.
    def emit(self, kind: EventKind, **values) -> TrainEvent:
        rate = self.samples_evaluated / self.seconds if self.seconds > 0 else 0.0
        event = TrainEvent(kind, self.samples_evaluated, self.config.samples, self.seconds, rate, **values)
        self.recorder.record(event)
        return event

    def _save_checkpoint(self, evaluated: dict[str, float] | None = None) -> TrainEvent:
        """What a resumed run continues from; with the scores of an evaluation, the model too (between evaluations
        model.safetensors stays the last evaluated model, which its metadata describes)."""
        progress = {"step": self.step, "position": self.stream.position, "seconds": self.seconds,
                    "samples_evaluated": self.samples_evaluated}
        model = None if evaluated is None else (self.algorithm.evaluation_model(), {
            "dataset": self.config.dataset, "algorithm": self.algorithm.name, "samples_evaluated": self.samples_evaluated,
            **model_data_options(self.config, self.dataset), **evaluated})
        self.recorder.save_checkpoint(checkpoint.pack(self._training_state(), progress), model)
        self._saved_seconds = self.seconds
        return self.emit(EventKind.CHECKPOINT)

    def _evaluation(self) -> Iterator[TrainEvent]:
        """Scores the model with a generator of its own (evaluation never moves the training stream) on a subset
        of the training points (all of them at the end) and the test set; then a checkpoint with the model."""
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed + SEED_OFFSETS["evaluation"])
        final = self.step == self.total_steps
        sets = self.sets if final else EvaluationSets(self.sets.train[:self.config.eval_train_size], self.sets.test)
        marginal_points = self.config.marginal_points if self.config.evaluation == "marginal" else None
        evaluated = scores(self.algorithm.evaluation_model(), sets, generator, self.algorithm.learns_encoder,
                           marginal_points, self.config.iw_k)
        bad = {k: v for k, v in evaluated.items() if not math.isfinite(v)}
        if bad:
            raise TrainingFailed("the evaluation came out " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in bad.items()))
        yield self.emit(EventKind.EVALUATION, **evaluated)
        yield self._save_checkpoint(evaluated)

    # The loop.
    def events(self) -> Iterator[TrainEvent]:
        """Trains until the budget is spent or `stop()` is called, yielding progress as it goes."""
        try:
            if self.lr is None:
                self.lr, self.trial_scores = yield from step_size_trial(self)
            yield self.emit(EventKind.STARTED, lr=self.lr, run_config=recorded_config(self))
            yield from self._train()
        except TrainingFailed as failure:
            yield self.emit(EventKind.FAILED, message=failure_message(self, str(failure)))
        except OSError as e:  # a file of the run could not be written: the disk full, a file-size limit, read-only
            yield self.emit(EventKind.FAILED, message=write_failure_message(self, e))
        else:
            last = self.recorder.last_evaluation
            ended = EventKind.FINISHED if self.step >= self.total_steps else EventKind.STOPPED
            yield self.emit(ended, lr=self.lr, **{k: last.get(k) for k in EVALUATION_KEYS})
        finally:
            self.close()

    def _train(self) -> Iterator[TrainEvent]:
        evaluation_steps = schedules.evaluation_steps(self.config.samples, self.config.batch_size)
        while self.step < self.total_steps and not self.stopping:
            if self.paused:
                yield self.emit(EventKind.PAUSED)
                self.wait_while_paused()
                if self.stopping:
                    break
                yield self.emit(EventKind.RESUMED)
            started = time.perf_counter()
            values = self.train_step(with_values=schedules.logs_bound(self.step, self.total_steps))
            self.seconds += time.perf_counter() - started
            if values is not None:
                if not math.isfinite(values.lower_bound):
                    raise TrainingFailed(f"the minibatch lower bound became {values.lower_bound}")
                yield self.emit(EventKind.MINIBATCH, lower_bound=values.lower_bound,
                                reconstruction=values.reconstruction, kl=values.kl)
            if self.step in evaluation_steps:
                yield from self._evaluation()
            elif self.seconds - self._saved_seconds >= self.config.checkpoint_seconds:
                # Evaluations thin out on a log scale; a killed run loses at most this much. Only good states are
                # kept: a step that logs no bound could have made the parameters non-finite unseen.
                if not bool(torch.isfinite(self.params.flat).all()):
                    raise TrainingFailed("the parameters became non-finite")
                yield self._save_checkpoint()
        if self.step < self.total_steps:  # stopped early: keep a checkpoint of exactly where it stopped
            yield from self._evaluation()

    def run(self, callback: Callable[[TrainEvent], None] | None = None) -> TrainEvent:
        """Runs `events()` to the end, passing each event to `callback`; returns the last event."""
        event = None
        for event in self.events():
            if callback is not None:
                callback(event)
        assert event is not None  # events() always ends with an event that says how
        return event


def recorded_config(trainer: Trainer) -> dict:
    """What config.json records: the settings, the network, the step size chosen and how, where it trained, and the
    data (for the user's: its path, SHA-256, preprocessing and split, which a resumed run checks)."""
    return {"train_config": trainer.config.to_dict(), "model_config": trainer.model.config.to_dict(), "lr": trainer.lr,
            "trial_scores": trainer.trial_scores, "device": str(trainer.device), "algorithm": trainer.algorithm.name,
            "step": trainer.algorithm.step, "evaluation_data": describe_sets(trainer.config.binarize),
            "data": userdata.describe(trainer.dataset, trainer.config.likelihood)}


def model_data_options(config: TrainConfig, dataset: data_module.Dataset) -> dict:
    """How a model file's reader finds the data it was trained on: the user's data's options and SHA-256."""
    source = dataset.spec.source
    return {} if source is None else {"data_options": {**config.data_options, "sha256": source.sha256}}


def failure_message(trainer: Trainer, what: str) -> str:
    kept = (f"The last good checkpoint in {trainer.run_dir} is kept." if (trainer.run_dir / runs.CHECKPOINT).is_file()
            else "No checkpoint had been saved yet.")
    return (f"Training stopped at {trainer.samples_evaluated:,} samples: {what}. {kept} A smaller step size (lr "
            f"{trainer.lr} was used) usually avoids this.")


def write_failure_message(trainer: Trainer, error: OSError) -> str:
    what = Path(error.filename).name if error.filename else "a file of the run"
    kept = (f"The last good checkpoint in {trainer.run_dir} is kept: free some space (or raise the file-size limit) "
            f"and continue it with `python -m vae_core train --resume {trainer.run_dir}`."
            if (trainer.run_dir / runs.CHECKPOINT).is_file() else "No checkpoint had been saved yet.")
    return (f"Training stopped at {trainer.samples_evaluated:,} samples: {what} could not be written "
            f"({error.strerror or error}). {kept}")
