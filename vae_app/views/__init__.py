"""One module of views per page: what each page shows, as tables, figures, images and text, computed from the
engine. The pages call these and draw the results; the caches and the worker pool live here."""
from __future__ import annotations

import streamlit as st

from ..workers import WorkerPool


@st.cache_resource
def pool() -> WorkerPool:
    """The process-wide pool (one per app server, shared by all its browser sessions)."""
    return WorkerPool()
