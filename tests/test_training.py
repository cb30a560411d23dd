"""Algorithm 1 on real data and on digits: learning, reproducibility, checkpoints, control from threads."""
import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from conftest import PATIENCE, wait_until

from vae_core import data, runs, schedules
from vae_core.config import STEP_SIZE_CANDIDATES, TrainConfig
from vae_core.events import is_evaluation
from vae_core.training import Trainer


def digits_config(**kw):
    return TrainConfig(**{"dataset": "digits", "samples": 20_000, "lr": 0.02, "hidden": (50,), **kw})


@pytest.mark.slow
def test_short_frey_run_raises_the_test_bound(data_dir, tmp_path):
    trainer = Trainer.from_config(TrainConfig(dataset="frey", samples=100_000, lr=0.02, data_dir=str(data_dir)), tmp_path / "run")
    last = trainer.run()
    evaluations = [r for r in trainer.metrics if "test_lower_bound" in r]
    assert last.kind == "finished" and last.samples_evaluated == 100_000
    assert evaluations[0]["test_lower_bound"] < 0  # near initialisation: a poor bound
    assert last.test_lower_bound > evaluations[0]["test_lower_bound"] + 800
    assert last.test_lower_bound > 400


def test_run_directory_holds_config_metrics_and_a_loadable_model(tmp_path):
    trainer = Trainer.from_config(digits_config(), tmp_path / "run")
    last = trainer.run()
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {runs.CONFIG, runs.METRICS, runs.MODEL, runs.CHECKPOINT, runs.STATUS} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    model, metadata = runs.load_model(tmp_path / "run" / runs.MODEL)
    assert metadata["test_lower_bound"] == pytest.approx(last.test_lower_bound)
    assert runs.read_json(tmp_path / "run" / runs.STATUS)["state"] == "finished"
    rows = runs.read_run(tmp_path / "run").metrics
    assert rows[-1]["test_lower_bound"] == pytest.approx(last.test_lower_bound)
    assert all(r["samples_evaluated"] % 100 == 0 for r in rows)


def test_same_seed_same_run_and_other_seed_other_run(tmp_path):
    a = Trainer.from_config(digits_config(seed=3), tmp_path / "a")
    a.run()
    b = Trainer.from_config(digits_config(seed=3), tmp_path / "b")
    b.run()
    c = Trainer.from_config(digits_config(seed=4), tmp_path / "c")
    c.run()
    assert torch.equal(a.params.flat, b.params.flat)
    assert [r.get("lower_bound") for r in a.metrics] == [r.get("lower_bound") for r in b.metrics]
    assert not torch.equal(a.params.flat, c.params.flat)


@pytest.mark.parametrize("name, J, L", [("mnist", 20, 1), ("frey", 2, 1), ("mnist", 20, 10)])
def test_thread_count_leaves_the_run_unchanged(tmp_path, name, J, L):
    """The dashboard's worker trains on one core fewer while its page redraws, so a run must not depend on the
    number of threads: the paper's networks, with 1 and 2 threads, give the same parameters to the bit."""
    spec = data.DATASETS[name]
    X = np.random.default_rng(0).random((1000, spec.data_dim), dtype=np.float32)
    dataset = data.Dataset(spec, X, X[:100])
    config = TrainConfig(dataset=name, latent_dim=J, samples_per_point=L, samples=10**6, lr=0.02)
    finals = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            trainer = Trainer.from_config(config, tmp_path / str(n), dataset=dataset)
            for _ in range(30):
                trainer.train_step()
            finals.append(trainer.params.flat.detach().clone())
    finally:
        torch.set_num_threads(threads)
    untrained = Trainer.from_config(config, tmp_path / "0", dataset=dataset).params.flat
    assert not torch.equal(finals[0], untrained)  # training moved the parameters
    assert torch.equal(finals[0], finals[1])


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adagrad", "adam", "sgd"])
def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path, optimizer):
    whole = Trainer.from_config(digits_config(optimizer=optimizer, binarize=True), tmp_path / "whole")
    whole.run()
    part = Trainer.from_config(digits_config(optimizer=optimizer, binarize=True), tmp_path / "part")
    part.run(lambda e: part.stop() if e.samples_evaluated >= 7_300 else None)
    assert runs.read_json(tmp_path / "part" / runs.STATUS)["state"] == "stopped"
    resumed = Trainer.resume_from(tmp_path / "part")
    assert resumed.samples_evaluated == part.samples_evaluated
    resumed.run()
    assert torch.equal(resumed.params.flat, whole.params.flat)


