"""The estimator variance lab at its defaults (M = 10, R = 100, L = 1 ... 100, five gradient estimators):
the vectorised computation against the naive loop (one backward pass per replicate, L and estimator),
in one run, on the shipped Frey Face and MNIST J = 2 models. Targets: at least 4x faster, and the
defaults under 10 s (Frey) and 60 s (MNIST). Run: `python bench/variance.py [--skip-naive]`.
"""
from __future__ import annotations

import argparse
import time

from vae_app.sources import shipped_models
from vae_core.variance import VarianceConfig, fixed_minibatch, measure_variance, subject


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-naive", action="store_true", help="time only the vectorised computation")
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


if __name__ == "__main__":
    main()
