"""Training runs in worker processes, for the dashboard: start, pause, resume, stop, follow live.

Each run trains in its own process, so the app's rendering never competes with it for the GIL and a
crash in training cannot take the app down. The process reports its events and, every couple of
seconds, a snapshot of the parameters (numpy arrays) through a queue, which a thread of the app takes in
as they come, whether or not a page is watching.
A process-wide `WorkerPool` bounds how many runs train at once and outlives browser sessions, so a
session that reloads can re-attach to the run it started.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from vae_core import environment, runs
from vae_core.config import TrainConfig
from vae_core.events import EventKind, last_evaluation
from vae_core.formatting import format_duration
from vae_core.runs import RunState

from .components import LiveFeed
from .jobs import close_our_write_end

SNAPSHOT_SECONDS = 2.0
MAX_TRAININGS_ENV, MAX_TRAININGS = "VAE_MAX_TRAININGS", 64  # trainings at once: $VAE_MAX_TRAININGS, 1 to 64 (default 2)
ORPHAN_SECONDS = 12.0  # an owner not seen for this long has gone (its page closed or reloaded; it shows itself every 5 s)


class ThreadTuner:
    """Chooses a training process's thread count by measuring it, again every `every` seconds of training.

    How many threads train fastest depends on what else runs: alone, every core; beside a neighbour (another run, a
    page redrawing, a browser), a worker whose OpenMP threads fill every core stalls at each parallel region
    whenever one of them is descheduled, and can train several times slower than a 1-thread one (measured:
    docs/PERFORMANCE.md, "The thread tuner"). So each candidate count trains for a window of `window` seconds of
    training time (evaluations excluded), and the most threads within `margin` of the fastest are kept until the
    next probe: a one-second window is noisy, and wrongly keeping fewer threads on an idle machine is costly. The
    first window of a run is not measured (its first steps are slow whatever the count). Fewer threads than cores
    are measured again sooner, after `recheck` seconds, then twice as long each time a probe keeps them, up to
    `every`: a burst of the page or of another process during the all-cores window is then paid for seconds, not
    half a minute. The thread count does not change the arithmetic's results on the pinned CPU build (tested)."""

    def __init__(self, cores: int | None = None, window: float = 1.0, every: float = 30.0, recheck: float = 4.0,
                 margin: float = 1.1):
        cores = cores or os.cpu_count() or 2
        self.candidates = sorted({1, max(1, cores - 1), cores})
        self.window, self.every, self.recheck, self.margin = window, every, recheck, margin
        self.rates: dict[int, float] = {}  # samples per second of each count measured in this probe
        self.queue = list(self.candidates)  # the counts still to measure
        self.threads = self.queue.pop()  # every core, first
        self.started: tuple[float, int] | None = None  # (training seconds, samples) when this window began
        self.next_probe: float | None = None  # training time of the next probe; None while probing
        self.kept: int | None = None  # the count the last probe kept
        self.wait = every  # training seconds from the last choice to the next probe

    def update(self, seconds: float, samples: int) -> int | None:
        """Given the training time and samples so far, the thread count to switch to, or None to keep it."""
        if self.started is None or seconds < self.started[0]:
            if seconds >= self.window:  # past the run's first window
                self.started = (seconds, samples)
            return None
        elapsed = seconds - self.started[0]
        if elapsed < self.window:
            return None
        rate = (samples - self.started[1]) / elapsed
        self.started, previous = (seconds, samples), self.threads
        if self.next_probe is None:  # probing: this count's rate is measured; measure the next, or choose
            self.rates[self.threads] = rate
            if self.queue:
                self.threads = self.queue.pop()
            else:
                fastest = max(self.rates.values())
                chosen = max(c for c, r in self.rates.items() if r * self.margin >= fastest)
                if chosen == self.candidates[-1]:
                    self.wait = self.every
                else:  # fewer threads: soon again, or twice as long as last time if the last probe kept these too
                    self.wait = min(self.every, 2 * self.wait) if chosen == self.kept else self.recheck
                self.threads = self.kept = chosen
                self.next_probe = seconds + self.wait
        elif seconds >= self.next_probe:  # the load may have changed: measure again
            self.rates, self.next_probe = {self.threads: rate}, None
            self.queue = [c for c in self.candidates if c != self.threads]
            self.threads = self.queue.pop()
        return self.threads if self.threads != previous else None


class PoolFull(RuntimeError):
    """As many runs are training as the pool allows."""