def test_resume_with_a_larger_budget_continues(tmp_path):
    Trainer.from_config(digits_config(samples=5_000), tmp_path / "run").run()
    more = Trainer.resume_from(tmp_path / "run", samples=10_000)
    assert more.run().samples_evaluated == 10_000


def test_stop_from_another_thread_leaves_a_checkpoint_where_it_stopped(tmp_path):
    trainer = Trainer.from_config(digits_config(samples=10**9), tmp_path / "run")
    worker = threading.Thread(target=trainer.run)
    worker.start()
    wait_until(lambda: trainer.samples_evaluated > 0, "the first steps")
    trainer.stop()
    worker.join(timeout=PATIENCE)
    assert not worker.is_alive()
    status = runs.read_json(tmp_path / "run" / runs.STATUS)
    assert status["state"] == "stopped" and status["samples_evaluated"] > 0
    _, metadata = runs.load_model(tmp_path / "run" / runs.MODEL)
    assert metadata["samples_evaluated"] == status["samples_evaluated"]


def test_pause_holds_the_run_and_resume_continues(tmp_path):
    trainer = Trainer.from_config(digits_config(samples=10**9), tmp_path / "run")
    worker = threading.Thread(target=trainer.run)
    worker.start()
    status = tmp_path / "run" / runs.STATUS
    wait_until(lambda: status.is_file() and trainer.samples_evaluated > 0, "the first steps")
    trainer.pause()
    wait_until(lambda: runs.read_json(status)["state"] == "paused", "the trainer to report the pause")
    held = trainer.samples_evaluated
    time.sleep(0.5)
    assert trainer.samples_evaluated == held and trainer.paused
    trainer.resume()
    wait_until(lambda: trainer.samples_evaluated > held, "training to go on after resume")
    trainer.stop()
    worker.join(timeout=PATIENCE)
    assert not worker.is_alive()


def test_non_finite_bound_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path):
    Trainer.from_config(digits_config(samples=5_000), tmp_path / "run").run()
    good = (tmp_path / "run" / runs.MODEL).read_bytes()
    clean = data.load("digits")
    poisoned = data.Dataset(clean.spec, np.full_like(clean.train, np.nan), clean.test)
    last = Trainer.resume_from(tmp_path / "run", samples=10_000, dataset=poisoned).run()
    assert last.kind == "failed" and "nan" in last.message and "last good checkpoint" in last.message
    assert (tmp_path / "run" / runs.MODEL).read_bytes() == good
    assert runs.read_json(tmp_path / "run" / runs.STATUS)["state"] == "failed"


def test_auto_step_size_picks_the_best_trial(tmp_path):
    trainer = Trainer.from_config(digits_config(lr="auto", samples=2_000), tmp_path / "run")
    trials = []
    trainer.run(lambda e: trials.append(e) if e.kind == "trial" else None)
    *candidates, choice = trials
    assert [e.lr for e in candidates] == list(STEP_SIZE_CANDIDATES["adagrad"])
    best = max(candidates, key=lambda e: e.lower_bound)
    assert trainer.lr == best.lr
    assert choice.lr == best.lr and choice.message.startswith(f"step size {best.lr} chosen")
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["lr"] == best.lr
    assert trainer.optimizer.param_groups[0]["lr"] == best.lr


def test_weight_decay_is_the_parameter_prior_per_datapoint(tmp_path):
    trainer = Trainer.from_config(digits_config(), tmp_path / "run")
    assert trainer.optimizer.param_groups[0]["weight_decay"] == pytest.approx(1 / 1500)
    assert Trainer.from_config(digits_config(weight_decay=False), tmp_path / "r2").optimizer.param_groups[0]["weight_decay"] == 0


@pytest.mark.parametrize("change, words", [
    ({"latent_dim": 0}, "latent_dim must be a whole number of at least 1"),
    ({"samples": -5}, "samples must be"),
    ({"estimator": "C"}, "estimator must be one of B, A"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"dataset": "cifar"}, "dataset must be one of"),
    ({"batch_size": 1501}, "batch_size M must be at most the 1500 training datapoints of digits"),
])
def test_bad_config_is_named(change, words):
    with pytest.raises(ValueError, match=words):
        digits_config(**change).validate()


