"""`python -m vae_core` end to end, as a user runs it."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENCE

REPO = Path(__file__).resolve().parents[1]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.slow
def test_train_then_evaluate(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    trained = cli("train", "--dataset", "frey", "--latent-dim", "2", "--samples", "3e4", "--lr", "0.02",
                  "--run-dir", str(run_dir), "--json", env={"VAE_DATA_DIR": str(data_dir)})
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["run_dir"] == str(run_dir) and result["samples_evaluated"] == 30_000
    assert result["test_lower_bound"] > 0 and result["samples_per_second"] > 0 and result["wall_seconds"] > 0
    assert "100.0%" in trained.stderr  # the progress bar
    evaluated = cli("evaluate", str(run_dir), "--iw-samples", "20", "--json", env={"VAE_DATA_DIR": str(data_dir)})
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert abs(scores["test_lower_bound"] - result["test_lower_bound"]) < 5  # same model, fresh noise
    assert scores["test_log_likelihood"] > scores["test_lower_bound"]  # K = 20 tightens the bound
    reported = cli("report", "--figure", "2", "--runs-dir", str(tmp_path))  # the run is Figure 2's Frey Face J = 2
    assert reported.returncode == 0, reported.stderr
    row = next(line for line in reported.stdout.splitlines() if line.startswith("| Frey Face J = 2 | aevb |"))
    assert row.split(" | ")[-2] == "1"  # one seed; its curve ends at 3·10^4 samples, before the first budget column
    assert "| Frey Face J = 2 | wake-sleep |" in reported.stdout and "| not yet |" in reported.stdout
    marginal = cli("evaluate", str(run_dir), "--iw-samples", "20", "--marginal-likelihood", "--points", "20", "--json",
                   env={"VAE_DATA_DIR": str(data_dir)})
    assert marginal.returncode == 0, marginal.stderr
    scores = json.loads(marginal.stdout.strip().splitlines()[-1])
    assert scores["marginal_points"] == 20 and 0 < scores["test_marginal_log_likelihood_error"] < math.inf
    # Appendix D estimates log p(x), which the IW bound on the same 20 points stays under (up to D's noise)
    assert scores["test_marginal_log_likelihood"] > scores["test_log_likelihood_on_marginal_points"] - 1
    assert abs(scores["train_marginal_log_likelihood"] - scores["test_marginal_log_likelihood"]) < 100


def test_data_verify_on_the_shared_copies(data_dir):
    checked = cli("data", "--verify", "--data-dir", str(data_dir))
    assert checked.returncode == 0
    assert "mnist: ok, 60000 train + 10000 test" in checked.stdout and "frey: ok, 1600 train + 365 test" in checked.stdout


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    zero = cli("train", "--latent-dim", "0", "--run-dir", str(tmp_path / "r"))
    assert zero.returncode == 2 and "latent_dim must be a whole number of at least 1" in zero.stderr
    assert "Traceback" not in zero.stderr
    offline = cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "r2"),
                  env={"XDG_CACHE_HOME": str(tmp_path), "VAE_OFFLINE": "1"})
    assert offline.returncode == 2 and "Traceback" not in offline.stderr and "digits" in offline.stderr
    missing = cli("evaluate", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "holds no model.safetensors" in missing.stderr


@pytest.mark.slow
def test_variance_command_on_an_untrained_model(data_dir):
    measured = cli("variance", "--untrained", "--dataset", "digits", "--L", "1", "4", "--repeats", "8",
                   "--batch-size", "5", "--estimators", "A", "B", "score", "--json")
    assert measured.returncode == 0, measured.stderr
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    assert result["settings"] == {"M": 5, "R": 8, "L": [1, 4], "estimators": ["A", "B", "score"], "seed": 0}
    rows = {(r["estimator"], r["L"]): r for r in result["rows"]}
    assert set(rows) == {(e, L) for e in ("A", "B", "score", "iw") for L in (1, 4)}
    assert rows[("A", 4)]["phi_total_variance"] < rows[("A", 1)]["phi_total_variance"]
    assert rows[("score", 1)]["phi_total_variance"] > rows[("A", 1)]["phi_total_variance"]
    both = cli("variance", "runs/x", "--untrained", "--dataset", "digits")
    assert both.returncode == 2 and "either a run folder" in both.stderr


def test_variance_iw_k_gives_the_k_tradeoff_of_the_shipped_model_by_default(data_dir):
    """`variance --iw-k 1 10 100 --json` with no model named measures the shipped MNIST J = 2 model: a row per
    estimator (IWAE, DReG) and K with the decoder's and the encoder's SNR and the bound, and the slopes."""
    measured = cli("variance", "--iw-k", "1", "10", "100", "--repeats", "10", "--batch-size", "4", "--json",
                   env={"VAE_DATA_DIR": str(data_dir)})
    assert measured.returncode == 0, measured.stderr
    assert "shipped mnist-J2 model" in measured.stderr
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    assert result["dataset"] == "mnist" and result["settings"]["K"] == [1, 10, 100]
    rows = {(r["estimator"], r["K"]): r for r in result["rows"]}
    assert set(rows) == {(e, K) for e in ("iwae", "dreg") for K in (1, 10, 100)}
    assert rows[("iwae", 100)]["value_mean"] > rows[("iwae", 1)]["value_mean"]  # the bound tightens with K
    assert rows[("iwae", 100)]["theta_snr"] > rows[("iwae", 1)]["theta_snr"]
    assert set(result["snr_slopes"]) == {"iwae", "dreg"} and math.isfinite(result["snr_slopes"]["dreg"]["phi"])


def test_ctrl_c_stops_after_the_step_and_saves_where_the_run_stands(tmp_path):
    import signal
    import time

    from vae_core import runs
    run_dir = tmp_path / "run"
    training = subprocess.Popen([sys.executable, "-m", "vae_core", "train", "--dataset", "digits", "--samples", "1e9",
                                 "--lr", "0.02", "--run-dir", str(run_dir), "--json"], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + PATIENCE
    while not (run_dir / runs.CHECKPOINT).is_file() and time.monotonic() < deadline:  # past the first evaluation
        time.sleep(0.2)
    time.sleep(1.0)
    training.send_signal(signal.SIGINT)
    out, err = training.communicate(timeout=PATIENCE)
    assert training.returncode == 130 and "Traceback" not in err, err
    assert "stopping after this step" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "stopped" and result["samples_evaluated"] > 0
    assert runs.checkpoint_samples(run_dir) == result["samples_evaluated"]  # exactly where it stopped
    assert runs.read_json(run_dir / runs.STATUS)["state"] == "stopped"


@pytest.mark.slow
def test_evaluate_binarized_scores_binary_images(tmp_path):
    run_dir = tmp_path / "run"
    assert cli("train", "--dataset", "digits", "--samples", "3000", "--lr", "0.02", "--run-dir", str(run_dir)).returncode == 0
    grey = json.loads(cli("evaluate", str(run_dir), "--iw-samples", "10", "--json").stdout.strip().splitlines()[-1])
    binary = json.loads(cli("evaluate", str(run_dir), "--iw-samples", "10", "--binarized", "--json").stdout.strip().splitlines()[-1])
    assert grey["binarized"] is False and binary["binarized"] is True
    assert grey["test_log_likelihood"] != binary["test_log_likelihood"]  # close: log p is linear in each pixel
