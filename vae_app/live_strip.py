"""The strip of live trainings in the sidebar, on every page: each run and sweep this app server trains now, with
its progress, so that a run started on the Train page stays in sight from the others."""
from __future__ import annotations

import streamlit as st

from .guard import guarded
from .text import plain
from .views import pool

STRIP_SECONDS = 2.0  # how often the strip redraws while something trains


@guarded
def _strip() -> None:
    workers = pool().active_workers()
    sweeps = [job for job in pool().sweeps if job.active]
    if not workers and not sweeps:
        return
    st.caption("Training now")
    for worker in workers:
        line = worker.progress_line()
        st.progress(line["fraction"], text=f"{plain(worker.run_dir.name)}: {line['state']}, {line['fraction']:.0%}")
    for job in sweeps:
        counts = job.progress()
        done = counts["finished"] + counts["failed"]
        st.progress(done / len(job.trials), text=f"sweep {plain(job.sweep_dir.name)}: {done} of {len(job.trials)} done, "
                                                 f"{counts['training']} training")


def live_strip() -> None:
    """Draws the strip where it is called (the sidebar); it redraws itself while anything trains."""
    active = bool(pool().active_workers() or any(job.active for job in pool().sweeps))
    st.fragment(run_every=STRIP_SECONDS if active else None)(_strip)()
