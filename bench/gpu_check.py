"""The GPU check: the engine's CUDA path run and measured in one script of about 8 minutes, on a GPU or the CPU.

1. The tests marked `cuda` (`pytest -m cuda`); where PyTorch sees no GPU they are skipped, and the results say so.
2. The training step's samples per second at the paper's networks, MNIST (784-500-20) and Frey Face (560-200-2),
   M = 100 and M = 20, as `Trainer` runs it (minibatch, noise, gradient, optimizer, its logging cadence): on the
   device, the autograd step eager (`--step autograd`), compiled (`--step compiled`) and, on a GPU, graphed (the
   compiled loss in torch.compile's mode "reduce-overhead", which replays CUDA graphs); beside them the CPU's
   hand-derived step, timed in this same run. Variants alternate in blocks (synchronised on a GPU); a variant's
   rate is its median block's, its ratio to the eager step the median of the blocks' ratios.
3. MNIST J = 20 to --long-samples (10^8 on a GPU) by `python -m vae_core train` on the device, its wall time and
   bounds beside the CPU run's -99.88 (test, docs/REPRODUCTION.md); stopped (Ctrl-C, a checkpoint kept) when its
   share of the time is spent, with the command that continues it.
4. With the time left, Figure 2's grid as one sweep (`sweep --figure 2`, a quarter GPU a trial on a GPU) at the
   largest budget that the measured rate says fits.
Results: results.json and results.md under --out (default: a new folder gpu-check-<device>-<time>).
Run: `python bench/gpu_check.py [--minutes 8] [--out DIR]` with VAE_DATA_DIR set; `--device cpu --quick` is the
short run CI makes.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_throughput import logged_steps  # bench/ is this script's folder

from vae_core import data, paper
from vae_core import sweep as sweeps
from vae_core.config import TrainConfig, device_problem, resolve_device
from vae_core.training import Trainer

REPO = Path(__file__).resolve().parents[1]
NETWORKS = {"MNIST": ("mnist", 20), "Frey Face": ("frey", 2)}  # the paper's: its hidden layer per dataset
BATCHES = (100, 20)
CPU_BOUND = -99.88  # docs/REPRODUCTION.md: MNIST J = 20, 10^8 samples on the CPU, test bound
STEP_VARIANTS = {"auto": "eager", "autograd": "eager", "compiled": "compiled"}  # the timed variant of each step
CUDA_TESTS = "tests/test_device.py"  # where the cuda-marked tests are (the app's tests need streamlit, not a GPU)
TRIAL = """import json, sys
from vae_core import TrainConfig, Trainer
last = Trainer.from_config(TrainConfig.from_dict(json.loads(sys.argv[1])), run_dir=sys.argv[2]).run()
print(json.dumps({"status": str(last.kind), "test_lower_bound": last.test_lower_bound}))
"""  # one trial of a sweep without Ray, as its own process
SHARES = {"tests": 0.2, "throughput": 0.25, "long run": 0.4}  # of --minutes; the sweep has what is left


def run_cuda_tests(limit: float) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", CUDA_TESTS],
                         cwd=REPO, capture_output=True, text=True, timeout=max(60.0, limit))
    summary = (out.stdout.strip().splitlines() or [""])[-1].strip("= ")
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)  # collection errors too
    return {"summary": summary, "returncode": out.returncode, "passed": counts.get("passed", 0), "failed": failed,
            "skipped": counts.get("skipped", 0),
            "seconds": time.perf_counter() - started, "tail": out.stdout[-2000:] if out.returncode not in (0, 5) else ""}


def _trainer(dataset: data.Dataset, J: int, M: int, device: str, step: str, scratch: Path) -> Trainer:
    config = TrainConfig(dataset=dataset.name, latent_dim=J, batch_size=M, samples=10**8, lr=0.02, device=device,
                         step=step)
    return Trainer.from_config(config, run_dir=tempfile.mkdtemp(dir=scratch), dataset=dataset)


def _variants(device: torch.device) -> dict[str, tuple[str, str]]:
    """Each timed variant: (device, step); "graphed" is the compiled step in mode reduce-overhead (CUDA graphs)."""
    on = device.type
    variants = {"eager": (on, "autograd"), "compiled": (on, "compiled")}
    if on == "cuda":
        variants["graphed"] = (on, "compiled")
    variants["CPU, hand-derived"] = ("cpu", "fast")
    return variants


def measure_steps(device: torch.device, quick: bool, scratch: Path) -> list[dict]:
    blocks, per_block = (2, 3) if quick else (7, 30)
    rows = []
    for title, (name, J) in NETWORKS.items():
        dataset = data.load(name)
        for M in BATCHES:
            steps, compile_seconds, syncs = {}, {}, {}
            for variant, (on, step) in _variants(device).items():
                sync = torch.cuda.synchronize if on == "cuda" else (lambda: None)
                started = time.perf_counter()
                try:
                    trainer = _trainer(dataset, J, M, on, step, scratch)
                    if variant == "graphed":
                        trainer.algorithm.objective = torch.compile(trainer.algorithm.loss, mode="reduce-overhead",
                                                                    dynamic=False)
                    trainer.close()  # its run folder's lock: the timed steps write nothing
                    steps[variant] = logged_steps(trainer)  # past the first steps (which all log); compiles on the way
                    steps[variant]()
                    sync()
                except Exception as e:  # one variant's failure is a result, not the end of the check
                    steps.pop(variant, None)
                    rows.append({"network": title, "M": M, "variant": variant, "device": on,
                                 "error": f"{type(e).__name__}: {e}"[:500]})
                    continue
                if step == "compiled":
                    compile_seconds[variant] = time.perf_counter() - started
                syncs[variant] = sync
            times: dict[str, list[float]] = {variant: [] for variant in steps}
            for _ in range(blocks):
                for variant, step_once in steps.items():
                    syncs[variant]()
                    started = time.perf_counter()
                    for _ in range(per_block):
                        step_once()
                    syncs[variant]()
                    times[variant].append((time.perf_counter() - started) / per_block)
            for variant, seconds in times.items():
                eager = times.get("eager", seconds)
                rows.append({"network": title, "M": M, "variant": variant, "device": _variants(device)[variant][0],
                             "samples_per_second": M / statistics.median(seconds),
                             "ratio_to_eager": statistics.median(e / s for e, s in zip(eager, seconds)),
                             "compile_seconds": compile_seconds.get(variant)})
    return rows


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def _command(args: list[str], limit: float) -> tuple[dict, float, int, str]:
    """`python -m vae_core ARGS`, stopped by Ctrl-C (SIGINT: a checkpoint is kept) after `limit` seconds: its JSON
    line, wall seconds, exit code and the end of its stderr."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "vae_core", *args], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate()
    return _last_json(out), time.perf_counter() - started, process.returncode, err[-1500:]


