"""Training-step throughput, side by side in one run (ratios, not absolute times).

(a) vae_core's training step, as `Trainer` runs it (minibatch, noise, gradient, fused optimizer, logging);
(b) a reference loop written the way pytorch/examples writes a VAE: a DataLoader over a TensorDataset,
    separate mean and log-variance layers, autograd, `torch.optim.Adagrad` with its defaults, and a
    Python loop over the L samples;
(c) the GEMM roofline: the eleven matrix multiplications of the same step alone, at the same shapes, on a
    trainer's own weights and gradient buffers, each with the faster of the two CPU GEMM kernels at hand
    (MKL's torch.mm, oneDNN's linear);
(d) the ceiling of a step that updates its parameters after its GEMMs: (c) followed by the trainer's own
    optimizer step, with nothing else. Its share of (c) bounds what fusing every other operation away could reach.

Timings are interleaved in blocks; times are the median block's, ratios the median of each block's ratio, so
that drift in the machine's speed between blocks cancels.
Run: `python bench/train_throughput.py` (add `--quick` for a smoke run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae_core.data import Dataset  # noqa: E402
from vae_core.training import TrainConfig, Trainer  # noqa: E402


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


def reference_steps(X, H, J, L, gaussian, M=100):
    model = ReferenceVAE(X.shape[1], H, J, gaussian)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(X), batch_size=M, shuffle=True, drop_last=True)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        optimizer.zero_grad()
        model.loss(x, L).backward()
        optimizer.step()
    return step


def _trainer(X, H, J, L, gaussian, M=100) -> Trainer:
    dataset = Dataset("digits", X.numpy(), X[:100].numpy(), None, None, (1, X.shape[1]),
                      "gaussian" if gaussian else "bernoulli", H)
    return Trainer.from_config(TrainConfig(dataset="digits", latent_dim=J, hidden_dim=H, samples_per_point=L, batch_size=M,
                               samples=10**6, lr=0.01, device="cpu"), run_dir=_scratch(), dataset=dataset)


def logged_steps(trainer: Trainer):
    """One training step per call, with the trainer's own logging cadence (the bound's value on logging steps),
    from past the first steps, which all log their bound: the steady cadence of a long run."""
    def step():
        trainer.train_step(with_values=trainer.logs_bound(trainer.step))
    while trainer.logs_bound(trainer.step):
        step()
    return step


def vae_core_steps(X, H, J, L, gaussian, M=100):
    return logged_steps(_trainer(X, H, J, L, gaussian, M))  # the cadence of a 10^6 budget


def gemm_steps(trainer: Trainer):
    """The step's eleven products alone, on the trainer's own weights and gradient buffers, each with whichever
    CPU GEMM kernel is faster at its shape: MKL's `torch.mm` or oneDNN's linear (`vae_core`'s step uses oneDNN
    for its hidden and output layers). Activations are random tensors of the step's shapes."""
    encoder, decoder, grads = trainer.model.encoder, trainer.model.decoder, trainer.params.grads
    W1, Wz, Wd1, Wd2 = (layer.weight.detach() for layer in (encoder.to_hidden, encoder.to_z_params,
                                                             decoder.to_hidden, decoder.to_x_params))
    (H, D), J, out_dim = W1.shape, Wz.shape[0] // 2, Wd2.shape[0]
    LM, M = trainer.config.samples_per_point * trainer.config.batch_size, trainer.config.batch_size
    r = torch.randn
    x, h, zp, z, g, d_out, d_g = r(M, D), r(M, H), r(M, 2 * J), r(LM, J), r(LM, H), r(LM, out_dim), r(LM, H)
    products = [(x, W1.t(), None), (h, Wz.t(), None), (z, Wd1.t(), None), (g, Wd2.t(), None),  # forward
                (d_out.t(), g, grads[6]), (d_out, Wd2, None), (d_g.t(), z, grads[4]), (d_g, Wd1, None),  # backward
                (zp.t(), h, grads[2]), (zp, Wz, None), (h.t(), x, grads[0])]
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
    """(c), then the trainer's fused Adagrad step over the same parameters: the GEMMs plus the update alone."""
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
    args = parser.parse_args()
    blocks, per_block = (3, 3) if args.quick else (25, 20)
    torch.manual_seed(0)
    configs = [("MNIST 784-500-20", 784, 500, 20, 1, False), ("MNIST 784-500-20", 784, 500, 20, 10, False),
               ("Frey 560-200-2", 560, 200, 2, 1, True)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, M = 100, Adagrad; {blocks} interleaved blocks of "
          f"{per_block} steps: median times, and ratios as the median of each block's ratio")
    print(f"{'configuration':<20} {'L':>3} {'vae_core ms':>12} {'reference ms':>13} {'GEMM ms':>8} {'GEMM+opt ms':>12} "
          f"{'vs reference':>13} {'of GEMM roofline':>17} {'ceiling':>8}")
    for name, D, H, J, L, gaussian in configs:
        X = torch.rand(6000, D)
        t = interleaved({"vae_core": vae_core_steps(X, H, J, L, gaussian), "reference": reference_steps(X, H, J, L, gaussian),
                         "gemm": gemm_steps(_trainer(X, H, J, L, gaussian)),
                         "gemm+opt": gemm_and_optimizer_steps(_trainer(X, H, J, L, gaussian))},
                        blocks, per_block)
        ms = {contender: statistics.median(seconds) * 1e3 for contender, seconds in t.items()}
        print(f"{name:<20} {L:>3} {ms['vae_core']:>12.3f} {ms['reference']:>13.3f} {ms['gemm']:>8.3f} {ms['gemm+opt']:>12.3f} "
              f"{paired_ratio(t['reference'], t['vae_core']):>12.2f}x {paired_ratio(t['gemm'], t['vae_core']):>16.0%} "
              f"{paired_ratio(t['gemm'], t['gemm+opt']):>7.0%}")
    print("ceiling: the roofline's share of GEMM+opt, (c) / (d), the most a step that updates its parameters after its "
          "GEMMs could reach")


if __name__ == "__main__":
    main()
