"""Grids of runs on Ray Tune: embedded and local by default, the same code on a cluster by address.

A sweep is a grid over training settings (each a list of values), or the grid of one of the paper's figures (its
record in paper.py, `--figure 2`). Each trial is one ordinary run of the training loop writing its ordinary run
folder under the sweep folder, and reporting its evaluations to Tune as it goes. The sweep folder holds `sweep.json` (the grid), one run folder per trial, and
Tune's own state under `.tune/` (or `--storage`, which may be a cloud URI).

Trials are idempotent: a trial whose run folder has finished reports its results and returns; one with a
checkpoint continues from it. So `--resume`, which runs the trials of sweep.json again as a new Tune experiment
(Tune's own saved state, pickles among it, is never restored), loses nothing finished and repeats nothing, even
after the driver was killed.
"""
from __future__ import annotations

import itertools
import json
import math
import os
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


MAX_TRIALS = 10_000  # trials in one sweep: a grid beyond this is refused, its size said, before anything is built


def parse_grid_file(path: str | Path) -> dict[str, list]:
    """A grid from a JSON or YAML file: {"latent_dim": [2, 5], "algorithm": ["aevb", "wake-sleep"], ...}. A value
    written as text goes through its setting's parser, as on the command line (``samples: [1e6]``)."""
    raw = runs.read_bytes(path, runs.MAX_JSON_BYTES).decode(errors="replace")
    if str(path).endswith((".yaml", ".yml")):
        import yaml
        grid = yaml.safe_load(raw)
    else:
        grid = json.loads(raw)
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"{path} must map each setting to a non-empty list of values, e.g. {{\"latent_dim\": [2, 5]}}")
    known = settings()
    parsed = {}
    for name, values in grid.items():
        parse = known[name].parse if name in known else None
        try:
            parsed[name] = [parse(v) if parse and isinstance(v, str) else v for v in values]
        except ValueError as e:
            raise ValueError(f"{path}: {name}: {e}") from None
    return parsed


def expand(grid: dict[str, list], base: dict | None = None) -> list[dict]:
    """Every combination of the grid's values, over `base`, each a TrainConfig's fields; ValueError for an unknown
    setting or a grid of more than MAX_TRIALS combinations, before any is made."""
    unknown = sorted(set(grid) - set(settings()))
    if unknown:
        raise ValueError(f"unknown settings in the grid: {', '.join(unknown)}; the settings are {', '.join(settings())}")
    size = math.prod(len(values) for values in grid.values())
    if size > MAX_TRIALS:
        shape = " x ".join(f"{len(v)} {name}" for name, v in grid.items() if len(v) > 1)
        raise ValueError(f"the grid has {size:,} combinations ({shape}); a sweep runs at most {MAX_TRIALS:,}: give "
                         f"fewer values")
    names = list(grid)
    return [{**(base or {}), **dict(zip(names, values))} for values in itertools.product(*grid.values())]


def trial_name(settings_: dict, varying: list[str]) -> str:
    """A readable, filesystem-safe name from the settings that vary across the grid (runs.safe_name: never a path,
    never hidden, never too long)."""
    parts = []
    for name in varying:
        value = settings_[name]
        value = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{SHORT.get(name, name)}{value}")
    return runs.safe_name("-".join(parts) or "trial")


@dataclass
class Sweep:
    """The trials of one sweep: their settings and names, and where their run folders go."""
    sweep_dir: Path
    trials: dict[str, dict] = field(default_factory=dict)  # name -> TrainConfig fields

    @classmethod
    def from_configs(cls, sweep_dir: str | Path, configs: list[dict]) -> Sweep:
        """The sweep of `configs`, once every one passes the config's own checks (those that hold on any machine, and
        that the user's data, at a path, can be read): ValueError saying each value at fault otherwise, before anything
        touches the disk."""
        refused: dict[str, None] = {}  # the problems, in order, each once
        for config in configs:
            try:
                trial = TrainConfig.from_dict(config)
                problems = trial.problems(machine=False)
                if trial.own_data and not problems:  # the user's data is read where its sweep is made
                    problems = {k: v for k, v in trial.problems().items() if k == "dataset"}
            except (TypeError, ValueError) as e:
                problems = {"config": str(e)}
            for problem in problems.values():
                refused.setdefault(problem, None)
        if refused:
            raise ValueError(f"the grid holds settings that cannot be trained, so no trial is made: {'; '.join(refused)}")
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
        """The sweep saved in `sweep_dir`'s sweep.json; RunError if it is not one this project wrote (its trials'
        names must be safe folder names, their settings objects)."""
        path = Path(sweep_dir) / SWEEP
        try:
            trials = runs.read_json(path)["trials"]
            if not isinstance(trials, dict) or not all(isinstance(c, dict) for c in trials.values()):
                raise ValueError("its trials are not settings by name")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise runs.RunError(f"{path} cannot be read as a sweep ({e})") from None
        unsafe = [name for name in trials if not isinstance(name, str) or name != runs.safe_name(name)]
        if unsafe:
            raise runs.RunError(f"{path} names trials that are not plain folder names ({', '.join(map(repr, unsafe[:3]))}); "
                                f"it was not written by a sweep")
        return cls(Path(sweep_dir), trials)

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