def long_run(device: torch.device, samples: int, step: str, folder: Path, limit: float) -> dict:
    run_dir = folder / "mnist-J20"
    result, seconds, code, err = _command(["train", "--dataset", "mnist", "--latent-dim", "20", "--samples",
                                           str(samples), "--device", device.type, "--step", step, "--run-dir",
                                           str(run_dir), "--json"], limit)
    return {"samples": samples, "step": step, "wall_seconds": seconds, "returncode": code,
            "status": result.get("status", "failed" if code else "stopped"),
            "samples_evaluated": result.get("samples_evaluated"), "train_lower_bound": result.get("train_lower_bound"),
            "test_lower_bound": result.get("test_lower_bound"), "cpu_test_lower_bound": CPU_BOUND,
            "continue": f"python -m vae_core train --resume {run_dir} --json", "stderr": "" if code == 0 else err}


def sweep_budget(seconds: float, rate: float, trials: int) -> int:
    """The largest budget of 1, 2 or 5 times a power of ten whose trials fit in `seconds` at half the rate `rate`
    (evaluations, start-up and sharing the device), one after another."""
    fits = max(1000.0, seconds * rate * 0.5 / trials)
    power = 10 ** math.floor(math.log10(fits))
    return max(m * power for m in (1, 2, 5) if m * power <= fits)


