"""Training throughput in the dashboard's worker against the CLI, side by side in one run.

The same configuration (Frey Face, J = 2, M = 100, L = 1, Adagrad, lr 0.02, 5e5 samples) is trained
in turn (a) by `python -m vae_core train`, (b) from the Train page of `streamlit run dashboard.py` open in
headless Chromium, whose live view redraws its charts twice a second throughout, and (c) from the Train
page, which is then left for the Home page while the run trains, and (d) by the CLI again beside a synthetic
load that takes as much CPU as the browser and the app took during (b), in 10 ms bursts. Each run reports its
own samples per second (training time, evaluations excluded); the ratios b / a, c / a and d / a of each round
and their medians are printed. d / a shows what the CLI itself keeps when the live view's CPU is taken from
it: a bound on what any worker could reach while the page redraws on this machine.
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
sys.path.insert(0, str(REPO))
from vae_core import runs  # noqa: E402

SAMPLES = "5e5"


BURNER = """
import sys, time
period = 0.01 / min(float(sys.argv[1]), 1.0)
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.01:
        pass
    time.sleep(max(0.0, period - (time.perf_counter() - start)))
"""


def cli_rate(runs_dir: Path, load: float = 0.0) -> float:
    """The CLI's samples/s, with a busy loop taking `load` of one core (10 ms busy in each 10 / load ms) beside it."""
    burner = subprocess.Popen([sys.executable, "-c", BURNER, str(load)]) if load > 0 else None
    try:
        out = subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "frey", "--latent-dim", "2",
                              "--samples", SAMPLES, "--lr", "0.02", "--run-dir", str(runs_dir / f"cli-{time.time_ns()}"),
                              "--json"], cwd=REPO, capture_output=True, text=True, check=False)
    finally:
        if burner is not None:
            burner.kill()
    if out.returncode != 0:
        raise SystemExit(f"the CLI failed (is VAE_DATA_DIR set?):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


def display_cpu_seconds(server_pid: int) -> float:
    """CPU seconds used so far by this script's descendants (browser, app server) but not the app's training workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, used = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            parents[int(entry.name)] = int(fields[1])
            used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def descends(pid: int, ancestor: int) -> bool:
        while pid in parents and pid != ancestor:
            pid = parents[pid]
        return pid == ancestor
    return sum(seconds for pid, seconds in used.items() if pid != os.getpid() and descends(pid, os.getpid())
               and (pid == server_pid or not descends(pid, server_pid)))


def dashboard_rate(page, url: str, runs_dir: Path, leave: bool, server_pid: int) -> tuple[float, float]:
    """The run's samples/s and the cores that the browser and the app server used meanwhile."""
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    page.goto(url + "/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=30_000)
    page.get_by_label("Dataset").click()
    page.get_by_role("option", name="frey").click()
    page.get_by_label("Training samples to evaluate").fill(SAMPLES)
    page.get_by_label("Step size ('auto' tries 0.01, 0.02, 0.1)").fill("0.02")
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Pause").wait_for(timeout=30_000)  # the run's controls: it has started
    (run_dir,) = [p for p in runs_dir.iterdir() if p not in before]
    if leave:
        page.get_by_role("link", name="Home").click()  # same session; Home does not redraw on a timer
        page.get_by_text("Auto-Encoding Variational Bayes").first.wait_for(timeout=30_000)
    start, cpu = time.monotonic(), display_cpu_seconds(server_pid)
    while time.monotonic() < start + 300:
        status = runs.read_json(run_dir / runs.STATUS) if (run_dir / runs.STATUS).is_file() else {}
        if status.get("state") == "finished":
            return status["samples_per_second"], (display_cpu_seconds(server_pid) - cpu) / (time.monotonic() - start)
        time.sleep(0.5)
    raise TimeoutError(f"{run_dir} did not finish")


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
    cli, dashboard, left, loaded, display = [], [], [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            for _ in range(args.rounds):
                cli.append(cli_rate(runs_dir))
                rate, cores = dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs, False, server.pid)
                dashboard.append(rate)
                display.append(cores)
                left.append(dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs, True, server.pid)[0])
                loaded.append(cli_rate(runs_dir, load=cores))
                print(f"round: CLI {cli[-1]:,.0f}, dashboard watched {dashboard[-1]:,.0f} ({dashboard[-1] / cli[-1]:.0%}; "
                      f"browser and app used {cores:.0%} of a core), dashboard left for Home {left[-1]:,.0f} "
                      f"({left[-1] / cli[-1]:.0%}), CLI beside a {cores:.0%} load {loaded[-1]:,.0f} ({loaded[-1] / cli[-1]:.0%}) "
                      "samples/s", flush=True)
            browser.close()
    finally:
        server.terminate()
    # The machine's speed drifts from minute to minute, so each round's ratio is taken on its own first.
    watched = statistics.median(b / a for a, b in zip(cli, dashboard))
    unwatched = statistics.median(c / a for a, c in zip(cli, left))
    bound = statistics.median(d / a for a, d in zip(cli, loaded))
    print(f"median over {args.rounds} rounds of each round's ratio to the CLI: dashboard worker {watched:.0%} with the "
          f"Train page redrawing, {unwatched:.0%} once the page is left for Home; the CLI itself beside a load as "
          f"large as the live view's ({statistics.median(display):.0%} of a core): {bound:.0%}")

if __name__ == "__main__":
    main()
