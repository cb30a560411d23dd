"""One module of views per page: what each page shows, as tables, figures, images and text, computed from the
engine. The pages call these and draw the results; the caches and the worker pool live here."""
from __future__ import annotations

import streamlit as st

from vae_core.runs import RunIndex

from ..workers import WorkerPool


@st.cache_resource
def pool() -> WorkerPool:
    """The process-wide pool (one per app server, shared by all its browser sessions)."""
    return WorkerPool()


@st.cache_resource
def run_index() -> RunIndex:
    """The process-wide index of run records: each run folder read again only when it has changed, so that a page
    over thousands of runs does not read them all at every click; made at the app's first page, which starts
    reading every run in the background, so that the Runs and Paper pages find them read."""
    index = RunIndex()
    index.warm()
    return index
