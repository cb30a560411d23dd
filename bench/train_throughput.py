"""Training-step throughput, side by side in one run (ratios, not absolute times).

(a) vae_core's training step, as `Trainer` runs it (minibatch, noise, gradient, fused optimizer, logging), with
    the default (hand-derived) step, (a') the same with `--step autograd`, and (a'') the wake-sleep algorithm's
    step (hand-derived) on the same configuration;
(b) a reference loop written the way pytorch/examples writes a VAE: a DataLoader over a TensorDataset,
    separate mean and log-variance layers, autograd, `torch.optim.Adagrad` with its defaults, and a
    Python loop over the L samples;
(c) the GEMM roofline: the eleven matrix multiplications of the same step alone, at the same shapes, on a
    trainer's own weights and gradient buffers, each with the faster of the two CPU GEMM kernels at hand
    (MKL's torch.mm, oneDNN's linear);
(d) the ceiling of a step that updates its parameters after its GEMMs: (c) followed by the trainer's own
    optimizer step, with nothing else. Its share of (c) bounds what fusing every other operation away could reach.

(e) with `--baseline REV`, vae_core's step as of git revision REV (imported from `git show` under another
    name), so that a change to the step is measured against the step before it, paired.

Timings are interleaved in blocks; times are the median block's, ratios the median of each block's ratio, so
that drift in the machine's speed between blocks cancels.
Run: `python bench/train_throughput.py [--baseline REV]` (add `--quick` for a smoke run).
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import vae_core.config
import vae_core.data
import vae_core.training
from vae_core import schedules
from vae_core.data import DATASETS
from vae_core.training import Trainer

REPO = Path(__file__).resolve().parents[1]


class ReferenceVAE(nn.Module):
    """The pytorch/examples layout (fc1, fc21, fc22, fc3, fc4), with the paper's tanh units."""

    def __init__(self, D, H, J, gaussian):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(D, H), nn.Linear(H, J), nn.Linear(H, J)
        self.fc3, self.fc4 = nn.Linear(J, H), nn.Linear(H, 2 * D if gaussian else D)
        self.gaussian = gaussian

    def loss(self, x, L):
        h = torch.tanh(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        reconstruction = 0
        for _ in range(L):  # one decoder pass per sample, as the examples write it
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            out = self.fc4(torch.tanh(self.fc3(z)))
            if self.gaussian:
                mean, x_logvar = out.chunk(2, -1)
                reconstruction = reconstruction + F.gaussian_nll_loss(torch.sigmoid(mean), x, x_logvar.exp(), full=True, reduction="sum")
            else:
                reconstruction = reconstruction + F.binary_cross_entropy(torch.sigmoid(out), x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (reconstruction / L + kld) / len(x)


def minibatches(X, M):
    """A DataLoader over a TensorDataset, as the examples write it, reshuffled at each epoch, without end."""
    loader = DataLoader(TensorDataset(X), batch_size=M, shuffle=True, drop_last=True)
    while True:
        for (x,) in loader:
            yield x


def reference_steps(X, name, J, L, M=100):
    spec = DATASETS[name]
    model = ReferenceVAE(X.shape[1], spec.hidden[0], J, spec.likelihood == "gaussian")
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.01)
    batches = minibatches(X, M)

    def step():
        x = next(batches)
        optimizer.zero_grad()
        model.loss(x, L).backward()
        optimizer.step()
    return step


def _trainer(X, name, J, L, M=100, step="auto", algorithm="aevb",
             core=(vae_core.training, vae_core.data, vae_core.config)) -> Trainer:
    """A Trainer of the paper's network for the dataset `name` on the rows X, from vae_core's modules (training, data,
    config), or those `core` of another revision."""
    training, data, config = core
    dataset = data.Dataset(data.DATASETS[name], X.numpy(), X[:100].numpy())
    return training.Trainer.from_config(config.TrainConfig(dataset=name, latent_dim=J, samples_per_point=L,
                                                           batch_size=M, samples=10**6, lr=0.01, device="cpu",
                                                           step=step, algorithm=algorithm),
                                        run_dir=_scratch(), dataset=dataset)


def baseline_package(rev: str):
    """vae_core as of git revision `rev`, imported as the package `vae_core_<rev>` (its imports are relative)."""
    name = f"vae_core_{rev}"
    root = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    files = subprocess.run(["git", "ls-tree", "--name-only", rev, "vae_core/"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    (root / name).mkdir()
    for file in files:
        source = subprocess.run(["git", "show", f"{rev}:{file}"], cwd=REPO, capture_output=True, text=True, check=True)
        (root / name / Path(file).name).write_text(source.stdout)
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{name}.training"), importlib.import_module(f"{name}.data")


def baseline_steps(rev, X, name, J, L, M=100):
    """(e): the trainer of revision `rev`; before datasets were specs its Dataset took a name, image shape and
    likelihood, and before the engine/app split (f9bc4e4 and older) its Trainer took the config and a run folder, and
    its Dataset the paper's hidden size too."""
    training, data = baseline_package(rev)
    config_name = training.__name__.rsplit(".", 1)[0] + ".config"
    if hasattr(data, "DatasetSpec"):
        return logged_steps(_trainer(X, name, J, L, M, core=(training, data, importlib.import_module(config_name))))
    H, likelihood = DATASETS[name].hidden[0], DATASETS[name].likelihood
    if hasattr(training.Trainer, "from_config"):
        config_module = importlib.import_module(config_name)
        dataset = data.Dataset("digits", X.numpy(), X[:100].numpy(), None, None, (1, X.shape[1]), likelihood)
        config = config_module.TrainConfig(dataset="digits", latent_dim=J, hidden=(H,), samples_per_point=L,
                                           batch_size=M, samples=10**6, lr=0.01, device="cpu")
        return logged_steps(training.Trainer.from_config(config, run_dir=_scratch(), dataset=dataset))
    dataset = data.Dataset("digits", X.numpy(), X[:100].numpy(), None, None, (1, X.shape[1]), likelihood, H)
    config = training.TrainConfig(dataset="digits", latent_dim=J, hidden_dim=H, samples_per_point=L, batch_size=M,
                                  samples=10**6, lr=0.01, device="cpu")
    return logged_steps(training.Trainer(config, run_dir=_scratch(), dataset=dataset))


def logged_steps(trainer: Trainer):
    """One training step per call, with the trainer's own logging cadence (the bound's value on logging steps),
    from past the first steps, which all log their bound: the steady cadence of a long run."""
    # a baseline revision's trainer has its own logs_bound; this one's cadence is schedules.logs_bound
    logs_bound = getattr(trainer, "logs_bound", None) or (lambda step: schedules.logs_bound(step, trainer.total_steps))

    def step():
        trainer.train_step(with_values=logs_bound(trainer.step))
    while logs_bound(trainer.step):
        step()
    return step


def vae_core_steps(X, name, J, L, M=100, step="auto", algorithm="aevb"):
    return logged_steps(_trainer(X, name, J, L, M, step, algorithm))  # the cadence of a 10^6 budget


def gemm_steps(trainer: Trainer):
    """The step's eleven products alone, on the trainer's own weights and gradient buffers, each with whichever
    CPU GEMM kernel is faster at its shape: MKL's `torch.mm` or oneDNN's linear (`vae_core`'s step uses oneDNN
    for its hidden and output layers). Activations are random tensors of the step's shapes."""
    encoder, decoder, grads = trainer.model.encoder, trainer.model.decoder, trainer.params.grads
    W1, Wz, Wd1, Wd2 = (layer.weight.detach() for layer in (encoder.hidden[0], encoder.out, decoder.hidden[0], decoder.out))
    (H, D), J, out_dim = W1.shape, Wz.shape[0] // 2, Wd2.shape[0]
    LM, M = trainer.config.samples_per_point * trainer.config.batch_size, trainer.config.batch_size
    r = torch.randn
    x, h, zp, z, g, d_out, d_g = r(M, D), r(M, H), r(M, 2 * J), r(LM, J), r(LM, H), r(LM, out_dim), r(LM, H)
    products = [(x, W1.t(), None), (h, Wz.t(), None), (z, Wd1.t(), None), (g, Wd2.t(), None),  # forward
                (d_out.t(), g, grads["decoder.out.weight"]), (d_out, Wd2, None),  # backward
                (d_g.t(), z, grads["decoder.hidden.0.weight"]), (d_g, Wd1, None),
                (zp.t(), h, grads["encoder.out.weight"]), (zp, Wz, None), (h.t(), x, grads["encoder.hidden.0.weight"])]
    kernels = []
    for a, b, out in products:
        out = torch.empty(a.shape[0], b.shape[1]) if out is None else out
        mkl = lambda a=a, b=b, out=out: torch.mm(a, b, out=out)
        onednn = lambda a=a, wt=b.t(): torch.ops.mkldnn._linear_pointwise(a, wt, None, "none", [], "")
        kernels.append(min((mkl, onednn), key=lambda f: min(_seconds(f) for _ in range(5))))

    def step():
        for kernel in kernels:
            kernel()
    return step


def gemm_and_optimizer_steps(trainer: Trainer):
    """(c), then the trainer's own fused optimizer step (Adagrad unless configured) over the same parameters: the GEMMs
    plus the update alone."""
    gemm = gemm_steps(trainer)

    def step():
        gemm()
        trainer.optimizer.step()
    return step


def _seconds(f, repeats=20):
    f()
    start = time.perf_counter()
    for _ in range(repeats):
        f()
    return time.perf_counter() - start


def _scratch():
    import tempfile
    return Path(tempfile.mkdtemp(prefix="bench-"))


def interleaved(steps: dict, blocks: int, per_block: int) -> dict[str, list[float]]:
    """Seconds per step of each callable in each block, timed in alternating blocks after a warm-up."""
    for step in steps.values():
        for _ in range(per_block):
            step()
    times = {name: [] for name in steps}
    for _ in range(blocks):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(per_block):
                step()
            times[name].append((time.perf_counter() - start) / per_block)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over blocks of each block's ratio: the machine's drift between blocks cancels within each pair."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few blocks: a smoke run, not a measurement")
    parser.add_argument("--baseline", metavar="REV", help="also time vae_core's step as of this git revision")
    args = parser.parse_args()
    blocks, per_block = (3, 3) if args.quick else (25, 20)
    torch.manual_seed(0)
    configs = [("mnist", 20, 1, 100), ("mnist", 20, 10, 100), ("frey", 2, 1, 100),  # (dataset, J, L, M)
               # small minibatches, where per-step overhead counts most (the JAX example's M = 32)
               ("mnist", 20, 1, 32), ("frey", 2, 1, 32)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Adagrad; {blocks} interleaved blocks of "
          f"{per_block} steps: median times, and ratios as the median of each block's ratio")
    print(f"{'configuration':<20} {'L':>3} {'M':>4} {'vae_core ms':>12} {'autograd ms':>12} {'wake-sleep ms':>14} {'reference ms':>13} "
          f"{'GEMM ms':>8} {'GEMM+opt ms':>12} {'vs reference':>13} {'autograd/fast':>14} {'WS speed/AEVB':>14} "
          f"{'of GEMM roofline':>17} {'ceiling':>8}" + (f" {'vs ' + args.baseline[:9]:>14}" if args.baseline else ""))
    for dataset, J, L, M in configs:
        spec = DATASETS[dataset]
        name = f"{spec.title} {spec.data_dim}-{'-'.join(map(str, spec.hidden))}-{J}"  # e.g. MNIST 784-500-20
        X = torch.rand(6000, spec.data_dim)
        contenders = {"vae_core": vae_core_steps(X, dataset, J, L, M),
                      "autograd": vae_core_steps(X, dataset, J, L, M, step="autograd"),
                      "wake-sleep": vae_core_steps(X, dataset, J, L, M, algorithm="wake-sleep"),
                      "reference": reference_steps(X, dataset, J, L, M), "gemm": gemm_steps(_trainer(X, dataset, J, L, M)),
                      "gemm+opt": gemm_and_optimizer_steps(_trainer(X, dataset, J, L, M))}
        if args.baseline:
            contenders["baseline"] = baseline_steps(args.baseline, X, dataset, J, L, M)
        t = interleaved(contenders, blocks, per_block)
        ms = {contender: statistics.median(seconds) * 1e3 for contender, seconds in t.items()}
        line = (f"{name:<20} {L:>3} {M:>4} {ms['vae_core']:>12.3f} {ms['autograd']:>12.3f} {ms['wake-sleep']:>14.3f} "
                f"{ms['reference']:>13.3f} {ms['gemm']:>8.3f} {ms['gemm+opt']:>12.3f} "
                f"{paired_ratio(t['reference'], t['vae_core']):>12.2f}x {paired_ratio(t['autograd'], t['vae_core']):>13.2f}x "
                f"{paired_ratio(t['vae_core'], t['wake-sleep']):>13.2f}x {paired_ratio(t['gemm'], t['vae_core']):>16.0%} "
                f"{paired_ratio(t['gemm'], t['gemm+opt']):>7.0%}")
        if args.baseline:
            line += f" {paired_ratio(t['baseline'], t['vae_core']):>13.3f}x"
        print(line, flush=True)
    print("vs reference, autograd/fast and vs REV: the other's time over vae_core's (above 1: vae_core's default step is "
          "faster); WS speed/AEVB: wake-sleep's samples per second over AEVB's (target >= 0.9); ceiling: the roofline's share of GEMM+opt, (c) / (d), the most a step that updates its parameters "
          "after its GEMMs could reach")


if __name__ == "__main__":
    main()
