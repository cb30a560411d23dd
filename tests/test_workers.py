"""The dashboard's worker pool: runs train in child processes, bounded in number, owned by one session."""
import time

import pytest

from vae_core import runs
from vae_core.training import TrainConfig
from vae_core.workers import PoolFull, WorkerPool, training_threads


def wait_until(condition, worker, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.poll()
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_pool_bounds_trainings_and_keeps_sessions_apart(tmp_path):
    pool = WorkerPool(max_workers=1)
    config = TrainConfig(dataset="digits", samples=10**9, lr=0.02)
    first = pool.start(config, owner="alice", runs_dir=tmp_path)
    try:
        with pytest.raises(PoolFull, match="the most this machine allows at once \\(1\\)"):
            pool.start(config, owner="bob", runs_dir=tmp_path)
        assert wait_until(lambda: first.state == "running" and first.rows, first)
        first.touch("alice")
        with pytest.raises(PermissionError, match="belongs to another open session"):
            pool.attach(first, "bob")  # alice's page is still open
        first.pause()
        assert wait_until(lambda: first.state == "paused", first)
        held = first.rows[-1]["samples_evaluated"]
        time.sleep(0.5)
        first.poll()
        assert first.rows[-1]["samples_evaluated"] == held
        first.resume()
        assert wait_until(lambda: first.rows[-1]["samples_evaluated"] > held, first)
    finally:
        asked = time.monotonic()
        first.stop()
    assert wait_until(lambda: first.state == "stopped", first, seconds=10)
    assert time.monotonic() - asked < 3  # the process's start-up is long gone; stopping is quick
    assert runs.read_json(first.run_dir / runs.STATUS)["state"] == "stopped"
    second = pool.start(config, owner="bob", runs_dir=tmp_path)  # the slot is free again
    second.stop()
    assert wait_until(lambda: not second.active, second)


def test_a_failing_run_reports_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OFFLINE", "1")  # inherited by the worker process: no download attempt
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="mnist", samples=1000, data_dir=str(tmp_path / "nothing")), "alice",
                        runs_dir=tmp_path)
    assert wait_until(lambda: worker.state == "failed", worker)
    assert "DataError" in worker.message and "digits" in worker.message


def test_worker_leaves_a_core_to_the_page_only_while_the_page_redraws(tmp_path):
    pool = WorkerPool(max_workers=1)
    worker = pool.start(TrainConfig(dataset="digits", samples=10**9, lr=0.02), owner="alice", runs_dir=tmp_path)

    def watched():  # what the Train page's live view does twice a second
        worker.touch("alice")
        return worker.threads == training_threads(True) and len(worker.rows) > 0
    try:
        assert wait_until(watched, worker)
        assert wait_until(lambda: worker.threads == training_threads(False), worker, seconds=10)  # page left
        held = len(worker.rows)
        assert wait_until(watched, worker, seconds=10)  # page back
        assert len(worker.rows) > held  # and training went on throughout
    finally:
        worker.stop()
    assert wait_until(lambda: not worker.active, worker)