class _Reports:
    """The worker's side of its queue to the app. Once the app's process is gone, nothing is sent any more and the
    process may exit without flushing what is queued: this process holds the queue's read end too, so the pipe
    never breaks, and a write into it would wait for a reader forever."""

    def __init__(self, events):
        self.events, self.orphaned = events, threading.Event()

    def put(self, report) -> None:
        if not self.orphaned.is_set():
            self.events.put(report)

    def parent_gone(self) -> None:
        self.orphaned.set()
        self.events.cancel_join_thread()


def _worker_main(config: dict, run_dir: str, resume: bool, events, pause, stop) -> None:
    import torch

    from vae_core.training import Trainer

    tuner = ThreadTuner()
    reports, parent = _Reports(events), mp.parent_process()
    reported = None

    def set_threads(threads: int | None):
        nonlocal reported
        if threads is not None and threads != reported:
            torch.set_num_threads(threads)  # from this thread: OpenMP's setting is per calling thread
            reports.put(("threads", threads))
            reported = threads
    set_threads(tuner.threads)  # reported from the start, so the progress line says it
    try:
        if resume:
            trainer = Trainer.resume_from(run_dir, samples=config["samples"], by="the dashboard")
        else:
            trainer = Trainer.from_config(TrainConfig.from_dict(config), run_dir, by="the dashboard")

        def watch():  # mirror the app's control events onto the trainer; stop when the app's process is gone
            while not stop.wait(0.05):
                if parent is not None and not parent.is_alive():  # its end of our sentinel pipe has closed
                    reports.parent_gone()
                    break
                trainer.pause() if pause.is_set() else trainer.resume()
            trainer.stop()  # after the step in progress, with a checkpoint where the run stands
        threading.Thread(target=watch, daemon=True).start()
        last_snapshot = 0.0
        for event in trainer.events():
            set_threads(tuner.update(event.seconds, event.samples_evaluated))
            reports.put(("event", event.to_row()))
            now = time.monotonic()
            if reports.orphaned.is_set():
                continue
            if event.kind in (EventKind.EVALUATION, EventKind.FINISHED, EventKind.STOPPED) or now - last_snapshot > SNAPSHOT_SECONDS:
                last_snapshot = now
                with torch.no_grad():
                    state = {k: v.detach().cpu().numpy().copy() for k, v in trainer.model.state_dict().items()}
                reports.put(("snapshot", {"state": state, "model_config": trainer.model.config.to_dict(),
                                          "samples_evaluated": trainer.samples_evaluated}))
    except Exception as e:  # reported to the app as a message; the run's files say the rest
        reports.put(("error", f"{type(e).__name__}: {e}"))
    finally:
        reports.put(("exit", None))


RATE_WINDOW_SECONDS = 5.0  # of training time: the rate the time left is estimated from


def recent_rate(rows: list[dict]) -> float | None:
    """Samples per second over the last RATE_WINDOW_SECONDS of training time (pauses and evaluations excluded, as
    in the rows' `seconds`), so that the start-up's slow first steps do not stretch the time left; None before there
    is that much."""
    if not rows:
        return None
    last = rows[-1]
    for row in reversed(rows):
        span = last["seconds"] - row["seconds"]
        if span >= RATE_WINDOW_SECONDS:
            return (last["samples_evaluated"] - row["samples_evaluated"]) / span
    return None


