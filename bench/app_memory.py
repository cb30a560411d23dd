"""The app server's memory after computing the variance lab's results for five models, before and after the
variance results moved out of a hand-made, never-evicting cache.

(a) before: the views of git revision REV (default f9bc4e4), whose `variance_cached` kept every result with
    its per-parameter gradient moments in a module-level dict;
(b) after: `vae_app.views.variance.measurement`, a job in a process of its own whose result (rows only) sits in
    st.cache_resource with a bound on entries.
Each variant runs in a fresh process, which measures its own resident memory (VmRSS) before and after the five
results: untrained digits, MNIST and Frey Face (J = 2) and the shipped frey-J2 and mnist-J2, at the page's
defaults (M = 10, R = 100, L = 1 ... 100, five estimators).
Run: `python bench/app_memory.py [--baseline REV]` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


def before(rev: str) -> dict:
    from train_throughput import baseline_package  # bench/ is this script's folder, first on sys.path
    training, _ = baseline_package(rev)
    import importlib
    views = importlib.import_module(training.__name__.rsplit(".", 1)[0] + ".views")
    from vae_app.sources import shipped_models
    settings = views.variance_settings(10, 100, "1 2 5 10 20 50 100", ["A", "B", "score", "score-baseline", "stl"])
    shipped = shipped_models()  # the old package's own lookup is relative to where it was unpacked
    sources = [{"untrained": d} for d in ("digits", "mnist", "frey")] + \
              [{"live": False, "path": shipped[n]} for n in ("frey-J2", "mnist-J2")]
    views.variance_cached(sources[0], views.variance_settings(10, 2, "1", ["A"]))  # imports and first-use costs apart
    start = rss_mb()
    for source in sources:
        views.variance_cached(source, settings)
    return {"before_mb": start, "after_mb": rss_mb()}


def after() -> dict:
    from vae_app.sources import ModelFile, UntrainedModel, shipped_models
    from vae_app.views.variance import measurement, variance_settings
    settings = variance_settings(10, 100, "1 2 5 10 20 50 100", ["A", "B", "score", "score-baseline", "stl"])
    sources = [UntrainedModel(d) for d in ("digits", "mnist", "frey")] + \
              [ModelFile(shipped_models()[n]) for n in ("frey-J2", "mnist-J2")]
    warm = measurement(sources[0], variance_settings(10, 2, "1", ["A"]))
    while not warm.done:
        time.sleep(0.1)
    start = rss_mb()
    for source in sources:  # one at a time, as one session asks
        job = measurement(source, settings)
        while not job.done:
            time.sleep(0.2)
        assert job.error is None, job.error
    return {"before_mb": start, "after_mb": rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="f9bc4e4", metavar="REV")
    parser.add_argument("--variant", choices=["before", "after"], help=argparse.SUPPRESS)  # one variant, in this process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(before(args.baseline) if args.variant == "before" else after()))
        return
    for variant in ("before", "after"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--baseline", args.baseline],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"({'a' if variant == 'before' else 'b'}) {variant:<6}: {result['before_mb']:.0f} MB before the five "
              f"results, {result['after_mb']:.0f} MB after: +{result['after_mb'] - result['before_mb']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