def figure_2_sweep(device: torch.device, samples: int, step: str, folder: Path, limit: float, by: str) -> dict:
    """Figure 2's trials at `samples`: by `sweep --figure 2` on Ray (a quarter GPU a trial on a GPU), or as processes
    of their own, four at a time on one GPU (one a core on the CPU), where Ray is not installed."""
    configs = [{**c, "device": device.type, "step": step} for c in paper.FIGURES[2].configs(samples, [0])]
    if by == "ray":
        resources = ["--gpus-per-trial", "0.25"] if device.type == "cuda" else []
        result, seconds, code, err = _command(["sweep", "--figure", "2", "--samples", str(samples), "--device",
                                               device.type, "--step", step, *resources, "--sweep-dir",
                                               str(folder / "figure-2"), "--json"], limit)
        trials = result.get("trials", [])
    else:
        at_once = 4 if device.type == "cuda" else os.cpu_count() or 1
        seconds, code, err, trials = _processes(configs, folder / "figure-2", at_once, limit)
    done = [t for t in trials if t.get("status") == "finished"]
    return {"samples": samples, "by": by, "trials": len(configs), "finished": len(done), "wall_seconds": seconds,
            "returncode": code, "bounds": {t["name"]: t.get("test_lower_bound") for t in trials},
            "stderr": "" if code == 0 else err}


def _processes(configs: list[dict], folder: Path, at_once: int, limit: float) -> tuple[float, int, str, list[dict]]:
    """Each config trained by a process of its own, `at_once` at a time, until `limit` seconds (then the rest are
    killed): wall seconds, the worst exit code, the last failure's stderr, and each trial's name, status and bound."""
    folder.mkdir(parents=True, exist_ok=True)
    waiting = list(zip(sweeps.Sweep.from_configs(folder, configs).trials, configs))  # the sweep's names for them
    running: list[tuple[str, subprocess.Popen]] = []
    trials, code, err, started = [], 0, "", time.perf_counter()
    while waiting or running:
        while waiting and len(running) < at_once:
            name, config = waiting.pop(0)
            command = [sys.executable, "-c", TRIAL, json.dumps(config), str(folder / name)]
            running.append((name, subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)))
        time.sleep(0.2)
        if time.perf_counter() - started > limit:
            waiting = []
            for _, process in running:
                process.kill()
        for name, process in [r for r in running if r[1].poll() is not None]:
            running.remove((name, process))
            out, error = process.communicate()
            trials.append({"name": name, **(_last_json(out) or {"status": "failed" if process.returncode else "stopped"})})
            if process.returncode:
                code, err = process.returncode, error[-1500:]
    return time.perf_counter() - started, code, err, trials