class TrainingWorker:
    """One run training in a child process, seen from the app."""

    def __init__(self, run_dir: Path, config: dict, owner: str, resume: bool = False):
        """`config` is the run's TrainConfig as a dict; with `resume`, its budget is the one to continue to."""
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or locks
        self.run_dir = Path(run_dir)
        self.config = config
        self.owner = owner
        self.threads: int | None = None  # the worker's training threads, as it last reported them
        self.rows: list[dict] = runs.read_run(self.run_dir).metrics if resume else []
        self.feed = LiveFeed()  # what the Train page's charts poll, under a secret name
        self.snapshot: dict | None = None
        self.state = RunState.STARTING
        self.message = ""
        self._events = ctx.Queue()
        self._pause, self._stop = ctx.Event(), ctx.Event()
        self._seen = time.monotonic()  # when the owning page last showed itself
        self.process = ctx.Process(target=_worker_main, daemon=True, args=(
            config, str(self.run_dir), resume, self._events, self._pause, self._stop))
        self.feed.update(self.rows, self.state, self.progress_line)  # at once: the page's first fetch finds the run starting
        self.process.start()
        close_our_write_end(self._events)
        threading.Thread(target=self._follow, daemon=True, name=f"follow {self.run_dir.name}").start()

    def _follow(self) -> None:
        """Takes in the process's reports as they come, until it exits. Left in the queue, they would pile up
        in the process while no page reads them (a parameter snapshot every two seconds, megabytes each for
        MNIST), and the run's state would lag behind it, so the pool would count a finished run as training."""
        while True:
            try:
                kind, payload = self._events.get(timeout=self.feed.every)
            except queue.Empty:
                self.feed.update(self.rows, self.state, self.progress_line)
                if self.process.is_alive() or not self._events.empty():
                    continue
                break  # gone without saying so, and everything it sent before it ended has been taken in
            except (EOFError, OSError):  # gone, every write end closed, perhaps halfway through a report
                break
            self._take(kind, payload)
            self.feed.update(self.rows, self.state, self.progress_line)
            if kind == "exit":
                return
        if self.state.active:
            self.process.join(timeout=5)  # reaped, so that its exit code is known (unless another thread reaps it)
            code = self.process.exitcode
            self.message = "the training process ended unexpectedly" + (f" (exit code {code})" if code is not None else "")
            self.state = RunState.FAILED  # after its message: whoever sees the state finds why
        self.feed.update(self.rows, self.state, self.progress_line)

    def _take(self, kind: str, payload) -> None:
        if kind == "event":
            event = EventKind(payload["kind"])
            if event.logged:
                self.rows.append(payload)
            elif event == EventKind.TRIAL or event.ends:
                self.message = payload.get("message", "")
            self.state = self.state.after(event)
        elif kind == "snapshot":
            self.snapshot = payload
        elif kind == "threads":
            self.threads = payload
        elif kind == "error":
            self.state, self.message = RunState.FAILED, payload
        elif kind == "exit" and self.state.active:
            self.state = RunState.STOPPED

    @property
    def active(self) -> bool:
        return self.state.active

    def progress_line(self) -> dict:
        """The progress bar's state, fraction and text: samples, rate, time remaining, the last bounds."""
        rows = self.rows
        last = rows[-1] if rows else {}
        done, total = last.get("samples_evaluated", 0), self.config["samples"]
        if self.state == RunState.STARTING:
            return {"state": str(self.state), "fraction": 0.0,
                    "text": f"starting: {'loading the checkpoint' if rows else 'loading the data'} and building the model"}
        if self.state == RunState.CHOOSING_STEP_SIZE:  # the trial's candidates, each for a few steps (Section 5)
            return {"state": str(self.state), "fraction": 0.0,
                    "text": f"choosing the step size by a short trial of each candidate: {self.message or 'under way'}"}
        recent = recent_rate(rows)
        rate = recent or last.get("samples_per_second", 0.0)
        text = f"{self.state}: {done:,} / {total:,} samples"
        if rate:
            text += f", {rate:,.0f} samples/s"
        if self.state == RunState.RUNNING:  # a paused, stopped or finished run has no time left
            text += f", {format_duration((total - done) / recent)} left" if recent else ", estimating the time left"
        if self.active and self.threads:  # the thread count the worker measured to train fastest
            text += f", on {self.threads} of {os.cpu_count()} cores"
        last = last_evaluation(rows)
        for train, test, what in (("train_lower_bound", "test_lower_bound", ""),
                                  ("train_marginal_log_likelihood", "test_marginal_log_likelihood", " (log p(x))"),
                                  ("train_iw_bound", "test_iw_bound", " (IW bound)")):
            if last.get(test) is not None:
                text += f", train {last[train]:.2f} / test {last[test]:.2f} nats{what}"
        return {"state": str(self.state), "fraction": min(1.0, done / total) if total else 0.0, "text": text}

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()

    def touch(self, owner: str) -> None:
        """The owning session shows it is still there (the Train page does this on each live redraw)."""
        if owner == self.owner:
            self._seen = time.monotonic()

    @property
    def orphaned(self) -> bool:
        return time.monotonic() - self._seen > ORPHAN_SECONDS