def test_minibatch_bounds_are_logged_densely_enough_for_every_decade_of_the_log_axis(tmp_path):
    trainer = Trainer.from_config(digits_config(samples=1_000_000), tmp_path / "run")  # 10,000 steps
    x = np.array([(step + 1) * 100 for step in range(trainer.total_steps) if schedules.logs_bound(step, trainer.total_steps)])
    per_decade = np.histogram(np.log10(x), bins=[2, 3, 4, 5, 6.01])[0]
    assert per_decade.min() >= 9, per_decade  # every 10th step alone: 1, 9, 90, 900
    assert len(x) <= 1100  # still about a thousand rows a run


@pytest.mark.parametrize("seconds, shown", [(0.4, "0 s"), (59.4, "59 s"), (59.6, "1 min 0 s"), (200, "3 min 20 s"),
                                            (4249, "1 h 10 min"), (90_000, "25 h 0 min"), (-3, "0 s"),
                                            (float("nan"), "?"), (float("inf"), "?")])
def test_time_left_reads_in_hours_minutes_and_seconds(seconds, shown):
    from vae_core.formatting import format_duration
    assert format_duration(seconds) == shown


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_timed_checkpoint_as_if_never_killed(tmp_path):
    """Evaluations thin out on a log scale, so checkpoints also come every `checkpoint_seconds` of training: a
    process killed between evaluations loses at most that much, and its continuation is the uninterrupted run."""
    whole = Trainer.from_config(digits_config(samples=400_000), tmp_path / "whole")
    whole.run()
    killed = Trainer.from_config(digits_config(samples=400_000, checkpoint_seconds=0.05), tmp_path / "killed")
    evaluated_at = 0
    for event in killed.events():  # leaving the loop stands for a kill: no stop, no last checkpoint
        evaluated_at = event.samples_evaluated if event.kind == "evaluation" else evaluated_at
        if killed.samples_evaluated >= 290_000:
            break
    saved_at = runs.checkpoint_samples(tmp_path / "killed")
    assert evaluated_at < saved_at <= 290_000  # past the last evaluation (at 200,000 samples)
    resumed = Trainer.resume_from(tmp_path / "killed")
    assert resumed.samples_evaluated == saved_at and killed.seconds - resumed.seconds < 0.05 + 0.1
    assert max(r["samples_evaluated"] for r in resumed.metrics) <= saved_at  # rows after it come again
    resumed.run()
    assert torch.equal(resumed.params.flat, whole.params.flat)
    assert [r["lower_bound"] for r in resumed.metrics if r["kind"] == "minibatch"] == \
           [r["lower_bound"] for r in whole.metrics if r["kind"] == "minibatch"]


def test_continuing_to_a_budget_not_above_the_checkpoint_is_refused(tmp_path):
    Trainer.from_config(digits_config(samples=5_000), tmp_path / "run").run()
    with pytest.raises(ValueError, match="already evaluated 5,000 samples"):
        Trainer.resume_from(tmp_path / "run", samples=5_000)


@pytest.mark.slow
def test_a_timed_checkpoint_never_saves_non_finite_parameters(tmp_path):
    trainer = Trainer.from_config(digits_config(samples=10**6, checkpoint_seconds=1e-9), tmp_path / "run")  # one after each step
    step = trainer.train_step

    def poisoned_step(with_values=False):  # a step that logs no bound (the 10th steps do, from step 100 on)
        values = step(with_values)
        if trainer.step == 205:
            trainer.params.flat.data[0] = float("nan")
        return values

    trainer.train_step = poisoned_step
    last = trainer.run()
    assert last.kind == "failed" and "non-finite" in last.message and last.samples_evaluated == 20_500
    assert runs.checkpoint_samples(tmp_path / "run") == 20_400  # the step before, not the poisoned one
    assert torch.isfinite(Trainer.resume_from(tmp_path / "run").params.flat).all()