def trial_run_dir(trial: dict) -> Path:
    """The run folder of a trial: a safe name directly inside its sweep's folder, or RunError."""
    run_dir = Path(trial["run_dir"])
    if run_dir.name != runs.safe_name(run_dir.name) or run_dir.name != trial.get("name", run_dir.name):
        raise runs.RunError(f"the trial's run folder {run_dir} is not a plain folder of its sweep")
    return run_dir


def open_trial(trial: dict):
    """The trainer of one trial (its run new, or continued from its checkpoint), or the record of its run if that
    has finished. The config passes its checks before anything touches the disk, and nothing is deleted but the
    run files of a trial killed before its first checkpoint (runs.discard_unstarted)."""
    from .training import Trainer

    config = TrainConfig.from_dict(trial["config"])
    if trial["gpus"] > 0:
        config.device = "cuda"
    config.validate()
    run_dir = trial_run_dir(trial)
    record = runs.read_run(run_dir, metrics=False) if run_dir.exists() else None
    if record is not None and record.state == runs.RunState.FINISHED:  # done before the driver was stopped
        return record
    if record is not None and (run_dir / runs.CHECKPOINT).is_file():
        return Trainer.resume_from(run_dir, samples=config.samples, by="a sweep") if record.samples_done < config.samples \
            else Trainer.resume_from(run_dir, by="a sweep")
    runs.discard_unstarted(run_dir)
    return Trainer.from_config(config, run_dir, by="a sweep")


def train_trial(space: dict) -> None:
    """One trial, in a Ray worker: the ordinary training loop on the trial's run folder (new, continued from its
    checkpoint, or already finished), reporting each evaluation to Tune. Threads follow the CPUs it was given."""
    import ray
    import torch
    from ray import tune

    from .events import EventKind

    trial = space["trial"]
    torch.set_num_threads(max(1, math.floor(trial["cpus"])))
    node = ray.get_runtime_context().get_node_id()
    trainer = open_trial(trial)
    if isinstance(trainer, runs.RunRecord):
        last = runs.read_run(trainer.path).last_evaluation
        tune.report({"samples_evaluated": trainer.samples_done, "node": node, "status": "finished", **_bounds(last)})
        return
    for event in trainer.events():
        if event.kind == EventKind.EVALUATION:
            tune.report({"samples_evaluated": event.samples_evaluated, "node": node, "status": "running",
                         "train_lower_bound": event.train_lower_bound, "test_lower_bound": event.test_lower_bound})
        elif event.kind == EventKind.FAILED:
            raise RuntimeError(event.message)
    last = runs.read_run(trainer.run_dir).last_evaluation
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


def start_ray(address: str | None) -> tuple[str, bool]:
    """Joins the Ray cluster at `address` ("auto", or $RAY_ADDRESS) or starts an embedded one on this machine's
    cores; returns the address in use, and whether this call started Ray (its caller then stops it)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return address or "local", False
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        return "local", True
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    return address, False


def run(sweep: Sweep, address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
        storage: str | None = None, max_concurrent: int | None = None) -> dict:
    """Runs every trial of `sweep` on Ray Tune and returns the summary (engine, address, sweep_dir, wall_seconds,
    trials); a trial that fails is reported with its message while the others go on.

    A stopped sweep is resumed by running it again: the trials come from sweep.json and their state from their run
    folders (finished ones report and return, the others continue from their checkpoints), so Tune's own saved state
    is never restored. `Tuner.restore` unpickles `tuner.pkl` and the pickled trials of `experiment_state-*.json`
    from the storage folder, which anyone who may write the sweep folder could have crafted; each run here is a new
    Tune experiment of its own name, and nothing of Tune's storage is read back."""
    import ray
    from ray import tune

    started = time.perf_counter()
    sweep_dir = sweep.sweep_dir.resolve()
    storage = storage or str(sweep_dir / ".tune")
    try:
        address, embedded = start_ray(address)
    except Exception as e:  # no cluster at that address, or Ray's own processes could not start
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        raise runs.RunError(f"Ray could not be started or reached ({reason}). Nothing of the sweep has run; once Ray "
                            f"is there, start it with `python -m vae_core sweep --resume {sweep_dir}`") from e
    trainable = tune.with_resources(train_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    data_dir = os.environ.get("VAE_DATA_DIR")  # where this machine finds the data; workers' folders may differ
    space = [{"name": name, "config": {**config, "data_dir": config["data_dir"] or (data_dir and str(Path(data_dir).resolve()))},
              "run_dir": str(sweep_dir / name), "cpus": cpus_per_trial, "gpus": gpus_per_trial}
             for name, config in sorted(sweep.trials.items(), key=lambda item: -expected_cost(item[1]))]
    experiment = f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # a new experiment each time, never restored
    tuner = tune.Tuner(trainable, param_space={"trial": tune.grid_search(space)},
                       tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True),
                       run_config=tune.RunConfig(name=experiment, storage_path=storage, verbose=0,
                                                 callbacks=[progress_callback(len(sweep.trials))],
                                                 failure_config=tune.FailureConfig(max_failures=1)))  # a killed trial: once more
    try:
        results = tuner.fit()
    except Exception as e:  # Ray stopped the whole sweep: a node out of memory, a lost cluster
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]  # Ray's first line says what happened
        raise runs.RunError(f"the sweep stopped: {reason} Finished trials are kept, and the others continue from "
                            f"their last checkpoint with `python -m vae_core sweep --resume {sweep_dir}`") from e
    finally:
        if embedded:  # no Ray processes outlive the sweep that started them (a library caller's process goes on)
            ray.shutdown()
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
