"""vae_core against its peers, each at its own configuration, side by side in one run.

The peers' training loops are re-implemented here as each peer writes its own (a DataLoader over a TensorDataset,
autograd, its optimizer, its network as it defines it), not copied:
- pytorch/examples `vae/main.py`: 784-400-20 with ReLU, separate mean and log-variance layers, PyTorch's default
  initialisation, Adam 1e-3, M = 128, the summed binary cross-entropy plus the analytic KL;
- Pyro's VAE example: 784-400-50 with softplus, the encoder giving log σ, Adam 1e-3, M = 256, the Monte Carlo
  ELBO of `Trace_ELBO` (a sample of log q - log p(z) for the KL, estimator A).
vae_core trains the same network, optimizer, M and estimator through its own CLI's settings (`--hidden 400
--activation relu --init default --optimizer adam --lr 1e-3 --no-weight-decay ...`).

(a) Throughput: steps of each in interleaved blocks, samples per second, the ratio as the median of each block's;
    beside them, where the time goes: the step's eleven GEMMs alone at the network's shapes, then followed by our
    fused optimizer update (`train_throughput.py`'s roofline), and the ceiling that sets on any speed-up over the
    peer: the peer's step over GEMMs + update.
(b) Test bound after the same number of training samples (default 6·10^5, the examples' ten epochs), each model
    scored by one evaluator: estimator B with L = 1 over the MNIST test set; median over --seeds.
Run: `python bench/peers.py [--samples 6e5] [--seeds 3]` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from torch import nn
from torch.nn import functional as F
from train_throughput import (
    gemm_and_optimizer_steps,
    gemm_steps,
    interleaved,
    logged_steps,
    minibatches,
    paired_ratio,  # bench/ is this script's folder
)

from vae_core import data
from vae_core.config import TrainConfig, parse_sample_count
from vae_core.training import Trainer

PEERS = {
    "pytorch/examples": {"hidden": 400, "J": 20, "activation": "relu", "M": 128, "estimator": "B"},
    "Pyro": {"hidden": 400, "J": 50, "activation": "softplus", "M": 256, "estimator": "A"},
}


class PeerVAE(nn.Module):
    """The peers' network: fc1, fc21 (mean), fc22 (log-variance, or log σ for Pyro), fc3, fc4."""

    def __init__(self, hidden: int, J: int, activation: str, log_sigma: bool):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, hidden), nn.Linear(hidden, J), nn.Linear(hidden, J)
        self.fc3, self.fc4 = nn.Linear(J, hidden), nn.Linear(hidden, 784)
        self.act = F.relu if activation == "relu" else F.softplus
        self.log_sigma = log_sigma

    def encode(self, x):
        h = self.act(self.fc1(x))
        mu, scale = self.fc21(h), self.fc22(h)
        return mu, (2 * scale if self.log_sigma else scale)  # the log-variance

    def decode_logits(self, z):
        return self.fc4(self.act(self.fc3(z)))

    def elbo(self, x, estimator: str):
        """Per datapoint; estimator B: analytic KL (pytorch/examples); A: a sample of log q - log p(z) (Pyro)."""
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn_like(std)
        log_px = -F.binary_cross_entropy_with_logits(self.decode_logits(z), x, reduction="none").sum(-1)
        if estimator == "B":
            kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)
        else:
            log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
            kl = log_q - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        return log_px - kl


def peer_steps(peer: str, X: torch.Tensor, seed: int):
    """The peer's training loop, one minibatch per call: DataLoader, zero_grad, loss (summed over the batch, as
    both write it), backward, Adam."""
    spec = PEERS[peer]
    torch.manual_seed(seed)
    model = PeerVAE(spec["hidden"], spec["J"], spec["activation"], log_sigma=peer == "Pyro")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = minibatches(X, spec["M"])

    def step():
        x = next(batches)
        optimizer.zero_grad()
        (-model.elbo(x, spec["estimator"]).sum()).backward()
        optimizer.step()
    step.model = model
    return step


def our_config(peer: str, samples: int, seed: int) -> TrainConfig:
    spec = PEERS[peer]
    return TrainConfig(dataset="mnist", hidden=(spec["hidden"],), latent_dim=spec["J"], activation=spec["activation"],
                       init="default", optimizer="adam", lr=1e-3, batch_size=spec["M"], estimator=spec["estimator"],
                       weight_decay=False, samples=samples, seed=seed)


@torch.no_grad()
def test_bound(elbo, x_test: torch.Tensor) -> float:
    torch.manual_seed(0)
    return float(torch.cat([elbo(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=parse_sample_count, default=600_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args()
    mnist = data.load("mnist")
    X, x_test = torch.tensor(mnist.train), torch.tensor(mnist.test)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MNIST; {args.blocks} interleaved blocks")
    print(f"{'peer':<18} {'ours samples/s':>15} {'peer samples/s':>15} {'speed-up':>9} {'ours test':>10} {'peer test':>10} "
          f"{'ours ms':>8} {'peer ms':>8} {'GEMM ms':>8} {'GEMM+opt ms':>12} {'ceiling':>8} {'of ceiling':>11}  step")
    for peer, spec in PEERS.items():
        ours = Trainer.from_config(our_config(peer, 10**9, 0), tempfile.mkdtemp(prefix="bench-peers-") + "/run")
        times = interleaved({"ours": logged_steps(ours), "peer": peer_steps(peer, X, 0), "gemm": gemm_steps(ours),
                             "gemm+opt": gemm_and_optimizer_steps(ours)}, args.blocks, 40)
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rate = {k: spec["M"] / statistics.median(v) for k, v in times.items()}
        bounds = {"ours": [], "peer": []}
        for seed in range(args.seeds):
            trainer = Trainer.from_config(our_config(peer, args.samples, seed), tempfile.mkdtemp(prefix="bench-peers-") + "/run")
            bounds["ours"].append(trainer.run().test_lower_bound)
            step = peer_steps(peer, X, seed)
            for _ in range(-(-args.samples // spec["M"])):
                step()
            bounds["peer"].append(test_bound(lambda x: step.model.elbo(x, "B"), x_test))
        print(f"{peer:<18} {rate['ours']:>15,.0f} {rate['peer']:>15,.0f} {paired_ratio(times['peer'], times['ours']):>8.2f}x "
              f"{statistics.median(bounds['ours']):>10.2f} {statistics.median(bounds['peer']):>10.2f} "
              f"{ms['ours']:>8.3f} {ms['peer']:>8.3f} {ms['gemm']:>8.3f} {ms['gemm+opt']:>12.3f} "
              f"{paired_ratio(times['peer'], times['gemm+opt']):>7.2f}x {paired_ratio(times['gemm+opt'], times['ours']):>11.0%}  "
              f"{ours.algorithm.step}",
              flush=True)
        ours.close()
    print("ceiling: the peer's step over GEMMs + update, the most any step doing the same products and update could "
          "gain on the peer; of ceiling: GEMMs + update over our whole step")
    print(f"test bounds: estimator B, L = 1, over the 10,000 test images, after {args.samples:,} training samples; "
          f"median of {args.seeds} seeds")


if __name__ == "__main__":
    main()