@pytest.mark.slow
def test_the_autograd_step_trains_to_the_fast_steps_bound(tmp_path):
    """`--step autograd` is the same algorithm as the fast step: the same run, to within 1% of its test bound."""
    bounds = {}
    for step in ("fast", "autograd"):
        trainer = Trainer.from_config(digits_config(step=step, samples=60_000), tmp_path / step)
        assert trainer.algorithm.step == step
        bounds[step] = trainer.run().test_lower_bound
    assert bounds["fast"] > -40  # it learned: an untrained model scores about -44
    assert abs(bounds["autograd"] - bounds["fast"]) < 0.01 * abs(bounds["fast"]), bounds


@pytest.mark.parametrize("change, step", [({}, "fast"), ({"activation": "relu"}, "fast"),
                                          ({"activation": "softplus", "init": "default"}, "fast"),
                                          ({"hidden": (40, 30)}, "fast"), ({"algorithm": "full-vb"}, "autograd")])
@pytest.mark.slow
def test_auto_step_takes_the_fast_step_only_for_the_papers_network(tmp_path, change, step):
    trainer = Trainer.from_config(digits_config(**change), tmp_path / "run")
    assert trainer.algorithm.step == step
    assert trainer.run().test_lower_bound > -45


def test_asking_for_the_fast_step_where_it_does_not_apply_is_refused():
    with pytest.raises(ValueError, match="serves aevb, wake-sleep only, not full-vb"):
        digits_config(step="fast", algorithm="full-vb").validate()


@pytest.mark.slow
def test_a_short_frey_run_of_wake_sleep_raises_the_bound(data_dir, tmp_path):
    trainer = Trainer.from_config(TrainConfig(dataset="frey", algorithm="wake-sleep", samples=100_000, lr=0.02,
                                              data_dir=str(data_dir)), tmp_path / "run")
    assert trainer.algorithm.name == "wake-sleep" and trainer.algorithm.step == "fast"
    last = trainer.run()
    evaluations = [r for r in trainer.metrics if "test_lower_bound" in r]
    assert last.kind == "finished" and last.test_lower_bound > evaluations[0]["test_lower_bound"] + 300
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["algorithm"] == "wake-sleep"


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["aevb", "wake-sleep"])
def test_stop_then_resume_equals_an_uninterrupted_run_for_each_algorithm(tmp_path, algorithm):
    whole = Trainer.from_config(digits_config(algorithm=algorithm), tmp_path / "whole")
    whole.run()
    part = Trainer.from_config(digits_config(algorithm=algorithm), tmp_path / "part")
    part.run(lambda e: part.stop() if e.samples_evaluated >= 7_300 else None)
    resumed = Trainer.resume_from(tmp_path / "part")
    resumed.run()
    assert torch.equal(resumed.params.flat, whole.params.flat)


def test_evaluations_land_on_the_papers_budgets(tmp_path):
    """One long run gives the bounds at 10^5, 3·10^5, 10^6 (Fig. 2's x axis): the 1-2-3-5 series, the first step and
    the last."""
    trainer = Trainer.from_config(digits_config(samples=1_234_500), tmp_path / "run")
    samples = sorted(step * 100 for step in schedules.evaluation_steps(trainer.config.samples, 100))
    assert samples[:4] == [100, 200, 300, 500] and samples[-1] == 1_234_500
    assert {100_000, 300_000, 1_000_000} <= set(samples) and len(samples) == 18


@pytest.mark.slow
def test_mcem_raises_the_marginal_likelihood_and_resumes_exactly(tmp_path):
    """Appendix E on digits: persistent chains, an HMC E-step, 5 updates of θ a minibatch; the chains are part of the
    checkpoint, so a stopped and resumed run equals an uninterrupted one."""
    config = digits_config(algorithm="mcem", evaluation="marginal", marginal_points=40, train_size=300, samples=6000,
                           latent_dim=2, hidden=(20,))
    whole = Trainer.from_config(config, tmp_path / "whole")
    assert whole.algorithm.name == "mcem" and whole.algorithm.chains.shape == (300, 2)
    last = whole.run()
    scores = [r["test_marginal_log_likelihood"] for r in whole.metrics if is_evaluation(r)]
    assert "test_lower_bound" not in whole.metrics[-1]  # no encoder is learned: no bound to report
    assert scores[-1] > scores[0] + 3, scores
    part = Trainer.from_config(config, tmp_path / "part")
    part.run(lambda e: part.stop() if e.samples_evaluated >= 2500 else None)
    resumed = Trainer.resume_from(tmp_path / "part")
    resumed.run()
    assert torch.equal(resumed.params.flat, whole.params.flat)
    assert torch.equal(resumed.algorithm.chains, whole.algorithm.chains)
    assert last.test_marginal_log_likelihood == scores[-1]


