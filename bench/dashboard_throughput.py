"""Training throughput in the dashboard's worker against the CLI, side by side in one run.

The same configuration (Frey Face, J = 2, M = 100, L = 1, Adagrad, lr 0.02, 5e5 samples) is trained, in each
round, (a) by `python -m vae_core train`, (b) from the Train page of `streamlit run dashboard.py` open in
headless Chromium, whose progress line and charts follow the run's feed once a second throughout, and (c) from the Train page,
which is then left for the Home page while the run trains; then (b) and (c) again beside a neighbour, a busy loop
taking a whole core (another program, another run), where the unwatched run must train at least as fast as the
watched one (issue 20: it trained 4 to 10 times slower before the worker measured its thread count). Each run reports its own samples per second
(training time, evaluations excluded). The CLI runs before (b), between (b) and (c), and after (c); each of (b) and
(c) is taken over the mean of the CLI's two runs around it (the machine's speed drifts by 10-40% within minutes),
and the medians of these ratios over the rounds are printed, with the CPU that the browser and the app server took
during (b), by process.

Then, to show what any training process could keep beside such a page on this machine, the same steps run in
this process (the CLI's own Trainer) in paired blocks, against all cores with nothing beside them: (d) beside a
busy loop taking as much CPU as the browser and the app took during (b); (e) beside lighter busy loops
(`--lighter-loads`, shares of a core), what a cheaper live view could at best leave; (f) beside the two live
charts alone, the chart component's page following (b)'s rows from a feed rewritten twice a second, in a bare page, with no Streamlit
around them, whose own CPU is printed too. Each with all threads and with one fewer, as the watched worker uses.
Run: `python bench/dashboard_throughput.py [--rounds N] [--blocks N] [--lighter-loads 0.1,0.2]` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_throughput import logged_steps  # bench/ is this script's folder, first on sys.path

from vae_app.components import LiveFeed, live_chart_dir
from vae_core import runs

REPO = Path(__file__).resolve().parents[1]

SAMPLES = "5e5"
DISPLAY_PARTS = ("renderer", "app server", "other browser")


BURNER = """
import sys, time
period = 0.01 / min(float(sys.argv[1]), 1.0)
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.01:
        pass
    time.sleep(max(0.0, period - (time.perf_counter() - start)))
"""


def cli_rate(runs_dir: Path) -> float:
    """The CLI's samples/s."""
    out = subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "frey", "--latent-dim", "2",
                          "--samples", SAMPLES, "--lr", "0.02", "--run-dir", str(runs_dir / f"cli-{time.time_ns()}"),
                          "--json"], cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the CLI failed (is VAE_DATA_DIR set?):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


