"""Training throughput in the dashboard's worker against the CLI, side by side in one run.

The same configuration (Frey Face, J = 2, M = 100, L = 1, Adagrad, lr 0.02, 5e5 samples) is trained
alternately (a) by `python -m vae_core train` and (b) from the Train page of `streamlit run dashboard.py`
open in headless Chromium, whose live view redraws its charts twice a second throughout. Each run
reports its own samples per second (training time, evaluations excluded); the ratio b / a is printed.
Run: `python bench/dashboard_throughput.py [--rounds N]` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = "5e5"


def cli_rate(runs_dir: Path) -> float:
    out = subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "frey", "--latent-dim", "2",
                          "--samples", SAMPLES, "--lr", "0.02", "--run-dir", str(runs_dir / f"cli-{time.time_ns()}"),
                          "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


def dashboard_rate(page, url: str, runs_dir: Path) -> float:
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    page.goto(url + "/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=30_000)
    page.get_by_label("Dataset").click()
    page.get_by_role("option", name="frey").click()
    page.get_by_label("Training samples to evaluate").fill(SAMPLES)
    page.get_by_label("Step size ('auto' tries 0.01, 0.02, 0.1)").fill("0.02")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("finished:").wait_for(timeout=300_000)  # the page redraws twice a second until here
    (run_dir,) = [p for p in runs_dir.iterdir() if p not in before]
    return json.loads((run_dir / "status.json").read_text())["samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="dash-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app_runs = runs_dir / "app"
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1"], cwd=REPO, env={**os.environ, "VAE_RUNS_DIR": str(app_runs)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)
    cli, dashboard = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            for _ in range(args.rounds):
                cli.append(cli_rate(runs_dir))
                dashboard.append(dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs))
                print(f"round: CLI {cli[-1]:,.0f} samples/s, dashboard {dashboard[-1]:,.0f} samples/s", flush=True)
            browser.close()
    finally:
        server.terminate()
    a, b = statistics.median(cli), statistics.median(dashboard)
    print(f"median over {args.rounds} rounds: CLI {a:,.0f} samples/s, dashboard worker {b:,.0f} samples/s, "
          f"dashboard / CLI = {b / a:.0%}")


if __name__ == "__main__":
    main()
