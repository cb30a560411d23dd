"""Computations that take seconds to minutes, run in a process of their own so that the app's script thread
stays free: the page polls a job's progress, with a time estimate, and draws its result when it is done.

A job reports ("work", its sample passes by VarianceConfig.work) once it knows its size, ("progress", fraction)
from 0 (the computation itself begins) to 1, then ("result", value) or ("error", message), through a queue that a
thread of the app takes in as it comes.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time

from vae_core.formatting import format_duration


def _measure_variance(source, settings, tradeoff, reports) -> None:
    """In the job's process: the variance lab's measurement of `source` (an app source) with `settings`: the
    estimators against L, or with `tradeoff` the IWAE and DReG gradients against K."""
    from vae_core import variance as lab

    try:
        space = source.load()
        train = space.load_data().train
        settings.validate(space.model, len(train))
        x = lab.fixed_minibatch(train, settings.batch_size, settings.seed)
        reports.put(("work", sum(settings.work(space.model, tradeoff))))
        measure = lab.measure_iw_tradeoff if tradeoff else lab.measure_variance
        result = measure(space.model, x, settings, lambda f: reports.put(("progress", f)))
        reports.put(("result", result))
    except Exception as e:  # the page shows the message; DataError says which data to fetch
        reports.put(("error", str(e)))


def close_our_write_end(reports) -> None:
    """After a process's start, the app's copy of the write end of the queue it reports through (the process has its
    own): closed, a process killed halfway through a report leaves a read that ends (EOFError), not one that waits
    forever for the rest."""
    reports._writer.close()


class Job:
    """`target(*args, reports)` running in a spawned process, followed by a thread of the app."""

    def __init__(self, target, *args):
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or locks
        self._reports = ctx.Queue()
        self.fraction, self.result, self.error = 0.0, None, None
        self.work: float | None = None  # sample passes, once the process has said
        self.started = time.monotonic()
        self.computing_since: float | None = None  # after the start-up (a fresh interpreter, the model, the data)
        self.finished: float | None = None
        self.process = ctx.Process(target=target, args=(*args, self._reports), daemon=True)
        self.process.start()
        close_our_write_end(self._reports)
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        while self.result is None and self.error is None:
            try:
                kind, value = self._reports.get(timeout=0.5)
            except (EOFError, OSError):  # gone, perhaps halfway through a report
                kind, value = "error", f"the computation's process ended unexpectedly (exit code {self.process.exitcode})"
            except queue.Empty:
                if not self.process.is_alive() and self._reports.empty():
                    self.error = f"the computation's process ended unexpectedly (exit code {self.process.exitcode})"
                continue
            if kind == "work":
                self.work = value
            elif kind == "progress":
                self.computing_since = self.computing_since or time.monotonic()
                self.fraction = value
            elif kind == "result":
                self.finished, self.result, self.fraction = time.monotonic(), value, 1.0
            else:
                self.error = value

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def status(self) -> str:
        """How far it is, and about how long is left, as a progress bar's text."""
        now = time.monotonic()
        if self.computing_since is None:
            return f"loading the model and its data ({now - self.started:.0f} s)"
        if self.fraction <= 0:
            return f"measuring the first values, the time left follows ({now - self.started:.0f} s)"
        computing = now - self.computing_since  # the start-up is not part of the pace
        left = computing * (1 - self.fraction) / self.fraction
        return f"{self.fraction:.0%} after {format_duration(now - self.started)}, about {format_duration(left)} left"

    @property
    def pace(self) -> float | None:
        """Seconds per sample pass of the finished computation, without its start-up; None before."""
        if self.finished is None or self.computing_since is None or not self.work:
            return None
        return (self.finished - self.computing_since) / self.work


def measure_variance(source, settings) -> Job:
    return Job(_measure_variance, source, settings, False)


def measure_iw_tradeoff(source, settings) -> Job:
    """The k trade-off: `settings.samples` are the values of K."""
    return Job(_measure_variance, source, settings, True)
