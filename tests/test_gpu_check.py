"""bench/gpu_check.py, the GPU check, run as CI can: on the CPU, with tiny budgets. Every part must produce its
numbers (the cuda tests skipped, saying so, on a machine without a GPU)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_on_the_cpu(tmp_path, data_dir):
    """The sweep by processes of their own, as on a GPU machine without Ray (`sweep --figure` on Ray: test_sweep)."""
    out = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick", "--long-samples", "2e4",
                          "--sweep-samples", "1000", "--sweep-by", "processes", "--step", "auto",
                          "--out", str(tmp_path / "check")], cwd=REPO, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "VAE_DATA_DIR": str(data_dir)})
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "check" / "results.json").read_text())
    assert results["device"] == "cpu" and results["tests"]["failed"] == 0
    if not torch.cuda.is_available():  # every cuda test skips, and the results say so
        assert results["tests"]["skipped"] > 0 and results["tests"]["passed"] == 0
    rows = results["throughput"]
    assert {(r["network"], r["M"], r["variant"]) for r in rows} == {
        (n, M, v) for n in ("MNIST", "Frey Face") for M in (100, 20) for v in ("eager", "compiled", "CPU, hand-derived")}
    assert all(r["samples_per_second"] > 0 and math.isfinite(r["ratio_to_eager"]) for r in rows)
    assert all((r["compile_seconds"] is not None) == (r["variant"] == "compiled") for r in rows)
    run = results["long run"]
    assert run["status"] == "finished" and run["samples_evaluated"] == 20_000 and math.isfinite(run["test_lower_bound"])
    assert (tmp_path / "check" / "mnist-J20" / "model.safetensors").is_file()
    sweep = results["sweep"]
    assert sweep["trials"] == 18 and sweep["finished"] == 18 and sweep["returncode"] == 0 and sweep["by"] == "processes"
    assert all(math.isfinite(bound) for bound in sweep["bounds"].values()) and len(sweep["bounds"]) == 18
    assert (tmp_path / "check" / "figure-2" / "mnist-J200-wake-sleep" / "model.safetensors").is_file()
    page = (tmp_path / "check" / "results.md").read_text()
    assert "## Training step" in page and "(processes): 18 finished" in page
