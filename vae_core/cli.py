"""`python -m vae_core {train,evaluate,variance,sweep,report,data}`: the engine from the command line.

Progress goes to stderr; with `--json` the last line of stdout is one JSON object. The `train` flags are
derived from the fields of `TrainConfig`: its defaults, help and choices are the ones shown here.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import data as data_module
from . import paper, runs, userdata
from .algorithms import ALGORITHMS
from .config import LIMITS, TrainConfig, device_problem, flag, parse_hidden, resolve_device, settings
from .evaluation import active_units, dataset_iw_bound, dataset_lower_bound, evaluation_sets
from .events import EventKind, TrainEvent
from .formatting import format_duration
from .training import Trainer

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "mnist-J2.safetensors"  # variance's default
IW_SAMPLES_LIMIT = 100_000  # K: the importance-weighted bound is computed in memory-bounded chunks, so this bounds time
POINTS_LIMIT = 100_000  # evaluate --points: Appendix D's estimate costs seconds per point
TRIAL_RESOURCES_LIMIT = 1024  # --cpus-per-trial, --gpus-per-trial: beyond any node's


def check_range(flag: str, value, low, high, whole: bool = True):
    """`value` if it is a (whole) number from `low` to `high`; ValueError naming `flag` and its range otherwise, before
    the command does anything with it."""
    number = isinstance(value, int) if whole else isinstance(value, (int, float)) and math.isfinite(value)
    if not number or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{flag} must be a {'whole ' if whole else ''}number from {low:,} to {high:,}, got {value!r}")
    return value


def _argument_type(parse):
    """An argparse type from one of config.py's parsers: its ValueError becomes argparse's message."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


