"""Grids of runs on Ray Tune: embedded and local by default, the same code on a cluster by address.

A sweep is a grid over training settings (each a list of values), or the grid of one of the paper's figures (its
record in paper.py, `--figure 2`). Each trial is one ordinary run of the training loop writing its ordinary run
folder under the sweep folder, and reporting its evaluations to Tune as it goes. The sweep folder holds `sweep.json` (the grid), one run folder per trial, and
Tune's own state under `.tune/` (or `--storage`, which may be a cloud URI).

Trials are idempotent: a trial whose run folder has finished reports its results and returns; one with a
checkpoint continues from it. So `--resume` (Tune's own restore, which skips finished trials) loses nothing
finished and repeats nothing, even after the driver was killed.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import runs
from .algorithms import ALGORITHMS
from .config import TrainConfig, settings

SWEEP = runs.SWEEP_FILE
SHORT = {"dataset": "", "latent_dim": "J", "algorithm": "", "seed": "seed", "samples_per_point": "L", "batch_size": "M",
         "estimator": "est", "lr": "lr", "samples": "n", "optimizer": "", "hidden": "h", "train_size": "N"}


def parse_grid_file(path: str | Path) -> dict[str, list]:
    """A grid from a JSON or YAML file: {"latent_dim": [2, 5], "algorithm": ["aevb", "wake-sleep"], ...}."""
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml
        grid = yaml.safe_load(text)
    else:
        grid = json.loads(text)
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"{path} must map each setting to a non-empty list of values, e.g. {{\"latent_dim\": [2, 5]}}")
    return grid


def expand(grid: dict[str, list], base: dict | None = None) -> list[dict]:
    """Every combination of the grid's values, over `base`, each a TrainConfig's fields."""
    unknown = sorted(set(grid) - set(settings()))
    if unknown:
        raise ValueError(f"unknown settings in the grid: {', '.join(unknown)}; the settings are {', '.join(settings())}")
    names = list(grid)
    return [{**(base or {}), **dict(zip(names, values))} for values in itertools.product(*grid.values())]


def trial_name(settings_: dict, varying: list[str]) -> str:
    """A readable, filesystem-safe name from the settings that vary across the grid."""
    parts = []
    for name in varying:
        value = settings_[name]
        value = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{SHORT.get(name, name)}{value}")
    return "-".join(parts).replace("/", "_") or "trial"


@dataclass
class Sweep:
    """The trials of one sweep: their settings and names, and where their run folders go."""
    sweep_dir: Path
    trials: dict[str, dict] = field(default_factory=dict)  # name -> TrainConfig fields

    @classmethod
    def from_configs(cls, sweep_dir: str | Path, configs: list[dict]) -> Sweep:
        varying = [k for k in configs[0] if len({json.dumps(c.get(k)) for c in configs}) > 1] if len(configs) > 1 else []
        trials = {}
        for config in configs:
            name = trial_name(config, varying)
            if name in trials:
                raise ValueError(f"two trials would share the run folder {name}: the grid repeats a combination")
            trials[name] = TrainConfig.from_dict(config).to_dict()
        return cls(Path(sweep_dir), trials)

    def save(self, command: list[str]) -> None:
        runs.write_json(self.sweep_dir / SWEEP, {"trials": self.trials, "command": command, "created": time.time()})

    @classmethod
    def load(cls, sweep_dir: str | Path) -> Sweep:
        saved = runs.read_json(Path(sweep_dir) / SWEEP)
        return cls(Path(sweep_dir), saved["trials"])

    def problems(self) -> dict[str, str]:
        """Trials whose settings cannot be trained here, with the reason: they fail at once, the others go on."""
        return {name: "; ".join(p.values()) for name, config in self.trials.items()
                if (p := TrainConfig.from_dict(config).problems())}


def expected_cost(config: dict) -> float:
    """A trial's training arithmetic, roughly: samples x L x its network's parameters x its algorithm's
    `relative_cost`. Only the order matters: the sweep starts the costliest trials first (longest processing time
    first), so that the trials still running at the end, while other slots idle, are short ones."""
    c = TrainConfig.from_dict(config)
    if c.problems(machine=False):  # it fails at once, whatever its place
        return 0.0
    return c.samples * c.samples_per_point * c.model_config().parameter_count() * ALGORITHMS[c.algorithm].relative_cost


def train_trial(space: dict) -> None:
    """One trial, in a Ray worker: the ordinary training loop on the trial's run folder (new, continued from its
    checkpoint, or already finished), reporting each evaluation to Tune. Threads follow the CPUs it was given."""
    import ray
    import torch
    from ray import tune

    from .events import EventKind
    from .training import Trainer

    trial = space["trial"]
    torch.set_num_threads(max(1, math.floor(trial["cpus"])))
    run_dir = Path(trial["run_dir"])
    node = ray.get_runtime_context().get_node_id()
    config = TrainConfig.from_dict(trial["config"])
    if trial["gpus"] > 0:
        config.device = "cuda"
    record = runs.read_run(run_dir, metrics=False) if run_dir.exists() else None
    if record is not None and record.state == runs.RunState.FINISHED:  # done before the driver was stopped
        last = runs.read_run(run_dir).last_evaluation
        tune.report({"samples_evaluated": record.samples_done, "node": node, "status": "finished", **_bounds(last)})
        return
    if record is not None and (run_dir / runs.CHECKPOINT).is_file():
        trainer = Trainer.resume_from(run_dir, samples=config.samples, by="a sweep") if record.samples_done < config.samples \
            else Trainer.resume_from(run_dir, by="a sweep")
    else:
        if run_dir.exists():  # a trial killed before its first checkpoint left only a lock or a config
            shutil.rmtree(run_dir)
        trainer = Trainer.from_config(config, run_dir, by="a sweep")
    for event in trainer.events():
        if event.kind == EventKind.EVALUATION:
            tune.report({"samples_evaluated": event.samples_evaluated, "node": node, "status": "running",
                         "train_lower_bound": event.train_lower_bound, "test_lower_bound": event.test_lower_bound})
        elif event.kind == EventKind.FAILED:
            raise RuntimeError(event.message)
    last = runs.read_run(run_dir).last_evaluation
    tune.report({"samples_evaluated": trainer.samples_evaluated, "node": node, "status": "finished", **_bounds(last)})


def _bounds(row: dict) -> dict:
    return {"train_lower_bound": row.get("train_lower_bound"), "test_lower_bound": row.get("test_lower_bound")}


def progress_callback(total: int):
    """A Tune callback printing, on stderr, the trials done, running and failed, and the best test bound so far."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.best, self.last = None, 0.0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            bound = result.get("test_lower_bound")
            if bound is not None and (self.best is None or bound > self.best[0]):
                self.best = (bound, trial.config["trial"]["name"])
            self.show(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.show(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.show(trials, force=True)

        def show(self, trials, force: bool = False) -> None:
            if not force and time.monotonic() - self.last < 5.0:
                return
            self.last = time.monotonic()
            states = [t.status for t in trials]
            best = f"; best test bound {self.best[0]:.2f} ({self.best[1]})" if self.best else ""
            print(f"sweep: {states.count('TERMINATED')} done, {states.count('RUNNING')} running, "
                  f"{states.count('ERROR')} failed of {total}{best}", file=sys.stderr, flush=True)

    return Progress()


def start_ray(address: str | None) -> str:
    """Joins the Ray cluster at `address` ("auto", or $RAY_ADDRESS) or starts an embedded one on this machine's
    cores; returns the address in use."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return address or "local"
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        return "local"
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    return address


def run(sweep: Sweep, address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
        storage: str | None = None, resume: bool = False, max_concurrent: int | None = None) -> dict:
    """Runs every trial of `sweep` on Ray Tune and returns the summary (engine, address, sweep_dir, wall_seconds,
    trials); a trial that fails is reported with its message while the others go on."""
    from ray import tune

    started = time.perf_counter()
    sweep_dir = sweep.sweep_dir.resolve()
    storage = storage or str(sweep_dir / ".tune")
    address = start_ray(address)
    trainable = tune.with_resources(train_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    experiment = os.path.join(storage, "tune") if "://" not in storage else storage.rstrip("/") + "/tune"
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
    else:
        data_dir = os.environ.get("VAE_DATA_DIR")  # where this machine finds the data; workers' folders may differ
        space = [{"name": name, "config": {**config, "data_dir": config["data_dir"] or (data_dir and str(Path(data_dir).resolve()))},
                  "run_dir": str(sweep_dir / name), "cpus": cpus_per_trial, "gpus": gpus_per_trial}
                 for name, config in sorted(sweep.trials.items(), key=lambda item: -expected_cost(item[1]))]
        tuner = tune.Tuner(trainable, param_space={"trial": tune.grid_search(space)},
                           tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True),
                           run_config=tune.RunConfig(name="tune", storage_path=storage, verbose=0,
                                                     callbacks=[progress_callback(len(sweep.trials))],
                                                     failure_config=tune.FailureConfig(max_failures=1)))  # a killed trial: once more
    try:
        results = tuner.fit()
    except Exception as e:  # Ray stopped the whole sweep: a node out of memory, a lost cluster
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]  # Ray's first line says what happened
        raise runs.RunError(f"the sweep stopped: {reason} Finished trials are kept, and the others continue from "
                            f"their last checkpoint with `python -m vae_core sweep --resume {sweep_dir}`") from e
    trials = summary_rows(sweep, results)
    states = [t["status"] for t in trials]
    print(f"sweep: {states.count('finished')} done, {states.count('failed')} failed, {states.count('stopped')} stopped "
          f"of {len(trials)} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return {"engine": "ray", "address": address, "sweep_dir": str(sweep_dir),
            "wall_seconds": time.perf_counter() - started, "trials": trials}


def summary_rows(sweep: Sweep, results) -> list[dict]:
    """Each trial's row of the summary, in the sweep's order, from Tune's results. A trial Tune holds no result for
    (a restored sweep stopped again before the trial began anew) is read from its run folder."""
    rows = {}
    for result in results:
        if result.config is None:
            continue
        trial, metrics = result.config["trial"], result.metrics or {}
        status = "failed" if result.error else ("finished" if metrics.get("status") == "finished" else "stopped")
        rows[trial["name"]] = {"status": status, **_bounds(metrics), "samples_evaluated": metrics.get("samples_evaluated"),
                               "node": metrics.get("node"), **({"message": _message(result.error)} if result.error else {})}
    trials = []
    for name, config in sweep.trials.items():
        run_dir = sweep.sweep_dir.resolve() / name
        row = rows.get(name)
        if row is None:
            record = runs.read_run(run_dir) if run_dir.exists() else None
            row = {"status": "finished" if record and record.state == runs.RunState.FINISHED else "stopped",
                   **_bounds((record and record.last_evaluation) or {}),
                   "samples_evaluated": record.samples_done if record else 0, "node": None}
        trials.append({"name": name, **{k: v for k, v in config.items() if k in SHORT}, "run_dir": str(run_dir), **row})
    return trials


def _message(error: BaseException) -> str:
    """The message a trial failed with, without Ray's wrapping."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__
