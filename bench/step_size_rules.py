"""Rules for choosing the step size, scored against the step size that is best at the end of training (issue 27).

Section 5 of the paper: the step size was "chosen from {0.01, 0.02, 0.1} based on performance on the training set
in the first few iterations". Our `lr auto` scores each candidate by its minibatch bounds over the second half of a
30-step trial, which noise can decide. This benchmark trains, for each seed, one run per candidate to the whole
budget. A candidate's trial is the first steps of its run (a trial starts from the run's own fresh start, as
`step_size_trial` does), so one set of runs scores every rule, and tells which candidate each rule should pick:
- `tail-N`: the mean minibatch bound over steps N/2+1 to N (`tail-30` is today's rule);
- `held-out-N`: the bound (estimator B, L = 1) on 1,000 fixed training points after N steps;
- `race-S`: the bound on the training set's evaluation points at S samples (its logged evaluations, interpolated on
  log samples): a race of the candidates over the first S samples of the real budget, whose winner goes on (the
  losers' 2 S samples are its cost); S from 10^5, as the runs log their evaluations from 5·10^4 samples on (after
  their 300 trial steps). Only for runs that kept their curve (this version of the benchmark).
Printed: each run's final test bound, and per rule how often it picks the best candidate and the nats it loses
when it does not (its regret), with the spread over seeds of the final test bound it leads to.

Run: `python bench/step_size_rules.py --dataset mnist --latent-dim 3 --samples 1e6 --seeds 0 1 2`
(--out FILE keeps every run's numbers as JSON, and an existing FILE's runs are not trained again).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from vae_core import runs
from vae_core.config import STEP_SIZE_CANDIDATES, TrainConfig, parse_sample_count
from vae_core.evaluation import dataset_lower_bound
from vae_core.training import Trainer

TRIAL_LENGTHS = (30, 100, 300)
HELD_OUT_POINTS = 1000


def one_run(config: TrainConfig, folder: Path) -> dict:
    """A run of `config` (a fixed step size): its first steps' minibatch bounds, its bound on held-out training
    points after each trial length, and its final bounds."""
    trainer = Trainer.from_config(config, folder)
    held_out_points = trainer.sets.train[-HELD_OUT_POINTS:]  # the last 1,000 training points, the same for every run
    bounds, held_out = [], {}
    generator = torch.Generator().manual_seed(12345)
    for step in range(1, max(TRIAL_LENGTHS) + 1):
        bounds.append(trainer.train_step(with_values=True).lower_bound)
        if step in TRIAL_LENGTHS:
            generator.manual_seed(12345)
            held_out[str(step)] = dataset_lower_bound(trainer.model, held_out_points, generator)[0]
    last = trainer.run()  # on to the budget: the same run as one started with this step size
    rows, _ = runs.read_metrics(folder / runs.METRICS)
    curve = [(row["samples_evaluated"], row["train_lower_bound"]) for row in rows
             if isinstance(row.get("train_lower_bound"), float) and math.isfinite(row["train_lower_bound"])]
    return {"lr": config.lr, "seed": config.seed, "bounds": bounds, "held_out": held_out,
            "train": last.train_lower_bound, "test": last.test_lower_bound, "curve": curve}


def at(curve: list, samples: float) -> float:
    """The training bound a run's curve reaches at `samples`, interpolated on log samples."""
    xs, ys = zip(*curve)
    return float(np.interp(math.log10(samples), np.log10(xs), ys))


RACE_STAGES = (10**5, 2 * 10**5, 3 * 10**5, 5 * 10**5)  # evaluations the runs log after their 300 trial steps
RULES = {**{f"tail-{n}": (lambda n: lambda r: statistics.fmean(r["bounds"][n // 2:n]))(n) for n in TRIAL_LENGTHS},
         **{f"held-out-{n}": (lambda n: lambda r: r["held_out"][str(n)])(n) for n in TRIAL_LENGTHS},
         **{f"race-{S:.0e}".replace("+0", ""): (lambda S: lambda r: at(r["curve"], S))(S) for S in RACE_STAGES}}


def report(results: list[dict]) -> None:
    seeds = sorted({r["seed"] for r in results})
    by_seed = {s: [r for r in results if r["seed"] == s] for s in seeds}
    print("final test bound per seed and step size:")
    for s, rows in by_seed.items():
        print(f"  seed {s}: " + ", ".join(f"lr {r['lr']}: {r['test']:.2f}" for r in rows))
    print(f"{'rule':<14} {'picks the best':>15} {'mean regret':>12} {'test bounds it leads to (seeds)':>34} {'spread':>7}")
    for name, score in {"best at the end": lambda r: r["test"], **RULES}.items():
        if name.startswith("race") and not all("curve" in r for r in results):
            continue  # runs of an older version of this benchmark kept no curve
        picked = {s: max(rows, key=score) for s, rows in by_seed.items()}
        best = {s: max(rows, key=lambda r: r["test"]) for s, rows in by_seed.items()}
        hits = sum(picked[s] is best[s] for s in seeds)
        regret = statistics.fmean(best[s]["test"] - picked[s]["test"] for s in seeds)
        ends = [picked[s]["test"] for s in seeds]
        print(f"{name:<14} {hits:>9} of {len(seeds):<3} {regret:>12.2f} {' '.join(f'{e:.2f}' for e in ends):>34} "
              f"{max(ends) - min(ends):>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--latent-dim", type=int, default=3)
    parser.add_argument("--samples", type=parse_sample_count, default=10**6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="JSON file of the runs' numbers, read back if it exists")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out and args.out.exists() else []
    done = {(r["seed"], r["lr"]) for r in results}
    with tempfile.TemporaryDirectory() as runs_dir:
        for seed in args.seeds:
            for lr in STEP_SIZE_CANDIDATES["adagrad"]:
                if (seed, lr) in done:
                    continue
                config = TrainConfig(dataset=args.dataset, latent_dim=args.latent_dim, samples=args.samples, lr=lr,
                                     seed=seed)
                results.append(one_run(config, Path(runs_dir) / f"seed{seed}-lr{lr}"))
                print(f"seed {seed}, lr {lr}: test {results[-1]['test']:.2f}", flush=True)
                if args.out:
                    args.out.write_text(json.dumps(results))
    report([r for r in results if r["seed"] in args.seeds])


if __name__ == "__main__":
    main()