class _Lines:
    """A log's stream for tqdm: each redraw becomes a line of its own instead of a carriage return."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _progress_bar(total: int, unit: str) -> tqdm:
    """A tqdm bar on stderr: redrawn in place on a terminal, a line every few seconds in a log."""
    tty = sys.stderr.isatty()
    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr if tty else _Lines(sys.stderr), ascii=not tty,
                mininterval=0.2 if tty else 5.0, dynamic_ncols=tty, ncols=None if tty else 160,
                bar_format="{percentage:5.1f}% |{bar:30}| {n_fmt}/{total_fmt} " + unit + "s [{elapsed}]{postfix}")


class DownloadBars:
    """A tqdm bar per file downloaded (data.Progress)."""

    def __init__(self):
        self.bars: dict[str, tqdm] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        bar = self.bars.get(name) or self.bars.setdefault(name, _progress_bar(total or 0, "B"))
        bar.set_postfix_str(f"downloading {name}", refresh=False)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()


def _show_training(bar: tqdm, event: TrainEvent) -> None:
    if event.kind == EventKind.TRIAL:
        tqdm.write(f"step-size trial: {event.message}", file=sys.stderr)
        return
    rate = event.samples_per_second
    left = format_duration((event.total_samples - event.samples_evaluated) / rate if rate else float("nan"))
    text = f"{rate:,.0f} samples/s, {left} left"
    if event.lower_bound is not None:
        text += f", minibatch bound {event.lower_bound:.2f}"
    if event.test_lower_bound is not None:
        text += f", train {event.train_lower_bound:.2f}, test {event.test_lower_bound:.2f} nats"
    bar.total = event.total_samples
    bar.set_postfix_str(text, refresh=False)
    bar.update(event.samples_evaluated - bar.n)


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def _config_from(args) -> TrainConfig:
    given = {name: getattr(args, name) for name in settings() if hasattr(args, name)}
    if "hidden" in given:
        given["hidden"] = parse_hidden(given["hidden"])
    return TrainConfig(**given)


def cmd_train(args) -> int:
    started = time.perf_counter()
    downloads = DownloadBars()
    if args.resume is not None:
        others = sorted(flag(n) for n in settings() if hasattr(args, n) and n != "samples")
        if others:
            raise ValueError(f"--resume continues a run with its own settings; it takes only --samples, not "
                             f"{', '.join(others)}")
        trainer = Trainer.resume_from(args.resume, samples=getattr(args, "samples", None), progress=downloads,
                                      by="the CLI")
        for note in trainer.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        trainer = Trainer.from_config(_config_from(args), run_dir=args.run_dir, progress=downloads, by="the CLI")

    def stop_on_ctrl_c(signum, frame):  # the step in progress ends, then a checkpoint is saved where the run stands
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tqdm.write("\nstopping after this step (Ctrl-C again quits at once, keeping the last checkpoint)", file=sys.stderr)
        trainer.stop()

    previous = signal.signal(signal.SIGINT, stop_on_ctrl_c)
    bar = _progress_bar(trainer.config.samples, "sample")
    try:
        last = trainer.run(lambda event: _show_training(bar, event))
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stands; say where it is
        print(f"\ninterrupted; the last checkpoint is in {trainer.run_dir}", file=sys.stderr)
        return 130
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    if last.kind == EventKind.FAILED:
        print(f"error: {last.message}", file=sys.stderr)
        return 1
    _emit({"run_dir": str(trainer.run_dir), "status": str(last.kind), "samples_evaluated": last.samples_evaluated,
           "train_lower_bound": last.train_lower_bound, "test_lower_bound": last.test_lower_bound,
           **({"iw_k": trainer.config.iw_k, "train_iw_bound": last.train_iw_bound, "test_iw_bound": last.test_iw_bound}
              if trainer.config.iw_k is not None else {}),
           "samples_per_second": last.samples_per_second, "wall_seconds": time.perf_counter() - started,
           "lr": trainer.lr, "algorithm": trainer.algorithm.name, "step": trainer.algorithm.step,
           "device": str(trainer.device)}, args.json)
    return 130 if last.kind == EventKind.STOPPED else 0  # only Ctrl-C stops a CLI run


def _evaluated_run(run_dir: Path):
    """The config, model and recorded data (config.json's `data`) of a run that `evaluate` can score; what is wrong
    otherwise, as an error."""
    record = runs.read_run(run_dir, metrics=False)
    if not (run_dir / runs.MODEL).exists():  # a FIFO or a device there is reported as what it is, below
        raise FileNotFoundError(f"{run_dir} holds no {runs.MODEL}; give the folder of a run trained with `train`")
    for name in (runs.CONFIG, runs.MODEL):
        if name in record.problems:
            raise runs.RunError(f"{run_dir} cannot be evaluated: {record.problems[name]}")
    return (TrainConfig.from_dict(record.train_config), runs.load_model(run_dir / runs.MODEL)[0],
            (record.config or {}).get("data") or {})


def _iw_bound(model, x: torch.Tensor, K: int, generator: torch.Generator, batch: int = 100) -> torch.Tensor:
    """The importance-weighted bound with K samples of each row of x, (N,), with a progress bar."""
    with _progress_bar(len(x), "point") as bar:
        bar.set_postfix_str(f"importance-weighted bound, K = {K}", refresh=False)
        return dataset_iw_bound(model, x, K, generator, batch, bar.update)


def _marginal(model, sets, points: int, learns_encoder: bool, generator: torch.Generator) -> dict:
    """Appendix D's log p(x) on the first `points` of each set, with the standard error of each mean."""
    from .marginal import MarginalConfig, marginal_log_likelihood
    estimator = MarginalConfig.for_model(learns_encoder)
    estimator.validate(model.config.latent_dim)
    result = {}
    for split, x in sets._asdict().items():
        with _progress_bar(len(x[:points]), "point") as bar:
            bar.set_postfix_str(f"{split}: marginal likelihood (Appendix D)", refresh=False)
            estimate, error = marginal_log_likelihood(model, x[:points], estimator, generator)
            bar.update(len(estimate))
        result[f"{split}_marginal_log_likelihood"] = estimate.mean().item()
        result[f"{split}_marginal_log_likelihood_error"] = (error.square().sum().sqrt() / len(estimate)).item()
    return result


@torch.no_grad()
def cmd_evaluate(args) -> int:
    run_dir = Path(args.run_dir)
    if not 1 <= args.iw_samples <= IW_SAMPLES_LIMIT:
        raise ValueError(f"--iw-samples K must be a whole number from 1 to {IW_SAMPLES_LIMIT:,}, got {args.iw_samples:,}")
    check_range("--points", args.points, 1, POINTS_LIMIT)
    check_range("--seed", args.seed, 0, LIMITS["seed"])
    device = chosen_device(args.device)
    config, model, recorded = _evaluated_run(run_dir)
    model = model.to(device)
    dataset = data_module.load(config.dataset, args.data_dir or config.data_dir, progress=DownloadBars(),
                               **config.data_options, sha256=recorded.get("sha256"))
    binarized = args.binarized or config.binarize  # a run trained on binary pixels is scored on binary pixels
    sets = evaluation_sets(torch.tensor(dataset.train[:config.train_size], device=device),
                           torch.tensor(dataset.test, device=device), binarized, config.seed)
    if args.marginal_likelihood and args.points > min(len(sets.train), len(sets.test)):
        raise ValueError(f"--points must be at most the {min(len(sets.train), len(sets.test)):,} points of the smaller "
                         f"set ({config.dataset}: {len(sets.train):,} training, {len(sets.test):,} test), got "
                         f"{args.points:,}")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    lower_bound = dataset_lower_bound(model, sets.test, generator)[0]
    iw = _iw_bound(model, sets.test, args.iw_samples, generator)  # (N_test,)
    active, _ = active_units(model, sets.test)  # Burda et al.'s count, on the test set
    result = {"run_dir": str(run_dir), "test_lower_bound": lower_bound, "test_log_likelihood": iw.mean().item(),
              "iw_samples": args.iw_samples, "binarized": binarized, "active_units": active,
              "latent_dim": model.config.latent_dim, "device": str(device)}
    if args.marginal_likelihood:  # Appendix D, on the first --points of each set
        result.update(_marginal(model, sets, args.points, ALGORITHMS[config.algorithm].learns_encoder, generator))
        result["marginal_points"] = args.points
        result["test_log_likelihood_on_marginal_points"] = iw[:args.points].mean().item()  # the IW bound, same points
    bad = [k for k in result if k.endswith(("bound", "likelihood")) and not math.isfinite(result[k])]
    if bad:
        print(f"error: the model's {' and '.join(bad)} came out {result[bad[0]]}: its weights give non-finite "
              f"densities on the test set, so there is no number to report", file=sys.stderr)
        return 1
    _emit(result, args.json)
    return 0


def cmd_variance(args) -> int:
    from .variance import VarianceConfig, fixed_minibatch, measure_iw_tradeoff, measure_variance, snr_slopes, subject

    if args.untrained and args.source is not None:
        raise ValueError("give either a run folder / model file, or --untrained --dataset NAME --latent-dim J")
    check_range("--seed", args.seed, 0, LIMITS["seed"])
    if args.hidden is not None:
        check_range("--hidden", args.hidden, 1, LIMITS["hidden_units"])
    if not args.untrained and args.source is None and SHIPPED_MODEL.is_file():
        args.source = str(SHIPPED_MODEL)
        print(f"no model given: measuring the shipped {SHIPPED_MODEL.stem} model", file=sys.stderr)
    if not args.untrained and args.source is None:
        raise ValueError("give either a run folder / model file, or --untrained --dataset NAME --latent-dim J")
    ks = tuple(args.iw_k) if args.iw_k else None  # the k trade-off of IWAE and DReG instead of the estimators against L
    config = VarianceConfig(batch_size=args.batch_size, repeats=args.repeats, samples=ks or tuple(args.L),
                            estimators=tuple(args.estimators), seed=args.seed)
    config.validate()  # the limits, before any model is built
    device = chosen_device(args.device)
    model, dataset = subject(args.source, args.dataset, args.latent_dim, args.hidden, args.seed, args.data_dir)
    model = model.to(device)
    config.validate(model, len(dataset.train))
    started = time.perf_counter()
    with _progress_bar(1000, "‰") as bar:
        bar.set_postfix_str("measuring", refresh=False)
        measure = measure_iw_tradeoff if ks else measure_variance
        result = measure(model, fixed_minibatch(dataset.train, config.batch_size, args.seed).to(device), config,
                         progress=lambda f: bar.update(int(1000 * f) - bar.n))
    seconds = time.perf_counter() - started
    if ks:
        return _show_tradeoff(args, dataset, result, snr_slopes(result), seconds)
    if args.json:
        print(json.dumps({"model": args.source or f"untrained {args.dataset} J={args.latent_dim}", "dataset": dataset.name,
                          "settings": result.settings, "seconds": seconds, "rows": result.rows}))
        return 0
    print(f"{'estimator':<15} {'L':>4} {'value var':>11} {'grad var phi':>13} {'grad var theta':>15} {'SNR phi':>8}")
    for row in result.rows:
        cell = lambda key, fmt: format(row[key], fmt) if row.get(key) is not None else "-"
        print(f"{row['estimator']:<15} {row['L']:>4} {cell('value_variance', '11.4g')} {cell('phi_total_variance', '13.4g')} "
              f"{cell('theta_total_variance', '15.4g')} {cell('phi_snr', '8.3f')}")
    print(f"per datapoint, M = {config.batch_size}, R = {config.repeats}; {seconds:.1f} s")
    return 0


def cmd_inspect(args) -> int:
    """What the project would make of a dataset (the user's, at a path, or one of its own), without training."""
    config = TrainConfig(dataset=args.inspect, likelihood=args.likelihood, image_size=args.image_size, scale=args.scale)
    problems = {k: v for k, v in config.problems(machine=False).items() if k in ("dataset", "image_size", "scale")}
    if problems:
        raise ValueError("; ".join(problems.values()))
    dataset = data_module.load(config.dataset, args.data_dir, download=False, **config.data_options)
    about = userdata.describe(dataset, config.likelihood)
    if args.json:
        print(json.dumps(about))
        return 0
    for what, text in userdata.summary(about):
        print(f"{what + ':':<16} {text}")
    options = "".join(f" --{k.replace('_', '-')} {v}" for k, v in (("likelihood", args.likelihood), ("image_size",
                      config.image_size), ("scale", config.scale)) if v not in (None, "auto"))
    quoted = config.dataset if " " not in config.dataset else f"'{config.dataset}'"
    print(f"\ntrain on it: python -m vae_core train --dataset {quoted}{options} --latent-dim 2")
    return 0


def _show_tradeoff(args, dataset, result, slopes: dict, seconds: float) -> int:
    """The k trade-off: a row per estimator and K (the bound, the SNR of the decoder's and the encoder's gradient),
    and the log-log slopes of the SNRs against K (Rainforth et al. 2018: +1/2 and -1/2; DReG's encoder: +1/2)."""
    if args.json:
        print(json.dumps({"model": args.source or f"untrained {args.dataset} J={args.latent_dim}", "dataset": dataset.name,
                          "settings": result.settings, "seconds": seconds, "rows": result.rows, "snr_slopes": slopes}))
        return 0
    print(f"{'estimator':<9} {'K':>6} {'IW bound':>10} {'SNR theta':>10} {'SNR phi':>9}")
    for row in result.rows:
        print(f"{row['estimator']:<9} {row['K']:>6} {row['value_mean']:>10.3f} {row['theta_snr']:>10.4g} "
              f"{row['phi_snr']:>9.4g}")
    for name, slope in slopes.items():
        print(f"{name}: SNR slope against K on a log-log scale: theta {slope['theta']:+.3f} ± {slope['theta_error']:.3f}, "
              f"phi {slope['phi']:+.3f} ± {slope['phi_error']:.3f}")
    print(f"per datapoint, M = {result.settings['M']}, R = {result.settings['R']}; {seconds:.1f} s")
    return 0


def cmd_data(args) -> int:
    """Downloads what is missing, or with --verify checks every file on this machine and reports each; with
    --inspect PATH, says what the project would make of a dataset."""
    if args.inspect is not None:
        return cmd_inspect(args)
    names = [args.dataset] if args.dataset else list(data_module.DATASETS)
    failures = 0
    for name in names:
        if args.verify:
            for file, problem in data_module.verify(name, args.data_dir).items():
                failures += problem is not None
                print(f"{name}/{file}: " + (f"FAILED: {problem}" if problem else "ok"))
        try:
            dataset = data_module.load(name, args.data_dir, download=not args.verify, progress=DownloadBars())
            where = data_module.availability(args.data_dir)[name]
            print(f"{name}: ok, {len(dataset.train)} train + {len(dataset.test)} test images of "
                  f"{dataset.spec.image_shape[0]}x{dataset.spec.image_shape[1]} ({where})")
        except data_module.DataError as e:
            failures += not args.verify  # with --verify, each bad file is counted above
            print(f"{name}: FAILED: {e}" if not args.verify else f"{name}: FAILED (see above)")
    return 1 if failures else 0


def cmd_sweep(args) -> int:
    """A grid of runs on Ray Tune (vae_core/sweep.py)."""
    from . import sweep as sweeps

    grid = {name: values for name in settings() if (values := getattr(args, name, None)) is not None}
    check_range("--cpus-per-trial", args.cpus_per_trial, 0.01, TRIAL_RESOURCES_LIMIT, whole=False)
    check_range("--gpus-per-trial", args.gpus_per_trial, 0, TRIAL_RESOURCES_LIMIT, whole=False)
    if args.max_concurrent is not None:
        check_range("--max-concurrent", args.max_concurrent, 1, sweeps.MAX_TRIALS)
    if args.resume:
        if not (Path(args.resume) / sweeps.SWEEP).is_file():
            raise FileNotFoundError(f"{args.resume} holds no {sweeps.SWEEP}; give the folder of a sweep to resume")
        sweep = sweeps.Sweep.load(args.resume)
    else:
        if args.figure is not None:
            seeds = grid.pop("seed", [0])
            samples = grid.pop("samples", [TrainConfig().samples])
            free = {name: grid.pop(name) for name in sorted(paper.FREE & set(grid))}  # where and how, not what
            refused = [*grid, *(name for name, values in free.items() if len(values) > 1)]
            if refused:
                allowed = ", ".join(flag(n) for n in sorted(paper.FREE - {"seed"}))
                raise ValueError(f"--figure {args.figure} runs the paper's settings; it takes --samples, --seed and one "
                                 f"value each of {allowed}, not {', '.join(flag(n) for n in refused)}")
            configs = [{**c, **{name: values[0] for name, values in free.items()}}
                       for c in paper.FIGURES[args.figure].configs(samples[0], seeds)]
        else:
            if args.grid:
                grid = {**sweeps.parse_grid_file(args.grid), **grid}
            if not grid:
                raise ValueError("give the grid: settings with several values (e.g. --latent-dim 2 5 --seed 0 1), "
                                 "a --grid file, or --figure 2")
            configs = sweeps.expand(grid)
        sweep = sweeps.Sweep.from_configs(args.sweep_dir or "", configs)  # checked before anything touches the disk
        if args.sweep_dir:
            sweep.sweep_dir = Path(args.sweep_dir)
            runs.check_name_lengths(sweep.sweep_dir)
            if sweep.sweep_dir.exists() and not sweep.sweep_dir.is_dir():
                raise runs.RunError(f"{sweep.sweep_dir} is a file, not a folder; give a folder for the sweep")
            if (sweep.sweep_dir / sweeps.SWEEP).exists():
                raise runs.RunError(f"{sweep.sweep_dir} already holds a sweep; continue it with --resume {sweep.sweep_dir}")
            sweep.sweep_dir.mkdir(parents=True, exist_ok=True)
        else:
            sweep.sweep_dir = runs.new_run_dir(None, "sweep")
        sweep.save(sys.argv)
    for name, problem in sweep.problems().items():
        print(f"trial {name} will fail: {problem}", file=sys.stderr)
    print(f"sweep of {len(sweep.trials)} trials in {sweep.sweep_dir}", file=sys.stderr)
    result = sweeps.run(sweep, args.address, args.cpus_per_trial, args.gpus_per_trial, args.storage,
                        max_concurrent=args.max_concurrent)
    if args.json:
        print(json.dumps(result))
    else:
        for trial in result["trials"]:
            bound = f"{trial['test_lower_bound']:.2f}" if trial["test_lower_bound"] is not None else "-"
            print(f"{trial['name']:<40} {trial['status']:<9} test {bound:>10}  {trial.get('message', '')}")
    return 1 if any(t["status"] == "failed" for t in result["trials"]) else 0


def cmd_report(args) -> int:
    """A paper figure's numbers from the runs under a folder, as Markdown (docs/REPRODUCTION.md's tables)."""
    records = [runs.read_run(path) for path in runs.list_runs(args.runs_dir)]
    print(paper.report(records, paper.FIGURES[args.figure]))
    return 0


def _parse_switch(text: str) -> bool:
    if text.lower() in ("true", "yes", "on", "1"):
        return True
    if text.lower() in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{text!r} is neither true nor false")


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of TrainConfig, each taking one or more values: the grid."""
    defaults = TrainConfig()
    for name, s in settings().items():
        default = getattr(defaults, name)
        parse = _parse_switch if isinstance(default, bool) else (s.parse or (type(default) if isinstance(default, (int, float)) else str))
        kwargs: dict[str, Any] = {"choices": s.choices} if s.choices else {}
        if name == "hidden":  # each value is a whole network: "500" or "200,200"
            parse = lambda text: parse_hidden(text.replace(",", " "))
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs="+", type=_argument_type(parse),
                            metavar=s.metavar or "V", help=f"{s.help} (one or more values)", **kwargs)


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of TrainConfig, with its help, choices and parser; a flag not given is left out of the
    parsed arguments (argparse.SUPPRESS), so the dataclass's default applies, and --resume can tell what was given."""
    defaults = TrainConfig()
    for name, s in settings().items():
        default = getattr(defaults, name)
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": f"{s.help} (default: {default})"}
        if isinstance(default, bool):
            kw["action"] = "store_false" if default else "store_true"
        else:
            kw["metavar"] = s.metavar
            if s.choices:
                kw["choices"] = s.choices
            if s.nargs:
                kw["nargs"] = s.nargs
            elif s.parse:
                kw["type"] = _argument_type(s.parse)
            elif isinstance(default, (int, float)):
                kw["type"] = type(default)
        parser.add_argument(flag(name), **kw)


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """--device, as `train` has it: where the model and its data are put."""
    setting = settings()["device"]
    parser.add_argument("--device", default=TrainConfig().device, choices=setting.choices,
                        help=f"{setting.help} (default: {TrainConfig().device})")


def chosen_device(name: str) -> torch.device:
    """The device `--device` names; ValueError, saying what to give instead, where this machine has none."""
    if problem := device_problem(name):
        raise ValueError(problem)
    return resolve_device(name)


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train a VAE (AEVB, Algorithm 1, by default)")
    add_train_flags(train)
    train.add_argument("--run-dir", default=None, help="folder for this run, new or empty (default: a new folder under ./runs)")
    train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--json", action="store_true", help="end stdout with one JSON line of results")
    train.set_defaults(func=cmd_train)


def _add_evaluate(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="test lower bound and importance-weighted log-likelihood of a run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--iw-samples", type=int, default=100, metavar="K",
                          help="samples of the importance-weighted log-likelihood (the standard benchmark: 5000)")
    evaluate.add_argument("--binarized", action="store_true",
                          help="score a fixed binarisation of the data (drawn with the run's seed; the default for "
                               "runs trained with --binarize)")
    evaluate.add_argument("--marginal-likelihood", action="store_true",
                          help="also estimate log p(x) by Appendix D (HMC and a kernel density; J below 5)")
    evaluate.add_argument("--points", type=int, default=1000, metavar="N",
                          help="with --marginal-likelihood: the first N training and test points (the paper: 1000)")
    evaluate.add_argument("--seed", type=int, default=0)
    add_device_flag(evaluate)
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_variance(sub) -> None:
    from .variance import GRADIENT_ESTIMATORS, VarianceConfig
    var_defaults = VarianceConfig()
    variance = sub.add_parser("variance", help="measure the estimators' variance against the number of samples L")
    variance.add_argument("source", nargs="?", default=None, help="a run folder or a model .safetensors file "
                          "(default: the shipped MNIST J = 2 model, assets/models/mnist-J2.safetensors)")
    variance.add_argument("--untrained", action="store_true", help="measure a freshly initialised model instead")
    variance.add_argument("--dataset", default=None, metavar="NAME|PATH",
                          help=f"with --untrained: one of {', '.join(data_module.DATASETS)}, or the path of your own data")
    variance.add_argument("--latent-dim", type=int, default=2, metavar="J")
    variance.add_argument("--hidden", type=int, default=None, metavar="H")
    variance.add_argument("--L", type=int, nargs="+", default=list(var_defaults.samples))
    variance.add_argument("--iw-k", type=int, nargs="+", default=None, metavar="K",
                          help="measure the k trade-off instead: the SNR of the IWAE and DReG gradients' decoder and "
                               "encoder parts, and the IW bound, at each K (e.g. 1 10 100)")
    variance.add_argument("--repeats", type=int, default=var_defaults.repeats, metavar="R")
    variance.add_argument("--batch-size", type=int, default=var_defaults.batch_size, metavar="M")
    variance.add_argument("--estimators", nargs="+", choices=GRADIENT_ESTIMATORS, default=list(GRADIENT_ESTIMATORS))
    variance.add_argument("--seed", type=int, default=0)
    add_device_flag(variance)
    variance.add_argument("--data-dir", default=None)
    variance.add_argument("--json", action="store_true")
    variance.set_defaults(func=cmd_variance)


def _add_sweep(sub) -> None:
    sweep = sub.add_parser("sweep", help="a grid of runs on Ray Tune (local by default, a cluster by --address)")
    add_sweep_flags(sweep)
    sweep.add_argument("--figure", type=int, choices=sorted(paper.FIGURES),
                       help="the paper's configurations of this figure (with --samples and --seed)")
    sweep.add_argument("--grid", metavar="FILE", help="a JSON or YAML file mapping settings to lists of values")
    sweep.add_argument("--sweep-dir", help="folder for the sweep's run folders (default: a new folder under ./runs); "
                                           "on a cluster, a path every node mounts")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped sweep: finished trials are kept, "
                                                             "unfinished ones continue from their checkpoints")
    sweep.add_argument("--address", help="a running Ray cluster ('auto', or host:port; default: $RAY_ADDRESS, else an "
                                         "embedded Ray on this machine's cores)")
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial; its torch threads follow")
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial (fractions allowed)")
    sweep.add_argument("--storage", help="where Tune keeps its state (default <sweep-dir>/.tune; a cloud URI works)")
    sweep.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as resources allow)")
    sweep.add_argument("--json", action="store_true", help="end stdout with one JSON line of results")
    sweep.set_defaults(func=cmd_sweep)


