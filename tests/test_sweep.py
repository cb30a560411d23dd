"""Sweeps on Ray Tune: a grid through embedded Ray, on a simulated two-node cluster, and a driver killed mid-sweep
and resumed, which loses no finished trial and repeats none."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENCE, wait_until

from vae_core import paper, runs, sweep

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--hidden", "20", "--lr", "0.02"]


def run_sweep(*args, env=None, timeout=600):
    out = subprocess.run([sys.executable, "-m", "vae_core", "sweep", *args, "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return out, (json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None)


def test_grids_expand_and_name_their_trials():
    configs = sweep.expand({"latent_dim": [2, 5], "seed": [0, 1]}, {"dataset": "frey"})
    s = sweep.Sweep.from_configs("/tmp/x", configs)
    assert list(s.trials) == ["J2-seed0", "J2-seed1", "J5-seed0", "J5-seed1"]
    assert all(t["dataset"] == "frey" for t in s.trials.values())
    with pytest.raises(ValueError, match="unknown settings in the grid: latent"):
        sweep.expand({"latent": [2]})
    figure = sweep.Sweep.from_configs("/tmp/y", paper.FIGURE_2.configs(10**5, [0]))
    assert len(figure.trials) == 18 and "mnist-J200-wake-sleep" in figure.trials
    assert all(t["samples"] == 10**5 for t in figure.trials.values())


def test_a_figure_sweep_takes_where_and_how_it_runs_but_not_what(tmp_path, monkeypatch):
    """--figure 2 with --device and --step (paper.FREE: they change where and how, not the figure's maths); a
    setting of the figure's own, or two devices, is refused before anything is written."""
    import contextlib
    import io

    from vae_core.cli import main
    ran = []
    monkeypatch.setattr(sweep, "run", lambda s, *args, **kwargs: ran.append(s) or {"trials": []})
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["sweep", "--figure", "2", "--samples", "1000", "--device", "cpu", "--step", "compiled",
                     "--sweep-dir", str(tmp_path / "ok")]) == 0
        [started] = ran
        assert len(started.trials) == 18
        assert {(t["device"], t["step"], t["samples"]) for t in started.trials.values()} == {("cpu", "compiled", 1000)}
        refused = io.StringIO()
        with contextlib.redirect_stderr(refused):
            assert main(["sweep", "--figure", "2", "--latent-dim", "5", "--sweep-dir", str(tmp_path / "a")]) == 2
            assert main(["sweep", "--figure", "2", "--device", "cpu", "auto", "--sweep-dir", str(tmp_path / "b")]) == 2
    assert "not --latent-dim" in refused.getvalue() and "not --device" in refused.getvalue()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and len(ran) == 1


def test_the_costliest_trials_start_first():
    """Longest first: the trials still running at the end, while other slots idle, are the short ones."""
    trials = sweep.Sweep.from_configs("unused", paper.FIGURE_2.configs(10**6, [0])).trials
    order = sorted(trials, key=lambda name: -sweep.expected_cost(trials[name]))
    assert order[0] == "mnist-J200-wake-sleep" and order[-1] == "frey-J2-aevb"
    assert order.index("frey-J20-wake-sleep") < order.index("frey-J20-aevb")  # wake-sleep's 7 products against 5
    longer = {**trials["frey-J2-aevb"], "samples": 10**7}
    assert sweep.expected_cost(longer) > sweep.expected_cost(trials["mnist-J200-wake-sleep"])


def test_a_grid_file_in_yaml_or_json(tmp_path):
    (tmp_path / "g.yaml").write_text("latent_dim: [2, 3]\nalgorithm: [aevb]\n")
    assert sweep.parse_grid_file(tmp_path / "g.yaml") == {"latent_dim": [2, 3], "algorithm": ["aevb"]}
    (tmp_path / "bad.json").write_text('{"latent_dim": 2}')
    with pytest.raises(ValueError, match="non-empty list of values"):
        sweep.parse_grid_file(tmp_path / "bad.json")


def test_a_grid_of_values_the_config_refuses_is_refused_before_anything_is_made(tmp_path):
    for grid in ({"algorithm": ["..", "aevb"]}, {"optimizer": ["adagrad", "."]}, {"latent_dim": [2, 0]}):
        with pytest.raises(ValueError, match="no trial is made"):
            sweep.Sweep.from_configs(tmp_path / "s", sweep.expand(grid, {"dataset": "digits"}))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "g.json").write_text('{"samples": ["1e3", 2000], "lr": ["auto", "0.02"]}')
    assert sweep.parse_grid_file(tmp_path / "g.json") == {"samples": [1000, 2000], "lr": ["auto", 0.02]}


def test_trial_names_are_plain_folder_names():
    assert sweep.trial_name({"data_dir": "../x/y", "seed": 0}, ["data_dir", "seed"]) == "data_dir.._x_y-seed0"
    assert sweep.trial_name({"algorithm": ".."}, ["algorithm"]) == "run"
    long = sweep.trial_name({"data_dir": "d" * 400}, ["data_dir"])
    assert len(long) == runs.NAME_LIMIT and long != sweep.trial_name({"data_dir": "d" * 401}, ["data_dir"])