def test_mcem_needs_the_marginal_evaluation():
    with pytest.raises(ValueError, match="needs evaluation 'marginal'"):
        digits_config(algorithm="mcem").validate()


def test_full_vb_trains_and_its_gradient_is_aevbs_as_q_theta_narrows(tmp_path):
    """With σ of q(θ) tiny, θ ≈ μ: the gradient is AEVB's, plus μ/N from KL(q(θ) || N(0, I)) on the decoder's means."""
    from vae_core.algorithms import AEVB, Minibatch
    trainer = Trainer.from_config(digits_config(algorithm="full-vb", vb_logvar=-40.0), tmp_path / "run")
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0  # the prior is in the KL
    algorithm, grads = trainer.algorithm, trainer.params.grads
    batch = Minibatch(trainer.x_train[:50], torch.arange(50))
    noise = algorithm.draw_noise(batch, torch.Generator().manual_seed(0))
    algorithm.gradient(batch, noise, grads)
    full = {k: v.clone() for k, v in grads.items()}
    AEVB(trainer.model, trainer.config, len(trainer.x_train)).gradient(batch, noise, grads)
    N = len(trainer.x_train)
    for name, p in trainer.model.named_parameters():
        expected = grads[name] + (p.detach() / N if name.startswith("decoder.") else 0)
        torch.testing.assert_close(full[name], expected, rtol=1e-4, atol=1e-6)
    from torch.distributions import Normal, kl_divergence
    posterior = algorithm.posterior
    with torch.no_grad():
        for lv in posterior.decoder_logvar.values():
            lv.uniform_(-3, 1)
        exact = sum(kl_divergence(Normal(mu, (0.5 * posterior.decoder_logvar[n.replace(".", "_")]).exp()), Normal(0.0, 1.0)).sum()
                    for n, mu in trainer.model.decoder.named_parameters())
        torch.testing.assert_close(posterior.kl(), exact)
        algorithm.reset()
    assert trainer.run().test_lower_bound > -40  # and it learns


def test_a_run_can_be_named_tagged_deleted_to_the_trash_and_restored(tmp_path):
    Trainer.from_config(digits_config(samples=2000), tmp_path / "runs" / "run").run()
    run = tmp_path / "runs" / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    runs.label(run, name="first try", tags=["baseline", " paper ", ""])
    assert runs.label(run, note="lr 0.02") == {"name": "first try", "note": "lr 0.02", "tags": ["baseline", "paper"]}
    assert runs.read_run(run).title == "first try"
    trash = runs.delete(run)
    assert not run.exists() and runs.list_runs(tmp_path / "runs") == [] and runs.trashed(tmp_path / "runs") == [trash]
    assert runs.restore(trash) == run.resolve()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != runs.META} == before
    lock = runs.RunLock(run, "the CLI")
    with pytest.raises(runs.RunError, match="being trained by the CLI"):
        runs.delete(run)
    lock.release()


def test_a_run_whose_origin_note_is_lost_is_restored_under_its_own_name(tmp_path):
    run = tmp_path / "runs" / "20261206-101500-frey-J2-ab12"
    Trainer.from_config(digits_config(samples=500), run).run()
    trash = runs.delete(run)
    (trash.parent / f"{trash.name}.from").unlink()
    assert runs.restore(trash) == run and (run / runs.MODEL).is_file()