class SweepJob:
    """A sweep (vae_core/sweep.py) on a local Ray, run by `python -m vae_core sweep --resume` in a process of its own,
    at most `slots` trials at once; its progress is read from its trials' run folders."""

    def __init__(self, sweep_dir: Path, slots: int, owner: str):
        from vae_core.sweep import Sweep

        self.sweep_dir, self.slots, self.owner = Path(sweep_dir), slots, owner
        self.trials = list(Sweep.load(sweep_dir).trials)
        self.log = self.sweep_dir / "sweep.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vae_core", "sweep", "--resume", str(self.sweep_dir), "--max-concurrent", str(slots),
             "--cpus-per-trial", "1"], stdout=subprocess.DEVNULL, stderr=self.log.open("w"), start_new_session=True)

    @property
    def active(self) -> bool:
        return self.process.poll() is None

    def progress(self) -> dict[str, int]:
        """Trials by state: finished, failed, training, and waiting (not begun, or stopped to be continued)."""
        counts = {"finished": 0, "failed": 0, "training": 0, "waiting": 0}
        for name in self.trials:
            run_dir = self.sweep_dir / name
            state = runs.read_run(run_dir, metrics=False).state if run_dir.exists() else None
            if state in (RunState.FINISHED, RunState.FAILED):
                counts[str(state)] += 1
            else:
                counts["training" if state is not None and state.active else "waiting"] += 1
        return counts

    def stop(self) -> None:
        """Like Ctrl-C: Tune stops its trials, which keep their checkpoints."""
        if self.active:
            os.killpg(self.process.pid, signal.SIGINT)


class WorkerPool:
    """The runs training in this app process, at most `max_workers` at a time: single runs and sweeps' trials."""

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or environment.whole_number(MAX_TRAININGS_ENV, 2, 1, MAX_TRAININGS)
        self.workers: dict[str, TrainingWorker] = {}
        self.sweeps: list[SweepJob] = []
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Trainings under way: single runs and the slots of running sweeps."""
        return len(self.active_workers()) + sum(s.slots for s in self.sweeps if s.active)

    def _admit(self) -> None:
        if self.busy >= self.max_workers:
            raise PoolFull(f"{self.busy} trainings are already running, the most this machine allows at once "
                           f"({self.max_workers}). Stop one, or wait for one to finish, then start again.")

    def start_sweep(self, sweep_dir: Path, owner: str) -> SweepJob:
        """Runs the sweep saved in `sweep_dir` with as many trials at once as the pool has free slots."""
        with self._lock:
            self._admit()
            job = SweepJob(sweep_dir, self.max_workers - self.busy, owner)
            self.sweeps.append(job)
            return job

    def start(self, config: TrainConfig, owner: str, runs_dir: str | Path | None = None) -> TrainingWorker:
        """Validates the config and starts training it in a new run directory. The same settings asked for again by
        the same owner while that run is still starting are the same request (a double click, whichever of the
        page's reruns sees it): its run is returned, and no second one starts."""
        config.validate()
        with self._lock:
            settings = config.to_dict()
            for worker in self.workers.values():
                if worker.owner == owner and worker.state.starting and worker.config == settings:
                    return worker
            self._admit()
            run_dir = runs.new_run_dir(runs_dir, config.run_label)
            worker = TrainingWorker(run_dir, config.to_dict(), owner)
            self.workers[str(run_dir)] = worker
            return worker

    def resume(self, run_dir: str | Path, owner: str, samples: int | None = None) -> TrainingWorker:
        """Continues a saved run from its last checkpoint, optionally to a larger budget."""
        run_dir = Path(run_dir)
        if not (run_dir / runs.CHECKPOINT).is_file():
            raise FileNotFoundError(f"{run_dir.name} has no checkpoint yet, so there is nothing to resume")
        with self._lock:
            if any(w.run_dir == run_dir for w in self.active_workers()):
                raise PoolFull(f"{run_dir.name} is already training")
            self._admit()
            record = runs.read_run(run_dir, metrics=False)
            if record.holder is not None:
                raise PoolFull(f"{run_dir.name} is being trained by {runs.describe_holder(record.holder)}")
            if record.damaged:
                raise runs.RunError(f"{run_dir.name} is damaged: {record.describe_problems()}")
            config = {**record.train_config, "samples": samples or record.train_config["samples"]}  # the budget to continue to
            worker = TrainingWorker(run_dir, config, owner, resume=True)
            self.workers[str(run_dir)] = worker
            return worker

    def get(self, run_dir: str | Path) -> TrainingWorker | None:
        return self.workers.get(str(Path(run_dir)))

    def active_workers(self) -> list[TrainingWorker]:
        return [w for w in self.workers.values() if w.active]

    def attach(self, worker: TrainingWorker, owner: str) -> None:
        if worker.owner != owner and not worker.orphaned:
            raise PermissionError(f"{worker.run_dir.name} belongs to another open session")
        worker.owner = owner
        worker.touch(owner)