class BusyLoop:
    """A process that keeps `share` of one core busy in 10 ms bursts while on, and is stopped while off."""

    def __init__(self, share: float):
        self.share = share
        self.process = subprocess.Popen([sys.executable, "-c", BURNER, str(share)])
        self.off()

    def on(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def off(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def close(self) -> None:
        self.process.kill()


class ChartsPage:
    """(f): the Train page's live charts with nothing else. The chart component's own page (live_chart_dir), served
    over HTTP from its folder as Streamlit serves it (by `python -m http.server`), in an iframe of a bare page, polling a feed that a thread here
    rewrites twice a second (`LiveFeed`, as the app server does) with the rows of (b)'s run as they arrived, from
    the first again when the cycle ends (log x, smoothing 0.6: the page's defaults). It runs only while on;
    the file server's CPU counts with the browser's, standing for the app server's serving;
    Chromium's CPU meanwhile is summed in `cpu_seconds` over `seconds`."""

    def __init__(self, browser, rows: list[dict], server_pid: int, ticks: int = 60):
        import threading

        self.rows, self.ticks = rows, ticks
        self.run = Path(tempfile.mkdtemp(prefix="charts-")) / "run"
        self.feed = LiveFeed(every=0.0)
        folder = live_chart_dir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.httpd = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                       "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        args = {"feed": self.feed.name, "state": "running", "active": True, "log_x": True, "smoothing": 0.6}
        self.host = folder / "bench-charts.html"
        self.host.write_text(
            "<!doctype html><body style='margin:0'>"
            "<iframe src='index.html' style='width:100%;height:800px;border:0'></iframe>"
            f"<script>const ARGS = {json.dumps(args)}; document.querySelector('iframe').onload = (e) => "
            "e.target.contentWindow.postMessage({type: 'streamlit:render', args: ARGS}, '*');</script></body>",
            encoding="utf-8")
        self.url = f"http://127.0.0.1:{port}/{self.host.name}"
        self.page = browser.new_page(viewport={"width": 1400, "height": 1600})
        self.server_pid, self.cpu_seconds, self.seconds = server_pid, 0.0, 0.0
        self._on = threading.Event()
        threading.Thread(target=self._feed_rows, daemon=True).start()

    def _feed_rows(self) -> None:
        tick = 0
        while True:
            self._on.wait()
            k = tick % self.ticks
            if k == 0:
                self.feed = LiveFeed(every=0.0)  # the cycle starts again
            shown = self.rows[:max(2, len(self.rows) * (k + 1) // self.ticks)]
            self.feed.update(shown, "running", lambda: {"state": "running", "fraction": (k + 1) / self.ticks,
                                                        "text": f"running: {len(shown):,} rows"})
            tick += 1
            time.sleep(0.5)

    def _browser_cpu(self) -> float:
        used = display_cpu_seconds(self.server_pid)
        return used["renderer"] + used["other browser"]

    def on(self) -> None:
        self._on.set()
        self.page.goto(self.url)
        self.page.wait_for_timeout(1_500)  # loaded and drawing
        self._since = (time.monotonic(), self._browser_cpu())

    def off(self) -> None:
        self.cpu_seconds += self._browser_cpu() - self._since[1]
        self.seconds += time.monotonic() - self._since[0]
        self.page.goto("about:blank")
        self._on.clear()

    def close(self) -> None:
        self.page.close()
        self.httpd.kill()
        self.host.unlink()


def steps_beside_loads(conditions: dict[str, tuple[int, BusyLoop | ChartsPage | None]], runs_dir: Path,
                       blocks: int = 10, seconds: float = 1.5) -> dict[str, float]:
    """(d) to (f): this configuration's training steps, run here by the CLI's own Trainer, under each condition
    (threads, load beside them or None), against all cores with nothing beside them. Each block runs every
    condition for `seconds` between two reference stretches; a condition's ratio is the median over blocks of
    its samples/s over the mean of the two references around it, so the machine's drift cancels. Loads are
    switched on and off outside the timed stretches."""
    import torch

    from vae_core.training import TrainConfig, Trainer
    trainer = Trainer.from_config(TrainConfig(dataset="frey", latent_dim=2, lr=0.02, samples=10**12), run_dir=runs_dir / "steps")
    step, cores = logged_steps(trainer), torch.get_num_threads()

    def rate(threads: int, load) -> float:
        torch.set_num_threads(threads)
        if load is not None:
            load.on()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
        elapsed = time.perf_counter() - start
        if load is not None:
            load.off()
        return steps * trainer.config.batch_size / elapsed
    rate(cores, None)  # warm-up
    ratios = {name: [] for name in conditions}
    reference = rate(cores, None)
    for _ in range(blocks):
        rates = {name: rate(*condition) for name, condition in conditions.items()}
        after = rate(cores, None)
        for name, value in rates.items():
            ratios[name].append(value / ((reference + after) / 2))
        reference = after
    torch.set_num_threads(cores)
    return {name: statistics.median(values) for name, values in ratios.items()}


def display_cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by this script's descendants (browser, app server) but not the app's training
    workers, split into the app server, Chromium's page renderers, and its other processes (GPU, network)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, used, renderers = {}, {}, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if b"--type=renderer" in (entry / "cmdline").read_bytes():
                    renderers.add(int(entry.name))
            except OSError:  # gone meanwhile
                continue
            parents[int(entry.name)] = int(fields[1])
            used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def descends(pid: int, ancestor: int) -> bool:
        while pid in parents and pid != ancestor:
            pid = parents[pid]
        return pid == ancestor
    split = dict.fromkeys(DISPLAY_PARTS, 0.0)
    for pid, seconds in used.items():
        if pid != os.getpid() and descends(pid, os.getpid()) and (pid == server_pid or not descends(pid, server_pid)):
            split["app server" if pid == server_pid else "renderer" if pid in renderers else "other browser"] += seconds
    return split


def dashboard_rate(page, url: str, runs_dir: Path, leave: bool,
                   server_pid: int) -> tuple[float, dict[str, float], Path]:
    """The run's samples/s, the cores that the browser and the app server used meanwhile by part, its folder."""
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    page.goto(url + "/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=30_000)
    page.get_by_role("combobox", name="Dataset", exact=True).click()
    page.get_by_role("option", name="frey").click()
    page.get_by_role("textbox", name="Training samples to evaluate", exact=True).fill(SAMPLES)
    page.get_by_role("textbox", name="Step size", exact=True).fill("0.02")
    page.get_by_role("button", name="Start training").click()
    try:
        page.get_by_role("button", name="Pause").wait_for(timeout=30_000)  # the run's controls: it has started
    except Exception as e:  # say what the page showed instead
        shot = Path(tempfile.mkdtemp(prefix="dash-bench-")) / "train-page.png"
        page.screenshot(path=str(shot), full_page=True)
        shown = page.locator("[data-testid=stMain]").first.inner_text()[:2000]
        raise SystemExit(f"the run did not start ({type(e).__name__}); the Train page showed:\n{shown}\n"
                         f"screenshot: {shot}") from e
    (run_dir,) = [p for p in runs_dir.iterdir() if p not in before]
    if leave:
        page.get_by_role("link", name="Home").click()  # same session; Home does not redraw on a timer
        page.get_by_text("Auto-Encoding Variational Bayes").first.wait_for(timeout=30_000)
    start, cpu = time.monotonic(), display_cpu_seconds(server_pid)
    while time.monotonic() < start + 300:
        status = runs.read_json(run_dir / runs.STATUS) if (run_dir / runs.STATUS).is_file() else {}
        if status.get("state") == "finished":
            end, seconds = display_cpu_seconds(server_pid), time.monotonic() - start
            return (status["samples_per_second"], {part: (end[part] - cpu[part]) / seconds for part in DISPLAY_PARTS},
                    run_dir)
        time.sleep(0.5)
    raise TimeoutError(f"{run_dir} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lighter-loads", default="0.1,0.2", help="shares of a core for (e), comma-separated")
    parser.add_argument("--blocks", type=int, default=10, help="paired blocks for (d) to (f)")
    args = parser.parse_args()
    lighter = [float(share) for share in args.lighter_loads.split(",") if share]
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
    cli, dashboard, left, display, crowded = [], [], [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            neighbour = BusyLoop(1.0)
            for _ in range(args.rounds):
                # The CLI runs before and after each dashboard run, which is compared with the mean of the two around
                # it: this machine's speed drifts by 10-40% within minutes.
                before = cli_rate(runs_dir)
                rate, parts, run_dir = dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs, False, server.pid)
                between = cli_rate(runs_dir)
                left_rate = dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs, True, server.pid)[0]
                after = cli_rate(runs_dir)
                cli.append(((before + between) / 2, (between + after) / 2))
                dashboard.append(rate)
                display.append(sum(parts.values()))
                left.append(left_rate)
                split = ", ".join(f"{part} {share:.0%}" for part, share in parts.items())
                print(f"round: CLI {before:,.0f}, {between:,.0f}, {after:,.0f}; dashboard watched {rate:,.0f} "
                      f"({rate / cli[-1][0]:.0%} of the CLI's runs around it; browser and app used {display[-1]:.0%} "
                      f"of a core: {split}), dashboard left for Home {left_rate:,.0f} ({left_rate / cli[-1][1]:.0%}) "
                      f"samples/s", flush=True)
                neighbour.on()
                try:
                    crowded.append([dashboard_rate(page, f"http://127.0.0.1:{port}", app_runs, leave, server.pid)[0]
                                    for leave in (False, True)])
                finally:
                    neighbour.off()
                print(f"  beside a neighbour busy on a whole core: watched {crowded[-1][0]:,.0f}, left for Home "
                      f"{crowded[-1][1]:,.0f} samples/s ({crowded[-1][1] / crowded[-1][0]:.0%} of watched)", flush=True)
            page.close()
            # The machine's speed drifts from minute to minute, so each round's ratio is taken on its own first.
            watched = statistics.median(b / a[0] for a, b in zip(cli, dashboard))
            unwatched = statistics.median(c / a[1] for a, c in zip(cli, left))
            print(f"median over {args.rounds} rounds of each round's ratio to the CLI: dashboard worker {watched:.0%} "
                  f"with the Train page redrawing, {unwatched:.0%} once the page is left for Home", flush=True)
            print(f"beside the neighbour, unwatched over watched: median "
                  f"{statistics.median(c / b for b, c in crowded):.0%}", flush=True)
            neighbour.close()

            import torch
            cores, fewer = torch.get_num_threads(), max(1, torch.get_num_threads() - 1)
            live_view = BusyLoop(statistics.median(display))
            charts = ChartsPage(browser, runs.read_run(run_dir).metrics, server.pid)
            busy_loops = [BusyLoop(share) for share in lighter]
            try:
                live_view_share = f"{live_view.share:.0%} of a core"
                conditions = {f"{fewer} thread(s), nothing beside": (fewer, None),
                              f"(d) {cores} threads beside a busy loop of the live view's {live_view_share}":
                                  (cores, live_view),
                              f"(d) {fewer} thread(s) beside it": (fewer, live_view),
                              f"(f) {cores} threads beside the two charts alone": (cores, charts),
                              f"(f) {fewer} thread(s) beside them": (fewer, charts)}
                conditions.update({f"(e) {cores} threads beside {loop.share:.0%} of a core": (cores, loop)
                                   for loop in busy_loops})
                paired = steps_beside_loads(conditions, runs_dir, args.blocks)
            finally:
                for load in (live_view, charts, *busy_loops):
                    load.close()
            browser.close()
    finally:
        server.terminate()
    print(f"training steps here against {cores} threads with nothing beside them, median of {args.blocks} paired "
          f"blocks (the two charts alone took {charts.cpu_seconds / charts.seconds:.0%} of a core):\n"
          + "\n".join(f"  {name}: {ratio:.0%}" for name, ratio in paired.items()))


if __name__ == "__main__":
    main()
