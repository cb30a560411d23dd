"""`python -m vae_core {train,evaluate,variance,data}`: the engine from the command line.

Progress goes to stderr; with `--json` the last line of stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import torch

from . import data as data_module
from . import runs
from .estimators import importance_weighted_bound
from .training import TrainConfig, Trainer, TrainEvent, dataset_lower_bound, format_duration, parse_sample_count


def _count(text: str) -> int:
    try:
        return parse_sample_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _step_size(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None


class ProgressBar:
    """A one-line progress bar on stderr: redrawn in place on a terminal, a line every few seconds in a log."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0

    def update(self, done: int, total: int | None, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        fraction = min(1.0, done / total) if total else 0.0
        bar = "#" * int(30 * fraction) + "." * (30 - int(30 * fraction))
        line = f"[{bar}] {100 * fraction:5.1f}% {text}"
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        if force and self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def download(self, name: str, done: int, total: int | None) -> None:
        self.update(done, total, f"downloading {name}: {done / 1e6:.1f} MB", force=done == total)


def _show_training(bar: ProgressBar, event: TrainEvent) -> None:
    if event.kind == "trial":
        print(f"step-size trial: {event.message}", file=sys.stderr)
        return
    remaining = (event.total_samples - event.samples_evaluated) / event.samples_per_second if event.samples_per_second else math.nan
    text = (f"{event.samples_evaluated}/{event.total_samples} samples, {event.samples_per_second:,.0f}/s, "
            f"ETA {format_duration(remaining)}")
    if event.lower_bound is not None:
        text += f", minibatch bound {event.lower_bound:.2f}"
    if event.test_lower_bound is not None:
        text += f", train {event.train_lower_bound:.2f}, test {event.test_lower_bound:.2f} nats"
    bar.update(event.samples_evaluated, event.total_samples, text, force=event.kind in ("finished", "stopped"))


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def cmd_train(args) -> int:
    bar = ProgressBar()
    started = time.perf_counter()
    if args.resume:
        trainer = Trainer.resume_from(args.resume, samples=args.samples, progress=bar.download)
    else:
        config = TrainConfig(
            dataset=args.dataset, latent_dim=args.latent_dim, hidden_dim=args.hidden, estimator=args.estimator,
            samples_per_point=args.samples_per_point, batch_size=args.batch_size, samples=args.samples or 1_000_000,
            optimizer=args.optimizer, lr=args.lr, weight_decay=not args.no_weight_decay, binarize=args.binarize,
            seed=args.seed, device=args.device, data_dir=args.data_dir)
        trainer = Trainer(config, run_dir=args.run_dir, progress=bar.download)

    def stop_on_ctrl_c(signum, frame):  # the step in progress ends, then a checkpoint is saved where the run stands
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping after this step (Ctrl-C again quits at once, keeping the last checkpoint)", file=sys.stderr)
        trainer.stop()

    previous = signal.signal(signal.SIGINT, stop_on_ctrl_c)
    try:
        last = trainer.run(lambda event: _show_training(bar, event))
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stands; say where it is
        print(f"\ninterrupted; the last checkpoint is in {trainer.run_dir}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    if last.kind == "failed":
        print(f"error: {last.message}", file=sys.stderr)
        return 1
    _emit({"run_dir": str(trainer.run_dir), "status": last.kind, "samples_evaluated": last.samples_evaluated,
           "train_lower_bound": last.train_lower_bound, "test_lower_bound": last.test_lower_bound,
           "samples_per_second": last.samples_per_second, "wall_seconds": time.perf_counter() - started,
           "lr": trainer.lr}, args.json)
    return 130 if last.kind == "stopped" else 0  # only Ctrl-C stops a CLI run


@torch.no_grad()
def cmd_evaluate(args) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / runs.MODEL).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {runs.MODEL}; give the folder of a run trained with `train`")
    config = TrainConfig.from_dict(runs.read_json(run_dir / runs.CONFIG)["train_config"])
    dataset = data_module.load(config.dataset, args.data_dir or config.data_dir, progress=ProgressBar().download)
    model, _ = runs.load_model(run_dir / runs.MODEL)
    x_test = torch.tensor(dataset.test)
    generator = torch.Generator().manual_seed(args.seed)
    lower_bound = dataset_lower_bound(model, x_test, generator)[0]
    bar = ProgressBar()
    total, batch = 0.0, 100
    for start in range(0, len(x_test), batch):
        total += importance_weighted_bound(model, x_test[start:start + batch], args.iw_samples, generator=generator).sum().item()
        bar.update(start + batch, len(x_test), f"importance-weighted bound, K = {args.iw_samples}")
    _emit({"run_dir": str(run_dir), "test_lower_bound": lower_bound, "test_log_likelihood": total / len(x_test),
           "iw_samples": args.iw_samples}, args.json)
    return 0


def cmd_variance(args) -> int:
    from .variance import VarianceConfig, fixed_minibatch, measure_variance, subject

    if args.untrained == (args.source is not None):
        raise ValueError("give either a run folder / model file, or --untrained --dataset NAME --latent-dim J")
    model, dataset = subject(args.source, args.dataset, args.latent_dim, args.hidden, args.seed, args.data_dir)
    config = VarianceConfig(batch_size=args.batch_size, repeats=args.repeats, samples=tuple(args.L),
                            estimators=tuple(args.estimators), seed=args.seed)
    bar = ProgressBar()
    started = time.perf_counter()
    result = measure_variance(model, fixed_minibatch(dataset.train, config.batch_size, args.seed), config,
                              progress=lambda f: bar.update(int(1000 * f), 1000, "measuring", force=f >= 1))
    seconds = time.perf_counter() - started
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


def cmd_data(args) -> int:
    bar = ProgressBar()
    names = [args.dataset] if args.dataset else [n for n in data_module.DATASETS]
    failures = 0
    for name in names:
        try:
            dataset = data_module.load(name, args.data_dir, download=not args.verify, progress=bar.download)
            where = data_module.availability(args.data_dir)[name]
            print(f"{name}: ok, {len(dataset.train)} train + {len(dataset.test)} test images of "
                  f"{dataset.image_shape[0]}x{dataset.image_shape[1]} ({where})")
        except data_module.DataError as e:
            failures += 1
            print(f"{name}: FAILED: {e}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig()

    train = sub.add_parser("train", help="train a VAE by AEVB (Algorithm 1)")
    train.add_argument("--dataset", choices=data_module.DATASETS, default=defaults.dataset)
    train.add_argument("--latent-dim", type=int, default=defaults.latent_dim, metavar="J")
    train.add_argument("--hidden", type=int, default=None, metavar="H", help="hidden units (default: 500 MNIST, 200 otherwise)")
    train.add_argument("--estimator", choices=["A", "B"], default=defaults.estimator)
    train.add_argument("--samples-per-point", type=int, default=defaults.samples_per_point, metavar="L")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size, metavar="M")
    train.add_argument("--samples", type=_count, default=None, metavar="N_TOTAL",
                       help="training samples evaluated, minibatches x M (default 1e6)")
    train.add_argument("--optimizer", choices=["adagrad", "adam"], default=defaults.optimizer)
    train.add_argument("--lr", type=_step_size, default=defaults.lr, metavar="LR|auto")
    train.add_argument("--no-weight-decay", action="store_true", help="drop the N(0, I) prior on the parameters")
    train.add_argument("--binarize", action="store_true", help="dynamic binarisation of each minibatch")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--data-dir", default=None)
    train.add_argument("--run-dir", default=None, help="folder for this run (default: a new folder under ./runs)")
    train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    train.add_argument("--json", action="store_true", help="end stdout with one JSON line of results")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="test lower bound and importance-weighted log-likelihood of a run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--iw-samples", type=int, default=100, metavar="K")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    from .variance import GRADIENT_ESTIMATORS, VarianceConfig
    var_defaults = VarianceConfig()
    variance = sub.add_parser("variance", help="measure the estimators' variance against the number of samples L")
    variance.add_argument("source", nargs="?", default=None, help="a run folder or a model .safetensors file")
    variance.add_argument("--untrained", action="store_true", help="measure a freshly initialised model instead")
    variance.add_argument("--dataset", choices=data_module.DATASETS, default=None)
    variance.add_argument("--latent-dim", type=int, default=2, metavar="J")
    variance.add_argument("--hidden", type=int, default=None, metavar="H")
    variance.add_argument("--L", type=int, nargs="+", default=list(var_defaults.samples))
    variance.add_argument("--repeats", type=int, default=var_defaults.repeats, metavar="R")
    variance.add_argument("--batch-size", type=int, default=var_defaults.batch_size, metavar="M")
    variance.add_argument("--estimators", nargs="+", choices=GRADIENT_ESTIMATORS, default=list(GRADIENT_ESTIMATORS))
    variance.add_argument("--seed", type=int, default=0)
    variance.add_argument("--data-dir", default=None)
    variance.add_argument("--json", action="store_true")
    variance.set_defaults(func=cmd_variance)

    data = sub.add_parser("data", help="download the datasets, or check the copies on this machine")
    data.add_argument("--dataset", choices=data_module.DATASETS, default=None)
    data.add_argument("--verify", action="store_true", help="check checksums and shapes; download nothing")
    data.add_argument("--data-dir", default=None)
    data.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (data_module.DataError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
