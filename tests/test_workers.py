"""The dashboard's worker pool: runs train in child processes, bounded in number, owned by one session."""
import time

import pytest
from conftest import PATIENCE

from vae_app.workers import PoolFull, ThreadTuner, WorkerPool
from vae_core import runs
from vae_core.config import TrainConfig


def wait_until(condition, seconds=PATIENCE):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_pool_bounds_trainings_and_keeps_sessions_apart(tmp_path):
    pool = WorkerPool(max_workers=1)
    config = TrainConfig(dataset="digits", samples=10**9, lr=0.02)
    first = pool.start(config, owner="alice", runs_dir=tmp_path)
    try:
        with pytest.raises(PoolFull, match="the most this machine allows at once \\(1\\)"):
            pool.start(config, owner="bob", runs_dir=tmp_path)
        assert wait_until(lambda: first.state == "running" and first.rows)
        first.touch("alice")
        with pytest.raises(PermissionError, match="belongs to another open session"):
            pool.attach(first, "bob")  # alice's page is still open
        first.pause()
        assert wait_until(lambda: first.state == "paused")
        held = first.rows[-1]["samples_evaluated"]
        time.sleep(0.5)
        assert first.rows[-1]["samples_evaluated"] == held
        first.resume()
        assert wait_until(lambda: first.rows[-1]["samples_evaluated"] > held)
    finally:
        first.stop()
    assert wait_until(lambda: first.state == "stopped")
    assert runs.read_json(first.run_dir / runs.STATUS)["state"] == "stopped"
    second = pool.start(config, owner="bob", runs_dir=tmp_path)  # the slot is free again
    second.stop()
    assert wait_until(lambda: not second.active)


def test_the_same_start_asked_twice_while_it_starts_is_one_run(tmp_path, monkeypatch):
    """A double click on Start can reach the pool from two reruns of the page: the same owner and settings while the
    first run is still starting give that run back. Another owner, other settings, or a run that has begun to train
    start a run of their own. (The worker's follower is held back, so that it stays starting whatever the timing.)"""
    from vae_app.workers import TrainingWorker
    from vae_core.runs import RunState
    monkeypatch.setattr(TrainingWorker, "_follow", lambda self: None)
    pool = WorkerPool(max_workers=4)
    config = TrainConfig(dataset="digits", samples=10**9, lr=0.02)
    started = [pool.start(config, owner="alice", runs_dir=tmp_path)]
    try:
        assert pool.start(config, owner="alice", runs_dir=tmp_path) is started[0]
        assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1
        started.append(pool.start(config, owner="bob", runs_dir=tmp_path))
        started.append(pool.start(TrainConfig(dataset="digits", samples=10**9, lr=0.01), owner="alice", runs_dir=tmp_path))
        started[0].state = RunState.RUNNING  # it trains: a new click is a new run
        started.append(pool.start(config, owner="alice", runs_dir=tmp_path))
        assert len({id(w) for w in started}) == 4
    finally:
        for worker in started:
            worker.process.kill()
            worker.process.join()
            worker.state = RunState.STOPPED


def test_a_failing_run_reports_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OFFLINE", "1")  # inherited by the worker process: no download attempt
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="mnist", samples=1000, data_dir=str(tmp_path / "nothing")), "alice",
                        runs_dir=tmp_path)
    assert wait_until(lambda: worker.state == "failed")
    assert "DataError" in worker.message and "digits" in worker.message


def test_the_thread_tuner_measures_each_count_keeps_the_fastest_and_measures_again():
    """Rates of a 2-core machine with a neighbour: 2 threads stall (1,000 samples/s), 1 trains (30,000/s)."""
    tuner = ThreadTuner(cores=2, window=1.0, every=30.0)
    assert tuner.candidates == [1, 2] and tuner.threads == 2  # every core first
    rates = {1: 30_000, 2: 1_000}
    seconds, samples, switches = 0.0, 0, []

    def train(duration):
        nonlocal seconds, samples
        for _ in range(int(duration * 10)):
            seconds += 0.1
            samples += int(rates[tuner.threads] * 0.1)
            if (change := tuner.update(seconds, samples)) is not None:
                switches.append((round(seconds, 1), change))
    train(3)
    assert tuner.threads == 1 and switches[-1][1] == 1  # measured both, kept 1
    rates.update({1: 20_000, 2: 35_000})  # the neighbour has gone: 2 threads are faster now
    train(31)
    assert tuner.threads == 2  # the next probe found it
    assert all(b - a >= 1.0 for (a, _), (b, _) in zip(switches, switches[1:]))  # windows of at least a second
    assert switches[0][0] >= 2.0  # the run's first second is not measured: its first window began after it
    rates.update({1: 36_000, 2: 35_000})  # one thread faster by less than the noise of a window: keep every core
    train(33)
    assert tuner.threads == 2


def test_the_thread_tuner_measures_fewer_threads_again_soon_then_less_often():
    """A probe disturbed by a burst can keep one thread wrongly, which costs up to a third of the speed: one thread is
    measured again 4 s after it is kept, then 8, 16 and at most every 30 s while each probe keeps it."""
    tuner = ThreadTuner(cores=2, window=1.0, every=30.0, recheck=4.0)
    rates = {1: 30_000, 2: 1_000}  # a neighbour all along: one thread is right
    seconds, samples, probes = 0.0, 0, []
    for tick in range(1, 700):
        seconds = tick / 10
        samples += int(rates[tuner.threads] * 0.1)
        if tuner.update(seconds, samples) == 2:
            probes.append(seconds)
    assert tuner.threads == 1
    # the first window (1-2 s) measures 2 threads, 2-3 s one; kept at 3 s, then probes after 4, 8, 16 and 30 s
    assert probes == pytest.approx([7.0, 16.0, 33.0, 64.0], abs=0.15)


def test_a_worker_reports_the_thread_count_it_trains_with(tmp_path):
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="digits", samples=10**9, lr=0.02), owner="alice", runs_dir=tmp_path)
    try:
        assert wait_until(lambda: worker.threads in ThreadTuner().candidates and len(worker.rows) > 0)
    finally:
        worker.stop()
    assert wait_until(lambda: not worker.active)


@pytest.mark.slow
def test_a_run_nobody_watches_is_followed_to_its_end(tmp_path):
    """No page reads the run, yet its rows, last snapshot and state keep up, and its slot frees when it ends."""
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="digits", samples=20_000, lr=0.02), owner="alice", runs_dir=tmp_path)
    assert wait_until(lambda: runs.read_json(worker.run_dir / runs.STATUS).get("state") == "finished"
                      if (worker.run_dir / runs.STATUS).is_file() else False)
    assert wait_until(lambda: worker.state == "finished")
    assert worker.rows[-1]["samples_evaluated"] == worker.snapshot["samples_evaluated"] == 20_000
    assert worker.rows == [r for r in runs.read_run(worker.run_dir).metrics
                           if r["kind"] == "minibatch" or "test_lower_bound" in r]
    second = pool.start(TrainConfig(dataset="digits", samples=20_000, lr=0.02), owner="bob", runs_dir=tmp_path)
    second.stop()
    assert wait_until(lambda: not second.active)


def test_a_run_whose_process_dies_is_reported_failed(tmp_path):
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="digits", samples=10**9, lr=0.02), owner="alice", runs_dir=tmp_path)
    assert wait_until(lambda: worker.state == "running")
    worker.process.kill()
    assert wait_until(lambda: worker.state == "failed")
    assert "ended unexpectedly" in worker.message and not pool.active_workers()