def markdown(results: dict) -> str:
    """The results so far, as a Markdown page: a section's failure is shown as such."""
    lines = [f"# GPU check on {results['device_name']} ({results['device']}), torch {results['torch']}"
             + (" (a smoke run: --quick)" if results["quick"] else ""), ""]
    failed = lambda key: f"failed: {results[key]['error']}" if isinstance(results.get(key), dict) \
        and "error" in results[key] else None
    if "tests" in results:
        lines += [f"## cuda tests: {failed('tests') or results['tests']['summary']}", ""]
    if "throughput" in results:
        lines += ["## Training step (samples/s; ratio to the eager step, median of paired blocks)", ""]
        if failed("throughput"):
            lines += [failed("throughput"), ""]
        else:
            lines += ["| network | M | variant | device | samples/s | ratio | compile s |", "|---|---|---|---|---|---|---|"]
            for r in results["throughput"]:
                head = f"| {r['network']} | {r['M']} | {r['variant']} | {r['device']} |"
                if "error" in r:
                    lines.append(f"{head} failed: {r['error']} | | |")
                    continue
                compiled = f"{r['compile_seconds']:.1f}" if r["compile_seconds"] is not None else ""
                lines.append(f"{head} {r['samples_per_second']:,.0f} | {r['ratio_to_eager']:.2f} | {compiled} |")
            lines.append("")
    if "long run" in results:
        run = results["long run"]
        lines += ["## MNIST J = 20, one long run", ""]
        if failed("long run"):
            lines += [failed("long run"), ""]
        else:
            bound = f"{run['test_lower_bound']:.2f}" if run["test_lower_bound"] is not None else "-"
            lines += [f"{run['samples']:,} samples asked ({run['step']} step): {run['status']} at "
                      f"{run['samples_evaluated'] or 0:,} samples in {run['wall_seconds']:.0f} s; test bound {bound} "
                      f"(the CPU run's at 10^8: {run['cpu_test_lower_bound']}). Continue: `{run['continue']}`", ""]
    if "sweep" in results:
        sweep = results["sweep"]
        lines += ["## Figure 2 as one sweep", ""]
        lines += [failed("sweep") or f"{sweep['trials']} trials of {sweep['samples']:,} samples ({sweep['by']}): "
                  f"{sweep['finished']} finished in {sweep['wall_seconds']:.0f} s (exit {sweep['returncode']}).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole script's time (default 8)")
    parser.add_argument("--quick", action="store_true", help="few timed blocks: a smoke run, not a measurement")
    parser.add_argument("--long-samples", type=float, default=None, help="default: 1e8 on a GPU, 1e6 on the CPU")
    parser.add_argument("--sweep-samples", type=float, default=None, help="default: what the time left fits")
    parser.add_argument("--step", default="compiled", choices=tuple(STEP_VARIANTS),
                        help="the long run's and the sweep's step (default: compiled)")
    parser.add_argument("--sweep-by", choices=("ray", "processes"), default=None,
                        help="default: Ray where it is installed, else processes of their own")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if problem := device_problem(args.device):
        raise SystemExit(f"error: {problem}")
    device = resolve_device(args.device)
    for name, _ in NETWORKS.values():
        data.load(name)  # the real data, before any time is spent (VAE_DATA_DIR)
    out = args.out or REPO / f"gpu-check-{device.type}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    budget, started = args.minutes * 60, time.perf_counter()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    results: dict = {"device": device.type, "device_name": name, "torch": torch.__version__, "quick": args.quick}

    def section(key: str, compute) -> None:
        """One part of the check; its failure is recorded, and what came before is on disk whatever follows."""
        try:
            results[key] = compute()
        except Exception as e:
            results[key] = {"error": f"{type(e).__name__}: {e}"[:1000]}
        results["wall_seconds"] = time.perf_counter() - started
        (out / "results.json").write_text(json.dumps(results, indent=1))
        (out / "results.md").write_text(markdown(results))
        print(f"{key}: done at {results['wall_seconds']:.0f} s", file=sys.stderr)

    section("tests", lambda: run_cuda_tests(SHARES["tests"] * budget))
    with tempfile.TemporaryDirectory() as scratch:
        section("throughput", lambda: measure_steps(device, args.quick, Path(scratch)))
    long_samples = int(args.long_samples or (10**8 if device.type == "cuda" else 10**6))
    section("long run", lambda: long_run(device, long_samples, args.step, out, SHARES["long run"] * budget))
    left = budget - (time.perf_counter() - started)
    timed = "CPU, hand-derived" if args.step == "auto" and device.type == "cpu" else STEP_VARIANTS[args.step]
    rates = [r["samples_per_second"] for r in results["throughput"] if isinstance(r, dict)
             and r.get("network") == "MNIST" and r.get("M") == 100 and r.get("variant") == timed] \
        if isinstance(results["throughput"], list) else []
    trials = len(paper.FIGURES[2].configs(1000, [0]))
    if args.sweep_samples or (rates and left > 60):
        samples = int(args.sweep_samples or sweep_budget(left - 60, rates[0], trials))
        by = args.sweep_by or ("ray" if importlib.util.find_spec("ray") else "processes")
        section("sweep", lambda: figure_2_sweep(device, samples, args.step, out, max(60.0, left - 10), by))
    print(markdown(results))
    print(f"results in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