def _add_report(sub) -> None:
    report = sub.add_parser("report", help="a paper figure's numbers from the runs, as a Markdown table")
    report.add_argument("--figure", type=int, choices=sorted(paper.FIGURES), required=True)
    report.add_argument("--runs-dir", default=None, help="where the runs are (default: ./runs or $VAE_RUNS_DIR; sweeps "
                                                         "inside it are included)")
    report.set_defaults(func=cmd_report)


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="download the datasets, check the copies on this machine, or inspect your own")
    data.add_argument("--dataset", choices=data_module.DATASETS, default=None)
    data.add_argument("--verify", action="store_true", help="check checksums and shapes; download nothing")
    data.add_argument("--data-dir", default=None)
    data.add_argument("--inspect", metavar="PATH", default=None,
                      help="what the project would make of your data (N, D, shape, values, decoder, split), without "
                           "training; or of one of its datasets, by name")
    for name in ("likelihood", "image_size", "scale"):  # how the data is read, as `train` takes it
        s = settings()[name]
        parse = {"type": _argument_type(s.parse)} if s.parse else {}
        data.add_argument(flag(name), dest=name, default=getattr(TrainConfig, name), choices=s.choices,
                          metavar=s.metavar, help=f"with --inspect: {s.help}", **parse)
    data.add_argument("--json", action="store_true", help="with --inspect: one JSON object")
    data.set_defaults(func=cmd_data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_variance, _add_sweep, _add_report, _add_data):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (data_module.DataError, runs.RunError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # what the file system refused where nothing above says it in words of its own
        print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
