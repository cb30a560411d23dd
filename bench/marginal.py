"""The marginal-likelihood estimator of Appendix D on 1000 test points at J = 3, vectorised over datapoints against
a loop over them (the same estimator called on one datapoint at a time), side by side in one run. Target: at least
10x. The model is MNIST 784-100-3, the network of Fig. 3, trained briefly here (the estimator's cost does not
depend on how well it is trained). Run: `python bench/marginal.py [--points 1000] [--loop-points 100]` with
VAE_DATA_DIR set; the loop's time over 1000 points is extrapolated from --loop-points.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from vae_core import data
from vae_core.marginal import MarginalConfig, marginal_log_likelihood
from vae_core.paper import FIGURE_3
from vae_core.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--loop-points", type=int, default=100)
    args = parser.parse_args()
    config = FIGURE_3.config(FIGURE_3.panels[0], "aevb", 20_000)  # N_train = 1000
    config.evaluation, config.lr = "bound", 0.02  # trained on the bound here: only the estimator is timed below
    trainer = Trainer.from_config(config, tempfile.mkdtemp(prefix="bench-marginal-") + "/run")
    trainer.run()
    model = trainer.model.eval()
    x = torch.tensor(data.load("mnist").test[:args.points])
    settings = MarginalConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; Appendix D with {settings.samples} posterior "
          f"samples, {settings.leapfrog_steps} leapfrog steps, burn-in {settings.burn_in}; MNIST 784-100-3")
    start = time.perf_counter()
    estimate, error = marginal_log_likelihood(model, x, settings, torch.Generator().manual_seed(0))
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(args.loop_points):
        marginal_log_likelihood(model, x[i:i + 1], settings, torch.Generator().manual_seed(i))
    loop = (time.perf_counter() - start) * args.points / args.loop_points
    print(f"vectorised over {args.points} points: {vectorised:.1f} s; a loop over them: {loop:.1f} s "
          f"(from {args.loop_points} points); speed-up {loop / vectorised:.0f}x (target >= 10x)")
    print(f"mean log p(x) over the points: {estimate.mean():.2f} (mean stated error {error.mean():.2f})")


if __name__ == "__main__":
    main()
