"""The estimator variance lab at its defaults (M = 10, R = 100, L = 1 ... 100, five gradient estimators):
the vectorised computation against the naive loop (one backward pass per replicate, L and estimator),
in one run, on the shipped Frey Face and MNIST J = 2 models. Targets: at least 4x faster, and the
defaults under 10 s (Frey) and 60 s (MNIST). Run: `python bench/variance.py [--skip-naive] [--cost]`.

With `--cost`, the time of each L of the defaults is also fitted as a + b L M (per L: R replicates of L M samples),
and a / b, the replicate's own cost in samples, printed beside `REPLICATE_PASSES`, with the share of the time each L
took against the share that `VarianceConfig.work` (the progress bar, the estimate before Compute) gives it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from vae_app.sources import shipped_models
from vae_core.variance import REPLICATE_PASSES, VarianceConfig, fixed_minibatch, measure_variance, subject


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-naive", action="store_true", help="time only the vectorised computation")
    parser.add_argument("--cost", action="store_true", help="fit each L's time against the cost model too")
    args = parser.parse_args()
    config = VarianceConfig()
    print(f"defaults: M = {config.batch_size}, R = {config.repeats}, L = {list(config.samples)}, {list(config.estimators)}")
    for name in ("frey-J2", "mnist-J2"):
        model, dataset = subject(str(shipped_models()[name]))
        x = fixed_minibatch(dataset.train, config.batch_size)
        warm_up = VarianceConfig(repeats=2, samples=(1,))  # one-time costs (torch.func's lazy imports) apart
        measure_variance(model, x, warm_up)
        measure_variance(model, x, warm_up, vectorised=False)
        fast = timed(lambda: measure_variance(model, x, config))
        line = f"{name}: vectorised {fast:.1f} s"
        if not args.skip_naive:
            slow = timed(lambda: measure_variance(model, x, config, vectorised=False))
            line += f", naive loop {slow:.1f} s, speed-up {slow / fast:.1f}x"
        print(line, flush=True)
        if args.cost:
            cost_fit(name, model, x, config)


def cost_fit(name, model, x, config: VarianceConfig) -> None:
    """Each L's time (from the progress reports) against a + b L M, and its share against the cost model's."""
    times = [time.perf_counter()]
    measure_variance(model, x, config, progress=lambda fraction: times.append(time.perf_counter()))
    seconds = np.diff(times[1:])  # the first report is the start of the measurement itself
    LM = np.array(config.samples) * config.batch_size
    b, a = np.polyfit(LM, seconds, 1)
    work = np.array(config.work(model))
    shares = ", ".join(f"L={L} {t / seconds.sum():.0%} (model {w / work.sum():.0%})"
                       for L, t, w in zip(config.samples, seconds, work))
    print(f"{name}: seconds per L = {a:.2f} + {b * 1e3:.2f} ms x L M: a replicate costs {a / b:.0f} samples "
          f"(REPLICATE_PASSES = {REPLICATE_PASSES}); time shares {shares}", flush=True)


if __name__ == "__main__":
    main()
