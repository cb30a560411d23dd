"""Pages that survive the unexpected: an exception becomes a message on the page, and its traceback goes to the
server's log only, never to the browser.

dashboard.py runs every page inside `page_guard`; fragments, which rerun on their own, are wrapped by `guarded`.
Streamlit's own control flow (st.rerun, st.stop, st.switch_page) raises BaseExceptions, which pass through.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import re

import streamlit as st

from vae_core import ConfigError, DataError, RunError

log = logging.getLogger("vae_app")
EXPECTED = (DataError, RunError, ConfigError, ValueError, FileNotFoundError)  # their messages say what to do


def literal(text: str) -> str:
    """Text for an element that renders Markdown (st.error, st.caption, ...), shown as it is: every character Markdown
    or Streamlit's own syntax (colours, icons, LaTeX) could read is escaped. For what users name: their data's paths."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])", r"\\\1", str(text))


def show(error: Exception) -> None:
    if isinstance(error, EXPECTED):
        st.error(str(error), icon=":material/error:")
        return
    log.error("a page failed", exc_info=error)
    st.error(f"This part of the page failed unexpectedly ({type(error).__name__}). Nothing was lost: runs and models "
             f"are on disk. Reload the page to try again; the server's log has the details.", icon=":material/error:")


@contextlib.contextmanager
def page_guard():
    try:
        yield
    except Exception as error:
        show(error)


def guarded(function):
    """A fragment (or any function drawing part of a page) whose failure shows a message instead of a traceback."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with page_guard():
            return function(*args, **kwargs)
    return wrapper
