"""Figure 2's Frey Face row as a sweep against the same runs one after another, side by side in one run.

The row's eight trials (J = 2, 5, 10, 20; AEVB and wake-sleep; Adagrad at lr 0.02, no step-size trial) at a small
budget are trained (a) by `python -m vae_core train`, one after another, each with every thread, and (b) by
`python -m vae_core sweep` with one single-threaded trial per core on a local Ray. Each side's aggregate rate is
all its trials' training samples over its wall time, from the first command's start to the last one's end, so
process and Ray start-up count against it; Ray's own start-up (`ray.init` until the cluster answers) is timed
apart. Rounds alternate which side goes first, so the machine's drift does not favour one. Then the bound on any
gain: one run's training rate on both threads, on one thread alone, and on one thread beside another such run.
Run: `python bench/sweep.py [--samples 3e5] [--rounds 2]` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LATENT_DIMS = (2, 5, 10, 20)
ALGORITHMS = ("aevb", "wake-sleep")


def command(*args: str) -> float:
    """Runs `python -m vae_core ARGS`; its wall time in seconds."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"`vae_core {' '.join(args)}` failed (is VAE_DATA_DIR set?):\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def one_after_another(samples: str, folder: Path) -> float:
    start = time.perf_counter()
    for J in LATENT_DIMS:
        for algorithm in ALGORITHMS:
            command("train", "--dataset", "frey", "--latent-dim", str(J), "--algorithm", algorithm, "--lr", "0.02",
                    "--samples", samples, "--run-dir", str(folder / f"J{J}-{algorithm}"), "--json")
    return time.perf_counter() - start


def as_sweep(samples: str, folder: Path) -> float:
    return command("sweep", "--dataset", "frey", "--latent-dim", *map(str, LATENT_DIMS), "--algorithm", *ALGORITHMS,
                   "--lr", "0.02", "--samples", samples, "--cpus-per-trial", "1", "--sweep-dir", str(folder), "--json")


def training_rates(threads: int, side_by_side: int, samples: str, folder: Path) -> list[float]:
    """Frey Face J = 2 AEVB, `side_by_side` CLI runs at once with `threads` threads each: each run's own training
    samples per second (evaluations excluded), which bounds what running trials side by side can gain."""
    procs = [subprocess.Popen([sys.executable, "-m", "vae_core", "train", "--dataset", "frey", "--latent-dim", "2",
                               "--lr", "0.02", "--samples", samples, "--run-dir", str(folder / f"t{threads}x{side_by_side}-{i}"), "--json"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)}) for i in range(side_by_side)]
    outs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a training run failed:\n{outs[0][1][-3000:]}")
    return [json.loads(out.strip().splitlines()[-1])["samples_per_second"] for out, _ in outs]


def ray_start_up() -> float:
    """Seconds from `ray.init` (local, as the sweep starts it) until the cluster reports its CPUs."""
    code = ("import time, os; start = time.perf_counter(); from vae_core.sweep import start_ray; import ray; "
            "start_ray(None); ray.cluster_resources(); print(time.perf_counter() - start); ray.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="3e5", help="training samples per trial")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    total = float(args.samples) * len(LATENT_DIMS) * len(ALGORITHMS)
    folder = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    ratios = []
    for round_ in range(args.rounds):
        sides = {"one after another": one_after_another, "sweep": as_sweep}
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        seconds = {name: sides[name](args.samples, folder / f"{round_}-{name.replace(' ', '-')}") for name in order}
        rates = {name: total / s for name, s in seconds.items()}
        ratios.append(rates["sweep"] / rates["one after another"])
        print(f"round {round_ + 1} ({order[0]} first): " + ", ".join(
            f"{name} {seconds[name]:.1f} s, {rates[name]:,.0f} samples/s" for name in sides)
            + f"; sweep / one after another {ratios[-1]:.2f}x", flush=True)
    both = statistics.median(training_rates(2, 1, args.samples, folder / "rates"))
    alone = statistics.median(training_rates(1, 1, args.samples, folder / "rates"))
    beside = statistics.median(training_rates(1, 2, args.samples, folder / "rates"))
    print(f"training rate of one run (Frey J = 2): 2 threads {both:,.0f} samples/s; 1 thread alone {alone:,.0f} "
          f"({alone / both:.0%}); 1 thread beside another such run {beside:,.0f} ({beside / both:.0%}): two "
          f"single-threaded trials at once can gain at most {2 * beside / both:.2f}x over one run on both threads", flush=True)
    starts = [ray_start_up() for _ in range(3)]
    print(f"{len(LATENT_DIMS) * len(ALGORITHMS)} trials of {float(args.samples):.0e} samples on {os.cpu_count()} cores: "
          f"sweep over one after another, median of {args.rounds} rounds: {statistics.median(ratios):.2f}x; "
          f"Ray's local start-up {statistics.median(starts):.1f} s (median of 3)")


if __name__ == "__main__":
    main()
