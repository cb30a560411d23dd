"""The Runs and Paper pages over many runs: what a click costs with 2,000 run folders (issue 32 item 7).

Copies one finished digits run N times (default 2,000) into a temporary runs folder and times, side by side in one
run, reading every folder at every click (`runs.read_run` on each, as the pages did) against the run index
(`runs.RunIndex`: each folder read again only when one of its files changed): its first, cold read, a warm click,
and a click after one run's label changed; the index's background warm-up (the app starts it at its first page)
and the first click after it. Then what the pages compute from the records (the Runs table, the Paper page's
curves), warm; and a click on a run in training with a long metrics file, read whole against the index's read.

Run: `python bench/many_runs.py [--runs 2000]`.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from vae_core import runs
from vae_core.config import TrainConfig
from vae_core.training import Trainer


def timed(work, repeats: int = 3) -> float:
    """The median wall time of `work()` over `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "runs"
        template = Path(folder) / "template"
        Trainer.from_config(TrainConfig(dataset="digits", samples=20_000, lr=0.02, hidden=(20,)), template).run()
        for i in range(args.runs):
            shutil.copytree(template, root / f"run{i:05d}")
        every_folder = lambda: [runs.read_run(p) for p in runs.list_runs(root)]
        index = runs.RunIndex()
        started = time.perf_counter()
        index.records(root)
        cold = time.perf_counter() - started
        warm = timed(lambda: index.records(root))
        runs.write_json(root / "run00007" / runs.META, {"name": "renamed"})
        started = time.perf_counter()
        after_change = index.records(root)
        changed = time.perf_counter() - started
        assert next(r for r in after_change if r.path.name == "run00007").meta["name"] == "renamed"
        reading_all = timed(every_folder)
        warmed = runs.RunIndex()  # as the app makes it at its first page: reading every run in the background
        started = time.perf_counter()
        warmed.warm(root).join()
        warm_up = time.perf_counter() - started
        started = time.perf_counter()
        warmed.records(root)
        first_after_warm_up = time.perf_counter() - started

        from vae_app.views import paper as paper_views
        from vae_app.views import runs as runs_views
        table = timed(lambda: runs_views.run_table(root))
        curves = timed(lambda: paper_views.curves(paper_views.records(root)))
        growing = growing_run(template, Path(folder) / "growing")
        print(f"{args.runs:,} runs of {sum(1 for _ in template.iterdir())} files each")
        print(f"{'every folder read (as before)':<42} {reading_all:8.3f} s")
        print(f"{'the index, cold (the first click)':<42} {cold:8.3f} s")
        print(f"{'the warm-up (in the background)':<42} {warm_up:8.3f} s")
        print(f"{'the first click after the warm-up':<42} {first_after_warm_up:8.3f} s")
        print(f"{'the index, warm (a click)':<42} {warm:8.3f} s   {reading_all / warm:6.1f}x faster")
        print(f"{'the index, after one run changed':<42} {changed:8.3f} s")
        print(f"{'the Runs table from the index, warm':<42} {table:8.3f} s")
        print(f"{'the Paper page curves from the index, warm':<42} {curves:8.3f} s")
        print(f"{'a run in training, 50,000 rows, read whole':<42} {growing[0]:8.3f} s")
        print(f"{'the same, by the index (only its new rows)':<42} {growing[1]:8.3f} s   {growing[0] / growing[1]:6.1f}x faster")


def growing_run(template: Path, root: Path) -> tuple[float, float]:
    """A click on a run in training whose metrics file holds 50,000 rows and has gained 20 since the last click: the
    folder read whole (as before) against the index's read, which parses only the new rows."""
    run = root / "run"
    shutil.copytree(template, run)
    row = runs.read_metrics(run / runs.METRICS)[0][-1]
    rows = [{**row, "samples_evaluated": 100 * i} for i in range(50_000)]
    runs.write_metrics(run / runs.METRICS, rows)
    lock = runs.RunLock(run, "bench")  # held: the index reads it again at each click
    try:
        index = runs.RunIndex()
        index.records(root)
        whole, by_index = [], []
        for _ in range(3):
            rows += [{**row, "samples_evaluated": 100 * (len(rows) + i)} for i in range(20)]
            runs.write_metrics(run / runs.METRICS, rows)
            whole.append(timed(lambda: runs.read_run(run), repeats=1))
            by_index.append(timed(lambda: index.records(root), repeats=1))
        assert index.records(root)[0].metrics == runs.read_run(run).metrics
    finally:
        lock.release()
    return statistics.median(whole), statistics.median(by_index)


if __name__ == "__main__":
    main()