def test_a_trial_deletes_only_the_files_of_its_own_unstarted_run(tmp_path):
    """A trial killed before its first checkpoint left its lock, config and status: the next attempt clears those and
    starts again. A folder holding anything else under the trial's name is never emptied: the trial is refused."""
    s = sweep.Sweep.from_configs(tmp_path / "s", sweep.expand({"seed": [0, 1]}, {"dataset": "digits", "samples": 300,
                                                                               "lr": 0.02, "hidden": [20]}))
    trial = lambda name: {"name": name, "config": s.trials[name], "run_dir": str(tmp_path / "s" / name), "cpus": 1,
                          "gpus": 0}
    killed = tmp_path / "s" / "seed0"
    killed.mkdir(parents=True)
    for name in (runs.LOCK, runs.CONFIG, runs.STATUS):
        (killed / name).write_text("{}")
    trainer = sweep.open_trial(trial("seed0"))
    assert trainer.run().kind == "finished"
    mine = tmp_path / "s" / "seed1"
    mine.mkdir()
    (mine / runs.CONFIG).write_text("{}")
    (mine / "results.csv").write_text("the user's own\n")
    with pytest.raises(runs.RunError, match="already holds config.json, results.csv"):
        sweep.open_trial(trial("seed1"))
    assert sorted(p.name for p in mine.iterdir()) == [runs.CONFIG, "results.csv"]
    for bad in ({**trial("seed1"), "run_dir": str(tmp_path)}, {**trial("seed1"), "name": "..", "run_dir": str(tmp_path / "s" / "..")}):
        with pytest.raises(runs.RunError, match="not a plain folder of its sweep"):
            sweep.open_trial(bad)
    assert isinstance(sweep.open_trial(trial("seed0")), runs.RunRecord)  # finished: read, not trained again


def test_a_sweep_json_naming_paths_is_refused(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"trials": {"..": {"dataset": "digits"}}}))
    with pytest.raises(runs.RunError, match="names trials that are not plain folder names"):
        sweep.Sweep.load(tmp_path)


def test_a_config_error_crosses_processes_with_its_problems():
    """Ray pickles a trial's exception to the driver: the message and the settings at fault must survive it."""
    import pickle

    from vae_core.config import ConfigError, TrainConfig
    error = pickle.loads(pickle.dumps(ConfigError(TrainConfig(latent_dim=0).problems())))
    assert set(error.problems) == {"latent_dim"} and "latent_dim must be a whole number of at least 1" in str(error)


def test_the_summary_of_a_restored_sweep_stopped_again_lists_every_trial(tmp_path):
    """Tune gives a trial of a restored sweep that was stopped before it began anew a result with no config: the
    summary reads that trial from its run folder (here it has none yet) instead of failing."""
    from types import SimpleNamespace

    s = sweep.Sweep.from_configs(tmp_path / "s", sweep.expand({"latent_dim": [2, 3]}, {"dataset": "digits"}))
    done = SimpleNamespace(config={"trial": {"name": "J2"}}, error=None,
                           metrics={"status": "finished", "test_lower_bound": -30.5, "train_lower_bound": -30.0,
                                    "samples_evaluated": 2000, "node": "n1"})
    rows = sweep.summary_rows(s, [SimpleNamespace(config=None, error=None, metrics=None), done])
    assert [(r["name"], r["status"], r["test_lower_bound"], r["latent_dim"]) for r in rows] == [
        ("J2", "finished", -30.5, 2), ("J3", "stopped", None, 3)]
    assert rows[1]["run_dir"] == str((tmp_path / "s" / "J3").resolve()) and rows[1]["samples_evaluated"] == 0


@pytest.mark.slow
def test_a_tiny_sweep_on_embedded_ray_with_a_failing_trial(tmp_path):
    """2 settings x 2 seeds on digits; the runs are ordinary run folders, grouped under the sweep. A grid with a value
    the config refuses anywhere is refused whole, before anything touches the disk (a setting that fails only on
    some machine, a GPU's, fails as its trial: test_gpus_per_trial_send_the_trial_to_cuda)."""
    out, result = run_sweep(*TINY, "--latent-dim", "2", "3", "--seed", "0", "1", "--samples", "2000",
                            "--sweep-dir", str(tmp_path / "s"), "--cpus-per-trial", "1")
    assert out.returncode == 0, out.stderr
    assert result["engine"] == "ray" and result["address"] == "local" and result["wall_seconds"] > 0
    trials = {t["name"]: t for t in result["trials"]}
    assert set(trials) == {"J2-seed0", "J2-seed1", "J3-seed0", "J3-seed1"}
    for trial in trials.values():
        assert trial["status"] == "finished" and trial["test_lower_bound"] < 0
        record = runs.read_run(trial["run_dir"])
        assert record.state == "finished" and record.last_evaluation["test_lower_bound"] == trial["test_lower_bound"]
    assert "sweep: 4 done, 0 failed, 0 stopped of 4" in out.stderr
    assert {runs.sweep_of(p) for p in runs.list_runs(tmp_path)} == {"s"} and len(runs.list_runs(tmp_path)) == 4
    failing, result = run_sweep(*TINY, "--latent-dim", "2", "0", "--samples", "2000", "--sweep-dir", str(tmp_path / "f"))
    assert failing.returncode == 2 and result is None and not (tmp_path / "f").exists()  # refused before Ray starts
    assert "no trial is made: latent_dim must be a whole number of at least 1" in failing.stderr