def test_a_trainer_that_cannot_be_built_leaves_its_folder_as_it_was(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no memory for the model")
    from vae_core import training
    monkeypatch.setattr(training, "_model", fail)
    given = tmp_path / "given"
    given.mkdir()
    for run_dir in (given, tmp_path / "new"):
        with pytest.raises(RuntimeError, match="no memory"):
            Trainer.from_config(digits_config(), run_dir)
    assert given.is_dir() and list(given.iterdir()) == [] and not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError, match="no memory"):
        Trainer.from_config(digits_config(), runs_dir=tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []
    monkeypatch.undo()
    assert Trainer.from_config(digits_config(samples=500), given).run().kind == "finished"  # the lock was released


def test_a_binarised_run_is_evaluated_on_binary_images(tmp_path):
    trainer = Trainer.from_config(digits_config(binarize=True, samples=3000), tmp_path / "run")
    assert set(trainer.sets.test.unique().tolist()) == {0.0, 1.0} and set(trainer.sets.train.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(trainer.sets.test, Trainer.from_config(digits_config(binarize=True), tmp_path / "b").sets.test)  # fixed
    last = trainer.run()
    from vae_core.evaluation import dataset_lower_bound
    generator = torch.Generator().manual_seed(trainer.config.seed + 2)  # as the final evaluation: train, then test
    dataset_lower_bound(trainer.model, trainer.sets.train, generator)
    binary = dataset_lower_bound(trainer.model, trainer.sets.test, generator)[0]
    assert last.test_lower_bound == pytest.approx(binary, abs=1e-9)  # the reported bound is the binary images'
    assert "binarised once" in json.loads((tmp_path / "run" / runs.CONFIG).read_text())["evaluation_data"]


def test_the_iwae_schedule_lowers_the_step_size_by_stage(tmp_path):
    trainer = Trainer.from_config(digits_config(lr_schedule="iwae", lr=1e-3, optimizer="adam"), tmp_path / "run")
    N = len(trainer.x_train)
    for epoch, stage in ((0, 0), (0.99, 0), (1, 1), (3.9, 1), (4, 2), (13, 3), (3280, 7), (10**5, 7)):
        trainer.step = math.floor(epoch * N / trainer.config.batch_size)
        trainer.train_step()
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 10 ** (-stage / 7)), epoch


def test_the_run_index_reads_a_run_again_only_when_it_changed_or_is_held(tmp_path):
    """The Runs and Paper pages' index: a folder unchanged since its last read gives the same record without reading
    it (its files are not opened: a record read again would be a new object); a changed file, a run being trained,
    a deleted run are seen at the next call."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        Trainer.from_config(digits_config(samples=2000, seed=seed), root / f"seed{seed}").run()
    index = runs.RunIndex()
    first = {r.path.name: r for r in index.records(root)}
    again = {r.path.name: r for r in index.records(root)}
    assert all(again[name] is first[name] for name in first)  # not read again
    runs.write_json(root / "seed1" / runs.META, {"name": "renamed"})
    changed = {r.path.name: r for r in index.records(root)}
    assert changed["seed0"] is first["seed0"] and changed["seed1"].meta == {"name": "renamed"}
    lock = runs.RunLock(root / "seed0", "a test")  # someone trains it: its lock can end without a write
    try:
        held = {r.path.name: r for r in index.records(root)}
        assert held["seed0"] is not first["seed0"] and held["seed0"].holder["by"] == "a test"
        assert held["seed0"].metrics == runs.read_run(root / "seed0").metrics  # read on from the first read's rows
        assert {r.path.name: r for r in index.records(root)}["seed0"] is not held["seed0"]
    finally:
        lock.release()
    assert index.records(root)[0].holder is None
    runs.delete(root / "seed1")
    assert [r.path.name for r in index.records(root)] == ["seed0"]


def test_the_run_index_warms_up_in_the_background_so_the_first_page_reads_nothing(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for seed in (0, 1):
        Trainer.from_config(digits_config(samples=2000, seed=seed), root / f"seed{seed}").run()
    index = runs.RunIndex()
    index.warm(root).join()
    def no_reading(*args, **kwargs):
        raise AssertionError("a run folder read again after the warm-up")
    monkeypatch.setattr(runs, "read_run", no_reading)
    assert sorted(r.path.name for r in index.records(root)) == ["seed0", "seed1"]  # with metrics, as the Runs page
    assert len(index.records(root, metrics=False)) == 2  # without, as the pickers
    assert index.records(root)[0].metrics  # the metrics were read in the warm-up
    runs.write_json(root / "seed1" / runs.META, {"name": "renamed"})  # a change after it is still seen
    with pytest.raises(AssertionError, match="read again after the warm-up"):
        index.records(root)