@pytest.mark.slow
def test_a_sweep_on_the_users_own_data_runs_on_ray_and_its_runs_know_their_file(tmp_path):
    """`sweep --dataset path/to/array.npy` on embedded Ray: each trial a run of the user's data, whose config records
    the file's SHA-256, so that `evaluate` finds the same data again, and refuses, saying why, once it changed."""
    import hashlib

    import numpy as np
    source = tmp_path / "mine.npy"
    np.save(source, (np.random.default_rng(0).random((300, 64)) > 0.5).astype(np.float32))
    out, result = run_sweep("--dataset", str(source), "--hidden", "20", "--lr", "0.02", "--latent-dim", "2", "3",
                            "--samples", "2000", "--sweep-dir", str(tmp_path / "s"), "--cpus-per-trial", "1")
    assert out.returncode == 0, out.stderr
    assert result["engine"] == "ray" and {t["status"] for t in result["trials"]} == {"finished"}
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    for trial in result["trials"]:
        record = runs.read_run(trial["run_dir"])
        assert record.train_config["dataset"] == str(source) and record.config["data"]["sha256"] == digest
        assert record.config["data"]["train_size"] + record.config["data"]["test_size"] == 300
    evaluate = lambda: subprocess.run([sys.executable, "-m", "vae_core", "evaluate", result["trials"][0]["run_dir"],
                                       "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    again = evaluate()
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["test_lower_bound"] == pytest.approx(
        result["trials"][0]["test_lower_bound"], abs=0.5)  # the same data found again (a fresh noise draw)
    changed_data = np.load(source)
    changed_data[0, 0] = 1 - changed_data[0, 0]  # one value of 19,200 changed
    np.save(source, changed_data)
    changed = evaluate()
    assert changed.returncode != 0 and "has changed since this run trained on it" in changed.stderr


@pytest.mark.slow
def test_a_sweep_runs_its_trials_on_both_nodes_of_a_cluster(tmp_path):
    """A simulated two-node cluster on this machine (ray.cluster_utils.Cluster), the sweep given its address."""
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        out, result = run_sweep(*TINY, "--seed", "0", "1", "2", "3", "--samples", "20000", "--sweep-dir",
                                str(tmp_path / "s"), "--address", cluster.address, env={"RAY_ADDRESS": ""})
        assert out.returncode == 0, out.stderr
        assert result["address"] == cluster.address
        assert all(t["status"] == "finished" for t in result["trials"])
        assert len({t["node"] for t in result["trials"]}) == 2  # both nodes trained trials
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_gpus_per_trial_send_the_trial_to_cuda(tmp_path):
    """A cluster whose node declares a GPU: a trial given half of it trains with device "cuda". Where PyTorch sees no
    GPU (this machine, CI) the trial fails with the device's message, which says the device reached it."""
    import torch
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    try:
        out, result = run_sweep(*TINY, "--samples", "2000", "--sweep-dir", str(tmp_path / "s"), "--gpus-per-trial",
                                "0.5", "--address", cluster.address, env={"RAY_ADDRESS": ""})
    finally:
        cluster.shutdown()
    [trial] = result["trials"]
    if torch.cuda.is_available():
        assert trial["status"] == "finished" and runs.read_run(trial["run_dir"]).config["device"] == "cuda"
    else:
        assert trial["status"] == "failed" and "device 'cuda' was asked for" in trial["message"], trial


@pytest.mark.slow
def session_members(session: int) -> list[int]:
    """The processes of the session `session` leads: a driver started with start_new_session=True, and its Ray."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # field 6 of stat, the session id; zombies are gone
            members.append(int(stat.parent.name))
    return members


def test_a_killed_driver_resumes_losing_no_finished_trial_and_repeating_none(tmp_path):
    args = [*TINY, "--seed", "0", "1", "2", "--samples", "30000", "--sweep-dir", str(tmp_path / "s"),
            "--max-concurrent", "1", "--json"]
    driver = subprocess.Popen([sys.executable, "-m", "vae_core", "sweep", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = tmp_path / "s" / "seed0"
    wait_until(lambda: (first / runs.STATUS).is_file() and runs.read_run(first).state == "finished",
               "the first trial to finish", poll=0.5)
    finished = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, at once
    driver.wait(timeout=PATIENCE)
    for pid in session_members(driver.pid):  # what of its Ray outlived it: this test's processes only, never others'
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not session_members(driver.pid), "the killed driver's Ray to exit")
    out, result = run_sweep("--resume", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    assert all(t["status"] == "finished" for t in result["trials"]) and len(result["trials"]) == 3
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == finished  # not trained again
    for trial in result["trials"]:
        assert runs.read_run(trial["run_dir"]).samples_done == 30000
